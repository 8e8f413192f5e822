/*
 * Scoreboard: anonymous shared memory mapped by the master before the
 * first fork.  One slot per worker; each worker writes only its own slot.
 */
#ifndef SB_H
#define SB_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

enum sb_state { SB_FREE, SB_IDLE, SB_READING, SB_WRITING, SB_KEEPALIVE,
	SB_DRAINING };

#define SB_REQ_LEN	128

struct sb_slot {
	volatile pid_t		pid;
	volatile int		state;		/* enum sb_state */
	volatile int		gen;		/* generation it belongs to */
	volatile int		retiring;	/* told to stop */
	volatile uint64_t	requests;
	volatile int		conns;		/* open client connections */
	volatile int64_t	started;	/* spawn time, unix seconds */
	/* The request being served: start (sb_now_ms) and first line. */
	volatile int64_t	req_start;
	char			req[SB_REQ_LEN];
};

struct sb {
	/*
	 * Set by the master before it signals a full stop: workers then
	 * drain the accept queue before exiting instead of leaving queued
	 * clients to be reset when the last listener copy closes.
	 */
	volatile sig_atomic_t	draining;
	/*
	 * The worker that drains: one that was idle when the stop began, so
	 * every other worker can drop its listener at once and the port
	 * refuses new connections as soon as the queue is empty.  0 when
	 * every worker was busy: then each drains after its request.
	 */
	volatile pid_t		drainer;
	/* Written by the master, read by the status page. */
	volatile int64_t	started;	/* master start, unix seconds */
	volatile int		generation;	/* current configuration */
	volatile int		target;		/* workers wanted now */
	volatile int64_t	retire_deadline; /* sb_now_ms; 0: none */
	int			nslots;
	struct sb_slot		slot[];
};

struct sb	*sb_create(int nslots);	/* NULL on failure */
int		 sb_alloc(struct sb *, pid_t);	/* free slot index or -1 */
struct sb_slot	*sb_find(struct sb *, pid_t);
const char	*sb_state_name(int);
/* Monotonic milliseconds, comparable across our processes. */
int64_t		 sb_now_ms(void);

#endif
