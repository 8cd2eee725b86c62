/*
 * registry_write.c - everything the coordinator records: models, sites,
 * its own state, rounds, and published versions (audit rows: see
 * registry_audit.c).
 *
 * Each public function takes the connection lock for its whole duration;
 * those that write more than one row do it in one transaction.
 */
#include "ff_registry.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ff_log.h"
#include "registry_pq.h"

ff_status
ff_registry_model_ensure(ff_registry *r, const char *model, json_t *config,
                         ff_error *err)
{
    ff_pq_args a;
    int64_t same = 0;

    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_json(&a, config);

    /* Insert when absent; either way learn whether the stored config is
     * the one given (the stored one wins). */
    st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_command(r,
                           "INSERT INTO models (name, config) VALUES "
                           "($1, coalesce($2::jsonb, '{}'::jsonb)) "
                           "ON CONFLICT (name) DO NOTHING",
                           &a, err);
    if (st == FF_OK)
        st = ff_pq_fetch_int(r,
                             "SELECT (config = coalesce($2::jsonb, "
                             "'{}'::jsonb))::int FROM models WHERE name = $1",
                             &a, &same, NULL, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);

    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording model");
    if (!same)
        FF_WARN("registry: model exists with a different config; keeping "
                "the stored one");
    return FF_OK;
}

/* Upserts the site row and audits the registration; in a transaction. */
static ff_status
site_register_tx(ff_registry *r, const char *site, json_t *details,
                 ff_error *err)
{
    ff_pq_args a;
    char *actor = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, site);
    ff_pq_arg_json(&a, details);
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO sites (name, details) VALUES "
        "($1, coalesce($2::jsonb, '{}'::jsonb)) "
        "ON CONFLICT (name) DO UPDATE SET last_seen = now(), "
        "details = EXCLUDED.details",
        &a, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;

    size_t n = strlen("site:") + strlen(site) + 1;
    actor = malloc(n);
    if (actor == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    snprintf(actor, n, "site:%s", site);
    st = ff_pq_audit(r, actor, "site.registered", site, details, err);
    free(actor);
    return st;
}

ff_status
ff_registry_site_register(ff_registry *r, const char *site, json_t *details,
                          ff_error *err)
{
    ff_status st = ff_pq_check_name(site, "site", err);
    if (st != FF_OK)
        return st;
    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, site_register_tx(r, site, details, err), err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "registering site");
    return FF_OK;
}

ff_status
ff_registry_site_seen(ff_registry *r, const char *site, ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_status st = ff_pq_check_name(site, "site", err);
    if (st != FF_OK)
        return st;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, site);
    st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(r,
                         "UPDATE sites SET last_seen = now() "
                         "WHERE name = $1 RETURNING 1",
                         &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording site activity");
    int found = PQntuples(res) == 1;
    PQclear(res);
    if (!found)
        return ff_error_set(err, FF_ERR_NOT_FOUND,
                            "site is not registered");
    return FF_OK;
}

