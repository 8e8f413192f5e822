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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
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
#include "wsframe.h"
#include "wsproto.h"

#define STOP_MARGIN_MS	250	/* sessions end this much before the kill */
#define OUT_CHUNK	65536	/* stdout read per event, at most */
#define ENV_MAX		(HTTP_HDR_CAP + 24)

struct ws {
	struct worker		*w;
	struct conn		*c;		/* NULL once the client is gone */
	struct ws		*prev, *next;	/* the worker's sessions */
	struct wsf		 f;		/* the framing (wsframe.c) */
	struct prog		 prog;
	int			 route;
	char			*ob;		/* stdout: an unfinished line */
	size_t			 olen, ocap;
	int			 out_eof;	/* stdout is closed */
	char			*ib;		/* waiting for the program's stdin */
	size_t			 ilen, ioff, icap;
	int			 want_close;	/* Close to queue after output */
	char			 reason[64];	/* its reason */
	int			 stop_code;	/* stopping: 1001 or 1012 */
	int64_t			 out_by;	/* stopping: output until */
	int64_t			 eof_by;	/* program done: stdout EOF by */
	uint64_t		 in, out;	/* messages */
	int			 sbe;		/* scoreboard entry; -1 not shown */
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
	wsf_free(&s->f);
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

int
ws_check_upgrade(const struct worker *w, const struct http_req *req,
    const char **extra)
{
	struct http_str v = http_header(req, "sec-websocket-version");

	*extra = NULL;
	if (!wsp_has_token(http_header(req, "upgrade"), "websocket")) {
		*extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
		return HTTP_UPGRADE_REQUIRED;
	}
	if (req->meth != HTTP_M_GET || req->minor < 1 ||
	    !wsp_has_token(http_header(req, "connection"), "upgrade") ||
	    req->content_length > 0 || req->chunked || v.p == NULL ||
	    !wsp_key_valid(http_header(req, "sec-websocket-key")))
		return HTTP_BAD_REQUEST;
	if (v.n != 2 || memcmp(v.p, "13", 2) != 0) {
		*extra = "Sec-WebSocket-Version: 13\r\n";
		return HTTP_UPGRADE_REQUIRED;
	}
	if (!wsp_origin_ok(&w->cfg->ws_origin, http_header(req, "origin"),
	    req->host))
		return HTTP_FORBIDDEN;
	if (w->stopping || *w->stop)
		return HTTP_UNAVAILABLE;
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
	if (wsp_decode(rest, info, req->path.n + 1) == -1)
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
		/* httpoxy: a client's Proxy: header is no HTTP_PROXY. */
		if (!(req->hdr[i].name.n == 5 &&
		    strncasecmp(req->hdr[i].name.p, "proxy", 5) == 0))
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
	s->sbe = -2;		/* not on the scoreboard yet */
	s->prog.in = s->prog.out = s->prog.err = s->prog.pidfd = -1;
	return s;
}

/* Start the program; the HTTP status to answer with when it fails. */
static int
start_program(struct ws *s, const char *proto)
{
	struct worker *w = s->w;
	const struct cfg_ws *route = &w->cfg->ws[s->route];
	char *argv[CFG_WORDS / 2 + 1];
	struct envb e = { .cap = w->bufcap * 2 + 4096 };
	int n = 0, rc, err;

	for (const char *a; n < (int)(sizeof(argv) / sizeof(argv[0])) - 1 &&
	    (a = cfg_word(&route->argv, n)) != NULL;)
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

	if ((status = ws_check_upgrade(w, &w->req, &extra)) != 0)
		return resp_status(w, c, status, extra);
	/*
	 * Programs whose clients left are still stopping (their ladder):
	 * with them, no more than worker_connections programs per worker.
	 */
	if (w->ws_live >= w->cfg->worker_connections ||
	    (s = session_new(w, c, route)) == NULL)
		return resp_status(w, c, HTTP_UNAVAILABLE, NULL);
	proto = wsp_pick_protocol(&w->cfg->ws_protocol,
	    http_header(&w->req, "sec-websocket-protocol"));
	if ((status = start_program(s, proto)) != 0) {
		free(s);
		return resp_status(w, c, status, NULL);
	}
	list_add(s);
	c->ws = s;
	c->keep = 0;
	wsp_accept_key(http_header(&w->req, "sec-websocket-key"), key);
	return resp_switching(w, c, key, proto);
}

/* --- the client's messages ----------------------------------------- */

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
	if (n > 0)
		memcpy(s->ib + s->ilen, p, n);
	s->ilen += n;
	if (newline)
		s->ib[s->ilen++] = '\n';
}

