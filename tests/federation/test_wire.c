/*
 * Tests for the protocol conversions: coordinator/wire.c and client/wire.c.
 * Every message goes through one side's encoder and the other side's
 * decoder; malformed and oversized messages, written byte by byte with a
 * tiny protobuf writer below (independent of the generated code), must be
 * refused with the right status; and a mutation loop feeds thousands of
 * corrupted messages to every decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "../../client/wire.h"
#include "../../coordinator/wire.h"

#include "../common/pb_writer.h"

/* ---- fixtures ---- */

static const char *DIGEST_HEX =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static ff_wire_register sample_register(void)
{
    ff_wire_register r;

    memset(&r, 0, sizeof r);
    strcpy(r.site_id, "hospital-a.eu_1");
    strcpy(r.code_version, "0.1.0+abc");
    r.modalities = 0x5;              /* image and pen */
    r.example_count = 1234;
    strcpy(r.manifest_digest, DIGEST_HEX);
    return r;
}

static ff_wire_update_header sample_header(void)
{
    ff_wire_update_header h;

    memset(&h, 0, sizeof h);
    strcpy(h.site_id, "site-2");
    h.round = 3;
    h.param_count = 1000;
    h.n_groups = 5;
    for (uint32_t g = 0; g < h.n_groups; g++)
        h.group_examples[g] = 100 + g;
    h.train_loss = 1.25;
    h.train_accuracy = 0.5;
    return h;
}

/* ---- Register ---- */

/* A registration survives the trip from site to coordinator. */
static void register_round_trip(void **state)
{
    ff_wire_register in = sample_register(), out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    assert_int_equal(ff_site_wire_register_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_register_decode(b.data, b.len, &out,
                                                   &err), FF_OK);
    assert_string_equal(out.site_id, in.site_id);
    assert_string_equal(out.code_version, in.code_version);
    assert_int_equal(out.modalities, in.modalities);
    assert_int_equal(out.example_count, in.example_count);
    assert_string_equal(out.manifest_digest, in.manifest_digest);
    free(b.data);
}

/* Decodes a hand-made RegisterRequest and returns the status. */
static ff_status register_crafted(const char *site, const char *version,
                                  const char *modality, const char *digest,
                                  ff_error *err)
{
    ff_wire_register out;
    pbuf b = {0};
    ff_status st;

    pb_str(&b, 1, site);
    pb_str(&b, 2, version);
    pb_str(&b, 3, modality);
    pb_uint(&b, 4, 10);
    pb_str(&b, 5, digest);
    st = ff_coord_wire_register_decode(b.p, b.n, &out, err);
    pb_free(&b);
    return st;
}

/* Bad site ids, modalities, digests, garbage and oversized input. */
static void register_malformed_is_refused(void **state)
{
    char long_id[80];
    uint8_t *big;
    ff_wire_register r = sample_register(), out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(register_crafted("site-1", "v", "pen", DIGEST_HEX, &err),
                     FF_OK);
    assert_int_equal(register_crafted("bad id!", "v", "pen", DIGEST_HEX,
                                      &err), FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "site_id"));
    assert_int_equal(register_crafted("", "v", "pen", DIGEST_HEX, &err),
                     FF_ERR_FORMAT);
    assert_int_equal(register_crafted(long_id, "v", "pen", DIGEST_HEX, &err),
                     FF_ERR_TOO_LARGE);
    assert_int_equal(register_crafted("s", "v", "smell", DIGEST_HEX, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "smell"));
    assert_int_equal(register_crafted("s", "v", "pen", "abc", &err),
                     FF_ERR_FORMAT);
    assert_int_equal(register_crafted("s", "v\n1", "pen", DIGEST_HEX, &err),
                     FF_ERR_FORMAT);

    /* Garbage, truncation, over the size limit. */
    assert_int_equal(ff_coord_wire_register_decode((const uint8_t *)"\xff\xff"
                                                   "\xff\xff", 4, &out, &err),
                     FF_ERR_FORMAT);
    assert_int_equal(ff_site_wire_register_encode(&r, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_register_decode(b.data, b.len - 3, &out,
                                                   &err), FF_ERR_FORMAT);
    free(b.data);
    big = calloc(FF_WIRE_MESSAGE_MAX + 1, 1);
    assert_non_null(big);
    assert_int_equal(ff_coord_wire_register_decode(big,
                                                   FF_WIRE_MESSAGE_MAX + 1,
                                                   &out, &err),
                     FF_ERR_TOO_LARGE);
    free(big);

    /* The site's encoder refuses an invalid id of its own. */
    strcpy(r.site_id, "no/slash");
    assert_int_equal(ff_site_wire_register_encode(&r, &b, &err), FF_ERR_ARG);
}

/* The coordinator's reply reaches the site; an over-long reason does not
 * leave the coordinator, nor is it accepted by the site. */
