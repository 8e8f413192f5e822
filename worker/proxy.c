/*
 * The PROXY protocol header and the forwarding headers (see proxy.h).
 * Nothing here reads a socket or keeps state: conn.c feeds the bytes it
 * has and acts on the verdict, which keeps these parsers in reach of
 * the unit tests and the fuzzer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "acl.h"
#include "cfg.h"
#include "http.h"
#include "proxy.h"

static const unsigned char v2sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1sig[] = "PROXY ";

static long
bad(struct proxy_info *pi, const char *why)
{
	pi->why = why;
	return PROXY_BAD;
}

static long
again(struct proxy_info *pi, size_t want)
{
	pi->want = want;
	return PROXY_AGAIN;
}

/* --- addresses -------------------------------------------------------- */

/* A port: 1 to 5 digits, at most 65535; -1 when malformed. */
static long
parse_port(const char *p, size_t n)
{
	long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v <= 65535 ? v : -1;
}

/* An address of family (AF_INET or AF_INET6) and a port into ss. */
static int
make_addr(int family, const char *a, size_t an, long port,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	char tmp[INET6_ADDRSTRLEN];

	if (an == 0 || an >= sizeof(tmp) || memchr(a, '\0', an) != NULL)
		return -1;
	memcpy(tmp, a, an);
	tmp[an] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;

		if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

		if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*sin6);
	}
	return 0;
}

/*
 * A forwarded address: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:80".  The port is 0 when absent.
 */
static int
hop_addr(const char *p, size_t n, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	const char *colon, *rb;
	long port = 0;

	if (n > 0 && p[0] == '[') {
		if ((rb = memchr(p, ']', n)) == NULL)
			return -1;
		if ((size_t)(rb + 1 - p) < n) {
			if (rb[1] != ':' || (port = parse_port(rb + 2,
			    n - (size_t)(rb + 2 - p))) == -1)
				return -1;
		}
		return make_addr(AF_INET6, p + 1, (size_t)(rb - p - 1), port,
		    ss, sslen);
	}
	if ((colon = memchr(p, ':', n)) == NULL)
		return make_addr(AF_INET, p, n, 0, ss, sslen);
	if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)) != NULL)
		return make_addr(AF_INET6, p, n, 0, ss, sslen);
	if ((port = parse_port(colon + 1, n - (size_t)(colon + 1 - p))) == -1)
		return -1;
	return make_addr(AF_INET, p, (size_t)(colon - p), port, ss, sslen);
}

/* --- PROXY protocol v1 ------------------------------------------------ */

/*
 * Split line[i..n) at single spaces into at most max words; how many,
 * or -1 for an empty word (two spaces, a space at either end) or more.
 */
static int
split(const char *line, size_t n, size_t i, const char **w, size_t *wn,
    int max)
{
	int k = 0;

	for (;;) {
		size_t j = i;

		while (j < n && line[j] != ' ')
			j++;
		if (j == i || k == max)
			return -1;
		w[k] = line + i;
		wn[k++] = j - i;
		if (j == n)
			return k;
		i = j + 1;
	}
}

static int
word_is(const char *w, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(w, s, n) == 0;
}

/* "PROXY TCP4 SRC DST SPORT DPORT", "... TCP6 ...", "PROXY UNKNOWN ...". */
static long
v1(const unsigned char *buf, size_t len, struct proxy_info *pi)
{
	static const char unknown[] = "UNKNOWN";
	const char *line = (const char *)buf, *w[5];
	const size_t at = sizeof(v1sig) - 1, un = sizeof(unknown) - 1;
	const unsigned char *lf;
	size_t n, wn[5];
	long sport, dport;
	int family;

	pi->version = 1;
	lf = memchr(buf, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
	if (lf == NULL) {
		if (len >= PROXY_V1_MAX)
			return bad(pi, "v1 header without CRLF in 107 bytes");
		return again(pi, PROXY_V1_MAX - len);
	}
	n = (size_t)(lf - buf);
	if (buf[n - 1] != '\r')
		return bad(pi, "v1 header line not ended by CRLF");
	n--;				/* the line, without CRLF */
	if (memchr(line, '\0', n) != NULL || memchr(line, '\r', n) != NULL)
		return bad(pi, "v1 header with a NUL or CR");
	/* UNKNOWN: whatever follows is to be ignored. */
	if (n >= at + un && memcmp(line + at, unknown, un) == 0 &&
	    (n == at + un || line[at + un] == ' ')) {
		pi->local = 1;
		return (long)n + 2;
	}
	if (split(line, n, at, w, wn, 5) != 5)
		return bad(pi, "v1 header without its 5 fields");
	if (word_is(w[0], wn[0], "TCP4"))
		family = AF_INET;
	else if (word_is(w[0], wn[0], "TCP6"))
		family = AF_INET6;
	else
		return bad(pi, "v1 header of an unknown protocol");
	if ((sport = parse_port(w[3], wn[3])) == -1 ||
	    (dport = parse_port(w[4], wn[4])) == -1)
		return bad(pi, "v1 header with an invalid port");
	if (make_addr(family, w[1], wn[1], sport, &pi->src, &pi->srclen) ||
	    make_addr(family, w[2], wn[2], dport, &pi->dst, &pi->dstlen))
		return bad(pi, "v1 header with an invalid address");
	return (long)n + 2;
}

/* --- PROXY protocol v2 ------------------------------------------------ */

/* The v2 address block of TCP over IPv4 or IPv6, into pi. */
static void
v2_addrs(const unsigned char *a, int family, struct proxy_info *pi)
{
	memset(&pi->src, 0, sizeof(pi->src));
	memset(&pi->dst, 0, sizeof(pi->dst));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)(void *)&pi->src;
		struct sockaddr_in *d = (struct sockaddr_in *)(void *)&pi->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);		/* network order */
		memcpy(&d->sin_port, a + 10, 2);
		pi->srclen = pi->dstlen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)&pi->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)(void *)&pi->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		pi->srclen = pi->dstlen = sizeof(*s);
	}
}

