/* test_secagg_round.c - the unmasked sum equals the plain sum exactly (in
 * Z_2^b) for random inputs, random graphs and dropouts at every stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sa_harness.h"

/* Runs one round with the given drops and expects an exact sum. */
static void expect_exact(const ff_secagg_config *cfg, const uint8_t *drop,
                         size_t chunk, uint32_t seed, const char *label)
{
    sa_world w;
    sa_world_init(&w, cfg, seed);
    if (drop != NULL)
        memcpy(w.drop, drop, cfg->n_sites);
    w.chunk = chunk;
    uint64_t bad = 0;
    ff_privacy_error err = {0};
    ff_privacy_status st = sa_run(&w, &bad, &err);
    if (st != FF_PRIVACY_OK)
        fail_msg("%s: %s", label, ff_privacy_error_text(&err));
    printf("%-34s n=%u k=%u t=%u b=%u m=%llu inputs=%u mismatched words=%llu\n",
           label, cfg->n_sites, cfg->degree, cfg->threshold, cfg->bits,
           (unsigned long long)cfg->length, ff_secagg_server_input_count(w.srv),
           (unsigned long long)bad);
    assert_int_equal(bad, 0);

    /* the server's view of each site matches where it stopped */
    static const ff_secagg_progress seen[] = {
        [DROP_NONE] = FF_SECAGG_ANSWERED,
        [DROP_BEFORE_ADVERT] = FF_SECAGG_ABSENT,
        [DROP_BEFORE_SHARES] = FF_SECAGG_ADVERTISED,
        [DROP_BEFORE_MASKED] = FF_SECAGG_SHARED,
        [DROP_BEFORE_UNMASK] = FF_SECAGG_MASKED};
    for (uint32_t i = 0; i < cfg->n_sites; i++)
        assert_int_equal(ff_secagg_server_progress(w.srv, i), seen[w.drop[i]]);
    sa_world_cleanup(&w);
}

static void complete_graph_no_dropout(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(5, 4, 3, 32, 1000, 1u << 28, 1);
    expect_exact(&c, NULL, 0, 11, "complete graph, no dropout");
    c = sa_config(6, 5, 4, 16, 777, (1u << 16) / 6 - 1, 2);
    expect_exact(&c, NULL, 100, 12, "complete graph, b=16, chunks of 100");
}

static void sparse_graph_no_dropout(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(40, 8, 5, 32, 2000, 1000000, 3);
    expect_exact(&c, NULL, 333, 13, "k=8 of 40, chunks of 333");
    c = sa_config(41, 10, 6, 24, 513, (1u << 24) / 41 - 1, 4);
    expect_exact(&c, NULL, 16, 14, "k=10 of 41, b=24, chunks of 16");
}

/* One dropout kind at a time, then all kinds at once, several graphs. */
static void dropouts_at_every_stage(void **state)
{
    (void)state;
    uint32_t rng = 2024;
    static const char *names[] = {"", "dropouts before adverts",
                                  "dropouts before shares",
                                  "dropouts before masked input",
                                  "dropouts before unmasking"};
    for (int kind = DROP_BEFORE_ADVERT; kind <= DROP_BEFORE_UNMASK; kind++) {
        ff_secagg_config c = sa_config(30, 10, 5, 32, 600, 1u << 26, 10 + kind);
        uint8_t drop[30] = {0};
        for (int d = 0; d < 3; d++)
            drop[sa_rand(&rng) % 30] = (uint8_t)kind;
        expect_exact(&c, drop, 128, rng, names[kind]);
    }
    for (int rep = 0; rep < 4; rep++) {
        ff_secagg_config c = sa_config(36, 12, 6, 32, 300, 1u << 26, 20 + rep);
        uint8_t drop[36] = {0};
        for (int d = 0; d < 8; d++)
            drop[sa_rand(&rng) % 36] = (uint8_t)(1 + sa_rand(&rng) % 4);
        expect_exact(&c, drop, 64, rng, "mixed dropouts at all stages");
    }
    /* complete graph (classic SecAgg) with drops at every stage */
    ff_secagg_config c = sa_config(9, 8, 5, 32, 256, 1u << 26, 30);
    uint8_t drop[9] = {0, DROP_BEFORE_ADVERT, 0, DROP_BEFORE_SHARES, 0,
                       DROP_BEFORE_MASKED, 0, DROP_BEFORE_UNMASK, 0};
    expect_exact(&c, drop, 0, 31, "complete graph, one drop per stage");
}

/* A wrapped modulus: b = 12 and inputs near the top of the range. */
static void small_modulus_sums_exactly(void **state)
{
    (void)state;
    ff_secagg_config c = sa_config(12, 11, 7, 12, 1000, 4095 / 12, 40);
    uint8_t drop[12] = {0};
    drop[3] = DROP_BEFORE_MASKED;
    drop[8] = DROP_BEFORE_UNMASK;
    expect_exact(&c, drop, 250, 41, "b=12, drops before masked/unmask");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(complete_graph_no_dropout),
        cmocka_unit_test(sparse_graph_no_dropout),
        cmocka_unit_test(dropouts_at_every_stage),
        cmocka_unit_test(small_modulus_sums_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
