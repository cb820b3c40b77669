/* pilot.c - the pilot adapter: instances placed in pilot jobs (plan.h,
 * struct hp_pilot_cfg) become tasks of the campaign's agent on the site's
 * login node; every other job goes to the adapter below (the endpoint
 * adapter, which hands plain jobs to the site's scheduler).
 *
 * The agent (remote/agent.h) lives in <campaign dir>/agent on the site and
 * is started over the site's connection with `hpcport agent --daemon
 * --ensure`: one per campaign (its lock), kept running when this machine
 * goes away. It submits the pilot jobs itself, through the site's adapter
 * with the local transport on the login node, as the pilot configuration
 * written here says (agent.h). A task's name at the agent is the attempt's
 * token, so adding it again (a run killed before it knew the task was
 * added) changes nothing, and its job id here is "pilot:CAMPAIGN:TOKEN"
 * (`hpcport cancel` finds the agent by the campaign).
 *
 * Tasks are added in batches (one command for up to BATCH tasks) and their
 * states asked in one command per poll. An agent found stopped while tasks
 * are left (killed, the login node rebooted) is started again; it loses
 * nothing (its task store). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "adapter.h"
#include "conn.h"
#include "plan.h"
#include "quote.h"
#include "script.h"
#include "site.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define PREFIX "pilot:"
#define BATCH 2000
#define SITE_FILE "hpcport-agent-site.yaml"

struct pmux {
    const struct hp_site *site;
    const struct hp_adapter_ops *base;
    void *bimpl;
    struct hp_conn *conn;
    struct hp_stage *stage;
    const struct hp_plan *plan;
    char *hpcport;            /* the program on the site */
    char *adir;               /* the agent's directory there (expanded) */
    struct hp_buf pending;    /* JSON lines not yet added */
    size_t npending;
    size_t inflight;          /* pilot tasks submitted and not ended */
    double next_ensure;
};

static int is_pilot(const char *id)
{
    return hp_starts_with(id, PREFIX);
}

static double timeout_of(const struct pmux *M)
{
    return hp_site_query_timeout(M->site);
}

/* Run argv on the site; its stdout into out (may be NULL). Non-zero exit:
 * HP_ESITE with the first line of stderr. */
static int run(struct pmux *M, const char *what, const char *const *argv, const char *in,
               size_t inlen, struct hp_buf *out, int idempotent, struct hp_err *err)
{
    struct hp_buf eo = HP_BUF_INIT;
    int status = 0;
    int rc = hp_conn_exec_ex(M->conn, argv, in, inlen, out, &eo, &status, timeout_of(M),
                             idempotent ? HP_EXEC_IDEMPOTENT : 0, err);
    if (rc == 0 && status != 0) {
        char *l = hp_first_line(eo.buf);
        if (status == 127)
            hp_err_set(err, HP_ESITE, "site '%s': '%s' is not there (%s); run 'hpcport site "
                       "deploy %s' and set remote.hpcport as it says", M->site->name,
                       M->hpcport, l, M->site->name);
        else
            hp_err_set(err, HP_ESITE, "site '%s': %s: %s", M->site->name, what,
                       l[0] ? l : "failed");
        free(l);
        rc = -1;
    }
    hp_buf_release(&eo);
    return rc;
}

/* The program hpcport on site: this very one on the local site, unless
 * the profile names one (new string). */
static char *site_hpcport(const struct hp_site *site)
{
    char *self = !site->login_host && !strcmp(site->remote_hpcport, "hpcport") ? hp_self_exe()
                                                                                : NULL;
    return self ? self : hp_xstrdup(site->remote_hpcport);
}

/* The agent's directory of campaign on the site, expanded (new string). */
static char *agent_dir(struct hp_stage *stage, const struct hp_site *site, const char *campaign,
                       const char *state_dir, struct hp_err *err)
{
    const char *env = getenv("HPCPORT_STATE_DIR");
    if (!state_dir && env && *env)     /* as the command line resolves it */
        state_dir = env;
    char *cdir = hp_plan_site_dir(site, campaign, state_dir);
    char *dir = hp_path_join(cdir, "agent");
    char *x = hp_stage_expand(stage, dir, err);
    free(cdir);
    free(dir);
    return x;
}

