/*
 * Tests for trust/: the CA, requests, certificates and their verification
 * (cross-checked with OpenSSL's own command line when it is installed), and
 * the Ed25519 model signatures. Each test works in a fresh folder under /tmp
 * holding a fresh CA, removed afterwards.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "ff_trust.h"

#define DAYS 30

typedef struct fixture {
    char dir[64];        /* scratch folder */
    char ca_dir[128];    /* dir/ca, holding a CA */
    char *ca_pem;        /* dir/ca/ca.crt */
    size_t ca_len;
} fixture;

/* ---- helpers ---- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* dir/name into out. */
static const char *
at(const fixture *f, const char *name, char out[256])
{
    snprintf(out, 256, "%s/%s", f->dir, name);
    return out;
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char path[256];
    ff_error err = {0};

    if (f == NULL)
        return -1;
    *state = f;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ff-trust-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->ca_dir, sizeof(f->ca_dir), "%s/ca", f->dir);
    snprintf(path, sizeof(path), "%s/ca.crt", f->ca_dir);
    if (ff_trust_ca_create(f->ca_dir, "test consortium", DAYS, &err) != FF_OK ||
        ff_trust_file_read(path, &f->ca_pem, &f->ca_len, &err) != FF_OK) {
        print_error("setup: %s\n", ff_error_text(&err));
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return 0;
    if (f->dir[0] != '\0')
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->ca_pem);
    free(f);
    return 0;
}

/* Makes key NAME.key, request NAME.csr and certificate NAME.crt for id in
 * role, signed by the fixture's CA; returns the certificate's PEM. */
static char *
issue(const fixture *f, const char *name, const char *id, ff_trust_role role,
      const char *hosts, size_t *len, ff_trust_cert_info *info)
{
    char key[256], csr[256], crt[256], file[64];
    char *pem = NULL;
    ff_error err = {0};

    snprintf(file, sizeof(file), "%s.key", name);
    at(f, file, key);
    snprintf(file, sizeof(file), "%s.csr", name);
    at(f, file, csr);
    snprintf(file, sizeof(file), "%s.crt", name);
    at(f, file, crt);
    if (ff_trust_csr_create(key, csr, id, role, &err) != FF_OK ||
        ff_trust_csr_sign(f->ca_dir, csr, role, DAYS, hosts, crt, info,
                          &err) != FF_OK ||
        ff_trust_file_read(crt, &pem, len, &err) != FF_OK)
        fail_msg("issuing %s: %s", name, ff_error_text(&err));
    return pem;
}

static mode_t
file_mode(const char *path)
{
    struct stat sb;

    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

static int
is_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return 1;
}

/* 1 when the openssl program is on PATH. */
static int
have_openssl(void)
{
    return system("command -v openssl >/dev/null 2>&1") == 0;
}

/* Runs cmd and returns its first output line (newline cut), lowercased
 * with ':' removed after the first '=' (OpenSSL's fingerprint and serial
 * lines), or "" when it printed nothing. */
static void
run_line(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    size_t n = 0;
    char *v;

    assert_non_null(p);
    if (fgets(line, sizeof(line), p) == NULL)
        line[0] = '\0';
    pclose(p);
    v = strchr(line, '=');
    v = v != NULL ? v + 1 : line;
    for (; *v != '\0' && *v != '\n' && n + 1 < cap; v++)
        if (*v != ':')
            out[n++] = (char)tolower((unsigned char)*v);
    out[n] = '\0';
}

