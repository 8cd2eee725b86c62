/*
 * rogue_site.c - a misbehaving site for the integration test
 * fed_rogue.sh. It reuses the site's RPC library (ff_site_rpc) to send
 * what an honest site never would, and checks that the coordinator
 * refuses each with the expected reason:
 *
 *   round 1: an update from an unknown site id, a wrong parameter count,
 *            a byte length that does not match the header, a NaN, an
 *            oversized chunk, inflated example counts, an update from a
 *            known site that was not selected, then one valid update (all
 *            zeros) and a second update in the same round;
 *   round 2: a replay of round 1, then valid updates;
 *   also:    an unknown site id must be refused at registration, and an
 *            unknown method answered UNIMPLEMENTED.
 *
 * Usage: rogue_site --coordinator HOST:PORT --id ROGUE --late LATE
 * Prints one line per case ("ok CASE: reason" or "FAIL CASE: ..."), exits
 * 0 when every case went as expected, 1 otherwise.
 */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../client/ff_site_rpc.h"
#include "../../model/ff_model.h"

#define TIMEOUT 20.0
#define EXAMPLES 50            /* what the rogue claims at registration */

static ff_site_rpc *rpc;
static const char *rogue_id, *late_id;
static size_t n_params;
static int failures;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check(int ok, const char *name, const char *detail)
{
    printf("%s %s: %s\n", ok ? "ok" : "FAIL", name, detail);
    fflush(stdout);
    failures += !ok;
}

/* Registers id with made-up but plausible details. */
static int register_as(const char *id)
{
    ff_wire_register req;
    ff_wire_register_reply rep;
    ff_error err = {0};

    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", id);
    strcpy(req.code_version, "rogue");
    req.modalities = 1;
    req.example_count = EXAMPLES;
    memset(req.manifest_digest, '0', FF_WIRE_DIGEST_HEX);
    if (ff_site_rpc_register(rpc, &req, &rep, TIMEOUT, &err) != FF_OK ||
        !rep.accepted) {
        printf("FAIL register %s: %s\n", id,
               rep.accepted ? ff_error_text(&err) : rep.reason);
        return -1;
    }
    return 0;
}

/* An unknown site id must be refused at registration. */
static void register_unknown_case(void)
{
    ff_wire_register req;
    ff_wire_register_reply rep;
    ff_error err = {0};
    char line[300];

    memset(&req, 0, sizeof req);
    strcpy(req.site_id, "mallory");
    strcpy(req.code_version, "rogue");
    req.modalities = 1;
    req.example_count = EXAMPLES;
    memset(req.manifest_digest, '0', FF_WIRE_DIGEST_HEX);
    if (ff_site_rpc_register(rpc, &req, &rep, TIMEOUT, &err) != FF_OK) {
        snprintf(line, sizeof line, "call failed: %s", ff_error_text(&err));
        check(0, "register-unknown", line);
        return;
    }
    snprintf(line, sizeof line, "%s", rep.accepted ? "accepted" : rep.reason);
    check(!rep.accepted && strstr(rep.reason, "unknown site") != NULL,
          "register-unknown", line);
}

/* Polls as id; returns the action (or -1 on error). */
static int poll_as(const char *id, int *round)
{
    ff_wire_poll req;
    ff_wire_poll_reply rep;
    ff_error err = {0};

    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", id);
    if (ff_site_rpc_poll(rpc, &req, &rep, TIMEOUT, &err) != FF_OK)
        return -1;
    *round = rep.round;
    return (int)rep.action;
}

/* Polls as id (keeping other alive) until TRAIN for `round`, up to 60 s. */
static int await_train(const char *id, const char *other, int round)
{
    int i, r = 0;

    for (i = 0; i < 600; i++) {
        if (poll_as(id, &r) == FF_WIRE_TRAIN && r == round)
            return 0;
        if (other != NULL)
            poll_as(other, &r);
        sleep_ms(100);
    }
    printf("FAIL: no TRAIN for %s in round %d within 60 s\n", id, round);
    return -1;
}

