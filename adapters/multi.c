/* multi.c - the multi-site mux: one campaign spread over several sites. See
 * multi.h for the contract.
 *
 * Health. Batch adapters answer status() from their last poll between polls,
 * and poll less often after a failure (jobtab.h: up to 3 x 10 s), so one
 * status() that returns 0 proves nothing. A site is "failing" from its first
 * failed status until it answers for RECOVERED seconds without a
 * failure (a poll must have succeeded meanwhile) or accepts a job; failing
 * for longer than the failover time while another site is usable, it is
 * "down". A down site is tried again by a submission after its backoff; one
 * that succeeds brings it back. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "buf.h"
#include "multi.h"
#include "plan.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define RECOVERED 45.0        /* no failure for this long: answering again */
#define BACKOFF_MIN 5.0
#define BACKOFF_MAX 300.0

struct msite {
    const struct hp_plan *plan;
    const char *name;                 /* plan->site->name */
    const struct hp_adapter_ops *ad;
    void *impl;                       /* NULL: not opened (down) */
    int prepared;
    int down;                         /* its jobs were moved away */
    size_t inflight;                  /* this run's unfinished jobs there */
    double failing_since, last_fail;  /* monotonic; 0: answering */
    double retry_at, backoff;         /* no submission before retry_at */
    char why[256];                    /* the last failure */
    char **orphans;                   /* job ids (its own) left there when it went down */
    size_t norph, aorph;
};

struct multi {
    struct msite *s;
    size_t n;
    const struct hp_workflow *wf;     /* the first plan's */
    size_t *by_id;                    /* instance indexes sorted by id */
    unsigned *where;                  /* per instance: site index + 1 of its job, 0 */
    char *local_dir;                  /* from prepare */
    struct hp_multi_opts o;
};

static void say(struct multi *M, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct multi *M, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!M->o.event)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    M->o.event(M->o.ctx, line);
}

size_t hp_multi_site_len(const char *job_id)
{
    const char *bar = job_id ? strchr(job_id, HP_MULTI_SEP) : NULL;
    return bar ? (size_t)(bar - job_id) : 0;
}

/* The site of a job id and its own id there, or NULL. */
static struct msite *site_of(struct multi *M, const char *id, const char **rest)
{
    size_t len = hp_multi_site_len(id);
    for (size_t k = 0; len && k < M->n; k++)
        if (strlen(M->s[k].name) == len && !strncmp(M->s[k].name, id, len)) {
            *rest = id + len + 1;
            return &M->s[k];
        }
    return NULL;
}

/* ---------------------------------------------------------- instances */

static const struct hp_workflow *sort_wf;

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(sort_wf->inst[*(const size_t *)a].id, sort_wf->inst[*(const size_t *)b].id);
}

