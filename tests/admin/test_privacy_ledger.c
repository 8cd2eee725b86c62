/*
 * test_privacy_ledger.c - runs the real fedfusectl ($FEDFUSE_BIN) against
 * a fresh PostgreSQL database populated through the registry library and
 * checks `privacy MODEL` (table and JSON), `privacy budget`, and the
 * privacy columns of `versions` and `show`, with the real values written,
 * and a 100000-row ledger read in bounded time and memory (the newest
 * 200, every row streamed, the summary).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <math.h>

#include <cmocka.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "ctl_run.h"

static ff_test_db g_db;
static char g_ctl[4096];
static const char g_hostile[] = "would exceed \x1b[2J budget 8 (epsilon "
                                "8.75)";

/* ---- running fedfusectl ------------------------------------------------ */

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

/* The operator certificate made in setup by `fedfusectl ca init`. */
static char g_cert[256], g_key[256], g_ca[256], g_cadir[64];

/* Runs fedfusectl --db <test db> with the operator's identity. */
static ctl_run
run_ctl_op(const char *first, ...)
{
    const char *lead[] = {"--db", g_db.conninfo, "--cert", g_cert,
                          "--key", g_key, "--ca", g_ca};
    va_list ap;
    ctl_run r;

    va_start(ap, first);
    r = ctl_run_va(g_ctl, NULL, lead, 8, first, ap);
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

static json_t *
parse_json(const ctl_run *r)
{
    json_error_t jerr;
    json_t *j = json_loads(r->out, JSON_DECODE_ANY, &jerr);

    if (j == NULL)
        fail_msg("stdout is not JSON (%s): %.300s", jerr.text, r->out);
    return j;
}

/* The line of text holding every one of the NULL-terminated needles;
 * fails the test when there is not exactly one. Returns a malloc'd
 * copy. */
static char *
line_with(const char *text, ...)
{
    const char *needles[8];
    va_list ap;
    size_t n = 0;
    char *found = NULL;
    int count = 0;

    va_start(ap, text);
    for (const char *s = va_arg(ap, char *); s != NULL && n < 8;
         s = va_arg(ap, char *))
        needles[n++] = s;
    va_end(ap);
    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        char *line = strndup(p, len);
        assert_non_null(line);
        size_t k = 0;
        while (k < n && strstr(line, needles[k]) != NULL)
            k++;
        if (k == n) {
            count++;
            free(found);
            found = line;
        } else {
            free(line);
        }
        p += len + (p[len] == '\n');
    }
    if (count != 1)
        fail_msg("%d lines hold '%s'...: %s", count, n ? needles[0] : "",
                 text);
    return found;
}

/* Splits line into whitespace-separated tokens (in place); returns how
 * many, at most max. */
static size_t
tokens(char *line, char **tok, size_t max)
{
    size_t n = 0;

    for (char *s = strtok(line, " "); s != NULL && n < max;
         s = strtok(NULL, " "))
        tok[n++] = s;
    return n;
}

/* The largest difference between a number fedfusectl printed in JSON and
 * what was written; the tolerance is 0. */
static double g_worst;

static void
near(const json_t *o, const char *key, double want)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_number(v))
        fail_msg("%s: not a number", key);
    double d = fabs(json_number_value(v) - want);
    if (d > g_worst)
        g_worst = d;
    if (d != 0)
        fail_msg("%s: %.17g, expected %.17g", key, json_number_value(v),
                 want);
}

/* ---- populating ---------------------------------------------------------- */

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

static ff_ledger_entry
entry(const char *site, int round, const char *status, const char *mech,
      double eps)
{
    ff_ledger_entry e = {0};

    e.model = "dp-model";
    e.round = round;
    e.site = site;
    e.status = status;
    e.mechanism = mech;
    e.epsilon = eps;
    e.delta = 1e-5;
    e.noise_multiplier = 1.0937;
    e.clip = 1.0;
    e.sampling_rate = 0.0107;
    e.steps = 94;
    e.budget = 8;
    return e;
}

