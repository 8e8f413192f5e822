/*
 * tlsload: a TLS handshake load client for bench/run.
 *
 *   tlsload [-m full|resume|check] [-c conns] [-t threads] [-d seconds]
 *           [-p path] [-b bytes] [-n sni] [-V 1.2|1.3] [-T timeout] [-A]
 *           host port
 *
 * Each connection is a new TCP connection and a new TLS handshake
 * (OpenSSL, the certificate not verified: the bench uses throw-away
 * self-signed ones), then one request "GET PATH HTTP/1.1" with
 * "Connection: close", its response read to the end (status 200 and a
 * body of Content-Length bytes, or -b bytes when given, are checked), a
 * close_notify sent, and close.  Then the next connection, back to back.
 *
 * Modes:
 *   full    -c clients doing full handshakes (no session offered) for -d
 *           seconds.
 *   resume  the same, but each client offers the session (a TLS 1.3 ticket,
 *           or a TLS 1.2 session ticket) it got on its previous connection;
 *           the first connection of each client is a full handshake.  Every
 *           handshake is counted as resumed or full (SSL_session_reused),
 *           so the share of resumed ones shows whether the server resumed.
 *   check   one connection, full, then one that offers its session; exits 0
 *           when both got a good response (the second need not resume:
 *           resumed=0 or 1 says).
 * -c clients are spread over -t threads (default 1), each with its own
 * SSL_CTX and epoll loop on non-blocking sockets.  A connection that fails
 * is counted and replaced after 10 ms (its session dropped).  SIGTERM or
 * SIGINT end the run early; the line is still printed.
 *
 * Output: one line of key=value, e.g.
 *   tlsload mode=full conns=50 threads=2 secs=5.00 done=12345
 *   per_s=2469 full=12345 resumed=0 offered=0 p50_ms=19.9 p99_ms=40.1
 *   max_ms=61.2 errors=0 connect_errors=0 tls_errors=0 http_errors=0
 *   timeouts=0 proto=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 group=X25519
 *   alpn=http/1.1 key=EC-256 last_status=200 cpu_s=4.12
 * done counts connections completed (handshake and a good response);
 * per_s is done per second; full and resumed split done by
 * SSL_session_reused; offered counts those of done that offered a session
 * (resume: all but each client's first; a server that resumes every
 * session offered has resumed = offered).  The latency is that of a whole
 * connection, from connect() to the end of the response.  errors is the
 * sum of connect_errors, tls_errors (the handshake or a TLS read/write
 * failed), http_errors (a status other than 200, a wrong length, a
 * response cut short or malformed) and timeouts (a connection that took
 * more than -T seconds, default 5).  proto, cipher, group (the key
 * exchange's), alpn and key (the server certificate's key type and bits)
 * are those of the first full handshake.  cpu_s is tlsload's own CPU time
 * (user + system, all threads): the client's share of the machine, which
 * it shares with the server on loopback.
 *
 * Safety: loopback only (127.0.0.0/8, ::1) unless -A, at most MAX_CONNS
 * connections, MAX_THREADS threads, MAX_SECONDS seconds.
 * C11, POSIX threads and OpenSSL (libssl, libcrypto).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_CONNS	20000
#define MAX_THREADS	64
#define MAX_SECONDS	600
#define BACKOFF_SECONDS	0.01
#define HBUF		16384	/* response head; the body is only counted */
#define NSUB		64	/* histogram: sub-buckets per power of two */
#define NBUCKET		(NSUB + 35 * NSUB)	/* 1 us .. 2^40 us */

enum mode { M_FULL, M_RESUME, M_CHECK };
enum st { S_BACKOFF, S_CONNECTING, S_HANDSHAKE, S_SEND, S_RECV, S_IDLE };

struct conn {
	struct thr	*th;
	int		 fd;
	enum st		 st;
	SSL		*ssl;
	SSL_SESSION	*sess;		/* resume: from the previous connection */
	int		 offered;	/* this connection offered sess */
	double		 t0;		/* connect() called */
	double		 t_wake;	/* backoff: when to start again */
	size_t		 woff;		/* request bytes written */
	char		 head[HBUF];
	size_t		 hlen;
	int		 head_done;
	int		 status;
	long long	 clen;		/* Content-Length, or -1 */
	long long	 body;		/* body bytes read */
};

