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
 * may be NULL). The row joins the hash chain (docs/registry.md, "The
 * audit chain"): in its own transaction it takes the chain's advisory
 * lock, gets id = head + 1 and prev_hash = the head's row_hash, and
 * stores its row_hash. Every audit row the registry writes, here or
 * inside another transaction, goes through the same internal append.
 * Errors: FF_ERR_DB, FF_ERR_ARG (no actor or action, invalid UTF-8).
 * Thread-safe. */
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
    const char *manifest_digest; /* hex, as the site reported; may be NULL */
    const char *code_version;    /* the site's; may be NULL */
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
    json_t *privacy;            /* may be NULL (stored as NULL), else an
                                   object (FF_ERR_ARG otherwise), stored
                                   as is: {"record_epsilon" (largest
                                   cumulative record-level epsilon of the
                                   contributing sites, or null),
                                   "site_epsilon" (the model's site-level
                                   epsilon, or null when unbounded),
                                   "delta", "site_mechanism", ...} */
    const uint8_t *signature;   /* FF_REGISTRY_SIG_BYTES: the coordinator's
                                   Ed25519 signature over the version
                                   (ff_trust_model_sign), stored as given;
                                   NULL: unsigned */
    const uint8_t *signer_key;  /* FF_REGISTRY_KEY_BYTES: the public key
                                   that made it; NULL exactly when
                                   signature is */
    const char *signed_metadata; /* the metadata JSON text the signature
                                   covers, byte for byte; NULL when
                                   unsigned (FF_ERR_ARG when given without
                                   a signature) */
} ff_version_new;

/* Bytes of a version's Ed25519 signature and of its signer's key. */
#define FF_REGISTRY_SIG_BYTES 64
#define FF_REGISTRY_KEY_BYTES 32

/* Most bytes of a contribution's code version or a version's signed
 * metadata. */
#define FF_REGISTRY_MAX_CODE_VERSION 200u
#define FF_REGISTRY_MAX_METADATA (1024u * 1024u)

/* Checks digest_hex against the artifact, then in one transaction: locks
 * the model's row (concurrent publishers queue), inserts the version
 * (number = parent + 1, stage "candidate") with its signature, its
 * contributions (with manifest digests and code versions), marks the round
 * published, and audits "version.published" and "round.finished" (the
 * latter only when round > 0). The signature is stored, not verified:
 * the registry does not know the signed message (trust/ does).
 * *version (may be NULL) receives the number, 0 on error.
 * Errors: FF_ERR_DB, FF_ERR_TOO_LARGE (artifact or metadata), FF_ERR_ARG
 * (bad name, malformed digest or manifest digest, negative examples, a
 * signature without its key or the reverse, metadata without a
 * signature, a code version too long), FF_ERR_DIGEST (digest_hex is not
 * the artifact's BLAKE2b-256), FF_ERR_NOT_FOUND (model not created),
 * FF_ERR_STATE (parent is not the model's latest version, the round is
 * not running, or a site appears twice). On any error nothing is
 * written. */
FF_MUST_USE ff_status ff_registry_version_publish(ff_registry *r,
                                                  const ff_version_new *v,
                                                  int *version, ff_error *err);

/* --- the privacy ledger and budgets (docs/privacy-accounting.md) --- */

/* One ledger entry: what one round spent, or refused to spend, for one
 * site (record level, as the site reported it) or for the model itself
 * (site level, as the coordinator accounted it). Pointers borrowed. */
typedef struct ff_ledger_entry {
    const char *model;
    int round;                  /* >= 1 */
    const char *site;           /* NULL: the model's own entry */
    const char *status;         /* "spent" or "refused" */
    const char *mechanism;      /* "dp-sgd", "central-gaussian",
                                   "ddgauss" or "none" */
    double epsilon;             /* cumulative after this round (for a
                                   refusal: what the round would have
                                   brought); INFINITY = unbounded */
    double delta;
    double noise_multiplier;    /* NAN when not applicable */
    double clip;
    double sampling_rate;
    int64_t steps;              /* compositions in this round */
    double budget;              /* epsilon budget in force; INFINITY: none */
    const char *reason;         /* for a refusal; may be NULL */
    json_t *params;             /* may be NULL: mechanism details that let
                                   the coordinator recompute its accountant
                                   after a restart */
} ff_ledger_entry;

