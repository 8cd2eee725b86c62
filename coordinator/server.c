/*
 * server.c - gRPC C core server of the coordinator.
 *
 * Each call is a heap context that is also its completion-queue tag. Only
 * one batch per call is outstanding at any time, so a context is touched
 * by one worker thread at a time and needs no lock. Steps:
 *   REQUESTED  -> (method known) send initial metadata + receive message
 *   RECEIVING  -> unary: handle, reply; download: start sending chunks;
 *                 upload: handle the message, receive the next one
 *   SENDING    -> one ModelChunk per batch until the artifact is sent
 *   FINISHING  -> the status went out; free the context
 *
 * With mTLS the server asks for a client certificate but lets every
 * handshake through (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY):
 * each call's certificate is checked by ff_federation_authorize against
 * the site id its message claims, so that every refusal has a reason in
 * the log and in the reply.
 */
#include "server.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ff_log.h"
#include "../proto/ff_grpc_buf.h"
#include "../trust/ff_trust.h"
#include "wire.h"

/* Calls requested ahead, and worker threads. */
#define FF_SERVER_PENDING 8
#define FF_SERVER_WORKERS 2

typedef enum call_step {
    STEP_REQUESTED = 0,
    STEP_RECEIVING,
    STEP_SENDING,
    STEP_FINISHING
} call_step;

typedef enum call_method {
    METHOD_UNKNOWN = 0,
    METHOD_REGISTER,
    METHOD_POLL,
    METHOD_DOWNLOAD,
    METHOD_UPLOAD,
    METHOD_SECAGG
} call_method;

struct ff_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    ff_federation *fed;
    pthread_t workers[FF_SERVER_WORKERS];
    int n_workers;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int shutting_down;
    int shutdown_done;
    int live_calls;
    int started;                /* grpc_server_start was called */
    int finished;               /* ff_server_shutdown ran */
    int cq_down;                /* the queue was shut down and drained */
    char shutdown_tag;          /* its address is the shutdown tag */
};

typedef struct call {
    ff_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    call_step step;
    call_method method;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    grpc_slice status_details;
    int has_status_details;
    int cancelled;
    /* the client certificate of the TLS handshake (PEM), or NULL */
    char *peer_pem;
    size_t peer_len;
    /* DownloadModel */
    ff_model_blob *blob;
    size_t offset;
    size_t sending;
    /* UploadUpdate */
    ff_upload *upload;
} call;

/* ---- calls: allocation and batches ---- */

/* Asks gRPC for the next incoming call. */
static void call_request(ff_server *s)
{
    call *c = calloc(1, sizeof *c);

    if (c == NULL) {
        FF_ERROR("out of memory for a call context");
        return;
    }
    c->srv = s;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    pthread_mutex_lock(&s->lock);
    s->live_calls++;
    pthread_mutex_unlock(&s->lock);
    if (grpc_server_request_call(s->server, &c->call, &c->details, &c->md,
                                 s->cq, s->cq, c) != GRPC_CALL_OK) {
        FF_ERROR("grpc_server_request_call failed");
        pthread_mutex_lock(&s->lock);
        s->live_calls--;
        pthread_mutex_unlock(&s->lock);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
    }
}

/* Releases everything a call holds. */
static void call_free(call *c)
{
    ff_server *s = c->srv;

    if (c->upload != NULL)
        ff_federation_upload_abandon(s->fed, c->upload, NULL);
    ff_federation_blob_release(s->fed, c->blob);
    if (c->recv != NULL)
        grpc_byte_buffer_destroy(c->recv);
    if (c->send != NULL)
        grpc_byte_buffer_destroy(c->send);
    if (c->has_status_details)
        grpc_slice_unref(c->status_details);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call != NULL)
        grpc_call_unref(c->call);
    free(c->peer_pem);
    free(c);
    pthread_mutex_lock(&s->lock);
    s->live_calls--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Starts a batch; when gRPC refuses it, the tag never comes back, so the
 * call is freed here. */
static void call_batch(call *c, const grpc_op *ops, size_t n)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);

    if (e != GRPC_CALL_OK) {
        FF_ERROR("grpc_call_start_batch failed (%d)", (int)e);
        call_free(c);
    }
}

