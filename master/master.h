/* The supervising master: spawn, reap, respawn, stop. */
#ifndef MASTER_H
#define MASTER_H

#include "priv.h"

struct cfg;
struct pidfh;

struct master_env {
	struct cfg	*cfg;
	int		*lfd;
	int		 nlfd;
	int		 rootfd;
	struct pidfh	*pfh;
	struct priv	 priv;		/* what workers drop to */
};

/* Run until stopped; returns the process exit status. */
int	master_run(struct master_env *);

#endif
