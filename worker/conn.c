/*
 * The connection lifecycle (see conn.h).  Every connection is driven by
 * its events: on_io() when its socket is ready, on_timer() when the
 * deadline of its state passes.  drive() takes a connection as far as it
 * goes without waiting; a state that must wait registers its socket for
 * what it waits for and arms its timer.  Responses are io.c's and
 * resp.c's, the records pool.c's; what is decided here is when each
 * happens.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "alog.h"
#include "cfg.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "io.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "proxy.h"
#include "pubsub.h"
#include "resp.h"
#include "sb.h"
#include "sock.h"
#include "tls.h"
#include "tlsconn.h"
#include "worker.h"
#include "ws.h"

#define HEAD_BUF_MIN	4096		/* a head buffer's first size */
#define SPARE_BUFS	32		/* freed head buffers kept for reuse */
#define STOP_GRACE_MS	500		/* idle connections' grace on stop */
#define LINGER_MS	2000		/* drain unread input before close */
#define LINGER_BYTES	((size_t)256 * 1024)
#define WRITE_CHECK_MS	1000		/* how often a stalled send looks for progress */
#define FAIR_WAIT_MS	100		/* aim: queued clients wait no longer */
#define PROXY_LOG_MS	1000		/* PROXY refusals: a line at most this often */

/* What one step of drive() came to. */
enum step { STEP_GO, STEP_WAIT };

static void	on_io(struct ev_loop *, int, uint32_t, void *);
static void	on_timer(struct ev_loop *, void *);
static void	next_request(struct conn *);
static void	tls_begin(struct conn *);

/* --- registration and buffers --------------------------------------- */

/* OpenSSL holds decrypted bytes the socket will not announce: go on. */
static void
on_kick(struct ev_loop *ev, void *arg)
{
	struct conn *c = arg;

	on_io(ev, c->fd, EPOLLIN, c);
}

/* Wait for events on c's socket (registering it the first time). */
int
conn_watch(struct conn *c, uint32_t events)
{
	struct ev_loop *ev = &c->w->ev;

	/*
	 * A TLS record read whole may hold more than the reader took: the
	 * rest is in OpenSSL, and epoll would wait for the socket in vain.
	 */
	if (c->ssl != NULL && (events & EPOLLIN) && tls_conn_pending(c->ssl))
		(void)ev_timer_at(ev, &c->kick, clock_ms());
	if (ev_registered(ev, c->fd))
		return ev_mod(ev, c->fd, events);
	return ev_add(ev, c->fd, events, on_io, c);
}

ssize_t
conn_recv(struct conn *c, void *buf, size_t len)
{
	if (c->ssl != NULL)
		return tls_conn_recv(c->ssl, buf, len);
	return recv(c->fd, buf, len, MSG_DONTWAIT);
}

ssize_t
conn_sendv(struct conn *c, const struct iovec *iov, int n, int more)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)(uintptr_t)iov,
		.msg_iovlen = (size_t)n };

	if (c->ssl != NULL)
		return tls_conn_sendv(c->ssl, iov, n);
	return sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL |
	    (more ? MSG_MORE : 0));
}

static void
set_timer(struct conn *c, int64_t when)
{
	/* Out of memory: the connection then waits for its socket only. */
	(void)ev_timer_at(&c->w->ev, &c->timer, when);
}

/* Room to read into: a buffer, grown up to the head limit. */
static int
buf_room(struct conn *c)
{
	struct worker *w = c->w;
	size_t cap;
	char *b;

	if (c->buf == NULL) {
		cap = w->bufcap < HEAD_BUF_MIN ? w->bufcap : HEAD_BUF_MIN;
		if (w->nspare > 0 && cap == HEAD_BUF_MIN)
			b = w->spare[--w->nspare];
		else if ((b = malloc(cap)) == NULL)
			return -1;
		c->buf = b;
		c->cap = cap;
	}
	if (c->len < c->cap || c->cap >= w->bufcap)
		return 0;
	cap = 2 * c->cap < w->bufcap ? 2 * c->cap : w->bufcap;
	if (cap <= c->cap || (b = realloc(c->buf, cap)) == NULL)
		return -1;
	c->buf = b;
	c->cap = cap;
	return 0;
}

/* The buffer is not needed now (nothing in it): keep it for another. */
static void
buf_drop(struct conn *c)
{
	struct worker *w = c->w;

	if (c->buf == NULL)
		return;
	if (c->cap == HEAD_BUF_MIN && w->nspare < SPARE_BUFS)
		w->spare[w->nspare++] = c->buf;
	else
		free(c->buf);
	c->buf = NULL;
	c->cap = c->len = 0;
}

void
conn_close(struct conn *c)
{
	struct worker *w = c->w;

	ws_detach(c);
	ps_detach(c);
	ev_timer_stop(&w->ev, &c->timer);
	ev_timer_stop(&w->ev, &c->kick);
	ev_del(&w->ev, c->fd);
	if (c->ssl != NULL) {
		/* Every way out says close_notify, if the session is sound. */
		tls_conn_notify(c->ssl);
		tls_conn_free(c->ssl);
		c->ssl = NULL;
		sb_tls_open(w->me, -1);
	}
	io_out_free(&c->out);
	buf_drop(c);
	close(c->fd);
	pool_release(&w->pool, c);
}

