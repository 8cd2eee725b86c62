/*
 * ff_sources.h - readers of the public datasets that the feddigits builder
 * (fedfuse-feddigits) combines: MNIST test IDX, FSDD recordings, UNIPEN
 * category 1a pen trajectories and CLDR number-spelling rules. Each reads
 * the files in place under the data folder (see each folder's README).
 *
 * Not used at training time: sites load their own files through
 * ff_dataset.h. Not thread-safe per object; separate objects are fine.
 */
#ifndef FF_SOURCES_H
#define FF_SOURCES_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"

/* ---- MNIST (mnist/t10k-*-ubyte.gz) ---------------------------------- */

#define FF_MNIST_SIDE 28
#define FF_MNIST_PIXELS (FF_MNIST_SIDE * FF_MNIST_SIDE)
#define FF_MNIST_MAX_IMAGES 100000

typedef struct ff_mnist {
    uint8_t *pixels;  /* count * FF_MNIST_PIXELS, row-major, 255 = ink */
    uint8_t *labels;  /* count labels 0..9 */
    size_t count;
} ff_mnist;

/* Reads dir/t10k-images-idx3-ubyte.gz and dir/t10k-labels-idx1-ubyte.gz
 * (gzip, read with zlib) into m (caller storage; free with
 * ff_mnist_cleanup). Errors: FF_ERR_IO, FF_ERR_FORMAT (magic, sizes,
 * counts disagree, label over 9), FF_ERR_TOO_LARGE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_mnist_load(const char *dir, ff_mnist *m,
                                    ff_error *err);

/* Frees what ff_mnist_load allocated; accepts NULL. */
void ff_mnist_cleanup(ff_mnist *m);

/* Writes image i of m as a binary PGM (P5, 28x28, maxval 255) at path.
 * Errors: FF_ERR_ARG (i out of range), FF_ERR_IO. */
FF_MUST_USE ff_status ff_mnist_write_pgm(const ff_mnist *m, size_t i,
                                         const char *path, ff_error *err);

/* ---- FSDD (fsdd/recordings/{digit}_{speaker}_{index}.wav) ------------ */

#define FF_FSDD_MAX_SPEAKERS 16
#define FF_FSDD_MAX_CLIPS 100000

typedef struct ff_fsdd_clip {
    int digit;     /* 0..9 */
    int speaker;   /* index into ff_fsdd.speakers */
    int rep;       /* repetition number */
    char *name;    /* file name, e.g. "3_theo_12.wav" */
} ff_fsdd_clip;

typedef struct ff_fsdd {
    char *dir;     /* absolute path of the recordings folder */
    char *speakers[FF_FSDD_MAX_SPEAKERS]; /* sorted by name */
    int nspeakers;
    ff_fsdd_clip *clips;  /* sorted by name */
    size_t count;
} ff_fsdd;

/* Lists the recordings in dir/recordings into f (caller storage; free with
 * ff_fsdd_cleanup). Files whose names do not follow the pattern are
 * ignored. Errors: FF_ERR_IO, FF_ERR_FORMAT (no recording found, too many
 * speakers), FF_ERR_TOO_LARGE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_fsdd_scan(const char *dir, ff_fsdd *f,
                                   ff_error *err);

/* Frees what ff_fsdd_scan allocated; accepts NULL. */
void ff_fsdd_cleanup(ff_fsdd *f);

/* ---- CLDR RBNF (cldr-rbnf/common/rbnf/<locale>.xml) ------------------ */

#define FF_CLDR_WORD_MAX 128

typedef struct ff_cldr_locale {
    char code[32];                           /* file name without .xml */
    char ruleset[64];                        /* the rule set taken */
    char words[10][FF_CLDR_WORD_MAX];        /* UTF-8 word for digit d */
} ff_cldr_locale;

typedef struct ff_cldr {
    ff_cldr_locale *locales;  /* usable locales, sorted by code */
    size_t count;
    size_t skipped;           /* files without a plain 0-9 rule set */
} ff_cldr;

/* Reads every XML file of dir/common/rbnf. For each locale it takes the first
 * of spellout-numbering, spellout-cardinal, spellout-cardinal-masculine,
 * spellout-cardinal-feminine (then any other public spellout-cardinal-*
 * rule set) whose rules for 0..9 are all plain words (no rule-set
 * references, substitutions or optional parts); locales without one are
 * skipped and counted. c is caller storage (free with ff_cldr_cleanup).
 * Errors: FF_ERR_IO, FF_ERR_FORMAT (no usable locale), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_cldr_load(const char *dir, ff_cldr *c,
                                   ff_error *err);

/* The usable locale named code, or NULL. */
const ff_cldr_locale *ff_cldr_find(const ff_cldr *c, const char *code);

/* Frees what ff_cldr_load allocated; accepts NULL. */
void ff_cldr_cleanup(ff_cldr *c);

/* ---- UNIPEN category 1a (unipen-1a/data/1a/<donor>/...) -------------- */

#define FF_UNIPEN_MAX_POINTS 50000000  /* all samples together */

typedef struct ff_unipen_sample {
    int donor;        /* index into the donors passed to ff_unipen_load */
    int label;        /* 0..9 */
    double rate_hz;   /* the donor's .POINTS_PER_SECOND */
    size_t first;     /* index of the first point in ff_unipen.x/y/... */
    size_t npoints;   /* pen-down points of the digit */
    char source[96];  /* "<1a file>#<segment number>", unique */
} ff_unipen_sample;

typedef struct ff_unipen_stats {
    size_t files;        /* 1a files read */
    size_t segments;     /* .SEGMENT lines seen */
    size_t unresolved;   /* delineation names no existing component or
                            point, or cannot be parsed */
    size_t bad_label;    /* label is not one digit 0-9 */
    size_t no_rate;      /* no .POINTS_PER_SECOND in force */
    size_t degenerate;   /* fewer than 2 pen-down points or no length */
} ff_unipen_stats;

typedef struct ff_unipen {
    ff_unipen_sample *samples;
    size_t count;
    /* Point columns shared by all samples. */
    int *x, *y, *stroke;   /* tablet units (y upwards); stroke index */
    double *t;             /* seconds from the digit's first point */
    size_t npoints;
    ff_unipen_stats stats;
} ff_unipen;

/* Parses every 1a file under dir/data/1a/<donor> for each of the ndonors
 * donor folder names, following their .INCLUDE lines (relative to
 * dir/include), and resolves each .SEGMENT delineation (ranges A-B, lists
 * A,B and point forms A:M-B:N) to the digit's pen-down points. Segments
 * that cannot be resolved are skipped and counted in u->stats. t counts
 * one sample period per point of the delineated components (pen-up points
 * included), from the donor's .POINTS_PER_SECOND. Files are read in
 * sorted path order, so the result is deterministic. u is caller storage
 * (free with ff_unipen_cleanup). Errors: FF_ERR_IO (a folder or an
 * included file cannot be read), FF_ERR_TOO_LARGE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_unipen_load(const char *dir,
                                     const char *const *donors,
                                     size_t ndonors, ff_unipen *u,
                                     ff_error *err);

/* Frees what ff_unipen_load allocated; accepts NULL. */
void ff_unipen_cleanup(ff_unipen *u);

/* Writes sample i as a pen CSV ("t,x,y,stroke") at path. Errors:
 * FF_ERR_ARG, FF_ERR_IO. */
FF_MUST_USE ff_status ff_unipen_write_csv(const ff_unipen *u, size_t i,
                                          const char *path, ff_error *err);

#endif
