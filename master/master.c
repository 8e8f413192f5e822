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
#include "chan.h"
#include "chstore.h"
#include "clock.h"
#include "log.h"
#include "master.h"
#include "mime.h"
#include "notify.h"
#include "proc.h"
#include "sb.h"
#include "sig.h"
#include "sock.h"
#include "tls.h"
#include "upgrade.h"

#define TICK_MS		250
#define QUICK_DEATH_MS	2000	/* a worker dying younger crashed in a loop */
#define BACKOFF_MAX_MS	30000
#define RAMP_MAX	32	/* workers spawned per tick under pressure */
#define FAST_MS		1000	/* a second stop signal: SIGKILL after */
#define MAX_KIDS	(2 * 4096 + 64)	/* two generations of the largest pool */

struct kid {
	pid_t		pid;
	int		slot;
	int		ctl;		/* our end of its control socket */
	int		gen;
	int		retiring;	/* told to stop: reload, shrink, TTOU */
	int		killed;		/* we sent SIGKILL */
	int64_t		started;	/* clock_ms() */
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
/*
 * The latest generation whose whole target was up at once (0: none yet,
 * we are starting).  It serves until the next one is up: a reload
 * retires it only then.
 */
static int			 up_gen;
static int64_t			 gen_since;	/* clock_ms: generation began */
static int			 told_gen;	/* its failure was reported */

static struct upgrade		 up;	/* a binary upgrade under way */

/* Stop accounting for the closing log line. */
static uint64_t			 stop_finished;
static int			 stop_killed;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGINT:
	case SIGTERM:
		/* After a first stop signal, INT or TERM means "now". */
		sig_fast = sig_stop;
		/* FALLTHROUGH */
	case SIGQUIT:
		if (sig_stop == 0)
			sig_stop = sig;	/* the first one, for the log */
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

/*
 * Handlers run with every signal masked, so on_signal() never nests.
 * They are installed while those signals are still blocked (main()
 * blocks the stop signals first thing); ppoll() unblocks them.
 */
static void
setup_signals(sigset_t *waitmask)
{
	struct sig_entry t[sizeof(handled) / sizeof(handled[0]) + 1];
	size_t n = 0;
	sigset_t block;
	int bad;

	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		t[n++] = (struct sig_entry){ handled[i], 0, on_signal };
		sigaddset(&block, handled[i]);
	}
	t[n++] = (struct sig_entry){ SIGPIPE, 0, SIG_IGN };
	if (sigprocmask(SIG_BLOCK, &block, waitmask) == -1)
		fatal("sigprocmask");
	if (sig_install(t, n, 1, &bad) == -1)
		fatal("sigaction %s", strsignal(bad));
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

/* Could not spawn: try again in a second. */
static void
spawn_failed(int slot)
{
	if (slot != -1)
		sb_slot_free(sb, slot);
	next_spawn = clock_ms() + 1000;
}

/*
 * A worker forked while the launcher still waits (daemon mode, starting)
 * holds neither its pipe nor our stderr: whoever reads the launcher's
 * output to its end would wait for the workers too.
 */
static void
leave_launcher(int fd)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	close(fd);
	if (null != -1) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

/*
 * Fork a worker that runs proc (the worker role's entry point, handed
 * down from main(): this file knows nothing of what a worker does).
 */
static void
spawn(struct master_env *env, proc_main_fn *proc)
{
	struct worker_env wenv;
	pid_t pid, master = getpid();
	int slot, sv[2];

	if (nkids == MAX_KIDS || (slot = sb_slot_reserve(sb)) == -1) {
		log_warnx("scoreboard full; not spawning");
		spawn_failed(-1);
		return;
	}
	if (chan_pair(sv) == -1) {
		log_warn("socketpair");
		spawn_failed(slot);
		return;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		spawn_failed(slot);
		return;
	case 0:
		if (env->pfh != NULL)
			pidfile_close(env->pfh);	/* keep it, just not ours */
		for (int i = 0; i < nkids; i++)
			close(kids[i].ctl);
		if (up.fd != -1)
			close(up.fd);
		if (up.subs != -1)
			close(up.subs);
		if (env->pred_fd != -1)
			close(env->pred_fd);
		if (env->ready_fd != -1)
			close(env->ready_fd);
		if (env->launcher_fd != -1)
			leave_launcher(env->launcher_fd);
		notify_forget();
		close(sv[0]);
		sb_slot_start(sb, slot, getpid());
		/* Its access-log losses show in its own slot. */
		alog_count_in(&sb->slot[slot]);
		setproctitle("worker idle");
		wenv = (struct worker_env){ .cfg = env->cfg, .lfd = env->lfd,
			.nlfd = env->nlfd, .sb = sb, .slot = slot,
			.master = master, .rootfd = env->rootfd, .chan = sv[1],
			.priv = &env->priv, .chs = env->chs };
		proc(&wenv);
		_exit(1);	/* not reached: proc never returns */
	}
	close(sv[1]);
	sb_slot_start(sb, slot, pid);
	kids[nkids] = (struct kid){ .pid = pid, .slot = slot, .ctl = sv[0],
		.gen = generation, .started = clock_ms() };
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

/*
 * The status page's retire deadline: the earliest of the workers still
 * retiring, none once they are all gone.  Kept up to date whenever a
 * worker starts retiring or is reaped.
 */
static void
show_retire_deadline(void)
{
	int64_t first = 0;

	for (int i = 0; i < nkids; i++)
		if (kids[i].retiring && (first == 0 ||
		    kids[i].deadline < first))
			first = kids[i].deadline;
	sb->retire_deadline = first;
}

/* Ask a worker to finish what it is doing and exit; SIGKILL later. */
static void
retire(struct kid *k, int64_t grace)
{
	k->retiring = 1;
	k->deadline = clock_ms() + grace;
	sb_slot_deadline(sb, k->slot, k->deadline);
	sb_slot_retire(sb, k->slot);
	show_retire_deadline();
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

	while (cur < target && next_spawn <= clock_ms()) {
		spawn(env, env->worker);
		if (count_current(NULL) == cur)
			break;		/* could not spawn */
		cur++;
	}
	if (now - last_pool < TICK_MS)
		return;
	last_pool = now;
	if (cfg->max_workers <= cfg->workers) {
		/* Fixed pool, whatever TTIN/TTOU made of its target. */
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
			spawn(env, env->worker);
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
		next_spawn = clock_ms() + delay;
		log_warnx("workers are dying in a loop (%d in a row); "
		    "next respawn in %lld ms", crash_streak, (long long)delay);
	}
	log_warnx("worker %ld %s; respawning", (long)pid, how);
}

static void
signal_all(int sig)
{
	for (int i = 0; i < nkids; i++)
		if (kill(kids[i].pid, sig) == -1 && errno != ESRCH)
			log_warn("kill %ld", (long)kids[i].pid);
}

/* --- channel subscribers handed over (doc/design.md 13) --------------- */

/*
 * A worker that retires passes its channel subscribers' sockets here
 * (CHAN_SUB); each goes to a worker of the current generation, in turn.
 * A message no worker can take yet (their queues are full) is held, and
 * the workers' channels are not read meanwhile: the sender waits, its
 * own queue being full.  With no worker to take it at all, or after
 * HOLD_MS, it goes back to the sender, which ends that stream with a
 * reconnect event.  A sender stays until we have answered for all it
 * sent: its last CHAN_SUB, empty, is echoed once what came before it
 * was placed.
 */
#define HOLD_MS		1000

static struct chan_msg	 held;		/* type 0: nothing held */
static pid_t		 held_from;
static int64_t		 held_since;

static void
drop_fds(struct chan_msg *m)
{
	while (m->nfds > 0)
		close(m->fds[--m->nfds]);
}

static struct kid *
kid_by_pid(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i].pid == pid)
			return &kids[i];
	return NULL;
}

