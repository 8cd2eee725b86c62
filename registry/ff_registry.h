/*
 * ff_registry.h - the registry in PostgreSQL: sites, rounds, model versions
 * with lineage, and the audit log. The only module that talks to libpq.
 *
 * Every query is parameterised. Rounds and versions are written inside
 * transactions: a crash leaves either the whole version or none of it.
 *
 * One ff_registry holds one connection and a mutex; its functions may be
 * called from several threads.
 */
#ifndef FF_REGISTRY_H
#define FF_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../common/ff_status.h"

typedef struct ff_registry ff_registry;

/* Most bytes a stored artifact may have. */
#define FF_REGISTRY_MAX_ARTIFACT (256u * 1024u * 1024u)

/* Connects with a libpq conninfo string ("host=/tmp/x dbname=fedfuse").
 * Errors: FF_ERR_DB (message from the server, never the password). */
FF_MUST_USE ff_status ff_registry_open(ff_registry **out, const char *conninfo,
                                       ff_error *err);

/* Closes the connection and frees r. Accepts NULL. */
void ff_registry_close(ff_registry *r);

/* Applies every migration newer than the database's schema version, each in
 * its own transaction; returns the resulting version in *version (may be
 * NULL). Safe to run concurrently from several processes (advisory lock).
 * Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_migrate(ff_registry *r, int *version,
                                          ff_error *err);

/* Appends an audit row. actor: who acted ("coordinator", "site:NAME",
 * "operator:NAME"); site may be NULL; details is a JSON object (borrowed,
 * may be NULL). Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_audit(ff_registry *r, const char *actor,
                                        const char *action, const char *site,
                                        json_t *details, ff_error *err);

/* Creates the model if it does not exist, with its architecture config
 * (borrowed JSON). Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_model_ensure(ff_registry *r,
                                               const char *model,
                                               json_t *config, ff_error *err);

/* Records (or refreshes) a site's registration with its details (JSON:
 * modalities, example count, code version) and audits it.
 * Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_site_register(ff_registry *r,
                                                const char *site,
                                                json_t *details,
                                                ff_error *err);

/* Records the coordinator's state for `fedfusectl status`: state word,
 * listening address, current round (0 when none). Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_coordinator_state(ff_registry *r,
                                                    const char *model,
                                                    const char *state,
                                                    const char *address,
                                                    int round, ff_error *err);

/* Starts round `round` of model with its training config (JSON) and the
 * sites selected; audits "round.started". Errors: FF_ERR_DB, FF_ERR_STATE
 * (round already exists and is finished). */
FF_MUST_USE ff_status ff_registry_round_start(ff_registry *r,
                                              const char *model, int round,
                                              json_t *config, ff_error *err);

/* Marks a round aborted with a reason and audits it. Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_round_abort(ff_registry *r,
                                              const char *model, int round,
                                              const char *reason,
                                              ff_error *err);

/* One contributing site of a version. */
typedef struct ff_contribution {
    const char *site;
    int64_t examples;
} ff_contribution;

/* A version to publish. All pointers borrowed. */
typedef struct ff_version_new {
    const char *model;
    int round;
    int parent;                 /* 0 when this is the first version */
    const ff_contribution *contributions;
    size_t n_contributions;
    json_t *train_config;       /* training configuration */
    json_t *metrics;            /* test metrics */
    const uint8_t *artifact;
    size_t artifact_len;
    const char *digest_hex;     /* BLAKE2b-256 of artifact, 64 hex chars */
} ff_version_new;

/* In one transaction: inserts the version (number = parent's + 1, or 1),
 * its contributions, marks the round finished, and audits
 * "version.published" and "round.finished". *version receives the number.
 * Errors: FF_ERR_DB, FF_ERR_TOO_LARGE, FF_ERR_STATE (parent is not the
 * model's latest version: nothing is written). */
FF_MUST_USE ff_status ff_registry_version_publish(ff_registry *r,
                                                  const ff_version_new *v,
                                                  int *version, ff_error *err);

/* The latest version of model: its number, round and artifact (malloc'd,
 * caller frees). *version = 0 and *artifact = NULL when none exists.
 * The artifact's digest is checked against the stored one.
 * Errors: FF_ERR_DB, FF_ERR_DIGEST. */
FF_MUST_USE ff_status ff_registry_version_latest(ff_registry *r,
                                                 const char *model,
                                                 int *version, int *round,
                                                 uint8_t **artifact,
                                                 size_t *len, ff_error *err);

/* The last round number recorded for model (any state), 0 when none.
 * Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_round_last(ff_registry *r,
                                             const char *model, int *round,
                                             ff_error *err);

/* --- queries for the admin CLI; each returns a new JSON value the caller
 * decrefs. Errors: FF_ERR_DB, FF_ERR_NOT_FOUND. --- */

/* {"coordinator": {...} or null, "sites": [...], "rounds": [...last 5]} */
FF_MUST_USE ff_status ff_registry_status(ff_registry *r, json_t **out,
                                         ff_error *err);

/* [{"name", "created_at", "versions", "latest"}...] */
FF_MUST_USE ff_status ff_registry_models(ff_registry *r, json_t **out,
                                         ff_error *err);

/* Versions of model, oldest first, each with parent, round, created_at,
 * digest, metrics, contributions. */
FF_MUST_USE ff_status ff_registry_versions(ff_registry *r, const char *model,
                                           json_t **out, ff_error *err);

/* One version in full (no artifact bytes; artifact_len instead). */
FF_MUST_USE ff_status ff_registry_version_show(ff_registry *r,
                                               const char *model, int version,
                                               json_t **out, ff_error *err);

/* The artifact bytes and stored digest of one version (malloc'd).
 * Errors: FF_ERR_DB, FF_ERR_NOT_FOUND. */
FF_MUST_USE ff_status ff_registry_version_artifact(ff_registry *r,
                                                   const char *model,
                                                   int version,
                                                   uint8_t **artifact,
                                                   size_t *len,
                                                   char digest_hex[65],
                                                   ff_error *err);

/* Filter for audit queries; NULL fields match anything. Times are
 * ISO 8601 strings as PostgreSQL accepts them. */
typedef struct ff_audit_filter {
    const char *site;
    const char *action;   /* exact, or a prefix ending in '*' ("round.*") */
    const char *since;
    const char *until;
    long limit;           /* <= 0: no limit */
} ff_audit_filter;

/* Audit rows matching f, oldest first: [{"id","time","actor","action",
 * "site","details"}...]. Errors: FF_ERR_DB, FF_ERR_ARG (bad time). */
FF_MUST_USE ff_status ff_registry_audit_query(ff_registry *r,
                                              const ff_audit_filter *f,
                                              json_t **out, ff_error *err);

#endif
