/* conn.c - choosing a site's transport, the wrappers, and the local
 * transport (fork/exec with pipes and poll; copies through xfer.c). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "conn.h"
#include "master.h"
#include "site.h"
#include "ssh.h"
#include "util.h"
#include "xfer.h"
#include "banned.h"

void hp_conn_output_add(struct hp_buf *b, const void *data, size_t len)
{
    size_t cap = b->cap ? b->cap : HP_CONN_OUTPUT_CAP;
    if (b->len >= cap) {
        if (len)
            b->truncated = true;
        return;
    }
    if (len > cap - b->len) {
        len = cap - b->len;
        b->truncated = true;
    }
    hp_buf_add(b, data, len);
}

/* ================================================================ local */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* write() to a pipe whose reader may have exited, without dying of
 * SIGPIPE (and without changing the process's disposition of it). */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigset_t pending;
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    ssize_t w = write(fd, buf, len);
    int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = { 0, 0 };
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

static int local_exec(struct hp_conn *c, const char *const *argv, const void *in, size_t inlen,
                      struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                      struct hp_err *err)
{
    (void)c;
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, pex[2] = { -1, -1 };
    if (!argv || !argv[0])
        return hp_err_set(err, HP_EINTERNAL, "exec: empty argv");
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0 ||
        pipe2(pex, O_CLOEXEC) < 0) {
        hp_err_errno(err, "pipe");
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        hp_err_errno(err, "fork");
        goto fail;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        int e = errno;
        if (write(pex[1], &e, sizeof(e)) < 0) {
            /* nothing more to say */
        }
        _exit(127);
    }
    setpgid(pid, pid);
    close_fd(&pin[0]);
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    close_fd(&pex[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    if (!inlen)
        close_fd(&pin[1]);
    size_t inoff = 0;
    double deadline = timeout > 0 ? hp_now() + timeout : 0;
    int timed_out = 0;
    char buf[65536];
    while (pout[0] >= 0 || perr[0] >= 0 || pex[0] >= 0) {
        struct pollfd pf[4] = {
            { .fd = pout[0], .events = POLLIN },
            { .fd = perr[0], .events = POLLIN },
            { .fd = pex[0], .events = POLLIN },
            { .fd = pin[1], .events = POLLOUT },
        };
        int ms = -1;
        if (deadline) {
            ms = (int)((deadline - hp_now()) * 1000);
            if (ms <= 0) {
                timed_out = 1;
                break;
            }
        }
        int r = poll(pf, 4, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            hp_err_errno(err, "poll");
            break;
        }
        for (int k = 0; k < 3; k++) {
            if (!pf[k].revents)
                continue;
            int *fd = k == 0 ? &pout[0] : k == 1 ? &perr[0] : &pex[0];
            ssize_t n = read(*fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close_fd(fd);
                continue;
            }
            if (k == 0 && out)
                hp_conn_output_add(out, buf, (size_t)n);
            else if (k == 1 && errout)
                hp_conn_output_add(errout, buf, (size_t)n);
            else if (k == 2 && (size_t)n >= sizeof(int) && errout) {
                int e;
                memcpy(&e, buf, sizeof(e));
                char *m = hp_xasprintf("hpcport: cannot run '%s': %s\n", argv[0], strerror(e));
                hp_conn_output_add(errout, m, strlen(m));
                free(m);
            }
        }
        if (pin[1] >= 0 && pf[3].revents) {
            if (pf[3].revents & (POLLERR | POLLHUP)) {
                close_fd(&pin[1]);
            } else {
                ssize_t w = write_nosigpipe(pin[1], (const char *)in + inoff, inlen - inoff);
                if (w > 0)
                    inoff += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    close_fd(&pin[1]);
                if (inoff >= inlen)
                    close_fd(&pin[1]);
            }
        }
    }
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&perr[0]);
    close_fd(&pex[0]);
    if (timed_out) {
        kill(-pid, SIGTERM);
        double end = hp_now() + 2;
        int st;
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (hp_now() > end) {
                kill(-pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            usleep(20000);
        }
        return hp_err_set(err, HP_ESITE, "'%s' timed out after %.0f s", argv[0], timeout);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return hp_err_errno(err, "waitpid");
    }
    if (err->code)
        return -1;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
fail:
    close_fd(&pin[0]);
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&pout[1]);
    close_fd(&perr[0]);
    close_fd(&perr[1]);
    close_fd(&pex[0]);
    close_fd(&pex[1]);
    return -1;
}

static int local_put(struct hp_conn *c, const char *local, const char *remote, int flags,
                     struct hp_err *err)
{
    (void)c;
    return hp_xfer(hp_vfs_local(), local, hp_vfs_local(), remote, flags, err);
}

static int local_get(struct hp_conn *c, const char *remote, const char *local, int flags,
                     struct hp_err *err)
{
    (void)c;
    return hp_xfer(hp_vfs_local(), remote, hp_vfs_local(), local, flags, err);
}

static int local_tunnel(struct hp_conn *c, const char *host, int port, struct hp_err *err)
{
    (void)c;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai)
        return hp_err_set(err, HP_ESITE, "cannot resolve '%s': %s", host, gai_strerror(gai));
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return hp_err_set(err, HP_ESITE, "cannot connect to %s port %d: %s", host, port,
                          strerror(e));
    return fd;
}

