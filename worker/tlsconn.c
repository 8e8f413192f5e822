/*
 * A connection's TLS (see tlsconn.h).  OpenSSL's error queue is
 * per-thread state that a failed call leaves behind: it is emptied
 * before every call, or an old error would be taken for a new one.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tlsconn.h"

#define TLS_RECORD	16384	/* the largest record's payload */

struct ssl_st *
tls_conn_new(struct ssl_ctx_st *ctx, int fd)
{
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

/*
 * A failed call: EAGAIN for a would-block either way; else the
 * connection is unsound (no close_notify may follow a fatal error) and
 * errno says how.
 */
static int
failed(SSL *ssl, int ret)
{
	int e = SSL_get_error(ssl, ret);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	/* The client's close_notify: ours answers it (conn_close). */
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	SSL_set_quiet_shutdown(ssl, 1);
	if (e != SSL_ERROR_SYSCALL || errno == 0)
		errno = e == SSL_ERROR_SYSCALL ? ECONNRESET : EPROTO;
	ERR_clear_error();
	return -1;
}

enum tls_rc
tls_conn_handshake(struct ssl_st *ssl)
{
	int ret, e;

	ERR_clear_error();
	if ((ret = SSL_do_handshake(ssl)) == 1)
		return TLS_DONE;
	e = SSL_get_error(ssl, ret);
	if (e == SSL_ERROR_WANT_READ)
		return TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return TLS_WANT_WRITE;
	SSL_set_quiet_shutdown(ssl, 1);
	ERR_clear_error();
	return TLS_FAIL;
}

ssize_t
tls_conn_recv(struct ssl_st *ssl, void *buf, size_t len)
{
	size_t n;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_read_ex(ssl, buf, len, &n)) == 1)
		return (ssize_t)n;
	return failed(ssl, ret);
}

ssize_t
tls_conn_sendv(struct ssl_st *ssl, const struct iovec *iov, int n)
{
	char buf[TLS_RECORD];
	const void *p = iov[0].iov_base;
	size_t len = iov[0].iov_len, w;
	int ret;

	/*
	 * Small pieces (a head, a frame header) are gathered into one
	 * record: a record each would cost bytes and a system call each.
	 * The same bytes offered again gather the same way, as a retry
	 * after EAGAIN must.
	 */
	if (n > 1 && len < TLS_RECORD) {
		len = 0;
		for (int i = 0; i < n && len < TLS_RECORD; i++) {
			size_t take = iov[i].iov_len < TLS_RECORD - len ?
			    iov[i].iov_len : TLS_RECORD - len;

			memcpy(buf + len, iov[i].iov_base, take);
			len += take;
		}
		p = buf;
	}
	if (len == 0)
		return 0;
	ERR_clear_error();
	if ((ret = SSL_write_ex(ssl, p, len, &w)) == 1)
		return (ssize_t)w;
	ret = failed(ssl, ret);
	if (ret == 0)
		errno = EPIPE;
	return -1;
}

int
tls_conn_pending(struct ssl_st *ssl)
{
	return SSL_pending(ssl) > 0;
}

int
tls_conn_v13(struct ssl_st *ssl)
{
	return SSL_version(ssl) == TLS1_3_VERSION;
}

int
tls_conn_resumed(struct ssl_st *ssl)
{
	return SSL_session_reused(ssl);
}

void
tls_conn_describe(struct ssl_st *ssl, char *buf, size_t len)
{
	if (ssl == NULL || !SSL_is_init_finished(ssl))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s %s", SSL_get_version(ssl),
		    SSL_get_cipher_name(ssl));
}

void
tls_conn_notify(struct ssl_st *ssl)
{
	if (SSL_get_quiet_shutdown(ssl) || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

void
tls_conn_free(struct ssl_st *ssl)
{
	SSL_free(ssl);
}
