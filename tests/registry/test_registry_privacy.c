/*
 * test_registry_privacy.c - the privacy ledger, model budgets and version
 * privacy summaries against a real PostgreSQL server, migration 3
 * applied to a database holding version-2 rows, and migration 6: the
 * append-only ledger, its model rows checked against the audit log, the
 * ledger read in pages and summed up per site. Each run works in its own
 * fresh database.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "registry_schema.h"

static ff_test_db g_db;

/* ---- helpers ---------------------------------------------------------- */

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

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

static void
ensure_model(ff_registry *r, const char *model)
{
    ff_error err = {0};
    json_t *cfg = json_pack("{s:s}", "arch", "fused-mlp");

    must(ff_registry_model_ensure(r, model, cfg, &err), &err, model);
    json_decref(cfg);
}

static long long
count1(const char *sql, const char *p1)
{
    const char *params[1] = {p1};
    return ff_test_db_number(&g_db, sql, p1 ? 1 : 0, params);
}

/* The largest |a - b| seen by near(), printed at the end. */
static double g_worst;

/* Checks that JSON member key of o is a number equal to want (the
 * tolerance is 0: doubles must come back bit for bit). */
static void
near(const json_t *o, const char *key, double want)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_number(v))
        fail_msg("%s: not a number", key);
    double d = fabs(json_number_value(v) - want);
    if (d > g_worst)
        g_worst = d;
    if (json_number_value(v) != want)
        fail_msg("%s: %.17g, expected %.17g", key, json_number_value(v),
                 want);
}

/* A spent DP-SGD entry of site for round, with everything set. */
static ff_ledger_entry
site_entry(const char *model, const char *site, int round, double eps)
{
    ff_ledger_entry e = {0};

    e.model = model;
    e.round = round;
    e.site = site;
    e.status = "spent";
    e.mechanism = "dp-sgd";
    e.epsilon = eps;
    e.delta = 1e-5;
    e.noise_multiplier = 1.0937;
    e.clip = 1.0;
    e.sampling_rate = 0.0107;
    e.steps = 94;
    e.budget = 8.0;
    return e;
}

/* ---- migration 3 over version-2 rows ------------------------------------ */

/* A checksum of every row of table t as text, in a stable order. */
static char *
table_sum(const char *select)
{
    return ff_test_db_text(&g_db, select, 0, NULL);
}

static const char *const sums[] = {
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM models t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM sites t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM rounds t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) "
    "FROM contributions t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM audit t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) "
    "FROM coordinator t",
    /* versions gains a column: compare the old ones. */
    "SELECT md5(string_agg(row(model, number, parent, round, train_config, "
    "metrics, digest, artifact, artifact_len, created_at)::text, ',' "
    "ORDER BY model, number)) FROM versions",
};
#define NSUMS (sizeof(sums) / sizeof(sums[0]))

/* Writes what a version-2 coordinator leaves: a model, a site, two
 * rounds (one published with its version and contributions, one
 * aborted), the coordinator row and audit rows. The version is inserted
 * with SQL because the code now writes the v3 column. */
static void
v2_populate(ff_registry *r, const uint8_t *art, size_t len, char hex[65])
{
    ff_error err = {0};
    char arthex[2 * 64 + 1];

    ensure_model(r, "legacy");
    json_t *d = json_pack("{s:i}", "examples", 600);
    must(ff_registry_site_register(r, "hospital-a", d, &err), &err, "site");
    json_decref(d);
    must(ff_registry_round_start(r, "legacy", 1, NULL, &err), &err, "r1");
    must(ff_registry_coordinator_state(r, "legacy", "waiting", "127.0.0.1:1",
                                       1, &err), &err, "coordinator");

    /* Version 1 of round 1, as ff_registry_version_publish wrote it. */
    ff_registry_digest(art, len, hex);
    for (size_t i = 0; i < len; i++)
        snprintf(arthex + 2 * i, 3, "%02x", art[i]);
    const char *p[2] = {hex, arthex};
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "INSERT INTO versions (model, number, "
                                     "round, metrics, digest, artifact, "
                                     "artifact_len) VALUES ('legacy', 1, 1, "
                                     "'{\"accuracy\": 0.75}', $1, "
                                     "decode($2, 'hex'), 64)",
                                     2, p), 1);
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "INSERT INTO contributions VALUES "
                                     "('legacy', 1, 'hospital-a', 600)",
                                     0, NULL), 1);
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "UPDATE rounds SET state = 'published', "
                                     "finished_at = now() WHERE model = "
                                     "'legacy' AND number = 1",
                                     0, NULL), 1);
    must(ff_registry_round_start(r, "legacy", 2, NULL, &err), &err, "r2");
    must(ff_registry_round_abort(r, "legacy", 2, "quorum lost", &err), &err,
         "abort");
}

/* A database at schema 2 with rows in every table migrates to 3 keeping
 * every row as it was; the old version reads back with privacy null and
 * the model takes ledger entries and new versions. Runs first, on the
 * still empty database. */
