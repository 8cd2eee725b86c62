/*
 * registry_pq.h - internal to registry/: the connection object and the
 * small layer every query goes through. Nothing outside registry/ includes
 * this file.
 *
 * Queries are always PQexecParams with parameters collected in an
 * ff_pq_args; results are compared with the exact status the caller
 * expects, and cleared on every path by the functions that produce them or
 * by the caller that takes them.
 */
#ifndef FF_REGISTRY_PQ_H
#define FF_REGISTRY_PQ_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "ff_registry.h"

struct ff_registry {
    PGconn *conn;
    pthread_mutex_t lock;   /* held around every use of conn */
    char *claimed;          /* model claimed by ff_registry_model_claim
                               (malloc'd), NULL when none */
    int claim_held;         /* 1 while this session holds its lock */
    int audit_chained;      /* 1 once the audit table is known to have
                               its hash columns (schema >= 4) */
};

/* Most parameters one query takes. */
#define FF_PQ_MAX_ARGS 16

/*
 * Parameters of one query. Text values are borrowed; numbers and JSON are
 * rendered into storage the struct owns (freed by ff_pq_args_cleanup).
 * Adding never fails on the spot: the first problem is kept in `failed`
 * and reported by ff_pq_query, so call sites stay straight-line.
 */
typedef struct ff_pq_args {
    int n;
    ff_status failed;
    const char *values[FF_PQ_MAX_ARGS];
    int lengths[FF_PQ_MAX_ARGS];
    int formats[FF_PQ_MAX_ARGS];
    Oid types[FF_PQ_MAX_ARGS];
    char numbers[FF_PQ_MAX_ARGS][32];
    char *owned[FF_PQ_MAX_ARGS];
} ff_pq_args;

/* Prepares an empty parameter list in caller storage. */
void ff_pq_args_init(ff_pq_args *a);

/* Frees what the list owns (rendered JSON). Accepts a list never used. */
void ff_pq_args_cleanup(ff_pq_args *a);

/* Appends a text parameter (borrowed until the query ran); NULL is SQL
 * NULL. */
void ff_pq_arg_text(ff_pq_args *a, const char *s);

/* Appends an integer parameter, sent as text. */
void ff_pq_arg_int(ff_pq_args *a, int64_t v);

/* Appends a double parameter, sent as text with 17 significant digits
 * (it reads back as the same double; cast it with ::float8 in the SQL).
 * NaN and the infinities are sent as SQL NULL: callers map "unbounded"
 * and "not applicable" to NULL on purpose and reject the rest first. */
void ff_pq_arg_double(ff_pq_args *a, double v);

/* Appends a JSON parameter rendered compactly (cast it with ::jsonb in the
 * SQL); NULL is SQL NULL. */
void ff_pq_arg_json(ff_pq_args *a, const json_t *j);

/* Appends a bytea parameter in binary format (borrowed). */
void ff_pq_arg_bytes(ff_pq_args *a, const uint8_t *p, size_t len);

/*
 * Connects r->conn with a libpq conninfo string or URI and applies the
 * session settings (times in UTC). r->conn is set even on failure; the
 * caller PQfinish-es it. Errors: FF_ERR_DB, FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_pq_connect(ff_registry *r, const char *conninfo,
                                    ff_error *err);

/*
 * Takes r's mutex and makes sure the connection is usable, resetting it
 * once when the server went away; a model claim r made is taken again on
 * the new session. The mutex is held on return whatever the status;
 * release it with ff_pq_unlock. Errors: FF_ERR_DB, FF_ERR_STATE (the
 * claimed model is now held by another session).
 */
FF_MUST_USE ff_status ff_pq_lock(ff_registry *r, ff_error *err);

/*
 * Takes the session advisory lock that claims model for this connection
 * (key FF_REGISTRY_CLAIM_NAMESPACE, hashtext(model)). Caller holds the
 * lock. Errors: FF_ERR_STATE (another session holds it; names the pid
 * the coordinator table records, when known), FF_ERR_DB.
 */
