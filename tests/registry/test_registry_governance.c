/*
 * test_registry_governance.c - migration 5 over version-4 rows, and the
 * registry side of governance against a real PostgreSQL server: the
 * consortium CA, certificates (issue, check, revoke), signed versions with
 * their lineage, stages with the second-operator rule and the accuracy
 * gate, rollback, history, and the audit rows of all of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ff_registry.h"
#include "pg_fixture.h"
#include "registry_schema.h"

static ff_test_db g_db;
static ff_registry *g_reg;

/* ---- helpers ------------------------------------------------------------ */

static void
must(ff_status st, const ff_error *err, const char *what)
{
    if (st != FF_OK)
        fail_msg("%s: %s", what, ff_error_text(err));
}

/* Expects status want; prints the message so the log shows the refusal. */
static void
refused(ff_status st, ff_status want, const ff_error *err, const char *what)
{
    if (st != want)
        fail_msg("%s: status %d, expected %d (%s)", what, (int)st,
                 (int)want, ff_error_text(err));
    print_message("  %s -> %s\n", what, ff_error_text(err));
}

static long long
count(const char *sql, const char *p1)
{
    const char *params[1] = {p1};

    return ff_test_db_number(&g_db, sql, p1 ? 1 : 0, params);
}

/* Publishes version parent + 1 of model with accuracy acc (negative: no
 * accuracy), signed when sign is set. */
static void
publish(const char *model, int parent, double acc, int sign)
{
    ff_error err = {0};
    uint8_t art[300], sig[64], key[32];
    char digest[65];
    ff_version_new v = {0};
    static const ff_contribution c[] = {
        {"hospital-a", 600,
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
         "0.1.0+abc"},
        {"hospital-b", 400, NULL, NULL}};

    for (size_t i = 0; i < sizeof(art); i++)
        art[i] = (uint8_t)(i * 13 + (unsigned)parent * 7);
    for (size_t i = 0; i < 64; i++)
        sig[i] = (uint8_t)(0xa0 + i);
    for (size_t i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x10 + i);
    ff_registry_digest(art, sizeof(art), digest);
    json_t *m = acc >= 0 ? json_pack("{s:f}", "accuracy", acc)
                         : json_object();
    v.model = model;
    v.parent = parent;
    v.contributions = c;
    v.n_contributions = 2;
    v.metrics = m;
    v.artifact = art;
    v.artifact_len = sizeof(art);
    v.digest_hex = digest;
    if (sign) {
        v.signature = sig;
        v.signer_key = key;
        v.signed_metadata = "{\"round\":0,\"sites\":[\"hospital-a\"]}";
    }
    must(ff_registry_version_publish(g_reg, &v, NULL, &err), &err,
         "publish");
    json_decref(m);
}

/* Promotes and checks the result. */
static void
promote_ok(const char *model, int version, const char *stage,
           const char *actor, int allow, ff_promotion_result want)
{
    ff_error err = {0};
    ff_promotion p = {model, version, stage, actor, "tested", allow};
    ff_promotion_result res = 0;

    must(ff_registry_version_promote(g_reg, &p, &res, &err), &err,
         "promote");
    assert_int_equal(res, want);
}

static int
production_now(const char *model)
{
    ff_error err = {0};
    uint8_t *art = NULL, sig[64], key[32];
    size_t len = 0;
    char *meta = NULL;
    int v = 0, is_signed = 0;

    must(ff_registry_version_production(g_reg, model, &v, &art, &len, sig,
                                        key, &meta, &is_signed, &err),
         &err, "production");
    free(art);
    free(meta);
    return v;
}

/* ---- migration 5 over version-4 rows ------------------------------------ */

static const char *const sums[] = {
    "SELECT md5(string_agg((model, number, parent, round, train_config, "
    "metrics, digest, artifact, artifact_len, created_at, privacy)::text, "
    "',' ORDER BY number)) FROM versions",
    "SELECT md5(string_agg((model, version, site, examples)::text, ',' "
    "ORDER BY site)) FROM contributions",
    "SELECT md5(string_agg((id, at, actor, action, site, details, "
    "prev_hash, row_hash)::text, ',' ORDER BY id)) FROM audit",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM models t",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM rounds t",
};
#define NSUMS (sizeof(sums) / sizeof(sums[0]))

/* Rows written at schema 4 (versions by SQL: publish writes the columns
 * of 5) survive migration 5 unchanged; the versions become candidates,
 * and a legacy version can then be promoted like any other. */