static void
migration_3_keeps_version_2_rows(void **state)
{
    (void)state;
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0, current = 0, latest = 0;
    uint8_t art[64];
    char hex[65];
    char *before[NSUMS];

    /* Schema 2 and its rows. */
    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate_to(r, 2, &version, &err), &err, "migrate to 2");
    assert_int_equal(version, 2);
    assert_int_equal(count1("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = 'privacy_ledger'", NULL), 0);
    for (size_t i = 0; i < sizeof(art); i++)
        art[i] = (uint8_t)(i * 7 + 3);
    v2_populate(r, art, sizeof(art), hex);
    long long rows2 = count1("SELECT (SELECT count(*) FROM models) + "
                             "(SELECT count(*) FROM sites) + (SELECT count(*) "
                             "FROM rounds) + (SELECT count(*) FROM versions) "
                             "+ (SELECT count(*) FROM contributions) + "
                             "(SELECT count(*) FROM audit) + (SELECT count(*) "
                             "FROM coordinator)", NULL);
    for (size_t i = 0; i < NSUMS; i++) {
        before[i] = table_sum(sums[i]);
        assert_non_null(before[i]);
    }

    /* To 3: same rows, same contents. */
    must(ff_registry_migrate_to(r, 3, &version, &err), &err, "migrate to 3");
    must(ff_registry_schema_version(r, &current, &latest, &err), &err, "v");
    assert_int_equal(version, 3);
    assert_int_equal(current, 3);
    assert_true(latest >= 3);
    long long rows3 = count1("SELECT (SELECT count(*) FROM models) + "
                             "(SELECT count(*) FROM sites) + (SELECT count(*) "
                             "FROM rounds) + (SELECT count(*) FROM versions) "
                             "+ (SELECT count(*) FROM contributions) + "
                             "(SELECT count(*) FROM audit) + (SELECT count(*) "
                             "FROM coordinator)", NULL);
    assert_int_equal(rows2, rows3);
    for (size_t i = 0; i < NSUMS; i++) {
        char *after = table_sum(sums[i]);
        assert_non_null(after);
        assert_string_equal(before[i], after);
        free(after);
        free(before[i]);
    }

    /* The old version: bytes verified, privacy null. */
    uint8_t *got = NULL;
    size_t len = 0;
    int v = 0, round = 0;
    must(ff_registry_version_latest(r, "legacy", &v, &round, &got, &len,
                                    &err), &err, "latest");
    assert_int_equal(v, 1);
    assert_int_equal(len, sizeof(art));
    assert_memory_equal(got, art, sizeof(art));
    free(got);

    /* The views read the latest schema (stages came with 5). */
    must(ff_registry_migrate(r, &version, &err), &err, "migrate to latest");
    json_t *list = NULL;
    must(ff_registry_versions(r, "legacy", &list, &err), &err, "versions");
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_is_null(json_object_get(json_array_get(list, 0),
                                             "privacy")));
    json_decref(list);

    /* And it takes the new things. */
    ff_ledger_entry e = site_entry("legacy", "hospital-a", 3, 0.5);
    must(ff_registry_ledger_add(r, &e, &err), &err, "ledger on migrated");
    must(ff_registry_budget_set(r, "legacy", 3.0, 1e-5, "operator:t", &err),
         &err, "budget on migrated");
    print_message("%lld rows kept through migration 2 -> 3, %zu table "
                  "checksums equal\n", rows3, NSUMS);
    ff_registry_close(r);
}

/* ---- the ledger --------------------------------------------------------- */

/* Entries of every kind come back as written, oldest first; infinities
 * and NaNs as null; each write has its audit row. */
