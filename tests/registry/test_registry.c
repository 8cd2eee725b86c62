/*
 * test_registry.c - the registry against a real PostgreSQL server: schema
 * migrations, publication and lineage, digests, hostile strings, audit
 * filters, rounds. Each run works in its own fresh database.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ff_registry.h"
#include "pg_fixture.h"

static ff_test_db g_db;

/* ---- helpers ---------------------------------------------------------- */

/* Opens the test database through the registry and migrates it. */
static ff_registry *
reg_open(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;

    if (ff_registry_open(&r, g_db.conninfo, &err) != FF_OK)
        fail_msg("open: %s", ff_error_text(&err));
    if (ff_registry_migrate(r, &version, &err) != FF_OK)
        fail_msg("migrate: %s", ff_error_text(&err));
    return r;
}

/* Fills buf with bytes from a small generator seeded by seed. */
static void
fill_bytes(uint8_t *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

/* Publishes artifact bytes with their correct digest. */
static ff_status
publish(ff_registry *r, const char *model, int round, int parent,
        const uint8_t *art, size_t len, const ff_contribution *c, size_t nc,
        json_t *metrics, int *version, ff_error *err)
{
    char digest[65];
    ff_version_new v = {0};

    ff_registry_digest(art, len, digest);
    v.model = model;
    v.round = round;
    v.parent = parent;
    v.contributions = c;
    v.n_contributions = nc;
    v.train_config = NULL;
    v.metrics = metrics;
    v.artifact = art;
    v.artifact_len = len;
    v.digest_hex = digest;
    return ff_registry_version_publish(r, &v, version, err);
}

static void
ensure_model(ff_registry *r, const char *model)
{
    ff_error err = {0};
    json_t *cfg = json_pack("{s:s, s:i}", "arch", "fused-mlp", "classes",
                            10);

    if (ff_registry_model_ensure(r, model, cfg, &err) != FF_OK)
        fail_msg("model_ensure %s: %s", model, ff_error_text(&err));
    json_decref(cfg);
}

static void
start_round(ff_registry *r, const char *model, int round)
{
    ff_error err = {0};
    json_t *cfg = json_pack("{s:i, s:[s,s]}", "epochs", 1, "sites", "a",
                            "b");

    if (ff_registry_round_start(r, model, round, cfg, &err) != FF_OK)
        fail_msg("round_start %s %d: %s", model, round, ff_error_text(&err));
    json_decref(cfg);
}

static long long
count1(const char *sql, const char *p1)
{
    const char *params[1] = {p1};
    return ff_test_db_number(&g_db, sql, p1 ? 1 : 0, params);
}

/* Row counts that must not move when a publication is refused. */
typedef struct snapshot {
    long long versions, contributions, audit, running, published;
} snapshot;

static snapshot
take_snapshot(void)
{
    snapshot s;

    s.versions = count1("SELECT count(*) FROM versions", NULL);
    s.contributions = count1("SELECT count(*) FROM contributions", NULL);
    s.audit = count1("SELECT count(*) FROM audit", NULL);
    s.running = count1("SELECT count(*) FROM rounds WHERE state = "
                       "'running'", NULL);
    s.published = count1("SELECT count(*) FROM rounds WHERE state = "
                         "'published'", NULL);
    return s;
}

static void
assert_same_snapshot(snapshot a, snapshot b)
{
    assert_int_equal(a.versions, b.versions);
    assert_int_equal(a.contributions, b.contributions);
    assert_int_equal(a.audit, b.audit);
    assert_int_equal(a.running, b.running);
    assert_int_equal(a.published, b.published);
}

/* ---- migrations -------------------------------------------------------- */

typedef struct migrate_job {
    ff_status st;
    int version;
    ff_error err;
} migrate_job;

static void *
migrate_thread(void *arg)
{
    migrate_job *job = arg;
    ff_registry *r = NULL;

    job->st = ff_registry_open(&r, g_db.conninfo, &job->err);
    if (job->st == FF_OK)
        job->st = ff_registry_migrate(r, &job->version, &job->err);
    ff_registry_close(r);
    return NULL;
}

/* From an empty database, four processes' worth of concurrent migrations
 * agree on the version and apply each step once; re-running is a no-op. */
static void
migrations_from_empty_concurrent_and_rerun(void **state)
{
    (void)state;
    ff_registry *r = NULL;
    ff_error err = {0};
    int current = -1, latest = -1, version = 0;
    migrate_job jobs[4];
    pthread_t th[4];

    assert_int_equal(ff_registry_open(&r, g_db.conninfo, &err), FF_OK);
    assert_int_equal(ff_registry_schema_version(r, &current, &latest, &err),
                     FF_OK);
    assert_int_equal(current, 0);
    assert_true(latest >= 2);

    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread,
                                        &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].st != FF_OK)
            fail_msg("migration %d: %s", i, ff_error_text(&jobs[i].err));
        assert_int_equal(jobs[i].version, latest);
    }
    assert_int_equal(count1("SELECT count(*) FROM schema_migrations", NULL),
                     latest);

    /* Again: nothing to do, same version, no new rows. */
    assert_int_equal(ff_registry_migrate(r, &version, &err), FF_OK);
    assert_int_equal(version, latest);
    assert_int_equal(count1("SELECT count(*) FROM schema_migrations", NULL),
                     latest);
    assert_int_equal(ff_registry_schema_version(r, &current, NULL, &err),
                     FF_OK);
    assert_int_equal(current, latest);
    print_message("schema version %d after 4 concurrent migrations and a "
                  "re-run; schema_migrations rows: %lld\n",
                  current,
                  count1("SELECT count(*) FROM schema_migrations", NULL));
    ff_registry_close(r);
}

