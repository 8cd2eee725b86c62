/*
 * test_privacy_plan.c - runs the real `fedfusectl privacy plan`
 * ($FEDFUSE_BIN/fedfusectl) with FEDFUSE_DB removed from its environment,
 * and checks its epsilons against published values and a closed form, the
 * plan/epsilon round trip, the text block, help, and exit code 2 naming the
 * flag for every usage error. Needs no PostgreSQL.
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctl_run.h"


static char g_ctl[4096];  /* path of fedfusectl */
static double g_worst;    /* largest relative difference seen */

/* The MNIST DP-SGD example: batch 256 of 60000, sigma 1.1, 60 epochs. */
#define MNIST_Q "0.004266666666666667"
#define MNIST_T "14063"

/* ---- running fedfusectl ------------------------------------------------ */

/* Runs fedfusectl with args (NULL-terminated, without argv[0]) and an
 * environment without FEDFUSE_DB. */
static ctl_run
run_argv(const char *const *args)
{
    return ctl_run_argv(g_ctl, NULL, args);
}

/* Runs fedfusectl first, ... (NULL-terminated). */
static ctl_run
run_ctl(const char *first, ...)
{
    va_list ap;
    ctl_run r;

    va_start(ap, first);
    r = ctl_run_va(g_ctl, NULL, NULL, 0, first, ap);
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
    json_t *j = json_loads(r->out, 0, &jerr);

    if (j == NULL)
        fail_msg("stdout is not JSON (%s): %.300s", jerr.text, r->out);
    return j;
}

/* The number under key in j (fails the test when it is not one). */
static double
jnum(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);

    if (!json_is_number(v))
        fail_msg("JSON key %s is missing or not a number", key);
    return json_number_value(v);
}

/* Checks got against want to relative tolerance tol and prints both. */
static void
expect_rel(const char *what, double got, double want, double tol)
{
    double rel = fabs(got - want) / fabs(want);

    printf("  %-34s %.16g vs %.16g  rel %.2e (tol %.0e)\n", what, got, want,
           rel, tol);
    if (rel > g_worst)
        g_worst = rel;
    if (!(rel <= tol))
        fail_msg("%s: %.17g, expected %.17g (rel %.3g > %.0e)", what, got,
                 want, rel, tol);
}

/* ---- published values --------------------------------------------------- */

/* MNIST: the tight epsilon and the old one (Abadi et al. / TF-Privacy
 * README), with the text block showing both to four decimals. */
static void
mnist_epsilon_tight_and_old(void **state)
{
    (void)state;

    ctl_run r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q,
                        "--noise-multiplier", "1.1", "--steps", MNIST_T,
                        "--delta", "1e-5", NULL);
    expect_code(&r, 0, "mnist text");
    printf("%s", r.out);
    assert_non_null(strstr(r.out, "2.5967"));
    assert_non_null(strstr(r.out, "3.0084"));
    assert_non_null(strstr(r.out, "order 8.1"));
    assert_non_null(strstr(r.out, "0.004266666666666667"));
    assert_non_null(strstr(r.out, "14063"));
    ctl_run_free(&r);

    r = run_ctl("--json", "privacy", "plan", "--sampling-rate", MNIST_Q,
                "--noise-multiplier", "1.1", "--steps", MNIST_T, "--delta",
                "1e-5", NULL);
    expect_code(&r, 0, "mnist json");
    json_t *j = parse_json(&r);
    expect_rel("MNIST epsilon (tight)", jnum(j, "epsilon"),
               2.596655529521983, 1e-6);
    expect_rel("MNIST epsilon (old)", jnum(j, "epsilon_old"), 3.0083811,
               1e-6);
    assert_true(fabs(jnum(j, "order") - 8.1) < 1e-12);
    assert_true(fabs(jnum(j, "order_old") - 8.8) < 1e-12);
    assert_true(jnum(j, "sampling_rate") == 256.0 / 60000.0);
    assert_true(jnum(j, "noise_multiplier") == 1.1);
    assert_true(jnum(j, "delta") == 1e-5);
    assert_int_equal(json_integer_value(json_object_get(j, "steps")), 14063);
    assert_string_equal(json_string_value(json_object_get(j, "order_grid")),
                        "default");
    assert_string_equal(json_string_value(json_object_get(j, "mode")),
                        "epsilon");
    json_decref(j);
    ctl_run_free(&r);
}

