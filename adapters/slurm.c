/* slurm.c - the Slurm adapter: sbatch scripts, submitted, followed and
 * canceled through a connection (local when the site has no login host,
 * SSH otherwise), with the campaign's files staged through core/stage.h.
 *
 * Submission. submit() renders the script with the site's path variables
 * resolved ($SCRATCH: #SBATCH lines are not expanded) and hands it to
 * `sbatch --parsable` on its standard input: one round trip per job.
 *
 * Idempotency. Every attempt has a token; render puts it in the job name
 * ("<campaign>.<task>.<token>") and the comment. The name is what both
 * squeue and sacct always know (the comment is not kept in accounting
 * unless the site sets AccountingStoreFlags=job_comment). Before its first
 * submission an adapter lists the user's jobs once (squeue, and sacct for
 * the last 7 days) and remembers the tokens it finds: an attempt that an
 * earlier, killed `hpcport run` submitted without recording it is adopted,
 * not submitted again. A submission whose fate is unknown (the connection
 * dropped during sbatch, or sbatch timed out talking to slurmctld) is
 * reported as "not now" (submit returns 1) and its token looked up by name
 * before that attempt is submitted again.
 *
 * Status. The states of all tracked jobs come from one `squeue -j IDS` per
 * poll (batched, text: see slurm-int.h for why not --json on 22.05); jobs
 * squeue no longer knows, and canceled ones (for "by uid N"), from one
 * `sacct -j IDS`. Polls happen at most every `interval` seconds, 1 s after a
 * change and growing to 10 s while nothing changes; status() between polls
 * answers from the last one, so the engine may call it as often as it likes
 * (the followed jobs, the schedule and the tokens: jobtab.h).
 * From Slurm 23.02 on, --json is used, checked once per connection (squeue
 * must honour -j; sacct's exit codes must be plausible), else text.
 *
 * Capacity: with scheduler.max_queued_jobs set, no more than that many of
 * this campaign's jobs are queued or running at once.
 *
 * For tests: HPCPORT_TEST_KILL_AFTER_SBATCH=N makes the process SIGKILL
 * itself right after sbatch accepted its Nth job, before anyone recorded it:
 * the crash that the token lookup exists for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "conn.h"
#include "jobtab.h"
#include "plan.h"
#include "quote.h"
#include "script.h"
#include "site.h"
#include "slurm-int.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define SUBMIT_TIMEOUT 120.0
#define IDS_PER_QUERY 500
#define LOOKUP_WINDOW "now-7days"

/* ---------------------------------------------------------------- render */

/* #SBATCH lines are parsed by sbatch, not by a shell: values must stay on
 * one line; values with blanks are double-quoted (sbatch honours that). */
static void directive(struct hp_buf *out, const char *opt, const char *val)
{
    hp_buf_addf(out, "#SBATCH --%s=", opt);
    int blank = strpbrk(val, " \t") != NULL;
    if (blank)
        hp_buf_addch(out, '"');
    for (const char *p = val; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != '"')
            hp_buf_addch(out, *p);
    if (blank)
        hp_buf_addch(out, '"');
    hp_buf_addch(out, '\n');
}

/* --output/--error take filename patterns: '%' starts a replacement
 * symbol ("%j"), "%%" is a '%' -- unless the name holds a backslash, which
 * turns replacement off. Safe ids hold "%XX" escapes. */
static void path_directive(struct hp_buf *out, const char *opt, const char *path)
{
    struct hp_buf v = HP_BUF_INIT;
    int literal = strchr(path, '\\') != NULL;
    for (const char *p = path; *p; p++) {
        if (*p == '%' && !literal)
            hp_buf_addch(&v, '%');
        hp_buf_addch(&v, *p);
    }
    directive(out, opt, v.buf);
    hp_buf_release(&v);
}

