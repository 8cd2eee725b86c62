/*
 * ff_layers.c - layer kernels. The BLAS paths turn every layer with
 * weights into one matrix product over the whole batch (im2col for the
 * convolutions); the *_ref twins are straight loops kept for the tests.
 */
#include "ff_layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void
ff_layers_zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(*p));
}

/* ---- linear ------------------------------------------------------------ */

void
ff_linear_forward(float *out, const float *in, const float *w,
                  const float *b, int batch, int in_dim, int out_dim)
{
    float beta = 0.0f;

    /* Start every row from the bias, then add in . w^T on top of it. */
    if (b != NULL) {
        for (int r = 0; r < batch; r++)
            memcpy(out + (size_t)r * out_dim, b, out_dim * sizeof(*b));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out_dim,
                in_dim, 1.0f, in, in_dim, w, in_dim, beta, out, out_dim);
}

void
ff_linear_backward(float *din, float *dw, float *db, const float *dout,
                   const float *in, const float *w, int batch, int in_dim,
                   int out_dim)
{
    /* din[B][I] += dout[B][O] . w[O][I] */
    if (din != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch,
                    in_dim, out_dim, 1.0f, dout, out_dim, w, in_dim, 1.0f,
                    din, in_dim);

    /* dw[O][I] += dout^T . in */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim,
                batch, 1.0f, dout, out_dim, in, in_dim, 1.0f, dw, in_dim);

    /* db[O] += column sums of dout */
    if (db != NULL)
        for (int r = 0; r < batch; r++) {
            const float *row = dout + (size_t)r * out_dim;
            for (int o = 0; o < out_dim; o++)
                db[o] += row[o];
        }
}

void
ff_linear_forward_ref(float *out, const float *in, const float *w,
                      const float *b, int batch, int in_dim, int out_dim)
{
    for (int r = 0; r < batch; r++)
        for (int o = 0; o < out_dim; o++) {
            double s = b != NULL ? b[o] : 0.0;
            for (int i = 0; i < in_dim; i++)
                s += (double)in[(size_t)r * in_dim + i] *
                     w[(size_t)o * in_dim + i];
            out[(size_t)r * out_dim + o] = (float)s;
        }
}

void
ff_linear_backward_ref(float *din, float *dw, float *db, const float *dout,
                       const float *in, const float *w, int batch,
                       int in_dim, int out_dim)
{
    for (int r = 0; r < batch; r++)
        for (int o = 0; o < out_dim; o++) {
            float g = dout[(size_t)r * out_dim + o];
            size_t ri = (size_t)r * in_dim, oi = (size_t)o * in_dim;
            for (int i = 0; i < in_dim; i++) {
                if (din != NULL)
                    din[ri + i] += g * w[oi + i];
                dw[oi + i] += g * in[ri + i];
            }
            if (db != NULL)
                db[o] += g;
        }
}

/* ---- conv2d ------------------------------------------------------------ */

int
ff_conv2d_out_side(int side, const ff_conv2d_dims *d)
{
    return side + 2 * d->pad - d->kernel + 1;
}

size_t
ff_conv2d_col_rows(const ff_conv2d_dims *d)
{
    return (size_t)d->batch * ff_conv2d_out_side(d->height, d) *
           ff_conv2d_out_side(d->width, d);
}

size_t
ff_conv2d_col_cols(const ff_conv2d_dims *d)
{
    return (size_t)d->kernel * d->kernel * d->in_ch;
}

/* Copies n floats from src to dst (to_col) or adds dst back into src
 * (!to_col); n is small (one kernel row of taps), so plain loops. */
static void
col_span(float *dst, float *src, size_t n, int to_col)
{
    if (to_col)
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    else
        for (size_t i = 0; i < n; i++)
            src[i] += dst[i];
}

/* Walks every (output pixel, kernel row) pair: the k taps of one kernel
 * row read k * C consecutive input floats (channels-last), so each row
 * moves as one span: copied into col (to_col) or added back into in
 * (!to_col, the transpose used by backward). Padding reads as zero. */
