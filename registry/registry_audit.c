/*
 * registry_audit.c - the audit log as a hash chain: the one append path
 * every audit row takes, its canonical encoding, chaining the rows that
 * migration 4 finds, streaming, verifying, signing heads, and the
 * filtered query fedfusectl prints. docs/registry.md ("The audit chain")
 * defines the encoding for auditors who recompute it on their own.
 */
#include "ff_registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ff_log.h"
#include "registry_pq.h"
#include "registry_schema.h"

/* Key of the transaction advisory lock that serialises appends
 * ("ffaudit" in ASCII). */
#define FF_AUDIT_LOCK_KEY 0x66666175646974LL

/* The canonical time of a timestamptz column: UTC, microseconds. */
#define AUDIT_AT(col)                                                    \
    "to_char(" col " AT TIME ZONE 'UTC', "                               \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* The filters of ff_audit_filter as parameters $1..$9 (audit_filter_args
 * adds them in this order). */
#define AUDIT_WHERE                                                      \
    "($1::text IS NULL OR site = $1) "                                   \
    "AND ($2::text IS NULL OR action = $2) "                             \
    "AND ($3::text IS NULL OR starts_with(action, $3)) "                 \
    "AND ($4::timestamptz IS NULL OR at >= $4) "                         \
    "AND ($5::timestamptz IS NULL OR at < $5) "                          \
    "AND ($6::text IS NULL OR actor = $6) "                              \
    "AND ($7::text IS NULL OR starts_with(actor, $7)) "                  \
    "AND ($8::text IS NULL OR details->>'model' = $8) "                  \
    "AND ($9::text IS NULL OR details->>'version' = $9)"

/* ---- canonical encoding ---- */

/* Writes v as 8 bytes big-endian. */
static void
put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Reads 8 bytes big-endian (a binary-format int8). */
static int64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Hashes F(s): the length as 8 bytes big-endian, then the bytes; NULL is
 * eight 0xff bytes and nothing else. */
static void
hash_field(crypto_generichash_state *h, const char *s)
{
    uint8_t len[8];

    if (s == NULL) {
        memset(len, 0xff, sizeof(len));
        crypto_generichash_update(h, len, sizeof(len));
        return;
    }
    size_t n = strlen(s);
    put_be64(len, (uint64_t)n);
    crypto_generichash_update(h, len, sizeof(len));
    crypto_generichash_update(h, (const unsigned char *)s, n);
}

void
ff_registry_audit_row_hash(const uint8_t prev[FF_AUDIT_HASH_BYTES],
                           int64_t id, const char *at, const char *actor,
                           const char *action, const char *site,
                           const char *details,
                           uint8_t out[FF_AUDIT_HASH_BYTES])
{
    crypto_generichash_state h;
    char idtext[24];

    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    crypto_generichash_init(&h, NULL, 0, FF_AUDIT_HASH_BYTES);
    crypto_generichash_update(&h, prev, FF_AUDIT_HASH_BYTES);
    hash_field(&h, FF_AUDIT_ROW_TAG);
    hash_field(&h, idtext);
    hash_field(&h, at);
    hash_field(&h, actor);
    hash_field(&h, action);
    hash_field(&h, site);
    hash_field(&h, details);
    crypto_generichash_final(&h, out, FF_AUDIT_HASH_BYTES);
}

size_t
ff_registry_audit_head_message(int64_t audit_id,
                               const uint8_t row_hash[FF_AUDIT_HASH_BYTES],
                               uint8_t msg[FF_AUDIT_HEAD_MSG_BYTES])
{
    const size_t tag = sizeof(FF_AUDIT_HEAD_TAG) - 1;

    memcpy(msg, FF_AUDIT_HEAD_TAG, tag);
    put_be64(msg + tag, (uint64_t)audit_id);
    memcpy(msg + tag + 8, row_hash, FF_AUDIT_HASH_BYTES);
    return FF_AUDIT_HEAD_MSG_BYTES;
}

/* ---- appending ---- */

