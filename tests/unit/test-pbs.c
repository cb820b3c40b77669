/* test-pbs.c - the PBS adapter's pure parts: rendered scripts against golden
 * files for both dialects, job names and tokens, the state model, and the
 * parsers on real qstat/qsub outputs in tests/fixtures/pbs/ (PBS Pro and
 * TORQUE outputs transcribed from public sources, see README.md there; Slurm
 * qsub/qstat wrapper outputs recorded on the test cluster by capture.sh).
 *
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
#include "pbs-int.h"
#include "site.h"
#include "util.h"

#define FIX "tests/fixtures/pbs/"

static struct hp_site *site_load_set(const char *name, const char *set)
{
    struct hp_err err;
    hp_err_init(&err);
    const char *sets[] = { set };
    struct hp_site_opts o = { .config_dir = "/nonexistent", .sets = sets, .nsets = set ? 1 : 0 };
    char *path = hp_xasprintf(FIX "%s.yaml", name);
    struct hp_site *s = hp_site_load_file(path, &o, &err);
    free(path);
    if (!s)
        fail_msg("%s", err.msg);
    return s;
}

static struct hp_site *site_load(const char *name)
{
    return site_load_set(name, NULL);
}

static void golden(const char *name, const struct hp_jobspec *spec, const struct hp_site *site)
{
    char *path = hp_xasprintf(FIX "%s.pbs", name);
    adapter_golden("pbs", path, spec, site);
    free(path);
}

static const char *const hostile_argv[] = {
    "printf", "%s\\n", "; rm -rf x", "it's", "a\"b", "line1\nline2", "$(touch pwned)",
    "`touch pwned2`", "*", "$HOME", "\\", "", "100%", "#PBS -q other", NULL,
};

static void base_spec(struct hp_jobspec *s)
{
    adapter_base_spec(s, hostile_argv);
    s->result_path = "$SCRATCH/hpcport/demo/logs/sim%5Bi%3D1%2Cs%3Da%20b%5D.1.rc";
}

/* 2 nodes, 8 ranks of 2 cores, 4 GPUs per node, a container */
static void big_spec(struct hp_jobspec *s)
{
    base_spec(s);
    s->instance = "train";
    s->job_name = "demo.train";
    s->token = "hpfedcba9876543210.2-00c0ffee";
    s->attempt = 2;
    s->res.nodes = 2;
    s->res.ntasks = 8;
    s->res.cores = 2;
    s->res.gpus = 4;
    s->res.memory_mb = 65536;
    s->res.walltime = 30 * 3600;    /* hours past 24 stay hours */
    s->container = "docker://ghcr.io/x/y:1.0";
    s->stdout_path = "/scratch/u/hpcport/demo/logs/train.2.out";
    s->stderr_path = "/scratch/u/hpcport/demo/logs/train.2.err";
    s->result_path = "/scratch/u/hpcport/demo/logs/train.2.rc";
    s->workdir = "/scratch/u/hpcport/demo/work";
}

/* base_spec in queue and big_spec in big_queue on the golden site of a
 * dialect: PREFIX-basic.pbs and PREFIX-gpu-container-mpi.pbs */
static void render_dialect(const char *site_name, const char *prefix, const char *queue,
                           const char *big_queue)
{
    struct hp_site *site = site_load(site_name);
    struct hp_jobspec spec;
    char name[64];
    base_spec(&spec);
    spec.partition = queue;
    snprintf(name, sizeof(name), "%s-basic", prefix);
    golden(name, &spec, site);
    big_spec(&spec);
    spec.partition = big_queue;
    snprintf(name, sizeof(name), "%s-gpu-container-mpi", prefix);
    golden(name, &spec, site);
    hp_site_free(site);
}

static void test_render_pbspro(void **state)
{
    (void)state;
    render_dialect("golden-pbspro", "pro", "prod", "debug-scaling");
}

static void test_render_torque(void **state)
{
    (void)state;
    render_dialect("golden-torque", "torque", "batch", "batch");
}

/* user values everywhere a user can put them: argv (above), a shell
 * script, env, an instance id with a line break, a token-less job name */
