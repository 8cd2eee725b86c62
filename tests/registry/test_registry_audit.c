/*
 * test_registry_audit.c - the audit hash chain against a real PostgreSQL
 * server: migration 4 chaining rows written at schema 3, every write path
 * joining one chain, an independent recomputation from the documented
 * encoding, the append-only trigger, tampering (edit, delete, forged
 * insert, a rewrite that recomputes the chain) caught and named,
 * concurrent appenders keeping one linear chain, and signed heads.
 *
 * The test connects as the PostgreSQL superuser, so it can disable the
 * trigger the way an attacker with that power would.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "registry_schema.h"

static ff_test_db g_db;

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

static ff_registry *
reg_open(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    return r;
}

static long long
count0(const char *sql)
{
    return ff_test_db_number(&g_db, sql, 0, NULL);
}

/* Runs sql on the test connection; must succeed. */
static void
exec_ok(const char *sql)
{
    if (ff_test_db_exec(&g_db, sql, 0, NULL) < 0)
        fail_msg("statement failed: %s", sql);
}

/* Runs sql on the test connection; returns the server's error message
 * (malloc'd) or NULL when it succeeded. */
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
audit(ff_registry *r, const char *actor, const char *action,
      const char *site, json_t *details)
{
    ff_error err = {0};

    must(ff_registry_audit(r, actor, action, site, details, &err), &err,
         action);
    json_decref(details);
}

static ff_audit_verdict
verify(ff_registry *r, const uint8_t *key)
{
    ff_audit_verdict v;
    ff_error err = {0};

    must(ff_registry_audit_verify(r, key, &v, &err), &err, "verify");
    return v;
}

/* Verifies and expects failure at row `id` with `needle` in the reason. */
static void
expect_bad(ff_registry *r, const uint8_t *key, long long id,
           const char *needle)
{
    ff_audit_verdict v = verify(r, key);

    if (v.ok || v.bad_id != id || strstr(v.reason, needle) == NULL)
        fail_msg("expected row %lld to fail with '%s'; got ok=%d row %lld: "
                 "%s", id, needle, v.ok, (long long)v.bad_id, v.reason);
    print_message("  caught: %s\n", v.reason);
}

static void
expect_ok(ff_registry *r, const uint8_t *key)
{
    ff_audit_verdict v = verify(r, key);

    if (!v.ok)
        fail_msg("chain should verify: %s", v.reason);
}

/* Rows whose prev_hash is not the previous row's row_hash (by id). */
static long long
broken_links(void)
{
    return count0("SELECT count(*) FROM (SELECT prev_hash, lag(row_hash) "
                  "OVER (ORDER BY id) AS p FROM audit) x "
                  "WHERE p IS NOT NULL AND p <> prev_hash");
}

/* ---- an independent recomputation from docs/registry.md ------------- */

/* Appends F(s) to buf at *n: 8-byte big-endian length and bytes, or
 * eight 0xff for NULL. */
static void
spec_field(uint8_t *buf, size_t *n, const char *s)
{
    uint64_t len = s ? strlen(s) : UINT64_MAX;

    for (int i = 7; i >= 0; i--)
        buf[(*n)++] = (uint8_t)(len >> (8 * i));
    if (s != NULL) {
        memcpy(buf + *n, s, strlen(s));
        *n += strlen(s);
    }
}

/* Recomputes every row's hash from SQL text results with a one-shot
 * BLAKE2b over a buffer built by the documented rules, and checks the
 * links. Returns the number of rows. */