/* Whether the audit table has its hash columns (schema >= 4); learnt
 * once per handle, since a schema never goes back. Caller holds the
 * lock. */
static ff_status
audit_is_chained(ff_registry *r, int *chained, ff_error *err)
{
    int64_t n = 0;

    *chained = r->audit_chained;
    if (*chained)
        return FF_OK;
    ff_status st = ff_pq_fetch_int(
        r,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = "
        "to_regclass('audit') AND attname = 'row_hash' AND NOT attisdropped",
        NULL, &n, NULL, err);
    *chained = r->audit_chained = st == FF_OK && n > 0;
    return st;
}

/* A row on a database older than schema 4: no hashes, id from the
 * sequence. Migration 4 chains it. */
static ff_status
append_legacy(ff_registry *r, const char *actor, const char *action,
              const char *site, const json_t *details, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, actor);
    ff_pq_arg_text(&a, action);
    ff_pq_arg_text(&a, site);
    ff_pq_arg_json(&a, details);
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO audit (actor, action, site, details) "
        "VALUES ($1, $2, $3, coalesce($4::jsonb, '{}'::jsonb))",
        &a, err);
    ff_pq_args_cleanup(&a);
    return st;
}

/* The new row's canonical fields, known before it is inserted. */
typedef struct append_row {
    int64_t id;
    uint8_t prev[FF_AUDIT_HASH_BYTES];
    uint8_t hash[FF_AUDIT_HASH_BYTES];
    PGresult *res;          /* holds at (column 2) and details (3) */
    const char *at;
    const char *details;
} append_row;

/* Takes the chain lock (until the transaction ends), then reads the head
 * and the new row's time and canonical details. Caller holds the lock
 * and a transaction. */
static ff_status
append_prepare(ff_registry *r, const json_t *details, append_row *row,
               ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, FF_AUDIT_LOCK_KEY);
    ff_status st = ff_pq_query(r, "SELECT pg_advisory_xact_lock($1::bigint)",
                               &a, 0, PGRES_TUPLES_OK, NULL, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;

    /* A new statement sees every append committed before the lock. */
    ff_pq_args_init(&a);
    ff_pq_arg_json(&a, details);
    st = ff_pq_query(
        r,
        "SELECT coalesce((SELECT id FROM audit ORDER BY id DESC LIMIT 1), "
        "0)::bigint, (SELECT row_hash FROM audit ORDER BY id DESC LIMIT 1), "
        AUDIT_AT("clock_timestamp()") ", "
        "coalesce($1::jsonb, '{}'::jsonb)::text",
        &a, 1, PGRES_TUPLES_OK, &row->res, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;
    PGresult *res = row->res;
    int null_head = PQgetisnull(res, 0, 1);
    if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8 ||
        (!null_head && PQgetlength(res, 0, 1) != FF_AUDIT_HASH_BYTES))
        return ff_error_set(err, FF_ERR_DIGEST,
                            "the audit head's row_hash is not %d bytes",
                            FF_AUDIT_HASH_BYTES);
    int64_t head = get_be64((const uint8_t *)PQgetvalue(res, 0, 0));
    row->id = head + 1;
    memset(row->prev, 0, sizeof(row->prev));
    if (!null_head)
        memcpy(row->prev, PQgetvalue(res, 0, 1), FF_AUDIT_HASH_BYTES);
    row->at = PQgetvalue(res, 0, 2);
    row->details = PQgetvalue(res, 0, 3);
    return FF_OK;
}

/* Inserts the prepared row and checks that it reads back with the very
 * time and details text that were hashed. */
