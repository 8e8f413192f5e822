/*
 * Scoreboard: anonymous shared memory mapped by the master before the
 * first fork.  One slot per worker.  The master alone writes the board's
 * head (struct sb's fields); every write to a slot goes through this
 * module: the master reserves, retires and frees slots, both sides of
 * the fork start one, and each worker writes only its own slot's state,
 * connection count, requests and count of access-log lines lost.
 */
#ifndef SB_H
#define SB_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sb_state { SB_FREE, SB_IDLE, SB_READING, SB_WRITING, SB_KEEPALIVE,
	SB_DRAINING };

#define SB_REQ_LEN	128
#define SB_SESSIONS	32	/* WebSocket sessions shown per worker */
#define SB_PATH_LEN	64
#define SB_PEER_LEN	48

/* One WebSocket session, for the status page; prog 0: a free entry. */
struct sb_session {
	volatile pid_t		prog;		/* its program's pid */
	volatile int64_t	started;	/* unix seconds */
	volatile uint64_t	in, out;	/* messages from / to the client */
	char			path[SB_PATH_LEN];
	char			peer[SB_PEER_LEN];
};

struct sb_slot {
	volatile pid_t		pid;		/* 0: free, -1: reserved */
	volatile int		state;		/* enum sb_state */
	volatile int		gen;		/* generation it belongs to */
	volatile int		retiring;	/* told to stop */
	volatile uint64_t	requests;
	volatile int		conns;		/* open client connections */
	volatile int64_t	started;	/* spawn time, unix seconds */
	/*
	 * The oldest request in progress (being handled, or its response
	 * still being sent): its start (clock_ms; 0: none) and first line.
	 */
	volatile int64_t	req_start;
	char			req[SB_REQ_LEN];
	/* Access-log lines this worker could not write (disk full...). */
	volatile uint64_t	log_lost;
	/*
	 * Since when the worker is busy with one request without returning
	 * to its loop (clock_ms; 0: it is not), and that request's first
	 * line: the master's request_timeout applies to it.
	 */
	volatile int64_t	busy_since;
	char			busy_req[SB_REQ_LEN];
	/*
	 * Written by the master when it tells the worker to stop: by when
	 * it must be gone (clock_ms; 0: not told), so that the worker can
	 * end its sessions in time.
	 */
	volatile int64_t	deadline;
	/* WebSocket sessions: all of them (the table: sb_sessions()). */
	volatile int		nsessions;
	/*
	 * TLS: handshakes completed, of them resumed and TLS 1.3 ones;
	 * handshakes that failed or timed out; connections open now.
	 */
	volatile uint64_t	tls_done, tls_resumed, tls_v13, tls_failed;
	volatile int		tls_open;
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
	/*
	 * Set by the master when its workers retire with none of its own to
	 * follow them (it hands over to an upgrade's new master): channel
	 * subscribers are not passed on, they reconnect.
	 */
	volatile sig_atomic_t	no_takers;
	/*
	 * Set by the master: serving, once its first generation of workers
	 * is up (an upgrade's new master: from the start, the old master
	 * serves meanwhile); lameduck, during shutdown_delay.  The workers'
	 * health_path answers 200 only while serving, neither lameduck nor
	 * draining; in lameduck every response closes its connection.
	 */
	volatile sig_atomic_t	serving;
	volatile sig_atomic_t	lameduck;
	/* Written by the master, read by the status page. */
	volatile int64_t	started;	/* master start, unix seconds */
	volatile int		generation;	/* current configuration */
	volatile int		target;		/* workers wanted now */
	/* The earliest deadline of a worker still retiring; 0: none. */
	volatile int64_t	retire_deadline;	/* clock_ms */
	int			nslots;
	/*
	 * The slots' session tables, SB_SESSIONS each, apart from the slots:
	 * a look at every slot then touches only the slots' pages (the
	 * mapping is touched, and so costs memory, only where it is used).
	 */
	struct sb_session	*session;
	struct sb_slot		slot[];
};

struct sb	*sb_create(int nslots);	/* NULL on failure */
/* Slot i's table of SB_SESSIONS sessions. */
struct sb_session *sb_sessions(const struct sb *, int slot);
const char	*sb_state_name(int);

/* The master's side. */
int	sb_slot_reserve(struct sb *);	/* a free slot's index, or -1 */
void	sb_slot_start(struct sb *, int slot, pid_t);
void	sb_slot_retire(struct sb *, int slot);
/* The worker in slot must be gone by deadline (clock_ms). */
void	sb_slot_deadline(struct sb *, int slot, int64_t deadline);
void	sb_slot_free(struct sb *, int slot);

/* A worker's side: its own slot only. */
void	sb_set_state(struct sb_slot *, enum sb_state);
void	sb_set_conns(struct sb_slot *, int);
/* Show a request in progress (start 0: none). */
void	sb_show_request(struct sb_slot *, const char *line, size_t,
	    int64_t start);
/* Busy with one request (for request_timeout); line NULL: no longer. */
void	sb_busy(struct sb_slot *, const char *line, size_t);
/* A request is answered: count it. */
void	sb_request_end(struct sb_slot *);
/* A session begins: its entry (-1: not shown, the table is full). */
int	sb_session_open(struct sb *, int slot, const char *path,
	    const char *peer, pid_t prog);
void	sb_session_count(struct sb *, int slot, int entry, uint64_t in,
	    uint64_t out);
void	sb_session_close(struct sb *, int slot, int entry);
/* A TLS handshake completed (failed: it did not). */
void	sb_count_tls(struct sb_slot *, int v13, int resumed);
void	sb_count_tls_failed(struct sb_slot *);
/* A TLS connection opens (+1) or closes (-1). */
void	sb_tls_open(struct sb_slot *, int delta);
/* An access-log line was lost: a failed or short write. */
void	sb_count_log_failure(struct sb_slot *);

#endif
