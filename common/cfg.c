/*
 * Configuration.  One table names every keyword with its type and bounds,
 * so the command line and the configuration file share one validator.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "sock.h"

enum cfg_type { T_INT, T_TIME, T_SIZE, T_BOOL, T_STR, T_PATH, T_LEVEL,
	T_WORDS };

struct cfg_key {
	const char	*name;
	enum cfg_type	 type;
	size_t		 off;
	size_t		 len;	/* string buffer size */
	long long	 min, max;
};

#define OFF(f)	offsetof(struct cfg, f)
#define SZ(f)	sizeof(((struct cfg *)0)->f)
static const struct cfg_key keys[] = {
	{ "root",		T_PATH,	OFF(root), SZ(root), 0, 0 },
	{ "workers",		T_INT,	OFF(workers), 0, 1, 4096 },
	{ "min_spare_workers",	T_INT,	OFF(min_spare_workers), 0, 0, 4096 },
	{ "max_spare_workers",	T_INT,	OFF(max_spare_workers), 0, 0, 4096 },
	{ "max_workers",	T_INT,	OFF(max_workers), 0, 0, 4096 },
	{ "max_requests",	T_INT,	OFF(max_requests), 0, 0, INT_MAX },
	{ "max_requests_jitter", T_INT,	OFF(max_requests_jitter), 0, 0, INT_MAX },
	{ "request_timeout",	T_TIME,	OFF(request_timeout), 0, 0, 86400000 },
	{ "status_path",	T_STR,	OFF(status_path), SZ(status_path), 0, 0 },
	{ "status_allow",	T_STR,	OFF(status_allow), SZ(status_allow), 0, 0 },
	{ "backlog",		T_INT,	OFF(backlog), 0, 1, 65535 },
	{ "shutdown_timeout",	T_TIME,	OFF(shutdown_timeout), 0, 0, 86400000 },
	{ "shutdown_delay",	T_TIME,	OFF(shutdown_delay), 0, 0, 86400000 },
	{ "health_path",	T_STR,	OFF(health_path), SZ(health_path), 0, 0 },
	{ "health_log",		T_BOOL,	OFF(health_log), 0, 0, 1 },
	{ "keepalive_timeout",	T_TIME,	OFF(keepalive_timeout), 0, 0, 3600000 },
	{ "keepalive_requests",	T_INT,	OFF(keepalive_requests), 0, 0, INT_MAX },
	{ "worker_connections",	T_INT,	OFF(worker_connections), 0, 1, 65536 },
	{ "worker_sched_batch",	T_BOOL,	OFF(worker_sched_batch), 0, 0, 1 },
	{ "header_timeout",	T_TIME,	OFF(header_timeout), 0, 1, 3600000 },
	{ "header_timeout_max",	T_TIME,	OFF(header_timeout_max), 0, 1, 3600000 },
	{ "header_timeout_busy", T_TIME, OFF(header_timeout_busy), 0, 0, 3600000 },
	{ "header_min_rate",	T_SIZE,	OFF(header_min_rate), 0, 0, 1 << 30 },
	{ "body_min_rate",	T_SIZE,	OFF(body_min_rate), 0, 0, 1 << 30 },
	{ "send_timeout",	T_TIME,	OFF(send_timeout), 0, 1, 3600000 },
	{ "max_request_line",	T_SIZE,	OFF(max_request_line), 0, 64, 1 << 20 },
	{ "max_header_line",	T_SIZE,	OFF(max_header_line), 0, 64, 1 << 20 },
	{ "max_header_size",	T_SIZE,	OFF(max_header_size), 0, 256, 1 << 20 },
	{ "max_headers",	T_INT,	OFF(max_headers), 0, 1, 1000 },
	{ "max_body_size",	T_SIZE,	OFF(max_body_size), 0, 0, 1LL << 40 },
	{ "index",		T_STR,	OFF(index), SZ(index), 0, 0 },
	{ "mime_types",		T_PATH,	OFF(mime_types), SZ(mime_types), 0, 0 },
	{ "server_tokens",	T_BOOL,	OFF(server_tokens), 0, 0, 1 },
	{ "pidfile",		T_PATH,	OFF(pidfile), SZ(pidfile), 0, 0 },
	{ "error_log",		T_PATH,	OFF(error_log), SZ(error_log), 0, 0 },
	{ "access_log",		T_PATH,	OFF(access_log), SZ(access_log), 0, 0 },
	{ "log_level",		T_LEVEL, OFF(log_level), SZ(log_level), 0, 0 },
	{ "user",		T_STR,	OFF(user), SZ(user), 0, 0 },
	{ "group",		T_STR,	OFF(group), SZ(group), 0, 0 },
	{ "chroot",		T_BOOL,	OFF(chroot), 0, 0, 1 },
	{ "websocket_binary",	T_BOOL,	OFF(ws_binary), 0, 0, 1 },
	{ "websocket_origin",	T_WORDS, OFF(ws_origin), 0, 0, 0 },
	{ "websocket_protocol",	T_WORDS, OFF(ws_protocol), 0, 0, 0 },
	{ "websocket_max_message", T_SIZE, OFF(ws_max_message), 0, 125, 1 << 30 },
	{ "websocket_send_buffer", T_SIZE, OFF(ws_send_buffer), 0, 4096, 1 << 30 },
	{ "websocket_ping_interval", T_TIME, OFF(ws_ping_interval), 0, 0, 86400000 },
	{ "websocket_close_timeout", T_TIME, OFF(ws_close_timeout), 0, 0, 3600000 },
	{ "program_grace",	T_TIME,	OFF(program_grace), 0, 0, 3600000 },
	{ "program_env",	T_WORDS, OFF(program_env), 0, 0, 0 },
	{ "proxy_trusted",	T_WORDS, OFF(proxy_trusted), 0, 0, 0 },
	{ "real_ip_from",	T_WORDS, OFF(real_ip_from), 0, 0, 0 },
	{ "real_ip_header",	T_STR,	OFF(real_ip_header), SZ(real_ip_header), 0, 0 },
	{ "tls_protocols",	T_WORDS, OFF(tls_protocols), 0, 0, 0 },
	{ "tls_ciphers",	T_STR,	OFF(tls_ciphers), SZ(tls_ciphers), 0, 0 },
	{ "tls_handshake_timeout", T_TIME, OFF(tls_handshake_timeout), 0, 1, 3600000 },
	{ "tls_ticket_rotate",	T_TIME,	OFF(tls_ticket_rotate), 0, 60000, 86400000 },
	{ "hsts",		T_WORDS, OFF(hsts), 0, 0, 0 },
	{ "access_log_tls",	T_BOOL,	OFF(access_log_tls), 0, 0, 1 },
	{ "channel_buffer",	T_INT,	OFF(channel_buffer), 0, 1, 65536 },
	{ "channel_handover",	T_BOOL,	OFF(channel_handover), 0, 0, 1 },
	{ "channel_max",	T_INT,	OFF(channel_max), 0, 1, 1 << 20 },
	{ "channel_memory",	T_SIZE,	OFF(channel_memory), 0, 65536, 1LL << 34 },
	{ "channel_max_message", T_SIZE, OFF(channel_max_message), 0, 1, 1 << 24 },
	{ "channel_message_timeout", T_TIME, OFF(channel_message_timeout), 0, 1000, 86400000 * 7 },
	{ "channel_publish",	T_WORDS, OFF(channel_publish), 0, 0, 0 },
	{ "channel_publish_from", T_WORDS, OFF(channel_publish_from), 0, 0, 0 },
};
#undef OFF
#undef SZ
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= sizeof(((struct cfg *)0)->key_line) / sizeof(int),
    "struct cfg key_line[] too small");