static ff_status
append_insert(ff_registry *r, const char *actor, const char *action,
              const char *site, const append_row *row, ff_error *err)
{
    ff_pq_args a;
    int64_t same = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, row->id);
    ff_pq_arg_text(&a, row->at);
    ff_pq_arg_text(&a, actor);
    ff_pq_arg_text(&a, action);
    ff_pq_arg_text(&a, site);
    ff_pq_arg_text(&a, row->details);
    ff_pq_arg_bytes(&a, row->prev, FF_AUDIT_HASH_BYTES);
    ff_pq_arg_bytes(&a, row->hash, FF_AUDIT_HASH_BYTES);
    ff_pq_arg_text(&a, row->at);
    ff_pq_arg_text(&a, row->details);
    ff_status st = ff_pq_fetch_int(
        r,
        "INSERT INTO audit (id, at, actor, action, site, details, "
        "prev_hash, row_hash) VALUES ($1::bigint, "
        "$2::timestamp AT TIME ZONE 'UTC', $3, $4, $5, $6::jsonb, $7, $8) "
        "RETURNING (" AUDIT_AT("at") " = $9::text "
        "AND details::text = $10::text)::int",
        &a, &same, NULL, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && same != 1)
        st = ff_error_set(err, FF_ERR_INTERNAL,
                          "audit row %lld would not read back as hashed",
                          (long long)row->id);
    return st;
}

/* Appends one chained row. Caller holds the lock and a transaction. */
static ff_status
append_chained(ff_registry *r, const char *actor, const char *action,
               const char *site, const json_t *details, ff_error *err)
{
    append_row row = {0};

    ff_status st = append_prepare(r, details, &row, err);
    if (st == FF_OK) {
        ff_registry_audit_row_hash(row.prev, row.id, row.at, actor, action,
                                   site, row.details, row.hash);
        st = append_insert(r, actor, action, site, &row, err);
    }
    PQclear(row.res);
    return st;
}

ff_status
ff_pq_audit(ff_registry *r, const char *actor, const char *action,
            const char *site, const json_t *details, ff_error *err)
{
    int chained = 0;

    if (actor == NULL || action == NULL || action[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG,
                            "audit: actor and action are required");
    if (PQtransactionStatus(r->conn) != PQTRANS_INTRANS)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "audit: append outside a transaction");
    ff_status st = audit_is_chained(r, &chained, err);
    if (st == FF_OK && chained)
        st = append_chained(r, actor, action, site, details, err);
    else if (st == FF_OK)
        st = append_legacy(r, actor, action, site, details, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "writing audit row %s", action);
    return FF_OK;
}

ff_status
ff_registry_audit(ff_registry *r, const char *actor, const char *action,
                  const char *site, json_t *details, ff_error *err)
{
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, ff_pq_audit(r, actor, action, site, details,
                                          err),
                           err);
    }
    ff_pq_unlock(r);
    return st;
}

/* ---- migration 4: chaining the rows already there ---- */

/* Chains one page of rows with id > *after, continuing from prev;
 * *n receives how many rows the page had. */
static ff_status
chain_page(ff_registry *r, int64_t *after, uint8_t prev[32], int *n,
           ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, *after);
    ff_pq_arg_int(&a, FF_AUDIT_PAGE_ROWS);
    ff_status st = ff_pq_query(
        r,
        "SELECT id, " AUDIT_AT("at") ", actor, action, site, details::text "
        "FROM audit WHERE id > $1::bigint ORDER BY id LIMIT $2::bigint",
        &a, 1, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    *n = st == FF_OK ? PQntuples(res) : 0;

    for (int i = 0; st == FF_OK && i < *n; i++) {
        uint8_t hash[FF_AUDIT_HASH_BYTES];
        int64_t id = get_be64((const uint8_t *)PQgetvalue(res, i, 0));
        const char *site = PQgetisnull(res, i, 4) ? NULL
                                                  : PQgetvalue(res, i, 4);
        ff_registry_audit_row_hash(prev, id, PQgetvalue(res, i, 1),
                                   PQgetvalue(res, i, 2),
                                   PQgetvalue(res, i, 3), site,
                                   PQgetvalue(res, i, 5), hash);
        ff_pq_args_init(&a);
        ff_pq_arg_int(&a, id);
        ff_pq_arg_bytes(&a, prev, FF_AUDIT_HASH_BYTES);
        ff_pq_arg_bytes(&a, hash, FF_AUDIT_HASH_BYTES);
        st = ff_pq_command(r,
                           "UPDATE audit SET prev_hash = $2, row_hash = $3 "
                           "WHERE id = $1::bigint",
                           &a, err);
        ff_pq_args_cleanup(&a);
        memcpy(prev, hash, FF_AUDIT_HASH_BYTES);
        *after = id;
    }
    PQclear(res);
    return st;
}

