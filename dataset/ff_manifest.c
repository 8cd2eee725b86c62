/*
 * ff_manifest.c - reads a site manifest (JSON Lines) and loads every record
 * through the modality loaders. The format is documented in
 * docs/site-data-format.md.
 */
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/ff_log.h"

/* Longest path a manifest may name, after joining with its folder. */
#define PATH_CAP 4096

/* Modality names for messages (model/ owns ff_modality_name; dataset/
 * keeps its own table so that it does not depend on the model library). */
static const char *const mod_names[FF_MOD_COUNT] = {"image", "audio", "pen",
                                                    "text"};

/* ---- ids seen so far: an open-addressing set of strings ------------- */

typedef struct id_slot {
    char *id;
    size_t line;
} id_slot;

typedef struct id_set {
    id_slot *slots;
    size_t cap, count;
} id_set;

static uint64_t
id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void
id_set_cleanup(id_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i].id);
    free(set->slots);
    memset(set, 0, sizeof(*set));
}

/* Doubles the table (kept at most half full). */
static ff_status
id_set_grow(id_set *set, ff_error *err)
{
    size_t cap = set->cap ? set->cap * 2 : 1024;
    id_slot *slots = calloc(cap, sizeof(id_slot));

    if (slots == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "manifest: no memory");
    for (size_t i = 0; i < set->cap; i++) {
        if (set->slots[i].id == NULL)
            continue;
        size_t j = id_hash(set->slots[i].id) & (cap - 1);
        while (slots[j].id != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = set->slots[i];
    }
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return FF_OK;
}

/* Adds id; when it is already there, sets *first_line to where it was
 * first seen and returns FF_OK without adding. */
static ff_status
id_set_add(id_set *set, const char *id, size_t line, size_t *first_line,
           ff_error *err)
{
    size_t j;

    *first_line = 0;
    if (2 * (set->count + 1) > set->cap) {
        ff_status st = id_set_grow(set, err);
        if (st != FF_OK)
            return st;
    }
    j = id_hash(id) & (set->cap - 1);
    for (; set->slots[j].id != NULL; j = (j + 1) & (set->cap - 1))
        if (strcmp(set->slots[j].id, id) == 0) {
            *first_line = set->slots[j].line;
            return FF_OK;
        }
    set->slots[j].id = strdup(id);
    if (set->slots[j].id == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "manifest: no memory");
    set->slots[j].line = line;
    set->count++;
    return FF_OK;
}

/* Replaces control characters in s with '?', so that text from a manifest
 * cannot forge log lines (ids and paths end up in messages). */
static void
printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            *s = '?';
}

/* ---- field checks ------------------------------------------------------ */

static int
digits(const char *s, int n, int *value)
{
    *value = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *value = *value * 10 + (s[i] - '0');
    }
    return 1;
}

static int
days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Checks an ISO 8601 time offset "Z", "+HH:MM" or "+HHMM" (or nothing). */
static int
iso_offset_valid(const char *s)
{
    int hh, mm;

    if (*s == '\0' || strcmp(s, "Z") == 0)
        return 1;
    if (*s != '+' && *s != '-')
        return 0;
    s++;
    if (!digits(s, 2, &hh) || hh > 23)
        return 0;
    s += 2;
    if (*s == ':')
        s++;
    return digits(s, 2, &mm) && mm <= 59 && s[2] == '\0';
}

/* Accepts YYYY-MM-DD, optionally followed by THH:MM[:SS[.fff]] and an
 * offset. */
static int
iso_time_valid(const char *s)
{
    int y, mo, d, h, mi, se;

    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || mo < 1 || mo > 12 ||
        d < 1 || d > days_in_month(y, mo))
        return 0;
    s += 10;
    if (*s == '\0')
        return 1;
    if ((*s != 'T' && *s != 't') || !digits(s + 1, 2, &h) || s[3] != ':' ||
        !digits(s + 4, 2, &mi) || h > 23 || mi > 59)
        return 0;
    s += 6;
    if (*s == ':') {
        if (!digits(s + 1, 2, &se) || se > 60)
            return 0;
        s += 3;
        if (*s == '.' || *s == ',') {
            s++;
            if (*s < '0' || *s > '9')
                return 0;
            while (*s >= '0' && *s <= '9')
                s++;
        }
    }
    return iso_offset_valid(s);
}

/* ---- one record -------------------------------------------------------- */

