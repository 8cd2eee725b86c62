/*
 * secagg_site.c - the site side of secure aggregation (see ff_secagg.h and
 * docs/secagg.md). A site keeps, per neighbour, the keys it advertised and
 * the two shares it holds of that neighbour's secrets.
 */
#include "secagg_internal.h"
#include "ff_shamir.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum site_stage {
    SITE_NEW,        /* keys drawn, nothing sent */
    SITE_ADVERTISED, /* advert sent, waiting for the key list */
    SITE_SHARED,     /* shares sent, waiting for the neighbours' shares */
    SITE_MASKING,    /* masks derived: input can be masked, unmask answered */
    SITE_FAILED      /* a check failed half-way: the round is over for us */
};

typedef struct site_peer {
    uint8_t id_pk[32];            /* long-term Ed25519 key */
    uint8_t c_pk[32], s_pk[32];   /* round keys it advertised */
    uint8_t seed_share[SA_SHARE]; /* our share of its self-mask seed */
    uint8_t key_share[SA_SHARE];  /* our share of its mask secret key */
    uint8_t advertised, shared, revealed;
} site_peer;

struct ff_secagg_site {
    ff_secagg_config cfg;
    uint8_t digest[32], session[32];
    uint32_t me;
    enum site_stage stage;
    uint8_t id_sk[FF_SECAGG_SIGN_SK_BYTES];
    uint8_t c_sk[32], c_pk[32], s_sk[32], s_pk[32], seed[32];
    uint8_t own_seed_share[SA_SHARE], own_key_share[SA_SHARE];
    uint32_t npeers;
    uint32_t *peer_ids; /* ascending */
    site_peer *peers;
    uint32_t nkeys;     /* masks this site adds: self mask + pairs */
    uint8_t *keys;
    int8_t *signs;
};

static site_peer *peer_get(ff_secagg_site *s, uint32_t id)
{
    long i = sa_find_u32(s->peer_ids, s->npeers, id);
    return i < 0 ? NULL : &s->peers[i];
}

/* ------------------------------------------------------------ lifetime -- */

