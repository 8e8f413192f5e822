#include "config.h"

#include <string.h>

#include "sig.h"

int
sig_install(const struct sig_entry *t, size_t n, int block_all, int *failed)
{
	struct sigaction sa;

	for (size_t i = 0; i < n; i++) {
		memset(&sa, 0, sizeof(sa));
		if (block_all)
			sigfillset(&sa.sa_mask);
		else
			sigemptyset(&sa.sa_mask);
		sa.sa_handler = t[i].handler;
		sa.sa_flags = t[i].flags;
		if (sigaction(t[i].signo, &sa, NULL) == -1) {
			*failed = t[i].signo;
			return -1;
		}
	}
	return 0;
}