/* The token of job id, and the campaign's agent directory in M->adir. */
static const char *job_token(struct pmux *M, const char *id, struct hp_err *err)
{
    const char *c = id + strlen(PREFIX), *t = strrchr(c, ':');
    if (!t || t == c) {
        hp_err_set(err, HP_EINTERNAL, "malformed pilot job id '%s'", id);
        return NULL;
    }
    if (!M->adir) {
        char *campaign = hp_xstrndup(c, (size_t)(t - c));
        M->adir = agent_dir(M->stage, M->site, campaign, NULL, err);
        free(campaign);
        if (!M->adir)
            return NULL;
    }
    return t + 1;
}

/* ---------------------------------------------------------------- agent */

/* The profile the agent submits with: this site's, resolved, without its
 * login section (the agent runs on the login node) and with the Slurm
 * command line instead of slurmrestd. */
static char *agent_site_text(const struct hp_site *s)
{
    json_t *r = json_deep_copy(s->root);
    json_object_del(r, "login");
    json_object_del(r, "extends");
    json_object_del(r, "oauth");
    json_object_set_new(r, "name", json_string("hpcport-agent-site"));
    json_t *sch = json_object_get(r, "scheduler");
    if (json_is_object(sch) && !strcmp(s->scheduler, "slurmrest")) {
        json_object_set_new(sch, "type", json_string("slurm"));
        json_object_del(sch, "rest");
    }
    char *text = json_dumps(r, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(r);
    return text;
}

static char *pilot_config_text(struct pmux *M)
{
    const struct hp_pilot_cfg *c = &M->plan->pilots;
    char *site = hp_path_join(M->adir, SITE_FILE);
    json_t *j = json_pack("{s:s,s:s,s:i,s:i,s:i,s:I,s:I,s:i,s:i,s:i}", "site", site,
                          "campaign", M->plan->campaign, "cores", c->cores, "gpus", c->gpus,
                          "nodes", c->nodes, "walltime", (json_int_t)c->walltime, "idle",
                          (json_int_t)c->idle, "max_pilots", c->max_pilots, "max_queued",
                          c->max_queued, "tasks_per_pilot", c->tasks_per_pilot);
    if (c->partition)
        json_object_set_new(j, "partition", json_string(c->partition));
    char *text = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    free(site);
    return text;
}

/* Write text to path on the site, mode 0600, atomically. */
static int put_text(struct pmux *M, const char *path, const char *text, struct hp_err *err)
{
    const char *argv[] = { "sh", "-c", "umask 077 && cat > \"$1.tmp\" && mv -f \"$1.tmp\" \"$1\"",
                           "sh", path, NULL };
    return run(M, "writing a file", argv, text, strlen(text), NULL, 0, err);
}

/* Start the agent unless it runs. */
static int ensure_agent(struct pmux *M, struct hp_err *err)
{
    const struct hp_pilot_cfg *c = &M->plan->pilots;
    char *spool = c->spool ? (c->spool_dir ? hp_stage_expand(M->stage, c->spool_dir, err)
                                           : hp_path_join(M->adir, "spool"))
                           : NULL;
    if (c->spool && !spool)
        return -1;
    char *cfg = hp_path_join(M->adir, "pilots.json");
    const char *hb = getenv("HPCPORT_AGENT_HEARTBEAT_TIMEOUT");
    /* the address pilots reach: pilots.listen, else the login node's
     * host name (the internal network), 127.0.0.1 on the local site */
    const char *listen = c->listen ? c->listen : M->site->login_host ? "" : "127.0.0.1";
    const char *argv[] = {
        "sh", "-c",
        "h=$5; [ -n \"$h\" ] || h=$(hostname); "
        "if [ -n \"$4\" ]; then set -- \"$1\" \"$2\" \"$3\" --spool \"$4\" \"$6\"; "
        "else set -- \"$1\" \"$2\" \"$3\" --listen \"$h:0\" \"$6\"; fi; "
        "exec \"$1\" agent --dir \"$2\" --pilots \"$3\" \"$4\" \"$5\" --heartbeat-timeout \"$6\" "
        "--idle-exit 600 --daemon --ensure",
        "sh", M->hpcport, M->adir, cfg, spool ? spool : "", listen, hb && *hb ? hb : "30", NULL
    };
    struct hp_buf out = HP_BUF_INIT;
    int rc = run(M, "hpcport agent", argv, NULL, 0, &out, 0, err);
    if (rc < 0)
        hp_err_prefix(err, "starting the campaign's agent");
    hp_buf_release(&out);
    free(cfg);
    free(spool);
    return rc;
}

/* Hand the pending tasks to the agent. */
static int flush(struct pmux *M, struct hp_err *err)
{
    if (!M->npending)
        return 0;
    const char *argv[] = { M->hpcport, "agent", "add", "--dir", M->adir, "--ignore-existing",
                           NULL };
    if (run(M, "hpcport agent add", argv, M->pending.buf, M->pending.len, NULL, 0, err) < 0) {
        hp_err_prefix(err, "handing tasks to the campaign's agent");
        return -1;
    }
    hp_buf_reset(&M->pending);
    M->npending = 0;
    return 0;
}

/* The agent's task of spec, as a JSON line on pending. */
static int add_task(struct pmux *M, const struct hp_jobspec *spec, struct hp_err *err)
{
    struct hp_jobspec sp = *spec;
    char *wd = NULL, *so = NULL, *se = NULL;
    int ret = -1;
    if ((spec->workdir && !(sp.workdir = wd = hp_stage_expand(M->stage, spec->workdir, err))) ||
        !(sp.stdout_path = so = hp_stage_expand(M->stage, spec->stdout_path, err)) ||
        !(sp.stderr_path = se = hp_stage_expand(M->stage, spec->stderr_path, err)))
        goto out;
    struct hp_buf cmd = HP_BUF_INIT;
    hp_script_command(&sp, M->site, spec->res.nodes > 1, &cmd);
    json_t *env = json_object();
    for (size_t k = 0; k < spec->nenv; k++)
        json_object_set_new(env, spec->env[k].key, json_string(spec->env[k].value));
    int cores = (spec->res.ntasks > 0 ? spec->res.ntasks : 1) *
                (spec->res.cores > 0 ? spec->res.cores : 1);
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    json_t *t = json_pack("{s:s,s:s,s:o,s:s,s:s,s:i,s:i,s:i,s:I}", "id", spec->token,
                          "sh", cmd.buf, "env", env, "stdout", so, "stderr", se, "cores",
                          (cores + nodes - 1) / nodes, "gpus", spec->res.gpus, "nodes", nodes,
                          "walltime", (json_int_t)spec->res.walltime);
    if (sp.workdir)
        json_object_set_new(t, "cwd", json_string(sp.workdir));
    char *line = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    hp_buf_release(&cmd);
    if (!line) {
        hp_err_set(err, HP_EINPUT, "instance %s: a value is not valid UTF-8", spec->instance);
        goto out;
    }
    hp_buf_adds(&M->pending, line);
    hp_buf_addch(&M->pending, '\n');
    free(line);
    M->npending++;
    ret = 0;
out:
    free(wd);
    free(so);
    free(se);
    return ret;
}

/* ---------------------------------------------------------------- ops */

static void *pm_open(const struct hp_site *site, struct hp_err *err)
{
    const struct hp_adapter_ops *base = &hp_adapter_endpoint;
    struct pmux *M = hp_xcalloc(1, sizeof(*M));
    M->site = site;
    M->base = base;
    hp_buf_init(&M->pending, 0);
    if (!(M->bimpl = base->open(site, err)) || !(M->conn = hp_conn_open(site, err))) {
        if (M->bimpl)
            base->close(M->bimpl);
        hp_buf_release(&M->pending);
        free(M);
        return NULL;
    }
    M->stage = hp_stage_new(M->conn, site);
    M->hpcport = site_hpcport(site);
    return M;
}

static void pm_close(void *impl)
{
    struct pmux *M = impl;
    if (!M)
        return;
    struct hp_err err;
    hp_err_init(&err);
    if (M->npending)
        flush(M, &err);    /* best effort: the next run adds them again (adopt) */
    if (M->plan && M->adir && !M->inflight && !M->npending) {
        /* nothing of this run is left at the agent: it need not wait for more
         * (a later run starts it again) */
        const char *argv[] = { M->hpcport, "agent", "stop", "--dir", M->adir, NULL };
        hp_err_init(&err);
        run(M, "hpcport agent stop", argv, NULL, 0, NULL, 0, &err);
    }
    M->base->close(M->bimpl);
    hp_stage_free(M->stage);
    hp_conn_free(M->conn);
    hp_buf_release(&M->pending);
    free(M->hpcport);
    free(M->adir);
    free(M);
}

static int pm_render(const struct hp_jobspec *spec, const struct hp_site *site,
                     struct hp_buf *out, struct hp_err *err)
{
    if (!spec->pilot)
        return hp_adapter_endpoint.render(spec, site, out, err);
    hp_buf_addf(out, "# pilot task: handed to the campaign's agent on the login node of '%s',\n"
                "# run inside a pilot job of the site's scheduler\n", site->name);
    hp_script_comment(spec, out);
    hp_buf_adds(out, "cd ");
    hp_sq_quote_path(out, spec->workdir ? spec->workdir : ".");
    hp_buf_adds(out, " && ");
    hp_script_command(spec, site, spec->res.nodes > 1, out);
    hp_buf_addch(out, '\n');
    return 0;
}

static int pm_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                      struct hp_err *err)
{
    struct pmux *M = impl;
    M->plan = plan;
    if (M->base->prepare && M->base->prepare(M->bimpl, plan, local_dir, err) < 0)
        return -1;
    char *dir = hp_path_join(plan->dir, "agent");
    free(M->adir);
    M->adir = hp_stage_expand(M->stage, dir, err);
    free(dir);
    if (!M->adir)
        return -1;
    char *logs = hp_plan_logdir(plan->dir), *elogs = hp_stage_expand(M->stage, logs, err);
    free(logs);
    if (!elogs)
        return -1;
    const char *mk[] = { "mkdir", "-p", "-m", "0700", "--", M->adir, elogs, NULL };
    int rc = run(M, "mkdir", mk, NULL, 0, NULL, 1, err);
    free(elogs);
    if (rc < 0)
        return -1;
    char *site = agent_site_text(M->site), *cfg = pilot_config_text(M);
    char *sp = hp_path_join(M->adir, SITE_FILE), *cp = hp_path_join(M->adir, "pilots.json");
    rc = put_text(M, sp, site, err) < 0 || put_text(M, cp, cfg, err) < 0 ? -1 : 0;
    free(site);
    free(cfg);
    free(sp);
    free(cp);
    return rc < 0 ? -1 : ensure_agent(M, err);
}

