/*
 * secagg_server.c - the server side of secure aggregation (see ff_secagg.h
 * and docs/secagg.md). It keeps one running sum of masked words and, per
 * site, its advertised keys, its sealed outgoing shares and the shares other
 * sites reveal of its secrets: O(m + n k) memory, never O(n m).
 */
#include "secagg_internal.h"
#include "ff_shamir.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum server_stage {
    SRV_ADVERTS, SRV_SHARING, SRV_MASKING, SRV_UNMASKING, SRV_DONE, SRV_FAILED
};

enum site_flag {
    F_ADVERT = 1,    /* in U1 */
    F_SHARED = 2,    /* in U2 */
    F_COMPLETE = 4,  /* in U3: whole masked vector arrived */
    F_ANSWERED = 8,  /* answered the unmask request */
};

typedef struct srv_site {
    uint8_t body[SA_ADVERT_BODY]; /* site, c_pk, s_pk, signature */
    uint8_t commit[32];           /* commitment to its self-mask seed */
    uint8_t flags;
    uint8_t need;                 /* secret to rebuild: SA_KIND_* or 0 */
    uint32_t n_out;               /* sealed shares it sent, by dst */
    uint8_t *out;
    uint64_t received;            /* masked words added so far */
    uint32_t n_rev;               /* shares revealed of its secret */
    uint32_t *rev_x;
    uint8_t *rev;
} srv_site;

struct ff_secagg_server {
    ff_secagg_config cfg;
    uint8_t digest[32], session[32];
    enum server_stage stage;
    uint8_t *identity_pks;   /* n x 32 */
    uint32_t *perm, *pos;    /* the neighbour graph */
    srv_site *sites;
    uint32_t *sum;           /* running sum of masked words, m entries */
    uint8_t *keys_msg;       /* the key list, built when adverts close */
    size_t keys_len;
    uint32_t n_u3;
    size_t nkeys;            /* masks to take off the sum */
    uint8_t *keys;
    int8_t *signs;
    size_t bytes, peak;      /* own allocations */
};

/* ---------------------------------------------------------- allocation -- */

/* Allocations carry their size in front, so the peak can be measured. */
static void *srv_alloc(ff_secagg_server *srv, size_t n)
{
    size_t *p = calloc(1, n + sizeof(max_align_t));
    if (p == NULL)
        return NULL;
    p[0] = n;
    srv->bytes += n;
    if (srv->bytes > srv->peak)
        srv->peak = srv->bytes;
    return (uint8_t *)p + sizeof(max_align_t);
}

static void srv_free(ff_secagg_server *srv, void *ptr)
{
    if (ptr == NULL)
        return;
    size_t *p = (size_t *)(void *)((uint8_t *)ptr - sizeof(max_align_t));
    srv->bytes -= p[0];
    sodium_memzero(ptr, p[0]);
    free(p);
}

size_t ff_secagg_server_peak_bytes(const ff_secagg_server *srv)
{
    return srv->peak;
}

bool ff_secagg_server_in_sum(const ff_secagg_server *srv, uint32_t site)
{
    return site < srv->cfg.n_sites && (srv->sites[site].flags & F_COMPLETE) &&
           (srv->stage == SRV_UNMASKING || srv->stage == SRV_DONE);
}

ff_secagg_progress ff_secagg_server_progress(const ff_secagg_server *srv,
                                             uint32_t site)
{
    if (site >= srv->cfg.n_sites)
        return FF_SECAGG_ABSENT;
    uint8_t f = srv->sites[site].flags;
    return f & F_ANSWERED ? FF_SECAGG_ANSWERED
           : f & F_COMPLETE ? FF_SECAGG_MASKED
           : f & F_SHARED ? FF_SECAGG_SHARED
           : f & F_ADVERT ? FF_SECAGG_ADVERTISED : FF_SECAGG_ABSENT;
}

uint32_t ff_secagg_server_input_count(const ff_secagg_server *srv)
{
    return srv->n_u3;
}

static uint32_t count_flag(const ff_secagg_server *srv, uint8_t flag)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < srv->cfg.n_sites; i++)
        c += (srv->sites[i].flags & flag) != 0;
    return c;
}

