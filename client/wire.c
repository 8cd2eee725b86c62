/*
 * wire.c - protobuf <-> plain struct conversions, site side.
 * The only site file that includes the generated protobuf header.
 */
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedfuse.pb-c.h"

#include "../model/ff_input.h"
#include "../privacy/ff_dp.h"
#include "../proto/ff_wire_codec.h"

/* A site id every request must carry. */
static ff_status check_site_id(const char *id, ff_error *err)
{
    if (!ff_wire_id_valid(id))
        return ff_error_set(err, FF_ERR_ARG,
                            "site id must be 1-%d characters of "
                            "[A-Za-z0-9._-]", FF_WIRE_ID_MAX);
    return FF_OK;
}

/* ---- requests ---- */

ff_status ff_site_wire_register_encode(const ff_wire_register *r,
                                       ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__RegisterRequest m = FEDFUSE__REGISTER_REQUEST__INIT;
    char *names[FF_MOD_COUNT];
    size_t n = 0;
    int i;
    ff_status st = check_site_id(r->site_id, err);

    if (st != FF_OK)
        return st;
    if (strlen(r->code_version) > FF_WIRE_TEXT_MAX)
        return ff_error_set(err, FF_ERR_ARG, "code version is too long");

    /* Modality bits become their names. */
    for (i = 0; i < FF_MOD_COUNT; i++)
        if (r->modalities & (1u << i))
            names[n++] = (char *)ff_modality_name((ff_modality)i);
    m.site_id = (char *)r->site_id;
    m.code_version = (char *)r->code_version;
    m.n_modalities = n;
    m.modalities = names;
    m.example_count = r->example_count;
    m.manifest_digest = (char *)r->manifest_digest;
    if (r->has_identity) {
        m.identity_key.data = (uint8_t *)r->identity_key;
        m.identity_key.len = FF_WIRE_IDENTITY_BYTES;
    }
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_site_wire_poll_encode(const ff_wire_poll *r, ff_wire_bytes *out,
                                   ff_error *err)
{
    Fedfuse__PollRequest m = FEDFUSE__POLL_REQUEST__INIT;
    ff_status st = check_site_id(r->site_id, err);

    if (st != FF_OK)
        return st;
    m.site_id = (char *)r->site_id;
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_site_wire_download_encode(const ff_wire_download *r,
                                       ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__DownloadRequest m = FEDFUSE__DOWNLOAD_REQUEST__INIT;
    ff_status st = check_site_id(r->site_id, err);

    if (st != FF_OK)
        return st;
    m.site_id = (char *)r->site_id;
    m.round = r->round;
    m.production = r->production != 0;
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_site_wire_update_header_encode(const ff_wire_update_header *h,
                                            ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__UpdateMessage m = FEDFUSE__UPDATE_MESSAGE__INIT;
    Fedfuse__UpdateHeader hm = FEDFUSE__UPDATE_HEADER__INIT;

    if (h->n_groups > FF_WIRE_MAX_GROUPS ||
        strlen(h->site_id) > FF_WIRE_ID_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "update header has %u groups or a site id "
                            "over %d bytes", (unsigned)h->n_groups,
                            FF_WIRE_ID_MAX);
    hm.site_id = (char *)h->site_id;
    hm.round = h->round;
    hm.parameter_count = h->param_count;
    hm.n_group_examples = h->n_groups;
    hm.group_examples = (uint64_t *)h->group_examples;
    hm.train_loss = h->train_loss;
    hm.train_accuracy = h->train_accuracy;
    hm.masked = h->masked != 0;

    /* A refusal and the record-level DP report (texts bounded here). */
    if (strlen(h->refusal) > FF_WIRE_TEXT_MAX ||
        strlen(h->dp_mechanism) > FF_WIRE_OPTIMIZER_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "update header: refusal or dp mechanism is "
                            "too long");
    hm.refused = h->refused != 0;
    hm.refusal = (char *)h->refusal;
    hm.dp_mechanism = (char *)h->dp_mechanism;
    hm.dp_epsilon = h->dp_epsilon;
    hm.dp_delta = h->dp_delta;
    hm.dp_epsilon_budget = h->dp_epsilon_budget;
    hm.dp_noise_multiplier = h->dp_noise_multiplier;
    hm.dp_clip = h->dp_clip;
    hm.dp_sampling_rate = h->dp_sampling_rate;
    hm.dp_steps = h->dp_steps;
    hm.unclipped = h->unclipped != 0;
    m.kind_case = FEDFUSE__UPDATE_MESSAGE__KIND_HEADER;
    m.header = &hm;
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_site_wire_update_chunk_encode(const ff_wire_update_chunk *c,
                                           ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__UpdateMessage m = FEDFUSE__UPDATE_MESSAGE__INIT;
    Fedfuse__UpdateChunk cm = FEDFUSE__UPDATE_CHUNK__INIT;

    cm.offset = c->offset;
    cm.data.data = (uint8_t *)c->data;
    cm.data.len = c->len;
    m.kind_case = FEDFUSE__UPDATE_MESSAGE__KIND_CHUNK;
    m.chunk = &cm;
    return ff_wire_pack(&m.base, out, err);
}

/* ---- replies ---- */

ff_status ff_site_wire_register_reply_decode(const uint8_t *buf, size_t len,
                                             ff_wire_register_reply *out,
                                             ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__RegisterReply *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__register_reply__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__RegisterReply *)pm;
    out->accepted = m->accepted != 0;
    out->poll_interval_ms = m->poll_interval_ms;
    st = ff_wire_text_copy(out->reason, sizeof out->reason, m->reason,
                           "reason", err);
    fedfuse__register_reply__free_unpacked(m, NULL);
    return st;
}

/* Range-checks and copies a training config sent with TRAIN. */
static ff_status config_decode(const Fedfuse__TrainConfig *c,
                               ff_wire_train_config *out, ff_error *err)
{
    if (c == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "TRAIN without a config");
    if (c->epochs < 1 || c->epochs > 1000)
        return ff_error_set(err, FF_ERR_FORMAT, "epochs %u not in 1..1000",
                            (unsigned)c->epochs);
    if (c->batch_size < 1 || c->batch_size > 65536)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "batch_size %u not in 1..65536",
                            (unsigned)c->batch_size);
    if (!isfinite(c->lr) || c->lr <= 0.0f)
        return ff_error_set(err, FF_ERR_FORMAT, "lr is not a positive "
                            "number");
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f) ||
        !(c->modality_dropout >= 0.0f && c->modality_dropout < 1.0f) ||
        !(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "momentum, dropout or weight decay out of "
                            "range");
    if (!ff_wire_optimizer_valid(c->optimizer))
        return ff_error_set(err, FF_ERR_FORMAT, "unknown optimizer");
    if (!ff_wire_lr_schedule_valid(c->lr_schedule))
        return ff_error_set(err, FF_ERR_FORMAT, "unknown lr schedule");
    out->epochs = c->epochs;
    out->batch_size = c->batch_size;
    out->lr = c->lr;
    strcpy(out->optimizer, c->optimizer);
    strcpy(out->lr_schedule, c->lr_schedule);
    out->momentum = c->momentum;
    out->modality_dropout = c->modality_dropout;
    out->weight_decay = c->weight_decay;
    out->seed = c->seed;
    return FF_OK;
}

/* Range-checks and copies the secure aggregation task of a TRAIN. The
 * library checks the configuration itself again when the site uses it. */
static ff_status task_decode(const Fedfuse__SecAggTask *t,
                             ff_wire_secagg_task *out, ff_error *err)
{
    size_t keys;

    if (t->n_sites < 3 || t->n_sites > FF_WIRE_SECAGG_MAX_SITES ||
        t->site_index >= t->n_sites)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "secagg site %u of %u sites (3..%u)",
                            (unsigned)t->site_index, (unsigned)t->n_sites,
                            (unsigned)FF_WIRE_SECAGG_MAX_SITES);
    keys = (size_t)t->n_sites * FF_WIRE_IDENTITY_BYTES;
    if (t->identity_keys.len != keys || t->graph_seed.len != 32)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "secagg task: %zu key bytes for %u sites, "
                            "seed of %zu bytes", t->identity_keys.len,
                            (unsigned)t->n_sites, t->graph_seed.len);
    if (!isfinite(t->clip) || t->clip <= 0.0f || t->max_value == 0 ||
        t->length == 0 || t->length > FF_WIRE_MAX_PARAMS + FF_WIRE_MAX_GROUPS)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "secagg task: clip, max_value or length out of "
                            "range");
    out->identity_keys = malloc(keys);
    if (out->identity_keys == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    memcpy(out->identity_keys, t->identity_keys.data, keys);
    memcpy(out->graph_seed, t->graph_seed.data, 32);
    out->site_index = t->site_index;
    out->n_sites = t->n_sites;
    out->degree = t->degree;
    out->threshold = t->threshold;
    out->bits = t->bits;
    out->length = t->length;
    out->max_value = t->max_value;
    out->clip = t->clip;
    return FF_OK;
}