/*
 * q = 0.0025, sigma 1.3, T = 6000: 0.7242234026109595 in the notes, which
 * used TF-Privacy's compute_dp_sgd_privacy orders (our "dpsgd" grid). The
 * best order is 19, which every grid holds, so the default grid must give
 * the same number; both are checked to rel 1e-6.
 */
static void
e4_epsilon_on_both_grids(void **state)
{
    (void)state;
    static const char *const grid[] = {"dpsgd", "default"};

    for (size_t g = 0; g < 2; g++) {
        const char *args[] = {"--json", "privacy", "plan",
                              "--sampling-rate", "0.0025",
                              "--noise-multiplier", "1.3", "--steps", "6000",
                              "--delta", "1e-5", "--order-grid", grid[g],
                              NULL};
        ctl_run r = run_argv(args);
        expect_code(&r, 0, grid[g]);
        json_t *j = parse_json(&r);
        char what[64];
        snprintf(what, sizeof(what), "E4 epsilon, %s grid", grid[g]);
        expect_rel(what, jnum(j, "epsilon"), 0.7242234026109595, 1e-6);
        assert_true(jnum(j, "order") == 19.0);
        assert_string_equal(
            json_string_value(json_object_get(j, "order_grid")), grid[g]);
        json_decref(j);
        ctl_run_free(&r);
    }
}

/*
 * q = 1 (no subsampling): the RDP of one Gaussian step is a / (2 z^2), so
 * epsilon by the tight conversion is the minimum over the default grid of
 * T a/(2 z^2) + log1p(-1/a) - (log delta + log a)/(a - 1), computed here
 * independently of the accountant.
 */
static void
full_batch_matches_closed_form(void **state)
{
    (void)state;
    double orders[160], best = INFINITY, best_old = INFINITY;
    const double z = 10.0, T = 3.0, delta = 1e-6;
    size_t n = 0;

    for (int k = 1; k <= 99; k++)
        orders[n++] = 1.0 + k / 10.0;
    for (int a = 11; a <= 63; a++)
        orders[n++] = a;
    for (double a = 128; a <= 1024; a *= 2)
        orders[n++] = a;
    assert_int_equal(n, 156);
    for (size_t i = 0; i < n; i++) {
        double a = orders[i], r = T * a / (2 * z * z);
        double e = r + log1p(-1 / a) - (log(delta) + log(a)) / (a - 1);
        double eo = r + log(1 / delta) / (a - 1);
        best = fmin(best, e);
        best_old = fmin(best_old, eo);
    }

    ctl_run r = run_ctl("privacy", "plan", "--json", "--sampling-rate", "1",
                        "--noise-multiplier", "10", "--steps", "3",
                        "--delta", "1e-6", NULL);
    expect_code(&r, 0, "q = 1");
    json_t *j = parse_json(&r);
    expect_rel("q=1 epsilon vs closed form", jnum(j, "epsilon"), best, 1e-9);
    expect_rel("q=1 epsilon (old) vs closed form", jnum(j, "epsilon_old"),
               best_old, 1e-9);
    json_decref(j);
    ctl_run_free(&r);
}

/* ---- planning ----------------------------------------------------------- */

/* Plan z for epsilon 3 at the MNIST q and T, then ask for epsilon(z) with
 * the printed z: at most 3, and within 1e-4 of it. */
