/*
 * The real client address behind a balancer: the PROXY protocol header
 * (v1 text, v2 binary; haproxy's proxy-protocol.txt) a balancer sends
 * first on a connection, and the forwarding headers of a request
 * (X-Forwarded-For, Forwarded of RFC 7239, X-Real-IP).  Pure: bytes in,
 * a verdict and addresses out; conn.c decides whom to believe.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#include "acl.h"
#include "cfg.h"
#include "http.h"

#define PROXY_V1_MAX	107	/* a v1 header, CRLF included */
#define PROXY_V2_FIXED	16	/* signature, command, family, length */

/* proxy_parse() needs more bytes, or found no valid header. */
#define PROXY_AGAIN	0
#define PROXY_BAD	(-1)

struct proxy_info {
	int			 version;	/* 1 or 2, once known */
	/*
	 * Use the connection's own addresses: a v2 LOCAL (a balancer's
	 * health check), a v1 UNKNOWN, or a v2 PROXY of a family or
	 * transport other than TCP over IPv4 or IPv6.
	 */
	int			 local;
	struct sockaddr_storage	 src, dst;	/* unless local */
	socklen_t		 srclen, dstlen;
	size_t			 want;		/* PROXY_AGAIN: bytes at most to read next */
	const char		*why;		/* PROXY_BAD: what is wrong */
};

/*
 * Parse the PROXY header at the start of buf[0..len).  Returns its
 * length when it is complete and valid (what follows is the client's
 * data), PROXY_AGAIN when more bytes are needed (want says how many at
 * most: never past the end of a v2 header, nor past 107 bytes of a v1
 * one), or PROXY_BAD with why set.  A v2 header longer than max bytes
 * in all is refused.
 */
long	proxy_parse(const unsigned char *buf, size_t len, size_t max,
	    struct proxy_info *);

/* The hops looked at, from the right: a longer chain is cut there. */
#define PROXY_HOPS	32

/*
 * The client address a forwarding header gives, from the values of its
 * lines in order (n of them; several lines are one comma-separated
 * list).  The hops are walked from the right, the nearest first: each
 * address is taken, and the walk goes on past it only while it is in
 * trusted (a proxy of ours, whose own entry we believe), so the
 * right-most address that is not trusted wins, or the left-most when
 * all are.  An entry that is no address (unknown, an obfuscated
 * identifier, garbage) ends the walk: what its writer forwarded
 * cannot be believed.  Forwarded's for= may be quoted; IPv6 addresses
 * may be in brackets; a port after an address is taken too.  Returns 1
 * with *ss and *sslen set, or 0 when the header names no usable address.
 */
int	proxy_forwarded(enum cfg_real_ip, const struct http_str *vals, int n,
	    const struct acl *trusted, struct sockaddr_storage *ss,
	    socklen_t *sslen);

#endif
