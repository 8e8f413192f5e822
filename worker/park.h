/*
 * The connection pool and its parked connections.  Between requests a
 * keep-alive connection does not hold the worker: it is parked, that is
 * registered with the event core with a timer for keepalive_timeout,
 * and the worker serves whichever parked connection speaks first.  One
 * wake-up then serves every request that arrived meanwhile, and a few
 * workers hold thousands of idle clients.  The pool holds
 * worker_connections records; a connection accepted beyond that uses
 * the one spare record, and cannot be parked.
 *
 * Policy stays with the owner (conn.c): it names the handlers to call
 * when a parked connection speaks or its timer fires.
 */
#ifndef PARK_H
#define PARK_H

#include "ev.h"

struct conn;
struct sb_slot;

struct park {
	struct ev_loop	*ev;
	struct conn	*pool;
	int		 cap;		/* worker_connections, as fds allow */
	int		 nopen;		/* pool records in use */
	int		 nparked;
	int		 freelist;	/* -1: none */
	int		 fresh;		/* pool[fresh..] never used */
	struct conn	*spare;		/* when the pool is full */
	int		 idle_ms;	/* keepalive_timeout */
	ev_io_fn	*on_read;	/* a parked connection speaks */
	ev_timer_fn	*on_idle;	/* ... or was idle for idle_ms */
	struct sb_slot	*me;		/* shows the open connections */
};

/*
 * How many connections fit: raises the soft open-files limit as far as
 * the hard one allows, and returns fewer than cap when even that is not
 * enough.
 */
int	park_fit(int cap);
/* -1 when out of memory. */
int	park_init(struct park *, struct ev_loop *, int cap, int idle_ms,
	    ev_io_fn *on_read, ev_timer_fn *on_idle, struct sb_slot *me);
/* A record for a new connection (fd accepted from lfd). */
struct conn	*park_open(struct park *, int fd, int lfd);
/* Out of the event core (before its descriptor is closed). */
void	 park_unwatch(struct park *, struct conn *);
/* Its descriptor is closed: give the record back. */
void	 park_release(struct park *, struct conn *);
/* Wait idle for the next request; -1 when it cannot be parked. */
int	 park_put(struct park *, struct conn *);
/* It spoke (or is to go): no longer parked. */
void	 park_take(struct park *, struct conn *);
/*
 * The parked connections one by one: from *cursor on (start at 0), the
 * next parked one, or NULL when there is none left.
 */
struct conn	*park_next(struct park *, int *cursor);
/* Every record in use: the worker can take nobody new. */
int	 park_full(const struct park *);

#endif
