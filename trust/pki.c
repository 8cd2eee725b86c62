/*
 * pki.c - the consortium's certificate authority through OpenSSL libcrypto:
 * P-256 keys, certificate signing requests, issuing and verifying X.509 v3
 * certificates whose subject is CN=<holder id>, OU=<role>. The profile is
 * written down in docs/trust.md; keep the two in step.
 */
#include "ff_trust.h"
#include "trust_file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sodium.h>

#define CA_KEY_FILE "ca.key"
#define CA_CERT_FILE "ca.crt"
#define CLOCK_SKEW_S 300      /* certificates start this much in the past */
#define SERIAL_BYTES 16
#define HOST_MAX 253          /* longest DNS name in a subjectAltName */

static const char *const role_names[] = {
    [FF_TRUST_ROLE_NONE] = "none",
    [FF_TRUST_ROLE_SITE] = "site",
    [FF_TRUST_ROLE_OPERATOR] = "operator",
    [FF_TRUST_ROLE_AUDITOR] = "auditor",
    [FF_TRUST_ROLE_COORDINATOR] = "coordinator",
};
#define ROLE_COUNT ((int)(sizeof(role_names) / sizeof(role_names[0])))

const char *
ff_trust_role_name(ff_trust_role role)
{
    if ((int)role <= FF_TRUST_ROLE_NONE || (int)role >= ROLE_COUNT)
        return "none";
    return role_names[role];
}

ff_trust_role
ff_trust_role_parse(const char *s)
{
    if (s == NULL)
        return FF_TRUST_ROLE_NONE;
    for (int r = FF_TRUST_ROLE_NONE + 1; r < ROLE_COUNT; r++)
        if (strcmp(s, role_names[r]) == 0)
            return (ff_trust_role)r;
    return FF_TRUST_ROLE_NONE;
}

/* ---- small helpers ---- */

/* Records status s with "<what>: <OpenSSL's first queued error>", what
 * given printf-style, and empties OpenSSL's (thread-local) error queue. */
static ff_status FF_PRINTF(3, 4)
ossl_fail(ff_error *err, ff_status s, const char *fmt, ...)
{
    char what[384], detail[256] = "no detail from OpenSSL";
    unsigned long e = ERR_get_error();
    va_list ap;

    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return ff_error_set(err, s, "%s: %s", what, detail);
}

/* 1 when s is a holder id: 1..FF_TRUST_ID_MAX bytes of [A-Za-z0-9._-], the
 * rule of ff_wire_id_valid (proto/ff_wire.h), which trust/ may not use. */
static int
id_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok || n >= FF_TRUST_ID_MAX)
            return 0;
    }
    return n > 0;
}

/* 1 when s is a CA name: 1..FF_TRUST_ID_MAX printable ASCII bytes. */
static int
ca_name_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++)
        if (s[n] < 0x20 || s[n] > 0x7e || n >= FF_TRUST_ID_MAX)
            return 0;
    return n > 0;
}

/* 1 when path names something (a file, a link, a folder). */
static int
path_exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* A passphrase callback that refuses: OpenSSL must never prompt on a
 * terminal for an encrypted key. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Unix seconds of an ASN1_TIME; -1 when it cannot be read. */
static int64_t
asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    return (int64_t)timegm(&tm);
}

/* An ASN1_TIME as "2026-01-31T12:00:00Z" for messages. */
static void
asn1_time_text(const ASN1_TIME *t, char out[32])
{
    time_t secs = (time_t)asn1_time_unix(t);
    struct tm tm;

    if (secs < 0 || gmtime_r(&secs, &tm) == NULL ||
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%s", "an unreadable time");
}

/* ---- names ---- */

/* Builds CN=cn[, OU=ou] into name. 1 on success. */
static int
name_build(X509_NAME *name, const char *cn, const char *ou)
{
    if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        return 0;
    if (ou != NULL &&
        X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName,
                                   MBSTRING_UTF8, (const unsigned char *)ou,
                                   -1, -1, 0) != 1)
        return 0;
    return 1;
}

