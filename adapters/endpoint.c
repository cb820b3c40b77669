/* endpoint.c - the endpoint adapter: function tasks become calls of an
 * endpoint's functions (through the endpoint's site connection, see
 * sites/endpoint-ref.h), every other job goes to the site's own adapter.
 *
 * A call is the endpoint's submit (job id "endpoint:SITE:NAME:TASK"); its
 * status is the endpoint's task state; when it is done its output is
 * written here, atomically, to the task's output file. Inputs are read here
 * at submission. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "adapter.h"
#include "conn.h"
#include "endpoint-ref.h"
#include "hpcport-client.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define PREFIX "endpoint:"
#define INPUT_MAX ((size_t)1 << 30)

struct ep_conn {                 /* one endpoint this run calls */
    char *site_name, *name;      /* name as asked (NULL: the only one) */
    struct hp_site *site;        /* owned, or NULL when it is the run's site */
    struct hp_conn *conn;
    struct hp_epref ep;
    struct hp_client *cl;
};

struct fn_job {                  /* a call in flight */
    char *id;
    char *output;                /* absolute path here, or NULL */
};

struct mux {
    const struct hp_site *site;
    const struct hp_adapter_ops *base;
    void *bimpl;
    struct ep_conn *eps;
    size_t neps, aeps;
    struct fn_job *jobs;
    size_t njobs, ajobs;
};

static int is_fn(const char *id)
{
    return hp_starts_with(id, PREFIX);
}

static const struct hp_adapter_ops *base_ops(const struct hp_site *site, struct hp_err *err)
{
    return hp_adapter_for_site(site, err);
}

/* ---------------------------------------------------------------- endpoints */

static void ep_conn_release(struct ep_conn *c)
{
    hp_client_close(c->cl);
    hp_epref_release(&c->ep);
    hp_conn_free(c->conn);
    hp_site_free(c->site);
    free(c->site_name);
    free(c->name);
}

/* The endpoint name on site_name (NULL: the run's site), connected. */
static struct ep_conn *endpoint(struct mux *M, const char *site_name, const char *name,
                                struct hp_err *err)
{
    if (!site_name)
        site_name = M->site->name;
    for (size_t i = 0; i < M->neps; i++) {
        struct ep_conn *c = &M->eps[i];
        if (!strcmp(c->site_name, site_name) &&
            ((!name && !c->name) || (name && c->name && !strcmp(c->name, name))))
            return c;
    }
    /* the clients point into eps: it is allocated once (mux_open), never moved */
    if (M->neps == M->aeps) {
        hp_err_set(err, HP_ESITE, "a run may call at most %zu endpoints", M->aeps);
        return NULL;
    }
    struct ep_conn c = { .site_name = hp_xstrdup(site_name),
                         .name = name ? hp_xstrdup(name) : NULL };
    const struct hp_site *s = M->site;
    if (strcmp(site_name, M->site->name)) {
        struct hp_site_opts so = { 0 };
        if (!(s = c.site = hp_site_load(site_name, &so, err)))
            goto fail;
    }
    if (hp_epref_load(s->name, name, &c.ep, err) < 0 || !(c.conn = hp_conn_open(s, err)))
        goto fail;
    M->eps[M->neps] = c;
    struct ep_conn *pc = &M->eps[M->neps];
    /* the client keeps a pointer to the record: made at its final address */
    if (!(pc->cl = hp_epref_client(pc->conn, &pc->ep, 0, err))) {
        ep_conn_release(pc);
        return NULL;
    }
    M->neps++;
    return pc;
fail:
    ep_conn_release(&c);
    return NULL;
}

/* The endpoint of a job id, by its site and name. */
static struct ep_conn *endpoint_of(struct mux *M, const char *id, const char **task,
                                   struct hp_err *err)
{
    const char *s = id + strlen(PREFIX), *a = strchr(s, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b)
        return hp_err_set(err, HP_EINTERNAL, "malformed endpoint job id '%s'", id), NULL;
    char *site = hp_xstrndup(s, (size_t)(a - s)), *name = hp_xstrndup(a + 1, (size_t)(b - a - 1));
    struct ep_conn *c = endpoint(M, site, name, err);
    free(site);
    free(name);
    *task = b + 1;
    return c;
}

static void track(struct mux *M, const char *id, const char *output)
{
    for (size_t i = 0; i < M->njobs; i++)
        if (!strcmp(M->jobs[i].id, id))
            return;
    HP_ALLOC_GROW(M->jobs, M->njobs + 1, M->ajobs);
    M->jobs[M->njobs].id = hp_xstrdup(id);
    M->jobs[M->njobs++].output = output ? hp_xstrdup(output) : NULL;
}

static struct fn_job *find_job(struct mux *M, const char *id)
{
    for (size_t i = 0; i < M->njobs; i++)
        if (!strcmp(M->jobs[i].id, id))
            return &M->jobs[i];
    return NULL;
}

