/*
 * chanload: a pub/sub channel load client for bench/run (preforkd's
 * "channel PREFIX", nginx + nchan).
 *
 *   chanload [-m run|hold|check] [-s subs] [-n channels] [-p prefix]
 *            [-r rate] [-P publishers] [-d seconds] [-b bytes]
 *            [-W drain] [-R retry_ms] [-T timeout] [-v] host port
 *
 * Subscribers: -s Server-Sent Events connections (GET PREFIX-K with
 * Accept: text/event-stream, K = subscriber % channels), parsing "id:",
 * "event:", "data:" and "retry:" as EventSource does.  A stream that ends
 * (EOF, reset, or after an "event: reconnect" or "event: close") is
 * reconnected as EventSource would: after the last "retry:" the server
 * sent (-R ms, default 1000, before any), with Last-Event-ID set to the
 * last id received.
 * Publishers: -P keep-alive connections (default 1) POSTing to PREFIX-K,
 * K round-robin over the channels; one request in flight per connection.
 * -r rate (messages/s, in total): message k is due at start + k/rate and
 * goes out on the first idle publisher connection; -r 0: flat out, each
 * connection sends its next message as soon as the previous answer came.
 * A message's body is one line "k=K c=C t=NS " padded with 'x' to -b bytes
 * (default 64): its number, its channel and its send time (CLOCK_MONOTONIC
 * ns), from which the subscriber side computes the delivery latency.
 *
 * Modes:
 *   run    connect every subscriber (ready: the first byte of its stream
 *          came), wait 0.2 s, print "chanload publishing", publish for -d
 *          seconds, then wait (at most -W s, default 5) until every
 *          subscriber has every message that was accepted (2xx) on its
 *          channel and is connected again if its stream ended; report.
 *   hold   connect the subscribers, print "chanload ready held=N
 *          setup_ms=M", keep them for -d seconds or until SIGTERM/SIGINT.
 *   check  one subscriber, three messages: exits 0 when they came.
 *
 * Output: one line of key=value, e.g.
 *   chanload mode=run subs=1000 channels=1 ready=1000 published=500
 *   accepted=500 refused=0 pub_errors=0 expected=500000 delivered=500000
 *   lost=0 dup=0 ooo=0 misrouted=0 delivered_per_s=99800 p50_ms=0.9 ...
 * expected: the sum over the ready subscribers of the messages accepted on
 * their channel; delivered: distinct messages received; lost = expected -
 * accepted ones received (never received, even after a reconnection);
 * dup: a message received again; ooo: an event whose id is not greater than
 * the previous one on that subscriber (ids compared as tuples of numbers:
 * preforkd's N, nchan's T:I); misrouted: a message of another channel.
 * refused: 429/503/507 answers; pub_errors: other statuses, connections
 * lost with a request in flight (not known to be accepted: not expected).
 * drops: streams the server ended (or lost) while the run went on;
 * reconnects: streams reopened; ev_reconnect / ev_close: those events.
 * ready_end: subscribers streaming at the end.  -v: every subscriber not
 * streaming at the end, or short of messages, on stderr.
 * Latency: from the send time in the body to the event's arrival, first
 * receipt only; log-linear histogram (1/64 relative precision).
 *
 * Safety: IPv4 loopback only, at most MAX_SUBS subscribers, MAX_SECONDS
 * seconds.  One thread, non-blocking sockets, epoll; C11 and POSIX, libc
 * only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS	20000
#define MAX_PUBS	64
#define MAX_SECONDS	600
#define MAX_BODY	16384
#define MAX_CHANNELS	10000
#define MAX_CONNECTING	200	/* subscribers opening at once */
#define SETTLE_NS	200000000LL
#define RBUF		(MAX_BODY + 8192)
#define NSUB		64	/* histogram: sub-buckets per power of two */
#define NBUCKET		(2 * NSUB + 34 * NSUB)	/* 1 us .. 2^40 us */

enum mode { M_RUN, M_HOLD, M_CHECK };
enum sst { SS_WAIT, SS_CONNECTING, SS_SENDING, SS_HEADERS, SS_STREAM };
enum pst { PS_DOWN, PS_CONNECTING, PS_IDLE, PS_BUSY };

struct hist {
	uint64_t	b[NBUCKET];
	uint64_t	n;
	double		max;
};