const char *slurm_gpu_request(const struct hp_jobspec *spec, const struct hp_site *site,
                              int nodes, char *buf, size_t len)
{
    const char *how = site->gpu_request ? site->gpu_request : "gpus-per-node";
    const char *type = spec->res.gpu_type;
    if (!strcmp(how, "none"))
        return NULL;
    if (!strcmp(how, "gres")) {
        if (type)
            snprintf(buf, len, "gpu:%.40s:%d", type, spec->res.gpus);
        else
            snprintf(buf, len, "gpu:%d", spec->res.gpus);
        return "gres";
    }
    long n = !strcmp(how, "gpus") ? (long)spec->res.gpus * nodes : spec->res.gpus;
    if (type)
        snprintf(buf, len, "%.40s:%ld", type, n);
    else
        snprintf(buf, len, "%ld", n);
    return !strcmp(how, "gpus") ? "gpus" : "gpus-per-node";
}

static int check_line(const char *what, const char *v, struct hp_err *err)
{
    if (v && strpbrk(v, "\n\r"))
        return hp_err_set(err, HP_EINPUT, "%s '%s' contains a line break", what, v);
    return 0;
}

static int check_path(const char *what, const char *v, struct hp_err *err)
{
    if (v && strpbrk(v, "\n\r\""))
        return hp_err_set(err, HP_EINPUT, "%s '%s' contains a line break or a double quote, "
                          "which an #SBATCH line cannot carry", what, v);
    return 0;
}

int slurm_render(const struct hp_jobspec *spec, const struct hp_site *site, struct hp_buf *out,
                 struct hp_err *err)
{
    char buf[64];
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    const struct hp_partition *part = spec->partition ? hp_site_partition(site, spec->partition)
                                                      : NULL;
    const char *qos = part && part->qos ? part->qos : site->qos;

    if (check_line("partition", spec->partition, err) ||
        check_line("account", site->account, err) || check_line("qos", qos, err) ||
        check_line("constraint", site->constraint, err) ||
        check_line("gpu type", spec->res.gpu_type, err) ||
        check_path("stdout path", spec->stdout_path, err) ||
        check_path("stderr path", spec->stderr_path, err))
        return -1;
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        if (check_line("directive", site->directives[i], err))
            return -1;

    hp_buf_adds(out, "#!/bin/bash\n");
    char *name = slurm_job_name(spec);
    directive(out, "job-name", name);   /* carries the token: see the top */
    free(name);
    if (spec->token)
        directive(out, "comment", spec->token);
    if (spec->partition && (!part || part->pass_name))
        directive(out, "partition", spec->partition);
    if (site->account)
        directive(out, "account", site->account);
    if (qos)
        directive(out, "qos", qos);
    if (site->constraint)
        directive(out, "constraint", site->constraint);
    snprintf(buf, sizeof(buf), "%d", nodes);
    directive(out, "nodes", buf);
    snprintf(buf, sizeof(buf), "%d", ntasks);
    directive(out, "ntasks", buf);
    if (spec->res.cores > 1) {
        snprintf(buf, sizeof(buf), "%d", spec->res.cores);
        directive(out, "cpus-per-task", buf);
    }
    if (spec->res.memory_mb > 0 && !site->no_memory_request) {
        snprintf(buf, sizeof(buf), "%lldM", (long long)spec->res.memory_mb);
        directive(out, "mem", buf);
    }
    if (spec->res.gpus > 0) {
        const char *gopt = slurm_gpu_request(spec, site, nodes, buf, sizeof(buf));
        if (gopt)
            directive(out, gopt, buf);
    }
    if (spec->res.walltime > 0) {
        hp_format_duration(spec->res.walltime, buf, sizeof(buf));
        directive(out, "time", buf);
    }
    if (spec->stdout_path)
        path_directive(out, "output", spec->stdout_path);
    if (spec->stderr_path)
        path_directive(out, "error", spec->stderr_path);
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        hp_buf_addf(out, "#SBATCH %s\n", site->directives[i]);
    hp_script_comment(spec, out);
    /* what the local adapter gives a task, too */
    struct { const char *k, *v; } hv[] = {
        { "HPCPORT_CAMPAIGN", spec->campaign }, { "HPCPORT_INSTANCE", spec->instance },
        { "HPCPORT_TOKEN", spec->token },
    };
    for (size_t i = 0; i < sizeof(hv) / sizeof(hv[0]); i++) {
        if (!hv[i].v)
            continue;
        hp_buf_addf(out, "export %s=", hv[i].k);
        hp_sq_quote(out, hv[i].v);
        hp_buf_addch(out, '\n');
    }
    hp_buf_addf(out, "export HPCPORT_ATTEMPT=%d\n", spec->attempt);
    int launcher = ntasks > 1 || nodes > 1;
    hp_script_body(spec, site, launcher, 0, out);
    return 0;
}

