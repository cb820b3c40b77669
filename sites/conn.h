/* conn.h - a connection to a site: run commands, move files, open tunnels.
 *
 * One interface, two transports: local (this machine; fork/exec and file
 * copies) and SSH (libssh2: exec channels, SFTP, direct-tcpip), so that the
 * Slurm adapter runs the same code against a local Slurm and a remote one.
 *
 * Commands are argv vectors. A transport that must hand a command line to a
 * remote shell (SSH exec) quotes every word with hp_sq_quote(); nothing else
 * builds command lines.
 *
 * Output of remote commands is read into capped buffers (default cap 64 MiB):
 * past the cap the output is dropped and the buffer marked truncated.
 *
 * Both transports report a program that does not exist as exit status 127
 * (with a message on errout), as a shell would. A timeout ends the command
 * (local: SIGTERM, then SIGKILL to its process group; SSH: the channel is
 * closed) and fails with HP_ESITE. Remote paths given to put/get are taken
 * literally, relative to the login directory; they are not expanded by a
 * shell (resolve "$SCRATCH/x" with exec first). */
#ifndef HP_CONN_H
#define HP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "err.h"

struct hp_site;
struct hp_conn;

struct hp_conn_ops {
    const char *name;   /* "local", "ssh", "master" (through a control socket) */
    /* Run argv; stdin_data may be NULL. *status is the exit status (0..255),
     * or 128+signal. out/err may be NULL to discard. timeout in seconds
     * (0 = none). Returns -1 only when the command could not be run or the
     * transport failed (err says which; code HP_ESYS or HP_ESITE). */
    int (*exec)(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                double timeout, struct hp_err *err);
    /* Copy a local file to the site (HP_XFER_* flags): written to a temporary
     * name then renamed; parent directories created; size and checksum
     * verified; a partial earlier transfer resumed. */
    int (*put)(struct hp_conn *c, const char *local, const char *remote, int flags,
               struct hp_err *err);
    int (*get)(struct hp_conn *c, const char *remote, const char *local, int flags,
               struct hp_err *err);
    /* Open a byte stream to host:port as seen from the site (direct-tcpip);
     * returns a local file descriptor connected to it, or -1. Optional. */
    int (*tunnel)(struct hp_conn *c, const char *host, int port, struct hp_err *err);
    void (*close)(struct hp_conn *c);
    /* As exec, with HP_EXEC_* flags. Optional: hp_conn_exec_ex falls back
     * to exec (flags ignored). */
    int (*exec_ex)(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                   size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                   double timeout, int flags, struct hp_err *err);
};

enum {
    /* The command only reads (squeue, sacct, cat): after a dropped SSH
     * connection it is run again on a new one. Without this flag a command
     * is re-run only when it provably never started. */
    HP_EXEC_IDEMPOTENT = 1,
};

enum {
    HP_XFER_RECURSIVE = 1,   /* directories: copy the tree */
    HP_XFER_MODE = 2,        /* keep permission bits */
};

struct hp_conn {
    const struct hp_conn_ops *ops;
    char *site;              /* site name, for messages */
    void *impl;
};

/* The connection for site: local when the site has no login host, else SSH
 * (through the site's control master when one is running, see
 * `hpcport connect`; HPCPORT_NO_MASTER=1 in the environment skips it). */
struct hp_conn *hp_conn_open(const struct hp_site *site, struct hp_err *err);
struct hp_conn *hp_conn_local(void);
void hp_conn_free(struct hp_conn *c);

/* Wrappers that check optional hooks. */
int hp_conn_exec(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                 size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                 double timeout, struct hp_err *err);
int hp_conn_put(struct hp_conn *c, const char *local, const char *remote, int flags,
                struct hp_err *err);
int hp_conn_get(struct hp_conn *c, const char *remote, const char *local, int flags,
                struct hp_err *err);
int hp_conn_exec_ex(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                    size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                    double timeout, int flags, struct hp_err *err);
/* A local file descriptor connected to host:port as seen from the site, or
 * -1 (HP_ESITE when the transport has no tunnels). The caller closes it. */
int hp_conn_tunnel(struct hp_conn *c, const char *host, int port, struct hp_err *err);

/* For transports: append to an output buffer, honouring b->cap (or the
 * default 64 MiB cap when b->cap is 0) and setting b->truncated. */
#define HP_CONN_OUTPUT_CAP ((size_t)64 << 20)
void hp_conn_output_add(struct hp_buf *b, const void *data, size_t len);

#endif
