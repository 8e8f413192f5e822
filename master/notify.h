/*
 * Telling others how the master is: the service manager, with
 * sd_notify(3)'s datagrams to $NOTIFY_SOCKET (without libsystemd), and
 * init scripts, with a one-line status file next to the pidfile.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stdint.h>

/*
 * Take NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID out of the
 * environment (workers and their programs never see them).  is_main: the
 * service manager knows us as its main process (not so for an upgrade's
 * new master until it takes over).  pidfile: "" for no status file.
 */
void	notify_init(const char *pidfile, int is_main);
/* We are the main process now, or no longer (after a hand-over). */
void	notify_main(int on);
/* One datagram of NEWLINE-separated assignments; nothing if not main. */
void	notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload wants it. */
void	notify_reloading(void);
/* WATCHDOG=1 when due; the ms until the next one is due (INT64_MAX: none). */
int64_t	notify_watchdog(int64_t now);
/*
 * The status file: "SEQ PID EVENT TEXT", SEQ counting this master's
 * lines from 1, EVENT start, reload or upgrade, TEXT "ok" or
 * "failed: REASON".  Replaced at once (rename).
 */
void	notify_state(const char *event, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	notify_state_remove(void);
/* A forked worker: the socket is not its own. */
void	notify_forget(void);
/* The upgrade's child, before the exec: the new master gets them back. */
void	notify_exec_env(void);

#endif
