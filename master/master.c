/*
 * The master never serves.  It keeps its signals blocked and waits in
 * ppoll(), which unblocks them atomically, so a signal can never slip in
 * between a test of a flag and the wait.  Handlers only set flags.
 *
 * Workers belong to a generation (one per configuration).  A reload
 * forks the new generation first, then retires the old one; a binary
 * upgrade execs a new master that inherits the listening sockets, and
 * this master retires only once the new one says it is serving.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libutil.h>
#include <limits.h>
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
#include "mime.h"
#include "sb.h"
#include "sock.h"
#include "worker.h"

#define TICK_MS		250
#define QUICK_DEATH_MS	2000	/* a worker dying younger crashed in a loop */
#define BACKOFF_MAX_MS	30000
#define RAMP_MAX	32	/* workers spawned per tick under pressure */
#define MAX_KIDS	(2 * 4096 + 64)	/* two generations of the largest pool */

struct kid {
	pid_t		pid;
	int		slot;
	int		ctl;		/* our end of its control socket */
	int		gen;
	int		retiring;	/* told to stop: reload, shrink, TTOU */
	int		killed;		/* we sent SIGKILL */
	int64_t		started;	/* sb_now_ms() */
	int64_t		deadline;	/* when retiring: SIGKILL after */
	uint64_t	base;		/* requests served when the stop began */
};

static volatile sig_atomic_t	sig_stop, sig_fast, sig_chld, sig_hup, sig_usr1,
				sig_usr2, sig_ttin, sig_ttou;
static struct kid		 kids[MAX_KIDS];
static int			 nkids;
static struct sb		*sb;
static int			 generation = 1;
static int			 target;	/* wanted in this generation */
static int			 ramp = 1;
static int64_t			 last_pool;
static int			 crash_streak;
static int64_t			 next_spawn;
static int			 cfg_owned;	/* env->cfg is ours to free */

/* Binary upgrade in progress: the new master, its readiness pipe. */
static pid_t			 up_pid;
static int			 up_fd = -1;
static int64_t			 up_deadline;
static int			 up_ready;
static char			 up_msg[512];
static char			 oldbin[PATH_MAX + 8];

/* Stop accounting for the closing log line. */
static uint64_t			 stop_finished;
static int			 stop_killed;

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
	case SIGUSR2:
		sig_usr2 = 1;
		break;
	case SIGTTIN:
		sig_ttin++;
		break;
	case SIGTTOU:
		sig_ttou++;
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
	setproctitle("master (%d workers) %s", target, addrs);
}

static void
spawn(struct master_env *env)
{
	struct worker_env wenv;
	pid_t pid, master = getpid();
	int slot, sv[2];

	if (nkids == MAX_KIDS || (slot = sb_alloc(sb, -1)) == -1) {
		log_warnx("scoreboard full; not spawning");
		next_spawn = sb_now_ms() + 1000;
		return;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		sb->slot[slot].pid = 0;
		next_spawn = sb_now_ms() + 1000;
		return;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		sb->slot[slot].pid = 0;
		close(sv[0]);
		close(sv[1]);
		next_spawn = sb_now_ms() + 1000;
		return;
	case 0:
		if (env->pfh != NULL)
			pidfile_close(env->pfh);	/* keep it, just not ours */
		for (int i = 0; i < nkids; i++)
			close(kids[i].ctl);
		if (up_fd != -1)
			close(up_fd);
		if (env->ready_fd != -1)
			close(env->ready_fd);
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
		worker_main(&wenv);
	}
	close(sv[1]);
	sb->slot[slot].pid = pid;
	sb->slot[slot].started = time(NULL);
	memset(&kids[nkids], 0, sizeof(kids[nkids]));
	kids[nkids].pid = pid;
	kids[nkids].slot = slot;
	kids[nkids].ctl = sv[0];
	kids[nkids].gen = generation;
	kids[nkids].started = sb_now_ms();
	nkids++;
	log_debug("worker %ld started (generation %d)", (long)pid, generation);
}