static void
publish(ff_registry *r, const char *model, int parent, json_t *privacy)
{
    ff_error err = {0};
    uint8_t art[256];
    char digest[65];
    ff_version_new v = {0};
    static const ff_contribution c[] = {{"hospital-a", 600, NULL, NULL}};

    for (size_t i = 0; i < sizeof(art); i++)
        art[i] = (uint8_t)(i * 31 + (unsigned)parent);
    ff_registry_digest(art, sizeof(art), digest);
    v.model = model;
    v.parent = parent;
    v.contributions = c;
    v.n_contributions = 1;
    v.artifact = art;
    v.artifact_len = sizeof(art);
    v.digest_hex = digest;
    v.privacy = privacy;
    must(ff_registry_version_publish(r, &v, NULL, &err), &err, "publish");
}

static void
populate(void)
{
    ff_registry *r = NULL;
    ff_error err = {0};
    int version = 0;

    must(ff_registry_open(&r, g_db.conninfo, &err), &err, "open");
    must(ff_registry_migrate(r, &version, &err), &err, "migrate");
    static const char *const models[] = {"dp-model", "dp-budget", "plain"};
    for (size_t i = 0; i < 3; i++)
        must(ff_registry_model_ensure(r, models[i], NULL, &err), &err,
             models[i]);
    must(ff_registry_budget_set(r, "dp-model", 6, 1e-5, "operator:tester",
                                &err), &err, "budget");

    /* Round 1: a DP-SGD site, a site without DP, the model. */
    ff_ledger_entry e[5];
    e[0] = entry("hospital-a", 1, "spent", "dp-sgd", 1.2345);
    e[1] = entry("hospital-b", 1, "spent", "none", INFINITY);
    e[1].noise_multiplier = NAN;
    e[1].clip = NAN;
    e[1].sampling_rate = NAN;
    e[1].steps = 0;
    e[1].budget = INFINITY;
    e[2] = entry(NULL, 1, "spent", "central-gaussian", 0.4125);
    e[2].noise_multiplier = 0.9876;
    e[2].clip = 0.25;
    e[2].sampling_rate = 1;
    e[2].steps = 1;
    e[2].budget = 6;
    e[2].params = json_pack("{s:f}", "clip_in_force", 0.25);

    /* Round 2: the site refuses (hostile reason), the model refuses. */
    e[3] = entry("hospital-a", 2, "refused", "dp-sgd", 8.75);
    e[3].reason = g_hostile;
    e[4] = entry(NULL, 2, "refused", "central-gaussian", 6.5);
    e[4].reason = "model epsilon 6.5 would exceed its budget 6";
    e[4].budget = 6;
    for (int i = 0; i < 5; i++)
        must(ff_registry_ledger_add(r, &e[i], &err), &err, "ledger");
    json_decref(e[2].params);

    /* Versions: one with record epsilon, one with site epsilon, one
     * without any privacy summary. */
    json_t *p1 = json_pack("{s:f, s:n, s:f, s:s}", "record_epsilon", 2.5,
                           "site_epsilon", "delta", 1e-5, "site_mechanism",
                           "none");
    json_t *p2 = json_pack("{s:n, s:f, s:f, s:s}", "record_epsilon",
                           "site_epsilon", 0.8, "delta", 1e-5,
                           "site_mechanism", "central-gaussian");
    publish(r, "dp-model", 0, p1);
    publish(r, "dp-model", 1, p2);
    publish(r, "plain", 0, NULL);
    json_decref(p1);
    json_decref(p2);
    ff_registry_close(r);
}

/* ---- tests ----------------------------------------------------------- */

/* The table: budget line, one row per entry with the values written,
 * "(model)" for the model's rows, "inf" for unbounded, the hostile reason
 * escaped. `privacy ledger MODEL` prints the same. */
