/* client.c - the endpoint's C client (hpcport-client.h): one curl easy
 * handle per client so that requests share a keep-alive connection.
 *
 * Standalone: built into libhpcport-client (libcurl, jansson) as well as into
 * hpcport itself, so it uses nothing else of hpcport. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hpcport-client.h"

#define RESPONSE_CAP ((size_t)1 << 31)   /* outputs above 2 GiB are refused */

struct hp_client {
    CURL *h;
    char *base;                 /* "http://127.0.0.1:PORT" without the trailing / */
    char *unix_path;            /* or NULL */
    struct curl_slist *auth;    /* "Authorization: Bearer ..." (wiped on close) */
    double timeout;
    hp_client_connect_fn hook;
    void *hook_ud;
    char sock_err[512];
};

struct rbuf {
    char *p;
    size_t len, alloc;
    int over;
};

static const struct {
    const char *name;
    int code;
    long status;
} codes[] = {
    { "ok", HP_CLIENT_OK, 200 },
    { "invalid_argument", HP_CLIENT_EINVAL, 0 },
    { "transport", HP_CLIENT_ETRANSPORT, 0 },
    { "protocol", HP_CLIENT_EPROTOCOL, 0 },
    { "bad_request", HP_CLIENT_EBADREQUEST, 400 },
    { "unauthorized", HP_CLIENT_EUNAUTHORIZED, 401 },
    { "not_found", HP_CLIENT_ENOTFOUND, 404 },
    { "canceled", HP_CLIENT_ECANCELED, 409 },
    { "payload_too_large", HP_CLIENT_ETOOLARGE, 413 },
    { "queue_full", HP_CLIENT_EQUEUEFULL, 429 },
    { "function_failed", HP_CLIENT_EFAILED, 500 },
    { "crashed", HP_CLIENT_ECRASHED, 502 },
    { "unavailable", HP_CLIENT_EUNAVAILABLE, 503 },
    { "timeout", HP_CLIENT_ETIMEOUT, 504 },
};

const char *hp_client_code_name(int code)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].code == code)
            return codes[i].name;
    return "unknown";
}

static int seterr(struct hp_client_error *err, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(struct hp_client_error *err, int code, long status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        memset(err, 0, sizeof(*err));
        err->code = code;
        err->http_status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void clearerr_(struct hp_client_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* ------------------------------------------------------------- sockets */

static curl_socket_t open_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct hp_client *c = ud;
    (void)purpose;
    c->sock_err[0] = '\0';
    if (c->hook(c->hook_ud, c->sock_err, sizeof(c->sock_err)) < 0) {
        if (!c->sock_err[0])
            snprintf(c->sock_err, sizeof(c->sock_err), "cannot open a connection to the endpoint");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

void hp_client_set_connect_hook(struct hp_client *c, hp_client_connect_fn fn, void *ud)
{
    c->hook = fn;
    c->hook_ud = ud;
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETFUNCTION, fn ? open_cb : NULL);
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETDATA, fn ? c : NULL);
}

/* ------------------------------------------------------------- open/close */

struct hp_client *hp_client_open(const char *where, const char *token,
                                 struct hp_client_error *err)
{
    clearerr_(err);
    if (!where || !*where) {
        seterr(err, HP_CLIENT_EINVAL, 0, "no endpoint address given");
        return NULL;
    }
    if (token) {
        size_t n = strlen(token);
        if (n == 0 || n > 256 || strpbrk(token, "\r\n \t")) {
            seterr(err, HP_CLIENT_EINVAL, 0, "the token is empty, too long or has spaces");
            return NULL;
        }
    }
    static int inited;
    if (!inited) {
        /* curl_global_init is not thread safe; a program with threads
         * should call it first itself (then this is a no-op). */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    struct hp_client *c = calloc(1, sizeof(*c));
    if (!c) {
        seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
        return NULL;
    }
    if (!strncmp(where, "unix:", 5) || where[0] == '/') {
        c->unix_path = strdup(where[0] == '/' ? where : where + 5);
        c->base = strdup("http://localhost");
    } else if (!strncmp(where, "http://", 7) || !strncmp(where, "https://", 8)) {
        c->base = strdup(where);
        size_t n = c->base ? strlen(c->base) : 0;
        while (n > 0 && c->base[n - 1] == '/')
            c->base[--n] = '\0';
    } else {
        free(c);
        seterr(err, HP_CLIENT_EINVAL, 0,
               "'%s' is neither an http:// or https:// URL nor a unix socket path", where);
        return NULL;
    }
    c->h = curl_easy_init();
    if (!c->h || !c->base || (where[0] == '/' && !c->unix_path)) {
        hp_client_close(c);
        seterr(err, HP_CLIENT_EINVAL, 0, "cannot set up curl (out of memory?)");
        return NULL;
    }
    if (token) {
        size_t n = strlen(token) + 32;
        char *line = malloc(n);
        if (line) {
            snprintf(line, n, "Authorization: Bearer %s", token);
            c->auth = curl_slist_append(NULL, line);
            wipe(line, n);
            free(line);
        }
        if (!c->auth) {
            hp_client_close(c);
            seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
            return NULL;
        }
    }
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_PROXY, "");          /* never the environment's proxy */
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "hpcport-client/1");
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 15L);
    if (c->unix_path)
        curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    return c;
}

