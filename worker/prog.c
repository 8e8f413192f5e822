/*
 * Programs (see prog.h).  The ladder's steps, in p->step:
 *   STEP_RUN    running; nothing asked of it
 *   STEP_GRACE  stdin closed; SIGTERM when the timer fires
 *   STEP_TERM   SIGTERM sent; SIGKILL when the timer fires (prog_stop)
 *   STEP_WAIT   SIGTERM sent; the owner decides when to kill
 *   STEP_KILL   SIGKILL sent; only the exit is awaited
 * The leader's exit moves any step to done.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "ev.h"
#include "log.h"
#include "prog.h"

enum { STEP_RUN, STEP_GRACE, STEP_TERM, STEP_WAIT, STEP_KILL };

#define POLL_MS		50	/* no pidfd: how often to look for the exit */
#define LINES_PER_S	100	/* stderr lines logged, per program */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)	/* linux/close_range.h */
#endif

static void	on_exit_ready(struct ev_loop *, int, uint32_t, void *);
static void	on_stderr(struct ev_loop *, int, uint32_t, void *);
static void	on_timer(struct ev_loop *, void *);

static void
close_fd(struct ev_loop *ev, int *fd)
{
	if (*fd == -1)
		return;
	ev_del(ev, *fd);
	close(*fd);
	*fd = -1;
}

/* --- the child ------------------------------------------------------- */

/*
 * In the child, between vfork and exec: its own group, default signals,
 * only 0, 1 and 2 open, dead with the worker.  System calls only: the
 * memory is the worker's.  An exec failure's errno
 * goes back through report (close-on-exec: success closes it).
 */
static void __attribute__((noreturn))
child(int fds[3], int report, char *const argv[], char *const envp[],
    int dir, pid_t parent)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;
	int e;

	/* Every handler to its default first: none of ours may run here. */
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	(void)setpgid(0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of 0-2 first, so that no dup2() below clobbers another. */
	for (int i = 0; i < 3; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) == -1)
			goto fail;
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) == -1)
			goto fail;
	if (dir != -1 && fchdir(dir) == -1)
		goto fail;
	/*
	 * Everything else goes at the exec: listeners, clients, logs, the
	 * channel.  report stays open until then.
	 */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
		long max = sysconf(_SC_OPEN_MAX);

		for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536);
		    fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	execve(argv[0], argv, envp);
fail:
	e = errno;
	(void)write(report, &e, sizeof(e));
	_exit(127);
}

/* --- starting ------------------------------------------------------- */

static int
pipes(int in[2], int out[2], int err[2])
{
	in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = -1;
	return pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1 ? -1 : 0;
}

static void
close_pipes(int in[2], int out[2], int err[2])
{
	int *all[] = { in, out, err };

	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (all[i][j] != -1)
				close(all[i][j]);
}

/* Wait for the exec: 0, or -1 with the child's errno (it is reaped). */
static int
exec_result(pid_t pid, int report)
{
	ssize_t n;
	int e = 0;

	do
		n = read(report, &e, sizeof(e));
	while (n == -1 && errno == EINTR);
	close(report);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		errno = e;
		return -1;
	}
	return 0;
}

static int
watch_exit(struct prog *p)
{
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (p->pidfd != -1) {
		(void)fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
		if (ev_add(p->ev, p->pidfd, EPOLLIN, on_exit_ready, p) == 0)
			return 0;
		close(p->pidfd);
		p->pidfd = -1;
	}
	/* No pidfd (an old kernel): look for the exit now and then. */
	return ev_timer_at(p->ev, &p->timer, clock_ms() + POLL_MS);
}

