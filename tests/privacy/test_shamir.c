/* test_shamir.c - Shamir sharing over GF(2^31+11): the FCP known-answer
 * vector (notes §1.5 S1), Lagrange weights (S2), random round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ff_shamir.h"

/* S1: threshold 3, 5 shares of 8 bytes (x = 1..5). */
static const uint8_t kat[5][8] = {
    {112, 207, 118, 46, 110, 212, 170, 28},
    {48, 160, 197, 172, 38, 235, 145, 204},
    {63, 115, 238, 144, 40, 68, 183, 71},
    {29, 72, 240, 207, 114, 224, 26, 141},
    {74, 31, 204, 116, 6, 189, 187, 136},
};

static void kat_every_subset_gives_33(void **state)
{
    (void)state;
    int subsets = 0;
    for (uint32_t a = 1; a <= 5; a++)
        for (uint32_t b = a + 1; b <= 5; b++)
            for (uint32_t c = b + 1; c <= 5; c++) {
                uint32_t xs[3] = {a, b, c};
                uint8_t sh[24], secret[4];
                ff_privacy_error err = {0};
                for (int i = 0; i < 3; i++)
                    memcpy(sh + 8 * i, kat[xs[i] - 1], 8);
                assert_int_equal(ff_shamir_combine(xs, sh, 3, secret, 4, &err),
                                 FF_PRIVACY_OK);
                static const uint8_t want[4] = {0, 0, 0, 0x21};
                assert_memory_equal(secret, want, 4);
                subsets++;
            }
    printf("S1: %d of 10 three-share subsets rebuild 00 00 00 21\n", subsets);
    assert_int_equal(subsets, 10);
}

static void lagrange_weights_match_s2(void **state)
{
    (void)state;
    const uint32_t p = FF_SHAMIR_PRIME;
    uint32_t x3[3] = {1, 2, 3}, c3[3];
    uint32_t x5[5] = {1, 2, 3, 4, 5}, c5[5];
    assert_int_equal(ff_shamir_lagrange_at_zero(x3, 3, c3, NULL), 0);
    assert_int_equal(ff_shamir_lagrange_at_zero(x5, 5, c5, NULL), 0);
    uint32_t w3[3] = {3, p - 3, 1};
    uint32_t w5[5] = {5, p - 10, 10, p - 5, 1};
    assert_memory_equal(c3, w3, sizeof w3);
    assert_memory_equal(c5, w5, sizeof w5);
}

static void random_round_trips(void **state)
{
    (void)state;
    uint32_t rng = 7;
    int trials = 0;
    for (uint32_t t = 2; t <= 9; t++) {
        uint32_t n = t + 3;
        uint32_t xs[16];
        uint8_t secret[32], back[32], sh[16 * 36], pick[16 * 36];
        uint32_t px[16];
        randombytes_buf(secret, sizeof secret);
        for (uint32_t i = 0; i < n; i++)
            xs[i] = 1000 + 17 * i; /* site ids + 1, not consecutive */
        assert_int_equal(ff_shamir_split(secret, 32, t, xs, n, sh, NULL), 0);

        /* any t shares rebuild; t-1 shares do not */
        for (int rep = 0; rep < 20; rep++, trials++) {
            uint32_t used = 0, mask = 0;
            while (used < t) {
                rng = rng * 1103515245u + 12345u;
                uint32_t i = (rng >> 8) % n;
                if (mask & (1u << i))
                    continue;
                mask |= 1u << i;
                px[used] = xs[i];
                memcpy(pick + 36 * used++, sh + 36 * i, 36);
            }
            assert_int_equal(ff_shamir_combine(px, pick, t, back, 32, NULL), 0);
            assert_memory_equal(back, secret, 32);
            ff_privacy_status st = ff_shamir_combine(px, pick, t - 1, back, 32,
                                                     NULL);
            assert_true(t - 1 < 2 || st != FF_PRIVACY_OK ||
                        memcmp(back, secret, 32) != 0);
        }
    }
    printf("random: %d t-of-n reconstructions exact\n", trials);
}

static void corrupt_share_changes_or_fails(void **state)
{
    (void)state;
    uint32_t xs[5] = {1, 2, 3, 4, 5};
    uint8_t secret[32], back[32], sh[5 * 36];
    randombytes_buf(secret, sizeof secret);
    assert_int_equal(ff_shamir_split(secret, 32, 3, xs, 5, sh, NULL), 0);
    sh[36 + 10] ^= 1;
    ff_privacy_error err = {0};
    ff_privacy_status st = ff_shamir_combine(xs, sh, 3, back, 32, &err);
    assert_true(st != FF_PRIVACY_OK || memcmp(back, secret, 32) != 0);
    printf("corrupt share: %s\n",
           st ? ff_privacy_error_text(&err) : "rebuilt a different secret");
}

static void bad_arguments_are_named(void **state)
{
    (void)state;
    uint32_t xs[3] = {1, 1, 2};
    uint8_t s[32] = {0}, sh[3 * 36];
    ff_privacy_error err = {0};
    assert_int_equal(ff_shamir_split(s, 32, 2, xs, 3, sh, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_non_null(strstr(err.msg, "twice"));
    uint32_t ok[3] = {1, 2, 3};
    assert_int_equal(ff_shamir_split(s, 32, 4, ok, 3, sh, &err),
                     FF_PRIVACY_ERR_ARG);
    assert_non_null(strstr(err.msg, "threshold"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kat_every_subset_gives_33),
        cmocka_unit_test(lagrange_weights_match_s2),
        cmocka_unit_test(random_round_trips),
        cmocka_unit_test(corrupt_share_changes_or_fails),
        cmocka_unit_test(bad_arguments_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
