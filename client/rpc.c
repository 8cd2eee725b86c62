/*
 * rpc.c - the site's gRPC calls to the coordinator: unary Register and
 * Poll, server-streaming DownloadModel, client-streaming UploadUpdate.
 * Blocking calls on one pluck completion queue; one batch at a time.
 */
#include "ff_site_rpc.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ff_log.h"
#include "../proto/ff_grpc_buf.h"
#include "../trust/ff_trust.h"
#include "wire.h"

struct ff_site_rpc {
    grpc_channel *channel;
    grpc_completion_queue *cq;
};

/* Reconnect backoff after the coordinator went away (ms). */
#define FF_RPC_BACKOFF_MIN_MS 200
#define FF_RPC_BACKOFF_MAX_MS 2000

/* Channel credentials: mutual TLS with the site's certificate, or
 * insecure when tls is NULL (logged). The key's copy is wiped. */
static ff_status credentials_make(const ff_site_tls *tls,
                                  grpc_channel_credentials **out,
                                  ff_error *err)
{
    grpc_ssl_pem_key_cert_pair pair;
    char *ca = NULL, *cert = NULL, *key = NULL;
    size_t ca_len = 0, cert_len = 0, key_len = 0;
    ff_status st;

    *out = NULL;
    if (tls == NULL) {
        FF_WARN("TLS is off (tls = off): the channel to the coordinator is "
                "neither encrypted nor authenticated; use this only for "
                "insecure tests");
        *out = grpc_insecure_credentials_create();
        return FF_OK;
    }
    st = ff_trust_file_read(tls->ca, &ca, &ca_len, err);
    if (st == FF_OK && tls->cert != NULL)
        st = ff_trust_file_read(tls->cert, &cert, &cert_len, err);
    if (st == FF_OK && tls->cert != NULL)
        st = ff_trust_file_read(tls->key, &key, &key_len, err);
    if (st == FF_OK) {
        pair.private_key = key;
        pair.cert_chain = cert;
        *out = grpc_ssl_credentials_create(ca, cert != NULL ? &pair : NULL,
                                           NULL, NULL);
        if (*out == NULL)
            st = ff_error_set(err, FF_ERR_INTERNAL, "gRPC refused the TLS "
                              "credentials of %s", tls->ca);
    }
    if (key != NULL)
        sodium_memzero(key, key_len);
    free(key);
    free(cert);
    free(ca);
    return st;
}

ff_status ff_site_rpc_create(ff_site_rpc **out, const char *target,
                             const ff_site_tls *tls, ff_error *err)
{
    grpc_arg args[FF_GRPC_BUF_LIMIT_ARGS + 3];
    grpc_channel_args ca = {FF_GRPC_BUF_LIMIT_ARGS + 3, args};
    grpc_channel_credentials *creds;
    ff_site_rpc *r;
    ff_status st;

    *out = NULL;
    if (target == NULL || strchr(target, ':') == NULL)
        return ff_error_set(err, FF_ERR_ARG,
                            "coordinator address '%s' is not HOST:PORT",
                            target ? target : "");
    st = credentials_make(tls, &creds, err);
    if (st != FF_OK)
        return st;
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        grpc_channel_credentials_release(creds);
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    }

    /* Receive limit a little above one chunk; quick reconnects. */
    memset(args, 0, sizeof args);
    ff_grpc_buf_limit_args(args);
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    args[2].value.integer = FF_RPC_BACKOFF_MIN_MS;
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
    args[3].value.integer = FF_RPC_BACKOFF_MIN_MS;
    args[4].type = GRPC_ARG_INTEGER;
    args[4].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[4].value.integer = FF_RPC_BACKOFF_MAX_MS;

    r->channel = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    r->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (r->channel == NULL || r->cq == NULL) {
        ff_site_rpc_destroy(r);
        return ff_error_set(err, FF_ERR_INTERNAL, "cannot create a channel");
    }
    *out = r;
    return FF_OK;
}

