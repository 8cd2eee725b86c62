/*
 * registry_schema.h - internal to registry/: the ordered migrations.
 */
#ifndef FF_REGISTRY_SCHEMA_H
#define FF_REGISTRY_SCHEMA_H

#include <stddef.h>

/* One schema step: its version (1, 2, ... without gaps), a short name
 * recorded in schema_migrations, and NULL-terminated SQL statements. */
typedef struct ff_migration {
    int version;
    const char *name;
    const char *const *statements;
} ff_migration;

/* The migrations in order; *count receives how many. Static storage. */
const ff_migration *ff_registry_migrations(size_t *count);

#endif