static void test_render_hostile(void **state)
{
    (void)state;
    static const struct hp_kv env[] = {
        { (char *)"A", (char *)"$(touch pwned)'\"\n#PBS -q x" },
        { (char *)"B", (char *)"`id` ; exit 0" },
    };
    struct hp_site *site = site_load("golden-torque");
    struct hp_jobspec spec;
    memset(&spec, 0, sizeof(spec));
    spec.campaign = "c\n#PBS -q evil";
    spec.instance = "post[x=a'b\"c\n#PBS -l nodes=99]";
    spec.job_name = "9c.post";
    spec.attempt = 1;
    spec.shell = "echo \"$HOSTNAME\" > 'out put.txt' && cat *.dat | wc -l; exit $?";
    spec.env = env;
    spec.nenv = 2;
    spec.stdout_path = "/s/logs/post.1.out";
    spec.stderr_path = "/s/logs/post.1.err";
    golden("torque-hostile", &spec, site);
    hp_site_free(site);
}

static void test_render_refuses(void **state)
{
    (void)state;
    struct hp_site *site = site_load("golden-pbspro");
    const struct hp_adapter_ops *ad = hp_adapter_find("pbs");
    struct hp_jobspec spec;
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err err;
    static const struct { const char *partition, *stdout_path, *want; } t[] = {
        { "prod\n#PBS -q evil", NULL, "line break" },
        { "pr od", NULL, "blank" },
        { NULL, "/s/logs/a b.out", "blank" },
        { NULL, "/s/logs/host:a.out", "':'" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        base_spec(&spec);
        if (t[i].partition)
            spec.partition = t[i].partition;
        if (t[i].stdout_path)
            spec.stdout_path = t[i].stdout_path;
        hp_err_init(&err);
        hp_buf_reset(&out);
        assert_int_equal(ad->render(&spec, site, &out, &err), -1);
        if (!strstr(err.msg, t[i].want) || !strstr(err.msg, "pbs: "))
            fail_msg("case %zu: %s", i, err.msg);
    }
    hp_buf_release(&out);
    hp_site_free(site);
}

/* place: scatter for several nodes unless a site directive places them;
 * gpu_request: none */
static void test_render_place(void **state)
{
    (void)state;
    struct hp_site *site = site_load("golden-pbspro");
    const struct hp_adapter_ops *ad = hp_adapter_find("pbs");
    struct hp_jobspec spec;
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err err;
    hp_err_init(&err);
    big_spec(&spec);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_null(strstr(out.buf, "#PBS -l place=scatter\n"));
    assert_non_null(strstr(out.buf, "#PBS -l place=scatter:excl\n"));
    hp_site_free(site);
    site = site_load_set("golden-pbspro", "scheduler.directives=[\"-l filesystems=home:eagle\"]");
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_non_null(strstr(out.buf, "#PBS -l place=scatter\n"));
    base_spec(&spec);
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_null(strstr(out.buf, "place="));
    assert_non_null(strstr(out.buf, "#PBS -l select=1:ncpus=4:mem=8192mb\n"));
    /* whole nodes, no GPU option (Polaris) */
    hp_site_free(site);
    site = site_load_set("golden-pbspro", "scheduler.gpu_request=none");
    big_spec(&spec);
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_non_null(strstr(out.buf, "#PBS -l select=2:ncpus=8:mpiprocs=4:mem=65536mb\n"));
    /* a site that takes no memory option: none in either dialect */
    hp_site_free(site);
    site = site_load_set("golden-pbspro", "scheduler.memory_request=none");
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_null(strstr(out.buf, "mem="));
    hp_site_free(site);
    site = site_load_set("golden-torque", "scheduler.memory_request=none");
    hp_buf_reset(&out);
    assert_int_equal(ad->render(&spec, site, &out, &err), 0);
    assert_non_null(strstr(out.buf, "#PBS -l nodes=2"));
    assert_null(strstr(out.buf, "mem="));
    hp_buf_release(&out);
    hp_site_free(site);
}

/* ---- names and tokens ---- */

static void test_names(void **state)
{
    (void)state;
    struct hp_jobspec spec;
    char tok[128];
    base_spec(&spec);
    char *n = pbs_job_name(&spec, PBS_PRO);
    assert_string_equal(n, "hp0123456789abcdef.1-00c0ffee.demo.sim");
    assert_int_equal(pbs_name_token(n, tok, sizeof(tok)), 0);
    assert_string_equal(tok, spec.token);
    free(n);
    /* a long name is cut, the token stays whole at the front */
    spec.job_name = "campaign-with-a-rather-long-name.and-a-task-whose-name-is-long-too-xxxxxxxx";
    n = pbs_job_name(&spec, PBS_TORQUE);
    assert_int_equal(strlen(n), pbs_name_max(PBS_TORQUE));
    assert_int_equal(pbs_name_token(n, tok, sizeof(tok)), 0);
    assert_string_equal(tok, spec.token);
    free(n);
    n = pbs_job_name(&spec, PBS_PRO);
    assert_true(strlen(n) < pbs_name_max(PBS_PRO));
    free(n);
    /* a server that cuts right after the token */
    assert_int_equal(pbs_name_token("hp0123456789abcdef.1-00c0ffee", tok, sizeof(tok)), 0);
    /* not tokens */
    assert_int_equal(pbs_name_token("hp0123456789abcdef.1-00c0ffeeX", tok, sizeof(tok)), -1);
    assert_int_equal(pbs_name_token("demo.sim.hp0123456789abcdef.1-00c0ffee", tok, sizeof(tok)),
                     -1);
    assert_int_equal(pbs_name_token("hp0123456789abcde.1-0", tok, sizeof(tok)), -1);
    assert_int_equal(pbs_name_token("STDIN", tok, sizeof(tok)), -1);
    assert_int_equal(pbs_name_token("", tok, sizeof(tok)), -1);
    /* no token: a name that starts with a letter */
    spec.token = NULL;
    spec.job_name = "2024run.sim";
    n = pbs_job_name(&spec, PBS_PRO);
    assert_string_equal(n, "j2024run.sim");
    free(n);
    assert_int_equal(pbs_dialect_of(NULL), PBS_PRO);
    assert_int_equal(pbs_dialect_of("torque"), PBS_TORQUE);
    assert_int_equal(pbs_dialect_of("lsf"), -1);
}

static void test_ids_and_durations(void **state)
{
    (void)state;
    char id[128];
    char *q = slurp(FIX "wrapper-qsub.txt");
    assert_int_equal(pbs_parse_qsub(q, id, sizeof(id)), 0);
    assert_string_equal(id, "3");
    free(q);
    assert_int_equal(pbs_parse_qsub("\n12345.pbs01.example.org\n", id, sizeof(id)), 0);
    assert_string_equal(id, "12345.pbs01.example.org");
    assert_int_equal(pbs_parse_qsub("4567[].srv\r\n", id, sizeof(id)), 0);
    assert_string_equal(id, "4567[].srv");
    assert_int_equal(pbs_parse_qsub("qsub: Unknown queue\n", id, sizeof(id)), -1);
    assert_int_equal(pbs_parse_qsub("", id, sizeof(id)), -1);
    assert_int_equal(pbs_parse_qsub("12 34\n", id, sizeof(id)), -1);
    assert_true(pbs_id_match("1234", "1234.server"));
    assert_true(pbs_id_match("1234.server", "1234"));
    assert_true(pbs_id_match("1234.s", "1234.s"));
    assert_false(pbs_id_match("1234.a", "1234.b"));
    assert_false(pbs_id_match("123", "1234"));
    assert_int_equal(pbs_parse_hms("00:01:00"), 60);
    assert_int_equal(pbs_parse_hms("48:00:00"), 48 * 3600);
    assert_int_equal(pbs_parse_hms("10:30"), 630);
    assert_int_equal(pbs_parse_hms("90"), 90);
    assert_int_equal(pbs_parse_hms("1-00:00:00"), -1);
    assert_int_equal(pbs_parse_hms(""), -1);
    char buf[32];
    pbs_format_hms(30 * 3600 + 61, buf, sizeof(buf));
    assert_string_equal(buf, "30:01:01");
}

/* ---- states ---- */

static void rec_of(char state, int have_exit, int status, struct pbs_rec *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "1.srv");
    r->state = state;
    r->have_exit = have_exit;
    r->exit_status = status;
    r->substate = -1;
    r->used_walltime = -1;
    r->limit_walltime = -1;
}

