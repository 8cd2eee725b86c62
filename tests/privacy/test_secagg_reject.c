/* test_secagg_reject.c - tampered, forged, replayed and misrouted messages
 * are rejected with a clear reason, and too few survivors abort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sa_harness.h"

/* Layout facts of the version-1 messages that the tests poke at. */
#define HDR 8
#define FWD_ENTRY (8 + 24 + 104)
#define RESP_ENTRY (5 + 36)

static void expect(ff_privacy_status got, ff_privacy_status want,
                   const ff_privacy_error *err, const char *needle,
                   const char *label)
{
    printf("%-30s -> %s: %s\n", label, ff_privacy_status_name(got),
           ff_privacy_error_text(err));
    assert_int_equal(got, want);
    assert_non_null(strstr(err->msg, needle));
}

static void forged_advert_signature(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 4, 32, 64, 1000, 1);
    sa_world w;
    sa_world_init(&w, &c, 1);
    ff_secagg_msg m = {0};
    ff_privacy_error err = {0};
    assert_int_equal(ff_secagg_site_advertise(w.sites[2], &m, &err), 0);
    m.data[m.len - 5] ^= 0x40; /* inside the signature */
    expect(ff_secagg_server_add_advert(w.srv, m.data, m.len, &err),
           FF_PRIVACY_ERR_AUTH, &err, "signature does not verify",
           "forged advert at server");
    ff_secagg_msg_cleanup(&m);
    sa_world_cleanup(&w);
}

/* A server that swaps a key in the list is caught by the neighbours. */
static void forged_key_list_entry(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 4, 32, 64, 1000, 2);
    sa_world w;
    sa_world_init(&w, &c, 2);
    ff_privacy_error err = {0};
    assert_int_equal(sa_stage_adverts(&w, &err), 0);
    ff_secagg_msg keys = {0}, out = {0};
    assert_int_equal(ff_secagg_server_keys_message(w.srv, &keys, &err), 0);
    /* entry of site 1: header 8 + round 8 + digest 32 + count 4, 132 each */
    keys.data[HDR + 44 + 132 * 1 + 40] ^= 1; /* its mask public key */
    expect(ff_secagg_site_share_keys(w.sites[0], keys.data, keys.len, &out,
                                     &err),
           FF_PRIVACY_ERR_AUTH, &err, "site 1 carries a signature",
           "swapped key in key list");
    ff_secagg_msg_cleanup(&keys);
    sa_world_cleanup(&w);
}

static void tampered_share_in_transit(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 4, 32, 64, 1000, 3);
    sa_world w;
    sa_world_init(&w, &c, 3);
    ff_privacy_error err = {0};
    assert_int_equal(sa_stage_adverts(&w, &err), 0);
    assert_int_equal(sa_stage_shares(&w, &err), 0);
    ff_secagg_msg fwd = {0};
    assert_int_equal(ff_secagg_server_forward_message(w.srv, 4, &fwd, &err),
                     0);
    fwd.data[HDR + 40 + FWD_ENTRY + 60] ^= 0x10; /* second entry's ct */
    expect(ff_secagg_site_receive_shares(w.sites[4], fwd.data, fwd.len, &err),
           FF_PRIVACY_ERR_AUTH, &err, "fails authentication",
           "tampered share ciphertext");
    ff_secagg_msg_cleanup(&fwd);
    sa_world_cleanup(&w);
}

static void share_sent_to_wrong_recipient(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 4, 32, 64, 1000, 4);
    sa_world w;
    sa_world_init(&w, &c, 4);
    ff_privacy_error err = {0};
    assert_int_equal(sa_stage_adverts(&w, &err), 0);
    assert_int_equal(sa_stage_shares(&w, &err), 0);
    ff_secagg_msg to1 = {0}, to2 = {0};
    assert_int_equal(ff_secagg_server_forward_message(w.srv, 1, &to1, &err),
                     0);
    assert_int_equal(ff_secagg_server_forward_message(w.srv, 2, &to2, &err),
                     0);

    /* an entry meant for site 1 inside site 2's batch */
    uint8_t *e2 = to2.data + HDR + 40, *e1 = to1.data + HDR + 40;
    memcpy(e2, e1, FWD_ENTRY); /* from site 0 to site 1 */
    expect(ff_secagg_site_receive_shares(w.sites[2], to2.data, to2.len, &err),
           FF_PRIVACY_ERR_PROTOCOL, &err, "addressed to site 1",
           "share for site 1 given to 2");

    /* the same entry relabelled for site 3: the AEAD binds the recipient
     * (site 2 gave up on the round after the first bad batch) */
    ff_secagg_msg to3 = {0};
    assert_int_equal(ff_secagg_server_forward_message(w.srv, 3, &to3, &err),
                     0);
    uint8_t *e3 = to3.data + HDR + 40;
    memcpy(e3, e1, FWD_ENTRY);
    e3[4] = 3;
    expect(ff_secagg_site_receive_shares(w.sites[3], to3.data, to3.len, &err),
           FF_PRIVACY_ERR_AUTH, &err, "fails authentication",
           "relabelled share for site 3");
    ff_secagg_msg_cleanup(&to1);
    ff_secagg_msg_cleanup(&to2);
    ff_secagg_msg_cleanup(&to3);
    sa_world_cleanup(&w);
}

