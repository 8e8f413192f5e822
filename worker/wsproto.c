/*
 * The WebSocket protocol's small parts that read client bytes or
 * program output, apart from any session state so that they can be
 * unit-tested and fuzzed: the upgrade's header checks, the accept key,
 * UTF-8 validation and repair, where to split a long line.
 */
#include "config.h"

#include <sha1.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "http.h"
#include "wsproto.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Does the comma-separated list v hold token t (case-insensitive)? */
int
wsp_has_token(struct http_str v, const char *t)
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
int
wsp_key_valid(struct http_str k)
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
void
wsp_accept_key(struct http_str k, char out[29])
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

/*
 * websocket_origin: "any"; "same" (the Origin's host and port are the
 * request's Host); or a list of origins.  No Origin: not a browser.
 */
int
wsp_origin_ok(const struct cfg_words *list, struct http_str o,
    struct http_str host)
{
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
			return (size_t)(o.p + o.n - sep) == host.n &&
			    strncasecmp(sep, host.p, host.n) == 0;
		}
		if (strlen(word) == o.n && strncasecmp(word, o.p, o.n) == 0)
			return 1;
	}
	return 0;
}

/* The first subprotocol the client offers that we do, or NULL. */
const char *
wsp_pick_protocol(const struct cfg_words *ours, struct http_str offer)
{
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
		    (word = cfg_word(ours, i)) != NULL; i++)
			if (strlen(word) == n && memcmp(word, p, n) == 0)
				return word;
		p = q;
	}
	return NULL;
}

/* Percent-decoded into out (NUL bytes refused); -1 when not valid. */
int
wsp_decode(struct http_str s, char *out, size_t cap)
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

int
wsp_utf8_valid(const uint8_t *p, size_t n)
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

/* Where to split a line that is too long: not inside a UTF-8 sequence. */
size_t
wsp_split_at(const char *p, size_t n)
{
	size_t k = n;

	for (int back = 0; back < 3 && k > 0 &&
	    ((unsigned char)p[k] & 0xc0) == 0x80; back++)
		k--;
	return k > 0 ? k : n;
}

size_t
wsp_utf8_repair(const uint8_t *in, size_t n, uint8_t *out)
{
	static const uint8_t replacement[3] = { 0xef, 0xbf, 0xbd };	/* U+FFFD */

	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = 1;

		/* The shortest valid sequence here, else one bad byte. */
		while (k <= 4 && i + k <= n && !wsp_utf8_valid(in + i, k))
			k++;
		if (k <= 4 && i + k <= n) {
			memcpy(out + o, in + i, k);
			o += k;
			i += k - 1;
		} else {
			memcpy(out + o, replacement, sizeof(replacement));
			o += 3;
		}
	}
	return o;
}

size_t
wsp_json_escape(const char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '"' || ch == '\\') {
			out[k++] = '\\';
			out[k++] = (char)ch;
		} else if (ch == '\n') {
			out[k++] = '\\';
			out[k++] = 'n';
		} else if (ch < 0x20 || ch == 0x7f) {
			out[k++] = '\\';
			out[k++] = 'u';
			out[k++] = '0';
			out[k++] = '0';
			out[k++] = hex[ch >> 4];
			out[k++] = hex[ch & 15];
		} else
			out[k++] = (char)ch;
	}
	return k;
}
