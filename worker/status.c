/*
 * The status page.  Other processes write the scoreboard while we read
 * it, so each slot is copied once and every figure comes from that copy:
 * the totals then always add up to the lines shown.  The request line is
 * client data: escaped for JSON, and anything but printable ASCII
 * replaced in text, so the page stays valid UTF-8 whatever was sent.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chstore.h"
#include "sb.h"
#include "status.h"

#define HEAD_MAX	1536	/* everything but the worker lines */
#define SLOT_MAX	1152	/* one worker line, request escaped 6x */
#define LOST_HEAD	128	/* heading of the text page's losses */
#define LOST_MAX	48	/* one line of them: a pid and a count */
/* One session: path and client escaped 6x, numbers. */
#define SESSION_MAX	((SB_PATH_LEN + SB_PEER_LEN) * 6 + 200)
#define SLACK_SLOTS	8	/* come while the page is made */

_Static_assert(SB_REQ_LEN * 6 + 320 <= SLOT_MAX, "SLOT_MAX too small");

struct out {
	char	*b;
	size_t	 cap, n;
	int	 over;		/* something did not fit */
};

struct snap_session {
	pid_t		prog;
	int64_t		started;
	unsigned long long in, out;
	char		path[SB_PATH_LEN], peer[SB_PEER_LEN];
};

struct snap {
	pid_t		pid;
	int		state, gen, retiring, conns, nsessions, nshown;
	struct snap_session session[SB_SESSIONS];
	unsigned long long requests, log_lost;
	unsigned long long tls_done, tls_resumed, tls_v13, tls_failed;
	int		tls_open;
	int64_t		req_start;
	char		req[SB_REQ_LEN];
};

struct totals {
	int			workers, retiring, conns, sessions;
	int			state[SB_DRAINING + 1];
	unsigned long long	requests, log_lost;
	unsigned long long	tls_done, tls_resumed, tls_v13, tls_failed;
	int			tls_open;
};

static void	put(struct out *, const char *, ...)
	__attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->b + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->n)
		o->over = 1;
	else
		o->n += (size_t)n;
}

/* Room for the text page's list of access-log losses, at its end. */
static size_t
lost_size(int nslots)
{
	return LOST_HEAD + (size_t)(nslots > 0 ? nslots : 0) * LOST_MAX;
}

size_t
status_size(const struct sb *sb)
{
	size_t live = SLACK_SLOTS, sessions = SLACK_SLOTS * SB_SESSIONS;

	for (int i = 0; i < sb->nslots; i++)
		if (sb->slot[i].pid != 0) {
			live++;
			for (int j = 0; j < SB_SESSIONS; j++)
				sessions += sb_sessions(sb, i)[j].prog != 0;
		}
	return HEAD_MAX + live * SLOT_MAX + sessions * SESSION_MAX +
	    lost_size(sb->nslots);
}

static void
snap_slot(const struct sb *sb, int slot, struct snap *v)
{
	const struct sb_slot *s = &sb->slot[slot];

	v->pid = s->pid;
	v->state = s->state;
	v->gen = s->gen;
	v->retiring = s->retiring;
	v->conns = s->conns;
	v->requests = s->requests;
	v->log_lost = s->log_lost;
	v->tls_done = s->tls_done;
	v->tls_resumed = s->tls_resumed;
	v->tls_v13 = s->tls_v13;
	v->tls_failed = s->tls_failed;
	v->tls_open = s->tls_open;
	v->req_start = s->req_start;
	memcpy(v->req, s->req, sizeof(v->req));
	v->req[sizeof(v->req) - 1] = '\0';	/* it may be mid-write */
	v->nsessions = s->nsessions;
	v->nshown = 0;
	if (v->pid == 0)
		return;		/* its table is not to be touched */
	for (int i = 0; i < SB_SESSIONS; i++) {
		const struct sb_session *e = &sb_sessions(sb, slot)[i];
		struct snap_session *d = &v->session[v->nshown];

		if ((d->prog = e->prog) == 0)
			continue;
		d->started = e->started;
		d->in = e->in;
		d->out = e->out;
		memcpy(d->path, e->path, sizeof(d->path));
		d->path[sizeof(d->path) - 1] = '\0';
		memcpy(d->peer, e->peer, sizeof(d->peer));
		d->peer[sizeof(d->peer) - 1] = '\0';
		v->nshown++;
	}
}