/* Workers of the current generation that are not on their way out. */
static int
count_current(int *idle)
{
	int n = 0, i;

	if (idle != NULL)
		*idle = 0;
	for (i = 0; i < nkids; i++) {
		if (kids[i].gen != generation || kids[i].retiring)
			continue;
		n++;
		if (idle != NULL && sb->slot[kids[i].slot].state == SB_IDLE)
			(*idle)++;
	}
	return n;
}

/* Ask a worker to finish what it is doing and exit; SIGKILL later. */
static void
retire(struct kid *k, int64_t grace)
{
	k->retiring = 1;
	k->deadline = sb_now_ms() + grace;
	sb->slot[k->slot].retiring = 1;
	if (sb->retire_deadline == 0 || sb->retire_deadline > k->deadline)
		sb->retire_deadline = k->deadline;
	if (kill(k->pid, SIGTERM) == -1 && errno != ESRCH)
		log_warn("kill %ld", (long)k->pid);
}

/*
 * Retire one idle worker of this generation, the one holding the fewest
 * keep-alive connections (they are closed when it goes); else the
 * youngest.
 */
static int
retire_one(const struct cfg *cfg)
{
	struct kid *pick = NULL, *idle = NULL;

	for (int i = 0; i < nkids; i++) {
		struct kid *k = &kids[i];

		if (k->gen != generation || k->retiring)
			continue;
		if (sb->slot[k->slot].state == SB_IDLE && (idle == NULL ||
		    sb->slot[k->slot].conns < sb->slot[idle->slot].conns))
			idle = k;
		if (pick == NULL || k->started > pick->started)
			pick = k;
	}
	if (idle != NULL)
		pick = idle;
	if (pick == NULL)
		return -1;
	retire(pick, cfg->shutdown_timeout);
	return 0;
}

/*
 * Keep the pool at its target, and when a dynamic pool is configured
 * (max_workers > workers) between min_spare_workers and
 * max_spare_workers idle workers: spawning 1, 2, 4... per tick while
 * idle workers are short, retiring one per tick while there are too many.
 */