static void untrack(struct mux *M, const char *id)
{
    struct fn_job *j = find_job(M, id);
    if (!j)
        return;
    free(j->id);
    free(j->output);
    *j = M->jobs[--M->njobs];
}

/* ---------------------------------------------------------------- ops */

static void *mux_open(const struct hp_site *site, struct hp_err *err)
{
    const struct hp_adapter_ops *base = base_ops(site, err);
    if (!base)
        return NULL;
    struct mux *M = hp_xcalloc(1, sizeof(*M));
    M->site = site;
    M->base = base;
    if (base->open && !(M->bimpl = base->open(site, err))) {
        free(M);
        return NULL;
    }
    M->aeps = 16;
    M->eps = hp_xcalloc(M->aeps, sizeof(*M->eps));
    return M;
}

static void mux_close(void *impl)
{
    struct mux *M = impl;
    if (!M)
        return;
    for (size_t i = 0; i < M->neps; i++)
        ep_conn_release(&M->eps[i]);
    free(M->eps);
    for (size_t i = 0; i < M->njobs; i++) {
        free(M->jobs[i].id);
        free(M->jobs[i].output);
    }
    free(M->jobs);
    if (M->bimpl && M->base->close)
        M->base->close(M->bimpl);
    free(M);
}

static int mux_render(const struct hp_jobspec *spec, const struct hp_site *site,
                      struct hp_buf *out, struct hp_err *err)
{
    if (spec->function) {
        hp_buf_addf(out, "# function task: a call of '%s' on endpoint %s of site '%s', from "
                    "this machine\n# input:  %s\n# output: %s\n", spec->function,
                    spec->endpoint_name ? spec->endpoint_name : "(its only one)",
                    spec->endpoint_site ? spec->endpoint_site : site->name,
                    spec->fn_input ? spec->fn_input : "(empty)",
                    spec->fn_output ? spec->fn_output : "(dropped)");
        return 0;
    }
    const struct hp_adapter_ops *base = base_ops(site, err);
    return base ? base->render(spec, site, out, err) : -1;
}

static int call_submit(struct mux *M, const struct hp_jobspec *spec, char **job_id,
                       struct hp_err *err)
{
    struct ep_conn *c = endpoint(M, spec->endpoint_site, spec->endpoint_name, err);
    if (!c)
        return -1;
    char *in = NULL;
    size_t inlen = 0;
    if (spec->fn_input && hp_read_file(spec->fn_input, INPUT_MAX, &in, &inlen) < 0)
        return hp_err_errno(err, "cannot read the input %s of %s", spec->fn_input,
                            spec->instance);
    struct hp_client_error ce;
    char *task = NULL;
    int rc = hp_client_submit(c->cl, spec->function, in, inlen, &task, &ce);
    free(in);
    if (rc < 0) {
        hp_epref_client_err(&c->ep, &ce, err);
        /* an endpoint that cannot be reached or is full: try again later */
        return ce.code == HP_CLIENT_ETRANSPORT || ce.code == HP_CLIENT_EQUEUEFULL ||
                       ce.code == HP_CLIENT_EUNAVAILABLE ? 1 : -1;
    }
    *job_id = hp_xasprintf(PREFIX "%s:%s:%s", c->ep.site, c->ep.name, task);
    free(task);
    track(M, *job_id, spec->fn_output);
    return 0;
}

static int mux_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                      struct hp_err *err)
{
    struct mux *M = impl;
    if (spec->function)
        return call_submit(M, spec, job_id, err);
    if (!M->base->submit)
        return hp_err_set(err, HP_ESITE, "adapter '%s' cannot submit", M->base->name);
    return M->base->submit(M->bimpl, spec, job_id, err);
}

/* The state of one call; its output written when it is done. */
static int call_status(struct mux *M, const char *id, struct hp_jobstate *js, struct hp_err *err)
{
    const char *task;
    struct ep_conn *c = endpoint_of(M, id, &task, err);
    if (!c)
        return -1;
    void *out = NULL;
    size_t len = 0;
    struct hp_client_error ce;
    int rc = hp_client_task_wait(c->cl, task, 0, &out, &len, &ce);
    memset(js, 0, sizeof(*js));
    if (rc == 1) {
        js->state = HP_JOB_ACTIVE;
        return 0;
    }
    if (rc < 0) {
        if (ce.code == HP_CLIENT_ETRANSPORT || ce.code == HP_CLIENT_EUNAUTHORIZED) {
            hp_epref_client_err(&c->ep, &ce, err);
            return -1;       /* ask again later */
        }
        js->state = ce.code == HP_CLIENT_ECANCELED ? HP_JOB_CANCELED
                    : ce.code == HP_CLIENT_ENOTFOUND ? HP_JOB_UNKNOWN : HP_JOB_FAILED;
        js->exit_code = 1;
        js->timed_out = ce.code == HP_CLIENT_ETIMEOUT;
        snprintf(js->reason, sizeof(js->reason), "%s: %.200s", hp_client_code_name(ce.code),
                 ce.message);
        untrack(M, id);
        return 0;
    }
    struct fn_job *j = find_job(M, id);
    struct hp_err werr;
    hp_err_init(&werr);
    if (j && j->output) {
        char *dir = hp_dirname(j->output);
        if (hp_mkdir_p(dir, 0755) < 0 ||
            hp_epref_write_file(j->output, out, len, 0644, &werr) < 0) {
            js->state = HP_JOB_FAILED;
            js->exit_code = 1;
            snprintf(js->reason, sizeof(js->reason), "the output could not be written: %.200s",
                     werr.code ? werr.msg : j->output);
        }
        free(dir);
    }
    if (js->state != HP_JOB_FAILED)
        js->state = HP_JOB_COMPLETED;
    free(out);
    untrack(M, id);
    return 0;
}

