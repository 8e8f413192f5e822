/*
 * Address lists.  An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the
 * IPv4 client a dual-stack listener reports it as, so both rules and
 * peers of that form are turned into IPv4 before they are compared.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0xff, 0xff };

/* Clear the bits past the prefix, so a match is a plain comparison. */
static void
mask(uint8_t *a, int bits, int len)
{
	for (int i = 0; i < len; i++, bits -= 8)
		if (bits <= 0)
			a[i] = 0;
		else if (bits < 8)
			a[i] &= (uint8_t)(0xff << (8 - bits));
}

/* A prefix length of 0..max, digits only; -1 when malformed. */
static int
parse_bits(const char *s, int max)
{
	int v = 0;

	if (*s == '\0' || strlen(s) > 3)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

/* One "ADDR" or "ADDR/BITS" token (NUL-terminated) into e. */
static int
parse_entry(char *tok, struct acl_entry *e)
{
	char *slash = strchr(tok, '/');
	int max;

	if (slash != NULL)
		*slash++ = '\0';
	memset(e, 0, sizeof(*e));
	if (inet_pton(AF_INET, tok, e->addr) == 1) {
		e->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tok, e->addr) == 1) {
		e->family = AF_INET6;
		max = 128;
	} else
		return -1;
	e->bits = max;
	if (slash != NULL && (e->bits = parse_bits(slash, max)) == -1)
		return -1;
	if (e->family == AF_INET6 && e->bits >= 96 &&
	    memcmp(e->addr, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(e->addr, e->addr + 12, 4);
		memset(e->addr + 4, 0, 12);
		e->family = AF_INET;
		e->bits -= 96;
	}
	mask(e->addr, e->bits, e->family == AF_INET ? 4 : 16);
	return 0;
}

int
acl_parse(const char *s, struct acl *acl, char *err, size_t errlen)
{
	char tok[INET6_ADDRSTRLEN + 8];
	size_t n;

	acl->n = 0;
	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			return 0;
		n = strcspn(s, " \t");
		if (acl->n == ACL_MAX) {
			snprintf(err, errlen, "more than %d entries, from "
			    "'%.*s'", ACL_MAX, (int)n, s);
			return -1;
		}
		if (n >= sizeof(tok))
			goto bad;
		memcpy(tok, s, n);
		tok[n] = '\0';
		if (parse_entry(tok, &acl->e[acl->n]) == -1)
			goto bad;
		acl->n++;
		s += n;
	}
bad:
	snprintf(err, errlen, "invalid address or prefix '%.*s'", (int)n, s);
	return -1;
}

static int
entry_match(const struct acl_entry *e, int family, const uint8_t *a)
{
	int whole = e->bits / 8, rest = e->bits % 8;

	if (e->family != family || memcmp(e->addr, a, (size_t)whole) != 0)
		return 0;
	return rest == 0 ||
	    (a[whole] & (uint8_t)(0xff << (8 - rest))) == e->addr[whole];
}

int
acl_match(const struct acl *acl, const struct sockaddr *sa)
{
	const uint8_t *a;
	int family = sa->sa_family;

	if (family == AF_INET)
		a = (const uint8_t *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	else if (family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			family = AF_INET;
			a += 12;
		}
	} else
		return 0;
	for (int i = 0; i < acl->n; i++)
		if (entry_match(&acl->e[i], family, a))
			return 1;
	return 0;
}
