/*
 * bench_dp.c - the cost of record-level DP-SGD in the model's trainer, run
 * by `deploy/bench.sh dp`.
 *
 * Trains the same model (same seed, optimizer, learning rate, modality
 * dropout, epochs) on the same real records twice, one OpenBLAS thread:
 *   plain   mini-batches of --batch records, every record once per epoch;
 *   dp      DP-SGD with Poisson batches of expected size --batch
 *           (q = batch / records), per-record clip --clip and noise
 *           multiplier --noise, sampling and noise from privacy/ff_dp.h
 *           (ff_dp_poisson_sample, ff_dp_noise_add), as a site runs it.
 * Throughput is examples (records through forward and backward) per second
 * of training; dp_ratio = examples_per_s_dp / examples_per_s_plain. The
 * DP time is split into the sampler, the noise (discretised Gaussian over
 * all parameters, once per step) and the rest: per-record forward and
 * backward, clipping, summing and the optimizer steps. With --test both
 * models are evaluated, and the run's epsilon is given at delta 1e-5
 * (accountant over FF_ACCT_GRID_DEFAULT, the grid slack counted as the
 * site does).
 *
 * Usage: bench_dp --manifest PATH [--manifest PATH ...] [--test PATH]
 *                 [--epochs N] [--batch B] [--clip C] [--noise Z]
 *                 [--seed S]
 * Ends with one line: RESULT dp key=value ...
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ff_accountant.h"
#include "ff_dataset.h"
#include "ff_dp.h"
#include "ff_model.h"

#define MAX_MANIFESTS 16
#define DELTA 1e-5

typedef struct bench_opts {
    const char *manifests[MAX_MANIFESTS];
    int manifest_count;
    const char *test;
    int epochs, batch;
    double clip, noise;
    uint64_t seed;
    float lr;                 /* 0: the trainer's default */
} bench_opts;

/* What the DP callbacks measured. */
typedef struct dp_timing {
    double sample_s, noise_s;
    long sample_calls, noise_calls;
} dp_timing;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void
die(const char *what, const ff_error *err)
{
    fprintf(stderr, "bench_dp: %s: %s\n", what, ff_error_text(err));
    exit(1);
}

/* ---- options ----------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: bench_dp --manifest PATH [--manifest PATH ...] "
            "[--test PATH]\n"
            "                [--epochs N] [--batch B] [--clip C] "
            "[--noise Z] [--seed S] [--lr LR]\n"
            "defaults: 10 epochs, batch 64, clip 1, noise 1.0, seed 1, "
            "the trainer's default learning rate\n");
}

static void
opts_parse(int argc, char **argv, bench_opts *o)
{
    static const struct option longs[] = {
        {"manifest", required_argument, NULL, 'm'},
        {"test", required_argument, NULL, 't'},
        {"epochs", required_argument, NULL, 'e'},
        {"batch", required_argument, NULL, 'b'},
        {"clip", required_argument, NULL, 'c'},
        {"noise", required_argument, NULL, 'z'},
        {"seed", required_argument, NULL, 's'},
        {"lr", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (bench_opts){.epochs = 10, .batch = 64, .clip = 1.0, .noise = 1.0,
                      .seed = 1};
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (o->manifest_count == MAX_MANIFESTS) {
                fprintf(stderr, "bench_dp: more than %d manifests\n",
                        MAX_MANIFESTS);
                exit(2);
            }
            o->manifests[o->manifest_count++] = optarg;
            break;
        case 't': o->test = optarg; break;
        case 'e': o->epochs = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'c': o->clip = atof(optarg); break;
        case 'z': o->noise = atof(optarg); break;
        case 's': o->seed = strtoull(optarg, NULL, 10); break;
        case 'l': o->lr = (float)atof(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (o->manifest_count == 0 || optind != argc || o->epochs < 1 ||
        o->batch < 1) {
        usage(stderr);
        exit(2);
    }
}

/* ---- data -------------------------------------------------------------- */

/* Loads every manifest and pools the records into out (exits on error). */
static void
load_pooled(const bench_opts *o, ff_sample_set *out)
{
    ff_error err = {0};

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < o->manifest_count; i++) {
        ff_sample_set one = {0};
        if (ff_dataset_load(o->manifests[i], &one, NULL, &err) != FF_OK)
            die(o->manifests[i], &err);
        ff_sample *grown = realloc(out->items, (out->count + one.count) *
                                                   sizeof(ff_sample));
        if (grown == NULL) {
            fprintf(stderr, "bench_dp: out of memory pooling records\n");
            exit(1);
        }
        memcpy(grown + out->count, one.items, one.count * sizeof(ff_sample));
        out->items = grown;
        out->count += one.count;
        ff_dataset_cleanup(&one);
    }
}

