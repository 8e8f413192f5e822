/* Unit tests of the request parser: a table of raw heads and outcomes. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "tap.h"

static const struct http_limits lim = {
	.max_line = 8192, .max_field = 8192, .max_head = 32768,
	.max_headers = 100,
};

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

	/* Request line (RFC 9112 3). */
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "HTTP/1.1" },
	{ "GET / HTTP/1.0\r\n\r\n", 0, "HTTP/1.0" },
	{ "GET / HTTP/1.9\r\nHost: a\r\n\r\n", 0, "a later 1.x minor" },
	{ "GET / HTTP/0.9\r\n\r\n", 505, "major 0" },
	{ "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, "major 3" },
	{ "GET / HTTP/9.9\r\n\r\n", 505, "major 9" },
	{ "GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "version without minor" },
	{ "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400, "non-digit minor" },
	{ "GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400, "two-digit major" },
	{ "GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400, "not HTTP" },
	{ "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400, "tab as separator" },
	{ " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "leading space" },
	{ "GET\r\n\r\n", 400, "method alone" },
	{ "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400, "three spaces" },
	{ "/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "no method" },
	{ "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "lone CR before the request line" },
	{ "\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "leading LFs" },
	{ "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "too many leading empty lines" },
	{ "PRI * HTTP/2.0\r\n", 505, "HTTP/2 preface, first line only" },
	{ "OPTIONS * HTTP/1.0\r\n\r\n", 0, "OPTIONS * in 1.0" },
	{ "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "OPTIONS /" },
	{ "HEAD * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk on HEAD" },
	{ "POST * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk on POST" },
	{ "GET ** HTTP/1.1\r\nHost: a\r\n\r\n", 400, "two asterisks" },
	{ "PUT / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "PUT" },
	{ "PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "PATCH" },
	{ "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "TRACE" },
	{ "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "authority-form" },
	{ "Get / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "mixed-case method" },
	{ "GETX / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "GET with a suffix" },
	{ "GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment" },
	{ "GET /?q#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "fragment after a query" },
	{ "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 0,
	    "backslash: a file-name byte" },
	{ "GET /%2F%zz HTTP/1.1\r\nHost: a\r\n\r\n", 0,
	    "escapes are checked when decoded (file_normalize)" },

	/* absolute-form (RFC 9112 3.2.2). */
	{ "GET https://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "https" },
	{ "GET HTTP://A:80/x HTTP/1.1\r\nHost: a\r\n\r\n", 0,
	    "scheme is case-insensitive" },
	{ "GET http://[::1]:8/ HTTP/1.1\r\nHost: a\r\n\r\n", 0,
	    "IP-literal authority" },
	{ "GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "userinfo" },
	{ "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	    "empty authority" },
	{ "GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad port" },
	{ "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "ftp scheme" },
	{ "GET http://a/x HTTP/1.1\r\n\r\n", 400,
	    "absolute-form still needs Host in 1.1" },

	/* Host (RFC 9112 3.2). */
	{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, "empty Host" },
	{ "GET / HTTP/1.1\r\nHost: a.b-c_d~:8080\r\n\r\n", 0,
	    "Host with port" },
	{ "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0, "IPv6 Host" },
	{ "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0, "IPv4 Host" },
	{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "space in Host" },
	{ "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "userinfo in Host" },
	{ "GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", 400,
	    "backslash in Host" },
	{ "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400, "bad port in Host" },
	{ "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400, "two ports" },
	{ "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "unclosed [" },
	{ "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400, "bad IP-literal" },
	{ "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 0,
	    "comma is a sub-delim (one Host line)" },
	{ "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, "8-bit Host" },
	{ "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", 0, "Host name any case" },
	{ "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400,
	    "two Hosts in 1.0" },
	{ "GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", 400, "bad Host in 1.0" },

	/* Field lines (RFC 9112 5). */
	{ "GET / HTTP/1.1\r\nHost: a\r\nX:\t b \t\r\n\r\n", 0,
	    "OWS around a value" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n", 0, "empty value" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n", 400,
	    "tab before colon" },
	{ "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400,
	    "space before the first field line" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400,
	    "obs-fold with a tab" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", 400,
	    "CR CR LF" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400,
	    "bare CR in the empty line" },
	{ "GET / HTTP/1.1\rHost: a\r\n\r\n", 400,
	    "bare CR ends the request line" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", 400,
	    "DEL in value" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff\r\n\r\n", 0,
	    "obs-text in value" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n", 400,
	    "delimiter in name" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX\x80: b\r\n\r\n", 400,
	    "8-bit name" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX-Y_z!#$%&'*+.^`|~9: b\r\n\r\n", 0,
	    "every tchar in a name" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX:: b\r\n\r\n", 0,
	    "colon in value" },

	/* Content-Length (RFC 9110 8.6, RFC 9112 6.3). */
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0,
	    "Content-Length 0" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", 0,
	    "leading zeros" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999"
	    "\r\n\r\n", 0, "18 digits" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808"
	    "\r\n\r\n", 400, "2^63" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400,
	    "empty Content-Length" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400,
	    "plus sign" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400,
	    "inner space" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400,
	    "hex" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", 400,
	    "a list, even of equal values" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1.0\r\n\r\n", 400,
	    "decimal point" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
	    "Content-Length: 40\r\n\r\n", 400, "0 then 40" },
	{ "GET / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n"
	    "CONTENT-LENGTH: 05\r\n\r\n", 0, "equal values, any case" },

	/* Transfer-Encoding (RFC 9112 6.1). */
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	    0, "chunked" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
	    0, "chunked, upper case" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 400, "CL then TE" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 400, "chunked twice" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked"
	    "\r\n\r\n", 400, "chunked twice in a list" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked"
	    "\r\n\r\n", 501, "a coding we do not know, then chunked" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400,
	    "empty Transfer-Encoding" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", 400,
	    "Transfer-Encoding without a coding" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    501, "not quite chunked" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n"
	    "\r\n", 400, "TE with a space before the colon" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    " gzip\r\n\r\n", 400, "TE folded" },
	{ "GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
	    "any TE in HTTP/1.0" },

	/* Expect (RFC 9110 10.1.1). */
	{ "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", 0,
	    "100-continue, any case" },
	{ "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n",
	    417, "100-continue and more" },
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
	ok(http_parse("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 28, &lim, &r) ==
	    400, "NUL in method");
	ok(http_parse("GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", 33, &lim,
	    &r) == 400, "NUL in name");
	ok(http_parse("GET / HTTP/1.1\0\r\nHost: a\r\n\r\n", 29, &lim, &r) ==
	    400, "NUL after the version");
	ok(http_parse("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n", 29, &lim, &r) ==
	    400, "NUL first");
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
	raw = "GET http://h:8/p HTTP/1.1\r\nHost: other\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 &&
	    r.authority.n == 3 && memcmp(r.authority.p, "h:8", 3) == 0,
	    "absolute-form authority");
	raw = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 &&
	    r.content_length == 12 && !r.chunked, "Content-Length value");
	raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	ok(http_parse(raw, strlen(raw), &lim, &r) == 0 &&
	    r.content_length == -1, "no Content-Length: -1");
}

/* max_request_line and max_header_line are separate limits. */
static void
test_line_limits(void)
{
	struct http_limits l = { .max_line = 40, .max_field = 100,
	    .max_head = 1000, .max_headers = 10 };
	char raw[512];
	struct http_req r;
	int n;

	/* A 60-byte header line: over max_line, under max_field. */
	n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: %057d\r\n\r\n", 0);
	ok(http_parse(raw, (size_t)n, &l, &r) == 0,
	    "a header line may exceed max_request_line");
	/* A 60-byte request line: over max_line. */
	n = snprintf(raw, sizeof(raw), "GET /%046d HTTP/1.1\r\nHost: a\r\n"
	    "\r\n", 0);
	ok(http_parse(raw, (size_t)n, &l, &r) == 414,
	    "a request line may not");
	/* A 120-byte header line, complete or not: 431 at once. */
	n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: %0117d\r\n\r\n", 0);
	ok(http_parse(raw, (size_t)n, &l, &r) == 431, "over max_header_line");
	ok(http_parse(raw, (size_t)n - 20, &l, &r) == 431,
	    "over max_header_line before its end");
	/* Exactly at the limits. */
	n = snprintf(raw, sizeof(raw), "GET /%020d HTTP/1.1\r\nHost: a\r\n"
	    "X: %097d\r\n\r\n", 0, 0);
	ok(http_parse(raw, (size_t)n, &l, &r) == 0, "at both limits: %d",
	    http_parse(raw, (size_t)n, &l, &r));
	/* The whole head over max_head, each line within its limit. */
	l.max_head = 40;
	n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: 1\r\nY: 2\r\nZ: 3\r\n\r\n");
	ok(http_parse(raw, (size_t)n, &l, &r) == 431, "over max_head");
	ok(http_parse(raw, 36, &l, &r) == HTTP_AGAIN,
	    "under max_head so far");
}

/*
 * Every prefix of a valid head asks for more; no prefix of a bad one is
 * accepted.  The parser is re-run on a growing buffer by conn.c.
 */
static void
test_prefixes(void)
{
	const char *evil = "\r\nGET http://a/b?c HTTP/1.1\r\nHost: a:1\r\n"
	    "Content-Length: 3\r\nTransfer-Encoding\t: x\r\n\r\n", *good;
	size_t n = strlen(evil), bad = 0, again = 0;
	struct http_req r;
	int rc;

	for (size_t i = 0; i < n; i++) {
		rc = http_parse(evil, i, &lim, &r);
		if (rc == 0)
			bad++;
		else if (rc == HTTP_AGAIN)
			again++;
	}
	ok(bad == 0 && again > 0, "prefixes of a bad head: never accepted");
	good = "GET /a HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n";
	n = strlen(good);
	bad = 0;
	for (size_t i = 0; i < n; i++)
		if (http_parse(good, i, &lim, &r) != HTTP_AGAIN)
			bad++;
	ok(bad == 0, "every prefix of a good head asks for more");
	ok(http_parse(good, n, &lim, &r) == 0, "and the whole head parses");
}

/*
 * A request line of exactly n octets (without its CRLF) and a Host,
 * its target one path plus a query that pads it.
 */
static size_t
line_of(char *buf, size_t cap, size_t n, const char *end)
{
	size_t o = (size_t)snprintf(buf, cap, "GET /f?");

	while (o < n - 9 && o < cap)
		buf[o++] = 'x';
	return o + (size_t)snprintf(buf + o, cap - o, " HTTP/1.1%s", end);
}

/*
 * RFC 9112 3: request lines of at least 8000 octets.  max_line counts
 * the line without its ending, whatever the rest of the head.
 */
static void
test_request_line_size(void)
{
	static char raw[20000];
	struct http_limits l = lim;
	struct http_req r;
	size_t n;

	n = line_of(raw, sizeof(raw), 8000, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 0 && r.line.n == 8000,
	    "8000-octet request line");
	n = line_of(raw, sizeof(raw), 8192, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 0 && r.line.n == 8192,
	    "request line of max_line octets");
	n = line_of(raw, sizeof(raw), 8192, "\nHost: a\n\n");
	ok(http_parse(raw, n, &l, &r) == 0, "... ended by a bare LF");
	n = line_of(raw, sizeof(raw), 8192, "");
	ok(http_parse(raw, n, &l, &r) == HTTP_AGAIN,
	    "... not ended yet: more");
	n = line_of(raw, sizeof(raw), 8192, "\r");
	ok(http_parse(raw, n, &l, &r) == HTTP_AGAIN,
	    "... and its CR only: more");
	n = line_of(raw, sizeof(raw), 8193, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 414, "one octet more: 414");
	n = line_of(raw, sizeof(raw), 8193, "");
	ok(http_parse(raw, n, &l, &r) == 414, "... known before its end");
	/* Empty lines before it do not count against it. */
	memmove(raw + 4, raw, n);
	memcpy(raw, "\r\n\r\n", 4);
	n = 4 + line_of(raw + 4, sizeof(raw) - 4, 8192,
	    "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 0, "leading empty lines apart");
	/* max_header_line has no say over the request line. */
	l.max_field = 100;
	n = line_of(raw, sizeof(raw), 8192, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 0, "max_field is for header lines");
	/* The limit is the caller's: 16000 when asked. */
	l.max_line = 16000;
	n = line_of(raw, sizeof(raw), 16000, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 0, "a 16000-octet limit");
	n = line_of(raw, sizeof(raw), 16001, "\r\nHost: a\r\n\r\n");
	ok(http_parse(raw, n, &l, &r) == 414, "and one octet over it");
	/* A header line at max_field, its LF not here yet. */
	l = lim;
	l.max_field = 64;
	n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: %061d\r", 0);
	ok(http_parse(raw, n, &l, &r) == HTTP_AGAIN,
	    "header line at max_field, CR only: more");
	n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
	    "X: %062d\r", 0);
	ok(http_parse(raw, n, &l, &r) == 431, "one octet over, CR only: 431");
}

static void
test_limits(void)
{
	struct http_limits small = { .max_line = 64, .max_field = 64,
	    .max_head = 256, .max_headers = 3 };
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
	test_line_limits();
	test_request_line_size();
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

/*
 * "unit_http --corpus DIR" writes each table case to DIR as a seed for
 * fuzz/fuzz_http.c: one byte choosing the limits (0: defaults), then
 * the request.
 */
static int
write_corpus(const char *dir)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/case-%03zu", dir, i);
		if ((f = fopen(path, "w")) == NULL) {
			perror(path);
			return 1;
		}
		fputc(i % 4 == 3, f);	/* a quarter with the small limits */
		fputs(cases[i].raw, f);
		if (fclose(f) == EOF) {
			perror(path);
			return 1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
		return write_corpus(argv[2]);
	test_table();
	test_nul();
	test_prefixes();
	test_fields();
	test_limits();
	test_dates();
	return tap_done();
}
