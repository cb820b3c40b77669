/* test-state.c - the SQLite campaign store (core/state.c), on real files. */
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
#include <sqlite3.h>
#include "state.h"
#include "util.h"

static char tmpl[] = "/tmp/hp-test-state-XXXXXX";
static char *base;

static int setup(void **s)
{
    (void)s;
    base = mkdtemp(tmpl);
    return base ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    char *cmd = hp_xasprintf("rm -rf '%s'", base);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static char *dir_for(const char *name)
{
    return hp_xasprintf("%s/campaigns/%s", base, name);
}

static struct hp_state *fresh(const char *name)
{
    struct hp_err err;
    hp_err_init(&err);
    char *dir = dir_for(name);
    struct hp_state *st = hp_state_open(dir, 1, &err);
    free(dir);
    assert_non_null(st);
    struct hp_campaign_info ci = { .id = (char *)name, .site = (char *)"local",
                                   .adapter = (char *)"local",
                                   .workflow_name = (char *)"wf" };
    assert_int_equal(hp_state_create_campaign(st, &ci, &err), 0);
    return st;
}

static int64_t pragma_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void test_open_create(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    char *dir = dir_for("c1");
    struct hp_state *st = hp_state_open(dir, 1, &err);
    assert_non_null(st);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(pragma_int(hp_state_path(st), "PRAGMA user_version"), HP_STATE_VERSION);
    {
        sqlite3 *db;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open(hp_state_path(st), &db), SQLITE_OK);
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
    struct hp_campaign_info ci;
    assert_int_equal(hp_state_get_campaign(st, &ci, &err), 1);
    hp_state_close(st);

    /* reopen without create: fine; a missing one is "not found" */
    st = hp_state_open(dir, 0, &err);
    assert_non_null(st);
    hp_state_close(st);
    char *missing = dir_for("nope");
    assert_null(hp_state_open(missing, 0, &err));
    assert_int_equal(err.code, HP_ENOTFOUND);
    free(missing);
    free(dir);
}

static void test_newer_schema_refused(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("future");
    char *path = hp_xstrdup(hp_state_path(st));
    hp_state_close(st);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char *dir = dir_for("future");
    assert_null(hp_state_open(dir, 1, &err));
    assert_int_equal(err.code, HP_ESTATE);
    assert_non_null(strstr(err.msg, "newer"));
    free(dir);
    free(path);
}

static void test_campaign_row(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("c2");
    struct hp_campaign_info ci;
    assert_int_equal(hp_state_get_campaign(st, &ci, &err), 0);
    assert_string_equal(ci.id, "c2");
    assert_string_equal(ci.site, "local");
    assert_string_equal(ci.status, "created");
    assert_string_equal(ci.version, HP_VERSION);
    assert_int_equal(strlen(ci.nonce), 16);
    assert_true(ci.created > 1e9);
    hp_campaign_info_release(&ci);

    assert_int_equal(hp_state_set_status(st, "running", &err), 0);
    assert_int_equal(hp_state_get_campaign(st, &ci, &err), 0);
    assert_string_equal(ci.status, "running");
    hp_campaign_info_release(&ci);

    /* a second campaign row in one database is refused */
    struct hp_campaign_info dup = { .id = (char *)"c2", .site = (char *)"x" };
    assert_int_equal(hp_state_create_campaign(st, &dup, &err), -1);
    assert_int_equal(err.code, HP_ESTATE);
    hp_state_close(st);
}

struct collect {
    size_t n;
    size_t by_state[HP_IS__COUNT];
    int stop_at;
};

static int collect_fn(void *ctx, const struct hp_inst_row *r)
{
    struct collect *c = ctx;
    c->n++;
    c->by_state[r->state]++;
    if (c->stop_at && (int)c->n == c->stop_at)
        return 42;
    return 0;
}

static void test_many_instances(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("big");
    enum { N = 100000 };
    double t0 = hp_now();
    assert_int_equal(hp_state_begin(st, &err), 0);
    assert_true(hp_state_in_tx(st));
    for (int i = 0; i < N; i++) {
        char id[64];
        snprintf(id, sizeof(id), "sim[i=%d]", i);
        int64_t n;
        int ins;
        assert_int_equal(hp_state_add_instance(st, id, "sim", "h", &n, &ins, &err), 0);
        assert_int_equal(ins, 1);
    }
    assert_int_equal(hp_state_commit(st, &err), 0);
    double dt = hp_now() - t0;
    print_message("# 100,000 instances inserted in %.3f s\n", dt);
    assert_true(dt < 10.0);

    size_t counts[HP_IS__COUNT];
    assert_int_equal(hp_state_counts(st, counts, &err), 0);
    assert_int_equal(counts[HP_IS_NEW], N);

    /* adding again inserts nothing and finds the row */
    int64_t n1, n2;
    int ins;
    assert_int_equal(hp_state_add_instance(st, "sim[i=7]", "sim", NULL, &n1, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(hp_state_add_instance(st, "sim[i=7]", "sim", NULL, &n2, NULL, &err), 0);
    assert_int_equal(n1, n2);

    struct collect c = { 0 };
    assert_int_equal(hp_state_each_instance(st, -1, collect_fn, &c, &err), 0);
    assert_int_equal(c.n, N);
    struct collect c2 = { .stop_at = 10 };
    assert_int_equal(hp_state_each_instance(st, -1, collect_fn, &c2, &err), 42);
    assert_int_equal(c2.n, 10);
    hp_state_close(st);
}

static void test_update_and_get(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("upd");
    int64_t n;
    assert_int_equal(hp_state_add_instance(st, "a", "a", "h1", &n, NULL, &err), 0);
    struct hp_inst_row r = {
        .n = n, .state = HP_IS_FAILED, .attempts = 3, .fails = 3, .exit_code = 2,
        .signal = 0, .timed_out = 1, .reason = (char *)"TIMEOUT (walltime 00:00:02)",
        .job_id = (char *)"123:456", .submitted = 1000.5, .started = 1001, .ended = 1003,
    };
    int changed;
    assert_int_equal(hp_state_update_instance(st, &r, 1, &changed, &err), 0);
    assert_int_equal(changed, 1);
    struct hp_inst_row g;
    assert_int_equal(hp_state_get_instance(st, "a", &g, &err), 0);
    assert_int_equal(g.state, HP_IS_FAILED);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(g.exit_code, 2);
    assert_int_equal(g.timed_out, 1);
    assert_string_equal(g.reason, "TIMEOUT (walltime 00:00:02)");
    assert_string_equal(g.job_id, "123:456");
    assert_string_equal(g.spec_hash, "h1");    /* NULL hash keeps the old one */
    assert_true(g.submitted == 1000.5);
    hp_inst_row_release(&g);
    assert_int_equal(hp_state_get_instance(st, "zzz", &g, &err), 1);
    assert_int_equal(err.code, 0);
    hp_state_close(st);
}

static void test_cancel_and_data_version(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("cx");
    int64_t n[4];
    const char *ids[] = { "gen[s=1]", "gen[s=2]", "sim", "done" };
    const char *tasks[] = { "gen", "gen", "sim", "done" };
    for (int i = 0; i < 4; i++)
        assert_int_equal(hp_state_add_instance(st, ids[i], tasks[i], NULL, &n[i], NULL, &err), 0);
    struct hp_inst_row r = { .n = n[3], .state = HP_IS_COMPLETED, .exit_code = 0 };
    assert_int_equal(hp_state_update_instance(st, &r, 0, NULL, &err), 0);

    int64_t v0, v1, v2;
    assert_int_equal(hp_state_data_version(st, &v0, &err), 0);
    /* our own commit does not count */
    r.n = n[2];
    r.state = HP_IS_ACTIVE;
    r.exit_code = -1;
    assert_int_equal(hp_state_update_instance(st, &r, 1, NULL, &err), 0);
    assert_int_equal(hp_state_data_version(st, &v1, &err), 0);
    assert_true(v0 == v1);

    /* another connection cancels the task 'gen' */
    char *dir = dir_for("cx");
    struct hp_state *other = hp_state_open(dir, 0, &err);
    assert_non_null(other);
    const char *names[] = { "gen" };
    size_t changed;
    assert_int_equal(hp_state_cancel(other, names, 1, "canceled by user", &changed, &err), 0);
    assert_int_equal(changed, 2);
    assert_int_equal(hp_state_data_version(st, &v2, &err), 0);
    assert_true(v2 != v1);

    /* keep_canceled: the engine does not overwrite it */
    struct hp_inst_row a = { .n = n[0], .state = HP_IS_ACTIVE, .exit_code = -1 };
    int ch;
    assert_int_equal(hp_state_update_instance(st, &a, 1, &ch, &err), 0);
    assert_int_equal(ch, 0);
    struct hp_inst_row g;
    assert_int_equal(hp_state_get_instance(st, "gen[s=1]", &g, &err), 0);
    assert_int_equal(g.state, HP_IS_CANCELED);
    assert_string_equal(g.reason, "canceled by user");
    hp_inst_row_release(&g);

    /* cancel everything: the completed one stays completed */
    assert_int_equal(hp_state_cancel(other, NULL, 0, "all", &changed, &err), 0);
    assert_int_equal(changed, 1);   /* only "sim" was unfinished */
    size_t counts[HP_IS__COUNT];
    assert_int_equal(hp_state_counts(st, counts, &err), 0);
    assert_int_equal(counts[HP_IS_COMPLETED], 1);
    assert_int_equal(counts[HP_IS_CANCELED], 3);
    struct collect c = { 0 };
    assert_int_equal(hp_state_each_instance(st, HP_IS_CANCELED, collect_fn, &c, &err), 0);
    assert_int_equal(c.n, 3);
    hp_state_close(other);
    hp_state_close(st);
    free(dir);
}

static void test_attempts(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("att");
    assert_int_equal(hp_state_begin(st, &err), 0);
    for (int k = 3; k >= 1; k--) {
        char tok[32];
        snprintf(tok, sizeof(tok), "tok%d", k);
        struct hp_attempt_row a = {
            .instance = (char *)"x", .attempt = k, .token = tok, .state = (char *)"submitting",
            .exit_code = -1, .stdout_path = (char *)"/o", .stderr_path = (char *)"/e",
        };
        assert_int_equal(hp_state_put_attempt(st, &a, &err), 0);
    }
    /* the same attempt again replaces the row: intent, then outcome */
    struct hp_attempt_row done = {
        .instance = (char *)"x", .attempt = 2, .token = (char *)"tok2", .job_id = (char *)"1:2",
        .state = (char *)"failed", .exit_code = 3, .reason = (char *)"exit code 3",
    };
    assert_int_equal(hp_state_put_attempt(st, &done, &err), 0);
    assert_int_equal(hp_state_commit(st, &err), 0);

    struct hp_attempt_row *v;
    size_t n;
    assert_int_equal(hp_state_get_attempts(st, "x", &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].attempt, 1);
    assert_int_equal(v[1].attempt, 2);
    assert_string_equal(v[1].state, "failed");
    assert_string_equal(v[1].job_id, "1:2");
    assert_int_equal(v[1].exit_code, 3);
    assert_string_equal(v[0].stdout_path, "/o");
    assert_null(v[0].job_id);
    hp_attempt_rows_free(v, n);
    assert_int_equal(hp_state_get_attempts(st, "nobody", &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    hp_state_close(st);
}

static void test_rollback(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    struct hp_state *st = fresh("rb");
    assert_int_equal(hp_state_begin(st, &err), 0);
    assert_int_equal(hp_state_add_instance(st, "gone", "t", NULL, NULL, NULL, &err), 0);
    hp_state_rollback(st);
    assert_false(hp_state_in_tx(st));
    struct hp_inst_row g;
    assert_int_equal(hp_state_get_instance(st, "gone", &g, &err), 1);
    hp_state_close(st);
}

static void test_state_names(void **s)
{
    (void)s;
    for (int k = 0; k < HP_IS__COUNT; k++)
        assert_int_equal(hp_istate_parse(hp_istate_name((enum hp_istate)k)), k);
    assert_int_equal(hp_istate_parse("done"), -1);
    assert_true(hp_istate_final(HP_IS_CANCELED));
    assert_false(hp_istate_final(HP_IS_ACTIVE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_open_create),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_campaign_row),
        cmocka_unit_test(test_many_instances),
        cmocka_unit_test(test_update_and_get),
        cmocka_unit_test(test_cancel_and_data_version),
        cmocka_unit_test(test_attempts),
        cmocka_unit_test(test_rollback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
