/*
 * ff_layers.h - the neural-network layers of the fedfuse model, as
 * forward/backward pairs.
 *
 * Conventions, the same for every layer:
 * - Argument order: outputs, inputs, weights, sizes.
 * - Activations are row-major with the batch first. Images are
 *   channels-last [B][H][W][C]; sequences are time-major [B][T][C].
 * - Backward functions ACCUMULATE: d<name> += ...; the caller zeroes every
 *   gradient buffer before a backward pass (ff_layers_zero). A NULL input
 *   gradient (din) skips that part of the work.
 * - Every path that calls BLAS has a *_ref twin made of plain loops; tests
 *   compare the two.
 *
 * The caller owns every buffer; no function allocates, none fails, none
 * keeps state. Sizes are trusted (the model computes them). Thread-safe
 * as long as threads use distinct buffers.
 */
#ifndef FF_LAYERS_H
#define FF_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Sets n floats of p to zero: the explicit zeroing step before backward. */
void ff_layers_zero(float *p, size_t n);

/* ---- linear: out[B][O] = in[B][I] . w[O][I]^T + b[O] ------------------ */

void ff_linear_forward(float *out, const float *in, const float *w,
                       const float *b, int batch, int in_dim, int out_dim);
/* din[B][I] += dout . w; dw[O][I] += dout^T . in; db[O] += sum_b dout. */
void ff_linear_backward(float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, int batch,
                        int in_dim, int out_dim);
void ff_linear_forward_ref(float *out, const float *in, const float *w,
                           const float *b, int batch, int in_dim,
                           int out_dim);
void ff_linear_backward_ref(float *din, float *dw, float *db,
                            const float *dout, const float *in,
                            const float *w, int batch, int in_dim,
                            int out_dim);

/* ---- conv2d, stride 1, square kernel, zero padding ---------------------
 * in [B][H][W][C], w [K][k][k][C], b [K], out [B][Ho][Wo][K] with
 * Ho = H + 2 pad - k + 1 (same for Wo). col [B*Ho*Wo][k*k*C] is the
 * im2col workspace: forward fills it, backward reads it, and dcol (same
 * size) is scratch for the input gradient. */
typedef struct ff_conv2d_dims {
    int batch, height, width, in_ch, out_ch, kernel, pad;
} ff_conv2d_dims;

int ff_conv2d_out_side(int side, const ff_conv2d_dims *d);
/* Rows (B*Ho*Wo) and columns (k*k*C) of the im2col matrix. */
size_t ff_conv2d_col_rows(const ff_conv2d_dims *d);
size_t ff_conv2d_col_cols(const ff_conv2d_dims *d);

void ff_conv2d_forward(float *out, float *col, const float *in,
                       const float *w, const float *b,
                       const ff_conv2d_dims *d);
void ff_conv2d_backward(float *din, float *dw, float *db, float *dcol,
                        const float *dout, const float *col, const float *w,
                        const ff_conv2d_dims *d);
/* Direct loops, no im2col. */
void ff_conv2d_forward_ref(float *out, const float *in, const float *w,
                           const float *b, const ff_conv2d_dims *d);
void ff_conv2d_backward_ref(float *din, float *dw, float *db,
                            const float *dout, const float *in,
                            const float *w, const ff_conv2d_dims *d);

/* ---- conv1d over time, stride 1, zero padding --------------------------
 * in [B][T][C], w [K][k][C], b [K], out [B][To][K], To = T + 2 pad - k + 1;
 * col [B*To][k*C] as for conv2d. */
typedef struct ff_conv1d_dims {
    int batch, length, in_ch, out_ch, kernel, pad;
} ff_conv1d_dims;

int ff_conv1d_out_length(const ff_conv1d_dims *d);
size_t ff_conv1d_col_rows(const ff_conv1d_dims *d);
size_t ff_conv1d_col_cols(const ff_conv1d_dims *d);

void ff_conv1d_forward(float *out, float *col, const float *in,
                       const float *w, const float *b,
                       const ff_conv1d_dims *d);
