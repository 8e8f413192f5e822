/*
 * Socket I/O with deadlines.  Client sockets are non-blocking: recv()
 * and send() are tried first (the request is usually there already,
 * thanks to TCP_DEFER_ACCEPT, and the response usually fits in the
 * socket buffer), and poll() waits only when they cannot go on: for
 * reads up to a deadline, for writes up to send_timeout without
 * progress.  Before any wait the event core is told (ev_leave).
 */
#ifndef IO_H
#define IO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ev_loop;

/* On stop, how long an idle keep-alive connection may still speak. */
#define IO_STOP_GRACE_MS	500

struct io {
	struct ev_loop			*ev;
	const volatile sig_atomic_t	*stop;		/* the worker stops */
	int				 send_timeout;	/* ms */
	int64_t				 stop_seen;	/* clock_ms; 0: not yet */
};

/*
 * Read into p until the deadline.  Returns bytes read, 0 at EOF, or -1
 * on error or timeout (errno ETIMEDOUT).  When idle (waiting for a next
 * request) a stop shortens the deadline to a short grace (ECANCELED).
 */
ssize_t	io_read(struct io *, int fd, char *p, size_t n, int64_t deadline,
	    int idle);
/* Send every byte; -1 after send_timeout without progress, or on error. */
int	io_send(struct io *, int fd, const char *p, size_t n, int flags);
int	io_sendv(struct io *, int fd, struct iovec *, int n);
int	io_sendfile(struct io *, int fd, int ffd, off_t off, off_t len);
/*
 * Close without losing the response.  dirty: the client may still be
 * sending, so shut down our side and drain its input for a while first
 * (a close with unread input makes the kernel send a reset).  hurry: it
 * gets no more time than what it sent already takes.
 */
void	io_close(struct io *, int fd, int dirty, int hurry);

#endif
