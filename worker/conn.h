/* Client connections: requests, responses, keep-alive, parking. */
#ifndef CONN_H
#define CONN_H

struct worker_env;

/* Allocate per-worker buffers and the connection pool; -1 on failure. */
int	conn_init(const struct worker_env *);
/* Serve fd (accepted from listener lfd): it is closed, or parked. */
void	conn_serve(int fd, int lfd);
/* How many keep-alive connections wait parked between requests. */
int	conn_nparked(void);
/*
 * With connections parked: wait for one to speak or for a listener to
 * have a new connection, and serve what spoke.  Returns the index of a
 * listener with a connection waiting, else -1.
 */
int	conn_wait(void);
/* Before blocking outside conn_wait: take the listeners out of epoll. */
void	conn_block(void);
/* Leaving: a short grace for parked connections, then close them. */
void	conn_finish(void);

#endif
