/*
 * The WebSocket framing layer (see wsframe.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "clock.h"
#include "conn.h"
#include "wsframe.h"
#include "wsproto.h"

#define READ_BUDGET	262144	/* client bytes read per call, at most */

static void	flush_hdr(struct wsf *);

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *arg)
{
	struct wsf *f = arg;
	ssize_t n;

	(void)flags;
	if (f->preoff < f->prelen) {
		n = (ssize_t)(len < f->prelen - f->preoff ? len :
		    f->prelen - f->preoff);
		memcpy(buf, f->pre + f->preoff, (size_t)n);
		f->preoff += (size_t)n;
		return n;
	}
	/* The owner cannot take more now: the client waits (back-pressure). */
	if ((f->hold != NULL && f->hold(f->arg)) || f->rbudget == 0 ||
	    f->drained) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	do
		n = conn_recv(f->c, buf, len);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		f->rbudget -= (size_t)n < f->rbudget ? (size_t)n : f->rbudget;
		/* Short from a TCP socket: it is empty (TLS: a record). */
		f->drained = (size_t)n < len && f->c->ssl == NULL;
		return n;
	}
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		f->drained = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	f->gone = 1;		/* end of file without a Close, or a reset */
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/*
 * wslay sends a frame's header and its payload in two calls, the first
 * flagged WSLAY_MSG_MORE.  The header is kept and goes out with the
 * payload in one sendmsg(): one system call per message, not two.
 */
static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	struct wsf *f = arg;
	struct iovec iov[2];
	ssize_t n;

	/*
	 * A frame the framing layer refused (a control frame over 125
	 * bytes or fragmented, a close of one byte): wslay answers with a
	 * Close without a code; the client is told 1002 instead.
	 */
	if (f->fail_code != 0 && len == 2 && data[0] == 0x88 &&
	    data[1] == 0x00 && f->hlen == 0) {
		static const uint8_t proto_err[4] = { 0x88, 0x02, 0x03, 0xea };

		memcpy(f->hdr, proto_err, sizeof(proto_err));
		f->hlen = sizeof(proto_err);
		flush_hdr(f);
		return (ssize_t)len;
	}
	if ((flags & WSLAY_MSG_MORE) && f->hlen + len <= sizeof(f->hdr)) {
		memcpy(f->hdr + f->hlen, data, len);
		f->hlen += len;
		return (ssize_t)len;
	}
	iov[0] = (struct iovec){ f->hdr, f->hlen };
	iov[1] = (struct iovec){ (void *)(uintptr_t)data, len };
	do
		n = conn_sendv(f->c, iov, 2, flags & WSLAY_MSG_MORE);
	while (n == -1 && errno == EINTR);
	f->owed = n == -1 && f->c->ssl != NULL;
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
		f->gone = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (n > 0)
		f->progress = clock_ms();
	if (n == -1 || (size_t)n <= f->hlen) {
		/* Not even the header went: what did stays sent. */
		n = n == -1 ? 0 : n;
		memmove(f->hdr, f->hdr + n, f->hlen - (size_t)n);
		f->hlen -= (size_t)n;
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n -= (ssize_t)f->hlen;
	f->hlen = 0;
	return n;
}

/* A header kept with nothing after it (rare): send it alone. */
static void
flush_hdr(struct wsf *f)
{
	struct iovec iov = { f->hdr, f->hlen };
	ssize_t n;

	if (f->hlen == 0 || f->gone || f->owed)
		return;
	n = conn_sendv(f->c, &iov, 1, 0);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR)
		f->gone = 1;
	if (n > 0) {
		memmove(f->hdr, f->hdr + n, f->hlen - (size_t)n);
		f->hlen -= (size_t)n;
		f->progress = clock_ms();
	}
}

/* Liveness and the malformed Close are the framing's; the rest goes on. */
static void
on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg
    *m, void *arg)
{
	struct wsf *f = arg;

	(void)ctx;
	if (m->opcode == WSLAY_PONG)
		f->last_pong = clock_ms();
	/* A body of one byte is no status code: a protocol error. */
	if (m->opcode == WSLAY_CONNECTION_CLOSE && m->msg_length == 1)
		f->fail_code = WSLAY_CODE_PROTOCOL_ERROR;
	f->on_msg(f->arg, m);
}

