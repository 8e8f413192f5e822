/* Static files: map a URL path to a file under the document root, validators,
 * conditional requests and byte ranges. */
#ifndef FILE_H
#define FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "http.h"

#define FILE_ETAG_MAX	72	/* "ino-size-mtime-ctime", 4 x 16 hex digits */

struct file_resp {
	int		 status;	/* 200, 206, 301, 304, 403, 404, 416... */
	int		 fd;		/* open file, or -1 */
	off_t		 off, len;	/* body to send */
	off_t		 size;		/* whole file */
	const char	*ctype;
	char		 etag[FILE_ETAG_MAX];
	char		 lastmod[30];
	int		 cached;	/* fd belongs to the cache: keep it open */
	const char	*data;		/* the whole file, when small and cached */
};

/*
 * Percent-decode and normalise a URL path into a path relative to the
 * root ("" for the root itself).  Returns 0, or 400 (bad escape, NUL or
 * control byte), 403 (climbs above the root) or 404 (a name longer than
 * NAME_MAX or a path longer than outlen - 1 remains: no file is called
 * that).  Dot segments are removed lexically, at any depth.  *slash tells
 * whether the decoded path ended in '/'.
 */
int	file_normalize(const char *path, size_t n, char *out, size_t outlen,
	    int *slash);
/*
 * Parse a Range value for a file of size bytes.  Returns 1 and sets
 * *off and *len for one satisfiable range, 0 to ignore the header (absent,
 * malformed or several ranges), or -1 when unsatisfiable (416).  Positions
 * may have any number of digits: one too large for off_t is past the end
 * of any file (a last-pos there means the end, a first-pos there is
 * unsatisfiable, a suffix that long is the whole file).
 */
int	file_range(const char *v, size_t n, off_t size, off_t *off, off_t *len);
/* Does an If-None-Match list match etag (weak comparison)? */
int	file_etag_match(const char *list, size_t n, const char *etag);
/*
 * Resolve and open a request's file; fills r.  r->fd is to be closed
 * unless r->cached: a small per-worker cache keeps descriptors, stat
 * results and the bytes of small files for FILE_CACHE_MS, after which
 * the path is resolved again (so a new file at the path shows within
 * that time).  A cached file is checked with fstat(2) for every request:
 * one changed, truncated, unlinked or renamed over is resolved again at
 * once, so the validators in r always describe the bytes in r->data, or
 * in the file as the response starts.
 */
#define FILE_CACHE_MS	1000
/* Descriptors the cache may hold open at once, at most. */
#define FILE_CACHE_FDS	256
/* Hold at most n descriptors (the worker's budget allows no more). */
void	file_cache_fds(int n);
void	file_handle(int rootfd, const char *index, const struct http_req *,
	    struct file_resp *r);

#endif
