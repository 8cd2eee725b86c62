/*
 * wire.c - protobuf <-> plain struct conversions, coordinator side.
 * The only coordinator file that includes the generated protobuf header.
 */
#include "wire.h"

#include <math.h>
#include <string.h>

#include "fedfuse.pb-c.h"

#include "../model/ff_input.h"
#include "../proto/ff_wire_codec.h"

/* ---- field checks ---- */

/* Copies and validates a site id. */
static ff_status copy_site_id(char dst[FF_WIRE_ID_MAX + 1], const char *src,
                              ff_error *err)
{
    if (src == NULL || strlen(src) > FF_WIRE_ID_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "site_id is longer than %d bytes",
                            FF_WIRE_ID_MAX);
    if (!ff_wire_id_valid(src))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "site_id must be 1-%d characters of "
                            "[A-Za-z0-9._-]", FF_WIRE_ID_MAX);
    memcpy(dst, src, strlen(src) + 1);
    return FF_OK;
}

/* Checks a hex digest of exactly FF_WIRE_DIGEST_HEX lowercase digits. */
static ff_status copy_hex_digest(char dst[FF_WIRE_DIGEST_HEX + 1],
                                 const char *src, ff_error *err)
{
    size_t i;

    if (src == NULL || strlen(src) != FF_WIRE_DIGEST_HEX)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "manifest_digest must be %d hex digits",
                            FF_WIRE_DIGEST_HEX);
    for (i = 0; i < FF_WIRE_DIGEST_HEX; i++) {
        char c = src[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return ff_error_set(err, FF_ERR_FORMAT,
                                "manifest_digest is not lowercase hex");
    }
    memcpy(dst, src, FF_WIRE_DIGEST_HEX + 1);
    return FF_OK;
}

/* ---- requests ---- */

/* Turns modality names into bits; an unknown name is an error. */
static ff_status modalities_decode(char **names, size_t n, uint32_t *bits,
                                   ff_error *err)
{
    size_t i;

    if (n > FF_WIRE_MAX_MODALITIES)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%zu modalities listed, at most %d", n,
                            FF_WIRE_MAX_MODALITIES);
    *bits = 0;
    for (i = 0; i < n; i++) {
        int m;
        if (names[i] == NULL || strlen(names[i]) > FF_WIRE_MODALITY_MAX)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "modality name %zu is too long", i);
        m = ff_modality_parse(names[i]);
        if (m < 0)
            return ff_error_set(err, FF_ERR_FORMAT, "unknown modality '%s'",
                                names[i]);
        *bits |= 1u << m;
    }
    return FF_OK;
}

ff_status ff_coord_wire_register_decode(const uint8_t *buf, size_t len,
                                        ff_wire_register *out, ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__RegisterRequest *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__register_request__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__RegisterRequest *)pm;

    /* Each field in turn; the first bad one names the error. */
    st = copy_site_id(out->site_id, m->site_id, err);
    if (st == FF_OK)
        st = ff_wire_text_copy(out->code_version, sizeof out->code_version,
                               m->code_version, "code_version", err);
    if (st == FF_OK)
        st = modalities_decode(m->modalities, m->n_modalities,
                               &out->modalities, err);
    if (st == FF_OK)
        st = copy_hex_digest(out->manifest_digest, m->manifest_digest, err);
    out->example_count = m->example_count;
    if (st == FF_OK && m->identity_key.len != 0 &&
        m->identity_key.len != FF_WIRE_IDENTITY_BYTES)
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "identity_key has %zu bytes, expected %d",
                          m->identity_key.len, FF_WIRE_IDENTITY_BYTES);
    if (st == FF_OK && m->identity_key.len == FF_WIRE_IDENTITY_BYTES) {
        out->has_identity = 1;
        memcpy(out->identity_key, m->identity_key.data,
               FF_WIRE_IDENTITY_BYTES);
    }
    fedfuse__register_request__free_unpacked(m, NULL);
    return st;
}