void
cfg_defaults(struct cfg *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof(*c));
	strcpy(c->root, "/var/www/html");
	c->workers = (int)(ncpu > 0 ? 2 * ncpu : 2);
	c->min_spare_workers = 1;
	c->max_spare_workers = 0;	/* 0: the same as workers */
	c->max_workers = 0;		/* 0: the same as workers (fixed) */
	strcpy(c->status_path, "off");
	strcpy(c->health_path, "off");
	strcpy(c->status_allow, "127.0.0.0/8 ::1");
	c->backlog = 511;
	c->shutdown_timeout = 30000;
	c->keepalive_timeout = 5000;
	c->keepalive_requests = 1000;
	c->worker_connections = 256;
	c->worker_sched_batch = 1;
	c->header_timeout = 20000;
	/* As mod_reqtimeout's header=20-40,MinRate=500. */
	c->header_timeout_max = 40000;
	c->header_min_rate = 500;
	c->body_min_rate = 500;
	c->header_timeout_busy = 1000;
	c->send_timeout = 60000;
	c->max_request_line = 8192;
	c->max_header_line = 8192;
	c->max_header_size = 32768;
	c->max_headers = 100;
	c->max_body_size = 1 << 20;
	strcpy(c->index, "index.html");
	strcpy(c->mime_types, "/etc/mime.types");
	c->server_tokens = 1;
	strcpy(c->error_log, "syslog");
	strcpy(c->access_log, "off");
	strcpy(c->log_level, "info");
	strcpy(c->ws_origin.buf, "same");
	c->ws_origin.n = 1;
	c->ws_max_message = 1 << 20;
	c->ws_send_buffer = 256 * 1024;
	c->ws_ping_interval = 30000;
	c->ws_close_timeout = 5000;
	c->program_grace = 1000;
	strcpy(c->real_ip_header, "X-Forwarded-For");
	memcpy(c->tls_protocols.buf, "TLSv1.2\0TLSv1.3", 16);
	c->tls_protocols.n = 2;
	/*
	 * Mozilla's "intermediate" suites (TLS 1.2), in our order: the
	 * server's preference decides (see common/tls.c).
	 */
	strcpy(c->tls_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:"
	    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
	    "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:"
	    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305");
	c->tls_handshake_timeout = 10000;
	c->tls_ticket_rotate = 3600000;
	strcpy(c->hsts.buf, "off");
	c->hsts.n = 1;
	c->channel_buffer = 100;
	c->channel_handover = 1;
	c->channel_max = 1024;
	c->channel_memory = 16 << 20;
	c->channel_max_message = 64 * 1024;
	c->channel_message_timeout = 3600000;
	strcpy(c->channel_publish.buf, "post");
	c->channel_publish.n = 1;
}

