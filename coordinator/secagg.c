/*
 * secagg.c - secure aggregation (SecAgg+, privacy/ff_secagg.h) of one
 * round, coordinator side: sets the round's parameters, drives the four
 * stages with a deadline each, answers the sites' SecAgg calls, takes the
 * masked vectors from UploadUpdate and turns the unmasked sum into the
 * round's aggregate. docs/secagg.md ("Wiring") describes the protocol.
 *
 * The library object and the stage messages live in the federation under
 * its lock; the main thread changes the stage, handlers only add messages.
 */
#include "fed_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ff_log.h"

/* Word b of the modulus: the sum is taken modulo 2^32. */
#define FF_FED_SA_BITS 32u

static const char *sa_stage_name(ff_fed_sa_stage s)
{
    static const char *const names[] = {"none",      "advert", "sharing",
                                        "masking",   "unmasking", "done",
                                        "failed"};

    if ((int)s < 0 || (size_t)s >= sizeof names / sizeof names[0])
        return "unknown";
    return names[s];
}

/* The one place the secagg stage changes; logs it. Lock held. */
static void sa_stage_set(ff_federation *f, ff_fed_sa_stage to,
                         const char *why)
{
    FF_INFO("secagg stage %s -> %s (round %d): %s",
            sa_stage_name(f->sa_stage), sa_stage_name(to), f->round, why);
    f->sa_stage = to;
    pthread_cond_broadcast(&f->cond);
}

/* Marks the round failed with a reason. Lock held. */
static void sa_fail(ff_federation *f, const char *why)
{
    snprintf(f->sa_reason, sizeof f->sa_reason, "%s", why);
    sa_stage_set(f, FF_FED_SA_FAILED, why);
}

void ff_fed_secagg_clear(ff_federation *f)
{
    int j;

    ff_secagg_server_destroy(f->sa);
    f->sa = NULL;
    free(f->sa_pks);
    f->sa_pks = NULL;
    ff_secagg_msg_cleanup(&f->sa_keys);
    for (j = 0; j < FF_COORD_MAX_SITES; j++) {
        ff_secagg_msg_cleanup(&f->sa_forward[j]);
        ff_secagg_msg_cleanup(&f->sa_unmask[j]);
    }
    for (j = 0; j < f->n_sites; j++)
        f->sites[j].sa_index = -1;
    f->sa_stage = FF_FED_SA_NONE;
    f->sa_reason[0] = '\0';
}

/* ---- setup ---- */

/* Numbers the selected sites and gathers their identity keys. Lock held.
 * Returns n, or -1 with why set. */
static int sa_number(ff_federation *f, char *why, size_t cap)
{
    int i, n = 0;

    for (i = 0; i < f->n_sites; i++) {
        f->sites[i].sa_index = -1;
        if (f->sites[i].selected && f->sites[i].has_key)
            f->sa_site[n++] = i;
    }
    if (n < 3) {
        snprintf(why, cap, "secure aggregation needs at least 3 sites with "
                 "an identity key, %d selected", n);
        return -1;
    }
    f->sa_pks = malloc((size_t)n * FF_WIRE_IDENTITY_BYTES);
    if (f->sa_pks == NULL) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        ff_fed_site *s = &f->sites[f->sa_site[i]];
        s->sa_index = i;
        memcpy(f->sa_pks + (size_t)i * FF_WIRE_IDENTITY_BYTES, s->identity,
               FF_WIRE_IDENTITY_BYTES);
    }
    return n;
}

/* Chooses (k, t), b and the vector layout, checks that the sum cannot
 * wrap and creates the server. Lock held. Returns 0 or -1 with why. */
