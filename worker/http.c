/*
 * A strict HTTP/1.1 request-head parser.  It reads lines (CRLF, or a lone
 * LF as RFC 9112 2.2 allows), never a bare CR, and rejects what a lenient
 * parser might read differently from a proxy in front of us: whitespace
 * before a colon, obs-fold, control bytes, malformed or conflicting
 * Content-Length, Transfer-Encoding with Content-Length or in HTTP/1.0,
 * a Host that is not a host.  Every rejection is answered and the
 * connection closed (see conn.c), so a request we refused can never leave
 * bytes behind that we would read as another request.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

static const char *const known_methods[] = { "POST", "PUT", "DELETE",
	"CONNECT", "TRACE", "PATCH", NULL };

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* reg-name bytes (RFC 3986 3.2.2): unreserved, sub-delims, pct-encoded. */
static int
is_regname(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("-._~!$&'()*+,;=%", c) != NULL;
}

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/*
 * uri-host [ ":" port ] (RFC 9110 7.2): a reg-name or IPv4 address, or
 * an IP-literal in brackets.  No userinfo, path or whitespace: nothing
 * a proxy in front of us could read as another host.  Empty is allowed
 * (RFC 9112 3.2: a target without an authority).
 */
static int
host_valid(const char *p, size_t n)
{
	const char *end = p + n;

	if (p < end && *p == '[') {
		for (p++; p < end && *p != ']'; p++)
			if (!is_hex((unsigned char)*p) && *p != ':' && *p != '.')
				return 0;
		if (p == end)
			return 0;
		p++;
	} else
		for (; p < end && *p != ':'; p++)
			if (!is_regname((unsigned char)*p))
				return 0;
	if (p < end && *p++ != ':')
		return 0;
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* field-vchar, SP and HTAB; obs-text (>= 0x80) is tolerated. */
static int
is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
str_ieq(struct http_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/*
 * Find the end of the line starting at p.  Sets *next to the start of
 * the following line and returns the line's length without its ending,
 * or -1 when no LF is there yet, or -2 on a CR not followed by LF.
 */
static long
line_end(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *cr;

	if (lf == NULL) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr != NULL && cr + 1 < end)
			return -2;
		return -1;
	}
	*next = lf + 1;
	if (lf > p && lf[-1] == '\r')
		lf--;
	if (memchr(p, '\r', (size_t)(lf - p)) != NULL)
		return -2;
	return lf - p;
}

static int
parse_target(struct http_req *r)
{
	const char *p = r->target.p, *end = p + r->target.n, *q;

	/* A fragment is never sent (RFC 9112 3.2): '#' is an error. */
	for (const char *c = p; c < end; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f ||
		    *c == '#')
			return HTTP_BAD_REQUEST;
	if (r->target.n == 1 && *p == '*') {
		if (r->meth != HTTP_M_OPTIONS)
			return HTTP_BAD_REQUEST;
		r->asterisk = 1;
		r->path = r->target;
		return 0;
	}
	if (*p != '/') {
		/* absolute-form: scheme "://" authority [ path ] */
		size_t skip;

		if (r->target.n > 7 && strncasecmp(p, "http://", 7) == 0)
			skip = 7;
		else if (r->target.n > 8 && strncasecmp(p, "https://", 8) == 0)
			skip = 8;
		else
			return HTTP_BAD_REQUEST;
		p += skip;
		while (p < end && *p != '/' && *p != '?')
			p++;
		/* The authority stands in for Host (RFC 9112 3.2.2). */
		r->authority.p = r->target.p + skip;
		r->authority.n = (size_t)(p - r->authority.p);
		if (r->authority.n == 0 ||
		    !host_valid(r->authority.p, r->authority.n))
			return HTTP_BAD_REQUEST;
		if (p == end || *p == '?') {
			/* Empty path: "/" (RFC 9112 3.2.2). */
			r->path.p = "/";
			r->path.n = 1;
			if (p < end) {
				r->query.p = p + 1;
				r->query.n = (size_t)(end - p - 1);
			}
			return 0;
		}
	}
	q = memchr(p, '?', (size_t)(end - p));
	r->path.p = p;
	r->path.n = (size_t)((q ? q : end) - p);
	if (q != NULL) {
		r->query.p = q + 1;
		r->query.n = (size_t)(end - q - 1);
	}
	return 0;
}

static int
parse_request_line(const char *p, size_t n, const struct http_limits *lim,
    struct http_req *r)
{
	const char *end = p + n, *sp;
	size_t vlen;

