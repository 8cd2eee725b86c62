/*
 * test_governance.c - governance through the real fedfusectl ($FEDFUSE_BIN)
 * against a real PostgreSQL server: the consortium CA, enrolment of
 * operators, an auditor, a site and the coordinator, revocation; who may
 * change the registry (an operator's certificate from the consortium CA,
 * with its key, not revoked); four-eyes promotion, the accuracy gate,
 * rollback and history; the audit trail with the operators' names, and
 * `audit verify` after all of it.
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

#include "ff_registry.h"
#include "ff_trust.h"
#include "pg_fixture.h"
#include "ctl_run.h"

static ff_test_db g_db;
static char g_ctl[4096];
static char g_dir[64];          /* scratch folder: CA, keys, requests */
static char g_ca[128];          /* the consortium CA certificate */

/* ---- running fedfusectl ------------------------------------------------- */

/* Certificate and key of holder: alice under the CA folder, the others
 * in the scratch folder. */
static void
ident_paths(const char *who, char *cert, char *key, size_t cap)
{
    if (strcmp(who, "alice") == 0) {
        snprintf(cert, cap, "%s/ca/operators/alice.crt", g_dir);
        snprintf(key, cap, "%s/ca/operators/alice.key", g_dir);
    } else {
        snprintf(cert, cap, "%s/%s.crt", g_dir, who);
        snprintf(key, cap, "%s/%s.key", g_dir, who);
    }
}

/* Runs fedfusectl --db <test db> [identity of who] args...; who NULL: no
 * identity. */
static ctl_run
run_as(const char *who, const char *first, ...)
{
    char cert[160], key[160];
    const char *lead[] = {"--db", g_db.conninfo, "--cert", cert,
                          "--key", key, "--ca", g_ca};
    va_list ap;
    ctl_run r;

    if (who != NULL)
        ident_paths(who, cert, key, sizeof(cert));
    va_start(ap, first);
    r = ctl_run_va(g_ctl, NULL, lead, who != NULL ? 8 : 2, first, ap);
    va_end(ap);
    return r;
}

static void
expect_code(const ctl_run *r, int code, const char *what)
{
    if (r->code != code)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what,
                 r->code, code, r->out, r->err);
    print_message("  %s: exit %d%s%s", what, r->code,
                  r->err[0] ? ", " : "\n", r->err);
}

/* Runs, expects code and that stderr (code != 0) or stdout holds text. */
static void
expect(ctl_run r, int code, const char *text, const char *what)
{
    expect_code(&r, code, what);
    const char *where = code == 0 ? r.out : r.err;
    if (text != NULL && strstr(where, text) == NULL)
        fail_msg("%s: '%s' not in:\n%s", what, text, where);
    ctl_run_free(&r);
}

static json_t *
parse_json(const ctl_run *r)
{
    json_error_t jerr;
    json_t *j = json_loads(r->out, JSON_DECODE_ANY, &jerr);

    if (j == NULL)
        fail_msg("stdout is not JSON (%s): %.300s", jerr.text, r->out);
    return j;
}

static char *
path(const char *name)
{
    static char buf[4][160];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", g_dir, name);
    return p;
}

/* ---- populating --------------------------------------------------------- */

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

/* Model "digits": versions 1 (0.80), 2 (0.85), 3 (0.70), signed. */
static void
populate(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;
    static const double acc[] = {0.80, 0.85, 0.70};
    static const ff_contribution c[] = {
        {"site-1", 600,
         "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
         "0.1.0+g1234"}};

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    must(ff_registry_model_ensure(r, "digits", NULL, &err), &err, "model");
    for (int i = 0; i < 3; i++) {
        uint8_t art[128], sig[64], key[32];
        char digest[65];
        for (size_t k = 0; k < sizeof(art); k++)
            art[k] = (uint8_t)(k * 3 + (unsigned)i);
        memset(sig, 0x5a + i, sizeof(sig));
        memset(key, 0x33, sizeof(key));
        ff_registry_digest(art, sizeof(art), digest);
        json_t *m = json_pack("{s:f}", "accuracy", acc[i]);
        ff_version_new v = {0};
        v.model = "digits";
        v.parent = i;
        v.contributions = c;
        v.n_contributions = 1;
        v.metrics = m;
        v.artifact = art;
        v.artifact_len = sizeof(art);
        v.digest_hex = digest;
        v.signature = sig;
        v.signer_key = key;
        v.signed_metadata = "{\"aggregation\":\"fedavg\",\"round\":0}";
        must(ff_registry_version_publish(r, &v, NULL, &err), &err,
             "publish");
        json_decref(m);
    }
    ff_registry_close(r);
}

