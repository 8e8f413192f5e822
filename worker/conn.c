/*
 * Connections: one request at a time, with deadlines.  Sockets are
 * non-blocking: recv() and send() are tried first (the request is
 * usually there already, thanks to TCP_DEFER_ACCEPT, and the response
 * usually fits in the socket buffer), and poll() waits only when they
 * cannot go on: for reads up to the header and keep-alive deadlines, for
 * writes up to send_timeout without progress.
 *
 * Between requests a keep-alive connection does not hold the worker: it
 * is parked in the worker's epoll set (up to worker_connections of them),
 * and the worker waits for whichever parked connection speaks first, or
 * for a new connection on the listeners.  One wake-up then serves every
 * request that arrived meanwhile, instead of one wake-up per request, and
 * a few workers hold thousands of idle clients without leaving any in the
 * accept queue.  A worker with nothing parked blocks in accept(2).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "alog.h"
#include "cfg.h"
#include "conn.h"
#include "file.h"
#include "http.h"
#include "log.h"
#include "sb.h"
#include "sock.h"
#include "status.h"
#include "worker.h"

#define LINGER_MS	2000		/* drain unread input before close */
#define STOP_GRACE_MS	500		/* idle keep-alive grace on stop */
#define FAIR_WAIT_MS	100		/* aim: queued clients wait no longer */
#define LINGER_BYTES	((size_t)256 * 1024)
#define BUSY_CHECK_MS	100		/* how often a slow read looks at the queue */
#define WRITE_CHECK_MS	1000		/* how often a stalled write looks for progress */

struct conn {
	int		 fd;
	int		 lfd;
	int		 slot;		/* in pool[], -1: cannot be parked */
	int		 woken;		/* epoll says it has something to read */
	int		 prev, next;	/* parked: oldest first; free: next */
	int		 in_ep;		/* registered with epfd */
	int		 parked;
	int64_t		 idle_since;	/* ms: parked since */
	size_t		 len;		/* bytes in buf */
	unsigned	 nreq;
	int		 keep;		/* keep the connection after this */
	int		 dirty;		/* unread input may remain */
	int		 hurry;		/* dropped while others wait: no linger */
	int64_t		 since;		/* ms: accepted; fairness slice start */
	int		 status;	/* of the last response, for the log */
	long long	 sent;		/* its body bytes */
	char		 peer[64];	/* client address, when logging */
	/* The client, for status_allow; peer_len 0 when not known. */
	struct sockaddr_storage peer_ss;
	socklen_t	 peer_len;
};

struct hbuf {
	char	b[2048];
	size_t	n;
};

/*
 * A read against a minimum rate, as Apache's mod_reqtimeout does it: the
 * deadline is base ms after the start, plus one second for every rate
 * bytes received, but never more than cap ms after the start.
 */
struct pace {
	int64_t	start;		/* ms */
	int64_t	base, cap;	/* ms */
	size_t	rate;		/* bytes/s; 0: received bytes earn nothing */
	size_t	got;		/* bytes received since start */
};

static const struct worker_env	*env;
static char			*buf;
static size_t			 bufcap;
static struct http_limits	 lim;
static struct http_req		 req;
static char			 server_hdr[64];
static char			*locbuf;	/* Location header */
static size_t			 loccap;

/* Parked connections (see the top of this file). */
#define LISTEN_TAG	(1U << 31)	/* epoll data: listener i | LISTEN_TAG */
#define CONN_PARK	(-2)		/* conn_run: idle, park it */
static struct conn		*pool;
static int			 poolcap;	/* worker_connections */
static int			 nopen;		/* pool slots in use */
static int			 nparked;
static int			 freelist = -1;
static int			 fresh;		/* pool[fresh..] never used */
static int			 oldest = -1, newest = -1;	/* parked */
static int			 epfd = -1;
static int			 listening;	/* listeners in epfd */
static struct conn		 spare;		/* when the pool is full */

static int	conn_run(struct conn *);
static void	conn_close(struct conn *);

/*
 * Room for cap connections: raise the soft descriptor limit as far as
 * the hard one allows, and hold fewer connections when even that is not
 * enough (some descriptors stay for files and logs).
 */
static int
pool_init(int cap)
{
	struct rlimit rl;
	const rlim_t reserve = 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)cap + reserve) {
		rlim_t want = (rlim_t)cap + reserve;

		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY &&
		    rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur < (rlim_t)cap + reserve) {
			int fit = rl.rlim_cur > reserve + 1 ?
			    (int)(rl.rlim_cur - reserve) : 1;

			log_warnx("worker_connections %d: the open files limit "
			    "is %llu; holding %d", cap,
			    (unsigned long long)rl.rlim_cur, fit);
			cap = fit;
		}
	}
	/* Touched only as connections come: idle workers stay small. */
	if ((pool = calloc((size_t)cap, sizeof(*pool))) == NULL)
		return -1;
	poolcap = cap;
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	return 0;
}