/* ---- publication ------------------------------------------------------- */

/* Three versions in a chain: numbers, lineage, rounds, contributions,
 * audit rows and the latest bytes all line up. */
static void
publish_chain_of_three(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    static const size_t sizes[3] = {1000, 5003, 70001};
    static const ff_contribution c1[] = {{"site-a", 100, NULL, NULL},
                                         {"site-b", 50, NULL, NULL}};
    static const ff_contribution c2[] = {{"site-a", 120, NULL, NULL}};
    static const ff_contribution c3[] = {
        {"site-a", 10, NULL, NULL},
        {"site-b", 20, NULL, NULL},
        {"site-c", 30, NULL, NULL}};
    const ff_contribution *cs[3] = {c1, c2, c3};
    const size_t ncs[3] = {2, 1, 3};
    const long long examples[3] = {150, 120, 60};
    uint8_t *art[3];

    ensure_model(r, "chain");
    for (int i = 0; i < 3; i++) {
        int version = 0;
        art[i] = malloc(sizes[i]);
        assert_non_null(art[i]);
        fill_bytes(art[i], sizes[i], 10 + (uint32_t)i);
        start_round(r, "chain", i + 1);
        json_t *metrics = json_pack("{s:f, s:{s:f, s:f}}", "accuracy",
                                    0.5 + 0.1 * i, "alone", "image",
                                    0.4 + 0.1 * i, "audio", 0.3);
        ff_status st = publish(r, "chain", i + 1, i, art[i], sizes[i], cs[i],
                               ncs[i], metrics, &version, &err);
        json_decref(metrics);
        if (st != FF_OK)
            fail_msg("publish %d: %s", i + 1, ff_error_text(&err));
        assert_int_equal(version, i + 1);
    }

    /* Lineage and contributions as the CLI reads them. */
    json_t *vs = NULL;
    assert_int_equal(ff_registry_versions(r, "chain", &vs, &err), FF_OK);
    assert_int_equal(json_array_size(vs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_array_get(vs, i);
        char digest[65];
        ff_registry_digest(art[i], sizes[i], digest);
        assert_int_equal(json_integer_value(json_object_get(v, "version")),
                         i + 1);
        if (i == 0)
            assert_true(json_is_null(json_object_get(v, "parent")));
        else
            assert_int_equal(
                json_integer_value(json_object_get(v, "parent")), i);
        assert_int_equal(json_integer_value(json_object_get(v, "round")),
                         i + 1);
        assert_string_equal(json_string_value(json_object_get(v, "digest")),
                            digest);
        assert_int_equal(
            json_integer_value(json_object_get(v, "artifact_len")),
            sizes[i]);
        assert_int_equal(json_integer_value(json_object_get(v, "sites")),
                         ncs[i]);
        assert_int_equal(json_integer_value(json_object_get(v, "examples")),
                         examples[i]);
        json_t *contrib = json_object_get(v, "contributions");
        assert_int_equal(json_array_size(contrib), ncs[i]);
        for (size_t k = 0; k < ncs[i]; k++) {
            json_t *c = json_array_get(contrib, k);
            assert_string_equal(json_string_value(json_object_get(c, "site")),
                                cs[i][k].site);
            assert_int_equal(json_integer_value(json_object_get(c,
                                                                "examples")),
                             cs[i][k].examples);
        }
    }
    json_decref(vs);

    /* Rounds closed, audit rows written, model listed. */
    assert_int_equal(count1("SELECT count(*) FROM rounds WHERE model = $1 "
                            "AND state = 'published' AND finished_at IS NOT "
                            "NULL", "chain"), 3);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'version.published' AND details->>'model' = $1",
                            "chain"), 3);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'round.finished' AND details->>'model' = $1",
                            "chain"), 3);
    json_t *models = NULL;
    assert_int_equal(ff_registry_models(r, &models, &err), FF_OK);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(models); i++) {
        json_t *m = json_array_get(models, i);
        if (strcmp(json_string_value(json_object_get(m, "name")), "chain"))
            continue;
        seen = 1;
        assert_int_equal(json_integer_value(json_object_get(m, "versions")),
                         3);
        assert_int_equal(json_integer_value(json_object_get(m, "latest")), 3);
    }
    assert_true(seen);
    json_decref(models);

    /* One version in full, and what does not exist. */
    json_t *show = NULL;
    assert_int_equal(ff_registry_version_show(r, "chain", 2, &show, &err),
                     FF_OK);
    assert_int_equal(json_integer_value(json_object_get(show, "parent")), 1);
    assert_string_equal(json_string_value(json_object_get(show,
                                                          "round_state")),
                        "published");
    assert_string_equal(json_string_value(json_object_get(show, "model")),
                        "chain");
    json_decref(show);
    assert_int_equal(ff_registry_version_show(r, "chain", 9, &show, &err),
                     FF_ERR_NOT_FOUND);
    assert_int_equal(ff_registry_version_show(r, "nope", 1, &show, &err),
                     FF_ERR_NOT_FOUND);
    assert_int_equal(ff_registry_versions(r, "nope", &vs, &err),
                     FF_ERR_NOT_FOUND);

    /* The latest version's bytes. */
    int version = 0, round = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(ff_registry_version_latest(r, "chain", &version, &round,
                                                &bytes, &len, &err),
                     FF_OK);
    assert_int_equal(version, 3);
    assert_int_equal(round, 3);
    assert_int_equal(len, sizes[2]);
    assert_memory_equal(bytes, art[2], len);
    print_message("chain: versions 1..3, parents -,1,2, %lld audit rows for "
                  "the model, latest %zu bytes identical\n",
                  count1("SELECT count(*) FROM audit WHERE "
                         "details->>'model' = $1", "chain"),
                  len);
    free(bytes);
    for (int i = 0; i < 3; i++)
        free(art[i]);
    ff_registry_close(r);
}