static void
ledger_table_shows_real_values(void **state)
{
    (void)state;
    ctl_run r = run_ctl("privacy", "dp-model", NULL);

    expect_code(&r, 0, "privacy dp-model");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "model     dp-model\n"));
    assert_non_null(strstr(r.out, "model budget  epsilon 6, delta 1e-05, site level (set by "
                                  "operator:tester at "));
    char *hdr = line_with(r.out, "ROUND", "SITE", "STATUS", "MECHANISM",
                          "EPSILON", "NOISE MULT", "BUDGET", NULL);
    assert_non_null(strstr(hdr, "CLIP  "));
    assert_non_null(strstr(hdr, " Q  "));
    assert_non_null(strstr(hdr, "STEPS"));
    assert_non_null(strstr(hdr, "REASON"));
    free(hdr);

    /* hospital-a, round 1: every column. */
    char *tok[16];
    char *l = line_with(r.out, "hospital-a", "spent", NULL);
    assert_int_equal(tokens(l, tok, 16), 12);
    static const char *const a[] = {"1", "hospital-a", "spent", "dp-sgd",
                                    "1.2345", "1e-05", "1.0937", "1",
                                    "0.0107", "94", "8", "-"};
    for (int i = 0; i < 12; i++)
        assert_string_equal(tok[i], a[i]);
    free(l);

    /* hospital-b: no DP. */
    l = line_with(r.out, "hospital-b", NULL);
    assert_int_equal(tokens(l, tok, 16), 12);
    static const char *const b[] = {"1", "hospital-b", "spent", "none",
                                    "inf", "1e-05", "-", "-", "-", "0",
                                    "none", "-"};
    for (int i = 0; i < 12; i++)
        assert_string_equal(tok[i], b[i]);
    free(l);

    /* The model's spent row and both refusals. */
    l = line_with(r.out, "(model)", "spent", NULL);
    assert_int_equal(tokens(l, tok, 16), 12);
    static const char *const m[] = {"1", "(model)", "spent",
                                    "central-gaussian", "0.4125", "1e-05",
                                    "0.9876", "0.25", "1", "1", "6", "-"};
    for (int i = 0; i < 12; i++)
        assert_string_equal(tok[i], m[i]);
    free(l);
    l = line_with(r.out, "(model)", "refused", "6.5000",
                  "model epsilon 6.5 would exceed its budget 6", NULL);
    free(l);
    l = line_with(r.out, "hospital-a", "refused", "8.7500",
                  "would exceed \\x1b[2J budget 8", NULL);
    free(l);
    assert_null(strchr(r.out, '\x1b'));

    /* The explicit form prints the same. */
    ctl_run r2 = run_ctl("privacy", "ledger", "dp-model", NULL);
    expect_code(&r2, 0, "privacy ledger dp-model");
    assert_string_equal(r.out, r2.out);
    ctl_run_free(&r2);
    ctl_run_free(&r);

    /* A model with neither budget nor entries. */
    r = run_ctl("privacy", "plain", NULL);
    expect_code(&r, 0, "privacy plain");
    assert_non_null(strstr(r.out, "model budget  none set"));
    assert_non_null(strstr(r.out, "no ledger entries"));
    ctl_run_free(&r);
}

/* --json: the registry's document, values exact, null for unbounded. */
static void
ledger_json_has_real_values(void **state)
{
    (void)state;
    ctl_run r = run_ctl("--json", "privacy", "dp-model", NULL);

    expect_code(&r, 0, "--json privacy dp-model");
    json_t *j = parse_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model")),
                        "dp-model");
    const json_t *b = json_object_get(j, "budget");
    near(b, "epsilon", 6);
    near(b, "delta", 1e-5);
    assert_string_equal(json_string_value(json_object_get(b, "set_by")),
                        "operator:tester");

    const json_t *es = json_object_get(j, "entries");
    assert_int_equal(json_array_size(es), 5);
    const json_t *a = json_array_get(es, 0);
    near(a, "round", 1);
    near(a, "epsilon", 1.2345);
    near(a, "noise_multiplier", 1.0937);
    near(a, "sampling_rate", 0.0107);
    near(a, "steps", 94);
    near(a, "budget", 8);
    const json_t *nb = json_array_get(es, 1);
    assert_true(json_is_null(json_object_get(nb, "epsilon")));
    assert_true(json_is_null(json_object_get(nb, "budget")));
    assert_true(json_is_null(json_object_get(nb, "noise_multiplier")));
    const json_t *m = json_array_get(es, 2);
    assert_true(json_is_null(json_object_get(m, "site")));
    near(json_object_get(m, "params"), "clip_in_force", 0.25);
    const json_t *ref = json_array_get(es, 3);
    assert_string_equal(json_string_value(json_object_get(ref, "status")),
                        "refused");
    assert_string_equal(json_string_value(json_object_get(ref, "reason")),
                        g_hostile);
    near(ref, "epsilon", 8.75);
    near(json_array_get(es, 4), "round", 2);
    json_decref(j);
    ctl_run_free(&r);
    print_message("JSON values equal to what was written (largest "
                  "difference %g, tolerance 0)\n", g_worst);
}

/* Reads dp-budget's budget through the registry. */
static void
budget_now(double *eps, double *delta, int *found)
{
    ff_registry *reg = NULL;
    ff_error err = {0};

    must(ff_registry_open(&reg, g_db.conninfo, &err), &err, "open");
    must(ff_registry_budget_get(reg, "dp-budget", eps, delta, found, &err),
         &err, "budget_get");
    ff_registry_close(reg);
}

