/*
 * ff_pen.c - pen harmonisation: a pen trace becomes FF_PEN_POINTS points
 * equally spaced along the written (pen-down) trace, normalised to the
 * digit's bounding box, with channels x, y, dx, dy, lift.
 */
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The CSV header every pen file starts with. */
#define PEN_HEADER "t,x,y,stroke"

/* A median time step within this factor of 1 / rate_hz matches the rate. */
#define RATE_TOLERANCE 2.0

/* Index of the segment [i, i + 1] that holds arc position s, starting the
 * search at i (positions are visited in increasing order). Segments that
 * jump between strokes or have no length are passed over. */
static size_t
segment_at(const double *cum, const int *stroke, size_t n, size_t i,
           double s)
{
    while (i + 2 < n &&
           (cum[i + 1] < s || cum[i + 1] <= cum[i] ||
            stroke[i] != stroke[i + 1]))
        i++;
    return i;
}

/* Copies x, y into xs, ys scaled by one power of two so that every
 * coordinate lies in (-1, 1). Huge but finite coordinates (1e308) would
 * otherwise overflow the differences, hypot and the arc length; a
 * power-of-two scale is exact, and the features, normalised to the
 * bounding box, do not depend on it. Errors on a non-finite point. */
static ff_status
rescale(const double *x, const double *y, size_t n, double *xs, double *ys,
        ff_error *err)
{
    double top = 0.0;
    int e = 0;

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return ff_error_set(err, FF_ERR_FORMAT,
                                "pen: point %zu is not finite", i);
        top = fmax(top, fmax(fabs(x[i]), fabs(y[i])));
    }
    if (top > 0.0)
        (void)frexp(top, &e);
    for (size_t i = 0; i < n; i++) {
        xs[i] = ldexp(x[i], -e);
        ys[i] = ldexp(y[i], -e);
    }
    return FF_OK;
}

/* Fills cum[] with the pen-down arc length of a rescaled trace; errors
 * when it is zero or not finite. */
static ff_status
arc_lengths(const double *x, const double *y, const int *stroke, size_t n,
            double *cum, ff_error *err)
{
    cum[0] = 0.0;
    for (size_t i = 1; i < n; i++) {
        double d = stroke[i] == stroke[i - 1] ? hypot(x[i] - x[i - 1],
                                                      y[i] - y[i - 1])
                                              : 0.0;
        cum[i] = cum[i - 1] + d;
    }
    if (!isfinite(cum[n - 1]))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "pen: the arc length is not finite");
    if (!(cum[n - 1] > 0.0))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "pen: the trace has no pen-down length");
    return FF_OK;
}

/* Centre and scale of the bounding box; errors when it has no extent
 * or an extent that is not finite. */
static ff_status
bounding_box(const double *x, const double *y, size_t n, double *cx,
             double *cy, double *scale, ff_error *err)
{
    double x0 = x[0], x1 = x[0], y0 = y[0], y1 = y[0];

    for (size_t i = 1; i < n; i++) {
        x0 = fmin(x0, x[i]);
        x1 = fmax(x1, x[i]);
        y0 = fmin(y0, y[i]);
        y1 = fmax(y1, y[i]);
    }
    *cx = 0.5 * x0 + 0.5 * x1;
    *cy = 0.5 * y0 + 0.5 * y1;
    *scale = fmax(x1 - x0, y1 - y0);
    if (!isfinite(*scale) || !isfinite(*cx) || !isfinite(*cy))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "pen: the extent is not finite");
    if (!(*scale > 0.0))
        return ff_error_set(err, FF_ERR_FORMAT, "pen: zero extent");
    return FF_OK;
}

/* Places FF_PEN_POINTS points at equal arc steps along a rescaled trace
 * whose arc lengths and bounding box are known; errors when a feature
 * comes out non-finite. */
