/*
 * fedfuse-train - trains one model on one or more site manifests (one: a
 * site's local baseline; all: the centralised baseline) and evaluates it
 * on a test manifest.
 *
 * stdout: one "METRIC train_epoch ..." line per epoch, "METRIC
 * train_done ..." and a human table at the end. stderr: log lines.
 * Exit status: 0 ok, 1 runtime error, 2 usage error.
 */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ff_dataset.h"
#include "ff_log.h"
#include "ff_model.h"

#define MAX_MANIFESTS 64
#define EXIT_USAGE 2

typedef struct options {
    const char *manifests[MAX_MANIFESTS];
    int manifest_count;
    const char *test;
    const char *save;
    const char *json;
    int threads;
    ff_train_config cfg;
} options;

static void
usage(FILE *out)
{
    ff_train_config d;

    ff_train_config_default(&d);
    fprintf(out,
        "usage: fedfuse-train --manifest PATH [--manifest PATH ...] "
        "[options]\n"
        "Trains the fedfuse multimodal model on the pooled records of the "
        "given\nsite manifests and evaluates it on --test.\n\n"
        "  --manifest PATH     a site manifest (JSON Lines); repeatable, "
        "up to %d\n"
        "  --test PATH         test manifest to evaluate on (default: the "
        "training set)\n"
        "  --epochs N          passes over the data (default %d)\n"
        "  --batch N           records per step (default %d)\n"
        "  --lr X              learning rate (default %g)\n"
        "  --schedule NAME     cosine (decay to 0 over the run) or "
        "constant\n"
        "                      (default %s)\n"
        "  --optimizer NAME    adam or sgd (default adam)\n"
        "  --momentum X        SGD momentum in [0, 1) (default %g)\n"
        "  --weight-decay X    L2 penalty (default %g)\n"
        "  --dropout X         modality dropout in [0, 1] (default %g)\n"
        "  --seed N            initialisation, shuffling, dropout "
        "(default %llu)\n"
        "  --threads N         OpenBLAS threads (default 1)\n"
        "  --save FILE         write the model artifact to FILE\n"
        "  --json FILE         write the results as JSON to FILE\n"
        "  --help              show this text\n"
        "Exit status: 0 ok, 1 runtime error, 2 usage error.\n",
        MAX_MANIFESTS, d.epochs, d.batch_size, (double)d.lr,
        d.lr_schedule == FF_LR_COSINE ? "cosine" : "constant",
        (double)d.momentum, (double)d.weight_decay,
        (double)d.modality_dropout, (unsigned long long)d.seed);
}

/* ---- option parsing ---------------------------------------------------- */

/* Parses a whole decimal integer in [lo, hi]; 0 on success. */
static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;

    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parses a whole finite number in [lo, hi]; 0 on success. */
static int
parse_float(const char *s, double lo, double hi, float *out)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = (float)v;
    return 0;
}

enum {
    OPT_MANIFEST = 256, OPT_TEST, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_OPT,
    OPT_MOMENTUM, OPT_WD, OPT_DROPOUT, OPT_SEED, OPT_THREADS, OPT_SAVE,
    OPT_JSON, OPT_HELP, OPT_SCHEDULE
};