/* A stale or future parent is refused with FF_ERR_STATE and leaves every
 * table exactly as it was. */
static void
parent_mismatch_writes_nothing(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t art[512];
    static const ff_contribution c[] = {{"site-a", 7, NULL, NULL}};
    int version = 0;

    fill_bytes(art, sizeof(art), 77);
    ensure_model(r, "stale");
    start_round(r, "stale", 1);
    assert_int_equal(publish(r, "stale", 1, 0, art, sizeof(art), c, 1, NULL,
                             &version, &err),
                     FF_OK);
    start_round(r, "stale", 2);

    snapshot before = take_snapshot();
    art[0] ^= 1;
    assert_int_equal(publish(r, "stale", 2, 0, art, sizeof(art), c, 1, NULL,
                             &version, &err),
                     FF_ERR_STATE);
    print_message("stale parent refused: %s\n", ff_error_text(&err));
    assert_int_equal(version, 0);
    assert_int_equal(publish(r, "stale", 2, 2, art, sizeof(art), c, 1, NULL,
                             &version, &err),
                     FF_ERR_STATE);
    assert_same_snapshot(before, take_snapshot());
    print_message("rows before/after: versions %lld/%lld contributions "
                  "%lld/%lld audit %lld/%lld\n",
                  before.versions, take_snapshot().versions,
                  before.contributions, take_snapshot().contributions,
                  before.audit, take_snapshot().audit);

    /* The right parent still works afterwards. */
    assert_int_equal(publish(r, "stale", 2, 1, art, sizeof(art), c, 1, NULL,
                             &version, &err),
                     FF_OK);
    assert_int_equal(version, 2);
    ff_registry_close(r);
}

typedef struct race_job {
    pthread_barrier_t *barrier;
    int parent;
    uint32_t seed;
    ff_status st;
    int version;
    ff_error err;
} race_job;

static void *
race_thread(void *arg)
{
    race_job *job = arg;
    ff_registry *r = NULL;
    uint8_t art[4096];

    fill_bytes(art, sizeof(art), job->seed);
    job->st = ff_registry_open(&r, g_db.conninfo, &job->err);
    pthread_barrier_wait(job->barrier);
    if (job->st == FF_OK)
        job->st = publish(r, "race", 0, job->parent, art, sizeof(art), NULL,
                          0, NULL, &job->version, &job->err);
    ff_registry_close(r);
    return NULL;
}

/* Two publishers with the same parent at the same moment: exactly one
 * wins each time, the other gets FF_ERR_STATE. */
