/*
 * ff_secagg.h - secure aggregation (SecAgg+, Bell et al. 2020; classic
 * SecAgg of Bonawitz et al. 2017 is the complete-graph case).
 *
 * The server learns the sum, modulo 2^b, of the vectors of the sites that
 * sent a masked input, and nothing else about any one of them, as long as
 * fewer than t of each site's neighbours collude with it. This is the
 * protocol core only: no network, no threads, no clock. Each stage takes and
 * returns plain byte strings (messages, ff_secagg_msg) or uint32 words, so
 * the coordinator drives the server side from its RPC handlers and a site
 * drives its side from its round loop. docs/secagg.md describes the
 * protocol, the messages and what each party learns.
 *
 * Round, seen from the server (U1 >= U2 >= U3 are the sites still present):
 *   1. adverts:  ff_secagg_server_add_advert() per site,
 *                ff_secagg_server_close_adverts(), then send everyone
 *                ff_secagg_server_keys_message()
 *   2. sharing:  ff_secagg_server_add_shares() per site,
 *                ff_secagg_server_close_sharing(), then send each site its
 *                ff_secagg_server_forward_message()
 *   3. masking:  ff_secagg_server_add_chunk() as masked words arrive,
 *                ff_secagg_server_close_masking()
 *   4. unmask:   send each site its ff_secagg_server_unmask_request(),
 *                ff_secagg_server_add_unmask() per answer,
 *                ff_secagg_server_close_unmasking(), then read the sum with
 *                ff_secagg_server_result_chunk()
 * Seen from a site: ff_secagg_site_advertise(), ff_secagg_site_share_keys(),
 * ff_secagg_site_receive_shares(), ff_secagg_site_mask_chunk() over the
 * vector, ff_secagg_site_unmask().
 *
 * A site that drops at any stage is simply absent from the next one; the
 * server finishes whenever every secret it must rebuild still has t shares,
 * and otherwise fails with FF_PRIVACY_ERR_ABORTED and a reason such as
 * "aborted: only 12 of 40 survivors, threshold 17".
 *
 * Call sodium_init() once before using this module. Objects are not
 * thread-safe; distinct objects may be used from distinct threads.
 */
#ifndef FF_SECAGG_H
#define FF_SECAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ff_privacy.h"

#define FF_SECAGG_MAX_SITES 1000000u
#define FF_SECAGG_MAX_DEGREE 4096u        /* neighbours per site */
#define FF_SECAGG_MAX_LENGTH (1ull << 32) /* words in the vector */
#define FF_SECAGG_COMPLETE_BELOW 64u   /* fewer sites: complete graph */
#define FF_SECAGG_KEY_BYTES 32
#define FF_SECAGG_SIGN_PK_BYTES 32 /* Ed25519 public key */
#define FF_SECAGG_SIGN_SK_BYTES 64 /* Ed25519 secret key (libsodium form) */

/*
 * Everything the parties agree on before a round; the coordinator chooses
 * it (graph_seed fresh from a CSPRNG, before any key is seen) and sends it
 * to every site with the round's task. Sites are numbered 0..n_sites-1 for
 * the round; the caller keeps the mapping to site names.
 */
typedef struct ff_secagg_config {
    uint64_t round;        /* round number, bound into every key */
    uint32_t n_sites;      /* sites invited to the round, n */
    uint32_t degree;       /* k: neighbours of each site, itself excluded;
                            * even, or n-1 for the complete graph */
    uint32_t threshold;    /* t: shares needed to rebuild a secret */
    uint32_t bits;         /* b: the sum is taken modulo 2^b, 1..32 */
    uint64_t length;       /* m: words in each site's vector */
    uint32_t max_value;    /* largest word a site may submit */
    uint8_t graph_seed[32];/* public seed of the neighbour graph */
    uint32_t wrap;         /* 0: the sum must not wrap (n max_value <
                            * 2^b is checked); 1: modular sum, wrapping
                            * intended (DDGauss, whose decoding centres
                            * it): max_value must be 2^b - 1, so a site
                            * may submit any word below 2^b */
} ff_secagg_config;

/* Threat model of the parameter finder (Bell et al. 2020, §1.6 notes). */
typedef enum ff_secagg_adversary {
    FF_SECAGG_SEMI_HONEST = 0,   /* curious server, follows the protocol */
    FF_SECAGG_SEMI_MALICIOUS = 1 /* server may lie about who dropped */
} ff_secagg_adversary;

