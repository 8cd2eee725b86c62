/*
 * ff_model.c - the multimodal model: parameter table and flat buffer,
 * batch workspace, the encoders, fusion and head, and prediction.
 *
 * A batch flows through four steps (see ff_model_internal.h): load copies
 * each record's present modalities into per-modality matrices (so every
 * encoder runs once on just the records that have its modality), encode
 * runs the encoders, head fuses and classifies, backward runs it all in
 * reverse into a flat gradient buffer laid out like the parameters.
 */
#include "ff_model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff_layers.h"
#include "ff_rng.h"

/* The encoders (see ff_enc_arch). Audio and pen arrive [channel][time]
 * and are transposed to [time][channel] when loaded. */
const ff_enc_arch ff_enc_archs[FF_ENC_COUNT] = {
    [FF_ENC_IMAGE] = {.dims = 2, .side = FF_IMAGE_SIDE, .in_ch = 1,
                      .ch1 = 16, .ch2 = 32, .kernel = 3, .pool = 2,
                      .flatten = 1},
    [FF_ENC_AUDIO] = {.dims = 1, .side = FF_AUDIO_FRAMES,
                      .in_ch = FF_AUDIO_BANDS, .ch1 = 64, .ch2 = 64,
                      .kernel = 5, .pool = 2, .flatten = 0},
    [FF_ENC_PEN] = {.dims = 1, .side = FF_PEN_POINTS,
                    .in_ch = FF_PEN_CHANNELS, .ch1 = 32, .ch2 = 64,
                    .kernel = 5, .pool = 2, .flatten = 1},
};

/* Which modality each convolutional encoder reads. */
static const int enc_modality[FF_ENC_COUNT] = {
    [FF_ENC_IMAGE] = FF_MOD_IMAGE,
    [FF_ENC_AUDIO] = FF_MOD_AUDIO,
    [FF_ENC_PEN] = FF_MOD_PEN,
};

/* ---- architecture arithmetic ------------------------------------------ */

/* Positions (pixels or time steps) after `level` poolings. */
static size_t
enc_positions(const ff_enc_arch *a, int level)
{
    size_t side = (size_t)a->side;

    for (int i = 0; i < level; i++)
        side /= (size_t)a->pool;
    return a->dims == 2 ? side * side : side;
}

/* Width of one im2col row for a convolution reading ch channels. */
static size_t
enc_taps(const ff_enc_arch *a, int ch)
{
    size_t k = (size_t)a->kernel;

    return (a->dims == 2 ? k * k : k) * (size_t)ch;
}

/* Width of the vector the projection reads. */
static size_t
enc_features(const ff_enc_arch *a)
{
    return a->flatten ? enc_positions(a, 2) * a->ch2 : (size_t)a->ch2;
}

/* ---- parameter table --------------------------------------------------- */

typedef struct tensor_spec {
    size_t count;
    int group;
    double init_std; /* normal(0, std); 0 = zeros (biases) */
} tensor_spec;

/* Size, group and initial scale of parameter tensor t. ReLU layers get He
 * scaling (sqrt(2 / fan_in)); the logits get sqrt(1 / fan_in). */
