#include "config.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "clock.h"
#include "sb.h"

struct sb *
sb_create(int nslots)
{
	size_t len = sizeof(struct sb) + (size_t)nslots * sizeof(struct sb_slot);
	struct sb *sb;

	sb = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (sb == MAP_FAILED)
		return NULL;
	memset(sb, 0, len);
	sb->nslots = nslots;
	return sb;
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
	sb->slot[slot].nsessions = 0;
	for (int i = 0; i < SB_SESSIONS; i++)
		sb->slot[slot].session[i].prog = 0;
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

int
sb_session_open(struct sb_slot *s, const char *path, const char *peer,
    pid_t prog)
{
	s->nsessions++;
	for (int i = 0; i < SB_SESSIONS; i++) {
		struct sb_session *e = &s->session[i];

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
sb_session_count(struct sb_slot *s, int entry, uint64_t in, uint64_t out)
{
	if (entry < 0)
		return;
	s->session[entry].in = in;
	s->session[entry].out = out;
}

void
sb_session_close(struct sb_slot *s, int entry)
{
	s->nsessions--;
	if (entry >= 0)
		s->session[entry].prog = 0;
}
