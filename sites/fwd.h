/* fwd.h - a local forward: a listener on 127.0.0.1 whose connections are
 * joined to file descriptors queued beforehand (tunnels from
 * hp_conn_tunnel()), for clients that insist on connecting a socket
 * themselves (libcurl).
 *
 * The caller queues a connected descriptor with hp_fwd_push() and then
 * connects to 127.0.0.1:hp_fwd_port(); a thread accepts that connection,
 * joins it to the oldest queued descriptor and copies bytes both ways until
 * either side closes, then closes both. Connections are taken in the order
 * they arrive, so one client connecting at a time (one curl handle) pairs
 * each connection with its own tunnel. The thread never touches the site's
 * connection: tunnels are opened by the caller. */
#ifndef HP_FWD_H
#define HP_FWD_H

#include "err.h"

#define HP_FWD_MAX 8   /* connections (and queued descriptors) at once */

struct hp_fwd;

/* Listen on 127.0.0.1 (a free port) and start the thread; NULL with err. */
struct hp_fwd *hp_fwd_new(struct hp_err *err);
/* The listener's port. */
int hp_fwd_port(const struct hp_fwd *F);
/* Queue fd (taken over) for the next accepted connection; -1 when
 * HP_FWD_MAX are queued already (fd is then still the caller's). */
int hp_fwd_push(struct hp_fwd *F, int fd);
/* Stop the thread, close every descriptor (NULL is fine). */
void hp_fwd_free(struct hp_fwd *F);

#endif