/* A JSON string, or null; bytes outside printable ASCII as \u00XX. */
static void
put_jstr(struct out *o, const char *s)
{
	if (s == NULL) {
		put(o, "null");
		return;
	}
	put(o, "\"");
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			put(o, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			put(o, "\\u%04x", ch);
		else
			put(o, "%c", ch);
	}
	put(o, "\"");
}

static void
put_text(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		put(o, "%c", ch < 0x20 || ch >= 0x7f ? '?' : ch);
	}
}

static void
count(struct totals *t, const struct snap *v)
{
	t->workers++;
	t->retiring += v->retiring != 0;
	if (v->state >= 0 && v->state <= SB_DRAINING)
		t->state[v->state]++;
	t->requests += v->requests;
	t->log_lost += v->log_lost;
	t->conns += v->conns;
	t->sessions += v->nsessions;
	t->tls_done += v->tls_done;
	t->tls_resumed += v->tls_resumed;
	t->tls_v13 += v->tls_v13;
	t->tls_failed += v->tls_failed;
	t->tls_open += v->tls_open;
}

/*
 * TLS, over the workers alive now: handshakes, how many resumed (the
 * rate, in percent), by protocol version, failed ones, open connections.
 */
static void
put_tls(struct out *o, const struct totals *t, int json)
{
	unsigned long long rate = t->tls_done == 0 ? 0 :
	    t->tls_resumed * 100 / t->tls_done;

	if (json) {
		put(o, "  \"tls\": {\"handshakes\": %llu, \"resumed\": %llu, "
		    "\"resumed_percent\": %llu, \"tlsv1_2\": %llu, "
		    "\"tlsv1_3\": %llu, \"failed\": %llu, \"open\": %d},\n",
		    t->tls_done, t->tls_resumed, rate, t->tls_done - t->tls_v13,
		    t->tls_v13, t->tls_failed, t->tls_open);
		return;
	}
	put(o, "TLS connections open: %d\nTLS handshakes: %llu (resumed %llu, "
	    "%llu%%; TLSv1.2 %llu, TLSv1.3 %llu; failed %llu)\n", t->tls_open,
	    t->tls_done, t->tls_resumed, rate, t->tls_done - t->tls_v13,
	    t->tls_v13, t->tls_failed);
}

static void
put_slot(struct out *o, const struct snap *v, int64_t now_ms, time_t now,
    int json, int first)
{
	int64_t age = v->req_start == 0 ? -1 :
	    now_ms > v->req_start ? now_ms - v->req_start : 0;
	const char *req = v->req_start == 0 ? NULL : v->req;

	if (json) {
		put(o, "%s    {\"pid\": %ld, \"generation\": %d, \"state\": "
		    "\"%s\", \"retiring\": %s, \"requests\": %llu, "
		    "\"connections\": %d, \"request_age_ms\": ",
		    first ? "" : ",\n", (long)v->pid, v->gen,
		    sb_state_name(v->state), v->retiring ? "true" : "false",
		    v->requests, v->conns);
		if (age < 0)
			put(o, "null");
		else
			put(o, "%lld", (long long)age);
		put(o, ", \"request\": ");
		put_jstr(o, req);
		put(o, ", \"access_log_lost\": %llu, \"sessions_open\": %d, "
		    "\"sessions\": [", v->log_lost, v->nsessions);
		for (int i = 0; i < v->nshown; i++) {
			const struct snap_session *e = &v->session[i];

			put(o, "%s{\"path\": ", i ? ", " : "");
			put_jstr(o, e->path);
			put(o, ", \"client\": ");
			put_jstr(o, e->peer);
			put(o, ", \"program_pid\": %ld, \"age_s\": %lld, "
			    "\"messages_in\": %llu, \"messages_out\": %llu}",
			    (long)e->prog, (long long)(now > e->started ?
			    now - e->started : 0), e->in, e->out);
		}
		put(o, "]}");
		return;
	}
	put(o, "%-8ld %-4d %-10s %-8s %-10llu %-6d ", (long)v->pid, v->gen,
	    sb_state_name(v->state), v->retiring ? "yes" : "no", v->requests,
	    v->conns);
	if (age < 0)
		put(o, "%-8s -\n", "-");
	else {
		put(o, "%-8lld ", (long long)age);
		put_text(o, req);
		put(o, "\n");
	}
}

