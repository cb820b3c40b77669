/* pbs.c - the PBS adapter (scheduler.type: pbs): PBS Professional / OpenPBS
 * ("pbspro", the default dialect) and TORQUE ("torque", which also drives
 * the qsub/qstat/qdel wrappers of Slurm's slurm-wlm-torque), through a
 * connection (local, or SSH to the login node), with the campaign's files
 * staged through core/stage.h like slurm.c. The pure parts (names, states,
 * parsers) are in pbs-parse.c; `site check` in pbs-check.c.
 *
 * Render. #PBS directives (see render() for the mapping), then a POSIX sh
 * body that sends its own stdout and stderr to the attempt's log files (so
 * that logs exist while the job runs, whatever the server does with its
 * -o/-e files, which keep only the scheduler's own messages), runs the task
 * in a subshell (script.c: setup, modules, env, cd, container, launcher),
 * and writes the task's exit status and elapsed seconds to the attempt's
 * exit record (plan.h's result_path, "<status> <seconds>").
 *
 * Submission. The script is written into the campaign's logs directory on
 * the site and submitted as a file from there (`qsub ./NAME`), in one round
 * trip (`sh -c 'cat > FILE && cd DIR && exec qsub ./NAME'`, the script on
 * stdin). qsub of PBS Pro and TORQUE would read it from stdin, but Slurm's
 * qsub wrapper insists on a file argument; a file also leaves the exact
 * script next to its logs. The name is relative and shell-safe because the
 * wrapper pastes its arguments into a shell command line unquoted.
 *
 * Idempotency. The job name starts with the attempt's token
 * (pbs_job_name()): a server that shortens names keeps it. Before its first
 * submission an adapter lists the user's jobs once (`qselect -u USER`, with
 * -x for pbspro's finished jobs, then their `qstat -f`; Slurm's wrappers
 * have no qselect: every job `qstat -f` shows, filtered by Job_Owner) and
 * remembers the tokens; an attempt that a killed `hpcport run` submitted without
 * recording it is adopted, not submitted again. A submission whose fate is
 * unknown (the connection dropped during qsub, or qsub could not reach the
 * server) is reported as "not now" and looked up again before it is retried.
 *
 * Status. One `qstat -f` per poll for up to IDS_PER_QUERY tracked jobs
 * (pbspro: `-F json -x`, history included; text when the server's JSON does
 * not parse). An id the answer leaves out without saying why is asked again
 * on its own (OpenPBS issue 2672: some builds print only the first job of a
 * JSON query; Slurm's wrapper says nothing about unknown ids). Fallback for
 * what the server cannot tell: a finished job without an exit status (the
 * wrapper's qstat has none; TORQUE and PBS Pro forget finished jobs after
 * keep_completed / without job history), and a job qstat no longer knows,
 * are settled from the exit record the job script wrote (one `cat` for all
 * of a poll's jobs). A record that has not appeared RC_GRACE seconds after
 * the job ended (shared filesystems may show it late) means the job never
 * got to write it: killed, deleted, or never started - failed, or unknown
 * (submitted again) for a job the server no longer knows at all. Polls
 * happen 1 s after a change, growing to 10 s while nothing changes; status()
 * between polls answers from the last one (the followed jobs, the schedule
 * and the tokens: jobtab.h).
 *
 * Capacity: with scheduler.max_queued_jobs set, no more than that many of
 * this campaign's jobs are queued or running at once.
 *
 * For tests: HPCPORT_TEST_KILL_AFTER_QSUB=N makes the process SIGKILL itself
 * right after qsub accepted its Nth job, before anyone recorded it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "conn.h"
#include "jobtab.h"
#include "pbs-int.h"
#include "plan.h"
#include "quote.h"
#include "script.h"
#include "site.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define SUBMIT_TIMEOUT 120.0
#define IDS_PER_QUERY 200
#define ALONE_PER_POLL 50     /* ids asked again on their own, per poll */
#define RC_GRACE 30.0         /* seconds an exit record may take to show */

/* ---------------------------------------------------------------- render */

/* What a #PBS line can carry: qsub splits directive lines at blanks and
 * reads quotes; no line breaks, blanks or quotes in values. */