/* Checks the fields of a distributed (DDGauss) task; values come from the
 * network, so each is range-checked before anything uses it. */
static ff_status site_dp_ddgauss_check(const Fedfuse__SiteDpTask *t,
                                       ff_error *err)
{
    if (t->bits < 2 || t->bits > 32)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: bits %u not in 2..32",
                            (unsigned)t->bits);
    if (t->padded == 0 || (t->padded & (t->padded - 1)) != 0 ||
        t->padded > FF_DP_MAX_LENGTH)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: padded %llu is not a power of two in "
                            "1..%llu", (unsigned long long)t->padded,
                            (unsigned long long)FF_DP_MAX_LENGTH);
    if (!isfinite(t->scale) || t->scale <= 0.0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: scale %g is not finite and > 0",
                            t->scale);
    if (!(t->beta >= 0.0 && t->beta < 1.0))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: beta %g not in [0, 1)", t->beta);
    if (!isfinite(t->local_sigma2) || t->local_sigma2 < 0.0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: local_sigma2 %g is not finite and "
                            ">= 0", t->local_sigma2);
    if (t->sites < 1 || t->sites > FF_WIRE_SECAGG_MAX_SITES)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: sites %u not in 1..%u",
                            (unsigned)t->sites,
                            (unsigned)FF_WIRE_SECAGG_MAX_SITES);
    if (t->rotation_seed.len != 32)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: rotation seed of %zu bytes, "
                            "expected 32", t->rotation_seed.len);
    return FF_OK;
}

