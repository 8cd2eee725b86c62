/*
 * ctl_identity.c - who runs fedfusectl. An operator or auditor proves it
 * with a certificate from the consortium CA and its private key; the
 * registry says whether that certificate is still good. Commands that
 * change the registry require the operator role (docs/governance.md).
 */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

/* The three identity paths: flags first, then the environment. */
static void
identity_paths(const ff_ctl *ctl, const char **cert, const char **key,
               const char **ca)
{
    *cert = ctl->cert ? ctl->cert : getenv("FEDFUSE_CERT");
    *key = ctl->id_key ? ctl->id_key : getenv("FEDFUSE_KEY");
    *ca = ctl->ca ? ctl->ca : getenv("FEDFUSE_CA");
    if (*cert != NULL && (*cert)[0] == '\0')
        *cert = NULL;
    if (*key != NULL && (*key)[0] == '\0')
        *key = NULL;
    if (*ca != NULL && (*ca)[0] == '\0')
        *ca = NULL;
}

ff_status
ff_ctl_ca_matches(ff_registry *r, const char *ca_path, ff_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    char known[65], actual[65], name[128];
    int found = 0;

    ff_status st = ff_registry_ca_get(r, &found, known, name, sizeof(name),
                                      err);
    if (st == FF_OK && !found)
        st = ff_error_set(err, FF_ERR_STATE,
                          "the registry has no consortium CA yet (run "
                          "'fedfusectl ca init')");
    if (st == FF_OK)
        st = ff_trust_file_read(ca_path, &pem, &len, err);
    if (st != FF_OK)
        return st;
    ff_registry_digest((const uint8_t *)pem, len, actual);
    free(pem);
    if (strcmp(actual, known) != 0)
        return ff_error_set(err, FF_ERR_AUTH,
                            "%s is not the consortium CA the registry "
                            "knows (%.60s, blake2b %.16s...; this file "
                            "hashes to %.16s...)",
                            ca_path, name, known, actual);
    return FF_OK;
}

/* The certificate against the CA, then the key against the certificate. */
static ff_status
identity_verify(const char *cert_path, const char *key_path,
                const char *ca_path, ff_trust_cert_info *info,
                ff_error *err)
{
    char *cert = NULL, *ca = NULL;
    size_t cert_len = 0, ca_len = 0;

    ff_status st = ff_trust_file_read(cert_path, &cert, &cert_len, err);
    if (st == FF_OK)
        st = ff_trust_file_read(ca_path, &ca, &ca_len, err);
    if (st == FF_OK)
        st = ff_trust_cert_verify(ca, ca_len, cert, cert_len, info, err);
    if (st == FF_ERR_AUTH || st == FF_ERR_FORMAT)
        st = ff_error_wrap(err, st, "your certificate %s", cert_path);
    if (st == FF_OK) {
        st = ff_trust_key_matches(key_path, cert, cert_len, err);
        if (st == FF_ERR_AUTH)
            st = ff_error_wrap(err, st, "your key %s does not match your "
                               "certificate %s", key_path, cert_path);
    }
    free(ca);
    free(cert);
    return st;
}

ff_status
ff_ctl_identify(ff_ctl *ctl, ff_registry *r, ff_error *err)
{
    const char *cert, *key, *ca;
    ff_ctl_identity *id = &ctl->ident;
    char why[400];
    int ok = 0;

    if (id->checked)
        return FF_OK;
    identity_paths(ctl, &cert, &key, &ca);
    if (cert == NULL && key == NULL && ca == NULL) {
        id->checked = 1;
        return FF_OK;
    }
    if (cert == NULL || key == NULL || ca == NULL)
        return ff_error_set(err, FF_ERR_ARG,
                            "an identity needs --cert, --key and --ca "
                            "together (or FEDFUSE_CERT, FEDFUSE_KEY, "
                            "FEDFUSE_CA); %s is missing",
                            cert == NULL ? "--cert"
                                         : key == NULL ? "--key" : "--ca");

    /* The CA is the registry's, the certificate is the CA's, the key is
     * the certificate's, and the registry has not revoked it. */
    ff_status st = ff_ctl_ca_matches(r, ca, err);
    if (st == FF_OK)
        st = identity_verify(cert, key, ca, &id->info, err);
    if (st == FF_OK)
        st = ff_registry_cert_check(r, id->info.id, id->info.serial, &ok,
                                    why, sizeof(why), err);
    if (st == FF_OK && !ok)
        st = ff_error_set(err, FF_ERR_AUTH,
                          "your certificate %s (%s '%.64s') is not accepted "
                          "by the registry: %s",
                          id->info.serial, ff_trust_role_name(id->info.role),
                          id->info.id, why);
    if (st != FF_OK)
        return st;
    snprintf(id->actor, sizeof(id->actor), "%s:%s",
             ff_trust_role_name(id->info.role), id->info.id);
    id->present = 1;
    id->checked = 1;
    return FF_OK;
}

ff_status
ff_ctl_operator(ff_ctl *ctl, const char *what, ff_registry **out,
                const char **actor, ff_error *err)
{
    ff_status st = ff_ctl_connect(ctl, out, err);
    if (st != FF_OK)
        return st;
    if (!ctl->ident.present)
        return ff_error_set(err, FF_ERR_AUTH,
                            "%s needs an operator certificate "
                            "(--cert/--key/--ca); you have none",
                            what);
    if (ctl->ident.info.role != FF_TRUST_ROLE_OPERATOR)
        return ff_error_set(err, FF_ERR_AUTH,
                            "%s needs an operator certificate "
                            "(--cert/--key/--ca); you are %s '%.64s'",
                            what, ff_trust_role_name(ctl->ident.info.role),
                            ctl->ident.info.id);
    if (actor != NULL)
        *actor = ctl->ident.actor;
    return FF_OK;
}