/* Copies the one entry nid of name into out (cap bytes with the NUL).
 * 0 on success; -1 when there is none; -2 when there are several, it is
 * too long or it holds a NUL. */
static int
name_get(const X509_NAME *name, int nid, char *out, size_t cap)
{
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    unsigned char *utf8 = NULL;
    int n, rc = 0;

    out[0] = '\0';
    if (i < 0)
        return -1;
    if (X509_NAME_get_index_by_NID(name, nid, i) >= 0)
        return -2;
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
                                       X509_NAME_get_entry(name, i)));
    if (n < 0 || (size_t)n >= cap || memchr(utf8, '\0', (size_t)n) != NULL) {
        rc = -2;
    } else {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return rc;
}

/* The certificate's CN when it is a valid id, else a placeholder: safe to
 * put in a log line whatever the certificate holds. */
static void
cert_cn_for_message(X509 *x, char *out, size_t cap)
{
    if (name_get(X509_get_subject_name(x), NID_commonName, out, cap) != 0 ||
        !id_valid(out))
        snprintf(out, cap, "%s", "(no valid CN)");
}

/* ---- PEM in and out ---- */

/* Parses the first PEM certificate of pem (len bytes). */
static ff_status
cert_parse(const char *pem, size_t len, const char *what, X509 **out,
           ff_error *err)
{
    BIO *bio;

    *out = NULL;
    if (pem == NULL || len == 0)
        return ff_error_set(err, FF_ERR_FORMAT, "%s is empty", what);
    if (len > FF_TRUST_PEM_MAX)
        return ff_error_set(err, FF_ERR_FORMAT, "%s is %zu bytes, more than "
                            "the %d a certificate may be", what, len,
                            FF_TRUST_PEM_MAX);
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "reading a certificate");
    *out = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (*out == NULL)
        return ossl_fail(err, FF_ERR_FORMAT, "%s is not a PEM certificate",
                         what);
    return FF_OK;
}

/* Reads the PEM certificate file path. */
static ff_status
cert_load(const char *path, X509 **out, ff_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    ff_status st;

    *out = NULL;
    st = ff_trust_file_read(path, &pem, &len, err);
    if (st == FF_OK)
        st = cert_parse(pem, len, path, out, err);
    free(pem);
    return st;
}

/* Reads the private key file path (owner-only mode required). */
static ff_status
key_load(const char *path, EVP_PKEY **out, ff_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    ff_status st;

    *out = NULL;
    st = ff_trust_file_read_private(path, &pem, &len, err);
    if (st != FF_OK)
        return st;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        st = ossl_fail(err, FF_ERR_INTERNAL, "reading a private key");
        goto out;
    }
    *out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (*out == NULL)
        st = ossl_fail(err, FF_ERR_FORMAT, "%s holds no unencrypted PEM "
                       "private key", path);

out:
    BIO_free(bio);
    sodium_memzero(pem, len);
    free(pem);
    return st;
}

/* Creates path (never overwriting) with what a PEM writer puts into a
 * memory BIO; private material goes through OpenSSL's clearing secmem
 * BIO and is written 0600. */
typedef enum pem_kind { PEM_KEY, PEM_CSR, PEM_CERT } pem_kind;

static ff_status
pem_write(const char *path, pem_kind kind, void *obj, ff_error *err)
{
    BIO *bio = BIO_new(kind == PEM_KEY ? BIO_s_secmem() : BIO_s_mem());
    char *data = NULL;
    long n;
    int ok = 0;
    ff_status st;

    if (bio == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "encoding PEM");
    if (kind == PEM_KEY)
        ok = PEM_write_bio_PrivateKey(bio, obj, NULL, NULL, 0, NULL, NULL);
    else if (kind == PEM_CSR)
        ok = PEM_write_bio_X509_REQ(bio, obj);
    else
        ok = PEM_write_bio_X509(bio, obj);
    n = BIO_get_mem_data(bio, &data);
    if (ok != 1 || n <= 0)
        st = ossl_fail(err, FF_ERR_INTERNAL, "encoding PEM");
    else
        st = ff_trust_file_create(path, data, (size_t)n,
                                  kind == PEM_KEY ? 0600 : 0644, err);
    BIO_free(bio);
    return st;
}