/* Messages of round 7 fed into round 8 (same sites, same identities). */
static void replay_from_earlier_round(void **state)
{
    (void)state;
    ff_secagg_config c7 = sa_config(6, 5, 4, 32, 64, 1000, 7);
    sa_world w7;
    sa_world_init(&w7, &c7, 7);
    ff_privacy_error err = {0};
    ff_secagg_msg adv7 = {0}, fwd7 = {0};
    assert_int_equal(ff_secagg_site_advertise(w7.sites[3], &adv7, &err), 0);
    assert_int_equal(ff_secagg_server_add_advert(w7.srv, adv7.data, adv7.len,
                                                 &err), 0);
    for (uint32_t i = 0; i < 6; i++)
        if (i != 3) {
            ff_secagg_msg m = {0};
            assert_int_equal(ff_secagg_site_advertise(w7.sites[i], &m, &err),
                             0);
            assert_int_equal(ff_secagg_server_add_advert(w7.srv, m.data,
                                                         m.len, &err), 0);
            ff_secagg_msg_cleanup(&m);
        }
    assert_int_equal(ff_secagg_server_close_adverts(w7.srv, &err), 0);
    assert_int_equal(sa_stage_shares(&w7, &err), 0);
    assert_int_equal(ff_secagg_server_forward_message(w7.srv, 3, &fwd7, &err),
                     0);

    /* round 8 with the same identity keys */
    ff_secagg_config c8 = c7;
    c8.round = 8;
    ff_secagg_server *srv8 = NULL;
    ff_secagg_site *site3 = NULL;
    assert_int_equal(ff_secagg_server_create(&c8, w7.id_pk, &srv8, &err), 0);
    expect(ff_secagg_server_add_advert(srv8, adv7.data, adv7.len, &err),
           FF_PRIVACY_ERR_SESSION, &err, "round 7",
           "round-7 advert in round 8");

    /* a round-8 site that reached stage 3 gets round 7's shares */
    sa_world w8;
    sa_world_init(&w8, &c8, 8);
    assert_int_equal(sa_stage_adverts(&w8, &err), 0);
    assert_int_equal(sa_stage_shares(&w8, &err), 0);
    expect(ff_secagg_site_receive_shares(w8.sites[3], fwd7.data, fwd7.len,
                                         &err),
           FF_PRIVACY_ERR_SESSION, &err, "another session",
           "round-7 shares in round 8");
    (void)site3;
    ff_secagg_server_destroy(srv8);
    ff_secagg_msg_cleanup(&adv7);
    ff_secagg_msg_cleanup(&fwd7);
    sa_world_cleanup(&w8);
    sa_world_cleanup(&w7);
}

/* A site never reveals both shares of one neighbour. */
static void site_refuses_both_shares(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 3, 32, 64, 1000, 9);
    sa_world w;
    sa_world_init(&w, &c, 9);
    ff_privacy_error err = {0};
    assert_int_equal(sa_stage_adverts(&w, &err), 0);
    assert_int_equal(sa_stage_shares(&w, &err), 0);
    assert_int_equal(sa_stage_masked(&w, &err), 0);
    ff_secagg_msg req = {0}, ans = {0}, ans2 = {0};
    assert_int_equal(ff_secagg_server_unmask_request(w.srv, 0, &req, &err), 0);
    assert_int_equal(ff_secagg_site_unmask(w.sites[0], req.data, req.len,
                                           &ans, &err), 0);
    /* the same request, now claiming site 1 dropped: mask-key share */
    req.data[HDR + 40 + 5 * 1 + 4] = 2;
    expect(ff_secagg_site_unmask(w.sites[0], req.data, req.len, &ans2, &err),
           FF_PRIVACY_ERR_PROTOCOL, &err, "refusing",
           "seed then mask-key share");
    assert_null(ans2.data);
    ff_secagg_msg_cleanup(&req);
    ff_secagg_msg_cleanup(&ans);
    sa_world_cleanup(&w);
}

/* A corrupt revealed share: caught by the key check; with a spare share
 * the server leaves it out and the sum is still exact. */
