/*
 * rounds.c - the round state machine of the coordinator: wait for sites,
 * open a round, collect updates until all selected sites sent one or the
 * deadline passes, drop stragglers, then average, score and publish the
 * new version (or abort the round). Runs on the main thread only.
 */
#include "fed_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ff_log.h"

/* A site counts as alive when heard from within this many poll
 * intervals (and at least FF_FED_ALIVE_MIN seconds). */
#define FF_FED_ALIVE_POLLS 5.0
#define FF_FED_ALIVE_MIN 10.0
/* Seconds between heartbeats while waiting. */
#define FF_FED_HEARTBEAT 2.0

const char *ff_fed_state_name(ff_fed_state s)
{
    static const char *const names[] = {"starting", "waiting", "training",
                                        "aggregating", "finishing",
                                        "stopped"};

    if ((int)s < 0 || (size_t)s >= sizeof names / sizeof names[0])
        return "unknown";
    return names[s];
}

/* Refreshes the coordinator row (the heartbeat `fedfusectl status`
 * reads). A failure is logged: the round goes on. */
static void heartbeat(ff_federation *f)
{
    ff_error err = {0};
    ff_fed_state s;
    int round;

    pthread_mutex_lock(&f->lock);
    s = f->state;
    round = f->round;
    pthread_mutex_unlock(&f->lock);
    if (ff_registry_coordinator_state(f->reg, f->cfg.model,
                                      ff_fed_state_name(s), f->address,
                                      round, &err) != FF_OK)
        FF_WARN("heartbeat not recorded: %s", ff_error_text(&err));
}

/* The one place the state changes: logs the transition and records it. */
static void set_state(ff_federation *f, ff_fed_state to, const char *why)
{
    ff_fed_state from;
    int round;

    pthread_mutex_lock(&f->lock);
    from = f->state;
    f->state = to;
    round = f->round;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    FF_INFO("state %s -> %s (round %d): %s", ff_fed_state_name(from),
            ff_fed_state_name(to), round, why);
    heartbeat(f);
}

/* Whether site s is alive now. Lock held. */
static int site_alive(const ff_federation *f, const ff_fed_site *s,
                      double now)
{
    double window = FF_FED_ALIVE_POLLS * f->cfg.poll_interval_ms / 1000.0;

    if (window < FF_FED_ALIVE_MIN)
        window = FF_FED_ALIVE_MIN;
    return s->registered && !s->dropped && now - s->last_seen <= window;
}

/* Number of alive sites. Lock held. */
static int alive_count(const ff_federation *f)
{
    double now = ff_fed_now();
    int i, n = 0;

    for (i = 0; i < f->n_sites; i++)
        n += site_alive(f, &f->sites[i], now);
    return n;
}

/* Waits, heartbeating, until `done` says so, the stop flag is set or
 * `until` passes. Lock held on entry and exit. */
static void wait_until(ff_federation *f, double until,
                       int (*done)(const ff_federation *, void *),
                       void *arg)
{
    double beat = ff_fed_now() + FF_FED_HEARTBEAT;

    while (!f->stop && !done(f, arg) && ff_fed_now() < until) {
        ff_fed_wait(f, until < beat ? until : beat);
        if (ff_fed_now() >= beat) {
            pthread_mutex_unlock(&f->lock);
            heartbeat(f);
            pthread_mutex_lock(&f->lock);
            beat = ff_fed_now() + FF_FED_HEARTBEAT;
        }
    }
}

void ff_fed_wait_until(ff_federation *f, double until,
                       int (*done)(const ff_federation *, void *),
                       void *arg)
{
    wait_until(f, until, done, arg);
}

/* Whether a stop was asked for; copies its reason when why is set. */
static int stop_requested(ff_federation *f, char *why, size_t cap)
{
    int stop;

    pthread_mutex_lock(&f->lock);
    stop = f->stop;
    if (why != NULL)
        snprintf(why, cap, "%s", f->stop_reason);
    pthread_mutex_unlock(&f->lock);
    return stop;
}

/* ---- waiting for sites ---- */

typedef struct sites_wait {
    double start;
    int first;                 /* the first round of this process */
} sites_wait;

