/*
 * The worker: block in accept(2), serve the connection, repeat.  While
 * keep-alive connections wait parked between requests (conn.c), the
 * worker waits in epoll for them and for its listeners instead, and
 * accepts when a listener has a connection for it.
 *
 * Stopping without a lost wakeup.  SIGTERM's handler has no SA_RESTART,
 * so a worker blocked in accept() gets EINTR and sees worker_stop.  The
 * dangerous instant is between the test of worker_stop and the entry
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
#include "conn.h"
#include "log.h"
#include "priv.h"
#include "sb.h"
#include "sock.h"
#include "worker.h"

volatile sig_atomic_t		 worker_stop;
static volatile sig_atomic_t	 reopen_logs;
static timer_t			 kick_timer;
static struct sb_slot		*me;
static const struct worker_env	*wenv;
static pid_t			 mypid;
static int			 nullfd = -1;
static uint64_t			 max_requests;	/* 0: no limit */

/* Is this worker to leave the accept queue to the named drainer? */
static int
not_drainer(void)
{
	return wenv->sb->draining && wenv->sb->drainer != 0 &&
	    wenv->sb->drainer != mypid;
}

static void
on_term(int sig)
{
	struct itimerspec its = { .it_value = { 0, 20 * 1000 * 1000 } };
	int saved = errno;

	(void)sig;
	worker_stop = 1;
	if (not_drainer() && nullfd != -1)
		for (int i = 0; i < wenv->nlfd; i++)
			dup2(nullfd, wenv->lfd[i]);
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

static void
setup_signals(void)
{
	struct sigaction sa;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGALRM };
	sigset_t all;

	if (timer_create(CLOCK_MONOTONIC, &sev, &kick_timer) == -1)
		fatal("timer_create");
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;		/* no SA_RESTART: accept() must fail */
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_alrm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	/* Ctrl-C reaches the whole process group; only the master decides. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTTIN, &sa, NULL);
	sigaction(SIGTTOU, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	/* The master forks with signals blocked; take them now. */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

void
worker_set_state(int state)
{
	if (me != NULL)
		me->state = state;
}

/*
 * ps(1) shows what each worker is doing.  setproctitle() formats and
 * copies the whole title, too dear to do for every state change of every
 * request: the title is brought up to date when the worker is about to
 * wait, which is when somebody looking at ps can see it.
 */
void
worker_title(void)
{
	static int shown = -1;

	if (me == NULL || me->state == shown)
		return;
	shown = me->state;
	setproctitle("worker %s", sb_state_name(shown));
}

/*
 * SIGUSR1: the master reopened the log files and sent us the new
 * descriptors (we may be chrooted or unprivileged: we could not reopen
 * the paths ourselves).  Adopt whatever arrived.
 */
static void
adopt_logs(int ctl)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	char which[2];
	struct iovec iov = { which, sizeof(which) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c;
	ssize_t n;

	while ((n = recvmsg(ctl, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) > 0) {
		int fds[2], nfd = 0;

		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS) {
				nfd = (int)((c->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int));
				if (nfd > 2)
					nfd = 2;
				memcpy(fds, CMSG_DATA(c), (size_t)nfd *
				    sizeof(int));
			}
		for (int i = 0; i < nfd && i < n; i++) {
			if (which[i] == 'e')
				log_adopt(fds[i]);
			else if (which[i] == 'a')
				alog_adopt(fds[i]);
			else
				close(fds[i]);
		}
		msg.msg_controllen = sizeof(cm.buf);
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
accept_one(const struct worker_env *env, int *from)
{
	struct pollfd pfd[16];
	int i, n = env->nlfd;

	conn_block();
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
		    !worker_stop) {
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
	/* A stop that armed the timer meanwhile set worker_stop too. */
	timer_settime(kick_timer, 0, &off, NULL);
	errno = e;
	return fd;
}

/*
 * After a full stop began: take every connection still queued, so that
 * no client that the kernel already accepted for us is reset.
 */
static void
drain(const struct worker_env *env)
{
	if (not_drainer())
		return;
	worker_set_state(SB_DRAINING);
	worker_title();
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
			conn_serve(fd, env->lfd[i]);
		}
	}
}

/*
 * The next new connection: from a blocking accept(2) when nothing is
 * parked, else when epoll names a listener.  -1 with errno otherwise
 * (EAGAIN: parked connections were served, or nothing came).
 */
static int
next_conn(const struct worker_env *env, int *from)
{
	int i;

	if (conn_nparked() == 0)
		return accept_one(env, from);
	if ((i = conn_wait()) < 0 || worker_stop) {
		errno = EAGAIN;
		return -1;
	}
	*from = env->lfd[i];
	return accept_ready(env, i);
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

	if (worker_stop)
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

int
worker_last_request(void)
{
	return max_requests > 0 && me != NULL &&
	    me->requests + 1 >= max_requests;
}

void
worker_main(const struct worker_env *env)
{
	int fd, from;

	log_set_role("worker");
	wenv = env;
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
		worker_stop = 1;
	me = &env->sb->slot[env->slot];
	if (conn_init(env) == -1)
		fatal("conn_init");
	worker_set_state(SB_IDLE);	/* the slot starts "free" */
	/* Recycle after max_requests (+ jitter, so workers do not all go at once). */
	if (env->cfg->max_requests > 0) {
		srandom((unsigned)mypid ^ (unsigned)time(NULL));
		max_requests = (uint64_t)env->cfg->max_requests;
		if (env->cfg->max_requests_jitter > 0)
			max_requests += (uint64_t)random() %
			    ((uint64_t)env->cfg->max_requests_jitter + 1);
	}

	while (!worker_stop &&
	    !(max_requests > 0 && me->requests >= max_requests)) {
		if (reopen_logs) {
			reopen_logs = 0;
			adopt_logs(env->ctl);
		}
		fd = next_conn(env, &from);
		if (fd == -1) {
			accept_error(errno);
			continue;
		}
		conn_serve(fd, from);
		worker_set_state(SB_IDLE);
	}
	/* Queued clients first: they have waited longest. */
	if (env->sb->draining || getppid() != env->master)
		drain(env);
	conn_finish();
	if (env->sb->draining || getppid() != env->master)
		drain(env);
	me->state = SB_FREE;
	exit(0);
}