ff_status
ff_pq_audit_chain_existing(ff_registry *r, ff_error *err)
{
    uint8_t prev[FF_AUDIT_HASH_BYTES] = {0};
    int64_t after = 0, total = 0;
    int n = FF_AUDIT_PAGE_ROWS;
    ff_status st = FF_OK;

    while (st == FF_OK && n == FF_AUDIT_PAGE_ROWS) {
        st = chain_page(r, &after, prev, &n, err);
        total += n;
    }
    if (st != FF_OK)
        return ff_error_wrap(err, st, "chaining the existing audit rows");
    FF_INFO("registry: chained %lld existing audit rows", (long long)total);
    return FF_OK;
}

/* ---- streaming ---- */

/* Splits "x*" into a prefix (a new string in *prefix) or keeps an exact
 * value. */
static ff_status
split_prefix(const char *in, const char **exact, char **prefix,
             ff_error *err)
{
    size_t n = in ? strlen(in) : 0;

    *exact = in;
    *prefix = NULL;
    if (n == 0 || in[n - 1] != '*')
        return FF_OK;
    *exact = NULL;
    *prefix = strndup(in, n - 1);
    if (*prefix == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    return FF_OK;
}

/* Adds f's filters as $1..$9 of AUDIT_WHERE; owned[2] receives the
 * prefix copies, which the caller frees after the query. */
static ff_status
audit_filter_args(ff_pq_args *a, const ff_audit_filter *f, char *owned[2],
                  ff_error *err)
{
    const char *action = NULL, *actor = NULL;

    owned[0] = owned[1] = NULL;
    ff_status st = split_prefix(f->action, &action, &owned[0], err);
    if (st == FF_OK)
        st = split_prefix(f->actor, &actor, &owned[1], err);
    if (st != FF_OK)
        return st;
    ff_pq_arg_text(a, f->site);
    ff_pq_arg_text(a, action);
    ff_pq_arg_text(a, owned[0]);
    ff_pq_arg_text(a, f->since);
    ff_pq_arg_text(a, f->until);
    ff_pq_arg_text(a, actor);
    ff_pq_arg_text(a, owned[1]);
    ff_pq_arg_text(a, f->model);
    ff_pq_arg_text(a, f->version);
    return FF_OK;
}

/* One page of rows matching f with id >= from, in binary format. */
static ff_status
scan_page(ff_registry *r, const ff_audit_filter *f, int64_t from,
          PGresult **res, ff_error *err)
{
    ff_pq_args a;
    char *owned[2];

    ff_pq_args_init(&a);
    ff_status st = audit_filter_args(&a, f, owned, err);
    ff_pq_arg_int(&a, from);
    ff_pq_arg_int(&a, FF_AUDIT_PAGE_ROWS);
    if (st == FF_OK) {
        st = ff_pq_lock(r, err);
        if (st == FF_OK)
            st = ff_pq_query(
                r,
                "SELECT id, " AUDIT_AT("at") ", actor, action, site, "
                "details::text, prev_hash, row_hash FROM audit "
                "WHERE id >= $10::bigint AND " AUDIT_WHERE
                " ORDER BY id LIMIT $11::bigint",
                &a, 1, PGRES_TUPLES_OK, res, err);
        ff_pq_unlock(r);
    }
    ff_pq_args_cleanup(&a);
    free(owned[0]);
    free(owned[1]);
    return st;
}

/* Row i of a scan page, pointing into res. NULL hashes read as empty. */
static void
scan_row(const PGresult *res, int i, ff_audit_row *row)
{
    row->id = get_be64((const uint8_t *)PQgetvalue(res, i, 0));
    row->at = PQgetvalue(res, i, 1);
    row->actor = PQgetvalue(res, i, 2);
    row->action = PQgetvalue(res, i, 3);
    row->site = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
    row->details = PQgetvalue(res, i, 5);
    row->prev_hash = (const uint8_t *)PQgetvalue(res, i, 6);
    row->prev_len = (size_t)PQgetlength(res, i, 6);
    row->row_hash = (const uint8_t *)PQgetvalue(res, i, 7);
    row->row_len = (size_t)PQgetlength(res, i, 7);
}

ff_status
ff_registry_audit_scan(ff_registry *r, const ff_audit_filter *f,
                       int64_t from_id, ff_audit_row_fn fn, void *arg,
                       ff_error *err)
{
    static const ff_audit_filter all;
    int n = FF_AUDIT_PAGE_ROWS;
    ff_status st = FF_OK;

    if (f == NULL)
        f = &all;
    while (st == FF_OK && n == FF_AUDIT_PAGE_ROWS) {
        PGresult *res = NULL;
        st = scan_page(r, f, from_id, &res, err);
        if (st != FF_OK)
            return ff_error_wrap(err, st, "reading the audit log");
        n = PQntuples(res);
        for (int i = 0; st == FF_OK && i < n; i++) {
            ff_audit_row row;
            scan_row(res, i, &row);
            st = fn(&row, arg);
            from_id = row.id + 1;
        }
        PQclear(res);
    }
    return st;
}

/* ---- verifying ---- */

/* State of a walk along the chain. */
typedef struct chain_walk {
    ff_audit_verdict *v;
    const uint8_t *anchor;   /* NULL: start of the chain; else the first
                                row must be anchor_id with this hash */
    int64_t anchor_id;
    int started;
    int64_t prev_id;
    uint8_t prev_hash[FF_AUDIT_HASH_BYTES];
} chain_walk;

/* Records the first failure in v and stops the scan (FF_ERR_DIGEST). */
static ff_status
verdict_fail(ff_audit_verdict *v, int64_t id, const char *fmt, ...)
    FF_PRINTF(3, 4);

static ff_status
verdict_fail(ff_audit_verdict *v, int64_t id, const char *fmt, ...)
{
    va_list ap;

    v->ok = 0;
    v->bad_id = id;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
    return FF_ERR_DIGEST;
}

/* The link from the previous row: prev_hash must be its row_hash. */
static ff_status
walk_link(chain_walk *w, const ff_audit_row *row)
{
    long long id = row->id, p = w->prev_id;

    if (!w->started && w->anchor != NULL) {
        if (row->id != w->anchor_id)
            return verdict_fail(w->v, w->anchor_id,
                                "row %lld, covered by a signed head, is "
                                "missing (deleted?)",
                                (long long)w->anchor_id);
        return FF_OK;
    }
    if (!w->started) {
        if (sodium_is_zero(row->prev_hash, FF_AUDIT_HASH_BYTES))
            return FF_OK;
        if (id > 1)
            return verdict_fail(w->v, id,
                                "row %lld: prev_hash is not the chain's "
                                "start (rows before %lld missing?)",
                                id, id);
        return verdict_fail(w->v, id,
                            "row %lld: prev_hash is not the chain's start "
                            "(32 zero bytes)",
                            id);
    }
    if (sodium_memcmp(row->prev_hash, w->prev_hash, FF_AUDIT_HASH_BYTES) ==
        0) {
        if (id > p + 1)
            w->v->gaps++;
        return FF_OK;
    }
    if (id == p + 1)
        return verdict_fail(w->v, id,
                            "row %lld: prev_hash does not match row %lld "
                            "(row %lld rewritten, or row %lld forged?)",
                            id, p, p, id);
    if (id == p + 2)
        return verdict_fail(w->v, id,
                            "row %lld: prev_hash does not match row %lld "
                            "(row %lld missing?)",
                            id, p, p + 1);
    return verdict_fail(w->v, id,
                        "row %lld: prev_hash does not match row %lld "
                        "(rows %lld..%lld missing?)",
                        id, p, p + 1, id - 1);
}

/* One row of the walk: its stored hashes, its link, its own hash. */
static ff_status
walk_row(const ff_audit_row *row, void *arg)
{
    chain_walk *w = arg;
    uint8_t hash[FF_AUDIT_HASH_BYTES];
    long long id = row->id;

    if (row->prev_len != FF_AUDIT_HASH_BYTES ||
        row->row_len != FF_AUDIT_HASH_BYTES)
        return verdict_fail(w->v, id,
                            "row %lld: stored hashes are not %d bytes", id,
                            FF_AUDIT_HASH_BYTES);
    ff_status st = walk_link(w, row);
    if (st != FF_OK)
        return st;
    ff_registry_audit_row_hash(row->prev_hash, row->id, row->at, row->actor,
                               row->action, row->site, row->details, hash);
    if (sodium_memcmp(hash, row->row_hash, FF_AUDIT_HASH_BYTES) != 0)
        return verdict_fail(w->v, id,
                            "row %lld: row_hash does not match its "
                            "contents (edited?)",
                            id);
    if (!w->started && w->anchor != NULL &&
        sodium_memcmp(hash, w->anchor, FF_AUDIT_HASH_BYTES) != 0)
        return verdict_fail(w->v, id,
                            "row %lld: row_hash differs from the one its "
                            "signed head vouches for (rewritten?)",
                            id);
    w->started = 1;
    w->prev_id = row->id;
    memcpy(w->prev_hash, hash, FF_AUDIT_HASH_BYTES);
    w->v->rows++;
    w->v->last_id = row->id;
    return FF_OK;
}

/* Walks the chain from w's start to its end. Returns FF_OK when it
 * could read everything (w->v->ok says whether it verified). */
static ff_status
walk_chain(ff_registry *r, chain_walk *w, ff_error *err)
{
    int64_t from = w->anchor != NULL ? w->anchor_id : 0;

    ff_status st = ff_registry_audit_scan(r, NULL, from, walk_row, w, err);
    if (!w->v->ok)
        return FF_OK;
    if (st == FF_OK && w->anchor != NULL && !w->started)
        verdict_fail(w->v, w->anchor_id,
                     "row %lld, covered by a signed head, is missing "
                     "(deleted?)",
                     (long long)w->anchor_id);
    return st;
}

/* One signed head: sizes, signature, signer, and its row. Columns: id,
 * audit_id, row_hash, signature, signer_key, the row's row_hash. */
static ff_status
head_check(const PGresult *res, int i, const uint8_t *key,
           ff_audit_verdict *v, int64_t *last_head)
{
    uint8_t msg[FF_AUDIT_HEAD_MSG_BYTES];
    char hex[17];

    long long h = get_be64((const uint8_t *)PQgetvalue(res, i, 0));
    long long n = get_be64((const uint8_t *)PQgetvalue(res, i, 1));
    const uint8_t *hash = (const uint8_t *)PQgetvalue(res, i, 2);
    const uint8_t *sig = (const uint8_t *)PQgetvalue(res, i, 3);
    const uint8_t *pk = (const uint8_t *)PQgetvalue(res, i, 4);
    *last_head = h;
    if (PQgetlength(res, i, 2) != FF_AUDIT_HASH_BYTES ||
        PQgetlength(res, i, 3) != FF_AUDIT_SIG_BYTES ||
        PQgetlength(res, i, 4) != FF_AUDIT_KEY_BYTES)
        return verdict_fail(v, n, "signed head %lld (row %lld): malformed",
                            h, n);
    ff_registry_audit_head_message(n, hash, msg);
    if (crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) != 0)
        return verdict_fail(v, n,
                            "signed head %lld (row %lld): signature does "
                            "not verify",
                            h, n);
    sodium_bin2hex(hex, sizeof(hex), pk, 8);
    if (key != NULL && sodium_memcmp(key, pk, FF_AUDIT_KEY_BYTES) != 0)
        return verdict_fail(v, n,
                            "signed head %lld (row %lld): signed by key "
                            "%s..., not the given key",
                            h, n, hex);
    if (PQgetisnull(res, i, 5))
        return verdict_fail(v, n,
                            "signed head %lld: row %lld does not exist "
                            "(deleted?)",
                            h, n);
    if (PQgetlength(res, i, 5) != FF_AUDIT_HASH_BYTES ||
        sodium_memcmp(PQgetvalue(res, i, 5), hash, FF_AUDIT_HASH_BYTES) != 0)
        return verdict_fail(v, n,
                            "signed head %lld: row %lld's row_hash differs "
                            "from the signed one (chain rewritten?)",
                            h, n);
    v->heads++;
    if (n > v->last_signed_id)
        v->last_signed_id = n;
    return FF_OK;
}

