/* Unit tests of URL path normalisation, ranges and entity-tag matching. */
#include "config.h"

#include <limits.h>
#include <string.h>

#include "file.h"
#include "mime.h"
#include "tap.h"

static void
norm(const char *in, int want, const char *out, int want_slash)
{
	char buf[PATH_MAX];
	int slash = -1, rc;

	/* Long paths are named by their start and length. */
	rc = file_normalize(in, strlen(in), buf, sizeof(buf), &slash);
	if (want != 0)
		ok(rc == want, "'%.40s' (%zu) -> %d (got %d)", in, strlen(in),
		    want, rc);
	else
		ok(rc == 0 && strcmp(buf, out) == 0 && slash == want_slash,
		    "'%.40s' (%zu) -> '%.40s' slash %d (got %d '%.40s' %d)",
		    in, strlen(in), out, want_slash, rc, rc == 0 ? buf : "",
		    slash);
}

/* path made of count copies of seg, after a "/", then tail. */
static char *
repeat(char *buf, size_t cap, const char *seg, size_t count, const char *tail)
{
	size_t o = 0, sl = strlen(seg), tl = strlen(tail);

	buf[o++] = '/';
	for (size_t i = 0; i < count && o + sl + tl + 1 < cap; i++) {
		memcpy(buf + o, seg, sl);
		o += sl;
	}
	memcpy(buf + o, tail, tl + 1);
	return buf;
}

/*
 * Long paths are not long URIs: the request line is max_request_line's
 * business, and what no file can be called (a name over NAME_MAX, a path
 * over PATH_MAX) is not found, as open(2) would say (ENAMETOOLONG).
 * Depth has no limit of its own.
 */
static void
test_normalize_long(void)
{
	static char in[16384], want[16384];
	char *w;

	/* 300 levels: 600 bytes, well within PATH_MAX. */
	repeat(in, sizeof(in), "d/", 300, "f");
	w = repeat(want, sizeof(want), "d/", 300, "f") + 1;
	norm(in, 0, w, 0);
	repeat(in, sizeof(in), "d/", 300, "");
	w[strlen(w) - 2] = '\0';
	norm(in, 0, w, 1);
	/* Popping through many levels, and back to the root. */
	repeat(in, sizeof(in), "a/../", 1000, "b");
	norm(in, 0, "b", 0);
	repeat(in, sizeof(in), "a/", 500, "");
	memcpy(in + strlen(in), "..", 3);
	for (int i = 0; i < 499; i++)
		strcat(in, "/..");
	norm(in, 0, "", 1);
	strcat(in, "/..");
	norm(in, 403, NULL, 0);
	/* One name of 7986 bytes: an 8000-byte request line. */
	repeat(in, sizeof(in), "a", 7986, "");
	norm(in, 404, NULL, 0);
	repeat(in, sizeof(in), "a", 256, "");
	norm(in, 404, NULL, 0);
	repeat(in, sizeof(in), "a", 255, "");
	norm(in, 0, in + 1, 0);
	/* Encoded, the same name is as long. */
	repeat(in, sizeof(in), "%61", 256, "");
	norm(in, 404, NULL, 0);
	/* A path longer than PATH_MAX, each name short. */
	repeat(in, sizeof(in), "abcdefghi/", 800, "f");
	norm(in, 404, NULL, 0);
	/* Lexically, a long name popped by ".." is gone. */
	repeat(in, sizeof(in), "a", 300, "/../b");
	norm(in, 0, "b", 0);
	repeat(in, sizeof(in), "abcdefghi/", 800, "");
	for (int i = 0; i < 800; i++)
		strcat(in, "../");
	strcat(in, "c");
	norm(in, 0, "c", 0);
	/* ... and climbing out is still refused. */
	repeat(in, sizeof(in), "a", 300, "/../../b");
	norm(in, 403, NULL, 0);
	/* Errors after a long name are still errors. */
	repeat(in, sizeof(in), "a", 300, "/%zz");
	norm(in, 400, NULL, 0);
}

static void
test_normalize(void)
{
	norm("/", 0, "", 1);
	norm("/a", 0, "a", 0);
	norm("/a/", 0, "a", 1);
	norm("/a//b", 0, "a/b", 0);
	norm("/a/./b", 0, "a/b", 0);
	norm("/a/../b", 0, "b", 0);
	norm("/a/..", 0, "", 1);
	norm("/a/b/..", 0, "a", 1);
	norm("/a/.", 0, "a", 1);
	norm("/..", 403, NULL, 0);
	norm("/../etc/passwd", 403, NULL, 0);
	norm("/a/../../etc/passwd", 403, NULL, 0);
	norm("/%2e%2e/etc/passwd", 403, NULL, 0);
	norm("/%2E%2E%2Fetc", 403, NULL, 0);
	norm("/a%2f..%2f..%2fb", 403, NULL, 0);
	norm("/%41%62", 0, "Ab", 0);
	norm("/a%20b", 0, "a b", 0);
	norm("/a%00b", 400, NULL, 0);
	norm("/a%0ab", 400, NULL, 0);
	norm("/a%7f", 400, NULL, 0);
	norm("/a%zz", 400, NULL, 0);
	norm("/a%4", 400, NULL, 0);
	norm("/a%", 400, NULL, 0);
	norm("/a\\..\\b", 0, "a\\..\\b", 0);
	test_normalize_long();
}