static void
conv2d_col_walk(float *col, float *in, const ff_conv2d_dims *d, int to_col)
{
    int ho = ff_conv2d_out_side(d->height, d);
    int wo = ff_conv2d_out_side(d->width, d);
    int k = d->kernel, c = d->in_ch;
    size_t cols = ff_conv2d_col_cols(d);

    for (int b = 0; b < d->batch; b++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                float *row = col + (((size_t)b * ho + oy) * wo + ox) * cols;
                /* Taps kx in [lo, hi) fall inside the image. */
                int lo = d->pad - ox > 0 ? d->pad - ox : 0;
                int hi = d->width + d->pad - ox < k ? d->width + d->pad - ox
                                                    : k;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy + ky - d->pad;
                    float *tap = row + (size_t)ky * k * c;
                    if (iy < 0 || iy >= d->height || lo >= hi) {
                        if (to_col)
                            memset(tap, 0, (size_t)k * c * sizeof(*tap));
                        continue;
                    }
                    if (to_col && lo > 0)
                        memset(tap, 0, (size_t)lo * c * sizeof(*tap));
                    if (to_col && hi < k)
                        memset(tap + (size_t)hi * c, 0,
                               (size_t)(k - hi) * c * sizeof(*tap));
                    float *src = in + (((size_t)b * d->height + iy) *
                                       d->width + ox + lo - d->pad) * c;
                    col_span(tap + (size_t)lo * c, src, (size_t)(hi - lo) * c,
                             to_col);
                }
            }
}

void
ff_conv2d_forward(float *out, float *col, const float *in, const float *w,
                  const float *b, const ff_conv2d_dims *d)
{
    /* im2col only reads in when to_col is set; the cast drops const. */
    conv2d_col_walk(col, (float *)in, d, 1);
    ff_linear_forward(out, col, w, b, (int)ff_conv2d_col_rows(d),
                      (int)ff_conv2d_col_cols(d), d->out_ch);
}

void
ff_conv2d_backward(float *din, float *dw, float *db, float *dcol,
                   const float *dout, const float *col, const float *w,
                   const ff_conv2d_dims *d)
{
    int rows = (int)ff_conv2d_col_rows(d), cols = (int)ff_conv2d_col_cols(d);

    /* Weight and bias gradients: the linear layer over the im2col rows. */
    ff_linear_backward(NULL, dw, db, dout, col, w, rows, cols, d->out_ch);

    /* Input gradient: dcol = dout . w, then scatter-add back to pixels. */
    if (din == NULL)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols,
                d->out_ch, 1.0f, dout, d->out_ch, w, cols, 0.0f, dcol, cols);
    conv2d_col_walk(dcol, din, d, 0);
}

void
ff_conv2d_forward_ref(float *out, const float *in, const float *w,
                      const float *b, const ff_conv2d_dims *d)
{
    int ho = ff_conv2d_out_side(d->height, d);
    int wo = ff_conv2d_out_side(d->width, d);
    int k = d->kernel, c = d->in_ch;

    for (int n = 0; n < d->batch; n++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int o = 0; o < d->out_ch; o++) {
                    double s = b[o];
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy + ky - d->pad, ix = ox + kx - d->pad;
                            if (iy < 0 || iy >= d->height || ix < 0 ||
                                ix >= d->width)
                                continue;
                            for (int ch = 0; ch < c; ch++)
                                s += (double)w[(((size_t)o * k + ky) * k +
                                                kx) * c + ch] *
                                     in[(((size_t)n * d->height + iy) *
                                         d->width + ix) * c + ch];
                        }
                    out[(((size_t)n * ho + oy) * wo + ox) * d->out_ch + o] =
                        (float)s;
                }
}

void
ff_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                       const float *in, const float *w,
                       const ff_conv2d_dims *d)
{
    int ho = ff_conv2d_out_side(d->height, d);
    int wo = ff_conv2d_out_side(d->width, d);
    int k = d->kernel, c = d->in_ch;

    for (int n = 0; n < d->batch; n++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int o = 0; o < d->out_ch; o++) {
                    float g = dout[(((size_t)n * ho + oy) * wo + ox) *
                                   d->out_ch + o];
                    db[o] += g;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy + ky - d->pad, ix = ox + kx - d->pad;
                            if (iy < 0 || iy >= d->height || ix < 0 ||
                                ix >= d->width)
                                continue;
                            size_t wi = (((size_t)o * k + ky) * k + kx) * c;
                            size_t ii = (((size_t)n * d->height + iy) *
                                         d->width + ix) * c;
                            for (int ch = 0; ch < c; ch++) {
                                dw[wi + ch] += g * in[ii + ch];
                                if (din != NULL)
                                    din[ii + ch] += g * w[wi + ch];
                            }
                        }
                }
}

