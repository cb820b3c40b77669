/* endpoint.h - `hpcport endpoint serve`: a function endpoint on a site.
 *
 * The configuration (schemas/endpoint.schema.json, hpcport-endpoint(5)) names
 * functions: shared objects implementing hpcport-function.h, or commands.
 * hp_ep_serve() runs the HTTP API (schemas/endpoint.openapi.yaml) on libevent
 * until SIGTERM/SIGINT; each function's calls run in worker processes, which
 * are the hpcport binary itself re-executed as `hpcport endpoint-worker`
 * (hp_ep_worker_main): they inherit neither the listening socket nor the
 * token. */
#ifndef HP_ENDPOINT_H
#define HP_ENDPOINT_H

#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include "err.h"

struct hp_ep_function {
    char *name;
    char *library;      /* absolute path, or NULL for a command */
    char *symbol;       /* default hp_function_NAME */
    char *config;       /* init string or NULL */
    char **command;     /* NULL-terminated argv, or NULL for a library */
    int workers;
    double timeout;     /* seconds */
};

struct hp_ep_listen {
    char *unix_path;    /* unix:PATH, or NULL */
    char *host;         /* numeric address without brackets */
    int port;
    bool loopback;
};

struct hp_ep_config {
    char *file;         /* absolute path of the configuration */
    char *name;
    struct hp_ep_listen listen;
    char *tls_cert, *tls_key;   /* absolute, or NULL */
    bool tls_always;
    char **gpus;        /* GPU ids, NULL-terminated; NULL when none (no pinning) */
    uint64_t max_payload, max_results;
    double timeout;
    uint64_t queue_depth;
    struct hp_ep_function *fn;
    size_t nfn;
};

/* Load and check a configuration (file:line:col errors, code HP_EINPUT).
 * listen_override (may be NULL) replaces the file's listen key. */
struct hp_ep_config *hp_ep_config_load(const char *path, const char *listen_override,
                                       struct hp_err *err);
void hp_ep_config_free(struct hp_ep_config *c);
/* Parse an address as --listen takes it; loopback and TLS rules are checked
 * by hp_ep_config_load. */
int hp_ep_listen_parse(const char *s, struct hp_ep_listen *out, struct hp_err *err);
void hp_ep_listen_release(struct hp_ep_listen *l);

struct hp_ep_serve_opts {
    const char *name;       /* endpoint name (default: the config's) */
    const char *state_dir;  /* default $XDG_STATE_HOME/hpcport/endpoints/NAME */
    const char *self_exe;   /* the hpcport binary to run workers with */
    FILE *log;              /* where the server logs (borrowed) */
    /* called once listening, with endpoint.json's text (borrowed); the
     * daemon reports it to the waiting parent. May be NULL. */
    void (*ready)(const char *endpoint_json, void *arg);
    void *ready_arg;
};

/* Serve until SIGTERM/SIGINT. Takes the state dir lock (a second serve of
 * the same name fails), writes the token and endpoint.json, removes
 * endpoint.json on the way out. Returns 0 after a clean stop. */
int hp_ep_serve(const struct hp_ep_config *cfg, const struct hp_ep_serve_opts *opts,
                struct hp_err *err);

/* The default state directory of endpoint NAME (new string). */
char *hp_ep_state_dir(const char *name);

/* `hpcport endpoint-worker ...` (hidden): the worker process. Returns the
 * exit status. */
int hp_ep_worker_main(int argc, char **argv);

/* The routes the server answers, "METHOD /v1/path/{param}", NULL-terminated
 * (the OpenAPI test compares them with schemas/endpoint.openapi.yaml). */
extern const char *const hp_ep_routes[];

#endif
