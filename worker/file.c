#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "mime.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Dot segments are removed lexically (RFC 3986 5.2.4), so ".." may
 * undo any segment before it.  A segment no file can have (a name over
 * NAME_MAX, or one that would make the path longer than outlen) makes
 * the path "dead" from its depth on: nothing beneath it is kept, and
 * unless a ".." pops it the answer is 404, what open(2) would say
 * (ENAMETOOLONG).  That is no reason for 414: how long a target may be
 * is max_request_line's business, and the parser enforced it.
 */
int
file_normalize(const char *path, size_t n, char *out, size_t outlen,
    int *slash)
{
	size_t o = 0, i = 0, depth = 0, dead = 0;	/* dead: 0, or a depth */
	int sep = 0;

	*slash = 0;
	if (outlen == 0)
		return HTTP_BAD_REQUEST;
	while (i < n) {
		char name[NAME_MAX + 1];
		size_t nl = 0;

		sep = 0;
		/* One decoded segment; nl counts past what name holds. */
		while (i < n) {
			int c = (unsigned char)path[i];

			if (c == '%') {
				int h, l;

				if (i + 2 >= n)
					return HTTP_BAD_REQUEST;
				h = hexval((unsigned char)path[i + 1]);
				l = hexval((unsigned char)path[i + 2]);
				if (h < 0 || l < 0)
					return HTTP_BAD_REQUEST;
				c = h * 16 + l;
				i += 3;
			} else
				i++;
			if (c < 0x20 || c == 0x7f)
				return HTTP_BAD_REQUEST;
			if (c == '/') {
				sep = 1;
				break;
			}
			if (nl < NAME_MAX)
				name[nl] = (char)c;
			nl++;
		}
		name[nl < NAME_MAX ? nl : NAME_MAX] = '\0';
		/* "/a/." and "/a/.." name directories, like "/a/". */
		*slash = nl == 0 || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0;
		if (nl == 0 || strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			if (depth == 0)
				return HTTP_FORBIDDEN;
			if (dead == depth)
				dead = 0;
			else if (dead == 0) {
				/* Back to the end of the segment before. */
				while (o > 0 && out[o - 1] != '/')
					o--;
				if (o > 0)
					o--;
			}
			depth--;
			continue;
		}
		depth++;
		if (dead != 0)
			continue;
		if (nl > NAME_MAX || o + nl + 2 > outlen) {
			dead = depth;
			continue;
		}
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, name, nl);
		o += nl;
	}
	if (dead != 0)
		return HTTP_NOT_FOUND;
	if (o == 0 || sep)
		*slash = 1;
	out[o] = '\0';
	return 0;
}

_Static_assert(sizeof(off_t) == sizeof(int64_t), "off_t is 64 bits");

/* A byte position as sent: its digits without leading zeros, and value. */
struct pos {
	const char	*d;
	size_t		 n;
	off_t		 v;	/* saturated at INT64_MAX */
};

/*
 * RFC 9110 14.1.1 gives positions no limit on digits, and any position
 * at or past the end of a file means the same as the largest one
 * (14.1.2), so a value too large for off_t saturates at INT64_MAX: it
 * never wraps, and it is never a reason to ignore the range.
 */
static int
parse_pos(const char **p, const char *end, struct pos *v)
{
	const char *s = *p;

	v->v = 0;
	while (*p < end && **p == '0')
		(*p)++;
	v->d = *p;
	while (*p < end && **p >= '0' && **p <= '9') {
		int dig = **p - '0';

		if (v->v > (INT64_MAX - dig) / 10)
			v->v = INT64_MAX;
		else
			v->v = v->v * 10 + dig;
		(*p)++;
	}
	if (*p == s)
		return -1;
	v->n = (size_t)(*p - v->d);
	return 0;
}

/* Is a < b?  Exact even when both saturated: compare the digits. */
static int
pos_less(const struct pos *a, const struct pos *b)
{
	if (a->n != b->n)
		return a->n < b->n;
	return memcmp(a->d, b->d, a->n) < 0;
}