/* ------------------------------------------------------------- the state */

struct slurm {
    const struct hp_site *site;
    struct hp_conn *conn;
    struct hp_stage *stage;
    char *user;
    int major, minor;
    int json_squeue, json_sacct;   /* use --json (23.02 on, until a check fails) */
    int accounting;                /* sacct works: 1, no accounting: 0 */
    struct hp_jobtab jt;           /* jobs, polls; suspects are job names */
};

/* ------------------------------------------------------------- commands */

/* Run a read-only Slurm command; stdout in out. 0, or -1 with err (the
 * transport failed, or the command exited non-zero: its first stderr line;
 * *status tells which when status is not NULL). */
static int query(struct slurm *S, const char *const *argv, struct hp_buf *out, int *status,
                 struct hp_buf *errout, struct hp_err *err)
{
    struct hp_buf eo = HP_BUF_INIT;
    int st = 0;
    hp_buf_reset(out);
    int rc = hp_conn_exec_ex(S->conn, argv, NULL, 0, out, &eo, &st, hp_site_query_timeout(S->site),
                             HP_EXEC_IDEMPOTENT, err);
    if (status)
        *status = rc < 0 ? -1 : st;
    if (rc == 0 && st != 0) {
        char *l = hp_first_line(eo.buf);
        if (st == 127)
            hp_err_set(err, HP_ESITE, "site '%s': %s is not installed on the login node (or "
                       "not in the PATH of non-interactive shells)", S->site->name, argv[0]);
        else
            hp_err_set(err, HP_ESITE, "site '%s': %s failed (status %d): %s", S->site->name,
                       argv[0], st, l);
        free(l);
        rc = -1;
    }
    if (errout)
        hp_buf_add(errout, eo.buf, eo.len);
    hp_buf_release(&eo);
    return rc;
}

static void join_ids(struct hp_buf *b, char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            hp_buf_addch(b, ',');
        hp_buf_adds(b, ids[i]);
    }
}

/* squeue for ids; appends records. */
static int squeue_ids(struct slurm *S, char **ids, size_t n, struct slurm_rec **recs,
                      size_t *nrec, size_t *ralloc, struct hp_err *err)
{
    struct hp_buf list = HP_BUF_INIT, out = HP_BUF_INIT, eo = HP_BUF_INIT;
    int status, ret = -1;
    join_ids(&list, ids, n);
    if (S->json_squeue) {
        const char *argv[] = { "squeue", "--json", "-t", "all", "-j", list.buf, NULL };
        size_t before = *nrec;
        struct hp_err jerr;
        hp_err_init(&jerr);
        if (query(S, argv, &out, &status, &eo, &jerr) == 0 &&
            slurm_parse_squeue_json(out.buf, recs, nrec, ralloc, &jerr) == 0) {
            /* honoured -j? (22.05 dumps every job) */
            int filtered = 1;
            for (size_t k = before; k < *nrec && filtered; k++) {
                int asked = 0;
                for (size_t q = 0; q < n && !asked; q++)
                    asked = !strcmp((*recs)[k].id, ids[q]);
                filtered = asked;
            }
            if (filtered) {
                ret = 0;
                goto out;
            }
        }
        *nrec = before;
        S->json_squeue = 0;   /* text from now on */
        hp_buf_reset(&eo);
    }
    const char *argv[] = { "squeue", "-h", "-t", "all", "-j", list.buf, "-O", SLURM_SQUEUE_FMT,
                           NULL };
    if (query(S, argv, &out, &status, &eo, err) < 0) {
        /* every id unknown: squeue says so and exits 1 */
        if (status == 1 && strstr(eo.buf, "Invalid job id")) {
            hp_err_init(err);
            ret = 0;
        }
        goto out;
    }
    ret = slurm_parse_squeue_text(out.buf, recs, nrec, ralloc);
out:
    hp_buf_release(&list);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* sacct's answer on a cluster that keeps no accounting (slurmdbd down is
 * another matter: an error, asked again later) */
