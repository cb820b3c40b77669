/* local.c - the "local" adapter: task instances run as processes on this
 * machine, one process each.
 *
 * When the adapter opens, the engine forks a spawner: a copy of hpcport that
 * never execs. It becomes a session leader (out of reach of the terminal's
 * signals; it outlives `hpcport run`) and starts every task with a single
 * vfork() -- no page table is copied, so the spawner's size does not matter
 * -- whose child becomes a session leader of its own (the task's process
 * group is its pid), puts stdout and stderr on the attempt's files (stdin is
 * /dev/null), changes to the work directory and execs the task with the
 * workflow's environment plus HPCPORT_*, argv exactly as given (never through
 * a shell unless the task says `shell:`). The spawner then supervises its
 * tasks: it reaps them (signalfd), enforces the walltime (SIGTERM to the
 * task's process group, SIGKILL after a 5 s grace), writes each exit record
 * to spec->result_path (temporary file + rename) and reports the end to the
 * engine. The engine never forks a task itself: after a fork every page the
 * parent writes costs a copy-on-write fault, and the engine writes many.
 *
 * Cores: a task needs ntasks x cores of the site's cores (nodes.cores, or the
 * processors of this machine). The spawner keeps the count: it starts a
 * request at once when its cores are free, and otherwise keeps it waiting,
 * first come first served, to start it the moment a task ends -- so the
 * cores do not wait for the engine, which may be busy writing its database.
 * capacity() allows, besides the cores, QUEUE_MIN (or as many as the cores)
 * waiting requests; cores taken by tasks the spawner does not run (adopted
 * from an earlier engine) are passed on to it.
 *
 * Crash safety rests on the result's temporary twin (<attempt>.rc.tmp):
 * submit() creates it with O_EXCL, takes flock() on it and hands the locked
 * descriptor to the spawner with the request (SCM_RIGHTS), so the lock is
 * held without a gap; the spawner writes "pid start token" into it once the
 * task runs, at the end overwrites it with the outcome, renames it onto the
 * result path and only then closes it. A second submit() of the same attempt
 * (same paths and token) after a crash therefore finds the earlier one (lock
 * held: waiting or running; result present: finished) instead of running the
 * task twice.
 *
 * When the engine dies (kill -9 of `hpcport run`), or closes the adapter
 * (Ctrl-C): the spawner sees its socket hang up and starts nothing more --
 * the requests still waiting lose their lock and get no file, so a later
 * engine finds the attempt lost (never ran) and runs it --, follows the tasks
 * already running to their end, records them and exits. A later engine
 * adopts those by job id, or finds them by their files.
 *
 * When the spawner dies: SIGTERM is passed on -- the spawner stops taking
 * requests (the engine starts a new spawner; the waiting ones read as lost),
 * sends SIGTERM to its tasks (SIGKILL after the grace), records them as they
 * end and exits. SIGKILL leaves its tasks running as orphans (reparented to
 * init or a subreaper), their locks released and nobody to write their exit
 * records. The engine, if it runs, follows them by pidfd and records each,
 * when it ends, as failed with an unknown outcome (retries apply); a later
 * engine that finds one still running (the pid in its temporary file)
 * follows it, and once it has ended reads the attempt as lost and runs it
 * again. Only a spawner killed between starting a task and writing its pid
 * can let a task run twice at once.
 *
 * job ids are "<task pid>:<start time>" (field 22 of /proc/PID/stat), so a
 * recycled pid is never taken for the task, for a task started at submit();
 * "0:<token>" names a submission known by its files: one that had to wait
 * for cores (the engine learns its pid when it starts, for cancel()), or one
 * found after a crash. cancel() without an engine finds the task of such an
 * id through the spawners (CANCEL_SIG carrying a hash of the token). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "adapter.h"
#include "quote.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define KILL_GRACE 5.0       /* seconds between SIGTERM and SIGKILL */
#define RESULT_MAX 8192
#define ZMSG_MAX (160 * 1024)   /* a request larger than this goes in a memfd */
#define ZREPORT_MAX 8192        /* a message of reports, at most */
#define QUEUE_MIN 32            /* requests that may wait at the spawner, at least */
#define SPAWNER_NAME "hpcport-spawner"   /* comm of the spawner (15 bytes at most) */
/* Sent with sigqueue() to a spawner: cancel the task whose pid it carries. A
 * real-time signal, so that cancels sent at once are all queued. */
#define CANCEL_SIG (SIGRTMIN + 1)

extern char **environ;

