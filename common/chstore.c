/*
 * The channel store (see chstore.h).  Layout of the memfd:
 *
 *	struct chs_shm		the lock, sizes, the arena's head and tail
 *	struct chs_chan[n]	the channels
 *	struct chs_ent[n * b]	each channel's ring of its last b messages
 *	arena			the messages' bytes, a ring of records
 *
 * Arena positions only grow (offset = position % size); a record never
 * wraps: one that would is preceded by a skip to the next lap.  Room is
 * made at the head, oldest first, and only from records that are no
 * longer pending (or have expired); when the head is pending, the
 * publisher is refused.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "chstore.h"

#define ALIGN		8
#define SKIP		UINT32_MAX	/* a record header meaning "next lap" */

struct chs_shm {
	pthread_mutex_t	mu;
	int		channels, buffer, timeout;
	int		used;			/* channels in use */
	uint64_t	size;			/* of the arena */
	uint64_t	head, tail;		/* arena positions */
	uint64_t	published, delivered, refused;
	int		closed;			/* chs_close_publishing() */
	uint64_t	top;			/* the largest id given */
	uint64_t	token;
	pid_t		waiter[CHS_WAITERS];	/* 0: a free entry */
};

struct chs_chan {
	char		name[CHS_NAME];
	uint32_t	hash;
	int		used;
	uint64_t	last;		/* last id published */
	uint32_t	first, count;	/* the ring: oldest slot, how many */
	long		subs;		/* subscribers, every worker's */
	int64_t		touched;	/* ms of the last publish or join */
};

struct chs_ent {
	uint64_t	id;
	uint64_t	pos;		/* its record in the arena */
	uint32_t	len;
	int64_t		time;		/* ms, published */
	long		pending;	/* subscribers that have not had it */
};

struct chs_rec {
	uint32_t	chan;		/* SKIP: the rest of the lap is empty */
	uint32_t	len;
	uint64_t	id;
};

struct chs {
	struct chs_shm	*sh;
	struct chs_chan	*chan;
	struct chs_ent	*ent;
	char		*arena;
	size_t		 maplen;
	int		 fd;
};

static size_t
layout(int channels, int buffer, uint64_t size, size_t *choff,
    size_t *entoff, size_t *arenaoff)
{
	*choff = (sizeof(struct chs_shm) + 63) & ~(size_t)63;
	*entoff = *choff + (size_t)channels * sizeof(struct chs_chan);
	*arenaoff = (*entoff + (size_t)channels * (size_t)buffer *
	    sizeof(struct chs_ent) + 4095) & ~(size_t)4095;
	return *arenaoff + (size_t)size;
}

static int
init_lock(pthread_mutex_t *mu)
{
	pthread_mutexattr_t a;
	int rc;

	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
	    pthread_mutex_init(mu, &a);
	pthread_mutexattr_destroy(&a);
	return rc ? -1 : 0;
}

/*
 * A worker that died holding the lock left the store as it was between
 * two of our steps, each of which leaves it consistent: go on.
 */
static void
lock(struct chs *s)
{
	if (pthread_mutex_lock(&s->sh->mu) == EOWNERDEAD)
		(void)pthread_mutex_consistent(&s->sh->mu);
}

static void
unlock(struct chs *s)
{
	(void)pthread_mutex_unlock(&s->sh->mu);
}