/* ---- building certificates ---- */

/* A new P-256 key. */
static ff_status
key_new(EVP_PKEY **out, ff_error *err)
{
    *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (*out == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "making a P-256 key");
    return FF_OK;
}

/* A random positive 128-bit serial with its top bit set, so that its hex
 * form is always FF_TRUST_SERIAL_HEX digits. 1 on success. */
static int
serial_set(X509 *x)
{
    unsigned char raw[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    int ok = 0;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return 0;
    raw[0] |= 0x80;
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    ok = bn != NULL &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

/* Version 3, a serial, the validity window (CLOCK_SKEW_S back from now,
 * days forward), the subject's key. 1 on success. */
static int
cert_frame(X509 *x, EVP_PKEY *subject_key, int days)
{
    return X509_set_version(x, X509_VERSION_3) == 1 && serial_set(x) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -CLOCK_SKEW_S) != NULL &&
           X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) != NULL &&
           X509_set_pubkey(x, subject_key) == 1;
}

/* Adds extension nid with its configuration text value. 1 on success. */
static int
ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = e != NULL && X509_add_ext(x, e, -1) == 1;

    X509_EXTENSION_free(e);
    return ok;
}

/* One subjectAltName entry: an IP address when host parses as IPv4 or
 * IPv6, else a DNS name of [A-Za-z0-9.-]. NULL when host is neither. */
static GENERAL_NAME *
san_entry(const char *host)
{
    unsigned char ip[16];
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = NULL;
    size_t n = strlen(host);
    int type;

    if (gn == NULL)
        return NULL;
    if (inet_pton(AF_INET, host, ip) == 1) {
        type = GEN_IPADD;
        s = ASN1_OCTET_STRING_new();
        if (s != NULL && ASN1_OCTET_STRING_set(s, ip, 4) != 1)
            goto fail;
    } else if (inet_pton(AF_INET6, host, ip) == 1) {
        type = GEN_IPADD;
        s = ASN1_OCTET_STRING_new();
        if (s != NULL && ASN1_OCTET_STRING_set(s, ip, 16) != 1)
            goto fail;
    } else {
        if (n == 0 || n > HOST_MAX || host[0] == '.' || host[0] == '-' ||
            host[n - 1] == '.' || strstr(host, "..") != NULL ||
            strspn(host, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)
            goto fail;
        type = GEN_DNS;
        s = ASN1_IA5STRING_new();
        if (s != NULL && ASN1_STRING_set(s, host, (int)n) != 1)
            goto fail;
    }
    if (s == NULL)
        goto fail;
    GENERAL_NAME_set0_value(gn, type, s);
    return gn;

fail:
    ASN1_STRING_free(s);
    GENERAL_NAME_free(gn);
    return NULL;
}

/* Adds a subjectAltName with each of the comma-separated hosts (spaces
 * around a name are ignored). FF_ERR_ARG names a host that is neither an
 * IP address nor a DNS name. */
static ff_status
san_add(X509 *x, const char *hosts, ff_error *err)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    const char *p = hosts;
    ff_status st = FF_OK;

    if (gens == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "building subjectAltName");

    /* One entry per comma-separated host. */
    while (st == FF_OK) {
        char host[HOST_MAX + 2];
        size_t n;
        GENERAL_NAME *gn;

        p += strspn(p, " ");
        n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0 || n > HOST_MAX) {
            st = ff_error_set(err, FF_ERR_ARG, "hosts \"%s\": an empty or "
                              "over-long host name", hosts);
            break;
        }
        memcpy(host, p, n);
        host[n] = '\0';
        gn = san_entry(host);
        if (gn == NULL) {
            st = ff_error_set(err, FF_ERR_ARG, "host \"%s\" is neither an IP "
                              "address nor a DNS name", host);
            break;
        }
        if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
            GENERAL_NAME_free(gn);
            st = ossl_fail(err, FF_ERR_INTERNAL, "building subjectAltName");
            break;
        }
        p += strcspn(p, ",");
        if (*p == '\0')
            break;
        p++;
    }

    /* The extension itself. */
    if (st == FF_OK &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
                          X509V3_ADD_DEFAULT) != 1)
        st = ossl_fail(err, FF_ERR_INTERNAL, "adding subjectAltName");
    GENERAL_NAMES_free(gens);
    return st;
}

