/*
 * probe: keep N keep-alive HTTP/1.1 connections busy for D seconds and
 * report how fairly a server serves them.
 *
 *   probe [-c conns] [-d seconds] [-p path] [-m max_responses] [-1] host port
 *
 * Each connection sends GET requests back to back: the next request goes
 * out once the previous response has been read in full (Content-Length,
 * or up to EOF when the response has none).  A response carrying
 * "Connection: close", or a connection that fails, is replaced by a new
 * connection (counted).  One thread, non-blocking sockets, epoll.
 *
 * Safety: loopback only (127.0.0.0/8 or ::1), at most MAX_CONNS
 * connections, at most MAX_SECONDS seconds, at most -m responses.
 *
 * Output: one "key=value" per line, for bench/run to parse:
 *   never_responded  connection slots that got no response at all
 *   responses        complete responses (responses_2xx, responses_other)
 *   worst_wait_s     longest wait between the end of sending a request and
 *                    the first byte of its response, including requests
 *                    still unanswered at the end of the run
 *   p50_wait_ms, p99_wait_ms   of answered requests
 *   pending_at_end   requests sent but unanswered when time ran out
 *   never_connected  slots whose very first connect never completed
 *   connect_errors, resets, eof_before_response, eof_mid_response,
 *   proto_errors, server_closes (Connection: close), reconnects
 *
 * -1: send one request on one connection, print status= and body_bytes=.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

#define MAX_CONNS	20000
#define MAX_SECONDS	600
#define HBUF		8192
#define NBUCKET		400	/* log histogram of waits, 1 us .. ~1e4 s */

enum st { S_IDLE, S_CONNECTING, S_SENDING, S_HEAD, S_BODY, S_BODY_EOF,
	S_BACKOFF };

struct conn {
	int		 fd;
	enum st		 st;
	size_t		 sent;		/* bytes of the request sent */
	double		 t_sent;	/* request fully sent */
	double		 t_conn;	/* connect started */
	double		 t_retry;	/* backoff until */
	int		 got_first;	/* first byte of this response seen */
	char		*hbuf;
	size_t		 hlen;
	long long	 body_left;
	int		 close_after;
	int		 status;
	long long	 body_bytes;
	unsigned long	 nresp;		/* over the slot's whole life */
	int		 ever_connected;
};

static struct sockaddr_storage	 sa;
static socklen_t		 salen;
static char			 req[1024];
static size_t			 reqlen;
static int			 ep;
static struct conn		*cs;
static int			 nconn = 500;
static volatile sig_atomic_t	 stop;

static unsigned long long	 st_resp, st_2xx, st_other, st_conn_err,
				 st_reset, st_eof_before, st_eof_mid,
				 st_proto, st_srv_close, st_reconnect;
static double			 worst_wait, worst_connect;
static unsigned long long	 hist[NBUCKET];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
record_wait(double w)
{
	double us = w * 1e6;
	int b = us < 1 ? 0 : (int)(log(us) * 40.0 / log(10.0));

	if (b >= NBUCKET)
		b = NBUCKET - 1;
	hist[b]++;
	if (w > worst_wait)
		worst_wait = w;
}

static double
hist_pct(double p)
{
	unsigned long long tot = 0, acc = 0;
	int b;

	for (b = 0; b < NBUCKET; b++)
		tot += hist[b];
	if (tot == 0)
		return 0;
	for (b = 0; b < NBUCKET; b++) {
		acc += hist[b];
		if ((double)acc >= p * (double)tot)
			break;
	}
	/* upper edge of the bucket, in ms */
	return pow(10.0, (b + 1) / 40.0) / 1000.0;
}

static int
loopback_only(const char *host, const char *port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	char *end;
	long p = strtol(port, &end, 10);

	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
		fprintf(stderr, "probe: bad port '%s'\n", port);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			goto refuse;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		salen = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			goto refuse;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		salen = sizeof(*s6);
		return 0;
	}
refuse:
	fprintf(stderr, "probe: refusing '%s': only numeric loopback "
	    "addresses (127.0.0.0/8, ::1) are allowed\n", host);
	return -1;
}

