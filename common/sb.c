#include "config.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "clock.h"
#include "sb.h"

/*
 * The mapping starts zeroed (anonymous memory) and is not cleared here:
 * pages cost memory only once touched, and most slots never are.
 */
struct sb *
sb_create(int nslots)
{
	size_t head = sizeof(struct sb) + (size_t)nslots *
	    sizeof(struct sb_slot), len;
	struct sb *sb;

	head = (head + _Alignof(struct sb_session) - 1) /
	    _Alignof(struct sb_session) * _Alignof(struct sb_session);
	len = head + (size_t)nslots * SB_SESSIONS * sizeof(struct sb_session);
	sb = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (sb == MAP_FAILED)
		return NULL;
	sb->nslots = nslots;
	sb->session = (struct sb_session *)(void *)((char *)sb + head);
	return sb;
}

struct sb_session *
sb_sessions(const struct sb *sb, int slot)
{
	return &sb->session[(size_t)slot * SB_SESSIONS];
}

int
sb_slot_reserve(struct sb *sb)
{
	for (int i = 0; i < sb->nslots; i++) {
		struct sb_slot *s = &sb->slot[i];

		if (s->pid != 0)
			continue;
		s->pid = -1;
		/* "free" until the worker reaches its accept loop. */
		s->state = SB_FREE;
		s->gen = sb->generation;
		s->retiring = 0;
		s->requests = 0;
		s->conns = 0;
		s->started = 0;
		s->req_start = 0;
		s->busy_since = 0;
		s->req[0] = '\0';
		s->log_lost = 0;
		s->tls_done = s->tls_resumed = s->tls_v13 = 0;
		s->tls_failed = 0;
		s->tls_open = 0;
		return i;
	}
	return -1;
}

/*
 * Both sides of the fork call this: whichever runs first, the slot names
 * the worker before the worker can write to it or the master read it.
 */
void
sb_slot_start(struct sb *sb, int slot, pid_t pid)
{
	sb->slot[slot].pid = pid;
	sb->slot[slot].started = time(NULL);
}

void
sb_slot_retire(struct sb *sb, int slot)
{
	sb->slot[slot].retiring = 1;
}

void
sb_slot_deadline(struct sb *sb, int slot, int64_t deadline)
{
	sb->slot[slot].deadline = deadline;
}

void
sb_slot_free(struct sb *sb, int slot)
{
	sb->slot[slot].state = SB_FREE;
	sb->slot[slot].req_start = 0;
	sb->slot[slot].busy_since = 0;
	sb->slot[slot].deadline = 0;
	if (sb->slot[slot].nsessions != 0) {
		sb->slot[slot].nsessions = 0;
		for (int i = 0; i < SB_SESSIONS; i++)
			sb_sessions(sb, slot)[i].prog = 0;
	}
	sb->slot[slot].pid = 0;
}

const char *
sb_state_name(int s)
{
	static const char *const names[] = { "free", "idle", "reading",
		"writing", "keepalive", "draining" };

	return s >= 0 && s <= SB_DRAINING ? names[s] : "?";
}

void
sb_set_state(struct sb_slot *s, enum sb_state state)
{
	s->state = (int)state;
}

void
sb_set_conns(struct sb_slot *s, int n)
{
	s->conns = n;
}

void
sb_show_request(struct sb_slot *s, const char *line, size_t n, int64_t start)
{
	if (start == 0 || (s->req_start == start &&
	    strncmp(s->req, line, n) == 0)) {
		s->req_start = start;
		return;
	}
	s->req_start = 0;	/* the line is changing: not to be read now */
	if (n >= SB_REQ_LEN)
		n = SB_REQ_LEN - 1;
	memcpy(s->req, line, n);
	s->req[n] = '\0';
	s->req_start = start;
}

void
sb_busy(struct sb_slot *s, const char *line, size_t n)
{
	if (line == NULL) {
		s->busy_since = 0;
		return;
	}
	if (n >= SB_REQ_LEN)
		n = SB_REQ_LEN - 1;
	memcpy(s->busy_req, line, n);
	s->busy_req[n] = '\0';
	s->busy_since = clock_ms();
}

void
sb_request_end(struct sb_slot *s)
{
	s->requests++;
}

void
sb_count_log_failure(struct sb_slot *s)
{
	s->log_lost++;
}

void
sb_count_tls(struct sb_slot *s, int v13, int resumed)
{
	s->tls_done++;
	s->tls_v13 += v13 != 0;
	s->tls_resumed += resumed != 0;
}

void
sb_count_tls_failed(struct sb_slot *s)
{
	s->tls_failed++;
}

void
sb_tls_open(struct sb_slot *s, int delta)
{
	s->tls_open += delta;
}

int
sb_session_open(struct sb *sb, int slot, const char *path, const char *peer,
    pid_t prog)
{
	struct sb_session *t = sb_sessions(sb, slot);

	sb->slot[slot].nsessions++;
	for (int i = 0; i < SB_SESSIONS; i++) {
		struct sb_session *e = &t[i];

		if (e->prog != 0)
			continue;
		strlcpy(e->path, path, sizeof(e->path));
		strlcpy(e->peer, peer, sizeof(e->peer));
		e->in = e->out = 0;
		e->started = time(NULL);
		e->prog = prog;		/* last: the entry is complete */
		return i;
	}
	return -1;
}

void
sb_session_count(struct sb *sb, int slot, int entry, uint64_t in,
    uint64_t out)
{
	if (entry < 0)
		return;
	sb_sessions(sb, slot)[entry].in = in;
	sb_sessions(sb, slot)[entry].out = out;
}

void
sb_session_close(struct sb *sb, int slot, int entry)
{
	sb->slot[slot].nsessions--;
	if (entry >= 0)
		sb_sessions(sb, slot)[entry].prog = 0;
}
