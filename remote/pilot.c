/* pilot.c - the pilot's loop: slots, spawning, batches, heartbeats, drain. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "pilot.h"
#include "pilot-wire.h"
#include "util.h"
#include "banned.h"

extern char **environ;

struct task {
    json_t *spec;          /* owned */
    long long id;
    int attempt, cores, gpus, nodes, walltime;
    int batch;             /* spool batch index or -1 */
    pid_t pid;
    int gpu_slot[64];      /* indexes into gpu ids */
    double started;
    int killed;            /* by the drain: handed back */
};

struct batch {
    char name[128];
    int outstanding;
};

struct pilot {
    const struct hp_pilot_opts *o;
    char id[64];
    int fd;                          /* agent connection or -1 */
    unsigned char secret[64];
    size_t secretlen;
    char **gpu_ids;
    size_t ngpus;
    int *gpu_busy;
    int free_cores;
    struct task **queue;             /* received, not started */
    size_t nqueue, aqueue;
    struct task **run;               /* running */
    size_t nrun, arun;
    json_t *results;                 /* to report */
    struct batch *batches;
    size_t nbatches;
    double end;                      /* allocation end (monotonic), 0 unknown */
    long left;                       /* agent: tasks not completed, -1 unknown */
    int agent_drain;
    long ran;
    double last_send, last_flush, last_work, lost_since;
    double hb_every;                 /* heartbeat interval: --heartbeat, or a
                                      * third of the agent's timeout if less */
    long seq;
    char *spool_leased, *spool_hb;
};

static int sigpipe_fd[2] = { -1, -1 };
static volatile sig_atomic_t term_flag;

static void on_sig(int sig)
{
    int e = errno;
    if (sig == SIGTERM || sig == SIGINT)
        term_flag = 1;
    if (sigpipe_fd[1] >= 0) {
        ssize_t r = write(sigpipe_fd[1], "x", 1);
        (void)r;
    }
    errno = e;
}

static void task_free(struct task *t)
{
    if (!t)
        return;
    json_decref(t->spec);
    free(t);
}

static long remaining(struct pilot *p)
{
    if (p->end <= 0)
        return 0;
    long r = (long)(p->end - hp_now());
    return r < 1 ? 1 : r;
}

static void add_result(struct pilot *p, struct task *t, int release, int ex, int sig)
{
    json_t *r = json_pack("{s:I,s:i}", "id", (json_int_t)t->id, "attempt", t->attempt);
    if (release) {
        json_object_set_new(r, "release", json_true());
    } else {
        json_object_set_new(r, "exit", json_integer(ex));
        json_object_set_new(r, "signal", json_integer(sig));
    }
    json_object_set_new(r, "pilot", json_string(p->id));
    if (t->batch >= 0)
        json_object_set_new(r, "batch", json_integer(t->batch));
    json_array_append_new(p->results, r);
}

/* ---- TCP ---- */

static void agent_hb(struct pilot *p, json_t *hb)
{
    if (json_is_integer(hb) && json_integer_value(hb) > 0) {
        double every = (double)json_integer_value(hb) / 3;
        if (every < p->o->heartbeat)
            p->hb_every = every < 0.2 ? 0.2 : every;
    }
}