ff_status ff_coord_wire_poll_decode(const uint8_t *buf, size_t len,
                                    ff_wire_poll *out, ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__PollRequest *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__poll_request__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__PollRequest *)pm;
    st = copy_site_id(out->site_id, m->site_id, err);
    fedfuse__poll_request__free_unpacked(m, NULL);
    return st;
}

ff_status ff_coord_wire_download_decode(const uint8_t *buf, size_t len,
                                        ff_wire_download *out, ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__DownloadRequest *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__download_request__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__DownloadRequest *)pm;
    st = copy_site_id(out->site_id, m->site_id, err);
    out->round = m->round;
    out->production = m->production != 0;
    if (st == FF_OK && out->production && m->round != 0)
        st = ff_error_set(err, FF_ERR_FORMAT, "a production download "
                          "names round %d, expected 0", (int)m->round);
    else if (st == FF_OK && !out->production && m->round < 1)
        st = ff_error_set(err, FF_ERR_FORMAT, "round %d is not >= 1",
                          (int)m->round);
    fedfuse__download_request__free_unpacked(m, NULL);
    return st;
}

/* Largest epsilon, clip or step count a header may report: far beyond
 * any meaningful value, so that sums and logs stay finite. */
#define FED_DP_VALUE_MAX 1e12
#define FED_DP_STEPS_MAX 1000000000000ull

/* Checks one reported DP number: finite, >= 0 and at most hi. */
static ff_status dp_number_check(double v, double hi, const char *field,
                                 ff_error *err)
{
    if (!isfinite(v) || v < 0.0 || v > hi)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "%s %g is not a finite number in [0, %g]", field,
                            v, hi);
    return FF_OK;
}

/* Validates and copies the refusal and the record-level DP report of an
 * update header (values from an untrusted site: finite, non-negative,
 * bounded; strings within their limits). */
static ff_status header_dp_decode(const Fedfuse__UpdateHeader *h,
                                  ff_wire_update_header *out, ff_error *err)
{
    ff_status st = ff_wire_text_copy(out->refusal, sizeof out->refusal,
                                     h->refusal, "refusal", err);

    if (st == FF_OK)
        st = ff_wire_text_copy(out->dp_mechanism, sizeof out->dp_mechanism,
                               h->dp_mechanism, "dp_mechanism", err);
    if (st == FF_OK && out->dp_mechanism[0] != '\0' &&
        strcmp(out->dp_mechanism, "dp-sgd") != 0)
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "dp_mechanism '%s' is not \"\" or \"dp-sgd\"",
                          out->dp_mechanism);
    if (st == FF_OK)
        st = dp_number_check(h->dp_epsilon, FED_DP_VALUE_MAX, "dp_epsilon",
                             err);
    if (st == FF_OK)
        st = dp_number_check(h->dp_delta, 1.0, "dp_delta", err);
    if (st == FF_OK)
        st = dp_number_check(h->dp_epsilon_budget, FED_DP_VALUE_MAX,
                             "dp_epsilon_budget", err);
    if (st == FF_OK)
        st = dp_number_check(h->dp_noise_multiplier, FED_DP_VALUE_MAX,
                             "dp_noise_multiplier", err);
    if (st == FF_OK)
        st = dp_number_check(h->dp_clip, FED_DP_VALUE_MAX, "dp_clip", err);
    if (st == FF_OK)
        st = dp_number_check(h->dp_sampling_rate, 1.0, "dp_sampling_rate",
                             err);
    if (st == FF_OK && h->dp_steps > FED_DP_STEPS_MAX)
        st = ff_error_set(err, FF_ERR_FORMAT, "dp_steps %llu exceeds %llu",
                          (unsigned long long)h->dp_steps,
                          (unsigned long long)FED_DP_STEPS_MAX);
    if (st != FF_OK)
        return st;
    out->refused = h->refused != 0;
    out->dp_epsilon = h->dp_epsilon;
    out->dp_delta = h->dp_delta;
    out->dp_epsilon_budget = h->dp_epsilon_budget;
    out->dp_noise_multiplier = h->dp_noise_multiplier;
    out->dp_clip = h->dp_clip;
    out->dp_sampling_rate = h->dp_sampling_rate;
    out->dp_steps = h->dp_steps;
    out->unclipped = h->unclipped != 0;
    return FF_OK;
}

