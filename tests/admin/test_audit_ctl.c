/*
 * test_audit_ctl.c - runs the real fedfusectl ($FEDFUSE_BIN) against a
 * fresh PostgreSQL database: `audit verify` on an untouched chain, on an
 * edited and a shortened one (naming the row), with --key; `audit export`
 * round-tripping every row and hash and refusing a symbolic link; the
 * audit filters by site, actor, action, model, version and time; usage
 * errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "ctl_run.h"

static ff_test_db g_db;
static char g_ctl[4096];
static char g_dir[256];
static uint8_t g_pk[32], g_sk[64];

/* Runs fedfusectl --db <test db> args... (FEDFUSE_DB removed). */
static ctl_run
run_ctl(const char *first, ...)
{
    const char *lead[] = {"--db", g_db.conninfo};
    va_list ap;
    ctl_run r;

    va_start(ap, first);
    r = ctl_run_va(g_ctl, NULL, lead, 2, first, ap);
    va_end(ap);
    return r;
}

static void
expect_code(const ctl_run *r, int code, const char *what)
{
    if (r->code != code)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what,
                 r->code, code, r->out, r->err);
}

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

static void
exec_ok(const char *sql)
{
    if (ff_test_db_exec(&g_db, sql, 0, NULL) < 0)
        fail_msg("statement failed: %s", sql);
}

static long long
count0(const char *sql)
{
    return ff_test_db_number(&g_db, sql, 0, NULL);
}

/* Rows through the registry: a model with two published versions, site
 * registrations, a budget set by an operator, plain audit rows. */
static void
populate(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;
    uint8_t art[16] = {9, 8, 7};
    char digest[65];

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    must(ff_registry_model_ensure(r, "mnist", NULL, &err), &err, "model");
    for (int i = 0; i < 3; i++) {
        char site[16];
        snprintf(site, sizeof(site), "site-%d", i);
        must(ff_registry_site_register(r, site, NULL, &err), &err, site);
    }
    for (int v = 1; v <= 2; v++) {
        must(ff_registry_round_start(r, "mnist", v, NULL, &err), &err,
             "round");
        art[3] = (uint8_t)v;
        ff_registry_digest(art, sizeof(art), digest);
        ff_version_new nv = {.model = "mnist", .round = v, .parent = v - 1,
                             .artifact = art, .artifact_len = sizeof(art),
                             .digest_hex = digest};
        must(ff_registry_version_publish(r, &nv, NULL, &err), &err, "pub");
    }
    must(ff_registry_budget_set(r, "mnist", 4.0, 1e-5, "operator:alice",
                                &err), &err, "budget");
    json_t *d = json_pack("{s:s, s:f}", "model", "other", "norm", 0.1);
    must(ff_registry_audit(r, "coordinator", "update.accepted", "site-1", d,
                           &err), &err, "audit");
    json_decref(d);
    ff_registry_close(r);
}

static int
setup(void **state)
{
    (void)state;
    if (ctl_run_locate(g_ctl, sizeof(g_ctl)) != 0 || sodium_init() < 0)
        return -1;
    snprintf(g_dir, sizeof(g_dir), "/tmp/ff_audit_ctl_%ld", (long)getpid());
    if (mkdir(g_dir, 0700) != 0) {
        fprintf(stderr, "FAIL: cannot make %s\n", g_dir);
        return -1;
    }
    crypto_sign_keypair(g_pk, g_sk);
    populate();
    return 0;
}

/* ---- verify ---- */

static void
verify_untouched(void **state)
{
    (void)state;
    char want[128];
    long long rows = count0("SELECT count(*) FROM audit");

    ctl_run r = run_ctl("audit", "verify", NULL);
    expect_code(&r, 0, "verify");
    snprintf(want, sizeof(want), "audit chain verified: %lld rows, 0 signed "
             "heads, last row %lld\n", rows, rows);
    assert_string_equal(r.out, want);
    print_message("%s", r.out);
    ctl_run_free(&r);

    r = run_ctl("--json", "audit", "verify", NULL);
    expect_code(&r, 0, "verify --json");
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "verified")));
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), rows);
    json_decref(j);
    ctl_run_free(&r);
}