/* Where a record's error is reported. */
typedef struct line_ctx {
    const char *file;
    size_t line;
    const char *dir;  /* manifest folder, for relative paths */
} line_ctx;

static ff_status
field_error(const line_ctx *c, ff_error *err, const char *field,
            const char *what)
{
    return ff_error_set(err, FF_ERR_FORMAT, "%s:%zu: field \"%s\": %s",
                        c->file, c->line, field, what);
}

/* Gets an optional string member; missing is fine, other types are not. */
static ff_status
opt_string(const line_ctx *c, json_t *obj, const char *key,
           const char *field, const char **out, ff_error *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL)
        return FF_OK;
    if (!json_is_string(v))
        return field_error(c, err, field, "expected a string");
    if (json_string_length(v) == 0)
        return field_error(c, err, field, "is empty");
    *out = json_string_value(v);
    return FF_OK;
}

/* The file named by sensors.<name>.file, and its rate_hz (0 if none). */
static ff_status
sensor_field(const line_ctx *c, json_t *sensors, const char *name,
             const char **file, double *rate_hz, ff_error *err)
{
    char field[64];
    json_t *s = json_object_get(sensors, name), *r;

    *file = NULL;
    *rate_hz = 0.0;
    if (s == NULL)
        return FF_OK;
    snprintf(field, sizeof(field), "sensors.%s", name);
    if (!json_is_object(s))
        return field_error(c, err, field, "expected an object");
    snprintf(field, sizeof(field), "sensors.%s.file", name);
    ff_status st = opt_string(c, s, "file", field, file, err);
    if (st != FF_OK)
        return st;
    if (*file == NULL)
        return field_error(c, err, field, "missing");
    r = json_object_get(s, "rate_hz");
    if (r == NULL)
        return FF_OK;
    snprintf(field, sizeof(field), "sensors.%s.rate_hz", name);
    if (!json_is_number(r))
        return field_error(c, err, field, "expected a number");
    *rate_hz = json_number_value(r);
    if (!(*rate_hz > 0.0 && *rate_hz <= FF_RATE_MAX_HZ))
        return field_error(c, err, field, "outside (0, 100000]");
    return FF_OK;
}

/* The record's checked fields, before any file is opened. */
typedef struct record_fields {
    const char *id;
    int label;
    const char *text;
    const char *file[FF_MOD_COUNT]; /* NULL when not declared */
    double pen_rate_hz;
} record_fields;

/* Checks id, time and label (all required). */
static ff_status
required_fields(const line_ctx *c, json_t *rec, record_fields *f,
                ff_error *err)
{
    json_t *v;

    v = json_object_get(rec, "id");
    if (v == NULL)
        return field_error(c, err, "id", "missing");
    if (!json_is_string(v))
        return field_error(c, err, "id", "expected a string");
    if (json_string_length(v) == 0 || json_string_length(v) > FF_ID_MAX_BYTES)
        return field_error(c, err, "id", "length outside 1..256 bytes");
    f->id = json_string_value(v);

    v = json_object_get(rec, "time");
    if (v == NULL)
        return field_error(c, err, "time", "missing");
    if (!json_is_string(v))
        return field_error(c, err, "time", "expected a string");
    if (!iso_time_valid(json_string_value(v)))
        return field_error(c, err, "time", "not an ISO 8601 date-time");

    v = json_object_get(rec, "label");
    if (v == NULL)
        return field_error(c, err, "label", "missing");
    if (!json_is_integer(v))
        return field_error(c, err, "label", "expected an integer");
    if (json_integer_value(v) < 0 ||
        json_integer_value(v) >= FF_NUM_CLASSES)
        return field_error(c, err, "label", "outside 0..9");
    f->label = (int)json_integer_value(v);
    return FF_OK;
}