/* Parse a decimal number with an optional unit from units[]. */
static int
parse_scaled(const char *s, const char *const *units, const long long *mult,
    long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	if (*end == '\0') {
		*out = v * mult[0];
		return 0;
	}
	for (size_t i = 1; units[i] != NULL; i++)
		if (strcmp(end, units[i]) == 0) {
			if (v > LLONG_MAX / mult[i])
				return -1;
			*out = v * mult[i];
			return 0;
		}
	return -1;
}

static int
parse_time(const char *s, int *ms)
{
	static const char *const units[] = { "", "ms", "s", "m", "h", NULL };
	static const long long mult[] = { 1000, 1, 1000, 60000, 3600000 };
	long long v;

	if (parse_scaled(s, units, mult, &v) == -1 || v > INT_MAX)
		return -1;
	*ms = (int)v;
	return 0;
}

static int
parse_size(const char *s, size_t *sz)
{
	static const char *const units[] = { "", "k", "m", "g", NULL };
	static const long long mult[] = { 1, 1024, 1 << 20, 1 << 30 };
	long long v;

	if (parse_scaled(s, units, mult, &v) == -1)
		return -1;
	*sz = (size_t)v;
	return 0;
}

static int
parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static const struct cfg_key *
find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

const char *
cfg_word(const struct cfg_words *w, int i)
{
	const char *p = w->buf;

	if (i < 0 || i >= w->n)
		return NULL;
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

/*
 * Split s into words: blanks between them, a word may be double-quoted
 * (with \" and \\ escapes) to hold blanks.  -1 with a message.
 */
static int
split_words(const char *name, const char *s, struct cfg_words *w, char *err,
    size_t errlen)
{
	size_t n = 0;

	w->n = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (*s == '"') {
			for (s++; *s != '"'; s++) {
				if (*s == '\0') {
					snprintf(err, errlen, "%s: unterminated "
					    "quoted word", name);
					return -1;
				}
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				if (n + 2 > sizeof(w->buf))
					goto long_;
				w->buf[n++] = *s;
			}
			s++;
		} else
			for (; *s != '\0' && *s != ' ' && *s != '\t'; s++) {
				if (n + 2 > sizeof(w->buf))
					goto long_;
				w->buf[n++] = *s;
			}
		if (n + 1 > sizeof(w->buf))	/* an empty "" at the end */
			goto long_;
		w->buf[n++] = '\0';
		w->n++;
	}
	if (w->n == 0) {
		snprintf(err, errlen, "%s: missing value", name);
		return -1;
	}
	return 0;
long_:
	snprintf(err, errlen, "%s: too long a value (at most %zu bytes)", name,
	    sizeof(w->buf) - 1);
	return -1;
}

/* "ADDR:PORT [proxy_protocol] [tls | redirect_https]". */
static int
add_listen(struct cfg *c, const char *val, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct cfg_words w;
	const char *addr, *opt;
	int proxy = 0, tls = 0, redirect = 0;

	if (split_words("listen", val, &w, err, errlen) == -1)
		return -1;
	addr = cfg_word(&w, 0);
	for (int i = 1; (opt = cfg_word(&w, i)) != NULL; i++) {
		if (strcmp(opt, "proxy_protocol") == 0)
			proxy = 1;
		else if (strcmp(opt, "tls") == 0)
			tls = 1;
		else if (strcmp(opt, "redirect_https") == 0)
			redirect = 1;
		else {
			snprintf(err, errlen, "listen: unknown option '%s' "
			    "(expected proxy_protocol, tls or redirect_https)",
			    opt);
			return -1;
		}
	}
	if (tls && redirect) {
		snprintf(err, errlen, "listen: tls and redirect_https exclude "
		    "each other (redirect_https is for a plain listener)");
		return -1;
	}
	if (sock_parse(addr, &ss) == -1) {
		snprintf(err, errlen, "listen: invalid address '%s' "
		    "(expected ADDR:PORT or [ADDR6]:PORT)", addr);
		return -1;
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		struct sockaddr_storage other;

		if (sock_parse(c->listen[i], &other) == 0 &&
		    sock_same(&ss, &other)) {
			snprintf(err, errlen, "listen: duplicate address '%s'",
			    addr);
			return -1;
		}
	}
	if (c->nlisten == CFG_MAX_LISTEN) {
		snprintf(err, errlen, "listen: more than %d addresses",
		    CFG_MAX_LISTEN);
		return -1;
	}
	if (strlen(addr) >= CFG_STR) {
		snprintf(err, errlen, "listen: address too long");
		return -1;
	}
	c->listen_line[c->nlisten] = c->cur_line;
	c->listen_proxy[c->nlisten] = proxy;
	c->listen_tls[c->nlisten] = tls;
	c->listen_redirect[c->nlisten] = redirect;
	strlcpy(c->listen[c->nlisten++], addr, CFG_STR);
	return 0;
}

