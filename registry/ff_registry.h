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

/* Most bytes of a model or site name (they are index keys). Longer names
 * are refused with FF_ERR_ARG; audit rows keep any length. */
#define FF_REGISTRY_MAX_NAME 200u

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

/* Reads the database's schema version without changing it: *current (0
 * for a database never migrated) and *latest, the version this code
 * migrates to. Either pointer may be NULL. Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_schema_version(ff_registry *r,
                                                 int *current, int *latest,
                                                 ff_error *err);

/* Writes the BLAKE2b-256 of data (libsodium crypto_generichash, 32 bytes)
 * as 64 lower-case hex characters and a NUL into hex. Cannot fail. */
void ff_registry_digest(const uint8_t *data, size_t len, char hex[65]);

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
 * modalities, example count, code version) and audits "site.registered"
 * (actor "site:NAME"), in one transaction.
 * Errors: FF_ERR_DB, FF_ERR_ARG (empty name or longer than
 * FF_REGISTRY_MAX_NAME). */
FF_MUST_USE ff_status ff_registry_site_register(ff_registry *r,
                                                const char *site,
                                                json_t *details,
                                                ff_error *err);

/* Refreshes a registered site's last_seen (call it on each request).
 * Errors: FF_ERR_DB, FF_ERR_ARG (bad name), FF_ERR_NOT_FOUND (the site
 * never registered). */
FF_MUST_USE ff_status ff_registry_site_seen(ff_registry *r, const char *site,
                                            ff_error *err);

/* Records the coordinator's state for `fedfusectl status`: state word,
 * listening address, current round (0 when none), and the calling
 * process's pid. One row per model; each call refreshes its updated_at,
 * which `status` shows as the heartbeat's age, so call it periodically.
 * Errors: FF_ERR_DB, FF_ERR_ARG. */
FF_MUST_USE ff_status ff_registry_coordinator_state(ff_registry *r,
                                                    const char *model,
                                                    const char *state,
                                                    const char *address,
                                                    int round, ff_error *err);

/* First key of the advisory locks that claim a model (the second is
 * hashtext(model)); "ffmc" in ASCII. */
#define FF_REGISTRY_CLAIM_NAMESPACE 0x66666d63

/* Claims model for this registry handle, so that two coordinators cannot
 * serve the same model on one database: takes a session-level
 * pg_try_advisory_lock(FF_REGISTRY_CLAIM_NAMESPACE, hashtext(model)),
 * held until the handle is closed. When the connection is lost and
 * re-established, the next call on r takes the claim again, or fails
 * with FF_ERR_STATE while someone else holds it. Claiming the same model
 * again is a no-op; a handle claims one model at most. A claim held
 * elsewhere is tried again for up to FF_REGISTRY_CLAIM_WAIT_MS before the
 * refusal: the server frees the lock of a closed or killed session only
 * once its backend has exited, a moment later.
 * Errors: FF_ERR_STATE ("model X is already served by another coordinator
 * (pid N)", N from the coordinator table when it has a row; or r already
 * claims another model), FF_ERR_ARG (bad name), FF_ERR_DB, FF_ERR_NOMEM.
 * Thread-safe. */
#define FF_REGISTRY_CLAIM_WAIT_MS 2000

FF_MUST_USE ff_status ff_registry_model_claim(ff_registry *r,
                                              const char *model,
                                              ff_error *err);

/* Starts round `round` (>= 1) of model with its training config (JSON,
 * put the selected sites in it); audits "round.started". Starting a round
 * that is still running refreshes it (a restarted coordinator resumes).
 * Errors: FF_ERR_DB, FF_ERR_ARG, FF_ERR_STATE (round already exists and
 * is finished), FF_ERR_NOT_FOUND (model not created). */
FF_MUST_USE ff_status ff_registry_round_start(ff_registry *r,
                                              const char *model, int round,
                                              json_t *config, ff_error *err);

/* Marks a running round aborted with a reason (borrowed, may be NULL) and
 * audits "round.aborted". Errors: FF_ERR_DB, FF_ERR_NOT_FOUND (no such
 * round), FF_ERR_STATE (the round already finished). */
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
    int round;                  /* a running round, or 0 for none (an
                                   initial or imported version) */
    int parent;                 /* 0 when this is the first version */
    const ff_contribution *contributions;
    size_t n_contributions;
    json_t *train_config;       /* training configuration */
    json_t *metrics;            /* test metrics */
    const uint8_t *artifact;
    size_t artifact_len;
    const char *digest_hex;     /* BLAKE2b-256 of artifact, 64 hex chars */
} ff_version_new;

