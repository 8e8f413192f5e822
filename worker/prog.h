/*
 * Programs run for clients (the WebSocket bridge; CGI later): started in
 * a process group of their own with pipes for stdin, stdout and stderr,
 * stopped with one ladder, reaped by pid.  The owner reads stdout and
 * writes stdin itself (it decides when, for back-pressure); this module
 * logs stderr, watches the leader's exit and runs the ladder.
 *
 * No orphan, no zombie, no grandchild left: when the leader has exited
 * (seen through a pidfd, without reaping it), its group is SIGKILLed and
 * only then is the leader reaped, so the group id cannot be reused by
 * another process in between.
 */
#ifndef PROG_H
#define PROG_H

#include <stdint.h>
#include <sys/types.h>

#include "ev.h"

struct prog;

/* The leader exited and was reaped (status: as from waitpid). */
typedef void	prog_done_fn(struct prog *, void *arg);

struct prog {
	struct ev_loop	*ev;
	pid_t		 pid;		/* leader and group id; 0: none */
	int		 in, out;	/* our ends; -1: closed */
	int		 err;		/* stderr, logged here; -1: closed */
	int		 pidfd;		/* -1: polled by the timer instead */
	int		 done;		/* the leader is reaped */
	int		 status;	/* its wait status, once done */
	int		 step;		/* the ladder: see prog.c */
	int		 grace;		/* ms, each step of the ladder */
	struct ev_timer	 timer;		/* the ladder's next step */
	const char	*name;		/* for the log: the URL path */
	char		 line[256];	/* an unfinished stderr line */
	size_t		 linelen;
	int64_t		 log_sec;	/* stderr lines logged this second */
	int		 log_count;
	unsigned long	 log_dropped;
	prog_done_fn	*on_done;
	void		*arg;
};

/*
 * Start argv[0] (an absolute path) with envp in dir (a descriptor; -1:
 * the worker's own).  -1 with errno when it could not be started (an
 * exec failure included); nothing is left behind then.
 */
int	prog_start(struct prog *, struct ev_loop *, char *const argv[],
	    char *const envp[], int dir, const char *name, int grace_ms,
	    prog_done_fn *on_done, void *arg);
/* Its output is not wanted any more. */
void	prog_close_stdout(struct prog *);
/* No more input: the program reads end of file. */
void	prog_close_stdin(struct prog *);
/*
 * Stop it: stdin closed, then after program_grace SIGTERM to the group,
 * after another SIGKILL.
 */
void	prog_stop(struct prog *);
/* Stdin closed and SIGTERM to the group now; nothing more by itself. */
void	prog_terminate(struct prog *);
/* SIGKILL to the group now. */
void	prog_kill(struct prog *);
/* Close what is left of it; the leader must be done. */
void	prog_free(struct prog *);

#endif
