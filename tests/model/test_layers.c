/*
 * test_layers - every layer's backward against central finite differences,
 * backward accumulation (a second call doubles the gradients), and every
 * BLAS path against its plain-loop reference on odd shapes.
 *
 * Finite differences: the scalar is L = sum_i r_i * out_i with fixed random
 * r (for softmax cross-entropy, the mean loss itself), and each input or
 * weight is moved by +-h. The error of one entry is
 *   |analytic - numeric| / max(|analytic| + |numeric|, 1e-2)
 * and must stay below FD_TOL. Inputs of ReLU and max pool are kept at
 * least 0.05 away from their kinks so +-h never crosses one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff_input.h"
#include "ff_layers.h"
#include "ff_rng.h"

#define FD_STEP 1e-2f
#define FD_TOL 1e-2
#define FD_FLOOR 1e-2
#define ACC_TOL 1e-5   /* relative: second backward = 2 x first */
#define REF_TOL 1e-4   /* relative to max(1, largest reference value) */

/* ---- helpers ----------------------------------------------------------- */

static float *
vec(size_t n)
{
    float *v = calloc(n ? n : 1, sizeof(float));

    assert_non_null(v);
    return v;
}

static void
fill_uniform(float *v, size_t n, ff_rng *r, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * (float)ff_rng_uniform(r);
}

static double
dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* A layer under test: forward() recomputes its output from the current
 * buffers and returns L = r . out. */
typedef double (*loss_fn)(void *ctx);

/* Compares g (analytic dL/dx) with central differences of f over x;
 * returns the largest error. */
static double
fd_compare(loss_fn f, void *ctx, float *x, const float *g, size_t n)
{
    double worst = 0.0;

    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_STEP;
        double lp = f(ctx);
        x[i] = keep - FD_STEP;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * FD_STEP);
        double den = fabs(num) + fabs(g[i]);
        double e = fabs(num - g[i]) / (den > FD_FLOOR ? den : FD_FLOOR);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Largest relative deviation of second from 2 * first. */
static double
double_check(const float *first, const float *second, size_t n)
{
    double worst = 0.0;

    for (size_t i = 0; i < n; i++) {
        double want = 2.0 * first[i];
        double e = fabs(second[i] - want) / (fabs(want) > 1.0 ? fabs(want)
                                                              : 1.0);
        worst = e > worst ? e : worst;
    }
    return worst;
}

static double
max_abs(const float *v, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++)
        m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

static double
max_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++)
        m = fabs((double)a[i] - b[i]) > m ? fabs((double)a[i] - b[i]) : m;
    return m;
}

/* Reports one gradient check and asserts it. */
static void
report_fd(const char *layer, const char *what, double err)
{
    printf("  %-10s d%-6s max rel err %.2e (tol %.0e)\n", layer, what, err,
           FD_TOL);
    assert_true(err < FD_TOL);
}

static void
report_acc(const char *layer, const char *what, double err)
{
    printf("  %-10s d%-6s twice = 2x once: max rel dev %.2e (tol %.0e)\n",
           layer, what, err, ACC_TOL);
    assert_true(err < ACC_TOL);
}

/* ---- linear ------------------------------------------------------------ */

typedef struct lin_ctx {
    int B, I, O;
    float *x, *w, *b, *out, *r;
} lin_ctx;

static double
lin_loss(void *p)
{
    lin_ctx *c = p;

    ff_linear_forward(c->out, c->x, c->w, c->b, c->B, c->I, c->O);
    return dot(c->r, c->out, (size_t)c->B * c->O);
}

