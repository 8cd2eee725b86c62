/*
 * registry_pq.c - the one place that calls PQexecParams: parameter lists,
 * result status checks, error reasons, transactions and the session
 * settings every connection gets.
 */
#include "registry_pq.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ff_log.h"

/* Object id of bytea, the only parameter type we name explicitly. */
#define FF_PQ_OID_BYTEA 17

void
ff_pq_args_init(ff_pq_args *a)
{
    memset(a, 0, sizeof(*a));
}

void
ff_pq_args_cleanup(ff_pq_args *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->owned[i]);
        a->owned[i] = NULL;
    }
    a->n = 0;
}

/* Reserves the next slot; returns -1 (and records why) when full. */
static int
args_next(ff_pq_args *a)
{
    if (a->n >= FF_PQ_MAX_ARGS) {
        if (a->failed == FF_OK)
            a->failed = FF_ERR_INTERNAL;
        return -1;
    }
    return a->n++;
}

void
ff_pq_arg_text(ff_pq_args *a, const char *s)
{
    int i = args_next(a);

    if (i >= 0)
        a->values[i] = s;
}

void
ff_pq_arg_int(ff_pq_args *a, int64_t v)
{
    int i = args_next(a);

    if (i < 0)
        return;
    snprintf(a->numbers[i], sizeof(a->numbers[i]), "%lld", (long long)v);
    a->values[i] = a->numbers[i];
}

void
ff_pq_arg_double(ff_pq_args *a, double v)
{
    int i = args_next(a);

    if (i < 0 || !isfinite(v))
        return;
    snprintf(a->numbers[i], sizeof(a->numbers[i]), "%.17g", v);
    a->values[i] = a->numbers[i];
}

void
ff_pq_arg_json(ff_pq_args *a, const json_t *j)
{
    int i = args_next(a);

    if (i < 0 || j == NULL)
        return;
    a->owned[i] = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (a->owned[i] == NULL && a->failed == FF_OK)
        a->failed = FF_ERR_NOMEM;
    a->values[i] = a->owned[i];
}

void
ff_pq_arg_bytes(ff_pq_args *a, const uint8_t *p, size_t len)
{
    int i = args_next(a);

    if (i < 0)
        return;
    if (len > (size_t)INT_MAX) {
        if (a->failed == FF_OK)
            a->failed = FF_ERR_TOO_LARGE;
        return;
    }
    /* libpq wants a non-NULL pointer even for zero bytes. */
    a->values[i] = p ? (const char *)p : "";
    a->lengths[i] = (int)len;
    a->formats[i] = 1;
    a->types[i] = FF_PQ_OID_BYTEA;
}

/* Copies s into dst without its trailing newlines. */
static void
copy_trimmed(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* The fedfuse status for a server error class (SQLSTATE). */
static ff_status
status_for_sqlstate(const char *state)
{
    if (state == NULL)
        return FF_ERR_DB;
    if (strcmp(state, "23505") == 0)
        return FF_ERR_STATE;
    if (strcmp(state, "23503") == 0)
        return FF_ERR_NOT_FOUND;
    if (strcmp(state, "23514") == 0 || strncmp(state, "22", 2) == 0)
        return FF_ERR_ARG;
    return FF_ERR_DB;
}

/* Records why a query failed: the server's primary message and detail,
 * or libpq's connection message when there is no result at all. */
static ff_status
query_failed(ff_registry *r, const PGresult *res, ExecStatusType expect,
             ff_error *err)
{
    char primary[320];
    char detail[160];

    if (res == NULL) {
        copy_trimmed(primary, sizeof(primary), PQerrorMessage(r->conn));
        return ff_error_set(err, FF_ERR_DB, "database: %s", primary);
    }
    const char *p = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *d = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (p == NULL && (PQresultStatus(res) == PGRES_FATAL_ERROR ||
                      PQstatus(r->conn) != CONNECTION_OK)) {
        /* libpq's own failure, e.g. the server closed the connection. */
        copy_trimmed(primary, sizeof(primary), PQerrorMessage(r->conn));
        return ff_error_set(err, FF_ERR_DB, "database: %s", primary);
    }
    if (p == NULL) {
        /* Not an error from the server: the query ran but returned a
         * different kind of result than the caller expects. */
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database: expected %s, got %s",
                            PQresStatus(expect),
                            PQresStatus(PQresultStatus(res)));
    }
    copy_trimmed(primary, sizeof(primary), p);
    copy_trimmed(detail, sizeof(detail), d ? d : "");
    return ff_error_set(err, status_for_sqlstate(state),
                        "database: %s%s%s%s", primary, d ? " (" : "",
                        detail, d ? ")" : "");
}

