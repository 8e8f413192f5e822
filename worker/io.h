/*
 * Non-blocking socket output.  A response is sent at once as far as the
 * socket takes it (usually all of it); what does not fit waits in a
 * struct out for the socket to become writable again, so a slow reader
 * holds a few bytes of memory and a descriptor, never the worker.  The
 * part that waits owns what it needs: a copy of the unsent memory bytes
 * and a descriptor of its own for the file, so the open-file cache and
 * the worker's buffers are free to move on.  Over TLS the same goes
 * through OpenSSL (tlsconn.c): a file is read in pieces of
 * IO_TLS_CHUNK and encrypted (no kernel TLS: doc/design.md 12).
 */
#ifndef IO_H
#define IO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* What a send came to. */
enum io_rc {
	IO_DONE,	/* every byte is with the kernel */
	IO_AGAIN,	/* the socket is full: the rest waits in the struct out */
	IO_ERROR,	/* the client is gone, or we are out of memory */
};

#define IO_MAX_IOV	4	/* pieces of memory in one response */
#define IO_TLS_CHUNK	32768	/* a file over TLS: read so */

struct ssl_st;

struct out {
	struct ssl_st *ssl;	/* NULL: plain TCP */
	char	*mem;		/* unsent memory bytes (owned) */
	size_t	 mlen, moff;
	int	 ffd;		/* the file to send from (owned), or -1 */
	off_t	 foff, flen;
	char	*tbuf;		/* TLS: file bytes read, */
	size_t	 tlen, toff;	/* not yet all encrypted and sent */
};

void	io_out_init(struct out *);
/*
 * Send iov[0..n) (n <= IO_MAX_IOV), then len bytes of file ffd from
 * off (ffd -1: none).
 * own: ffd is ours to close; else it is borrowed (the open-file cache's)
 * and a copy is made if the file part must wait.
 */
enum io_rc	io_out_start(struct out *, int fd, struct ssl_st *,
		    struct iovec *, int n, int ffd, int own, off_t off,
		    off_t len);
/* The socket is writable again: send more. */
enum io_rc	io_out_more(struct out *, int fd);
/* Drop what was not sent. */
void	io_out_free(struct out *);
/* Did the last socket call fail only because it would have blocked? */
int	io_would_block(void);
/* Bytes sent but not yet acknowledged by the client; -1 if unknown. */
int	io_unacked(int fd);

#endif