static void
test_linear_gradients(void **state)
{
    lin_ctx c = {3, 5, 4, NULL, NULL, NULL, NULL, NULL};
    size_t nx = 15, nw = 20, no = 12;
    float *dx = vec(nx), *dw = vec(nw), *db = vec(4);
    float *dx2 = vec(nx), *dw2 = vec(nw), *db2 = vec(4);
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 11);
    c.x = vec(nx), c.w = vec(nw), c.b = vec(4), c.out = vec(no), c.r = vec(no);
    fill_uniform(c.x, nx, &r, -1, 1);
    fill_uniform(c.w, nw, &r, -1, 1);
    fill_uniform(c.b, 4, &r, -1, 1);
    fill_uniform(c.r, no, &r, -1, 1);

    /* One backward from zero, then a second on top of it. */
    ff_linear_backward(dx, dw, db, c.r, c.x, c.w, 3, 5, 4);
    memcpy(dx2, dx, nx * 4), memcpy(dw2, dw, nw * 4), memcpy(db2, db, 16);
    ff_linear_backward(dx2, dw2, db2, c.r, c.x, c.w, 3, 5, 4);

    report_fd("linear", "in", fd_compare(lin_loss, &c, c.x, dx, nx));
    report_fd("linear", "w", fd_compare(lin_loss, &c, c.w, dw, nw));
    report_fd("linear", "b", fd_compare(lin_loss, &c, c.b, db, 4));
    report_acc("linear", "in", double_check(dx, dx2, nx));
    report_acc("linear", "w", double_check(dw, dw2, nw));
    report_acc("linear", "b", double_check(db, db2, 4));
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.r);
    free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2);
}

/* ---- conv2d / conv1d (one context for both) ---------------------------- */

typedef struct conv_ctx {
    int two_d;
    ff_conv2d_dims d2;
    ff_conv1d_dims d1;
    float *x, *w, *b, *out, *col, *r;
    size_t nx, nw, nb, no, ncol;
} conv_ctx;

static double
conv_loss(void *p)
{
    conv_ctx *c = p;

    if (c->two_d)
        ff_conv2d_forward(c->out, c->col, c->x, c->w, c->b, &c->d2);
    else
        ff_conv1d_forward(c->out, c->col, c->x, c->w, c->b, &c->d1);
    return dot(c->r, c->out, c->no);
}

static void
conv_backward(conv_ctx *c, float *dx, float *dw, float *db, float *dcol)
{
    (void)conv_loss(c); /* refresh col */
    if (c->two_d)
        ff_conv2d_backward(dx, dw, db, dcol, c->r, c->col, c->w, &c->d2);
    else
        ff_conv1d_backward(dx, dw, db, dcol, c->r, c->col, c->w, &c->d1);
}

static void
conv_gradients(conv_ctx *c, const char *name)
{
    float *dx = vec(c->nx), *dw = vec(c->nw), *db = vec(c->nb);
    float *dx2 = vec(c->nx), *dw2 = vec(c->nw), *db2 = vec(c->nb);
    float *dcol = vec(c->ncol);
    ff_rng r;

    ff_rng_init(&r, 12);
    c->x = vec(c->nx), c->w = vec(c->nw), c->b = vec(c->nb);
    c->out = vec(c->no), c->r = vec(c->no), c->col = vec(c->ncol);
    fill_uniform(c->x, c->nx, &r, -1, 1);
    fill_uniform(c->w, c->nw, &r, -1, 1);
    fill_uniform(c->b, c->nb, &r, -1, 1);
    fill_uniform(c->r, c->no, &r, -1, 1);

    conv_backward(c, dx, dw, db, dcol);
    memcpy(dx2, dx, c->nx * 4), memcpy(dw2, dw, c->nw * 4);
    memcpy(db2, db, c->nb * 4);
    conv_backward(c, dx2, dw2, db2, dcol);

    report_fd(name, "in", fd_compare(conv_loss, c, c->x, dx, c->nx));
    report_fd(name, "w", fd_compare(conv_loss, c, c->w, dw, c->nw));
    report_fd(name, "b", fd_compare(conv_loss, c, c->b, db, c->nb));
    report_acc(name, "in", double_check(dx, dx2, c->nx));
    report_acc(name, "w", double_check(dw, dw2, c->nw));
    report_acc(name, "b", double_check(db, db2, c->nb));
    free(c->x), free(c->w), free(c->b), free(c->out), free(c->r);
    free(c->col), free(dcol);
    free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2);
}

static void
test_conv2d_gradients(void **state)
{
    conv_ctx c = {0};

    (void)state;
    c.two_d = 1;
    c.d2 = (ff_conv2d_dims){2, 5, 4, 3, 2, 3, 1};
    c.nx = 2 * 5 * 4 * 3;
    c.nw = 2 * 9 * 3;
    c.nb = 2;
    c.no = 2 * 5 * 4 * 2;
    c.ncol = ff_conv2d_col_rows(&c.d2) * ff_conv2d_col_cols(&c.d2);
    conv_gradients(&c, "conv2d");
}