static int sa_setup(ff_federation *f, int r, char *why, size_t cap)
{
    ff_secagg_config *c = &f->sa_cfg;
    ff_privacy_error pe = {0};
    int n = sa_number(f, why, cap);

    if (n < 0)
        return -1;
    memset(c, 0, sizeof *c);
    c->round = (uint64_t)r;
    c->n_sites = (uint32_t)n;

    /* Site-level DP chooses its own layout (privacy.c). */
    f->sa_clip = f->cfg.secagg_clip;
    if (!ff_fed_dp_secagg_layout(f, (uint32_t)n, c, &f->sa_clip)) {
        c->bits = FF_FED_SA_BITS;
        c->length = (uint64_t)f->n_params + 1 + FF_GROUP_COUNT;
        c->max_value = (uint32_t)(0xffffffffu / (uint32_t)n);
    }
    randombytes_buf(c->graph_seed, sizeof c->graph_seed);
    if (ff_secagg_params_find((uint32_t)n, f->cfg.secagg_dropout,
                              f->cfg.secagg_corrupt, FF_SECAGG_SEMI_HONEST,
                              &c->degree, &c->threshold, &pe) !=
            FF_PRIVACY_OK ||
        ff_secagg_config_check(c, &pe) != FF_PRIVACY_OK ||
        ff_secagg_server_create(c, f->sa_pks, &f->sa, &pe) !=
            FF_PRIVACY_OK) {
        snprintf(why, cap, "secure aggregation setup: %s",
                 ff_privacy_error_text(&pe));
        return -1;
    }
    FF_INFO("secagg round %d: n=%d k=%u t=%u b=%u length=%llu "
            "max_value=%u clip=%g", r, n, (unsigned)c->degree,
            (unsigned)c->threshold, (unsigned)c->bits,
            (unsigned long long)c->length, (unsigned)c->max_value,
            f->sa_clip);
    sa_stage_set(f, FF_FED_SA_ADVERT, "round opened");
    return 0;
}

int ff_fed_secagg_task(ff_federation *f, int i, ff_wire_secagg_task *task)
{
    const ff_secagg_config *c = &f->sa_cfg;
    size_t keys;

    memset(task, 0, sizeof *task);
    if (f->sa == NULL || f->sites[i].sa_index < 0)
        return 0;
    keys = (size_t)c->n_sites * FF_WIRE_IDENTITY_BYTES;
    task->identity_keys = malloc(keys);
    if (task->identity_keys == NULL)
        return 0;
    memcpy(task->identity_keys, f->sa_pks, keys);
    task->site_index = (uint32_t)f->sites[i].sa_index;
    task->n_sites = c->n_sites;
    task->degree = c->degree;
    task->threshold = c->threshold;
    task->bits = c->bits;
    task->length = c->length;
    task->max_value = c->max_value;
    memcpy(task->graph_seed, c->graph_seed, sizeof task->graph_seed);
    task->clip = (float)f->sa_clip;
    return 1;
}

/* ---- stages ---- */

/* The progress of secagg number j. Lock held. */
static ff_secagg_progress sa_progress(const ff_federation *f, int j)
{
    return ff_secagg_server_progress(f->sa, (uint32_t)j);
}

/* Whether secagg number j stopped at progress `at`. The library marks a
 * masked input complete only when masking closes, so during that stage a
 * site whose whole vector was accepted (contributed) has moved on. */
static int sa_stuck(const ff_federation *f, int j, ff_secagg_progress at)
{
    ff_secagg_progress p = sa_progress(f, j);

    /* A site that refused the round left it before advertising keys:
     * absent, but neither awaited nor dropped. */
    if (at == FF_SECAGG_ABSENT && f->sites[f->sa_site[j]].refused)
        return 0;
    if (at == FF_SECAGG_SHARED && p == FF_SECAGG_SHARED)
        return !f->sites[f->sa_site[j]].contributed;
    return p == at;
}

/* No site that reached stage `from` is still stuck there. Lock held. */
static int sa_all_reached(const ff_federation *f, ff_secagg_progress from)
{
    uint32_t j;

    for (j = 0; j < f->sa_cfg.n_sites; j++)
        if (sa_stuck(f, (int)j, from))
            return 0;
    return 1;
}