/* The exit status of cmd (stdout and stderr discarded). */
static int
run_status(const char *cmd)
{
    char full[1024];
    int rc;

    snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
    rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- the CA ---- */

/* A CA is created with owner-only key and folder, and never overwritten. */
static void
ca_create_and_refuse_overwrite(void **state)
{
    fixture *f = *state;
    char path[256], *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    ff_error err = {0};

    snprintf(path, sizeof(path), "%s/ca.key", f->ca_dir);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(file_mode(f->ca_dir), 0700);
    assert_int_equal(ff_trust_file_read(path, &before, &nb, &err), FF_OK);

    assert_int_equal(ff_trust_ca_create(f->ca_dir, "again", DAYS, &err),
                     FF_ERR_STATE);
    assert_non_null(strstr(err.msg, "already holds a CA"));
    assert_int_equal(ff_trust_file_read(path, &after, &na, &err), FF_OK);
    assert_int_equal(nb, na);
    assert_memory_equal(before, after, nb);

    /* Bad arguments. */
    assert_int_equal(ff_trust_ca_create(at(f, "ca2", path), "x", 0, &err),
                     FF_ERR_ARG);
    assert_int_equal(ff_trust_ca_create(path, "", DAYS, &err), FF_ERR_ARG);
    assert_int_equal(ff_trust_ca_create(path, "x", FF_TRUST_DAYS_MAX + 1,
                                        &err), FF_ERR_ARG);
    free(before);
    free(after);
}

/* ---- requests, issuing, verifying ---- */

/* A site's CSR is made with a 0600 key, signed, and verifies to the same
 * description; serial and fingerprint agree with OpenSSL's command line. */
static void
csr_sign_verify_describes_cert(void **state)
{
    fixture *f = *state;
    char key[256], csr[256], crt[256], cmd[600], line[256];
    ff_trust_cert_info signed_info, info;
    char *pem;
    size_t len;
    ff_error err = {0};

    pem = issue(f, "s1", "site-1", FF_TRUST_ROLE_SITE, NULL, &len,
                &signed_info);
    assert_int_equal(file_mode(at(f, "s1.key", key)), 0600);
    at(f, "s1.csr", csr);
    at(f, "s1.crt", crt);

    /* An existing key, request or certificate is never overwritten. */
    assert_int_equal(ff_trust_csr_create(key, at(f, "other.csr", cmd),
                                         "site-1", FF_TRUST_ROLE_SITE, &err),
                     FF_ERR_STATE);
    assert_non_null(strstr(err.msg, "refusing to overwrite"));
    assert_int_equal(access(cmd, F_OK), -1);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, crt, NULL, &err),
                     FF_ERR_STATE);

    /* Verification describes it as signing did. */
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, pem, len,
                                          &info, &err), FF_OK);
    assert_string_equal(info.id, "site-1");
    assert_int_equal(info.role, FF_TRUST_ROLE_SITE);
    assert_true(is_lower_hex(info.serial, FF_TRUST_SERIAL_HEX));
    assert_true(is_lower_hex(info.fingerprint, FF_TRUST_FPR_HEX));
    assert_memory_equal(&info, &signed_info, sizeof(info));
    int64_t span = info.not_after - info.not_before;
    print_message("validity span %lld s (expected %d days + 300 s skew, "
                  "tolerance 5 s)\n", (long long)span, DAYS);
    assert_true(llabs(span - (DAYS * 86400LL + 300)) <= 5);
    assert_true(llabs(info.not_before + 300 - (int64_t)time(NULL)) <= 60);

    /* OpenSSL's own reading of the same file. */
    if (!have_openssl()) {
        print_message("openssl not installed: command-line cross-check "
                      "skipped\n");
    } else {
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -fingerprint "
                 "-sha256 -in '%s'", crt);
        run_line(cmd, line, sizeof(line));
        print_message("openssl fingerprint %s\n", line);
        assert_string_equal(line, info.fingerprint);
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -serial -in '%s'",
                 crt);
        run_line(cmd, line, sizeof(line));
        assert_string_equal(line, info.serial);
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s/ca.crt' "
                 "-purpose sslclient '%s'", f->ca_dir, crt);
        assert_int_equal(run_status(cmd), 0);
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s/ca.crt' "
                 "-purpose sslserver '%s'", f->ca_dir, crt);
        assert_int_not_equal(run_status(cmd), 0);
    }

    /* Two certificates never share a serial (2^-127 odds). */
    ff_trust_cert_info other;
    size_t olen;
    char *opem = issue(f, "s2", "site-2", FF_TRUST_ROLE_SITE, NULL, &olen,
                       &other);
    assert_string_not_equal(other.serial, info.serial);
    free(opem);
    free(pem);
}