static int tcp_connect(const char *addr, struct hp_err *err)
{
    char *host = hp_xstrdup(addr);
    char *colon = strrchr(host, ':');
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV }, *res = NULL;
    int fd = -1;
    if (!colon) {
        free(host);
        return hp_err_set(err, HP_EUSAGE, "bad agent address '%s' (HOST:PORT expected)", addr);
    }
    *colon = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) {
        hp_err_set(err, HP_EUNAVAIL, "cannot resolve agent host '%s'", host);
        free(host);
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = 5 };
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        hp_err_errno(err, "connect to the agent at %s", addr);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    free(host);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Tasks the campaign canceled (ids in the agent's reply): not started ones
 * are dropped, running ones killed; the agent has recorded them already. */
static void cancel_tasks(struct pilot *p, json_t *ids)
{
    size_t k;
    json_t *v;
    json_array_foreach(ids, k, v) {
        long long id = json_integer_value(v);
        for (size_t i = 0; i < p->nqueue; i++)
            if (p->queue[i]->id == id) {
                task_free(p->queue[i]);
                memmove(&p->queue[i], &p->queue[i + 1], (p->nqueue - i - 1) *
                        sizeof(*p->queue));
                p->nqueue--;
                break;
            }
        for (size_t i = 0; i < p->nrun; i++)
            if (p->run[i]->id == id && !p->run[i]->killed) {
                kill(-p->run[i]->pid, SIGKILL);
                p->run[i]->killed = 1;     /* reaped as handed back: a no-op */
            }
    }
}

static void tcp_drop(struct pilot *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (p->lost_since == 0)
        p->lost_since = hp_now();
}

/* Send m (stolen) and read the answer into *reply (may be NULL). */
static int request(struct pilot *p, json_t *m, json_t **reply, struct hp_err *err)
{
    if (reply)
        *reply = NULL;
    int r = hp_wire_send(p->fd, m, err);
    json_decref(m);
    if (r < 0)
        return -1;
    p->last_send = hp_now();
    if (!reply)
        return 0;
    if (hp_wire_recv(p->fd, 60000, reply, err) < 0)
        return -1;
    json_t *left = json_object_get(*reply, "left");
    if (json_is_integer(left))
        p->left = (long)json_integer_value(left);
    p->agent_drain = json_is_true(json_object_get(*reply, "drain"));
    cancel_tasks(p, json_object_get(*reply, "cancel"));
    return 0;
}

/* Connect and authenticate. A refused secret is fatal (-1, HP_EAUTH); an
 * unreachable agent is retried later (returns 0 with fd < 0). */
static int tcp_register(struct pilot *p, struct hp_err *err)
{
    struct hp_err e2;
    hp_err_init(&e2);
    int fd = tcp_connect(p->o->agent, &e2);
    if (fd < 0) {
        if (e2.code == HP_EUSAGE)
            return hp_err_set(err, e2.code, "%s", e2.msg);
        return 0;
    }
    p->fd = fd;
    json_t *m = NULL;
    if (hp_wire_recv(fd, 10000, &m, &e2) < 0) {
        tcp_drop(p);
        return 0;
    }
    const char *nonce = json_string_value(json_object_get(m, "nonce"));
    char mac[65];
    hp_wire_mac(p->secret, p->secretlen, nonce ? nonce : "", mac);
    json_decref(m);
    json_t *reg = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "t", "register", "pilot", p->id,
                            "mac", mac, "cores", p->o->cores, "gpus", (int)p->ngpus,
                            "nodes", p->o->nodes);
    OPENSSL_cleanse(mac, sizeof(mac));
    json_t *reply = NULL;
    if (request(p, reg, &reply, &e2) < 0) {
        tcp_drop(p);
        return 0;
    }
    const char *t = json_string_value(json_object_get(reply, "t"));
    if (!t || strcmp(t, "welcome") != 0) {
        json_decref(reply);
        close(p->fd);
        p->fd = -1;
        return hp_err_set(err, HP_EAUTH, "the agent at %s refused this pilot (wrong campaign "
                          "secret? use the secret file of the agent's directory)", p->o->agent);
    }
    agent_hb(p, json_object_get(reply, "hb"));
    json_decref(reply);
    p->lost_since = 0;
    return 0;
}

static void queue_push(struct pilot *p, struct task *t)
{
    if (p->nqueue == p->aqueue) {
        p->aqueue = p->aqueue ? 2 * p->aqueue : 64;
        p->queue = hp_xrealloc(p->queue, p->aqueue * sizeof(*p->queue));
    }
    p->queue[p->nqueue++] = t;
}

static void take_task(struct pilot *p, json_t *j, int batch)
{
    struct task *t = hp_xcalloc(1, sizeof(*t));
    t->spec = json_incref(j);
    t->id = json_integer_value(json_object_get(j, "id"));
    t->attempt = (int)json_integer_value(json_object_get(j, "attempt"));
    t->cores = (int)json_integer_value(json_object_get(j, "cores"));
    t->gpus = (int)json_integer_value(json_object_get(j, "gpus"));
    t->nodes = (int)json_integer_value(json_object_get(j, "nodes"));
    t->walltime = (int)json_integer_value(json_object_get(j, "walltime"));
    if (t->cores < 1)
        t->cores = 1;
    if (t->nodes < 1)
        t->nodes = 1;
    t->batch = batch;
    queue_push(p, t);
}