static void
test_conv1d_gradients(void **state)
{
    conv_ctx c = {0};

    (void)state;
    c.d1 = (ff_conv1d_dims){2, 7, 3, 4, 5, 2};
    c.nx = 2 * 7 * 3;
    c.nw = 4 * 5 * 3;
    c.nb = 4;
    c.no = 2 * 7 * 4;
    c.ncol = ff_conv1d_col_rows(&c.d1) * ff_conv1d_col_cols(&c.d1);
    conv_gradients(&c, "conv1d");
}

/* ---- ReLU, pools, global average pool, soft clip ---------------------- */

/* One context for the layers without weights. */
typedef struct pool_ctx {
    int kind; /* 0 relu, 1 maxpool2d, 2 maxpool1d, 3 gap, 4 soft clip */
    float *x, *out, *r;
    int32_t *arg;
    size_t nx, no;
} pool_ctx;

static double
pool_loss(void *p)
{
    pool_ctx *c = p;

    switch (c->kind) {
    case 0: ff_relu_forward(c->out, c->x, c->nx); break;
    case 1: ff_maxpool2d_forward(c->out, c->arg, c->x, 2, 4, 6, 3, 2); break;
    case 2: ff_maxpool1d_forward(c->out, c->arg, c->x, 2, 8, 3, 2); break;
    case 3: ff_gap_forward(c->out, c->x, 2, 5, 3); break;
    default: ff_softclip_forward(c->out, c->x, c->nx, 1.5f); break;
    }
    return dot(c->r, c->out, c->no);
}

static void
pool_backward(pool_ctx *c, float *dx)
{
    (void)pool_loss(c);
    switch (c->kind) {
    case 0: ff_relu_backward(dx, c->r, c->out, c->nx); break;
    case 1: ff_maxpool2d_backward(dx, c->r, c->arg, c->no); break;
    case 2: ff_maxpool1d_backward(dx, c->r, c->arg, c->no); break;
    case 3: ff_gap_backward(dx, c->r, 2, 5, 3); break;
    default: ff_softclip_backward(dx, c->r, c->out, c->nx, 1.5f); break;
    }
}

/* Distinct values 0.1 apart, shuffled, shifted so none is near 0. */
static void
fill_spaced(float *v, size_t n, ff_rng *r)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 0.1f * (float)i - 0.1f * (float)(n / 2) + 0.05f;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ff_rng_below(r, i);
        float t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void
pool_case(int kind, size_t nx, size_t no, const char *name)
{
    pool_ctx c = {kind, vec(nx), vec(no), vec(no), NULL, nx, no};
    float *dx = vec(nx), *dx2 = vec(nx);
    ff_rng r;

    c.arg = calloc(no, sizeof(int32_t));
    assert_non_null(c.arg);
    ff_rng_init(&r, 13 + (uint64_t)kind);
    fill_spaced(c.x, nx, &r);
    fill_uniform(c.r, no, &r, -1, 1);

    pool_backward(&c, dx);
    memcpy(dx2, dx, nx * 4);
    pool_backward(&c, dx2);
    report_fd(name, "in", fd_compare(pool_loss, &c, c.x, dx, nx));
    report_acc(name, "in", double_check(dx, dx2, nx));
    free(c.x), free(c.out), free(c.r), free(c.arg), free(dx), free(dx2);
}

static void
test_relu_pool_gap_clip_gradients(void **state)
{
    (void)state;
    pool_case(0, 50, 50, "relu");
    pool_case(1, 2 * 4 * 6 * 3, 2 * 2 * 3 * 3, "maxpool2d");
    pool_case(2, 2 * 8 * 3, 2 * 4 * 3, "maxpool1d");
    pool_case(3, 2 * 5 * 3, 2 * 3, "gap");
    pool_case(4, 60, 60, "softclip"); /* inputs -3..3: linear to saturated */
}

/* ---- embedding bag ----------------------------------------------------- */

typedef struct bag_ctx {
    float *table, *out, *r;
    uint16_t ids[3 * 6];
    int32_t len[3];
} bag_ctx;