/* Everyone is here, or enough are and waiting longer is not asked for. */
static int sites_ready(const ff_federation *f, void *arg)
{
    const sites_wait *w = arg;
    int n = alive_count(f);

    if (n == f->n_sites)
        return 1;
    return n >= f->cfg.min_sites &&
           (!w->first || ff_fed_now() - w->start >= f->cfg.wait_sites);
}

/* Waits for sites before a round. Errors: FF_ERR_STATE (too few came). */
static ff_status sites_await(ff_federation *f, int first, ff_error *err)
{
    sites_wait w = {ff_fed_now(), first};
    int n;

    pthread_mutex_lock(&f->lock);
    wait_until(f, w.start + f->cfg.wait_sites, sites_ready, &w);
    n = alive_count(f);
    pthread_mutex_unlock(&f->lock);
    if (stop_requested(f, NULL, 0) || n >= f->cfg.min_sites)
        return FF_OK;
    return ff_error_set(err, FF_ERR_STATE,
                        "only %d of the %d sites needed (min-sites) came "
                        "within %.0f s", n, f->cfg.min_sites,
                        f->cfg.wait_sites);
}

/* ---- one round ---- */

/* A float32 setting as the shortest decimal that reads back the same
 * (0.002, not 0.0020000000949949026). */
static double setting(float v)
{
    char buf[32];

    snprintf(buf, sizeof buf, "%.7g", (double)v);
    return strtod(buf, NULL);
}

/* The site-level DP of the round as recorded with rounds and versions. */
static json_t *site_dp_json(const ff_federation *f)
{
    static const char *const modes[] = {"off", "central", "distributed"};

    if (!f->dp.active)
        return json_pack("{s:s}", "mode", "off");
    return json_pack("{s:s, s:f, s:f, s:b, s:i}", "mode",
                     modes[f->cfg.site_dp], "clip", f->dp.clip, "z",
                     f->dp.z, "adaptive", f->cfg.site_dp_adaptive,
                     "planned_sites", f->dp.n_planned);
}

/* The training configuration as recorded with rounds and versions. */
static json_t *train_config_json(const ff_federation *f)
{
    const ff_train_config *t = &f->cfg.train;
    json_t *j = json_pack("{s:s, s:i, s:i, s:f, s:s, s:s, s:f, s:f, s:f, s:I, "
                     "s:i, s:f, s:O?}",
                     "protocol", f->cfg.secagg ? "secagg+" : "fedavg",
                     "epochs", t->epochs, "batch",
                     t->batch_size, "lr", setting(t->lr), "lr_schedule",
                     t->lr_schedule == FF_LR_COSINE ? "cosine" : "constant",
                     "optimizer",
                     t->optimizer == FF_OPT_ADAM ? "adam" : "sgd",
                     "momentum", setting(t->momentum), "weight_decay",
                     setting(t->weight_decay), "modality_dropout",
                     setting(t->modality_dropout), "seed",
                     (json_int_t)t->seed, "min_sites", f->cfg.min_sites,
                     "deadline_s", f->cfg.deadline, "secagg",
                     f->sa_record);

    if (j != NULL)
        json_object_set_new(j, "site_dp", site_dp_json(f));
    return j;
}

/* Selects the alive sites for round r and resets the running sum; returns
 * the selected ids as JSON. */
static json_t *round_select(ff_federation *f, int r, int *n_selected)
{
    json_t *ids = json_array();
    double now = ff_fed_now();
    int i;

    *n_selected = 0;
    pthread_mutex_lock(&f->lock);
    f->round = r;
    ff_aggregate_reset(f->agg);
    f->loss_sum = 0.0;
    for (i = 0; i < f->n_sites; i++) {
        ff_fed_site *s = &f->sites[i];
        /* A revoked site cannot poll, so it is not alive; one that came
         * back with a new certificate starts afresh. */
        s->revoked = 0;
        s->selected = site_alive(f, s, now);
        s->contributed = 0;
        s->examples = 0;
        s->refused = 0;
        s->reported = 0;
        if (s->selected) {
            ++*n_selected;
            json_array_append_new(ids, json_string(s->id));
        }
    }
    f->deadline_at = now + f->cfg.deadline;
    pthread_mutex_unlock(&f->lock);
    return ids;
}

/* Every selected site has sent an accepted update or refused the round.
 * Lock held. */