static int sa_stage_complete(const ff_federation *f, void *arg)
{
    const ff_secagg_progress *from = arg;

    return sa_all_reached(f, *from);
}

/* Drops the sites stuck at progress `at`: WARN line and audit row each
 * (lock taken inside). */
static void sa_drop(ff_federation *f, int r, ff_secagg_progress at,
                    const char *stage, uint32_t *count)
{
    char ids[FF_COORD_MAX_SITES][FF_WIRE_ID_MAX + 1];
    char why[160];
    uint32_t j;
    int n = 0, k;

    pthread_mutex_lock(&f->lock);
    for (j = 0; j < f->sa_cfg.n_sites; j++) {
        if (!sa_stuck(f, (int)j, at))
            continue;
        f->sites[f->sa_site[j]].dropped = 1;
        strcpy(ids[n++], f->sites[f->sa_site[j]].id);
    }
    pthread_mutex_unlock(&f->lock);
    *count = (uint32_t)n;
    snprintf(why, sizeof why, "no %s message before the stage deadline",
             stage);
    for (k = 0; k < n; k++) {
        FF_WARN("site=%s dropped from round %d at secagg stage %s: %s",
                ids[k], r, stage, why);
        ff_fed_audit(f, "site.dropped", ids[k],
                     json_pack("{s:i, s:s, s:s}", "round", r, "stage",
                               stage, "reason", why));
    }
}

/* Waits for a stage: until no site is stuck at progress `from`, the stop
 * flag, or `until`. */
static void sa_await(ff_federation *f, ff_secagg_progress from,
                     double until)
{
    pthread_mutex_lock(&f->lock);
    ff_fed_wait_until(f, until, sa_stage_complete, &from);
    pthread_mutex_unlock(&f->lock);
}

/* Closes stage 1 and publishes the key list. Lock held. */
static int sa_close_adverts(ff_federation *f, char *why, size_t cap)
{
    ff_privacy_error pe = {0};

    if (ff_secagg_server_close_adverts(f->sa, &pe) != FF_PRIVACY_OK ||
        ff_secagg_server_keys_message(f->sa, &f->sa_keys, &pe) !=
            FF_PRIVACY_OK) {
        snprintf(why, cap, "secagg key advertisement: %s",
                 ff_privacy_error_text(&pe));
        return -1;
    }
    sa_stage_set(f, FF_FED_SA_SHARING, "key list signed and published");
    return 0;
}

/* Closes stage 2 and prepares each sharer's forwarded shares. */
static int sa_close_sharing(ff_federation *f, char *why, size_t cap)
{
    ff_privacy_error pe = {0};
    uint32_t j;

    if (ff_secagg_server_close_sharing(f->sa, &pe) != FF_PRIVACY_OK)
        goto fail;
    for (j = 0; j < f->sa_cfg.n_sites; j++)
        if (sa_progress(f, (int)j) >= FF_SECAGG_SHARED &&
            ff_secagg_server_forward_message(f->sa, j, &f->sa_forward[j],
                                             &pe) != FF_PRIVACY_OK)
            goto fail;
    sa_stage_set(f, FF_FED_SA_MASKING, "shares ready for their recipients");
    return 0;

fail:
    snprintf(why, cap, "secagg key sharing: %s", ff_privacy_error_text(&pe));
    return -1;
}

/* Closes stage 3 and prepares each survivor's unmask request. Fewer
 * than min-sites masked inputs abort the round here, before anything is
 * unmasked: the coordinator never sees a sum of fewer inputs (or, under
 * distributed DP, fewer noise shares) than the round was planned for. */
