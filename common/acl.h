/*
 * Address lists: "10.0.0.0/8 127.0.0.1 ::1 fe80::/10", parsed once at
 * start-up into fixed storage (struct cfg holds one, so forked workers
 * inherit it with no pointers to fix up), matched per request.
 */
#ifndef ACL_H
#define ACL_H

#include <stddef.h>
#include <stdint.h>

#define ACL_MAX		64

struct sockaddr;

struct acl_entry {
	int	family;		/* AF_INET or AF_INET6 */
	int	bits;		/* prefix length */
	uint8_t	addr[16];	/* network byte order, host bits zero */
};

struct acl {
	int			n;
	struct acl_entry	e[ACL_MAX];
};

/*
 * Parse a space-separated list of addresses and prefixes into acl.  On
 * error, fill err with a message naming the bad token and return -1.
 */
int	acl_parse(const char *, struct acl *, char *err, size_t errlen);
/* 1 if the address (AF_INET or AF_INET6) matches an entry, else 0. */
int	acl_match(const struct acl *, const struct sockaddr *);

#endif