int
file_range(const char *v, size_t n, off_t size, off_t *off, off_t *len)
{
	const char *p, *end;
	struct pos first, last;

	if (v == NULL)
		return 0;
	p = v;
	end = v + n;
	if (n < 7 || memcmp(v, "bytes=", 6) != 0 ||
	    memchr(v, ',', n) != NULL)
		return 0;
	p += 6;
	if (*p == '-') {
		p++;
		if (parse_pos(&p, end, &last) == -1 || p != end)
			return 0;
		if (last.v == 0 || size == 0)
			return -1;
		*len = last.v < size ? last.v : size;
		*off = size - *len;
		return 1;
	}
	if (parse_pos(&p, end, &first) == -1 || p == end || *p++ != '-')
		return 0;
	if (p == end)
		last.v = INT64_MAX;
	else if (parse_pos(&p, end, &last) == -1 || p != end ||
	    pos_less(&last, &first))
		return 0;
	if (first.v >= size)
		return -1;
	/* At or past the end: to the end (14.1.2). */
	if (last.v >= size)
		last.v = size - 1;
	*off = first.v;
	*len = last.v - first.v + 1;
	return 1;
}

int
file_etag_match(const char *list, size_t n, const char *etag)
{
	const char *p = list, *end = list + n;
	size_t el = strlen(etag);

	while (p < end) {
		const char *s;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p < end && *p == '*')
			return 1;
		if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
			p += 2;
		if (p >= end || *p != '"')
			return 0;
		s = p++;
		while (p < end && *p != '"')
			p++;
		if (p == end)
			return 0;
		p++;
		if ((size_t)(p - s) == el && memcmp(s, etag, el) == 0)
			return 1;
	}
	return 0;
}

/* openat(2) confined beneath dirfd: no "..", no symlink out of it. */
static int
open_beneath(int dirfd, const char *path)
{
	static int have_openat2 = 1;
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char rootp[64], full[PATH_MAX], root[PATH_MAX], real[PATH_MAX];
	int fd;
	size_t rl;

	if (have_openat2) {
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd != -1 || errno != ENOSYS)
			return fd;
		have_openat2 = 0;
	}
	/* Old kernel: resolve by hand and check the prefix. */
	snprintf(rootp, sizeof(rootp), "/proc/self/fd/%d", dirfd);
	if (realpath(rootp, root) == NULL)
		return -1;
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, path)
	    >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (realpath(full, real) == NULL)
		return -1;
	rl = strlen(root);
	if (strncmp(real, root, rl) != 0 || (real[rl] != '/' &&
	    real[rl] != '\0' && strcmp(root, "/") != 0)) {
		errno = EXDEV;
		return -1;
	}
	return open(real, (int)how.flags);
}

static int
errno_status(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
		return HTTP_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EXDEV:	/* would escape the root */
	case ELOOP:
		return HTTP_FORBIDDEN;
	default:
		return HTTP_INTERNAL;
	}
}

static unsigned long long
ns(const struct timespec *ts)
{
	return (unsigned long long)ts->tv_sec * 1000000000ULL +
	    (unsigned long long)ts->tv_nsec;
}

/*
 * A strong ETag must change whenever the bytes do.  A write changes the
 * size or the mtime, but the mtime can be set back (cp -p, touch -d);
 * the ctime cannot, and every write, utimes or unlink moves it.  So the
 * tag is inode, size, mtime and ctime, all to the nanosecond.  (Two
 * writes of the same size within one tick of a coarse file clock stay
 * indistinguishable to stat(2), and so to us.)
 */