static int sa_close_masking(ff_federation *f, char *why, size_t cap)
{
    ff_privacy_error pe = {0};
    uint32_t j, inputs;

    if (ff_secagg_server_close_masking(f->sa, &pe) != FF_PRIVACY_OK)
        goto fail;
    inputs = ff_secagg_server_input_count(f->sa);
    if (inputs < (uint32_t)f->cfg.min_sites) {
        snprintf(why, cap, "only %u of min-sites %d masked inputs arrived; "
                 "the sum is not unmasked", (unsigned)inputs,
                 f->cfg.min_sites);
        return -1;
    }
    for (j = 0; j < f->sa_cfg.n_sites; j++)
        if (sa_progress(f, (int)j) >= FF_SECAGG_MASKED &&
            ff_secagg_server_unmask_request(f->sa, j, &f->sa_unmask[j],
                                            &pe) != FF_PRIVACY_OK)
            goto fail;
    sa_stage_set(f, FF_FED_SA_UNMASKING, "unmask requests ready");
    return 0;

fail:
    snprintf(why, cap, "secagg masked input: %s",
             ff_privacy_error_text(&pe));
    return -1;
}

/* Unmasks, dequantises and adds the sum to the round's aggregate. */
static int sa_finish(ff_federation *f, char *why, size_t cap)
{
    const ff_secagg_config *c = &f->sa_cfg;
    size_t p = f->n_params, m = (size_t)c->length;
    uint64_t examples[FF_GROUP_COUNT];
    uint32_t inputs = ff_secagg_server_input_count(f->sa);
    ff_privacy_error pe = {0};
    uint32_t *sum = malloc(m * sizeof *sum);
    float *wsum = malloc((p + 1) * sizeof *wsum);
    ff_error err = {0};
    int g, rc = -1;

    /* The unmasked sum, then the floats it encodes. */
    if (sum == NULL || wsum == NULL) {
        snprintf(why, cap, "out of memory for the secure sum");
        goto done;
    }
    if (ff_secagg_server_close_unmasking(f->sa, &pe) != FF_PRIVACY_OK ||
        ff_secagg_server_result_chunk(f->sa, 0, sum, m, &pe) !=
            FF_PRIVACY_OK) {
        snprintf(why, cap, "secagg unmasking: %s",
                 ff_privacy_error_text(&pe));
        goto done;
    }

    /* Site-level DP: its own layout, noise and step size. */
    if (f->dp.active) {
        if (ff_fed_dp_secagg_sum(f, sum, inputs, &err) != FF_OK) {
            snprintf(why, cap, "site-level DP sum: %s", ff_error_text(&err));
            goto done;
        }
        f->loss_sum = 0.0;
        sa_stage_set(f, FF_FED_SA_DONE, "sum unmasked");
        rc = 0;
        goto done;
    }
    if (ff_secagg_dequantize_sum(sum, p + 1, inputs,
                                 (float)f->cfg.secagg_clip, c->max_value,
                                 wsum, &pe) != FF_PRIVACY_OK) {
        snprintf(why, cap, "secagg dequantising: %s",
                 ff_privacy_error_text(&pe));
        goto done;
    }

    /* Counts are exact integers; the loss rides along weighted. */
    for (g = 0; g < FF_GROUP_COUNT; g++)
        examples[g] = sum[p + 1 + (size_t)g];
    if (ff_aggregate_add_sum(f->agg, wsum, p, examples, FF_GROUP_COUNT,
                             inputs, &err) != FF_OK) {
        snprintf(why, cap, "secure sum unusable: %s", ff_error_text(&err));
        goto done;
    }
    f->loss_sum = (double)wsum[p];
    sa_stage_set(f, FF_FED_SA_DONE, "sum unmasked");
    rc = 0;

done:
    free(wsum);
    free(sum);
    return rc;
}

/* Counts of one round for the registry. */
typedef struct sa_counts {
    uint32_t selected, advert, share, mask, unmask; /* drops per stage */
    uint32_t refused;          /* left before advertising (DP budget) */
} sa_counts;