static void
ep_set(struct conn *c, uint32_t ev, int op)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (epoll_ctl(ep, op, c->fd, &e) == -1) {
		perror("probe: epoll_ctl");
		exit(2);
	}
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1) {
		close(c->fd);	/* also removes it from the epoll set */
		c->fd = -1;
	}
	c->st = S_IDLE;
}

static void
conn_start(struct conn *c, double t)
{
	int one = 1;

	c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd == -1) {
		st_conn_err++;
		c->st = S_BACKOFF;
		c->t_retry = t + 0.05;
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_conn = t;
	c->sent = 0;
	c->hlen = 0;
	c->got_first = 0;
	if (connect(c->fd, (struct sockaddr *)&sa, salen) == -1 &&
	    errno != EINPROGRESS) {
		st_conn_err++;
		conn_close(c);
		c->st = S_BACKOFF;
		c->t_retry = t + 0.01;
		return;
	}
	c->st = S_CONNECTING;
	ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* A failure: count it, and reconnect after a short pause. */
static void
conn_fail(struct conn *c, double t, unsigned long long *counter)
{
	(*counter)++;
	conn_close(c);
	c->st = S_BACKOFF;
	c->t_retry = t + 0.01;
}

static void
conn_send(struct conn *c, double t)
{
	while (c->sent < reqlen) {
		ssize_t n = send(c->fd, req + c->sent, reqlen - c->sent,
		    MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (c->st != S_SENDING) {
					c->st = S_SENDING;
					ep_set(c, EPOLLOUT, EPOLL_CTL_MOD);
				}
				return;
			}
			if (errno == EINTR)
				continue;
			conn_fail(c, t, &st_reset);
			return;
		}
		c->sent += (size_t)n;
	}
	c->t_sent = t;
	c->got_first = 0;
	c->hlen = 0;
	c->st = S_HEAD;
	ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
}

static void
response_done(struct conn *c, double t)
{
	st_resp++;
	c->nresp++;
	if (c->status >= 200 && c->status < 300)
		st_2xx++;
	else
		st_other++;
	if (c->close_after || c->st == S_BODY_EOF) {
		if (c->close_after)
			st_srv_close++;
		conn_close(c);
		if (!stop) {
			st_reconnect++;
			conn_start(c, t);
		}
		return;
	}
	c->sent = 0;
	conn_send(c, t);
}

/* Header token search, case-insensitive. */
static int
hdr_has(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	for (; *v != '\0' && *v != '\r'; v++)
		if (strncasecmp(v, tok, n) == 0)
			return 1;
	return 0;
}

/* Parse the head in c->hbuf (NUL-terminated, ends with CRLFCRLF). */
static int
parse_head(struct conn *c)
{
	char *p = c->hbuf, *line;
	int minor, have_len = 0, http10 = 0, ka = 0;

	if (sscanf(p, "HTTP/1.%d %d", &minor, &c->status) != 2)
		return -1;
	http10 = minor == 0;
	c->close_after = 0;
	c->body_left = -1;
	while ((line = strstr(p, "\r\n")) != NULL) {
		line += 2;
		p = line;
		if (*line == '\r')
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			c->body_left = strtoll(line + 15, NULL, 10);
			have_len = 1;
		} else if (strncasecmp(line, "Connection:", 11) == 0) {
			if (hdr_has(line + 11, "close"))
				c->close_after = 1;
			if (hdr_has(line + 11, "keep-alive"))
				ka = 1;
		} else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			return -1;	/* not expected from a static server */
		}
	}
	if (http10 && !ka)
		c->close_after = 1;
	if ((c->status >= 100 && c->status < 200) || c->status == 204 ||
	    c->status == 304)
		c->body_left = 0, have_len = 1;
	if (!have_len || c->body_left < 0) {
		c->body_left = 0;
		return 1;	/* body runs to EOF */
	}
	return 0;
}

