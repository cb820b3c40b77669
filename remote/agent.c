/* agent.c - the agent's event loop: TCP pilots, spool pilots, leases. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "agent-int.h"
#include "pilot-wire.h"
#include "util.h"
#include "banned.h"

#define MAX_CONNS 1024

struct conn {
    int fd;
    int authed;
    char nonce[2 * HP_WIRE_NONCE + 1];
    char pilot[64];
    int cores, gpus, nodes;
    double since;          /* accepted at (hp_now) */
    struct hp_buf in;
};

struct pilot {
    char id[64];
    double last_seen;
    double cancel_seen;    /* cancellations up to this time were sent */
};

struct agent {
    const struct hp_agent_opts *o;
    sqlite3 *db;
    unsigned char secret[64];
    size_t secretlen;
    int lfd;
    struct conn *conns[MAX_CONNS];
    size_t nconns;
    struct pilot *pilots;
    size_t npilots;
    long left;             /* queued + leased, recounted every tick */
    int drain;
    char *spool;
    long batch_seq;
    struct hp_pilotmgr *pm;   /* pilot jobs, or NULL */
    json_t *claimed;          /* spool: "PILOT/BATCH" names read by spool_claims */
    sqlite3_stmt *st_pull, *st_lease, *st_done, *st_release, *st_requeue_pilot,
                 *st_requeue_id;
};

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* The secret: 32 random bytes as hex in DIR/secret (0600), made once. */
static int load_secret(struct agent *a, struct hp_err *err)
{
    char *path = hp_path_join(a->o->dir, "secret");
    char *text = NULL;
    size_t len = 0;
    int ret = -1;
    if (access(path, F_OK) < 0) {
        unsigned char raw[32];
        char hex[65];
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            hp_err_set(err, HP_ESYS, "no random bytes for the campaign secret");
            goto out;
        }
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        hex[64] = '\n';
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || hp_write_full(fd, hex, 65) < 0 || close(fd) < 0) {
            hp_err_errno(err, "write the campaign secret '%s'", path);
            goto out;
        }
        OPENSSL_cleanse(raw, sizeof(raw));
        OPENSSL_cleanse(hex, sizeof(hex));
    }
    if (hp_read_file(path, 4096, &text, &len) < 0) {
        hp_err_errno(err, "read the campaign secret '%s'", path);
        goto out;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len < 16 || len > sizeof(a->secret)) {
        hp_err_set(err, HP_EINPUT, "campaign secret '%s' is malformed (16 to 64 bytes "
                   "expected)", path);
        goto out;
    }
    memcpy(a->secret, text, len);
    a->secretlen = len;
    ret = 0;
out:
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    free(path);
    return ret;
}

static int lock_dir(const char *dir, int *lockfd, struct hp_err *err)
{
    char *path = hp_path_join(dir, "agent.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0)
        return hp_err_errno(err, "open the agent lock in '%s'", dir);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return hp_err_set(err, HP_EUNAVAIL, "an agent is already running in '%s' (stop it "
                          "with 'hpcport agent stop --dir %s')", dir, dir);
    }
    char b[32];
    int n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, b, (size_t)n, 0) != n) {
        close(fd);
        return hp_err_errno(err, "write the agent lock in '%s'", dir);
    }
    *lockfd = fd;
    return 0;
}

static int listen_on(const char *addr, int *fdout, int *port, struct hp_err *err)
{
    char *host = hp_xstrdup(addr ? addr : "127.0.0.1:0");
    char *colon = strrchr(host, ':');
    int ret = -1, fd = -1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
    if (!colon || colon == host) {
        hp_err_set(err, HP_EUSAGE, "bad listen address '%s' (HOST:PORT expected)", host);
        goto out;
    }
    *colon = '\0';
    const char *h = host;
    if (h[0] == '[') {
        h++;
        host[strlen(host) - 1] = '\0';
    }
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0 || !res) {
        hp_err_set(err, HP_EUSAGE, "cannot resolve listen address '%s'", addr);
        goto out;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        hp_err_errno(err, "listen on '%s'", addr);
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    *fdout = fd;
    fd = -1;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (res)
        freeaddrinfo(res);
    free(host);
    return ret;
}

