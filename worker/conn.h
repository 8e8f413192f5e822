/*
 * The connection lifecycle, driven by the event core: a connection is a
 * registration that moves through states, and the worker serves whichever
 * connection is ready.  A head arrives in pieces without holding the
 * worker; a response that does not fit in the socket at once is sent as
 * the client takes it; a closing connection lingers on its own.  The
 * worker is taken for one request at a time only while it handles it:
 * parsing, opening the file, starting the response.
 */
#ifndef CONN_H
#define CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "ev.h"
#include "http.h"
#include "io.h"

struct ps_sub;
struct ssl_st;
struct worker;
struct ws;

/* What the listener a connection came from asks for (cfg listen). */
#define LF_PROXY	0x1	/* proxy_protocol */
#define LF_TLS		0x2	/* tls */
#define LF_REDIRECT	0x4	/* redirect_https */

enum conn_state {
	CS_PROXY,	/* reading the PROXY protocol header (proxy.c) */
	CS_TLS,		/* the TLS handshake (tlsconn.c) */
	CS_HEAD,	/* reading a request head */
	CS_BODY,	/* reading and dropping a request body */
	CS_SEND,	/* sending a response as the client takes it */
	CS_LINGER,	/* closed for sending; draining what the client sends */
	CS_PARKED,	/* idle between requests (keep-alive) */
	CS_WS,		/* a WebSocket session (ws.c) */
	CS_SUB,		/* a channel subscriber (pubsub.c) */
	CS_NSTATES
};

/*
 * A read against a minimum rate, as Apache's mod_reqtimeout does it: the
 * deadline is base ms after the start, plus one second for every rate
 * bytes received, but never more than cap ms after the start.
 */
struct pace {
	int64_t	start;		/* ms */
	int64_t	base, cap;	/* ms */
	size_t	rate;		/* bytes/s; 0: received bytes earn nothing */
	size_t	got;		/* bytes received since start */
};

/* What a connection keeps of its request while the response is sent. */
struct req_info {
	struct http_str	 line, referer, agent;	/* into the conn's buffer */
	size_t		 head_len;
	long long	 content_length;	/* -1: none */
	int		 chunked;
	int		 keepalive;		/* what the client asked for */
	int		 meth;			/* enum http_method */
	int		 minor;
	int		 quiet;			/* no access-log line */
};

/* One client connection: everything the lifecycle knows of it. */
struct conn {
	struct worker	*w;
	int		 fd;
	int		 lfd;		/* the listener it came from */
	int		 lflags;	/* LF_*: what that listener is */
	int		 plain_on_tls;	/* plain HTTP came to a tls listener */
	struct ssl_st	*ssl;		/* TLS; NULL: plain */
	struct ev_timer	 kick;		/* TLS: bytes OpenSSL holds, to read */
	int		 slot;		/* in the pool */
	int		 next;		/* pool free list */
	enum conn_state	 state;
	struct ev_timer	 timer;		/* the state's deadline */
	char		*buf;		/* the head, and what follows it */
	size_t		 cap, len;
	size_t		 line;		/* where the unfinished line starts */
	int		 ready;		/* a complete head is in buf already */
	struct pace	 pace;		/* CS_HEAD, CS_BODY */
	long long	 body_left;	/* CS_BODY */
	struct out	 out;		/* CS_SEND */
	int64_t		 progress;	/* CS_SEND: ms of the last progress */
	int		 outq;		/* CS_SEND: unacknowledged bytes then */
	size_t		 drained;	/* CS_LINGER */
	int64_t		 idle_since;	/* CS_PARKED */
	struct req_info	 ri;
	int64_t		 req_start;	/* the request in progress; 0: none */
	struct conn	*older, *newer;	/* requests in progress, oldest first */
	struct conn	*idle_prev, *idle_next;	/* parked, longest-idle first */
	unsigned	 nreq;
	int		 keep;		/* keep the connection after this */
	int		 hurry;		/* evicted: close without lingering */
	int64_t		 since;		/* ms: accepted; fairness slice start */
	int		 status;	/* of the last response, for the log */
	long long	 sent;		/* its body bytes */
	/*
	 * The client, for the access log, status_allow and programs: the
	 * connection's (addr_ss), or the request's forwarding header's
	 * when the connection is from real_ip_from (forwarded set).
	 * peer_len 0 when not known.
	 */
	char		 peer[64];
	struct sockaddr_storage peer_ss;
	socklen_t	 peer_len;
	int		 forwarded;
	/* The TCP peer, or the source a PROXY header gave. */
	struct sockaddr_storage addr_ss;
	socklen_t	 addr_len;
	struct ws	*ws;		/* CS_WS, or its 101 on the way */
	struct ps_sub	*sub;		/* CS_SUB, or its head on the way */
	/* A POST to a channel: its body, read by pubsub.c. */
	int		 collect;	/* CS_BODY keeps the body (pubsub.c) */
	int		 route;		/* its channel prefix */
	size_t		 plen, pgot;	/* its length, bytes read */
};

/* Buffers and a pool of cap connections for w; -1 on failure. */
int	conn_init(struct worker *, int cap);
/*
 * A new connection fd, accepted from listener lfd; on a proxy_protocol
 * listener it starts with the PROXY header (CS_PROXY).
 */
void	conn_start(struct worker *, int fd, int lfd);
/*
 * A connection another worker served (a channel subscriber handed over
 * at its reload), in CS_HEAD until the caller sets its state; NULL when
 * the pool is full.
 */
struct conn *conn_adopt(struct worker *, int fd);
/*
 * The worker stops taking requests (a stop, or max_requests): idle
 * connections get a short grace for a request already on its way, then
 * close; every request in progress is finished.
 */
void	conn_stop(struct worker *);
/*
 * Clients wait in the accept queue and the worker is full: close its
 * longest-idle connection, or one whose head has taken longer than
 * header_timeout_busy.  1 when a place was freed.
 */
int	conn_evict(struct worker *);
/* Wait for events on c's socket (registering it the first time). */
int	conn_watch(struct conn *, uint32_t events);
/* Gone: out of the event core, closed, the record given back. */
void	conn_close(struct conn *);
/* Fast stop: every connection closed now, sessions with a Close 1001. */
void	conn_hurry(struct worker *);
/* Show in the scoreboard what the worker's connections are doing. */
void	conn_show(struct worker *);
/*
 * The connection's transport, plain or TLS, as recv() and sendmsg()
 * (MSG_DONTWAIT, no SIGPIPE): bytes, 0 at the end, -1 with errno.  A
 * TLS send takes at most a record and must be offered the same bytes
 * again after EAGAIN.
 */
ssize_t	conn_recv(struct conn *, void *, size_t);
/* A response was started (pubsub.c's, after a body): go on from rc. */
void	conn_responded(struct conn *, enum io_rc rc);
/* Close gracefully: shut down our side, drain the client's, close. */
void	conn_finish(struct conn *);
/* When the read in progress (head or body) is late. */
int64_t	conn_pace_deadline(const struct conn *);
ssize_t	conn_sendv(struct conn *, const struct iovec *, int n, int more);

#endif