static void register_reply_round_trip_and_limits(void **state)
{
    ff_wire_register_reply in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};
    char reason[FF_WIRE_TEXT_MAX + 40];
    pbuf pb = {0};

    (void)state;
    memset(&in, 0, sizeof in);
    in.accepted = 0;
    strcpy(in.reason, "unknown site id");
    in.poll_interval_ms = 250;
    assert_int_equal(ff_coord_wire_register_reply_encode(&in, &b, &err),
                     FF_OK);
    assert_int_equal(ff_site_wire_register_reply_decode(b.data, b.len, &out,
                                                        &err), FF_OK);
    assert_int_equal(out.accepted, 0);
    assert_string_equal(out.reason, "unknown site id");
    assert_int_equal(out.poll_interval_ms, 250);
    free(b.data);

    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    pb_uint(&pb, 1, 1);
    pb_str(&pb, 2, reason);
    assert_int_equal(ff_site_wire_register_reply_decode(pb.p, pb.n, &out,
                                                        &err),
                     FF_ERR_TOO_LARGE);
    pb_free(&pb);
}

/* ---- Poll ---- */

static void poll_round_trip(void **state)
{
    ff_wire_poll p, pout;
    ff_wire_poll_reply in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    memset(&p, 0, sizeof p);
    strcpy(p.site_id, "site-9");
    assert_int_equal(ff_site_wire_poll_encode(&p, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_poll_decode(b.data, b.len, &pout, &err),
                     FF_OK);
    assert_string_equal(pout.site_id, "site-9");
    free(b.data);

    memset(&in, 0, sizeof in);
    in.action = FF_WIRE_TRAIN;
    in.round = 4;
    in.model_version = 3;
    in.poll_interval_ms = 500;
    in.config.epochs = 2;
    in.config.batch_size = 32;
    in.config.lr = 0.01f;
    strcpy(in.config.optimizer, "adam");
    strcpy(in.config.lr_schedule, "cosine");
    in.config.momentum = 0.9f;
    in.config.modality_dropout = 0.25f;
    in.config.weight_decay = 0.0001f;
    in.config.seed = 123456789012345ull;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &out,
                                                    &err), FF_OK);
    free(b.data);
    assert_int_equal(out.action, FF_WIRE_TRAIN);
    assert_int_equal(out.round, 4);
    assert_int_equal(out.model_version, 3);
    assert_int_equal(out.poll_interval_ms, 500);
    assert_int_equal(out.config.epochs, 2);
    assert_int_equal(out.config.batch_size, 32);
    assert_true(out.config.lr == 0.01f);
    assert_string_equal(out.config.optimizer, "adam");
    assert_string_equal(out.config.lr_schedule, "cosine");
    assert_true(out.config.momentum == 0.9f);
    assert_true(out.config.modality_dropout == 0.25f);
    assert_true(out.config.weight_decay == 0.0001f);
    assert_true(out.config.seed == 123456789012345ull);

    /* FINISHED needs no config; an unknown optimizer never leaves. */
    in.action = FF_WIRE_FINISHED;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &out,
                                                    &err), FF_OK);
    assert_int_equal(out.action, FF_WIRE_FINISHED);
    free(b.data);
    strcpy(in.config.optimizer, "rmsprop");
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err),
                     FF_ERR_ARG);
    strcpy(in.config.optimizer, "sgd");
    strcpy(in.config.lr_schedule, "step");
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err),
                     FF_ERR_ARG);
}

/* Writes a TrainConfig message with one field changed. */
static void crafted_config_s(pbuf *c, uint32_t epochs, float lr,
                             const char *optimizer, float momentum,
                             const char *schedule)
{
    pb_uint(c, 1, epochs);
    pb_uint(c, 2, 16);
    pb_float(c, 3, lr);
    pb_str(c, 4, optimizer);
    pb_float(c, 5, momentum);
    pb_float(c, 6, 0.1f);
    pb_uint(c, 7, 5);
    pb_str(c, 9, schedule);
}

static void crafted_config(pbuf *c, uint32_t epochs, float lr,
                           const char *optimizer, float momentum)
{
    crafted_config_s(c, epochs, lr, optimizer, momentum, "constant");
}

/* Decodes a hand-made PollReply. */
static ff_status poll_crafted(int action, int round, const pbuf *config,
                              ff_error *err)
{
    ff_wire_poll_reply out;
    pbuf b = {0};
    ff_status st;

    pb_uint(&b, 1, (uint64_t)action);
    pb_uint(&b, 2, (uint64_t)round);
    if (config != NULL)
        pb_bytes(&b, 4, config->p, config->n);
    st = ff_site_wire_poll_reply_decode(b.p, b.n, &out, err);
    pb_free(&b);
    return st;
}