/* Validates and copies an update header. A refusal carries no update, so
 * its parameter and group counts may be zero. */
static ff_status header_decode(const Fedfuse__UpdateHeader *h,
                               ff_wire_update_header *out, ff_error *err)
{
    ff_status st = copy_site_id(out->site_id, h->site_id, err);

    if (st == FF_OK)
        st = header_dp_decode(h, out, err);
    if (st != FF_OK)
        return st;
    if (h->round < 1)
        return ff_error_set(err, FF_ERR_FORMAT, "round %d is not >= 1",
                            (int)h->round);
    if (out->refused && out->refusal[0] == '\0')
        return ff_error_set(err, FF_ERR_FORMAT,
                            "refused update without a refusal reason");
    if (h->parameter_count > FF_WIRE_MAX_PARAMS ||
        (h->parameter_count == 0 && !out->refused))
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "parameter_count %llu is outside 1..%u",
                            (unsigned long long)h->parameter_count,
                            (unsigned)FF_WIRE_MAX_PARAMS);
    if (h->n_group_examples > FF_WIRE_MAX_GROUPS ||
        (h->n_group_examples == 0 && !out->refused))
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%zu group counts, expected 1..%d",
                            h->n_group_examples, FF_WIRE_MAX_GROUPS);
    if (!isfinite(h->train_loss) || !isfinite(h->train_accuracy))
        return ff_error_set(err, FF_ERR_FORMAT,
                            "train loss or accuracy is not finite");
    out->round = h->round;
    out->param_count = h->parameter_count;
    out->n_groups = (uint32_t)h->n_group_examples;
    if (h->n_group_examples > 0)
        memcpy(out->group_examples, h->group_examples,
               h->n_group_examples * sizeof *h->group_examples);
    out->train_loss = h->train_loss;
    out->train_accuracy = h->train_accuracy;
    out->masked = h->masked != 0;
    return FF_OK;
}

/* Validates a chunk; on success out->owner takes the message. */
static ff_status chunk_decode(Fedfuse__UpdateMessage *m,
                              ff_wire_update_chunk *out, ff_error *err)
{
    const Fedfuse__UpdateChunk *c = m->chunk;

    if (c->data.len > FF_WIRE_CHUNK_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "oversized chunk: %zu bytes, at most %u",
                            c->data.len, (unsigned)FF_WIRE_CHUNK_MAX);
    if (c->data.len == 0 || c->data.len % 4 != 0 || c->offset % 4 != 0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "chunk of %zu bytes at offset %llu is not "
                            "whole float32 values", c->data.len,
                            (unsigned long long)c->offset);
    out->offset = c->offset;
    out->data = c->data.data;
    out->len = c->data.len;
    out->owner = m;
    return FF_OK;
}

ff_status ff_coord_wire_update_decode(const uint8_t *buf, size_t len,
                                      ff_wire_update_msg *out, ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__UpdateMessage *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__update_message__descriptor, buf, len, &pm,
                        err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__UpdateMessage *)pm;

    /* A header is copied out; a chunk keeps its message alive. */
    if (m->kind_case == FEDFUSE__UPDATE_MESSAGE__KIND_HEADER) {
        out->kind = FF_WIRE_UPDATE_HEADER;
        st = header_decode(m->header, &out->header, err);
    } else if (m->kind_case == FEDFUSE__UPDATE_MESSAGE__KIND_CHUNK) {
        out->kind = FF_WIRE_UPDATE_CHUNK;
        st = chunk_decode(m, &out->chunk, err);
        if (st == FF_OK)
            return FF_OK;
    } else {
        st = ff_error_set(err, FF_ERR_FORMAT,
                          "UpdateMessage holds neither header nor chunk");
    }
    fedfuse__update_message__free_unpacked(m, NULL);
    return st;
}

