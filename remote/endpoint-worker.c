/* endpoint-worker.c - one worker process of an endpoint (`hpcport
 * endpoint-worker`, started by the server with fork + exec, the socketpair
 * on fd 3). It loads a library function once (dlopen, ABI check, init) or
 * runs a command per call, and answers chunks of calls (endpoint-wire.h).
 *
 * argv: endpoint-worker FD MAX_OUTPUT INDEX library PATH SYMBOL HAS_CONFIG CONFIG
 *       endpoint-worker FD MAX_OUTPUT INDEX command ARGV...
 *
 * The worker leads its own process group, so the server's SIGKILL on a
 * timeout also ends a command it runs. Crash signals go back to their
 * default action so the server sees the signal (not a sanitizer's exit). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "endpoint.h"
#include "endpoint-wire.h"
#include "hpcport-function.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

struct wk {
    int fd;
    size_t max_out;
    int index;
    /* library */
    void *dl;
    const struct hp_function *f;
    void *state;
    /* command */
    char **argv;
    /* per call output */
    unsigned char *obuf;
    size_t olen, oalloc;
    bool oover;
    /* results not yet sent */
    struct hp_buf res;
    uint32_t nres;
    double last_flush;
};

static int send_msg(int fd, int type, const void *p, size_t n)
{
    unsigned char h[HP_EPW_HDR];
    h[0] = (unsigned char)type;
    hp_epw_put32(h + 1, (uint32_t)n);
    if (hp_write_full(fd, h, sizeof(h)) < 0)
        return -1;
    return n ? hp_write_full(fd, p, n) : 0;
}

static int flush_results(struct wk *w)
{
    if (!w->nres)
        return 0;
    hp_epw_put32((unsigned char *)w->res.buf, w->nres);
    int r = send_msg(w->fd, HP_EPW_RESULTS, w->res.buf, w->res.len);
    hp_buf_reset(&w->res);
    hp_buf_add(&w->res, "\0\0\0\0", 4);
    w->nres = 0;
    w->last_flush = hp_now();
    return r;
}

static void add_result(struct wk *w, uint64_t id, int status, const void *p, size_t n)
{
    unsigned char h[13];
    hp_epw_put64(h, id);
    h[8] = (unsigned char)status;
    hp_epw_put32(h + 9, (uint32_t)n);
    hp_buf_add(&w->res, h, sizeof(h));
    hp_buf_add(&w->res, p, n);
    w->nres++;
}

static void *reserve(struct hp_function_output *out, size_t n)
{
    struct wk *w = out->priv;
    if (n > w->max_out) {
        w->oover = true;
        return NULL;
    }
    if (n > w->oalloc) {
        free(w->obuf);
        w->obuf = malloc(n);
        w->oalloc = w->obuf ? n : 0;
        if (!w->obuf)
            return NULL;
    }
    w->oover = false;
    w->olen = n;
    return w->obuf ? w->obuf : (void *)"";
}

static void call_library(struct wk *w, uint64_t id, const unsigned char *in, size_t n)
{
    char err[1024] = "";
    struct hp_function_output out = { reserve, w };
    w->olen = 0;
    w->oover = false;
    int r = w->f->call(w->state, in, n, &out, err, sizeof(err));
    err[sizeof(err) - 1] = '\0';
    if (r != 0) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "function '%s' returned %d: %s", w->f->name ? w->f->name : "?",
                 r, err[0] ? err : "(no message)");
        add_result(w, id, 1, msg, strlen(msg));
    } else if (w->oover) {
        char msg[200];
        snprintf(msg, sizeof(msg), "output larger than the endpoint's limit (%zu bytes)",
                 w->max_out);
        add_result(w, id, 1, msg, strlen(msg));
    } else {
        add_result(w, id, 0, w->obuf, w->olen);
    }
}

/* stderr tail kept for the error message */
#define ERR_TAIL 2048

static void tail_add(struct hp_buf *t, const char *p, size_t n)
{
    hp_buf_add(t, p, n);
    if (t->len > 2 * ERR_TAIL) {
        memmove(t->buf, t->buf + t->len - ERR_TAIL, ERR_TAIL);
        hp_buf_setlen(t, ERR_TAIL);
    }
}