ff_privacy_status ff_secagg_site_create(const ff_secagg_config *cfg,
                                        uint32_t site,
                                        const uint8_t *identity_sk,
                                        const uint8_t *identity_pks,
                                        ff_secagg_site **out,
                                        ff_privacy_error *err)
{
    ff_privacy_status st = ff_secagg_config_check(cfg, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (site >= cfg->n_sites || identity_sk == NULL || identity_pks == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg site: site %u of %u, or missing identity keys", site,
            cfg->n_sites);
    uint8_t derived_pk[32];
    crypto_sign_ed25519_sk_to_pk(derived_pk, identity_sk);
    if (memcmp(derived_pk, identity_pks + 32 * (size_t)site, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg site %u: identity key does not match the key table",
            site);

    /* object, neighbour list and per-neighbour records */
    ff_secagg_site *s = calloc(1, sizeof *s);
    uint32_t *perm = malloc(2 * (size_t)cfg->n_sites * sizeof *perm);
    if (s != NULL) {
        s->peer_ids = malloc((size_t)cfg->degree * sizeof *s->peer_ids);
        s->peers = calloc(cfg->degree, sizeof *s->peers);
        s->keys = malloc((size_t)(cfg->degree + 1) * 32);
        s->signs = malloc((size_t)cfg->degree + 1);
    }
    if (s == NULL || perm == NULL || s->peer_ids == NULL ||
        s->peers == NULL || s->keys == NULL || s->signs == NULL) {
        free(perm);
        ff_secagg_site_destroy(s);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg site %u: no memory for %u neighbours", site, cfg->degree);
    }
    s->cfg = *cfg;
    s->me = site;
    sa_config_digest(cfg, s->digest);
    memcpy(s->id_sk, identity_sk, sizeof s->id_sk);
    sa_graph_perm(cfg, perm, perm + cfg->n_sites);
    s->npeers = sa_graph_neighbours_of(cfg, perm, perm + cfg->n_sites, site,
                                       s->peer_ids);
    free(perm);
    for (uint32_t i = 0; i < s->npeers; i++)
        memcpy(s->peers[i].id_pk, identity_pks + 32 * (size_t)s->peer_ids[i],
               32);

    /* the round's key pairs and self-mask seed */
    randombytes_buf(s->c_sk, 32);
    randombytes_buf(s->s_sk, 32);
    randombytes_buf(s->seed, 32);
    crypto_scalarmult_base(s->c_pk, s->c_sk);
    crypto_scalarmult_base(s->s_pk, s->s_sk);
    s->stage = SITE_NEW;
    *out = s;
    return FF_PRIVACY_OK;
}

void ff_secagg_site_destroy(ff_secagg_site *s)
{
    if (s == NULL)
        return;
    if (s->peers != NULL)
        sodium_memzero(s->peers, (size_t)s->cfg.degree * sizeof *s->peers);
    if (s->keys != NULL)
        sodium_memzero(s->keys, (size_t)(s->cfg.degree + 1) * 32);
    free(s->peers);
    free(s->keys);
    free(s->signs);
    free(s->peer_ids);
    sodium_memzero(s, sizeof *s);
    free(s);
}

/* ------------------------------------------------------------- stage 1 -- */

ff_privacy_status ff_secagg_site_advertise(ff_secagg_site *s,
                                           ff_secagg_msg *out,
                                           ff_privacy_error *err)
{
    if (s->stage != SITE_NEW)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg site %u: keys already advertised", s->me);
    size_t len = SA_HDR + 8 + 32 + SA_ADVERT_BODY;
    uint8_t *m = malloc(len);
    if (m == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg site %u: no memory for the advertisement", s->me);

    /* header, round, config digest, then site, keys and signature */
    uint8_t signed_bytes[SA_ADVERT_SIGNED_LEN];
    uint8_t *b = m + SA_HDR + 40;
    sa_put_header(m, SA_ADVERT);
    sa_put64(m + SA_HDR, s->cfg.round);
    memcpy(m + SA_HDR + 8, s->digest, 32);
    sa_put32(b, s->me);
    memcpy(b + 4, s->c_pk, 32);
    memcpy(b + 36, s->s_pk, 32);
    sa_advert_signed(s->digest, s->me, s->c_pk, s->s_pk, signed_bytes);
    crypto_sign_detached(b + 68, NULL, signed_bytes, sizeof signed_bytes,
                         s->id_sk);
    out->data = m;
    out->len = len;
    s->stage = SITE_ADVERTISED;
    return FF_PRIVACY_OK;
}

/* ------------------------------------------------------------- stage 2 -- */

/* Reads the key list into the peer records and checks it; on success
 * `listed` holds the list's entries for the session id. */
static ff_privacy_status read_key_list(ff_secagg_site *s, const uint8_t *msg,
                                       size_t len, uint32_t *listed,
                                       ff_privacy_error *err)
{
    ff_privacy_status st = sa_check_header(msg, len, SA_KEYS,
                                           SA_HDR + 44, "key list", err);
    if (st != FF_PRIVACY_OK)
        return st;
    uint64_t round = sa_get64(msg + SA_HDR);
    if (round != s->cfg.round)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "secagg site %u: key list of round %llu; this is round %llu "
            "(replayed or misrouted)", s->me, (unsigned long long)round,
            (unsigned long long)s->cfg.round);
    if (memcmp(msg + SA_HDR + 8, s->digest, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "secagg site %u: key list of round %llu with another "
            "configuration", s->me, (unsigned long long)round);
    uint32_t count = sa_get32(msg + SA_HDR + 40);
    if (count > s->cfg.n_sites ||
        len != SA_HDR + 44 + (size_t)count * SA_ADVERT_BODY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "secagg site %u: key list of %zu bytes does not hold %u entries",
            s->me, len, count);

    /* entries ascending; ours unaltered; neighbours' signatures valid */
    const uint8_t *e = msg + SA_HDR + 44;
    int seen_self = 0;
    for (uint32_t i = 0; i < count; i++, e += SA_ADVERT_BODY) {
        uint32_t id = sa_get32(e);
        if (id >= s->cfg.n_sites ||
            (i > 0 && id <= sa_get32(e - SA_ADVERT_BODY)))
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
                "secagg site %u: key list entry %u (site %u) out of order",
                s->me, i, id);
        if (id == s->me) {
            if (memcmp(e + 4, s->c_pk, 32) || memcmp(e + 36, s->s_pk, 32))
                return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                    "secagg site %u: the key list alters this site's keys",
                    s->me);
            seen_self = 1;
            continue;
        }
        site_peer *p = peer_get(s, id);
        if (p == NULL)
            continue; /* not a neighbour: its keys only enter the session id */
        uint8_t signed_bytes[SA_ADVERT_SIGNED_LEN];
        sa_advert_signed(s->digest, id, e + 4, e + 36, signed_bytes);
        if (crypto_sign_verify_detached(e + 68, signed_bytes,
                                        sizeof signed_bytes, p->id_pk) != 0)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
                "secagg site %u: the advertisement of site %u carries a "
                "signature that does not verify under its identity key",
                s->me, id);
        memcpy(p->c_pk, e + 4, 32);
        memcpy(p->s_pk, e + 36, 32);
        p->advertised = 1;
    }
    if (!seen_self)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: the key list leaves this site out", s->me);
    *listed = count;
    return FF_PRIVACY_OK;
}