static void
epsilon_round_trip(void **state)
{
    (void)state;
    char z[64];

    ctl_run r = run_ctl("--json", "privacy", "plan", "--sampling-rate",
                        MNIST_Q, "--epsilon", "3.0", "--steps", MNIST_T,
                        "--delta", "1e-5", NULL);
    expect_code(&r, 0, "plan for epsilon 3");
    json_t *j = parse_json(&r);
    double sigma = jnum(j, "noise_multiplier");
    double eps_plan = jnum(j, "epsilon");
    assert_string_equal(json_string_value(json_object_get(j, "mode")),
                        "noise_multiplier");
    assert_true(jnum(j, "target_epsilon") == 3.0);
    json_decref(j);
    ctl_run_free(&r);
    printf("  planned noise multiplier %.17g (epsilon %.12g)\n", sigma,
           eps_plan);
    /* Less noise than sigma 1.1 (epsilon 2.597) must do for epsilon 3. */
    assert_true(sigma > 0.9 && sigma < 1.1);

    snprintf(z, sizeof(z), "%.17g", sigma);
    r = run_ctl("--json", "privacy", "plan", "--sampling-rate", MNIST_Q,
                "--noise-multiplier", z, "--steps", MNIST_T, "--delta",
                "1e-5", NULL);
    expect_code(&r, 0, "epsilon at the planned sigma");
    j = parse_json(&r);
    double eps = jnum(j, "epsilon");
    json_decref(j);
    ctl_run_free(&r);
    printf("  epsilon(planned z) = %.12g, 3 - it = %.3g (tol 1e-4)\n", eps,
           3.0 - eps);
    assert_true(eps <= 3.0);
    assert_true(3.0 - eps <= 1e-4);
    assert_true(eps == eps_plan);

    /* The text block names the target and the planned multiplier. */
    r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q, "--epsilon",
                "3", "--steps", MNIST_T, "--delta", "1e-5", NULL);
    expect_code(&r, 0, "plan text");
    assert_non_null(strstr(r.out, "target epsilon"));
    assert_non_null(strstr(r.out, "noise multiplier"));
    ctl_run_free(&r);
}

/* A target below what the grid's largest order allows: exit 1. */
static void
infeasible_target_exits_1(void **state)
{
    (void)state;

    ctl_run r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q,
                        "--epsilon", "0.0035", "--steps", MNIST_T, "--delta",
                        "1e-5", NULL);
    expect_code(&r, 1, "infeasible epsilon");
    printf("  stderr: %s", r.err);
    assert_non_null(strstr(r.err, "unreachable"));
    assert_string_equal(r.out, "");
    ctl_run_free(&r);
}

/* ---- usage -------------------------------------------------------------- */

/* Each bad command line exits 2 and its message names the flag. */
static void
usage_errors_exit_2(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value; /* replaces or, with value NULL, drops */
        const char *named;        /* what stderr must contain */
    } cases[] = {
        {"--sampling-rate", NULL, "--sampling-rate"},
        {"--sampling-rate", "-0.1", "--sampling-rate"},
        {"--sampling-rate", "1.5", "--sampling-rate"},
        {"--sampling-rate", "nan", "--sampling-rate"},
        {"--sampling-rate", "0.1x", "--sampling-rate"},
        {"--sampling-rate", "", "--sampling-rate"},
        {"--noise-multiplier", "0", "--noise-multiplier"},
        {"--noise-multiplier", "-1", "--noise-multiplier"},
        {"--noise-multiplier", "NaN", "--noise-multiplier"},
        {"--noise-multiplier", "inf", "--noise-multiplier"},
        {"--noise-multiplier", NULL, "--epsilon"},
        {"--steps", NULL, "--steps"},
        {"--steps", "0", "--steps"},
        {"--steps", "-5", "--steps"},
        {"--steps", "1.5", "--steps"},
        {"--steps", "nan", "--steps"},
        {"--delta", NULL, "--delta"},
        {"--delta", "0", "--delta"},
        {"--delta", "1", "--delta"},
        {"--delta", "-1e-5", "--delta"},
        {"--delta", "nan", "--delta"},
        {"--delta", "1e-999", "--delta"},
        {"--order-grid", "fibonacci", "--order-grid"},
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        /* The MNIST command line with one flag changed or dropped. */
        const char *base[][2] = {{"--sampling-rate", MNIST_Q},
                                 {"--noise-multiplier", "1.1"},
                                 {"--steps", MNIST_T},
                                 {"--delta", "1e-5"},
                                 {"--order-grid", "default"}};
        const char *args[16] = {"privacy", "plan"};
        int n = 2;
        for (size_t b = 0; b < 5; b++) {
            int hit = strcmp(base[b][0], cases[c].flag) == 0;
            if (hit && cases[c].value == NULL)
                continue;
            args[n++] = base[b][0];
            args[n++] = hit ? cases[c].value : base[b][1];
        }
        args[n] = NULL;

        ctl_run r = run_argv(args);
        char what[96];
        snprintf(what, sizeof(what), "%s %s", cases[c].flag,
                 cases[c].value ? cases[c].value : "(missing)");
        expect_code(&r, 2, what);
        if (strstr(r.err, cases[c].named) == NULL)
            fail_msg("%s: stderr does not name %s: %s", what, cases[c].named,
                     r.err);
        printf("  %-28s -> %s", what, r.err);
        ctl_run_free(&r);
    }
}

