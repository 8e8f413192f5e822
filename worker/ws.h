/*
 * WebSocket sessions bridged to programs (doc/design.md 10): the
 * upgrade (RFC 6455 4.2), framing with wslay's event API on the worker's
 * event core, the program's pipes (prog.c), and every way a session
 * closes.  A session is a connection in state CS_WS; conn.c hands it its
 * events.
 */
#ifndef WS_H
#define WS_H

#include <stdint.h>

#include "io.h"

struct conn;
struct http_req;
struct worker;

/*
 * What the request lacks to be a WebSocket upgrade (doc/design.md
 * 10.2): 0, or the status to answer, with *extra headers for it.
 */
int	ws_check_upgrade(const struct worker *, const struct http_req *,
	    const char **extra);
/* The websocket line that a request's path falls under, or -1. */
int	ws_route(const struct worker *, const struct http_req *);
/*
 * Answer the request in w->req for websocket line route: a 101 with its
 * program started (c->ws set), or an error status.
 */
enum io_rc	ws_accept(struct worker *, struct conn *, int route);
/* The 101 is sent: the session begins; pre: bytes that came after it. */
void	ws_begin(struct conn *, const char *pre, size_t n);
void	ws_on_io(struct conn *, uint32_t events);
void	ws_on_timer(struct conn *);
/*
 * The worker stops: end as doc 10.4 says, with 1001 on a full stop
 * (the scoreboard says draining), 1012 when replaced (reload, upgrade).
 */
void	ws_stop(struct conn *);
/* Fast stop: Close 1001 at once, the program's group killed. */
void	ws_hurry(struct conn *);
/* The connection goes (conn_close): its program is stopped, reaped later. */
void	ws_detach(struct conn *);
/* Programs whose clients are gone: still to be reaped (0: none). */
int	ws_programs_left(const struct worker *);
/* SIGKILL every program of the worker (its deadline, or a fast stop). */
void	ws_kill_all(struct worker *);
/* By when the worker must have ended its sessions (clock_ms). */
int64_t	ws_deadline(const struct worker *);

#endif