/* Range-checks and copies the site-level DP task of a TRAIN. The model's
 * parameter count is not known here: the update builder checks padded
 * against it. */
static ff_status site_dp_decode(const Fedfuse__SiteDpTask *t, int secagg,
                                ff_wire_site_dp_task *out, ff_error *err)
{
    ff_status st;

    memset(out, 0, sizeof *out);
    if ((int)t->mode != FEDFUSE__SITE_DP_MODE__SITE_DP_NONE &&
        (int)t->mode != FEDFUSE__SITE_DP_MODE__SITE_DP_CENTRAL &&
        (int)t->mode != FEDFUSE__SITE_DP_MODE__SITE_DP_DISTRIBUTED)
        return ff_error_set(err, FF_ERR_FORMAT, "site_dp: unknown mode %d",
                            (int)t->mode);
    if (t->mode == FEDFUSE__SITE_DP_MODE__SITE_DP_NONE)
        return FF_OK;
    if (!isfinite(t->clip) || t->clip <= 0.0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: clip %g is not finite and > 0",
                            t->clip);
    out->mode = (ff_wire_site_dp_mode)t->mode;
    out->clip = t->clip;
    out->report_unclipped = t->report_unclipped != 0;
    if (t->mode != FEDFUSE__SITE_DP_MODE__SITE_DP_DISTRIBUTED)
        return FF_OK;

    /* Distributed: the DDGauss parameters, under secure aggregation. */
    if (!secagg)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_dp: distributed mode without secure "
                            "aggregation");
    st = site_dp_ddgauss_check(t, err);
    if (st != FF_OK)
        return st;
    out->bits = t->bits;
    out->padded = t->padded;
    out->scale = t->scale;
    out->beta = t->beta;
    out->local_sigma2 = t->local_sigma2;
    out->sites = t->sites;
    memcpy(out->rotation_seed, t->rotation_seed.data, 32);
    return FF_OK;
}

