/* master.c - the connection master: the background process that keeps a
 * site's SSH connection, and the "master" transport that talks to it (the
 * protocol is described in master.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "master.h"
#include "auth.h"
#include "conn.h"
#include "site.h"
#include "ssh.h"
#include "sshconfig.h"
#include "util.h"
#include "banned.h"

#define HDR_MAX (1u << 20)
#define DATA_MAX ((size_t)1 << 31)

/* ================================================================ paths */

char *hp_master_dir(int create, struct hp_err *err)
{
    const char *rt = getenv("XDG_RUNTIME_DIR");
    char *dir;
    struct stat st;
    if (rt && rt[0] == '/' && stat(rt, &st) == 0 && S_ISDIR(st.st_mode))
        dir = hp_xasprintf("%s/hpcport", rt);
    else {
        const char *home = getenv("HOME");
        dir = hp_xasprintf("%s/.cache/hpcport", home && *home ? home : "/tmp");
    }
    if (create && hp_mkdir_p(dir, 0700) < 0) {
        hp_err_errno(err, "cannot create '%s'", dir);
        free(dir);
        return NULL;
    }
    if (stat(dir, &st) == 0) {
        if (st.st_uid != getuid() || (st.st_mode & 077)) {
            hp_err_set(err, HP_ESYS, "'%s' must belong to you and be closed to others (chmod "
                       "700 '%s')", dir, dir);
            free(dir);
            return NULL;
        }
    } else if (create) {
        hp_err_errno(err, "'%s'", dir);
        free(dir);
        return NULL;
    }
    return dir;
}

char *hp_master_socket_path(const struct hp_site *site, int create, struct hp_err *err)
{
    char key[17];
    hp_ssh_target_key(site, key);
    char *dir = hp_master_dir(create, err);
    if (!dir)
        return NULL;
    char *p = hp_xasprintf("%s/%s-%s.sock", dir, site->name, key);
    if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        free(p);
        p = hp_xasprintf("%s/m-%s.sock", dir, key);
    }
    free(dir);
    if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        hp_err_set(err, HP_ESYS, "control socket path '%s' is too long for a unix socket; set "
                   "XDG_RUNTIME_DIR to a shorter directory", p);
        free(p);
        return NULL;
    }
    return p;
}

/* ================================================================ frames */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t r = recv(fd, p, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Send hdr (its "len" set here) and len raw bytes in parts; passfd >= 0 is
 * attached to the first byte. */
static int send_frame(int fd, json_t *hdr, const struct hp_buf *raw, int passfd)
{
    json_object_set_new(hdr, "len", json_integer(raw ? (json_int_t)raw->len : 0));
    char *h = json_dumps(hdr, JSON_COMPACT);
    if (!h) {
        errno = EINVAL;
        return -1;
    }
    size_t hl = strlen(h);
    unsigned char pre[4] = { (unsigned char)(hl >> 24), (unsigned char)(hl >> 16),
                             (unsigned char)(hl >> 8), (unsigned char)hl };
    int ret = -1;
    if (passfd >= 0) {
        struct iovec iov = { .iov_base = pre, .iov_len = 4 };
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof(u));
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passfd, sizeof(int));
        ssize_t w;
        while ((w = sendmsg(fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
            ;
        if (w != 4)
            goto out;
    } else if (write_all(fd, pre, 4) < 0) {
        goto out;
    }
    if (write_all(fd, h, hl) < 0)
        goto out;
    if (raw && raw->len && write_all(fd, raw->buf, raw->len) < 0)
        goto out;
    ret = 0;
out:
    free(h);
    return ret;
}

/* Receive one frame; *passfd gets a passed descriptor (or -1) when not
 * NULL. Returns 0, or -1 with errno (ECONNRESET at end of stream). */
static int recv_frame(int fd, json_t **hdr, struct hp_buf *raw, int *passfd)
{
    unsigned char pre[4];
    if (passfd)
        *passfd = -1;
    struct iovec iov = { .iov_base = pre, .iov_len = 4 };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf) };
    ssize_t r;
    while ((r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (r <= 0) {
        if (r == 0)
            errno = ECONNRESET;
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got;
            memcpy(&got, CMSG_DATA(c), sizeof(int));
            if (passfd)
                *passfd = got;
            else
                close(got);
        }
    }
    if (r < 4 && read_all(fd, pre + r, (size_t)(4 - r)) < 0)
        return -1;
    uint32_t hl = (uint32_t)pre[0] << 24 | (uint32_t)pre[1] << 16 | (uint32_t)pre[2] << 8 | pre[3];
    if (hl == 0 || hl > HDR_MAX) {
        errno = EPROTO;
        return -1;
    }
    char *h = hp_xmalloc(hl + 1);
    if (read_all(fd, h, hl) < 0) {
        free(h);
        return -1;
    }
    h[hl] = '\0';
    json_error_t je;
    *hdr = json_loads(h, 0, &je);
    free(h);
    if (!json_is_object(*hdr)) {
        json_decref(*hdr);
        *hdr = NULL;
        errno = EPROTO;
        return -1;
    }
    json_int_t len = json_integer_value(json_object_get(*hdr, "len"));
    if (len < 0 || (size_t)len > DATA_MAX) {
        json_decref(*hdr);
        *hdr = NULL;
        errno = EPROTO;
        return -1;
    }
    hp_buf_reset(raw);
    if (len) {
        hp_buf_grow(raw, (size_t)len);
        if (read_all(fd, raw->buf, (size_t)len) < 0) {
            json_decref(*hdr);
            *hdr = NULL;
            return -1;
        }
        hp_buf_setlen(raw, (size_t)len);
    }
    return 0;
}

/* Split raw into n NUL-terminated strings; returns the offset after them or
 * -1 when there are fewer. */
static long take_strings(const struct hp_buf *raw, size_t n, const char **out)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = raw->buf + off;
        const char *nul = memchr(s, '\0', raw->len - off);
        if (!nul)
            return -1;
        out[i] = s;
        off = (size_t)(nul - raw->buf) + 1;
    }
    return (long)off;
}