/* The site refuses replies it cannot act on safely. */
static void poll_reply_malformed_is_refused(void **state)
{
    pbuf good = {0}, c = {0};
    ff_error err = {0};

    (void)state;
    crafted_config(&good, 1, 0.1f, "sgd", 0.5f);
    assert_int_equal(poll_crafted(1, 2, &good, &err), FF_OK);
    assert_int_equal(poll_crafted(7, 2, &good, &err), FF_ERR_FORMAT);
    assert_int_equal(poll_crafted(1, 2, NULL, &err), FF_ERR_FORMAT);
    assert_int_equal(poll_crafted(1, 0, &good, &err), FF_ERR_FORMAT);

    crafted_config(&c, 0, 0.1f, "sgd", 0.5f);
    assert_int_equal(poll_crafted(1, 2, &c, &err), FF_ERR_FORMAT);
    pb_free(&c);
    crafted_config(&c, 1, NAN, "sgd", 0.5f);
    assert_int_equal(poll_crafted(1, 2, &c, &err), FF_ERR_FORMAT);
    pb_free(&c);
    crafted_config(&c, 1, 0.1f, "rmsprop", 0.5f);
    assert_int_equal(poll_crafted(1, 2, &c, &err), FF_ERR_FORMAT);
    pb_free(&c);
    crafted_config(&c, 1, 0.1f, "sgd", 1.5f);
    assert_int_equal(poll_crafted(1, 2, &c, &err), FF_ERR_FORMAT);
    pb_free(&c);
    crafted_config_s(&c, 1, 0.1f, "sgd", 0.5f, "step");
    assert_int_equal(poll_crafted(1, 2, &c, &err), FF_ERR_FORMAT);
    pb_free(&c);
    pb_free(&good);
}

/* ---- DownloadModel ---- */

static void model_chunk_round_trip(void **state)
{
    ff_wire_download d, dout;
    ff_wire_model_chunk in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};
    uint8_t data[300];

    (void)state;
    memset(&d, 0, sizeof d);
    strcpy(d.site_id, "s1");
    d.round = 7;
    assert_int_equal(ff_site_wire_download_encode(&d, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_download_decode(b.data, b.len, &dout,
                                                   &err), FF_OK);
    assert_int_equal(dout.round, 7);
    free(b.data);
    d.round = 0;
    assert_int_equal(ff_site_wire_download_encode(&d, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_download_decode(b.data, b.len, &dout,
                                                   &err), FF_ERR_FORMAT);
    free(b.data);

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    memset(&in, 0, sizeof in);
    in.offset = 100;
    in.total_length = 1000;
    memset(in.digest, 0xab, sizeof in.digest);
    in.model_version = 12;
    in.data = data;
    in.len = sizeof data;
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_model_chunk_decode(b.data, b.len, &out,
                                                     &err), FF_OK);
    free(b.data);
    assert_int_equal(out.offset, 100);
    assert_int_equal(out.total_length, 1000);
    assert_int_equal(out.model_version, 12);
    assert_memory_equal(out.digest, in.digest, sizeof in.digest);
    assert_int_equal(out.len, sizeof data);
    assert_memory_equal(out.data, data, sizeof data);
    ff_site_wire_model_chunk_cleanup(&out);
    ff_site_wire_model_chunk_cleanup(&out);     /* harmless twice */

    /* The coordinator never sends a chunk over the limit. */
    in.len = FF_WIRE_CHUNK_MAX + 1;
    in.total_length = FF_WIRE_CHUNK_MAX * 2;
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err),
                     FF_ERR_ARG);
}

/* The first chunk carries the signed claim: model, parent, metadata,
 * signature and signer key; a production download names round 0. */
static void model_chunk_signature_round_trip(void **state)
{
    static const char meta[] = "{\"round\":3,\"sites\":[\"a\",\"b\"]}";
    ff_wire_download d, dout;
    ff_wire_model_chunk in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};
    uint8_t data[100] = {9, 8, 7};

    (void)state;
    memset(&d, 0, sizeof d);
    strcpy(d.site_id, "s1");
    d.production = 1;
    assert_int_equal(ff_site_wire_download_encode(&d, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_download_decode(b.data, b.len, &dout,
                                                   &err), FF_OK);
    assert_int_equal(dout.production, 1);
    assert_int_equal(dout.round, 0);
    free(b.data);
    d.round = 2;        /* production with a round: malformed */
    assert_int_equal(ff_site_wire_download_encode(&d, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_download_decode(b.data, b.len, &dout,
                                                   &err), FF_ERR_FORMAT);
    free(b.data);

    memset(&in, 0, sizeof in);
    in.total_length = 1000;
    in.model_version = 4;
    in.data = data;
    in.len = sizeof data;
    strcpy(in.model, "feddigits");
    in.parent = 3;
    in.metadata = meta;
    in.metadata_len = strlen(meta);
    in.is_signed = 1;
    memset(in.signature, 0x5a, sizeof in.signature);
    memset(in.signer_key, 0xc3, sizeof in.signer_key);
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_model_chunk_decode(b.data, b.len, &out,
                                                     &err), FF_OK);
    free(b.data);
    assert_int_equal(out.is_signed, 1);
    assert_string_equal(out.model, "feddigits");
    assert_int_equal(out.parent, 3);
    assert_int_equal(out.metadata_len, strlen(meta));
    assert_memory_equal(out.metadata, meta, strlen(meta));
    assert_memory_equal(out.signature, in.signature, sizeof in.signature);
    assert_memory_equal(out.signer_key, in.signer_key,
                        sizeof in.signer_key);
    ff_site_wire_model_chunk_cleanup(&out);

    /* Unsigned: no signature fields at all. */
    in.is_signed = 0;
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_model_chunk_decode(b.data, b.len, &out,
                                                     &err), FF_OK);
    free(b.data);
    assert_int_equal(out.is_signed, 0);
    ff_site_wire_model_chunk_cleanup(&out);

    /* Metadata and data must fit one chunk together; a first chunk names
     * its model. */
    in.len = FF_WIRE_CHUNK_MAX - in.metadata_len + 1;
    in.total_length = FF_WIRE_CHUNK_MAX * 2;
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err),
                     FF_ERR_ARG);
    in.len = sizeof data;
    in.model[0] = '\0';
    assert_int_equal(ff_coord_wire_model_chunk_encode(&in, &b, &err),
                     FF_ERR_ARG);
}

