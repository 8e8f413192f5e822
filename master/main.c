/*
 * preforkd: command line, start-up checks, binding, daemonizing.
 * Everything that can fail is done before the first fork, and fails with
 * one line on stderr and exit status 1.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <libutil.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alog.h"
#include "cfg.h"
#include "chstore.h"
#include "log.h"
#include "master.h"
#include "mime.h"
#include "priv.h"
#include "proc.h"
#include "sock.h"
#include "tls.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: preforkd [-ftVh] [-c file] [-l addr:port]... [-r root] "
	    "[-n workers]\n"
	    "                [-p pidfile] [-u user] [-T shutdown_timeout] "
	    "[-o keyword=value]...\n");
}

/* "-X: message": a bad flag, shown with the usage. */
static void
die_usage(const char *msg)
{
	fprintf(stderr, "preforkd: %s\n", msg);
	usage(stderr);
	exit(1);
}

static void
bad_flag(int opt, const char *msg)
{
	char m[600];

	snprintf(m, sizeof(m), "-%c: %s", opt, msg);
	die_usage(m);
}

/* Flags are applied after the file, so that they override it. */
struct flag {
	int		 opt;
	const char	*key;
	const char	*val;
};

static struct flag	flags[256];
static int		nflags;

static void
add_flag(int opt, const char *key, const char *val)
{
	if (nflags == (int)(sizeof(flags) / sizeof(flags[0])))
		bad_flag(opt, "too many flags");
	flags[nflags].opt = opt;
	flags[nflags].key = key;
	flags[nflags++].val = val;
}

/* Apply the flags over a configuration; -1 with the flag and message. */
static int
apply_flags(struct cfg *c, int *bad, char *err, size_t errlen)
{
	char key[64];
	int listen_flag = 0;

	for (int i = 0; i < nflags; i++) {
		const struct flag *f = &flags[i];
		const char *k = f->key, *v = f->val;

		*bad = f->opt;
		if (f->opt == 'o') {
			const char *eq = strchr(v, '=');

			if (eq == NULL || eq == v ||
			    (size_t)(eq - v) >= sizeof(key)) {
				snprintf(err, errlen, "expected keyword=value");
				return -1;
			}
			memcpy(key, v, (size_t)(eq - v));
			key[eq - v] = '\0';
			k = key;
			v = eq + 1;
		}
		/* Listen flags replace the file's listen lines. */
		if (strcmp(k, "listen") == 0 && !listen_flag) {
			listen_flag = 1;
			c->nlisten = 0;
		}
		if (cfg_set(c, k, v, err, errlen) == -1)
			return -1;
	}
	return 0;
}

