/*
 * ff_model.h - the multimodal encoder: one encoder per modality into a
 * shared embedding space, fused by averaging the embeddings of the
 * modalities present in each record, then a classifier head.
 *
 * All parameters live in one contiguous float buffer; named groups (one per
 * encoder, plus the head) are views into it, so averaging, clipping,
 * masking, hashing and checkpointing are operations on one flat vector.
 *
 * Knows nothing of the network or the database. Not thread-safe: one
 * ff_model per thread.
 */
#ifndef FF_MODEL_H
#define FF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "ff_input.h"

typedef struct ff_model ff_model;

/* Parameter groups: one per modality encoder, then the fusion head. */
enum { FF_GROUP_HEAD = FF_MOD_COUNT, FF_GROUP_COUNT };

typedef enum ff_optimizer { FF_OPT_SGD = 0, FF_OPT_ADAM } ff_optimizer;

/* Learning rate over the steps of one ff_model_train call: constant, or
 * cosine decay from lr to 0 (lr * (1 + cos(pi * step / steps)) / 2). */
typedef enum ff_lr_schedule { FF_LR_CONSTANT = 0, FF_LR_COSINE } ff_lr_schedule;

struct ff_train_stats;

/* Called by ff_model_train after each epoch with the 1-based epoch number
 * and that epoch's statistics (seconds = time since the call began). */
typedef void (*ff_train_epoch_fn)(void *ctx, int epoch,
                                  const struct ff_train_stats *epoch_stats);

/*
 * Record-level differential privacy for ff_model_train (DP-SGD, Abadi et
 * al. 2016). When ff_train_config.dp is set, each step:
 *   1. draws its batch with sample(): every record independently with
 *      probability sampling_rate (Poisson sampling, as the accountant
 *      assumes), so batch sizes vary and may be 0;
 *   2. computes each record's gradient alone and scales it to L2 norm at
 *      most clip (modality dropout still applies per record);
 *   3. sums the clipped gradients and calls noise() to add noise of std
 *      noise_multiplier * clip to the sum;
 *   4. divides by the expected batch size sampling_rate * count (never by
 *      the actual size, which would leak it) and takes the optimizer step.
 * An epoch is round(1 / sampling_rate) steps; an empty batch still takes
 * a step (noise only). Weight decay is applied after the noise (it
 * depends only on the parameters); the learning-rate schedule runs over
 * all epochs * round(1 / sampling_rate) steps. The model layer knows
 * nothing of how randomness or noise is made: the caller (the site)
 * passes callbacks backed by privacy/ff_dp.h. Both callbacks get ops.ctx;
 * they are called from the thread that called ff_model_train, sample()
 * once per step and noise() once per step unless noise_multiplier is 0.
 * Modality dropout (cfg->seed) stays the model's own: it is not a privacy
 * mechanism. Training loss and accuracy in ff_train_stats are computed on
 * the drawn records without noise: they are not differentially private.
 */
typedef struct ff_dp_sgd_ops {
    /* Writes the chosen record indices (increasing, < count) to idx
     * (capacity count) and their number to *n (0 allowed). Any status
     * other than FF_OK stops training with it (err filled). */
    ff_status (*sample)(void *ctx, double q, size_t count, size_t *idx,
                        size_t *n, ff_error *err);
    /* Adds noise of standard deviation std (> 0) to v[0..n) in place;
     * n is ff_model_param_count. A status other than FF_OK stops
     * training with it (err filled). */
    ff_status (*noise)(void *ctx, float *v, size_t n, double std,
                       ff_error *err);
    void *ctx;
} ff_dp_sgd_ops;

typedef struct ff_dp_sgd {
    double clip;              /* per-record L2 clip norm, > 0 */
    double noise_multiplier;  /* noise std / clip, >= 0 */
    double sampling_rate;     /* Poisson rate q in (0, 1] */
    ff_dp_sgd_ops ops;
} ff_dp_sgd;

typedef struct ff_train_config {
    int epochs;               /* passes over the data, >= 1 */
    int batch_size;           /* >= 1 */
    float lr;                 /* learning rate, > 0 */
    ff_optimizer optimizer;
    float momentum;           /* SGD momentum in [0, 1) */
    float weight_decay;       /* L2 penalty, >= 0 */
    float modality_dropout;   /* chance to hide each present modality of a
                                 training record (one is always kept) */
    uint64_t seed;            /* shuffling and dropout */
    ff_lr_schedule lr_schedule; /* FF_LR_CONSTANT when zeroed */
    ff_train_epoch_fn on_epoch; /* optional progress callback, or NULL */
    void *on_epoch_ctx;         /* passed to on_epoch */
    const ff_dp_sgd *dp;        /* DP-SGD when not NULL (batch_size is then
                                   unused); caller-owned */
} ff_train_config;

/* Sets cfg to the defaults fedfuse trains with (no callback). */
void ff_train_config_default(ff_train_config *cfg);

