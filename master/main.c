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
#include "log.h"
#include "master.h"
#include "mime.h"
#include "priv.h"
#include "sock.h"

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

/*
 * Sockets handed over by an old master (or systemd socket activation):
 * LISTEN_FDS sockets from fd 3 on, meant for us if LISTEN_PID is ours.
 */
static int	inherited[CFG_MAX_LISTEN];
static int	ninherited;

static void
take_inherited(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	int count;

	if (pid == NULL || n == NULL || atol(pid) != (long)getpid())
		goto out;
	count = atoi(n);
	for (int i = 0; i < count && i < CFG_MAX_LISTEN; i++) {
		int fd = 3 + i;

		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
			continue;
		inherited[ninherited++] = fd;
	}
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* An inherited socket bound to ss (any port if ss asks for port 0). */
static int
use_inherited(const struct sockaddr_storage *ss)
{
	for (int i = 0; i < ninherited; i++) {
		struct sockaddr_storage cur;
		socklen_t sl = sizeof(cur);
		struct sockaddr_storage want = *ss;

		if (inherited[i] == -1 || getsockname(inherited[i],
		    (struct sockaddr *)&cur, &sl) == -1)
			continue;
		/* Port 0 was "any": the old master's choice stands. */
		if (want.ss_family == AF_INET &&
		    ((struct sockaddr_in *)&want)->sin_port == 0)
			((struct sockaddr_in *)&want)->sin_port =
			    ((struct sockaddr_in *)&cur)->sin_port;
		if (want.ss_family == AF_INET6 &&
		    ((struct sockaddr_in6 *)&want)->sin6_port == 0)
			((struct sockaddr_in6 *)&want)->sin6_port =
			    ((struct sockaddr_in6 *)&cur)->sin6_port;
		if (sock_same(&want, &cur)) {
			int fd = inherited[i];

			inherited[i] = -1;
			return fd;
		}
	}
	return -1;
}

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

static void
die(const struct cfg *c, const char *fmt, ...)
{
	char msg[PATH_MAX + 1024];
	const char *file = c->file[0] ? c->file : conf_file ? conf_file : "";
	size_t fl = strlen(file);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fl > 0 && strncmp(msg, file, fl) == 0 && msg[fl] == ':')
		fprintf(stderr, "%s\n", msg);
	else
		fprintf(stderr, "preforkd: %s\n", msg);
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
		if ((lfd[i] = use_inherited(&ss)) != -1) {
			(void)listen(lfd[i], c->backlog);
		} else if ((lfd[i] = sock_listen(&ss, c->backlog)) == -1)
			die(c, "%slisten %s: %s", cfg_where(c, "listen", i),
			    c->listen[i], strerror(errno));
		/* Several listeners are polled, so accept must not block. */
		if (fcntl(lfd[i], F_SETFL, c->nlisten > 1 ? O_NONBLOCK : 0)
		    == -1)
			err(1, "fcntl");
		sock_name(lfd[i], name, sizeof(name));
		log_info("listening on %s", name);
	}
	/* Handed-over sockets the configuration no longer names. */
	for (int i = 0; i < ninherited; i++)
		if (inherited[i] != -1) {
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
static int
daemonize(void)
{
	int fds[2], fd;
	char buf[512];
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) == -1)
		err(1, "pipe");
	switch (fork()) {
	case -1:
		err(1, "fork");
	case 0:
		break;
	default:
		close(fds[1]);
		while ((n = read(fds[0], buf, sizeof(buf) - 1)) == -1 &&
		    errno == EINTR)
			;
		if (n == 1 && buf[0] == '\n')
			_exit(0);
		if (n > 0) {
			buf[n] = '\0';
			fprintf(stderr, "preforkd: %s\n", buf);
		} else
			fprintf(stderr, "preforkd: the daemon died while "
			    "starting\n");
		_exit(1);
	}
	close(fds[0]);
	if (setsid() == -1)
		err(1, "setsid");
	if (chdir("/") == -1)
		err(1, "chdir /");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		err(1, "/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (fd > STDIN_FILENO)
		close(fd);
	return fds[1];
}