static void
ledger_round_trip(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *l = NULL;

    ensure_model(r, "dp");

    /* Round 1: a DP-SGD site, a site without DP, a refusal, the model. */
    ff_ledger_entry e[4];
    e[0] = site_entry("dp", "hospital-a", 1, 1.2345678901234567);
    e[1] = site_entry("dp", "hospital-b", 1, INFINITY);
    e[1].mechanism = "none";
    e[1].noise_multiplier = NAN;
    e[1].clip = NAN;
    e[1].sampling_rate = NAN;
    e[1].steps = 0;
    e[1].budget = INFINITY;
    e[2] = site_entry("dp", "hospital-c", 1, 8.75);
    e[2].status = "refused";
    e[2].reason = "round 1 would bring epsilon to 8.75 > budget 8 "
                  "(delta 1e-05)";
    e[3] = site_entry("dp", NULL, 1, 0.4125);
    e[3].mechanism = "central-gaussian";
    e[3].noise_multiplier = 0.9876;
    e[3].clip = 0.25;
    e[3].sampling_rate = 1.0;
    e[3].steps = 1;
    e[3].budget = 2.0;
    e[3].params = json_pack("{s:f, s:i, s:s}", "clip_in_force", 0.25,
                            "clients", 3, "grid", "default");
    for (int i = 0; i < 4; i++)
        must(ff_registry_ledger_add(r, &e[i], &err), &err, "ledger_add");

    must(ff_registry_ledger(r, "dp", &l, &err), &err, "ledger");
    assert_string_equal(json_string_value(json_object_get(l, "model")), "dp");
    assert_true(json_is_null(json_object_get(l, "budget")));
    const json_t *es = json_object_get(l, "entries");
    assert_int_equal(json_array_size(es), 4);

    /* hospital-a: every number bit for bit. */
    const json_t *a = json_array_get(es, 0);
    assert_string_equal(json_string_value(json_object_get(a, "site")),
                        "hospital-a");
    assert_string_equal(json_string_value(json_object_get(a, "status")),
                        "spent");
    assert_string_equal(json_string_value(json_object_get(a, "mechanism")),
                        "dp-sgd");
    assert_int_equal(json_integer_value(json_object_get(a, "round")), 1);
    near(a, "epsilon", 1.2345678901234567);
    near(a, "delta", 1e-5);
    near(a, "noise_multiplier", 1.0937);
    near(a, "clip", 1.0);
    near(a, "sampling_rate", 0.0107);
    near(a, "steps", 94);
    near(a, "budget", 8.0);
    assert_true(json_is_null(json_object_get(a, "reason")));
    assert_true(json_is_null(json_object_get(a, "params")));
    assert_non_null(json_string_value(json_object_get(a, "at")));

    /* hospital-b: unbounded epsilon, no budget, nothing applicable. */
    const json_t *b = json_array_get(es, 1);
    static const char *const nulls[] = {"epsilon", "noise_multiplier",
                                        "clip", "sampling_rate", "budget"};
    for (size_t i = 0; i < 5; i++)
        if (!json_is_null(json_object_get(b, nulls[i])))
            fail_msg("hospital-b %s is not null", nulls[i]);
    assert_string_equal(json_string_value(json_object_get(b, "mechanism")),
                        "none");

    /* The refusal and its reason; the model's entry with params. */
    const json_t *c = json_array_get(es, 2);
    assert_string_equal(json_string_value(json_object_get(c, "status")),
                        "refused");
    assert_string_equal(json_string_value(json_object_get(c, "reason")),
                        e[2].reason);
    near(c, "epsilon", 8.75);
    const json_t *m = json_array_get(es, 3);
    assert_true(json_is_null(json_object_get(m, "site")));
    near(m, "epsilon", 0.4125);
    near(m, "noise_multiplier", 0.9876);
    assert_true(json_equal(json_object_get(m, "params"), e[3].params));
    json_decref(l);

    /* One audit row per entry, with round, epsilon and mechanism. */
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.spent' AND details->>'model' = $1",
                            "dp"), 3);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.refused' AND site = 'hospital-c' AND "
                            "details->>'reason' LIKE 'round 1 would%' AND "
                            "(details->>'epsilon')::float8 = 8.75 AND "
                            "details->>'mechanism' = 'dp-sgd' AND "
                            "(details->>'round')::int = 1 AND "
                            "details->>'model' = $1", "dp"), 1);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.spent' AND site = 'hospital-b' AND "
                            "details->'epsilon' = 'null'::jsonb AND "
                            "details->'budget' = 'null'::jsonb AND "
                            "details->>'model' = $1", "dp"), 1);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.spent' AND site IS NULL AND actor = "
                            "'coordinator' AND details->>'mechanism' = "
                            "'central-gaussian' AND details->>'model' = $1",
                            "dp"), 1);
    json_decref(e[3].params);
    print_message("4 entries round-trip exactly (largest difference %g, "
                  "tolerance 0); 4 audit rows\n", g_worst);
    ff_registry_close(r);
}

/* The ledger row and its audit row are one transaction: when the audit
 * insert fails (a trigger refuses it), the ledger row is not there. */
static void
ledger_and_audit_are_one_transaction(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};

    ensure_model(r, "atomic");
    assert_true(ff_test_db_exec(&g_db,
                                "CREATE FUNCTION refuse_boom() RETURNS "
                                "trigger LANGUAGE plpgsql AS $$ BEGIN "
                                "IF NEW.details->>'reason' = 'boom' THEN "
                                "RAISE EXCEPTION 'audit refused'; END IF; "
                                "RETURN NEW; END $$",
                                0, NULL) >= 0);
    assert_true(ff_test_db_exec(&g_db,
                                "CREATE TRIGGER refuse_boom BEFORE INSERT ON "
                                "audit FOR EACH ROW EXECUTE FUNCTION "
                                "refuse_boom()",
                                0, NULL) >= 0);

    ff_ledger_entry e = site_entry("atomic", "hospital-a", 1, 2.0);
    e.status = "refused";
    e.reason = "boom";
    assert_int_equal(ff_registry_ledger_add(r, &e, &err), FF_ERR_DB);
    print_message("audit refused: %s\n", ff_error_text(&err));
    assert_int_equal(count1("SELECT count(*) FROM privacy_ledger WHERE "
                            "model = $1", "atomic"), 0);

    /* The same entry with another reason goes through, both rows. */
    e.reason = "fine";
    must(ff_registry_ledger_add(r, &e, &err), &err, "ledger_add");
    assert_int_equal(count1("SELECT count(*) FROM privacy_ledger WHERE "
                            "model = $1", "atomic"), 1);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE details->>"
                            "'model' = $1", "atomic"), 1);
    assert_true(ff_test_db_exec(&g_db, "DROP TRIGGER refuse_boom ON audit",
                                0, NULL) >= 0);
    ff_registry_close(r);
}

/* One malformed field of an entry, and the words its message must hold. */
typedef struct bad_case {
    const char *what;
    ff_status want;
    const char *message;
} bad_case;

