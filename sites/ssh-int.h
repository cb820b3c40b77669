/* ssh-int.h - internals shared by ssh.c (sessions, hops, exec, tunnels) and
 * ssh-sftp.c (file transfer). Not for other modules. */
#ifndef HP_SSH_INT_H
#define HP_SSH_INT_H

#include <pthread.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include "ssh.h"
#include "sshauth.h"

/* One hop's settings after the ssh configuration and the profile are merged. */
struct ssh_hopcfg {
    char *name;                 /* as written (alias or host) */
    char *host;                 /* to connect to and to check the key of */
    int port;
    char *user;
    char **ids;                 /* identity files */
    int ids_only;
    char **known_files;         /* the user's known_hosts files for this hop */
    int accept_new;             /* StrictHostKeyChecking accept-new/no */
    char *role;                 /* "jump host 1 (name)", "login host (name)" */
};

struct ssh_params {
    char *site;
    struct ssh_hopcfg *hops;    /* jump hosts, then the login host */
    size_t nhops;
    char **methods;             /* login.auth for the login host */
    char *otp_command;
    int alive_interval, alive_count;
    int connect_timeout;
    char *proxy;
    char *target;               /* description */
};

/* One session over one hop. For hops after the first, the session's socket
 * is one end of a socketpair whose other end a pump thread bridges to a
 * direct-tcpip channel on the previous hop's session (owned by that thread
 * from then on). */
struct ssh_hop {
    LIBSSH2_SESSION *sess;
    struct hp_ssh_sessctx ctx;
    int sock;
    /* pump for this hop (i > 0): channel on hops[i-1].sess */
    LIBSSH2_CHANNEL *chan;
    int pairfd;
    int stopfd[2];
    pthread_t pump;
    int pumping;
};

struct ssh_sftp {
    LIBSSH2_SFTP *sftp;
    struct ssh_sftp *next;
};

/* A live connection: all hops. Reference-counted so that a reconnect does
 * not pull it from under an operation in another thread. */
struct ssh_link {
    int refs;
    int dead;
    struct ssh_hop *hops;
    size_t nhops;
    LIBSSH2_SESSION *sess;      /* the login host's session */
    int sock;
    struct ssh_sftp *sftp_pool; /* idle SFTP subsystems */
    double last_rx;
};

struct hp_ssh {
    struct ssh_params *p;
    struct hp_ssh_opts opts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int polling;                /* a thread is polling the socket */
    int want_out;               /* a waiter needs the socket writable */
    unsigned gen;
    struct ssh_link *link;      /* NULL while down */
    unsigned reconnects;
    int tunnels;                /* live tunnel threads */
    int closing;
    char *down_reason;
};

/* Under s->mu. Current link with a reference, connecting again when it is
 * dead or missing; NULL with err. */
struct ssh_link *ssh_acquire(struct hp_ssh *s, struct hp_err *err);
void ssh_release(struct hp_ssh *s, struct ssh_link *l);
/* Under s->mu: wait until the link's socket is ready for what libssh2
 * wants (or another thread made progress). -1 with err on timeout (deadline
 * from hp_now(), 0 = none) or when the link died. */
int ssh_wait(struct hp_ssh *s, struct ssh_link *l, double deadline, struct hp_err *err);
/* Record a libssh2 failure: marks the link dead when it is a transport
 * error. Returns -1 after filling err with what (prefix) and libssh2's message. */
int ssh_fail(struct hp_ssh *s, struct ssh_link *l, struct hp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 1 if rc is a libssh2 code meaning the connection is gone. */
int ssh_transport_error(int rc);
/* Under s->mu: mark l dead and drop it as current (the next ssh_acquire
 * reconnects). */
void ssh_kill_link(struct hp_ssh *s, struct ssh_link *l, const char *why);

/* exec with the lock held (ssh-sftp.c runs sha256sum and mv through it). */
int ssh_exec_locked(struct hp_ssh *s, struct ssh_link *l, const char *const *argv, const void *in,
                    size_t inlen, struct hp_buf *out, struct hp_buf *errout, int *status,
                    double timeout, int *started, struct hp_err *err);

/* ssh-sftp.c */
int ssh_sftp_put(struct hp_ssh *s, const char *local, const char *remote, int flags,
                 struct hp_err *err);
int ssh_sftp_get(struct hp_ssh *s, const char *remote, const char *local, int flags,
                 struct hp_err *err);
void ssh_sftp_pool_free(struct hp_ssh *s, struct ssh_link *l);

#define SSH_OP_TIMEOUT 120.0    /* seconds a single protocol step may take */

#endif
