/* Configuration: every setting, its default, parsing and validation. */
#ifndef CFG_H
#define CFG_H

#include <limits.h>
#include <stddef.h>

#define CFG_MAX_LISTEN	16
#define CFG_STR		256

struct cfg {
	char	listen[CFG_MAX_LISTEN][CFG_STR];
	size_t	nlisten;
	char	root[PATH_MAX];
	int	workers;
	int	backlog;
	int	shutdown_timeout;	/* ms */
	int	keepalive_timeout;	/* ms */
	int	keepalive_requests;
	int	header_timeout;		/* ms */
	int	send_timeout;		/* ms */
	size_t	max_request_line;
	size_t	max_header_size;	/* whole head */
	int	max_headers;
	size_t	max_body_size;		/* body discarded on GET/HEAD */
	char	index[CFG_STR];
	char	mime_types[PATH_MAX];
	int	server_tokens;
	char	pidfile[PATH_MAX];
	char	error_log[PATH_MAX];
	char	log_level[16];
	int	foreground;
};

void	cfg_defaults(struct cfg *);
/* Set keyword to value; on error fill err and return -1. */
int	cfg_set(struct cfg *, const char *key, const char *value,
	    char *err, size_t errlen);
int	cfg_add_listen(struct cfg *, const char *addr, char *err, size_t);
/* Whole-configuration checks (root exists, ...). */
int	cfg_validate(struct cfg *, char *err, size_t errlen);
/* Parsers shared by flags and file: "30s", "500ms"; "8k", "1m". */
int	cfg_parse_time(const char *, int *ms);
int	cfg_parse_size(const char *, size_t *);
int	cfg_parse_int(const char *, int min, int max, int *);

#endif