/* Appends e and, in the same transaction, audits "privacy.spent" or
 * "privacy.refused" (actor "coordinator", the site when set; details:
 * model, round, mechanism, epsilon, delta, budget, steps, reason).
 * Infinite epsilon and budget are stored as NULL, as are NAN noise
 * multiplier, clip and sampling rate. Checked before anything is written:
 * names (FF_REGISTRY_MAX_NAME; site NULL or non-empty), round >= 1,
 * status, mechanism, epsilon and budget >= 0 or INFINITY, delta in
 * [0, 1], steps >= 0, noise multiplier and clip NAN or finite >= 0,
 * sampling rate NAN or in [0, 1], params NULL or an object.
 * Errors: FF_ERR_ARG (naming the field), FF_ERR_NOT_FOUND (model not
 * created), FF_ERR_DB. On any error nothing is written. Thread-safe. */
FF_MUST_USE ff_status ff_registry_ledger_add(ff_registry *r,
                                             const ff_ledger_entry *e,
                                             ff_error *err);

/* The whole ledger of model, oldest first, in one JSON document: memory
 * and time grow with every row of every site, so use it only for small
 * ledgers (tests); fedfusectl pages with ff_registry_ledger_page and the
 * coordinator needs only ff_registry_ledger_model_rows.
 * {"model", "budget": {"epsilon",
 * "delta", "set_by", "set_at"} or null, "entries": [{"round", "site"
 * (null for the model), "status", "mechanism", "epsilon" (null =
 * unbounded), "delta", "noise_multiplier" (null: not applicable),
 * "clip", "sampling_rate", "steps", "budget" (null: none), "reason",
 * "params", "at"}]}. Numbers read back as the doubles written (a whole
 * number may come back as a JSON integer: read with json_number_value).
 * *out is new, caller decrefs. Errors: FF_ERR_DB, FF_ERR_NOT_FOUND (no
 * such model). */
FF_MUST_USE ff_status ff_registry_ledger(ff_registry *r, const char *model,
                                         json_t **out, ff_error *err);

/* Most rows one ledger page may ask for. */
#define FF_REGISTRY_LEDGER_PAGE_MAX 10000

/* Most sites (the model counting as one) a ledger summary lists. */
#define FF_REGISTRY_LEDGER_SUMMARY_MAX 10000

/* Which rows of a model's ledger one page holds: rows with an id above
 * after_id, oldest first, at most `limit`; or, with `newest`, the newest
 * `limit` rows (after_id must then be 0), still oldest first. */
typedef struct ff_ledger_page {
    int64_t after_id;   /* >= 0; 0: from the first row */
    int newest;         /* 1: the tail of the ledger */
    int limit;          /* 1 .. FF_REGISTRY_LEDGER_PAGE_MAX */
} ff_ledger_page;

/* One page of the ledger of model (p borrowed): {"model", "budget" (as
 * ff_registry_ledger), "entries": [the members of ff_registry_ledger's
 * entries and "id", the row's id, increasing]} and, when p->newest,
 * "total", the number of rows the model has. To read the whole ledger
 * in bounded memory, start with after_id 0 and pass the last entry's id
 * as after_id until a page holds fewer than limit entries. Each page is
 * one query: rows appended between pages show up in a later page.
 * *out is new, caller decrefs (NULL on error). Errors: FF_ERR_ARG (bad
 * name, limit or after_id), FF_ERR_NOT_FOUND (no such model), FF_ERR_DB.
 * Thread-safe. */
