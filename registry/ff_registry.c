/*
 * ff_registry.c - opening the registry, digests, and the migrations that
 * bring an empty or older database to the schema this code expects.
 */
#include "ff_registry.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ff_log.h"
#include "registry_pq.h"
#include "registry_schema.h"

/* Key of the session advisory lock held while migrating ("fedfuse"). */
#define FF_MIGRATION_LOCK_KEY 0x66656466757365LL

ff_status
ff_registry_open(ff_registry **out, const char *conninfo, ff_error *err)
{
    *out = NULL;
    if (conninfo == NULL)
        return ff_error_set(err, FF_ERR_ARG, "registry: no conninfo given");
    if (sodium_init() < 0)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "registry: libsodium failed to initialise");

    ff_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "registry: cannot create its mutex");
    }

    ff_status st = ff_pq_connect(r, conninfo, err);
    if (st != FF_OK) {
        ff_registry_close(r);
        return st;
    }
    *out = r;
    return FF_OK;
}

ff_status
ff_registry_model_claim(ff_registry *r, const char *model, ff_error *err)
{
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;

    /* One claim per handle; the same model again is a no-op. */
    st = ff_pq_lock(r, err);
    if (st == FF_OK && r->claimed != NULL) {
        if (strcmp(r->claimed, model) != 0)
            st = ff_error_set(err, FF_ERR_STATE,
                              "registry: this handle already claims model "
                              "%s", r->claimed);
        ff_pq_unlock(r);
        return st;
    }

    /* Take the lock, then remember it for reconnects. */
    if (st == FF_OK)
        st = ff_pq_claim(r, model, err);
    if (st == FF_OK) {
        r->claimed = strdup(model);
        if (r->claimed == NULL)
            st = ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
        else
            r->claim_held = 1;
    }
    ff_pq_unlock(r);
    return st;
}

void
ff_registry_close(ff_registry *r)
{
    if (r == NULL)
        return;
    free(r->claimed);
    PQfinish(r->conn);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void
ff_registry_digest(const uint8_t *data, size_t len, char hex[65])
{
    unsigned char sum[32];

    crypto_generichash(sum, sizeof(sum), data, len, NULL, 0);
    sodium_bin2hex(hex, 65, sum, sizeof(sum));
}

/* The highest applied migration, 0 for a database without our schema.
 * Caller holds the lock. */
static ff_status
schema_current(ff_registry *r, int *current, ff_error *err)
{
    int64_t exists = 0;
    int64_t v = 0;

    *current = 0;
    ff_status st = ff_pq_fetch_int(
        r, "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL "
           "THEN 0 ELSE 1 END",
        NULL, &exists, NULL, err);
    if (st != FF_OK || exists == 0)
        return st;
    st = ff_pq_fetch_int(r, "SELECT max(version) FROM schema_migrations",
                         NULL, &v, NULL, err);
    *current = (int)v;
    return st;
}

ff_status
ff_registry_schema_version(ff_registry *r, int *current, int *latest,
                           ff_error *err)
{
    size_t n;
    const ff_migration *m = ff_registry_migrations(&n);

    if (latest != NULL)
        *latest = m[n - 1].version;
    ff_status st = ff_pq_lock(r, err);
    int v = 0;
    if (st == FF_OK)
        st = schema_current(r, &v, err);
    ff_pq_unlock(r);
    if (current != NULL)
        *current = v;
    return st;
}

/* Applies one migration and records it, in one transaction. */
static ff_status
migration_apply(ff_registry *r, const ff_migration *m, ff_error *err)
{
    ff_pq_args a;

    ff_status st = ff_pq_begin(r, err);
    if (st != FF_OK)
        return st;
    for (size_t i = 0; st == FF_OK && m->statements[i] != NULL; i++)
        st = ff_pq_command(r, m->statements[i], NULL, err);
    if (st == FF_OK && m->step != NULL)
        st = m->step(r, err);
    for (size_t i = 0; st == FF_OK && m->after && m->after[i] != NULL; i++)
        st = ff_pq_command(r, m->after[i], NULL, err);

    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, m->version);
    ff_pq_arg_text(&a, m->name);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "INSERT INTO schema_migrations (version, name) "
                           "VALUES ($1, $2)",
                           &a, err);
    ff_pq_args_cleanup(&a);

    st = ff_pq_end(r, st, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "migration %d (%s)", m->version,
                             m->name);
    FF_INFO("registry: applied migration %d (%s)", m->version, m->name);
    return FF_OK;
}

/* With the advisory lock held: the bookkeeping table, then every
 * migration newer than the database up to version `target`. */
static ff_status
migrate_locked(ff_registry *r, int target, int *version, ff_error *err)
{
    size_t n;
    const ff_migration *m = ff_registry_migrations(&n);
    int current;

    ff_status st = ff_pq_command(
        r,
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "  version integer PRIMARY KEY,"
        "  name text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now())",
        NULL, err);
    if (st == FF_OK)
        st = schema_current(r, &current, err);
    if (st != FF_OK)
        return st;
    if (current > m[n - 1].version)
        return ff_error_set(err, FF_ERR_STATE,
                            "database schema version %d is newer than this "
                            "program's %d; upgrade fedfuse",
                            current, m[n - 1].version);

    for (size_t i = 0; i < n; i++) {
        if (m[i].version <= current || m[i].version > target)
            continue;
        st = migration_apply(r, &m[i], err);
        if (st != FF_OK)
            return st;
        current = m[i].version;
    }
    *version = current;
    return FF_OK;
}

ff_status
ff_registry_migrate(ff_registry *r, int *version, ff_error *err)
{
    size_t n;
    const ff_migration *m = ff_registry_migrations(&n);

    return ff_registry_migrate_to(r, m[n - 1].version, version, err);
}

ff_status
ff_registry_migrate_to(ff_registry *r, int target, int *version,
                       ff_error *err)
{
    ff_pq_args a;
    int v = 0;

    ff_status st = ff_pq_lock(r, err);
    if (st != FF_OK) {
        ff_pq_unlock(r);
        return st;
    }

    /* Concurrent starters queue here; the second sees the work done. */
    ff_pq_args_init(&a);
    ff_pq_arg_int(&a, FF_MIGRATION_LOCK_KEY);
    st = ff_pq_query(r, "SELECT pg_advisory_lock($1::bigint)", &a, 0,
                     PGRES_TUPLES_OK, NULL, err);
    if (st == FF_OK) {
        st = migrate_locked(r, target, &v, err);
        ff_error ignored = {0};
        if (ff_pq_query(r, "SELECT pg_advisory_unlock($1::bigint)", &a, 0,
                        PGRES_TUPLES_OK, NULL, &ignored) != FF_OK)
            FF_WARN("registry: releasing the migration lock: %s",
                    ff_error_text(&ignored));
    }
    ff_pq_args_cleanup(&a);
    ff_pq_unlock(r);

    if (version != NULL)
        *version = v;
    if (st != FF_OK)
        return ff_error_wrap(err, st, "migrating the registry");
    return FF_OK;
}