/* Checks every signed head, a page at a time. */
static ff_status
heads_check(ff_registry *r, const uint8_t *key, ff_audit_verdict *v,
            ff_error *err)
{
    int64_t after = 0;
    int n = FF_AUDIT_PAGE_ROWS;
    ff_status st = FF_OK;

    while (st == FF_OK && v->ok && n == FF_AUDIT_PAGE_ROWS) {
        ff_pq_args a;
        PGresult *res = NULL;
        ff_pq_args_init(&a);
        ff_pq_arg_int(&a, after);
        ff_pq_arg_int(&a, FF_AUDIT_PAGE_ROWS);
        st = ff_pq_lock(r, err);
        if (st == FF_OK)
            st = ff_pq_query(
                r,
                "SELECT h.id, h.audit_id, h.row_hash, h.signature, "
                "h.signer_key, a.row_hash FROM audit_head h "
                "LEFT JOIN audit a ON a.id = h.audit_id "
                "WHERE h.id > $1::bigint ORDER BY h.id LIMIT $2::bigint",
                &a, 1, PGRES_TUPLES_OK, &res, err);
        ff_pq_unlock(r);
        ff_pq_args_cleanup(&a);
        n = st == FF_OK ? PQntuples(res) : 0;
        for (int i = 0; i < n && v->ok; i++)
            (void)head_check(res, i, key, v, &after);
        PQclear(res);
    }
    if (st == FF_OK && v->ok && key != NULL && v->heads == 0)
        verdict_fail(v, 0, "no signed head: nothing ties the chain to the "
                           "given key");
    return st;
}