/* A connection record for fd: from the pool, else the one spare. */
static struct conn *
conn_new(int fd, int lfd)
{
	struct conn *c = &spare;
	int slot = -1;

	if (freelist != -1) {
		slot = freelist;
		freelist = pool[slot].next;
	} else if (fresh < poolcap)
		slot = fresh++;
	if (slot >= 0) {
		c = &pool[slot];
		nopen++;
	}
	env->sb->slot[env->slot].conns = nopen + (slot < 0);
	*c = (struct conn){ .fd = fd, .lfd = lfd, .slot = slot,
		.prev = -1, .next = -1, .since = sb_now_ms() };
	return c;
}

static void
conn_free(struct conn *c)
{
	if (c->slot >= 0) {
		c->next = freelist;
		freelist = c->slot;
		nopen--;
	}
	env->sb->slot[env->slot].conns = nopen;
}

static void
unpark(struct conn *c)
{
	if (c->prev != -1)
		pool[c->prev].next = c->next;
	else
		oldest = c->next;
	if (c->next != -1)
		pool[c->next].prev = c->prev;
	else
		newest = c->prev;
	c->prev = c->next = -1;
	c->parked = 0;
	nparked--;
}

/* Register c with the epoll set, once in its life (or per epoll set). */
static int
ep_watch(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
		.data.u32 = (uint32_t)c->slot };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		return -1;
	c->in_ep = 1;
	return 0;
}

/* Idle between requests: wait in the epoll set, newest last. */
static int
park(struct conn *c)
{
	if (!c->in_ep) {
		if (ep_watch(c) == -1) {
			static int64_t said;
			int64_t now = sb_now_ms();

			/* ENOSPC: fs.epoll.max_user_watches; say so rarely. */
			if (said == 0 || now - said >= 60000) {
				log_warn("epoll_ctl: closing idle keep-alive "
				    "connections instead of parking them");
				said = now;
			}
			return -1;
		}
	}
	c->idle_since = sb_now_ms();
	c->woken = 0;
	c->parked = 1;
	c->next = -1;
	c->prev = newest;
	if (newest != -1)
		pool[newest].next = c->slot;
	else
		oldest = c->slot;
	newest = c->slot;
	nparked++;
	return 0;
}

/* After conn_run: park the connection, or close it for good. */
static void
conn_done(struct conn *c, int rc)
{
	if (rc == CONN_PARK && park(c) == 0)
		return;
	conn_close(c);
	conn_free(c);
}

/* A parked connection has something to read: serve it. */
static void
serve_parked(struct conn *c)
{
	unpark(c);
	c->woken = 1;
	conn_done(c, conn_run(c));
}

/* A parked connection is done with: close it for good. */
static void
drop_parked(struct conn *c)
{
	unpark(c);
	conn_done(c, -1);
}

/*
 * Are the listeners in the epoll set?  Only while this worker waits
 * there with room for more: an EPOLLEXCLUSIVE entry takes the wake-up of
 * a new connection even when its worker is busy elsewhere, and another
 * worker blocked in accept(2) would then not be woken for it.
 */
static void
listen_set(int on)
{
	if (on == listening)
		return;
	for (int i = 0; i < env->nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
			.data.u32 = LISTEN_TAG | (uint32_t)i };

		/* After a stop the descriptor may be /dev/null: no matter. */
		(void)epoll_ctl(epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
		    env->lfd[i], &ev);
	}
	listening = on;
}

void
conn_block(void)
{
	listen_set(0);
	worker_title();
}

int
conn_nparked(void)
{
	return nparked;
}

/* Keep-alive connections idle for keepalive_timeout are closed. */
static void
expire(int64_t now)
{
	while (oldest != -1 && now - pool[oldest].idle_since >=
	    env->cfg->keepalive_timeout) {
		struct conn *c = &pool[oldest];
		char b;

		/*
		 * Its request may have come in time while the worker was
		 * busy with another client: answer it, never drop it.
		 */
		if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
			serve_parked(c);
		else
			drop_parked(c);
	}
}

/* Serve the parked connections that the events name. */
static int
serve_events(const struct epoll_event *ev, int n)
{
	int lready = -1;

	for (int i = 0; i < n; i++) {
		struct conn *c;

		if (ev[i].data.u32 & LISTEN_TAG) {
			lready = (int)(ev[i].data.u32 & ~LISTEN_TAG);
			continue;
		}
		c = &pool[ev[i].data.u32];
		if (c->parked)		/* defensive: not served already */
			serve_parked(c);
	}
	return lready;
}

int
conn_wait(void)
{
	struct epoll_event ev[64];
	int64_t now = sb_now_ms(), left;
	int n;

	expire(now);
	if (nparked == 0 || worker_stop)
		return -1;
	now = sb_now_ms();	/* expire() may have served requests */
	left = pool[oldest].idle_since + env->cfg->keepalive_timeout - now;
	listen_set(nopen < poolcap);
	/* Full, it cannot take anyone new: the master must not count it idle. */
	worker_set_state(nopen < poolcap ? SB_IDLE : SB_KEEPALIVE);
	worker_title();
	n = epoll_wait(epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])),
	    left > INT32_MAX ? INT32_MAX : (int)left);
	if (n == -1) {
		if (errno != EINTR)
			log_warn("epoll_wait");
		return -1;
	}
	return serve_events(ev, n);
}

