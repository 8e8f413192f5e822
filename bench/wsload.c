/*
 * wsload: a WebSocket load client for bench/run.
 *
 *   wsload [-m open|echo|hold|check] [-c conns] [-d seconds] [-p path]
 *          [-s size] [-T timeout] [-A] host port
 *
 * Every session is an RFC 6455 client session: an HTTP/1.1 upgrade (the
 * Sec-WebSocket-Accept of the 101 is checked), masked client frames, pings
 * answered, and the closing handshake (Close 1000, the server's Close
 * awaited, then the server's FIN, for a second at most).  The message is a
 * text message of -s bytes (default 32) of lower-case letters, never a
 * newline: a line-oriented program such as cat, run by websocketd or by
 * preforkd's "websocket" (text mode), sends it back as one message, which
 * must be byte for byte what was sent.
 *
 * Modes:
 *   open   -c clients, each opening sessions back to back for -d seconds:
 *          handshake, one echo round trip, closing handshake, again.
 *          Reports sessions/s and the time of a whole session.
 *   echo   opens -c sessions first; once all are open (or after 60 s),
 *          each does back-to-back round trips for -d seconds.  Reports
 *          round trips/s and their latency (send to echo received).
 *   hold   opens -c sessions (handshake and one round trip each), prints
 *          "wsload ready held=N ..." once all are open (or after 60 s),
 *          keeps them open (answering pings) for -d seconds or until
 *          SIGTERM, SIGINT or SIGUSR1, then closes them.
 *   check  -c sessions, one each (handshake, round trip, close); exits 0
 *          when all succeeded.
 * A session that fails in open or echo mode is replaced (after 10 ms).
 * SIGTERM, SIGINT or SIGUSR1 end any mode early; the line is still printed.
 *
 * Output: one line of key=value (hold: the ready line first), e.g.
 *   wsload mode=echo conns=50 secs=5.00 size=32 rt=123456 rt_per_s=24691
 *   p50_ms=1.900 p99_ms=4.200 max_ms=9.100 setup_ms=12 errors=0 ...
 * errors is the sum of connect_errors, handshake_errors (no 101, a wrong
 * Sec-WebSocket-Accept; last_status is the last status seen instead of
 * 101), protocol_errors (a bad frame, a wrong echo), closed (EOF, reset or
 * a Close the client did not ask for) and timeouts (a step that took more
 * than -T seconds, default 5); last_close is the code of the last Close the
 * server sent on its own (1005: none in it).  no_fin counts sessions whose server did not
 * close TCP within a second of the closing handshake (not an error).
 * Latencies come from a log-linear histogram (1/64 relative precision).
 *
 * Safety: loopback only (127.0.0.0/8, ::1) unless -A, at most MAX_CONNS
 * sessions, at most MAX_SECONDS seconds, messages of at most MAX_SIZE.
 * One thread, non-blocking sockets, epoll; C11 and POSIX, libc only.
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

#define MAX_CONNS	20000
#define MAX_SECONDS	600
#define MAX_SIZE	65536
#define SETUP_SECONDS	60.0	/* echo, hold: opening every session */
#define DRAIN_SECONDS	5.0	/* closing handshakes after the run */
#define FIN_SECONDS	1.0	/* the server's FIN after the handshake */
#define BACKOFF_SECONDS	0.01
#define IBUF_MIN	8192
#define NSUB		64	/* histogram: sub-buckets per power of two */
#define NBUCKET		(2 * NSUB + 34 * NSUB)	/* 1 us .. 2^40 us */

enum mode { M_OPEN, M_ECHO, M_HOLD, M_CHECK };
enum phase { P_SETUP, P_RUN, P_DRAIN };
enum st { S_BACKOFF, S_CONNECTING, S_HANDSHAKE, S_READY, S_ECHO, S_HELD,
	S_CLOSING, S_FIN_WAIT, S_DONE };

