/*
 * Error log.  Every line names the time, the level, the process role and
 * its pid, and is written with a single write(2) so that lines from the
 * master and many workers sharing one file never interleave.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char	*log_role = "preforkd";
static int		 log_fd = STDERR_FILENO;
static int		 log_syslog;
static char		 log_path[4096];
static enum log_level	 log_lvl = LOG_LVL_INFO;

static const char *const lvl_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *role, int to_stderr)
{
	log_role = role;
	log_fd = to_stderr ? STDERR_FILENO : -1;
}

void
log_set_role(const char *role)
{
	log_role = role;
}

void
log_set_level(enum log_level lvl)
{
	log_lvl = lvl;
}

int
log_level_parse(const char *s, enum log_level *lvl)
{
	for (size_t i = 0; i < sizeof(lvl_names) / sizeof(lvl_names[0]); i++)
		if (strcmp(s, lvl_names[i]) == 0) {
			*lvl = (enum log_level)i;
			return 0;
		}
	return -1;
}

static int
open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
log_open(const char *target)
{
	if (strcmp(target, "syslog") == 0) {
		openlog("preforkd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog = 1;
		log_fd = -1;
		return 0;
	}
	if (strcmp(target, "stderr") == 0) {
		log_fd = STDERR_FILENO;
		return 0;
	}
	if (strcmp(target, "off") == 0) {
		log_fd = -1;
		return 0;
	}
	int fd = open_file(target);
	if (fd == -1)
		return -1;
	if (log_fd > STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	log_syslog = 0;
	snprintf(log_path, sizeof(log_path), "%s", target);
	return 0;
}

int
log_reopen(void)
{
	if (log_path[0] == '\0')
		return 0;
	int fd = open_file(log_path);
	if (fd == -1)
		return -1;
	/* dup2 keeps the descriptor number, so no line is ever lost. */
	if (dup2(fd, log_fd) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
log_file_fd(void)
{
	return log_path[0] != '\0' ? log_fd : -1;
}

void
log_adopt(int fd)
{
	if (log_path[0] != '\0' && log_fd > STDERR_FILENO)
		dup2(fd, log_fd);
	close(fd);
}

static void
vlog(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024], line[1200], stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	if (lvl > log_lvl)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (errnum && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnum));
	if (log_syslog) {
		syslog(prio[lvl], "%s[%ld]: %s", log_role, (long)getpid(), msg);
		return;
	}
	if (log_fd == -1)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", &tm);
	n = snprintf(line, sizeof(line), "%s [%s] %s[%ld]: %s\n", stamp,
	    lvl_names[lvl], log_role, (long)getpid(), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line: atomic for O_APPEND files and pipes. */
	while (write(log_fd, line, (size_t)n) == -1 && errno == EINTR)
		;
}

#define LOG_FN(name, lvl, useerr)				\
void								\
name(const char *fmt, ...)					\
{								\
	int saved = errno;					\
	va_list ap;						\
	va_start(ap, fmt);					\
	vlog(lvl, useerr ? saved : 0, fmt, ap);			\
	va_end(ap);						\
	errno = saved;						\
}

LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
