/*
 * The channel between the master and one worker: a datagram socketpair
 * made before the fork.  Each datagram is one message, a type byte and a
 * small payload, with descriptors passed alongside (SCM_RIGHTS).  The
 * master relays; it never reads client data.
 */
#ifndef CHAN_H
#define CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHAN_MAX_FDS	4
#define CHAN_MAX_DATA	256

enum chan_type {
	/*
	 * Log files reopened by the master (SIGUSR1): one descriptor per
	 * payload byte, 'e' for the error log and 'a' for the access log.
	 */
	CHAN_LOGS = 1,
	/*
	 * From a worker that cannot start, just before it exits with
	 * PROC_EXIT_SETUP: why (the payload, text without a NUL).
	 */
	CHAN_FAIL = 2,
	/*
	 * A channel subscriber's socket (one descriptor) and its place,
	 * struct chan_sub (copied in and out of data: not aligned for it):
	 * from a worker that retires (a reload, an upgrade, recycling) to
	 * the master, which passes it on to a worker of the current
	 * generation (or of an upgrade's new master), or back to the sender
	 * (back = 1) when none takes it.  Empty, no descriptor: the
	 * sender's last, which the master echoes once it has answered for
	 * all before it.
	 */
	CHAN_SUB = 3,
};

/* CHAN_SUB's payload: what the subscriber keeps in the store. */
struct chan_sub {
	uint64_t	joined;		/* ids after it are counted for it */
	uint64_t	got;		/* the last id it was given */
	int32_t		ch;		/* the store's channel index */
	int32_t		back;		/* returned: end it with reconnect */
};

struct chan_msg {
	int		type;		/* enum chan_type */
	char		data[CHAN_MAX_DATA];
	size_t		len;
	int		fds[CHAN_MAX_FDS];
	int		nfds;
};

/* A new pair: [0] the master's end, [1] the worker's; -1 with errno. */
int	chan_pair(int sv[2]);
/* Send without blocking; -1 with errno. */
int	chan_send(int fd, const struct chan_msg *);
/* After chan_send() failed: only because the peer's queue is full? */
int	chan_full(void);
/*
 * Receive one message without blocking: 1, 0 when none is waiting, -1
 * on error.  Received descriptors are close-on-exec and belong to the
 * caller.
 */
int	chan_recv(int fd, struct chan_msg *);

#endif
