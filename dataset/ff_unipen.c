/*
 * ff_unipen.c - a reader for UNIPEN category 1a (isolated digits).
 *
 * A 1a file names its ink with .INCLUDE lines (relative to include/) and
 * then lists .SEGMENT lines whose delineation picks components: the
 * non-empty .PEN_DOWN / .PEN_UP blocks, numbered from 0 across everything
 * the 1a file includes (restarting at .START_SET). The format is in
 * include/hpb/unipen.def and the unipen-1a README.
 */
#include "ff_sources.h"
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* unipen.def forbids nested includes; two data sets nest one level. */
#define INCLUDE_DEPTH_MAX 3
#define UNIPEN_FILE_MAX (64 * 1024 * 1024)
#define UNIPEN_MAX_FILES 100000
#define DELIN_MAX_PIECES 64

/* A component: one non-empty pen-down or pen-up block. */
typedef struct comp {
    int pen_down;
    size_t first, n;  /* points in ink.x/y */
} comp;

/* The ink of one 1a file and everything it includes. */
typedef struct ink {
    comp *comps;
    size_t ncomps, capc;
    int *x, *y;
    size_t npts, capp;
    int block;        /* -1 none, 0 in .PEN_UP, 1 in .PEN_DOWN */
    int block_open;   /* a component exists for the current block */
    double rate;      /* .POINTS_PER_SECOND in force, 0 if none */
} ink;

/* What the parse of one 1a file needs besides its ink. */
typedef struct parse_ctx {
    const char *include_root;
    const char *source;  /* 1a path relative to data/1a */
    int donor;
    size_t segment_no;
    ff_unipen *out;
    size_t point_cap, sample_cap;  /* allocated sizes in out */
} parse_ctx;

/* One piece of a delineation: points [from, to] of component c. */
typedef struct piece {
    size_t c, from, to;
} piece;

static void
ink_cleanup(ink *k)
{
    free(k->comps);
    free(k->x);
    free(k->y);
    memset(k, 0, sizeof(*k));
}

/* Appends point (x, y) to the current block, opening its component. */
static ff_status
ink_add_point(ink *k, int x, int y, ff_error *err)
{
    if (!k->block_open) {
        if (k->ncomps == k->capc) {
            size_t cap = k->capc ? k->capc * 2 : 256;
            comp *c = realloc(k->comps, cap * sizeof(comp));
            if (c == NULL)
                return ff_error_set(err, FF_ERR_NOMEM, "UNIPEN: no memory");
            k->comps = c;
            k->capc = cap;
        }
        k->comps[k->ncomps++] = (comp){k->block, k->npts, 0};
        k->block_open = 1;
    }
    if (k->npts == k->capp) {
        size_t cap = k->capp ? k->capp * 2 : 4096;
        int *nx = realloc(k->x, cap * sizeof(int));
        if (nx != NULL)
            k->x = nx;
        int *ny = realloc(k->y, cap * sizeof(int));
        if (ny != NULL)
            k->y = ny;
        if (nx == NULL || ny == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "UNIPEN: no memory");
        k->capp = cap;
    }
    k->x[k->npts] = x;
    k->y[k->npts] = y;
    k->npts++;
    k->comps[k->ncomps - 1].n++;
    return FF_OK;
}

/* ---- delineations ------------------------------------------------------ */

/* Parses "A" or "A:M" at *s; *has_pt tells whether ":M" was there. */
static int
parse_ref(const char **s, size_t *comp_no, size_t *pt, int *has_pt)
{
    char *end;
    unsigned long v = strtoul(*s, &end, 10);

    if (end == *s || **s == '-' || **s == '+')
        return 0;
    *comp_no = v;
    *has_pt = 0;
    *s = end;
    if (**s == ':') {
        const char *p = *s + 1;
        v = strtoul(p, &end, 10);
        if (end == p || *p == '-' || *p == '+')
            return 0;
        *pt = v;
        *has_pt = 1;
        *s = end;
    }
    return 1;
}

/* Last point index of component c, checked against the ink. */
static int
comp_ok(const ink *k, size_t c)
{
    return c < k->ncomps && k->comps[c].n > 0;
}

/* Resolves one item "A[:M]" or "A[:M]-B[:N]" into pieces. */
static int
resolve_item(const ink *k, const char **s, piece *pc, size_t *np)
{
    size_t a, b, m = 0, n = 0;
    int has_m, has_n;

    if (!parse_ref(s, &a, &m, &has_m) || !comp_ok(k, a))
        return 0;
    if (**s != '-') {
        /* "A" is all of A; "A:M" runs from point M to the end of A. */
        if (*np >= DELIN_MAX_PIECES)
            return 0;
        pc[(*np)++] = (piece){a, has_m ? m : 0, k->comps[a].n - 1};
        return has_m ? m < k->comps[a].n : 1;
    }
    (*s)++;
    if (!parse_ref(s, &b, &n, &has_n) || !comp_ok(k, b) || b < a)
        return 0;
    for (size_t c = a; c <= b; c++) {
        size_t from = c == a && has_m ? m : 0;
        size_t to = c == b && has_n ? n : k->comps[c].n - 1;
        if (*np >= DELIN_MAX_PIECES || to >= k->comps[c].n || from > to)
            return 0;
        pc[(*np)++] = (piece){c, from, to};
    }
    return 1;
}

