/* endpoint-http.c - the endpoint's HTTP API on libevent's evhttp
 * (schemas/endpoint.openapi.yaml): bearer token, routes, replies, waiting
 * requests. A request that waits (a synchronous call, GET ?wait=) holds an
 * ep_pending; when its client goes away, libevent detaches the request and
 * calls our close callback, where it is freed and its call dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <jansson.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "endpoint-int.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define MAX_WAIT 300.0

/* Every route, as the OpenAPI document names it (test-endpoint-openapi.py
 * compares both ways). */
const char *const hp_ep_routes[] = {
    "GET /v1/health",
    "GET /v1/functions",
    "POST /v1/functions/{name}/call",
    "POST /v1/functions/{name}/submit",
    "POST /v1/functions/{name}/batch",
    "GET /v1/tasks/{id}",
    "DELETE /v1/tasks/{id}",
    "GET /v1/batches/{id}",
    "DELETE /v1/batches/{id}",
    "GET /v1/metrics",
    NULL,
};

static const struct { const char *name; int status; } codes[EPC__N] = {
    [EPC_OK] = { "ok", 200 },
    [EPC_BAD_REQUEST] = { "bad_request", 400 },
    [EPC_UNAUTHORIZED] = { "unauthorized", 401 },
    [EPC_NOT_FOUND] = { "not_found", 404 },
    [EPC_METHOD] = { "method_not_allowed", 405 },
    [EPC_TOO_LARGE] = { "payload_too_large", 413 },
    [EPC_QUEUE_FULL] = { "queue_full", 429 },
    [EPC_FAILED] = { "function_failed", 500 },
    [EPC_CRASHED] = { "crashed", 502 },
    [EPC_TIMEOUT] = { "timeout", 504 },
    [EPC_CANCELED] = { "canceled", 409 },
    [EPC_UNAVAILABLE] = { "unavailable", 503 },
};

const char *ep_code_name(int code) { return codes[code].name; }
int ep_code_status(int code) { return codes[code].status; }

void ep_id_format(uint64_t id, char out[24])
{
    snprintf(out, 24, "%llx", (unsigned long long)id);
}

static int id_parse(const char *s, uint64_t *id)
{
    size_t n = strspn(s, "0123456789abcdef");
    if (!n || n > 16 || s[n])
        return -1;
    *id = strtoull(s, NULL, 16);
    return 0;
}

/* ---- replies ---- */

static void reply_body(struct evhttp_request *req, int status, const char *ctype,
                       const void *data, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    if (ctype)
        evhttp_add_header(h, "Content-Type", ctype);
    if (len)
        evbuffer_add(b, data, len);
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    reply_body(req, status, "application/json", text, strlen(text));
    free(text);
}

static void reply_error_len(struct evhttp_request *req, int code, const char *msg, size_t len)
{
    json_t *j = json_pack("{s:{s:s, s:s%}}", "error", "code", codes[code].name, "message",
                          msg, len);
    if (!j)   /* not UTF-8: a function's message is bytes */
        j = json_pack("{s:{s:s, s:s}}", "error", "code", codes[code].name, "message",
                      "(the message is not valid UTF-8)");
    if (code == EPC_UNAUTHORIZED)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"hpcport endpoint\"");
    reply_json(req, codes[code].status, j);
}

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_error_len(req, code, msg, strlen(msg));
}