static ff_privacy_status want_stage(const ff_secagg_server *srv,
                                    enum server_stage st, const char *what,
                                    ff_privacy_error *err)
{
    static const char *const names[] = {
        "advertising", "sharing", "masking", "unmasking", "done", "failed"};
    if (srv->stage == st)
        return FF_PRIVACY_OK;
    return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
        "secagg server: %s during the %s stage", what, names[srv->stage]);
}

/* Moves to the failed stage and returns the abort reason. */
static ff_privacy_status fail_survivors(ff_secagg_server *srv, uint32_t alive,
                                        const char *when,
                                        ff_privacy_error *err)
{
    srv->stage = SRV_FAILED;
    return ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
        "aborted: only %u of %u survivors, threshold %u (%s)", alive,
        srv->cfg.n_sites, srv->cfg.threshold, when);
}

/* ------------------------------------------------------------ lifetime -- */

ff_privacy_status ff_secagg_server_create(const ff_secagg_config *cfg,
                                          const uint8_t *identity_pks,
                                          ff_secagg_server **out,
                                          ff_privacy_error *err)
{
    ff_privacy_status st = ff_secagg_config_check(cfg, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (identity_pks == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                                    "secagg server: no identity key table");
    ff_secagg_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                    "secagg server: no memory");
    size_t n = cfg->n_sites;
    srv->cfg = *cfg;
    srv->identity_pks = srv_alloc(srv, 32 * n);
    srv->perm = srv_alloc(srv, 2 * n * sizeof *srv->perm);
    srv->sites = srv_alloc(srv, n * sizeof *srv->sites);
    srv->sum = srv_alloc(srv, (size_t)cfg->length * sizeof *srv->sum);
    if (srv->identity_pks == NULL || srv->perm == NULL ||
        srv->sites == NULL || srv->sum == NULL) {
        ff_secagg_server_destroy(srv);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for %zu sites and %llu words", n,
            (unsigned long long)cfg->length);
    }
    memcpy(srv->identity_pks, identity_pks, 32 * n);
    srv->pos = srv->perm + n;
    sa_graph_perm(cfg, srv->perm, srv->pos);
    sa_config_digest(cfg, srv->digest);
    srv->stage = SRV_ADVERTS;
    *out = srv;
    return FF_PRIVACY_OK;
}

void ff_secagg_server_destroy(ff_secagg_server *srv)
{
    if (srv == NULL)
        return;
    for (uint32_t i = 0; srv->sites != NULL && i < srv->cfg.n_sites; i++) {
        srv_free(srv, srv->sites[i].out);
        srv_free(srv, srv->sites[i].rev_x);
        srv_free(srv, srv->sites[i].rev);
    }
    srv_free(srv, srv->keys);
    srv_free(srv, srv->signs);
    srv_free(srv, srv->keys_msg);
    srv_free(srv, srv->sum);
    srv_free(srv, srv->sites);
    srv_free(srv, srv->perm);
    srv_free(srv, srv->identity_pks);
    sodium_memzero(srv, sizeof *srv);
    free(srv);
}

/* Neighbours of site into a fresh array (caller frees); NULL on no memory. */
static uint32_t *neighbours(const ff_secagg_server *srv, uint32_t site,
                            uint32_t *count)
{
    uint32_t *nb = malloc(((size_t)srv->cfg.degree + 1) * sizeof *nb);
    if (nb != NULL)
        *count = sa_graph_neighbours_of(&srv->cfg, srv->perm, srv->pos, site,
                                        nb);
    return nb;
}

/* ------------------------------------------------------------- stage 1 -- */

