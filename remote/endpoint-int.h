/* endpoint-int.h - what the endpoint server's files share: the task and
 * worker model (endpoint-pool.c) and the HTTP side (endpoint-http.c,
 * endpoint-serve.c). One thread, one libevent loop. */
#ifndef HP_ENDPOINT_INT_H
#define HP_ENDPOINT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include "endpoint.h"

/* Error codes of the API, in the order of ep_codes[] (endpoint-http.c). */
enum ep_code {
    EPC_OK, EPC_BAD_REQUEST, EPC_UNAUTHORIZED, EPC_NOT_FOUND, EPC_METHOD, EPC_TOO_LARGE,
    EPC_QUEUE_FULL, EPC_FAILED, EPC_CRASHED, EPC_TIMEOUT, EPC_CANCELED, EPC_UNAVAILABLE, EPC__N
};
const char *ep_code_name(int code);
int ep_code_status(int code);

enum { T_QUEUED, T_RUNNING, T_DONE };
enum { K_SYNC, K_SUBMIT, K_BATCH };
enum { P_CALL, P_TASK, P_BATCH };

struct ep_server;
struct ep_fn;
struct ep_batch;

/* A request waiting for something: a synchronous call, or GET ?wait=. */
struct ep_pending {
    struct ep_server *s;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    int kind;
    struct ep_task *task;
    struct ep_batch *batch;
    struct event *timer;
    struct event *watch;              /* the client's socket, for EOF */
    struct ep_pending *prev, *next;   /* in the target's waiters */
};

struct ep_task {
    uint64_t id;
    struct ep_task *hnext;            /* id hash chain */
    struct ep_task *prev, *next;      /* function queue, or kept list */
    struct ep_fn *fn;
    struct ep_batch *batch;           /* owner, for batch tasks */
    struct ep_pending *pending;       /* K_SYNC: the waiting request (NULL: client gone) */
    struct ep_pending *waiters;       /* GET /v1/tasks/ID?wait= */
    const unsigned char *in;
    size_t inlen;
    unsigned char *inown;             /* owned input (not batch) */
    unsigned char *out;               /* output, or the error message */
    size_t outlen;
    int state, code, kind;
    double queued_at, finished_at;
};

struct ep_batch {
    uint64_t id;
    struct ep_batch *hnext;
    struct ep_batch *prev, *next;     /* kept list */
    struct ep_fn *fn;
    struct ep_task *tasks;            /* n of them, ids id+1 .. id+n */
    size_t n, done;
    unsigned char *body;              /* the frames the inputs point into */
    size_t bodylen;
    struct ep_pending *waiters;
    double finished_at;
};

enum { W_NONE, W_STARTING, W_IDLE, W_BUSY, W_INITFAILED };

struct ep_worker {
    struct ep_server *s;
    struct ep_fn *fn;
    int index;
    pid_t pid;
    int state;
    struct bufferevent *bev;
    struct ep_task **inflight;        /* calls sent, answered in order */
    size_t head, nin, alloc;
    double progress;                  /* last dispatch or result */
    double sent_at;                   /* when the chunk went out */
    struct event *timer;
};

#define EP_NBUCKETS 14
extern const double ep_buckets[EP_NBUCKETS];

struct ep_fn {
    struct ep_server *s;
    const struct hp_ep_function *cfg;
    struct ep_task *qhead, *qtail;
    size_t queued;
    struct ep_worker *w;
    int nw;
    char *init_error;                 /* the last worker start failure */
    double retry_at;
    double cost;                      /* seconds per call, moving average */
    uint64_t calls[EPC__N];
    uint64_t hist[EP_NBUCKETS + 1];
    double seconds_sum;
};

struct ep_server {
    const struct hp_ep_config *cfg;
    const struct hp_ep_serve_opts *opts;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    SSL_CTX *ssl;
    unsigned char token_digest[32];
    struct ep_fn *fns;
    size_t nfn;
    struct ep_task **th;              /* task hash */
    size_t thn, tcount;
    struct ep_batch **bh;             /* batch hash */
    size_t bhn, bcount;
    uint64_t next_id;
    size_t queued_total;
    uint64_t restarts;
    struct ep_task *kt_head, *kt_tail;      /* kept finished submitted tasks, oldest first */
    struct ep_batch *kb_head, *kb_tail;     /* kept finished batches */
    size_t kept_bytes;
    double started, started_wall;
    bool stopping;
    double stop_deadline;
    FILE *log;
    struct event *sig_term, *sig_int, *sweep, *stop_timer;
    char *state_dir, *json_path, *token_path;
    int lock_fd;
    bool wrote_files, bound_unix;
    const char *self_exe;
};

void ep_log(struct ep_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* endpoint-pool.c */
int ep_pool_start(struct ep_server *s, struct hp_err *err);
void ep_pool_stop(struct ep_server *s);         /* fini all workers, wait for them */
int ep_busy_workers(const struct ep_server *s);
int ep_total_workers(const struct ep_server *s);
bool ep_pool_idle(const struct ep_server *s);   /* nothing running */
struct ep_fn *ep_fn_find(struct ep_server *s, const char *name);
/* New task with its input copied; queued and dispatched. Returns NULL with
 * *code set (queue full, function unavailable) and *msg (static or owned by
 * fn) when it cannot be queued. */
struct ep_task *ep_task_submit(struct ep_fn *fn, int kind, const void *in, size_t inlen,
                               int *code, const char **msg);
/* A batch of n inputs (frames in body, taken over). */
struct ep_batch *ep_batch_submit(struct ep_fn *fn, unsigned char *body, size_t bodylen,
                                 const size_t *offs, const size_t *lens, size_t n, int *code,
                                 const char **msg);
struct ep_task *ep_task_find(struct ep_server *s, uint64_t id);
struct ep_batch *ep_batch_find(struct ep_server *s, uint64_t id);
/* Cancel a queued task: 1 if canceled, 0 if not queued. */
int ep_task_cancel(struct ep_task *t);
/* Cancel a batch's queued tasks; how many. b may be freed on return. */
int ep_batch_cancel(struct ep_batch *b);
/* Drop a finished submitted task or a fetched batch. */
void ep_task_forget(struct ep_task *t);
void ep_batch_forget(struct ep_batch *b);
/* A synchronous call's client went away. */
void ep_task_orphan(struct ep_task *t);
/* Fail every queued task (shutting down). */
void ep_pool_fail_queued(struct ep_server *s, int code, const char *msg);
/* Drop kept results older than max_age seconds. */
void ep_pool_sweep(struct ep_server *s, double max_age);
void ep_pool_free(struct ep_server *s);

/* endpoint-http.c: called by the pool when a task or batch is finished. */
void ep_http_task_done(struct ep_task *t);
void ep_http_batch_done(struct ep_batch *b);
int ep_http_start(struct ep_server *s, struct hp_err *err);
void ep_http_stop_accepting(struct ep_server *s);
void ep_http_free(struct ep_server *s);
/* The id as the API shows it. */
void ep_id_format(uint64_t id, char out[24]);

#endif