static int all_contributed(const ff_federation *f, void *arg)
{
    int i;

    (void)arg;
    for (i = 0; i < f->n_sites; i++)
        if (f->sites[i].selected && !f->sites[i].contributed &&
            !f->sites[i].refused && !f->sites[i].revoked)
            return 0;
    return 1;
}

/* Drops the selected sites that sent no accepted update; logs and audits
 * each. Returns the number of contributors. */
static int stragglers_drop(ff_federation *f, int r)
{
    char dropped[FF_COORD_MAX_SITES][FF_WIRE_ID_MAX + 1];
    int i, n_dropped = 0, n_contrib = 0;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_sites; i++) {
        ff_fed_site *s = &f->sites[i];
        if (s->selected && s->contributed) {
            n_contrib++;
        } else if (s->selected && !s->refused && !s->revoked) {
            s->dropped = 1;
            strcpy(dropped[n_dropped++], s->id);
        }
    }
    pthread_mutex_unlock(&f->lock);
    for (i = 0; i < n_dropped; i++) {
        FF_WARN("site=%s dropped from round %d: no accepted update before "
                "the %.1f s deadline", dropped[i], r, f->cfg.deadline);
        ff_fed_audit(f, "site.dropped", dropped[i],
                     json_pack("{s:i, s:s}", "round", r, "reason",
                               "no accepted update before the deadline"));
    }
    return n_contrib;
}

/* Writes the sites' ledger rows of round r once (what they spent or
 * refused stands whatever happens to the round). */
static ff_status sites_record_once(ff_federation *f, int r, ff_error *err)
{
    ff_status st;

    if (f->dp.sites_recorded)
        return FF_OK;
    st = ff_fed_privacy_sites_record(f, r, err);
    if (st != FF_OK)
        FF_ERROR("round %d: the sites' privacy ledger rows were not "
                 "written: %s", r, ff_error_text(err));
    return st;
}

/* Aborts round r in the registry with a reason (logged). A distributed
 * sum the coordinator already unmasked is accounted all the same. */
static ff_status round_abort(ff_federation *f, int r, const char *reason,
                             ff_error *err)
{
    ff_error e2 = {0};
    ff_status st;

    FF_WARN("round %d aborted: %s; nothing published", r, reason);
    (void)sites_record_once(f, r, &e2);
    if (ff_fed_privacy_abort_record(f, r, reason, &e2) != FF_OK)
        FF_ERROR("round %d: its unmasked sum was not accounted in the "
                 "privacy ledger: %s", r, ff_error_text(&e2));
    st = ff_registry_round_abort(f->reg, f->cfg.model, r, reason, err);
    if (st != FF_OK)
        FF_ERROR("round %d abort not recorded: %s", r, ff_error_text(err));
    return st;
}

/* ---- aggregation and publication ---- */

/* What a version records of its contributors, copied out of the site
 * table (a registration may rewrite it meanwhile). */
typedef struct contrib_text {
    char code_version[FF_REGISTRY_MAX_CODE_VERSION + 1];
    char manifest_digest[FF_WIRE_DIGEST_HEX + 1];
} contrib_text;

/* Collects the contributions of round r (lock taken inside); text holds
 * the strings they point to. */
static size_t contributions_get(ff_federation *f, ff_contribution *out,
                                contrib_text *text, double *train_loss)
{
    uint64_t total = 0;
    size_t n = 0;
    int i;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_sites; i++) {
        ff_fed_site *s = &f->sites[i];
        if (!s->contributed)
            continue;
        out[n].site = s->id;
        out[n].examples = (int64_t)s->examples;
        snprintf(text[n].code_version, sizeof text[n].code_version, "%s",
                 s->code_version);
        snprintf(text[n].manifest_digest, sizeof text[n].manifest_digest,
                 "%s", s->manifest_digest);
        out[n].code_version = text[n].code_version[0]
                                  ? text[n].code_version : NULL;
        out[n].manifest_digest =
            strlen(text[n].manifest_digest) == FF_WIRE_DIGEST_HEX
                ? text[n].manifest_digest : NULL;
        total += s->examples;
        n++;
    }
    if (f->cfg.secagg)      /* per-site counts are hidden in the sum */
        total = ff_aggregate_group_examples(f->agg, FF_GROUP_HEAD);
    *train_loss = total > 0 ? f->loss_sum / (double)total : 0.0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Metrics JSON of a scored version. */