/* An edited row and a deleted row are each named; exit 1. */
static void
verify_names_tampered_rows(void **state)
{
    (void)state;

    exec_ok("ALTER TABLE audit DISABLE TRIGGER audit_append_only");
    exec_ok("CREATE TABLE saved AS SELECT * FROM audit WHERE id = 4");
    exec_ok("UPDATE audit SET site = 'site-9' WHERE id = 4");
    ctl_run r = run_ctl("audit", "verify", NULL);
    expect_code(&r, 1, "verify edited");
    assert_non_null(strstr(r.err, "row 4: row_hash does not match its "
                                  "contents (edited?)"));
    assert_string_equal(r.out, "");
    print_message("edited: %s", r.err);
    ctl_run_free(&r);

    exec_ok("DELETE FROM audit WHERE id = 4");
    r = run_ctl("--json", "audit", "verify", NULL);
    expect_code(&r, 1, "verify deleted");
    assert_non_null(strstr(r.err, "row 5: prev_hash does not match row 3 "
                                  "(row 4 missing?)"));
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "verified")));
    assert_int_equal(json_integer_value(json_object_get(j, "row")), 5);
    json_decref(j);
    print_message("deleted: %s", r.err);
    ctl_run_free(&r);

    exec_ok("INSERT INTO audit SELECT * FROM saved");
    exec_ok("DROP TABLE saved");
    exec_ok("ALTER TABLE audit ENABLE TRIGGER audit_append_only");
    r = run_ctl("audit", "verify", NULL);
    expect_code(&r, 0, "verify restored");
    ctl_run_free(&r);
}

/* --key: the signer's heads verify, another key does not, a bad key is a
 * usage error. */
static void
verify_with_key(void **state)
{
    (void)state;
    ff_registry *reg = NULL;
    ff_error err = {0};
    char hex[65], other[65];
    uint8_t pk2[32], sk2[64];

    must(ff_registry_open(&reg, g_db.conninfo, &err), &err, "open");
    must(ff_registry_audit_sign_head(reg, g_sk, &err), &err, "sign");
    ff_registry_close(reg);
    sodium_bin2hex(hex, sizeof(hex), g_pk, 32);
    crypto_sign_keypair(pk2, sk2);
    sodium_bin2hex(other, sizeof(other), pk2, 32);

    ctl_run r = run_ctl("audit", "verify", "--key", hex, NULL);
    expect_code(&r, 0, "verify --key");
    assert_non_null(strstr(r.out, ", 1 signed heads, last row "));
    ctl_run_free(&r);
    r = run_ctl("audit", "verify", "--key", other, NULL);
    expect_code(&r, 1, "verify --key other");
    assert_non_null(strstr(r.err, "not the given key"));
    ctl_run_free(&r);
    r = run_ctl("audit", "verify", "--key", "abc", NULL);
    expect_code(&r, 2, "verify --key abc");
    assert_non_null(strstr(r.err, "--key must be"));
    ctl_run_free(&r);
}

/* ---- export ---- */

/* Reads the export back: every line an object whose row_hash recomputes
 * from its own fields and links to the line before. */
