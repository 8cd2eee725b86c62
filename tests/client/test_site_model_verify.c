/*
 * Tests for the site's check of a downloaded model (client/rpc.c,
 * ff_site_model_verify): a model signed by the pinned coordinator key
 * verifies; any change to what the signature covers (artifact bytes with
 * or without a matching digest, version, parent, model name, metadata),
 * a changed signature, another signer, or no signature at all is refused
 * with FF_ERR_AUTH and a message that names the version, the pinned key
 * and what the site will not do. The initial model (version 0) is signed
 * under the pseudo-model NAME/initial (proto/ff_wire.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../client/ff_site_rpc.h"
#include "../../trust/ff_trust.h"

#define ART_LEN 4096

static uint8_t sk[FF_TRUST_SIGN_SK], pk[FF_TRUST_SIGN_PK];
static uint8_t sk2[FF_TRUST_SIGN_SK], pk2[FF_TRUST_SIGN_PK];

/* A model as the coordinator serves it: version, parent, metadata, an
 * artifact of ART_LEN pseudo-random bytes, signed with key. */
static void model_make(ff_site_model *m, int version, int parent,
                       const uint8_t *key, const uint8_t *key_pk)
{
    char initial[80];
    ff_trust_model_claim c;
    ff_error err = {0};
    size_t i;

    memset(m, 0, sizeof *m);
    m->artifact = malloc(ART_LEN);
    assert_non_null(m->artifact);
    for (i = 0; i < ART_LEN; i++)
        m->artifact[i] = (uint8_t)(i * 131u + 7u);
    m->len = ART_LEN;
    m->version = version;
    m->parent = parent;
    strcpy(m->model, "feddigits");
    m->metadata = strdup("{\"round\":4,\"sites\":[\"site-1\"]}");
    assert_non_null(m->metadata);
    crypto_generichash(m->digest, sizeof m->digest, m->artifact, m->len,
                       NULL, 0);
    memset(&c, 0, sizeof c);
    c.model = m->model;
    c.version = version;
    c.parent = parent;
    if (version == 0) {
        snprintf(initial, sizeof initial, "%s%s", m->model,
                 FF_WIRE_INITIAL_SUFFIX);
        c.model = initial;
        c.version = 1;
    }
    memcpy(c.digest, m->digest, sizeof c.digest);
    c.metadata_json = m->metadata;
    assert_int_equal(ff_trust_model_sign(&c, key, m->signature, &err), FF_OK);
    memcpy(m->signer_key, key_pk, sizeof m->signer_key);
    m->is_signed = 1;
}

/* Expects m to be refused, with the pinned key's prefix and "not
 * training" in the message. */
static void refused(const ff_site_model *m, const char *what)
{
    ff_error err = {0};
    char hex[65];

    assert_int_equal(ff_site_model_verify(m, pk, "not training", &err),
                     FF_ERR_AUTH);
    sodium_bin2hex(hex, sizeof hex, pk, 32);
    hex[16] = '\0';
    printf("%-22s %s\n", what, err.msg);
    assert_non_null(strstr(err.msg, "refusing model version"));
    assert_non_null(strstr(err.msg, hex));
    assert_non_null(strstr(err.msg, "not training"));
}

static int keys_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    return 0;
}

static void good_model_verifies(void **state)
{
    ff_site_model m;
    ff_error err = {0};

    (void)state;
    model_make(&m, 4, 3, sk, pk);
    assert_int_equal(ff_site_model_verify(&m, pk, "not training", &err),
                     FF_OK);
    ff_site_model_cleanup(&m);
    model_make(&m, 0, 0, sk, pk);       /* the initial model */
    assert_int_equal(ff_site_model_verify(&m, pk, "not training", &err),
                     FF_OK);
    ff_site_model_cleanup(&m);
    ff_site_model_cleanup(&m);          /* harmless twice */
}

static void tampering_is_refused(void **state)
{
    ff_site_model m;
    uint8_t *byte;

    (void)state;
    model_make(&m, 4, 3, sk, pk);
    byte = &m.artifact[ART_LEN / 2];

    /* Bytes changed, digest as signed: the digest check. */
    *byte ^= 1;
    refused(&m, "artifact:");
    /* Bytes changed with the digest recomputed: the signature. */
    crypto_generichash(m.digest, sizeof m.digest, m.artifact, m.len, NULL,
                       0);
    refused(&m, "artifact + digest:");
    *byte ^= 1;
    crypto_generichash(m.digest, sizeof m.digest, m.artifact, m.len, NULL,
                       0);

    m.version = 5;
    refused(&m, "version:");
    m.version = 4;
    m.parent = 2;
    refused(&m, "parent:");
    m.parent = 3;
    m.model[0] = 'F';
    refused(&m, "model name:");
    m.model[0] = 'f';
    m.metadata[2] = 'R';
    refused(&m, "metadata:");
    m.metadata[2] = 'r';
    m.signature[10] ^= 0x80;
    refused(&m, "signature:");
    m.signature[10] ^= 0x80;
    m.is_signed = 0;
    refused(&m, "unsigned:");
    ff_site_model_cleanup(&m);

    /* Version 0 signed as a real version 1 does not pass for the initial
     * model, nor the reverse. */
    model_make(&m, 1, 0, sk, pk);
    m.version = 0;
    refused(&m, "v1 as initial:");
    ff_site_model_cleanup(&m);
}

static void another_signer_is_refused(void **state)
{
    ff_site_model m;
    ff_error err = {0};

    (void)state;
    model_make(&m, 4, 3, sk2, pk2);     /* valid, but not the pinned key */
    refused(&m, "another signer:");
    assert_int_equal(ff_site_model_verify(&m, pk2, "x", &err), FF_OK);
    memcpy(m.signer_key, pk, sizeof m.signer_key);  /* claims the pin */
    refused(&m, "claims the pinned key:");
    ff_site_model_cleanup(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_model_verifies),
        cmocka_unit_test(tampering_is_refused),
        cmocka_unit_test(another_signer_is_refused),
    };

    return cmocka_run_group_tests(tests, keys_setup, NULL);
}