ff_status
ff_registry_coordinator_state(ff_registry *r, const char *model,
                              const char *state, const char *address,
                              int round, ff_error *err)
{
    ff_pq_args a;

    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    if (state == NULL || state[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "coordinator state is empty");
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_text(&a, state);
    ff_pq_arg_text(&a, address);
    ff_pq_arg_int(&a, round);
    ff_pq_arg_int(&a, (int64_t)getpid());

    /* The row is the heartbeat: every call refreshes updated_at. */
    st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_command(
            r,
            "INSERT INTO coordinator (model, state, address, round, pid) "
            "VALUES ($1, $2, $3, $4::int, $5::int) "
            "ON CONFLICT (model) DO UPDATE SET state = EXCLUDED.state, "
            "address = EXCLUDED.address, round = EXCLUDED.round, "
            "pid = EXCLUDED.pid, updated_at = now()",
            &a, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording coordinator state");
    return FF_OK;
}

/* Opens (or re-opens, when still running) the round; audits it. */
static ff_status
round_start_tx(ff_registry *r, const char *model, int round, json_t *config,
               ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, round);
    ff_pq_arg_json(&a, config);
    ff_status st = ff_pq_query(
        r,
        "INSERT INTO rounds (model, number, state, config) VALUES "
        "($1, $2::int, 'running', coalesce($3::jsonb, '{}'::jsonb)) "
        "ON CONFLICT (model, number) DO UPDATE SET "
        "config = EXCLUDED.config, started_at = now() "
        "WHERE rounds.state = 'running' RETURNING 1",
        &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;
    int started = PQntuples(res) == 1;
    PQclear(res);
    if (!started)
        return ff_error_set(err, FF_ERR_STATE,
                            "round %d already finished", round);

    json_t *details = json_pack("{s:s, s:i, s:O?}", "model", model, "round",
                                round, "config", config);
    if (details == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, "coordinator", "round.started", NULL, details, err);
    json_decref(details);
    return st;
}

ff_status
ff_registry_round_start(ff_registry *r, const char *model, int round,
                        json_t *config, ff_error *err)
{
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    if (round <= 0)
        return ff_error_set(err, FF_ERR_ARG, "round %d: must be >= 1",
                            round);
    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, round_start_tx(r, model, round, config, err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "starting round %d", round);
    return FF_OK;
}

/* Marks a running round aborted and audits it; tells a missing round
 * from a finished one. */
static ff_status
round_abort_tx(ff_registry *r, const char *model, int round,
               const char *reason, ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;
    int64_t exists = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, round);
    ff_pq_arg_text(&a, reason);
    ff_status st = ff_pq_query(
        r,
        "UPDATE rounds SET state = 'aborted', reason = $3, "
        "finished_at = now() "
        "WHERE model = $1 AND number = $2::int AND state = 'running' "
        "RETURNING 1",
        &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    int aborted = st == FF_OK && PQntuples(res) == 1;
    PQclear(res);
    if (st != FF_OK)
        return st;

    /* Nothing changed: say whether the round is missing or finished. */
    if (!aborted) {
        ff_pq_args_init(&a);
        ff_pq_arg_text(&a, model);
        ff_pq_arg_int(&a, round);
        st = ff_pq_fetch_int(r,
                             "SELECT 1 FROM rounds "
                             "WHERE model = $1 AND number = $2::int",
                             &a, &exists, NULL, err);
        ff_pq_args_cleanup(&a);
        if (st != FF_OK)
            return st;
    }
    if (!aborted)
        return ff_error_set(err, exists ? FF_ERR_STATE : FF_ERR_NOT_FOUND,
                            "round %d %s", round,
                            exists ? "is not running" : "does not exist");

    json_t *details = json_pack("{s:s, s:i, s:s?}", "model", model, "round",
                                round, "reason", reason);
    if (details == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, "coordinator", "round.aborted", NULL, details, err);
    json_decref(details);
    return st;
}

ff_status
ff_registry_round_abort(ff_registry *r, const char *model, int round,
                        const char *reason, ff_error *err)
{
    ff_status st = ff_pq_check_name(model, "model", err);
    if (st != FF_OK)
        return st;
    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, round_abort_tx(r, model, round, reason, err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "aborting round %d", round);
    return FF_OK;
}

ff_status
ff_registry_round_last(ff_registry *r, const char *model, int *round,
                       ff_error *err)
{
    ff_pq_args a;
    int64_t v = 0;

    *round = 0;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_fetch_int(r,
                             "SELECT coalesce(max(number), 0) FROM rounds "
                             "WHERE model = $1",
                             &a, &v, NULL, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the last round");
    *round = (int)v;
    return FF_OK;
}

/* 1 when s is exactly 64 lower-case hex characters. */
static int
hex64(const char *s)
{
    return s != NULL && strlen(s) == 64 &&
           strspn(s, "0123456789abcdef") == 64;
}

/* Checks one contribution: site name, examples, manifest digest (NULL or
 * 64 lower-case hex), code version (NULL or short enough). */
static ff_status
contribution_check(const ff_contribution *c, size_t i, ff_error *err)
{
    ff_status st = ff_pq_check_name(c->site, "contributing site", err);
    if (st != FF_OK)
        return st;
    if (c->examples < 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "contribution %zu has %lld examples", i,
                            (long long)c->examples);
    if (c->manifest_digest != NULL && !hex64(c->manifest_digest))
        return ff_error_set(err, FF_ERR_ARG,
                            "contribution %zu: manifest digest must be 64 "
                            "lower-case hex characters", i);
    if (c->code_version != NULL &&
        strlen(c->code_version) > FF_REGISTRY_MAX_CODE_VERSION)
        return ff_error_set(err, FF_ERR_ARG,
                            "contribution %zu: code version longer than %u "
                            "bytes", i, FF_REGISTRY_MAX_CODE_VERSION);
    return FF_OK;
}

/* The signature fields: signature and key together, metadata only with
 * them and not too large. */
static ff_status
signature_check(const ff_version_new *v, ff_error *err)
{
    if ((v->signature == NULL) != (v->signer_key == NULL))
        return ff_error_set(err, FF_ERR_ARG,
                            "a signature needs its signer key and a signer "
                            "key its signature");
    if (v->signed_metadata != NULL && v->signature == NULL)
        return ff_error_set(err, FF_ERR_ARG,
                            "signed metadata given without a signature");
    if (v->signed_metadata != NULL &&
        strlen(v->signed_metadata) > FF_REGISTRY_MAX_METADATA)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "signed metadata is longer than %u bytes",
                            FF_REGISTRY_MAX_METADATA);
    return FF_OK;
}

/* Checks a version to publish before touching the database: names,
 * sizes, contributions, signature fields, and that digest_hex is the
 * BLAKE2b-256 of the artifact. */
static ff_status
publish_check(const ff_version_new *v, ff_error *err)
{
    char actual[65];

    if (v == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no version given");
    ff_status st = ff_pq_check_name(v->model, "model", err);
    if (st != FF_OK)
        return st;
    if (v->parent < 0 || v->round < 0 || v->parent == INT32_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "parent %d / round %d out of range", v->parent,
                            v->round);
    if (v->artifact_len > FF_REGISTRY_MAX_ARTIFACT)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "artifact is %zu bytes; at most %u allowed",
                            v->artifact_len, FF_REGISTRY_MAX_ARTIFACT);
    if (v->artifact == NULL && v->artifact_len > 0)
        return ff_error_set(err, FF_ERR_ARG, "artifact bytes missing");
    if (v->n_contributions > 0 && v->contributions == NULL)
        return ff_error_set(err, FF_ERR_ARG, "contributions missing");
    if (v->privacy != NULL && !json_is_object(v->privacy))
        return ff_error_set(err, FF_ERR_ARG,
                            "privacy must be a JSON object or NULL");
    for (size_t i = 0; i < v->n_contributions; i++) {
        st = contribution_check(&v->contributions[i], i, err);
        if (st != FF_OK)
            return st;
    }
    st = signature_check(v, err);
    if (st != FF_OK)
        return st;

    /* The digest: well-formed, then equal to what the bytes hash to. */
    if (!hex64(v->digest_hex))
        return ff_error_set(err, FF_ERR_ARG,
                            "digest must be 64 lower-case hex characters");
    ff_registry_digest(v->artifact, v->artifact_len, actual);
    if (sodium_memcmp(actual, v->digest_hex, 64) != 0)
        return ff_error_set(err, FF_ERR_DIGEST,
                            "artifact hashes to blake2b %.16s..., not the "
                            "given %.16s...",
                            actual, v->digest_hex);
    return FF_OK;
}

/* Takes the model's row lock (publishers of one model queue here) and
 * checks that parent is its latest version. */
static ff_status
publish_lock_parent(ff_registry *r, const ff_version_new *v, ff_error *err)
{
    ff_pq_args a;
    int found = 0;
    int64_t one = 0;
    int64_t latest = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, v->model);
    ff_status st = ff_pq_fetch_int(
        r, "SELECT 1 FROM models WHERE name = $1 FOR UPDATE", &a, &one,
        &found, err);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "model is not registered");
    if (st == FF_OK)
        st = ff_pq_fetch_int(r,
                             "SELECT coalesce(max(number), 0) FROM versions "
                             "WHERE model = $1",
                             &a, &latest, NULL, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && latest != v->parent)
        st = ff_error_set(err, FF_ERR_STATE,
                          "parent %d is not the latest version (%lld)",
                          v->parent, (long long)latest);
    return st;
}