/* Applies one numeric or named option; 0 on success. */
static int
apply_option(options *o, int c, const char *arg)
{
    long v;

    switch (c) {
    case OPT_EPOCHS:
        if (parse_long(arg, 1, 100000, &v) != 0)
            return -1;
        o->cfg.epochs = (int)v;
        return 0;
    case OPT_BATCH:
        if (parse_long(arg, 1, 4096, &v) != 0)
            return -1;
        o->cfg.batch_size = (int)v;
        return 0;
    case OPT_THREADS:
        if (parse_long(arg, 1, 64, &v) != 0)
            return -1;
        o->threads = (int)v;
        return 0;
    case OPT_SEED:
        if (parse_long(arg, 0, LONG_MAX, &v) != 0)
            return -1;
        o->cfg.seed = (uint64_t)v;
        return 0;
    case OPT_LR: return parse_float(arg, 1e-9, 10.0, &o->cfg.lr);
    case OPT_MOMENTUM: return parse_float(arg, 0.0, 0.999, &o->cfg.momentum);
    case OPT_WD: return parse_float(arg, 0.0, 1.0, &o->cfg.weight_decay);
    case OPT_DROPOUT:
        return parse_float(arg, 0.0, 1.0, &o->cfg.modality_dropout);
    case OPT_SCHEDULE:
        if (strcmp(arg, "cosine") == 0)
            o->cfg.lr_schedule = FF_LR_COSINE;
        else if (strcmp(arg, "constant") == 0)
            o->cfg.lr_schedule = FF_LR_CONSTANT;
        else
            return -1;
        return 0;
    case OPT_OPT:
        if (strcmp(arg, "adam") == 0)
            o->cfg.optimizer = FF_OPT_ADAM;
        else if (strcmp(arg, "sgd") == 0)
            o->cfg.optimizer = FF_OPT_SGD;
        else
            return -1;
        return 0;
    default:
        return -1;
    }
}

/* The long option whose value is c, for messages. */
static const char *
option_name(const struct option *longs, int c)
{
    for (; longs->name != NULL; longs++)
        if (longs->val == c)
            return longs->name;
    return "?";
}

/* Fills o from argv. Returns 0 to run, 1 after --help, EXIT_USAGE on a
 * usage error (message printed). */