/* ---- enrolment ---------------------------------------------------------- */

/* ca init, keygen, operators add, sites approve / list / revoke, the
 * coordinator's certificate; the registry's check names who revoked and
 * why. */
static void
enrolment_flow(void **state)
{
    (void)state;
    struct stat sb;

    expect(run_as(NULL, "ca", "init", "--dir", path("ca"), "--name",
                  "Test Consortium", "--operator", "alice", NULL),
           0, "issued operator certificate for 'alice'", "ca init");
    expect(run_as(NULL, "ca", "init", "--dir", path("ca2"), "--name", "Two",
                  "--operator", "eve", NULL),
           1, "already has its consortium CA", "a second ca init");
    assert_int_not_equal(stat(path("ca2"), &sb), 0);

    /* A second operator and an auditor: keys made locally, signed by
     * alice. */
    expect(run_as(NULL, "keygen", "--id", "bob", "--role", "operator",
                  "--key", path("bob.key"), "--csr", path("bob.csr"), NULL),
           0, "request", "keygen bob");
    assert_int_equal(stat(path("bob.key"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    expect(run_as("alice", "operators", "add", path("bob.csr"), "--role",
                  "operator", "--ca-dir", path("ca"), "--out",
                  path("bob.crt"), NULL),
           0, "issued operator certificate for 'bob'", "operators add bob");
    expect(run_as(NULL, "keygen", "--id", "audrey", "--role", "auditor",
                  "--key", path("audrey.key"), "--csr", path("audrey.csr"),
                  NULL),
           0, NULL, "keygen audrey");
    expect(run_as("alice", "operators", "add", path("audrey.csr"), "--role",
                  "operator", "--ca-dir", path("ca"), "--out",
                  path("audrey.crt"), NULL),
           2, "auditor", "an auditor's request signed as an operator's");
    expect(run_as("alice", "operators", "add", path("audrey.csr"), "--role",
                  "auditor", "--ca-dir", path("ca"), "--out",
                  path("audrey.crt"), NULL),
           0, "issued auditor certificate for 'audrey'", "operators add");

    /* A site: refused without a certificate, approved by alice. */
    expect(run_as(NULL, "keygen", "--id", "site-1", "--role", "site",
                  "--key", path("site-1.key"), "--csr", path("site-1.csr"),
                  NULL),
           0, NULL, "keygen site-1");
    expect(run_as(NULL, "sites", "approve", path("site-1.csr"), "--ca-dir",
                  path("ca"), "--out", path("site-1.crt"), NULL),
           1, "sites approve needs an operator certificate "
              "(--cert/--key/--ca); you have none",
           "sites approve without a certificate");
    expect(run_as("alice", "sites", "approve", path("site-1.csr"),
                  "--ca-dir", path("ca"), "--out", path("site-1.crt"), NULL),
           0, "issued site certificate for 'site-1'", "sites approve");
    expect(run_as("audrey", "sites", "list", NULL), 0,
           "operator:alice", "sites list (auditor)");

    ctl_run r = run_as(NULL, "--json", "sites", "list", NULL);
    expect_code(&r, 0, "sites list --json");
    json_t *j = parse_json(&r);
    assert_int_equal(json_array_size(j), 1);
    const json_t *c = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(c, "holder")),
                        "site-1");
    assert_string_equal(json_string_value(json_object_get(c, "state")),
                        "active");
    char serial[80];
    snprintf(serial, sizeof(serial), "%s",
             json_string_value(json_object_get(c, "serial")));
    json_decref(j);
    ctl_run_free(&r);

    /* Revoked by bob: the list and the registry say who and why. */
    expect(run_as("bob", "sites", "revoke", "site-1", "--reason",
                  "laptop stolen", NULL),
           0, "revoked every certificate of site-1 (by operator:bob)",
           "sites revoke");
    r = run_as(NULL, "sites", "list", NULL);
    expect_code(&r, 0, "sites list");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "REVOKED BY"));
    assert_non_null(strstr(r.out, "site  revoked"));
    assert_non_null(strstr(r.out, "operator:bob  laptop stolen"));
    ctl_run_free(&r);
    ff_registry *reg = NULL;
    ff_error err = {0};
    char why[256];
    int ok = 1;
    must(ff_registry_open(&reg, g_db.conninfo, &err), &err, "open");
    must(ff_registry_cert_check(reg, "site-1", serial, &ok, why, sizeof(why),
                                &err), &err, "cert_check");
    ff_registry_close(reg);
    assert_int_equal(ok, 0);
    assert_non_null(strstr(why, "by operator:bob: laptop stolen"));
    print_message("  cert_check: %s\n", why);

    /* The coordinator's certificate; the operators list. */
    expect(run_as("alice", "coordinator", "cert", "--ca-dir", path("ca"),
                  "--hosts", "127.0.0.1,localhost", "--out", path("coord"),
                  NULL),
           0, "issued coordinator certificate for 'coordinator'",
           "coordinator cert");
    assert_int_equal(stat(path("coord.key"), &sb), 0);
    assert_int_equal(stat(path("coord.crt"), &sb), 0);
    r = run_as(NULL, "operators", "list", NULL);
    expect_code(&r, 0, "operators list");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "alice"));
    assert_non_null(strstr(r.out, "bob"));
    assert_non_null(strstr(r.out, "audrey"));
    ctl_run_free(&r);
}