static int check_word(const char *what, const char *v, struct hp_err *err)
{
    if (v && strpbrk(v, "\n\r \t\"'"))
        return hp_err_set(err, HP_EINPUT, "pbs: %s '%s' contains a blank, quote or line break, "
                          "which a #PBS line cannot carry", what, v);
    return 0;
}

static int check_path(const char *what, const char *v, struct hp_err *err)
{
    if (check_word(what, v, err) < 0)
        return -1;
    /* qsub -o takes [host:]path */
    if (v && strchr(v, ':'))
        return hp_err_set(err, HP_EINPUT, "pbs: %s '%s' contains ':', which qsub -o reads as "
                          "host:path", what, v);
    return 0;
}

/* <logs>/<safe-id>.<attempt>.pbs: the script file on the site; and its
 * ".log", the scheduler's own output (plan.h names logs ".out") */
static char *sibling(const char *stdout_path, const char *ext)
{
    size_t l = strlen(stdout_path);
    if (l > 4 && !strcmp(stdout_path + l - 4, ".out"))
        l -= 4;
    return hp_xasprintf("%.*s%s", (int)l, stdout_path, ext);
}

static int directive_sets(const struct hp_site *site, const char *what)
{
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        if (strstr(site->directives[i], what))
            return 1;
    return 0;
}

/* GPUs are asked for per node, unless the site hands out whole nodes and
 * takes no GPU option (scheduler.gpu_request: none); its other values
 * name Slurm options */
static int gpu_option(const struct hp_site *site)
{
    return !site->gpu_request || strcmp(site->gpu_request, "none") != 0;
}

static void resources_pbspro(const struct hp_jobspec *spec, const struct hp_site *site,
                             struct hp_buf *out)
{
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    int cores = spec->res.cores > 0 ? spec->res.cores : 1;
    int per_node = (ntasks + nodes - 1) / nodes;
    hp_buf_addf(out, "#PBS -l select=%d:ncpus=%d", nodes, per_node * cores);
    if (ntasks > 1)
        hp_buf_addf(out, ":mpiprocs=%d", per_node);
    if (spec->res.gpus > 0 && gpu_option(site))
        hp_buf_addf(out, ":ngpus=%d", spec->res.gpus);
    if (spec->res.memory_mb > 0 && !site->no_memory_request)
        hp_buf_addf(out, ":mem=%lldmb", (long long)spec->res.memory_mb);
    hp_buf_addch(out, '\n');
    if (nodes > 1 && !directive_sets(site, "place="))
        hp_buf_adds(out, "#PBS -l place=scatter\n");
}

static void resources_torque(const struct hp_jobspec *spec, const struct hp_site *site,
                             struct hp_buf *out)
{
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    int cores = spec->res.cores > 0 ? spec->res.cores : 1;
    int ppn = (ntasks + nodes - 1) / nodes * cores;
    hp_buf_addf(out, "#PBS -l nodes=%d:ppn=%d", nodes, ppn);
    if (spec->res.gpus > 0 && gpu_option(site))
        hp_buf_addf(out, ":gpus=%d", spec->res.gpus);
    hp_buf_addch(out, '\n');
    /* TORQUE's mem is per job and ignored beyond one node: per process there */
    if (site->no_memory_request || spec->res.memory_mb <= 0)
        ;   /* scheduler.memory_request: none */
    else if (nodes == 1)
        hp_buf_addf(out, "#PBS -l mem=%lldmb\n", (long long)spec->res.memory_mb);
    else
        hp_buf_addf(out, "#PBS -l pmem=%lldmb\n",
                    (long long)(spec->res.memory_mb / ppn > 0 ? spec->res.memory_mb / ppn : 1));
}

static void export_line(struct hp_buf *out, const char *k, const char *v)
{
    hp_buf_addf(out, "export %s=", k);
    hp_sq_quote(out, v);
    hp_buf_addch(out, '\n');
}

static int pbs_render(const struct hp_jobspec *spec, const struct hp_site *site,
                      struct hp_buf *out, struct hp_err *err)
{
    int d = pbs_dialect_of(site->dialect);
    char wt[32];
    if (d < 0)
        return hp_err_set(err, HP_ESITE, "pbs: site '%s': unknown dialect '%s' (pbspro or "
                          "torque)", site->name, site->dialect);
    if (check_word("queue (partition)", spec->partition, err) < 0 ||
        check_word("account", site->account, err) < 0 ||
        check_path("stdout path", spec->stdout_path, err) < 0)
        return -1;
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        if (strpbrk(site->directives[i], "\n\r"))
            return hp_err_set(err, HP_EINPUT, "pbs: directive '%s' contains a line break",
                              site->directives[i]);

