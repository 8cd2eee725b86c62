/*
 * ff_trust.h - the consortium's trust material: its certificate authority,
 * the certificates of sites, operators, auditors and the coordinator, and
 * the Ed25519 signatures over published models.
 *
 * Certificates go through OpenSSL's libcrypto (no hand-written ASN.1):
 * ECDSA P-256 keys, X.509 v3 certificates whose subject CN is the holder's
 * id (a site id, an operator name, "coordinator") and whose OU is its role.
 * Model signatures use libsodium's Ed25519 over a domain-separated message
 * (ff_trust_model_message). Depends on libcrypto, libsodium, common/ and the
 * C library; knows nothing of gRPC or PostgreSQL. Files holding private keys
 * are created with mode 0600 and never overwritten. Thread-safe unless noted.
 */
#ifndef FF_TRUST_H
#define FF_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "../common/ff_status.h"

#define FF_TRUST_PEM_MAX (64 * 1024)  /* largest PEM file read */
#define FF_TRUST_ID_MAX 64            /* longest CN (as FF_WIRE_ID_MAX) */
#define FF_TRUST_SERIAL_HEX 32        /* 128-bit serials, lowercase hex */
#define FF_TRUST_FPR_HEX 64           /* SHA-256 fingerprint, lowercase hex */
#define FF_TRUST_DAYS_MAX 3650

/* Roles, carried as the certificate's OU. */
typedef enum ff_trust_role {
    FF_TRUST_ROLE_NONE = 0,
    FF_TRUST_ROLE_SITE,        /* "site": takes part in rounds */
    FF_TRUST_ROLE_OPERATOR,    /* "operator": may change the registry */
    FF_TRUST_ROLE_AUDITOR,     /* "auditor": read-only */
    FF_TRUST_ROLE_COORDINATOR  /* "coordinator": the server */
} ff_trust_role;

/* What a verified certificate says. */
typedef struct ff_trust_cert_info {
    char id[FF_TRUST_ID_MAX + 1];            /* subject CN */
    ff_trust_role role;                      /* subject OU */
    char serial[FF_TRUST_SERIAL_HEX + 1];
    char fingerprint[FF_TRUST_FPR_HEX + 1];  /* SHA-256 of the DER */
    int64_t not_before, not_after;           /* Unix seconds */
} ff_trust_cert_info;

/* "site", "operator", ... for a role; "none" for anything else. */
const char *ff_trust_role_name(ff_trust_role role);

/* The role named s, or FF_TRUST_ROLE_NONE. */
ff_trust_role ff_trust_role_parse(const char *s);

/*
 * Creates the consortium's CA in dir (created 0700 if missing): a new P-256
 * key in dir/ca.key (0600) and a self-signed certificate dir/ca.crt (0644)
 * with CN name (1..FF_TRUST_ID_MAX printable ASCII), valid for days
 * (1..FF_TRUST_DAYS_MAX). Errors: FF_ERR_ARG (bad name or days),
 * FF_ERR_STATE (dir already holds ca.key or ca.crt: never overwritten),
 * FF_ERR_IO, FF_ERR_INTERNAL.
 */
FF_MUST_USE ff_status ff_trust_ca_create(const char *dir, const char *name,
                                         int days, ff_error *err);

/*
 * Makes a holder's key pair and certificate signing request locally: a new
 * P-256 key written to key_path (0600, must not exist) and a CSR with
 * subject CN id (an id as ff_wire_id_valid) and OU the role's name written
 * to csr_path (0644, must not exist either). The private key never leaves
 * this machine. On error neither file is left behind. Errors: FF_ERR_ARG,
 * FF_ERR_STATE (key_path or csr_path exists), FF_ERR_IO, FF_ERR_INTERNAL.
 */
FF_MUST_USE ff_status ff_trust_csr_create(const char *key_path,
                                          const char *csr_path,
                                          const char *id, ff_trust_role role,
                                          ff_error *err);

