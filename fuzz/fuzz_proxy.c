/*
 * libFuzzer target: what a balancer sends before a client's request.
 * The first input byte picks the part:
 *   0  the PROXY protocol header: a complete header is no longer than
 *      the input and parses the same on its own bytes; a header asked
 *      to wait never asks for 0 bytes, nor for bytes past a v2
 *      header's end or past 107 bytes of a v1 one; every prefix of a
 *      complete header waits (a header is complete at its last byte,
 *      so conn.c never takes part of one for the whole)
 *   1  X-Forwarded-For, 2 Forwarded, 3 X-Real-IP: the rest of the
 *      input, cut at newlines, is the header's lines; an address found
 *      is IPv4 or IPv6
 */
#include "config.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"
#include "cfg.h"
#include "http.h"
#include "proxy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX	4096	/* as the head buffer */

static void
header(const uint8_t *p, size_t n)
{
	struct proxy_info pi, again;
	long rc = proxy_parse(p, n, MAX, &pi);

	if (rc > 0) {
		if ((size_t)rc > n || proxy_parse(p, (size_t)rc, MAX, &again) !=
		    rc || again.local != pi.local)
			abort();
		if (!pi.local && pi.src.ss_family != AF_INET &&
		    pi.src.ss_family != AF_INET6)
			abort();
		/* A prefix never passes for the whole header. */
		for (size_t k = 0; k < (size_t)rc; k++)
			if (proxy_parse(p, k, MAX, &again) != PROXY_AGAIN)
				abort();
	} else if (rc == PROXY_AGAIN) {
		size_t limit = n > 0 && p[0] == 'P' ? PROXY_V1_MAX : MAX;

		if (pi.want == 0 || n + pi.want > limit)
			abort();
	} else if (rc != PROXY_BAD || pi.why == NULL)
		abort();
}

static void
forwarded(enum cfg_real_ip kind, const uint8_t *p, size_t n)
{
	static struct acl trusted;
	static int ready;
	struct http_str v[8];
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *s = (const char *)p, *end = s + n;
	char err[128];
	int k = 0;

	if (!ready && acl_parse("10.0.0.0/8 192.0.2.0/24 ::1 2001:db8::/32",
	    &trusted, err, sizeof(err)) == -1)
		abort();
	ready = 1;
	while (k < 8) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		v[k++] = (struct http_str){ s, (size_t)((nl ? nl : end) - s) };
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	if (proxy_forwarded(kind, v, k, &trusted, &ss, &len) &&
	    !((ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
	    (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		header(data + 1, size - 1);
		break;
	case 1:
		forwarded(REAL_IP_XFF, data + 1, size - 1);
		break;
	case 2:
		forwarded(REAL_IP_FORWARDED, data + 1, size - 1);
		break;
	default:
		forwarded(REAL_IP_XREALIP, data + 1, size - 1);
		break;
	}
	return 0;
}
