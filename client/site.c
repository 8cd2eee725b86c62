/*
 * site.c - the site's loop: register, poll, and for each round it is
 * asked to train: download the global model (length and digest checked),
 * train a local copy, prepare the update (client/update.c) and upload it.
 */
#include "site.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ff_log.h"
#include "../dataset/ff_dataset.h"
#include "../model/ff_model.h"
#include "ff_site_rpc.h"
#include "ff_site_secagg.h"
#include "ff_site_update.h"

/* Backoff between retries of a failed call, seconds. */
#define FF_SITE_BACKOFF_MIN 0.2
#define FF_SITE_BACKOFF_MAX 5.0

struct ff_site {
    ff_site_config cfg;
    ff_sample_set data;
    ff_load_report report;
    char digest[65];
    uint32_t modalities;        /* modalities present in some record */
    char identity[FF_SITE_STR_MAX + 32]; /* identity key file */
    uint8_t identity_pk[FF_SITE_IDENTITY_PK];
    ff_model *global;
    ff_model *local;
    ff_site_rpc *rpc;
    unsigned poll_ms;
    int last_round;             /* last round trained (0: none) */
    double failing_since;       /* 0 when the last call succeeded */
    double backoff;
};

/* ---- time ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts;

    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- retries ---- */

/* After a failed call: sleeps with backoff and returns FF_OK to try
 * again, or FF_ERR_RPC once the coordinator has failed for longer than
 * retry-seconds. */
static ff_status retry_wait(ff_site *s, const ff_error *failure,
                            ff_error *err)
{
    double now = now_s();

    if (s->failing_since == 0.0) {
        s->failing_since = now;
        s->backoff = FF_SITE_BACKOFF_MIN;
    }
    if (now - s->failing_since > s->cfg.retry_seconds)
        return ff_error_set(err, FF_ERR_RPC,
                            "coordinator %s unreachable for %.0f s, giving "
                            "up: %s", s->cfg.coordinator,
                            now - s->failing_since, ff_error_text(failure));
    FF_WARN("call failed (%s); retrying in %.1f s", ff_error_text(failure),
            s->backoff);
    sleep_s(s->backoff);
    s->backoff *= 2.0;
    if (s->backoff > FF_SITE_BACKOFF_MAX)
        s->backoff = FF_SITE_BACKOFF_MAX;
    return FF_OK;
}

/* After a failed transfer (status st, reason e): returns FF_OK to try
 * again after a backoff, else the error to give up with (st itself unless
 * it is FF_ERR_RPC, which only retry-seconds end). */
static ff_status retry_transfer(ff_site *s, ff_status st, const ff_error *e,
                                ff_error *err)
{
    if (st != FF_ERR_RPC)
        return ff_error_set(err, st, "%s", ff_error_text(e));
    return retry_wait(s, e, err);
}

/* ---- setup ---- */

/* Logs what the manifest gave: records, modalities, labels. */
static void report_log(const ff_site *s)
{
    const ff_load_report *r = &s->report;
    int m;

    FF_INFO("loaded %zu records from %s (%zu skipped: no loadable "
            "modality)", r->records, s->cfg.manifest, r->skipped);
    for (m = 0; m < FF_MOD_COUNT; m++)
        FF_INFO("  %-5s declared %zu, loaded %zu, unreadable %zu",
                ff_modality_name((ff_modality)m), r->declared[m],
                r->present[m], r->unreadable[m]);
    for (m = 0; m < FF_NUM_CLASSES; m++)
        FF_DEBUG("  label %d: %zu records", m, r->label_counts[m]);
}

/* Finds (default: site.identity next to the manifest) and loads the
 * identity key, keeping only its public half. */
static ff_status identity_open(ff_site *s, ff_error *err)
{
    const char *m = s->cfg.manifest, *slash = strrchr(m, '/');

    if (s->cfg.identity[0] != '\0')
        snprintf(s->identity, sizeof s->identity, "%s", s->cfg.identity);
    else if (slash == NULL)
        snprintf(s->identity, sizeof s->identity, "site.identity");
    else
        snprintf(s->identity, sizeof s->identity, "%.*s/site.identity",
                 (int)(slash - m), m);
    return ff_site_identity_load(s->identity, s->identity_pk, NULL, err);
}

