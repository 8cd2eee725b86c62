/*
 * bench_secagg.c - secure aggregation costs on this machine, run by
 * `deploy/bench.sh secagg`.
 *
 * (a) a site's masking throughput next to the raw ChaCha20 keystream rate
 *     measured in the same run (mask_ratio = keystream words consumed per
 *     second while masking / raw keystream words per second);
 * (b) one simulated round in one process, no network: n sites, an m-word
 *     vector, the (k, t) the finder picks for 5% dropout and 5% corruption,
 *     5% of the sites dropping after sharing their keys. Sites run one
 *     after another and reuse one buffer. server_peak_mib is the server
 *     object's own allocations (tracked by the library), not the process.
 *
 * Usage: bench_secagg [--sites N] [--params M] [--dropout F]
 * Ends with one line: RESULT secagg key=value ...
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ff_secagg.h"

typedef struct bench_opts {
    uint32_t sites;
    uint64_t params;
    double dropout;
} bench_opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const ff_privacy_error *err)
{
    fprintf(stderr, "bench_secagg: %s: %s\n", what, ff_privacy_error_text(err));
    exit(1);
}

#define CHECK(call, what)                                                  \
    do {                                                                   \
        if ((call) != FF_PRIVACY_OK)                                       \
            die(what, &err);                                               \
    } while (0)

/*
 * Raw ChaCha20-IETF keystream into a 2048-word buffer for about `secs`
 * seconds; adds the words and seconds to *words and *secs_used. Called in
 * bursts between sites so that both rates see the same machine load.
 */
