/*
 * ff_feddigits_write.c - writes a planned feddigits federation: for each
 * part a manifest (docs/site-data-format.md), the MNIST images as PGM and
 * the UNIPEN digits as pen CSV; audio is referenced in place; and one
 * summary.json for the whole build.
 */
#include "ff_feddigits.h"
#include "ff_dataset_util.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_CAP 4096

/* Synthetic collection times: from 2024-03-04T08:00:00Z, a day apart per
 * part, four minutes apart per record. */
#define TIME_BASE 1709539200
#define TIME_PART_STEP 86400
#define TIME_RECORD_STEP 240

static const char *const mod_names[FF_MOD_COUNT] = {"image", "audio", "pen",
                                                    "text"};

/* ---- folders ------------------------------------------------------------ */

/* mkdir -p for a path of at most PATH_CAP bytes. */
static ff_status
make_dirs(const char *path, ff_error *err)
{
    char buf[PATH_CAP];

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ff_error_set(err, FF_ERR_IO, "mkdir %s: %s", buf,
                                strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    return FF_OK;
}

/* Whether name is six digits followed by suffix (a file we write). */
static int
our_file(const char *name, const char *suffix)
{
    for (int i = 0; i < 6; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return strcmp(name + 6, suffix) == 0;
}

/* Removes the files an earlier build wrote in dir (and only those). */
static ff_status
clean_files(const char *dir, const char *suffix, ff_error *err)
{
    char path[PATH_CAP];
    struct dirent *e;
    ff_status st = FF_OK;
    DIR *d = opendir(dir);

    if (d == NULL)
        return FF_OK;  /* nothing there yet */
    while (st == FF_OK && (e = readdir(d)) != NULL) {
        if (!our_file(e->d_name, suffix))
            continue;
        st = ff_path_join(path, sizeof(path), dir, e->d_name, err);
        if (st == FF_OK && unlink(path) != 0)
            st = ff_error_set(err, FF_ERR_IO, "unlink %s: %s", path,
                              strerror(errno));
    }
    closedir(d);
    return st;
}

/* Prepares out/<part>: empty images/ and pen/ folders, no manifest. */
static ff_status
prepare_part_dir(const char *dir, ff_error *err)
{
    char sub[PATH_CAP];
    ff_status st = make_dirs(dir, err);

    if (st == FF_OK)
        st = ff_path_join(sub, sizeof(sub), dir, "images", err);
    if (st == FF_OK)
        st = clean_files(sub, ".pgm", err);
    if (st == FF_OK)
        st = make_dirs(sub, err);
    if (st == FF_OK)
        st = ff_path_join(sub, sizeof(sub), dir, "pen", err);
    if (st == FF_OK)
        st = clean_files(sub, ".csv", err);
    if (st == FF_OK)
        st = make_dirs(sub, err);
    return st;
}

/* ---- records ------------------------------------------------------------ */

/* Sets key to a new JSON value; reports a NULL value (bad UTF-8 or no
 * memory) as an error. */
static ff_status
set_new(json_t *obj, const char *key, json_t *v, ff_error *err)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0)
        return ff_error_set(err, FF_ERR_NOMEM, "JSON: cannot set \"%s\"",
                            key);
    return FF_OK;
}

/* Writes the record's own files (image, pen) into dir. */
static ff_status
write_record_files(const char *dir, const ff_fd_sources *src,
                   const ff_fd_record *rec, size_t i, ff_error *err)
{
    char rel[64], path[PATH_CAP];
    ff_status st = FF_OK;

    if (rec->mnist >= 0) {
        snprintf(rel, sizeof(rel), "images/%06zu.pgm", i);
        st = ff_path_join(path, sizeof(path), dir, rel, err);
        if (st == FF_OK)
            st = ff_mnist_write_pgm(&src->mnist, (size_t)rec->mnist, path,
                                    err);
    }
    if (st == FF_OK && rec->pen >= 0) {
        snprintf(rel, sizeof(rel), "pen/%06zu.csv", i);
        st = ff_path_join(path, sizeof(path), dir, rel, err);
        if (st == FF_OK)
            st = ff_unipen_write_csv(&src->unipen, (size_t)rec->pen, path,
                                     err);
    }
    return st;
}