/* "websocket PATH PROGRAM [ARG ...]"; checked further by cfg_validate. */
static int
add_ws(struct cfg *c, const char *val, char *err, size_t errlen)
{
	struct cfg_words w;
	struct cfg_ws *ws;
	const char *path;
	size_t skip;

	if (split_words("websocket", val, &w, err, errlen) == -1)
		return -1;
	if (w.n < 2) {
		snprintf(err, errlen, "websocket: expected PATH PROGRAM "
		    "[ARG ...]");
		return -1;
	}
	path = w.buf;
	/* "/x/" and "/x" mean the same: kept without a trailing slash. */
	if ((skip = strlen(path)) > 1 && path[skip - 1] == '/')
		w.buf[skip - 1] = '\0';
	if (path[0] != '/' || strlen(path) >= CFG_STR ||
	    strpbrk(path, "?#%") != NULL) {
		snprintf(err, errlen, "websocket: invalid path '%s' (expected "
		    "a URL path starting with /, without ?, # or %%)", path);
		return -1;
	}
	for (size_t i = 0; i < c->nws; i++)
		if (strcmp(c->ws[i].path, path) == 0) {
			snprintf(err, errlen, "websocket: duplicate path '%s'",
			    path);
			return -1;
		}
	if (c->nws == CFG_MAX_WS) {
		snprintf(err, errlen, "websocket: more than %d paths",
		    CFG_MAX_WS);
		return -1;
	}
	ws = &c->ws[c->nws];
	strlcpy(ws->path, path, sizeof(ws->path));
	skip += 1;
	memcpy(ws->argv.buf, w.buf + skip, sizeof(w.buf) - skip);
	ws->argv.n = w.n - 1;
	ws->line = c->cur_line;
	c->nws++;
	return 0;
}

/* "channel PREFIX": the URLs under it are channels. */
static int
add_channel(struct cfg *c, const char *val, char *err, size_t errlen)
{
	char p[CFG_STR];
	size_t n;

	if (strlcpy(p, val, sizeof(p)) >= sizeof(p)) {
		snprintf(err, errlen, "channel: path too long");
		return -1;
	}
	if ((n = strlen(p)) > 1 && p[n - 1] == '/')
		p[n - 1] = '\0';
	if (p[0] != '/' || strlen(p) < 2 || strpbrk(p, "?#% \t") != NULL) {
		snprintf(err, errlen, "channel: invalid prefix '%s' (expected "
		    "a URL path such as /chat, not /, without ?, # or %%)", val);
		return -1;
	}
	for (size_t i = 0; i < c->nchannel; i++)
		if (strcmp(c->channel[i], p) == 0) {
			snprintf(err, errlen, "channel: duplicate prefix '%s'",
			    p);
			return -1;
		}
	if (c->nchannel == CFG_MAX_CHANNELS) {
		snprintf(err, errlen, "channel: more than %d prefixes",
		    CFG_MAX_CHANNELS);
		return -1;
	}
	c->channel_line[c->nchannel] = c->cur_line;
	strlcpy(c->channel[c->nchannel++], p, CFG_STR);
	return 0;
}

/* "tls_certificate FILE [NAME ...]": a certificate, its SNI names. */
static int
add_cert(struct cfg *c, const char *val, char *err, size_t errlen)
{
	struct cfg_words w;
	struct cfg_cert *ct;
	size_t skip;

	if (split_words("tls_certificate", val, &w, err, errlen) == -1)
		return -1;
	if (c->ncerts == CFG_MAX_CERTS) {
		snprintf(err, errlen, "tls_certificate: more than %d "
		    "certificates", CFG_MAX_CERTS);
		return -1;
	}
	ct = &c->certs[c->ncerts];
	if (strlcpy(ct->cert, w.buf, sizeof(ct->cert)) >= sizeof(ct->cert)) {
		snprintf(err, errlen, "tls_certificate: path too long");
		return -1;
	}
	skip = strlen(w.buf) + 1;
	memcpy(ct->names.buf, w.buf + skip, sizeof(w.buf) - skip);
	ct->names.n = w.n - 1;
	ct->key[0] = '\0';
	ct->line = c->cur_line;
	ct->key_line = 0;
	c->ncerts++;
	return 0;
}

/* "tls_key FILE": the key of the tls_certificate just before. */
static int
add_key(struct cfg *c, const char *val, char *err, size_t errlen)
{
	struct cfg_cert *ct = c->ncerts > 0 ? &c->certs[c->ncerts - 1] : NULL;

	if (ct == NULL || ct->key[0] != '\0') {
		snprintf(err, errlen, "tls_key: expected after its "
		    "tls_certificate line (one key each)");
		return -1;
	}
	if (*val == '\0' || strlcpy(ct->key, val, sizeof(ct->key)) >=
	    sizeof(ct->key)) {
		snprintf(err, errlen, "tls_key: %s path", *val ? "too long a" :
		    "empty");
		ct->key[0] = '\0';
		return -1;
	}
	ct->key_line = c->cur_line;
	return 0;
}