/* ---- conv1d ------------------------------------------------------------ */

int
ff_conv1d_out_length(const ff_conv1d_dims *d)
{
    return d->length + 2 * d->pad - d->kernel + 1;
}

size_t
ff_conv1d_col_rows(const ff_conv1d_dims *d)
{
    return (size_t)d->batch * ff_conv1d_out_length(d);
}

size_t
ff_conv1d_col_cols(const ff_conv1d_dims *d)
{
    return (size_t)d->kernel * d->in_ch;
}

/* As conv2d_col_walk, along time only: all k taps are one span. */
static void
conv1d_col_walk(float *col, float *in, const ff_conv1d_dims *d, int to_col)
{
    int to = ff_conv1d_out_length(d);
    int k = d->kernel, c = d->in_ch;
    size_t cols = ff_conv1d_col_cols(d);

    for (int b = 0; b < d->batch; b++)
        for (int ot = 0; ot < to; ot++) {
            float *row = col + ((size_t)b * to + ot) * cols;
            int lo = d->pad - ot > 0 ? d->pad - ot : 0;
            int hi = d->length + d->pad - ot < k ? d->length + d->pad - ot
                                                 : k;
            if (lo >= hi) {
                if (to_col)
                    memset(row, 0, cols * sizeof(*row));
                continue;
            }
            if (to_col && lo > 0)
                memset(row, 0, (size_t)lo * c * sizeof(*row));
            if (to_col && hi < k)
                memset(row + (size_t)hi * c, 0,
                       (size_t)(k - hi) * c * sizeof(*row));
            float *src = in + ((size_t)b * d->length + ot + lo - d->pad) * c;
            col_span(row + (size_t)lo * c, src, (size_t)(hi - lo) * c, to_col);
        }
}

void
ff_conv1d_forward(float *out, float *col, const float *in, const float *w,
                  const float *b, const ff_conv1d_dims *d)
{
    conv1d_col_walk(col, (float *)in, d, 1);
    ff_linear_forward(out, col, w, b, (int)ff_conv1d_col_rows(d),
                      (int)ff_conv1d_col_cols(d), d->out_ch);
}

void
ff_conv1d_backward(float *din, float *dw, float *db, float *dcol,
                   const float *dout, const float *col, const float *w,
                   const ff_conv1d_dims *d)
{
    int rows = (int)ff_conv1d_col_rows(d), cols = (int)ff_conv1d_col_cols(d);

    /* Weight and bias gradients over the im2col rows. */
    ff_linear_backward(NULL, dw, db, dout, col, w, rows, cols, d->out_ch);

    /* Input gradient through the transpose of im2col. */
    if (din == NULL)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols,
                d->out_ch, 1.0f, dout, d->out_ch, w, cols, 0.0f, dcol, cols);
    conv1d_col_walk(dcol, din, d, 0);
}

void
ff_conv1d_forward_ref(float *out, const float *in, const float *w,
                      const float *b, const ff_conv1d_dims *d)
{
    int to = ff_conv1d_out_length(d);
    int k = d->kernel, c = d->in_ch;

    for (int n = 0; n < d->batch; n++)
        for (int ot = 0; ot < to; ot++)
            for (int o = 0; o < d->out_ch; o++) {
                double s = b[o];
                for (int kt = 0; kt < k; kt++) {
                    int it = ot + kt - d->pad;
                    if (it < 0 || it >= d->length)
                        continue;
                    for (int ch = 0; ch < c; ch++)
                        s += (double)w[((size_t)o * k + kt) * c + ch] *
                             in[((size_t)n * d->length + it) * c + ch];
                }
                out[((size_t)n * to + ot) * d->out_ch + o] = (float)s;
            }
}