static json_t *metrics_json(const ff_eval *ev, double train_loss,
                            size_t n_sites)
{
    json_t *alone = json_object();
    int m;

    for (m = 0; alone != NULL && m < FF_MOD_COUNT; m++)
        json_object_set_new(alone, ff_modality_name((ff_modality)m),
                            ev->accuracy_alone[m] < 0.0
                                ? json_null()
                                : json_real(ev->accuracy_alone[m]));
    return json_pack("{s:f, s:f, s:o?, s:f, s:I, s:I}", "accuracy",
                     ev->accuracy, "loss", ev->loss, "alone", alone,
                     "train_loss", train_loss, "sites", (json_int_t)n_sites,
                     "test_records", (json_int_t)ev->count);
}

/* Averages into the candidate model and scores it on the test set. */
static ff_status candidate_build(ff_federation *f, ff_eval *ev,
                                 ff_error *err)
{
    float *cand = ff_model_params(f->candidate);
    ff_status st;

    memcpy(cand, ff_model_params_const(f->global),
           f->n_params * sizeof *cand);
    pthread_mutex_lock(&f->lock);
    st = ff_aggregate_apply(f->agg, cand, f->n_params, err);
    pthread_mutex_unlock(&f->lock);
    if (st != FF_OK)
        return st;
    return ff_model_evaluate(f->candidate, &f->test, ev, err);
}

/* Makes the published candidate the global model and serves it. */
static void candidate_adopt(ff_federation *f, ff_model_blob *blob)
{
    ff_model *old = f->global;
    ff_model_blob *prev;

    f->global = f->candidate;
    f->candidate = old;
    pthread_mutex_lock(&f->lock);
    prev = f->blob;
    f->blob = blob;
    f->version = blob->version;
    pthread_mutex_unlock(&f->lock);
    ff_federation_blob_release(f, prev);
}

/* Emits the round's metric line and log line. */
static void round_report(int r, int version, const ff_eval *ev,
                         double train_loss, size_t n_sites)
{
    const double *a = ev->accuracy_alone;

    ff_metric("round", "round=%d version=%d accuracy=%.4f image=%.4f "
              "audio=%.4f pen=%.4f text=%.4f sites=%zu loss=%.4f "
              "train_loss=%.4f", r, version, ev->accuracy, a[FF_MOD_IMAGE],
              a[FF_MOD_AUDIO], a[FF_MOD_PEN], a[FF_MOD_TEXT], n_sites,
              ev->loss, train_loss);
    FF_INFO("round %d published version %d: test accuracy %.4f (image "
            "%.4f audio %.4f pen %.4f text %.4f) from %zu sites", r, version,
            ev->accuracy, a[FF_MOD_IMAGE], a[FF_MOD_AUDIO], a[FF_MOD_PEN],
            a[FF_MOD_TEXT], n_sites);
}

/* The aggregation rule of the round, in words, for the lineage. */
static const char *aggregation_rule(const ff_federation *f)
{
    if (f->dp.active && f->cfg.site_dp == FF_WIRE_SITE_DP_DISTRIBUTED)
        return "unweighted mean of clipped deltas with distributed "
               "discrete Gaussian noise, securely summed";
    if (f->dp.active)
        return f->cfg.secagg ? "unweighted mean of clipped deltas, securely "
                               "summed, with central Gaussian noise"
                             : "unweighted mean of clipped deltas with "
                               "central Gaussian noise";
    return f->cfg.secagg ? "example-weighted mean of deltas (FedAvg), "
                           "securely summed"
                         : "example-weighted mean of deltas (FedAvg)";
}

/* The lineage a version's signature covers: round, parent, contributing
 * sites with examples, manifest digests and code versions, aggregation
 * rule, secure aggregation and DP parameters, epsilon, the coordinator's
 * code version. Compact JSON with sorted keys (malloc'd), or NULL. */