struct sub {
	int		fd;
	enum sst	st;
	int		ch;
	int		ready;		/* its first stream byte came once */
	int		counted;	/* ready when publishing started */
	int64_t		wake;		/* SS_WAIT: when to reconnect */
	int64_t		since;		/* this step's start */
	int		retry_ms;
	char		req[512];
	size_t		rlen, roff;	/* request: length, sent */
	char		*in;		/* headers, then undecoded stream */
	size_t		inlen;
	int		chunked;
	int		cstate;		/* 0 size line, 1 data, 2 CRLF after */
	uint64_t	cleft;
	char		cline[32];
	size_t		clen;
	char		*line;		/* the SSE line being read */
	size_t		llen;
	int		lskip;		/* too long: ignored to its end */
	char		lastid[64];	/* EventSource's last event id */
	char		evid[64];
	int		has_evid;
	char		event[32];
	char		*data;
	size_t		dlen;
	int		has_data;
	uint64_t	prev[4];	/* the previous event's id, as numbers */
	int		nprev;
	uint8_t		*seen;		/* bit per message of its channel */
	size_t		seencap;	/* bytes */
	uint64_t	got;		/* distinct messages */
	unsigned	drops, reconnects, evrc;	/* for -v */
};

struct pub {
	int		fd;
	enum pst	st;
	int64_t		k;		/* the message in flight */
	int64_t		sent;
	char		req[MAX_BODY + 512];
	size_t		rlen, roff;
	char		in[8192];
	size_t		inlen;
};

static enum mode	 mode = M_RUN;
static int		 nsubs = 100, nchan = 1, npubs = 1, body_size = 64;
static double		 rate = 100, duration = 5, drain = 5, timeout_s = 10;
static int		 retry_default = 1000, verbose;
static const char	*prefix = "/chat/bench";
static struct sockaddr_in sa;
static char		 hosthdr[64];
static int		 ep;
static struct sub	*subs;
static struct pub	 pubs[MAX_PUBS];
static struct hist	 lat, publat;
static volatile sig_atomic_t stop_flag;
static int64_t		 t_first_send, t_last_delivery;

/* The publisher's book: which k were accepted, per channel counts. */
static uint8_t		*acc;		/* bit per k */
static size_t		 acccap;
static uint64_t		*acc_per_ch;
static int64_t		 next_k;
static uint64_t		 n_published, n_accepted, n_refused, n_pub_status,
			 n_pub_lost, n_pub_connect;
static int		 last_pub_status;
static double		 max_lag;

static uint64_t		 n_dup, n_ooo, n_misrouted, n_bad, n_drops,
			 n_reconnects, n_connect_fail, n_bad_status,
			 n_ev_reconnect, n_ev_close, n_unconfirmed, n_sub_timeouts;
static int		 last_sub_status;
static int		 nconnecting;

static void
die(const char *msg)
{
	fprintf(stderr, "chanload: %s\n", msg);
	exit(2);
}

static void
die_errno(const char *what)
{
	fprintf(stderr, "chanload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL)
		die("out of memory");
	return q;
}

/* ---------------------------------------------------------- histogram */

static void
record(struct hist *h, double s)
{
	uint64_t v = s <= 0 ? 0 : (uint64_t)(s * 1e6 + 0.5);
	int idx, msb;

	if (s > h->max)
		h->max = s;
	if (v >= (1ULL << 40))
		v = (1ULL << 40) - 1;
	if (v < 2 * NSUB)
		idx = (int)v;
	else {
		msb = 63 - __builtin_clzll(v);
		idx = 2 * NSUB + (msb - 7) * NSUB +
		    (int)((v >> (msb - 6)) - NSUB);
	}
	h->b[idx]++;
	h->n++;
}

/* The middle of the bucket holding the p-th quantile, in ms. */
static double
quantile(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p * h->n + 0.999999), cum = 0;
	int i, k, shift;

	if (h->n == 0)
		return 0;
	if (want < 1)
		want = 1;
	for (i = 0; i < NBUCKET; i++) {
		cum += h->b[i];
		if (cum >= want)
			break;
	}
	if (i < 2 * NSUB)
		return i / 1000.0;
	k = (i - 2 * NSUB) / NSUB;
	shift = k + 1;
	return (((uint64_t)(NSUB + (i - 2 * NSUB) % NSUB) << shift) +
	    (1ULL << shift) / 2.0) / 1000.0;
}

/* ---------------------------------------------------------- bitmaps */

static int
bit_get(const uint8_t *m, size_t cap, uint64_t i)
{
	return i / 8 < cap && (m[i / 8] >> (i % 8) & 1);
}

static void
bit_set(uint8_t **m, size_t *cap, uint64_t i)
{
	size_t n;

	if (i / 8 >= *cap) {
		n = *cap ? *cap : 64;
		while (n <= i / 8)
			n *= 2;
		*m = xrealloc(*m, n);
		memset(*m + *cap, 0, n - *cap);
		*cap = n;
	}
	(*m)[i / 8] |= (uint8_t)(1 << (i % 8));
}

/* ---------------------------------------------------------- sockets */

static int
open_conn(void *tag)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = tag };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die_errno("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die_errno("epoll_ctl");
	return fd;
}

static void
watch(int fd, void *tag, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == -1)
		die_errno("epoll_ctl");
}

static int
conn_failed(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		return 1;
	return err != 0;
}