struct stats {
	unsigned long long done, full, resumed, offered;
	unsigned long	 connect_errors, tls_errors, http_errors, timeouts;
	int		 last_status;
	uint64_t	 hist[NBUCKET];
	uint64_t	 nhist;
	double		 max_lat;
};

struct thr {
	pthread_t	 tid;
	int		 idx;
	int		 ep;
	SSL_CTX		*ctx;
	struct conn	*cs;
	int		 n;
	int		 stop_after;	/* check: connections to complete */
	struct stats	 st;
	char		 info[256];	/* of the first full handshake */
	int		 have_info;
};

static enum mode	 mode = M_FULL;
static int		 nconns = 50;
static int		 nthreads = 1;
static double		 secs = 10;
static double		 conn_timeout = 5;
static const char	*path = "/index.html";
static long long	 want_body = -1;
static const char	*sni = "localhost";
static int		 max_version;
static char		 req[1024];
static size_t		 reqlen;
static struct sockaddr_storage sa;
static socklen_t	 salen;
static double		 t_end;
static volatile sig_atomic_t stop_sig;

static void
usage(void)
{
	fprintf(stderr, "usage: tlsload [-m full|resume|check] [-c conns] "
	    "[-t threads] [-d seconds] [-p path] [-b bytes] [-n sni|-] "
	    "[-V 1.2|1.3] [-T timeout] [-A] host port\n");
	exit(2);
}

static void
die(const char *what)
{
	fprintf(stderr, "tlsload: %s\n", what);
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_signal(int sig)
{
	stop_sig = sig;
}

/* ---------------------------------------------------------------- latency */

static void
hist_add(struct stats *s, double secs_)
{
	uint64_t us = (uint64_t)(secs_ * 1e6);
	int msb, shift;
	size_t idx;

	if (us < NSUB)
		idx = (size_t)us;
	else {
		msb = 63 - __builtin_clzll(us);
		shift = msb - 6;	/* NSUB = 2^6 */
		idx = (size_t)(shift + 1) * NSUB +
		    (size_t)((us >> shift) - NSUB);
		if (idx >= NBUCKET)
			idx = NBUCKET - 1;
	}
	s->hist[idx]++;
	s->nhist++;
	if (secs_ > s->max_lat)
		s->max_lat = secs_;
}

static double
hist_value_ms(size_t idx)
{
	size_t shift;
	uint64_t m;

	if (idx < NSUB)
		return (double)idx / 1000 + 0.0005;
	shift = idx / NSUB - 1;
	m = idx % NSUB + NSUB;
	return ((double)(m << shift) + (double)(1ULL << shift) / 2) / 1000;
}

static double
quantile(const struct stats *s, double q)
{
	uint64_t want = (uint64_t)(q * (double)s->nhist), seen = 0;
	size_t i;

	if (want >= s->nhist)
		want = s->nhist - 1;
	for (i = 0; i < NBUCKET; i++) {
		seen += s->hist[i];
		if (seen > want)
			return hist_value_ms(i);
	}
	return hist_value_ms(NBUCKET - 1);
}

/* ---------------------------------------------------------------- conns */

static void conn_start(struct conn *);

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);	/* also takes it out of the epoll set */
		c->fd = -1;
	}
}

/* A failed connection: counted, closed, started again after a pause. */
static void
conn_fail(struct conn *c, unsigned long *counter)
{
	(*counter)++;
	ERR_clear_error();
	conn_close(c);
	if (c->sess != NULL) {
		SSL_SESSION_free(c->sess);
		c->sess = NULL;
	}
	if (mode == M_CHECK) {
		c->st = S_IDLE;		/* no second try */
		return;
	}
	c->st = S_BACKOFF;
	c->t_wake = now() + BACKOFF_SECONDS;
}

