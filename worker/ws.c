/*
 * WebSocket sessions (see ws.h and doc/design.md 10).
 *
 * One function, pump(), takes a session as far as it goes: it reads
 * frames from the client while the program's stdin takes them, writes
 * what waits for stdin, sends what wslay has queued, queues the server's
 * Close once every message before it is out (wslay sends control frames
 * ahead of data, so a Close queued earlier would cut the output short),
 * then sets what the socket and the pipes are watched for and arms the
 * timer.  Every event handler ends in it.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "cfg.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "prog.h"
#include "resp.h"
#include "sb.h"
#include "worker.h"
#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define STOP_MARGIN_MS	250	/* sessions end this much before the kill */
#define OUT_CHUNK	65536	/* stdout read per event, at most */
#define ENV_MAX		(HTTP_HDR_CAP + 24)

struct ws {
	struct worker		*w;
	struct conn		*c;		/* NULL once the client is gone */
	struct ws		*prev, *next;	/* the worker's sessions */
	wslay_event_context_ptr	 ctx;
	struct prog		 prog;
	int			 route;
	char			*pre;		/* bytes that came with the head */
	size_t			 prelen, preoff;
	char			*ob;		/* stdout: an unfinished line */
	size_t			 olen, ocap;
	int			 out_eof;	/* stdout is closed */
	char			*ib;		/* waiting for the program's stdin */
	size_t			 ilen, ioff, icap;
	int			 gone;		/* the client's socket failed */
	int			 want_close;	/* Close to queue after output */
	const char		*reason;
	int			 stop_code;	/* stopping: 1001 or 1012 */
	int64_t			 out_by;	/* stopping: output until */
	int64_t			 close_by;	/* Close queued: TCP closed by */
	int64_t			 eof_by;	/* program done: stdout EOF by */
	int64_t			 next_ping, last_pong;
	uint64_t		 in, out;	/* messages */
	int			 sbe;		/* scoreboard entry */
};

static void	pump(struct ws *);
static void	on_out(struct ev_loop *, int, uint32_t, void *);
static void	on_in(struct ev_loop *, int, uint32_t, void *);

/* --- the worker's list of sessions ----------------------------------- */

static void
list_add(struct ws *s)
{
	struct worker *w = s->w;

	s->prev = NULL;
	s->next = w->ws_head;
	if (w->ws_head != NULL)
		w->ws_head->prev = s;
	w->ws_head = s;
	w->ws_live++;
}

static void
ws_free(struct ws *s)
{
	struct worker *w = s->w;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->ws_head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->ws_live--;
	prog_free(&s->prog);
	if (s->ctx != NULL)
		wslay_event_context_free(s->ctx);
	free(s->pre);
	free(s->ob);
	free(s->ib);
	free(s);
}

int
ws_programs_left(const struct worker *w)
{
	return w->ws_live;
}

void
ws_kill_all(struct worker *w)
{
	for (struct ws *s = w->ws_head; s != NULL; s = s->next)
		prog_kill(&s->prog);
}

int64_t
ws_deadline(const struct worker *w)
{
	int64_t t = INT64_MAX, slot = w->me->deadline;

	if (w->stopping)
		t = w->stop_at + w->cfg->shutdown_timeout;
	if (slot != 0 && slot < t)
		t = slot;
	return t == INT64_MAX ? t : t - STOP_MARGIN_MS;
}

/* --- the upgrade ----------------------------------------------------- */

int
ws_route(const struct worker *w, const struct http_req *req)
{
	const struct cfg *cfg = w->cfg;

	for (size_t i = 0; i < cfg->nws; i++) {
		size_t n = strlen(cfg->ws[i].path);

		if (req->path.n >= n && memcmp(req->path.p, cfg->ws[i].path,
		    n) == 0 && (req->path.n == n || req->path.p[n] == '/' ||
		    n == 1))
			return (int)i;
	}
	return -1;
}

