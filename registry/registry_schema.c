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

/* 3: the privacy ledger, the model budgets, and each version's privacy
 * summary. Existing rows stay: the new column is NULL for versions
 * published before (no privacy recorded). NULL epsilon or budget means
 * unbounded / none; the checks keep NaN and infinities out (in
 * PostgreSQL NaN sorts above 'Infinity', so "< 'Infinity'" excludes
 * both). */
static const char *const m3_privacy[] = {
    "ALTER TABLE versions ADD COLUMN privacy jsonb",

    "CREATE TABLE privacy_ledger ("
    "  id bigserial PRIMARY KEY,"
    "  model text NOT NULL REFERENCES models (name),"
    "  round integer NOT NULL CHECK (round > 0),"
    "  site text,"
    "  status text NOT NULL CHECK (status IN ('spent', 'refused')),"
    "  mechanism text NOT NULL CHECK (mechanism IN"
    "    ('dp-sgd', 'central-gaussian', 'ddgauss', 'none')),"
    "  epsilon double precision"
    "    CHECK (epsilon >= 0 AND epsilon < 'Infinity'),"
    "  delta double precision NOT NULL CHECK (delta >= 0 AND delta <= 1),"
    "  noise_multiplier double precision"
    "    CHECK (noise_multiplier >= 0 AND noise_multiplier < 'Infinity'),"
    "  clip double precision CHECK (clip >= 0 AND clip < 'Infinity'),"
    "  sampling_rate double precision"
    "    CHECK (sampling_rate >= 0 AND sampling_rate <= 1),"
    "  steps bigint NOT NULL CHECK (steps >= 0),"
    "  budget double precision"
    "    CHECK (budget >= 0 AND budget < 'Infinity'),"
    "  reason text,"
    "  params jsonb,"
    "  at timestamptz NOT NULL DEFAULT now())",

    "CREATE INDEX privacy_ledger_model ON privacy_ledger (model, id)",

    "CREATE TABLE model_budget ("
    "  model text PRIMARY KEY REFERENCES models (name),"
    "  epsilon double precision NOT NULL"
    "    CHECK (epsilon > 0 AND epsilon < 'Infinity'),"
    "  delta double precision NOT NULL CHECK (delta > 0 AND delta < 1),"
    "  set_by text NOT NULL,"
    "  set_at timestamptz NOT NULL DEFAULT now())",
    NULL,
};

/* 4: the audit hash chain and signed heads (docs/registry.md, "The
 * audit chain"). Ids are assigned by the appender (head + 1 under the
 * chain's advisory lock), so the sequence goes. The C step chains the
 * rows already there; then the hashes become mandatory and both tables
 * append-only: a statement trigger refuses UPDATE, DELETE and TRUNCATE
 * for every role (a superuser or the owner can still disable it, which
 * is what the chain is for). */
static const char *const m4_audit_chain[] = {
    "ALTER TABLE audit ADD COLUMN prev_hash bytea, "
    "ADD COLUMN row_hash bytea",

    "ALTER TABLE audit ALTER COLUMN id DROP DEFAULT",

    "DROP SEQUENCE IF EXISTS audit_id_seq",

    "CREATE TABLE audit_head ("
    "  id bigserial PRIMARY KEY,"
    "  audit_id bigint NOT NULL,"
    "  row_hash bytea NOT NULL CHECK (octet_length(row_hash) = 32),"
    "  signature bytea NOT NULL CHECK (octet_length(signature) = 64),"
    "  signer_key bytea NOT NULL CHECK (octet_length(signer_key) = 32),"
    "  at timestamptz NOT NULL DEFAULT clock_timestamp())",

    "CREATE INDEX audit_head_signer ON audit_head (signer_key, id)",
    NULL,
};

static const char *const m4_audit_chain_after[] = {
    "ALTER TABLE audit ALTER COLUMN prev_hash SET NOT NULL, "
    "ALTER COLUMN row_hash SET NOT NULL, "
    "ADD CONSTRAINT audit_hash_sizes CHECK "
    "(octet_length(prev_hash) = 32 AND octet_length(row_hash) = 32)",

    "CREATE FUNCTION fedfuse_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', "
    "MESSAGE = format('table %s is append-only: %s refused', "
    "TG_TABLE_NAME, TG_OP), "
    "HINT = 'fedfuse audit rows are never changed or removed'; "
    "END $$",

    "CREATE TRIGGER audit_append_only "
    "BEFORE UPDATE OR DELETE OR TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION fedfuse_append_only()",

    "CREATE TRIGGER audit_head_append_only "
    "BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION fedfuse_append_only()",
    NULL,
};

/* 5: governance (docs/governance.md). Certificates issued by the
 * consortium CA, with their revocation; each version's stage (existing
 * versions become candidates) and signature; each contribution's
 * manifest digest and code version; the promotion requests and the
 * production periods. At most one production version per model and at
 * most one open production period, enforced by partial unique indexes. */