/* Signature fields of the wrong size, and metadata over the limit, are
 * refused by the site's decoder. */
static void model_chunk_bad_signature_is_refused(void **state)
{
    uint8_t sig[65] = {0}, key[33] = {0}, data[10] = {0};
    char *meta = malloc(FF_WIRE_METADATA_MAX + 2);
    ff_wire_model_chunk out;
    ff_error err = {0};
    size_t cases[3][2] = {{63, 32}, {64, 31}, {64, 0}};
    int k;

    (void)state;
    assert_non_null(meta);
    for (k = 0; k < 3; k++) {
        pbuf b = {0};
        pb_uint(&b, 2, 10);
        pb_bytes(&b, 3, sig, 32);
        pb_uint(&b, 4, 1);
        pb_bytes(&b, 5, data, sizeof data);
        pb_bytes(&b, 6, sig, cases[k][0]);
        pb_bytes(&b, 7, key, cases[k][1]);
        pb_bytes(&b, 9, "m", 1);
        assert_int_equal(ff_site_wire_model_chunk_decode(b.p, b.n, &out,
                                                         &err),
                         FF_ERR_FORMAT);
        printf("signature %zu + key %zu bytes: %s\n", cases[k][0],
               cases[k][1], err.msg);
        ff_site_wire_model_chunk_cleanup(&out);
        pb_free(&b);
    }
    {
        pbuf b = {0};
        memset(meta, 'x', FF_WIRE_METADATA_MAX + 1);
        pb_uint(&b, 2, 10);
        pb_bytes(&b, 3, sig, 32);
        pb_bytes(&b, 5, data, sizeof data);
        pb_bytes(&b, 8, meta, FF_WIRE_METADATA_MAX + 1);
        pb_bytes(&b, 9, "m", 1);
        assert_int_equal(ff_site_wire_model_chunk_decode(b.p, b.n, &out,
                                                         &err),
                         FF_ERR_TOO_LARGE);
        ff_site_wire_model_chunk_cleanup(&out);
        pb_free(&b);
    }
    free(meta);
}

/* Decodes a hand-made ModelChunk. */
static ff_status chunk_crafted(uint64_t offset, uint64_t total,
                               size_t digest_len, size_t data_len,
                               ff_error *err)
{
    ff_wire_model_chunk out;
    uint8_t digest[40] = {0};
    uint8_t *data = calloc(data_len + 1, 1);
    pbuf b = {0};
    ff_status st;

    assert_non_null(data);
    pb_uint(&b, 1, offset);
    pb_uint(&b, 2, total);
    pb_bytes(&b, 3, digest, digest_len);
    pb_uint(&b, 4, 1);
    pb_bytes(&b, 5, data, data_len);
    if (offset == 0)
        pb_bytes(&b, 9, (const uint8_t *)"feddigits", 9);
    st = ff_site_wire_model_chunk_decode(b.p, b.n, &out, err);
    ff_site_wire_model_chunk_cleanup(&out);
    pb_free(&b);
    free(data);
    return st;
}

/* Oversized chunks and lengths are refused before anything is allocated
 * for them. */
static void model_chunk_malformed_is_refused(void **state)
{
    ff_error err = {0};

    (void)state;
    assert_int_equal(chunk_crafted(0, 100, 32, 100, &err), FF_OK);
    assert_int_equal(chunk_crafted(0, FF_WIRE_CHUNK_MAX * 2ull, 32,
                                   FF_WIRE_CHUNK_MAX + 1, &err),
                     FF_ERR_TOO_LARGE);
    printf("oversized model chunk: %s\n", err.msg);
    assert_int_equal(chunk_crafted(0, FF_WIRE_MAX_ARTIFACT + 1ull, 32, 10,
                                   &err), FF_ERR_TOO_LARGE);
    assert_int_equal(chunk_crafted(0, 0, 32, 0, &err), FF_ERR_TOO_LARGE);
    assert_int_equal(chunk_crafted(95, 100, 32, 10, &err), FF_ERR_FORMAT);
    assert_int_equal(chunk_crafted(UINT64_MAX - 3, 100, 32, 10, &err),
                     FF_ERR_FORMAT);
    assert_int_equal(chunk_crafted(0, 100, 31, 10, &err), FF_ERR_FORMAT);
}

