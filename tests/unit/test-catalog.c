/* test-catalog.c - the site catalog through its C API: sync from a real git
 * repository (made with git), the catalog layer in hp_site_load and
 * hp_site_list with its provenance fields, reading the pinned commit, URL
 * redaction, and hp_site_check_text. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "catalog.h"
#include "site.h"
#include "util.h"
#include "banned.h"

extern char **environ;

static char *tmp_root, *src;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char *path = hp_path_join(dir, rel);
    char *d = hp_dirname(path);
    assert_int_equal(hp_mkdir_p(d, 0700), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(d);
    free(path);
}

/* git -C src ARGS... (argv, no shell) */
static void git(const char *a0, ...)
{
    const char *argv[16] = { "git", "-C", src };
    size_t n = 3;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 15; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid;
    int st;
    assert_int_equal(posix_spawnp(&pid, "git", NULL, NULL, (char *const *)argv, environ), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static char *head(void)
{
    char *p = hp_path_join(src, ".git/refs/heads/main"), *text = NULL;
    size_t len;
    assert_int_equal(hp_read_file(p, 100, &text, &len), 0);
    text[strcspn(text, "\n")] = '\0';
    free(p);
    return text;
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/hpcport-catalog-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    tmp_root = hp_xstrdup(tmpl);
    char *cfg = hp_path_join(tmp_root, "config"), *data = hp_path_join(tmp_root, "data");
    setenv("XDG_CONFIG_HOME", cfg, 1);
    setenv("XDG_DATA_HOME", data, 1);
    setenv("GIT_AUTHOR_NAME", "t", 1);
    setenv("GIT_AUTHOR_EMAIL", "t@example.org", 1);
    setenv("GIT_COMMITTER_NAME", "t", 1);
    setenv("GIT_COMMITTER_EMAIL", "t@example.org", 1);
    free(cfg);
    free(data);
    src = hp_path_join(tmp_root, "src");
    assert_int_equal(hp_mkdir_p(src, 0700), 0);
    git("init", "-q", "-b", "main", NULL);
    write_file(src, "sites/cat-one.yaml", "description: one\nscheduler:\n  type: local\n");
    git("add", "-A", NULL);
    git("commit", "-qm", "one", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(tmp_root);
    free(src);
    return 0;
}

static void test_redact(void **state)
{
    (void)state;
    char *r = hp_catalog_redact_url("https://me:s3cret@host/x.git");
    assert_string_equal(r, "https://me:***@host/x.git");
    free(r);
    r = hp_catalog_redact_url("ssh://me@host:22/x@y.git");
    assert_string_equal(r, "ssh://me@host:22/x@y.git");
    free(r);
    r = hp_catalog_redact_url("/plain/path");
    assert_string_equal(r, "/plain/path");
    free(r);
    r = hp_catalog_label("0123456789abcdef0123456789abcdef01234567", "x");
    assert_string_equal(r, "<catalog@0123456789ab>/sites/x.yaml");
    free(r);
}

static void test_check_text(void **state)
{
    (void)state;
    struct hp_err err;
    hp_err_init(&err);
    const char ok[] = "scheduler:\n  type: slurm\n";
    assert_int_equal(hp_site_check_text("a", "L/a.yaml", ok, strlen(ok), &err), 0);
    const char bad[] = "scheduler:\n  type: slurm\n  acount: x\n";
    assert_int_equal(hp_site_check_text("a", "L/a.yaml", bad, strlen(bad), &err), -1);
    assert_int_equal(err.code, HP_EINPUT);
    assert_string_equal(err.file, "L/a.yaml");
    assert_int_equal(err.line, 3);
    assert_int_equal(err.col, 3);
    hp_err_init(&err);
    const char named[] = "name: b\nscheduler: {type: local}\n";
    assert_int_equal(hp_site_check_text("a", "L/a.yaml", named, strlen(named), &err), -1);
    assert_int_equal(err.code, HP_ESITE);
}

static void test_sync_and_layer(void **state)
{
    (void)state;
    struct hp_err err;
    hp_err_init(&err);
    /* no catalog: open gives NULL without an error, loads are unaffected */
    assert_null(hp_catalog_open(&err));
    assert_int_equal(err.code, 0);
    struct hp_site *s = hp_site_load("local", NULL, &err);
    assert_non_null(s);
    assert_null(s->catalog_url);
    assert_null(s->catalog_commit);
    hp_site_free(s);

    char *url = hp_xasprintf("file://%s", src), *c1 = head();
    struct hp_catalog_sync_opts o = { .url = url };
    struct hp_catalog_sync_result r;
    assert_int_equal(hp_catalog_sync(&o, &r, &err), 0);
    assert_string_equal(r.new_commit, c1);
    assert_null(r.old_commit);
    assert_int_equal(r.nchanges, 1);
    assert_int_equal(r.changes[0].what, 'A');
    assert_string_equal(r.changes[0].name, "cat-one");
    hp_catalog_sync_result_release(&r);

    s = hp_site_load("cat-one", NULL, &err);
    assert_non_null(s);
    assert_string_equal(s->catalog_url, url);
    assert_string_equal(s->catalog_commit, c1);
    assert_string_equal(s->description, "one");
    hp_site_free(s);

    /* a user file over it wins, provenance stays */
    char *cfg = hp_path_join(getenv("XDG_CONFIG_HOME"), "hpcport");
    write_file(cfg, "sites/cat-one.yaml", "description: mine\n");
    s = hp_site_load("cat-one", NULL, &err);
    assert_non_null(s);
    assert_string_equal(s->description, "mine");
    assert_string_equal(s->catalog_commit, c1);
    hp_site_free(s);

    struct hp_site_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(hp_site_list(NULL, &e, &n, &err), 0);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(e[i].name, "cat-one")) {
            found = 1;
            assert_string_equal(e[i].catalog_commit, c1);
        } else if (!strcmp(e[i].name, "local")) {
            assert_null(e[i].catalog_commit);
        }
    }
    assert_true(found);
    hp_site_entries_free(e, n);

    /* a modified profile and a new one */
    write_file(src, "sites/cat-one.yaml", "description: one v2\nscheduler:\n  type: local\n");
    write_file(src, "sites/cat-two.yaml", "scheduler:\n  type: local\n");
    git("add", "-A", NULL);
    git("commit", "-qm", "two", NULL);
    char *c2 = head();
    struct hp_catalog_sync_opts o2 = { 0 };
    assert_int_equal(hp_catalog_sync(&o2, &r, &err), 0);
    assert_string_equal(r.old_commit, c1);
    assert_string_equal(r.new_commit, c2);
    assert_int_equal(r.nchanges, 2);
    assert_int_equal(r.changes[0].what, 'M');
    assert_int_equal(r.changes[1].what, 'A');
    assert_int_equal(r.nlog, 1);
    hp_catalog_sync_result_release(&r);

    struct hp_catalog *cat = hp_catalog_open(&err);
    assert_non_null(cat);
    assert_string_equal(hp_catalog_commit(cat), c2);
    char **names = hp_catalog_names(cat, &err);
    assert_string_equal(names[0], "cat-one");
    assert_string_equal(names[1], "cat-two");
    assert_null(names[2]);
    hp_catalog_names_free(names);
    char *data = NULL;
    size_t len;
    assert_int_equal(hp_catalog_read(cat, "cat-one", &data, &len, &err), 1);
    assert_non_null(strstr(data, "one v2"));
    free(data);
    assert_int_equal(hp_catalog_read(cat, "nope", &data, &len, &err), 0);
    assert_int_equal(hp_catalog_read(cat, "../x", &data, &len, &err), 0);
    hp_catalog_close(cat);

    free(cfg);
    free(c1);
    free(c2);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_check_text),
        cmocka_unit_test(test_sync_and_layer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
