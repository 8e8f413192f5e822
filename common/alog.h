/* Access log in Combined Log Format. */
#ifndef ALOG_H
#define ALOG_H

#include <stddef.h>

/* "off" disables it; otherwise a file path opened for appending. */
int	alog_open(const char *path);
int	alog_reopen(void);		/* same path, new file */
int	alog_fd(void);			/* -1 when off */
void	alog_adopt(int fd);		/* take over fd (sent by the master) */
int	alog_enabled(void);
/*
 * Count the lines this process fails to write in its scoreboard slot
 * (sb_count_log_failure); a worker calls it with its own slot.
 */
struct sb_slot;
void	alog_count_in(struct sb_slot *);

/*
 * One request; strings are client-supplied and escaped here.  tail, when
 * not NULL, is ours (access_log_tls): one more quoted field at the end.
 */
void	alog_write(const char *peer, const char *req, size_t reqlen,
	    int status, long long bytes, const char *referer, size_t reflen,
	    const char *agent, size_t agentlen, const char *tail);

#endif