/* ---- UploadUpdate ---- */

static void update_round_trip(void **state)
{
    ff_wire_update_header h = sample_header();
    ff_wire_update_chunk c;
    ff_wire_update_msg m;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};
    float vals[64];

    (void)state;
    assert_int_equal(ff_site_wire_update_header_encode(&h, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_update_decode(b.data, b.len, &m, &err),
                     FF_OK);
    free(b.data);
    assert_int_equal(m.kind, FF_WIRE_UPDATE_HEADER);
    assert_string_equal(m.header.site_id, "site-2");
    assert_int_equal(m.header.round, 3);
    assert_int_equal(m.header.param_count, 1000);
    assert_int_equal(m.header.n_groups, 5);
    assert_int_equal(m.header.group_examples[4], 104);
    assert_true(m.header.train_loss == 1.25);
    ff_coord_wire_update_msg_cleanup(&m);

    for (int i = 0; i < 64; i++)
        vals[i] = (float)i * 0.5f - 3.0f;
    c.offset = 256;
    c.data = (const uint8_t *)vals;
    c.len = sizeof vals;
    c.owner = NULL;
    assert_int_equal(ff_site_wire_update_chunk_encode(&c, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_update_decode(b.data, b.len, &m, &err),
                     FF_OK);
    free(b.data);
    assert_int_equal(m.kind, FF_WIRE_UPDATE_CHUNK);
    assert_int_equal(m.chunk.offset, 256);
    assert_int_equal(m.chunk.len, sizeof vals);
    assert_memory_equal(m.chunk.data, vals, sizeof vals);
    ff_coord_wire_update_msg_cleanup(&m);
}

/* Encodes a chunk of n bytes at offset and decodes it. */
static ff_status chunk_trip(uint64_t offset, size_t n, ff_error *err)
{
    uint8_t *data = calloc(n + 1, 1);
    ff_wire_update_chunk c = {offset, data, n, NULL};
    ff_wire_update_msg m;
    ff_wire_bytes b = {NULL, 0};
    ff_status st;

    assert_non_null(data);
    assert_int_equal(ff_site_wire_update_chunk_encode(&c, &b, err), FF_OK);
    st = ff_coord_wire_update_decode(b.data, b.len, &m, err);
    ff_coord_wire_update_msg_cleanup(&m);
    free(b.data);
    free(data);
    return st;
}

/* Encodes a header with one thing wrong and decodes it. */
static ff_status header_trip(ff_wire_update_header h, ff_error *err)
{
    ff_wire_update_msg m;
    ff_wire_bytes b = {NULL, 0};
    ff_status st;

    assert_int_equal(ff_site_wire_update_header_encode(&h, &b, err), FF_OK);
    st = ff_coord_wire_update_decode(b.data, b.len, &m, err);
    ff_coord_wire_update_msg_cleanup(&m);
    free(b.data);
    return st;
}

static void update_malformed_is_refused(void **state)
{
    ff_wire_update_header h = sample_header();
    ff_wire_update_msg m;
    ff_error err = {0};
    pbuf b = {0}, inner = {0};

    (void)state;
    /* Chunks: oversized, ragged, misaligned, empty. */
    assert_int_equal(chunk_trip(0, FF_WIRE_CHUNK_MAX, &err), FF_OK);
    assert_int_equal(chunk_trip(0, FF_WIRE_CHUNK_MAX + 4, &err),
                     FF_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "oversized chunk"));
    printf("oversized update chunk: %s\n", err.msg);
    assert_int_equal(chunk_trip(0, 6, &err), FF_ERR_FORMAT);
    assert_int_equal(chunk_trip(2, 8, &err), FF_ERR_FORMAT);
    assert_int_equal(chunk_trip(0, 0, &err), FF_ERR_FORMAT);

    /* Headers: each limit. */
    h.round = 0;
    assert_int_equal(header_trip(h, &err), FF_ERR_FORMAT);
    h = sample_header();
    h.param_count = 0;
    assert_int_equal(header_trip(h, &err), FF_ERR_TOO_LARGE);
    h.param_count = FF_WIRE_MAX_PARAMS + 1ull;
    assert_int_equal(header_trip(h, &err), FF_ERR_TOO_LARGE);
    h = sample_header();
    h.n_groups = 0;
    assert_int_equal(header_trip(h, &err), FF_ERR_TOO_LARGE);
    h = sample_header();
    h.train_loss = NAN;
    assert_int_equal(header_trip(h, &err), FF_ERR_FORMAT);
    h = sample_header();
    strcpy(h.site_id, "evil\x01id");
    assert_int_equal(header_trip(h, &err), FF_ERR_FORMAT);

    /* Hand-made: 17 group counts (over FF_WIRE_MAX_GROUPS). */
    pb_str(&inner, 1, "s");
    pb_uint(&inner, 2, 1);
    pb_uint(&inner, 3, 10);
    for (int g = 0; g < FF_WIRE_MAX_GROUPS + 1; g++)
        pb_uint(&inner, 4, 1);
    pb_double(&inner, 5, 0.0);
    pb_bytes(&b, 1, inner.p, inner.n);
    assert_int_equal(ff_coord_wire_update_decode(b.p, b.n, &m, &err),
                     FF_ERR_TOO_LARGE);
    ff_coord_wire_update_msg_cleanup(&m);
    pb_free(&b);
    pb_free(&inner);

    /* Neither header nor chunk. */
    assert_int_equal(ff_coord_wire_update_decode((const uint8_t *)"", 0, &m,
                                                 &err), FF_ERR_FORMAT);
    ff_coord_wire_update_msg_cleanup(&m);
}


