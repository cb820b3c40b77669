/* agent-pilots.c - the agent submits its pilot jobs through the site's own
 * adapter (Slurm, PBS, local), run on the login node with the local
 * transport, within the limits of DIR/pilots.json (agent.h). */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "adapter.h"
#include "agent-int.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define STATUS_EVERY 5.0     /* seconds between pilot job state queries */
#define GIVE_UP 5            /* pilot jobs in a row that failed before running */

struct hp_pilotmgr {
    const char *dir;
    sqlite3 *db;
    struct hp_site *site;
    const struct hp_adapter_ops *ops;
    void *impl;
    char *hpcport, *campaign, *partition, *connect, *spool, *secret;
    int cores, gpus, nodes, max_pilots, max_queued, tasks_per_pilot;
    long walltime, idle;
    double next_status, next_submit, last_status;
    int failed_in_row;
    int gave_up;
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    va_list ap;
    time_t now = time(NULL);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(stderr, "%s pilots: ", ts);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static long int_of(json_t *c, const char *key, long def)
{
    json_t *v = json_object_get(c, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static char *str_of(json_t *c, const char *key)
{
    const char *s = json_string_value(json_object_get(c, key));
    return s && *s ? hp_xstrdup(s) : NULL;
}

/* The job of pilot number n: hpcport pilot, connected to this agent. */
struct pspec {
    char inst[32], tok[96], cores[16], wall[24], idle[24], id[48];
    const char *argv[24];
    char *wd, *out, *errp, *name;
    struct hp_jobspec spec;
};

static void pspec_make(struct hp_pilotmgr *m, long n, struct pspec *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->inst, sizeof(p->inst), "pilot-%ld", n);
    snprintf(p->tok, sizeof(p->tok), "hpp%.60s.%ld", m->campaign, n);
    snprintf(p->cores, sizeof(p->cores), "%d", m->cores);
    /* the pilot takes no task past a minute before the allocation ends */
    snprintf(p->wall, sizeof(p->wall), "%ld",
             m->walltime > 120 ? m->walltime - 60 : m->walltime / 2);
    snprintf(p->idle, sizeof(p->idle), "%ld", m->idle);
    snprintf(p->id, sizeof(p->id), "p%ld", n);
    int k = 0;
    p->argv[k++] = m->hpcport;
    p->argv[k++] = "pilot";
    if (m->connect) {
        p->argv[k++] = "--agent";
        p->argv[k++] = m->connect;
        p->argv[k++] = "--secret-file";
        p->argv[k++] = m->secret;
    } else {
        p->argv[k++] = "--spool";
        p->argv[k++] = m->spool;
    }
    const char *rest[] = { "--id", p->id, "--cores", p->cores, "--walltime", p->wall,
                           "--idle", p->idle, NULL };
    for (size_t i = 0; rest[i]; i++)
        p->argv[k++] = rest[i];
    p->argv[k] = NULL;
    p->wd = hp_path_join(m->dir, "pilots");
    p->out = hp_xasprintf("%s/%s.out", p->wd, p->inst);
    p->errp = hp_xasprintf("%s/%s.err", p->wd, p->inst);
    p->name = hp_xasprintf("%s.%s", m->campaign, p->inst);
    p->spec = (struct hp_jobspec){
        .campaign = m->campaign, .instance = p->inst, .job_name = p->name, .token = p->tok,
        .attempt = 1, .argv = p->argv, .workdir = p->wd, .stdout_path = p->out,
        .stderr_path = p->errp, .partition = m->partition,
        .res = { .nodes = m->nodes, .ntasks = 1, .cores = m->cores, .gpus = m->gpus,
                 .walltime = m->walltime },
    };
}

static void pspec_release(struct pspec *p)
{
    free(p->wd);
    free(p->out);
    free(p->errp);
    free(p->name);
}

void hp_pilotmgr_free(struct hp_pilotmgr *m)
{
    if (!m)
        return;
    if (m->impl && m->ops->close)
        m->ops->close(m->impl);
    hp_site_free(m->site);
    free(m->hpcport);
    free(m->campaign);
    free(m->partition);
    free(m->connect);
    free(m->spool);
    free(m->secret);
    free(m);
}

struct hp_pilotmgr *hp_pilotmgr_new(const char *dir, sqlite3 *db, const char *cfgpath,
                                    const char *connect, const char *spool,
                                    struct hp_err *err)
{
    json_error_t je;
    json_t *c = json_load_file(cfgpath, 0, &je);
    if (!c || !json_is_object(c)) {
        hp_err_set(err, HP_EINPUT, "pilot configuration '%s': %s", cfgpath,
                   c ? "not a JSON object" : je.text);
        json_decref(c);
        return NULL;
    }
    struct hp_pilotmgr *m = hp_xcalloc(1, sizeof(*m));
    m->dir = dir;
    m->db = db;
    m->hpcport = str_of(c, "hpcport");
    if (!m->hpcport)          /* pilots run this very program */
        m->hpcport = hp_self_exe();
    m->campaign = str_of(c, "campaign");
    m->partition = str_of(c, "partition");
    m->cores = (int)int_of(c, "cores", 1);
    m->gpus = (int)int_of(c, "gpus", 0);
    m->nodes = (int)int_of(c, "nodes", 1);
    m->walltime = int_of(c, "walltime", 3600);
    m->idle = int_of(c, "idle", 60);
    m->max_pilots = (int)int_of(c, "max_pilots", 4);
    m->max_queued = (int)int_of(c, "max_queued", 2);
    m->tasks_per_pilot = (int)int_of(c, "tasks_per_pilot", 1000);
    m->connect = connect ? hp_xstrdup(connect) : NULL;
    m->spool = spool ? hp_xstrdup(spool) : NULL;
    m->secret = hp_path_join(dir, "secret");
    char *sitefile = str_of(c, "site");
    json_decref(c);
    if (!m->hpcport || !m->campaign || !sitefile) {
        hp_err_set(err, HP_EINPUT, "pilot configuration '%s' lacks hpcport, campaign or site",
                   cfgpath);
        goto fail;
    }
    if (m->cores < 1 || m->nodes < 1 || m->gpus < 0 || m->walltime < 60 ||
        m->max_pilots < 1 || m->max_queued < 1 || m->tasks_per_pilot < 1 || m->idle < 1) {
        hp_err_set(err, HP_EINPUT, "pilot configuration '%s': a size or limit is out of range "
                   "(walltime at least 60 s)", cfgpath);
        goto fail;
    }
    if (!m->connect && !m->spool) {
        hp_err_set(err, HP_EINPUT, "pilots need the agent's TCP address or a spool");
        goto fail;
    }
    struct hp_site_opts so = { 0 };
    if (!(m->site = hp_site_load_file(sitefile, &so, err)))
        goto fail;
    if (m->site->login_host) {
        hp_err_set(err, HP_EINPUT, "the pilots' site profile '%s' has a login section: the agent "
                   "submits from the login node itself", sitefile);
        goto fail;
    }
    if (!(m->ops = hp_adapter_for_site(m->site, err)))
        goto fail;
    if (!m->ops->submit || !m->ops->status) {
        hp_err_set(err, HP_ESITE, "adapter '%s' cannot submit pilot jobs", m->ops->name);
        goto fail;
    }
    if (m->ops->open && !(m->impl = m->ops->open(m->site, err)))
        goto fail;
    char *pd = hp_path_join(dir, "pilots");
    int r = hp_mkdir_p(pd, 0700);
    free(pd);
    if (r < 0) {
        hp_err_errno(err, "create '%s/pilots'", dir);
        goto fail;
    }
    free(sitefile);
    /* jobs an earlier agent submitted are followed again */
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT n, job FROM pilot_jobs WHERE state < 3 AND job IS NOT NULL",
                       -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW && m->ops->adopt) {
        struct hp_err e2;
        struct pspec p;
        hp_err_init(&e2);
        pspec_make(m, sqlite3_column_int64(st, 0), &p);
        m->ops->adopt(m->impl, &p.spec, (const char *)sqlite3_column_text(st, 1), &e2);
        pspec_release(&p);
    }
    sqlite3_finalize(st);
    logmsg("%s pilots of %d core(s), %d node(s), %d GPU(s), %lds through %s; at most %d, %d "
           "queued", m->connect ? "TCP" : "spool", m->cores, m->nodes, m->gpus, m->walltime,
           m->ops->name, m->max_pilots, m->max_queued);
    return m;
fail:
    free(sitefile);
    hp_pilotmgr_free(m);
    return NULL;
}

/* Submit pilot number n (its row exists). 0, 1 (not now), -1. */
static int submit(struct hp_pilotmgr *m, long n, struct hp_err *err)
{
    struct pspec p;
    pspec_make(m, n, &p);
    char *job = NULL;
    int rc = m->ops->submit(m->impl, &p.spec, &job, err);
    if (rc == 0) {
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(m->db, "UPDATE pilot_jobs SET job=?, state=1 WHERE n=?", -1, &st,
                           NULL);
        sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, n);
        sqlite3_step(st);
        sqlite3_finalize(st);
        logmsg("submitted pilot %ld as job %s", n, job);
    }
    free(job);
    pspec_release(&p);
    return rc;
}

