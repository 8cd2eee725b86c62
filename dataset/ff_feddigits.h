/*
 * ff_feddigits.h - internals of fedfuse-feddigits, the program that builds
 * the "feddigits" federation (six sites and a test set) from the public
 * datasets. See docs/feddigits.md. Used only by the program's own files.
 */
#ifndef FF_FEDDIGITS_H
#define FF_FEDDIGITS_H

#include <stddef.h>
#include <stdint.h>

#include "ff_dataset.h"
#include "ff_sources.h"

#define FF_FD_SITES 6
#define FF_FD_PARTS (FF_FD_SITES + 1)  /* the sites, then the test set */
#define FF_FD_TEST FF_FD_SITES
#define FF_FD_MAX_LOCALES 128
#define FF_FD_MAX_DONORS 17
#define FF_FD_LANGS_PER_SITE 8

/* Options of one build. */
typedef struct ff_fd_options {
    const char *data_dir;
    const char *out_dir;
    uint64_t seed;
    double alpha;            /* Dirichlet concentration of label mixes */
    size_t records;          /* per site, before the small jitter */
    size_t test_records;
} ff_fd_options;

/* Everything read from the data folder. */
typedef struct ff_fd_sources {
    ff_mnist mnist;
    ff_fsdd fsdd;
    ff_cldr cldr;
    ff_unipen unipen;        /* donors in ff_fd_donor_names order */
} ff_fd_sources;

/* One planned record; -1 marks an item the record does not use. */
typedef struct ff_fd_record {
    int label;
    uint32_t mods;           /* FF_MOD_BIT set for each modality present */
    int mnist;               /* MNIST test-set index */
    int clip;                /* index into fsdd.clips */
    int pen;                 /* index into unipen.samples */
    int locale;              /* index into cldr.locales */
} ff_fd_record;

/* A site or the test set: its design and its planned records. */
typedef struct ff_fd_part {
    char name[16];
    int is_test;                     /* the held-out test set */
    uint32_t mods;                   /* modalities the design includes */
    double miss[FF_MOD_COUNT];       /* share of records missing each */
    int speaker;                     /* FSDD speaker; -1 none or (test)
                                        every speaker */
    int donors[FF_FD_MAX_DONORS];    /* UNIPEN donor indices */
    int ndonors;
    int locales[FF_FD_MAX_LOCALES];  /* CLDR locale indices */
    int nlocales;
    double proportions[FF_NUM_CLASSES]; /* the label mix drawn */
    ff_fd_record *recs;
    size_t count;
} ff_fd_part;

/* The UNIPEN donor folders, in the order ff_fd_sources.unipen uses. */
extern const char *const ff_fd_donor_names[];
extern const size_t ff_fd_donor_count;

/* Reads the four datasets under opt->data_dir into src (caller storage;
 * free with ff_feddigits_sources_cleanup). Errors: as the readers. */
FF_MUST_USE ff_status ff_feddigits_sources_load(const ff_fd_options *opt,
                                                ff_fd_sources *src,
                                                ff_error *err);

/* Frees what ff_feddigits_sources_load read; accepts NULL. */
void ff_feddigits_sources_cleanup(ff_fd_sources *src);

/* Plans the seven parts (parts[0..5] = site-1..site-6, parts[6] = test):
 * languages, speakers, donors, label mixes and every record's items.
 * Deterministic from opt->seed. parts[i].recs are malloc'd (free with
 * ff_feddigits_parts_cleanup). Errors: FF_ERR_ARG (a pool too small for
 * the options), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_feddigits_plan(const ff_fd_options *opt,
                                        const ff_fd_sources *src,
                                        ff_fd_part parts[FF_FD_PARTS],
                                        ff_error *err);

/* Frees the records of the seven parts; the designs stay. */
void ff_feddigits_parts_cleanup(ff_fd_part parts[FF_FD_PARTS]);

/* Writes every part (manifest, PGM images, pen CSVs) and summary.json
 * under opt->out_dir, replacing files an earlier build wrote there.
 * Errors: FF_ERR_IO, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_feddigits_write(const ff_fd_options *opt,
                                         const ff_fd_sources *src,
                                         const ff_fd_part parts[FF_FD_PARTS],
                                         ff_error *err);

#endif