static void
migration_5_keeps_version_4_rows(void **state)
{
    (void)state;
    ff_error err = {0};
    int version = 0;
    char *before[NSUMS];
    uint8_t art[2] = {1, 2};
    char digest[65];

    must(ff_registry_migrate_to(g_reg, 4, &version, &err), &err, "to 4");
    assert_int_equal(version, 4);
    must(ff_registry_model_ensure(g_reg, "legacy", NULL, &err), &err, "m");
    must(ff_registry_round_start(g_reg, "legacy", 1, NULL, &err), &err,
         "round");
    ff_registry_digest(art, 2, digest);
    const char *p[1] = {digest};
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "INSERT INTO versions (model, number, "
                                     "round, metrics, digest, artifact, "
                                     "artifact_len) VALUES ('legacy', 1, 1, "
                                     "'{\"accuracy\": 0.5}', $1, "
                                     "'\\x0102'::bytea, 2)",
                                     1, p), 1);
    assert_int_equal(ff_test_db_exec(&g_db,
                                     "INSERT INTO contributions VALUES "
                                     "('legacy', 1, 'site-a', 10), "
                                     "('legacy', 1, 'site-b', 20)",
                                     0, NULL), 2);
    for (size_t i = 0; i < NSUMS; i++) {
        before[i] = ff_test_db_text(&g_db, sums[i], 0, NULL);
        assert_non_null(before[i]);
    }

    must(ff_registry_migrate_to(g_reg, 5, &version, &err), &err, "to 5");
    assert_int_equal(version, 5);
    for (size_t i = 0; i < NSUMS; i++) {
        char *after = ff_test_db_text(&g_db, sums[i], 0, NULL);
        assert_non_null(after);
        assert_string_equal(before[i], after);
        free(after);
        free(before[i]);
    }
    assert_int_equal(count("SELECT count(*) FROM versions WHERE stage = "
                           "'candidate' AND signature IS NULL", NULL), 1);
    assert_int_equal(count("SELECT count(*) FROM contributions WHERE "
                           "manifest_digest IS NULL AND code_version IS "
                           "NULL", NULL), 2);

    /* The legacy version goes to production like a new one: unsigned. */
    assert_int_equal(production_now("legacy"), 0);
    promote_ok("legacy", 1, "production", "operator:alice", 0,
               FF_PROMOTION_PENDING);
    must(ff_registry_version_approve(g_reg, "legacy", 1, "operator:bob", 0,
                                     &err), &err, "approve");
    uint8_t *got = NULL, sig[64], key[32];
    size_t len = 0;
    char *meta = NULL;
    int v = 0, is_signed = 1;
    must(ff_registry_version_production(g_reg, "legacy", &v, &got, &len, sig,
                                        key, &meta, &is_signed, &err),
         &err, "production");
    assert_int_equal(v, 1);
    assert_int_equal(is_signed, 0);
    assert_null(meta);
    assert_int_equal(len, 2);
    assert_memory_equal(got, art, 2);
    free(got);
    ff_audit_verdict vd;
    must(ff_registry_audit_verify(g_reg, NULL, &vd, &err), &err, "verify");
    assert_true(vd.ok);
    print_message("%zu checksums equal through 4 -> 5; legacy version 1 "
                  "promoted; %lld audit rows verify\n",
                  NSUMS, (long long)vd.rows);
}

/* ---- the CA and certificates -------------------------------------------- */

#define FPR "5481a6e3dbf0afc3000000000000000000000000000000000000000000000001"

static void
ca_recorded_once(void **state)
{
    (void)state;
    ff_error err = {0};
    char digest[65], name[64];
    int found = 1;

    must(ff_registry_ca_get(g_reg, &found, digest, name, sizeof(name), &err),
         &err, "ca_get");
    assert_int_equal(found, 0);
    must(ff_registry_ca_set(g_reg, "Consortium", FPR, "operator:alice",
                            &err), &err, "ca_set");
    refused(ff_registry_ca_set(g_reg, "Other", FPR, "operator:mallory",
                               &err),
            FF_ERR_STATE, &err, "second CA");
    refused(ff_registry_ca_set(g_reg, "Bad", "XYZ", "operator:a", &err),
            FF_ERR_ARG, &err, "malformed digest");
    must(ff_registry_ca_get(g_reg, &found, digest, name, sizeof(name), &err),
         &err, "ca_get");
    assert_int_equal(found, 1);
    assert_string_equal(digest, FPR);
    assert_string_equal(name, "Consortium");
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'ca.created' AND actor = 'operator:alice'",
                           NULL), 1);
}