static ff_status
resample(const double *x, const double *y, const int *stroke, size_t n,
         const double *cum, double cx, double cy, double scale,
         float out[FF_PEN_SIZE], ff_error *err)
{
    double px = 0.0, py = 0.0, total = cum[n - 1];
    int prev_stroke = 0;
    size_t seg = 0;

    for (int j = 0; j < FF_PEN_POINTS; j++) {
        double s = j == FF_PEN_POINTS - 1 ? total
                                          : total * j / (FF_PEN_POINTS - 1);
        seg = segment_at(cum, stroke, n, seg, s);
        double len = cum[seg + 1] - cum[seg];
        double t = len > 0.0 ? (s - cum[seg]) / len : 0.0;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
        double qx = (x[seg] + t * (x[seg + 1] - x[seg]) - cx) / scale;
        double qy = (y[seg] + t * (y[seg + 1] - y[seg]) - cy) / scale;

        if (!isfinite(qx) || !isfinite(qy))
            return ff_error_set(err, FF_ERR_FORMAT,
                                "pen: point %d of the features is not "
                                "finite", j);
        out[0 * FF_PEN_POINTS + j] = (float)qx;
        out[1 * FF_PEN_POINTS + j] = (float)qy;
        out[2 * FF_PEN_POINTS + j] = j > 0 ? (float)(qx - px) : 0.0f;
        out[3 * FF_PEN_POINTS + j] = j > 0 ? (float)(qy - py) : 0.0f;
        out[4 * FF_PEN_POINTS + j] =
            j > 0 && stroke[seg] != prev_stroke ? 1.0f : 0.0f;
        px = qx;
        py = qy;
        prev_stroke = stroke[seg];
    }
    return FF_OK;
}

ff_status
ff_pen_features(const double *x, const double *y, const int *stroke,
                size_t n, float out[FF_PEN_SIZE], ff_error *err)
{
    double cx, cy, scale;
    double *buf, *xs, *ys, *cum;
    ff_status st;

    if (n < 2)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "pen: %zu points, at least 2 needed", n);
    if (n > SIZE_MAX / (3 * sizeof(double)))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "pen: %zu points", n);
    buf = malloc(3 * sizeof(double) * n);
    if (buf == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "pen: no memory");
    xs = buf;
    ys = buf + n;
    cum = buf + 2 * n;

    /* Rescale, measure, then walk the trace once. */
    st = rescale(x, y, n, xs, ys, err);
    if (st == FF_OK)
        st = arc_lengths(xs, ys, stroke, n, cum, err);
    if (st == FF_OK)
        st = bounding_box(xs, ys, n, &cx, &cy, &scale, err);
    if (st == FF_OK)
        st = resample(xs, ys, stroke, n, cum, cx, cy, scale, out, err);
    free(buf);
    return st;
}

/* A parsed pen file: columns of equal length. */
typedef struct pen_trace {
    double *t, *x, *y;
    int *stroke;
    size_t n;
} pen_trace;

static void
trace_cleanup(pen_trace *tr)
{
    free(tr->t);
    free(tr->x);
    free(tr->y);
    free(tr->stroke);
    memset(tr, 0, sizeof(*tr));
}

/* Parses one data line "t,x,y,stroke" into slot i of tr. */
static ff_status
parse_point(const char *path, size_t lineno, char *line, pen_trace *tr,
            size_t i, ff_error *err)
{
    double v[3];
    char *p = line, *end;
    long s;

    for (int c = 0; c < 3; c++) {
        v[c] = strtod(p, &end);
        if (end == p || *end != ',' || !isfinite(v[c]))
            return ff_error_set(err, FF_ERR_FORMAT,
                                "%s:%zu: column %d is not a finite number",
                                path, lineno, c + 1);
        p = end + 1;
    }
    s = strtol(p, &end, 10);
    while (*end == ' ' || *end == '\r' || *end == '\t')
        end++;
    if (end == p || *end != '\0' || s < 0 || s > 1000000)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s:%zu: stroke is not an integer in 0..1000000",
                            path, lineno);
    if (i > 0 && (v[0] < tr->t[i - 1] || s < tr->stroke[i - 1]))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s:%zu: %s decreases", path, lineno,
                            v[0] < tr->t[i - 1] ? "time t" : "stroke");
    tr->t[i] = v[0];
    tr->x[i] = v[1];
    tr->y[i] = v[2];
    tr->stroke[i] = (int)s;
    return FF_OK;
}