static void add_string(struct hp_buf *raw, const char *s)
{
    hp_buf_add(raw, s, strlen(s) + 1);
}

static int peer_is_us(int fd)
{
    struct ucred cr;
    socklen_t l = sizeof(cr);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == getuid();
}

/* ================================================================ server */

struct forward {
    int lfd;
    int lport;
    char *host;
    int port;
    char *spec;
};

struct master {
    struct hp_ssh *ssh;
    char *site;
    char *path;
    ino_t ino;
    int lfd;
    double idle_timeout;
    double started;
    double last_activity;
    struct forward *fw;
    size_t nfw;
    pthread_mutex_t mu;
    int clients;
    unsigned requests;
    int stop;
};

static int reply_error(int fd, const struct hp_err *e, const char *site)
{
    json_t *h = json_pack("{s:b, s:i}", "ok", 0, "code", e->code ? e->code : HP_ESITE);
    struct hp_buf raw = HP_BUF_INIT;
    hp_buf_adds(&raw, e->msg);
    if (strstr(e->msg, "could not be re-established"))
        hp_buf_addf(&raw, "; run 'hpcport connect %s' to log in again", site);
    hp_buf_addch(&raw, '\0');
    int r = send_frame(fd, h, &raw, -1);
    json_decref(h);
    hp_buf_release(&raw);
    return r;
}

static int reply_ok(int fd, json_t *h, const struct hp_buf *raw, int passfd)
{
    json_object_set_new(h, "ok", json_true());
    int r = send_frame(fd, h, raw, passfd);
    json_decref(h);
    return r;
}

static json_t *status_json(struct master *m, struct hp_buf *raw)
{
    char *down = hp_ssh_down_reason(m->ssh);
    pthread_mutex_lock(&m->mu);
    double idle = m->clients > 1 ? 0 : hp_wall_now() - m->last_activity;
    json_t *h = json_pack("{s:i, s:I, s:s, s:f, s:i, s:i, s:i, s:i, s:f, s:f}", "v", 1,
                          "pid", (json_int_t)getpid(), "state", down ? "down" : "up",
                          "started", m->started, "requests", (int)m->requests,
                          "clients", m->clients, "tunnels", hp_ssh_tunnels(m->ssh),
                          "reconnects", (int)hp_ssh_reconnects(m->ssh), "idle", idle,
                          "idle_timeout", m->idle_timeout);
    pthread_mutex_unlock(&m->mu);
    if (raw) {
        add_string(raw, m->site);
        add_string(raw, hp_ssh_target(m->ssh));
        add_string(raw, down ? down : "");
        struct hp_buf f = HP_BUF_INIT;
        for (size_t i = 0; i < m->nfw; i++)
            hp_buf_addf(&f, "%s%s", i ? ";" : "", m->fw[i].spec);
        add_string(raw, f.buf);
        hp_buf_release(&f);
    }
    free(down);
    return h;
}

