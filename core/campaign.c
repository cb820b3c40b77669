/* campaign.c - the campaign engine. See campaign.h for the contract.
 *
 * Memory holds the whole picture (one small record per instance, the DAG's
 * reverse edges, a FIFO of ready instances and the list of running jobs);
 * the database follows it in batches. Readiness is a counter of unfinished
 * dependencies per instance, so a finished instance costs O(its dependents),
 * never a scan. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "campaign.h"
#include "multi.h"
#include "provenance.h"
#include "site.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define FLUSH_INTERVAL 0.05   /* seconds a state change may wait for its commit */
#define POLL_MAX 1.0          /* longest wait: external cancels are seen this fast */
#define MAX_LOST 5            /* resubmissions of a job that vanished */
#define CANCEL_CHECK 0.25     /* seconds between looks for cancels by others */
#define SUBMIT_PAUSE 2.0      /* seconds without submissions after a "not now" */
#define COLLECT_GIVE_UP 600.0 /* seconds of failing to fetch a job's files */

struct irt {
    int64_t n;               /* database row */
    unsigned char state;     /* enum hp_istate */
    unsigned char dirty;     /* row must be written */
    unsigned char force;     /* write even over a "canceled" row */
    unsigned char queued;    /* in the ready queue */
    int attempts, fails, lost;
    unsigned waiting;        /* dependencies not completed */
    int exit_code, signal, timed_out;
    char *reason;
    char *job_id;
    double submitted, started, ended;
};

struct job {
    size_t idx;
    int attempt;
    char *job_id, *token, *out, *errp;
    double submitted, started;
    double collect_failing;  /* monotonic time of the first failed collect, 0 */
};

struct engine {
    const struct hp_plan *plan;
    const struct hp_workflow *wf;
    const struct hp_campaign_opts *opts;
    const struct hp_adapter_ops *ad;
    void *impl;
    char *dir;                       /* the campaign's local directory */
    struct hp_state *st;
    char *nonce;
    int run_lock;
    size_t n;
    struct irt *rt;
    size_t *dep_off, *dep_list;      /* dependents of i: dep_list[dep_off[i]..dep_off[i+1]) */
    size_t *hash;                    /* id -> index + 1 */
    size_t hmask;
    size_t *queue, qhead, qlen;
    struct job *jobs;
    size_t njobs, jalloc;
    size_t *dirty, ndirty, dalloc;
    struct hp_attempt_row *pend;
    size_t npend, palloc;
    size_t count[HP_IS__COUNT];
    struct hp_campaign_progress prog;
    size_t user_canceled;
    double t0, last_flush, last_progress, last_cancel_check;
    double submit_pause;             /* no submissions before this (monotonic) */
    int64_t data_version;
};