static double
bag_loss(void *p)
{
    bag_ctx *c = p;

    ff_embag_forward(c->out, c->ids, c->len, c->table, 3, 6, 4);
    return dot(c->r, c->out, 12);
}

static void
test_embag_gradients(void **state)
{
    bag_ctx c = {vec(40), vec(12), vec(12), {0}, {1, 4, 6}};
    float *dt = vec(40), *dt2 = vec(40);
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 14);
    fill_uniform(c.table, 40, &r, -1, 1);
    fill_uniform(c.r, 12, &r, -1, 1);
    for (int i = 0; i < 18; i++)
        c.ids[i] = (uint16_t)ff_rng_below(&r, 10);
    c.ids[7] = c.ids[6]; /* a repeated id counts twice */

    (void)bag_loss(&c);
    ff_embag_backward(dt, c.r, c.ids, c.len, 3, 6, 4);
    memcpy(dt2, dt, 40 * 4);
    ff_embag_backward(dt2, c.r, c.ids, c.len, 3, 6, 4);
    report_fd("embag", "table", fd_compare(bag_loss, &c, c.table, dt, 40));
    report_acc("embag", "table", double_check(dt, dt2, 40));
    free(c.table), free(c.out), free(c.r), free(dt), free(dt2);
}

/* ---- fusion ------------------------------------------------------------ */

typedef struct fus_ctx {
    float *emb[FF_MOD_COUNT];
    int32_t pos[4 * FF_MOD_COUNT];
    float *z, *r;
} fus_ctx;

static double
fus_loss(void *p)
{
    fus_ctx *c = p;

    ff_fusion_forward(c->z, (const float *const *)c->emb, c->pos, 4,
                      FF_MOD_COUNT, 3);
    return dot(c->r, c->z, 12);
}

static void
test_fusion_gradients(void **state)
{
    /* 4 records: all four; image only; audio + text; pen + image. Each
     * modality matrix has 3 rows; the rows no record uses (image none,
     * others row 2) hold NaN, which must never be read. */
    static const int32_t pos[4 * FF_MOD_COUNT] = {
        0, 0, 0, 0,  1, -1, -1, -1,  -1, 1, -1, 1,  2, -1, 1, -1};
    static const int used_rows[FF_MOD_COUNT] = {3, 2, 2, 2};
    fus_ctx c = {{NULL}, {0}, vec(12), vec(12)};
    float *dm[FF_MOD_COUNT], *dm2[FF_MOD_COUNT];
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 15);
    memcpy(c.pos, pos, sizeof(pos));
    fill_uniform(c.r, 12, &r, -1, 1);
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        c.emb[m] = vec(9), dm[m] = vec(9), dm2[m] = vec(9);
        fill_uniform(c.emb[m], 9, &r, -1, 1);
        for (int i = used_rows[m] * 3; i < 9; i++)
            c.emb[m][i] = NAN;
    }

    double l = fus_loss(&c);
    assert_true(isfinite(l));
    ff_fusion_backward(dm, c.r, c.pos, 4, FF_MOD_COUNT, 3);
    for (int m = 0; m < FF_MOD_COUNT; m++)
        memcpy(dm2[m], dm[m], 9 * 4);
    ff_fusion_backward(dm2, c.r, c.pos, 4, FF_MOD_COUNT, 3);

    /* Only the rows in use are perturbed; unused rows get exactly zero. */
    for (int m = 0; m < FF_MOD_COUNT; m++) {
        size_t n = (size_t)used_rows[m] * 3;
        report_fd("fusion", ff_modality_name((ff_modality)m),
                  fd_compare(fus_loss, &c, c.emb[m], dm[m], n));
        report_acc("fusion", ff_modality_name((ff_modality)m),
                   double_check(dm[m], dm2[m], n));
        for (size_t i = n; i < 9; i++)
            assert_true(dm[m][i] == 0.0f);
    }
    for (int m = 0; m < FF_MOD_COUNT; m++)
        free(c.emb[m]), free(dm[m]), free(dm2[m]);
    free(c.z), free(c.r);
}

/* ---- softmax cross-entropy --------------------------------------------- */

typedef struct xent_ctx {
    float logits[15], prob[15];
    int32_t labels[3];
} xent_ctx;