/* A certificate from another CA is refused, and says why. */
static void
cert_from_other_ca_refused(void **state)
{
    fixture *f = *state;
    fixture rogue;
    char path[256], key[256], csr[256], crt[256];
    char *pem = NULL;
    size_t len = 0;
    ff_trust_cert_info info;
    ff_error err = {0};

    /* A second CA in the same scratch folder issues site-1 a certificate. */
    memcpy(&rogue, f, sizeof(rogue));
    snprintf(rogue.ca_dir, sizeof(rogue.ca_dir), "%s/rogue", f->dir);
    assert_int_equal(ff_trust_ca_create(rogue.ca_dir, "rogue", DAYS, &err),
                     FF_OK);
    assert_int_equal(ff_trust_csr_create(at(f, "r.key", key),
                                         at(f, "r.csr", csr), "site-1",
                                         FF_TRUST_ROLE_SITE, &err), FF_OK);
    assert_int_equal(ff_trust_csr_sign(rogue.ca_dir, csr, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, at(f, "r.crt", crt), NULL,
                                       &err), FF_OK);
    assert_int_equal(ff_trust_file_read(crt, &pem, &len, &err), FF_OK);

    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, pem, len,
                                          &info, &err), FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "site-1"));
    assert_non_null(strstr(err.msg, "not issued by the consortium CA"));

    /* The CA's own certificate is not a holder's certificate. */
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, f->ca_pem,
                                          f->ca_len, &info, &err),
                     FF_ERR_AUTH);
    assert_non_null(strstr(err.msg, "CA certificate"));
    (void)path;
    free(pem);
}

/* A request that asks for another role than the signer grants is refused,
 * and no certificate appears. */
static void
csr_role_mismatch_refused(void **state)
{
    fixture *f = *state;
    char key[256], csr[256], crt[256];
    ff_error err = {0};

    assert_int_equal(ff_trust_csr_create(at(f, "o.key", key),
                                         at(f, "o.csr", csr), "alice",
                                         FF_TRUST_ROLE_OPERATOR, &err),
                     FF_OK);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, at(f, "o.crt", crt), NULL,
                                       &err), FF_ERR_ARG);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "asks for role operator, not site"));
    assert_int_equal(access(crt, F_OK), -1);

    /* Hosts belong to the coordinator's certificate only, and it needs
     * them; a host must be an IP address or a DNS name. */
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr, FF_TRUST_ROLE_OPERATOR,
                                       DAYS, "localhost", crt, NULL, &err),
                     FF_ERR_ARG);
    assert_int_equal(ff_trust_csr_create(at(f, "c.key", key),
                                         at(f, "c.csr", csr), "coordinator",
                                         FF_TRUST_ROLE_COORDINATOR, &err),
                     FF_OK);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr,
                                       FF_TRUST_ROLE_COORDINATOR, DAYS, NULL,
                                       crt, NULL, &err), FF_ERR_ARG);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr,
                                       FF_TRUST_ROLE_COORDINATOR, DAYS,
                                       "localhost,bad host!", crt, NULL,
                                       &err), FF_ERR_ARG);
    assert_non_null(strstr(err.msg, "bad host!"));
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, csr,
                                       FF_TRUST_ROLE_COORDINATOR, DAYS,
                                       "localhost,,x", crt, NULL, &err),
                     FF_ERR_ARG);
    assert_int_equal(access(crt, F_OK), -1);

    /* Invalid ids and roles never make a request. */
    assert_int_equal(ff_trust_csr_create(at(f, "b.key", key),
                                         at(f, "b.csr", csr), "a b",
                                         FF_TRUST_ROLE_SITE, &err),
                     FF_ERR_ARG);
    assert_int_equal(ff_trust_csr_create(key, csr, "ok", FF_TRUST_ROLE_NONE,
                                         &err), FF_ERR_ARG);
    assert_int_equal(access(key, F_OK), -1);
}

/* Re-signs the certificate pem with the fixture's CA key after moving its
 * validity window to [now + from_s, now + to_s]; returns the new PEM. */
static char *
resign_window(const fixture *f, const char *pem, size_t len, long from_s,
              long to_s, size_t *out_len)
{
    char path[256];
    BIO *in = BIO_new_mem_buf(pem, (int)len), *out = BIO_new(BIO_s_mem());
    FILE *kf;
    EVP_PKEY *ca_key;
    X509 *x;
    char *data, *copy;
    long n;

    snprintf(path, sizeof(path), "%s/ca.key", f->ca_dir);
    kf = fopen(path, "r");
    assert_non_null(kf);
    ca_key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    x = PEM_read_bio_X509(in, NULL, NULL, NULL);
    assert_non_null(ca_key);
    assert_non_null(x);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from_s));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to_s));
    assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509(out, x), 1);
    n = BIO_get_mem_data(out, &data);
    copy = malloc((size_t)n);
    assert_non_null(copy);
    memcpy(copy, data, (size_t)n);
    *out_len = (size_t)n;
    X509_free(x);
    EVP_PKEY_free(ca_key);
    BIO_free(in);
    BIO_free(out);
    return copy;
}

/* A certificate outside its validity window is refused, and says so;
 * the same certificate re-signed inside its window still verifies (the
 * re-signing itself is sound). */