/* The round's protocol record (train_config "secagg"). */
static json_t *sa_record(const ff_federation *f, const sa_counts *d)
{
    const ff_secagg_config *c = &f->sa_cfg;
    uint32_t u1 = d->selected - d->advert - d->refused;
    uint32_t u2 = u1 - d->share;
    uint32_t u3 = u2 - d->mask;

    return json_pack(
        "{s:s, s:i, s:i, s:i, s:I, s:I, s:f, s:f, s:f, s:{s:i, s:i, s:i, "
        "s:i, s:i, s:i}, s:{s:i, s:i, s:i, s:i}}",
        "graph", c->degree + 1 == c->n_sites ? "complete" : "harary", "k",
        (int)c->degree, "t", (int)c->threshold, "b", (int)c->bits,
        "max_value", (json_int_t)c->max_value, "length",
        (json_int_t)c->length, "clip", f->sa_clip, "dropout",
        f->cfg.secagg_dropout, "corrupt", f->cfg.secagg_corrupt, "sites",
        "selected", (int)d->selected, "refused", (int)d->refused,
        "advertised", (int)u1, "shared",
        (int)u2, "masked", (int)u3, "answered", (int)(u3 - d->unmask),
        "dropped", "advert", (int)d->advert, "share", (int)d->share, "mask",
        (int)d->mask, "unmask", (int)d->unmask);
}

/* Runs one stage close under the lock; on failure marks the round. */
static int sa_close(ff_federation *f,
                    int (*close)(ff_federation *, char *, size_t), char *why,
                    size_t cap)
{
    int rc;

    pthread_mutex_lock(&f->lock);
    rc = f->stop ? -1 : close(f, why, cap);
    if (f->stop)
        snprintf(why, cap, "coordinator stopped: %s", f->stop_reason);
    if (rc != 0)
        sa_fail(f, why);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void ff_fed_secagg_round(ff_federation *f, int r, int *aborted, char *why,
                         size_t cap)
{
    double stage = f->cfg.secagg_stage_deadline;
    int j;
    sa_counts d = {0, 0, 0, 0, 0, 0};
    int rc;

    /* Parameters and the server object. */
    json_decref(f->sa_record);
    f->sa_record = NULL;
    pthread_mutex_lock(&f->lock);
    ff_fed_secagg_clear(f);
    rc = sa_setup(f, r, why, cap);
    if (rc != 0)
        sa_fail(f, why);
    d.selected = f->sa_cfg.n_sites;
    pthread_mutex_unlock(&f->lock);

    /* Stage by stage: wait, drop the late, close. */
    if (rc == 0) {
        sa_await(f, FF_SECAGG_ABSENT, f->deadline_at);
        sa_drop(f, r, FF_SECAGG_ABSENT, "advert", &d.advert);
        rc = sa_close(f, sa_close_adverts, why, cap);
    }
    if (rc == 0) {
        sa_await(f, FF_SECAGG_ADVERTISED, ff_fed_now() + stage);
        sa_drop(f, r, FF_SECAGG_ADVERTISED, "share", &d.share);
        rc = sa_close(f, sa_close_sharing, why, cap);
    }
    if (rc == 0) {
        sa_await(f, FF_SECAGG_SHARED, ff_fed_now() + stage);
        sa_drop(f, r, FF_SECAGG_SHARED, "masked input", &d.mask);
        rc = sa_close(f, sa_close_masking, why, cap);
    }
    if (rc == 0) {
        sa_await(f, FF_SECAGG_MASKED, ff_fed_now() + stage);
        sa_drop(f, r, FF_SECAGG_MASKED, "unmask", &d.unmask);
        rc = sa_close(f, sa_finish, why, cap);
    }

    /* The record goes with the version; the library state goes now. */
    pthread_mutex_lock(&f->lock);
    for (j = 0; f->sa != NULL && j < (int)f->sa_cfg.n_sites; j++)
        d.refused += (uint32_t)f->sites[f->sa_site[j]].refused;
    if (f->sa != NULL)
        f->sa_record = sa_record(f, &d);
    ff_fed_secagg_clear(f);
    pthread_mutex_unlock(&f->lock);
    *aborted = rc != 0;
}

/* ---- masked uploads ---- */

ff_status ff_fed_secagg_refusal_check(ff_federation *f, int i, ff_error *err)
{
    int j = f->sites[i].sa_index;

    if (f->sa == NULL || j < 0 || f->sa_stage == FF_FED_SA_NONE)
        return FF_OK;
    if (sa_progress(f, j) != FF_SECAGG_ABSENT)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "refusal after the site advertised its keys "
                            "(a site refuses before training)");
    return FF_OK;
}