/* Index of instance id, or -1 (bsearch over by_id). */
static long inst_index(const struct multi *M, const char *id)
{
    size_t lo = 0, hi = M->wf->ninst;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(id, M->wf->inst[M->by_id[mid]].id);
        if (!c)
            return (long)M->by_id[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* ---------------------------------------------------------- health */

static void note_failure(struct multi *M, struct msite *S, const struct hp_err *err)
{
    double now = hp_now();
    snprintf(S->why, sizeof(S->why), "%.250s", err && err->code ? err->msg : "no answer");
    S->last_fail = now;
    if (!S->failing_since) {
        S->failing_since = now;
        say(M, "site '%s' does not answer (%s); its jobs move to the other sites if it does "
            "not answer within %.0f s", S->name, S->why, M->o.failover);
    }
}

static void note_answer(struct multi *M, struct msite *S, int proof)
{
    if (!S->failing_since && !S->down)
        return;
    if (!proof && hp_now() - S->last_fail < RECOVERED)
        return;
    if (S->down)
        say(M, "site '%s' answers again", S->name);
    S->failing_since = S->last_fail = 0;
    S->down = 0;
    S->backoff = 0;
    S->retry_at = 0;
}

/* Can site k take a job now? */
static int usable(const struct msite *S, double now)
{
    return now >= S->retry_at;
}

/* Another site than S that may take jobs (now or after a backoff). */
static int elsewhere(const struct multi *M, const struct msite *S)
{
    for (size_t k = 0; k < M->n; k++)
        if (&M->s[k] != S && M->s[k].impl && !M->s[k].down && !M->s[k].failing_since)
            return 1;
    return 0;
}

static void add_orphan(struct msite *S, const char *id)
{
    HP_ALLOC_GROW(S->orphans, S->norph + 1, S->aorph);
    S->orphans[S->norph++] = hp_xstrdup(id);
}

/* Failing past the failover time with somewhere else to go: down. */
static int check_down(struct multi *M, struct msite *S)
{
    if (S->down)
        return 1;
    if (!S->failing_since || hp_now() - S->failing_since < M->o.failover || !elsewhere(M, S))
        return 0;
    S->down = 1;
    S->backoff = BACKOFF_MIN * 6;
    S->retry_at = hp_now() + S->backoff;
    say(M, "site '%s' has not answered for %.0f s (%s): its %zu unfinished job%s run again on "
        "the other sites", S->name, hp_now() - S->failing_since, S->why, S->inflight,
        S->inflight == 1 ? "" : "s");
    return 1;
}

/* S cannot be opened or prepared at the start (err says why): down until a
 * later submission reaches it. */
static void left_out(struct multi *M, struct msite *S, const struct hp_err *err,
                     const char *what)
{
    snprintf(S->why, sizeof(S->why), "%.250s", err->code ? err->msg : "no answer");
    S->failing_since = S->last_fail = hp_now();
    S->down = 1;
    S->backoff = BACKOFF_MIN * 6;
    S->retry_at = hp_now() + S->backoff;
    say(M, "site '%s' cannot be %s (%s); the run goes on without it", S->name, what, S->why);
}

/* A site that answered again: stop what was left there (best effort). */
static void cancel_orphans(struct multi *M, struct msite *S)
{
    size_t done = 0, keep = 0;
    for (size_t k = 0; k < S->norph; k++) {
        struct hp_err err;
        hp_err_init(&err);
        if (S->ad->cancel && S->ad->cancel(S->impl, S->orphans[k], &err) == 0) {
            free(S->orphans[k]);
            done++;
        } else {
            S->orphans[keep++] = S->orphans[k];
        }
    }
    S->norph = keep;
    if (done)
        say(M, "site '%s': canceled %zu job%s that had moved to other sites", S->name, done,
            done == 1 ? "" : "s");
}

/* Open (and prepare) site S if it is not yet; -1 with err. */
static int site_open(struct multi *M, struct msite *S, struct hp_err *err)
{
    if (!S->impl) {
        if (!S->ad->open) {
            S->impl = S;   /* an adapter without state: any non-NULL pointer */
        } else if (!(S->impl = S->ad->open(S->plan->site, err))) {
            return -1;
        }
    }
    if (!S->prepared && M->local_dir && S->ad->prepare &&
        S->ad->prepare(S->impl, S->plan, M->local_dir, err) < 0)
        return -1;
    S->prepared = M->local_dir != NULL;
    return 0;
}

static void site_close(struct msite *S)
{
    if (S->impl && S->impl != S && S->ad->close)
        S->ad->close(S->impl);
    S->impl = NULL;
}

/* ---------------------------------------------------------- new / free */

void hp_multi_free(void *impl)
{
    struct multi *M = impl;
    if (!M)
        return;
    for (size_t k = 0; k < M->n; k++) {
        site_close(&M->s[k]);
        for (size_t j = 0; j < M->s[k].norph; j++)
            free(M->s[k].orphans[j]);
        free(M->s[k].orphans);
    }
    free(M->s);
    free(M->by_id);
    free(M->where);
    free(M->local_dir);
    free(M);
}

void *hp_multi_new(const struct hp_plan *const *plans, size_t n, const struct hp_multi_opts *o,
                   struct hp_err *err)
{
    if (n < 2)
        return hp_err_set(err, HP_EINTERNAL, "a multi-site run needs two sites or more"), NULL;
    const struct hp_workflow *wf = plans[0]->wf;
    for (size_t k = 0; k < n; k++) {
        const struct hp_plan *p = plans[k];
        for (size_t j = 0; j < k; j++)
            if (!strcmp(plans[j]->site->name, p->site->name))
                return hp_err_set(err, HP_EUSAGE, "site '%s' is named twice; name each site "
                                  "once", p->site->name), NULL;
        if (strchr(p->site->name, HP_MULTI_SEP) || strchr(p->site->name, ','))
            return hp_err_set(err, HP_ESITE, "site name '%s' has a '%c' or ',', which a "
                              "multi-site campaign cannot record; rename the profile",
                              p->site->name, HP_MULTI_SEP), NULL;
        if (p->wf->ninst != wf->ninst)
            return hp_err_set(err, HP_EINPUT, "the workflow has %zu task instances on site '%s' "
                              "but %zu on site '%s' (per-site overrides); a campaign over "
                              "several sites needs the same instances on each", wf->ninst,
                              plans[0]->site->name, p->wf->ninst, p->site->name), NULL;
        for (size_t i = 0; i < wf->ninst; i++)
            if (strcmp(p->wf->inst[i].id, wf->inst[i].id))
                return hp_err_set(err, HP_EINPUT, "instance '%s' of site '%s' is '%s' on site "
                                  "'%s' (per-site overrides); a campaign over several sites "
                                  "needs the same instances on each", wf->inst[i].id,
                                  plans[0]->site->name, p->wf->inst[i].id, p->site->name), NULL;
    }
    struct multi *M = hp_xcalloc(1, sizeof(*M));
    M->o.failover = o && o->failover > 0 ? o->failover : 60.0;
    M->o.event = o ? o->event : NULL;
    M->o.ctx = o ? o->ctx : NULL;
    M->wf = wf;
    M->n = n;
    M->s = hp_xcalloc(n, sizeof(*M->s));
    M->where = hp_xcalloc(wf->ninst ? wf->ninst : 1, sizeof(*M->where));
    M->by_id = hp_xmalloc((wf->ninst ? wf->ninst : 1) * sizeof(*M->by_id));
    for (size_t i = 0; i < wf->ninst; i++)
        M->by_id[i] = i;
    sort_wf = wf;
    qsort(M->by_id, wf->ninst, sizeof(*M->by_id), cmp_inst);
    sort_wf = NULL;
    size_t open = 0;
    struct hp_err first;
    hp_err_init(&first);
    for (size_t k = 0; k < n; k++) {
        struct msite *S = &M->s[k];
        S->plan = plans[k];
        S->name = plans[k]->site->name;
        S->ad = plans[k]->adapter;
        struct hp_err e;
        hp_err_init(&e);
        if (site_open(M, S, &e) == 0) {
            open++;
            continue;
        }
        if (!first.code)
            first = e;
        left_out(M, S, &e, "used now");
    }
    if (!open) {
        *err = first;
        hp_err_prefix(err, "none of the %zu sites can be used", n);
        hp_multi_free(M);
        return NULL;
    }
    return M;
}

/* ---------------------------------------------------------- ops */

static int multi_render(const struct hp_jobspec *spec, const struct hp_site *site,
                        struct hp_buf *out, struct hp_err *err)
{
    const struct hp_adapter_ops *ad = hp_adapter_for_site(site, err);
    return ad ? ad->render(spec, site, out, err) : -1;
}

/* The spec of S for what the engine built (same instance, attempt, token). */
static long site_spec(struct multi *M, const struct msite *S, const struct hp_jobspec *spec,
                      struct hp_jobspec *out, struct hp_spec_store *store, struct hp_err *err)
{
    long i = inst_index(M, spec->instance);
    if (i < 0)
        return hp_err_set(err, HP_EINTERNAL, "instance '%s' is not in the plan",
                          spec->instance);
    hp_plan_spec(S->plan, (size_t)i, spec->attempt, out, store);
    out->token = spec->token;
    return i;
}

/* Free slots of S for spec, or -1 when it is full. */
static long free_slots(const struct multi *M, const struct msite *S,
                       const struct hp_jobspec *probe)
{
    long i = probe ? inst_index(M, probe->instance) : -1;
    if (i >= 0 && S->plan->pilot && S->plan->pilot[i]) {
        /* a task in pilot jobs there is no batch job: the site's pilots
         * take as many as they are sized for */
        const struct hp_pilot_cfg *c = &S->plan->pilots;
        long left = (long)c->tasks_per_pilot * c->max_pilots - (long)S->inflight;
        return left > 0 ? left : 1;
    }
    if (S->ad->capacity && probe) {
        long cap = S->ad->capacity(S->impl, probe);
        long need = (long)(probe->res.ntasks > 0 ? probe->res.ntasks : 1) *
                    (probe->res.cores > 0 ? probe->res.cores : 1);
        if (cap >= 0 && cap < need)
            return -1;
    }
    long max = S->plan->site->max_queued_jobs > 0 ? S->plan->site->max_queued_jobs
                                                  : HP_MULTI_SLOTS;
    long left = max - (long)S->inflight;
    /* a site without a known limit is never full: it only has less room */
    return left > 0 ? left : S->plan->site->max_queued_jobs > 0 ? 0 : 1;
}

static int multi_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                        struct hp_err *err)
{
    struct multi *M = impl;
    unsigned char *tried = hp_xcalloc(M->n, 1);
    struct hp_buf why = HP_BUF_INIT;
    int ret = 1;
    *job_id = NULL;
    for (;;) {
        double now = hp_now();
        struct msite *best = NULL;
        long best_free = -1;
        for (size_t k = 0; k < M->n; k++) {
            struct msite *S = &M->s[k];
            if (tried[k] || !usable(S, now))
                continue;
            if (!S->impl) {   /* not opened yet (it failed before): try again */
                struct hp_err oe;
                hp_err_init(&oe);
                if (site_open(M, S, &oe) < 0) {
                    tried[k] = 1;
                    note_failure(M, S, &oe);
                    S->backoff = S->backoff ? S->backoff * 2 : BACKOFF_MIN;
                    if (S->backoff > BACKOFF_MAX)
                        S->backoff = BACKOFF_MAX;
                    S->retry_at = now + S->backoff;
                    hp_buf_addf(&why, "%s'%s': %s", why.len ? "; " : "", S->name, S->why);
                    continue;
                }
            }
            long f = free_slots(M, S, spec);
            if (f > best_free) {
                best = S;
                best_free = f;
            }
        }
        if (!best || best_free <= 0)
            break;
        size_t k = (size_t)(best - M->s);
        tried[k] = 1;
        struct hp_jobspec sp;
        struct hp_spec_store store;
        struct hp_err serr;
        hp_err_init(&serr);
        long i = site_spec(M, best, spec, &sp, &store, err);
        if (i < 0) {
            ret = -1;
            break;
        }
        char *id = NULL;
        int rc = best->ad->submit ? best->ad->submit(best->impl, &sp, &id, &serr)
                                  : hp_err_set(&serr, HP_ESITE, "adapter '%s' cannot submit",
                                               best->ad->name);
        hp_spec_store_release(&store);
        if (rc == 0) {
            *job_id = hp_xasprintf("%s%c%s", best->name, HP_MULTI_SEP, id);
            free(id);
            best->inflight++;
            M->where[i] = (unsigned)k + 1;
            int was_down = best->down;
            note_answer(M, best, 1);
            if (was_down || best->norph)
                cancel_orphans(M, best);
            ret = 0;
            break;
        }
        free(id);
        if (rc < 0) {   /* this attempt failed there: the engine's business */
            hp_err_set(err, serr.code ? serr.code : HP_ESITE, "site '%s': %s", best->name,
                       serr.msg);
            ret = -1;
            break;
        }
        /* not now: leave the site alone for a while, try the next one */
        snprintf(best->why, sizeof(best->why), "%.250s", serr.msg);
        best->backoff = best->backoff ? best->backoff * 2 : BACKOFF_MIN;
        if (best->backoff > BACKOFF_MAX)
            best->backoff = BACKOFF_MAX;
        best->retry_at = now + best->backoff;
        hp_buf_addf(&why, "%s'%s': %s", why.len ? "; " : "", best->name, serr.msg);
        say(M, "site '%s' takes no job now (%s); trying the others", best->name, serr.msg);
    }
    if (ret == 1)
        hp_err_set(err, HP_ESITE, "no site can take a job now%s%s", why.len ? ": " : "",
                   why.buf);
    hp_buf_release(&why);
    free(tried);
    return ret;
}

static int multi_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                        struct hp_err *err)
{
    struct multi *M = impl;
    const char **sub = hp_xmalloc((n ? n : 1) * sizeof(*sub));
    size_t *at = hp_xmalloc((n ? n : 1) * sizeof(*at));
    struct hp_jobstate *js = hp_xcalloc(n ? n : 1, sizeof(*js));
    size_t answered = 0, asked = 0;
    struct hp_err first;
    hp_err_init(&first);
    if (n)
        memset(out, 0, n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {   /* ids of no site this run uses: gone */
        const char *rest;
        if (!site_of(M, ids[i], &rest)) {
            out[i].state = HP_JOB_UNKNOWN;
            snprintf(out[i].reason, sizeof(out[i].reason), "job %.200s is on no site of this "
                     "run", ids[i]);
        }
    }
    for (size_t k = 0; k < M->n; k++) {
        struct msite *S = &M->s[k];
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const char *rest;
            if (site_of(M, ids[i], &rest) == S) {
                at[m] = i;
                sub[m++] = rest;
            }
        }
        S->inflight = m;
        if (!m)
            continue;
        asked++;
        struct hp_err serr;
        hp_err_init(&serr);
        int rc = -1;
        if (!S->down && S->impl) {
            rc = S->ad->status ? S->ad->status(S->impl, sub, m, js, &serr)
                               : hp_err_set(&serr, HP_ESITE, "adapter '%s' cannot tell job "
                                            "states", S->ad->name);
            if (rc == 0) {
                answered++;
                note_answer(M, S, 0);
            } else {
                note_failure(M, S, &serr);
                if (!first.code)
                    hp_err_set(&first, serr.code, "site '%s': %s", S->name, serr.msg);
            }
        }
        if (rc < 0 && check_down(M, S)) {
            /* moved: the engine runs these again elsewhere */
            for (size_t j = 0; j < m; j++) {
                struct hp_jobstate *o = &out[at[j]];
                o->state = HP_JOB_UNKNOWN;
                o->exit_code = -1;
                snprintf(o->reason, sizeof(o->reason), "site '%s' stopped answering (%.180s); "
                         "moved to another site", S->name, S->why);
                add_orphan(S, sub[j]);
            }
            answered++;
            S->inflight = 0;
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            out[at[j]] = rc == 0 ? js[j] : (struct hp_jobstate){ .state = HP_JOB_NEW };
            /* NEW: "no news" -- the engine keeps what it knew */
            if (rc == 0 && js[j].state >= HP_JOB_COMPLETED && S->inflight)
                S->inflight--;
        }
    }
    free(sub);
    free(at);
    free(js);
    if (asked && !answered) {
        *err = first;
        return -1;
    }
    return 0;
}

