/*
 * site.c - the site's loop: register, poll, and for each round it is
 * asked to train: check the round against the site's privacy budget
 * (client/privacy.c; refuse it when it would overspend), download the
 * global model (length and digest checked), train a local copy with
 * DP-SGD, record the round in the privacy ledger, prepare the update
 * (client/update.c, with the round's site-level DP format) and upload it.
 */
#include "site.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/ff_log.h"
#include "../dataset/ff_dataset.h"
#include "../model/ff_model.h"
#include "ff_site_rpc.h"
#include "ff_site_privacy.h"
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
    ff_site_ledger ledger;      /* record-level privacy (dp = on) */
    int ledger_fault;           /* the ledger changed on disk: stop */
    uint8_t coordinator_pk[32]; /* the pinned model signing key */
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

/* The file next to the manifest named name, or cfg_path when set.
 * Errors: FF_ERR_ARG when the path does not fit out. */
static ff_status path_beside_manifest(const ff_site *s, const char *cfg_path,
                                      const char *name, char *out,
                                      size_t cap, ff_error *err)
{
    const char *m = s->cfg.manifest, *slash = strrchr(m, '/');
    int n;

    if (cfg_path[0] != '\0')
        n = snprintf(out, cap, "%s", cfg_path);
    else if (slash == NULL)
        n = snprintf(out, cap, "%s", name);
    else
        n = snprintf(out, cap, "%.*s/%s", (int)(slash - m), m, name);
    if (n < 0 || (size_t)n >= cap)
        return ff_error_set(err, FF_ERR_ARG, "the path of %s is longer "
                            "than %zu bytes", name, cap - 1);
    return FF_OK;
}

/* Finds (default: site.identity next to the manifest) and loads the
 * identity key, keeping only its public half. */
static ff_status identity_open(ff_site *s, ff_error *err)
{
    ff_status st = path_beside_manifest(s, s->cfg.identity, "site.identity",
                                        s->identity, sizeof s->identity,
                                        err);

    if (st != FF_OK)
        return st;
    return ff_site_identity_load(s->identity, s->identity_pk, NULL, err);
}

/* Logs the privacy state at start: the ledger's spend and its plan. */
static ff_status privacy_log(const ff_site *s, ff_error *err)
{
    const ff_site_privacy_config *c = &s->cfg.privacy;
    const ff_site_dp_plan *p = &s->ledger.plan;
    double eps = 0.0;
    ff_status st = ff_site_ledger_epsilon(&s->ledger, NULL, c->delta, &eps,
                                          err);

    if (st != FF_OK)
        return ff_error_wrap(err, st, "privacy ledger %s", s->ledger.path);
    FF_INFO("privacy: ledger %s: %zu rounds spent, epsilon %.3g of budget "
            "%g (delta %g)", s->ledger.path, s->ledger.n, eps,
            c->epsilon_budget, c->delta);
    if (c->noise_multiplier > 0.0)
        FF_INFO("privacy: noise multiplier %g (configured), clip %g, "
                "batch %d", c->noise_multiplier, c->clip, c->batch);
    else if (p->set)
        FF_INFO("privacy: noise multiplier %.4g from the ledger's plan "
                "(budget %g over %d rounds)", p->sigma, p->epsilon_budget,
                p->planned_rounds);
    if (c->noise_multiplier == 0.0 && p->set &&
        (p->epsilon_budget != c->epsilon_budget ||
         p->delta != c->delta || p->planned_rounds != c->planned_rounds))
        FF_WARN("privacy: the ledger's plan was made for budget %g, delta "
                "%g, %d rounds; the config now says %g, %g, %d: the plan's "
                "noise multiplier %.4g stays (set noise_multiplier to "
                "change it); the budget check uses the config",
                p->epsilon_budget, p->delta, p->planned_rounds,
                c->epsilon_budget, c->delta, c->planned_rounds, p->sigma);
    return FF_OK;
}

