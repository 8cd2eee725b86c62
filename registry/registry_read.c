/*
 * registry_read.c - reading the registry back: artifacts (digest checked
 * where the caller relies on it) and the JSON views fedfusectl prints.
 *
 * The JSON views are assembled by PostgreSQL (json_build_object, json_agg)
 * in one statement each, so a view is one consistent snapshot; jansson
 * parses the result.
 */
#include "ff_registry.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "registry_pq.h"

/* A big-endian int4 from a binary-format result; NULL reads as 0. */
static ff_status
get_int4(const PGresult *res, int row, int col, int *out, ff_error *err)
{
    *out = 0;
    if (PQgetisnull(res, row, col))
        return FF_OK;
    if (PQgetlength(res, row, col) != 4)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "database: expected a 4-byte integer");
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                 (uint32_t)p[2] << 8 | (uint32_t)p[3];
    *out = (int32_t)u;
    return FF_OK;
}

/* Copies the stored digest (column dcol) and artifact bytes (column acol)
 * of a binary-format row into caller storage and a new buffer. */
static ff_status
artifact_take(const PGresult *res, int dcol, int acol, uint8_t **artifact,
              size_t *len, char digest_hex[65], ff_error *err)
{
    if (PQgetlength(res, 0, dcol) != 64)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "stored digest is not 64 characters");
    memcpy(digest_hex, PQgetvalue(res, 0, dcol), 64);
    digest_hex[64] = '\0';

    /* The size is capped before we allocate. */
    int n = PQgetlength(res, 0, acol);
    if (n < 0 || (size_t)n > FF_REGISTRY_MAX_ARTIFACT)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "stored artifact is %d bytes; at most %u "
                            "allowed",
                            n, FF_REGISTRY_MAX_ARTIFACT);
    *artifact = malloc(n > 0 ? (size_t)n : 1);
    if (*artifact == NULL)
        return ff_error_set(err, FF_ERR_NOMEM,
                            "out of memory for a %d-byte artifact", n);
    memcpy(*artifact, PQgetvalue(res, 0, acol), (size_t)n);
    *len = (size_t)n;
    return FF_OK;
}

/* Reads number, round, digest and bytes of the latest version, unchecked.
 * Caller holds the lock. */
static ff_status
latest_read(ff_registry *r, const char *model, int *version, int *round,
            uint8_t **artifact, size_t *len, char digest_hex[65],
            ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_query(r,
                               "SELECT number, round, digest, artifact "
                               "FROM versions WHERE model = $1 "
                               "ORDER BY number DESC LIMIT 1",
                               &a, 1, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK || PQntuples(res) == 0) {
        PQclear(res);
        return st;
    }
    st = get_int4(res, 0, 0, version, err);
    if (st == FF_OK)
        st = get_int4(res, 0, 1, round, err);
    if (st == FF_OK)
        st = artifact_take(res, 2, 3, artifact, len, digest_hex, err);
    PQclear(res);
    return st;
}

ff_status
ff_registry_version_latest(ff_registry *r, const char *model, int *version,
                           int *round, uint8_t **artifact, size_t *len,
                           ff_error *err)
{
    char stored[65];
    char actual[65];

    *version = 0;
    *round = 0;
    *artifact = NULL;
    *len = 0;
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = latest_read(r, model, version, round, artifact, len, stored,
                         err);
    ff_pq_unlock(r);
    if (st == FF_OK && *artifact != NULL) {
        /* Never hand out bytes that do not hash to their stored digest. */
        ff_registry_digest(*artifact, *len, actual);
        if (sodium_memcmp(actual, stored, 64) != 0)
            st = ff_error_set(err, FF_ERR_DIGEST,
                              "version %d: stored artifact hashes to "
                              "blake2b %.16s..., registry says %.16s...",
                              *version, actual, stored);
    }
    if (st != FF_OK) {
        free(*artifact);
        *artifact = NULL;
        *len = 0;
        *version = 0;
        *round = 0;
        return ff_error_wrap(err, st, "reading the latest version");
    }
    return FF_OK;
}

/* The signature columns of a binary-format row (sig, key, metadata at
 * columns col, col + 1, col + 2) into the caller's storage. */