FF_MUST_USE ff_status ff_registry_ledger_page(ff_registry *r,
                                              const char *model,
                                              const ff_ledger_page *p,
                                              json_t **out, ff_error *err);

/* The ledger of model summed up per site, in one query whatever its
 * length: {"model", "budget", "total" (rows), "site_count" (distinct
 * sites, the model counting as one), "sites": [{"site" (null: the
 * model's own rows, listed first; then by name), "rows", "spent",
 * "refused", "first_round", "last_round", "last_status", "epsilon",
 * "delta", "mechanism", "at" (of the newest "spent" row: the cumulative
 * epsilon, null when unbounded; all null when spent is 0), "budget" (of
 * the newest row)}]}, at most FF_REGISTRY_LEDGER_SUMMARY_MAX sites
 * (site_count says how many there are). *out is new, caller decrefs.
 * Errors: FF_ERR_ARG (bad name), FF_ERR_NOT_FOUND, FF_ERR_DB.
 * Thread-safe. */
FF_MUST_USE ff_status ff_registry_ledger_summary(ff_registry *r,
                                                 const char *model,
                                                 json_t **out,
                                                 ff_error *err);

/* The model's own ledger rows (site NULL), all of them, oldest first, as
 * the coordinator needs to rebuild its accountant: {"model", "budget",
 * "entries": [as ff_registry_ledger_page], "audited": the number of
 * privacy.spent and privacy.refused audit rows of the model with site
 * NULL}. Read in one snapshot, and checked first against those audit
 * rows (which are hash-chained: `fedfusectl audit verify`): each audit
 * row must have its ledger row (same round and status, paired in id
 * order) with the same mechanism, epsilon, delta, steps and budget, and
 * each ledger row its audit row. This catches model rows deleted or
 * changed with the append-only trigger disabled. Memory grows with the
 * model's rounds, not with its sites' rows. *out is new, caller decrefs
 * (NULL on error). Errors: FF_ERR_DIGEST (the two disagree; the message
 * names the first round and what is wrong: "round 7: the model's spent
 * row is missing from the privacy ledger (audit row 41)"), FF_ERR_ARG
 * (bad name), FF_ERR_NOT_FOUND (no such model), FF_ERR_DB. Thread-safe. */
FF_MUST_USE ff_status ff_registry_ledger_model_rows(ff_registry *r,
                                                    const char *model,
                                                    json_t **out,
                                                    ff_error *err);

/* Sets (or replaces) the model's site-level budget (epsilon > 0 finite,
 * delta in (0, 1)) and, in the same transaction, audits
 * "privacy.budget_set" by actor (non-empty; details: model, epsilon,
 * delta, "previous" budget or null). Errors: FF_ERR_ARG, FF_ERR_NOT_FOUND
 * (no such model), FF_ERR_DB; nothing written on error. */
FF_MUST_USE ff_status ff_registry_budget_set(ff_registry *r,
                                             const char *model,
                                             double epsilon, double delta,
                                             const char *actor,
                                             ff_error *err);

/* The model's budget: *found = 0 when none is set or the model does not
 * exist (epsilon, delta then untouched). Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_budget_get(ff_registry *r,
                                             const char *model,
                                             double *epsilon, double *delta,
                                             int *found, ff_error *err);

/* --- enrolment and stages (docs/governance.md) --- */

/* Records the consortium CA, once: its name and the BLAKE2b-256 (hex, as
 * ff_registry_digest) of its certificate file's bytes, audited
 * "ca.created" by actor in the same transaction. fedfusectl checks every
 * CA file it is given against it. Errors: FF_ERR_ARG, FF_ERR_STATE (a CA
 * is already recorded), FF_ERR_DB. Thread-safe. */
FF_MUST_USE ff_status ff_registry_ca_set(ff_registry *r, const char *name,
                                         const char *cert_digest,
                                         const char *actor, ff_error *err);

