/* test-multi.c - the multi-site mux (adapters/multi.c) driven by the real
 * campaign engine over two sites whose scheduler is "local" (real processes,
 * no services). The local adapter opens once per process, so the second
 * site cannot be used: the run goes on with the first (what happens to a
 * site that cannot be reached when run starts), job ids SITE|ID, the
 * campaign recorded on "l1,l2", a rerun in another order, and refusals. The
 * spread over two answering sites and the failover: test-multisite.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <cmocka.h>
#include "campaign.h"
#include "multi.h"
#include "plan.h"
#include "site.h"
#include "util.h"
#include "workflow.h"

#define NINST 12

static char tmpl[] = "/tmp/hp-test-multi-XXXXXX";
static char *base;

struct two {
    struct hp_workflow *wf[2];
    struct hp_site *site[2];
    struct hp_plan *plan[2];
};

static void write_file(const char *name, const char *text)
{
    char *path = hp_path_join(base, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

static int setup(void **s)
{
    (void)s;
    base = mkdtemp(tmpl);
    if (!base)
        return -1;
    write_file("l1.yaml", "name: l1\nscheduler: {type: local}\nnodes: {cores: 2}\n");
    write_file("l2.yaml", "name: l2\nscheduler: {type: local}\nnodes: {cores: 2}\n");
    write_file("wf.yaml", "name: mt\ntasks:\n  t:\n    matrix: {i: {from: 1, to: 12}}\n"
                          "    command: [sh, -c, 'sleep 0.2; echo \"$1\"', sh, '{i}']\n");
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* base and everything in it (the campaign's state and logs too) */
static int teardown(void **s)
{
    (void)s;
    return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The plans of wf.yaml on the profiles a and b (files in base). */
static void load_two(struct two *t, const char *a, const char *b)
{
    const char *names[2] = { a, b };
    struct hp_err err;
    hp_err_init(&err);
    char *wf = hp_path_join(base, "wf.yaml");
    for (int k = 0; k < 2; k++) {
        char *file = hp_xasprintf("%s/%s.yaml", base, names[k]);
        struct hp_site_opts so = { 0 };
        struct hp_plan_opts po = { .state_dir = base };
        t->wf[k] = hp_workflow_load(wf, &err);
        assert_non_null(t->wf[k]);
        assert_int_equal(hp_workflow_expand(t->wf[k], names[k], 0, &err), 0);
        t->site[k] = hp_site_load_file(file, &so, &err);
        assert_non_null(t->site[k]);
        t->plan[k] = hp_plan_new(t->wf[k], t->site[k], &po, &err);
        assert_non_null(t->plan[k]);
        free(file);
    }
    free(wf);
}

static void free_two(struct two *t)
{
    for (int k = 0; k < 2; k++) {
        hp_plan_free(t->plan[k]);
        hp_site_free(t->site[k]);
        hp_workflow_free(t->wf[k]);
    }
}

struct per_site {
    size_t l1, l2, other, completed;
};

static int on_row(void *ctx, const struct hp_inst_row *r)
{
    struct per_site *p = ctx;
    size_t len = hp_multi_site_len(r->job_id);
    if (len == 2 && !strncmp(r->job_id, "l1", 2))
        p->l1++;
    else if (len == 2 && !strncmp(r->job_id, "l2", 2))
        p->l2++;
    else
        p->other++;
    p->completed += r->state == HP_IS_COMPLETED;
    return 0;
}

static char events[4096];

static void on_event(void *ctx, const char *msg)
{
    (void)ctx;
    size_t len = strlen(events);
    snprintf(events + len, sizeof(events) - len, "%s\n", msg);
}

/* Run the campaign over a, b (recorded as label); the engine's result. */
static int run_two(const char *a, const char *b, const char *label,
                   struct hp_campaign_summary *sum, struct hp_err *err)
{
    struct two t;
    load_two(&t, a, b);
    const struct hp_plan *plans[2] = { t.plan[0], t.plan[1] };
    struct hp_multi_opts mo = { .event = on_event };
    void *mux = hp_multi_new(plans, 2, &mo, err);
    assert_non_null(mux);
    struct hp_campaign_opts co = { .state_dir = base, .adapter = &hp_adapter_multi,
                                   .adapter_impl = mux, .site_label = label };
    int rc = hp_campaign_run(t.plan[0], &co, sum, err);
    hp_multi_free(mux);
    free_two(&t);
    return rc;
}

static void test_spread_and_rerun(void **s)
{
    (void)s;
    struct hp_err err;
    struct hp_campaign_summary sum;
    hp_err_init(&err);
    assert_int_equal(run_two("l1", "l2", "l1,l2", &sum, &err), 0);
    assert_int_equal(sum.p.count[HP_IS_COMPLETED], NINST);
    assert_int_equal(sum.p.ran, NINST);

    struct hp_state *st = hp_campaign_open(base, "mt", NULL, &err);
    assert_non_null(st);
    struct hp_campaign_info ci;
    assert_int_equal(hp_state_get_campaign(st, &ci, &err), 0);
    assert_string_equal(ci.site, "l1,l2");
    assert_string_equal(ci.adapter, "multi");
    hp_campaign_info_release(&ci);
    struct per_site p = { 0 };
    assert_int_equal(hp_state_each_instance(st, -1, on_row, &p, &err), 0);
    hp_state_close(st);
    assert_int_equal(p.completed, NINST);
    assert_int_equal(p.other, 0);
    assert_int_equal(p.l1, NINST);
    assert_int_equal(p.l2, 0);
    assert_non_null(strstr(events, "site 'l2' cannot be used now (the local adapter is "
                                   "already open in this process); the run goes on without "
                                   "it"));

    /* the same sites in another order: nothing to do */
    hp_err_init(&err);
    assert_int_equal(run_two("l2", "l1", "l2,l1", &sum, &err), 0);
    assert_int_equal(sum.p.count[HP_IS_COMPLETED], NINST);
    assert_int_equal(sum.p.ran, 0);
    assert_int_equal(sum.p.submitted, 0);
}

static void test_other_sites_refused(void **s)
{
    (void)s;
    struct hp_err err;
    struct hp_campaign_summary sum;
    hp_err_init(&err);
    /* the campaign of the test above belongs to l1,l2 (tests run in order) */
    write_file("l3.yaml", "name: l3\nscheduler: {type: local}\nnodes: {cores: 2}\n");
    assert_int_equal(run_two("l1", "l3", "l1,l3", &sum, &err), -1);
    assert_int_equal(err.code, HP_ESTATE);
    assert_non_null(strstr(err.msg, "--site l1 --site l2"));
}

static void test_refusals(void **s)
{
    (void)s;
    struct two t;
    struct hp_err err;
    load_two(&t, "l1", "l1");
    const struct hp_plan *plans[2] = { t.plan[0], t.plan[1] };
    hp_err_init(&err);
    assert_null(hp_multi_new(plans, 2, NULL, &err));
    assert_int_equal(err.code, HP_EUSAGE);
    assert_non_null(strstr(err.msg, "site 'l1' is named twice"));
    hp_err_init(&err);
    assert_null(hp_multi_new(plans, 1, NULL, &err));
    assert_int_equal(err.code, HP_EINTERNAL);
    free_two(&t);

    assert_int_equal(hp_multi_site_len("a|1"), 1);
    assert_int_equal(hp_multi_site_len("site|x|y"), 4);
    assert_int_equal(hp_multi_site_len("12345"), 0);
    assert_int_equal(hp_multi_site_len(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_and_rerun),
        cmocka_unit_test(test_other_sites_refused),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
