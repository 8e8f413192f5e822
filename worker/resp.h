/* Responses to the request in w->req, on connection c. */
#ifndef RESP_H
#define RESP_H

struct conn;
struct worker;

/* Buffers for w (after w->lim is set); -1 on failure. */
int	resp_init(struct worker *);
/*
 * Answer the request: OPTIONS, the status page, or a file (with its
 * redirects and errors).  0, or -1 when the response could not be sent.
 */
int	resp_respond(struct worker *, struct conn *);
/*
 * A status with a small HTML body.  extra: header lines, each ending in
 * CRLF, or NULL.  No body for HEAD.
 */
int	resp_status(struct worker *, struct conn *, int status,
	    const char *extra);

#endif