/*
 * Picks (degree k, threshold t) for n sites when at most a fraction dropout
 * of them drops and at most a fraction corrupt colludes with the server:
 * statistical security 2^-40, failure probability 2^-20 (the FCP Harary
 * graph finder, notes §1.6). Below FF_SECAGG_COMPLETE_BELOW sites, or when
 * no even k < n-1 qualifies, it uses the complete graph k = n-1 with the
 * largest t that still tolerates the dropout, t = ceil((1 - dropout) n),
 * and checks that t exceeds ceil(corrupt n) (semi-honest) or
 * ceil((n + corrupt n) / 2) (semi-malicious).
 * Errors: FF_PRIVACY_ERR_ARG (n < 3 or > FF_SECAGG_MAX_SITES, rates outside
 * [0,1)), FF_PRIVACY_ERR_INFEASIBLE with the violated condition.
 * Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_params_find(uint32_t n, double dropout, double corrupt,
                      ff_secagg_adversary adversary, uint32_t *degree,
                      uint32_t *threshold, ff_privacy_error *err);

/*
 * Checks a configuration: ranges of every field, and, with wrap = 0, that
 * the sum of n words of at most max_value cannot reach 2^b
 * (FF_PRIVACY_ERR_OVERFLOW, with the numbers). With wrap = 1 the sum is
 * meant to wrap; max_value must then be exactly 2^b - 1. Errors:
 * FF_PRIVACY_ERR_ARG naming the bad field (wrap other than 0 or 1
 * included). Thread-safe.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_config_check(const ff_secagg_config *cfg, ff_privacy_error *err);

/*
 * Writes the neighbours of site (itself excluded) into out, ascending, and
 * their count into *count; out must hold cfg->degree entries. The graph is a
 * Harary ring of degree k relabelled by a permutation drawn from
 * cfg->graph_seed, so every party derives the same graph. Errors:
 * FF_PRIVACY_ERR_ARG (bad config or site), FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_graph_neighbours(const ff_secagg_config *cfg, uint32_t site,
                           uint32_t *out, uint32_t *count,
                           ff_privacy_error *err);

/* A message produced by this module. Caller-owned: zero-initialise, then
 * release with ff_secagg_msg_cleanup(). */
typedef struct ff_secagg_msg {
    uint8_t *data;
    size_t len;
} ff_secagg_msg;

/* Frees msg's bytes and zeroes it; accepts NULL and empty messages. */
void ff_secagg_msg_cleanup(ff_secagg_msg *msg);

/* ---------------------------------------------------------------- site -- */

typedef struct ff_secagg_site ff_secagg_site;

/*
 * Creates site number `site` of the round described by cfg (copied), with
 * its long-term Ed25519 identity secret key identity_sk (copied, 64 bytes)
 * and the table of all n sites' identity public keys identity_pks (n x 32
 * bytes, borrowed for the call only: the site keeps its neighbours' keys).
 * Draws the round's two X25519 key pairs and the self-mask seed.
 * On success *out is owned by the caller (ff_secagg_site_destroy).
 * Errors: FF_PRIVACY_ERR_ARG (bad config, site or key), FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_create(const ff_secagg_config *cfg, uint32_t site,
                      const uint8_t *identity_sk, const uint8_t *identity_pks,
                      ff_secagg_site **out, ff_privacy_error *err);

/* Wipes every secret of s and frees it; accepts NULL. */
void ff_secagg_site_destroy(ff_secagg_site *s);

/*
 * Stage 1: writes the site's signed key advertisement into *out (caller
 * cleans it up). Errors: FF_PRIVACY_ERR_STATE (called twice),
 * FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_advertise(ff_secagg_site *s, ff_secagg_msg *out,
                         ff_privacy_error *err);

/*
 * Stage 2: reads the server's key list (msg, len bytes, borrowed), checks
 * the round, its own entry and every neighbour's signature, derives the
 * session id, splits its mask key and self-mask seed among its advertised
 * neighbours and itself, and writes the encrypted shares into *out.
 * Errors: FF_PRIVACY_ERR_FORMAT, FF_PRIVACY_ERR_SESSION (another round or
 * configuration), FF_PRIVACY_ERR_AUTH (bad signature, naming the site),
 * FF_PRIVACY_ERR_PROTOCOL (own keys altered, repeated keys),
 * FF_PRIVACY_ERR_ABORTED (fewer than t of its neighbours left),
 * FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_share_keys(ff_secagg_site *s, const uint8_t *msg, size_t len,
                          ff_secagg_msg *out, ff_privacy_error *err);

/*
 * Stage 3a: reads the shares the server forwards (msg, borrowed), decrypts
 * and checks each (sender, recipient, session), keeps them and derives the
 * masks it will add. Errors: FF_PRIVACY_ERR_FORMAT, FF_PRIVACY_ERR_SESSION,
 * FF_PRIVACY_ERR_PROTOCOL (a share for another site, a sender that is not
 * an advertised neighbour, a duplicate), FF_PRIVACY_ERR_AUTH (a tampered
 * share), FF_PRIVACY_ERR_ABORTED (fewer than t neighbours shared),
 * FF_PRIVACY_ERR_STATE.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_receive_shares(ff_secagg_site *s, const uint8_t *msg,
                              size_t len, ff_privacy_error *err);

/*
 * Stage 3b: masks words offset..offset+n-1 of the site's input: out[i] =
 * in[i] + self mask + pairwise masks, modulo 2^b (in may equal out; both
 * caller-owned). Chunks may come in any order and size. Errors:
 * FF_PRIVACY_ERR_ARG (range beyond the vector, a word above max_value),
 * FF_PRIVACY_ERR_STATE (shares not received yet).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_mask_chunk(ff_secagg_site *s, uint64_t offset,
                          const uint32_t *in, uint32_t *out, size_t n,
                          ff_privacy_error *err);

/*
 * Stage 4: reads the server's unmask request (msg, borrowed) and writes the
 * requested shares into *out: the self-mask seed share of each neighbour
 * that sent its masked input, the mask-key share of each that did not. It
 * refuses to give both kinds for one neighbour, ever. Errors:
 * FF_PRIVACY_ERR_FORMAT, FF_PRIVACY_ERR_SESSION, FF_PRIVACY_ERR_PROTOCOL
 * (conflicting or unknown request), FF_PRIVACY_ERR_ABORTED (fewer than t
 * neighbours reported alive), FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_site_unmask(ff_secagg_site *s, const uint8_t *msg, size_t len,
                      ff_secagg_msg *out, ff_privacy_error *err);

/* ---------------------------------------------------------------- server -- */