    hp_buf_adds(out, "#!/bin/sh\n");
    char *name = pbs_job_name(spec, d);
    hp_buf_addf(out, "#PBS -N %s\n", name);   /* [A-Za-z0-9._-]: plan.c */
    free(name);
    hp_buf_adds(out, "#PBS -S /bin/sh\n");
    const struct hp_partition *part = spec->partition ? hp_site_partition(site, spec->partition)
                                                      : NULL;
    if (spec->partition && (!part || part->pass_name))
        hp_buf_addf(out, "#PBS -q %s\n", spec->partition);
    if (site->account)
        hp_buf_addf(out, "#PBS -A %s\n", site->account);
    if (d == PBS_PRO)
        resources_pbspro(spec, site, out);
    else
        resources_torque(spec, site, out);
    if (spec->res.walltime > 0) {
        pbs_format_hms(spec->res.walltime, wt, sizeof(wt));
        hp_buf_addf(out, "#PBS -l walltime=%s\n", wt);
    }
    hp_buf_adds(out, "#PBS -j oe\n");
    if (spec->stdout_path) {
        char *log = sibling(spec->stdout_path, ".pbs.log");
        hp_buf_addf(out, "#PBS -o %s\n", log);
        free(log);
    }
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        hp_buf_addf(out, "#PBS %s\n", site->directives[i]);
    hp_script_comment(spec, out);

    /* the body: logs, the task in a subshell, its exit record */
    if (spec->stdout_path && spec->stderr_path) {
        hp_buf_adds(out, "exec >");
        hp_sq_quote_path(out, spec->stdout_path);
        hp_buf_adds(out, " 2>");
        hp_sq_quote_path(out, spec->stderr_path);
        hp_buf_addch(out, '\n');
    }
    if (spec->campaign)
        export_line(out, "HPCPORT_CAMPAIGN", spec->campaign);
    if (spec->instance)
        export_line(out, "HPCPORT_INSTANCE", spec->instance);
    if (spec->token)
        export_line(out, "HPCPORT_TOKEN", spec->token);
    hp_buf_addf(out, "export HPCPORT_ATTEMPT=%d\n", spec->attempt);
    /* the scheduler's TERM (walltime, qdel) must end the task, not this
     * shell: it records what happened */
    hp_buf_adds(out, "hp_t0=$(date +%s)\ntrap 'hp_term=1' TERM\n(\n");
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    hp_script_body(spec, site, ntasks > 1 || nodes > 1, 0, out);
    hp_buf_adds(out, ")\nhp_rc=$?\n");
    if (spec->result_path) {
        hp_buf_adds(out, "printf '%s %s\\n' \"$hp_rc\" \"$(($(date +%s) - hp_t0))\" >");
        hp_sq_quote_path(out, spec->result_path);
        hp_buf_addch(out, '\n');
    }
    hp_buf_adds(out, "exit \"$hp_rc\"\n");
    return 0;
}

/* ------------------------------------------------------------- the state */

struct pjob {
    struct hp_jobtab_job t;   /* first: the table hands out its address */
    char *rc_path;            /* expanded exit record, or NULL */
    int64_t walltime;
    int canceled;             /* qdel'd by this adapter */
    double ended;             /* when it was first seen ended without a status */
};

struct pbs {
    const struct hp_site *site;
    enum pbs_dialect d;
    struct hp_conn *conn;
    struct hp_stage *stage;
    char *user;
    int json;                      /* pbspro: -F json until it does not parse */
    struct hp_jobtab jt;           /* jobs, polls; suspects are tokens */
};

static struct pjob *pjob_find(struct pbs *P, const char *id)
{
    return (struct pjob *)hp_jobtab_find(&P->jt, id);
}

static void pjob_release(struct hp_jobtab_job *j)
{
    free(((struct pjob *)j)->rc_path);
}

/* ------------------------------------------------------------- commands */