ff_privacy_status ff_secagg_server_add_advert(ff_secagg_server *srv,
                                              const uint8_t *msg, size_t len,
                                              ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_ADVERTS, "advertisement", err);
    if (st == FF_PRIVACY_OK)
        st = sa_check_header(msg, len, SA_ADVERT, SA_HDR + 40 + SA_ADVERT_BODY,
                             "advertisement", err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (len != SA_HDR + 40 + SA_ADVERT_BODY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "advertisement: %zu bytes, expected %d", len,
            SA_HDR + 40 + SA_ADVERT_BODY);

    /* round and configuration first: a replay fails here */
    uint64_t round = sa_get64(msg + SA_HDR);
    const uint8_t *b = msg + SA_HDR + 40;
    uint32_t site = sa_get32(b);
    if (round != srv->cfg.round || memcmp(msg + SA_HDR + 8, srv->digest, 32))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "advertisement of site %u is for round %llu%s; this is round %llu "
            "(replayed or stale)", site, (unsigned long long)round,
            round == srv->cfg.round ? " with another configuration" : "",
            (unsigned long long)srv->cfg.round);
    if (site >= srv->cfg.n_sites)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "advertisement from site %u, but the round has sites 0..%u",
            site, srv->cfg.n_sites - 1);
    if (srv->sites[site].flags & F_ADVERT)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "site %u advertised twice", site);

    /* the identity key of the site must have signed these round keys */
    uint8_t signed_bytes[SA_ADVERT_SIGNED_LEN];
    sa_advert_signed(srv->digest, site, b + 4, b + 36, signed_bytes);
    if (crypto_sign_verify_detached(b + 68, signed_bytes, sizeof signed_bytes,
                                    srv->identity_pks + 32 * (size_t)site))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
            "advertisement of site %u: the signature does not verify under "
            "its identity key", site);
    memcpy(srv->sites[site].body, b, SA_ADVERT_BODY);
    srv->sites[site].flags |= F_ADVERT;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_server_close_adverts(ff_secagg_server *srv,
                                                 ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_ADVERTS, "closing adverts",
                                      err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint32_t u1 = count_flag(srv, F_ADVERT);
    if (u1 < srv->cfg.threshold)
        return fail_survivors(srv, u1, "after key advertisement", err);

    /* the key list: round, digest, then U1's adverts in site order */
    srv->keys_len = SA_HDR + 44 + (size_t)u1 * SA_ADVERT_BODY;
    srv->keys_msg = srv_alloc(srv, srv->keys_len);
    if (srv->keys_msg == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for the key list");
    uint8_t *m = srv->keys_msg;
    sa_put_header(m, SA_KEYS);
    sa_put64(m + SA_HDR, srv->cfg.round);
    memcpy(m + SA_HDR + 8, srv->digest, 32);
    sa_put32(m + SA_HDR + 40, u1);
    uint8_t *e = m + SA_HDR + 44;
    for (uint32_t i = 0; i < srv->cfg.n_sites; i++)
        if (srv->sites[i].flags & F_ADVERT) {
            memcpy(e, srv->sites[i].body, SA_ADVERT_BODY);
            e += SA_ADVERT_BODY;
        }
    sa_session_id(srv->digest, m + SA_HDR + 44, u1, srv->session);
    srv->stage = SRV_SHARING;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_server_keys_message(const ff_secagg_server *srv,
                                                ff_secagg_msg *out,
                                                ff_privacy_error *err)
{
    if (srv->keys_msg == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg server: the key list exists once adverts are closed");
    out->data = malloc(srv->keys_len);
    if (out->data == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for the key list copy");
    memcpy(out->data, srv->keys_msg, srv->keys_len);
    out->len = srv->keys_len;
    return FF_PRIVACY_OK;
}

/* ------------------------------------------------------------- stage 2 -- */

/* The recipients of src's shares must be exactly its neighbours in U1. */
static ff_privacy_status check_recipients(const ff_secagg_server *srv,
                                          uint32_t src, const uint8_t *e,
                                          uint32_t count,
                                          ff_privacy_error *err)
{
    uint32_t nn = 0, expected = 0;
    uint32_t *nb = neighbours(srv, src, &nn);
    if (nb == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                    "secagg server: no memory");
    ff_privacy_status st = FF_PRIVACY_OK;
    for (uint32_t i = 0; i < nn; i++)
        expected += (srv->sites[nb[i]].flags & F_ADVERT) != 0;
    for (uint32_t i = 0; i < count && st == FF_PRIVACY_OK; i++) {
        uint32_t dst = sa_get32(e + (size_t)i * SA_SHARE_ENTRY);
        if (i > 0 && dst <= sa_get32(e + (size_t)(i - 1) * SA_SHARE_ENTRY))
            st = ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                "shares of site %u: recipients repeated or out of order",
                src);
        else if (sa_find_u32(nb, nn, dst) < 0 ||
                 !(srv->sites[dst].flags & F_ADVERT))
            st = ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                "shares of site %u: site %u is not one of its advertised "
                "neighbours", src, dst);
    }
    if (st == FF_PRIVACY_OK && count != expected)
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "shares of site %u: %u recipients, its advertised neighbours "
            "are %u", src, count, expected);
    free(nb);
    return st;
}

ff_privacy_status ff_secagg_server_add_shares(ff_secagg_server *srv,
                                              const uint8_t *msg, size_t len,
                                              ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_SHARING, "shares", err);
    if (st == FF_PRIVACY_OK)
        st = sa_check_header(msg, len, SA_SHARES, SA_HDR + 72, "shares", err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint32_t src = sa_get32(msg + SA_HDR + 32);
    uint32_t count = sa_get32(msg + SA_HDR + 68);
    if (sodium_memcmp(msg + SA_HDR, srv->session, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "shares of site %u belong to another session (replayed from an "
            "earlier round?)", src);
    if (src >= srv->cfg.n_sites || !(srv->sites[src].flags & F_ADVERT))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "shares from site %u, which did not advertise keys", src);
    if (srv->sites[src].flags & F_SHARED)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "site %u sent its shares twice", src);
    if (count > srv->cfg.degree ||
        len != SA_HDR + 72 + (size_t)count * SA_SHARE_ENTRY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "shares of site %u: %zu bytes for %u entries", src, len, count);
    st = check_recipients(srv, src, msg + SA_HDR + 72, count, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* keep the sealed entries (the server cannot open them) */
    srv_site *s = &srv->sites[src];
    s->out = srv_alloc(srv, (size_t)count * SA_SHARE_ENTRY + 1);
    if (s->out == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for the shares of site %u", src);
    memcpy(s->out, msg + SA_HDR + 72, (size_t)count * SA_SHARE_ENTRY);
    memcpy(s->commit, msg + SA_HDR + 36, 32);
    s->n_out = count;
    s->flags |= F_SHARED;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_server_close_sharing(ff_secagg_server *srv,
                                                 ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_SHARING, "closing sharing",
                                      err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint32_t u2 = count_flag(srv, F_SHARED);
    if (u2 < srv->cfg.threshold)
        return fail_survivors(srv, u2, "after key sharing", err);
    srv->stage = SRV_MASKING;
    return FF_PRIVACY_OK;
}

/* The sealed entry src sent to dst, or NULL. */
static const uint8_t *entry_for(const srv_site *s, uint32_t dst)
{
    uint32_t lo = 0, hi = s->n_out;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t v = sa_get32(s->out + (size_t)mid * SA_SHARE_ENTRY);
        if (v == dst)
            return s->out + (size_t)mid * SA_SHARE_ENTRY;
        if (v < dst)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

ff_privacy_status ff_secagg_server_forward_message(const ff_secagg_server *srv,
                                                   uint32_t site,
                                                   ff_secagg_msg *out,
                                                   ff_privacy_error *err)
{
    if (srv->stage != SRV_MASKING)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg server: shares are forwarded once sharing is closed");
    if (site >= srv->cfg.n_sites || !(srv->sites[site].flags & F_SHARED))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg server: site %u did not share keys", site);
    uint32_t nn = 0;
    uint32_t *nb = neighbours(srv, site, &nn);
    uint8_t *m = malloc(SA_HDR + 40 + (size_t)srv->cfg.degree * SA_FWD_ENTRY);
    if (nb == NULL || m == NULL) {
        free(nb);
        free(m);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory to forward shares to site %u", site);
    }

    /* one entry per neighbour in U2: src, dst, nonce, ciphertext */
    uint32_t count = 0;
    for (uint32_t i = 0; i < nn; i++) {
        const srv_site *u = &srv->sites[nb[i]];
        const uint8_t *e = (u->flags & F_SHARED) ? entry_for(u, site) : NULL;
        if (e == NULL)
            continue;
        uint8_t *o = m + SA_HDR + 40 + (size_t)count++ * SA_FWD_ENTRY;
        sa_put32(o, nb[i]);
        memcpy(o + 4, e, SA_SHARE_ENTRY);
    }
    sa_put_header(m, SA_FORWARD);
    memcpy(m + SA_HDR, srv->session, 32);
    sa_put32(m + SA_HDR + 32, site);
    sa_put32(m + SA_HDR + 36, count);
    free(nb);
    out->data = m;
    out->len = SA_HDR + 40 + (size_t)count * SA_FWD_ENTRY;
    return FF_PRIVACY_OK;
}

/* ------------------------------------------------------------- stage 3 -- */

ff_privacy_status ff_secagg_server_add_chunk(ff_secagg_server *srv,
                                             uint32_t site, uint64_t offset,
                                             const uint32_t *words, size_t n,
                                             ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_MASKING, "masked input", err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (site >= srv->cfg.n_sites || !(srv->sites[site].flags & F_SHARED))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "masked input from site %u, which did not share keys", site);
    srv_site *s = &srv->sites[site];
    if (offset != s->received)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "masked input of site %u: chunk at word %llu, expected word %llu "
            "(repeated or out of order)", site, (unsigned long long)offset,
            (unsigned long long)s->received);
    if (n > srv->cfg.length - offset)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "masked input of site %u: %zu words at %llu overrun the "
            "%llu-word vector", site, n, (unsigned long long)offset,
            (unsigned long long)srv->cfg.length);
    uint32_t *acc = srv->sum + offset;
    for (size_t i = 0; i < n; i++)
        acc[i] += words[i];
    s->received += n;
    return FF_PRIVACY_OK;
}

/* Marks which secret of each site must be rebuilt, and makes room for the
 * shares that will come in. */
static ff_privacy_status plan_unmask(ff_secagg_server *srv,
                                     ff_privacy_error *err)
{
    for (uint32_t v = 0; v < srv->cfg.n_sites; v++) {
        srv_site *s = &srv->sites[v];
        if (s->flags & F_COMPLETE) {
            s->need = SA_KIND_SEED;
        } else if (s->flags & F_SHARED) {
            /* a dropped site's pair masks sit in its U3 neighbours' input */
            uint32_t nn = 0;
            uint32_t *nb = neighbours(srv, v, &nn);
            if (nb == NULL)
                return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                            "secagg server: no memory");
            for (uint32_t i = 0; i < nn && !s->need; i++)
                if (srv->sites[nb[i]].flags & F_COMPLETE)
                    s->need = SA_KIND_MASKKEY;
            free(nb);
        }
        if (!s->need)
            continue;
        s->rev_x = srv_alloc(srv, (srv->cfg.degree + 1) * sizeof *s->rev_x);
        s->rev = srv_alloc(srv, (size_t)(srv->cfg.degree + 1) * SA_SHARE);
        if (s->rev_x == NULL || s->rev == NULL)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                "secagg server: no memory for revealed shares");
    }
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_server_close_masking(ff_secagg_server *srv,
                                                 ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_MASKING, "closing masking",
                                      err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* U3: whole vectors only; a half-sent vector cannot be taken out */
    for (uint32_t v = 0; v < srv->cfg.n_sites; v++) {
        srv_site *s = &srv->sites[v];
        if (s->received == srv->cfg.length)
            s->flags |= F_COMPLETE;
        else if (s->received != 0) {
            srv->stage = SRV_FAILED;
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
                "aborted: site %u stopped after %llu of %llu masked words; "
                "its partial input is in the sum and cannot be removed", v,
                (unsigned long long)s->received,
                (unsigned long long)srv->cfg.length);
        }
    }
    srv->n_u3 = count_flag(srv, F_COMPLETE);
    if (srv->n_u3 < srv->cfg.threshold)
        return fail_survivors(srv, srv->n_u3, "after masked input", err);
    st = plan_unmask(srv, err);
    srv->stage = st == FF_PRIVACY_OK ? SRV_UNMASKING : SRV_FAILED;
    return st;
}