/* Applies bad case i to e. */
static void
spoil(ff_ledger_entry *e, size_t i, char *long_name)
{
    switch (i) {
    case 0: e->epsilon = NAN; break;
    case 1: e->epsilon = -0.5; break;
    case 2: e->delta = NAN; break;
    case 3: e->delta = 1.5; break;
    case 4: e->status = "burnt"; break;
    case 5: e->status = NULL; break;
    case 6: e->mechanism = "laplace"; break;
    case 7: e->mechanism = NULL; break;
    case 8: e->round = 0; break;
    case 9: e->round = -3; break;
    case 10: e->model = ""; break;
    case 11: e->model = long_name; break;
    case 12: e->site = ""; break;
    case 13: e->site = long_name; break;
    case 14: e->budget = NAN; break;
    case 15: e->budget = -1; break;
    case 16: e->steps = -1; break;
    case 17: e->sampling_rate = 1.5; break;
    case 18: e->clip = INFINITY; break;
    case 19: e->noise_multiplier = -1; break;
    case 20: e->model = "no-such-model"; break;
    default: break;
    }
}

/* Each malformed entry is refused with a message naming the field, and
 * neither a ledger row nor an audit row is written. */
static void
bad_entries_rejected_nothing_written(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"NaN epsilon", FF_ERR_ARG, "epsilon"},
        {"negative epsilon", FF_ERR_ARG, "epsilon"},
        {"NaN delta", FF_ERR_ARG, "delta"},
        {"delta 1.5", FF_ERR_ARG, "delta"},
        {"status burnt", FF_ERR_ARG, "burnt"},
        {"no status", FF_ERR_ARG, "status"},
        {"mechanism laplace", FF_ERR_ARG, "laplace"},
        {"no mechanism", FF_ERR_ARG, "mechanism"},
        {"round 0", FF_ERR_ARG, "round 0"},
        {"round -3", FF_ERR_ARG, "round -3"},
        {"empty model", FF_ERR_ARG, "model name is empty"},
        {"201-byte model", FF_ERR_ARG, "model name is 201 bytes"},
        {"empty site", FF_ERR_ARG, "site name is empty"},
        {"201-byte site", FF_ERR_ARG, "site name is 201 bytes"},
        {"NaN budget", FF_ERR_ARG, "budget"},
        {"negative budget", FF_ERR_ARG, "budget"},
        {"negative steps", FF_ERR_ARG, "steps"},
        {"sampling rate 1.5", FF_ERR_ARG, "sampling rate"},
        {"infinite clip", FF_ERR_ARG, "clip"},
        {"negative noise", FF_ERR_ARG, "noise multiplier"},
        {"unknown model", FF_ERR_NOT_FOUND, "no such model"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    ff_registry *r = reg_open();
    char long_name[202];

    memset(long_name, 'x', 201);
    long_name[201] = '\0';
    ensure_model(r, "strict");
    long long ledger0 = count1("SELECT count(*) FROM privacy_ledger", NULL);
    long long audit0 = count1("SELECT count(*) FROM audit", NULL);

    for (size_t i = 0; i < n; i++) {
        ff_error err = {0};
        ff_ledger_entry e = site_entry("strict", "hospital-a", 2, 1.0);
        spoil(&e, i, long_name);
        ff_status st = ff_registry_ledger_add(r, &e, &err);
        if (st != cases[i].want || strstr(ff_error_text(&err),
                                          cases[i].message) == NULL)
            fail_msg("%s: status %s, message '%s'", cases[i].what,
                     ff_status_name(st), ff_error_text(&err));
        print_message("  %-18s -> %s\n", cases[i].what, ff_error_text(&err));
    }

    /* A params value that is not an object. */
    ff_error err = {0};
    ff_ledger_entry e = site_entry("strict", "hospital-a", 2, 1.0);
    e.params = json_pack("[i]", 1);
    assert_int_equal(ff_registry_ledger_add(r, &e, &err), FF_ERR_ARG);
    assert_non_null(strstr(ff_error_text(&err), "params"));
    json_decref(e.params);

    assert_int_equal(count1("SELECT count(*) FROM privacy_ledger", NULL),
                     ledger0);
    assert_int_equal(count1("SELECT count(*) FROM audit", NULL), audit0);
    print_message("%zu bad entries refused; ledger rows %lld and audit rows "
                  "%lld unchanged\n", n + 1, ledger0, audit0);
    ff_registry_close(r);
}

/* ---- budgets ------------------------------------------------------------ */

/* Set, read, overwrite; each audited with its actor and the previous
 * budget; bad values and unknown models change nothing. */