static void keystream_burst(double secs, double *words_out, double *secs_out)
{
    enum { WORDS = 2048 };
    static uint32_t buf[WORDS];
    static const uint8_t zero[WORDS * 4];
    uint8_t key[32], nonce[12] = {0};
    randombytes_buf(key, sizeof key);
    uint64_t words = 0;
    uint32_t ic = 0;
    double t0 = now_s(), t;
    do {
        for (int r = 0; r < 256; r++, ic += WORDS / 16) {
            crypto_stream_chacha20_ietf_xor_ic((uint8_t *)buf, zero,
                                               sizeof zero, nonce, ic, key);
            words += WORDS;
        }
        t = now_s() - t0;
    } while (t < secs);
    *words_out += (double)words;
    *secs_out += t;
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void parse_args(int argc, char **argv, bench_opts *o)
{
    o->sites = 1000;
    o->params = 1000000;
    o->dropout = 0.05;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sites") && i + 1 < argc)
            o->sites = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--params") && i + 1 < argc)
            o->params = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dropout") && i + 1 < argc)
            o->dropout = strtod(argv[++i], NULL);
        else {
            fprintf(stderr, "usage: bench_secagg [--sites N] [--params M] "
                            "[--dropout F]\n");
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    bench_opts o;
    parse_args(argc, argv, &o);
    if (sodium_init() < 0)
        return 1;
    ff_privacy_error err = {0};
    double t_start = now_s();

    /* configuration: the finder's (k, t), 32-bit sums, no overflow */
    uint32_t n = o.sites, k = 0, t = 0;
    CHECK(ff_secagg_params_find(n, 0.05, 0.05, FF_SECAGG_SEMI_HONEST, &k, &t,
                                &err), "params");
    ff_secagg_config cfg = {.round = 1, .n_sites = n, .degree = k,
                            .threshold = t, .bits = 32, .length = o.params,
                            .max_value = (uint32_t)(0xffffffffu / n)};
    randombytes_buf(cfg.graph_seed, sizeof cfg.graph_seed);
    uint64_t m = cfg.length;
    uint32_t n_drop = (uint32_t)(o.dropout * n + 0.5);
    printf("secagg bench: %u sites, %llu parameters, k=%u t=%u, b=32, "
           "%u sites drop after sharing\n", n, (unsigned long long)m, k, t,
           n_drop);
    fflush(stdout);

    /* identities, sites, server */
    uint8_t *id_pk = malloc(32 * (size_t)n), *id_sk = malloc(64 * (size_t)n);
    ff_secagg_site **sites = calloc(n, sizeof *sites);
    uint32_t *input = malloc(m * 4), *masked = malloc(m * 4);
    uint32_t *plain = calloc(m, 4), *result = malloc(m * 4);
    uint8_t *dropped = calloc(n, 1);
    if (!id_pk || !id_sk || !sites || !input || !masked || !plain ||
        !result || !dropped) {
        fprintf(stderr, "bench_secagg: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < n; i++)
        crypto_sign_keypair(id_pk + 32 * (size_t)i, id_sk + 64 * (size_t)i);
    for (uint32_t d = 0, s = 12345; d < n_drop;) {
        uint32_t i = xorshift(&s) % n;
        d += !dropped[i];
        dropped[i] = 1;
    }
    double site_t = 0, srv_t = 0, t0;
    ff_secagg_server *srv = NULL;
    t0 = now_s();
    CHECK(ff_secagg_server_create(&cfg, id_pk, &srv, &err), "server");
    srv_t += now_s() - t0;

    /* stage 1: adverts */
    for (uint32_t i = 0; i < n; i++) {
        ff_secagg_msg msg = {0};
        t0 = now_s();
        CHECK(ff_secagg_site_create(&cfg, i, id_sk + 64 * (size_t)i, id_pk,
                                    &sites[i], &err), "site create");
        CHECK(ff_secagg_site_advertise(sites[i], &msg, &err), "advertise");
        site_t += now_s() - t0;
        t0 = now_s();
        CHECK(ff_secagg_server_add_advert(srv, msg.data, msg.len, &err),
              "add advert");
        srv_t += now_s() - t0;
        ff_secagg_msg_cleanup(&msg);
    }
    ff_secagg_msg keys = {0};
    t0 = now_s();
    CHECK(ff_secagg_server_close_adverts(srv, &err), "close adverts");
    CHECK(ff_secagg_server_keys_message(srv, &keys, &err), "keys");
    srv_t += now_s() - t0;

    /* stage 2: shares */
    for (uint32_t i = 0; i < n; i++) {
        ff_secagg_msg msg = {0};
        t0 = now_s();
        CHECK(ff_secagg_site_share_keys(sites[i], keys.data, keys.len, &msg,
                                        &err), "share keys");
        site_t += now_s() - t0;
        t0 = now_s();
        CHECK(ff_secagg_server_add_shares(srv, msg.data, msg.len, &err),
              "add shares");
        srv_t += now_s() - t0;
        ff_secagg_msg_cleanup(&msg);
    }
    ff_secagg_msg_cleanup(&keys);
    t0 = now_s();
    CHECK(ff_secagg_server_close_sharing(srv, &err), "close sharing");
    srv_t += now_s() - t0;

    /* stage 3: masked inputs, one site after another, one buffer */
    double raw_words = 0, raw_secs = 0;
    double mask_t = 0;
    uint64_t mask_words = 0;
    uint32_t seed = 777;
    for (uint32_t i = 0; i < n; i++) {
        ff_secagg_msg fwd = {0};
        t0 = now_s();
        CHECK(ff_secagg_server_forward_message(srv, i, &fwd, &err), "forward");
        srv_t += now_s() - t0;
        t0 = now_s();
        CHECK(ff_secagg_site_receive_shares(sites[i], fwd.data, fwd.len,
                                            &err), "receive shares");
        site_t += now_s() - t0;
        /* forwarded entries: 48-byte head, 136 bytes per sending neighbour */
        uint32_t holders = (uint32_t)(fwd.len > 48 ? (fwd.len - 48) / 136 : 0);
        ff_secagg_msg_cleanup(&fwd);
        if (dropped[i])
            continue;
        if (i % 50 == 0)
            keystream_burst(0.1, &raw_words, &raw_secs);
        for (uint64_t j = 0; j < m; j++) {
            input[j] = xorshift(&seed) % (cfg.max_value + 1);
            plain[j] += input[j];
        }
        t0 = now_s();
        CHECK(ff_secagg_site_mask_chunk(sites[i], 0, input, masked, m, &err),
              "mask");
        double dt = now_s() - t0;
        site_t += dt;
        mask_t += dt;
        mask_words += m * (holders + 1); /* pair masks + self mask */
        t0 = now_s();
        for (uint64_t off = 0; off < m; off += 65536) {
            size_t c = m - off < 65536 ? (size_t)(m - off) : 65536;
            CHECK(ff_secagg_server_add_chunk(srv, i, off, masked + off, c,
                                             &err), "add chunk");
        }
        srv_t += now_s() - t0;
    }
    t0 = now_s();
    CHECK(ff_secagg_server_close_masking(srv, &err), "close masking");
    srv_t += now_s() - t0;

    /* stage 4: unmask */
    for (uint32_t i = 0; i < n; i++) {
        if (!ff_secagg_server_in_sum(srv, i))
            continue;
        ff_secagg_msg req = {0}, ans = {0};
        t0 = now_s();
        CHECK(ff_secagg_server_unmask_request(srv, i, &req, &err), "request");
        srv_t += now_s() - t0;
        t0 = now_s();
        CHECK(ff_secagg_site_unmask(sites[i], req.data, req.len, &ans, &err),
              "unmask");
        site_t += now_s() - t0;
        t0 = now_s();
        CHECK(ff_secagg_server_add_unmask(srv, ans.data, ans.len, &err),
              "add unmask");
        srv_t += now_s() - t0;
        ff_secagg_msg_cleanup(&req);
        ff_secagg_msg_cleanup(&ans);
    }
    t0 = now_s();
    CHECK(ff_secagg_server_close_unmasking(srv, &err), "close unmasking");
    double unmask_t0 = now_s();
    for (uint64_t off = 0; off < m; off += 65536) {
        size_t c = m - off < 65536 ? (size_t)(m - off) : 65536;
        CHECK(ff_secagg_server_result_chunk(srv, off, result + off, c, &err),
              "result");
    }
    double result_t = now_s() - unmask_t0;
    srv_t += now_s() - t0;

    /* exactness and the table */
    uint64_t wrong = 0;
    for (uint64_t j = 0; j < m; j++)
        wrong += result[j] != plain[j];
    uint32_t inputs = ff_secagg_server_input_count(srv);
    double raw_wps = raw_words / raw_secs;
    double mask_cps = (double)(n - n_drop) * m / mask_t;
    double mask_wps = (double)mask_words / mask_t;
    double ratio = mask_wps / raw_wps;
    double peak_mib = ff_secagg_server_peak_bytes(srv) / 1048576.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\n%-44s %14s\n", "measure", "value");
    printf("%-44s %14.3e\n", "raw ChaCha20 keystream (words/s)", raw_wps);
    printf("%-44s %14.3e\n", "site masking (coordinates/s)", mask_cps);
    printf("%-44s %14.3e\n", "site masking (keystream words/s)", mask_wps);
    printf("%-44s %14.3f\n", "mask_ratio (masking / raw keystream)", ratio);
    printf("%-44s %14u\n", "inputs in the sum", inputs);
    printf("%-44s %14.2f\n", "server time, whole round (s)", srv_t);
    printf("%-44s %14.2f\n", "  of which unmasking the sum (s)", result_t);
    printf("%-44s %14.3f\n", "site time, mean per site (s)", site_t / n);
    printf("%-44s %14.1f\n", "server peak, own allocations (MiB)", peak_mib);
    printf("%-44s %14.1f\n", "process max RSS, all sites + checks (MiB)",
           ru.ru_maxrss / 1024.0);
    printf("%-44s %14llu\n", "words differing from the plain sum",
           (unsigned long long)wrong);
    printf("RESULT secagg sites=%u params=%llu k=%u t=%u dropped=%u "
           "inputs=%u keystream_wps=%.3e mask_cps=%.3e mask_ratio=%.3f "
           "server_s=%.2f site_s=%.3f server_peak_mib=%.1f "
           "peak_method=own_allocations exact=%d total_s=%.1f\n",
           n, (unsigned long long)m, k, t, n_drop, inputs, raw_wps, mask_cps,
           ratio, srv_t, site_t / n, peak_mib, wrong == 0,
           now_s() - t_start);

    for (uint32_t i = 0; i < n; i++)
        ff_secagg_site_destroy(sites[i]);
    ff_secagg_server_destroy(srv);
    free(sites);
    free(id_pk);
    free(id_sk);
    free(input);
    free(masked);
    free(plain);
    free(result);
    free(dropped);
    return wrong == 0 ? 0 : 1;
}