ff_status
ff_pq_query(ff_registry *r, const char *sql, const ff_pq_args *a,
            int binary, ExecStatusType expect, PGresult **out,
            ff_error *err)
{
    static const ff_pq_args none;
    PGresult *res;

    if (out != NULL)
        *out = NULL;
    if (a == NULL)
        a = &none;
    if (a->failed != FF_OK)
        return ff_error_set(err, a->failed,
                            "query parameters: %s (too many, too large or "
                            "out of memory)",
                            ff_status_name(a->failed));

    res = PQexecParams(r->conn, sql, a->n, a->types, a->values, a->lengths,
                       a->formats, binary ? 1 : 0);
    if (res == NULL || PQresultStatus(res) != expect) {
        ff_status st = query_failed(r, res, expect, err);
        PQclear(res);
        return st;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return FF_OK;
}

ff_status
ff_pq_command(ff_registry *r, const char *sql, const ff_pq_args *a,
              ff_error *err)
{
    return ff_pq_query(r, sql, a, 0, PGRES_COMMAND_OK, NULL, err);
}

ff_status
ff_pq_fetch_json(ff_registry *r, const char *sql, const ff_pq_args *a,
                 json_t **out, ff_error *err)
{
    PGresult *res;
    json_error_t jerr;

    *out = NULL;
    ff_status st = ff_pq_query(r, sql, a, 0, PGRES_TUPLES_OK, &res, err);
    if (st != FF_OK)
        return st;
    if (PQntuples(res) != 1 || PQnfields(res) != 1 ||
        PQgetisnull(res, 0, 0)) {
        PQclear(res);
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database: expected one JSON value");
    }
    *out = json_loadb(PQgetvalue(res, 0, 0),
                      (size_t)PQgetlength(res, 0, 0), JSON_DECODE_ANY,
                      &jerr);
    PQclear(res);
    if (*out == NULL)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database returned unreadable JSON: %s",
                            jerr.text);
    return FF_OK;
}

ff_status
ff_pq_fetch_int(ff_registry *r, const char *sql, const ff_pq_args *a,
                int64_t *value, int *found, ff_error *err)
{
    PGresult *res;
    char *end;

    *value = 0;
    if (found != NULL)
        *found = 0;
    ff_status st = ff_pq_query(r, sql, a, 0, PGRES_TUPLES_OK, &res, err);
    if (st != FF_OK)
        return st;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        if (found != NULL)
            *found = PQntuples(res) > 0;
        PQclear(res);
        return FF_OK;
    }

    /* One integer in text format. */
    const char *text = PQgetvalue(res, 0, 0);
    errno = 0;
    long long v = strtoll(text, &end, 10);
    int bad = errno != 0 || end == text || *end != '\0';
    PQclear(res);
    if (bad)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database: expected an integer");
    *value = v;
    if (found != NULL)
        *found = 1;
    return FF_OK;
}

/* Settings every session gets: times in UTC, so that timestamps read the
 * same from every client. */
static ff_status
session_setup(ff_registry *r, ff_error *err)
{
    PGresult *res;
    ff_status st = ff_pq_query(r, "SELECT set_config('TimeZone', 'UTC', "
                               "false)", NULL, 0, PGRES_TUPLES_OK, &res,
                               err);
    PQclear(res);
    return st;
}

/* The pid the coordinator table records for model, 0 when unknown (no
 * table yet, no row, or the lookup failed). Caller holds the lock. */