/* Tell the waiting parent we are up (or why not), then drop stderr. */
static void
daemon_ready(int fd, const char *failure)
{
	int null;

	if (fd == -1)
		return;
	if (failure != NULL)
		(void)write(fd, failure, strlen(failure));
	else
		(void)write(fd, "\n", 1);
	close(fd);
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
	return 0;
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

int
main(int argc, char **argv, char **envp)
{
	static struct cfg cfg;
	struct master_env env = { 0 };
	int lfd[CFG_MAX_LISTEN], check = 0, ready = -1;
	enum log_level lvl;
	char msg[PATH_MAX + 1024];
	pid_t other;
	sigset_t early;
	char **args;

	/*
	 * Block the stop signals first of all: a blocked signal stays
	 * pending even when our parent left it ignored (a shell does so for
	 * background jobs), so a stop sent during start-up is never lost.
	 * master_run() installs the handlers and waits with them unblocked.
	 */
	sigemptyset(&early);
	sigaddset(&early, SIGINT);
	sigaddset(&early, SIGTERM);
	sigaddset(&early, SIGQUIT);
	sigaddset(&early, SIGHUP);
	sigprocmask(SIG_BLOCK, &early, NULL);
	/*
	 * setproctitle() writes over the memory argv points into: keep a
	 * copy of the command line to exec ourselves with on SIGUSR2.
	 */
	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		err(1, "calloc");
	for (int i = 0; i < argc; i++)
		if ((args[i] = strdup(argv[i])) == NULL)
			err(1, "strdup");
	setproctitle_init(argc, argv, envp);

	log_init("master", 1);
	cfg_defaults(&cfg);
	conf_file = parse_args(argc, argv, &cfg, &check);
	foreground = cfg.foreground;
	if ((env.exe = self_path(args[0])) == NULL)
		log_warnx("cannot find our own binary: SIGUSR2 will fail");
	env.argv = args;
	env.reconfigure = load_config;
	env.ready_fd = -1;
	if (getenv("PREFORKD_READY_FD") != NULL) {
		ready_fd = atoi(getenv("PREFORKD_READY_FD"));
		unsetenv("PREFORKD_READY_FD");
		if (fcntl(ready_fd, F_SETFD, FD_CLOEXEC) == -1)
			ready_fd = -1;
		env.ready_fd = ready_fd;
	}
	take_inherited();
	start_dir = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	env.start_dir = start_dir;
	if (load_config(&cfg, &env.priv, msg, sizeof(msg)) == -1) {
		/* A flag's error comes with the usage, like any bad flag. */
		if (msg[0] == '-' && msg[2] == ':') {
			die_usage(msg);
		}
		die(&cfg, "%s", msg);
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	if (log_level_parse(cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (mime_load(cfg.mime_types) == -1)
		log_warn("%s; using the built-in MIME types", cfg.mime_types);
	if ((env.rootfd = open(cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
	    == -1)
		die(&cfg, "%sroot: %s: %s", cfg_where(&cfg, "root", 0), cfg.root,
		    strerror(errno));
	if (alog_open(cfg.access_log) == -1)
		die(&cfg, "%saccess_log %s: %s", cfg_where(&cfg, "access_log",
		    0), cfg.access_log, strerror(errno));
	/* Detached, we log where configured, from the first line on. */
	if (!cfg.foreground && log_open(cfg.error_log) == -1)
		die(&cfg, "%serror_log %s: %s", cfg_where(&cfg, "error_log", 0),
		    cfg.error_log, strerror(errno));
	if (cfg.pidfile[0] != '\0') {
		env.pfh = pidfile_open(cfg.pidfile, 0644, &other);
		if (env.pfh == NULL) {
			if (errno == EEXIST)
				die(&cfg, "already running as pid %ld (pidfile "
				    "%s)", (long)other, cfg.pidfile);
			die(&cfg, "%spidfile %s: %s", cfg_where(&cfg,
			    "pidfile", 0), cfg.pidfile, strerror(errno));
		}
		pfh_held = env.pfh;
	}
	env.lfd = lfd;
	env.nlfd = bind_all(&cfg, lfd);
	env.cfg = &cfg;
	/* An upgraded master is detached already: its parent is the old one. */
	if (!cfg.foreground && ready_fd == -1) {
		ready = daemonize();
		detached = 1;
	} else if (!cfg.foreground) {
		/* Upgraded daemon: detached already, started where the old was. */
		detached = 1;
		if (chdir("/") == -1)
			log_warn("chdir /");
	}
	if (env.pfh != NULL && pidfile_write(env.pfh) == -1) {
		snprintf(msg, sizeof(msg), "writing pidfile %s: %s",
		    cfg.pidfile, strerror(errno));
		if (ready != -1)
			daemon_ready(ready, msg);
		die(&cfg, "%s", msg);
	}
	if (!env.priv.drop && geteuid() == 0)
		log_warnx("no user configured: workers run as root");
	daemon_ready(ready, NULL);
	return master_run(&env);
}