/* Receives the next message (with the initial metadata the first time). */
static void call_receive(call *c, int first)
{
    grpc_op ops[2];
    size_t n = 0;

    memset(ops, 0, sizeof ops);
    if (first)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &c->recv;
    c->step = STEP_RECEIVING;
    call_batch(c, ops, n);
}

/* Ends the call: an optional reply (taken over), then the status. */
static void call_finish(call *c, grpc_byte_buffer *reply,
                        grpc_status_code code, const char *details,
                        int send_metadata)
{
    grpc_op ops[4];
    size_t n = 0;

    memset(ops, 0, sizeof ops);
    if (send_metadata)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (reply != NULL) {
        c->send = reply;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = reply;
    }
    c->status_details = grpc_slice_from_copied_string(details);
    c->has_status_details = 1;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details =
        &c->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->step = STEP_FINISHING;
    call_batch(c, ops, n);
}

/* The gRPC status for a handler's error. */
static grpc_status_code status_code(ff_status st)
{
    switch (st) {
    case FF_ERR_REJECTED:
        return GRPC_STATUS_PERMISSION_DENIED;
    case FF_ERR_STATE:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case FF_ERR_DB:
        return GRPC_STATUS_UNAVAILABLE;
    case FF_ERR_NOT_FOUND:
        return GRPC_STATUS_NOT_FOUND;
    case FF_ERR_FORMAT:
    case FF_ERR_TOO_LARGE:
    case FF_ERR_ARG:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case FF_ERR_NOMEM:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}

/* Ends the call with an error status and its reason. */
static void call_fail(call *c, ff_status st, const ff_error *err)
{
    call_finish(c, NULL, status_code(st), ff_error_text(err), 0);
}

/* ---- unary methods: Register, Poll ---- */

/* Checks the caller's certificate against the site id it claims. */
static ff_status call_authorize(call *c, const char *claimed,
                                const char *method, char *serial,
                                ff_error *err)
{
    return ff_federation_authorize(c->srv->fed, c->peer_pem, c->peer_len,
                                   claimed, method, serial, err);
}

static ff_status handle_register(call *c, const grpc_slice *in,
                                 ff_wire_bytes *out, ff_error *err)
{
    ff_wire_register req;
    ff_wire_register_reply rep;

    char serial[FF_TRUST_SERIAL_HEX + 1];
    ff_status st;

    st = ff_coord_wire_register_decode(GRPC_SLICE_START_PTR(*in),
                                       GRPC_SLICE_LENGTH(*in), &req, err);
    if (st != FF_OK) {
        FF_WARN("refused a malformed Register request: %s",
                ff_error_text(err));
        return st;
    }

    /* An unauthenticated caller gets its refusal as the reply. */
    st = call_authorize(c, req.site_id, "Register", serial, err);
    if (st == FF_ERR_REJECTED) {
        memset(&rep, 0, sizeof rep);
        snprintf(rep.reason, sizeof rep.reason, "%s", ff_error_text(err));
        return ff_coord_wire_register_reply_encode(&rep, out, err);
    }
    if (st == FF_OK)
        st = ff_federation_register(c->srv->fed, serial, &req, &rep, err);
    if (st == FF_OK)
        st = ff_coord_wire_register_reply_encode(&rep, out, err);
    return st;
}

static ff_status handle_poll(call *c, const grpc_slice *in,
                             ff_wire_bytes *out, ff_error *err)
{
    ff_wire_poll req;
    ff_wire_poll_reply rep;
    ff_status st;

    st = ff_coord_wire_poll_decode(GRPC_SLICE_START_PTR(*in),
                                   GRPC_SLICE_LENGTH(*in), &req, err);
    if (st == FF_OK)
        st = call_authorize(c, req.site_id, "Poll", NULL, err);
    if (st == FF_ERR_REJECTED || st == FF_ERR_DB)
        return st;            /* logged by the authorisation */
    if (st == FF_OK)
        st = ff_federation_poll(c->srv->fed, &req, &rep, err);
    if (st == FF_OK) {
        st = ff_coord_wire_poll_reply_encode(&rep, out, err);
        free(rep.task.identity_keys);
        return st;
    }
    if (st == FF_ERR_STATE)
        FF_INFO("poll refused: %s", ff_error_text(err));
    else
        FF_WARN("poll refused: %s", ff_error_text(err));
    return st;
}

static ff_status handle_secagg(call *c, const grpc_slice *in,
                               ff_wire_bytes *out, ff_error *err)
{
    ff_wire_secagg_msg req, rep;
    ff_status st;

    memset(&rep, 0, sizeof rep);
    st = ff_coord_wire_secagg_decode(GRPC_SLICE_START_PTR(*in),
                                     GRPC_SLICE_LENGTH(*in), &req, err);
    if (st == FF_OK) {
        st = call_authorize(c, req.site_id, "SecAgg", NULL, err);
        if (st != FF_OK) {
            ff_coord_wire_secagg_cleanup(&req);
            return st;        /* logged by the authorisation */
        }
    }
    if (st == FF_OK)
        st = ff_federation_secagg(c->srv->fed, &req, &rep, err);
    if (st == FF_OK)
        st = ff_coord_wire_secagg_reply_encode(&rep, out, err);
    else
        FF_WARN("secagg call refused: %s", ff_error_text(err));
    free((void *)rep.data);
    ff_coord_wire_secagg_cleanup(&req);
    return st;
}

/* A unary request arrived: handle it and reply. */
static void unary_received(call *c)
{
    ff_wire_bytes out = {NULL, 0};
    ff_error err = {0};
    grpc_slice in;
    ff_status st = ff_grpc_buf_read(c->recv, "message", &in, &err);

    if (st == FF_OK) {
        if (c->method == METHOD_REGISTER)
            st = handle_register(c, &in, &out, &err);
        else if (c->method == METHOD_SECAGG)
            st = handle_secagg(c, &in, &out, &err);
        else
            st = handle_poll(c, &in, &out, &err);
        grpc_slice_unref(in);
    }
    if (st != FF_OK) {
        free(out.data);
        call_fail(c, st, &err);
        return;
    }
    call_finish(c, ff_grpc_buf_from_bytes(&out), GRPC_STATUS_OK, "", 0);
}

/* ---- DownloadModel: server streaming ---- */

/* Sends the chunk at c->offset, or the final status after the last. */
static void download_next(call *c)
{
    ff_wire_model_chunk ch;
    ff_wire_bytes out = {NULL, 0};
    ff_error err = {0};
    grpc_op op;
    size_t left = c->blob->len - c->offset;

    if (left == 0) {
        call_finish(c, NULL, GRPC_STATUS_OK, "", 0);
        return;
    }
    memset(&ch, 0, sizeof ch);
    ch.offset = c->offset;
    ch.total_length = c->blob->len;
    memcpy(ch.digest, c->blob->digest, sizeof ch.digest);
    ch.model_version = c->blob->version;
    ch.data = c->blob->data + c->offset;
    ch.len = left < FF_WIRE_CHUNK_MAX ? left : FF_WIRE_CHUNK_MAX;

    /* The first chunk carries the signed claim, and less data. */
    if (c->offset == 0) {
        const ff_model_blob *b = c->blob;
        snprintf(ch.model, sizeof ch.model, "%s",
                 ff_federation_model(c->srv->fed));
        ch.parent = b->parent;
        ch.metadata = b->metadata != NULL ? b->metadata : "";
        ch.metadata_len = strlen(ch.metadata);
        ch.is_signed = b->is_signed;
        memcpy(ch.signature, b->signature, sizeof ch.signature);
        memcpy(ch.signer_key, b->signer_key, sizeof ch.signer_key);
        if (ch.len > FF_WIRE_CHUNK_MAX - ch.metadata_len)
            ch.len = FF_WIRE_CHUNK_MAX - ch.metadata_len;
    }
    if (ff_coord_wire_model_chunk_encode(&ch, &out, &err) != FF_OK) {
        call_fail(c, FF_ERR_INTERNAL, &err);
        return;
    }

    /* One send outstanding at a time. */
    if (c->send != NULL)
        grpc_byte_buffer_destroy(c->send);
    c->send = ff_grpc_buf_from_bytes(&out);
    c->sending = ch.len;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send;
    c->step = STEP_SENDING;
    call_batch(c, &op, 1);
}

/* The download request arrived: check it and start streaming. */
static void download_received(call *c)
{
    ff_wire_download req;
    ff_error err = {0};
    grpc_slice in;
    ff_status st = ff_grpc_buf_read(c->recv, "message", &in, &err);

    if (st == FF_OK) {
        st = ff_coord_wire_download_decode(GRPC_SLICE_START_PTR(in),
                                           GRPC_SLICE_LENGTH(in), &req,
                                           &err);
        grpc_slice_unref(in);
    }
    if (st == FF_OK) {
        st = call_authorize(c, req.site_id, "DownloadModel", NULL, &err);
        if (st != FF_OK) {
            call_fail(c, st, &err);   /* logged by the authorisation */
            return;
        }
    }
    if (st == FF_OK)
        st = ff_federation_download(c->srv->fed, &req, &c->blob, &err);
    if (st != FF_OK) {
        FF_WARN("download refused: %s", ff_error_text(&err));
        call_fail(c, st, &err);
        return;
    }
    c->offset = 0;
    download_next(c);
}

/* ---- UploadUpdate: client streaming ---- */

/* Ends an upload with the coordinator's verdict (retry_ms > 0: busy). */
static void upload_reply_busy(call *c, int accepted, const char *reason,
                              uint32_t retry_ms)
{
    ff_wire_upload_reply rep;
    ff_wire_bytes out = {NULL, 0};
    ff_error err = {0};

    memset(&rep, 0, sizeof rep);
    rep.accepted = accepted;
    rep.retry_after_ms = retry_ms;
    snprintf(rep.reason, sizeof rep.reason, "%s", reason);
    if (ff_coord_wire_upload_reply_encode(&rep, &out, &err) != FF_OK) {
        call_fail(c, FF_ERR_INTERNAL, &err);
        return;
    }
    call_finish(c, ff_grpc_buf_from_bytes(&out), GRPC_STATUS_OK, "", 0);
}

/* Ends an upload with an accept or a refusal. */
static void upload_reply(call *c, int accepted, const char *reason)
{
    upload_reply_busy(c, accepted, reason, 0);
}

/* Handles one decoded upload message; returns 1 to read on, 0 when the
 * call was answered. */
static int upload_message(call *c, const ff_wire_update_msg *m,
                          ff_error *err)
{
    ff_federation *fed = c->srv->fed;
    uint32_t retry_ms = 0;
    ff_status st;

    if (m->kind == FF_WIRE_UPDATE_HEADER && c->upload == NULL) {
        st = call_authorize(c, m->header.site_id, "UploadUpdate", NULL,
                            err);
        if (st == FF_OK)
            st = ff_federation_upload_begin(fed, &m->header, &c->upload,
                                            &retry_ms, err);
        else if (st == FF_ERR_DB)
            retry_ms = 1000;  /* the check failed: send again, not refused */
    } else if (m->kind == FF_WIRE_UPDATE_HEADER) {
        ff_federation_upload_abandon(fed, c->upload,
                                     "a second header in one upload");
        c->upload = NULL;
        ff_error_set(err, FF_ERR_REJECTED, "a second header in one upload");
        st = FF_ERR_REJECTED;
    } else if (c->upload == NULL) {
        ff_federation_upload_refuse(fed, NULL, 0,
                                    "data chunk before the header");
        ff_error_set(err, FF_ERR_REJECTED, "data chunk before the header");
        st = FF_ERR_REJECTED;
    } else {
        st = ff_federation_upload_chunk(fed, c->upload, &m->chunk, err);
        if (st != FF_OK)
            c->upload = NULL;   /* freed by the federation */
    }
    if (st == FF_OK)
        return 1;
    upload_reply_busy(c, 0, ff_error_text(err), retry_ms);
    return 0;
}

/* A message of the upload stream arrived (or the stream ended). */
static void upload_received(call *c)
{
    ff_wire_update_msg m;
    ff_error err = {0};
    grpc_slice in;
    ff_status st;

    /* End of stream: judge the whole update. */
    if (c->recv == NULL) {
        if (c->upload == NULL) {
            ff_federation_upload_refuse(c->srv->fed, NULL, 0,
                                        "upload without a header");
            upload_reply(c, 0, "upload without a header");
            return;
        }
        /* The certificate again: it may have been revoked meanwhile. */
        st = call_authorize(c, ff_federation_upload_site(c->upload),
                            "UploadUpdate", NULL, &err);
        if (st != FF_OK) {
            ff_federation_upload_abandon(c->srv->fed, c->upload,
                                         ff_error_text(&err));
            c->upload = NULL;
            upload_reply(c, 0, ff_error_text(&err));
            return;
        }
        st = ff_federation_upload_finish(c->srv->fed, c->upload, &err);
        c->upload = NULL;
        upload_reply(c, st == FF_OK, st == FF_OK ? "" : ff_error_text(&err));
        return;
    }

    /* One message: decode, hand over, read on. */
    st = ff_grpc_buf_read(c->recv, "message", &in, &err);
    grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
    if (st == FF_OK) {
        st = ff_coord_wire_update_decode(GRPC_SLICE_START_PTR(in),
                                         GRPC_SLICE_LENGTH(in), &m, &err);
        grpc_slice_unref(in);
    }
    if (st != FF_OK) {
        if (c->upload != NULL)
            ff_federation_upload_abandon(c->srv->fed, c->upload,
                                         ff_error_text(&err));
        else
            ff_federation_upload_refuse(c->srv->fed, NULL, 0,
                                        ff_error_text(&err));
        c->upload = NULL;
        upload_reply(c, 0, ff_error_text(&err));
        return;
    }
    if (upload_message(c, &m, &err))
        call_receive(c, 0);
    ff_coord_wire_update_msg_cleanup(&m);
}

/* ---- dispatch ---- */

/* Names the method of a new call. */
static call_method method_of(const grpc_call_details *d)
{
    if (grpc_slice_str_cmp(d->method, FF_WIRE_METHOD_REGISTER) == 0)
        return METHOD_REGISTER;
    if (grpc_slice_str_cmp(d->method, FF_WIRE_METHOD_POLL) == 0)
        return METHOD_POLL;
    if (grpc_slice_str_cmp(d->method, FF_WIRE_METHOD_DOWNLOAD) == 0)
        return METHOD_DOWNLOAD;
    if (grpc_slice_str_cmp(d->method, FF_WIRE_METHOD_UPLOAD) == 0)
        return METHOD_UPLOAD;
    if (grpc_slice_str_cmp(d->method, FF_WIRE_METHOD_SECAGG) == 0)
        return METHOD_SECAGG;
    return METHOD_UNKNOWN;
}

/* Keeps the client certificate the handshake presented (x509_pem_cert;
 * none on an insecure channel or without a client certificate). */
static void call_peer_read(call *c)
{
    grpc_auth_context *ac = grpc_call_auth_context(c->call);
    grpc_auth_property_iterator it;
    const grpc_auth_property *p;

    if (ac == NULL)
        return;
    it = grpc_auth_context_find_properties_by_name(
        ac, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    p = grpc_auth_property_iterator_next(&it);
    if (p != NULL && p->value_length > 0 &&
        p->value_length <= FF_TRUST_PEM_MAX) {
        c->peer_pem = malloc(p->value_length + 1);
        if (c->peer_pem != NULL) {
            memcpy(c->peer_pem, p->value, p->value_length);
            c->peer_pem[p->value_length] = '\0';
            c->peer_len = p->value_length;
        }
    }
    grpc_auth_context_release(ac);
}

/* A new call arrived: keep the pending requests topped up, then start. */
static void call_started(call *c)
{
    ff_server *s = c->srv;
    int again;

    pthread_mutex_lock(&s->lock);
    again = !s->shutting_down;
    pthread_mutex_unlock(&s->lock);
    if (again)
        call_request(s);
    call_peer_read(c);
    c->method = method_of(&c->details);
    if (c->method == METHOD_UNKNOWN) {
        char *name = grpc_slice_to_c_string(c->details.method);
        FF_WARN("unknown method %s: UNIMPLEMENTED", name);
        gpr_free(name);
        call_finish(c, NULL, GRPC_STATUS_UNIMPLEMENTED, "unknown method",
                    1);
        return;
    }
    call_receive(c, 1);
}

/* A receive completed. */
static void call_received(call *c, int success)
{
    if (c->method == METHOD_UPLOAD) {
        if (!success) {
            /* The stream broke (client gone, message over the limit). */
            ff_federation_upload_abandon(c->srv->fed, c->upload, NULL);
            c->upload = NULL;
            call_finish(c, NULL, GRPC_STATUS_CANCELLED, "stream broken", 0);
            return;
        }
        upload_received(c);
        return;
    }
    if (!success || c->recv == NULL) {
        call_finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                    "no request message", 0);
        return;
    }
    if (c->method == METHOD_DOWNLOAD)
        download_received(c);
    else
        unary_received(c);
}

/* Advances a call by one completed batch. */
static void call_step_run(call *c, int success)
{
    switch (c->step) {
    case STEP_REQUESTED:
        if (!success) {             /* the server is shutting down */
            c->call = NULL;
            call_free(c);
            return;
        }
        call_started(c);
        return;
    case STEP_RECEIVING:
        call_received(c, success);
        return;
    case STEP_SENDING:
        if (!success) {
            call_finish(c, NULL, GRPC_STATUS_CANCELLED, "send failed", 0);
            return;
        }
        c->offset += c->sending;
        download_next(c);
        return;
    case STEP_FINISHING:
        call_free(c);
        return;
    }
}

/* ---- workers and life cycle ---- */

static void *worker_main(void *arg)
{
    ff_server *s = arg;

    ff_log_set_context("rpc");
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &s->shutdown_tag) {
            pthread_mutex_lock(&s->lock);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        call_step_run(ev.tag, ev.success);
    }
    return NULL;
}