/* privacy budget needs an operator certificate; it sets the budget,
 * audited with the certificate's name; the text and JSON answers show it;
 * bad flags change nothing. */
static void
budget_command_sets_and_audits(void **state)
{
    (void)state;
    double eps = 0, delta = 0;
    int found = 0;
    const char *actor = "operator:tester";

    /* Without an operator certificate: refused, nothing set. */
    ctl_run r = run_ctl("privacy", "budget", "dp-budget", "--epsilon", "2.5",
                        "--delta", "1e-6", NULL);
    expect_code(&r, 1, "privacy budget without a certificate");
    assert_non_null(strstr(r.err, "privacy budget needs an operator "
                                  "certificate (--cert/--key/--ca); you "
                                  "have none"));
    ctl_run_free(&r);
    budget_now(&eps, &delta, &found);
    assert_false(found);

    r = run_ctl_op("privacy", "budget", "dp-budget", "--epsilon", "2.5",
                   "--delta", "1e-6", NULL);
    expect_code(&r, 0, "privacy budget");
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "epsilon 2.5, delta 1e-06"));
    assert_non_null(strstr(r.out, actor));
    ctl_run_free(&r);
    budget_now(&eps, &delta, &found);
    assert_true(found && eps == 2.5 && delta == 1e-6);
    const char *p[2] = {actor, "dp-budget"};
    assert_int_equal(ff_test_db_number(&g_db,
                                       "SELECT count(*) FROM audit WHERE "
                                       "action = 'privacy.budget_set' AND "
                                       "actor = $1 AND details->>'model' = "
                                       "$2 AND (details->>'epsilon')::float8 "
                                       "= 2.5",
                                       2, p), 1);

    /* Overwrite, with --json; the ledger view shows the new one. */
    r = run_ctl_op("--json", "privacy", "budget", "dp-budget", "--epsilon=3",
                   "--delta=1e-5", NULL);
    expect_code(&r, 0, "--json privacy budget");
    json_t *j = parse_json(&r);
    near(j, "epsilon", 3);
    near(j, "delta", 1e-5);
    assert_string_equal(json_string_value(json_object_get(j, "set_by")),
                        actor);
    json_decref(j);
    ctl_run_free(&r);
    r = run_ctl("privacy", "dp-budget", NULL);
    expect_code(&r, 0, "privacy dp-budget");
    assert_non_null(strstr(r.out, "model budget  epsilon 3, delta 1e-05, site level (set "
                                  "by operator:"));
    ctl_run_free(&r);

    /* Usage errors: exit 2, naming the flag; nothing changes. */
    static const char *const bad[][8] = {
        {"privacy", "budget", "dp-budget", "--delta", "1e-5", NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "0", "--delta",
         "1e-5", NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "nan", "--delta",
         "1e-5", NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "inf", "--delta",
         "1e-5", NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "1", "--delta", "1",
         NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "1", "--delta", "0",
         NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "1", NULL},
        {"privacy", "budget", "dp-budget", "--epsilon", "1", "--delta",
         "1e-5", "--steps"},
        {"privacy", "budget", NULL},
        {"privacy", "dp-budget", "--epsilon", "1", NULL},
        {"privacy", "dp-budget", "extra", NULL},
    };
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++) {
        const char *args[12] = {"--db", g_db.conninfo};
        int k = 2;
        for (int c = 0; c < 8 && bad[i][c] != NULL; c++)
            args[k++] = bad[i][c];
        if (i == 7)
            args[k++] = "5";
        args[k] = NULL;
        r = ctl_run_argv(g_ctl, NULL, args);
        char what[32];
        snprintf(what, sizeof(what), "bad budget case %zu", i);
        expect_code(&r, 2, what);
        assert_true(strlen(r.err) > 0);
        print_message("  case %zu: %s", i, r.err);
        ctl_run_free(&r);
    }
    budget_now(&eps, &delta, &found);
    assert_true(found && eps == 3 && delta == 1e-5);
    print_message("%zu bad command lines exited 2, budget unchanged\n", n);
}