static int
parse_args(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"manifest", required_argument, NULL, OPT_MANIFEST},
        {"test", required_argument, NULL, OPT_TEST},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"lr", required_argument, NULL, OPT_LR},
        {"schedule", required_argument, NULL, OPT_SCHEDULE},
        {"optimizer", required_argument, NULL, OPT_OPT},
        {"momentum", required_argument, NULL, OPT_MOMENTUM},
        {"weight-decay", required_argument, NULL, OPT_WD},
        {"dropout", required_argument, NULL, OPT_DROPOUT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"save", required_argument, NULL, OPT_SAVE},
        {"json", required_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->threads = 1;
    ff_train_config_default(&o->cfg);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: usage(stdout); return 1;
        case OPT_TEST: o->test = optarg; break;
        case OPT_SAVE: o->save = optarg; break;
        case OPT_JSON: o->json = optarg; break;
        case OPT_MANIFEST:
            if (o->manifest_count == MAX_MANIFESTS) {
                fprintf(stderr, "fedfuse-train: more than %d manifests\n",
                        MAX_MANIFESTS);
                return EXIT_USAGE;
            }
            o->manifests[o->manifest_count++] = optarg;
            break;
        case '?':
            fprintf(stderr, "fedfuse-train: unknown option or missing "
                            "value: %s\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (apply_option(o, c, optarg) != 0) {
                fprintf(stderr, "fedfuse-train: bad value \"%s\" for "
                                "--%s (see --help)\n", optarg,
                        option_name(longs, c));
                return EXIT_USAGE;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedfuse-train: unexpected argument \"%s\"\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (o->manifest_count == 0) {
        fprintf(stderr, "fedfuse-train: at least one --manifest is "
                        "required (see --help)\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- data -------------------------------------------------------------- */

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Loads one manifest and logs what it held. */
static ff_status
load_one(const char *path, ff_sample_set *set, ff_error *err)
{
    ff_load_report rep;

    if (ff_dataset_load(path, set, &rep, err) != FF_OK)
        return ff_error_wrap(err, FF_ERR_IO, "loading %s", path);
    FF_INFO("%s: %zu records; image %zu audio %zu pen %zu text %zu "
            "(unreadable %zu/%zu/%zu/%zu)", path, rep.records,
            rep.present[FF_MOD_IMAGE], rep.present[FF_MOD_AUDIO],
            rep.present[FF_MOD_PEN], rep.present[FF_MOD_TEXT],
            rep.unreadable[FF_MOD_IMAGE], rep.unreadable[FF_MOD_AUDIO],
            rep.unreadable[FF_MOD_PEN], rep.unreadable[FF_MOD_TEXT]);
    return FF_OK;
}

/* Loads every manifest and pools the records into out (caller frees
 * out->items with free()); out is empty on error. */
static ff_status
load_pooled(const options *o, ff_sample_set *out, ff_error *err)
{
    ff_status st = FF_OK;

    memset(out, 0, sizeof(*out));
    for (int i = 0; st == FF_OK && i < o->manifest_count; i++) {
        ff_sample_set one = {0};
        st = load_one(o->manifests[i], &one, err);

        /* Append, then drop the per-manifest copy at once. */
        ff_sample *grown = NULL;
        if (st == FF_OK) {
            grown = realloc(out->items,
                            (out->count + one.count) * sizeof(ff_sample));
            if (grown == NULL)
                st = ff_error_set(err, FF_ERR_NOMEM, "pooling %zu records",
                                  out->count + one.count);
        }
        if (st == FF_OK) {
            memcpy(grown + out->count, one.items,
                   one.count * sizeof(ff_sample));
            out->items = grown;
            out->count += one.count;
        }
        ff_dataset_cleanup(&one);
    }
    if (st != FF_OK) {
        free(out->items);
        memset(out, 0, sizeof(*out));
    }
    return st;
}

/* ---- outputs ----------------------------------------------------------- */

static void
on_epoch(void *ctx, int epoch, const ff_train_stats *s)
{
    (void)ctx;
    ff_metric("train_epoch",
              "epoch=%d loss=%.5f accuracy=%.4f seconds=%.3f image=%zu "
              "audio=%zu pen=%zu text=%zu records=%zu", epoch, s->loss,
              s->accuracy, s->seconds, s->group_examples[FF_MOD_IMAGE],
              s->group_examples[FF_MOD_AUDIO], s->group_examples[FF_MOD_PEN],
              s->group_examples[FF_MOD_TEXT], s->examples);
}

/* Writes the model artifact to path through a temporary file. */
static ff_status
save_artifact(const ff_model *m, const char *path, ff_error *err)
{
    size_t len = ff_model_artifact_size(m);
    uint8_t *buf = malloc(len);
    char tmp[4096];
    ff_status st = FF_OK;

    if (buf == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "artifact of %zu bytes", len);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        free(buf);
        return ff_error_set(err, FF_ERR_ARG, "path too long: %s", path);
    }
    st = ff_model_artifact_write(m, buf, len, err);
    if (st == FF_OK) {
        FILE *f = fopen(tmp, "wb");
        int ok = f != NULL && fwrite(buf, 1, len, f) == len;
        ok = (f != NULL && fclose(f) == 0) && ok;
        if (!ok || rename(tmp, path) != 0) {
            st = ff_error_set(err, FF_ERR_IO, "writing %s: %s", path,
                              strerror(errno));
            remove(tmp);
        }
    }
    free(buf);
    return st;
}

/* A number, or null for an accuracy of -1 (modality never present). */
static json_t *
json_accuracy(double a)
{
    return a < 0.0 ? json_null() : json_real(a);
}

static ff_status
write_json(const options *o, const ff_eval *ev, const ff_train_stats *ts,
           double seconds, double eval_seconds, ff_error *err)
{
    json_t *alone = json_object();
    json_t *root = json_object();
    ff_status st = FF_OK;

    for (int m = 0; m < FF_MOD_COUNT; m++)
        json_object_set_new(alone, ff_modality_name((ff_modality)m),
                            json_accuracy(ev->accuracy_alone[m]));
    json_object_set_new(root, "accuracy", json_real(ev->accuracy));
    json_object_set_new(root, "alone", alone);
    json_object_set_new(root, "loss", json_real(ev->loss));
    json_object_set_new(root, "train_records", json_integer(
                                                   (json_int_t)ts->examples));
    json_object_set_new(root, "epochs", json_integer(o->cfg.epochs));
    json_object_set_new(root, "seconds", json_real(seconds));
    json_object_set_new(root, "train_seconds", json_real(ts->seconds));
    json_object_set_new(root, "eval_seconds", json_real(eval_seconds));
    json_object_set_new(root, "evaluated_on",
                        json_string(o->test ? "test" : "train"));
    json_object_set_new(root, "eval_records",
                        json_integer((json_int_t)ev->count));
    json_object_set_new(root, "train_loss", json_real(ts->loss));
    if (json_dump_file(root, o->json,
                       JSON_INDENT(2) | JSON_SORT_KEYS |
                           JSON_REAL_PRECISION(6)) != 0)
        st = ff_error_set(err, FF_ERR_IO, "writing %s", o->json);
    json_decref(root);
    return st;
}

static void
print_table(const options *o, const ff_eval *ev, const ff_train_stats *ts,
            double seconds)
{
    printf("\nfedfuse-train: %zu training records from %d manifest(s), "
           "%d epochs, %.1f s\n", ts->examples, o->manifest_count,
           o->cfg.epochs, seconds);
    printf("evaluated on %s (%zu records)\n", o->test ? o->test : "the "
           "training set", ev->count);
    printf("  %-14s %8s\n", "inputs", "accuracy");
    printf("  %-14s %8.4f\n", "all (fused)", ev->accuracy);
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        char name[32];
        snprintf(name, sizeof(name), "%s alone",
                 ff_modality_name((ff_modality)m));
        if (ev->accuracy_alone[m] < 0.0)
            printf("  %-14s %8s\n", name, "-");
        else
            printf("  %-14s %8.4f\n", name, ev->accuracy_alone[m]);
    }
    printf("  %-14s %8.4f\n", "loss", ev->loss);
}

/* ---- run --------------------------------------------------------------- */

static int
run(options *o)
{
    ff_sample_set train = {0}, test = {0};
    ff_model *m = NULL;
    ff_train_stats ts = {0};
    ff_eval ev = {0};
    ff_error err = {0};
    double t0 = now_seconds(), t_eval = 0.0;
    ff_status st;

    /* Data. */
    st = load_pooled(o, &train, &err);
    if (st == FF_OK && o->test != NULL)
        st = load_one(o->test, &test, &err);
    if (st == FF_OK)
        FF_INFO("loaded %zu training and %zu test records in %.2f s",
                train.count, test.count, now_seconds() - t0);

    /* Train, then evaluate. */
    if (st == FF_OK)
        st = ff_model_create(&m, o->cfg.seed, &err);
    o->cfg.on_epoch = on_epoch;
    if (st == FF_OK)
        st = ff_model_train(m, &train, &o->cfg, &ts, &err);
    if (st == FF_OK) {
        double te = now_seconds();
        st = ff_model_evaluate(m, o->test ? &test : &train, &ev, &err);
        t_eval = now_seconds() - te;
    }

    /* Outputs. */
    double seconds = now_seconds() - t0;
    if (st == FF_OK && o->save != NULL)
        st = save_artifact(m, o->save, &err);
    if (st == FF_OK && o->json != NULL)
        st = write_json(o, &ev, &ts, seconds, t_eval, &err);
    if (st == FF_OK) {
        ff_metric("train_done",
                  "accuracy=%.4f image=%.4f audio=%.4f pen=%.4f text=%.4f "
                  "loss=%.5f train_records=%zu epochs=%d seconds=%.2f",
                  ev.accuracy, ev.accuracy_alone[FF_MOD_IMAGE],
                  ev.accuracy_alone[FF_MOD_AUDIO],
                  ev.accuracy_alone[FF_MOD_PEN],
                  ev.accuracy_alone[FF_MOD_TEXT], ev.loss, ts.examples,
                  o->cfg.epochs, seconds);
        print_table(o, &ev, &ts, seconds);
    } else {
        FF_ERROR("%s", ff_error_text(&err));
    }

    ff_model_destroy(m);
    ff_dataset_cleanup(&test);
    free(train.items);
    return st == FF_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);

    if (rc == 1)
        return 0;
    if (rc != 0)
        return rc;
    ff_log_set_role("train");
    openblas_set_num_threads(o.threads);
    return run(&o);
}