static void
on_msg(void *arg, const struct wslay_event_on_msg_recv_arg *m)
{
	struct ws *s = arg;

	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		s->in++;
		to_stdin(s, m->msg, m->msg_length, !s->w->cfg->ws_binary);
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

/* The program's stdin is full: the client waits. */
static int
hold(const void *arg)
{
	const struct ws *s = arg;

	return s->ilen > 0;
}

/* --- the program's output --------------------------------------------- */

/* One message to the client; text that is not UTF-8 gets U+FFFD. */
static void
send_msg(struct ws *s, const char *p, size_t n)
{
	if (wsf_msg(&s->f, s->w->cfg->ws_binary ? WSLAY_BINARY_FRAME :
	    WSLAY_TEXT_FRAME, p, n) == 0)
		s->out++;
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
			size_t k = wsp_split_at(s->ob + start, max);

			send_msg(s, s->ob + start, k);
			start += k;
			n -= k;
		}
		send_msg(s, s->ob + start, n > 0 && s->ob[start + n - 1] ==
		    '\r' ? n - 1 : n);
		start += n + 1;
	}
	/* A line as long as max may still get its newline: wait for it. */
	while (s->olen - start > max || (eof && s->olen > start)) {
		size_t k = s->olen - start > max ?
		    wsp_split_at(s->ob + start, max) : s->olen - start;

		send_msg(s, s->ob + start, k);
		start += k;
	}
	memmove(s->ob, s->ob + start, s->olen - start);
	s->olen -= start;
}

static int
queue_full(const struct ws *s)
{
	return wslay_event_get_queued_msg_length(s->f.ctx) >=
	    s->w->cfg->ws_send_buffer;
}

/* The program's stdout reached its end. */
static void
out_closed(struct ws *s)
{
	if (!s->w->cfg->ws_binary && s->olen > 0)
		lines_out(s, 1);
	s->out_eof = 1;
	s->eof_by = 0;
	prog_close_stdout(&s->prog);
}

/* Room for more of a line: 4 KiB at first, doubled up to cap. */
static int
grow_out(struct ws *s, size_t cap)
{
	size_t want = s->ocap < 4096 ? 4096 : 2 * s->ocap;
	char *b;

	if (want > cap)
		want = cap;
	if (want <= s->ocap || (b = realloc(s->ob, want)) == NULL)
		return -1;
	s->ob = b;
	s->ocap = want;
	return 0;
}

