/*
 * ff_fsdd.c - lists the Free Spoken Digit Dataset recordings by name
 * ({digit}_{speaker}_{index}.wav). The audio itself is read by the site
 * loader (ff_audio_load_wav), in place.
 */
#include "ff_sources.h"
#include "ff_dataset_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses "{digit}_{speaker}_{index}.wav"; speaker copied into spk. */
static int
parse_name(const char *name, int *digit, char *spk, size_t cap, int *rep)
{
    const char *u1, *u2, *dot;
    char *end;
    long r;

    if (name[0] < '0' || name[0] > '9' || name[1] != '_')
        return 0;
    u1 = name + 1;
    u2 = strrchr(name, '_');
    dot = strrchr(name, '.');
    if (u2 == NULL || u2 <= u1 + 1 || dot == NULL || dot < u2 ||
        strcmp(dot, ".wav") != 0 || (size_t)(u2 - u1 - 1) >= cap)
        return 0;
    r = strtol(u2 + 1, &end, 10);
    if (end != dot || end == u2 + 1 || r < 0 || r > 9999)
        return 0;
    *digit = name[0] - '0';
    memcpy(spk, u1 + 1, (size_t)(u2 - u1 - 1));
    spk[u2 - u1 - 1] = '\0';
    *rep = (int)r;
    return 1;
}

static int
cmp_clip(const void *a, const void *b)
{
    return strcmp(((const ff_fsdd_clip *)a)->name,
                  ((const ff_fsdd_clip *)b)->name);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of speaker name in f, adding it when new; -1 when full/no mem. */
static int
speaker_index(ff_fsdd *f, const char *name)
{
    for (int i = 0; i < f->nspeakers; i++)
        if (strcmp(f->speakers[i], name) == 0)
            return i;
    if (f->nspeakers >= FF_FSDD_MAX_SPEAKERS)
        return -1;
    f->speakers[f->nspeakers] = strdup(name);
    if (f->speakers[f->nspeakers] == NULL)
        return -1;
    return f->nspeakers++;
}

/* Adds one parsed clip to f (speaker stored by name for now). */
static ff_status
add_clip(ff_fsdd *f, size_t *cap, const char *name, int digit,
         const char *spk, int rep, ff_error *err)
{
    if (f->count >= FF_FSDD_MAX_CLIPS)
        return ff_error_set(err, FF_ERR_TOO_LARGE, "FSDD: over %d clips",
                            FF_FSDD_MAX_CLIPS);
    if (f->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        ff_fsdd_clip *c = realloc(f->clips, ncap * sizeof(*c));
        if (c == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "FSDD: no memory");
        f->clips = c;
        *cap = ncap;
    }
    ff_fsdd_clip *c = &f->clips[f->count];
    c->digit = digit;
    c->rep = rep;
    c->speaker = speaker_index(f, spk);
    c->name = strdup(name);
    if (c->speaker < 0 || c->name == NULL) {
        free(c->name);
        return ff_error_set(err, FF_ERR_FORMAT, "FSDD: more than %d "
                            "speakers, or no memory", FF_FSDD_MAX_SPEAKERS);
    }
    f->count++;
    return FF_OK;
}

/* Renumbers speakers in name order so the result does not depend on the
 * order readdir returns files in. */
static void
sort_speakers(ff_fsdd *f)
{
    char *old[FF_FSDD_MAX_SPEAKERS];
    int map[FF_FSDD_MAX_SPEAKERS];

    memcpy(old, f->speakers, sizeof(old));
    qsort(f->speakers, (size_t)f->nspeakers, sizeof(char *), cmp_str);
    for (int i = 0; i < f->nspeakers; i++)
        for (int j = 0; j < f->nspeakers; j++)
            if (old[i] == f->speakers[j])
                map[i] = j;
    for (size_t k = 0; k < f->count; k++)
        f->clips[k].speaker = map[f->clips[k].speaker];
    qsort(f->clips, f->count, sizeof(ff_fsdd_clip), cmp_clip);
}

ff_status
ff_fsdd_scan(const char *dir, ff_fsdd *f, ff_error *err)
{
    char path[PATH_MAX], real[PATH_MAX], spk[64];
    struct dirent *e;
    size_t cap = 0;
    ff_status st = FF_OK;
    DIR *d;

    memset(f, 0, sizeof(*f));
    st = ff_path_join(path, sizeof(path), dir, "recordings", err);
    if (st != FF_OK)
        return st;
    if (realpath(path, real) == NULL || (d = opendir(real)) == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    f->dir = strdup(real);
    if (f->dir == NULL)
        st = ff_error_set(err, FF_ERR_NOMEM, "FSDD: no memory");

    while (st == FF_OK && (e = readdir(d)) != NULL) {
        int digit, rep;
        if (parse_name(e->d_name, &digit, spk, sizeof(spk), &rep))
            st = add_clip(f, &cap, e->d_name, digit, spk, rep, err);
    }
    closedir(d);
    if (st == FF_OK && f->count == 0)
        st = ff_error_set(err, FF_ERR_FORMAT, "%s: no recordings", real);
    if (st != FF_OK) {
        ff_fsdd_cleanup(f);
        return st;
    }
    sort_speakers(f);
    return FF_OK;
}

void
ff_fsdd_cleanup(ff_fsdd *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->count; i++)
        free(f->clips[i].name);
    for (int i = 0; i < f->nspeakers; i++)
        free(f->speakers[i]);
    free(f->clips);
    free(f->dir);
    memset(f, 0, sizeof(*f));
}
