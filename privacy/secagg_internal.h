/*
 * secagg_internal.h - pieces shared by the site and server sides of
 * secure aggregation: wire encoding, key derivation, the neighbour graph and
 * mask expansion. Not installed; nothing here is part of the public API.
 */
#ifndef FF_SECAGG_INTERNAL_H
#define FF_SECAGG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ff_secagg.h"

#define SA_MAGIC 0x41534646u /* "FFSA" little-endian */
#define SA_VERSION 1
#define SA_SECRET 32                     /* seed and key bytes */
#define SA_SHARE 36                      /* ff_shamir_share_size(32) */
#define SA_NONCE 24                      /* XChaCha20-Poly1305 nonce */
#define SA_TAG 16
#define SA_PLAIN (8 + 2 * SA_SHARE)      /* src, dst, two shares */
#define SA_CT (SA_PLAIN + SA_TAG)
#define SA_HDR 8                         /* magic, type, version, 2 spare */
#define SA_ADVERT_BODY (4 + 32 + 32 + 64)/* site, c_pk, s_pk, signature */
#define SA_SHARE_ENTRY (4 + SA_NONCE + SA_CT)     /* dst, nonce, ct */
#define SA_FWD_ENTRY (8 + SA_NONCE + SA_CT)       /* src, dst, nonce, ct */
#define SA_REQ_ENTRY 5                            /* owner, kind */
#define SA_RESP_ENTRY (5 + SA_SHARE)              /* owner, kind, share */

enum sa_msg_type {
    SA_ADVERT = 1,
    SA_KEYS = 2,
    SA_SHARES = 3,
    SA_FORWARD = 4,
    SA_UNMASK_REQ = 5,
    SA_UNMASK_RESP = 6,
};

enum sa_share_kind { SA_KIND_SEED = 1, SA_KIND_MASKKEY = 2 };

/* Little-endian encoding of fixed-width integers. */
void sa_put32(uint8_t *p, uint32_t v);
void sa_put64(uint8_t *p, uint64_t v);
uint32_t sa_get32(const uint8_t *p);
uint64_t sa_get64(const uint8_t *p);

/* Writes the 8-byte header of a message of type t. */
void sa_put_header(uint8_t *p, enum sa_msg_type t);

/* Checks magic, version and type of msg (len bytes); names what = the
 * message's role in the error. */
ff_privacy_status sa_check_header(const uint8_t *msg, size_t len,
                                  enum sa_msg_type t, size_t min_len,
                                  const char *what, ff_privacy_error *err);

/* BLAKE2b-256 digest of the configuration (round, sizes, graph seed). */
void sa_config_digest(const ff_secagg_config *cfg, uint8_t out[32]);

/* Writes the SA_ADVERT_SIGNED_LEN bytes an advertisement signature covers:
 * a label, the configuration digest, the site and its two public keys. */
void sa_advert_signed(const uint8_t digest[32], uint32_t site,
                      const uint8_t c_pk[32], const uint8_t s_pk[32],
                      uint8_t *out);
#define SA_ADVERT_SIGNED_LEN (16 + 32 + 4 + 32 + 32)

/* Session id: digest of the configuration and the list of U1 adverts (each
 * SA_ADVERT_BODY bytes, ascending site id). */
void sa_session_id(const uint8_t digest[32], const uint8_t *adverts,
                   uint32_t count, uint8_t out[32]);

/* Pair key for share encryption from an X25519 exchange. Returns -1 when
 * the peer key is a low-order point. */
int sa_pair_enc_key(const uint8_t session[32], const uint8_t my_sk[32],
                    const uint8_t my_pk[32], const uint8_t peer_pk[32],
                    uint8_t key[32]);

/* Pair mask key between sites a and b (any order) from X25519(sk_a, pk_b).
 * Returns -1 for a low-order peer key. */
int sa_pair_mask_key(const uint8_t session[32], const uint8_t sk_a[32],
                     const uint8_t pk_a[32], uint32_t a,
                     const uint8_t pk_b[32], uint32_t b, uint8_t key[32]);

/* Self-mask key and the public commitment to the self-mask seed. */
void sa_self_mask_key(const uint8_t session[32], uint32_t site,
                      const uint8_t seed[32], uint8_t key[32]);
void sa_seed_commitment(const uint8_t session[32], uint32_t site,
                        const uint8_t seed[32], uint8_t out[32]);

/* Associated data of a share ciphertext: session, round, src, dst. */
#define SA_AD_LEN (32 + 8 + 4 + 4)
void sa_share_ad(const uint8_t session[32], uint64_t round, uint32_t src,
                 uint32_t dst, uint8_t ad[SA_AD_LEN]);

/*
 * The random relabelling of the Harary ring: perm[i] is the site at ring
 * position i and pos[site] its position (n entries each, caller-owned).
 */
void sa_graph_perm(const ff_secagg_config *cfg, uint32_t *perm, uint32_t *pos);

/* Neighbours of site (itself excluded, ascending) written to out
 * (cfg->degree entries); returns their count. */
uint32_t sa_graph_neighbours_of(const ff_secagg_config *cfg,
                                const uint32_t *perm, const uint32_t *pos,
                                uint32_t site, uint32_t *out);

/*
 * Adds (sign +1) or subtracts (sign -1) the ChaCha20 streams of nkeys keys
 * to acc, which holds words offset..offset+n-1 of the vector; works in
 * cache-sized blocks: keystream into a buffer, then word-wise add.
 */
void sa_masks_apply(uint32_t *acc, uint64_t offset, size_t n,
                    const uint8_t *keys, const int8_t *signs, size_t nkeys);

/* Sorted-array lookup: index of v in a[0..n-1], or -1. */
long sa_find_u32(const uint32_t *a, uint32_t n, uint32_t v);

#endif