static void tcp_pull(struct pilot *p, int n)
{
    struct hp_err err;
    hp_err_init(&err);
    json_t *m = json_pack("{s:s,s:i,s:I}", "t", "pull", "n", n, "remaining",
                          (json_int_t)remaining(p)), *reply = NULL;
    if (request(p, m, &reply, &err) < 0) {
        tcp_drop(p);
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(reply, "tasks"), i, t)
        take_task(p, t, -1);
    json_decref(reply);
}

static int tcp_flush(struct pilot *p)
{
    struct hp_err err;
    hp_err_init(&err);
    json_t *m = json_pack("{s:s,s:O}", "t", "results", "r", p->results), *reply = NULL;
    if (request(p, m, &reply, &err) < 0) {
        tcp_drop(p);
        return -1;
    }
    json_decref(reply);
    json_array_clear(p->results);
    return 0;
}

/* ---- spool ---- */

static char *spool_sub(struct pilot *p, const char *a, const char *b)
{
    char *x = hp_path_join(p->o->spool, a);
    if (!b)
        return x;
    char *y = hp_path_join(x, b);
    free(x);
    return y;
}

static void spool_hb(struct pilot *p)
{
    int fd = open(p->spool_hb, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
    p->last_send = hp_now();
}

static void spool_read_status(struct pilot *p)
{
    char *path = spool_sub(p, "status", NULL), *text = NULL;
    size_t len;
    if (hp_read_file(path, 4096, &text, &len) == 0) {
        json_error_t je;
        json_t *j = json_loadb(text, len, 0, &je);
        if (json_is_integer(json_object_get(j, "left")))
            p->left = (long)json_integer_value(json_object_get(j, "left"));
        p->agent_drain = json_is_true(json_object_get(j, "drain"));
        agent_hb(p, json_object_get(j, "hb"));
        json_decref(j);
        free(text);
    }
    free(path);
}

static void spool_claim(struct pilot *p)
{
    char *ndir = spool_sub(p, "new", NULL);
    DIR *d = opendir(ndir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!hp_ends_with(e->d_name, ".batch") || strlen(e->d_name) >= sizeof(p->batches->name))
            continue;
        char *from = hp_path_join(ndir, e->d_name), *to = hp_path_join(p->spool_leased,
                                                                         e->d_name);
        int r = rename(from, to);
        if (r < 0 && errno == ENOENT && hp_mkdir_p(p->spool_leased, 0700) == 0)
            r = rename(from, to);   /* the agent took us for lost and removed our folder */
        free(from);
        if (r < 0) {            /* another pilot was faster */
            free(to);
            continue;
        }
        char *text = NULL;
        size_t len = 0;
        if (hp_read_file(to, HP_WIRE_MAX, &text, &len) == 0) {
            p->batches = hp_xrealloc(p->batches, (p->nbatches + 1) * sizeof(*p->batches));
            struct batch *b = &p->batches[p->nbatches];
            snprintf(b->name, sizeof(b->name), "%s", e->d_name);
            b->outstanding = 0;
            size_t pos = 0;
            while (pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t end = nl ? (size_t)(nl - text) : len;
                json_error_t je;
                json_t *j = end > pos ? json_loadb(text + pos, end - pos, 0, &je) : NULL;
                if (json_is_object(j)) {
                    take_task(p, j, (int)p->nbatches);
                    b->outstanding++;
                }
                json_decref(j);
                pos = end + 1;
            }
            p->nbatches++;
            free(text);
        }
        free(to);
        break;
    }
    if (d)
        closedir(d);
    free(ndir);
}

