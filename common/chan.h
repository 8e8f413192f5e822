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
	 * struct chan_sub: from a worker that retires (a reload, recycling)
	 * to the master, which passes it on to a worker of the current
	 * generation, or back to the sender (back = 1) when none takes it.
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
	/* Aligned: read in place as a struct (struct chan_sub's uint64_t). */
	_Alignas(max_align_t) char data[CHAN_MAX_DATA];
	size_t		len;
	int		fds[CHAN_MAX_FDS];
	int		nfds;
};

/* A new pair: [0] the master's end, [1] the worker's; -1 with errno. */
int	chan_pair(int sv[2]);
/* Send without blocking; -1 with errno. */
int	chan_send(int fd, const struct chan_msg *);
/*
 * Receive one message without blocking: 1, 0 when none is waiting, -1
 * on error.  Received descriptors are close-on-exec and belong to the
 * caller.
 */
int	chan_recv(int fd, struct chan_msg *);

#endif