static void event(struct engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void event(struct engine *e, int level, const char *fmt, ...)
{
    if (!e->opts || !e->opts->event)
        return;
    struct hp_buf b = HP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    hp_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    e->opts->event(e->opts->ctx, level, b.buf);
    hp_buf_release(&b);
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    h = s ? fnv(h, s, strlen(s)) : h;
    return fnv(h, "\0", 1);
}

static void spec_hash(const struct hp_instance *in, const char *workdir, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; in->argv && in->argv[k]; k++)
        h = fnv_str(h, in->argv[k]);
    h = fnv_str(h, in->shell);
    for (size_t k = 0; k < in->nenv; k++) {
        h = fnv_str(h, in->env[k].key);
        h = fnv_str(h, in->env[k].value);
    }
    const struct hp_resources *r = &in->res;
    long long v[] = { r->nodes, r->ntasks, r->cores, r->memory_mb, r->gpus, r->walltime };
    h = fnv(h, v, sizeof(v));
    h = fnv_str(h, in->container);
    h = fnv_str(h, workdir);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- id lookup ---- */

static void hash_build(struct engine *e)
{
    size_t size = 16;
    while (size < e->n * 2)
        size *= 2;
    e->hash = hp_xcalloc(size, sizeof(*e->hash));
    e->hmask = size - 1;
    for (size_t i = 0; i < e->n; i++) {
        size_t h = (size_t)fnv_str(1469598103934665603ULL, e->wf->inst[i].id) & e->hmask;
        while (e->hash[h])
            h = (h + 1) & e->hmask;
        e->hash[h] = i + 1;
    }
}

static long hash_find(const struct engine *e, const char *id)
{
    size_t h = (size_t)fnv_str(1469598103934665603ULL, id) & e->hmask;
    while (e->hash[h]) {
        size_t i = e->hash[h] - 1;
        if (!strcmp(e->wf->inst[i].id, id))
            return (long)i;
        h = (h + 1) & e->hmask;
    }
    return -1;
}

/* ---- bookkeeping ---- */

static void mark_dirty(struct engine *e, size_t i)
{
    if (e->rt[i].dirty)
        return;
    e->rt[i].dirty = 1;
    HP_ALLOC_GROW(e->dirty, e->ndirty + 1, e->dalloc);
    e->dirty[e->ndirty++] = i;
}

static void set_state(struct engine *e, size_t i, enum hp_istate s)
{
    struct irt *r = &e->rt[i];
    if (r->state != s) {
        e->count[r->state]--;
        e->count[s]++;
        r->state = (unsigned char)s;
    }
    mark_dirty(e, i);
}

static void set_reason(struct irt *r, const char *reason)
{
    free(r->reason);
    r->reason = reason && *reason ? hp_xstrdup(reason) : NULL;
}

static void push_ready(struct engine *e, size_t i, int front)
{
    if (e->rt[i].queued)
        return;
    e->rt[i].queued = 1;
    if (front) {
        e->qhead = (e->qhead + e->n - 1) % e->n;
        e->queue[e->qhead] = i;
    } else {
        e->queue[(e->qhead + e->qlen) % e->n] = i;
    }
    e->qlen++;
}

static void pend_attempt(struct engine *e, const struct job *j, const char *state,
                         const struct hp_jobstate *js, double ended)
{
    HP_ALLOC_GROW(e->pend, e->npend + 1, e->palloc);
    struct hp_attempt_row *a = &e->pend[e->npend++];
    memset(a, 0, sizeof(*a));
    a->instance = hp_xstrdup(e->wf->inst[j->idx].id);
    a->attempt = j->attempt;
    a->token = hp_xstrdup(j->token ? j->token : "");
    a->job_id = j->job_id ? hp_xstrdup(j->job_id) : NULL;
    a->state = hp_xstrdup(state);
    a->submitted = j->submitted;
    a->started = j->started;
    a->ended = ended;
    a->exit_code = js ? js->exit_code : -1;
    a->signal = js ? js->signal : 0;
    a->timed_out = js ? js->timed_out : 0;
    a->reason = js && js->reason[0] ? hp_xstrdup(js->reason) : NULL;
    a->stdout_path = j->out ? hp_xstrdup(j->out) : NULL;
    a->stderr_path = j->errp ? hp_xstrdup(j->errp) : NULL;
}

static int flush(struct engine *e, struct hp_err *err)
{
    e->last_flush = hp_now();
    if (!e->ndirty && !e->npend)
        return 0;
    if (hp_state_begin(e->st, err) < 0)
        return -1;
    for (size_t k = 0; k < e->ndirty; k++) {
        size_t i = e->dirty[k];
        struct irt *r = &e->rt[i];
        struct hp_inst_row row = {
            .n = r->n, .state = (enum hp_istate)r->state, .attempts = r->attempts,
            .fails = r->fails, .exit_code = r->exit_code, .signal = r->signal,
            .timed_out = r->timed_out, .reason = r->reason, .job_id = r->job_id,
            .submitted = r->submitted, .started = r->started, .ended = r->ended,
        };
        if (hp_state_update_instance(e->st, &row, !r->force, NULL, err) < 0)
            goto fail;
    }
    for (size_t k = 0; k < e->npend; k++)
        if (hp_state_put_attempt(e->st, &e->pend[k], err) < 0)
            goto fail;
    if (hp_state_commit(e->st, err) < 0)
        return -1;
    for (size_t k = 0; k < e->ndirty; k++) {
        e->rt[e->dirty[k]].dirty = 0;
        e->rt[e->dirty[k]].force = 0;
    }
    e->ndirty = 0;
    for (size_t k = 0; k < e->npend; k++)
        hp_attempt_row_release(&e->pend[k]);
    e->npend = 0;
    return 0;
fail:
    hp_state_rollback(e->st);
    return -1;
}

static void job_release(struct job *j)
{
    free(j->job_id);
    free(j->token);
    free(j->out);
    free(j->errp);
}

static void job_remove(struct engine *e, size_t k)
{
    job_release(&e->jobs[k]);
    e->jobs[k] = e->jobs[--e->njobs];
}

static long job_of(const struct engine *e, size_t idx)
{
    for (size_t k = 0; k < e->njobs; k++)
        if (e->jobs[k].idx == idx)
            return (long)k;
    return -1;
}

static void cancel_job(struct engine *e, size_t idx)
{
    long k = job_of(e, idx);
    if (k < 0 || !e->ad->cancel)
        return;
    struct hp_err err;
    hp_err_init(&err);
    if (e->ad->cancel(e->impl, e->jobs[k].job_id, &err) < 0)
        event(e, 1, "%s: cannot cancel job %s: %s", e->wf->inst[idx].id, e->jobs[k].job_id,
              err.msg);
    else
        event(e, 1, "%s: canceling job %s", e->wf->inst[idx].id, e->jobs[k].job_id);
}

/* Cancel everything downstream of root that has not finished. */
static void cancel_dependents(struct engine *e, size_t root, const char *reason)
{
    size_t *stack = NULL, len = 0, alloc = 0;
    HP_ALLOC_GROW(stack, 1, alloc);
    stack[len++] = root;
    double now = hp_wall_now();
    while (len) {
        size_t i = stack[--len];
        for (size_t k = e->dep_off[i]; k < e->dep_off[i + 1]; k++) {
            size_t j = e->dep_list[k];
            struct irt *r = &e->rt[j];
            if (hp_istate_final((enum hp_istate)r->state))
                continue;
            if (r->state == HP_IS_QUEUED || r->state == HP_IS_ACTIVE)
                cancel_job(e, j);
            set_state(e, j, HP_IS_CANCELED);
            set_reason(r, reason);
            r->ended = now;
            event(e, 1, "%s: canceled (%s)", e->wf->inst[j].id, reason);
            HP_ALLOC_GROW(stack, len + 1, alloc);
            stack[len++] = j;
        }
    }
    free(stack);
}

static void completed(struct engine *e, size_t i)
{
    set_state(e, i, HP_IS_COMPLETED);
    for (size_t k = e->dep_off[i]; k < e->dep_off[i + 1]; k++) {
        size_t j = e->dep_list[k];
        struct irt *r = &e->rt[j];
        if (r->waiting > 0 && --r->waiting == 0 && r->state == HP_IS_NEW)
            push_ready(e, j, 0);
    }
}

static void failed_final(struct engine *e, size_t i)
{
    set_state(e, i, HP_IS_FAILED);
    char *why = hp_xasprintf("dependency '%s' failed", e->wf->inst[i].id);
    cancel_dependents(e, i, why);
    free(why);
}

/* ---- submission ---- */

static int cores_needed(const struct hp_resources *r)
{
    long v = (long)(r->ntasks > 0 ? r->ntasks : 1) * (r->cores > 0 ? r->cores : 1);
    return v > 1000000 ? 1000000 : (int)v;
}

static char *make_token(const struct engine *e, const char *plan_token)
{
    return hp_xasprintf("%s-%.8s", plan_token, e->nonce);
}

/* Where an attempt's log is kept on this machine: for a remote site, the
 * copy that collect fetches into the local campaign directory. */
static char *local_log(const struct engine *e, const char *path)
{
    if (!path)
        return NULL;
    if (!e->plan->remote_workdir)
        return hp_xstrdup(path);
    return hp_stage_local_path(e->plan->dir, e->dir, path);
}

/* 1 submitted (or failed to), 0 no room now. */
static int submit_next(struct engine *e)
{
    size_t i = e->queue[e->qhead];
    struct irt *r = &e->rt[i];
    const struct hp_instance *in = &e->wf->inst[i];
    if (r->state != HP_IS_NEW || r->waiting) {
        e->qhead = (e->qhead + 1) % e->n;
        e->qlen--;
        r->queued = 0;
        return 1;
    }
    if (e->ad->capacity) {
        struct hp_jobspec probe;
        memset(&probe, 0, sizeof(probe));
        probe.instance = in->id;
        probe.res = in->res;
        probe.partition = e->plan->partition[i];
        long cap = e->ad->capacity(e->impl, &probe);
        if (cap >= 0 && cap < cores_needed(&in->res))
            return 0;
    }
    e->qhead = (e->qhead + 1) % e->n;
    e->qlen--;
    r->queued = 0;

    int attempt = r->attempts + 1;
    struct hp_jobspec spec;
    struct hp_spec_store store;
    hp_plan_spec(e->plan, i, attempt, &spec, &store);
    char *token = make_token(e, store.token);
    spec.token = token;
    char *job_id = NULL;
    struct hp_err serr;
    hp_err_init(&serr);
    double now = hp_wall_now();
    struct job j = {
        .idx = i, .attempt = attempt, .token = token,
        .out = local_log(e, spec.stdout_path),
        .errp = local_log(e, spec.stderr_path),
        .submitted = now,
    };
    r->attempts = attempt;
    r->submitted = now;
    r->started = 0;
    r->ended = 0;
    r->exit_code = -1;
    r->signal = 0;
    r->timed_out = 0;
    int rc = e->ad->submit ? e->ad->submit(e->impl, &spec, &job_id, &serr)
                           : hp_err_set(&serr, HP_ESITE, "adapter '%s' cannot submit",
                                        e->ad->name);
    hp_spec_store_release(&store);
    if (rc > 0) {
        /* Not now (the site is unreachable or busy): the same attempt goes
         * first again after a pause; the adapter finds it if it was
         * created after all. */
        event(e, 1, "%s: attempt %d not submitted now: %s", in->id, attempt, serr.msg);
        free(job_id);
        job_release(&j);
        r->attempts = attempt - 1;
        push_ready(e, i, 1);
        e->submit_pause = hp_now() + SUBMIT_PAUSE;
        return 0;
    }
    e->prog.submitted++;
    if (rc < 0) {
        struct hp_jobstate js;
        memset(&js, 0, sizeof(js));
        js.state = HP_JOB_FAILED;
        js.exit_code = -1;
        snprintf(js.reason, sizeof(js.reason), "submission failed: %.220s", serr.msg);
        pend_attempt(e, &j, "failed", &js, now);
        job_release(&j);
        set_reason(r, js.reason);
        r->ended = now;
        r->fails++;
        event(e, 1, "%s: attempt %d: %s", in->id, attempt, js.reason);
        if (r->fails <= in->retries) {
            set_state(e, i, HP_IS_NEW);
            push_ready(e, i, 0);
        } else {
            failed_final(e, i);
        }
        return 1;
    }
    j.job_id = job_id;
    free(r->job_id);
    r->job_id = hp_xstrdup(job_id);
    set_reason(r, NULL);
    set_state(e, i, HP_IS_QUEUED);
    pend_attempt(e, &j, "queued", NULL, 0);
    HP_ALLOC_GROW(e->jobs, e->njobs + 1, e->jalloc);
    e->jobs[e->njobs++] = j;
    event(e, 1, "%s: attempt %d submitted as job %s", in->id, attempt, job_id);
    return 1;
}

/* ---- results ---- */

static void job_finished(struct engine *e, size_t k, const struct hp_jobstate *js)
{
    struct job *j = &e->jobs[k];
    size_t i = j->idx;
    struct irt *r = &e->rt[i];
    const struct hp_instance *in = &e->wf->inst[i];
    double now = hp_wall_now();
    e->prog.ran++;

    if (r->state == HP_IS_CANCELED) {
        pend_attempt(e, j, "canceled", js, now);
        event(e, 1, "%s: job %s ended after cancel", in->id, j->job_id);
        job_remove(e, k);
        return;
    }
    r->ended = now;
    if (!r->started)
        r->started = j->started ? j->started : j->submitted;
    switch (js->state) {
    case HP_JOB_COMPLETED:
        pend_attempt(e, j, "completed", js, now);
        r->exit_code = 0;
        r->signal = 0;
        r->timed_out = 0;
        set_reason(r, NULL);
        completed(e, i);
        event(e, 1, "%s: completed", in->id);
        break;
    case HP_JOB_CANCELED:
        pend_attempt(e, j, "canceled", js, now);
        set_state(e, i, HP_IS_CANCELED);
        set_reason(r, js->reason[0] ? js->reason : "canceled");
        e->user_canceled++;
        {
            char *why = hp_xasprintf("dependency '%s' canceled", in->id);
            cancel_dependents(e, i, why);
            free(why);
        }
        event(e, 1, "%s: canceled", in->id);
        break;
    case HP_JOB_UNKNOWN:
        pend_attempt(e, j, "lost", js, now);
        r->lost++;
        if (r->lost > MAX_LOST) {
            set_reason(r, "the job vanished too many times");
            failed_final(e, i);
        } else {
            event(e, 1, "%s: attempt %d lost (%s); submitting it again", in->id, j->attempt,
                  js->reason);
            r->ended = 0;
            set_state(e, i, HP_IS_NEW);
            if (!r->waiting)
                push_ready(e, i, 1);
        }
        break;
    default: {
        pend_attempt(e, j, "failed", js, now);
        r->exit_code = js->exit_code;
        r->signal = js->signal;
        r->timed_out = js->timed_out;
        char why[300];
        if (js->reason[0])
            snprintf(why, sizeof(why), "%s", js->reason);
        else if (js->signal)
            snprintf(why, sizeof(why), "killed by signal %d", js->signal);
        else
            snprintf(why, sizeof(why), "exit code %d", js->exit_code);
        set_reason(r, why);
        r->fails++;
        if (r->fails <= in->retries) {
            event(e, 1, "%s: attempt %d failed (%s); retrying (%d of %d)", in->id, j->attempt,
                  why, r->fails, in->retries);
            set_state(e, i, HP_IS_NEW);
            push_ready(e, i, 0);
        } else {
            event(e, 1, "%s: failed (%s)", in->id, why);
            failed_final(e, i);
        }
        break;
    }
    }
    job_remove(e, k);
}

/* Let the adapter fetch the files of job k, which ended as *js. 1 done (or
 * given up: *js then says so), 0 try again later. */
static int collect(struct engine *e, size_t k, struct hp_jobstate *js)
{
    struct job *j = &e->jobs[k];
    struct hp_jobspec spec;
    struct hp_spec_store store;
    struct hp_err cerr;
    hp_err_init(&cerr);
    hp_plan_spec(e->plan, j->idx, j->attempt, &spec, &store);
    spec.token = j->token;
    int rc = e->ad->collect(e->impl, j->idx, &spec, js, &cerr);
    hp_spec_store_release(&store);
    if (rc == 0)
        return 1;
    if (rc > 0) {   /* out of reach for good: lost, the instance runs again */
        js->state = HP_JOB_UNKNOWN;
        snprintf(js->reason, sizeof(js->reason), "%.250s", cerr.msg);
        return 1;
    }
    double now = hp_now();
    if (!j->collect_failing)
        j->collect_failing = now;
    if (now - j->collect_failing < COLLECT_GIVE_UP) {
        event(e, 1, "%s: job %s ended; fetching its files failed (will retry): %s",
              e->wf->inst[j->idx].id, j->job_id, cerr.msg);
        return 0;
    }
    char was[32];
    snprintf(was, sizeof(was), "%s", hp_jobstate_name(js->state));
    js->state = HP_JOB_FAILED;
    js->timed_out = 0;
    snprintf(js->reason, sizeof(js->reason), "the job ended (%s) but its files could not be "
             "fetched: %.150s", was, cerr.msg);
    return 1;
}

static int poll_jobs(struct engine *e, struct hp_err *err)
{
    if (!e->njobs || !e->ad->status)
        return 0;
    size_t n = e->njobs;
    const char **ids = hp_xmalloc(n * sizeof(*ids));
    struct hp_jobstate *js = hp_xcalloc(n, sizeof(*js));
    for (size_t k = 0; k < n; k++)
        ids[k] = e->jobs[k].job_id;
    struct hp_err serr;
    hp_err_init(&serr);
    if (e->ad->status(e->impl, ids, n, js, &serr) < 0) {
        /* A transient failure (a slow scheduler): ask again later. */
        event(e, 1, "job status failed: %s", serr.msg);
        free(ids);
        free(js);
        return 0;
    }
    (void)err;
    double now = hp_wall_now();
    /* Backwards: job_finished() moves the last job into slot k. */
    for (size_t k = n; k-- > 0;) {
        struct job *j = &e->jobs[k];
        struct irt *r = &e->rt[j->idx];
        switch (js[k].state) {
        case HP_JOB_NEW:
        case HP_JOB_QUEUED:
            break;
        case HP_JOB_ACTIVE:
            if (!j->started)
                j->started = now;
            if (r->state == HP_IS_QUEUED) {
                r->started = j->started;
                set_state(e, j->idx, HP_IS_ACTIVE);
            }
            break;
        default:
            if (e->ad->collect && !collect(e, k, &js[k]))
                break;   /* asked again at the next poll */
            job_finished(e, k, &js[k]);
            break;
        }
    }
    free(ids);
    free(js);
    return 0;
}

/* ---- cancels from other processes ---- */

static int on_canceled_row(void *ctx, const struct hp_inst_row *row)
{
    struct engine *e = ctx;
    long i = hash_find(e, row->id);
    if (i < 0)
        return 0;
    struct irt *r = &e->rt[i];
    if (r->state == HP_IS_CANCELED)
        return 0;
    if (r->state == HP_IS_COMPLETED || r->state == HP_IS_FAILED) {
        /* It finished before the cancel arrived: the database must say so. */
        r->force = 1;
        mark_dirty(e, (size_t)i);
        return 0;
    }
    if (r->state == HP_IS_QUEUED || r->state == HP_IS_ACTIVE)
        cancel_job(e, (size_t)i);
    set_state(e, (size_t)i, HP_IS_CANCELED);
    set_reason(r, row->reason ? row->reason : "canceled by user");
    r->ended = hp_wall_now();
    e->user_canceled++;
    event(e, 1, "%s: canceled by user", row->id);
    char *why = hp_xasprintf("dependency '%s' canceled", row->id);
    cancel_dependents(e, (size_t)i, why);
    free(why);
    return 0;
}

static int check_cancels(struct engine *e, struct hp_err *err)
{
    int64_t v;
    double now = hp_now();
    if (now - e->last_cancel_check < CANCEL_CHECK)
        return 0;
    e->last_cancel_check = now;
    if (hp_state_data_version(e->st, &v, err) < 0)
        return -1;
    if (v == e->data_version)
        return 0;
    e->data_version = v;
    return hp_state_each_instance(e->st, HP_IS_CANCELED, on_canceled_row, e, err) < 0 ? -1 : 0;
}

/* ---- start-up ---- */

static int run_lock(struct engine *e, struct hp_err *err)
{
    char *path = hp_path_join(e->dir, "run.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot open %s", path);
        free(path);
        return -1;
    }
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (buf[0])
            hp_err_set(err, HP_ESTATE, "campaign '%s' is being run by another hpcport process "
                       "(pid %s); wait for it, or stop it first", e->plan->campaign, buf);
        else
            hp_err_set(err, HP_ESTATE, "campaign '%s' is being run by another hpcport "
                       "process; wait for it, or stop it first", e->plan->campaign);
        close(fd);
        free(path);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) < 0) {
        /* the pid is informative only */
    }
    free(path);
    e->run_lock = fd;
    return 0;
}