ff_status ff_site_create(ff_site **out, const ff_site_config *cfg,
                         ff_error *err)
{
    ff_site *s;
    ff_status st;
    int m;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    s->poll_ms = 500;

    /* Records first: a site with unusable data should not register. */
    st = ff_dataset_load(cfg->manifest, &s->data, &s->report, err);
    if (st == FF_OK)
        st = ff_dataset_manifest_digest(cfg->manifest, s->digest, err);
    if (st == FF_OK) {
        report_log(s);
        for (m = 0; m < FF_MOD_COUNT; m++)
            if (s->report.present[m] > 0)
                s->modalities |= 1u << m;
        st = ff_model_create(&s->global, 1, err);
    }
    if (st == FF_OK)
        st = ff_model_create(&s->local, 1, err);
    if (st == FF_OK)
        st = identity_open(s, err);
    if (st == FF_OK)
        st = ff_site_rpc_create(&s->rpc, cfg->coordinator, err);
    if (st != FF_OK) {
        ff_site_destroy(s);
        return st;
    }
    *out = s;
    return FF_OK;
}

void ff_site_destroy(ff_site *s)
{
    if (s == NULL)
        return;
    ff_site_rpc_destroy(s->rpc);
    ff_model_destroy(s->local);
    ff_model_destroy(s->global);
    ff_dataset_cleanup(&s->data);
    free(s);
}

/* ---- register ---- */

/* Registers, retrying failed calls. Errors: FF_ERR_REJECTED (refused),
 * FF_ERR_RPC (gave up). */
static ff_status site_register(ff_site *s, ff_error *err)
{
    ff_wire_register req;
    ff_wire_register_reply rep;

    memset(&req, 0, sizeof req);
    strcpy(req.site_id, s->cfg.id);
    snprintf(req.code_version, sizeof req.code_version, "%s",
             FF_CODE_VERSION);
    req.modalities = s->modalities;
    req.example_count = s->data.count;
    strcpy(req.manifest_digest, s->digest);
    req.has_identity = 1;
    memcpy(req.identity_key, s->identity_pk, sizeof req.identity_key);
    for (;;) {
        ff_error e = {0};
        ff_status st = ff_site_rpc_register(s->rpc, &req, &rep,
                                            s->cfg.rpc_timeout, &e);
        if (st == FF_OK && !rep.accepted)
            return ff_error_set(err, FF_ERR_REJECTED,
                                "the coordinator refused this site: %s",
                                rep.reason);
        if (st == FF_OK)
            break;
        if (st == FF_ERR_REJECTED)
            return ff_error_set(err, st, "%s", ff_error_text(&e));
        st = retry_wait(s, &e, err);
        if (st != FF_OK)
            return st;
    }
    s->failing_since = 0.0;
    if (rep.poll_interval_ms >= 10 && rep.poll_interval_ms <= 60000)
        s->poll_ms = rep.poll_interval_ms;
    FF_INFO("registered with %s: %zu records, polling every %u ms",
            s->cfg.coordinator, s->data.count, s->poll_ms);
    return FF_OK;
}

/* ---- one round ---- */

/* Downloads the global model of a round into s->global and s->local.
 * Returns FF_ERR_STATE when the round is gone, FF_ERR_RPC when giving up,
 * another error for a model that cannot be used. */
static ff_status round_download(ff_site *s, int round, ff_error *err)
{
    ff_wire_download req;
    uint8_t *art = NULL;
    size_t len = 0;
    int version = 0;
    ff_status st;

    memset(&req, 0, sizeof req);
    strcpy(req.site_id, s->cfg.id);
    req.round = round;
    for (;;) {
        ff_error e = {0};
        st = ff_site_rpc_download(s->rpc, &req, &art, &len, &version,
                                  s->cfg.transfer_timeout, &e);
        if (st == FF_OK)
            break;
        st = retry_transfer(s, st, &e, err);
        if (st != FF_OK)
            return st;
    }
    s->failing_since = 0.0;

    /* The artifact must fit this architecture; the local copy starts
     * from it. */
    st = ff_model_artifact_read(s->global, art, len, err);
    free(art);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "global model version %d", version);
    memcpy(ff_model_params(s->local), ff_model_params_const(s->global),
           ff_model_param_count(s->global) * sizeof(float));
    FF_INFO("downloaded version %d (%zu bytes, digest verified)", version,
            len);
    return FF_OK;
}

