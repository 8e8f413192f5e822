#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

static int
parse_port(const char *s, in_port_t *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

int
sock_parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[64];
	const char *colon;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':' ||
		    (hl = (size_t)(close - s - 1)) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		return parse_port(close + 2, &sin6->sin6_port);
	}
	sin->sin_family = AF_INET;
	if ((colon = strrchr(s, ':')) == NULL) {
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		return parse_port(s, &sin->sin_port);
	}
	if ((hl = (size_t)(colon - s)) >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -1;
	return parse_port(colon + 1, &sin->sin_port);
}

int
sock_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_port != 0 &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && x->sin6_port != 0 &&
	    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int
sock_listen(const struct sockaddr_storage *ss, int backlog)
{
	socklen_t len = ss->ss_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd, on = 1, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	/* [::]:80 should not also grab 0.0.0.0:80: list both if wanted. */
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len) == -1 ||
	    listen(fd, backlog) == -1)
		goto fail;
	/*
	 * No Nagle: on a keep-alive connection the tail of a response would
	 * otherwise wait for the client's delayed ACK (40 ms).  Accepted
	 * sockets inherit it; MSG_MORE still joins headers and body.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		goto fail;
	/*
	 * A worker is woken only once the request has arrived, so a client
	 * that connects and says nothing never occupies one.  Best effort.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &(int){ 10 },
	    sizeof(int));
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void
sock_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

int
sock_queue_len(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	/* For a listener, Linux reports the accept queue in tcpi_unacked. */
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return -1;
	return (int)ti.tcpi_unacked;
}

int
sock_inherit(int *fds, int max)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	int count, got = 0;

	if (pid != NULL && n != NULL && atol(pid) == (long)getpid()) {
		count = atoi(n);
		for (int i = 0; i < count && got < max; i++)
			if (fcntl(3 + i, F_SETFD, FD_CLOEXEC) == 0)
				fds[got++] = 3 + i;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return got;
}

/* ss's port, or NULL when it is neither IPv4 nor IPv6. */
static in_port_t *
port_of(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return &((struct sockaddr_in *)ss)->sin_port;
	if (ss->ss_family == AF_INET6)
		return &((struct sockaddr_in6 *)ss)->sin6_port;
	return NULL;
}

int
sock_find(const int *fds, int n, const int *taken,
    const struct sockaddr_storage *ss, int any_port)
{
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage cur, want = *ss;
		socklen_t sl = sizeof(cur);
		in_port_t *wp = port_of(&want), *cp;

		if (taken[i] || getsockname(fds[i], (struct sockaddr *)&cur,
		    &sl) == -1)
			continue;
		/* Port 0 was "any": the port already bound stands. */
		cp = port_of(&cur);
		if (any_port && wp != NULL && cp != NULL && *wp == 0)
			*wp = *cp;
		if (sock_same(&want, &cur))
			return i;
	}
	return -1;
}

/*
 * A socket filter that drops every packet: on a listener it drops the
 * SYNs (and handshakes not yet complete), so no new connection joins its
 * accept queue while the ones queued already are accepted.  Clients
 * that come meanwhile retry their SYN and meet the closed port.
 */
int
sock_refuse(int fd)
{
	struct sock_filter drop[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { 1, drop };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
	    sizeof(prog));
}