static void
budget_set_get_overwrite(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    double eps = -7, delta = -7;
    int found = 1;

    ensure_model(r, "budgeted");
    must(ff_registry_budget_get(r, "budgeted", &eps, &delta, &found, &err),
         &err, "get none");
    assert_int_equal(found, 0);
    assert_true(eps == -7 && delta == -7);

    /* Set, read back exactly. */
    must(ff_registry_budget_set(r, "budgeted", 4.0, 1e-5, "operator:alice",
                                &err), &err, "set");
    must(ff_registry_budget_get(r, "budgeted", &eps, &delta, &found, &err),
         &err, "get");
    assert_int_equal(found, 1);
    assert_true(eps == 4.0 && delta == 1e-5);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.budget_set' AND actor = "
                            "'operator:alice' AND details->'previous' = "
                            "'null'::jsonb AND details->>'model' = $1",
                            "budgeted"), 1);

    /* Overwrite: one row, the new values, the old ones in the audit. */
    must(ff_registry_budget_set(r, "budgeted", 2.4999999999999996, 1e-6,
                                "operator:bob", &err), &err, "overwrite");
    must(ff_registry_budget_get(r, "budgeted", &eps, &delta, &found, &err),
         &err, "get");
    assert_true(eps == 2.4999999999999996 && delta == 1e-6);
    assert_int_equal(count1("SELECT count(*) FROM model_budget WHERE "
                            "model = $1", "budgeted"), 1);
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'privacy.budget_set' AND actor = 'operator:bob' "
                            "AND (details->'previous'->>'epsilon')::float8 = "
                            "4 AND details->'previous'->>'set_by' = "
                            "'operator:alice' AND details->>'model' = $1",
                            "budgeted"), 1);
    json_t *l = NULL;
    must(ff_registry_ledger(r, "budgeted", &l, &err), &err, "ledger");
    const json_t *b = json_object_get(l, "budget");
    near(b, "epsilon", 2.4999999999999996);
    near(b, "delta", 1e-6);
    assert_string_equal(json_string_value(json_object_get(b, "set_by")),
                        "operator:bob");
    assert_int_equal(json_array_size(json_object_get(l, "entries")), 0);
    json_decref(l);

    /* Refusals: values, actor, model. */
    static const double bad[][2] = {{0, 1e-5},   {-1, 1e-5}, {NAN, 1e-5},
                                    {INFINITY, 1e-5}, {1, 0}, {1, 1},
                                    {1, NAN},    {1, -1e-5}};
    long long audit0 = count1("SELECT count(*) FROM audit", NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ff_registry_budget_set(r, "budgeted", bad[i][0],
                                                bad[i][1], "operator:x",
                                                &err), FF_ERR_ARG);
        assert_true(strstr(ff_error_text(&err), "budget") != NULL);
    }
    print_message("bad budget: %s\n", ff_error_text(&err));
    assert_int_equal(ff_registry_budget_set(r, "budgeted", 1, 1e-5, "",
                                            &err), FF_ERR_ARG);
    assert_int_equal(ff_registry_budget_set(r, "budgeted", 1, 1e-5, NULL,
                                            &err), FF_ERR_ARG);
    assert_int_equal(ff_registry_budget_set(r, "nobody", 1, 1e-5,
                                            "operator:x", &err),
                     FF_ERR_NOT_FOUND);
    print_message("unknown model: %s\n", ff_error_text(&err));
    assert_int_equal(count1("SELECT count(*) FROM audit", NULL), audit0);
    must(ff_registry_budget_get(r, "budgeted", &eps, &delta, &found, &err),
         &err, "get");
    assert_true(eps == 2.4999999999999996 && delta == 1e-6);
    must(ff_registry_budget_get(r, "nobody", &eps, &delta, &found, &err),
         &err, "get unknown");
    assert_int_equal(found, 0);
    ff_registry_close(r);
}

/* The ledger of an unknown model is FF_ERR_NOT_FOUND. */
static void
ledger_of_unknown_model(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *l = NULL;

    assert_int_equal(ff_registry_ledger(r, "nobody", &l, &err),
                     FF_ERR_NOT_FOUND);
    assert_null(l);
    assert_non_null(strstr(ff_error_text(&err), "no such model"));
    ff_registry_close(r);
}

/* ---- version privacy ---------------------------------------------------- */

static ff_status
publish(ff_registry *r, const char *model, int parent, json_t *privacy,
        ff_error *err)
{
    uint8_t art[100];
    char digest[65];
    ff_version_new v = {0};
    static const ff_contribution c[] = {{"hospital-a", 10, NULL, NULL}};

    for (size_t i = 0; i < sizeof(art); i++)
        art[i] = (uint8_t)(i ^ (unsigned)parent);
    ff_registry_digest(art, sizeof(art), digest);
    v.model = model;
    v.parent = parent;
    v.contributions = c;
    v.n_contributions = 1;
    v.artifact = art;
    v.artifact_len = sizeof(art);
    v.digest_hex = digest;
    v.privacy = privacy;
    return ff_registry_version_publish(r, &v, NULL, err);
}

/* The privacy summary is stored with the version and comes back from
 * versions and show; NULL stays null; a non-object is refused. */
static void
version_privacy_stored_and_shown(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *list = NULL, *one = NULL;

    ensure_model(r, "private");
    json_t *p = json_pack("{s:f, s:n, s:f, s:s}", "record_epsilon",
                          3.4567890123, "site_epsilon", "delta", 1e-5,
                          "site_mechanism", "none");
    must(publish(r, "private", 0, p, &err), &err, "publish 1");
    must(publish(r, "private", 1, NULL, &err), &err, "publish 2");
    json_t *arr = json_pack("[f]", 1.0);
    assert_int_equal(publish(r, "private", 2, arr, &err), FF_ERR_ARG);
    assert_non_null(strstr(ff_error_text(&err), "privacy"));
    json_decref(arr);
    assert_int_equal(count1("SELECT count(*) FROM versions WHERE model = $1",
                            "private"), 2);

    must(ff_registry_versions(r, "private", &list, &err), &err, "versions");
    const json_t *got = json_object_get(json_array_get(list, 0), "privacy");
    assert_true(json_equal(got, p));
    near(got, "record_epsilon", 3.4567890123);
    assert_true(json_is_null(json_object_get(got, "site_epsilon")));
    assert_true(json_is_null(json_object_get(json_array_get(list, 1),
                                             "privacy")));
    must(ff_registry_version_show(r, "private", 1, &one, &err), &err, "show");
    assert_true(json_equal(json_object_get(one, "privacy"), p));
    assert_int_equal(count1("SELECT count(*) FROM audit WHERE action = "
                            "'version.published' AND details->'privacy'->>"
                            "'site_mechanism' = 'none' AND details->>'model' "
                            "= $1", "private"), 1);
    json_decref(one);
    json_decref(list);
    json_decref(p);
    ff_registry_close(r);
}

