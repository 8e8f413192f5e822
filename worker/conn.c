/*
 * The connection lifecycle (see conn.h): read a head against deadlines,
 * answer, log, then keep the connection, park it or close it.  Reads
 * and sends with deadlines are io.c's, responses resp.c's, the pool and
 * its parking park.c's; what is decided here is when each happens.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alog.h"
#include "cfg.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "io.h"
#include "park.h"
#include "proc.h"
#include "resp.h"
#include "sb.h"
#include "sock.h"
#include "worker.h"

#define FAIR_WAIT_MS	100		/* aim: queued clients wait no longer */
#define BUSY_CHECK_MS	100		/* how often a slow read looks at the queue */

/* What reading a request head came to. */
enum head {
	HEAD_OK,	/* w->req holds a complete head */
	HEAD_REJECT,	/* answer with the status given, then close */
	HEAD_CLOSE,	/* nothing to answer: close */
	HEAD_PARK,	/* no request yet on a parkable connection */
};

/* What serving a connection came to. */
enum run { RUN_CLOSE, RUN_PARK };

static enum run	run_requests(struct worker *, struct conn *);

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
 * Is anybody else waiting for this worker: a client in the accept
 * queue, or a parked connection with a request?
 */
static int
others_waiting(struct worker *w, const struct conn *c)
{
	int fds[8];
	uint32_t evs[8];
	int n;

	if (sock_queue_len(c->lfd) > 0)
		return 1;
	if (w->park.nparked == 0)
		return 0;
	ev_leave(&w->ev);
	n = ev_peek(&w->ev, fds, evs, 8);
	for (int i = 0; i < n; i++)
		if (fds[i] != c->fd && !(evs[i] & (EPOLLRDHUP | EPOLLHUP)))
			return 1;	/* a request, not a client leaving */
	return 0;
}

/*
 * io_read() into w->buf at a minimum rate (struct pace).  One worker
 * serves one request at a time, so a client that sends slowly holds a
 * whole worker: when nobody waits that costs nothing, but while clients
 * wait in the accept queue or on the worker's parked connections the
 * same rule applies with header_timeout_busy as the base, and a slow
 * sender loses its worker to them.  Checking the queue costs a
 * getsockopt, done only once the shorter deadline has passed, every
 * BUSY_CHECK_MS.  Sets *busy when it gave up for that reason.
 */
static ssize_t
paced_read(struct worker *w, struct conn *c, struct pace *p, int idle,
    int *busy)
{
	int busy_ms = w->cfg->header_timeout_busy;
	int64_t hard, soft, now, until;
	ssize_t n;

	*busy = 0;
	for (;;) {
		hard = pace_deadline(p, p->base);
		soft = busy_ms > 0 ? pace_deadline(p, busy_ms) : hard;
		now = clock_ms();
		if (now >= soft && soft < hard && others_waiting(w, c)) {
			*busy = 1;
			errno = ETIMEDOUT;
			return -1;
		}
		until = now < soft ? soft : now + BUSY_CHECK_MS;
		if (until > hard)
			until = hard;
		n = io_read(&w->io, c->fd, w->buf + c->len, w->bufcap - c->len,
		    until, idle);
		if (n > 0)
			p->got += (size_t)n;
		if (n >= 0 || errno != ETIMEDOUT || until == hard)
			return n;
	}
}

/*
 * Read and drop a request body of n bytes so the next request is in
 * sync.  The body gets header_timeout, extended at body_min_rate; there
 * is no cap beyond that: max_body_size bounds the time it can earn.
 */
static int
discard_body(struct worker *w, struct conn *c, long long n)
{
	struct pace p = { clock_ms(), w->cfg->header_timeout, INT64_MAX,
	    w->cfg->body_min_rate, 0 };
	int busy;

	while (n > 0) {
		size_t take = c->len < (unsigned long long)n ? c->len : (size_t)n;
		ssize_t r;

		memmove(w->buf, w->buf + take, c->len - take);
		c->len -= take;
		n -= (long long)take;
		if (n == 0)
			break;
		if ((r = paced_read(w, c, &p, 0, &busy)) <= 0) {
			c->hurry = busy;
			return -1;
		}
		c->len += (size_t)r;
	}
	return 0;
}

