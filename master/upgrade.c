#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "chan.h"
#include "clock.h"
#include "log.h"
#include "master.h"
#include "chstore.h"
#include "notify.h"
#include "tls.h"
#include "upgrade.h"

#define READY_MIN_MS	10000	/* the new master's time to be ready */

void
upgrade_init(struct upgrade *u)
{
	*u = (struct upgrade){ .fd = -1, .subs = -1 };
}

int
upgrade_pending(const struct upgrade *u)
{
	return u->pid != 0 && !u->ready;
}

static void
rollback(struct upgrade *u, const char *why)
{
	log_warnx("upgrade failed: %s; %s", why, u->off ? "stopping" :
	    "still serving");
	notify("STATUS=upgrade failed: %s", why);
	notify_state("upgrade", "failed: %s", why);
	if (u->oldbin[0] != '\0') {
		char path[PATH_MAX + 8];

		strlcpy(path, u->oldbin, sizeof(path));
		path[strlen(path) - strlen(".oldbin")] = '\0';
		if (rename(u->oldbin, path) == -1)
			log_warn("renaming %s back to %s", u->oldbin, path);
		u->oldbin[0] = '\0';
	}
	if (u->fd != -1) {
		close(u->fd);
		u->fd = -1;
	}
	if (u->subs != -1) {
		close(u->subs);
		u->subs = -1;
	}
	u->msg[0] = '\0';
}

/*
 * Child of fork(), signals still blocked: give every signal we catch its
 * default action again, as the exec would.  Our handlers only set flags
 * in this copy of our memory, which the exec throws away: a SIGTERM of
 * upgrade_call_off() caught here would be lost, and the new master would
 * serve on.  With the default action it ends this child instead, on the
 * spot or as soon as the mask is cleared; past the exec the new master
 * blocks it first thing and acts on it once it runs.
 */
static void
default_handlers(void)
{
	struct sigaction sa, dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP ||
		    sigaction(sig, NULL, &sa) == -1)
			continue;
		if ((sa.sa_flags & SA_SIGINFO) || (sa.sa_handler != SIG_DFL &&
		    sa.sa_handler != SIG_IGN))
			(void)sigaction(sig, &dfl, NULL);
	}
}

/* Child of fork(): put the sockets at 3.., exec. */
static void
exec_new(const struct master_env *env, int wfd, int sfd, int generation)
{
	int tmp[CFG_MAX_LISTEN], n = env->nlfd, rfd, kfd, cfd = -1, xfd = -1;
	char buf[32];
	sigset_t none;

	default_handlers();
	/*
	 * Relative paths in argv mean what they meant for us.  First thing:
	 * the descriptor numbers are about to be reused.
	 */
	if (env->start_dir != -1 && fchdir(env->start_dir) == -1)
		dprintf(wfd, "fchdir: %s; ", strerror(errno));

	for (int i = 0; i < n; i++)
		tmp[i] = fcntl(env->lfd[i], F_DUPFD_CLOEXEC, 64);
	rfd = fcntl(wfd, F_DUPFD_CLOEXEC, 64);
	kfd = fcntl(tls_keys_fd(env->tls_keys), F_DUPFD_CLOEXEC, 64);
	if (env->chs != NULL)
		cfd = fcntl(chs_fd(env->chs), F_DUPFD_CLOEXEC, 64);
	if (sfd != -1)
		xfd = fcntl(sfd, F_DUPFD_CLOEXEC, 64);
	/* dup2() clears close-on-exec: these survive the exec. */
	for (int i = 0; i < n; i++)
		dup2(tmp[i], 3 + i);
	dup2(rfd, 3 + n);
	dup2(kfd, 4 + n);
	if (cfd != -1)
		dup2(cfd, 5 + n);
	else
		close(5 + n);
	if (xfd != -1)
		dup2(xfd, 6 + n);
	else
		close(6 + n);
	closefrom(7 + n);
	snprintf(buf, sizeof(buf), "%d", n);
	setenv("LISTEN_FDS", buf, 1);
	snprintf(buf, sizeof(buf), "%ld", (long)getpid());
	setenv("LISTEN_PID", buf, 1);
	unsetenv("LISTEN_FDNAMES");
	snprintf(buf, sizeof(buf), "%d", 3 + n);
	setenv("PREFORKD_READY_FD", buf, 1);
	/* The session-ticket keys: tickets we issued resume on the new. */
	snprintf(buf, sizeof(buf), "%d", 4 + n);
	setenv("PREFORKD_TLS_KEYS_FD", buf, 1);
	/* The channels' messages and ids go on in the new master. */
	snprintf(buf, sizeof(buf), "%d", 5 + n);
	if (cfd != -1)
		setenv("PREFORKD_CHANNELS_FD", buf, 1);
	else
		unsetenv("PREFORKD_CHANNELS_FD");
	/* Our channel subscribers come over this one once it serves. */
	snprintf(buf, sizeof(buf), "%d", 6 + n);
	if (xfd != -1)
		setenv("PREFORKD_SUBSCRIBERS_FD", buf, 1);
	else
		unsetenv("PREFORKD_SUBSCRIBERS_FD");
	/* Generations count on across upgrades (the status page shows it). */
	snprintf(buf, sizeof(buf), "%d", generation);
	setenv("PREFORKD_GENERATION", buf, 1);
	/* It will be the service manager's main process: it must tell. */
	notify_exec_env();
	/*
	 * The new program starts with the signal state of a fresh process:
	 * our blocked mask and ignored SIGPIPE would otherwise carry over.
	 * A stop signal pending since the fork ends us here (see
	 * default_handlers()).
	 */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(env->exe, env->argv);
	dprintf(3 + n, "exec %s: %s", env->exe, strerror(errno));
	_exit(127);
}