struct conn {
	int		 fd;
	enum st		 st;
	uint32_t	 events;	/* registered with epoll */
	double		 t_sess;	/* session's connect started */
	double		 t_rt;		/* message sent */
	double		 t_dead;	/* deadline of the current step, or 0 */
	uint32_t	 seq;		/* of the message in flight */
	int		 in_msg;	/* a fragmented message goes on */
	int		 msg_op;
	size_t		 mlen;
	unsigned char	*msg;		/* MAX(size, 125) bytes */
	unsigned char	*ibuf;
	size_t		 ilen;
	unsigned char	*obuf;
	size_t		 olen, ooff;
	char		 accept[32];	/* expected Sec-WebSocket-Accept */
};

static enum mode	 mode = M_ECHO;
static enum phase	 phase;
static int		 nconns = 50;
static double		 secs = 5;
static double		 step_timeout = 5;
static size_t		 size = 32;
static const char	*path = "/ws";
static char		 hosthdr[128];
static struct sockaddr_storage sa;
static socklen_t	 salen;
static int		 ep;
static struct conn	*cs;
static size_t		 icap, ocap, mcap;
static int		 nready;	/* conns in S_READY or S_HELD */
static int		 ndone;
static int		 held;		/* hold: sessions open at the end */
static volatile sig_atomic_t stop_sig;
static uint64_t		 rng;

static struct {
	unsigned long long rt, sessions;
	unsigned long	 connect_errors, handshake_errors, protocol_errors;
	unsigned long	 closed, timeouts, no_fin;
	int		 last_status;
	int		 last_close;	/* code of a Close not asked for */
} cnt;
static uint64_t		 hist[NBUCKET];
static uint64_t		 nhist;
static double		 max_lat;

static void
usage(void)
{
	fprintf(stderr, "usage: wsload [-m open|echo|hold|check] [-c conns] "
	    "[-d seconds] [-p path] [-s size] [-T timeout] [-A] host port\n");
	exit(2);
}