typedef struct ff_train_stats {
    double loss;                         /* mean loss of the last epoch */
    double accuracy;                     /* training accuracy, last epoch */
    size_t examples;                     /* records seen per epoch */
    size_t group_examples[FF_GROUP_COUNT]; /* records that trained each
                                            group in one epoch */
    double seconds;
    /* DP-SGD only (zero otherwise), over the whole call: */
    long dp_steps;                       /* noised steps taken */
    size_t dp_records;                   /* records drawn into batches */
    size_t dp_clipped;                   /* of those, gradients clipped */
} ff_train_stats;

typedef struct ff_eval {
    double accuracy;                   /* all present modalities fused */
    double loss;
    double accuracy_alone[FF_MOD_COUNT]; /* each modality alone, on the
                                            records that have it; -1 when
                                            none has it */
    size_t count;
} ff_eval;

/* Creates a model with parameters drawn from seed. *out owned by caller.
 * Errors: FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_model_create(ff_model **out, uint64_t seed,
                                      ff_error *err);

/* Frees m and everything it owns. Accepts NULL. */
void ff_model_destroy(ff_model *m);

/* Number of parameters (floats) in the flat buffer. */
size_t ff_model_param_count(const ff_model *m);

/* The flat parameter buffer, owned by m, ff_model_param_count floats. */
float *ff_model_params(ff_model *m);
const float *ff_model_params_const(const ff_model *m);

/* Range of group g (0 <= g < FF_GROUP_COUNT) inside the flat buffer. */
void ff_model_group_range(const ff_model *m, int g, size_t *offset,
                          size_t *length);

/* Name of group g: the modality name, or "head". */
const char *ff_model_group_name(int g);

/* Trains m in place on set (set and cfg stay the caller's; stats may be
 * NULL). The optimizer state (SGD velocity, Adam moments) lives for this
 * one call and starts from zero on the next. Deterministic given
 * cfg->seed and the model's parameters. stats->loss, accuracy and
 * group_examples describe the LAST epoch (with modality dropout the
 * groups' counts change from epoch to epoch); the head counts every
 * record. Under DP-SGD (cfg->dp) the run also depends on what the
 * callbacks return; examples, loss, accuracy and group_examples then
 * count the records drawn in the last epoch (0 when none was), and the
 * dp_* counters cover the whole call. Errors: FF_ERR_ARG (bad config,
 * naming the field for dp.*; empty set; a record whose label, present
 * mask or text is out of range; dp sample() returning indices out of
 * order or range), FF_ERR_NONFINITE (an input tensor, the loss or a
 * record's gradient is NaN or Inf), FF_ERR_NOMEM, and any status of the
 * dp callbacks (message prefixed with the epoch and step). m is unchanged
 * on error. */
FF_MUST_USE ff_status ff_model_train(ff_model *m, const ff_sample_set *set,
                                     const ff_train_config *cfg,
                                     ff_train_stats *stats, ff_error *err);

/* Evaluates m on set: fused accuracy and each modality alone. Errors:
 * FF_ERR_ARG (empty set, or a record as for ff_model_train),
 * FF_ERR_NONFINITE (a present input tensor holds NaN or Inf),
 * FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_model_evaluate(ff_model *m, const ff_sample_set *set,
                                        ff_eval *out, ff_error *err);

/* Predicts the class of one sample using only the modalities in mask
 * (intersected with s->present); the other tensors are never read.
 * Returns -1 when none remain or the sample is invalid (as for
 * ff_model_train, label excepted). Never allocates. */
int ff_model_predict(ff_model *m, const ff_sample *s, uint32_t mask);

/* Mean softmax cross-entropy of the count samples, each seen through
 * mask masks[i] (intersected with present; masks NULL = all present), and,
 * when grad is not NULL, its gradient with respect to the flat parameters,
 * written to grad (ff_model_param_count floats, caller-owned). For tests
 * and diagnostics. Errors: FF_ERR_ARG (count 0 or a record as for
 * ff_model_train), FF_ERR_NONFINITE, FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_model_loss_grad(ff_model *m, const ff_sample *samples,
                                         size_t count, const uint32_t *masks,
                                         float *grad, double *loss,
                                         ff_error *err);

/*
 * Artifact: the serialised model, "FFMODEL1" magic, format version,
 * parameter count, group table, then little-endian float32 parameters.
 * ff_model_artifact_size gives the exact size; write fills buf.
 */
size_t ff_model_artifact_size(const ff_model *m);
FF_MUST_USE ff_status ff_model_artifact_write(const ff_model *m, uint8_t *buf,
                                              size_t len, ff_error *err);

/* Loads parameters from an artifact into m. Errors: FF_ERR_FORMAT (bad
 * magic, version or group table), FF_ERR_SHAPE (other architecture),
 * FF_ERR_NONFINITE (NaN or Inf parameter). m is unchanged on error. */
FF_MUST_USE ff_status ff_model_artifact_read(ff_model *m, const uint8_t *buf,
                                             size_t len, ff_error *err);

#endif
