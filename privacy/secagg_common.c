/*
 * secagg_common.c - wire encoding, key derivation, the neighbour graph,
 * mask expansion and the configuration checks of secure aggregation.
 */
#include "secagg_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ encoding -- */

void sa_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void sa_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t sa_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t sa_get64(const uint8_t *p)
{
    return (uint64_t)sa_get32(p) | (uint64_t)sa_get32(p + 4) << 32;
}

void sa_put_header(uint8_t *p, enum sa_msg_type t)
{
    sa_put32(p, SA_MAGIC);
    p[4] = (uint8_t)t;
    p[5] = SA_VERSION;
    p[6] = p[7] = 0;
}

ff_privacy_status sa_check_header(const uint8_t *msg, size_t len,
                                  enum sa_msg_type t, size_t min_len,
                                  const char *what, ff_privacy_error *err)
{
    if (msg == NULL || len < SA_HDR || len < min_len)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "%s: %zu bytes, at least %zu expected", what, len,
            min_len > SA_HDR ? min_len : (size_t)SA_HDR);
    if (sa_get32(msg) != SA_MAGIC || msg[5] != SA_VERSION || msg[6] != 0 ||
        msg[7] != 0)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "%s: not a secure-aggregation message of version %d", what,
            SA_VERSION);
    if (msg[4] != t)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_FORMAT,
            "%s: message of type %u, expected type %u", what, msg[4],
            (unsigned)t);
    return FF_PRIVACY_OK;
}

void ff_secagg_msg_cleanup(ff_secagg_msg *msg)
{
    if (msg == NULL)
        return;
    free(msg->data);
    msg->data = NULL;
    msg->len = 0;
}

long sa_find_u32(const uint32_t *a, uint32_t n, uint32_t v)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] == v)
            return (long)mid;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ------------------------------------------------------ key derivation -- */

/* Every derivation hashes a 16-byte label first, so no two uses collide. */
static void hash_label(crypto_generichash_state *h, const char *label)
{
    uint8_t l[16] = {0};
    memcpy(l, label, strlen(label) < 16 ? strlen(label) : 16);
    crypto_generichash_init(h, NULL, 0, 32);
    crypto_generichash_update(h, l, sizeof l);
}

void sa_config_digest(const ff_secagg_config *cfg, uint8_t out[32])
{
    uint8_t b[8 + 4 * 4 + 8 + 4 + 32 + 4];
    sa_put64(b, cfg->round);
    sa_put32(b + 8, cfg->n_sites);
    sa_put32(b + 12, cfg->degree);
    sa_put32(b + 16, cfg->threshold);
    sa_put32(b + 20, cfg->bits);
    sa_put64(b + 24, cfg->length);
    sa_put32(b + 32, cfg->max_value);
    memcpy(b + 36, cfg->graph_seed, 32);
    sa_put32(b + 68, cfg->wrap);
    crypto_generichash_state h;
    hash_label(&h, "ffsa-config");
    crypto_generichash_update(&h, b, sizeof b);
    crypto_generichash_final(&h, out, 32);
}

void sa_advert_signed(const uint8_t digest[32], uint32_t site,
                      const uint8_t c_pk[32], const uint8_t s_pk[32],
                      uint8_t *out)
{
    memset(out, 0, 16);
    memcpy(out, "ffsa-advert", 11);
    memcpy(out + 16, digest, 32);
    sa_put32(out + 48, site);
    memcpy(out + 52, c_pk, 32);
    memcpy(out + 84, s_pk, 32);
}

void sa_session_id(const uint8_t digest[32], const uint8_t *adverts,
                   uint32_t count, uint8_t out[32])
{
    uint8_t c[4];
    crypto_generichash_state h;
    hash_label(&h, "ffsa-session");
    crypto_generichash_update(&h, digest, 32);
    sa_put32(c, count);
    crypto_generichash_update(&h, c, 4);
    /* site id and both public keys of each advert; signatures left out */
    for (uint32_t i = 0; i < count; i++)
        crypto_generichash_update(&h, adverts + (size_t)i * SA_ADVERT_BODY,
                                  4 + 64);
    crypto_generichash_final(&h, out, 32);
}

/* KDF over an X25519 point, both public keys in a fixed order, the session
 * and extra context bytes. */