static int job_cores(const struct hp_jobspec *spec)
{
    long n = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    long c = spec->res.cores > 0 ? spec->res.cores : 1;
    long v = n * c;
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* The attempt's lock is the result file's temporary twin. */
static char *lock_path_for(const char *result_path)
{
    return result_path ? hp_xasprintf("%s.tmp", result_path) : NULL;
}

/* Read /proc/PID/stat into buf; a pointer to field 3 (state), or NULL. */
static char *proc_stat_fields(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    return p && p[1] && p[2] ? p + 2 : NULL;
}

/* Start time and state of pid; -1 if no such process. */
static int proc_stat(pid_t pid, unsigned long long *start, char *state)
{
    char buf[1024];
    char *p = proc_stat_fields(pid, buf, sizeof(buf));
    if (!p)
        return -1;
    if (state)
        *state = *p;
    /* p is field 3 (state); starttime is field 22. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    if (start)
        *start = strtoull(p, NULL, 10);
    return 0;
}

/* Alive and the same process (start time matches); zombies count as dead. */
static int proc_alive(pid_t pid, unsigned long long start)
{
    unsigned long long s;
    char st = 0;
    if (pid <= 0 || proc_stat(pid, &s, &st) < 0)
        return 0;
    return s == start && st != 'Z' && st != 'X';
}

static int parse_job_id(const char *id, pid_t *pid, unsigned long long *start)
{
    char *end;
    errno = 0;
    long p = strtol(id, &end, 10);
    if (errno || end == id || *end != ':' || p < 0 || p > INT_MAX)
        return -1;
    const char *s = end + 1;
    unsigned long long st = strtoull(s, &end, 10);
    if (end == s || *end)
        return -1;
    *pid = (pid_t)p;
    *start = st;
    return 0;
}

/* Lock held (by a spawner, or a submit() under way)? 1 yes, 0 no, -1 no
 * lock file. */
static int lock_held(const char *lock_path)
{
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

/* The "pid start token" line a spawner writes into the lock file. 0 and
 * *pid > 0 if there is one. */
static int read_pid_line(int fd, pid_t *pid, unsigned long long *start, char *tok, size_t toklen)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    int p = 0;
    unsigned long long st = 0;
    *pid = 0;
    *start = 0;
    tok[0] = '\0';
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (buf[0] < '0' || buf[0] > '9')
        return -1;          /* an exit record, not a pid line */
    char t[200] = "";
    if (sscanf(buf, "%d %llu %199s", &p, &st, t) < 2 || p <= 0)
        return -1;
    *pid = p;
    *start = st;
    snprintf(tok, toklen, "%s", t);
    return 0;
}

/* Parse a result file into *out. Returns 0, or -1 if there is none (or it
 * belongs to another token). */
static int read_result(const char *path, const char *token, struct hp_jobstate *out)
{
    char *text;
    if (!path || hp_read_file(path, RESULT_MAX, &text, NULL) < 0)
        return -1;
    int have = 0, canceled = 0, code = -1, sig = 0, timeout = 0;
    const char *tok = NULL;
    char reason[sizeof(out->reason)] = "";
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (sscanf(line, "exit %d", &code) == 1) {
            have = 1;
        } else if (sscanf(line, "signal %d", &sig) == 1) {
            have = 1;
        } else if (!strcmp(line, "timeout")) {
            have = 1;
            timeout = 1;
        } else if (hp_starts_with(line, "token ")) {
            tok = line + 6;
        } else if (hp_starts_with(line, "reason ")) {
            snprintf(reason, sizeof(reason), "%s", line + 7);
        } else if (!strcmp(line, "canceled")) {
            canceled = 1;
        }
    }
    int ok = have && (!token || (tok && !strcmp(tok, token)));
    free(text);
    if (!ok)
        return -1;
    memset(out, 0, sizeof(*out));
    out->exit_code = code;
    out->signal = sig;
    out->timed_out = timeout;
    if (canceled) {
        out->state = HP_JOB_CANCELED;
        snprintf(out->reason, sizeof(out->reason), "canceled");
    } else if (timeout) {
        out->state = HP_JOB_FAILED;
        snprintf(out->reason, sizeof(out->reason), "%s", reason[0] ? reason : "TIMEOUT");
    } else if (sig) {
        out->state = HP_JOB_FAILED;
        snprintf(out->reason, sizeof(out->reason), "killed by signal %d (%s)", sig,
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    } else if (code == 0) {
        out->state = HP_JOB_COMPLETED;
    } else {
        out->state = HP_JOB_FAILED;
        if (reason[0])
            snprintf(out->reason, sizeof(out->reason), "%s", reason);
        else
            snprintf(out->reason, sizeof(out->reason), "exit code %d", code);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Messages on the SOCK_SEQPACKET socket between the engine and its spawner.
 * Engine -> spawner:
 *   R<struct zreq><strings>   start a task (request number zreq.seq); the
 *                             locked result twin and the task's stdout and
 *                             stderr, opened by the engine, travel along
 *                             (SCM_RIGHTS, those zreq.fds names); answered
 *                             (below) only if zreq.answer is set
 *   M                         the same, too big for a message: the R message
 *                             is in a memfd, passed before the lock
 *   C <seq>                   cancel request seq (waiting or running)
 *   U <cores>                 cores taken by tasks this spawner does not run
 *                             (adopted from an earlier engine)
 * Spawner -> engine, the answer to R or M that asks for one:
 *   S <pid> <start>           started at once
 *   Q                         waits for cores (FIFO)
 *   F <reason>                could not start it (the exit record says so)
 *   E <errno>                 not understood; nothing happened
 * and reports, one per line, several in a message, at any time:
 *   A <seq> <pid> <start>     a request not answered with S started
 *   D <seq> <code> [<reason>] a task ended (code 0: completed; its exit
 *                             record is written or about to be); the reason
 *                             when no exit record could say it
 */

struct zreq {
    uint64_t seq;
    int32_t attempt, ntasks, cores, nargv, nenv, answer;
    int32_t fds, pad;        /* ZFD_*: the descriptors passed, in this order */
    int64_t walltime;
};

enum { ZFD_LOCK = 1, ZFD_OUT = 2, ZFD_ERR = 4 };

static void z_put(struct hp_buf *b, const char *s)
{
    hp_buf_addch(b, s ? 1 : 0);
    if (s)
        hp_buf_add(b, s, strlen(s) + 1);
}

static const char *z_get(const char **p, const char *end, int *bad)
{
    if (*p >= end) {
        *bad = 1;
        return NULL;
    }
    if (*(*p)++ == 0)
        return NULL;
    const char *s = *p, *nul = memchr(s, 0, (size_t)(end - s));
    if (!nul) {
        *bad = 1;
        return NULL;
    }
    *p = nul + 1;
    return s;
}

static void z_encode(const struct hp_jobspec *spec, unsigned long seq, int answer, int fds,
                     struct hp_buf *b)
{
    struct zreq h = {
        .seq = seq, .answer = answer, .fds = fds, .attempt = spec->attempt, .ntasks = spec->res.ntasks,
        .cores = spec->res.cores, .walltime = spec->res.walltime, .nenv = (int32_t)spec->nenv,
    };
    for (size_t i = 0; spec->argv && spec->argv[i]; i++)
        h.nargv++;
    hp_buf_addch(b, 'R');
    hp_buf_add(b, &h, sizeof(h));
    z_put(b, spec->campaign);
    z_put(b, spec->instance);
    z_put(b, spec->token);
    z_put(b, spec->shell);
    z_put(b, spec->workdir);
    z_put(b, spec->stdout_path);
    z_put(b, spec->stderr_path);
    z_put(b, spec->result_path);
    for (int i = 0; i < h.nargv; i++)
        z_put(b, spec->argv[i]);
    for (size_t i = 0; i < spec->nenv; i++) {
        z_put(b, spec->env[i].key);
        z_put(b, spec->env[i].value);
    }
}

/* Decode an R message (after the 'R') into spec; arrays are allocated
 * (*argv, *env), strings point into buf. 0 or -1 for a malformed message. */
static int z_decode(const char *buf, size_t len, struct hp_jobspec *spec, unsigned long *seq,
                    int *answer, int *fds, char ***argv, struct hp_kv **env)
{
    struct zreq h;
    int bad = 0;
    *argv = NULL;
    *env = NULL;
    *seq = 0;
    *answer = 1;
    *fds = 0;
    if (len < sizeof(h))
        return -1;
    memcpy(&h, buf, sizeof(h));
    *seq = (unsigned long)h.seq;
    *answer = h.answer != 0;
    *fds = h.fds;
    if (h.nargv < 0 || h.nenv < 0 || (size_t)h.nargv > len || (size_t)h.nenv > len)
        return -1;
    const char *p = buf + sizeof(h), *end = buf + len;
    memset(spec, 0, sizeof(*spec));
    spec->attempt = h.attempt;
    spec->res.ntasks = h.ntasks;
    spec->res.cores = h.cores;
    spec->res.walltime = h.walltime;
    spec->campaign = z_get(&p, end, &bad);
    spec->instance = z_get(&p, end, &bad);
    spec->token = z_get(&p, end, &bad);
    spec->shell = z_get(&p, end, &bad);
    spec->workdir = z_get(&p, end, &bad);
    spec->stdout_path = z_get(&p, end, &bad);
    spec->stderr_path = z_get(&p, end, &bad);
    spec->result_path = z_get(&p, end, &bad);
    *argv = hp_xcalloc((size_t)h.nargv + 1, sizeof(**argv));
    *env = hp_xcalloc((size_t)h.nenv + 1, sizeof(**env));
    for (int i = 0; i < h.nargv && !bad; i++)
        (*argv)[i] = (char *)z_get(&p, end, &bad);
    for (int i = 0; i < h.nenv && !bad; i++) {
        (*env)[i].key = (char *)z_get(&p, end, &bad);
        (*env)[i].value = (char *)z_get(&p, end, &bad);
    }
    if (h.nargv)
        spec->argv = (const char *const *)*argv;
    spec->env = *env;
    spec->nenv = (size_t)h.nenv;
    return bad ? -1 : 0;
}

static void z_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void z_send(int fd, const char *fmt, ...)
{
    char msg[1100];
    va_list ap;
    if (fd < 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        n = (int)sizeof(msg) - 1;
    while (send(fd, msg, (size_t)n, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* A token as the 31-bit number a cancel signal carries (1..INT_MAX). */
static int token_hash(const char *token)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)token; *p; p++)
        h = (h ^ *p) * 16777619u;
    h &= 0x7fffffff;
    return h ? (int)h : 1;
}

/* Reasons travel on one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* ---------------------------------------------------------------------------
 * The spawner (a forked child that never returns; it ends with _exit(), so
 * the engine's stdio buffers and atexit handlers are left alone). */

struct stask {               /* a running task */
    unsigned long seq;
    pid_t pid;
    int cores;
    int lockfd;              /* the locked result twin, or -1 */
    size_t written;          /* bytes of the pid line in it */
    char *tmp, *result, *token;
    int64_t walltime;
    double t0;               /* wall clock at the start */
    double deadline;         /* monotonic walltime end, 0 = none */
    double kill_at;          /* monotonic time to SIGKILL the group, 0 = none */
    int term_sent, timed_out, canceled;
    int ended, ws;           /* reaped: wait status */
};

struct sreq {                /* a request waiting for cores */
    unsigned long seq;
    int answer;              /* the engine waits for S, Q or F */
    int cores;
    int lockfd, outfd, errfd;  /* from the engine, or -1 */
    char *msg;               /* the R message; spec points into it */
    char **argv;
    struct hp_kv *env;
    struct hp_jobspec spec;
};

struct spawner {
    int sock;                /* to the engine; -1 once it is gone */
    int sfd;                 /* signalfd: SIGCHLD, CANCEL_SIG, SIGTERM */
    int total, used, ext;    /* cores: all, of our tasks, of others' */
    struct stask *t;
    size_t n, alloc;
    struct sreq *q;          /* FIFO */
    size_t qn, qalloc;
    sigset_t reset;          /* dispositions a task gets back as SIG_DFL */
    char *buf;               /* ZMSG_MAX + 1 */
    struct hp_buf reports;   /* lines not sent yet */
};

/* Write the outcome into the locked twin, then publish it with one rename,
 * so a reader sees no result or all of it. */
static int s_record(struct stask *t, const char *outcome, const char *reason, double t1)
{
    if (t->lockfd < 0)
        return t->result ? -1 : 0;
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_addf(&b, "%s\n", outcome);
    if (t->token)
        hp_buf_addf(&b, "token %s\n", t->token);
    hp_buf_addf(&b, "start %.6f\nend %.6f\n", t->t0, t1);
    if (reason) {
        hp_buf_adds(&b, "reason ");
        for (const char *p = reason; *p; p++)
            hp_buf_addch(&b, *p == '\n' ? ' ' : *p);
        hp_buf_addch(&b, '\n');
    }
    if (t->canceled)
        hp_buf_adds(&b, "canceled\n");
    int ret = -1;
    if (pwrite(t->lockfd, b.buf, b.len, 0) == (ssize_t)b.len &&
        (b.len >= t->written || ftruncate(t->lockfd, (off_t)b.len) == 0) &&
        rename(t->tmp, t->result) == 0)
        ret = 0;
    hp_buf_release(&b);
    return ret;
}

static void s_task_release(struct stask *t)
{
    if (t->lockfd >= 0)
        close(t->lockfd);   /* releases the lock: after the rename */
    free(t->tmp);
    free(t->result);
    free(t->token);
}

static void s_req_release(struct sreq *r)
{
    free(r->msg);
    free(r->argv);
    free(r->env);
}

/* Close what a request never handed to a task; the lock last. */
static void s_req_close(struct sreq *r)
{
    if (r->outfd >= 0)
        close(r->outfd);
    if (r->errfd >= 0)
        close(r->errfd);
    if (r->lockfd >= 0)
        close(r->lockfd);
    r->outfd = r->errfd = r->lockfd = -1;
}

static void s_report(struct spawner *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_flush_reports(struct spawner *S);

static void s_report(struct spawner *S, const char *fmt, ...)
{
    va_list ap;
    if (S->sock < 0)
        return;
    if (S->reports.len > ZREPORT_MAX / 2)
        s_flush_reports(S);     /* a line is shorter than ZREPORT_MAX / 2 */
    va_start(ap, fmt);
    hp_buf_vaddf(&S->reports, fmt, ap);
    va_end(ap);
    hp_buf_addch(&S->reports, '\n');
}

static void s_flush_reports(struct spawner *S)
{
    if (S->reports.len && S->sock >= 0) {
        while (send(S->sock, S->reports.buf, S->reports.len, MSG_NOSIGNAL) < 0 && errno == EINTR)
            ;
    }
    hp_buf_reset(&S->reports);
}

/* Is key (up to '=' or the end) one of the overrides ov[from..n)? */
static int env_overridden(const char *entry, char *const *ov, size_t from, size_t n)
{
    size_t klen = strcspn(entry, "=");
    for (size_t i = from; i < n; i++)
        if (!strncmp(ov[i], entry, klen) && ov[i][klen] == '=')
            return 1;
    return 0;
}

/* The task's environment: ours, overridden by the spec's, then HPCPORT_*
 * (later settings win, as setenv() in that order would). ov has room for
 * nenv + 5 strings. Free the array and ov[0..*nov) after use. */
static char **s_env(const struct hp_jobspec *spec, char **ov, size_t *nov)
{
    size_t n = 0;
    for (size_t i = 0; i < spec->nenv; i++) {
        const char *k = spec->env[i].key, *v = spec->env[i].value;
        if (!k || !v || !*k || strchr(k, '='))
            continue;   /* setenv() would refuse it */
        ov[n++] = hp_xasprintf("%s=%s", k, v);
    }
    if (spec->campaign)
        ov[n++] = hp_xasprintf("HPCPORT_CAMPAIGN=%s", spec->campaign);
    if (spec->instance)
        ov[n++] = hp_xasprintf("HPCPORT_INSTANCE=%s", spec->instance);
    ov[n++] = hp_xasprintf("HPCPORT_ATTEMPT=%d", spec->attempt);
    if (spec->token)
        ov[n++] = hp_xasprintf("HPCPORT_TOKEN=%s", spec->token);
    ov[n++] = hp_xasprintf("HPCPORT_CORES=%d", job_cores(spec));
    *nov = n;
    size_t nbase = 0;
    while (environ && environ[nbase])
        nbase++;
    char **envp = hp_xmalloc((nbase + n + 1) * sizeof(*envp));
    size_t m = 0;
    for (size_t i = 0; i < nbase; i++)
        if (!env_overridden(environ[i], ov, 0, n))
            envp[m++] = environ[i];
    for (size_t i = 0; i < n; i++)
        if (!env_overridden(ov[i], ov, i + 1, n))
            envp[m++] = ov[i];
    envp[m] = NULL;
    return envp;
}

/* What the vfork child of s_spawn() needs; it shares our memory until it
 * execs, and says here what failed. */
struct child {
    int outfd, errfd;        /* stdout, stderr opened already, or -1: */
    const char *out, *err;   /* files to open for them; NULL: /dev/null */
    int err_to_out;          /* stderr goes where stdout goes */
    const char *workdir;     /* or NULL */
    const char *file;        /* the program, or its name to look up in path */
    const char *path;        /* PATH to search, or NULL: file is a path */
    char *const *argv, *const *envp;
    const sigset_t *reset;   /* dispositions to make SIG_DFL */
    volatile int step;       /* what failed (STEP_*), 0 if nothing did */
    volatile int errnum;
};

enum { STEP_OUT = 1, STEP_ERR, STEP_DIR, STEP_EXEC };

static void child_fail(struct child *c, int step) __attribute__((noreturn));

static void child_fail(struct child *c, int step)
{
    c->errnum = errno;
    c->step = step;
    _exit(127);
}

static int child_open(const char *path, int target)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (dup2(fd, target) < 0)   /* dup2 clears close-on-exec */
        return -1;
    close(fd);
    return 0;
}

/* The vfork child: becomes the task, or _exit()s saying why not. Signals
 * are all blocked on entry; until execve replaces our memory nothing here
 * may write to it but c->step and c->errnum (errno is the blocked parent's,
 * which rereads it). */
static void child_run(struct child *c) __attribute__((noreturn, noinline));

static void child_run(struct child *c)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(c->reset, sig) == 1)
            sigaction(sig, &sa, NULL);
    setsid();
    if (c->outfd >= 0 ? dup2(c->outfd, 1) < 0 : c->out && child_open(c->out, 1) < 0)
        child_fail(c, STEP_OUT);
    if (c->err_to_out) {
        if (dup2(1, 2) < 0)
            child_fail(c, STEP_ERR);
    } else if (c->errfd >= 0 ? dup2(c->errfd, 2) < 0 : c->err && child_open(c->err, 2) < 0) {
        child_fail(c, STEP_ERR);
    }
    if (c->workdir && chdir(c->workdir) < 0)
        child_fail(c, STEP_DIR);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (!c->path) {
        execve(c->file, c->argv, c->envp);
        child_fail(c, STEP_EXEC);
    }
    /* posix_spawnp()'s search: an empty entry is the work directory; a
     * program found but not executable is remembered, others are skipped. */
    char buf[PATH_MAX];
    size_t flen = strlen(c->file);
    int eacces = 0;
    for (const char *p = c->path;; p++) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen + flen + 2 <= sizeof(buf)) {
            if (dlen) {
                memcpy(buf, p, dlen);
                buf[dlen] = '/';
                memcpy(buf + dlen + 1, c->file, flen + 1);
            } else {
                memcpy(buf, c->file, flen + 1);
            }
            execve(buf, c->argv, c->envp);
            if (errno == EACCES)
                eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
                     errno != ENODEV && errno != ETIMEDOUT)
                child_fail(c, STEP_EXEC);
        }
        if (!end)
            break;
        p = end;
    }
    if (eacces)
        errno = EACCES;
    child_fail(c, STEP_EXEC);
}

