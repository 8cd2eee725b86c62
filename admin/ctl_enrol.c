/*
 * ctl_enrol.c - enrolment (docs/governance.md): the consortium CA and its
 * first operator (`ca init`), keys and CSRs made locally (`keygen`),
 * certificates an operator issues to sites, operators, auditors and the
 * coordinator, revocation, and the lists of certificates with their state.
 *
 * Keys and certificates are made by trust/ (OpenSSL); the registry
 * records every certificate issued, so that a revocation there takes
 * effect everywhere at the next check.
 */
#include "ctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Days a certificate is valid unless --days says otherwise; the CA's. */
#define FF_CTL_CERT_DAYS 365
#define FF_CTL_CA_DAYS 3650

/* Widest cell in certificate tables. */
#define FF_CTL_CERT_CELL 48

/* ---- small helpers ------------------------------------------------------ */

/* --days, or dflt when not given. */
static ff_status
days_get(const ff_ctl *ctl, int dflt, int *days, ff_error *err)
{
    long v = dflt;

    if (ctl->days != NULL) {
        ff_status st = ff_ctl_parse_int(ctl->days, "--days", 1,
                                        FF_TRUST_DAYS_MAX, &v, err);
        if (st != FF_OK)
            return st;
    }
    *days = (int)v;
    return FF_OK;
}

/* FF_ERR_ARG "CMD needs --FLAG" when value is NULL or empty. */
static ff_status
need(const char *value, const char *cmd, const char *flag, ff_error *err)
{
    if (value == NULL || value[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "%s needs %s", cmd, flag);
    return FF_OK;
}

/* Writes "base/mid/name.ext" (mid may be NULL) into out. */
static ff_status
path_join(char *out, size_t cap, const char *base, const char *mid,
          const char *name, const char *ext, ff_error *err)
{
    int n = mid ? snprintf(out, cap, "%s/%s/%s%s", base, mid, name, ext)
                : snprintf(out, cap, "%s/%s%s", base, name, ext);
    if (n < 0 || (size_t)n >= cap)
        return ff_error_set(err, FF_ERR_ARG, "path under %.60s too long",
                            base);
    return FF_OK;
}

/* Writes prefix followed by ext into out. */
static ff_status
path_ext(char *out, size_t cap, const char *prefix, const char *ext,
         ff_error *err)
{
    int n = snprintf(out, cap, "%s%s", prefix, ext);

    if (n < 0 || (size_t)n >= cap)
        return ff_error_set(err, FF_ERR_ARG, "--out %.60s... too long",
                            prefix);
    return FF_OK;
}

/* A Unix time as "YYYY-MM-DDTHH:MM:SSZ". */
static void
unix_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

/* Reports an issued certificate, as text or JSON. */
static ff_status
issued_print(const ff_ctl *ctl, const ff_trust_cert_info *info,
             const char *file, ff_error *err)
{
    char until[40];

    unix_time(info->not_after, until, sizeof(until));
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "holder",
                              info->id, "role",
                              ff_trust_role_name(info->role), "serial",
                              info->serial, "fingerprint", info->fingerprint,
                              "not_after", until, "certificate", file);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        ff_status st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    char *safe = ff_ctl_escape(file, 0);
    printf("issued %s certificate for '%s': serial %s, sha256 %.16s..., "
           "valid until %s -> %s\n",
           ff_trust_role_name(info->role), info->id, info->serial,
           info->fingerprint, until, safe ? safe : "?");
    free(safe);
    return FF_OK;
}

/*
 * The CA in ca_dir (which must be the registry's) signs csr for role and
 * writes cert_path; the registry records it, audited by actor. A
 * certificate the registry could not record is removed again: it would
 * be refused everywhere.
 */
