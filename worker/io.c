#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "ev.h"
#include "io.h"

#define LINGER_MS	2000		/* drain unread input before close */
#define LINGER_BYTES	((size_t)256 * 1024)
#define WRITE_CHECK_MS	1000		/* how often a stalled write looks for progress */

/*
 * On stop, an idle keep-alive connection gets a short grace: a request
 * already on its way is answered (with Connection: close) rather than
 * met with a reset.  Returns the deadline to use, or -1 when it passed.
 */
static int64_t
stop_deadline(struct io *io, int64_t deadline)
{
	if (io->stop_seen == 0)
		io->stop_seen = clock_ms();
	if (deadline > io->stop_seen + IO_STOP_GRACE_MS)
		deadline = io->stop_seen + IO_STOP_GRACE_MS;
	return clock_ms() >= deadline ? -1 : deadline;
}

ssize_t
io_read(struct io *io, int fd, char *p, size_t n, int64_t deadline, int idle)
{
	for (;;) {
		ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left;

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (idle && *io->stop &&
		    (deadline = stop_deadline(io, deadline)) == -1) {
			errno = ECANCELED;
			return -1;
		}
		if ((left = deadline - clock_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		ev_leave(io->ev);
		if (poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left)
		    == -1 && errno != EINTR)
			return -1;
	}
}

/* Bytes sent but not yet acknowledged by the client; -1 if unknown. */
static int
unacked(int fd)
{
	int n;

	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

/*
 * The socket buffer is full: wait until it takes more.  POLLOUT comes
 * only once about a third of the buffer is free, which a slow but steady
 * reader may take long to reach, so progress is measured as well: every
 * WRITE_CHECK_MS, the bytes still unacknowledged; any decrease starts
 * the send_timeout clock again.  A stop (EINTR) does not end the wait:
 * the response in flight is finished.
 *
 * No shorter rule applies while others wait, as header_timeout_busy
 * does for reads: a receiver acknowledges in bursts, when it opens its
 * window, which for a reader taking 1 MB/s into a large buffer can be
 * seconds apart, and cutting such a download would be wrong.  Parked
 * connections of this worker wait for it (see preforkd.conf(5),
 * worker_connections).
 */
static int
wait_writable(struct io *io, int fd)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	int64_t start = clock_ms(), left;
	int q, outq = unacked(fd), r;

	ev_leave(io->ev);
	for (;;) {
		if ((left = start + io->send_timeout - clock_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (left > WRITE_CHECK_MS)
			left = WRITE_CHECK_MS;
		if ((r = poll(&pfd, 1, (int)left)) == 1)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if ((q = unacked(fd)) >= 0 && q < outq) {
			outq = q;		/* it reads: a new stall clock */
			start = clock_ms();
		}
	}
}

/* Is this send error "try again later"? Then wait; -1: give up. */
static int
send_again(struct io *io, int fd)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return wait_writable(io, fd);
	return -1;
}

int
io_send(struct io *io, int fd, const char *p, size_t n, int flags)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | flags);

		if (w == -1) {
			if (send_again(io, fd) == -1)
				return -1;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
io_sendfile(struct io *io, int fd, int ffd, off_t off, off_t len)
{
	while (len > 0) {
		size_t chunk = len > (1 << 30) ? (1 << 30) : (size_t)len;
		ssize_t w = sendfile(fd, ffd, &off, chunk);

		if (w == -1) {
			if (send_again(io, fd) == -1)
				return -1;
			continue;
		}
		if (w == 0)
			return -1;	/* file shrank under us */
		len -= w;
	}
	return 0;
}

/* Send every byte of iov[0..n), resuming after partial writes. */
int
io_sendv(struct io *io, int fd, struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (m.msg_iovlen > 0) {
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (w == -1) {
			if (send_again(io, fd) == -1)
				return -1;
			continue;
		}
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

/*
 * After shutdown(SHUT_WR), read and drop what the client still sends,
 * so the kernel does not answer unread data with a reset that could
 * destroy the response in flight.
 */
void
io_close(struct io *io, int fd, int dirty, int hurry)
{
	char sink[4096];
	int64_t deadline;
	size_t total = 0;
	ssize_t n;

	if (!dirty) {
		n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n <= 0) {
			close(fd);
			return;
		}
	}
	if (shutdown(fd, SHUT_WR) == -1) {
		close(fd);
		return;
	}
	/*
	 * A client dropped for being slow while others wait gets no more of
	 * the worker's time: only what it sent already is drained.
	 */
	deadline = clock_ms() + (hurry ? 0 : LINGER_MS);
	while (total < LINGER_BYTES) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = deadline - clock_ms();

		if (left <= 0 && !hurry)
			break;
		ev_leave(io->ev);
		if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0)
			break;
		n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0)
			total += (size_t)n;
	}
	close(fd);
}