/* Tags: subscribers are &subs[i], publishers &pubs[i]. */
static int
is_pub(void *tag)
{
	return (char *)tag >= (char *)pubs &&
	    (char *)tag < (char *)(pubs + MAX_PUBS);
}

/* ---------------------------------------------------------- subscribers */

static void
sub_connect(struct sub *s, int64_t now)
{
	int n;

	s->fd = open_conn(s);
	s->since = now;
	if (s->fd == -1) {
		n_connect_fail++;
		s->st = SS_WAIT;
		s->wake = now + (int64_t)s->retry_ms * 1000000;
		return;
	}
	n = snprintf(s->req, sizeof(s->req),
	    "GET %s-%d HTTP/1.1\r\nHost: %s\r\n"
	    "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
	    "%s%s%s\r\n", prefix, s->ch, hosthdr,
	    s->lastid[0] ? "Last-Event-ID: " : "", s->lastid,
	    s->lastid[0] ? "\r\n" : "");
	s->rlen = (size_t)n;
	s->roff = 0;
	s->inlen = 0;
	s->chunked = 0;
	s->cstate = 0;
	s->clen = 0;
	s->llen = 0;
	s->lskip = 0;
	s->has_evid = 0;
	s->event[0] = '\0';
	s->dlen = 0;
	s->has_data = 0;
	s->st = SS_CONNECTING;
	nconnecting++;
}

/* The stream ended: reconnect as EventSource does, unless the run is over. */
static void
sub_ended(struct sub *s, int64_t now, int by_server)
{
	if (s->st == SS_CONNECTING || s->st == SS_SENDING ||
	    s->st == SS_HEADERS)
		nconnecting--;
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	if (by_server && s->ready && !stop_flag) {
		n_drops++;
		s->drops++;
	}
	s->st = SS_WAIT;
	s->wake = now + (int64_t)s->retry_ms * 1000000;
}

static int
id_tuple(const char *id, uint64_t *t)
{
	int n = 0;
	char *end;

	while (*id && n < 4) {
		if (*id >= '0' && *id <= '9') {
			t[n++] = strtoull(id, &end, 10);
			id = end;
		} else
			id++;
	}
	return n;
}

/* A message event: "k=K c=C t=NS ..." */
static void
on_message(struct sub *s, int64_t now)
{
	long long k, c, t;
	uint64_t seq;

	if (sscanf(s->data, "k=%lld c=%lld t=%lld", &k, &c, &t) != 3 ||
	    k < 0 || c < 0 || t <= 0) {
		n_bad++;
		return;
	}
	if (c != s->ch) {
		n_misrouted++;
		return;
	}
	seq = (uint64_t)k / (uint64_t)nchan;
	if (bit_get(s->seen, s->seencap, seq)) {
		n_dup++;
		return;
	}
	bit_set(&s->seen, &s->seencap, seq);
	s->got++;
	if (!bit_get(acc, acccap, (uint64_t)k))
		n_unconfirmed++;	/* its 202 not (yet) back */
	record(&lat, (double)(now - t) / 1e9);
	t_last_delivery = now;
}

static void
dispatch(struct sub *s, int64_t now)
{
	uint64_t t[4];
	int n, i, cmp = 0;

	if (s->has_evid) {
		snprintf(s->lastid, sizeof(s->lastid), "%s", s->evid);
		s->has_evid = 0;
	}
	if (!s->has_data) {
		s->event[0] = '\0';
		return;
	}
	if (s->dlen > 0 && s->data[s->dlen - 1] == '\n')
		s->dlen--;
	s->data[s->dlen] = '\0';
	if (s->event[0] == '\0' || strcmp(s->event, "message") == 0) {
		n = id_tuple(s->lastid, t);
		if (n > 0 && s->nprev > 0) {
			for (i = 0; i < n && i < s->nprev && cmp == 0; i++)
				cmp = t[i] < s->prev[i] ? -1 :
				    t[i] > s->prev[i];
			if (cmp == 0)
				cmp = n > s->nprev ? 1 : -1;
			if (cmp <= 0)
				n_ooo++;
		}
		if (n > 0) {
			memcpy(s->prev, t, sizeof(t));
			s->nprev = n;
		}
		on_message(s, now);
	} else if (strcmp(s->event, "reconnect") == 0) {
		n_ev_reconnect++;
		s->evrc++;
	} else if (strcmp(s->event, "close") == 0)
		n_ev_close++;
	s->event[0] = '\0';
	s->dlen = 0;
	s->has_data = 0;
}