static tensor_spec
tensor_describe(int t)
{
    tensor_spec s = {0, FF_GROUP_HEAD, 0.0};

    if (t < FF_P_TEXT_EMB) {
        const ff_enc_arch *a = &ff_enc_archs[t / FF_P_PER_ENC];
        size_t feat = enc_features(a);
        s.group = enc_modality[t / FF_P_PER_ENC];
        switch (t % FF_P_PER_ENC) {
        case FF_P_CONV1_W:
            s.count = a->ch1 * enc_taps(a, a->in_ch);
            s.init_std = sqrt(2.0 / (double)enc_taps(a, a->in_ch));
            break;
        case FF_P_CONV1_B: s.count = a->ch1; break;
        case FF_P_CONV2_W:
            s.count = a->ch2 * enc_taps(a, a->ch1);
            s.init_std = sqrt(2.0 / (double)enc_taps(a, a->ch1));
            break;
        case FF_P_CONV2_B: s.count = a->ch2; break;
        case FF_P_PROJ_W:
            /* Half the usual scale keeps the soft clip after it in its
             * linear range at the start. */
            s.count = FF_EMB_DIM * feat;
            s.init_std = 0.5 * sqrt(1.0 / (double)feat);
            break;
        default: s.count = FF_EMB_DIM; break;
        }
        return s;
    }
    switch (t) {
    case FF_P_TEXT_EMB:
        s.group = FF_MOD_TEXT;
        /* Zeros: an n-gram no training record had (a language no site
         * trains on) then adds nothing instead of noise. Each row still
         * gets its own gradient, so zeros break no symmetry. */
        s.count = (size_t)FF_TEXT_BUCKETS * FF_EMB_DIM;
        s.init_std = 0.0;
        break;
    case FF_P_HEAD_W1:
        s.count = FF_HEAD_HIDDEN * FF_EMB_DIM;
        s.init_std = sqrt(2.0 / FF_EMB_DIM);
        break;
    case FF_P_HEAD_B1: s.count = FF_HEAD_HIDDEN; break;
    case FF_P_HEAD_W2:
        s.count = FF_NUM_CLASSES * FF_HEAD_HIDDEN;
        s.init_std = sqrt(1.0 / FF_HEAD_HIDDEN);
        break;
    default: s.count = FF_NUM_CLASSES; break;
    }
    return s;
}

/* Lays the tensors out back to back; groups come out contiguous because
 * the table lists them in group order. */
static void
model_layout(ff_model *m)
{
    size_t at = 0;

    memset(m->group_len, 0, sizeof(m->group_len));
    for (int t = 0; t < FF_P_COUNT; t++) {
        tensor_spec s = tensor_describe(t);
        if (m->group_len[s.group] == 0)
            m->group_off[s.group] = at;
        m->off[t] = at;
        m->len[t] = s.count;
        m->group_len[s.group] += s.count;
        at += s.count;
    }
    m->count = at;
}

/* Draws every tensor from its initial distribution. */
static void
model_init_params(ff_model *m, uint64_t seed)
{
    ff_rng rng;

    ff_rng_init(&rng, seed);
    for (int t = 0; t < FF_P_COUNT; t++) {
        tensor_spec s = tensor_describe(t);
        float *p = m->params + m->off[t];
        for (size_t i = 0; i < m->len[t]; i++)
            p[i] = (float)(s.init_std * ff_rng_normal(&rng));
    }
}

/* ---- workspace --------------------------------------------------------- */

/* Hands out consecutive slices of an arena; with base == NULL it only
 * counts, so the same walk sizes the arena and then carves it. */
typedef struct carver {
    float *fbase;
    int32_t *ibase;
    size_t fused, iused;
} carver;

static float *
carve_f(carver *c, size_t n)
{
    float *p = c->fbase != NULL ? c->fbase + c->fused : NULL;

    c->fused += n;
    return p;
}

static int32_t *
carve_i(carver *c, size_t n)
{
    int32_t *p = c->ibase != NULL ? c->ibase + c->iused : NULL;

    c->iused += n;
    return p;
}