/* All advertised keys of the neighbourhood must differ (a repeated key
 * would let one party pose as two). */
static ff_privacy_status check_distinct(const ff_secagg_site *s,
                                        ff_privacy_error *err)
{
    for (uint32_t i = 0; i < s->npeers; i++) {
        const site_peer *p = &s->peers[i];
        if (!p->advertised)
            continue;
        int dup = !memcmp(p->c_pk, p->s_pk, 32) ||
                  !memcmp(p->c_pk, s->c_pk, 32) ||
                  !memcmp(p->s_pk, s->s_pk, 32);
        for (uint32_t j = 0; j < i && !dup; j++)
            dup = s->peers[j].advertised &&
                  (!memcmp(p->c_pk, s->peers[j].c_pk, 32) ||
                   !memcmp(p->s_pk, s->peers[j].s_pk, 32));
        if (dup)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                "secagg site %u: site %u advertised a key already in use",
                s->me, s->peer_ids[i]);
    }
    return FF_PRIVACY_OK;
}

/* Encrypts one pair of shares for neighbour p into entry e. */
static ff_privacy_status seal_share(ff_secagg_site *s, uint32_t dst,
                                    const site_peer *p,
                                    const uint8_t *seed_share,
                                    const uint8_t *key_share, uint8_t *e,
                                    ff_privacy_error *err)
{
    uint8_t key[32], plain[SA_PLAIN], ad[SA_AD_LEN];
    if (sa_pair_enc_key(s->session, s->c_sk, s->c_pk, p->c_pk, key) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
            "secagg site %u: site %u advertised an invalid X25519 key",
            s->me, dst);
    sa_put32(plain, s->me);
    sa_put32(plain + 4, dst);
    memcpy(plain + 8, seed_share, SA_SHARE);
    memcpy(plain + 8 + SA_SHARE, key_share, SA_SHARE);
    sa_share_ad(s->session, s->cfg.round, s->me, dst, ad);
    sa_put32(e, dst);
    randombytes_buf(e + 4, SA_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(e + 4 + SA_NONCE, NULL, plain,
                                               sizeof plain, ad, sizeof ad,
                                               NULL, e + 4, key);
    sodium_memzero(key, sizeof key);
    sodium_memzero(plain, sizeof plain);
    return FF_PRIVACY_OK;
}

/* Splits the seed and the mask key among the holders (self first) and
 * writes the share message. */
static ff_privacy_status write_shares(ff_secagg_site *s, uint32_t holders,
                                      ff_secagg_msg *out,
                                      ff_privacy_error *err)
{
    ff_privacy_status st = FF_PRIVACY_OK;
    size_t len = SA_HDR + 32 + 4 + 32 + 4 +
                 (size_t)(holders - 1) * SA_SHARE_ENTRY;
    uint32_t *xs = malloc((size_t)holders * sizeof *xs);
    uint8_t *seed_sh = malloc((size_t)holders * SA_SHARE);
    uint8_t *key_sh = malloc((size_t)holders * SA_SHARE);
    uint8_t *m = malloc(len);
    if (xs == NULL || seed_sh == NULL || key_sh == NULL || m == NULL) {
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg site %u: no memory for %u shares", s->me, holders);
        goto done;
    }

    /* holder x = site id + 1; this site is holder 0 */
    uint32_t h = 0;
    xs[h++] = s->me + 1;
    for (uint32_t i = 0; i < s->npeers; i++)
        if (s->peers[i].advertised)
            xs[h++] = s->peer_ids[i] + 1;
    st = ff_shamir_split(s->seed, 32, s->cfg.threshold, xs, holders, seed_sh,
                         err);
    if (st == FF_PRIVACY_OK)
        st = ff_shamir_split(s->s_sk, 32, s->cfg.threshold, xs, holders,
                             key_sh, err);
    if (st != FF_PRIVACY_OK)
        goto done;
    memcpy(s->own_seed_share, seed_sh, SA_SHARE);
    memcpy(s->own_key_share, key_sh, SA_SHARE);

    /* header, session, sender, seed commitment, then one entry per holder */
    sa_put_header(m, SA_SHARES);
    memcpy(m + SA_HDR, s->session, 32);
    sa_put32(m + SA_HDR + 32, s->me);
    sa_seed_commitment(s->session, s->me, s->seed, m + SA_HDR + 36);
    sa_put32(m + SA_HDR + 68, holders - 1);
    uint8_t *e = m + SA_HDR + 72;
    for (uint32_t i = 1; i < holders && st == FF_PRIVACY_OK; i++) {
        uint32_t dst = xs[i] - 1;
        st = seal_share(s, dst, peer_get(s, dst), seed_sh + i * SA_SHARE,
                        key_sh + i * SA_SHARE, e, err);
        e += SA_SHARE_ENTRY;
    }
    if (st == FF_PRIVACY_OK) {
        out->data = m;
        out->len = len;
        m = NULL;
    }

done:
    free(m);
    if (key_sh != NULL)
        sodium_memzero(key_sh, (size_t)holders * SA_SHARE);
    if (seed_sh != NULL)
        sodium_memzero(seed_sh, (size_t)holders * SA_SHARE);
    free(key_sh);
    free(seed_sh);
    free(xs);
    return st;
}

ff_privacy_status ff_secagg_site_share_keys(ff_secagg_site *s,
                                            const uint8_t *msg, size_t len,
                                            ff_secagg_msg *out,
                                            ff_privacy_error *err)
{
    if (s->stage != SITE_ADVERTISED)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg site %u: key list arrived out of turn", s->me);
    uint32_t listed = 0;
    ff_privacy_status st = read_key_list(s, msg, len, &listed, err);
    if (st == FF_PRIVACY_OK)
        st = check_distinct(s, err);
    if (st != FF_PRIVACY_OK) {
        for (uint32_t i = 0; i < s->npeers; i++)
            s->peers[i].advertised = 0;
        return st;
    }

    /* enough holders for the threshold? (this site is one of them) */
    uint32_t holders = 1;
    for (uint32_t i = 0; i < s->npeers; i++)
        holders += s->peers[i].advertised;
    if (holders < s->cfg.threshold) {
        s->stage = SITE_FAILED;
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
            "aborted: site %u: only %u of %u neighbourhood members "
            "advertised keys, threshold %u", s->me, holders,
            s->npeers + 1, s->cfg.threshold);
    }
    sa_session_id(s->digest, msg + SA_HDR + 44, listed, s->session);
    st = write_shares(s, holders, out, err);
    s->stage = st == FF_PRIVACY_OK ? SITE_SHARED : SITE_FAILED;
    return st;
}