/*
 * The 16-byte fixed part: signature, version and command, family and
 * transport, the length of what follows (addresses, then TLVs, which
 * are skipped).  Everything is judged from the fixed part already.
 */
static long
v2(const unsigned char *buf, size_t len, size_t max, struct proxy_info *pi)
{
	static const size_t need[] = { 0, 12, 36, 216 };	/* by family */
	unsigned ver, cmd, fam, proto;
	size_t total;

	pi->version = 2;
	if (len < PROXY_V2_FIXED)
		return again(pi, PROXY_V2_FIXED - len);
	ver = buf[12] >> 4;
	cmd = buf[12] & 0x0f;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0f;
	total = PROXY_V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	if (ver != 2)
		return bad(pi, "v2 header of an unknown version");
	if (cmd > 1)
		return bad(pi, "v2 header of an unknown command");
	if (total > max)
		return bad(pi, "v2 header longer than the head buffer");
	/* LOCAL: the family and the block are to be ignored. */
	if (cmd == 1 && (fam > 3 || proto > 2))
		return bad(pi, "v2 header of an unknown family or transport");
	if (cmd == 1 && total - PROXY_V2_FIXED < need[fam])
		return bad(pi, "v2 address block shorter than its family needs");
	if (len < total)
		return again(pi, total - len);
	if (cmd == 0 || proto != 1 || (fam != 1 && fam != 2)) {
		pi->local = 1;		/* a health check, or not TCP/IP */
		return (long)total;
	}
	v2_addrs(buf + PROXY_V2_FIXED, fam == 1 ? AF_INET : AF_INET6, pi);
	return (long)total;
}

long
proxy_parse(const unsigned char *buf, size_t len, size_t max,
    struct proxy_info *pi)
{
	size_t k;

	memset(pi, 0, sizeof(*pi));
	if (len == 0)
		return again(pi, PROXY_V2_FIXED);
	if (buf[0] == 'P') {
		k = len < sizeof(v1sig) - 1 ? len : sizeof(v1sig) - 1;
		if (memcmp(buf, v1sig, k) != 0)
			return bad(pi, "not a PROXY protocol header");
		if (len < sizeof(v1sig) - 1)	/* the shortest is 15 bytes */
			return again(pi, PROXY_V2_FIXED - len);
		return v1(buf, len, pi);
	}
	k = len < sizeof(v2sig) ? len : sizeof(v2sig);
	if (memcmp(buf, v2sig, k) != 0)
		return bad(pi, "not a PROXY protocol header");
	return v2(buf, len, max, pi);
}

/* --- forwarding headers ----------------------------------------------- */

/* The last PROXY_HOPS hops of a chain, left to right; p NULL: unusable. */
struct hops {
	struct http_str	h[PROXY_HOPS];
	int		n;		/* hops seen in all */
};

static void
hop_add(struct hops *hs, const char *p, size_t n)
{
	hs->h[hs->n % PROXY_HOPS] = (struct http_str){ p, n };
	hs->n++;
}

static int
ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* A list element [p, e) without the blanks around it. */
static void
trim(const char **p, const char **e)
{
	while (*p < *e && ows(**p))
		(*p)++;
	while (*e > *p && ows((*e)[-1]))
		(*e)--;
}