static void corrupt_revealed_share(void **state)
{
    (void)state;
    for (int spare = 0; spare < 2; spare++) {
        /* t = 6 of 6: no spare; t = 5 of 6: one spare */
        ff_secagg_config c = sa_config(6, 5, spare ? 5 : 6, 32, 64, 1000,
                                       10 + spare);
        sa_world w;
        sa_world_init(&w, &c, 10);
        ff_privacy_error err = {0};
        assert_int_equal(sa_stage_adverts(&w, &err), 0);
        assert_int_equal(sa_stage_shares(&w, &err), 0);
        assert_int_equal(sa_stage_masked(&w, &err), 0);
        for (uint32_t i = 0; i < 6; i++) {
            ff_secagg_msg req = {0}, ans = {0};
            assert_int_equal(ff_secagg_server_unmask_request(w.srv, i, &req,
                                                             &err), 0);
            assert_int_equal(ff_secagg_site_unmask(w.sites[i], req.data,
                                                   req.len, &ans, &err), 0);
            if (i == 4) /* site 4's share of site 0's seed */
                ans.data[HDR + 40 + 5 + 20] ^= 0x01;
            assert_int_equal(ff_secagg_server_add_unmask(w.srv, ans.data,
                                                         ans.len, &err), 0);
            ff_secagg_msg_cleanup(&req);
            ff_secagg_msg_cleanup(&ans);
        }
        ff_privacy_status st = ff_secagg_server_close_unmasking(w.srv, &err);
        if (!spare) {
            expect(st, FF_PRIVACY_ERR_AUTH, &err, "does not match",
                   "corrupt share, none spare");
        } else {
            printf("%-30s -> %s\n", "corrupt share, one spare",
                   ff_privacy_status_name(st));
            assert_int_equal(st, FF_PRIVACY_OK);
            uint32_t got[64];
            assert_int_equal(ff_secagg_server_result_chunk(w.srv, 0, got, 64,
                                                           &err), 0);
            for (int j = 0; j < 64; j++) {
                uint32_t want = 0;
                for (int s = 0; s < 6; s++)
                    want += w.inputs[s * 64 + j];
                assert_int_equal(got[j], want);
            }
        }
        sa_world_cleanup(&w);
    }
}

/* Survivors below the threshold abort, at each stage. */
static void too_few_survivors_abort(void **state)
{
    (void)state;
    static const char *const labels[] = {
        "", "too few adverts", "too few shares", "too few masked inputs",
        "too few unmask answers"};
    for (int kind = DROP_BEFORE_ADVERT; kind <= DROP_BEFORE_UNMASK; kind++) {
        ff_secagg_config c = sa_config(8, 7, 6, 32, 32, 1000, 50 + kind);
        sa_world w;
        sa_world_init(&w, &c, 5);
        w.drop[1] = w.drop[4] = w.drop[6] = (uint8_t)kind; /* 5 of 8 left */
        uint64_t bad = 0;
        ff_privacy_error err = {0};
        ff_privacy_status st = sa_run(&w, &bad, &err);
        const char *needle = kind == DROP_BEFORE_UNMASK
                                 ? "only 5 of 8 survivors, threshold 6"
                                 : "threshold 6";
        expect(st, FF_PRIVACY_ERR_ABORTED, &err, needle, labels[kind]);
        assert_non_null(strstr(err.msg, "aborted"));
        sa_world_cleanup(&w);
    }
}

/* A site that stops half-way through its masked vector. */
static void half_sent_vector_aborts(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(6, 5, 3, 32, 100, 1000, 60);
    sa_world w;
    sa_world_init(&w, &c, 6);
    ff_privacy_error err = {0};
    assert_int_equal(sa_stage_adverts(&w, &err), 0);
    assert_int_equal(sa_stage_shares(&w, &err), 0);
    w.drop[2] = DROP_BEFORE_SHARES; /* the harness leaves site 2 alone */
    w.chunk = 50;
    ff_secagg_msg fwd = {0};
    uint32_t buf[50];
    assert_int_equal(ff_secagg_server_forward_message(w.srv, 2, &fwd, &err), 0);
    assert_int_equal(ff_secagg_site_receive_shares(w.sites[2], fwd.data,
                                                   fwd.len, &err), 0);
    assert_int_equal(ff_secagg_site_mask_chunk(w.sites[2], 0, w.inputs + 200,
                                               buf, 50, &err), 0);
    assert_int_equal(ff_secagg_server_add_chunk(w.srv, 2, 0, buf, 50, &err), 0);
    expect(ff_secagg_server_add_chunk(w.srv, 2, 0, buf, 50, &err),
           FF_PRIVACY_ERR_PROTOCOL, &err, "repeated or out of order",
           "repeated chunk");
    expect(sa_stage_masked(&w, &err), FF_PRIVACY_ERR_ABORTED, &err,
           "stopped after 50 of 100", "half-sent masked vector");
    ff_secagg_msg_cleanup(&fwd);
    sa_world_cleanup(&w);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forged_advert_signature),
        cmocka_unit_test(forged_key_list_entry),
        cmocka_unit_test(tampered_share_in_transit),
        cmocka_unit_test(share_sent_to_wrong_recipient),
        cmocka_unit_test(replay_from_earlier_round),
        cmocka_unit_test(site_refuses_both_shares),
        cmocka_unit_test(corrupt_revealed_share),
        cmocka_unit_test(too_few_survivors_abort),
        cmocka_unit_test(half_sent_vector_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