/* The sensors object of a record. */
static json_t *
record_sensors(const ff_fd_sources *src, const ff_fd_record *rec, size_t i,
               ff_error *err)
{
    char rel[64], path[PATH_CAP];
    json_t *sensors = json_object(), *s;
    ff_status st = sensors ? FF_OK : FF_ERR_NOMEM;

    if (st == FF_OK && rec->clip >= 0) {
        st = ff_path_join(path, sizeof(path), src->fsdd.dir,
                          src->fsdd.clips[rec->clip].name, err);
        s = json_object();
        if (st == FF_OK && s != NULL)
            st = set_new(s, "file", json_string(path), err);
        if (st == FF_OK)
            st = set_new(sensors, "audio", s, err);
    }
    if (st == FF_OK && rec->pen >= 0) {
        snprintf(rel, sizeof(rel), "pen/%06zu.csv", i);
        s = json_object();
        st = set_new(s, "file", json_string(rel), err);
        if (st == FF_OK)
            st = set_new(s, "rate_hz",
                         json_real(src->unipen.samples[rec->pen].rate_hz),
                         err);
        if (st == FF_OK)
            st = set_new(sensors, "pen", s, err);
    }
    if (st != FF_OK) {
        json_decref(sensors);
        return NULL;
    }
    return sensors;
}