static void
range(const char *v, long long size, int want, long long off, long long len)
{
	off_t o = -1, l = -1;
	int rc = file_range(v, strlen(v), size, &o, &l);

	if (want == 1)
		ok(rc == 1 && o == off && l == len, "'%s' of %lld -> %lld+%lld "
		    "(got %d %lld+%lld)", v, size, off, len, rc, (long long)o,
		    (long long)l);
	else
		ok(rc == want, "'%s' of %lld -> %d (got %d)", v, size, want, rc);
}

static void
test_range(void)
{
	range("bytes=0-0", 10, 1, 0, 1);
	range("bytes=0-9", 10, 1, 0, 10);
	range("bytes=0-99", 10, 1, 0, 10);
	range("bytes=5-", 10, 1, 5, 5);
	range("bytes=-3", 10, 1, 7, 3);
	range("bytes=-30", 10, 1, 0, 10);
	range("bytes=10-", 10, -1, 0, 0);
	range("bytes=-0", 10, -1, 0, 0);
	range("bytes=3-2", 10, 0, 0, 0);
	range("bytes=0-1,3-4", 10, 0, 0, 0);
	range("bytes=x-1", 10, 0, 0, 0);
	range("items=0-1", 10, 0, 0, 0);
	/*
	 * RFC 9110 14.1.1 sets no limit on digits: a position too large for
	 * off_t is past the end of any file.  A last-pos there means "to the
	 * end" (14.1.2), a first-pos there is unsatisfiable, a suffix that
	 * long is the whole file.
	 */
	range("bytes=10485759-9223372036854775807", 10485760, 1, 10485759, 1);
	range("bytes=10485759-9223372036854775808", 10485760, 1, 10485759, 1);
	range("bytes=0-99999999999999999999999999", 10, 1, 0, 10);
	range("bytes=9223372036854775806-", 10485760, -1, 0, 0);
	range("bytes=9223372036854775807-", 10485760, -1, 0, 0);
	range("bytes=99999999999999999999-", 10, -1, 0, 0);
	range("bytes=-9223372036854775807", 10485760, 1, 0, 10485760);
	range("bytes=-99999999999999999999999", 10, 1, 0, 10);
	range("bytes=9223372036854775807-9223372036854775807", 10, -1, 0, 0);
	/* Leading zeros do not make a number larger. */
	range("bytes=000000000000000000000000005-0000000000000000000000007",
	    10, 1, 5, 3);
	range("bytes=-00000000000000000000000003", 10, 1, 7, 3);
	range("bytes=-00000000000000000000000000", 10, -1, 0, 0);
	/* last-pos below first-pos is invalid however large both are. */
	range("bytes=99999999999999999999-99999999999999999998", 10, 0, 0, 0);
	range("bytes=99999999999999999999-9223372036854775807", 10, 0, 0, 0);
	range("bytes=9223372036854775807-99999999999999999999", 10, -1, 0, 0);
	range("bytes=5-99999999999999999999", 10, 1, 5, 5);
	/* The very last byte, and a whole file of the largest sizes. */
	range("bytes=-1", 9223372036854775807LL, 1, 9223372036854775806LL, 1);
	range("bytes=0-", 9223372036854775807LL, 1, 0, 9223372036854775807LL);
}

static void
test_etag(void)
{
	const char *e = "\"1-2-3\"";

	ok(file_etag_match("\"1-2-3\"", 7, e), "exact");
	ok(file_etag_match("W/\"1-2-3\"", 9, e), "weak comparison");
	ok(file_etag_match("\"x\", \"1-2-3\"", 12, e), "in a list");
	ok(file_etag_match("*", 1, e), "star");
	ok(!file_etag_match("\"1-2-4\"", 7, e), "different");
	ok(!file_etag_match("\"1-2-3", 6, e), "unterminated");
}

static void
test_mime(void)
{
	ok(strcmp(mime_type("a.html"), "text/html") == 0, "fallback html");
	ok(strcmp(mime_type("A.PNG"), "image/png") == 0, "case-insensitive");
	ok(strcmp(mime_type("noext"), "application/octet-stream") == 0,
	    "no extension");
	ok(strcmp(mime_type("dir.d/file"), "application/octet-stream") == 0,
	    "dot in a directory name only");
	if (mime_load("/etc/mime.types") == 0)
		ok(strcmp(mime_type("x.css"), "text/css") == 0,
		    "system table");
	else
		ok(1, "# SKIP no /etc/mime.types");
	ok(mime_load("/nonexistent/mime.types") == -1, "missing table");
}

int
main(void)
{
	test_normalize();
	test_range();
	test_etag();
	test_mime();
	return tap_done();
}