static struct pilot *pilot_find(struct agent *a, const char *id, int add)
{
    for (size_t i = 0; i < a->npilots; i++)
        if (strcmp(a->pilots[i].id, id) == 0)
            return &a->pilots[i];
    if (!add)
        return NULL;
    a->pilots = hp_xrealloc(a->pilots, (a->npilots + 1) * sizeof(*a->pilots));
    struct pilot *p = &a->pilots[a->npilots++];
    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->last_seen = hp_now();
    return p;
}

/* Has pilot id talked to this agent within the heartbeat timeout? */
static int pilot_seen(void *arg, const char *id)
{
    struct agent *a = arg;
    for (size_t i = 0; i < a->npilots; i++)
        if (strcmp(a->pilots[i].id, id) == 0)
            return hp_now() - a->pilots[i].last_seen <= a->o->hb_timeout;
    if (a->spool) {     /* spool pilots heartbeat by touching SPOOL/pilots/ID */
        char *rel = hp_path_join("pilots", id), *p = hp_path_join(a->spool, rel);
        struct stat sb;
        int ok = stat(p, &sb) == 0 && hp_wall_now() - (double)sb.st_mtime <=
                                          a->o->hb_timeout + 1;
        free(rel);
        free(p);
        return ok;
    }
    return 0;
}