static const char *
parse_args(int argc, char **argv, struct cfg *c, int *check)
{
	const char *file = NULL;
	int ch;

	while ((ch = getopt(argc, argv, ":c:fhl:n:o:p:r:tT:u:V")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'f':
			c->foreground = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'l':
			add_flag(ch, "listen", optarg);
			break;
		case 'n':
			add_flag(ch, "workers", optarg);
			break;
		case 'o':
			add_flag(ch, NULL, optarg);
			break;
		case 'p':
			add_flag(ch, "pidfile", optarg);
			break;
		case 'r':
			add_flag(ch, "root", optarg);
			break;
		case 't':
			*check = 1;
			break;
		case 'T':
			add_flag(ch, "shutdown_timeout", optarg);
			break;
		case 'u':
			add_flag(ch, "user", optarg);
			break;
		case 'V':
			printf("preforkd %s\n", PACKAGE_VERSION);
			exit(0);
		case ':':
			bad_flag(optopt, "missing argument");
			break;
		default:
			bad_flag(optopt, "unknown flag");
		}
	}
	if (optind < argc) {
		fprintf(stderr, "preforkd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		exit(1);
	}
	return file;
}

/* Sockets handed over (sock_inherit), until bind_all() takes them. */
static int	inherited[CFG_MAX_LISTEN];
static int	inherited_taken[CFG_MAX_LISTEN];
static int	ninherited;

/*
 * Exit 1 with one line.  An error located in the configuration file is
 * printed as FILE:LINE: message, the way compilers say it; others are
 * prefixed with our name.
 */
static void
die(const struct cfg *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static const char	*conf_file;	/* -c, read again on SIGHUP */
static int		 foreground;
static struct pidfh	*pfh_held;	/* removed again if start-up fails */
static int		 ready_fd = -1;	/* upgrade: the old master listens */
static int		 launcher_fd = -1;	/* daemonize: the parent waits */
static struct tls_keys	*tls_keys;	/* session-ticket keys, shared */

/*
 * The one way out while starting: the message goes to whoever waits for
 * it (the terminal, the launching parent, an old master), and the
 * pidfile we hold, if any, is removed.
 */
static void
die(const struct cfg *c, const char *fmt, ...)
{
	char msg[PATH_MAX + 1024], line[PATH_MAX + 1100];
	const char *file = c->file[0] ? c->file : conf_file ? conf_file : "";
	size_t fl = strlen(file);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fl > 0 && strncmp(msg, file, fl) == 0 && msg[fl] == ':')
		snprintf(line, sizeof(line), "%s\n", msg);
	else
		snprintf(line, sizeof(line), "preforkd: %s\n", msg);
	if (launcher_fd != -1)
		(void)write(launcher_fd, line, strlen(line));
	else
		fputs(line, stderr);
	if (ready_fd != -1)
		dprintf(ready_fd, "%s", msg);
	if (pfh_held != NULL)
		pidfile_remove(pfh_held);
	exit(1);
}

static int
bind_all(struct cfg *c, int *lfd)
{
	struct sockaddr_storage ss;
	char name[128];

	for (size_t i = 0; i < c->nlisten; i++) {
		if (sock_parse(c->listen[i], &ss) == -1)
			die(c, "%slisten: invalid address '%s'",
			    cfg_where(c, "listen", i), c->listen[i]);
		int k = sock_find(inherited, ninherited, inherited_taken, &ss,
		    1);

		if (k != -1) {
			inherited_taken[k] = 1;
			lfd[i] = inherited[k];
			(void)listen(lfd[i], c->backlog);
		} else if ((lfd[i] = sock_listen(&ss, c->backlog)) == -1)
			die(c, "%slisten %s: %s", cfg_where(c, "listen", i),
			    c->listen[i], strerror(errno));
		/* Several listeners are polled, so accept must not block. */
		if (fcntl(lfd[i], F_SETFL, c->nlisten > 1 ? O_NONBLOCK : 0)
		    == -1)
			die(c, "listen %s: fcntl: %s", c->listen[i],
			    strerror(errno));
		sock_name(lfd[i], name, sizeof(name));
		log_info("listening on %s", name);
	}
	/* Handed-over sockets the configuration no longer names. */
	for (int i = 0; i < ninherited; i++)
		if (!inherited_taken[i]) {
			sock_name(inherited[i], name, sizeof(name));
			log_info("no longer listening on %s", name);
			close(inherited[i]);
		}
	return (int)c->nlisten;
}

/*
 * Detach from the terminal.  The parent waits on a pipe and exits 0 only
 * once the daemon has written its pidfile and is about to serve, so an
 * init script that reads the pidfile right after we return finds it; if
 * the daemon fails before that, the parent prints why and exits 1.
 */
static void
daemonize(const struct cfg *c)
{
	int fds[2], fd;
	char buf[PATH_MAX + 1100];
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) == -1)
		die(c, "pipe: %s", strerror(errno));
	switch (fork()) {
	case -1:
		die(c, "fork: %s", strerror(errno));
	case 0:
		break;
	default:
		/* The pidfile is the daemon's now: never remove it here. */
		close(fds[1]);
		while ((n = read(fds[0], buf, sizeof(buf) - 1)) == -1 &&
		    errno == EINTR)
			;
		if (n == 1 && buf[0] == '\n')
			_exit(0);
		if (n > 0) {
			buf[n] = '\0';
			fputs(buf, stderr);
		} else
			fprintf(stderr, "preforkd: the daemon died while "
			    "starting\n");
		_exit(1);
	}
	close(fds[0]);
	launcher_fd = fds[1];
	if (setsid() == -1)
		die(c, "setsid: %s", strerror(errno));
	if (chdir("/") == -1)
		die(c, "chdir /: %s", strerror(errno));
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		die(c, "/dev/null: %s", strerror(errno));
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (fd > STDIN_FILENO)
		close(fd);
}