void
ff_conv1d_backward_ref(float *din, float *dw, float *db, const float *dout,
                       const float *in, const float *w,
                       const ff_conv1d_dims *d)
{
    int to = ff_conv1d_out_length(d);
    int k = d->kernel, c = d->in_ch;

    for (int n = 0; n < d->batch; n++)
        for (int ot = 0; ot < to; ot++)
            for (int o = 0; o < d->out_ch; o++) {
                float g = dout[((size_t)n * to + ot) * d->out_ch + o];
                db[o] += g;
                for (int kt = 0; kt < k; kt++) {
                    int it = ot + kt - d->pad;
                    if (it < 0 || it >= d->length)
                        continue;
                    size_t wi = ((size_t)o * k + kt) * c;
                    size_t ii = ((size_t)n * d->length + it) * c;
                    for (int ch = 0; ch < c; ch++) {
                        dw[wi + ch] += g * in[ii + ch];
                        if (din != NULL)
                            din[ii + ch] += g * w[wi + ch];
                    }
                }
            }
}

/* ---- ReLU -------------------------------------------------------------- */

void
ff_relu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void
ff_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0.0f)
            din[i] += dout[i];
}

/* ---- soft clip --------------------------------------------------------- */

void
ff_softclip_forward(float *out, const float *in, size_t n, float c)
{
    float inv = 1.0f / c;

    for (size_t i = 0; i < n; i++)
        out[i] = c * tanhf(in[i] * inv);
}

void
ff_softclip_backward(float *din, const float *dout, const float *out,
                     size_t n, float c)
{
    float inv = 1.0f / c;

    for (size_t i = 0; i < n; i++) {
        float t = out[i] * inv;
        din[i] += dout[i] * (1.0f - t * t);
    }
}

/* ---- max pools --------------------------------------------------------- */

void
ff_maxpool2d_forward(float *out, int32_t *arg, const float *in, int batch,
                     int height, int width, int ch, int p)
{
    int ho = height / p, wo = width / p;

    for (int b = 0; b < batch; b++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int c = 0; c < ch; c++) {
                    /* Scan the p x p window; the first maximum wins. */
                    size_t best = (((size_t)b * height + oy * p) * width +
                                   ox * p) * ch + c;
                    float top = in[best];
                    for (int dy = 0; dy < p; dy++)
                        for (int dx = 0; dx < p; dx++) {
                            size_t i = (((size_t)b * height + oy * p + dy) *
                                        width + ox * p + dx) * ch + c;
                            if (in[i] > top) {
                                top = in[i];
                                best = i;
                            }
                        }
                    size_t o = (((size_t)b * ho + oy) * wo + ox) * ch + c;
                    out[o] = top;
                    arg[o] = (int32_t)best;
                }
}

void
ff_maxpool2d_backward(float *din, const float *dout, const int32_t *arg,
                      size_t out_count)
{
    for (size_t i = 0; i < out_count; i++)
        din[arg[i]] += dout[i];
}

void
ff_maxpool1d_forward(float *out, int32_t *arg, const float *in, int batch,
                     int length, int ch, int p)
{
    int to = length / p;

    for (int b = 0; b < batch; b++)
        for (int ot = 0; ot < to; ot++)
            for (int c = 0; c < ch; c++) {
                size_t best = ((size_t)b * length + ot * p) * ch + c;
                float top = in[best];
                for (int dt = 1; dt < p; dt++) {
                    size_t i = best + (size_t)dt * ch;
                    if (in[i] > top) {
                        top = in[i];
                        best = i;
                    }
                }
                size_t o = ((size_t)b * to + ot) * ch + c;
                out[o] = top;
                arg[o] = (int32_t)best;
            }
}

void
ff_maxpool1d_backward(float *din, const float *dout, const int32_t *arg,
                      size_t out_count)
{
    ff_maxpool2d_backward(din, dout, arg, out_count);
}

/* ---- global average pool ----------------------------------------------- */

void
ff_gap_forward(float *out, const float *in, int batch, int n, int ch)
{
    float inv = 1.0f / (float)n;

    for (int b = 0; b < batch; b++) {
        float *o = out + (size_t)b * ch;
        memset(o, 0, ch * sizeof(*o));
        for (int t = 0; t < n; t++) {
            const float *row = in + ((size_t)b * n + t) * ch;
            for (int c = 0; c < ch; c++)
                o[c] += row[c];
        }
        for (int c = 0; c < ch; c++)
            o[c] *= inv;
    }
}

