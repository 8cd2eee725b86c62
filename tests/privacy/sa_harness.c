/* sa_harness.c - one secure-aggregation round in one process (tests). */
#include "sa_harness.h"

/* Tests run in release builds too, where assert() compiles out. */
#define NEED(cond)                                                         \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #cond); \
            abort();                                                       \
        }                                                                  \
    } while (0)

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t sa_rand(uint32_t *state)
{
    /* xorshift32: test data only, never keys */
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

ff_secagg_config sa_config(uint32_t n, uint32_t k, uint32_t t, uint32_t bits,
                           uint64_t m, uint32_t max_value, uint64_t round)
{
    ff_secagg_config c = {
        .round = round, .n_sites = n, .degree = k, .threshold = t,
        .bits = bits, .length = m, .max_value = max_value};
    randombytes_buf(c.graph_seed, sizeof c.graph_seed);
    return c;
}

void sa_world_init(sa_world *w, const ff_secagg_config *cfg, uint32_t seed)
{
    uint32_t n = cfg->n_sites;
    ff_privacy_error err = {0};
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    w->id_pk = calloc(n, 32);
    w->id_sk = calloc(n, 64);
    w->sites = calloc(n, sizeof *w->sites);
    w->inputs = malloc((size_t)n * cfg->length * sizeof *w->inputs);
    w->drop = calloc(n, 1);
    NEED(w->id_pk && w->id_sk && w->sites && w->inputs && w->drop);
    for (uint32_t i = 0; i < n; i++)
        crypto_sign_keypair(w->id_pk + 32 * (size_t)i,
                            w->id_sk + 64 * (size_t)i);
    for (uint32_t i = 0; i < n; i++) {
        ff_privacy_status st = ff_secagg_site_create(
            cfg, i, w->id_sk + 64 * (size_t)i, w->id_pk, &w->sites[i], &err);
        if (st != FF_PRIVACY_OK) {
            fprintf(stderr, "site_create: %s\n", ff_privacy_error_text(&err));
            abort();
        }
    }
    if (ff_secagg_server_create(cfg, w->id_pk, &w->srv, &err)) {
        fprintf(stderr, "server_create: %s\n", ff_privacy_error_text(&err));
        abort();
    }
    /* inputs spread over [0, max_value], both ends included */
    uint32_t s = seed ? seed : 1;
    for (size_t i = 0; i < (size_t)n * cfg->length; i++) {
        uint32_t r = sa_rand(&s) % 8;
        uint64_t span = (uint64_t)cfg->max_value + 1;
        w->inputs[i] = r == 0 ? cfg->max_value
                       : r == 1 ? 0 : (uint32_t)(sa_rand(&s) % span);
    }
}

void sa_world_cleanup(sa_world *w)
{
    for (uint32_t i = 0; w->sites && i < w->cfg.n_sites; i++)
        ff_secagg_site_destroy(w->sites[i]);
    ff_secagg_server_destroy(w->srv);
    free(w->sites);
    free(w->id_pk);
    free(w->id_sk);
    free(w->inputs);
    free(w->drop);
    memset(w, 0, sizeof *w);
}

static int alive_at(const sa_world *w, uint32_t i, enum sa_drop stage)
{
    return w->drop[i] == DROP_NONE || w->drop[i] > stage;
}

ff_privacy_status sa_stage_adverts(sa_world *w, ff_privacy_error *err)
{
    ff_privacy_status st = FF_PRIVACY_OK;
    for (uint32_t i = 0; i < w->cfg.n_sites && st == FF_PRIVACY_OK; i++) {
        if (!alive_at(w, i, DROP_BEFORE_ADVERT))
            continue;
        ff_secagg_msg m = {0};
        st = ff_secagg_site_advertise(w->sites[i], &m, err);
        if (st == FF_PRIVACY_OK)
            st = ff_secagg_server_add_advert(w->srv, m.data, m.len, err);
        ff_secagg_msg_cleanup(&m);
    }
    if (st == FF_PRIVACY_OK)
        st = ff_secagg_server_close_adverts(w->srv, err);
    return st;
}

ff_privacy_status sa_stage_shares(sa_world *w, ff_privacy_error *err)
{
    ff_secagg_msg keys = {0};
    ff_privacy_status st = ff_secagg_server_keys_message(w->srv, &keys, err);
    for (uint32_t i = 0; i < w->cfg.n_sites && st == FF_PRIVACY_OK; i++) {
        if (!alive_at(w, i, DROP_BEFORE_SHARES))
            continue;
        ff_secagg_msg m = {0};
        st = ff_secagg_site_share_keys(w->sites[i], keys.data, keys.len, &m,
                                       err);
        if (st == FF_PRIVACY_OK)
            st = ff_secagg_server_add_shares(w->srv, m.data, m.len, err);
        ff_secagg_msg_cleanup(&m);
    }
    ff_secagg_msg_cleanup(&keys);
    if (st == FF_PRIVACY_OK)
        st = ff_secagg_server_close_sharing(w->srv, err);
    return st;
}

ff_privacy_status sa_stage_masked(sa_world *w, ff_privacy_error *err)
{
    uint64_t m = w->cfg.length;
    size_t chunk = w->chunk ? w->chunk : (size_t)m;
    uint32_t *buf = malloc(chunk * sizeof *buf);
    NEED(buf != NULL);
    ff_privacy_status st = FF_PRIVACY_OK;
    for (uint32_t i = 0; i < w->cfg.n_sites && st == FF_PRIVACY_OK; i++) {
        if (!alive_at(w, i, DROP_BEFORE_SHARES))
            continue;
        ff_secagg_msg fwd = {0};
        st = ff_secagg_server_forward_message(w->srv, i, &fwd, err);
        if (st == FF_PRIVACY_OK)
            st = ff_secagg_site_receive_shares(w->sites[i], fwd.data, fwd.len,
                                               err);
        ff_secagg_msg_cleanup(&fwd);
        if (!alive_at(w, i, DROP_BEFORE_MASKED))
            continue;
        /* mask and send chunk by chunk, one buffer reused */
        for (uint64_t off = 0; off < m && st == FF_PRIVACY_OK; off += chunk) {
            size_t n = m - off < chunk ? (size_t)(m - off) : chunk;
            st = ff_secagg_site_mask_chunk(w->sites[i], off,
                                           w->inputs + i * m + off, buf, n,
                                           err);
            if (st == FF_PRIVACY_OK)
                st = ff_secagg_server_add_chunk(w->srv, i, off, buf, n, err);
        }
    }
    free(buf);
    if (st == FF_PRIVACY_OK)
        st = ff_secagg_server_close_masking(w->srv, err);
    return st;
}

ff_privacy_status sa_stage_unmask(sa_world *w, ff_privacy_error *err)
{
    ff_privacy_status st = FF_PRIVACY_OK;
    for (uint32_t i = 0; i < w->cfg.n_sites && st == FF_PRIVACY_OK; i++) {
        if (!ff_secagg_server_in_sum(w->srv, i) ||
            !alive_at(w, i, DROP_BEFORE_UNMASK))
            continue;
        ff_secagg_msg req = {0}, ans = {0};
        st = ff_secagg_server_unmask_request(w->srv, i, &req, err);
        if (st == FF_PRIVACY_OK)
            st = ff_secagg_site_unmask(w->sites[i], req.data, req.len, &ans,
                                       err);
        if (st == FF_PRIVACY_OK)
            st = ff_secagg_server_add_unmask(w->srv, ans.data, ans.len, err);
        ff_secagg_msg_cleanup(&req);
        ff_secagg_msg_cleanup(&ans);
    }
    if (st == FF_PRIVACY_OK)
        st = ff_secagg_server_close_unmasking(w->srv, err);
    return st;
}

ff_privacy_status sa_run(sa_world *w, uint64_t *mismatches,
                         ff_privacy_error *err)
{
    ff_privacy_status st = sa_stage_adverts(w, err);
    if (st == FF_PRIVACY_OK)
        st = sa_stage_shares(w, err);
    if (st == FF_PRIVACY_OK)
        st = sa_stage_masked(w, err);
    if (st == FF_PRIVACY_OK)
        st = sa_stage_unmask(w, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* the unmasked sum against the plain sum of U3's inputs, mod 2^b */
    uint64_t m = w->cfg.length, bad = 0;
    uint32_t mask = w->cfg.bits == 32 ? 0xffffffffu
                                      : (1u << w->cfg.bits) - 1;
    size_t chunk = w->chunk ? w->chunk : (size_t)m;
    uint32_t *got = malloc(chunk * sizeof *got);
    NEED(got != NULL);
    for (uint64_t off = 0; off < m; off += chunk) {
        size_t n = m - off < chunk ? (size_t)(m - off) : chunk;
        st = ff_secagg_server_result_chunk(w->srv, off, got, n, err);
        NEED(st == FF_PRIVACY_OK);
        for (size_t j = 0; j < n; j++) {
            uint32_t want = 0;
            for (uint32_t i = 0; i < w->cfg.n_sites; i++)
                if (ff_secagg_server_in_sum(w->srv, i))
                    want += w->inputs[i * m + off + j];
            bad += (want & mask) != got[j];
        }
    }
    free(got);
    *mismatches = bad;
    return FF_PRIVACY_OK;
}
