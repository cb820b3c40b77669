/* endpoint-serve.c - the endpoint's life: state directory and lock, token,
 * listening (TCP, TLS, unix socket), endpoint.json, signals, stop. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "endpoint-int.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define KEEP_RESULTS_S 600.0

void ep_log(struct ep_server *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(s->log, "%s endpoint %s: ", ts, s->cfg->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
    fflush(s->log);
}

/* Write a file atomically with mode 0600. */
static int write_private(const char *path, const char *data, size_t len, struct hp_err *err)
{
    char *tmp = hp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot write %s", tmp);
        free(tmp);
        return -1;
    }
    fchmod(fd, 0600);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off < len || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        hp_err_errno(err, "cannot write %s", path);
        if (off < len)
            close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static int make_token(struct ep_server *s, struct hp_err *err)
{
    unsigned char raw[32];
    char hex[66];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hp_err_errno(err, "getrandom");
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    SHA256((const unsigned char *)hex, 64, s->token_digest);
    hex[64] = '\n';
    hex[65] = '\0';
    int r = write_private(s->token_path, hex, 65, err);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    return r;
}

static int take_lock(struct ep_server *s, struct hp_err *err)
{
    char *path = hp_path_join(s->state_dir, "lock");
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (s->lock_fd < 0)
        return hp_err_errno(err, "cannot open the lock in %s", s->state_dir);
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    long pid = 0;
    char *text = NULL;
    if (hp_read_file(s->json_path, 1 << 20, &text, NULL) == 0) {
        json_t *j = json_loads(text, 0, NULL);
        pid = (long)json_integer_value(json_object_get(j, "pid"));
        json_decref(j);
    }
    free(text);
    if (pid)
        return hp_err_set(err, HP_EFAIL, "endpoint '%s' is already running (pid %ld, %s); stop "
                          "it first, or serve under another --name", s->cfg->name, pid,
                          s->json_path);
    return hp_err_set(err, HP_EFAIL, "endpoint '%s' is already running (its state directory %s "
                      "is locked); stop it first, or serve under another --name", s->cfg->name,
                      s->state_dir);
}

static int listen_unix(struct ep_server *s, struct hp_err *err)
{
    const char *path = s->cfg->listen.unix_path;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return hp_err_errno(err, "socket");
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            close(fd);
            return hp_err_set(err, HP_EFAIL, "cannot listen on %s: a file that is not a socket "
                              "is there; remove it or choose another path", path);
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            close(fd);
            return hp_err_set(err, HP_EFAIL, "cannot listen on %s: another process serves it",
                              path);
        }
        unlink(path);   /* stale, from an endpoint that was killed */
    }
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 256) < 0) {
        hp_err_errno(err, "cannot listen on %s", path);
        close(fd);
        return -1;
    }
    struct evconnlistener *l = evconnlistener_new(s->base, NULL, NULL,
                                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                  -1, fd);
    if (!l || !(s->bound = evhttp_bind_listener(s->http, l))) {
        if (l)
            evconnlistener_free(l);
        else
            close(fd);
        return hp_err_set(err, HP_ESYS, "cannot serve HTTP on %s", path);
    }
    return 0;
}