/* ---- privacy fields ---- */

/* A refusal and a DP report survive the trip; a refusal may carry no
 * counts at all. */
static void update_dp_report_round_trip(void **state)
{
    ff_wire_update_header h = sample_header();
    ff_wire_update_msg m;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    strcpy(h.dp_mechanism, "dp-sgd");
    h.dp_epsilon = 3.25;
    h.dp_delta = 1e-5;
    h.dp_epsilon_budget = 8.0;
    h.dp_noise_multiplier = 1.1;
    h.dp_clip = 1.0;
    h.dp_sampling_rate = 0.25;
    h.dp_steps = 4;
    h.unclipped = 1;
    assert_int_equal(ff_site_wire_update_header_encode(&h, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_update_decode(b.data, b.len, &m, &err),
                     FF_OK);
    free(b.data);
    assert_string_equal(m.header.dp_mechanism, "dp-sgd");
    assert_true(m.header.dp_epsilon == 3.25);
    assert_true(m.header.dp_delta == 1e-5);
    assert_true(m.header.dp_epsilon_budget == 8.0);
    assert_true(m.header.dp_noise_multiplier == 1.1);
    assert_true(m.header.dp_sampling_rate == 0.25);
    assert_int_equal(m.header.dp_steps, 4);
    assert_int_equal(m.header.unclipped, 1);
    assert_int_equal(m.header.refused, 0);
    ff_coord_wire_update_msg_cleanup(&m);

    /* A refusal without counts. */
    h.param_count = 0;
    h.n_groups = 0;
    h.refused = 1;
    strcpy(h.refusal, "privacy budget: epsilon would be 9.1 > 8");
    assert_int_equal(ff_site_wire_update_header_encode(&h, &b, &err), FF_OK);
    assert_int_equal(ff_coord_wire_update_decode(b.data, b.len, &m, &err),
                     FF_OK);
    free(b.data);
    assert_int_equal(m.header.refused, 1);
    assert_int_equal(m.header.param_count, 0);
    assert_string_equal(m.header.refusal,
                        "privacy budget: epsilon would be 9.1 > 8");
    ff_coord_wire_update_msg_cleanup(&m);
}

/* Writes an UpdateMessage whose header has one DP field set by hand
 * (a double at field, or the mechanism text) and decodes it. */
static ff_status dp_header_crafted(int field, double v, const char *mech,
                                   int refused, ff_error *err)
{
    pbuf b = {0}, inner = {0};
    ff_wire_update_msg m;
    ff_status st;

    pb_str(&inner, 1, "site-1");
    pb_uint(&inner, 2, 1);
    pb_uint(&inner, 3, 10);
    pb_uint(&inner, 4, 1);
    if (refused)
        pb_uint(&inner, 8, 1);
    if (mech != NULL)
        pb_str(&inner, 10, mech);
    if (field > 0)
        pb_double(&inner, field, v);
    pb_bytes(&b, 1, inner.p, inner.n);
    st = ff_coord_wire_update_decode(b.p, b.n, &m, err);
    ff_coord_wire_update_msg_cleanup(&m);
    pb_free(&b);
    pb_free(&inner);
    return st;
}

/* Untrusted DP numbers: NaN, infinite, negative or out of range are
 * refused with the field named; so are an unknown mechanism and a
 * refusal without a reason. */
static void update_dp_report_malformed_is_refused(void **state)
{
    static const struct {
        int field;
        double v;
        const char *name;
    } bad[] = {
        {11, NAN, "dp_epsilon"},     {11, -1.0, "dp_epsilon"},
        {11, INFINITY, "dp_epsilon"}, {12, 1.5, "dp_delta"},
        {13, -0.5, "dp_epsilon_budget"}, {14, NAN, "dp_noise_multiplier"},
        {15, -2.0, "dp_clip"},       {16, 1.01, "dp_sampling_rate"},
    };
    ff_error err = {0};
    size_t i;

    (void)state;
    assert_int_equal(dp_header_crafted(11, 2.0, "dp-sgd", 0, &err), FF_OK);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dp_header_crafted(bad[i].field, bad[i].v, "dp-sgd",
                                           0, &err), FF_ERR_FORMAT);
        assert_non_null(strstr(err.msg, bad[i].name));
    }
    printf("bad DP report: %s\n", err.msg);
    assert_int_equal(dp_header_crafted(0, 0.0, "laplace", 0, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "dp_mechanism"));
    assert_int_equal(dp_header_crafted(0, 0.0, NULL, 1, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "refusal"));
    printf("refusal without reason: %s\n", err.msg);
}