static void join_argv(const char **argv, size_t *a, char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        argv[(*a)++] = ids[i];
    argv[*a] = NULL;
}

/* ---------------------------------------------------------- idempotency */

static int owned(const struct pbs *P, const char *owner)
{
    size_t l = strlen(P->user);
    return !*owner || (!strncmp(owner, P->user, l) && (owner[l] == '@' || !owner[l]));
}

/* The user's jobs that carry a token (see the top). */
static int lookup(struct pbs *P, struct hp_err *err)
{
    /* $1 user, $2 "-Fjson" or "", $3 "-x" (pbspro: history) or "";
     * without qselect, every job qstat shows (filtered by owner below) */
    static const char script[] =
        "set -f; if command -v qselect >/dev/null 2>&1; then "
        "ids=$(qselect $3 -u \"$1\") || exit; [ -n \"$ids\" ] || exit 0; "
        "exec qstat -f $3 $2 $ids; fi; exec qstat -f $3 $2";
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    struct pbs_answer a = { 0 };
    int ret = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int json = P->d == PBS_PRO && P->json, status = 0;
        const char *argv[] = { "sh", "-c", script, "sh", P->user, json ? "-Fjson" : "",
                               P->d == PBS_PRO ? "-x" : "", NULL };
        hp_buf_reset(&out);
        hp_buf_reset(&eo);
        if (hp_conn_exec_ex(P->conn, argv, NULL, 0, &out, &eo, &status,
                            hp_site_query_timeout(P->site), HP_EXEC_IDEMPOTENT, err) < 0) {
            hp_err_prefix(err, "pbs: site '%s': listing your jobs (qselect, qstat)",
                          P->site->name);
            goto out;
        }
        int r = pbs_parse_qstat(json, status, out.buf, eo.buf, &a, err);
        if (r == 1) {
            P->json = 0;
            continue;
        }
        if (r < 0) {
            hp_err_prefix(err, "pbs: site '%s': listing your jobs", P->site->name);
            goto out;
        }
        break;
    }
    for (size_t i = 0; i < a.n; i++) {
        char tok[128];
        if (owned(P, a.recs[i].owner) && pbs_name_token(a.recs[i].name, tok, sizeof(tok)) == 0)
            hp_jobtab_tok_add(&P->jt, tok, a.recs[i].id,
                              !pbs_state_final(P->d, a.recs[i].state));
    }
    ret = 0;
out:
    pbs_answer_release(&a);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* qsub messages that mean "not now" (the job may exist nonetheless) */
static const char *const transient[] = {
    "cannot connect to server", "Cannot connect", "Connection refused",
    "Connection timed out", "timed out", "temporarily unavailable", "End of File",
    "pbs_iff", "Server is busy", "communication failure", "Unable to contact slurm "
    "controller", "Socket timed out", NULL,
};

/* ------------------------------------------------------------- status */

/* qstat -f for ids; appends to a. 0, or -1 with err (transport, qstat
 * missing, or an answer that is neither records nor "unknown job"). */
static int qstat_ids(struct pbs *P, char **ids, size_t n, struct pbs_answer *a,
                     struct hp_err *err)
{
    const char **argv = hp_xcalloc(n + 8, sizeof(*argv));
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    int status = 0, ret = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t k = 0;
        int json = P->d == PBS_PRO && P->json;
        argv[k++] = "qstat";
        argv[k++] = "-f";
        if (json) {
            argv[k++] = "-F";
            argv[k++] = "json";
        }
        if (P->d == PBS_PRO)
            argv[k++] = "-x";
        join_argv(argv, &k, ids, n);
        hp_buf_reset(&out);
        hp_buf_reset(&eo);
        if (hp_conn_exec_ex(P->conn, argv, NULL, 0, &out, &eo, &status,
                            hp_site_query_timeout(P->site), HP_EXEC_IDEMPOTENT, err) < 0) {
            hp_err_prefix(err, "pbs: site '%s': qstat", P->site->name);
            goto out;
        }
        if (status == 127) {
            hp_err_set(err, HP_ESITE, "pbs: site '%s': qstat is not installed on the login "
                       "node (or not in the PATH of non-interactive shells)", P->site->name);
            goto out;
        }
        int r = pbs_parse_qstat(json, status, out.buf, eo.buf, a, err);
        if (r == 1) {
            P->json = 0;   /* OpenPBS issue 2541: text from now on */
            continue;
        }
        if (r < 0) {
            hp_err_prefix(err, "pbs: site '%s'", P->site->name);
            goto out;
        }
        ret = 0;
        break;
    }