/* Pass m to a worker of the current generation: 1, or 0 when none took it. */
static int
pass_on(struct chan_msg *m, pid_t from)
{
	static int turn;

	for (int n = 0; n < nkids; n++) {
		struct kid *k = &kids[(turn + n) % nkids];

		if (k->pid == from || k->gen != generation || k->retiring ||
		    k->killed)
			continue;
		if (chan_send(k->ctl, m) == 0) {
			turn = (int)(k - kids) + 1;
			(void)kill(k->pid, SIGUSR1);	/* it reads its channel */
			drop_fds(m);
			return 1;
		}
	}
	return 0;
}

/*
 * Our workers all retire for an upgrade's new master: it takes the
 * subscribers.  1 when sent (m's descriptors closed) or to be tried
 * again (EAGAIN: m kept); 0 when there is no successor to take them.
 */
static int
to_successor(struct chan_msg *m)
{
	if (up.subs == -1 || !up.ready)
		return 0;
	if (chan_send(up.subs, m) == 0) {
		drop_fds(m);
		return 1;
	}
	return chan_full();
}

/* Back to its sender, which ends it; else it is lost (logged). */
static void
send_back(struct chan_msg *m, pid_t from)
{
	struct kid *k = kid_by_pid(from);
	struct chan_sub cs;

	/* A copy: the payload is not aligned for the struct. */
	memcpy(&cs, m->data, sizeof(cs));
	cs.back = 1;
	memcpy(m->data, &cs, sizeof(cs));
	if (k == NULL || chan_send(k->ctl, m) == -1)
		log_warnx("a channel subscriber handed over by worker %ld "
		    "could not be passed on: its connection is closed",
		    (long)from);
	drop_fds(m);
}

/* A sender's last CHAN_SUB, empty: echoed, after all we sent it back. */
static int
echo_marker(struct chan_msg *m, pid_t from)
{
	struct kid *k = kid_by_pid(from);

	return k == NULL || chan_send(k->ctl, m) == 0 || !chan_full();
}

/*
 * Place m, from from, waiting since since: echoed (a marker), passed on,
 * to the successor, or back; held when nobody can take it yet, until
 * HOLD_MS have gone by.
 */
