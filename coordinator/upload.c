/*
 * upload.c - the UploadUpdate handlers: check the header, collect the
 * chunks of one update into one buffer, then validate the whole update and
 * add it to the round's running sum. Every refusal is one WARN line naming
 * site, round and reason, and one audit row "update.rejected".
 *
 * At most cfg.secagg_max_uploads buffers exist at once (masked or plain):
 * a further upload is answered "busy" before anything is allocated, so
 * memory is O(cap x model size) plus the running sum, whatever the number
 * of sites.
 */
#include "fed_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../common/ff_log.h"

/* How long a site told "busy" should wait before sending again. */
#define FED_BUSY_RETRY_MS 200u

/* Logs and audits one refused update. Call without the lock. */
static void refuse_log(ff_federation *f, const char *site, int round,
                       const char *reason)
{
    FF_WARN("rejected update from site=%s round=%d: %s",
            site != NULL ? site : "(invalid)", round, reason);
    ff_fed_audit(f, "update.rejected",
                 site != NULL && ff_fed_site_find(f, site) >= 0 ? site
                                                                : NULL,
                 json_pack("{s:s?, s:i, s:s}", "claimed_site", site, "round",
                           round, "reason", reason));
}

void ff_federation_upload_refuse(ff_federation *f, const char *site,
                                 int round, const char *reason)
{
    refuse_log(f, site, round, reason);
}

/* Frees an upload and clears its site's in-progress mark. */
static void upload_free(ff_federation *f, ff_upload *up)
{
    pthread_mutex_lock(&f->lock);
    f->sites[up->site].uploading = 0;
    f->uploads_in_flight--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    free(up->bytes);
    free(up);
}

const char *ff_federation_upload_site(const ff_upload *up)
{
    return up->header.site_id;
}

void ff_federation_upload_abandon(ff_federation *f, ff_upload *up,
                                  const char *reason)
{
    if (up == NULL)
        return;
    if (reason != NULL)
        refuse_log(f, up->header.site_id, up->header.round, reason);
    else
        FF_WARN("upload from site=%s round=%d broke off after %zu of %zu "
                "bytes", up->header.site_id, (int)up->header.round,
                up->received, up->expected);
    upload_free(f, up);
}

/* Checks who sends and when. Lock held; writes the reason into err. */
static ff_status header_check_site(ff_federation *f,
                                   const ff_wire_update_header *h, int *idx,
                                   ff_error *err)
{
    int i = ff_fed_site_find(f, h->site_id);
    ff_fed_site *s;

    if (i < 0)
        return ff_error_set(err, FF_ERR_REJECTED, "unknown site");
    s = &f->sites[i];
    if (!s->registered)
        return ff_error_set(err, FF_ERR_REJECTED, "site is not registered");
    if (h->round == f->round && (s->contributed || s->refused))
        return ff_error_set(err, FF_ERR_REJECTED,
                            "second update from the site in round %d%s",
                            f->round, s->refused ? " (it refused the round)"
                                                 : "");
    if (h->round < f->round || (h->round == f->round &&
                                f->state != FF_FED_TRAINING))
        return ff_error_set(err, FF_ERR_REJECTED,
                            "wrong round: update for round %d, which is "
                            "over (replay; current round %d)",
                            (int)h->round, f->round);
    if (h->round > f->round || f->state != FF_FED_TRAINING)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "wrong round: round %d is not open",
                            (int)h->round);
    if (!s->selected)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "site not selected for round %d", f->round);
    if (s->uploading)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "another upload from the site is in progress");
    *idx = i;
    return FF_OK;
}

/* Whether the update was trained with DP-SGD: Poisson batches may draw
 * more records in an epoch than the site holds, so its counts are capped
 * at the registered count (upload_weights_cap) rather than refused. */
static int dp_sgd(const ff_wire_update_header *h)
{
    return strcmp(h->dp_mechanism, "dp-sgd") == 0;
}

/* Caps the weights of a DP-SGD update at the site's registered records.
 * Lock not needed: example_count is set at registration only. */
static void upload_weights_cap(const ff_federation *f, ff_upload *u)
{
    uint64_t most = f->sites[u->site].example_count;
    uint32_t g;

    if (!dp_sgd(&u->header))
        return;
    for (g = 0; g < u->header.n_groups; g++)
        if (u->header.group_examples[g] > most)
            u->header.group_examples[g] = most;
}

