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
/* Connections waiting in a listener's accept queue, or -1. */
int	sock_queue_len(int fd);

#endif