static void reply_task(struct evhttp_request *req, struct ep_task *t)
{
    char id[24];
    ep_id_format(t->id, id);
    if (t->state != T_DONE) {
        reply_json(req, 202, json_pack("{s:s, s:s}", "task", id, "state",
                                       t->state == T_QUEUED ? "queued" : "running"));
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Hpcport-Task", id);
    if (t->code == EPC_OK)
        reply_body(req, 200, "application/octet-stream", t->out, t->outlen);
    else
        reply_error_len(req, t->code, (const char *)t->out, t->outlen);
}

static void reply_batch(struct evhttp_request *req, struct ep_batch *b)
{
    if (b->done < b->n) {
        char id[24];
        ep_id_format(b->id, id);
        reply_json(req, 202, json_pack("{s:s, s:I, s:I}", "batch", id, "done",
                                       (json_int_t)b->done, "total", (json_int_t)b->n));
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evbuffer_new();
    for (size_t i = 0; i < b->n; i++) {
        struct ep_task *t = &b->tasks[i];
        unsigned char fh[5];
        uint32_t be = htonl((uint32_t)t->outlen);
        fh[0] = t->code == EPC_OK ? 0 : 1;
        memcpy(fh + 1, &be, 4);
        evbuffer_add(out, fh, 5);
        if (t->outlen)
            evbuffer_add(out, t->out, t->outlen);
    }
    evhttp_add_header(h, "Content-Type", "application/x-hpcport-frames");
    evhttp_send_reply(req, 200, NULL, out);
    evbuffer_free(out);
}

/* ---- waiting requests ---- */

static void pending_free(struct ep_pending *p)
{
    struct ep_pending **head = NULL;
    if (p->kind == P_TASK)
        head = &p->task->waiters;
    else if (p->kind == P_BATCH)
        head = &p->batch->waiters;
    if (head) {
        if (p->prev)
            p->prev->next = p->next;
        else
            *head = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    if (p->timer)
        event_free(p->timer);
    if (p->watch)
        event_free(p->watch);
    free(p);
}

/* Stop watching the connection before replying on it. */
static struct evhttp_request *pending_take(struct ep_pending *p)
{
    struct evhttp_request *req = p->req;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    pending_free(p);
    return req;
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct ep_pending *p = arg;
    (void)evcon;
    struct evhttp_request *req = p->req;
    if (p->kind == P_CALL && p->task)
        ep_task_orphan(p->task);
    pending_free(p);
    /* libevent detached the unanswered request from the dying connection:
     * it is ours to free */
    if (!evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct ep_pending *p = arg;
    (void)fd;
    (void)what;
    struct ep_task *t = p->task;
    struct ep_batch *b = p->batch;
    struct evhttp_request *req = pending_take(p);
    if (t)
        reply_task(req, t);
    else
        reply_batch(req, b);
}

/* evhttp does not read a connection while its request waits for a reply,
 * so it would notice a client that left only when the reply fails. Watch
 * the socket: EOF there means the client is gone (data means a pipelined
 * request, or TLS bytes: stop watching then). */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct ep_pending *p = arg;
    char c;
    (void)what;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r > 0) {
        event_del(p->watch);
        return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    /* runs on_close, which drops the call and frees p */
    evhttp_connection_free(p->evcon);
}

static struct ep_pending *pending_new(struct ep_server *s, struct evhttp_request *req, int kind)
{
    struct ep_pending *p = hp_xcalloc(1, sizeof(*p));
    p->s = s;
    p->req = req;
    p->kind = kind;
    p->evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(p->evcon, on_close, p);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(p->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        p->watch = event_new(s->base, fd, EV_READ | EV_PERSIST, on_watch, p);
        event_add(p->watch, NULL);
    }
    return p;
}

static void pending_wait(struct ep_pending *p, struct ep_pending **head, double secs)
{
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
    p->timer = evtimer_new(p->s->base, on_wait_timeout, p);
    struct timeval tv = { (time_t)secs, (suseconds_t)((secs - floor(secs)) * 1e6) };
    evtimer_add(p->timer, &tv);
}

void ep_http_task_done(struct ep_task *t)
{
    if (t->kind == K_SYNC && t->pending) {
        struct evhttp_request *req = pending_take(t->pending);
        t->pending = NULL;
        reply_task(req, t);
    }
    while (t->waiters) {
        struct evhttp_request *req = pending_take(t->waiters);
        reply_task(req, t);
    }
}

void ep_http_batch_done(struct ep_batch *b)
{
    bool fetched = false;
    while (b->waiters) {
        struct evhttp_request *req = pending_take(b->waiters);
        reply_batch(req, b);
        fetched = true;
    }
    if (fetched)
        ep_batch_forget(b);
}

/* ---- handlers ---- */

static int query_wait(struct evhttp_request *req, double *wait)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    *wait = 0;
    if (!q)
        return 0;
    struct evkeyvalq kv;
    if (evhttp_parse_query_str(q, &kv) < 0)
        return -1;
    const char *w = evhttp_find_header(&kv, "wait");
    int r = 0;
    if (w) {
        char *end;
        errno = 0;
        *wait = strtod(w, &end);
        if (errno || end == w || *end || !(*wait >= 0))
            r = -1;
        if (*wait > MAX_WAIT)
            *wait = MAX_WAIT;
    }
    evhttp_clear_headers(&kv);
    return r;
}

static void get_health(struct ep_server *s, struct evhttp_request *req)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:{s:i, s:i, s:I}, s:{s:I, s:I}}",
                          "status", s->stopping ? "stopping" : "ok", "name", s->cfg->name,
                          "version", HP_VERSION, "uptime_s", hp_now() - s->started, "workers",
                          "total", ep_total_workers(s), "busy", ep_busy_workers(s), "restarts",
                          (json_int_t)s->restarts, "queue", "depth",
                          (json_int_t)s->queued_total, "max", (json_int_t)s->cfg->queue_depth);
    json_t *fns = json_object();
    for (size_t i = 0; i < s->nfn; i++)
        if (s->fns[i].init_error)
            json_object_set_new(fns, s->fns[i].cfg->name, json_string(s->fns[i].init_error));
    if (json_object_size(fns))
        json_object_set_new(j, "errors", fns);
    else
        json_decref(fns);
    reply_json(req, 200, j);
}