pid_t hp_campaign_engine(const char *dir)
{
    char *path = hp_path_join(dir, "run.lock");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return 0;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    pid_t pid = 0;
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        pid = (pid_t)atoi(buf);
        if (pid <= 0)
            pid = 1;
    }
    close(fd);
    return pid;
}

static int on_loaded_row(void *ctx, const struct hp_inst_row *row)
{
    struct engine *e = ctx;
    long i = hash_find(e, row->id);
    if (i < 0)
        return 0;   /* no longer in the workflow */
    struct irt *r = &e->rt[i];
    r->n = row->n;
    r->state = (unsigned char)row->state;
    r->attempts = row->attempts;
    r->fails = row->fails;
    r->exit_code = row->exit_code;
    r->signal = row->signal;
    r->timed_out = row->timed_out;
    r->reason = row->reason ? hp_xstrdup(row->reason) : NULL;
    r->job_id = row->job_id ? hp_xstrdup(row->job_id) : NULL;
    r->submitted = row->submitted;
    r->started = row->started;
    r->ended = row->ended;
    r->dirty = 2;   /* "known": see load_instances() */
    return 0;
}

static int load_instances(struct engine *e, int fresh, struct hp_err *err)
{
    if (!fresh && hp_state_each_instance(e->st, -1, on_loaded_row, e, err) < 0)
        return -1;
    if (hp_state_begin(e->st, err) < 0)
        return -1;
    for (size_t i = 0; i < e->n; i++) {
        struct irt *r = &e->rt[i];
        if (r->dirty == 2) {
            r->dirty = 0;
            continue;
        }
        char h[17];
        const struct hp_instance *in = &e->wf->inst[i];
        spec_hash(in, e->wf->workdir, h);
        if (hp_state_add_instance(e->st, in->id, e->wf->tasks[in->task].name, h, &r->n, NULL,
                                  err) < 0) {
            hp_state_rollback(e->st);
            return -1;
        }
        r->state = HP_IS_NEW;
        r->exit_code = -1;
    }
    return hp_state_commit(e->st, err);
}