/* One process for the task, vfork-style: no page table is copied, and we
 * wait (blocked) only until it has exec'd. 0 with *pid, or an errno (the
 * child is reaped, c->step says what failed). */
static int s_spawn(struct child *c, pid_t *pid)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    c->step = 0;
    c->errnum = 0;
    pid_t p = vfork();
    if (p == 0)
        child_run(c);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (p < 0)
        return e;
    if (c->step) {
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
            ;
        return c->errnum ? c->errnum : EINVAL;
    }
    *pid = p;
    return 0;
}

/* Start the task of request seq. immediate: answer the request (S or F);
 * otherwise report (A, or D when it could not start). */
static void s_start(struct spawner *S, const struct hp_jobspec *spec, int lockfd, int outfd,
                    int errfd, unsigned long seq, int immediate)
{
    struct stask t;
    memset(&t, 0, sizeof(t));
    t.seq = seq;
    t.cores = job_cores(spec);
    t.lockfd = lockfd;
    t.t0 = hp_wall_now();
    t.walltime = spec->res.walltime;
    t.token = spec->token ? hp_xstrdup(spec->token) : NULL;
    t.result = spec->result_path ? hp_xstrdup(spec->result_path) : NULL;
    t.tmp = lock_path_for(spec->result_path);

    char **ov = hp_xmalloc((spec->nenv + 5) * sizeof(*ov));
    size_t nov = 0;
    char **envp = s_env(spec, ov, &nov);
    char *sh_argv[] = { (char *)"sh", (char *)"-c", (char *)spec->shell, NULL };
    struct child c = {
        .outfd = outfd,
        .errfd = errfd,
        .out = spec->stdout_path,
        .err = spec->stderr_path,
        .err_to_out = spec->stderr_path && spec->stdout_path &&
                      !strcmp(spec->stderr_path, spec->stdout_path),
        .workdir = spec->workdir,
        .file = spec->shell ? "/bin/sh" : spec->argv ? spec->argv[0] : NULL,
        .argv = spec->shell ? sh_argv : (char *const *)spec->argv,
        .envp = envp,
        .reset = &S->reset,
    };
    /* posix_spawnp() looks the program up in the task's PATH */
    if (c.file && !strchr(c.file, '/')) {
        c.path = "/bin:/usr/bin";
        for (size_t i = 0; envp[i]; i++)
            if (!strncmp(envp[i], "PATH=", 5))
                c.path = envp[i] + 5;
    }
    pid_t pid = 0;
    int rc = ENOENT;
    if (c.file && *c.file)
        rc = s_spawn(&c, &pid);
    else
        c.step = STEP_EXEC;
    free(envp);
    for (size_t i = 0; i < nov; i++)
        free(ov[i]);
    free(ov);
    /* the task has its own copies (or never will) */
    int report_fd = c.err_to_out ? outfd : errfd;
    if (outfd >= 0 && outfd != report_fd)
        close(outfd);
    if (errfd >= 0 && errfd != report_fd)
        close(errfd);

    if (rc != 0) {
        char msg[1024];
        if (c.step == STEP_OUT || c.step == STEP_ERR)
            snprintf(msg, sizeof(msg), "cannot open %s: %s",
                     c.step == STEP_OUT ? spec->stdout_path : spec->stderr_path, strerror(rc));
        else if (c.step == STEP_DIR)
            snprintf(msg, sizeof(msg), "cannot change to work directory %s: %s", spec->workdir,
                     strerror(rc));
        else if (!c.file)
            snprintf(msg, sizeof(msg), "task has no command");
        else if (c.step == STEP_EXEC)
            snprintf(msg, sizeof(msg), "cannot run '%s': %s", c.file, strerror(rc));
        else
            snprintf(msg, sizeof(msg), "cannot start a process: %s", strerror(rc));
        one_line(msg);
        if (spec->stderr_path) {
            int fd = report_fd >= 0 ? report_fd
                     : open(spec->stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            report_fd = -1;
            if (fd >= 0) {
                char line[1100];
                int n = snprintf(line, sizeof(line), "hpcport: %s\n", msg);
                if (n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n
                                                                       : sizeof(line) - 1) < 0) {
                    /* the exit record says it too */
                }
                close(fd);
            }
        }
        if (report_fd >= 0)
            close(report_fd);
        s_record(&t, "exit 127", msg, hp_wall_now());
        s_task_release(&t);
        if (immediate)
            z_send(S->sock, "F %s", msg);
        else
            s_report(S, "D %lu 127 %s", seq, msg);
        return;
    }
    if (report_fd >= 0)
        close(report_fd);
    unsigned long long start = 0;
    proc_stat(pid, &start, NULL);   /* a zombie still has its stat */
    if (immediate)
        z_send(S->sock, "S %d %llu", (int)pid, start);
    else
        s_report(S, "A %lu %d %llu", seq, (int)pid, start);
    t.pid = pid;
    if (spec->res.walltime > 0)
        t.deadline = hp_now() + (double)spec->res.walltime;
    if (lockfd >= 0) {
        char line[300];
        int n = snprintf(line, sizeof(line), "%d %llu %s\n", (int)pid, start,
                         spec->token ? spec->token : "-");
        if (n > 0 && (size_t)n < sizeof(line)) {
            t.written = (size_t)n;  /* or part of it: s_record() truncates */
            if (pwrite(lockfd, line, (size_t)n, 0) < 0) {
                /* only a hint for crash recovery */
            }
        }
    }
    S->used += t.cores;
    HP_ALLOC_GROW(S->t, S->n + 1, S->alloc);
    S->t[S->n++] = t;
}

