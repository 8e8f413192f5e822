/* WebSocket protocol helpers, pure functions (see wsproto.c). */
#ifndef WSPROTO_H
#define WSPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct cfg_words;

/* Does the comma-separated list v hold token t (case-insensitive)? */
int	wsp_has_token(struct http_str v, const char *t);
/* Sec-WebSocket-Key: the base64 of 16 bytes (RFC 6455 4.2.1 item 5)? */
int	wsp_key_valid(struct http_str key);
/* Sec-WebSocket-Accept for key: 28 bytes and a NUL. */
void	wsp_accept_key(struct http_str key, char out[29]);
/*
 * websocket_origin list against an Origin header (o.p NULL: none sent)
 * and the request's Host.
 */
int	wsp_origin_ok(const struct cfg_words *, struct http_str o,
	    struct http_str host);
/* The first subprotocol the client offers that is ours, or NULL. */
const char *wsp_pick_protocol(const struct cfg_words *ours,
	    struct http_str offer);
/* Percent-decode s into out (cap bytes); -1: bad escape, NUL, too long. */
int	wsp_decode(struct http_str s, char *out, size_t cap);
int	wsp_utf8_valid(const uint8_t *, size_t);
/* n bytes as valid UTF-8, bad bytes as U+FFFD: out has 3n bytes. */
size_t	wsp_utf8_repair(const uint8_t *, size_t n, uint8_t *out);
/* Where to cut p before n without splitting a UTF-8 sequence. */
size_t	wsp_split_at(const char *p, size_t n);

/*
 * p as the inside of a JSON string: '"' and '\\' escaped, control
 * characters as \n or \u00XX; other bytes as they are (the frame's
 * UTF-8 repair takes care of those that are not UTF-8).  out has 6n.
 */
size_t	wsp_json_escape(const char *p, size_t n, char *out);

#endif