static int no_accounting(const char *stderr_text)
{
    return strstr(stderr_text, "accounting storage is disabled") != NULL;
}

/* sacct with extra selection args (NULL-terminated); appends records. A
 * site without accounting gives no records (S->accounting = 0). */
static int sacct_query(struct slurm *S, const char *const *sel, struct slurm_rec **recs,
                       size_t *nrec, size_t *ralloc, struct hp_err *err)
{
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    const char *argv[24];
    size_t a = 0;
    int status, ret = -1;
    if (!S->accounting)
        return 0;
    if (S->json_sacct) {
        argv[a++] = "sacct";
        argv[a++] = "--json";
        for (size_t k = 0; sel[k] && a < 22; k++)
            argv[a++] = sel[k];
        argv[a] = NULL;
        size_t before = *nrec;
        struct hp_err jerr;
        hp_err_init(&jerr);
        if (query(S, argv, &out, &status, &eo, &jerr) == 0 &&
            slurm_parse_sacct_json(out.buf, recs, nrec, ralloc, &jerr) == 0) {
            /* 22.05's JSON says exit 0 for FAILED jobs that exited non-zero */
            int plausible = 1;
            for (size_t k = before; k < *nrec; k++)
                if (!strcmp((*recs)[k].state, "FAILED") && (*recs)[k].have_exit &&
                    !(*recs)[k].exit_code && !(*recs)[k].signal)
                    plausible = 0;
            if (plausible) {
                ret = 0;
                goto out;
            }
        }
        *nrec = before;
        S->json_sacct = 0;
        hp_buf_reset(&eo);
        a = 0;
    }
    argv[a++] = "sacct";
    argv[a++] = "-X";
    argv[a++] = "-n";
    argv[a++] = "-P";
    for (size_t k = 0; sel[k] && a < 20; k++)
        argv[a++] = sel[k];
    argv[a++] = "-o";
    argv[a++] = SLURM_SACCT_FMT;
    argv[a] = NULL;
    if (query(S, argv, &out, &status, &eo, err) < 0) {
        if (status > 0 && no_accounting(eo.buf)) {
            S->accounting = 0;
            hp_err_init(err);
            ret = 0;
        }
        goto out;
    }
    ret = slurm_parse_sacct_text(out.buf, recs, nrec, ralloc);
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

static const struct slurm_rec *rec_find(const struct slurm_rec *recs, size_t n, const char *id)
{
    for (size_t i = n; i-- > 0;)   /* the last record of a job wins (requeues) */
        if (!strcmp(recs[i].id, id))
            return &recs[i];
    return NULL;
}

/* Ask Slurm about every job that is not final yet. */
static int poll_jobs(void *impl, struct hp_err *err)
{
    struct slurm *S = impl;
    size_t n = 0;
    char **ids = hp_jobtab_pending(&S->jt, &n);
    int ret = -1, changed = 0;
    for (size_t off = 0; off < n; off += IDS_PER_QUERY) {
        size_t cnt = n - off < IDS_PER_QUERY ? n - off : IDS_PER_QUERY;
        struct slurm_rec *sq = NULL, *sa = NULL;
        size_t nsq = 0, asq = 0, nsa = 0, asa = 0;
        char **ask = NULL;
        size_t nask = 0, aalloc = 0;
        if (squeue_ids(S, ids + off, cnt, &sq, &nsq, &asq, err) < 0)
            goto chunk_fail;
        for (size_t k = off; k < off + cnt; k++) {
            const struct slurm_rec *r = rec_find(sq, nsq, ids[k]);
            if (!r || !strcmp(r->state, "CANCELLED")) {
                HP_ALLOC_GROW(ask, nask + 1, aalloc);
                ask[nask++] = ids[k];
            }
        }
        if (nask) {
            struct hp_buf list = HP_BUF_INIT;
            join_ids(&list, ask, nask);
            const char *sel[] = { "-j", list.buf, NULL };
            int r = sacct_query(S, sel, &sa, &nsa, &asa, err);
            hp_buf_release(&list);
            if (r < 0)
                goto chunk_fail;
        }
        for (size_t k = off; k < off + cnt; k++) {
            struct hp_jobtab_job *j = hp_jobtab_find(&S->jt, ids[k]);
            const struct slurm_rec *q = rec_find(sq, nsq, ids[k]);
            const struct slurm_rec *a = rec_find(sa, nsa, ids[k]);
            struct hp_jobstate st;
            int final = 0;
            if (q) {
                struct slurm_rec merged = *q;
                if (a && !strcmp(a->state, "CANCELLED"))
                    merged.cancel_uid = a->cancel_uid;
                slurm_map_state(&merged, &st);
                final = slurm_state_final(merged.state);
            } else if (a) {
                slurm_map_state(a, &st);
                final = slurm_state_final(a->state);
            } else {
                memset(&st, 0, sizeof(st));
                st.state = HP_JOB_UNKNOWN;
                st.exit_code = -1;
                snprintf(st.reason, sizeof(st.reason), S->accounting
                         ? "Slurm knows no job %s (neither squeue nor sacct)"
                         : "squeue no longer knows job %s and the site keeps no accounting "
                           "(sacct)", ids[k]);
                final = 1;
            }
            if (st.state != j->st.state)
                changed = 1;
            j->st = st;
            j->final = final;
        }
        free(sq);
        free(sa);
        free(ask);
        continue;
chunk_fail:
        free(sq);
        free(sa);
        free(ask);
        goto out;
    }
    ret = 0;
out:
    free(ids);
    hp_jobtab_polled(&S->jt, ret == 0, changed);
    return ret;
}

/* ---------------------------------------------------------- idempotency */

static void toks_from(struct slurm *S, const struct slurm_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *t = slurm_name_token(recs[i].name);
        if (t)
            hp_jobtab_tok_add(&S->jt, t, recs[i].id, !slurm_state_final(recs[i].state));
    }
}