static ff_status
signature_take(const PGresult *res, int col, uint8_t signature[64],
               uint8_t signer_key[32], char **metadata, int *is_signed,
               ff_error *err)
{
    if (PQgetisnull(res, 0, col))
        return FF_OK;
    if (PQgetlength(res, 0, col) != FF_REGISTRY_SIG_BYTES ||
        PQgetlength(res, 0, col + 1) != FF_REGISTRY_KEY_BYTES)
        return ff_error_set(err, FF_ERR_INTERNAL,
                            "stored signature or signer key has the wrong "
                            "size");
    memcpy(signature, PQgetvalue(res, 0, col), FF_REGISTRY_SIG_BYTES);
    memcpy(signer_key, PQgetvalue(res, 0, col + 1), FF_REGISTRY_KEY_BYTES);
    if (!PQgetisnull(res, 0, col + 2)) {
        *metadata = strndup(PQgetvalue(res, 0, col + 2),
                            (size_t)PQgetlength(res, 0, col + 2));
        if (*metadata == NULL)
            return ff_error_set(err, FF_ERR_NOMEM,
                                "out of memory for signed metadata");
    }
    *is_signed = 1;
    return FF_OK;
}

/* Reads the production version's number, digest, bytes and signature,
 * unchecked. Caller holds the lock. */
static ff_status
production_read(ff_registry *r, const char *model, int *version,
                uint8_t **artifact, size_t *len, char digest_hex[65],
                uint8_t signature[64], uint8_t signer_key[32],
                char **metadata, int *is_signed, ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_query(r,
                               "SELECT number, digest, artifact, signature, "
                               "signer_key, signed_metadata FROM versions "
                               "WHERE model = $1 AND stage = 'production'",
                               &a, 1, PGRES_TUPLES_OK, &res, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK || PQntuples(res) == 0) {
        PQclear(res);
        return st;
    }
    st = get_int4(res, 0, 0, version, err);
    if (st == FF_OK)
        st = artifact_take(res, 1, 2, artifact, len, digest_hex, err);
    if (st == FF_OK)
        st = signature_take(res, 3, signature, signer_key, metadata,
                            is_signed, err);
    PQclear(res);
    return st;
}

ff_status
ff_registry_version_production(ff_registry *r, const char *model,
                               int *version, uint8_t **artifact, size_t *len,
                               uint8_t signature[64], uint8_t signer_key[32],
                               char **signed_metadata, int *is_signed,
                               ff_error *err)
{
    char stored[65], actual[65];

    *version = 0;
    *artifact = NULL;
    *len = 0;
    *signed_metadata = NULL;
    *is_signed = 0;
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = production_read(r, model, version, artifact, len, stored,
                             signature, signer_key, signed_metadata,
                             is_signed, err);
    ff_pq_unlock(r);

    /* Never hand out bytes that do not hash to their stored digest. */
    if (st == FF_OK && *artifact != NULL) {
        ff_registry_digest(*artifact, *len, actual);
        if (sodium_memcmp(actual, stored, 64) != 0)
            st = ff_error_set(err, FF_ERR_DIGEST,
                              "production version %d: stored artifact "
                              "hashes to blake2b %.16s..., registry says "
                              "%.16s...",
                              *version, actual, stored);
    }
    if (st != FF_OK) {
        free(*artifact);
        free(*signed_metadata);
        *artifact = NULL;
        *signed_metadata = NULL;
        *len = 0;
        *version = 0;
        *is_signed = 0;
        return ff_error_wrap(err, st, "reading the production version");
    }
    return FF_OK;
}

ff_status
ff_registry_version_artifact(ff_registry *r, const char *model, int version,
                             uint8_t **artifact, size_t *len,
                             char digest_hex[65], ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    *artifact = NULL;
    *len = 0;
    digest_hex[0] = '\0';
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, version);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(r,
                         "SELECT digest, artifact FROM versions "
                         "WHERE model = $1 AND number = $2::int",
                         &a, 1, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);

    if (st == FF_OK && PQntuples(res) == 0)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "no version %d", version);
    else if (st == FF_OK)
        st = artifact_take(res, 0, 1, artifact, len, digest_hex, err);
    PQclear(res);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading version %d", version);
    return FF_OK;
}

ff_status
ff_registry_status(ff_registry *r, json_t **out, ff_error *err)
{
    static const char sql[] =
        "WITH c AS (SELECT model, state, address, round, pid, updated_at, "
        "  extract(epoch FROM now() - updated_at)::float8 "
        "  AS heartbeat_age_s FROM coordinator), "
        "s AS (SELECT name, first_seen, last_seen, "
        "  extract(epoch FROM now() - last_seen)::float8 "
        "  AS last_seen_age_s, details FROM sites), "
        "cur AS (SELECT model, number, state, config, started_at, "
        "  extract(epoch FROM now() - started_at)::float8 AS age_s "
        "  FROM rounds WHERE state = 'running'), "
        "rec AS (SELECT model, number, state, reason, started_at, "
        "  finished_at FROM rounds "
        "  ORDER BY started_at DESC, number DESC LIMIT 5) "
        "SELECT json_build_object("
        "  'now', now(),"
        "  'coordinator', (SELECT row_to_json(c) FROM c "
        "    ORDER BY updated_at DESC LIMIT 1),"
        "  'coordinators', coalesce((SELECT json_agg(c ORDER BY c.model) "
        "    FROM c), '[]'::json),"
        "  'sites', coalesce((SELECT json_agg(s ORDER BY s.name) FROM s), "
        "    '[]'::json),"
        "  'current_rounds', coalesce((SELECT json_agg(cur ORDER BY "
        "    cur.model, cur.number) FROM cur), '[]'::json),"
        "  'rounds', coalesce((SELECT json_agg(rec ORDER BY "
        "    rec.started_at DESC, rec.number DESC) FROM rec), '[]'::json))";

    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(r, sql, NULL, out, err);
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the registry status");
    return FF_OK;
}