/* ------------------------------------------------------------- stage 4 -- */

/* Writes site's expected request entries (owner, kind) into e (room for
 * degree + 1) and returns their count; UINT32_MAX on no memory. */
static uint32_t request_entries(const ff_secagg_server *srv, uint32_t site,
                                uint8_t *e)
{
    uint32_t nn = 0, c = 0;
    uint32_t *nb = neighbours(srv, site, &nn);
    if (nb == NULL)
        return UINT32_MAX;
    /* the site itself holds a share too: merge it in ascending order */
    uint32_t self_at = 0;
    while (self_at < nn && nb[self_at] < site)
        self_at++;
    for (uint32_t i = 0; i <= nn; i++) {
        uint32_t u = i == self_at ? site : nb[i < self_at ? i : i - 1];
        const srv_site *s = &srv->sites[u];
        if (!(s->flags & F_SHARED))
            continue;
        sa_put32(e + (size_t)c * SA_REQ_ENTRY, u);
        e[(size_t)c++ * SA_REQ_ENTRY + 4] =
            (s->flags & F_COMPLETE) ? SA_KIND_SEED : SA_KIND_MASKKEY;
    }
    free(nb);
    return c;
}

ff_privacy_status ff_secagg_server_unmask_request(const ff_secagg_server *srv,
                                                  uint32_t site,
                                                  ff_secagg_msg *out,
                                                  ff_privacy_error *err)
{
    if (srv->stage != SRV_UNMASKING)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg server: unmask requests exist once masking is closed");
    if (site >= srv->cfg.n_sites || !(srv->sites[site].flags & F_COMPLETE))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg server: site %u sent no complete masked input", site);
    uint8_t *m = malloc(SA_HDR + 40 +
                        (size_t)(srv->cfg.degree + 1) * SA_REQ_ENTRY);
    uint32_t c = m ? request_entries(srv, site, m + SA_HDR + 40) : UINT32_MAX;
    if (c == UINT32_MAX) {
        free(m);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for the unmask request of site %u",
            site);
    }
    sa_put_header(m, SA_UNMASK_REQ);
    memcpy(m + SA_HDR, srv->session, 32);
    sa_put32(m + SA_HDR + 32, site);
    sa_put32(m + SA_HDR + 36, c);
    out->data = m;
    out->len = SA_HDR + 40 + (size_t)c * SA_REQ_ENTRY;
    return FF_PRIVACY_OK;
}