static void recount(struct agent *a)
{
    sqlite3_stmt *st = NULL;
    a->left = 0;
    if (sqlite3_prepare_v2(a->db, "SELECT count(*) FROM tasks WHERE state < 2", -1, &st,
                           NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        a->left = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

static json_t *task_json(sqlite3_stmt *st)
{
    json_error_t je;
    json_t *t = json_loads((const char *)sqlite3_column_text(st, 1), 0, &je);
    if (!t)
        t = json_object();
    json_object_set_new(t, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(t, "cores", json_integer(sqlite3_column_int(st, 2)));
    json_object_set_new(t, "gpus", json_integer(sqlite3_column_int(st, 3)));
    json_object_set_new(t, "nodes", json_integer(sqlite3_column_int(st, 4)));
    json_object_set_new(t, "walltime", json_integer(sqlite3_column_int(st, 5)));
    json_object_set_new(t, "attempt", json_integer(sqlite3_column_int(st, 6)));
    return t;
}

/* Lease up to n queued tasks that fit (cores, gpus, nodes, remaining time)
 * to pilot; returns a JSON array. */
static json_t *lease(struct agent *a, const char *pilot, int n, int cores, int gpus, int nodes,
                     long remaining)
{
    json_t *arr = json_array();
    if (a->drain || n <= 0)
        return arr;
    sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_stmt *st = a->st_pull;
    sqlite3_bind_int(st, 1, cores);
    sqlite3_bind_int(st, 2, gpus);
    sqlite3_bind_int(st, 3, nodes);
    sqlite3_bind_int64(st, 4, remaining);
    sqlite3_bind_int(st, 5, n);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, task_json(st));
    sqlite3_reset(st);
    double now = hp_wall_now();
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        sqlite3_bind_text(a->st_lease, 1, pilot, -1, SQLITE_STATIC);
        sqlite3_bind_double(a->st_lease, 2, now);
        sqlite3_bind_int64(a->st_lease, 3, json_integer_value(json_object_get(t, "id")));
        sqlite3_step(a->st_lease);
        sqlite3_reset(a->st_lease);
    }
    sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
    return arr;
}

/* Record a batch of results from pilot, all or none (-1: none recorded,
 * the pilot must send them again). A result for a task already done or
 * failed changes nothing (the first recorded result wins); a pilot hands
 * back (release) only tasks still leased to it. */
static int results(struct agent *a, const char *pilot, json_t *r)
{
    size_t i;
    json_t *x;
    double now = hp_wall_now();
    long done = 0;
    if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    json_array_foreach(r, i, x) {
        json_int_t id = json_integer_value(json_object_get(x, "id"));
        int rc;
        if (json_is_true(json_object_get(x, "release"))) {
            sqlite3_bind_int64(a->st_release, 1, id);
            sqlite3_bind_text(a->st_release, 2, pilot, -1, SQLITE_STATIC);
            rc = sqlite3_step(a->st_release);
            sqlite3_reset(a->st_release);
            if (rc != SQLITE_DONE)
                goto fail;
            continue;
        }
        int ex = (int)json_integer_value(json_object_get(x, "exit"));
        int sig = (int)json_integer_value(json_object_get(x, "signal"));
        sqlite3_stmt *st = a->st_done;
        sqlite3_bind_int(st, 1, ex == 0 && sig == 0 ? HP_TASK_DONE : HP_TASK_FAILED);
        sqlite3_bind_int(st, 2, ex);
        sqlite3_bind_int(st, 3, sig);
        sqlite3_bind_double(st, 4, now);
        sqlite3_bind_text(st, 5, pilot, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, id);
        rc = sqlite3_step(st);
        done += sqlite3_changes(a->db) > 0;
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    a->left = a->left > done ? a->left - done : 0;
    return 0;
fail:
    sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static void requeue_pilot(struct agent *a, const char *pilot)
{
    sqlite3_bind_text(a->st_requeue_pilot, 1, pilot, -1, SQLITE_STATIC);
    sqlite3_step(a->st_requeue_pilot);
    sqlite3_reset(a->st_requeue_pilot);
}

static json_t *ack(struct agent *a)
{
    return json_pack("{s:s,s:I,s:b}", "t", "ack", "left", (json_int_t)a->left, "drain",
                     a->drain);
}

/* Add "cancel": the ids of tasks held by pilot that were canceled since the
 * last reply to it (hp_agent_cancel marks them exit -1, signal 15). */
static json_t *with_cancels(struct agent *a, const char *pilot, json_t *reply)
{
    struct pilot *pl = pilot_find(a, pilot, 0);
    if (!pl || !reply)
        return reply;
    sqlite3_stmt *st = NULL;
    double now = hp_wall_now();
    json_t *ids = json_array();
    sqlite3_prepare_v2(a->db, "SELECT id FROM tasks WHERE pilot=? AND state=3 AND exit=-1 AND "
                       "signal=15 AND t_end>=?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, pilot, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, pl->cancel_seen - 5);   /* repeats are harmless */
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(ids, json_integer(sqlite3_column_int64(st, 0)));
    sqlite3_finalize(st);
    pl->cancel_seen = now;
    if (json_array_size(ids))
        json_object_set_new(reply, "cancel", ids);
    else
        json_decref(ids);
    return reply;
}

static void conn_close(struct agent *a, size_t i)
{
    struct conn *c = a->conns[i];
    close(c->fd);
    hp_buf_release(&c->in);
    free(c);
    a->conns[i] = a->conns[--a->nconns];
}

static void conn_accept(struct agent *a)
{
    int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (a->nconns >= MAX_CONNS) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = hp_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->since = hp_now();
    hp_buf_init(&c->in, 4096);
    unsigned char raw[HP_WIRE_NONCE];
    RAND_bytes(raw, sizeof(raw));
    for (int i = 0; i < HP_WIRE_NONCE; i++)
        snprintf(c->nonce + 2 * i, 3, "%02x", raw[i]);
    struct hp_err err;
    hp_err_init(&err);
    json_t *m = json_pack("{s:s,s:s}", "t", "challenge", "nonce", c->nonce);
    int r = hp_wire_send(fd, m, &err);
    json_decref(m);
    if (r < 0) {
        close(fd);
        hp_buf_release(&c->in);
        free(c);
        return;
    }
    a->conns[a->nconns++] = c;
}

/* One message from connection c: 0 keep, -1 close. */
static int conn_msg(struct agent *a, struct conn *c, json_t *m)
{
    struct hp_err err;
    hp_err_init(&err);
    const char *t = json_string_value(json_object_get(m, "t"));
    json_t *reply = NULL;
    if (!t)
        return -1;
    if (!c->authed) {
        const char *id = json_string_value(json_object_get(m, "pilot"));
        const char *mac = json_string_value(json_object_get(m, "mac"));
        char want[65];
        hp_wire_mac(a->secret, a->secretlen, c->nonce, want);
        int good = strcmp(t, "register") == 0 && id && *id && strlen(id) < sizeof(c->pilot) &&
                   mac && hp_wire_mac_eq(mac, want);
        OPENSSL_cleanse(want, sizeof(want));
        if (!good) {
            reply = json_pack("{s:s,s:s}", "t", "denied", "msg",
                              "authentication failed (wrong campaign secret?)");
            hp_wire_send(c->fd, reply, &err);
            json_decref(reply);
            return -1;
        }
        c->authed = 1;
        snprintf(c->pilot, sizeof(c->pilot), "%s", id);
        c->cores = (int)json_integer_value(json_object_get(m, "cores"));
        c->gpus = (int)json_integer_value(json_object_get(m, "gpus"));
        c->nodes = (int)json_integer_value(json_object_get(m, "nodes"));
        pilot_find(a, c->pilot, 1)->last_seen = hp_now();
        reply = json_pack("{s:s,s:i}", "t", "welcome", "hb", a->o->hb_timeout);
    } else {
        pilot_find(a, c->pilot, 1)->last_seen = hp_now();
        if (strcmp(t, "pull") == 0) {
            int n = (int)json_integer_value(json_object_get(m, "n"));
            long rem = (long)json_integer_value(json_object_get(m, "remaining"));
            json_t *tasks = lease(a, c->pilot, n > 4096 ? 4096 : n, c->cores, c->gpus,
                                  c->nodes, rem);
            if (json_array_size(tasks) == 0)
                recount(a);     /* tasks added since the last tick */
            reply = json_pack("{s:s,s:o,s:I,s:b}", "t", "batch", "tasks", tasks, "left",
                              (json_int_t)a->left, "drain", a->drain);
        } else if (strcmp(t, "results") == 0) {
            json_t *r = json_object_get(m, "r");
            if (json_is_array(r) && results(a, c->pilot, r) < 0)
                return -1;      /* not recorded: the pilot sends them again */
            reply = ack(a);
        } else if (strcmp(t, "hb") == 0) {
            reply = ack(a);
        } else if (strcmp(t, "bye") == 0) {
            requeue_pilot(a, c->pilot);
            for (size_t i = 0; i < a->npilots; i++)
                if (strcmp(a->pilots[i].id, c->pilot) == 0) {
                    a->pilots[i] = a->pilots[--a->npilots];
                    break;
                }
            return -1;
        } else {
            return -1;
        }
    }
    if (c->authed)
        with_cancels(a, c->pilot, reply);
    int r = hp_wire_send(c->fd, reply, &err);
    json_decref(reply);
    return r;
}

static void conn_read(struct agent *a, size_t i)
{
    struct conn *c = a->conns[i];
    hp_buf_grow(&c->in, 65536);
    ssize_t r = read(c->fd, c->in.buf + c->in.len, 65536);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        conn_close(a, i);
        return;
    }
    hp_buf_setlen(&c->in, c->in.len + (size_t)r);
    if (!c->authed && c->in.len > 4096) {    /* a register message is small */
        conn_close(a, i);
        return;
    }
    for (;;) {
        json_t *m = NULL;
        struct hp_err err;
        hp_err_init(&err);
        int k = hp_wire_take(&c->in, &m, &err);
        if (k == 0)
            return;
        if (k < 0 || conn_msg(a, c, m) < 0) {
            json_decref(m);
            conn_close(a, i);
            return;
        }
        json_decref(m);
    }
}

/* ---- spool ---- */

static char *spool_path(struct agent *a, const char *sub)
{
    return hp_path_join(a->spool, sub);
}

/* Read the lines of a spool file as JSON objects, calling fn on each. */
static void spool_lines(const char *path, void (*fn)(struct agent *, json_t *, void *),
                        struct agent *a, void *arg)
{
    char *text = NULL;
    size_t len = 0;
    if (hp_read_file(path, HP_WIRE_MAX, &text, &len) < 0)
        return;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        json_error_t je;
        json_t *o = end > pos ? json_loadb(text + pos, end - pos, 0, &je) : NULL;
        if (json_is_object(o))
            fn(a, o, arg);
        json_decref(o);
        pos = end + 1;
    }
    free(text);
}

static void collect_one(struct agent *a, json_t *o, void *arg)
{
    (void)a;
    json_array_append(arg, o);
}

static void spool_collect(struct agent *a)
{
    char *dir = spool_path(a, "done");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!hp_ends_with(e->d_name, ".res"))
            continue;
        char *p = hp_path_join(dir, e->d_name);
        /* one file is one pilot's batch of results: one transaction */
        json_t *r = json_array();
        spool_lines(p, collect_one, a, r);
        const char *pilot = json_string_value(json_object_get(json_array_get(r, 0), "pilot"));
        if (results(a, pilot ? pilot : "spool", r) == 0)
            unlink(p);          /* else read again at the next tick */
        json_decref(r);
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
}

static void requeue_one(struct agent *a, json_t *o, void *arg)
{
    (void)arg;
    sqlite3_bind_int64(a->st_requeue_id, 1, json_integer_value(json_object_get(o, "id")));
    sqlite3_step(a->st_requeue_id);
    sqlite3_reset(a->st_requeue_id);
}

static void remember_id(struct agent *a, json_t *o, void *arg)
{
    (void)a;
    char *sql = hp_xasprintf("INSERT OR IGNORE INTO live VALUES(%lld)",
                             (long long)json_integer_value(json_object_get(o, "id")));
    sqlite3_exec(arg, sql, NULL, NULL, NULL);
    free(sql);
}

/* Call fn on every task line of every batch file in dir. */
static void batches_in(struct agent *a, const char *dir, int del,
                       void (*fn)(struct agent *, json_t *, void *), void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!hp_ends_with(e->d_name, ".batch"))
            continue;
        char *p = hp_path_join(dir, e->d_name);
        spool_lines(p, fn, a, arg);
        if (del)
            unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
}

static void claim_one(struct agent *a, json_t *o, void *arg)
{
    (void)a;
    sqlite3_stmt *st = arg;
    sqlite3_bind_int64(st, 2, json_integer_value(json_object_get(o, "id")));
    sqlite3_step(st);
    sqlite3_reset(st);
}

/* Batches claimed by pilots (renamed into leased/PILOT/): their tasks are
 * held by "spool:PILOT" from now on, so that a result for one of them
 * counts only from that pilot (each batch is read once). */
static void spool_claims(struct agent *a)
{
    char *ldir = spool_path(a, "leased");
    DIR *d = opendir(ldir);
    struct dirent *e;
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(a->db, "UPDATE tasks SET pilot=?1 WHERE id=?2 AND state=1 AND "
                       "pilot='spool'", -1, &st, NULL);
    while (st && d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *pd = hp_path_join(ldir, e->d_name), *holder = hp_xasprintf("spool:%s", e->d_name);
        DIR *bd = opendir(pd);
        struct dirent *b;
        sqlite3_bind_text(st, 1, holder, -1, SQLITE_TRANSIENT);
        while (bd && (b = readdir(bd))) {
            if (!hp_ends_with(b->d_name, ".batch"))
                continue;
            char *key = hp_xasprintf("%s/%s", e->d_name, b->d_name);
            if (!json_object_get(a->claimed, key)) {
                char *bp = hp_path_join(pd, b->d_name);
                sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
                spool_lines(bp, claim_one, a, st);
                sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
                json_object_set_new(a->claimed, key, json_true());
                free(bp);
            }
            free(key);
        }
        if (bd)
            closedir(bd);
        free(holder);
        free(pd);
    }
    sqlite3_finalize(st);
    if (d)
        closedir(d);
    free(ldir);
}

/* Lost spool pilots: no heartbeat for hb_timeout, or a leased/ folder with no
 * heartbeat file at all. */
static void spool_lost(struct agent *a)
{
    char *ldir = spool_path(a, "leased"), *pdir = spool_path(a, "pilots");
    DIR *d = opendir(ldir);
    struct dirent *e;
    double now = hp_wall_now();
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *hb = hp_path_join(pdir, e->d_name);
        struct stat sb;
        int lost = stat(hb, &sb) < 0 || now - (double)sb.st_mtime > a->o->hb_timeout;
        if (lost) {
            char *pd = hp_path_join(ldir, e->d_name);
            sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
            batches_in(a, pd, 1, requeue_one, NULL);
            sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
            rmdir(pd);
            unlink(hb);
            free(pd);
        }
        free(hb);
    }
    if (d)
        closedir(d);
    /* heartbeat files of pilots that left (their leased/ folder is gone) */
    d = opendir(pdir);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *hb = hp_path_join(pdir, e->d_name);
        struct stat sb;
        if (stat(hb, &sb) == 0 && now - (double)sb.st_mtime > a->o->hb_timeout)
            unlink(hb);
        free(hb);
    }
    if (d)
        closedir(d);
    free(ldir);
    free(pdir);
}