static void set_state(struct hp_pilotmgr *m, long n, const struct hp_jobstate *js)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(m->db, "UPDATE pilot_jobs SET state=?, reason=?, t_end=CASE WHEN ?>=3 "
                       "THEN ? ELSE t_end END WHERE n=?", -1, &st, NULL);
    sqlite3_bind_int(st, 1, (int)js->state);
    sqlite3_bind_text(st, 2, js->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)js->state);
    sqlite3_bind_double(st, 4, hp_wall_now());
    sqlite3_bind_int64(st, 5, n);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

/* Ask the adapter about every pilot job that has not ended. */
static void refresh(struct hp_pilotmgr *m)
{
    sqlite3_stmt *st = NULL;
    long *ns = NULL;
    char **ids = NULL;
    size_t n = 0, alloc = 0, aids = 0;
    sqlite3_prepare_v2(m->db, "SELECT n, job FROM pilot_jobs WHERE state < 3 AND job IS "
                       "NOT NULL", -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        HP_ALLOC_GROW(ns, n + 1, alloc);
        HP_ALLOC_GROW(ids, n + 1, aids);
        ns[n] = sqlite3_column_int64(st, 0);
        ids[n++] = hp_xstrdup((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (n) {
        struct hp_jobstate *js = hp_xcalloc(n, sizeof(*js));
        struct hp_err err;
        hp_err_init(&err);
        if (m->ops->status(m->impl, (const char *const *)ids, n, js, &err) == 0) {
            for (size_t i = 0; i < n; i++) {
                enum hp_jobstate_kind s = js[i].state;
                if (s == HP_JOB_NEW)
                    continue;
                if (s >= HP_JOB_COMPLETED)
                    logmsg("pilot %ld (job %s) ended: %s%s%s", ns[i], ids[i],
                           hp_jobstate_name(s), js[i].reason[0] ? ", " : "", js[i].reason);
                set_state(m, ns[i], &js[i]);
            }
        } else {
            logmsg("cannot query the pilot jobs: %s", err.msg);
        }
        free(js);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(ns);
}

/* A pilot that took a task runs, whatever the scheduler said a moment ago. */
static void mark_running(struct hp_pilotmgr *m)
{
    sqlite3_exec(m->db, "UPDATE pilot_jobs SET state=2 WHERE state<2 AND job IS NOT NULL AND "
                 "('p'||n IN (SELECT DISTINCT pilot FROM tasks WHERE pilot IS NOT NULL) OR "
                 "'spool:p'||n IN (SELECT DISTINCT pilot FROM tasks WHERE pilot IS NOT NULL))",
                 NULL, NULL, NULL);
}

static long count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void give_up(struct hp_pilotmgr *m, const char *why)
{
    char *p = hp_path_join(m->dir, "pilots.error");
    char *text = hp_xasprintf("%s\n", why);
    struct hp_err err;
    hp_err_init(&err);
    FILE *f = fopen(p, "we");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    logmsg("giving up: %s", why);
    m->gave_up = 1;
    free(text);
    free(p);
}

/* Pilot jobs that ended without ever running a task: each one failing in
 * a row means the job itself is broken (a wrong hpcport path, a refused
 * option), not a task; after GIVE_UP of them the agent stops submitting. */
static void check_failures(struct hp_pilotmgr *m)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(m->db, "SELECT n, state, reason FROM pilot_jobs WHERE state >= 3 ORDER BY "
                       "n DESC LIMIT ?", -1, &st, NULL);
    sqlite3_bind_int(st, 1, GIVE_UP);
    int bad = 0;
    char reason[300] = "";
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        long n = sqlite3_column_int64(st, 0);
        char pid[32];
        snprintf(pid, sizeof(pid), "p%ld", n);
        sqlite3_stmt *q = NULL;
        sqlite3_prepare_v2(m->db, "SELECT count(*) FROM tasks WHERE pilot=?", -1, &q, NULL);
        sqlite3_bind_text(q, 1, pid, -1, SQLITE_TRANSIENT);
        long ran = sqlite3_step(q) == SQLITE_ROW ? (long)sqlite3_column_int64(q, 0) : 1;
        sqlite3_finalize(q);
        if (ran || sqlite3_column_int(st, 1) == HP_JOB_COMPLETED ||
            sqlite3_column_int(st, 1) == HP_JOB_CANCELED)
            break;
        if (!bad)
            snprintf(reason, sizeof(reason), "%s", sqlite3_column_type(st, 2) == SQLITE_NULL
                     ? "" : (const char *)sqlite3_column_text(st, 2));
        bad++;
    }
    sqlite3_finalize(st);
    if (bad >= GIVE_UP) {
        char *why = hp_xasprintf("%d pilot jobs in a row failed before running a task (last: "
                                 "%s); see %s/pilots/*.err", bad, reason[0] ? reason : "?",
                                 m->dir);
        give_up(m, why);
        free(why);
    }
}

/* Running pilot jobs that took tasks but are out of touch. */
static long lost(struct hp_pilotmgr *m, int (*seen)(void *, const char *), void *arg)
{
    sqlite3_stmt *st = NULL;
    long n = 0;
    sqlite3_prepare_v2(m->db, "SELECT n FROM pilot_jobs WHERE state=2", -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        char id[32];
        snprintf(id, sizeof(id), "p%lld", (long long)sqlite3_column_int64(st, 0));
        n += !seen(arg, id);
    }
    sqlite3_finalize(st);
    return n;
}

void hp_pilotmgr_tick(struct hp_pilotmgr *m, long queued, long leased,
                      int (*seen)(void *arg, const char *pilot), void *arg)
{
    double now = hp_now();
    if (now >= m->next_status) {   /* mark_running reads every task: not every tick */
        refresh(m);
        mark_running(m);
        check_failures(m);
        m->next_status = now + STATUS_EVERY;
        m->last_status = now;
    }
    long live = count(m->db, "SELECT count(*) FROM pilot_jobs WHERE state < 3");
    long waiting = count(m->db, "SELECT count(*) FROM pilot_jobs WHERE state < 2");
    if (queued + leased == 0 && waiting > 0 && m->ops->cancel) {
        /* ask first: a pilot that started meanwhile ends on its own */
        if (m->last_status < now - 1) {
            refresh(m);
            m->last_status = now;
        }
        mark_running(m);
        waiting = count(m->db, "SELECT count(*) FROM pilot_jobs WHERE state < 2");
    }
    if (queued + leased == 0 && waiting > 0 && m->ops->cancel) {
        /* nothing left to run: pilots that have not started are not needed */
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(m->db, "SELECT n, job FROM pilot_jobs WHERE state < 2 AND job IS NOT "
                           "NULL", -1, &st, NULL);
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            struct hp_err err;
            hp_err_init(&err);
            const char *job = (const char *)sqlite3_column_text(st, 1);
            if (m->ops->cancel(m->impl, job, &err) == 0) {
                struct hp_jobstate js = { .state = HP_JOB_CANCELED };
                snprintf(js.reason, sizeof(js.reason), "not needed");
                set_state(m, sqlite3_column_int64(st, 0), &js);
                logmsg("canceled pilot job %s: not needed", job);
            }
        }
        sqlite3_finalize(st);
        return;
    }
    if (m->gave_up || queued == 0 || now < m->next_submit)
        return;
    long want = (queued + leased + m->tasks_per_pilot - 1) / m->tasks_per_pilot;
    if (want > m->max_pilots)
        want = m->max_pilots;
    if (live - lost(m, seen, arg) >= want || waiting >= m->max_queued)
        return;
    /* a row first: a pilot submitted but not recorded is found again by
     * its token (the adapter's idempotent submission) */
    long n = count(m->db, "SELECT n FROM pilot_jobs WHERE job IS NULL AND state=0 LIMIT 1");
    if (!n) {
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(m->db, "INSERT INTO pilot_jobs(state, t_sub) VALUES(0, ?)", -1, &st,
                           NULL);
        sqlite3_bind_double(st, 1, hp_wall_now());
        sqlite3_step(st);
        sqlite3_finalize(st);
        n = (long)sqlite3_last_insert_rowid(m->db);
    }
    struct hp_err err;
    hp_err_init(&err);
    int rc = submit(m, n, &err);
    if (rc == 0) {
        m->next_submit = now + 1;
        m->next_status = now + 1;
        return;
    }
    logmsg("pilot %ld not submitted%s: %s", n, rc > 0 ? " (will retry)" : "", err.msg);
    if (rc < 0) {
        struct hp_jobstate js = { .state = HP_JOB_FAILED };
        snprintf(js.reason, sizeof(js.reason), "%.250s", err.msg);
        set_state(m, n, &js);
        if (++m->failed_in_row >= GIVE_UP) {
            char *why = hp_xasprintf("the site refused %d pilot jobs in a row (last: %s)",
                                     m->failed_in_row, err.msg);
            give_up(m, why);
            free(why);
        }
    } else {
        m->failed_in_row = 0;
    }
    m->next_submit = now + (rc > 0 ? 10 : 5);
}