/* Slices one encoder's buffers for cap records. */
static void
carve_encoder(carver *c, ff_enc_ws *w, const ff_enc_arch *a, size_t cap)
{
    size_t n0 = cap * enc_positions(a, 0), n1 = cap * enc_positions(a, 1);
    size_t n2 = cap * enc_positions(a, 2);

    w->x = carve_f(c, n0 * a->in_ch);
    w->col1 = carve_f(c, n0 * enc_taps(a, a->in_ch));
    w->a1 = carve_f(c, n0 * a->ch1);
    w->da1 = carve_f(c, n0 * a->ch1);
    w->p1 = carve_f(c, n1 * a->ch1);
    w->dp1 = carve_f(c, n1 * a->ch1);
    w->r1 = carve_f(c, n1 * a->ch1);
    w->dr1 = carve_f(c, n1 * a->ch1);
    w->arg1 = carve_i(c, n1 * a->ch1);
    w->col2 = carve_f(c, n1 * enc_taps(a, a->ch1));
    w->dcol2 = carve_f(c, n1 * enc_taps(a, a->ch1));
    w->a2 = carve_f(c, n1 * a->ch2);
    w->da2 = carve_f(c, n1 * a->ch2);
    w->p2 = carve_f(c, n2 * a->ch2);
    w->dp2 = carve_f(c, n2 * a->ch2);
    w->r2 = carve_f(c, n2 * a->ch2);
    w->dr2 = carve_f(c, n2 * a->ch2);
    w->arg2 = carve_i(c, n2 * a->ch2);
    /* The flattened map is r2 itself; the pooled vector needs its own. */
    w->f = a->flatten ? w->r2 : carve_f(c, cap * a->ch2);
    w->df = a->flatten ? w->dr2 : carve_f(c, cap * a->ch2);
    w->u = carve_f(c, cap * FF_EMB_DIM);
    w->du = carve_f(c, cap * FF_EMB_DIM);
    w->e = carve_f(c, cap * FF_EMB_DIM);
    w->de = carve_f(c, cap * FF_EMB_DIM);
}

/* Slices the whole workspace; counts only when the arenas are NULL. The
 * uint16 text ids are stored in the int arena, two per slot. */
static void
carve_workspace(carver *c, ff_batch_ws *ws, size_t cap)
{
    for (int e = 0; e < FF_ENC_COUNT; e++)
        carve_encoder(c, &ws->enc[e], &ff_enc_archs[e], cap);
    ws->text_ids = (uint16_t *)carve_i(c, cap * FF_TEXT_MAX_NGRAMS / 2 + 1);
    ws->text_len = carve_i(c, cap);
    ws->text_u = carve_f(c, cap * FF_EMB_DIM);
    ws->text_du = carve_f(c, cap * FF_EMB_DIM);
    ws->text_e = carve_f(c, cap * FF_EMB_DIM);
    ws->text_de = carve_f(c, cap * FF_EMB_DIM);
    ws->z = carve_f(c, cap * FF_EMB_DIM);
    ws->dz = carve_f(c, cap * FF_EMB_DIM);
    ws->h = carve_f(c, cap * FF_HEAD_HIDDEN);
    ws->dh = carve_f(c, cap * FF_HEAD_HIDDEN);
    ws->dhpre = carve_f(c, cap * FF_HEAD_HIDDEN);
    ws->logits = carve_f(c, cap * FF_NUM_CLASSES);
    ws->prob = carve_f(c, cap * FF_NUM_CLASSES);
    ws->dlogits = carve_f(c, cap * FF_NUM_CLASSES);
    ws->pos = carve_i(c, cap * FF_MOD_COUNT);
    ws->pos_used = carve_i(c, cap * FF_MOD_COUNT);
    ws->labels = carve_i(c, cap);
}

ff_status
ff_model_reserve(ff_model *m, int cap, ff_error *err)
{
    carver count = {0};
    ff_batch_ws fresh = {0};

    if (cap <= m->ws.cap)
        return FF_OK;

    /* Size both arenas, allocate them, and only then drop the old ones. */
    carve_workspace(&count, &fresh, (size_t)cap);
    carver c = {0};
    c.fbase = calloc(count.fused, sizeof(float));
    c.ibase = calloc(count.iused, sizeof(int32_t));
    if (c.fbase == NULL || c.ibase == NULL) {
        free(c.fbase);
        free(c.ibase);
        return ff_error_set(err, FF_ERR_NOMEM,
                            "model workspace for %d records (%zu floats)",
                            cap, count.fused);
    }
    free(m->ws.farena);
    free(m->ws.iarena);
    carve_workspace(&c, &fresh, (size_t)cap);
    fresh.cap = cap;
    fresh.farena = c.fbase;
    fresh.iarena = c.ibase;
    m->ws = fresh;
    return FF_OK;
}

/* ---- create / destroy / accessors -------------------------------------- */