static int count_batches(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += hp_ends_with(e->d_name, ".batch");
    if (d)
        closedir(d);
    return n;
}

static void spool_fill(struct agent *a)
{
    char *ndir = spool_path(a, "new");
    struct hp_err err;
    for (int k = count_batches(ndir); k < 2 && !a->drain; k++) {
        json_t *tasks = lease(a, "spool", a->o->batch, 1 << 20, 1 << 20, 1 << 20, 0);
        if (json_array_size(tasks) == 0) {
            json_decref(tasks);
            break;
        }
        struct hp_buf b = HP_BUF_INIT;
        size_t i;
        json_t *t;
        json_array_foreach(tasks, i, t) {
            char *s = json_dumps(t, JSON_COMPACT);
            hp_buf_adds(&b, s);
            hp_buf_addch(&b, '\n');
            free(s);
        }
        json_decref(tasks);
        char name[64];
        snprintf(name, sizeof(name), "b%ld-%ld.batch", (long)getpid(), ++a->batch_seq);
        char *p = hp_path_join(ndir, name);
        hp_err_init(&err);
        hp_wire_write_atomic(p, b.buf, b.len, 0600, &err);
        free(p);
        hp_buf_release(&b);
    }
    free(ndir);
}

static void spool_status(struct agent *a)
{
    char *p = spool_path(a, "status");
    char text[128];
    int n = snprintf(text, sizeof(text), "{\"left\":%ld,\"drain\":%s,\"hb\":%d}\n", a->left,
                     a->drain ? "true" : "false", a->o->hb_timeout);
    struct hp_err err;
    hp_err_init(&err);
    hp_wire_write_atomic(p, text, (size_t)n, 0644, &err);
    free(p);
}