static void
concurrent_publishers_one_wins(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    int rounds = 8;

    ensure_model(r, "race");
    for (int parent = 0; parent < rounds; parent++) {
        pthread_barrier_t barrier;
        race_job jobs[2];
        pthread_t th[2];

        pthread_barrier_init(&barrier, NULL, 2);
        memset(jobs, 0, sizeof(jobs));
        for (int i = 0; i < 2; i++) {
            jobs[i].barrier = &barrier;
            jobs[i].parent = parent;
            jobs[i].seed = (uint32_t)(parent * 2 + i);
            assert_int_equal(pthread_create(&th[i], NULL, race_thread,
                                            &jobs[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);

        int wins = (jobs[0].st == FF_OK) + (jobs[1].st == FF_OK);
        int lost = (jobs[0].st == FF_ERR_STATE) +
                   (jobs[1].st == FF_ERR_STATE);
        if (wins != 1 || lost != 1)
            fail_msg("parent %d: statuses %s / %s (%s / %s)", parent,
                     ff_status_name(jobs[0].st), ff_status_name(jobs[1].st),
                     ff_error_text(&jobs[0].err),
                     ff_error_text(&jobs[1].err));
    }
    assert_int_equal(count1("SELECT count(*) FROM versions WHERE model = $1",
                            "race"), rounds);
    print_message("%d races of two publishers: one winner each, %lld "
                  "versions\n",
                  rounds, count1("SELECT count(*) FROM versions WHERE "
                                 "model = $1", "race"));
    ff_registry_close(r);
}

/* A digest that is not the artifact's BLAKE2b is refused before anything
 * is written; so is a malformed one, and an oversized artifact. */
static void
digest_mismatch_rejected(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t art[2048];
    char digest[65];
    ff_version_new v = {0};
    int version = 0;

    ensure_model(r, "digest");
    fill_bytes(art, sizeof(art), 5);
    ff_registry_digest(art, sizeof(art), digest);
    digest[10] = digest[10] == 'a' ? 'b' : 'a';
    v.model = "digest";
    v.artifact = art;
    v.artifact_len = sizeof(art);
    v.digest_hex = digest;

    snapshot before = take_snapshot();
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_ERR_DIGEST);
    print_message("wrong digest: %s\n", ff_error_text(&err));

    ff_registry_digest(art, sizeof(art), digest);
    for (char *p = digest; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_ERR_ARG);
    digest[20] = '\0';
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_ERR_ARG);
    v.digest_hex = NULL;
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_ERR_ARG);

    /* Too large is refused on the length alone. */
    ff_registry_digest(art, sizeof(art), digest);
    v.digest_hex = digest;
    v.artifact_len = (size_t)FF_REGISTRY_MAX_ARTIFACT + 1;
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_ERR_TOO_LARGE);
    assert_same_snapshot(before, take_snapshot());

    /* The correct digest goes through. */
    v.artifact_len = sizeof(art);
    assert_int_equal(ff_registry_version_publish(r, &v, &version, &err),
                     FF_OK);
    assert_int_equal(version, 1);
    ff_registry_close(r);
}

/* latest: nothing for a model without versions, then the newest bytes,
 * whose recomputed digest equals the published one. */
static void
latest_version_bytes_verified(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t a1[300], a2[9000];
    int version = -1, round = -1;
    uint8_t *bytes = (uint8_t *)"x";
    size_t len = 1;
    char want[65], got[65];

    ensure_model(r, "latest");
    assert_int_equal(ff_registry_version_latest(r, "latest", &version,
                                                &round, &bytes, &len, &err),
                     FF_OK);
    assert_int_equal(version, 0);
    assert_null(bytes);
    assert_int_equal(len, 0);
    assert_int_equal(ff_registry_version_latest(r, "never-made", &version,
                                                &round, &bytes, &len, &err),
                     FF_OK);
    assert_int_equal(version, 0);

    fill_bytes(a1, sizeof(a1), 1);
    fill_bytes(a2, sizeof(a2), 2);
    assert_int_equal(publish(r, "latest", 0, 0, a1, sizeof(a1), NULL, 0,
                             NULL, &version, &err), FF_OK);
    assert_int_equal(publish(r, "latest", 0, 1, a2, sizeof(a2), NULL, 0,
                             NULL, &version, &err), FF_OK);
    assert_int_equal(ff_registry_version_latest(r, "latest", &version,
                                                &round, &bytes, &len, &err),
                     FF_OK);
    assert_int_equal(version, 2);
    assert_int_equal(round, 0);
    assert_int_equal(len, sizeof(a2));
    assert_memory_equal(bytes, a2, len);
    ff_registry_digest(a2, sizeof(a2), want);
    ff_registry_digest(bytes, len, got);
    assert_string_equal(want, got);
    print_message("latest: version %d, %zu bytes, blake2b %.16s...\n",
                  version, len, got);
    free(bytes);
    ff_registry_close(r);
}