static int spool_flush(struct pilot *p)
{
    struct hp_buf b = HP_BUF_INIT;
    size_t i;
    json_t *r;
    json_array_foreach(p->results, i, r) {
        char *s = json_dumps(r, JSON_COMPACT);
        hp_buf_adds(&b, s);
        hp_buf_addch(&b, '\n');
        free(s);
    }
    char name[128];
    snprintf(name, sizeof(name), "%s-%ld.res", p->id, ++p->seq);
    char *path = spool_sub(p, "done", name);
    struct hp_err err;
    hp_err_init(&err);
    int rc = hp_wire_write_atomic(path, b.buf, b.len, 0600, &err);
    free(path);
    hp_buf_release(&b);
    if (rc < 0)
        return -1;
    /* a batch whose every task is reported is deleted (after its results
     * are in done/, so an agent never finds a task in neither) */
    json_array_foreach(p->results, i, r) {
        json_t *bj = json_object_get(r, "batch");
        if (!json_is_integer(bj))
            continue;
        struct batch *bt = &p->batches[json_integer_value(bj)];
        if (--bt->outstanding == 0) {
            char *bp = hp_path_join(p->spool_leased, bt->name);
            unlink(bp);
            free(bp);
        }
    }
    json_array_clear(p->results);
    return 0;
}

/* ---- tasks ---- */

static int gpu_take(struct pilot *p, struct task *t)
{
    int got = 0;
    for (size_t i = 0; i < p->ngpus && got < t->gpus; i++)
        if (!p->gpu_busy[i])
            t->gpu_slot[got++] = (int)i;
    return got == t->gpus;
}

static char **task_env(struct pilot *p, struct task *t)
{
    json_t *env = json_object_get(t->spec, "env");
    size_t n = 0;
    while (environ[n])
        n++;
    char **v = hp_xcalloc(n + json_object_size(env) + 3, sizeof(char *));
    size_t k = 0;
    const char *key;
    json_t *val;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int skip = 0;
        json_object_foreach(env, key, val)
            skip |= strlen(key) == kl && memcmp(key, environ[i], kl) == 0;
        if (t->gpus > 0 && ((kl == 20 && memcmp(environ[i], "CUDA_VISIBLE_DEVICES", 20) == 0) ||
                            (kl == 20 && memcmp(environ[i], "ROCR_VISIBLE_DEVICES", 20) == 0)))
            skip = 1;
        if (!skip)
            v[k++] = hp_xstrdup(environ[i]);
    }
    json_object_foreach(env, key, val)
        v[k++] = hp_xasprintf("%s=%s", key, json_string_value(val));
    if (t->gpus > 0) {
        struct hp_buf b = HP_BUF_INIT;
        for (int i = 0; i < t->gpus; i++)
            hp_buf_addf(&b, "%s%s", i ? "," : "", p->gpu_ids[t->gpu_slot[i]]);
        v[k++] = hp_xasprintf("CUDA_VISIBLE_DEVICES=%s", b.buf);
        v[k++] = hp_xasprintf("ROCR_VISIBLE_DEVICES=%s", b.buf);
        hp_buf_release(&b);
    }
    return v;
}

/* The argv to spawn: the task's argv, or sh -c TEXT; behind the launcher
 * when the task spans more than one node. */
static char **task_argv(struct pilot *p, struct task *t)
{
    json_t *argv = json_object_get(t->spec, "argv");
    const char *sh = json_string_value(json_object_get(t->spec, "sh"));
    size_t n = argv ? json_array_size(argv) : 3;
    char **v = hp_xcalloc(n + 8, sizeof(char *));
    size_t k = 0;
    const char *l = p->o->launcher;
    if (t->nodes > 1 && l && strcmp(l, "srun") == 0) {
        v[k++] = hp_xstrdup("srun");
        v[k++] = hp_xasprintf("--nodes=%d", t->nodes);
        v[k++] = hp_xasprintf("--ntasks=%d", t->nodes);
    } else if (t->nodes > 1 && l && strcmp(l, "mpiexec") == 0) {
        v[k++] = hp_xstrdup("mpiexec");
        v[k++] = hp_xstrdup("-n");
        v[k++] = hp_xasprintf("%d", t->nodes);
    }
    if (argv) {
        for (size_t i = 0; i < n; i++)
            v[k++] = hp_xstrdup(json_string_value(json_array_get(argv, i)));
    } else {
        v[k++] = hp_xstrdup("/bin/sh");
        v[k++] = hp_xstrdup("-c");
        v[k++] = hp_xstrdup(sh ? sh : "false");
    }
    return v;
}