/*
 * The CA in ca_dir (ca.key, ca.crt) signs the CSR in csr_path (its
 * self-signature checked, its key P-256, its CN a valid id, its OU the role
 * it asks for, which must equal role) and writes the certificate to
 * cert_path (0644, must not exist): subject CN=id, OU=role rebuilt (nothing
 * else of the CSR is copied), random serial (FF_TRUST_SERIAL_HEX digits),
 * valid for days, clientAuth; the coordinator role also gets serverAuth
 * and a subjectAltName for each of the comma-separated `hosts` (IPv4/IPv6
 * addresses as IP entries, others as DNS names; required for the
 * coordinator, NULL or "" for every other role). *info (may be NULL)
 * describes the new certificate. docs/trust.md has the full profile.
 * Errors: FF_ERR_ARG (days, hosts, or the CSR asks for another role: "the
 * request for alice asks for role operator, not site"), FF_ERR_FORMAT (not
 * a CSR, bad self-signature, not P-256, no valid CN or role; the CA key
 * does not match ca.crt or is group/other-accessible), FF_ERR_STATE
 * (cert_path exists), FF_ERR_IO, FF_ERR_INTERNAL.
 */
FF_MUST_USE ff_status ff_trust_csr_sign(const char *ca_dir,
                                        const char *csr_path,
                                        ff_trust_role role, int days,
                                        const char *hosts,
                                        const char *cert_path,
                                        ff_trust_cert_info *info,
                                        ff_error *err);

/*
 * Verifies cert_pem (cert_len bytes) against the CA certificate ca_pem:
 * not a CA certificate itself, chain, signature, validity period now, one
 * CN that is a valid id and one OU naming a role; fills *info (may be
 * NULL). Does not check revocation (the registry does) nor which id or
 * role the caller expects (compare info->id and info->role). Errors:
 * FF_ERR_FORMAT (either is not a PEM certificate or is over
 * FF_TRUST_PEM_MAX), FF_ERR_AUTH with a message naming the holder and the
 * reason ("certificate for site-1 not issued by the consortium CA: ...",
 * "certificate for site-3 expired at 2026-...Z", "... is not yet valid
 * ...", "... has no known role ..."), FF_ERR_INTERNAL.
 */
FF_MUST_USE ff_status ff_trust_cert_verify(const char *ca_pem, size_t ca_len,
                                           const char *cert_pem,
                                           size_t cert_len,
                                           ff_trust_cert_info *info,
                                           ff_error *err);

/*
 * Checks that the private key in key_path matches the certificate cert_pem
 * (the holder can prove possession: used by fedfusectl before it acts as an
 * operator). Does not verify the certificate (ff_trust_cert_verify does).
 * Errors: FF_ERR_ARG, FF_ERR_IO, FF_ERR_FORMAT (not a certificate, not an
 * unencrypted PEM key, or a key file group or others may access),
 * FF_ERR_AUTH (mismatch).
 */
FF_MUST_USE ff_status ff_trust_key_matches(const char *key_path,
                                           const char *cert_pem,
                                           size_t cert_len, ff_error *err);

/*
 * Reads a whole PEM (or key) file of at most FF_TRUST_PEM_MAX bytes into a
 * NUL-terminated malloc'd buffer (*out, caller frees; *len without the
 * NUL). Regular files only. Errors: FF_ERR_IO, FF_ERR_TOO_LARGE.
 */
FF_MUST_USE ff_status ff_trust_file_read(const char *path, char **out,
                                         size_t *len, ff_error *err);

/* ---- model signatures (Ed25519, libsodium) ---- */

#define FF_TRUST_SIGN_PK 32
#define FF_TRUST_SIGN_SK 64
#define FF_TRUST_SIG 64
#define FF_TRUST_MODEL_MAX 200            /* as FF_REGISTRY_MAX_NAME */
#define FF_TRUST_META_MAX (1024 * 1024)   /* as FF_REGISTRY_MAX_METADATA */