/* ---- DP callbacks backed by privacy/ff_dp.h ----------------------------- */

/* Carries a privacy-library error into the model's error record. */
static ff_status
privacy_fail(ff_error *err, const char *what, const ff_privacy_error *perr)
{
    return ff_error_set(err, FF_ERR_INTERNAL, "%s: %s", what,
                        ff_privacy_error_text(perr));
}

static ff_status
dp_sample(void *ctx, double q, size_t count, size_t *idx, size_t *n,
          ff_error *err)
{
    dp_timing *t = ctx;
    ff_privacy_error perr = {0};
    double t0 = now_s();
    ff_privacy_status st = ff_dp_poisson_sample(q, count, idx, n, &perr);

    t->sample_s += now_s() - t0;
    t->sample_calls++;
    return st == FF_PRIVACY_OK ? FF_OK
                               : privacy_fail(err, "Poisson sample", &perr);
}

static ff_status
dp_noise(void *ctx, float *v, size_t n, double std, ff_error *err)
{
    dp_timing *t = ctx;
    ff_privacy_error perr = {0};
    double t0 = now_s();
    ff_privacy_status st = ff_dp_noise_add(v, n, std, NULL, &perr);

    t->noise_s += now_s() - t0;
    t->noise_calls++;
    return st == FF_PRIVACY_OK ? FF_OK
                               : privacy_fail(err, "noise", &perr);
}

/* ---- the two runs ------------------------------------------------------ */

typedef struct run_result {
    double seconds;
    double examples;      /* records through forward and backward */
    double loss, test_accuracy;
    ff_train_stats stats;
} run_result;

/* Trains a fresh model (seed o->seed) on set with cfg; evaluates it on
 * test when test->count > 0. */
static void
run_train(const bench_opts *o, const ff_sample_set *set,
          const ff_sample_set *test, const ff_train_config *cfg,
          run_result *r)
{
    ff_model *m = NULL;
    ff_error err = {0};
    ff_eval ev = {0};

    if (ff_model_create(&m, o->seed, &err) != FF_OK)
        die("model", &err);
    double t0 = now_s();
    if (ff_model_train(m, set, cfg, &r->stats, &err) != FF_OK)
        die(cfg->dp != NULL ? "DP-SGD training" : "plain training", &err);
    r->seconds = now_s() - t0;
    r->loss = r->stats.loss;
    r->test_accuracy = -1.0;
    if (test->count > 0) {
        if (ff_model_evaluate(m, test, &ev, &err) != FF_OK)
            die("evaluate", &err);
        r->test_accuracy = ev.accuracy;
    }
    ff_model_destroy(m);
}

/* Epsilon at DELTA after `steps` steps at rate q with multiplier noise,
 * the grid slack of the noise over p parameters counted as the site does;
 * INFINITY without noise. */
static double
run_epsilon(const bench_opts *o, double q, long steps, size_t p)
{
    ff_accountant acct;
    ff_privacy_error perr = {0};
    double eps = INFINITY, order;

    if (o->noise <= 0.0)
        return INFINITY;
    double gamma = ff_dp_grid_step(o->noise * o->clip);
    double sigma_eff = o->noise * o->clip /
                       (o->clip + ff_dp_grid_l2_slack(gamma, p));
    if (ff_accountant_init_grid(&acct, FF_ACCT_GRID_DEFAULT, &perr) ||
        ff_accountant_add_gaussian(&acct, q, sigma_eff, steps, &perr) ||
        ff_accountant_epsilon(&acct, DELTA, FF_ACCT_CONV_NEW, &eps, &order,
                              &perr))
        fprintf(stderr, "bench_dp: accountant: %s\n",
                ff_privacy_error_text(&perr));
    return eps;
}

/* ---- report ------------------------------------------------------------ */