static void get_functions(struct ep_server *s, struct evhttp_request *req)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->nfn; i++) {
        const struct hp_ep_function *f = s->fns[i].cfg;
        json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:f, s:I}", "name", f->name, "kind",
                                           f->library ? "library" : "command", "workers",
                                           f->workers, "timeout_s", f->timeout, "max_payload",
                                           (json_int_t)s->cfg->max_payload));
    }
    reply_json(req, 200, json_pack("{s:o}", "functions", a));
}

static void get_metrics(struct ep_server *s, struct evhttp_request *req)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, "# HELP hpcport_endpoint_calls_total Calls finished, by function and result.\n"
                    "# TYPE hpcport_endpoint_calls_total counter\n");
    for (size_t i = 0; i < s->nfn; i++)
        for (int c = 0; c < EPC__N; c++)
            if (s->fns[i].calls[c] || c == EPC_OK)
                hp_buf_addf(&b, "hpcport_endpoint_calls_total{function=\"%s\",result=\"%s\"} "
                            "%llu\n", s->fns[i].cfg->name, codes[c].name,
                            (unsigned long long)s->fns[i].calls[c]);
    hp_buf_adds(&b, "# HELP hpcport_endpoint_call_seconds Time from arrival to result.\n"
                    "# TYPE hpcport_endpoint_call_seconds histogram\n");
    for (size_t i = 0; i < s->nfn; i++) {
        const struct ep_fn *fn = &s->fns[i];
        uint64_t cum = 0;
        for (int k = 0; k <= EP_NBUCKETS; k++) {
            cum += fn->hist[k];
            if (k < EP_NBUCKETS)
                hp_buf_addf(&b, "hpcport_endpoint_call_seconds_bucket{function=\"%s\",le=\"%g\"} "
                            "%llu\n", fn->cfg->name, ep_buckets[k], (unsigned long long)cum);
            else
                hp_buf_addf(&b, "hpcport_endpoint_call_seconds_bucket{function=\"%s\",le=\"+Inf\"} "
                            "%llu\n", fn->cfg->name, (unsigned long long)cum);
        }
        hp_buf_addf(&b, "hpcport_endpoint_call_seconds_sum{function=\"%s\"} %.6f\n"
                    "hpcport_endpoint_call_seconds_count{function=\"%s\"} %llu\n", fn->cfg->name,
                    fn->seconds_sum, fn->cfg->name, (unsigned long long)cum);
    }
    hp_buf_addf(&b, "# HELP hpcport_endpoint_queue_depth Calls waiting for a worker.\n"
                    "# TYPE hpcport_endpoint_queue_depth gauge\n"
                    "hpcport_endpoint_queue_depth %zu\n"
                    "# HELP hpcport_endpoint_workers_busy Workers running a call.\n"
                    "# TYPE hpcport_endpoint_workers_busy gauge\n"
                    "hpcport_endpoint_workers_busy %d\n"
                    "# HELP hpcport_endpoint_workers Workers running.\n"
                    "# TYPE hpcport_endpoint_workers gauge\n"
                    "hpcport_endpoint_workers %d\n"
                    "# HELP hpcport_endpoint_worker_restarts_total Workers replaced after a crash "
                    "or timeout.\n"
                    "# TYPE hpcport_endpoint_worker_restarts_total counter\n"
                    "hpcport_endpoint_worker_restarts_total %llu\n",
                s->queued_total, ep_busy_workers(s), ep_total_workers(s),
                (unsigned long long)s->restarts);
    reply_body(req, 200, "text/plain; version=0.0.4", b.buf, b.len);
    hp_buf_release(&b);
}