static int serve_exec(struct master *m, int fd, json_t *rq, const struct hp_buf *raw)
{
    struct hp_err e;
    hp_err_init(&e);
    json_int_t argc = json_integer_value(json_object_get(rq, "argc"));
    json_int_t inlen = json_integer_value(json_object_get(rq, "stdin"));
    if (argc < 1 || argc > 1 << 20 || inlen < 0) {
        hp_err_set(&e, HP_EINTERNAL, "master: bad exec request");
        return reply_error(fd, &e, m->site);
    }
    const char **argv = hp_xcalloc((size_t)argc + 1, sizeof(char *));
    long off = take_strings(raw, (size_t)argc, argv);
    if (off < 0 || raw->len - (size_t)off != (size_t)inlen) {
        free(argv);
        hp_err_set(&e, HP_EINTERNAL, "master: bad exec request");
        return reply_error(fd, &e, m->site);
    }
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    out.cap = (size_t)json_integer_value(json_object_get(rq, "cap_out"));
    eo.cap = (size_t)json_integer_value(json_object_get(rq, "cap_err"));
    int want_out = json_is_true(json_object_get(rq, "want_out"));
    int want_err = json_is_true(json_object_get(rq, "want_err"));
    int flags = (int)json_integer_value(json_object_get(rq, "flags"));
    double timeout = json_number_value(json_object_get(rq, "timeout"));
    int status = 0, r;
    r = hp_ssh_exec(m->ssh, argv, raw->buf + off, (size_t)inlen, want_out ? &out : NULL,
                    want_err ? &eo : NULL, &status, timeout,
                    (flags & HP_EXEC_IDEMPOTENT) ? HP_SSH_EXEC_IDEMPOTENT : 0, &e);
    free(argv);
    if (r < 0) {
        hp_buf_release(&out);
        hp_buf_release(&eo);
        return reply_error(fd, &e, m->site);
    }
    json_t *h = json_pack("{s:i, s:I, s:I, s:b, s:b}", "status", status, "out",
                          (json_int_t)out.len, "err", (json_int_t)eo.len, "out_trunc",
                          out.truncated, "err_trunc", eo.truncated);
    struct hp_buf both = HP_BUF_INIT;
    hp_buf_add(&both, out.buf, out.len);
    hp_buf_add(&both, eo.buf, eo.len);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    r = reply_ok(fd, h, &both, -1);
    hp_buf_release(&both);
    return r;
}

static int serve_xfer(struct master *m, int fd, int put, json_t *rq, const struct hp_buf *raw)
{
    struct hp_err e;
    hp_err_init(&e);
    const char *p[2];
    if (take_strings(raw, 2, p) < 0 || p[0][0] != '/') {
        hp_err_set(&e, HP_EINTERNAL, "master: bad transfer request");
        return reply_error(fd, &e, m->site);
    }
    int flags = (int)json_integer_value(json_object_get(rq, "flags"));
    int r = put ? hp_ssh_put(m->ssh, p[0], p[1], flags, &e)
                : hp_ssh_get(m->ssh, p[1], p[0], flags, &e);
    if (r < 0)
        return reply_error(fd, &e, m->site);
    return reply_ok(fd, json_object(), NULL, -1);
}

static int serve_tunnel(struct master *m, int fd, json_t *rq, const struct hp_buf *raw)
{
    struct hp_err e;
    hp_err_init(&e);
    const char *host;
    int port = (int)json_integer_value(json_object_get(rq, "port"));
    if (take_strings(raw, 1, &host) < 0 || port < 1 || port > 65535) {
        hp_err_set(&e, HP_EINTERNAL, "master: bad tunnel request");
        return reply_error(fd, &e, m->site);
    }
    int t = hp_ssh_tunnel(m->ssh, host, port, &e);
    if (t < 0)
        return reply_error(fd, &e, m->site);
    int r = reply_ok(fd, json_object(), NULL, t);
    close(t);
    return r;
}

