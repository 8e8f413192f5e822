/*
 * Unit tests of common/chstore.c: ids, order, resume, what is pending
 * and what may go, the limits (channel_buffer, channel_memory,
 * channel_max, expiry), the arena's laps, and a store opened again
 * through its descriptor (as an upgrade's new master does).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chstore.h"
#include "tap.h"

static struct chs *
store(int channels, int buffer, size_t memory, int timeout)
{
	struct chs_limits lim = { channels, buffer, memory, timeout };
	char err[128];
	struct chs *s = chs_open(-1, &lim, err, sizeof(err));

	if (s == NULL)
		printf("# %s\n", err);
	return s;
}

static enum chs_rc
pub(struct chs *s, int ch, const char *m, int64_t now, uint64_t *id)
{
	long subs;

	return chs_publish(s, ch, m, strlen(m), now, id, &subs);
}

/* The next message as a string ("" none, "GONE" resume elsewhere). */
static const char *
next(struct chs *s, int ch, uint64_t *after, uint64_t joined, int64_t now)
{
	static char buf[256];
	uint64_t id;
	long n = chs_next(s, ch, *after, joined, now, buf, sizeof(buf) - 1,
	    &id);

	if (n == 0)
		return "";
	*after = id;
	if (n < 0)
		return "GONE";
	buf[n] = '\0';
	return buf;
}

static void
basics(void)
{
	struct chs *s = store(4, 8, 1 << 16, 60000);
	uint64_t id = 0, cur, joined, base, idb;
	int a, b;

	ok(s != NULL, "a store");
	a = chs_channel(s, "/chat/a", 1, 0);
	b = chs_channel(s, "/chat/b", 1, 0);
	ok(a >= 0 && b >= 0 && a != b, "two channels");
	ok(chs_channel(s, "/chat/a", 0, 0) == a, "found again by name");
	ok(chs_channel(s, "/chat/c", 0, 0) == -1, "not made without create");
	joined = base = chs_join(s, a);
	cur = joined;
	ok(base > 1700000000000000ULL, "ids start from the time (%llu)",
	    (unsigned long long)base);
	ok(pub(s, a, "one", 1, &id) == CHS_OK && id == base + 1, "id 1");
	ok(pub(s, a, "two", 2, &id) == CHS_OK && id == base + 2, "id 2");
	ok(pub(s, b, "other", 3, &idb) == CHS_OK && idb == chs_last(s, b) &&
	    chs_last(s, a) == base + 2, "ids are per channel");
	ok(strcmp(next(s, a, &cur, joined, 4), "one") == 0 && cur == base + 1,
	    "first in order");
	ok(strcmp(next(s, a, &cur, joined, 4), "two") == 0 && cur == base + 2,
	    "second");
	ok(strcmp(next(s, a, &cur, joined, 4), "") == 0, "nothing more");
	cur = base;
	ok(strcmp(next(s, a, &cur, base + 2, 4), "one") == 0,
	    "resume: history is read again");
	cur = base + 99;
	ok(strcmp(next(s, a, &cur, joined, 4), "GONE") == 0 && cur == base + 2,
	    "an id never given resumes at the last");
	cur = 5;
	ok(strcmp(next(s, a, &cur, joined, 4), "GONE") == 0 && cur == base,
	    "an id from before: from the oldest kept");
	ok(chs_first(s, a, 4) == base + 1 && chs_last(s, a) == base + 2,
	    "first and last");
	chs_close(s);
}