	/* method SP request-target SP HTTP-version, single spaces only. */
	sp = memchr(p, ' ', n);
	if (sp == NULL || sp == p)
		return HTTP_BAD_REQUEST;
	r->method.p = p;
	r->method.n = (size_t)(sp - p);
	for (const char *c = p; c < sp; c++)
		if (!is_tchar((unsigned char)*c))
			return HTTP_BAD_REQUEST;
	p = sp + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || sp == p)
		return HTTP_BAD_REQUEST;
	r->target.p = p;
	r->target.n = (size_t)(sp - p);
	p = sp + 1;
	vlen = (size_t)(end - p);
	if (vlen != 8 || memcmp(p, "HTTP/", 5) != 0 ||
	    p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9')
		return HTTP_BAD_REQUEST;
	if (p[5] != '1')
		return HTTP_VERSION_NOT_SUPPORTED;
	r->minor = p[7] - '0';

	/* Methods are case-sensitive (RFC 9110 9.1). */
	if (r->method.n == 3 && memcmp(r->method.p, "GET", 3) == 0)
		r->meth = HTTP_M_GET;
	else if (r->method.n == 4 && memcmp(r->method.p, "HEAD", 4) == 0)
		r->meth = HTTP_M_HEAD;
	else if (r->method.n == 7 && memcmp(r->method.p, "OPTIONS", 7) == 0)
		r->meth = HTTP_M_OPTIONS;
	else if (lim->post && r->method.n == 4 &&
	    memcmp(r->method.p, "POST", 4) == 0)
		r->meth = HTTP_M_POST;
	else {
		r->meth = HTTP_M_OTHER;
		for (int i = 0; known_methods[i]; i++)
			if (strlen(known_methods[i]) == r->method.n &&
			    memcmp(known_methods[i], r->method.p, r->method.n)
			    == 0)
				return parse_target(r) ? HTTP_BAD_REQUEST :
				    HTTP_METHOD_NOT_ALLOWED;
		return HTTP_NOT_IMPLEMENTED;
	}
	return parse_target(r);
}

static int
parse_content_length(struct http_str v, long long *out)
{
	long long n = 0;

	if (v.n == 0 || v.n > 18)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (v.p[i] - '0');
	}
	if (*out != -1 && *out != n)
		return -1;	/* conflicting duplicates */
	*out = n;
	return 0;
}

/* Walk a comma-separated token list, calling fn on each element. */
static int
each_token(struct http_str v, int (*fn)(struct http_str, struct http_req *),
    struct http_req *r)
{
	const char *p = v.p, *end = v.p + v.n;

	while (p < end) {
		const char *s, *e;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			int rc = fn((struct http_str){ s, (size_t)(e - s) }, r);

			if (rc)
				return rc;
		}
	}
	return 0;
}

static int
connection_token(struct http_str t, struct http_req *r)
{
	if (str_ieq(t, "close"))
		r->keepalive = -1;	/* close wins over keep-alive */
	else if (str_ieq(t, "keep-alive") && r->keepalive == 0)
		r->keepalive = 1;
	return 0;
}

static int
te_token(struct http_str t, struct http_req *r)
{
	/* chunked must be the last coding and appear only once. */
	if (r->chunked)
		return HTTP_BAD_REQUEST;
	if (str_ieq(t, "chunked")) {
		r->chunked = 1;
		return 0;
	}
	return HTTP_NOT_IMPLEMENTED;
}

static int
interpret_header(struct http_req *r, struct http_hdr *h, int *nhost, int *te)
{
	struct http_str n = h->name;
	int rc;

	switch (n.n) {
	case 4:
		if (str_ieq(n, "host")) {
			(*nhost)++;
			r->host = h->value;
			if (!host_valid(h->value.p, h->value.n))
				return HTTP_BAD_REQUEST;
		}
		break;
	case 5:
		if (str_ieq(n, "range") && r->range.p == NULL)
			r->range = h->value;
		break;
	case 6:
		if (str_ieq(n, "expect")) {
			if (!str_ieq(h->value, "100-continue"))
				return HTTP_EXPECTATION_FAILED;
			r->expect_continue = 1;
		}
		break;
	case 8:
		if (str_ieq(n, "if-range"))
			r->if_range = h->value;
		break;
	case 10:
		if (str_ieq(n, "connection"))
			return each_token(h->value, connection_token, r);
		break;
	case 13:
		if (str_ieq(n, "if-none-match"))
			r->if_none_match = h->value;
		break;
	case 14:
		if (str_ieq(n, "content-length") &&
		    parse_content_length(h->value, &r->content_length) == -1)
			return HTTP_BAD_REQUEST;
		break;
	case 17:	/* both names have 17 bytes */
		if (str_ieq(n, "if-modified-since"))
			r->if_modified_since = h->value;
		else if (str_ieq(n, "transfer-encoding")) {
			*te = 1;
			if (r->minor == 0)
				return HTTP_BAD_REQUEST;
			/* A coding after chunked makes chunked not last. */
			if ((rc = each_token(h->value, te_token, r)) != 0)
				return rc;
		}
		break;
	}
	return 0;
}

