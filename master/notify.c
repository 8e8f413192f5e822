/*
 * sd_notify(3) by hand: the protocol is one datagram of "KEY=VALUE"
 * lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a name starting
 * with '@' is in the abstract namespace), and is documented as stable;
 * libsystemd is not needed for it.  The status file is for init scripts,
 * which cannot listen to that socket.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static int			 nfd = -1;
static struct sockaddr_un	 nsa;
static socklen_t		 nsalen;
static char			 npath[sizeof(nsa.sun_path) + 1];
static int			 is_main_pid;
static long long		 wd_usec;	/* 0: no watchdog */
static int64_t			 wd_next;
static char			 state_path[PATH_MAX + 16];
static unsigned			 state_seq;

static void
take_socket(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	size_t n;

	if (s == NULL || (n = strlen(s)) < 2 || (s[0] != '/' && s[0] != '@'))
		return;		/* unset, or a kind we do not speak */
	if (n >= sizeof(nsa.sun_path)) {
		log_warnx("NOTIFY_SOCKET: too long a path; not notifying");
		return;
	}
	strlcpy(npath, s, sizeof(npath));
	nsa.sun_family = AF_UNIX;
	memcpy(nsa.sun_path, s, n);
	if (s[0] == '@')
		nsa.sun_path[0] = '\0';	/* abstract: no NUL at the end */
	nsalen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (s[0] == '/'));
	if ((nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		log_warn("NOTIFY_SOCKET: socket");
}

void
notify_init(const char *pidfile, int is_main)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");

	take_socket();
	if (nfd != -1 && us != NULL && (pid == NULL || atol(pid) == getpid()))
		wd_usec = atoll(us) > 0 ? atoll(us) : 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (pidfile[0] != '\0')
		snprintf(state_path, sizeof(state_path), "%s.status", pidfile);
	notify_main(is_main);
}

void
notify_main(int on)
{
	is_main_pid = on;
	wd_next = 0;	/* the first ping once due, from now */
}

void
notify(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (nfd == -1 || !is_main_pid)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)strlen(buf);
	if (sendto(nfd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&nsa, nsalen) == -1)
		log_debug("NOTIFY_SOCKET %s: %s", npath, strerror(errno));
}

void
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify("RELOADING=1\nMONOTONIC_USEC=%lld", (long long)ts.tv_sec *
	    1000000 + ts.tv_nsec / 1000);
}

int64_t
notify_watchdog(int64_t now)
{
	int64_t every = wd_usec / 2000 > 0 ? wd_usec / 2000 : 1;

	if (wd_usec == 0 || !is_main_pid)
		return INT64_MAX;
	if (wd_next == 0)
		wd_next = now + every;
	if (now >= wd_next) {
		notify("WATCHDOG=1");
		wd_next = now + every;
	}
	return wd_next - now;
}

void
notify_state(const char *event, const char *fmt, ...)
{
	char line[1024], text[900], tmp[sizeof(state_path) + 24];
	va_list ap;
	int fd, n, ok;

	if (state_path[0] == '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* One line, whatever the reason said. */
	text[strcspn(text, "\n")] = '\0';
	n = snprintf(line, sizeof(line), "%u %ld %s %s\n", ++state_seq,
	    (long)getpid(), event, text);
	snprintf(tmp, sizeof(tmp), "%s.%ld", state_path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644))
	    == -1) {
		log_warn("status file %s", tmp);
		return;
	}
	ok = write(fd, line, (size_t)n) == n;
	if (close(fd) == -1)
		ok = 0;
	if (!ok || rename(tmp, state_path) == -1) {
		log_warn("status file %s", state_path);
		unlink(tmp);
	}
}

void
notify_state_remove(void)
{
	if (state_path[0] != '\0' && unlink(state_path) == -1 &&
	    errno != ENOENT)
		log_warn("removing %s", state_path);
}

void
notify_forget(void)
{
	if (nfd != -1)
		close(nfd);
	nfd = -1;
}

void
notify_exec_env(void)
{
	char buf[32];

	if (npath[0] == '\0')
		return;
	setenv("NOTIFY_SOCKET", npath, 1);
	if (wd_usec == 0)
		return;
	snprintf(buf, sizeof(buf), "%lld", wd_usec);
	setenv("WATCHDOG_USEC", buf, 1);
	/* Its pid: the exec keeps it. */
	snprintf(buf, sizeof(buf), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", buf, 1);
}