/*
 * Tell the waiting parent we are up, then drop stderr: once the workers
 * are (master_run() calls this through master_env.started).
 */
static void
daemon_ready(void)
{
	int null;

	if (launcher_fd == -1)
		return;
	(void)write(launcher_fd, "\n", 1);
	close(launcher_fd);
	launcher_fd = -1;
	if ((null = open("/dev/null", O_RDWR)) != -1) {
		dup2(null, STDERR_FILENO);
		if (null != STDERR_FILENO)
			close(null);
	}
}

/* Paths used after chdir("/") must not be relative to where we started. */
static int
absolute(char *path, size_t len, const char *key)
{
	char cwd[PATH_MAX], tmp[PATH_MAX];

	if (path[0] == '/' || path[0] == '\0' || strcmp(path, "off") == 0 ||
	    (strcmp(key, "error_log") == 0 && (strcmp(path, "syslog") == 0 ||
	    strcmp(path, "stderr") == 0)))
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path) >= len)
		return -1;
	strlcpy(path, tmp, len);
	return 0;
}


/*
 * The whole configuration, as at start-up and on every reload: defaults,
 * the file, the flags over it, then the checks.  -1 with one line.
 */
static int	start_dir = -1;	/* relative paths mean relative to this */
static int	detached;	/* daemonized: our cwd is / */

static int	load_config_here(struct cfg *, struct priv *, char *, size_t);

/*
 * Relative paths (the -c file, -r, paths in the file) are relative to
 * the directory preforkd was started in, at start-up and on reload
 * alike, although a daemon lives in /.
 */
static int
load_config(struct cfg *c, struct priv *pv, char *err, size_t errlen)
{
	int rc;

	if (start_dir != -1 && detached && fchdir(start_dir) == -1) {
		snprintf(err, errlen, "cannot return to the start directory: "
		    "%s", strerror(errno));
		return -1;
	}
	rc = load_config_here(c, pv, err, errlen);
	if (detached && chdir("/") == -1)
		log_warn("chdir /");
	return rc;
}

static int
load_config_here(struct cfg *c, struct priv *pv, char *err, size_t errlen)
{
	char msg[PATH_MAX + 512];
	int bad;

	cfg_defaults(c);
	c->foreground = foreground;
	if (conf_file != NULL && cfg_load(c, conf_file, err, errlen) == -1)
		return -1;
	if (apply_flags(c, &bad, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "-%c: %s", bad, msg);
		return -1;
	}
	if (cfg_validate(c, err, errlen) == -1)
		return -1;
	if (priv_resolve(c->user, c->group, pv, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s%s", cfg_where(c, c->group[0] &&
		    strncmp(msg, "group", 5) == 0 ? "group" : "user", 0), msg);
		return -1;
	}
	/* Without root, workers can only stay who we are: say so now. */
	if (geteuid() != 0 && pv->drop && (pv->uid != geteuid() ||
	    pv->gid != getegid())) {
		snprintf(err, errlen, "%suser: cannot switch to %s%s%s without "
		    "root", cfg_where(c, "user", 0), c->user,
		    c->group[0] ? ":" : "", c->group);
		return -1;
	}
	if (geteuid() != 0 && c->chroot) {
		snprintf(err, errlen, "%schroot: needs root",
		    cfg_where(c, "chroot", 0));
		return -1;
	}
	if (absolute(c->pidfile, sizeof(c->pidfile), "pidfile") == -1 ||
	    absolute(c->error_log, sizeof(c->error_log), "error_log") ==
	    -1 || absolute(c->access_log, sizeof(c->access_log),
	    "access_log") == -1) {
		snprintf(err, errlen, "a path is too long");
		return -1;
	}
	if (c->chroot)
		strlcpy(pv->chroot, c->root, sizeof(pv->chroot));
	else
		pv->chroot[0] = '\0';
	/* Certificates and keys: read now, as root, never by a worker. */
	return tls_load(c, tls_keys, err, errlen);
}