static long long
spec_recompute_all(void)
{
    PGresult *res = PQexec(
        g_db.conn,
        "SELECT id, to_char(at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, site, "
        "details::text, encode(prev_hash, 'hex'), encode(row_hash, 'hex') "
        "FROM audit ORDER BY id");
    char prev_hex[65] = {0};

    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    memset(prev_hex, '0', 64);
    long long rows = PQntuples(res);
    for (int i = 0; i < PQntuples(res); i++) {
        size_t cap = 256 + (size_t)PQgetlength(res, i, 2) +
                     (size_t)PQgetlength(res, i, 3) +
                     (size_t)PQgetlength(res, i, 4) +
                     (size_t)PQgetlength(res, i, 5);
        uint8_t *buf = malloc(cap);
        uint8_t hash[32];
        char hex[65];
        size_t n = 32;
        assert_non_null(buf);
        assert_int_equal(sodium_hex2bin(buf, 32, PQgetvalue(res, i, 6), 64,
                                        NULL, NULL, NULL), 0);
        spec_field(buf, &n, "fedfuse-audit-row-v1");
        for (int c = 0; c < 6; c++)
            spec_field(buf, &n, PQgetisnull(res, i, c) ? NULL
                                                       : PQgetvalue(res, i,
                                                                    c));
        assert_true(n <= cap);
        crypto_generichash(hash, 32, buf, n, NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), hash, 32);
        free(buf);
        if (strcmp(hex, PQgetvalue(res, i, 7)) != 0 ||
            strcmp(prev_hex, PQgetvalue(res, i, 6)) != 0)
            fail_msg("row %s: recomputed %s, stored %s (prev %s vs %s)",
                     PQgetvalue(res, i, 0), hex, PQgetvalue(res, i, 7),
                     PQgetvalue(res, i, 6), prev_hex);
        memcpy(prev_hex, hex, 65);
    }
    PQclear(res);
    return rows;
}

/* ---- the tests ---------------------------------------------------------- */

/* Rows written at schema 3 (with an id rolled back between them) are
 * chained by migration 4 without changing their contents; the chain
 * verifies and the gap is reported as linked. Runs first. */
static void
migration_4_chains_existing_rows(void **state)
{
    (void)state;
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;
    const char *sum = "SELECT md5(string_agg(concat_ws('|', id, at, actor, "
                      "action, site, details), ',' ORDER BY id)) FROM audit";

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate_to(r, 3, &version, &err), &err, "migrate 3");
    audit(r, "coordinator", "coordinator.started", NULL,
          json_pack("{s:s, s:f}", "address", "127.0.0.1:1", "eps", 1e-5));
    audit(r, "site:a", "site.rejected", "a \"quoted\" \\ site",
          json_pack("{s:s}", "reason", "caf\xc3\xa9 \xe2\x80\xae"));
    char *burn = exec_error("SELECT nextval('audit_id_seq')");
    assert_null(burn);   /* an id taken by a transaction that rolled back */
    audit(r, "operator:x", "privacy.budget_set", NULL, NULL);
    char *before = ff_test_db_text(&g_db, sum, 0, NULL);
    assert_non_null(before);

    must(ff_registry_migrate_to(r, 4, &version, &err), &err, "migrate 4");
    assert_int_equal(version, 4);
    char *after = ff_test_db_text(&g_db, sum, 0, NULL);
    assert_string_equal(before, after);
    assert_int_equal(count0("SELECT count(*) FROM audit WHERE "
                            "octet_length(row_hash) = 32 AND "
                            "octet_length(prev_hash) = 32"), 3);
    ff_audit_verdict v = verify(r, NULL);
    assert_true(v.ok);
    assert_int_equal(v.rows, 3);
    assert_int_equal(v.gaps, 1);
    assert_int_equal(v.last_id, 4);

    /* New rows continue the chain at head + 1. */
    audit(r, "coordinator", "round.started", NULL, NULL);
    assert_int_equal(count0("SELECT max(id) FROM audit"), 5);
    expect_ok(r, NULL);
    print_message("3 schema-3 rows chained (contents md5 %s unchanged, 1 "
                  "rolled-back id), row 5 appended\n", after);
    free(before);
    free(after);
    ff_registry_close(r);
}

