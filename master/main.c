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

static void
bad_flag(int opt, const char *msg)
{
	fprintf(stderr, "preforkd: -%c: %s\n", opt, msg);
	usage(stderr);
	exit(1);
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

static void
apply_flags(struct cfg *c)
{
	char key[64], err[512];
	int listen_flag = 0;

	for (int i = 0; i < nflags; i++) {
		const struct flag *f = &flags[i];
		const char *k = f->key, *v = f->val;

		if (f->opt == 'o') {
			const char *eq = strchr(v, '=');

			if (eq == NULL || eq == v ||
			    (size_t)(eq - v) >= sizeof(key))
				bad_flag('o', "expected keyword=value");
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
		if (cfg_set(c, k, v, err, sizeof(err)) == -1)
			bad_flag(f->opt, err);
	}
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
 * Exit 1 with one line.  An error located in the configuration file is
 * printed as FILE:LINE: message, the way compilers say it; others are
 * prefixed with our name.
 */
static void
die(const struct cfg *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static struct pidfh	*pfh_held;	/* removed again if start-up fails */

static void
die(const struct cfg *c, const char *fmt, ...)
{
	char msg[PATH_MAX + 1024];
	size_t fl = strlen(c->file);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fl > 0 && strncmp(msg, c->file, fl) == 0 && msg[fl] == ':')
		fprintf(stderr, "%s\n", msg);
	else
		fprintf(stderr, "preforkd: %s\n", msg);
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
		if ((lfd[i] = sock_listen(&ss, c->backlog)) == -1)
			die(c, "%slisten %s: %s", cfg_where(c, "listen", i),
			    c->listen[i], strerror(errno));
		/* Several listeners are polled, so accept must not block. */
		if (c->nlisten > 1 &&
		    fcntl(lfd[i], F_SETFL, O_NONBLOCK) == -1)
			err(1, "fcntl");
		sock_name(lfd[i], name, sizeof(name));
		log_info("listening on %s", name);
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
static void
absolute(struct cfg *c, char *path, size_t len, const char *key)
{
	char cwd[PATH_MAX], tmp[PATH_MAX];

	if (path[0] == '/' || path[0] == '\0' || strcmp(path, "off") == 0 ||
	    (strcmp(key, "error_log") == 0 && (strcmp(path, "syslog") == 0 ||
	    strcmp(path, "stderr") == 0)))
		return;
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path) >= len)
		errx(1, "%s%s: path too long", cfg_where(c, key, 0), key);
	strlcpy(path, tmp, len);
}

int
main(int argc, char **argv, char **envp)
{
	static struct cfg cfg;
	struct master_env env = { 0 };
	int lfd[CFG_MAX_LISTEN], check = 0, ready = -1;
	enum log_level lvl;
	const char *file;
	char msg[PATH_MAX + 1024];
	pid_t other;
	sigset_t early;

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
	setproctitle_init(argc, argv, envp);

	log_init("master", 1);
	cfg_defaults(&cfg);
	file = parse_args(argc, argv, &cfg, &check);
	/* One line: FILE:LINE: message, as compilers say it. */
	if (file != NULL && cfg_load(&cfg, file, msg, sizeof(msg)) == -1) {
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	apply_flags(&cfg);
	if (cfg_validate(&cfg, msg, sizeof(msg)) == -1)
		die(&cfg, "%s", msg);
	if (priv_resolve(cfg.user, cfg.group, &env.priv, msg, sizeof(msg))
	    == -1)
		die(&cfg, "%s%s", cfg_where(&cfg, cfg.group[0] &&
		    strncmp(msg, "group", 5) == 0 ? "group" : "user", 0), msg);
	/* Without root, workers can only stay who we are: say so now. */
	if (geteuid() != 0 && env.priv.drop && (env.priv.uid != geteuid() ||
	    env.priv.gid != getegid()))
		die(&cfg, "%suser: cannot switch to %s%s%s without root",
		    cfg_where(&cfg, "user", 0), cfg.user, cfg.group[0] ? ":" : "",
		    cfg.group);
	if (geteuid() != 0 && cfg.chroot)
		die(&cfg, "%schroot: needs root", cfg_where(&cfg, "chroot", 0));
	absolute(&cfg, cfg.pidfile, sizeof(cfg.pidfile), "pidfile");
	absolute(&cfg, cfg.error_log, sizeof(cfg.error_log), "error_log");
	absolute(&cfg, cfg.access_log, sizeof(cfg.access_log), "access_log");
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	if (cfg.chroot)
		strlcpy(env.priv.chroot, cfg.root, sizeof(env.priv.chroot));
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
	if (!cfg.foreground)
		ready = daemonize();
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