static int s_fits(const struct spawner *S, int cores)
{
    return S->used + cores <= S->total - S->ext;
}

/* Start waiting requests, oldest first, while their cores are free. */
static void s_drain(struct spawner *S)
{
    while (S->qn && S->sock >= 0 && s_fits(S, S->q[0].cores)) {
        struct sreq r = S->q[0];
        memmove(S->q, S->q + 1, (S->qn - 1) * sizeof(*S->q));
        S->qn--;
        s_start(S, &r.spec, r.lockfd, r.outfd, r.errfd, r.seq, 0);
        s_req_release(&r);
    }
}

/* The engine is gone (or we stop): requests not started never will be. Their
 * locks go and nothing is written: a later engine runs them. */
static void s_drop_queue(struct spawner *S)
{
    for (size_t i = 0; i < S->qn; i++) {
        struct sreq *r = &S->q[i];
        /* the engine created them for this request */
        if (r->outfd >= 0 && r->spec.stdout_path)
            unlink(r->spec.stdout_path);
        if (r->errfd >= 0 && r->spec.stderr_path)
            unlink(r->spec.stderr_path);
        s_req_close(r);
        s_req_release(r);
    }
    S->qn = 0;
}

static void s_engine_gone(struct spawner *S)
{
    if (S->sock >= 0) {
        close(S->sock);
        S->sock = -1;
    }
    hp_buf_reset(&S->reports);
    s_drop_queue(S);
}

static int s_success(const struct stask *t)
{
    return !t->timed_out && !t->canceled && WIFEXITED(t->ws) && WEXITSTATUS(t->ws) == 0;
}

/* Record a reaped task, report a failure, forget it. */
static void s_finish(struct spawner *S, size_t k)
{
    struct stask *t = &S->t[k];
    char outcome[64], reason[256];
    const char *why = NULL;
    int code = s_success(t) ? 0 : 1;
    if (t->timed_out) {
        char dur[32];
        hp_format_duration(t->walltime, dur, sizeof(dur));
        snprintf(outcome, sizeof(outcome), "timeout");
        snprintf(reason, sizeof(reason), "TIMEOUT (walltime %s)", dur);
        why = reason;
    } else if (WIFEXITED(t->ws)) {
        snprintf(outcome, sizeof(outcome), "exit %d", WEXITSTATUS(t->ws));
    } else if (WIFSIGNALED(t->ws)) {
        snprintf(outcome, sizeof(outcome), "signal %d", WTERMSIG(t->ws));
    } else {
        snprintf(outcome, sizeof(outcome), "exit 127");
        why = "the task vanished";
    }
    /* A success was reported before: the engine has what it needs. */
    int rec = s_record(t, outcome, why, hp_wall_now());
    if (code != 0)
        s_report(S, "D %lu %d", t->seq, rec < 0 ? 125 : code);
    s_task_release(t);
    S->t[k] = S->t[--S->n];
}

static void s_reap(struct spawner *S)
{
    int ws, ended = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
        for (size_t k = 0; k < S->n; k++) {
            struct stask *t = &S->t[k];
            if (t->pid == pid && !t->ended) {
                t->ended = 1;
                t->ws = ws;
                S->used -= t->cores;
                ended = 1;
                break;
            }
        }
    }
    if (!ended)
        return;
    /* The freed cores go to the next requests at once; a success needs no
     * file for the engine to record it, so it hears of it before the
     * records are written. A failure is reported once its record, where the
     * engine reads why, is on disk. */
    s_drain(S);
    for (size_t k = 0; k < S->n; k++)
        if (S->t[k].ended && s_success(&S->t[k]))
            s_report(S, "D %lu 0", S->t[k].seq);
    s_flush_reports(S);
    for (size_t k = S->n; k-- > 0;)
        if (S->t[k].ended)
            s_finish(S, k);
    s_flush_reports(S);
}

static void s_term(struct stask *t, int canceled)
{
    if (canceled)
        t->canceled = 1;
    if (t->term_sent || t->ended)
        return;
    t->term_sent = 1;
    kill(-t->pid, SIGTERM);
    t->kill_at = hp_now() + KILL_GRACE;
}

/* Cancel by request number (seq), task pid or token hash (the others 0). */
static void s_cancel(struct spawner *S, unsigned long seq, pid_t pid, int tokhash)
{
    for (size_t k = 0; k < S->n; k++) {
        struct stask *t = &S->t[k];
        if ((seq && t->seq == seq) || (pid && t->pid == pid) ||
            (tokhash && t->token && token_hash(t->token) == tokhash))
            s_term(t, 1);
    }
    for (size_t i = S->qn; i-- > 0;) {
        struct sreq *r = &S->q[i];
        if (!((seq && r->seq == seq) ||
              (tokhash && r->spec.token && token_hash(r->spec.token) == tokhash)))
            continue;
        struct stask t;
        memset(&t, 0, sizeof(t));
        t.lockfd = r->lockfd;
        r->lockfd = -1;
        s_req_close(r);
        t.token = r->spec.token ? hp_xstrdup(r->spec.token) : NULL;
        t.result = r->spec.result_path ? hp_xstrdup(r->spec.result_path) : NULL;
        t.tmp = lock_path_for(r->spec.result_path);
        t.t0 = hp_wall_now();
        t.canceled = 1;
        s_record(&t, "signal 15", "canceled before it started", t.t0);
        s_task_release(&t);
        s_report(S, "D %lu 1", r->seq);
        s_req_release(r);
        memmove(S->q + i, S->q + i + 1, (S->qn - i - 1) * sizeof(*S->q));
        S->qn--;
    }
    s_flush_reports(S);
}

static void s_timers(struct spawner *S)
{
    double now = hp_now();
    for (size_t k = 0; k < S->n; k++) {
        struct stask *t = &S->t[k];
        if (t->deadline && now >= t->deadline && !t->timed_out) {
            t->timed_out = 1;
            t->deadline = 0;
            s_term(t, 0);
        }
        if (t->kill_at && now >= t->kill_at) {
            t->kill_at = 0;
            kill(-t->pid, SIGKILL);
        }
    }
}

#define ZFD_MAX 4   /* a memfd, the lock, stdout, stderr */

/* The descriptors a message carried: the first ZFD_MAX in fd[] (the rest
 * are -1), others closed. */
static void s_fds(struct msghdr *mh, int fd[ZFD_MAX])
{
    size_t got = 0;
    for (int i = 0; i < ZFD_MAX; i++)
        fd[i] = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (got < ZFD_MAX)
                    fd[got++] = f;
                else
                    close(f);
            }
        }
    }
}

/* The request in a memfd (an M message) into a new buffer; NULL if bad. */
static char *s_read_memfd(int fd, size_t *len)
{
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size <= 0 || sb.st_size > (64 << 20))
        return NULL;
    char *buf = hp_xmalloc((size_t)sb.st_size);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)sb.st_size - got, (off_t)got);
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)n;
    }
    *len = got;
    return buf;
}

/* An R message (owned by the call) and the n descriptors that came with
 * it (lost: some did not fit): start it, or queue it. */