static double
xent_loss(void *p)
{
    xent_ctx *c = p;

    return ff_xent_forward(c->prob, c->logits, c->labels, 3, 5) / 3.0;
}

static void
test_xent_gradients(void **state)
{
    xent_ctx c = {{0}, {0}, {0, 3, 4}};
    float d[15] = {0}, d2[15];
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 16);
    fill_uniform(c.logits, 15, &r, -3, 3);
    (void)xent_loss(&c);
    ff_xent_backward(d, c.prob, c.labels, 3, 5, 1.0f / 3.0f);
    memcpy(d2, d, sizeof(d));
    ff_xent_backward(d2, c.prob, c.labels, 3, 5, 1.0f / 3.0f);
    report_fd("xent", "logits", fd_compare(xent_loss, &c, c.logits, d, 15));
    report_acc("xent", "logits", double_check(d, d2, 15));

    /* Huge logits must not overflow. */
    c.logits[0] = 1e30f;
    assert_true(isfinite(ff_xent_forward(c.prob, c.logits, c.labels, 3, 5)));
}

/* ---- BLAS paths against the reference loops ---------------------------- */

static void
check_ref(const char *what, const float *fast, const float *ref, size_t n,
          double *worst)
{
    double d = max_diff(fast, ref, n), scale = max_abs(ref, n);
    double tol = REF_TOL * (scale > 1.0 ? scale : 1.0);

    if (d > *worst)
        *worst = d;
    if (d > tol)
        printf("  %s differs: %.3e > tol %.3e\n", what, d, tol);
    assert_true(d <= tol);
}

static void
test_linear_blas_vs_ref(void **state)
{
    static const int shapes[][3] = {
        {1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {64, 1568, 64}, {5, 64, 10}};
    double worst = 0.0;
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 21);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int B = shapes[s][0], I = shapes[s][1], O = shapes[s][2];
        size_t nx = (size_t)B * I, nw = (size_t)O * I, no = (size_t)B * O;
        float *x = vec(nx), *w = vec(nw), *b = vec(O), *g = vec(no);
        float *o1 = vec(no), *o2 = vec(no);
        float *dx1 = vec(nx), *dx2 = vec(nx), *dw1 = vec(nw), *dw2 = vec(nw);
        float *db1 = vec(O), *db2 = vec(O);

        fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1);
        fill_uniform(b, O, &r, -1, 1), fill_uniform(g, no, &r, -1, 1);
        ff_linear_forward(o1, x, w, b, B, I, O);
        ff_linear_forward_ref(o2, x, w, b, B, I, O);
        check_ref("linear out", o1, o2, no, &worst);
        ff_linear_backward(dx1, dw1, db1, g, x, w, B, I, O);
        ff_linear_backward_ref(dx2, dw2, db2, g, x, w, B, I, O);
        check_ref("linear din", dx1, dx2, nx, &worst);
        check_ref("linear dw", dw1, dw2, nw, &worst);
        check_ref("linear db", db1, db2, O, &worst);
        free(x), free(w), free(b), free(g), free(o1), free(o2);
        free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
    }
    printf("  linear BLAS vs loops: max abs diff %.3e (tol %.0e x scale)\n",
           worst, REF_TOL);
}