static char *lineage_json(const ff_federation *f, const ff_version_new *v,
                          const char *digest_hex)
{
    json_t *sites = json_array(), *j, *priv = v->privacy;
    size_t k;
    char *text;

    for (k = 0; sites != NULL && k < v->n_contributions; k++) {
        const ff_contribution *c = &v->contributions[k];
        json_array_append_new(
            sites, json_pack("{s:s, s:I, s:s?, s:s?}", "site", c->site,
                             "examples", (json_int_t)c->examples,
                             "manifest_digest", c->manifest_digest,
                             "code_version", c->code_version));
    }
    j = json_pack("{s:s, s:i, s:i, s:i, s:s, s:o?, s:s, s:O?, s:o?, s:O?, "
                  "s:O?, s:O?, s:s}",
                  "model", f->cfg.model, "version", v->parent + 1,
                  "parent", v->parent, "round", v->round, "digest",
                  digest_hex, "contributions", sites, "aggregation",
                  aggregation_rule(f), "secagg", f->sa_record, "site_dp",
                  site_dp_json(f), "privacy", priv, "record_epsilon",
                  json_object_get(priv, "record_epsilon"), "site_epsilon",
                  json_object_get(priv, "site_epsilon"),
                  "coordinator_code_version", FF_CODE_VERSION);
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "train", json_pack("{s:i, s:i, s:f}", "epochs",
                                              f->cfg.train.epochs, "batch",
                                              f->cfg.train.batch_size, "lr",
                                              setting(f->cfg.train.lr)));
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

/* Signs the version about to be published (number parent + 1) and points
 * v's signature fields at the blob's. */
static ff_status version_sign(ff_federation *f, ff_version_new *v,
                              ff_model_blob *blob, const char *hex,
                              ff_error *err)
{
    char *meta = lineage_json(f, v, hex);
    ff_status st;

    if (meta == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for the "
                            "version's lineage");
    blob->version = v->parent + 1;
    st = ff_fed_blob_sign(f, blob, v->parent, meta, err);
    free(meta);
    if (st != FF_OK)
        return st;
    v->signature = blob->signature;
    v->signer_key = blob->signer_key;
    v->signed_metadata = blob->metadata;
    return FF_OK;
}

/* Averages, scores and publishes round r. Errors: FF_ERR_DB (publication
 * failed: the round stays unfinished and a restart aborts it). */
static ff_status round_publish(ff_federation *f, int r, ff_error *err)
{
    ff_contribution contrib[FF_COORD_MAX_SITES];
    static contrib_text text[FF_COORD_MAX_SITES]; /* main thread only */
    ff_model_blob *blob = NULL;
    ff_version_new v;
    ff_eval ev;
    char hex[2 * FF_WIRE_DIGEST_BYTES + 1];
    double train_loss;
    int version = 0;
    ff_status st;

    /* Average and score; serialise and hash the result. */
    memset(&v, 0, sizeof v);
    v.n_contributions = contributions_get(f, contrib, text, &train_loss);
    st = candidate_build(f, &ev, err);
    if (st == FF_OK)
        st = ff_fed_blob_make(f->candidate, 0, &blob, err);
    if (st != FF_OK) {
        char why[FF_WIRE_TEXT_MAX];
        snprintf(why, sizeof why, "aggregation failed: %s",
                 ff_error_text(err));
        return round_abort(f, r, why, err);
    }
    ff_fed_hex(blob->digest, sizeof blob->digest, hex);

    /* Nothing is released before the ledger holds what it costs. */
    st = sites_record_once(f, r, err);
    if (st == FF_OK)
        st = ff_fed_privacy_model_record(f, r, &v.privacy, err);
    if (st != FF_OK) {
        char why[FF_WIRE_TEXT_MAX];
        snprintf(why, sizeof why, "privacy ledger: %s", ff_error_text(err));
        ff_federation_blob_release(f, blob);
        return round_abort(f, r, why, err);
    }

    /* One transaction: version, contributions, round finished. */
    v.model = f->cfg.model;
    v.round = r;
    v.parent = f->version;
    v.contributions = contrib;
    v.train_config = train_config_json(f);
    v.metrics = metrics_json(&ev, train_loss, v.n_contributions);
    v.artifact = blob->data;
    v.artifact_len = blob->len;
    v.digest_hex = hex;
    st = version_sign(f, &v, blob, hex, err);
    if (st == FF_OK)
        st = ff_registry_version_publish(f->reg, &v, &version, err);
    if (st == FF_OK && version != blob->version)
        FF_ERROR("round %d: published as version %d, signed as %d: sites "
                 "will refuse it", r, version, blob->version);
    json_decref(v.train_config);
    json_decref(v.metrics);
    json_decref(v.privacy);
    if (st != FF_OK) {
        FF_ERROR("round %d: version not published: %s", r,
                 ff_error_text(err));
        ff_federation_blob_release(f, blob);
        return st;
    }
    blob->version = version;
    candidate_adopt(f, blob);
    round_report(r, version, &ev, train_loss, v.n_contributions);
    return FF_OK;
}