static void adopt_or_requeue(struct engine *e, size_t i)
{
    struct irt *r = &e->rt[i];
    const struct hp_instance *in = &e->wf->inst[i];
    if (r->job_id && r->attempts > 0) {
        struct hp_jobspec spec;
        struct hp_spec_store store;
        hp_plan_spec(e->plan, i, r->attempts, &spec, &store);
        char *token = make_token(e, store.token);
        spec.token = token;
        struct hp_err aerr;
        hp_err_init(&aerr);
        int ok = !e->ad->adopt || e->ad->adopt(e->impl, &spec, r->job_id, &aerr) == 0;
        if (ok) {
            struct job j = {
                .idx = i, .attempt = r->attempts, .token = token,
                .job_id = hp_xstrdup(r->job_id),
                .out = local_log(e, spec.stdout_path),
                .errp = local_log(e, spec.stderr_path),
                .submitted = r->submitted, .started = r->started,
            };
            HP_ALLOC_GROW(e->jobs, e->njobs + 1, e->jalloc);
            e->jobs[e->njobs++] = j;
            e->prog.adopted++;
            event(e, 1, "%s: following job %s from an earlier run", in->id, r->job_id);
            hp_spec_store_release(&store);
            return;
        }
        event(e, 1, "%s: cannot follow job %s (%s); submitting again", in->id, r->job_id,
              aerr.msg);
        free(token);
        hp_spec_store_release(&store);
    } else if (r->attempts > 0) {
        /* Submitted, but the job id never reached the database: submit the
         * same attempt again; the adapter finds it by its token. */
        r->attempts--;
    }
    set_state(e, i, HP_IS_NEW);
}