static int pair_key(const char *label, const uint8_t session[32],
                    const uint8_t sk[32], const uint8_t pk_lo[32],
                    const uint8_t pk_hi[32], const uint8_t *peer_pk,
                    const uint8_t *ctx, size_t ctx_len, uint8_t key[32])
{
    uint8_t point[crypto_scalarmult_BYTES];
    if (crypto_scalarmult(point, sk, peer_pk) != 0)
        return -1;
    crypto_generichash_state h;
    hash_label(&h, label);
    crypto_generichash_update(&h, session, 32);
    crypto_generichash_update(&h, point, sizeof point);
    crypto_generichash_update(&h, pk_lo, 32);
    crypto_generichash_update(&h, pk_hi, 32);
    if (ctx_len > 0)
        crypto_generichash_update(&h, ctx, ctx_len);
    crypto_generichash_final(&h, key, 32);
    sodium_memzero(point, sizeof point);
    sodium_memzero(&h, sizeof h);
    return 0;
}

int sa_pair_enc_key(const uint8_t session[32], const uint8_t my_sk[32],
                    const uint8_t my_pk[32], const uint8_t peer_pk[32],
                    uint8_t key[32])
{
    int lo_mine = memcmp(my_pk, peer_pk, 32) < 0;
    return pair_key("ffsa-share-enc", session, my_sk,
                    lo_mine ? my_pk : peer_pk, lo_mine ? peer_pk : my_pk,
                    peer_pk, NULL, 0, key);
}

int sa_pair_mask_key(const uint8_t session[32], const uint8_t sk_a[32],
                     const uint8_t pk_a[32], uint32_t a,
                     const uint8_t pk_b[32], uint32_t b, uint8_t key[32])
{
    uint8_t ids[8];
    sa_put32(ids, a < b ? a : b);
    sa_put32(ids + 4, a < b ? b : a);
    return pair_key("ffsa-pair-mask", session, sk_a, a < b ? pk_a : pk_b,
                    a < b ? pk_b : pk_a, pk_b, ids, sizeof ids, key);
}

static void seed_hash(const char *label, const uint8_t session[32],
                      uint32_t site, const uint8_t seed[32], uint8_t out[32])
{
    uint8_t id[4];
    crypto_generichash_state h;
    sa_put32(id, site);
    hash_label(&h, label);
    crypto_generichash_update(&h, session, 32);
    crypto_generichash_update(&h, id, 4);
    crypto_generichash_update(&h, seed, 32);
    crypto_generichash_final(&h, out, 32);
    sodium_memzero(&h, sizeof h);
}

void sa_self_mask_key(const uint8_t session[32], uint32_t site,
                      const uint8_t seed[32], uint8_t key[32])
{
    seed_hash("ffsa-self-mask", session, site, seed, key);
}

void sa_seed_commitment(const uint8_t session[32], uint32_t site,
                        const uint8_t seed[32], uint8_t out[32])
{
    seed_hash("ffsa-seed-commit", session, site, seed, out);
}

void sa_share_ad(const uint8_t session[32], uint64_t round, uint32_t src,
                 uint32_t dst, uint8_t ad[SA_AD_LEN])
{
    memcpy(ad, session, 32);
    sa_put64(ad + 32, round);
    sa_put32(ad + 40, src);
    sa_put32(ad + 44, dst);
}

/* --------------------------------------------------------------- graph -- */

/* A ChaCha20 word stream keyed from the public graph seed. */
typedef struct graph_rng {
    uint8_t key[32];
    uint32_t buf[64];
    uint32_t used;
    uint32_t block;
} graph_rng;

static uint32_t rng_next(graph_rng *r)
{
    static const uint8_t zero[sizeof r->buf];
    static const uint8_t nonce[12];
    if (r->used == 64) {
        crypto_stream_chacha20_ietf_xor_ic((uint8_t *)r->buf, zero,
                                           sizeof r->buf, nonce, r->block,
                                           r->key);
        r->block += sizeof r->buf / 64;
        r->used = 0;
    }
    return r->buf[r->used++];
}

/* Uniform in [0, bound) without modulo bias. */
static uint32_t rng_uniform(graph_rng *r, uint32_t bound)
{
    uint32_t limit = (uint32_t)(-bound) % bound; /* 2^32 mod bound */
    for (;;) {
        uint32_t v = rng_next(r);
        if (v >= limit)
            return v % bound;
    }
}

