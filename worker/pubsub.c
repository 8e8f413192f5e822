/*
 * Channels in the worker (see pubsub.h).  A subscriber holds no queue
 * of its own: it has a cursor (the last id it was given) and reads the
 * next message from the store when its socket takes more, so a slow
 * reader costs one formatted event of memory, and a message it has not
 * had stays pending in the store (publishers are refused before it is
 * dropped).  Publishers wake the workers that have subscribers with a
 * datagram to each one's wake socket, named by the store's token and
 * the worker's pid in the abstract namespace.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "acl.h"
#include "cfg.h"
#include "chan.h"
#include "chstore.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "pubsub.h"
#include "resp.h"
#include "sb.h"
#include "worker.h"
#include "ws.h"
#include "wschan.h"
#include "wsproto.h"

#define PUMP_BATCH	64	/* events a subscriber gets before others */
#define PING_MS		30000	/* a comment line while idle */
#define EVENT_SLACK	64	/* "id: N\n" and the blank line */
#define HANDOVER_RETRY_MS 5	/* the master's queue was full */
#define HANDOVER_MIN_MS	1000	/* left before the deadline: else reconnect */

struct ps_sub {
	struct conn	*c;
	int		 ch;
	uint64_t	 joined;	/* ids after it were counted for us */
	uint64_t	 got;		/* the last id given */
	char		*out;		/* an event being sent */
	size_t		 olen, ooff, ocap;
	/* 1: close; 2: reconnect (a reload); 3: hand over, else as 2 */
	int		 stopping;
	int		 ended;		/* the last event is queued */
	int		 joined_ok;	/* counted in the store */
	int64_t		 progress;	/* ms: the socket last took bytes */
	int64_t		 next_ping;
	struct wsc	*wsc;		/* on a WebSocket (wschan.c), or NULL */
	struct ps_sub	*prev, *next;	/* the worker's subscribers of ch */
};

/* A channel of the store, as this worker sees it. */
struct ps_chan {
	struct ps_sub	*head;		/* our subscribers of it */
	uint64_t	 seen;		/* its last id when last looked at */
};

struct ps_state {
	struct ps_chan	*chan;		/* by the store's channel index */
	int		 nchan;
	int		 nsubs;
	int		 wake;		/* the wake socket, or -1 */
	char		*msg;		/* a message read from the store */
	size_t		 msgcap;
	int		 handed;	/* subscribers handed over */
	int		 echo;		/* 1: our marker sent; 2: echoed */
};

static void	pump(struct ps_sub *);
static void	link_sub(struct worker *, struct ps_sub *);

static struct chs *
store(const struct worker *w)
{
	return w->env->chs;
}

/* --- routes and names ------------------------------------------------ */

int
ps_route(const struct worker *w, const struct http_req *req)
{
	const struct cfg *cfg = w->cfg;

	for (size_t i = 0; i < cfg->nchannel; i++) {
		size_t n = strlen(cfg->channel[i]);

		if (req->path.n >= n && memcmp(req->path.p, cfg->channel[i],
		    n) == 0 && (req->path.n == n || req->path.p[n] == '/'))
			return (int)i;
	}
	return -1;
}

/* The channel's name: the path, when it names one under the prefix. */
static int
channel_name(const struct worker *w, int route, char *name, size_t len)
{
	const struct http_str *p = &w->req.path;
	size_t n = strlen(w->cfg->channel[route]);

	if (p->n <= n + 1 || p->n >= len)
		return -1;	/* the prefix itself, or too long */
	for (size_t i = 0; i < p->n; i++)
		if ((unsigned char)p->p[i] <= 0x20 || p->p[i] == 0x7f)
			return -1;
	memcpy(name, p->p, p->n);
	name[p->n] = '\0';
	return 0;
}

static int
parse_id(const char *p, size_t n, uint64_t *id)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*id = v;
	return 0;
}