/* Checks what the header announces. Lock held. */
static ff_status header_check_shape(ff_federation *f,
                                    const ff_wire_update_header *h, int i,
                                    ff_error *err)
{
    uint32_t g;

    if (h->masked && !f->cfg.secagg)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "masked update, but this coordinator sums "
                            "rounds in the clear (--secagg off)");
    if (!h->masked && f->cfg.secagg)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "plain update, but rounds are securely summed "
                            "(--secagg on)");
    if (h->param_count != f->n_params)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "wrong parameter count: %llu, the model has %zu",
                            (unsigned long long)h->param_count,
                            f->n_params);
    if (h->n_groups != FF_GROUP_COUNT)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "wrong group count: %u, the model has %d",
                            (unsigned)h->n_groups, FF_GROUP_COUNT);
    for (g = 0; g < h->n_groups && !dp_sgd(h); g++)
        if (h->group_examples[g] > f->sites[i].example_count)
            return ff_error_set(err, FF_ERR_REJECTED,
                                "group %s claims %llu examples, the site "
                                "registered %llu records",
                                ff_model_group_name((int)g),
                                (unsigned long long)h->group_examples[g],
                                (unsigned long long)
                                    f->sites[i].example_count);
    return FF_OK;
}

/* Admits a refusal (no data follows): it needs no buffer, so it takes
 * no capped slot, only the site's in-progress mark. Lock held. */
static ff_status refusal_admit(ff_federation *f, int i, ff_error *err)
{
    ff_status st = ff_fed_secagg_refusal_check(f, i, err);

    if (st != FF_OK)
        return st;
    f->uploads_in_flight++;
    f->sites[i].uploading = 1;
    f->sites[i].last_seen = ff_fed_now();
    return FF_OK;
}

/* Takes one of the cfg.secagg_max_uploads buffer slots for site i, or
 * answers busy: FF_ERR_STATE, and log says whether this is the site's
 * first busy answer of the round. Lock held. */
static ff_status slot_take(ff_federation *f, int i, int *log, ff_error *err)
{
    ff_fed_site *s = &f->sites[i];

    *log = 0;
    if (f->uploads_in_flight >= f->cfg.secagg_max_uploads) {
        *log = s->busy_noted != f->round + 1;
        s->busy_noted = f->round + 1;
        s->last_seen = ff_fed_now();
        return ff_error_set(err, FF_ERR_STATE,
                            "busy: %d uploads in flight (the cap), send "
                            "again in %u ms", f->uploads_in_flight,
                            FED_BUSY_RETRY_MS);
    }
    f->uploads_in_flight++;
    s->uploading = 1;
    s->last_seen = ff_fed_now();
    return FF_OK;
}

ff_status ff_federation_upload_begin(ff_federation *f,
                                     const ff_wire_update_header *h,
                                     ff_upload **up, uint32_t *retry_after_ms,
                                     ff_error *err)
{
    size_t expected = f->n_params * sizeof(float);
    ff_upload *u;
    ff_status st;
    int i = -1, log_busy = 0;

    /* Who, when and what, then a free slot: all decided under the lock. */
    *up = NULL;
    *retry_after_ms = 0;
    pthread_mutex_lock(&f->lock);
    st = header_check_site(f, h, &i, err);
    if (st == FF_OK && h->refused) {
        expected = 0;      /* a refusal brings no update */
        st = refusal_admit(f, i, err);
    } else if (st == FF_OK) {
        st = header_check_shape(f, h, i, err);
        if (st == FF_OK && h->masked)
            st = ff_fed_secagg_upload_check(f, i, &expected, err);
        if (st == FF_OK)
            st = slot_take(f, i, &log_busy, err);
    }
    pthread_mutex_unlock(&f->lock);

    /* Busy is no refusal: no audit row, one line per site and round. */
    if (st == FF_ERR_STATE) {
        if (log_busy)
            FF_INFO("busy answer to site=%s round=%d: %s", h->site_id,
                    (int)h->round, ff_error_text(err));
        *retry_after_ms = FED_BUSY_RETRY_MS;
        return FF_ERR_STATE;
    }
    if (st != FF_OK) {
        refuse_log(f, h->site_id, h->round, ff_error_text(err));
        return FF_ERR_REJECTED;
    }

    /* The buffer size is the model's, never the sender's claim alone. */
    u = calloc(1, sizeof *u);
    if (u != NULL) {
        u->site = i;
        u->header = *h;
        u->expected = expected;
        u->bytes = malloc(u->expected > 0 ? u->expected : 1);
        upload_weights_cap(f, u);
    }
    if (u == NULL || u->bytes == NULL) {
        pthread_mutex_lock(&f->lock);
        f->sites[i].uploading = 0;
        f->uploads_in_flight--;
        pthread_mutex_unlock(&f->lock);
        free(u);
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for an "
                            "update of %zu parameters", f->n_params);
    }
    *up = u;
    return FF_OK;
}

ff_status ff_federation_upload_chunk(ff_federation *f, ff_upload *up,
                                     const ff_wire_update_chunk *c,
                                     ff_error *err)
{
    if (c->offset != up->received)
        ff_error_set(err, FF_ERR_REJECTED,
                     "byte length mismatch: chunk at offset %llu, expected "
                     "%zu", (unsigned long long)c->offset, up->received);
    else if (c->len > up->expected - up->received)
        ff_error_set(err, FF_ERR_REJECTED,
                     "byte length mismatch: more than the %zu bytes of %llu "
                     "parameters", up->expected,
                     (unsigned long long)up->header.param_count);
    else {
        memcpy(up->bytes + up->received, c->data, c->len);
        up->received += c->len;
        return FF_OK;
    }
    ff_federation_upload_abandon(f, up, ff_error_text(err));
    return FF_ERR_REJECTED;
}