void ff_coord_wire_update_msg_cleanup(ff_wire_update_msg *msg)
{
    if (msg == NULL)
        return;
    if (msg->chunk.owner != NULL)
        fedfuse__update_message__free_unpacked(msg->chunk.owner, NULL);
    memset(msg, 0, sizeof *msg);
}

/* ---- replies ---- */

/* Checks that a reply string fits the protocol's text limit. */
static ff_status check_text(const char *s, const char *field, ff_error *err)
{
    if (strlen(s) > FF_WIRE_TEXT_MAX)
        return ff_error_set(err, FF_ERR_ARG, "%s is longer than %d bytes",
                            field, FF_WIRE_TEXT_MAX);
    return FF_OK;
}

ff_status ff_coord_wire_register_reply_encode(const ff_wire_register_reply *r,
                                              ff_wire_bytes *out,
                                              ff_error *err)
{
    Fedfuse__RegisterReply m = FEDFUSE__REGISTER_REPLY__INIT;
    ff_status st = check_text(r->reason, "reason", err);

    if (st != FF_OK)
        return st;
    m.accepted = r->accepted != 0;
    m.reason = (char *)r->reason;
    m.poll_interval_ms = r->poll_interval_ms;
    return ff_wire_pack(&m.base, out, err);
}

/* Checks a site-DP task and fills its protobuf form (borrowing t). */
static ff_status site_dp_fill(const ff_wire_site_dp_task *t,
                              Fedfuse__SiteDpTask *dp, ff_error *err)
{
    int dist = t->mode == FF_WIRE_SITE_DP_DISTRIBUTED;

    if (t->mode != FF_WIRE_SITE_DP_CENTRAL && !dist)
        return ff_error_set(err, FF_ERR_ARG, "invalid site-DP mode %d",
                            (int)t->mode);
    if (!isfinite(t->clip) || !(t->clip > 0.0))
        return ff_error_set(err, FF_ERR_ARG, "site-DP clip %g is not "
                            "finite and > 0", t->clip);
    if (dist && (t->bits < 2 || t->bits > 32 || t->padded == 0 ||
                 t->sites == 0 || !isfinite(t->scale) ||
                 !(t->scale > 0.0) || !isfinite(t->local_sigma2) ||
                 t->local_sigma2 < 0.0 || !isfinite(t->beta) ||
                 t->beta < 0.0))
        return ff_error_set(err, FF_ERR_ARG, "invalid DDGauss parameters "
                            "(bits %u, padded %llu, sites %u)",
                            (unsigned)t->bits,
                            (unsigned long long)t->padded,
                            (unsigned)t->sites);
    dp->mode = (Fedfuse__SiteDpMode)t->mode;
    dp->clip = t->clip;
    dp->report_unclipped = t->report_unclipped != 0;
    if (dist) {
        dp->bits = t->bits;
        dp->padded = t->padded;
        dp->scale = t->scale;
        dp->beta = t->beta;
        dp->local_sigma2 = t->local_sigma2;
        dp->sites = t->sites;
        dp->rotation_seed.data = (uint8_t *)t->rotation_seed;
        dp->rotation_seed.len = sizeof t->rotation_seed;
    }
    return FF_OK;
}