static void
certificates_issue_check_revoke(void **state)
{
    (void)state;
    ff_error err = {0};
    char why[256];
    int ok = 0;
    int64_t year = (int64_t)time(NULL) + 365 * 86400;

    /* Two certificates for one site, one operator, one expired. */
    must(ff_registry_cert_add(g_reg, "site-1", "site", "aa01", FPR, year,
                              "operator:alice", &err), &err, "add 1");
    must(ff_registry_cert_add(g_reg, "site-1", "site", "aa02", FPR, year,
                              "operator:alice", &err), &err, "add 2");
    must(ff_registry_cert_add(g_reg, "alice", "operator", "bb01", FPR, year,
                              "operator:alice", &err), &err, "add op");
    must(ff_registry_cert_add(g_reg, "old", "auditor", "cc01", FPR, 1000,
                              "operator:alice", &err), &err, "add old");
    long long rows = count("SELECT count(*) FROM audit", NULL);

    /* Refusals write nothing. */
    refused(ff_registry_cert_add(g_reg, "site-2", "site", "aa01", FPR, year,
                                 "operator:alice", &err),
            FF_ERR_STATE, &err, "serial taken");
    refused(ff_registry_cert_add(g_reg, "site-2", "admin", "aa09", FPR, year,
                                 "operator:alice", &err),
            FF_ERR_ARG, &err, "unknown role");
    refused(ff_registry_cert_add(g_reg, "site-2", "site", "AA09", FPR, year,
                                 "operator:alice", &err),
            FF_ERR_ARG, &err, "upper-case serial");
    refused(ff_registry_cert_add(g_reg, "site-2", "site", "aa09", "abc",
                                 year, "operator:alice", &err),
            FF_ERR_ARG, &err, "short fingerprint");
    refused(ff_registry_cert_add(g_reg, "site-2", "site", "aa09", FPR, year,
                                 "", &err),
            FF_ERR_ARG, &err, "no actor");
    assert_int_equal(count("SELECT count(*) FROM audit", NULL), rows);
    assert_int_equal(count("SELECT count(*) FROM certificates", NULL), 4);

    /* Checks. */
    must(ff_registry_cert_check(g_reg, "site-1", "aa01", &ok, why,
                                sizeof(why), &err), &err, "check");
    assert_int_equal(ok, 1);
    must(ff_registry_cert_check(g_reg, "site-2", "aa01", &ok, why,
                                sizeof(why), &err), &err, "check other");
    assert_int_equal(ok, 0);
    assert_non_null(strstr(why, "belongs to site-1"));
    must(ff_registry_cert_check(g_reg, "site-1", "ffff", &ok, why,
                                sizeof(why), &err), &err, "check unknown");
    assert_int_equal(ok, 0);
    assert_non_null(strstr(why, "unknown certificate ffff"));
    must(ff_registry_cert_check(g_reg, "old", "cc01", &ok, why, sizeof(why),
                                &err), &err, "check expired");
    assert_int_equal(ok, 0);
    assert_non_null(strstr(why, "expired at 1970-01-01T00:16:40Z"));

    /* Revoke one serial, then the rest; who and why are kept. */
    must(ff_registry_cert_revoke(g_reg, "site-1", "aa01", "key leaked",
                                 "operator:alice", &err), &err, "revoke 1");
    must(ff_registry_cert_check(g_reg, "site-1", "aa01", &ok, why,
                                sizeof(why), &err), &err, "check revoked");
    assert_int_equal(ok, 0);
    print_message("  revoked: %s\n", why);
    assert_non_null(strstr(why, "revoked at "));
    assert_non_null(strstr(why, " by operator:alice: key leaked"));
    must(ff_registry_cert_check(g_reg, "site-1", "aa02", &ok, why,
                                sizeof(why), &err), &err, "check 2");
    assert_int_equal(ok, 1);
    must(ff_registry_cert_revoke(g_reg, "site-1", NULL, "left consortium",
                                 "operator:bob", &err), &err, "revoke all");
    must(ff_registry_cert_check(g_reg, "site-1", "aa02", &ok, why,
                                sizeof(why), &err), &err, "check 2 again");
    assert_int_equal(ok, 0);
    assert_non_null(strstr(why, "by operator:bob: left consortium"));
    refused(ff_registry_cert_revoke(g_reg, "site-1", NULL, "again",
                                    "operator:bob", &err),
            FF_ERR_STATE, &err, "revoked twice");
    refused(ff_registry_cert_revoke(g_reg, "nobody", NULL, "why",
                                    "operator:bob", &err),
            FF_ERR_NOT_FOUND, &err, "unknown holder");
    refused(ff_registry_cert_revoke(g_reg, "alice", NULL, "", "operator:bob",
                                    &err),
            FF_ERR_ARG, &err, "no reason");

    /* The list and the audit trail. */
    json_t *list = NULL;
    must(ff_registry_certs(g_reg, "site", NULL, &list, &err), &err, "list");
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *c = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(c, "state")),
                            "revoked");
    }
    json_decref(list);
    must(ff_registry_certs(g_reg, NULL, "old", &list, &err), &err, "old");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(list, 0), "state")),
                        "expired");
    json_decref(list);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'cert.issued' AND actor = 'operator:alice'",
                           NULL), 4);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'cert.revoked' AND site = 'site-1' AND "
                           "details->>'reason' = 'left consortium' AND "
                           "details->'serials'->0->>'serial' = 'aa02'",
                           NULL), 1);
}