/* ---- who may change the registry ---------------------------------------- */

static void
identities_refused(void **state)
{
    (void)state;
    ff_error err = {0};

    expect(run_as("audrey", "promote", "digits", "1", "--to", "staged",
                  NULL),
           1, "promote needs an operator certificate (--cert/--key/--ca); "
              "you are auditor 'audrey'",
           "an auditor promotes");
    expect(run_as("audrey", "versions", "digits", NULL), 0, "candidate",
           "an auditor reads");
    expect(run_as(NULL, "promote", "digits", "1", "--to", "staged", NULL),
           1, "you have none", "promote without a certificate");
    expect(run_as(NULL, "rollback", "digits", "--reason", "x", NULL), 1,
           "rollback needs an operator certificate", "rollback, none");

    /* Another CA's operator: refused against ours, and its CA refused. */
    must(ff_trust_ca_create(path("other"), "Other CA", 30, &err), &err,
         "other CA");
    must(ff_trust_csr_create(path("mallory.key"), path("mallory.csr"),
                             "mallory", FF_TRUST_ROLE_OPERATOR, &err),
         &err, "mallory csr");
    must(ff_trust_csr_sign(path("other"), path("mallory.csr"),
                           FF_TRUST_ROLE_OPERATOR, 30, NULL,
                           path("mallory.crt"), NULL, &err),
         &err, "mallory cert");
    expect(run_as("mallory", "promote", "digits", "1", "--to", "staged",
                  NULL),
           1, "your certificate", "a certificate from another CA");
    char other_ca[160];
    snprintf(other_ca, sizeof(other_ca), "%s/other/ca.crt", g_dir);
    const char *args[] = {"--db", g_db.conninfo, "--cert",
                          path("mallory.crt"), "--key", path("mallory.key"),
                          "--ca", other_ca, "promote", "digits", "1",
                          "--to", "staged", NULL};
    expect(ctl_run_argv(g_ctl, NULL, args), 1,
           "is not the consortium CA the registry knows",
           "another CA given as --ca");

    /* The wrong key; half an identity. */
    const char *wrong[] = {"--db", g_db.conninfo, "--cert", path("bob.crt"),
                           "--key", path("audrey.key"), "--ca", g_ca,
                           "models", NULL};
    expect(ctl_run_argv(g_ctl, NULL, wrong), 1, "does not match",
           "bob's certificate with audrey's key");
    const char *half[] = {"--db", g_db.conninfo, "--cert", path("bob.crt"),
                          "models", NULL};
    expect(ctl_run_argv(g_ctl, NULL, half), 2, "--key is missing",
           "half an identity");
}

/* ---- stages ------------------------------------------------------------- */

