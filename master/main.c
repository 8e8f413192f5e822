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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "master.h"
#include "mime.h"
#include "sock.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: preforkd [-ftVh] [-l addr:port]... [-r root] [-n workers]\n"
	    "                [-p pidfile] [-T shutdown_timeout] "
	    "[-o keyword=value]...\n");
}

static void
bad_flag(int opt, const char *msg)
{
	fprintf(stderr, "preforkd: -%c: %s\n", opt, msg);
	usage(stderr);
	exit(1);
}

static void
set_flag(struct cfg *c, int opt, const char *key, const char *val)
{
	char err[512];

	if (cfg_set(c, key, val, err, sizeof(err)) == -1)
		bad_flag(opt, err);
}

static void
set_option(struct cfg *c, const char *kv)
{
	char key[64], err[512];
	const char *eq = strchr(kv, '=');

	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof(key))
		bad_flag('o', "expected keyword=value");
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	if (cfg_set(c, key, eq + 1, err, sizeof(err)) == -1)
		bad_flag('o', err);
}

static void
parse_args(int argc, char **argv, struct cfg *c, int *check)
{
	int ch;

	while ((ch = getopt(argc, argv, ":fhl:n:o:p:r:tT:V")) != -1) {
		switch (ch) {
		case 'f':
			c->foreground = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'l':
			set_flag(c, ch, "listen", optarg);
			break;
		case 'n':
			set_flag(c, ch, "workers", optarg);
			break;
		case 'o':
			set_option(c, optarg);
			break;
		case 'p':
			set_flag(c, ch, "pidfile", optarg);
			break;
		case 'r':
			set_flag(c, ch, "root", optarg);
			break;
		case 't':
			*check = 1;
			break;
		case 'T':
			set_flag(c, ch, "shutdown_timeout", optarg);
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
}

static int
bind_all(struct cfg *c, int *lfd)
{
	struct sockaddr_storage ss;
	char name[128];

	for (size_t i = 0; i < c->nlisten; i++) {
		if (sock_parse(c->listen[i], &ss) == -1)
			errx(1, "listen: invalid address '%s'", c->listen[i]);
		if ((lfd[i] = sock_listen(&ss, c->backlog)) == -1)
			err(1, "listen %s", c->listen[i]);
		/* Several listeners are polled, so accept must not block. */
		if (c->nlisten > 1 &&
		    fcntl(lfd[i], F_SETFL, O_NONBLOCK) == -1)
			err(1, "fcntl");
		sock_name(lfd[i], name, sizeof(name));
		log_info("listening on %s", name);
	}
	return (int)c->nlisten;
}

/* Detach from the terminal; the parent exits 0 since we already listen. */
static void
daemonize(void)
{
	int fd;

	switch (fork()) {
	case -1:
		err(1, "fork");
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1)
		err(1, "setsid");
	if (chdir("/") == -1)
		err(1, "chdir /");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		err(1, "/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

int
main(int argc, char **argv)
{
	static struct cfg cfg;
	struct master_env env = { 0 };
	int lfd[CFG_MAX_LISTEN], check = 0;
	enum log_level lvl;
	char msg[512];
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

	log_init("master", 1);
	cfg_defaults(&cfg);
	parse_args(argc, argv, &cfg, &check);
	if (cfg_validate(&cfg, msg, sizeof(msg)) == -1)
		errx(1, "%s", msg);
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
		err(1, "root %s", cfg.root);
	if (cfg.pidfile[0] != '\0') {
		env.pfh = pidfile_open(cfg.pidfile, 0644, &other);
		if (env.pfh == NULL) {
			if (errno == EEXIST)
				errx(1, "already running as pid %ld (pidfile %s)",
				    (long)other, cfg.pidfile);
			err(1, "pidfile %s", cfg.pidfile);
		}
	}
	env.lfd = lfd;
	env.nlfd = bind_all(&cfg, lfd);
	env.cfg = &cfg;
	if (!cfg.foreground) {
		if (log_open(cfg.error_log) == -1)
			err(1, "error_log %s", cfg.error_log);
		daemonize();
	}
	if (env.pfh != NULL && pidfile_write(env.pfh) == -1)
		log_warn("writing pidfile %s", cfg.pidfile);
	return master_run(&env);
}
