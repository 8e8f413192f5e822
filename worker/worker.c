/*
 * The worker: block in accept(2), serve the connection, repeat.  While
 * keep-alive connections wait parked between requests (park.c), the
 * worker waits in its event core (ev.c) for them and for its listeners
 * instead, and accepts when a listener has a connection for it.
 *
 * Stopping without a lost wakeup.  SIGTERM's handler has no SA_RESTART,
 * so a worker blocked in accept() gets EINTR and sees the stop flag.  The
 * dangerous instant is between the test of the flag and the entry
 * into accept(): a signal there would leave the worker blocked.  Two
 * things close that window:
 *  - on a full stop the master sets O_NONBLOCK on the shared listener
 *    before it signals, so a late accept() returns EAGAIN at once;
 *  - the handler also arms a one-shot 20 ms timer whose SIGALRM (again
 *    without SA_RESTART) interrupts an accept() entered too late.  This
 *    covers stops where the listener stays blocking (a worker that the
 *    master retires, or an orphan).
 *
 * Refusing new work at once.  On a full stop, every worker but the one
 * the master named to drain the accept queue drops its listener inside
 * the handler (dup2 of /dev/null over it, async-signal-safe), even in
 * the middle of a long response.  When the drainer has emptied the queue
 * and exits, the last copy is gone and the kernel refuses connections.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "cfg.h"
#include "chan.h"
#include "conn.h"
#include "ev.h"
#include "log.h"
#include "park.h"
#include "priv.h"
#include "proc.h"
#include "sb.h"
#include "sig.h"
#include "sock.h"
#include "worker.h"

/*
 * What the signal handlers touch: flags, and what on_term needs to drop
 * the listeners.  Everything else is in struct worker.
 */
static volatile sig_atomic_t	 stop;
static volatile sig_atomic_t	 reopen_logs;
static timer_t			 kick_timer;
static const struct worker_env	*sig_env;
static pid_t			 mypid;
static int			 nullfd = -1;

/* Is this worker to leave the accept queue to the named drainer? */
static int
not_drainer(const struct worker_env *env)
{
	return env->sb->draining && env->sb->drainer != 0 &&
	    env->sb->drainer != mypid;
}

static void
on_term(int sig)
{
	struct itimerspec its = { .it_value = { 0, 20 * 1000 * 1000 } };
	int saved = errno;

	(void)sig;
	stop = 1;
	if (not_drainer(sig_env) && nullfd != -1)
		for (int i = 0; i < sig_env->nlfd; i++)
			dup2(nullfd, sig_env->lfd[i]);
	timer_settime(kick_timer, 0, &its, NULL);	/* async-signal-safe */
	errno = saved;
}

static void
on_usr1(int sig)
{
	(void)sig;
	reopen_logs = 1;
}

static void
on_alrm(int sig)
{
	(void)sig;	/* only here to interrupt a blocking call */
}

/*
 * No SA_RESTART anywhere: a blocked accept() must fail with EINTR.
 * INT is ignored: Ctrl-C reaches the whole process group, and only the
 * master decides.
 */
static const struct sig_entry worker_signals[] = {
	{ SIGTERM, 0, on_term }, { SIGUSR1, 0, on_usr1 },
	{ SIGALRM, 0, on_alrm },
	{ SIGINT, 0, SIG_IGN }, { SIGPIPE, 0, SIG_IGN }, { SIGHUP, 0, SIG_IGN },
	{ SIGUSR2, 0, SIG_IGN }, { SIGTTIN, 0, SIG_IGN },
	{ SIGTTOU, 0, SIG_IGN }, { SIGQUIT, 0, SIG_IGN },
	{ SIGCHLD, 0, SIG_DFL },
};

