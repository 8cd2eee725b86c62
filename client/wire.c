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

/* ---- shared helpers ---- */

/* Refuses a serialised message longer than the protocol allows. */
static ff_status check_message_len(size_t len, const char *what,
                                   ff_error *err)
{
    if (len > FF_WIRE_MESSAGE_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s of %zu bytes exceeds the %u-byte limit",
                            what, len, (unsigned)FF_WIRE_MESSAGE_MAX);
    return FF_OK;
}

/* Copies a text field of at most cap-1 bytes without control characters;
 * NULL reads as "". */
static ff_status copy_text(char *dst, size_t cap, const char *src,
                           const char *field, ff_error *err)
{
    size_t i, n;

    if (src == NULL)
        src = "";
    n = strlen(src);
    if (n >= cap)
        return ff_error_set(err, FF_ERR_TOO_LARGE,
                            "%s has %zu bytes, more than %zu", field, n,
                            cap - 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "%s holds control characters", field);
    }
    memcpy(dst, src, n + 1);
    return FF_OK;
}

/* Serialises m into a malloc'd buffer. */
static ff_status pack_message(const ProtobufCMessage *m, ff_wire_bytes *out,
                              ff_error *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    out->data = malloc(n > 0 ? n : 1);
    out->len = 0;
    if (out->data == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory packing %zu "
                            "bytes", n);
    out->len = protobuf_c_message_pack(m, out->data);
    return FF_OK;
}

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
    return pack_message(&m.base, out, err);
}

ff_status ff_site_wire_poll_encode(const ff_wire_poll *r, ff_wire_bytes *out,
                                   ff_error *err)
{
    Fedfuse__PollRequest m = FEDFUSE__POLL_REQUEST__INIT;
    ff_status st = check_site_id(r->site_id, err);

    if (st != FF_OK)
        return st;
    m.site_id = (char *)r->site_id;
    return pack_message(&m.base, out, err);
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
    return pack_message(&m.base, out, err);
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
    m.kind_case = FEDFUSE__UPDATE_MESSAGE__KIND_HEADER;
    m.header = &hm;
    return pack_message(&m.base, out, err);
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
    return pack_message(&m.base, out, err);
}

/* ---- replies ---- */

ff_status ff_site_wire_register_reply_decode(const uint8_t *buf, size_t len,
                                             ff_wire_register_reply *out,
                                             ff_error *err)
{
    Fedfuse__RegisterReply *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = check_message_len(len, "RegisterReply", err);
    if (st != FF_OK)
        return st;
    m = fedfuse__register_reply__unpack(NULL, len, buf);
    if (m == NULL)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "RegisterReply does not parse");
    out->accepted = m->accepted != 0;
    out->poll_interval_ms = m->poll_interval_ms;
    st = copy_text(out->reason, sizeof out->reason, m->reason, "reason",
                   err);
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
    if (c->optimizer == NULL || (strcmp(c->optimizer, "sgd") != 0 &&
                                 strcmp(c->optimizer, "adam") != 0))
        return ff_error_set(err, FF_ERR_FORMAT, "unknown optimizer");
    if (c->lr_schedule == NULL ||
        (strcmp(c->lr_schedule, "constant") != 0 &&
         strcmp(c->lr_schedule, "cosine") != 0))
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

ff_status ff_site_wire_poll_reply_decode(const uint8_t *buf, size_t len,
                                         ff_wire_poll_reply *out,
                                         ff_error *err)
{
    Fedfuse__PollReply *m;
    ff_status st = FF_OK;

    memset(out, 0, sizeof *out);
    st = check_message_len(len, "PollReply", err);
    if (st != FF_OK)
        return st;
    m = fedfuse__poll_reply__unpack(NULL, len, buf);
    if (m == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "PollReply does not parse");

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
    } else if (m->action != FEDFUSE__ACTION__ACTION_WAIT &&
               m->action != FEDFUSE__ACTION__ACTION_FINISHED) {
        st = ff_error_set(err, FF_ERR_FORMAT, "unknown action %d",
                          (int)m->action);
    }
    fedfuse__poll_reply__free_unpacked(m, NULL);
    return st;
}

ff_status ff_site_wire_model_chunk_decode(const uint8_t *buf, size_t len,
                                          ff_wire_model_chunk *out,
                                          ff_error *err)
{
    Fedfuse__ModelChunk *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = check_message_len(len, "ModelChunk", err);
    if (st != FF_OK)
        return st;
    m = fedfuse__model_chunk__unpack(NULL, len, buf);
    if (m == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "ModelChunk does not parse");

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
    if (st != FF_OK) {
        fedfuse__model_chunk__free_unpacked(m, NULL);
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
    Fedfuse__UploadReply *m;
    ff_status st;

    memset(out, 0, sizeof *out);
    st = check_message_len(len, "UploadReply", err);
    if (st != FF_OK)
        return st;
    m = fedfuse__upload_reply__unpack(NULL, len, buf);
    if (m == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "UploadReply does not parse");
    out->accepted = m->accepted != 0;
    st = copy_text(out->reason, sizeof out->reason, m->reason, "reason",
                   err);
    fedfuse__upload_reply__free_unpacked(m, NULL);
    return st;
}