/* Where a subscriber resumes: Last-Event-ID, or ?last_id=. */
static int
resume_from(const struct http_req *req, uint64_t *id)
{
	struct http_str h = http_header(req, "last-event-id");
	const char *q = req->query.p, *end, *v;

	if (h.p != NULL)
		return parse_id(h.p, h.n, id) == 0;
	for (end = q + req->query.n; q != NULL && q < end; q = v + 1) {
		const char *amp = memchr(q, '&', (size_t)(end - q));

		v = amp ? amp : end;
		if (v - q > 8 && memcmp(q, "last_id=", 8) == 0)
			return parse_id(q + 8, (size_t)(v - q - 8), id) == 0;
	}
	return 0;
}

static int
wants_stream(const struct http_req *req)
{
	struct http_str a = http_header(req, "accept");

	for (size_t i = 0; a.p != NULL && i + 17 <= a.n; i++)
		if (strncasecmp(a.p + i, "text/event-stream", 17) == 0)
			return 1;
	return 0;
}

/* --- waking ---------------------------------------------------------- */

static socklen_t
wake_addr(const struct chs *s, pid_t pid, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
	    "preforkd-ch-%016llx-%ld", (unsigned long long)chs_token(s),
	    (long)pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    (size_t)n);
}

/* Every local channel that moved: its subscribers take what is new. */
static void
poll_all(struct worker *w)
{
	struct ps_state *ps = w->ps;

	for (int ch = 0; ps != NULL && ch < ps->nchan; ch++) {
		struct ps_sub *s, *next;
		uint64_t last;

		if (ps->chan[ch].head == NULL ||
		    (last = chs_last(store(w), ch)) == ps->chan[ch].seen)
			continue;
		ps->chan[ch].seen = last;
		for (s = ps->chan[ch].head; s != NULL; s = next) {
			next = s->next;	/* pump() may end s */
			if (s->got < last && s->ooff == s->olen)
				pump(s);
		}
	}
}

static void
on_wake(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	char b[64];

	(void)ev;
	(void)events;
	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
		;
	poll_all(arg);
}

/* A message is in: every worker with subscribers looks (us too). */
static void
wake_all(struct worker *w)
{
	pid_t pids[CHS_WAITERS], me = getpid();
	struct sockaddr_un sa;
	int n = chs_waiters(store(w), pids, CHS_WAITERS);
	int fd = w->ps->wake;	/* post() made it (ps_init()) */

	for (int i = 0; i < n; i++) {
		socklen_t len;

		if (pids[i] == me)
			continue;
		len = wake_addr(store(w), pids[i], &sa);
		/* A full queue has a wake in it already: that is enough. */
		if (sendto(fd, "w", 1, MSG_DONTWAIT, (struct sockaddr *)&sa,
		    len) == -1 && (errno == ECONNREFUSED || errno == ENOENT))
			chs_waiter(store(w), pids[i], 0);	/* gone */
	}
	poll_all(w);
}

int
ps_init(struct worker *w)
{
	struct ps_state *ps;
	struct sockaddr_un sa;
	socklen_t len;
	int n = w->cfg->channel_max;

	if (w->ps != NULL)
		return 0;
	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (ps->chan = calloc((size_t)n, sizeof(struct ps_chan))) == NULL ||
	    (ps->msg = malloc(w->cfg->channel_max_message + 1)) == NULL)
		goto fail;
	ps->nchan = n;
	ps->msgcap = w->cfg->channel_max_message;
	ps->wake = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	len = wake_addr(store(w), getpid(), &sa);
	if (ps->wake == -1 || bind(ps->wake, (struct sockaddr *)&sa, len) ==
	    -1 || ev_add(&w->ev, ps->wake, EPOLLIN, on_wake, w) == -1) {
		log_warn("channels: wake socket");
		goto fail;
	}
	w->ps = ps;
	chs_waiter(store(w), getpid(), 1);
	return 0;
fail:
	if (ps != NULL) {
		if (ps->wake > 0)
			close(ps->wake);
		free(ps->chan);
		free(ps->msg);
		free(ps);
	}
	return -1;
}