/* An unknown model: exit 3 with "no such model", for both commands. */
static void
unknown_model_exits_3(void **state)
{
    (void)state;
    ctl_run r = run_ctl("privacy", "no-such-model", NULL);

    expect_code(&r, 3, "privacy of an unknown model");
    assert_non_null(strstr(r.err, "no such model"));
    assert_non_null(strstr(r.err, "no-such-model"));
    ctl_run_free(&r);
    r = run_ctl("--json", "privacy", "no-such-model", NULL);
    expect_code(&r, 3, "--json privacy of an unknown model");
    assert_int_equal(strlen(r.out), 0);
    ctl_run_free(&r);
    r = run_ctl_op("privacy", "budget", "no-such-model", "--epsilon", "1",
                   "--delta", "1e-5", NULL);
    expect_code(&r, 3, "budget of an unknown model");
    assert_non_null(strstr(r.err, "no such model"));
    ctl_run_free(&r);
    assert_int_equal(ff_test_db_number(&g_db,
                                       "SELECT count(*) FROM model_budget "
                                       "WHERE model = 'no-such-model'",
                                       0, NULL), 0);
}

/* versions shows EPS(RECORD) and EPS(SITE): numbers, "inf" for recorded
 * unbounded, "-" for no privacy recorded; --json carries the summary;
 * show prints it. */
static void
versions_show_epsilons(void **state)
{
    (void)state;
    char *tok[16];
    ctl_run r = run_ctl("versions", "dp-model", NULL);

    expect_code(&r, 0, "versions dp-model");
    print_message("%s", r.out);
    char *h = line_with(r.out, "VERSION", NULL);
    assert_int_equal(tokens(h, tok, 16), 11);
    assert_string_equal(tok[1], "STAGE");
    assert_string_equal(tok[8], "EPS(RECORD)");
    assert_string_equal(tok[9], "EPS(SITE)");
    free(h);
    static const char *const want[2][2] = {{"2.5000", "inf"},
                                           {"inf", "0.8000"}};
    for (int v = 0; v < 2; v++) {
        char num[4];
        snprintf(num, sizeof(num), "%d", v + 1);
        char *l = line_with(r.out, want[v][0], want[v][1], NULL);
        assert_int_equal(tokens(l, tok, 16), 11);
        assert_string_equal(tok[0], num);
        assert_string_equal(tok[1], "candidate");
        assert_string_equal(tok[8], want[v][0]);
        assert_string_equal(tok[9], want[v][1]);
        free(l);
    }
    ctl_run_free(&r);

    r = run_ctl("versions", "plain", NULL);
    expect_code(&r, 0, "versions plain");
    char *l = line_with(r.out, "600", NULL);
    assert_int_equal(tokens(l, tok, 16), 11);
    assert_string_equal(tok[8], "-");
    assert_string_equal(tok[9], "-");
    free(l);
    ctl_run_free(&r);

    /* JSON. */
    r = run_ctl("--json", "versions", "dp-model", NULL);
    expect_code(&r, 0, "--json versions");
    json_t *j = parse_json(&r);
    const json_t *p1 = json_object_get(json_array_get(j, 0), "privacy");
    const json_t *p2 = json_object_get(json_array_get(j, 1), "privacy");
    near(p1, "record_epsilon", 2.5);
    assert_true(json_is_null(json_object_get(p1, "site_epsilon")));
    assert_true(json_is_null(json_object_get(p2, "record_epsilon")));
    near(p2, "site_epsilon", 0.8);
    assert_string_equal(json_string_value(json_object_get(p2,
                                                          "site_mechanism")),
                        "central-gaussian");
    json_decref(j);
    ctl_run_free(&r);
    r = run_ctl("--json", "versions", "plain", NULL);
    j = parse_json(&r);
    assert_true(json_is_null(json_object_get(json_array_get(j, 0),
                                             "privacy")));
    json_decref(j);
    ctl_run_free(&r);

    /* show. */
    r = run_ctl("show", "dp-model", "2", NULL);
    expect_code(&r, 0, "show");
    assert_non_null(strstr(r.out, "\nprivacy\n"));
    assert_non_null(strstr(r.out, "\"site_epsilon\": 0.8"));
    assert_non_null(strstr(r.out, "\"record_epsilon\": null"));
    ctl_run_free(&r);
}