static void
expired_and_future_certs_refused(void **state)
{
    fixture *f = *state;
    ff_trust_cert_info info;
    ff_error err = {0};
    size_t len, n;
    char *pem = issue(f, "e", "site-3", FF_TRUST_ROLE_SITE, NULL, &len, NULL);
    char *bad;

    bad = resign_window(f, pem, len, -10 * 86400L, -86400L, &n);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, bad, n, &info,
                                          &err), FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "certificate for site-3 expired"));
    free(bad);

    bad = resign_window(f, pem, len, 86400L, 10 * 86400L, &n);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, bad, n, &info,
                                          &err), FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "not yet valid"));
    free(bad);

    bad = resign_window(f, pem, len, -86400L, 86400L, &n);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, bad, n, &info,
                                          &err), FF_OK);
    assert_string_equal(info.id, "site-3");
    free(bad);
    free(pem);
}

/* Writes req, re-signed with key when key is not NULL, as PEM to path. */
static void
csr_write(const char *path, X509_REQ *req, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (key != NULL)
        assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_X509_REQ(fp, req), 1);
    fclose(fp);
}

/* A request whose self-signature fails, or whose key is not P-256, is
 * refused with FF_ERR_FORMAT; a certificate whose OU is no role, even one
 * the CA signed, does not verify. */
static void
csr_bad_signature_or_key_refused(void **state)
{
    fixture *f = *state;
    char key[256], csr[256], crt[256], path[256];
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    X509_REQ *req;
    FILE *fp;
    ff_error err = {0};

    /* The subject changed after signing. */
    assert_int_equal(ff_trust_csr_create(at(f, "t.key", key),
                                         at(f, "t.csr", csr), "site-6",
                                         FF_TRUST_ROLE_SITE, &err), FF_OK);
    fp = fopen(csr, "r");
    assert_non_null(fp);
    req = PEM_read_X509_REQ(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(req);
    X509_NAME *name = X509_NAME_new();
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                         (const unsigned char *)"site-7", -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                         (const unsigned char *)"site", -1, -1, 0), 1);
    assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
    X509_NAME_free(name);
    csr_write(at(f, "t2.csr", path), req, NULL);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, path, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, at(f, "t.crt", crt), NULL,
                                       &err), FF_ERR_FORMAT);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "self-signature"));

    /* The same request, honestly self-signed with a P-384 key. */
    assert_non_null(p384);
    assert_int_equal(X509_REQ_set_pubkey(req, p384), 1);
    csr_write(at(f, "t3.csr", path), req, p384);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, path, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, crt, NULL, &err),
                     FF_ERR_FORMAT);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "not an EC P-256 key"));
    assert_int_equal(access(crt, F_OK), -1);
    X509_REQ_free(req);
    EVP_PKEY_free(p384);
}

/* A certificate the CA signed whose OU names no role is refused. */
static void
cert_without_role_refused(void **state)
{
    fixture *f = *state;
    char path[256];
    size_t len, n;
    char *pem = issue(f, "nr", "site-8", FF_TRUST_ROLE_SITE, NULL, &len, NULL);
    BIO *in = BIO_new_mem_buf(pem, (int)len), *out = BIO_new(BIO_s_mem());
    X509 *x = PEM_read_bio_X509(in, NULL, NULL, NULL);
    X509_NAME *subj = X509_NAME_new();
    EVP_PKEY *ca_key;
    ff_trust_cert_info info;
    ff_error err = {0};
    FILE *kf;
    char *data;

    snprintf(path, sizeof(path), "%s/ca.key", f->ca_dir);
    kf = fopen(path, "r");
    assert_non_null(kf);
    ca_key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    assert_non_null(x);
    assert_non_null(ca_key);
    assert_int_equal(X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
                         (const unsigned char *)"site-8", -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(subj, "OU", MBSTRING_UTF8,
                         (const unsigned char *)"admin", -1, -1, 0), 1);
    assert_int_equal(X509_set_subject_name(x, subj), 1);
    assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509(out, x), 1);
    n = (size_t)BIO_get_mem_data(out, &data);

    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, data, n,
                                          &info, &err), FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "no known role"));
    X509_NAME_free(subj);
    X509_free(x);
    EVP_PKEY_free(ca_key);
    BIO_free(in);
    BIO_free(out);
    free(pem);
}