/* Downloads the round's model to learn the parameter count. */
static int learn_model(int round)
{
    ff_wire_download req;
    ff_site_model art;
    ff_model *m = NULL;
    ff_error err = {0};
    int ok;

    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", rogue_id);
    req.round = round;
    ok = ff_site_rpc_download(rpc, &req, &art, TIMEOUT, &err) == FF_OK &&
         ff_model_create(&m, 1, &err) == FF_OK &&
         ff_model_artifact_read(m, art.artifact, art.len, &err) == FF_OK;
    if (ok)
        n_params = ff_model_param_count(m);
    else
        printf("FAIL download: %s\n", ff_error_text(&err));
    ff_site_model_cleanup(&art);
    ff_model_destroy(m);
    return ok ? 0 : -1;
}

/* A header as an honest site would write it. */
static ff_wire_update_header header_for(const char *id, int round,
                                        uint64_t examples)
{
    ff_wire_update_header h;

    memset(&h, 0, sizeof h);
    snprintf(h.site_id, sizeof h.site_id, "%s", id);
    h.round = round;
    h.param_count = n_params;
    h.n_groups = FF_GROUP_COUNT;
    for (int g = 0; g < FF_GROUP_COUNT; g++)
        h.group_examples[g] = examples;
    h.train_loss = 1.0;
    h.train_accuracy = 0.5;
    return h;
}

/* Uploads and checks the verdict: accepted, or refused with `expect` in
 * the reason. */
static void upload_case(const char *name, const ff_wire_update_header *h,
                        const float *data, size_t n_floats, size_t chunk,
                        const char *expect)
{
    ff_wire_upload_reply rep;
    ff_error err = {0};
    char line[600];
    ff_status st = ff_site_rpc_upload(rpc, h, (const uint8_t *)data,
                                      n_floats * 4, chunk, &rep, TIMEOUT,
                                      &err);

    if (st != FF_OK) {
        snprintf(line, sizeof line, "call failed: %s", ff_error_text(&err));
        check(0, name, line);
    } else if (expect == NULL) {
        snprintf(line, sizeof line, "%s", rep.accepted ? "accepted"
                                                       : rep.reason);
        check(rep.accepted, name, line);
    } else {
        snprintf(line, sizeof line, "refused: %s", rep.reason);
        check(!rep.accepted && strstr(rep.reason, expect) != NULL, name,
              line);
    }
}

/* An unknown method must be answered UNIMPLEMENTED. */
static void unknown_method_case(const char *target)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array md, trail;
    grpc_status_code status = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    const char *errstr = NULL;
    grpc_call *call;
    grpc_op ops[4];
    int tag = 1;
    char line[64];

    grpc_channel_credentials_release(creds);
    grpc_metadata_array_init(&md);
    grpc_metadata_array_init(&trail);
    call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
        grpc_slice_from_static_string("/fedfuse.Federation/Nope"), NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_seconds(10, GPR_TIMESPAN)),
        NULL);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[2].data.recv_initial_metadata.recv_initial_metadata = &md;
    ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[3].data.recv_status_on_client.trailing_metadata = &trail;
    ops[3].data.recv_status_on_client.status = &status;
    ops[3].data.recv_status_on_client.status_details = &details;
    ops[3].data.recv_status_on_client.error_string = &errstr;
    if (grpc_call_start_batch(call, ops, 4, &tag, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(cq, &tag,
                                    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    snprintf(line, sizeof line, "status %d", (int)status);
    check(status == GRPC_STATUS_UNIMPLEMENTED, "unknown-method", line);

    gpr_free((void *)errstr);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md);
    grpc_metadata_array_destroy(&trail);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME),
                                       NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
}