static void
place(struct chan_msg *m, pid_t from, int64_t since, int64_t now)
{
	if (m->len == 0) {
		if (echo_marker(m, from))
			return;
	} else if (pass_on(m, from))
		return;
	else if (count_current(NULL) == 0) {
		int r = to_successor(m);

		if (r && m->nfds == 0)
			return;		/* the successor has it */
		if (!r) {
			send_back(m, from);	/* nobody will take it */
			return;
		}
	}
	if (m->len > 0 && now - since >= HOLD_MS) {
		send_back(m, from);
		return;
	}
	held = *m;
	held_from = from;
	held_since = since;
}

/* A CHAN_SUB from a worker (or, from 0, our predecessor). */
static void
relay(struct chan_msg *m, pid_t from)
{
	struct chan_sub cs = { 0 };
	int64_t now = clock_ms();

	if (m->len == sizeof(cs))
		memcpy(&cs, m->data, sizeof(cs));
	if ((m->len == 0 && m->nfds == 0) ||
	    (m->len == sizeof(cs) && m->nfds == 1 && !cs.back))
		place(m, from, now, now);
	else
		drop_fds(m);
}

/* The held message, again. */
static void
relay_held(int64_t now)
{
	struct chan_msg m = held;

	if (held.type == 0)
		return;
	held.type = 0;
	place(&m, held_from, held_since, now);
}

/*
 * Why workers that could not start said they could not (CHAN_FAIL),
 * read before their exit is: kept until it is, the last few.
 */
#define NFAILS	8
static struct {
	pid_t	pid;
	char	why[CHAN_MAX_DATA + 1];
} fails[NFAILS];
static int nfail;

/* What a worker's channel holds: subscribers to relay, a failure. */
static void
read_ctl(struct kid *k)
{
	struct chan_msg m;

	while (held.type == 0 && chan_recv(k->ctl, &m) == 1) {
		if (m.type == CHAN_SUB)
			relay(&m, k->pid);
		else {
			if (m.type == CHAN_FAIL) {
				int i = nfail++ % NFAILS;

				fails[i].pid = k->pid;
				snprintf(fails[i].why, sizeof(fails[i].why),
				    "%.*s", (int)m.len, m.data);
			}
			drop_fds(&m);
		}
	}
}

/*
 * An upgrade made us: what the old master's workers hand over comes on
 * env->pred_fd, passed on to ours like our own workers' (from pid 0).
 */
static void
read_pred(struct master_env *env, short revents)
{
	struct chan_msg m;
	int rc = 0;

	while (held.type == 0 && (rc = chan_recv(env->pred_fd, &m)) == 1) {
		if (m.type == CHAN_SUB && m.nfds == 1)
			relay(&m, 0);
		else
			drop_fds(&m);
	}
	/* The old master is gone: nothing more will come. */
	if (rc == -1 || (rc == 0 && (revents & (POLLHUP | POLLERR)))) {
		close(env->pred_fd);
		env->pred_fd = -1;
	}
}

/* The workers' channels to wait on (none while a message is held). */
static nfds_t
ctl_fds(const struct master_env *env, struct pollfd *pfd, nfds_t at)
{
	if (held.type != 0)
		return at;
	for (int i = 0; i < nkids; i++)
		pfd[at++] = (struct pollfd){ kids[i].ctl, POLLIN, 0 };
	if (env->pred_fd != -1)
		pfd[at++] = (struct pollfd){ env->pred_fd, POLLIN, 0 };
	return at;
}

static void
ctl_events(struct master_env *env, const struct pollfd *pfd, nfds_t from,
    nfds_t to)
{
	for (nfds_t i = from; i < to; i++) {
		struct kid *k;

		if (pfd[i].revents == 0)
			continue;
		if (pfd[i].fd == env->pred_fd) {
			read_pred(env, pfd[i].revents);
			continue;
		}
		for (k = kids; k < kids + nkids && k->ctl != pfd[i].fd; k++)
			;
		if (k < kids + nkids)
			read_ctl(k);
	}
}

/* Why a worker that exited with PROC_EXIT_SETUP could not start. */
static void
setup_reason(struct kid *k, char *buf, size_t len)
{
	read_ctl(k);
	snprintf(buf, len, "exited with status %d", PROC_EXIT_SETUP);
	for (int i = 0; i < NFAILS; i++)
		if (fails[i].pid == k->pid) {
			strlcpy(buf, fails[i].why, len);
			fails[i].pid = 0;
		}
}

/*
 * Start-up cannot succeed: a worker died before it was up.  Respawning
 * would only hide it (the master used to say "started" while every
 * worker died): the others go, and start-up fails with the reason.
 */
static void __attribute__((noreturn))
start_failed(const struct master_env *env, const char *why)
{
	char msg[700];

	snprintf(msg, sizeof(msg), "workers cannot start: %s", why);
	/* In the foreground the log is stderr, where fail() writes. */
	if (!env->cfg->foreground)
		log_warnx("%s", msg);
	signal_all(SIGKILL);
	upgrade_kill(&up);	/* a SIGUSR2 may have come meanwhile */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	env->fail(msg);
	exit(1);	/* not reached: fail() does not return */
}