ff_status
ff_model_create(ff_model **out, uint64_t seed, ff_error *err)
{
    ff_model *m = calloc(1, sizeof(*m));
    ff_status status = FF_OK;

    *out = NULL;
    if (m == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "model");

    /* Parameters, then one record's workspace so that predict never
     * allocates. */
    model_layout(m);
    m->params = malloc(m->count * sizeof(float));
    if (m->params == NULL)
        status = ff_error_set(err, FF_ERR_NOMEM,
                              "model parameters (%zu floats)", m->count);
    if (status == FF_OK) {
        model_init_params(m, seed);
        status = ff_model_reserve(m, 1, err);
    }
    if (status != FF_OK) {
        ff_model_destroy(m);
        return status;
    }
    *out = m;
    return FF_OK;
}

void
ff_model_destroy(ff_model *m)
{
    if (m == NULL)
        return;
    free(m->ws.farena);
    free(m->ws.iarena);
    free(m->params);
    free(m);
}

size_t
ff_model_param_count(const ff_model *m)
{
    return m->count;
}

float *
ff_model_params(ff_model *m)
{
    return m->params;
}

const float *
ff_model_params_const(const ff_model *m)
{
    return m->params;
}

void
ff_model_group_range(const ff_model *m, int g, size_t *offset,
                     size_t *length)
{
    int ok = g >= 0 && g < FF_GROUP_COUNT;

    *offset = ok ? m->group_off[g] : 0;
    *length = ok ? m->group_len[g] : 0;
}

const char *
ff_model_group_name(int g)
{
    if (g == FF_GROUP_HEAD)
        return "head";
    return ff_modality_name((ff_modality)g);
}

/* ---- sample validation -------------------------------------------------- */

/* Nonzero when all n values are finite. */
static int
all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Checks the text of s: 1..FF_TEXT_MAX_NGRAMS ids, each a valid bucket. */
static ff_status
text_check(const ff_sample *s, size_t index, ff_error *err)
{
    if (s->text_len < 1 || s->text_len > FF_TEXT_MAX_NGRAMS)
        return ff_error_set(err, FF_ERR_ARG,
                            "record %zu: text has %d n-gram ids, expected "
                            "1..%d", index, (int)s->text_len,
                            FF_TEXT_MAX_NGRAMS);
    for (int j = 0; j < s->text_len; j++)
        if (s->text[j] >= FF_TEXT_BUCKETS)
            return ff_error_set(err, FF_ERR_ARG,
                                "record %zu: text id %u is not below %d",
                                index, (unsigned)s->text[j], FF_TEXT_BUCKETS);
    return FF_OK;
}

ff_status
ff_model_sample_check(const ff_sample *s, uint32_t mask, size_t index,
                      int check_label, ff_error *err)
{
    static const size_t sizes[FF_MOD_COUNT] = {
        FF_IMAGE_SIZE, FF_AUDIO_SIZE, FF_PEN_SIZE, 0};
    const float *tensors[FF_MOD_COUNT] = {s->image, s->audio, s->pen, NULL};
    uint32_t use = s->present & mask;

    /* Label and modality bits. */
    if (check_label && (s->label < 0 || s->label >= FF_NUM_CLASSES))
        return ff_error_set(err, FF_ERR_ARG,
                            "record %zu: label %d is outside 0..%d", index,
                            (int)s->label, FF_NUM_CLASSES - 1);
    if ((s->present & ~FF_MOD_ALL) != 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "record %zu: present mask 0x%x has unknown bits",
                            index, (unsigned)s->present);
    if (use == 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "record %zu: no modality present (present 0x%x, "
                            "mask 0x%x)", index, (unsigned)s->present,
                            (unsigned)mask);

    /* Used tensors only: an absent one may hold anything. */
    if ((use & FF_MOD_BIT(FF_MOD_TEXT)) && text_check(s, index, err) != FF_OK)
        return FF_ERR_ARG;
    for (int m = 0; m < FF_MOD_TEXT; m++)
        if ((use & FF_MOD_BIT(m)) && !all_finite(tensors[m], sizes[m]))
            return ff_error_set(err, FF_ERR_NONFINITE,
                                "record %zu: %s holds NaN or Inf", index,
                                ff_modality_name((ff_modality)m));
    return FF_OK;
}

