/*
 * registry_schema.c - the registry's schema as an ordered list of
 * migrations. A migration, once released, never changes: a new need gets a
 * new migration at the end. Each is a list of single statements (the
 * extended query protocol runs one statement per call) applied in one
 * transaction by ff_registry_migrate.
 */
#include "registry_schema.h"

/* 1: the tables. */
static const char *const m1_tables[] = {
    "CREATE TABLE models ("
    "  name text PRIMARY KEY,"
    "  config jsonb NOT NULL DEFAULT '{}'::jsonb,"
    "  created_at timestamptz NOT NULL DEFAULT now())",

    "CREATE TABLE sites ("
    "  name text PRIMARY KEY,"
    "  first_seen timestamptz NOT NULL DEFAULT now(),"
    "  last_seen timestamptz NOT NULL DEFAULT now(),"
    "  details jsonb NOT NULL DEFAULT '{}'::jsonb)",

    /* One row per model: the coordinator serving it, refreshed as its
     * heartbeat. */
    "CREATE TABLE coordinator ("
    "  model text PRIMARY KEY,"
    "  state text NOT NULL,"
    "  address text,"
    "  round integer NOT NULL DEFAULT 0,"
    "  pid integer,"
    "  updated_at timestamptz NOT NULL DEFAULT now())",

    "CREATE TABLE rounds ("
    "  model text NOT NULL REFERENCES models (name),"
    "  number integer NOT NULL CHECK (number > 0),"
    "  state text NOT NULL"
    "    CHECK (state IN ('running', 'published', 'aborted')),"
    "  config jsonb NOT NULL DEFAULT '{}'::jsonb,"
    "  reason text,"
    "  started_at timestamptz NOT NULL DEFAULT now(),"
    "  finished_at timestamptz,"
    "  PRIMARY KEY (model, number))",

    /* Lineage is a chain: version n descends from n - 1, and the parent
     * must be a version of the same model. */
    "CREATE TABLE versions ("
    "  model text NOT NULL REFERENCES models (name),"
    "  number integer NOT NULL CHECK (number > 0),"
    "  parent integer,"
    "  round integer,"
    "  train_config jsonb NOT NULL DEFAULT '{}'::jsonb,"
    "  metrics jsonb NOT NULL DEFAULT '{}'::jsonb,"
    "  digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),"
    "  artifact bytea NOT NULL,"
    "  artifact_len bigint NOT NULL"
    "    CHECK (artifact_len = octet_length(artifact)),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (model, number),"
    "  CONSTRAINT versions_lineage CHECK"
    "    ((number = 1 AND parent IS NULL) OR parent = number - 1),"
    "  FOREIGN KEY (model, parent) REFERENCES versions (model, number),"
    "  FOREIGN KEY (model, round) REFERENCES rounds (model, number))",

    "CREATE TABLE contributions ("
    "  model text NOT NULL,"
    "  version integer NOT NULL,"
    "  site text NOT NULL,"
    "  examples bigint NOT NULL CHECK (examples >= 0),"
    "  PRIMARY KEY (model, version, site),"
    "  FOREIGN KEY (model, version) REFERENCES versions (model, number))",

    "CREATE TABLE audit ("
    "  id bigserial PRIMARY KEY,"
    "  at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  actor text NOT NULL,"
    "  action text NOT NULL,"
    "  site text,"
    "  details jsonb NOT NULL DEFAULT '{}'::jsonb)",
    NULL,
};

/* 2: indexes for the audit filters. The site index is a hash index
 * because audit rows keep site names as claimed, of any length, and a
 * btree entry cannot exceed about 2.7 kB. */
static const char *const m2_audit_indexes[] = {
    "CREATE INDEX audit_at ON audit (at)",
    "CREATE INDEX audit_site ON audit USING hash (site)",
    "CREATE INDEX rounds_started ON rounds (started_at)",
    NULL,
};

static const ff_migration migrations[] = {
    {1, "tables", m1_tables},
    {2, "audit and round indexes", m2_audit_indexes},
};

const ff_migration *
ff_registry_migrations(size_t *count)
{
    *count = sizeof(migrations) / sizeof(migrations[0]);
    return migrations;
}