/* The consortium CA: *found = 0 when none is recorded; else its
 * certificate digest (65 bytes with the NUL) and name (cap bytes, cut).
 * Errors: FF_ERR_DB. Thread-safe. */
FF_MUST_USE ff_status ff_registry_ca_get(ff_registry *r, int *found,
                                         char cert_digest[65], char *name,
                                         size_t cap, ff_error *err);

/* Records a certificate issued to a site, operator, auditor or the
 * coordinator (holder = its CN; role by name: "site", "operator",
 * "auditor", "coordinator"; serial and fingerprint lower-case hex as in
 * ff_trust_cert_info; not_after in Unix seconds) and, in the same
 * transaction, audits "cert.issued" by actor ("operator:NAME"; site =
 * holder for a site). All strings borrowed. Errors: FF_ERR_ARG (naming
 * the field: bad holder, role, serial, fingerprint, empty actor),
 * FF_ERR_STATE (serial already recorded), FF_ERR_DB; nothing written on
 * error. Thread-safe. */
FF_MUST_USE ff_status ff_registry_cert_add(ff_registry *r, const char *holder,
                                           const char *role,
                                           const char *serial,
                                           const char *fingerprint,
                                           int64_t not_after,
                                           const char *actor, ff_error *err);

/* Revokes every unrevoked certificate of holder (or only `serial` when not
 * NULL) with a reason (non-empty), recording when, by whom (actor) and
 * why, and audits "cert.revoked" (details: holder, serials, reason) in the
 * same transaction. Errors: FF_ERR_ARG, FF_ERR_NOT_FOUND (holder has no
 * such certificate), FF_ERR_STATE (all of them already revoked),
 * FF_ERR_DB; nothing written on error. Thread-safe. */
FF_MUST_USE ff_status ff_registry_cert_revoke(ff_registry *r,
                                              const char *holder,
                                              const char *serial,
                                              const char *reason,
                                              const char *actor,
                                              ff_error *err);

/* Whether the certificate `serial` of holder may act: *ok = 1 when it was
 * recorded by ff_registry_cert_add for this holder, is not revoked and
 * has not expired; otherwise *ok = 0 and why (cap bytes, may be NULL when
 * cap is 0) says "unknown certificate SERIAL", "certificate SERIAL belongs
 * to OTHER", "revoked at TIME by ACTOR: REASON" or "expired at TIME".
 * Reads only. Errors: FF_ERR_DB. Thread-safe. */
FF_MUST_USE ff_status ff_registry_cert_check(ff_registry *r,
                                             const char *holder,
                                             const char *serial, int *ok,
                                             char *why, size_t cap,
                                             ff_error *err);

/* The certificates recorded, newest first; role (may be NULL: all) and
 * holder (may be NULL) filter. [{"holder", "role", "serial",
 * "fingerprint", "not_after", "issued_by", "issued_at", "revoked_at",
 * "revoked_by", "revoke_reason", "state": "active" | "revoked" |
 * "expired"}]. *out is new, caller decrefs. Errors: FF_ERR_DB. */
FF_MUST_USE ff_status ff_registry_certs(ff_registry *r, const char *role,
                                        const char *holder, json_t **out,
                                        ff_error *err);

/* The production version of model (*version = 0, everything else NULL or
 * 0 when none) with its artifact (malloc'd, caller frees; the digest is
 * rechecked as version_latest does, nothing returned on mismatch), its
 * signature and signer key (copied into the caller's arrays when
 * *is_signed = 1) and its signed metadata (malloc'd text, caller frees;
 * NULL and *is_signed = 0 when the version is unsigned). Errors:
 * FF_ERR_DB, FF_ERR_DIGEST, FF_ERR_TOO_LARGE, FF_ERR_NOMEM. Thread-safe. */
FF_MUST_USE ff_status ff_registry_version_production(ff_registry *r,
                                                     const char *model,
                                                     int *version,
                                                     uint8_t **artifact,
                                                     size_t *len,
                                                     uint8_t signature[64],
                                                     uint8_t signer_key[32],
                                                     char **signed_metadata,
                                                     int *is_signed,
                                                     ff_error *err);

