/*
 * Unit tests of the worker's event core: timers fire in order and only
 * when due, stopping one from anywhere in the heap keeps the rest in
 * order, readiness reaches the right handler, and a registration
 * removed during a batch is not dispatched.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "ev.h"
#include "tap.h"

#define NT	200

static int	fired[NT], nfired;

static void
on_timer(struct ev_loop *l, void *arg)
{
	(void)l;
	fired[nfired++] = (int)(intptr_t)arg;
}

/* Many timers, armed out of order, some moved, some stopped. */
static void
test_timers(void)
{
	static struct ev_timer t[NT];
	struct ev_loop l;
	int64_t base = clock_ms() - 1000;	/* all in the past: due */
	int sorted = 1, stopped_fired = 0;

	ok(ev_init(&l, 16) == 0, "ev_init");
	for (int i = 0; i < NT; i++) {
		ev_timer_init(&t[i], on_timer, (void *)(intptr_t)i);
		/* when = a permutation of 0..NT-1 */
		ev_timer_at(&l, &t[i], base + (i * 73) % NT);
	}
	/* Move some later, some earlier; stop every fifth. */
	for (int i = 0; i < NT; i += 7)
		ev_timer_at(&l, &t[i], base + NT + i);
	for (int i = 3; i < NT; i += 11)
		ev_timer_at(&l, &t[i], base - 1 - i);
	for (int i = 0; i < NT; i += 5)
		ev_timer_stop(&l, &t[i]);
	ev_timer_stop(&l, &t[0]);	/* twice: harmless */
	ok(ev_timer_first(&l) != NULL, "timers are armed");
	ok(ev_poll(&l, 0) > 0, "ev_poll runs the due timers");
	ok(ev_timer_first(&l) == NULL, "none left armed after they fired");
	ok(nfired == NT - NT / 5, "every armed timer fired once (%d)",
	    nfired);
	for (int i = 1; i < nfired; i++)
		if (t[fired[i - 1]].when > t[fired[i]].when)
			sorted = 0;
	for (int i = 0; i < nfired; i++)
		if (fired[i] % 5 == 0)
			stopped_fired = 1;
	ok(sorted, "in order of their deadlines");
	ok(!stopped_fired, "stopped timers did not fire");

	/* A timer in the future is not run, and bounds the wait. */
	nfired = 0;
	ev_timer_at(&l, &t[1], clock_ms() + 60000);
	ok(ev_poll(&l, 0) == 0 && nfired == 0, "a future timer waits");
	ev_timer_at(&l, &t[1], clock_ms() + 30);
	{
		int64_t start = clock_ms();
		int n = ev_poll(&l, -1);

		ok(n == 1 && nfired == 1 && clock_ms() - start >= 25,
		    "ev_poll(-1) wakes for the timer (%d, %lld ms)", n,
		    (long long)(clock_ms() - start));
	}
}

struct pair {
	int	sv[2];
	int	calls;
	int	other;	/* a registration to remove when called */
};

static void
on_read(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
	struct pair *p = arg;
	char b[16];

	(void)events;
	p->calls++;
	if (read(fd, b, sizeof(b)) < 0)
		abort();
	if (p->other != -1)
		ev_del(l, p->other);
}

static void
put(int fd)
{
	if (write(fd, "x", 1) != 1)
		abort();
}

static void
test_io(void)
{
	struct ev_loop l;
	struct pair a = { .other = -1 }, b = { .other = -1 };

	ok(ev_init(&l, 2) == 0, "ev_init (the table grows as needed)");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, a.sv) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, b.sv) == -1)
		abort();
	ok(ev_add(&l, a.sv[0], EPOLLIN, on_read, &a) == 0, "ev_add a");
	ok(ev_add(&l, a.sv[0], EPOLLIN, on_read, &a) == -1,
	    "a second registration of a descriptor is refused");
	ok(ev_add(&l, b.sv[0], EPOLLIN, on_read, &b) == 0, "ev_add b");
	ok(ev_poll(&l, 0) == 0, "nothing ready: nothing called");
	put(b.sv[1]);
	ok(ev_poll(&l, 0) == 1 && b.calls == 1 && a.calls == 0,
	    "the ready one's handler is called");
	/* Both ready; whichever runs first unregisters the other. */
	a.other = b.sv[0];
	b.other = a.sv[0];
	put(a.sv[1]);
	put(b.sv[1]);
	ok(ev_poll(&l, 0) == 1 && a.calls + b.calls == 2,
	    "a registration removed during the batch is not dispatched");
	ok(ev_registered(&l, a.sv[0]) + ev_registered(&l, b.sv[0]) == 1,
	    "one registration left");
	ok(ev_rebuild(&l) == 0 && ev_registered(&l, a.sv[0]) +
	    ev_registered(&l, b.sv[0]) == 1, "ev_rebuild keeps it");
	a.other = b.other = -1;
	put(a.sv[1]);
	put(b.sv[1]);
	ok(ev_poll(&l, 0) == 1, "and the new set reports it");
}

int
main(void)
{
	test_timers();
	test_io();
	return tap_done();
}
