#include "config.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

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
sb_alloc(struct sb *sb, pid_t pid)
{
	for (int i = 0; i < sb->nslots; i++)
		if (sb->slot[i].pid == 0) {
			sb->slot[i].pid = pid;
			/* "free" until the worker reaches its accept loop. */
			sb->slot[i].state = SB_FREE;
			sb->slot[i].gen = sb->generation;
			sb->slot[i].retiring = 0;
			sb->slot[i].requests = 0;
			sb->slot[i].conns = 0;
			sb->slot[i].req_start = 0;
			sb->slot[i].req[0] = '\0';
			return i;
		}
	return -1;
}

struct sb_slot *
sb_find(struct sb *sb, pid_t pid)
{
	for (int i = 0; i < sb->nslots; i++)
		if (sb->slot[i].pid == pid)
			return &sb->slot[i];
	return NULL;
}

const char *
sb_state_name(int s)
{
	static const char *const names[] = { "free", "idle", "reading",
		"writing", "keepalive", "draining" };

	return s >= 0 && s <= SB_DRAINING ? names[s] : "?";
}

int64_t
sb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
