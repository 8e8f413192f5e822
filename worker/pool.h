/*
 * The connection pool: worker_connections records, touched only as
 * connections come (idle workers stay small), with what the worker needs
 * to know of them at a glance: how many are in each state, the parked
 * ones longest-idle first, and the requests in progress oldest first.
 */
#ifndef POOL_H
#define POOL_H

#include "conn.h"

struct sb_slot;

struct pool {
	struct conn	*conn;
	int		 cap;		/* worker_connections, as fds allow */
	int		 nopen;		/* records in use */
	int		 freelist;	/* -1: none */
	int		 fresh;		/* conn[fresh..] never used */
	int		 count[CS_NSTATES];	/* open records by state */
	/* Parked: longest-idle first.  Requests: oldest first. */
	struct conn	*idle_head, *idle_tail;
	struct conn	*req_head, *req_tail;
	struct sb_slot	*me;		/* shows the open connections */
};

/* -1 when out of memory. */
int	pool_init(struct pool *, int cap, struct sb_slot *me);
/* A record for a new connection, or NULL when the pool is full. */
struct conn	*pool_open(struct pool *, int fd, int lfd);
/* Its descriptor is closed: give the record back. */
void	pool_release(struct pool *, struct conn *);
/* Move c to another state, keeping the counts and the idle list. */
void	pool_set_state(struct pool *, struct conn *, enum conn_state);
/* A request on c is in progress from now / is over. */
void	pool_request_begin(struct pool *, struct conn *, int64_t now);
void	pool_request_end(struct pool *, struct conn *);
/*
 * The open connections one by one: from *cursor on (start at 0), the
 * next open one, or NULL when there is none left.
 */
struct conn	*pool_next(struct pool *, int *cursor);
/* Every record in use: the worker can take nobody new. */
int	pool_full(const struct pool *);

#endif