/* Bytes changed behind the registry's back are caught on read. */
static void
tampered_artifact_fails_digest(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t art[4000];
    int version = 0, round = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    char stored[65], actual[65];

    ensure_model(r, "tamper");
    fill_bytes(art, sizeof(art), 99);
    assert_int_equal(publish(r, "tamper", 0, 0, art, sizeof(art), NULL, 0,
                             NULL, &version, &err), FF_OK);

    const char *params[1] = {"tamper"};
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "UPDATE versions SET artifact = "
                                     "set_byte(artifact, 7, "
                                     "(get_byte(artifact, 7) + 1) % 256) "
                                     "WHERE model = $1",
                                     1, params), 1);

    assert_int_equal(ff_registry_version_latest(r, "tamper", &version,
                                                &round, &bytes, &len, &err),
                     FF_ERR_DIGEST);
    print_message("tampered: %s\n", ff_error_text(&err));
    assert_null(bytes);
    assert_int_equal(len, 0);
    assert_int_equal(version, 0);

    /* The raw read hands the bytes and stored digest to a verifier. */
    assert_int_equal(ff_registry_version_artifact(r, "tamper", 1, &bytes,
                                                  &len, stored, &err),
                     FF_OK);
    ff_registry_digest(bytes, len, actual);
    assert_string_not_equal(stored, actual);
    free(bytes);
    assert_int_equal(ff_registry_version_artifact(r, "tamper", 2, &bytes,
                                                  &len, stored, &err),
                     FF_ERR_NOT_FOUND);
    ff_registry_close(r);
}

/* ---- hostile strings ---------------------------------------------------- */

static const char *const hostile[] = {
    "it's",
    "back\\slash \\\\ \\' \\x00",
    "'; DROP TABLE versions; --",
    "\"double\" $1 %s %n {}",
    "ctl \x01\x02\x1b[31mred\x1b[0m\x7f\ttab\nnewline\rcr",
    "\xc3\xbcnic\xc3\xb8" "de \xe2\x9c\x93",
};

/* n bytes mixing quotes, backslashes and control characters. */
static char *
long_string(size_t n)
{
    static const char alphabet[] = "ab'\\\"; -\x01\t\n%$";
    char *s = malloc(n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[i % (sizeof(alphabet) - 1)];
    s[n] = '\0';
    return s;
}

/* Finds the element of array whose `key` equals value. */
static json_t *
find_by(json_t *array, const char *key, const char *value)
{
    for (size_t i = 0; i < json_array_size(array); i++) {
        json_t *e = json_array_get(array, i);
        const char *s = json_string_value(json_object_get(e, key));
        if (s != NULL && strcmp(s, value) == 0)
            return e;
    }
    return NULL;
}

/* Quotes, backslashes, SQL, control characters and 10 KB strings are
 * stored and read back byte for byte, and nothing else happens. */
static void
hostile_strings_round_trip(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    size_t nh = sizeof(hostile) / sizeof(hostile[0]);
    char *big = long_string(10 * 1024);
    uint8_t art[64];
    int version = 0;

    /* Sites named with each hostile string, details full of them. */
    for (size_t i = 0; i < nh; i++) {
        json_t *details = json_pack("{s:s, s:[s], s:s}", "note", hostile[i],
                                    hostile[i], "as key", "big", big);
        assert_non_null(details);
        if (ff_registry_site_register(r, hostile[i], details, &err) != FF_OK)
            fail_msg("register %zu: %s", i, ff_error_text(&err));
        json_decref(details);
    }
    json_t *status = NULL;
    assert_int_equal(ff_registry_status(r, &status, &err), FF_OK);
    json_t *sites = json_object_get(status, "sites");
    for (size_t i = 0; i < nh; i++) {
        json_t *site = find_by(sites, "name", hostile[i]);
        if (site == NULL)
            fail_msg("site %zu not read back", i);
        json_t *d = json_object_get(site, "details");
        assert_string_equal(json_string_value(json_object_get(d, "note")),
                            hostile[i]);
        assert_string_equal(json_string_value(json_array_get(
                                json_object_get(d, hostile[i]), 0)),
                            "as key");
        assert_string_equal(json_string_value(json_object_get(d, "big")),
                            big);
    }
    json_decref(status);

    /* Names longer than an index key allows, or not UTF-8, are refused
     * with a reason; the audit log keeps any length. */
    assert_int_equal(ff_registry_site_register(r, big, NULL, &err),
                     FF_ERR_ARG);
    print_message("10 KB site name: %s\n", ff_error_text(&err));
    assert_int_equal(ff_registry_site_register(r, "bad \xff\xfe utf8", NULL,
                                               &err),
                     FF_ERR_ARG);
    print_message("invalid UTF-8: %s\n", ff_error_text(&err));
    json_t *details = json_pack("{s:s}", "reason", big);
    assert_int_equal(ff_registry_audit(r, big, "site.rejected", big, details,
                                       &err), FF_OK);
    json_decref(details);
    ff_audit_filter f = {.site = big};
    json_t *rows = NULL;
    assert_int_equal(ff_registry_audit_query(r, &f, &rows, &err), FF_OK);
    assert_int_equal(json_array_size(rows), 1);
    json_t *row = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(row, "actor")),
                        big);
    assert_string_equal(json_string_value(json_object_get(row, "site")), big);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(row, "details"), "reason")),
                        big);
    json_decref(rows);

    /* A hostile model name with a version, hostile contributors, and a
     * round aborted with a hostile reason. */
    const char *model = hostile[2];
    ff_contribution c[3] = {{hostile[0], 1, NULL, NULL},
                            {hostile[4], 2, NULL, NULL},
                            {hostile[5], 3, NULL, NULL}};
    ensure_model(r, model);
    start_round(r, model, 1);
    fill_bytes(art, sizeof(art), 3);
    assert_int_equal(publish(r, model, 1, 0, art, sizeof(art), c, 3, NULL,
                             &version, &err), FF_OK);
    json_t *vs = NULL;
    assert_int_equal(ff_registry_versions(r, model, &vs, &err), FF_OK);
    json_t *contrib = json_object_get(json_array_get(vs, 0),
                                      "contributions");
    for (int i = 0; i < 3; i++)
        assert_non_null(find_by(contrib, "site", c[i].site));
    json_decref(vs);
    start_round(r, model, 2);
    assert_int_equal(ff_registry_round_abort(r, model, 2, hostile[4], &err),
                     FF_OK);
    const char *params[1] = {model};
    char *reason = ff_test_db_text(&g_db,
                                   "SELECT reason FROM rounds WHERE "
                                   "model = $1 AND number = 2",
                                   1, params);
    assert_non_null(reason);
    assert_string_equal(reason, hostile[4]);
    free(reason);

    /* And the tables are all still there. */
    assert_int_equal(count1("SELECT count(*) FROM pg_tables WHERE "
                            "schemaname = 'public' AND tablename = $1",
                            "versions"), 1);
    print_message("%zu hostile strings and a %zu-byte string read back "
                  "verbatim\n",
                  nh, strlen(big));
    free(big);
    ff_registry_close(r);
}