/* Logs each epoch of local training. */
static void epoch_log(void *ctx, int epoch, const ff_train_stats *st)
{
    (void)ctx;
    FF_INFO("epoch %d: loss %.4f accuracy %.4f (%.1f s)", epoch, st->loss,
            st->accuracy, st->seconds);
}

/* The local training configuration from the coordinator's. */
static void train_config_from_wire(const ff_wire_train_config *w,
                                   ff_train_config *t)
{
    ff_train_config_default(t);
    t->epochs = (int)w->epochs;
    t->batch_size = (int)w->batch_size;
    t->lr = w->lr;
    t->optimizer = strcmp(w->optimizer, "adam") == 0 ? FF_OPT_ADAM
                                                     : FF_OPT_SGD;
    t->lr_schedule = strcmp(w->lr_schedule, "cosine") == 0 ? FF_LR_COSINE
                                                           : FF_LR_CONSTANT;
    t->momentum = w->momentum;
    t->weight_decay = w->weight_decay;
    t->modality_dropout = w->modality_dropout;
    t->seed = w->seed;
    t->on_epoch = epoch_log;
    t->on_epoch_ctx = NULL;
}

/* Sends the update, retrying failed calls. */
static ff_status round_upload(ff_site *s, const ff_site_update *u,
                              ff_error *err)
{
    ff_wire_upload_reply rep;
    ff_status st;

    for (;;) {
        ff_error e = {0};
        st = ff_site_rpc_upload_patient(s->rpc, &u->header, u->data, u->len,
                                        &rep, s->cfg.transfer_timeout,
                                        s->cfg.transfer_timeout, &e);
        if (st == FF_OK)
            break;
        st = retry_transfer(s, st, &e, err);
        if (st != FF_OK)
            return st;
    }
    s->failing_since = 0.0;
    if (!rep.accepted)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "the coordinator refused the update: %s",
                            rep.reason);
    FF_INFO("update accepted");
    return FF_OK;
}