/* ---- signed versions and lineage ---------------------------------------- */

static void
publish_stores_signature_and_lineage(void **state)
{
    (void)state;
    ff_error err = {0};
    json_t *list = NULL;

    must(ff_registry_model_ensure(g_reg, "signed", NULL, &err), &err, "m");
    publish("signed", 0, 0.8, 1);
    publish("signed", 1, -1, 0);
    must(ff_registry_versions(g_reg, "signed", &list, &err), &err, "list");
    const json_t *v1 = json_array_get(list, 0);
    const json_t *v2 = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(v1, "stage")),
                        "candidate");
    assert_true(json_is_true(json_object_get(v1, "signed")));
    const char *sig = json_string_value(json_object_get(v1, "signature"));
    assert_non_null(sig);
    assert_int_equal(strlen(sig), 128);
    assert_memory_equal(sig, "a0a1a2a3", 8);
    assert_string_equal(json_string_value(json_object_get(v1, "signer_key")),
                        "101112131415161718191a1b1c1d1e1f"
                        "202122232425262728292a2b2c2d2e2f");
    assert_string_equal(json_string_value(json_object_get(
                            v1, "signed_metadata")),
                        "{\"round\":0,\"sites\":[\"hospital-a\"]}");
    const json_t *c0 = json_array_get(json_object_get(v1, "contributions"),
                                      0);
    assert_string_equal(json_string_value(json_object_get(c0,
                                                          "code_version")),
                        "0.1.0+abc");
    assert_memory_equal(json_string_value(json_object_get(
                            c0, "manifest_digest")), "0011223344", 10);
    assert_true(json_is_false(json_object_get(v2, "signed")));
    assert_true(json_is_null(json_object_get(v2, "signature")));
    json_decref(list);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'version.published' AND details->>'model' = $1 "
                           "AND details->>'signed' = 'true'", "signed"), 1);

    /* Malformed signature fields are refused; nothing written. */
    uint8_t art[4] = {1, 2, 3, 4}, sig64[64] = {0};
    char digest[65];
    ff_registry_digest(art, 4, digest);
    ff_version_new bad = {0};
    bad.model = "signed";
    bad.parent = 2;
    bad.artifact = art;
    bad.artifact_len = 4;
    bad.digest_hex = digest;
    bad.signature = sig64;
    refused(ff_registry_version_publish(g_reg, &bad, NULL, &err), FF_ERR_ARG,
            &err, "signature without key");
    bad.signature = NULL;
    bad.signed_metadata = "{}";
    refused(ff_registry_version_publish(g_reg, &bad, NULL, &err), FF_ERR_ARG,
            &err, "metadata without signature");
    bad.signed_metadata = NULL;
    ff_contribution c = {"hospital-a", 1, "not-hex", NULL};
    bad.contributions = &c;
    bad.n_contributions = 1;
    refused(ff_registry_version_publish(g_reg, &bad, NULL, &err), FF_ERR_ARG,
            &err, "bad manifest digest");
    assert_int_equal(count("SELECT count(*) FROM versions WHERE model = $1",
                           "signed"), 2);
    assert_int_equal(production_now("signed"), 0);
}

/* ---- stages ------------------------------------------------------------- */

/* Versions 1 (0.80), 2 (0.85), 3 (0.70), 4 (0.90): two operators for
 * production, the same one refused; the gate; rollback; history. */