/* Our own binary, to exec on SIGUSR2: the path we were started by. */
static const char *
self_path(const char *argv0)
{
	static char path[PATH_MAX];
	const char *env;
	char *dirs, *d, *save;

	if (strchr(argv0, '/') != NULL)
		return realpath(argv0, path) ? path : NULL;
	if ((env = getenv("PATH")) == NULL || (dirs = strdup(env)) == NULL)
		return NULL;
	for (d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save))
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", d, argv0) <
		    sizeof(path) && access(path, X_OK) == 0) {
			free(dirs);
			return path;
		}
	free(dirs);
	return NULL;
}

/*
 * Block the stop signals first of all: a blocked signal stays pending
 * even when our parent left it ignored (a shell does so for background
 * jobs), so a stop sent during start-up is never lost.  master_run()
 * installs the handlers and waits with them unblocked.
 */
static void
block_stop_signals(void)
{
	sigset_t early;

	sigemptyset(&early);
	sigaddset(&early, SIGINT);
	sigaddset(&early, SIGTERM);
	sigaddset(&early, SIGQUIT);
	sigaddset(&early, SIGHUP);
	sigprocmask(SIG_BLOCK, &early, NULL);
}

/*
 * setproctitle() writes over the memory argv points into: a copy of the
 * command line, to exec ourselves with on SIGUSR2.
 */
static char **
copy_args(int argc, char **argv)
{
	char **args;

	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		err(1, "calloc");
	for (int i = 0; i < argc; i++)
		if ((args[i] = strdup(argv[i])) == NULL)
			err(1, "strdup");
	return args;
}

/*
 * A descriptor an upgrading master passed us in environment variable
 * name (upgrade.c), made close-on-exec; -1 when there is none.  The
 * variable goes either way: nothing after us inherits it.
 */