/* X-Forwarded-For: "a, b, c"; empty elements are skipped (RFC 9110 5.6.1). */
static void
xff_hops(const struct http_str *v, struct hops *hs)
{
	const char *p = v->p, *end = v->p + v->n, *e;

	while (p < end) {
		const char *q = p;

		if ((e = memchr(p, ',', (size_t)(end - p))) == NULL)
			e = end;
		p = e < end ? e + 1 : end;
		trim(&q, &e);
		if (e > q)
			hop_add(hs, q, (size_t)(e - q));
	}
}

static int
tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * A Forwarded value, token or quoted-string, at s[*i..n).  A token may
 * hold ':' and brackets too (senders that forget the quotes RFC 7239
 * asks for around "[v6]:port").  *esc: the quoted string had escapes,
 * so it cannot be taken as an address without unquoting.  -1: malformed.
 */
static int
fwd_value(const char *s, size_t n, size_t *i, struct http_str *v, int *esc)
{
	size_t j = *i;

	*esc = 0;
	if (j < n && s[j] == '"') {
		for (j++; j < n && s[j] != '"'; j++)
			if (s[j] == '\\') {
				*esc = 1;
				if (++j == n)
					return -1;
			}
		if (j == n)
			return -1;
		*v = (struct http_str){ s + *i + 1, j - *i - 1 };
		*i = j + 1;
		return 0;
	}
	while (j < n && (tchar(s[j]) || s[j] == ':' || s[j] == '[' ||
	    s[j] == ']'))
		j++;
	if (j == *i)
		return -1;
	*v = (struct http_str){ s + *i, j - *i };
	*i = j;
	return 0;
}

/* Past the rest of a malformed element: to its comma, outside quotes. */
static size_t
skip_element(const char *s, size_t n, size_t i)
{
	int quoted = 0;

	for (; i < n && (quoted || s[i] != ','); i++)
		if (s[i] == '\\' && quoted && i + 1 < n)
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
	return i;
}

/*
 * One forwarded-element at s[*i..n): pairs "name=value" separated by
 * ';'.  Its hop is its for= value; an element with none, or malformed,
 * is an unusable hop; an empty element is none at all.
 */
static void
fwd_element(const char *s, size_t n, size_t *i, struct hops *hs)
{
	struct http_str forv = { NULL, 0 }, v;
	int pairs = 0, ok = 1, esc;
	size_t j = *i, name, nlen;

	for (;;) {
		while (j < n && ows(s[j]))
			j++;
		if (j == n || s[j] == ',')
			break;
		if (s[j] == ';') {
			j++;
			continue;
		}
		for (name = j; j < n && tchar(s[j]); j++)
			;
		nlen = j - name;
		if (nlen == 0 || j == n || s[j] != '=' ||
		    (j++, fwd_value(s, n, &j, &v, &esc) == -1)) {
			ok = 0;
			j = skip_element(s, n, j);
			break;
		}
		pairs++;
		if (nlen == 3 && strncasecmp(s + name, "for", 3) == 0) {
			if (forv.p != NULL || esc)
				ok = 0;		/* twice, or escapes */
			forv = v;
		}
		while (j < n && ows(s[j]))
			j++;
		if (j < n && s[j] != ';' && s[j] != ',') {
			ok = 0;
			j = skip_element(s, n, j);
			break;
		}
	}
	if (pairs > 0 || !ok)
		hop_add(hs, ok ? forv.p : NULL, ok ? forv.n : 0);
	*i = j < n ? j + 1 : j;		/* past the comma */
}

static void
forwarded_hops(const struct http_str *v, struct hops *hs)
{
	size_t i = 0;

	while (i < v->n)
		fwd_element(v->p, v->n, &i, hs);
}

int
proxy_forwarded(enum cfg_real_ip kind, const struct http_str *vals, int n,
    const struct acl *trusted, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_storage a;
	struct hops hs;
	socklen_t alen;
	int found = 0, k;

	hs.n = 0;
	for (int i = 0; i < n; i++)
		if (kind == REAL_IP_FORWARDED)
			forwarded_hops(&vals[i], &hs);
		else if (kind == REAL_IP_XFF)
			xff_hops(&vals[i], &hs);
		else if (i == n - 1) {		/* X-Real-IP: one address */
			const char *p = vals[i].p, *e = p + vals[i].n;

			trim(&p, &e);
			hop_add(&hs, p, (size_t)(e - p));
		}
	for (k = 0; k < hs.n && k < PROXY_HOPS; k++) {
		const struct http_str *h = &hs.h[(hs.n - 1 - k) % PROXY_HOPS];

		if (h->p == NULL || hop_addr(h->p, h->n, &a, &alen) == -1)
			break;
		*ss = a;
		*sslen = alen;
		found = 1;
		if (!acl_match(trusted, (struct sockaddr *)&a))
			break;
	}
	return found;
}
