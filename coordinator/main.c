/*
 * main.c - fedfuse-coordinator: reads its configuration, serves the
 * fedfuse.Federation service and runs the rounds. SIGINT and SIGTERM are
 * blocked in every thread and handled by one thread, which asks the
 * federation to stop: the round in progress is aborted, the server drains,
 * and the process exits 0.
 *
 * Exit status: 0 done or stopped by a signal, 1 failure, 2 bad usage.
 */
#include <cblas.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/ff_log.h"
#include "config.h"
#include "federation.h"
#include "server.h"

/* Seconds in-flight calls get to finish at shutdown. */
#define FF_COORD_DRAIN_GRACE 3.0

typedef struct signal_ctx {
    sigset_t set;
    ff_federation *fed;
    volatile int quit;     /* set by main when it no longer needs it */
} signal_ctx;

/* A stop signal that reached a thread which does not block it: OpenBLAS
 * starts its threads before main() runs, so they never got the mask. */
static volatile sig_atomic_t signal_caught;

static void signal_note(int sig)
{
    signal_caught = sig;
}

/* Waits for SIGINT/SIGTERM and turns them into a federation stop. */
static void *signal_main(void *arg)
{
    signal_ctx *ctx = arg;
    struct timespec tick = {0, 200 * 1000 * 1000};

    ff_log_set_context("signals");
    while (!__atomic_load_n(&ctx->quit, __ATOMIC_SEQ_CST)) {
        int sig = sigtimedwait(&ctx->set, NULL, &tick);
        if (sig < 0 && signal_caught != 0) {
            sig = signal_caught;
            signal_caught = 0;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            FF_INFO("received %s: stopping", sig == SIGINT ? "SIGINT"
                                                           : "SIGTERM");
            ff_federation_stop(ctx->fed, sig == SIGINT ? "SIGINT"
                                                       : "SIGTERM");
        }
    }
    return NULL;
}

/* Writes the bound port to path atomically: a fresh temp file (mkstemp,
 * so a planted link is never followed), then rename. */
static int port_file_write(const char *path, int port)
{
    char tmp[FF_COORD_STR_MAX + 16];
    FILE *f;
    int fd;

    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        remove(tmp);
        return -1;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* "host:PORT" with the port actually bound. */
static void address_make(const char *listen, int port, char *out, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);

    snprintf(out, cap, "%.*s:%d", host_len, listen, port);
}

/* Parses and checks the configuration; returns the exit status to use,
 * or -1 to go on. */
static int config_load(ff_coord_config *cfg, int argc, char **argv)
{
    ff_error err = {0};
    int help = 0;

    ff_coord_config_default(cfg);
    if (ff_coord_config_parse(cfg, argc, argv, &help, &err) != FF_OK ||
        (!help && ff_coord_config_check(cfg, &err) != FF_OK)) {
        fprintf(stderr, "fedfuse-coordinator: %s (see --help)\n",
                ff_error_text(&err));
        return 2;
    }
    if (help) {
        ff_coord_config_usage(stdout);
        return 0;
    }
    return -1;
}

/* Serves and runs the federation; returns the exit status. */
static int serve(const ff_coord_config *cfg, signal_ctx *sig)
{
    ff_server *srv = NULL;
    ff_federation *fed = NULL;
    pthread_t sig_thread;
    char address[FF_COORD_STR_MAX + 16];
    ff_error err = {0};
    int port = 0, sig_started = 0, rc = 1;

    /* Bind first, so that the registry records the real address. */
    ff_server_tls tls = {cfg->ca, cfg->cert, cfg->key};

    if (ff_server_create(&srv, cfg->listen, cfg->tls ? &tls : NULL, &port,
                         &err) != FF_OK)
        goto out;
    address_make(cfg->listen, port, address, sizeof address);
    if (ff_federation_create(&fed, cfg, address, &err) != FF_OK)
        goto out;

    /* Signals, then requests. */
    sig->fed = fed;
    sig_started = pthread_create(&sig_thread, NULL, signal_main, sig) == 0;
    if (!sig_started)
        ff_error_set(&err, FF_ERR_INTERNAL, "cannot start the signal thread");
    if (!sig_started || ff_server_start(srv, fed, &err) != FF_OK)
        goto out;
    if (cfg->port_file[0] != '\0' && port_file_write(cfg->port_file, port))
        FF_WARN("cannot write the port file %s", cfg->port_file);
    FF_INFO("serving on %s (model %s, %d known sites, rounds up to %d)",
            address, cfg->model, cfg->n_sites, cfg->rounds);

    /* The federation runs on this thread until the last round. */
    rc = ff_federation_run(fed, &err) == FF_OK ? 0 : 1;

out:
    if (rc != 0)
        FF_ERROR("%s", ff_error_text(&err));
    ff_server_shutdown(srv, FF_COORD_DRAIN_GRACE);
    if (sig_started) {
        __atomic_store_n(&sig->quit, 1, __ATOMIC_SEQ_CST);
        pthread_join(sig_thread, NULL);
    }
    ff_server_destroy(srv);
    ff_federation_destroy(fed);
    return rc;
}

int main(int argc, char **argv)
{
    static ff_coord_config cfg;
    struct sigaction sa;
    signal_ctx sig;
    int rc;

    ff_log_set_role("coordinator");
    rc = config_load(&cfg, argc, argv);
    if (rc >= 0)
        return rc;
    if (sodium_init() < 0) {
        FF_ERROR("libsodium failed to initialise");
        return 1;
    }
    openblas_set_num_threads(cfg.threads);

    /* Block the stop signals before gRPC starts its threads; threads that
     * already run (OpenBLAS) only note them for the signal thread. */
    memset(&sig, 0, sizeof sig);
    sigemptyset(&sig.set);
    sigaddset(&sig.set, SIGINT);
    sigaddset(&sig.set, SIGTERM);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = signal_note;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, &sig.set, NULL);

    grpc_init();
    rc = serve(&cfg, &sig);
    grpc_shutdown();
    FF_INFO("exiting with status %d", rc);
    return rc;
}
