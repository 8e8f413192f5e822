/*
 * Loaded by the master before fork, so every worker shares the table
 * copy-on-write.  Lookups are a binary search over lower-case extensions.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"

struct mime_ent {
	char	*ext;
	char	*type;
};

static struct mime_ent	*tab;
static size_t		 ntab;
static char		*pool;

static const struct mime_ent fallback[] = {
	{ "css", "text/css" }, { "gif", "image/gif" },
	{ "htm", "text/html" }, { "html", "text/html" },
	{ "ico", "image/vnd.microsoft.icon" }, { "jpeg", "image/jpeg" },
	{ "jpg", "image/jpeg" }, { "js", "text/javascript" },
	{ "json", "application/json" }, { "mjs", "text/javascript" },
	{ "mp4", "video/mp4" }, { "pdf", "application/pdf" },
	{ "png", "image/png" }, { "svg", "image/svg+xml" },
	{ "txt", "text/plain" }, { "wasm", "application/wasm" },
	{ "webp", "image/webp" }, { "woff", "font/woff" },
	{ "woff2", "font/woff2" }, { "xml", "application/xml" },
	{ "zip", "application/zip" },
};

static int
cmp(const void *a, const void *b)
{
	return strcmp(((const struct mime_ent *)a)->ext,
	    ((const struct mime_ent *)b)->ext);
}

int
mime_load(const char *path)
{
	FILE *f;
	char *buf = NULL, *line, *save, *type, *ext;
	long size;
	size_t n = 0, cap = 0;
	struct mime_ent *t = NULL, *nt;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) == -1 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) == -1 ||
	    (buf = malloc((size_t)size + 1)) == NULL ||
	    fread(buf, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	buf[size] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *lsave;

		if (*line == '#')
			continue;
		if ((type = strtok_r(line, " \t", &lsave)) == NULL)
			continue;
		while ((ext = strtok_r(NULL, " \t", &lsave)) != NULL) {
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				if ((nt = reallocarray(t, cap, sizeof(*t))) == NULL) {
					free(t);
					free(buf);
					return -1;
				}
				t = nt;
			}
			for (char *p = ext; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			t[n].ext = ext;
			t[n++].type = type;
		}
	}
	if (n > 0)
		qsort(t, n, sizeof(*t), cmp);
	free(tab);
	free(pool);
	tab = t;
	ntab = n;
	pool = buf;
	return 0;
}

const char *
mime_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	char ext[32];
	struct mime_ent key = { ext, NULL }, *e;
	size_t i;

	if (dot == NULL || strchr(dot, '/') != NULL)
		return "application/octet-stream";
	for (i = 0; dot[i + 1] != '\0' && i < sizeof(ext) - 1; i++)
		ext[i] = (char)tolower((unsigned char)dot[i + 1]);
	ext[i] = '\0';
	if (tab != NULL &&
	    (e = bsearch(&key, tab, ntab, sizeof(*tab), cmp)) != NULL)
		return e->type;
	e = bsearch(&key, fallback, sizeof(fallback) / sizeof(fallback[0]),
	    sizeof(fallback[0]), cmp);
	return e ? e->type : "application/octet-stream";
}