static void
report(const bench_opts *o, size_t records, double q, size_t params,
       const run_result *plain, const run_result *dp, const dp_timing *t)
{
    double eps_plain = plain->examples / plain->seconds;
    double eps_dp = dp->examples / dp->seconds;
    double rest = dp->seconds - t->noise_s - t->sample_s;
    double eps = run_epsilon(o, q, dp->stats.dp_steps, params);

    printf("\n%-6s %8s %9s %10s %9s %9s\n", "run", "steps", "examples",
           "seconds", "ex/s", "test_acc");
    printf("%-6s %8s %9.0f %10.2f %9.1f %9.4f\n", "plain", "-",
           plain->examples, plain->seconds, eps_plain,
           plain->test_accuracy);
    printf("%-6s %8ld %9.0f %10.2f %9.1f %9.4f\n", "dp", dp->stats.dp_steps,
           dp->examples, dp->seconds, eps_dp, dp->test_accuracy);
    printf("\nDP time: per-record gradients, clipping and optimizer "
           "%.2f s (%.1f%%, %.0f us/record); noise %.2f s (%.1f%%, "
           "%.1f ms/step over %zu parameters); sampling %.3f s (%.1f%%)\n",
           rest, 100.0 * rest / dp->seconds,
           1e6 * rest / (dp->examples > 0 ? dp->examples : 1),
           t->noise_s, 100.0 * t->noise_s / dp->seconds,
           1e3 * t->noise_s / (t->noise_calls > 0 ? t->noise_calls : 1),
           params, t->sample_s, 100.0 * t->sample_s / dp->seconds);
    printf("DP: q %.5f, %zu of %zu records clipped, epsilon %.3f at delta "
           "%g\n", q, dp->stats.dp_clipped, dp->stats.dp_records, eps, DELTA);
    printf("RESULT dp records=%zu epochs=%d batch=%d clip=%g noise=%g "
           "steps_dp=%ld examples_plain=%.0f examples_dp=%.0f "
           "examples_per_s_plain=%.1f examples_per_s_dp=%.1f "
           "dp_ratio=%.3f grad_s=%.2f noise_s=%.2f sample_s=%.3f "
           "acc_plain=%.4f acc_dp=%.4f epsilon=%.3f\n", records, o->epochs,
           o->batch, o->clip, o->noise, dp->stats.dp_steps, plain->examples,
           dp->examples, eps_plain, eps_dp, eps_dp / eps_plain, rest,
           t->noise_s, t->sample_s, plain->test_accuracy, dp->test_accuracy,
           eps);
}

int
main(int argc, char **argv)
{
    bench_opts o;
    ff_sample_set train, test = {0};
    ff_train_config cfg;
    dp_timing timing = {0};
    run_result plain = {0}, dp = {0};
    ff_error err = {0};

    opts_parse(argc, argv, &o);
    if (sodium_init() < 0) {
        fprintf(stderr, "bench_dp: libsodium failed to initialise\n");
        return 1;
    }
    openblas_set_num_threads(1);

    /* The records. */
    load_pooled(&o, &train);
    if (o.test != NULL && ff_dataset_load(o.test, &test, NULL, &err) != FF_OK)
        die(o.test, &err);
    double q = fmin(1.0, (double)o.batch / (double)train.count);
    printf("bench_dp: %zu training records, %zu test records, %d epochs, "
           "batch %d (DP: q %.5f, clip %g, noise %g), 1 BLAS thread\n",
           train.count, test.count, o.epochs, o.batch, q, o.clip, o.noise);

    /* Plain mini-batch training. */
    ff_train_config_default(&cfg);
    cfg.epochs = o.epochs;
    cfg.batch_size = o.batch;
    cfg.seed = o.seed;
    if (o.lr > 0.0f)
        cfg.lr = o.lr;
    run_train(&o, &train, &test, &cfg, &plain);
    plain.examples = (double)o.epochs * (double)train.count;

    /* DP-SGD with the privacy library's sampler and noise. */
    ff_dp_sgd dps = {o.clip, o.noise, q, {dp_sample, dp_noise, &timing}};
    cfg.dp = &dps;
    run_train(&o, &train, &test, &cfg, &dp);
    dp.examples = (double)dp.stats.dp_records;

    ff_model *m = NULL;
    if (ff_model_create(&m, 1, &err) != FF_OK)
        die("model", &err);
    report(&o, train.count, q, ff_model_param_count(m), &plain, &dp,
           &timing);
    ff_model_destroy(m);
    free(train.items);
    ff_dataset_cleanup(&test);
    return 0;
}