/* Every write path of the registry appends to the one chain. */
static void
every_path_joins_the_chain(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    long long before = count0("SELECT count(*) FROM audit");
    uint8_t art[32] = {1, 2, 3};
    char digest[65];

    json_t *cfg = json_pack("{s:s}", "arch", "mlp");
    must(ff_registry_model_ensure(r, "m", cfg, &err), &err, "model");
    json_decref(cfg);
    json_t *d = json_pack("{s:i}", "examples", 10);
    must(ff_registry_site_register(r, "hospital-a", d, &err), &err, "site");
    json_decref(d);
    must(ff_registry_round_start(r, "m", 1, NULL, &err), &err, "round 1");
    must(ff_registry_round_abort(r, "m", 1, "quorum", &err), &err, "abort");
    must(ff_registry_round_start(r, "m", 2, NULL, &err), &err, "round 2");
    ff_registry_digest(art, sizeof(art), digest);
    ff_contribution c = {"hospital-a", 10, NULL, NULL};
    ff_version_new nv = {.model = "m", .round = 2, .contributions = &c,
                         .n_contributions = 1, .artifact = art,
                         .artifact_len = sizeof(art), .digest_hex = digest};
    must(ff_registry_version_publish(r, &nv, NULL, &err), &err, "publish");
    ff_ledger_entry e = {.model = "m", .round = 2, .site = "hospital-a",
                         .status = "spent", .mechanism = "dp-sgd",
                         .epsilon = 1.5, .delta = 1e-5,
                         .noise_multiplier = 1.1, .clip = 1.0,
                         .sampling_rate = 0.01, .steps = 10,
                         .budget = 8.0};
    must(ff_registry_ledger_add(r, &e, &err), &err, "ledger");
    must(ff_registry_budget_set(r, "m", 3.0, 1e-5, "operator:t", &err),
         &err, "budget");
    audit(r, "coordinator", "update.accepted", "hospital-a",
          json_pack("{s:i, s:f}", "round", 2, "norm", 0.25));

    /* site, round x3 (start, abort, start), published + finished, ledger,
     * budget, update: 9 rows, ids contiguous, every link in place. */
    long long after = count0("SELECT count(*) FROM audit");
    assert_int_equal(after - before, 9);
    assert_int_equal(count0("SELECT max(id) - min(id) + 1 FROM audit "
                            "WHERE id >= 5"), after - 3);
    assert_int_equal(broken_links(), 0);
    ff_audit_verdict v = verify(r, NULL);
    assert_true(v.ok);
    assert_int_equal(v.rows, after);
    print_message("9 rows from 7 write paths; %lld rows verify\n",
                  (long long)v.rows);
    ff_registry_close(r);
}

/* The documented encoding, implemented here from the text alone, gives
 * the stored hashes of every row. */
static void
spec_recomputation_matches(void **state)
{
    (void)state;
    long long n = spec_recompute_all();
    assert_int_equal(n, 13);
    print_message("%lld rows recomputed independently from SQL text\n", n);
}

/* UPDATE, DELETE and TRUNCATE are refused on audit and audit_head, for
 * this superuser too, with a clear message; nothing changes. */
static void
trigger_refuses_changes(void **state)
{
    (void)state;
    static const char *const sql[] = {
        "UPDATE audit SET actor = 'x' WHERE id = 5",
        "DELETE FROM audit WHERE id = 5",
        "TRUNCATE audit",
        "UPDATE audit_head SET audit_id = 1",
        "DELETE FROM audit_head",
        "TRUNCATE audit_head",
    };
    static const char *const op[] = {"UPDATE", "DELETE", "TRUNCATE",
                                      "UPDATE", "DELETE", "TRUNCATE"};
    long long rows = count0("SELECT count(*) FROM audit");

    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        char *msg = exec_error(sql[i]);
        char want[64];
        snprintf(want, sizeof(want), "append-only: %s refused", op[i]);
        if (msg == NULL || strstr(msg, want) == NULL)
            fail_msg("%s: expected '%s', got %s", sql[i], want,
                     msg ? msg : "success");
        if (i == 0)
            print_message("refused: %s", msg);
        free(msg);
    }
    assert_int_equal(count0("SELECT count(*) FROM audit"), rows);
    assert_int_equal(count0("SELECT count(*) FROM audit WHERE actor = 'x'"),
                     0);
}

