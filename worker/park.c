#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "park.h"
#include "sb.h"

#define FD_RESERVE	64	/* descriptors kept for files and logs */
#define SAY_EVERY_MS	60000

int
park_fit(int cap)
{
	struct rlimit rl;
	const rlim_t want = (rlim_t)cap + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return cap;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY &&
		    rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want) {
		int fit = rl.rlim_cur > FD_RESERVE + 1 ?
		    (int)(rl.rlim_cur - FD_RESERVE) : 1;

		log_warnx("worker_connections %d: the open files limit is "
		    "%llu; holding %d", cap, (unsigned long long)rl.rlim_cur,
		    fit);
		return fit;
	}
	return cap;
}

int
park_init(struct park *p, struct ev_loop *ev, int cap, int idle_ms,
    ev_io_fn *on_read, ev_timer_fn *on_idle, struct sb_slot *me)
{
	*p = (struct park){ .ev = ev, .cap = cap, .freelist = -1,
		.idle_ms = idle_ms, .on_read = on_read, .on_idle = on_idle,
		.me = me };
	/* Touched only as connections come: idle workers stay small. */
	if ((p->pool = calloc((size_t)cap, sizeof(*p->pool))) == NULL ||
	    (p->spare = calloc(1, sizeof(*p->spare))) == NULL)
		return -1;
	return 0;
}

struct conn *
park_open(struct park *p, int fd, int lfd)
{
	struct conn *c = p->spare;
	int slot = -1;

	if (p->freelist != -1) {
		slot = p->freelist;
		p->freelist = p->pool[slot].next;
	} else if (p->fresh < p->cap)
		slot = p->fresh++;
	if (slot >= 0) {
		c = &p->pool[slot];
		p->nopen++;
	}
	sb_set_conns(p->me, p->nopen + (slot < 0));
	*c = (struct conn){ .fd = fd, .lfd = lfd, .slot = slot, .next = -1,
		.since = clock_ms() };
	ev_timer_init(&c->idle, p->on_idle, c);
	return c;
}

void
park_unwatch(struct park *p, struct conn *c)
{
	if (c->parked)
		park_take(p, c);
	ev_del(p->ev, c->fd);
}

void
park_release(struct park *p, struct conn *c)
{
	if (c->slot >= 0) {
		c->next = p->freelist;
		p->freelist = c->slot;
		p->nopen--;
	}
	sb_set_conns(p->me, p->nopen);
}

/* Registered once while it lives; say rarely when epoll refuses. */
static int
watch(struct park *p, struct conn *c)
{
	static int64_t said;
	int64_t now;

	if (ev_registered(p->ev, c->fd))
		return 0;
	if (ev_add(p->ev, c->fd, EPOLLIN | EPOLLRDHUP, p->on_read, c) == 0)
		return 0;
	/* ENOSPC: fs.epoll.max_user_watches. */
	now = clock_ms();
	if (said == 0 || now - said >= SAY_EVERY_MS) {
		log_warn("epoll_ctl: closing idle keep-alive connections "
		    "instead of parking them");
		said = now;
	}
	return -1;
}

int
park_put(struct park *p, struct conn *c)
{
	if (c->slot < 0 || watch(p, c) == -1 ||
	    ev_timer_at(p->ev, &c->idle, clock_ms() + p->idle_ms) == -1)
		return -1;
	c->woken = 0;
	c->parked = 1;
	p->nparked++;
	return 0;
}

void
park_take(struct park *p, struct conn *c)
{
	ev_timer_stop(p->ev, &c->idle);
	c->parked = 0;
	p->nparked--;
}

struct conn *
park_next(struct park *p, int *cursor)
{
	for (; *cursor < p->fresh && p->nparked > 0; (*cursor)++)
		if (p->pool[*cursor].parked)
			return &p->pool[(*cursor)++];
	return NULL;
}

int
park_full(const struct park *p)
{
	return p->nopen >= p->cap;
}
