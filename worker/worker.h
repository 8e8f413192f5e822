/* Worker process: accept loop, signals, graceful stop. */
#ifndef WORKER_H
#define WORKER_H

#include <signal.h>
#include <sys/types.h>

struct cfg;
struct priv;
struct sb;

struct worker_env {
	const struct cfg	*cfg;
	const int		*lfd;	/* listening sockets */
	int			 nlfd;
	struct sb		*sb;
	int			 slot;	/* our scoreboard slot */
	pid_t			 master;
	int			 rootfd;
	int			 ctl;	/* datagram socket from the master */
	const struct priv	*priv;
};

/* Set by SIGTERM: finish the request in flight, then exit. */
extern volatile sig_atomic_t worker_stop;

void	worker_main(const struct worker_env *) __attribute__((noreturn));
/* Is the request being served to be this worker's last (max_requests)? */
int	worker_last_request(void);
void	worker_set_state(int state);	/* enum sb_state */
/* Show the state in the process title: before the worker blocks. */
void	worker_title(void);

#endif
