/* test-slurm.c - the Slurm adapter's pure parts: rendered scripts against
 * golden files, and the parsers against what the test cluster's real Slurm
 * 22.05 printed (tests/fixtures/slurm/, recorded by capture.sh there).
 * Golden files: see adapter-test.h (HP_UPDATE_GOLDEN=1 rewrites them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "adapter-test.h"
#include "adapter.h"
#include "buf.h"
#include "site.h"
#include "slurm-int.h"
#include "stage.h"
#include "util.h"

#define FIX "tests/fixtures/slurm/"

static struct hp_site *golden_site(void)
{
    struct hp_err err;
    hp_err_init(&err);
    struct hp_site_opts o = { .config_dir = "/nonexistent" };
    struct hp_site *s = hp_site_load_file(FIX "golden-site.yaml", &o, &err);
    if (!s)
        fail_msg("%s", err.msg);
    return s;
}

static void golden(const char *name, const struct hp_jobspec *spec, const struct hp_site *site)
{
    char *path = hp_xasprintf(FIX "%s.sbatch", name);
    adapter_golden("slurm", path, spec, site);
    free(path);
}

static const char *const hostile_argv[] = {
    "printf", "%s\\n", "; rm -rf x", "it's", "a\"b", "line1\nline2", "$(touch pwned)",
    "`touch pwned2`", "*", "$HOME", "\\", "", "100%", NULL,
};

static void base_spec(struct hp_jobspec *s)
{
    adapter_base_spec(s, hostile_argv);
    s->partition = "cpu";
}

static void test_render_basic(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    struct hp_jobspec spec;
    base_spec(&spec);
    golden("basic", &spec, site);
    hp_site_free(site);
}

static void test_render_gpu_container_mpi(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    struct hp_jobspec spec;
    base_spec(&spec);
    spec.instance = "train";
    spec.job_name = "demo.train";
    spec.token = "hpfedcba9876543210.2-00c0ffee";
    spec.attempt = 2;
    spec.res.nodes = 2;
    spec.res.ntasks = 8;
    spec.res.cores = 2;
    spec.res.gpus = 4;
    spec.res.gpu_type = "a100";
    spec.partition = "gpu";               /* its own qos */
    spec.container = "docker://ghcr.io/x/y:1.0";
    spec.stdout_path = "/scratch/u/hpcport/demo/logs/train.2.out";
    spec.stderr_path = "/scratch/u/hpcport/demo/logs/train.2.err";
    spec.workdir = "/scratch/u/hpcport/demo/work";
    golden("gpu-container-mpi", &spec, site);
    hp_site_free(site);
}

static void test_render_shell_minimal(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    struct hp_jobspec spec;
    memset(&spec, 0, sizeof(spec));
    spec.campaign = "c";
    spec.instance = "post";
    spec.job_name = "c.post";
    spec.attempt = 1;
    spec.shell = "echo \"$HOSTNAME\" > 'out put.txt' && cat *.dat | wc -l";
    spec.stdout_path = "/s/logs/post.1.out";
    spec.stderr_path = "/s/logs/post.1.err";
    golden("shell-minimal", &spec, site);
    hp_site_free(site);
}

static void test_render_refuses_line_breaks(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    const struct hp_adapter_ops *ad = hp_adapter_find("slurm");
    struct hp_jobspec spec;
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err err;
    base_spec(&spec);
    spec.partition = "cpu\n#SBATCH --uid=0";
    hp_err_init(&err);
    assert_int_equal(ad->render(&spec, site, &out, &err), -1);
    assert_non_null(strstr(err.msg, "line break"));
    base_spec(&spec);
    spec.stdout_path = "/s/logs/a\"b.out";
    hp_err_init(&err);
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), -1);
    assert_non_null(strstr(err.msg, "double quote"));
    hp_buf_release(&out);
    hp_site_free(site);
}

/* ---- states ---- */

static void map(const char *state, int have_exit, int code, int sig, int64_t limit,
                struct hp_jobstate *js)
{
    struct slurm_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.state, sizeof(r.state), "%s", state);
    r.cancel_uid = -1;
    r.have_exit = have_exit;
    r.exit_code = code;
    r.signal = sig;
    r.limit = limit;
    slurm_map_state(&r, js);
}