static void
sse_line(struct sub *s, char *l, size_t n, int64_t now)
{
	char *v;
	size_t vn, fn;
	long r;

	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n == 0) {
		dispatch(s, now);
		return;
	}
	if (l[0] == ':')
		return;
	v = memchr(l, ':', n);
	fn = v ? (size_t)(v - l) : n;
	if (v) {
		v++;
		if (v < l + n && *v == ' ')
			v++;
		vn = (size_t)(l + n - v);
	} else {
		v = l + n;
		vn = 0;
	}
	if (fn == 4 && memcmp(l, "data", 4) == 0) {
		if (s->dlen + vn + 2 > MAX_BODY + 256) {
			n_bad++;
			return;
		}
		memcpy(s->data + s->dlen, v, vn);
		s->dlen += vn;
		s->data[s->dlen++] = '\n';
		s->has_data = 1;
	} else if (fn == 2 && memcmp(l, "id", 2) == 0) {
		if (vn >= sizeof(s->evid))
			vn = sizeof(s->evid) - 1;
		memcpy(s->evid, v, vn);
		s->evid[vn] = '\0';
		s->has_evid = 1;
	} else if (fn == 5 && memcmp(l, "event", 5) == 0) {
		if (vn >= sizeof(s->event))
			vn = sizeof(s->event) - 1;
		memcpy(s->event, v, vn);
		s->event[vn] = '\0';
	} else if (fn == 5 && memcmp(l, "retry", 5) == 0) {
		char tmp[16];

		if (vn > 0 && vn < sizeof(tmp)) {
			memcpy(tmp, v, vn);
			tmp[vn] = '\0';
			r = strtol(tmp, &v, 10);
			if (*v == '\0' && r >= 0 && r <= 60000)
				s->retry_ms = (int)r;
		}
	}
}

/* Decoded stream bytes: SSE lines. */
static void
sse_feed(struct sub *s, const char *p, size_t n, int64_t now)
{
	const char *nl;
	size_t k;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) : n;
		if (!s->lskip) {
			if (s->llen + k >= RBUF) {
				s->lskip = 1;
				n_bad++;
			} else {
				memcpy(s->line + s->llen, p, k);
				s->llen += k;
			}
		}
		if (nl == NULL)
			return;
		if (!s->lskip)
			sse_line(s, s->line, s->llen, now);
		s->llen = 0;
		s->lskip = 0;
		p += k + 1;
		n -= k + 1;
	}
}

/* Raw body bytes: undo chunked transfer coding if any.  -1: bad. */
static int
body_feed(struct sub *s, const char *p, size_t n, int64_t now)
{
	size_t k;

	if (!s->chunked) {
		sse_feed(s, p, n, now);
		return 0;
	}
	while (n > 0) {
		switch (s->cstate) {
		case 0:		/* size line */
			if (*p == '\n') {
				s->cline[s->clen] = '\0';
				s->cleft = strtoull(s->cline, NULL, 16);
				s->clen = 0;
				if (s->cleft == 0)
					return -1;	/* the end */
				s->cstate = 1;
			} else if (s->clen < sizeof(s->cline) - 1)
				s->cline[s->clen++] = *p;
			p++;
			n--;
			break;
		case 1:
			k = n < s->cleft ? n : (size_t)s->cleft;
			sse_feed(s, p, k, now);
			s->cleft -= k;
			p += k;
			n -= k;
			if (s->cleft == 0)
				s->cstate = 2;
			break;
		default:	/* CRLF after the data */
			if (*p == '\n')
				s->cstate = 0;
			p++;
			n--;
			break;
		}
	}
	return 0;
}