/* After a restart: tasks leased to the spool but in no batch file any more
 * go back to the queue (results written before a batch was deleted are
 * collected first, so none of them completed). */
static void spool_reconcile(struct agent *a)
{
    spool_collect(a);
    sqlite3_exec(a->db, "CREATE TEMP TABLE live(id INTEGER PRIMARY KEY)", NULL, NULL, NULL);
    char *ndir = spool_path(a, "new"), *ldir = spool_path(a, "leased");
    batches_in(a, ndir, 0, remember_id, a->db);
    DIR *d = opendir(ldir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *pd = hp_path_join(ldir, e->d_name);
        batches_in(a, pd, 0, remember_id, a->db);
        free(pd);
    }
    if (d)
        closedir(d);
    spool_collect(a);
    sqlite3_exec(a->db, "UPDATE tasks SET state=0, pilot=NULL, attempts=attempts+1 WHERE "
                 "state=1 AND (pilot='spool' OR pilot LIKE 'spool:%') AND id NOT IN "
                 "(SELECT id FROM live);"
                 "DROP TABLE live", NULL, NULL, NULL);
    free(ndir);
    free(ldir);
}

static int spool_setup(struct agent *a, struct hp_err *err)
{
    static const char *const subs[] = { "new", "leased", "done", "pilots" };
    if (hp_mkdir_p(a->spool, 0700) < 0)
        return hp_err_errno(err, "create spool '%s'", a->spool);
    for (int i = 0; i < 4; i++) {
        char *p = spool_path(a, subs[i]);
        int r = hp_mkdir_p(p, 0700);
        free(p);
        if (r < 0)
            return hp_err_errno(err, "create spool '%s'", a->spool);
    }
    return 0;
}

