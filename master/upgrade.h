/*
 * Binary upgrade (SIGUSR2): fork and exec the binary on disk as a new
 * master that inherits the listening sockets (LISTEN_FDS, systemd's
 * convention) and reports on a pipe when its workers accept.  Until it
 * does, this master goes on serving; if it fails, the pidfile is renamed
 * back and nothing has changed.
 */
#ifndef UPGRADE_H
#define UPGRADE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

struct master_env;

struct upgrade {
	pid_t	 pid;		/* the new master; 0: none */
	int	 fd;		/* its readiness pipe; -1: none */
	/*
	 * A datagram socket to it: our workers' channel subscribers are
	 * passed on over it once it serves (doc/design.md 13); -1: none.
	 */
	int	 subs;
	int	 ready;		/* it said it serves */
	int	 off;		/* called off by a stop: "ready" is refused */
	int64_t	 deadline;	/* clock_ms: stop it when not ready by then */
	char	 msg[512];	/* what it wrote before giving up */
	char	 oldbin[PATH_MAX + 8];	/* our pidfile's name meanwhile */
};

void	upgrade_init(struct upgrade *);
/* Is one started and not yet serving? */
int	upgrade_pending(const struct upgrade *);
/* SIGUSR2: start one (generation: the new master's first). */
void	upgrade_start(struct upgrade *, const struct master_env *,
	    int generation);
/* Its pipe is readable: 1 when it now serves (we are to stop), else 0. */
int	upgrade_event(struct upgrade *);
/* A child was reaped: 1 when it was the new master (handled). */
int	upgrade_reaped(struct upgrade *, pid_t, const char *how);
/* Stop it when not ready by its deadline. */
void	upgrade_check(struct upgrade *, int64_t now);
/*
 * We are stopping: an upgrade still pending is called off.  Its new
 * master is sent SIGTERM and waited for; a "ready" it may still write is
 * refused, so the pidfile is never left to it.
 */
void	upgrade_call_off(struct upgrade *);
/* A fast stop or the shutdown deadline: a pending one dies with us. */
void	upgrade_kill(struct upgrade *);

#endif