static void post_call(struct ep_server *s, struct evhttp_request *req, struct ep_fn *fn,
                      int kind)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const void *data = len ? evbuffer_pullup(in, -1) : NULL;
    int code;
    const char *msg;
    struct ep_task *t = ep_task_submit(fn, kind, data, len, &code, &msg);
    if (!t) {
        reply_error(req, code, "%s", msg);
        return;
    }
    if (kind == K_SUBMIT) {
        char id[24];
        ep_id_format(t->id, id);
        reply_json(req, 202, json_pack("{s:s}", "task", id));
        return;
    }
    struct ep_pending *p = pending_new(s, req, P_CALL);
    p->task = t;
    t->pending = p;
}

static void post_batch(struct ep_server *s, struct evhttp_request *req, struct ep_fn *fn)
{
    (void)s;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in), n = 0, alloc = 0, off = 0;
    if (!len) {
        reply_error(req, EPC_BAD_REQUEST, "empty batch: send application/x-hpcport-frames, "
                    "each input as [uint32 big-endian length][bytes]");
        return;
    }
    unsigned char *body = hp_xmalloc(len);
    evbuffer_remove(in, body, len);
    size_t *offs = NULL, *lens = NULL;
    while (off < len) {
        if (len - off < 4) {
            reply_error(req, EPC_BAD_REQUEST, "bad frames: %zu stray bytes at offset %zu; each "
                        "input is [uint32 big-endian length][bytes]", len - off, off);
            goto fail;
        }
        uint32_t be;
        memcpy(&be, body + off, 4);
        size_t fl = ntohl(be);
        if (fl > len - off - 4) {
            reply_error(req, EPC_BAD_REQUEST, "bad frames: frame %zu at offset %zu says %zu "
                        "bytes, only %zu follow", n, off, fl, len - off - 4);
            goto fail;
        }
        if (n + 1 > alloc) {
            size_t had = alloc;
            HP_ALLOC_GROW(offs, n + 1, alloc);
            if (alloc != had)
                lens = hp_xrealloc(lens, alloc * sizeof(*lens));
        }
        offs[n] = off + 4;
        lens[n] = fl;
        n++;
        off += 4 + fl;
    }
    int code;
    const char *msg;
    struct ep_batch *b = ep_batch_submit(fn, body, len, offs, lens, n, &code, &msg);
    body = NULL;
    if (!b) {
        reply_error(req, code, "%s", msg);
    } else {
        char id[24], first[24];
        ep_id_format(b->id, id);
        ep_id_format(b->id + 1, first);
        reply_json(req, 202, json_pack("{s:s, s:I, s:s}", "batch", id, "tasks", (json_int_t)n,
                                       "first_task", first));
    }
fail:
    free(body);
    free(offs);
    free(lens);
}