static void
conn_read(struct conn *c, double t)
{
	static char rbuf[256 * 1024];

	for (;;) {
		ssize_t n = recv(c->fd, rbuf, sizeof(rbuf), 0);
		size_t off = 0;

		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			conn_fail(c, t, c->got_first ? &st_eof_mid : &st_reset);
			return;
		}
		if (n == 0) {
			if (c->st == S_BODY_EOF) {
				response_done(c, t);
			} else {
				conn_fail(c, t, c->got_first ? &st_eof_mid :
				    &st_eof_before);
			}
			return;
		}
		if (!c->got_first) {
			c->got_first = 1;
			record_wait(t - c->t_sent);
			c->body_bytes = 0;
		}
		if (c->st == S_HEAD) {
			char *e;
			size_t take = (size_t)n, old = c->hlen;
			int r;

			if (take > HBUF - 1 - c->hlen)
				take = HBUF - 1 - c->hlen;
			memcpy(c->hbuf + c->hlen, rbuf, take);
			c->hlen += take;
			c->hbuf[c->hlen] = '\0';
			if ((e = strstr(c->hbuf, "\r\n\r\n")) == NULL) {
				if (c->hlen >= HBUF - 1) {
					conn_fail(c, t, &st_proto);
					return;
				}
				continue;
			}
			/* bytes of rbuf that belong to the head */
			off = (size_t)(e + 4 - c->hbuf) - old;
			if ((r = parse_head(c)) == -1) {
				conn_fail(c, t, &st_proto);
				return;
			}
			c->st = r == 1 ? S_BODY_EOF : S_BODY;
		}
		c->body_bytes += n - (ssize_t)off;
		if (c->st == S_BODY) {
			c->body_left -= n - (ssize_t)off;
			if (c->body_left < 0) {		/* extra bytes */
				conn_fail(c, t, &st_proto);
				return;
			}
			if (c->body_left == 0) {
				response_done(c, t);
				return;
			}
		}
	}
}

static void
on_event(struct conn *c, uint32_t ev, double t)
{
	if (c->st == S_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
			conn_fail(c, t, &st_conn_err);
			return;
		}
		if (t - c->t_conn > worst_connect)
			worst_connect = t - c->t_conn;
		c->ever_connected = 1;
		conn_send(c, t);
		return;
	}
	if (c->st == S_SENDING) {
		if (ev & EPOLLERR) {
			conn_fail(c, t, &st_reset);
			return;
		}
		conn_send(c, t);
		return;
	}
	if (c->st == S_HEAD || c->st == S_BODY || c->st == S_BODY_EOF)
		conn_read(c, t);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