struct client {
    struct master *m;
    int fd;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct master *m = c->m;
    int fd = c->fd;
    free(c);
    struct hp_buf raw = HP_BUF_INIT;
    int c_used = 0;
    for (;;) {
        json_t *rq = NULL;
        if (recv_frame(fd, &rq, &raw, NULL) < 0)
            break;
        const char *op = json_string_value(json_object_get(rq, "op"));
        /* looking at a master (status, connect --list) does not keep it
         * alive; using it does */
        int use = op && strcmp(op, "status") != 0;
        pthread_mutex_lock(&m->mu);
        m->requests++;
        if (use)
            m->last_activity = hp_wall_now();
        pthread_mutex_unlock(&m->mu);
        int r = 0;
        if (!op) {
            r = -1;
        } else if (!strcmp(op, "hello") || !strcmp(op, "status")) {
            struct hp_buf sraw = HP_BUF_INIT;
            json_t *h = status_json(m, !strcmp(op, "status") ? &sraw : NULL);
            r = reply_ok(fd, h, &sraw, -1);
            hp_buf_release(&sraw);
        } else if (!strcmp(op, "exec")) {
            r = serve_exec(m, fd, rq, &raw);
        } else if (!strcmp(op, "put") || !strcmp(op, "get")) {
            r = serve_xfer(m, fd, op[0] == 'p', rq, &raw);
        } else if (!strcmp(op, "tunnel")) {
            r = serve_tunnel(m, fd, rq, &raw);
        } else if (!strcmp(op, "stop")) {
            pthread_mutex_lock(&m->mu);
            m->stop = 1;
            pthread_mutex_unlock(&m->mu);
            r = reply_ok(fd, json_object(), NULL, -1);
        } else {
            struct hp_err e;
            hp_err_init(&e);
            hp_err_set(&e, HP_EINTERNAL, "master: unknown request '%s'", op);
            r = reply_error(fd, &e, m->site);
        }
        json_decref(rq);
        pthread_mutex_lock(&m->mu);
        if (use) {
            m->last_activity = hp_wall_now();
            c_used = 1;
        }
        pthread_mutex_unlock(&m->mu);
        if (r < 0)
            break;
    }
    hp_buf_release(&raw);
    close(fd);
    pthread_mutex_lock(&m->mu);
    m->clients--;
    if (c_used)
        m->last_activity = hp_wall_now();
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int listen_unix(const char *path, struct hp_err *err)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hp_err_errno(err, "socket");
    /* a socket nobody answers on is left by a master that died */
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        close(fd);
        return hp_err_set(err, HP_ESITE, "a master already listens on '%s'", path);
    }
    if (errno == ECONNREFUSED)
        unlink(path);
    close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hp_err_errno(err, "socket");
    mode_t old = umask(077);
    int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
    umask(old);
    if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
        hp_err_errno(err, "cannot listen on '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int parse_forward(const char *spec, struct forward *f, struct hp_err *err)
{
    memset(f, 0, sizeof(*f));
    f->lfd = -1;
    const char *c = strchr(spec, ':');
    char *end;
    long lp = c ? strtol(spec, &end, 10) : 0;
    if (!c || end != c || lp < 1 || lp > 65535)
        goto bad;
    char *u = NULL;
    if (hp_ssh_parse_hop(c + 1, &u, &f->host, &f->port, err) < 0 || u || !f->port) {
        free(u);
        free(f->host);
        f->host = NULL;
        hp_err_init(err);
        goto bad;
    }
    f->lport = (int)lp;
    f->spec = hp_xstrdup(spec);
    return 0;
bad:
    return hp_err_set(err, HP_EUSAGE, "--forward '%s' is not LPORT:HOST:PORT", spec);
}

static int listen_tcp(struct forward *f, struct hp_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hp_err_errno(err, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->lport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
        hp_err_errno(err, "--forward %s: cannot listen on 127.0.0.1 port %d", f->spec, f->lport);
        close(fd);
        return -1;
    }
    f->lfd = fd;
    return 0;
}

static void serve(struct master *m)
{
    double last_check = hp_now(), check_every = 5;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        int stop = m->stop, clients = m->clients;
        double idle = hp_wall_now() - m->last_activity;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        if (m->idle_timeout > 0 && clients == 0 && hp_ssh_tunnels(m->ssh) == 0 &&
            idle > m->idle_timeout)
            break;
        struct stat st;
        if (stat(m->path, &st) < 0 || st.st_ino != m->ino)
            break;      /* our socket was removed or replaced */
        struct pollfd pf[1 + 16];
        size_t n = 0;
        pf[n++] = (struct pollfd){ .fd = m->lfd, .events = POLLIN };
        for (size_t i = 0; i < m->nfw && n < 17; i++)
            pf[n++] = (struct pollfd){ .fd = m->fw[i].lfd, .events = POLLIN };
        int r = poll(pf, n, 500);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && (pf[0].revents & POLLIN)) {
            int cfd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd >= 0 && !peer_is_us(cfd)) {
                close(cfd);
            } else if (cfd >= 0) {
                struct client *c = hp_xmalloc(sizeof(*c));
                c->m = m;
                c->fd = cfd;
                pthread_t th;
                pthread_mutex_lock(&m->mu);
                m->clients++;
                pthread_mutex_unlock(&m->mu);
                if (pthread_create(&th, NULL, client_main, c) != 0) {
                    close(cfd);
                    free(c);
                    pthread_mutex_lock(&m->mu);
                    m->clients--;
                    pthread_mutex_unlock(&m->mu);
                } else {
                    pthread_detach(th);
                }
            }
        }
        for (size_t i = 1; r > 0 && i < n; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            struct forward *f = &m->fw[i - 1];
            int cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd < 0)
                continue;
            struct hp_err e;
            hp_err_init(&e);
            hp_ssh_tunnel_fd(m->ssh, f->host, f->port, cfd, &e);   /* closes cfd on failure */
            pthread_mutex_lock(&m->mu);
            m->last_activity = hp_wall_now();
            pthread_mutex_unlock(&m->mu);
        }
        if (hp_now() - last_check >= check_every) {
            struct hp_err e;
            hp_err_init(&e);
            /* a login that keeps failing (it needs a code nobody can type)
             * is retried less and less often, not every few seconds */
            if (hp_ssh_check(m->ssh, &e) < 0)
                check_every = check_every * 2 > 300 ? 300 : check_every * 2;
            else
                check_every = 5;
            last_check = hp_now();
        }
    }
    /* stop taking requests; a request still being served ends with us */
    struct stat st;
    if (stat(m->path, &st) == 0 && st.st_ino == m->ino)
        unlink(m->path);
    close(m->lfd);
    for (double end = hp_now() + 2; hp_now() < end;) {
        pthread_mutex_lock(&m->mu);
        int c = m->clients;
        pthread_mutex_unlock(&m->mu);
        if (c == 0)
            break;
        usleep(20000);
    }
    pthread_mutex_lock(&m->mu);
    int c = m->clients;
    pthread_mutex_unlock(&m->mu);
    if (c == 0)
        hp_ssh_close(m->ssh);
}