/* The site-DP task reaches the site as sent; a bad one never leaves. */
static void poll_reply_site_dp_round_trip(void **state)
{
    ff_wire_poll_reply in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    memset(&in, 0, sizeof in);
    in.action = FF_WIRE_TRAIN;
    in.round = 2;
    in.config.epochs = 1;
    in.config.batch_size = 8;
    in.config.lr = 0.01f;
    strcpy(in.config.optimizer, "sgd");
    strcpy(in.config.lr_schedule, "constant");
    in.site_dp.mode = FF_WIRE_SITE_DP_CENTRAL;
    in.site_dp.clip = 0.75;
    in.site_dp.report_unclipped = 1;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &out,
                                                    &err), FF_OK);
    free(b.data);
    assert_int_equal(out.site_dp.mode, FF_WIRE_SITE_DP_CENTRAL);
    assert_true(out.site_dp.clip == 0.75);
    assert_int_equal(out.site_dp.report_unclipped, 1);

    /* No mode, no task. */
    in.site_dp.mode = FF_WIRE_SITE_DP_NONE;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_poll_reply_decode(b.data, b.len, &out,
                                                    &err), FF_OK);
    free(b.data);
    assert_int_equal(out.site_dp.mode, FF_WIRE_SITE_DP_NONE);

    /* A clip that is not positive, DDGauss parameters that are absent. */
    in.site_dp.mode = FF_WIRE_SITE_DP_CENTRAL;
    in.site_dp.clip = -1.0;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err),
                     FF_ERR_ARG);
    in.site_dp.clip = 1.0;
    in.site_dp.mode = FF_WIRE_SITE_DP_DISTRIBUTED;
    assert_int_equal(ff_coord_wire_poll_reply_encode(&in, &b, &err),
                     FF_ERR_ARG);
    printf("bad site-DP task: %s\n", err.msg);
}

static void upload_reply_round_trip(void **state)
{
    ff_wire_upload_reply in, out;
    ff_wire_bytes b = {NULL, 0};
    ff_error err = {0};

    (void)state;
    memset(&in, 0, sizeof in);
    strcpy(in.reason, "wrong parameter count: 3, the model has 4");
    assert_int_equal(ff_coord_wire_upload_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_upload_reply_decode(b.data, b.len, &out,
                                                      &err), FF_OK);
    assert_int_equal(out.accepted, 0);
    assert_string_equal(out.reason, in.reason);
    assert_int_equal(out.retry_after_ms, 0);
    free(b.data);

    /* Busy: not accepted, with the wait the site should keep. */
    strcpy(in.reason, "busy: 1 uploads in flight (the cap)");
    in.retry_after_ms = 250;
    assert_int_equal(ff_coord_wire_upload_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_upload_reply_decode(b.data, b.len, &out,
                                                      &err), FF_OK);
    assert_int_equal(out.accepted, 0);
    assert_int_equal(out.retry_after_ms, 250);
    free(b.data);
    in.retry_after_ms = 0;
    in.accepted = 1;
    in.reason[0] = '\0';
    assert_int_equal(ff_coord_wire_upload_reply_encode(&in, &b, &err), FF_OK);
    assert_int_equal(ff_site_wire_upload_reply_decode(b.data, b.len, &out,
                                                      &err), FF_OK);
    assert_int_equal(out.accepted, 1);
    free(b.data);
}

/* ---- mutation fuzzing ---- */

static uint64_t fz = 88172645463325252ull;
static uint32_t fz_next(void)
{
    fz ^= fz << 13;
    fz ^= fz >> 7;
    fz ^= fz << 17;
    return (uint32_t)fz;
}

/* Corrupts a copy of msg: flips, overwrites, truncates or inserts. */
static size_t mutate(const uint8_t *msg, size_t n, uint8_t *out)
{
    size_t len = n, i, k = 1 + fz_next() % 4;

    memcpy(out, msg, n);
    for (i = 0; i < k && len > 0; i++) {
        size_t at = fz_next() % len;
        switch (fz_next() % 4) {
        case 0: out[at] ^= (uint8_t)(1u << (fz_next() % 8)); break;
        case 1: out[at] = (uint8_t)fz_next(); break;
        case 2: len = at; break;
        default:
            memmove(out + at + 1, out + at, len - at);
            out[at] = (uint8_t)fz_next();
            len++;
        }
    }
    return len;
}

