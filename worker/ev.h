/*
 * The worker's event core: one epoll set, a heap of timers, and for
 * every registered descriptor a handler with its argument.  It is pure
 * mechanism (redis ae.c is the model): what a registration means, and
 * when to register, is decided by its owner.  Its state is one struct
 * passed explicitly.
 *
 * Level-triggered: a handler that leaves bytes unread is called again
 * by the next ev_poll().  Handlers may register and unregister any
 * descriptor, their own included, while a batch is being dispatched; a
 * descriptor is unregistered (ev_del) before it is closed, or its number,
 * reused, would still look registered.
 */
#ifndef EV_H
#define EV_H

#include <stdint.h>
#include <sys/epoll.h>

struct ev_loop;

/* Readiness of fd: events is epoll's mask (EPOLLIN, EPOLLHUP, ...). */
typedef void	ev_io_fn(struct ev_loop *, int fd, uint32_t events,
		    void *arg);
/* A timer that came due; it is no longer armed when this runs. */
typedef void	ev_timer_fn(struct ev_loop *, void *arg);

struct ev_io {
	ev_io_fn	*fn;		/* NULL: not registered */
	void		*arg;
	uint32_t	 events;
};

/* Embedded in its owner; the heap holds pointers to it. */
struct ev_timer {
	int64_t		 when;		/* clock_ms() */
	int		 idx;		/* in the heap; -1: not armed */
	ev_timer_fn	*fn;
	void		*arg;
};

struct ev_loop {
	int		  epfd;
	struct ev_io	 *io;		/* by descriptor */
	int		  nio;		/* descriptors the table covers */
	int		  nreg;		/* registered */
	struct ev_timer	**heap;
	int		  ntimer, heapcap;
};

/*
 * Room for descriptors below maxfd at first (the table grows as needed);
 * -1 with errno on failure.
 */
int	ev_init(struct ev_loop *, int maxfd);
/* Register fd (EPOLLEXCLUSIVE allowed); -1 with errno. */
int	ev_add(struct ev_loop *, int fd, uint32_t events, ev_io_fn *fn,
	    void *arg);
/* Change what fd is watched for (not for EPOLLEXCLUSIVE); -1 with errno. */
int	ev_mod(struct ev_loop *, int fd, uint32_t events);
/*
 * Unregister fd.  Errors are ignored: fd may no longer name the file
 * that was registered (see ev_rebuild).
 */
void	ev_del(struct ev_loop *, int fd);
int	ev_registered(const struct ev_loop *, int fd);
/*
 * A new epoll set with every registration in the table.  For when a
 * registered descriptor number was made to point at another file
 * (dup2): epoll keys on the file, so the old entry cannot be removed.
 */
int	ev_rebuild(struct ev_loop *);
/*
 * Wait up to timeout_ms (-1: for ever; shortened to the next timer) and
 * dispatch what is ready, then the timers that came due.  Returns the
 * number of handlers called, or -1 with errno (EINTR: a signal).
 */
int	ev_poll(struct ev_loop *, int timeout_ms);

void	ev_timer_init(struct ev_timer *, ev_timer_fn *fn, void *arg);
/* Arm (or move) t to fire at when; -1 when out of memory. */
int	ev_timer_at(struct ev_loop *, struct ev_timer *, int64_t when);
void	ev_timer_stop(struct ev_loop *, struct ev_timer *);
/* The earliest armed timer, or NULL. */
struct ev_timer	*ev_timer_first(const struct ev_loop *);

#endif