/*
 * Stop (or max_requests): no more parked connections.  A request may be
 * on its way on any of them, so they get STOP_GRACE_MS to speak, each
 * answered with Connection: close; then the silent ones are closed.  A
 * fresh epoll set: the listeners may be gone (see worker.c's on_term).
 */
void
conn_finish(void)
{
	struct epoll_event ev[64];
	int64_t deadline, left;

	if (nparked == 0)
		return;
	close(epfd);
	listening = 0;
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) != -1)
		for (int i = oldest; i != -1; i = pool[i].next) {
			pool[i].in_ep = 0;	/* the old set is gone */
			(void)ep_watch(&pool[i]);
		}
	deadline = sb_now_ms() + STOP_GRACE_MS;
	worker_set_state(SB_KEEPALIVE);
	worker_title();
	while (epfd != -1 && nparked > 0 &&
	    (left = deadline - sb_now_ms()) > 0) {
		int n = epoll_wait(epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])),
		    (int)left);

		if (n == -1 && errno != EINTR)
			break;
		if (n > 0)
			serve_events(ev, n);
	}
	while (oldest != -1)
		drop_parked(&pool[oldest]);
}

/*
 * Is anybody else waiting for this worker: a client in the accept
 * queue, or a parked connection with a request?
 */
static int
others_waiting(const struct conn *c)
{
	struct epoll_event ev[8];
	int n;

	if (sock_queue_len(c->lfd) > 0)
		return 1;
	if (nparked == 0)
		return 0;
	listen_set(0);
	n = epoll_wait(epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), 0);
	for (int i = 0; i < n; i++)
		if (ev[i].data.u32 != (uint32_t)c->slot &&
		    !(ev[i].events & (EPOLLRDHUP | EPOLLHUP)))
			return 1;	/* a request, not a client leaving */
	return 0;
}

int
conn_init(const struct worker_env *e)
{
	env = e;
	lim.max_line = e->cfg->max_request_line;
	lim.max_field = e->cfg->max_header_line;
	lim.max_head = e->cfg->max_header_size;
	lim.max_headers = e->cfg->max_headers;
	bufcap = lim.max_head + 1;
	if ((buf = malloc(bufcap)) == NULL)
		return -1;
	loccap = 3 * lim.max_line + 64;
	if ((locbuf = malloc(loccap)) == NULL)
		return -1;
	snprintf(server_hdr, sizeof(server_hdr), "%s",
	    e->cfg->server_tokens ? PACKAGE_NAME "/" PACKAGE_VERSION :
	    PACKAGE_NAME);
	return pool_init(e->cfg->worker_connections);
}


/* The Date header changes once a second: format it once a second. */
static const char *
date_now(void)
{
	static char cached[30];
	static time_t last = -1;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != last) {
		http_date(ts.tv_sec, cached);
		last = ts.tv_sec;
	}
	return cached;
}

/*
 * Read into buf until the deadline.  Returns bytes read, 0 at EOF, or
 * -1 on error, timeout (errno ETIMEDOUT), or a stop while idle.
 */
static ssize_t
conn_read(struct conn *c, int64_t deadline, int idle)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf + c->len, bufcap - c->len,
		    MSG_DONTWAIT);
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		int64_t left;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		/*
		 * On stop, an idle keep-alive connection gets a short grace:
		 * a request already on its way is answered (with Connection:
		 * close) rather than met with a reset.
		 */
		if (idle && worker_stop) {
			static int64_t stop_seen;

			if (stop_seen == 0)
				stop_seen = sb_now_ms();
			if (deadline > stop_seen + STOP_GRACE_MS)
				deadline = stop_seen + STOP_GRACE_MS;
			if (sb_now_ms() >= deadline) {
				errno = ECANCELED;
				return -1;
			}
		}
		if ((left = deadline - sb_now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		conn_block();
		if (poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left)
		    == -1 && errno != EINTR)
			return -1;
	}
}

static int64_t
pace_deadline(const struct pace *p, int64_t base)
{
	int64_t t = base;

	if (p->rate > 0)
		t += (int64_t)(p->got / p->rate) * 1000 +
		    (int64_t)(p->got % p->rate) * 1000 / (int64_t)p->rate;
	return p->start + (t < p->cap ? t : p->cap);
}

/*
 * conn_read() at a minimum rate (struct pace).  One worker serves one
 * request at a time, so a client that sends slowly holds a whole worker:
 * when nobody waits that costs nothing, but while clients wait in the
 * accept queue or on the worker's parked connections the same rule
 * applies with header_timeout_busy as the base, and a slow reader loses
 * its worker to them.  Checking the queue costs a
 * getsockopt, done only once the shorter deadline has passed, every
 * BUSY_CHECK_MS.  Sets *busy when it gave up for that reason.
 */
static ssize_t
paced_read(struct conn *c, struct pace *p, int idle, int *busy)
{
	int busy_ms = env->cfg->header_timeout_busy;
	int64_t hard, soft, now, until;
	ssize_t n;

	*busy = 0;
	for (;;) {
		hard = pace_deadline(p, p->base);
		soft = busy_ms > 0 ? pace_deadline(p, busy_ms) : hard;
		now = sb_now_ms();
		if (now >= soft && soft < hard && others_waiting(c)) {
			*busy = 1;
			errno = ETIMEDOUT;
			return -1;
		}
		until = now < soft ? soft : now + BUSY_CHECK_MS;
		if (until > hard)
			until = hard;
		n = conn_read(c, until, idle);
		if (n > 0)
			p->got += (size_t)n;
		if (n >= 0 || errno != ETIMEDOUT || until == hard)
			return n;
	}
}