/* Both ways of asking at once, bad targets, and incomplete subcommands. */
static void
conflicting_and_malformed_exit_2(void **state)
{
    (void)state;

    ctl_run r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q,
                        "--noise-multiplier", "1.1", "--epsilon", "3",
                        "--steps", MNIST_T, "--delta", "1e-5", NULL);
    expect_code(&r, 2, "both --noise-multiplier and --epsilon");
    assert_non_null(strstr(r.err, "--noise-multiplier"));
    assert_non_null(strstr(r.err, "--epsilon"));
    ctl_run_free(&r);

    static const char *const bad_eps[] = {"0", "-3", "nan", "inf", "3e"};
    for (size_t i = 0; i < sizeof(bad_eps) / sizeof(bad_eps[0]); i++) {
        r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q,
                    "--epsilon", bad_eps[i], "--steps", MNIST_T, "--delta",
                    "1e-5", NULL);
        expect_code(&r, 2, bad_eps[i]);
        assert_non_null(strstr(r.err, "--epsilon"));
        ctl_run_free(&r);
    }

    r = run_ctl("privacy", NULL);
    expect_code(&r, 2, "privacy without subcommand");
    assert_non_null(strstr(r.err, "plan"));
    ctl_run_free(&r);
    r = run_ctl("privacy", "budget", NULL);
    expect_code(&r, 2, "privacy budget without MODEL");
    assert_non_null(strstr(r.err, "budget"));
    ctl_run_free(&r);
    r = run_ctl("privacy", "plan", "--sampling-rate", MNIST_Q, "--bogus", "1",
                NULL);
    expect_code(&r, 2, "unknown option");
    assert_non_null(strstr(r.err, "--bogus"));
    ctl_run_free(&r);
    r = run_ctl("privacy", "plan", "--steps", NULL);
    expect_code(&r, 2, "option without value");
    assert_non_null(strstr(r.err, "--steps"));
    ctl_run_free(&r);
}

/* Help, and the database left alone: a --db that names no server changes
 * nothing, since the command never connects. */
static void
help_and_no_database(void **state)
{
    (void)state;
    static const char *const helps[][3] = {{"privacy", "--help", NULL},
                                           {"privacy", "plan", "--help"}};

    for (size_t i = 0; i < 2; i++) {
        const char *args[] = {helps[i][0], helps[i][1], helps[i][2], NULL};
        ctl_run r = run_argv(args);
        expect_code(&r, 0, "privacy help");
        assert_non_null(strstr(r.out, "usage: fedfusectl"));
        assert_non_null(strstr(r.out, "--noise-multiplier"));
        assert_non_null(strstr(r.out, "--order-grid"));
        ctl_run_free(&r);
    }
    ctl_run r = run_ctl("--help", NULL);
    expect_code(&r, 0, "--help");
    assert_non_null(strstr(r.out, "privacy plan"));
    ctl_run_free(&r);

    r = run_ctl("--db", "host=/nonexistent-ffplan port=1", "privacy", "plan",
                "--sampling-rate", "0.01", "--noise-multiplier", "1",
                "--steps", "100", "--delta", "1e-5", NULL);
    expect_code(&r, 0, "with an unreachable --db");
    assert_non_null(strstr(r.out, "epsilon"));
    ctl_run_free(&r);
}

static int
setup(void **state)
{
    (void)state;
    if (ctl_run_locate(g_ctl, sizeof(g_ctl)) != 0)
        return -1;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mnist_epsilon_tight_and_old),
        cmocka_unit_test(e4_epsilon_on_both_grids),
        cmocka_unit_test(full_batch_matches_closed_form),
        cmocka_unit_test(epsilon_round_trip),
        cmocka_unit_test(infeasible_target_exits_1),
        cmocka_unit_test(usage_errors_exit_2),
        cmocka_unit_test(conflicting_and_malformed_exit_2),
        cmocka_unit_test(help_and_no_database),
    };

    int failed = cmocka_run_group_tests(tests, setup, NULL);
    printf("largest relative difference against references: %.3g\n",
           g_worst);
    return failed ? 1 : 0;
}