static void
promotion_rules_and_history(void **state)
{
    (void)state;
    ff_error err = {0};
    static const double acc[] = {0.80, 0.85, 0.70, 0.90};

    must(ff_registry_model_ensure(g_reg, "staged", NULL, &err), &err, "m");
    for (int i = 0; i < 4; i++)
        publish("staged", i, acc[i], 1);

    /* Version 1: requested by alice, alice cannot approve, bob can. */
    promote_ok("staged", 1, "production", "operator:alice", 0,
               FF_PROMOTION_PENDING);
    assert_int_equal(production_now("staged"), 0);
    refused(ff_registry_version_approve(g_reg, "staged", 1, "operator:alice",
                                        0, &err),
            FF_ERR_STATE, &err, "same operator approves");
    assert_non_null(strstr(ff_error_text(&err), "second, different"));
    ff_promotion again = {"staged", 1, "production", "operator:alice", NULL,
                          0};
    refused(ff_registry_version_promote(g_reg, &again, NULL, &err),
            FF_ERR_STATE, &err, "same operator promotes twice");
    refused(ff_registry_version_approve(g_reg, "staged", 2, "operator:bob",
                                        0, &err),
            FF_ERR_NOT_FOUND, &err, "nothing pending");
    must(ff_registry_version_approve(g_reg, "staged", 1, "operator:bob", 0,
                                     &err), &err, "approve 1");
    assert_int_equal(production_now("staged"), 1);

    /* Version 2 through staged, then production by a second promote. */
    promote_ok("staged", 2, "staged", "operator:alice", 0,
               FF_PROMOTION_DONE);
    promote_ok("staged", 2, "production", "operator:bob", 0,
               FF_PROMOTION_PENDING);
    promote_ok("staged", 2, "production", "operator:alice", 0,
               FF_PROMOTION_DONE);
    assert_int_equal(production_now("staged"), 2);
    assert_int_equal(count("SELECT count(*) FROM versions WHERE model = $1 "
                           "AND number = 1 AND stage = 'archived'",
                           "staged"), 1);
    ff_promotion arch = {"staged", 2, "archived", "operator:alice", NULL, 0};
    refused(ff_registry_version_promote(g_reg, &arch, NULL, &err),
            FF_ERR_STATE, &err, "archive the production version");

    /* Version 3 is worse: refused (and kept as refused); allowed with the
     * flag, recorded. */
    ff_promotion worse = {"staged", 3, "production", "operator:alice",
                          "smaller model", 0};
    refused(ff_registry_version_promote(g_reg, &worse, NULL, &err),
            FF_ERR_STATE, &err, "accuracy gate");
    assert_non_null(strstr(ff_error_text(&err), "0.7000 is below "
                                                "production version 2's "
                                                "0.8500"));
    assert_int_equal(count("SELECT count(*) FROM promotions WHERE model = $1"
                           " AND version = 3 AND state = 'refused'",
                           "staged"), 1);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'promotion.refused' AND details->>'model' = $1",
                           "staged"), 1);
    worse.allow_regression = 1;
    must(ff_registry_version_promote(g_reg, &worse, NULL, &err), &err,
         "promote 3 allowed");
    must(ff_registry_version_approve(g_reg, "staged", 3, "operator:bob", 0,
                                     &err), &err, "approve 3");
    assert_int_equal(production_now("staged"), 3);

    /* Rollback: to the previous one by default, never to a version that
     * was not in production. */
    int restored = 0;
    refused(ff_registry_rollback(g_reg, "staged", 4, "operator:carol", "x",
                                 NULL, &err),
            FF_ERR_STATE, &err, "rollback to a never-production version");
    refused(ff_registry_rollback(g_reg, "staged", 3, "operator:carol", "x",
                                 NULL, &err),
            FF_ERR_STATE, &err, "rollback to the current version");
    refused(ff_registry_rollback(g_reg, "staged", 99, "operator:carol", "x",
                                 NULL, &err),
            FF_ERR_NOT_FOUND, &err, "rollback to no version");
    refused(ff_registry_rollback(g_reg, "signed", 0, "operator:carol", "x",
                                 NULL, &err),
            FF_ERR_STATE, &err, "rollback without production");
    must(ff_registry_rollback(g_reg, "staged", 0, "operator:carol",
                              "regression in the field", &restored, &err),
         &err, "rollback");
    assert_int_equal(restored, 2);
    assert_int_equal(production_now("staged"), 2);

    /* History: four periods with their operators. */
    json_t *h = NULL;
    must(ff_registry_history(g_reg, "staged", &h, &err), &err, "history");
    const json_t *periods = json_object_get(h, "periods");
    assert_int_equal(json_array_size(periods), 4);
    static const struct {
        int version;
        const char *how, *by, *approved;
        int allow;
    } want[] = {{1, "promote", "operator:alice", "operator:bob", 0},
                {2, "promote", "operator:bob", "operator:alice", 0},
                {3, "promote", "operator:alice", "operator:bob", 1},
                {2, "rollback", "operator:carol", NULL, 0}};
    for (size_t i = 0; i < 4; i++) {
        const json_t *p = json_array_get(periods, i);
        assert_int_equal(json_integer_value(json_object_get(p, "version")),
                         want[i].version);
        assert_string_equal(json_string_value(json_object_get(p, "how")),
                            want[i].how);
        assert_string_equal(json_string_value(json_object_get(
                                p, "promoted_by")), want[i].by);
        const char *ap = json_string_value(json_object_get(p,
                                                           "approved_by"));
        if (want[i].approved == NULL)
            assert_null(ap);
        else
            assert_string_equal(ap, want[i].approved);
        assert_int_equal(json_is_true(json_object_get(p,
                                                      "allow_regression")),
                         want[i].allow);
        assert_int_equal(json_is_null(json_object_get(p, "until")), i == 3);
    }
    assert_int_equal(json_integer_value(json_object_get(h, "production")),
                     2);
    assert_int_equal(json_array_size(json_object_get(h, "requests")), 5);
    json_decref(h);
    refused(ff_registry_history(g_reg, "no-such", &h, &err),
            FF_ERR_NOT_FOUND, &err, "history of no model");

    /* Every change is audited by its operator; the chain verifies. */
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'version.promoted' AND details->>'model' = $1",
                           "staged"), 4);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'version.promoted' AND actor = 'operator:bob' "
                           "AND details->>'version' = '3' AND "
                           "details->>'reason' = 'smaller model' AND "
                           "details->>'requested_by' = 'operator:alice' AND "
                           "details->>'allow_regression' = 'true'", NULL),
                     1);
    assert_int_equal(count("SELECT count(*) FROM audit WHERE action = "
                           "'version.rolled_back' AND actor = "
                           "'operator:carol' AND details->>'version' = '2'",
                           NULL), 1);
    ff_audit_verdict vd;
    must(ff_registry_audit_verify(g_reg, NULL, &vd, &err), &err, "verify");
    assert_true(vd.ok);
    print_message("4 production periods, 5 requests, %lld audit rows "
                  "verify\n", (long long)vd.rows);
}