/* ---- batch: load ------------------------------------------------------- */

/* Copies a [channel][time] tensor into row r of a [time][channel] matrix. */
static void
load_transposed(float *dst, const float *src, int ch, int len)
{
    for (int t = 0; t < len; t++)
        for (int c = 0; c < ch; c++)
            dst[(size_t)t * ch + c] = src[(size_t)c * len + t];
}

/* Copies modality mod of s into row r of its workspace matrix. */
static void
load_modality(ff_batch_ws *ws, const ff_sample *s, int mod, int r)
{
    switch (mod) {
    case FF_MOD_IMAGE:
        memcpy(ws->enc[FF_ENC_IMAGE].x + (size_t)r * FF_IMAGE_SIZE, s->image,
               sizeof(s->image));
        break;
    case FF_MOD_AUDIO:
        load_transposed(ws->enc[FF_ENC_AUDIO].x + (size_t)r * FF_AUDIO_SIZE,
                        s->audio, FF_AUDIO_BANDS, FF_AUDIO_FRAMES);
        break;
    case FF_MOD_PEN:
        load_transposed(ws->enc[FF_ENC_PEN].x + (size_t)r * FF_PEN_SIZE,
                        s->pen, FF_PEN_CHANNELS, FF_PEN_POINTS);
        break;
    default:
        memcpy(ws->text_ids + (size_t)r * FF_TEXT_MAX_NGRAMS, s->text,
               (size_t)s->text_len * sizeof(s->text[0]));
        ws->text_len[r] = s->text_len;
        break;
    }
}

void
ff_model_batch_load(ff_model *m, const ff_sample *const *recs,
                    const uint32_t *masks, int n)
{
    ff_batch_ws *ws = &m->ws;

    ws->n = n;
    memset(ws->rows, 0, sizeof(ws->rows));
    for (int b = 0; b < n; b++) {
        const ff_sample *s = recs[b];
        uint32_t use = s->present & masks[b];

        /* An unchecked label (predict) must still index the softmax. */
        ws->labels[b] = s->label >= 0 && s->label < FF_NUM_CLASSES
                            ? s->label : 0;
        for (int mod = 0; mod < FF_MOD_COUNT; mod++) {
            int32_t *p = &ws->pos[(size_t)b * FF_MOD_COUNT + mod];
            *p = -1;
            if (!(use & FF_MOD_BIT(mod)))
                continue; /* absent or masked: never read */
            *p = ws->rows[mod]++;
            load_modality(ws, s, mod, *p);
        }
    }
}

/* ---- batch: encoders --------------------------------------------------- */

/* Convolution of an encoder layer: `side` is the input side, zero padding
 * keeps it ("same" convolution). */
static void
enc_conv_forward(const ff_enc_arch *a, float *out, float *col,
                 const float *in, const float *w, const float *b, int n,
                 int side, int cin, int cout)
{
    if (a->dims == 2) {
        ff_conv2d_dims d = {n, side, side, cin, cout, a->kernel,
                            a->kernel / 2};
        ff_conv2d_forward(out, col, in, w, b, &d);
    } else {
        ff_conv1d_dims d = {n, side, cin, cout, a->kernel, a->kernel / 2};
        ff_conv1d_forward(out, col, in, w, b, &d);
    }
}

static void
enc_conv_backward(const ff_enc_arch *a, float *din, float *dw, float *db,
                  float *dcol, const float *dout, const float *col,
                  const float *w, int n, int side, int cin, int cout)
{
    if (a->dims == 2) {
        ff_conv2d_dims d = {n, side, side, cin, cout, a->kernel,
                            a->kernel / 2};
        ff_conv2d_backward(din, dw, db, dcol, dout, col, w, &d);
    } else {
        ff_conv1d_dims d = {n, side, cin, cout, a->kernel, a->kernel / 2};
        ff_conv1d_backward(din, dw, db, dcol, dout, col, w, &d);
    }
}

