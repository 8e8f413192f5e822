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
#include "io.h"
#include "park.h"

struct cfg;
struct sb_slot;
struct worker_env;

struct worker {
	const struct worker_env	*env;		/* from the master */
	const struct cfg	*cfg;
	struct sb_slot		*me;		/* our scoreboard slot */
	/* Set by SIGTERM (worker.c): finish what is in flight, then exit. */
	const volatile sig_atomic_t *stop;
	uint64_t		 max_requests;	/* 0: no limit (worker.c) */
	struct ev_loop		 ev;		/* ev.c */
	struct io		 io;		/* io.c */
	struct park		 park;		/* park.c */
	int			 lready;	/* listener epoll named (worker.c) */

	/* The request being read and answered (conn.c, resp.c). */
	char			*buf;		/* the head, and what follows */
	size_t			 bufcap;
	struct http_limits	 lim;
	struct http_req		 req;
	char			 server_hdr[64];
	char			*locbuf;	/* a Location header (resp.c) */
	size_t			 loccap;
};

#endif