/* Checks an answer against the request the site was sent. */
static ff_privacy_status check_answer(const ff_secagg_server *srv,
                                      uint32_t src, const uint8_t *e,
                                      uint32_t count, ff_privacy_error *err)
{
    uint8_t *req = malloc((size_t)(srv->cfg.degree + 1) * SA_REQ_ENTRY);
    uint32_t c = req ? request_entries(srv, src, req) : UINT32_MAX;
    ff_privacy_status st = FF_PRIVACY_OK;
    if (c == UINT32_MAX)
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                  "secagg server: no memory");
    else if (c != count)
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "unmask answer of site %u: %u shares, %u requested", src, count,
            c);
    for (uint32_t i = 0; st == FF_PRIVACY_OK && i < count; i++)
        if (memcmp(e + (size_t)i * SA_RESP_ENTRY,
                   req + (size_t)i * SA_REQ_ENTRY, SA_REQ_ENTRY) != 0)
            st = ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                "unmask answer of site %u: entry %u does not match the "
                "request", src, i);
    free(req);
    return st;
}

ff_privacy_status ff_secagg_server_add_unmask(ff_secagg_server *srv,
                                              const uint8_t *msg, size_t len,
                                              ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_UNMASKING, "unmask answer",
                                      err);
    if (st == FF_PRIVACY_OK)
        st = sa_check_header(msg, len, SA_UNMASK_RESP, SA_HDR + 40,
                             "unmask answer", err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint32_t src = sa_get32(msg + SA_HDR + 32);
    uint32_t count = sa_get32(msg + SA_HDR + 36);
    if (sodium_memcmp(msg + SA_HDR, srv->session, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "unmask answer of site %u belongs to another session "
            "(replayed from an earlier round?)", src);
    if (src >= srv->cfg.n_sites || !(srv->sites[src].flags & F_COMPLETE))
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "unmask answer from site %u, which was not asked", src);
    if (srv->sites[src].flags & F_ANSWERED)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "site %u answered the unmask request twice", src);
    if (count > srv->cfg.degree + 1 ||
        len != SA_HDR + 40 + (size_t)count * SA_RESP_ENTRY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "unmask answer of site %u: %zu bytes for %u entries", src, len,
            count);
    const uint8_t *e = msg + SA_HDR + 40;
    st = check_answer(srv, src, e, count, err);
    if (st != FF_PRIVACY_OK)
        return st;

    /* file each share under the secret's owner, at x = src + 1 */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *r = e + (size_t)i * SA_RESP_ENTRY;
        srv_site *o = &srv->sites[sa_get32(r)];
        if (!o->need || o->n_rev > srv->cfg.degree)
            continue;
        o->rev_x[o->n_rev] = src + 1;
        memcpy(o->rev + (size_t)o->n_rev * SA_SHARE, r + 5, SA_SHARE);
        o->n_rev++;
    }
    srv->sites[src].flags |= F_ANSWERED;
    return FF_PRIVACY_OK;
}