/* ---- migration 6: append-only, checked against the audit log ------------ */

/* Runs sql on the test connection; the server's error message (malloc'd)
 * or NULL when it succeeded. */
static char *
exec_error(const char *sql)
{
    PGresult *res = PQexec(g_db.conn, sql);
    ExecStatusType s = PQresultStatus(res);
    char *msg = NULL;

    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        msg = strdup(PQresultErrorMessage(res));
    PQclear(res);
    return msg;
}

static void
exec_ok(const char *sql)
{
    char *msg = exec_error(sql);

    if (msg != NULL)
        fail_msg("%s: %s", sql, msg);
}

/* Writes model rows of rounds 1..n (spent, epsilon 0.25 per round), two
 * site rows per round, and a model refusal in round n + 1. */
static void
guarded_populate(ff_registry *r, const char *model, int n)
{
    ff_error err = {0};

    ensure_model(r, model);
    for (int k = 1; k <= n + 1; k++) {
        ff_ledger_entry s1 = site_entry(model, "hospital-a", k, 0.5 * k);
        ff_ledger_entry s2 = site_entry(model, "hospital-b", k, 0.75 * k);
        ff_ledger_entry m = site_entry(model, NULL, k, 0.25 * k);
        m.mechanism = "central-gaussian";
        m.steps = 1;
        m.budget = 0.25 * n + 0.1;
        if (k == n + 1) {
            m.status = "refused";
            m.reason = "would exceed the budget";
        }
        must(ff_registry_ledger_add(r, &s1, &err), &err, "site a");
        must(ff_registry_ledger_add(r, &s2, &err), &err, "site b");
        must(ff_registry_ledger_add(r, &m, &err), &err, "model");
    }
}

/* UPDATE, DELETE and TRUNCATE of privacy_ledger are refused, for this
 * superuser too; nothing changes. */
static void
ledger_trigger_refuses_changes(void **state)
{
    (void)state;
    static const char *const sql[] = {
        "UPDATE privacy_ledger SET epsilon = 0 WHERE model = 'frozen'",
        "DELETE FROM privacy_ledger WHERE model = 'frozen' AND site IS NULL",
        "TRUNCATE privacy_ledger",
    };
    static const char *const op[] = {"UPDATE", "DELETE", "TRUNCATE"};
    ff_registry *r = reg_open();

    guarded_populate(r, "frozen", 3);
    long long rows = count1("SELECT count(*) FROM privacy_ledger", NULL);
    char *sum = table_sum("SELECT md5(string_agg(t::text, ',' ORDER BY "
                          "t.id)) FROM privacy_ledger t");
    for (size_t i = 0; i < 3; i++) {
        char want[80];
        char *msg = exec_error(sql[i]);
        snprintf(want, sizeof(want), "privacy_ledger is append-only: %s "
                 "refused", op[i]);
        if (msg == NULL || strstr(msg, want) == NULL)
            fail_msg("%s: expected '%s', got %s", sql[i], want,
                     msg ? msg : "success");
        print_message("refused: %s", msg);
        free(msg);
    }
    assert_int_equal(count1("SELECT count(*) FROM privacy_ledger", NULL),
                     rows);
    char *after = table_sum("SELECT md5(string_agg(t::text, ',' ORDER BY "
                            "t.id)) FROM privacy_ledger t");
    assert_string_equal(sum, after);
    free(sum);
    free(after);
    ff_registry_close(r);
}

/* Expects ff_registry_ledger_model_rows to fail with FF_ERR_DIGEST and
 * every needle in its message. */
static void
expect_mismatch(ff_registry *r, const char *model, const char *n1,
                const char *n2)
{
    ff_error err = {0};
    json_t *out = NULL;

    assert_int_equal(ff_registry_ledger_model_rows(r, model, &out, &err),
                     FF_ERR_DIGEST);
    assert_null(out);
    if (strstr(ff_error_text(&err), n1) == NULL ||
        (n2 != NULL && strstr(ff_error_text(&err), n2) == NULL))
        fail_msg("expected '%s' and '%s' in: %s", n1, n2 ? n2 : "",
                 ff_error_text(&err));
    print_message("detected: %s\n", ff_error_text(&err));
}

/* Expects the model rows to pass the check: n + 1 rows, rounds 1..n + 1,
 * no site rows, as many audit rows. */
static void
expect_model_rows(ff_registry *r, const char *model, int n)
{
    ff_error err = {0};
    json_t *out = NULL;

    must(ff_registry_ledger_model_rows(r, model, &out, &err), &err,
         "model rows");
    const json_t *es = json_object_get(out, "entries");
    assert_int_equal(json_array_size(es), (size_t)n + 1);
    assert_int_equal(json_integer_value(json_object_get(out, "audited")),
                     n + 1);
    for (size_t i = 0; i < json_array_size(es); i++) {
        const json_t *e = json_array_get(es, i);
        assert_true(json_is_null(json_object_get(e, "site")));
        assert_int_equal(json_integer_value(json_object_get(e, "round")),
                         (json_int_t)i + 1);
        near(e, "epsilon", 0.25 * (double)(i + 1));
    }
    json_decref(out);
}