/* The site of job id when it answers, else NULL with err (the job is then
 * kept, to be canceled if the site answers again during the run). */
static struct msite *job_site(struct multi *M, const char *id, const char **rest,
                              struct hp_err *err)
{
    struct msite *S = site_of(M, id, rest);
    if (!S)
        return hp_err_set(err, HP_ESITE, "job %s is on no site of this run", id), NULL;
    if (!S->down && S->impl)
        return S;
    add_orphan(S, *rest);
    hp_err_set(err, HP_ESITE, "site '%s' does not answer; its job %s is canceled if it answers "
               "again during this run", S->name, *rest);
    return NULL;
}

static int multi_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct multi *M = impl;
    const char *rest;
    struct msite *S = job_site(M, id, &rest, err);
    if (!S)
        return -1;
    if (!S->ad->cancel)
        return hp_err_set(err, HP_ESITE, "adapter '%s' cannot cancel", S->ad->name);
    return S->ad->cancel(S->impl, rest, err);
}

static int multi_wait(void *impl, double timeout)
{
    struct multi *M = impl;
    struct msite *busy = NULL;
    for (size_t k = 0; k < M->n; k++)
        if (M->s[k].impl && !M->s[k].down && (!busy || M->s[k].inflight > busy->inflight))
            busy = &M->s[k];
    if (busy && busy->ad->wait)
        return busy->ad->wait(busy->impl, timeout);
    if (timeout > 0) {
        struct timespec ts = { (time_t)timeout,
                               (long)((timeout - (double)(time_t)timeout) * 1e9) };
        nanosleep(&ts, NULL);
    }
    return 0;
}

