/* test-slurmrest.c - the Slurm REST adapter's pure parts: job descriptions
 * against golden files, slurmrestd's answers recorded on the harness
 * (tests/fixtures/slurmrest/) read with the Slurm parsers and mapped to
 * job states, its error lists, `scontrol token` output, and HS256 JWTs
 * checked against a token computed independently (Python's hmac). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "adapter-test.h"
#include "adapter.h"
#include "buf.h"
#include "jwt.h"
#include "site.h"
#include "slurm-int.h"
#include "slurmrest-int.h"
#include "util.h"

#define FIX "tests/fixtures/slurmrest/"

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

static const char *const argv_[] = { "printf", "%s\\n", "it's", "a\"b", "100%", NULL };

/* render + job description for spec, compared with FIX name.job.json */
static void golden_job(const char *name, const struct hp_jobspec *spec,
                       const struct hp_site *site)
{
    struct hp_buf script = HP_BUF_INIT;
    struct hp_err err;
    json_t *job = NULL;
    hp_err_init(&err);
    const struct hp_adapter_ops *ad = hp_adapter_find("slurmrest");
    assert_non_null(ad);
    if (ad->render(spec, site, &script, &err) < 0)
        fail_msg("render: %s", err.msg);
    if (slurmrest_job_json(spec, site, script.buf, &job, &err) < 0)
        fail_msg("job json: %s", err.msg);
    char *text = json_dumps(job, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *withnl = hp_xasprintf("%s\n", text);
    char *path = hp_xasprintf(FIX "%s.job.json", name);
    golden_compare(path, withnl);
    free(withnl);
    free(path);
    free(text);
    json_decref(job);
    hp_buf_release(&script);
}

static void test_job_json(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    struct hp_jobspec spec;
    adapter_base_spec(&spec, argv_);
    spec.partition = "cpu";
    spec.workdir = "/scratch/u/hpcport/demo/work";
    spec.stdout_path = "/scratch/u/hpcport/demo/logs/sim%5Bi%3D1%5D.1.out";
    spec.stderr_path = "/scratch/u/hpcport/demo/logs/sim%5Bi%3D1%5D.1.err";
    golden_job("basic", &spec, site);
    /* the script is the Slurm adapter's: `hpcport plan` shows it */
    adapter_golden("slurmrest", FIX "basic.sbatch", &spec, site);
    /* a GPU job on the gpu partition: gres, the partition's qos */
    spec.partition = "gpu";
    spec.res.gpus = 2;
    spec.res.gpu_type = "a100";
    spec.res.nodes = 2;
    spec.res.ntasks = 8;
    spec.res.walltime = 61;   /* minutes, rounded up: 2 */
    golden_job("gpu", &spec, site);
    /* what the JSON says, not only that it matches */
    struct hp_buf script = HP_BUF_INIT;
    struct hp_err err;
    json_t *req = NULL;
    hp_err_init(&err);
    assert_int_equal(slurm_render(&spec, site, &script, &err), 0);
    assert_int_equal(slurmrest_job_json(&spec, site, script.buf, &req, &err), 0);
    json_t *job = json_object_get(req, "job");
    assert_string_equal(json_string_value(json_object_get(req, "script")), script.buf);
    assert_string_equal(json_string_value(json_object_get(job, "name")),
                        "demo.sim.hp0123456789abcdef.1-00c0ffee");
    assert_string_equal(json_string_value(json_object_get(job, "comment")), spec.token);
    assert_string_equal(json_string_value(json_object_get(job, "gres")), "gpu:a100:2");
    assert_string_equal(json_string_value(json_object_get(job, "qos")), "gpuq");
    assert_int_equal(json_integer_value(json_object_get(job, "time_limit")), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(job, "nodes"), 1)), 2);
    assert_string_equal(json_string_value(json_object_get(job, "standard_output")),
                        "/scratch/u/hpcport/demo/logs/sim%%5Bi%%3D1%%5D.1.out");
    assert_string_equal(json_string_value(json_object_get(json_object_get(job, "environment"),
                                                          "HPCPORT_TOKEN")), spec.token);
    json_decref(req);
    hp_buf_release(&script);
    hp_site_free(site);
}

static void test_directives_refused(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    char *d[] = { (char *)"--exclusive", NULL };
    char **saved = site->directives;
    site->directives = d;
    struct hp_jobspec spec;
    adapter_base_spec(&spec, argv_);
    struct hp_err err;
    hp_err_init(&err);
    json_t *req = NULL;
    assert_int_equal(slurmrest_job_json(&spec, site, "#!/bin/sh\n", &req, &err), -1);
    assert_null(req);
    assert_int_equal(err.code, HP_EINPUT);
    assert_non_null(strstr(err.msg, "('--exclusive') are sbatch options"));
    site->directives = saved;
    hp_site_free(site);
}

static void test_site_view(void **state)
{
    (void)state;
    struct hp_site *site = golden_site();
    assert_string_equal(site->rest.url, "http://rest.example.org:6820");   /* no final '/' */
    assert_string_equal(site->rest.via, "proxy");
    assert_string_equal(site->rest.api, "v0.0.38");
    assert_null(site->rest.user);
    assert_string_equal(site->rest.token_source, "key");
    assert_int_equal(site->rest.token_lifetime, 600);
    hp_site_free(site);
}