/*
 * Loads the coordinator's signing key from path, creating it (0600, never
 * overwriting; two processes racing both end up with the one key) on first
 * use. The file holds 64 raw bytes: the 32-byte seed, then the public key
 * (libsodium's secret-key layout); the public half is re-derived and
 * checked. pk receives the public half. Errors: FF_ERR_ARG, FF_ERR_IO,
 * FF_ERR_FORMAT (wrong size, corrupt, or a mode that lets group or others
 * access it: refused). sk is secret: wipe it with sodium_memzero when done
 * (both are wiped on error).
 */
FF_MUST_USE ff_status ff_trust_sign_key_load(const char *path,
                                             uint8_t sk[FF_TRUST_SIGN_SK],
                                             uint8_t pk[FF_TRUST_SIGN_PK],
                                             ff_error *err);

/* Parses a public key written as 64 hex digits (as in signing_key.pub and
 * the sites' coordinator_key; trailing newline or spaces ignored). Errors:
 * FF_ERR_ARG, FF_ERR_FORMAT. */
FF_MUST_USE ff_status ff_trust_sign_pk_from_hex(const char *hex,
                                                uint8_t pk[FF_TRUST_SIGN_PK],
                                                ff_error *err);

/* What a model signature covers. metadata_json is a compact JSON text
 * (lineage: round, parent, contributing sites, parameters); it may be "". */
typedef struct ff_trust_model_claim {
    const char *model;
    int version;
    int parent;
    uint8_t digest[32];          /* BLAKE2b-256 of the artifact */
    const char *metadata_json;
} ff_trust_model_claim;

/*
 * Builds the exact bytes a model signature covers into *out (malloc'd,
 * caller frees; *len its length): the 16 ASCII bytes "fedfuse-model-v1"
 * (no length, no NUL), then five fields, each a u32 little-endian length
 * followed by its bytes: model, version as decimal text, parent as decimal
 * text, the 32 digest bytes, metadata_json. docs/trust.md has a worked
 * example. Errors: FF_ERR_ARG (NULL model or metadata, model not 1..
 * FF_TRUST_MODEL_MAX bytes, version < 1, parent not in 0..version-1),
 * FF_ERR_TOO_LARGE (metadata over FF_TRUST_META_MAX), FF_ERR_NOMEM.
 */
FF_MUST_USE ff_status ff_trust_model_message(const ff_trust_model_claim *claim,
                                             uint8_t **out, size_t *len,
                                             ff_error *err);

/* Signs claim with sk into sig: Ed25519 (crypto_sign_detached) over
 * ff_trust_model_message's bytes. Errors: as ff_trust_model_message,
 * FF_ERR_INTERNAL. */
FF_MUST_USE ff_status ff_trust_model_sign(const ff_trust_model_claim *claim,
                                          const uint8_t sk[FF_TRUST_SIGN_SK],
                                          uint8_t sig[FF_TRUST_SIG],
                                          ff_error *err);

/*
 * Verifies that sig is pk's signature over claim AND that artifact (len
 * bytes; NULL when len is 0) hashes to claim->digest (BLAKE2b-256,
 * compared in constant time). The signature is checked first. Errors:
 * FF_ERR_AUTH ("the signature over model M version V does not verify with
 * the coordinator key HEX"), FF_ERR_DIGEST ("the artifact's digest HEX is
 * not the signed one HEX ..."), FF_ERR_ARG, FF_ERR_TOO_LARGE.
 */
FF_MUST_USE ff_status ff_trust_model_verify(const ff_trust_model_claim *claim,
                                            const uint8_t *artifact,
                                            size_t len,
                                            const uint8_t sig[FF_TRUST_SIG],
                                            const uint8_t pk[FF_TRUST_SIGN_PK],
                                            ff_error *err);

#endif