int
cfg_set(struct cfg *c, const char *name, const char *val, char *err,
    size_t errlen)
{
	const struct cfg_key *k;
	char *base = (char *)c;
	enum log_level lvl;
	long long v = 0;
	int iv;
	size_t sv;

	if (strcmp(name, "listen") == 0)
		return add_listen(c, val, err, errlen);
	if (strcmp(name, "websocket") == 0)
		return add_ws(c, val, err, errlen);
	if (strcmp(name, "tls_certificate") == 0)
		return add_cert(c, val, err, errlen);
	if (strcmp(name, "channel") == 0)
		return add_channel(c, val, err, errlen);
	if (strcmp(name, "tls_key") == 0)
		return add_key(c, val, err, errlen);
	if ((k = find_key(name)) == NULL) {
		snprintf(err, errlen, "unknown keyword '%s'", name);
		return -1;
	}
	c->key_line[k - keys] = c->cur_line;
	switch (k->type) {
	case T_INT:
		if (parse_int(val, (int)k->min, (int)k->max, &iv) == -1)
			goto bad;
		v = iv;
		break;
	case T_TIME:
		if (parse_time(val, &iv) == -1)
			goto bad;
		v = iv;
		break;
	case T_SIZE:
		if (parse_size(val, &sv) == -1)
			goto bad;
		v = (long long)sv;
		break;
	case T_BOOL:
		if (strcmp(val, "on") == 0 || strcmp(val, "yes") == 0)
			v = 1;
		else if (strcmp(val, "off") == 0 || strcmp(val, "no") == 0)
			v = 0;
		else
			goto bad;
		break;
	case T_WORDS:
		return split_words(name, val,
		    (struct cfg_words *)(void *)(base + k->off), err, errlen);
	case T_LEVEL:
		if (log_level_parse(val, &lvl) == -1) {
			snprintf(err, errlen, "%s: invalid value '%s' (expected "
			    "error, warn, info or debug)", name, val);
			return -1;
		}
		/* FALLTHROUGH */
	case T_STR:
	case T_PATH:
		if (*val == '\0' || strlen(val) >= k->len) {
			snprintf(err, errlen, "%s: %s value", name,
			    *val ? "too long a" : "empty");
			return -1;
		}
		strlcpy(base + k->off, val, k->len);
		return 0;
	}
	if (k->type != T_BOOL && (v < k->min || v > k->max))
		goto range;
	if (k->type == T_SIZE)
		*(size_t *)(void *)(base + k->off) = (size_t)v;
	else
		*(int *)(void *)(base + k->off) = (int)v;
	return 0;
bad:
	if (k->type == T_TIME)
		snprintf(err, errlen, "%s: invalid time '%s' (expected a number "
		    "with an optional unit ms, s, m or h)", name, val);
	else if (k->type == T_SIZE)
		snprintf(err, errlen, "%s: invalid size '%s' (expected a number "
		    "with an optional unit k, m or g)", name, val);
	else if (k->type == T_BOOL)
		snprintf(err, errlen, "%s: invalid value '%s' (expected on or "
		    "off)", name, val);
	else
		goto range;
	return -1;
range:
	snprintf(err, errlen, "%s: invalid value '%s' (expected %lld to %lld)",
	    name, val, k->min, k->max);
	return -1;
}

const char *
cfg_where(const struct cfg *c, const char *key, size_t i)
{
	static char buf[PATH_MAX + 32];
	const struct cfg_key *k;
	int line;

	if (strcmp(key, "listen") == 0)
		line = i < c->nlisten ? c->listen_line[i] : 0;
	else if (strcmp(key, "websocket") == 0)
		line = i < c->nws ? c->ws[i].line : 0;
	else if (strcmp(key, "tls_certificate") == 0)
		line = i < c->ncerts ? c->certs[i].line : 0;
	else if (strcmp(key, "channel") == 0)
		line = i < c->nchannel ? c->channel_line[i] : 0;
	else if (strcmp(key, "tls_key") == 0)
		line = i < c->ncerts ? c->certs[i].key_line : 0;
	else
		line = (k = find_key(key)) ? c->key_line[k - keys] : 0;
	if (line == 0 || c->file[0] == '\0')
		return "";
	snprintf(buf, sizeof(buf), "%s:%d: ", c->file, line);
	return buf;
}

/* Keywords whose value is a list of words (split by split_words). */
static int
words_key(const char *key)
{
	const struct cfg_key *k;

	return strcmp(key, "websocket") == 0 || strcmp(key, "listen") == 0 ||
	    strcmp(key, "tls_certificate") == 0 ||
	    ((k = find_key(key)) != NULL && k->type == T_WORDS);
}

/* The value is the rest of the line, up to a '#' outside quotes. */
static int
rest_of_line(const char *key, char *p, char **val, char *err, size_t errlen)
{
	char *end;
	int quoted = 0;

	*val = p;
	for (end = p; *end != '\0' && (quoted || *end != '#'); end++) {
		if (quoted && *end == '\\' && end[1] != '\0')
			end++;
		else if (*end == '"')
			quoted = !quoted;
	}
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	if (*p == '\0') {
		snprintf(err, errlen, "%s: missing value", key);
		return -1;
	}
	return 1;
}

/*
 * Split one line into keyword and value.  The value is the rest of the
 * line, or a double-quoted string with \" and \\ escapes; '#' starts a
 * comment outside quotes.  Returns 0 for a blank line, 1 for a setting,
 * -1 with a message.
 */