static void test_every_state(void **state)
{
    (void)state;
    static const struct { enum pbs_dialect d; char s; enum hp_jobstate_kind kind; } t[] = {
        { PBS_PRO, 'Q', HP_JOB_QUEUED }, { PBS_PRO, 'H', HP_JOB_QUEUED },
        { PBS_PRO, 'W', HP_JOB_QUEUED }, { PBS_PRO, 'T', HP_JOB_QUEUED },
        { PBS_PRO, 'R', HP_JOB_ACTIVE }, { PBS_PRO, 'E', HP_JOB_ACTIVE },
        { PBS_PRO, 'S', HP_JOB_ACTIVE }, { PBS_PRO, 'U', HP_JOB_ACTIVE },
        { PBS_PRO, 'B', HP_JOB_ACTIVE }, { PBS_PRO, 'M', HP_JOB_FAILED },
        { PBS_PRO, 'Z', HP_JOB_QUEUED },         /* a letter some PBS invents */
        { PBS_TORQUE, 'Q', HP_JOB_QUEUED }, { PBS_TORQUE, 'H', HP_JOB_QUEUED },
        { PBS_TORQUE, 'W', HP_JOB_QUEUED }, { PBS_TORQUE, 'R', HP_JOB_ACTIVE },
        { PBS_TORQUE, 'E', HP_JOB_ACTIVE }, { PBS_TORQUE, 'S', HP_JOB_ACTIVE },
        { PBS_TORQUE, 'F', HP_JOB_QUEUED },      /* not a TORQUE state */
    };
    struct pbs_rec r;
    struct hp_jobstate js;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        rec_of(t[i].s, 0, 0, &r);
        assert_int_equal(pbs_map_state(t[i].d, &r, &js), 0);
        if (js.state != t[i].kind)
            fail_msg("%s %c mapped to %s", pbs_dialect_name(t[i].d), t[i].s,
                     hp_jobstate_name(js.state));
    }
    rec_of('H', 0, 0, &r);
    pbs_map_state(PBS_PRO, &r, &js);
    assert_string_equal(js.reason, "held (H)");
    /* the final states: F and X (PBS Pro), C (TORQUE) */
    static const struct { enum pbs_dialect d; char s; } fin[] = {
        { PBS_PRO, 'F' }, { PBS_PRO, 'X' }, { PBS_TORQUE, 'C' },
    };
    for (size_t i = 0; i < sizeof(fin) / sizeof(fin[0]); i++) {
        assert_true(pbs_state_final(fin[i].d, fin[i].s));
        rec_of(fin[i].s, 1, 0, &r);
        assert_int_equal(pbs_map_state(fin[i].d, &r, &js), 0);
        assert_int_equal(js.state, HP_JOB_COMPLETED);
        rec_of(fin[i].s, 1, 3, &r);
        pbs_map_state(fin[i].d, &r, &js);
        assert_int_equal(js.state, HP_JOB_FAILED);
        assert_int_equal(js.exit_code, 3);
        assert_string_equal(js.reason, "exit code 3");
        /* without an exit status: the caller reads the exit record */
        rec_of(fin[i].s, 0, 0, &r);
        assert_int_equal(pbs_map_state(fin[i].d, &r, &js), 1);
    }
    assert_false(pbs_state_final(PBS_PRO, 'E'));
    assert_false(pbs_state_final(PBS_TORQUE, 'F'));
    /* killed by a signal: 256 + N */
    rec_of('F', 1, 265, &r);
    pbs_map_state(PBS_PRO, &r, &js);
    assert_int_equal(js.state, HP_JOB_FAILED);
    assert_int_equal(js.signal, 9);
    assert_string_equal(js.reason, "killed by signal 9 (KILL)");
    /* ... at the walltime: 271 with the used walltime at the limit */
    rec_of('F', 1, 271, &r);
    r.used_walltime = 125;
    r.limit_walltime = 120;
    pbs_map_state(PBS_PRO, &r, &js);
    assert_true(js.timed_out);
    assert_int_equal(js.signal, 15);
    assert_string_equal(js.reason, "killed by signal 15 at its walltime (00:02:00)");
    /* the walltime codes differ: PBS Pro -29, TORQUE -11 */
    rec_of('F', 1, -29, &r);
    r.limit_walltime = 3600;
    pbs_map_state(PBS_PRO, &r, &js);
    assert_true(js.timed_out);
    assert_string_equal(js.reason,
                        "killed: walltime exceeded (limit 01:00:00; PBS exit status -29)");
    rec_of('F', 1, -11, &r);
    pbs_map_state(PBS_PRO, &r, &js);
    assert_false(js.timed_out);
    assert_string_equal(js.reason, "the job was rerun (PBS exit status -11)");
    rec_of('C', 1, -11, &r);
    pbs_map_state(PBS_TORQUE, &r, &js);
    assert_true(js.timed_out);
    assert_int_equal(js.state, HP_JOB_FAILED);
    rec_of('C', 1, -99, &r);
    pbs_map_state(PBS_TORQUE, &r, &js);
    assert_string_equal(js.reason, "the scheduler ended the job (PBS exit status -99)");
}