/* Bytes that are not a PEM certificate are FF_ERR_FORMAT, never a crash. */
static void
garbage_pem_refused(void **state)
{
    fixture *f = *state;
    const char *junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       "-----END CERTIFICATE-----\n";
    char path[256], crt[256];
    ff_trust_cert_info info;
    ff_error err = {0};
    size_t len;
    char *pem = issue(f, "g", "site-4", FF_TRUST_ROLE_SITE, NULL, &len, NULL);

    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, "hello", 5,
                                          &info, &err), FF_ERR_FORMAT);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, junk,
                                          strlen(junk), &info, &err),
                     FF_ERR_FORMAT);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, pem, len / 2,
                                          &info, &err), FF_ERR_FORMAT);
    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, pem, 0, &info,
                                          &err), FF_ERR_FORMAT);
    assert_int_equal(ff_trust_cert_verify("junk", 4, pem, len, &info, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "CA certificate"));

    /* A request file holding garbage. */
    int fd = open(at(f, "junk.csr", path), O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
    close(fd);
    assert_int_equal(ff_trust_csr_sign(f->ca_dir, path, FF_TRUST_ROLE_SITE,
                                       DAYS, NULL, at(f, "junk.crt", crt),
                                       NULL, &err), FF_ERR_FORMAT);
    print_message("refusal: %s\n", err.msg);
    assert_int_equal(access(crt, F_OK), -1);
    free(pem);
}

/* The holder's key matches its certificate; another key does not; a
 * key file others may read is refused. */
static void
key_matches_right_key_only(void **state)
{
    fixture *f = *state;
    char key1[256], key2[256];
    ff_error err = {0};
    size_t len1, len2;
    char *pem1 = issue(f, "k1", "bob", FF_TRUST_ROLE_OPERATOR, NULL, &len1,
                       NULL);
    char *pem2 = issue(f, "k2", "carol", FF_TRUST_ROLE_AUDITOR, NULL, &len2,
                       NULL);

    at(f, "k1.key", key1);
    at(f, "k2.key", key2);
    assert_int_equal(ff_trust_key_matches(key1, pem1, len1, &err), FF_OK);
    assert_int_equal(ff_trust_key_matches(key2, pem2, len2, &err), FF_OK);
    assert_int_equal(ff_trust_key_matches(key2, pem1, len1, &err),
                     FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "does not belong to the certificate for "
                                    "bob"));
    assert_int_equal(ff_trust_key_matches(at(f, "none.key", key2), pem1, len1,
                                          &err), FF_ERR_IO);
    assert_int_equal(chmod(key1, 0640), 0);
    assert_int_equal(ff_trust_key_matches(key1, pem1, len1, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "group or others"));
    free(pem1);
    free(pem2);
}

/* The coordinator's certificate carries serverAuth and clientAuth and its
 * hosts as subjectAltNames (what gRPC checks, grpc-c-core.md section 7);
 * a site's has clientAuth only and no SAN. */
static void
coordinator_cert_profile(void **state)
{
    fixture *f = *state;
    char crt[256], cmd[600];
    ff_trust_cert_info info;
    ff_error err = {0};
    size_t len, slen;
    char *pem = issue(f, "co", "coordinator", FF_TRUST_ROLE_COORDINATOR,
                      "127.0.0.1, localhost,::1", &len, &info);
    char *spem = issue(f, "st", "site-5", FF_TRUST_ROLE_SITE, NULL, &slen,
                       NULL);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL), *s;

    assert_int_equal(info.role, FF_TRUST_ROLE_COORDINATOR);
    assert_non_null(x);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
    assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_host(x, "example.org", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.2", 0), 0);
    X509_free(x);
    BIO_free(bio);

    bio = BIO_new_mem_buf(spem, (int)slen);
    s = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(s);
    assert_false(X509_get_extended_key_usage(s) & XKU_SSL_SERVER);
    assert_true(X509_get_extended_key_usage(s) & XKU_SSL_CLIENT);
    assert_null(X509_get_ext_d2i(s, NID_subject_alt_name, NULL, NULL));
    X509_free(s);
    BIO_free(bio);

    assert_int_equal(ff_trust_cert_verify(f->ca_pem, f->ca_len, pem, len,
                                          &info, &err), FF_OK);
    assert_string_equal(info.id, "coordinator");
    if (have_openssl()) {
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s/ca.crt' "
                 "-purpose sslserver '%s'", f->ca_dir, at(f, "co.crt", crt));
        assert_int_equal(run_status(cmd), 0);
    }
    free(pem);
    free(spem);
}

/* ---- model signatures ---- */

