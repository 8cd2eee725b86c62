/*
 * fedfuse-feddigits - builds the "feddigits" federation (six sites and a
 * held-out test set) from the public datasets, read in place.
 * docs/feddigits.md explains the construction.
 */
#include "ff_feddigits.h"
#include "ff_dataset_util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/ff_log.h"

#define RECORDS_MIN 10
#define RECORDS_MAX 100000

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: fedfuse-feddigits --out DIR [options]\n"
            "\n"
            "Builds the feddigits federation: OUT/site-1 .. OUT/site-6 and\n"
            "OUT/test, each a manifest.jsonl with images/*.pgm and\n"
            "pen/*.csv, plus OUT/summary.json. Audio is referenced in place.\n"
            "\n"
            "  --data DIR          public datasets (default %s)\n"
            "  --out DIR           output folder (required); files that an\n"
            "                      earlier build wrote there are replaced\n"
            "  --seed N            random seed (default 1)\n"
            "  --alpha A           Dirichlet concentration of each site's\n"
            "                      label mix, > 0 (default 0.5; small = "
            "skewed)\n"
            "  --records N         records per site, %d..%d (default 1500;\n"
            "                      each site varies by up to 5%%)\n"
            "  --test-records N    records in the test set (default 2000)\n"
            "  --help              this text\n",
            FF_DATA_DIR, RECORDS_MIN, RECORDS_MAX);
}

/* Parses an unsigned integer option in [lo, hi]. */
static int
parse_count(const char *name, const char *s, unsigned long long lo,
            unsigned long long hi, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || *out < lo ||
        *out > hi) {
        fprintf(stderr, "fedfuse-feddigits: %s must be an integer in "
                "%llu..%llu, got \"%s\"\n", name, lo, hi, s);
        return 0;
    }
    return 1;
}

/* The output folder must be a directory (or not exist yet) and not the
 * root: the builder replaces files in it. Says why on stderr. */
static int
out_dir_ok(const char *dir)
{
    char real[PATH_MAX];
    struct stat st;

    if (dir[0] == '\0') {
        fprintf(stderr, "fedfuse-feddigits: --out is empty\n");
        return 0;
    }
    if (stat(dir, &st) != 0)
        return 1; /* created later; errors are reported then */
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "fedfuse-feddigits: --out %s exists and is not a "
                "directory\n", dir);
        return 0;
    }
    if (realpath(dir, real) != NULL && strcmp(real, "/") == 0) {
        fprintf(stderr, "fedfuse-feddigits: --out %s is the root folder; "
                "name a folder for the federation\n", dir);
        return 0;
    }
    return 1;
}

/* Fills opt from argv; returns 0 to go on, 1 after --help, 2 on error. */
static int
parse_args(int argc, char **argv, ff_fd_options *opt)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {"alpha", required_argument, NULL, 'a'},
        {"records", required_argument, NULL, 'r'},
        {"test-records", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    unsigned long long v;
    char *end;
    int c;

    *opt = (ff_fd_options){FF_DATA_DIR, NULL, 1, 0.5, 1500, 2000};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': opt->data_dir = optarg; break;
        case 'o': opt->out_dir = optarg; break;
        case 's':
            if (!parse_count("--seed", optarg, 0, UINT64_MAX, &v))
                return 2;
            opt->seed = v;
            break;
        case 'a':
            opt->alpha = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(opt->alpha > 0.0) ||
                opt->alpha > 1e6) {
                fprintf(stderr, "fedfuse-feddigits: --alpha must be a "
                        "number in (0, 1e6], got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'r':
        case 't':
            if (!parse_count(c == 'r' ? "--records" : "--test-records",
                             optarg, RECORDS_MIN, RECORDS_MAX, &v))
                return 2;
            *(c == 'r' ? &opt->records : &opt->test_records) = (size_t)v;
            break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || opt->out_dir == NULL) {
        fprintf(stderr, "fedfuse-feddigits: %s\n",
                optind < argc ? "unexpected argument" : "--out is required");
        usage(stderr);
        return 2;
    }
    return out_dir_ok(opt->out_dir) ? 0 : 2;
}