void
upgrade_start(struct upgrade *u, const struct master_env *env, int generation)
{
	const struct cfg *cfg = env->cfg;
	int p[2], sv[2] = { -1, -1 };
	pid_t pid;

	if (u->pid != 0 || u->fd != -1) {
		log_warnx("SIGUSR2: an upgrade is already under way (pid %ld)",
		    (long)u->pid);
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("upgrade: pipe");
		return;
	}
	u->oldbin[0] = '\0';
	if (cfg->pidfile[0] != '\0') {
		snprintf(u->oldbin, sizeof(u->oldbin), "%s.oldbin", cfg->pidfile);
		if (rename(cfg->pidfile, u->oldbin) == -1) {
			log_warn("upgrade: renaming %s", cfg->pidfile);
			u->oldbin[0] = '\0';
		}
	}
	/* Without it, subscribers reconnect instead (not worth failing). */
	if (env->chs != NULL && chan_pair(sv) == -1) {
		log_warn("upgrade: socketpair");
		sv[0] = sv[1] = -1;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("upgrade: fork");
		close(p[0]);
		close(p[1]);
		if (sv[0] != -1) {
			close(sv[0]);
			close(sv[1]);
		}
		rollback(u, "fork failed");
		return;
	case 0:
		exec_new(env, p[1], sv[1], generation);
	}
	close(p[1]);
	if (sv[1] != -1)
		close(sv[1]);
	u->subs = sv[0];
	u->fd = p[0];
	u->pid = pid;
	u->ready = 0;
	u->off = 0;
	u->msg[0] = '\0';
	u->deadline = clock_ms() + (cfg->shutdown_timeout > READY_MIN_MS ?
	    cfg->shutdown_timeout : READY_MIN_MS);
	log_info("upgrade: started %s as pid %ld", env->exe, (long)pid);
}

int
upgrade_event(struct upgrade *u)
{
	char buf[256];
	ssize_t n = read(u->fd, buf, sizeof(buf) - 1);

	if (n == -1 && errno == EINTR)
		return 0;
	if (n > 0) {
		buf[n] = '\0';
		if (strncmp(buf, "ready", 5) == 0) {
			close(u->fd);
			u->fd = -1;
			if (u->off) {
				/* Too late: it has our SIGTERM, and it goes. */
				log_info("upgrade: new master %ld got ready after "
				    "the stop; waiting for it to stop",
				    (long)u->pid);
				return 0;
			}
			u->ready = 1;
			log_info("upgrade: new master %ld is serving; stopping "
			    "gracefully", (long)u->pid);
			return 1;
		}
		strlcat(u->msg, buf, sizeof(u->msg));
		return 0;
	}
	/* EOF (or error) before "ready": it failed. */
	close(u->fd);
	u->fd = -1;
	if (u->pid != 0) {
		/* Reaped soon: upgrade_reaped() rolls back with its status. */
		(void)kill(u->pid, SIGTERM);
		return 0;
	}
	rollback(u, u->msg[0] ? u->msg : "new master gave up");
	return 0;
}

int
upgrade_reaped(struct upgrade *u, pid_t pid, const char *how)
{
	char why[700];

	if (pid != u->pid || pid == 0)
		return 0;
	u->pid = 0;
	if (!u->ready) {
		snprintf(why, sizeof(why), "new master %ld %s%s%s", (long)pid,
		    how, u->msg[0] ? ": " : "", u->msg);
		rollback(u, why);
	}
	return 1;
}

void
upgrade_check(struct upgrade *u, int64_t now)
{
	if (!upgrade_pending(u) || now <= u->deadline)
		return;
	log_warnx("upgrade: new master %ld not ready in time; stopping it",
	    (long)u->pid);
	snprintf(u->msg, sizeof(u->msg), "not ready in time");
	(void)kill(u->pid, SIGTERM);
	u->deadline = INT64_MAX;
}

void
upgrade_call_off(struct upgrade *u)
{
	if (!upgrade_pending(u))
		return;
	snprintf(u->msg, sizeof(u->msg), "called off by a stop");
	u->off = 1;
	(void)kill(u->pid, SIGTERM);
	u->deadline = INT64_MAX;
}

void
upgrade_kill(struct upgrade *u)
{
	if (upgrade_pending(u))
		(void)kill(u->pid, SIGKILL);
}