static int
split_line(char *line, char **key, char **val, char *err, size_t errlen)
{
	char *p = line, *q;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while ((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'))
		p++;
	if (p == *key || (*p != ' ' && *p != '\t' && *p != '\0' && *p != '#')) {
		snprintf(err, errlen, "expected a keyword (lower case, '_') at "
		    "the start of the line");
		return -1;
	}
	if (*p != '\0' && *p != '#')
		*p++ = '\0';
	else {
		*p = '\0';
		snprintf(err, errlen, "%s: missing value", *key);
		return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (words_key(*key))
		return rest_of_line(*key, p, val, err, errlen);
	if (*p == '"') {
		*val = q = ++p;
		for (; *p != '"'; p++, q++) {
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			else if (*p == '\0') {
				snprintf(err, errlen, "%s: unterminated quoted "
				    "value", *key);
				return -1;
			}
			*q = *p;
		}
		*q = '\0';
		p++;
	} else {
		*val = p;
		while (*p != '\0' && *p != '#' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (**val == '\0' && p[-1] != '"') {
		snprintf(err, errlen, "%s: missing value", *key);
		return -1;
	}
	if (*p != '\0' && *p != '#') {
		snprintf(err, errlen, "%s: unexpected '%s' after the value "
		    "(quote values that contain spaces)", *key, p);
		return -1;
	}
	return 1;
}

int
cfg_load(struct cfg *c, const char *path, char *err, size_t errlen)
{
	FILE *f;
	int rc;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = cfg_read(c, f, path, err, errlen);
	fclose(f);
	return rc;
}

int
cfg_read(struct cfg *c, FILE *f, const char *path, char *err, size_t errlen)
{
	/* The line each keyword was set on: a second setting is an error. */
	int seen[NKEYS] = { 0 };
	char *line = NULL, *key, *val, msg[512];
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;

	if ((size_t)snprintf(c->file, sizeof(c->file), "%s", path) >=
	    sizeof(c->file))
		c->file[0] = '\0';
	while ((n = getline(&line, &cap, f)) != -1) {
		const struct cfg_key *k;

		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(msg, sizeof(msg), "NUL byte in line");
			goto bad;
		}
		if ((rc = split_line(line, &key, &val, msg, sizeof(msg))) == 0)
			continue;
		if (rc == -1)
			goto bad;
		if ((k = find_key(key)) != NULL) {
			size_t i = (size_t)(k - keys);

			if (seen[i]) {
				snprintf(msg, sizeof(msg), "%s: already set on "
				    "line %d", key, seen[i]);
				goto bad;
			}
			seen[i] = lineno;
		}
		c->cur_line = lineno;
		rc = cfg_set(c, key, val, msg, sizeof(msg));
		c->cur_line = 0;
		if (rc == -1)
			goto bad;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
		goto out;
	}
	rc = 0;
	goto out;
bad:
	snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
	rc = -1;
out:
	free(line);
	return rc;
}

/* PROGRAM of websocket line i: absolute, a regular executable file. */
static int
validate_program(const struct cfg *c, size_t i, char *err, size_t errlen)
{
	const char *prog = c->ws[i].argv.buf, *why = NULL;
	char full[PATH_MAX];
	struct stat st;

	if (prog[0] != '/') {
		snprintf(err, errlen, "%swebsocket: program '%s' must be an "
		    "absolute path", cfg_where(c, "websocket", i), prog);
		return -1;
	}
	/* With chroot, the workers (and their programs) see root as /. */
	if ((size_t)snprintf(full, sizeof(full), "%s%s", c->chroot ? c->root :
	    "", prog) >= sizeof(full)) {
		snprintf(err, errlen, "%swebsocket: program path too long",
		    cfg_where(c, "websocket", i));
		return -1;
	}
	if (stat(full, &st) == -1)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode) || access(full, X_OK) == -1)
		why = "not an executable file";
	if (why != NULL) {
		snprintf(err, errlen, "%swebsocket: program %s: %s",
		    cfg_where(c, "websocket", i), full, why);
		return -1;
	}
	return 0;
}

static int
valid_env_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' &&
		    s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_'))
			return 0;
	return 1;
}

/* The websocket lines, the origins and program_env. */
static int
validate_ws(struct cfg *c, char *err, size_t errlen)
{
	const char *w;

	for (size_t i = 0; i < c->nws; i++)
		if (validate_program(c, i, err, errlen) == -1)
			return -1;
	for (int i = 0; (w = cfg_word(&c->ws_origin, i)) != NULL; i++)
		if ((strcmp(w, "any") == 0 || strcmp(w, "same") == 0) ?
		    c->ws_origin.n > 1 : strstr(w, "://") == NULL) {
			snprintf(err, errlen, "%swebsocket_origin: '%s' (expected "
			    "any, same, or origins such as "
			    "https://example.com)", cfg_where(c,
			    "websocket_origin", 0), w);
			return -1;
		}
	for (int i = 0; (w = cfg_word(&c->program_env, i)) != NULL; i++) {
		const char *eq = strchr(w, '=');

		if (!valid_env_name(w, eq ? (size_t)(eq - w) : strlen(w))) {
			snprintf(err, errlen, "%sprogram_env: '%s' (expected "
			    "NAME or NAME=VALUE)", cfg_where(c, "program_env",
			    0), w);
			return -1;
		}
	}
	return 0;
}

/* A list keyword of addresses and prefixes into acl. */
static int
words_acl(const struct cfg *c, const char *key, const struct cfg_words *w,
    struct acl *acl, char *err, size_t errlen)
{
	char list[CFG_WORDS + 1] = "", msg[CFG_STR + 64];
	const char *word;

	for (int i = 0; (word = cfg_word(w, i)) != NULL; i++) {
		strlcat(list, word, sizeof(list));
		strlcat(list, " ", sizeof(list));
	}
	if (acl_parse(list, acl, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s%s: %s", cfg_where(c, key, 0), key,
		    msg);
		return -1;
	}
	return 0;
}

/* The PROXY protocol and the forwarding headers: whom to believe. */
static int
validate_real_ip(struct cfg *c, char *err, size_t errlen)
{
	static const char *const names[] = { "X-Forwarded-For", "Forwarded",
		"X-Real-IP" };
	size_t i;

	if (words_acl(c, "proxy_trusted", &c->proxy_trusted, &c->proxy_acl,
	    err, errlen) == -1 || words_acl(c, "real_ip_from",
	    &c->real_ip_from, &c->real_ip_acl, err, errlen) == -1)
		return -1;
	for (i = 0; i < c->nlisten; i++)
		if (c->listen_proxy[i] && c->proxy_acl.n == 0) {
			snprintf(err, errlen, "%slisten %s proxy_protocol: needs "
			    "proxy_trusted (the addresses allowed to send the "
			    "PROXY header)", cfg_where(c, "listen", i),
			    c->listen[i]);
			return -1;
		}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(c->real_ip_header, names[i]) == 0) {
			c->real_ip = (enum cfg_real_ip)i;
			return 0;
		}
	snprintf(err, errlen, "%sreal_ip_header: '%s' (expected "
	    "X-Forwarded-For, Forwarded or X-Real-IP)",
	    cfg_where(c, "real_ip_header", 0), c->real_ip_header);
	return -1;
}