/* ================================================================ start/stop */

static void report(int fd, int code, const char *msg)
{
    char *s = hp_xasprintf("%d %s", code, msg);
    if (write(fd, s, strlen(s)) < 0) {
        /* the parent went away: nothing to tell */
    }
    free(s);
}

int hp_master_start(const struct hp_site *site, const struct hp_master_opts *o, long *pid,
                    struct hp_err *err)
{
    if (!site->login_host)
        return hp_err_set(err, HP_ESITE, "site '%s' is local: there is no connection to keep",
                          site->name);
    char *path = hp_master_socket_path(site, 1, err);
    if (!path)
        return -1;
    struct hp_master_info info;
    int ret = -1;
    int q = hp_master_query(path, &info, err);
    if (q < 0) {
        free(path);
        return -1;
    }
    if (q == 0) {
        int up = !strcmp(info.state, "up");
        *pid = info.pid;
        hp_master_info_release(&info);
        if (up) {
            free(path);
            return 1;
        }
        /* a master that lost its connection for good: replace it */
        hp_master_stop(site, err);
        hp_err_init(err);
    }
    struct forward *fw = NULL;
    size_t nfw = 0;
    for (size_t i = 0; o && o->forwards && o->forwards[i]; i++) {
        fw = hp_xrealloc(fw, (nfw + 1) * sizeof(*fw));
        if (parse_forward(o->forwards[i], &fw[nfw], err) < 0)
            goto out;
        nfw++;
    }
    if (nfw > 16) {
        hp_err_set(err, HP_EUSAGE, "at most 16 --forward");
        goto out;
    }
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0) {
        hp_err_errno(err, "pipe");
        goto out;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        hp_err_errno(err, "fork");
        close(rp[0]);
        close(rp[1]);
        goto out;
    }
    if (child == 0) {
        close(rp[0]);
        signal(SIGPIPE, SIG_IGN);
        struct hp_err e;
        hp_err_init(&e);
        struct master m = { .lfd = -1 };
        pthread_mutex_init(&m.mu, NULL);
        m.ssh = hp_ssh_open(site, NULL, &e);
        if (!m.ssh) {
            report(rp[1], e.code ? e.code : HP_ESITE, e.msg);
            _exit(1);
        }
        for (size_t i = 0; i < nfw; i++)
            if (listen_tcp(&fw[i], &e) < 0) {
                report(rp[1], e.code, e.msg);
                _exit(1);
            }
        m.lfd = listen_unix(path, &e);
        struct stat st;
        if (m.lfd < 0 || stat(path, &st) < 0) {
            report(rp[1], e.code ? e.code : HP_ESYS, e.code ? e.msg : "cannot listen");
            _exit(1);
        }
        m.ino = st.st_ino;
        m.site = hp_xstrdup(site->name);
        m.path = path;
        m.fw = fw;
        m.nfw = nfw;
        m.idle_timeout = o && o->idle_timeout >= 0 ? o->idle_timeout
                                                   : nfw ? 0 : HP_MASTER_IDLE_DEFAULT;
        m.started = m.last_activity = hp_wall_now();
        /* from now on nothing may ask the user anything */
        hp_auth_disable_prompts();
        setsid();
        if (chdir("/") < 0) {
            /* clients send absolute paths: the directory does not matter */
        }
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            if (nul > 2)
                close(nul);
        }
        char ok[32];
        snprintf(ok, sizeof(ok), "%ld", (long)getpid());
        report(rp[1], 0, ok);
        close(rp[1]);
        serve(&m);
        _exit(0);
    }
    close(rp[1]);
    struct hp_buf msg = HP_BUF_INIT;
    char buf[1024];
    for (;;) {
        ssize_t r = read(rp[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        hp_buf_add(&msg, buf, (size_t)r);
    }
    close(rp[0]);
    int code = -1;
    char *rest = NULL;
    if (msg.len)
        code = (int)strtol(msg.buf, &rest, 10);
    if (code == 0) {
        *pid = strtol(rest, NULL, 10);
        ret = 0;
    } else {
        int st;
        waitpid(child, &st, 0);
        if (code > 0)
            hp_err_set(err, code, "%s", rest && *rest == ' ' ? rest + 1 : rest ? rest : "");
        else
            hp_err_set(err, HP_ESYS, "the connection master exited before it was ready");
    }
    hp_buf_release(&msg);
out:
    for (size_t i = 0; i < nfw; i++) {
        free(fw[i].host);
        free(fw[i].spec);
    }
    free(fw);
    free(path);
    return ret;
}

static int connect_unix(const char *path, int *fd, struct hp_err *err)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return hp_err_errno(err, "socket");
    if (connect(*fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        if (e == ENOENT || e == ECONNREFUSED) {
            if (e == ECONNREFUSED)
                unlink(path);   /* left by a master that died */
            return 1;
        }
        errno = e;
        return hp_err_errno(err, "cannot reach the connection master at '%s'", path);
    }
    if (!peer_is_us(*fd)) {
        close(*fd);
        *fd = -1;
        return hp_err_set(err, HP_ESYS, "the process listening on '%s' is not yours; remove "
                          "the socket", path);
    }
    return 0;
}

/* One request/reply on fd; reply error frames become err. *rep is set on
 * success (caller decrefs). */
static int roundtrip(int fd, json_t *rq, const struct hp_buf *raw, json_t **rep,
                     struct hp_buf *rraw, int *passfd, const char *site, struct hp_err *err)
{
    *rep = NULL;
    if (send_frame(fd, rq, raw, -1) < 0 || recv_frame(fd, rep, rraw, passfd) < 0)
        return hp_err_errno(err, "the connection master of site '%s' stopped answering "
                            "(run 'hpcport connect %s' again)", site, site);
    if (!json_is_true(json_object_get(*rep, "ok"))) {
        int code = (int)json_integer_value(json_object_get(*rep, "code"));
        hp_err_set(err, code ? code : HP_ESITE, "%.*s", (int)rraw->len, rraw->buf);
        json_decref(*rep);
        *rep = NULL;
        return -1;
    }
    return 0;
}

int hp_master_query(const char *path, struct hp_master_info *info, struct hp_err *err)
{
    memset(info, 0, sizeof(*info));
    int fd;
    int r = connect_unix(path, &fd, err);
    if (r != 0)
        return r;
    json_t *rq = json_pack("{s:s}", "op", "status"), *rep = NULL;
    struct hp_buf raw = HP_BUF_INIT;
    r = roundtrip(fd, rq, NULL, &rep, &raw, NULL, "?", err);
    json_decref(rq);
    close(fd);
    if (r < 0) {
        hp_buf_release(&raw);
        return -1;
    }
    const char *s[4] = { "", "", "", "" };
    take_strings(&raw, 4, s);
    info->site = hp_xstrdup(s[0]);
    info->target = hp_xstrdup(s[1]);
    info->last_error = hp_xstrdup(s[2]);
    info->forwards = hp_xstrdup(s[3]);
    info->socket = hp_xstrdup(path);
    const char *st = json_string_value(json_object_get(rep, "state"));
    info->state = hp_xstrdup(st ? st : "?");
    info->pid = (long)json_integer_value(json_object_get(rep, "pid"));
    info->started = json_number_value(json_object_get(rep, "started"));
    info->idle = json_number_value(json_object_get(rep, "idle"));
    info->idle_timeout = json_number_value(json_object_get(rep, "idle_timeout"));
    info->requests = (unsigned)json_integer_value(json_object_get(rep, "requests"));
    info->reconnects = (unsigned)json_integer_value(json_object_get(rep, "reconnects"));
    /* the status request itself is one client */
    info->clients = (int)json_integer_value(json_object_get(rep, "clients")) - 1;
    info->tunnels = (int)json_integer_value(json_object_get(rep, "tunnels"));
    json_decref(rep);
    hp_buf_release(&raw);
    return 0;
}

void hp_master_info_release(struct hp_master_info *i)
{
    if (!i)
        return;
    free(i->site);
    free(i->socket);
    free(i->target);
    free(i->state);
    free(i->last_error);
    free(i->forwards);
    memset(i, 0, sizeof(*i));
}

int hp_master_stop(const struct hp_site *site, struct hp_err *err)
{
    char *path = hp_master_socket_path(site, 0, err);
    if (!path)
        return -1;
    int fd;
    int r = connect_unix(path, &fd, err);
    if (r != 0) {
        free(path);
        return r;
    }
    struct hp_master_info info;
    long pid = 0;
    if (hp_master_query(path, &info, err) == 0) {
        pid = info.pid;
        hp_master_info_release(&info);
    }
    hp_err_init(err);
    json_t *rq = json_pack("{s:s}", "op", "stop"), *rep = NULL;
    struct hp_buf raw = HP_BUF_INIT;
    r = roundtrip(fd, rq, NULL, &rep, &raw, NULL, site->name, err);
    json_decref(rq);
    json_decref(rep);
    hp_buf_release(&raw);
    close(fd);
    if (r < 0) {
        free(path);
        return -1;
    }
    /* wait (a little) until it is gone, so that a following connect starts
     * a fresh one */
    for (double end = hp_now() + 5; hp_now() < end; usleep(20000)) {
        struct stat st;
        if (stat(path, &st) < 0 && (pid <= 0 || kill((pid_t)pid, 0) < 0))
            break;
    }
    free(path);
    return 0;
}

int hp_master_list(struct hp_master_info **out, size_t *n, struct hp_err *err)
{
    *out = NULL;
    *n = 0;
    char *dir = hp_master_dir(0, err);
    if (!dir)
        return -1;
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return 0;
    }
    size_t alloc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!hp_ends_with(de->d_name, ".sock"))
            continue;
        char *p = hp_path_join(dir, de->d_name);
        struct hp_master_info info;
        struct hp_err e;
        hp_err_init(&e);
        if (hp_master_query(p, &info, &e) == 0) {
            HP_ALLOC_GROW(*out, *n + 1, alloc);
            (*out)[(*n)++] = info;
        }
        free(p);
    }
    closedir(d);
    free(dir);
    return 0;
}