static void test_rcfile(void **state)
{
    (void)state;
    struct hp_jobstate js;
    assert_int_equal(pbs_map_rcfile("0 12", 60, &js), 0);
    assert_int_equal(js.state, HP_JOB_COMPLETED);
    assert_int_equal(pbs_map_rcfile("3 1", 60, &js), 0);
    assert_int_equal(js.state, HP_JOB_FAILED);
    assert_int_equal(js.exit_code, 3);
    /* the shell's 128+N: TERM at the walltime (the elapsed time says so) */
    assert_int_equal(pbs_map_rcfile("143 61", 60, &js), 0);
    assert_int_equal(js.signal, 15);
    assert_true(js.timed_out);
    assert_string_equal(js.reason, "killed by signal 15 at its walltime (00:01:00)");
    /* ... and TERM long before it (qdel) */
    assert_int_equal(pbs_map_rcfile("143 10", 600, &js), 0);
    assert_false(js.timed_out);
    assert_string_equal(js.reason, "killed by signal 15 (TERM)");
    assert_int_equal(pbs_map_rcfile("137", 0, &js), 0);
    assert_int_equal(js.signal, 9);
    assert_int_equal(pbs_map_rcfile("", 60, &js), -1);
    assert_int_equal(pbs_map_rcfile("x 1", 60, &js), -1);
    assert_int_equal(pbs_map_rcfile("-1 1", 60, &js), -1);
    assert_int_equal(pbs_map_rcfile(NULL, 60, &js), -1);
}

