/* Signal handlers installed from one table, every result checked. */
#ifndef SIG_H
#define SIG_H

#include <signal.h>
#include <stddef.h>

struct sig_entry {
	int	  signo;
	int	  flags;		/* sa_flags */
	void	(*handler)(int);	/* or SIG_IGN, SIG_DFL */
};

/*
 * Install every entry, with every signal masked while a handler runs
 * when block_all, else none.  Returns 0, or -1 with errno and *failed
 * set to the signal whose sigaction failed.
 */
int	sig_install(const struct sig_entry *, size_t n, int block_all,
	    int *failed);

#endif