/* Channel prefixes apart from websocket paths; how and who may publish. */
static int
validate_channels(struct cfg *c, char *err, size_t errlen)
{
	const char *word;

	c->channel_post = c->channel_ws = 0;
	for (int i = 0; (word = cfg_word(&c->channel_publish, i)) != NULL;
	    i++) {
		if (strcmp(word, "post") == 0)
			c->channel_post = 1;
		else if (strcmp(word, "websocket") == 0)
			c->channel_ws = 1;
		else {
			snprintf(err, errlen, "%schannel_publish: '%s' "
			    "(expected post and/or websocket)", cfg_where(c,
			    "channel_publish", 0), word);
			return -1;
		}
	}
	for (size_t i = 0; i < c->nchannel; i++)
		for (size_t j = 0; j < c->nws; j++) {
			size_t n = strlen(c->ws[j].path);
			const char *p = c->channel[i];

			if (strncmp(p, c->ws[j].path, n) == 0 && (p[n] == '\0' ||
			    p[n] == '/' || n == 1)) {
				snprintf(err, errlen, "%schannel: '%s' is under "
				    "the websocket path %s", cfg_where(c,
				    "channel", i), p, c->ws[j].path);
				return -1;
			}
		}
	if (c->channel_max_message > c->channel_memory / 4) {
		snprintf(err, errlen, "%schannel_max_message: %zu is more than "
		    "a quarter of channel_memory (%zu)", cfg_where(c,
		    "channel_max_message", 0), c->channel_max_message,
		    c->channel_memory);
		return -1;
	}
	return c->channel_publish_from.n == 0 ? 0 : words_acl(c,
	    "channel_publish_from", &c->channel_publish_from,
	    &c->channel_publish_acl, err, errlen);
}

/* health_path: off, or a path of its own (not the status page's). */
static int
validate_health(const struct cfg *c, char *err, size_t errlen)
{
	const char *p = c->health_path, *why = NULL;

	if (strcmp(p, "off") == 0)
		return 0;
	if (p[0] != '/' || strpbrk(p, "?#") != NULL)
		why = "must be off or a path starting with /, without ? or #";
	else if (strcmp(p, c->status_path) == 0)
		why = "is the status_path too";
	for (size_t i = 0; why == NULL && i < c->nws; i++) {
		size_t n = strlen(c->ws[i].path);

		/* A websocket PATH takes the paths under it as well. */
		if (strncmp(p, c->ws[i].path, n) == 0 && (p[n] == '\0' ||
		    p[n] == '/' || n == 1))
			why = "is a websocket path too";
	}
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "%shealth_path: '%s' %s",
	    cfg_where(c, "health_path", 0), p, why);
	return -1;
}

/* "hsts DURATION [includeSubDomains] [preload]" into its header. */
static int
validate_hsts(struct cfg *c, char *err, size_t errlen)
{
	/* In seconds, as max-age is: a year does not fit in an int of ms. */
	static const char *const units[] = { "", "s", "m", "h", "d", "y",
		NULL };
	static const long long mult[] = { 1, 1, 60, 3600, 86400, 31536000 };
	const char *w = cfg_word(&c->hsts, 0);
	long long secs;

	c->hsts_header[0] = '\0';
	if (strcmp(w, "off") == 0 && c->hsts.n == 1)
		return 0;
	if (parse_scaled(w, units, mult, &secs) == -1)
		goto bad;
	snprintf(c->hsts_header, sizeof(c->hsts_header),
	    "Strict-Transport-Security: max-age=%lld", secs);
	/* Each directive once (RFC 6797 6.1: a repeated one voids it all). */
	for (int i = 1, seen = 0; (w = cfg_word(&c->hsts, i)) != NULL; i++) {
		int bit = strcasecmp(w, "preload") == 0 ? 1 :
		    strcasecmp(w, "includeSubDomains") == 0 ? 2 : 0;

		if (bit == 0 || (seen & bit))
			goto bad;
		seen |= bit;
		strlcat(c->hsts_header, bit == 1 ? "; preload" :
		    "; includeSubDomains", sizeof(c->hsts_header));
	}
	strlcat(c->hsts_header, "\r\n", sizeof(c->hsts_header));
	return 0;
bad:
	snprintf(err, errlen, "%shsts: '%s' (expected off, or a max-age "
	    "with an optional unit s, m, h, d or y, then includeSubDomains "
	    "and/or preload, each once)", cfg_where(c, "hsts", 0), w);
	return -1;
}

