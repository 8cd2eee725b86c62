/*
 * registry_schema.h - internal to registry/: the ordered migrations.
 */
#ifndef FF_REGISTRY_SCHEMA_H
#define FF_REGISTRY_SCHEMA_H

#include <stddef.h>

#include "ff_registry.h"

/* One schema step: its version (1, 2, ... without gaps), a short name
 * recorded in schema_migrations, NULL-terminated SQL statements, then
 * optionally a step in C (NULL: none) and more statements (NULL: none),
 * all in the one transaction of the migration. The C step runs with the
 * connection lock held and must not begin or end a transaction. */
typedef struct ff_migration {
    int version;
    const char *name;
    const char *const *statements;
    ff_status (*step)(ff_registry *r, ff_error *err);
    const char *const *after;
} ff_migration;

/* The migrations in order; *count receives how many. Static storage. */
const ff_migration *ff_registry_migrations(size_t *count);

/* ff_registry_migrate, stopping after migration `target`: a database
 * at or beyond it is left alone. For tests that need an older schema
 * (to check that a later migration keeps its rows); everything else
 * calls ff_registry_migrate. Errors: as ff_registry_migrate. */
FF_MUST_USE ff_status ff_registry_migrate_to(ff_registry *r, int target,
                                             int *version, ff_error *err);

/* Migration 4's C step (registry_audit.c): gives the rows already in
 * audit, in id order, their prev_hash and row_hash, paged. Errors: as
 * ff_pq_query. */
FF_MUST_USE ff_status ff_pq_audit_chain_existing(ff_registry *r,
                                                 ff_error *err);

#endif
