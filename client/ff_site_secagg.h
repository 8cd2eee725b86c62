/*
 * ff_site_secagg.h - the site's side of secure aggregation: its long-term
 * Ed25519 identity key file, and one round of the SecAgg+ stages driven
 * over the SecAgg and UploadUpdate calls (docs/secagg.md, "Wiring").
 *
 * Not thread-safe: one site, one thread.
 */
#ifndef FF_SITE_SECAGG_H
#define FF_SITE_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"
#include "../proto/ff_wire.h"
#include "ff_site_rpc.h"

/* Ed25519 key sizes (libsodium's crypto_sign form). */
#define FF_SITE_IDENTITY_PK 32
#define FF_SITE_IDENTITY_SK 64

/*
 * Reads the identity key file at path (64 bytes: the libsodium Ed25519
 * secret key, which holds the public key in its last 32), or, when it does
 * not exist, draws a new key and writes it there with mode 0600 (created
 * exclusively). Writes the public key into pk; when sk is not NULL also the
 * secret key, which the caller wipes (sodium_memzero) after use.
 * Errors: FF_ERR_IO (unreadable, unwritable, readable by others),
 * FF_ERR_FORMAT (wrong length or a public key that does not match).
 */
FF_MUST_USE ff_status ff_site_identity_load(const char *path, uint8_t *pk,
                                            uint8_t *sk, ff_error *err);

/* What one secure aggregation round needs; all pointers borrowed. */
typedef struct ff_site_secagg_round {
    ff_site_rpc *rpc;
    const char *site_id;
    int round;
    const char *identity_path;
    const ff_wire_secagg_task *task;
    uint32_t *words;               /* task->length quantised words; masked
                                      in place */
    const ff_wire_update_header *header; /* sent with masked = 1 */
    int wrap;                      /* 1: words are residues mod 2^bits
                                      (site-level DDGauss); the sum wraps
                                      (ff_secagg_config.wrap) */
    double rpc_timeout;            /* one call */
    double transfer_timeout;       /* the masked upload */
    double stage_timeout;          /* waiting for one stage's message */
} ff_site_secagg_round;

/*
 * Runs the four stages for this site: advertise keys, fetch the signed key
 * list and send sealed shares, fetch the shares addressed to it, mask and
 * stream its vector, then answer the unmask request. The secret identity
 * key is read for the round and wiped at once. A coordinator answer
 * ABORTED, a refused message or a stage that does not open within
 * stage_timeout ends the round for this site with FF_ERR_STATE or
 * FF_ERR_REJECTED and the reason. FF_ERR_RPC only for transport failures
 * that outlast stage_timeout.
 *
 * Test hook (tests only): the environment variable FEDFUSE_TEST_STOP_AT
 * set to advert, share, mask, midmask (half of the masked vector sent) or
 * unmask makes the process SIGKILL itself at that point.
 */
FF_MUST_USE ff_status ff_site_secagg_run(const ff_site_secagg_round *r,
                                         ff_error *err);

#endif