/* ---- reading a certificate ---- */

/* Lowercase hex of the serial, exactly FF_TRUST_SERIAL_HEX digits. */
static ff_status
serial_hex(X509 *x, char out[FF_TRUST_SERIAL_HEX + 1], ff_error *err)
{
    unsigned char raw[SERIAL_BYTES];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    ff_status st = FF_OK;

    if (bn == NULL)
        return ossl_fail(err, FF_ERR_FORMAT, "reading the serial");
    if (BN_is_negative(bn) || BN_bn2binpad(bn, raw, sizeof(raw)) < 0)
        st = ff_error_set(err, FF_ERR_FORMAT, "the certificate's serial is "
                          "negative or longer than 128 bits");
    else
        sodium_bin2hex(out, FF_TRUST_SERIAL_HEX + 1, raw, sizeof(raw));
    BN_free(bn);
    return st;
}

/* Fills *info from x: CN (a valid id), OU (a known role: otherwise
 * FF_ERR_AUTH, or FF_ERR_FORMAT when role_status says so), serial, SHA-256
 * fingerprint of the DER and the validity window. */
static ff_status
cert_info_fill(X509 *x, ff_status role_status, ff_trust_cert_info *info,
               ff_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char ou[FF_TRUST_ID_MAX + 1];
    const X509_NAME *subj = X509_get_subject_name(x);
    ff_status st;

    memset(info, 0, sizeof(*info));

    /* Who and which role. */
    if (name_get(subj, NID_commonName, info->id, sizeof(info->id)) != 0 ||
        !id_valid(info->id))
        return ff_error_set(err, role_status, "the certificate's subject has "
                            "no single CN that is a valid id");
    if (name_get(subj, NID_organizationalUnitName, ou, sizeof(ou)) != 0)
        return ff_error_set(err, role_status, "the certificate for %s has no "
                            "single OU naming its role", info->id);
    info->role = ff_trust_role_parse(ou);
    if (info->role == FF_TRUST_ROLE_NONE)
        return ff_error_set(err, role_status, "the certificate for %s has no "
                            "known role (OU is not site, operator, auditor "
                            "or coordinator)", info->id);

    /* Serial, fingerprint, validity. */
    st = serial_hex(x, info->serial, err);
    if (st != FF_OK)
        return st;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return ossl_fail(err, FF_ERR_INTERNAL, "fingerprinting");
    sodium_bin2hex(info->fingerprint, sizeof(info->fingerprint), md, mdlen);
    info->not_before = asn1_time_unix(X509_get0_notBefore(x));
    info->not_after = asn1_time_unix(X509_get0_notAfter(x));
    if (info->not_before < 0 || info->not_after < 0)
        return ff_error_set(err, FF_ERR_FORMAT, "the certificate for %s has "
                            "an unreadable validity period", info->id);
    return FF_OK;
}

/* ---- the CA ---- */

/* Self-signs the CA certificate for key: CN name, CA:TRUE with pathlen 0,
 * keyCertSign and cRLSign. */