static int pm_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                     struct hp_err *err)
{
    struct pmux *M = impl;
    if (!spec->pilot)
        return M->base->submit(M->bimpl, spec, job_id, err);
    if (add_task(M, spec, err) < 0)
        return -1;
    if (M->npending >= BATCH && flush(M, err) < 0)
        return 1;      /* kept: added at the next poll */
    *job_id = hp_xasprintf(PREFIX "%s:%s", spec->campaign, spec->token);
    M->inflight++;
    return 0;
}

static int pm_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                    struct hp_err *err)
{
    struct pmux *M = impl;
    if (!is_pilot(job_id))
        return M->base->adopt ? M->base->adopt(M->bimpl, spec, job_id, err) : 0;
    /* the run that submitted it may have died before handing it over */
    M->inflight++;
    return add_task(M, spec, err);
}

/* States of the pilot tasks ids[0..n) (without the prefix). */
static int pilot_status(struct pmux *M, const char *const *ids, size_t n,
                        struct hp_jobstate *out, struct hp_err *err)
{
    if (flush(M, err) < 0)
        return -1;
    struct hp_buf in = HP_BUF_INIT, res = HP_BUF_INIT;
    const char **toks = hp_xcalloc(n ? n : 1, sizeof(*toks));
    for (size_t i = 0; i < n; i++) {
        if (!(toks[i] = job_token(M, ids[i], err))) {
            free(toks);
            hp_buf_release(&in);
            return -1;
        }
        hp_buf_adds(&in, toks[i]);
        hp_buf_addch(&in, '\n');
    }
    const char *argv[] = { M->hpcport, "agent", "status", "--dir", M->adir, "--json", "--names",
                           NULL };
    int rc = run(M, "hpcport agent status", argv, in.buf, in.len, &res, 1, err);
    hp_buf_release(&in);
    if (rc < 0) {
        free(toks);
        hp_buf_release(&res);
        hp_err_prefix(err, "asking the campaign's agent");
        return -1;
    }
    json_error_t je;
    json_t *st = json_loads(res.buf, 0, &je);
    hp_buf_release(&res);
    if (!json_is_object(st)) {
        free(toks);
        json_decref(st);
        return hp_err_set(err, HP_ESITE, "site '%s': the agent's status is not JSON (%s)",
                          M->site->name, je.text);
    }
    json_t *byname = json_object(), *t;
    size_t k;
    json_array_foreach(json_object_get(st, "tasks"), k, t) {
        const char *id = json_string_value(json_object_get(t, "id"));
        if (id)
            json_object_set(byname, id, t);
    }
    const char *perr = json_string_value(json_object_get(json_object_get(st, "pilots"),
                                                         "error"));
    long left = (long)(json_integer_value(json_object_get(st, "queued")) +
                       json_integer_value(json_object_get(st, "leased")));
    for (size_t i = 0; i < n; i++) {
        struct hp_jobstate *js = &out[i];
        memset(js, 0, sizeof(*js));
        t = json_object_get(byname, toks[i]);
        const char *s = json_string_value(json_object_get(t, "state"));
        if (!s) {
            js->state = HP_JOB_UNKNOWN;
            snprintf(js->reason, sizeof(js->reason), "the campaign's agent does not know it");
        } else if (!strcmp(s, "queued") && perr) {
            js->state = HP_JOB_FAILED;
            js->exit_code = 1;
            snprintf(js->reason, sizeof(js->reason), "no pilot: %.220s", perr);
        } else if (!strcmp(s, "queued")) {
            js->state = HP_JOB_QUEUED;
        } else if (!strcmp(s, "leased")) {
            js->state = HP_JOB_ACTIVE;
            snprintf(js->reason, sizeof(js->reason), "in pilot %.200s",
                     json_string_value(json_object_get(t, "pilot")) ?
                     json_string_value(json_object_get(t, "pilot")) : "?");
        } else {
            js->exit_code = (int)json_integer_value(json_object_get(t, "exit"));
            js->signal = (int)json_integer_value(json_object_get(t, "signal"));
            js->state = !strcmp(s, "done") ? HP_JOB_COMPLETED : HP_JOB_FAILED;
            if (js->state == HP_JOB_FAILED)
                snprintf(js->reason, sizeof(js->reason), js->signal ? "signal %d"
                         : "exit code %d", js->signal ? js->signal : js->exit_code);
        }
        if (js->state >= HP_JOB_COMPLETED && M->inflight)
            M->inflight--;
    }
    /* an agent that stopped (killed, the login node rebooted) while tasks
     * are left is started again; its task store kept everything */
    if (!json_is_true(json_object_get(st, "running")) && left > 0 && hp_now() >= M->next_ensure) {
        M->next_ensure = hp_now() + 10;
        struct hp_err e2;
        hp_err_init(&e2);
        if (ensure_agent(M, &e2) < 0) {
            free(toks);
            json_decref(byname);
            json_decref(st);
            *err = e2;
            return -1;
        }
    }
    free(toks);
    json_decref(byname);
    json_decref(st);
    return 0;
}