static void
record_info(struct thr *th, SSL *ssl)
{
	const char *proto, *cipher, *group = "-", *alpn_s = "-";
	const unsigned char *alpn;
	unsigned int alen;
	char alpnbuf[64], key[64] = "-";
	X509 *cert;
	EVP_PKEY *pk;
	int nid;

	proto = SSL_get_version(ssl);
	cipher = SSL_get_cipher_name(ssl);
	nid = SSL_get_negotiated_group(ssl);
	if (nid > 0) {
		group = OBJ_nid2sn(nid);
		if (group == NULL)
			group = "?";
	}
	SSL_get0_alpn_selected(ssl, &alpn, &alen);
	if (alen > 0 && alen < sizeof(alpnbuf)) {
		memcpy(alpnbuf, alpn, alen);
		alpnbuf[alen] = '\0';
		alpn_s = alpnbuf;
	}
	cert = SSL_get0_peer_certificate(ssl);
	if (cert != NULL && (pk = X509_get0_pubkey(cert)) != NULL)
		snprintf(key, sizeof(key), "%s-%d",
		    EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC ? "EC" :
		    EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA ? "RSA" : "other",
		    EVP_PKEY_get_bits(pk));
	snprintf(th->info, sizeof(th->info),
	    "proto=%s cipher=%s group=%s alpn=%s key=%s",
	    proto ? proto : "-", cipher ? cipher : "-", group, alpn_s, key);
	th->have_info = 1;
}

/* A whole response read: counted, session kept (resume), next one. */
static void
conn_done(struct conn *c)
{
	struct thr *th = c->th;
	double t = now();

	if (c->status != 200 ||
	    (want_body >= 0 && c->body != want_body) ||
	    (c->clen >= 0 && c->body != c->clen)) {
		th->st.last_status = c->status;
		conn_fail(c, &th->st.http_errors);
		return;
	}
	th->st.last_status = c->status;
	if (t < t_end || mode == M_CHECK) {
		th->st.done++;
		if (c->offered)
			th->st.offered++;
		if (SSL_session_reused(c->ssl))
			th->st.resumed++;
		else {
			th->st.full++;
			if (!th->have_info)
				record_info(th, c->ssl);
		}
		hist_add(&th->st, t - c->t0);
	}
	if (mode != M_FULL) {
		/* TLS 1.3: the tickets came after the handshake, read by now */
		SSL_SESSION *s = SSL_get1_session(c->ssl);

		if (s != NULL && SSL_SESSION_is_resumable(s)) {
			if (c->sess != NULL)
				SSL_SESSION_free(c->sess);
			c->sess = s;
		} else if (s != NULL)
			SSL_SESSION_free(s);
	}
	(void)SSL_shutdown(c->ssl);	/* close_notify, no wait for the peer's */
	ERR_clear_error();
	conn_close(c);
	if (th->stop_after > 0 && th->st.done >= (unsigned)th->stop_after) {
		c->st = S_IDLE;
		return;
	}
	conn_start(c);
}

/* Parse the head once complete; 0: fine, -1: malformed. */
static int
parse_head(struct conn *c, size_t end)
{
	char *p, *line, *eol;

	c->head[end] = '\0';
	if (strncmp(c->head, "HTTP/1.", 7) != 0 || end < 12)
		return -1;
	c->status = atoi(c->head + 9);
	c->clen = -1;
	for (line = strstr(c->head, "\r\n"); line != NULL && line[2] != '\0';
	    line = eol) {
		line += 2;
		eol = strstr(line, "\r\n");
		if (eol == NULL)
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			p = line + 15;
			c->clen = strtoll(p, NULL, 10);
		}
	}
	return 0;
}

static void
on_bytes(struct conn *c, const char *buf, size_t n)
{
	char *e;
	size_t take, end;

	if (c->head_done) {
		c->body += (long long)n;
		return;
	}
	take = n < HBUF - 1 - c->hlen ? n : HBUF - 1 - c->hlen;
	memcpy(c->head + c->hlen, buf, take);
	c->hlen += take;
	c->head[c->hlen] = '\0';
	e = strstr(c->head, "\r\n\r\n");
	if (e == NULL) {
		if (c->hlen >= HBUF - 1)
			c->status = -1;	/* too long: malformed */
		return;
	}
	end = (size_t)(e - c->head) + 4;
	c->head_done = 1;
	if (parse_head(c, end) == -1)
		c->status = -1;
	/* what followed the head in this read, and what was not copied */
	c->body = (long long)(c->hlen - end) + (long long)(n - take);
}