/* Help names the new forms and columns; privacy plan still works. */
static void
help_and_plan(void **state)
{
    (void)state;
    const char *args[] = {"privacy", "--help", NULL};
    ctl_run r = ctl_run_argv(g_ctl, NULL, args);

    expect_code(&r, 0, "privacy --help");
    assert_non_null(strstr(r.out, "privacy budget MODEL --epsilon E "
                                  "--delta D"));
    assert_non_null(strstr(r.out, "privacy [ledger] MODEL"));
    assert_non_null(strstr(r.out, "(model)"));
    assert_non_null(strstr(r.out, "--order-grid"));
    ctl_run_free(&r);
    const char *vargs[] = {"versions", "--help", NULL};
    r = ctl_run_argv(g_ctl, NULL, vargs);
    expect_code(&r, 0, "versions --help");
    assert_non_null(strstr(r.out, "EPS(RECORD)"));
    ctl_run_free(&r);
    const char *top[] = {"--help", NULL};
    r = ctl_run_argv(g_ctl, NULL, top);
    assert_non_null(strstr(r.out, "  privacy budget MODEL"));
    ctl_run_free(&r);

    r = run_ctl("privacy", "plan", "--sampling-rate", "1",
                "--noise-multiplier", "1", "--steps", "1", "--delta", "1e-5",
                NULL);
    expect_code(&r, 0, "privacy plan");
    assert_non_null(strstr(r.out, "epsilon"));
    ctl_run_free(&r);
    r = run_ctl("privacy", "plan", "extra", "--sampling-rate", "1",
                "--noise-multiplier", "1", "--steps", "1", "--delta", "1e-5",
                NULL);
    expect_code(&r, 2, "privacy plan with an argument");
    ctl_run_free(&r);
}

static int
setup(void **state)
{
    (void)state;
    if (ctl_run_locate(g_ctl, sizeof(g_ctl)) != 0)
        return -1;
    populate();

    /* The consortium CA and the operator "tester", made by the real
     * command, for privacy budget. */
    snprintf(g_cadir, sizeof(g_cadir), "/tmp/ffledger-ca-XXXXXX");
    if (mkdtemp(g_cadir) == NULL)
        return -1;
    snprintf(g_cert, sizeof(g_cert), "%s/ca/operators/tester.crt", g_cadir);
    snprintf(g_key, sizeof(g_key), "%s/ca/operators/tester.key", g_cadir);
    snprintf(g_ca, sizeof(g_ca), "%s/ca/ca.crt", g_cadir);
    char dir[96];
    snprintf(dir, sizeof(dir), "%s/ca", g_cadir);
    ctl_run r = run_ctl("ca", "init", "--dir", dir, "--name", "Test CA",
                        "--operator", "tester", NULL);
    int code = r.code;
    if (code != 0)
        fprintf(stderr, "ca init: %s", r.err);
    ctl_run_free(&r);
    return code == 0 ? 0 : -1;
}

/* ---- a long ledger: paging, streaming, summary ------------------------- */

/* Rounds of the generated ledger; each has 4 site rows and the model's,
 * so BIG_ROUNDS * 5 rows in all. */
#define BIG_ROUNDS 20000
#define BIG_ROWS (BIG_ROUNDS * 5)

/* Bounds the runs must keep, whatever the ledger's length. */
#define BIG_MAX_SECONDS 20.0
#define BIG_MAX_RSS_KB (96 * 1024)

/* Writes BIG_ROWS rows for model "big" with generate_series: round r,
 * site k (k = 1: the model) spent epsilon r * 0.001 * k; the model
 * refuses the last round. */
static void
big_populate(void)
{
    const char *p[1] = {"big"};

    assert_true(ff_test_db_exec(&g_db, "INSERT INTO models (name) "
                                "VALUES ($1)", 1, p) == 1);
    long long n = ff_test_db_exec(
        &g_db,
        "INSERT INTO privacy_ledger (model, round, site, status, "
        "mechanism, epsilon, delta, noise_multiplier, clip, sampling_rate, "
        "steps, budget, reason) SELECT $1, r, s.site, CASE WHEN s.k = 1 AND "
        "r = 20000 THEN 'refused' ELSE 'spent' END, CASE WHEN s.k = 1 THEN "
        "'central-gaussian' ELSE 'dp-sgd' END, r * 0.001 * s.k, 1e-5, 1.1, "
        "1.0, 0.01, 94, 100, CASE WHEN s.k = 1 AND r = 20000 THEN 'over' "
        "END FROM generate_series(1, 20000) r, (VALUES (NULL::text, 1), "
        "('site-1', 2), ('site-2', 3), ('site-3', 4), ('site-4', 5)) "
        "s(site, k) ORDER BY r, s.k",
        1, p);
    assert_int_equal(n, BIG_ROWS);
    assert_true(ff_test_db_exec(&g_db, "ANALYZE privacy_ledger", 0, NULL)
                >= 0);
}