/* Server credentials: mTLS that requests a client certificate without
 * letting gRPC judge it, or insecure when tls is NULL (logged). */
static ff_status credentials_make(const ff_server_tls *tls,
                                  grpc_server_credentials **out,
                                  ff_error *err)
{
    grpc_ssl_pem_key_cert_pair pair;
    char *ca = NULL, *cert = NULL, *key = NULL;
    size_t ca_len = 0, cert_len = 0, key_len = 0;
    ff_status st;

    *out = NULL;
    if (tls == NULL) {
        FF_WARN("TLS is off (--tls off): calls are neither encrypted nor "
                "authenticated and every site is who it claims to be; use "
                "this only for insecure tests");
        *out = grpc_insecure_server_credentials_create();
        return FF_OK;
    }
    st = ff_trust_file_read(tls->ca, &ca, &ca_len, err);
    if (st == FF_OK)
        st = ff_trust_file_read(tls->cert, &cert, &cert_len, err);
    if (st == FF_OK)
        st = ff_trust_file_read(tls->key, &key, &key_len, err);
    if (st == FF_OK) {
        pair.private_key = key;
        pair.cert_chain = cert;
        *out = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1, GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY,
            NULL);
        if (*out == NULL)
            st = ff_error_set(err, FF_ERR_INTERNAL, "gRPC refused the TLS "
                              "credentials of %s / %s", tls->cert, tls->key);
    }
    if (key != NULL)
        sodium_memzero(key, key_len);
    free(key);
    free(cert);
    free(ca);
    return st;
}