/* Bytes sent but not yet acknowledged by the client; -1 if unknown. */
static int
unacked(int fd)
{
	int n;

	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

/*
 * The socket buffer is full: wait until it takes more.  POLLOUT comes
 * only once about a third of the buffer is free, which a slow but steady
 * reader may take long to reach, so progress is measured as well: every
 * WRITE_CHECK_MS, the bytes still unacknowledged; any decrease starts
 * the send_timeout clock again.  A stop (EINTR) does not end the wait:
 * the response in flight is finished.
 *
 * No shorter rule applies while others wait, as header_timeout_busy
 * does for reads: a receiver acknowledges in bursts, when it opens its
 * window, which for a reader taking 1 MB/s into a large buffer can be
 * seconds apart, and cutting such a download would be wrong.  Parked
 * connections of this worker wait for it (see preforkd.conf(5),
 * worker_connections).
 */
static int
wait_writable(struct conn *c)
{
	struct pollfd pfd = { c->fd, POLLOUT, 0 };
	int64_t start = sb_now_ms(), left;
	int q, outq = unacked(c->fd), r;

	conn_block();
	for (;;) {
		if ((left = start + env->cfg->send_timeout - sb_now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (left > WRITE_CHECK_MS)
			left = WRITE_CHECK_MS;
		if ((r = poll(&pfd, 1, (int)left)) == 1)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if ((q = unacked(c->fd)) >= 0 && q < outq) {
			outq = q;		/* it reads: a new stall clock */
			start = sb_now_ms();
		}
	}
}

/* Is this send error "try again later"? Then wait; -1: give up. */
static int
send_again(struct conn *c)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return wait_writable(c);
	return -1;
}

static int
send_all(struct conn *c, const char *p, size_t n, int flags)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | flags);

		if (w == -1) {
			if (send_again(c) == -1)
				return -1;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
send_file(struct conn *c, int ffd, off_t off, off_t len)
{
	while (len > 0) {
		size_t chunk = len > (1 << 30) ? (1 << 30) : (size_t)len;
		ssize_t w = sendfile(c->fd, ffd, &off, chunk);

		if (w == -1) {
			if (send_again(c) == -1)
				return -1;
			continue;
		}
		if (w == 0)
			return -1;	/* file shrank under us */
		len -= w;
	}
	return 0;
}

static void
hb_add(struct hbuf *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
hb_add(struct hbuf *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (h->n >= sizeof(h->b))
		return;
	va_start(ap, fmt);
	n = vsnprintf(h->b + h->n, sizeof(h->b) - h->n, fmt, ap);
	va_end(ap);
	h->n = n < 0 ? sizeof(h->b) : h->n + (size_t)n;
}

/*
 * Plain appends for the lines of every response: formatting them with
 * printf took about 6% of a worker's time in the keep-alive benchmark
 * (perf).  On overflow h->n goes to sizeof(h->b), as with hb_add.
 */
static void
hb_str(struct hbuf *h, const char *s)
{
	size_t n = strlen(s);

	if (h->n >= sizeof(h->b) || n >= sizeof(h->b) - h->n) {
		h->n = sizeof(h->b);
		return;
	}
	memcpy(h->b + h->n, s, n);
	h->n += n;
}

static void
hb_num(struct hbuf *h, long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp) - 1;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;

	tmp[i] = '\0';
	do
		tmp[--i] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		tmp[--i] = '-';
	hb_str(h, tmp + i);
}

static void
hb_start(struct hbuf *h, const struct conn *c, int status)
{
	h->n = 0;
	hb_str(h, "HTTP/1.1 ");
	hb_num(h, status);
	hb_str(h, " ");
	hb_str(h, http_reason(status));
	hb_str(h, "\r\nDate: ");
	hb_str(h, date_now());
	hb_str(h, "\r\nServer: ");
	hb_str(h, server_hdr);
	hb_str(h, "\r\n");
	if (!c->keep)
		hb_str(h, "Connection: close\r\n");
	else if (req.minor == 0)
		hb_str(h, "Connection: keep-alive\r\n");
}

static int
hb_done(struct hbuf *h)
{
	hb_str(h, "\r\n");
	return h->n < sizeof(h->b) ? 0 : -1;
}

/* Send every byte of iov[0..n), resuming after partial writes. */
static int
send_iov(struct conn *c, struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (m.msg_iovlen > 0) {
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);

		if (w == -1) {
			if (send_again(c) == -1)
				return -1;
			continue;
		}
		while (m.msg_iovlen > 0 && (size_t)w >= m.msg_iov->iov_len) {
			w -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen > 0) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
			m.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * A small HTML body for every error and redirect.  extra (header lines,
 * each ending in CRLF) goes out as its own piece: a Location echoes the
 * request target, so it can be as long as max_request_line, far more
 * than the fixed head buffer holds.
 */
static int
send_status(struct conn *c, int status, const char *extra, int head_only)
{
	struct hbuf h;
	struct iovec iov[4];
	char body[256];
	int bl, n = 0;

	bl = snprintf(body, sizeof(body), "<!DOCTYPE html>\n<html><head>"
	    "<title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n",
	    status, http_reason(status), status, http_reason(status));
	hb_start(&h, c, status);
	hb_add(&h, "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %d\r\n", bl);
	if (h.n >= sizeof(h.b))
		return -1;
	iov[n++] = (struct iovec){ h.b, h.n };
	if (extra != NULL)
		iov[n++] = (struct iovec){ (void *)(uintptr_t)extra,
		    strlen(extra) };
	iov[n++] = (struct iovec){ (char *)"\r\n", 2 };
	if (!head_only)
		iov[n++] = (struct iovec){ body, (size_t)bl };
	c->status = status;
	c->sent = head_only ? 0 : bl;
	return send_iov(c, iov, n);
}

/* Bytes that may stand for themselves in a path (RFC 3986 3.3). */
static int
path_safe(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("-._~!$&'()*+,;=:@/", ch);
}

/*
 * The Location is built from the normalised path, percent-encoded, not
 * from the raw target: "//host" would make a network-path reference
 * (RFC 3986 4.2) and send the client to another site.  Every byte takes
 * at most 3, and path and query come from a request line of at most
 * max_request_line bytes, which is what conn_init sized locbuf for.
 */
static int
send_redirect(struct conn *c)
{
	char rel[PATH_MAX];
	size_t o, i;
	int slash, rc;

	/* file_handle() normalised the same path already: this holds. */
	if ((rc = file_normalize(req.path.p, req.path.n, rel, sizeof(rel),
	    &slash)) != 0)
		return send_status(c, rc, NULL, req.meth == HTTP_M_HEAD);
	o = (size_t)snprintf(locbuf, loccap, "Location: /");
	for (i = 0; rel[i] != '\0' && o + 3 < loccap; i++) {
		unsigned char ch = (unsigned char)rel[i];

		if (path_safe(ch))
			locbuf[o++] = (char)ch;
		else
			o += (size_t)snprintf(locbuf + o, loccap - o, "%%%02X",
			    ch);
	}
	/* The parser admitted only visible ASCII in the query: echo it. */
	if (rel[i] != '\0' || o + req.query.n + 5 > loccap)
		return send_status(c, HTTP_URI_TOO_LONG, NULL,
		    req.meth == HTTP_M_HEAD);
	(void)snprintf(locbuf + o, loccap - o, "/%s%.*s\r\n",
	    req.query.p ? "?" : "", (int)req.query.n,
	    req.query.p ? req.query.p : "");
	return send_status(c, HTTP_MOVED, locbuf, req.meth == HTTP_M_HEAD);
}

static int
send_file_resp(struct conn *c, struct file_resp *f)
{
	struct hbuf h;
	int head_only = req.meth == HTTP_M_HEAD;

	c->status = f->status;
	c->sent = head_only || f->status == HTTP_NOT_MODIFIED ? 0 : f->len;
	hb_start(&h, c, f->status);
	hb_str(&h, "Last-Modified: ");
	hb_str(&h, f->lastmod);
	hb_str(&h, "\r\nETag: ");
	hb_str(&h, f->etag);
	hb_str(&h, "\r\n");
	if (f->status == HTTP_NOT_MODIFIED)
		return hb_done(&h) ? -1 : send_all(c, h.b, h.n, 0);
	hb_str(&h, "Content-Type: ");
	hb_str(&h, f->ctype);
	hb_str(&h, "\r\nAccept-Ranges: bytes\r\n");
	if (f->status == HTTP_PARTIAL)
		hb_add(&h, "Content-Range: bytes %lld-%lld/%lld\r\n",
		    (long long)f->off, (long long)(f->off + f->len - 1),
		    (long long)f->size);
	hb_str(&h, "Content-Length: ");
	hb_num(&h, (long long)f->len);
	hb_str(&h, "\r\n");
	if (hb_done(&h) == -1)
		return -1;
	if (head_only || f->len == 0)
		return send_all(c, h.b, h.n, 0);
	if (f->data != NULL) {
		/* A small cached file: head and body in one system call. */
		struct iovec iov[2] = { { h.b, h.n },
			{ (char *)(uintptr_t)(f->data + f->off), (size_t)f->len } };

		return send_iov(c, iov, 2);
	}
	/*
	 * The head goes out on its own, as nginx sends it.  Holding it back
	 * with MSG_MORE to share the body's first segment measured slower:
	 * 45k against 61k requests/s for a 100 KiB file over loopback.
	 */
	if (send_all(c, h.b, h.n, 0) == -1)
		return -1;
	return send_file(c, f->fd, f->off, f->len);
}

/* A request for the status page: its path, byte for byte. */
static int
is_status(void)
{
	const char *p = env->cfg->status_path;

	if (strcmp(p, "off") == 0 || req.asterisk)
		return 0;
	return req.path.n == strlen(p) &&
	    memcmp(req.path.p, p, req.path.n) == 0;
}

/* Does s contain needle, ignoring ASCII case? */
static int
str_has(struct http_str s, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; s.p != NULL && i + n <= s.n; i++)
		if (strncasecmp(s.p + i, needle, n) == 0)
			return 1;
	return 0;
}

static struct http_str	header(const char *);

/*
 * The status page, for clients in status_allow only.  It is built whole
 * first: its size is known before the head goes out, and the worker's
 * fixed buffers stay as small as they are when nobody asks for it.
 */
static int
send_status_page(struct conn *c)
{
	struct status_in in;
	struct hbuf h;
	struct iovec iov[2];
	size_t cap = status_size(env->sb->nslots);
	char *page;
	long len;
	int rc, head_only = req.meth == HTTP_M_HEAD;

	if (c->peer_len == 0 || !acl_match(&env->cfg->status_acl,
	    (struct sockaddr *)&c->peer_ss))
		return send_status(c, HTTP_FORBIDDEN, NULL, head_only);
	in = (struct status_in){ env->sb, sb_now_ms(), time(NULL),
	    sock_queue_len(c->lfd), str_has(req.query, "json") ||
	    str_has(header("accept"), "application/json") };
	if ((page = malloc(cap)) == NULL ||
	    (len = status_render(page, cap, &in)) < 0) {
		free(page);
		return send_status(c, HTTP_INTERNAL, NULL, head_only);
	}
	hb_start(&h, c, HTTP_OK);
	hb_add(&h, "Content-Type: %s\r\nCache-Control: no-store\r\n"
	    "Content-Length: %ld\r\n", in.json ? "application/json" :
	    "text/plain; charset=utf-8", len);
	rc = hb_done(&h);
	c->status = HTTP_OK;
	c->sent = head_only ? 0 : len;
	iov[0] = (struct iovec){ h.b, h.n };
	iov[1] = (struct iovec){ page, (size_t)len };
	if (rc == 0)
		rc = send_iov(c, iov, head_only ? 1 : 2);
	free(page);
	return rc;
}

static int
respond(struct conn *c)
{
	struct file_resp f;
	char extra[64];
	int rc;

	if (req.meth == HTTP_M_OPTIONS) {
		struct hbuf h;

		c->status = HTTP_NO_CONTENT;
		c->sent = 0;
		hb_start(&h, c, HTTP_NO_CONTENT);
		hb_add(&h, "Allow: GET, HEAD, OPTIONS\r\n");
		return hb_done(&h) ? -1 : send_all(c, h.b, h.n, 0);
	}
	if (is_status())
		return send_status_page(c);
	file_handle(env->rootfd, env->cfg->index, &req, &f);
	switch (f.status) {
	case HTTP_OK:
	case HTTP_PARTIAL:
	case HTTP_NOT_MODIFIED:
		rc = send_file_resp(c, &f);
		break;
	case HTTP_MOVED:
		rc = send_redirect(c);
		break;
	case HTTP_RANGE_NOT_SATISFIABLE:
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%lld\r\n",
		    (long long)f.size);
		rc = send_status(c, f.status, extra,
		    req.meth == HTTP_M_HEAD);
		break;
	default:
		if (f.status == HTTP_BAD_REQUEST)
			c->keep = 0;
		rc = send_status(c, f.status, NULL, req.meth == HTTP_M_HEAD);
		break;
	}
	if (f.fd != -1 && !f.cached)
		close(f.fd);
	return rc;
}

/*
 * Read and drop a request body of n bytes so the next request is in
 * sync.  The body gets header_timeout, extended at body_min_rate; there
 * is no cap beyond that: max_body_size bounds the time it can earn.
 */
static int
discard_body(struct conn *c, long long n)
{
	struct pace p = { sb_now_ms(), env->cfg->header_timeout, INT64_MAX,
	    env->cfg->body_min_rate, 0 };
	int busy;

	while (n > 0) {
		size_t take = c->len < (unsigned long long)n ? c->len : (size_t)n;
		ssize_t r;

		memmove(buf, buf + take, c->len - take);
		c->len -= take;
		n -= (long long)take;
		if (n == 0)
			break;
		if ((r = paced_read(c, &p, 0, &busy)) <= 0) {
			c->hurry = busy;
			return -1;
		}
		c->len += (size_t)r;
	}
	return 0;
}

/*
 * Close without losing the response: after shutdown(SHUT_WR), read and
 * drop what the client still sends, so the kernel does not answer
 * unread data with a reset that could destroy the response in flight.
 */
static void
conn_close(struct conn *c)
{
	char sink[4096];
	int64_t deadline;
	size_t total = 0;
	ssize_t n;

	if (!c->dirty) {
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n <= 0) {
			close(c->fd);
			return;
		}
	}
	if (shutdown(c->fd, SHUT_WR) == -1) {
		close(c->fd);
		return;
	}
	/*
	 * A client dropped for being slow while others wait gets no more of
	 * the worker's time: only what it sent already is drained.
	 */
	deadline = sb_now_ms() + (c->hurry ? 0 : LINGER_MS);
	while (total < LINGER_BYTES) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		int64_t left = deadline - sb_now_ms();

		if (left <= 0 && !c->hurry)
			break;
		conn_block();
		if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0)
			break;
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0)
			total += (size_t)n;
	}
	close(c->fd);
}