/* With the trigger disabled (superuser), an edit, a deletion and forged
 * rows are each caught and the first bad row named; undoing the damage
 * makes the chain verify again. */
static void
tampering_is_named(void **state)
{
    (void)state;
    ff_registry *r = reg_open();

    exec_ok("ALTER TABLE audit DISABLE TRIGGER audit_append_only");

    /* An edited row breaks its own row_hash. */
    exec_ok("CREATE TEMP TABLE saved AS SELECT * FROM audit WHERE id = 8");
    exec_ok("UPDATE audit SET details = details || '{\"reason\": \"ok\"}' "
            "WHERE id = 8");
    expect_bad(r, NULL, 8, "row 8: row_hash does not match its contents "
                           "(edited?)");
    exec_ok("UPDATE audit a SET details = s.details FROM saved s "
            "WHERE a.id = s.id");
    expect_ok(r, NULL);

    /* A deleted row leaves the next row's prev_hash dangling. */
    exec_ok("DELETE FROM audit WHERE id = 8");
    expect_bad(r, NULL, 9, "row 9: prev_hash does not match row 7 (row 8 "
                           "missing?)");
    exec_ok("INSERT INTO audit SELECT * FROM saved");
    expect_ok(r, NULL);

    /* A forged row at the next id, linked to the head but hashed wrong. */
    exec_ok("INSERT INTO audit (id, actor, action, details, prev_hash, "
            "row_hash) SELECT id + 1, 'operator:mallory', 'budget_set', "
            "'{}', row_hash, row_hash FROM audit ORDER BY id DESC LIMIT 1");
    long long forged = count0("SELECT max(id) FROM audit");
    char want[64];
    snprintf(want, sizeof(want), "row %lld: row_hash does not match", forged);
    expect_bad(r, NULL, forged, want);
    exec_ok("DELETE FROM audit WHERE actor = 'operator:mallory'");

    /* A forged row that copies a real row's hashes breaks the link. */
    exec_ok("INSERT INTO audit (id, actor, action, details, prev_hash, "
            "row_hash) SELECT (SELECT max(id) + 1 FROM audit), actor, "
            "action, details, prev_hash, row_hash FROM audit WHERE id = 6");
    snprintf(want, sizeof(want), "row %lld: prev_hash does not match row %lld",
             forged, forged - 1);
    expect_bad(r, NULL, forged, want);
    exec_ok("DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)");
    expect_ok(r, NULL);

    exec_ok("ALTER TABLE audit ENABLE TRIGGER audit_append_only");
    ff_registry_close(r);
}

/* ---- concurrent appenders ---- */

#define APPENDS 200

typedef struct appender {
    int index;
    int failures;
    char first_error[256];
} appender;

/* One connection appending APPENDS rows; the second thread mixes in
 * site registrations (an audit row inside a larger transaction). */
static void *
append_many(void *arg)
{
    appender *a = arg;
    ff_registry *r = NULL;
    ff_error err = {0};

    if (ff_registry_open(&r, g_db.conninfo, &err) != FF_OK) {
        a->failures = APPENDS;
        snprintf(a->first_error, sizeof(a->first_error), "%s",
                 ff_error_text(&err));
        return NULL;
    }
    for (int i = 0; i < APPENDS; i++) {
        json_t *d = json_pack("{s:i, s:i}", "thread", a->index, "i", i);
        ff_status st;
        if (a->index == 1 && i % 2 == 1)
            st = ff_registry_site_register(r, "racer", d, &err);
        else
            st = ff_registry_audit(r, "coordinator", "update.accepted",
                                   NULL, d, &err);
        json_decref(d);
        if (st != FF_OK && a->failures++ == 0)
            snprintf(a->first_error, sizeof(a->first_error), "%s",
                     ff_error_text(&err));
    }
    ff_registry_close(r);
    return NULL;
}