ff_status ff_server_create(ff_server **out, const char *listen,
                           const ff_server_tls *tls, int *port,
                           ff_error *err)
{
    grpc_arg args[FF_GRPC_BUF_LIMIT_ARGS + 1];
    grpc_channel_args ca = {FF_GRPC_BUF_LIMIT_ARGS + 1, args};
    grpc_server_credentials *creds;
    pthread_condattr_t cattr;
    ff_server *s;
    ff_status st;

    *out = NULL;
    st = credentials_make(tls, &creds, err);
    if (st != FF_OK)
        return st;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        grpc_server_credentials_release(creds);
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &cattr);
    pthread_condattr_destroy(&cattr);

    /* Receive limits a little above one chunk; and no SO_REUSEPORT, which
     * gRPC sets by default: a second coordinator on the same port must
     * fail, not share the sites with the first. */
    ff_grpc_buf_limit_args(args);
    args[FF_GRPC_BUF_LIMIT_ARGS].type = GRPC_ARG_INTEGER;
    args[FF_GRPC_BUF_LIMIT_ARGS].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[FF_GRPC_BUF_LIMIT_ARGS].value.integer = 0;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->server = grpc_server_create(&ca, NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);

    *port = grpc_server_add_http2_port(s->server, listen, creds);
    grpc_server_credentials_release(creds);
    if (*port == 0) {
        ff_server_destroy(s);
        return ff_error_set(err, FF_ERR_IO, "cannot listen on %s (address "
                            "in use, or not a local address)", listen);
    }
    *out = s;
    return FF_OK;
}

