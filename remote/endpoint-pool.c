/* endpoint-pool.c - tasks, queues and worker processes of the endpoint.
 *
 * Each function has its own queue and workers. A worker gets a chunk of
 * queued calls when it is idle (many calls per message, so batches are
 * cheap) and answers them in order. A worker that dies fails the call it
 * was on (crashed, or timeout when the server killed it) and the rest of its
 * chunk goes back to the front of the queue; a replacement starts at once. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include "endpoint-int.h"
#include "endpoint-wire.h"
#include "util.h"
#include "banned.h"

const double ep_buckets[EP_NBUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025, 0.05, 0.1, 0.5, 1, 10, 60 };

/* ---- ids ---- */

static void thash_grow(struct ep_server *s)
{
    size_t nn = s->thn ? s->thn * 2 : 1024;
    struct ep_task **nb = hp_xcalloc(nn, sizeof(*nb));
    for (size_t i = 0; i < s->thn; i++)
        for (struct ep_task *t = s->th[i], *nx; t; t = nx) {
            nx = t->hnext;
            t->hnext = nb[t->id & (nn - 1)];
            nb[t->id & (nn - 1)] = t;
        }
    free(s->th);
    s->th = nb;
    s->thn = nn;
}

static void thash_add(struct ep_server *s, struct ep_task *t)
{
    if (s->tcount + 1 > s->thn)
        thash_grow(s);
    t->hnext = s->th[t->id & (s->thn - 1)];
    s->th[t->id & (s->thn - 1)] = t;
    s->tcount++;
}