static int listen_tcp(struct ep_server *s, int *port, struct hp_err *err)
{
    const struct hp_ep_listen *l = &s->cfg->listen;
    s->bound = evhttp_bind_socket_with_handle(s->http, l->host, (ev_uint16_t)l->port);
    if (!s->bound)
        return hp_err_set(err, HP_EFAIL, "cannot listen on %s port %d: %s", l->host, l->port,
                          errno ? strerror(errno) : "bind failed");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return hp_err_errno(err, "getsockname");
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static char *endpoint_json(struct ep_server *s, int port)
{
    const struct hp_ep_config *c = s->cfg;
    json_t *listen = c->listen.unix_path ? json_pack("{s:s}", "unix", c->listen.unix_path)
                                         : json_pack("{s:s, s:i}", "host", c->listen.host,
                                                     "port", port);
    char started[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *fns = json_array();
    for (size_t i = 0; i < c->nfn; i++)
        json_array_append_new(fns, json_string(c->fn[i].name));
    json_t *j = json_pack("{s:s, s:I, s:o, s:b, s:s, s:s, s:s, s:o, s:s}", "name", c->name,
                          "pid", (json_int_t)getpid(), "listen", listen, "tls", s->ssl != NULL,
                          "version", HP_VERSION, "started", started, "config", c->file,
                          "functions", fns, "state_dir", s->state_dir);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char *withnl = hp_xasprintf("%s\n", text);
    free(text);
    return withnl;
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ep_server *s = arg;
    (void)fd;
    (void)what;
    if (ep_pool_idle(s) || hp_now() >= s->stop_deadline) {
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval tv = { 0, 50000 };
    evtimer_add(s->stop_timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ep_server *s = arg;
    (void)what;
    if (s->stopping)
        return;
    ep_log(s, "signal %d: stopping", (int)sig);
    s->stopping = true;
    evhttp_del_accept_socket(s->http, s->bound);
    s->bound = NULL;
    if (s->bound_unix)
        unlink(s->cfg->listen.unix_path);
    s->bound_unix = false;
    unlink(s->json_path);
    ep_pool_fail_queued(s, EPC_UNAVAILABLE, "the endpoint is shutting down");
    s->stop_deadline = hp_now() + 5;
    s->stop_timer = evtimer_new(s->base, on_stop_tick, s);
    struct timeval tv = { 0, 0 };
    evtimer_add(s->stop_timer, &tv);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ep_pool_sweep(arg, KEEP_RESULTS_S);
}

/* Let replies already queued reach their clients. */
static void flush_replies(struct ep_server *s)
{
    struct timeval tv = { 0, 200000 };
    event_base_loopexit(s->base, &tv);
    event_base_dispatch(s->base);
}

int hp_ep_serve(const struct hp_ep_config *cfg, const struct hp_ep_serve_opts *opts,
                struct hp_err *err)
{
    struct ep_server srv = { 0 }, *s = &srv;
    int ret = -1, port = 0;
    char *json = NULL;
    s->cfg = cfg;
    s->opts = opts;
    s->log = opts->log;
    s->lock_fd = -1;
    s->self_exe = opts->self_exe;
    s->started = hp_now();
    s->next_id = (uint64_t)time(NULL) << 24;
    s->state_dir = opts->state_dir ? hp_xstrdup(opts->state_dir)
                                   : hp_ep_state_dir(opts->name ? opts->name : cfg->name);
    s->json_path = hp_path_join(s->state_dir, "endpoint.json");
    s->token_path = hp_path_join(s->state_dir, "token");
    if (hp_mkdir_p(s->state_dir, 0700) < 0) {
        hp_err_errno(err, "cannot create %s", s->state_dir);
        goto out;
    }
    chmod(s->state_dir, 0700);
    if (take_lock(s, err) < 0)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    struct event_config *ec = event_config_new();
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!s->base) {
        hp_err_set(err, HP_ESYS, "cannot create the event loop");
        goto out;
    }
    if (ep_http_start(s, err) < 0)
        goto out;
    if (cfg->listen.unix_path ? listen_unix(s, err) : listen_tcp(s, &port, err))
        goto out;
    if (cfg->listen.unix_path)
        s->bound_unix = true;
    s->wrote_files = true;
    if (make_token(s, err) < 0)
        goto out;
    if (ep_pool_start(s, err) < 0)
        goto out;
    s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
    evsignal_add(s->sig_term, NULL);
    evsignal_add(s->sig_int, NULL);
    s->sweep = event_new(s->base, -1, EV_PERSIST, on_sweep, s);
    struct timeval every = { 30, 0 };
    evtimer_add(s->sweep, &every);
    json = endpoint_json(s, port);
    if (write_private(s->json_path, json, strlen(json), err) < 0)
        goto out;
    if (cfg->listen.unix_path)
        ep_log(s, "listening on unix:%s", cfg->listen.unix_path);
    else
        ep_log(s, "listening on %s port %d%s", cfg->listen.host, port, s->ssl ? " (TLS)" : "");
    if (opts->ready)
        opts->ready(json, opts->ready_arg);
    event_base_dispatch(s->base);
    /* stopping: calls still running fail, workers fini and exit */
    ep_pool_stop(s);
    flush_replies(s);
    ep_log(s, "stopped");
    ret = 0;
out:
    if (s->fns && ret < 0)
        ep_pool_stop(s);
    ep_http_free(s);
    ep_pool_free(s);
    if (s->wrote_files) {
        unlink(s->json_path);
        unlink(s->token_path);
    }
    if (s->bound_unix)
        unlink(cfg->listen.unix_path);
    if (s->sig_term)
        event_free(s->sig_term);
    if (s->sig_int)
        event_free(s->sig_int);
    if (s->sweep)
        event_free(s->sweep);
    if (s->stop_timer)
        event_free(s->stop_timer);
    if (s->base)
        event_base_free(s->base);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(json);
    free(s->state_dir);
    free(s->json_path);
    free(s->token_path);
    return ret;
}
