#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "clock.h"
#include "conn.h"
#include "pool.h"
#include "sb.h"

int
pool_init(struct pool *p, int cap, struct sb_slot *me)
{
	*p = (struct pool){ .cap = cap, .freelist = -1, .me = me };
	if ((p->conn = calloc((size_t)cap, sizeof(*p->conn))) == NULL)
		return -1;
	return 0;
}

struct conn *
pool_open(struct pool *p, int fd, int lfd)
{
	struct conn *c;
	int slot;

	if (p->freelist != -1) {
		slot = p->freelist;
		p->freelist = p->conn[slot].next;
	} else if (p->fresh < p->cap)
		slot = p->fresh++;
	else
		return NULL;
	c = &p->conn[slot];
	*c = (struct conn){ .fd = fd, .lfd = lfd, .slot = slot, .next = -1,
		.state = CS_HEAD, .since = clock_ms() };
	p->nopen++;
	p->count[CS_HEAD]++;
	sb_set_conns(p->me, p->nopen);
	return c;
}

/* The doubly linked lists, through the given link fields. */
#define LIST_APPEND(head, tail, c, prev, next) do {			\
	(c)->prev = (tail);						\
	(c)->next = NULL;						\
	if ((tail) != NULL)						\
		(tail)->next = (c);					\
	else								\
		(head) = (c);						\
	(tail) = (c);							\
} while (0)
#define LIST_REMOVE(head, tail, c, prev, next) do {			\
	if ((c)->prev != NULL)						\
		(c)->prev->next = (c)->next;				\
	else								\
		(head) = (c)->next;					\
	if ((c)->next != NULL)						\
		(c)->next->prev = (c)->prev;				\
	else								\
		(tail) = (c)->prev;					\
	(c)->prev = (c)->next = NULL;					\
} while (0)

void
pool_set_state(struct pool *p, struct conn *c, enum conn_state s)
{
	if (c->state == s)
		return;
	if (c->state == CS_PARKED)
		LIST_REMOVE(p->idle_head, p->idle_tail, c, idle_prev, idle_next);
	if (s == CS_PARKED)
		LIST_APPEND(p->idle_head, p->idle_tail, c, idle_prev, idle_next);
	p->count[c->state]--;
	p->count[s]++;
	c->state = s;
}

void
pool_request_begin(struct pool *p, struct conn *c, int64_t now)
{
	c->req_start = now;
	LIST_APPEND(p->req_head, p->req_tail, c, older, newer);
}

void
pool_request_end(struct pool *p, struct conn *c)
{
	if (c->req_start == 0)
		return;
	LIST_REMOVE(p->req_head, p->req_tail, c, older, newer);
	c->req_start = 0;
}

void
pool_release(struct pool *p, struct conn *c)
{
	pool_request_end(p, c);
	pool_set_state(p, c, CS_HEAD);
	p->count[CS_HEAD]--;
	c->next = p->freelist;
	p->freelist = c->slot;
	c->fd = -1;
	p->nopen--;
	sb_set_conns(p->me, p->nopen);
}

struct conn *
pool_next(struct pool *p, int *cursor)
{
	for (; *cursor < p->fresh; (*cursor)++)
		if (p->conn[*cursor].fd >= 0)	/* -1: free */
			return &p->conn[(*cursor)++];
	return NULL;
}

int
pool_full(const struct pool *p)
{
	return p->nopen >= p->cap;
}