/* The signed message is byte for byte the encoding docs/trust.md gives. */
static void
model_message_encoding(void **state)
{
    static const uint8_t want[] = {
        'f', 'e', 'd', 'f', 'u', 's', 'e', '-', 'm', 'o', 'd', 'e', 'l', '-',
        'v', '1',
        2, 0, 0, 0, 'm', 'm',
        2, 0, 0, 0, '1', '2',
        2, 0, 0, 0, '1', '1',
        32, 0, 0, 0,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        8, 0, 0, 0, '{', '"', 'r', '"', ':', '1', '2', '}',
    };
    ff_trust_model_claim c = {.model = "mm", .version = 12, .parent = 11,
                              .metadata_json = "{\"r\":12}"};
    uint8_t *msg = NULL;
    size_t len = 0;
    ff_error err = {0};

    (void)state;
    for (int i = 0; i < 32; i++)
        c.digest[i] = (uint8_t)i;
    assert_int_equal(ff_trust_model_message(&c, &msg, &len, &err), FF_OK);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(msg, want, sizeof(want));
    free(msg);

    /* Claims that cannot be signed. */
    c.parent = 12;
    assert_int_equal(ff_trust_model_message(&c, &msg, &len, &err),
                     FF_ERR_ARG);
    c.parent = 11;
    c.model = "";
    assert_int_equal(ff_trust_model_message(&c, &msg, &len, &err),
                     FF_ERR_ARG);
    c.model = "mm";
    c.metadata_json = NULL;
    assert_int_equal(ff_trust_model_message(&c, &msg, &len, &err),
                     FF_ERR_ARG);
    assert_null(msg);
}

/* A known-answer vector made independently with Python (hashlib's BLAKE2b
 * and pyca/cryptography's Ed25519, the script in docs/trust.md): seed
 * 00 01 .. 1f, artifact "fedfuse test artifact\n", model "mm", version
 * 12, parent 11, metadata {"r":12}. Ed25519 is deterministic, so our
 * signature must be these exact bytes. */
static void
model_signature_known_answer(void **state)
{
    static const char artifact[] = "fedfuse test artifact\n";
    static const char digest_hex[] =
        "d812721bacb53034a6c551d11ffd402e04a8bb8f205e8bec5942c52c6ca2ba38";
    static const char pk_hex[] =
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    static const char sig_hex[] =
        "db5b516b44df4171f7282c80eb1c119c5c61f11215572f0201272ed4569b0a66"
        "3733c70c3e2a5601b7b8c68cd18d983f02d4ee6ec3b6b2d92444973c627ad90a";
    uint8_t seed[32], pk[FF_TRUST_SIGN_PK], sk[FF_TRUST_SIGN_SK];
    uint8_t sig[FF_TRUST_SIG], want_pk[32], want_sig[64];
    ff_trust_model_claim c = {.model = "mm", .version = 12, .parent = 11,
                              .metadata_json = "{\"r\":12}"};
    uint8_t digest[32];
    const size_t alen = strlen(artifact);
    ff_error err = {0};

    (void)state;
    assert_true(sodium_init() >= 0);
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    assert_int_equal(sodium_hex2bin(want_pk, 32, pk_hex, 64, NULL, NULL,
                                    NULL), 0);
    assert_int_equal(sodium_hex2bin(want_sig, 64, sig_hex, 128, NULL, NULL,
                                    NULL), 0);
    assert_int_equal(sodium_hex2bin(c.digest, 32, digest_hex, 64, NULL, NULL,
                                    NULL), 0);
    crypto_generichash(digest, 32, (const uint8_t *)artifact, alen, NULL, 0);
    assert_memory_equal(digest, c.digest, 32);
    assert_memory_equal(pk, want_pk, 32);

    assert_int_equal(ff_trust_model_sign(&c, sk, sig, &err), FF_OK);
    assert_memory_equal(sig, want_sig, 64);
    assert_int_equal(ff_trust_model_verify(&c, (const uint8_t *)artifact,
                                           alen, want_sig, want_pk, &err),
                     FF_OK);
    sodium_memzero(sk, sizeof(sk));
}

/* A fixed claim over a random artifact, signed with a fresh key. */
typedef struct signed_model {
    uint8_t sk[FF_TRUST_SIGN_SK], pk[FF_TRUST_SIGN_PK];
    uint8_t artifact[4096];
    uint8_t sig[FF_TRUST_SIG];
    ff_trust_model_claim claim;
} signed_model;