static long multi_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct multi *M = impl;
    double now = hp_now();
    long best = 0;
    int any = 0;
    for (size_t k = 0; k < M->n; k++) {
        struct msite *S = &M->s[k];
        if (!S->impl || !usable(S, now))
            continue;
        any = 1;
        if (!S->ad->capacity)
            return -1;
        long c = S->ad->capacity(S->impl, spec);
        if (c < 0)
            return -1;
        if (c > best)
            best = c;
    }
    return any ? best : -1;   /* none usable now: submit says "not now" */
}

static int multi_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                       struct hp_err *err)
{
    struct multi *M = impl;
    const char *rest;
    struct msite *S = job_site(M, job_id, &rest, err);
    if (!S)
        return -1;
    struct hp_jobspec sp;
    struct hp_spec_store store;
    long i = site_spec(M, S, spec, &sp, &store, err);
    if (i < 0)
        return -1;
    int rc = S->ad->adopt ? S->ad->adopt(S->impl, &sp, rest, err) : 0;
    hp_spec_store_release(&store);
    if (rc == 0) {
        M->where[i] = (unsigned)(S - M->s) + 1;
        S->inflight++;
    }
    return rc;
}

static int multi_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                         struct hp_err *err)
{
    struct multi *M = impl;
    (void)plan;
    free(M->local_dir);
    M->local_dir = hp_xstrdup(local_dir);
    size_t ok = 0;
    struct hp_err first;
    hp_err_init(&first);
    for (size_t k = 0; k < M->n; k++) {
        struct msite *S = &M->s[k];
        struct hp_err e;
        hp_err_init(&e);
        if (!S->impl)
            continue;
        if (site_open(M, S, &e) == 0) {
            ok++;
            continue;
        }
        if (!first.code)
            hp_err_set(&first, e.code, "site '%s': %s", S->name, e.msg);
        site_close(S);
        left_out(M, S, &e, "prepared");
    }
    if (!ok) {
        *err = first;
        if (!err->code)
            hp_err_set(err, HP_ESITE, "none of the sites can be used");
        return -1;
    }
    return 0;
}

