/* hpcport-client.h - a small C client for `hpcport endpoint` (libcurl).
 *
 * Link with `pkg-config --cflags --libs hpcport-client`. One client holds one
 * curl handle, so consecutive requests reuse one keep-alive HTTP/1.1
 * connection. A client is not thread safe: use one per thread.
 *
 * Where the endpoint is:
 *   - "http://127.0.0.1:PORT" (or https://...): a URL, e.g. the one printed
 *     by `hpcport tunnel SITE`;
 *   - "/path/to/socket" or "unix:/path/to/socket": a unix socket, e.g.
 *     `hpcport tunnel SITE --unix PATH` or an endpoint serving on one.
 * The token is the endpoint's bearer token (64 hex characters; the contents
 * of the token file that `hpcport endpoint start` keeps, see
 * hp_client_read_token()). It is sent as "Authorization: Bearer TOKEN" and
 * never appears in error messages.
 *
 * Every function that can fail returns 0 on success and -1 on failure, with
 * *err filled (err may be NULL). Ownership: what a function returns through a
 * pointer belongs to the caller and is released with free() (buffers) or the
 * matching *_free function. */
#ifndef HPCPORT_CLIENT_H
#define HPCPORT_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HP_CLIENT_API 1

/* Error classes: the endpoint's error codes (schemas/endpoint.openapi.yaml)
 * and the client's own. Never renumbered. */
enum hp_client_code {
    HP_CLIENT_OK = 0,
    HP_CLIENT_EINVAL,        /* bad argument to a client function */
    HP_CLIENT_ETRANSPORT,    /* cannot connect, connection lost, no answer */
    HP_CLIENT_EPROTOCOL,     /* an answer the client does not understand */
    HP_CLIENT_EBADREQUEST,   /* 400 bad_request */
    HP_CLIENT_EUNAUTHORIZED, /* 401 unauthorized: missing or stale token */
    HP_CLIENT_ENOTFOUND,     /* 404 not_found: no such function, task or batch */
    HP_CLIENT_ECANCELED,     /* 409 canceled */
    HP_CLIENT_ETOOLARGE,     /* 413 payload_too_large */
    HP_CLIENT_EQUEUEFULL,    /* 429 queue_full */
    HP_CLIENT_EFAILED,       /* 500 function_failed: the function said no */
    HP_CLIENT_ECRASHED,      /* 502 crashed: the worker died (signal) */
    HP_CLIENT_EUNAVAILABLE,  /* 503 unavailable: shutting down */
    HP_CLIENT_ETIMEOUT,      /* 504 timeout, or the client's own timeout */
};

struct hp_client_error {
    int code;               /* enum hp_client_code */
    long http_status;       /* 0 when there was no HTTP answer */
    char kind[32];          /* the endpoint's code ("crashed"), or "" */
    char message[1024];     /* what happened; the endpoint's message when it sent one */
};

struct hp_client;

/* A client for the endpoint at where (see above) with token (copied, may
 * be NULL for none). Connects lazily, at the first request. NULL with err
 * for a bad address or when curl cannot be set up. */
struct hp_client *hp_client_open(const char *where, const char *token,
                                 struct hp_client_error *err);
/* Read a token file (the first line, 64 hex characters) into a new string
 * (free with hp_client_token_free); NULL with err. */
char *hp_client_read_token(const char *path, struct hp_client_error *err);
/* Wipe and free a token string. */
void hp_client_token_free(char *token);
/* Seconds a request may take in all (0 = no limit; the default). */
void hp_client_set_timeout(struct hp_client *c, double seconds);
/* Call fn before each new connection is made (hpcport uses this to open a
 * tunnel that a local forward then joins to the connection). fn returns 0,
 * or -1 with a message (NUL-terminated, errlen bytes) that becomes the
 * request's error. */
typedef int (*hp_client_connect_fn)(void *ud, char *errmsg, size_t errlen);
void hp_client_set_connect_hook(struct hp_client *c, hp_client_connect_fn fn, void *ud);
void hp_client_close(struct hp_client *c);

/* Call function fn with input in[0..inlen) and wait for its output: *out
 * (NUL-terminated beyond *outlen, for convenience) and *outlen. The call's
 * failure (the function failed, crashed, timed out) is an error with its
 * code and the endpoint's message. */
int hp_client_call(struct hp_client *c, const char *fn, const void *in, size_t inlen,
                   void **out, size_t *outlen, struct hp_client_error *err);

/* Submit n inputs to fn as one batch; *batch_id: the batch's id (new string). */
int hp_client_batch_submit(struct hp_client *c, const char *fn, const void *const *ins,
                           const size_t *inlens, size_t n, char **batch_id,
                           struct hp_client_error *err);

/* The outcome of one input of a batch. */
struct hp_client_result {
    int ok;                 /* 1: data is the output; 0: data is the error message */
    void *data;             /* NUL-terminated beyond len */
    size_t len;
};
/* Wait up to wait_s seconds (0: just look) for batch_id. Returns 0 when all
 * are done, with *results[0..*n) in input order (free with
 * hp_client_results_free); 1 when not all are done yet (*done of *n);
 * -1 with err. */
int hp_client_batch_wait(struct hp_client *c, const char *batch_id, double wait_s,
                         struct hp_client_result **results, size_t *n, size_t *done,
                         struct hp_client_error *err);
/* Cancel the queued inputs of a batch; *canceled (may be NULL): how many. */
int hp_client_batch_cancel(struct hp_client *c, const char *batch_id, size_t *canceled,
                           struct hp_client_error *err);
void hp_client_results_free(struct hp_client_result *r, size_t n);

/* GET /v1/PATH (path without the /v1/, e.g. "health", "functions",
 * "metrics"): the answer's body (new, NUL-terminated) and its length. */
int hp_client_get(struct hp_client *c, const char *path, char **body, size_t *len,
                  struct hp_client_error *err);

/* The name of a code ("timeout"). */
const char *hp_client_code_name(int code);

#ifdef __cplusplus
}
#endif

#endif
