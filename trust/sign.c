/*
 * sign.c - the coordinator's Ed25519 model signatures (libsodium): its
 * signing key file, the domain-separated message a signature covers, and
 * verification of a signature together with the artifact's digest.
 */
#include "ff_trust.h"
#include "trust_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#define MODEL_TAG "fedfuse-model-v1"
#define INT_TEXT_MAX 12      /* "-2147483648" and a NUL */

/* libsodium ready (idempotent, thread-safe). */
static ff_status
sodium_ready(ff_error *err)
{
    if (sodium_init() < 0)
        return ff_error_set(err, FF_ERR_INTERNAL, "libsodium failed to "
                            "initialise");
    return FF_OK;
}

/* Checks what a claim may hold before anything is built from it. */
static ff_status
claim_check(const ff_trust_model_claim *c, ff_error *err)
{
    size_t n;

    if (c == NULL || c->model == NULL || c->metadata_json == NULL)
        return ff_error_set(err, FF_ERR_ARG, "a model claim needs a model "
                            "name and a metadata text (may be \"\")");
    n = strlen(c->model);
    if (n == 0 || n > FF_TRUST_MODEL_MAX)
        return ff_error_set(err, FF_ERR_ARG, "model name of %zu bytes is "
                            "outside 1..%d", n, FF_TRUST_MODEL_MAX);
    if (c->version < 1 || c->parent < 0 || c->parent >= c->version)
        return ff_error_set(err, FF_ERR_ARG, "version %d with parent %d: "
                            "need version >= 1 and 0 <= parent < version",
                            c->version, c->parent);
    if (strlen(c->metadata_json) > FF_TRUST_META_MAX)
        return ff_error_set(err, FF_ERR_TOO_LARGE, "model metadata of %zu "
                            "bytes exceeds %d", strlen(c->metadata_json),
                            FF_TRUST_META_MAX);
    return FF_OK;
}

/* Appends a u32 little-endian length and the n bytes of p at *at. */
static void
field_put(uint8_t **at, const void *p, size_t n)
{
    uint32_t len = (uint32_t)n;

    for (int i = 0; i < 4; i++)
        (*at)[i] = (uint8_t)(len >> (8 * i));
    memcpy(*at + 4, p, n);
    *at += 4 + n;
}

ff_status
ff_trust_model_message(const ff_trust_model_claim *claim, uint8_t **out,
                       size_t *len, ff_error *err)
{
    char version[INT_TEXT_MAX], parent[INT_TEXT_MAX];
    size_t nmodel, nmeta, nversion, nparent, total;
    uint8_t *msg, *at;
    ff_status st;

    *out = NULL;
    *len = 0;
    st = claim_check(claim, err);
    if (st != FF_OK)
        return st;

    /* Field sizes: the numbers as decimal text. */
    nversion = (size_t)snprintf(version, sizeof(version), "%d",
                                claim->version);
    nparent = (size_t)snprintf(parent, sizeof(parent), "%d", claim->parent);
    nmodel = strlen(claim->model);
    nmeta = strlen(claim->metadata_json);
    total = strlen(MODEL_TAG) + 5 * 4 + nmodel + nversion + nparent + 32 +
            nmeta;

    /* Tag, then each field length-prefixed, in the order of docs/trust.md. */
    msg = malloc(total);
    if (msg == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "building the model message: "
                            "out of memory");
    memcpy(msg, MODEL_TAG, strlen(MODEL_TAG));
    at = msg + strlen(MODEL_TAG);
    field_put(&at, claim->model, nmodel);
    field_put(&at, version, nversion);
    field_put(&at, parent, nparent);
    field_put(&at, claim->digest, 32);
    field_put(&at, claim->metadata_json, nmeta);
    *out = msg;
    *len = total;
    return FF_OK;
}

ff_status
ff_trust_model_sign(const ff_trust_model_claim *claim,
                    const uint8_t sk[FF_TRUST_SIGN_SK],
                    uint8_t sig[FF_TRUST_SIG], ff_error *err)
{
    uint8_t *msg = NULL;
    size_t len = 0;
    ff_status st;

    if (sk == NULL || sig == NULL)
        return ff_error_set(err, FF_ERR_ARG, "signing needs a key and room "
                            "for the signature");
    st = sodium_ready(err);
    if (st == FF_OK)
        st = ff_trust_model_message(claim, &msg, &len, err);
    if (st == FF_OK && crypto_sign_detached(sig, NULL, msg, len, sk) != 0)
        st = ff_error_set(err, FF_ERR_INTERNAL, "Ed25519 signing failed");
    free(msg);
    return st;
}