static int
inherited_fd(const char *name)
{
	const char *v = getenv(name);
	int fd = v != NULL ? atoi(v) : -1;

	unsetenv(name);
	if (fd <= 2 || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	return fd;
}

/*
 * The session-ticket keys: the old master's when it upgrades to us (so
 * tickets it issued still resume), else new ones.
 */
static struct tls_keys *
take_tls_keys(void)
{
	struct tls_keys *ks;
	char msg[256];
	int fd = inherited_fd("PREFORKD_TLS_KEYS_FD");

	if ((ks = tls_keys_open(fd, msg, sizeof(msg))) == NULL && fd != -1)
		ks = tls_keys_open(-1, msg, sizeof(msg));
	if (ks == NULL)
		errx(1, "%s", msg);
	return ks;
}

/*
 * The channels' store: our predecessor's on an upgrade (the messages
 * and ids go on), else a new one when the configuration has channels.
 */
static struct chs *
take_channels(const struct cfg *c)
{
	struct chs_limits lim = CHS_LIMITS(c);
	struct chs *s = NULL;
	char msg[256];
	int fd = inherited_fd("PREFORKD_CHANNELS_FD");

	if (fd != -1 && (s = chs_open(fd, &lim, msg, sizeof(msg))) == NULL)
		log_warnx("%s; starting with an empty one", msg);
	if (s == NULL && c->nchannel > 0 &&
	    (s = chs_open(-1, &lim, msg, sizeof(msg))) == NULL)
		die(c, "%s", msg);
	return s;
}

/* An old master that upgrades to us waits on this descriptor. */
static int
take_ready_fd(void)
{
	return inherited_fd("PREFORKD_READY_FD");
}

/* The root, the logs and the pidfile, before anything is bound. */
static void
open_files(struct cfg *c, struct master_env *env)
{
	enum log_level lvl;
	pid_t other;

	if (log_level_parse(c->log_level, &lvl) == 0)
		log_set_level(lvl);
	if (mime_load(c->mime_types) == -1)
		log_warn("%s; using the built-in MIME types", c->mime_types);
	if ((env->rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1)
		die(c, "%sroot: %s: %s", cfg_where(c, "root", 0), c->root,
		    strerror(errno));
	if (alog_open(c->access_log) == -1)
		die(c, "%saccess_log %s: %s", cfg_where(c, "access_log", 0),
		    c->access_log, strerror(errno));
	/* Detached, we log where configured, from the first line on. */
	if (!c->foreground && log_open(c->error_log) == -1)
		die(c, "%serror_log %s: %s", cfg_where(c, "error_log", 0),
		    c->error_log, strerror(errno));
	if (c->pidfile[0] == '\0')
		return;
	if ((env->pfh = pidfile_open(c->pidfile, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			die(c, "already running as pid %ld (pidfile %s)",
			    (long)other, c->pidfile);
		die(c, "%spidfile %s: %s", cfg_where(c, "pidfile", 0),
		    c->pidfile, strerror(errno));
	}
	pfh_held = env->pfh;
}

static const struct cfg	*run_cfg;	/* the configuration we run with */

/* master_env.fail: the workers cannot start. */
static void __attribute__((noreturn))
start_failed(const char *msg)
{
	die(run_cfg, "%s", msg);
}

/* Leave the terminal, unless told not to or an old master started us. */
static void
detach(struct cfg *c)
{
	if (c->foreground)
		return;
	detached = 1;
	if (ready_fd == -1)
		daemonize(c);
	else if (chdir("/") == -1)
		/* Upgraded: detached already, started where the old was. */
		log_warn("chdir /");
}

int
main(int argc, char **argv, char **envp)
{
	static struct cfg cfg;
	struct master_env env = { 0 };
	int lfd[CFG_MAX_LISTEN], check = 0;
	char msg[PATH_MAX + 1024];

	block_stop_signals();
	env.argv = copy_args(argc, argv);
	setproctitle_init(argc, argv, envp);
	log_init("master", 1);
	cfg_defaults(&cfg);
	conf_file = parse_args(argc, argv, &cfg, &check);
	foreground = cfg.foreground;
	if ((env.exe = self_path(env.argv[0])) == NULL)
		log_warnx("cannot find our own binary: SIGUSR2 will fail");
	env.reconfigure = load_config;
	env.ready_fd = ready_fd = take_ready_fd();
	env.pred_fd = inherited_fd("PREFORKD_SUBSCRIBERS_FD");
	env.tls_keys = tls_keys = take_tls_keys();
	ninherited = sock_inherit(inherited, CFG_MAX_LISTEN);
	env.start_dir = start_dir = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (load_config(&cfg, &env.priv, msg, sizeof(msg)) == -1) {
		/* A flag's error comes with the usage, like any bad flag. */
		if (msg[0] == '-' && msg[2] == ':')
			die_usage(msg);
		die(&cfg, "%s", msg);
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	env.chs = take_channels(&cfg);
	open_files(&cfg, &env);
	env.lfd = lfd;
	env.nlfd = bind_all(&cfg, lfd);
	env.cfg = &cfg;
	detach(&cfg);
	if (env.pfh != NULL && pidfile_write(env.pfh) == -1)
		die(&cfg, "writing pidfile %s: %s", cfg.pidfile,
		    strerror(errno));
	if (!env.priv.drop && geteuid() == 0)
		log_warnx("no user configured: workers run as root");
	env.worker = worker_main;
	/* The launcher waits until the workers are up, or fail. */
	env.launcher_fd = launcher_fd;
	env.started = daemon_ready;
	run_cfg = &cfg;
	env.fail = start_failed;
	return master_run(&env);
}