/* The tls and redirect_https listeners, tls_protocols, hsts. */
static int
validate_tls(struct cfg *c, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	const char *w;
	size_t i, redirect = CFG_MAX_LISTEN;

	for (int j = 0; (w = cfg_word(&c->tls_protocols, j)) != NULL; j++)
		if (strcmp(w, "TLSv1.2") != 0 && strcmp(w, "TLSv1.3") != 0) {
			snprintf(err, errlen, "%stls_protocols: '%s' (expected "
			    "TLSv1.2 and/or TLSv1.3)", cfg_where(c,
			    "tls_protocols", 0), w);
			return -1;
		}
	c->https_port = 0;
	for (i = 0; i < c->nlisten; i++) {
		if (c->listen_redirect[i] && redirect == CFG_MAX_LISTEN)
			redirect = i;
		if (!c->listen_tls[i])
			continue;
		if (c->ncerts == 0) {
			snprintf(err, errlen, "%slisten %s tls: needs a "
			    "tls_certificate", cfg_where(c, "listen", i),
			    c->listen[i]);
			return -1;
		}
		if (c->https_port == 0 && sock_parse(c->listen[i], &ss) == 0)
			c->https_port = ntohs(ss.ss_family == AF_INET6 ?
			    ((struct sockaddr_in6 *)&ss)->sin6_port :
			    ((struct sockaddr_in *)&ss)->sin_port);
		if (c->https_port == 0)
			c->https_port = -1;	/* port 0: chosen at the bind */
	}
	if (redirect != CFG_MAX_LISTEN && c->https_port <= 0) {
		snprintf(err, errlen, "%slisten %s redirect_https: needs a tls "
		    "listener %sto send clients to", cfg_where(c, "listen",
		    redirect), c->listen[redirect], c->https_port == -1 ?
		    "with a port of its own (not 0) " : "");
		return -1;
	}
	return validate_hsts(c, err, errlen);
}

int
cfg_validate(struct cfg *c, char *err, size_t errlen)
{
	struct stat st;
	char msg[CFG_STR + 64];	/* names the bad token */

	if (c->nlisten == 0 && add_listen(c, "0.0.0.0:80", err, errlen))
		return -1;
	if (c->root[0] != '/') {
		char cwd[PATH_MAX], abs[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL ||
		    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, c->root)
		    >= sizeof(abs)) {
			snprintf(err, errlen, "root: path too long");
			return -1;
		}
		strlcpy(c->root, abs, sizeof(c->root));
	}
	if (stat(c->root, &st) == -1) {
		snprintf(err, errlen, "%sroot: %s: %s", cfg_where(c, "root", 0),
		    c->root, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%sroot: %s: not a directory",
		    cfg_where(c, "root", 0), c->root);
		return -1;
	}
	if (strchr(c->index, '/') != NULL) {
		snprintf(err, errlen, "%sindex: '%s' must be a file name, "
		    "not a path", cfg_where(c, "index", 0), c->index);
		return -1;
	}
	if (c->max_workers == 0)
		c->max_workers = c->workers;
	if (c->max_spare_workers == 0)
		c->max_spare_workers = c->workers;
	if (c->max_workers < c->workers) {
		snprintf(err, errlen, "%smax_workers: %d is less than workers "
		    "(%d)", cfg_where(c, "max_workers", 0), c->max_workers,
		    c->workers);
		return -1;
	}
	if (c->min_spare_workers > c->max_spare_workers) {
		snprintf(err, errlen, "%smin_spare_workers: %d is more than "
		    "max_spare_workers (%d)", cfg_where(c, "min_spare_workers",
		    0), c->min_spare_workers, c->max_spare_workers);
		return -1;
	}
	if (strcmp(c->status_path, "off") != 0 && c->status_path[0] != '/') {
		snprintf(err, errlen, "%sstatus_path: '%s' must be off or "
		    "start with /", cfg_where(c, "status_path", 0),
		    c->status_path);
		return -1;
	}
	if (validate_health(c, err, errlen) == -1)
		return -1;
	if (acl_parse(c->status_allow, &c->status_acl, msg, sizeof(msg))
	    == -1) {
		snprintf(err, errlen, "%sstatus_allow: %s",
		    cfg_where(c, "status_allow", 0), msg);
		return -1;
	}
	if (validate_ws(c, err, errlen) == -1 ||
	    validate_real_ip(c, err, errlen) == -1 ||
	    validate_tls(c, err, errlen) == -1 ||
	    validate_channels(c, err, errlen) == -1)
		return -1;
	if (c->group[0] != '\0' && c->user[0] == '\0') {
		snprintf(err, errlen, "%sgroup: needs a user as well",
		    cfg_where(c, "group", 0));
		return -1;
	}
	return 0;
}