static void
setup_signals(void)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGALRM };
	sigset_t all;
	int bad;

	if (timer_create(CLOCK_MONOTONIC, &sev, &kick_timer) == -1)
		fatal("timer_create");
	if (sig_install(worker_signals, sizeof(worker_signals) /
	    sizeof(worker_signals[0]), 0, &bad) == -1)
		fatal("sigaction %s", strsignal(bad));
	/* The master forks with signals blocked; take them now. */
	sigemptyset(&all);
	if (sigprocmask(SIG_SETMASK, &all, NULL) == -1)
		fatal("sigprocmask");
}

/*
 * ps(1) shows what each worker is doing.  setproctitle() formats and
 * copies the whole title, too dear to do for every state change of every
 * request: the title is brought up to date when the worker is about to
 * wait, which is when somebody looking at ps can see it.
 */
static void
show_title(const struct worker *w)
{
	static int shown = -1;

	if (w->me->state == shown)
		return;
	shown = w->me->state;
	setproctitle("worker %s", sb_state_name(shown));
}

/* epoll named listener i (ev handler): accepted after ev_poll(). */
static void
on_listener(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;

	(void)ev;
	(void)events;
	for (int i = 0; i < w->env->nlfd; i++)
		if (w->env->lfd[i] == fd)
			w->lready = i;
}

/*
 * Are the listeners in the event core?  Only while this worker waits
 * there with room for more: an EPOLLEXCLUSIVE entry takes the wake-up of
 * a new connection even when its worker is busy elsewhere, and another
 * worker blocked in accept(2) would then not be woken for it.
 */
static void
listen_set(struct worker *w, int on)
{
	for (int i = 0; i < w->env->nlfd; i++) {
		int fd = w->env->lfd[i];

		if (!on)
			ev_del(&w->ev, fd);
		else if (!ev_registered(&w->ev, fd))
			/* After a stop fd may be /dev/null: no matter. */
			(void)ev_add(&w->ev, fd, EPOLLIN | EPOLLEXCLUSIVE,
			    on_listener, w);
	}
}

/* The worker blocks outside the event core (ev_leave). */
static void
on_leave(void *arg)
{
	struct worker *w = arg;

	listen_set(w, 0);
	show_title(w);
}

/*
 * SIGUSR1: the master reopened the log files and sent us the new
 * descriptors (we may be chrooted or unprivileged: we could not reopen
 * the paths ourselves).  Adopt whatever arrived.
 */
static void
adopt_logs(int chan)
{
	struct chan_msg m;

	while (chan_recv(chan, &m) == 1) {
		for (int i = 0; i < m.nfds; i++) {
			if (m.type == CHAN_LOGS && (size_t)i < m.len &&
			    m.data[i] == 'e')
				log_adopt(m.fds[i]);
			else if (m.type == CHAN_LOGS && (size_t)i < m.len &&
			    m.data[i] == 'a')
				alog_adopt(m.fds[i]);
			else
				close(m.fds[i]);
		}
	}
}

/*
 * accept(2) for every path: client sockets are non-blocking, which
 * conn.c relies on (its reads and writes wait in poll, never in the
 * system call).
 */