static void
four_eyes_gate_rollback_history(void **state)
{
    (void)state;

    /* Version 1: pending until a second operator approves. */
    expect(run_as("alice", "promote", "digits", "1", "--to", "production",
                  "--reason", "first release", NULL),
           0, "waiting for a second operator", "alice requests 1");
    expect(run_as(NULL, "history", "digits", NULL), 0, "pending",
           "history shows the request");
    expect(run_as("alice", "approve", "digits", "1", NULL), 1,
           "a second, different operator must approve it",
           "alice approves her own request");
    expect(run_as(NULL, "versions", "digits", NULL), 0, "candidate",
           "still a candidate");
    expect(run_as("bob", "approve", "digits", "1", NULL), 0,
           "version 1 of digits is now production (approved by "
           "operator:bob)",
           "bob approves");

    /* Version 2 by two promote calls, the other way round; the env
     * carries alice's identity this time. */
    expect(run_as("bob", "promote", "digits", "2", "--to", "production",
                  NULL),
           0, "waiting", "bob requests 2");
    char cert[160], key[160];
    ident_paths("alice", cert, key, sizeof(cert));
    setenv("FEDFUSE_CERT", cert, 1);
    setenv("FEDFUSE_KEY", key, 1);
    setenv("FEDFUSE_CA", g_ca, 1);
    expect(run_as(NULL, "promote", "digits", "2", "--to", "production",
                  NULL),
           0, "is now production", "alice completes 2 (env identity)");
    unsetenv("FEDFUSE_CERT");
    unsetenv("FEDFUSE_KEY");
    unsetenv("FEDFUSE_CA");

    /* Version 3 is worse: the gate, then --allow-regression. */
    expect(run_as("alice", "promote", "digits", "3", "--to", "production",
                  NULL),
           1, "version 3's test accuracy 0.7000 is below production "
              "version 2's 0.8500",
           "the accuracy gate");
    expect(run_as("alice", "promote", "digits", "3", "--to", "production",
                  "--allow-regression", "--reason", "smaller and faster",
                  NULL),
           0, "waiting", "alice requests 3 with --allow-regression");
    expect(run_as("bob", "approve", "digits", "3", NULL), 0,
           "is now production", "bob approves 3");
    ctl_run r = run_as(NULL, "versions", "digits", NULL);
    expect_code(&r, 0, "versions");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "STAGE"));
    assert_non_null(strstr(r.out, "3  production"));
    assert_non_null(strstr(r.out, "2  archived"));
    ctl_run_free(&r);

    /* Rollback: one operator, back to 2. */
    expect(run_as("bob", "rollback", "digits", NULL), 2, "--reason",
           "rollback without a reason");
    expect(run_as("bob", "rollback", "digits", "--reason",
                  "field regression", NULL),
           0, "version 2 is production again (by operator:bob)",
           "rollback");

    /* History: every period with its operators. */
    r = run_as("audrey", "history", "digits", NULL);
    expect_code(&r, 0, "history");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "digits: production version 2"));
    assert_non_null(strstr(r.out, "rollback by operator:bob"));
    assert_non_null(strstr(r.out, "promote (regression allowed)"));
    assert_non_null(strstr(r.out, "(current)"));
    assert_non_null(strstr(r.out, "refused"));
    ctl_run_free(&r);
    r = run_as(NULL, "--json", "history", "digits", NULL);
    expect_code(&r, 0, "history --json");
    json_t *h = parse_json(&r);
    const json_t *periods = json_object_get(h, "periods");
    assert_int_equal(json_array_size(periods), 4);
    static const char *const by[][2] = {{"operator:alice", "operator:bob"},
                                        {"operator:bob", "operator:alice"},
                                        {"operator:alice", "operator:bob"},
                                        {"operator:bob", NULL}};
    for (size_t i = 0; i < 4; i++) {
        const json_t *p = json_array_get(periods, i);
        const char *ap = json_string_value(json_object_get(p,
                                                           "approved_by"));
        assert_string_equal(json_string_value(json_object_get(
                                p, "promoted_by")), by[i][0]);
        if (by[i][1] == NULL)
            assert_null(ap);
        else
            assert_string_equal(ap, by[i][1]);
    }
    json_decref(h);
    ctl_run_free(&r);

    /* show: stage, signature, lineage. */
    r = run_as(NULL, "show", "digits", "3", NULL);
    expect_code(&r, 0, "show");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "stage           archived"));
    assert_non_null(strstr(r.out, "signature       Ed25519 5c5c5c"));
    assert_non_null(strstr(r.out, "\"aggregation\": \"fedavg\""));
    assert_non_null(strstr(r.out, "9f86d081884c7d65..."));
    assert_non_null(strstr(r.out, "0.1.0+g1234"));
    ctl_run_free(&r);

    /* A revoked operator is refused at once. */
    expect(run_as("alice", "sites", "revoke", "bob", "--reason", "left",
                  NULL),
           0, NULL, "revoke bob");
    expect(run_as("bob", "promote", "digits", "1", "--to", "staged", NULL),
           1, "by operator:alice: left", "a revoked operator");
}