static int check_cores(struct engine *e, struct hp_err *err)
{
    if (!e->ad->capacity)
        return 0;
    for (size_t t = 0; t < e->wf->ntasks; t++) {
        const struct hp_task *task = &e->wf->tasks[t];
        for (size_t i = task->first; i < task->first + task->count; i++) {
            const struct hp_instance *in = &e->wf->inst[i];
            struct hp_jobspec probe;
            memset(&probe, 0, sizeof(probe));
            probe.instance = in->id;
            probe.res = in->res;
            probe.partition = e->plan->partition[i];
            long cap = e->ad->capacity(e->impl, &probe);
            int need = cores_needed(&in->res);
            if (cap >= 0 && cap < need)
                return hp_err_set(err, HP_ESITE,
                                  "task '%s' needs %d cores (ntasks %d x cores %d) but site '%s' "
                                  "has %ld; lower its resources, or tell hpcport the machine is "
                                  "bigger with --set nodes.cores=N", task->name, need,
                                  in->res.ntasks > 0 ? in->res.ntasks : 1,
                                  in->res.cores > 0 ? in->res.cores : 1, e->plan->site->name, cap);
            if (i - task->first > 64)
                break;   /* instances of one task rarely differ; do not scan millions */
        }
    }
    return 0;
}

static const char *site_label(const struct engine *e)
{
    return e->opts && e->opts->site_label ? e->opts->site_label : e->plan->site->name;
}

/* Do the comma-separated site lists a and b name the same sites? */
static int same_sites(const char *a, const char *b)
{
    size_t na = 1, nb = 1;
    for (const char *s = a; *s; s++)
        na += *s == ',';
    for (const char *s = b; *s; s++)
        nb += *s == ',';
    if (na != nb)
        return 0;
    for (const char *s = a; *s;) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (const char *t = b; *t && !found;) {
            size_t tl = strcspn(t, ",");
            found = tl == len && !strncmp(s, t, len);
            t += tl + (t[tl] == ',');
        }
        if (!found)
            return 0;
        s += len + (s[len] == ',');
    }
    return 1;
}

static int open_campaign(struct engine *e, struct hp_err *err, int *fresh)
{
    const struct hp_plan *p = e->plan;
    e->st = hp_state_open(e->dir, 1, err);
    if (!e->st)
        return -1;
    struct hp_campaign_info ci;
    int rc = hp_state_get_campaign(e->st, &ci, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        struct hp_campaign_info nci = {
            .id = p->campaign,
            .workflow_path = e->opts ? (char *)e->opts->workflow_path : NULL,
            .workflow_name = e->wf->name,
            .site = (char *)site_label(e),
            .adapter = (char *)e->ad->name,
            .status = (char *)"created",
        };
        if (hp_state_create_campaign(e->st, &nci, err) < 0)
            return -1;
        if (hp_state_get_campaign(e->st, &ci, err) != 0)
            return hp_err_set(err, HP_ESTATE, "%s: campaign row missing after creation",
                              hp_state_path(e->st));
        *fresh = 1;
    } else {
        *fresh = 0;
        if (!same_sites(ci.site, site_label(e))) {
            struct hp_buf hint = HP_BUF_INIT;
            for (const char *s = ci.site; *s; s++) {
                if (*s == ',')
                    hp_buf_adds(&hint, " --site ");
                else
                    hp_buf_addch(&hint, *s);
            }
            hp_err_set(err, HP_ESTATE,
                       "campaign '%s' was started on site%s '%s', not '%s'; resume it with "
                       "--site %s, or start a separate campaign with --campaign NAME",
                       p->campaign, strchr(ci.site, ',') ? "s" : "", ci.site, site_label(e),
                       hint.buf);
            hp_buf_release(&hint);
            hp_campaign_info_release(&ci);
            return -1;
        }
        if (e->opts && e->opts->workflow_path &&
            hp_state_set_workflow(e->st, e->opts->workflow_path, e->wf->name, err) < 0) {
            hp_campaign_info_release(&ci);
            return -1;
        }
    }
    e->nonce = hp_xstrdup(ci.nonce ? ci.nonce : "0");
    hp_campaign_info_release(&ci);
    return 0;
}

/* What produces the results from now on: a new provenance row when this run
 * differs from the last (another commit, a dirty tree, another hpcport, a
 * changed site profile); attempts recorded from now on name it. */
static int record_provenance(struct engine *e, struct hp_err *err)
{
    json_t *r = hp_provenance_collect(e->opts ? e->opts->workflow_path : NULL, e->wf->name,
                                      e->plan->site);
    char *text = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
    /* untracked files come and go with the outputs tasks write into the
     * checkout: counted in the record, not a reason for a new one */
    json_object_del(json_object_get(r, "git"), "untracked");
    char *ident = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(r);
    int rc = hp_state_add_provenance(e->st, text ? text : "{}", ident ? ident : "{}", NULL, err);
    free(text);
    free(ident);
    return rc;
}

static void build_dependents(struct engine *e)
{
    e->dep_off = hp_xcalloc(e->n + 1, sizeof(*e->dep_off));
    size_t total = 0;
    for (size_t i = 0; i < e->n; i++)
        for (size_t k = 0; k < e->wf->inst[i].ndeps; k++)
            e->dep_off[e->wf->inst[i].deps[k] + 1]++;
    for (size_t i = 0; i < e->n; i++)
        e->dep_off[i + 1] += e->dep_off[i];
    total = e->dep_off[e->n];
    e->dep_list = hp_xmalloc((total ? total : 1) * sizeof(*e->dep_list));
    size_t *fill = hp_xmalloc((e->n + 1) * sizeof(*fill));
    memcpy(fill, e->dep_off, (e->n + 1) * sizeof(*fill));
    for (size_t i = 0; i < e->n; i++)
        for (size_t k = 0; k < e->wf->inst[i].ndeps; k++)
            e->dep_list[fill[e->wf->inst[i].deps[k]]++] = i;
    free(fill);
}

static void progress(struct engine *e, int force)
{
    double now = hp_now();
    double every = e->opts && e->opts->progress_interval > 0 ? e->opts->progress_interval : 0.2;
    e->prog.total = e->n;
    memcpy(e->prog.count, e->count, sizeof(e->count));
    e->prog.elapsed = now - e->t0;
    e->prog.rate = e->prog.elapsed > 0 ? (double)e->prog.ran / e->prog.elapsed : 0;
    if (!e->opts || !e->opts->progress)
        return;
    if (!force && now - e->last_progress < every)
        return;
    e->last_progress = now;
    e->opts->progress(e->opts->ctx, &e->prog);
}