single(const char *path)
{
	struct conn c;
	double t0 = now();

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.hbuf = malloc(HBUF);
	if (c.hbuf == NULL)
		return 2;
	cs = &c;
	conn_start(&c, t0);
	while (c.nresp == 0 && now() - t0 < 5) {
		struct epoll_event e[4];
		int n = epoll_wait(ep, e, 4, 100);

		for (int i = 0; i < n; i++)
			on_event(e[i].data.ptr, e[i].events, now());
		if (c.st == S_BACKOFF)
			break;
	}
	if (c.nresp == 0) {
		fprintf(stderr, "probe: no response for %s\n", path);
		return 1;
	}
	printf("status=%d\nbody_bytes=%lld\n", c.status, c.body_bytes);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: probe [-c conns] [-d seconds] [-p path] "
	    "[-m max_responses] [-1] host port\n"
	    "  host must be numeric loopback (127.0.0.0/8 or ::1)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *path = "/";
	double dur = 5, t0, t, deadline, next_scan = 0;
	unsigned long long maxresp = 50000000ULL;
	int ch, one = 0, i;
	unsigned long never_resp = 0, pending = 0, never_conn = 0;
	unsigned long nstate[S_BACKOFF + 1] = { 0 };
	struct rlimit rl;
	struct sigaction sig;
	char hostbuf[64];

	while ((ch = getopt(argc, argv, "c:d:p:m:1h")) != -1) {
		switch (ch) {
		case 'c':
			nconn = atoi(optarg);
			if (nconn < 1 || nconn > MAX_CONNS) {
				fprintf(stderr, "probe: -c 1..%d\n", MAX_CONNS);
				return 2;
			}
			break;
		case 'd':
			dur = atof(optarg);
			if (!(dur > 0 && dur <= MAX_SECONDS)) {
				fprintf(stderr, "probe: -d (0, %d]\n",
				    MAX_SECONDS);
				return 2;
			}
			break;
		case 'p':
			path = optarg;
			if (path[0] != '/' || strlen(path) > 512 ||
			    strpbrk(path, " \r\n") != NULL) {
				fprintf(stderr, "probe: bad path\n");
				return 2;
			}
			break;
		case 'm':
			maxresp = strtoull(optarg, NULL, 10);
			if (maxresp == 0)
				usage();
			break;
		case '1':
			one = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		usage();
	if (loopback_only(argv[0], argv[1]) == -1)
		return 2;
	if (sa.ss_family == AF_INET6)
		snprintf(hostbuf, sizeof(hostbuf), "[%s]:%s", argv[0], argv[1]);
	else
		snprintf(hostbuf, sizeof(hostbuf), "%s:%s", argv[0], argv[1]);
	reqlen = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: preforkd-bench-probe\r\n\r\n",
	    path, hostbuf);

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("probe: epoll_create1");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (one)
		return single(path);

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nconn + 32) {
		rl.rlim_cur = (rlim_t)nconn + 32;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			perror("probe: setrlimit NOFILE");
			return 2;
		}
	}
	memset(&sig, 0, sizeof(sig));
	sig.sa_handler = on_signal;
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGTERM, &sig, NULL);

	if ((cs = calloc((size_t)nconn, sizeof(*cs))) == NULL) {
		perror("probe: calloc");
		return 2;
	}
	t0 = now();
	deadline = t0 + dur;
	for (i = 0; i < nconn; i++) {
		cs[i].fd = -1;
		if ((cs[i].hbuf = malloc(HBUF)) == NULL) {
			perror("probe: malloc");
			return 2;
		}
		conn_start(&cs[i], t0);
	}
	while (!stop) {
		struct epoll_event ev[256];
		int n, ms;

		t = now();
		if (t >= deadline || st_resp >= maxresp)
			break;
		ms = (int)((deadline - t) * 1000) + 1;
		if (ms > 10)
			ms = 10;
		n = epoll_wait(ep, ev, 256, ms);
		if (n == -1 && errno != EINTR) {
			perror("probe: epoll_wait");
			return 2;
		}
		t = now();
		for (i = 0; i < n; i++)
			on_event(ev[i].data.ptr, ev[i].events, t);
		if (t >= next_scan) {		/* reconnect after backoff */
			next_scan = t + 0.01;
			for (i = 0; i < nconn; i++)
				if (cs[i].st == S_BACKOFF && t >= cs[i].t_retry
				    && t < deadline) {
					st_reconnect++;
					conn_start(&cs[i], t);
				}
		}
	}
	t = now();
	for (i = 0; i < nconn; i++) {
		struct conn *c = &cs[i];

		if (c->nresp == 0)
			never_resp++;
		if (!c->ever_connected)
			never_conn++;
		if ((c->st == S_HEAD || c->st == S_SENDING) && !c->got_first &&
		    c->sent == reqlen) {
			pending++;
			if (t - c->t_sent > worst_wait)
				worst_wait = t - c->t_sent;
		}
		nstate[c->st]++;
		if (c->st == S_CONNECTING && t - c->t_conn > worst_connect)
			worst_connect = t - c->t_conn;
		conn_close(c);
		free(c->hbuf);
	}
	printf("connections=%d\nduration_s=%.3f\nresponses=%llu\n"
	    "responses_2xx=%llu\nresponses_other=%llu\n"
	    "never_responded=%lu\nnever_connected=%lu\npending_at_end=%lu\n"
	    "worst_wait_s=%.3f\np50_wait_ms=%.3f\np99_wait_ms=%.3f\n"
	    "worst_connect_s=%.3f\nconnect_errors=%llu\nresets=%llu\n"
	    "eof_before_response=%llu\neof_mid_response=%llu\n"
	    "proto_errors=%llu\nserver_closes=%llu\nreconnects=%llu\n",
	    nconn, t - t0, st_resp, st_2xx, st_other, never_resp, never_conn,
	    pending, worst_wait, hist_pct(0.5), hist_pct(0.99), worst_connect,
	    st_conn_err, st_reset, st_eof_before, st_eof_mid, st_proto,
	    st_srv_close, st_reconnect);
	printf("at_end_connecting=%lu\nat_end_sending=%lu\n"
	    "at_end_waiting=%lu\nat_end_reading=%lu\nat_end_backoff=%lu\n",
	    nstate[S_CONNECTING], nstate[S_SENDING], nstate[S_HEAD],
	    nstate[S_BODY] + nstate[S_BODY_EOF], nstate[S_BACKOFF]);
	free(cs);
	return 0;
}
