/*
 * What the master hands a worker when it forks one.  master/ and
 * worker/ never include each other: this is the whole interface between
 * the two roles, with the channel (chan.h) and the scoreboard (sb.h).
 */
#ifndef PROC_H
#define PROC_H

#include <sys/types.h>

struct cfg;
struct chs;
struct priv;
struct sb;

struct worker_env {
	const struct cfg	*cfg;
	const int		*lfd;	/* listening sockets */
	int			 nlfd;
	struct sb		*sb;
	int			 slot;	/* its scoreboard slot */
	pid_t			 master;
	int			 rootfd;
	int			 chan;	/* its end of the channel (chan.h) */
	const struct priv	*priv;
	struct chs		*chs;	/* channels' store; NULL: none */
};

/*
 * A worker's exit status when it cannot start at all (it cannot drop
 * privileges or chroot): respawning it cannot help.  It sends the reason
 * on its channel first (CHAN_FAIL).  During start-up the master then
 * refuses to start (doc/design.md 1.5).
 */
#define PROC_EXIT_SETUP	78	/* EX_CONFIG */

/* A worker's entry point: it never returns. */
typedef void	proc_main_fn(const struct worker_env *);

/*
 * The worker role's entry point (worker/worker.c).  Only main() names
 * it, to hand it to master_run(); the master calls it through that
 * pointer, as nginx's ngx_spawn_process() takes its process cycle.
 */
void	worker_main(const struct worker_env *) __attribute__((noreturn));

#endif
