/*
 * The connection lifecycle: read a request head, answer it, keep the
 * connection (park it) or close it, until the client or the worker is
 * done.  One request at a time per worker; between requests a
 * keep-alive connection waits parked (park.h).
 */
#ifndef CONN_H
#define CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "ev.h"

struct worker;

/* One client connection: everything the lifecycle knows of it. */
struct conn {
	struct worker	*w;
	int		 fd;
	int		 lfd;		/* the listener it came from */
	int		 slot;		/* in the pool; -1: the spare */
	int		 next;		/* pool free list */
	int		 parked;
	int		 woken;		/* epoll said it has something to read */
	struct ev_timer	 idle;		/* parked: keepalive_timeout */
	size_t		 len;		/* bytes in w->buf */
	unsigned	 nreq;
	int		 keep;		/* keep the connection after this */
	int		 dirty;		/* unread input may remain */
	int		 hurry;		/* dropped while others wait: no linger */
	int64_t		 since;		/* ms: accepted; fairness slice start */
	int		 status;	/* of the last response, for the log */
	long long	 sent;		/* its body bytes */
	char		 peer[64];	/* client address, when logging */
	/* The client, for status_allow; peer_len 0 when not known. */
	struct sockaddr_storage peer_ss;
	socklen_t	 peer_len;
};

/* Buffers and a pool of cap connections for w; -1 on failure. */
int	conn_init(struct worker *, int cap);
/* Serve fd (accepted from listener lfd): it is closed, or parked. */
void	conn_serve(struct worker *, int fd, int lfd);
/*
 * Stop (or max_requests): a request may be on its way on any parked
 * connection, so they get a short grace to speak, each answered with
 * Connection: close; then the silent ones are closed.  The event core
 * must hold nothing but the parked connections by then.
 */
void	conn_finish(struct worker *);

#endif