/* ================================================================ client transport */

struct mconn {
    int fd;
    char *site;
};

static int mc_exec_ex(struct hp_conn *c, const char *const *argv, const void *in, size_t inlen,
                      struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                      int flags, struct hp_err *err)
{
    struct mconn *mc = c->impl;
    size_t argc = 0;
    struct hp_buf raw = HP_BUF_INIT, rraw = HP_BUF_INIT;
    for (; argv[argc]; argc++)
        add_string(&raw, argv[argc]);
    if (!argc)
        return hp_err_set(err, HP_EINTERNAL, "exec: empty argv");
    if (inlen)
        hp_buf_add(&raw, in, inlen);
    size_t cap_out = out ? (out->cap ? out->cap : HP_CONN_OUTPUT_CAP) : 0;
    size_t cap_err = errout ? (errout->cap ? errout->cap : HP_CONN_OUTPUT_CAP) : 0;
    if (out)
        cap_out = cap_out > out->len ? cap_out - out->len : 0;
    if (errout)
        cap_err = cap_err > errout->len ? cap_err - errout->len : 0;
    json_t *rq = json_pack("{s:s, s:I, s:I, s:f, s:i, s:b, s:b, s:I, s:I}", "op", "exec",
                           "argc", (json_int_t)argc, "stdin", (json_int_t)inlen, "timeout",
                           timeout, "flags", flags, "want_out", out != NULL, "want_err",
                           errout != NULL, "cap_out", (json_int_t)cap_out, "cap_err",
                           (json_int_t)cap_err);
    json_t *rep;
    int r = roundtrip(mc->fd, rq, &raw, &rep, &rraw, NULL, mc->site, err);
    json_decref(rq);
    hp_buf_release(&raw);
    if (r == 0) {
        size_t a = (size_t)json_integer_value(json_object_get(rep, "out"));
        size_t b = (size_t)json_integer_value(json_object_get(rep, "err"));
        if (a + b != rraw.len) {
            r = hp_err_set(err, HP_EINTERNAL, "master: malformed exec reply");
        } else {
            if (out) {
                hp_buf_add(out, rraw.buf, a);
                out->truncated |= json_is_true(json_object_get(rep, "out_trunc"));
            }
            if (errout) {
                hp_buf_add(errout, rraw.buf + a, b);
                errout->truncated |= json_is_true(json_object_get(rep, "err_trunc"));
            }
            *status = (int)json_integer_value(json_object_get(rep, "status"));
        }
        json_decref(rep);
    }
    hp_buf_release(&rraw);
    return r;
}