ff_status
ff_registry_audit_verify(ff_registry *r, const uint8_t *key,
                         ff_audit_verdict *v, ff_error *err)
{
    chain_walk w = {0};

    memset(v, 0, sizeof(*v));
    v->ok = 1;
    w.v = v;
    ff_status st = walk_chain(r, &w, err);
    if (st == FF_OK && v->ok)
        st = heads_check(r, key, v, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "verifying the audit chain");
    return FF_OK;
}

/* ---- signing heads ---- */

/* The newest head pk signed: *found, its row id and row_hash, checked
 * against its signature. */
static ff_status
sign_anchor(ff_registry *r, const uint8_t pk[32], int *found, int64_t *id,
            uint8_t hash[32], ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;
    uint8_t msg[FF_AUDIT_HEAD_MSG_BYTES];

    *found = 0;
    ff_pq_args_init(&a);
    ff_pq_arg_bytes(&a, pk, FF_AUDIT_KEY_BYTES);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(r,
                         "SELECT audit_id, row_hash, signature FROM "
                         "audit_head WHERE signer_key = $1 "
                         "ORDER BY id DESC LIMIT 1",
                         &a, 1, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK || PQntuples(res) == 0) {
        PQclear(res);
        return st;
    }
    *id = get_be64((const uint8_t *)PQgetvalue(res, 0, 0));
    memcpy(hash, PQgetvalue(res, 0, 1), FF_AUDIT_HASH_BYTES);
    ff_registry_audit_head_message(*id, hash, msg);
    int bad = crypto_sign_verify_detached(
        (const uint8_t *)PQgetvalue(res, 0, 2), msg, sizeof(msg), pk);
    PQclear(res);
    if (bad)
        return ff_error_set(err, FF_ERR_DIGEST,
                            "the newest head this key signed (row %lld) "
                            "does not verify",
                            (long long)*id);
    *found = 1;
    return FF_OK;
}