ff_status
ff_registry_models(ff_registry *r, json_t **out, ff_error *err)
{
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object("
        "  'name', m.name, 'created_at', m.created_at, 'config', m.config,"
        "  'versions', (SELECT count(*) FROM versions v "
        "    WHERE v.model = m.name),"
        "  'latest', (SELECT max(number) FROM versions v "
        "    WHERE v.model = m.name)) ORDER BY m.name), '[]'::json) "
        "FROM models m";

    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(r, sql, NULL, out, err);
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "listing models");
    return FF_OK;
}

/* One version as a JSON object, for queries over "versions v". */
#define FF_VERSION_JSON                                                    \
    "json_build_object('version', v.number, 'parent', v.parent,"          \
    "  'round', v.round, 'created_at', v.created_at, 'digest', v.digest," \
    "  'artifact_len', v.artifact_len, 'train_config', v.train_config,"   \
    "  'metrics', v.metrics, 'privacy', v.privacy, 'stage', v.stage,"     \
    "  'signed', v.signature IS NOT NULL,"                                \
    "  'signature', encode(v.signature, 'hex'),"                          \
    "  'signer_key', encode(v.signer_key, 'hex'),"                        \
    "  'signed_metadata', v.signed_metadata,"                             \
    "  'sites', (SELECT count(*) FROM contributions c"                    \
    "    WHERE c.model = v.model AND c.version = v.number),"              \
    "  'examples', (SELECT coalesce(sum(c.examples), 0)"                  \
    "    FROM contributions c"                                            \
    "    WHERE c.model = v.model AND c.version = v.number),"              \
    "  'contributions', (SELECT coalesce(json_agg(json_build_object("     \
    "    'site', c.site, 'examples', c.examples,"                         \
    "    'manifest_digest', c.manifest_digest,"                           \
    "    'code_version', c.code_version) ORDER BY c.site),"               \
    "    '[]'::json) FROM contributions c"                                \
    "    WHERE c.model = v.model AND c.version = v.number))"

ff_status
ff_registry_versions(ff_registry *r, const char *model, json_t **out,
                     ff_error *err)
{
    ff_pq_args a;

    *out = NULL;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(r,
                              "SELECT coalesce(json_agg(" FF_VERSION_JSON
                              " ORDER BY v.number), '[]'::json) "
                              "FROM versions v WHERE v.model = $1",
                              &a, out, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "listing versions");
    return FF_OK;
}

ff_status
ff_registry_version_show(ff_registry *r, const char *model, int version,
                         json_t **out, ff_error *err)
{
    ff_pq_args a;
    json_t *rows = NULL;

    *out = NULL;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, model);
    ff_pq_arg_int(&a, version);

    /* The version, its model's config and its round, as a one-element
     * array (empty when the version does not exist). */
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_model_exists(r, model, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(
            r,
            "SELECT coalesce(json_agg((" FF_VERSION_JSON "::jsonb || "
            "  jsonb_build_object('model', v.model, "
            "  'model_config', m.config, 'round_state', ro.state, "
            "  'round_config', ro.config, 'round_started_at', "
            "  ro.started_at, 'round_finished_at', ro.finished_at))), "
            "  '[]'::json) "
            "FROM versions v JOIN models m ON m.name = v.model "
            "LEFT JOIN rounds ro ON ro.model = v.model "
            "  AND ro.number = v.round "
            "WHERE v.model = $1 AND v.number = $2::int",
            &a, &rows, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);

    if (st == FF_OK && json_array_size(rows) != 1)
        st = ff_error_set(err, FF_ERR_NOT_FOUND, "no version %d", version);
    if (st != FF_OK) {
        json_decref(rows);
        return ff_error_wrap(err, st, "showing version %d", version);
    }
    *out = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return FF_OK;
}