ff_status ff_coord_wire_poll_reply_encode(const ff_wire_poll_reply *r,
                                          ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__PollReply m = FEDFUSE__POLL_REPLY__INIT;
    Fedfuse__TrainConfig c = FEDFUSE__TRAIN_CONFIG__INIT;
    Fedfuse__SecAggTask sa = FEDFUSE__SEC_AGG_TASK__INIT;
    Fedfuse__SiteDpTask dp = FEDFUSE__SITE_DP_TASK__INIT;
    const ff_wire_train_config *tc = &r->config;
    ff_status st;

    if (r->action != FF_WIRE_WAIT && r->action != FF_WIRE_TRAIN &&
        r->action != FF_WIRE_FINISHED)
        return ff_error_set(err, FF_ERR_ARG, "invalid action %d",
                            (int)r->action);
    if (!ff_wire_optimizer_valid(tc->optimizer))
        return ff_error_set(err, FF_ERR_ARG, "invalid optimizer '%s'",
                            tc->optimizer);
    if (!ff_wire_lr_schedule_valid(tc->lr_schedule))
        return ff_error_set(err, FF_ERR_ARG, "invalid lr schedule '%s'",
                            tc->lr_schedule);

    /* The config travels with every reply; sites read it on TRAIN. */
    c.epochs = tc->epochs;
    c.batch_size = tc->batch_size;
    c.lr = tc->lr;
    c.optimizer = (char *)tc->optimizer;
    c.momentum = tc->momentum;
    c.modality_dropout = tc->modality_dropout;
    c.seed = tc->seed;
    c.weight_decay = tc->weight_decay;
    c.lr_schedule = (char *)tc->lr_schedule;
    m.action = (Fedfuse__Action)r->action;
    m.round = r->round;
    m.model_version = r->model_version;
    m.config = &c;
    m.poll_interval_ms = r->poll_interval_ms;
    if (r->secagg) {
        const ff_wire_secagg_task *t = &r->task;
        if (t->n_sites == 0 || t->n_sites > FF_WIRE_SECAGG_MAX_SITES ||
            t->identity_keys == NULL)
            return ff_error_set(err, FF_ERR_ARG, "secagg task for %u sites",
                                (unsigned)t->n_sites);
        sa.site_index = t->site_index;
        sa.n_sites = t->n_sites;
        sa.degree = t->degree;
        sa.threshold = t->threshold;
        sa.bits = t->bits;
        sa.length = t->length;
        sa.max_value = t->max_value;
        sa.graph_seed.data = (uint8_t *)t->graph_seed;
        sa.graph_seed.len = sizeof t->graph_seed;
        sa.clip = t->clip;
        sa.identity_keys.data = t->identity_keys;
        sa.identity_keys.len = (size_t)t->n_sites * FF_WIRE_IDENTITY_BYTES;
        m.secagg = &sa;
    }
    if (r->site_dp.mode != FF_WIRE_SITE_DP_NONE) {
        st = site_dp_fill(&r->site_dp, &dp, err);
        if (st != FF_OK)
            return st;
        m.site_dp = &dp;
    }
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_coord_wire_model_chunk_encode(const ff_wire_model_chunk *c,
                                           ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__ModelChunk m = FEDFUSE__MODEL_CHUNK__INIT;

    if (c->len > FF_WIRE_CHUNK_MAX || c->total_length > FF_WIRE_MAX_ARTIFACT ||
        c->offset + c->len > c->total_length)
        return ff_error_set(err, FF_ERR_ARG,
                            "chunk of %zu bytes at %llu of %llu is out of "
                            "range", c->len, (unsigned long long)c->offset,
                            (unsigned long long)c->total_length);
    if (c->metadata_len > FF_WIRE_METADATA_MAX ||
        c->len + c->metadata_len > FF_WIRE_CHUNK_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "metadata of %zu bytes with %zu data bytes "
                            "exceeds one chunk", c->metadata_len, c->len);
    m.offset = c->offset;
    m.total_length = c->total_length;
    m.digest.data = (uint8_t *)c->digest;
    m.digest.len = FF_WIRE_DIGEST_BYTES;
    m.model_version = c->model_version;
    m.data.data = (uint8_t *)c->data;
    m.data.len = c->len;

    /* The signature and what it covers ride on the first chunk. */
    if (c->offset == 0) {
        if (!ff_wire_id_valid(c->model))
            return ff_error_set(err, FF_ERR_ARG, "model name '%s' is not "
                                "valid", c->model);
        m.model = (char *)c->model;
        m.parent = c->parent;
        m.metadata = (char *)(c->metadata != NULL ? c->metadata : "");
    }
    if (c->offset == 0 && c->is_signed) {
        m.signature.data = (uint8_t *)c->signature;
        m.signature.len = FF_WIRE_SIG_BYTES;
        m.signer_key.data = (uint8_t *)c->signer_key;
        m.signer_key.len = FF_WIRE_SIGNER_BYTES;
    }
    return ff_wire_pack(&m.base, out, err);
}

ff_status ff_coord_wire_upload_reply_encode(const ff_wire_upload_reply *r,
                                            ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__UploadReply m = FEDFUSE__UPLOAD_REPLY__INIT;
    ff_status st = check_text(r->reason, "reason", err);

    if (st != FF_OK)
        return st;
    m.accepted = r->accepted != 0;
    m.reason = (char *)r->reason;
    m.retry_after_ms = r->retry_after_ms;
    return ff_wire_pack(&m.base, out, err);
}

/* ---- secure aggregation stages ---- */

ff_status ff_coord_wire_secagg_decode(const uint8_t *buf, size_t len,
                                      ff_wire_secagg_msg *out, ff_error *err)
{
    ProtobufCMessage *pm;
    Fedfuse__SecAggRequest *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = ff_wire_unpack(&fedfuse__sec_agg_request__descriptor, buf, len,
                        &pm, err);
    if (st != FF_OK)
        return st;
    m = (Fedfuse__SecAggRequest *)pm;

    /* Who, which round, which stage, how much. */
    st = copy_site_id(out->site_id, m->site_id, err);
    if (st == FF_OK && m->round < 1)
        st = ff_error_set(err, FF_ERR_FORMAT, "round %d is not >= 1",
                          (int)m->round);
    if (st == FF_OK && (m->stage < FEDFUSE__SEC_AGG_STAGE__SECAGG_ADVERT ||
                        m->stage > FEDFUSE__SEC_AGG_STAGE__SECAGG_UNMASK))
        st = ff_error_set(err, FF_ERR_FORMAT, "unknown secagg stage %d",
                          (int)m->stage);
    if (st == FF_OK && m->data.len > FF_WIRE_SECAGG_DATA_MAX)
        st = ff_error_set(err, FF_ERR_TOO_LARGE,
                          "secagg data of %zu bytes, at most %u",
                          m->data.len, (unsigned)FF_WIRE_SECAGG_DATA_MAX);
    if (st != FF_OK) {
        fedfuse__sec_agg_request__free_unpacked(m, NULL);
        return st;
    }
    out->round = m->round;
    out->stage = (ff_wire_secagg_stage)m->stage;
    out->data = m->data.data;
    out->len = m->data.len;
    out->owner = m;
    return FF_OK;
}

void ff_coord_wire_secagg_cleanup(ff_wire_secagg_msg *msg)
{
    if (msg == NULL)
        return;
    if (msg->owner != NULL)
        fedfuse__sec_agg_request__free_unpacked(msg->owner, NULL);
    memset(msg, 0, sizeof *msg);
}

ff_status ff_coord_wire_secagg_reply_encode(const ff_wire_secagg_msg *r,
                                            ff_wire_bytes *out, ff_error *err)
{
    Fedfuse__SecAggReply m = FEDFUSE__SEC_AGG_REPLY__INIT;
    ff_status st = check_text(r->reason, "reason", err);

    if (st != FF_OK)
        return st;
    if (r->len > FF_WIRE_SECAGG_DATA_MAX)
        return ff_error_set(err, FF_ERR_ARG,
                            "secagg reply of %zu bytes, at most %u", r->len,
                            (unsigned)FF_WIRE_SECAGG_DATA_MAX);
    m.status = (Fedfuse__SecAggStatus)r->status;
    m.data.data = (uint8_t *)r->data;
    m.data.len = r->len;
    m.reason = (char *)r->reason;
    return ff_wire_pack(&m.base, out, err);
}