/* Stores the signed head of row id with hash. */
static ff_status
sign_store(ff_registry *r, const uint8_t sk[64], const uint8_t pk[32],
           int64_t id, const uint8_t hash[32], ff_error *err)
{
    uint8_t msg[FF_AUDIT_HEAD_MSG_BYTES];
    uint8_t sig[FF_AUDIT_SIG_BYTES];
    ff_pq_args a;

    ff_registry_audit_head_message(id, hash, msg);
    crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, id);
    ff_pq_arg_bytes(&a, hash, FF_AUDIT_HASH_BYTES);
    ff_pq_arg_bytes(&a, sig, FF_AUDIT_SIG_BYTES);
    ff_pq_arg_bytes(&a, pk, FF_AUDIT_KEY_BYTES);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "INSERT INTO audit_head (audit_id, row_hash, "
                           "signature, signer_key) VALUES ($1::bigint, $2, "
                           "$3, $4)",
                           &a, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    return st;
}

ff_status
ff_registry_audit_sign_head(ff_registry *r, const uint8_t sk[64],
                            ff_error *err)
{
    uint8_t pk[FF_AUDIT_KEY_BYTES];
    uint8_t anchor[FF_AUDIT_HASH_BYTES];
    ff_audit_verdict v = {0};
    chain_walk w = {0};
    int found = 0;

    /* From the newest head this key signed, or from the start. */
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    ff_status st = sign_anchor(r, pk, &found, &w.anchor_id, anchor, err);
    v.ok = 1;
    w.v = &v;
    w.anchor = found ? anchor : NULL;
    if (st == FF_OK)
        st = walk_chain(r, &w, err);
    if (st == FF_OK && !v.ok)
        st = ff_error_set(err, FF_ERR_DIGEST, "%s", v.reason);
    if (st == FF_OK && v.rows == 0)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "the audit log is empty");
    if (st != FF_OK)
        return ff_error_wrap(err, st, "signing the audit head");

    /* Nothing new since this key's last head: nothing to sign. */
    if (found && w.prev_id == w.anchor_id)
        return FF_OK;
    st = sign_store(r, sk, pk, w.prev_id, w.prev_hash, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "storing the signed audit head");
    FF_INFO("registry: signed audit head at row %lld (%lld rows checked)",
            (long long)w.prev_id, (long long)v.rows);
    return FF_OK;
}