void ff_conv1d_backward(float *din, float *dw, float *db, float *dcol,
                        const float *dout, const float *col, const float *w,
                        const ff_conv1d_dims *d);
void ff_conv1d_forward_ref(float *out, const float *in, const float *w,
                           const float *b, const ff_conv1d_dims *d);
void ff_conv1d_backward_ref(float *din, float *dw, float *db,
                            const float *dout, const float *in,
                            const float *w, const ff_conv1d_dims *d);

/* ---- ReLU: out[n] = max(in, 0); out may alias in ----------------------- */

void ff_relu_forward(float *out, const float *in, size_t n);
/* din += dout where out > 0 (reads the forward output, so in-place works). */
void ff_relu_backward(float *din, const float *dout, const float *out,
                      size_t n);

/* ---- soft clip: out[n] = c * tanh(in / c); out may alias in -------------
 * About the identity for |in| << c, bounded by c (c = 1: plain tanh). */

void ff_softclip_forward(float *out, const float *in, size_t n, float c);
/* din += dout * (1 - (out / c)^2) (reads the forward output). */
void ff_softclip_backward(float *din, const float *dout, const float *out,
                          size_t n, float c);

/* ---- max pool 2d, window p x p, stride p --------------------------------
 * in [B][H][W][C] -> out [B][H/p][W/p][C] (trailing rows/columns that do
 * not fill a window are dropped); arg[i] = index into in of out[i]'s max. */
void ff_maxpool2d_forward(float *out, int32_t *arg, const float *in,
                          int batch, int height, int width, int ch, int p);
void ff_maxpool2d_backward(float *din, const float *dout, const int32_t *arg,
                           size_t out_count);

/* ---- max pool over time, window p, stride p ----------------------------
 * in [B][T][C] -> out [B][T/p][C]; arg as for max pool 2d. */
void ff_maxpool1d_forward(float *out, int32_t *arg, const float *in,
                          int batch, int length, int ch, int p);
void ff_maxpool1d_backward(float *din, const float *dout, const int32_t *arg,
                           size_t out_count);

/* ---- global average pool: in [B][N][C] -> out [B][C] --------------------
 * N is time steps (sequences) or H*W (images). */
void ff_gap_forward(float *out, const float *in, int batch, int n, int ch);
void ff_gap_backward(float *din, const float *dout, int batch, int n,
                     int ch);

/* ---- embedding bag: out[b] = mean of table rows ids[b][0..len[b]) -------
 * ids [B][stride] (uint16), len [B] (>= 1 and <= stride), table [V][D];
 * ids must be < V (the caller validates). */
void ff_embag_forward(float *out, const uint16_t *ids, const int32_t *len,
                      const float *table, int batch, int stride, int dim);
void ff_embag_backward(float *dtable, const float *dout, const uint16_t *ids,
                       const int32_t *len, int batch, int stride, int dim);

/* ---- fusion: mean of the embeddings present in each record --------------
 * emb[m] [rows_m][D]; pos [B][M]: row of record b in emb[m], or -1 when
 * modality m is absent from b (then emb[m] is not read for b and gets no
 * gradient). z [B][D]; a record with no modality gets z = 0. */
void ff_fusion_forward(float *z, const float *const *emb, const int32_t *pos,
                       int batch, int mods, int dim);
void ff_fusion_backward(float *const *demb, const float *dz,
                        const int32_t *pos, int batch, int mods, int dim);

/* ---- softmax cross-entropy ----------------------------------------------
 * logits [B][K], labels [B] in [0, K). Forward writes the softmax to prob
 * and returns the SUM of the B losses; backward adds (prob - onehot) *
 * scale to dlogits (scale = 1/B for a mean loss). */
double ff_xent_forward(float *prob, const float *logits,
                       const int32_t *labels, int batch, int classes);
void ff_xent_backward(float *dlogits, const float *prob,
                      const int32_t *labels, int batch, int classes,
                      float scale);

#endif