static void tick(struct agent *a)
{
    char *dp = hp_path_join(a->o->dir, "drain");
    a->drain = access(dp, F_OK) == 0;
    free(dp);
    double now = hp_now();
    /* a peer that has not authenticated in 10 s holds no slot */
    for (size_t i = a->nconns; i-- > 0;)
        if (!a->conns[i]->authed && now - a->conns[i]->since > 10)
            conn_close(a, i);
    for (size_t i = 0; i < a->npilots;) {
        if (now - a->pilots[i].last_seen > a->o->hb_timeout) {
            requeue_pilot(a, a->pilots[i].id);
            for (size_t k = 0; k < a->nconns; k++)
                if (strcmp(a->conns[k]->pilot, a->pilots[i].id) == 0) {
                    conn_close(a, k);
                    break;
                }
            a->pilots[i] = a->pilots[--a->npilots];
            continue;
        }
        i++;
    }
    if (a->spool) {
        spool_claims(a);   /* before results: a late one of a lost pilot is refused */
        spool_collect(a);
        spool_lost(a);
    }
    recount(a);
    if (a->spool) {
        spool_fill(a);
        spool_status(a);
    }
    if (a->pm) {
        sqlite3_stmt *st = NULL;
        long queued = 0;
        /* spool: batches wait in SPOOL/new as tasks leased to "spool" */
        if (sqlite3_prepare_v2(a->db, a->spool ? "SELECT count(*) FROM tasks WHERE state=0 OR "
                               "(state=1 AND pilot='spool')"
                               : "SELECT count(*) FROM tasks WHERE state=0", -1, &st,
                               NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            queued = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        hp_pilotmgr_tick(a->pm, queued, a->left - queued, pilot_seen, a);
    }
}

static int prepare(struct agent *a, struct hp_err *err)
{
    static const char *const sql[] = {
        "SELECT id,spec,cores,gpus,nodes,walltime,attempts FROM tasks WHERE state=0 AND "
        "cores<=?1 AND gpus<=?2 AND nodes<=?3 AND (?4=0 OR walltime<=?4) ORDER BY id LIMIT ?5",
        "UPDATE tasks SET state=1, pilot=?1, t_start=?2 WHERE id=?3",
        /* a result counts from the pilot that holds the task, or for a task
         * not held by anyone (its pilot was lost, nobody took it since); a
         * late result from a lost pilot for a task another pilot now runs is
         * dropped, so a task never starts again after its result is in */
        "UPDATE tasks SET state=?1, exit=?2, signal=?3, t_end=?4, pilot=?5 WHERE id=?6 AND "
        "(state=0 OR (state=1 AND (pilot=?5 OR pilot='spool' OR pilot='spool:'||?5)))",
        "UPDATE tasks SET state=0, pilot=NULL WHERE id=?1 AND state=1 AND pilot=?2",
        "UPDATE tasks SET state=0, pilot=NULL, attempts=attempts+1 WHERE state=1 AND pilot=?1",
        "UPDATE tasks SET state=0, pilot=NULL, attempts=attempts+1 WHERE state=1 AND id=?1",
    };
    sqlite3_stmt **st[] = { &a->st_pull, &a->st_lease, &a->st_done, &a->st_release,
                            &a->st_requeue_pilot, &a->st_requeue_id };
    for (int i = 0; i < 6; i++)
        if (sqlite3_prepare_v2(a->db, sql[i], -1, st[i], NULL) != SQLITE_OK)
            return hp_err_set(err, HP_ESTATE, "task store: %s", sqlite3_errmsg(a->db));
    return 0;
}

int hp_agent_run(const struct hp_agent_opts *o, struct hp_err *err)
{
    struct agent a = { .o = o, .lfd = -1, .claimed = json_object() };
    int lockfd = -1, port = 0, ret = -1;
    char *json = NULL, *jpath = hp_path_join(o->dir, "agent.json");
    if (hp_store_open(o->dir, 1, &a.db, err) < 0 || lock_dir(o->dir, &lockfd, err) < 0 ||
        load_secret(&a, err) < 0 || prepare(&a, err) < 0)
        goto out;
    if (o->spool) {
        a.spool = hp_xstrdup(o->spool);
        if (spool_setup(&a, err) < 0)
            goto out;
        spool_reconcile(&a);
    }
    if (o->listen || !o->spool) {
        /* port 0: the port of the agent before this one, when it is free, so
         * that its pilots (told HOST:PORT when submitted) come back */
        const char *addr = o->listen ? o->listen : "127.0.0.1:0";
        char *pp = hp_path_join(o->dir, "agent.port"), *text = NULL;
        size_t plen = 0;
        int lr = -1;
        if (hp_ends_with(addr, ":0") && hp_read_file(pp, 64, &text, &plen) == 0 &&
            atoi(text) > 0) {
            char *again = hp_xasprintf("%.*s:%d", (int)(strlen(addr) - 2), addr, atoi(text));
            struct hp_err e2;
            hp_err_init(&e2);
            lr = listen_on(again, &a.lfd, &port, &e2);
            free(again);
        }
        free(text);
        if (lr < 0 && listen_on(addr, &a.lfd, &port, err) < 0) {
            free(pp);
            goto out;
        }
        char num[16];
        int nl = snprintf(num, sizeof(num), "%d\n", port);
        struct hp_err e3;
        hp_err_init(&e3);
        hp_wire_write_atomic(pp, num, (size_t)nl, 0600, &e3);
        free(pp);
    }
    /* pilots that held leases when the last agent stopped get a full
     * heartbeat timeout from now to come back */
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(a.db, "SELECT DISTINCT pilot FROM tasks WHERE state=1 AND pilot IS NOT "
                       "NULL AND pilot != 'spool'", -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW)
        pilot_find(&a, (const char *)sqlite3_column_text(st, 0), 1);
    sqlite3_finalize(st);
    char host[256] = "127.0.0.1";
    if (o->listen) {
        snprintf(host, sizeof(host), "%s", o->listen);
        char *c = strrchr(host, ':');
        if (c)
            *c = '\0';
    }
    json_t *j = json_pack("{s:I,s:s?}", "pid", (json_int_t)getpid(), "spool", o->spool);
    if (a.lfd >= 0) {
        json_object_set_new(j, "host", json_string(host));
        json_object_set_new(j, "port", json_integer(port));
    }
    if (o->pilots) {
        char *connect = a.lfd >= 0 ? hp_xasprintf("%s:%d", host, port) : NULL;
        a.pm = hp_pilotmgr_new(o->dir, a.db, o->pilots, connect, o->spool, err);
        free(connect);
        if (!a.pm) {
            json_decref(j);
            goto out;
        }
        json_object_set_new(j, "pilots", json_true());
    }
    json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (hp_wire_write_atomic(jpath, json, strlen(json), 0600, err) < 0)
        goto out;
    struct sigaction sa = { .sa_handler = on_stop };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    stop_flag = 0;
    tick(&a);
    if (o->ready)
        o->ready(json, o->ready_arg);
    double next_tick = hp_now() + 0.2, idle_since = hp_now();
    struct pollfd *pf = hp_xcalloc(MAX_CONNS + 1, sizeof(*pf));
    while (!stop_flag) {
        size_t n = 0;
        if (a.lfd >= 0)
            pf[n++] = (struct pollfd){ .fd = a.lfd, .events = POLLIN };
        size_t base = n;
        for (size_t i = 0; i < a.nconns; i++)
            pf[n++] = (struct pollfd){ .fd = a.conns[i]->fd, .events = POLLIN };
        int wait = (int)((next_tick - hp_now()) * 1000);
        int pr = poll(pf, n, wait < 0 ? 0 : wait);
        if (pr > 0) {
            /* back to front: conn_close moves the last connection into i */
            for (size_t k = n; k-- > base;)
                if (pf[k].revents)
                    conn_read(&a, k - base);
            if (base && (pf[0].revents & POLLIN))
                conn_accept(&a);
        }
        if (hp_now() >= next_tick) {
            tick(&a);
            next_tick = hp_now() + 0.2;
            if (o->exit_when_done && a.left == 0)
                break;
            /* --idle-exit: nothing left, no pilot in touch, for that long */
            if (a.left > 0 || a.nconns > 0)
                idle_since = hp_now();
            if (o->idle_exit > 0 && hp_now() - idle_since > o->idle_exit) {
                fprintf(stderr, "agent: idle for %d s with nothing left: exiting\n",
                        o->idle_exit);
                break;
            }
        }
    }
    free(pf);
    unlink(jpath);
    ret = 0;
out:
    hp_pilotmgr_free(a.pm);
    json_decref(a.claimed);
    while (a.nconns)
        conn_close(&a, a.nconns - 1);
    sqlite3_stmt *all[] = { a.st_pull, a.st_lease, a.st_done, a.st_release,
                            a.st_requeue_pilot, a.st_requeue_id };
    for (int i = 0; i < 6; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(a.db);
    if (a.lfd >= 0)
        close(a.lfd);
    if (lockfd >= 0)
        close(lockfd);
    OPENSSL_cleanse(a.secret, sizeof(a.secret));
    free(a.pilots);
    free(a.spool);
    free(json);
    free(jpath);
    return ret;
}