/* ---- audit -------------------------------------------------------------- */

static json_t *
audit_rows(ff_registry *r, const char *site, const char *action,
           const char *since, const char *until, long limit)
{
    ff_error err = {0};
    ff_audit_filter f = {site, action, since, until, limit, NULL, NULL, NULL};
    json_t *rows = NULL;

    if (ff_registry_audit_query(r, &f, &rows, &err) != FF_OK)
        fail_msg("audit query: %s", ff_error_text(&err));
    return rows;
}

/* Checks that rows hold exactly these actions, in this order. */
static void
assert_actions(json_t *rows, const char *const *want, size_t n)
{
    if (json_array_size(rows) != n)
        fail_msg("%zu audit rows, expected %zu", json_array_size(rows), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(rows, i), "action")),
                            want[i]);
    json_decref(rows);
}

static void
add_audit(ff_registry *r, const char *action, const char *site)
{
    ff_error err = {0};
    if (ff_registry_audit(r, "coordinator", action, site, NULL, &err) !=
        FF_OK)
        fail_msg("audit %s: %s", action, ff_error_text(&err));
}

/* Filters by site, exact action, action prefix, time range and limit. */
static void
audit_filters(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};

    char *t0 = ff_test_db_text(&g_db, "SELECT clock_timestamp()::text", 0,
                               NULL);
    add_audit(r, "site.registered", "af-a");
    add_audit(r, "round.started", NULL);
    add_audit(r, "update.accepted", "af-a");
    add_audit(r, "update.rejected", "af-b");
    char *t1 = ff_test_db_text(&g_db, "SELECT clock_timestamp()::text", 0,
                               NULL);
    add_audit(r, "round.finished", NULL);
    add_audit(r, "site.dropped", "af-b");
    add_audit(r, "update.accepted", "af-b");
    assert_non_null(t0);
    assert_non_null(t1);

    const char *a_site[] = {"site.registered", "update.accepted"};
    assert_actions(audit_rows(r, "af-a", NULL, NULL, NULL, 0), a_site, 2);
    const char *b_site[] = {"update.rejected", "site.dropped",
                            "update.accepted"};
    assert_actions(audit_rows(r, "af-b", NULL, NULL, NULL, 0), b_site, 3);
    const char *updates[] = {"update.accepted", "update.rejected",
                             "update.accepted"};
    assert_actions(audit_rows(r, NULL, "update.*", t0, NULL, 0), updates, 3);
    const char *accepted[] = {"update.accepted", "update.accepted"};
    assert_actions(audit_rows(r, NULL, "update.accepted", t0, NULL, 0),
                   accepted, 2);
    const char *rounds[] = {"round.started", "round.finished"};
    assert_actions(audit_rows(r, NULL, "round.*", t0, NULL, 0), rounds, 2);
    const char *before[] = {"site.registered", "round.started",
                            "update.accepted", "update.rejected"};
    assert_actions(audit_rows(r, NULL, NULL, t0, t1, 0), before, 4);
    const char *after[] = {"round.finished", "site.dropped",
                           "update.accepted"};
    assert_actions(audit_rows(r, NULL, NULL, t1, NULL, 0), after, 3);
    const char *newest[] = {"site.dropped", "update.accepted"};
    assert_actions(audit_rows(r, NULL, NULL, t0, NULL, 2), newest, 2);
    json_t *all = audit_rows(r, NULL, "*", t0, NULL, 0);
    assert_int_equal(json_array_size(all), 7);
    json_decref(all);
    json_t *none = audit_rows(r, "af-a", "round.*", NULL, NULL, 0);
    assert_int_equal(json_array_size(none), 0);
    json_decref(none);

    /* A time PostgreSQL cannot read is the caller's mistake. */
    ff_audit_filter bad = {.since = "not-a-time"};
    json_t *rows = NULL;
    assert_int_equal(ff_registry_audit_query(r, &bad, &rows, &err),
                     FF_ERR_ARG);
    assert_null(rows);
    print_message("audit filters over 7 rows between %s and now; bad time: "
                  "%s\n",
                  t0, ff_error_text(&err));
    free(t0);
    free(t1);
    ff_registry_close(r);
}