static void engine_release(struct engine *e)
{
    if (e->impl && e->ad->close && !(e->opts && e->opts->adapter))
        e->ad->close(e->impl);
    for (size_t k = 0; k < e->njobs; k++)
        job_release(&e->jobs[k]);
    free(e->jobs);
    for (size_t k = 0; k < e->npend; k++)
        hp_attempt_row_release(&e->pend[k]);
    free(e->pend);
    for (size_t i = 0; e->rt && i < e->n; i++) {
        free(e->rt[i].reason);
        free(e->rt[i].job_id);
    }
    free(e->rt);
    free(e->dep_off);
    free(e->dep_list);
    free(e->hash);
    free(e->queue);
    free(e->dirty);
    free(e->nonce);
    free(e->dir);
    hp_state_close(e->st);
    if (e->run_lock >= 0)
        close(e->run_lock);
}

int hp_campaign_run(const struct hp_plan *plan, const struct hp_campaign_opts *opts,
                    struct hp_campaign_summary *sum, struct hp_err *err)
{
    struct engine E, *e = &E;
    int ret = -1, fresh = 0;
    memset(e, 0, sizeof(*e));
    memset(sum, 0, sizeof(*sum));
    e->run_lock = -1;
    e->plan = plan;
    e->wf = plan->wf;
    e->opts = opts;
    e->ad = opts && opts->adapter ? opts->adapter : plan->adapter;
    e->n = plan->wf->ninst;
    e->t0 = hp_now();
    /* A remote site's campaign directory (plan->dir) is on the site; the
     * state lives here, where status, cancel and logs look for it. */
    e->dir = plan->remote_workdir
                 ? hp_campaign_dir(opts ? opts->state_dir : NULL, plan->campaign)
                 : hp_xstrdup(plan->dir);

    if (!e->ad->submit) {
        hp_err_set(err, HP_ESITE, "site '%s': adapter '%s' cannot submit jobs yet",
                   plan->site->name, e->ad->name);
        goto out;
    }
    if (opts && opts->adapter) {
        e->impl = opts->adapter_impl;
    } else if (e->ad->open) {
        e->impl = e->ad->open(plan->site, err);
        if (!e->impl)
            goto out;
    }
    if (check_cores(e, err) < 0)
        goto out;
    if (open_campaign(e, err, &fresh) < 0)
        goto out;
    if (run_lock(e, err) < 0)
        goto out;
    if (record_provenance(e, err) < 0)
        goto out;
    if (e->ad->prepare && e->ad->prepare(e->impl, plan, e->dir, err) < 0)
        goto out;

    e->rt = hp_xcalloc(e->n ? e->n : 1, sizeof(*e->rt));
    e->queue = hp_xmalloc((e->n ? e->n : 1) * sizeof(*e->queue));
    hash_build(e);
    build_dependents(e);
    if (load_instances(e, fresh, err) < 0)
        goto out;

    /* Resume: decide what every instance is now. */
    for (size_t i = 0; i < e->n; i++) {
        struct irt *r = &e->rt[i];
        e->count[r->state]++;
        switch (r->state) {
        case HP_IS_FAILED:
        case HP_IS_CANCELED:
            /* A rerun tries again; a job a cancel did not reach is stopped. */
            if (r->state == HP_IS_CANCELED && r->job_id && e->ad->cancel) {
                struct hp_err cerr;
                hp_err_init(&cerr);
                e->ad->cancel(e->impl, r->job_id, &cerr);
            }
            r->fails = 0;
            r->lost = 0;
            r->force = 1;
            set_state(e, i, HP_IS_NEW);
            break;
        case HP_IS_QUEUED:
        case HP_IS_ACTIVE:
            adopt_or_requeue(e, i);
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < e->n; i++) {
        const struct hp_instance *in = &e->wf->inst[i];
        unsigned w = 0;
        for (size_t k = 0; k < in->ndeps; k++)
            if (e->rt[in->deps[k]].state != HP_IS_COMPLETED)
                w++;
        e->rt[i].waiting = w;
    }
    for (size_t i = 0; i < e->n; i++)
        if (e->rt[i].state == HP_IS_NEW && !e->rt[i].waiting)
            push_ready(e, i, 0);
    if (flush(e, err) < 0 || hp_state_set_status(e->st, "running", err) < 0)
        goto out;
    if (hp_state_data_version(e->st, &e->data_version, err) < 0)
        goto out;
    event(e, 2, "campaign '%s': %zu instances, %zu completed before, %zu ready, %zu followed",
          plan->campaign, e->n, e->count[HP_IS_COMPLETED], e->qlen, e->njobs);

    long maxp = opts && opts->max_parallel > 0 ? opts->max_parallel : 0;
    for (;;) {
        int stopping = opts && opts->stop && *opts->stop;
        if (check_cancels(e, err) < 0)
            goto out;
        int paused = 0;   /* the site said "not now": submissions wait */
        while (!stopping && e->qlen && (!maxp || (long)e->njobs < maxp)) {
            if (hp_now() < e->submit_pause) {
                paused = 1;
                break;
            }
            if (!submit_next(e)) {
                paused = hp_now() < e->submit_pause;
                break;
            }
        }
        if (stopping) {
            sum->interrupted = 1;
            break;
        }
        if (!e->njobs) {
            if (!e->qlen)
                break;
            if (paused)
                goto wait;
            /* Ready work, nothing running and no room: cannot happen once
             * check_cores() passed, unless capacity is wrong. */
            hp_err_set(err, HP_EINTERNAL, "no capacity to run '%s' while nothing runs",
                       e->wf->inst[e->queue[e->qhead]].id);
            goto out;
        }
    wait:;
        double now = hp_now();
        if ((e->ndirty || e->npend) && now - e->last_flush >= FLUSH_INTERVAL) {
            if (flush(e, err) < 0)
                goto out;
            now = hp_now();
        }
        progress(e, 0);
        double timeout = POLL_MAX;
        if (e->ndirty || e->npend) {
            double left = e->last_flush + FLUSH_INTERVAL - now;
            if (left < timeout)
                timeout = left > 0 ? left : 0;
        }
        if (e->qlen && e->submit_pause > now && e->submit_pause - now < timeout)
            timeout = e->submit_pause - now;   /* back to submitting on time */
        if (e->ad->wait) {
            e->ad->wait(e->impl, timeout);
        } else {
            struct timespec ts = { (time_t)timeout,
                                   (long)((timeout - (double)(time_t)timeout) * 1e9) };
            nanosleep(&ts, NULL);
        }
        if (poll_jobs(e, err) < 0)
            goto out;
    }
    if (flush(e, err) < 0)
        goto out;
    {
        const char *status = sum->interrupted ? "interrupted"
                             : e->count[HP_IS_COMPLETED] == e->n ? "completed"
                             : e->user_canceled ? "canceled" : "failed";
        if (hp_state_set_status(e->st, status, err) < 0)
            goto out;
    }
    ret = 0;
out:
    if (ret < 0 && e->st && (e->ndirty || e->npend)) {
        /* Keep what we learnt; the error is already recorded. */
        struct hp_err ignore;
        hp_err_init(&ignore);
        flush(e, &ignore);
    }
    if (e->rt)
        progress(e, 1);
    sum->p = e->prog;
    sum->canceled = e->user_canceled > 0;
    engine_release(e);
    return ret;
}

/* ---- status, cancel, logs ---- */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct hp_campaign_entry *)a)->id,
                  ((const struct hp_campaign_entry *)b)->id);
}

