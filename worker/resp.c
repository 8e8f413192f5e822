/*
 * Responses: heads built without printf, bodies from memory or from the
 * file with sendfile(2), error pages, redirects, the status page.
 */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "cfg.h"
#include "chstore.h"
#include "clock.h"
#include "conn.h"
#include "file.h"
#include "http.h"
#include "io.h"
#include "proc.h"
#include "resp.h"
#include "sb.h"
#include "sock.h"
#include "status.h"
#include "worker.h"

struct hbuf {
	char	b[2048];
	size_t	n;
};

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
hb_start(const struct worker *w, struct hbuf *h, const struct conn *c,
    int status)
{
	h->n = 0;
	hb_str(h, "HTTP/1.1 ");
	hb_num(h, status);
	hb_str(h, " ");
	hb_str(h, http_reason(status));
	hb_str(h, "\r\nDate: ");
	hb_str(h, date_now());
	hb_str(h, "\r\nServer: ");
	hb_str(h, w->server_hdr);
	hb_str(h, "\r\n");
	if (!c->keep)
		hb_str(h, "Connection: close\r\n");
	else if (c->ri.minor == 0)
		hb_str(h, "Connection: keep-alive\r\n");
	/* hsts: said over TLS only (RFC 6797 7.2), where it can be trusted. */
	if (c->ssl != NULL && w->cfg->hsts_header[0] != '\0')
		hb_str(h, w->cfg->hsts_header);
}

static int
hb_done(struct hbuf *h)
{
	hb_str(h, "\r\n");
	return h->n < sizeof(h->b) ? 0 : -1;
}

/*
 * A small HTML body for every error and redirect.  extra (header lines,
 * each ending in CRLF) goes out as its own piece: a Location echoes the
 * request target, so it can be as long as max_request_line, far more
 * than the fixed head buffer holds.
 */
/* Send, as far as the socket takes it now; the rest waits in c->out. */
static enum io_rc
emit(struct conn *c, struct iovec *iov, int n, int ffd, int own, off_t off,
    off_t len)
{
	return io_out_start(&c->out, c->fd, c->ssl, iov, n, ffd, own, off,
	    len);
}

/* A head alone. */
static enum io_rc
emit_head(struct conn *c, struct hbuf *h)
{
	struct iovec iov;

	if (hb_done(h) == -1)
		return IO_ERROR;
	iov = (struct iovec){ h->b, h->n };
	return emit(c, &iov, 1, -1, 0, 0, 0);
}

/*
 * shutdown_delay (the master's lame duck): the instance still serves,
 * but tells every client to go elsewhere for its next request.
 */
static void
lame_duck(const struct worker *w, struct conn *c)
{
	if (w->env->sb->lameduck)
		c->keep = 0;
}