static void
concurrent_appenders_one_chain(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    pthread_t t[2];
    appender a[2] = {{.index = 0}, {.index = 1}};
    long long before = count0("SELECT count(*) FROM audit");
    long long head = count0("SELECT max(id) FROM audit");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, append_many, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    for (int i = 0; i < 2; i++)
        if (a[i].failures)
            fail_msg("thread %d: %d failures, first: %s", i, a[i].failures,
                     a[i].first_error);

    /* 400 new rows, ids head+1..head+400, one linear chain. */
    assert_int_equal(count0("SELECT count(*) FROM audit") - before,
                     2 * APPENDS);
    assert_int_equal(count0("SELECT max(id) FROM audit"), head + 2 * APPENDS);
    assert_int_equal(count0("SELECT count(DISTINCT prev_hash) FROM audit"),
                     count0("SELECT count(*) FROM audit"));
    assert_int_equal(broken_links(), 0);
    ff_audit_verdict v = verify(r, NULL);
    assert_true(v.ok);
    long long interleave = count0(
        "SELECT count(*) FROM (SELECT details->>'thread' AS t, "
        "lag(details->>'thread') OVER (ORDER BY id) AS p FROM audit "
        "WHERE details ? 'thread') x WHERE t <> p");
    print_message("2 threads x %d appends in %.2f s: %lld rows verify, 0 "
                  "broken links, the threads alternated %lld times\n",
                  APPENDS, secs, (long long)v.rows, interleave);
    ff_registry_close(r);
}

/* ---- signed heads ---- */

