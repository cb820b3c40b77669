/* endpoint-bench: the measuring half of bench/bench-endpoint.sh. Prints
 * key=value lines (times in microseconds) for the script to format.
 *
 *   endpoint-bench tcp N
 *       1-byte ping-pong over loopback TCP (TCP_NODELAY) with a forked echo
 *       server: the floor any request/response over loopback pays.
 *   endpoint-bench call ADDR TOKEN_FILE FUNCTION N [BYTES]
 *       N synchronous POST /v1/functions/FUNCTION/call of BYTES (default 0)
 *       on one keep-alive connection; p50, p99 of the round trips.
 *   endpoint-bench batch ADDR TOKEN_FILE FUNCTION SIZE BATCHES
 *       BATCHES times: POST .../batch with SIZE empty frames, then GET
 *       /v1/batches/ID?wait=60 until done; checks every result is ok; calls/s.
 * ADDR: HOST:PORT, http://HOST:PORT[/] or unix:PATH.
 *
 * The HTTP client is a minimal HTTP/1.1 one on a raw socket (Content-Length
 * and chunked answers), so the figures are the endpoint's and the
 * transport's, not a client library's. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void die(const char *what)
{
    fprintf(stderr, "endpoint-bench: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *prefix, double *t, size_t n)
{
    qsort(t, n, sizeof *t, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += t[i];
    printf("%s_n=%zu\n%s_p50_us=%.1f\n%s_p99_us=%.1f\n%s_mean_us=%.1f\n", prefix, n, prefix,
           t[n / 2], prefix, t[(size_t)(n * 0.99)], prefix, sum / n);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- raw TCP ping-pong ---- */
static int cmd_tcp(long n)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0)
        die("loopback listen");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int c = accept(ls, NULL, NULL);
        char b;
        if (c < 0)
            _exit(1);
        nodelay(c);
        while (read(c, &b, 1) == 1)
            if (write(c, &b, 1) != 1)
                break;
        _exit(0);
    }
    close(ls);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        die("loopback connect");
    nodelay(s);
    long warm = n / 10;
    double *t = malloc(sizeof *t * (size_t)n);
    if (!t)
        die("out of memory");
    for (long i = -warm; i < n; i++) {
        char b = 'x';
        double t0 = now_us();
        if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1)
            die("ping-pong");
        if (i >= 0)
            t[i] = now_us() - t0;
    }
    close(s);
    waitpid(pid, NULL, 0);
    report("tcp", t, (size_t)n);
    free(t);
    return 0;
}

/* ---- minimal HTTP/1.1 client ---- */
struct conn {
    const char *addr;
    int fd;
    char *buf;            /* received, not yet consumed: buf[0..len) */
    size_t len, cap;
    char auth[128];
    char host[128];
};

static int conn_open(struct conn *c)
{
    const char *a = c->addr;
    if (!strncmp(a, "unix:", 5)) {
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        if (strlen(a + 5) >= sizeof u.sun_path)
            return -1;
        strcpy(u.sun_path, a + 5);
        c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(c->host, sizeof c->host, "localhost");
        return c->fd < 0 || connect(c->fd, (struct sockaddr *)&u, sizeof u) < 0 ? -1 : 0;
    }
    if (!strncmp(a, "http://", 7))
        a += 7;
    char host[128];
    snprintf(host, sizeof host, "%s", a);
    char *slash = strchr(host, '/');
    if (slash)
        *slash = '\0';
    snprintf(c->host, sizeof c->host, "%s", host);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    c->fd = socket(res->ai_family, SOCK_STREAM, 0);
    int rc = c->fd < 0 || connect(c->fd, res->ai_addr, res->ai_addrlen) < 0 ? -1 : 0;
    freeaddrinfo(res);
    if (rc == 0)
        nodelay(c->fd);
    return rc;
}

static int fill(struct conn *c)
{
    if (c->len == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 65536;
        if (!(c->buf = realloc(c->buf, c->cap)))
            die("out of memory");
    }
    ssize_t r;
    do
        r = read(c->fd, c->buf + c->len, c->cap - c->len);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->len += (size_t)r;
    return 0;
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* One request; the answer's status, and its body in *body (malloc'd,
 * NUL-terminated) / *blen. */
static int request(struct conn *c, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, char **rbody, size_t *rlen)
{
    char head[1024];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s"
                      "Content-Length: %zu\r\n\r\n", method, path, c->host, c->auth,
                      ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", len);
    struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, len}};
    size_t total = (size_t)hn + len, done = 0;
    while (done < total) {
        ssize_t w = writev(c->fd, iov, 2);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("sending a request");
        done += (size_t)w;
        for (int i = 0; i < 2; i++) {
            size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            w -= (ssize_t)k;
        }
    }
    char *end;
    while (c->len < 4 || !(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (fill(c) < 0)
            die("reading an answer (the endpoint closed the connection)");
    size_t hlen = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
        die("an answer that is not HTTP/1.x");
    long clen = -1;
    int chunked = 0;
    for (char *l = strstr(c->buf, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
        if (!strncasecmp(l, "Content-Length:", 15))
            clen = strtol(l + 15, NULL, 10);
        else if (!strncasecmp(l, "Transfer-Encoding:", 18) && strstr(l, "chunked") &&
                 strstr(l, "chunked") < strstr(l, "\r\n"))
            chunked = 1;
    }
    consume(c, hlen);
    char *out = NULL;
    size_t olen = 0;
    if (chunked) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf, c->len, "\r\n", 2)))
                if (fill(c) < 0)
                    die("reading a chunk");
            size_t sz = strtoul(c->buf, NULL, 16);
            size_t need = (size_t)(crlf - c->buf) + 2 + sz + 2;
            while (c->len < need)
                if (fill(c) < 0)
                    die("reading a chunk");
            if (!(out = realloc(out, olen + sz + 1)))
                die("out of memory");
            memcpy(out + olen, crlf + 2, sz);
            olen += sz;
            consume(c, need);
            if (sz == 0)
                break;   /* (no trailers from evhttp) */
        }
    } else {
        size_t n = clen > 0 ? (size_t)clen : 0;
        while (c->len < n)
            if (fill(c) < 0)
                die("reading a body");
        if (!(out = malloc(n + 1)))
            die("out of memory");
        memcpy(out, c->buf, n);
        olen = n;
        consume(c, n);
    }
    out[olen] = '\0';
    if (rbody) {
        *rbody = out;
        *rlen = olen;
    } else {
        free(out);
    }
    return status;
}