/* Whether a rebuilt secret matches what its owner published. */
static int secret_ok(const ff_secagg_server *srv, uint32_t owner,
                     const srv_site *s, const uint8_t secret[32])
{
    uint8_t check[32];
    if (s->need == SA_KIND_SEED) {
        sa_seed_commitment(srv->session, owner, secret, check);
        return sodium_memcmp(check, s->commit, 32) == 0;
    }
    crypto_scalarmult_base(check, secret);
    return sodium_memcmp(check, s->body + 36, 32) == 0;
}

/*
 * Rebuilds owner's secret from t of its revealed shares and checks it; if
 * the first t fail and more arrived, leaves out one share at a time.
 */
static ff_privacy_status rebuild(const ff_secagg_server *srv, uint32_t owner,
                                 uint8_t secret[32], ff_privacy_error *err)
{
    const srv_site *s = &srv->sites[owner];
    uint32_t t = srv->cfg.threshold;
    const char *what = s->need == SA_KIND_SEED ? "self-mask seed"
                                               : "mask key";
    uint32_t xs[FF_SECAGG_MAX_DEGREE + 1];
    uint8_t *sh = malloc((size_t)t * SA_SHARE);
    if (sh == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                    "secagg server: no memory");
    ff_privacy_status st = FF_PRIVACY_ERR_AUTH;
    for (long skip = -1; skip < (long)s->n_rev && st != FF_PRIVACY_OK;
         skip++) {
        if (skip >= 0 && s->n_rev <= t)
            break;
        uint32_t c = 0;
        for (uint32_t i = 0; i < s->n_rev && c < t; i++) {
            if ((long)i == skip)
                continue;
            xs[c] = s->rev_x[i];
            memcpy(sh + (size_t)c++ * SA_SHARE, s->rev + (size_t)i * SA_SHARE,
                   SA_SHARE);
        }
        if (c == t && ff_shamir_combine(xs, sh, t, secret, 32, NULL) ==
                          FF_PRIVACY_OK && secret_ok(srv, owner, s, secret))
            st = FF_PRIVACY_OK;
    }
    sodium_memzero(sh, (size_t)t * SA_SHARE);
    free(sh);
    if (st != FF_PRIVACY_OK) {
        sodium_memzero(secret, 32);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
            "the %s of site %u rebuilt from %u revealed shares does not "
            "match its %s: shares are corrupt", what, owner, s->n_rev,
            s->need == SA_KIND_SEED ? "commitment" : "advertised public key");
    }
    return FF_PRIVACY_OK;
}

