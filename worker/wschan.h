/*
 * Channel subscribers on a WebSocket (doc/design.md 13): a WebSocket
 * upgrade on a channel URL subscribes to that channel.  The cursor is
 * pubsub.c's (one per subscriber, as for Server-Sent Events), the
 * framing wsframe.c's; what is here is the policy: each message one
 * text frame {"id":ID,"data":"..."}, a client's text message published
 * (channel_publish websocket) and answered {"published":ID,...} or
 * {"error":STATUS,...}, and the Close that ends it (1001 on a stop, 1012
 * on a reload, with the reason last_id=ID).
 */
#ifndef WSCHAN_H
#define WSCHAN_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct ps_sub;
struct wsc;

/* A WebSocket side for subscriber s on c (its 101 about to go). */
struct wsc	*wsc_new(struct ps_sub *, struct conn *);
void		 wsc_free(struct wsc *);
/* The 101 is out: pre holds the n bytes after the head.  -1: failed. */
int		 wsc_begin(struct wsc *, const char *pre, size_t n);
/* Take it as far as it goes: read, publish, deliver, close. */
void		 wsc_pump(struct wsc *);
void		 wsc_on_io(struct wsc *, uint32_t events);
void		 wsc_on_timer(struct wsc *);
/* Fast stop: Close 1001 at once (the caller closes the connection). */
void		 wsc_hurry(struct wsc *);

#endif
