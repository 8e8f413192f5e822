/* Configuration: every setting, its default, parsing and validation. */
#ifndef CFG_H
#define CFG_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include "acl.h"

#define CFG_MAX_LISTEN	16
#define CFG_STR		256
#define CFG_MAX_WS	16	/* websocket lines */
#define CFG_WORDS	1024	/* a list of words, NUL-separated */
#define CFG_MAX_CERTS	16	/* tls_certificate lines */
#define CFG_MAX_CHANNELS 16	/* channel lines */

/* Words of a list keyword: each NUL-terminated, one after the other. */
struct cfg_words {
	char	buf[CFG_WORDS];
	int	n;
};

/* real_ip_header: the forwarding header a trusted peer's client is in. */
enum cfg_real_ip { REAL_IP_XFF, REAL_IP_FORWARDED, REAL_IP_XREALIP };

/* One "websocket PATH PROGRAM [ARG ...]" line. */
struct cfg_ws {
	char		 path[CFG_STR];
	struct cfg_words argv;		/* PROGRAM and its arguments */
	int		 line;
};

/* One "tls_certificate FILE [NAME ...]" line and its tls_key. */
struct cfg_cert {
	char		 cert[PATH_MAX];	/* PEM: the leaf, then the chain */
	char		 key[PATH_MAX];		/* "": in cert's file */
	struct cfg_words names;		/* SNI names; n 0: the SAN's */
	int		 line, key_line;
};

struct tls_server;

