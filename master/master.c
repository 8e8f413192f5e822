/*
 * The master never serves.  It keeps its signals blocked and waits in
 * ppoll(), which unblocks them atomically, so a signal can never slip in
 * between a test of a flag and the wait.  Handlers only set flags.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libutil.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "cfg.h"
#include "log.h"
#include "master.h"
#include "sb.h"
#include "sock.h"
#include "worker.h"

#define TICK_MS		1000
#define QUICK_DEATH_MS	2000	/* a worker dying younger crashed in a loop */
#define BACKOFF_MAX_MS	30000

struct kid {
	pid_t	pid;
	int	slot;
	int	ctl;		/* our end of the worker's control socket */
	int64_t	started;	/* ms, monotonic */
};

static volatile sig_atomic_t	sig_stop, sig_fast, sig_chld, sig_hup, sig_usr1,
				sig_unsupported;
static struct kid		*kids;
static int			 nkids, maxkids;
static struct sb		*sb;
static int			 crash_streak;
static int64_t			 next_spawn;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGINT:
	case SIGTERM:
		/* During a stop, a second INT or TERM means "now". */
		sig_fast = sig_stop;
		sig_stop = 1;
		break;
	case SIGQUIT:
		sig_stop = 1;
		break;
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	default:
		sig_unsupported = sig;
		break;
	}
}

static const int handled[] = { SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP,
	SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU };

static void
setup_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		sigaction(handled[i], &sa, NULL);
		sigaddset(&block, handled[i]);
	}
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (sigprocmask(SIG_BLOCK, &block, waitmask) == -1)
		fatal("sigprocmask");
	/* waitmask: the mask before blocking, minus what we handle. */
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigdelset(waitmask, handled[i]);
}

static void
spawn(struct master_env *env)
{
	struct worker_env wenv;
	pid_t pid, master = getpid();
	int slot, sv[2];

	if ((slot = sb_alloc(sb, -1)) == -1) {
		log_warnx("scoreboard full; not spawning");
		return;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		sb->slot[slot].pid = 0;
		next_spawn = now_ms() + 1000;
		return;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		sb->slot[slot].pid = 0;
		close(sv[0]);
		close(sv[1]);
		next_spawn = now_ms() + 1000;
		return;
	case 0:
		if (env->pfh != NULL)
			pidfile_close(env->pfh);	/* keep it, just not ours */
		for (int i = 0; i < nkids; i++)
			close(kids[i].ctl);
		close(sv[0]);
		sb->slot[slot].pid = getpid();
		setproctitle("worker idle");
		wenv.cfg = env->cfg;
		wenv.lfd = env->lfd;
		wenv.nlfd = env->nlfd;
		wenv.sb = sb;
		wenv.slot = slot;
		wenv.master = master;
		wenv.rootfd = env->rootfd;
		wenv.ctl = sv[1];
		wenv.priv = &env->priv;
		free(kids);
		worker_main(&wenv);
	}
	close(sv[1]);
	sb->slot[slot].pid = pid;
	sb->slot[slot].started = time(NULL);
	kids[nkids].pid = pid;
	kids[nkids].slot = slot;
	kids[nkids].ctl = sv[0];
	kids[nkids].started = now_ms();
	nkids++;
	log_debug("worker %ld started", (long)pid);
}

static void
describe_exit(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
}

/* Reap every exited worker; count the unexpected deaths. */
static void
reap(int stopping)
{
	char how[128];
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int i, clean;
		int64_t age;

		for (i = 0; i < nkids && kids[i].pid != pid; i++)
			;
		if (i == nkids)
			continue;
		age = now_ms() - kids[i].started;
		sb->slot[kids[i].slot].pid = 0;
		sb->slot[kids[i].slot].state = SB_FREE;
		close(kids[i].ctl);
		kids[i] = kids[--nkids];
		clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		describe_exit(status, how, sizeof(how));
		if (stopping) {
			if (!clean)
				log_warnx("worker %ld %s", (long)pid, how);
			else
				log_debug("worker %ld exited", (long)pid);
			continue;
		}
		/* A worker only exits on its own if something went wrong. */
		crash_streak = age < QUICK_DEATH_MS ? crash_streak + 1 : 1;
		if (crash_streak <= 1)
			next_spawn = 0;
		else {
			/* 100 ms, 200 ms, ... up to BACKOFF_MAX_MS. */
			int64_t delay = 100LL << (crash_streak - 2 > 9 ? 9 :
			    crash_streak - 2);

			if (delay > BACKOFF_MAX_MS)
				delay = BACKOFF_MAX_MS;
			next_spawn = now_ms() + delay;
			log_warnx("workers are dying in a loop (%d in a row); "
			    "next respawn in %lld ms", crash_streak,
			    (long long)delay);
		}
		log_warnx("worker %ld %s; respawning", (long)pid, how);
	}
}

/*
 * SIGUSR1: reopen the log files here, where we have the privileges, and
 * hand the new descriptors to every worker before signalling it.
 */