out:
    free(argv);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* Read the exit records of jobs js[0..n) (one command); texts[i] gets the
 * record or NULL. 0, or -1 with err. */
static int read_rcfiles(struct pbs *P, struct pjob **js, size_t n, char **texts,
                        struct hp_err *err)
{
    static const char script[] =
        "i=0; for f do i=$((i+1)); if [ -r \"$f\" ]; then "
        "printf '%d ' \"$i\"; head -c 64 \"$f\" | tr -d '\\n'; echo; fi; done";
    const char **argv = hp_xcalloc(n + 5, sizeof(*argv));
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    size_t a = 0;
    int status = 0, ret = -1;
    argv[a++] = "sh";
    argv[a++] = "-c";
    argv[a++] = script;
    argv[a++] = "sh";
    for (size_t i = 0; i < n; i++)
        argv[a++] = js[i]->rc_path;
    argv[a] = NULL;
    if (hp_conn_exec_ex(P->conn, argv, NULL, 0, &out, &eo, &status,
                        hp_site_query_timeout(P->site), HP_EXEC_IDEMPOTENT, err) < 0)
        goto out;
    if (status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "pbs: site '%s': reading the jobs' exit records failed "
                   "(status %d): %s", P->site->name, status, l);
        free(l);
        goto out;
    }
    for (char *line = out.buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *end;
        long k = strtol(line, &end, 10);
        if (end != line && *end == ' ' && k >= 1 && (size_t)k <= n && !texts[k - 1])
            texts[k - 1] = hp_xstrdup(end + 1);
        line = nl ? nl + 1 : NULL;
    }
    ret = 0;
out:
    free(argv);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* A job that ended (or vanished) without an exit status from qstat: its
 * exit record says, else it failed (or, gone, is unknown) once RC_GRACE
 * has passed. */
static void settle(struct pjob *j, const char *rc, int gone, struct hp_jobstate *st,
                   int *final)
{
    double now = hp_now();
    if (rc && pbs_map_rcfile(rc, j->walltime, st) == 0) {
        *final = 1;
        return;
    }
    if (!j->ended)
        j->ended = now;
    if (now - j->ended < RC_GRACE && j->rc_path) {
        *st = j->t.st;               /* as it was, and ask again soon */
        *final = 0;
        return;
    }
    memset(st, 0, sizeof(*st));
    st->exit_code = -1;
    *final = 1;
    if (j->canceled) {
        st->state = HP_JOB_CANCELED;
        snprintf(st->reason, sizeof(st->reason), "canceled (qdel)");
    } else if (gone) {
        st->state = HP_JOB_UNKNOWN;
        snprintf(st->reason, sizeof(st->reason), "PBS no longer knows job %.60s and it left no "
                 "exit record", j->t.id);
    } else {
        st->state = HP_JOB_FAILED;
        snprintf(st->reason, sizeof(st->reason), "job %.60s ended without an exit status: "
                 "killed (walltime, qdel, node failure) or never started; see its .pbs.log",
                 j->t.id);
    }
}