static void
signed_model_make(signed_model *m)
{
    ff_error err = {0};

    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(m->pk, m->sk);
    randombytes_buf(m->artifact, sizeof(m->artifact));
    m->claim = (ff_trust_model_claim){
        .model = "fedfuse-mm", .version = 3, .parent = 2,
        .metadata_json = "{\"round\":7,\"sites\":[{\"id\":\"site-1\","
                         "\"examples\":120}],\"epsilon\":2.5}"};
    crypto_generichash(m->claim.digest, 32, m->artifact, sizeof(m->artifact),
                       NULL, 0);
    assert_int_equal(ff_trust_model_sign(&m->claim, m->sk, m->sig, &err),
                     FF_OK);
}

/* Signing then verifying with the same key and bytes succeeds. */
static void
model_sign_verify_round_trip(void **state)
{
    signed_model m;
    ff_error err = {0};

    (void)state;
    signed_model_make(&m);
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact,
                                           sizeof(m.artifact), m.sig, m.pk,
                                           &err), FF_OK);
    sodium_memzero(m.sk, sizeof(m.sk));
}

/* One flipped bit in the artifact: FF_ERR_DIGEST, and it says so. */
static void
model_artifact_bit_flip_is_digest_error(void **state)
{
    signed_model m;
    ff_error err = {0};

    (void)state;
    signed_model_make(&m);
    m.artifact[1234] ^= 0x10;
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact,
                                           sizeof(m.artifact), m.sig, m.pk,
                                           &err), FF_ERR_DIGEST);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "is not the signed one"));
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact, 100, m.sig,
                                           m.pk, &err), FF_ERR_DIGEST);
    sodium_memzero(m.sk, sizeof(m.sk));
}

/* A flipped signature bit, another key, or any changed claim field: the
 * signature does not verify (FF_ERR_AUTH). */
static void
model_tampering_is_auth_error(void **state)
{
    signed_model m;
    uint8_t pk2[FF_TRUST_SIGN_PK], sk2[FF_TRUST_SIGN_SK];
    ff_trust_model_claim c;
    ff_error err = {0};
    const size_t n = sizeof(m.artifact);

    (void)state;
    signed_model_make(&m);

    m.sig[17] ^= 0x01;
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact, n, m.sig,
                                           m.pk, &err), FF_ERR_AUTH);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "does not verify with the coordinator "
                                    "key"));
    m.sig[17] ^= 0x01;

    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact, n, m.sig,
                                           pk2, &err), FF_ERR_AUTH);

    c = m.claim;
    c.metadata_json = "{\"round\":7,\"sites\":[{\"id\":\"site-1\","
                      "\"examples\":121}],\"epsilon\":2.5}";
    assert_int_equal(ff_trust_model_verify(&c, m.artifact, n, m.sig, m.pk,
                                           &err), FF_ERR_AUTH);
    c = m.claim;
    c.version = 4;
    c.parent = 3;
    assert_int_equal(ff_trust_model_verify(&c, m.artifact, n, m.sig, m.pk,
                                           &err), FF_ERR_AUTH);
    c = m.claim;
    c.model = "fedfuse-mn";
    assert_int_equal(ff_trust_model_verify(&c, m.artifact, n, m.sig, m.pk,
                                           &err), FF_ERR_AUTH);

    /* Still fine untouched. */
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact, n, m.sig,
                                           m.pk, &err), FF_OK);
    sodium_memzero(m.sk, sizeof(m.sk));
    sodium_memzero(sk2, sizeof(sk2));
}

/* The signing key file: created 0600 on first use, reloaded identical,
 * refused when others may read it or its size is wrong. */