static ff_status
ca_cert_build(EVP_PKEY *key, const char *name, int days, X509 **out,
              ff_error *err)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    int ok;

    *out = NULL;
    if (x == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "making the CA certificate");
    memset(&ctx, 0, sizeof(ctx));
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ok = cert_frame(x, key, days) &&
         name_build(X509_get_subject_name(x), name, NULL) &&
         X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 &&
         ext_add(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,"
                 "pathlen:0") &&
         ext_add(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         ext_add(x, &ctx, NID_subject_key_identifier, "hash") &&
         ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always") &&
         X509_sign(x, key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return ossl_fail(err, FF_ERR_INTERNAL, "making the CA certificate");
    }
    *out = x;
    return FF_OK;
}

/* Creates dir 0700 unless it is already a folder. */
static ff_status
dir_ensure(const char *dir, ff_error *err)
{
    struct stat sb;

    if (mkdir(dir, 0700) == 0)
        return FF_OK;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return FF_OK;
    return ff_error_set(err, FF_ERR_IO, "creating folder %s: %s", dir,
                        errno == EEXIST ? "not a folder" : strerror(errno));
}

ff_status
ff_trust_ca_create(const char *dir, const char *name, int days,
                   ff_error *err)
{
    char key_path[PATH_MAX], cert_path[PATH_MAX];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    ff_status st;

    /* Arguments, the folder, and no CA there already. */
    if (dir == NULL || !ca_name_valid(name))
        return ff_error_set(err, FF_ERR_ARG, "a CA needs a folder and a name "
                            "of 1..%d printable characters", FF_TRUST_ID_MAX);
    if (days < 1 || days > FF_TRUST_DAYS_MAX)
        return ff_error_set(err, FF_ERR_ARG, "CA validity of %d days is "
                            "outside 1..%d", days, FF_TRUST_DAYS_MAX);
    if (snprintf(key_path, sizeof(key_path), "%s/" CA_KEY_FILE, dir) >=
            (int)sizeof(key_path) ||
        snprintf(cert_path, sizeof(cert_path), "%s/" CA_CERT_FILE, dir) >=
            (int)sizeof(cert_path))
        return ff_error_set(err, FF_ERR_ARG, "CA folder path too long");
    ERR_clear_error();
    st = dir_ensure(dir, err);
    if (st != FF_OK)
        return st;
    if (path_exists(key_path) || path_exists(cert_path))
        return ff_error_set(err, FF_ERR_STATE, "%s already holds a CA; "
                            "refusing to overwrite it", dir);

    /* Key and certificate in memory, then on disk: key first (0600). */
    st = key_new(&key, err);
    if (st == FF_OK)
        st = ca_cert_build(key, name, days, &cert, err);
    if (st == FF_OK)
        st = pem_write(key_path, PEM_KEY, key, err);
    if (st == FF_OK) {
        st = pem_write(cert_path, PEM_CERT, cert, err);
        if (st != FF_OK)
            unlink(key_path);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return st;
}

/* ---- requests ---- */

ff_status
ff_trust_csr_create(const char *key_path, const char *csr_path,
                    const char *id, ff_trust_role role, ff_error *err)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    ff_status st = FF_OK;

    /* Arguments, and neither file there yet. */
    if (key_path == NULL || csr_path == NULL || !id_valid(id))
        return ff_error_set(err, FF_ERR_ARG, "a CSR needs a key path, a CSR "
                            "path and an id of 1..%d [A-Za-z0-9._-]",
                            FF_TRUST_ID_MAX);
    if (role == FF_TRUST_ROLE_NONE ||
        ff_trust_role_parse(ff_trust_role_name(role)) != role)
        return ff_error_set(err, FF_ERR_ARG, "a CSR needs a role");
    if (path_exists(key_path) || path_exists(csr_path))
        return ff_error_set(err, FF_ERR_STATE, "%s already exists; refusing "
                            "to overwrite it",
                            path_exists(key_path) ? key_path : csr_path);
    ERR_clear_error();

    /* The key and its self-signed request: CN=id, OU=role. */
    st = key_new(&key, err);
    if (st != FF_OK)
        goto out;
    req = X509_REQ_new();
    if (req == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        !name_build(X509_REQ_get_subject_name(req), id,
                    ff_trust_role_name(role)) ||
        X509_REQ_set_pubkey(req, key) != 1 ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
        st = ossl_fail(err, FF_ERR_INTERNAL, "making the CSR");
        goto out;
    }

    /* Key first (0600, never overwritten), then the request. */
    st = pem_write(key_path, PEM_KEY, key, err);
    if (st != FF_OK)
        goto out;
    st = pem_write(csr_path, PEM_CSR, req, err);
    if (st != FF_OK)
        unlink(key_path);

out:
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return st;
}