/* Ask about every job that is not final yet. */
static int poll_jobs(void *impl, struct hp_err *err)
{
    struct pbs *P = impl;
    size_t n = 0;
    char **ids = hp_jobtab_pending(&P->jt, &n);
    int ret = -1, changed = 0;
    struct pbs_answer a = { 0 };
    size_t alone = 0;
    for (size_t off = 0; off < n; off += IDS_PER_QUERY) {
        size_t cnt = n - off < IDS_PER_QUERY ? n - off : IDS_PER_QUERY;
        if (qstat_ids(P, ids + off, cnt, &a, err) < 0)
            goto out;
        if (cnt == 1)
            continue;
        /* left out without a word: asked on its own */
        for (size_t k = off; k < off + cnt && alone < ALONE_PER_POLL; k++) {
            if (pbs_answer_rec(&a, ids[k]) || pbs_answer_unknown(&a, ids[k]))
                continue;
            alone++;
            if (qstat_ids(P, ids + k, 1, &a, err) < 0)
                goto out;
        }
    }
    /* map; collect the jobs that need their exit record */
    struct pjob **need = hp_xcalloc(n ? n : 1, sizeof(*need));
    int *need_gone = hp_xcalloc(n ? n : 1, sizeof(*need_gone));
    size_t nneed = 0;
    for (size_t k = 0; k < n; k++) {
        struct pjob *j = pjob_find(P, ids[k]);
        const struct pbs_rec *r = pbs_answer_rec(&a, ids[k]);
        struct hp_jobstate st;
        if (r && pbs_map_state(P->d, r, &st) == 0) {
            int final = pbs_state_final(P->d, r->state);
            if (final && j->canceled && st.state == HP_JOB_FAILED && st.signal) {
                st.state = HP_JOB_CANCELED;
                snprintf(st.reason, sizeof(st.reason), "canceled (qdel)");
            }
            if (st.state != j->t.st.state)
                changed = 1;
            j->t.st = st;
            j->t.final = final;
            continue;
        }
        if (!r && !pbs_answer_unknown(&a, ids[k]) && alone >= ALONE_PER_POLL)
            continue;        /* not asked this time */
        need[nneed] = j;
        need_gone[nneed++] = !r;
    }
    if (nneed) {
        struct pjob **with = hp_xcalloc(nneed, sizeof(*with));
        size_t nwith = 0;
        for (size_t k = 0; k < nneed; k++)
            if (need[k]->rc_path)
                with[nwith++] = need[k];
        char **wtexts = hp_xcalloc(nwith ? nwith : 1, sizeof(*wtexts));
        int rrc = nwith ? read_rcfiles(P, with, nwith, wtexts, err) : 0;
        for (size_t k = 0, w = 0; rrc == 0 && k < nneed; k++) {
            const char *rc = NULL;
            if (w < nwith && with[w] == need[k])
                rc = wtexts[w++];
            struct hp_jobstate st;
            int final = 0;
            settle(need[k], rc, need_gone[k], &st, &final);
            if (st.state != need[k]->t.st.state)
                changed = 1;
            need[k]->t.st = st;
            need[k]->t.final = final;
        }
        for (size_t w = 0; w < nwith; w++)
            free(wtexts[w]);
        free(wtexts);
        free(with);
        if (rrc < 0) {
            free(need);
            free(need_gone);
            goto out;
        }
    }
    free(need);
    free(need_gone);
    ret = 0;
out:
    pbs_answer_release(&a);
    free(ids);
    hp_jobtab_polled(&P->jt, ret == 0, changed);
    return ret;
}

/* ------------------------------------------------------------- the ops */

static void pbs_close(void *impl);

static void *pbs_open(const struct hp_site *site, struct hp_err *err)
{
    int d = pbs_dialect_of(site->dialect);
    if (d < 0) {
        hp_err_set(err, HP_ESITE, "pbs: site '%s': unknown dialect '%s' (pbspro or torque)",
                   site->name, site->dialect);
        return NULL;
    }
    struct pbs *P = hp_xcalloc(1, sizeof(*P));
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    P->site = site;
    P->d = (enum pbs_dialect)d;
    P->json = d == PBS_PRO;
    hp_jobtab_init(&P->jt, sizeof(struct pjob), pjob_release);
    P->conn = hp_conn_open(site, err);
    if (!P->conn)
        goto fail;
    P->stage = hp_stage_new(P->conn, site);
    /* who we are there, and that this is PBS (one round trip) */
    const char *argv[] = { "sh", "-c", "id -un && command -v qsub >/dev/null && "
                           "command -v qstat >/dev/null || exit 127", NULL };
    int status = 0;
    if (hp_conn_exec_ex(P->conn, argv, NULL, 0, &out, &eo, &status,
                        hp_site_query_timeout(P->site), HP_EXEC_IDEMPOTENT, err) < 0)
        goto fail;
    if (status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "pbs: site '%s': %s", site->name, status == 127
                   ? "qsub or qstat is not installed on the login node (or not in the PATH of "
                     "non-interactive shells), but the profile says scheduler.type: pbs" : l);
        free(l);
        goto fail;
    }
    P->user = hp_first_line(out.buf);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return P;
