/*
 * Every client-supplied field is escaped with strnvis(3) (C-style, and
 * double quotes too), so no control byte or quote from a request ever
 * reaches the log raw.  Each line is one write(2) to an O_APPEND file:
 * lines from many workers never interleave.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vis.h>

#include "alog.h"

static int	afd = -1;
static char	apath[4096];

int
alog_open(const char *path)
{
	int fd;

	if (strcmp(path, "off") == 0) {
		afd = -1;
		apath[0] = '\0';
		return 0;
	}
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640))
	    == -1)
		return -1;
	if (afd != -1)
		close(afd);
	afd = fd;
	snprintf(apath, sizeof(apath), "%s", path);
	return 0;
}

int
alog_reopen(void)
{
	return apath[0] == '\0' ? 0 : alog_open(apath);
}

int
alog_fd(void)
{
	return afd;
}

int
alog_enabled(void)
{
	return afd != -1;
}

void
alog_adopt(int fd)
{
	if (afd == -1) {
		close(fd);
		return;
	}
	dup2(fd, afd);
	close(fd);
}

/*
 * Escape n bytes of s into dst (a quoted log field); "-" when absent.
 * strnvisx takes a length, so an embedded NUL is escaped, not an end.
 */
static void
esc(char *dst, size_t dstlen, const char *s, size_t n)
{
	if (s == NULL) {
		snprintf(dst, dstlen, "-");
		return;
	}
	/* Each byte escapes to at most 4: cap the input to what fits. */
	if (n > (dstlen - 1) / 4)
		n = (dstlen - 1) / 4;
	if (strnvisx(dst, dstlen, s, n, VIS_CSTYLE | VIS_TAB | VIS_NL |
	    VIS_DQ | VIS_OCTAL) == -1)
		snprintf(dst, dstlen, "?");
}

static const char *
stamp(void)
{
	static char cached[40];
	static time_t last = -1;
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != last) {
		localtime_r(&ts.tv_sec, &tm);
		strftime(cached, sizeof(cached), "%d/%b/%Y:%H:%M:%S %z", &tm);
		last = ts.tv_sec;
	}
	return cached;
}

void
alog_write(const char *peer, const char *req, size_t reqlen, int status,
    long long bytes, const char *referer, size_t reflen, const char *agent,
    size_t agentlen)
{
	/* Fields keep up to 1023 client bytes, each escaping to <= 4. */
	char r[4096], ref[4096], ua[4096], line[12800], b[24];
	int n;

	if (afd == -1)
		return;
	esc(r, sizeof(r), req, reqlen);
	esc(ref, sizeof(ref), referer, reflen);
	esc(ua, sizeof(ua), agent, agentlen);
	if (bytes > 0)
		snprintf(b, sizeof(b), "%lld", bytes);
	else
		snprintf(b, sizeof(b), "-");
	n = snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %s \"%s\" "
	    "\"%s\"\n", peer, stamp(), r, status, b, ref, ua);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	while (write(afd, line, (size_t)n) == -1 && errno == EINTR)
		;
}
