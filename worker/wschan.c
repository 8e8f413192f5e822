/*
 * Channel subscribers on a WebSocket (see wschan.h).
 *
 * pump() reads what the client sent (its messages are published and
 * answered at once), then, while wslay's queue is empty, takes the next
 * message of the channel from the store: like an SSE subscriber, a slow
 * reader holds one message of memory and back-pressure is the socket's.
 * Stopping, once the store has nothing more for it and everything is
 * sent, it queues its Close with the last id given, so that the reason
 * is exact; at the output deadline it takes nothing more from the store
 * and the Close goes when what is queued is out (or TCP is closed at the
 * worker's deadline).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "cfg.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "pubsub.h"
#include "worker.h"
#include "ws.h"
#include "wschan.h"
#include "wsframe.h"
#include "wsproto.h"

#define BATCH		64	/* messages before the others' turn */
#define ENVELOPE	64	/* {"id":N,"data":""} */
#define CODE_RESTART	1012	/* RFC 6455 7.4: service restart */
#define UNSUPPORTED	415	/* a binary message: not published */

struct wsc {
	struct wsf	 f;
	struct ps_sub	*sub;
	struct conn	*c;
	struct worker	*w;
	char		*buf;		/* an envelope being made */
	size_t		 cap;
	int64_t		 out_by;	/* stopping: nothing taken after it */
	uint64_t	 sent;		/* the last id wholly given to TCP */
	int		 begun;		/* the 101 is out: f is set up */
	int		 busy;		/* in pump(): a publish wakes us too */
};

struct wsc *
wsc_new(struct ps_sub *sub, struct conn *c)
{
	struct wsc *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->sub = sub;
	x->c = c;
	x->w = c->w;
	return x;
}

void
wsc_free(struct wsc *x)
{
	if (x == NULL)
		return;
	wsf_free(&x->f);
	free(x->buf);
	free(x);
}

static int
room(struct wsc *x, size_t n)
{
	char *p;

	if (n <= x->cap)
		return 0;
	if ((p = realloc(x->buf, n)) == NULL)
		return -1;
	x->buf = p;
	x->cap = n;
	return 0;
}

/* A reply to the client: {"published":...} or {"error":...}. */
static void
reply(struct wsc *x, const char *fmt, ...) __attribute__((format(printf, 2,
    3)));

static void
reply(struct wsc *x, const char *fmt, ...)
{
	char b[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(b))
		(void)wsf_msg(&x->f, WSLAY_TEXT_FRAME, b, (size_t)n);
}

static const char *
refusal(int status)
{
	switch (status) {
	case HTTP_FORBIDDEN:
		return "publishing is not allowed here";
	case HTTP_PAYLOAD_TOO_LARGE:
		return "larger than channel_max_message";
	case HTTP_TOO_MANY_REQUESTS:
		return "channel_buffer is full of messages not yet delivered";
	case HTTP_INSUFFICIENT_STORAGE:
		return "channel_memory is full of messages not yet delivered";
	case UNSUPPORTED:
		return "binary messages are not published";
	default:
		return "stopping";
	}
}

/* A client's message: published, and the client told what came of it. */
static void
on_msg(void *arg, const struct wslay_event_on_msg_recv_arg *m)
{
	struct wsc *x = arg;
	uint64_t id = 0;
	long subs = 0;
	int status;

	if (m->opcode != WSLAY_TEXT_FRAME && m->opcode != WSLAY_BINARY_FRAME)
		return;		/* ping, pong, close: the framing's */
	/* Our Close is queued: no answer could follow it. */
	if (x->f.close_by != 0 || wslay_event_get_close_sent(x->f.ctx))
		return;
	status = m->opcode == WSLAY_BINARY_FRAME ? UNSUPPORTED :
	    ps_publish(x->sub, m->msg, m->msg_length, &id, &subs);
	if (status == HTTP_ACCEPTED)
		reply(x, "{\"published\":%llu,\"subscribers\":%ld}",
		    (unsigned long long)id, subs);
	else
		reply(x, "{\"error\":%d,\"reason\":\"%s\"}", status,
		    refusal(status));
}

/* A client that publishes and never reads: its answers are bounded. */
static int
hold(const void *arg)
{
	const struct wsc *x = arg;

	return wslay_event_get_queued_msg_length(x->f.ctx) >=
	    x->w->cfg->ws_send_buffer;
}

int
wsc_begin(struct wsc *x, const char *pre, size_t n)
{
	const struct cfg *cfg = x->w->cfg;
	size_t max = cfg->ws_max_message > cfg->channel_max_message ?
	    cfg->ws_max_message : cfg->channel_max_message;

	/* Over channel_max_message is a 413 answer; over max, 1009. */
	if (wsf_init(&x->f, x->c, max, cfg->ws_ping_interval, pre, n, on_msg,
	    hold, x) == -1)
		return -1;
	x->begun = 1;
	return 0;
}

/* A message of the channel as one text frame: {"id":N,"data":"..."}. */
static int
deliver(struct wsc *x, uint64_t id, const char *m, size_t n)
{
	int k;

	if (n > (SIZE_MAX - ENVELOPE) / 6 || room(x, n * 6 + ENVELOPE) == -1)
		return -1;
	k = snprintf(x->buf, ENVELOPE, "{\"id\":%llu,\"data\":\"",
	    (unsigned long long)id);
	k += (int)wsp_json_escape(m, n, x->buf + k);
	memcpy(x->buf + k, "\"}", 2);
	return wsf_msg(&x->f, WSLAY_TEXT_FRAME, x->buf, (size_t)k + 2);
}

