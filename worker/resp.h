/* Responses to the request in w->req, on connection c. */
#ifndef RESP_H
#define RESP_H

#include "io.h"

struct conn;
struct worker;

/* Buffers for w (after w->lim is set); -1 on failure. */
int	resp_init(struct worker *);
/*
 * Answer the request in w->req: OPTIONS, the status page, or a file
 * (with its redirects and errors).  What the socket does not take at
 * once waits in c->out (IO_AGAIN).
 */
enum io_rc	resp_respond(struct worker *, struct conn *);
/*
 * A status with a small HTML body.  extra: header lines, each ending in
 * CRLF, or NULL.  No body for HEAD (c->ri.meth).  Uses nothing of
 * w->req: it also answers heads that never completed.
 */
enum io_rc	resp_status(struct worker *, struct conn *, int status,
		    const char *extra);

/* 101 Switching Protocols to a WebSocket (proto NULL: none chosen). */
/* A small JSON body (a channel's answers) with extra header lines. */
enum io_rc	resp_json(struct worker *, struct conn *, int status,
		    const char *extra, const char *body, size_t len);
/* The head of a text/event-stream response (a channel subscriber). */
enum io_rc	resp_event_stream(struct worker *, struct conn *);
enum io_rc	resp_switching(struct worker *, struct conn *,
		    const char *accept, const char *proto);

#endif