static void
sign_key_file_lifecycle(void **state)
{
    fixture *f = *state;
    char path[256], hex[2 * FF_TRUST_SIGN_PK + 2];
    uint8_t sk1[FF_TRUST_SIGN_SK], pk1[FF_TRUST_SIGN_PK];
    uint8_t sk2[FF_TRUST_SIGN_SK], pk2[FF_TRUST_SIGN_PK], pk3[32];
    signed_model m;
    ff_error err = {0};

    at(f, "signing_key", path);
    assert_int_equal(ff_trust_sign_key_load(path, sk1, pk1, &err), FF_OK);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(ff_trust_sign_key_load(path, sk2, pk2, &err), FF_OK);
    assert_memory_equal(sk1, sk2, sizeof(sk1));
    assert_memory_equal(pk1, pk2, sizeof(pk1));

    /* The loaded key signs what its public half verifies. */
    signed_model_make(&m);
    assert_int_equal(ff_trust_model_sign(&m.claim, sk2, m.sig, &err), FF_OK);
    assert_int_equal(ff_trust_model_verify(&m.claim, m.artifact,
                                           sizeof(m.artifact), m.sig, pk1,
                                           &err), FF_OK);

    /* Its public key round-trips through hex. */
    sodium_bin2hex(hex, sizeof(hex), pk1, sizeof(pk1));
    strcat(hex, "\n");
    assert_int_equal(ff_trust_sign_pk_from_hex(hex, pk3, &err), FF_OK);
    assert_memory_equal(pk3, pk1, sizeof(pk1));
    assert_int_equal(ff_trust_sign_pk_from_hex("abcd", pk3, &err),
                     FF_ERR_FORMAT);
    hex[10] = 'g';
    assert_int_equal(ff_trust_sign_pk_from_hex(hex, pk3, &err),
                     FF_ERR_FORMAT);

    /* Group-readable: refused, keys wiped. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(ff_trust_sign_key_load(path, sk2, pk2, &err),
                     FF_ERR_FORMAT);
    print_message("refusal: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "group or others"));
    assert_true(sodium_is_zero(sk2, sizeof(sk2)));

    /* Wrong size: refused. */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(truncate(path, 63), 0);
    assert_int_equal(ff_trust_sign_key_load(path, sk2, pk2, &err),
                     FF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "63 bytes"));
    sodium_memzero(sk1, sizeof(sk1));
    sodium_memzero(m.sk, sizeof(m.sk));
}

/* File reading caps sizes and takes regular files only. */
static void
file_read_limits(void **state)
{
    fixture *f = *state;
    char path[256], *buf = NULL;
    size_t len = 0;
    ff_error err = {0};
    FILE *fp = fopen(at(f, "big.pem", path), "w");

    assert_non_null(fp);
    for (int i = 0; i < FF_TRUST_PEM_MAX + 1; i++)
        fputc('A', fp);
    fclose(fp);
    assert_int_equal(ff_trust_file_read(path, &buf, &len, &err),
                     FF_ERR_TOO_LARGE);
    assert_null(buf);
    assert_int_equal(ff_trust_file_read(f->dir, &buf, &len, &err), FF_ERR_IO);
    assert_int_equal(ff_trust_file_read(at(f, "missing", path), &buf, &len,
                                        &err), FF_ERR_IO);
    assert_int_equal(truncate(at(f, "big.pem", path), FF_TRUST_PEM_MAX), 0);
    assert_int_equal(ff_trust_file_read(path, &buf, &len, &err), FF_OK);
    assert_int_equal(len, FF_TRUST_PEM_MAX);
    assert_int_equal(buf[len], '\0');
    free(buf);
}

/* Role names and their parsing agree. */
static void
role_names_round_trip(void **state)
{
    (void)state;
    for (int r = FF_TRUST_ROLE_SITE; r <= FF_TRUST_ROLE_COORDINATOR; r++)
        assert_int_equal(ff_trust_role_parse(ff_trust_role_name(
                             (ff_trust_role)r)), r);
    assert_string_equal(ff_trust_role_name(FF_TRUST_ROLE_AUDITOR), "auditor");
    assert_string_equal(ff_trust_role_name((ff_trust_role)99), "none");
    assert_int_equal(ff_trust_role_parse("none"), FF_TRUST_ROLE_NONE);
    assert_int_equal(ff_trust_role_parse("Site"), FF_TRUST_ROLE_NONE);
    assert_int_equal(ff_trust_role_parse(NULL), FF_TRUST_ROLE_NONE);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(ca_create_and_refuse_overwrite),
        T(csr_sign_verify_describes_cert),
        T(cert_from_other_ca_refused),
        T(csr_role_mismatch_refused),
        T(expired_and_future_certs_refused),
        T(csr_bad_signature_or_key_refused),
        T(cert_without_role_refused),
        T(garbage_pem_refused),
        T(key_matches_right_key_only),
        T(coordinator_cert_profile),
        cmocka_unit_test(model_message_encoding),
        cmocka_unit_test(model_signature_known_answer),
        cmocka_unit_test(model_sign_verify_round_trip),
        cmocka_unit_test(model_artifact_bit_flip_is_digest_error),
        cmocka_unit_test(model_tampering_is_auth_error),
        T(sign_key_file_lifecycle),
        T(file_read_limits),
        cmocka_unit_test(role_names_round_trip),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