/* Checks digest_hex against the artifact, then in one transaction: locks
 * the model's row (concurrent publishers queue), inserts the version
 * (number = parent + 1), its contributions, marks the round published, and
 * audits "version.published" and "round.finished" (the latter only when
 * round > 0). *version (may be NULL) receives the number, 0 on error.
 * Errors: FF_ERR_DB, FF_ERR_TOO_LARGE, FF_ERR_ARG (bad name, malformed
 * digest, negative examples), FF_ERR_DIGEST (digest_hex is not the
 * artifact's BLAKE2b-256), FF_ERR_NOT_FOUND (model not created),
 * FF_ERR_STATE (parent is not the model's latest version, the round is
 * not running, or a site appears twice). On any error nothing is
 * written. */
FF_MUST_USE ff_status ff_registry_version_publish(ff_registry *r,
                                                  const ff_version_new *v,
                                                  int *version, ff_error *err);

/* The latest version of model: its number, round (0 for none) and
 * artifact (malloc'd, caller frees). *version = 0 and *artifact = NULL
 * when none exists. The artifact's digest is recomputed and checked
 * against the stored one; on mismatch nothing is returned.
 * Errors: FF_ERR_DB, FF_ERR_DIGEST, FF_ERR_TOO_LARGE, FF_ERR_NOMEM. */
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

/* {"now", "coordinator": {...} (the most recently updated) or null,
 *  "coordinators": [...one per model], "sites": [...],
 *  "current_rounds": [...running], "rounds": [...last 5 started]}.
 * Ages (heartbeat_age_s, last_seen_age_s, age_s) are computed by the
 * server in seconds. Times are ISO 8601 in UTC. */
FF_MUST_USE ff_status ff_registry_status(ff_registry *r, json_t **out,
                                         ff_error *err);

/* [{"name", "created_at", "versions", "latest"}...] */
FF_MUST_USE ff_status ff_registry_models(ff_registry *r, json_t **out,
                                         ff_error *err);

/* Versions of model, oldest first: [{"version", "parent", "round",
 * "created_at", "digest", "artifact_len", "train_config", "metrics",
 * "sites", "examples", "contributions": [{"site", "examples"}]}...].
 * parent and round are null when absent. FF_ERR_NOT_FOUND: no such
 * model. */
FF_MUST_USE ff_status ff_registry_versions(ff_registry *r, const char *model,
                                           json_t **out, ff_error *err);

/* One version in full (no artifact bytes; artifact_len instead): the
 * fields of ff_registry_versions plus "model", "model_config",
 * "round_state", "round_config", "round_started_at",
 * "round_finished_at". FF_ERR_NOT_FOUND: no such model or version. */
FF_MUST_USE ff_status ff_registry_version_show(ff_registry *r,
                                               const char *model, int version,
                                               json_t **out, ff_error *err);

/* The artifact bytes (malloc'd, caller frees) and stored digest of one
 * version, NOT checked against each other: the caller verifies.
 * Errors: FF_ERR_DB, FF_ERR_NOT_FOUND, FF_ERR_TOO_LARGE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_registry_version_artifact(ff_registry *r,
                                                   const char *model,
                                                   int version,
                                                   uint8_t **artifact,
                                                   size_t *len,
                                                   char digest_hex[65],
                                                   ff_error *err);

/* Filter for audit queries; NULL fields match anything. Times are
 * ISO 8601 strings as PostgreSQL accepts them (UTC unless they name a
 * zone); since is inclusive, until exclusive. */
typedef struct ff_audit_filter {
    const char *site;
    const char *action;   /* exact, or a prefix ending in '*' ("round.*") */
    const char *since;
    const char *until;
    long limit;           /* <= 0: no limit; else the newest `limit` */
} ff_audit_filter;

/* Audit rows matching f, oldest first: [{"id","time","actor","action",
 * "site","details"}...]. Errors: FF_ERR_DB, FF_ERR_ARG (bad time). */
FF_MUST_USE ff_status ff_registry_audit_query(ff_registry *r,
                                              const ff_audit_filter *f,
                                              json_t **out, ff_error *err);

#endif
