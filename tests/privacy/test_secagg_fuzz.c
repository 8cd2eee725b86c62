/*
 * test_secagg_fuzz.c - every decoder of untrusted bytes (the six message
 * types) gets thousands of mutated messages: bit flips, byte overwrites,
 * truncation and extension. Each call must return (OK or a named error)
 * without crashing or reading out of bounds; run it under ASan to see the
 * latter. Deterministic: the mutation seed is fixed.
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

#include "sa_harness.h"

#define ROUNDS 150 /* fresh worlds; several mutations per message each */

/* Copies msg into a fresh buffer with one random mutation; returns its
 * length. The buffer has room for len + 64 bytes. */
static size_t mutate(const ff_secagg_msg *msg, uint8_t *out, uint32_t *rng)
{
    memcpy(out, msg->data, msg->len);
    size_t len = msg->len;
    uint32_t r = sa_rand(rng);
    switch (r % 5) {
    case 0: /* flip one bit */
        out[sa_rand(rng) % len] ^= (uint8_t)(1u << (sa_rand(rng) % 8));
        break;
    case 1: /* overwrite a byte anywhere, header included */
        out[sa_rand(rng) % len] = (uint8_t)sa_rand(rng);
        break;
    case 2: /* truncate */
        len = sa_rand(rng) % len;
        break;
    case 3: /* extend with garbage */
        for (size_t i = 0, extra = 1 + sa_rand(rng) % 64; i < extra; i++)
            out[len++] = (uint8_t)sa_rand(rng);
        break;
    default: /* blow up a count field (bytes 40..47 or 68..71) */
        if (len >= 72)
            memset(out + (sa_rand(rng) % 2 ? 44 : 68), 0xff, 4);
        break;
    }
    return len;
}

typedef struct fuzz_count {
    unsigned calls, accepted;
} fuzz_count;

static void tally(fuzz_count *c, ff_privacy_status st,
                  const ff_privacy_error *err)
{
    c->calls++;
    if (st == FF_PRIVACY_OK)
        c->accepted++;
    else
        assert_true(err->msg[0] != '\0'); /* every rejection has a reason */
}

static void decoders_survive_mutations(void **state)
{
    (void)state;
    uint32_t rng = 0x5eed;
    fuzz_count c[6] = {{0}};
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    for (int round = 0; round < ROUNDS; round++) {
        ff_secagg_config cfg = sa_config(4, 3, 2, 32, 16, 1000, round + 1);
        sa_world w;
        sa_world_init(&w, &cfg, round + 1);
        ff_privacy_error err = {0};
        ff_secagg_msg adv = {0}, keys = {0}, sh = {0}, fwd = {0}, req = {0},
                      ans = {0};
        size_t n;

        /* advert -> server */
        assert_int_equal(ff_secagg_site_advertise(w.sites[0], &adv, &err), 0);
        for (int i = 0; i < 8; i++) {
            n = mutate(&adv, buf, &rng);
            memset(&err, 0, sizeof err);
            tally(&c[0], ff_secagg_server_add_advert(w.srv, buf, n, &err),
                  &err);
        }
        /* the real adverts (the mutated ones may have taken site 0's slot) */
        ff_privacy_status real = ff_secagg_server_add_advert(
            w.srv, adv.data, adv.len, &err);
        for (uint32_t s = 1; s < 4; s++) {
            ff_secagg_msg m = {0};
            assert_int_equal(ff_secagg_site_advertise(w.sites[s], &m, &err),
                             0);
            assert_int_equal(ff_secagg_server_add_advert(w.srv, m.data, m.len,
                                                         &err), 0);
            ff_secagg_msg_cleanup(&m);
        }
        assert_int_equal(ff_secagg_server_close_adverts(w.srv, &err), 0);

        /* key list -> site 3 (site 3 is then left out of the round) */
        assert_int_equal(ff_secagg_server_keys_message(w.srv, &keys, &err), 0);
        for (int i = 0; i < 8; i++) {
            ff_secagg_msg out = {0};
            n = mutate(&keys, buf, &rng);
            memset(&err, 0, sizeof err);
            tally(&c[1], ff_secagg_site_share_keys(w.sites[3], buf, n, &out,
                                                   &err), &err);
            ff_secagg_msg_cleanup(&out);
        }

        /* shares -> server */
        assert_int_equal(ff_secagg_site_share_keys(w.sites[0], keys.data,
                                                   keys.len, &sh, &err), 0);
        for (int i = 0; i < 8; i++) {
            n = mutate(&sh, buf, &rng);
            memset(&err, 0, sizeof err);
            tally(&c[2], ff_secagg_server_add_shares(w.srv, buf, n, &err),
                  &err);
        }
        real = ff_secagg_server_add_shares(w.srv, sh.data, sh.len, &err);
        (void)real; /* refused when a mutated copy took the slot first */
        for (uint32_t s = 1; s < 3; s++) {
            ff_secagg_msg m = {0};
            assert_int_equal(ff_secagg_site_share_keys(w.sites[s], keys.data,
                                                       keys.len, &m, &err), 0);
            assert_int_equal(ff_secagg_server_add_shares(w.srv, m.data, m.len,
                                                         &err), 0);
            ff_secagg_msg_cleanup(&m);
        }
        if (ff_secagg_server_close_sharing(w.srv, &err) != FF_PRIVACY_OK)
            goto next; /* a mutated share message took site 0's place */

        /* forwarded shares -> site 0 (a failure ends site 0's round) */
        assert_int_equal(ff_secagg_server_forward_message(w.srv, 1, &fwd,
                                                          &err), 0);
        n = mutate(&fwd, buf, &rng);
        memset(&err, 0, sizeof err);
        tally(&c[3], ff_secagg_site_receive_shares(w.sites[1], buf, n, &err),
              &err);

        /* unmask request -> site, answer -> server */
        w.drop[3] = DROP_BEFORE_SHARES;
        w.drop[1] = DROP_BEFORE_SHARES; /* already handled above */
        if (sa_stage_masked(&w, &err) != FF_PRIVACY_OK)
            goto next;
        assert_int_equal(ff_secagg_server_unmask_request(w.srv, 0, &req,
                                                         &err), 0);
        for (int i = 0; i < 8; i++) {
            ff_secagg_msg out = {0};
            n = mutate(&req, buf, &rng);
            memset(&err, 0, sizeof err);
            tally(&c[4], ff_secagg_site_unmask(w.sites[0], buf, n, &out, &err),
                  &err);
            ff_secagg_msg_cleanup(&out);
        }
        if (ff_secagg_site_unmask(w.sites[0], req.data, req.len, &ans, &err))
            goto next;
        for (int i = 0; i < 8; i++) {
            n = mutate(&ans, buf, &rng);
            memset(&err, 0, sizeof err);
            tally(&c[5], ff_secagg_server_add_unmask(w.srv, buf, n, &err),
                  &err);
        }
    next:
        ff_secagg_msg_cleanup(&adv);
        ff_secagg_msg_cleanup(&keys);
        ff_secagg_msg_cleanup(&sh);
        ff_secagg_msg_cleanup(&fwd);
        ff_secagg_msg_cleanup(&req);
        ff_secagg_msg_cleanup(&ans);
        sa_world_cleanup(&w);
    }
    free(buf);
    static const char *const names[6] = {"advert", "key list", "shares",
                                         "forwarded shares", "unmask request",
                                         "unmask answer"};
    for (int i = 0; i < 6; i++) {
        printf("%-17s %5u mutated messages, %4u accepted\n", names[i],
               c[i].calls, c[i].accepted);
        assert_true(c[i].calls > 0);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoders_survive_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