ff_status ff_fed_secagg_upload_check(ff_federation *f, int i,
                                     size_t *expected, ff_error *err)
{
    int j = f->sites[i].sa_index;

    if (f->sa == NULL || j < 0)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "masked update, but the site is not in a "
                            "secure aggregation round");
    if (f->sa_stage != FF_FED_SA_MASKING)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "masked update outside the masking stage "
                            "(stage %s)", sa_stage_name(f->sa_stage));
    if (sa_progress(f, j) != FF_SECAGG_SHARED || f->sites[i].contributed)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "masked update from a site that did not share "
                            "keys, or sent its vector already");
    *expected = (size_t)f->sa_cfg.length * 4;
    return FF_OK;
}

ff_status ff_fed_secagg_upload_add(ff_federation *f, int i, uint8_t *bytes,
                                   size_t len, ff_error *err)
{
    ff_privacy_error pe = {0};
    uint32_t *w = (uint32_t *)(void *)bytes;
    size_t n = len / 4, k = 0;
    ff_status st = ff_fed_secagg_upload_check(f, i, &k, err);

    if (st != FF_OK)
        return st;
    if (k != len)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "masked vector of %zu bytes, expected %zu", len,
                            k);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (k = 0; k < n; k++)
        w[k] = __builtin_bswap32(w[k]);
#endif
    if (ff_secagg_server_add_chunk(f->sa, (uint32_t)f->sites[i].sa_index, 0,
                                   w, n, &pe) != FF_PRIVACY_OK)
        return ff_error_set(err, FF_ERR_REJECTED, "masked vector: %s",
                            ff_privacy_error_text(&pe));
    pthread_cond_broadcast(&f->cond);
    return FF_OK;
}

/* ---- the SecAgg call ---- */

/* Copies a prepared message into the reply. */
static void reply_copy(ff_wire_secagg_msg *reply, const ff_secagg_msg *m)
{
    uint8_t *copy = malloc(m->len);

    if (copy == NULL) {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason, "out of memory");
        return;
    }
    memcpy(copy, m->data, m->len);
    reply->data = copy;
    reply->len = m->len;
    reply->status = FF_WIRE_SA_OK;
}

/* Hands out a message prepared for site j once its stage is open: WAIT
 * before `opens`, the message when there is one, ABORTED otherwise. */
static void sa_fetch(ff_federation *f, ff_fed_sa_stage opens,
                     const ff_secagg_msg *m, ff_wire_secagg_msg *reply,
                     const char *what)
{
    if (f->sa_stage < opens) {
        reply->status = FF_WIRE_SA_WAIT;
    } else if (m->data != NULL && f->sa_stage < FF_FED_SA_DONE) {
        reply_copy(reply, m);
    } else {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason,
                 "no %s for this site (it missed an earlier stage)", what);
    }
}