void ff_site_rpc_destroy(ff_site_rpc *r)
{
    if (r == NULL)
        return;
    if (r->cq != NULL) {
        grpc_completion_queue_shutdown(r->cq);
        while (grpc_completion_queue_pluck(r->cq, NULL,
                                           gpr_inf_future(GPR_CLOCK_REALTIME),
                                           NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(r->cq);
    }
    if (r->channel != NULL)
        grpc_channel_destroy(r->channel);
    free(r);
}

/* ---- call plumbing ---- */

/* What one call holds; released by call_end. */
typedef struct rpc_call {
    ff_site_rpc *r;
    const char *method;
    grpc_call *call;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    grpc_byte_buffer *recv;
    int status_received;
} rpc_call;

/* Starts a call to method with a deadline timeout_s from now. */
static void call_begin(rpc_call *c, ff_site_rpc *r, const char *method,
                       double timeout_s)
{
    gpr_timespec deadline = gpr_time_add(
        gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_millis((int64_t)(timeout_s * 1000.0), GPR_TIMESPAN));

    memset(c, 0, sizeof *c);
    c->r = r;
    c->method = method;
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    c->details = grpc_empty_slice();
    c->call = grpc_channel_create_call(r->channel, NULL,
                                       GRPC_PROPAGATE_DEFAULTS, r->cq,
                                       grpc_slice_from_static_string(method),
                                       NULL, deadline, NULL);
}

/* Runs one batch and waits for it. Returns 1 when it succeeded. */
static int call_batch(rpc_call *c, const grpc_op *ops, size_t n)
{
    int tag = 0;
    grpc_event ev;

    if (grpc_call_start_batch(c->call, ops, n, &tag, NULL) != GRPC_CALL_OK)
        return 0;
    ev = grpc_completion_queue_pluck(c->r->cq, &tag,
                                     gpr_inf_future(GPR_CLOCK_REALTIME),
                                     NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Receives the final status (cancelling first when abort is set). */
static void call_status(rpc_call *c, int abort)
{
    grpc_op op;

    if (c->status_received)
        return;
    if (abort)
        grpc_call_cancel(c->call, NULL);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    op.data.recv_status_on_client.status = &c->status;
    op.data.recv_status_on_client.status_details = &c->details;
    op.data.recv_status_on_client.error_string = &c->error_string;
    c->status_received = call_batch(c, &op, 1);
}

/* Turns a non-OK status into an error. */
static ff_status status_error(const rpc_call *c, ff_error *err)
{
    char *details = grpc_slice_to_c_string(c->details);
    ff_status st = FF_ERR_RPC;

    if (c->status == GRPC_STATUS_PERMISSION_DENIED)
        st = FF_ERR_REJECTED;
    else if (c->status == GRPC_STATUS_FAILED_PRECONDITION)
        st = FF_ERR_STATE;
    else if (c->status == GRPC_STATUS_NOT_FOUND)
        st = FF_ERR_NOT_FOUND;
    ff_error_set(err, st, "%s: status %d: %s", c->method, (int)c->status,
                 details != NULL && details[0] ? details : "(no details)");
    gpr_free(details);
    return st;
}

/* Releases what the call holds. */
static void call_end(rpc_call *c)
{
    if (c->recv != NULL)
        grpc_byte_buffer_destroy(c->recv);
    gpr_free((void *)c->error_string);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    if (c->call != NULL)
        grpc_call_unref(c->call);
}

/* One request, one reply: *reply receives the reply bytes (unref it). */
static ff_status unary(ff_site_rpc *r, const char *method, ff_wire_bytes *req,
                       grpc_slice *reply, double timeout_s, ff_error *err)
{
    grpc_byte_buffer *send = ff_grpc_buf_from_bytes(req);
    grpc_op ops[5];
    rpc_call c;
    ff_status st = FF_OK;

    call_begin(&c, r, method, timeout_s);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c.initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c.recv;
    call_batch(&c, ops, 5);
    call_status(&c, 0);

    /* The status decides; a reply must come with OK. */
    if (!c.status_received)
        st = ff_error_set(err, FF_ERR_RPC, "%s: no status", method);
    else if (c.status != GRPC_STATUS_OK)
        st = status_error(&c, err);
    else if (c.recv == NULL)
        st = ff_error_set(err, FF_ERR_RPC, "%s: OK without a reply", method);
    else
        st = ff_grpc_buf_read(c.recv, "reply", reply, err);
    grpc_byte_buffer_destroy(send);
    call_end(&c);
    return st;
}

/* ---- unary methods ---- */

ff_status ff_site_rpc_register(ff_site_rpc *r, const ff_wire_register *req,
                               ff_wire_register_reply *rep, double timeout_s,
                               ff_error *err)
{
    ff_wire_bytes out = {NULL, 0};
    grpc_slice in;
    ff_status st = ff_site_wire_register_encode(req, &out, err);

    if (st != FF_OK)
        return st;
    st = unary(r, FF_WIRE_METHOD_REGISTER, &out, &in, timeout_s, err);
    if (st != FF_OK)
        return st;
    st = ff_site_wire_register_reply_decode(GRPC_SLICE_START_PTR(in),
                                            GRPC_SLICE_LENGTH(in), rep, err);
    grpc_slice_unref(in);
    return st;
}

ff_status ff_site_rpc_poll(ff_site_rpc *r, const ff_wire_poll *req,
                           ff_wire_poll_reply *rep, double timeout_s,
                           ff_error *err)
{
    ff_wire_bytes out = {NULL, 0};
    grpc_slice in;
    ff_status st = ff_site_wire_poll_encode(req, &out, err);

    if (st != FF_OK)
        return st;
    st = unary(r, FF_WIRE_METHOD_POLL, &out, &in, timeout_s, err);
    if (st != FF_OK)
        return st;
    st = ff_site_wire_poll_reply_decode(GRPC_SLICE_START_PTR(in),
                                        GRPC_SLICE_LENGTH(in), rep, err);
    grpc_slice_unref(in);
    return st;
}

/* ---- DownloadModel ---- */

/* The artifact being reassembled, and the first chunk's claim. */
typedef struct download {
    uint8_t *data;
    size_t total;
    size_t received;
    uint8_t digest[FF_WIRE_DIGEST_BYTES];
    int version;
    crypto_generichash_state hash;
    ff_site_model *m;           /* receives the claim and signature */
} download;

/* Keeps what the first chunk says of the model's signature. */
static ff_status download_claim(download *d, const ff_wire_model_chunk *c,
                                ff_error *err)
{
    ff_site_model *m = d->m;

    m->metadata = malloc(c->metadata_len + 1);
    if (m->metadata == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    memcpy(m->metadata, c->metadata, c->metadata_len);
    m->metadata[c->metadata_len] = '\0';
    snprintf(m->model, sizeof m->model, "%s", c->model);
    m->parent = c->parent;
    m->is_signed = c->is_signed;
    memcpy(m->signature, c->signature, sizeof m->signature);
    memcpy(m->signer_key, c->signer_key, sizeof m->signer_key);
    return FF_OK;
}

/* Takes one chunk: the first sets length, digest, version and the claim
 * (length capped before allocating); every later one must agree and
 * follow on. */
static ff_status download_chunk(download *d, const ff_wire_model_chunk *c,
                                ff_error *err)
{
    if (d->data == NULL) {
        ff_status st;
        if (c->offset != 0)
            return ff_error_set(err, FF_ERR_FORMAT, "the first model chunk "
                                "is at offset %llu",
                                (unsigned long long)c->offset);
        d->total = (size_t)c->total_length;   /* <= FF_WIRE_MAX_ARTIFACT */
        memcpy(d->digest, c->digest, sizeof d->digest);
        d->version = c->model_version;
        d->data = malloc(d->total);
        if (d->data == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory for a "
                                "model of %zu bytes", d->total);
        crypto_generichash_init(&d->hash, NULL, 0, FF_WIRE_DIGEST_BYTES);
        st = download_claim(d, c, err);
        if (st != FF_OK)
            return st;
    }
    if (c->total_length != d->total || c->model_version != d->version ||
        memcmp(c->digest, d->digest, sizeof d->digest) != 0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "model chunk at %llu disagrees with the first "
                            "on length, version or digest",
                            (unsigned long long)c->offset);
    if (c->offset != d->received || c->len == 0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "model chunk at offset %llu (%zu bytes), "
                            "expected offset %zu",
                            (unsigned long long)c->offset, c->len,
                            d->received);
    memcpy(d->data + d->received, c->data, c->len);
    crypto_generichash_update(&d->hash, c->data, c->len);
    d->received += c->len;
    return FF_OK;
}

/* Receives chunks until the stream ends; returns the first error. */
static ff_status download_stream(rpc_call *c, download *d, ff_error *err)
{
    for (;;) {
        ff_wire_model_chunk ch;
        grpc_slice in;
        grpc_op op;
        ff_status st;

        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &c->recv;
        if (!call_batch(c, &op, 1) || c->recv == NULL)
            return FF_OK;           /* end of stream (or failure: status) */
        st = ff_grpc_buf_read(c->recv, "reply", &in, err);
        grpc_byte_buffer_destroy(c->recv);
        c->recv = NULL;
        if (st != FF_OK)
            return st;
        st = ff_site_wire_model_chunk_decode(GRPC_SLICE_START_PTR(in),
                                             GRPC_SLICE_LENGTH(in), &ch, err);
        grpc_slice_unref(in);
        if (st == FF_OK)
            st = download_chunk(d, &ch, err);
        ff_site_wire_model_chunk_cleanup(&ch);
        if (st != FF_OK)
            return st;
    }
}

/* Checks the reassembled artifact: complete, and its digest. */
static ff_status download_verify(download *d, ff_error *err)
{
    uint8_t actual[FF_WIRE_DIGEST_BYTES];

    if (d->data == NULL)
        return ff_error_set(err, FF_ERR_FORMAT, "download sent no chunk");
    if (d->received != d->total)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "model download ended at %zu of %zu bytes",
                            d->received, d->total);
    crypto_generichash_final(&d->hash, actual, sizeof actual);
    if (sodium_memcmp(actual, d->digest, sizeof actual) != 0)
        return ff_error_set(err, FF_ERR_DIGEST,
                            "model of %zu bytes does not match its "
                            "BLAKE2b-256 digest", d->total);
    return FF_OK;
}

void ff_site_model_cleanup(ff_site_model *m)
{
    if (m == NULL)
        return;
    free(m->artifact);
    free(m->metadata);
    memset(m, 0, sizeof *m);
}

ff_status ff_site_model_verify(const ff_site_model *m, const uint8_t pk[32],
                               const char *what, ff_error *err)
{
    char pk_hex[2 * FF_WIRE_SIGNER_BYTES + 1];
    char by_hex[2 * FF_WIRE_SIGNER_BYTES + 1];
    char initial[FF_WIRE_ID_MAX + sizeof FF_WIRE_INITIAL_SUFFIX];
    ff_trust_model_claim claim;
    ff_error e = {0};
    ff_status st;

    sodium_bin2hex(pk_hex, sizeof pk_hex, pk, FF_WIRE_SIGNER_BYTES);
    if (!m->is_signed)
        return ff_error_set(err, FF_ERR_AUTH, "refusing model version %d: "
                            "it carries no signature (the pinned "
                            "coordinator key is %.16s...); %s", m->version,
                            pk_hex, what);
    if (sodium_memcmp(m->signer_key, pk, FF_WIRE_SIGNER_BYTES) != 0) {
        sodium_bin2hex(by_hex, sizeof by_hex, m->signer_key,
                       FF_WIRE_SIGNER_BYTES);
        return ff_error_set(err, FF_ERR_AUTH, "refusing model version %d: "
                            "it is signed by key %.16s..., not by the "
                            "pinned coordinator key %.16s...; %s",
                            m->version, by_hex, pk_hex, what);
    }

    /* The signature over the claim, and the bytes against its digest. */
    memset(&claim, 0, sizeof claim);
    claim.model = m->model;
    claim.version = m->version;
    claim.parent = m->parent;
    memcpy(claim.digest, m->digest, sizeof claim.digest);
    claim.metadata_json = m->metadata != NULL ? m->metadata : "";
    if (m->version == 0) {      /* the initial model: see ff_wire.h */
        snprintf(initial, sizeof initial, "%s%s", m->model,
                 FF_WIRE_INITIAL_SUFFIX);
        claim.model = initial;
        claim.version = 1;
        claim.parent = 0;
    }
    st = ff_trust_model_verify(&claim, m->artifact, m->len, m->signature,
                               pk, &e);
    if (st == FF_ERR_DIGEST)
        return ff_error_set(err, FF_ERR_AUTH, "refusing model version %d: "
                            "its bytes do not match the digest signed with "
                            "the pinned coordinator key %.16s... (%s); %s",
                            m->version, pk_hex, ff_error_text(&e), what);
    if (st != FF_OK)
        return ff_error_set(err, FF_ERR_AUTH, "refusing model version %d: "
                            "the signature does not verify with the pinned "
                            "coordinator key %.16s... (%s); %s", m->version,
                            pk_hex, ff_error_text(&e), what);
    return FF_OK;
}

ff_status ff_site_rpc_download(ff_site_rpc *r, const ff_wire_download *req,
                               ff_site_model *m, double timeout_s,
                               ff_error *err)
{
    ff_wire_bytes out = {NULL, 0};
    grpc_byte_buffer *send;
    grpc_op ops[4];
    download d;
    rpc_call c;
    ff_status st;

    memset(m, 0, sizeof *m);
    st = ff_site_wire_download_encode(req, &out, err);
    if (st != FF_OK)
        return st;
    memset(&d, 0, sizeof d);
    d.m = m;
    send = ff_grpc_buf_from_bytes(&out);

    /* Request, then the stream of chunks, then the status. */
    call_begin(&c, r, FF_WIRE_METHOD_DOWNLOAD, timeout_s);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c.initial_md;
    if (call_batch(&c, ops, 4))
        st = download_stream(&c, &d, err);
    call_status(&c, st != FF_OK);
    if (st == FF_OK && !c.status_received)
        st = ff_error_set(err, FF_ERR_RPC, "DownloadModel: no status");
    else if (st == FF_OK && c.status != GRPC_STATUS_OK)
        st = status_error(&c, err);
    if (st == FF_OK)
        st = download_verify(&d, err);
    grpc_byte_buffer_destroy(send);
    call_end(&c);

    if (st != FF_OK) {
        free(d.data);
        ff_site_model_cleanup(m);
        return st;
    }
    m->artifact = d.data;
    m->len = d.total;
    m->version = d.version;
    memcpy(m->digest, d.digest, sizeof m->digest);
    return FF_OK;
}

/* ---- UploadUpdate ---- */

/* Sends one encoded message; returns 1 when it went out. */
static int upload_send(rpc_call *c, ff_wire_bytes *msg, int first)
{
    grpc_byte_buffer *bb = ff_grpc_buf_from_bytes(msg);
    grpc_op ops[2];
    size_t n = 0;
    int ok;

    memset(ops, 0, sizeof ops);
    if (first)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    ok = call_batch(c, ops, n);
    grpc_byte_buffer_destroy(bb);
    return ok;
}

/* Sleeps ms milliseconds. */
static void sleep_ms(uint32_t ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Tests only: FEDFUSE_TEST_UPLOAD_PAUSE_MS=N (1..10000) makes every
 * upload pause N ms after its header, so that it holds its coordinator
 * buffer long enough for others to find the coordinator busy. */
static void test_upload_pause(void)
{
    const char *v = getenv("FEDFUSE_TEST_UPLOAD_PAUSE_MS");
    long ms = v != NULL ? strtol(v, NULL, 10) : 0;

    if (ms > 0 && ms <= 10000)
        sleep_ms((uint32_t)ms);
}

/* Sends the header and the data chunks; stops at the first failed send
 * (the coordinator may answer before reading everything). */
static ff_status upload_stream(rpc_call *c, const ff_wire_update_header *h,
                               const uint8_t *data, size_t len, size_t chunk,
                               int *sent_all, ff_error *err)
{
    ff_wire_bytes msg = {NULL, 0};
    size_t off = 0;
    ff_status st;

    *sent_all = 0;
    st = ff_site_wire_update_header_encode(h, &msg, err);
    if (st != FF_OK)
        return st;
    if (!upload_send(c, &msg, 1))
        return FF_OK;
    test_upload_pause();
    while (off < len) {
        ff_wire_update_chunk ch;
        ch.offset = off;
        ch.data = data + off;
        ch.len = len - off < chunk ? len - off : chunk;
        ch.owner = NULL;
        st = ff_site_wire_update_chunk_encode(&ch, &msg, err);
        if (st != FF_OK)
            return st;
        if (!upload_send(c, &msg, 0))
            return FF_OK;
        off += ch.len;
    }
    *sent_all = 1;
    return FF_OK;
}

/* Half-closes (when everything went out) and reads the verdict. */
static void upload_verdict(rpc_call *c, int sent_all)
{
    grpc_op ops[2];

    memset(ops, 0, sizeof ops);
    if (sent_all) {
        ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        call_batch(c, ops, 1);
        memset(ops, 0, sizeof ops);
    }
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &c->recv;
    call_batch(c, ops, 2);
    call_status(c, 0);
}

ff_status ff_site_rpc_upload(ff_site_rpc *r, const ff_wire_update_header *h,
                             const uint8_t *data, size_t len,
                             size_t chunk_bytes, ff_wire_upload_reply *rep,
                             double timeout_s, ff_error *err)
{
    grpc_slice in;
    rpc_call c;
    int sent_all = 0;
    ff_status st;

    memset(rep, 0, sizeof *rep);
    if (chunk_bytes == 0)
        chunk_bytes = FF_WIRE_CHUNK_MAX;
    call_begin(&c, r, FF_WIRE_METHOD_UPLOAD, timeout_s);
    st = upload_stream(&c, h, data, len, chunk_bytes, &sent_all, err);
    if (st == FF_OK)
        upload_verdict(&c, sent_all);
    else
        call_status(&c, 1);

    /* The verdict travels as a reply with status OK. */
    if (st == FF_OK && !c.status_received)
        st = ff_error_set(err, FF_ERR_RPC, "UploadUpdate: no status");
    else if (st == FF_OK && c.status != GRPC_STATUS_OK)
        st = status_error(&c, err);
    else if (st == FF_OK && c.recv == NULL)
        st = ff_error_set(err, FF_ERR_RPC, "UploadUpdate: OK without a "
                          "verdict");
    else if (st == FF_OK) {
        st = ff_grpc_buf_read(c.recv, "reply", &in, err);
        if (st == FF_OK) {
            st = ff_site_wire_upload_reply_decode(GRPC_SLICE_START_PTR(in),
                                                  GRPC_SLICE_LENGTH(in), rep,
                                                  err);
            grpc_slice_unref(in);
        }
    }
    call_end(&c);
    return st;
}

/* Seconds of the monotonic clock. */
static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

ff_status ff_site_rpc_upload_patient(ff_site_rpc *r,
                                     const ff_wire_update_header *h,
                                     const uint8_t *data, size_t len,
                                     ff_wire_upload_reply *rep,
                                     double timeout_s, double wait_s,
                                     ff_error *err)
{
    double until = mono_s() + wait_s;
    unsigned tries = 0;
    ff_status st;

    for (;;) {
        uint32_t ms;

        /* One try; anything but busy is the answer. */
        st = ff_site_rpc_upload(r, h, data, len, 0, rep, timeout_s, err);
        if (st != FF_OK || rep->accepted || rep->retry_after_ms == 0)
            return st;
        tries++;

        /* Busy: wait the asked time plus jitter, within the bound. */
        ms = rep->retry_after_ms > 60000u ? 60000u : rep->retry_after_ms;
        ms += randombytes_uniform(ms / 2u + 1u);
        if (mono_s() + ms * 1e-3 > until)
            return ff_error_set(err, FF_ERR_TIMEOUT,
                                "the coordinator was still busy after %u "
                                "tries in %.0f s: %s", tries, wait_s,
                                rep->reason);
        if (tries == 1)
            FF_INFO("coordinator busy, sending the update again in %u ms",
                    (unsigned)ms);
        sleep_ms(ms);
    }
}

/* ---- SecAgg ---- */

void ff_site_rpc_poll_reply_cleanup(ff_wire_poll_reply *rep)
{
    ff_site_wire_poll_reply_cleanup(rep);
}

ff_status ff_site_rpc_secagg(ff_site_rpc *r, const ff_wire_secagg_msg *req,
                             ff_wire_secagg_msg *rep, double timeout_s,
                             ff_error *err)
{
    ff_wire_bytes out = {NULL, 0};
    grpc_slice in;
    ff_status st = ff_site_wire_secagg_encode(req, &out, err);

    memset(rep, 0, sizeof *rep);
    if (st != FF_OK)
        return st;
    st = unary(r, FF_WIRE_METHOD_SECAGG, &out, &in, timeout_s, err);
    if (st != FF_OK)
        return st;
    st = ff_site_wire_secagg_reply_decode(GRPC_SLICE_START_PTR(in),
                                          GRPC_SLICE_LENGTH(in), rep, err);
    grpc_slice_unref(in);
    return st;
}

void ff_site_rpc_secagg_cleanup(ff_wire_secagg_msg *rep)
{
    ff_site_wire_secagg_reply_cleanup(rep);
}
