/* One client connection: requests, responses, keep-alive. */
#ifndef CONN_H
#define CONN_H

struct worker_env;

/* Allocate per-worker buffers; -1 on failure. */
int	conn_init(const struct worker_env *);
/* Serve fd (accepted from listener lfd) until close; closes fd. */
void	conn_serve(int fd, int lfd);

#endif