/*
 * A worker of a reloaded generation that is not up yet cannot start:
 * the previous generation keeps serving (it is retired only once the new
 * one is up), and the reload is reported failed, once.
 */
static void
reload_cannot_start(const char *why)
{
	if (told_gen == generation)
		return;
	told_gen = generation;
	log_warnx("reload failed: workers of generation %d cannot start: %s; "
	    "generation %d keeps serving", generation, why, up_gen);
	notify("STATUS=reload failed: workers cannot start: %s\nREADY=1", why);
	notify_state("reload", "failed: workers cannot start: %s", why);
}

/*
 * A worker left on its own, not told to (reap()).  When start-up cannot
 * succeed, the reason goes to failed (the first one only).
 */
static void
unexpected_exit(struct kid *k, int status, const char *how, char *failed,
    size_t len)
{
	const struct sb_slot *slot = &sb->slot[k->slot];
	int setup = WIFEXITED(status) && WEXITSTATUS(status) == PROC_EXIT_SETUP;
	char why[600];

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		/* Only max_requests makes a worker leave on its own. */
		log_info("worker %ld recycled after %llu requests",
		    (long)k->pid, (unsigned long long)slot->requests);
		return;
	}
	if (setup)
		setup_reason(k, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "worker %ld %s", (long)k->pid, how);
	if (up_gen == 0 && (setup || slot->state == SB_FREE)) {
		/* Start-up: see start_failed(). */
		log_debug("worker %ld %s", (long)k->pid, how);
		if (failed[0] == '\0')
			strlcpy(failed, why, len);
		return;
	}
	if (setup && k->gen == generation && up_gen < generation)
		reload_cannot_start(why);
	if (setup) {
		char s[700];

		snprintf(s, sizeof(s), "cannot start (%s)", why);
		crashed(clock_ms() - k->started, s, k->pid);
	} else
		crashed(clock_ms() - k->started, how, k->pid);
}

/* Reap every exited child: workers, and a failed upgrade's new master. */
static void
reap(const struct master_env *env, int stopping)
{
	char how[128], failed[600] = "";
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct kid k;
		const struct sb_slot *slot;
		int i, clean;

		describe_exit(status, how, sizeof(how));
		if (upgrade_reaped(&up, pid, how))
			continue;
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
		} else
			unexpected_exit(&k, status, how, failed,
			    sizeof(failed));
		sb_slot_free(sb, k.slot);
		read_ctl(&k);	/* what it sent last */
		close(k.ctl);
		kids[i] = kids[--nkids];
		if (k.retiring)
			show_retire_deadline();
	}
	if (failed[0] != '\0')
		start_failed(env, failed);
}

/*
 * SIGUSR1: reopen the log files here, where we have the privileges, and
 * hand the new descriptors to every worker before signalling it.
 */