/* Adds a message a site sent in stage `open`. */
static void sa_add(ff_federation *f, ff_fed_sa_stage open,
                   const ff_wire_secagg_msg *req, ff_wire_secagg_msg *reply)
{
    ff_privacy_error pe = {0};
    ff_privacy_status ps;

    if (f->sa_stage != open) {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason,
                 "message for stage %s, the round is at stage %s",
                 sa_stage_name(open), sa_stage_name(f->sa_stage));
        return;
    }
    if (open == FF_FED_SA_ADVERT)
        ps = ff_secagg_server_add_advert(f->sa, req->data, req->len, &pe);
    else if (open == FF_FED_SA_SHARING)
        ps = ff_secagg_server_add_shares(f->sa, req->data, req->len, &pe);
    else
        ps = ff_secagg_server_add_unmask(f->sa, req->data, req->len, &pe);
    if (ps != FF_PRIVACY_OK) {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason, "refused: %s",
                 ff_privacy_error_text(&pe));
        return;
    }
    reply->status = FF_WIRE_SA_OK;
    pthread_cond_broadcast(&f->cond);
}

/* Dispatches one stage message of site i (sa number j). Lock held. */
static void sa_dispatch(ff_federation *f, int j,
                        const ff_wire_secagg_msg *req,
                        ff_wire_secagg_msg *reply)
{
    switch (req->stage) {
    case FF_WIRE_SA_ADVERT:
        sa_add(f, FF_FED_SA_ADVERT, req, reply);
        return;
    case FF_WIRE_SA_KEYS:
        sa_fetch(f, FF_FED_SA_SHARING,
                 sa_progress(f, j) >= FF_SECAGG_ADVERTISED
                     ? &f->sa_keys
                     : &(ff_secagg_msg){NULL, 0},
                 reply, "key list");
        return;
    case FF_WIRE_SA_SHARES:
        sa_add(f, FF_FED_SA_SHARING, req, reply);
        return;
    case FF_WIRE_SA_FORWARD:
        sa_fetch(f, FF_FED_SA_MASKING, &f->sa_forward[j], reply, "shares");
        return;
    case FF_WIRE_SA_UNMASK_REQUEST:
        sa_fetch(f, FF_FED_SA_UNMASKING, &f->sa_unmask[j], reply,
                 "unmask request");
        return;
    case FF_WIRE_SA_UNMASK:
        sa_add(f, FF_FED_SA_UNMASKING, req, reply);
        return;
    }
    reply->status = FF_WIRE_SA_ABORTED;
    snprintf(reply->reason, sizeof reply->reason, "unknown stage");
}

ff_status ff_federation_secagg(ff_federation *f,
                               const ff_wire_secagg_msg *req,
                               ff_wire_secagg_msg *reply, ff_error *err)
{
    ff_fed_site *s;
    int i;

    memset(reply, 0, sizeof *reply);
    pthread_mutex_lock(&f->lock);
    i = ff_fed_site_find(f, req->site_id);
    if (i < 0 || !f->sites[i].registered) {
        pthread_mutex_unlock(&f->lock);
        if (i < 0)
            return ff_error_set(err, FF_ERR_REJECTED, "unknown site '%s'",
                                req->site_id);
        return ff_error_set(err, FF_ERR_STATE, "site '%s' is not registered",
                            req->site_id);
    }
    s = &f->sites[i];
    s->last_seen = ff_fed_now();

    /* The round and stage decide. */
    if (f->sa == NULL || req->round != f->round || s->sa_index < 0 ||
        f->sa_stage == FF_FED_SA_NONE) {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason,
                 "no secure aggregation of round %d in progress for this "
                 "site", (int)req->round);
    } else if (f->sa_stage == FF_FED_SA_FAILED) {
        reply->status = FF_WIRE_SA_ABORTED;
        snprintf(reply->reason, sizeof reply->reason, "round aborted: %.200s",
                 f->sa_reason);
    } else {
        sa_dispatch(f, s->sa_index, req, reply);
    }
    pthread_mutex_unlock(&f->lock);
    if (reply->status == FF_WIRE_SA_ABORTED)
        FF_WARN("secagg message (stage %d) from site=%s round=%d refused: "
                "%s", (int)req->stage, req->site_id, (int)req->round,
                reply->reason);
    return FF_OK;
}