/* Runs fedfusectl with args, timed; fails beyond BIG_MAX_SECONDS or when
 * the largest child so far grew beyond BIG_MAX_RSS_KB. ru_maxrss of the
 * children is an upper bound on fedfusectl's peak: a forked child starts
 * with this process's resident pages, so the big outputs are parsed only
 * after the last run. */
static ctl_run
big_run(const char *what, const char *a1, const char *a2, const char *a3,
        const char *a4, const char *a5)
{
    struct timespec t0, t1;
    struct rusage ru;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    ctl_run r = run_ctl(a1, a2, a3, a4, a5, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    getrusage(RUSAGE_CHILDREN, &ru);
    print_message("%-40s %6.3f s, %8zu bytes out, largest fedfusectl so "
                  "far %ld kB (bounds %.0f s, %d kB)\n", what, secs,
                  r.out_len, ru.ru_maxrss, BIG_MAX_SECONDS, BIG_MAX_RSS_KB);
    expect_code(&r, 0, what);
    if (secs > BIG_MAX_SECONDS || ru.ru_maxrss > BIG_MAX_RSS_KB)
        fail_msg("%s: %.3f s, %ld kB: beyond the bounds", what, secs,
                 ru.ru_maxrss);
    return r;
}

/* Lines of text holding needle. */
static long
count_lines(const char *text, const char *needle)
{
    long n = 0;

    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        char *line = strndup(p, len);
        assert_non_null(line);
        n += strstr(line, needle) != NULL;
        free(line);
        p += len + (p[len] == '\n');
    }
    return n;
}

/* Lines of text that begin with prefix. */
static long
count_starts(const char *text, const char *prefix)
{
    long n = 0;
    size_t len = strlen(prefix);

    for (const char *p = text; *p != '\0'; p += strcspn(p, "\n")) {
        if (*p == '\n')
            p++;
        n += strncmp(p, prefix, len) == 0;
    }
    return n;
}

/* 100000 rows: the default view shows the newest 200 and says how many
 * there are; --limit 0 streams every row (text and JSON) in bounded
 * memory; --summary gives the latest epsilon per site and the model's. */