/* ------------------------------------------------------------- stage 3 -- */

/* Decrypts and stores one forwarded share entry. */
static ff_privacy_status open_share(ff_secagg_site *s, const uint8_t *e,
                                    uint32_t prev_src, int first,
                                    ff_privacy_error *err)
{
    uint32_t src = sa_get32(e), dst = sa_get32(e + 4);
    if (dst != s->me)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: share from site %u is addressed to site %u, "
            "not to this site", s->me, src, dst);
    site_peer *p = peer_get(s, src);
    if (p == NULL || !p->advertised)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: share from site %u, which is not an advertised "
            "neighbour", s->me, src);
    if (!first && src <= prev_src)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: share from site %u repeated or out of order",
            s->me, src);

    uint8_t key[32], plain[SA_PLAIN], ad[SA_AD_LEN];
    if (sa_pair_enc_key(s->session, s->c_sk, s->c_pk, p->c_pk, key) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
            "secagg site %u: site %u advertised an invalid X25519 key",
            s->me, src);
    sa_share_ad(s->session, s->cfg.round, src, s->me, ad);
    int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(
        plain, NULL, NULL, e + 8 + SA_NONCE, SA_CT, ad, sizeof ad, e + 8, key);
    sodium_memzero(key, sizeof key);
    if (bad || sa_get32(plain) != src || sa_get32(plain + 4) != s->me) {
        sodium_memzero(plain, sizeof plain);
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
            "secagg site %u: share from site %u fails authentication "
            "(tampered, or sealed for another recipient or session)",
            s->me, src);
    }
    memcpy(p->seed_share, plain + 8, SA_SHARE);
    memcpy(p->key_share, plain + 8 + SA_SHARE, SA_SHARE);
    p->shared = 1;
    sodium_memzero(plain, sizeof plain);
    return FF_PRIVACY_OK;
}

