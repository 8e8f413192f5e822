/*
 * libFuzzer target: what reads client bytes or program output in the
 * WebSocket bridge.  The first input byte picks the part:
 *   0  frames, through wslay's server context, as a session reads them;
 *      every text message wslay lets through must be valid UTF-8 by our
 *      own validator too (two implementations checked against each other)
 *   1  the upgrade's header checks: lines of the input are a token list,
 *      a key, an Origin, a Host, and a subprotocol offer
 *   2  program output: repaired text must be valid UTF-8, and a long
 *      line's cut never falls inside a sequence of a valid text; the
 *      same bytes as a channel message in its JSON envelope (wschan.c)
 *      are one valid JSON string's inside
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "cfg.h"
#include "http.h"
#include "wsproto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct feed {
	const uint8_t	*p;
	size_t		 n, off;
};

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *arg)
{
	struct feed *f = arg;
	size_t k = f->n - f->off;

	(void)flags;
	if (k == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	/* Small reads as well as large: frames split anywhere. */
	if (k > len)
		k = len;
	if (k > 7 && (f->off & 1))
		k = 7;
	memcpy(buf, f->p + f->off, k);
	f->off += k;
	return (ssize_t)k;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	(void)ctx;
	(void)data;
	(void)flags;
	(void)arg;
	return (ssize_t)len;
}

static void
on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct wslay_event_msg echo = { m->opcode, m->msg, m->msg_length };

	(void)arg;
	if (m->opcode == WSLAY_TEXT_FRAME &&
	    !wsp_utf8_valid(m->msg, m->msg_length))
		abort();
	if (m->opcode == WSLAY_TEXT_FRAME || m->opcode == WSLAY_BINARY_FRAME)
		(void)wslay_event_queue_msg(ctx, &echo);
}

static void
frames(const uint8_t *p, size_t n)
{
	static const struct wslay_event_callbacks cb = { recv_cb, send_cb,
		NULL, NULL, NULL, NULL, on_msg };
	struct feed f = { p, n, 0 };
	wslay_event_context_ptr ctx;

	if (wslay_event_context_server_init(&ctx, &cb, &f) != 0)
		return;
	wslay_event_config_set_max_recv_msg_length(ctx, 65536);
	for (int i = 0; i < 64 && wslay_event_want_read(ctx) &&
	    f.off < f.n; i++) {
		(void)wslay_event_recv(ctx);
		(void)wslay_event_send(ctx);
	}
	wslay_event_context_free(ctx);
}

/* The next line of the input (without its newline). */
static struct http_str
next_line(const char **p, const char *end)
{
	struct http_str s = { *p, 0 };
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));

	s.n = (size_t)((nl ? nl : end) - *p);
	*p = nl ? nl + 1 : end;
	return s;
}

static void
upgrade(const uint8_t *data, size_t n)
{
	const char *p = (const char *)data, *end = p + n;
	struct http_str list = next_line(&p, end), key = next_line(&p, end),
	    origin = next_line(&p, end), host = next_line(&p, end),
	    offer = next_line(&p, end);
	struct cfg_words words;
	char accept[29], out[256];
	const char *pick;

	(void)wsp_has_token(list, "websocket");
	(void)wsp_has_token(list, "upgrade");
	if (wsp_key_valid(key)) {
		wsp_accept_key(key, accept);
		if (strlen(accept) != 28)
			abort();
	}
	memset(&words, 0, sizeof(words));
	memcpy(words.buf, "same\0https://a.example\0chat\0", 28);
	words.n = 3;
	(void)wsp_origin_ok(&words, origin, host);
	words.n = 1;
	(void)wsp_origin_ok(&words, origin, host);
	memcpy(words.buf, "chat\0v2.proto\0", 14);
	words.n = 2;
	if ((pick = wsp_pick_protocol(&words, offer)) != NULL &&
	    strcmp(pick, "chat") != 0 && strcmp(pick, "v2.proto") != 0)
		abort();
	if (wsp_decode(list, out, sizeof(out)) == 0 &&
	    strlen(out) > list.n)
		abort();
}

/*
 * A channel message in its JSON envelope (wschan.c): escaped, then
 * repaired, it is valid UTF-8 and the inside of one JSON string: no raw
 * quote or control byte, every backslash starting a known escape.
 */
static void
envelope(const uint8_t *p, size_t n)
{
	char *esc = malloc(n * 6 + 1);
	uint8_t *fixed = malloc(n * 18 + 1);
	size_t k, m;

	if (esc == NULL || fixed == NULL)
		goto out;
	k = wsp_json_escape((const char *)p, n, esc);
	if (k > n * 6)
		abort();
	m = wsp_utf8_repair((const uint8_t *)esc, k, fixed);
	if (!wsp_utf8_valid(fixed, m))
		abort();
	for (size_t i = 0; i < m; i++) {
		if (fixed[i] == '"' || fixed[i] < 0x20)
			abort();
		if (fixed[i] != '\\')
			continue;
		if (i + 1 >= m)
			abort();
		if (fixed[i + 1] == 'u') {
			if (i + 5 >= m)
				abort();
			i += 5;
		} else if (fixed[i + 1] == '"' || fixed[i + 1] == '\\' ||
		    fixed[i + 1] == 'n')
			i++;
		else
			abort();
	}
out:
	free(esc);
	free(fixed);
}

static void
output(const uint8_t *p, size_t n)
{
	uint8_t *fixed = malloc(n * 3 + 1);
	size_t k;

	if (fixed == NULL)
		return;
	k = wsp_utf8_repair(p, n, fixed);
	if (!wsp_utf8_valid(fixed, k))
		abort();
	if (n > 1) {
		size_t cut = wsp_split_at((const char *)fixed, k / 2 > 0 ?
		    k / 2 : 1);

		if (cut == 0 || cut > k || (cut < k &&
		    (fixed[cut] & 0xc0) == 0x80 && cut != k / 2))
			abort();
	}
	free(fixed);
	envelope(p, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		frames(data + 1, size - 1);
		break;
	case 1:
		upgrade(data + 1, size - 1);
		break;
	default:
		output(data + 1, size - 1);
		break;
	}
	return 0;
}
