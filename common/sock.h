/* Listening sockets: parse ADDR:PORT, bind, describe, queue depth. */
#ifndef SOCK_H
#define SOCK_H

#include <stddef.h>
#include <sys/socket.h>

/* "1.2.3.4:80", "[::1]:80", "*:80", "80"; -1 when malformed. */
int	sock_parse(const char *, struct sockaddr_storage *);
int	sock_same(const struct sockaddr_storage *,
	    const struct sockaddr_storage *);
/* Bind and listen with SO_REUSEADDR; -1 with errno set. */
int	sock_listen(const struct sockaddr_storage *, int backlog);
/* The bound address as "ADDR:PORT" (the real port when 0 was asked). */
void	sock_name(int fd, char *buf, size_t len);
/*
 * A listener takes no new connection from now on (it drops their SYNs);
 * those in its accept queue can still be accepted.  -1 with errno.
 */
int	sock_refuse(int fd);
/* Connections waiting in a listener's accept queue, or -1. */
int	sock_queue_len(int fd);
/*
 * Sockets handed over by an old master or by systemd socket activation:
 * LISTEN_FDS descriptors from 3 on, ours if LISTEN_PID is our pid.  Puts
 * up to max of them in fds, makes them close-on-exec, removes the
 * variables from the environment; returns how many.
 */
int	sock_inherit(int *fds, int max);
/*
 * The index among fds[0..n) of a socket bound to ss, skipping those
 * with taken[i] set; -1: none.  With any_port, a port of 0 in ss
 * matches any port (a handed-over socket keeps the port it has).
 */
int	sock_find(const int *fds, int n, const int *taken,
	    const struct sockaddr_storage *ss, int any_port);

#endif