void hp_client_close(struct hp_client *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    for (struct curl_slist *s = c->auth; s; s = s->next)
        wipe(s->data, strlen(s->data));
    curl_slist_free_all(c->auth);
    free(c->base);
    free(c->unix_path);
    free(c);
}

void hp_client_set_timeout(struct hp_client *c, double seconds)
{
    c->timeout = seconds > 0 ? seconds : 0;
}

char *hp_client_read_token(const char *path, struct hp_client_error *err)
{
    clearerr_(err);
    FILE *f = fopen(path, "re");
    if (!f) {
        seterr(err, HP_CLIENT_EINVAL, 0, "cannot read the token file %s: %s", path,
               strerror(errno));
        return NULL;
    }
    char buf[300];
    char *line = fgets(buf, sizeof(buf), f);
    fclose(f);
    size_t n = line ? strcspn(buf, "\r\n") : 0;
    if (n == 0 || n > 256) {
        wipe(buf, sizeof(buf));
        seterr(err, HP_CLIENT_EINVAL, 0, "the token file %s holds no token", path);
        return NULL;
    }
    char *t = malloc(n + 1);
    if (t) {
        memcpy(t, buf, n);
        t[n] = '\0';
    }
    wipe(buf, sizeof(buf));
    if (!t)
        seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    return t;
}

void hp_client_token_free(char *token)
{
    if (token) {
        wipe(token, strlen(token));
        free(token);
    }
}

/* ------------------------------------------------------------- requests */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct rbuf *b = ud;
    size_t len = size * n;
    if (b->len + len + 1 > RESPONSE_CAP) {
        b->over = 1;
        return 0;
    }
    if (b->len + len + 1 > b->alloc) {
        size_t na = b->alloc ? b->alloc : 4096;
        while (na < b->len + len + 1)
            na *= 2;
        char *np = realloc(b->p, na);
        if (!np) {
            b->over = 1;
            return 0;
        }
        b->p = np;
        b->alloc = na;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

static int code_of_status(long status)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].status == status)
            return codes[i].code;
    return status >= 500 ? HP_CLIENT_EUNAVAILABLE : HP_CLIENT_EPROTOCOL;
}