/* Checks the optional modality fields. */
static ff_status
modality_fields(const line_ctx *c, json_t *rec, record_fields *f,
                ff_error *err)
{
    json_t *sensors;
    double unused;
    ff_status st;

    st = opt_string(c, rec, "text", "text", &f->text, err);
    if (st != FF_OK)
        return st;
    if (f->text != NULL && strlen(f->text) > FF_TEXT_MAX_BYTES)
        return field_error(c, err, "text", "longer than 4096 bytes");
    st = opt_string(c, rec, "image", "image", &f->file[FF_MOD_IMAGE], err);
    if (st != FF_OK)
        return st;

    sensors = json_object_get(rec, "sensors");
    if (sensors != NULL && !json_is_object(sensors))
        return field_error(c, err, "sensors", "expected an object");
    if (sensors != NULL) {
        st = sensor_field(c, sensors, "audio", &f->file[FF_MOD_AUDIO],
                          &unused, err);
        if (st == FF_OK)
            st = sensor_field(c, sensors, "pen", &f->file[FF_MOD_PEN],
                              &f->pen_rate_hz, err);
        if (st != FF_OK)
            return st;
    }
    if (f->text == NULL && f->file[FF_MOD_IMAGE] == NULL &&
        f->file[FF_MOD_AUDIO] == NULL && f->file[FF_MOD_PEN] == NULL)
        return field_error(c, err, "text/image/sensors",
                           "the record has no modality");
    return FF_OK;
}

/* The float features of file modality m in s, and their count. */
static float *
modality_values(ff_sample *s, ff_modality m, size_t *n)
{
    if (m == FF_MOD_IMAGE) {
        *n = FF_IMAGE_SIZE;
        return s->image;
    }
    if (m == FF_MOD_AUDIO) {
        *n = FF_AUDIO_SIZE;
        return s->audio;
    }
    *n = FF_PEN_SIZE;
    return s->pen;
}

/* 1 when every feature of modality m is finite. This is the last line of
 * defence: whatever a loader computes, NaN or Inf never reaches training. */
static int
features_finite(ff_sample *s, ff_modality m)
{
    size_t n;
    const float *v = modality_values(s, m, &n);

    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Zeroes what a failed loader may have left in modality m. */
static void
clear_modality(ff_sample *s, ff_modality m)
{
    size_t n;
    float *v = modality_values(s, m, &n);

    memset(v, 0, n * sizeof(float));
}

/* Runs the loader of file modality m into s. A file that cannot be read
 * or decoded, or whose features are not all finite, leaves m absent and
 * zeroed (counted); only FF_ERR_NOMEM is returned. */
static ff_status
load_file_modality(const line_ctx *c, const record_fields *f, ff_modality m,
                   ff_sample *s, ff_load_report *rep, ff_error *err)
{
    char path[PATH_CAP];
    ff_error e = {0};
    ff_status st;

    rep->declared[m]++;
    st = ff_path_join(path, sizeof(path), c->dir, f->file[m], &e);
    if (st == FF_OK) {
        if (m == FF_MOD_IMAGE)
            st = ff_image_load(path, s->image, &e);
        else if (m == FF_MOD_AUDIO)
            st = ff_audio_load_wav(path, s->audio, &e);
        else
            st = ff_pen_load_csv(path, f->pen_rate_hz, s->pen, &e);
    }
    if (st == FF_OK && !features_finite(s, m))
        st = ff_error_set(&e, FF_ERR_NONFINITE,
                          "%s: %s features are not finite", path,
                          mod_names[m]);
    if (st == FF_ERR_NOMEM)
        return ff_error_set(err, st, "%s:%zu: %s", c->file, c->line,
                            ff_error_text(&e));
    if (st != FF_OK) {
        char id[FF_ID_MAX_BYTES + 1];
        clear_modality(s, m);
        rep->unreadable[m]++;
        snprintf(id, sizeof(id), "%s", f->id);
        printable(id);
        printable(e.msg);
        FF_DEBUG("%s:%zu: record %s: %s absent: %s", c->file, c->line, id,
                 mod_names[m], ff_error_text(&e));
        return FF_OK;
    }
    rep->present[m]++;
    s->present |= FF_MOD_BIT(m);
    return FF_OK;
}

/* Fills s from checked fields. */
static ff_status
load_record(const line_ctx *c, const record_fields *f, ff_sample *s,
            ff_load_report *rep, ff_error *err)
{
    memset(s, 0, sizeof(*s));
    s->label = f->label;
    if (f->text != NULL) {
        rep->declared[FF_MOD_TEXT]++;
        s->text_len = ff_text_features(f->text, s->text);
        if (s->text_len < 0)
            return field_error(c, err, "text",
                               "has no word (only whitespace)");
        rep->present[FF_MOD_TEXT]++;
        s->present |= FF_MOD_BIT(FF_MOD_TEXT);
    }
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        if (m == FF_MOD_TEXT || f->file[m] == NULL)
            continue;
        ff_status st = load_file_modality(c, f, (ff_modality)m, s, rep, err);
        if (st != FF_OK)
            return st;
    }
    return FF_OK;
}