static void task_start(struct pilot *p, struct task *t)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGCHLD);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                             POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    const char *cwd = json_string_value(json_object_get(t->spec, "cwd"));
    const char *out = json_string_value(json_object_get(t->spec, "stdout"));
    const char *errf = json_string_value(json_object_get(t->spec, "stderr"));
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out)
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (errf)
        posix_spawn_file_actions_addopen(&fa, 2, errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char **argv = task_argv(p, t), **envp = task_env(p, t);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
    hp_strv_free(argv);
    hp_strv_free(envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {          /* as a shell would: 127 not found, 126 not runnable */
        add_result(p, t, 0, rc == ENOENT ? 127 : 126, 0);
        task_free(t);
        return;
    }
    t->pid = pid;
    t->started = hp_now();
    p->free_cores -= t->nodes > 1 ? p->o->cores : t->cores;
    for (int i = 0; i < t->gpus; i++)
        p->gpu_busy[t->gpu_slot[i]] = 1;
    if (p->nrun == p->arun) {
        p->arun = p->arun ? 2 * p->arun : 64;
        p->run = hp_xrealloc(p->run, p->arun * sizeof(*p->run));
    }
    p->run[p->nrun++] = t;
    p->ran++;
    p->last_work = hp_now();
}

/* Start what fits; hand back what cannot finish in the allocation. */
static void schedule(struct pilot *p)
{
    size_t keep = 0;
    for (size_t i = 0; i < p->nqueue; i++) {
        struct task *t = p->queue[i];
        int need = t->nodes > 1 ? p->o->cores : t->cores;
        if (term_flag || p->agent_drain || (p->end > 0 && t->walltime > 0 && t->walltime > remaining(p)) ||
            t->gpus > (int)p->ngpus || t->gpus > 64 || need > p->o->cores ||
            t->nodes > p->o->nodes) {
            add_result(p, t, 1, 0, 0);
            task_free(t);
            continue;
        }
        if (need <= p->free_cores && gpu_take(p, t) && (t->nodes == 1 || p->nrun == 0)) {
            task_start(p, t);
            continue;
        }
        p->queue[keep++] = t;
    }
    p->nqueue = keep;
}

static void reap(struct pilot *p)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (size_t i = 0; i < p->nrun; i++) {
            struct task *t = p->run[i];
            if (t->pid != pid)
                continue;
            p->free_cores += t->nodes > 1 ? p->o->cores : t->cores;
            for (int g = 0; g < t->gpus; g++)
                p->gpu_busy[t->gpu_slot[g]] = 0;
            int overdue = t->walltime > 0 && hp_now() - t->started > t->walltime;
            int sig = WIFSIGNALED(st) ? WTERMSIG(st)
                      /* a shell reports its child's death by signal N as 128+N */
                      : WIFEXITED(st) && WEXITSTATUS(st) > 128 ? WEXITSTATUS(st) - 128 : 0;
            if (t->killed ||       /* stopped by the drain: not completed */
                /* killed by a signal after the pilot was told to stop (the
                 * scheduler signals every process of an ending job): the
                 * allocation ended, not the task: handed back */
                (term_flag && !overdue &&
                 (sig == SIGTERM || sig == SIGKILL || sig == SIGINT)))
                add_result(p, t, 1, 0, 0);
            else
                add_result(p, t, 0, WIFEXITED(st) ? WEXITSTATUS(st) : 0,
                           WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            task_free(t);
            p->run[i] = p->run[--p->nrun];
            p->last_work = hp_now();
            break;
        }
    }
}

static int flush(struct pilot *p)
{
    if (json_array_size(p->results) == 0)
        return 0;
    if (p->o->spool)
        return spool_flush(p);
    if (p->fd < 0)
        return -1;
    return tcp_flush(p);
}