static void get_task(struct ep_server *s, struct evhttp_request *req, struct ep_task *t)
{
    double wait;
    if (query_wait(req, &wait) < 0) {
        reply_error(req, EPC_BAD_REQUEST, "bad query: wait=SECONDS (at most %g)", MAX_WAIT);
        return;
    }
    if (t->state == T_DONE || wait <= 0) {
        reply_task(req, t);
        return;
    }
    struct ep_pending *p = pending_new(s, req, P_TASK);
    p->task = t;
    pending_wait(p, &t->waiters, wait);
}

static void get_batch(struct ep_server *s, struct evhttp_request *req, struct ep_batch *b)
{
    double wait;
    if (query_wait(req, &wait) < 0) {
        reply_error(req, EPC_BAD_REQUEST, "bad query: wait=SECONDS (at most %g)", MAX_WAIT);
        return;
    }
    if (b->done == b->n) {
        reply_batch(req, b);
        ep_batch_forget(b);
        return;
    }
    if (wait <= 0) {
        reply_batch(req, b);
        return;
    }
    struct ep_pending *p = pending_new(s, req, P_BATCH);
    p->batch = b;
    pending_wait(p, &b->waiters, wait);
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "?";
}

static bool authorized(struct ep_server *s, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ')
        n--;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)h, n, d);
    return CRYPTO_memcmp(d, s->token_digest, sizeof(d)) == 0;
}

/* Route: "GET /v1/x" matched against the request; 0 no path match, 1 path
 * matches but another method, 2 match. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct ep_server *s = arg;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!authorized(s, req)) {
        reply_error(req, EPC_UNAUTHORIZED, "missing or wrong bearer token; send 'Authorization: "
                    "Bearer TOKEN' with the token from the endpoint's state directory");
        return;
    }
    if (s->stopping) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_error(req, EPC_UNAVAILABLE, "the endpoint is shutting down");
        return;
    }
    if (!path)
        path = "";
    /* the route's pattern, and its argument */
    char pattern[128], argbuf[128] = "";
    const char *rest;
    if (hp_starts_with(path, "/v1/functions/")) {
        rest = path + strlen("/v1/functions/");
        const char *sl = strchr(rest, '/');
        if (sl && (size_t)(sl - rest) < sizeof(argbuf) && sl > rest && !strchr(sl + 1, '/')) {
            memcpy(argbuf, rest, (size_t)(sl - rest));
            argbuf[sl - rest] = '\0';
            snprintf(pattern, sizeof(pattern), "/v1/functions/{name}/%s", sl + 1);
        } else {
            snprintf(pattern, sizeof(pattern), "%s", path);
        }
    } else if (hp_starts_with(path, "/v1/tasks/") || hp_starts_with(path, "/v1/batches/")) {
        bool task = hp_starts_with(path, "/v1/tasks/");
        rest = path + strlen(task ? "/v1/tasks/" : "/v1/batches/");
        if (*rest && !strchr(rest, '/') && strlen(rest) < sizeof(argbuf)) {
            snprintf(argbuf, sizeof(argbuf), "%s", rest);
            snprintf(pattern, sizeof(pattern), task ? "/v1/tasks/{id}" : "/v1/batches/{id}");
        } else {
            snprintf(pattern, sizeof(pattern), "%s", path);
        }
    } else {
        snprintf(pattern, sizeof(pattern), "%s", path);
    }
    const char *mn = method_name(m);
    bool path_known = false, found = false;
    struct hp_buf allow = HP_BUF_INIT;
    for (const char *const *r = hp_ep_routes; *r; r++) {
        const char *sp = strchr(*r, ' ');
        if (strcmp(sp + 1, pattern) != 0)
            continue;
        path_known = true;
        if (allow.len)
            hp_buf_adds(&allow, ", ");
        hp_buf_add(&allow, *r, (size_t)(sp - *r));
        if (strlen(mn) == (size_t)(sp - *r) && !strncmp(*r, mn, (size_t)(sp - *r)))
            found = true;
    }
    if (!path_known) {
        hp_buf_release(&allow);
        reply_error(req, EPC_NOT_FOUND, "no such resource: %s; see GET /v1/functions and the "
                    "OpenAPI document", path);
        return;
    }
    if (!found) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow.buf);
        reply_error(req, EPC_METHOD, "method %s is not allowed on %s; use %s", mn, path, allow.buf);
        hp_buf_release(&allow);
        return;
    }
    hp_buf_release(&allow);

    if (!strcmp(pattern, "/v1/health"))
        return get_health(s, req);
    if (!strcmp(pattern, "/v1/functions"))
        return get_functions(s, req);
    if (!strcmp(pattern, "/v1/metrics"))
        return get_metrics(s, req);
    if (hp_starts_with(pattern, "/v1/functions/{name}/")) {
        struct ep_fn *fn = ep_fn_find(s, argbuf);
        if (!fn)
            return reply_error(req, EPC_NOT_FOUND, "no function '%s' on endpoint '%s'; GET "
                               "/v1/functions lists them", argbuf, s->cfg->name);
        const char *op = pattern + strlen("/v1/functions/{name}/");
        if (!strcmp(op, "batch"))
            return post_batch(s, req, fn);
        return post_call(s, req, fn, !strcmp(op, "call") ? K_SYNC : K_SUBMIT);
    }
    bool task = hp_starts_with(pattern, "/v1/tasks/");
    uint64_t id;
    struct ep_task *t = NULL;
    struct ep_batch *b = NULL;
    if (id_parse(argbuf, &id) == 0) {
        if (task)
            t = ep_task_find(s, id);
        else
            b = ep_batch_find(s, id);
    }
    if (!t && !b)
        return reply_error(req, EPC_NOT_FOUND, "no %s '%s' (finished results are kept for "
                           "10 minutes, batches until fetched)", task ? "task" : "batch", argbuf);
    if (m == EVHTTP_REQ_DELETE) {
        json_int_t n = 0;
        n = t ? ep_task_cancel(t) : ep_batch_cancel(b);
        return reply_json(req, 200, json_pack("{s:I}", "canceled", n));
    }
    if (t)
        return get_task(s, req, t);
    get_batch(s, req, b);
}