/* Splits text into lines and parses header and points into tr. */
static ff_status
parse_csv(const char *path, char *text, pen_trace *tr, ff_error *err)
{
    size_t lines = 1, lineno = 0;
    char *save = NULL, *line;

    /* Allocate for the number of lines, which the file size bounds. */
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    if (lines - 1 > FF_PEN_MAX_POINTS)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s: more than %d points", path,
                            FF_PEN_MAX_POINTS);
    tr->t = malloc(sizeof(double) * lines);
    tr->x = malloc(sizeof(double) * lines);
    tr->y = malloc(sizeof(double) * lines);
    tr->stroke = malloc(sizeof(int) * lines);
    if (!tr->t || !tr->x || !tr->y || !tr->stroke)
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);

    /* The header, then one point per non-empty line. */
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        lineno++;
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, PEN_HEADER) != 0)
                return ff_error_set(err, FF_ERR_FORMAT,
                                    "%s:1: header is not \"" PEN_HEADER "\"",
                                    path);
            continue;
        }
        if (len == 0)
            continue;
        ff_status st = parse_point(path, lineno, line, tr, tr->n, err);
        if (st != FF_OK)
            return st;
        tr->n++;
    }
    return FF_OK;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Checks that the median step within strokes is near 1 / rate_hz. */
static ff_status
check_rate(const char *path, const pen_trace *tr, double rate_hz,
           ff_error *err)
{
    double *dt = malloc(sizeof(double) * (tr->n > 0 ? tr->n : 1));
    double median, expect = 1.0 / rate_hz;
    size_t m = 0;

    if (dt == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "%s: no memory", path);
    for (size_t i = 1; i < tr->n; i++)
        if (tr->stroke[i] == tr->stroke[i - 1])
            dt[m++] = tr->t[i] - tr->t[i - 1];
    if (m == 0) {
        free(dt);
        return FF_OK;
    }
    qsort(dt, m, sizeof(double), cmp_double);
    median = dt[m / 2];
    free(dt);
    if (median < expect / RATE_TOLERANCE || median > expect * RATE_TOLERANCE)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s: time steps (median %.6g s) do not match "
                            "rate_hz %.6g", path, median, rate_hz);
    return FF_OK;
}

ff_status
ff_pen_load_csv(const char *path, double rate_hz, float out[FF_PEN_SIZE],
                ff_error *err)
{
    unsigned char *text = NULL;
    size_t len = 0;
    pen_trace tr;
    ff_status st;

    memset(&tr, 0, sizeof(tr));
    if (!(rate_hz >= 0.0) || !isfinite(rate_hz))
        return ff_error_set(err, FF_ERR_ARG, "%s: rate_hz %g is invalid",
                            path, rate_hz);
    st = ff_file_read_all(path, FF_FILE_MAX_BYTES, &text, &len, err);
    if (st != FF_OK)
        return st;
    if (memchr(text, '\0', len) != NULL) {
        free(text);
        return ff_error_set(err, FF_ERR_FORMAT, "%s: NUL byte in CSV", path);
    }

    st = parse_csv(path, (char *)text, &tr, err);
    if (st == FF_OK && rate_hz > 0.0)
        st = check_rate(path, &tr, rate_hz, err);
    if (st == FF_OK) {
        st = ff_pen_features(tr.x, tr.y, tr.stroke, tr.n, out, err);
        if (st != FF_OK)
            ff_error_wrap(err, st, "%s", path);
    }
    trace_cleanup(&tr);
    free(text);
    return st;
}
