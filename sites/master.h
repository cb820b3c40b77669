/* master.h - one authenticated SSH connection per site, kept by a
 * background process and shared by later hpcport commands (like OpenSSH's
 * ControlMaster), so that a one-time password is typed once.
 *
 * The master listens on a unix socket in $XDG_RUNTIME_DIR/hpcport/ (else
 * ~/.cache/hpcport/; the directory must be 0700 and ours, the socket is
 * 0600) named "SITE-KEY.sock", KEY being hp_ssh_target_key() so that a
 * profile layer that changes the login host reaches another master. Every
 * peer's uid is checked with SO_PEERCRED on both sides.
 *
 * Protocol: frames of a 4-byte big-endian header length, a JSON object (the
 * header), then the number of raw bytes the header's "len" says. Strings
 * that may hold any byte (argv words, paths, messages) travel in the raw
 * part, NUL-terminated, never in JSON. A client sends one request at a time
 * on its connection; each gets one reply:
 *   {"op":"hello","v":1}                  -> {"ok":true,"v":1,"pid":N,"state":"up"|"down"}
 *   {"op":"exec","argc":N,"stdin":M,"timeout":T,"flags":F,"want_out":b,"want_err":b,
 *    "cap_out":C,"cap_err":C}   raw: argv words, then M bytes of input
 *       -> {"ok":true,"status":S,"out":A,"err":B,"out_trunc":b,"err_trunc":b}  raw: A + B bytes
 *   {"op":"put"|"get","flags":F}  raw: local path (absolute), remote path
 *       -> {"ok":true}   (the master reads and writes the local files itself)
 *   {"op":"tunnel","port":P}      raw: host
 *       -> {"ok":true} with a connected stream socket passed as SCM_RIGHTS
 *   {"op":"status"}   -> {"ok":true,"pid","state","started","requests","clients",
 *                         "tunnels","reconnects","idle","idle_timeout"}
 *                        raw: site, target, last error, forwards (";"-joined)
 *   {"op":"stop"}     -> {"ok":true}, then the master exits
 * A failure is {"ok":false,"code":C} with the message as raw bytes.
 *
 * The master exits after idle_timeout seconds without a client or tunnel,
 * when asked to stop, or when its socket is removed. When its connection
 * drops it reconnects without prompting (otp_command still runs); if that
 * needs an answer it cannot get, requests fail with a message that says to
 * run `hpcport connect SITE` again. */
#ifndef HP_MASTER_H
#define HP_MASTER_H

#include <stddef.h>
#include "err.h"

struct hp_site;
struct hp_conn;

#define HP_MASTER_IDLE_DEFAULT 1800.0

struct hp_master_opts {
    double idle_timeout;            /* seconds; 0 = never; < 0 = the default
                                       (30 min, or never with forwards) */
    const char *const *forwards;    /* "LPORT:HOST:PORT", NULL-terminated, or NULL */
};

struct hp_master_info {
    char *site, *socket, *target;
    char *state;                    /* "up", "down" */
    char *last_error;               /* "" when none */
    char *forwards;                 /* ";"-joined, "" when none */
    long pid;
    double started;                 /* epoch seconds */
    double idle, idle_timeout;      /* seconds */
    unsigned requests, reconnects;
    int clients, tunnels;
};

/* The directory of control sockets, created (0700) when create is set;
 * NULL with err when it is unsafe (not ours, or open to others). */
char *hp_master_dir(int create, struct hp_err *err);
/* The control socket of site's master (new string). */
char *hp_master_socket_path(const struct hp_site *site, int create, struct hp_err *err);

/* Connect (prompting through auth.h as needed) and leave a master serving
 * in the background. Returns 0 with *pid, 1 when a working master is
 * already running (its pid in *pid), -1 with err. A master found down is
 * replaced. */
int hp_master_start(const struct hp_site *site, const struct hp_master_opts *o, long *pid,
                    struct hp_err *err);
/* Ask site's master to stop: 0 stopped, 1 none was running. */
int hp_master_stop(const struct hp_site *site, struct hp_err *err);
/* Ask the master on socket path: 0 answered, 1 none runs there. */
int hp_master_query(const char *path, struct hp_master_info *info, struct hp_err *err);
/* All running masters of this user. */
int hp_master_list(struct hp_master_info **out, size_t *n, struct hp_err *err);
void hp_master_info_release(struct hp_master_info *i);

/* A connection through site's master; NULL with *none = 1 (err untouched)
 * when no master runs, NULL with err when one runs but cannot be used. */
struct hp_conn *hp_master_conn(const struct hp_site *site, int *none, struct hp_err *err);

#endif
