/*
 * registry_certs.c - the certificates the consortium CA issued, as the
 * registry records them: issue, revoke, check, list (docs/governance.md).
 *
 * The registry never sees a certificate's bytes: trust/ verifies chains
 * and keys; here live the facts a chain cannot carry, that a certificate
 * was handed out through fedfusectl and whether it was revoked since.
 * Every write is one transaction with its audit row.
 */
#include "ff_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_pq.h"

/* Longest serial accepted (hex digits); trust/ makes 32. */
#define FF_CERT_SERIAL_MAX 64

/* 1 when s is 1..max lower-case hex digits. */
static int
hex_run(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;

    return n >= 1 && n <= max && strspn(s, "0123456789abcdef") == n;
}

/* 1 when role names one a certificate may carry. */
static int
role_known(const char *role)
{
    static const char *const roles[] = {"site", "operator", "auditor",
                                        "coordinator"};

    for (size_t i = 0; role != NULL && i < 4; i++)
        if (strcmp(role, roles[i]) == 0)
            return 1;
    return 0;
}

/* Checks what ff_registry_cert_add is given. */
static ff_status
cert_add_check(const char *holder, const char *role, const char *serial,
               const char *fingerprint, const char *actor, ff_error *err)
{
    ff_status st = ff_pq_check_name(holder, "certificate holder", err);
    if (st != FF_OK)
        return st;
    if (!role_known(role))
        return ff_error_set(err, FF_ERR_ARG,
                            "role '%.40s': must be site, operator, auditor "
                            "or coordinator",
                            role ? role : "(null)");
    if (!hex_run(serial, FF_CERT_SERIAL_MAX))
        return ff_error_set(err, FF_ERR_ARG,
                            "serial must be 1 to %d lower-case hex digits",
                            FF_CERT_SERIAL_MAX);
    if (!hex_run(fingerprint, 64) || strlen(fingerprint) != 64)
        return ff_error_set(err, FF_ERR_ARG,
                            "fingerprint must be 64 lower-case hex digits");
    if (actor == NULL || actor[0] == '\0')
        return ff_error_set(err, FF_ERR_ARG, "certificate: actor is empty");
    return FF_OK;
}

/* Inserts the certificate and audits it. Caller holds the lock and a
 * transaction. */
static ff_status
cert_add_tx(ff_registry *r, const char *holder, const char *role,
            const char *serial, const char *fingerprint, int64_t not_after,
            const char *actor, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, serial);
    ff_pq_arg_text(&a, holder);
    ff_pq_arg_text(&a, role);
    ff_pq_arg_text(&a, fingerprint);
    ff_pq_arg_int(&a, not_after);
    ff_pq_arg_text(&a, actor);
    ff_status st = ff_pq_command(
        r,
        "INSERT INTO certificates (serial, holder, role, fingerprint, "
        "not_after, issued_by) VALUES ($1, $2, $3, $4, "
        "to_timestamp($5::bigint), $6)",
        &a, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_ERR_STATE)
        return ff_error_set(err, st, "certificate serial %s is already "
                            "recorded", serial);
    if (st != FF_OK)
        return st;

    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:I}", "holder", holder,
                          "role", role, "serial", serial, "fingerprint",
                          fingerprint, "not_after", (json_int_t)not_after);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, actor, "cert.issued",
                     strcmp(role, "site") == 0 ? holder : NULL, d, err);
    json_decref(d);
    return st;
}

ff_status
ff_registry_cert_add(ff_registry *r, const char *holder, const char *role,
                     const char *serial, const char *fingerprint,
                     int64_t not_after, const char *actor, ff_error *err)
{
    ff_status st = cert_add_check(holder, role, serial, fingerprint, actor,
                                  err);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording a certificate");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, cert_add_tx(r, holder, role, serial,
                                          fingerprint, not_after, actor,
                                          err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording the certificate of %.60s",
                             holder);
    return FF_OK;
}

/* When nothing was revoked: no certificate at all (FF_ERR_NOT_FOUND) or
 * all of them revoked already (FF_ERR_STATE). Caller holds the lock. */
static ff_status
revoke_none(ff_registry *r, const char *holder, const char *serial,
            ff_error *err)
{
    ff_pq_args a;
    int64_t known = 0;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, holder);
    ff_pq_arg_text(&a, serial);
    ff_status st = ff_pq_fetch_int(r,
                                   "SELECT count(*) FROM certificates "
                                   "WHERE holder = $1 AND "
                                   "($2::text IS NULL OR serial = $2)",
                                   &a, &known, NULL, err);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return st;
    if (known == 0)
        return ff_error_set(err, FF_ERR_NOT_FOUND,
                            "%.60s has no such certificate", holder);
    return ff_error_set(err, FF_ERR_STATE,
                        "the certificate%s of %.60s %s already revoked",
                        known == 1 ? "" : "s", holder,
                        known == 1 ? "is" : "are");
}