/* With the trigger disabled (superuser), a deleted, edited or forged
 * model row is named by round; a site row deleted does not matter to the
 * model's rows; undoing the damage passes again. */
static void
model_rows_checked_against_audit(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *out = NULL;

    guarded_populate(r, "guarded", 5);
    expect_model_rows(r, "guarded", 5);
    assert_int_equal(ff_registry_ledger_model_rows(r, "nobody", &out, &err),
                     FF_ERR_NOT_FOUND);
    exec_ok("ALTER TABLE privacy_ledger DISABLE TRIGGER "
            "privacy_ledger_append_only");

    /* A deleted model row: the coordinator would forget round 3. */
    exec_ok("CREATE TEMP TABLE saved AS SELECT * FROM privacy_ledger "
            "WHERE model = 'guarded' AND site IS NULL AND round = 3");
    exec_ok("DELETE FROM privacy_ledger WHERE model = 'guarded' AND "
            "site IS NULL AND round = 3");
    expect_mismatch(r, "guarded", "round 3: the model's spent row is "
                    "missing from the privacy ledger", "audit row ");
    exec_ok("INSERT INTO privacy_ledger SELECT * FROM saved");
    expect_model_rows(r, "guarded", 5);

    /* Every model row deleted, the refusal included: round 1 named. */
    exec_ok("CREATE TEMP TABLE saved_all AS SELECT * FROM privacy_ledger "
            "WHERE model = 'guarded' AND site IS NULL");
    exec_ok("DELETE FROM privacy_ledger WHERE model = 'guarded' AND "
            "site IS NULL");
    expect_mismatch(r, "guarded", "round 1: the model's spent row is "
                    "missing", NULL);
    exec_ok("INSERT INTO privacy_ledger SELECT * FROM saved_all");

    /* An edited epsilon, and an edited refusal turned into a spend. */
    exec_ok("UPDATE privacy_ledger SET epsilon = 0.01 WHERE model = "
            "'guarded' AND site IS NULL AND round = 4");
    expect_mismatch(r, "guarded", "round 4: the model's spent row",
                    "epsilon differs");
    exec_ok("UPDATE privacy_ledger SET epsilon = 1.0 WHERE model = "
            "'guarded' AND site IS NULL AND round = 4");
    exec_ok("UPDATE privacy_ledger SET status = 'spent' WHERE model = "
            "'guarded' AND site IS NULL AND round = 6");
    expect_mismatch(r, "guarded", "round 6: the model's", NULL);
    exec_ok("UPDATE privacy_ledger SET status = 'refused' WHERE model = "
            "'guarded' AND site IS NULL AND round = 6");
    expect_model_rows(r, "guarded", 5);

    /* A forged model row has no audit row. */
    exec_ok("INSERT INTO privacy_ledger (model, round, status, mechanism, "
            "delta, steps) VALUES ('guarded', 2, 'spent', 'none', 0, 1)");
    expect_mismatch(r, "guarded", "round 2: the model's spent row",
                    "has no audit row");
    exec_ok("DELETE FROM privacy_ledger WHERE model = 'guarded' AND "
            "mechanism = 'none'");

    /* Site rows are not the model's: deleting one leaves the check. */
    exec_ok("DELETE FROM privacy_ledger WHERE model = 'guarded' AND "
            "site = 'hospital-a' AND round = 2");
    expect_model_rows(r, "guarded", 5);
    exec_ok("ALTER TABLE privacy_ledger ENABLE TRIGGER "
            "privacy_ledger_append_only");
    ff_registry_close(r);
}

/* Pages after an id reproduce the whole ledger in order; the newest page
 * is its tail, with the total; bad pages are refused. */
static void
ledger_pages_and_tail(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *all = NULL, *pg = NULL;
    ff_ledger_page p = {0, 0, 4};
    size_t seen = 0;

    guarded_populate(r, "paged", 4);   /* 15 rows */
    must(ff_registry_ledger(r, "paged", &all, &err), &err, "ledger");
    const json_t *es = json_object_get(all, "entries");
    assert_int_equal(json_array_size(es), 15);

    /* 4 + 4 + 4 + 3 rows, in the order of the whole ledger. */
    for (int pages = 0;; pages++) {
        must(ff_registry_ledger_page(r, "paged", &p, &pg, &err), &err,
             "page");
        const json_t *part = json_object_get(pg, "entries");
        size_t n = json_array_size(part);
        for (size_t i = 0; i < n; i++) {
            json_t *want = json_deep_copy(json_array_get(es, seen + i));
            json_t *got = json_deep_copy(json_array_get(part, i));
            p.after_id = json_integer_value(json_object_get(got, "id"));
            json_object_del(got, "id");
            assert_true(json_equal(want, got));
            json_decref(want);
            json_decref(got);
        }
        seen += n;
        json_decref(pg);
        if (n < (size_t)p.limit) {
            assert_int_equal(pages, 3);
            break;
        }
    }
    assert_int_equal(seen, 15);

    /* The newest 6, oldest first, and how many there are. */
    ff_ledger_page tail = {0, 1, 6};
    must(ff_registry_ledger_page(r, "paged", &tail, &pg, &err), &err,
         "tail");
    assert_int_equal(json_integer_value(json_object_get(pg, "total")), 15);
    const json_t *part = json_object_get(pg, "entries");
    assert_int_equal(json_array_size(part), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(part, i), "round")),
                         json_integer_value(json_object_get(
                             json_array_get(es, 9 + i), "round")));
    json_decref(pg);

    /* Bad pages. */
    ff_ledger_page bad[] = {{0, 0, 0}, {0, 0, FF_REGISTRY_LEDGER_PAGE_MAX + 1},
                            {-1, 0, 5}, {3, 1, 5}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ff_registry_ledger_page(r, "paged", &bad[i], &pg,
                                                 &err), FF_ERR_ARG);
        assert_null(pg);
    }
    assert_int_equal(ff_registry_ledger_page(r, "nobody", &tail, &pg, &err),
                     FF_ERR_NOT_FOUND);
    json_decref(all);
    ff_registry_close(r);
}