enum io_rc
resp_status(struct worker *w, struct conn *c, int status, const char *extra)
{
	int head_only = c->ri.meth == HTTP_M_HEAD;
	struct hbuf h;
	struct iovec iov[4];
	char body[256];
	int bl, n = 0;

	lame_duck(w, c);
	bl = snprintf(body, sizeof(body), "<!DOCTYPE html>\n<html><head>"
	    "<title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n",
	    status, http_reason(status), status, http_reason(status));
	hb_start(w, &h, c, status);
	hb_add(&h, "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %d\r\n", bl);
	if (h.n >= sizeof(h.b))
		return IO_ERROR;
	iov[n++] = (struct iovec){ h.b, h.n };
	if (extra != NULL)
		iov[n++] = (struct iovec){ (void *)(uintptr_t)extra,
		    strlen(extra) };
	iov[n++] = (struct iovec){ (char *)"\r\n", 2 };
	if (!head_only)
		iov[n++] = (struct iovec){ body, (size_t)bl };
	c->status = status;
	c->sent = head_only ? 0 : bl;
	return emit(c, iov, n, -1, 0, 0, 0);
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
 * max_request_line bytes, which is what resp_init sized locbuf for.
 */
static enum io_rc
send_redirect(struct worker *w, struct conn *c)
{
	char rel[PATH_MAX];
	size_t o, i;
	int slash, rc;

	/* file_handle() normalised the same path already: this holds. */
	if ((rc = file_normalize(w->req.path.p, w->req.path.n, rel, sizeof(rel),
	    &slash)) != 0)
		return resp_status(w, c, rc, NULL);
	o = (size_t)snprintf(w->locbuf, w->loccap, "Location: /");
	for (i = 0; rel[i] != '\0' && o + 3 < w->loccap; i++) {
		unsigned char ch = (unsigned char)rel[i];

		if (path_safe(ch))
			w->locbuf[o++] = (char)ch;
		else
			o += (size_t)snprintf(w->locbuf + o, w->loccap - o, "%%%02X",
			    ch);
	}
	/* The parser admitted only visible ASCII in the query: echo it. */
	if (rel[i] != '\0' || o + w->req.query.n + 5 > w->loccap)
		return resp_status(w, c, HTTP_URI_TOO_LONG, NULL);
	(void)snprintf(w->locbuf + o, w->loccap - o, "/%s%.*s\r\n",
	    w->req.query.p ? "?" : "", (int)w->req.query.n,
	    w->req.query.p ? w->req.query.p : "");
	return resp_status(w, c, HTTP_MOVED, w->locbuf);
}

/*
 * A redirect_https listener: the same host and target, over https, on
 * the first tls listener's port.  The target is the request line's as
 * the parser admitted it (visible ASCII only); the host, Host's without
 * its port.  Without a Host (HTTP/1.0) there is nowhere to send to.
 */
static enum io_rc
send_https(struct worker *w, struct conn *c)
{
	struct http_str h = w->req.host;
	const char *colon;
	char port[16] = "";
	size_t o;

	if (h.p != NULL && h.n > 0 && h.p[0] != '[' &&
	    (colon = memchr(h.p, ':', h.n)) != NULL)
		h.n = (size_t)(colon - h.p);
	else if (h.p != NULL && h.n > 0 && h.p[0] == '[' &&
	    (colon = memchr(h.p, ']', h.n)) != NULL)
		h.n = (size_t)(colon - h.p) + 1;
	for (size_t i = 0; h.p != NULL && i < h.n; i++)
		if ((!path_safe((unsigned char)h.p[i]) && h.p[i] != '[' &&
		    h.p[i] != ']') || h.p[i] == '/' || h.p[i] == '@')
			h.n = 0;	/* not a host name (RFC 3986 3.2.2) */
	if (h.p == NULL || h.n == 0 || w->req.target.p == NULL ||
	    w->req.target.p[0] != '/') {
		c->keep = 0;
		return resp_status(w, c, HTTP_BAD_REQUEST, NULL);
	}
	if (w->cfg->https_port != 443)
		snprintf(port, sizeof(port), ":%d", w->cfg->https_port);
	o = (size_t)snprintf(w->locbuf, w->loccap, "Location: https://%.*s%s",
	    (int)h.n, h.p, port);
	if (o + w->req.target.n + 3 > w->loccap)
		return resp_status(w, c, HTTP_URI_TOO_LONG, NULL);
	(void)snprintf(w->locbuf + o, w->loccap - o, "%.*s\r\n",
	    (int)w->req.target.n, w->req.target.p);
	/* 301 may turn a POST into a GET; 308 keeps the method. */
	return resp_status(w, c, w->req.meth == HTTP_M_GET || w->req.meth ==
	    HTTP_M_HEAD ? HTTP_MOVED : HTTP_PERMANENT_REDIRECT, w->locbuf);
}

/*
 * A file, or its validators.  The descriptor passes to the response
 * when it is sent from (f->fd is then -1).
 */
static enum io_rc
send_file_resp(const struct worker *w, struct conn *c,
    struct file_resp *f)
{
	struct hbuf h;
	struct iovec iov[2];
	int head_only = c->ri.meth == HTTP_M_HEAD, fd = f->fd;

	c->status = f->status;
	c->sent = head_only || f->status == HTTP_NOT_MODIFIED ? 0 : f->len;
	hb_start(w, &h, c, f->status);
	hb_str(&h, "Last-Modified: ");
	hb_str(&h, f->lastmod);
	hb_str(&h, "\r\nETag: ");
	hb_str(&h, f->etag);
	hb_str(&h, "\r\n");
	if (f->status == HTTP_NOT_MODIFIED)
		return emit_head(c, &h);
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
	if (head_only || f->len == 0)
		return emit_head(c, &h);
	if (hb_done(&h) == -1)
		return IO_ERROR;
	iov[0] = (struct iovec){ h.b, h.n };
	if (f->data != NULL) {
		/* A small cached file: head and body in one system call. */
		iov[1] = (struct iovec){ (char *)(uintptr_t)(f->data + f->off),
		    (size_t)f->len };
		return emit(c, iov, 2, -1, 0, 0, 0);
	}
	/*
	 * The head goes out on its own, as nginx sends it.  Holding it back
	 * with MSG_MORE to share the body's first segment measured slower:
	 * 45k against 61k requests/s for a 100 KiB file over loopback.
	 */
	f->fd = -1;
	return emit(c, iov, 1, fd, !f->cached, f->off, f->len);
}

/* A request for the status page: its path, byte for byte. */
static int
is_status(const struct worker *w)
{
	const char *p = w->cfg->status_path;

	if (strcmp(p, "off") == 0 || w->req.asterisk)
		return 0;
	return w->req.path.n == strlen(p) &&
	    memcmp(w->req.path.p, p, w->req.path.n) == 0;
}

/* A request for health_path: its path, byte for byte, as status_path. */
static int
is_health(const struct worker *w)
{
	const char *p = w->cfg->health_path;

	if (p[0] != '/' || w->req.asterisk)
		return 0;
	return w->req.path.n == strlen(p) &&
	    memcmp(w->req.path.p, p, w->req.path.n) == 0;
}

/*
 * health_path, for a load balancer or an orchestrator: 200 while the
 * instance serves, 503 before its first workers are up, during
 * shutdown_delay and once a stop drains.  Cheap: no allocation, no file,
 * and no access-log line unless health_log is on.
 */
static enum io_rc
send_health(struct worker *w, struct conn *c)
{
	const struct sb *sb = w->env->sb;
	const char *body = sb->draining || sb->lameduck ? "stopping\n" :
	    !sb->serving ? "starting\n" : "ok\n";
	int status = body[0] == 'o' ? HTTP_OK : HTTP_UNAVAILABLE;
	size_t bl = strlen(body);
	struct hbuf h;
	struct iovec iov[2];

	c->ri.quiet = !w->cfg->health_log;
	c->status = status;
	c->sent = c->ri.meth == HTTP_M_HEAD ? 0 : (long long)bl;
	hb_start(w, &h, c, status);
	hb_str(&h, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\nContent-Length: ");
	hb_num(&h, (long long)bl);
	hb_str(&h, "\r\n");
	if (hb_done(&h) == -1)
		return IO_ERROR;
	iov[0] = (struct iovec){ h.b, h.n };
	iov[1] = (struct iovec){ (char *)(uintptr_t)body, bl };
	return emit(c, iov, c->ri.meth == HTTP_M_HEAD ? 1 : 2, -1, 0, 0, 0);
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

/*
 * The status page, for clients in status_allow only.  It is built whole
 * first: its size is known before the head goes out, and the worker's
 * fixed buffers stay as small as they are when nobody asks for it.
 */
static enum io_rc
send_status_page(struct worker *w, struct conn *c)
{
	struct status_in in;
	struct chs_stats chst;
	struct hbuf h;
	struct iovec iov[2];
	size_t cap = status_size(w->env->sb);
	char *page;
	long len;
	int head_only = c->ri.meth == HTTP_M_HEAD;
	enum io_rc rc = IO_ERROR;

	if (c->peer_len == 0 || !acl_match(&w->cfg->status_acl,
	    (struct sockaddr *)&c->peer_ss))
		return resp_status(w, c, HTTP_FORBIDDEN, NULL);
	in = (struct status_in){ w->env->sb, clock_ms(), time(NULL),
	    sock_queue_len(c->lfd), str_has(w->req.query, "json") ||
	    str_has(http_header(&w->req, "accept"), "application/json"),
	    NULL };
	if (w->env->chs != NULL) {
		chs_stats(w->env->chs, clock_ms(), &chst);
		in.channels = &chst;
	}
	if ((page = malloc(cap)) == NULL ||
	    (len = status_render(page, cap, &in)) < 0) {
		free(page);
		return resp_status(w, c, HTTP_INTERNAL, NULL);
	}
	hb_start(w, &h, c, HTTP_OK);
	hb_add(&h, "Content-Type: %s\r\nCache-Control: no-store\r\n"
	    "Content-Length: %ld\r\n", in.json ? "application/json" :
	    "text/plain; charset=utf-8", len);
	c->status = HTTP_OK;
	c->sent = head_only ? 0 : len;
	if (hb_done(&h) == 0) {
		iov[0] = (struct iovec){ h.b, h.n };
		iov[1] = (struct iovec){ page, (size_t)len };
		rc = emit(c, iov, head_only ? 1 : 2, -1, 0, 0, 0);
	}
	free(page);	/* what waits was copied */
	return rc;
}

enum io_rc
resp_respond(struct worker *w, struct conn *c)
{
	struct file_resp f;
	char extra[64];
	enum io_rc rc;

	lame_duck(w, c);
	if (is_health(w))
		return send_health(w, c);
	if (c->lflags & LF_REDIRECT)
		return send_https(w, c);
	if (w->req.meth == HTTP_M_OPTIONS) {
		struct hbuf h;

		c->status = HTTP_NO_CONTENT;
		c->sent = 0;
		hb_start(w, &h, c, HTTP_NO_CONTENT);
		hb_add(&h, "Allow: GET, HEAD, OPTIONS\r\n");
		return emit_head(c, &h);
	}
	if (is_status(w))
		return send_status_page(w, c);
	file_handle(w->env->rootfd, w->cfg->index, &w->req, &f);
	switch (f.status) {
	case HTTP_OK:
	case HTTP_PARTIAL:
	case HTTP_NOT_MODIFIED:
		rc = send_file_resp(w, c, &f);
		break;
	case HTTP_MOVED:
		rc = send_redirect(w, c);
		break;
	case HTTP_RANGE_NOT_SATISFIABLE:
		snprintf(extra, sizeof(extra), "Content-Range: bytes */%lld\r\n",
		    (long long)f.size);
		rc = resp_status(w, c, f.status, extra);
		break;
	default:
		if (f.status == HTTP_BAD_REQUEST)
			c->keep = 0;
		rc = resp_status(w, c, f.status, NULL);
		break;
	}
	if (f.fd != -1 && !f.cached)
		close(f.fd);
	return rc;
}

enum io_rc
resp_json(struct worker *w, struct conn *c, int status, const char *extra,
    const char *body, size_t len)
{
	struct hbuf h;
	struct iovec iov[2];

	lame_duck(w, c);
	hb_start(w, &h, c, status);
	hb_add(&h, "Content-Type: application/json\r\nCache-Control: "
	    "no-store\r\nContent-Length: %zu\r\n%s", len, extra ? extra : "");
	if (hb_done(&h) == -1)
		return IO_ERROR;
	iov[0] = (struct iovec){ h.b, h.n };
	iov[1] = (struct iovec){ (void *)(uintptr_t)body, len };
	c->status = status;
	c->sent = c->ri.meth == HTTP_M_HEAD ? 0 : (long long)len;
	return emit(c, iov, c->ri.meth == HTTP_M_HEAD ? 1 : 2, -1, 0, 0, 0);
}

enum io_rc
resp_event_stream(struct worker *w, struct conn *c)
{
	struct hbuf h;

	c->keep = 0;	/* the stream ends with the connection */
	hb_start(w, &h, c, HTTP_OK);
	/* X-Accel-Buffering: a proxy in front must not hold events back. */
	hb_str(&h, "Content-Type: text/event-stream\r\nCache-Control: "
	    "no-cache\r\nX-Accel-Buffering: no\r\n");
	c->status = HTTP_OK;
	c->sent = 0;
	return emit_head(c, &h);
}

enum io_rc
resp_switching(struct worker *w, struct conn *c, const char *accept,
    const char *proto)
{
	struct hbuf h;

	h.n = 0;
	hb_str(&h, "HTTP/1.1 101 Switching Protocols\r\nDate: ");
	hb_str(&h, date_now());
	hb_str(&h, "\r\nServer: ");
	hb_str(&h, w->server_hdr);
	hb_str(&h, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: ");
	hb_str(&h, accept);
	hb_str(&h, "\r\n");
	if (proto != NULL) {
		hb_str(&h, "Sec-WebSocket-Protocol: ");
		hb_str(&h, proto);
		hb_str(&h, "\r\n");
	}
	c->status = HTTP_SWITCHING;
	c->sent = 0;
	return emit_head(c, &h);
}

int
resp_init(struct worker *w)
{
	/* Every byte of the path may take 3: see send_redirect(). */
	w->loccap = 3 * w->lim.max_line + 64;
	if ((w->locbuf = malloc(w->loccap)) == NULL)
		return -1;
	snprintf(w->server_hdr, sizeof(w->server_hdr), "%s",
	    w->cfg->server_tokens ? PACKAGE_NAME "/" PACKAGE_VERSION :
	    PACKAGE_NAME);
	return 0;
}
