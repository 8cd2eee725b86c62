/*
 * ctl_audit.c - `fedfusectl audit verify` (the hash chain and its signed
 * heads, recomputed by the registry) and `fedfusectl audit export` (JSON
 * Lines, streamed into a temporary file renamed into place).
 */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* ---- verify ---- */

/* Parses --key: an Ed25519 public key as 64 hex characters. */
static ff_status
parse_key(const char *text, uint8_t key[FF_AUDIT_KEY_BYTES], ff_error *err)
{
    size_t n = 0;
    const char *end = NULL;

    if (strlen(text) != 2 * FF_AUDIT_KEY_BYTES ||
        sodium_hex2bin(key, FF_AUDIT_KEY_BYTES, text, strlen(text), NULL,
                       &n, &end) != 0 ||
        n != FF_AUDIT_KEY_BYTES || *end != '\0')
        return ff_error_set(err, FF_ERR_ARG,
                            "--key must be an Ed25519 public key as %d hex "
                            "characters, not '%.80s'",
                            2 * FF_AUDIT_KEY_BYTES, text);
    return FF_OK;
}

/* Filters make no sense for a chain, which is verified whole. */
static ff_status
refuse_filters(const ff_ctl *ctl, ff_error *err)
{
    const char *given = ctl->site     ? "--site"
                        : ctl->action ? "--action"
                        : ctl->actor  ? "--actor"
                        : ctl->model  ? "--model"
                        : ctl->version ? "--version"
                        : ctl->since  ? "--since"
                        : ctl->until  ? "--until"
                        : ctl->limit  ? "--limit"
                                      : NULL;
    if (given != NULL)
        return ff_error_set(err, FF_ERR_ARG, "audit verify does not take %s",
                            given);
    return FF_OK;
}

/* Prints the verdict as one JSON document. */
static ff_status
verdict_json(const ff_audit_verdict *v, ff_error *err)
{
    json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}", "verified",
                          v->ok, "rows", (json_int_t)v->rows, "heads",
                          (json_int_t)v->heads, "last_id",
                          (json_int_t)v->last_id, "last_signed_id",
                          (json_int_t)v->last_signed_id, "gaps",
                          (json_int_t)v->gaps);
    if (j != NULL && !v->ok &&
        (json_object_set_new(j, "row", json_integer(v->bad_id)) != 0 ||
         json_object_set_new(j, "reason", json_string(v->reason)) != 0)) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    ff_status st = ff_ctl_print_json(j, err);
    json_decref(j);
    return st;
}

ff_status
ff_ctl_audit_verify(ff_ctl *ctl, ff_error *err)
{
    uint8_t key[FF_AUDIT_KEY_BYTES];
    ff_audit_verdict v;
    ff_registry *r = NULL;

    ff_status st = refuse_filters(ctl, err);
    if (st == FF_OK && ctl->out != NULL)
        st = ff_error_set(err, FF_ERR_ARG, "--out belongs to audit export");
    if (st == FF_OK && ctl->key != NULL)
        st = parse_key(ctl->key, key, err);
    if (st == FF_OK)
        st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ff_registry_audit_verify(r, ctl->key ? key : NULL, &v, err);
    if (st != FF_OK)
        return st;

    /* The verdict; a failure is also the command's error (exit 1). */
    if (ctl->json)
        st = verdict_json(&v, err);
    else if (v.ok)
        printf("audit chain verified: %lld rows, %lld signed heads, last "
               "row %lld\n",
               (long long)v.rows, (long long)v.heads, (long long)v.last_id);
    if (st == FF_OK && !ctl->json && v.ok && v.heads > 0)
        printf("last signed row %lld; rows after it are not yet vouched "
               "for by a signature\n",
               (long long)v.last_signed_id);
    if (st == FF_OK && !v.ok)
        st = ff_error_set(err, FF_ERR_DIGEST, "%s", v.reason);
    return st;
}

/* ---- export ---- */

/* Where rows go while exporting. */
typedef struct export_sink {
    FILE *fp;
    int64_t rows, first, last;
    ff_error *err;
} export_sink;

/* bytes as lower-case hex in a new string; NULL when out of memory. */
static char *
hex_new(const uint8_t *bytes, size_t len)
{
    char *hex = malloc(2 * len + 1);

    if (hex != NULL)
        sodium_bin2hex(hex, 2 * len + 1, bytes, len);
    return hex;
}

/* One row as a JSON object: the stored fields, details parsed (null
 * when jansson cannot hold it, e.g. an integer beyond 64 bits) beside
 * the exact text that was hashed, and both hashes in hex. */
static json_t *
export_object(const ff_audit_row *row)
{
    char *prev = hex_new(row->prev_hash, row->prev_len);
    char *hash = hex_new(row->row_hash, row->row_len);
    json_t *details = json_loads(row->details, JSON_DECODE_ANY, NULL);
    json_t *j = NULL;

    if (prev != NULL && hash != NULL)
        j = json_pack("{s:I, s:s, s:s, s:s, s:s?, s:o, s:s, s:s, s:s}",
                      "id", (json_int_t)row->id, "time", row->at, "actor",
                      row->actor, "action", row->action, "site", row->site,
                      "details", details ? details : json_null(),
                      "details_text", row->details, "prev_hash", prev,
                      "row_hash", hash);
    else
        json_decref(details);
    free(prev);
    free(hash);
    return j;
}