/* Derives the self mask and one pair mask per neighbour that shared. */
static ff_privacy_status derive_masks(ff_secagg_site *s,
                                      ff_privacy_error *err)
{
    s->nkeys = 0;
    sa_self_mask_key(s->session, s->me, s->seed, s->keys);
    s->signs[s->nkeys++] = 1;
    for (uint32_t i = 0; i < s->npeers; i++) {
        site_peer *p = &s->peers[i];
        uint32_t v = s->peer_ids[i];
        if (!p->shared)
            continue;
        if (sa_pair_mask_key(s->session, s->s_sk, s->s_pk, s->me, p->s_pk, v,
                             s->keys + 32 * (size_t)s->nkeys) != 0)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_AUTH,
                "secagg site %u: site %u advertised an invalid mask key",
                s->me, v);
        /* the larger id adds the pair mask, the smaller subtracts it */
        s->signs[s->nkeys++] = s->me > v ? 1 : -1;
    }
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_site_receive_shares(ff_secagg_site *s,
                                                const uint8_t *msg,
                                                size_t len,
                                                ff_privacy_error *err)
{
    if (s->stage != SITE_SHARED)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg site %u: forwarded shares arrived out of turn", s->me);
    ff_privacy_status st = sa_check_header(msg, len, SA_FORWARD,
                                           SA_HDR + 40, "forwarded shares",
                                           err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (sodium_memcmp(msg + SA_HDR, s->session, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "secagg site %u: forwarded shares belong to another session "
            "(replayed from an earlier round, or another key list)", s->me);
    uint32_t dst = sa_get32(msg + SA_HDR + 32);
    uint32_t count = sa_get32(msg + SA_HDR + 36);
    if (dst != s->me)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: forwarded shares are addressed to site %u",
            s->me, dst);
    if (count > s->npeers || len != SA_HDR + 40 + (size_t)count * SA_FWD_ENTRY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "secagg site %u: forwarded shares: %zu bytes for %u entries",
            s->me, len, count);

    /* open every share; on any failure forget them all */
    const uint8_t *e = msg + SA_HDR + 40;
    for (uint32_t i = 0; i < count && st == FF_PRIVACY_OK; i++)
        st = open_share(s, e + (size_t)i * SA_FWD_ENTRY,
                        i ? sa_get32(e + (size_t)(i - 1) * SA_FWD_ENTRY) : 0,
                        i == 0, err);
    if (st == FF_PRIVACY_OK && count + 1 < s->cfg.threshold)
        st = ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
            "aborted: site %u: only %u of %u neighbourhood members shared "
            "keys, threshold %u", s->me, count + 1, s->npeers + 1,
            s->cfg.threshold);
    if (st == FF_PRIVACY_OK)
        st = derive_masks(s, err);
    if (st != FF_PRIVACY_OK) {
        for (uint32_t i = 0; i < s->npeers; i++) {
            sodium_memzero(s->peers[i].seed_share, SA_SHARE);
            sodium_memzero(s->peers[i].key_share, SA_SHARE);
            s->peers[i].shared = 0;
        }
        s->stage = SITE_FAILED;
        return st;
    }
    s->stage = SITE_MASKING;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_site_mask_chunk(ff_secagg_site *s,
                                            uint64_t offset,
                                            const uint32_t *in, uint32_t *out,
                                            size_t n, ff_privacy_error *err)
{
    if (s->stage != SITE_MASKING)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg site %u: cannot mask before the shares arrived", s->me);
    if (offset > s->cfg.length || n > s->cfg.length - offset)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "secagg site %u: words %llu..+%zu outside the %llu-word vector",
            s->me, (unsigned long long)offset, n,
            (unsigned long long)s->cfg.length);

    /* inputs within the agreed range: the sum cannot wrap, or, with
     * cfg.wrap = 1 (max_value = 2^b - 1), any word of the field */
    for (size_t i = 0; i < n; i++)
        if (in[i] > s->cfg.max_value)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
                "secagg site %u: word %llu is %u, above max_value %u",
                s->me, (unsigned long long)(offset + i), in[i],
                s->cfg.max_value);
    if (out != in)
        memcpy(out, in, n * sizeof *out);
    sa_masks_apply(out, offset, n, s->keys, s->signs, s->nkeys);
    if (s->cfg.bits < 32) {
        uint32_t mask = (1u << s->cfg.bits) - 1;
        for (size_t i = 0; i < n; i++)
            out[i] &= mask;
    }
    return FF_PRIVACY_OK;
}