static void test_every_state(void **state)
{
    (void)state;
    static const struct { const char *name; enum hp_jobstate_kind kind; int final; } t[] = {
        { "PENDING", HP_JOB_QUEUED, 0 }, { "CONFIGURING", HP_JOB_QUEUED, 0 },
        { "REQUEUED", HP_JOB_QUEUED, 0 }, { "REQUEUE_HOLD", HP_JOB_QUEUED, 0 },
        { "REQUEUE_FED", HP_JOB_QUEUED, 0 }, { "RESV_DEL_HOLD", HP_JOB_QUEUED, 0 },
        { "POWER_UP_NODE", HP_JOB_QUEUED, 0 }, { "RUNNING", HP_JOB_ACTIVE, 0 },
        { "COMPLETING", HP_JOB_ACTIVE, 0 }, { "SUSPENDED", HP_JOB_ACTIVE, 0 },
        { "STOPPED", HP_JOB_ACTIVE, 0 }, { "RESIZING", HP_JOB_ACTIVE, 0 },
        { "SIGNALING", HP_JOB_ACTIVE, 0 }, { "STAGE_OUT", HP_JOB_ACTIVE, 0 },
        { "COMPLETED", HP_JOB_COMPLETED, 1 }, { "FAILED", HP_JOB_FAILED, 1 },
        { "TIMEOUT", HP_JOB_FAILED, 1 }, { "OUT_OF_MEMORY", HP_JOB_FAILED, 1 },
        { "NODE_FAIL", HP_JOB_FAILED, 1 }, { "BOOT_FAIL", HP_JOB_FAILED, 1 },
        { "PREEMPTED", HP_JOB_FAILED, 1 }, { "DEADLINE", HP_JOB_FAILED, 1 },
        { "SPECIAL_EXIT", HP_JOB_FAILED, 1 }, { "REVOKED", HP_JOB_FAILED, 1 },
        { "CANCELLED", HP_JOB_CANCELED, 1 },
        /* a state some future Slurm invents: wait, never run it twice */
        { "WARPING", HP_JOB_QUEUED, 0 },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct hp_jobstate js;
        map(t[i].name, 1, 0, 0, 0, &js);
        if (js.state != t[i].kind)
            fail_msg("%s mapped to %s", t[i].name, hp_jobstate_name(js.state));
        assert_int_equal(slurm_state_final(t[i].name), t[i].final);
        if (t[i].kind == HP_JOB_FAILED)
            assert_true(js.reason[0] != '\0');
    }
    struct hp_jobstate js;
    map("TIMEOUT", 1, 0, 15, 60, &js);
    assert_string_equal(js.reason, "TIMEOUT (walltime 00:01:00)");
    assert_true(js.timed_out);
    map("OUT_OF_MEMORY", 1, 0, 9, 0, &js);
    assert_string_equal(js.reason, "OUT_OF_MEMORY (the job exceeded its memory limit)");
    assert_int_equal(js.signal, 0);
    map("NODE_FAIL", 1, 0, 0, 0, &js);
    assert_non_null(strstr(js.reason, "NODE_FAIL"));
    map("FAILED", 1, 3, 0, 0, &js);
    assert_string_equal(js.reason, "exit code 3");
    assert_int_equal(js.exit_code, 3);
    map("FAILED", 1, 0, 9, 0, &js);
    assert_string_equal(js.reason, "killed by signal 9 (KILL)");
    assert_int_equal(js.signal, 9);
    map("FAILED", 1, 0, 0, 0, &js);
    assert_string_equal(js.reason, "FAILED (exit code unknown)");
    map("WARPING", 0, 0, 0, 0, &js);
    assert_string_equal(js.reason, "Slurm state 'WARPING'");
}