void sa_graph_perm(const ff_secagg_config *cfg, uint32_t *perm, uint32_t *pos)
{
    /* key = H(label, seed, n); Fisher-Yates over 0..n-1 */
    graph_rng r = {.used = 64};
    uint8_t nb[4];
    crypto_generichash_state h;
    hash_label(&h, "ffsa-graph");
    crypto_generichash_update(&h, cfg->graph_seed, 32);
    sa_put32(nb, cfg->n_sites);
    crypto_generichash_update(&h, nb, 4);
    crypto_generichash_final(&h, r.key, 32);
    uint32_t n = cfg->n_sites;
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = rng_uniform(&r, i + 1);
        uint32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (uint32_t i = 0; i < n; i++)
        pos[perm[i]] = i;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t sa_graph_neighbours_of(const ff_secagg_config *cfg,
                                const uint32_t *perm, const uint32_t *pos,
                                uint32_t site, uint32_t *out)
{
    uint32_t n = cfg->n_sites, k = cfg->degree, c = 0;

    /* complete graph: everyone else */
    if (k >= n - 1) {
        for (uint32_t v = 0; v < n; v++)
            if (v != site)
                out[c++] = v;
        return c;
    }

    /* Harary ring: k/2 positions on each side */
    uint32_t p = pos[site];
    for (uint32_t j = 1; j <= k / 2; j++) {
        out[c++] = perm[(p + j) % n];
        out[c++] = perm[(p + n - j) % n];
    }
    qsort(out, c, sizeof *out, cmp_u32);
    return c;
}

ff_privacy_status ff_secagg_graph_neighbours(const ff_secagg_config *cfg,
                                             uint32_t site, uint32_t *out,
                                             uint32_t *count,
                                             ff_privacy_error *err)
{
    ff_privacy_status st = ff_secagg_config_check(cfg, err);
    if (st != FF_PRIVACY_OK)
        return st;
    if (site >= cfg->n_sites)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_ARG,
            "graph: site %u outside 0..%u", site, cfg->n_sites - 1);
    uint32_t *perm = malloc(2 * (size_t)cfg->n_sites * sizeof *perm);
    if (perm == NULL)
        return ff_privacy_error_set(err, FF_PRIVACY_ERR_NOMEM,
            "graph: no memory for %u sites", cfg->n_sites);
    sa_graph_perm(cfg, perm, perm + cfg->n_sites);
    *count = sa_graph_neighbours_of(cfg, perm, perm + cfg->n_sites, site, out);
    free(perm);
    return FF_PRIVACY_OK;
}

/* ---------------------------------------------------------------- masks -- */

#define MASK_BLOCK 2048 /* words: keystream and sum block stay in L1 */

void sa_masks_apply(uint32_t *acc, uint64_t offset, size_t n,
                    const uint8_t *keys, const int8_t *signs, size_t nkeys)
{
    static const uint8_t zero[(MASK_BLOCK + 16) * 4];
    static const uint8_t nonce[12];
    uint32_t ks[MASK_BLOCK + 16];

    while (n > 0) {
        /* the ChaCha20 block holding word `offset`, and the words to skip */
        uint64_t first = offset & ~(uint64_t)15;
        size_t skip = (size_t)(offset - first);
        size_t take = n < MASK_BLOCK - skip ? n : MASK_BLOCK - skip;
        size_t gen = (skip + take + 15) & ~(size_t)15;

        /* one key at a time: keystream into ks, then add or subtract */
        for (size_t k = 0; k < nkeys; k++) {
            crypto_stream_chacha20_ietf_xor_ic((uint8_t *)ks, zero, gen * 4,
                                               nonce, (uint32_t)(first / 16),
                                               keys + 32 * k);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            for (size_t i = 0; i < gen; i++)
                ks[i] = __builtin_bswap32(ks[i]);
#endif
            const uint32_t *src = ks + skip;
            if (signs[k] > 0)
                for (size_t i = 0; i < take; i++)
                    acc[i] += src[i];
            else
                for (size_t i = 0; i < take; i++)
                    acc[i] -= src[i];
        }
        acc += take;
        offset += take;
        n -= take;
    }
    sodium_memzero(ks, sizeof ks);
}