static void
signed_heads(void **state)
{
    (void)state;
    ff_registry *r = reg_open();
    ff_error err = {0};
    uint8_t pk[32], sk[64], pk2[32], sk2[64];

    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);

    /* --key with no head at all does not verify. */
    expect_bad(r, pk, 0, "no signed head");

    /* Sign, verify with the key; signing again without appends adds
     * nothing; after an append, a second head. */
    must(ff_registry_audit_sign_head(r, sk, &err), &err, "sign");
    long long last = count0("SELECT max(id) FROM audit");
    ff_audit_verdict v = verify(r, pk);
    assert_true(v.ok);
    assert_int_equal(v.heads, 1);
    assert_int_equal(v.last_signed_id, last);
    must(ff_registry_audit_sign_head(r, sk, &err), &err, "sign again");
    assert_int_equal(count0("SELECT count(*) FROM audit_head"), 1);
    audit(r, "coordinator", "round.started", NULL, NULL);
    must(ff_registry_audit_sign_head(r, sk, &err), &err, "sign 2");
    assert_int_equal(count0("SELECT count(*) FROM audit_head"), 2);
    v = verify(r, pk);
    assert_true(v.ok && v.heads == 2 && v.last_signed_id == last + 1);

    /* Another key's view: heads by pk are not by pk2. */
    expect_bad(r, pk2, last, "not the given key");

    /* A tampered signature fails, and the key refuses to sign on it. */
    exec_ok("ALTER TABLE audit_head DISABLE TRIGGER audit_head_append_only");
    exec_ok("CREATE TEMP TABLE saved_head AS SELECT * FROM audit_head");
    exec_ok("UPDATE audit_head SET signature = set_byte(signature, 0, "
            "get_byte(signature, 0) # 1) WHERE id = (SELECT max(id) FROM "
            "audit_head)");
    expect_bad(r, NULL, last + 1, "signature does not verify");
    audit(r, "coordinator", "round.finished", NULL, NULL);
    assert_int_equal(ff_registry_audit_sign_head(r, sk, &err), FF_ERR_DIGEST);
    print_message("  sign on a bad head: %s\n", ff_error_text(&err));
    exec_ok("UPDATE audit_head h SET signature = s.signature FROM "
            "saved_head s WHERE h.id = s.id");
    exec_ok("ALTER TABLE audit_head ENABLE TRIGGER audit_head_append_only");
    expect_ok(r, pk);

    /* An attacker who rewrites a row and recomputes every hash after it
     * gets a chain that links, but not the signed row_hash. */
    exec_ok("ALTER TABLE audit DISABLE TRIGGER audit_append_only");
    PGresult *res = PQexec(
        g_db.conn,
        "SELECT id, to_char(at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, site, "
        "details::text FROM audit WHERE id >= 6 ORDER BY id");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    char *prev_hex = ff_test_db_text(
        &g_db, "SELECT encode(row_hash, 'hex') FROM audit WHERE id = 5", 0,
        NULL);
    uint8_t prev[32], hash[32];
    char ph[65], rh[65], idt[24];
    assert_int_equal(sodium_hex2bin(prev, 32, prev_hex, 64, NULL, NULL,
                                    NULL), 0);
    free(prev_hex);
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        const char *actor = i == 0 ? "operator:mallory"
                                   : PQgetvalue(res, i, 2);
        ff_registry_audit_row_hash(prev, id, PQgetvalue(res, i, 1), actor,
                                   PQgetvalue(res, i, 3),
                                   PQgetisnull(res, i, 4)
                                       ? NULL : PQgetvalue(res, i, 4),
                                   PQgetvalue(res, i, 5), hash);
        sodium_bin2hex(ph, sizeof(ph), prev, 32);
        sodium_bin2hex(rh, sizeof(rh), hash, 32);
        snprintf(idt, sizeof(idt), "%lld", (long long)id);
        const char *p[4] = {idt, actor, ph, rh};
        assert_true(ff_test_db_exec(&g_db,
                                    "UPDATE audit SET actor = $2, "
                                    "prev_hash = decode($3, 'hex'), "
                                    "row_hash = decode($4, 'hex') "
                                    "WHERE id = $1::bigint",
                                    4, p) == 1);
        memcpy(prev, hash, 32);
    }
    PQclear(res);
    exec_ok("ALTER TABLE audit ENABLE TRIGGER audit_append_only");
    assert_int_equal(broken_links(), 0);
    char want[80];
    snprintf(want, sizeof(want), "row %lld's row_hash differs from the "
             "signed one", last);
    v = verify(r, NULL);
    assert_false(v.ok);
    assert_non_null(strstr(v.reason, want));
    print_message("  rewritten chain: %s\n", v.reason);
    assert_int_equal(ff_registry_audit_sign_head(r, sk, &err), FF_ERR_DIGEST);
    print_message("  sign on a rewritten chain: %s\n", ff_error_text(&err));
    ff_registry_close(r);
}

/* Signing an empty log is refused; the message says why. */
static void
sign_empty_log(void **state)
{
    (void)state;
    ff_test_db empty;
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;
    uint8_t pk[32], sk[64];

    assert_int_equal(ff_test_db_create(&empty, "audit_empty"), 0);
    must(ff_registry_open(&r, empty.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    crypto_sign_keypair(pk, sk);
    assert_int_equal(ff_registry_audit_sign_head(r, sk, &err),
                     FF_ERR_NOT_FOUND);
    assert_non_null(strstr(ff_error_text(&err), "empty"));
    ff_audit_verdict v;
    must(ff_registry_audit_verify(r, NULL, &v, &err), &err, "verify");
    assert_true(v.ok && v.rows == 0 && v.last_id == 0);
    ff_registry_close(r);
    ff_test_db_drop(&empty);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migration_4_chains_existing_rows),
        cmocka_unit_test(every_path_joins_the_chain),
        cmocka_unit_test(spec_recomputation_matches),
        cmocka_unit_test(trigger_refuses_changes),
        cmocka_unit_test(tampering_is_named),
        cmocka_unit_test(concurrent_appenders_one_chain),
        cmocka_unit_test(signed_heads),
        cmocka_unit_test(sign_empty_log),
    };

    if (sodium_init() < 0)
        return 1;
    if (ff_test_db_create(&g_db, "registry_audit") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