int
wsf_init(struct wsf *f, struct conn *c, size_t max, int iv, const char *pre,
    size_t n, void (*msg)(void *, const struct wslay_event_on_msg_recv_arg *),
    int (*hold)(const void *), void *arg)
{
	static const struct wslay_event_callbacks cb = { recv_cb, send_cb,
		NULL, NULL, NULL, NULL, on_msg };
	int64_t now = clock_ms();

	memset(f, 0, sizeof(*f));
	f->c = c;
	f->on_msg = msg;
	f->hold = hold;
	f->arg = arg;
	if (n > 0 && (f->pre = malloc(n)) == NULL)
		return -1;
	if (n > 0)
		memcpy(f->pre, pre, n);
	f->prelen = n;
	if (wslay_event_context_server_init(&f->ctx, &cb, f) != 0) {
		free(f->pre);
		f->pre = NULL;
		f->ctx = NULL;
		return -1;
	}
	wslay_event_config_set_max_recv_msg_length(f->ctx, max);
	f->last_pong = f->progress = now;
	f->next_ping = now + iv;
	return 0;
}

void
wsf_free(struct wsf *f)
{
	if (f->ctx != NULL)
		wslay_event_context_free(f->ctx);
	f->ctx = NULL;
	free(f->pre);
	f->pre = NULL;
	f->prelen = f->preoff = 0;
}

void
wsf_events(struct wsf *f, uint32_t events)
{
	if (events & EPOLLIN)
		f->drained = 0;
	if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN))
		f->gone = 1;
}

void
wsf_recv(struct wsf *f)
{
	f->rbudget = READ_BUDGET;
	if (wslay_event_recv(f->ctx) == WSLAY_ERR_CALLBACK_FAILURE &&
	    !f->gone)
		f->fail_code = WSLAY_CODE_PROTOCOL_ERROR;	/* see send_cb */
}

void
wsf_send(struct wsf *f)
{
	flush_hdr(f);
	if (wslay_event_want_write(f->ctx))
		(void)wslay_event_send(f->ctx);
	flush_hdr(f);
}

int
wsf_msg(struct wsf *f, int opcode, const void *p, size_t n)
{
	struct wslay_event_msg m = { (uint8_t)opcode, p, n };
	uint8_t *fixed = NULL;
	int rc;

	if (opcode == WSLAY_TEXT_FRAME && n > 0 && n < SIZE_MAX / 3 &&
	    !wsp_utf8_valid(m.msg, n) && (fixed = malloc(n * 3)) != NULL) {
		m.msg_length = wsp_utf8_repair(m.msg, n, fixed);
		m.msg = fixed;
	}
	rc = wslay_event_queue_msg(f->ctx, &m);
	free(fixed);
	return rc == 0 ? 0 : -1;
}

void
wsf_queue_close(struct wsf *f, int code, const char *reason, int timeout,
    int64_t deadline)
{
	if (wslay_event_get_close_sent(f->ctx) || f->close_by != 0)
		return;
	(void)wslay_event_queue_close(f->ctx, (uint16_t)code,
	    (const uint8_t *)reason, strlen(reason));
	f->close_by = clock_ms() + timeout;
	if (f->close_by > deadline)
		f->close_by = deadline;
}

void
wsf_hurry(struct wsf *f, const char *reason)
{
	if (f->ctx == NULL || wslay_event_get_close_sent(f->ctx))
		return;
	(void)wslay_event_queue_close(f->ctx, WSLAY_CODE_GOING_AWAY,
	    (const uint8_t *)reason, strlen(reason));
	(void)wslay_event_send(f->ctx);
}

int
wsf_ping(struct wsf *f, int64_t now, int iv)
{
	if (iv <= 0 || f->close_by != 0 || now < f->next_ping)
		return 0;
	f->next_ping = now + iv;
	/* Two pings unanswered: none for more than two intervals. */
	if (now - f->last_pong > 2 * (int64_t)iv)
		return 1;
	{
		struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };

		(void)wslay_event_queue_msg(f->ctx, &m);
	}
	return 0;
}

int64_t
wsf_next_due(const struct wsf *f, int iv, int64_t deadline)
{
	int64_t t = deadline;

	if (iv > 0 && f->close_by == 0 && f->next_ping < t)
		t = f->next_ping;
	if (f->close_by != 0 && f->close_by < t)
		t = f->close_by;
	return t;
}

int
wsf_want_write(const struct wsf *f)
{
	return f->hlen > 0 || wslay_event_want_write(f->ctx);
}

void
wsf_watch(struct wsf *f, int reading)
{
	uint32_t want = 0;

	if (reading)
		want |= EPOLLIN;
	if (wsf_want_write(f))
		want |= EPOLLOUT;
	if (conn_watch(f->c, want | EPOLLRDHUP) == -1)
		f->gone = 1;	/* out of memory: cannot wait for it */
}

int
wsf_finished(const struct wsf *f)
{
	if (f->gone)
		return 1;
	if (f->hlen > 0)
		return 0;
	if (!wslay_event_get_close_sent(f->ctx))
		return 0;
	/* Our Close is out: the client's ends it (or the timer does). */
	return wslay_event_get_close_received(f->ctx) ||
	    !wslay_event_get_read_enabled(f->ctx);
}