static void local_close(struct hp_conn *c)
{
    (void)c;
}

static const struct hp_conn_ops local_ops = {
    .name = "local",
    .exec = local_exec,
    .put = local_put,
    .get = local_get,
    .tunnel = local_tunnel,
    .close = local_close,
};

struct hp_conn *hp_conn_local(void)
{
    struct hp_conn *c = hp_xcalloc(1, sizeof(*c));
    c->ops = &local_ops;
    c->site = hp_xstrdup("local");
    return c;
}

/* ================================================================ choice */

struct hp_conn *hp_conn_open(const struct hp_site *site, struct hp_err *err)
{
    if (!site->login_host) {
        struct hp_conn *c = hp_conn_local();
        free(c->site);
        c->site = hp_xstrdup(site->name);
        return c;
    }
    const char *nm = getenv("HPCPORT_NO_MASTER");
    if (!(nm && *nm && strcmp(nm, "0"))) {
        int none = 0;
        struct hp_conn *c = hp_master_conn(site, &none, err);
        if (c || !none)
            return c;
    }
    return hp_conn_ssh(site, err);
}

void hp_conn_free(struct hp_conn *c)
{
    if (!c)
        return;
    if (c->ops && c->ops->close)
        c->ops->close(c);
    free(c->site);
    free(c);
}

/* ================================================================ wrappers */

int hp_conn_exec(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                 size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                 double timeout, struct hp_err *err)
{
    int st = 0;
    int r = c->ops->exec(c, argv, stdin_data, stdin_len, out, errout, &st, timeout, err);
    if (r == 0 && status)
        *status = st;
    return r;
}

int hp_conn_exec_ex(struct hp_conn *c, const char *const *argv, const void *stdin_data,
                    size_t stdin_len, struct hp_buf *out, struct hp_buf *errout, int *status,
                    double timeout, int flags, struct hp_err *err)
{
    if (!c->ops->exec_ex)
        return hp_conn_exec(c, argv, stdin_data, stdin_len, out, errout, status, timeout, err);
    int st = 0;
    int r = c->ops->exec_ex(c, argv, stdin_data, stdin_len, out, errout, &st, timeout, flags,
                            err);
    if (r == 0 && status)
        *status = st;
    return r;
}

int hp_conn_put(struct hp_conn *c, const char *local, const char *remote, int flags,
                struct hp_err *err)
{
    if (!c->ops->put)
        return hp_err_set(err, HP_ESITE, "the %s transport cannot copy files", c->ops->name);
    return c->ops->put(c, local, remote, flags, err);
}

int hp_conn_get(struct hp_conn *c, const char *remote, const char *local, int flags,
                struct hp_err *err)
{
    if (!c->ops->get)
        return hp_err_set(err, HP_ESITE, "the %s transport cannot copy files", c->ops->name);
    return c->ops->get(c, remote, local, flags, err);
}

int hp_conn_tunnel(struct hp_conn *c, const char *host, int port, struct hp_err *err)
{
    if (!c->ops->tunnel)
        return hp_err_set(err, HP_ESITE, "the %s transport has no tunnels", c->ops->name);
    return c->ops->tunnel(c, host, port, err);
}