static ff_status
issue(ff_ctl *ctl, ff_registry *r, const char *actor, const char *csr,
      ff_trust_role role, const char *hosts, const char *cert_path,
      ff_trust_cert_info *info, ff_error *err)
{
    char ca_crt[PATH_MAX];
    int days = 0;

    ff_status st = path_join(ca_crt, sizeof(ca_crt), ctl->ca_dir, NULL,
                             "ca", ".crt", err);
    if (st == FF_OK)
        st = days_get(ctl, FF_CTL_CERT_DAYS, &days, err);
    if (st == FF_OK)
        st = ff_ctl_ca_matches(r, ca_crt, err);
    if (st == FF_OK)
        st = ff_trust_csr_sign(ctl->ca_dir, csr, role, days, hosts,
                               cert_path, info, err);
    if (st != FF_OK)
        return st;
    st = ff_registry_cert_add(r, info->id, ff_trust_role_name(role),
                              info->serial, info->fingerprint,
                              info->not_after, actor, err);
    if (st != FF_OK && unlink(cert_path) != 0)
        fprintf(stderr, "fedfusectl: warning: could not remove %s: %s\n",
                cert_path, strerror(errno));
    return st;
}

/* ---- ca init ------------------------------------------------------------ */

/* The first operator's key, CSR and certificate under dir/operators. */
static ff_status
ca_first_operator(ff_ctl *ctl, ff_trust_cert_info *info, char *crt,
                  size_t cap, ff_error *err)
{
    char key[PATH_MAX], csr[PATH_MAX], sub[PATH_MAX];
    int days = 0;

    const char *op = ctl->operator_name;
    ff_status st = path_join(sub, sizeof(sub), ctl->dir, NULL, "operators",
                             "", err);
    if (st == FF_OK)
        st = path_join(key, sizeof(key), ctl->dir, "operators", op, ".key",
                       err);
    if (st == FF_OK)
        st = path_join(csr, sizeof(csr), ctl->dir, "operators", op, ".csr",
                       err);
    if (st == FF_OK)
        st = path_join(crt, cap, ctl->dir, "operators", op, ".crt", err);
    if (st == FF_OK)
        st = days_get(ctl, FF_CTL_CERT_DAYS, &days, err);
    if (st == FF_OK && mkdir(sub, 0700) != 0 && errno != EEXIST)
        st = ff_error_set(err, FF_ERR_IO, "creating %s: %s", sub,
                          strerror(errno));
    if (st == FF_OK)
        st = ff_trust_csr_create(key, csr, op, FF_TRUST_ROLE_OPERATOR, err);
    if (st == FF_OK)
        st = ff_trust_csr_sign(ctl->dir, csr, FF_TRUST_ROLE_OPERATOR, days,
                               NULL, crt, info, err);
    return st;
}

/* Records the CA and the first operator's certificate. */
static ff_status
ca_record(ff_ctl *ctl, ff_registry *r, const ff_trust_cert_info *info,
          const char *actor, ff_error *err)
{
    char ca_crt[PATH_MAX], digest[65];
    char *pem = NULL;
    size_t len = 0;

    ff_status st = path_join(ca_crt, sizeof(ca_crt), ctl->dir, NULL, "ca",
                             ".crt", err);
    if (st == FF_OK)
        st = ff_trust_file_read(ca_crt, &pem, &len, err);
    if (st != FF_OK)
        return st;
    ff_registry_digest((const uint8_t *)pem, len, digest);
    free(pem);
    st = ff_registry_ca_set(r, ctl->name, digest, actor, err);
    if (st == FF_OK)
        st = ff_registry_cert_add(r, info->id, "operator", info->serial,
                                  info->fingerprint, info->not_after, actor,
                                  err);
    return st;
}

/* Refuses a second CA before any file is made. */
static ff_status
ca_none_yet(ff_registry *r, ff_error *err)
{
    char digest[65], name[128];
    int found = 0;

    ff_status st = ff_registry_ca_get(r, &found, digest, name, sizeof(name),
                                      err);
    if (st == FF_OK && found)
        st = ff_error_set(err, FF_ERR_STATE,
                          "the registry already has its consortium CA "
                          "'%.60s' (blake2b %.16s...); a second one would "
                          "split the consortium",
                          name, digest);
    return st;
}

