#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "chan.h"

union cbuf {
	struct cmsghdr	hdr;
	char		buf[CMSG_SPACE(CHAN_MAX_FDS * sizeof(int))];
};

int
chan_pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv);
}

int
chan_send(int fd, const struct chan_msg *m)
{
	unsigned char type = (unsigned char)m->type;
	struct iovec iov[2] = { { &type, 1 },
		{ (void *)(uintptr_t)m->data, m->len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	union cbuf cm;

	if (m->nfds < 0 || m->nfds > CHAN_MAX_FDS || m->len > CHAN_MAX_DATA) {
		errno = EINVAL;
		return -1;
	}
	if (m->nfds > 0) {
		struct cmsghdr *c;
		size_t n = (size_t)m->nfds * sizeof(int);

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(n);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n);
		memcpy(CMSG_DATA(c), m->fds, n);
	}
	return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == -1 ? -1 : 0;
}

int
chan_full(void)
{
	/* A datagram socket's full queue: EAGAIN, or ENOBUFS on Linux. */
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
}

/* Take the descriptors of msg into m; close any beyond CHAN_MAX_FDS. */
static void
take_fds(struct msghdr *msg, struct chan_msg *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL;
	    c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nfds < CHAN_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else
				close(fd);
		}
	}
}

int
chan_recv(int fd, struct chan_msg *m)
{
	unsigned char type;
	struct iovec iov[2] = { { &type, 1 }, { m->data, CHAN_MAX_DATA } };
	union cbuf cm;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2,
		.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	ssize_t n;

	m->nfds = 0;
	m->len = 0;
	while ((n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) == -1 &&
	    errno == EINTR)
		;
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	take_fds(&msg, m);
	if (n == 0) {
		/* An empty datagram has no type: nothing we sent. */
		while (m->nfds > 0)
			close(m->fds[--m->nfds]);
		errno = EPROTO;
		return -1;
	}
	m->type = type;
	m->len = (size_t)n - 1;
	return 1;
}
