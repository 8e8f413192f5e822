/*
 * TLS contexts (OpenSSL 3) and the session-ticket keys.  The master
 * builds the contexts from the configuration, reading certificates and
 * keys as root before any worker exists; workers inherit them with the
 * fork and never open a key file.  The ticket keys live in shared memory
 * the master writes (a new key every tls_ticket_rotate, the two before
 * it still accepted), so a ticket made by one worker resumes on any
 * other, and across reloads and binary upgrades.  See doc/design.md 12.
 */
#ifndef TLS_H
#define TLS_H

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct ssl_ctx_st;
struct tls_keys;
struct tls_server;

/*
 * The shared key store: a fresh one, or (fd >= 0) the one of the master
 * we take over from, passed across the exec of a binary upgrade.  NULL
 * with a message on failure.
 */
struct tls_keys	*tls_keys_open(int fd, char *err, size_t errlen);
/* Its descriptor, for the next binary upgrade. */
int		 tls_keys_fd(const struct tls_keys *);
/* A new current key once every_ms has passed since the last one. */
void		 tls_keys_rotate(struct tls_keys *, int every_ms);

/*
 * Contexts for c's certificates into c->tls (NULL when c has no tls
 * listener).  Errors: "FILE:LINE: message", -1.  Warnings (a
 * certificate that expires within 14 days, an incomplete chain) are
 * logged, each with its FILE:LINE.
 */
int		 tls_load(struct cfg *c, struct tls_keys *, char *err,
		    size_t errlen);
void		 tls_free(struct tls_server *);
/* The context a new connection starts with (SNI may switch it). */
struct ssl_ctx_st *tls_default_ctx(const struct tls_server *);

#endif