static void thash_del(struct ep_server *s, struct ep_task *t)
{
    for (struct ep_task **pp = &s->th[t->id & (s->thn - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == t) {
            *pp = t->hnext;
            s->tcount--;
            return;
        }
}

struct ep_task *ep_task_find(struct ep_server *s, uint64_t id)
{
    if (!s->thn)
        return NULL;
    for (struct ep_task *t = s->th[id & (s->thn - 1)]; t; t = t->hnext)
        if (t->id == id)
            return t;
    return NULL;
}

static void bhash_add(struct ep_server *s, struct ep_batch *b)
{
    if (s->bcount + 1 > s->bhn) {
        size_t nn = s->bhn ? s->bhn * 2 : 64;
        struct ep_batch **nb = hp_xcalloc(nn, sizeof(*nb));
        for (size_t i = 0; i < s->bhn; i++)
            for (struct ep_batch *x = s->bh[i], *nx; x; x = nx) {
                nx = x->hnext;
                x->hnext = nb[x->id & (nn - 1)];
                nb[x->id & (nn - 1)] = x;
            }
        free(s->bh);
        s->bh = nb;
        s->bhn = nn;
    }
    b->hnext = s->bh[b->id & (s->bhn - 1)];
    s->bh[b->id & (s->bhn - 1)] = b;
    s->bcount++;
}

struct ep_batch *ep_batch_find(struct ep_server *s, uint64_t id)
{
    if (!s->bhn)
        return NULL;
    for (struct ep_batch *b = s->bh[id & (s->bhn - 1)]; b; b = b->hnext)
        if (b->id == id)
            return b;
    return NULL;
}

/* ---- queues ---- */

static void q_push(struct ep_fn *fn, struct ep_task *t, bool front)
{
    t->prev = t->next = NULL;
    if (front) {
        t->next = fn->qhead;
        if (fn->qhead)
            fn->qhead->prev = t;
        else
            fn->qtail = t;
        fn->qhead = t;
    } else {
        t->prev = fn->qtail;
        if (fn->qtail)
            fn->qtail->next = t;
        else
            fn->qhead = t;
        fn->qtail = t;
    }
    t->state = T_QUEUED;
    fn->queued++;
    fn->s->queued_total++;
}

static void q_del(struct ep_fn *fn, struct ep_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        fn->qhead = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        fn->qtail = t->prev;
    t->prev = t->next = NULL;
    fn->queued--;
    fn->s->queued_total--;
}

/* ---- kept results ---- */

static void kt_unlink(struct ep_server *s, struct ep_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->kt_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        s->kt_tail = t->prev;
    t->prev = t->next = NULL;
}

static void kb_unlink(struct ep_server *s, struct ep_batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        s->kb_head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        s->kb_tail = b->prev;
    b->prev = b->next = NULL;
}

static size_t batch_bytes(const struct ep_batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->tasks[i].outlen;
    return n;
}

static void task_free(struct ep_task *t)
{
    free(t->inown);
    free(t->out);
    free(t);
}

void ep_task_forget(struct ep_task *t)
{
    struct ep_server *s = t->fn->s;
    if (t->kind != K_SUBMIT || t->state != T_DONE)
        return;
    kt_unlink(s, t);
    s->kept_bytes -= t->outlen;
    thash_del(s, t);
    task_free(t);
}

static void batch_free(struct ep_server *s, struct ep_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        thash_del(s, &b->tasks[i]);
        free(b->tasks[i].out);
    }
    for (struct ep_batch **pp = &s->bh[b->id & (s->bhn - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == b) {
            *pp = b->hnext;
            s->bcount--;
            break;
        }
    free(b->tasks);
    free(b->body);
    free(b);
}

void ep_batch_forget(struct ep_batch *b)
{
    struct ep_server *s = b->fn->s;
    if (b->done != b->n)
        return;
    kb_unlink(s, b);
    s->kept_bytes -= batch_bytes(b);
    batch_free(s, b);
}

static void evict(struct ep_server *s, double older_than)
{
    for (;;) {
        struct ep_task *t = s->kt_head;
        struct ep_batch *b = s->kb_head;
        if (!t && !b)
            return;
        bool take_t = t && (!b || t->finished_at <= b->finished_at);
        double at = take_t ? t->finished_at : b->finished_at;
        if (s->kept_bytes <= s->cfg->max_results && at >= older_than)
            return;
        if (take_t)
            ep_task_forget(t);
        else
            ep_batch_forget(b);
    }
}

void ep_pool_sweep(struct ep_server *s, double max_age)
{
    evict(s, hp_now() - max_age);
}

/* ---- finishing ---- */

static void task_finish(struct ep_task *t, int code, const void *data, size_t len)
{
    struct ep_fn *fn = t->fn;
    struct ep_server *s = fn->s;
    double now = hp_now();
    t->state = T_DONE;
    t->code = code;
    t->out = len ? hp_xmalloc(len) : NULL;
    if (len)
        memcpy(t->out, data, len);
    t->outlen = len;
    t->finished_at = now;
    free(t->inown);
    t->inown = NULL;
    t->in = NULL;
    fn->calls[code]++;
    double dt = now - t->queued_at;
    size_t k = 0;
    while (k < EP_NBUCKETS && dt > ep_buckets[k])
        k++;
    fn->hist[k]++;
    fn->seconds_sum += dt;
    ep_http_task_done(t);
    switch (t->kind) {
    case K_SYNC:
        task_free(t);
        break;
    case K_SUBMIT:
        t->prev = s->kt_tail;
        t->next = NULL;
        if (s->kt_tail)
            s->kt_tail->next = t;
        else
            s->kt_head = t;
        s->kt_tail = t;
        s->kept_bytes += t->outlen;
        evict(s, 0);
        break;
    case K_BATCH: {
        struct ep_batch *b = t->batch;
        if (++b->done < b->n)
            break;
        free(b->body);
        b->body = NULL;
        b->finished_at = now;
        b->prev = s->kb_tail;
        b->next = NULL;
        if (s->kb_tail)
            s->kb_tail->next = b;
        else
            s->kb_head = b;
        s->kb_tail = b;
        s->kept_bytes += batch_bytes(b);
        ep_http_batch_done(b);
        evict(s, 0);
        break;
    }
    }
}

static void task_fail(struct ep_task *t, int code, const char *msg)
{
    task_finish(t, code, msg, strlen(msg));
}

static void fn_fail_queued(struct ep_fn *fn, int code, const char *msg)
{
    while (fn->qhead) {
        struct ep_task *t = fn->qhead;
        q_del(fn, t);
        task_fail(t, code, msg);
    }
}

void ep_pool_fail_queued(struct ep_server *s, int code, const char *msg)
{
    for (size_t i = 0; i < s->nfn; i++)
        fn_fail_queued(&s->fns[i], code, msg);
}

int ep_task_cancel(struct ep_task *t)
{
    if (t->state != T_QUEUED)
        return 0;
    q_del(t->fn, t);
    task_fail(t, EPC_CANCELED, "canceled before it ran");
    return 1;
}

int ep_batch_cancel(struct ep_batch *b)
{
    /* take them all off the queue first: the last one to finish may
     * complete the batch, and a waiter then frees it */
    struct ep_task **v = hp_xmalloc(b->n * sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->tasks[i].state == T_QUEUED) {
            q_del(b->fn, &b->tasks[i]);
            v[n++] = &b->tasks[i];
        }
    for (size_t i = 0; i < n; i++)
        task_fail(v[i], EPC_CANCELED, "canceled before it ran");
    free(v);
    return (int)n;
}

void ep_task_orphan(struct ep_task *t)
{
    t->pending = NULL;
    if (t->state == T_QUEUED) {
        q_del(t->fn, t);
        t->fn->calls[EPC_CANCELED]++;
        task_free(t);
    }
    /* running: dropped when its result comes (task_finish frees K_SYNC) */
}

/* ---- workers ---- */

static void worker_spawn(struct ep_worker *w);
static void fn_dispatch(struct ep_fn *fn);

static const char *wstatus_text(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "worker killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(buf, len, "worker exited with status %d", WEXITSTATUS(st));
    else
        snprintf(buf, len, "worker ended (wait status %d)", st);
    return buf;
}

/* Wait for a worker that closed its socket (it is exiting); kill it if it
 * lingers. */
static int worker_reap(struct ep_worker *w)
{
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(w->pid, &st, WNOHANG);
        if (r == w->pid || (r < 0 && errno != EINTR))
            return st;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    kill(-w->pid, SIGKILL);
    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static void worker_close(struct ep_worker *w)
{
    /* bufferevent_free closes the socket only when the loop runs its
     * finalizers: shut it down now so the worker sees EOF at once */
    if (w->bev) {
        shutdown(bufferevent_getfd(w->bev), SHUT_RDWR);
        bufferevent_free(w->bev);
    }
    w->bev = NULL;
    if (w->timer)
        evtimer_del(w->timer);
}

static void fn_init_failed(struct ep_fn *fn, const char *why)
{
    free(fn->init_error);
    fn->init_error = hp_xasprintf("function '%s' could not start: %s", fn->cfg->name, why);
    fn->retry_at = hp_now() + 10;
    ep_log(fn->s, "%s", fn->init_error);
    fn_fail_queued(fn, EPC_FAILED, fn->init_error);
}

/* The worker's process is gone (status st). code/msg: why, when the server
 * killed it; else the status says. */
static void worker_gone(struct ep_worker *w, int st, int code, const char *msg)
{
    struct ep_fn *fn = w->fn;
    struct ep_server *s = w->s;
    char text[256];
    int was = w->state;
    worker_close(w);
    w->state = W_NONE;
    w->pid = 0;
    if (!msg)
        msg = wstatus_text(st, text, sizeof(text));
    if (was == W_STARTING) {
        fn_init_failed(fn, msg);
        return;
    }
    if (was == W_INITFAILED)
        return;
    ep_log(s, "function %s worker %d: %s", fn->cfg->name, w->index, msg);
    if (w->head < w->nin) {
        struct ep_task *first = w->inflight[w->head];
        for (size_t i = w->nin; i-- > w->head + 1;)
            q_push(fn, w->inflight[i], true);
        w->head = w->nin = 0;
        task_fail(first, code ? code : EPC_CRASHED, msg);
    }
    w->head = w->nin = 0;
    if (s->stopping)
        return;
    s->restarts++;
    worker_spawn(w);
    fn_dispatch(fn);
}

static void worker_kill(struct ep_worker *w, int code, const char *msg)
{
    int st = 0;
    kill(-w->pid, SIGKILL);
    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
        ;
    worker_gone(w, st, code, msg);
}

static void worker_event(struct bufferevent *bev, short what, void *arg)
{
    struct ep_worker *w = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        worker_gone(w, worker_reap(w), 0, NULL);
}

static void worker_timer(evutil_socket_t fd, short what, void *arg)
{
    struct ep_worker *w = arg;
    (void)fd;
    (void)what;
    if (w->state != W_BUSY)
        return;
    double left = w->progress + w->fn->cfg->timeout - hp_now();
    if (left > 0.001) {
        struct timeval tv = { (time_t)left, (suseconds_t)((left - floor(left)) * 1e6) };
        evtimer_add(w->timer, &tv);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "no answer in %g s; worker replaced", w->fn->cfg->timeout);
    worker_kill(w, EPC_TIMEOUT, msg);
}

/* One message from a worker. Returns -1 when the worker was dropped. */
static int worker_msg(struct ep_worker *w, int type, const unsigned char *p, uint32_t len)
{
    struct ep_fn *fn = w->fn;
    if (type == HP_EPW_READY && w->state == W_STARTING) {
        w->state = W_IDLE;
        ep_log(w->s, "function %s worker %d ready (pid %ld)", fn->cfg->name, w->index,
               (long)w->pid);
        free(fn->init_error);
        fn->init_error = NULL;
        return 0;
    }
    if (type == HP_EPW_INITFAIL && w->state == W_STARTING) {
        char *m = hp_xstrndup((const char *)p, len);
        w->state = W_INITFAILED;
        fn_init_failed(fn, m);
        free(m);
        return 0;
    }
    if (type == HP_EPW_RESULTS && w->state == W_BUSY && len >= 4) {
        uint32_t n = hp_epw_get32(p);
        size_t off = 4;
        w->progress = hp_now();
        for (uint32_t i = 0; i < n; i++) {
            if (off + 13 > len || w->head >= w->nin)
                goto bad;
            uint64_t id = hp_epw_get64(p + off);
            int status = p[off + 8];
            uint32_t ol = hp_epw_get32(p + off + 9);
            off += 13;
            struct ep_task *t = w->inflight[w->head];
            if (ol > len - off || t->id != id)
                goto bad;
            w->head++;
            task_finish(t, status ? EPC_FAILED : EPC_OK, p + off, ol);
            off += ol;
        }
        if (w->head == w->nin) {
            /* what one call costs, round trip included (moving average) */
            double per = (hp_now() - w->sent_at) / (double)w->nin;
            fn->cost = fn->cost > 0 ? 0.7 * fn->cost + 0.3 * per : per;
            w->head = w->nin = 0;
            w->state = W_IDLE;
        }
        return 0;
    }
bad:
    worker_kill(w, EPC_CRASHED, "worker broke the protocol; worker replaced");
    return -1;
}

static void worker_read(struct bufferevent *bev, void *arg)
{
    struct ep_worker *w = arg;
    struct ep_fn *fn = w->fn;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        unsigned char h[HP_EPW_HDR];
        if (avail < HP_EPW_HDR)
            break;
        evbuffer_copyout(in, h, HP_EPW_HDR);
        uint32_t len = hp_epw_get32(h + 1);
        if (avail < HP_EPW_HDR + (size_t)len)
            break;
        unsigned char *p = evbuffer_pullup(in, (ssize_t)(HP_EPW_HDR + len));
        if (worker_msg(w, h[0], p + HP_EPW_HDR, len) < 0)
            return;
        evbuffer_drain(in, HP_EPW_HDR + len);
    }
    fn_dispatch(fn);
}

static void worker_spawn(struct ep_worker *w)
{
    struct ep_fn *fn = w->fn;
    struct ep_server *s = w->s;
    const struct hp_ep_function *f = fn->cfg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fn_init_failed(fn, "cannot create a socketpair for a worker");
        return;
    }
    char fdarg[16], maxout[32], idx[16];
    snprintf(fdarg, sizeof(fdarg), "3");
    snprintf(maxout, sizeof(maxout), "%llu", (unsigned long long)s->cfg->max_payload);
    snprintf(idx, sizeof(idx), "%d", w->index);
    size_t nc = 0;
    while (f->command && f->command[nc])
        nc++;
    const char **argv = hp_xcalloc(10 + nc, sizeof(char *));
    size_t a = 0;
    argv[a++] = "hpcport";
    argv[a++] = "endpoint-worker";
    argv[a++] = fdarg;
    argv[a++] = maxout;
    argv[a++] = idx;
    if (f->library) {
        argv[a++] = "library";
        argv[a++] = f->library;
        argv[a++] = f->symbol;
        argv[a++] = f->config ? "1" : "0";
        argv[a++] = f->config ? f->config : "";
    } else {
        argv[a++] = "command";
        for (size_t i = 0; i < nc; i++)
            argv[a++] = f->command[i];
    }
    const char *gpu = NULL;
    if (s->cfg->gpus && s->cfg->gpus[0]) {
        size_t ng = 0;
        while (s->cfg->gpus[ng])
            ng++;
        gpu = s->cfg->gpus[(size_t)w->index % ng];
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* stdin from /dev/null, stdout to the log: only the socket talks */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0 && devnull != 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        dup2(2, 1);
        setpgid(0, 0);
        if (sv[1] == 3)
            fcntl(3, F_SETFD, 0);
        else if (dup2(sv[1], 3) < 0)
            _exit(127);
        syscall(SYS_close_range, 4u, ~0u, 0u);
        if (gpu) {
            setenv("CUDA_VISIBLE_DEVICES", gpu, 1);
            setenv("ROCR_VISIBLE_DEVICES", gpu, 1);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(s->self_exe, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        fn_init_failed(fn, "cannot fork a worker");
        return;
    }
    setpgid(pid, pid);
    evutil_make_socket_nonblocking(sv[0]);
    w->pid = pid;
    w->state = W_STARTING;
    w->bev = bufferevent_socket_new(s->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(w->bev, worker_read, NULL, worker_event, w);
    bufferevent_enable(w->bev, EV_READ);
    if (!w->timer)
        w->timer = evtimer_new(s->base, worker_timer, w);
}

static void fn_dispatch(struct ep_fn *fn)
{
    int idle = 0;
    for (int i = 0; i < fn->nw; i++)
        idle += fn->w[i].state == W_IDLE;
    for (int i = 0; i < fn->nw && fn->queued && idle; i++) {
        struct ep_worker *w = &fn->w[i];
        if (w->state != W_IDLE)
            continue;
        /* about 2 ms of work per chunk: cheap calls go many at a time, slow
         * ones one by one (so they stay cancelable and spread over workers) */
        size_t want = (fn->queued + (size_t)idle - 1) / (size_t)idle, n = 0, bytes = 4;
        double cost = fn->cost > 0 ? fn->cost : 0.001;
        size_t by_cost = cost >= 0.002 ? 1 : (size_t)(0.002 / cost);
        if (want > by_cost)
            want = by_cost;
        if (want > HP_EPW_CHUNK_CALLS)
            want = HP_EPW_CHUNK_CALLS;
        for (struct ep_task *t = fn->qhead; t && n < want; t = t->next) {
            if (n && bytes + 12 + t->inlen > HP_EPW_CHUNK_BYTES)
                break;
            bytes += 12 + t->inlen;
            n++;
        }
        HP_ALLOC_GROW(w->inflight, n, w->alloc);
        struct evbuffer *out = bufferevent_get_output(w->bev);
        unsigned char h[HP_EPW_HDR + 4];
        h[0] = HP_EPW_CALLS;
        hp_epw_put32(h + 1, (uint32_t)bytes);
        hp_epw_put32(h + 5, (uint32_t)n);
        evbuffer_add(out, h, sizeof(h));
        for (size_t k = 0; k < n; k++) {
            struct ep_task *t = fn->qhead;
            unsigned char th[12];
            q_del(fn, t);
            t->state = T_RUNNING;
            hp_epw_put64(th, t->id);
            hp_epw_put32(th + 8, (uint32_t)t->inlen);
            evbuffer_add(out, th, sizeof(th));
            if (t->inlen)
                evbuffer_add(out, t->in, t->inlen);
            w->inflight[k] = t;
        }
        w->head = 0;
        w->nin = n;
        w->state = W_BUSY;
        w->progress = w->sent_at = hp_now();
        double to = fn->cfg->timeout;
        struct timeval tv = { (time_t)to, (suseconds_t)((to - floor(to)) * 1e6) };
        evtimer_add(w->timer, &tv);
        idle--;
    }
}

/* ---- submitting ---- */

static bool fn_available(struct ep_fn *fn, int *code, const char **msg)
{
    struct ep_server *s = fn->s;
    if (s->stopping) {
        *code = EPC_UNAVAILABLE;
        *msg = "the endpoint is shutting down";
        return false;
    }
    if (fn->init_error) {
        if (hp_now() < fn->retry_at) {
            *code = EPC_FAILED;
            *msg = fn->init_error;
            return false;
        }
        free(fn->init_error);
        fn->init_error = NULL;
    }
    for (int i = 0; i < fn->nw; i++)
        if (fn->w[i].state == W_NONE)
            worker_spawn(&fn->w[i]);
    return true;
}

struct ep_task *ep_task_submit(struct ep_fn *fn, int kind, const void *in, size_t inlen,
                               int *code, const char **msg)
{
    struct ep_server *s = fn->s;
    if (!fn_available(fn, code, msg))
        return NULL;
    if (s->queued_total >= s->cfg->queue_depth) {
        *code = EPC_QUEUE_FULL;
        *msg = "the queue is full; retry later";
        return NULL;
    }
    struct ep_task *t = hp_xcalloc(1, sizeof(*t));
    t->id = ++s->next_id;
    t->fn = fn;
    t->kind = kind;
    if (inlen) {
        t->inown = hp_xmalloc(inlen);
        memcpy(t->inown, in, inlen);
    }
    t->in = t->inown;
    t->inlen = inlen;
    t->queued_at = hp_now();
    if (kind == K_SUBMIT)
        thash_add(s, t);
    q_push(fn, t, false);
    fn_dispatch(fn);    /* results come later, from the event loop */
    return t;
}

struct ep_batch *ep_batch_submit(struct ep_fn *fn, unsigned char *body, size_t bodylen,
                                 const size_t *offs, const size_t *lens, size_t n, int *code,
                                 const char **msg)
{
    struct ep_server *s = fn->s;
    if (!fn_available(fn, code, msg) ||
        (s->queued_total + n > s->cfg->queue_depth &&
         (*code = EPC_QUEUE_FULL, *msg = "the queue has no room for this batch; send smaller "
                                        "batches or retry later"))) {
        free(body);
        return NULL;
    }
    struct ep_batch *b = hp_xcalloc(1, sizeof(*b));
    b->id = ++s->next_id;
    b->fn = fn;
    b->n = n;
    b->body = body;
    b->bodylen = bodylen;
    b->tasks = hp_xcalloc(n, sizeof(*b->tasks));
    s->next_id += n;
    double now = hp_now();
    bhash_add(s, b);
    for (size_t i = 0; i < n; i++) {
        struct ep_task *t = &b->tasks[i];
        t->id = b->id + 1 + i;
        t->fn = fn;
        t->batch = b;
        t->kind = K_BATCH;
        t->in = body + offs[i];
        t->inlen = lens[i];
        t->queued_at = now;
        thash_add(s, t);
        q_push(fn, t, false);
    }
    fn_dispatch(fn);
    return b;
}

struct ep_fn *ep_fn_find(struct ep_server *s, const char *name)
{
    for (size_t i = 0; i < s->nfn; i++)
        if (!strcmp(s->fns[i].cfg->name, name))
            return &s->fns[i];
    return NULL;
}

int ep_busy_workers(const struct ep_server *s)
{
    int n = 0;
    for (size_t i = 0; i < s->nfn; i++)
        for (int k = 0; k < s->fns[i].nw; k++)
            n += s->fns[i].w[k].state == W_BUSY;
    return n;
}

int ep_total_workers(const struct ep_server *s)
{
    int n = 0;
    for (size_t i = 0; i < s->nfn; i++)
        for (int k = 0; k < s->fns[i].nw; k++)
            n += s->fns[i].w[k].state != W_NONE && s->fns[i].w[k].state != W_INITFAILED;
    return n;
}

bool ep_pool_idle(const struct ep_server *s)
{
    return ep_busy_workers(s) == 0;
}

int ep_pool_start(struct ep_server *s, struct hp_err *err)
{
    s->nfn = s->cfg->nfn;
    s->fns = hp_xcalloc(s->nfn, sizeof(*s->fns));
    for (size_t i = 0; i < s->nfn; i++) {
        struct ep_fn *fn = &s->fns[i];
        fn->s = s;
        fn->cfg = &s->cfg->fn[i];
        fn->nw = fn->cfg->workers;
        fn->w = hp_xcalloc((size_t)fn->nw, sizeof(*fn->w));
        for (int k = 0; k < fn->nw; k++) {
            fn->w[k].s = s;
            fn->w[k].fn = fn;
            fn->w[k].index = k;
            worker_spawn(&fn->w[k]);
        }
    }
    (void)err;
    return 0;
}

void ep_pool_stop(struct ep_server *s)
{
    /* calls still running fail; the others' workers see EOF, fini, exit */
    for (size_t i = 0; i < s->nfn; i++)
        for (int k = 0; k < s->fns[i].nw; k++) {
            struct ep_worker *w = &s->fns[i].w[k];
            if (w->state == W_BUSY)
                worker_kill(w, EPC_UNAVAILABLE, "the endpoint stopped before the call finished");
            else
                worker_close(w);
        }
    double until = hp_now() + 5;
    for (size_t i = 0; i < s->nfn; i++)
        for (int k = 0; k < s->fns[i].nw; k++) {
            struct ep_worker *w = &s->fns[i].w[k];
            if (!w->pid)
                continue;
            int st;
            while (waitpid(w->pid, &st, WNOHANG) == 0 && hp_now() < until) {
                struct timespec ts = { 0, 2000000 };
                nanosleep(&ts, NULL);
            }
            if (waitpid(w->pid, &st, WNOHANG) == 0) {
                kill(-w->pid, SIGKILL);
                kill(w->pid, SIGKILL);
                waitpid(w->pid, &st, 0);
            }
            w->pid = 0;
            w->state = W_NONE;
        }
}

void ep_pool_free(struct ep_server *s)
{
    while (s->kt_head)
        ep_task_forget(s->kt_head);
    while (s->kb_head)
        ep_batch_forget(s->kb_head);
    for (size_t i = 0; i < s->nfn; i++) {
        struct ep_fn *fn = &s->fns[i];
        for (int k = 0; k < fn->nw; k++) {
            worker_close(&fn->w[k]);
            if (fn->w[k].timer)
                event_free(fn->w[k].timer);
            free(fn->w[k].inflight);
        }
        free(fn->w);
        free(fn->init_error);
    }
    free(s->fns);
    free(s->th);
    free(s->bh);
}