/* Moves the version's round from running to published. */
static ff_status
publish_finish_round(ff_registry *r, const ff_version_new *v, ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, v->model);
    ff_pq_arg_int(&a, v->round);
    ff_status st = ff_pq_query(
        r,
        "UPDATE rounds SET state = 'published', finished_at = now() "
        "WHERE model = $1 AND number = $2::int AND state = 'running' "
        "RETURNING 1",
        &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;
    int ok = PQntuples(res) == 1;
    PQclear(res);
    if (!ok)
        return ff_error_set(err, FF_ERR_STATE, "round %d is not running",
                            v->round);
    return FF_OK;
}

/* Inserts the version's contributions with their lineage. */
static ff_status
publish_contributions(ff_registry *r, const ff_version_new *v, int number,
                      ff_error *err)
{
    ff_pq_args a;
    ff_status st = FF_OK;

    for (size_t i = 0; st == FF_OK && i < v->n_contributions; i++) {
        const ff_contribution *c = &v->contributions[i];
        ff_pq_args_init(&a);
        ff_pq_arg_text(&a, v->model);
        ff_pq_arg_int(&a, number);
        ff_pq_arg_text(&a, c->site);
        ff_pq_arg_int(&a, c->examples);
        ff_pq_arg_text(&a, c->manifest_digest);
        ff_pq_arg_text(&a, c->code_version);
        st = ff_pq_command(r,
                           "INSERT INTO contributions (model, version, site, "
                           "examples, manifest_digest, code_version) VALUES "
                           "($1, $2::int, $3, $4::bigint, $5, $6)",
                           &a, err);
        ff_pq_args_cleanup(&a);
    }
    return st;
}