int
prog_start(struct prog *p, struct ev_loop *ev, char *const argv[],
    char *const envp[], int dir, const char *name, int grace_ms,
    prog_done_fn *on_done, void *arg)
{
	int in[2], out[2], err[2], report[2] = { -1, -1 }, fds[3], e;
	pid_t parent = getpid(), pid;
	sigset_t all, saved;

	*p = (struct prog){ .ev = ev, .in = -1, .out = -1, .err = -1,
		.pidfd = -1, .grace = grace_ms, .name = name,
		.on_done = on_done, .arg = arg };
	ev_timer_init(&p->timer, on_timer, p);
	if (pipes(in, out, err) == -1 || pipe2(report, O_CLOEXEC) == -1)
		goto fail;
	fds[0] = in[0];
	fds[1] = out[1];
	fds[2] = err[1];
	/*
	 * vfork: the child borrows our memory until its exec, so starting
	 * a program costs no copy of the worker's page tables (fork did, and
	 * took most of a session's start).  The child only makes system
	 * calls; our signals stay blocked meanwhile, so that no handler of
	 * ours runs in it.  posix_spawn() does the same inside glibc, but
	 * cannot set PR_SET_PDEATHSIG, which takes a program with a worker
	 * that is killed outright.  (clang-tidy's vfork checks are told.)
	 */
	sigfillset(&all);
	(void)sigprocmask(SIG_BLOCK, &all, &saved);
	pid = vfork();	/* NOLINT(clang-analyzer-security.insecureAPI.vfork) */
	if (pid == 0)	/* NOLINTNEXTLINE(clang-analyzer-unix.Vfork) */
		child(fds, report[1], argv, envp, dir, parent);
	e = errno;
	(void)sigprocmask(SIG_SETMASK, &saved, NULL);
	if (pid == -1) {
		errno = e;
		goto fail;
	}
	close(report[1]);
	report[1] = -1;
	/* Ours too, in case the child's setpgid came later. */
	(void)setpgid(pid, pid);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (exec_result(pid, report[0]) == -1) {
		e = errno;
		close(in[1]);
		close(out[0]);
		close(err[0]);
		errno = e;
		return -1;
	}
	p->pid = pid;
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	(void)fcntl(p->in, F_SETFL, O_NONBLOCK);
	(void)fcntl(p->out, F_SETFL, O_NONBLOCK);
	(void)fcntl(p->err, F_SETFL, O_NONBLOCK);
	if (ev_add(ev, p->err, EPOLLIN, on_stderr, p) == -1 ||
	    watch_exit(p) == -1) {
		e = errno;
		prog_kill(p);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		p->done = 1;
		prog_free(p);
		errno = e;
		return -1;
	}
	return 0;
fail:
	e = errno;
	close_pipes(in, out, err);
	if (report[0] != -1)
		close(report[0]);
	if (report[1] != -1)
		close(report[1]);
	errno = e;
	return -1;
}

/* --- stderr to the log --------------------------------------------- */

/*
 * One line of a program's stderr to the error log, at most LINES_PER_S
 * a second for each program: a program that floods its stderr must not
 * fill the disk.  What is dropped is counted in the next line logged.
 */
static void
log_line(struct prog *p, const char *s, size_t n)
{
	int64_t sec = clock_ms() / 1000;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (sec != p->log_sec) {
		if (p->log_dropped > 0)
			log_warnx("program %ld %s: %lu lines of stderr not "
			    "logged (more than %d a second)", (long)p->pid,
			    p->name, p->log_dropped, LINES_PER_S);
		p->log_sec = sec;
		p->log_count = 0;
		p->log_dropped = 0;
	}
	if (p->log_count++ >= LINES_PER_S) {
		p->log_dropped++;
		return;
	}
	log_warnx("program %ld %s: %.*s", (long)p->pid, p->name, (int)n, s);
}

static void
on_stderr(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct prog *p = arg;
	char buf[4096];
	ssize_t n = 0;

	(void)ev;
	(void)events;
	/* A few reads, then the others' turn (level-triggered: it is back). */
	for (int reads = 0; reads < 16 && (n = read(fd, buf, sizeof(buf))) > 0;
	    reads++) {
		const char *s = buf, *nl, *end = buf + n;

		while ((nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
			size_t k = (size_t)(nl - s);

			if (p->linelen > 0) {
				size_t room = sizeof(p->line) - p->linelen;

				k = k < room ? k : room;
				memcpy(p->line + p->linelen, s, k);
				log_line(p, p->line, p->linelen + k);
				p->linelen = 0;
			} else
				log_line(p, s, k);
			s = nl + 1;
		}
		/* An unfinished line waits; a too long one goes in pieces. */
		while (s < end) {
			size_t k = (size_t)(end - s), room = sizeof(p->line) -
			    p->linelen;

			k = k < room ? k : room;
			memcpy(p->line + p->linelen, s, k);
			p->linelen += k;
			s += k;
			if (p->linelen == sizeof(p->line)) {
				log_line(p, p->line, p->linelen);
				p->linelen = 0;
			}
		}
	}
	if (n > 0)
		return;
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		if (p->linelen > 0)
			log_line(p, p->line, p->linelen);
		p->linelen = 0;
		close_fd(p->ev, &p->err);
	}
}