static void
pending(void)
{
	struct chs *s = store(4, 3, 1 << 16, 60000);
	uint64_t id, cur, joined;
	int ch = chs_channel(s, "c", 1, 0);
	struct chs_stats st;

	joined = cur = chs_join(s, ch);
	ok(pub(s, ch, "1", 0, &id) == CHS_OK && pub(s, ch, "2", 0, &id) ==
	    CHS_OK && pub(s, ch, "3", 0, &id) == CHS_OK, "three pending");
	ok(pub(s, ch, "4", 0, &id) == CHS_CHANNEL_FULL,
	    "channel_buffer full of pending ones: refused, not dropped");
	ok(strcmp(next(s, ch, &cur, joined, 1), "1") == 0, "one delivered");
	ok(pub(s, ch, "4", 2, &id) == CHS_OK && id == joined + 4,
	    "then the delivered one makes room");
	cur = joined;
	ok(strcmp(next(s, ch, &cur, joined, 3), "GONE") == 0 &&
	    cur == joined + 1, "it left the history: resume from the oldest kept");
	chs_leave(s, ch, joined, joined + 1);
	ok(pub(s, ch, "5", 4, &id) == CHS_OK, "a subscriber gone: nothing "
	    "is pending for it");
	chs_stats(s, 4, &st);
	ok(st.channels == 1 && st.messages == 3 && st.subscribers == 0 &&
	    st.published == 5 && st.refused == 1, "stats");
	ok(pub(s, ch, "6", 70000, &id) == CHS_OK, "expired ones go too");
	chs_stats(s, 70000, &st);
	ok(st.messages == 1, "only the new one is kept after expiry");
	chs_close(s);
}

static void
memory(void)
{
	struct chs *s = store(2, 1000, 4096, 60000);
	char big[600];
	uint64_t id, cur, joined, got = 0;
	long subs;
	int ch = chs_channel(s, "m", 1, 0), n = 0, i;

	memset(big, 'x', sizeof(big));
	ok(chs_publish(s, ch, big, 3000, 0, &id, &subs) == CHS_TOO_BIG,
	    "larger than half the store: 413");
	joined = cur = chs_join(s, ch);
	while (chs_publish(s, ch, big, sizeof(big), 0, &id, &subs) == CHS_OK)
		n++;
	ok(n >= 5 && n <= 7, "the store fills (%d of 600 bytes)", n);
	ok(chs_publish(s, ch, big, sizeof(big), 0, &id, &subs) ==
	    CHS_STORE_FULL, "full of pending ones: 507");
	/* Read and publish in turn for many laps: order and bytes hold. */
	for (i = 0; i < 200; i++) {
		char buf[700];
		long len = chs_next(s, ch, cur, joined, 0, buf, sizeof(buf),
		    &id);

		if (len != (long)sizeof(big) || id != cur + 1)
			break;
		cur = id;
		got++;
		big[0] = (char)('a' + i % 26);
		if (chs_publish(s, ch, big, sizeof(big), 0, &id, &subs) !=
		    CHS_OK)
			break;
	}
	ok(i == 200 && got == 200, "200 laps of read one, publish one");
	chs_close(s);
}

static void
channels(void)
{
	struct chs *s = store(2, 4, 1 << 14, 1000);
	uint64_t id, olda;
	int a = chs_channel(s, "a", 1, 0), b = chs_channel(s, "b", 1, 0), c;

	ok(a >= 0 && b >= 0 && chs_channel(s, "c", 1, 10) == -1,
	    "channel_max: no third");
	(void)pub(s, a, "x", 10, &id);
	olda = id;
	c = chs_channel(s, "c", 1, 5000);
	ok(c >= 0, "an idle channel whose messages expired is reused");
	ok(pub(s, c, "y", 5000, &id) == CHS_OK && id > olda,
	    "its ids start past every id given (%llu)",
	    (unsigned long long)id);
	(void)chs_join(s, b);
	ok(chs_channel(s, "d", 1, 20000) == -1 || chs_channel(s, "b", 0,
	    20000) == b, "a channel with a subscriber is never reused");
	chs_close(s);
}

static void
reopen(void)
{
	struct chs *s = store(4, 8, 1 << 16, 60000), *t;
	struct chs_limits other = { 1, 1, 4096, 1 };
	uint64_t id, cur;
	char err[128];
	int ch = chs_channel(s, "up", 1, 0);

	(void)pub(s, ch, "kept", 0, &id);
	cur = id - 1;
	t = chs_open(dup(chs_fd(s)), &other, err, sizeof(err));
	ok(t != NULL, "opened again by descriptor");
	ok(t != NULL && chs_channel(t, "up", 0, 0) == ch &&
	    strcmp(next(t, ch, &cur, id, 0), "kept") == 0,
	    "the same channels and messages, the old sizes");
	chs_close(t);
	chs_close(s);
}

int
main(void)
{
	basics();
	pending();
	memory();
	channels();
	reopen();
	return tap_done();
}