/* Reads and checks the CSR at path: its self-signature, a P-256 key, CN a
 * valid id, OU a role equal to role. Fills id on success. */
static ff_status
csr_load(const char *path, ff_trust_role role, X509_REQ **out,
         char id[FF_TRUST_ID_MAX + 1], ff_error *err)
{
    char *pem = NULL, ou[FF_TRUST_ID_MAX + 1], group[32] = "";
    size_t len = 0;
    BIO *bio = NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *pk;
    ff_trust_role asked;
    ff_status st;

    *out = NULL;
    st = ff_trust_file_read(path, &pem, &len, err);
    if (st != FF_OK)
        return st;

    /* Parse, then the self-signature with the key it carries. */
    bio = BIO_new_mem_buf(pem, (int)len);
    req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, no_passphrase, NULL)
                      : NULL;
    if (req == NULL) {
        st = ossl_fail(err, FF_ERR_FORMAT, "%s is not a PEM certificate "
                       "request", path);
        goto out;
    }
    pk = X509_REQ_get0_pubkey(req);
    if (pk == NULL || X509_REQ_verify(req, pk) != 1) {
        st = ossl_fail(err, FF_ERR_FORMAT, "the self-signature of the "
                       "request %s does not verify", path);
        goto out;
    }
    if (!EVP_PKEY_is_a(pk, "EC") ||
        EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        st = ff_error_set(err, FF_ERR_FORMAT, "the key of the request %s is "
                          "not an EC P-256 key", path);
        goto out;
    }

    /* Subject: CN an id, OU the role it asks for, equal to role. */
    if (name_get(X509_REQ_get_subject_name(req), NID_commonName, id,
                 FF_TRUST_ID_MAX + 1) != 0 || !id_valid(id)) {
        st = ff_error_set(err, FF_ERR_FORMAT, "the request %s has no single "
                          "CN that is a valid id", path);
        goto out;
    }
    if (name_get(X509_REQ_get_subject_name(req), NID_organizationalUnitName,
                 ou, sizeof(ou)) != 0 ||
        (asked = ff_trust_role_parse(ou)) == FF_TRUST_ROLE_NONE) {
        st = ff_error_set(err, FF_ERR_FORMAT, "the request for %s names no "
                          "known role in its OU", id);
        goto out;
    }
    if (asked != role) {
        st = ff_error_set(err, FF_ERR_ARG, "the request for %s asks for role "
                          "%s, not %s; refusing to sign it", id,
                          ff_trust_role_name(asked),
                          ff_trust_role_name(role));
        goto out;
    }
    *out = req;
    req = NULL;

out:
    X509_REQ_free(req);
    BIO_free(bio);
    free(pem);
    return st;
}

/* Loads the CA in ca_dir: its certificate and its key, which must match. */
static ff_status
ca_load(const char *ca_dir, X509 **cert, EVP_PKEY **key, ff_error *err)
{
    char path[PATH_MAX];
    ff_status st;

    *cert = NULL;
    *key = NULL;
    if (snprintf(path, sizeof(path), "%s/" CA_CERT_FILE, ca_dir) >=
        (int)sizeof(path))
        return ff_error_set(err, FF_ERR_ARG, "CA folder path too long");
    st = cert_load(path, cert, err);
    if (st != FF_OK)
        return st;
    snprintf(path, sizeof(path), "%s/" CA_KEY_FILE, ca_dir);
    st = key_load(path, key, err);
    if (st == FF_OK && EVP_PKEY_eq(X509_get0_pubkey(*cert), *key) != 1)
        st = ff_error_set(err, FF_ERR_FORMAT, "%s does not match the CA "
                          "certificate in %s", path, ca_dir);
    if (st != FF_OK) {
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
    }
    return st;
}