static int
parse_header_line(const char *p, size_t n, struct http_hdr *h)
{
	const char *colon = memchr(p, ':', n), *v, *end = p + n;

	if (p[0] == ' ' || p[0] == '\t')
		return HTTP_BAD_REQUEST;	/* obs-fold */
	if (colon == NULL || colon == p)
		return HTTP_BAD_REQUEST;
	for (const char *c = p; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return HTTP_BAD_REQUEST;	/* incl. space before ':' */
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *c = v; c < end; c++)
		if (!is_field_char((unsigned char)*c))
			return HTTP_BAD_REQUEST;
	h->name.p = p;
	h->name.n = (size_t)(colon - p);
	h->value.p = v;
	h->value.n = (size_t)(end - v);
	return 0;
}

/*
 * How long the unfinished line from p is so far, without a CR that may be
 * the start of its CRLF: a line of exactly the limit whose LF is still
 * on its way is not over it.
 */
static size_t
pending(const char *p, const char *end)
{
	size_t n = (size_t)(end - p);

	return n > 0 && end[-1] == '\r' ? n - 1 : n;
}

int
http_parse(const char *buf, size_t len, const struct http_limits *lim,
    struct http_req *r)
{
	const char *p = buf, *end = buf + len, *next = NULL;
	int rc, nhost = 0, te = 0;
	long n;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;

	/*
	 * Ignore a few empty lines before the request line (RFC 9112 2.2):
	 * CRLF or LF, never a lone CR.
	 */
	for (int i = 0; i < 4 && p < end; i++) {
		if (*p == '\n')
			p++;
		else if (*p == '\r' && p + 1 < end && p[1] == '\n')
			p += 2;
		else
			break;
	}

	n = line_end(p, end, &next);
	if (n == -2)
		return HTTP_BAD_REQUEST;
	if (n == -1)
		return pending(p, end) > lim->max_line ? HTTP_URI_TOO_LONG :
		    HTTP_AGAIN;
	if ((size_t)n > lim->max_line)
		return HTTP_URI_TOO_LONG;
	r->line.p = p;
	r->line.n = (size_t)n;
	if ((rc = parse_request_line(p, (size_t)n, lim, r)) != 0)
		return rc;

	for (p = next;;) {
		n = line_end(p, end, &next);
		if (n == -2)
			return HTTP_BAD_REQUEST;
		if (n == -1) {
			if (pending(p, end) > lim->max_field ||
			    len > lim->max_head)
				return HTTP_HEADERS_TOO_LARGE;
			return HTTP_AGAIN;
		}
		if ((size_t)(next - buf) > lim->max_head ||
		    (size_t)n > lim->max_field)
			return HTTP_HEADERS_TOO_LARGE;
		if (n == 0)
			break;
		if (r->nhdr >= lim->max_headers || r->nhdr >= HTTP_HDR_CAP)
			return HTTP_HEADERS_TOO_LARGE;
		if ((rc = parse_header_line(p, (size_t)n, &r->hdr[r->nhdr])) ||
		    (rc = interpret_header(r, &r->hdr[r->nhdr], &nhost, &te)))
			return rc;
		r->nhdr++;
		p = next;
	}
	r->head_len = (size_t)(next - buf);

	if (te && !r->chunked)
		return HTTP_BAD_REQUEST;
	if (te && r->content_length != -1)
		return HTTP_BAD_REQUEST;	/* smuggling vector */
	if (r->minor >= 1 && nhost != 1)
		return HTTP_BAD_REQUEST;
	if (nhost > 1)
		return HTTP_BAD_REQUEST;
	if (r->keepalive == -1)
		r->keepalive = 0;
	else if (r->minor >= 1)
		r->keepalive = 1;
	return 0;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 308: return "Permanent Redirect";
	case 101: return "Switching Protocols";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

void
http_date(time_t t, char buf[30])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int
http_date_parse(const char *s, size_t n, time_t *out)
{
	static const char *const fmts[] = {
		"%a, %d %b %Y %H:%M:%S GMT",	/* IMF-fixdate */
		"%A, %d-%b-%y %H:%M:%S GMT",	/* RFC 850 */
		"%a %b %e %H:%M:%S %Y",		/* asctime */
	};
	char tmp[64];
	struct tm tm;

	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		const char *e;

		memset(&tm, 0, sizeof(tm));
		if ((e = strptime(tmp, fmts[i], &tm)) != NULL && *e == '\0') {
			*out = timegm(&tm);
			return 0;
		}
	}
	return -1;
}

struct http_str
http_header(const struct http_req *req, const char *name)
{
	for (int i = 0; i < req->nhdr; i++)
		if (str_ieq(req->hdr[i].name, name))
			return req->hdr[i].value;
	return (struct http_str){ NULL, 0 };
}