static void
long_ledger_bounded(void **state)
{
    (void)state;
    big_populate();

    /* The default: the newest 200 rows, rounds 19961..20000. */
    ctl_run r = big_run("privacy big (newest 200)", "privacy", "big", NULL,
                        NULL, NULL);
    assert_non_null(strstr(r.out, "entries   100000, the newest 200 "
                                  "below"));
    assert_int_equal(count_lines(r.out, "dp-sgd") +
                         count_lines(r.out, "central-gaussian"), 200);
    assert_int_equal(count_starts(r.out, "19960 "), 0);
    assert_int_equal(count_starts(r.out, "19961 "), 5);
    char *l = line_with(r.out, "(model)", "refused", "over", NULL);
    assert_non_null(strstr(l, "20000"));
    free(l);
    ctl_run_free(&r);

    /* --limit 7 --json: the 7 newest, oldest first, and the total. */
    r = big_run("--json privacy big --limit 7", "--json", "privacy", "big",
                "--limit", "7");
    json_t *j = parse_json(&r);
    const json_t *es = json_object_get(j, "entries");
    assert_int_equal(json_array_size(es), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "total")),
                     BIG_ROWS);
    near(json_array_get(es, 0), "round", 19999);
    near(json_array_get(es, 6), "round", 20000);
    near(json_array_get(es, 5), "epsilon", 80.0);   /* site-3 */
    near(json_array_get(es, 6), "epsilon", 100.0);  /* site-4 */
    json_decref(j);
    ctl_run_free(&r);

    /* --summary: the model's newest spent row is round 19999's. */
    r = big_run("privacy big --summary", "privacy", "big", "--summary",
                NULL, NULL);
    print_message("%s", r.out);
    assert_non_null(strstr(r.out, "entries   100000 in 5 lines"));
    l = line_with(r.out, "(model)", NULL);
    char *tok[16];
    assert_int_equal(tokens(l, tok, 16), 10);
    static const char *const m[] = {"(model)", "20000", "19999", "1",
                                    "1-20000", "refused", "19.9990",
                                    "1e-05", "central-gaussian", "100"};
    for (int i = 0; i < 10; i++)
        assert_string_equal(tok[i], m[i]);
    free(l);
    l = line_with(r.out, "site-4", NULL);
    assert_non_null(strstr(l, " 100.0000 "));
    free(l);
    ctl_run_free(&r);

    r = big_run("--json privacy big --summary", "--json", "privacy", "big",
                "--summary", NULL);
    j = parse_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "sites")), 5);
    /* The SQL computed 19999 * 0.001 in numeric: exactly 19.999. */
    near(json_array_get(json_object_get(j, "sites"), 0), "epsilon", 19.999);
    json_decref(j);
    ctl_run_free(&r);

    /* --limit 0: every row, page by page. */
    r = big_run("privacy big --limit 0 (all, text)", "privacy", "big",
                "--limit", "0", NULL);
    assert_int_equal(count_lines(r.out, "dp-sgd") +
                         count_lines(r.out, "central-gaussian"), BIG_ROWS);
    assert_int_equal(count_lines(r.out, "(model)"), BIG_ROUNDS);
    assert_non_null(strstr(r.out, "\nentries   100000\n"));
    ctl_run_free(&r);

    /* Parsed only after the run: fedfusectl inherits this process's
     * memory when forked, and the bound is on the largest child. */
    r = big_run("--json privacy big --limit 0 (all)", "--json", "privacy",
                "big", "--limit", "0");
    j = parse_json(&r);
    es = json_object_get(j, "entries");
    assert_int_equal(json_array_size(es), BIG_ROWS);
    assert_int_equal(json_integer_value(json_object_get(j, "total")),
                     BIG_ROWS);
    json_int_t prev = 0;
    for (size_t i = 0; i < json_array_size(es); i++) {
        json_int_t id = json_integer_value(json_object_get(
            json_array_get(es, i), "id"));
        if (id <= prev)
            fail_msg("entry %zu: id %lld after %lld", i, (long long)id,
                     (long long)prev);
        prev = id;
    }
    near(json_array_get(es, BIG_ROWS - 1), "round", BIG_ROUNDS);
    json_decref(j);
    ctl_run_free(&r);
}

/* Bad --limit values and flag mixes are usage errors (exit 2) that name
 * the flag. */
static void
ledger_flags_refused(void **state)
{
    (void)state;
    static const char *const bad[][4] = {
        {"privacy", "dp-model", "--limit", "-1"},
        {"privacy", "dp-model", "--limit", "10001"},
        {"privacy", "dp-model", "--limit", "ten"},
        {"privacy", "--summary", "dp-model", "--limit=5"},
        {"privacy", "budget", "dp-model", "--summary"},
    };
    static const char *const want[] = {"--limit", "--limit", "--limit",
                                       "exclude each other",
                                       "only --epsilon and --delta"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctl_run r = run_ctl(bad[i][0], bad[i][1], bad[i][2], bad[i][3],
                            NULL);
        expect_code(&r, 2, bad[i][3]);
        if (strstr(r.err, want[i]) == NULL)
            fail_msg("%s %s: expected '%s' in: %s", bad[i][2], bad[i][3],
                     want[i], r.err);
        ctl_run_free(&r);
    }
}

/* Removes what ca init made under g_cadir. */
static void
remove_ca(void)
{
    static const char *const files[] = {
        "ca/operators/tester.key", "ca/operators/tester.csr",
        "ca/operators/tester.crt", "ca/operators", "ca/ca.key",
        "ca/ca.crt", "ca", ""};
    char path[160];

    if (g_cadir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", g_cadir, files[i]);
        if (remove(path) != 0)
            fprintf(stderr, "note: could not remove %s\n", path);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ledger_table_shows_real_values),
        cmocka_unit_test(ledger_json_has_real_values),
        cmocka_unit_test(budget_command_sets_and_audits),
        cmocka_unit_test(unknown_model_exits_3),
        cmocka_unit_test(versions_show_epsilons),
        cmocka_unit_test(help_and_plan),
        cmocka_unit_test(ledger_flags_refused),
        cmocka_unit_test(long_ledger_bounded),
    };

    if (ff_test_db_create(&g_db, "privacy_ledger") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    printf("largest difference of a printed JSON number: %g (tolerance "
           "0)\n", g_worst);
    remove_ca();
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
