/*
 * Every client-supplied field is escaped with strnvis(3) (C-style, and
 * double quotes too), so no control byte or quote from a request ever
 * reaches the log raw.  Each line is one write(2) to an O_APPEND file:
 * lines from many workers never interleave.
 *
 * A line that cannot be written (disk full, a file size limit, a pipe
 * nobody reads) is lost, but not silently: each loss is counted in the
 * worker's scoreboard slot, which the status page shows, and the error
 * log says how many were lost, at most once a minute per worker so that
 * a full disk does not also fill the error log.
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
#include "clock.h"
#include "log.h"
#include "sb.h"

/*
 * Client fields keep their first ALOG_FIELD_MAX bytes (preforkd.conf(5)
 * says so); each escapes to at most 4 bytes ("\ooo").
 */
#define ALOG_FIELD_MAX	1023
#define FIELD_BUF	(ALOG_FIELD_MAX * 4 + 1)
/* Three such fields, the address, the time and the figures. */
#define LINE_BUF	(3 * FIELD_BUF + 512)
#define REPORT_MS	60000	/* at most one loss report a minute */

static int		 afd = -1;
static char		 apath[4096];
static struct sb_slot	*aslot;		/* where losses are counted */
static unsigned long long lost_total, lost_unreported;
static int64_t		 reported_at;
static int		 reported;

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

void
alog_count_in(struct sb_slot *slot)
{
	aslot = slot;
}

/*
 * A line was lost: count it, and say so in the error log unless that
 * was done less than REPORT_MS ago; the next report names every line
 * lost since.  got < 0: write(2) failed with err; else it wrote got of
 * want bytes.
 */
static void
lost(ssize_t got, size_t want, int err)
{
	int64_t now = clock_ms();
	char why[96];

	lost_total++;
	lost_unreported++;
	if (aslot != NULL)
		sb_count_log_failure(aslot);
	if (reported && now - reported_at < REPORT_MS)
		return;
	if (got < 0)
		snprintf(why, sizeof(why), "%s", strerror(err));
	else
		snprintf(why, sizeof(why), "short write, %zd of %zu bytes", got,
		    want);
	log_warnx("access log %s: %llu line%s lost (%s); %llu in all, "
	    "reported at most once a minute", apath, lost_unreported,
	    lost_unreported == 1 ? "" : "s", why, lost_total);
	lost_unreported = 0;
	reported_at = now;
	reported = 1;
}

/*
 * Escape n bytes of s into dst (a quoted log field); "-" when absent.
 * strnvisx takes a length, so an embedded NUL is escaped, not an end.
 */
static void
esc(char dst[FIELD_BUF], const char *s, size_t n)
{
	if (s == NULL) {
		snprintf(dst, FIELD_BUF, "-");
		return;
	}
	if (n > ALOG_FIELD_MAX)
		n = ALOG_FIELD_MAX;
	if (strnvisx(dst, FIELD_BUF, s, n, VIS_CSTYLE | VIS_TAB | VIS_NL |
	    VIS_DQ | VIS_OCTAL) == -1)
		snprintf(dst, FIELD_BUF, "?");
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
    size_t agentlen, const char *tail)
{
	char r[FIELD_BUF], ref[FIELD_BUF], ua[FIELD_BUF], line[LINE_BUF];
	char b[24];
	ssize_t w;
	int n;

	if (afd == -1)
		return;
	esc(r, req, reqlen);
	esc(ref, referer, reflen);
	esc(ua, agent, agentlen);
	if (bytes > 0)
		snprintf(b, sizeof(b), "%lld", bytes);
	else
		snprintf(b, sizeof(b), "-");
	n = snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %s \"%s\" "
	    "\"%s\"%s%s%s\n", peer, stamp(), r, status, b, ref, ua,
	    tail ? " \"" : "", tail ? tail : "", tail ? "\"" : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	while ((w = write(afd, line, (size_t)n)) == -1 && errno == EINTR)
		;
	/*
	 * A short write is not retried: the rest could land after another
	 * worker's line.
	 */
	if (w != n)
		lost(w, (size_t)n, errno);
}
