/*
 * The event core (see ev.h).  Registrations live in a table indexed by
 * descriptor, as in redis ae.c: epoll reports the descriptor, and a
 * registration removed while a batch is dispatched is simply not found
 * when its turn comes.  Timers are a binary min-heap of pointers into
 * their owners, each knowing its own index, so stopping one is
 * O(log n) without a search.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ev.h"

#define EV_BATCH	64	/* events taken from epoll per call */

int
ev_init(struct ev_loop *l, int maxfd)
{
	*l = (struct ev_loop){ .epfd = -1 };
	if (maxfd < 1)
		maxfd = 1;
	if ((l->io = calloc((size_t)maxfd, sizeof(*l->io))) == NULL)
		return -1;
	l->nio = maxfd;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	return 0;
}

/*
 * Room in the table for fd: it grows as descriptors come, so its size
 * follows what is used, not the open-files limit (which may be huge).
 */
static int
grow(struct ev_loop *l, int fd)
{
	struct ev_io *io;
	int n = l->nio;

	while (n <= fd)
		n = n > INT32_MAX / 2 ? fd + 1 : 2 * n;
	if ((io = reallocarray(l->io, (size_t)n, sizeof(*io))) == NULL)
		return -1;
	memset(io + l->nio, 0, (size_t)(n - l->nio) * sizeof(*io));
	l->io = io;
	l->nio = n;
	return 0;
}

int
ev_add(struct ev_loop *l, int fd, uint32_t events, ev_io_fn *fn, void *arg)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fd >= l->nio && grow(l, fd) == -1)
		return -1;
	if (l->io[fd].fn != NULL) {
		errno = EEXIST;
		return -1;
	}
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -1;
	l->io[fd] = (struct ev_io){ fn, arg, events };
	l->nreg++;
	return 0;
}

int
ev_mod(struct ev_loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (!ev_registered(l, fd)) {
		errno = ENOENT;
		return -1;
	}
	if (l->io[fd].events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
		return -1;
	l->io[fd].events = events;
	return 0;
}

void
ev_del(struct ev_loop *l, int fd)
{
	if (!ev_registered(l, fd))
		return;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->io[fd] = (struct ev_io){ NULL, NULL, 0 };
	l->nreg--;
}

int
ev_registered(const struct ev_loop *l, int fd)
{
	return fd >= 0 && fd < l->nio && l->io[fd].fn != NULL;
}

int
ev_rebuild(struct ev_loop *l)
{
	int fd;

	if ((fd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	close(l->epfd);
	l->epfd = fd;
	for (int i = 0; i < l->nio; i++) {
		struct epoll_event ev = { .events = l->io[i].events,
			.data.fd = i };

		if (l->io[i].fn != NULL &&
		    epoll_ctl(l->epfd, EPOLL_CTL_ADD, i, &ev) == -1) {
			l->io[i] = (struct ev_io){ NULL, NULL, 0 };
			l->nreg--;
		}
	}
	return 0;
}

/* Fire every timer that is due; how many fired. */
static int
run_timers(struct ev_loop *l)
{
	int64_t now = clock_ms();
	int n = 0;

	while (l->ntimer > 0 && l->heap[0]->when <= now) {
		struct ev_timer *t = l->heap[0];

		ev_timer_stop(l, t);
		t->fn(l, t->arg);
		n++;
	}
	return n;
}

int
ev_poll(struct ev_loop *l, int timeout_ms)
{
	struct epoll_event ev[EV_BATCH];
	int n, called = 0;

	if (l->ntimer > 0) {
		int64_t left = l->heap[0]->when - clock_ms();

		if (left < 0)
			left = 0;
		if (timeout_ms < 0 || left < timeout_ms)
			timeout_ms = left > INT32_MAX ? INT32_MAX : (int)left;
	}
	if ((n = epoll_wait(l->epfd, ev, EV_BATCH, timeout_ms)) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;

		/* Unregistered by an earlier handler of this batch? */
		if (!ev_registered(l, fd))
			continue;
		l->io[fd].fn(l, fd, ev[i].events, l->io[fd].arg);
		called++;
	}
	return called + run_timers(l);
}

/* --- timers: a binary min-heap on when ------------------------------ */

static void
heap_set(struct ev_loop *l, int i, struct ev_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void
sift_up(struct ev_loop *l, int i)
{
	struct ev_timer *t = l->heap[i];

	while (i > 0 && l->heap[(i - 1) / 2]->when > t->when) {
		heap_set(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(l, i, t);
}

static void
sift_down(struct ev_loop *l, int i)
{
	struct ev_timer *t = l->heap[i];

	for (;;) {
		int c = 2 * i + 1;

		if (c >= l->ntimer)
			break;
		if (c + 1 < l->ntimer && l->heap[c + 1]->when < l->heap[c]->when)
			c++;
		if (l->heap[c]->when >= t->when)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void
ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg)
{
	*t = (struct ev_timer){ 0, -1, fn, arg };
}

int
ev_timer_at(struct ev_loop *l, struct ev_timer *t, int64_t when)
{
	if (t->idx >= 0) {
		int64_t was = t->when;

		t->when = when;
		if (when < was)
			sift_up(l, t->idx);
		else
			sift_down(l, t->idx);
		return 0;
	}
	if (l->ntimer == l->heapcap) {
		int cap = l->heapcap ? 2 * l->heapcap : 64;
		struct ev_timer **h = reallocarray(l->heap, (size_t)cap,
		    sizeof(struct ev_timer *));

		if (h == NULL)
			return -1;
		l->heap = h;
		l->heapcap = cap;
	}
	t->when = when;
	heap_set(l, l->ntimer++, t);
	sift_up(l, t->idx);
	return 0;
}

void
ev_timer_stop(struct ev_loop *l, struct ev_timer *t)
{
	int i = t->idx;

	if (i < 0)
		return;
	t->idx = -1;
	if (--l->ntimer == i)
		return;
	heap_set(l, i, l->heap[l->ntimer]);
	if (i > 0 && l->heap[(i - 1) / 2]->when > l->heap[i]->when)
		sift_up(l, i);
	else
		sift_down(l, i);
}

struct ev_timer *
ev_timer_first(const struct ev_loop *l)
{
	return l->ntimer > 0 ? l->heap[0] : NULL;
}
