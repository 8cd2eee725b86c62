/*
 * server.h - the coordinator's gRPC server (C core API): a completion
 * queue, worker threads, and one small state machine per call that turns
 * the five fedfuse.Federation methods into federation handler calls, each
 * authenticated first (ff_federation_authorize).
 * Unknown methods are answered UNIMPLEMENTED.
 *
 * The caller owns grpc_init()/grpc_shutdown() around the server's life.
 */
#ifndef FF_COORD_SERVER_H
#define FF_COORD_SERVER_H

#include "../common/ff_status.h"
#include "federation.h"

typedef struct ff_server ff_server;

/* The server's TLS material: paths of PEM files (borrowed). */
typedef struct ff_server_tls {
    const char *ca;     /* the consortium CA: client certificates */
    const char *cert;   /* the coordinator's certificate (serverAuth) */
    const char *key;    /* its private key */
} ff_server_tls;

/* Creates a server bound to listen ("127.0.0.1:PORT"; port 0 picks one)
 * with receive limits of FF_WIRE_MESSAGE_MAX; *port receives the bound
 * port. With tls, calls run over TLS and a client certificate is asked
 * for but not judged by gRPC (ff_federation_authorize does, per call);
 * tls NULL serves insecurely and logs a WARN. Not yet serving. *out owned
 * by the caller. Errors: FF_ERR_IO (the address cannot be bound, a PEM
 * file unreadable), FF_ERR_TOO_LARGE, FF_ERR_INTERNAL (gRPC refused the
 * credentials), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_server_create(ff_server **out, const char *listen,
                                       const ff_server_tls *tls, int *port,
                                       ff_error *err);

/* Starts serving requests with the handlers of fed (borrowed; it must
 * outlive the server). Errors: FF_ERR_INTERNAL (threads). */
FF_MUST_USE ff_status ff_server_start(ff_server *s, ff_federation *fed,
                                      ff_error *err);

/* Stops accepting calls, lets calls in flight finish for up to grace
 * seconds, cancels the rest, and joins the workers. Idempotent. */
void ff_server_shutdown(ff_server *s, double grace);

/* Shuts down (if needed, with a 2 s grace) and frees s. Accepts NULL. */
void ff_server_destroy(ff_server *s);

#endif