static int
accept_client(int lfd)
{
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

/* Accept from one of the listeners; -1 with errno when none. */
static int
accept_one(struct worker *w, int *from)
{
	const struct worker_env *env = w->env;
	struct pollfd pfd[CFG_MAX_LISTEN];
	int i, n = env->nlfd;

	ev_leave(&w->ev);
	if (n == 1) {
		int fd;

		*from = env->lfd[0];
		fd = accept_client(env->lfd[0]);
		/*
		 * The listener may be non-blocking for a while (a reload that
		 * went from several listeners to one, or a stop): wait for a
		 * connection instead of spinning.
		 */
		if (fd == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    !stop) {
			struct pollfd p = { env->lfd[0], POLLIN, 0 };

			(void)poll(&p, 1, -1);
			errno = EAGAIN;
		}
		return fd;
	}
	/* Several listeners (all O_NONBLOCK): wait for any. */
	for (i = 0; i < n; i++) {
		pfd[i].fd = env->lfd[i];
		pfd[i].events = POLLIN;
	}
	if (poll(pfd, (nfds_t)n, -1) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (pfd[i].revents & POLLIN) {
			int fd = accept_client(env->lfd[i]);

			if (fd != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
				{ *from = env->lfd[i]; return fd; }
		}
	errno = EAGAIN;
	return -1;
}

/*
 * epoll named listener i.  Another worker may take the connection first,
 * and accept(2) on a blocking listener would then hold this worker, and
 * its parked connections, until the next one: look at the queue first,
 * and let a one-shot timer interrupt an accept that blocks anyway.
 */
static int
accept_ready(const struct worker_env *env, int i)
{
	struct itimerspec its = { .it_value = { 0, 10 * 1000 * 1000 } };
	struct itimerspec off = { .it_value = { 0, 0 } };
	int fd, e;

	if (sock_queue_len(env->lfd[i]) == 0) {
		errno = EAGAIN;
		return -1;
	}
	/* Even with several listeners: a reload may make one blocking. */
	timer_settime(kick_timer, 0, &its, NULL);
	fd = accept_client(env->lfd[i]);
	e = errno;
	/* A stop that armed the timer meanwhile set the stop flag too. */
	timer_settime(kick_timer, 0, &off, NULL);
	errno = e;
	return fd;
}

/*
 * With connections parked: wait in the event core for one to speak
 * (served by its handler, conn.c) or for a listener to have a new
 * connection, which is then accepted here.  -1 with errno EAGAIN when
 * there was nothing to accept.
 */
static int
wait_parked(struct worker *w, int *from)
{
	int full = park_full(&w->park), i;

	listen_set(w, !full);
	/* Full, it cannot take anyone new: the master must not count it idle. */
	sb_set_state(w->me, full ? SB_KEEPALIVE : SB_IDLE);
	show_title(w);
	w->lready = -1;
	if (ev_poll(&w->ev, -1) == -1 && errno != EINTR)
		log_warn("epoll_wait");
	if ((i = w->lready) < 0 || stop) {
		errno = EAGAIN;
		return -1;
	}
	*from = w->env->lfd[i];
	return accept_ready(w->env, i);
}

/*
 * The next new connection: from a blocking accept(2) when nothing is
 * parked, else when the event core names a listener.  -1 with errno
 * otherwise (EAGAIN: parked connections were served, or nothing came).
 */
static int
next_conn(struct worker *w, int *from)
{
	if (w->park.nparked == 0) {
		sb_set_state(w->me, SB_IDLE);
		return accept_one(w, from);
	}
	return wait_parked(w, from);
}

/*
 * After a full stop began: take every connection still queued, so that
 * no client that the kernel already accepted for us is reset.
 */
static void
drain(struct worker *w)
{
	const struct worker_env *env = w->env;

	if (not_drainer(env))
		return;
	sb_set_state(w->me, SB_DRAINING);
	show_title(w);
	for (int i = 0; i < env->nlfd; i++) {
		int fl = fcntl(env->lfd[i], F_GETFL);

		if (fl == -1 || !(fl & O_NONBLOCK))
			continue;	/* must never block here */
		for (;;) {
			int fd = accept_client(env->lfd[i]);

			if (fd == -1) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				break;
			}
			conn_serve(w, fd, env->lfd[i]);
		}
	}
}

/*
 * SCHED_BATCH: a worker woken by a client does not preempt the task
 * running on that CPU (often the client's own process on a loaded
 * machine); it runs at the next scheduling point and finds more work
 * waiting, so each wake-up serves more requests.  Its share of the CPU
 * is unchanged (same nice weight).  Measured with bench/run's startup on
 * 2 cores: keep-alive -c50 154k -> 205k req/s, Connection: close 47k ->
 * 72k.
 */
static void
sched_batch(const struct cfg *cfg)
{
	struct sched_param sp = { .sched_priority = 0 };

	/* A policy the administrator chose (chrt, systemd) is kept. */
	if (cfg->worker_sched_batch && sched_getscheduler(0) == SCHED_OTHER &&
	    sched_setscheduler(0, SCHED_BATCH, &sp) == -1)
		log_warn("worker_sched_batch: sched_setscheduler");
}

static void
accept_error(int e)
{
	static time_t last;
	time_t now = time(NULL);

	if (stop)
		return;	/* the listener may be gone already: see on_term */
	switch (e) {
	case EINTR:
	case EAGAIN:
	case ECONNABORTED:
	case EPROTO:
		return;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		/* Out of resources: back off rather than spin. */
		if (now != last)
			log_warnx("accept: %s; pausing 100 ms", strerror(e));
		last = now;
		poll(NULL, 0, 100);
		return;
	default:
		fatalx("accept: %s", strerror(e));
	}
}

/* Recycle after max_requests (+ jitter, so workers do not all go at once). */
static uint64_t
request_budget(const struct cfg *cfg)
{
	uint64_t n = (uint64_t)cfg->max_requests;

	if (cfg->max_requests <= 0)
		return 0;
	srandom((unsigned)mypid ^ (unsigned)time(NULL));
	if (cfg->max_requests_jitter > 0)
		n += (uint64_t)random() %
		    ((uint64_t)cfg->max_requests_jitter + 1);
	return n;
}

/* Everything a worker needs before its first accept; exits on failure. */
static void
setup(struct worker *w, const struct worker_env *env)
{
	int cap;

	*w = (struct worker){ .env = env, .cfg = env->cfg,
		.me = &env->sb->slot[env->slot], .stop = &stop, .lready = -1 };
	cap = park_fit(env->cfg->worker_connections);
	if (ev_init(&w->ev, cap + 64) == -1)
		fatal("event core");
	ev_on_leave(&w->ev, on_leave, w);
	w->io = (struct io){ .ev = &w->ev, .stop = &stop,
		.send_timeout = env->cfg->send_timeout };
	if (conn_init(w, cap) == -1)
		fatal("conn_init");
	w->max_requests = request_budget(env->cfg);
}

/*
 * Leaving: the listeners leave the event core first.  After a stop they
 * may have been made /dev/null (on_term), and epoll keys on the file, so
 * their entries can only go with a fresh epoll set.
 */
static void
leave_listeners(struct worker *w)
{
	listen_set(w, 0);
	if (w->park.nparked > 0 && ev_rebuild(&w->ev) == -1)
		log_warn("epoll_create1");
}

void
worker_main(const struct worker_env *env)
{
	static struct worker w;
	int fd, from;

	log_set_role("worker");
	sig_env = env;
	mypid = getpid();
	if ((nullfd = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		fatal("/dev/null");
	setup_signals();
	if (priv_drop(env->priv) == -1)
		fatalx("cannot drop privileges; exiting");
	sched_batch(env->cfg);
	/* Die with the master: an orphan must never keep the port. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		log_warn("prctl PDEATHSIG");
	if (getppid() != env->master)
		stop = 1;
	setup(&w, env);
	sb_set_state(w.me, SB_IDLE);	/* the slot starts "free" */

	while (!stop &&
	    !(w.max_requests > 0 && w.me->requests >= w.max_requests)) {
		if (reopen_logs) {
			reopen_logs = 0;
			adopt_logs(env->chan);
		}
		if ((fd = next_conn(&w, &from)) == -1) {
			accept_error(errno);
			continue;
		}
		conn_serve(&w, fd, from);
		sb_set_state(w.me, SB_IDLE);
	}
	/* Queued clients first: they have waited longest. */
	if (env->sb->draining || getppid() != env->master)
		drain(&w);
	leave_listeners(&w);
	conn_finish(&w);
	if (env->sb->draining || getppid() != env->master)
		drain(&w);
	sb_set_state(w.me, SB_FREE);
	exit(0);
}