/*
 * n more bytes arrived: parse again if a line may have completed, or if
 * the unfinished line is already too long (a request line that never
 * ends must get its 414 now, not a 408 later).  *line is where the last
 * unfinished line starts.
 */
static int
head_more(struct conn *c, size_t n, size_t *line)
{
	const char *lf;

	c->len += n;
	if ((lf = memrchr(buf + c->len - n, '\n', n)) != NULL)
		*line = (size_t)(lf - buf) + 1;
	if (lf != NULL || c->len - *line > lim.max_line ||
	    c->len - *line > lim.max_field || c->len >= bufcap)
		return http_parse(buf, c->len, &lim, &req);
	return HTTP_AGAIN;
}

/*
 * Read one request head; returns 0, a status to answer, -1 to close, or
 * CONN_PARK when a parkable connection has no request yet.
 * A keep-alive connection waits up to keepalive_timeout for the first
 * byte; from then on (from the accept for a new connection) the head has
 * header_timeout, extended at header_min_rate up to header_timeout_max,
 * and header_timeout_busy while clients wait (paced_read).
 */
static int
read_head(struct conn *c)
{
	const struct cfg *cfg = env->cfg;
	struct pace p;
	int rc = HTTP_AGAIN, busy;
	ssize_t n;
	const char *lf;
	size_t line = 0;	/* where the unfinished last line starts */

	/*
	 * req still describes the previous request until a parse: a 408
	 * after a HEAD must not lose its body for that.
	 */
	req.meth = HTTP_M_OTHER;
	if (c->len > 0) {
		rc = http_parse(buf, c->len, &lim, &req);
		if ((lf = memrchr(buf, '\n', c->len)) != NULL)
			line = (size_t)(lf - buf) + 1;
	} else if (c->nreq > 0 && c->slot >= 0) {
		/*
		 * The next request is rarely here yet: park at once, and read
		 * when epoll says there is something (or nothing, spuriously:
		 * then park again).
		 */
		if (!c->woken)
			return CONN_PARK;
		c->woken = 0;
		if ((n = recv(c->fd, buf, bufcap, MSG_DONTWAIT)) == -1 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return CONN_PARK;
		if (n <= 0)
			return -1;
		rc = head_more(c, (size_t)n, &line);
	} else if (c->nreq > 0) {
		worker_set_state(SB_KEEPALIVE);
		if ((n = conn_read(c, sb_now_ms() + cfg->keepalive_timeout, 1)) <= 0)
			return -1;
		rc = head_more(c, (size_t)n, &line);
	}
	p = (struct pace){ sb_now_ms(), cfg->header_timeout,
	    cfg->header_timeout_max > cfg->header_timeout ?
	    cfg->header_timeout_max : cfg->header_timeout,
	    cfg->header_min_rate, c->len };
	while (rc == HTTP_AGAIN) {
		if (c->len >= bufcap)
			return HTTP_HEADERS_TOO_LARGE;
		worker_set_state(SB_READING);
		if ((n = paced_read(c, &p, c->len == 0, &busy)) <= 0) {
			c->hurry = busy;
			/* Nothing sent at all: nothing to answer. */
			if (n == -1 && errno == ETIMEDOUT && c->len > 0)
				return HTTP_REQUEST_TIMEOUT;
			return -1;
		}
		rc = head_more(c, (size_t)n, &line);
	}
	return rc;
}

/*
 * Fairness.  A worker below worker_connections takes queued clients
 * itself between requests (its listeners are in its epoll set), so
 * keeping a connection costs nobody anything.  At worker_connections, or
 * for a connection that could not be parked, a keep-alive client holding
 * its place makes the clients queued in the accept backlog wait.
 * Closing after every response while anyone waits is fair but turns
 * keep-alive into connection churn; keeping connections forever starves
 * the queue.  Instead each connection gets a time slice while others
 * wait, sized so that the queue as a whole is served within about
 * FAIR_WAIT_MS: slice = FAIR_WAIT_MS * workers / queued, between 1 ms and
 * FAIR_WAIT_MS.  A client that already pipelined its next request keeps
 * its turn until it has been answered.
 */
static int
fair_turn_over(struct conn *c)
{
	int64_t now, slice;
	int q, workers;

	if (c->len != req.head_len)
		return 0;		/* pipelined: answer it first */
	now = sb_now_ms();
	if (c->slot >= 0 && nopen < poolcap) {
		c->since = now;		/* room: the queue is ours to take */
		return 0;
	}
	if (now - c->since < 1)
		return 0;		/* checked at most once a millisecond */
	if ((q = sock_queue_len(c->lfd)) <= 0) {
		c->since = now;		/* nobody waits: a new slice */
		return 0;
	}
	workers = env->sb->target > 0 ? env->sb->target : 1;
	slice = (int64_t)FAIR_WAIT_MS * workers / q;
	if (slice < 1)
		slice = 1;
	if (slice > FAIR_WAIT_MS)
		slice = FAIR_WAIT_MS;
	return now - c->since >= slice;
}

/* Should this response be the connection's last? */
static int
keep_alive(struct conn *c)
{
	const struct cfg *cfg = env->cfg;

	if (!req.keepalive || worker_stop || worker_last_request())
		return 0;
	if (cfg->keepalive_requests > 0 &&
	    c->nreq + 1 >= (unsigned)cfg->keepalive_requests)
		return 0;
	if (cfg->keepalive_timeout == 0)
		return 0;
	if (req.chunked || (req.content_length > 0 && req.expect_continue))
		return 0;
	return !fair_turn_over(c);
}

/* The value of a request header, by lower-case name. */
static struct http_str
header(const char *name)
{
	for (int i = 0; i < req.nhdr; i++)
		if (http_str_ieq(req.hdr[i].name, name))
			return req.hdr[i].value;
	return (struct http_str){ NULL, 0 };
}

/*
 * One access-log line.  For a request the parser accepted, its request
 * line, Referer and User-Agent; for one it rejected, the raw first line
 * as received (alog escapes it).
 */
static void
log_request(struct conn *c, int parsed)
{
	struct http_str ref = { NULL, 0 }, ua = { NULL, 0 };
	const char *line = buf, *end;
	size_t n;

	if (!alog_enabled())
		return;
	if (parsed) {
		line = req.line.p;
		n = req.line.n;
		ref = header("referer");
		ua = header("user-agent");
	} else {
		while (line < buf + c->len && (*line == '\r' || *line == '\n'))
			line++;
		end = memchr(line, '\n', (size_t)(buf + c->len - line));
		n = (size_t)((end ? end : buf + c->len) - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
	}
	alog_write(c->peer, line, n, c->status, c->sent, ref.p, ref.n, ua.p,
	    ua.n);
}

/* The client's address, for the access log and for status_allow. */
static void
peer_name(struct conn *c)
{
	socklen_t sl = sizeof(c->peer_ss);

	c->peer_len = 0;
	if (getpeername(c->fd, (struct sockaddr *)&c->peer_ss, &sl) == 0)
		c->peer_len = sl;
	if (c->peer_len == 0 || getnameinfo((struct sockaddr *)&c->peer_ss,
	    c->peer_len, c->peer, sizeof(c->peer), NULL, 0, NI_NUMERICHOST)
	    != 0)
		snprintf(c->peer, sizeof(c->peer), "-");
}

/*
 * Publish the request in our scoreboard slot: the master kills a worker
 * stuck on one request past request_timeout and names the request, and
 * the status page shows what each worker is doing.
 */
static void
sb_begin_request(void)
{
	struct sb_slot *me = &env->sb->slot[env->slot];
	size_t n = req.line.n;

	if (n >= SB_REQ_LEN)
		n = SB_REQ_LEN - 1;
	memcpy(me->req, req.line.p, n);
	me->req[n] = '\0';
	me->req_start = sb_now_ms();
}

/*
 * Serve requests on c until it is to be closed (-1) or waits idle for
 * its next request (CONN_PARK).
 */
static int
conn_run(struct conn *c)
{
	int rc;

	for (;;) {
		rc = read_head(c);
		if (rc == -1 || rc == CONN_PARK)
			return rc;
		if (rc != 0) {
			/* Rejected: answer and close, never resync. */
			c->keep = 0;
			c->dirty = 1;
			worker_set_state(SB_WRITING);
			send_status(c, rc, rc == HTTP_METHOD_NOT_ALLOWED ?
			    "Allow: GET, HEAD, OPTIONS\r\n" : NULL,
			    req.meth == HTTP_M_HEAD);
			log_request(c, 0);
			return -1;
		}
		sb_begin_request();
		c->keep = keep_alive(c);
		if (req.content_length > (long long)env->cfg->max_body_size) {
			c->keep = 0;
			c->dirty = 1;
			send_status(c, HTTP_PAYLOAD_TOO_LARGE, NULL,
			    req.meth == HTTP_M_HEAD);
			log_request(c, 1);
			return -1;
		}
		worker_set_state(SB_WRITING);
		rc = respond(c);
		log_request(c, 1);
		c->nreq++;
		env->sb->slot[env->slot].requests++;
		env->sb->slot[env->slot].req_start = 0;
		if (rc == -1 || !c->keep) {
			/*
			 * A client that asked to keep the connection may be
			 * sending its next request right now: close in stages
			 * (RFC 9112 9.6), or its arrival after close() would
			 * make the kernel reset the connection.  Not after a
			 * failed send (send_timeout): the response is lost
			 * anyway, and lingering would only hold the worker.
			 */
			c->dirty = c->len > req.head_len ||
			    req.content_length > 0 || req.chunked ||
			    req.keepalive;
			c->hurry = rc == -1;
			return -1;
		}
		/* Keep what was pipelined behind this request. */
		memmove(buf, buf + req.head_len, c->len - req.head_len);
		c->len -= req.head_len;
		if (req.content_length > 0 &&
		    discard_body(c, req.content_length) == -1)
			return -1;
	}
}

void
conn_serve(int fd, int lfd)
{
	struct conn *c = conn_new(fd, lfd);

	if (alog_enabled() || strcmp(env->cfg->status_path, "off") != 0)
		peer_name(c);
	conn_done(c, conn_run(c));
}