static int multi_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                         const struct hp_jobstate *js, struct hp_err *err)
{
    struct multi *M = impl;
    unsigned w = i < M->wf->ninst ? M->where[i] : 0;
    if (!w || js->state == HP_JOB_UNKNOWN)
        return 0;
    struct msite *S = &M->s[w - 1];
    if (!S->ad->collect)
        return 0;
    if (S->down || !S->impl)
        return hp_err_set(err, HP_ESITE, "site '%s' stopped answering; the job's files are "
                          "out of reach", S->name), 1;
    struct hp_jobspec sp;
    struct hp_spec_store store;
    if (site_spec(M, S, spec, &sp, &store, err) < 0)
        return -1;
    struct hp_err cerr;
    hp_err_init(&cerr);
    int rc = S->ad->collect(S->impl, i, &sp, js, &cerr);
    hp_spec_store_release(&store);
    if (rc == 0)
        return 0;
    /* not a sign of the site's health by itself (a local directory may be
     * in the way): status() finds out whether the site still answers */
    hp_err_set(err, cerr.code ? cerr.code : HP_ESITE, "site '%s': %s", S->name, cerr.msg);
    /* files out of reach for good: the attempt is lost, run it elsewhere */
    return rc > 0 || S->down ? 1 : -1;
}

const struct hp_adapter_ops hp_adapter_multi = {
    .name = "multi",
    .render = multi_render,
    .submit = multi_submit,
    .status = multi_status,
    .cancel = multi_cancel,
    .wait = multi_wait,
    .capacity = multi_capacity,
    .adopt = multi_adopt,
    .prepare = multi_prepare,
    .collect = multi_collect,
};