static int
response_complete(const struct conn *c)
{
	if (!c->head_done)
		return 0;
	if (c->status == -1)
		return 1;
	if (c->clen >= 0)
		return c->body >= c->clen;
	return 0;	/* no length: until the end of the stream */
}

static void
drive(struct conn *c)
{
	struct thr *th = c->th;
	char buf[32768];
	int r, e, err;
	socklen_t elen;

	for (;;) {
		switch (c->st) {
		case S_CONNECTING:
			err = 0;
			elen = sizeof(err);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
			    &elen) == -1 || err != 0) {
				conn_fail(c, &th->st.connect_errors);
				return;
			}
			if ((c->ssl = SSL_new(th->ctx)) == NULL ||
			    SSL_set_fd(c->ssl, c->fd) != 1) {
				conn_fail(c, &th->st.tls_errors);
				return;
			}
			if (sni != NULL)
				SSL_set_tlsext_host_name(c->ssl, sni);
			c->offered = 0;
			if (c->sess != NULL &&
			    SSL_set_session(c->ssl, c->sess) == 1)
				c->offered = 1;
			SSL_set_connect_state(c->ssl);
			c->st = S_HANDSHAKE;
			break;
		case S_HANDSHAKE:
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				c->st = S_SEND;
				c->woff = 0;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return;
			conn_fail(c, &th->st.tls_errors);
			return;
		case S_SEND:
			r = SSL_write(c->ssl, req + c->woff,
			    (int)(reqlen - c->woff));
			if (r > 0) {
				c->woff += (size_t)r;
				if (c->woff == reqlen)
					c->st = S_RECV;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return;
			conn_fail(c, &th->st.tls_errors);
			return;
		case S_RECV:
			r = SSL_read(c->ssl, buf, sizeof(buf));
			if (r > 0) {
				on_bytes(c, buf, (size_t)r);
				if (response_complete(c)) {
					conn_done(c);
					return;
				}
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return;
			/* The end of the stream (close_notify, or a bare FIN). */
			if (c->head_done && c->clen < 0 && c->status != -1 &&
			    (e == SSL_ERROR_ZERO_RETURN ||
			    e == SSL_ERROR_SYSCALL)) {
				conn_done(c);
				return;
			}
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
				conn_fail(c, &th->st.http_errors);	/* cut short */
			else
				conn_fail(c, &th->st.tls_errors);
			return;
		default:
			return;
		}
	}
}

static void
conn_start(struct conn *c)
{
	struct thr *th = c->th;
	struct epoll_event ev;
	int one = 1;

	c->hlen = 0;
	c->head_done = 0;
	c->status = 0;
	c->clen = -1;
	c->body = 0;
	c->t0 = now();
	if (mode != M_CHECK && c->t0 >= t_end) {
		c->st = S_IDLE;
		return;
	}
	c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_fail(c, &th->st.connect_errors);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, salen) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, &th->st.connect_errors);
		return;
	}
	c->st = S_CONNECTING;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(th->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		conn_fail(c, &th->st.connect_errors);
		return;
	}
}

/* Timeouts and backoffs, every 10 ms or so. */
static void
scan(struct thr *th, double t)
{
	int i;

	for (i = 0; i < th->n; i++) {
		struct conn *c = &th->cs[i];

		switch (c->st) {
		case S_BACKOFF:
			if (t >= c->t_wake)
				conn_start(c);
			break;
		case S_CONNECTING:
		case S_HANDSHAKE:
		case S_SEND:
		case S_RECV:
			if (t - c->t0 > conn_timeout)
				conn_fail(c, &th->st.timeouts);
			break;
		default:
			break;
		}
	}
}

