/*
 * ff_model_internal.h - what the model's own source files share: the
 * architecture, the parameter table, the batch workspace and the batch
 * steps. Not for users of the library (they include ff_model.h).
 */
#ifndef FF_MODEL_INTERNAL_H
#define FF_MODEL_INTERNAL_H

#include "ff_model.h"
#include "ff_rng.h"

/* Shared embedding width and the head's hidden width. */
#define FF_EMB_DIM 64
#define FF_HEAD_HIDDEN 64
/* Bound of every embedding component (see ff_enc_arch). */
#define FF_EMB_CLIP 3.0f

/* The three convolutional encoders, in parameter-table order. */
enum { FF_ENC_IMAGE = 0, FF_ENC_AUDIO, FF_ENC_PEN, FF_ENC_COUNT };

/* Parameter tensors, in buffer order. Each convolutional encoder has six:
 * conv1 w/b, conv2 w/b, projection w/b. */
enum {
    FF_P_CONV1_W = 0, FF_P_CONV1_B, FF_P_CONV2_W, FF_P_CONV2_B,
    FF_P_PROJ_W, FF_P_PROJ_B, FF_P_PER_ENC
};
#define FF_P_ENC(e, j) ((e) * FF_P_PER_ENC + (j))
enum {
    FF_P_TEXT_EMB = FF_ENC_COUNT * FF_P_PER_ENC,
    FF_P_HEAD_W1, FF_P_HEAD_B1, FF_P_HEAD_W2, FF_P_HEAD_B2,
    FF_P_COUNT
};

/* One convolutional encoder: conv(k) -> maxpool(p) -> ReLU -> conv(k) ->
 * maxpool(p) -> ReLU -> (flatten | global average pool) -> linear to D
 * (u) -> soft clip (e). Max pool before ReLU equals ReLU before max pool
 * and costs less. The text encoder is an embedding bag (u) -> soft clip
 * (e). The soft clip bounds every modality's share of the fused mean, so
 * that one confidently wrong modality (an unseen speaker, say) cannot
 * outvote the others by sheer magnitude, while small embeddings pass
 * almost unchanged and early training stays fast. */
typedef struct ff_enc_arch {
    int dims;      /* 2: image [side][side][C]; 1: sequence [side][C] */
    int side;      /* image side or sequence length */
    int in_ch, ch1, ch2, kernel, pool;
    int flatten;   /* 1: flatten the last map; 0: average it over space */
} ff_enc_arch;

extern const ff_enc_arch ff_enc_archs[FF_ENC_COUNT];

/* Activations and their gradients for one encoder, [rows][...] each. */
typedef struct ff_enc_ws {
    float *x, *col1, *a1, *p1, *r1, *col2, *a2, *p2, *r2, *f, *u, *e;
    float *de, *du, *df, *dr2, *dp2, *da2, *dcol2, *dr1, *dp1, *da1;
    int32_t *arg1, *arg2;
} ff_enc_ws;

/* Everything one batch needs, sized for `cap` records. */
typedef struct ff_batch_ws {
    int cap;
    float *farena;
    int32_t *iarena;
    ff_enc_ws enc[FF_ENC_COUNT];
    uint16_t *text_ids;          /* [cap][FF_TEXT_MAX_NGRAMS] */
    int32_t *text_len;           /* [cap] */
    float *text_u, *text_du;     /* [cap][D] bag mean, before the clip */
    float *text_e, *text_de;     /* [cap][D] embedding */
    float *z, *h, *logits, *prob;        /* head activations */
    float *dz, *dh, *dhpre, *dlogits;    /* head gradients */
    int32_t *pos;                /* [cap][FF_MOD_COUNT] rows, -1 absent */
    int32_t *pos_used;           /* pos restricted to the head's modalities */
    int32_t *labels;             /* [cap] */
    int rows[FF_MOD_COUNT];      /* records per modality in the batch */
    int n;                       /* records in the batch */
} ff_batch_ws;

struct ff_model {
    float *params;
    size_t count;
    size_t off[FF_P_COUNT], len[FF_P_COUNT];
    size_t group_off[FF_GROUP_COUNT], group_len[FF_GROUP_COUNT];
    ff_batch_ws ws;
};