static int load_secret(struct pilot *p, struct hp_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct stat sb;
    if (stat(p->o->secret_file, &sb) == 0 && (sb.st_mode & 077))
        return hp_err_set(err, HP_EAUTH, "secret file '%s' is readable by others (chmod 600 "
                          "it)", p->o->secret_file);
    if (hp_read_file(p->o->secret_file, 4096, &text, &len) < 0)
        return hp_err_errno(err, "read secret file '%s'", p->o->secret_file);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    int ret = 0;
    if (len < 16 || len > sizeof(p->secret)) {
        ret = hp_err_set(err, HP_EAUTH, "secret file '%s' is malformed", p->o->secret_file);
    } else {
        memcpy(p->secret, text, len);
        p->secretlen = len;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return ret;
}

static void parse_gpus(struct pilot *p)
{
    if (!p->o->gpus || !*p->o->gpus)
        return;
    const char *s = p->o->gpus;
    while (*s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n) {
            p->gpu_ids = hp_xrealloc(p->gpu_ids, (p->ngpus + 2) * sizeof(char *));
            p->gpu_ids[p->ngpus++] = hp_xstrndup(s, n);
            p->gpu_ids[p->ngpus] = NULL;
        }
        s += n + (c ? 1 : 0);
    }
    p->gpu_busy = hp_xcalloc(p->ngpus + 1, sizeof(int));
}

