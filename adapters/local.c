/* local.c - the "local" adapter: task instances run as processes on this
 * machine.
 *
 * Every attempt gets a supervisor: a forked copy of hpcport that never
 * execs. It becomes a session leader (so it outlives `hpcport run`; SIGHUP
 * ignored), redirects stdin/stdout/stderr, changes to the work directory,
 * sets the environment and spawns the task (argv as given, never through a
 * shell unless the task says `shell:`). It enforces the walltime (SIGTERM to
 * its process group, SIGKILL after a 5 s grace), writes the outcome to
 * spec->result_path (temporary file + rename), reports it to the engine on a
 * pipe and exits.
 *
 * Cores: a task needs ntasks x cores of the site's cores (nodes.cores, or
 * the processors of this machine). When they are not free, submit() still
 * starts the supervisor, which prepares everything and waits (QUEUED) for
 * SIGUSR1; the engine sends it when a finished task frees the cores, so the
 * next task starts without waiting for a fork. At most `total cores' worth of
 * supervisors wait; capacity() reports room for running plus waiting ones.
 * A waiting supervisor whose engine dies gives up (PR_SET_PDEATHSIG) and
 * leaves no files: that attempt never ran.
 *
 * Supervisors are forked by a spawner process (see "The spawner"), so that
 * the engine, which writes many pages per task, never forks itself.
 *
 * Crash safety rests on the result's temporary twin (<attempt>.rc.tmp):
 * submit() creates it with O_EXCL and takes flock() on it before the
 * supervisor exists; the supervisor inherits the lock, writes "pid token"
 * into the file, at the end overwrites it with the outcome and renames it
 * onto <attempt>.rc, and holds the lock until it exits. A second submit() of
 * the same attempt (same paths and token) after a crash therefore finds the
 * earlier supervisor (lock held: running; result present: finished) instead
 * of running the task twice.
 *
 * job ids are "<supervisor pid>:<start time>" (field 22 of /proc/PID/stat),
 * so a recycled pid is never taken for the supervisor; "0:<token>" names an
 * earlier submission known only by its files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
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

extern char **environ;

struct ljob {
    char *id;
    pid_t pid;               /* 0: unknown (only the lock tells liveness) */
    unsigned long long start;
    int cores;
    char *result_path;       /* may be NULL */
    char *lock_path;         /* may be NULL */
    char *token;             /* may be NULL */
    int child;               /* started by this engine (directly or through
                                the spawner): its report or exit status
                                reaches us */
    int spawned;             /* child of the spawner, not of this process */
    int exited;              /* reported or reaped: wstatus valid */
    int wstatus;
    int pidfd;               /* spawned and adopted jobs: pidfd or -1 */
    int canceled;
    double kill_at;          /* monotonic time to SIGKILL the group, 0 = none */
    int queued;              /* supervisor ready, waiting for cores (SIGUSR1) */
    unsigned long seq;       /* submission order */
};

struct local {
    int total;               /* cores */
    int used;                /* cores of running tasks */
    int qcores;              /* cores of queued supervisors */
    int extra;               /* cores' worth of supervisors that may wait */
    unsigned long seq;
    struct ljob **jobs;
    size_t njobs, alloc;
    int pipe[2];             /* SIGCHLD self-pipe */
    int done[2];             /* supervisors report "D pid status" here */
    char dbuf[256];          /* a partial report */
    size_t dlen;
    struct sigaction old_chld;
    int zfd;                 /* socket to the spawner, -1 if none */
    pid_t zpid;
};

static int sigchld_fd = -1;
/* Write end of the report pipe, inherited by supervisors: a supervisor
 * reports its outcome as soon as the result file is written, before its own
 * (slow) exit, so the engine can reuse the cores at once. */
static int done_fd = -1;
/* In the spawner, fd 0 is /dev/null already. */
static int stdin_is_null;

static void on_sigchld(int sig)
{
    int saved = errno;
    char c = 0;
    (void)sig;
    if (sigchld_fd >= 0 && write(sigchld_fd, &c, 1) < 0) {
        /* pipe full: a wakeup is pending anyway */
    }
    errno = saved;
}