/* What a promotion call did. */
typedef enum ff_promotion_result {
    FF_PROMOTION_DONE = 1,     /* the version is now in the asked stage */
    FF_PROMOTION_PENDING = 2   /* recorded; waits for a second operator */
} ff_promotion_result;

/* A promotion request. All pointers borrowed. */
typedef struct ff_promotion {
    const char *model;
    int version;
    const char *to_stage;      /* "staged", "production" or "archived" */
    const char *actor;         /* "operator:NAME" */
    const char *reason;        /* may be NULL */
    int allow_regression;      /* production: pass the accuracy gate */
} ff_promotion;

/*
 * Moves a version between stages (candidate -> staged -> production ->
 * archived; docs/governance.md), each step in one transaction with its
 * audit row, the model's row locked so that promotions of one model
 * queue.
 *
 * To "staged" or "archived": done at once by one operator (audited
 * "version.promoted"); the production version cannot be moved this way
 * (promote another one, or roll back).
 *
 * To "production" it takes two different operators. When no request for
 * this version is pending, the call records one (promotions row, audited
 * "promotion.requested") and *result = FF_PROMOTION_PENDING. When one is
 * pending, the call approves it as ff_registry_version_approve does.
 *
 * The accuracy gate: metrics.accuracy of the version must be at least
 * that of the current production version (when there is one and it has an
 * accuracy), unless allow_regression, which is recorded on the request
 * and in the audit row. It is applied when the request is made and again
 * when it is approved. A refusal by the gate is committed (the request
 * row with state "refused", audited "promotion.refused") and then
 * returned as FF_ERR_STATE with both accuracies in the message.
 *
 * Errors: FF_ERR_ARG (bad name, stage, version or actor), FF_ERR_NOT_FOUND
 * (no such model or version), FF_ERR_STATE (already in that stage, moving
 * the production version, the same operator approving, the gate),
 * FF_ERR_DB. Thread-safe.
 */
FF_MUST_USE ff_status ff_registry_version_promote(ff_registry *r,
                                                  const ff_promotion *p,
                                                  ff_promotion_result *result,
                                                  ff_error *err);

/*
 * Approves the pending request to put model's version into production, as
 * actor, who must not be the operator who requested it (FF_ERR_STATE
 * "... requested by operator:X; a second, different operator must
 * approve"). Applies the accuracy gate again (allow_regression here or on
 * the request passes it). On success, in one transaction: the previous
 * production version becomes "archived" and its production period ends;
 * the version becomes "production" with a new period (promoted by the
 * requester, approved by actor, with the request's reason); the request is
 * marked "done"; audited "version.promoted" by actor with requested_by,
 * approved_by, previous version and both accuracies. Errors: FF_ERR_ARG,
 * FF_ERR_NOT_FOUND (no such model or version, or nothing pending),
 * FF_ERR_STATE, FF_ERR_DB. Thread-safe.
 */
FF_MUST_USE ff_status ff_registry_version_approve(ff_registry *r,
                                                  const char *model,
                                                  int version,
                                                  const char *actor,
                                                  int allow_regression,
                                                  ff_error *err);

/*
 * Rolls model back, one step by one operator: target (0: the version that
 * was in production before the current one) becomes "production" again,
 * the current one "archived"; the current period ends and a new one starts
 * (how "rollback", by actor, with reason), audited "version.rolled_back",
 * all in one transaction. The target must have been in production before
 * (anything else needs a promotion and its second operator). *restored
 * (may be NULL) receives the target. Errors: FF_ERR_ARG (bad name, empty
 * reason or actor, negative target), FF_ERR_NOT_FOUND (no such model or
 * version), FF_ERR_STATE (no production version, nothing earlier, the
 * target is current or was never in production), FF_ERR_DB. Thread-safe.
 */