void ff_site_wire_poll_reply_cleanup(ff_wire_poll_reply *r)
{
    if (r == NULL)
        return;
    free(r->task.identity_keys);
    r->task.identity_keys = NULL;
    r->secagg = 0;
}

ff_status ff_site_wire_poll_reply_decode(const uint8_t *buf, size_t len,
                                         ff_wire_poll_reply *out,
                                         ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__PollReply *m;
    ff_status st = FF_OK;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__poll_reply__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__PollReply *)pm;

    /* The action decides which fields matter. */
    out->action = (ff_wire_action)m->action;
    out->round = m->round;
    out->model_version = m->model_version;
    out->poll_interval_ms = m->poll_interval_ms;
    if (m->action == FEDFUSE__ACTION__ACTION_TRAIN) {
        st = config_decode(m->config, &out->config, err);
        if (st == FF_OK && (m->round < 1 || m->model_version < 0))
            st = ff_error_set(err, FF_ERR_FORMAT,
                              "TRAIN for round %d, version %d",
                              (int)m->round, (int)m->model_version);
        if (st == FF_OK && m->secagg != NULL) {
            st = task_decode(m->secagg, &out->task, err);
            out->secagg = st == FF_OK;
        }
        if (st == FF_OK && m->site_dp != NULL)
            st = site_dp_decode(m->site_dp, out->secagg, &out->site_dp, err);
    } else if (m->action != FEDFUSE__ACTION__ACTION_WAIT &&
               m->action != FEDFUSE__ACTION__ACTION_FINISHED) {
        st = ff_error_set(err, FF_ERR_FORMAT, "unknown action %d",
                          (int)m->action);
    }
    fedfuse__poll_reply__free_unpacked(m, NULL);
    if (st != FF_OK)
        ff_site_wire_poll_reply_cleanup(out);
    return st;
}

/* The signature fields of a chunk: lengths exact (or both empty: an
 * unsigned model), metadata bounded, model name valid on the first. */
static ff_status chunk_signature_decode(const Fedfuse__ModelChunk *m,
                                        ff_wire_model_chunk *out,
                                        ff_error *err)
{
    const char *meta = m->metadata != NULL ? m->metadata : "";
    size_t n = strlen(meta);

    if (m->signature.len == 0 && m->signer_key.len == 0)
        out->is_signed = 0;
    else if (m->signature.len != FF_WIRE_SIG_BYTES ||
             m->signer_key.len != FF_WIRE_SIGNER_BYTES)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "model signature of %zu bytes with a key of "
                            "%zu bytes, expected %d and %d",
                            m->signature.len, m->signer_key.len,
                            FF_WIRE_SIG_BYTES, FF_WIRE_SIGNER_BYTES);
    else {
        out->is_signed = 1;
        memcpy(out->signature, m->signature.data, FF_WIRE_SIG_BYTES);
        memcpy(out->signer_key, m->signer_key.data, FF_WIRE_SIGNER_BYTES);
    }
    if (n > FF_WIRE_METADATA_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "model metadata of %zu bytes exceeds %u", n,
                            (unsigned)FF_WIRE_METADATA_MAX);
    if (m->offset == 0 && !ff_wire_id_valid(m->model))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "the first model chunk names no valid model");
    if (m->offset == 0)
        strcpy(out->model, m->model);
    out->metadata = meta;
    out->metadata_len = n;
    out->parent = m->parent;
    return FF_OK;
}