static void
export_round_trips(void **state)
{
    (void)state;
    char path[300];
    char *line = NULL;
    size_t cap = 0;
    uint8_t prev[32] = {0}, hash[32];
    char hex[65];
    long long n = 0;

    snprintf(path, sizeof(path), "%s/audit.jsonl", g_dir);
    ctl_run r = run_ctl("audit", "export", "--out", path, NULL);
    expect_code(&r, 0, "export");
    print_message("%s", r.out);
    ctl_run_free(&r);

    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    while (getline(&line, &cap, fp) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const char *site = json_string_value(json_object_get(j, "site"));
        const char *text = json_string_value(json_object_get(j,
                                                             "details_text"));
        json_t *reparsed = json_loads(text, JSON_DECODE_ANY, NULL);
        assert_true(json_equal(reparsed, json_object_get(j, "details")));
        json_decref(reparsed);
        sodium_bin2hex(hex, sizeof(hex), prev, 32);
        assert_string_equal(hex, json_string_value(json_object_get(
                                     j, "prev_hash")));
        ff_registry_audit_row_hash(
            prev, json_integer_value(json_object_get(j, "id")),
            json_string_value(json_object_get(j, "time")),
            json_string_value(json_object_get(j, "actor")),
            json_string_value(json_object_get(j, "action")), site, text,
            hash);
        sodium_bin2hex(hex, sizeof(hex), hash, 32);
        assert_string_equal(hex, json_string_value(json_object_get(
                                     j, "row_hash")));
        memcpy(prev, hash, 32);
        n++;
        json_decref(j);
    }
    free(line);
    fclose(fp);
    assert_int_equal(n, count0("SELECT count(*) FROM audit"));
    char *dbhash = ff_test_db_text(&g_db, "SELECT encode(row_hash, 'hex') "
                                   "FROM audit ORDER BY id DESC LIMIT 1",
                                   0, NULL);
    assert_string_equal(dbhash, hex);
    free(dbhash);
    print_message("%lld exported rows recompute and link\n", n);

    /* A filtered export; a symbolic link is refused and left alone. */
    r = run_ctl("--json", "audit", "export", "--out", path, "--site",
                "site-1", NULL);
    expect_code(&r, 0, "export --site");
    json_t *j = json_loads(r.out, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), 2);
    json_decref(j);
    ctl_run_free(&r);
    char link[300];
    snprintf(link, sizeof(link), "%s/link", g_dir);
    assert_int_equal(symlink(path, link), 0);
    r = run_ctl("audit", "export", "--out", link, NULL);
    expect_code(&r, 1, "export to a symlink");
    assert_non_null(strstr(r.err, "symbolic link"));
    ctl_run_free(&r);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    unlink(link);
    unlink(path);
}

/* ---- filters ---- */

/* Rows the listing returns for the given filter arguments. */
static size_t
listed(const char *a1, const char *v1, const char *a2, const char *v2)
{
    ctl_run r = run_ctl("--json", "audit", "--limit", "0", a1, v1, a2, v2,
                        NULL);
    expect_code(&r, 0, "audit filter");
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    size_t n = json_array_size(j);
    json_decref(j);
    ctl_run_free(&r);
    return n;
}

static void
filters(void **state)
{
    (void)state;

    assert_int_equal(listed("--site", "site-1", NULL, NULL), 2);
    assert_int_equal(listed("--actor", "operator:*", NULL, NULL), 1);
    assert_int_equal(listed("--actor", "site:site-2", NULL, NULL), 1);
    assert_int_equal(listed("--action", "round.*", "--model", "mnist"), 4);
    assert_int_equal(listed("--model", "mnist", "--version", "2"), 2);
    assert_int_equal(listed("--model", "other", NULL, NULL), 1);
    assert_int_equal(listed("--since", "2000-01-01", "--until",
                            "2000-01-02"), 0);
    long long all = count0("SELECT count(*) FROM audit");
    assert_int_equal(listed("--since", "2000-01-01", NULL, NULL), all);
    print_message("site 2, operator:* 1, round.* of mnist 4, mnist v2 2, "
                  "of %lld rows\n", all);
}

static void
usage_errors(void **state)
{
    (void)state;
    static const char *const bad[][4] = {
        {"audit", "bogus", NULL, NULL},
        {"audit", "verify", "--site", "x"},
        {"audit", "verify", "--out", "/tmp/x"},
        {"audit", "export", NULL, NULL},
        {"audit", "export", "--key", "00"},
        {"audit", "--key", "00", NULL},
        {"audit", "--out", "/tmp/x", NULL},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctl_run r = run_ctl(bad[i][0], bad[i][1], bad[i][2], bad[i][3],
                            NULL);
        expect_code(&r, 2, bad[i][1]);
        ctl_run_free(&r);
    }
    ctl_run r = run_ctl("audit", "--help", NULL);
    expect_code(&r, 0, "help");
    assert_non_null(strstr(r.out, "audit verify [--key HEX_PUBKEY]"));
    ctl_run_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verify_untouched),
        cmocka_unit_test(verify_names_tampered_rows),
        cmocka_unit_test(verify_with_key),
        cmocka_unit_test(export_round_trips),
        cmocka_unit_test(filters),
        cmocka_unit_test(usage_errors),
    };

    if (ff_test_db_create(&g_db, "audit_ctl") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    rmdir(g_dir);
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