void
ff_gap_backward(float *din, const float *dout, int batch, int n, int ch)
{
    float inv = 1.0f / (float)n;

    for (int b = 0; b < batch; b++)
        for (int t = 0; t < n; t++) {
            float *row = din + ((size_t)b * n + t) * ch;
            for (int c = 0; c < ch; c++)
                row[c] += dout[(size_t)b * ch + c] * inv;
        }
}

/* ---- embedding bag ----------------------------------------------------- */

void
ff_embag_forward(float *out, const uint16_t *ids, const int32_t *len,
                 const float *table, int batch, int stride, int dim)
{
    for (int b = 0; b < batch; b++) {
        float *o = out + (size_t)b * dim;
        float inv = 1.0f / (float)len[b];
        memset(o, 0, dim * sizeof(*o));
        for (int j = 0; j < len[b]; j++) {
            size_t id = ids[(size_t)b * stride + j];
            const float *row = table + id * dim;
            for (int c = 0; c < dim; c++)
                o[c] += row[c];
        }
        for (int c = 0; c < dim; c++)
            o[c] *= inv;
    }
}

void
ff_embag_backward(float *dtable, const float *dout, const uint16_t *ids,
                  const int32_t *len, int batch, int stride, int dim)
{
    for (int b = 0; b < batch; b++) {
        float inv = 1.0f / (float)len[b];
        const float *g = dout + (size_t)b * dim;
        for (int j = 0; j < len[b]; j++) {
            float *row = dtable + (size_t)ids[(size_t)b * stride + j] * dim;
            for (int c = 0; c < dim; c++)
                row[c] += g[c] * inv;
        }
    }
}

/* ---- fusion ------------------------------------------------------------ */

/* Number of modalities present in record b. */
static int
fusion_count(const int32_t *pos, int b, int mods)
{
    int n = 0;

    for (int m = 0; m < mods; m++)
        n += pos[(size_t)b * mods + m] >= 0;
    return n;
}

void
ff_fusion_forward(float *z, const float *const *emb, const int32_t *pos,
                  int batch, int mods, int dim)
{
    for (int b = 0; b < batch; b++) {
        float *zb = z + (size_t)b * dim;
        int n = fusion_count(pos, b, mods);
        memset(zb, 0, dim * sizeof(*zb));
        for (int m = 0; m < mods; m++) {
            int32_t r = pos[(size_t)b * mods + m];
            if (r < 0)
                continue; /* absent: never read */
            const float *e = emb[m] + (size_t)r * dim;
            for (int c = 0; c < dim; c++)
                zb[c] += e[c];
        }
        if (n > 0)
            for (int c = 0; c < dim; c++)
                zb[c] /= (float)n;
    }
}

void
ff_fusion_backward(float *const *demb, const float *dz, const int32_t *pos,
                   int batch, int mods, int dim)
{
    for (int b = 0; b < batch; b++) {
        int n = fusion_count(pos, b, mods);
        for (int m = 0; m < mods; m++) {
            int32_t r = pos[(size_t)b * mods + m];
            if (r < 0)
                continue; /* absent: no gradient */
            float *de = demb[m] + (size_t)r * dim;
            for (int c = 0; c < dim; c++)
                de[c] += dz[(size_t)b * dim + c] / (float)n;
        }
    }
}

/* ---- softmax cross-entropy --------------------------------------------- */

double
ff_xent_forward(float *prob, const float *logits, const int32_t *labels,
                int batch, int classes)
{
    double total = 0.0;

    for (int b = 0; b < batch; b++) {
        const float *l = logits + (size_t)b * classes;
        float *p = prob + (size_t)b * classes;

        /* Softmax shifted by the maximum so that exp cannot overflow. */
        float mx = l[0];
        for (int k = 1; k < classes; k++)
            mx = l[k] > mx ? l[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < classes; k++)
            sum += exp((double)l[k] - mx);
        for (int k = 0; k < classes; k++)
            p[k] = (float)(exp((double)l[k] - mx) / sum);

        /* -log p[label] from the log-sum-exp, exact for tiny p. */
        total += log(sum) + mx - l[labels[b]];
    }
    return total;
}

void
ff_xent_backward(float *dlogits, const float *prob, const int32_t *labels,
                 int batch, int classes, float scale)
{
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < classes; k++) {
            float y = k == labels[b] ? 1.0f : 0.0f;
            dlogits[(size_t)b * classes + k] +=
                (prob[(size_t)b * classes + k] - y) * scale;
        }
}