static int pm_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                     struct hp_err *err)
{
    struct pmux *M = impl;
    const char **pids = hp_xmalloc((n ? n : 1) * sizeof(*pids));
    const char **bids = hp_xmalloc((n ? n : 1) * sizeof(*bids));
    size_t *pw = hp_xmalloc((n ? n : 1) * sizeof(*pw)), *bw = hp_xmalloc((n ? n : 1) *
                                                                           sizeof(*bw));
    size_t np = 0, nb = 0;
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_pilot(ids[i])) {
            pw[np] = i;
            pids[np++] = ids[i];
        } else {
            bw[nb] = i;
            bids[nb++] = ids[i];
        }
    }
    struct hp_jobstate *js = hp_xcalloc(n ? n : 1, sizeof(*js));
    if (np) {
        ret = pilot_status(M, pids, np, js, err);
        for (size_t k = 0; ret == 0 && k < np; k++)
            out[pw[k]] = js[k];
    }
    if (ret == 0 && nb) {
        ret = M->base->status(M->bimpl, bids, nb, js, err);
        for (size_t k = 0; ret == 0 && k < nb; k++)
            out[bw[k]] = js[k];
    }
    free(js);
    free(pids);
    free(bids);
    free(pw);
    free(bw);
    return ret;
}

static int pm_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct pmux *M = impl;
    if (!is_pilot(id))
        return M->base->cancel(M->bimpl, id, err);
    const char *tok = job_token(M, id, err);
    if (!tok)
        return -1;
    const char *argv[] = { M->hpcport, "agent", "cancel", "--dir", M->adir, NULL };
    char *line = hp_xasprintf("%s\n", tok);
    int rc = run(M, "hpcport agent cancel", argv, line, strlen(line), NULL, 1, err);
    free(line);
    return rc;
}