/* Undoes the selection of a round the budget refused. */
static void round_unselect(ff_federation *f, int r)
{
    int i;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_sites; i++)
        f->sites[i].selected = 0;
    f->round = r - 1;
    pthread_mutex_unlock(&f->lock);
}

/* Central site DP with plain uploads: noise and add the closed sum. */
static ff_status round_dp_close(ff_federation *f, int n_contrib,
                                ff_error *err)
{
    ff_status st;

    pthread_mutex_lock(&f->lock);
    st = ff_fed_dp_close(f, NULL, n_contrib, f->dp.unclipped, err);
    pthread_mutex_unlock(&f->lock);
    return st;
}

/* Runs round r from selection to publication or abort; *exhausted is 1
 * when the model budget refused it (nothing opened). Errors: FF_ERR_DB
 * (the round could not be recorded). */
static ff_status round_run(ff_federation *f, int r, int *exhausted,
                           ff_error *err)
{
    json_t *config;
    json_t *ids;
    char why[FF_WIRE_TEXT_MAX];
    int n_selected, n_contrib, stopped;
    ff_status st;

    /* Open: select, check the budget, record, then let sites train. */
    *exhausted = 0;
    json_decref(f->sa_record);
    f->sa_record = NULL;
    snprintf(why, sizeof why, "round=%d", r);
    ff_log_set_context(why);
    ids = round_select(f, r, &n_selected);
    st = ff_fed_privacy_round_open(f, r, n_selected, exhausted, err);
    if (st != FF_OK || *exhausted) {
        json_decref(ids);
        round_unselect(f, r);
        return st;
    }
    config = train_config_json(f);
    json_object_set_new(config, "sites", ids);
    st = ff_registry_round_start(f->reg, f->cfg.model, r, config, err);
    json_decref(config);
    if (st != FF_OK)
        return st;
    snprintf(why, sizeof why, "round %d opened for %d sites, deadline "
             "%.1f s", r, n_selected, f->cfg.deadline);
    set_state(f, FF_FED_TRAINING, why);

    /* Securely summed: the stages decide who contributes. */
    if (f->cfg.secagg) {
        int aborted = 0;
        ff_fed_secagg_round(f, r, &aborted, why, sizeof why);
        set_state(f, FF_FED_AGGREGATING,
                  aborted ? "secure aggregation failed" : "secure sum ready");
        if (aborted)
            return round_abort(f, r, why, err);
        /* The coordinator has seen the noised sum: record its spend now. */
        if (ff_fed_privacy_unmask_record(f, r, err) != FF_OK) {
            snprintf(why, sizeof why, "privacy ledger: %s",
                     ff_error_text(err));
            return round_abort(f, r, why, err);
        }
        /* secagg.c checked min-sites before unmasking; kept as a guard. */
        n_contrib = (int)ff_aggregate_count(f->agg);
        if (n_contrib < f->cfg.min_sites) {
            snprintf(why, sizeof why, "only %d of min-sites %d sites are in "
                     "the secure sum", n_contrib, f->cfg.min_sites);
            return round_abort(f, r, why, err);
        }
        return round_publish(f, r, err);
    }

    /* Collect until everyone sent an update or the deadline passes. */
    pthread_mutex_lock(&f->lock);
    wait_until(f, f->deadline_at, all_contributed, NULL);
    stopped = f->stop;
    snprintf(why, sizeof why, "%s",
             stopped ? "coordinator stopping"
             : all_contributed(f, NULL) ? "every selected site sent an update"
                                        : "deadline passed");
    pthread_mutex_unlock(&f->lock);
    set_state(f, FF_FED_AGGREGATING, why);

    /* Close: stop, drop stragglers, abort or publish. */
    if (stopped) {
        char reason[128];
        stop_requested(f, reason, sizeof reason);
        snprintf(why, sizeof why, "coordinator stopped: %s", reason);
        round_abort(f, r, why, err);
        return FF_OK;
    }
    n_contrib = stragglers_drop(f, r);
    if (n_contrib < f->cfg.min_sites) {
        snprintf(why, sizeof why, "only %d of min-sites %d sites sent an "
                 "accepted update", n_contrib, f->cfg.min_sites);
        return round_abort(f, r, why, err);
    }
    if (f->dp.active && (st = round_dp_close(f, n_contrib, err)) != FF_OK) {
        snprintf(why, sizeof why, "site-level DP: %s", ff_error_text(err));
        return round_abort(f, r, why, err);
    }
    return round_publish(f, r, err);
}