/* Marks the certificates revoked, then audits them with their serials.
 * Caller holds the lock and a transaction. */
static ff_status
cert_revoke_tx(ff_registry *r, const char *holder, const char *serial,
               const char *reason, const char *actor, ff_error *err)
{
    ff_pq_args a;
    json_t *serials = NULL;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, holder);
    ff_pq_arg_text(&a, serial);
    ff_pq_arg_text(&a, reason);
    ff_pq_arg_text(&a, actor);
    ff_status st = ff_pq_fetch_json(
        r,
        "WITH rev AS (UPDATE certificates SET revoked_at = now(), "
        "  revoked_by = $4, revoke_reason = $3 "
        "  WHERE holder = $1 AND ($2::text IS NULL OR serial = $2) "
        "  AND revoked_at IS NULL RETURNING serial, role) "
        "SELECT coalesce(json_agg(json_build_object('serial', serial, "
        "  'role', role) ORDER BY serial), '[]'::json) FROM rev",
        &a, &serials, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_OK && json_array_size(serials) == 0)
        st = revoke_none(r, holder, serial, err);
    if (st != FF_OK) {
        json_decref(serials);
        return st;
    }

    const char *role = json_string_value(
        json_object_get(json_array_get(serials, 0), "role"));
    json_t *d = json_pack("{s:s, s:o, s:s}", "holder", holder, "serials",
                          serials, "reason", reason);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, actor, "cert.revoked",
                     role && strcmp(role, "site") == 0 ? holder : NULL, d,
                     err);
    json_decref(d);
    return st;
}

ff_status
ff_registry_cert_revoke(ff_registry *r, const char *holder,
                        const char *serial, const char *reason,
                        const char *actor, ff_error *err)
{
    ff_status st = ff_pq_check_name(holder, "certificate holder", err);
    if (st == FF_OK && serial != NULL && !hex_run(serial, FF_CERT_SERIAL_MAX))
        st = ff_error_set(err, FF_ERR_ARG,
                          "serial must be 1 to %d lower-case hex digits",
                          FF_CERT_SERIAL_MAX);
    if (st == FF_OK && (reason == NULL || reason[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "a revocation needs a reason");
    if (st == FF_OK && (actor == NULL || actor[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "revocation: actor is empty");
    if (st != FF_OK)
        return ff_error_wrap(err, st, "revoking a certificate");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, cert_revoke_tx(r, holder, serial, reason,
                                             actor, err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "revoking the certificate of %.60s",
                             holder);
    return FF_OK;
}

/* Writes why (cap bytes) from one row of the check query. */
static int
check_verdict(const PGresult *res, const char *holder, const char *serial,
              char *why, size_t cap)
{
    char dummy[1];

    if (why == NULL || cap == 0) {
        why = dummy;
        cap = sizeof(dummy);
    }
    if (PQntuples(res) == 0) {
        snprintf(why, cap, "unknown certificate %.64s", serial);
        return 0;
    }
    if (strcmp(PQgetvalue(res, 0, 0), holder) != 0) {
        snprintf(why, cap, "certificate %.64s belongs to %.64s, not %.64s",
                 serial, PQgetvalue(res, 0, 0), holder);
        return 0;
    }
    if (!PQgetisnull(res, 0, 1)) {
        snprintf(why, cap, "revoked at %s by %.80s: %.200s",
                 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3));
        return 0;
    }
    if (strcmp(PQgetvalue(res, 0, 5), "t") == 0) {
        snprintf(why, cap, "expired at %s", PQgetvalue(res, 0, 4));
        return 0;
    }
    snprintf(why, cap, "ok");
    return 1;
}

ff_status
ff_registry_cert_check(ff_registry *r, const char *holder,
                       const char *serial, int *ok, char *why, size_t cap,
                       ff_error *err)
{
    ff_pq_args a;
    PGresult *res = NULL;

    *ok = 0;
    if (why != NULL && cap > 0)
        why[0] = '\0';
    if (holder == NULL || serial == NULL)
        return ff_error_set(err, FF_ERR_ARG,
                            "certificate check: no holder or serial");
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, serial);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(
            r,
            "SELECT holder, to_char(revoked_at, "
            "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), revoked_by, "
            "  revoke_reason, to_char(not_after, "
            "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), not_after < now() "
            "FROM certificates WHERE serial = $1",
            &a, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "checking certificate %.64s", serial);
    *ok = check_verdict(res, holder, serial, why, cap);
    PQclear(res);
    return FF_OK;
}

ff_status
ff_registry_certs(ff_registry *r, const char *role, const char *holder,
                  json_t **out, ff_error *err)
{
    ff_pq_args a;

    *out = NULL;
    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, role);
    ff_pq_arg_text(&a, holder);
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_fetch_json(
            r,
            "SELECT coalesce(json_agg(json_build_object("
            "  'holder', c.holder, 'role', c.role, 'serial', c.serial,"
            "  'fingerprint', c.fingerprint, 'not_after', c.not_after,"
            "  'issued_by', c.issued_by, 'issued_at', c.issued_at,"
            "  'revoked_at', c.revoked_at, 'revoked_by', c.revoked_by,"
            "  'revoke_reason', c.revoke_reason, 'state', CASE"
            "    WHEN c.revoked_at IS NOT NULL THEN 'revoked'"
            "    WHEN c.not_after < now() THEN 'expired'"
            "    ELSE 'active' END)"
            "  ORDER BY c.issued_at DESC, c.serial), '[]'::json) "
            "FROM certificates c "
            "WHERE ($1::text IS NULL OR c.role = $1) "
            "AND ($2::text IS NULL OR c.holder = $2)",
            &a, out, err);
    ff_pq_unlock(r);
    ff_pq_args_cleanup(&a);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "listing certificates");
    return FF_OK;
}