static SSL_CTX *
make_ctx(void)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	/* The sessions are kept by hand, one per client. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	return ctx;
}

static void *
thr_main(void *arg)
{
	struct thr *th = arg;
	struct epoll_event evs[256];
	double t, last_scan = 0;
	int i, n, busy;

	for (i = 0; i < th->n; i++)
		conn_start(&th->cs[i]);
	for (;;) {
		n = epoll_wait(th->ep, evs, 256, 10);
		if (n == -1 && errno != EINTR)
			break;
		for (i = 0; i < n; i++)
			drive(evs[i].data.ptr);
		t = now();
		if (t - last_scan >= 0.01) {
			scan(th, t);
			last_scan = t;
		}
		if (stop_sig || (mode != M_CHECK && t >= t_end))
			break;
		busy = 0;
		for (i = 0; i < th->n; i++)
			if (th->cs[i].st != S_IDLE)
				busy = 1;
		if (!busy)
			break;
	}
	for (i = 0; i < th->n; i++) {
		conn_close(&th->cs[i]);
		if (th->cs[i].sess != NULL)
			SSL_SESSION_free(th->cs[i].sess);
	}
	return NULL;
}

/* ---------------------------------------------------------------- main */

static int
parse_host(const char *host, const char *port, int any)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	char hosthdr[128];
	char *end;
	long p;
	int n;

	p = strtol(port, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return -1;
	memset(&sa, 0, sizeof(sa));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		salen = sizeof(*s4);
		if (!any && (ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			die("not a loopback address (-A allows any)");
		snprintf(hosthdr, sizeof(hosthdr), "%s:%ld", host, p);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		salen = sizeof(*s6);
		if (!any && !IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			die("not a loopback address (-A allows any)");
		snprintf(hosthdr, sizeof(hosthdr), "[%s]:%ld", host, p);
	} else
		return -1;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: tlsload\r\nConnection: close\r\n\r\n",
	    path, sni != NULL ? sni : hosthdr);
	if (n < 0 || (size_t)n >= sizeof(req))
		die("request too long");
	reqlen = (size_t)n;
	return 0;
}

static double
num(const char *s, double lo, double hi, const char *what)
{
	char *end, msg[128];
	double v;

	v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
		snprintf(msg, sizeof(msg), "%s: %g to %g, not '%s'", what,
		    lo, hi, s);
		die(msg);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const char *names[] = { "full", "resume", "check" };
	struct sigaction sac;
	struct rlimit rl;
	struct rusage ru;
	struct thr *ths;
	struct stats tot;
	const char *info = "proto=- cipher=- group=- alpn=- key=-";
	char lat[128] = "p50_ms=- p99_ms=- max_ms=-";
	double t0, run, cpu = 0;
	unsigned long errors;
	int ch, any = 0, i, k, per, extra;
	size_t b;

	while ((ch = getopt(argc, argv, "m:c:t:d:p:b:n:V:T:A")) != -1) {
		switch (ch) {
		case 'm':
			if (strcmp(optarg, "full") == 0)
				mode = M_FULL;
			else if (strcmp(optarg, "resume") == 0)
				mode = M_RESUME;
			else if (strcmp(optarg, "check") == 0)
				mode = M_CHECK;
			else
				usage();
			break;
		case 'c':
			nconns = (int)num(optarg, 1, MAX_CONNS, "-c");
			break;
		case 't':
			nthreads = (int)num(optarg, 1, MAX_THREADS, "-t");
			break;
		case 'd':
			secs = num(optarg, 0.1, MAX_SECONDS, "-d");
			break;
		case 'p':
			path = optarg;
			if (path[0] != '/' || strlen(path) > 512 ||
			    strpbrk(path, " \t\r\n") != NULL)
				die("-p: a path starting with /, at most 512 "
				    "bytes, no space");
			break;
		case 'b':
			want_body = (long long)num(optarg, 0, 1e15, "-b");
			break;
		case 'n':
			sni = strcmp(optarg, "-") == 0 ? NULL : optarg;
			if (sni != NULL && (strlen(sni) > 253 ||
			    strpbrk(sni, " \t\r\n/") != NULL))
				die("-n: a host name");
			break;
		case 'V':
			if (strcmp(optarg, "1.2") == 0)
				max_version = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				max_version = TLS1_3_VERSION;
			else
				usage();
			break;
		case 'T':
			conn_timeout = num(optarg, 0.1, 60, "-T");
			break;
		case 'A':
			any = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	if (parse_host(argv[optind], argv[optind + 1], any) == -1)
		usage();
	if (mode == M_CHECK)
		nconns = nthreads = 1;
	if (nthreads > nconns)
		nthreads = nconns;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nconns + 64) {
		rl.rlim_cur = (rlim_t)nconns + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			die("the descriptor limit (ulimit -Hn) is below -c");
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			die("cannot raise the descriptor limit");
	}
	memset(&sac, 0, sizeof(sac));
	sac.sa_handler = on_signal;
	sigemptyset(&sac.sa_mask);
	sigaction(SIGTERM, &sac, NULL);
	sigaction(SIGINT, &sac, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((ths = calloc((size_t)nthreads, sizeof(*ths))) == NULL)
		die("out of memory");
	per = nconns / nthreads;
	extra = nconns % nthreads;
	for (i = 0; i < nthreads; i++) {
		struct thr *th = &ths[i];

		th->idx = i;
		th->n = per + (i < extra);
		if ((th->cs = calloc((size_t)th->n, sizeof(*th->cs))) == NULL)
			die("out of memory");
		for (k = 0; k < th->n; k++) {
			th->cs[k].th = th;
			th->cs[k].fd = -1;
			th->cs[k].st = S_IDLE;
		}
		if ((th->ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			die("epoll_create1 failed");
		if ((th->ctx = make_ctx()) == NULL)
			die("SSL_CTX_new failed");
		if (mode == M_CHECK)
			th->stop_after = 2;
	}

	t0 = now();
	t_end = t0 + secs;
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&ths[i].tid, NULL, thr_main, &ths[i]) != 0)
			die("pthread_create failed");
	for (i = 0; i < nthreads; i++)
		pthread_join(ths[i].tid, NULL);
	run = now() - t0;
	if (mode != M_CHECK && run > secs)
		run = secs;	/* what completed after t_end is not counted */
	if (run <= 0)
		run = 1e-9;

	memset(&tot, 0, sizeof(tot));
	for (i = 0; i < nthreads; i++) {
		struct stats *s = &ths[i].st;

		tot.done += s->done;
		tot.full += s->full;
		tot.resumed += s->resumed;
		tot.offered += s->offered;
		tot.connect_errors += s->connect_errors;
		tot.tls_errors += s->tls_errors;
		tot.http_errors += s->http_errors;
		tot.timeouts += s->timeouts;
		if (s->last_status != 0)
			tot.last_status = s->last_status;
		for (b = 0; b < NBUCKET; b++)
			tot.hist[b] += s->hist[b];
		tot.nhist += s->nhist;
		if (s->max_lat > tot.max_lat)
			tot.max_lat = s->max_lat;
		if (ths[i].have_info && strcmp(info, "proto=- cipher=- "
		    "group=- alpn=- key=-") == 0)
			info = ths[i].info;
	}
	if (tot.nhist > 0)
		snprintf(lat, sizeof(lat), "p50_ms=%.3f p99_ms=%.3f "
		    "max_ms=%.3f", quantile(&tot, 0.50), quantile(&tot, 0.99),
		    tot.max_lat * 1000);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) /
		    1e6;
	errors = tot.connect_errors + tot.tls_errors + tot.http_errors +
	    tot.timeouts;
	printf("tlsload mode=%s conns=%d threads=%d secs=%.2f done=%llu "
	    "per_s=%.0f full=%llu resumed=%llu offered=%llu %s errors=%lu "
	    "connect_errors=%lu tls_errors=%lu http_errors=%lu timeouts=%lu "
	    "%s last_status=%d cpu_s=%.2f\n", names[mode], nconns, nthreads, run,
	    tot.done, (double)tot.done / run, tot.full, tot.resumed,
	    tot.offered, lat,
	    errors, tot.connect_errors, tot.tls_errors, tot.http_errors,
	    tot.timeouts, info, tot.last_status, cpu);
	fflush(stdout);
	for (i = 0; i < nthreads; i++) {
		free(ths[i].cs);
		SSL_CTX_free(ths[i].ctx);
		close(ths[i].ep);
	}
	free(ths);
	if (mode == M_CHECK)
		return tot.done == 2 ? 0 : 1;
	return 0;
}