/* Resolves a whole delineation "item,item,..." (no spaces). */
static int
resolve_delineation(const ink *k, const char *s, piece *pc, size_t *np)
{
    *np = 0;
    for (;;) {
        if (!resolve_item(k, &s, pc, np))
            return 0;
        if (*s == '\0')
            return 1;
        if (*s != ',')
            return 0;
        s++;
    }
}

/* ---- samples ----------------------------------------------------------- */

/* Grows the output point columns to hold extra more points. */
static ff_status
out_reserve(ff_unipen *u, size_t *cap, size_t extra, ff_error *err)
{
    size_t need = u->npoints + extra, ncap = *cap ? *cap : 65536;

    if (need <= *cap)
        return FF_OK;
    if (need > FF_UNIPEN_MAX_POINTS)
        return ff_error_set(err, FF_ERR_TOO_LARGE, "UNIPEN: over %d points",
                            FF_UNIPEN_MAX_POINTS);
    while (ncap < need)
        ncap *= 2;
    int *x = realloc(u->x, ncap * sizeof(int));
    if (x != NULL)
        u->x = x;
    int *y = realloc(u->y, ncap * sizeof(int));
    if (y != NULL)
        u->y = y;
    int *s = realloc(u->stroke, ncap * sizeof(int));
    if (s != NULL)
        u->stroke = s;
    double *t = realloc(u->t, ncap * sizeof(double));
    if (t != NULL)
        u->t = t;
    if (!x || !y || !s || !t)
        return ff_error_set(err, FF_ERR_NOMEM, "UNIPEN: no memory");
    *cap = ncap;
    return FF_OK;
}

/* Whether the digit in points [first, first + n) has a usable trace. */
static int
trace_usable(const ff_unipen *u, size_t first, size_t n)
{
    double *x, *y;
    float feat[FF_PEN_SIZE];
    int ok;

    if (n < 2)
        return 0;
    x = malloc(n * sizeof(double));
    y = malloc(n * sizeof(double));
    ok = x != NULL && y != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        x[i] = u->x[first + i];
        y[i] = u->y[first + i];
    }
    ok = ok && ff_pen_features(x, y, u->stroke + first, n, feat, NULL) ==
                   FF_OK;
    free(x);
    free(y);
    return ok;
}

/* Copies the pen-down points of the pieces into the output columns. */
static void
copy_pieces(ff_unipen *u, const ink *k, const piece *pc, size_t np)
{
    size_t tick = 0;
    int stroke = 0;

    for (size_t i = 0; i < np; i++) {
        const comp *c = &k->comps[pc[i].c];
        size_t len = pc[i].to - pc[i].from + 1;
        if (!c->pen_down) {
            tick += len;  /* time passes while the pen is up */
            continue;
        }
        for (size_t j = pc[i].from; j <= pc[i].to; j++) {
            u->x[u->npoints] = k->x[c->first + j];
            u->y[u->npoints] = k->y[c->first + j];
            u->stroke[u->npoints] = stroke;
            u->t[u->npoints] = (double)tick++ / k->rate;
            u->npoints++;
        }
        stroke++;
    }
}

/* Reads the label of a .SEGMENT line: exactly one digit in quotes. */
static int
segment_label(const char *s)
{
    const char *q = strchr(s, '"');

    if (q == NULL || q[1] < '0' || q[1] > '9' || q[2] != '"')
        return -1;
    return q[1] - '0';
}

/* Appends a sample record for the points from start to the end. */
static ff_status
commit_sample(parse_ctx *pc, size_t start, int label, size_t seg,
              double rate, ff_error *err)
{
    ff_unipen *u = pc->out;
    ff_unipen_sample *s;

    if (u->count == pc->sample_cap) {
        size_t cap = pc->sample_cap ? pc->sample_cap * 2 : 4096;
        s = realloc(u->samples, cap * sizeof(*s));
        if (s == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "UNIPEN: no memory");
        u->samples = s;
        pc->sample_cap = cap;
    }
    s = &u->samples[u->count++];
    s->donor = pc->donor;
    s->label = label;
    s->rate_hz = rate;
    s->first = start;
    s->npoints = u->npoints - start;
    snprintf(s->source, sizeof(s->source), "%s#%zu", pc->source, seg);
    return FF_OK;
}