static void
reopen_logs(void)
{
	struct chan_msg m = { .type = CHAN_LOGS };

	if (log_reopen() == -1)
		log_warn("reopening the error log");
	if (alog_reopen() == -1)
		log_warn("reopening the access log");
	if ((m.fds[m.nfds] = log_file_fd()) != -1)
		m.data[m.nfds++] = 'e';
	if ((m.fds[m.nfds] = alog_fd()) != -1)
		m.data[m.nfds++] = 'a';
	m.len = (size_t)m.nfds;
	for (int i = 0; i < nkids && m.nfds > 0; i++)
		if (chan_send(kids[i].ctl, &m) == -1)
			log_warn("sending log files to worker %ld",
			    (long)kids[i].pid);
	log_info("log files reopened");
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
	upgrade_call_off(&up);
	sb->drainer = 0;
	for (int i = 0; i < nkids; i++) {
		int64_t end = clock_ms() + env->cfg->shutdown_timeout;

		/* Sessions end by then (doc/design.md 10.4). */
		if (!kids[i].retiring || kids[i].deadline > end)
			sb_slot_deadline(sb, kids[i].slot, end);
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
		/*
		 * No new client joins the queue: the drainer answers those
		 * queued already, and the stop ends however heavy the load.
		 */
		if (sock_refuse(env->lfd[i]) == -1)
			log_warn("stop: refusing new connections");
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
	/* Our subscribers go to the new master, over up.subs if we can. */
	sb->no_takers = up.subs == -1;
	for (int i = 0; i < nkids; i++) {
		kids[i].base = sb->slot[kids[i].slot].requests;
		if (!kids[i].retiring)
			retire(&kids[i], env->cfg->shutdown_timeout);
	}
	close_listeners(env);
}

/*
 * A socket for the new configuration's listen line i: one of ours named
 * the same way or bound to the same address (marked in reused), else a
 * new one; -1 when binding fails.
 */
static int
keep_or_bind(const struct master_env *env, const struct cfg *nc, int i,
    int *reused, char *err, size_t errlen)
{
	const struct cfg *oc = env->cfg;
	struct sockaddr_storage ss;
	char name[128];
	int j, fd;

	for (j = 0; j < env->nlfd; j++)
		if (!reused[j] && j < (int)oc->nlisten &&
		    strcmp(oc->listen[j], nc->listen[i]) == 0) {
			reused[j] = 1;
			return env->lfd[j];
		}
	if (sock_parse(nc->listen[i], &ss) == -1)
		return -1;	/* cfg_validate() let no such line through */
	if ((j = sock_find(env->lfd, env->nlfd, reused, &ss, 0)) != -1) {
		reused[j] = 1;
		return env->lfd[j];
	}
	if ((fd = sock_listen(&ss, nc->backlog)) == -1) {
		snprintf(err, errlen, "%slisten %s: %s", cfg_where(nc, "listen",
		    (size_t)i), nc->listen[i], strerror(errno));
		return -1;
	}
	sock_name(fd, name, sizeof(name));
	log_info("listening on %s", name);
	return fd;
}

/*
 * Bind what the new configuration lists, reusing the sockets we have
 * for addresses that did not change.  On failure nothing changes.
 */
static int
rebind(struct master_env *env, const struct cfg *nc, int *nfd, char *err,
    size_t errlen)
{
	int i, j, reused[CFG_MAX_LISTEN] = { 0 };
	char name[128];

	for (i = 0; i < (int)nc->nlisten; i++)
		if ((nfd[i] = keep_or_bind(env, nc, i, reused, err, errlen))
		    == -1) {
			/* Close what this reload bound, keep what it reused. */
			while (--i >= 0) {
				for (j = 0; j < env->nlfd; j++)
					if (env->lfd[j] == nfd[i])
						break;
				if (j == env->nlfd)
					close(nfd[i]);
			}
			return -1;
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

/* A reload changed nothing: say why, to the log and to whoever asked. */
static void
reload_failed(const char *why)
{
	log_warnx("reload failed: %s; still serving generation %d", why,
	    generation);
	notify("STATUS=reload failed: %s\nREADY=1", why);
	notify_state("reload", "failed: %s", why);
}

/* A configuration that will not be used, with its TLS contexts. */
static void
drop_cfg(struct cfg *c)
{
	tls_free(c->tls);
	free(c);
}

/*
 * SIGHUP.  An invalid configuration changes nothing.  A valid one gets
 * a new generation of workers; the generation serving is retired once
 * the new one is up (check_up()), so the accept queue never goes
 * unserved, and it keeps serving if the new workers cannot start.
 */
static void
reload(struct master_env *env)
{
	struct cfg *nc;
	struct priv np;
	char err[PATH_MAX + 512];
	int nfd[CFG_MAX_LISTEN], rootfd;

	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		reload_failed(strerror(errno));
		return;
	}
	if (env->reconfigure(nc, &np, err, sizeof(err)) == -1) {
		reload_failed(err);
		drop_cfg(nc);
		return;
	}
	if ((rootfd = open(nc->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1) {
		snprintf(err, sizeof(err), "%sroot %s: %s", cfg_where(nc, "root",
		    0), nc->root, strerror(errno));
		reload_failed(err);
		drop_cfg(nc);
		return;
	}
	if (nc->nchannel > 0 && env->chs == NULL && (env->chs =
	    chs_open(-1, &(struct chs_limits)CHS_LIMITS(nc), err,
	    sizeof(err))) == NULL) {
		reload_failed(err);
		close(rootfd);
		drop_cfg(nc);
		return;
	}
	if (env->chs != NULL && (nc->channel_memory != env->cfg->channel_memory ||
	    nc->channel_max != env->cfg->channel_max || nc->channel_buffer !=
	    env->cfg->channel_buffer) && env->cfg->nchannel > 0)
		log_warnx("reload: channel_memory, channel_max and "
		    "channel_buffer keep their values until a restart");
	if (rebind(env, nc, nfd, err, sizeof(err)) == -1) {
		reload_failed(err);
		close(rootfd);
		drop_cfg(nc);
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
	/* The old workers have their copies of the old contexts. */
	tls_free(env->cfg->tls);
	env->cfg->tls = NULL;
	if (cfg_owned)
		free(env->cfg);
	env->cfg = nc;
	cfg_owned = 1;
	env->priv = np;
	sb->generation = ++generation;
	sb->target = target = nc->workers;
	crash_streak = 0;
	next_spawn = 0;
	gen_since = clock_ms();
	set_title(env);

	while (count_current(NULL) < target && nkids < MAX_KIDS) {
		int before = nkids;

		spawn(env, env->worker);
		if (nkids == before)
			break;
	}
	/* A generation that never came up serves nobody: it goes now. */
	for (int i = 0; i < nkids; i++)
		if (kids[i].gen < generation && kids[i].gen != up_gen &&
		    !kids[i].retiring)
			retire(&kids[i], nc->shutdown_timeout);
	log_debug("reload: generation %d starting %d workers", generation,
	    target);
}

/* Kill workers stuck on one request for longer than request_timeout. */
static void
check_timeouts(const struct cfg *cfg, int64_t now)
{
	for (int i = 0; i < nkids; i++) {
		struct kid *k = &kids[i];
		struct sb_slot *s = &sb->slot[k->slot];
		int64_t start = s->busy_since;

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
			    (long)k->pid, SB_REQ_LEN, s->busy_req,
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

/* The first generation is up: we serve, whoever waited is told. */
static void
first_up(struct master_env *env)
{
	sb->serving = 1;
	log_info("started with %d workers", target);
	if (env->ready_fd != -1) {
		/* Upgrade: the old master names us the main process now. */
		if (write(env->ready_fd, "ready\n", 6) != 6)
			log_warn("telling the old master we are ready");
		close(env->ready_fd);
		env->ready_fd = -1;
		log_info("upgrade: serving; the old master (pid %ld) stops now",
		    (long)getppid());
		notify_main(1);
		notify_state("upgrade", "ok");
	} else {
		notify("READY=1\nMAINPID=%ld\nSTATUS=serving: generation %d, "
		    "%d workers", (long)getpid(), generation, target);
		notify_state("start", "ok");
	}
	if (env->launcher_fd != -1) {
		env->started();
		env->launcher_fd = -1;
	}
}

/*
 * Is the current generation up: has every worker of its target reached
 * its accept loop (slot no longer free; under load it may be busy
 * already)?  The first time: start-up is over (first_up()), or a reload
 * is, and the generation that served until now is retired.
 */
static void
check_up(struct master_env *env)
{
	int running = 0, old = 0;

	if (up_gen == generation)
		return;
	for (int i = 0; i < nkids; i++)
		if (kids[i].gen == generation && !kids[i].retiring &&
		    sb->slot[kids[i].slot].state != SB_FREE)
			running++;
	if (running < target)
		return;
	if (up_gen == 0) {
		up_gen = generation;
		first_up(env);
		return;
	}
	up_gen = generation;
	for (int i = 0; i < nkids; i++)
		if (kids[i].gen < generation && !kids[i].retiring) {
			retire(&kids[i], env->cfg->shutdown_timeout);
			old++;
		}
	log_info("reloaded: generation %d with %d workers; retiring %d "
	    "workers of the previous generations", generation, target, old);
	notify("READY=1\nSTATUS=serving: generation %d, %d workers",
	    generation, target);
	notify_state("reload", "ok");
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

/*
 * Where a stop is: begun, when it must be over, whether we killed.  An
 * upgrade's hand-over is a stop nobody signalled: its first stop signal
 * is taken as that stop, and only a second INT or TERM kills.
 */
struct stop {
	int	stopping;
	int	signalled;	/* a stop signal was acted on */
	int	killed;		/* SIGKILL sent to every worker */
	int	hurried;	/* SIGUSR2 sent: workers close at once */
	int64_t	deadline;	/* clock_ms: shutdown_timeout ends */
	/*
	 * shutdown_delay: signalled, not yet stopping.  The workers serve on
	 * (and are replaced) until lame_until, the stop begins then.
	 */
	int	lame;
	int64_t	lame_until;	/* clock_ms */
};

/* SIGKILL every worker now (a second stop signal, or the deadline). */
static void
kill_now(struct stop *st)
{
	if (!st->hurried)	/* they were counted as cut short then */
		stop_killed += nkids;
	signal_all(SIGKILL);
	upgrade_kill(&up);
	st->killed = 1;
}

/* How long ppoll() may sleep: the tick, or less when something is due. */
static int64_t
next_wait(const struct stop *st, int64_t now, int64_t watchdog)
{
	int64_t wait = TICK_MS;

	if (!st->stopping && count_current(NULL) < target &&
	    next_spawn - now < wait)
		wait = next_spawn - now;
	if (st->stopping && !st->killed && st->deadline - now < wait)
		wait = st->deadline - now;
	if (st->lame && st->lame_until - now < wait)
		wait = st->lame_until - now;
	if (watchdog < wait)
		wait = watchdog;
	/*
	 * Poll the pool until it is up: at start-up (the launcher or an old
	 * master waits), and for a few seconds after a reload.
	 */
	if (!st->stopping && up_gen != generation && wait > 10 &&
	    (up_gen == 0 || now - gen_since < 5000))
		wait = 10;
	/* With a flag already up, do not sleep. */
	if (wait < 0 || (sig_stop && !st->signalled) || sig_fast ||
	    sig_chld || sig_usr1 || sig_hup || sig_usr2 || sig_ttin ||
	    sig_ttou)
		wait = 0;
	return wait;
}

/*
 * Is a stop signal waiting to be delivered?  Outside ppoll() our signals
 * are blocked, so one that came since the last wait is pending here.
 */
static int
stop_pending(void)
{
	sigset_t p;

	if (sigpending(&p) == -1)
		return 0;
	return sigismember(&p, SIGINT) == 1 || sigismember(&p, SIGTERM) == 1 ||
	    sigismember(&p, SIGQUIT) == 1;
}

static const char *
signame(int sig)
{
	switch (sig) {
	case SIGINT:	return "SIGINT";
	case SIGTERM:	return "SIGTERM";
	case SIGQUIT:	return "SIGQUIT";
	case SIGHUP:	return "SIGHUP";
	case SIGUSR2:	return "SIGUSR2";
	case SIGTTIN:	return "SIGTTIN";
	case SIGTTOU:	return "SIGTTOU";
	default:	return "signal";
	}
}

/* The graceful stop begins (at the signal, or after shutdown_delay). */
static void
stop_now(struct master_env *env, struct stop *st)
{
	st->lame = 0;
	st->stopping = 1;
	st->deadline = clock_ms() + env->cfg->shutdown_timeout;
	log_info("stopping gracefully: %d workers, deadline %d ms",
	    nkids, env->cfg->shutdown_timeout);
	begin_stop(env);
}

/*
 * shutdown_delay: the lame duck.  Clients and workers go on as before,
 * but health_path answers 503 and every response closes its connection,
 * so that load balancers take us out before the port closes.  A new
 * master of an upgrade that is not serving yet, or a master whose workers
 * are not up, has nobody to warn: it stops at once.
 */
static int
begin_delay(struct master_env *env, struct stop *st)
{
	int delay = env->cfg->shutdown_delay;

	if (delay == 0 || up_gen == 0 || env->ready_fd != -1)
		return 0;
	/* A stop wins over an upgrade under way. */
	upgrade_call_off(&up);
	st->lame = 1;
	st->lame_until = clock_ms() + delay;
	sb->lameduck = 1;
	log_info("%s: shutdown_delay %d ms before stopping: still serving, "
	    "health checks fail, every response closes its connection; a "
	    "second SIGINT or SIGTERM stops at once", signame(sig_stop), delay);
	notify("STOPPING=1\nSTATUS=shutdown_delay: stopping in %d ms", delay);
	return 1;
}

/*
 * INT, TERM, QUIT: begin the graceful stop (after shutdown_delay, when
 * set); a second INT/TERM: during the delay, the stop at once, else the
 * fast stop.  During a hand-over we are stopping gracefully already: the
 * first stop signal is that stop (INT and TERM together are still one
 * stop, as when nothing was under way).
 */
static void
on_stop_signals(struct master_env *env, struct stop *st)
{
	if (sig_stop && !st->signalled) {
		st->signalled = 1;
		sig_fast = 0;
		if (st->stopping) {
			log_info("%s during the upgrade hand-over: stopping "
			    "gracefully already (%d workers); a second SIGINT "
			    "or SIGTERM kills them", signame(sig_stop), nkids);
			return;
		}
		/* Nobody waits for a start-up that is over now. */
		if (env->launcher_fd != -1) {
			env->started();
			env->launcher_fd = -1;
		}
		if (begin_delay(env, st))
			return;
		notify("STOPPING=1\nSTATUS=stopping");
		stop_now(env, st);
	} else if (sig_fast && st->lame) {
		sig_fast = 0;
		log_info("second stop signal during shutdown_delay: stopping "
		    "now");
		stop_now(env, st);
	} else if (sig_fast) {
		sig_fast = 0;
		if (!st->killed && !st->hurried) {
			/*
			 * The workers close everything at once (sessions with
			 * a Close 1001) and kill their programs' groups, which
			 * a SIGKILL of the worker would leave behind.
			 */
			log_info("second stop signal: %d workers stop now, "
			    "killed in %d ms if still there", nkids, FAST_MS);
			signal_all(SIGUSR2);
			upgrade_kill(&up);
			stop_killed += nkids;	/* cut short: "killed" */
			st->hurried = 1;
			if (st->deadline > clock_ms() + FAST_MS)
				st->deadline = clock_ms() + FAST_MS;
		}
	}
}

/* Reload, upgrade and resizing make no sense once we are going. */
static void
ignored_in_stop(int sig, int times)
{
	while (times-- > 0)
		log_warnx("%s during a stop: ignored", signame(sig));
}

/*
 * Every other signal's work.  Reload, upgrade and TTIN/TTOU are refused
 * during a stop, with a line each; their flags are cleared all the same,
 * or every wait would be 0 until the stop is over.
 */
static void
on_other_signals(struct master_env *env, const struct stop *st)
{
	if (sig_chld) {
		sig_chld = 0;
		reap(env, st->stopping);
	}
	if (sig_usr1) {
		sig_usr1 = 0;
		reopen_logs();
		signal_all(SIGUSR1);
	}
	if (sig_hup) {
		sig_hup = 0;
		if (st->stopping || st->lame)
			ignored_in_stop(SIGHUP, 1);
		else {
			if (up_gen != 0)
				notify_reloading();
			reload(env);
		}
	}
	if (sig_usr2) {
		sig_usr2 = 0;
		if (st->stopping || st->lame)
			ignored_in_stop(SIGUSR2, 1);
		else
			upgrade_start(&up, env, generation + 1);
	}
	if (!sig_ttin && !sig_ttou)
		return;
	if (!st->stopping && !st->lame) {
		adjust_target(env);
		return;
	}
	ignored_in_stop(SIGTTIN, sig_ttin);
	ignored_in_stop(SIGTTOU, sig_ttou);
	sig_ttin = 0;
	sig_ttou = 0;
}

/* The scoreboard and the signals, before the first worker. */
static void
master_init(struct master_env *env, sigset_t *waitmask)
{
	const char *g = getenv("PREFORKD_GENERATION");

	upgrade_init(&up);
	if ((sb = sb_create(MAX_KIDS)) == NULL)
		fatal("allocating the scoreboard");
	if (g != NULL) {
		generation = atoi(g);
		if (generation < 1)
			generation = 1;
		unsetenv("PREFORKD_GENERATION");
	}
	sb->started = time(NULL);
	sb->generation = generation;
	sb->target = target = env->cfg->workers;
	/* An upgrade's new master: the old one serves on the same sockets. */
	sb->serving = env->ready_fd != -1;
	gen_since = clock_ms();
	/* An upgrade's new master is not the main process until ready. */
	notify_init(env->cfg->pidfile, env->ready_fd == -1);
	setup_signals(waitmask);
	set_title(env);
	/* "started with N workers" once they are up (first_up()). */
	log_debug("starting %d workers", target);
}

/* Every worker is gone: the pidfile goes too, unless a successor has it. */
static void
master_exit(const struct master_env *env)
{
	log_info("stopped: %llu requests finished during the stop, %d "
	    "workers killed", (unsigned long long)stop_finished, stop_killed);
	if (up.ready) {
		/* The pidfile's path is the new master's now. */
		if (up.oldbin[0] != '\0')
			unlink(up.oldbin);
		if (env->pfh != NULL)
			pidfile_close(env->pfh);
		return;	/* and so is the status file */
	}
	if (env->pfh != NULL)
		pidfile_remove(env->pfh);
	notify_state_remove();
}

/*
 * The new master of an upgrade serves: it is the service manager's
 * main process from now on, and we stop as in a hand-over.
 */
static void
hand_over(struct master_env *env, struct stop *st)
{
	notify("MAINPID=%ld\nREADY=1\nSTATUS=upgraded: new master %ld",
	    (long)up.pid, (long)up.pid);
	notify_main(0);
	st->stopping = 1;
	st->deadline = clock_ms() + env->cfg->shutdown_timeout;
	handover_stop(env);
}

int
master_run(struct master_env *env)
{
	struct stop st = { 0 };
	sigset_t waitmask;
	int64_t now;

	master_init(env, &waitmask);
	for (;;) {
		/* The upgrade pipe, every worker, a predecessor. */
		static struct pollfd pfd[2 + MAX_KIDS];
		struct timespec ts;
		int64_t wait;
		nfds_t nfds, nall;
		int ready;

		now = clock_ms();
		if (!st.stopping)
			maintain_pool(env, now);
		/*
		 * Always pass through ppoll(): it is the only place where our
		 * signals are unblocked, so skipping it would leave a pending
		 * SIGCHLD undelivered.
		 */
		wait = next_wait(&st, now, notify_watchdog(now));
		if (held.type != 0 && wait > 10)
			wait = 10;	/* a subscriber waits to be passed on */
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = (wait % 1000) * 1000000;
		/*
		 * ppoll() reports a readable descriptor before it delivers a
		 * pending signal: with a stop pending, leave the upgrade's
		 * pipe out, so that the stop is seen (and calls the upgrade
		 * off) before a "ready" that came after it is read.
		 */
		nfds = up.fd != -1 && !stop_pending() ? 1 : 0;
		/* A descriptor of -1 is left out by ppoll(). */
		pfd[0] = (struct pollfd){ nfds ? up.fd : -1, POLLIN, 0 };
		nall = ctl_fds(env, pfd, 1);
		if ((ready = ppoll(pfd, nall, &ts, &waitmask)) == -1 &&
		    errno != EINTR)
			fatal("ppoll");
		if (nfds == 1 && pfd[0].revents && !stop_pending() &&
		    upgrade_event(&up))
			hand_over(env, &st);
		if (ready > 0)
			ctl_events(env, pfd, 1, nall);
		relay_held(clock_ms());
		on_stop_signals(env, &st);
		on_other_signals(env, &st);
		now = clock_ms();
		check_timeouts(env->cfg, now);
		upgrade_check(&up, now);
		if (!st.stopping)
			check_up(env);
		/* A stopping master leaves the keys to its successor. */
		if (!st.stopping && env->cfg->tls != NULL)
			tls_keys_rotate(env->tls_keys, env->cfg->tls_ticket_rotate);
		if (st.lame && now >= st.lame_until) {
			log_info("shutdown_delay over");
			stop_now(env, &st);
		}
		/* Wait for an upgrade we called off, not for a successor. */
		if (st.stopping && nkids == 0 && !upgrade_pending(&up))
			break;
		if (st.stopping && !st.killed && now >= st.deadline) {
			if (st.hurried)
				log_warnx("%d workers still there after the "
				    "second stop signal: killing them", nkids);
			else
				log_warnx("shutdown_timeout reached: killing "
				    "%d workers", nkids);
			kill_now(&st);
		}
	}
	master_exit(env);
	return 0;
}