static void test_recorded_jobs(void **state)
{
    (void)state;
    char *text = slurp(FIX "jobs.json");
    struct slurm_rec *r = NULL;
    size_t n = 0, alloc = 0;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(slurm_parse_squeue_json(text, &r, &n, &alloc, &err), 0);
    assert_int_equal(n, 3);
    struct hp_jobstate st;
    slurm_map_state(&r[0], &st);
    assert_int_equal(st.state, HP_JOB_COMPLETED);
    assert_int_equal(st.exit_code, 0);
    assert_non_null(slurm_name_token(r[0].name));
    slurm_map_state(&r[1], &st);
    assert_int_equal(st.state, HP_JOB_FAILED);
    assert_int_equal(st.exit_code, 3);
    assert_string_equal(st.reason, "exit code 3");
    assert_string_equal(slurm_name_token(r[1].name), "hp8443bcec824b5ecb.1-6661ff7b");
    slurm_map_state(&r[2], &st);
    assert_int_equal(st.state, HP_JOB_CANCELED);
    assert_true(slurm_state_final(r[2].state));
    free(r);
    free(text);
    /* the accounting view of the FAILED job */
    text = slurp(FIX "db-job.json");
    r = NULL;
    n = alloc = 0;
    assert_int_equal(slurm_parse_sacct_json(text, &r, &n, &alloc, &err), 0);
    assert_int_equal(n, 1);
    slurm_map_state(&r[0], &st);
    assert_int_equal(st.state, HP_JOB_FAILED);
    free(r);
    free(text);
}

static void test_errors(void **state)
{
    (void)state;
    struct { const char *file, *text; long num; } cases[] = {
        { "submit-refused.json", "Invalid partition name specified", 2000 },
        { "bad-token-jobs.json", "Failed while looking for jobs (Unspecified error)", -1 },
        { "bad-token-db.json", "Protocol authentication error", 1007 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = hp_xasprintf(FIX "%s", cases[i].file);
        char *text = slurp(path);
        json_t *root = json_loads(text, 0, NULL);
        struct hp_buf msg = HP_BUF_INIT;
        long num = 0;
        assert_non_null(root);
        assert_int_equal(slurmrest_errors(root, &msg, &num), 1);
        assert_string_equal(msg.buf, cases[i].text);
        assert_int_equal(num, cases[i].num);
        hp_buf_release(&msg);
        json_decref(root);
        free(text);
        free(path);
    }
    json_t *ok = json_loads("{\"errors\": [], \"job_id\": 3}", 0, NULL);
    struct hp_buf msg = HP_BUF_INIT;
    long num = 5;
    assert_int_equal(slurmrest_errors(ok, &msg, &num), 0);
    assert_int_equal(num, 0);
    json_decref(ok);
    hp_buf_release(&msg);
}

static void test_scontrol_token(void **state)
{
    (void)state;
    char *t = slurmrest_scontrol_token("SLURM_JWT=eyJa.b.c\n");
    assert_string_equal(t, "eyJa.b.c");
    free(t);
    assert_null(slurmrest_scontrol_token("scontrol: error: Auth plugin does not support tokens\n"));
    assert_null(slurmrest_scontrol_token("SLURM_JWT=\n"));
    assert_null(slurmrest_scontrol_token(NULL));
}

static char *write_key(const char *dir, const char *name, size_t len, mode_t mode)
{
    char *path = hp_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < len; i++)
        fputc((int)i, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void test_jwt(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-jwt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *good = write_key(dir, "good", 32, 0600);
    char *open_ = write_key(dir, "open", 32, 0644);
    char *shrt = write_key(dir, "short", 8, 0600);
    struct hp_err err;
    hp_err_init(&err);
    char *tok = NULL;
    /* bytes 0..31, iat 1700000000, 10 minutes, alice: computed with Python's hmac */
    assert_int_equal(hp_jwt_mint(good, "alice", 600, 1700000000, &tok, &err), 0);
    assert_string_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                             "eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDYwMCwic3VuIjoiYWxpY2UifQ."
                             "n3xH7LBFVCzxOkUS3DkJzrMieoQPfwp2VAd8IHewQp4");
    assert_int_equal(hp_jwt_expiry(tok), 1700000600);
    hp_jwt_free(tok);
    assert_int_equal(hp_jwt_expiry("not a token"), 0);
    assert_int_equal(hp_jwt_mint(open_, "alice", 600, 1700000000, &tok, &err), -1);
    assert_null(tok);
    assert_int_equal(err.code, HP_EINPUT);
    assert_non_null(strstr(err.msg, "readable by others (mode 0644)"));
    hp_err_init(&err);
    assert_int_equal(hp_jwt_mint(shrt, "alice", 600, 1700000000, &tok, &err), -1);
    assert_non_null(strstr(err.msg, "holds 8 bytes"));
    hp_err_init(&err);
    char *missing = hp_xasprintf("%s/missing", dir);
    assert_int_equal(hp_jwt_mint(missing, "alice", 600, 1700000000, &tok, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open the JWT key file"));
    unlink(good);
    unlink(open_);
    unlink(shrt);
    rmdir(dir);
    free(good);
    free(open_);
    free(shrt);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_json),
        cmocka_unit_test(test_directives_refused),
        cmocka_unit_test(test_site_view),
        cmocka_unit_test(test_recorded_jobs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_scontrol_token),
        cmocka_unit_test(test_jwt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