static int pm_wait(void *impl, double timeout)
{
    struct pmux *M = impl;
    if (M->inflight || M->npending) {   /* the agent is asked at every poll */
        usleep((useconds_t)((timeout < 1.0 ? timeout : 1.0) * 1e6));
        return 0;
    }
    return M->base->wait(M->bimpl, timeout);
}

static long pm_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct pmux *M = impl;
    if (spec->pilot)
        return -1;
    return M->base->capacity(M->bimpl, spec);
}

static int pm_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                      const struct hp_jobstate *js, struct hp_err *err)
{
    struct pmux *M = impl;
    return M->base->collect(M->bimpl, i, spec, js, err);
}

static int pm_check(const struct hp_site *site, const struct hp_check_opts *opts,
                    struct hp_check_report *rep, struct hp_err *err)
{
    return hp_adapter_endpoint.check(site, opts, rep, err);
}

int hp_pilot_agent_status(const struct hp_site *site, const char *campaign,
                          const char *state_dir, json_t **out, struct hp_err *err)
{
    *out = NULL;
    struct hp_conn *conn = hp_conn_open(site, err);
    if (!conn)
        return -1;
    struct hp_stage *stage = hp_stage_new(conn, site);
    struct pmux M = { .site = site, .conn = conn, .stage = stage,
                      .hpcport = site_hpcport(site) };
    int rc = -1;
    if ((M.adir = agent_dir(stage, site, campaign, state_dir, err))) {
        const char *argv[] = { M.hpcport, "agent", "status", "--dir", M.adir, "--json", NULL };
        struct hp_buf res = HP_BUF_INIT;
        if (run(&M, "hpcport agent status", argv, NULL, 0, &res, 1, err) == 0) {
            json_error_t je;
            if (!(*out = json_loads(res.buf, 0, &je)) || !json_is_object(*out)) {
                json_decref(*out);
                *out = NULL;
                hp_err_set(err, HP_ESITE, "site '%s': the agent's status is not JSON (%s)",
                           site->name, je.text);
            } else {
                rc = 0;
            }
        }
        hp_buf_release(&res);
    }
    free(M.adir);
    free(M.hpcport);
    hp_stage_free(stage);
    hp_conn_free(conn);
    return rc;
}

const struct hp_adapter_ops hp_adapter_pilot = {
    .name = "pilot",
    .render = pm_render,
    .submit = pm_submit,
    .status = pm_status,
    .cancel = pm_cancel,
    .wait = pm_wait,
    .capacity = pm_capacity,
    .open = pm_open,
    .close = pm_close,
    .adopt = pm_adopt,
    .prepare = pm_prepare,
    .collect = pm_collect,
    .check = pm_check,
};