static int mc_exec(struct hp_conn *c, const char *const *argv, const void *in, size_t inlen,
                   struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                   struct hp_err *err)
{
    return mc_exec_ex(c, argv, in, inlen, out, errout, status, timeout, 0, err);
}

static char *absolute(const char *p)
{
    if (p[0] == '/')
        return hp_xstrdup(p);
    char *cwd = getcwd(NULL, 0);
    char *a = hp_path_join(cwd ? cwd : "/", p);
    free(cwd);
    return a;
}

static int mc_xfer(struct hp_conn *c, int put, const char *local, const char *remote, int flags,
                   struct hp_err *err)
{
    struct mconn *mc = c->impl;
    struct hp_buf raw = HP_BUF_INIT, rraw = HP_BUF_INIT;
    char *abs = absolute(local);
    add_string(&raw, abs);
    add_string(&raw, remote);
    free(abs);
    json_t *rq = json_pack("{s:s, s:i}", "op", put ? "put" : "get", "flags", flags), *rep;
    int r = roundtrip(mc->fd, rq, &raw, &rep, &rraw, NULL, mc->site, err);
    json_decref(rq);
    json_decref(rep);
    hp_buf_release(&raw);
    hp_buf_release(&rraw);
    return r;
}

static int mc_put(struct hp_conn *c, const char *local, const char *remote, int flags,
                  struct hp_err *err)
{
    return mc_xfer(c, 1, local, remote, flags, err);
}