ff_status
ff_ctl_ca(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    ff_trust_cert_info info = {0};
    char crt[PATH_MAX], actor[FF_CTL_ACTOR_MAX];
    int days = 0;

    /* Arguments first; then the database, before any file is made. */
    if (ctl->npos != 1 || strcmp(ctl->pos[0], "init") != 0)
        return ff_error_set(err, FF_ERR_ARG, "the only form is 'ca init'");
    ff_status st = need(ctl->dir, "ca init", "--dir DIR", err);
    if (st == FF_OK)
        st = need(ctl->name, "ca init", "--name NAME", err);
    if (st == FF_OK)
        st = need(ctl->operator_name, "ca init", "--operator NAME", err);
    if (st == FF_OK)
        st = days_get(ctl, FF_CTL_CA_DAYS, &days, err);
    if (st != FF_OK)
        return st;
    snprintf(actor, sizeof(actor), "operator:%.64s", ctl->operator_name);
    ctl->no_identity = 1;
    st = ff_ctl_connect(ctl, &r, err);
    if (st == FF_OK)
        st = ca_none_yet(r, err);

    /* The CA, its first operator, both recorded. */
    if (st == FF_OK)
        st = ff_trust_ca_create(ctl->dir, ctl->name, days, err);
    if (st == FF_OK)
        st = ca_first_operator(ctl, &info, crt, sizeof(crt), err);
    if (st == FF_OK)
        st = ca_record(ctl, r, &info, actor, err);
    if (st != FF_OK)
        return st;

    if (!ctl->json) {
        char *dir = ff_ctl_escape(ctl->dir, 0);
        printf("consortium CA '%s' created in %s (ca.key, ca.crt)\n",
               ctl->name, dir ? dir : "?");
        printf("act as operator %s with: --cert %s --key %s/operators/%s.key"
               " --ca %s/ca.crt\n",
               info.id, crt, dir ? dir : "?", info.id, dir ? dir : "?");
        free(dir);
    }
    return issued_print(ctl, &info, crt, err);
}

/* ---- keygen ------------------------------------------------------------- */

ff_status
ff_ctl_keygen(ff_ctl *ctl, ff_error *err)
{
    ff_status st = need(ctl->id, "keygen", "--id ID", err);
    if (st == FF_OK)
        st = need(ctl->role, "keygen", "--role ROLE", err);
    if (st == FF_OK)
        st = need(ctl->new_key, "keygen", "--key FILE", err);
    if (st == FF_OK)
        st = need(ctl->csr, "keygen", "--csr FILE", err);
    if (st != FF_OK)
        return st;
    ff_trust_role role = ff_trust_role_parse(ctl->role);
    if (role == FF_TRUST_ROLE_NONE)
        return ff_error_set(err, FF_ERR_ARG,
                            "--role '%.40s': must be site, operator, "
                            "auditor or coordinator",
                            ctl->role);

    st = ff_trust_csr_create(ctl->new_key, ctl->csr, ctl->id, role, err);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", ctl->id, "role",
                              ff_trust_role_name(role), "key", ctl->new_key,
                              "csr", ctl->csr);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    printf("key %s (mode 0600, keep it here) and request %s for %s '%s'; "
           "hand the request to an operator\n",
           ctl->new_key, ctl->csr, ff_trust_role_name(role), ctl->id);
    return FF_OK;
}

/* ---- lists -------------------------------------------------------------- */

/* The revocation cells: when, by whom, why; "-" each when not revoked. */
static void
cell_revoked(ff_ctl_table *t, const json_t *c)
{
    const char *at = json_string_value(json_object_get(c, "revoked_at"));
    char buf[40];

    ff_ctl_time(at, buf, sizeof(buf));
    ff_ctl_table_cell(t, at ? buf : "-");
    ff_ctl_table_cell(t, json_string_value(json_object_get(c,
                                                           "revoked_by")));
    ff_ctl_table_cell(t, json_string_value(json_object_get(
                             c, "revoke_reason")));
}