static void
die(const char *what)
{
	fprintf(stderr, "wsload: %s\n", what);
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static void
on_signal(int sig)
{
	stop_sig = sig;
}

/* ---------------------------------------------------------------- SHA-1 */

static uint32_t
rol(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

static void
sha1(const unsigned char *p, size_t n, unsigned char out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
	    0xC3D2E1F0 };
	unsigned char blk[64];
	uint64_t bits = (uint64_t)n * 8;
	size_t off = 0, i;
	int last = 0, padded = 0;

	while (!last) {
		uint32_t w[80], a, b, c, d, e, f, k, t;
		size_t take = n - off < 64 ? n - off : 64;

		memset(blk, 0, sizeof(blk));
		memcpy(blk, p + off, take);
		off += take;
		if (take < 64 && !padded) {
			blk[take] = 0x80;
			padded = 1;
		}
		if (take < 56 && padded) {
			for (i = 0; i < 8; i++)
				blk[63 - i] = (unsigned char)(bits >> (8 * i));
			last = 1;
		}
		for (i = 0; i < 16; i++)
			w[i] = (uint32_t)blk[4 * i] << 24 |
			    (uint32_t)blk[4 * i + 1] << 16 |
			    (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
		for (i = 16; i < 80; i++)
			w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
		a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
		for (i = 0; i < 80; i++) {
			if (i < 20)
				f = (b & c) | (~b & d), k = 0x5A827999;
			else if (i < 40)
				f = b ^ c ^ d, k = 0x6ED9EBA1;
			else if (i < 60)
				f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
			else
				f = b ^ c ^ d, k = 0xCA62C1D6;
			t = rol(a, 5) + f + e + k + w[i];
			e = d, d = c, c = rol(b, 30), b = a, a = t;
		}
		h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
	}
	for (i = 0; i < 20; i++)
		out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void
base64(const unsigned char *p, size_t n, char *out)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*out++ = t[p[i] >> 2];
		*out++ = t[(p[i] & 3) << 4 | p[i + 1] >> 4];
		*out++ = t[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		*out++ = t[p[i + 2] & 63];
	}
	if (i < n) {
		*out++ = t[p[i] >> 2];
		if (i + 1 < n) {
			*out++ = t[(p[i] & 3) << 4 | p[i + 1] >> 4];
			*out++ = t[(p[i + 1] & 15) << 2];
		} else {
			*out++ = t[(p[i] & 3) << 4];
			*out++ = '=';
		}
		*out++ = '=';
	}
	*out = '\0';
}

/* ---------------------------------------------------------- histogram */

static void
record(double s)
{
	uint64_t v = s <= 0 ? 0 : (uint64_t)(s * 1e6 + 0.5);
	int idx, msb;

	if (s > max_lat)
		max_lat = s;
	if (v >= (1ULL << 40))
		v = (1ULL << 40) - 1;
	if (v < 2 * NSUB)
		idx = (int)v;
	else {
		msb = 63 - __builtin_clzll(v);
		idx = 2 * NSUB + (msb - 7) * NSUB +
		    (int)((v >> (msb - 6)) - NSUB);
	}
	hist[idx]++;
	nhist++;
}

/* The middle of the bucket holding the p-th quantile, in ms. */
static double
quantile(double p)
{
	uint64_t want = (uint64_t)(p * nhist + 0.999999), cum = 0;
	int i, k, shift;

	if (want < 1)
		want = 1;
	for (i = 0; i < NBUCKET; i++) {
		cum += hist[i];
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

/* ---------------------------------------------------------- sessions */

static void	conn_start(struct conn *);
static void	conn_fail(struct conn *, unsigned long *);

static void
set_events(struct conn *c)
{
	struct epoll_event ev;
	uint32_t want;

	if (c->st == S_CONNECTING)
		want = EPOLLOUT;
	else
		want = EPOLLIN | (c->olen > c->ooff ? EPOLLOUT : 0);
	if (want == c->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
	    &ev) == -1)
		die("epoll_ctl failed");
	c->events = want;
}

static void
close_fd(struct conn *c)
{
	if (c->fd != -1) {
		close(c->fd);		/* leaves the epoll set with it */
		c->fd = -1;
	}
	c->events = 0;
	c->t_dead = 0;
	c->ilen = c->olen = c->ooff = 0;
	c->in_msg = 0;
	c->mlen = 0;
}

static void
set_done(struct conn *c)
{
	close_fd(c);
	if (c->st != S_DONE) {
		c->st = S_DONE;
		ndone++;
	}
}

static void
leave_ready(struct conn *c)
{
	if (c->st == S_READY || c->st == S_HELD)
		nready--;
}

/* Write what waits; 0, or -1 when the connection failed. */
static int
flush(struct conn *c)
{
	ssize_t n;

	while (c->ooff < c->olen) {
		n = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->ooff += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_fail(c, &cnt.closed);
		return -1;
	}
	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	set_events(c);
	return 0;
}

/* Room for n more bytes of output, or NULL. */
static unsigned char *
out_room(struct conn *c, size_t n)
{
	if (c->olen + n > ocap && c->ooff > 0) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->olen + n > ocap)
		return NULL;
	return c->obuf + c->olen;
}

/*
 * Queue a masked frame; the payload is p, or when p is NULL the letters of
 * message seq.  0, or -1 when there was no room.
 */
static int
put_frame(struct conn *c, int op, const unsigned char *p, size_t n,
    uint32_t seq)
{
	unsigned char *o, mask[4];
	uint64_t r = rnd();
	size_t h, i;

	if ((o = out_room(c, n + 14)) == NULL)
		return -1;
	o[0] = (unsigned char)(0x80 | op);
	if (n < 126) {
		o[1] = (unsigned char)(0x80 | n);
		h = 2;
	} else if (n < 65536) {
		o[1] = 0x80 | 126;
		o[2] = (unsigned char)(n >> 8);
		o[3] = (unsigned char)n;
		h = 4;
	} else {
		o[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			o[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		h = 10;
	}
	memcpy(mask, &r, 4);
	memcpy(o + h, mask, 4);
	h += 4;
	for (i = 0; i < n; i++)
		o[h + i] = (unsigned char)((p ? p[i] :
		    'a' + (seq + i) % 26) ^ mask[i & 3]);
	c->olen += h + n;
	return 0;
}

static void
send_msg(struct conn *c)
{
	leave_ready(c);
	c->st = S_ECHO;
	c->seq = (uint32_t)rnd();
	if (put_frame(c, 1, NULL, size, c->seq) == -1) {
		conn_fail(c, &cnt.protocol_errors);
		return;
	}
	c->t_rt = now();
	c->t_dead = c->t_rt + step_timeout;
	flush(c);
}

static void
start_close(struct conn *c)
{
	static const unsigned char code[2] = { 0x03, 0xe8 };	/* 1000 */

	leave_ready(c);
	c->st = S_CLOSING;
	if (put_frame(c, 8, code, 2, 0) == -1) {
		conn_fail(c, &cnt.protocol_errors);
		return;
	}
	c->t_dead = now() + step_timeout;
	flush(c);
}

/* Where a connection goes once a session ended (well or not). */
static void
next_session(struct conn *c, int failed)
{
	close_fd(c);
	if (phase == P_DRAIN || mode == M_CHECK ||
	    (mode == M_HOLD && phase == P_RUN)) {
		set_done(c);
		return;
	}
	if (failed) {
		c->st = S_BACKOFF;
		c->t_dead = now() + BACKOFF_SECONDS;
	} else
		conn_start(c);
}

static void
conn_fail(struct conn *c, unsigned long *counter)
{
	(*counter)++;
	leave_ready(c);
	next_session(c, 1);
}

static void
conn_start(struct conn *c)
{
	unsigned char key[16], dig[20];
	char k64[32], buf[96];
	uint64_t r1 = rnd(), r2 = rnd();
	int n, one = 1;

	c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		cnt.connect_errors++;
		c->st = S_BACKOFF;
		c->t_dead = now() + BACKOFF_SECONDS;
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_sess = now();
	memcpy(key, &r1, 8);
	memcpy(key + 8, &r2, 8);
	base64(key, 16, k64);
	n = snprintf(buf, sizeof(buf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
	    k64);
	sha1((unsigned char *)buf, (size_t)n, dig);
	base64(dig, 20, c->accept);
	n = snprintf((char *)c->obuf, ocap, "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    path, hosthdr, k64);
	c->olen = (size_t)n;
	c->ooff = 0;
	c->t_dead = c->t_sess + step_timeout;
	if (connect(c->fd, (struct sockaddr *)&sa, salen) == 0) {
		c->st = S_HANDSHAKE;
		flush(c);
	} else if (errno == EINPROGRESS) {
		c->st = S_CONNECTING;
		set_events(c);
	} else
		conn_fail(c, &cnt.connect_errors);
}

static void
connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0) {
		conn_fail(c, &cnt.connect_errors);
		return;
	}
	c->st = S_HANDSHAKE;
	flush(c);
}

/* After the 101: what the session does first. */
static void
opened(struct conn *c)
{
	if (phase == P_DRAIN)
		start_close(c);
	else if (mode == M_ECHO && phase == P_SETUP) {
		c->st = S_READY;
		c->t_dead = 0;
		nready++;
	} else
		send_msg(c);
}

/* Parse the 101; 1 when done, 0 for more bytes, -1 on failure. */
static int
handshake(struct conn *c)
{
	unsigned char *end;
	char *line, *eol, *v;
	size_t hl;
	int code = 0, ok = 0;

	end = memmem(c->ibuf, c->ilen, "\r\n\r\n", 4);
	if (end == NULL) {
		if (c->ilen >= icap) {
			conn_fail(c, &cnt.handshake_errors);
			return -1;
		}
		return 0;
	}
	hl = (size_t)(end - c->ibuf) + 4;
	*end = '\0';
	if (sscanf((char *)c->ibuf, "HTTP/1.%*d %d", &code) != 1)
		code = -1;
	if (code != 101) {
		cnt.last_status = code;
		conn_fail(c, &cnt.handshake_errors);
		return -1;
	}
	for (line = (char *)c->ibuf; line != NULL; line = eol) {
		eol = strstr(line, "\r\n");
		if (eol != NULL) {
			*eol = '\0';
			eol += 2;
		}
		if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) != 0)
			continue;
		for (v = line + 21; *v == ' ' || *v == '\t'; v++)
			;
		ok = strncmp(v, c->accept, 28) == 0 &&
		    (v[28] == '\0' || v[28] == ' ' || v[28] == '\t');
	}
	if (!ok) {
		cnt.last_status = 101;
		conn_fail(c, &cnt.handshake_errors);
		return -1;
	}
	memmove(c->ibuf, c->ibuf + hl, c->ilen - hl);
	c->ilen -= hl;
	opened(c);
	return 1;
}

/* A whole data message arrived. */
static void
on_message(struct conn *c)
{
	double t = now();
	size_t i;

	if (c->st != S_ECHO) {
		if (c->st == S_CLOSING || c->st == S_FIN_WAIT)
			return;		/* may cross our Close */
		conn_fail(c, &cnt.protocol_errors);
		return;
	}
	if (c->msg_op != 1 || c->mlen != size)
		goto bad;
	for (i = 0; i < size; i++)
		if (c->msg[i] != 'a' + (c->seq + i) % 26)
			goto bad;
	switch (mode) {
	case M_ECHO:
		if (phase == P_RUN) {
			cnt.rt++;
			record(t - c->t_rt);
			send_msg(c);
		} else
			start_close(c);
		break;
	case M_HOLD:
		if (phase == P_DRAIN)
			start_close(c);
		else {
			c->st = S_HELD;
			c->t_dead = 0;
			nready++;
		}
		break;
	default:
		start_close(c);
		break;
	}
	return;
bad:
	conn_fail(c, &cnt.protocol_errors);
}

static void
on_close_frame(struct conn *c)
{
	if (c->st != S_CLOSING) {
		/* The server closes on its own: answer, count, go on. */
		cnt.last_close = c->mlen >= 2 ? c->msg[0] << 8 | c->msg[1] :
		    1005;
		if (put_frame(c, 8, c->msg, c->mlen >= 2 ? 2 : 0, 0) == 0)
			(void)send(c->fd, c->obuf + c->ooff,
			    c->olen - c->ooff, MSG_NOSIGNAL);
		conn_fail(c, &cnt.closed);
		return;
	}
	if ((mode == M_OPEN && phase == P_RUN) || mode == M_CHECK) {
		cnt.sessions++;
		record(now() - c->t_sess);
	}
	c->st = S_FIN_WAIT;
	c->t_dead = now() + FIN_SECONDS;
}

/* Frames in ibuf; 0, or -1 when the connection is gone. */
static int
frames(struct conn *c)
{
	unsigned char *p;
	uint64_t len;
	size_t h, i, off = 0;
	int op, fin;

	while (c->fd != -1 && c->st != S_FIN_WAIT) {
		p = c->ibuf + off;
		if (c->ilen - off < 2)
			break;
		fin = p[0] & 0x80;
		op = p[0] & 0x0f;
		if ((p[0] & 0x70) || (p[1] & 0x80))	/* RSV, masked */
			goto bad;
		len = p[1] & 0x7f;
		h = 2;
		if (len == 126) {
			if (c->ilen - off < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			h = 4;
		} else if (len == 127) {
			if (c->ilen - off < 10)
				break;
			for (len = 0, i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			h = 10;
		}
		if (len > icap - h)
			goto bad;
		if (c->ilen - off < h + len)
			break;
		off += h + len;
		p += h;
		if (op >= 8) {		/* control */
			if (!fin || len > 125)
				goto bad;
			if (op == 9) {
				if (put_frame(c, 10, p, len, 0) == -1)
					goto bad;
				if (flush(c) == -1)
					return -1;
			} else if (op == 8) {
				memcpy(c->msg, p, len);
				c->mlen = len;
				on_close_frame(c);
			} else if (op != 10)
				goto bad;
			continue;
		}
		if (op == 0 ? !c->in_msg : (op > 2 || c->in_msg))
			goto bad;
		if (op != 0) {
			c->msg_op = op;
			c->mlen = 0;
		}
		if (c->mlen + len > mcap)
			goto bad;	/* longer than what was sent */
		memcpy(c->msg + c->mlen, p, len);
		c->mlen += len;
		c->in_msg = !fin;
		if (fin) {
			c->in_msg = 0;
			on_message(c);
		}
	}
	if (c->fd == -1)
		return -1;
	if (c->st == S_FIN_WAIT)
		off = c->ilen;		/* after the Close: ignored */
	memmove(c->ibuf, c->ibuf + off, c->ilen - off);
	c->ilen -= off;
	return 0;
bad:
	conn_fail(c, &cnt.protocol_errors);
	return -1;
}

static void
readable(struct conn *c)
{
	ssize_t n;
	size_t avail;

	for (;;) {
		if (c->ilen >= icap) {
			conn_fail(c, &cnt.protocol_errors);
			return;
		}
		avail = icap - c->ilen;
		n = recv(c->fd, c->ibuf + c->ilen, avail, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			if (c->st == S_FIN_WAIT)
				next_session(c, 0);	/* the server's FIN */
			else
				conn_fail(c, &cnt.closed);
			return;
		}
		if (c->st == S_FIN_WAIT)
			continue;	/* after the Close: ignored */
		c->ilen += (size_t)n;
		if (c->st == S_HANDSHAKE && handshake(c) != 1)
			return;
		if (c->st != S_HANDSHAKE && frames(c) == -1)
			return;
		if ((size_t)n < avail)
			return;		/* a short read: drained */
	}
}

static void
on_event(struct conn *c, uint32_t ev)
{
	if (c->st == S_CONNECTING) {
		connected(c);
		return;
	}
	if (ev & EPOLLOUT) {
		if (flush(c) == -1)
			return;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		readable(c);
}

/* Deadlines, every 50 ms. */
static void
scan(double t)
{
	struct conn *c;
	int i;

	for (i = 0; i < nconns; i++) {
		c = &cs[i];
		if (c->t_dead == 0 || t < c->t_dead)
			continue;
		switch (c->st) {
		case S_BACKOFF:
			c->t_dead = 0;
			if (phase == P_DRAIN)
				set_done(c);
			else
				conn_start(c);
			break;
		case S_FIN_WAIT:
			cnt.no_fin++;
			next_session(c, 0);
			break;
		case S_CONNECTING:
		case S_HANDSHAKE:
		case S_ECHO:
		case S_CLOSING:
			conn_fail(c, &cnt.timeouts);
			break;
		default:
			c->t_dead = 0;
			break;
		}
	}
}

/* The run is over: close what is open, abandon what is not. */
static void
drain(void)
{
	struct conn *c;
	int i;

	phase = P_DRAIN;
	for (i = 0; i < nconns; i++) {
		c = &cs[i];
		switch (c->st) {
		case S_BACKOFF:
		case S_CONNECTING:
			set_done(c);
			break;
		case S_READY:
		case S_HELD:
			start_close(c);
			break;
		default:
			break;		/* finishes its step, then closes */
		}
	}
}

static int
parse_host(const char *host, const char *port, int any)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	char *end;
	long p;

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

static void
report(double t_go, double t_stop, double setup_ms)
{
	static const char *names[] = { "open", "echo", "hold", "check" };
	double run = t_stop - t_go;
	unsigned long errors = cnt.connect_errors + cnt.handshake_errors +
	    cnt.protocol_errors + cnt.closed + cnt.timeouts;
	char lat[128] = "p50_ms=- p99_ms=- max_ms=-";

	if (run <= 0)
		run = 1e-9;
	if (nhist > 0)
		snprintf(lat, sizeof(lat), "p50_ms=%.3f p99_ms=%.3f "
		    "max_ms=%.3f", quantile(0.50), quantile(0.99),
		    max_lat * 1000);
	printf("wsload mode=%s conns=%d secs=%.2f size=%zu ", names[mode],
	    nconns, run, size);
	switch (mode) {
	case M_ECHO:
		printf("rt=%llu rt_per_s=%.0f %s setup_ms=%.0f ", cnt.rt,
		    cnt.rt / run, lat, setup_ms);
		break;
	case M_OPEN:
	case M_CHECK:
		printf("sessions=%llu sessions_per_s=%.0f %s ", cnt.sessions,
		    cnt.sessions / run, lat);
		break;
	case M_HOLD:
		printf("held_at_end=%d setup_ms=%.0f ", held, setup_ms);
		break;
	}
	printf("errors=%lu connect_errors=%lu handshake_errors=%lu "
	    "protocol_errors=%lu closed=%lu timeouts=%lu no_fin=%lu "
	    "last_status=%d last_close=%d\n", errors, cnt.connect_errors,
	    cnt.handshake_errors, cnt.protocol_errors, cnt.closed,
	    cnt.timeouts, cnt.no_fin, cnt.last_status, cnt.last_close);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct sigaction sac;
	struct rlimit rl;
	double t0, t, t_go = 0, t_end = 0, t_drain = 0, last_scan = 0;
	double setup_ms = 0;
	int ch, any = 0, i, n;

	while ((ch = getopt(argc, argv, "m:c:d:p:s:T:A")) != -1) {
		switch (ch) {
		case 'm':
			if (strcmp(optarg, "open") == 0)
				mode = M_OPEN;
			else if (strcmp(optarg, "echo") == 0)
				mode = M_ECHO;
			else if (strcmp(optarg, "hold") == 0)
				mode = M_HOLD;
			else if (strcmp(optarg, "check") == 0)
				mode = M_CHECK;
			else
				usage();
			break;
		case 'c':
			nconns = (int)num(optarg, 1, MAX_CONNS, "-c");
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
		case 's':
			size = (size_t)num(optarg, 1, MAX_SIZE, "-s");
			break;
		case 'T':
			step_timeout = num(optarg, 0.1, 60, "-T");
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
	sigaction(SIGUSR1, &sac, NULL);
	signal(SIGPIPE, SIG_IGN);

	rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(now() * 1e9);
	if (rng == 0)
		rng = 1;
	mcap = size < 125 ? 125 : size;
	icap = size + 14 + 256 < IBUF_MIN ? IBUF_MIN : size + 14 + 256;
	ocap = size + 14 + 1024;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1 failed");
	if ((cs = calloc((size_t)nconns, sizeof(*cs))) == NULL)
		die("out of memory");
	for (i = 0; i < nconns; i++) {
		cs[i].fd = -1;
		cs[i].msg = malloc(mcap);
		cs[i].ibuf = malloc(icap);
		cs[i].obuf = malloc(ocap);
		if (!cs[i].msg || !cs[i].ibuf || !cs[i].obuf)
			die("out of memory");
	}

	t0 = now();
	if (mode == M_OPEN || mode == M_CHECK) {
		phase = P_RUN;
		t_go = t0;
		t_end = t0 + secs;
	} else
		phase = P_SETUP;
	for (i = 0; i < nconns; i++)
		conn_start(&cs[i]);

	for (;;) {
		n = epoll_wait(ep, evs, 256, 10);
		if (n == -1 && errno != EINTR)
			die("epoll_wait failed");
		for (i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		t = now();
		if (t - last_scan >= 0.05) {
			scan(t);
			last_scan = t;
		}
		if (phase == P_SETUP && (nready == nconns || stop_sig ||
		    t - t0 >= SETUP_SECONDS)) {
			phase = P_RUN;
			t_go = t;
			t_end = t + secs;
			setup_ms = (t - t0) * 1000;
			if (mode == M_ECHO) {
				for (i = 0; i < nconns; i++)
					if (cs[i].st == S_READY)
						send_msg(&cs[i]);
			} else {
				printf("wsload ready held=%d setup_ms=%.0f "
				    "errors=%lu\n", nready, setup_ms,
				    cnt.connect_errors +
				    cnt.handshake_errors +
				    cnt.protocol_errors + cnt.closed +
				    cnt.timeouts);
				fflush(stdout);
			}
		}
		if (phase == P_RUN && (t >= t_end || stop_sig ||
		    ndone == nconns)) {
			/* What completed until now was counted. */
			t_end = t;
			held = nready;
			drain();
			t_drain = now();
		}
		if (phase == P_DRAIN && (ndone == nconns ||
		    now() - t_drain >= DRAIN_SECONDS))
			break;
	}
	for (i = 0; i < nconns; i++)
		close_fd(&cs[i]);
	report(t_go, t_end, setup_ms);
	if (mode == M_CHECK)
		return cnt.sessions == (unsigned long long)nconns ? 0 : 1;
	return 0;
}