/* Inserts the version row (artifact and signature as binary parameters,
 * stage candidate) and its contributions. Parent and round 0 are stored
 * as NULL, as is a NULL privacy summary or signature. */
static ff_status
publish_insert(ff_registry *r, const ff_version_new *v, int number,
               ff_error *err)
{
    ff_pq_args a;
    int sig = v->signature != NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, v->model);
    ff_pq_arg_int(&a, number);
    ff_pq_arg_int(&a, v->parent);
    ff_pq_arg_int(&a, v->round);
    ff_pq_arg_json(&a, v->train_config);
    ff_pq_arg_json(&a, v->metrics);
    ff_pq_arg_text(&a, v->digest_hex);
    ff_pq_arg_bytes(&a, v->artifact, v->artifact_len);
    ff_pq_arg_int(&a, (int64_t)v->artifact_len);
    ff_pq_arg_json(&a, v->privacy);
    if (sig) {
        ff_pq_arg_bytes(&a, v->signature, FF_REGISTRY_SIG_BYTES);
        ff_pq_arg_bytes(&a, v->signer_key, FF_REGISTRY_KEY_BYTES);
    } else {
        ff_pq_arg_text(&a, NULL);
        ff_pq_arg_text(&a, NULL);
    }
    ff_pq_arg_text(&a, v->signed_metadata);
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO versions (model, number, parent, round, train_config, "
        "metrics, digest, artifact, artifact_len, privacy, stage, "
        "signature, signer_key, signed_metadata) VALUES ($1, "
        "$2::int, nullif($3::int, 0), nullif($4::int, 0), "
        "coalesce($5::jsonb, '{}'::jsonb), coalesce($6::jsonb, '{}'::jsonb), "
        "$7, $8, $9::bigint, $10::jsonb, 'candidate', $11::bytea, "
        "$12::bytea, $13)",
        &a, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK)
        st = publish_contributions(r, v, number, err);
    return st;
}

/* The audit rows of a publication: version.published, and
 * round.finished when the version closes a round. */
static ff_status
publish_audit(ff_registry *r, const ff_version_new *v, int number,
              ff_error *err)
{
    int64_t examples = 0;

    char key[2 * FF_REGISTRY_KEY_BYTES + 1] = "";

    for (size_t i = 0; i < v->n_contributions; i++)
        examples += v->contributions[i].examples;
    if (v->signer_key != NULL)
        sodium_bin2hex(key, sizeof(key), v->signer_key,
                       FF_REGISTRY_KEY_BYTES);
    json_t *pub = json_pack(
        "{s:s, s:i, s:i, s:i, s:s, s:I, s:I, s:I, s:O?, s:b, s:s?}", "model",
        v->model, "version", number, "parent", v->parent, "round", v->round,
        "digest", v->digest_hex, "artifact_len", (json_int_t)v->artifact_len,
        "sites", (json_int_t)v->n_contributions, "examples",
        (json_int_t)examples, "privacy", v->privacy, "signed",
        v->signature != NULL, "signer_key",
        v->signer_key != NULL ? key : NULL);
    if (pub == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    ff_status st = ff_pq_audit(r, "coordinator", "version.published", NULL,
                               pub, err);
    json_decref(pub);
    if (st != FF_OK || v->round == 0)
        return st;

    json_t *fin = json_pack("{s:s, s:i, s:s, s:i}", "model", v->model,
                            "round", v->round, "state", "published",
                            "version", number);
    if (fin == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, "coordinator", "round.finished", NULL, fin, err);
    json_decref(fin);
    return st;
}

/* The whole publication, inside one transaction. */
static ff_status
publish_tx(ff_registry *r, const ff_version_new *v, int *number,
           ff_error *err)
{
    ff_status st = publish_lock_parent(r, v, err);
    if (st == FF_OK && v->round > 0)
        st = publish_finish_round(r, v, err);
    if (st == FF_OK)
        st = publish_insert(r, v, v->parent + 1, err);
    if (st == FF_OK)
        st = publish_audit(r, v, v->parent + 1, err);
    if (st == FF_OK)
        *number = v->parent + 1;
    return st;
}

ff_status
ff_registry_version_publish(ff_registry *r, const ff_version_new *v,
                            int *version, ff_error *err)
{
    int number = 0;

    if (version != NULL)
        *version = 0;
    ff_status st = publish_check(v, err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "publishing a version");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, publish_tx(r, v, &number, err), err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "publishing version %d",
                             v->parent + 1);

    FF_INFO("registry: published version %d (round %d, %zu bytes, "
            "blake2b %.16s...)",
            number, v->round, v->artifact_len, v->digest_hex);
    if (version != NULL)
        *version = number;
    return FF_OK;
}
