/*
 * libFuzzer target: the configuration grammar.  The input is a
 * configuration file; reading and checking it must never crash, and a
 * reading error must be "NAME:LINE: message".
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg c;
	char err[1024];
	FILE *f;
	int rc;

	if ((f = fmemopen((void *)(uintptr_t)data, size, "r")) == NULL)
		return 0;
	cfg_defaults(&c);
	rc = cfg_read(&c, f, "fuzz.conf", err, sizeof(err));
	if (rc == -1 && strncmp(err, "fuzz.conf:", 10) != 0)
		abort();
	fclose(f);
	/* The whole-file checks too (tls, hsts, ...), with a root that is. */
	if (rc == 0) {
		strcpy(c.root, "/");
		(void)cfg_validate(&c, err, sizeof(err));
	}
	for (size_t i = 0; i < c.nws; i++)
		for (int j = 0; j < c.ws[i].argv.n; j++)
			if (cfg_word(&c.ws[i].argv, j) == NULL)
				abort();
	return 0;
}
