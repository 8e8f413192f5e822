/*
 * A connection's TLS (OpenSSL 3) over its non-blocking socket: the
 * handshake, reads and writes with recv/sendmsg's conventions (-1 with
 * errno EAGAIN when the socket would block, whichever way), and the
 * close_notify.  The contexts are common/tls.c's, built by the master.
 */
#ifndef TLSCONN_H
#define TLSCONN_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ssl_st;
struct ssl_ctx_st;

enum tls_rc { TLS_DONE, TLS_WANT_READ, TLS_WANT_WRITE, TLS_FAIL };

/* A server-side TLS connection on fd; NULL when out of memory. */
struct ssl_st	*tls_conn_new(struct ssl_ctx_st *, int fd);
enum tls_rc	 tls_conn_handshake(struct ssl_st *);
/* As recv(): bytes, 0 at the client's close_notify or EOF, -1 errno. */
ssize_t		 tls_conn_recv(struct ssl_st *, void *, size_t);
/*
 * As sendmsg(): bytes taken from iov[0..n), at most one record's, or -1
 * with errno.  After EAGAIN the same bytes must be offered again (more
 * may follow them): OpenSSL holds the record it made of them.
 */
ssize_t		 tls_conn_sendv(struct ssl_st *, const struct iovec *, int n);
/* Decrypted bytes waiting in OpenSSL: readable without the socket. */
int		 tls_conn_pending(struct ssl_st *);
/* After the handshake: TLS 1.3?  Resumed?  For the scoreboard. */
int		 tls_conn_v13(struct ssl_st *);
int		 tls_conn_resumed(struct ssl_st *);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256", or "-" (ssl NULL: plain), in buf. */
void		 tls_conn_describe(struct ssl_st *, char *buf, size_t len);
/* Send close_notify if the connection is sound (best effort, no wait). */
void		 tls_conn_notify(struct ssl_st *);
void		 tls_conn_free(struct ssl_st *);

#endif