static void
enc_pool_forward(const ff_enc_arch *a, float *out, int32_t *arg,
                 const float *in, int n, int side, int ch)
{
    if (a->dims == 2)
        ff_maxpool2d_forward(out, arg, in, n, side, side, ch, a->pool);
    else
        ff_maxpool1d_forward(out, arg, in, n, side, ch, a->pool);
}

/* Runs encoder e over its n loaded rows: x -> e. */
static void
enc_forward(ff_model *m, int e, int n)
{
    const ff_enc_arch *a = &ff_enc_archs[e];
    ff_enc_ws *w = &m->ws.enc[e];
    const float *P[FF_P_PER_ENC];
    int s0 = a->side, s1 = s0 / a->pool;
    size_t n1 = (size_t)n * enc_positions(a, 1) * a->ch1;
    size_t n2 = (size_t)n * enc_positions(a, 2) * a->ch2;

    for (int j = 0; j < FF_P_PER_ENC; j++)
        P[j] = m->params + m->off[FF_P_ENC(e, j)];

    /* Block 1: conv, pool, ReLU. */
    enc_conv_forward(a, w->a1, w->col1, w->x, P[FF_P_CONV1_W],
                     P[FF_P_CONV1_B], n, s0, a->in_ch, a->ch1);
    enc_pool_forward(a, w->p1, w->arg1, w->a1, n, s0, a->ch1);
    ff_relu_forward(w->r1, w->p1, n1);

    /* Block 2: conv, pool, ReLU. */
    enc_conv_forward(a, w->a2, w->col2, w->r1, P[FF_P_CONV2_W],
                     P[FF_P_CONV2_B], n, s1, a->ch1, a->ch2);
    enc_pool_forward(a, w->p2, w->arg2, w->a2, n, s1, a->ch2);
    ff_relu_forward(w->r2, w->p2, n2);

    /* Flatten (f is r2) or average over positions, project, clip. */
    if (!a->flatten)
        ff_gap_forward(w->f, w->r2, n, (int)enc_positions(a, 2), a->ch2);
    ff_linear_forward(w->u, w->f, P[FF_P_PROJ_W], P[FF_P_PROJ_B], n,
                      (int)enc_features(a), FF_EMB_DIM);
    ff_softclip_forward(w->e, w->u, (size_t)n * FF_EMB_DIM, FF_EMB_CLIP);
}

/* Back-propagates encoder e from w->de into the gradient buffer grad. */
static void
enc_backward(ff_model *m, float *grad, int e, int n)
{
    const ff_enc_arch *a = &ff_enc_archs[e];
    ff_enc_ws *w = &m->ws.enc[e];
    const float *P[FF_P_PER_ENC];
    float *G[FF_P_PER_ENC];
    int s0 = a->side, s1 = s0 / a->pool;
    size_t n0 = (size_t)n * enc_positions(a, 0) * a->ch1;
    size_t n1 = (size_t)n * enc_positions(a, 1) * a->ch1;
    size_t m1 = (size_t)n * enc_positions(a, 1) * a->ch2;
    size_t n2 = (size_t)n * enc_positions(a, 2) * a->ch2;

    for (int j = 0; j < FF_P_PER_ENC; j++) {
        P[j] = m->params + m->off[FF_P_ENC(e, j)];
        G[j] = grad + m->off[FF_P_ENC(e, j)];
    }

    /* Zero the activation gradients this pass accumulates into. */
    ff_layers_zero(w->dr2, n2);
    ff_layers_zero(w->dp2, n2);
    ff_layers_zero(w->da2, m1);
    ff_layers_zero(w->dr1, n1);
    ff_layers_zero(w->dp1, n1);
    ff_layers_zero(w->da1, n0);
    ff_layers_zero(w->du, (size_t)n * FF_EMB_DIM);
    if (!a->flatten)
        ff_layers_zero(w->df, (size_t)n * a->ch2);

    /* Clip and projection, then the pooled or flattened map. */
    ff_softclip_backward(w->du, w->de, w->e, (size_t)n * FF_EMB_DIM,
                         FF_EMB_CLIP);
    ff_linear_backward(w->df, G[FF_P_PROJ_W], G[FF_P_PROJ_B], w->du, w->f,
                       P[FF_P_PROJ_W], n, (int)enc_features(a), FF_EMB_DIM);
    if (!a->flatten)
        ff_gap_backward(w->dr2, w->df, n, (int)enc_positions(a, 2), a->ch2);

    /* Block 2 in reverse: ReLU, pool, conv (with input gradient). */
    ff_relu_backward(w->dp2, w->dr2, w->r2, n2);
    /* Pool backward scatters through arg: the same for 1-D and 2-D. */
    ff_maxpool2d_backward(w->da2, w->dp2, w->arg2, n2);
    enc_conv_backward(a, w->dr1, G[FF_P_CONV2_W], G[FF_P_CONV2_B], w->dcol2,
                      w->da2, w->col2, P[FF_P_CONV2_W], n, s1, a->ch1,
                      a->ch2);

    /* Block 1 in reverse; the input needs no gradient. */
    ff_relu_backward(w->dp1, w->dr1, w->r1, n1);
    ff_maxpool2d_backward(w->da1, w->dp1, w->arg1, n1);
    enc_conv_backward(a, NULL, G[FF_P_CONV1_W], G[FF_P_CONV1_B], NULL,
                      w->da1, w->col1, P[FF_P_CONV1_W], n, s0, a->in_ch,
                      a->ch1);
}