/* ---- rounds and status --------------------------------------------------- */

/* An aborted round keeps its reason, is audited, cannot be aborted,
 * restarted or published again. */
static void
round_abort(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t art[32];
    int version = 0, last = 0;

    ensure_model(r, "abort");
    start_round(r, "abort", 1);
    start_round(r, "abort", 1);  /* a running round may be re-announced */
    assert_int_equal(ff_registry_round_abort(r, "abort", 1,
                                             "quorum lost: 1 of 3 sites",
                                             &err), FF_OK);
    const char *params[1] = {"abort"};
    char *st = ff_test_db_text(&g_db,
                               "SELECT state || '|' || reason || '|' || "
                               "(finished_at IS NOT NULL) FROM rounds "
                               "WHERE model = $1 AND number = 1",
                               1, params);
    assert_non_null(st);
    assert_string_equal(st, "aborted|quorum lost: 1 of 3 sites|true");
    free(st);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'round.aborted' AND details->>'model' = $1 AND "
                            "details->>'reason' = 'quorum lost: 1 of 3 "
                            "sites'", "abort"), 1);

    assert_int_equal(ff_registry_round_abort(r, "abort", 1, "again", &err),
                     FF_ERR_STATE);
    assert_int_equal(ff_registry_round_abort(r, "abort", 9, "none", &err),
                     FF_ERR_NOT_FOUND);
    json_t *cfg = json_object();
    assert_int_equal(ff_registry_round_start(r, "abort", 1, cfg, &err),
                     FF_ERR_STATE);
    assert_int_equal(ff_registry_round_start(r, "no-such-model", 1, cfg,
                                             &err), FF_ERR_NOT_FOUND);
    json_decref(cfg);
    fill_bytes(art, sizeof(art), 8);
    snapshot before = take_snapshot();
    assert_int_equal(publish(r, "abort", 1, 0, art, sizeof(art), NULL, 0,
                             NULL, &version, &err), FF_ERR_STATE);
    assert_same_snapshot(before, take_snapshot());
    assert_int_equal(ff_registry_round_last(r, "abort", &last, &err), FF_OK);
    assert_int_equal(last, 1);
    assert_int_equal(ff_registry_round_last(r, "no-such-model", &last, &err),
                     FF_OK);
    assert_int_equal(last, 0);
    print_message("aborted round refused a second abort, a restart and a "
                  "publication\n");
    ff_registry_close(r);
}

/* The coordinator's heartbeat and the sites' last contact show in
 * status. */
static void
status_shows_coordinator_and_sites(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *status = NULL;

    ensure_model(r, "status");
    assert_int_equal(ff_registry_coordinator_state(r, "status", "waiting",
                                                   "127.0.0.1:50051", 4,
                                                   &err), FF_OK);
    assert_int_equal(ff_registry_site_register(r, "st-site", NULL, &err),
                     FF_OK);
    assert_int_equal(ff_registry_site_seen(r, "st-site", &err), FF_OK);
    assert_int_equal(ff_registry_site_seen(r, "st-never", &err),
                     FF_ERR_NOT_FOUND);
    start_round(r, "status", 5);

    assert_int_equal(ff_registry_status(r, &status, &err), FF_OK);
    json_t *c = json_object_get(status, "coordinator");
    assert_string_equal(json_string_value(json_object_get(c, "state")),
                        "waiting");
    assert_string_equal(json_string_value(json_object_get(c, "address")),
                        "127.0.0.1:50051");
    assert_int_equal(json_integer_value(json_object_get(c, "round")), 4);
    assert_int_equal(json_integer_value(json_object_get(c, "pid")),
                     getpid());
    double age = json_number_value(json_object_get(c, "heartbeat_age_s"));
    assert_true(age >= 0.0 && age < 30.0);
    json_t *site = find_by(json_object_get(status, "sites"), "name",
                           "st-site");
    assert_non_null(site);
    double seen = json_number_value(json_object_get(site,
                                                    "last_seen_age_s"));
    assert_true(seen >= 0.0 && seen < 30.0);
    json_t *cur = json_object_get(status, "current_rounds");
    assert_non_null(find_by(cur, "model", "status"));
    print_message("status: heartbeat age %.3f s, site last seen %.3f s "
                  "ago\n",
                  age, seen);
    json_decref(status);
    ff_registry_close(r);
}