/* Does the comma-separated list v hold token t (case-insensitive)? */
static int
has_token(struct http_str v, const char *t)
{
	size_t tn = strlen(t);
	const char *p = v.p, *end = v.p + v.n;

	while (p < end) {
		const char *q;
		size_t n;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		q = p;
		while (q < end && *q != ',')
			q++;
		n = (size_t)(q - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tn && strncasecmp(p, t, tn) == 0)
			return 1;
		p = q;
	}
	return 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Sec-WebSocket-Key: the base64 of 16 bytes (RFC 6455 4.2.1 item 5). */
static int
key_valid(struct http_str k)
{
	if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
		return 0;
	for (size_t i = 0; i < 22; i++)
		if (strchr(b64, k.p[i]) == NULL || k.p[i] == '\0')
			return 0;
	/* The last character carries 2 bits: its low 4 must be 0. */
	return ((strchr(b64, k.p[21]) - b64) & 0xf) == 0;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key GUID)), 28 bytes + NUL. */
static void
accept_key(struct http_str k, char out[29])
{
	uint8_t d[SHA1_DIGEST_LENGTH + 1] = { 0 };
	SHA1_CTX ctx;
	char *o = out;

	SHA1Init(&ctx);
	SHA1Update(&ctx, (const uint8_t *)k.p, k.n);
	SHA1Update(&ctx, (const uint8_t *)WS_GUID, sizeof(WS_GUID) - 1);
	SHA1Final(d, &ctx);
	for (int i = 0; i < 21; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 |
		    d[i + 2];

		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	out[27] = '=';		/* 20 bytes: the last group has 2 */
	out[28] = '\0';
}

/* The request's Host, without a port. */
static struct http_str
host_name(const struct http_req *req)
{
	struct http_str h = req->host;
	const char *colon;

	if (h.n > 0 && h.p[0] == '[') {
		const char *rb = memchr(h.p, ']', h.n);

		if (rb != NULL)
			h.n = (size_t)(rb - h.p) + 1;
		return h;
	}
	if ((colon = memchr(h.p, ':', h.n)) != NULL)
		h.n = (size_t)(colon - h.p);
	return h;
}

/*
 * websocket_origin: "any"; "same" (the Origin's host and port are the
 * request's Host); or a list of origins.  No Origin: not a browser.
 */
static int
origin_ok(const struct worker *w, const struct http_req *req)
{
	struct http_str o = http_header(req, "origin");
	const struct cfg_words *list = &w->cfg->ws_origin;
	const char *word, *sep;

	if (o.p == NULL)
		return 1;
	for (int i = 0; (word = cfg_word(list, i)) != NULL; i++) {
		if (strcmp(word, "any") == 0)
			return 1;
		if (strcmp(word, "same") == 0) {
			if ((sep = memchr(o.p, ':', o.n)) == NULL ||
			    (size_t)(o.p + o.n - sep) < 3 || sep[1] != '/' ||
			    sep[2] != '/')
				return 0;
			sep += 3;
			return (size_t)(o.p + o.n - sep) == req->host.n &&
			    strncasecmp(sep, req->host.p, req->host.n) == 0;
		}
		if (strlen(word) == o.n && strncasecmp(word, o.p, o.n) == 0)
			return 1;
	}
	return 0;
}

/* The first subprotocol the client offers that we do, or NULL. */
static const char *
pick_protocol(const struct worker *w, const struct http_req *req)
{
	struct http_str offer = http_header(req, "sec-websocket-protocol");
	const char *word;

	if (offer.p == NULL)
		return NULL;
	/* The client's order: it lists them by preference. */
	for (const char *p = offer.p, *end = offer.p + offer.n; p < end;) {
		const char *q;
		size_t n;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		for (q = p; q < end && *q != ',' && *q != ' ' && *q != '\t';)
			q++;
		n = (size_t)(q - p);
		for (int i = 0; n > 0 &&
		    (word = cfg_word(&w->cfg->ws_protocol, i)) != NULL; i++)
			if (strlen(word) == n && memcmp(word, p, n) == 0)
				return word;
		p = q;
	}
	return NULL;
}

/* What the request lacks to be an upgrade: 0, or the status to answer. */
static int
check_upgrade(const struct worker *w, const struct conn *c,
    const struct http_req *req, const char **extra)
{
	struct http_str v = http_header(req, "sec-websocket-version");

	*extra = NULL;
	if (!has_token(http_header(req, "upgrade"), "websocket")) {
		*extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
		return HTTP_UPGRADE_REQUIRED;
	}
	if (req->meth != HTTP_M_GET || req->minor < 1 ||
	    !has_token(http_header(req, "connection"), "upgrade") ||
	    req->content_length > 0 || req->chunked || v.p == NULL ||
	    !key_valid(http_header(req, "sec-websocket-key")))
		return HTTP_BAD_REQUEST;
	if (v.n != 2 || memcmp(v.p, "13", 2) != 0) {
		*extra = "Sec-WebSocket-Version: 13\r\n";
		return HTTP_UPGRADE_REQUIRED;
	}
	if (!origin_ok(w, req))
		return HTTP_FORBIDDEN;
	if (w->stopping || *w->stop)
		return HTTP_UNAVAILABLE;
	(void)c;
	return 0;
}

/* --- the program's environment --------------------------------------- */

struct envb {
	char	*env[ENV_MAX + 1];
	int	 n;
	char	*buf;
	size_t	 cap, len;
	int	 full;
};

static void
env_add(struct envb *e, const char *name, const char *v, size_t vn)
{
	size_t nn = strlen(name), need = nn + 1 + vn + 1;
	char *p;

	if (e->n >= ENV_MAX || e->len + need > e->cap) {
		e->full = 1;
		return;
	}
	p = e->buf + e->len;
	memcpy(p, name, nn);
	p[nn] = '=';
	memcpy(p + nn + 1, v, vn);
	p[nn + 1 + vn] = '\0';
	e->env[e->n++] = p;
	e->len += need;
}

static void
env_str(struct envb *e, const char *name, const char *v)
{
	env_add(e, name, v, strlen(v));
}

/* HTTP_NAME for a header: upper case, '-' as '_'. */
static void
env_header(struct envb *e, const struct http_hdr *h)
{
	char name[128];
	size_t n;

	if (h->name.n + 6 > sizeof(name))
		return;
	memcpy(name, "HTTP_", 5);
	for (n = 0; n < h->name.n; n++) {
		char ch = h->name.p[n];

		name[5 + n] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ?
		    (char)(ch - 'a' + 'A') : ch;
	}
	name[5 + n] = '\0';
	env_add(e, name, h->value.p, h->value.n);
}

/* Percent-decoded into out (NUL bytes refused); -1 when not valid. */
static int
decode(struct http_str s, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < s.n; i++) {
		int ch = (unsigned char)s.p[i];

		if (ch == '%' && i + 2 < s.n) {
			char hex[3] = { s.p[i + 1], s.p[i + 2], '\0' };
			char *end;

			ch = (int)strtol(hex, &end, 16);
			if (*end != '\0' || hex[0] == '+' || hex[0] == '-')
				return -1;
			i += 2;
		} else if (ch == '%')
			return -1;
		if (ch == 0 || o + 1 >= cap)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

static void
env_addr(struct envb *e, const char *aname, const char *pname,
    const struct sockaddr_storage *ss, socklen_t len)
{
	char host[64], port[16];

	if (len == 0 || getnameinfo((const struct sockaddr *)ss, len, host,
	    sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)
	    != 0)
		return;
	env_str(e, aname, host);
	env_str(e, pname, port);
}

/* Does program_env name the variable name (passed or set)? */
static int
env_named(const struct cfg *cfg, const char *name)
{
	const char *word, *eq;

	for (int i = 0; (word = cfg_word(&cfg->program_env, i)) != NULL; i++) {
		size_t n = (eq = strchr(word, '=')) ? (size_t)(eq - word) :
		    strlen(word);

		if (strlen(name) == n && strncmp(word, name, n) == 0)
			return 1;
	}
	return 0;
}

/* CGI's variables (RFC 3875 4.1) and the request's headers. */
static int
build_env(struct envb *e, const struct worker *w, const struct conn *c,
    int route, const char *proto)
{
	const struct http_req *req = &w->req;
	const struct cfg *cfg = w->cfg;
	const char *path = cfg->ws[route].path, *word, *eq;
	struct http_str rest = { req->path.p + strlen(path),
		req->path.n - strlen(path) };
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	char *info = e->buf + e->cap - (req->path.n + 1);

	if (strcmp(path, "/") == 0) {
		rest = req->path;
		path = "";
	}
	e->cap -= req->path.n + 1;	/* PATH_INFO is decoded there */
	if (decode(rest, info, req->path.n + 1) == -1)
		return -1;
	env_str(e, "GATEWAY_INTERFACE", "CGI/1.1");
	env_str(e, "SERVER_SOFTWARE", PACKAGE_NAME "/" PACKAGE_VERSION);
	env_str(e, "SERVER_PROTOCOL", "HTTP/1.1");
	env_str(e, "REQUEST_METHOD", "GET");
	env_add(e, "REQUEST_URI", req->target.p, req->target.n);
	env_str(e, "SCRIPT_NAME", path);
	env_str(e, "PATH_INFO", info);
	env_add(e, "QUERY_STRING", req->query.p ? req->query.p : "",
	    req->query.p ? req->query.n : 0);
	if (getsockname(c->fd, (struct sockaddr *)&me, &ml) == 0)
		env_addr(e, "SERVER_ADDR", "SERVER_PORT", &me, ml);
	if (req->host.n > 0) {
		struct http_str h = host_name(req);

		env_add(e, "SERVER_NAME", h.p, h.n);
	}
	env_addr(e, "REMOTE_ADDR", "REMOTE_PORT", &c->peer_ss, c->peer_len);
	if (proto != NULL)
		env_str(e, "WEBSOCKET_PROTOCOL", proto);
	for (int i = 0; i < req->nhdr; i++)
		env_header(e, &req->hdr[i]);
	for (int i = 0; (word = cfg_word(&cfg->program_env, i)) != NULL;
	    i++) {
		const char *v;

		if ((eq = strchr(word, '=')) != NULL) {
			char name[CFG_STR];
			size_t n = (size_t)(eq - word);

			if (n >= sizeof(name))
				continue;
			memcpy(name, word, n);
			name[n] = '\0';
			env_str(e, name, eq + 1);
		} else if ((v = getenv(word)) != NULL)
			env_str(e, word, v);
	}
	if (!env_named(cfg, "PATH"))
		env_str(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
	e->env[e->n] = NULL;
	return e->full ? -1 : 0;
}

/* --- starting a session --------------------------------------------- */

static void	on_prog_done(struct prog *, void *);

static struct ws *
session_new(struct worker *w, struct conn *c, int route)
{
	struct ws *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->w = w;
	s->c = c;
	s->route = route;
	s->sbe = -1;
	s->prog.in = s->prog.out = s->prog.err = s->prog.pidfd = -1;
	return s;
}

/* Start the program; the HTTP status to answer with when it fails. */
static int
start_program(struct ws *s, const char *proto)
{
	struct worker *w = s->w;
	const struct cfg_ws *route = &w->cfg->ws[s->route];
	char *argv[64];
	struct envb e = { .cap = w->bufcap * 2 + 4096 };
	int n = 0, rc, err;

	for (const char *a; n < 63 && (a = cfg_word(&route->argv, n)) != NULL;)
		argv[n++] = (char *)(uintptr_t)a;
	argv[n] = NULL;
	if ((e.buf = malloc(e.cap)) == NULL)
		return HTTP_UNAVAILABLE;
	if (build_env(&e, w, s->c, s->route, proto) == -1) {
		free(e.buf);
		return HTTP_BAD_REQUEST;
	}
	rc = prog_start(&s->prog, &w->ev, argv, e.env, w->env->rootfd,
	    route->path, w->cfg->program_grace, on_prog_done, s);
	err = errno;
	free(e.buf);
	if (rc == 0)
		return 0;
	log_warnx("websocket %s: cannot start %s: %s", route->path, argv[0],
	    strerror(err));
	return err == EAGAIN || err == EMFILE || err == ENFILE ||
	    err == ENOMEM ? HTTP_UNAVAILABLE : HTTP_INTERNAL;
}

enum io_rc
ws_accept(struct worker *w, struct conn *c, int route)
{
	const char *extra, *proto;
	char key[29];
	struct ws *s;
	int status;

	if ((status = check_upgrade(w, c, &w->req, &extra)) != 0)
		return resp_status(w, c, status, extra);
	if ((s = session_new(w, c, route)) == NULL)
		return resp_status(w, c, HTTP_UNAVAILABLE, NULL);
	proto = pick_protocol(w, &w->req);
	if ((status = start_program(s, proto)) != 0) {
		free(s);
		return resp_status(w, c, status, NULL);
	}
	list_add(s);
	c->ws = s;
	c->keep = 0;
	accept_key(http_header(&w->req, "sec-websocket-key"), key);
	return resp_switching(w, c, key, proto);
}

/* --- wslay's side ---------------------------------------------------- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *arg)
{
	struct ws *s = arg;
	ssize_t n;

	(void)flags;
	if (s->preoff < s->prelen) {
		n = (ssize_t)(len < s->prelen - s->preoff ? len :
		    s->prelen - s->preoff);
		memcpy(buf, s->pre + s->preoff, (size_t)n);
		s->preoff += (size_t)n;
		return n;
	}
	/* The program's stdin is full: the client waits (back-pressure). */
	if (s->ilen > 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	do
		n = recv(s->c->fd, buf, len, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	s->gone = 1;		/* end of file without a Close, or a reset */
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	struct ws *s = arg;
	ssize_t n;

	do
		n = send(s->c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL |
		    (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	s->gone = 1;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* Bytes for the program's stdin, kept until it takes them. */
static void
to_stdin(struct ws *s, const uint8_t *p, size_t n, int newline)
{
	size_t need = s->ilen - s->ioff + n + 1;

	if (s->prog.in == -1)
		return;		/* stopping, or it closed its stdin */
	if (s->ioff > 0) {
		memmove(s->ib, s->ib + s->ioff, s->ilen - s->ioff);
		s->ilen -= s->ioff;
		s->ioff = 0;
	}
	if (need > s->icap) {
		char *b = realloc(s->ib, need);

		if (b == NULL) {
			prog_close_stdin(&s->prog);
			return;
		}
		s->ib = b;
		s->icap = need;
	}
	memcpy(s->ib + s->ilen, p, n);
	s->ilen += n;
	if (newline)
		s->ib[s->ilen++] = '\n';
}

static void
on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg
    *m, void *arg)
{
	struct ws *s = arg;

	(void)ctx;
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		s->in++;
		to_stdin(s, m->msg, m->msg_length, !s->w->cfg->ws_binary);
		break;
	case WSLAY_PONG:
		s->last_pong = clock_ms();
		break;
	case WSLAY_CONNECTION_CLOSE:
		/* wslay answers it; the program has nothing more to read. */
		if (s->stop_code == 0)
			prog_stop(&s->prog);
		break;
	default:
		break;
	}
}

static int
session_ctx(struct ws *s)
{
	static const struct wslay_event_callbacks cb = { recv_cb, send_cb,
		NULL, NULL, NULL, NULL, on_msg };

	if (wslay_event_context_server_init(&s->ctx, &cb, s) != 0)
		return -1;
	wslay_event_config_set_max_recv_msg_length(s->ctx,
	    s->w->cfg->ws_max_message);
	return 0;
}

/* --- the program's output --------------------------------------------- */

static int
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		int k;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0)
			k = 1, cp = p[i] & 0x1f;
		else if ((p[i] & 0xf0) == 0xe0)
			k = 2, cp = p[i] & 0x0f;
		else if ((p[i] & 0xf8) == 0xf0)
			k = 3, cp = p[i] & 0x07;
		else
			return 0;
		if (i + (size_t)k >= n)
			return 0;
		for (int j = 1; j <= k; j++) {
			if ((p[i + (size_t)j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + (size_t)j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
		    (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += (size_t)k + 1;
	}
	return 1;
}

/* One message to the client; text that is not UTF-8 gets U+FFFD. */
static void
send_msg(struct ws *s, const char *p, size_t n)
{
	struct wslay_event_msg m = { s->w->cfg->ws_binary ?
	    WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, (const uint8_t *)p, n };
	uint8_t *fixed = NULL;

	if (!s->w->cfg->ws_binary && n > 0 && n < SIZE_MAX / 3 &&
	    !utf8_valid(m.msg, n) && (fixed = malloc(n * 3)) != NULL) {
		size_t o = 0;

		for (size_t i = 0; i < n; i++) {
			size_t k = 1;

			/* The longest valid sequence here, else one bad byte. */
			while (k <= 4 && i + k <= n && !utf8_valid(m.msg + i, k))
				k++;
			if (k <= 4 && i + k <= n) {
				memcpy(fixed + o, m.msg + i, k);
				o += k;
				i += k - 1;
			} else {
				memcpy(fixed + o, "\xef\xbf\xbd", 3);
				o += 3;
			}
		}
		m.msg = fixed;
		m.msg_length = o;
	}
	if (wslay_event_queue_msg(s->ctx, &m) == 0)
		s->out++;
	free(fixed);
}

/* Where to split a line that is too long: not inside a UTF-8 sequence. */
static size_t
split_at(const char *p, size_t n)
{
	size_t k = n;

	for (int back = 0; back < 3 && k > 0 &&
	    ((unsigned char)p[k] & 0xc0) == 0x80; back++)
		k--;
	return k > 0 ? k : n;
}

/* Text: each line a message; what is left waits for its newline. */
static void
lines_out(struct ws *s, int eof)
{
	size_t max = s->w->cfg->ws_max_message, start = 0;
	char *nl;

	while ((nl = memchr(s->ob + start, '\n', s->olen - start)) != NULL) {
		size_t n = (size_t)(nl - (s->ob + start));

		while (n > max) {
			size_t k = split_at(s->ob + start, max);

			send_msg(s, s->ob + start, k);
			start += k;
			n -= k;
		}
		send_msg(s, s->ob + start, n > 0 && s->ob[start + n - 1] ==
		    '\r' ? n - 1 : n);
		start += n + 1;
	}
	while (s->olen - start >= max || (eof && s->olen > start)) {
		size_t k = s->olen - start > max ?
		    split_at(s->ob + start, max) : s->olen - start;

		send_msg(s, s->ob + start, k);
		start += k;
	}
	memmove(s->ob, s->ob + start, s->olen - start);
	s->olen -= start;
}

static int
queue_full(const struct ws *s)
{
	return wslay_event_get_queued_msg_length(s->ctx) >=
	    s->w->cfg->ws_send_buffer;
}

/* The program's stdout reached its end. */
static void
out_closed(struct ws *s)
{
	if (!s->w->cfg->ws_binary && s->olen > 0)
		lines_out(s, 1);
	s->out_eof = 1;
	prog_close_stdout(&s->prog);
}

static void
read_out(struct ws *s)
{
	size_t max = s->w->cfg->ws_max_message, got = 0;
	int binary = s->w->cfg->ws_binary;

	while (got < OUT_CHUNK && !queue_full(s) && s->prog.out != -1) {
		size_t want = binary ? (max < OUT_CHUNK ? max : OUT_CHUNK) :
		    max + 1;
		ssize_t n;

		if (s->ocap < want) {
			char *b = realloc(s->ob, want);

			if (b == NULL)
				return;
			s->ob = b;
			s->ocap = want;
		}
		n = read(s->prog.out, s->ob + s->olen, s->ocap - s->olen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			out_closed(s);
			return;
		}
		got += (size_t)n;
		if (binary) {
			send_msg(s, s->ob, (size_t)n);
			continue;
		}
		s->olen += (size_t)n;
		lines_out(s, 0);
	}
}

static void
on_out(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct ws *s = arg;

	(void)ev;
	(void)fd;
	(void)events;
	read_out(s);
	pump(s);
}

/* --- the program's input ---------------------------------------------- */

static void
write_in(struct ws *s)
{
	while (s->ioff < s->ilen && s->prog.in != -1) {
		ssize_t n = write(s->prog.in, s->ib + s->ioff,
		    s->ilen - s->ioff);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1) {	/* it closed its stdin: it reads no more */
			prog_close_stdin(&s->prog);
			break;
		}
		s->ioff += (size_t)n;
	}
	s->ilen = s->ioff = 0;
}

static void
on_in(struct ev_loop *ev, int fd, uint32_t events, void *arg)
{
	struct ws *s = arg;

	(void)ev;
	(void)fd;
	(void)events;
	write_in(s);
	pump(s);
}

/* --- closing ----------------------------------------------------------- */

/* The close code for a program that ended by itself. */
static void
program_ended(struct ws *s)
{
	static char why[64];
	int st = s->prog.status;

	if (s->want_close != 0 || s->stop_code != 0)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		s->want_close = WSLAY_CODE_NORMAL_CLOSURE;
		s->reason = "";
		return;
	}
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "program killed by signal %d",
		    WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "program exited with status %d",
		    WEXITSTATUS(st));
	s->want_close = WSLAY_CODE_INTERNAL_SERVER_ERROR;
	s->reason = why;
}

static void
on_prog_done(struct prog *p, void *arg)
{
	struct ws *s = arg;

	(void)p;
	if (s->c == NULL) {
		ws_free(s);
		return;
	}
	if (s->stop_code != 0 && s->want_close == 0) {
		s->want_close = s->stop_code;
		s->reason = s->stop_code == WSLAY_CODE_GOING_AWAY ?
		    "going away" : "service restart";
	} else
		program_ended(s);
	/* What it wrote is in the pipe still; a stray holder may keep it. */
	if (!s->out_eof)
		s->eof_by = clock_ms() + s->w->cfg->program_grace;
	pump(s);
}

static void
queue_close(struct ws *s, int code, const char *reason)
{
	int64_t now = clock_ms(), end = ws_deadline(s->w);

	if (wslay_event_get_close_sent(s->ctx) || s->close_by != 0)
		return;
	(void)wslay_event_queue_close(s->ctx, (uint16_t)code,
	    (const uint8_t *)reason, strlen(reason));
	s->close_by = now + s->w->cfg->ws_close_timeout;
	if (s->close_by > end)
		s->close_by = end;
}

/* The client's socket is done with: the connection goes. */
static void
session_end(struct ws *s)
{
	struct conn *c = s->c;

	conn_close(c);		/* calls ws_detach() */
}

void
ws_detach(struct conn *c)
{
	struct ws *s = c->ws;

	if (s == NULL)
		return;
	c->ws = NULL;
	s->c = NULL;
	if (s->sbe != -2)
		sb_session_close(s->w->me, s->sbe);
	if (s->ctx != NULL) {
		wslay_event_context_free(s->ctx);
		s->ctx = NULL;
	}
	if (s->prog.done) {
		ws_free(s);
		return;
	}
	/* Before the 101 went out, or after: the program is stopped. */
	if (s->prog.pid > 0)
		prog_stop(&s->prog);
	prog_close_stdout(&s->prog);
}

/* --- pump -------------------------------------------------------------- */

static int64_t
next_due(const struct ws *s)
{
	int64_t t = ws_deadline(s->w);
	int iv = s->w->cfg->ws_ping_interval;

	if (iv > 0 && s->close_by == 0 && s->next_ping < t)
		t = s->next_ping;
	if (s->out_by != 0 && s->out_by < t)
		t = s->out_by;
	if (s->close_by != 0 && s->close_by < t)
		t = s->close_by;
	if (s->eof_by != 0 && s->eof_by < t)
		t = s->eof_by;
	return t;
}

static void
watch(struct ws *s)
{
	struct ev_loop *ev = &s->w->ev;
	uint32_t want = 0;
	int out = s->prog.out;

	if (wslay_event_want_read(s->ctx) && s->ilen == 0)
		want |= EPOLLIN;
	if (wslay_event_want_write(s->ctx))
		want |= EPOLLOUT;
	if (conn_watch(s->c, want | EPOLLRDHUP) == -1)
		s->gone = 1;	/* out of memory: cannot wait for it */
	if (out != -1) {
		int on = !queue_full(s) && s->close_by == 0;

		if (on && !ev_registered(ev, out))
			(void)ev_add(ev, out, EPOLLIN, on_out, s);
		else if (!on && ev_registered(ev, out))
			ev_del(ev, out);
	}
	if (s->prog.in != -1) {
		int on = s->ilen > 0;

		if (on && !ev_registered(ev, s->prog.in))
			(void)ev_add(ev, s->prog.in, EPOLLOUT, on_in, s);
		else if (!on && ev_registered(ev, s->prog.in))
			ev_del(ev, s->prog.in);
	}
	(void)ev_timer_at(ev, &s->c->timer, next_due(s));
}

/* Is the session over on the client's side? */
static int
finished(const struct ws *s)
{
	if (s->gone)
		return 1;
	if (!wslay_event_get_close_sent(s->ctx))
		return 0;
	/* Our Close is out: the client's ends it (or the timer does). */
	return wslay_event_get_close_received(s->ctx) ||
	    !wslay_event_get_read_enabled(s->ctx);
}

static void
pump(struct ws *s)
{
	if (s->c == NULL)
		return;
	if (wslay_event_want_read(s->ctx) && s->ilen == 0)
		(void)wslay_event_recv(s->ctx);
	write_in(s);
	if (s->out_eof && s->prog.done && s->want_close == 0)
		program_ended(s);
	if (s->want_close != 0 && s->out_eof &&
	    wslay_event_get_queued_msg_count(s->ctx) == 0)
		queue_close(s, s->want_close, s->reason);
	if (wslay_event_want_write(s->ctx))
		(void)wslay_event_send(s->ctx);
	/* Output delivered after the close was queued: send it too. */
	if (s->want_close != 0 && s->out_eof && s->close_by == 0 &&
	    wslay_event_get_queued_msg_count(s->ctx) == 0) {
		queue_close(s, s->want_close, s->reason);
		(void)wslay_event_send(s->ctx);
	}
	sb_session_count(s->w->me, s->sbe, s->in, s->out);
	if (finished(s)) {
		session_end(s);
		return;
	}
	watch(s);
}

/* --- the connection's events ------------------------------------------- */

void
ws_begin(struct conn *c, const char *pre, size_t n)
{
	struct ws *s = c->ws;
	int64_t now = clock_ms();

	pool_set_state(&s->w->pool, c, CS_WS);
	if (session_ctx(s) == -1 || (n > 0 && (s->pre = malloc(n)) == NULL)) {
		conn_close(c);
		return;
	}
	memcpy(s->pre, pre, n);
	s->prelen = n;
	s->last_pong = now;
	s->next_ping = now + s->w->cfg->ws_ping_interval;
	s->sbe = sb_session_open(s->w->me, s->w->cfg->ws[s->route].path,
	    c->peer, s->prog.pid);
	if (s->w->stopping || *s->w->stop)
		ws_stop(c, s->w->env->sb->draining ? WSLAY_CODE_GOING_AWAY :
		    1012);
	pump(s);
}

void
ws_on_io(struct conn *c, uint32_t events)
{
	struct ws *s = c->ws;

	if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN))
		s->gone = 1;
	pump(s);
}

void
ws_on_timer(struct conn *c)
{
	struct ws *s = c->ws;
	const struct cfg *cfg = s->w->cfg;
	int64_t now = clock_ms();

	if (now >= ws_deadline(s->w) || (s->close_by != 0 &&
	    now >= s->close_by)) {
		session_end(s);	/* TCP closed by the server, first */
		return;
	}
	if (s->eof_by != 0 && now >= s->eof_by && !s->out_eof) {
		s->eof_by = 0;
		out_closed(s);
	}
	if (s->out_by != 0 && now >= s->out_by) {
		/* Its output is over: what it did not write is lost. */
		s->out_by = 0;
		prog_kill(&s->prog);
		if (!s->out_eof)
			read_out(s);
		if (!s->out_eof)
			out_closed(s);
		if (s->want_close == 0)
			s->want_close = s->stop_code;
		s->reason = s->stop_code == WSLAY_CODE_GOING_AWAY ?
		    "going away" : "service restart";
	}
	if (cfg->ws_ping_interval > 0 && s->close_by == 0 &&
	    now >= s->next_ping) {
		if (now - s->last_pong >= 2 * (int64_t)cfg->ws_ping_interval) {
			prog_stop(&s->prog);
			queue_close(s, WSLAY_CODE_GOING_AWAY, "ping timeout");
		} else {
			struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };

			(void)wslay_event_queue_msg(s->ctx, &m);
		}
		s->next_ping = now + cfg->ws_ping_interval;
	}
	pump(s);
}

void
ws_stop(struct conn *c, int code)
{
	struct ws *s = c->ws;
	int64_t end = ws_deadline(s->w), wait;
	const struct cfg *cfg = s->w->cfg;

	if (s->stop_code != 0 || s->ctx == NULL)
		return;
	s->stop_code = code;
	if (wslay_event_get_close_sent(s->ctx) ||
	    wslay_event_get_close_received(s->ctx))
		return;		/* closing already */
	if (s->want_close == 0 && s->prog.done)
		s->want_close = code;
	s->reason = code == WSLAY_CODE_GOING_AWAY ? "going away" :
	    "service restart";
	prog_terminate(&s->prog);
	wait = cfg->ws_close_timeout < cfg->shutdown_timeout / 2 ?
	    cfg->ws_close_timeout : cfg->shutdown_timeout / 2;
	s->out_by = end == INT64_MAX ? 0 : end - wait;
	if (s->out_by != 0 && s->out_by <= clock_ms())
		s->out_by = clock_ms();
	pump(s);
}

void
ws_hurry(struct conn *c)
{
	struct ws *s = c->ws;

	prog_kill(&s->prog);
	if (s->ctx != NULL && !wslay_event_get_close_sent(s->ctx)) {
		(void)wslay_event_queue_close(s->ctx, WSLAY_CODE_GOING_AWAY,
		    (const uint8_t *)"going away", 10);
		(void)wslay_event_send(s->ctx);
	}
	conn_close(c);
}