static void
validators(const struct stat *st, char etag[FILE_ETAG_MAX],
    char lastmod[30])
{
	struct tm tm;

	snprintf(etag, FILE_ETAG_MAX, "\"%llx-%llx-%llx-%llx\"",
	    (unsigned long long)st->st_ino, (unsigned long long)st->st_size,
	    ns(&st->st_mtim), ns(&st->st_ctim));
	gmtime_r(&st->st_mtim.tv_sec, &tm);
	strftime(lastmod, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The same file with the same bytes, as far as fstat(2) can tell. */
static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size && ns(&a->st_mtim) == ns(&b->st_mtim) &&
	    ns(&a->st_ctim) == ns(&b->st_ctim);
}

/* 304 when the client's copy is current (RFC 9110 13.2.2 order). */
static int
not_modified(const struct http_req *q, const struct stat *st,
    const struct file_resp *r)
{
	time_t ims;

	if (q->if_none_match.p != NULL)
		return file_etag_match(q->if_none_match.p, q->if_none_match.n,
		    r->etag);
	if (q->if_modified_since.p != NULL &&
	    http_date_parse(q->if_modified_since.p, q->if_modified_since.n,
	    &ims) == 0)
		return st->st_mtim.tv_sec <= ims;
	return 0;
}

/* If-Range: the range applies only if the validator still matches. */
static int
if_range_ok(const struct http_req *q, const struct file_resp *r)
{
	struct http_str v = q->if_range;

	if (v.p == NULL)
		return 1;
	if (v.n > 0 && v.p[0] == '"')
		return v.n == strlen(r->etag) && memcmp(v.p, r->etag, v.n) == 0;
	return v.n == strlen(r->lastmod) && memcmp(v.p, r->lastmod, v.n) == 0;
}

/*
 * Find the file for a normalised path: a regular file's open fd with its
 * stat and type, or -1 and the status to answer.
 */
static int
resolve(int rootfd, const char *index, const char *rel, int slash,
    struct stat *st, const char **ctype, int *status)
{
	int fd, dfd;

	if ((fd = open_beneath(rootfd, rel[0] ? rel : ".")) == -1 ||
	    fstat(fd, st) == -1) {
		*status = errno_status(errno);
		goto fail;
	}
	/*
	 * "/file/" names a directory that does not exist: serving the file
	 * there would make its relative links resolve against a bogus base.
	 */
	if (slash && !S_ISDIR(st->st_mode)) {
		*status = HTTP_NOT_FOUND;
		goto fail;
	}
	if (S_ISDIR(st->st_mode)) {
		if (!slash) {
			*status = HTTP_MOVED;
			goto fail;
		}
		dfd = fd;
		fd = open_beneath(dfd, index);
		close(dfd);
		if (fd == -1 || fstat(fd, st) == -1) {
			/* No index and no listings: forbidden, not missing. */
			*status = errno == ENOENT ? HTTP_FORBIDDEN :
			    errno_status(errno);
			goto fail;
		}
		*ctype = mime_type(index);
	} else
		*ctype = mime_type(rel);
	if (!S_ISREG(st->st_mode)) {
		*status = HTTP_FORBIDDEN;
		goto fail;
	}
	return fd;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * The open-file cache: one per worker, open addressing over FC_SLOTS,
 * keyed by the normalised path plus "/" when the URL ended in a slash.
 */
#define FC_SLOTS	FILE_CACHE_FDS
#define FC_PROBE	8
#define FC_DATA_MAX	16384		/* cache the bytes of files this small */
#define FC_DATA_TOTAL	(512 * 1024)	/* ... up to this much per worker */

struct fc_ent {
	char		*key;
	int		 fd;
	struct stat	 st;		/* what etag, lastmod and data are of */
	const char	*ctype;
	char		 etag[FILE_ETAG_MAX];
	char		 lastmod[30];
	char		*data;
	int64_t		 checked;
};

static struct fc_ent	fc[FC_SLOTS];
static size_t		fc_data_total;
static int		fc_open;		/* descriptors the cache holds */
static int		fc_max = FILE_CACHE_FDS;	/* file_cache_fds() */

static int64_t
fc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned
fc_hash(const char *k)
{
	unsigned h = 2166136261u;

	while (*k)
		h = (h ^ (unsigned char)*k++) * 16777619u;
	return h;
}

static void
fc_drop(struct fc_ent *e)
{
	if (e->key == NULL)
		return;
	close(e->fd);
	fc_open--;
	if (e->data != NULL) {
		fc_data_total -= (size_t)e->st.st_size;
		free(e->data);
	}
	free(e->key);
	memset(e, 0, sizeof(*e));
}

/* The slot holding key, or the slot to put it in (*found = 0). */
static struct fc_ent *
fc_slot(const char *key, int *found)
{
	unsigned h = fc_hash(key);
	struct fc_ent *empty = NULL;

	for (int i = 0; i < FC_PROBE; i++) {
		struct fc_ent *e = &fc[(h + (unsigned)i) & (FC_SLOTS - 1)];

		if (e->key != NULL && strcmp(e->key, key) == 0) {
			*found = 1;
			return e;
		}
		if (e->key == NULL && empty == NULL)
			empty = e;
	}
	*found = 0;
	return empty ? empty : &fc[h & (FC_SLOTS - 1)];
}

/*
 * Keep the bytes of a small file, read between two fstat()s that agree:
 * then they are the bytes that e->st describes.  If the file changed
 * meanwhile, e->st becomes what it is now and no bytes are kept: the
 * response is sent from the file, with validators of its new state.
 */
static void
fc_fill(struct fc_ent *e)
{
	struct stat after;
	size_t n = (size_t)e->st.st_size;

	if (e->st.st_size > FC_DATA_MAX || fc_data_total + n > FC_DATA_TOTAL ||
	    (e->data = malloc(n + 1)) == NULL)
		return;
	if (pread(e->fd, e->data, n, 0) == (ssize_t)n &&
	    fstat(e->fd, &after) == 0 && same_file(&after, &e->st)) {
		fc_data_total += n;
		return;
	}
	free(e->data);
	e->data = NULL;
	if (fstat(e->fd, &after) == 0)
		e->st = after;
}

/*
 * Remember a resolved file; returns the entry, or NULL if not kept.
 * *st becomes what the entry's validators describe.
 */
static struct fc_ent *
fc_store(struct fc_ent *e, const char *key, int fd, struct stat *st,
    const char *ctype)
{
	fc_drop(e);
	/* Within its share of the descriptors only: else not kept. */
	if (fc_open >= fc_max || (e->key = strdup(key)) == NULL)
		return NULL;
	fc_open++;
	e->fd = fd;
	e->st = *st;
	e->ctype = ctype;
	e->checked = fc_now();
	fc_fill(e);
	*st = e->st;
	validators(st, e->etag, e->lastmod);
	return e;
}

/*
 * An entry may answer only while its file is what it was when cached:
 * one fstat() per response.  The path is looked up again only after
 * FILE_CACHE_MS, but a file changed in place (same inode: "cat new >
 * file", truncate, an append) is caught here, at the start of every
 * response, so its old validators never label its new bytes.  So is one
 * unlinked or renamed over: that moves the ctime of the old inode.
 */
static int
fc_current(const struct fc_ent *e)
{
	struct stat now;

	return fc_now() - e->checked < FILE_CACHE_MS &&
	    fstat(e->fd, &now) == 0 && same_file(&now, &e->st);
}

void
file_handle(int rootfd, const char *index, const struct http_req *q,
    struct file_resp *r)
{
	char rel[PATH_MAX + 1];
	struct fc_ent *e;
	struct stat st;
	const char *ctype = NULL;
	int slash, fd, rc, found;
	off_t off, len;
	size_t rl;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if ((rc = file_normalize(q->path.p, q->path.n, rel, sizeof(rel) - 1,
	    &slash)) != 0) {
		r->status = rc;
		return;
	}
	rl = strlen(rel);
	if (slash) {
		rel[rl] = '/';
		rel[rl + 1] = '\0';
	}
	e = fc_slot(rel, &found);
	if (found && fc_current(e)) {
		st = e->st;
	} else {
		rel[rl] = '\0';
		fd = resolve(rootfd, index, rel, slash, &st, &ctype, &r->status);
		if (slash)
			rel[rl] = '/';
		if (fd == -1) {
			if (found)
				fc_drop(e);
			return;
		}
		if ((e = fc_store(e, rel, fd, &st, ctype)) == NULL) {
			/* Not cached: serve it once from this fd. */
			r->fd = fd;
			r->ctype = ctype;
			validators(&st, r->etag, r->lastmod);
			goto serve;
		}
	}
	r->fd = e->fd;
	r->cached = 1;
	r->data = e->data;
	r->ctype = e->ctype;
	memcpy(r->etag, e->etag, sizeof(r->etag));
	memcpy(r->lastmod, e->lastmod, sizeof(r->lastmod));
serve:
	r->size = st.st_size;
	if (not_modified(q, &st, r)) {
		r->status = HTTP_NOT_MODIFIED;
		return;
	}
	r->status = HTTP_OK;
	r->off = 0;
	r->len = st.st_size;
	if (q->range.p != NULL && q->meth == HTTP_M_GET && if_range_ok(q, r)) {
		rc = file_range(q->range.p, q->range.n, st.st_size, &off, &len);
		if (rc == 1) {
			r->status = HTTP_PARTIAL;
			r->off = off;
			r->len = len;
		} else if (rc == -1)
			r->status = HTTP_RANGE_NOT_SATISFIABLE;
	}
}

void
file_cache_fds(int n)
{
	fc_max = n < 0 ? 0 : n > FILE_CACHE_FDS ? FILE_CACHE_FDS : n;
}