static void s_request(struct spawner *S, char *msg, size_t len, const int *fd, int n, int lost)
{
    struct sreq r;
    int mask = 0, k = 0;
    memset(&r, 0, sizeof(r));
    r.msg = msg;
    r.answer = 1;
    int bad = !msg || len < 1 || msg[0] != 'R' ||
              z_decode(msg + 1, len - 1, &r.spec, &r.seq, &r.answer, &mask, &r.argv, &r.env) < 0 ||
              lost;
    r.lockfd = mask & ZFD_LOCK && k < n ? fd[k++] : -1;
    r.outfd = mask & ZFD_OUT && k < n ? fd[k++] : -1;
    r.errfd = mask & ZFD_ERR && k < n ? fd[k++] : -1;
    for (; k < n; k++)
        if (fd[k] >= 0)
            close(fd[k]);
    if (bad) {
        if (r.answer)
            z_send(S->sock, "E %d", lost ? EMFILE : EINVAL);
        else
            s_report(S, "D %lu 127 hpcport could not pass the request: %s", r.seq,
                     strerror(lost ? EMFILE : EINVAL));
        s_req_close(&r);
        s_req_release(&r);
        return;
    }
    r.cores = job_cores(&r.spec);
    if (!S->qn && s_fits(S, r.cores)) {
        s_start(S, &r.spec, r.lockfd, r.outfd, r.errfd, r.seq, r.answer);
        s_req_release(&r);
        return;
    }
    HP_ALLOC_GROW(S->q, S->qn + 1, S->qalloc);
    S->q[S->qn++] = r;
    if (r.answer)
        z_send(S->sock, "Q");
}

/* Messages from the engine. hup: the engine is gone; start nothing more. */
static void s_messages(struct spawner *S, int hup)
{
    union {
        char buf[CMSG_SPACE(ZFD_MAX * sizeof(int))];
        struct cmsghdr align;
    } cm;
    if (hup) {
        s_engine_gone(S);   /* what it sent last dies with the socket */
        return;
    }
    while (S->sock >= 0) {
        struct iovec iov = { S->buf, ZMSG_MAX };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
        ssize_t n = recvmsg(S->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            s_engine_gone(S);   /* gone, or said it is done */
            break;
        }
        int fd[ZFD_MAX];
        s_fds(&mh, fd);
        S->buf[n] = '\0';
        if (S->buf[0] == 'R' && !(mh.msg_flags & MSG_TRUNC)) {
            char *msg = hp_xmalloc((size_t)n);
            memcpy(msg, S->buf, (size_t)n);
            s_request(S, msg, (size_t)n, fd, ZFD_MAX, (mh.msg_flags & MSG_CTRUNC) != 0);
        } else if (S->buf[0] == 'M') {
            size_t len = 0;
            char *msg = s_read_memfd(fd[0], &len);
            if (fd[0] >= 0)
                close(fd[0]);
            s_request(S, msg, len, fd + 1, ZFD_MAX - 1, (mh.msg_flags & MSG_CTRUNC) != 0);
        } else {
            unsigned long seq;
            int cores;
            if (sscanf(S->buf, "C %lu", &seq) == 1 && seq)
                s_cancel(S, seq, 0, 0);
            else if (sscanf(S->buf, "U %d", &cores) == 1)
                S->ext = cores > 0 ? cores : 0;
            else if (S->buf[0] == 'R')
                z_send(S->sock, "E %d", EMSGSIZE);
            for (int i = 0; i < ZFD_MAX; i++)
                if (fd[i] >= 0)
                    close(fd[i]);
        }
    }
    s_drain(S);
    s_flush_reports(S);
}

static void s_signals(struct spawner *S, int *chld)
{
    struct signalfd_siginfo si[16];
    ssize_t n;
    while ((n = read(S->sfd, si, sizeof(si))) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
            if (si[i].ssi_signo == SIGCHLD) {
                *chld = 1;
            } else if ((int)si[i].ssi_signo == CANCEL_SIG && si[i].ssi_code == SI_QUEUE) {
                /* a cancel from another process: a task pid, or a token's
                 * hash (negative) */
                int v = si[i].ssi_int;
                if (v > 0)
                    s_cancel(S, 0, (pid_t)v, 0);
                else if (v < 0 && v != INT_MIN)
                    s_cancel(S, 0, 0, -v);
            } else if (si[i].ssi_signo == SIGTERM) {
                /* Pass it on: take no more requests (the engine starts
                 * another spawner), stop the tasks, record them, exit. */
                s_engine_gone(S);
                for (size_t k = 0; k < S->n; k++)
                    s_term(&S->t[k], 0);
            }
        }
    }
}

static void spawner_main(int sock, int total) __attribute__((noreturn));

static void spawner_main(int sock, int total)
{
    struct spawner S;
    memset(&S, 0, sizeof(S));
    S.total = total;
    hp_buf_init(&S.reports, 256);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, CANCEL_SIG);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* No handler of the engine's may stay (a task's vfork child shares our
     * memory until it execs). Terminal and pipe signals are ignored; the
     * others arrive on the signalfd. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    static const int ign[] = { SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof(ign) / sizeof(ign[0]); i++)
        sigaction(ign[i], &sa, NULL);
    sa.sa_handler = SIG_DFL;
    static const int dfl[] = { SIGCHLD, SIGTERM };
    for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
        sigaction(dfl[i], &sa, NULL);
    sigaction(CANCEL_SIG, &sa, NULL);
    setsid();
    prctl(PR_SET_NAME, SPAWNER_NAME);

    /* fd 3: the socket; 0, 1, 2: /dev/null (we outlive the engine and must
     * not hold its terminal or pipes); nothing else of the engine's (its
     * database, its run lock). */
    if (sock != 3 && dup2(sock, 3) < 0)
        _exit(1);
    close_range(4, ~0U, 0);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) {
        int nul = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
        if (nul < 0)
            _exit(1);
        if (nul != fd) {
            dup2(nul, fd);
            close(nul);
        }
    }
    S.sock = 3;
    S.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (S.sfd < 0)
        _exit(1);

    /* Tasks start with no signal blocked and default dispositions for what
     * we (or a shell that started hpcport in the background) ignore, and
     * for any handler left here (a sanitizer's). */
    sigemptyset(&S.reset);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler != SIG_DFL)
            sigaddset(&S.reset, sig);
    }
    S.buf = hp_xmalloc(ZMSG_MAX + 1);

    for (;;) {
        if (S.sock < 0 && !S.n)
            _exit(0);
        double now = hp_now(), next = 0;
        for (size_t k = 0; k < S.n; k++) {
            if (S.t[k].deadline && (!next || S.t[k].deadline < next))
                next = S.t[k].deadline;
            if (S.t[k].kill_at && (!next || S.t[k].kill_at < next))
                next = S.t[k].kill_at;
        }
        int ms = -1;
        if (next) {
            double d = next - now;
            ms = d <= 0 ? 0 : d > 1e6 ? 1000000000 : (int)(d * 1000.0) + 1;
        }
        struct pollfd pf[2] = { { .fd = S.sfd, .events = POLLIN },
                                { .fd = S.sock, .events = POLLIN } };
        int r = poll(pf, S.sock >= 0 ? 2 : 1, ms);
        if (r < 0 && errno != EINTR)
            _exit(1);
        if (r > 0) {
            int chld = 0;
            if (pf[0].revents)
                s_signals(&S, &chld);
            if (chld)
                s_reap(&S);
            if (S.sock >= 0 && pf[1].revents)
                s_messages(&S, (pf[1].revents & (POLLHUP | POLLERR)) != 0);
        }
        s_timers(&S);
    }
}

/* ---------------------------------------------------------------------------
 * Engine side. */

struct ljob {
    char *id;
    unsigned long seq;       /* request number at our spawner, 0 if none */
    pid_t pid;               /* 0: unknown (only the lock tells liveness) */
    unsigned long long start;
    int cores;
    char *result_path;       /* may be NULL */
    char *lock_path;         /* may be NULL */
    char *token;             /* may be NULL */
    char *why;               /* could not start, and no record says so */
    int spawned;             /* our spawner runs it and reports its end */
    int queued;              /* ... but it waits for cores */
    int orphan;              /* ... but it died before the end */
    int exited;              /* reported: code valid */
    int code;                /* 0: completed */
    int pidfd;               /* followed by pid: pidfd or -1 */
    int dead;                /* the process is gone (we wait for its record) */
    int canceled;
    double kill_at;          /* monotonic time to SIGKILL the group, 0 = none */
};

struct local {
    int total;               /* cores */
    int extra;               /* cores' worth of requests that may wait */
    int used;                /* cores of tracked jobs, waiting ones too */
    int ext_sent;            /* others' cores, as last told to the spawner */
    unsigned long seq;       /* last request number */
    struct ljob **jobs;
    size_t njobs, alloc;
    int zfd;                 /* socket to the spawner, -1 if none */
    pid_t zpid;
};

static int local_is_open;

static void job_free(struct ljob *j)
{
    if (!j)
        return;
    if (j->pidfd >= 0)
        close(j->pidfd);
    free(j->id);
    free(j->result_path);
    free(j->lock_path);
    free(j->token);
    free(j->why);
    free(j);
}