/* ---- the whole federation ---- */

/* Every site that may still poll has been told FINISHED: the alive ones,
 * and the known ones not heard from since this coordinator started (after
 * a restart they come back to register). Lock held. */
static int all_told(const ff_federation *f, void *arg)
{
    double now = ff_fed_now();
    int i;

    (void)arg;
    for (i = 0; i < f->n_sites; i++) {
        const ff_fed_site *s = &f->sites[i];
        if ((site_alive(f, s, now) || !s->registered) && !s->told_finished)
            return 0;
    }
    return 1;
}

/* Tells the sites FINISHED: waits a bounded grace period for them to poll. */
static void finish(ff_federation *f)
{
    int i, told = 0;

    pthread_mutex_lock(&f->lock);
    f->finished = 1;
    pthread_mutex_unlock(&f->lock);
    set_state(f, FF_FED_FINISHING, "every round is done");
    pthread_mutex_lock(&f->lock);
    wait_until(f, ff_fed_now() + f->cfg.finish_grace, all_told, NULL);
    for (i = 0; i < f->n_sites; i++)
        told += f->sites[i].told_finished;
    pthread_mutex_unlock(&f->lock);
    FF_INFO("%d of %d sites were told FINISHED", told, f->n_sites);
}

ff_status ff_federation_run(ff_federation *f, ff_error *err)
{
    char why[FF_WIRE_TEXT_MAX];
    ff_status st = FF_OK;
    int first = 1, attempted = 0, start_version = f->version;
    int exhausted = 0;

    /* Rounds until the last one, each preceded by a wait for sites. */
    set_state(f, FF_FED_WAITING, "ready");
    while (!stop_requested(f, NULL, 0) && f->round < f->cfg.rounds) {
        st = sites_await(f, first, err);
        if (st != FF_OK || stop_requested(f, NULL, 0))
            break;
        first = 0;
        st = round_run(f, f->round + 1, &exhausted, err);
        if (st == FF_OK && exhausted)
            FF_INFO("the model's privacy budget admits no further round: "
                    "the federation ends after round %d", f->round);
        if (st != FF_OK || exhausted)
            break;
        attempted++;
        ff_fed_audit_sign(f, "after the round");
        if (!stop_requested(f, NULL, 0))
            set_state(f, FF_FED_WAITING, "round over");
    }

    /* Tell the sites, then record why this coordinator stops. A run whose
     * every round aborted has failed, whatever the cause. */
    if (st == FF_OK && !stop_requested(f, why, sizeof why))
        finish(f);
    if (st == FF_OK && attempted > 0 && f->version == start_version &&
        !stop_requested(f, NULL, 0))
        st = ff_error_set(err, FF_ERR_STATE, "none of the %d rounds of this "
                          "run was published", attempted);
    if (st != FF_OK)
        snprintf(why, sizeof why, "%s", ff_error_text(err));
    else if (!stop_requested(f, why, sizeof why))
        snprintf(why, sizeof why, "%s", exhausted
                 ? "federation finished: the model's privacy budget is spent"
                 : "federation finished");
    set_state(f, FF_FED_STOPPED, why);
    ff_fed_audit(f, "coordinator.stopped", NULL,
                 json_pack("{s:s, s:i, s:i}", "reason", why, "round",
                           f->round, "version", f->version));
    ff_fed_audit_sign(f, "at shutdown");
    return st;
}