void
ff_model_batch_encode(ff_model *m)
{
    ff_batch_ws *ws = &m->ws;

    for (int e = 0; e < FF_ENC_COUNT; e++)
        if (ws->rows[enc_modality[e]] > 0)
            enc_forward(m, e, ws->rows[enc_modality[e]]);
    if (ws->rows[FF_MOD_TEXT] > 0) {
        int n = ws->rows[FF_MOD_TEXT];
        ff_embag_forward(ws->text_u, ws->text_ids, ws->text_len,
                         m->params + m->off[FF_P_TEXT_EMB], n,
                         FF_TEXT_MAX_NGRAMS, FF_EMB_DIM);
        ff_softclip_forward(ws->text_e, ws->text_u, (size_t)n * FF_EMB_DIM,
                            FF_EMB_CLIP);
    }
}

/* ---- batch: fusion and head ------------------------------------------- */

/* The embedding matrix of each modality, in modality order. */
static void
batch_embeddings(ff_batch_ws *ws, float **emb, float **demb)
{
    for (int e = 0; e < FF_ENC_COUNT; e++) {
        emb[enc_modality[e]] = ws->enc[e].e;
        demb[enc_modality[e]] = ws->enc[e].de;
    }
    emb[FF_MOD_TEXT] = ws->text_e;
    demb[FF_MOD_TEXT] = ws->text_de;
}

double
ff_model_batch_head(ff_model *m, uint32_t only)
{
    ff_batch_ws *ws = &m->ws;
    float *emb[FF_MOD_COUNT], *demb[FF_MOD_COUNT];
    const float *P1 = m->params + m->off[FF_P_HEAD_W1];
    const float *P2 = m->params + m->off[FF_P_HEAD_W2];
    int n = ws->n;

    /* Restrict the loaded modalities to `only`. */
    for (size_t i = 0; i < (size_t)n * FF_MOD_COUNT; i++)
        ws->pos_used[i] = (only & FF_MOD_BIT(i % FF_MOD_COUNT))
                              ? ws->pos[i] : -1;

    /* Fuse, hidden layer with ReLU, logits, softmax. */
    batch_embeddings(ws, emb, demb);
    ff_fusion_forward(ws->z, (const float *const *)emb, ws->pos_used, n,
                      FF_MOD_COUNT, FF_EMB_DIM);
    ff_linear_forward(ws->h, ws->z, P1, m->params + m->off[FF_P_HEAD_B1], n,
                      FF_EMB_DIM, FF_HEAD_HIDDEN);
    ff_relu_forward(ws->h, ws->h, (size_t)n * FF_HEAD_HIDDEN);
    ff_linear_forward(ws->logits, ws->h, P2,
                      m->params + m->off[FF_P_HEAD_B2], n, FF_HEAD_HIDDEN,
                      FF_NUM_CLASSES);
    return ff_xent_forward(ws->prob, ws->logits, ws->labels, n,
                           FF_NUM_CLASSES);
}