static void
reopen_logs(void)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	char which[2];
	int fds[2], n = 0;

	if (log_reopen() == -1)
		log_warn("reopening the error log");
	if (alog_reopen() == -1)
		log_warn("reopening the access log");
	if ((fds[n] = log_file_fd()) != -1)
		which[n++] = 'e';
	if ((fds[n] = alog_fd()) != -1)
		which[n++] = 'a';
	for (int i = 0; i < nkids && n > 0; i++) {
		struct iovec iov = { which, (size_t)n };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cm.buf,
			.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int)) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		memset(cm.buf, 0, sizeof(cm.buf));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
		if (sendmsg(kids[i].ctl, &msg, MSG_DONTWAIT | MSG_NOSIGNAL)
		    == -1)
			log_warn("sending log files to worker %ld",
			    (long)kids[i].pid);
	}
	log_info("log files reopened");
}

static void
signal_all(int sig)
{
	for (int i = 0; i < nkids; i++)
		if (kill(kids[i].pid, sig) == -1 && errno != ESRCH)
			log_warn("kill %ld", (long)kids[i].pid);
}

/*
 * Graceful stop: make the listeners non-blocking first (so no worker can
 * block in accept after its SIGTERM), name an idle worker to drain the
 * accept queue, signal them all, then drop our own listener copies.
 */
static void
begin_stop(struct master_env *env)
{
	sb->drainer = 0;
	for (int i = 0; i < nkids; i++)
		if (sb->slot[kids[i].slot].state == SB_IDLE) {
			sb->drainer = kids[i].pid;
			break;
		}
	sb->draining = 1;
	for (int i = 0; i < env->nlfd; i++) {
		int fl = fcntl(env->lfd[i], F_GETFL);

		if (fl != -1)
			(void)fcntl(env->lfd[i], F_SETFL, fl | O_NONBLOCK);
	}
	signal_all(SIGTERM);
	for (int i = 0; i < env->nlfd; i++)
		close(env->lfd[i]);
	env->nlfd = 0;
}

/* ps(1): "preforkd: master (4 workers) 127.0.0.1:8080 ..." */
static void
set_title(const struct master_env *env)
{
	char addrs[512] = "", name[128];

	for (int i = 0; i < env->nlfd; i++) {
		sock_name(env->lfd[i], name, sizeof(name));
		if (i > 0)
			strlcat(addrs, " ", sizeof(addrs));
		strlcat(addrs, name, sizeof(addrs));
	}
	setproctitle("master (%d workers) %s", env->cfg->workers, addrs);
}

int
master_run(struct master_env *env)
{
	struct cfg *cfg = env->cfg;
	sigset_t waitmask;
	int64_t deadline = 0, now;
	int stopping = 0, killed = 0;

	maxkids = cfg->workers;
	if ((kids = calloc((size_t)maxkids, sizeof(*kids))) == NULL ||
	    (sb = sb_create(maxkids * 2)) == NULL)
		fatal("allocating the scoreboard");
	setup_signals(&waitmask);
	set_title(env);
	log_info("started with %d workers", cfg->workers);
	for (;;) {
		struct timespec ts;
		int64_t wait = TICK_MS;

		now = now_ms();
		if (!stopping && nkids < maxkids && now >= next_spawn)
			while (nkids < maxkids && next_spawn <= now_ms())
				spawn(env);
		if (!stopping && nkids < maxkids && next_spawn - now < wait)
			wait = next_spawn - now;
		if (stopping && !killed && deadline - now < wait)
			wait = deadline - now;
		/*
		 * Always pass through ppoll(): it is the only place where our
		 * signals are unblocked, so skipping it would leave a pending
		 * SIGCHLD undelivered.  With a flag already up, do not sleep.
		 */
		if (wait < 0 || (sig_stop && !stopping) || sig_fast ||
		    sig_chld || sig_usr1 || sig_hup || sig_unsupported)
			wait = 0;
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = (wait % 1000) * 1000000;
		if (ppoll(NULL, 0, &ts, &waitmask) == -1 && errno != EINTR)
			fatal("ppoll");

		if (sig_stop && !stopping) {
			stopping = 1;
			sig_fast = 0;
			log_info("stopping gracefully: %d workers, deadline "
			    "%d ms", nkids, cfg->shutdown_timeout);
			deadline = now_ms() + cfg->shutdown_timeout;
			begin_stop(env);
		} else if (sig_fast) {
			sig_fast = 0;
			if (!killed) {
				log_info("second stop signal: killing %d "
				    "workers now", nkids);
				signal_all(SIGKILL);
				killed = 1;
			}
		}
		if (sig_chld) {
			sig_chld = 0;
			reap(stopping);
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			reopen_logs();
			signal_all(SIGUSR1);
		}
		if (sig_hup) {
			sig_hup = 0;
			log_warnx("SIGHUP: reload is not supported yet; "
			    "ignored");
		}
		if (sig_unsupported) {
			log_warnx("SIG%s: not supported yet; ignored",
			    sigabbrev_np(sig_unsupported));
			sig_unsupported = 0;
		}
		if (stopping && nkids == 0)
			break;
		if (stopping && !killed && now_ms() >= deadline) {
			log_warnx("shutdown_timeout reached: killing %d "
			    "workers", nkids);
			signal_all(SIGKILL);
			killed = 1;
		}
	}
	log_info("stopped");
	if (env->pfh != NULL)
		pidfile_remove(env->pfh);
	free(kids);
	return 0;
}
