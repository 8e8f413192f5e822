#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "tlsconn.h"

void
io_out_init(struct out *o)
{
	*o = (struct out){ .ffd = -1 };
}

void
io_out_free(struct out *o)
{
	free(o->mem);
	free(o->tbuf);
	if (o->ffd != -1)
		close(o->ffd);
	io_out_init(o);
}

int
io_unacked(int fd)
{
	int n;

	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

int
io_would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/*
 * Send what iov[0..n) holds, leaving the caller's vector as it was; how
 * far it got in *sent.  -1: error.
 */
static int
send_iov(int fd, struct ssl_st *ssl, const struct iovec *iov, int n,
    size_t *sent)
{
	struct iovec v[IO_MAX_IOV];
	struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };

	memcpy(v, iov, (size_t)n * sizeof(*v));
	*sent = 0;
	while (m.msg_iovlen > 0) {
		ssize_t w = ssl != NULL ? tls_conn_sendv(ssl, m.msg_iov,
		    (int)m.msg_iovlen) : sendmsg(fd, &m, MSG_NOSIGNAL |
		    MSG_DONTWAIT);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return io_would_block() ? 0 : -1;
		}
		*sent += (size_t)w;
		while (m.msg_iovlen > 0 && (size_t)w >= m.msg_iov->iov_len) {
			w -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen > 0) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
			m.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Keep a copy of iov's bytes from offset skip on. */
static int
keep_rest(struct out *o, const struct iovec *iov, int n, size_t skip,
    size_t left)
{
	if ((o->mem = malloc(left)) == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(o->mem + o->mlen, (const char *)iov[i].iov_base + skip,
		    l - skip);
		o->mlen += l - skip;
		skip = 0;
	}
	return 0;
}

/*
 * The file part over TLS: a piece read, encrypted and sent
 * at a time; a piece the socket did not take stays in tbuf, offered
 * again as it was (OpenSSL holds the record it made of it).
 */
static enum io_rc
send_file_tls(struct out *o)
{
	for (;;) {
		if (o->toff == o->tlen) {
			size_t want = o->flen > IO_TLS_CHUNK ? IO_TLS_CHUNK :
			    (size_t)o->flen;
			ssize_t r;

			if (want == 0)
				return IO_DONE;
			if (o->tbuf == NULL &&
			    (o->tbuf = malloc(IO_TLS_CHUNK)) == NULL)
				return IO_ERROR;
			if ((r = pread(o->ffd, o->tbuf, want, o->foff)) <= 0)
				return IO_ERROR;	/* shrank, or failed */
			o->foff += r;
			o->flen -= r;
			o->tlen = (size_t)r;
			o->toff = 0;
		}
		while (o->toff < o->tlen) {
			struct iovec v = { o->tbuf + o->toff, o->tlen - o->toff };
			ssize_t w = tls_conn_sendv(o->ssl, &v, 1);

			if (w == -1)
				return io_would_block() ? IO_AGAIN : IO_ERROR;
			o->toff += (size_t)w;
		}
	}
}

/* The file part: as far as it goes. */
static enum io_rc
send_file(struct out *o, int fd)
{
	if (o->ssl != NULL)
		return send_file_tls(o);
	while (o->flen > 0) {
		size_t chunk = o->flen > (1 << 30) ? (1 << 30) : (size_t)o->flen;
		ssize_t w = sendfile(fd, o->ffd, &o->foff, chunk);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return io_would_block() ? IO_AGAIN : IO_ERROR;
		}
		if (w == 0)
			return IO_ERROR;	/* the file shrank under us */
		o->flen -= w;
	}
	return IO_DONE;
}

enum io_rc
io_out_start(struct out *o, int fd, struct ssl_st *ssl, struct iovec *iov,
    int n, int ffd, int own, off_t off, off_t len)
{
	size_t total = 0, sent;
	enum io_rc rc;

	io_out_init(o);
	o->ssl = ssl;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (n > IO_MAX_IOV || send_iov(fd, ssl, iov, n, &sent) == -1)
		goto fail;
	if (sent < total && keep_rest(o, iov, n, sent, total - sent) == -1)
		goto fail;
	if (ffd == -1 || len == 0) {
		if (own && ffd != -1)
			close(ffd);
		return o->mem != NULL ? IO_AGAIN : IO_DONE;
	}
	o->ffd = ffd;
	o->foff = off;
	o->flen = len;
	rc = o->mem != NULL ? IO_AGAIN : send_file(o, fd);
	if (rc == IO_AGAIN && !own &&
	    (o->ffd = fcntl(ffd, F_DUPFD_CLOEXEC, 0)) == -1) {
		rc = IO_ERROR;	/* EMFILE: cannot keep the file */
		own = 1;
	}
	if (rc != IO_AGAIN) {
		if (own && o->ffd != -1)
			close(o->ffd);
		o->ffd = -1;
		if (rc == IO_ERROR)
			io_out_free(o);
	}
	return rc;
fail:
	if (own && ffd != -1)
		close(ffd);
	io_out_free(o);
	return IO_ERROR;
}

enum io_rc
io_out_more(struct out *o, int fd)
{
	enum io_rc rc;

	if (o->moff < o->mlen) {
		struct iovec iov = { o->mem + o->moff, o->mlen - o->moff };
		size_t sent;

		if (send_iov(fd, o->ssl, &iov, 1, &sent) == -1) {
			io_out_free(o);
			return IO_ERROR;
		}
		o->moff += sent;
		if (o->moff < o->mlen)
			return IO_AGAIN;
	}
	if (o->ffd == -1)
		rc = IO_DONE;
	else
		rc = send_file(o, fd);
	if (rc != IO_AGAIN)
		io_out_free(o);
	return rc;
}