static void call_command(struct wk *w, uint64_t id, const unsigned char *in, size_t n)
{
    int pin[2], pout[2], perr[2];
    struct hp_buf out = HP_BUF_INIT, tail = HP_BUF_INIT;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        const char *m = "cannot create pipes for the command";
        add_result(w, id, 1, m, strlen(m));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(w->argv[0], w->argv);
        dprintf(2, "cannot run '%s': %s", w->argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        const char *m = "cannot start the command (fork failed)";
        add_result(w, id, 1, m, strlen(m));
        return;
    }
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    size_t off = 0;
    int infd = pin[1];
    if (n == 0) {
        close(infd);
        infd = -1;
    }
    int open_out = 2;
    bool over = false;
    while (open_out > 0 || infd >= 0) {
        struct pollfd p[3] = { { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 }, { infd, POLLOUT, 0 } };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        char b[65536];
        for (int k = 0; k < 2; k++) {
            if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(p[k].fd, b, sizeof(b));
            if (r <= 0) {
                close(p[k].fd);
                if (k == 0)
                    pout[0] = -1;
                else
                    perr[0] = -1;
                open_out--;
            } else if (k == 0) {
                if (out.len + (size_t)r > w->max_out)
                    over = true;
                else
                    hp_buf_add(&out, b, (size_t)r);
            } else {
                tail_add(&tail, b, (size_t)r);
            }
        }
        if (infd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t wr = write(infd, in + off, n - off);
            if (wr > 0)
                off += (size_t)wr;
            if ((wr < 0 && errno != EAGAIN && errno != EINTR) || off == n) {
                close(infd);
                infd = -1;
            }
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !over) {
        add_result(w, id, 0, out.buf, out.len);
    } else {
        struct hp_buf m = HP_BUF_INIT;
        size_t tl = tail.len > ERR_TAIL ? ERR_TAIL : tail.len;
        const char *t = tail.buf + tail.len - tl;
        while (tl && (t[tl - 1] == '\n' || t[tl - 1] == ' '))
            tl--;
        if (over)
            hp_buf_addf(&m, "command '%s': output larger than the endpoint's limit (%zu bytes)",
                        w->argv[0], w->max_out);
        else if (WIFSIGNALED(st))
            hp_buf_addf(&m, "command '%s' killed by signal %d (%s)", w->argv[0], WTERMSIG(st),
                        strsignal(WTERMSIG(st)));
        else
            hp_buf_addf(&m, "command '%s' exited with status %d", w->argv[0], WEXITSTATUS(st));
        if (tl) {
            hp_buf_adds(&m, ": ");
            hp_buf_add(&m, t, tl);
        }
        add_result(w, id, 1, m.buf, m.len);
        hp_buf_release(&m);
    }
    hp_buf_release(&out);
    hp_buf_release(&tail);
}

static int init_fail(struct wk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int init_fail(struct wk *w, const char *fmt, ...)
{
    struct hp_buf m = HP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    hp_buf_vaddf(&m, fmt, ap);
    va_end(ap);
    send_msg(w->fd, HP_EPW_INITFAIL, m.buf, m.len);
    hp_buf_release(&m);
    return 1;
}

static int load_library(struct wk *w, const char *path, const char *sym, const char *config)
{
    w->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!w->dl)
        return init_fail(w, "cannot load %s: %s", path, dlerror());
    w->f = dlsym(w->dl, sym);
    if (!w->f)
        return init_fail(w, "%s: no symbol '%s'; the library must export a struct hp_function "
                         "named in the configuration's symbol key", path, sym);
    if (w->f->abi != HP_FUNCTION_ABI)
        return init_fail(w, "%s: %s has function ABI %u, this endpoint speaks %d; rebuild the "
                         "library against this hpcport's hpcport-function.h", path, sym,
                         (unsigned)w->f->abi, HP_FUNCTION_ABI);
    if (w->f->size < sizeof(struct hp_function))
        return init_fail(w, "%s: %s is %u bytes, ABI %d needs at least %zu; rebuild the library "
                         "against this hpcport's hpcport-function.h", path, sym,
                         (unsigned)w->f->size, HP_FUNCTION_ABI, sizeof(struct hp_function));
    if (!w->f->call)
        return init_fail(w, "%s: %s has no call hook", path, sym);
    if (w->f->init) {
        char err[1024] = "";
        int r = w->f->init(config, w->index, &w->state, err, sizeof(err));
        err[sizeof(err) - 1] = '\0';
        if (r != 0)
            return init_fail(w, "init of '%s' failed (%d): %s", w->f->name ? w->f->name : sym, r,
                             err[0] ? err : "(no message)");
    }
    return 0;
}

int hp_ep_worker_main(int argc, char **argv)
{
    if (argc < 6)
        return 2;
    struct wk w = { 0 };
    w.fd = atoi(argv[1]);
    w.max_out = (size_t)strtoull(argv[2], NULL, 10);
    w.index = atoi(argv[3]);
    hp_buf_init(&w.res, 0);
    hp_buf_add(&w.res, "\0\0\0\0", 4);
    int crash[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP };
    for (size_t i = 0; i < sizeof(crash) / sizeof(crash[0]); i++)
        signal(crash[i], SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    int rc = 0;
    if (!strcmp(argv[4], "library") && argc >= 9) {
        if ((rc = load_library(&w, argv[5], argv[6], !strcmp(argv[7], "1") ? argv[8] : NULL)))
            goto out;
    } else if (!strcmp(argv[4], "command")) {
        w.argv = argv + 5;
    } else {
        rc = init_fail(&w, "bad worker arguments");
        goto out;
    }
    if (send_msg(w.fd, HP_EPW_READY, NULL, 0) < 0)
        goto out;
    unsigned char *msg = NULL;
    size_t malloc_ = 0;
    for (;;) {
        unsigned char h[HP_EPW_HDR];
        if (hp_read_full(w.fd, h, sizeof(h)) < 0)
            break;
        uint32_t len = hp_epw_get32(h + 1);
        if (len > malloc_) {
            free(msg);
            msg = hp_xmalloc(len);
            malloc_ = len;
        }
        if (hp_read_full(w.fd, msg, len) < 0 || h[0] != HP_EPW_CALLS || len < 4)
            break;
        uint32_t n = hp_epw_get32(msg);
        size_t off = 4;
        w.last_flush = hp_now();
        for (uint32_t i = 0; i < n && off + 12 <= len; i++) {
            uint64_t id = hp_epw_get64(msg + off);
            uint32_t il = hp_epw_get32(msg + off + 8);
            off += 12;
            if (il > len - off)
                break;
            if (w.f)
                call_library(&w, id, msg + off, il);
            else
                call_command(&w, id, msg + off, il);
            off += il;
            if (i + 1 < n && (hp_now() - w.last_flush > 0.005 || w.res.len > HP_EPW_CHUNK_BYTES) &&
                flush_results(&w) < 0)
                goto done;
        }
        if (flush_results(&w) < 0)
            break;
    }
done:
    free(msg);
out:
    if (w.f && w.f->fini && rc == 0)
        w.f->fini(w.state);
    if (w.dl)
        dlclose(w.dl);
    free(w.obuf);
    hp_buf_release(&w.res);
    close(w.fd);
    return rc;
}
