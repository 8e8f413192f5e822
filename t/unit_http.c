/* Unit tests of the request parser: a table of raw heads and outcomes. */
#include "config.h"

#include <string.h>

#include "http.h"
#include "tap.h"

static const struct http_limits lim = { 8192, 32768, 100 };

static const struct {
	const char	*raw;
	int		 want;	/* 0, HTTP_AGAIN or a status */
	const char	*why;
} cases[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "simple GET" },
	{ "GET / HTTP/1.1\nHost: a\n\n", 0, "bare LF line ends" },
	{ "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "leading CRLF" },
	{ "HEAD /x HTTP/1.0\r\n\r\n", 0, "1.0 without Host" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n", HTTP_AGAIN, "incomplete head" },
	{ "GET / HTTP/1.1", HTTP_AGAIN, "incomplete line" },
	{ "GET / HTTP/1.1\r\n\r\n", 400, "1.1 without Host" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Hosts" },
	{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad Host" },
	{ "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "double space" },
	{ "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "trailing space" },
	{ "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "lower-case version" },
	{ "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/2.0" },
	{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2 preface" },
	{ "GET /\r\n", 400, "HTTP/0.9" },
	{ "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "two-digit minor" },
	{ "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "lower-case method" },
	{ "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown method" },
	{ "POST / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "POST" },
	{ "DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "DELETE" },
	{ "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad method char" },
	{ "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk on GET" },
	{ "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, "OPTIONS *" },
	{ "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "absolute-form" },
	{ "GET a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "relative target" },
	{ "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "CTL in target" },
	{ "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "8-bit in target" },
	{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "space before colon" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400, "obs-fold" },
	{ "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare CR" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400, "CTL in value" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, "empty name" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400, "no colon" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400,
	    "bad Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
	    "negative Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999"
	    "\r\n\r\n", 400, "overflowing Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\n", 400, "conflicting Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
	    "Content-Length: 2\r\n\r\n", 0, "repeated equal Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 2\r\n\r\n", 400, "TE with CL" },
	{ "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	    "TE in HTTP/1.0" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
	    "TE gzip" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip"
	    "\r\n\r\n", 400, "chunked not last" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417,
	    "unknown expectation" },
};

static void
test_table(void)
{
	struct http_req r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = http_parse(cases[i].raw, strlen(cases[i].raw), &lim, &r);

		ok(got == cases[i].want, "%s: want %d, got %d", cases[i].why,
		    cases[i].want, got);
	}
}

static void
test_nul(void)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
	static const char raw2[] = "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_req r;

	ok(http_parse(raw, sizeof(raw) - 1, &lim, &r) == 400, "NUL in value");
	ok(http_parse(raw2, sizeof(raw2) - 1, &lim, &r) == 400,
	    "NUL in target");
}

static void
test_fields(void)
{
	const char *raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\n"
	    "Connection: foo, close\r\nRange: bytes=0-1\r\n\r\nGET";
	struct http_req r;

	ok(http_parse(raw, strlen(raw), &lim, &r) == 0, "parses");
	ok(r.path.n == 4 && memcmp(r.path.p, "/a/b", 4) == 0, "path");
	ok(r.query.n == 3 && memcmp(r.query.p, "x=1", 3) == 0, "query");
	ok(r.host.n == 7, "host");
	ok(r.keepalive == 0, "Connection: close seen in a list");
	ok(r.range.n == 9, "range");
	ok(r.head_len == strlen(raw) - 3, "head_len stops before pipelined");
	ok(r.minor == 1 && r.meth == HTTP_M_GET, "version and method");

	/* Each interpreted header is found by its length: check them all. */
	raw = "GET / HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: x\r\n"
	    "If-None-Match: \"e\"\r\nIf-Range: \"f\"\r\n"
	    "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0, "conditionals parse");
	ok(r.if_modified_since.n == 1 && r.if_modified_since.p[0] == 'x',
	    "If-Modified-Since");
	ok(r.if_none_match.n == 3, "If-None-Match");
	ok(r.if_range.n == 3, "If-Range");
	ok(r.chunked == 1, "Transfer-Encoding next to If-Modified-Since");
	ok(r.expect_continue == 1, "Expect");

	raw = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 && r.keepalive == 1,
	    "1.0 keep-alive on request");
	raw = "GET / HTTP/1.0\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 && r.keepalive == 0,
	    "1.0 closes by default");
	raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 && r.keepalive == 1,
	    "1.1 keeps alive by default");
	raw = "GET http://h:8/p?q HTTP/1.1\r\nHost: a\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 && r.path.n == 2 &&
	    r.query.n == 1, "absolute-form path and query");
	raw = "GET http://h HTTP/1.1\r\nHost: a\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 && r.path.n == 1 &&
	    r.path.p[0] == '/', "absolute-form empty path is /");
}

static void
test_limits(void)
{
	struct http_limits small = { 64, 256, 3 };
	char big[1024];
	struct http_req r;

	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	ok(http_parse(big, 100, &small, &r) == 414, "long request line, "
	    "no LF yet: 414 at once");
	ok(http_parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
	    47, &small, &r) == 431, "too many headers");
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	ok(http_parse(big, 200, &small, &r) == 431, "long header line");
}

static void
test_dates(void)
{
	char buf[30];
	time_t t;

	http_date(784111777, buf);
	ok(strcmp(buf, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "format %s", buf);
	ok(http_date_parse(buf, strlen(buf), &t) == 0 && t == 784111777,
	    "IMF-fixdate");
	ok(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t) == 0 &&
	    t == 784111777, "RFC 850");
	ok(http_date_parse("Sun Nov  6 08:49:37 1994", 24, &t) == 0 &&
	    t == 784111777, "asctime");
	ok(http_date_parse("yesterday", 9, &t) == -1, "garbage");
}

int
main(void)
{
	test_table();
	test_nul();
	test_fields();
	test_limits();
	test_dates();
	return tap_done();
}
