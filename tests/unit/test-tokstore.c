/* test-tokstore.c - the token store (auth/tokstore.c) on real files:
 * round trip, modes, refused permissions, links, corrupt records, hostile
 * site names, atomic replacement, delete and list. */
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
#include "tokstore.h"
#include "util.h"

static char tmpl[] = "/tmp/hp-test-tokstore-XXXXXX";
static char *base;
static char *dir;    /* base/tokens: created by the store */

static int setup(void **s)
{
    (void)s;
    base = mkdtemp(tmpl);
    if (!base)
        return -1;
    dir = hp_xasprintf("%s/tokens", base);
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    char *cmd = hp_xasprintf("rm -rf '%s'", base);
    int rc = system(cmd);
    free(cmd);
    free(dir);
    return rc == 0 ? 0 : -1;
}

static void sample(struct hp_token_rec *r, const char *site)
{
    memset(r, 0, sizeof(*r));
    r->site = hp_xstrdup(site);
    r->issuer = hp_xstrdup("https://id.example.org");
    r->client_id = hp_xstrdup("hpcport");
    r->token_endpoint = hp_xstrdup("https://id.example.org/token");
    r->revocation_endpoint = hp_xstrdup("https://id.example.org/revoke");
    r->access_token = hp_xstrdup("AT-secret-1");
    r->token_type = hp_xstrdup("Bearer");
    r->refresh_token = hp_xstrdup("RT-secret-1");
    r->scope = hp_xstrdup("openid offline_access");
    r->subject = hp_xstrdup("alice");
    r->expires_at = 2000000000;
    r->obtained_at = 1900000000;
}

static char *path_of(const char *site)
{
    return hp_xasprintf("%s/%s.json", dir, site);
}