/* ---- the manifest ---------------------------------------------------- */

/* Reads one line (without its '\n') of at most cap bytes into buf.
 * Returns 1 for a line, 0 at end of file, -1 when the line is too long. */
static int
read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int ch;

    while ((ch = getc_unlocked(f)) != EOF && ch != '\n') {
        if (n >= cap)
            return -1;
        buf[n++] = (char)ch;
    }
    *len = n;
    if (ch == EOF && n == 0)
        return 0;
    return 1;
}

static int
blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Makes room for one more sample in set. The record cap is checked
 * before growing, and growth stops at the cap, so a long manifest never
 * allocates more than FF_MANIFEST_MAX_RECORDS samples. */
static ff_status
set_reserve(ff_sample_set *set, size_t *cap, ff_error *err)
{
    if (set->count < *cap)
        return FF_OK;
    if (set->count >= FF_MANIFEST_MAX_RECORDS)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "manifest: more than %d records",
                            FF_MANIFEST_MAX_RECORDS);
    size_t ncap = *cap ? *cap * 2 : 256;
    if (ncap > FF_MANIFEST_MAX_RECORDS)
        ncap = FF_MANIFEST_MAX_RECORDS;
    ff_sample *items = realloc(set->items, ncap * sizeof(ff_sample));
    if (items == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "manifest: no memory for %zu "
                            "records", ncap);
    set->items = items;
    *cap = ncap;
    return FF_OK;
}

/* The loading state of one manifest. */
typedef struct loader {
    line_ctx ctx;
    id_set ids;
    ff_sample_set *set;
    size_t cap;
    ff_load_report rep;
    size_t skipped;
} loader;

/* Parses, checks and loads one non-blank line. */
static ff_status
load_line(loader *ld, const char *line, size_t len, ff_error *err)
{
    const line_ctx *c = &ld->ctx;
    record_fields f;
    json_error_t jerr;
    size_t first = 0;
    json_t *rec;
    ff_status st;

    /* Name bad UTF-8 as such (jansson only says which byte it hit). */
    size_t bad = ff_utf8_check(line, len);
    if (bad != len)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s:%zu: invalid UTF-8 at column %zu (byte "
                            "0x%02x)", c->file, c->line, bad + 1,
                            (unsigned char)line[bad]);
    rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (rec == NULL)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s:%zu: invalid JSON at column %d: %s", c->file,
                            c->line, jerr.column, jerr.text);
    memset(&f, 0, sizeof(f));
    if (!json_is_object(rec))
        st = ff_error_set(err, FF_ERR_FORMAT, "%s:%zu: not a JSON object",
                          c->file, c->line);
    else
        st = required_fields(c, rec, &f, err);
    if (st == FF_OK)
        st = modality_fields(c, rec, &f, err);
    if (st == FF_OK)
        st = id_set_add(&ld->ids, f.id, c->line, &first, err);
    if (st == FF_OK && first != 0)
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "%s:%zu: field \"id\": duplicate id \"%.80s\" "
                          "(first on line %zu)", c->file, c->line, f.id,
                          first);
    if (st == FF_OK)
        st = set_reserve(ld->set, &ld->cap, err);
    if (st == FF_OK)
        st = load_record(c, &f, &ld->set->items[ld->set->count], &ld->rep,
                         err);

    /* A record whose every modality failed to load carries nothing. */
    if (st == FF_OK && ld->set->items[ld->set->count].present == 0) {
        char id[FF_ID_MAX_BYTES + 1];
        snprintf(id, sizeof(id), "%s", f.id);
        printable(id);
        ld->skipped++;
        FF_DEBUG("%s:%zu: record %s skipped: no modality could be loaded",
                 c->file, c->line, id);
    } else if (st == FF_OK) {
        ld->rep.label_counts[f.label]++;
        ld->set->count++;
    }
    json_decref(rec);
    return st;
}