static void test_limits_versions_names(void **state)
{
    (void)state;
    assert_int_equal(slurm_parse_limit("30:00"), 1800);
    assert_int_equal(slurm_parse_limit("1:00"), 60);
    assert_int_equal(slurm_parse_limit("00:01:00"), 60);
    assert_int_equal(slurm_parse_limit("2:00:00"), 7200);
    assert_int_equal(slurm_parse_limit("5"), 300);
    assert_int_equal(slurm_parse_limit("1-00:00:00"), 86400);
    assert_int_equal(slurm_parse_limit("2-12"), 2 * 86400 + 12 * 3600);
    assert_int_equal(slurm_parse_limit("1-2:30"), 86400 + 2 * 3600 + 30 * 60);
    assert_int_equal(slurm_parse_limit("UNLIMITED"), -1);
    assert_int_equal(slurm_parse_limit("Partition_Limit"), 0);
    assert_int_equal(slurm_parse_limit(""), 0);
    assert_int_equal(slurm_parse_limit("1:2:3:4"), 0);
    int ma, mi;
    char *v = slurp(FIX "version.txt");
    assert_int_equal(slurm_parse_version(v, &ma, &mi), 0);
    assert_int_equal(ma, 22);
    assert_int_equal(mi, 5);
    free(v);
    assert_int_equal(slurm_parse_version("slurm 23.11.4", &ma, &mi), 0);
    assert_int_equal(ma, 23);
    assert_int_equal(mi, 11);
    assert_int_equal(slurm_parse_version("bash: sbatch: not found", &ma, &mi), -1);
    char id[32];
    assert_int_equal(slurm_parse_sbatch("12345\n", id, sizeof(id)), 0);
    assert_string_equal(id, "12345");
    assert_int_equal(slurm_parse_sbatch("678;cluster2\n", id, sizeof(id)), 0);
    assert_string_equal(id, "678");
    assert_int_equal(slurm_parse_sbatch("sbatch: warning: x\n91\n", id, sizeof(id)), 0);
    assert_string_equal(id, "91");
    assert_int_equal(slurm_parse_sbatch("", id, sizeof(id)), -1);
    assert_int_equal(slurm_parse_sbatch("Submitted batch job 5\n", id, sizeof(id)), -1);
    /* tokens in job names */
    const char *t = slurm_name_token("demo.sim.hp0123456789abcdef.12-00c0ffee");
    assert_non_null(t);
    assert_string_equal(t, "hp0123456789abcdef.12-00c0ffee");
    assert_null(slurm_name_token("demo.sim.hp0123456789abcdef.12"));      /* plan token */
    assert_null(slurm_name_token("hp0123456789abcdef.1-00c0ffee"));       /* no name */
    assert_null(slurm_name_token("x.hp0123456789abcdeg.1-00c0ffee"));     /* not hex */
    assert_null(slurm_name_token("x.hp0123456789abcdef.1-00c0ffee.more"));
    assert_non_null(slurm_name_token("a.hpx.b.hp0123456789abcdef.1-ab"));
    struct hp_jobspec s;
    memset(&s, 0, sizeof(s));
    s.job_name = "c.t";
    s.token = "hp0123456789abcdef.3-deadbeef";
    char *n = slurm_job_name(&s);
    assert_string_equal(n, "c.t.hp0123456789abcdef.3-deadbeef");
    assert_string_equal(slurm_name_token(n), s.token);
    free(n);
}

/* ---- recorded outputs: jobs.txt says what each fx-<state> job was made to do ---- */

struct expect {
    const char *job;          /* fx-<job> in jobs.txt */
    enum hp_jobstate_kind kind;
    const char *reason;       /* substring, or NULL */
    int exit_code, signal;    /* checked when kind is failed/completed */
};

static const struct expect recorded[] = {
    { "completed", HP_JOB_COMPLETED, NULL, 0, 0 },
    { "failed", HP_JOB_FAILED, "exit code 3", 3, 0 },
    { "signaled", HP_JOB_FAILED, "killed by signal 9 (KILL)", -1, 9 },
    { "timeout", HP_JOB_FAILED, "TIMEOUT (walltime 00:01:00)", -2, -2 },
    { "cancelled", HP_JOB_CANCELED, "CANCELLED", -2, -2 },
    { "held", HP_JOB_QUEUED, "JobHeldUser", -2, -2 },
    { "deadline", HP_JOB_FAILED, "DEADLINE", -1, 0 },
    { "nodefail", HP_JOB_FAILED, "NODE_FAIL", -1, 0 },
    { "running", HP_JOB_ACTIVE, NULL, -2, -2 },
};