int hp_campaign_list(const char *state_dir, struct hp_campaign_entry **out, size_t *n,
                     struct hp_err *err)
{
    char *sd = state_dir ? hp_xstrdup(state_dir) : hp_state_dir();
    char *base = hp_path_join(sd, "campaigns");
    struct hp_campaign_entry *v = NULL;
    size_t len = 0, alloc = 0;
    *out = NULL;
    *n = 0;
    DIR *d = opendir(base);
    if (!d) {
        int ok = errno == ENOENT;
        if (!ok)
            hp_err_errno(err, "cannot read %s", base);
        free(base);
        free(sd);
        return ok ? 0 : -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *dir = hp_path_join(base, de->d_name);
        char *db = hp_path_join(dir, "state.db");
        struct stat sb;
        int exists = stat(db, &sb) == 0;
        free(db);
        if (!exists) {
            free(dir);
            continue;
        }
        HP_ALLOC_GROW(v, len + 1, alloc);
        struct hp_campaign_entry *c = &v[len++];
        memset(c, 0, sizeof(*c));
        c->dir = dir;
        c->engine = hp_campaign_engine(dir);
        struct hp_err e2;
        hp_err_init(&e2);
        struct hp_state *st = hp_state_open(dir, 0, &e2);
        if (st && hp_state_get_campaign(st, &c->info, &e2) == 0 &&
            hp_state_counts(st, c->count, &e2) == 0) {
            c->id = hp_xstrdup(c->info.id);
            for (int k = 0; k < HP_IS__COUNT; k++)
                c->total += c->count[k];
        } else {
            hp_campaign_info_release(&c->info);
            c->id = hp_xstrdup(de->d_name);
            c->info.status = hp_xstrdup("error");
            c->info.site = hp_xstrdup("?");
        }
        hp_state_close(st);
    }
    closedir(d);
    free(base);
    free(sd);
    if (len)
        qsort(v, len, sizeof(*v), entry_cmp);
    *out = v;
    *n = len;
    return 0;
}

void hp_campaign_entries_free(struct hp_campaign_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].id);
        free(e[i].dir);
        hp_campaign_info_release(&e[i].info);
    }
    free(e);
}

struct hp_state *hp_campaign_open(const char *state_dir, const char *id, char **dir,
                                  struct hp_err *err)
{
    char *d = hp_campaign_dir(state_dir, id);
    char *db = hp_path_join(d, "state.db");
    struct stat sb;
    int exists = stat(db, &sb) == 0;
    free(db);
    if (dir)
        *dir = NULL;
    if (!exists) {
        struct hp_campaign_entry *v;
        size_t n;
        struct hp_err e2;
        hp_err_init(&e2);
        hp_campaign_list(state_dir, &v, &n, &e2);
        const char **names = hp_xcalloc(n + 1, sizeof(*names));
        struct hp_buf all = HP_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            names[i] = v[i].id;
            if (i < 8)
                hp_buf_addf(&all, "%s'%s'", i ? ", " : "", v[i].id);
        }
        const char *s = hp_suggest(id, names);
        if (s)
            hp_err_set(err, HP_ENOTFOUND, "no campaign '%s' (did you mean '%s'?)", id, s);
        else if (n)
            hp_err_set(err, HP_ENOTFOUND, "no campaign '%s'; campaigns: %s%s", id, all.buf,
                       n > 8 ? ", ..." : "");
        else
            hp_err_set(err, HP_ENOTFOUND, "no campaign '%s'; there are no campaigns in this "
                       "state directory yet", id);
        hp_buf_release(&all);
        free(names);
        hp_campaign_entries_free(v, n);
        free(d);
        return NULL;
    }
    struct hp_state *st = hp_state_open(d, 0, err);
    if (st && dir)
        *dir = d;
    else
        free(d);
    return st;
}

struct find_ctx {
    const char *name;
    struct hp_inst_row *matches;
    size_t nmatch, alloc;
    char **cands;               /* ids and task names, for suggestions */
    size_t ncand, calloc_;
    const char *last_task;      /* borrowed from cands */
};

static int on_find_row(void *ctx, const struct hp_inst_row *row)
{
    struct find_ctx *f = ctx;
    if (row->task && !strcmp(row->task, f->name)) {
        HP_ALLOC_GROW(f->matches, f->nmatch + 1, f->alloc);
        struct hp_inst_row *m = &f->matches[f->nmatch++];
        *m = *row;
        m->id = hp_xstrdup(row->id);
        m->task = hp_xstrdup(row->task);
        m->reason = row->reason ? hp_xstrdup(row->reason) : NULL;
        m->job_id = row->job_id ? hp_xstrdup(row->job_id) : NULL;
        m->spec_hash = row->spec_hash ? hp_xstrdup(row->spec_hash) : NULL;
    }
    HP_ALLOC_GROW(f->cands, f->ncand + 3, f->calloc_);
    f->cands[f->ncand++] = hp_xstrdup(row->id);
    if (row->task && (!f->last_task || strcmp(f->last_task, row->task))) {
        f->cands[f->ncand++] = hp_xstrdup(row->task);
        f->last_task = f->cands[f->ncand - 1];
    }
    f->cands[f->ncand] = NULL;
    return 0;
}

static void find_ctx_release(struct find_ctx *f)
{
    for (size_t i = 0; i < f->nmatch; i++)
        hp_inst_row_release(&f->matches[i]);
    free(f->matches);
    for (size_t i = 0; i < f->ncand; i++)
        free(f->cands[i]);
    free(f->cands);
}

/* Look name up as an instance id or task name: 0 found (count in *n, may be
 * several instances of a task), -1 not found (err filled with suggestion). */
static int resolve_name(struct hp_state *st, const char *name, struct find_ctx *f,
                        struct hp_err *err)
{
    memset(f, 0, sizeof(*f));
    f->name = name;
    struct hp_inst_row row;
    int rc = hp_state_get_instance(st, name, &row, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        HP_ALLOC_GROW(f->matches, 1, f->alloc);
        f->matches[0] = row;
        f->nmatch = 1;
        return 0;
    }
    if (hp_state_each_instance(st, -1, on_find_row, f, err) < 0)
        return -1;
    if (f->nmatch)
        return 0;
    const char *s = f->cands ? hp_suggest(name, (const char *const *)f->cands) : NULL;
    if (s)
        return hp_err_set(err, HP_ENOTFOUND, "no instance or task '%s' (did you mean '%s'?)",
                          name, s);
    return hp_err_set(err, HP_ENOTFOUND, "no instance or task '%s' in this campaign; "
                      "'hpcport status CAMPAIGN --tasks' lists them", name);
}