static int mc_get(struct hp_conn *c, const char *remote, const char *local, int flags,
                  struct hp_err *err)
{
    return mc_xfer(c, 0, local, remote, flags, err);
}

static int mc_tunnel(struct hp_conn *c, const char *host, int port, struct hp_err *err)
{
    struct mconn *mc = c->impl;
    struct hp_buf raw = HP_BUF_INIT, rraw = HP_BUF_INIT;
    add_string(&raw, host);
    json_t *rq = json_pack("{s:s, s:i}", "op", "tunnel", "port", port), *rep;
    int fd = -1;
    int r = roundtrip(mc->fd, rq, &raw, &rep, &rraw, &fd, mc->site, err);
    json_decref(rq);
    json_decref(rep);
    hp_buf_release(&raw);
    hp_buf_release(&rraw);
    if (r == 0 && fd < 0)
        return hp_err_set(err, HP_EINTERNAL, "master: no descriptor in the tunnel reply");
    return r < 0 ? -1 : fd;
}

static void mc_close(struct hp_conn *c)
{
    struct mconn *mc = c->impl;
    if (!mc)
        return;
    close(mc->fd);
    free(mc->site);
    free(mc);
}

static const struct hp_conn_ops master_ops = {
    .name = "master",
    .exec = mc_exec,
    .put = mc_put,
    .get = mc_get,
    .tunnel = mc_tunnel,
    .close = mc_close,
    .exec_ex = mc_exec_ex,
};

struct hp_conn *hp_master_conn(const struct hp_site *site, int *none, struct hp_err *err)
{
    *none = 0;
    struct hp_err e;
    hp_err_init(&e);
    char *path = hp_master_socket_path(site, 0, &e);
    if (!path) {
        *none = 1;  /* no usable socket directory: no master either */
        return NULL;
    }
    int fd;
    int r = connect_unix(path, &fd, err);
    free(path);
    if (r == 1) {
        *none = 1;
        return NULL;
    }
    if (r < 0)
        return NULL;
    json_t *rq = json_pack("{s:s, s:i}", "op", "hello", "v", 1), *rep;
    struct hp_buf rraw = HP_BUF_INIT;
    r = roundtrip(fd, rq, NULL, &rep, &rraw, NULL, site->name, err);
    json_decref(rq);
    json_decref(rep);
    hp_buf_release(&rraw);
    if (r < 0) {
        close(fd);
        return NULL;
    }
    struct mconn *mc = hp_xcalloc(1, sizeof(*mc));
    mc->fd = fd;
    mc->site = hp_xstrdup(site->name);
    struct hp_conn *c = hp_xcalloc(1, sizeof(*c));
    c->ops = &master_ops;
    c->site = hp_xstrdup(site->name);
    c->impl = mc;
    return c;
}
