/*
 * The status page: what the scoreboard says, as plain text or JSON.
 * Rendering is pure (a scoreboard and a clock in, bytes out), so it can
 * be tested without a server.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sb;

struct chs_stats;

struct status_in {
	const struct sb	*sb;
	int64_t		 now_ms;	/* clock_ms() */
	time_t		 now;		/* time(), for the uptime */
	int		 queue;		/* accept queue; -1: unknown */
	int		 json;		/* else plain text */
	/* The channels' store, counted by chs_stats(); NULL: no channels. */
	const struct chs_stats *channels;
};

/* A buffer this large holds the page of sb as it is now (with room). */
size_t	status_size(const struct sb *);
/* Render the page into buf; its length, or -1 if cap is too small. */
long	status_render(char *buf, size_t cap, const struct status_in *);

#endif