fail:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    pbs_close(P);
    return NULL;
}

static void pbs_close(void *impl)
{
    struct pbs *P = impl;
    if (!P)
        return;
    hp_stage_free(P->stage);
    hp_conn_free(P->conn);
    free(P->user);
    hp_jobtab_release(&P->jt);
    free(P);
}

static void follow(struct pbs *P, const char *id, const char *rc_path, int64_t walltime)
{
    struct pjob *j = (struct pjob *)hp_jobtab_follow(&P->jt, id);
    if (rc_path && !j->rc_path)
        j->rc_path = hp_xstrdup(rc_path);
    j->walltime = walltime;
}

static int pbs_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                      struct hp_err *err)
{
    struct pbs *P = impl;
    struct hp_buf script = HP_BUF_INIT, out = HP_BUF_INIT, eo = HP_BUF_INIT;
    char *workdir = NULL, *sout = NULL, *serr = NULL, *rc = NULL, *file = NULL, *dir = NULL;
    int ret = -1;
    *job_id = NULL;

    /* an earlier process may have submitted this attempt already */
    long sus = hp_jobtab_suspect_find(&P->jt, spec->token);
    if (!P->jt.listed || sus >= 0) {
        if (lookup(P, err) < 0) {
            hp_err_prefix(err, "looking for jobs an earlier run submitted");
            ret = 1;
            goto out;
        }
        P->jt.listed = 1;
        if (sus >= 0)
            hp_jobtab_suspect_del(&P->jt, sus);
    }

    /* #PBS lines, cd and the exit record want the site's paths resolved */
    struct hp_jobspec sp = *spec;
    if (spec->workdir && !(sp.workdir = workdir = hp_stage_expand(P->stage, spec->workdir, err)))
        goto out;
    if (spec->stdout_path &&
        !(sp.stdout_path = sout = hp_stage_expand(P->stage, spec->stdout_path, err)))
        goto out;
    if (spec->stderr_path &&
        !(sp.stderr_path = serr = hp_stage_expand(P->stage, spec->stderr_path, err)))
        goto out;
    if (spec->result_path &&
        !(sp.result_path = rc = hp_stage_expand(P->stage, spec->result_path, err)))
        goto out;
    const char *known = hp_jobtab_tok_find(&P->jt, spec->token);
    if (known) {
        *job_id = hp_xstrdup(known);
        follow(P, known, rc, spec->res.walltime);
        ret = 0;
        goto out;
    }
    if (!sp.stdout_path) {
        hp_err_set(err, HP_EINPUT, "pbs: the job of '%s' has no log path", spec->instance);
        goto out;
    }
    if (pbs_render(&sp, P->site, &script, err) < 0)
        goto out;

    file = sibling(sp.stdout_path, ".pbs");
    dir = hp_dirname(file);
    const char *base = file + strlen(dir) + (strcmp(dir, "/") ? 1 : 0);
    const char *argv[] = { "sh", "-c", "(umask 077 && cat > \"$1/$2\") && cd \"$1\" && "
                           "exec qsub \"./$2\"", "sh", dir, base, NULL };
    int status = 0;
    if (hp_conn_exec(P->conn, argv, script.buf, script.len, &out, &eo, &status, SUBMIT_TIMEOUT,
                     err) < 0) {
        hp_jobtab_suspect_add(&P->jt, spec->token);
        hp_err_prefix(err, "pbs: qsub");
        ret = 1;
        goto out;
    }
    char id[128];
    if (status != 0) {
        char *msg = pbs_complaint(out.buf, eo.buf);
        if (status == 127) {
            hp_err_set(err, HP_ESITE, "pbs: site '%s': qsub is not installed on the login node",
                       P->site->name);
        } else if (hp_jobtab_says(eo.buf, transient) ||
                   hp_jobtab_says(out.buf, transient)) {
            hp_jobtab_suspect_add(&P->jt, spec->token);
            hp_err_set(err, HP_ESITE, "pbs: site '%s': qsub: %s", P->site->name, msg);
            ret = 1;
        } else {
            hp_err_set(err, HP_ESITE, "pbs (%s): qsub refused the job of '%s'%s%s%s: %s",
                       pbs_dialect_name(P->d), spec->instance ? spec->instance : "?",
                       sp.partition ? " (queue '" : "", sp.partition ? sp.partition : "",
                       sp.partition ? "')" : "", msg[0] ? msg : "no reason given");
        }
        free(msg);
        goto out;
    }
    if (pbs_parse_qsub(out.buf, id, sizeof(id)) < 0) {
        hp_jobtab_suspect_add(&P->jt, spec->token);
        char *l = hp_first_line(out.buf);
        hp_err_set(err, HP_ESITE, "pbs: site '%s': qsub printed no job id ('%.120s')",
                   P->site->name, l);
        free(l);
        goto out;
    }
    *job_id = hp_xstrdup(id);
    follow(P, id, rc, spec->res.walltime);
    ret = 0;
    hp_jobtab_submitted(&P->jt, "HPCPORT_TEST_KILL_AFTER_QSUB");
out:
    free(workdir);
    free(sout);
    free(serr);
    free(rc);
    free(file);
    free(dir);
    hp_buf_release(&script);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

static int pbs_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                     struct hp_err *err)
{
    struct pbs *P = impl;
    char *rc = spec->result_path ? hp_stage_expand(P->stage, spec->result_path, err) : NULL;
    if (spec->result_path && !rc)
        return -1;
    follow(P, job_id, rc, spec->res.walltime);
    free(rc);
    P->jt.next_poll = 0;   /* ask at once: it may have ended long ago */
    return 0;
}