static const char *job_id_of(const char *jobs, const char *name, char *buf, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s ", name);
    for (const char *p = jobs; p && *p;) {
        if (!strncmp(p, pat, strlen(pat))) {
            snprintf(buf, len, "%.*s", (int)strcspn(p + strlen(pat), "\n"), p + strlen(pat));
            return buf;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    fail_msg("no job '%s' in jobs.txt", name);
    return NULL;
}

static const struct slurm_rec *find(const struct slurm_rec *r, size_t n, const char *id)
{
    const struct slurm_rec *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i].id, id))
            found = &r[i];     /* the last one wins, as in the adapter */
    return found;
}

static void check_recorded(const struct slurm_rec *recs, size_t n, const char *what,
                           int exit_reliable)
{
    char *jobs = slurp(FIX "jobs.txt");
    for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++) {
        const struct expect *x = &recorded[i];
        char id[32];
        job_id_of(jobs, x->job, id, sizeof(id));
        const struct slurm_rec *r = find(recs, n, id);
        if (!r)
            fail_msg("%s: no record of job %s (%s)", what, id, x->job);
        struct hp_jobstate js;
        slurm_map_state(r, &js);
        if (js.state != x->kind)
            fail_msg("%s: fx-%s (job %s, %s) mapped to %s", what, x->job, id, r->state,
                     hp_jobstate_name(js.state));
        if (x->reason && !strstr(js.reason, x->reason) &&
            (exit_reliable || x->exit_code == -2 || x->kind != HP_JOB_FAILED))
            fail_msg("%s: fx-%s: reason '%s' lacks '%s'", what, x->job, js.reason, x->reason);
        if (exit_reliable && x->exit_code != -2)
            assert_int_equal(js.exit_code, x->exit_code);
        if (exit_reliable && x->signal != -2)
            assert_int_equal(js.signal, x->signal);
    }
    free(jobs);
}

static void test_squeue_text(void **state)
{
    (void)state;
    char *text = slurp(FIX "squeue.txt");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    assert_int_equal(slurm_parse_squeue_text(text, &r, &n, &alloc), 0);
    assert_int_equal(n, 12);
    check_recorded(r, n, "squeue.txt", 1);
    /* the raw wait status: 768 is exit 3 */
    char *jobs = slurp(FIX "jobs.txt");
    char id[32];
    const struct slurm_rec *f = find(r, n, job_id_of(jobs, "failed", id, sizeof(id)));
    assert_int_equal(f->exit_code, 3);
    assert_string_equal(f->reason, "NonZeroExitCode");
    const struct slurm_rec *t = find(r, n, job_id_of(jobs, "timeout", id, sizeof(id)));
    assert_int_equal(t->limit, 60);
    const struct slurm_rec *s = find(r, n, job_id_of(jobs, "specialexit", id, sizeof(id)));
    assert_string_equal(s->state, "SPECIAL_EXIT");
    free(jobs);
    free(r);
    free(text);
}

static void test_sacct_text(void **state)
{
    (void)state;
    char *text = slurp(FIX "sacct.txt");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    assert_int_equal(slurm_parse_sacct_text(text, &r, &n, &alloc), 0);
    assert_int_equal(n, 12);
    check_recorded(r, n, "sacct.txt", 1);
    char *jobs = slurp(FIX "jobs.txt");
    char id[32];
    const struct slurm_rec *c = find(r, n, job_id_of(jobs, "cancelled", id, sizeof(id)));
    assert_int_equal(c->cancel_uid, 0);
    struct hp_jobstate js;
    slurm_map_state(c, &js);
    assert_string_equal(js.reason, "CANCELLED by uid 0");
    const struct slurm_rec *f = find(r, n, job_id_of(jobs, "failed", id, sizeof(id)));
    assert_string_equal(f->name, "fx-failed");
    free(jobs);
    free(r);
    free(text);
}