/*
 * Text: the workers that lost access-log lines, after the table, which
 * keeps its columns.  From the same copy as the worker's line.
 */
static void
put_lost(struct out *o, const struct snap *v, const struct totals *t)
{
	if (v->log_lost == 0)
		return;
	if (t->log_lost == 0)
		put(o, "\naccess log lines lost, by worker:\n%-8s %s\n", "pid",
		    "lost");
	put(o, "%-8ld %llu\n", (long)v->pid, v->log_lost);
}

/* Text: the WebSocket sessions, after the table, from the same copy. */
static void
put_sessions(struct out *o, const struct snap *v, time_t now)
{
	for (int i = 0; i < v->nshown; i++) {
		const struct snap_session *e = &v->session[i];

		if (o->n == 0)
			put(o, "\nWebSocket sessions:\n%-8s %-20s %-24s %-8s "
			    "%-8s %-8s %s\n", "worker", "path", "client",
			    "program", "age_s", "in", "out");
		put(o, "%-8ld ", (long)v->pid);
		put_text(o, e->path);
		put(o, "%*s ", (int)(strlen(e->path) < 20 ? 20 -
		    strlen(e->path) : 0), "");
		put_text(o, e->peer);
		put(o, "%*s %-8ld %-8lld %-8llu %llu\n", (int)(strlen(e->peer)
		    < 24 ? 24 - strlen(e->peer) : 0), "", (long)e->prog,
		    (long long)(now > e->started ? now - e->started : 0),
		    e->in, e->out);
	}
}

/*
 * Each live slot, copied once; the totals, and the text page's list of
 * losses (into lost), come from the same copies.
 */
static void
put_slots(struct out *o, struct out *lost, struct out *sess,
    const struct status_in *in, struct totals *t)
{
	struct snap v;

	if (in->json)
		put(o, "  \"workers\": [\n");
	else
		put(o, "%-8s %-4s %-10s %-8s %-10s %-6s %-8s %s\n", "pid",
		    "gen", "state", "retiring", "requests", "conns", "age_ms",
		    "request");
	for (int i = 0; i < in->sb->nslots; i++) {
		snap_slot(in->sb, i, &v);
		if (v.pid == 0)
			continue;
		put_slot(o, &v, in->now_ms, in->now, in->json,
		    t->workers == 0);
		if (!in->json) {
			put_lost(lost, &v, t);
			put_sessions(sess, &v, in->now);
		}
		count(t, &v);
	}
	if (in->json)
		put(o, "%s  ]\n}\n", t->workers ? "\n" : "");
}

/* One figure of the head; v < 0 stands for absent: null in JSON. */
struct field {
	const char	*jkey, *tkey;
	long long	 v;
	const char	*unit, *absent;
};

static void
put_field(struct out *o, const struct field *f, int json)
{
	if (json && f->v < 0)
		put(o, "  \"%s\": null,\n", f->jkey);
	else if (json)
		put(o, "  \"%s\": %lld,\n", f->jkey, f->v);
	else if (f->v < 0)
		put(o, "%s: %s\n", f->tkey, f->absent);
	else
		put(o, "%s: %lld%s\n", f->tkey, f->v, f->unit);
}

/* Channels: what the shared store holds, counted once for all workers. */
static void
put_channels(struct out *o, const struct chs_stats *c, int json)
{
	if (c == NULL)
		return;
	if (json) {
		put(o, "  \"channels\": {\"channels\": %d, \"messages\": %lld, "
		    "\"bytes\": %lld, \"subscribers\": %lld, \"published\": "
		    "%lld, \"delivered\": %lld, \"refused\": %lld},\n",
		    c->channels, c->messages, c->bytes, c->subscribers,
		    c->published, c->delivered, c->refused);
		return;
	}
	put(o, "channels: %d (%lld messages buffered, %lld bytes; %lld "
	    "subscribers)\nchannel messages: %lld published, %lld delivered, "
	    "%lld refused\n", c->channels, c->messages, c->bytes,
	    c->subscribers, c->published, c->delivered, c->refused);
}

