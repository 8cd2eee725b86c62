/*
 * ff_feddigits_plan.c - decides what goes where in the feddigits
 * federation: each part's languages, speaker, pen donors, label mix and,
 * for every record, which MNIST image, FSDD clip, UNIPEN digit and word
 * it carries. Records are joined only by their label (the AV-MNIST
 * construction): the image, the clip, the trace and the word of a record
 * come from unrelated people.
 *
 * Everything random comes from one xoshiro256** generator seeded with
 * --seed, consumed in a fixed order, so a seed gives the same plan.
 */
#include "ff_feddigits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ff_log.h"
#include "../model/ff_rng.h"

/* ---- random numbers (model/ff_rng: xoshiro256**, seeded by splitmix64) - */

/* Uniform in (0, 1): never exactly 0 or 1 (ff_rng_uniform may give 0,
 * which rng_gamma's log and pow must not see). */
static double
rng_uniform(ff_rng *r)
{
    return ((double)(ff_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static void
rng_shuffle(ff_rng *r, int *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = ff_rng_below(r, i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static double
rng_normal(ff_rng *r)
{
    return sqrt(-2.0 * log(rng_uniform(r))) *
           cos(2.0 * M_PI * rng_uniform(r));
}

/* Gamma(a, 1) by Marsaglia and Tsang; a < 1 is boosted through a + 1. */
static double
rng_gamma(ff_rng *r, double a)
{
    if (a < 1.0)
        return rng_gamma(r, a + 1.0) * pow(rng_uniform(r), 1.0 / a);
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = rng_normal(r), v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = rng_uniform(r);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return d * v;
    }
}

/* Label proportions from Dirichlet(alpha, ..., alpha). */
static void
rng_dirichlet(ff_rng *r, double alpha, double p[FF_NUM_CLASSES])
{
    double sum = 0.0;

    for (int l = 0; l < FF_NUM_CLASSES; l++)
        sum += p[l] = rng_gamma(r, alpha);
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        p[l] /= sum;
}

/* ---- the design ------------------------------------------------------- */

#define IMG FF_MOD_BIT(FF_MOD_IMAGE)
#define AUD FF_MOD_BIT(FF_MOD_AUDIO)
#define PEN FF_MOD_BIT(FF_MOD_PEN)
#define TXT FF_MOD_BIT(FF_MOD_TEXT)

/* Donor folders read from UNIPEN; the designs below index this list. */
const char *const ff_fd_donor_names[] = {"syn", "ibm", "val", "ced",
                                         "gmd", "app", "apa", "uqb",
                                         "aga", "apb", "tos"};
const size_t ff_fd_donor_count =
    sizeof(ff_fd_donor_names) / sizeof(ff_fd_donor_names[0]);

typedef struct part_design {
    const char *name;
    uint32_t mods;
    double miss[FF_MOD_COUNT];  /* image, audio, pen, text */
    int donors[4];              /* into ff_fd_donor_names; -1 ends */
    int has_speaker;
} part_design;

static const part_design designs[FF_FD_PARTS] = {
    {"site-1", IMG | AUD | PEN | TXT, {0, 0, 0, 0}, {0, -1}, 1},
    {"site-2", IMG | AUD | TXT, {0, 0, 0, 0}, {-1}, 1},
    {"site-3", AUD | PEN | TXT, {0, 0, 0, 0}, {1, 2, -1}, 1},
    {"site-4", IMG | TXT, {0, 0, 0, 0}, {-1}, 0},
    {"site-5", IMG | AUD | PEN | TXT, {0.3, 0.3, 0, 0}, {3, 4, -1}, 1},
    {"site-6", IMG | AUD | PEN | TXT, {0, 0, 0.4, 0}, {5, 6, 7, 8}, 1},
    {"test", IMG | AUD | PEN | TXT, {0, 0, 0, 0}, {9, 10, -1}, 0},
};

/* FSDD repetitions: 0-4 are the upstream test split, 5-49 training. */
#define FSDD_TEST_REPS 5

/* ---- pools -------------------------------------------------------------- */

/* Items of one label that a part may draw from. */
typedef struct pool {
    int *items;
    size_t count, next;
} pool;

static void
pools_cleanup(pool p[FF_NUM_CLASSES])
{
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        free(p[l].items);
    memset(p, 0, sizeof(pool) * FF_NUM_CLASSES);
}

/* Fills p[label] with the indices i < n for which keep(i) holds, then
 * shuffles each label's list. */
static ff_status
pools_fill(pool p[FF_NUM_CLASSES], size_t n, int (*label_of)(const void *,
           size_t), int (*keep)(const void *, size_t, const ff_fd_part *),
           const void *src, const ff_fd_part *part, ff_rng *r,
           ff_error *err)
{
    memset(p, 0, sizeof(pool) * FF_NUM_CLASSES);
    for (int l = 0; l < FF_NUM_CLASSES; l++) {
        p[l].items = malloc(sizeof(int) * (n ? n : 1));
        if (p[l].items == NULL) {
            pools_cleanup(p);
            return ff_error_set(err, FF_ERR_NOMEM, "plan: no memory");
        }
    }
    for (size_t i = 0; i < n; i++)
        if (keep == NULL || keep(src, i, part)) {
            pool *q = &p[label_of(src, i)];
            q->items[q->count++] = (int)i;
        }
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        rng_shuffle(r, p[l].items, p[l].count);
    return FF_OK;
}

static int
mnist_label(const void *src, size_t i)
{
    return ((const ff_fd_sources *)src)->mnist.labels[i];
}

static int
pen_label(const void *src, size_t i)
{
    return ((const ff_fd_sources *)src)->unipen.samples[i].label;
}

static int
clip_label(const void *src, size_t i)
{
    return ((const ff_fd_sources *)src)->fsdd.clips[i].digit;
}

static int
pen_keep(const void *src, size_t i, const ff_fd_part *part)
{
    int donor = ((const ff_fd_sources *)src)->unipen.samples[i].donor;

    for (int d = 0; d < part->ndonors; d++)
        if (part->donors[d] == donor)
            return 1;
    return 0;
}

/* A site hears its own speaker's repetitions 5-49; the test set hears
 * repetitions 0-4 of every speaker. */
static int
clip_keep(const void *src, size_t i, const ff_fd_part *part)
{
    const ff_fsdd_clip *c = &((const ff_fd_sources *)src)->fsdd.clips[i];

    if (part->is_test)
        return c->rep < FSDD_TEST_REPS;
    return c->speaker == part->speaker && c->rep >= FSDD_TEST_REPS;
}

/* ---- languages ---------------------------------------------------------- */

static int
uf_find(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

/* Whether two locales must stay together: same base language (the code
 * before '_') or the very same ten words. */
static int
locales_related(const ff_cldr_locale *a, const ff_cldr_locale *b)
{
    size_t na = strcspn(a->code, "_"), nb = strcspn(b->code, "_");

    if (na == nb && strncmp(a->code, b->code, na) == 0)
        return 1;
    for (int d = 0; d < 10; d++)
        if (strcmp(a->words[d], b->words[d]) != 0)
            return 0;
    return 1;
}

/* Deals groups of related locales to the sites (up to
 * FF_FD_LANGS_PER_SITE locales each, whole groups only) in a seeded
 * order; every group left goes to the test set. */
static ff_status
deal_languages(const ff_cldr *c, ff_fd_part parts[FF_FD_PARTS], ff_rng *r,
               ff_error *err)
{
    int n = (int)(c->count < FF_FD_MAX_LOCALES ? c->count : FF_FD_MAX_LOCALES);
    int parent[FF_FD_MAX_LOCALES], roots[FF_FD_MAX_LOCALES], nroots = 0;
    int taken[FF_FD_MAX_LOCALES] = {0};

    /* Group related locales (union-find); list each group by its root. */
    for (int i = 0; i < n; i++)
        parent[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (locales_related(&c->locales[i], &c->locales[j]))
                parent[uf_find(parent, j)] = uf_find(parent, i);
    for (int i = 0; i < n; i++)
        if (uf_find(parent, i) == i)
            roots[nroots++] = i;
    rng_shuffle(r, roots, (size_t)nroots);

    /* Sites take whole groups that fit; the test set takes the rest. */
    for (int s = 0; s <= FF_FD_SITES; s++) {
        ff_fd_part *p = &parts[s];
        for (int g = 0; g < nroots; g++) {
            int size = 0;
            if (taken[g])
                continue;
            for (int i = 0; i < n; i++)
                size += uf_find(parent, i) == roots[g];
            if (s < FF_FD_SITES && p->nlocales + size > FF_FD_LANGS_PER_SITE)
                continue;
            taken[g] = 1;
            for (int i = 0; i < n; i++)
                if (uf_find(parent, i) == roots[g])
                    p->locales[p->nlocales++] = i;
        }
        if (p->nlocales == 0)
            return ff_error_set(err, FF_ERR_ARG, "plan: no language left "
                                "for %s", p->name);
    }
    return FF_OK;
}

/* ---- label counts ------------------------------------------------------- */

/* Records of a label whose design includes modality m that still carry
 * it, out of n. */
static size_t
need(const ff_fd_part *p, int m, size_t n)
{
    if (!(p->mods & FF_MOD_BIT(m)))
        return 0;
    return n - (size_t)lround(p->miss[m] * (double)n);
}

/* The most records of a label that the finite pools (MNIST, pen) allow. */
static size_t
label_cap(const ff_fd_part *p, size_t img_avail, size_t pen_avail,
          size_t clips)
{
    /* No share missed is above one half, so n <= 2 * avail + 1. */
    size_t n = 2 * (img_avail + pen_avail) + 4;

    if ((p->mods & AUD) && clips == 0)
        return 0;
    if (!(p->mods & (IMG | PEN)))
        return SIZE_MAX / 4;
    while (n > 0 && (need(p, FF_MOD_IMAGE, n) > img_avail ||
                     need(p, FF_MOD_PEN, n) > pen_avail))
        n--;
    return n;
}

/* Splits total over the labels in proportion to w, no label above its
 * cap (water-filling), rounding so that the counts add up. Returns the
 * number placed (less than total only when the caps add up to less). */
static size_t
waterfill(size_t total, const double *w, const size_t *cap, size_t *n)
{
    double x[FF_NUM_CLASSES];
    int fixed[FF_NUM_CLASSES] = {0}, changed = 1;
    size_t capsum = 0, placed = 0;

    for (int l = 0; l < FF_NUM_CLASSES; l++)
        capsum += cap[l] < total ? cap[l] : total;
    if (capsum <= total) {
        for (int l = 0; l < FF_NUM_CLASSES; l++)
            placed += n[l] = cap[l] < total ? cap[l] : total;
        return placed;
    }

    /* Continuous shares; labels that overflow are fixed at their cap. */
    while (changed) {
        double rest = (double)total, wsum = 0.0;
        changed = 0;
        for (int l = 0; l < FF_NUM_CLASSES; l++)
            if (fixed[l])
                rest -= (double)cap[l];
            else
                wsum += w[l];
        for (int l = 0; l < FF_NUM_CLASSES; l++) {
            x[l] = fixed[l] ? (double)cap[l] : rest * w[l] / wsum;
            if (!fixed[l] && x[l] > (double)cap[l]) {
                fixed[l] = 1;
                changed = 1;
            }
        }
    }

    /* Round down, then hand out the remainder by largest fraction. */
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        placed += n[l] = (size_t)floor(x[l]);
    while (placed < total) {
        int best = -1;
        double frac = -1.0;
        for (int l = 0; l < FF_NUM_CLASSES; l++)
            if (n[l] < cap[l] && x[l] - (double)n[l] > frac) {
                frac = x[l] - (double)n[l];
                best = l;
            }
        if (best < 0)
            break;
        n[best]++;
        placed++;
    }
    return placed;
}

/* ---- records ------------------------------------------------------------ */

/* The pools one part draws from. */
typedef struct part_pools {
    pool *mnist;                 /* shared by all parts, drawn in turn */
    pool pen[FF_NUM_CLASSES];
    pool clips[FF_NUM_CLASSES];
} part_pools;

/* Clears modality m in k randomly chosen records of recs[0..n). */
static ff_status
drop_modality(ff_fd_record *recs, size_t n, int m, size_t k, ff_rng *r,
              ff_error *err)
{
    int *idx = malloc(sizeof(int) * (n ? n : 1));

    if (idx == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "plan: no memory");
    for (size_t i = 0; i < n; i++)
        idx[i] = (int)i;
    rng_shuffle(r, idx, n);
    for (size_t i = 0; i < k && i < n; i++) {
        ff_fd_record *rec = &recs[idx[i]];
        /* Never leave a record with no modality at all. */
        if ((rec->mods & ~FF_MOD_BIT(m)) != 0)
            rec->mods &= ~FF_MOD_BIT(m);
    }
    free(idx);
    return FF_OK;
}

/* Draws the items of one record from the pools. */
static void
fill_items(ff_fd_part *p, ff_fd_record *rec, part_pools *pp, ff_rng *r)
{
    int l = rec->label;

    rec->mnist = rec->clip = rec->pen = rec->locale = -1;

    /* The label counts were capped by these pools; the checks only guard
     * against a plan that drops fewer modalities than it counted on. */
    if ((rec->mods & IMG) && pp->mnist[l].next < pp->mnist[l].count)
        rec->mnist = pp->mnist[l].items[pp->mnist[l].next++];
    else
        rec->mods &= ~IMG;
    if ((rec->mods & PEN) && pp->pen[l].next < pp->pen[l].count)
        rec->pen = pp->pen[l].items[pp->pen[l].next++];
    else
        rec->mods &= ~PEN;
    if (rec->mods & AUD) {
        /* Clips are few: a part cycles through its shuffled list. */
        pool *c = &pp->clips[l];
        rec->clip = c->items[c->next++ % c->count];
    }
    if (rec->mods & TXT)
        rec->locale = p->locales[ff_rng_below(r, (size_t)p->nlocales)];
}

/* Plans n[l] records of each label for part p. */
static ff_status
plan_records(ff_fd_part *p, const size_t n[FF_NUM_CLASSES], part_pools *pp,
             ff_rng *r, ff_error *err)
{
    size_t total = 0, at = 0;
    ff_status st = FF_OK;

    for (int l = 0; l < FF_NUM_CLASSES; l++)
        total += n[l];
    p->recs = calloc(total ? total : 1, sizeof(ff_fd_record));
    if (p->recs == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "plan: no memory");

    /* Per label: the design's modalities, minus the planned misses. */
    for (int l = 0; st == FF_OK && l < FF_NUM_CLASSES; l++) {
        ff_fd_record *recs = p->recs + at;
        for (size_t i = 0; i < n[l]; i++)
            recs[i] = (ff_fd_record){l, p->mods, -1, -1, -1, -1};
        for (int m = 0; st == FF_OK && m < FF_MOD_COUNT; m++)
            if ((p->mods & FF_MOD_BIT(m)) && p->miss[m] > 0.0)
                st = drop_modality(recs, n[l], m,
                                   (size_t)lround(p->miss[m] * (double)n[l]),
                                   r, err);
        at += n[l];
    }
    if (st != FF_OK)
        return st;

    /* Shuffle the order, then draw every record's items. */
    for (size_t i = total; i > 1; i--) {
        size_t j = ff_rng_below(r, i);
        ff_fd_record t = p->recs[i - 1];
        p->recs[i - 1] = p->recs[j];
        p->recs[j] = t;
    }
    for (size_t i = 0; i < total; i++)
        fill_items(p, &p->recs[i], pp, r);
    p->count = total;
    return FF_OK;
}

/* Plans one part: its label mix under the pools' limits, then records. */
static ff_status
plan_part(ff_fd_part *p, size_t want, double alpha, part_pools *pp,
          ff_rng *r, ff_error *err)
{
    size_t cap[FF_NUM_CLASSES], n[FF_NUM_CLASSES], placed;

    if (p->is_test)
        for (int l = 0; l < FF_NUM_CLASSES; l++)
            p->proportions[l] = 1.0 / FF_NUM_CLASSES;
    else
        rng_dirichlet(r, alpha, p->proportions);

    for (int l = 0; l < FF_NUM_CLASSES; l++) {
        size_t img = (p->mods & IMG)
                         ? pp->mnist[l].count - pp->mnist[l].next : 0;
        size_t pen = (p->mods & PEN) ? pp->pen[l].count : 0;
        cap[l] = label_cap(p, img, pen, pp->clips[l].count);
    }
    double w[FF_NUM_CLASSES];
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        w[l] = p->proportions[l] > 1e-9 ? p->proportions[l] : 1e-9;
    placed = waterfill(want, w, cap, n);
    if (placed == 0)
        return ff_error_set(err, FF_ERR_ARG, "plan: %s: the pools hold no "
                            "record for its design", p->name);
    if (placed < want)
        FF_WARN("%s: the pools allow %zu of the %zu records asked for",
                p->name, placed, want);
    return plan_records(p, n, pp, r, err);
}

/* Sets each part's design: modalities, misses, donors; speakers later. */
static void
apply_designs(ff_fd_part parts[FF_FD_PARTS])
{
    memset(parts, 0, sizeof(ff_fd_part) * FF_FD_PARTS);
    for (int i = 0; i < FF_FD_PARTS; i++) {
        const part_design *d = &designs[i];
        snprintf(parts[i].name, sizeof(parts[i].name), "%s", d->name);
        parts[i].mods = d->mods;
        memcpy(parts[i].miss, d->miss, sizeof(d->miss));
        for (int k = 0; k < 4 && d->donors[k] >= 0; k++)
            parts[i].donors[parts[i].ndonors++] = d->donors[k];
        parts[i].speaker = -1;
        parts[i].is_test = i == FF_FD_TEST;
    }
}

/* Gives each site with audio its own speaker, in a seeded order. */
static ff_status
deal_speakers(const ff_fsdd *f, ff_fd_part parts[FF_FD_PARTS], ff_rng *r,
              ff_error *err)
{
    int order[FF_FSDD_MAX_SPEAKERS], next = 0;

    for (int i = 0; i < f->nspeakers; i++)
        order[i] = i;
    rng_shuffle(r, order, (size_t)f->nspeakers);
    for (int s = 0; s < FF_FD_SITES; s++) {
        if (!designs[s].has_speaker)
            continue;
        if (next >= f->nspeakers)
            return ff_error_set(err, FF_ERR_ARG, "plan: %d FSDD speakers, "
                                "too few for one per site", f->nspeakers);
        parts[s].speaker = order[next++];
    }
    return FF_OK;
}

ff_status
ff_feddigits_plan(const ff_fd_options *opt, const ff_fd_sources *src,
                  ff_fd_part parts[FF_FD_PARTS], ff_error *err)
{
    pool mnist[FF_NUM_CLASSES];
    part_pools pp;
    ff_rng r;
    ff_status st;

    ff_rng_init(&r, opt->seed);
    apply_designs(parts);
    st = deal_languages(&src->cldr, parts, &r, err);
    if (st == FF_OK)
        st = deal_speakers(&src->fsdd, parts, &r, err);
    if (st == FF_OK)
        st = pools_fill(mnist, src->mnist.count, mnist_label, NULL, src,
                        NULL, &r, err);
    if (st != FF_OK)
        return st;

    /* The test set first (it takes its MNIST images before any site),
     * then the sites in order. */
    for (int k = 0; st == FF_OK && k < FF_FD_PARTS; k++) {
        int i = k == 0 ? FF_FD_TEST : k - 1;
        ff_fd_part *p = &parts[i];
        size_t want = opt->test_records;

        if (i != FF_FD_TEST) {
            double j = 0.05 * (2.0 * rng_uniform(&r) - 1.0);
            want = (size_t)lround((double)opt->records * (1.0 + j));
        }
        memset(&pp, 0, sizeof(pp));
        pp.mnist = mnist;
        st = pools_fill(pp.pen, src->unipen.count, pen_label, pen_keep, src,
                        p, &r, err);
        if (st == FF_OK)
            st = pools_fill(pp.clips, src->fsdd.count, clip_label,
                            clip_keep, src, p, &r, err);
        if (st == FF_OK)
            st = plan_part(p, want, opt->alpha, &pp, &r, err);
        pools_cleanup(pp.pen);
        pools_cleanup(pp.clips);
    }
    pools_cleanup(mnist);
    if (st != FF_OK)
        ff_feddigits_parts_cleanup(parts);
    return st;
}

void
ff_feddigits_parts_cleanup(ff_fd_part parts[FF_FD_PARTS])
{
    for (int i = 0; i < FF_FD_PARTS; i++) {
        free(parts[i].recs);
        parts[i].recs = NULL;
        parts[i].count = 0;
    }
}