ff_status ff_server_start(ff_server *s, ff_federation *fed, ff_error *err)
{
    int i;

    s->fed = fed;
    grpc_server_start(s->server);
    s->started = 1;
    for (i = 0; i < FF_SERVER_PENDING; i++)
        call_request(s);
    for (i = 0; i < FF_SERVER_WORKERS; i++) {
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
            return ff_error_set(err, FF_ERR_INTERNAL,
                                "cannot start server thread %d", i);
        s->n_workers++;
    }
    return FF_OK;
}

/* Waits on s->cond until *flag is set, or until `limit` seconds pass when
 * limit >= 0. Returns *flag. Lock held. */
static int wait_flag(ff_server *s, const int *flag, int want_zero,
                     double limit)
{
    struct timespec now, until;

    clock_gettime(CLOCK_MONOTONIC, &now);
    until = now;
    until.tv_sec += (time_t)limit;
    until.tv_nsec += (long)((limit - (double)(time_t)limit) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (want_zero ? *flag != 0 : *flag == 0) {
        if (limit < 0)
            pthread_cond_wait(&s->cond, &s->lock);
        else if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0)
            break;
    }
    return want_zero ? *flag == 0 : *flag != 0;
}

void ff_server_shutdown(ff_server *s, double grace)
{
    int i, done;

    if (s == NULL || s->finished || !s->started)
        return;
    s->finished = 1;

    /* Stop listening; let calls in flight end, then cancel the rest. */
    pthread_mutex_lock(&s->lock);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->lock);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    pthread_mutex_lock(&s->lock);
    done = s->n_workers == 0 || wait_flag(s, &s->shutdown_done, 0, grace);
    pthread_mutex_unlock(&s->lock);
    if (!done) {
        FF_WARN("shutdown not complete after %.1f s (calls running or a "
                "peer not closing its connection): cancelling calls",
                grace);
        grpc_server_cancel_all_calls(s->server);
    }

    /* Every call context must be gone before the queue goes. */
    pthread_mutex_lock(&s->lock);
    if (s->n_workers > 0) {
        wait_flag(s, &s->shutdown_done, 0, -1.0);
        wait_flag(s, &s->live_calls, 1, -1.0);
    }
    pthread_mutex_unlock(&s->lock);
    grpc_completion_queue_shutdown(s->cq);
    for (i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    s->cq_down = s->n_workers > 0;
    s->n_workers = 0;
}

/* A server that bound its port but never started must still be shut
 * down (gRPC asserts so); its queue has no worker, so drain it here. */
static void shutdown_unstarted(ff_server *s)
{
    grpc_event ev;

    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    do {
        ev = grpc_completion_queue_next(
            s->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                gpr_time_from_seconds(5, GPR_TIMESPAN)),
            NULL);
    } while (ev.type == GRPC_OP_COMPLETE && ev.tag != &s->shutdown_tag);
}

void ff_server_destroy(ff_server *s)
{
    if (s == NULL)
        return;
    if (!s->started && s->server != NULL)
        shutdown_unstarted(s);
    ff_server_shutdown(s, 2.0);
    if (s->server != NULL)
        grpc_server_destroy(s->server);
    if (s->cq != NULL && !s->cq_down) {
        /* No worker drained the queue: do it here. */
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq,
                                          gpr_inf_future(GPR_CLOCK_REALTIME),
                                          NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
    }
    if (s->cq != NULL)
        grpc_completion_queue_destroy(s->cq);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