/* ---- parsers on recorded outputs ---- */

static int digest(const char *file, int json, int status, const char *errfile,
                  struct pbs_answer *a, struct hp_err *err)
{
    char *out = slurp(file);
    char *eo = errfile ? slurp(errfile) : hp_xstrdup("");
    int r = pbs_parse_qstat(json, status, out, eo, a, err);
    free(out);
    free(eo);
    return r;
}

static void test_json_recorded(void **state)
{
    (void)state;
    struct pbs_answer a = { 0 };
    struct hp_err err;
    struct hp_jobstate js;
    hp_err_init(&err);
    /* PBS 19.0.0, Metacentrum: a running job on two nodes */
    assert_int_equal(digest(FIX "pbspro-running-scatter.json", 1, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 1);
    const struct pbs_rec *r = pbs_answer_rec(&a, "12860476.meta-pbs.metacentrum.cz");
    assert_non_null(r);
    assert_int_equal(r->state, 'R');
    assert_string_equal(r->name, "swrap_01");
    assert_string_equal(r->owner, "jan_brezina@META");
    assert_int_equal(r->substate, 41);
    assert_int_equal(r->limit_walltime, 60);
    assert_false(r->have_exit);
    assert_non_null(pbs_answer_rec(&a, "12860476"));     /* qsub's short form */
    assert_int_equal(pbs_map_state(PBS_PRO, r, &js), 0);
    assert_int_equal(js.state, HP_JOB_ACTIVE);
    pbs_answer_release(&a);
    /* PBS 2022.0.0, ALCF: finished with exit status 0 */
    assert_int_equal(digest(FIX "pbspro-finished.json", 1, 0, NULL, &a, &err), 0);
    r = pbs_answer_rec(&a, "2154.edtb-01.mcp.alcf.anl.gov");
    assert_non_null(r);
    assert_int_equal(r->state, 'F');
    assert_true(r->have_exit);
    assert_int_equal(pbs_map_state(PBS_PRO, r, &js), 0);
    assert_int_equal(js.state, HP_JOB_COMPLETED);
    pbs_answer_release(&a);
    /* PBS 2024.1.2, Polaris, without -x: no "Jobs" at all, exit 35 */
    assert_int_equal(digest(FIX "pbspro-nohistory.json", 1, 35, FIX "pbspro-nohistory.stderr",
                            &a, &err), 0);
    assert_int_equal(a.n, 0);
    assert_true(pbs_answer_unknown(&a, "5487654.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"));
    pbs_answer_release(&a);
    /* OpenPBS main, issue 2672: two asked, one answered, nothing said of
     * the other (the adapter asks it again on its own) */
    assert_int_equal(digest(FIX "pbspro-json-first-only.json", 1, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 1);
    assert_non_null(pbs_answer_rec(&a, "10"));
    assert_null(pbs_answer_rec(&a, "11"));
    assert_false(pbs_answer_unknown(&a, "11"));
    assert_int_equal(a.recs[0].state, 0);
    assert_int_equal(pbs_map_state(PBS_PRO, &a.recs[0], &js), 0);
    assert_string_equal(js.reason, "PBS printed no job_state");
    pbs_answer_release(&a);
    assert_int_equal(err.code, 0);
}

static void test_text_recorded(void **state)
{
    (void)state;
    struct pbs_answer a = { 0 };
    struct hp_err err;
    struct hp_jobstate js;
    hp_err_init(&err);
    /* TORQUE admin guide: a failed job; values continue on following lines */
    assert_int_equal(digest(FIX "torque-failed.txt", 0, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 1);
    const struct pbs_rec *r = &a.recs[0];
    assert_string_equal(r->id, "179.host");
    assert_string_equal(r->owner, "user@host");
    assert_int_equal(r->state, 'C');
    assert_true(r->have_exit);
    assert_int_equal(r->exit_status, -1);
    assert_int_equal(pbs_map_state(PBS_TORQUE, r, &js), 0);
    assert_int_equal(js.state, HP_JOB_FAILED);
    assert_string_equal(js.reason, "the job could not start (before files were staged) (PBS "
                                   "exit status -1)");
    pbs_answer_release(&a);
    /* TORQUE/Moab: a running job, tab-continued Variable_List */
    assert_int_equal(digest(FIX "torque-running.txt", 0, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.recs[0].state, 'R');
    assert_string_equal(a.recs[0].name, "STDIN");
    assert_int_equal(a.recs[0].limit_walltime, 3600);
    pbs_answer_release(&a);
    /* TORQUE: every id forgotten (PecanProject/pecan issue 772) */
    assert_int_equal(pbs_parse_qstat(0, 153, "", "qstat: Unknown Job Id Error 46707.modex.bnl.gov\n"
                                     "qstat: Unknown Job Id Error 46708.modex.bnl.gov\n", &a,
                                     &err), 0);
    assert_true(pbs_answer_unknown(&a, "46707.modex.bnl.gov"));
    assert_true(pbs_answer_unknown(&a, "46708"));
    assert_false(pbs_answer_unknown(&a, "46709"));
    pbs_answer_release(&a);
    /* PBS Pro without -x (reframe issue 1930): finished ids */
    char *e = slurp(FIX "pbspro-finished-nox.stderr");
    assert_int_equal(pbs_parse_qstat(0, 35, "", e, &a, &err), 0);
    assert_int_equal(a.nunknown, 4);
    assert_true(pbs_answer_unknown(&a, "1018.sch1"));
    free(e);
    pbs_answer_release(&a);
    e = slurp(FIX "torque-unknown.stderr");
    assert_int_equal(pbs_parse_unknown(e, NULL, NULL), 3);
    free(e);
}

/* Slurm's qstat wrapper, recorded on the test cluster */
static void test_wrapper_recorded(void **state)
{
    (void)state;
    struct pbs_answer a = { 0 };
    struct hp_err err;
    struct hp_jobstate js;
    hp_err_init(&err);
    assert_int_equal(digest(FIX "wrapper-qstat-live.txt", 0, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 2);
    const struct pbs_rec *held = pbs_answer_rec(&a, "7"), *run = pbs_answer_rec(&a, "8");
    assert_non_null(held);
    assert_non_null(run);
    assert_string_equal(held->name, "fx-held");
    assert_string_equal(held->owner, "root@localhost");
    assert_int_equal(pbs_map_state(PBS_TORQUE, held, &js), 0);
    assert_int_equal(js.state, HP_JOB_QUEUED);       /* the wrapper says Q for held */
    assert_int_equal(pbs_map_state(PBS_TORQUE, run, &js), 0);
    assert_int_equal(js.state, HP_JOB_ACTIVE);
    pbs_answer_release(&a);
    /* ended jobs: C, and no exit status at all -> the exit record decides */
    assert_int_equal(digest(FIX "wrapper-qstat-ended.txt", 0, 0, NULL, &a, &err), 0);
    assert_int_equal(a.n, 4);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.recs[i].state, 'C');
        assert_false(a.recs[i].have_exit);
        assert_int_equal(pbs_map_state(PBS_TORQUE, &a.recs[i], &js), 1);
    }
    pbs_answer_release(&a);
    assert_int_equal(digest(FIX "wrapper-qstat-timeout.txt", 0, 0, NULL, &a, &err), 0);
    assert_int_equal(a.recs[0].limit_walltime, 60);
    pbs_answer_release(&a);
    /* an unknown id: nothing on stdout or stderr, exit 153 */
    assert_int_equal(pbs_parse_qstat(0, 153, "", "", &a, &err), 0);
    assert_int_equal(a.n + a.nunknown, 0);
    pbs_answer_release(&a);
    /* qsub refusing a job: sbatch's reason, out of the wrapper's stdout */
    char *rej = slurp(FIX "wrapper-qsub-reject.txt");
    char *so = strstr(rej, "# stdout:\n") + 10;
    *strstr(so, "# stderr:") = '\0';
    char *msg = pbs_complaint(so, "");
    assert_string_equal(msg, "invalid partition specified: nosuch");
    free(msg);
    free(rej);
    msg = pbs_complaint("", "qsub: Unknown queue\n");
    assert_string_equal(msg, "qsub: Unknown queue");
    free(msg);
    assert_int_equal(err.code, 0);
}

/* output no qstat prints: a clear error naming qstat, nothing parsed */
static void test_unexpected(void **state)
{
    (void)state;
    struct pbs_answer a = { 0 };
    struct hp_err err;
    static const char *const junk[] = {
        "Segmentation fault\n", "<html><body>Service Unavailable</body></html>\n",
        "Job Idx: 5\n", "\x01\x02\x03", "{\"Jobs\": 7, \"pbs_version\": \"x\"}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        hp_err_init(&err);
        int json = junk[i][0] == '{';
        assert_int_equal(pbs_parse_qstat(json, 0, junk[i], "", &a, &err), json ? 1 : -1);
        if (!json && !strstr(err.msg, "qstat -f printed something unexpected"))
            fail_msg("%zu: %s", i, err.msg);
        assert_int_equal(a.n, 0);
    }
    /* JSON that is not JSON: ask again in text (OpenPBS issue 2541) */
    hp_err_init(&err);
    assert_int_equal(pbs_parse_qstat(1, 0, "{\"Jobs\":{\"4.s\":{\"v\":\"a\nb\"}}}", "", &a,
                                     &err), 1);
    assert_int_equal(a.n, 0);
    /* a failure with a message, and one without */
    hp_err_init(&err);
    assert_int_equal(pbs_parse_qstat(0, 2, "", "qstat: cannot connect to server pbs01 "
                                     "(errno=111)\n", &a, &err), -1);
    assert_string_equal(err.msg, "qstat failed (status 2): qstat: cannot connect to server "
                                 "pbs01 (errno=111)");
    hp_err_init(&err);
    assert_int_equal(pbs_parse_qstat(0, 1, "", "", &a, &err), -1);
    assert_string_equal(err.msg, "qstat failed (status 1): no message");
    pbs_answer_release(&a);
    /* the JSON parser alone */
    struct pbs_rec *recs = NULL;
    size_t n = 0, alloc = 0;
    hp_err_init(&err);
    assert_int_equal(pbs_parse_json("[1,2]", &recs, &n, &alloc, &err), -1);
    hp_err_init(&err);
    assert_int_equal(pbs_parse_json("{\"a\":1}", &recs, &n, &alloc, &err), -1);
    assert_non_null(strstr(err.msg, "without \"Jobs\""));
    free(recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_pbspro),
        cmocka_unit_test(test_render_torque),
        cmocka_unit_test(test_render_hostile),
        cmocka_unit_test(test_render_refuses),
        cmocka_unit_test(test_render_place),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ids_and_durations),
        cmocka_unit_test(test_every_state),
        cmocka_unit_test(test_rcfile),
        cmocka_unit_test(test_json_recorded),
        cmocka_unit_test(test_text_recorded),
        cmocka_unit_test(test_wrapper_recorded),
        cmocka_unit_test(test_unexpected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