int hp_campaign_find_instance(struct hp_state *st, const char *name, struct hp_inst_row *out,
                              struct hp_err *err)
{
    struct find_ctx f;
    memset(out, 0, sizeof(*out));
    if (resolve_name(st, name, &f, err) < 0) {
        find_ctx_release(&f);
        return -1;
    }
    if (f.nmatch > 1) {
        struct hp_buf b = HP_BUF_INIT;
        for (size_t i = 0; i < f.nmatch && i < 5; i++)
            hp_buf_addf(&b, "%s'%s'", i ? ", " : "", f.matches[i].id);
        hp_err_set(err, HP_EUSAGE, "task '%s' has %zu instances; name one of them: %s%s",
                   name, f.nmatch, b.buf, f.nmatch > 5 ? ", ..." : "");
        hp_buf_release(&b);
        find_ctx_release(&f);
        return -1;
    }
    *out = f.matches[0];
    f.nmatch = 0;
    find_ctx_release(&f);
    return 0;
}

struct jobs_ctx {
    char **ids;
    size_t n, alloc;
    const char *const *names;
    size_t nnames;
};

static int on_live_row(void *ctx, const struct hp_inst_row *row)
{
    struct jobs_ctx *j = ctx;
    if (!row->job_id || (row->state != HP_IS_ACTIVE && row->state != HP_IS_QUEUED))
        return 0;
    int match = !j->names;
    for (size_t k = 0; !match && k < j->nnames; k++)
        match = !strcmp(row->id, j->names[k]) || (row->task && !strcmp(row->task, j->names[k]));
    if (match) {
        HP_ALLOC_GROW(j->ids, j->n + 1, j->alloc);
        j->ids[j->n++] = hp_xstrdup(row->job_id);
    }
    return 0;
}

/* Stop the jobs ids[0..n) of site site_name with adapter ad (NULL: the
 * site's own), before anything is marked. -1 only when the site could not be
 * reached or resolved. */
static int cancel_on_site(const struct hp_campaign_info *ci, const char *site_name,
                          const struct hp_adapter_ops *ad, const char *const *ids, size_t n,
                          hp_cancel_site_fn load_site, void *arg, struct hp_cancel_result *res,
                          struct hp_err *err)
{
    if (!n || (ad && !ad->cancel))
        return 0;
    struct hp_site *site = NULL;
    void *impl = NULL;
    if (!ad || strcmp(ad->name, "local") != 0) {
        if (!load_site)
            return 0;
        site = load_site(site_name, ci->workflow_path, arg, err);
        if (!site || (!ad && !(ad = hp_adapter_for_site(site, err))))
            goto unreached;
        if (!ad->cancel) {
            hp_site_free(site);
            return 0;
        }
        if (ad->open && !(impl = ad->open(site, err)))
            goto unreached;
    }
    for (size_t k = 0; k < n; k++) {
        struct hp_err cerr;
        hp_err_init(&cerr);
        if (ad->cancel(impl, ids[k], &cerr) == 0) {
            res->signaled++;
        } else if (!res->unstopped++) {
            struct hp_buf b = HP_BUF_INIT;
            hp_buf_addf(&b, "job %s: %s", ids[k], cerr.msg);
            size_t m = b.len < sizeof(res->first_refusal) - 1 ? b.len
                                                              : sizeof(res->first_refusal) - 1;
            memcpy(res->first_refusal, b.buf, m);
            res->first_refusal[m] = '\0';
            hp_buf_release(&b);
        }
    }
    if (impl && ad->close)
        ad->close(impl);
    hp_site_free(site);
    return 0;
unreached:
    hp_site_free(site);
    if (!err->code)
        hp_err_set(err, HP_ESITE, "site '%s' could not be resolved", site_name);
    hp_err_prefix(err, "cannot stop the %zu job%s of campaign '%s' on site '%s', so nothing "
                       "was canceled", n, n == 1 ? "" : "s", ci->id, site_name);
    return -1;
}

/* Stop the jobs in jc with the campaign's adapter; a campaign run on
 * several sites (site "A,B", job ids "SITE|ID": adapters/multi.h) through
 * each job's site. */
static int cancel_jobs(const struct hp_campaign_info *ci, const struct jobs_ctx *jc,
                       hp_cancel_site_fn load_site, void *arg, struct hp_cancel_result *res,
                       struct hp_err *err)
{
    if (!strchr(ci->site, ','))
        return hp_adapter_find_recorded(ci->adapter)
                   ? cancel_on_site(ci, ci->site, hp_adapter_find_recorded(ci->adapter),
                                    (const char *const *)jc->ids, jc->n, load_site, arg, res,
                                    err)
                   : 0;
    const char **ids = hp_xcalloc(jc->n + 1, sizeof(*ids));
    int ret = 0;
    for (const char *s = ci->site; *s && ret == 0;) {
        size_t len = strcspn(s, ","), m = 0;
        char *name = hp_xstrndup(s, len);
        for (size_t k = 0; k < jc->n; k++)
            if (hp_multi_site_len(jc->ids[k]) == len && !strncmp(jc->ids[k], s, len))
                ids[m++] = jc->ids[k] + len + 1;
        ret = cancel_on_site(ci, name, NULL, ids, m, load_site, arg, res, err);
        free(name);
        s += len + (s[len] == ',');
    }
    free(ids);
    return ret;
}

int hp_campaign_cancel(const char *state_dir, const char *id, const char *const *names,
                       size_t nnames, hp_cancel_site_fn load_site, void *arg,
                       struct hp_cancel_result *res, struct hp_err *err)
{
    char *dir = NULL;
    int ret = -1;
    struct jobs_ctx jc = { .names = names, .nnames = nnames };
    struct hp_campaign_info ci;
    memset(&ci, 0, sizeof(ci));
    memset(res, 0, sizeof(*res));
    struct hp_state *st = hp_campaign_open(state_dir, id, &dir, err);
    if (!st)
        goto out;
    for (size_t k = 0; names && k < nnames; k++) {
        struct find_ctx f;
        int rc = resolve_name(st, names[k], &f, err);
        find_ctx_release(&f);
        if (rc < 0)
            goto out;
    }
    if (hp_state_get_campaign(st, &ci, err) < 0)
        goto out;
    res->engine = hp_campaign_engine(dir);
    if (!res->engine) {
        /* nobody else will stop the jobs: stop them here, first */
        if (hp_state_each_instance(st, -1, on_live_row, &jc, err) < 0 ||
            cancel_jobs(&ci, &jc, load_site, arg, res, err) < 0)
            goto out;
    }
    if (hp_state_cancel(st, names, names ? nnames : 0, "canceled by user", &res->marked,
                        err) < 0)
        goto out;
    if (!res->engine && !names && hp_state_set_status(st, "canceled", err) < 0)
        goto out;
    ret = 0;
out:
    for (size_t k = 0; k < jc.n; k++)
        free(jc.ids[k]);
    free(jc.ids);
    hp_campaign_info_release(&ci);
    hp_state_close(st);
    free(dir);
    return ret;
}