typedef struct ff_secagg_server ff_secagg_server;

/*
 * Creates the server side of the round cfg (copied), knowing all n sites'
 * identity public keys (n x 32 bytes, copied). Memory: one m-word running
 * sum plus O(n k) key material, never n x m. *out is owned by the caller
 * (ff_secagg_server_destroy). Errors: FF_PRIVACY_ERR_ARG,
 * FF_PRIVACY_ERR_OVERFLOW (see ff_secagg_config_check), FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_create(const ff_secagg_config *cfg,
                        const uint8_t *identity_pks, ff_secagg_server **out,
                        ff_privacy_error *err);

/* Wipes and frees srv; accepts NULL. */
void ff_secagg_server_destroy(ff_secagg_server *srv);

/*
 * Adds one site's advertisement (msg, borrowed) after checking its round,
 * configuration and signature. Errors: FF_PRIVACY_ERR_FORMAT,
 * FF_PRIVACY_ERR_SESSION, FF_PRIVACY_ERR_AUTH, FF_PRIVACY_ERR_PROTOCOL
 * (second advertisement), FF_PRIVACY_ERR_STATE.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_add_advert(ff_secagg_server *srv, const uint8_t *msg,
                            size_t len, ff_privacy_error *err);

/* Ends stage 1 and fixes U1. Errors: FF_PRIVACY_ERR_ABORTED (fewer than t
 * sites advertised), FF_PRIVACY_ERR_STATE. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_close_adverts(ff_secagg_server *srv, ff_privacy_error *err);

/* Writes the key list every site of U1 receives into *out (caller cleans
 * up). Errors: FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_keys_message(const ff_secagg_server *srv, ff_secagg_msg *out,
                              ff_privacy_error *err);

/*
 * Adds one site's encrypted shares (msg, borrowed); the server cannot read
 * them. Errors: FF_PRIVACY_ERR_FORMAT, FF_PRIVACY_ERR_SESSION,
 * FF_PRIVACY_ERR_PROTOCOL (unknown site, wrong recipients, repeat),
 * FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_add_shares(ff_secagg_server *srv, const uint8_t *msg,
                            size_t len, ff_privacy_error *err);

/* Ends stage 2 and fixes U2. Errors: FF_PRIVACY_ERR_ABORTED,
 * FF_PRIVACY_ERR_STATE. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_close_sharing(ff_secagg_server *srv, ff_privacy_error *err);

/* Writes the shares addressed to site (a member of U2) into *out. Errors:
 * FF_PRIVACY_ERR_ARG, FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_forward_message(const ff_secagg_server *srv, uint32_t site,
                                 ff_secagg_msg *out, ff_privacy_error *err);

/*
 * Adds masked words offset..offset+n-1 of site's vector to the running sum.
 * A site's chunks must arrive in order, without gaps or repeats. Errors:
 * FF_PRIVACY_ERR_ARG (not in U2, range), FF_PRIVACY_ERR_PROTOCOL (out of
 * order or repeated chunk), FF_PRIVACY_ERR_STATE.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_add_chunk(ff_secagg_server *srv, uint32_t site,
                           uint64_t offset, const uint32_t *words, size_t n,
                           ff_privacy_error *err);

/*
 * Ends stage 3 and fixes U3 (the sites whose whole vector arrived).
 * Errors: FF_PRIVACY_ERR_ABORTED (fewer than t complete inputs, or a site
 * that stopped half-way: its partial vector is in the sum and cannot be
 * taken out), FF_PRIVACY_ERR_STATE.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_close_masking(ff_secagg_server *srv, ff_privacy_error *err);

/* Writes the unmask request for site (a member of U3) into *out. Errors:
 * FF_PRIVACY_ERR_ARG, FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_unmask_request(const ff_secagg_server *srv, uint32_t site,
                                ff_secagg_msg *out, ff_privacy_error *err);

/* Adds one site's unmask answer (msg, borrowed). Errors:
 * FF_PRIVACY_ERR_FORMAT, FF_PRIVACY_ERR_SESSION, FF_PRIVACY_ERR_PROTOCOL
 * (answer not matching the request, repeat), FF_PRIVACY_ERR_STATE. */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_add_unmask(ff_secagg_server *srv, const uint8_t *msg,
                            size_t len, ff_privacy_error *err);