void
ff_model_batch_backward(ff_model *m, float *grad, float scale)
{
    ff_batch_ws *ws = &m->ws;
    float *emb[FF_MOD_COUNT], *demb[FF_MOD_COUNT];
    int n = ws->n;
    int used[FF_MOD_COUNT] = {0};

    /* Zero the head's activation gradients, then the loss gradient. */
    ff_layers_zero(ws->dlogits, (size_t)n * FF_NUM_CLASSES);
    ff_layers_zero(ws->dh, (size_t)n * FF_HEAD_HIDDEN);
    ff_layers_zero(ws->dhpre, (size_t)n * FF_HEAD_HIDDEN);
    ff_layers_zero(ws->dz, (size_t)n * FF_EMB_DIM);
    ff_xent_backward(ws->dlogits, ws->prob, ws->labels, n, FF_NUM_CLASSES,
                     scale);

    /* Head in reverse. */
    ff_linear_backward(ws->dh, grad + m->off[FF_P_HEAD_W2],
                       grad + m->off[FF_P_HEAD_B2], ws->dlogits, ws->h,
                       m->params + m->off[FF_P_HEAD_W2], n, FF_HEAD_HIDDEN,
                       FF_NUM_CLASSES);
    ff_relu_backward(ws->dhpre, ws->dh, ws->h, (size_t)n * FF_HEAD_HIDDEN);
    ff_linear_backward(ws->dz, grad + m->off[FF_P_HEAD_W1],
                       grad + m->off[FF_P_HEAD_B1], ws->dhpre, ws->z,
                       m->params + m->off[FF_P_HEAD_W1], n, FF_EMB_DIM,
                       FF_HEAD_HIDDEN);

    /* Fusion: only the modalities the head used get a gradient. */
    batch_embeddings(ws, emb, demb);
    for (int mod = 0; mod < FF_MOD_COUNT; mod++)
        ff_layers_zero(demb[mod], (size_t)ws->rows[mod] * FF_EMB_DIM);
    for (size_t i = 0; i < (size_t)n * FF_MOD_COUNT; i++)
        used[i % FF_MOD_COUNT] |= ws->pos_used[i] >= 0;
    ff_fusion_backward(demb, ws->dz, ws->pos_used, n, FF_MOD_COUNT,
                       FF_EMB_DIM);

    /* Encoders in reverse. */
    for (int e = 0; e < FF_ENC_COUNT; e++)
        if (used[enc_modality[e]])
            enc_backward(m, grad, e, ws->rows[enc_modality[e]]);
    if (used[FF_MOD_TEXT]) {
        size_t ne = (size_t)ws->rows[FF_MOD_TEXT] * FF_EMB_DIM;
        ff_layers_zero(ws->text_du, ne);
        ff_softclip_backward(ws->text_du, ws->text_de, ws->text_e, ne,
                             FF_EMB_CLIP);
        ff_embag_backward(grad + m->off[FF_P_TEXT_EMB], ws->text_du,
                          ws->text_ids, ws->text_len, ws->rows[FF_MOD_TEXT],
                          FF_TEXT_MAX_NGRAMS, FF_EMB_DIM);
    }
}

int
ff_model_batch_argmax(const ff_model *m, int b)
{
    const float *p = m->ws.prob + (size_t)b * FF_NUM_CLASSES;
    int best = 0;

    for (int k = 1; k < FF_NUM_CLASSES; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

/* ---- prediction -------------------------------------------------------- */

int
ff_model_predict(ff_model *m, const ff_sample *s, uint32_t mask)
{
    uint32_t use = s->present & mask;

    /* Only the modalities that will be read are checked. */
    if (ff_model_sample_check(s, mask, 0, 0, NULL) != FF_OK)
        return -1;
    ff_model_batch_load(m, &s, &use, 1);
    ff_model_batch_encode(m);
    (void)ff_model_batch_head(m, FF_MOD_ALL);
    return ff_model_batch_argmax(m, 0);
}
