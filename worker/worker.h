/*
 * A worker's state: one struct, made by worker_main() and passed
 * explicitly to every module of the worker.  Each part is owned by the
 * module named beside it; the others read it.
 */
#ifndef WORKER_H
#define WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ev.h"
#include "http.h"
#include "pool.h"

struct cfg;
struct ps_state;
struct sb_slot;
struct worker_env;

struct worker {
	const struct worker_env	*env;		/* from the master */
	const struct cfg	*cfg;
	struct sb_slot		*me;		/* our scoreboard slot */
	/* Set by SIGTERM (worker.c): finish what is in flight, then exit. */
	const volatile sig_atomic_t *stop;
	/* Set by SIGUSR2 (a fast stop): close everything now. */
	const volatile sig_atomic_t *hurry;
	uint64_t		 max_requests;	/* 0: no limit (worker.c) */
	struct ev_loop		 ev;		/* ev.c */
	struct pool		 pool;		/* pool.c */
	int			 lready;	/* listener epoll named (worker.c) */
	struct ev_timer		 tick;		/* worker.c: see its on_tick() */
	int			 paused;	/* worker.c: out of descriptors */
	int64_t			 pause_until;

	/* The connections (conn.c). */
	int			 stopping;	/* conn_stop() was called */
	int64_t			 stop_at;
	struct http_limits	 lim;
	struct http_req		 req;		/* the head being parsed */
	size_t			 bufcap;	/* a head buffer's largest size */
	char			**spare;	/* freed head buffers */
	int			 nspare;
	int64_t			 proxy_log_at;	/* PROXY refusals: last line */
	unsigned long		 proxy_unsaid;	/* refused since, not logged */

	/* Channel subscribers and the wake socket (pubsub.c). */
	struct ps_state		*ps;

	/* WebSocket sessions, their programs included (ws.c). */
	struct ws		*ws_head;
	int			 ws_live;

	/* Responses (resp.c). */
	char			 server_hdr[64];
	char			*locbuf;	/* a Location header */
	size_t			 loccap;
};

#endif
