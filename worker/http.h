/*
 * HTTP/1.1 request parsing (RFC 9112) and small protocol helpers.  The
 * parser is zero-copy: every string points into the caller's buffer.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <time.h>

#define HTTP_AGAIN	(-1)	/* need more bytes */
#define HTTP_HDR_CAP	256	/* hard cap on max_headers */

/* The status codes this server produces; the value is the code. */
enum http_status {
	HTTP_SWITCHING = 101, HTTP_OK = 200, HTTP_ACCEPTED = 202,
	HTTP_NO_CONTENT = 204, HTTP_PARTIAL = 206,
	HTTP_MOVED = 301, HTTP_NOT_MODIFIED = 304, HTTP_PERMANENT_REDIRECT = 308,
	HTTP_BAD_REQUEST = 400, HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404,
	HTTP_METHOD_NOT_ALLOWED = 405, HTTP_REQUEST_TIMEOUT = 408,
	HTTP_LENGTH_REQUIRED = 411, HTTP_PAYLOAD_TOO_LARGE = 413,
	HTTP_URI_TOO_LONG = 414, HTTP_TOO_MANY_REQUESTS = 429,
	HTTP_INSUFFICIENT_STORAGE = 507,
	HTTP_RANGE_NOT_SATISFIABLE = 416, HTTP_EXPECTATION_FAILED = 417,
	HTTP_UPGRADE_REQUIRED = 426, HTTP_HEADERS_TOO_LARGE = 431, HTTP_INTERNAL = 500,
	HTTP_NOT_IMPLEMENTED = 501, HTTP_UNAVAILABLE = 503,
	HTTP_VERSION_NOT_SUPPORTED = 505,
};

enum http_method { HTTP_M_GET, HTTP_M_HEAD, HTTP_M_OPTIONS, HTTP_M_OTHER,
	HTTP_M_POST };

struct http_str {
	const char	*p;
	size_t		 n;
};

struct http_hdr {
	struct http_str	name, value;
};

struct http_limits {
	size_t	max_line;	/* the request line: 414 beyond */
	size_t	max_field;	/* any one header line: 431 beyond */
	size_t	max_head;	/* the whole head: 431 beyond */
	int	max_headers;	/* header lines: 431 beyond */
	int	post;		/* POST is parsed (channels), not a 405 */
};

struct http_req {
	struct http_str	 line;		/* the request line, without CRLF */
	struct http_str	 method, target, path, query;
	struct http_str	 authority;	/* of an absolute-form target */
	int		 meth;		/* enum http_method */
	int		 minor;		/* HTTP/1.minor */
	int		 asterisk;	/* target was "*" */
	struct http_hdr	 hdr[HTTP_HDR_CAP];
	int		 nhdr;
	size_t		 head_len;	/* bytes of head incl. the empty line */
	/* Interpreted headers. */
	struct http_str	 host, if_none_match, if_modified_since, range,
			 if_range;
	long long	 content_length;	/* -1: none */
	int		 chunked;
	int		 keepalive;	/* what the client asked for */
	int		 expect_continue;
};

/*
 * Parse one request head from buf.  Returns 0 when req holds a complete
 * head, HTTP_AGAIN when more bytes are needed, or the status to answer
 * with (400, 414, 417, 431, 501, 505) when the request is unacceptable.
 */
int		 http_parse(const char *buf, size_t len,
		    const struct http_limits *, struct http_req *);
const char	*http_reason(int status);
/* IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes + NUL). */
void		 http_date(time_t, char buf[30]);
/* Parse an HTTP-date in any of the three RFC 9110 formats; -1 if bad. */
int		 http_date_parse(const char *, size_t, time_t *);
/* The value of a parsed request's header, by lower-case name. */
struct http_str	 http_header(const struct http_req *, const char *name);

#endif