/* Opens the privacy ledger; a corrupt one stops the site. */
static ff_status privacy_open(ff_site *s, ff_error *err)
{
    char path[FF_SITE_PRIVACY_PATH_MAX];
    ff_status st;

    if (!s->cfg.privacy.dp) {
        FF_WARN("privacy: record-level DP is off (dp = off): this site's "
                "updates carry no privacy guarantee for its records");
        return FF_OK;
    }
    st = ff_site_privacy_delta_check(&s->cfg.privacy, s->data.count, err);
    if (st == FF_OK)
        st = path_beside_manifest(s, s->cfg.privacy.ledger,
                                  "privacy-ledger.json", path, sizeof path,
                                  err);
    if (st == FF_OK)
        st = ff_site_ledger_load(&s->ledger, path, s->cfg.id, err);
    if (st == FF_OK)
        st = privacy_log(s, err);
    return st;
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
        st = privacy_open(s, err);
    if (st == FF_OK)
        st = ff_site_config_coordinator_key(cfg, s->coordinator_pk, err);
    if (st == FF_OK)
        st = ff_site_channel_open(cfg, &s->rpc, err);
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
    ff_site_ledger_cleanup(&s->ledger);
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
    ff_site_model m;
    char hex[2 * FF_WIRE_DIGEST_BYTES + 1];
    ff_status st;

    memset(&req, 0, sizeof req);
    strcpy(req.site_id, s->cfg.id);
    req.round = round;
    for (;;) {
        ff_error e = {0};
        st = ff_site_rpc_download(s->rpc, &req, &m, s->cfg.transfer_timeout,
                                  &e);
        if (st == FF_OK)
            break;
        st = retry_transfer(s, st, &e, err);
        if (st != FF_OK)
            return st;
    }
    s->failing_since = 0.0;

    /* Nothing is trained on a model the pinned coordinator key did not
     * sign. */
    st = ff_site_model_verify(&m, s->coordinator_pk, "not training", err);
    if (st != FF_OK) {
        FF_ERROR("%s", ff_error_text(err));
        ff_site_model_cleanup(&m);
        return st;
    }

    /* The artifact must fit this architecture; the local copy starts
     * from it. */
    st = ff_model_artifact_read(s->global, m.artifact, m.len, err);
    if (st != FF_OK) {
        st = ff_error_wrap(err, st, "global model version %d", m.version);
        ff_site_model_cleanup(&m);
        return st;
    }
    memcpy(ff_model_params(s->local), ff_model_params_const(s->global),
           ff_model_param_count(s->global) * sizeof(float));
    sodium_bin2hex(hex, sizeof hex, m.digest, sizeof m.digest);
    FF_INFO("downloaded version %d (%zu bytes, digest %.16s..., signature "
            "verified)", m.version, m.len, hex);
    ff_site_model_cleanup(&m);
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
                            "the coordinator refused the %s: %s",
                            u->header.refused ? "refusal" : "update",
                            rep.reason);
    FF_INFO(u->header.refused ? "refusal delivered" : "update accepted");
    return FF_OK;
}

/* The example-weighted SecAgg vector of a round without site DP. */
static ff_status words_weighted(const ff_site *s, const ff_wire_secagg_task *t,
                                const ff_site_update *u, uint32_t *words,
                                ff_error *err)
{
    size_t clipped = 0;
    ff_status st = ff_site_update_quantize(u, s->global, t->clip,
                                           t->max_value, words,
                                           (size_t)t->length, &clipped, err);

    if (st == FF_OK && clipped > 0)
        FF_WARN("secagg: %zu weighted values beyond the clip %g were "
                "clipped", clipped, (double)t->clip);
    return st;
}

/* The SecAgg vector of a round with site-level DP: central (clipped,
 * quantised) or distributed (DDGauss words, summed with wrap). The two
 * tasks must agree; a mismatch ends the round. */
static ff_status words_site_dp(const ff_wire_poll_reply *poll,
                               const ff_site_update *u, uint32_t *words,
                               ff_error *err)
{
    const ff_wire_secagg_task *t = &poll->task;
    const ff_wire_site_dp_task *d = &poll->site_dp;
    double norm = 0.0;
    ff_status st;

    if (d->mode == FF_WIRE_SITE_DP_CENTRAL) {
        if (fabs((double)t->clip - d->clip) > 1e-6 * d->clip)
            return ff_error_set(err, FF_ERR_STATE, "site dp clip %g differs "
                                "from the secagg clip %g", d->clip,
                                (double)t->clip);
        st = ff_site_update_central_words(u, t->clip, t->max_value,
                                          d->report_unclipped, words,
                                          (size_t)t->length, &norm, err);
    } else {
        uint32_t top = d->bits == 32 ? UINT32_MAX
                                     : (uint32_t)((1ull << d->bits) - 1);
        if (t->bits != d->bits || t->max_value != top)
            return ff_error_set(err, FF_ERR_STATE, "distributed dp with "
                                "%u bits, secagg with %u bits and max "
                                "value %u", (unsigned)d->bits,
                                (unsigned)t->bits, (unsigned)t->max_value);
        st = ff_site_update_ddgauss_words(u, d, words, (size_t)t->length,
                                          &norm, err);
    }
    if (st == FF_OK)
        FF_INFO("site dp (%s): update norm %.4g, clip %g",
                d->mode == FF_WIRE_SITE_DP_CENTRAL ? "central"
                                                   : "distributed",
                norm, d->clip);
    return st;
}