/* Where each item came from (ignored by the loader; used for checks). */
static json_t *
record_source(const ff_fd_sources *src, const ff_fd_record *rec,
              ff_error *err)
{
    json_t *o = json_object();
    ff_status st = o ? FF_OK : FF_ERR_NOMEM;

    if (st == FF_OK && rec->mnist >= 0)
        st = set_new(o, "mnist", json_integer(rec->mnist), err);
    if (st == FF_OK && rec->clip >= 0)
        st = set_new(o, "fsdd", json_string(src->fsdd.clips[rec->clip].name),
                     err);
    if (st == FF_OK && rec->pen >= 0)
        st = set_new(o, "unipen",
                     json_string(src->unipen.samples[rec->pen].source), err);
    if (st == FF_OK && rec->locale >= 0)
        st = set_new(o, "locale",
                     json_string(src->cldr.locales[rec->locale].code), err);
    if (st != FF_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Builds the manifest line of record i of part p. */
static json_t *
record_json(const ff_fd_sources *src, const ff_fd_part *p, int part_no,
            size_t i, ff_error *err)
{
    const ff_fd_record *rec = &p->recs[i];
    char id[64], when[32], rel[64];
    time_t t = TIME_BASE + (time_t)part_no * TIME_PART_STEP +
               (time_t)i * TIME_RECORD_STEP;
    struct tm tm;
    json_t *o = json_object();
    ff_status st = o ? FF_OK : FF_ERR_NOMEM;

    snprintf(id, sizeof(id), "%s/%06zu", p->name, i);
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (st == FF_OK)
        st = set_new(o, "id", json_string(id), err);
    if (st == FF_OK)
        st = set_new(o, "time", json_string(when), err);
    if (st == FF_OK)
        st = set_new(o, "label", json_integer(rec->label), err);
    if (st == FF_OK && rec->locale >= 0)
        st = set_new(o, "text",
                     json_string(src->cldr.locales[rec->locale]
                                     .words[rec->label]), err);
    if (st == FF_OK && rec->mnist >= 0) {
        snprintf(rel, sizeof(rel), "images/%06zu.pgm", i);
        st = set_new(o, "image", json_string(rel), err);
    }
    if (st == FF_OK && (rec->clip >= 0 || rec->pen >= 0))
        st = set_new(o, "sensors", record_sensors(src, rec, i, err), err);
    if (st == FF_OK)
        st = set_new(o, "source", record_source(src, rec, err), err);
    if (st != FF_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes one part: its files and its manifest. */
static ff_status
write_part(const ff_fd_options *opt, const ff_fd_sources *src,
           const ff_fd_part *p, int part_no, ff_error *err)
{
    char dir[PATH_CAP], path[PATH_CAP];
    ff_status st;
    FILE *f;

    st = ff_path_join(dir, sizeof(dir), opt->out_dir, p->name, err);
    if (st == FF_OK)
        st = prepare_part_dir(dir, err);
    if (st == FF_OK)
        st = ff_path_join(path, sizeof(path), dir, "manifest.jsonl", err);
    if (st != FF_OK)
        return st;
    f = fopen(path, "w");
    if (f == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));

    for (size_t i = 0; st == FF_OK && i < p->count; i++) {
        json_t *rec = record_json(src, p, part_no, i, err);
        char *line = rec ? json_dumps(rec, JSON_COMPACT |
                                               JSON_PRESERVE_ORDER)
                         : NULL;
        if (line == NULL)
            st = ff_error_wrap(err, FF_ERR_NOMEM, "%s record %zu", p->name, i);
        else if (fprintf(f, "%s\n", line) < 0)
            st = ff_error_set(err, FF_ERR_IO, "%s: write failed", path);
        free(line);
        json_decref(rec);
        if (st == FF_OK)
            st = write_record_files(dir, src, &p->recs[i], i, err);
    }
    if (fclose(f) != 0 && st == FF_OK)
        st = ff_error_set(err, FF_ERR_IO, "%s: write failed", path);
    return st;
}

/* ---- summary.json ------------------------------------------------------- */

/* Adds names[i] for each i in idx[0..n) to a new array. */
static json_t *
string_array(const char *const *names, const int *idx, int n)
{
    json_t *a = json_array();

    for (int i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(names[idx[i]]));
    return a;
}

/* Counts per modality, per label, distinct clips, MNIST range. */
static json_t *
part_counts(const ff_fd_sources *src, const ff_fd_part *p)
{
    size_t present[FF_MOD_COUNT] = {0}, labels[FF_NUM_CLASSES] = {0};
    size_t clips = 0, pens = 0, images = 0;
    long lo = -1, hi = -1;
    char *seen = calloc(src->fsdd.count ? src->fsdd.count : 1, 1);
    json_t *o = json_object(), *pr = json_object(), *lb = json_array();

    for (size_t i = 0; seen && i < p->count; i++) {
        const ff_fd_record *r = &p->recs[i];
        labels[r->label]++;
        for (int m = 0; m < FF_MOD_COUNT; m++)
            present[m] += (r->mods >> m) & 1u;
        if (r->clip >= 0 && !seen[r->clip]) {
            seen[r->clip] = 1;
            clips++;
        }
        pens += r->pen >= 0;
        if (r->mnist >= 0) {
            images++;
            lo = lo < 0 || r->mnist < lo ? r->mnist : lo;
            hi = r->mnist > hi ? r->mnist : hi;
        }
    }
    free(seen);
    for (int m = 0; m < FF_MOD_COUNT; m++)
        json_object_set_new(pr, mod_names[m],
                            json_integer((json_int_t)present[m]));
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        json_array_append_new(lb, json_integer((json_int_t)labels[l]));
    json_object_set_new(o, "present", pr);
    json_object_set_new(o, "labels", lb);
    json_object_set_new(o, "fsdd_clips_distinct",
                        json_integer((json_int_t)clips));
    json_object_set_new(o, "unipen_samples", json_integer((json_int_t)pens));
    json_object_set_new(o, "mnist", json_pack("{s:I,s:I,s:I}", "count",
                                              (json_int_t)images, "min_index",
                                              (json_int_t)lo, "max_index",
                                              (json_int_t)hi));
    return o;
}

/* The summary entry of one part. */
static json_t *
part_summary(const ff_fd_sources *src, const ff_fd_part *p)
{
    json_t *o = json_object(), *design = json_array(), *miss = json_object();
    json_t *mix = json_array(), *langs = json_array(), *spk;
    json_t *counts = part_counts(src, p);

    for (int m = 0; m < FF_MOD_COUNT; m++) {
        if (p->mods & FF_MOD_BIT(m))
            json_array_append_new(design, json_string(mod_names[m]));
        if (p->miss[m] > 0.0)
            json_object_set_new(miss, mod_names[m], json_real(p->miss[m]));
    }
    for (int l = 0; l < FF_NUM_CLASSES; l++)
        json_array_append_new(mix, json_real(p->proportions[l]));
    for (int i = 0; i < p->nlocales; i++) {
        const ff_cldr_locale *loc = &src->cldr.locales[p->locales[i]];
        json_array_append_new(langs, json_string(loc->code));
    }
    if (p->is_test) {
        spk = json_array();
        for (int s = 0; s < src->fsdd.nspeakers; s++)
            json_array_append_new(spk, json_string(src->fsdd.speakers[s]));
    } else {
        spk = p->speaker >= 0 ? json_string(src->fsdd.speakers[p->speaker])
                              : json_null();
    }

    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "records", json_integer((json_int_t)p->count));
    json_object_set_new(o, "design", design);
    json_object_set_new(o, "missing_share", miss);
    json_object_update(o, counts);
    json_decref(counts);
    json_object_set_new(o, "label_mix", mix);
    json_object_set_new(o, p->is_test ? "speakers" : "speaker", spk);
    json_object_set_new(o, "fsdd_repetitions",
                        json_string(p->is_test ? "0-4" : "5-49"));
    json_object_set_new(o, "pen_donors",
                        string_array(ff_fd_donor_names, p->donors,
                                     p->ndonors));
    json_object_set_new(o, "languages", langs);
    return o;
}

/* UNIPEN donor folders that no part uses. */
static json_t *
unused_donors(const char *data_dir)
{
    char path[PATH_CAP];
    json_t *a = json_array();
    struct dirent *e;
    DIR *d;

    if (snprintf(path, sizeof(path), "%s/unipen-1a/data/1a", data_dir) >=
            (int)sizeof(path) ||
        (d = opendir(path)) == NULL)
        return a;
    while ((e = readdir(d)) != NULL) {
        int used = e->d_name[0] == '.';
        for (size_t i = 0; !used && i < ff_fd_donor_count; i++)
            used = strcmp(e->d_name, ff_fd_donor_names[i]) == 0;
        if (!used)
            json_array_append_new(a, json_string(e->d_name));
    }
    closedir(d);
    return a;
}

static int
cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a),
                  json_string_value(*(json_t *const *)b));
}