/* The Close that ends a stopping subscriber: where to resume from. */
static void
close_last(struct wsc *x, int code)
{
	char reason[40];

	snprintf(reason, sizeof(reason), "last_id=%llu",
	    (unsigned long long)ps_got(x->sub));
	wsf_queue_close(&x->f, code, reason, x->w->cfg->ws_close_timeout,
	    ws_deadline(x->w));
}

/* Stopping: by when the output ends, leaving time for the handshake. */
static void
set_out_by(struct wsc *x)
{
	const struct cfg *cfg = x->w->cfg;
	int64_t end = ws_deadline(x->w), wait, now = clock_ms();

	if (x->out_by != 0 || end == INT64_MAX)
		return;
	wait = cfg->ws_close_timeout < cfg->shutdown_timeout / 2 ?
	    cfg->ws_close_timeout : cfg->shutdown_timeout / 2;
	x->out_by = end - wait > now ? end - wait : now;
}

/* Messages from the store while the queue is empty; 1: more wait. */
static int
take(struct wsc *x)
{
	int stopping = ps_stopping(x->sub);

	if (stopping)
		set_out_by(x);
	for (int i = 0; i < BATCH; i++) {
		uint64_t id;
		long n;

		wsf_send(&x->f);
		/* A Close either way (wslay answers the client's): no more. */
		if (x->f.gone || x->f.close_by != 0 ||
		    wslay_event_get_close_received(x->f.ctx) ||
		    wslay_event_get_close_sent(x->f.ctx) ||
		    wslay_event_get_queued_msg_count(x->f.ctx) > 0 ||
		    wsf_want_write(&x->f))
			return 0;
		x->sent = ps_got(x->sub);
		/* Out of time (stopping): what is sent is all it gets. */
		if ((x->out_by == 0 || clock_ms() < x->out_by) &&
		    (n = ps_take(x->sub, &id)) > 0) {
			if (deliver(x, id, ps_msg(x->sub), (size_t)n) == -1) {
				x->f.gone = 1;
				return 0;
			}
			continue;
		}
		if (stopping)
			close_last(x, stopping == 1 ? WSLAY_CODE_GOING_AWAY :
			    CODE_RESTART);
		return 0;
	}
	return ps_behind(x->sub);
}

static int
reading(const struct wsc *x)
{
	return wslay_event_want_read(x->f.ctx) && !hold(x);
}

static int64_t
next_due(const struct wsc *x)
{
	const struct cfg *cfg = x->w->cfg;
	int64_t t = wsf_next_due(&x->f, cfg->ws_ping_interval,
	    ws_deadline(x->w));

	if (wsf_want_write(&x->f) && x->f.progress + cfg->send_timeout < t)
		t = x->f.progress + cfg->send_timeout;
	/* Past it, the Close waits for the socket, not for the clock. */
	if (x->out_by > clock_ms() && x->f.close_by == 0 && x->out_by < t)
		t = x->out_by;
	return t;
}

void
wsc_pump(struct wsc *x)
{
	struct conn *c = x->c;
	int more;

	/*
	 * A message it publishes wakes this worker's subscribers, this one
	 * too, from inside wslay_event_recv(): take() comes after it anyway.
	 */
	if (!x->begun || x->busy)
		return;
	x->busy = 1;
	if (reading(x))
		wsf_recv(&x->f);
	x->busy = 0;
	more = take(x);
	wsf_send(&x->f);
	/* Nothing owed: the send_timeout clock is not running. */
	if (!wsf_want_write(&x->f))
		x->f.progress = clock_ms();
	if (wsf_finished(&x->f)) {
		conn_close(c);
		return;
	}
	wsf_watch(&x->f, reading(x));
	(void)ev_timer_at(&x->w->ev, &c->timer, more ? clock_ms() :
	    next_due(x));
}

void
wsc_on_io(struct wsc *x, uint32_t events)
{
	wsf_events(&x->f, events);
	/* It shut its side while not read: what it sent cannot be taken. */
	if ((events & EPOLLRDHUP) && !reading(x))
		x->f.gone = 1;
	wsc_pump(x);
}

void
wsc_on_timer(struct wsc *x)
{
	const struct cfg *cfg = x->w->cfg;
	int64_t now = clock_ms();

	if (!x->begun)
		return;
	if (now >= ws_deadline(x->w) || (x->f.close_by != 0 &&
	    now >= x->f.close_by) || (wsf_want_write(&x->f) &&
	    now - x->f.progress >= cfg->send_timeout)) {
		conn_close(x->c);	/* TCP closed by the server, first */
		return;
	}
	if (wsf_ping(&x->f, now, cfg->ws_ping_interval))
		wsf_queue_close(&x->f, WSLAY_CODE_GOING_AWAY, "ping timeout",
		    cfg->ws_close_timeout, ws_deadline(x->w));
	wsc_pump(x);
}

void
wsc_hurry(struct wsc *x)
{
	char reason[40];

	if (!x->begun)
		return;
	/*
	 * The message queued may go before the Close or not (wslay ends a
	 * frame it started): the id before it, a duplicate at worst.
	 */
	snprintf(reason, sizeof(reason), "last_id=%llu",
	    (unsigned long long)x->sent);
	wsf_hurry(&x->f, reason);
}