/* Jobs of this user that carry a token: squeue (what the controller
 * knows), then sacct (finished and purged, last 7 days). name selects one
 * job name, or all when NULL. */
static int lookup(struct slurm *S, const char *name, struct hp_err *err)
{
    struct hp_buf out = HP_BUF_INIT;
    struct slurm_rec *recs = NULL;
    size_t n = 0, alloc = 0;
    int ret = -1;
    const char *argv[12];
    size_t a = 0;
    argv[a++] = "squeue";
    argv[a++] = "-h";
    argv[a++] = "-t";
    argv[a++] = "all";
    argv[a++] = "-u";
    argv[a++] = S->user;
    if (name) {
        argv[a++] = "-n";
        argv[a++] = name;
    }
    argv[a++] = "-O";
    argv[a++] = SLURM_LOOKUP_FMT;
    argv[a] = NULL;
    if (query(S, argv, &out, NULL, NULL, err) < 0)
        goto out;
    slurm_parse_lookup_text(out.buf, &recs, &n, &alloc);
    toks_from(S, recs, n);
    n = 0;
    char *nameopt = name ? hp_xasprintf("--name=%s", name) : NULL;
    const char *sel_all[] = { "-u", S->user, "-S", LOOKUP_WINDOW, "-E", "now", NULL };
    const char *sel_one[] = { "-u", S->user, "-S", LOOKUP_WINDOW, "-E", "now", nameopt, NULL };
    int saved_json = S->json_sacct;
    S->json_sacct = 0;   /* names and states only: the text form is enough */
    /* sacct failing (slurmdbd down) is no reason to stop: a job submitted
     * just before a crash is still in squeue, unless the crash is older than
     * the cluster's MinJobAge */
    struct hp_err serr;
    hp_err_init(&serr);
    if (sacct_query(S, name ? sel_one : sel_all, &recs, &n, &alloc, &serr) == 0)
        toks_from(S, recs, n);
    S->json_sacct = saved_json;
    free(nameopt);
    ret = 0;
out:
    free(recs);
    hp_buf_release(&out);
    return ret;
}

/* ------------------------------------------------------------- the ops */

static void slurm_close(void *impl);