/*
 * n more bytes arrived: parse again if a line may have completed, or if
 * the unfinished line is already too long (a request line that never
 * ends must get its 414 now, not a 408 later).  *line is where the last
 * unfinished line starts.  Returns what http_parse() does.
 */
static int
head_more(struct worker *w, struct conn *c, size_t n, size_t *line)
{
	const char *lf;

	c->len += n;
	if ((lf = memrchr(w->buf + c->len - n, '\n', n)) != NULL)
		*line = (size_t)(lf - w->buf) + 1;
	if (lf != NULL || c->len - *line > w->lim.max_line ||
	    c->len - *line > w->lim.max_field || c->len >= w->bufcap)
		return http_parse(w->buf, c->len, &w->lim, &w->req);
	return HTTP_AGAIN;
}

/* A result of http_parse() as a head's outcome. */
static enum head
parsed(int rc, int *status)
{
	if (rc == 0)
		return HEAD_OK;
	*status = rc;
	return HEAD_REJECT;
}

/*
 * The first bytes of a next request.  A parked connection reads only
 * when epoll said it has something (or nothing, spuriously: then it
 * parks again); one that could not be parked waits for up to
 * keepalive_timeout here.  *rc: what http_parse() says of them.
 */
static enum head
next_request(struct worker *w, struct conn *c, size_t *line, int *rc)
{
	ssize_t n;

	if (c->slot >= 0) {
		if (!c->woken)
			return HEAD_PARK;
		c->woken = 0;
		if ((n = recv(c->fd, w->buf, w->bufcap, MSG_DONTWAIT)) == -1 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return HEAD_PARK;
	} else {
		sb_set_state(w->me, SB_KEEPALIVE);
		n = io_read(&w->io, c->fd, w->buf, w->bufcap,
		    clock_ms() + w->cfg->keepalive_timeout, 1);
	}
	if (n <= 0)
		return HEAD_CLOSE;
	*rc = head_more(w, c, (size_t)n, line);
	return HEAD_OK;
}

/*
 * Read one request head.  A keep-alive connection waits up to
 * keepalive_timeout for the first byte (parked when it can be); from
 * then on (from the accept for a new connection) the head has
 * header_timeout, extended at header_min_rate up to header_timeout_max,
 * and header_timeout_busy while clients wait (paced_read).
 */
static enum head
read_head(struct worker *w, struct conn *c, int *status)
{
	const struct cfg *cfg = w->cfg;
	struct pace p;
	int rc = HTTP_AGAIN, busy;
	enum head h;
	ssize_t n;
	const char *lf;
	size_t line = 0;	/* where the unfinished last line starts */

	/*
	 * w->req still describes the previous request until a parse: a 408
	 * after a HEAD must not lose its body for that.
	 */
	w->req.meth = HTTP_M_OTHER;
	if (c->len > 0) {
		rc = http_parse(w->buf, c->len, &w->lim, &w->req);
		if ((lf = memrchr(w->buf, '\n', c->len)) != NULL)
			line = (size_t)(lf - w->buf) + 1;
	} else if (c->nreq > 0 &&
	    (h = next_request(w, c, &line, &rc)) != HEAD_OK)
		return h;
	p = (struct pace){ clock_ms(), cfg->header_timeout,
	    cfg->header_timeout_max > cfg->header_timeout ?
	    cfg->header_timeout_max : cfg->header_timeout,
	    cfg->header_min_rate, c->len };
	while (rc == HTTP_AGAIN) {
		if (c->len >= w->bufcap)
			return parsed(HTTP_HEADERS_TOO_LARGE, status);
		sb_set_state(w->me, SB_READING);
		if ((n = paced_read(w, c, &p, c->len == 0, &busy)) <= 0) {
			c->hurry = busy;
			/* Nothing sent at all: nothing to answer. */
			if (n == -1 && errno == ETIMEDOUT && c->len > 0)
				return parsed(HTTP_REQUEST_TIMEOUT, status);
			return HEAD_CLOSE;
		}
		rc = head_more(w, c, (size_t)n, &line);
	}
	return parsed(rc, status);
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
fair_turn_over(struct worker *w, struct conn *c)
{
	int64_t now, slice;
	int q, workers;

	if (c->len != w->req.head_len)
		return 0;		/* pipelined: answer it first */
	now = clock_ms();
	if (c->slot >= 0 && !park_full(&w->park)) {
		c->since = now;		/* room: the queue is ours to take */
		return 0;
	}
	if (now - c->since < 1)
		return 0;		/* checked at most once a millisecond */
	if ((q = sock_queue_len(c->lfd)) <= 0) {
		c->since = now;		/* nobody waits: a new slice */
		return 0;
	}
	workers = w->env->sb->target > 0 ? w->env->sb->target : 1;
	slice = (int64_t)FAIR_WAIT_MS * workers / q;
	if (slice < 1)
		slice = 1;
	if (slice > FAIR_WAIT_MS)
		slice = FAIR_WAIT_MS;
	return now - c->since >= slice;
}

/* Is the request being served to be this worker's last (max_requests)? */
static int
last_request(const struct worker *w)
{
	return w->max_requests > 0 && w->me->requests + 1 >= w->max_requests;
}

/* Should this response be the connection's last? */
static int
keep_alive(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = w->cfg;
	const struct http_req *req = &w->req;

	if (!req->keepalive || *w->stop || last_request(w))
		return 0;
	if (cfg->keepalive_requests > 0 &&
	    c->nreq + 1 >= (unsigned)cfg->keepalive_requests)
		return 0;
	if (cfg->keepalive_timeout == 0)
		return 0;
	if (req->chunked || (req->content_length > 0 && req->expect_continue))
		return 0;
	return !fair_turn_over(w, c);
}

/*
 * One access-log line.  For a request the parser accepted, its request
 * line, Referer and User-Agent; for one it rejected, the raw first line
 * as received (alog escapes it).
 */
static void
log_request(struct worker *w, struct conn *c, int parsed_ok)
{
	struct http_str ref = { NULL, 0 }, ua = { NULL, 0 };
	const char *line = w->buf, *end, *stop = w->buf + c->len;
	size_t n;

	if (!alog_enabled())
		return;
	if (parsed_ok) {
		line = w->req.line.p;
		n = w->req.line.n;
		ref = http_header(&w->req, "referer");
		ua = http_header(&w->req, "user-agent");
	} else {
		while (line < stop && (*line == '\r' || *line == '\n'))
			line++;
		end = memchr(line, '\n', (size_t)(stop - line));
		n = (size_t)((end ? end : stop) - line);
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

/* A request rejected (status): answer, log, and close, never resync. */
static enum run
reject(struct worker *w, struct conn *c, int status, int parsed_ok)
{
	c->keep = 0;
	c->dirty = 1;
	sb_set_state(w->me, SB_WRITING);
	resp_status(w, c, status, status == HTTP_METHOD_NOT_ALLOWED ?
	    "Allow: GET, HEAD, OPTIONS\r\n" : NULL);
	log_request(w, c, parsed_ok);
	return RUN_CLOSE;
}

/*
 * Answer the request in w->req.  0 to go on with the connection, -1 to
 * close it.
 */
static int
answer(struct worker *w, struct conn *c)
{
	const struct http_req *req = &w->req;
	int rc;

	sb_set_state(w->me, SB_WRITING);
	rc = resp_respond(w, c);
	log_request(w, c, 1);
	c->nreq++;
	sb_request_end(w->me);
	if (rc == -1 || !c->keep) {
		/*
		 * A client that asked to keep the connection may be sending
		 * its next request right now: close in stages (RFC 9112
		 * 9.6), or its arrival after close() would make the kernel
		 * reset the connection.  Not after a failed send
		 * (send_timeout): the response is lost anyway, and lingering
		 * would only hold the worker.
		 */
		c->dirty = c->len > req->head_len || req->content_length > 0 ||
		    req->chunked || req->keepalive;
		c->hurry = rc == -1;
		return -1;
	}
	/* Keep what was pipelined behind this request. */
	memmove(w->buf, w->buf + req->head_len, c->len - req->head_len);
	c->len -= req->head_len;
	if (req->content_length > 0 &&
	    discard_body(w, c, req->content_length) == -1)
		return -1;
	return 0;
}

/* Serve requests on c until it is to be closed or waits idle. */
static enum run
run_requests(struct worker *w, struct conn *c)
{
	int status = 0;

	for (;;) {
		switch (read_head(w, c, &status)) {
		case HEAD_CLOSE:
			return RUN_CLOSE;
		case HEAD_PARK:
			return RUN_PARK;
		case HEAD_REJECT:
			return reject(w, c, status, 0);
		case HEAD_OK:
			break;
		}
		if (w->req.content_length > (long long)w->cfg->max_body_size)
			return reject(w, c, HTTP_PAYLOAD_TOO_LARGE, 1);
		sb_request_begin(w->me, w->req.line.p, w->req.line.n);
		c->keep = keep_alive(w, c);
		if (answer(w, c) == -1)
			return RUN_CLOSE;
	}
}

/* After run_requests: park the connection, or close it for good. */
static void
settle(struct worker *w, struct conn *c, enum run r)
{
	if (r == RUN_PARK && park_put(&w->park, c) == 0)
		return;
	park_unwatch(&w->park, c);
	io_close(&w->io, c->fd, c->dirty, c->hurry);
	park_release(&w->park, c);
}

/* A parked connection has something to read (ev handler). */
static void
on_parked_read(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;

	(void)ev;
	(void)fd;
	(void)events;
	if (!c->parked)		/* defensive: not served already */
		return;
	park_take(&c->w->park, c);
	c->woken = 1;
	settle(c->w, c, run_requests(c->w, c));
}

/*
 * A parked connection was idle for keepalive_timeout (ev timer).  Its
 * request may have come in time while the worker was busy with another
 * client: answer it, never drop it.
 */
static void
on_idle(struct ev_loop *ev, void *arg)
{
	struct conn *c = arg;
	char b;

	(void)ev;
	park_take(&c->w->park, c);
	if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
		c->woken = 1;
		settle(c->w, c, run_requests(c->w, c));
	} else
		settle(c->w, c, RUN_CLOSE);
}

void
conn_finish(struct worker *w)
{
	int64_t deadline, left;
	struct conn *c;
	int cursor = 0;

	if (w->park.nparked == 0)
		return;
	deadline = clock_ms() + IO_STOP_GRACE_MS;
	sb_set_state(w->me, SB_KEEPALIVE);
	while (w->park.nparked > 0 && (left = deadline - clock_ms()) > 0)
		if (ev_poll(&w->ev, (int)left) == -1 && errno != EINTR)
			break;
	while ((c = park_next(&w->park, &cursor)) != NULL) {
		park_take(&w->park, c);
		settle(w, c, RUN_CLOSE);
	}
}

int
conn_init(struct worker *w, int cap)
{
	const struct cfg *cfg = w->cfg;

	w->lim = (struct http_limits){ cfg->max_request_line,
	    cfg->max_header_line, cfg->max_header_size, cfg->max_headers };
	w->bufcap = w->lim.max_head + 1;
	if ((w->buf = malloc(w->bufcap)) == NULL || resp_init(w) == -1)
		return -1;
	return park_init(&w->park, &w->ev, cap, cfg->keepalive_timeout,
	    on_parked_read, on_idle, w->me);
}

void
conn_serve(struct worker *w, int fd, int lfd)
{
	struct conn *c = park_open(&w->park, fd, lfd);

	c->w = w;
	if (alog_enabled() || strcmp(w->cfg->status_path, "off") != 0)
		peer_name(c);
	settle(w, c, run_requests(w, c));
}
