/* adapter-test.h - what the unit tests of the batch adapters (test-slurm.c,
 * test-pbs.c) share: reading fixtures, comparing a rendered script with its
 * golden file, and the job spec most renders start from. Included after
 * <cmocka.h> by one test program each (the helpers are static).
 *
 * HP_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing (review
 * the diff). The tests run from the source root (meson sets workdir). */
#ifndef HP_ADAPTER_TEST_H
#define HP_ADAPTER_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "buf.h"
#include "util.h"

/* The file at path (new string); fails the test when it cannot be read. */
static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (hp_read_file(path, (size_t)1 << 24, &text, &len) < 0)
        fail_msg("cannot read %s (run from the source root)", path);
    return text;
}

/* Compare text with the golden file at path (HP_UPDATE_GOLDEN: write it). */
static void golden_compare(const char *path, const char *text)
{
    const char *up = getenv("HP_UPDATE_GOLDEN");
    if (up && *up && strcmp(up, "0")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    } else {
        char *want = slurp(path);
        if (strcmp(want, text)) {
            fprintf(stderr, "# %s differs; got:\n%s", path, text);
            fail_msg("%s: rendered text differs from the golden file", path);
        }
        free(want);
    }
}

/* Render spec for site with the adapter called adapter and compare the
 * script with the golden file at path. */
static void adapter_golden(const char *adapter, const char *path, const struct hp_jobspec *spec,
                           const struct hp_site *site)
{
    const struct hp_adapter_ops *ad = hp_adapter_find(adapter);
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err err;
    hp_err_init(&err);
    assert_non_null(ad);
    if (ad->render(spec, site, &out, &err) < 0)
        fail_msg("render: %s", err.msg);
    golden_compare(path, out.buf);
    hp_buf_release(&out);
}

/* One task of campaign "demo" with argv, a quoted environment value, one
 * node of 4 cores, 8 GiB, 1.5 h, and its logs under $SCRATCH: what both
 * adapters' golden scripts start from (each adds its own fields). */
static void adapter_base_spec(struct hp_jobspec *s, const char *const *argv)
{
    static const struct hp_kv env[] = { { (char *)"GREETING", (char *)"it's \"quoted\" $HOME" } };
    memset(s, 0, sizeof(*s));
    s->campaign = "demo";
    s->instance = "sim[i=1,s=a b]";
    s->job_name = "demo.sim";
    s->token = "hp0123456789abcdef.1-00c0ffee";
    s->attempt = 1;
    s->argv = argv;
    s->env = env;
    s->nenv = 1;
    s->res.nodes = 1;
    s->res.ntasks = 1;
    s->res.cores = 4;
    s->res.memory_mb = 8192;
    s->res.walltime = 5400;
    s->workdir = "$SCRATCH/hpcport/demo/work";
    s->stdout_path = "$SCRATCH/hpcport/demo/logs/sim%5Bi%3D1%2Cs%3Da%20b%5D.1.out";
    s->stderr_path = "$SCRATCH/hpcport/demo/logs/sim%5Bi%3D1%2Cs%3Da%20b%5D.1.err";
}

#endif