/* Reads every line of f. */
static ff_status
load_lines(loader *ld, FILE *f, ff_error *err)
{
    char *buf = malloc(FF_MANIFEST_MAX_LINE);
    size_t len, lines = 0;
    int r;
    ff_status st = FF_OK;

    if (buf == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "manifest: no memory");
    while (st == FF_OK &&
           (r = read_line(f, buf, FF_MANIFEST_MAX_LINE, &len)) != 0) {
        ld->ctx.line++;
        if (r < 0) {
            st = ff_error_set(err, FF_ERR_TOO_LARGE,
                              "%s:%zu: line longer than %d bytes",
                              ld->ctx.file, ld->ctx.line,
                              FF_MANIFEST_MAX_LINE);
        } else if (!blank(buf, len)) {
            if (++lines > FF_MANIFEST_MAX_RECORDS)
                st = ff_error_set(err, FF_ERR_TOO_LARGE,
                                  "%s:%zu: more than %d records",
                                  ld->ctx.file, ld->ctx.line,
                                  FF_MANIFEST_MAX_RECORDS);
            else
                st = load_line(ld, buf, len, err);
        }
    }
    if (st == FF_OK && ferror(f))
        st = ff_error_set(err, FF_ERR_IO, "%s: read error", ld->ctx.file);
    free(buf);
    return st;
}

/* One summary line when some files could not be used. */
static void
warn_unreadable(const char *path, const ff_load_report *r, size_t skipped)
{
    size_t bad = r->unreadable[FF_MOD_IMAGE] + r->unreadable[FF_MOD_AUDIO] +
                 r->unreadable[FF_MOD_PEN];

    if (bad == 0 && skipped == 0)
        return;
    FF_WARN("%s: %zu modality files missing or unreadable (image %zu, "
            "audio %zu, pen %zu); %zu records skipped with no modality "
            "left; FEDFUSE_LOG=debug lists them",
            path, bad, r->unreadable[FF_MOD_IMAGE],
            r->unreadable[FF_MOD_AUDIO], r->unreadable[FF_MOD_PEN], skipped);
}

/* Opens a regular file as a stdio stream (never blocks on a FIFO). */
static FILE *
open_stream(const char *path, ff_error *err)
{
    int fd = ff_file_open_regular(path, err);
    FILE *f;

    if (fd < 0)
        return NULL;
    f = fdopen(fd, "rb");
    if (f == NULL) {
        ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

ff_status
ff_dataset_load(const char *path, ff_sample_set *set, ff_load_report *report,
                ff_error *err)
{
    char dirbuf[PATH_CAP];
    loader ld;
    FILE *f;
    ff_status st;

    memset(set, 0, sizeof(*set));
    memset(&ld, 0, sizeof(ld));
    if (snprintf(dirbuf, sizeof(dirbuf), "%s", path) >= (int)sizeof(dirbuf))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "manifest path too long");
    f = open_stream(path, err);
    if (f == NULL)
        return FF_ERR_IO;
    ld.ctx.file = path;
    ld.ctx.dir = dirname(dirbuf);
    ld.set = set;

    st = load_lines(&ld, f, err);
    if (st == FF_OK && set->count == 0)
        st = ff_error_set(err, FF_ERR_FORMAT, "%s: %s", path,
                          ld.skipped ? "no record could be loaded"
                                     : "no records (empty manifest)");
    fclose(f);
    id_set_cleanup(&ld.ids);
    if (st != FF_OK) {
        if (err != NULL)
            printable(err->msg);
        ff_dataset_cleanup(set);
        return st;
    }

    ld.rep.records = set->count;
    ld.rep.skipped = ld.skipped;
    warn_unreadable(path, &ld.rep, ld.skipped);
    if (report != NULL)
        *report = ld.rep;
    return FF_OK;
}

void
ff_dataset_cleanup(ff_sample_set *set)
{
    if (set == NULL)
        return;
    free(set->items);
    set->items = NULL;
    set->count = 0;
}

ff_status
ff_dataset_manifest_digest(const char *path, char out[65], ff_error *err)
{
    crypto_generichash_state state;
    unsigned char chunk[65536], hash[32];
    size_t n;
    FILE *f;

    if (sodium_init() < 0)
        return ff_error_set(err, FF_ERR_INTERNAL, "libsodium init failed");
    f = open_stream(path, err);
    if (f == NULL)
        return FF_ERR_IO;
    crypto_generichash_init(&state, NULL, 0, sizeof(hash));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        crypto_generichash_update(&state, chunk, n);
    if (ferror(f)) {
        fclose(f);
        return ff_error_set(err, FF_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    crypto_generichash_final(&state, hash, sizeof(hash));
    sodium_bin2hex(out, 65, hash, sizeof(hash));
    return FF_OK;
}
