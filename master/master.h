/* The supervising master: spawn, reap, respawn, reload, upgrade, stop. */
#ifndef MASTER_H
#define MASTER_H

#include <stddef.h>

#include "priv.h"
#include "proc.h"

struct cfg;
struct pidfh;
struct tls_keys;

/* The channels' store limits (chstore.h) of configuration c. */
#define CHS_LIMITS(c)	{ (c)->channel_max, (c)->channel_buffer, \
	(c)->channel_memory, (c)->channel_message_timeout }

struct master_env {
	struct cfg	*cfg;
	int		*lfd;		/* CFG_MAX_LISTEN slots */
	int		 nlfd;
	int		 rootfd;
	struct pidfh	*pfh;
	struct priv	 priv;		/* what workers drop to */
	struct tls_keys	*tls_keys;	/* session tickets: shared, rotated */
	/*
	 * Channels' store (chstore.h): made at start-up when the
	 * configuration has channels, or at the first reload that does;
	 * kept to the end, and passed to an upgrade's new master.
	 */
	struct chs	*chs;
	/*
	 * Build a fresh configuration the way start-up did (defaults, file,
	 * flags, checks) for a reload; -1 with a message.
	 */
	int		(*reconfigure)(struct cfg *, struct priv *, char *err,
			    size_t errlen);
	char *const	*argv;		/* to exec ourselves on SIGUSR2 */
	const char	*exe;		/* absolute path of our binary */
	int		 ready_fd;	/* upgrade: tell the old master, or -1 */
	/* Upgrade: the old master's subscribers come on it; -1: none. */
	int		 pred_fd;
	/*
	 * Daemon mode: the launching parent waits on this pipe until the
	 * workers are up (-1: nobody waits).  A worker holds neither it nor
	 * our stderr, which the launcher's caller may read to its end.
	 */
	int		 launcher_fd;
	/* The workers are up: the launcher may go (closes launcher_fd). */
	void		(*started)(void);
	/* Start-up cannot succeed: one line, pidfile removed, exit 1. */
	void		(*fail)(const char *msg);
	int		 start_dir;	/* where we started: the new master too */
	proc_main_fn	*worker;	/* what a forked worker runs */
};

/* Run until stopped; returns the process exit status. */
int	master_run(struct master_env *);

#endif
