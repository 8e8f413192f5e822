/*
 * The worker: block in accept(2), serve the connection, repeat.  While
 * it has connections open (conn.c), the worker waits in its event core
 * (ev.c) for them and for its listeners instead, and accepts when a
 * listener has a connection for it and it has room.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "cfg.h"
#include "chan.h"
#include "clock.h"
#include "conn.h"
#include "ev.h"
#include "file.h"
#include "log.h"
#include "pool.h"
#include "priv.h"
#include "proc.h"
#include "sb.h"
#include "sig.h"
#include "sock.h"
#include "worker.h"
#include "pubsub.h"
#include "ws.h"

#define TICK_MS		20	/* a full worker looks at the queue */
#define PAUSE_MS	100	/* out of descriptors: no accept for */
#define MISC_FDS	64	/* logs, the channel, the root, ... */
#define CACHE_MIN_FDS	16	/* the open-file cache, at the least */

/*
 * What the signal handlers touch: flags, and what on_term needs to drop
 * the listeners.  Everything else is in struct worker.
 */
static volatile sig_atomic_t	 stop;
static volatile sig_atomic_t	 hurry;
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

/* A fast stop (the master's second stop signal): a stop, at once. */
static void
on_usr2(int sig)
{
	hurry = 1;
	on_term(sig);
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
	{ SIGUSR2, 0, on_usr2 }, { SIGTTIN, 0, SIG_IGN },
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

/*
 * What the master sent (SIGUSR1 says so; so does epoll while the worker
 * waits in the event core): log files it reopened, which we could not
 * reopen ourselves (chrooted or unprivileged), and channel subscribers
 * handed over by a worker that retires.
 */
static void
read_chan(struct worker *w)
{
	struct chan_msg m;

	while (chan_recv(w->env->chan, &m) == 1) {
		if (m.type == CHAN_SUB && m.nfds == 0 && m.len == 0) {
			ps_handovers_echo(w);
			continue;
		}
		if (m.type == CHAN_SUB && m.nfds == 1 &&
		    m.len == sizeof(struct chan_sub)) {
			struct chan_sub cs;

			/* A copy: the payload is not aligned for it. */
			memcpy(&cs, m.data, sizeof(cs));
			ps_adopt(w, m.fds[0], &cs);
			continue;
		}
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

static void
on_chan(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	read_chan(arg);
}

/*
 * Before the worker goes: the master has answered for every subscriber
 * handed over (it may send one back), or the deadline came.
 */
static int
chan_flushed(struct worker *w)
{
	while (!ps_handovers_answered(w) && clock_ms() < ws_deadline(w)) {
		(void)ev_poll(&w->ev, 5);
		if (w->pool.nopen > 0)
			return 0;	/* one came back */
	}
	return 1;
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

/* Accept from one of the listeners, waiting; -1 with errno when none. */
static int
accept_one(struct worker *w, int *from)
{
	const struct worker_env *env = w->env;
	struct pollfd pfd[CFG_MAX_LISTEN];
	int i, n = env->nlfd;

	listen_set(w, 0);
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
 * its connections, until the next one: look at the queue first, and let
 * a one-shot timer interrupt an accept that blocks anyway.
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

/* Clients wait in one of our listeners' accept queues: how many. */
static int
queued(const struct worker_env *env)
{
	int n = 0;

	for (int i = 0; i < env->nlfd; i++) {
		int q = sock_queue_len(env->lfd[i]);

		if (q > 0)
			n += q;
	}
	return n;
}

/*
 * The worker's tick, while it is full or paused: a full worker makes
 * room for clients waiting in the accept queue (conn_evict: its
 * longest-idle connection first), and a pause for want of descriptors
 * ends.
 */
static void
on_tick(struct ev_loop *ev, void *arg)
{
	struct worker *w = arg;
	int q;

	(void)ev;
	if (w->paused && clock_ms() >= w->pause_until)
		w->paused = 0;
	if (!pool_full(&w->pool) || (q = queued(w->env)) == 0)
		return;
	while (q-- > 0 && pool_full(&w->pool) && conn_evict(w))
		;
}

/*
 * With connections open: wait in the event core for any of them (served
 * by its handler, conn.c) or for a listener to have a new connection,
 * accepted here.  -1 with errno EAGAIN when there was nothing to accept.
 */
static int
wait_events(struct worker *w, int *from)
{
	int room = !pool_full(&w->pool) && !w->paused, i;

	listen_set(w, room);
	conn_show(w);
	show_title(w);
	if (!room)
		(void)ev_timer_at(&w->ev, &w->tick, clock_ms() + TICK_MS);
	w->lready = -1;
	if (ev_poll(&w->ev, -1) == -1 && errno != EINTR)
		log_warn("epoll_wait");
	if ((i = w->lready) < 0 || stop || pool_full(&w->pool)) {
		errno = EAGAIN;
		return -1;
	}
	*from = w->env->lfd[i];
	return accept_ready(w->env, i);
}

/*
 * The next new connection: from a blocking accept(2) when the worker has
 * none, else when the event core names a listener.  -1 with errno
 * otherwise (EAGAIN: connections were served, or nothing came).
 */
static int
next_conn(struct worker *w, int *from)
{
	/* Programs still to reap need the event core, not accept(2). */
	if (w->pool.nopen == 0 && ws_programs_left(w) == 0) {
		sb_set_state(w->me, SB_IDLE);
		sb_show_request(w->me, NULL, 0, 0);
		show_title(w);
		return accept_one(w, from);
	}
	return wait_events(w, from);
}

/*
 * Let the event core run until a place is free for a client queued on
 * lfd; -1 when there is none to take, or no time left (a full pool of
 * sessions frees no place before they end).
 */
static int
make_room(struct worker *w, int lfd)
{
	while (pool_full(&w->pool)) {
		if (hurry || sock_queue_len(lfd) == 0 ||
		    clock_ms() >= ws_deadline(w))
			return -1;
		if (ev_poll(&w->ev, 100) == -1 && errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * After a full stop began: take every connection still queued, so that
 * no client that the kernel already accepted for us is reset.  The
 * master made the listeners refuse new ones (sock_refuse), so the queue
 * only empties.
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
			int fd;

			if (make_room(w, env->lfd[i]) == -1)
				break;
			if ((fd = accept_client(env->lfd[i])) == -1) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				break;
			}
			conn_start(w, fd, env->lfd[i]);
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
accept_error(struct worker *w, int e)
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
		/*
		 * Out of resources: stop accepting for a while rather than
		 * spin, and go on serving the connections we have.
		 */
		if (now != last)
			log_warnx("accept: %s; pausing %d ms", strerror(e),
			    PAUSE_MS);
		last = now;
		if (w->pool.nopen == 0) {
			poll(NULL, 0, PAUSE_MS);
			return;
		}
		w->paused = 1;
		w->pause_until = clock_ms() + PAUSE_MS;
		return;
	default:
		fatalx("accept: %s", strerror(e));
	}
}

/* Raise the soft open-files limit towards want; the limit now. */
static rlim_t
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return want;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY &&
		    rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/*
 * The descriptor budget: two per connection at most (its socket, and a
 * file being sent from), MISC_FDS for logs and such, the open-file cache
 * with what is left, up to FILE_CACHE_FDS.  When the hard limit is too
 * low for all that, the cache shrinks to CACHE_MIN_FDS first, then the
 * connections; accept(2) then never meets EMFILE.
 */
static int
fd_budget(int want, int per)
{
	long limit = (long)raise_nofile((rlim_t)want * (rlim_t)per + MISC_FDS +
	    FILE_CACHE_FDS) - MISC_FDS;
	long cache = limit - (long)per * want, conns = want;

	if (cache > FILE_CACHE_FDS)
		cache = FILE_CACHE_FDS;
	if (cache < CACHE_MIN_FDS) {
		cache = CACHE_MIN_FDS;
		conns = (limit - cache) / per;
		if (conns < 1)
			conns = 1;
		log_warnx("worker_connections %d: the open files limit is "
		    "%ld; holding %ld", want, limit + MISC_FDS, conns);
	}
	file_cache_fds((int)cache);
	return (int)conns;
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
		.me = &env->sb->slot[env->slot], .stop = &stop, .hurry = &hurry,
		.lready = -1 };
	/* A session holds its socket, three pipes and a pidfd. */
	cap = fd_budget(env->cfg->worker_connections,
	    env->cfg->nws > 0 ? 5 : 2);
	if (ev_init(&w->ev, cap + 64) == -1)
		fatal("event core");
	ev_timer_init(&w->tick, on_tick, w);
	if (conn_init(w, cap) == -1)
		fatal("conn_init");
	if (ev_add(&w->ev, env->chan, EPOLLIN, on_chan, w) == -1)
		fatal("event core: channel");
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
	if (w->pool.nopen > 0 && ev_rebuild(&w->ev) == -1)
		log_warn("epoll_create1");
}

/*
 * No new requests: finish every one in progress, then the connections;
 * the programs of WebSocket sessions are reaped before the worker goes
 * (killed at its deadline if need be).  A fast stop closes everything.
 */
static void
finish_all(struct worker *w)
{
	int hurried = 0, killed = 0;

	conn_stop(w);
	while (w->pool.nopen > 0 || ws_programs_left(w) > 0) {
		if (hurry && !hurried) {
			hurried = 1;
			conn_hurry(w);
			continue;
		}
		/* Programs of sessions gone never outlive the deadline. */
		if (!killed && clock_ms() >= ws_deadline(w)) {
			killed = 1;
			ws_kill_all(w);
		}
		conn_show(w);
		show_title(w);
		if (!killed && ws_programs_left(w) > 0)
			(void)ev_timer_at(&w->ev, &w->tick, ws_deadline(w));
		if (ev_poll(&w->ev, -1) == -1 && errno != EINTR)
			break;
	}
}

/*
 * Respawning cannot help a worker that cannot drop its privileges: say
 * why to the master, which refuses a start-up that can never work.
 */
static void
cannot_start(const struct worker_env *env, const char *why)
{
	struct chan_msg m = { .type = CHAN_FAIL };

	log_warnx("cannot drop privileges: %s; exiting", why);
	m.len = strlcpy(m.data, why, sizeof(m.data));
	if (m.len >= sizeof(m.data))
		m.len = sizeof(m.data) - 1;
	(void)chan_send(env->chan, &m);
	exit(PROC_EXIT_SETUP);
}

void
worker_main(const struct worker_env *env)
{
	static struct worker w;
	char why[512];
	int fd, from;

	log_set_role("worker");
	sig_env = env;
	mypid = getpid();
	if ((nullfd = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		fatal("/dev/null");
	setup_signals();
	if (priv_drop(env->priv, why, sizeof(why)) == -1)
		cannot_start(env, why);
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
			read_chan(&w);
		}
		if ((fd = next_conn(&w, &from)) == -1) {
			accept_error(&w, errno);
			continue;
		}
		conn_start(&w, fd, from);
	}
	/*
	 * Sessions begin their stop at once (a full pool of them would keep
	 * the drain from taking anybody); then queued clients, who have
	 * waited longest.
	 */
	conn_stop(&w);
	if (env->sb->draining || getppid() != env->master)
		drain(&w);
	leave_listeners(&w);
	finish_all(&w);
	if (env->sb->draining || getppid() != env->master)
		drain(&w);
	do
		finish_all(&w);
	while (!chan_flushed(&w));
	ps_fini(&w);
	sb_set_state(w.me, SB_FREE);
	exit(0);
}