/* Makes sure the workspace holds cap records (grows, never shrinks).
 * Errors: FF_ERR_NOMEM (the old workspace is kept). */
FF_MUST_USE ff_status ff_model_reserve(ff_model *m, int cap, ff_error *err);

/* Checks that sample s (number `index` in its set, for the message) can
 * enter the model with the modalities s->present & mask: present bits
 * valid, at least one modality left, its text ids and length in range, its
 * tensors finite, and the label when check_label. Absent or masked
 * modalities are not read. Errors: FF_ERR_ARG, FF_ERR_NONFINITE. */
FF_MUST_USE ff_status ff_model_sample_check(const ff_sample *s, uint32_t mask,
                                            size_t index, int check_label,
                                            ff_error *err);

/* Batch steps. load copies the present-and-masked modalities of the n
 * (<= cap) records into the workspace; encode runs the encoders; head
 * fuses the modalities in `only` (others are treated as absent), runs the
 * head and the softmax, and returns the summed loss; backward adds the
 * gradient of (scale * summed loss) to the flat buffer grad (same layout
 * as the parameters). Every record must keep >= 1 modality after masks. */
void ff_model_batch_load(ff_model *m, const ff_sample *const *recs,
                         const uint32_t *masks, int n);
void ff_model_batch_encode(ff_model *m);
double ff_model_batch_head(ff_model *m, uint32_t only);
void ff_model_batch_backward(ff_model *m, float *grad, float scale);

/* Index of the largest of the classes in row b of the batch's softmax. */
int ff_model_batch_argmax(const ff_model *m, int b);

/* ---- training internals (ff_train.c, ff_dpsgd.c) ------------------------ */

/* Everything one ff_model_train call keeps between steps. The DP buffers
 * are allocated only when cfg->dp is set. */
typedef struct ff_train_state {
    size_t *order;            /* shuffled record indices */
    float *grad;              /* flat gradient, parameter layout; under
                                 DP-SGD the clipped sum, then the step */
    float *mom1, *mom2;       /* SGD velocity / Adam first and second */
    float *backup;            /* parameters at the start, for rollback */
    const ff_sample **recs;   /* the current batch */
    uint32_t *masks;
    size_t *dp_idx;           /* DP-SGD: the records sample() drew */
    float *dp_rec;            /* DP-SGD: one record's gradient (only the
                                 ranges that record touches are valid) */
    long step;                /* optimizer steps taken */
    long steps;               /* steps this call will take */
    ff_rng rng;
} ff_train_state;

/* Hides each present modality with probability p, keeping at least one
 * (ff_train.c). */
uint32_t ff_train_dropout_mask(ff_rng *rng, uint32_t present, float p);

/* One update of m's parameters from st->grad: L2 weight decay folded into
 * the gradient, then SGD with momentum or Adam at the scheduled learning
 * rate; counts the step (ff_train.c). */
void ff_train_optimizer_step(ff_model *m, ff_train_state *st,
                             const ff_train_config *cfg);

/* Checks the DP-SGD settings dp (ff_dpsgd.c). Errors: FF_ERR_ARG, with a
 * message naming the field (dp.clip, dp.noise_multiplier,
 * dp.sampling_rate, dp.ops.sample, dp.ops.noise). */
FF_MUST_USE ff_status ff_dpsgd_check(const ff_dp_sgd *dp, ff_error *err);

/* Steps in one DP-SGD epoch: round(1 / q), at least 1. q as checked by
 * ff_dpsgd_check. */
long ff_dpsgd_steps_per_epoch(double q);

/* One DP-SGD epoch of round(1 / q) noised steps over set (ff_dpsgd.c).
 * Fills es with this epoch's figures (loss, accuracy and group counts
 * over the records drawn) and adds to the dp_* counters of total.
 * Errors: FF_ERR_NONFINITE (a record's loss or gradient), FF_ERR_ARG
 * (sample() returned indices out of order or range), and whatever
 * sample() or noise() returned (their message, with the step). */
FF_MUST_USE ff_status ff_dpsgd_epoch(ff_model *m, const ff_sample_set *set,
                                     const ff_train_config *cfg,
                                     ff_train_state *st, int epoch,
                                     ff_train_stats *es,
                                     ff_train_stats *total, ff_error *err);

#endif