/* Follow pid by a pidfd, unless it is not the process we mean. */
static void job_watch(struct ljob *j)
{
    if (j->pid <= 0 || j->pidfd >= 0)
        return;
    int fd = (int)syscall(SYS_pidfd_open, j->pid, 0);
    /* The pidfd must refer to the same process: check after opening. */
    if (!proc_alive(j->pid, j->start)) {
        if (fd >= 0)
            close(fd);
        j->dead = 1;
        return;
    }
    j->pidfd = fd;
}

static struct ljob *job_add(struct local *L, const char *id, pid_t pid, unsigned long long start,
                            const struct hp_jobspec *spec, int spawned)
{
    struct ljob *j = hp_xcalloc(1, sizeof(*j));
    j->id = hp_xstrdup(id);
    j->pid = pid;
    j->start = start;
    j->cores = job_cores(spec);
    j->result_path = spec->result_path ? hp_xstrdup(spec->result_path) : NULL;
    j->lock_path = lock_path_for(spec->result_path);
    j->token = spec->token ? hp_xstrdup(spec->token) : NULL;
    j->spawned = spawned;
    j->pidfd = -1;
    if (!spawned)
        job_watch(j);
    HP_ALLOC_GROW(L->jobs, L->njobs + 1, L->alloc);
    L->jobs[L->njobs++] = j;
    L->used += j->cores;
    return j;
}

static struct ljob *job_find(struct local *L, const char *id)
{
    for (size_t i = 0; i < L->njobs; i++)
        if (!strcmp(L->jobs[i]->id, id))
            return L->jobs[i];
    return NULL;
}

static void job_remove(struct local *L, struct ljob *j)
{
    for (size_t i = 0; i < L->njobs; i++) {
        if (L->jobs[i] == j) {
            L->jobs[i] = L->jobs[--L->njobs];
            L->used -= j->cores;
            job_free(j);
            return;
        }
    }
}

/* Tell the spawner the cores that tasks it does not run take (adopted
 * ones, orphans of an earlier spawner), when that changed. */
static void z_sync_ext(struct local *L)
{
    int ext = 0;
    for (size_t i = 0; i < L->njobs; i++)
        if (!L->jobs[i]->spawned || L->jobs[i]->orphan)
            ext += L->jobs[i]->cores;
    if (ext != L->ext_sent && L->zfd >= 0) {
        z_send(L->zfd, "U %d", ext);
        L->ext_sent = ext;
    }
}

static void spawner_start(struct local *L)
{
    int sv[2];
    L->zfd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    int sz = ZMSG_MAX + 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    if (pid == 0) {
        close(sv[0]);
        spawner_main(sv[1], L->total);
    }
    close(sv[1]);
    L->zfd = sv[0];
    L->zpid = pid;
    L->ext_sent = 0;
}

/* The spawner is gone: the tasks it ran live on, orphaned; follow them by
 * pid. Those that waited never start: their lock is free, they read as lost. */
static void spawner_lost(struct local *L)
{
    if (L->zfd < 0)
        return;
    close(L->zfd);
    L->zfd = -1;
    waitpid(L->zpid, NULL, WNOHANG);
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (!j->spawned || j->orphan || j->exited)
            continue;
        j->orphan = 1;
        j->queued = 0;
        job_watch(j);
    }
}

static struct ljob *job_by_seq(struct local *L, unsigned long seq)
{
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (j->seq == seq && j->spawned && !j->orphan)
            return j;
    }
    return NULL;
}

static void z_reports(struct local *L, char *msg)
{
    for (char *line = msg, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        unsigned long seq;
        int pid, code, off = 0;
        unsigned long long start;
        struct ljob *j;
        if (sscanf(line, "A %lu %d %llu", &seq, &pid, &start) == 3) {
            if ((j = job_by_seq(L, seq)) && j->queued) {
                j->queued = 0;
                j->pid = pid;
                j->start = start;
            }
        } else if (sscanf(line, "D %lu %d%n", &seq, &code, &off) == 2) {
            if ((j = job_by_seq(L, seq)) && !j->exited) {
                j->exited = 1;
                j->queued = 0;
                j->code = code;
                if (line[off] == ' ' && line[off + 1] && !j->why)
                    j->why = hp_xstrdup(line + off + 1);
            }
        }
    }
}

/* Read what the spawner sent. block: wait for the answer to a request,
 * copied into reply. Returns 1 with an answer, 0 when nothing more is there
 * (not blocking), -1 when the spawner is gone. */
static int z_pump(struct local *L, int block, char *reply, size_t len)
{
    char msg[ZREPORT_MAX];
    while (L->zfd >= 0) {
        ssize_t n = recv(L->zfd, msg, sizeof(msg) - 1, block ? 0 : MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && !block)
            return 0;
        if (n <= 0) {
            spawner_lost(L);
            return -1;
        }
        msg[n] = '\0';
        if (msg[0] == 'D' || msg[0] == 'A') {
            z_reports(L, msg);
        } else if (block) {
            size_t m = (size_t)n < len ? (size_t)n : len - 1;
            memcpy(reply, msg, m);
            reply[m] = '\0';
            return 1;
        }
    }
    return -1;
}

/* Will a request for cores wait at the spawner? Surely, if one waits there
 * already (it serves them in order), or if the tasks we know to run leave
 * too few cores. */
static int z_will_wait(struct local *L, int cores)
{
    int running = 0, ext = 0;
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (!j->spawned || j->orphan)
            ext += j->cores;
        else if (j->queued)
            return 1;
        else if (!j->exited)
            running += j->cores;
    }
    return running + cores > L->total - ext;
}

/* Ask the spawner to start spec as request seq. 0: started (*pid, *start);
 * 3: waits for cores; 1: could not start, *why set (new string); 2: the
 * spawner died before it answered; -1: error. A request that will wait is
 * not answered: the engine goes on at once, and learns of the start from an
 * A report. */