static const char *const m5_governance[] = {
    /* The consortium CA: one row at most, set by `fedfusectl ca init`. */
    "CREATE TABLE consortium_ca ("
    "  id integer PRIMARY KEY CHECK (id = 1),"
    "  name text NOT NULL,"
    "  cert_digest text NOT NULL CHECK (cert_digest ~ '^[0-9a-f]{64}$'),"
    "  created_by text NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now())",

    "CREATE TABLE certificates ("
    "  serial text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{1,64}$'),"
    "  holder text NOT NULL CHECK (holder <> ''),"
    "  role text NOT NULL"
    "    CHECK (role IN ('site', 'operator', 'auditor', 'coordinator')),"
    "  fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),"
    "  not_after timestamptz NOT NULL,"
    "  issued_by text NOT NULL,"
    "  issued_at timestamptz NOT NULL DEFAULT now(),"
    "  revoked_at timestamptz,"
    "  revoked_by text,"
    "  revoke_reason text,"
    "  CONSTRAINT certificates_revocation CHECK"
    "    ((revoked_at IS NULL) = (revoked_by IS NULL)))",

    "CREATE INDEX certificates_holder ON certificates (holder)",

    "ALTER TABLE versions "
    "ADD COLUMN stage text NOT NULL DEFAULT 'candidate' CHECK (stage IN "
    "  ('candidate', 'staged', 'production', 'archived')), "
    "ADD COLUMN signature bytea CHECK (octet_length(signature) = 64), "
    "ADD COLUMN signer_key bytea CHECK (octet_length(signer_key) = 32), "
    "ADD COLUMN signed_metadata text, "
    "ADD CONSTRAINT versions_signed CHECK "
    "  ((signature IS NULL) = (signer_key IS NULL) AND "
    "  (signed_metadata IS NULL OR signature IS NOT NULL))",

    "CREATE UNIQUE INDEX versions_one_production ON versions (model) "
    "WHERE stage = 'production'",

    "ALTER TABLE contributions "
    "ADD COLUMN manifest_digest text "
    "  CHECK (manifest_digest ~ '^[0-9a-f]{64}$'), "
    "ADD COLUMN code_version text",

    "CREATE TABLE promotions ("
    "  id bigserial PRIMARY KEY,"
    "  model text NOT NULL,"
    "  version integer NOT NULL,"
    "  to_stage text NOT NULL"
    "    CHECK (to_stage IN ('staged', 'production', 'archived')),"
    "  requested_by text NOT NULL,"
    "  approved_by text,"
    "  reason text,"
    "  allow_regression boolean NOT NULL DEFAULT false,"
    "  state text NOT NULL DEFAULT 'pending'"
    "    CHECK (state IN ('pending', 'done', 'refused')),"
    "  at timestamptz NOT NULL DEFAULT now(),"
    "  decided_at timestamptz,"
    "  FOREIGN KEY (model, version) REFERENCES versions (model, number))",

    "CREATE UNIQUE INDEX promotions_one_pending "
    "ON promotions (model, version, to_stage) WHERE state = 'pending'",

    "CREATE TABLE production_history ("
    "  id bigserial PRIMARY KEY,"
    "  model text NOT NULL,"
    "  version integer NOT NULL,"
    "  from_at timestamptz NOT NULL DEFAULT now(),"
    "  until_at timestamptz,"
    "  promoted_by text NOT NULL,"
    "  approved_by text,"
    "  how text NOT NULL CHECK (how IN ('promote', 'rollback')),"
    "  reason text,"
    "  allow_regression boolean NOT NULL DEFAULT false,"
    "  FOREIGN KEY (model, version) REFERENCES versions (model, number))",

    "CREATE UNIQUE INDEX production_history_open "
    "ON production_history (model) WHERE until_at IS NULL",
    NULL,
};

/* 6: the privacy ledger becomes append-only like the audit log (the
 * trigger function of migration 4), so that a restarted coordinator
 * cannot forget spent budget because model rows were deleted. A
 * superuser or the owner can still disable the trigger; every ledger
 * row has its privacy.spent or privacy.refused audit row, written in the
 * same transaction, and ff_registry_ledger_model_rows compares the two,
 * the audit side being hash-chained. The trigger function is replaced
 * by one whose hint names the table (same refusal otherwise). A partial
 * index serves the model's own rows, and a partial hash index (any key
 * length) the privacy audit rows of a model. */
static const char *const m6_ledger_append_only[] = {
    /* The same refusal, with a hint that names the table. */
    "CREATE OR REPLACE FUNCTION fedfuse_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', "
    "MESSAGE = format('table %s is append-only: %s refused', "
    "TG_TABLE_NAME, TG_OP), "
    "HINT = format('fedfuse %s rows are never changed or removed', "
    "TG_TABLE_NAME); "
    "END $$",

    "CREATE TRIGGER privacy_ledger_append_only "
    "BEFORE UPDATE OR DELETE OR TRUNCATE ON privacy_ledger "
    "FOR EACH STATEMENT EXECUTE FUNCTION fedfuse_append_only()",

    "CREATE INDEX privacy_ledger_model_own ON privacy_ledger (model, id) "
    "WHERE site IS NULL",

    "CREATE INDEX audit_privacy_model ON audit "
    "USING hash ((details->>'model')) "
    "WHERE site IS NULL AND action IN ('privacy.spent', 'privacy.refused')",
    NULL,
};

static const ff_migration migrations[] = {
    {1, "tables", m1_tables, NULL, NULL},
    {2, "audit and round indexes", m2_audit_indexes, NULL, NULL},
    {3, "privacy ledger and budgets", m3_privacy, NULL, NULL},
    {4, "audit hash chain and signed heads", m4_audit_chain,
     ff_pq_audit_chain_existing, m4_audit_chain_after},
    {5, "certificates, stages, signatures and promotions", m5_governance,
     NULL, NULL},
    {6, "append-only privacy ledger", m6_ledger_append_only, NULL, NULL},
};

const ff_migration *
ff_registry_migrations(size_t *count)
{
    *count = sizeof(migrations) / sizeof(migrations[0]);
    return migrations;
}