static int job_cores(const struct hp_jobspec *spec)
{
    long n = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    long c = spec->res.cores > 0 ? spec->res.cores : 1;
    long v = n * c;
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* The attempt's lock is the result file's temporary twin: submit() creates
 * and locks it, the supervisor writes "pid token" into it at once and the
 * outcome at the end, then renames it onto the result path. */
static char *lock_path_for(const char *result_path)
{
    return result_path ? hp_xasprintf("%s.tmp", result_path) : NULL;
}

/* Start time and state of pid from /proc/PID/stat; -1 if no such process. */
static int proc_stat(pid_t pid, unsigned long long *start, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || !p[1])
        return -1;
    p += 2;
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

static int proc_pgrp(pid_t pid, pid_t *pgrp)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int ppid, pg;
    char st;
    if (!p || sscanf(p + 1, " %c %d %d", &st, &ppid, &pg) != 3)
        return -1;
    *pgrp = pg;
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

/* Lock held by a live supervisor? 1 yes, 0 no, -1 no lock file. */
static int lock_held(const char *lock_path)
{
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

/* ---------------------------------------------------------------------------
 * The supervisor (child side). Never returns; uses only async-signal-safe
 * calls where it matters and _exit(), so the parent's stdio buffers and
 * atexit handlers are left alone. */

static void sup_write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void sup_kill_group(pid_t task)
{
    pid_t self = getpid();
    kill(task, SIGKILL);
    /* Everything else in our process group but us. */
    for (int round = 0; round < 3; round++) {
        DIR *d = opendir("/proc");
        int found = 0;
        if (!d)
            return;
        struct dirent *de;
        while ((de = readdir(d))) {
            char *end;
            long pid = strtol(de->d_name, &end, 10);
            pid_t pg;
            if (*end || pid <= 0 || pid == self)
                continue;
            if (proc_pgrp((pid_t)pid, &pg) == 0 && pg == self) {
                kill((pid_t)pid, SIGKILL);
                found = 1;
            }
        }
        closedir(d);
        if (!found)
            break;
    }
}

static int sup_write_result(const struct hp_jobspec *spec, const char *outcome,
                            const char *reason, int canceled, double t0, double t1)
{
    if (!spec->result_path)
        return 0;
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_addf(&b, "%s\n", outcome);
    if (spec->token)
        hp_buf_addf(&b, "token %s\n", spec->token);
    hp_buf_addf(&b, "start %.6f\nend %.6f\n", t0, t1);
    if (reason) {
        hp_buf_adds(&b, "reason ");
        for (const char *p = reason; *p; p++)
            hp_buf_addch(&b, *p == '\n' ? ' ' : *p);
        hp_buf_addch(&b, '\n');
    }
    if (canceled)
        hp_buf_adds(&b, "canceled\n");
    /* fd 3 is the locked temporary file: fill it, then publish it with one
     * rename, so a reader sees no result or all of it. */
    char *tmp = lock_path_for(spec->result_path);
    int ret = -1;
    if (pwrite(3, b.buf, b.len, 0) == (ssize_t)b.len && ftruncate(3, (off_t)b.len) == 0 &&
        rename(tmp, spec->result_path) == 0)
        ret = 0;
    free(tmp);
    hp_buf_release(&b);
    return ret;
}

static int sup_open_out(const char *path, int target)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        char *dir = hp_dirname(path);
        hp_mkdir_p(dir, 0700);
        free(dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        return -1;
    if (fd != target) {
        if (dup2(fd, target) < 0)
            return -1;
        close(fd);
    } else {
        fcntl(fd, F_SETFD, 0);
    }
    return 0;
}

static void sup_fail(const struct hp_jobspec *spec, double t0, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void sup_fail(const struct hp_jobspec *spec, double t0, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[1100];
    int n = snprintf(line, sizeof(line), "hpcport: %s\n", msg);
    if (n > 0)
        sup_write_all(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    sup_write_result(spec, "exit 127", msg, 0, t0, hp_wall_now());
    _exit(127);
}

static void sup_report(int fd, pid_t self, int code)
{
    if (fd < 0)
        return;
    char msg[48];
    int n = snprintf(msg, sizeof(msg), "D %d %d\n", (int)self, code);
    if (write(fd, msg, (size_t)n) < 0) {
        /* engine gone or pipe full: the exit status or pidfd still tells */
    }
}

static void supervise(const struct hp_jobspec *spec, int lockfd, int wait_go, pid_t parent)
    __attribute__((noreturn));

/* A queued supervisor whose engine died before letting it start: leave no
 * trace of an attempt that never ran. */
static void sup_abandon(const struct hp_jobspec *spec) __attribute__((noreturn));

static void sup_abandon(const struct hp_jobspec *spec)
{
    if (spec->stdout_path)
        unlink(spec->stdout_path);
    if (spec->stderr_path)
        unlink(spec->stderr_path);
    if (spec->result_path) {
        char *tmp = lock_path_for(spec->result_path);
        unlink(tmp);
        free(tmp);
    }
    _exit(123);
}

/* wait_go: everything is prepared, then the supervisor waits for SIGUSR1 (a
 * free core) before it starts the task; if its parent (the engine or the
 * spawner) dies first, it gives up (SIGUSR2 via PR_SET_PDEATHSIG). */
static void supervise(const struct hp_jobspec *spec, int lockfd, int wait_go, pid_t parent)
{
    double t0 = hp_wall_now(), m0 = hp_now();
    /* Block before touching dispositions: SIGUSR1 (go) may already be on
     * its way, and the parent forked us with it blocked. */
    sigset_t wait_set, go_set, all;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGCHLD);
    sigaddset(&wait_set, SIGTERM);
    sigaddset(&wait_set, SIGINT);
    go_set = wait_set;
    sigdelset(&go_set, SIGCHLD);
    sigaddset(&go_set, SIGUSR1);
    sigaddset(&go_set, SIGUSR2);
    all = go_set;
    sigaddset(&all, SIGCHLD);
    sigprocmask(SIG_BLOCK, &all, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    static const int dflt[] = { SIGCHLD, SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++)
        sigaction(dflt[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);

    setsid();

    /* The lock goes to fd 3, the report pipe to fd 4, and everything else
     * the parent had open (the database, the run lock, sockets) is closed. */
    int l2 = lockfd >= 0 ? fcntl(lockfd, F_DUPFD_CLOEXEC, 10) : -1;
    int d2 = done_fd >= 0 ? fcntl(done_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (lockfd >= 0 && (l2 < 0 || dup2(l2, 3) < 0))
        _exit(126);
    if (lockfd < 0)
        close(3);
    if (d2 < 0 || dup2(d2, 4) < 0)
        close(4);
    close_range(5, ~0U, 0);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    fcntl(4, F_SETFD, FD_CLOEXEC);
    int report = d2 >= 0 ? 4 : -1;
    if (lockfd >= 0) {
        char pidline[128];
        int n = snprintf(pidline, sizeof(pidline), "%d %s\n", (int)getpid(),
                         spec->token ? spec->token : "-");
        if (n > 0 && pwrite(3, pidline, (size_t)n, 0) < 0) {
            /* only a hint for crash recovery */
        }
    }

    if (!stdin_is_null) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fd != 0) {
            dup2(fd, 0);
            close(fd);
        }
    }
    if (sup_open_out(spec->stdout_path ? spec->stdout_path : "/dev/null", 1) < 0)
        sup_fail(spec, t0, "cannot open %s: %s", spec->stdout_path, strerror(errno));
    if (spec->stderr_path && spec->stdout_path && !strcmp(spec->stderr_path, spec->stdout_path)) {
        dup2(1, 2);
    } else if (sup_open_out(spec->stderr_path ? spec->stderr_path : "/dev/null", 2) < 0) {
        sup_fail(spec, t0, "cannot open %s: %s", spec->stderr_path, strerror(errno));
    }
    if (spec->workdir && chdir(spec->workdir) < 0)
        sup_fail(spec, t0, "cannot change to work directory %s: %s", spec->workdir,
                 strerror(errno));

    for (size_t i = 0; i < spec->nenv; i++)
        if (spec->env[i].key && spec->env[i].value)
            setenv(spec->env[i].key, spec->env[i].value, 1);
    char num[32];
    if (spec->campaign)
        setenv("HPCPORT_CAMPAIGN", spec->campaign, 1);
    if (spec->instance)
        setenv("HPCPORT_INSTANCE", spec->instance, 1);
    snprintf(num, sizeof(num), "%d", spec->attempt);
    setenv("HPCPORT_ATTEMPT", num, 1);
    if (spec->token)
        setenv("HPCPORT_TOKEN", spec->token, 1);
    snprintf(num, sizeof(num), "%d", job_cores(spec));
    setenv("HPCPORT_CORES", num, 1);

    if (wait_go) {
        prctl(PR_SET_PDEATHSIG, SIGUSR2);
        if (getppid() != parent)
            sup_abandon(spec);
        for (;;) {
            siginfo_t si;
            int sig = sigwaitinfo(&go_set, &si);
            if (sig == SIGUSR1)
                break;
            if (sig == SIGUSR2)
                sup_abandon(spec);
            if (sig == SIGTERM || sig == SIGINT) {
                /* canceled while queued */
                sup_write_result(spec, "signal 15", "canceled before it started", 1, t0,
                                 hp_wall_now());
                sup_report(report, getpid(), 1);
                _exit(1);
            }
        }
        prctl(PR_SET_PDEATHSIG, 0);
        t0 = hp_wall_now();
        m0 = hp_now();
    }

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGHUP);
    for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++)
        sigaddset(&def, dflt[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t task;
    int rc;
    if (spec->shell) {
        char *sh_argv[] = { (char *)"sh", (char *)"-c", (char *)spec->shell, NULL };
        rc = posix_spawn(&task, "/bin/sh", NULL, &attr, sh_argv, environ);
    } else if (spec->argv && spec->argv[0]) {
        rc = posix_spawnp(&task, spec->argv[0], NULL, &attr, (char *const *)spec->argv, environ);
    } else {
        sup_fail(spec, t0, "task has no command");
    }
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        sup_fail(spec, t0, "cannot run '%s': %s", spec->shell ? "/bin/sh" : spec->argv[0],
                 strerror(rc));

    pid_t self = getpid();
    double deadline = spec->res.walltime > 0 ? m0 + (double)spec->res.walltime : 0;
    double kill_at = 0;
    int term_sent = 0, canceled = 0, timed_out = 0, ws = 0;
    for (;;) {
        pid_t r = waitpid(task, &ws, WNOHANG);
        if (r == task)
            break;
        if (r < 0 && errno != EINTR) {
            ws = 0;
            break;
        }
        double now = hp_now();
        if (deadline && now >= deadline && !timed_out) {
            timed_out = 1;
            if (!term_sent) {
                term_sent = 1;
                kill(-self, SIGTERM);
            }
            kill_at = now + KILL_GRACE;
        }
        if (kill_at && now >= kill_at) {
            sup_kill_group(task);
            kill_at = 0;
        }
        double next = 0;
        if (deadline && !timed_out)
            next = deadline;
        if (kill_at && (!next || kill_at < next))
            next = kill_at;
        struct timespec ts, *tsp = NULL;
        if (next) {
            double d = next - now;
            if (d < 0)
                d = 0;
            ts.tv_sec = (time_t)d;
            ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
            tsp = &ts;
        }
        siginfo_t si;
        int sig = sigtimedwait(&wait_set, &si, tsp);
        if ((sig == SIGTERM || sig == SIGINT) && si.si_pid != self && !term_sent) {
            /* Canceled: the sender may have signalled only us; make sure the
             * whole group hears it, then escalate after the grace. */
            canceled = 1;
            term_sent = 1;
            kill(-self, SIGTERM);
            kill_at = hp_now() + KILL_GRACE;
        } else if ((sig == SIGTERM || sig == SIGINT) && si.si_pid != self) {
            canceled = 1;
        }
    }

    char outcome[64], reason[256];
    const char *why = NULL;
    int code = 1;
    if (timed_out) {
        char dur[32];
        hp_format_duration(spec->res.walltime, dur, sizeof(dur));
        snprintf(outcome, sizeof(outcome), "timeout");
        snprintf(reason, sizeof(reason), "TIMEOUT (walltime %s)", dur);
        why = reason;
    } else if (WIFEXITED(ws)) {
        snprintf(outcome, sizeof(outcome), "exit %d", WEXITSTATUS(ws));
        code = WEXITSTATUS(ws) == 0 && !canceled ? 0 : 1;
    } else if (WIFSIGNALED(ws)) {
        snprintf(outcome, sizeof(outcome), "signal %d", WTERMSIG(ws));
    } else {
        snprintf(outcome, sizeof(outcome), "exit 127");
        why = "the task vanished";
    }
    /* Report first when the task succeeded: the engine needs no file to
     * record that, and its cores go to the next task sooner. A failure is
     * reported after the result is on disk, where the engine reads why. */
    double t1 = hp_wall_now();
    if (code == 0)
        sup_report(report, self, 0);
    if (sup_write_result(spec, outcome, why, canceled, t0, t1) < 0 && spec->result_path)
        code = 125;
    if (code != 0)
        sup_report(report, self, code);
    _exit(code);
}

/* ---------------------------------------------------------------------------
 * The spawner. A process forked from the engine when the adapter opens
 * forks the supervisors on request, so the engine itself never forks: after
 * a fork every page the parent writes costs a copy-on-write fault, and the
 * engine writes many pages per task. Requests and replies are messages on a
 * SOCK_SEQPACKET socket; the attempt's lock travels with its request
 * (SCM_RIGHTS), so the lock is held without a gap from submit() until the
 * supervisor exits. The spawner answers "S pid start" (or "E errno") and
 * leaves the reaping to the kernel (SA_NOCLDWAIT): supervisors report their
 * end on the report pipe, and the engine holds a pidfd of each for the case
 * one dies without a word. The spawner dies with the engine
 * (PR_SET_PDEATHSIG); supervisors do not. A request larger than ZMSG_MAX, or
 * a spawner that is gone, falls back to fork() in the engine. */

#define ZMSG_MAX (160 * 1024)

struct zreq {
    int32_t attempt, ntasks, cores, nargv, nenv, wait_go;
    int64_t walltime;
};

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

static void z_encode(const struct hp_jobspec *spec, int wait_go, struct hp_buf *b)
{
    struct zreq h = {
        .attempt = spec->attempt, .ntasks = spec->res.ntasks, .cores = spec->res.cores,
        .walltime = spec->res.walltime, .nenv = (int32_t)spec->nenv, .wait_go = wait_go,
    };
    for (size_t i = 0; spec->argv && spec->argv[i]; i++)
        h.nargv++;
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

/* Decode into spec; arrays are allocated (*argv, *env), strings point into
 * buf. 0 or -1 for a malformed message. */
static int z_decode(const char *buf, size_t len, struct hp_jobspec *spec, char ***argv,
                    struct hp_kv **env, int *wait_go)
{
    struct zreq h;
    int bad = 0;
    if (len < sizeof(h))
        return -1;
    memcpy(&h, buf, sizeof(h));
    if (h.nargv < 0 || h.nenv < 0 || (size_t)h.nargv > len || (size_t)h.nenv > len)
        return -1;
    const char *p = buf + sizeof(h), *end = buf + len;
    memset(spec, 0, sizeof(*spec));
    *wait_go = h.wait_go;
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
    char msg[96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    while (send(fd, msg, (size_t)n, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* Call, harmlessly, the libc functions a supervisor needs, so their lazy
 * PLT slots are bound once here rather than in every forked supervisor
 * (each binding is a symbol lookup plus a copy-on-write fault). */
static void warm_plt(void)
{
    sigset_t set;
    struct sigaction sa;
    siginfo_t si;
    struct timespec zero = { 0, 0 };
    posix_spawnattr_t attr;
    int x = 0;
    sigemptyset(&set);
    sigprocmask(SIG_BLOCK, NULL, &set);
    sigaction(SIGUSR1, NULL, &sa);
    sigtimedwait(&set, &si, &zero);
    fcntl(0, F_GETFD);
    if (dup2(-1, -1) < 0 || pwrite(-1, "", 0, 0) < 0 || ftruncate(-1, 0) < 0 ||
        write(-1, "", 0) < 0 || rename("", "") < 0 || unlink("") < 0 || chdir(".") < 0 ||
        kill(getpid(), 0) < 0 || waitpid(-1, NULL, WNOHANG) < 0 || getppid() < 0)
        x = 1;
    prctl(PR_GET_PDEATHSIG, &x);
    close_range(~0U, ~0U, 0);
    setenv("HPCPORT_WARM", "", 1);
    unsetenv("HPCPORT_WARM");
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &set);
    posix_spawnattr_setsigdefault(&attr, &set);
    posix_spawnattr_setflags(&attr, 0);
    posix_spawnattr_destroy(&attr);
    (void)strerror(0);
    (void)hp_wall_now();
}

static void spawner_main(int sock, pid_t engine) __attribute__((noreturn));

static void spawner_main(int sock, pid_t engine)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != engine)
        _exit(0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    /* Ctrl-C reaches the whole foreground group: the engine decides. */
    static const int ign[] = { SIGINT, SIGHUP, SIGTERM, SIGQUIT, SIGPIPE };
    for (size_t i = 0; i < sizeof(ign) / sizeof(ign[0]); i++)
        sigaction(ign[i], &sa, NULL);
    /* Supervisors are reaped by the kernel; the engine learns of their end
     * from their report, or from a pidfd if they die without one. */
    sa.sa_flags = SA_NOCLDWAIT;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_flags = 0;
    sigset_t blk;
    sigemptyset(&blk);
    /* supervisors must be born with their start signal blocked */
    sigaddset(&blk, SIGUSR1);
    sigaddset(&blk, SIGUSR2);
    sigprocmask(SIG_BLOCK, &blk, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0 && nul != 0) {
        dup2(nul, 0);
        close(nul);
    }
    stdin_is_null = nul >= 0;
    warm_plt();
    int s2 = fcntl(sock, F_DUPFD_CLOEXEC, 10);
    int d2 = done_fd >= 0 ? fcntl(done_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (s2 < 0 || dup2(s2, 3) < 0)
        _exit(1);
    if (d2 < 0 || dup2(d2, 4) < 0)
        close(4);
    done_fd = d2 >= 0 ? 4 : -1;
    close_range(5, ~0U, 0);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    fcntl(4, F_SETFD, FD_CLOEXEC);
    char *buf = hp_xmalloc(ZMSG_MAX);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cm;
    for (;;) {
        struct pollfd pf = { .fd = 3, .events = POLLIN };
        if (poll(&pf, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        struct iovec iov = { buf, ZMSG_MAX };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
        ssize_t n = recvmsg(3, &mh, MSG_CMSG_CLOEXEC);
        if (n == 0)
            _exit(0);           /* the engine closed: done */
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            _exit(1);
        }
        int lockfd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(&lockfd, CMSG_DATA(c), sizeof(int));
        struct hp_jobspec spec;
        char **argv = NULL;
        struct hp_kv *env = NULL;
        int wait_go = 0;
        if (z_decode(buf, (size_t)n, &spec, &argv, &env, &wait_go) < 0) {
            z_send(3, "E %d", EINVAL);
        } else {
            pid_t self = getpid();
            pid_t pid = fork();
            if (pid == 0)
                supervise(&spec, lockfd, wait_go, self);
            if (pid < 0) {
                z_send(3, "E %d", errno);
            } else {
                unsigned long long start = 0;
                proc_stat(pid, &start, NULL);
                z_send(3, "S %d %llu", (int)pid, start);
            }
        }
        if (lockfd >= 0)
            close(lockfd);
        free(argv);
        free(env);
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
    pid_t engine = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    if (pid == 0) {
        close(sv[0]);
        spawner_main(sv[1], engine);
    }
    close(sv[1]);
    L->zfd = sv[0];
    L->zpid = pid;
}

/* ---------------------------------------------------------------------------
 * Parent side. */

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
    free(j);
}

static struct ljob *job_add(struct local *L, const char *id, pid_t pid, unsigned long long start,
                            const struct hp_jobspec *spec, int child, int queued)
{
    struct ljob *j = hp_xcalloc(1, sizeof(*j));
    j->id = hp_xstrdup(id);
    j->pid = pid;
    j->start = start;
    j->cores = job_cores(spec);
    j->result_path = spec->result_path ? hp_xstrdup(spec->result_path) : NULL;
    j->lock_path = lock_path_for(spec->result_path);
    j->token = spec->token ? hp_xstrdup(spec->token) : NULL;
    j->child = child;
    j->pidfd = -1;
    if (!child && pid > 0) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        /* The pidfd must refer to the same process: check after opening. */
        if (fd >= 0 && !proc_alive(pid, start)) {
            close(fd);
            fd = -1;
        }
        j->pidfd = fd;
    }
    j->queued = queued;
    j->seq = ++L->seq;
    HP_ALLOC_GROW(L->jobs, L->njobs + 1, L->alloc);
    L->jobs[L->njobs++] = j;
    if (queued)
        L->qcores += j->cores;
    else
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
            if (j->queued)
                L->qcores -= j->cores;
            else
                L->used -= j->cores;
            job_free(j);
            return;
        }
    }
}

/* The spawner is gone: its supervisors live on, orphaned; follow them as
 * adopted jobs (pid and start time, pidfd). */
static void spawner_lost(struct local *L)
{
    if (L->zfd < 0)
        return;
    close(L->zfd);
    L->zfd = -1;
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (!j->spawned || j->exited)
            continue;
        j->spawned = 0;
        j->child = 0;
        if (j->pidfd < 0)
            j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
    }
}

static void z_drain(struct local *L)
{
    char msg[128];
    while (L->zfd >= 0) {
        ssize_t n = recv(L->zfd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
        if (n > 0) {
            continue;           /* nothing is expected between requests */
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            spawner_lost(L);
        } else if (errno == EAGAIN) {
            break;
        }
    }
}

static void release_queued(struct local *L);

/* Read supervisors' reports; a finished task's cores go to the next queued
 * supervisor at once. */
static void done_drain(struct local *L)
{
    int freed = 0;
    if (L->done[0] < 0)
        return;
    for (;;) {
        ssize_t n = read(L->done[0], L->dbuf + L->dlen, sizeof(L->dbuf) - 1 - L->dlen);
        if (n <= 0)
            break;
        L->dlen += (size_t)n;
        L->dbuf[L->dlen] = '\0';
        char *line = L->dbuf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            int pid, code;
            if (sscanf(line, "D %d %d", &pid, &code) == 2) {
                for (size_t i = 0; i < L->njobs; i++) {
                    struct ljob *j = L->jobs[i];
                    if (j->child && j->pid == pid && !j->exited) {
                        j->exited = 1;
                        j->wstatus = (code & 0xff) << 8;
                        freed = 1;
                        break;
                    }
                }
            }
            line = nl + 1;
        }
        L->dlen = strlen(line);
        memmove(L->dbuf, line, L->dlen);
    }
    if (freed)
        release_queued(L);
}

/* Ask the spawner for a supervisor. 0: *pid and *start set; 1: not sent (fork
 * here instead); 2: sent, but the spawner died before answering (whether a
 * supervisor got the lock is for the lock to tell); -1: fork failed. */
static int z_spawn(struct local *L, const struct hp_jobspec *spec, int lockfd, int wait_go,
                   pid_t *pid, unsigned long long *start, struct hp_err *err)
{
    if (L->zfd < 0)
        return 1;
    struct hp_buf b = HP_BUF_INIT;
    z_encode(spec, wait_go, &b);
    if (b.len > ZMSG_MAX) {
        hp_buf_release(&b);
        return 1;
    }
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = { b.buf, b.len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (lockfd >= 0) {
        mh.msg_control = cm.buf;
        mh.msg_controllen = sizeof(cm.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &lockfd, sizeof(int));
    }
    ssize_t w;
    while ((w = sendmsg(L->zfd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    hp_buf_release(&b);
    if (w < 0) {
        spawner_lost(L);
        return 1;
    }
    for (;;) {
        char msg[128];
        ssize_t n = recv(L->zfd, msg, sizeof(msg) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            spawner_lost(L);
            return 2;
        }
        msg[n] = '\0';
        int p, e;
        if (msg[0] == 'S' && sscanf(msg, "S %d %llu", &p, start) == 2) {
            *pid = (pid_t)p;
            return 0;
        }
        if (msg[0] == 'E' && sscanf(msg, "E %d", &e) == 1) {
            errno = e;
            return hp_err_errno(err, "fork");
        }
    }
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

static void *local_open(const struct hp_site *site, struct hp_err *err)
{
    if (sigchld_fd >= 0) {
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
    L->extra = L->total;
    if (pipe2(L->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        hp_err_errno(err, "pipe");
        free(L);
        return NULL;
    }
    sigchld_fd = L->pipe[1];
    if (pipe2(L->done, O_NONBLOCK | O_CLOEXEC) < 0) {
        L->done[0] = L->done[1] = -1;
    }
    done_fd = L->done[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, &L->old_chld);
    spawner_start(L);
    return L;
}

static void local_close(void *impl)
{
    struct local *L = impl;
    if (!L)
        return;
    if (L->zfd >= 0) {
        close(L->zfd);          /* the spawner exits on end of file */
        waitpid(L->zpid, NULL, 0);
    }
    sigaction(SIGCHLD, &L->old_chld, NULL);
    sigchld_fd = -1;
    done_fd = -1;
    close(L->pipe[0]);
    close(L->pipe[1]);
    if (L->done[0] >= 0) {
        close(L->done[0]);
        close(L->done[1]);
    }
    /* Supervisors keep running: they are detached on purpose. Reap those
     * that are done so no zombie is left behind. */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    for (size_t i = 0; i < L->njobs; i++)
        job_free(L->jobs[i]);
    free(L->jobs);
    free(L);
}

static long local_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct local *L = impl;
    if (spec && job_cores(spec) > L->total)
        return 0;       /* never fits: the engine reports it */
    long free = (long)L->total - L->used + (long)L->extra - L->qcores;
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

/* Register a finished earlier submission of spec's attempt (its result is
 * on disk) and return its job id. */
static char *register_finished(struct local *L, const struct hp_jobspec *spec)
{
    char *id = hp_xasprintf("0:%s", spec->token ? spec->token : "?");
    if (!job_find(L, id))
        job_add(L, id, 0, 0, spec, 0, 0);
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
    int held = flock(fd, LOCK_EX | LOCK_NB) < 0;
    if (held && errno != EWOULDBLOCK)
        return hp_err_errno(err, "flock");
    if (held) {
        /* A supervisor runs it. Its first act is writing "pid token". */
        char buf[256];
        ssize_t n = 0;
        for (int tries = 0; tries < 200; tries++) {
            n = pread(fd, buf, sizeof(buf) - 1, 0);
            if (n > 0)
                break;
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        int p = 0;
        char tok[200] = "";
        if (n > 0) {
            buf[n] = '\0';
            if (sscanf(buf, "%d %199s", &p, tok) < 1)
                p = 0;
        }
        if (spec->token && tok[0] && strcmp(tok, spec->token))
            return hp_err_set(err, HP_ESTATE,
                              "%s is held by process %d for another campaign (token %s); "
                              "stop it or use another --campaign", spec->result_path, p, tok);
        if (p > 0 && proc_stat(p, &start, NULL) == 0)
            pid = p;
        /* Still held after we read the pid: the pid is the holder's. */
        held = flock(fd, LOCK_EX | LOCK_NB) < 0;
        if (held && pid > 0) {
            char *id = hp_xasprintf("%d:%llu", (int)pid, start);
            if (!job_find(L, id))
                job_add(L, id, pid, start, spec, 0, 0);
            *job_id = id;
            return 1;
        }
    }
    /* Finished, running without a readable pid (the lock tells), or lost. */
    struct hp_jobstate js;
    if (held || read_result(spec->result_path, spec->token, &js) == 0) {
        *job_id = register_finished(L, spec);
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
    int fd = -1, existed = 0;
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
    pid_t pid = 0;
    unsigned long long start = 0;
    /* Start now if the cores are free and nobody queues ahead; otherwise the
     * supervisor prepares everything and waits for its turn. */
    int wait_go = L->qcores > 0 || L->used + job_cores(spec) > L->total;
    int zr = z_spawn(L, spec, fd, wait_go, &pid, &start, err);
    if (zr < 0)
        goto fail;
    if (zr == 2) {
        /* Lost the spawner mid-request: if a supervisor got the lock, the
         * lock says so; else the attempt reads as lost and runs again. */
        close(fd);
        free(lock);
        *job_id = register_finished(L, spec);
        return 0;
    }
    if (zr == 1) {
        pid_t engine_pid = getpid();
        sigset_t blk, old;
        sigemptyset(&blk);
        sigaddset(&blk, SIGUSR1);
        sigaddset(&blk, SIGUSR2);
        sigprocmask(SIG_BLOCK, &blk, &old);
        pid = fork();
        if (pid == 0)
            supervise(spec, fd, wait_go, engine_pid);
        int fork_errno = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) {
            errno = fork_errno;
            hp_err_errno(err, "fork");
            goto fail;
        }
        /* Our child cannot be recycled before we reap it. */
        proc_stat(pid, &start, NULL);
    }
    if (fd >= 0)
        close(fd);
    free(lock);
    char *id = hp_xasprintf("%d:%llu", (int)pid, start);
    struct ljob *j = job_add(L, id, pid, start, spec, 1, wait_go);
    j->spawned = zr == 0;
    if (j->spawned) {
        /* Not our child: a pidfd tells if it dies without reporting. */
        j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    *job_id = id;
    return 0;
fail:
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
    job_add(L, job_id, pid, start, spec, 0, 0);
    return 0;
}

static void reap(struct local *L)
{
    int ws;
    pid_t pid;
    while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
        if (L->zfd >= 0 && pid == L->zpid) {
            z_drain(L);         /* its last reports first */
            spawner_lost(L);
            continue;
        }
        for (size_t i = 0; i < L->njobs; i++) {
            struct ljob *j = L->jobs[i];
            if (j->child && !j->spawned && j->pid == pid && !j->exited) {
                j->exited = 1;
                j->wstatus = ws;
                break;
            }
        }
    }
}

static void escalate(struct local *L)
{
    double now = hp_now();
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (j->kill_at && now >= j->kill_at) {
            j->kill_at = 0;
            if (j->pid > 0 && !j->exited && (j->child || proc_alive(j->pid, j->start)))
                kill(-j->pid, SIGKILL);
        }
    }
}

/* State of one job we track. Removes it from the table once final. */
static void job_state(struct local *L, struct ljob *j, struct hp_jobstate *out)
{
    memset(out, 0, sizeof(*out));
    int alive, died = 0;
    if (j->spawned && !j->exited) {
        if (j->pidfd >= 0) {
            struct pollfd pf = { .fd = j->pidfd, .events = POLLIN };
            alive = poll(&pf, 1, 0) == 0;
        } else {
            alive = proc_alive(j->pid, j->start);
        }
        died = !alive;
    } else if (j->child)
        alive = !j->exited;
    else if (j->pid > 0 && j->start)
        alive = proc_alive(j->pid, j->start);
    else
        alive = j->lock_path ? lock_held(j->lock_path) == 1 : 0;
    if (alive) {
        out->state = j->queued ? HP_JOB_QUEUED : HP_JOB_ACTIVE;
        return;
    }
    if (j->child && !died && WIFEXITED(j->wstatus) && WEXITSTATUS(j->wstatus) == 0 &&
        !j->canceled) {
        out->state = HP_JOB_COMPLETED;
    } else if (read_result(j->result_path, j->token, out) == 0) {
        if (j->canceled)
            out->state = HP_JOB_CANCELED;
    } else if (j->canceled) {
        out->state = HP_JOB_CANCELED;
        snprintf(out->reason, sizeof(out->reason), "canceled");
    } else if (died) {
        out->state = HP_JOB_FAILED;
        out->exit_code = -1;
        snprintf(out->reason, sizeof(out->reason),
                 "supervisor died without a result; the task's outcome is unknown");
    } else if (j->child) {
        out->state = HP_JOB_FAILED;
        out->exit_code = -1;
        if (WIFSIGNALED(j->wstatus))
            snprintf(out->reason, sizeof(out->reason),
                     "supervisor killed by signal %d; the task's outcome is unknown",
                     WTERMSIG(j->wstatus));
        else
            snprintf(out->reason, sizeof(out->reason),
                     "supervisor failed (status %d) without a result", WEXITSTATUS(j->wstatus));
    } else {
        out->state = HP_JOB_UNKNOWN;
        snprintf(out->reason, sizeof(out->reason), "supervisor gone without a result");
    }
    job_remove(L, j);
}

/* Let queued supervisors start, oldest first, while their cores are free. */
static void release_queued(struct local *L)
{
    while (L->qcores > 0) {
        struct ljob *next = NULL;
        for (size_t i = 0; i < L->njobs; i++)
            if (L->jobs[i]->queued && (!next || L->jobs[i]->seq < next->seq))
                next = L->jobs[i];
        int busy = 0;
        for (size_t i = 0; i < L->njobs; i++)
            if (!L->jobs[i]->queued && !L->jobs[i]->exited)
                busy += L->jobs[i]->cores;
        if (!next || busy + next->cores > L->total)
            return;
        next->queued = 0;
        L->qcores -= next->cores;
        L->used += next->cores;
        if (!next->exited && next->pid > 0)
            kill(next->pid, SIGUSR1);
    }
}

static int local_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                        struct hp_err *err)
{
    struct local *L = impl;
    (void)err;
    done_drain(L);
    z_drain(L);
    reap(L);
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
    release_queued(L);
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
        if (j->pid <= 0 || j->exited)
            return 0;
        if (!j->child && !proc_alive(j->pid, j->start))
            return 0;
        kill(-j->pid, SIGTERM);
        j->kill_at = hp_now() + KILL_GRACE;
        return 0;
    }
    if (hp_starts_with(id, "0:"))
        return 0;
    if (parse_job_id(id, &pid, &start) < 0)
        return hp_err_set(err, HP_ESTATE, "'%s' is not a local job id", id);
    /* Someone else's supervisor: it escalates to SIGKILL itself. */
    if (proc_alive(pid, start))
        kill(-pid, SIGTERM);
    return 0;
}

static int local_wait(void *impl, double timeout)
{
    struct local *L = impl;
    struct pollfd *fds = hp_xcalloc(L->njobs + 3, sizeof(*fds));
    size_t nfds = 0;
    double now = hp_now();
    fds[nfds].fd = L->pipe[0];
    fds[nfds++].events = POLLIN;
    if (L->zfd >= 0) {
        fds[nfds].fd = L->zfd;
        fds[nfds++].events = POLLIN;
    }
    if (L->done[0] >= 0) {
        fds[nfds].fd = L->done[0];
        fds[nfds++].events = POLLIN;
    }
    for (size_t i = 0; i < L->njobs; i++) {
        struct ljob *j = L->jobs[i];
        if (j->kill_at && j->kill_at - now < timeout)
            timeout = j->kill_at - now;
        if ((j->child && !j->spawned) || j->exited)
            continue;
        if (j->pidfd >= 0) {
            fds[nfds].fd = j->pidfd;
            fds[nfds++].events = POLLIN;
        } else if (timeout > 0.25) {
            timeout = 0.25;     /* no pidfd: look again soon */
        }
    }
    if (timeout < 0)
        timeout = 0;
    int ms = (int)(timeout * 1000.0 + 0.999);
    int r = poll(fds, nfds, ms);
    int woke = r > 0 && (fds[0].revents & POLLIN);
    free(fds);
    if (woke) {
        char drain[256];
        while (read(L->pipe[0], drain, sizeof(drain)) > 0)
            ;
    }
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
    hp_buf_adds(out, "\n# run by a supervisor process; no shell is involved unless the task "
                     "says shell:\n");
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