/* Sorts an array of strings (readdir order is not stable). */
static json_t *
sorted(json_t *a)
{
    size_t n = json_array_size(a);
    json_t **v = malloc(sizeof(json_t *) * (n ? n : 1)), *out = json_array();

    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(a, i);
    if (v)
        qsort(v, n, sizeof(json_t *), cmp_json_str);
    for (size_t i = 0; v && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(a);
    return out;
}

static json_t *
sources_summary(const ff_fd_options *opt, const ff_fd_sources *src)
{
    const ff_unipen_stats *u = &src->unipen.stats;
    json_t *unipen = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "files", (json_int_t)u->files,
        "segments", (json_int_t)u->segments, "samples",
        (json_int_t)src->unipen.count, "skipped_unresolved",
        (json_int_t)u->unresolved, "skipped_bad_label",
        (json_int_t)u->bad_label, "skipped_no_rate", (json_int_t)u->no_rate,
        "skipped_degenerate", (json_int_t)u->degenerate);

    if (unipen != NULL)
        json_object_set_new(unipen, "unused_donors",
                            sorted(unused_donors(opt->data_dir)));
    return json_pack("{s:I,s:I,s:I,s:I,s:o}", "mnist_images",
                     (json_int_t)src->mnist.count, "fsdd_clips",
                     (json_int_t)src->fsdd.count, "cldr_locales_usable",
                     (json_int_t)src->cldr.count, "cldr_files_skipped",
                     (json_int_t)src->cldr.skipped, "unipen", unipen);
}

static ff_status
write_summary(const ff_fd_options *opt, const ff_fd_sources *src,
              const ff_fd_part parts[FF_FD_PARTS], ff_error *err)
{
    char path[PATH_CAP];
    json_t *sites = json_array();
    json_t *o = json_pack("{s:s,s:I,s:f,s:I,s:I}", "federation", "feddigits",
                          "seed", (json_int_t)opt->seed, "alpha", opt->alpha,
                          "records_per_site", (json_int_t)opt->records,
                          "test_records", (json_int_t)opt->test_records);
    ff_status st;

    for (int i = 0; sites && i < FF_FD_SITES; i++)
        json_array_append_new(sites, part_summary(src, &parts[i]));
    if (o == NULL || sites == NULL) {
        json_decref(o);
        json_decref(sites);
        return ff_error_set(err, FF_ERR_NOMEM, "summary: no memory");
    }
    json_object_set_new(o, "sources", sources_summary(opt, src));
    json_object_set_new(o, "sites", sites);
    json_object_set_new(o, "test", part_summary(src, &parts[FF_FD_TEST]));
    st = ff_path_join(path, sizeof(path), opt->out_dir, "summary.json", err);
    if (st == FF_OK &&
        json_dump_file(o, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(4)) != 0)
        st = ff_error_set(err, FF_ERR_IO, "%s: write failed", path);
    json_decref(o);
    return st;
}

ff_status
ff_feddigits_write(const ff_fd_options *opt, const ff_fd_sources *src,
                   const ff_fd_part parts[FF_FD_PARTS], ff_error *err)
{
    ff_status st = make_dirs(opt->out_dir, err);

    for (int i = 0; st == FF_OK && i < FF_FD_PARTS; i++)
        st = write_part(opt, src, &parts[i], i, err);
    if (st == FF_OK)
        st = write_summary(opt, src, parts, err);
    return st;
}
