/*
 * secagg.c - the site's identity key file and its side of a SecAgg+ round
 * (docs/secagg.md, "Wiring").
 */
#include "ff_site_secagg.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/ff_log.h"
#include "../privacy/ff_secagg.h"

/* Seconds between fetches of a stage message that is not ready yet. */
#define FF_SA_FETCH_PAUSE 0.1

/* ---- identity key file ---- */

/* Reads exactly n bytes of fd; 0 when they were there and no more. */
static int read_exact(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    uint8_t extra;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return read(fd, &extra, 1) == 0 ? 0 : -1;
}

/* Creates the key file with a fresh key; sk receives the secret. */
static ff_status identity_create(const char *path, uint8_t *sk,
                                 ff_error *err)
{
    uint8_t pk[FF_SITE_IDENTITY_PK];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ssize_t w;

    if (fd < 0)
        return ff_error_set(err, FF_ERR_IO, "identity %s: cannot create: %s",
                            path, strerror(errno));
    crypto_sign_keypair(pk, sk);
    w = write(fd, sk, FF_SITE_IDENTITY_SK);
    if (close(fd) != 0 || w != FF_SITE_IDENTITY_SK) {
        unlink(path);
        return ff_error_set(err, FF_ERR_IO, "identity %s: cannot write",
                            path);
    }
    FF_INFO("created identity key %s (Ed25519, mode 0600)", path);
    return FF_OK;
}

/* Reads an existing key file into sk, refusing one others may read. */
static ff_status identity_read(const char *path, int fd, uint8_t *sk,
                               ff_error *err)
{
    uint8_t pk[FF_SITE_IDENTITY_PK];
    struct stat sb;

    if (fstat(fd, &sb) != 0 || (sb.st_mode & 077) != 0)
        return ff_error_set(err, FF_ERR_IO,
                            "identity %s: readable by others (chmod 600)",
                            path);
    if (read_exact(fd, sk, FF_SITE_IDENTITY_SK) != 0)
        return ff_error_set(err, FF_ERR_FORMAT,
                            "identity %s: not a %d-byte Ed25519 key", path,
                            FF_SITE_IDENTITY_SK);
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    {
        uint8_t seed[32], pk2[FF_SITE_IDENTITY_PK], sk2[FF_SITE_IDENTITY_SK];
        int same;
        crypto_sign_ed25519_sk_to_seed(seed, sk);
        crypto_sign_seed_keypair(pk2, sk2, seed);
        same = sodium_memcmp(pk, pk2, sizeof pk) == 0;
        sodium_memzero(seed, sizeof seed);
        sodium_memzero(sk2, sizeof sk2);
        if (!same)
            return ff_error_set(err, FF_ERR_FORMAT,
                                "identity %s: public half does not match "
                                "the secret", path);
    }
    return FF_OK;
}