static void
promotion_bad_arguments(void **state)
{
    (void)state;
    ff_error err = {0};
    ff_promotion p = {"staged", 1, "live", "operator:alice", NULL, 0};

    refused(ff_registry_version_promote(g_reg, &p, NULL, &err), FF_ERR_ARG,
            &err, "unknown stage");
    p.to_stage = "staged";
    p.version = 0;
    refused(ff_registry_version_promote(g_reg, &p, NULL, &err), FF_ERR_ARG,
            &err, "version 0");
    p.version = 77;
    refused(ff_registry_version_promote(g_reg, &p, NULL, &err),
            FF_ERR_NOT_FOUND, &err, "no version 77");
    p.model = "no-model";
    p.version = 1;
    refused(ff_registry_version_promote(g_reg, &p, NULL, &err),
            FF_ERR_NOT_FOUND, &err, "no model");
    refused(ff_registry_rollback(g_reg, "staged", 0, "operator:a", NULL,
                                 NULL, &err),
            FF_ERR_ARG, &err, "rollback without reason");
}

static int
setup(void **state)
{
    (void)state;
    ff_error err = {0};

    if (ff_registry_open(&g_reg, g_db.conninfo, &err) != FF_OK) {
        fprintf(stderr, "open: %s\n", ff_error_text(&err));
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    ff_registry_close(g_reg);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migration_5_keeps_version_4_rows),
        cmocka_unit_test(ca_recorded_once),
        cmocka_unit_test(certificates_issue_check_revoke),
        cmocka_unit_test(publish_stores_signature_and_lineage),
        cmocka_unit_test(promotion_rules_and_history),
        cmocka_unit_test(promotion_bad_arguments),
    };

    if (ff_test_db_create(&g_db, "governance") != 0) {
        ff_test_db_drop(&g_db);
        return 1;
    }
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ff_test_db_drop(&g_db);
    return failed ? 1 : 0;
}
