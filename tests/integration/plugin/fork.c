/* fork.c - an example adapter plugin, "fork": each job is a background
 * process on the site's login host -- this machine when the profile names
 * none, any host reachable by SSH otherwise -- with the campaign's files
 * staged like a batch site's (core/stage.h). Built only against the
 * installed headers (hpcport-adapter.h); test-plugins.sh runs workflows
 * through it. Not a scheduler: no queue, no limit on parallel jobs.
 *
 * A job's script goes to <result file>.sh. It runs under setsid (its
 * process group is its pid, written to <result file>.pid) and, when it
 * ends, a wrapper writes its exit status into the result file
 * (spec->result_path, a temporary name renamed into place). The job id is
 * the result file's path, so that status needs no state of its own: "done
 * N" when the file holds N, running while the pid lives. A second submit of
 * the same attempt finds the files and returns the same id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hpcport-adapter.h"

#define EXEC_TIMEOUT 60.0
#define IDS_PER_CALL 200

struct fork_site {
    const struct hp_site *site;
    struct hp_conn *conn;
    struct hp_stage *stage;
};

static int fork_render(const struct hp_jobspec *spec, const struct hp_site *site,
                       struct hp_buf *out, struct hp_err *err)
{
    (void)err;
    hp_buf_adds(out, "#!/bin/sh\n");
    hp_script_comment(spec, out);
    hp_script_body(spec, site, 0, 1, out);
    return 0;
}

static void *fork_open(const struct hp_site *site, struct hp_err *err)
{
    struct fork_site *F = hp_xcalloc(1, sizeof(*F));
    F->site = site;
    F->conn = hp_conn_open(site, err);
    if (!F->conn) {
        free(F);
        return NULL;
    }
    F->stage = hp_stage_new(F->conn, site);
    return F;
}

static void fork_close(void *impl)
{
    struct fork_site *F = impl;
    if (!F)
        return;
    hp_stage_free(F->stage);
    hp_conn_free(F->conn);
    free(F);
}

/* Run sh -c script with args on the site; its output in out. */
static int sh(struct fork_site *F, const char *script, const char *const *args, size_t nargs,
              const char *in, struct hp_buf *out, struct hp_err *err)
{
    const char **argv = hp_xcalloc(nargs + 5, sizeof(*argv));
    struct hp_buf eo = HP_BUF_INIT;
    int status = 0, ret = -1;
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = "sh";
    if (nargs)
        memcpy(argv + 4, args, nargs * sizeof(*args));
    if (hp_conn_exec(F->conn, argv, in, in ? strlen(in) : 0, out, &eo, &status, EXEC_TIMEOUT,
                     err) < 0)
        goto out;
    if (status != 0) {
        hp_err_set(err, HP_ESITE, "site '%s': fork adapter: %s", F->site->name,
                   eo.len ? eo.buf : "command failed");
        goto out;
    }
    ret = 0;
out:
    hp_buf_release(&eo);
    free(argv);
    return ret;
}

static const char launch[] =
    "r=$2\n"
    "if [ -e \"$r\" ] || [ -e \"$r.pid\" ]; then exit 0; fi\n"   /* submitted before */
    "mkdir -p \"${r%/*}\" && cat > \"$r.sh\" || exit 1\n"
    "if [ \"$1\" -gt 0 ]; then t=\"timeout -k 5 $1\"; else t=; fi\n"
    "setsid sh -c '$3 sh \"$1\"; echo $? > \"$2.tmp\" && mv \"$2.tmp\" \"$2\"' sh \"$r.sh\" \"$r\" "
    "\"$t\" </dev/null >/dev/null 2>&1 &\n"
    "echo $! > \"$r.pid\"\n";

static int fork_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                       struct hp_err *err)
{
    struct fork_site *F = impl;
    struct hp_jobspec sp = *spec;
    struct hp_buf script = HP_BUF_INIT;
    char *paths[4] = { NULL, NULL, NULL, NULL }, secs[32];
    const char **fields[4] = { &sp.workdir, &sp.stdout_path, &sp.stderr_path, &sp.result_path };
    int ret = -1;
    *job_id = NULL;
    /* the site's $SCRATCH and friends, resolved there */
    for (int k = 0; k < 4; k++)
        if (*fields[k] && !(*fields[k] = paths[k] = hp_stage_expand(F->stage, *fields[k], err)))
            goto out;
    if (!sp.result_path) {
        hp_err_set(err, HP_EINTERNAL, "fork adapter: the job spec has no result path");
        goto out;
    }
    if (fork_render(&sp, F->site, &script, err) < 0)
        goto out;
    snprintf(secs, sizeof(secs), "%lld", (long long)sp.res.walltime);
    const char *args[] = { secs, sp.result_path };
    if (sh(F, launch, args, 2, script.buf, NULL, err) < 0)
        goto out;
    *job_id = hp_xstrdup(sp.result_path);
    ret = 0;
out:
    for (int k = 0; k < 4; k++)
        free(paths[k]);
    hp_buf_release(&script);
    return ret;
}