/* --- the access log and the scoreboard ------------------------------ */

/*
 * One access-log line.  For a request the parser accepted, its request
 * line, Referer and User-Agent; for one it rejected, the raw first line
 * as received (alog escapes it).
 */
static void
log_request(struct conn *c, int parsed)
{
	const struct req_info *ri = &c->ri;
	const char *line = "", *end, *stop;
	char tls[96];
	size_t n = 0;

	if (!alog_enabled() || ri->quiet)
		return;
	if (parsed) {
		line = ri->line.p;
		n = ri->line.n;
	} else if (c->buf != NULL) {
		line = c->buf;
		stop = c->buf + c->len;
		while (line < stop && (*line == '\r' || *line == '\n'))
			line++;
		end = memchr(line, '\n', (size_t)(stop - line));
		n = (size_t)((end ? end : stop) - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
	}
	if (c->w->cfg->access_log_tls)
		tls_conn_describe(c->ssl, tls, sizeof(tls));
	alog_write(c->peer, line, n, c->status, c->sent,
	    parsed ? ri->referer.p : NULL, parsed ? ri->referer.n : 0,
	    parsed ? ri->agent.p : NULL, parsed ? ri->agent.n : 0,
	    c->w->cfg->access_log_tls ? tls : NULL);
}

/* The client's address, as the access log, status_allow, programs see it. */
static void
peer_set(struct conn *c, const struct sockaddr_storage *ss, socklen_t len)
{
	if (ss != &c->peer_ss)
		memcpy(&c->peer_ss, ss, sizeof(c->peer_ss));
	c->peer_len = len;
	if (len == 0 || getnameinfo((struct sockaddr *)&c->peer_ss, len,
	    c->peer, sizeof(c->peer), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(c->peer, sizeof(c->peer), "-");
}

/* The connection's client: its TCP peer, until a PROXY header says. */
static void
peer_name(struct conn *c)
{
	socklen_t sl = sizeof(c->addr_ss);

	c->addr_len = 0;
	if (getpeername(c->fd, (struct sockaddr *)&c->addr_ss, &sl) == 0)
		c->addr_len = sl;
	peer_set(c, &c->addr_ss, c->addr_len);
}

void
conn_show(struct worker *w)
{
	const struct pool *p = &w->pool;
	const struct conn *old = p->req_head;
	enum sb_state s;

	if (old != NULL) {
		sb_show_request(w->me, old->ri.line.p, old->ri.line.n,
		    old->req_start);
		s = SB_WRITING;
	} else {
		sb_show_request(w->me, NULL, 0, 0);
		if (p->count[CS_PROXY] + p->count[CS_TLS] + p->count[CS_HEAD] +
		    p->count[CS_BODY] > 0)
			s = SB_READING;
		else if (pool_full(p))
			s = SB_KEEPALIVE;	/* not idle: it takes nobody */
		else
			s = SB_IDLE;
	}
	sb_set_state(w->me, s);
}

/* --- closing ------------------------------------------------------- */

/*
 * Close without losing the response.  dirty: the client may still be
 * sending, so shut down our side and drain its input for a while first
 * (a close with unread input makes the kernel send a reset, which can
 * destroy the response in flight).  hurry: drain only what came already.
 */
static void
finish(struct conn *c, int dirty, int hurry)
{
	char sink[4096];
	ssize_t n;

	if (!dirty && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0) {
		conn_close(c);
		return;
	}
	/* TLS: its close_notify before the FIN; what follows is dropped. */
	if (c->ssl != NULL)
		tls_conn_notify(c->ssl);
	if (shutdown(c->fd, SHUT_WR) == -1) {
		conn_close(c);
		return;
	}
	if (hurry) {
		size_t total = 0;

		while (total < LINGER_BYTES &&
		    (n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
			total += (size_t)n;
		conn_close(c);
		return;
	}
	buf_drop(c);
	c->drained = 0;
	pool_set_state(&c->w->pool, c, CS_LINGER);
	if (conn_watch(c, EPOLLIN) == -1) {
		conn_close(c);
		return;
	}
	set_timer(c, clock_ms() + LINGER_MS);
}

static void
linger_read(struct conn *c)
{
	char sink[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n > 0 && (c->drained += (size_t)n) < LINGER_BYTES)
			continue;
		if (n == -1 && (errno == EINTR || io_would_block()))
			return;
		conn_close(c);
		return;
	}
}

/* --- responses ----------------------------------------------------- */

/* The response is over, sent or not: log and count it. */
static void
response_over(struct conn *c, int parsed)
{
	struct worker *w = c->w;

	log_request(c, parsed);
	if (parsed) {
		c->nreq++;
		sb_request_end(w->me);
	}
	pool_request_end(&w->pool, c);
}

/*
 * A send failed or was cut (send_timeout, request_timeout): the
 * response is lost, and lingering would only hold a place.
 */
static void
response_failed(struct conn *c)
{
	response_over(c, c->ri.line.p != NULL);
	finish(c, 1, 1);
}

/* Every byte is with the kernel: what next. */
static void
response_done(struct conn *c)
{
	const struct req_info *ri = &c->ri;
	int parsed = ri->line.p != NULL;

	response_over(c, parsed);
	if (c->sub != NULL) {
		/* The event-stream head or the 101 is out: a subscriber. */
		int more = c->buf != NULL && c->len > ri->head_len;

		ps_begin(c, more ? c->buf + ri->head_len : NULL, more ?
		    c->len - ri->head_len : 0);
		if (c->fd >= 0 && c->state == CS_SUB)
			buf_drop(c);
		return;
	}
	if (c->ws != NULL) {
		/* The 101 is out: what followed the head is the first frames. */
		ws_begin(c, c->buf + ri->head_len, c->len - ri->head_len);
		if (c->fd >= 0 && c->state == CS_WS)
			buf_drop(c);
		return;
	}
	if (!c->keep) {
		/*
		 * A client that asked to keep the connection may be sending
		 * its next request right now: close in stages (RFC 9112
		 * 9.6), or its arrival after close() would make the kernel
		 * reset the connection.
		 */
		finish(c, !parsed || c->len > ri->head_len ||
		    ri->content_length > 0 || ri->chunked || ri->keepalive,
		    c->hurry);
		return;
	}
	/* Keep what was pipelined behind this request. */
	memmove(c->buf, c->buf + ri->head_len, c->len - ri->head_len);
	c->len -= ri->head_len;
	if (ri->content_length > 0) {
		c->body_left = ri->content_length;
		c->pace = (struct pace){ clock_ms(), c->w->cfg->header_timeout,
		    INT64_MAX, c->w->cfg->body_min_rate, 0 };
		pool_set_state(&c->w->pool, c, CS_BODY);
		return;
	}
	next_request(c);
}

/* A response was started: finish it now, or as the client takes it. */
void
conn_responded(struct conn *c, enum io_rc rc)
{
	int64_t now;

	switch (rc) {
	case IO_DONE:
		response_done(c);
		return;
	case IO_ERROR:
		response_failed(c);
		return;
	case IO_AGAIN:
		break;
	}
	now = clock_ms();
	pool_set_state(&c->w->pool, c, CS_SEND);
	c->progress = now;
	c->outq = io_unacked(c->fd);
	if (conn_watch(c, EPOLLOUT) == -1) {
		response_failed(c);
		return;
	}
	set_timer(c, now + WRITE_CHECK_MS);
}

static void
send_more(struct conn *c)
{
	enum io_rc rc = io_out_more(&c->out, c->fd);

	if (rc == IO_AGAIN) {
		c->progress = clock_ms();	/* it took bytes */
		c->outq = io_unacked(c->fd);
		return;
	}
	if (rc == IO_DONE && conn_watch(c, EPOLLIN) == -1)
		rc = IO_ERROR;
	if (rc == IO_DONE)
		response_done(c);
	else
		response_failed(c);
}

/*
 * A response waits for the client: every WRITE_CHECK_MS, look for
 * progress.  POLLOUT comes only once about a third of the socket buffer
 * is free, which a slow but steady reader may take long to reach, so the
 * bytes still unacknowledged count too: any decrease is progress.  A
 * client that makes none for send_timeout is cut; so is a response
 * running past request_timeout.
 */
static void
send_check(struct conn *c)
{
	const struct cfg *cfg = c->w->cfg;
	int64_t now = clock_ms();
	int q = io_unacked(c->fd);

	if (q >= 0 && q < c->outq) {
		c->outq = q;
		c->progress = now;
	}
	if (now - c->progress >= cfg->send_timeout) {
		response_failed(c);
		return;
	}
	if (cfg->request_timeout > 0 && c->req_start != 0 &&
	    now - c->req_start > cfg->request_timeout) {
		log_warnx("request \"%.*s\" still running after %lld ms "
		    "(request_timeout): closing the connection",
		    (int)(c->ri.line.n < 256 ? c->ri.line.n : 256),
		    c->ri.line.p, (long long)(now - c->req_start));
		response_failed(c);
		return;
	}
	set_timer(c, now + WRITE_CHECK_MS);
}

/* A request rejected (status): answer, then close, never resync. */
static void
reject(struct conn *c, int status, int parsed)
{
	struct worker *w = c->w;

	c->keep = 0;
	if (!parsed)
		c->ri.line = (struct http_str){ NULL, 0 };
	else	/* shown on the status page, bound by request_timeout */
		pool_request_begin(&w->pool, c, clock_ms());
	conn_responded(c, resp_status(w, c, status, status ==
	    HTTP_METHOD_NOT_ALLOWED ? "Allow: GET, HEAD, OPTIONS\r\n" : NULL));
}

/* --- fairness and keep-alive ---------------------------------------- */

/*
 * Fairness.  A worker below worker_connections takes queued clients
 * itself (its listeners are in its event core), so keeping a connection
 * costs nobody anything.  At worker_connections, a keep-alive client
 * holding its place makes the clients queued in the accept backlog wait.
 * Idle ones are closed for them (conn_evict); busy ones each get a time
 * slice while others wait, sized so that the queue as a whole is served
 * within about FAIR_WAIT_MS: slice = FAIR_WAIT_MS * workers / queued,
 * between 1 ms and FAIR_WAIT_MS.  A client that already pipelined its
 * next request keeps its turn until it has been answered.
 */
static int
fair_turn_over(struct worker *w, struct conn *c)
{
	int64_t now, slice;
	int q, workers;

	if (c->len != w->req.head_len)
		return 0;		/* pipelined: answer it first */
	now = clock_ms();
	if (!pool_full(&w->pool)) {
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

	if (!req->keepalive || *w->stop || w->stopping || last_request(w))
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

/* --- requests ------------------------------------------------------ */

static int64_t
pace_deadline(const struct pace *p, int64_t base)
{
	int64_t t = base;

	if (p->rate > 0)
		t += (int64_t)(p->got / p->rate) * 1000 +
		    (int64_t)(p->got % p->rate) * 1000 / (int64_t)p->rate;
	return p->start + (t < p->cap ? t : p->cap);
}

/* What the connection keeps of the request the parser just took. */
static void
keep_info(struct conn *c, const struct http_req *req)
{
	c->ri = (struct req_info){ req->line,
	    http_header(req, "referer"), http_header(req, "user-agent"),
	    req->head_len, req->content_length, req->chunked, req->keepalive,
	    req->meth, req->minor, 0 };
}

/* The forwarding headers by enum cfg_real_ip, as the parser names them. */
static const char *const fwd_names[] = { "x-forwarded-for", "forwarded",
	"x-real-ip" };

/*
 * real_ip_from: a request from a proxy of ours names its client in a
 * forwarding header, and that client is the request's (the access log,
 * status_allow, the programs' REMOTE_ADDR).  Nobody else's is believed.
 */
static void
real_ip(struct conn *c, const struct http_req *req)
{
	const struct cfg *cfg = c->w->cfg;
	const char *name = fwd_names[cfg->real_ip];
	size_t nlen = strlen(name);
	struct http_str vals[PROXY_HOPS];
	struct sockaddr_storage ss;
	socklen_t len;
	int n = 0, skip = 0, i;

	if (cfg->real_ip_acl.n == 0 || c->addr_len == 0 ||
	    !acl_match(&cfg->real_ip_acl, (struct sockaddr *)&c->addr_ss))
		return;
	/* Lines past the last PROXY_HOPS hold hops too far to matter. */
	for (i = 0; i < req->nhdr; i++)
		if (req->hdr[i].name.n == nlen &&
		    strncasecmp(req->hdr[i].name.p, name, nlen) == 0)
			skip++;
	skip = skip > PROXY_HOPS ? skip - PROXY_HOPS : 0;
	for (i = 0; i < req->nhdr; i++)
		if (req->hdr[i].name.n == nlen &&
		    strncasecmp(req->hdr[i].name.p, name, nlen) == 0 &&
		    skip-- <= 0)
			vals[n++] = req->hdr[i].value;
	if (n > 0 && proxy_forwarded(cfg->real_ip, vals, n, &cfg->real_ip_acl,
	    &ss, &len)) {
		peer_set(c, &ss, len);
		c->forwarded = 1;
	}
}

/*
 * A request on a channel (pubsub.c): answered now, or (a POST) once its
 * body is in.
 */
static void
channel_request(struct conn *c, int route)
{
	struct worker *w = c->w;
	enum io_rc rc;

	if (c->addr_len == 0)
		peer_name(c);	/* channel_publish_from */
	sb_busy(w->me, w->req.line.p, w->req.line.n);
	pool_request_begin(&w->pool, c, clock_ms());
	conn_show(w);
	c->keep = keep_alive(w, c);
	if (ps_request(w, c, route, &rc))
		conn_responded(c, rc);
	sb_busy(w->me, NULL, 0);
}

/* A complete head is in w->req: answer it. */
static void
handle(struct conn *c)
{
	struct worker *w = c->w;
	enum io_rc rc;
	int route, ps;

	keep_info(c, &w->req);
	real_ip(c, &w->req);
	if (c->plain_on_tls) {
		reject(c, HTTP_BAD_REQUEST, 1);
		return;
	}
	ps = w->cfg->nchannel > 0 ? ps_route(w, &w->req) : -1;
	if (ps >= 0) {
		channel_request(c, ps);
		return;
	}
	if (w->req.meth == HTTP_M_POST) {
		reject(c, HTTP_METHOD_NOT_ALLOWED, 1);
		return;
	}
	if (w->req.content_length > (long long)w->cfg->max_body_size) {
		reject(c, HTTP_PAYLOAD_TOO_LARGE, 1);
		return;
	}
	sb_busy(w->me, w->req.line.p, w->req.line.n);
	pool_request_begin(&w->pool, c, clock_ms());
	conn_show(w);	/* the status page may be this very request */
	c->keep = keep_alive(w, c);
	route = w->cfg->nws > 0 ? ws_route(w, &w->req) : -1;
	/* A session's program needs its client, found only when asked. */
	if (route >= 0 && c->addr_len == 0)
		peer_name(c);
	rc = route >= 0 ? ws_accept(w, c, route) : resp_respond(w, c);
	sb_busy(w->me, NULL, 0);
	conn_responded(c, rc);
}

/*
 * n more bytes arrived: parse again if a line may have completed, or if
 * the unfinished line is already too long (a request line that never
 * ends must get its 414 now, not a 408 later).  Returns what
 * http_parse() does.
 */
static int
head_more(struct conn *c, size_t n)
{
	struct worker *w = c->w;
	const char *lf;

	c->len += n;
	if ((lf = memrchr(c->buf + c->len - n, '\n', n)) != NULL)
		c->line = (size_t)(lf - c->buf) + 1;
	if (lf != NULL || c->len - c->line > w->lim.max_line ||
	    c->len - c->line > w->lim.max_field || c->len >= w->bufcap)
		return http_parse(c->buf, c->len, &w->lim, &w->req);
	return HTTP_AGAIN;
}

/*
 * Reading a head: from the accept, or from the first byte on a kept
 * connection, it has header_timeout, extended at header_min_rate up to
 * header_timeout_max.  What is already in the buffer (pipelined) is
 * parsed first.
 */
static void
head_begin(struct conn *c, int64_t now)
{
	const struct cfg *cfg = c->w->cfg;
	const char *lf;

	pool_set_state(&c->w->pool, c, CS_HEAD);
	/* The last request's forwarding header is not this one's. */
	if (c->forwarded) {
		c->forwarded = 0;
		peer_set(c, &c->addr_ss, c->addr_len);
	}
	c->ri = (struct req_info){ .meth = HTTP_M_OTHER, .minor = 1,
		.content_length = -1 };
	c->pace = (struct pace){ now, cfg->header_timeout,
	    cfg->header_timeout_max > cfg->header_timeout ?
	    cfg->header_timeout_max : cfg->header_timeout,
	    cfg->header_min_rate, c->len };
	c->line = 0;
	c->ready = 0;
	if (c->len > 0 && (lf = memrchr(c->buf, '\n', c->len)) != NULL)
		c->line = (size_t)(lf - c->buf) + 1;
}

/*
 * The head (or PROXY header, or TLS handshake) is incomplete and cannot
 * go on now: wait for the socket (events), until its pace's deadline.
 */
static void
read_wait(struct conn *c, uint32_t events)
{
	struct worker *w = c->w;
	int64_t when = pace_deadline(&c->pace, c->pace.base);

	/* Stopping: a connection that said nothing gets a short grace. */
	if (w->stopping && c->len == 0 && when > w->stop_at + STOP_GRACE_MS)
		when = w->stop_at + STOP_GRACE_MS;
	if (conn_watch(c, events) == -1) {
		conn_close(c);
		return;
	}
	set_timer(c, when);
}

static void
head_wait(struct conn *c)
{
	read_wait(c, EPOLLIN);
}

/* The parser's verdict on the head: answer, or reject. */
static void
head_done(struct conn *c, int rc)
{
	if (rc == 0) {
		handle(c);
		return;
	}
	/* What the parser saw of the method: a HEAD's error has no body. */
	c->ri.meth = c->w->req.meth;
	reject(c, rc, 0);
}

static enum step
head_step(struct conn *c)
{
	struct worker *w = c->w;
	ssize_t n;
	int rc;

	if (c->len >= w->bufcap) {
		reject(c, HTTP_HEADERS_TOO_LARGE, 0);
		return STEP_GO;
	}
	if (buf_room(c) == -1) {
		conn_close(c);
		return STEP_WAIT;
	}
	n = conn_recv(c, c->buf + c->len, c->cap - c->len);
	if (n == -1 && errno == EINTR)
		return STEP_GO;
	if (n == -1 && io_would_block()) {
		if (c->len == 0)
			buf_drop(c);
		head_wait(c);
		return STEP_WAIT;
	}
	if (n <= 0) {
		conn_close(c);	/* gone: nothing to answer */
		return STEP_WAIT;
	}
	c->pace.got += (size_t)n;
	if ((rc = head_more(c, (size_t)n)) != HTTP_AGAIN)
		head_done(c, rc);
	return STEP_GO;
}

/* --- the PROXY protocol --------------------------------------------- */

/*
 * A connection on a proxy_protocol listener refused: closed, and said
 * in the error log at most once a second per worker (a broken balancer
 * or a scanner would fill it), the line counting those refused since
 * the last one without a line of their own.
 */
static void
proxy_refuse(struct conn *c, const char *why)
{
	struct worker *w = c->w;
	int64_t now = clock_ms();

	if (w->proxy_log_at != 0 && now - w->proxy_log_at < PROXY_LOG_MS)
		w->proxy_unsaid++;
	else {
		if (w->proxy_unsaid > 0)
			log_warnx("PROXY protocol: connection from %s refused: "
			    "%s; %lu more refused since the last such line",
			    c->peer, why, w->proxy_unsaid);
		else
			log_warnx("PROXY protocol: connection from %s refused: "
			    "%s", c->peer, why);
		w->proxy_log_at = now;
		w->proxy_unsaid = 0;
	}
	conn_close(c);
}

/* What listener lfd is: LF_PROXY, LF_TLS, LF_REDIRECT. */
static int
listener_flags(const struct worker *w, int lfd)
{
	const struct worker_env *env = w->env;
	const struct cfg *cfg = w->cfg;

	for (int i = 0; i < env->nlfd && i < (int)cfg->nlisten; i++)
		if (env->lfd[i] == lfd)
			return (cfg->listen_proxy[i] ? LF_PROXY : 0) |
			    (cfg->listen_tls[i] ? LF_TLS : 0) |
			    (cfg->listen_redirect[i] ? LF_REDIRECT : 0);
	return 0;
}

/*
 * The header comes first, within header_timeout of the accept, and
 * only from proxy_trusted: anyone else could claim any address.
 */
static void
proxy_begin(struct conn *c)
{
	const struct cfg *cfg = c->w->cfg;

	if (c->addr_len == 0 ||
	    !acl_match(&cfg->proxy_acl, (struct sockaddr *)&c->addr_ss)) {
		proxy_refuse(c, "not in proxy_trusted");
		return;
	}
	pool_set_state(&c->w->pool, c, CS_PROXY);
	c->pace = (struct pace){ c->since, cfg->header_timeout,
	    cfg->header_timeout, 0, 0 };
}

/* A valid header of hl bytes: its source is the client from now on. */
static void
proxy_done(struct conn *c, const struct proxy_info *pi, size_t hl)
{
	struct worker *w = c->w;

	if (!pi->local) {	/* LOCAL: the balancer's own health check */
		memcpy(&c->addr_ss, &pi->src, sizeof(c->addr_ss));
		c->addr_len = pi->srclen;
		peer_set(c, &c->addr_ss, c->addr_len);
	}
	/* What followed the header is the request. */
	memmove(c->buf, c->buf + hl, c->len - hl);
	c->len -= hl;
	if (c->lflags & LF_TLS) {
		buf_drop(c);
		tls_begin(c);
		return;
	}
	head_begin(c, c->since);
	if (c->len > 0)
		c->ready = http_parse(c->buf, c->len, &w->lim, &w->req) !=
		    HTTP_AGAIN;
}

/*
 * Read the header and nothing past it: the v2 fixed part, then what its
 * length says; a v1 line is looked at first (MSG_PEEK) and taken up to
 * its LF.  What follows is the request, or on a tls listener the
 * ClientHello, which OpenSSL must read from the socket itself.
 */
static enum step
proxy_step(struct conn *c)
{
	struct worker *w = c->w;
	struct proxy_info pi;
	const char *lf;
	size_t want;
	ssize_t n;
	long hl;

	hl = proxy_parse((const unsigned char *)c->buf, c->len, w->bufcap,
	    &pi);
	if (hl == PROXY_BAD) {
		proxy_refuse(c, pi.why);
		return STEP_WAIT;
	}
	if (hl > 0) {
		proxy_done(c, &pi, (size_t)hl);
		return STEP_GO;
	}
	if (buf_room(c) == -1) {
		conn_close(c);
		return STEP_WAIT;
	}
	if ((want = c->cap - c->len) > pi.want)
		want = pi.want;
	n = recv(c->fd, c->buf + c->len, want, MSG_DONTWAIT | MSG_PEEK);
	if (n == -1 && errno == EINTR)
		return STEP_GO;
	if (n == -1 && io_would_block()) {
		if (c->len == 0)
			buf_drop(c);
		head_wait(c);
		return STEP_WAIT;
	}
	if (n <= 0) {
		/* Gone: quietly when it sent nothing (a TCP health check). */
		if (c->len == 0)
			conn_close(c);
		else
			proxy_refuse(c, "closed inside the header");
		return STEP_WAIT;
	}
	/* v1 ("PROXY ..."): its line only; v2's want is exact already. */
	if (c->buf[0] == 'P' && (lf = memchr(c->buf + c->len, '\n',
	    (size_t)n)) != NULL)
		n = lf - (c->buf + c->len) + 1;
	if (recv(c->fd, c->buf + c->len, (size_t)n, MSG_DONTWAIT) != n) {
		conn_close(c);	/* what was there a moment ago is not */
		return STEP_WAIT;
	}
	c->len += (size_t)n;
	return STEP_GO;
}

/* --- TLS ------------------------------------------------------------ */

/*
 * A plain-HTTP request on a tls listener: read it as such and answer
 * 400 (as nginx does), so that the person who typed http:// sees why.
 */
static void
tls_plain(struct conn *c)
{
	tls_conn_free(c->ssl);
	c->ssl = NULL;
	sb_tls_open(c->w->me, -1);
	c->plain_on_tls = 1;
	head_begin(c, c->since);
}

/* A handshake that failed or ran out of time: counted, closed. */
static void
tls_fail(struct conn *c, const char *why)
{
	sb_count_tls_failed(c->w->me);
	if (c->addr_len == 0)
		peer_name(c);	/* for the line: found only when needed */
	log_debug("TLS handshake with %s: %s", c->peer, why);
	conn_close(c);
}

/*
 * The handshake, within tls_handshake_timeout of its start.  Before it
 * begins, a look at the first byte: a TLS record starts with 22
 * (handshake); a letter is someone speaking plain HTTP.
 */
static enum step
tls_step(struct conn *c)
{
	unsigned char b;
	ssize_t n;

	if (c->pace.got == 0) {
		n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			return STEP_GO;
		if (n == -1 && io_would_block()) {
			head_wait(c);
			return STEP_WAIT;
		}
		if (n <= 0) {
			conn_close(c);	/* gone before a word: quietly */
			return STEP_WAIT;
		}
		if (b >= 'A' && b <= 'Z') {
			tls_plain(c);
			return STEP_GO;
		}
		c->pace.got = 1;
	}
	switch (tls_conn_handshake(c->ssl)) {
	case TLS_DONE:
		sb_count_tls(c->w->me, tls_conn_v13(c->ssl),
		    tls_conn_resumed(c->ssl));
		head_begin(c, clock_ms());
		return STEP_GO;
	case TLS_WANT_READ:
		head_wait(c);
		return STEP_WAIT;
	case TLS_WANT_WRITE:
		read_wait(c, EPOLLOUT);
		return STEP_WAIT;
	case TLS_FAIL:
		break;
	}
	tls_fail(c, "failed");
	return STEP_WAIT;
}

static void
tls_begin(struct conn *c)
{
	struct worker *w = c->w;
	int t = w->cfg->tls_handshake_timeout;

	if ((c->ssl = tls_conn_new(tls_default_ctx(w->cfg->tls), c->fd)) ==
	    NULL) {
		conn_close(c);
		return;
	}
	sb_tls_open(w->me, 1);
	pool_set_state(&w->pool, c, CS_TLS);
	c->pace = (struct pace){ clock_ms(), t, t, 0, 0 };
}

/* Read and drop a request body so the next request is in sync. */
static enum step
body_step(struct conn *c)
{
	size_t take = c->len < (unsigned long long)c->body_left ? c->len :
	    (size_t)c->body_left;
	ssize_t n;

	if (c->collect)
		return ps_body_step(c) ? STEP_GO : STEP_WAIT;
	memmove(c->buf, c->buf + take, c->len - take);
	c->len -= take;
	c->body_left -= (long long)take;
	if (c->body_left == 0) {
		next_request(c);
		return STEP_GO;
	}
	n = conn_recv(c, c->buf, c->cap);
	if (n == -1 && errno == EINTR)
		return STEP_GO;
	if (n == -1 && io_would_block()) {
		if (conn_watch(c, EPOLLIN) == -1) {
			conn_close(c);
			return STEP_WAIT;
		}
		set_timer(c, pace_deadline(&c->pace, c->pace.base));
		return STEP_WAIT;
	}
	if (n <= 0) {
		conn_close(c);
		return STEP_WAIT;
	}
	c->len = (size_t)n;
	c->pace.got += (size_t)n;
	return STEP_GO;
}

/* Idle between requests: wait for the next one. */
static void
park(struct conn *c)
{
	struct worker *w = c->w;

	buf_drop(c);
	if (w->stopping || conn_watch(c, EPOLLIN) == -1) {
		conn_close(c);
		return;
	}
	pool_set_state(&w->pool, c, CS_PARKED);
	c->idle_since = clock_ms();
	set_timer(c, c->idle_since + w->cfg->keepalive_timeout);
}

/* After a response (and its body): the next request, or park. */
static void
next_request(struct conn *c)
{
	if (c->len == 0) {
		park(c);
		return;
	}
	head_begin(c, clock_ms());
	/* Complete already?  Then drive() answers it without reading. */
	c->ready = http_parse(c->buf, c->len, &c->w->lim, &c->w->req) !=
	    HTTP_AGAIN;
}

/* Take c as far as it goes without waiting. */
static void
drive(struct conn *c)
{
	for (;;) {
		if (c->fd < 0)
			return;
		if (c->state == CS_HEAD && c->ready) {
			/* A pipelined head already complete: answer it. */
			c->ready = 0;
			head_done(c, http_parse(c->buf, c->len, &c->w->lim,
			    &c->w->req));
			continue;
		}
		if (c->state == CS_HEAD) {
			if (head_step(c) == STEP_WAIT)
				return;
		} else if (c->state == CS_PROXY) {
			if (proxy_step(c) == STEP_WAIT)
				return;
		} else if (c->state == CS_TLS) {
			if (tls_step(c) == STEP_WAIT)
				return;
		} else if (c->state == CS_BODY) {
			if (body_step(c) == STEP_WAIT)
				return;
		} else
			return;
	}
}

/* --- events -------------------------------------------------------- */

static void
on_io(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;

	(void)ev;
	(void)fd;
	switch (c->state) {
	case CS_PARKED:
		head_begin(c, clock_ms());
		break;
	case CS_SEND:
		send_more(c);
		break;
	case CS_LINGER:
		linger_read(c);
		return;
	case CS_WS:
		ws_on_io(c, events);
		return;
	case CS_SUB:
		ps_on_io(c, events);
		return;
	case CS_NSTATES:
		return;
	case CS_PROXY:
	case CS_TLS:
	case CS_HEAD:
	case CS_BODY:
		break;
	}
	drive(c);
}

/* The state's deadline passed. */
static void
on_timer(struct ev_loop *ev, void *arg)
{
	struct conn *c = arg;
	char b;

	(void)ev;
	switch (c->state) {
	case CS_PROXY:
		/* Nothing sent at all: quietly, as a head would be. */
		if (c->len == 0)
			conn_close(c);
		else
			proxy_refuse(c, "header incomplete after "
			    "header_timeout");
		return;
	case CS_TLS:
		if (c->pace.got == 0)
			conn_close(c);	/* nothing sent at all: quietly */
		else
			tls_fail(c, "not done after tls_handshake_timeout");
		return;
	case CS_HEAD:
		/* Nothing sent at all: nothing to answer. */
		if (c->len == 0)
			conn_close(c);
		else
			reject(c, HTTP_REQUEST_TIMEOUT, 0);
		break;
	case CS_SEND:
		send_check(c);
		break;
	case CS_PARKED:
		/*
		 * Its request may have come in time while the worker was
		 * busy with another client: answer it, never drop it.
		 */
		if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1 ||
		    (c->ssl != NULL && tls_conn_pending(c->ssl))) {
			head_begin(c, clock_ms());
			break;
		}
		conn_close(c);
		return;
	case CS_BODY:
	case CS_LINGER:
		conn_close(c);
		return;
	case CS_WS:
		ws_on_timer(c);
		return;
	case CS_SUB:
		ps_on_timer(c);
		return;
	case CS_NSTATES:
		return;
	}
	drive(c);
}

/* --- the worker's side ---------------------------------------------- */

/* A record pool_open() gave (zeroed but for its socket): its timers, output. */
static void
conn_ready(struct worker *w, struct conn *c)
{
	c->w = w;
	ev_timer_init(&c->timer, on_timer, c);
	ev_timer_init(&c->kick, on_kick, c);
	io_out_init(&c->out);
}

void
conn_start(struct worker *w, int fd, int lfd)
{
	struct conn *c = pool_open(&w->pool, fd, lfd);

	if (c == NULL) {
		close(fd);	/* the worker accepts only with room */
		return;
	}
	conn_ready(w, c);
	c->lflags = listener_flags(w, lfd);
	if ((c->lflags & LF_PROXY) || alog_enabled() ||
	    strcmp(w->cfg->status_path, "off") != 0 ||
	    w->cfg->real_ip_acl.n > 0)
		peer_name(c);
	if (c->lflags & LF_PROXY)
		proxy_begin(c);
	else if (c->lflags & LF_TLS)
		tls_begin(c);
	else
		head_begin(c, c->since);
	if (c->fd < 0)
		return;		/* refused */
	drive(c);
}

struct conn *
conn_adopt(struct worker *w, int fd)
{
	struct conn *c = pool_open(&w->pool, fd, -1);

	if (c == NULL)
		return NULL;
	conn_ready(w, c);
	peer_name(c);
	return c;
}

void
conn_stop(struct worker *w)
{
	int64_t now = clock_ms(), grace = now + STOP_GRACE_MS;
	struct conn *c;
	int cursor = 0;

	if (w->stopping)
		return;
	w->stopping = 1;
	w->stop_at = now;
	while ((c = pool_next(&w->pool, &cursor)) != NULL)
		if (c->state == CS_WS)
			ws_stop(c);
		else if (c->state == CS_SUB)
			ps_stop(c);
		else if ((c->state == CS_PARKED || ((c->state == CS_HEAD ||
		    c->state == CS_PROXY || c->state == CS_TLS) &&
		    c->len == 0)) &&
		    (c->timer.idx < 0 || c->timer.when > grace))
			set_timer(c, grace);
}

void
conn_hurry(struct worker *w)
{
	struct conn *c;
	int cursor = 0;

	while ((c = pool_next(&w->pool, &cursor)) != NULL)
		if (c->state == CS_WS)
			ws_hurry(c);
		else if (c->state == CS_SUB)
			ps_hurry(c);
		else
			conn_close(c);
	ws_kill_all(w);
}

/*
 * Whose place goes first: a connection lingering on its way out, then
 * the longest-idle parked one, then the oldest head slower than
 * header_timeout_busy allows.  NULL: nobody's.
 */
static struct conn *
victim(struct worker *w)
{
	struct pool *p = &w->pool;
	int busy = w->cfg->header_timeout_busy, cursor = 0;
	int64_t now = clock_ms();
	struct conn *c, *head = NULL;

	if (p->count[CS_LINGER] == 0 && p->idle_head != NULL)
		return p->idle_head;
	while ((c = pool_next(p, &cursor)) != NULL) {
		if (c->state == CS_LINGER)
			return c;
		if (busy > 0 && (c->state == CS_HEAD || c->state == CS_PROXY ||
		    c->state == CS_TLS) &&
		    now >= pace_deadline(&c->pace, busy) &&
		    (head == NULL || c->pace.start < head->pace.start))
			head = c;
	}
	return p->idle_head != NULL ? p->idle_head : head;
}

int
conn_evict(struct worker *w)
{
	struct conn *c = victim(w);

	if (c == NULL)
		return 0;
	if (c->state != CS_HEAD || c->len == 0) {
		conn_close(c);
		return 1;
	}
	/* Its place is wanted: answered, but given no time to linger. */
	c->hurry = 1;
	reject(c, HTTP_REQUEST_TIMEOUT, 0);
	return 1;
}

int
conn_init(struct worker *w, int cap)
{
	const struct cfg *cfg = w->cfg;

	w->lim = (struct http_limits){ cfg->max_request_line,
	    cfg->max_header_line, cfg->max_header_size, cfg->max_headers,
	    cfg->nchannel > 0 };
	w->bufcap = w->lim.max_head + 1;
	if ((w->spare = calloc(SPARE_BUFS, sizeof(*w->spare))) == NULL ||
	    resp_init(w) == -1)
		return -1;
	return pool_init(&w->pool, cap, w->me);
}

void
conn_finish(struct conn *c)
{
	finish(c, 1, 0);
}

int64_t
conn_pace_deadline(const struct conn *c)
{
	return pace_deadline(&c->pace, c->pace.base);
}