/* ---- TLS ---- */

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    SSL_CTX *ctx = arg;
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static int tls_setup(struct ep_server *s, struct hp_err *err)
{
    const struct hp_ep_config *c = s->cfg;
    s->ssl = SSL_CTX_new(TLS_server_method());
    if (!s->ssl)
        return hp_err_set(err, HP_ESYS, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(s->ssl, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(s->ssl, c->tls_cert) != 1)
        return hp_err_set(err, HP_EINPUT, "tls: cannot use the certificate %s (is it a PEM "
                          "certificate chain?)", c->tls_cert);
    if (SSL_CTX_use_PrivateKey_file(s->ssl, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->ssl) != 1)
        return hp_err_set(err, HP_EINPUT, "tls: the key %s does not fit the certificate %s "
                          "(or is not a PEM key)", c->tls_key, c->tls_cert);
    evhttp_set_bevcb(s->http, tls_bev, s->ssl);
    return 0;
}

int ep_http_start(struct ep_server *s, struct hp_err *err)
{
    s->http = evhttp_new(s->base);
    if (!s->http)
        return hp_err_set(err, HP_ESYS, "cannot create the HTTP server");
    double maxto = 0;
    for (size_t i = 0; i < s->cfg->nfn; i++)
        if (s->cfg->fn[i].timeout > maxto)
            maxto = s->cfg->fn[i].timeout;
    int idle = (int)(maxto > MAX_WAIT ? maxto : MAX_WAIT) + 60;
    evhttp_set_timeout(s->http, idle);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->cfg->max_payload);
    evhttp_set_max_headers_size(s->http, 64 * 1024);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, on_request, s);
    bool tls = s->cfg->tls_cert && !s->cfg->listen.unix_path &&
               (s->cfg->tls_always || !s->cfg->listen.loopback);
    if (tls && tls_setup(s, err) < 0)
        return -1;
    return 0;
}

void ep_http_free(struct ep_server *s)
{
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
    if (s->ssl)
        SSL_CTX_free(s->ssl);
    s->ssl = NULL;
}