struct chs *
chs_open(int fd, const struct chs_limits *lim, char *err, size_t errlen)
{
	struct chs_shm head;
	size_t choff, entoff, arenaoff, len;
	struct chs *s;
	int made = fd < 0;
	void *m;

	if (!made) {
		if (pread(fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
			snprintf(err, errlen, "channel store: cannot read it");
			return NULL;
		}
		len = layout(head.channels, head.buffer, head.size, &choff,
		    &entoff, &arenaoff);
	} else {
		len = layout(lim->channels, lim->buffer, lim->memory, &choff,
		    &entoff, &arenaoff);
		if ((fd = memfd_create("preforkd-channels", MFD_CLOEXEC)) == -1 ||
		    ftruncate(fd, (off_t)len) == -1) {
			snprintf(err, errlen, "channel store: %s",
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return NULL;
		}
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || (s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "channel store: %s", strerror(errno));
		if (m != MAP_FAILED)
			munmap(m, len);
		close(fd);
		return NULL;
	}
	*s = (struct chs){ m, (void *)((char *)m + choff),
	    (void *)((char *)m + entoff), (char *)m + arenaoff, len, fd };
	if (made) {
		s->sh->channels = lim->channels;
		s->sh->buffer = lim->buffer;
		s->sh->timeout = lim->timeout;
		s->sh->size = lim->memory;
		s->sh->token = ((uint64_t)getpid() << 32) ^
		    (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;
		if (init_lock(&s->sh->mu) == -1) {
			snprintf(err, errlen, "channel store: no shared lock");
			munmap(m, len);
			close(fd);
			free(s);
			return NULL;
		}
	}
	return s;
}

int
chs_fd(const struct chs *s)
{
	return s->fd;
}

void
chs_close(struct chs *s)
{
	if (s == NULL)
		return;
	munmap(s->sh, s->maplen);
	close(s->fd);
	free(s);
}

static uint32_t
hash(const char *p)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*p != '\0')
		h = (h ^ (unsigned char)*p++) * 16777619u;
	return h;
}

static struct chs_ent *
ent(struct chs *s, int ch, uint32_t i)
{
	return &s->ent[(size_t)ch * (size_t)s->sh->buffer +
	    i % (uint32_t)s->sh->buffer];
}

static int
expired(const struct chs *s, const struct chs_ent *e, int64_t now)
{
	return now - e->time > s->sh->timeout;
}

/* Drop ch's oldest message from its ring (its record stays for now). */
static void
drop_oldest(struct chs *s, int ch)
{
	struct chs_chan *c = &s->chan[ch];

	c->first = (c->first + 1) % (uint32_t)s->sh->buffer;
	c->count--;
}

/* Expired messages leave the front of ch's ring. */
static void
expire(struct chs *s, int ch, int64_t now)
{
	struct chs_chan *c = &s->chan[ch];

	while (c->count > 0 && expired(s, ent(s, ch, c->first), now))
		drop_oldest(s, ch);
}

/* A channel nobody uses, whose messages have all expired, is free. */
static int
reusable(struct chs *s, int ch, int64_t now)
{
	struct chs_chan *c = &s->chan[ch];

	if (!c->used)
		return 1;
	if (c->subs > 0 || now - c->touched <= s->sh->timeout)
		return 0;
	expire(s, ch, now);
	return c->count == 0;
}

/*
 * A new channel's ids start from the time (in ms) times 1000: past any
 * id given in this store (its top), and any that a channel of the same
 * name gave before a restart, unless it gave more than a thousand a
 * millisecond;
 * so a subscriber resuming with such an id gets the new channel's
 * messages, never a wait for ids already used.  Below 2^53 (JavaScript
 * numbers) until the year 2255.
 */
static uint64_t
id_base(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) *
	    1000;
}

int
chs_channel(struct chs *s, const char *name, int create, int64_t now)
{
	uint32_t h = hash(name);
	int i, found = -1, spare = -1;

	if (strlen(name) >= CHS_NAME)
		return -1;
	lock(s);
	for (i = 0; i < s->sh->channels && found == -1; i++) {
		struct chs_chan *c = &s->chan[i];

		if (c->used && c->hash == h && strcmp(c->name, name) == 0)
			found = i;
		else if (spare == -1 && create && reusable(s, i, now))
			spare = i;
	}
	if (found == -1 && spare != -1) {
		struct chs_chan *c = &s->chan[spare];

		if (!c->used)
			s->sh->used++;
		uint64_t base = id_base();

		*c = (struct chs_chan){ .hash = h, .used = 1,
		    .last = base > s->sh->top ? base : s->sh->top,
		    .touched = now };
		memcpy(c->name, name, strlen(name) + 1);
		found = spare;
	}
	unlock(s);
	return found;
}

static struct chs_rec *
rec_at(struct chs *s, uint64_t pos)
{
	return (struct chs_rec *)(void *)(s->arena + pos % s->sh->size);
}