/* Writes one row as a line. */
static ff_status
export_row(const ff_audit_row *row, void *arg)
{
    export_sink *s = arg;

    json_t *j = export_object(row);
    if (j == NULL)
        return ff_error_set(s->err, FF_ERR_NOMEM,
                            "row %lld cannot be written as JSON",
                            (long long)row->id);
    int bad = json_dumpf(j, s->fp, JSON_COMPACT | JSON_ENCODE_ANY) != 0 ||
              fputc('\n', s->fp) == EOF;
    json_decref(j);
    if (bad)
        return ff_error_set(s->err, FF_ERR_IO, "writing row %lld: %s",
                            (long long)row->id, strerror(errno));
    if (s->rows++ == 0)
        s->first = row->id;
    s->last = row->id;
    return FF_OK;
}

/* Streams the rows into fd (which the sink then owns), flushed to disk. */
static ff_status
export_stream(ff_registry *r, const ff_audit_filter *f, int fd,
              export_sink *s, ff_error *err)
{
    s->err = err;
    s->fp = fdopen(fd, "w");
    if (s->fp == NULL) {
        close(fd);
        return ff_error_set(err, FF_ERR_IO, "fdopen: %s", strerror(errno));
    }
    ff_status st = ff_registry_audit_scan(r, f, 0, export_row, s, err);
    if (st == FF_OK && (fflush(s->fp) != 0 || fsync(fileno(s->fp)) != 0))
        st = ff_error_set(err, FF_ERR_IO, "flushing: %s", strerror(errno));
    if (fclose(s->fp) != 0 && st == FF_OK)
        st = ff_error_set(err, FF_ERR_IO, "closing: %s", strerror(errno));
    s->fp = NULL;
    return st;
}

/* Writes the export to a temporary file beside path and renames it into
 * place; the temporary file is removed on any failure. */
static ff_status
export_atomic(ff_registry *r, const ff_audit_filter *f, const char *path,
              export_sink *s, ff_error *err)
{
    size_t n = strlen(path) + sizeof(".tmp.XXXXXX");
    char *tmp = malloc(n);
    if (tmp == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        ff_status st = ff_error_set(err, FF_ERR_IO,
                                    "creating a file beside %s: %s", path,
                                    strerror(errno));
        free(tmp);
        return st;
    }
    mode_t mask = umask(0);
    umask(mask);
    ff_status st = FF_OK;
    if (fchmod(fd, 0666 & ~mask) != 0)
        st = ff_error_set(err, FF_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (st == FF_OK)
        st = export_stream(r, f, fd, s, err);
    else
        close(fd);

    /* The target is checked again just before it is replaced. */
    if (st == FF_OK)
        st = ff_ctl_target_check(path, err);
    if (st == FF_OK && rename(tmp, path) != 0)
        st = ff_error_set(err, FF_ERR_IO, "renaming to %s: %s", path,
                          strerror(errno));
    if (st != FF_OK)
        unlink(tmp);
    free(tmp);
    return st;
}

/* Reports what was exported. */
static ff_status
export_report(const ff_ctl *ctl, const export_sink *s, ff_error *err)
{
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:I, s:I, s:I}", "file", ctl->out,
                              "rows", (json_int_t)s->rows, "first_id",
                              (json_int_t)s->first, "last_id",
                              (json_int_t)s->last);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        ff_status st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    char *safe = ff_ctl_escape(ctl->out, 0);
    printf("exported %lld audit rows (ids %lld..%lld) -> %s\n",
           (long long)s->rows, (long long)s->first, (long long)s->last,
           safe ? safe : "?");
    free(safe);
    return FF_OK;
}

ff_status
ff_ctl_audit_export(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    export_sink s = {0};

    ff_status st = FF_OK;
    if (ctl->out == NULL || ctl->out[0] == '\0')
        st = ff_error_set(err, FF_ERR_ARG, "audit export needs --out FILE");
    if (st == FF_OK && ctl->key != NULL)
        st = ff_error_set(err, FF_ERR_ARG, "--key belongs to audit verify");
    if (st == FF_OK && ctl->limit != NULL)
        st = ff_error_set(err, FF_ERR_ARG, "audit export does not take "
                                           "--limit");
    if (st == FF_OK)
        st = ff_ctl_target_check(ctl->out, err);
    if (st == FF_OK)
        st = ff_ctl_connect(ctl, &r, err);
    ff_audit_filter f = {ctl->site, ctl->action, ctl->since, ctl->until, 0,
                         ctl->actor, ctl->model, ctl->version};
    if (st == FF_OK)
        st = export_atomic(r, &f, ctl->out, &s, err);
    if (st != FF_OK)
        return st;
    return export_report(ctl, &s, err);
}