/* An error answer: {"error":{"code","message"}}, or the status alone. */
static int answer_error(long status, const struct rbuf *b, struct hp_client_error *err)
{
    json_t *j = b->len ? json_loadb(b->p, b->len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *kind = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int code = code_of_status(status);
    if (kind)
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
            if (!strcmp(codes[i].name, kind))
                code = codes[i].code;
    if (msg)
        seterr(err, code, status, "%s", msg);
    else
        seterr(err, code, status, "the endpoint answered HTTP %ld", status);
    if (err && kind)
        snprintf(err->kind, sizeof(err->kind), "%s", kind);
    json_decref(j);
    return -1;
}

/* One request: method, path under base (starting with /), optional body.
 * The body of the answer goes to *b (the caller releases b->p); *status its
 * HTTP status. -1 only when no answer came. */
static int request(struct hp_client *c, const char *method, const char *path,
                   const void *body, size_t bodylen, const char *ctype, double extra_timeout,
                   struct rbuf *b, long *status, struct hp_client_error *err)
{
    size_t ulen = strlen(c->base) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    snprintf(url, ulen, "%s%s", c->base, path);

    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *s = c->auth; s; s = s->next)
        hdrs = curl_slist_append(hdrs, s->data);
    char ct[128];
    if (body) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/octet-stream");
        hdrs = curl_slist_append(hdrs, ct);
        hdrs = curl_slist_append(hdrs, "Expect:");   /* no 100-continue round trip */
    }
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? bodylen : 0));
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    }
    double t = c->timeout > 0 ? c->timeout + extra_timeout : 0;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(t * 1000));
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    c->sock_err[0] = '\0';

    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(url);
    if (rc != CURLE_OK) {
        if (b->over)
            return seterr(err, HP_CLIENT_EPROTOCOL, 0, "the answer is larger than 2 GiB");
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return seterr(err, HP_CLIENT_ETIMEOUT, 0, "no answer from the endpoint in %g s", t);
        if (c->sock_err[0])
            return seterr(err, HP_CLIENT_ETRANSPORT, 0, "%s", c->sock_err);
        return seterr(err, HP_CLIENT_ETRANSPORT, 0, "cannot reach the endpoint: %s",
                      ebuf[0] ? ebuf : curl_easy_strerror(rc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (!b->p) {
        b->p = calloc(1, 1);
        if (!b->p)
            return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    }
    return 0;
}

static char *escape(struct hp_client *c, const char *s)
{
    char *e = curl_easy_escape(c->h, s, 0);
    char *r = e ? strdup(e) : NULL;
    curl_free(e);
    return r;
}

int hp_client_call(struct hp_client *c, const char *fn, const void *in, size_t inlen,
                   void **out, size_t *outlen, struct hp_client_error *err)
{
    clearerr_(err);
    *out = NULL;
    *outlen = 0;
    if (!c || !fn || !*fn || (!in && inlen))
        return seterr(err, HP_CLIENT_EINVAL, 0, "hp_client_call: bad arguments");
    char *efn = escape(c, fn);
    if (!efn)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    size_t plen = strlen(efn) + 32;
    char *path = malloc(plen);
    if (!path) {
        free(efn);
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    }
    snprintf(path, plen, "/v1/functions/%s/call", efn);
    free(efn);
    struct rbuf b = { 0 };
    long status = 0;
    int rc = request(c, "POST", path, in ? in : "", inlen, NULL, 0, &b, &status, err);
    free(path);
    if (rc == 0 && status != 200)
        rc = answer_error(status, &b, err);
    if (rc < 0) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}

int hp_client_get(struct hp_client *c, const char *path, char **body, size_t *len,
                  struct hp_client_error *err)
{
    clearerr_(err);
    *body = NULL;
    if (len)
        *len = 0;
    if (!c || !path)
        return seterr(err, HP_CLIENT_EINVAL, 0, "hp_client_get: bad arguments");
    size_t plen = strlen(path) + 8;
    char *p = malloc(plen);
    if (!p)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    snprintf(p, plen, "/v1/%s", path[0] == '/' ? path + 1 : path);
    struct rbuf b = { 0 };
    long status = 0;
    int rc = request(c, "GET", p, NULL, 0, NULL, 0, &b, &status, err);
    free(p);
    if (rc == 0 && status != 200)
        rc = answer_error(status, &b, err);
    if (rc < 0) {
        free(b.p);
        return -1;
    }
    *body = b.p;
    if (len)
        *len = b.len;
    return 0;
}

/* ------------------------------------------------------------- batches */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static char *batch_path(struct hp_client *c, const char *kind, const char *id, const char *tail)
{
    char *eid = escape(c, id);
    if (!eid)
        return NULL;
    size_t n = strlen(kind) + strlen(eid) + strlen(tail) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "/v1/%s/%s%s", kind, eid, tail);
    free(eid);
    return p;
}

int hp_client_batch_submit(struct hp_client *c, const char *fn, const void *const *ins,
                           const size_t *inlens, size_t n, char **batch_id,
                           struct hp_client_error *err)
{
    clearerr_(err);
    *batch_id = NULL;
    if (!c || !fn || !*fn || n == 0 || !ins || !inlens)
        return seterr(err, HP_CLIENT_EINVAL, 0, "hp_client_batch_submit: bad arguments");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (inlens[i] > UINT32_MAX || (!ins[i] && inlens[i]))
            return seterr(err, HP_CLIENT_EINVAL, 0, "input %zu is larger than 4 GiB", i);
        total += 4 + inlens[i];
    }
    unsigned char *body = malloc(total ? total : 1);
    if (!body)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        put_be32(body + off, (uint32_t)inlens[i]);
        if (inlens[i])
            memcpy(body + off + 4, ins[i], inlens[i]);
        off += 4 + inlens[i];
    }
    char *path = batch_path(c, "functions", fn, "/batch");
    struct rbuf b = { 0 };
    long status = 0;
    int rc = path ? request(c, "POST", path, body, total, "application/x-hpcport-frames", 0, &b,
                            &status, err)
                  : seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    free(path);
    free(body);
    if (rc == 0 && status != 202 && status != 200)
        rc = answer_error(status, &b, err);
    if (rc == 0) {
        json_t *j = json_loadb(b.p, b.len, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "batch"));
        if (id)
            *batch_id = strdup(id);
        else
            rc = seterr(err, HP_CLIENT_EPROTOCOL, status, "the endpoint's answer names no batch");
        json_decref(j);
    }
    free(b.p);
    return rc;
}