static uint64_t
rec_size(uint32_t len)
{
	return (sizeof(struct chs_rec) + len + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

/* The next lap's start from pos. */
static uint64_t
next_lap(const struct chs *s, uint64_t pos)
{
	return (pos / s->sh->size + 1) * s->sh->size;
}

/*
 * Free the record at the head, if no subscriber still waits for it.
 * 0 done, -1 when it is pending.
 */
static int
evict_head(struct chs *s, int64_t now)
{
	struct chs_shm *sh = s->sh;
	uint64_t left = sh->size - sh->head % sh->size;
	struct chs_rec *r;
	struct chs_chan *c;
	struct chs_ent *e;

	if (left < sizeof(struct chs_rec) || rec_at(s, sh->head)->chan ==
	    SKIP) {
		sh->head = next_lap(s, sh->head);
		return 0;
	}
	r = rec_at(s, sh->head);
	c = &s->chan[r->chan];
	if (c->count > 0 && (e = ent(s, (int)r->chan, c->first))->pos ==
	    sh->head) {
		if (e->pending > 0 && !expired(s, e, now))
			return -1;
		drop_oldest(s, (int)r->chan);
	}
	sh->head += rec_size(r->len);
	return 0;
}

/* Room for a record of len bytes at the tail; its position, or -1. */
static int
make_room(struct chs *s, uint32_t len, int64_t now, uint64_t *pos)
{
	struct chs_shm *sh = s->sh;
	uint64_t need = rec_size(len), left;

	for (;;) {
		left = sh->size - sh->tail % sh->size;
		if (left < need) {
			/* This lap's end is too small: skip it, if it is free. */
			if (sh->tail + left - sh->head > sh->size) {
				if (evict_head(s, now) == -1)
					return -1;
				continue;
			}
			if (left >= sizeof(struct chs_rec))
				rec_at(s, sh->tail)->chan = SKIP;
			sh->tail += left;
			continue;
		}
		if (sh->tail + need - sh->head <= sh->size)
			break;
		if (evict_head(s, now) == -1)
			return -1;
	}
	*pos = sh->tail;
	sh->tail += need;
	return 0;
}

enum chs_rc
chs_publish(struct chs *s, int ch, const void *data, size_t len, int64_t now,
    uint64_t *id, long *subs)
{
	struct chs_chan *c = &s->chan[ch];
	struct chs_rec *r;
	struct chs_ent *e;
	uint64_t pos;

	if (rec_size((uint32_t)len) > s->sh->size / 2 || len > UINT32_MAX / 2)
		return CHS_TOO_BIG;
	lock(s);
	if (s->sh->closed) {
		unlock(s);
		return CHS_CLOSED;
	}
	expire(s, ch, now);
	if (c->count == (uint32_t)s->sh->buffer) {
		e = ent(s, ch, c->first);
		if (e->pending > 0) {
			s->sh->refused++;
			unlock(s);
			return CHS_CHANNEL_FULL;
		}
		drop_oldest(s, ch);
	}
	if (make_room(s, (uint32_t)len, now, &pos) == -1) {
		s->sh->refused++;
		unlock(s);
		return CHS_STORE_FULL;
	}
	r = rec_at(s, pos);
	*r = (struct chs_rec){ (uint32_t)ch, (uint32_t)len, c->last + 1 };
	memcpy(r + 1, data, len);
	e = ent(s, ch, c->first + c->count);
	*e = (struct chs_ent){ c->last + 1, pos, (uint32_t)len, now, c->subs };
	c->count++;
	c->last++;
	if (c->last > s->sh->top)
		s->sh->top = c->last;
	c->touched = now;
	s->sh->published++;
	*id = c->last;
	*subs = c->subs;
	unlock(s);
	return CHS_OK;
}

uint64_t
chs_last(struct chs *s, int ch)
{
	uint64_t last;

	lock(s);
	last = s->chan[ch].last;
	unlock(s);
	return last;
}

long
chs_subscribers(struct chs *s, int ch)
{
	long n;

	lock(s);
	n = s->chan[ch].subs;
	unlock(s);
	return n;
}

uint64_t
chs_first(struct chs *s, int ch, int64_t now)
{
	struct chs_chan *c = &s->chan[ch];
	uint64_t first;

	lock(s);
	expire(s, ch, now);
	first = c->count > 0 ? ent(s, ch, c->first)->id : c->last + 1;
	unlock(s);
	return first;
}

uint64_t
chs_join(struct chs *s, int ch)
{
	uint64_t last;

	lock(s);
	s->chan[ch].subs++;
	last = s->chan[ch].last;
	unlock(s);
	return last;
}

/* The ring entry of id on ch, or NULL when ch keeps it no more. */
static struct chs_ent *
find(struct chs *s, int ch, uint64_t id)
{
	struct chs_chan *c = &s->chan[ch];
	struct chs_ent *e;
	uint64_t first;

	if (c->count == 0)
		return NULL;
	first = ent(s, ch, c->first)->id;
	if (id < first || id > c->last)
		return NULL;
	e = ent(s, ch, c->first + (uint32_t)(id - first));
	return e->id == id ? e : NULL;
}

void
chs_leave(struct chs *s, int ch, uint64_t joined, uint64_t got)
{
	struct chs_chan *c = &s->chan[ch];
	struct chs_ent *e;

	lock(s);
	for (uint64_t id = (got > joined ? got : joined) + 1; id <= c->last;
	    id++)
		if ((e = find(s, ch, id)) != NULL && e->pending > 0)
			e->pending--;
	if (c->subs > 0)
		c->subs--;
	unlock(s);
}

long
chs_next(struct chs *s, int ch, uint64_t after, uint64_t joined, int64_t now,
    char *buf, size_t cap, uint64_t *id)
{
	struct chs_chan *c = &s->chan[ch];
	struct chs_ent *e;
	size_t n;

	lock(s);
	if (after == c->last) {
		unlock(s);
		return 0;
	}
	if (after > c->last) {
		/* An id this channel never gave (a store since restarted). */
		*id = c->last;
		unlock(s);
		return -1;
	}
	expire(s, ch, now);
	if ((e = find(s, ch, after + 1)) == NULL) {
		/* Gone: resume from the oldest kept (or the next to come). */
		*id = c->count > 0 ? ent(s, ch, c->first)->id - 1 : c->last;
		unlock(s);
		return -1;
	}
	n = e->len < cap ? e->len : cap;
	memcpy(buf, rec_at(s, e->pos) + 1, n);
	if (e->id > joined && e->pending > 0) {
		e->pending--;
		s->sh->delivered++;
	}
	*id = e->id;
	unlock(s);
	return (long)n;
}

void
chs_stats(struct chs *s, int64_t now, struct chs_stats *st)
{
	*st = (struct chs_stats){ 0 };
	lock(s);
	for (int i = 0; i < s->sh->channels; i++) {
		struct chs_chan *c = &s->chan[i];

		if (!c->used)
			continue;
		expire(s, i, now);
		st->channels++;
		st->messages += c->count;
		st->subscribers += c->subs;
		for (uint32_t j = 0; j < c->count; j++)
			st->bytes += ent(s, i, c->first + j)->len;
	}
	st->published = (long long)s->sh->published;
	st->delivered = (long long)s->sh->delivered;
	st->refused = (long long)s->sh->refused;
	unlock(s);
}

void
chs_close_publishing(struct chs *s)
{
	lock(s);
	s->sh->closed = 1;
	unlock(s);
}

void
chs_waiter(struct chs *s, pid_t pid, int on)
{
	int i, free_ = -1;

	lock(s);
	for (i = 0; i < CHS_WAITERS; i++) {
		if (s->sh->waiter[i] == pid)
			break;
		if (free_ == -1 && s->sh->waiter[i] == 0)
			free_ = i;
	}
	if (!on && i < CHS_WAITERS)
		s->sh->waiter[i] = 0;
	else if (on && i == CHS_WAITERS && free_ != -1)
		s->sh->waiter[free_] = pid;
	unlock(s);
}

int
chs_waiters(struct chs *s, pid_t *out, int max)
{
	int n = 0;

	lock(s);
	for (int i = 0; i < CHS_WAITERS && n < max; i++)
		if (s->sh->waiter[i] != 0)
			out[n++] = s->sh->waiter[i];
	unlock(s);
	return n;
}

uint64_t
chs_token(const struct chs *s)
{
	return s->sh->token;
}