/* Inserts the CA row and audits it. Caller holds the lock and a
 * transaction. */
static ff_status
ca_set_tx(ff_registry *r, const char *name, const char *digest,
          const char *actor, ff_error *err)
{
    ff_pq_args a;

    ff_pq_args_init(&a);
    ff_pq_arg_text(&a, name);
    ff_pq_arg_text(&a, digest);
    ff_pq_arg_text(&a, actor);
    ff_status st = ff_pq_command(r,
                                 "INSERT INTO consortium_ca (id, name, "
                                 "cert_digest, created_by) VALUES (1, $1, "
                                 "$2, $3)",
                                 &a, err);
    ff_pq_args_cleanup(&a);
    if (st == FF_ERR_STATE)
        return ff_error_set(err, st,
                            "the registry already has its consortium CA");
    if (st != FF_OK)
        return st;

    json_t *d = json_pack("{s:s, s:s}", "name", name, "cert_digest", digest);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "registry: out of memory");
    st = ff_pq_audit(r, actor, "ca.created", NULL, d, err);
    json_decref(d);
    return st;
}

ff_status
ff_registry_ca_set(ff_registry *r, const char *name, const char *cert_digest,
                   const char *actor, ff_error *err)
{
    ff_status st = ff_pq_check_name(name, "CA name", err);
    if (st == FF_OK && (!hex_run(cert_digest, 64) ||
                        strlen(cert_digest) != 64))
        st = ff_error_set(err, FF_ERR_ARG,
                          "CA digest must be 64 lower-case hex digits");
    if (st == FF_OK && (actor == NULL || actor[0] == '\0'))
        st = ff_error_set(err, FF_ERR_ARG, "CA: actor is empty");
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording the consortium CA");

    st = ff_pq_lock(r, err);
    if (st == FF_OK) {
        st = ff_pq_begin(r, err);
        if (st == FF_OK)
            st = ff_pq_end(r, ca_set_tx(r, name, cert_digest, actor, err),
                           err);
    }
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "recording the consortium CA");
    return FF_OK;
}

ff_status
ff_registry_ca_get(ff_registry *r, int *found, char cert_digest[65],
                   char *name, size_t cap, ff_error *err)
{
    PGresult *res = NULL;

    *found = 0;
    cert_digest[0] = '\0';
    if (name != NULL && cap > 0)
        name[0] = '\0';
    ff_status st = ff_pq_lock(r, err);
    if (st == FF_OK)
        st = ff_pq_query(r,
                         "SELECT cert_digest, name FROM consortium_ca "
                         "WHERE id = 1",
                         NULL, 0, PGRES_TUPLES_OK, &res, err);
    ff_pq_unlock(r);
    if (st != FF_OK)
        return ff_error_wrap(err, st, "reading the consortium CA");
    if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 64) {
        memcpy(cert_digest, PQgetvalue(res, 0, 0), 64);
        cert_digest[64] = '\0';
        if (name != NULL && cap > 0)
            snprintf(name, cap, "%s", PQgetvalue(res, 0, 1));
        *found = 1;
    }
    PQclear(res);
    return FF_OK;
}