struct cfg {
	char	listen[CFG_MAX_LISTEN][CFG_STR];
	size_t	nlisten;
	int	listen_proxy[CFG_MAX_LISTEN];	/* proxy_protocol on listen i */
	int	listen_tls[CFG_MAX_LISTEN];	/* tls on listen i */
	int	listen_redirect[CFG_MAX_LISTEN];	/* redirect_https */
	char	root[PATH_MAX];
	int	workers;		/* at start; fixed unless max_workers */
	int	min_spare_workers;
	int	max_spare_workers;
	int	max_workers;		/* > workers: a dynamic pool */
	int	max_requests;		/* recycle a worker after; 0: never */
	int	max_requests_jitter;
	int	request_timeout;	/* ms; 0: off */
	char	status_path[CFG_STR];	/* "off", or a URL path */
	char	status_allow[CFG_STR];	/* addresses/prefixes, spaces between */
	struct acl status_acl;		/* status_allow, parsed by cfg_validate */
	int	backlog;
	int	shutdown_timeout;	/* ms */
	int	shutdown_delay;		/* ms: lame duck before a stop; 0: none */
	char	health_path[CFG_STR];	/* "off", or a URL path */
	int	health_log;		/* health checks in the access log */
	int	keepalive_timeout;	/* ms */
	int	keepalive_requests;
	int	worker_connections;	/* open connections per worker */
	int	worker_sched_batch;	/* workers under SCHED_BATCH */
	int	header_timeout;		/* ms */
	int	header_timeout_max;	/* ms; min_rate extends up to this */
	int	header_timeout_busy;	/* ms; 0: off; while clients queue */
	size_t	header_min_rate;	/* bytes/s; 0: no extension */
	size_t	body_min_rate;		/* bytes/s, discarded bodies */
	int	send_timeout;		/* ms */
	size_t	max_request_line;
	size_t	max_header_line;	/* one header line */
	size_t	max_header_size;	/* whole head */
	int	max_headers;
	size_t	max_body_size;		/* body discarded on GET/HEAD */
	char	index[CFG_STR];
	char	mime_types[PATH_MAX];
	int	server_tokens;
	char	pidfile[PATH_MAX];
	char	error_log[PATH_MAX];	/* a path, "syslog", "stderr", "off" */
	char	access_log[PATH_MAX];	/* a path, or "off" */
	char	log_level[16];
	char	user[CFG_STR];
	char	group[CFG_STR];
	int	chroot;			/* chroot(2) to root after binding */
	int	foreground;
	/* WebSocket sessions and their programs (doc/design.md 10). */
	struct cfg_ws ws[CFG_MAX_WS];
	size_t	nws;
	int	ws_binary;
	struct cfg_words ws_origin;	/* any, same, or origins */
	struct cfg_words ws_protocol;
	size_t	ws_max_message;
	size_t	ws_send_buffer;
	int	ws_ping_interval;	/* ms; 0: off */
	int	ws_close_timeout;	/* ms */
	int	program_grace;		/* ms */
	struct cfg_words program_env;
	/* Real client addresses: the PROXY protocol, forwarding headers. */
	struct cfg_words proxy_trusted;	/* may send a PROXY header */
	struct acl proxy_acl;		/* proxy_trusted, by cfg_validate */
	struct cfg_words real_ip_from;	/* whose forwarding header counts */
	struct acl real_ip_acl;		/* real_ip_from, by cfg_validate */
	char	real_ip_header[CFG_STR];
	enum cfg_real_ip real_ip;	/* real_ip_header, by cfg_validate */
	/* TLS (doc/design.md 12). */
	int	https_port;		/* the first tls listener's port */
	struct cfg_cert certs[CFG_MAX_CERTS];
	size_t	ncerts;
	struct cfg_words tls_protocols;	/* TLSv1.2 and/or TLSv1.3 */
	char	tls_ciphers[1024];	/* TLS 1.2 cipher list */
	int	tls_handshake_timeout;	/* ms */
	int	tls_ticket_rotate;	/* ms: a new session-ticket key */
	struct cfg_words hsts;		/* off, or DURATION [options] */
	char	hsts_header[CFG_STR];	/* by cfg_validate; "": none */
	int	access_log_tls;		/* protocol and cipher in the log */
	/* Channels (doc/design.md 13). */
	char	channel[CFG_MAX_CHANNELS][CFG_STR];	/* URL prefixes */
	int	channel_line[CFG_MAX_CHANNELS];
	int	channel_message_timeout;	/* ms */
	size_t	nchannel;
	size_t	channel_memory;
	size_t	channel_max_message;
	int	channel_buffer;
	int	channel_handover;	/* a reload passes SSE sockets on */
	int	channel_max;
	struct cfg_words channel_publish;	/* post and/or websocket */
	int	channel_post;		/* by cfg_validate: POST publishes */
	int	channel_ws;		/* a WebSocket subscriber's message does */
	struct cfg_words channel_publish_from;
	struct acl channel_publish_acl;	/* by cfg_validate; n 0: anyone */
	/*
	 * The contexts built from certs by the master (tls_load()), owned
	 * by whoever owns the configuration; NULL without a tls listener.
	 */
	struct tls_server *tls;
	char	file[PATH_MAX];		/* configuration file, if any */
	/* Where each value came from, to name FILE:LINE in later errors. */
	int	cur_line;		/* line being read, 0 for flags */
	int	key_line[96];		/* by keyword, see cfg_where() */
	int	listen_line[CFG_MAX_LISTEN];
};

void	cfg_defaults(struct cfg *);
/* Set keyword to value; on error fill err and return -1. */
int	cfg_set(struct cfg *, const char *key, const char *value,
	    char *err, size_t errlen);
/*
 * Read a configuration file of "keyword value" lines.  On error, fill
 * err with "FILE:LINE: message" and return -1.
 */
int	cfg_load(struct cfg *, const char *path, char *err, size_t errlen);
/* The same from an open stream; path names it in messages. */
int	cfg_read(struct cfg *, FILE *, const char *path, char *err,
	    size_t errlen);
/* The i-th word of a list, or NULL. */
const char *cfg_word(const struct cfg_words *, int i);
/* "FILE:LINE: " when key (or listen / websocket number i) came from the file. */
const char *cfg_where(const struct cfg *, const char *key, size_t i);
/* Whole-configuration checks (root exists, ...). */
int	cfg_validate(struct cfg *, char *err, size_t errlen);

#endif