static void
test_conv2d_blas_vs_ref(void **state)
{
    static const ff_conv2d_dims shapes[] = {
        {3, 7, 5, 1, 4, 3, 1}, {2, 9, 9, 5, 7, 5, 2}, {1, 6, 8, 3, 2, 3, 0},
        {4, 28, 28, 1, 16, 3, 1}, {2, 14, 14, 16, 32, 3, 1}};
    double worst = 0.0;
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 22);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const ff_conv2d_dims *d = &shapes[s];
        size_t nx = (size_t)d->batch * d->height * d->width * d->in_ch;
        size_t nw = (size_t)d->out_ch * ff_conv2d_col_cols(d);
        size_t no = ff_conv2d_col_rows(d) * d->out_ch;
        size_t nc = ff_conv2d_col_rows(d) * ff_conv2d_col_cols(d);
        float *x = vec(nx), *w = vec(nw), *b = vec(d->out_ch), *g = vec(no);
        float *o1 = vec(no), *o2 = vec(no), *col = vec(nc), *dcol = vec(nc);
        float *dx1 = vec(nx), *dx2 = vec(nx), *dw1 = vec(nw), *dw2 = vec(nw);
        float *db1 = vec(d->out_ch), *db2 = vec(d->out_ch);

        fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1);
        fill_uniform(b, d->out_ch, &r, -1, 1), fill_uniform(g, no, &r, -1, 1);
        ff_conv2d_forward(o1, col, x, w, b, d);
        ff_conv2d_forward_ref(o2, x, w, b, d);
        check_ref("conv2d out", o1, o2, no, &worst);
        ff_conv2d_backward(dx1, dw1, db1, dcol, g, col, w, d);
        ff_conv2d_backward_ref(dx2, dw2, db2, g, x, w, d);
        check_ref("conv2d din", dx1, dx2, nx, &worst);
        check_ref("conv2d dw", dw1, dw2, nw, &worst);
        check_ref("conv2d db", db1, db2, d->out_ch, &worst);
        free(x), free(w), free(b), free(g), free(o1), free(o2), free(col);
        free(dcol), free(dx1), free(dx2), free(dw1), free(dw2), free(db1);
        free(db2);
    }
    printf("  conv2d BLAS vs loops: max abs diff %.3e (tol %.0e x scale)\n",
           worst, REF_TOL);
}

static void
test_conv1d_blas_vs_ref(void **state)
{
    static const ff_conv1d_dims shapes[] = {
        {3, 7, 1, 4, 3, 1}, {2, 13, 5, 7, 5, 2}, {1, 6, 3, 2, 3, 0},
        {5, 64, 32, 64, 5, 2}, {3, 32, 64, 64, 5, 2}};
    double worst = 0.0;
    ff_rng r;

    (void)state;
    ff_rng_init(&r, 23);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const ff_conv1d_dims *d = &shapes[s];
        size_t nx = (size_t)d->batch * d->length * d->in_ch;
        size_t nw = (size_t)d->out_ch * ff_conv1d_col_cols(d);
        size_t no = ff_conv1d_col_rows(d) * d->out_ch;
        size_t nc = ff_conv1d_col_rows(d) * ff_conv1d_col_cols(d);
        float *x = vec(nx), *w = vec(nw), *b = vec(d->out_ch), *g = vec(no);
        float *o1 = vec(no), *o2 = vec(no), *col = vec(nc), *dcol = vec(nc);
        float *dx1 = vec(nx), *dx2 = vec(nx), *dw1 = vec(nw), *dw2 = vec(nw);
        float *db1 = vec(d->out_ch), *db2 = vec(d->out_ch);

        fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1);
        fill_uniform(b, d->out_ch, &r, -1, 1), fill_uniform(g, no, &r, -1, 1);
        ff_conv1d_forward(o1, col, x, w, b, d);
        ff_conv1d_forward_ref(o2, x, w, b, d);
        check_ref("conv1d out", o1, o2, no, &worst);
        ff_conv1d_backward(dx1, dw1, db1, dcol, g, col, w, d);
        ff_conv1d_backward_ref(dx2, dw2, db2, g, x, w, d);
        check_ref("conv1d din", dx1, dx2, nx, &worst);
        check_ref("conv1d dw", dw1, dw2, nw, &worst);
        check_ref("conv1d db", db1, db2, d->out_ch, &worst);
        free(x), free(w), free(b), free(g), free(o1), free(o2), free(col);
        free(dcol), free(dx1), free(dx2), free(dw1), free(dw2), free(db1);
        free(db2);
    }
    printf("  conv1d BLAS vs loops: max abs diff %.3e (tol %.0e x scale)\n",
           worst, REF_TOL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_gradients),
        cmocka_unit_test(test_conv2d_gradients),
        cmocka_unit_test(test_conv1d_gradients),
        cmocka_unit_test(test_relu_pool_gap_clip_gradients),
        cmocka_unit_test(test_embag_gradients),
        cmocka_unit_test(test_fusion_gradients),
        cmocka_unit_test(test_xent_gradients),
        cmocka_unit_test(test_linear_blas_vs_ref),
        cmocka_unit_test(test_conv2d_blas_vs_ref),
        cmocka_unit_test(test_conv1d_blas_vs_ref),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
