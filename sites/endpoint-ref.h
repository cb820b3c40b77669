/* endpoint-ref.h - a site's function endpoint (`hpcport endpoint serve`, see
 * remote/) seen from this machine: started and stopped over the site's
 * connection, its token kept here, its HTTP API reached through tunnels of
 * that connection with the client of remote/hpcport-client.h.
 *
 * On the site, an endpoint NAME lives in DIR = <scratch or home>/hpcport/
 * endpoints/NAME: the uploaded configuration and the files it names
 * (libraries, TLS files) at the same relative paths, and the server's state
 * directory DIR/state (token, endpoint.json, endpoint.log). It listens on
 * the login node's loopback (127.0.0.1, a free port): libssh2 1.10 has no
 * direct-streamlocal channel, so a unix socket could not be reached.
 *
 * On this machine, $XDG_STATE_HOME/hpcport/endpoints/@SITE/NAME/ (0700;
 * the '@' keeps these apart from the state directories of endpoints served
 * on this machine, $XDG_STATE_HOME/hpcport/endpoints/NAME/, NAME never
 * starting with '@')
 * holds `token` (0600; never printed or logged) and `endpoint.json`, the
 * record of the start: {"site","name","dir","state_dir","config","hpcport",
 * "started","endpoint": the server's endpoint.json}.
 *
 * Functions return 0 / -1 with err unless their comment says otherwise. */
#ifndef HP_ENDPOINT_REF_H
#define HP_ENDPOINT_REF_H

#include <stdint.h>
#include <jansson.h>
#include "err.h"

struct hp_conn;
struct hp_site;
struct hp_client;
struct hp_client_error;
struct hp_fwd;

struct hp_epref {
    char *site, *name;
    char *dir, *state_dir;       /* on the site, absolute */
    char *host;                  /* where it listens, as seen from the login node */
    int port;
    long pid;
    char *job_id;                /* the batch job serving it, or NULL (login node) */
    char *tls_pin;               /* its TLS key's "sha256//..." pin, or NULL (no TLS) */
    char *local_dir;             /* this machine's record directory */
    char *token_path;            /* this machine's token file */
    json_t *record;              /* the record (owned) */
    struct hp_conn *conn;        /* borrowed, for tunnels (hp_epref_client) */
    struct hp_fwd *fwd;          /* the local forward curl connects to (owned) */
};

void hp_epref_release(struct hp_epref *ep);

/* $XDG_STATE_HOME/hpcport/endpoints/@SITE (new string). */
char *hp_epref_site_dir(const char *site);

/* Start an endpoint from the configuration file config on site over conn:
 * upload, `HPCPORT endpoint serve --daemon` on the login node (or, with
 * o->batch, a batch job through the site's adapter that serves on the
 * compute node's address with the configuration's TLS certificate, pinned
 * by its public key here), fetch endpoint.json and the token, and keep
 * them here. ep is filled. HP_EINPUT for a configuration that does not load or
 * names files that are missing; HP_ESITE when the site cannot start it (the
 * server's own message). */
struct hp_epref_start_opts {
    const char *name;            /* NULL: the configuration's name */
    int batch;                   /* as a batch job through the site's adapter */
    /* batch only: */
    int64_t walltime;            /* seconds; 0: the site's default, else 1 h */
    const char *partition;       /* NULL: the site's default */
    int cores, gpus;             /* on the node; 0: 1 core, no GPU */
    double wait;                 /* seconds to wait for it to serve; 0: 300 */
    const char *bind;            /* address to serve on; NULL: the node's first
                                    address (hostname -I) */
};

int hp_epref_start(struct hp_conn *conn, const struct hp_site *site, const char *config,
                const struct hp_epref_start_opts *o, struct hp_epref *ep, struct hp_err *err);

/* The record of site's endpoint name kept here; with name NULL, the only one
 * kept for site (several: HP_EUSAGE listing them). HP_ENOTFOUND when none
 * was started from here. */
int hp_epref_load(const char *site, const char *name, struct hp_epref *ep, struct hp_err *err);

/* Ask the site whether ep still runs: 0 yes (its endpoint.json names the
 * same process), -1 with err HP_EUNAVAIL saying what is wrong (stopped,
 * restarted since the token was fetched) and what to do. *remote (may be
 * NULL) receives the site's endpoint.json when there is one. */
int hp_epref_check(struct hp_conn *conn, const struct hp_epref *ep, json_t **remote,
                struct hp_err *err);

/* Stop it (SIGTERM; a batch job is canceled), wait for its endpoint.json to
 * go (up to wait_s seconds) and forget it here. 1 when it was not running (forgotten
 * all the same). */
int hp_epref_stop(struct hp_conn *conn, const struct hp_site *site, const struct hp_epref *ep,
               double wait_s, struct hp_err *err);

/* A client of ep's HTTP API whose connections are tunnels over conn, joined
 * to curl's connections by a local forward (fwd.h) (conn and ep must outlive
 * it; release the client before ep); timeout as hp_client_set_timeout. */
struct hp_client *hp_epref_client(struct hp_conn *conn, struct hp_epref *ep, double timeout,
                               struct hp_err *err);

/* A client error as an hp_err, with advice: 401 says the token is stale
 * (run `hpcport endpoint start SITE`), a transport error that the endpoint
 * may be gone (`hpcport endpoint status SITE`). Codes: HP_EAUTH,
 * HP_EUNAVAIL (transport, unavailable, queue full), HP_ETIMEOUT,
 * HP_ECRASHED, HP_EFAIL (function failed, canceled), HP_ENOTFOUND,
 * HP_EINPUT (bad request, payload too large), HP_ESYS. Returns -1. */
int hp_epref_client_err(const struct hp_epref *ep, const struct hp_client_error *ce,
                     struct hp_err *err);

/* Write data atomically to path with mode (temporary file, fsync, rename). */
int hp_epref_write_file(const char *path, const void *data, size_t len, unsigned mode,
                     struct hp_err *err);

#endif