/* ------------------------------------------------------------- stage 4 -- */

/* Checks one request entry; returns the share to reveal through *share. */
static ff_privacy_status check_request(ff_secagg_site *s, uint32_t owner,
                                       uint8_t kind, const uint8_t **share,
                                       ff_privacy_error *err)
{
    if (kind != SA_KIND_SEED && kind != SA_KIND_MASKKEY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "secagg site %u: unmask request of unknown kind %u", s->me, kind);
    if (owner == s->me) {
        if (kind != SA_KIND_SEED)
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
                "secagg site %u: asked for its own mask-key share while "
                "alive: refusing", s->me);
        *share = s->own_seed_share;
        return FF_PRIVACY_OK;
    }
    site_peer *p = peer_get(s, owner);
    if (p == NULL || !p->shared)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: asked about site %u, which sent it no shares",
            s->me, owner);
    if (p->revealed != 0 && p->revealed != kind)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_PROTOCOL,
            "secagg site %u: asked for the %s share of site %u after "
            "revealing its %s share: refusing both", s->me,
            kind == SA_KIND_SEED ? "seed" : "mask-key", owner,
            p->revealed == SA_KIND_SEED ? "seed" : "mask-key");
    *share = kind == SA_KIND_SEED ? p->seed_share : p->key_share;
    return FF_PRIVACY_OK;
}

ff_privacy_status ff_secagg_site_unmask(ff_secagg_site *s, const uint8_t *msg,
                                        size_t len, ff_secagg_msg *out,
                                        ff_privacy_error *err)
{
    if (s->stage != SITE_MASKING)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_STATE,
            "secagg site %u: unmask request arrived out of turn", s->me);
    ff_privacy_status st = sa_check_header(msg, len, SA_UNMASK_REQ,
                                           SA_HDR + 40, "unmask request", err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (sodium_memcmp(msg + SA_HDR, s->session, 32) != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_SESSION,
            "secagg site %u: unmask request of another session (replayed "
            "from an earlier round?)", s->me);
    uint32_t dst = sa_get32(msg + SA_HDR + 32);
    uint32_t count = sa_get32(msg + SA_HDR + 36);
    if (dst != s->me || count > s->npeers + 1 ||
        len != SA_HDR + 40 + (size_t)count * SA_REQ_ENTRY)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "secagg site %u: unmask request for site %u with %u entries in "
            "%zu bytes", s->me, dst, count, len);

    /* check every entry before revealing anything */
    const uint8_t *e = msg + SA_HDR + 40;
    uint32_t alive = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *share;
        uint32_t owner = sa_get32(e + (size_t)i * SA_REQ_ENTRY);
        uint8_t kind = e[(size_t)i * SA_REQ_ENTRY + 4];
        if (i > 0 && owner <= sa_get32(e + (size_t)(i - 1) * SA_REQ_ENTRY))
            return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
                "secagg site %u: unmask request entries out of order", s->me);
        st = check_request(s, owner, kind, &share, err);
        if (st != FF_PRIVACY_OK)
            return st;
        alive += kind == SA_KIND_SEED;
    }
    if (alive < s->cfg.threshold)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ABORTED,
            "aborted: site %u: only %u of %u neighbourhood members reported "
            "alive, threshold %u", s->me, alive, s->npeers + 1,
            s->cfg.threshold);

    /* the answer: one share per entry */
    size_t olen = SA_HDR + 40 + (size_t)count * SA_RESP_ENTRY;
    uint8_t *m = malloc(olen);
    if (m == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "secagg site %u: no memory for the unmask answer", s->me);
    sa_put_header(m, SA_UNMASK_RESP);
    memcpy(m + SA_HDR, s->session, 32);
    sa_put32(m + SA_HDR + 32, s->me);
    sa_put32(m + SA_HDR + 36, count);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *share = NULL;
        uint32_t owner = sa_get32(e + (size_t)i * SA_REQ_ENTRY);
        uint8_t kind = e[(size_t)i * SA_REQ_ENTRY + 4];
        uint8_t *o = m + SA_HDR + 40 + (size_t)i * SA_RESP_ENTRY;
        (void)check_request(s, owner, kind, &share, NULL);
        if (owner != s->me)
            peer_get(s, owner)->revealed = kind;
        sa_put32(o, owner);
        o[4] = kind;
        memcpy(o + 5, share, SA_SHARE);
    }
    out->data = m;
    out->len = olen;
    return FF_PRIVACY_OK;
}