static void
maintain_pool(struct master_env *env, int64_t now)
{
	const struct cfg *cfg = env->cfg;
	int idle, cur = count_current(&idle);
	int max = cfg->max_workers > target ? cfg->max_workers : target;

	while (cur < target && next_spawn <= sb_now_ms()) {
		spawn(env);
		if (count_current(NULL) == cur)
			break;		/* could not spawn */
		cur++;
	}
	if (now - last_pool < TICK_MS)
		return;
	last_pool = now;
	if (cfg->max_workers <= cfg->workers && max == target) {
		/* Fixed pool: only TTOU leftovers to trim. */
		if (cur > target)
			retire_one(cfg);
		return;
	}
	if (idle < cfg->min_spare_workers && cur < max &&
	    next_spawn <= now) {
		int n = ramp;

		if (n > max - cur)
			n = max - cur;
		log_info("%d idle workers (min_spare_workers %d): spawning %d",
		    idle, cfg->min_spare_workers, n);
		while (n-- > 0)
			spawn(env);
		if (ramp < RAMP_MAX)
			ramp *= 2;
	} else {
		ramp = 1;
		if (idle > cfg->max_spare_workers && cur > target) {
			log_info("%d idle workers (max_spare_workers %d): "
			    "retiring one", idle, cfg->max_spare_workers);
			retire_one(cfg);
		}
	}
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

static void
upgrade_rollback(const char *why)
{
	log_warnx("upgrade failed: %s; still serving", why);
	if (oldbin[0] != '\0') {
		char path[PATH_MAX + 8];

		strlcpy(path, oldbin, sizeof(path));
		path[strlen(path) - strlen(".oldbin")] = '\0';
		if (rename(oldbin, path) == -1)
			log_warn("renaming %s back to %s", oldbin, path);
		oldbin[0] = '\0';
	}
	if (up_fd != -1) {
		close(up_fd);
		up_fd = -1;
	}
	up_msg[0] = '\0';
}

static void
crashed(int64_t age, const char *how, pid_t pid)
{
	crash_streak = age < QUICK_DEATH_MS ? crash_streak + 1 : 1;
	if (crash_streak <= 1)
		next_spawn = 0;
	else {
		/* 100 ms, 200 ms, ... up to BACKOFF_MAX_MS. */
		int64_t delay = 100LL << (crash_streak - 2 > 9 ? 9 :
		    crash_streak - 2);

		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		next_spawn = sb_now_ms() + delay;
		log_warnx("workers are dying in a loop (%d in a row); "
		    "next respawn in %lld ms", crash_streak, (long long)delay);
	}
	log_warnx("worker %ld %s; respawning", (long)pid, how);
}

/* Reap every exited child: workers, and a failed upgrade's new master. */
static void
reap(int stopping)
{
	char how[128];
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct kid k;
		struct sb_slot *slot;
		int i, clean;

		describe_exit(status, how, sizeof(how));
		if (pid == up_pid) {
			up_pid = 0;
			if (!up_ready) {
				char why[700];

				snprintf(why, sizeof(why), "new master %ld %s%s%s",
				    (long)pid, how, up_msg[0] ? ": " : "",
				    up_msg);
				upgrade_rollback(why);
			}
			continue;
		}
		for (i = 0; i < nkids && kids[i].pid != pid; i++)
			;
		if (i == nkids)
			continue;
		k = kids[i];
		slot = &sb->slot[k.slot];
		if (stopping)
			stop_finished += slot->requests - k.base;
		clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (stopping || k.retiring || k.killed) {
			if (!clean && !k.killed)
				log_warnx("worker %ld %s", (long)pid, how);
			else
				log_debug("worker %ld %s", (long)pid, how);
		} else if (clean)
			/* Only max_requests makes a worker leave on its own. */
			log_info("worker %ld recycled after %llu requests",
			    (long)pid, (unsigned long long)slot->requests);
		else
			crashed(sb_now_ms() - k.started, how, pid);
		slot->pid = 0;
		slot->state = SB_FREE;
		slot->req_start = 0;
		close(k.ctl);
		kids[i] = kids[--nkids];
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

static void
close_listeners(struct master_env *env)
{
	for (int i = 0; i < env->nlfd; i++)
		close(env->lfd[i]);
	env->nlfd = 0;
}

/*
 * Graceful stop: make the listeners non-blocking first (so no worker can
 * block in accept after its SIGTERM), name an idle worker to drain the
 * accept queue, signal them all, then drop our own listener copies.
 */
static void
begin_stop(struct master_env *env)
{
	stop_killed = 0;
	/* An upgrade still pending is called off: we are going away. */
	if (up_pid != 0 && !up_ready) {
		snprintf(up_msg, sizeof(up_msg), "called off by a stop");
		(void)kill(up_pid, SIGTERM);
		up_deadline = INT64_MAX;
	}
	sb->drainer = 0;
	for (int i = 0; i < nkids; i++) {
		kids[i].base = sb->slot[kids[i].slot].requests;
		if (sb->drainer == 0 && !kids[i].retiring &&
		    sb->slot[kids[i].slot].state == SB_IDLE)
			sb->drainer = kids[i].pid;
	}
	sb->draining = 1;
	for (int i = 0; i < env->nlfd; i++) {
		int fl = fcntl(env->lfd[i], F_GETFL);

		if (fl != -1)
			(void)fcntl(env->lfd[i], F_SETFL, fl | O_NONBLOCK);
	}
	signal_all(SIGTERM);
	close_listeners(env);
}

/*
 * The new master serves on the same sockets: our workers just stop
 * accepting and finish what they have (like a reload's old generation);
 * neither drain nor non-blocking listeners, which the new master shares.
 */
static void
handover_stop(struct master_env *env)
{
	stop_killed = 0;
	for (int i = 0; i < nkids; i++) {
		kids[i].base = sb->slot[kids[i].slot].requests;
		if (!kids[i].retiring)
			retire(&kids[i], env->cfg->shutdown_timeout);
	}
	close_listeners(env);
}

/*
 * Bind what the new configuration lists, reusing the sockets we have
 * for addresses that did not change.  On failure nothing changes.
 */
static int
rebind(struct master_env *env, const struct cfg *nc, int *nfd)
{
	const struct cfg *oc = env->cfg;
	struct sockaddr_storage ss, cur;
	socklen_t sl;
	int i, j, reused[CFG_MAX_LISTEN] = { 0 };
	char name[128];

	for (i = 0; i < (int)nc->nlisten; i++) {
		nfd[i] = -1;
		for (j = 0; j < env->nlfd && nfd[i] == -1; j++)
			if (!reused[j] && j < (int)oc->nlisten &&
			    strcmp(oc->listen[j], nc->listen[i]) == 0)
				nfd[i] = env->lfd[j], reused[j] = 1;
		if (nfd[i] != -1 || sock_parse(nc->listen[i], &ss) == -1)
			continue;
		for (j = 0; j < env->nlfd && nfd[i] == -1; j++) {
			sl = sizeof(cur);
			if (!reused[j] && getsockname(env->lfd[j],
			    (struct sockaddr *)&cur, &sl) == 0 &&
			    sock_same(&ss, &cur))
				nfd[i] = env->lfd[j], reused[j] = 1;
		}
		if (nfd[i] != -1)
			continue;
		if ((nfd[i] = sock_listen(&ss, nc->backlog)) == -1) {
			log_warn("reload: listen %s", nc->listen[i]);
			while (--i >= 0) {
				for (j = 0; j < env->nlfd; j++)
					if (env->lfd[j] == nfd[i])
						break;
				if (j == env->nlfd)
					close(nfd[i]);
			}
			return -1;
		}
		sock_name(nfd[i], name, sizeof(name));
		log_info("listening on %s", name);
	}
	for (i = 0; i < (int)nc->nlisten; i++) {
		int fl = fcntl(nfd[i], F_GETFL);

		/* A new backlog applies to kept sockets too. */
		(void)listen(nfd[i], nc->backlog);
		if (fl != -1)
			(void)fcntl(nfd[i], F_SETFL, nc->nlisten > 1 ?
			    fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	}
	for (j = 0; j < env->nlfd; j++)
		if (!reused[j]) {
			sock_name(env->lfd[j], name, sizeof(name));
			log_info("no longer listening on %s", name);
			close(env->lfd[j]);
		}
	return 0;
}

/*
 * SIGHUP.  An invalid configuration changes nothing.  A valid one gets
 * a new generation of workers, started before the old one is retired,
 * so the accept queue never goes unserved.
 */
static void
reload(struct master_env *env)
{
	struct cfg *nc;
	struct priv np;
	char err[PATH_MAX + 512];
	int nfd[CFG_MAX_LISTEN], rootfd, old = 0;

	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		log_warn("reload");
		return;
	}
	if (env->reconfigure(nc, &np, err, sizeof(err)) == -1) {
		log_warnx("reload failed: %s; still serving generation %d",
		    err, generation);
		free(nc);
		return;
	}
	if ((rootfd = open(nc->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1) {
		log_warn("reload failed: root %s; still serving generation %d",
		    nc->root, generation);
		free(nc);
		return;
	}
	if (rebind(env, nc, nfd) == -1) {
		log_warnx("reload failed; still serving generation %d",
		    generation);
		close(rootfd);
		free(nc);
		return;
	}
	if (mime_load(nc->mime_types) == -1)
		log_warn("%s; keeping the MIME types we had", nc->mime_types);
	if (!nc->foreground && strcmp(nc->error_log, env->cfg->error_log) &&
	    log_open(nc->error_log) == -1)
		log_warn("error_log %s", nc->error_log);
	if (strcmp(nc->access_log, env->cfg->access_log) &&
	    alog_open(nc->access_log) == -1)
		log_warn("access_log %s", nc->access_log);
	if (strcmp(nc->pidfile, env->cfg->pidfile) != 0)
		log_warnx("reload: a new pidfile takes a restart; keeping %s",
		    env->cfg->pidfile);
	strlcpy(nc->pidfile, env->cfg->pidfile, sizeof(nc->pidfile));

	close(env->rootfd);
	env->rootfd = rootfd;
	memcpy(env->lfd, nfd, nc->nlisten * sizeof(int));
	env->nlfd = (int)nc->nlisten;
	if (cfg_owned)
		free(env->cfg);
	env->cfg = nc;
	cfg_owned = 1;
	env->priv = np;
	sb->generation = ++generation;
	sb->target = target = nc->workers;
	crash_streak = 0;
	next_spawn = 0;
	set_title(env);

	while (count_current(NULL) < target && nkids < MAX_KIDS) {
		int before = nkids;

		spawn(env);
		if (nkids == before)
			break;
	}
	for (int i = 0; i < nkids; i++)
		if (kids[i].gen < generation && !kids[i].retiring) {
			retire(&kids[i], nc->shutdown_timeout);
			old++;
		}
	log_info("reloaded: generation %d with %d workers; retiring %d "
	    "workers of the previous generations", generation, target, old);
}

/* Child of fork() for an upgrade: put the sockets at 3.., exec. */
static void
exec_upgrade(const struct master_env *env, int wfd)
{
	int tmp[CFG_MAX_LISTEN], n = env->nlfd, rfd;
	char buf[32];
	sigset_t none;

	/*
	 * Relative paths in argv mean what they meant for us.  First thing:
	 * the descriptor numbers are about to be reused.
	 */
	if (env->start_dir != -1 && fchdir(env->start_dir) == -1)
		dprintf(wfd, "fchdir: %s; ", strerror(errno));

	for (int i = 0; i < n; i++)
		tmp[i] = fcntl(env->lfd[i], F_DUPFD_CLOEXEC, 64);
	rfd = fcntl(wfd, F_DUPFD_CLOEXEC, 64);
	/* dup2() clears close-on-exec: these survive the exec. */
	for (int i = 0; i < n; i++)
		dup2(tmp[i], 3 + i);
	dup2(rfd, 3 + n);
	closefrom(4 + n);
	snprintf(buf, sizeof(buf), "%d", n);
	setenv("LISTEN_FDS", buf, 1);
	snprintf(buf, sizeof(buf), "%ld", (long)getpid());
	setenv("LISTEN_PID", buf, 1);
	unsetenv("LISTEN_FDNAMES");
	snprintf(buf, sizeof(buf), "%d", 3 + n);
	setenv("PREFORKD_READY_FD", buf, 1);

	/* Generations count on across upgrades (the status page shows it). */
	snprintf(buf, sizeof(buf), "%d", generation + 1);
	setenv("PREFORKD_GENERATION", buf, 1);
	/*
	 * The new program starts with the signal state of a fresh process:
	 * our blocked mask and ignored SIGPIPE would otherwise carry over.
	 */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(env->exe, env->argv);
	dprintf(3 + n, "exec %s: %s", env->exe, strerror(errno));
	_exit(127);
}

/*
 * SIGUSR2: exec the binary on disk as a new master that inherits our
 * listening sockets (LISTEN_FDS, systemd's convention).  We keep serving
 * until it reports that its workers accept; if it fails, we go on.
 */
static void
upgrade(struct master_env *env)
{
	int p[2];
	pid_t pid;

	if (up_pid != 0 || up_fd != -1) {
		log_warnx("SIGUSR2: an upgrade is already under way (pid %ld)",
		    (long)up_pid);
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("upgrade: pipe");
		return;
	}
	oldbin[0] = '\0';
	if (env->cfg->pidfile[0] != '\0') {
		snprintf(oldbin, sizeof(oldbin), "%s.oldbin", env->cfg->pidfile);
		if (rename(env->cfg->pidfile, oldbin) == -1) {
			log_warn("upgrade: renaming %s", env->cfg->pidfile);
			oldbin[0] = '\0';
		}
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("upgrade: fork");
		close(p[0]);
		close(p[1]);
		upgrade_rollback("fork failed");
		return;
	case 0:
		exec_upgrade(env, p[1]);
	}
	close(p[1]);
	up_fd = p[0];
	up_pid = pid;
	up_ready = 0;
	up_msg[0] = '\0';
	up_deadline = sb_now_ms() + (env->cfg->shutdown_timeout > 10000 ?
	    env->cfg->shutdown_timeout : 10000);
	log_info("upgrade: started %s as pid %ld", env->exe, (long)pid);
}

/* The new master wrote to its readiness pipe, or closed it. */
static void
upgrade_event(struct master_env *env, int *stopping)
{
	char buf[256];
	ssize_t n = read(up_fd, buf, sizeof(buf) - 1);

	if (n == -1 && errno == EINTR)
		return;
	if (n > 0) {
		buf[n] = '\0';
		if (strncmp(buf, "ready", 5) == 0) {
			up_ready = 1;
			close(up_fd);
			up_fd = -1;
			log_info("upgrade: new master %ld is serving; stopping "
			    "gracefully", (long)up_pid);
			*stopping = 1;
			handover_stop(env);
			return;
		}
		strlcat(up_msg, buf, sizeof(up_msg));
		return;
	}
	/* EOF (or error) before "ready": it failed. */
	close(up_fd);
	up_fd = -1;
	if (up_pid != 0) {
		/* Reaped soon: reap() rolls back with its exit status. */
		(void)kill(up_pid, SIGTERM);
		return;
	}
	upgrade_rollback(up_msg[0] ? up_msg : "new master gave up");
}

/* Kill workers stuck on one request for longer than request_timeout. */
static void
check_timeouts(const struct cfg *cfg, int64_t now)
{
	for (int i = 0; i < nkids; i++) {
		struct kid *k = &kids[i];
		struct sb_slot *s = &sb->slot[k->slot];
		int64_t start = s->req_start;

		if (k->killed)
			continue;
		if (k->retiring && now >= k->deadline) {
			log_warnx("worker %ld still busy after the retirement "
			    "deadline: killing it", (long)k->pid);
			goto kill;
		}
		if (cfg->request_timeout > 0 && start != 0 &&
		    now - start > cfg->request_timeout) {
			log_warnx("worker %ld: request \"%.*s\" still running "
			    "after %lld ms (request_timeout): killing it",
			    (long)k->pid, SB_REQ_LEN, s->req,
			    (long long)(now - start));
			goto kill;
		}
		continue;
kill:
		k->killed = 1;
		stop_killed++;
		if (kill(k->pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("kill %ld", (long)k->pid);
	}
}

/*
 * Upgrade: once every worker of ours is up (has reached its accept loop;
 * under load it may be busy already), tell the old master to go.
 */
static void
maybe_ready(struct master_env *env)
{
	int up = 0;

	if (env->ready_fd == -1)
		return;
	for (int i = 0; i < nkids; i++)
		if (kids[i].gen == generation && !kids[i].retiring &&
		    sb->slot[kids[i].slot].state != SB_FREE)
			up++;
	if (up < target)
		return;
	if (write(env->ready_fd, "ready\n", 6) != 6)
		log_warn("telling the old master we are ready");
	close(env->ready_fd);
	env->ready_fd = -1;
	log_info("upgrade: serving; the old master (pid %ld) stops now",
	    (long)getppid());
}

static void
adjust_target(struct master_env *env)
{
	while (sig_ttin > 0) {
		sig_ttin--;
		if (target < 4096)
			target++;
	}
	while (sig_ttou > 0) {
		sig_ttou--;
		if (target > 1)
			target--;
	}
	if (sb->target != target) {
		log_info("workers: %d (was %d)", target, sb->target);
		sb->target = target;
		set_title(env);
	}
	while (count_current(NULL) > target && retire_one(env->cfg) == 0)
		;
}

int
master_run(struct master_env *env)
{
	sigset_t waitmask;
	int64_t deadline = 0, now;
	int stopping = 0, killed = 0;

	if ((sb = sb_create(MAX_KIDS)) == NULL)
		fatal("allocating the scoreboard");
	if (getenv("PREFORKD_GENERATION") != NULL) {
		generation = atoi(getenv("PREFORKD_GENERATION"));
		if (generation < 1)
			generation = 1;
		unsetenv("PREFORKD_GENERATION");
	}
	sb->started = time(NULL);
	sb->generation = generation;
	sb->target = target = env->cfg->workers;
	setup_signals(&waitmask);
	set_title(env);
	log_info("started with %d workers", target);
	for (;;) {
		struct pollfd pfd = { up_fd, POLLIN, 0 };
		struct timespec ts;
		int64_t wait = TICK_MS;

		now = sb_now_ms();
		if (!stopping)
			maintain_pool(env, now);
		if (!stopping && count_current(NULL) < target &&
		    next_spawn - now < wait)
			wait = next_spawn - now;
		if (stopping && !killed && deadline - now < wait)
			wait = deadline - now;
		if (env->ready_fd != -1)
			wait = 10;	/* poll the pool until it is up */
		/*
		 * Always pass through ppoll(): it is the only place where our
		 * signals are unblocked, so skipping it would leave a pending
		 * SIGCHLD undelivered.  With a flag already up, do not sleep.
		 */
		if (wait < 0 || (sig_stop && !stopping) || sig_fast ||
		    sig_chld || sig_usr1 || sig_hup || sig_usr2 || sig_ttin ||
		    sig_ttou)
			wait = 0;
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = (wait % 1000) * 1000000;
		if (ppoll(&pfd, up_fd != -1 ? 1 : 0, &ts, &waitmask) == -1 &&
		    errno != EINTR)
			fatal("ppoll");
		if (up_fd != -1 && pfd.revents)
			upgrade_event(env, &stopping);

		if (sig_stop && !stopping) {
			stopping = 1;
			sig_fast = 0;
			log_info("stopping gracefully: %d workers, deadline "
			    "%d ms", nkids, env->cfg->shutdown_timeout);
			begin_stop(env);
		} else if (sig_fast) {
			sig_fast = 0;
			if (!killed) {
				log_info("second stop signal: killing %d "
				    "workers now", nkids);
				stop_killed += nkids;
				signal_all(SIGKILL);
				killed = 1;
			}
		}
		if (stopping && deadline == 0)
			deadline = sb_now_ms() + env->cfg->shutdown_timeout;
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
			if (!stopping)
				reload(env);
		}
		if (sig_usr2) {
			sig_usr2 = 0;
			if (!stopping)
				upgrade(env);
		}
		if ((sig_ttin || sig_ttou) && !stopping)
			adjust_target(env);
		now = sb_now_ms();
		check_timeouts(env->cfg, now);
		if (up_pid != 0 && !up_ready && now > up_deadline) {
			log_warnx("upgrade: new master %ld not ready in time; "
			    "stopping it", (long)up_pid);
			snprintf(up_msg, sizeof(up_msg), "not ready in time");
			(void)kill(up_pid, SIGTERM);
			up_deadline = INT64_MAX;
		}
		if (!stopping)
			maybe_ready(env);
		/* Wait for an upgrade we called off, not for a successor. */
		if (stopping && nkids == 0 && (up_pid == 0 || up_ready))
			break;
		if (stopping && !killed && now >= deadline) {
			log_warnx("shutdown_timeout reached: killing %d "
			    "workers", nkids);
			stop_killed += nkids;
			signal_all(SIGKILL);
			if (up_pid != 0 && !up_ready)
				(void)kill(up_pid, SIGKILL);
			killed = 1;
		}
	}
	log_info("stopped: %llu requests finished during the stop, %d "
	    "workers killed", (unsigned long long)stop_finished, stop_killed);
	if (up_ready) {
		/* The pidfile's path is the new master's now. */
		if (oldbin[0] != '\0')
			unlink(oldbin);
		if (env->pfh != NULL)
			pidfile_close(env->pfh);
	} else if (env->pfh != NULL)
		pidfile_remove(env->pfh);
	return 0;
}
