/*
 * server.h - the coordinator's gRPC server (C core API): a completion
 * queue, worker threads, and one small state machine per call that turns
 * the four fedfuse.Federation methods into federation handler calls.
 * Unknown methods are answered UNIMPLEMENTED.
 *
 * The caller owns grpc_init()/grpc_shutdown() around the server's life.
 */
#ifndef FF_COORD_SERVER_H
#define FF_COORD_SERVER_H

#include "../common/ff_status.h"
#include "federation.h"

typedef struct ff_server ff_server;

/* Creates a server bound to listen ("127.0.0.1:PORT"; port 0 picks one)
 * with receive limits of FF_WIRE_MESSAGE_MAX; *port receives the bound
 * port. Not yet serving. *out owned by the caller.
 * Errors: FF_ERR_IO (the address cannot be bound), FF_ERR_NOMEM. */
FF_MUST_USE ff_status ff_server_create(ff_server **out, const char *listen,
                                       int *port, ff_error *err);

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