/* Round 1: every kind of bad update, then one good one and a second. */
static void round_one(float *zeros)
{
    ff_wire_update_header h;

    h = header_for("mallory", 1, 1);
    upload_case("unknown-site", &h, zeros, n_params, 0, "unknown site");
    h = header_for(rogue_id, 1, 1);
    h.param_count = n_params - 1;
    upload_case("wrong-size", &h, zeros, n_params - 1, 0,
                "wrong parameter count");
    h = header_for(rogue_id, 1, 1);
    upload_case("short-data", &h, zeros, n_params - 1, 0,
                "byte length mismatch");
    zeros[n_params / 2] = NAN;
    h = header_for(rogue_id, 1, 1);
    upload_case("nan", &h, zeros, n_params, 0, "NaN or Inf");
    zeros[n_params / 2] = 0.0f;
    h = header_for(rogue_id, 1, 1);
    upload_case("oversized-chunk", &h, zeros, n_params,
                FF_WIRE_CHUNK_MAX + 4, "oversized chunk");
    h = header_for(rogue_id, 1, 1000000);
    upload_case("inflated-counts", &h, zeros, n_params, 0, "claims");
    h = header_for(late_id, 1, 1);
    upload_case("not-selected", &h, zeros, n_params, 0, "not selected");
    h = header_for(rogue_id, 1, 1);
    upload_case("valid", &h, zeros, n_params, 0, NULL);
    upload_case("second-update", &h, zeros, n_params, 0, "second update");
}

int main(int argc, char **argv)
{
    const char *target = NULL;
    float *zeros;
    int i, r = 0, late_selected = 0;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--coordinator") == 0)
            target = argv[i + 1];
        else if (strcmp(argv[i], "--id") == 0)
            rogue_id = argv[i + 1];
        else if (strcmp(argv[i], "--late") == 0)
            late_id = argv[i + 1];
    }
    if (target == NULL || rogue_id == NULL || late_id == NULL) {
        fprintf(stderr, "usage: rogue_site --coordinator HOST:PORT --id ID "
                        "--late ID\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    grpc_init();
    /* One channel speaks for several identities: an insecure one (the
     * test runs its coordinator with --tls off; fed_mtls.sh covers who
     * may speak for whom). */
    if (ff_site_rpc_create(&rpc, target, NULL, &(ff_error){0}) != FF_OK)
        return 1;

    /* Round 1: join, learn the model size, then misbehave. */
    if (register_as(rogue_id) || await_train(rogue_id, NULL, 1) ||
        learn_model(1) || register_as(late_id))
        return 1;
    zeros = calloc(n_params, sizeof *zeros);
    if (zeros == NULL)
        return 1;
    unknown_method_case(target);
    register_unknown_case();
    round_one(zeros);

    /* Round 2: replay round 1, then behave (for both identities). */
    if (await_train(rogue_id, late_id, 2))
        return 1;
    {
        ff_wire_update_header h = header_for(rogue_id, 1, 1);
        upload_case("replay", &h, zeros, n_params, 0, "wrong round");
        h = header_for(rogue_id, 2, 1);
        upload_case("valid-round-2", &h, zeros, n_params, 0, NULL);
        late_selected = poll_as(late_id, &r) == FF_WIRE_TRAIN && r == 2;
        if (late_selected) {
            h = header_for(late_id, 2, 1);
            upload_case("valid-late-round-2", &h, zeros, n_params, 0, NULL);
        }
    }

    /* Stay until both identities heard FINISHED (at most 60 s). */
    for (i = 0; i < 600; i++) {
        int a = poll_as(rogue_id, &r), b = poll_as(late_id, &r);
        if (a == FF_WIRE_FINISHED && b == FF_WIRE_FINISHED)
            break;
        sleep_ms(100);
    }
    check(i < 600, "finished", i < 600 ? "told FINISHED" : "never told");
    free(zeros);
    ff_site_rpc_destroy(rpc);
    grpc_shutdown();
    printf("rogue: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