static void *slurm_open(const struct hp_site *site, struct hp_err *err)
{
    struct slurm *S = hp_xcalloc(1, sizeof(*S));
    struct hp_buf out = HP_BUF_INIT;
    S->site = site;
    S->accounting = 1;
    hp_jobtab_init(&S->jt, sizeof(struct hp_jobtab_job), NULL);
    S->conn = hp_conn_open(site, err);
    if (!S->conn)
        goto fail;
    S->stage = hp_stage_new(S->conn, site);
    /* who we are there, and which Slurm (one round trip) */
    const char *argv[] = { "sh", "-c", "id -un && sbatch --version", NULL };
    int status = 0;
    struct hp_buf eo = HP_BUF_INIT;
    int rc = hp_conn_exec_ex(S->conn, argv, NULL, 0, &out, &eo, &status,
                             hp_site_query_timeout(S->site),
                             HP_EXEC_IDEMPOTENT, err);
    if (rc == 0 && status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "site '%s': %s", site->name,
                   status == 127 ? "sbatch is not installed on the login node (or not in the "
                                   "PATH of non-interactive shells)" : l);
        free(l);
        rc = -1;
    }
    hp_buf_release(&eo);
    if (rc < 0)
        goto fail;
    char *nl = strchr(out.buf, '\n');
    if (!nl || slurm_parse_version(nl + 1, &S->major, &S->minor) < 0) {
        hp_err_set(err, HP_ESITE, "site '%s': cannot read the Slurm version from '%s'",
                   site->name, nl ? nl + 1 : out.buf);
        goto fail;
    }
    S->user = hp_xstrndup(out.buf, (size_t)(nl - out.buf));
    int json = S->major > 23 || (S->major == 23 && S->minor >= 2);
    S->json_squeue = S->json_sacct = json;
    hp_buf_release(&out);
    return S;
fail:
    hp_buf_release(&out);
    slurm_close(S);
    return NULL;
}

static void slurm_close(void *impl)
{
    struct slurm *S = impl;
    if (!S)
        return;
    hp_stage_free(S->stage);
    hp_conn_free(S->conn);
    free(S->user);
    hp_jobtab_release(&S->jt);
    free(S);
}

static int slurm_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                        struct hp_err *err)
{
    struct slurm *S = impl;
    struct hp_buf script = HP_BUF_INIT, out = HP_BUF_INIT, eo = HP_BUF_INIT;
    char *name = slurm_job_name(spec);
    char *workdir = NULL, *sout = NULL, *serr = NULL;
    int ret = -1;
    *job_id = NULL;

    /* an earlier process may have submitted this attempt already */
    if (!S->jt.listed) {
        if (lookup(S, NULL, err) < 0) {
            hp_err_prefix(err, "looking for jobs an earlier run submitted");
            ret = 1;
            goto out;
        }
        S->jt.listed = 1;
    }
    long sus = hp_jobtab_suspect_find(&S->jt, name);
    if (sus >= 0) {
        if (lookup(S, name, err) < 0) {
            ret = 1;
            goto out;
        }
        hp_jobtab_suspect_del(&S->jt, sus);
    }
    const char *known = hp_jobtab_tok_find(&S->jt, spec->token);
    if (known) {
        *job_id = hp_xstrdup(known);
        hp_jobtab_follow(&S->jt, known);
        ret = 0;
        goto out;
    }

    /* #SBATCH lines and cd want the site's paths resolved */
    struct hp_jobspec sp = *spec;
    if (spec->workdir && !(sp.workdir = workdir = hp_stage_expand(S->stage, spec->workdir, err)))
        goto out;
    if (spec->stdout_path &&
        !(sp.stdout_path = sout = hp_stage_expand(S->stage, spec->stdout_path, err)))
        goto out;
    if (spec->stderr_path &&
        !(sp.stderr_path = serr = hp_stage_expand(S->stage, spec->stderr_path, err)))
        goto out;
    if (slurm_render(&sp, S->site, &script, err) < 0)
        goto out;

    const char *argv[] = { "sbatch", "--parsable", NULL };
    int status = 0;
    if (hp_conn_exec(S->conn, argv, script.buf, script.len, &out, &eo, &status, SUBMIT_TIMEOUT,
                     err) < 0) {
        hp_jobtab_suspect_add(&S->jt, name);
        hp_err_prefix(err, "sbatch");
        ret = 1;
        goto out;
    }
    char id[32];
    if (status != 0) {
        const char *e = strstr(eo.buf, "error: ");
        char *msg = hp_first_line(e ? e + 7 : eo.buf);
        if (status == 127) {
            hp_err_set(err, HP_ESITE, "site '%s': sbatch is not installed on the login node",
                       S->site->name);
        } else if (hp_jobtab_says(eo.buf, slurm_transient)) {
            hp_jobtab_suspect_add(&S->jt, name);
            hp_err_set(err, HP_ESITE, "site '%s': sbatch: %s", S->site->name, msg);
            ret = 1;
        } else {
            hp_err_set(err, HP_ESITE, "sbatch refused the job: %s", msg[0] ? msg : "no reason "
                       "given");
        }
        free(msg);
        goto out;
    }
    if (slurm_parse_sbatch(out.buf, id, sizeof(id)) < 0) {
        hp_jobtab_suspect_add(&S->jt, name);
        char *l = hp_first_line(out.buf);
        hp_err_set(err, HP_ESITE, "site '%s': sbatch printed no job id ('%s')", S->site->name, l);
        free(l);
        goto out;
    }
    *job_id = hp_xstrdup(id);
    hp_jobtab_follow(&S->jt, id);
    ret = 0;
    hp_jobtab_submitted(&S->jt, "HPCPORT_TEST_KILL_AFTER_SBATCH");
out:
    free(name);
    free(workdir);
    free(sout);
    free(serr);
    hp_buf_release(&script);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

static int slurm_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                       struct hp_err *err)
{
    struct slurm *S = impl;
    (void)spec;
    (void)err;
    hp_jobtab_follow(&S->jt, job_id);
    S->jt.next_poll = 0;   /* ask at once: it may have ended long ago */
    return 0;
}