static void
put_head(struct out *o, const struct status_in *in, const struct totals *t)
{
	const struct sb *sb = in->sb;
	int64_t started = sb->started, deadline = sb->retire_deadline;
	const struct field f[] = {
		{ "uptime", "uptime", started == 0 ? -1 : in->now > started ?
		    (long long)(in->now - started) : 0, " s", "unknown" },
		{ "generation", "generation", sb->generation, "", "" },
		{ "workers_wanted", "workers wanted", sb->target, "", "" },
		{ "accept_queue", "accept queue", in->queue, "", "unknown" },
		{ "retiring", "workers retiring", t->retiring, "", "" },
		/* A deadline already past is still pending: 0, not none. */
		{ "retire_deadline_ms", "retire deadline", deadline == 0 ? -1 :
		    deadline > in->now_ms ? deadline - in->now_ms : 0, " ms",
		    "none" },
	};
	int json = in->json;

	put(o, json ? "{\n" : "preforkd status\n\n");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		put_field(o, &f[i], json);
	if (json) {
		put(o, "  \"totals\": {\"workers\": %d", t->workers);
		for (int s = SB_IDLE; s <= SB_DRAINING; s++)
			put(o, ", \"%s\": %d", sb_state_name(s), t->state[s]);
		put(o, ", \"requests\": %llu, \"connections\": %d, "
		    "\"access_log_lost\": %llu, \"sessions\": %d},\n",
		    t->requests, t->conns, t->log_lost, t->sessions);
		put_tls(o, t, 1);
		put_channels(o, in->channels, 1);
		return;
	}
	put(o, "workers: %d (", t->workers);
	for (int s = SB_IDLE; s <= SB_DRAINING; s++)
		put(o, "%s%d %s", s == SB_IDLE ? "" : ", ", t->state[s],
		    sb_state_name(s));
	put(o, ")\nrequests served: %llu\nopen connections: %d\n"
	    "WebSocket sessions: %d\naccess log lines lost: %llu\n",
	    t->requests, t->conns, t->sessions, t->log_lost);
	put_tls(o, t, 0);
	put_channels(o, in->channels, 0);
	put(o, "\n");
}

/*
 * The worker lines are rendered first, past room kept for the head, so
 * that the head can show totals of the very same copies, and the list of
 * losses at the end of buf; then the head is written and the rest moved
 * up behind it.
 */
long
status_render(char *buf, size_t cap, const struct status_in *in)
{
	struct totals t;
	struct out body, head, lost, sess;
	char hb[HEAD_MAX];
	size_t lcap = lost_size(in->sb->nslots), scap = SESSION_MAX;

	for (int i = 0; i < in->sb->nslots; i++)
		for (int j = 0; in->sb->slot[i].pid != 0 && j < SB_SESSIONS; j++)
			scap += sb_sessions(in->sb, i)[j].prog != 0 ?
			    SESSION_MAX : 0;
	scap += SLACK_SLOTS * SB_SESSIONS * SESSION_MAX;

	if (cap <= HEAD_MAX + lcap)
		return -1;
	memset(&t, 0, sizeof(t));
	body = (struct out){ buf + HEAD_MAX, cap - HEAD_MAX - lcap, 0, 0 };
	lost = (struct out){ buf + cap - lcap, lcap, 0, 0 };
	sess = (struct out){ malloc(scap), scap, 0, scap == 0 };
	if (sess.b == NULL)
		return -1;
	put_slots(&body, &lost, &sess, in, &t);
	/* The sessions' list follows the table. */
	if (!sess.over && body.n + sess.n <= body.cap) {
		memcpy(body.b + body.n, sess.b, sess.n);
		body.n += sess.n;
	} else
		body.over = 1;
	free(sess.b);
	head = (struct out){ hb, sizeof(hb), 0, 0 };
	put_head(&head, in, &t);
	if (body.over || head.over || lost.over)
		return -1;
	memcpy(buf, hb, head.n);
	memmove(buf + head.n, buf + HEAD_MAX, body.n);
	memmove(buf + head.n + body.n, buf + cap - lcap, lost.n);
	return (long)(head.n + body.n + lost.n);
}