static void test_squeue_json(void **state)
{
    (void)state;
    char *text = slurp(FIX "squeue.json");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(slurm_parse_squeue_json(text, &r, &n, &alloc, &err), 0);
    assert_int_equal(n, 12);
    check_recorded(r, n, "squeue.json", 1);
    free(r);
    free(text);
    n = 0;
    r = NULL;
    alloc = 0;
    hp_err_init(&err);
    assert_int_equal(slurm_parse_squeue_json("squeue: error: x", &r, &n, &alloc, &err), -1);
    assert_int_equal(err.code, HP_ESITE);
    /* the shapes of Slurm 23.x and later */
    static const char newer[] =
        "{\"jobs\": [{\"job_id\": 7, \"job_state\": [\"FAILED\"], \"name\": \"n\","
        "\"exit_code\": {\"status\": [\"EXITED\"], \"return_code\": {\"set\": true, "
        "\"infinite\": false, \"number\": 2}, \"signal\": {\"id\": {\"set\": false, "
        "\"infinite\": false, \"number\": 0}, \"name\": \"\"}},"
        "\"time_limit\": {\"set\": true, \"infinite\": false, \"number\": 90},"
        "\"state_reason\": \"NonZeroExitCode\"}]}";
    hp_err_init(&err);
    assert_int_equal(slurm_parse_squeue_json(newer, &r, &n, &alloc, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].state, "FAILED");
    assert_int_equal(r[0].exit_code, 2);
    assert_int_equal(r[0].signal, 0);
    assert_int_equal(r[0].limit, 5400);
    free(r);
}

static void test_sacct_json(void **state)
{
    (void)state;
    char *text = slurp(FIX "sacct.json");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(slurm_parse_sacct_json(text, &r, &n, &alloc, &err), 0);
    assert_true(n >= 12);
    /* states map; exit codes do not: 22.05 prints return_code 0 for the job
     * that exited 3 (the reason the adapter uses text there) */
    check_recorded(r, n, "sacct.json", 0);
    char *jobs = slurp(FIX "jobs.txt");
    char id[32];
    const struct slurm_rec *f = find(r, n, job_id_of(jobs, "failed", id, sizeof(id)));
    assert_string_equal(f->state, "FAILED");
    assert_int_equal(f->exit_code, 0);   /* the recorded 22.05 defect */
    const struct slurm_rec *s = find(r, n, job_id_of(jobs, "signaled", id, sizeof(id)));
    assert_int_equal(s->signal, 9);
    free(jobs);
    free(r);
    free(text);
}

static void test_lookup_text(void **state)
{
    (void)state;
    char *text = slurp(FIX "lookup.txt");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    assert_int_equal(slurm_parse_lookup_text(text, &r, &n, &alloc), 0);
    assert_int_equal(n, 12);
    char *jobs = slurp(FIX "jobs.txt");
    char id[32];
    const struct slurm_rec *x = find(r, n, job_id_of(jobs, "nodefail", id, sizeof(id)));
    assert_string_equal(x->name, "fx-nodefail");
    assert_string_equal(x->state, "NODE_FAIL");
    free(jobs);
    free(r);
    free(text);
    /* names with '|' keep everything after the second field */
    r = NULL;
    n = alloc = 0;
    slurm_parse_lookup_text("12|RUNNING|a|b.hp0123456789abcdef.1-ab|\nnot a line\n", &r, &n,
                            &alloc);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].name, "a|b.hp0123456789abcdef.1-ab");
    free(r);
}

static void test_local_paths(void **state)
{
    (void)state;
    char *p = hp_stage_local_path("$SCRATCH/hpcport/c", "/home/u/.local/state/hpcport/campaigns/c",
                                  "$SCRATCH/hpcport/c/logs/a.1.out");
    assert_string_equal(p, "/home/u/.local/state/hpcport/campaigns/c/logs/a.1.out");
    free(p);
    p = hp_stage_local_path("/s/c", "/l/c", "/s/cc/logs/x");
    assert_string_equal(p, "/s/cc/logs/x");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_basic),
        cmocka_unit_test(test_render_gpu_container_mpi),
        cmocka_unit_test(test_render_shell_minimal),
        cmocka_unit_test(test_render_refuses_line_breaks),
        cmocka_unit_test(test_every_state),
        cmocka_unit_test(test_limits_versions_names),
        cmocka_unit_test(test_squeue_text),
        cmocka_unit_test(test_sacct_text),
        cmocka_unit_test(test_squeue_json),
        cmocka_unit_test(test_sacct_json),
        cmocka_unit_test(test_lookup_text),
        cmocka_unit_test(test_local_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
