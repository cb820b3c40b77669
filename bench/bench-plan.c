/* bench-plan: load, validate, expand and plan a 100 x 1000 matrix campaign
 * (100,000 task instances) and render every job script; prints wall time per
 * phase and the peak resident set size. Target: < 1 s and < 300 MB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "plan.h"
#include "site.h"
#include "util.h"
#include "workflow.h"

static void die(const struct hp_err *e)
{
    char line[2200];
    hp_err_format(e, line, sizeof(line));
    fprintf(stderr, "bench-plan: %s\n", line);
    exit(1);
}

int main(int argc, char **argv)
{
    int a = argc > 1 ? atoi(argv[1]) : 100, b = argc > 2 ? atoi(argv[2]) : 1000;
    const char *site_name = argc > 3 ? argv[3] : "local";
    char path[] = "/tmp/hpcport-bench-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "name: bench\ntasks:\n  sim:\n    command: [sim, --run, \"{run}\", --seed, \"{seed}\", "
               "\"out/{run}/{seed}.dat\"]\n    outputs: [\"out/{run}/{seed}.dat\"]\n"
               "    resources: {cores: 1, walltime: 10m}\n    matrix:\n"
               "      run: {from: 1, to: %d}\n      seed: {from: 1, to: %d}\n"
               "  merge:\n    command: [merge, out]\n    after: [sim]\n", a, b);
    fclose(f);

    struct hp_err err;
    hp_err_init(&err);
    double t0 = hp_now();
    struct hp_workflow *wf = hp_workflow_load(path, &err);
    if (!wf)
        die(&err);
    double t1 = hp_now();
    if (hp_workflow_expand(wf, site_name, 0, &err) < 0)
        die(&err);
    double t2 = hp_now();
    struct hp_site_opts so = { 0 };
    struct hp_site *site = hp_site_load(site_name, &so, &err);
    if (!site)
        die(&err);
    struct hp_plan_opts po = { .state_dir = "/tmp/hpcport-bench-state" };
    struct hp_plan *plan = hp_plan_new(wf, site, &po, &err);
    if (!plan)
        die(&err);
    size_t bytes = 0;
    struct hp_buf script = HP_BUF_INIT;
    for (size_t i = 0; i < wf->ninst; i++) {
        struct hp_jobspec spec;
        struct hp_spec_store st;
        hp_plan_spec(plan, i, 1, &spec, &st);
        hp_buf_reset(&script);
        if (plan->adapter->render(&spec, site, &script, &err) < 0)
            die(&err);
        bytes += script.len;
        hp_spec_store_release(&st);
    }
    double t3 = hp_now();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench-plan: %zu instances (%d x %d matrix + 1), site %s\n", wf->ninst, a, b,
           site_name);
    printf("  load+validate   %8.3f s\n", t1 - t0);
    printf("  expand          %8.3f s\n", t2 - t1);
    printf("  plan+render     %8.3f s  (%zu bytes of scripts)\n", t3 - t2, bytes);
    printf("  total           %8.3f s  (target < 1 s)\n", t3 - t0);
    printf("  peak RSS        %8.1f MB (target < 300 MB)\n", ru.ru_maxrss / 1024.0);
    hp_buf_release(&script);
    hp_plan_free(plan);
    hp_site_free(site);
    hp_workflow_free(wf);
    unlink(path);
    return 0;
}
