/* ssh.h - the SSH transport (libssh2) behind hp_conn, and what the
 * connection master and `hpcport site trust` need beyond struct hp_conn_ops.
 *
 * Where a site is reached: login.host (which may be a Host alias of the ssh
 * configuration, see sshconfig.h), login.user/port over the configuration's
 * User/Port, login.jump over the configuration's ProxyJump (each jump host
 * is itself looked up in the configuration), and the first hop reached
 * directly or through the proxy in $HPCPORT_PROXY or login.proxy
 * ("http://[user:pass@]host:port" for HTTP CONNECT, "socks5://host:port").
 *
 * Each hop's host key is checked against its known_hosts files
 * (UserKnownHostsFile, else ~/.ssh/known_hosts and known_hosts2), then
 * /etc/ssh/ssh_known_hosts and hpcport's own file (knownhosts.h). An unknown
 * key stops the connection (HP_ESITE, with the key's fingerprint and the
 * `hpcport site trust NAME` command) unless the hop's StrictHostKeyChecking
 * is accept-new or no, which both add it to hpcport's file (no is treated as
 * accept-new). A changed key always stops it.
 *
 * An hp_ssh may be used from several threads: every libssh2 call runs under
 * one mutex, released while waiting for the network. A dropped connection
 * (socket error, or ServerAliveInterval * ServerAliveCountMax seconds with
 * nothing received; defaults 30 s and 3) is re-established once per
 * operation, authenticating again without prompting when the process cannot
 * prompt (the master). */
#ifndef HP_SSH_H
#define HP_SSH_H

#include <stddef.h>
#include "buf.h"
#include "err.h"

struct hp_site;
struct hp_ssh;
struct hp_conn;

enum {
    HP_SSH_TRUST_STRICT = 0,   /* unknown key: error (unless the config accepts new keys) */
    HP_SSH_TRUST_ASK,          /* unknown key: ask (hp_auth_confirm), then add */
    HP_SSH_TRUST_YES,          /* unknown key: add */
};

/* A host key met while connecting (for `hpcport site trust`). */
struct hp_ssh_hostkey {
    const char *role;          /* "jump host 1", "login host" */
    const char *host;
    int port;
    const char *type;          /* "ssh-ed25519" */
    const char *fingerprint;   /* "SHA256:..." */
    const char *status;        /* "known", "added", "refused" */
    const char *where;         /* "file:line" for known and added keys, else NULL */
};

struct hp_ssh_opts {
    int trust;                 /* HP_SSH_TRUST_* */
    int keys_only;             /* stop after the last hop's host key check */
    void (*on_hostkey)(void *ud, const struct hp_ssh_hostkey *k);
    void *ud;
};

/* Connect and authenticate (o may be NULL). */
struct hp_ssh *hp_ssh_open(const struct hp_site *site, const struct hp_ssh_opts *o,
                           struct hp_err *err);
void hp_ssh_close(struct hp_ssh *s);

/* flags for hp_ssh_exec */
enum { HP_SSH_EXEC_IDEMPOTENT = 1 };
/* As hp_conn_ops.exec. Without HP_SSH_EXEC_IDEMPOTENT a command is retried
 * after a reconnect only when it provably did not start. A timeout closes
 * the channel (the remote command sees its pipes close) and fails with
 * HP_ESITE. */
int hp_ssh_exec(struct hp_ssh *s, const char *const *argv, const void *in, size_t inlen,
                struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                int flags, struct hp_err *err);
int hp_ssh_put(struct hp_ssh *s, const char *local, const char *remote, int flags,
               struct hp_err *err);
int hp_ssh_get(struct hp_ssh *s, const char *remote, const char *local, int flags,
               struct hp_err *err);
/* A local socket connected to host:port as seen from the login host. */
int hp_ssh_tunnel(struct hp_ssh *s, const char *host, int port, struct hp_err *err);
/* Bridge fd (taken over, closed when the stream ends) to host:port. */
int hp_ssh_tunnel_fd(struct hp_ssh *s, const char *host, int port, int fd, struct hp_err *err);

/* For the master's idle loop: send a keepalive when due and check the
 * connection; a dead one is re-established (without prompting when prompts
 * are off). 0 when up, -1 with err when down. */
int hp_ssh_check(struct hp_ssh *s, struct hp_err *err);
/* NULL while connected (or not yet known to be down); else why the
 * connection is down (new string). */
char *hp_ssh_down_reason(struct hp_ssh *s);
/* "user@host:port via user@bastion:port" (borrowed). */
const char *hp_ssh_target(const struct hp_ssh *s);
unsigned hp_ssh_reconnects(const struct hp_ssh *s);
/* Open tunnels (streams being pumped). */
int hp_ssh_tunnels(struct hp_ssh *s);

/* The hp_conn over a fresh SSH connection (the master, or hpcport commands
 * when no master runs). */
struct hp_conn *hp_conn_ssh(const struct hp_site *site, struct hp_err *err);
/* Wrap an open hp_ssh (taken over). */
struct hp_conn *hp_conn_ssh_wrap(struct hp_ssh *s, const char *site_name);

/* A stable key of everything that decides where a site's connection goes
 * (login host, user, port, jump hosts, proxy): 16 hex digits. Masters are
 * found by it. */
void hp_ssh_target_key(const struct hp_site *site, char out[17]);

#endif