/* Quantises the update and runs the secure aggregation stages. */
static ff_status round_secagg(ff_site *s, const ff_wire_poll_reply *poll,
                              ff_site_update *u, ff_error *err)
{
    const ff_wire_secagg_task *t = &poll->task;
    ff_site_secagg_round r;
    size_t clipped = 0;
    uint32_t *words = NULL;
    ff_status st;

    if (t->length != u->header.param_count + 1 + FF_GROUP_COUNT)
        return ff_error_set(err, FF_ERR_SHAPE, "secagg vector of %llu words "
                            "for %llu parameters",
                            (unsigned long long)t->length,
                            (unsigned long long)u->header.param_count);
    words = malloc((size_t)t->length * sizeof *words);
    if (words == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    st = ff_site_update_quantize(u, s->global, t->clip, t->max_value, words,
                                 (size_t)t->length, &clipped, err);
    if (st == FF_OK && clipped > 0)
        FF_WARN("secagg: %zu weighted values beyond the clip %g were "
                "clipped", clipped, (double)t->clip);

    /* The header reveals no counts or loss: they are in the sum. */
    memset(u->header.group_examples, 0, sizeof u->header.group_examples);
    u->header.train_loss = 0.0;
    u->header.train_accuracy = 0.0;
    u->header.masked = 1;
    memset(&r, 0, sizeof r);
    r.rpc = s->rpc;
    r.site_id = s->cfg.id;
    r.round = poll->round;
    r.identity_path = s->identity;
    r.task = t;
    r.words = words;
    r.header = &u->header;
    r.rpc_timeout = s->cfg.rpc_timeout;
    r.transfer_timeout = s->cfg.transfer_timeout;
    r.stage_timeout = s->cfg.transfer_timeout;
    if (st == FF_OK)
        st = ff_site_secagg_run(&r, err);
    sodium_memzero(words, (size_t)t->length * sizeof *words);
    free(words);
    return st;
}

/* Trains round `round` and sends the update. Returns FF_ERR_RPC only when
 * giving up on the coordinator; every other fault ends just this round. */
static ff_status round_run(ff_site *s, const ff_wire_poll_reply *poll,
                           ff_error *err)
{
    ff_train_config cfg;
    ff_train_stats stats;
    ff_site_update u;
    ff_status st;

    memset(&u, 0, sizeof u);
    memset(&stats, 0, sizeof stats);
    FF_INFO("round %d: training on version %d", (int)poll->round,
            (int)poll->model_version);
    st = round_download(s, poll->round, err);
    if (st == FF_OK) {
        train_config_from_wire(&poll->config, &cfg);
        st = ff_model_train(s->local, &s->data, &cfg, &stats, err);
    }
    if (st == FF_OK)
        st = ff_site_update_prepare(s->cfg.id, poll->round, s->global,
                                    s->local, &stats, &u, err);
    if (st == FF_OK) {
        ff_metric("site_round", "site=%s round=%d loss=%.4f accuracy=%.4f "
                  "examples=%zu seconds=%.2f", s->cfg.id, (int)poll->round,
                  stats.loss, stats.accuracy, stats.examples, stats.seconds);
        st = poll->secagg ? round_secagg(s, poll, &u, err)
                          : round_upload(s, &u, err);
    }
    ff_site_update_cleanup(&u);

    /* Whatever happened, this round is done for this site. */
    s->last_round = poll->round;
    if (st == FF_ERR_RPC)
        return st;
    if (st != FF_OK)
        FF_WARN("round %d ends without an accepted update: %s",
                (int)poll->round, ff_error_text(err));
    return FF_OK;
}

/* ---- the loop ---- */

/* Sets the log context to the site and, when round > 0, the round. */
static void context_set(const ff_site *s, int round)
{
    char ctx[FF_WIRE_ID_MAX + 32];

    if (round > 0)
        snprintf(ctx, sizeof ctx, "site=%s round=%d", s->cfg.id, round);
    else
        snprintf(ctx, sizeof ctx, "site=%s", s->cfg.id);
    ff_log_set_context(ctx);
}

ff_status ff_site_run(ff_site *s, ff_error *err)
{
    ff_wire_poll req;
    ff_status st;

    context_set(s, 0);
    st = site_register(s, err);
    if (st != FF_OK)
        return st;
    memset(&req, 0, sizeof req);
    strcpy(req.site_id, s->cfg.id);
    for (;;) {
        ff_wire_poll_reply rep;
        ff_error e = {0};

        /* Ask what to do; re-register when the coordinator forgot us. */
        st = ff_site_rpc_poll(s->rpc, &req, &rep, s->cfg.rpc_timeout, &e);
        if (st == FF_ERR_STATE) {
            FF_INFO("the coordinator does not know this site (restarted?): "
                    "registering again");
            st = site_register(s, err);
            if (st != FF_OK)
                return st;
            continue;
        }
        if (st == FF_ERR_REJECTED)
            return ff_error_set(err, st, "%s", ff_error_text(&e));
        if (st != FF_OK) {
            st = retry_wait(s, &e, err);
            if (st != FF_OK)
                return st;
            continue;
        }
        s->failing_since = 0.0;

        /* Act on the answer. */
        if (rep.action == FF_WIRE_FINISHED) {
            FF_INFO("the coordinator says the federation is finished");
            return FF_OK;
        }
        if (rep.action == FF_WIRE_TRAIN && rep.round > s->last_round) {
            context_set(s, rep.round);
            st = round_run(s, &rep, err);
            ff_site_rpc_poll_reply_cleanup(&rep);
            context_set(s, 0);
            if (st != FF_OK)
                return st;
            continue;
        }
        ff_site_rpc_poll_reply_cleanup(&rep);
        sleep_s(s->poll_ms / 1000.0);
    }
}