ff_status ff_site_identity_load(const char *path, uint8_t *pk, uint8_t *sk,
                                ff_error *err)
{
    uint8_t key[FF_SITE_IDENTITY_SK];
    ff_status st;
    int fd = open(path, O_RDONLY);

    /* Read it, or make it on first start. */
    if (fd < 0 && errno == ENOENT) {
        st = identity_create(path, key, err);
    } else if (fd < 0) {
        st = ff_error_set(err, FF_ERR_IO, "identity %s: %s", path,
                          strerror(errno));
    } else {
        st = identity_read(path, fd, key, err);
        close(fd);
    }

    /* Hand out what was asked for; wipe our copy on every path. */
    if (st == FF_OK) {
        crypto_sign_ed25519_sk_to_pk(pk, key);
        if (sk != NULL)
            memcpy(sk, key, sizeof key);
    }
    sodium_memzero(key, sizeof key);
    return st;
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pause_s(double s)
{
    struct timespec ts;

    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Tests only: stops the process dead at the named point. */
static void test_stop_at(const char *point)
{
    const char *want = getenv("FEDFUSE_TEST_STOP_AT");

    if (want != NULL && strcmp(want, point) == 0) {
        FF_WARN("FEDFUSE_TEST_STOP_AT=%s: killing this site now", point);
        raise(SIGKILL);
    }
}

/* Turns a library error into a round failure of this site. */
static ff_status privacy_fail(const char *what, const ff_privacy_error *pe,
                              ff_error *err)
{
    return ff_error_set(err, FF_ERR_STATE, "secagg %s: %s", what,
                        ff_privacy_error_text(pe));
}

/*
 * One SecAgg call for stage with data; retried on transport errors and
 * repeated while the answer is WAIT, until stage_timeout. On FF_OK, *rep
 * holds an OK answer (the caller cleans it up).
 */
static ff_status stage_call(const ff_site_secagg_round *r,
                            ff_wire_secagg_stage stage, const uint8_t *data,
                            size_t len, ff_wire_secagg_msg *rep,
                            ff_error *err)
{
    double until = now_s() + r->stage_timeout;
    ff_wire_secagg_msg req;
    ff_status st;

    memset(&req, 0, sizeof req);
    snprintf(req.site_id, sizeof req.site_id, "%s", r->site_id);
    req.round = r->round;
    req.stage = stage;
    req.data = data;
    req.len = len;
    for (;;) {
        st = ff_site_rpc_secagg(r->rpc, &req, rep, r->rpc_timeout, err);
        if (st == FF_OK && rep->status == FF_WIRE_SA_OK)
            return FF_OK;
        if (st == FF_OK && rep->status == FF_WIRE_SA_ABORTED) {
            st = ff_error_set(err, FF_ERR_STATE,
                              "the coordinator ended secure aggregation "
                              "for this site: %s", rep->reason);
            ff_site_rpc_secagg_cleanup(rep);
            return st;
        }
        if (st == FF_OK)
            ff_site_rpc_secagg_cleanup(rep);
        else if (st != FF_ERR_RPC)
            return st;
        if (now_s() >= until)
            return st == FF_OK
                       ? ff_error_set(err, FF_ERR_STATE,
                                      "secagg stage %d did not open within "
                                      "%.0f s", (int)stage, r->stage_timeout)
                       : st;
        pause_s(FF_SA_FETCH_PAUSE);
    }
}

/* Sends a message the site produced and expects it accepted. */
static ff_status stage_send(const ff_site_secagg_round *r,
                            ff_wire_secagg_stage stage,
                            const ff_secagg_msg *m, ff_error *err)
{
    ff_wire_secagg_msg rep;
    ff_status st = stage_call(r, stage, m->data, m->len, &rep, err);

    if (st == FF_OK)
        ff_site_rpc_secagg_cleanup(&rep);
    return st;
}

/* ---- the round ---- */

/* The library's configuration from the task. */
static void config_from_task(const ff_site_secagg_round *r,
                             ff_secagg_config *c)
{
    const ff_wire_secagg_task *t = r->task;

    memset(c, 0, sizeof *c);
    c->round = (uint64_t)r->round;
    c->n_sites = t->n_sites;
    c->degree = t->degree;
    c->threshold = t->threshold;
    c->bits = t->bits;
    c->length = t->length;
    c->max_value = t->max_value;
    c->wrap = r->wrap != 0;
    memcpy(c->graph_seed, t->graph_seed, sizeof c->graph_seed);
}

/* Creates the site object with the identity key, wiped right after. */
static ff_status site_open(const ff_site_secagg_round *r,
                           ff_secagg_site **out, ff_error *err)
{
    uint8_t pk[FF_SITE_IDENTITY_PK], sk[FF_SITE_IDENTITY_SK];
    ff_privacy_error pe = {0};
    ff_secagg_config c;
    ff_status st;

    config_from_task(r, &c);
    st = ff_site_identity_load(r->identity_path, pk, sk, err);
    if (st != FF_OK)
        return st;
    if (sodium_memcmp(pk, r->task->identity_keys +
                              (size_t)r->task->site_index * 32,
                      sizeof pk) != 0) {
        sodium_memzero(sk, sizeof sk);
        return ff_error_set(err, FF_ERR_STATE, "the round lists another "
                            "identity key for this site");
    }
    if (ff_secagg_site_create(&c, r->task->site_index, sk,
                              r->task->identity_keys, out, &pe) !=
        FF_PRIVACY_OK)
        st = privacy_fail("setup", &pe, err);
    sodium_memzero(sk, sizeof sk);
    return st;
}

/* Stages 1 and 2: advertise, read the key list, share. */
static ff_status keys_exchange(const ff_site_secagg_round *r,
                               ff_secagg_site *s, ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_secagg_msg m = {NULL, 0};
    ff_wire_secagg_msg rep;
    ff_status st;

    if (ff_secagg_site_advertise(s, &m, &pe) != FF_PRIVACY_OK)
        return privacy_fail("advertise", &pe, err);
    test_stop_at("advert");
    st = stage_send(r, FF_WIRE_SA_ADVERT, &m, err);
    ff_secagg_msg_cleanup(&m);
    if (st == FF_OK)
        st = stage_call(r, FF_WIRE_SA_KEYS, NULL, 0, &rep, err);
    if (st != FF_OK)
        return st;
    if (ff_secagg_site_share_keys(s, rep.data, rep.len, &m, &pe) !=
        FF_PRIVACY_OK)
        st = privacy_fail("key list", &pe, err);
    ff_site_rpc_secagg_cleanup(&rep);
    if (st != FF_OK)
        return st;
    test_stop_at("share");
    st = stage_send(r, FF_WIRE_SA_SHARES, &m, err);
    ff_secagg_msg_cleanup(&m);
    return st;
}

/* Writes words as little-endian bytes in place. */
static void words_to_le(uint32_t *w, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    size_t i;

    for (i = 0; i < n; i++)
        w[i] = __builtin_bswap32(w[i]);
#else
    (void)w;
    (void)n;
#endif
}

/* Stage 3: read the forwarded shares, mask the vector, stream it. */
static ff_status masked_send(const ff_site_secagg_round *r, ff_secagg_site *s,
                             ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_wire_secagg_msg rep;
    ff_wire_upload_reply up;
    size_t m = (size_t)r->task->length, bytes = 4 * m;
    ff_status st = stage_call(r, FF_WIRE_SA_FORWARD, NULL, 0, &rep, err);

    if (st != FF_OK)
        return st;
    if (ff_secagg_site_receive_shares(s, rep.data, rep.len, &pe) !=
        FF_PRIVACY_OK)
        st = privacy_fail("shares", &pe, err);
    ff_site_rpc_secagg_cleanup(&rep);
    if (st == FF_OK &&
        ff_secagg_site_mask_chunk(s, 0, r->words, r->words, m, &pe) !=
            FF_PRIVACY_OK)
        st = privacy_fail("masking", &pe, err);
    if (st != FF_OK)
        return st;
    words_to_le(r->words, m);
    test_stop_at("mask");

    /* The masked words travel as an upload with masked = 1. */
    if (getenv("FEDFUSE_TEST_STOP_AT") != NULL &&
        strcmp(getenv("FEDFUSE_TEST_STOP_AT"), "midmask") == 0)
        bytes = 4 * (m / 2);
    st = ff_site_rpc_upload_patient(r->rpc, r->header,
                                    (const uint8_t *)r->words, bytes, &up,
                                    r->transfer_timeout, r->stage_timeout,
                                    err);
    test_stop_at("midmask");
    if (st == FF_OK && !up.accepted)
        st = ff_error_set(err, FF_ERR_REJECTED,
                          "the coordinator refused the masked vector: %s",
                          up.reason);
    return st;
}

/* Stage 4: answer the unmask request. */
static ff_status unmask_answer(const ff_site_secagg_round *r,
                               ff_secagg_site *s, ff_error *err)
{
    ff_privacy_error pe = {0};
    ff_secagg_msg m = {NULL, 0};
    ff_wire_secagg_msg rep;
    ff_status st;

    test_stop_at("unmask");
    st = stage_call(r, FF_WIRE_SA_UNMASK_REQUEST, NULL, 0, &rep, err);
    if (st != FF_OK)
        return st;
    if (ff_secagg_site_unmask(s, rep.data, rep.len, &m, &pe) !=
        FF_PRIVACY_OK)
        st = privacy_fail("unmask request", &pe, err);
    ff_site_rpc_secagg_cleanup(&rep);
    if (st == FF_OK)
        st = stage_send(r, FF_WIRE_SA_UNMASK, &m, err);
    ff_secagg_msg_cleanup(&m);
    return st;
}

ff_status ff_site_secagg_run(const ff_site_secagg_round *r, ff_error *err)
{
    ff_secagg_site *s = NULL;
    ff_status st = site_open(r, &s, err);

    if (st == FF_OK) {
        FF_INFO("secagg: site %u of %u, k=%u t=%u, %llu words",
                (unsigned)r->task->site_index, (unsigned)r->task->n_sites,
                (unsigned)r->task->degree, (unsigned)r->task->threshold,
                (unsigned long long)r->task->length);
        st = keys_exchange(r, s, err);
    }
    if (st == FF_OK)
        st = masked_send(r, s, err);
    if (st == FF_OK)
        st = unmask_answer(r, s, err);
    ff_secagg_site_destroy(s);
    if (st == FF_OK)
        FF_INFO("secagg: masked vector sent and unmask request answered");
    return st;
}