static int64_t
claim_holder_pid(ff_registry *r, const char *model)
{
    ff_error ignored = {0};
    int64_t exists = 0, pid = 0;
    ff_pq_args a;

    if (ff_pq_fetch_int(r, "SELECT CASE WHEN to_regclass('coordinator') "
                           "IS NULL THEN 0 ELSE 1 END",
                        NULL, &exists, NULL, &ignored) != FF_OK ||
        exists == 0)
        return 0;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    if (ff_pq_fetch_int(r, "SELECT pid FROM coordinator WHERE model = $1",
                        &a, &pid, NULL, &ignored) != FF_OK)
        pid = 0;
    ff_pq_args_cleanup(&a);
    return pid;
}

/* One attempt at the session lock of model: *got = 1 when taken. */
static ff_status
claim_try(ff_registry *r, const char *model, int64_t *got, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, FF_REGISTRY_CLAIM_NAMESPACE);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_fetch_int(
        r, "SELECT pg_try_advisory_lock($1::int, hashtext($2))::int", &a,
        got, NULL, err);
    ff_pq_args_cleanup(&a);
    return st;
}

ff_status
ff_pq_claim(ff_registry *r, const char *model, ff_error *err)
{
    const int step_ms = 50;
    int64_t got = 0;
    ff_status st = FF_OK;

    /* A session lock: it lasts until the connection closes. A holder that
     * just closed or died keeps it until its backend exits: try again
     * for a bounded while before refusing. */
    for (int waited = 0; st == FF_OK && got != 1; waited += step_ms) {
        st = claim_try(r, model, &got, err);
        if (st != FF_OK || got == 1 || waited >= FF_REGISTRY_CLAIM_WAIT_MS)
            break;
        struct timespec ts = {0, step_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (st != FF_OK)
        return ff_error_wrap(err, st, "claiming model %s", model);
    if (got == 1)
        return FF_OK;

    /* Held elsewhere: name the holder when the coordinator table can. */
    int64_t pid = claim_holder_pid(r, model);
    if (pid > 0)
        return ff_error_set(err, FF_ERR_STATE,
                            "model %s is already served by another "
                            "coordinator (pid %lld)",
                            model, (long long)pid);
    return ff_error_set(err, FF_ERR_STATE,
                        "model %s is already served by another coordinator",
                        model);
}

/* Re-takes the claim after a reconnect (or after an earlier attempt
 * failed). Caller holds the lock. */
static ff_status
claim_restore(ff_registry *r, ff_error *err)
{
    if (r->claimed == NULL || r->claim_held)
        return FF_OK;
    ff_status st = ff_pq_claim(r, r->claimed, err);
    if (st != FF_OK) {
        FF_WARN("registry: cannot re-take the claim on model %s: %s",
                r->claimed, ff_error_text(err));
        return ff_error_wrap(err, st, "the claim was lost with the "
                                      "connection");
    }
    FF_INFO("registry: claim on model %s taken again", r->claimed);
    r->claim_held = 1;
    return FF_OK;
}

ff_status
ff_pq_lock(ff_registry *r, ff_error *err)
{
    pthread_mutex_lock(&r->lock);
    if (PQstatus(r->conn) == CONNECTION_OK)
        return claim_restore(r, err);

    /* The server went away since the last call: reconnect once. Session
     * locks died with the old session. */
    FF_WARN("registry: connection lost, reconnecting");
    r->claim_held = 0;
    PQreset(r->conn);
    if (PQstatus(r->conn) != CONNECTION_OK) {
        char msg[320];
        copy_trimmed(msg, sizeof(msg), PQerrorMessage(r->conn));
        return ff_error_set(err, FF_ERR_DB, "database: reconnect failed: %s",
                            msg);
    }
    ff_status st = session_setup(r, err);
    if (st == FF_OK)
        st = claim_restore(r, err);
    return st;
}

/* Server notices ("relation already exists, skipping") go to the debug
 * log instead of libpq's default, stderr. */
static void
notice_to_log(void *arg, const char *message)
{
    char line[320];

    (void)arg;
    copy_trimmed(line, sizeof(line), message);
    FF_DEBUG("registry: server notice: %s", line);
}

/* Defaults every connection gets unless the caller's conninfo (or the
 * matching libpq environment variable) sets them: a bounded wait for an
 * unresponsive server, TCP keepalives that notice a dead peer, and a
 * per-statement limit. */
typedef struct pq_default {
    const char *key, *value, *env;
} pq_default;

static const pq_default pq_defaults[] = {
    {"connect_timeout", "10", "PGCONNECT_TIMEOUT"},
    {"keepalives", "1", NULL},
    {"keepalives_idle", "30", NULL},
    {"keepalives_interval", "10", NULL},
    {"keepalives_count", "3", NULL},
    {"options", "-c statement_timeout=30000", "PGOPTIONS"},
    {"fallback_application_name", "fedfuse", NULL},
};

#define PQ_NDEFAULTS (sizeof(pq_defaults) / sizeof(pq_defaults[0]))

/* Opens the connection: the defaults first, the caller's conninfo (a
 * key=value string or a URI, expanded from dbname) last, because libpq
 * lets a later keyword win; so a default only applies when absent. */
static PGconn *
connect_with_defaults(const char *conninfo)
{
    const char *keys[PQ_NDEFAULTS + 2];
    const char *values[PQ_NDEFAULTS + 2];
    size_t n = 0;

    for (size_t i = 0; i < PQ_NDEFAULTS; i++) {
        const char *env = pq_defaults[i].env;
        if (env != NULL && getenv(env) != NULL && getenv(env)[0] != '\0')
            continue;
        keys[n] = pq_defaults[i].key;
        values[n++] = pq_defaults[i].value;
    }
    keys[n] = "dbname";
    values[n++] = conninfo;
    keys[n] = NULL;
    values[n] = NULL;
    return PQconnectdbParams(keys, values, 1);
}

ff_status
ff_pq_connect(ff_registry *r, const char *conninfo, ff_error *err)
{
    r->conn = connect_with_defaults(conninfo);
    if (r->conn == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "database: out of memory");
    if (PQstatus(r->conn) != CONNECTION_OK) {
        char msg[320];
        copy_trimmed(msg, sizeof(msg), PQerrorMessage(r->conn));
        return ff_error_set(err, FF_ERR_DB, "database: connecting: %s", msg);
    }
    PQsetNoticeProcessor(r->conn, notice_to_log, NULL);
    return session_setup(r, err);
}

void
ff_pq_unlock(ff_registry *r)
{
    pthread_mutex_unlock(&r->lock);
}

ff_status
ff_pq_begin(ff_registry *r, ff_error *err)
{
    return ff_pq_command(r, "BEGIN", NULL, err);
}

ff_status
ff_pq_end(ff_registry *r, ff_status st, ff_error *err)
{
    if (st == FF_OK)
        return ff_pq_command(r, "COMMIT", NULL, err);

    /* Roll back, keeping the first reason; a failed rollback (connection
     * gone) leaves nothing committed either. */
    ff_error ignored = {0};
    if (ff_pq_command(r, "ROLLBACK", NULL, &ignored) != FF_OK)
        FF_WARN("registry: rollback failed: %s", ff_error_text(&ignored));
    return st;
}

ff_status
ff_pq_model_exists(ff_registry *r, const char *model, ff_error *err)
{
    ff_pq_args a;
    int64_t one = 0;
    int found = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_fetch_int(r, "SELECT 1 FROM models WHERE name = $1",
                                   &a, &one, &found, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && !found)
        return ff_error_set(err, FF_ERR_NOT_FOUND, "no such model");
    return st;
}

ff_status
ff_pq_check_name(const char *name, const char *what, ff_error *err)
{
    if (name == NULL || name[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "%s name is empty", what);
    if (strlen(name) > FF_REGISTRY_MAX_NAME)
        return ff_error_set(err, FF_ERR_ARG,
                            "%s name is %zu bytes long; at most %u allowed",
                            what, strlen(name), FF_REGISTRY_MAX_NAME);
    return FF_OK;
}