/* Handles the arguments of one .SEGMENT line:
 * "type delineation quality "label"". */
static ff_status
add_segment(parse_ctx *pc, const ink *k, const char *args, ff_error *err)
{
    ff_unipen *u = pc->out;
    char type[64], delin[256];
    piece pieces[DELIN_MAX_PIECES];
    size_t np, total = 0, start = u->npoints, seg = pc->segment_no++;
    int label;
    ff_status st;

    /* Check the line before any point is copied. */
    u->stats.segments++;
    if (sscanf(args, "%63s %255s", type, delin) != 2 ||
        !resolve_delineation(k, delin, pieces, &np)) {
        u->stats.unresolved++;
        return FF_OK;
    }
    if ((label = segment_label(args)) < 0) {
        u->stats.bad_label++;
        return FF_OK;
    }
    if (!(k->rate > 0.0)) {
        u->stats.no_rate++;
        return FF_OK;
    }

    /* Copy the points out; roll back when the trace is not usable. */
    for (size_t i = 0; i < np; i++)
        total += pieces[i].to - pieces[i].from + 1;
    st = out_reserve(u, &pc->point_cap, total, err);
    if (st != FF_OK)
        return st;
    copy_pieces(u, k, pieces, np);
    if (!trace_usable(u, start, u->npoints - start)) {
        u->npoints = start;
        u->stats.degenerate++;
        return FF_OK;
    }
    return commit_sample(pc, start, label, seg, k->rate, err);
}

/* ---- files ------------------------------------------------------------- */

static ff_status parse_file(parse_ctx *pc, ink *k, const char *path,
                            int depth, ff_error *err);

/* Handles one keyword line; arg points past the keyword. */
static ff_status
keyword_line(parse_ctx *pc, ink *k, const char *kw, size_t kwlen,
             const char *arg, int depth, ff_error *err)
{
#define KW(name) (kwlen == sizeof(name) - 1 && memcmp(kw, name, kwlen) == 0)
    char path[4096], name[1024];

    k->block = -1;
    k->block_open = 0;
    if (KW(".PEN_DOWN") || KW(".PEN_UP")) {
        k->block = KW(".PEN_DOWN");
    } else if (KW(".START_SET")) {
        k->ncomps = 0;
        k->npts = 0;
    } else if (KW(".POINTS_PER_SECOND")) {
        k->rate = strtod(arg, NULL);
    } else if (KW(".SEGMENT") && depth == 0) {
        return add_segment(pc, k, arg, err);
    } else if (KW(".INCLUDE")) {
        if (sscanf(arg, "%1023s", name) != 1)
            return FF_OK;
        if (depth + 1 >= INCLUDE_DEPTH_MAX)
            return ff_error_set(err, FF_ERR_FORMAT, "%s: includes nest "
                                "deeper than %d", name, INCLUDE_DEPTH_MAX);
        ff_status st = ff_path_join(path, sizeof(path), pc->include_root,
                                    name, err);
        if (st != FF_OK)
            return st;
        return parse_file(pc, k, path, depth + 1, err);
    }
    return FF_OK;
#undef KW
}

/* Handles one line: a keyword, or a point "x y ..." inside a block. */
static ff_status
parse_line(parse_ctx *pc, ink *k, char *line, int depth, ff_error *err)
{
    char *end, *end2;
    long x, y;

    if (line[0] == '.') {
        size_t n = strcspn(line, " \t\r");
        const char *arg = line + n;
        arg += strspn(arg, " \t");
        return keyword_line(pc, k, line, n, arg, depth, err);
    }
    if (k->block < 0)
        return FF_OK;
    x = strtol(line, &end, 10);
    if (end == line)
        return FF_OK;
    y = strtol(end, &end2, 10);
    if (end2 == end)
        return FF_OK;
    return ink_add_point(k, (int)x, (int)y, err);
}

/* Parses the file at path (1a or included) line by line into k. */
static ff_status
parse_file(parse_ctx *pc, ink *k, const char *path, int depth, ff_error *err)
{
    unsigned char *text;
    char *save = NULL, *line;
    size_t len;
    ff_status st;

    st = ff_file_read_all(path, UNIPEN_FILE_MAX, &text, &len, err);
    if (st != FF_OK)
        return st;
    for (line = strtok_r((char *)text, "\n", &save);
         line != NULL && st == FF_OK; line = strtok_r(NULL, "\n", &save))
        st = parse_line(pc, k, line, depth, err);
    free(text);
    return st;
}

/* ---- donors ------------------------------------------------------------ */

typedef struct path_list {
    char **items;
    size_t count, cap;
} path_list;