static void write_text(const char *site, const char *text, mode_t mode)
{
    char *p = path_of(site);
    unlink(p);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void save_sample(const char *site)
{
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    sample(&r, site);
    assert_int_equal(hp_tokstore_save(dir, &r, &err), 0);
    hp_token_rec_release(&r);
}

static void test_round_trip(void **s)
{
    (void)s;
    struct hp_token_rec r, back;
    struct hp_err err;
    struct stat st;
    hp_err_init(&err);
    sample(&r, "alps");
    assert_int_equal(hp_tokstore_save(dir, &r, &err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    char *p = path_of("alps");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    free(p);
    assert_int_equal(hp_tokstore_load(dir, "alps", &back, &err), 1);
    assert_string_equal(back.site, "alps");
    assert_string_equal(back.issuer, r.issuer);
    assert_string_equal(back.client_id, "hpcport");
    assert_string_equal(back.token_endpoint, r.token_endpoint);
    assert_string_equal(back.revocation_endpoint, r.revocation_endpoint);
    assert_string_equal(back.access_token, "AT-secret-1");
    assert_string_equal(back.refresh_token, "RT-secret-1");
    assert_string_equal(back.subject, "alice");
    assert_string_equal(back.scope, "openid offline_access");
    assert_int_equal(back.expires_at, 2000000000);
    assert_int_equal(back.obtained_at, 1900000000);
    assert_int_equal(back.refreshed_at, 0);
    hp_token_rec_release(&back);
    assert_null(back.access_token);

    /* replacing: a new record, no temporary file left behind */
    free(r.refresh_token);
    r.refresh_token = NULL;
    assert_int_equal(hp_tokstore_save(dir, &r, &err), 0);
    assert_int_equal(hp_tokstore_load(dir, "alps", &back, &err), 1);
    assert_null(back.refresh_token);
    hp_token_rec_release(&back);
    char **sites;
    assert_int_equal(hp_tokstore_list(dir, &sites, &err), 0);
    assert_string_equal(sites[0], "alps");
    assert_null(sites[1]);
    free(sites[0]);
    free(sites);
    hp_token_rec_release(&r);
}

static void test_missing(void **s)
{
    (void)s;
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    char *nodir = hp_xasprintf("%s/none", base);
    assert_int_equal(hp_tokstore_load(nodir, "x", &r, &err), 0);
    assert_int_equal(err.code, 0);
    char **sites;
    assert_int_equal(hp_tokstore_list(nodir, &sites, &err), 0);
    assert_null(sites[0]);
    free(sites);
    assert_int_equal(hp_tokstore_delete(nodir, "x", &err), 0);
    free(nodir);
    save_sample("other");
    assert_int_equal(hp_tokstore_load(dir, "nothere", &r, &err), 0);
    assert_null(r.access_token);
}

static void test_file_mode_refused(void **s)
{
    (void)s;
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    save_sample("loose");
    char *p = path_of("loose");
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(hp_tokstore_load(dir, "loose", &r, &err), -1);
    assert_int_equal(err.code, 6);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "mode 0644"));
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_null(strstr(err.msg, "AT-secret"));
    /* saving over it is refused too: the user must see the leak */
    hp_err_init(&err);
    sample(&r, "loose");
    assert_int_equal(hp_tokstore_save(dir, &r, &err), -1);
    assert_non_null(strstr(err.msg, "chmod 600"));
    hp_token_rec_release(&r);
    assert_int_equal(chmod(p, 0600), 0);
    hp_err_init(&err);
    assert_int_equal(hp_tokstore_load(dir, "loose", &r, &err), 1);
    hp_token_rec_release(&r);
    free(p);
}

static void test_dir_mode_refused(void **s)
{
    (void)s;
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    save_sample("d");
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(hp_tokstore_load(dir, "d", &r, &err), -1);
    assert_non_null(strstr(err.msg, "token directory"));
    assert_non_null(strstr(err.msg, "chmod 700"));
    hp_err_init(&err);
    sample(&r, "d");
    assert_int_equal(hp_tokstore_save(dir, &r, &err), -1);
    hp_token_rec_release(&r);
    char **sites;
    hp_err_init(&err);
    assert_int_equal(hp_tokstore_list(dir, &sites, &err), -1);
    assert_int_equal(chmod(dir, 0700), 0);
}

static void test_symlink_refused(void **s)
{
    (void)s;
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    save_sample("real");
    char *p = path_of("real"), *l = path_of("link");
    assert_int_equal(symlink(p, l), 0);
    assert_int_equal(hp_tokstore_load(dir, "link", &r, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(l);
    /* a token directory that is a link */
    char *ldir = hp_xasprintf("%s/linkdir", base);
    assert_int_equal(symlink(dir, ldir), 0);
    hp_err_init(&err);
    assert_int_equal(hp_tokstore_load(ldir, "real", &r, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(ldir);
    free(ldir);
    free(p);
    free(l);
}

static void expect_corrupt(const char *text, const char *why)
{
    struct hp_token_rec r;
    struct hp_err err;
    hp_err_init(&err);
    write_text("bad", text, 0600);
    assert_int_equal(hp_tokstore_load(dir, "bad", &r, &err), -1);
    assert_int_equal(err.code, 3);
    assert_non_null(strstr(err.msg, "is not a valid token record"));
    assert_non_null(strstr(err.msg, "hpcport auth login bad"));
    if (why && !strstr(err.msg, why))
        fail_msg("'%s' does not say '%s'", err.msg, why);
    assert_null(strstr(err.msg, "SECRET"));
    assert_null(r.access_token);
}

static void test_corrupt(void **s)
{
    (void)s;
    save_sample("x");   /* creates the directory */
    expect_corrupt("", "JSON syntax error");
    expect_corrupt("{\"access_token\": \"SECRET\" oops", "JSON syntax error");
    expect_corrupt("[1, 2]", "not a JSON object");
    expect_corrupt("{\"version\": 2}", "\"version\" is not 1");
    expect_corrupt("{\"version\": 1, \"site\": \"bad\"}", "\"issuer\" is missing");
    expect_corrupt("{\"version\": 1, \"site\": \"bad\", \"issuer\": \"i\", \"client_id\": \"c\", "
                   "\"token_endpoint\": \"t\", \"access_token\": \"SECRET\", \"expires_at\": \"x\"}",
                   "\"expires_at\" is not a time");
    expect_corrupt("{\"version\": 1, \"site\": \"bad\", \"issuer\": \"i\", \"client_id\": \"c\", "
                   "\"token_endpoint\": \"t\", \"access_token\": \"SECRET\", \"refresh_token\": 5}",
                   "\"refresh_token\" is not a string");
    expect_corrupt("{\"version\": 1, \"site\": \"other\", \"issuer\": \"i\", \"client_id\": \"c\", "
                   "\"token_endpoint\": \"t\", \"access_token\": \"SECRET\"}", "another site");
    expect_corrupt("{\"version\": 1, \"version\": 1}", "JSON syntax error");
    /* a big file is refused before it is read */
    char *big = hp_xmalloc((1 << 20) + 16);
    memset(big, ' ', (1 << 20) + 15);
    big[(1 << 20) + 15] = '\0';
    expect_corrupt(big, "larger than 1 MiB");
    free(big);
}

static void test_hostile_names(void **s)
{
    (void)s;
    static const char *const bad[] = { "../x", "..", ".", "a/b", "", ".hidden", "-x", "a b",
                                       "x\n", "../../etc/passwd", NULL };
    struct hp_token_rec r;
    struct hp_err err;
    for (size_t i = 0; bad[i]; i++) {
        hp_err_init(&err);
        assert_int_equal(hp_tokstore_load(dir, bad[i], &r, &err), -1);
        assert_int_equal(err.code, 2);
        assert_non_null(strstr(err.msg, "is not a site name"));
        hp_err_init(&err);
        sample(&r, bad[i]);
        assert_int_equal(hp_tokstore_save(dir, &r, &err), -1);
        hp_token_rec_release(&r);
        hp_err_init(&err);
        assert_int_equal(hp_tokstore_delete(dir, bad[i], &err), -1);
        int fd;
        hp_err_init(&err);
        assert_int_equal(hp_tokstore_lock(dir, bad[i], &fd, &err), -1);
    }
    struct stat st;
    char *outside = hp_xasprintf("%s/x.json", base);
    assert_int_not_equal(stat(outside, &st), 0);
    free(outside);
}

static void test_delete_and_list(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    save_sample("b-site");
    save_sample("a-site");
    write_text("not a site", "{}", 0600);    /* skipped by list */
    char **sites;
    assert_int_equal(hp_tokstore_list(dir, &sites, &err), 0);
    int a = -1, b = -1;
    for (int i = 0; sites[i]; i++) {
        if (!strcmp(sites[i], "a-site"))
            a = i;
        if (!strcmp(sites[i], "b-site"))
            b = i;
        assert_string_not_equal(sites[i], "not a site");
        free(sites[i]);
    }
    free(sites);
    assert_true(a >= 0 && b > a);
    assert_int_equal(hp_tokstore_delete(dir, "a-site", &err), 1);
    assert_int_equal(hp_tokstore_delete(dir, "a-site", &err), 0);
    int fd;
    assert_int_equal(hp_tokstore_lock(dir, "b-site", &fd, &err), 0);
    assert_true(fd >= 0);
    hp_tokstore_unlock(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_file_mode_refused),
        cmocka_unit_test(test_dir_mode_refused),
        cmocka_unit_test(test_symlink_refused),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_delete_and_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