FF_MUST_USE ff_status ff_registry_rollback(ff_registry *r, const char *model,
                                           int target, const char *actor,
                                           const char *reason, int *restored,
                                           ff_error *err);

/* The production history of model: {"model", "production" (the current
 * version or null), "periods": [{"version", "from", "until" (null while
 * current), "how" ("promote" | "rollback"), "promoted_by", "approved_by"
 * (null for a rollback), "reason", "allow_regression"}] oldest first,
 * "requests": [{"version", "to_stage", "requested_by", "approved_by",
 * "reason", "allow_regression", "state", "at", "decided_at"}] oldest
 * first}. *out is new, caller decrefs. Errors: FF_ERR_DB,
 * FF_ERR_NOT_FOUND (no such model). */
FF_MUST_USE ff_status ff_registry_history(ff_registry *r, const char *model,
                                          json_t **out, ff_error *err);

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
 * "privacy", "stage", "signed", "signature", "signer_key" (hex),
 * "signed_metadata" (text), "sites", "examples", "contributions":
 * [{"site", "examples", "manifest_digest", "code_version"}]}...]. parent
 * and round are null when absent, privacy when the version was published
 * without one, signature, signer_key and signed_metadata when unsigned,
 * manifest_digest and code_version when not reported. Needs schema 5.
 * FF_ERR_NOT_FOUND: no such model. */
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
    const char *actor;    /* exact, or a prefix ending in '*' */
    const char *model;    /* details->>'model', exact */
    const char *version;  /* details->>'version', exact ("3") */
} ff_audit_filter;

/* Audit rows matching f, oldest first: [{"id","time","actor","action",
 * "site","details"}...]. Errors: FF_ERR_DB, FF_ERR_ARG (bad time). */
FF_MUST_USE ff_status ff_registry_audit_query(ff_registry *r,
                                              const ff_audit_filter *f,
                                              json_t **out, ff_error *err);

/* --- the audit chain (docs/registry.md, "The audit chain") --- */

/* Bytes of a row hash (BLAKE2b-256), an Ed25519 public key and
 * signature. */
#define FF_AUDIT_HASH_BYTES 32
#define FF_AUDIT_KEY_BYTES 32
#define FF_AUDIT_SIG_BYTES 64

/* Domain tags: the first field of a row's canonical encoding, and the
 * prefix of a signed head's message. */
#define FF_AUDIT_ROW_TAG "fedfuse-audit-row-v1"
#define FF_AUDIT_HEAD_TAG "fedfuse-audit-head-v1"

/* Computes a row's hash: BLAKE2b-256 of prev (32 bytes) followed by the
 * canonical encoding F(FF_AUDIT_ROW_TAG) F(id in decimal) F(at) F(actor)
 * F(action) F(site) F(details), where F(s) is the byte length of s as
 * 8 bytes big-endian followed by the bytes of s, and F(NULL) is eight
 * 0xff bytes. at is the canonical time "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"
 * (UTC, microseconds); details the canonical JSON text (PostgreSQL's
 * jsonb output). site may be NULL; the rest are NUL-terminated. Cannot
 * fail; thread-safe. */
void ff_registry_audit_row_hash(const uint8_t prev[FF_AUDIT_HASH_BYTES],
                                int64_t id, const char *at,
                                const char *actor, const char *action,
                                const char *site, const char *details,
                                uint8_t out[FF_AUDIT_HASH_BYTES]);

/* Writes a signed head's message into msg: FF_AUDIT_HEAD_TAG (21 bytes,
 * no NUL), audit_id as 8 bytes big-endian, row_hash (32 bytes): 61
 * bytes, returned. Cannot fail. */
#define FF_AUDIT_HEAD_MSG_BYTES (sizeof(FF_AUDIT_HEAD_TAG) - 1 + 8 + 32)
size_t ff_registry_audit_head_message(
    int64_t audit_id, const uint8_t row_hash[FF_AUDIT_HASH_BYTES],
    uint8_t msg[FF_AUDIT_HEAD_MSG_BYTES]);