/* Issues the holder certificate for req: subject rebuilt as CN=id, OU=role
 * (nothing else of the request's subject or extensions is copied). */
static ff_status
holder_cert_build(X509 *ca, EVP_PKEY *ca_key, X509_REQ *req, const char *id,
                  ff_trust_role role, int days, const char *hosts,
                  X509 **out, ff_error *err)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    int server = role == FF_TRUST_ROLE_COORDINATOR;
    int ok;
    ff_status st = FF_OK;

    *out = NULL;
    if (x == NULL)
        return ossl_fail(err, FF_ERR_INTERNAL, "making a certificate");
    memset(&ctx, 0, sizeof(ctx));
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    ok = cert_frame(x, X509_REQ_get0_pubkey(req), days) &&
         name_build(X509_get_subject_name(x), id, ff_trust_role_name(role)) &&
         X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1 &&
         ext_add(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
         ext_add(x, &ctx, NID_key_usage, "critical,digitalSignature") &&
         ext_add(x, &ctx, NID_ext_key_usage,
                 server ? "serverAuth,clientAuth" : "clientAuth") &&
         ext_add(x, &ctx, NID_subject_key_identifier, "hash") &&
         ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always");
    if (!ok) {
        st = ossl_fail(err, FF_ERR_INTERNAL, "making a certificate");
        goto out;
    }
    if (server) {
        st = san_add(x, hosts, err);
        if (st != FF_OK)
            goto out;
    }
    if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        st = ossl_fail(err, FF_ERR_INTERNAL, "signing a certificate");
        goto out;
    }
    *out = x;
    x = NULL;

out:
    X509_free(x);
    return st;
}

ff_status
ff_trust_csr_sign(const char *ca_dir, const char *csr_path,
                  ff_trust_role role, int days, const char *hosts,
                  const char *cert_path, ff_trust_cert_info *info,
                  ff_error *err)
{
    char id[FF_TRUST_ID_MAX + 1];
    int has_hosts = hosts != NULL && hosts[0] != '\0';
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *req = NULL;
    ff_trust_cert_info tmp;
    ff_status st;

    /* Arguments: the coordinator needs hosts, nobody else may have any. */
    if (ca_dir == NULL || csr_path == NULL || cert_path == NULL ||
        role == FF_TRUST_ROLE_NONE ||
        ff_trust_role_parse(ff_trust_role_name(role)) != role)
        return ff_error_set(err, FF_ERR_ARG, "signing needs a CA folder, a "
                            "CSR, a role and a certificate path");
    if (days < 1 || days > FF_TRUST_DAYS_MAX)
        return ff_error_set(err, FF_ERR_ARG, "validity of %d days is outside "
                            "1..%d", days, FF_TRUST_DAYS_MAX);
    if (has_hosts != (role == FF_TRUST_ROLE_COORDINATOR))
        return ff_error_set(err, FF_ERR_ARG, has_hosts
                            ? "only the coordinator's certificate names hosts"
                            : "the coordinator's certificate needs hosts");
    if (path_exists(cert_path))
        return ff_error_set(err, FF_ERR_STATE, "%s already exists; refusing "
                            "to overwrite it", cert_path);
    ERR_clear_error();

    /* The CA, the request, the certificate, its description, the file. */
    st = ca_load(ca_dir, &ca, &ca_key, err);
    if (st == FF_OK)
        st = csr_load(csr_path, role, &req, id, err);
    if (st == FF_OK)
        st = holder_cert_build(ca, ca_key, req, id, role, days, hosts, &cert,
                               err);
    if (st == FF_OK)
        st = cert_info_fill(cert, FF_ERR_INTERNAL, &tmp, err);
    if (st == FF_OK)
        st = pem_write(cert_path, PEM_CERT, cert, err);
    if (st == FF_OK && info != NULL)
        *info = tmp;

    X509_free(cert);
    X509_REQ_free(req);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return st;
}

