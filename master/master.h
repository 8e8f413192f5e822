/* The supervising master: spawn, reap, respawn, stop. */
#ifndef MASTER_H
#define MASTER_H

struct cfg;
struct pidfh;

struct master_env {
	struct cfg	*cfg;
	int		*lfd;
	int		 nlfd;
	int		 rootfd;
	struct pidfh	*pfh;
};

/* Run until stopped; returns the process exit status. */
int	master_run(struct master_env *);

#endif