static void
read_out(struct ws *s)
{
	size_t max = s->w->cfg->ws_max_message, got = 0;
	int binary = s->w->cfg->ws_binary;

	/* A read shorter than asked emptied the pipe: epoll says when not. */
	while (got < OUT_CHUNK && !queue_full(s) && s->prog.out != -1) {
		size_t want;
		ssize_t n;

		if (binary) {
			/* Each read is a message, copied by wslay: no buffer. */
			static char scratch[OUT_CHUNK];

			want = max < sizeof(scratch) ? max : sizeof(scratch);
			n = read(s->prog.out, scratch, want);
			if (n > 0) {
				got += (size_t)n;
				send_msg(s, scratch, (size_t)n);
				if ((size_t)n < want)
					return;
				continue;
			}
		} else {
			if (s->olen == s->ocap && grow_out(s, max + 1) == -1)
				return;
			want = s->ocap - s->olen;
			n = read(s->prog.out, s->ob + s->olen, want);
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			out_closed(s);
			return;
		}
		got += (size_t)n;
		s->olen += (size_t)n;
		lines_out(s, 0);
		if ((size_t)n < want)
			return;
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

/* The Close to send once the output is out; the first one set stays. */
static void
set_close(struct ws *s, int code, const char *reason)
{
	if (s->want_close != 0)
		return;
	s->want_close = code;
	strlcpy(s->reason, reason, sizeof(s->reason));
}

static const char *
stop_reason(int code)
{
	return code == WSLAY_CODE_GOING_AWAY ? "going away" :
	    "service restart";
}

/* The close code for a program that ended by itself. */
static void
program_ended(struct ws *s)
{
	char why[64];
	int st = s->prog.status;

	if (s->want_close != 0 || s->stop_code != 0)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		set_close(s, WSLAY_CODE_NORMAL_CLOSURE, "");
		return;
	}
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "program killed by signal %d",
		    WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "program exited with status %d",
		    WEXITSTATUS(st));
	set_close(s, WSLAY_CODE_INTERNAL_SERVER_ERROR, why);
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
	if (s->stop_code != 0)
		set_close(s, s->stop_code, stop_reason(s->stop_code));
	else
		program_ended(s);
	/* Its 101 is still on the way: ws_begin() takes it from here. */
	if (s->f.ctx == NULL)
		return;
	/* What it wrote is in the pipe still; a stray holder may keep it. */
	if (!s->out_eof)
		s->eof_by = clock_ms() + s->w->cfg->program_grace;
	pump(s);
}