static int pbs_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                      struct hp_err *err)
{
    struct pbs *P = impl;
    return hp_jobtab_status(&P->jt, ids, n, out, poll_jobs, P, err);
}

static int pbs_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct pbs *P = impl;
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    const char *argv[] = { "qdel", id, NULL };
    int status = 0, ret = 0;
    if (!P)
        return hp_err_set(err, HP_ESITE, "pbs: canceling a job needs a connection");
    struct pjob *j = pjob_find(P, id);
    if (j)
        j->canceled = 1;
    if (hp_conn_exec_ex(P->conn, argv, NULL, 0, &out, &eo, &status,
                        hp_site_query_timeout(P->site), HP_EXEC_IDEMPOTENT, err) < 0) {
        ret = -1;
    } else if (status != 0 && (out.len || eo.len) && !strstr(eo.buf, "Unknown Job Id") &&
               !strstr(eo.buf, "has finished") && !strstr(eo.buf, "invalid state") &&
               !strstr(eo.buf, "Request invalid for state")) {
        /* (Slurm's wrapper says nothing for a job that already ended) */
        char *l = pbs_complaint(out.buf, eo.buf);
        ret = hp_err_set(err, HP_ESITE, "pbs: qdel %s: %s", id, l);
        free(l);
    }
    hp_buf_release(&out);
    hp_buf_release(&eo);
    hp_jobtab_poll_soon(&P->jt);
    return ret;
}

static int pbs_wait(void *impl, double timeout)
{
    struct pbs *P = impl;
    return hp_jobtab_wait(&P->jt, timeout);
}

static long pbs_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct pbs *P = impl;
    (void)spec;
    return P ? hp_jobtab_capacity(&P->jt, P->site->max_queued_jobs) : -1;
}

static int pbs_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                       struct hp_err *err)
{
    struct pbs *P = impl;
    return hp_stage_prepare(P->stage, plan, local_dir, NULL, err);
}

static int pbs_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                       const struct hp_jobstate *js, struct hp_err *err)
{
    struct pbs *P = impl;
    if (js->state == HP_JOB_UNKNOWN)
        return 0;
    return hp_stage_collect(P->stage, i, spec, err);
}

int hp_pbs_check(const struct hp_site *site, const struct hp_check_opts *opts,
                 struct hp_check_report *rep, struct hp_err *err);

const struct hp_adapter_ops hp_adapter_pbs = {
    .name = "pbs",
    .render = pbs_render,
    .submit = pbs_submit,
    .status = pbs_status,
    .cancel = pbs_cancel,
    .wait = pbs_wait,
    .capacity = pbs_capacity,
    .open = pbs_open,
    .close = pbs_close,
    .adopt = pbs_adopt,
    .prepare = pbs_prepare,
    .collect = pbs_collect,
    .check = hp_pbs_check,
};
