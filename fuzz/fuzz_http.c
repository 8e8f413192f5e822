/*
 * libFuzzer target: the request parser and the two path and range
 * parsers that read client bytes.  Build and run with "make fuzz".
 *
 * The first input byte picks small or default limits, so that the limit
 * checks are reached as often as the grammar; the rest is the request.
 * Every string the parser returns must lie inside the input.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "file.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_in(const char *buf, size_t len, struct http_str s)
{
	if (s.p == NULL)
		return;
	/* "/" for an empty absolute-form path is a literal: allowed. */
	if (s.n == 1 && s.p[0] == '/')
		return;
	if (s.p < buf || s.p + s.n > buf + len)
		abort();
}

static void
check_req(const char *buf, size_t len, const struct http_req *r)
{
	check_in(buf, len, r->method);
	check_in(buf, len, r->target);
	check_in(buf, len, r->path);
	check_in(buf, len, r->query);
	check_in(buf, len, r->authority);
	check_in(buf, len, r->host);
	for (int i = 0; i < r->nhdr; i++) {
		check_in(buf, len, r->hdr[i].name);
		check_in(buf, len, r->hdr[i].value);
	}
	if (r->head_len == 0 || r->head_len > len)
		abort();
}

/*
 * A normalised path: shorter than its buffer, relative, and without an
 * empty, "." or ".." segment; or one of the statuses file.h names.
 */
static void
check_norm(const char *in, size_t n, char *rel, size_t cap)
{
	int slash, rc = file_normalize(in, n, rel, cap, &slash);
	const char *p, *e;

	if (rc != 0) {
		if (rc != 400 && rc != 403 && rc != 404)
			abort();
		return;
	}
	if (strlen(rel) >= cap || rel[0] == '/')
		abort();
	for (p = rel; *p != '\0'; p = *e ? e + 1 : e) {
		if ((e = strchr(p, '/')) == NULL)
			e = p + strlen(p);
		if (e == p || (e - p == 1 && p[0] == '.') ||
		    (e - p == 2 && p[0] == '.' && p[1] == '.'))
			abort();
	}
}

/*
 * A satisfiable range lies inside the file, and off + len cannot
 * overflow, however large the size and however many digits were sent.
 */
static void
check_range(const char *v, size_t n, off_t size)
{
	off_t off = -1, len = -1;
	int rc = file_range(v, n, size, &off, &len);

	if (rc == 1 && (off < 0 || len <= 0 || off >= size ||
	    len > size - off))
		abort();
	if (rc < -1 || rc > 1)
		abort();
}

static void
fuzz_path(const struct http_req *r)
{
	char rel[PATH_MAX];

	check_norm(r->path.p, r->path.n, rel, sizeof(rel));
	if (r->range.p != NULL) {
		check_range(r->range.p, r->range.n, 1000);
		check_range(r->range.p, r->range.n, 1);
		check_range(r->range.p, r->range.n, INT64_MAX);
		check_range(r->range.p, r->range.n, INT64_MAX - 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_limits small = { .max_line = 64,
	    .max_field = 48, .max_head = 256, .max_headers = 4 };
	static const struct http_limits dflt = { .max_line = 8192,
	    .max_field = 8192, .max_head = 32768, .max_headers = 100 };
	static struct http_req r;
	const struct http_limits *lim;
	char *buf;
	int rc;

	if (size < 1)
		return 0;
	lim = data[0] & 1 ? &small : &dflt;
	/* An exact-size copy: ASan sees any read past the end. */
	if ((buf = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	rc = http_parse(buf, size - 1, lim, &r);
	if (rc == 0) {
		check_req(buf, size - 1, &r);
		fuzz_path(&r);
	} else if (rc != HTTP_AGAIN && (rc < 400 || rc > 599))
		abort();
	/*
	 * The path and range parsers on raw bytes too; a small buffer, so
	 * that paths outgrow it.  Sizes from the first byte: 0 to 255000,
	 * or near INT64_MAX, where first + len would overflow.
	 */
	{
		char rel[64];

		check_norm(buf, size - 1, rel, sizeof(rel));
		check_range(buf, size - 1, (off_t)data[0] * 1000);
		check_range(buf, size - 1, INT64_MAX - data[0]);
	}
	free(buf);
	return 0;
}