/* ---- verification ---- */

/* Turns a failed X509_verify_cert into a FF_ERR_AUTH message that says
 * why, naming the holder. */
static ff_status
verify_refusal(X509_STORE_CTX *ctx, X509 *cert, ff_error *err)
{
    int code = X509_STORE_CTX_get_error(ctx);
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    const char *why = X509_verify_cert_error_string(code);
    char cn[FF_TRUST_ID_MAX + 16], when[32];

    cert_cn_for_message(cert, cn, sizeof(cn));
    ERR_clear_error();
    if (depth > 0)
        return ff_error_set(err, FF_ERR_AUTH, "certificate for %s refused: "
                            "the consortium CA certificate fails: %s", cn,
                            why);
    switch (code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        asn1_time_text(X509_get0_notAfter(cert), when);
        return ff_error_set(err, FF_ERR_AUTH, "certificate for %s expired "
                            "at %s", cn, when);
    case X509_V_ERR_CERT_NOT_YET_VALID:
        asn1_time_text(X509_get0_notBefore(cert), when);
        return ff_error_set(err, FF_ERR_AUTH, "certificate for %s is not yet "
                            "valid (from %s)", cn, when);
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return ff_error_set(err, FF_ERR_AUTH, "certificate for %s not issued "
                            "by the consortium CA: %s", cn, why);
    default:
        return ff_error_set(err, FF_ERR_AUTH, "certificate for %s refused: "
                            "%s", cn, why);
    }
}

ff_status
ff_trust_cert_verify(const char *ca_pem, size_t ca_len, const char *cert_pem,
                     size_t cert_len, ff_trust_cert_info *info,
                     ff_error *err)
{
    X509 *ca = NULL, *cert = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    ff_trust_cert_info tmp;
    char cn[FF_TRUST_ID_MAX + 16];
    ff_status st;

    /* Both certificates parse. */
    ERR_clear_error();
    st = cert_parse(ca_pem, ca_len, "the CA certificate", &ca, err);
    if (st == FF_OK)
        st = cert_parse(cert_pem, cert_len, "the certificate", &cert, err);
    if (st != FF_OK)
        goto out;

    /* A holder's certificate, never a CA's (the CA itself included). */
    if (X509_check_ca(cert) != 0) {
        cert_cn_for_message(cert, cn, sizeof(cn));
        st = ff_error_set(err, FF_ERR_AUTH, "certificate for %s is a CA "
                          "certificate, not a holder's", cn);
        goto out;
    }

    /* Chain to the CA, signature, validity now. */
    store = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
        X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
        st = ossl_fail(err, FF_ERR_INTERNAL, "setting up verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        st = verify_refusal(ctx, cert, err);
        goto out;
    }

    /* What it says: id, role, serial, fingerprint. */
    st = cert_info_fill(cert, FF_ERR_AUTH, &tmp, err);
    if (st == FF_OK && info != NULL)
        *info = tmp;

out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(cert);
    X509_free(ca);
    return st;
}

ff_status
ff_trust_key_matches(const char *key_path, const char *cert_pem,
                     size_t cert_len, ff_error *err)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char cn[FF_TRUST_ID_MAX + 16];
    ff_status st;

    if (key_path == NULL)
        return ff_error_set(err, FF_ERR_ARG, "no key file given");
    ERR_clear_error();
    st = cert_parse(cert_pem, cert_len, "the certificate", &cert, err);
    if (st == FF_OK)
        st = key_load(key_path, &key, err);
    if (st == FF_OK && EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
        cert_cn_for_message(cert, cn, sizeof(cn));
        st = ff_error_set(err, FF_ERR_AUTH, "the private key in %s does not "
                          "belong to the certificate for %s", key_path, cn);
    }
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    return st;
}