ff_status
ff_trust_model_verify(const ff_trust_model_claim *claim,
                      const uint8_t *artifact, size_t len,
                      const uint8_t sig[FF_TRUST_SIG],
                      const uint8_t pk[FF_TRUST_SIGN_PK], ff_error *err)
{
    uint8_t digest[32];
    char got[65], want[65], key[2 * FF_TRUST_SIGN_PK + 1];
    uint8_t *msg = NULL;
    size_t mlen = 0;
    ff_status st;

    if (sig == NULL || pk == NULL || (artifact == NULL && len > 0))
        return ff_error_set(err, FF_ERR_ARG, "verifying needs a signature, "
                            "a key and the artifact");
    st = sodium_ready(err);
    if (st == FF_OK)
        st = ff_trust_model_message(claim, &msg, &mlen, err);
    if (st != FF_OK)
        return st;

    /* The claim first: is it the coordinator's? */
    if (crypto_sign_verify_detached(sig, msg, mlen, pk) != 0) {
        sodium_bin2hex(key, sizeof(key), pk, FF_TRUST_SIGN_PK);
        st = ff_error_set(err, FF_ERR_AUTH, "the signature over model %s "
                          "version %d does not verify with the coordinator "
                          "key %s", claim->model, claim->version, key);
        goto out;
    }

    /* Then the bytes: are they the ones it names? */
    crypto_generichash(digest, sizeof(digest), artifact, len, NULL, 0);
    if (sodium_memcmp(digest, claim->digest, sizeof(digest)) != 0) {
        sodium_bin2hex(got, sizeof(got), digest, sizeof(digest));
        sodium_bin2hex(want, sizeof(want), claim->digest, 32);
        st = ff_error_set(err, FF_ERR_DIGEST, "the artifact's digest %s is "
                          "not the signed one %s (model %s version %d, %zu "
                          "bytes)", got, want, claim->model, claim->version,
                          len);
    }

out:
    free(msg);
    return st;
}

/* Reads an existing key file: owner-only mode, 64 bytes (seed and public
 * half, libsodium's layout), the public half derived from the seed. */
static ff_status
sign_key_read(const char *path, uint8_t sk[FF_TRUST_SIGN_SK],
              uint8_t pk[FF_TRUST_SIGN_PK], ff_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    ff_status st;

    st = ff_trust_file_read_private(path, &buf, &len, err);
    if (st != FF_OK)
        return st;
    if (len != FF_TRUST_SIGN_SK) {
        st = ff_error_set(err, FF_ERR_FORMAT, "signing key file %s holds "
                          "%zu bytes, not %d", path, len, FF_TRUST_SIGN_SK);
        goto out;
    }
    crypto_sign_seed_keypair(pk, sk, (const uint8_t *)buf);
    if (sodium_memcmp(sk, buf, FF_TRUST_SIGN_SK) != 0) {
        st = ff_error_set(err, FF_ERR_FORMAT, "signing key file %s is "
                          "corrupt: its public half is not its seed's", path);
        sodium_memzero(sk, FF_TRUST_SIGN_SK);
    }

out:
    sodium_memzero(buf, len);
    free(buf);
    return st;
}

ff_status
ff_trust_sign_key_load(const char *path, uint8_t sk[FF_TRUST_SIGN_SK],
                       uint8_t pk[FF_TRUST_SIGN_PK], ff_error *err)
{
    struct stat sb;
    ff_status st;

    if (path == NULL || sk == NULL || pk == NULL)
        return ff_error_set(err, FF_ERR_ARG, "loading a signing key needs a "
                            "path and room for the keys");
    st = sodium_ready(err);
    if (st != FF_OK)
        return st;

    /* First use: a new key pair, written 0600 without overwriting. A
     * concurrent creator wins the race and we read its key instead. */
    if (lstat(path, &sb) != 0 && errno == ENOENT) {
        crypto_sign_keypair(pk, sk);
        st = ff_trust_file_create(path, sk, FF_TRUST_SIGN_SK, 0600, err);
        if (st != FF_ERR_STATE)
            goto out;
        if (err != NULL)
            memset(err, 0, sizeof(*err));
    }
    st = sign_key_read(path, sk, pk, err);

out:
    if (st != FF_OK) {
        sodium_memzero(sk, FF_TRUST_SIGN_SK);
        sodium_memzero(pk, FF_TRUST_SIGN_PK);
    }
    return st;
}

ff_status
ff_trust_sign_pk_from_hex(const char *hex, uint8_t pk[FF_TRUST_SIGN_PK],
                          ff_error *err)
{
    size_t n, bin = 0;
    const char *end = NULL;

    if (hex == NULL || pk == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no public key given");
    n = strlen(hex);
    while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r' ||
                     hex[n - 1] == ' '))
        n--;
    if (n != 2 * FF_TRUST_SIGN_PK ||
        sodium_hex2bin(pk, FF_TRUST_SIGN_PK, hex, n, NULL, &bin, &end) != 0 ||
        bin != FF_TRUST_SIGN_PK || end != hex + n)
        return ff_error_set(err, FF_ERR_FORMAT, "a public key is %d hex "
                            "digits; got \"%.*s\"", 2 * FF_TRUST_SIGN_PK,
                            (int)(n > 80 ? 80 : n), hex);
    return FF_OK;
}
