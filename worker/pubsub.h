/*
 * Channels in the worker (doc/design.md 13): publishing by POST,
 * subscribing by Server-Sent Events or by a WebSocket (whose side is
 * wschan.c), each subscriber fed from the shared store
 * (common/chstore.c) as fast as its socket takes it, and woken when any
 * worker publishes.
 */
#ifndef PUBSUB_H
#define PUBSUB_H

#include <stdint.h>

#include "io.h"

struct chan_sub;
struct conn;
struct http_req;
struct ps_sub;
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
/*
 * The event-stream head (or the 101) is out: the connection is a
 * subscriber; pre: the n bytes that came after the head (a WebSocket's
 * first frames).
 */
void	ps_begin(struct conn *, const char *pre, size_t n);
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
/* Fast stop: a WebSocket subscriber is sent Close 1001; it goes. */
void	ps_hurry(struct conn *);
/* The connection goes: its subscriber with it. */
void	ps_detach(struct conn *);
/* The wake socket, once a worker has subscribers; -1 on failure. */
int	ps_init(struct worker *);
void	ps_fini(struct worker *);

/*
 * A subscriber's cursor, for the WebSocket side (wschan.c).
 * ps_take(): the next message for it (its length; 0: none yet), which
 * ps_msg() holds until the next take, its id in *id.
 */
long		 ps_take(struct ps_sub *, uint64_t *id);
const char	*ps_msg(const struct ps_sub *);
/* The last id given to it. */
uint64_t	 ps_got(const struct ps_sub *);
/* 0; 1: a full stop; 2: a reload or upgrade (the client comes back). */
int		 ps_stopping(const struct ps_sub *);
/* Has its channel more than it was given? */
int		 ps_behind(const struct ps_sub *);
/*
 * Publish n bytes on its channel, as its client asks: HTTP_ACCEPTED
 * with the id and the subscribers it is for, or the status a POST would
 * get (403 when channel_publish or channel_publish_from refuses).
 */
int		 ps_publish(struct ps_sub *, const void *, size_t, uint64_t *id,
		    long *subs);

#endif
