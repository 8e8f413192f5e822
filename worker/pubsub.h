/*
 * Channels in the worker (doc/design.md 13): publishing by POST,
 * subscribing by Server-Sent Events, each subscriber fed from the
 * shared store (common/chstore.c) as fast as its socket takes it, and
 * woken when any worker publishes.
 */
#ifndef PUBSUB_H
#define PUBSUB_H

#include <stdint.h>

#include "io.h"

struct chan_sub;
struct conn;
struct http_req;
struct worker;

/* The channel prefix the request's path is under, or -1. */
int	ps_route(const struct worker *, const struct http_req *);
/*
 * A request on a channel: 1 with the response started in *rc; 0 when
 * it waits for its body (a POST), which ps_body_step() reads.
 */
int	ps_request(struct worker *, struct conn *, int route, enum io_rc *rc);
/* CS_BODY of a POST: read its body; when it is in, publish and answer. */
int	ps_body_step(struct conn *);
/* The event-stream head is out: the connection is a subscriber. */
void	ps_begin(struct conn *);
void	ps_on_io(struct conn *, uint32_t events);
void	ps_on_timer(struct conn *);
/*
 * The worker stops: every message accepted is delivered, then a last
 * event (close, or reconnect when this is a reload) ends the stream.
 */
void	ps_stop(struct conn *);
/*
 * A subscriber another worker handed over (its socket, fd, and its place
 * in the store), read from the master's channel: served from here on.
 */
void	ps_adopt(struct worker *, int fd, const struct chan_sub *);
/* Before the worker exits: 1 once the master has answered for all. */
int	ps_handovers_answered(struct worker *);
/* The master's echo of our last hand-over came. */
void	ps_handovers_echo(struct worker *);
/* The connection goes: its subscriber with it. */
void	ps_detach(struct conn *);
/* The wake socket, once a worker has subscribers; -1 on failure. */
int	ps_init(struct worker *);
void	ps_fini(struct worker *);

#endif