/*
 * Ends stage 4: rebuilds each needed secret from t shares and checks it
 * against the site's advertised key or commitment (leaving out one bad
 * share when more than t arrived). Errors: FF_PRIVACY_ERR_ABORTED (a secret
 * with fewer than t shares), FF_PRIVACY_ERR_AUTH (a secret that matches its
 * key with no choice of shares), FF_PRIVACY_ERR_STATE, FF_PRIVACY_ERR_NOMEM.
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_close_unmasking(ff_secagg_server *srv, ff_privacy_error *err);

/*
 * Writes words offset..offset+n-1 of the unmasked sum (modulo 2^b) into out
 * (caller-owned). Errors: FF_PRIVACY_ERR_ARG (range), FF_PRIVACY_ERR_STATE
 * (unmasking not finished).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_server_result_chunk(const ff_secagg_server *srv, uint64_t offset,
                              uint32_t *out, size_t n, ff_privacy_error *err);

/* True when site's input is part of the sum (it is in U3). */
bool ff_secagg_server_in_sum(const ff_secagg_server *srv, uint32_t site);

/* How far a site got in the round, as the server saw it. */
typedef enum ff_secagg_progress {
    FF_SECAGG_ABSENT = 0,  /* never advertised keys */
    FF_SECAGG_ADVERTISED,  /* in U1: advertised, sent no shares */
    FF_SECAGG_SHARED,      /* in U2: shared keys, no complete masked input */
    FF_SECAGG_MASKED,      /* in U3: its input is in the sum */
    FF_SECAGG_ANSWERED     /* in U3 and answered the unmask request */
} ff_secagg_progress;

/* The stage site reached (for the caller's log of dropped sites);
 * FF_SECAGG_ABSENT for an out-of-range site. */
ff_secagg_progress ff_secagg_server_progress(const ff_secagg_server *srv,
                                             uint32_t site);

/* Number of inputs in the sum (|U3|; 0 before masking is closed). */
uint32_t ff_secagg_server_input_count(const ff_secagg_server *srv);

/* Largest number of bytes the server object held at once (its own
 * allocations, sum included). */
size_t ff_secagg_server_peak_bytes(const ff_secagg_server *srv);

/* ---------------------------------------------------------- quantising -- */

/*
 * Maps x[0..m-1] into integers: each value is clipped to [-clip, clip] and
 * scaled onto [0, max_value], q = (x + clip) * max_value / (2 clip), then
 * rounded to nearest (stochastic false) or up with probability frac(q)
 * (stochastic true, unbiased; bits from libsodium's CSPRNG). Per value the
 * error before clipping is at most clip/max_value (nearest) or less than
 * 2 clip/max_value (stochastic). Caller owns x and out. Errors:
 * FF_PRIVACY_ERR_ARG (clip not positive and finite, max_value 0, a NaN or
 * infinite x naming its index).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_quantize(const float *x, size_t m, float clip, uint32_t max_value,
                   bool stochastic, uint32_t *out, ff_privacy_error *err);

/*
 * Turns a sum of `inputs` quantised vectors back into the sum of the
 * (clipped) float vectors: out = sum * 2 clip / max_value - inputs * clip.
 * The error against the true sum of clipped values is at most
 * inputs * clip / max_value (nearest rounding) or below
 * inputs * 2 clip / max_value (stochastic), plus float rounding. Caller owns
 * both arrays. Errors: FF_PRIVACY_ERR_ARG (bad clip or max_value).
 */
FF_PRIVACY_MUST_USE ff_privacy_status
ff_secagg_dequantize_sum(const uint32_t *sum, size_t m, uint32_t inputs,
                         float clip, uint32_t max_value, float *out,
                         ff_privacy_error *err);

#endif