void
ps_fini(struct worker *w)
{
	struct ps_state *ps = w->ps;

	if (ps == NULL)
		return;
	chs_waiter(store(w), getpid(), 0);
	ev_del(&w->ev, ps->wake);
	close(ps->wake);
	free(ps->chan);
	free(ps->msg);
	free(ps);
	w->ps = NULL;
}

/* --- publishing ------------------------------------------------------ */

static enum io_rc
json(struct worker *w, struct conn *c, int status, const char *extra,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum io_rc
json(struct worker *w, struct conn *c, int status, const char *extra,
    const char *fmt, ...)
{
	char body[CHS_NAME + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(body))
		return resp_status(w, c, HTTP_INTERNAL, NULL);
	return resp_json(w, c, status, extra, body, (size_t)n);
}

/*
 * A full stop: publishers and new subscribers come back later.  A
 * worker that only retires (a reload, an upgrade, max_requests) still
 * publishes: the store is the new generation's too; a subscriber it
 * takes is told at once to reconnect (ps_begin(), ps_stop()).
 */
static int
closing(const struct worker *w)
{
	return w->env->sb->draining;
}

/* Is c's client one that channel_publish_from lets publish? */
static int
publisher_ok(const struct worker *w, const struct conn *c)
{
	const struct cfg *cfg = w->cfg;

	return cfg->channel_publish_acl.n == 0 || (c->peer_len != 0 &&
	    acl_match(&cfg->channel_publish_acl,
	    (const struct sockaddr *)&c->peer_ss));
}

/* Into the store, and every worker with subscribers told. */
static enum chs_rc
put(struct worker *w, int ch, const void *p, size_t n, uint64_t *id,
    long *subs)
{
	enum chs_rc rc = chs_publish(store(w), ch, p, n, clock_ms(), id, subs);

	if (rc == CHS_OK)
		wake_all(w);
	return rc;
}

int
ps_publish(struct ps_sub *s, const void *p, size_t n, uint64_t *id,
    long *subs)
{
	struct worker *w = s->c->w;

	if (!w->cfg->channel_ws || !publisher_ok(w, s->c))
		return HTTP_FORBIDDEN;
	if (n > w->cfg->channel_max_message)
		return HTTP_PAYLOAD_TOO_LARGE;
	switch (put(w, s->ch, p, n, id, subs)) {
	case CHS_OK:
		return HTTP_ACCEPTED;
	case CHS_TOO_BIG:
		return HTTP_PAYLOAD_TOO_LARGE;
	case CHS_CHANNEL_FULL:
		return HTTP_TOO_MANY_REQUESTS;
	case CHS_STORE_FULL:
		return HTTP_INSUFFICIENT_STORAGE;
	case CHS_CLOSED:
		break;
	}
	return HTTP_UNAVAILABLE;
}

/* The body of c's POST is in ps->msg: publish it and answer. */
static enum io_rc
publish(struct worker *w, struct conn *c, const char *name, size_t len)
{
	uint64_t id;
	long subs;
	int ch;

	if ((ch = chs_channel(store(w), name, 1, clock_ms())) == -1)
		return json(w, c, HTTP_INSUFFICIENT_STORAGE, NULL,
		    "{\"error\": \"too many channels (channel_max %d)\"}\n",
		    w->cfg->channel_max);
	switch (put(w, ch, w->ps->msg, len, &id, &subs)) {
	case CHS_OK:
		break;
	case CHS_TOO_BIG:
		return resp_status(w, c, HTTP_PAYLOAD_TOO_LARGE, NULL);
	case CHS_CHANNEL_FULL:
		return json(w, c, HTTP_TOO_MANY_REQUESTS, "Retry-After: 1\r\n",
		    "{\"error\": \"channel_buffer is full of messages not yet "
		    "delivered\"}\n");
	case CHS_STORE_FULL:
		return json(w, c, HTTP_INSUFFICIENT_STORAGE, "Retry-After: 1\r\n",
		    "{\"error\": \"channel_memory is full of messages not yet "
		    "delivered\"}\n");
	case CHS_CLOSED:
		c->keep = 0;
		return json(w, c, HTTP_UNAVAILABLE, "Retry-After: 5\r\n",
		    "{\"error\": \"stopping\"}\n");
	}
	return json(w, c, HTTP_ACCEPTED, NULL, "{\"id\": %llu, \"subscribers\": "
	    "%ld}\n", (unsigned long long)id, subs);
}

int
ps_body_step(struct conn *c)
{
	struct worker *w = c->w;
	char name[CHS_NAME];
	ssize_t n = 0;

	while (c->pgot < c->plen) {
		n = conn_recv(c, w->ps->msg + c->pgot, c->plen - c->pgot);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->pgot += (size_t)n;
		c->pace.got += (size_t)n;
	}
	if (c->pgot < c->plen) {
		if (n == -1 && io_would_block() && conn_watch(c, EPOLLIN) == 0) {
			(void)ev_timer_at(&w->ev, &c->timer, conn_pace_deadline(c));
			return 0;
		}
		conn_close(c);
		return 0;
	}
	c->collect = 0;
	if (channel_name(w, c->route, name, sizeof(name)) == -1)
		conn_responded(c, resp_status(w, c, HTTP_NOT_FOUND, NULL));
	else
		conn_responded(c, publish(w, c, name, c->plen));
	return 1;
}

/*
 * A POST: checked, then its body taken, from what came with the head
 * and then from the socket into the worker's message buffer (one
 * request is handled at a time: one buffer is enough).
 */
static int
post(struct worker *w, struct conn *c, int route, enum io_rc *rc)
{
	const struct cfg *cfg = w->cfg;
	long long cl = w->req.content_length;
	size_t have, take;

	if (!cfg->channel_post || !publisher_ok(w, c)) {
		*rc = resp_status(w, c, HTTP_FORBIDDEN, NULL);
		return 1;
	}
	c->keep = c->keep && !w->req.chunked && cl >= 0;
	if (closing(w)) {
		c->keep = 0;
		*rc = json(w, c, HTTP_UNAVAILABLE, "Retry-After: 5\r\n",
		    "{\"error\": \"stopping\"}\n");
		return 1;
	}
	if (w->req.chunked || cl < 0) {
		*rc = resp_status(w, c, HTTP_LENGTH_REQUIRED, NULL);
		return 1;
	}
	if ((unsigned long long)cl > cfg->channel_max_message) {
		c->keep = 0;
		*rc = resp_status(w, c, HTTP_PAYLOAD_TOO_LARGE, NULL);
		return 1;
	}
	if (ps_init(w) == -1) {
		*rc = resp_status(w, c, HTTP_INTERNAL, NULL);
		return 1;
	}
	/* The body is ours: what follows it stays as the next request. */
	have = c->len - w->req.head_len;
	take = have < (size_t)cl ? have : (size_t)cl;
	memcpy(w->ps->msg, c->buf + w->req.head_len, take);
	memmove(c->buf + w->req.head_len, c->buf + w->req.head_len + take,
	    have - take);
	c->len -= take;
	c->ri.content_length = 0;
	c->plen = (size_t)cl;
	c->pgot = take;
	c->route = route;
	c->collect = 1;
	if (c->pgot == c->plen) {
		ps_body_step(c);
		return 0;
	}
	c->pace = (struct pace){ clock_ms(), cfg->header_timeout, INT64_MAX,
	    cfg->body_min_rate, 0 };
	pool_set_state(&w->pool, c, CS_BODY);
	/* A client that waits to be asked for the body (curl past 1 KB). */
	if (w->req.expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		struct iovec v = { (char *)(uintptr_t)cont, sizeof(cont) - 1 };

		(void)conn_sendv(c, &v, 1, 0);	/* else it sends on its own */
	}
	return 0;	/* drive() goes on in CS_BODY: ps_body_step() */
}

/* --- subscribing ----------------------------------------------------- */

/*
 * A subscriber: by Server-Sent Events, or (ws) by a WebSocket, whose
 * upgrade is checked as any other's (doc/design.md 10.2).
 */
static int
subscribe(struct worker *w, struct conn *c, const char *name, int ws,
    enum io_rc *rc)
{
	const char *extra, *proto = NULL;
	struct ps_sub *s;
	uint64_t from = 0;
	int ch, resume, status;
	char key[29];

	if (ws && (status = ws_check_upgrade(w, &w->req, &extra)) != 0) {
		*rc = resp_status(w, c, status, extra);
		return 1;
	}
	if (closing(w)) {
		c->keep = 0;
		*rc = resp_status(w, c, HTTP_UNAVAILABLE, "Retry-After: 5\r\n");
		return 1;
	}
	if (ps_init(w) == -1 || (s = calloc(1, sizeof(*s))) == NULL) {
		*rc = resp_status(w, c, HTTP_INTERNAL, NULL);
		return 1;
	}
	if ((ch = chs_channel(store(w), name, 1, clock_ms())) == -1) {
		free(s);
		*rc = json(w, c, HTTP_INSUFFICIENT_STORAGE, NULL,
		    "{\"error\": \"too many channels (channel_max %d)\"}\n",
		    w->cfg->channel_max);
		return 1;
	}
	resume = resume_from(&w->req, &from);
	s->c = c;
	s->ch = ch;
	s->got = resume ? from : UINT64_MAX;	/* live: set at the join */
	if (ws && (s->wsc = wsc_new(s, c)) == NULL) {
		free(s);
		*rc = resp_status(w, c, HTTP_UNAVAILABLE, NULL);
		return 1;
	}
	c->sub = s;
	if (!ws) {
		*rc = resp_event_stream(w, c);
		return 1;
	}
	c->keep = 0;
	proto = wsp_pick_protocol(&w->cfg->ws_protocol,
	    http_header(&w->req, "sec-websocket-protocol"));
	wsp_accept_key(http_header(&w->req, "sec-websocket-key"), key);
	*rc = resp_switching(w, c, key, proto);
	return 1;
}

int
ps_request(struct worker *w, struct conn *c, int route, enum io_rc *rc)
{
	char name[CHS_NAME];
	int ch;

	if (channel_name(w, route, name, sizeof(name)) == -1) {
		*rc = resp_status(w, c, HTTP_NOT_FOUND, NULL);
		return 1;
	}
	/* An upgrade to a WebSocket, right or wrong: its rules, its status. */
	if (wsp_has_token(http_header(&w->req, "upgrade"), "websocket"))
		return subscribe(w, c, name, 1, rc);
	if (w->req.meth == HTTP_M_POST)
		return post(w, c, route, rc);
	if (w->req.meth != HTTP_M_GET && w->req.meth != HTTP_M_HEAD) {
		*rc = resp_status(w, c, HTTP_METHOD_NOT_ALLOWED,
		    "Allow: GET, HEAD, POST\r\n");
		return 1;
	}
	if (w->req.meth == HTTP_M_GET && wants_stream(&w->req))
		return subscribe(w, c, name, 0, rc);
	ch = chs_channel(store(w), name, 0, clock_ms());
	*rc = json(w, c, HTTP_OK, NULL, "{\"channel\": \"%s\", \"last_id\": "
	    "%llu, \"first_id\": %llu, \"subscribers\": %ld}\n", name,
	    ch == -1 ? 0ULL : (unsigned long long)chs_last(store(w), ch),
	    ch == -1 ? 1ULL : (unsigned long long)chs_first(store(w), ch,
	    clock_ms()), ch == -1 ? 0L : chs_subscribers(store(w), ch));
	return 1;
}

/* --- a subscriber ---------------------------------------------------- */

static void
unlink_sub(struct ps_sub *s)
{
	struct ps_state *ps = s->c->w->ps;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (ps->chan[s->ch].head == s)
		ps->chan[s->ch].head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

void
ps_detach(struct conn *c)
{
	struct ps_sub *s = c->sub;

	if (s == NULL)
		return;
	if (s->joined_ok) {
		chs_leave(store(c->w), s->ch, s->joined, s->got);
		unlink_sub(s);
		c->w->ps->nsubs--;
	}
	wsc_free(s->wsc);
	free(s->out);
	free(s);
	c->sub = NULL;
}

/* Room in s->out for n more bytes. */
static int
out_room(struct ps_sub *s, size_t n)
{
	char *p;

	if (s->olen + n <= s->ocap)
		return 0;
	if ((p = realloc(s->out, s->olen + n)) == NULL)
		return -1;
	s->out = p;
	s->ocap = s->olen + n;
	return 0;
}

static void
out_add(struct ps_sub *s, const char *p, size_t n)
{
	memcpy(s->out + s->olen, p, n);
	s->olen += n;
}

/*
 * One event: "id: N", then a "data: " line for every line of the
 * message (CRLF, LF and CR all end a line, as the SSE parser takes
 * them), then the blank line.
 */
static int
format_event(struct ps_sub *s, uint64_t id, const char *m, size_t n)
{
	char head[32];
	size_t lines = 1;
	int hl;

	for (size_t i = 0; i < n; i++)
		lines += m[i] == '\n' || m[i] == '\r';
	if (out_room(s, n + lines * 7 + EVENT_SLACK) == -1)
		return -1;
	hl = snprintf(head, sizeof(head), "id: %llu\n", (unsigned long long)id);
	out_add(s, head, (size_t)hl);
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i < n && m[i] != '\n' && m[i] != '\r')
			continue;
		out_add(s, "data: ", 6);
		out_add(s, m + start, i - start);
		out_add(s, "\n", 1);
		if (i + 1 < n && m[i] == '\r' && m[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	out_add(s, "\n", 1);
	return 0;
}

/* The stream's last event: where to resume, and why it ends. */
static int
format_last(struct ps_sub *s)
{
	char e[128];
	int n = snprintf(e, sizeof(e), "event: %s\n%sdata: {\"last_id\": "
	    "%llu}\n\n", s->stopping == 2 ? "reconnect" : "close",
	    s->stopping == 2 ? "retry: 0\n" : "", (unsigned long long)s->got);

	if (out_room(s, (size_t)n) == -1)
		return -1;
	out_add(s, e, (size_t)n);
	s->ended = 1;
	return 0;
}

/* Send what s->out holds; 1 when all of it went. */
static int
flush(struct ps_sub *s)
{
	while (s->ooff < s->olen) {
		struct iovec v = { s->out + s->ooff, s->olen - s->ooff };
		ssize_t n = conn_sendv(s->c, &v, 1, 0);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && io_would_block())
			return 0;
		if (n <= 0)
			return -1;
		s->ooff += (size_t)n;
		s->progress = clock_ms();
	}
	s->ooff = s->olen = 0;
	return 1;
}

static void
arm(struct ps_sub *s, int64_t when)
{
	(void)ev_timer_at(&s->c->w->ev, &s->c->timer, when);
}

/* The next thing the timer must look at. */
static int64_t
next_due(const struct ps_sub *s)
{
	const struct worker *w = s->c->w;
	int64_t t = s->next_ping;

	if (s->ooff < s->olen && s->progress + w->cfg->send_timeout < t)
		t = s->progress + w->cfg->send_timeout;
	if (s->stopping && ws_deadline(w) < t)
		t = ws_deadline(w);
	return t;
}

long
ps_take(struct ps_sub *s, uint64_t *id)
{
	struct worker *w = s->c->w;
	long n;

	while ((n = chs_next(store(w), s->ch, s->got, s->joined, clock_ms(),
	    w->ps->msg, w->ps->msgcap, id)) < 0)
		s->got = *id;	/* gone: on from the oldest kept */
	if (n > 0)
		s->got = *id;
	return n;
}

const char *
ps_msg(const struct ps_sub *s)
{
	return s->c->w->ps->msg;
}

uint64_t
ps_got(const struct ps_sub *s)
{
	return s->got;
}

int
ps_stopping(const struct ps_sub *s)
{
	return s->stopping;
}

int
ps_behind(const struct ps_sub *s)
{
	return s->got < chs_last(store(s->c->w), s->ch);
}

/*
 * A reload: s goes, socket and place, to a worker of the new generation
 * (through the master), between two events.  Our count in the store is
 * its now: it neither leaves nor joins.  0: gone; -2: the channel is
 * full, try again; 1: not possible (stopping becomes 2, reconnect).
 */
static int
hand_over(struct ps_sub *s)
{
	struct conn *c = s->c;
	struct worker *w = c->w;
	struct chan_msg m = { .type = CHAN_SUB, .len = sizeof(struct chan_sub),
		.nfds = 1 };
	struct chan_sub cs = { .joined = s->joined, .got = s->got,
		.ch = s->ch };

	if (clock_ms() + HANDOVER_MIN_MS >= ws_deadline(w)) {
		s->stopping = 2;
		return 1;
	}
	memcpy(m.data, &cs, sizeof(cs));
	m.fds[0] = c->fd;
	if (chan_send(w->env->chan, &m) == -1) {
		if (chan_full())
			return -2;
		s->stopping = 2;
		return 1;
	}
	unlink_sub(s);
	w->ps->nsubs--;
	w->ps->handed++;
	s->joined_ok = 0;	/* the taker has our place in the store */
	conn_close(c);
	return 0;
}

/*
 * Give s what is new, as far as its socket takes it: events from the
 * store one at a time, then (stopping, with nothing left) the last one.
 */
static void
pump(struct ps_sub *s)
{
	struct conn *c = s->c;
	struct ps_state *ps = c->w->ps;
	int rc = 1;

	if (s->wsc != NULL) {
		wsc_pump(s->wsc);
		return;
	}
	for (int i = 0; i < PUMP_BATCH && rc == 1; i++) {
		uint64_t id;
		long n;

		if ((rc = flush(s)) != 1)
			break;
		if (s->ended) {
			conn_finish(c);
			return;
		}
		if (s->stopping == 3) {
			int h = hand_over(s);

			if (h == 0)
				return;		/* handed over: c is gone */
			if (h == -2) {
				rc = -2;	/* the channel is full */
				break;
			}
			continue;	/* it is ours to end after all */
		}
		n = ps_take(s, &id);
		if (n == 0 && !s->stopping)
			break;
		if (n == 0 ? format_last(s) : format_event(s, id, ps->msg,
		    (size_t)n)) {
			rc = -1;
			break;
		}
	}
	if (rc == -2) {		/* the channel is full: again soon */
		arm(s, clock_ms() + HANDOVER_RETRY_MS);
		return;
	}
	if (rc == -1) {
		conn_close(c);
		return;
	}
	if (conn_watch(c, (s->ooff < s->olen ? EPOLLOUT : 0) | EPOLLIN |
	    EPOLLRDHUP) == -1) {
		conn_close(c);
		return;
	}
	/* A full batch: the others' turn, then more. */
	if (rc == 1 && s->ooff == s->olen && ps_behind(s)) {
		arm(s, clock_ms());
		return;
	}
	arm(s, next_due(s));
}

void
ps_begin(struct conn *c, const char *pre, size_t n)
{
	struct worker *w = c->w;
	struct ps_sub *s = c->sub;
	static const char hello[] = ": preforkd\nretry: 2000\n\n";

	pool_set_state(&w->pool, c, CS_SUB);
	/* Listed (and a waiter) first: nothing published after is missed. */
	s->joined = chs_join(store(w), s->ch);
	if (s->got == UINT64_MAX)
		s->got = s->joined;
	link_sub(w, s);
	if (s->wsc != NULL && wsc_begin(s->wsc, pre, n) == -1) {
		conn_close(c);
		return;
	}
	if (s->wsc == NULL && out_room(s, sizeof(hello)) == 0)
		out_add(s, hello, sizeof(hello) - 1);
	if (w->stopping || *w->stop)
		ps_stop(c);
	else
		pump(s);
}

void
ps_on_io(struct conn *c, uint32_t events)
{
	char sink[512];
	ssize_t n;

	if (c->sub->wsc != NULL) {
		wsc_on_io(c->sub->wsc, events);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* A subscriber says nothing; its end ends it. */
		while ((n = conn_recv(c, sink, sizeof(sink))) > 0)
			;
		if (n == 0 || (n == -1 && errno != EINTR &&
		    !io_would_block())) {
			conn_close(c);
			return;
		}
	}
	pump(c->sub);
}

void
ps_on_timer(struct conn *c)
{
	struct ps_sub *s = c->sub;
	const struct worker *w = c->w;
	int64_t now = clock_ms();

	if (s->wsc != NULL) {
		wsc_on_timer(s->wsc);
		return;
	}
	if (s->ooff < s->olen && now - s->progress >= w->cfg->send_timeout) {
		conn_close(c);		/* it takes nothing: send_timeout */
		return;
	}
	if (s->stopping && now >= ws_deadline(w)) {
		conn_close(c);		/* out of time for the rest */
		return;
	}
	if (now >= s->next_ping) {
		s->next_ping = now + PING_MS;
		if (s->ooff == s->olen && out_room(s, 3) == 0)
			out_add(s, ":\n\n", 3);
	}
	pump(s);
}

void
ps_stop(struct conn *c)
{
	struct ps_sub *s = c->sub;
	struct worker *w = c->w;

	if (s == NULL || s->stopping)
		return;
	/* A full stop: nothing more is accepted, anywhere (see chstore.h). */
	if (w->env->sb->draining) {
		chs_close_publishing(store(w));
		s->stopping = 1;
	} else if (w->cfg->channel_handover && c->ssl == NULL &&
	    s->wsc == NULL && !w->env->sb->no_takers)
		s->stopping = 3;	/* not a WebSocket: wslay's state stays */
	else
		s->stopping = 2;
	pump(s);
}

/*
 * The master's answer to every hand-over: after the last one, an empty
 * CHAN_SUB, which it echoes once it has passed on (or sent back) all
 * that came before it.
 */
int
ps_handovers_answered(struct worker *w)
{
	struct ps_state *ps = w->ps;
	struct chan_msg m = { .type = CHAN_SUB };

	if (ps == NULL || ps->handed == 0 || ps->echo == 2)
		return 1;
	if (ps->echo == 0 && chan_send(w->env->chan, &m) == 0)
		ps->echo = 1;
	return 0;
}

void
ps_handovers_echo(struct worker *w)
{
	if (w->ps != NULL)
		w->ps->echo = 2;
}

/* The subscriber's links and counts, once it has its place in the store. */
static void
link_sub(struct worker *w, struct ps_sub *s)
{
	struct ps_state *ps = w->ps;

	s->joined_ok = 1;
	s->next = ps->chan[s->ch].head;
	if (s->next != NULL)
		s->next->prev = s;
	ps->chan[s->ch].head = s;
	ps->nsubs++;
	s->progress = clock_ms();
	s->next_ping = s->progress + PING_MS;
}

void
ps_adopt(struct worker *w, int fd, const struct chan_sub *cs)
{
	int valid = cs->ch >= 0 && cs->ch < w->cfg->channel_max;
	struct ps_sub *s = NULL;
	struct conn *c = NULL;

	if (!valid || ps_init(w) == -1 || (s = calloc(1, sizeof(*s))) == NULL ||
	    (c = conn_adopt(w, fd)) == NULL) {
		/* Its place given up: the client reconnects on its own. */
		if (valid)
			chs_leave(store(w), cs->ch, cs->joined, cs->got);
		free(s);
		close(fd);
		return;
	}
	s->c = c;
	s->ch = cs->ch;
	s->joined = cs->joined;
	s->got = cs->got;
	c->sub = s;
	pool_set_state(&w->pool, c, CS_SUB);
	link_sub(w, s);
	/* Sent back (nobody took it), or here as we stop: it ends here. */
	if (cs->back) {
		s->stopping = 2;
		pump(s);
	} else if (w->stopping || *w->stop)
		ps_stop(c);
	else
		pump(s);
}

void
ps_hurry(struct conn *c)
{
	if (c->sub != NULL && c->sub->wsc != NULL)
		wsc_hurry(c->sub->wsc);
	conn_close(c);
}