/* Kills the server session that holds the claim on model; returns how
 * many sessions were terminated. */
static long long
kill_claim_holder(const char *model)
{
    char ns[24];
    const char *params[2] = {ns, model};

    snprintf(ns, sizeof(ns), "%d", FF_REGISTRY_CLAIM_NAMESPACE);
    return ff_test_db_number(
        &g_db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
        "WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
        "AND classid = $1::int::oid "
        "AND objid = (hashtext($2)::bigint & 4294967295)::oid",
        2, params);
}

/* Runs a cheap registry call on r until it no longer fails with
 * FF_ERR_DB (the first call after the session was killed notices it). */
static ff_status
poke(ff_registry *r, ff_error *err)
{
    ff_status st = FF_ERR_DB;

    for (int i = 0; i < 3 && st == FF_ERR_DB; i++)
        st = ff_registry_schema_version(r, NULL, NULL, err);
    return st;
}

/* Two handles cannot claim one model; a lost connection re-takes the
 * claim, or fails with FF_ERR_STATE while someone else holds it. */
static void
model_claim_is_exclusive(void **state)
{
    (void)state;
    ff_registry *a = reg_open(), *b = reg_open(), *c = NULL;
    ff_error err = {0};

    /* a claims; b is refused, naming a's pid from the coordinator row. */
    ensure_model(a, "claimed");
    assert_int_equal(ff_registry_model_claim(a, "claimed", &err), FF_OK);
    assert_int_equal(ff_registry_model_claim(a, "claimed", &err), FF_OK);
    assert_int_equal(ff_registry_coordinator_state(a, "claimed", "waiting",
                                                   "127.0.0.1:1", 0, &err),
                     FF_OK);
    assert_int_equal(ff_registry_model_claim(b, "claimed", &err),
                     FF_ERR_STATE);
    print_message("second claim: %s\n", ff_error_text(&err));
    char want[64];
    snprintf(want, sizeof(want), "(pid %d)", (int)getpid());
    assert_non_null(strstr(ff_error_text(&err), "already served"));
    assert_non_null(strstr(ff_error_text(&err), want));
    assert_int_equal(ff_registry_model_claim(a, "other", &err),
                     FF_ERR_STATE);
    assert_int_equal(ff_registry_model_claim(b, "other", &err), FF_OK);

    /* a's session dies; b takes the model; a cannot get it back. */
    assert_int_equal(kill_claim_holder("claimed"), 1);
    err = (ff_error){0};
    ff_registry_close(b);
    b = reg_open();
    assert_int_equal(ff_registry_model_claim(b, "claimed", &err), FF_OK);
    assert_int_equal(poke(a, &err), FF_ERR_STATE);
    print_message("after reconnect: %s\n", ff_error_text(&err));
    assert_non_null(strstr(ff_error_text(&err), "already served"));

    /* b lets go; a's next call takes the claim again and holds it. */
    ff_registry_close(b);
    assert_int_equal(poke(a, &err), FF_OK);
    assert_int_equal(ff_registry_open(&c, g_db.conninfo, &err), FF_OK);
    assert_int_equal(ff_registry_model_claim(c, "claimed", &err),
                     FF_ERR_STATE);
    ff_registry_close(c);
    ff_registry_close(a);

    /* Closing the handle frees the model. */
    assert_int_equal(ff_registry_open(&c, g_db.conninfo, &err), FF_OK);
    assert_int_equal(ff_registry_model_claim(c, "claimed", &err), FF_OK);
    ff_registry_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrations_from_empty_concurrent_and_rerun),
        cmocka_unit_test(publish_chain_of_three),
        cmocka_unit_test(parent_mismatch_writes_nothing),
        cmocka_unit_test(concurrent_publishers_one_wins),
        cmocka_unit_test(digest_mismatch_rejected),
        cmocka_unit_test(latest_version_bytes_verified),
        cmocka_unit_test(tampered_artifact_fails_digest),
        cmocka_unit_test(hostile_strings_round_trip),
        cmocka_unit_test(audit_filters),
        cmocka_unit_test(round_abort),
        cmocka_unit_test(status_shows_coordinator_and_sites),
        cmocka_unit_test(model_claim_is_exclusive),
    };

    if (ff_test_db_create(&g_db, "registry") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
