/*
 * The channel store: every channel's recent messages, in shared memory
 * (a memfd) that the master makes before the first fork and keeps
 * across reloads, and hands to its successor on a binary upgrade.  Any
 * worker publishes into it; every worker reads its subscribers' next
 * messages from it.  One process-shared robust mutex guards it.
 *
 * A message has a channel-wide id (1, 2, ...).  Each channel keeps its
 * last channel_buffer messages for a while (channel_message_timeout):
 * subscribers resume from them.  A message is pending while a
 * subscriber that was there when it was published has not had it: a
 * pending message is never dropped to make room (the publisher is
 * refused instead), only when it expires.  See doc/design.md 13.
 */
#ifndef CHSTORE_H
#define CHSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHS_NAME	128	/* a channel's name, with its NUL */
#define CHS_WAITERS	256	/* workers with subscribers, at most */

struct chs;

struct chs_limits {
	int	channels;	/* channel_max */
	int	buffer;		/* channel_buffer: messages kept per channel */
	size_t	memory;		/* channel_memory: bytes for all messages */
	int	timeout;	/* channel_message_timeout, ms */
};

/* What a publish came to. */
enum chs_rc {
	CHS_OK,
	CHS_TOO_BIG,		/* larger than the store could ever hold */
	CHS_CHANNEL_FULL,	/* channel_buffer messages, all pending: 429 */
	CHS_STORE_FULL,		/* channel_memory full of pending ones: 507 */
	CHS_CLOSED,		/* the server stops: 503 */
};

/* What the store holds, for the status page. */
struct chs_stats {
	int		channels;	/* in use */
	long long	messages;	/* buffered, all channels */
	long long	bytes;		/* of them */
	long long	subscribers;
	long long	published, delivered, refused;
};

/*
 * A new store (fd -1) sized by lim, or the one behind fd (an upgrade's
 * predecessor's, whose sizes win).  NULL with a message.
 */
struct chs	*chs_open(int fd, const struct chs_limits *lim, char *err,
		    size_t errlen);
int		 chs_fd(const struct chs *);
/* This process's handle goes (the store lives while others map it). */
void		 chs_close(struct chs *);
/* The index of channel name; -1 when there is none (create: no room). */
int		 chs_channel(struct chs *, const char *name, int create,
		    int64_t now);
/* Append a message; its id and the subscribers it is for. */
enum chs_rc	 chs_publish(struct chs *, int ch, const void *, size_t,
		    int64_t now, uint64_t *id, long *subs);
/* The last id published on ch (0: none yet). */
uint64_t	 chs_last(struct chs *, int ch);
/* Its subscribers, on every worker. */
long		 chs_subscribers(struct chs *, int ch);
/* The oldest id ch still keeps, or last + 1 when it keeps none. */
uint64_t	 chs_first(struct chs *, int ch, int64_t now);
/*
 * A subscriber comes: the messages after the returned id are counted
 * for it (those it resumes from before are history, not its due).
 */
uint64_t	 chs_join(struct chs *, int ch);
/*
 * A subscriber goes, having had every message up to got: those after
 * got that were its due are no longer pending for it.
 */
void		 chs_leave(struct chs *, int ch, uint64_t joined, uint64_t got);
/*
 * The first message of ch after id `after` into buf (up to cap bytes;
 * longer ones are cut, which the caller's cap prevents): its length,
 * its id in *id; 0 when there is none yet; -1 when `after` is older
 * than what ch keeps, or newer than its last (*id: where to resume
 * from instead: the first id kept minus one, or the last).
 * A message after `joined` counts as delivered to this subscriber.
 */
long		 chs_next(struct chs *, int ch, uint64_t after, uint64_t joined,
		    int64_t now, char *buf, size_t cap, uint64_t *id);
void		 chs_stats(struct chs *, int64_t now, struct chs_stats *);
/*
 * A full stop: no publish is accepted from now on, so that what the
 * subscribers are given before their last event is all there is.
 */
void		 chs_close_publishing(struct chs *);
/*
 * The workers to wake when a message comes (those with subscribers):
 * pid joins (on) or leaves the list; chs_waiters() copies it.
 */
void		 chs_waiter(struct chs *, pid_t pid, int on);
int		 chs_waiters(struct chs *, pid_t *, int max);
/* A number drawn when the store was made: it names its wake sockets. */
uint64_t	 chs_token(const struct chs *);

#endif