static const char query[] =
    "for r do\n"
    "  if [ -f \"$r\" ]; then echo \"done $(cat \"$r\")\"; continue; fi\n"
    "  p=$(cat \"$r.pid\" 2>/dev/null)\n"
    "  if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then echo running\n"
    "  elif [ -f \"$r\" ]; then echo \"done $(cat \"$r\")\"\n"
    "  else echo gone; fi\n"
    "done\n";

static void parse_state(const char *line, struct hp_jobstate *js)
{
    memset(js, 0, sizeof(*js));
    if (!strncmp(line, "running", 7)) {
        js->state = HP_JOB_ACTIVE;
    } else if (!strncmp(line, "done canceled", 13)) {
        js->state = HP_JOB_CANCELED;
        snprintf(js->reason, sizeof(js->reason), "canceled");
    } else if (!strncmp(line, "done ", 5)) {
        int rc = atoi(line + 5);
        js->exit_code = rc;
        js->timed_out = rc == 124;
        js->state = rc == 0 ? HP_JOB_COMPLETED : HP_JOB_FAILED;
        snprintf(js->reason, sizeof(js->reason), rc == 124 ? "TIMEOUT" : "exit code %d", rc);
    } else {
        js->state = HP_JOB_UNKNOWN;
        snprintf(js->reason, sizeof(js->reason), "no trace of the job on the site");
    }
}

static int fork_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                       struct hp_err *err)
{
    struct fork_site *F = impl;
    for (size_t i = 0; i < n; i += IDS_PER_CALL) {
        size_t m = n - i < IDS_PER_CALL ? n - i : IDS_PER_CALL;
        struct hp_buf o = HP_BUF_INIT;
        if (sh(F, query, ids + i, m, NULL, &o, err) < 0) {
            hp_buf_release(&o);
            return -1;
        }
        const char *line = o.buf;
        for (size_t k = 0; k < m; k++) {
            parse_state(line, &out[i + k]);
            const char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : line + strlen(line);
        }
        hp_buf_release(&o);
    }
    return 0;
}

static const char stop[] =
    "r=$1\n"
    "p=$(cat \"$r.pid\" 2>/dev/null) || exit 0\n"
    "kill -TERM \"-$p\" 2>/dev/null\n"   /* dash: no "--" */
    "[ -f \"$r\" ] || { echo canceled > \"$r.tmp\" && mv \"$r.tmp\" \"$r\"; }\n";

static int fork_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct fork_site *F = impl;
    if (!F)
        return hp_err_set(err, HP_ESITE, "the fork adapter cancels through a connection");
    return sh(F, stop, &id, 1, NULL, NULL, err);
}

static int fork_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                        struct hp_err *err)
{
    struct fork_site *F = impl;
    return hp_stage_prepare(F->stage, plan, local_dir, NULL, err);
}

static int fork_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                        const struct hp_jobstate *js, struct hp_err *err)
{
    struct fork_site *F = impl;
    if (js->state == HP_JOB_UNKNOWN)
        return 0;
    return hp_stage_collect(F->stage, i, spec, err);
}

static int fork_check(const struct hp_site *site, const struct hp_check_opts *opts,
                      struct hp_check_report *rep, struct hp_err *err)
{
    (void)opts;
    struct hp_err cerr;
    hp_err_init(&cerr);
    struct fork_site *F = fork_open(site, &cerr);
    if (!F) {
        hp_check_add(rep, HP_CHECK_FAIL, "reachable", NULL, "%s", cerr.msg);
        return 0;
    }
    struct hp_buf o = HP_BUF_INIT;
    static const char probe[] = "command -v setsid >/dev/null && echo yes || echo no\n";
    if (sh(F, probe, NULL, 0, NULL, &o, &cerr) < 0) {
        hp_check_add(rep, HP_CHECK_FAIL, "reachable", NULL, "%s", cerr.msg);
    } else {
        hp_check_add(rep, HP_CHECK_OK, "reachable", NULL, "commands run there");
        hp_check_add(rep, !strncmp(o.buf, "yes", 3) ? HP_CHECK_OK : HP_CHECK_FAIL, "setsid",
                     NULL, "%s", !strncmp(o.buf, "yes", 3) ? "found"
                                                            : "not found: install util-linux");
    }
    hp_buf_release(&o);
    fork_close(F);
    (void)err;
    return 0;
}

static const struct hp_adapter_ops fork_ops = {
    .name = "fork",
    .render = fork_render,
    .submit = fork_submit,
    .status = fork_status,
    .cancel = fork_cancel,
    .open = fork_open,
    .close = fork_close,
    .prepare = fork_prepare,
    .collect = fork_collect,
    .check = fork_check,
};

HPCPORT_ADAPTER("fork", &fork_ops, "1.0", "jobs as background processes on the login host");