/* The summary: one line for the model first, then per site, with the
 * epsilon of the newest spent row. */
static void
ledger_summary_per_site(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    json_t *sm = NULL;

    guarded_populate(r, "summed", 4);  /* rounds 1..5, model refuses 5 */
    must(ff_registry_ledger_summary(r, "summed", &sm, &err), &err, "sum");
    assert_int_equal(json_integer_value(json_object_get(sm, "total")), 15);
    assert_int_equal(json_integer_value(json_object_get(sm, "site_count")),
                     3);
    const json_t *sites = json_object_get(sm, "sites");
    assert_int_equal(json_array_size(sites), 3);
    const json_t *m = json_array_get(sites, 0);
    assert_true(json_is_null(json_object_get(m, "site")));
    assert_int_equal(json_integer_value(json_object_get(m, "rows")), 5);
    assert_int_equal(json_integer_value(json_object_get(m, "spent")), 4);
    assert_int_equal(json_integer_value(json_object_get(m, "refused")), 1);
    assert_int_equal(json_integer_value(json_object_get(m, "last_round")),
                     5);
    assert_string_equal(json_string_value(json_object_get(m,
                                                          "last_status")),
                        "refused");
    near(m, "epsilon", 1.0);   /* round 4's, the newest spent */
    const json_t *b = json_array_get(sites, 2);
    assert_string_equal(json_string_value(json_object_get(b, "site")),
                        "hospital-b");
    near(b, "epsilon", 0.75 * 5);
    json_decref(sm);

    ensure_model(r, "empty");
    must(ff_registry_ledger_summary(r, "empty", &sm, &err), &err, "empty");
    assert_int_equal(json_array_size(json_object_get(sm, "sites")), 0);
    assert_int_equal(json_integer_value(json_object_get(sm, "total")), 0);
    json_decref(sm);
    ff_registry_close(r);
}

/* Ledger rows written at schema 5 stay as they were through migration
 * 6, pass the audit check, and are then append-only. Own database. */
static void
migration_6_keeps_version_5_rows(void **state)
{
    (void)state;
    ff_test_db saved = g_db;
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;

    if (ff_test_db_create(&g_db, "registry_privacy_m6") != 0)
        fail_msg("second test database");
    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate_to(r, 5, &version, &err), &err, "to 5");
    assert_int_equal(version, 5);
    guarded_populate(r, "old", 3);
    char *before = table_sum("SELECT md5(string_agg(t::text, ',' ORDER BY "
                             "t.id)) FROM privacy_ledger t");
    /* Schema 5 had no trigger: a row can still go (then comes back). */
    exec_ok("CREATE TEMP TABLE keep AS SELECT * FROM privacy_ledger "
            "WHERE id = 1");
    exec_ok("DELETE FROM privacy_ledger WHERE id = 1");
    exec_ok("INSERT INTO privacy_ledger SELECT * FROM keep");

    must(ff_registry_migrate(r, &version, &err), &err, "to 6");
    assert_int_equal(version, 6);
    char *after = table_sum("SELECT md5(string_agg(t::text, ',' ORDER BY "
                            "t.id)) FROM privacy_ledger t");
    assert_string_equal(before, after);
    expect_model_rows(r, "old", 3);
    char *msg = exec_error("DELETE FROM privacy_ledger WHERE id = 1");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "append-only: DELETE refused"));
    free(msg);
    free(before);
    free(after);
    ff_registry_close(r);
    ff_test_db_drop(&g_db);
    g_db = saved;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migration_3_keeps_version_2_rows),
        cmocka_unit_test(ledger_round_trip),
        cmocka_unit_test(ledger_and_audit_are_one_transaction),
        cmocka_unit_test(bad_entries_rejected_nothing_written),
        cmocka_unit_test(budget_set_get_overwrite),
        cmocka_unit_test(ledger_of_unknown_model),
        cmocka_unit_test(version_privacy_stored_and_shown),
        cmocka_unit_test(ledger_trigger_refuses_changes),
        cmocka_unit_test(model_rows_checked_against_audit),
        cmocka_unit_test(ledger_pages_and_tail),
        cmocka_unit_test(ledger_summary_per_site),
        cmocka_unit_test(migration_6_keeps_version_5_rows),
    };

    if (ff_test_db_create(&g_db, "registry_privacy") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("largest difference of a stored double: %g (tolerance 0)\n",
           g_worst);
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
