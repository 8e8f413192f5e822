/*
 * Unit tests of worker/proxy.c: the PROXY protocol header (v1 and v2,
 * whole and byte by byte) and the forwarding headers' right-most
 * untrusted address.  "unit_proxy --corpus DIR" writes the headers of
 * the table to DIR as fuzzer seeds (fuzz/corpus-proxy).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"
#include "cfg.h"
#include "http.h"
#include "proxy.h"
#include "tap.h"

#define V2SIG	"\r\n\r\n\0\r\nQUIT\n"

/* A v2 header: signature, ver_cmd, fam, length, then the block. */
#define V2(vc, fam, hi, lo)	V2SIG vc fam hi lo
#define V2_TCP4	V2("\x21", "\x11", "\x00", "\x0c") \
	"\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\x1f\x90" "\x00\x50"
#define V2_TCP6	V2("\x21", "\x21", "\x00", "\x24") \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01" \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02" "\x04\xd2" "\x01\xbb"
#define V2_LOCAL	V2("\x20", "\x00", "\x00", "\x00")
#define A13	"aaaaaaaaaaaaa"
#define A91	A13 A13 A13 A13 A13 A13 A13

static const struct {
	const char	*raw;
	size_t		 len;		/* 0: strlen(raw) */
	long		 want;		/* header length, PROXY_AGAIN or _BAD */
	int		 local;
	const char	*src;		/* "ADDR PORT", when not local */
	const char	*why;
} cases[] = {
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80\r\n", 0, 43, 0,
	    "192.0.2.1 8080", "v1 TCP4" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80\r\nGET / HTTP/1.1\r\n",
	    0, 43, 0, "192.0.2.1 8080", "v1 TCP4, the request behind it" },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n", 0, 45, 0,
	    "2001:db8::1 1234", "v1 TCP6" },
	{ "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", 0, 37, 0,
	    "::ffff:192.0.2.1 1", "v1 TCP6 of a mapped address" },
	{ "PROXY UNKNOWN\r\n", 0, 15, 1, NULL, "v1 UNKNOWN" },
	{ "PROXY UNKNOWN whatever follows 1 2\r\n", 0, 36, 1, NULL,
	    "v1 UNKNOWN with fields, ignored" },
	{ "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 0,
	    56, 0, "255.255.255.255 65535", "v1 largest TCP4" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80", 0, PROXY_AGAIN, 0,
	    NULL, "v1 without its CRLF yet" },
	{ "PROX", 0, PROXY_AGAIN, 0, NULL, "v1 signature in part" },
	{ "PROXY", 0, PROXY_AGAIN, 0, NULL, "v1 signature without its space" },
	{ "", 0, PROXY_AGAIN, 0, NULL, "nothing yet" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, PROXY_BAD, 0, NULL,
	    "an HTTP request, no header" },
	{ "PROXZ TCP4", 0, PROXY_BAD, 0, NULL, "v1 signature wrong" },
	{ "PROXY\r\n", 0, PROXY_BAD, 0, NULL, "v1 PROXY alone" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80\n", 0, PROXY_BAD, 0,
	    NULL, "v1 bare LF" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80 \r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 trailing space" },
	{ "PROXY TCP4  192.0.2.1 198.51.100.2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 two spaces" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080\r\n", 0, PROXY_BAD, 0, NULL,
	    "v1 a field missing" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80 9\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 a field too many" },
	{ "PROXY TCP5 192.0.2.1 198.51.100.2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 unknown protocol" },
	{ "PROXY tcp4 192.0.2.1 198.51.100.2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 protocol in lower case" },
	{ "PROXY TCP4 2001:db8::1 198.51.100.2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 TCP4 of an IPv6 address" },
	{ "PROXY TCP6 192.0.2.1 2001:db8::2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 TCP6 of an IPv4 address" },
	{ "PROXY TCP4 192.0.2.256 198.51.100.2 8080 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 octet out of range" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 65536 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 port out of range" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 -1 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 negative port" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8x 80\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 port not a number" },
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 8080 80\r\r\n", 0, PROXY_BAD, 0,
	    NULL, "v1 CR inside" },
	{ "PROXY TCP4 192.0.2.1\0 198.51.100.2 8080 80\r\n", 44, PROXY_BAD, 0,
	    NULL, "v1 NUL inside" },
	{ "PROXY UNKNOWNX\r\n", 0, PROXY_BAD, 0, NULL, "v1 UNKNOWNX" },
	{ "PROXY UNKNOWN " A91 "\r\n", 0, 107, 1, NULL,
	    "v1 of 107 bytes exactly" },
	{ "PROXY UNKNOWN " A91 "a\r\n", 0, PROXY_BAD, 0, NULL,
	    "v1 of 108 bytes" },
	{ V2_TCP4, 28, 28, 0, "192.0.2.1 8080", "v2 TCP over IPv4" },
	{ V2_TCP4 "GET /", 33, 28, 0, "192.0.2.1 8080",
	    "v2 TCP4, the request behind it" },
	{ V2_TCP6, 52, 52, 0, "2001:db8::1 1234", "v2 TCP over IPv6" },
	{ V2_LOCAL, 16, 16, 1, NULL, "v2 LOCAL" },
	{ V2("\x20", "\x11", "\x00", "\x0c") "\0\0\0\0\0\0\0\0\0\0\0\0", 28,
	    28, 1, NULL, "v2 LOCAL with a block, ignored" },
	{ V2("\x20", "\xff", "\x00", "\x00"), 16, 16, 1, NULL,
	    "v2 LOCAL of a nonsense family, ignored" },
	{ V2("\x21", "\x00", "\x00", "\x00"), 16, 16, 1, NULL,
	    "v2 PROXY of AF_UNSPEC: the connection's own address" },
	{ V2("\x21", "\x12", "\x00", "\x0c") "\0\0\0\0\0\0\0\0\0\0\0\0", 28,
	    28, 1, NULL, "v2 PROXY of UDP: the connection's own address" },
	{ V2("\x21", "\x31", "\x00\xd8", "") "", 16, PROXY_AGAIN, 0, NULL,
	    "v2 PROXY of AF_UNIX, its block to come" },
	{ V2("\x21", "\x11", "\x00", "\x11")
	    "\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\x1f\x90" "\x00\x50"
	    "\x04\x00\x02" "ab", 33, 33, 0, "192.0.2.1 8080",
	    "v2 TCP4 with a TLV, skipped" },
	{ V2SIG, 12, PROXY_AGAIN, 0, NULL, "v2 signature alone" },
	{ V2SIG "\x21\x11\x00", 15, PROXY_AGAIN, 0, NULL,
	    "v2 fixed part in part" },
	{ V2_TCP4, 20, PROXY_AGAIN, 0, NULL, "v2 block in part" },
	{ "\r\n\r\n\0\r\nQUIX\n", 12, PROXY_BAD, 0, NULL,
	    "v2 signature wrong" },
	{ "\r\n\r\n", 4, PROXY_AGAIN, 0, NULL, "v2 signature in part" },
	{ V2("\x11", "\x11", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 version 1 in the binary form" },
	{ V2("\x31", "\x11", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 version 3" },
	{ V2("\x22", "\x11", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 command 2" },
	{ V2("\x21", "\x41", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 family 4" },
	{ V2("\x21", "\x13", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 transport 3" },
	{ V2("\x21", "\x11", "\x00", "\x0b"), 16, PROXY_BAD, 0, NULL,
	    "v2 TCP4 block too short" },
	{ V2("\x21", "\x21", "\x00", "\x0c"), 16, PROXY_BAD, 0, NULL,
	    "v2 TCP6 block too short" },
	{ V2("\x21", "\x11", "\xff", "\xff"), 16, PROXY_BAD, 0, NULL,
	    "v2 longer than the buffer" },
};

#define MAX	4096	/* what conn.c passes: the head buffer's size */

static size_t
len_of(int i)
{
	return cases[i].len ? cases[i].len : strlen(cases[i].raw);
}

/* "ADDR PORT" of an address. */
static void
addr_text(const struct sockaddr_storage *ss, socklen_t len, char *buf,
    size_t n)
{
	char host[INET6_ADDRSTRLEN], port[8];

	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
	    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, n, "?");
	else
		snprintf(buf, n, "%s %s", host, port);
}

static void
test_cases(void)
{
	struct proxy_info pi;
	char got[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long rc = proxy_parse((const unsigned char *)cases[i].raw,
		    len_of((int)i), MAX, &pi);
		int right = rc == cases[i].want;

		if (right && rc > 0)
			right = pi.local == cases[i].local;
		got[0] = '\0';
		if (right && rc > 0 && !pi.local) {
			addr_text(&pi.src, pi.srclen, got, sizeof(got));
			right = strcmp(got, cases[i].src) == 0;
		}
		ok(right, "%s: %ld%s%s%s%s", cases[i].why, rc,
		    got[0] ? " " : "", got, rc == PROXY_BAD ? ": " : "",
		    rc == PROXY_BAD ? pi.why : "");
	}
}

/*
 * Every valid header, fed one byte at a time as a slow balancer would:
 * complete at its last byte, never before, and no read asked for goes
 * past the end of a v2 header or past 107 bytes of a v1 one.
 */
static void
test_bytewise(void)
{
	struct proxy_info pi;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t k, limit;
		long rc = PROXY_AGAIN;
		int over = 0;

		if (cases[i].want <= 0)
			continue;
		limit = cases[i].raw[0] == 'P' ? PROXY_V1_MAX :
		    (size_t)cases[i].want;
		for (k = 0; k <= len_of((int)i); k++) {
			rc = proxy_parse((const unsigned char *)cases[i].raw, k,
			    MAX, &pi);
			if (rc != PROXY_AGAIN)
				break;
			if (pi.want == 0 || k + pi.want > limit)
				over = 1;
		}
		ok(rc == cases[i].want && k == (size_t)rc && !over,
		    "byte by byte: %s (complete at %zu)", cases[i].why, k);
	}
}

/* v2: the reads conn.c makes are the 16 bytes, then exactly the rest. */
static void
test_v2_reads(void)
{
	static const char h[] = V2_TCP6 "GET / HTTP/1.1\r\n";
	struct proxy_info pi;

	ok(proxy_parse((const unsigned char *)h, 0, MAX, &pi) == PROXY_AGAIN &&
	    pi.want == 16, "v2: the first read is 16 bytes (%zu)", pi.want);
	ok(proxy_parse((const unsigned char *)h, 16, MAX, &pi) == PROXY_AGAIN &&
	    pi.want == 36, "v2: then exactly the block (%zu)", pi.want);
	ok(proxy_parse((const unsigned char *)h, 30, MAX, &pi) == PROXY_AGAIN &&
	    pi.want == 22, "v2: then what is left of it (%zu)", pi.want);
	ok(proxy_parse((const unsigned char *)"PROXY TCP4", 10, MAX, &pi) ==
	    PROXY_AGAIN && pi.want == 97, "v1: up to 107 bytes (%zu)", pi.want);
	ok(proxy_parse((const unsigned char *)h, sizeof(h) - 1, 52, &pi) == 52,
	    "v2: a header of max bytes is taken");
	ok(proxy_parse((const unsigned char *)h, sizeof(h) - 1, 51, &pi) ==
	    PROXY_BAD, "v2: one byte over max is refused");
}

/* --- forwarding headers ----------------------------------------------- */

static const struct {
	enum cfg_real_ip kind;
	const char	*lines[3];	/* the header's lines, NULL-ended */
	const char	*want;		/* "ADDR PORT", or NULL: none */
	const char	*why;
} fwd[] = {
	{ REAL_IP_XFF, { "192.0.2.1", NULL }, "192.0.2.1 0", "XFF one" },
	{ REAL_IP_XFF, { "203.0.113.9, 192.0.2.1", NULL }, "192.0.2.1 0",
	    "XFF right-most untrusted wins" },
	{ REAL_IP_XFF, { "203.0.113.9, 192.0.2.1, 10.0.0.2", NULL },
	    "192.0.2.1 0", "XFF a trusted hop skipped" },
	{ REAL_IP_XFF, { "10.0.0.3, 10.0.0.2", NULL }, "10.0.0.3 0",
	    "XFF all trusted: the left-most" },
	{ REAL_IP_XFF, { "203.0.113.9", "192.0.2.1, 10.0.0.2", NULL },
	    "192.0.2.1 0", "XFF lines joined in order" },
	{ REAL_IP_XFF, { "203.0.113.9, 10.0.0.2", "10.0.0.4", NULL },
	    "203.0.113.9 0", "XFF trusted hops across lines" },
	{ REAL_IP_XFF, { "192.0.2.1,,  ,10.0.0.2 ", NULL }, "192.0.2.1 0",
	    "XFF empty elements and blanks" },
	{ REAL_IP_XFF, { "192.0.2.1:4711", NULL }, "192.0.2.1 4711",
	    "XFF IPv4 with a port" },
	{ REAL_IP_XFF, { "2001:db8::7", NULL }, "2001:db8::7 0", "XFF IPv6" },
	{ REAL_IP_XFF, { "[2001:db8::7]:99", NULL }, "2001:db8::7 99",
	    "XFF IPv6 in brackets with a port" },
	{ REAL_IP_XFF, { "[2001:db8::7]", NULL }, "2001:db8::7 0",
	    "XFF IPv6 in brackets" },
	{ REAL_IP_XFF, { "192.0.2.1, unknown, 10.0.0.2", NULL },
	    "10.0.0.2 0", "XFF unknown ends the walk" },
	{ REAL_IP_XFF, { "192.0.2.1, junk", NULL }, NULL,
	    "XFF junk on the right: none" },
	{ REAL_IP_XFF, { "", NULL }, NULL, "XFF empty" },
	{ REAL_IP_XFF, { "192.0.2.1:99999", NULL }, NULL, "XFF bad port" },
	{ REAL_IP_XFF, { "[2001:db8::7", NULL }, NULL, "XFF open bracket" },
	{ REAL_IP_XFF, { "[192.0.2.1]", NULL }, NULL, "XFF IPv4 in brackets" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.60;proto=http;by=203.0.113.43",
	    NULL }, "192.0.2.60 0", "Forwarded one element" },
	{ REAL_IP_FORWARDED, { "for=203.0.113.9, for=192.0.2.60", NULL },
	    "192.0.2.60 0", "Forwarded right-most untrusted" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.60, FOR=10.0.0.2", NULL },
	    "192.0.2.60 0", "Forwarded For in any case, trusted skipped" },
	{ REAL_IP_FORWARDED, { "for=\"[2001:db8:cafe::17]:4711\"", NULL },
	    "2001:db8:cafe::17 4711", "Forwarded quoted IPv6 with a port" },
	{ REAL_IP_FORWARDED, { "for=\"192.0.2.43:47011\"", NULL },
	    "192.0.2.43 47011", "Forwarded quoted IPv4 with a port" },
	{ REAL_IP_FORWARDED, { "for=[2001:db8::1]:80", NULL },
	    "2001:db8::1 80", "Forwarded unquoted brackets (lenient)" },
	{ REAL_IP_FORWARDED, { "proto=https;for=192.0.2.1 ; by=x", NULL },
	    "192.0.2.1 0", "Forwarded for= not first, blanks" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.1, for=_hidden, for=10.0.0.2",
	    NULL }, "10.0.0.2 0", "Forwarded obfuscated ends the walk" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.1, for=unknown", NULL }, NULL,
	    "Forwarded unknown on the right: none" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.1, by=10.0.0.9", NULL }, NULL,
	    "Forwarded element without for: none" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.1, , for=10.0.0.2", NULL },
	    "192.0.2.1 0", "Forwarded empty element skipped" },
	{ REAL_IP_FORWARDED, { "for=192.0.2.1;for=192.0.2.2", NULL }, NULL,
	    "Forwarded for twice in one element" },
	{ REAL_IP_FORWARDED, { "for=\"192.0.2.1\\\"\"", NULL }, NULL,
	    "Forwarded escapes in the value" },
	{ REAL_IP_FORWARDED, { "for=\"192.0.2.1", NULL }, NULL,
	    "Forwarded unterminated quote" },
	{ REAL_IP_FORWARDED, { "for=203.0.113.9, x=\"a,b\";for=192.0.2.7",
	    NULL }, "192.0.2.7 0", "Forwarded comma in a quoted value" },
	{ REAL_IP_FORWARDED, { "for=203.0.113.9, garbage here",
	    NULL }, NULL, "Forwarded malformed element: none" },
	{ REAL_IP_FORWARDED, { "for=203.0.113.9", "for=10.0.0.2", NULL },
	    "203.0.113.9 0", "Forwarded lines joined" },
	{ REAL_IP_XREALIP, { " 192.0.2.5 ", NULL }, "192.0.2.5 0",
	    "X-Real-IP" },
	{ REAL_IP_XREALIP, { "10.0.0.5", NULL }, "10.0.0.5 0",
	    "X-Real-IP trusted is taken too" },
	{ REAL_IP_XREALIP, { "192.0.2.5", "192.0.2.6", NULL }, "192.0.2.6 0",
	    "X-Real-IP the last line" },
	{ REAL_IP_XREALIP, { "192.0.2.5, 192.0.2.6", NULL }, NULL,
	    "X-Real-IP a list is no address" },
};

static void
test_forwarded(const struct acl *trusted)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char got[128];

	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++) {
		struct http_str v[3];
		int n = 0, rc;

		for (; fwd[i].lines[n] != NULL; n++)
			v[n] = (struct http_str){ fwd[i].lines[n],
			    strlen(fwd[i].lines[n]) };
		rc = proxy_forwarded(fwd[i].kind, v, n, trusted, &ss, &len);
		got[0] = '\0';
		if (rc)
			addr_text(&ss, len, got, sizeof(got));
		ok(fwd[i].want ? rc && strcmp(got, fwd[i].want) == 0 : !rc,
		    "%s: %s", fwd[i].why, rc ? got : "none");
	}
}

/* A chain longer than PROXY_HOPS: the walk stops PROXY_HOPS from the right. */
static void
test_long_chain(const struct acl *trusted)
{
	char buf[2048] = "192.0.2.1";
	struct sockaddr_storage ss;
	struct http_str v;
	socklen_t len = 0;
	char got[128];

	for (int i = 0; i < PROXY_HOPS + 5; i++)
		strlcat(buf, ", 10.0.0.2", sizeof(buf));
	v = (struct http_str){ buf, strlen(buf) };
	ok(proxy_forwarded(REAL_IP_XFF, &v, 1, trusted, &ss, &len) == 1,
	    "a long chain of trusted hops gives an address");
	addr_text(&ss, len, got, sizeof(got));
	ok(strcmp(got, "10.0.0.2 0") == 0, "...the farthest hop looked at (%s)",
	    got);
}

/* Seeds for fuzz/fuzz_proxy: its first byte picks the part (see there). */
static int
write_corpus(const char *dir)
{
	char path[4096];
	FILE *f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/hdr-%02zu", dir, i);
		if ((f = fopen(path, "w")) == NULL)
			return 1;
		fputc(0, f);
		fwrite(cases[i].raw, 1, len_of((int)i), f);
		fclose(f);
	}
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++) {
		snprintf(path, sizeof(path), "%s/fwd-%02zu", dir, i);
		if ((f = fopen(path, "w")) == NULL)
			return 1;
		fputc(1 + (int)fwd[i].kind, f);
		for (int n = 0; fwd[i].lines[n] != NULL; n++)
			fprintf(f, "%s%s", n ? "\n" : "", fwd[i].lines[n]);
		fclose(f);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct acl trusted;
	char err[128];

	if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
		return write_corpus(argv[2]);
	if (acl_parse("10.0.0.0/8 ::1", &trusted, err, sizeof(err)) == -1) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	test_cases();
	test_bytewise();
	test_v2_reads();
	test_forwarded(&trusted);
	test_long_chain(&trusted);
	return tap_done();
}