/* --- the exit and the ladder ---------------------------------------- */

static void
group_kill(struct prog *p, int sig)
{
	if (p->pid > 0 && !p->done && kill(-p->pid, sig) == -1 &&
	    errno != ESRCH)
		log_warn("program %ld: kill", (long)p->pid);
}

/*
 * Has the leader exited?  Looked at without reaping it (WNOWAIT): the
 * group's stragglers are killed first, then it is reaped.
 */
static int
reap(struct prog *p)
{
	siginfo_t si = { 0 };
	int st;

	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT)
	    == -1 || si.si_pid == 0)
		return 0;
	(void)kill(-p->pid, SIGKILL);	/* the grandchildren, if any */
	while (waitpid(p->pid, &st, 0) == -1)
		if (errno != EINTR) {
			st = 0;
			break;
		}
	p->status = st;
	p->done = 1;
	ev_timer_stop(p->ev, &p->timer);
	close_fd(p->ev, &p->pidfd);
	if (p->on_done != NULL)
		p->on_done(p, p->arg);
	return 1;
}

static void
on_exit_ready(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	(void)reap(arg);
}

static void
on_timer(struct ev_loop *ev, void *arg)
{
	struct prog *p = arg;

	if (p->done || reap(p))
		return;
	switch (p->step) {
	case STEP_GRACE:
		group_kill(p, SIGTERM);
		p->step = STEP_TERM;
		(void)ev_timer_at(ev, &p->timer, clock_ms() + p->grace);
		return;
	case STEP_TERM:
		group_kill(p, SIGKILL);
		p->step = STEP_KILL;
		break;
	default:
		break;
	}
	if (p->pidfd == -1)
		(void)ev_timer_at(ev, &p->timer, clock_ms() + POLL_MS);
}

void
prog_close_stdout(struct prog *p)
{
	close_fd(p->ev, &p->out);
}

void
prog_close_stdin(struct prog *p)
{
	close_fd(p->ev, &p->in);
}

void
prog_stop(struct prog *p)
{
	prog_close_stdin(p);
	if (p->done || p->step == STEP_TERM || p->step == STEP_KILL)
		return;
	if (p->step == STEP_WAIT) {
		/* Told to end already (SIGTERM): SIGKILL after the grace. */
		p->step = STEP_TERM;
		(void)ev_timer_at(p->ev, &p->timer, clock_ms() + p->grace);
		return;
	}
	if (p->step == STEP_GRACE)
		return;
	p->step = STEP_GRACE;
	(void)ev_timer_at(p->ev, &p->timer, clock_ms() + p->grace);
}

void
prog_terminate(struct prog *p)
{
	prog_close_stdin(p);
	if (p->done || p->step >= STEP_TERM)
		return;
	group_kill(p, SIGTERM);
	p->step = STEP_WAIT;
	ev_timer_stop(p->ev, &p->timer);
	if (p->pidfd == -1)
		(void)ev_timer_at(p->ev, &p->timer, clock_ms() + POLL_MS);
}

void
prog_kill(struct prog *p)
{
	prog_close_stdin(p);
	if (p->done)
		return;
	group_kill(p, SIGKILL);
	p->step = STEP_KILL;
	ev_timer_stop(p->ev, &p->timer);
	if (p->pidfd == -1)
		(void)ev_timer_at(p->ev, &p->timer, clock_ms() + POLL_MS);
}

void
prog_free(struct prog *p)
{
	ev_timer_stop(p->ev, &p->timer);
	close_fd(p->ev, &p->in);
	close_fd(p->ev, &p->out);
	close_fd(p->ev, &p->err);
	close_fd(p->ev, &p->pidfd);
}