/* Builds the update's SecAgg vector and runs the secure aggregation
 * stages. */
static ff_status round_secagg(ff_site *s, const ff_wire_poll_reply *poll,
                              ff_site_update *u, ff_error *err)
{
    const ff_wire_secagg_task *t = &poll->task;
    int dist = poll->site_dp.mode == FF_WIRE_SITE_DP_DISTRIBUTED;
    uint64_t want = dist ? poll->site_dp.padded + 1
                         : u->header.param_count + 1 + FF_GROUP_COUNT;
    ff_site_secagg_round r;
    uint32_t *words = NULL;
    ff_status st;

    if (t->length != want)
        return ff_error_set(err, FF_ERR_SHAPE, "secagg vector of %llu words "
                            "for %llu parameters (expected %llu)",
                            (unsigned long long)t->length,
                            (unsigned long long)u->header.param_count,
                            (unsigned long long)want);
    words = malloc((size_t)t->length * sizeof *words);
    if (words == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    st = poll->site_dp.mode == FF_WIRE_SITE_DP_NONE
             ? words_weighted(s, t, u, words, err)
             : words_site_dp(poll, u, words, err);

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
    r.wrap = dist;
    r.rpc_timeout = s->cfg.rpc_timeout;
    r.transfer_timeout = s->cfg.transfer_timeout;
    r.stage_timeout = s->cfg.transfer_timeout;
    if (st == FF_OK)
        st = ff_site_secagg_run(&r, err);
    sodium_memzero(words, (size_t)t->length * sizeof *words);
    free(words);
    return st;
}

/* Sends the update in the round's format: plain (clipped to the site DP
 * clip in central mode) or through secure aggregation. */
static ff_status round_send(ff_site *s, const ff_wire_poll_reply *poll,
                            ff_site_update *u, ff_error *err)
{
    const ff_wire_site_dp_task *d = &poll->site_dp;
    double norm = 0.0;
    ff_status st;

    if (poll->secagg)
        return round_secagg(s, poll, u, err);
    if (d->mode == FF_WIRE_SITE_DP_CENTRAL) {
        st = ff_site_update_clip(u, d->clip, d->report_unclipped, &norm,
                                 err);
        if (st != FF_OK)
            return st;
        FF_INFO("site dp (central): update norm %.4g, clip %g", norm,
                d->clip);
    }
    return round_upload(s, u, err);
}

/* One "dp" METRIC line: what the round spent (or would have). */
static void dp_metric(const ff_site *s, const ff_site_dp_round *r,
                      const char *status)
{
    ff_metric("dp", "site=%s round=%d status=%s epsilon=%.6g delta=%g "
              "budget=%g sigma=%.6g sigma_eff=%.6g q=%.6g steps=%lld",
              s->cfg.id, r->round, status, r->epsilon_after, r->delta,
              r->budget, r->sigma, r->sigma_eff, r->q, (long long)r->steps);
}

/* Declines a round that would overspend: WARN, METRIC, and an upload
 * whose header says refused with the reason (no chunks). */
static ff_status round_refuse(ff_site *s, const ff_wire_poll_reply *poll,
                              const ff_site_dp_round *dp, ff_error *err)
{
    ff_site_update u;
    ff_status st;

    FF_WARN("privacy: refusing round %d: %s", (int)poll->round, dp->reason);
    dp_metric(s, dp, "refused");
    memset(&u, 0, sizeof u);
    snprintf(u.header.site_id, sizeof u.header.site_id, "%s", s->cfg.id);
    u.header.round = poll->round;
    u.header.param_count = ff_model_param_count(s->global);
    u.header.n_groups = FF_GROUP_COUNT;
    ff_site_dp_header_fill(&u.header, dp);
    st = round_upload(s, &u, err);
    return st;
}

/* Trains the local model, with DP-SGD when dp is not NULL. */
static ff_status round_train(ff_site *s, const ff_wire_poll_reply *poll,
                             const ff_site_dp_round *dp,
                             ff_train_stats *stats, ff_error *err)
{
    ff_train_config cfg;
    ff_dp_sgd sgd;

    train_config_from_wire(&poll->config, &cfg);
    if (dp != NULL) {
        ff_site_dp_sgd_init(&sgd, dp);
        cfg.dp = &sgd;
        FF_INFO("privacy: DP-SGD with noise multiplier %.4g, clip %g, "
                "q %.4g, %lld steps", dp->sigma, dp->clip, dp->q,
                (long long)dp->steps);
    }
    return ff_model_train(s->local, &s->data, &cfg, stats, err);
}

/* Under DP-SGD the header must not reveal what the Poisson draws decided
 * (how many records the batches held, the loss on them: neither is
 * noised). It carries the records holding each modality instead, the
 * counts the site registered with, and no loss or accuracy. */
static void header_hide_draws(const ff_site *s, ff_wire_update_header *h)
{
    int m;

    for (m = 0; m < FF_MOD_COUNT; m++)
        h->group_examples[m] = s->report.present[m];
    h->group_examples[FF_GROUP_HEAD] = s->data.count;
    h->train_loss = 0.0;
    h->train_accuracy = 0.0;
}

/* Records a trained round in the ledger (before anything is sent) and
 * reports it in the header, the log and a METRIC line. */
static ff_status round_account(ff_site *s, ff_site_dp_round *dp,
                               const ff_train_stats *stats,
                               ff_site_update *u, ff_error *err)
{
    ff_status st = ff_site_dp_record(&s->ledger, dp, stats->dp_steps, err);

    s->ledger_fault = st == FF_ERR_STATE;

    if (st != FF_OK)
        return ff_error_wrap(err, st, "the round is not sent: its privacy "
                             "spend could not be recorded");
    header_hide_draws(s, &u->header);
    ff_site_dp_header_fill(&u->header, dp);
    FF_INFO("privacy: round %d spent, epsilon %.3g of budget %g (delta %g)",
            dp->round, dp->epsilon_after, dp->budget, dp->delta);
    dp_metric(s, dp, "spent");
    return FF_OK;
}

/* Trains round `round` and sends the update, or refuses the round when
 * the site's privacy budget would be exceeded. Returns FF_ERR_RPC only
 * when giving up on the coordinator; every other fault (an unwritable
 * ledger too: then nothing is sent) ends just this round. */
static ff_status round_run(ff_site *s, const ff_wire_poll_reply *poll,
                           ff_error *err)
{
    const ff_site_privacy_config *pc = &s->cfg.privacy;
    ff_site_dp_round dp;
    ff_train_stats stats;
    ff_site_update u;
    ff_status st = FF_OK;

    memset(&u, 0, sizeof u);
    memset(&stats, 0, sizeof stats);
    memset(&dp, 0, sizeof dp);
    FF_INFO("round %d: training on version %d", (int)poll->round,
            (int)poll->model_version);

    /* The budget first: a round that would overspend is refused before
     * anything is downloaded or trained. */
    if (pc->dp) {
        st = ff_site_dp_check(&s->ledger, pc, poll->round,
                              (int)poll->config.epochs, s->data.count,
                              ff_model_param_count(s->local), &dp, err);
        s->ledger_fault = st == FF_ERR_STATE;
        if (st == FF_OK && dp.refuse)
            st = round_refuse(s, poll, &dp, err);
    }

    /* Train, account, then send. */
    if (st == FF_OK && !dp.refuse)
        st = round_download(s, poll->round, err);
    if (st == FF_OK && !dp.refuse)
        st = round_train(s, poll, pc->dp ? &dp : NULL, &stats, err);
    if (st == FF_OK && !dp.refuse)
        st = ff_site_update_prepare(s->cfg.id, poll->round, s->global,
                                    s->local, &stats, &u, err);
    if (st == FF_OK && !dp.refuse && pc->dp)
        st = round_account(s, &dp, &stats, &u, err);
    if (st == FF_OK && !dp.refuse) {
        if (!pc->dp)
            ff_metric("dp", "site=%s round=%d status=off epsilon=inf",
                      s->cfg.id, (int)poll->round);
        ff_metric("site_round", "site=%s round=%d loss=%.4f accuracy=%.4f "
                  "examples=%zu seconds=%.2f", s->cfg.id, (int)poll->round,
                  stats.loss, stats.accuracy, stats.examples, stats.seconds);
        st = round_send(s, poll, &u, err);
    }
    ff_site_update_cleanup(&u);

    /* Whatever happened, this round is done for this site. A ledger that
     * changed under us (FF_ERR_STATE from the privacy checks) stops the
     * site: its spend can no longer be trusted. */
    s->last_round = poll->round;
    if (st == FF_ERR_RPC)
        return st;
    if (s->ledger_fault) {
        FF_ERROR("privacy: stopping: %s", ff_error_text(err));
        return st;
    }
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