static void
path_list_cleanup(path_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Collects the regular files under root/rel (recursively) as paths
 * relative to root. */
static ff_status
list_files(const char *root, const char *rel, path_list *l, ff_error *err)
{
    char dir[4096], sub[4096], full[4096];
    struct dirent *e;
    struct stat st;
    ff_status rc = FF_OK;
    DIR *d;

    rc = ff_path_join(dir, sizeof(dir), root, rel, err);
    if (rc != FF_OK)
        return rc;
    d = opendir(dir);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", dir, strerror(errno));
    while (rc == FF_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        rc = ff_path_join(sub, sizeof(sub), rel, e->d_name, err);
        if (rc == FF_OK)
            rc = ff_path_join(full, sizeof(full), root, sub, err);
        if (rc != FF_OK || stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = list_files(root, sub, l, err);
        } else if (S_ISREG(st.st_mode)) {
            if (l->count >= UNIPEN_MAX_FILES)
                rc = ff_error_set(err, FF_ERR_TOO_LARGE, "UNIPEN: over %d "
                                  "files", UNIPEN_MAX_FILES);
            else if (l->count == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 256;
                char **items = realloc(l->items, cap * sizeof(char *));
                if (items == NULL)
                    rc = ff_error_set(err, FF_ERR_NOMEM, "no memory");
                else {
                    l->items = items;
                    l->cap = cap;
                }
            }
            if (rc == FF_OK && (l->items[l->count] = strdup(sub)) == NULL)
                rc = ff_error_set(err, FF_ERR_NOMEM, "no memory");
            if (rc == FF_OK)
                l->count++;
        }
    }
    closedir(d);
    return rc;
}

static int
cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses every 1a file of one donor. */
static ff_status
load_donor(parse_ctx *pc, const char *dir, const char *donor, ink *k,
           ff_error *err)
{
    char root[4096], path[8192];
    path_list files = {0};
    ff_status st;

    if (snprintf(root, sizeof(root), "%s/data/1a", dir) >= (int)sizeof(root))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "UNIPEN: path too long");
    st = list_files(root, donor, &files, err);
    if (st == FF_OK)
        qsort(files.items, files.count, sizeof(char *), cmp_path);
    for (size_t i = 0; st == FF_OK && i < files.count; i++) {
        /* Each 1a file starts with no components and no rate. */
        k->ncomps = 0;
        k->npts = 0;
        k->block = -1;
        k->block_open = 0;
        k->rate = 0.0;
        pc->source = files.items[i];
        pc->segment_no = 0;
        st = ff_path_join(path, sizeof(path), root, files.items[i], err);
        if (st == FF_OK)
            st = parse_file(pc, k, path, 0, err);
        pc->out->stats.files++;
    }
    path_list_cleanup(&files);
    return st;
}

ff_status
ff_unipen_load(const char *dir, const char *const *donors, size_t ndonors,
               ff_unipen *u, ff_error *err)
{
    char include_root[4096];
    parse_ctx pc;
    ink k;
    ff_status st = FF_OK;

    memset(u, 0, sizeof(*u));
    memset(&pc, 0, sizeof(pc));
    memset(&k, 0, sizeof(k));
    if (snprintf(include_root, sizeof(include_root), "%s/include", dir) >=
        (int)sizeof(include_root))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "UNIPEN: path too long");
    pc.include_root = include_root;
    pc.out = u;
    for (size_t i = 0; st == FF_OK && i < ndonors; i++) {
        pc.donor = (int)i;
        st = load_donor(&pc, dir, donors[i], &k, err);
    }
    ink_cleanup(&k);
    if (st != FF_OK)
        ff_unipen_cleanup(u);
    return st;
}

void
ff_unipen_cleanup(ff_unipen *u)
{
    if (u == NULL)
        return;
    free(u->samples);
    free(u->x);
    free(u->y);
    free(u->stroke);
    free(u->t);
    memset(u, 0, sizeof(*u));
}

ff_status
ff_unipen_write_csv(const ff_unipen *u, size_t i, const char *path,
                    ff_error *err)
{
    const ff_unipen_sample *s;
    FILE *f;
    int ok;

    if (i >= u->count)
        return ff_error_set(err, FF_ERR_ARG, "UNIPEN sample %zu of %zu", i,
                            u->count);
    s = &u->samples[i];
    f = fopen(path, "w");
    if (f == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: %s", path, strerror(errno));
    ok = fputs("t,x,y,stroke\n", f) >= 0;
    for (size_t j = s->first; ok && j < s->first + s->npoints; j++)
        ok = fprintf(f, "%.6f,%d,%d,%d\n", u->t[j], u->x[j], u->y[j],
                     u->stroke[j]) > 0;
    if (fclose(f) != 0 || !ok)
        return ff_error_set(err, FF_ERR_IO, "%s: write failed", path);
    return FF_OK;
}