/* Headers complete in s->in?  Then parse them; the rest is stream. */
static int
sub_headers(struct sub *s, int64_t now)
{
	char *end, *h, *rest;
	int status;
	size_t rn;

	s->in[s->inlen] = '\0';
	end = strstr(s->in, "\r\n\r\n");
	if (end == NULL)
		return s->inlen >= RBUF - 1 ? -1 : 0;
	*end = '\0';
	if (sscanf(s->in, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	last_sub_status = status;
	if (status != 200) {
		n_bad_status++;
		return -1;
	}
	for (h = strstr(s->in, "\r\n"); h != NULL; h = strstr(h + 2, "\r\n"))
		if (strncasecmp(h + 2, "Transfer-Encoding:", 18) == 0 &&
		    strcasestr(h + 2, "chunked") != NULL)
			s->chunked = 1;
	rest = end + 4;
	rn = s->inlen - (size_t)(rest - s->in);
	s->st = SS_STREAM;
	nconnecting--;
	if (s->ready) {
		n_reconnects++;
		s->reconnects++;
	}
	s->since = now;
	watch(s->fd, s, EPOLLIN | EPOLLRDHUP);
	if (rn > 0) {
		if (!s->ready)
			s->ready = 1;
		memmove(s->in, rest, rn);
		if (body_feed(s, s->in, rn, now) == -1)
			return -1;
	}
	s->inlen = 0;
	return 1;
}

static void
sub_io(struct sub *s, uint32_t events, int64_t now)
{
	ssize_t n;
	int rc;

	switch (s->st) {
	case SS_CONNECTING:
		if (conn_failed(s->fd)) {
			n_connect_fail++;
			sub_ended(s, now, 0);
			return;
		}
		s->st = SS_SENDING;
		/* FALLTHROUGH */
	case SS_SENDING:
		n = send(s->fd, s->req + s->roff, s->rlen - s->roff,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			sub_ended(s, now, 0);
			return;
		}
		s->roff += (size_t)n;
		if (s->roff == s->rlen) {
			s->st = SS_HEADERS;
			watch(s->fd, s, EPOLLIN | EPOLLRDHUP);
		}
		return;
	case SS_HEADERS:
		n = recv(s->fd, s->in + s->inlen, RBUF - 1 - s->inlen, 0);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			n_connect_fail++;
			sub_ended(s, now, 0);
			return;
		}
		s->inlen += (size_t)n;
		rc = sub_headers(s, now);
		if (rc == -1)
			sub_ended(s, now, 1);
		return;
	case SS_STREAM:
		for (;;) {
			n = recv(s->fd, s->in, RBUF, 0);
			if (n == -1 && errno == EAGAIN)
				return;
			if (n <= 0) {
				sub_ended(s, now, 1);
				return;
			}
			s->ready = 1;
			if (body_feed(s, s->in, (size_t)n, now) == -1) {
				sub_ended(s, now, 1);
				return;
			}
			if ((size_t)n < RBUF)
				return;
		}
	default:
		(void)events;
		return;
	}
}

/* ---------------------------------------------------------- publishers */

static void
pub_connect(struct pub *p)
{
	p->fd = open_conn(p);
	if (p->fd == -1) {
		n_pub_connect++;
		p->st = PS_DOWN;
		return;
	}
	p->st = PS_CONNECTING;
	p->inlen = 0;
}

static void
pub_close(struct pub *p)
{
	if (p->st == PS_BUSY)
		n_pub_lost++;		/* not known whether it was accepted */
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
	p->st = PS_DOWN;
}

static void
pub_send(struct pub *p, int64_t k, int64_t now)
{
	char body[MAX_BODY + 1];
	int bn, ch = (int)(k % nchan), hn;

	bn = snprintf(body, sizeof(body), "k=%lld c=%d t=%lld ",
	    (long long)k, ch, (long long)now);
	if (bn < body_size) {
		memset(body + bn, 'x', (size_t)(body_size - bn));
		bn = body_size;
	}
	hn = snprintf(p->req, sizeof(p->req),
	    "POST %s-%d HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
	    prefix, ch, hosthdr, bn);
	memcpy(p->req + hn, body, (size_t)bn);
	p->rlen = (size_t)(hn + bn);
	p->roff = 0;
	p->k = k;
	p->sent = now;
	p->st = PS_BUSY;
	p->inlen = 0;
	n_published++;
	if (t_first_send == 0)
		t_first_send = now;
	watch(p->fd, p, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
}

/* A whole response in p->in?  1: handled (0: not yet, -1: bad). */
static int
pub_response(struct pub *p, int64_t now)
{
	char *end, *h;
	int status, close_after = 0;
	long clen = -1;
	size_t need;

	p->in[p->inlen] = '\0';
	end = strstr(p->in, "\r\n\r\n");
	if (end == NULL)
		return p->inlen >= sizeof(p->in) - 1 ? -1 : 0;
	if (sscanf(p->in, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	for (h = strstr(p->in, "\r\n"); h != NULL && h < end;
	    h = strstr(h + 2, "\r\n")) {
		if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
			clen = strtol(h + 17, NULL, 10);
		else if (strncasecmp(h + 2, "Connection:", 11) == 0 &&
		    strcasestr(h + 2, "close") != NULL &&
		    strcasestr(h + 2, "close") < strstr(h + 2, "\r\n"))
			close_after = 1;
	}
	if (clen < 0)
		close_after = 1;	/* a body we do not read: start over */
	need = (size_t)(end + 4 - p->in) + (size_t)(clen > 0 ? clen : 0);
	if (p->inlen < need && need < sizeof(p->in))
		return 0;
	last_pub_status = status;
	record(&publat, (double)(now - p->sent) / 1e9);
	if (status >= 200 && status < 300) {
		n_accepted++;
		bit_set(&acc, &acccap, (uint64_t)p->k);
		acc_per_ch[p->k % nchan]++;
	} else if (status == 429 || status == 503 || status == 507)
		n_refused++;
	else
		n_pub_status++;
	p->st = PS_IDLE;
	if (close_after || p->inlen > need) {
		pub_close(p);
		return 1;
	}
	p->inlen = 0;
	watch(p->fd, p, EPOLLIN | EPOLLRDHUP);
	return 1;
}

static void
pub_io(struct pub *p, uint32_t events, int64_t now)
{
	ssize_t n;

	if (p->st == PS_CONNECTING) {
		if (conn_failed(p->fd)) {
			n_pub_connect++;
			pub_close(p);
			return;
		}
		p->st = PS_IDLE;
		watch(p->fd, p, EPOLLIN | EPOLLRDHUP);
		return;
	}
	if (p->st == PS_BUSY && p->roff < p->rlen && (events & EPOLLOUT)) {
		n = send(p->fd, p->req + p->roff, p->rlen - p->roff,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			pub_close(p);
			return;
		}
		p->roff += (size_t)n;
		if (p->roff == p->rlen)
			watch(p->fd, p, EPOLLIN | EPOLLRDHUP);
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		n = recv(p->fd, p->in + p->inlen, sizeof(p->in) - 1 - p->inlen,
		    0);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0 || p->st != PS_BUSY) {
			pub_close(p);	/* an idle one closed by the server */
			return;
		}
		p->inlen += (size_t)n;
		if (pub_response(p, now) == -1) {
			n_pub_status++;
			pub_close(p);
		}
	}
}

/* ---------------------------------------------------------- the loop */

static void
poll_once(int64_t until_ns)
{
	struct epoll_event evs[256];
	int64_t now = now_ns();
	int n, i, ms;

	ms = until_ns > now ? (int)((until_ns - now + 999999) / 1000000) : 0;
	if (ms > 50)
		ms = 50;
	n = epoll_wait(ep, evs, 256, ms);
	if (n == -1 && errno != EINTR)
		die_errno("epoll_wait");
	now = now_ns();
	for (i = 0; i < n; i++) {
		if (is_pub(evs[i].data.ptr))
			pub_io(evs[i].data.ptr, evs[i].events, now);
		else
			sub_io(evs[i].data.ptr, evs[i].events, now);
	}
}

/* Reconnections due, new connections within MAX_CONNECTING, timeouts. */
static void
tend_subs(int64_t now)
{
	int i;
	struct sub *s;

	for (i = 0; i < nsubs; i++) {
		s = &subs[i];
		if (s->st == SS_WAIT && now >= s->wake && !stop_flag &&
		    nconnecting < MAX_CONNECTING)
			sub_connect(s, now);
		else if ((s->st == SS_CONNECTING || s->st == SS_SENDING ||
		    s->st == SS_HEADERS) &&
		    now - s->since > (int64_t)(timeout_s * 1e9)) {
			n_sub_timeouts++;
			sub_ended(s, now, 0);
		}
	}
}

static int
count_ready(void)
{
	int i, n = 0;

	for (i = 0; i < nsubs; i++)
		n += subs[i].ready;
	return n;
}

static int
count_streaming(void)
{
	int i, n = 0;

	for (i = 0; i < nsubs; i++)
		n += subs[i].st == SS_STREAM;
	return n;
}

static int
idle_pub(void)
{
	int i;

	for (i = 0; i < npubs; i++)
		if (pubs[i].st == PS_IDLE)
			return i;
	return -1;
}

static int
pubs_busy(void)
{
	int i;

	for (i = 0; i < npubs; i++)
		if (pubs[i].st == PS_BUSY || pubs[i].st == PS_CONNECTING)
			return 1;
	return 0;
}

static void
tend_pubs(void)
{
	int i;

	for (i = 0; i < npubs; i++)
		if (pubs[i].st == PS_DOWN)
			pub_connect(&pubs[i]);
}

static int
all_delivered(void)
{
	int i;

	for (i = 0; i < nsubs; i++)
		if (subs[i].counted && (subs[i].got < acc_per_ch[subs[i].ch] ||
		    subs[i].st != SS_STREAM))
			return 0;
	return 1;
}

static double
num(const char *s, double lo, double hi, const char *what)
{
	char *end, msg[128];
	double v;

	v = strtod(s, &end);
	if (*end != '\0' || end == s || v < lo || v > hi) {
		snprintf(msg, sizeof(msg), "%s: '%s' is not in %g..%g", what,
		    s, lo, hi);
		die(msg);
	}
	return v;
}

static void
usage(void)
{
	fprintf(stderr, "usage: chanload [-m run|hold|check] [-s subs] "
	    "[-n channels] [-p prefix] [-r rate] [-P publishers] "
	    "[-d seconds] [-b bytes] [-W drain] [-R retry_ms] [-T timeout] "
	    "[-v] host port\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int opt, i, ready = 0;
	int64_t t0, t_pub, t_end, now, setup_ns, k_due;
	uint64_t expected = 0, got = 0, lost = 0, k;
	struct rlimit rl;
	struct sigaction sact;
	double secs, pub_secs;
	long port;
	char *end;

	while ((opt = getopt(argc, argv, "m:s:n:p:r:P:d:b:W:R:T:v")) != -1) {
		switch (opt) {
		case 'm':
			if (strcmp(optarg, "run") == 0)
				mode = M_RUN;
			else if (strcmp(optarg, "hold") == 0)
				mode = M_HOLD;
			else if (strcmp(optarg, "check") == 0)
				mode = M_CHECK;
			else
				usage();
			break;
		case 's': nsubs = (int)num(optarg, 1, MAX_SUBS, "-s"); break;
		case 'n': nchan = (int)num(optarg, 1, MAX_CHANNELS, "-n"); break;
		case 'p': prefix = optarg; break;
		case 'r': rate = num(optarg, 0, 1e6, "-r"); break;
		case 'P': npubs = (int)num(optarg, 1, MAX_PUBS, "-P"); break;
		case 'd': duration = num(optarg, 0.1, MAX_SECONDS, "-d"); break;
		case 'b': body_size = (int)num(optarg, 1, MAX_BODY, "-b"); break;
		case 'W': drain = num(optarg, 0, 120, "-W"); break;
		case 'R': retry_default = (int)num(optarg, 0, 60000, "-R"); break;
		case 'T': timeout_s = num(optarg, 0.1, 120, "-T"); break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (argc - optind != 2)
		usage();
	if (strlen(prefix) > 256 || prefix[0] != '/')
		die("-p: a path of at most 256 bytes");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	port = strtol(argv[optind + 1], &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		die("bad port");
	sa.sin_port = htons((uint16_t)port);
	if (strcmp(argv[optind], "localhost") == 0)
		argv[optind] = "127.0.0.1";
	if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1)
		die("host: an IPv4 address");
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		die("not a loopback address");
	snprintf(hosthdr, sizeof(hosthdr), "%s:%ld", argv[optind], port);
	if (mode == M_CHECK) {
		nsubs = 1;
		nchan = 1;
		npubs = 1;
		rate = 20;
		duration = 0.15;	/* k = 0, 1, 2 */
	}

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sact, 0, sizeof(sact));
	sact.sa_handler = on_signal;
	sigaction(SIGTERM, &sact, NULL);
	sigaction(SIGINT, &sact, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep == -1)
		die_errno("epoll_create1");
	subs = calloc((size_t)nsubs, sizeof(*subs));
	acc_per_ch = calloc((size_t)nchan, sizeof(*acc_per_ch));
	if (subs == NULL || acc_per_ch == NULL)
		die("out of memory");
	for (i = 0; i < nsubs; i++) {
		subs[i].fd = -1;
		subs[i].ch = i % nchan;
		subs[i].retry_ms = retry_default;
		subs[i].st = SS_WAIT;
		subs[i].in = xrealloc(NULL, RBUF);
		subs[i].line = xrealloc(NULL, RBUF);
		subs[i].data = xrealloc(NULL, MAX_BODY + 256);
	}
	for (i = 0; i < MAX_PUBS; i++)
		pubs[i].fd = -1;

	/* Setup: every subscriber ready, or the timeout. */
	t0 = now_ns();
	setup_ns = (int64_t)(timeout_s * 1e9);
	while (!stop_flag) {
		now = now_ns();
		tend_subs(now);
		if ((ready = count_ready()) == nsubs || now - t0 > setup_ns)
			break;
		poll_once(now + 5000000);
	}
	setup_ns = now_ns() - t0;
	for (i = 0; i < nsubs; i++)
		subs[i].counted = subs[i].ready;

	if (mode == M_HOLD) {
		printf("chanload ready held=%d setup_ms=%lld\n", ready,
		    (long long)(setup_ns / 1000000));
		t_end = now_ns() + (int64_t)(duration * 1e9);
		while (!stop_flag && (now = now_ns()) < t_end) {
			tend_subs(now);
			poll_once(t_end);
		}
		printf("chanload mode=hold subs=%d held=%d ready_end=%d "
		    "drops=%llu reconnects=%llu connect_fail=%llu "
		    "bad_status=%llu last_status=%d setup_ms=%lld\n", nsubs,
		    ready, count_streaming(), (unsigned long long)n_drops,
		    (unsigned long long)n_reconnects,
		    (unsigned long long)n_connect_fail,
		    (unsigned long long)n_bad_status, last_sub_status,
		    (long long)(setup_ns / 1000000));
		return ready == nsubs ? 0 : 1;
	}

	/* The publishers connect while the subscribers settle. */
	tend_pubs();
	t_end = now_ns() + SETTLE_NS;
	while (!stop_flag && (now = now_ns()) < t_end) {
		tend_subs(now);
		poll_once(t_end);
	}
	printf("chanload publishing\n");
	t_pub = now_ns();
	t_end = t_pub + (int64_t)(duration * 1e9);
	while (!stop_flag && (now = now_ns()) < t_end) {
		tend_subs(now);
		tend_pubs();
		if (rate > 0) {
			k_due = (int64_t)((double)(now - t_pub) / 1e9 * rate) +
			    1;
			while (next_k < k_due && (i = idle_pub()) != -1) {
				double lag = (double)(now - t_pub) / 1e9 -
				    (double)next_k / rate;

				if (lag > max_lag)
					max_lag = lag;
				pub_send(&pubs[i], next_k++, now);
			}
			poll_once(next_k < k_due ? now + 1000000 :
			    t_pub + (int64_t)((double)next_k / rate * 1e9));
		} else {
			while ((i = idle_pub()) != -1)
				pub_send(&pubs[i], next_k++, now);
			poll_once(t_end);
		}
	}
	pub_secs = (double)(now_ns() - t_pub) / 1e9;
	/* Drain: the answers in flight, then the deliveries. */
	t_end = now_ns() + (int64_t)(drain * 1e9);
	while (!stop_flag && (now = now_ns()) < t_end &&
	    (pubs_busy() || !all_delivered())) {
		tend_subs(now);
		poll_once(now + 10000000);
	}
	secs = (double)(now_ns() - t_pub) / 1e9;

	for (i = 0; i < nsubs; i++) {
		struct sub *s = &subs[i];

		if (!s->counted)
			continue;
		expected += acc_per_ch[s->ch];
		for (k = (uint64_t)s->ch; k < (uint64_t)next_k; k += nchan) {
			if (!bit_get(acc, acccap, k))
				continue;
			if (bit_get(s->seen, s->seencap, k / (uint64_t)nchan))
				got++;
			else
				lost++;
		}
	}
	{
		double span = t_last_delivery > t_first_send ?
		    (double)(t_last_delivery - t_first_send) / 1e9 : 0;
		uint64_t delivered = 0;

		for (i = 0; i < nsubs; i++)
			delivered += subs[i].got;
		printf("chanload mode=%s subs=%d channels=%d pubs=%d rate=%g "
		    "size=%d secs=%.2f pub_secs=%.2f ready=%d setup_ms=%lld "
		    "published=%llu accepted=%llu refused=%llu pub_errors=%llu "
		    "pub_status=%llu pub_lost=%llu pub_connect=%llu "
		    "last_pub_status=%d pub_per_s=%.0f pub_p50_ms=%.3f "
		    "pub_p99_ms=%.3f max_lag_ms=%.1f expected=%llu "
		    "delivered=%llu received=%llu lost=%llu dup=%llu ooo=%llu "
		    "misrouted=%llu bad=%llu unconfirmed=%llu "
		    "delivered_per_s=%.0f span_s=%.2f p50_ms=%.3f p99_ms=%.3f "
		    "max_ms=%.3f drops=%llu reconnects=%llu "
		    "connect_fail=%llu timeouts=%llu bad_status=%llu "
		    "last_status=%d ev_reconnect=%llu ev_close=%llu "
		    "ready_end=%d\n",
		    mode == M_CHECK ? "check" : "run", nsubs, nchan, npubs,
		    rate, body_size, secs, pub_secs, ready,
		    (long long)(setup_ns / 1000000),
		    (unsigned long long)n_published,
		    (unsigned long long)n_accepted,
		    (unsigned long long)n_refused,
		    (unsigned long long)(n_pub_status + n_pub_lost +
		    n_pub_connect),
		    (unsigned long long)n_pub_status,
		    (unsigned long long)n_pub_lost,
		    (unsigned long long)n_pub_connect, last_pub_status,
		    n_accepted / pub_secs, quantile(&publat, 0.50),
		    quantile(&publat, 0.99), max_lag * 1e3,
		    (unsigned long long)expected, (unsigned long long)got,
		    (unsigned long long)delivered,
		    (unsigned long long)lost, (unsigned long long)n_dup,
		    (unsigned long long)n_ooo,
		    (unsigned long long)n_misrouted,
		    (unsigned long long)n_bad,
		    (unsigned long long)n_unconfirmed,
		    span > 0 ? delivered / span : 0.0, span,
		    quantile(&lat, 0.50), quantile(&lat, 0.99),
		    lat.max * 1e3, (unsigned long long)n_drops,
		    (unsigned long long)n_reconnects,
		    (unsigned long long)n_connect_fail,
		    (unsigned long long)n_sub_timeouts,
		    (unsigned long long)n_bad_status, last_sub_status,
		    (unsigned long long)n_ev_reconnect,
		    (unsigned long long)n_ev_close, count_streaming());
	}
	for (i = 0; verbose && i < nsubs; i++) {
		struct sub *s = &subs[i];

		if (s->st != SS_STREAM || s->drops != s->evrc ||
		    s->got < acc_per_ch[s->ch])
			fprintf(stderr, "chanload: subscriber %d (channel %d): "
			    "state %d, got %llu of %llu, drops %u, reconnects "
			    "%u, reconnect events %u, last id '%s'\n", i, s->ch,
			    (int)s->st, (unsigned long long)s->got,
			    (unsigned long long)acc_per_ch[s->ch], s->drops,
			    s->reconnects, s->evrc, s->lastid);
	}
	if (mode == M_CHECK)
		return ready == 1 && n_accepted == 3 && lost == 0 &&
		    n_dup == 0 ? 0 : 1;
	return ready == nsubs ? 0 : 1;
}