int hp_pilot_run(const struct hp_pilot_opts *o, long *ran, struct hp_err *err)
{
    struct pilot p = { .o = o, .fd = -1, .left = -1 };
    int ret = -1;
    *ran = 0;
    p.results = json_array();
    p.free_cores = o->cores;
    p.hb_every = o->heartbeat;
    parse_gpus(&p);
    if (o->id) {
        snprintf(p.id, sizeof(p.id), "%s", o->id);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
        snprintf(p.id, sizeof(p.id), "%s-%ld", host, (long)getpid());
    }
    if (strchr(p.id, '/') || p.id[0] == '.') {
        hp_err_set(err, HP_EUSAGE, "bad pilot id '%s' (no '/', no leading '.')", p.id);
        goto out;
    }
    if (o->walltime > 0) {
        p.end = hp_now() + (double)o->walltime;
    } else if (getenv("SLURM_JOB_END_TIME")) {
        long e = strtol(getenv("SLURM_JOB_END_TIME"), NULL, 10);
        if (e > 0)
            p.end = hp_now() + (double)(e - (long)time(NULL));
    }
    if (o->agent && load_secret(&p, err) < 0)
        goto out;
    if (pipe2(sigpipe_fd, O_CLOEXEC | O_NONBLOCK) < 0) {
        hp_err_errno(err, "pipe");
        goto out;
    }
    term_flag = 0;
    struct sigaction sa = { .sa_handler = on_sig };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o->spool) {
        p.spool_leased = spool_sub(&p, "leased", p.id);
        p.spool_hb = spool_sub(&p, "pilots", p.id);
        char *nd = spool_sub(&p, "new", NULL);
        int ok = access(nd, F_OK) == 0;
        free(nd);
        if (!ok) {
            hp_err_set(err, HP_EUNAVAIL, "'%s' is not an agent's spool (no new/ in it)",
                       o->spool);
            goto out;
        }
        spool_hb(&p);
        spool_read_status(&p);
        if (hp_mkdir_p(p.spool_leased, 0700) < 0) {
            hp_err_errno(err, "create '%s'", p.spool_leased);
            goto out;
        }
    } else {
        if (tcp_register(&p, err) < 0)
            goto out;
        if (p.fd < 0) {
            hp_err_set(err, HP_EUNAVAIL, "cannot reach the agent at %s", o->agent);
            goto out;
        }
    }
    /* keep enough tasks on hand that no slot waits for a round trip */
    size_t target = (size_t)(o->cores * 32 < 64 ? 64 : o->cores * 32);
    double drain_end = 0;
    p.last_work = p.last_flush = hp_now();
    for (;;) {
        double now = hp_now();
        reap(&p);
        if (term_flag && drain_end == 0)
            drain_end = now + o->grace;
        if (drain_end > 0 && now > drain_end) {
            for (size_t i = 0; i < p.nrun; i++)
                if (!p.run[i]->killed) {
                    kill(-p.run[i]->pid, SIGKILL);
                    p.run[i]->killed = 1;
                }
        }
        /* a task past its walltime: SIGTERM, then SIGKILL 5 s later */
        for (size_t i = 0; i < p.nrun; i++) {
            struct task *t = p.run[i];
            if (t->walltime > 0 && !t->killed && now - t->started > t->walltime)
                kill(-t->pid, now - t->started > t->walltime + 5 ? SIGKILL : SIGTERM);
        }
        schedule(&p);
        if (!o->spool && p.fd < 0) {
            if (now - p.lost_since > o->reconnect) {
                hp_err_set(err, HP_EUNAVAIL, "lost the agent at %s for %d s", o->agent,
                           o->reconnect);
                goto out;
            }
            struct hp_err e2;
            hp_err_init(&e2);
            if (tcp_register(&p, &e2) < 0) {
                hp_err_set(err, e2.code, "%s", e2.msg);
                goto out;
            }
        }
        int online = o->spool || p.fd >= 0;
        size_t nres = json_array_size(p.results);
        if (online && nres && (nres >= 256 || p.nqueue == 0 || now - p.last_flush > 0.05)) {
            if (flush(&p) == 0)
                p.last_flush = now;
        }
        if (o->spool && now - p.last_send > p.hb_every) {
            spool_hb(&p);
            spool_read_status(&p);
        }
        int want_more = !term_flag && !p.agent_drain && p.nqueue < target / 2;
        if (online && want_more) {
            size_t before = p.nqueue;
            if (o->spool)
                spool_claim(&p);
            else
                tcp_pull(&p, (int)(target - p.nqueue));
            if (p.nqueue > before)
                p.last_work = now;
            schedule(&p);
        }
        if (!o->spool && p.fd >= 0 && now - p.last_send > p.hb_every) {
            struct hp_err e2;
            hp_err_init(&e2);
            json_t *reply = NULL;
            if (request(&p, json_pack("{s:s}", "t", "hb"), &reply, &e2) < 0)
                tcp_drop(&p);
            json_decref(reply);
        }
        int idle = p.nrun == 0 && p.nqueue == 0;
        if (idle && json_array_size(p.results) == 0) {
            if (o->spool)
                spool_read_status(&p);
            if (term_flag || p.agent_drain || p.left == 0 || now - p.last_work > o->idle)
                break;
        }
        /* sleep until a child ends or a signal comes; poll the agent or
         * the spool again soon when idle */
        struct pollfd pf = { .fd = sigpipe_fd[0], .events = POLLIN };
        int wait = idle ? (o->spool ? 50 : 100) : (p.nqueue && !want_more ? 1000 : 20);
        if (p.nrun == 0 && p.nqueue && p.free_cores > 0)
            wait = 100;
        if (json_array_size(p.results) && wait > 20)
            wait = 20;
        if (poll(&pf, 1, wait) > 0) {
            char b[256];
            while (read(sigpipe_fd[0], b, sizeof(b)) > 0)
                ;
        }
    }
    if (!o->spool && p.fd >= 0) {
        struct hp_err e2;
        hp_err_init(&e2);
        request(&p, json_pack("{s:s}", "t", "bye"), NULL, &e2);
    }
    if (o->spool) {
        rmdir(p.spool_leased);
        unlink(p.spool_hb);
    }
    ret = 0;
out:
    *ran = p.ran;
    for (size_t i = 0; i < p.nrun; i++) {
        kill(-p.run[i]->pid, SIGKILL);
        waitpid(p.run[i]->pid, NULL, 0);
        task_free(p.run[i]);
    }
    for (size_t i = 0; i < p.nqueue; i++)
        task_free(p.queue[i]);
    free(p.queue);
    free(p.run);
    json_decref(p.results);
    free(p.batches);
    if (p.fd >= 0)
        close(p.fd);
    for (size_t i = 0; i < p.ngpus; i++)
        free(p.gpu_ids[i]);
    free(p.gpu_ids);
    free(p.gpu_busy);
    free(p.spool_leased);
    free(p.spool_hb);
    OPENSSL_cleanse(p.secret, sizeof(p.secret));
    for (int i = 0; i < 2; i++)
        if (sigpipe_fd[i] >= 0) {
            close(sigpipe_fd[i]);
            sigpipe_fd[i] = -1;
        }
    signal(SIGCHLD, SIG_DFL);
    return ret;
}