void hp_client_results_free(struct hp_client_result *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        free(r[i].data);
    free(r);
}

static int parse_results(const struct rbuf *b, struct hp_client_result **results, size_t *n,
                         struct hp_client_error *err)
{
    const unsigned char *p = (const unsigned char *)b->p, *end = p + b->len;
    size_t cnt = 0, alloc = 0;
    struct hp_client_result *r = NULL;
    while (p < end) {
        if (end - p < 5 || *p > 1)
            goto bad;
        uint32_t len = get_be32(p + 1);
        if ((size_t)(end - p - 5) < len)
            goto bad;
        if (cnt == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            struct hp_client_result *nr = realloc(r, alloc * sizeof(*r));
            if (!nr)
                goto nomem;
            r = nr;
        }
        struct hp_client_result *x = &r[cnt];
        x->ok = *p == 0;
        x->len = len;
        x->data = malloc((size_t)len + 1);
        if (!x->data)
            goto nomem;
        memcpy(x->data, p + 5, len);
        ((char *)x->data)[len] = '\0';
        cnt++;
        p += 5 + len;
    }
    *results = r;
    *n = cnt;
    return 0;
bad:
    hp_client_results_free(r, cnt);
    return seterr(err, HP_CLIENT_EPROTOCOL, 200, "the endpoint sent malformed batch results");
nomem:
    hp_client_results_free(r, cnt);
    return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
}

int hp_client_batch_wait(struct hp_client *c, const char *batch_id, double wait_s,
                         struct hp_client_result **results, size_t *n, size_t *done,
                         struct hp_client_error *err)
{
    clearerr_(err);
    *results = NULL;
    *n = 0;
    if (done)
        *done = 0;
    if (!c || !batch_id || !*batch_id || wait_s < 0)
        return seterr(err, HP_CLIENT_EINVAL, 0, "hp_client_batch_wait: bad arguments");
    char tail[64];
    snprintf(tail, sizeof(tail), "?wait=%.3f", wait_s);
    char *path = batch_path(c, "batches", batch_id, tail);
    if (!path)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    struct rbuf b = { 0 };
    long status = 0;
    int rc = request(c, "GET", path, NULL, 0, NULL, wait_s, &b, &status, err);
    free(path);
    if (rc == 0 && status == 200) {
        rc = parse_results(&b, results, n, err);
        if (rc == 0 && done)
            *done = *n;
    } else if (rc == 0 && status == 202) {
        json_t *j = json_loadb(b.p, b.len, 0, NULL);
        json_int_t d = json_integer_value(json_object_get(j, "done"));
        json_int_t t = json_integer_value(json_object_get(j, "total"));
        json_decref(j);
        if (done)
            *done = d > 0 ? (size_t)d : 0;
        *n = t > 0 ? (size_t)t : 0;
        rc = 1;
    } else if (rc == 0) {
        rc = answer_error(status, &b, err);
    }
    free(b.p);
    return rc;
}

int hp_client_batch_cancel(struct hp_client *c, const char *batch_id, size_t *canceled,
                           struct hp_client_error *err)
{
    clearerr_(err);
    if (canceled)
        *canceled = 0;
    if (!c || !batch_id || !*batch_id)
        return seterr(err, HP_CLIENT_EINVAL, 0, "hp_client_batch_cancel: bad arguments");
    char *path = batch_path(c, "batches", batch_id, "");
    if (!path)
        return seterr(err, HP_CLIENT_EINVAL, 0, "out of memory");
    struct rbuf b = { 0 };
    long status = 0;
    int rc = request(c, "DELETE", path, NULL, 0, NULL, 0, &b, &status, err);
    free(path);
    if (rc == 0 && status != 200)
        rc = answer_error(status, &b, err);
    if (rc == 0 && canceled) {
        json_t *j = json_loadb(b.p, b.len, 0, NULL);
        json_int_t k = json_integer_value(json_object_get(j, "canceled"));
        *canceled = k > 0 ? (size_t)k : 0;
        json_decref(j);
    }
    free(b.p);
    return rc;
}