/* The audit trail names the operators; the chain verifies. */
static void
audit_trail_names_operators(void **state)
{
    (void)state;
    ctl_run r = run_as(NULL, "--json", "audit", "--actor", "operator:*",
                       "--limit", "0", NULL);

    expect_code(&r, 0, "audit --actor operator:*");
    json_t *rows = parse_json(&r);
    static const char *const actions[] = {
        "ca.created", "cert.issued", "cert.revoked", "promotion.requested",
        "promotion.refused", "version.promoted", "version.rolled_back"};
    size_t seen[7] = {0};
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *a = json_array_get(rows, i);
        const char *act = json_string_value(json_object_get(a, "action"));
        for (size_t k = 0; k < 7; k++)
            seen[k] += strcmp(act, actions[k]) == 0;
    }
    for (size_t k = 0; k < 7; k++) {
        print_message("  %-20s %zu rows by an operator\n", actions[k],
                      seen[k]);
        assert_true(seen[k] > 0);
    }
    json_decref(rows);
    ctl_run_free(&r);
    const char *p[1] = {"version.promoted"};
    assert_int_equal(ff_test_db_number(&g_db,
                                       "SELECT count(*) FROM audit WHERE "
                                       "action = $1 AND actor NOT LIKE "
                                       "'operator:%'",
                                       1, p), 0);
    assert_int_equal(ff_test_db_number(&g_db,
                                       "SELECT count(*) FROM audit WHERE "
                                       "action = 'version.promoted' AND "
                                       "actor = 'operator:bob' AND "
                                       "details->>'requested_by' = "
                                       "'operator:alice'",
                                       0, NULL), 2);
    expect(run_as(NULL, "audit", "verify", NULL), 0,
           "audit chain verified", "audit verify");
}

/* --help for each new command; usage errors exit 2. */
static void
help_and_usage(void **state)
{
    (void)state;
    static const char *const cmds[][2] = {
        {"ca", "ca init --dir DIR"}, {"keygen", "keygen --id ID"},
        {"operators", "operators add CSR"}, {"sites", "sites revoke SITE"},
        {"coordinator", "coordinator cert"},
        {"promote", "--allow-regression"}, {"approve", "approve MODEL"},
        {"rollback", "rollback MODEL"}, {"history", "history MODEL"},
        {"privacy", "Needs an operator certificate"}};

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *args[] = {cmds[i][0], "--help", NULL};
        expect(ctl_run_argv(g_ctl, NULL, args), 0, cmds[i][1], cmds[i][0]);
    }
    expect(run_as("alice", "promote", "digits", "1", NULL), 2, "--to",
           "promote without --to");
    expect(run_as("alice", "promote", "digits", "1", "--to", "live", NULL),
           2, "must be staged, production or archived", "unknown stage");
    expect(run_as(NULL, "keygen", "--id", "x", NULL), 2, "--role",
           "keygen without --role");
    expect(run_as("alice", "approve", "digits", "9", NULL), 3, NULL,
           "approve an unknown version");
}

static int
setup(void **state)
{
    (void)state;
    if (ctl_run_locate(g_ctl, sizeof(g_ctl)) != 0)
        return -1;
    snprintf(g_dir, sizeof(g_dir), "/tmp/ffgov-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(g_ca, sizeof(g_ca), "%s/ca/ca.crt", g_dir);
    populate();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enrolment_flow),
        cmocka_unit_test(identities_refused),
        cmocka_unit_test(four_eyes_gate_rollback_history),
        cmocka_unit_test(audit_trail_names_operators),
        cmocka_unit_test(help_and_usage),
    };

    if (ff_test_db_create(&g_db, "governance_ctl") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    if (g_dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "note: could not remove %s\n", g_dir);
    }
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