static void conn_init(struct conn *c, const char *addr, const char *token_file)
{
    memset(c, 0, sizeof *c);
    c->addr = addr;
    FILE *f = fopen(token_file, "r");
    char tok[80] = "";
    if (!f || !fgets(tok, sizeof tok, f))
        die("reading the token file");
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s\r\n", tok);
    if (conn_open(c) < 0)
        die("connecting to the endpoint");
}

static void conn_release(struct conn *c)
{
    close(c->fd);
    free(c->buf);
    memset(c->auth, 0, sizeof c->auth);
}

static int cmd_call(const char *addr, const char *token, const char *fn, long n, size_t bytes)
{
    struct conn c;
    conn_init(&c, addr, token);
    char path[256];
    snprintf(path, sizeof path, "/v1/functions/%s/call", fn);
    char *body = calloc(1, bytes + 1);
    double *t = malloc(sizeof *t * (size_t)n);
    if (!body || !t)
        die("out of memory");
    long warm = n / 10 > 100 ? n / 10 : 100;
    for (long i = -warm; i < n; i++) {
        char *r;
        size_t rl;
        double t0 = now_us();
        int st = request(&c, "POST", path, "application/octet-stream", body, bytes, &r, &rl);
        double dt = now_us() - t0;
        if (st != 200) {
            fprintf(stderr, "endpoint-bench: call answered %d: %s\n", st, r);
            exit(1);
        }
        free(r);
        if (i >= 0)
            t[i] = dt;
    }
    report("call", t, (size_t)n);
    free(t);
    free(body);
    conn_release(&c);
    return 0;
}

static char *json_string(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p || !(p = strchr(p + strlen(pat), '"')))
        return NULL;
    const char *e = strchr(p + 1, '"');
    return e ? strndup(p + 1, (size_t)(e - p - 1)) : NULL;
}

static int cmd_batch(const char *addr, const char *token, const char *fn, long size, long batches)
{
    struct conn c;
    conn_init(&c, addr, token);
    char path[256];
    snprintf(path, sizeof path, "/v1/functions/%s/batch", fn);
    size_t flen = (size_t)size * 4;
    char *frames = calloc(1, flen);   /* SIZE frames of length 0 */
    if (!frames)
        die("out of memory");
    double t0 = now_us(), submit = 0;
    long calls = 0;
    for (long b = 0; b < batches; b++) {
        char *r, *id;
        size_t rl;
        double s0 = now_us();
        int st = request(&c, "POST", path, "application/x-hpcport-frames", frames, flen, &r, &rl);
        submit += now_us() - s0;
        if (st != 202 || !(id = json_string(r, "batch"))) {
            fprintf(stderr, "endpoint-bench: batch answered %d: %s\n", st, r);
            exit(1);
        }
        free(r);
        char get[256];
        snprintf(get, sizeof get, "/v1/batches/%s?wait=60", id);
        while ((st = request(&c, "GET", get, NULL, NULL, 0, &r, &rl)) == 202)
            free(r);
        if (st != 200) {
            fprintf(stderr, "endpoint-bench: batch %s answered %d: %s\n", id, st, r);
            exit(1);
        }
        long ok = 0, k = 0;
        for (size_t p = 0; p + 5 <= rl; k++) {
            uint32_t len;
            memcpy(&len, r + p + 1, 4);
            len = ntohl(len);
            ok += r[p] == 0;
            p += 5 + len;
        }
        if (k != size || ok != size) {
            fprintf(stderr, "endpoint-bench: batch %s: %ld results, %ld ok, of %ld\n", id, k, ok,
                    size);
            exit(1);
        }
        calls += k;
        free(r);
        free(id);
    }
    double dt = now_us() - t0;
    printf("batch_calls=%ld\nbatch_seconds=%.3f\nbatch_calls_per_s=%.0f\nbatch_submit_ms=%.1f\n",
           calls, dt * 1e-6, calls / (dt * 1e-6), submit / batches * 1e-3);
    free(frames);
    conn_release(&c);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "tcp"))
        return cmd_tcp(atol(argv[2]));
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "call"))
        return cmd_call(argv[2], argv[3], argv[4], atol(argv[5]),
                        argc == 7 ? (size_t)atol(argv[6]) : 0);
    if (argc == 7 && !strcmp(argv[1], "batch"))
        return cmd_batch(argv[2], argv[3], argv[4], atol(argv[5]), atol(argv[6]));
    fprintf(stderr, "usage: endpoint-bench tcp N\n"
            "       endpoint-bench call ADDR TOKEN_FILE FUNCTION N [BYTES]\n"
            "       endpoint-bench batch ADDR TOKEN_FILE FUNCTION SIZE BATCHES\n");
    return 2;
}