ff_status ff_site_wire_model_chunk_decode(const uint8_t *buf, size_t len,
                                          ff_wire_model_chunk *out,
                                          ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__ModelChunk *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__model_chunk__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__ModelChunk *)pm;

    /* Every length is bounded before the caller allocates anything. */
    if (m->data.len > FF_WIRE_CHUNK_MAX)
        st = ff_error_set(err, FF_ERR_TOO_LARGE,
                          "model chunk of %zu bytes exceeds %u", m->data.len,
                          (unsigned)FF_WIRE_CHUNK_MAX);
    else if (m->total_length == 0 || m->total_length > FF_WIRE_MAX_ARTIFACT)
        st = ff_error_set(err, FF_ERR_TOO_LARGE,
                          "model total_length %llu not in 1..%u",
                          (unsigned long long)m->total_length,
                          (unsigned)FF_WIRE_MAX_ARTIFACT);
    else if (m->offset > m->total_length ||
             m->data.len > m->total_length - m->offset)
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "model chunk at %llu + %zu runs past %llu",
                          (unsigned long long)m->offset, m->data.len,
                          (unsigned long long)m->total_length);
    else if (m->digest.len != FF_WIRE_DIGEST_BYTES)
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "model digest has %zu bytes, expected %d",
                          m->digest.len, FF_WIRE_DIGEST_BYTES);
    if (st == FF_OK)
        st = chunk_signature_decode(m, out, err);
    if (st != FF_OK) {
        fedfuse__model_chunk__free_unpacked(m, NULL);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->offset = m->offset;
    out->total_length = m->total_length;
    memcpy(out->digest, m->digest.data, FF_WIRE_DIGEST_BYTES);
    out->model_version = m->model_version;
    out->data = m->data.data;
    out->len = m->data.len;
    out->owner = m;
    return FF_OK;
}

void ff_site_wire_model_chunk_cleanup(ff_wire_model_chunk *c)
{
    if (c == NULL)
        return;
    if (c->owner != NULL)
        fedfuse__model_chunk__free_unpacked(c->owner, NULL);
    memset(c, 0, sizeof *c);
}

ff_status ff_site_wire_upload_reply_decode(const uint8_t *buf, size_t len,
                                           ff_wire_upload_reply *out,
                                           ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__UploadReply *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__upload_reply__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__UploadReply *)pm;
    out->accepted = m->accepted != 0;
    out->retry_after_ms = m->retry_after_ms;
    st = ff_wire_text_copy(out->reason, sizeof out->reason, m->reason,
                           "reason", err);
    fedfuse__upload_reply__free_unpacked(m, NULL);
    return st;
}

/* ---- secure aggregation stages ---- */

ff_status ff_site_wire_secagg_encode(const ff_wire_secagg_msg *r,
                                     ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__SecAggRequest m = FEDFUSE__SEC_AGG_REQUEST__INIT;
    ff_status st = check_site_id(r->site_id, err);

    if (st != FF_OK)
        return st;
    m.site_id = (char *)r->site_id;
    m.round = r->round;
    m.stage = (Fedfuse__SecAggStage)r->stage;
    m.data.data = (uint8_t *)r->data;
    m.data.len = r->len;
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_site_wire_secagg_reply_decode(const uint8_t *buf, size_t len,
                                           ff_wire_secagg_msg *out,
                                           ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__SecAggReply *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__sec_agg_reply__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__SecAggReply *)pm;
    st = ff_wire_text_copy(out->reason, sizeof out->reason, m->reason,
                           "reason", err);
    if (st == FF_OK && (int)m->status > FEDFUSE__SEC_AGG_STATUS__SECAGG_ABORTED)
        st = ff_error_set(err, FF_ERR_FORMAT, "unknown secagg status %d",
                          (int)m->status);
    if (st == FF_OK && m->data.len > FF_WIRE_SECAGG_DATA_MAX)
        st = ff_error_set(err, FF_ERR_TOO_LARGE,
                          "secagg data of %zu bytes", m->data.len);
    if (st != FF_OK) {
        fedfuse__sec_agg_reply__free_unpacked(m, NULL);
        return st;
    }
    out->status = (ff_wire_secagg_status)m->status;
    out->data = m->data.data;
    out->len = m->data.len;
    out->owner = m;
    return FF_OK;
}

void ff_site_wire_secagg_reply_cleanup(ff_wire_secagg_msg *msg)
{
    if (msg == NULL)
        return;
    if (msg->owner != NULL)
        fedfuse__sec_agg_reply__free_unpacked(msg->owner, NULL);
    memset(msg, 0, sizeof *msg);
}