static double
seconds_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) +
           (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

ff_status
ff_feddigits_sources_load(const ff_fd_options *opt, ff_fd_sources *src,
                          ff_error *err)
{
    char path[4096];
    const char *d = opt->data_dir;
    ff_status st;

    memset(src, 0, sizeof(*src));
    st = ff_path_join(path, sizeof(path), d, "mnist", err);
    if (st == FF_OK)
        st = ff_mnist_load(path, &src->mnist, err);
    if (st == FF_OK)
        st = ff_path_join(path, sizeof(path), d, "fsdd", err);
    if (st == FF_OK)
        st = ff_fsdd_scan(path, &src->fsdd, err);
    if (st == FF_OK)
        st = ff_path_join(path, sizeof(path), d, "cldr-rbnf", err);
    if (st == FF_OK)
        st = ff_cldr_load(path, &src->cldr, err);
    if (st == FF_OK)
        st = ff_path_join(path, sizeof(path), d, "unipen-1a", err);
    if (st == FF_OK)
        st = ff_unipen_load(path, ff_fd_donor_names, ff_fd_donor_count,
                            &src->unipen, err);
    if (st != FF_OK)
        ff_feddigits_sources_cleanup(src);
    return st;
}

void
ff_feddigits_sources_cleanup(ff_fd_sources *src)
{
    if (src == NULL)
        return;
    ff_unipen_cleanup(&src->unipen);
    ff_cldr_cleanup(&src->cldr);
    ff_fsdd_cleanup(&src->fsdd);
    ff_mnist_cleanup(&src->mnist);
}

/* One log line per part. */
static void
log_parts(const ff_fd_sources *src, const ff_fd_part parts[FF_FD_PARTS])
{
    for (int i = 0; i < FF_FD_PARTS; i++) {
        const ff_fd_part *p = &parts[i];
        FF_INFO("%s: %zu records, speaker %s, %d pen donor(s), %d "
                "language(s)", p->name, p->count,
                p->is_test ? "(all, repetitions 0-4)"
                : p->speaker >= 0 ? src->fsdd.speakers[p->speaker]
                                  : "(none)",
                p->ndonors, p->nlocales);
    }
}

int
main(int argc, char **argv)
{
    ff_fd_options opt;
    ff_fd_sources src;
    ff_fd_part parts[FF_FD_PARTS];
    ff_error err = {0};
    struct timespec t0;
    double t_load, t_plan;
    size_t total = 0;
    int rc = parse_args(argc, argv, &opt);

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    ff_log_set_role("feddigits");
    clock_gettime(CLOCK_MONOTONIC, &t0);

    /* Read, plan, write; each step reports its own errors. */
    if (ff_feddigits_sources_load(&opt, &src, &err) != FF_OK) {
        FF_ERROR("reading %s: %s", opt.data_dir, ff_error_text(&err));
        return 1;
    }
    t_load = seconds_since(&t0);
    if (ff_feddigits_plan(&opt, &src, parts, &err) != FF_OK) {
        FF_ERROR("planning: %s", ff_error_text(&err));
        ff_feddigits_sources_cleanup(&src);
        return 1;
    }
    t_plan = seconds_since(&t0);
    log_parts(&src, parts);
    if (ff_feddigits_write(&opt, &src, parts, &err) != FF_OK) {
        FF_ERROR("writing %s: %s", opt.out_dir, ff_error_text(&err));
        rc = 1;
    }

    for (int i = 0; i < FF_FD_SITES; i++)
        total += parts[i].count;
    if (rc == 0)
        ff_metric("feddigits_built",
                  "seed=%llu sites=%d site_records=%zu test_records=%zu "
                  "unipen_skipped=%zu load_s=%.2f plan_s=%.2f total_s=%.2f",
                  (unsigned long long)opt.seed, FF_FD_SITES, total,
                  parts[FF_FD_TEST].count,
                  src.unipen.stats.unresolved + src.unipen.stats.bad_label +
                      src.unipen.stats.no_rate + src.unipen.stats.degenerate,
                  t_load, t_plan - t_load, seconds_since(&t0));
    ff_feddigits_parts_cleanup(parts);
    ff_feddigits_sources_cleanup(&src);
    return rc;
}