static int slurm_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                        struct hp_err *err)
{
    struct slurm *S = impl;
    return hp_jobtab_status(&S->jt, ids, n, out, poll_jobs, S, err);
}

static int slurm_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct slurm *S = impl;
    struct hp_buf eo = HP_BUF_INIT;
    const char *argv[] = { "scancel", id, NULL };
    int status = 0, ret = 0;
    if (!S)
        return hp_err_set(err, HP_ESITE, "canceling a Slurm job needs a connection");
    if (hp_conn_exec_ex(S->conn, argv, NULL, 0, NULL, &eo, &status, hp_site_query_timeout(S->site),
                        HP_EXEC_IDEMPOTENT, err) < 0) {
        ret = -1;
    } else if (status != 0 && !strstr(eo.buf, "Invalid job id") &&
               !strstr(eo.buf, "already completing or completed")) {
        char *l = hp_first_line(eo.buf);
        ret = hp_err_set(err, HP_ESITE, "scancel %s: %s", id, l);
        free(l);
    }
    hp_buf_release(&eo);
    hp_jobtab_poll_soon(&S->jt);
    return ret;
}

static int slurm_wait(void *impl, double timeout)
{
    struct slurm *S = impl;
    return hp_jobtab_wait(&S->jt, timeout);
}

static long slurm_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct slurm *S = impl;
    (void)spec;
    return S ? hp_jobtab_capacity(&S->jt, S->site->max_queued_jobs) : -1;
}

static int slurm_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                         struct hp_err *err)
{
    struct slurm *S = impl;
    return hp_stage_prepare(S->stage, plan, local_dir, NULL, err);
}

static int slurm_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                         const struct hp_jobstate *js, struct hp_err *err)
{
    struct slurm *S = impl;
    if (js->state == HP_JOB_UNKNOWN)
        return 0;
    return hp_stage_collect(S->stage, i, spec, err);
}

int hp_slurm_check(const struct hp_site *site, const struct hp_check_opts *opts,
                   struct hp_check_report *rep, struct hp_err *err);

const struct hp_adapter_ops hp_adapter_slurm = {
    .name = "slurm",
    .render = slurm_render,
    .submit = slurm_submit,
    .status = slurm_status,
    .cancel = slurm_cancel,
    .wait = slurm_wait,
    .capacity = slurm_capacity,
    .open = slurm_open,
    .close = slurm_close,
    .adopt = slurm_adopt,
    .prepare = slurm_prepare,
    .collect = slurm_collect,
    .check = hp_slurm_check,
};