/* Every decoder returns OK or a refusal for corrupted input, and what it
 * accepts respects the limits. */
static void decoders_survive_mutations(void **state)
{
    enum { ROUNDS = 4000 };
    ff_wire_register reg = sample_register();
    ff_wire_update_header hdr = sample_header();
    ff_wire_bytes src[4];
    uint8_t buf[1024];
    ff_error err = {0};
    int accepted = 0, refused = 0;
    uint8_t data[64] = {1, 2, 3};
    ff_wire_model_chunk mc;
    ff_wire_poll_reply pr;

    (void)state;
    memset(&mc, 0, sizeof mc);
    mc.total_length = 64;
    mc.model_version = 1;
    mc.data = data;
    mc.len = 64;
    strcpy(mc.model, "feddigits");
    memset(&pr, 0, sizeof pr);
    pr.action = FF_WIRE_TRAIN;
    pr.round = 1;
    pr.config.epochs = 1;
    pr.config.batch_size = 8;
    pr.config.lr = 0.1f;
    strcpy(pr.config.optimizer, "sgd");
    strcpy(pr.config.lr_schedule, "constant");
    assert_int_equal(ff_site_wire_register_encode(&reg, &src[0], &err), FF_OK);
    assert_int_equal(ff_site_wire_update_header_encode(&hdr, &src[1], &err),
                     FF_OK);
    assert_int_equal(ff_coord_wire_model_chunk_encode(&mc, &src[2], &err),
                     FF_OK);
    assert_int_equal(ff_coord_wire_poll_reply_encode(&pr, &src[3], &err),
                     FF_OK);

    for (int r = 0; r < ROUNDS; r++) {
        int which = r % 4;
        size_t n;
        ff_status st;

        assert_true(src[which].len + 8 < sizeof buf);
        n = mutate(src[which].data, src[which].len, buf);
        if (which == 0) {
            ff_wire_register o;
            st = ff_coord_wire_register_decode(buf, n, &o, &err);
            if (st == FF_OK)
                assert_true(ff_wire_id_valid(o.site_id));
        } else if (which == 1) {
            ff_wire_update_msg o;
            st = ff_coord_wire_update_decode(buf, n, &o, &err);
            if (st == FF_OK && o.kind == FF_WIRE_UPDATE_HEADER)
                assert_true(o.header.n_groups <= FF_WIRE_MAX_GROUPS &&
                            ff_wire_id_valid(o.header.site_id));
            if (st == FF_OK && o.kind == FF_WIRE_UPDATE_CHUNK)
                assert_true(o.chunk.len <= FF_WIRE_CHUNK_MAX);
            ff_coord_wire_update_msg_cleanup(&o);
        } else if (which == 2) {
            ff_wire_model_chunk o;
            st = ff_site_wire_model_chunk_decode(buf, n, &o, &err);
            if (st == FF_OK)
                assert_true(o.len <= FF_WIRE_CHUNK_MAX &&
                            o.offset + o.len <= o.total_length);
            ff_site_wire_model_chunk_cleanup(&o);
        } else {
            ff_wire_poll_reply o;
            st = ff_site_wire_poll_reply_decode(buf, n, &o, &err);
            if (st == FF_OK && o.action == FF_WIRE_TRAIN)
                assert_true(o.config.epochs >= 1 && o.config.lr > 0.0f);
        }
        assert_true(st == FF_OK || st == FF_ERR_FORMAT ||
                    st == FF_ERR_TOO_LARGE);
        if (st == FF_OK)
            accepted++;
        else
            refused++;
    }
    printf("mutations: %d decoded within limits, %d refused\n", accepted,
           refused);
    assert_true(refused > 0);
    for (int i = 0; i < 4; i++)
        free(src[i].data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(register_round_trip),
        cmocka_unit_test(register_malformed_is_refused),
        cmocka_unit_test(register_reply_round_trip_and_limits),
        cmocka_unit_test(poll_round_trip),
        cmocka_unit_test(poll_reply_malformed_is_refused),
        cmocka_unit_test(model_chunk_round_trip),
        cmocka_unit_test(model_chunk_malformed_is_refused),
        cmocka_unit_test(model_chunk_signature_round_trip),
        cmocka_unit_test(model_chunk_bad_signature_is_refused),
        cmocka_unit_test(update_round_trip),
        cmocka_unit_test(update_malformed_is_refused),
        cmocka_unit_test(upload_reply_round_trip),
        cmocka_unit_test(update_dp_report_round_trip),
        cmocka_unit_test(update_dp_report_malformed_is_refused),
        cmocka_unit_test(poll_reply_site_dp_round_trip),
        cmocka_unit_test(decoders_survive_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