/* Prints certificates as a table. */
static ff_status
certs_table(const json_t *list, ff_error *err)
{
    static const char *const h[] = {"HOLDER", "ROLE", "STATE", "SERIAL",
                                    "NOT AFTER", "ISSUED BY", "ISSUED",
                                    "REVOKED", "REVOKED BY", "REASON"};
    ff_ctl_table t;
    char a[40], b[40];

    if (json_array_size(list) == 0) {
        printf("no certificates\n");
        return FF_OK;
    }
    ff_ctl_table_init(&t, 10, h, FF_CTL_CERT_CELL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *c = json_array_get(list, i);
        ff_ctl_time(json_string_value(json_object_get(c, "not_after")), a,
                    sizeof(a));
        ff_ctl_time(json_string_value(json_object_get(c, "issued_at")), b,
                    sizeof(b));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(c,
                                                                "holder")));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(c, "role")));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(c,
                                                                "state")));
        ff_ctl_table_cell(&t, json_string_value(json_object_get(c,
                                                                "serial")));
        ff_ctl_table_cell(&t, a);
        ff_ctl_table_cell(&t, json_string_value(json_object_get(c,
                                                                "issued_by")));
        ff_ctl_table_cell(&t, b);
        cell_revoked(&t, c);
    }
    ff_status st = ff_ctl_table_print(&t, stdout, "", err);
    ff_ctl_table_cleanup(&t);
    return st;
}