static int mux_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                      struct hp_err *err)
{
    struct mux *M = impl;
    const char **bids = hp_xmalloc((n ? n : 1) * sizeof(*bids));
    size_t *where = hp_xmalloc((n ? n : 1) * sizeof(*where)), nb = 0;
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        if (is_fn(ids[i])) {
            ret = call_status(M, ids[i], &out[i], err);
        } else {
            where[nb] = i;
            bids[nb++] = ids[i];
        }
    }
    if (ret == 0 && nb) {
        struct hp_jobstate *bjs = hp_xcalloc(nb, sizeof(*bjs));
        if (!M->base->status)
            ret = hp_err_set(err, HP_ESITE, "adapter '%s' cannot tell job states",
                             M->base->name);
        else
            ret = M->base->status(M->bimpl, bids, nb, bjs, err);
        for (size_t k = 0; ret == 0 && k < nb; k++)
            out[where[k]] = bjs[k];
        free(bjs);
    }
    free(bids);
    free(where);
    return ret;
}

static int mux_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct mux *M = impl;
    if (!is_fn(id))
        return M->base->cancel ? M->base->cancel(M->bimpl, id, err)
                               : hp_err_set(err, HP_ESITE, "adapter '%s' cannot cancel",
                                            M->base->name);
    const char *task;
    struct ep_conn *c = endpoint_of(M, id, &task, err);
    struct hp_client_error ce;
    if (!c)
        return -1;
    if (hp_client_task_cancel(c->cl, task, &ce) < 0 && ce.code != HP_CLIENT_ENOTFOUND)
        return hp_epref_client_err(&c->ep, &ce, err);
    return 0;
}

static int mux_wait(void *impl, double timeout)
{
    struct mux *M = impl;
    if (M->njobs) {     /* calls in flight: look again soon */
        usleep((useconds_t)((timeout < 0.05 ? timeout : 0.05) * 1e6));
        return 0;
    }
    if (M->base->wait)
        return M->base->wait(M->bimpl, timeout);
    usleep((useconds_t)(timeout * 1e6));
    return 0;
}

static long mux_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct mux *M = impl;
    if (spec->function || !M->base->capacity)
        return -1;
    return M->base->capacity(M->bimpl, spec);
}

static int mux_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                     struct hp_err *err)
{
    struct mux *M = impl;
    if (is_fn(job_id)) {
        track(M, job_id, spec->fn_output);
        return 0;
    }
    return M->base->adopt ? M->base->adopt(M->bimpl, spec, job_id, err) : 0;
}

static int mux_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                       struct hp_err *err)
{
    struct mux *M = impl;
    return M->base->prepare ? M->base->prepare(M->bimpl, plan, local_dir, err) : 0;
}

static int mux_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                       const struct hp_jobstate *js, struct hp_err *err)
{
    struct mux *M = impl;
    if (spec->function || !M->base->collect)
        return 0;
    return M->base->collect(M->bimpl, i, spec, js, err);
}

static int mux_check(const struct hp_site *site, const struct hp_check_opts *opts,
                     struct hp_check_report *rep, struct hp_err *err)
{
    const struct hp_adapter_ops *base = base_ops(site, err);
    if (!base)
        return -1;
    if (!base->check)
        return hp_err_set(err, HP_ESITE, "adapter '%s' has no live checks", base->name);
    return base->check(site, opts, rep, err);
}

const struct hp_adapter_ops hp_adapter_endpoint = {
    .name = "endpoint",
    .render = mux_render,
    .submit = mux_submit,
    .status = mux_status,
    .cancel = mux_cancel,
    .wait = mux_wait,
    .capacity = mux_capacity,
    .open = mux_open,
    .close = mux_close,
    .adopt = mux_adopt,
    .prepare = mux_prepare,
    .collect = mux_collect,
    .check = mux_check,
};