static void
queue_close(struct ws *s, int code, const char *reason)
{
	wsf_queue_close(&s->f, code, reason, s->w->cfg->ws_close_timeout,
	    ws_deadline(s->w));
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
		sb_session_close(s->w->env->sb, s->w->env->slot, s->sbe);
	wsf_free(&s->f);
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

/*
 * Is the client read now?  Not while its program's stdin is full, nor
 * while what we owe it (pongs, Closes, output) is over the bound: a
 * client that pings and never reads must not grow the queue.
 */
static int
reading(const struct ws *s)
{
	return wslay_event_want_read(s->f.ctx) && s->ilen == 0 &&
	    !queue_full(s);
}

static int64_t
next_due(const struct ws *s)
{
	int64_t t = wsf_next_due(&s->f, s->w->cfg->ws_ping_interval,
	    ws_deadline(s->w));

	if (s->out_by != 0 && s->out_by < t)
		t = s->out_by;
	if (s->eof_by != 0 && !s->out_eof && s->eof_by < t)
		t = s->eof_by;
	return t;
}

static void
watch(struct ws *s)
{
	struct ev_loop *ev = &s->w->ev;
	int out = s->prog.out;

	wsf_watch(&s->f, reading(s));
	if (out != -1) {
		int on = !queue_full(s) && s->f.close_by == 0;

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

static void
pump(struct ws *s)
{
	if (s->c == NULL)
		return;
	if (reading(s))
		wsf_recv(&s->f);
	write_in(s);
	if (s->out_eof && s->prog.done && s->want_close == 0)
		program_ended(s);
	if (s->want_close != 0 && s->out_eof &&
	    wslay_event_get_queued_msg_count(s->f.ctx) == 0)
		queue_close(s, s->want_close, s->reason);
	wsf_send(&s->f);
	/* Output delivered after the close was queued: send it too. */
	if (s->want_close != 0 && s->out_eof && s->f.close_by == 0 &&
	    wslay_event_get_queued_msg_count(s->f.ctx) == 0) {
		queue_close(s, s->want_close, s->reason);
		wsf_send(&s->f);
	}
	sb_session_count(s->w->env->sb, s->w->env->slot, s->sbe, s->in,
	    s->out);
	if (wsf_finished(&s->f)) {
		session_end(s);
		return;
	}
	watch(s);
}

/* --- the connection's events ------------------------------------------- */

/* The client as ADDR:PORT ([ADDR]:PORT for IPv6), for the status page. */
static const char *
peer_port(const struct conn *c, char *buf, size_t len)
{
	char host[64], port[16];

	if (c->peer_len == 0 || getnameinfo((const struct sockaddr *)
	    &c->peer_ss, c->peer_len, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return c->peer;
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
	    port);
	return buf;
}

void
ws_begin(struct conn *c, const char *pre, size_t n)
{
	struct ws *s = c->ws;
	char peer[SB_PEER_LEN];

	pool_set_state(&s->w->pool, c, CS_WS);
	if (wsf_init(&s->f, c, s->w->cfg->ws_max_message,
	    s->w->cfg->ws_ping_interval, pre, n, on_msg, hold, s) == -1) {
		conn_close(c);
		return;
	}
	s->sbe = sb_session_open(s->w->env->sb, s->w->env->slot,
	    s->w->cfg->ws[s->route].path,
	    peer_port(c, peer, sizeof(peer)), s->prog.pid);
	if (s->w->stopping || *s->w->stop)
		ws_stop(c);
	pump(s);
}

void
ws_on_io(struct conn *c, uint32_t events)
{
	struct ws *s = c->ws;

	wsf_events(&s->f, events);
	/*
	 * The client shut its side while we do not read it (its program's
	 * stdin is full): nothing it sent can be taken any more.
	 */
	if ((events & EPOLLRDHUP) && s->ilen > 0)
		s->f.gone = 1;
	pump(s);
}

void
ws_on_timer(struct conn *c)
{
	struct ws *s = c->ws;
	const struct cfg *cfg = s->w->cfg;
	int64_t now = clock_ms();

	if (now >= ws_deadline(s->w) || (s->f.close_by != 0 &&
	    now >= s->f.close_by)) {
		session_end(s);	/* TCP closed by the server, first */
		return;
	}
	if (s->eof_by != 0 && now >= s->eof_by) {
		/*
		 * The program is gone but something of its group holds its
		 * stdout.  While the client is slow (the queue full) the pipe
		 * is simply not read yet: wait.  Else what is there is read,
		 * and the output taken as over.
		 */
		s->eof_by = 0;
		if (!s->out_eof && queue_full(s))
			s->eof_by = now + cfg->program_grace;
		else if (!s->out_eof) {
			read_out(s);
			if (!s->out_eof && !queue_full(s))
				out_closed(s);
			else if (!s->out_eof)
				s->eof_by = now + cfg->program_grace;
		}
	}
	if (s->out_by != 0 && now >= s->out_by) {
		/*
		 * The stop's output deadline: what the program did not write,
		 * or the client did not take, is lost; the Close goes now,
		 * ahead of anything still queued.
		 */
		s->out_by = 0;
		prog_kill(&s->prog);
		if (!s->out_eof)
			out_closed(s);
		set_close(s, s->stop_code, stop_reason(s->stop_code));
		queue_close(s, s->want_close, s->reason);
	}
	if (wsf_ping(&s->f, now, cfg->ws_ping_interval)) {
		prog_stop(&s->prog);
		queue_close(s, WSLAY_CODE_GOING_AWAY, "ping timeout");
	}
	pump(s);
}

void
ws_stop(struct conn *c)
{
	struct ws *s = c->ws;
	int64_t end = ws_deadline(s->w), wait;
	const struct cfg *cfg = s->w->cfg;
	/* A full stop: going away; else a restart (reload, upgrade). */
	int code = s->w->env->sb->draining ? WSLAY_CODE_GOING_AWAY : 1012;

	if (s->stop_code != 0 || s->f.ctx == NULL)
		return;
	s->stop_code = code;
	if (wslay_event_get_close_sent(s->f.ctx) ||
	    wslay_event_get_close_received(s->f.ctx))
		return;		/* closing already */
	if (s->prog.done)
		set_close(s, code, stop_reason(code));
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
	wsf_hurry(&s->f, "going away");
	conn_close(c);
}