/* ---- the filtered query ---- */

ff_status
ff_registry_audit_query(ff_registry *r, const ff_audit_filter *f,
                        json_t **out, ff_error *err)
{
    ff_pq_args a;
    char *owned[2];

    *out = NULL;
    ff_pq_args_init(&a);
    ff_status st = audit_filter_args(&a, f, owned, err);
    if (f->limit > 0)
        ff_pq_arg_int(&a, f->limit);
    else
        ff_pq_arg_text(&a, NULL);

    /* With a limit, the newest rows win; they are returned oldest first. */
    if (st == FF_OK) {
        st = ff_pq_lock(r, err);
        if (st == FF_OK)
            st = ff_pq_fetch_json(
                r,
                "SELECT coalesce(json_agg(json_build_object('id', x.id, "
                "  'time', x.at, 'actor', x.actor, 'action', x.action, "
                "  'site', x.site, 'details', x.details) ORDER BY x.id), "
                "  '[]'::json) "
                "FROM (SELECT * FROM audit WHERE " AUDIT_WHERE
                "  ORDER BY id DESC LIMIT $10::bigint) x",
                &a, out, err);
        ff_pq_unlock(r);
    }
    ff_pq_args_cleanup(&a);
    free(owned[0]);
    free(owned[1]);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "querying the audit log");
    return FF_OK;
}