static int z_start(struct local *L, const struct hp_jobspec *spec, unsigned long seq,
                   const int fd[3], pid_t *pid, unsigned long long *start, char **why,
                   struct hp_err *err)
{
    if (L->zfd < 0)
        spawner_start(L);
    if (L->zfd < 0)
        return hp_err_errno(err, "cannot start the process that starts tasks");
    z_sync_ext(L);
    int answer = !z_will_wait(L, job_cores(spec));
    int fds[ZFD_MAX], nfds = 0, memfd = -1, mask = 0;
    for (int k = 0; k < 3; k++)
        if (fd[k] >= 0)
            mask |= 1 << k;     /* ZFD_LOCK, ZFD_OUT, ZFD_ERR */
    struct hp_buf b = HP_BUF_INIT;
    z_encode(spec, seq, answer, mask, &b);
    if (b.len > ZMSG_MAX) {
        /* Too big for one message: the request goes in a memfd. */
        memfd = memfd_create("hpcport-request", MFD_CLOEXEC);
        if (memfd < 0 || write(memfd, b.buf, b.len) != (ssize_t)b.len) {
            hp_err_errno(err, "cannot pass task '%s' to the spawner",
                         spec->instance ? spec->instance : "?");
            if (memfd >= 0)
                close(memfd);
            hp_buf_release(&b);
            return -1;
        }
        hp_buf_reset(&b);
        hp_buf_addch(&b, 'M');
        fds[nfds++] = memfd;
    }
    for (int k = 0; k < 3; k++)
        if (fd[k] >= 0)
            fds[nfds++] = fd[k];
    union {
        char buf[CMSG_SPACE(ZFD_MAX * sizeof(int))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = { b.buf, b.len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        mh.msg_control = cm.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t w;
    while ((w = sendmsg(L->zfd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    hp_buf_release(&b);
    if (memfd >= 0)
        close(memfd);
    if (w < 0) {
        spawner_lost(L);
        return 2;
    }
    if (!answer)
        return 3;
    char reply[1100];
    if (z_pump(L, 1, reply, sizeof(reply)) < 0)
        return 2;
    int p, e;
    if (reply[0] == 'S' && sscanf(reply, "S %d %llu", &p, start) == 2) {
        *pid = (pid_t)p;
        return 0;
    }
    if (reply[0] == 'Q')
        return 3;
    if (reply[0] == 'F') {
        *why = hp_xstrdup(reply[1] == ' ' ? reply + 2 : "cannot start the task");
        return 1;
    }
    if (reply[0] == 'E' && sscanf(reply, "E %d", &e) == 1) {
        errno = e;
        return hp_err_errno(err, "cannot start the task");
    }
    return hp_err_set(err, HP_EINTERNAL, "unexpected answer from the spawner: %.60s", reply);
}

static void *local_open(const struct hp_site *site, struct hp_err *err)
{
    if (local_is_open) {
        hp_err_set(err, HP_EINTERNAL, "the local adapter is already open in this process");
        return NULL;
    }
    struct local *L = hp_xcalloc(1, sizeof(*L));
    L->total = site && site->cores_per_node > 0 ? site->cores_per_node : 0;
    if (!L->total) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            L->total = CPU_COUNT(&set);
        if (L->total <= 0)
            L->total = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (L->total <= 0)
            L->total = 1;
    }
    /* Requests wait at the spawner, so that it starts the next task the
     * moment one ends, whatever the engine is busy with (a database commit
     * takes milliseconds). */
    L->extra = L->total > QUEUE_MIN ? L->total : QUEUE_MIN;
    /* The spawner holds three descriptors per waiting request, one per
     * running task: stay well within its limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long room = ((long)rl.rlim_cur - 64 - L->total) / 3;
        if (room < L->extra)
            L->extra = room > 1 ? (int)room : 1;
    }
    L->zfd = -1;
    local_is_open = 1;
    spawner_start(L);
    return L;
}

static void local_close(void *impl)
{
    struct local *L = impl;
    if (!L)
        return;
    if (L->zfd >= 0) {
        /* The spawner ends on end of file, once its tasks have: it keeps
         * running them (an interrupted run leaves them to finish), and
         * drops the requests still waiting. Wait for it only when it has
         * nothing to run. */
        int busy = 0;
        for (size_t i = 0; i < L->njobs; i++) {
            struct ljob *j = L->jobs[i];
            busy |= j->spawned && !j->orphan && !j->exited;
        }
        close(L->zfd);
        waitpid(L->zpid, NULL, busy ? WNOHANG : 0);
    }
    for (size_t i = 0; i < L->njobs; i++)
        job_free(L->jobs[i]);
    free(L->jobs);
    free(L);
    local_is_open = 0;
}

static long local_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct local *L = impl;
    if (spec && job_cores(spec) > L->total)
        return 0;       /* never fits: the engine reports it */
    long free = (long)L->total + L->extra - L->used;
    return free > 0 ? free : 0;
}

static int open_lock(const char *path, struct hp_err *err, int *existed, int *fresh_dir)
{
    *existed = 0;
    *fresh_dir = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        char *dir = hp_dirname(path);
        if (mkdir(dir, 0700) == 0) {
            *fresh_dir = 1;
        } else if (errno != EEXIST && hp_mkdir_p(dir, 0700) < 0) {
            hp_err_errno(err, "cannot create %s", dir);
            free(dir);
            return -1;
        }
        free(dir);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0 && errno == EEXIST) {
        *existed = 1;
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    if (fd < 0)
        return hp_err_errno(err, "cannot create %s", path);
    return fd;
}

/* Register an earlier submission of spec's attempt known by its files
 * (finished, or followed by its lock) and return its job id. */
static char *register_finished(struct local *L, const struct hp_jobspec *spec)
{
    char *id = hp_xasprintf("0:%s", spec->token ? spec->token : "?");
    if (!job_find(L, id))
        job_add(L, id, 0, 0, spec, 0);
    return id;
}

/* Register the process pid as an earlier submission of spec's attempt. */
static char *register_pid(struct local *L, const struct hp_jobspec *spec, pid_t pid,
                          unsigned long long start)
{
    char *id = hp_xasprintf("%d:%llu", (int)pid, start);
    if (!job_find(L, id))
        job_add(L, id, pid, start, spec, 0);
    return id;
}

/* The attempt's lock file existed: an earlier process submitted this
 * attempt. Returns 1 with *job_id set if that submission is alive or
 * finished (registered), 0 if it was lost (we then hold the lock on fd and
 * run it afresh), -1 on error. */
static int find_earlier(struct local *L, const struct hp_jobspec *spec, int fd,
                        char **job_id, struct hp_err *err)
{
    pid_t pid = 0;
    unsigned long long start = 0;
    char tok[200] = "";
    int held = flock(fd, LOCK_EX | LOCK_NB) < 0;
    if (held && errno != EWOULDBLOCK)
        return hp_err_errno(err, "flock");
    if (held) {
        /* A spawner runs it, and writes "pid start token" once it does. */
        for (int tries = 0; tries < 200; tries++) {
            if (read_pid_line(fd, &pid, &start, tok, sizeof(tok)) == 0)
                break;
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        if (spec->token && tok[0] && strcmp(tok, spec->token))
            return hp_err_set(err, HP_ESTATE,
                              "%s is held by process %d for another campaign (token %s); "
                              "stop it or use another --campaign", spec->result_path, (int)pid,
                              tok);
        /* Still held after we read the pid: the pid is the holder's task. */
        held = flock(fd, LOCK_EX | LOCK_NB) < 0;
        if (held && pid > 0) {
            *job_id = register_pid(L, spec, pid, start);
            return 1;
        }
    }
    /* Finished, or held without a pid: waiting at a spawner (the lock
     * tells when that ends). */
    struct hp_jobstate js;
    if (held || read_result(spec->result_path, spec->token, &js) == 0) {
        *job_id = register_finished(L, spec);
        return 1;
    }
    /* Its spawner died, but the task may still run: follow it. */
    if (read_pid_line(fd, &pid, &start, tok, sizeof(tok)) == 0 &&
        (!spec->token || !strcmp(tok, spec->token)) && proc_alive(pid, start)) {
        *job_id = register_pid(L, spec, pid, start);
        return 1;
    }
    /* Lost (or stale from an older campaign of the same name): start over. */
    if (ftruncate(fd, 0) < 0)
        return hp_err_errno(err, "truncate %s", spec->result_path);
    unlink(spec->result_path);
    return 0;
}

static int local_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                        struct hp_err *err)
{
    struct local *L = impl;
    char *lock = lock_path_for(spec->result_path);
    int fd = -1, existed = 0, fds[3] = { -1, -1, -1 };  /* lock, stdout, stderr */
    *job_id = NULL;
    if (lock) {
        int fresh_dir;
        fd = open_lock(lock, err, &existed, &fresh_dir);
        if (fd < 0)
            goto fail;
        if (!existed && !fresh_dir) {
            /* No running twin; the attempt may have finished already (its
             * temporary file renamed onto the result). */
            struct hp_jobstate js;
            struct stat sb;
            if (stat(spec->result_path, &sb) == 0) {
                if (read_result(spec->result_path, spec->token, &js) == 0) {
                    unlink(lock);
                    close(fd);
                    free(lock);
                    *job_id = register_finished(L, spec);
                    return 0;
                }
                unlink(spec->result_path);   /* stale: another campaign's */
            }
        }
        if (existed) {
            int r = find_earlier(L, spec, fd, job_id, err);
            if (r < 0)
                goto fail;
            if (r > 0) {
                close(fd);
                free(lock);
                return 0;
            }
            /* r == 0: we hold the lock already */
        } else if (flock(fd, LOCK_EX) < 0) {
            hp_err_errno(err, "flock %s", lock);
            goto fail;
        }
    }
    /* The task's stdout and stderr are created here, beside the spawner:
     * creating a file can take long (ext4 without a journal, after many
     * deletions), and the spawner has tasks to start meanwhile. If one
     * cannot be opened, the task's own try says why in its exit record. */
    fds[0] = fd;
    if (spec->stdout_path)
        fds[1] = open(spec->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (spec->stderr_path && !(spec->stdout_path && !strcmp(spec->stderr_path,
                                                            spec->stdout_path)))
        fds[2] = open(spec->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t pid = 0;
    unsigned long long start = 0;
    char *why = NULL;
    unsigned long seq = ++L->seq;
    int zr;
    for (int round = 0;; round++) {
        zr = z_start(L, spec, seq, fds, &pid, &start, &why, err);
        if (zr != 2)
            break;
        /* The spawner died under us. A task it started wrote its pid; if
         * none is there, nothing ran: ask a new spawner, once. */
        char tok[200];
        if (fd >= 0 && read_pid_line(fd, &pid, &start, tok, sizeof(tok)) == 0) {
            *job_id = hp_xasprintf("%d:%llu", (int)pid, start);
            struct ljob *j = job_add(L, *job_id, pid, start, spec, 1);
            j->orphan = 1;
            job_watch(j);
            goto done;
        }
        if (round > 0 || fd < 0) {
            hp_err_set(err, HP_ESYS, "the process that starts tasks died");
            goto fail;
        }
    }
    if (zr < 0)
        goto fail;
    struct ljob *j;
    if (zr == 0) {
        *job_id = hp_xasprintf("%d:%llu", (int)pid, start);
        j = job_add(L, *job_id, pid, start, spec, 1);
    } else {
        /* Waiting for cores, or failed at once (the exit record says why):
         * known by its token until it runs. */
        *job_id = hp_xasprintf("0:%s", spec->token ? spec->token : "?");
        j = job_add(L, *job_id, 0, 0, spec, 1);
        j->queued = zr == 3;
        if (zr == 1) {
            j->exited = 1;
            j->code = 127;
            j->why = why;
        }
    }
    j->seq = seq;
done:
    for (int k = 1; k < 3; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    if (fd >= 0)
        close(fd);
    free(lock);
    return 0;
fail:
    for (int k = 1; k < 3; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    if (fd >= 0)
        close(fd);
    free(lock);
    return -1;
}

static int local_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                       struct hp_err *err)
{
    struct local *L = impl;
    pid_t pid;
    unsigned long long start;
    if (job_find(L, job_id))
        return 0;
    if (hp_starts_with(job_id, "0:")) {
        pid = 0;
        start = 0;
    } else if (parse_job_id(job_id, &pid, &start) < 0) {
        return hp_err_set(err, HP_ESTATE, "'%s' is not a local job id", job_id);
    }
    job_add(L, job_id, pid, start, spec, 0);
    return 0;
}

/* The comm of process pid is the spawner's, and it is ours. */
static int is_spawner(pid_t pid)
{
    char path[64], comm[32];
    struct stat sb;
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    if (stat(path, &sb) < 0 || sb.st_uid != geteuid())
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, comm, sizeof(comm) - 1);
    close(fd);
    comm[n > 0 ? n : 0] = '\0';
    comm[strcspn(comm, "\n")] = '\0';
    return !strcmp(comm, SPAWNER_NAME);
}

/* Stop the task whose process group is pid: ask the spawner that runs it
 * (it escalates to SIGKILL after the grace and records the cancel), else
 * signal the group ourselves. */
static void cancel_pid(pid_t pid)
{
    char buf[1024];
    int ppid = 0;
    char *p = proc_stat_fields(pid, buf, sizeof(buf));
    if (p && sscanf(p, "%*c %d", &ppid) == 1 && ppid > 1 && is_spawner(ppid)) {
        union sigval v = { .sival_int = (int)pid };
        if (sigqueue(ppid, CANCEL_SIG, v) == 0)
            return;
    }
    kill(-pid, SIGTERM);
}

/* Stop the task of the attempt with this token, known by no pid (it waited
 * for cores when it was submitted): every spawner of ours is asked. */
static void cancel_token(const char *token)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    union sigval v = { .sival_int = -token_hash(token) };
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid > INT_MAX || !is_spawner((pid_t)pid))
            continue;
        sigqueue((pid_t)pid, CANCEL_SIG, v);
    }
    closedir(d);
}

static void escalate(struct local *L)
{
    double now = hp_now();
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (j->kill_at && now >= j->kill_at) {
            j->kill_at = 0;
            if (j->pid > 0 && !j->dead && proc_alive(j->pid, j->start))
                kill(-j->pid, SIGKILL);
        }
    }
}

/* Is the job still waiting or running (or its record being written)? */
static int job_alive(struct ljob *j)
{
    if (j->spawned && !j->orphan)
        return !j->exited;
    if (j->pid > 0 && !j->dead) {
        if (j->pidfd >= 0) {
            struct pollfd pf = { .fd = j->pidfd, .events = POLLIN };
            j->dead = poll(&pf, 1, 0) != 0;
        } else {
            j->dead = !proc_alive(j->pid, j->start);
        }
        if (!j->dead)
            return 1;
        if (j->pidfd >= 0) {
            close(j->pidfd);
            j->pidfd = -1;
        }
    }
    /* Gone: its spawner holds the lock until the record is in place. */
    return j->lock_path && lock_held(j->lock_path) == 1;
}

/* State of one job we track. Removes it from the table once final. */
static void job_state(struct local *L, struct ljob *j, struct hp_jobstate *out)
{
    memset(out, 0, sizeof(*out));
    if (job_alive(j)) {
        out->state = j->queued ? HP_JOB_QUEUED : HP_JOB_ACTIVE;
        return;
    }
    if (j->spawned && !j->orphan && j->code == 0 && !j->canceled) {
        out->state = HP_JOB_COMPLETED;
    } else if (read_result(j->result_path, j->token, out) == 0) {
        if (j->canceled)
            out->state = HP_JOB_CANCELED;
    } else if (j->why) {
        out->state = HP_JOB_FAILED;
        out->exit_code = 127;
        snprintf(out->reason, sizeof(out->reason), "%s", j->why);
    } else if (j->canceled) {
        out->state = HP_JOB_CANCELED;
        snprintf(out->reason, sizeof(out->reason), "canceled");
    } else if (j->orphan && j->pid > 0) {
        out->state = HP_JOB_FAILED;
        out->exit_code = -1;
        snprintf(out->reason, sizeof(out->reason),
                 "the spawner died before the task ended; the task's outcome is unknown");
    } else if (j->spawned && !j->orphan) {
        out->state = HP_JOB_FAILED;
        out->exit_code = -1;
        snprintf(out->reason, sizeof(out->reason),
                 "the task ended but its exit record could not be written (%s)",
                 j->result_path ? j->result_path : "no path");
    } else {
        out->state = HP_JOB_UNKNOWN;
        snprintf(out->reason, sizeof(out->reason), "gone without an exit record");
    }
    job_remove(L, j);
}

static int local_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                        struct hp_err *err)
{
    struct local *L = impl;
    (void)err;
    z_pump(L, 0, NULL, 0);
    escalate(L);
    for (size_t i = 0; i < n; i++) {
        struct ljob *j = job_find(L, ids[i]);
        if (j) {
            job_state(L, j, &out[i]);
            continue;
        }
        /* Not ours and not adopted: all we can tell is whether it lives. */
        pid_t pid;
        unsigned long long start;
        memset(&out[i], 0, sizeof(out[i]));
        if (parse_job_id(ids[i], &pid, &start) == 0 && proc_alive(pid, start)) {
            out[i].state = HP_JOB_ACTIVE;
        } else {
            out[i].state = HP_JOB_UNKNOWN;
            snprintf(out[i].reason, sizeof(out[i].reason), "no such job");
        }
    }
    z_sync_ext(L);
    return 0;
}