/* Reads float32 little-endian values in place (a no-op on little-endian
 * machines, a byte swap elsewhere). */
static void floats_from_le(uint8_t *bytes, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t *p = bytes + 4 * i, t;
        t = p[0], p[0] = p[3], p[3] = t;
        t = p[1], p[1] = p[2], p[2] = t;
    }
#else
    (void)bytes;
    (void)n;
#endif
}

/* Adds a complete update to the running sum. Lock held. */
static ff_status upload_add(ff_federation *f, ff_upload *up, ff_error *err)
{
    const ff_wire_update_header *h = &up->header;
    ff_fed_site *s = &f->sites[up->site];
    ff_status st;

    if (f->state != FF_FED_TRAINING || f->round != h->round)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "round %d closed before the update completed",
                            (int)h->round);
    if (s->revoked)
        return ff_error_set(err, FF_ERR_REJECTED,
                            "the site's certificate was revoked during "
                            "round %d: it was dropped from it",
                            (int)h->round);

    /* A refusal: the site leaves this round, neither dropped nor late. */
    if (h->refused) {
        s->refused = 1;
        s->report = *h;
        s->reported = 1;
        pthread_cond_broadcast(&f->cond);
        return FF_OK;
    }
    if (h->masked) {
        st = ff_fed_secagg_upload_add(f, up->site, up->bytes, up->received,
                                      err);
        if (st != FF_OK)
            return st;
        s->contributed = 1;
        s->examples = 0;
        s->report = *h;
        s->reported = 1;
        pthread_cond_broadcast(&f->cond);
        return FF_OK;
    }

    /* Site-level DP sums clipped deltas unweighted; FedAvg weights them. */
    if (f->dp.active) {
        st = ff_fed_dp_plain_add(f, (const float *)(const void *)up->bytes,
                                 h->unclipped, err);
        if (st != FF_OK)
            return st;
    } else {
        st = ff_aggregate_add(f->agg,
                              (const float *)(const void *)up->bytes,
                              f->n_params, h->group_examples,
                              (int)h->n_groups, err);
        if (st != FF_OK)
            return ff_error_wrap(err, FF_ERR_REJECTED, "invalid values");
    }
    s->contributed = 1;
    s->report = *h;
    s->reported = 1;
    s->examples = h->group_examples[FF_GROUP_HEAD];
    f->loss_sum += (double)s->examples * h->train_loss;
    pthread_cond_broadcast(&f->cond);
    return FF_OK;
}

ff_status ff_federation_upload_finish(ff_federation *f, ff_upload *up,
                                      ff_error *err)
{
    const ff_wire_update_header *h = &up->header;
    ff_status st;

    if (up->received != up->expected) {
        ff_error_set(err, FF_ERR_REJECTED,
                     "byte length mismatch: got %zu of %zu bytes",
                     up->received, up->expected);
        ff_federation_upload_abandon(f, up, ff_error_text(err));
        return FF_ERR_REJECTED;
    }
    if (!h->masked && !h->refused)
        floats_from_le(up->bytes, f->n_params);

    pthread_mutex_lock(&f->lock);
    st = upload_add(f, up, err);
    pthread_mutex_unlock(&f->lock);
    if (st != FF_OK) {
        ff_federation_upload_abandon(f, up, ff_error_text(err));
        return FF_ERR_REJECTED;
    }
    if (h->refused) {
        FF_WARN("site=%s refused round %d: %s (record-level epsilon would "
                "be %g, its budget %g, delta %g); the round goes on without "
                "it", h->site_id, (int)h->round, h->refusal, h->dp_epsilon,
                h->dp_epsilon_budget, h->dp_delta);
        upload_free(f, up);
        return FF_OK;
    }
    if (h->masked) {
        FF_INFO("accepted masked vector from site=%s round=%d (%zu bytes)",
                h->site_id, (int)h->round, up->received);
        ff_fed_audit(f, "update.accepted", h->site_id,
                     json_pack("{s:i, s:b}", "round", (int)h->round,
                               "masked", 1));
        upload_free(f, up);
        return FF_OK;
    }
    FF_INFO("accepted update from site=%s round=%d: %llu examples, train "
            "loss %.4f accuracy %.4f", h->site_id, (int)h->round,
            (unsigned long long)h->group_examples[FF_GROUP_HEAD],
            h->train_loss, h->train_accuracy);
    ff_fed_audit(f, "update.accepted", h->site_id,
                 json_pack("{s:i, s:I, s:f, s:f}", "round", (int)h->round,
                           "examples",
                           (json_int_t)h->group_examples[FF_GROUP_HEAD],
                           "train_loss", h->train_loss, "train_accuracy",
                           h->train_accuracy));
    upload_free(f, up);
    return FF_OK;
}