/* Lists the certificates of the roles given (NULL-terminated). */
static ff_status
certs_list(ff_ctl *ctl, const char *const *roles, ff_error *err)
{
    ff_registry *r = NULL;
    json_t *all = json_array();

    if (all == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
    ff_status st = ff_ctl_connect(ctl, &r, err);
    for (size_t i = 0; st == FF_OK && roles[i] != NULL; i++) {
        json_t *one = NULL;
        st = ff_registry_certs(r, roles[i], NULL, &one, err);
        if (st == FF_OK && json_array_extend(all, one) != 0)
            st = ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        json_decref(one);
    }
    if (st == FF_OK)
        st = ctl->json ? ff_ctl_print_json(all, err) : certs_table(all, err);
    json_decref(all);
    return st;
}

/* ---- operators, sites, coordinator -------------------------------------- */

ff_status
ff_ctl_operators(ff_ctl *ctl, ff_error *err)
{
    static const char *const roles[] = {"operator", "auditor", NULL};
    ff_registry *r = NULL;
    ff_trust_cert_info info = {0};
    const char *actor = NULL;

    if (ctl->npos == 1 && strcmp(ctl->pos[0], "list") == 0)
        return certs_list(ctl, roles, err);
    if (ctl->npos != 2 || strcmp(ctl->pos[0], "add") != 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "the forms are 'operators add CSR ...' and "
                            "'operators list'");
    ff_status st = need(ctl->role, "operators add", "--role ROLE", err);
    if (st == FF_OK)
        st = need(ctl->ca_dir, "operators add", "--ca-dir DIR", err);
    if (st == FF_OK)
        st = need(ctl->out, "operators add", "--out CERT", err);
    if (st != FF_OK)
        return st;
    ff_trust_role role = ff_trust_role_parse(ctl->role);
    if (role != FF_TRUST_ROLE_OPERATOR && role != FF_TRUST_ROLE_AUDITOR)
        return ff_error_set(err, FF_ERR_ARG,
                            "--role '%.40s': must be operator or auditor",
                            ctl->role);

    st = ff_ctl_operator(ctl, "operators add", &r, &actor, err);
    if (st == FF_OK)
        st = issue(ctl, r, actor, ctl->pos[1], role, NULL, ctl->out, &info,
                   err);
    if (st != FF_OK)
        return st;
    return issued_print(ctl, &info, ctl->out, err);
}

/* sites approve CSR --ca-dir DIR --out CERT */
static ff_status
sites_approve(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    ff_trust_cert_info info = {0};
    const char *actor = NULL;

    ff_status st = need(ctl->ca_dir, "sites approve", "--ca-dir DIR", err);
    if (st == FF_OK)
        st = need(ctl->out, "sites approve", "--out CERT", err);
    if (st == FF_OK)
        st = ff_ctl_operator(ctl, "sites approve", &r, &actor, err);
    if (st == FF_OK)
        st = issue(ctl, r, actor, ctl->pos[1], FF_TRUST_ROLE_SITE, NULL,
                   ctl->out, &info, err);
    if (st != FF_OK)
        return st;
    return issued_print(ctl, &info, ctl->out, err);
}

/* sites revoke HOLDER [--serial S] --reason R */
static ff_status
sites_revoke(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    const char *actor = NULL;
    const char *holder = ctl->pos[1];

    ff_status st = need(ctl->reason, "sites revoke", "--reason R", err);
    if (st == FF_OK)
        st = ff_ctl_operator(ctl, "sites revoke", &r, &actor, err);
    if (st == FF_OK)
        st = ff_registry_cert_revoke(r, holder, ctl->serial, ctl->reason,
                                     actor, err);
    if (st != FF_OK)
        return st;
    if (ctl->json) {
        json_t *j = json_pack("{s:s, s:s?, s:s, s:s}", "holder", holder,
                              "serial", ctl->serial, "reason", ctl->reason,
                              "revoked_by", actor);
        if (j == NULL)
            return ff_error_set(err, FF_ERR_NOMEM, "out of memory");
        st = ff_ctl_print_json(j, err);
        json_decref(j);
        return st;
    }
    char *h = ff_ctl_escape(holder, 0);
    printf("revoked %s of %s (by %s); it is refused from its next call\n",
           ctl->serial ? ctl->serial : "every certificate", h ? h : "?",
           actor);
    free(h);
    return FF_OK;
}

ff_status
ff_ctl_sites(ff_ctl *ctl, ff_error *err)
{
    static const char *const roles[] = {"site", NULL};
    const char *sub = ctl->npos > 0 ? ctl->pos[0] : "";

    if (ctl->npos == 1 && strcmp(sub, "list") == 0)
        return certs_list(ctl, roles, err);
    if (ctl->npos == 2 && strcmp(sub, "approve") == 0)
        return sites_approve(ctl, err);
    if (ctl->npos == 2 && strcmp(sub, "revoke") == 0)
        return sites_revoke(ctl, err);
    return ff_error_set(err, FF_ERR_ARG,
                        "the forms are 'sites approve CSR ...', 'sites "
                        "revoke SITE ...' and 'sites list'");
}

ff_status
ff_ctl_coordinator(ff_ctl *ctl, ff_error *err)
{
    ff_registry *r = NULL;
    ff_trust_cert_info info = {0};
    const char *actor = NULL;
    char key[PATH_MAX], csr[PATH_MAX], crt[PATH_MAX];
    const char *id = ctl->id ? ctl->id : "coordinator";

    if (ctl->npos != 1 || strcmp(ctl->pos[0], "cert") != 0)
        return ff_error_set(err, FF_ERR_ARG,
                            "the only form is 'coordinator cert ...'");
    ff_status st = need(ctl->ca_dir, "coordinator cert", "--ca-dir DIR",
                        err);
    if (st == FF_OK)
        st = need(ctl->hosts, "coordinator cert", "--hosts H,...", err);
    if (st == FF_OK)
        st = need(ctl->out, "coordinator cert", "--out PREFIX", err);
    if (st == FF_OK)
        st = path_ext(key, sizeof(key), ctl->out, ".key", err);
    if (st == FF_OK)
        st = path_ext(csr, sizeof(csr), ctl->out, ".csr", err);
    if (st == FF_OK)
        st = path_ext(crt, sizeof(crt), ctl->out, ".crt", err);
    if (st != FF_OK)
        return st;

    /* An operator makes the key here, then issues and records it. */
    st = ff_ctl_operator(ctl, "coordinator cert", &r, &actor, err);
    if (st == FF_OK)
        st = ff_trust_csr_create(key, csr, id, FF_TRUST_ROLE_COORDINATOR,
                                 err);
    if (st == FF_OK)
        st = issue(ctl, r, actor, csr, FF_TRUST_ROLE_COORDINATOR,
                   ctl->hosts, crt, &info, err);
    if (st != FF_OK)
        return st;
    return issued_print(ctl, &info, crt, err);
}