static int local_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct local *L = impl;
    struct ljob *j = L ? job_find(L, id) : NULL;
    pid_t pid;
    unsigned long long start;
    if (j) {
        j->canceled = 1;
        if (j->exited || j->dead)
            return 0;
        if (j->spawned && !j->orphan && L->zfd >= 0) {
            z_send(L->zfd, "C %lu", j->seq);
            return 0;
        }
        if (j->pid > 0) {
            if (proc_alive(j->pid, j->start)) {
                cancel_pid(j->pid);
                j->kill_at = hp_now() + KILL_GRACE;
            }
        } else if (j->token) {
            cancel_token(j->token);
        }
        return 0;
    }
    if (hp_starts_with(id, "0:")) {
        if (id[2] && id[2] != '?')
            cancel_token(id + 2);
        return 0;
    }
    if (parse_job_id(id, &pid, &start) < 0)
        return hp_err_set(err, HP_ESTATE, "'%s' is not a local job id", id);
    if (proc_alive(pid, start))
        cancel_pid(pid);
    return 0;
}

static int local_wait(void *impl, double timeout)
{
    struct local *L = impl;
    struct pollfd few[16], *fds = L->njobs < 16 ? few : hp_xcalloc(L->njobs + 1, sizeof(*fds));
    size_t nfds = 0;
    double now = hp_now();
    if (L->zfd >= 0) {
        fds[nfds].fd = L->zfd;
        fds[nfds++].events = POLLIN;
    }
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (j->kill_at && j->kill_at - now < timeout)
            timeout = j->kill_at - now;
        if (j->spawned && !j->orphan)
            continue;           /* the spawner reports it */
        if (j->pidfd >= 0 && !j->dead) {
            fds[nfds].fd = j->pidfd;
            fds[nfds++].events = POLLIN;
        } else if (j->pid > 0 && j->dead) {
            if (timeout > 0.02)
                timeout = 0.02; /* its record is being written */
        } else if (timeout > 0.25) {
            timeout = 0.25;     /* only the lock tells: look again soon */
        }
    }
    if (timeout < 0)
        timeout = 0;
    int ms = (int)(timeout * 1000.0 + 0.999);
    poll(fds, nfds, ms);
    if (fds != few)
        free(fds);
    return 0;
}

static int local_render(const struct hp_jobspec *spec, const struct hp_site *site,
                        struct hp_buf *out, struct hp_err *err)
{
    (void)site;
    (void)err;
    char dur[32];
    hp_buf_adds(out, "#!/bin/sh\n");
    hp_buf_addf(out, "# hpcport local job: %s (attempt %d)\n",
                spec->instance ? spec->instance : "?", spec->attempt);
    hp_buf_addf(out, "# cores: %d", job_cores(spec));
    if (spec->res.walltime > 0) {
        hp_format_duration(spec->res.walltime, dur, sizeof(dur));
        hp_buf_addf(out, ", walltime: %s (SIGTERM, then SIGKILL after 5 s)", dur);
    }
    hp_buf_adds(out, "\n# started and supervised by hpcport's spawner; no shell is involved "
                     "unless the task says shell:\n");
    if (spec->workdir) {
        hp_buf_adds(out, "cd ");
        hp_sq_quote(out, spec->workdir);
        hp_buf_adds(out, " || exit 127\n");
    }
    for (size_t i = 0; i < spec->nenv; i++) {
        hp_buf_addf(out, "export %s=", spec->env[i].key);
        hp_sq_quote(out, spec->env[i].value ? spec->env[i].value : "");
        hp_buf_addch(out, '\n');
    }
    hp_buf_adds(out, "exec ");
    if (spec->shell) {
        hp_buf_adds(out, "/bin/sh -c ");
        hp_sq_quote(out, spec->shell);
    } else if (spec->argv) {
        hp_sq_quote_argv(out, spec->argv);
    }
    hp_buf_adds(out, " </dev/null");
    if (spec->stdout_path) {
        hp_buf_adds(out, " >");
        hp_sq_quote(out, spec->stdout_path);
    }
    if (spec->stderr_path) {
        hp_buf_adds(out, " 2>");
        hp_sq_quote(out, spec->stderr_path);
    }
    hp_buf_addch(out, '\n');
    return 0;
}

const struct hp_adapter_ops hp_adapter_local = {
    .name = "local",
    .render = local_render,
    .submit = local_submit,
    .status = local_status,
    .cancel = local_cancel,
    .wait = local_wait,
    .capacity = local_capacity,
    .open = local_open,
    .close = local_close,
    .adopt = local_adopt,
};