FF_MUST_USE ff_status ff_pq_claim(ff_registry *r, const char *model,
                                  ff_error *err);

/* Releases r's mutex. */
void ff_pq_unlock(ff_registry *r);

/*
 * Runs sql with a (NULL: no parameters), results in binary format when
 * `binary`, and checks that the result status is exactly `expect`. On
 * success *out (when out is not NULL) receives the result, which the
 * caller clears; otherwise the result is cleared here. Caller holds the
 * lock. Errors: FF_ERR_DB; FF_ERR_ARG (the server rejected a value: bad
 * time, bad UTF-8, failed CHECK); FF_ERR_STATE (unique key taken);
 * FF_ERR_NOT_FOUND (a referenced row is missing); any status kept in
 * a->failed.
 */
FF_MUST_USE ff_status ff_pq_query(ff_registry *r, const char *sql,
                                  const ff_pq_args *a, int binary,
                                  ExecStatusType expect, PGresult **out,
                                  ff_error *err);

/* ff_pq_query expecting PGRES_COMMAND_OK, result discarded. */
FF_MUST_USE ff_status ff_pq_command(ff_registry *r, const char *sql,
                                    const ff_pq_args *a, ff_error *err);

/*
 * Runs a query that returns one row with one JSON column and parses it
 * into *out (new reference, caller decrefs). Caller holds the lock.
 * Errors: as ff_pq_query, FF_ERR_INTERNAL (not one row, not JSON).
 */
FF_MUST_USE ff_status ff_pq_fetch_json(ff_registry *r, const char *sql,
                                       const ff_pq_args *a, json_t **out,
                                       ff_error *err);

/*
 * Runs a query returning at most one row of one integer column (text
 * format). *found (may be NULL) says whether a row came back; *value is
 * 0 when none did or the value is NULL. Caller holds the lock.
 * Errors: as ff_pq_query, FF_ERR_INTERNAL (not an integer).
 */
FF_MUST_USE ff_status ff_pq_fetch_int(ff_registry *r, const char *sql,
                                      const ff_pq_args *a, int64_t *value,
                                      int *found, ff_error *err);

/* Starts a transaction. Caller holds the lock. Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_pq_begin(ff_registry *r, ff_error *err);

/*
 * Ends the transaction begun by ff_pq_begin: commits when st is FF_OK,
 * rolls back otherwise (keeping err's reason). Returns the final status.
 */
FF_MUST_USE ff_status ff_pq_end(ff_registry *r, ff_status st,
                                ff_error *err);

/*
 * Appends an audit row to the hash chain (registry_audit.c), the one
 * path every audit row takes. Caller holds the lock and a transaction
 * (FF_ERR_INTERNAL otherwise): the chain's advisory lock is taken here
 * and held until that transaction ends, so the append must be the
 * transaction's last write (or followed only by more appends), and the
 * transaction should end promptly. On a database older than schema 4
 * the row is written without hashes; migration 4 chains it. Same
 * arguments as ff_registry_audit. Errors: as ff_pq_query.
 */
FF_MUST_USE ff_status ff_pq_audit(ff_registry *r, const char *actor,
                                  const char *action, const char *site,
                                  const json_t *details, ff_error *err);

/* FF_OK when model exists, FF_ERR_NOT_FOUND ("no such model")
 * otherwise. Caller holds the lock (and may hold a
 * transaction). Errors: as ff_pq_query. */
FF_MUST_USE ff_status ff_pq_model_exists(ff_registry *r, const char *model,
                                         ff_error *err);

/* Checks a model or site name: present, at most FF_REGISTRY_MAX_NAME
 * bytes. `what` names the argument in the message. Errors: FF_ERR_ARG. */
FF_MUST_USE ff_status ff_pq_check_name(const char *name, const char *what,
                                       ff_error *err);

#endif