/* Adds the masks to take off for one rebuilt secret. */
static ff_privacy_status add_keys(ff_secagg_server *srv, uint32_t owner,
                                  const uint8_t secret[32],
                                  ff_privacy_error *err)
{
    const srv_site *s = &srv->sites[owner];
    if (s->need == SA_KIND_SEED) {
        sa_self_mask_key(srv->session, owner, secret,
                         srv->keys + 32 * srv->nkeys);
        srv->signs[srv->nkeys++] = -1;
        return FF_PRIVACY_OK;
    }
    uint32_t nn = 0;
    uint32_t *nb = neighbours(srv, owner, &nn);
    if (nb == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
                                    "secagg server: no memory");
    for (uint32_t i = 0; i < nn; i++) {
        uint32_t u = nb[i];
        if (!(srv->sites[u].flags & F_COMPLETE))
            continue;
        /* u added +mask if u > owner, -mask otherwise: take it back out */
        if (sa_pair_mask_key(srv->session, secret, s->body + 36, owner,
                             srv->sites[u].body + 36, u,
                             srv->keys + 32 * srv->nkeys) != 0) {
            free(nb);
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
                "site %u advertised an invalid mask key", u);
        }
        srv->signs[srv->nkeys++] = u > owner ? -1 : 1;
    }
    free(nb);
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_server_close_unmasking(ff_secagg_server *srv,
                                                   ff_privacy_error *err)
{
    ff_privacy_status st = want_stage(srv, SRV_UNMASKING, "closing unmasking",
                                      err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint32_t answered = count_flag(srv, F_ANSWERED);
    if (answered < srv->cfg.threshold)
        return fail_survivors(srv, answered, "during unmasking", err);

    /* every secret needs t shares before anything is rebuilt */
    size_t nkeys = 0;
    for (uint32_t v = 0; v < srv->cfg.n_sites; v++) {
        const srv_site *s = &srv->sites[v];
        if (s->need && s->n_rev < srv->cfg.threshold) {
            srv->stage = SRV_FAILED;
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
                "aborted: the %s of site %u has only %u of its shares, "
                "threshold %u", s->need == SA_KIND_SEED ? "self-mask seed"
                : "mask key", v, s->n_rev, srv->cfg.threshold);
        }
        nkeys += s->need == SA_KIND_SEED ? 1
                 : s->need == SA_KIND_MASKKEY ? srv->cfg.degree : 0;
    }
    srv->keys = srv_alloc(srv, 32 * nkeys + 1);
    srv->signs = srv_alloc(srv, nkeys + 1);
    if (srv->keys == NULL || srv->signs == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg server: no memory for %zu mask keys", nkeys);

    /* rebuild, check, and turn each secret into the masks it implies */
    uint8_t secret[32];
    for (uint32_t v = 0; v < srv->cfg.n_sites && st == FF_PRIVACY_OK; v++) {
        if (!srv->sites[v].need)
            continue;
        st = rebuild(srv, v, secret, err);
        if (st == FF_PRIVACY_OK)
            st = add_keys(srv, v, secret, err);
        sodium_memzero(secret, sizeof secret);
    }
    srv->stage = st == FF_PRIVACY_OK ? SRV_DONE : SRV_FAILED;
    return st;
}

ff_privacy_status ff_secagg_server_result_chunk(const ff_secagg_server *srv,
                                                uint64_t offset,
                                                uint32_t *out, size_t n,
                                                ff_privacy_error *err)
{
    if (srv->stage != SRV_DONE)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg server: the sum is ready once unmasking is closed");
    if (offset > srv->cfg.length || n > srv->cfg.length - offset)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg server: words %llu..+%zu outside the %llu-word sum",
            (unsigned long long)offset, n,
            (unsigned long long)srv->cfg.length);
    memcpy(out, srv->sum + offset, n * sizeof *out);
    sa_masks_apply(out, offset, n, srv->keys, srv->signs, srv->nkeys);
    if (srv->cfg.bits < 32) {
        uint32_t mask = (1u << srv->cfg.bits) - 1;
        for (size_t i = 0; i < n; i++)
            out[i] &= mask;
    }
    return FF_PRIVACY_OK;
}