/* One audit row as stored, for ff_registry_audit_scan. Every pointer is
 * borrowed and valid only during the callback. */
typedef struct ff_audit_row {
    int64_t id;
    const char *at;          /* canonical time, see above */
    const char *actor;
    const char *action;
    const char *site;        /* NULL when none */
    const char *details;     /* canonical JSON text */
    const uint8_t *prev_hash;
    size_t prev_len;         /* 32 unless the database was tampered with */
    const uint8_t *row_hash;
    size_t row_len;
} ff_audit_row;

/* Called once per row, oldest first; a status other than FF_OK stops
 * the scan and is returned by it. The callback may use the registry. */
typedef ff_status (*ff_audit_row_fn)(const ff_audit_row *row, void *arg);

/* Streams the rows matching f (limit ignored) with id >= from_id,
 * oldest first, in pages of FF_AUDIT_PAGE_ROWS: memory stays bounded
 * whatever the log's size. The connection lock is taken per page, not
 * across callbacks. Needs schema 4. Errors: FF_ERR_DB, FF_ERR_ARG (bad
 * time), FF_ERR_NOMEM, or the callback's status. Thread-safe. */
#define FF_AUDIT_PAGE_ROWS 500
FF_MUST_USE ff_status ff_registry_audit_scan(ff_registry *r,
                                             const ff_audit_filter *f,
                                             int64_t from_id,
                                             ff_audit_row_fn fn, void *arg,
                                             ff_error *err);

/* What ff_registry_audit_verify found. */
typedef struct ff_audit_verdict {
    int ok;                  /* 1: every row and head verified */
    int64_t rows;            /* rows checked (all of them when ok) */
    int64_t heads;           /* signed heads checked */
    int64_t last_id;         /* id of the last row, 0 when empty */
    int64_t last_signed_id;  /* newest row a verified head covers, 0 none */
    int64_t gaps;            /* id gaps across which the chain links:
                                ids rolled back before migration 4 */
    int64_t bad_id;          /* the first row that failed, 0 when ok */
    char reason[320];        /* why, e.g. "row 57: row_hash does not match
                                its contents (edited?)"; "" when ok */
} ff_audit_verdict;

/* Recomputes the whole chain (streamed, bounded memory): each row's
 * prev_hash must be the previous row's row_hash (32 zero bytes for the
 * first row) and its row_hash must recompute from prev_hash and its
 * contents. Then checks every signed head in audit_head: its Ed25519
 * signature over ff_registry_audit_head_message, its row exists and has
 * the signed row_hash, and, when key (32 bytes) is not NULL, that key
 * signed it; with key, at least one head must exist. Stops at the first
 * failure, which *v names. Returns FF_OK whether or not the chain
 * verified (read v->ok). Errors: FF_ERR_DB, FF_ERR_NOMEM. Thread-safe. */
FF_MUST_USE ff_status ff_registry_audit_verify(ff_registry *r,
                                               const uint8_t *key,
                                               ff_audit_verdict *v,
                                               ff_error *err);

/* Signs the chain's current head with the Ed25519 secret key sk
 * (libsodium's 64-byte form; its public half is stored as signer_key)
 * and stores it in audit_head. First checks the chain from the newest
 * head this key signed (or from the start when none) up to the head it
 * signs, so a signature never vouches for rows that do not verify.
 * Signing again with nothing appended since is a no-op. sk is borrowed
 * and never copied. Meant to be called periodically by the coordinator.
 * Errors: FF_ERR_NOT_FOUND (the log is empty), FF_ERR_DIGEST (the chain
 * or this key's previous head does not verify; the message names the
 * row), FF_ERR_DB, FF_ERR_NOMEM. Thread-safe. */
FF_MUST_USE ff_status ff_registry_audit_sign_head(
    ff_registry *r, const uint8_t sk[64], ff_error *err);

#endif
