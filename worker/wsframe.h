/*
 * The WebSocket framing layer that every session kind shares: wslay's
 * event API on a connection of the worker's event core (its receive
 * and send callbacks, TLS-aware through conn_recv()/conn_sendv()), a
 * frame header kept and sent with its payload in one sendmsg(), the
 * bytes that came with the upgrade's head, ping/pong liveness, the
 * server's Close and when a session is over on the client's side.
 * Used by ws.c (sessions bridged to programs) and wschan.c (channel
 * subscribers); the policy (what a message means, when to stop reading)
 * is theirs.
 */
#ifndef WSFRAME_H
#define WSFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

struct conn;

struct wsf {
	wslay_event_context_ptr	 ctx;
	struct conn		*c;
	/* The owner's: a complete message, and whether reading must wait. */
	void			(*on_msg)(void *,
				    const struct wslay_event_on_msg_recv_arg *);
	int			(*hold)(const void *);
	void			*arg;
	char			*pre;		/* bytes that came with the head */
	size_t			 prelen, preoff;
	uint8_t			 hdr[16];	/* a frame header kept: send_cb */
	size_t			 hlen;
	/*
	 * TLS: OpenSSL holds the record it made of hdr and a payload, which
	 * only the same bytes (wslay's retry of that payload) may complete;
	 * the header alone must not be offered meanwhile.
	 */
	int			 owed;
	int			 gone;		/* the client's socket failed */
	int			 fail_code;	/* the client broke the framing */
	size_t			 rbudget;	/* bytes to read in this pump */
	/*
	 * The client's socket was read empty since epoll last said it is
	 * readable: reading it again before then is a system call wasted
	 * on EAGAIN (epoll is level-triggered: nothing is missed).
	 * wsf_events() clears it when epoll says EPOLLIN.
	 */
	int			 drained;
	int64_t			 next_ping, last_pong;
	int64_t			 close_by;	/* Close queued: TCP closed by */
	int64_t			 progress;	/* ms: the socket last took bytes */
};

/*
 * Set f up on c (the 101 is out): pre holds the n bytes that came after
 * the head (copied); messages up to max bytes; a ping every iv ms (0:
 * none).  -1: out of memory.
 */
int	wsf_init(struct wsf *, struct conn *, size_t max, int iv,
	    const char *pre, size_t n,
	    void (*on_msg)(void *, const struct wslay_event_on_msg_recv_arg *),
	    int (*hold)(const void *), void *arg);
void	wsf_free(struct wsf *);
/* Read and parse what the client sent (up to a budget per call). */
/*
 * epoll's events on the client's socket, first thing in the owner's
 * handler: readable again, or gone (an error or hang-up with nothing
 * left to read).
 */
void	wsf_events(struct wsf *, uint32_t events);
void	wsf_recv(struct wsf *);
/* Send what is queued, as far as the socket takes it. */
void	wsf_send(struct wsf *);
/* One message; text that is not UTF-8 gets U+FFFD.  0: queued. */
int	wsf_msg(struct wsf *, int opcode, const void *, size_t);
/*
 * Queue the server's Close (once); TCP is closed by close_by, timeout
 * ms from now but never past deadline.
 */
void	wsf_queue_close(struct wsf *, int code, const char *reason,
	    int timeout, int64_t deadline);
/* A fast stop: Close 1001 with reason, sent at once if it can be. */
void	wsf_hurry(struct wsf *, const char *reason);
/*
 * Its ping, when due at now with interval iv (0: off); 1 when the client
 * answered neither of the last two (the caller closes with 1001).
 */
int	wsf_ping(struct wsf *, int64_t now, int iv);
/* The earliest of deadline, the next ping, the Close wait. */
int64_t	wsf_next_due(const struct wsf *, int iv, int64_t deadline);
/* Is something queued or kept for the socket? */
int	wsf_want_write(const struct wsf *);
/* Watch c for reading (when asked) and for what is queued (gone if not). */
void	wsf_watch(struct wsf *, int reading);
/* Is the session over on the client's side? */
int	wsf_finished(const struct wsf *);

#endif
