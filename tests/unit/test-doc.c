/* Unit tests for the YAML document loader and the shell quoting helper. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "doc.h"
#include "buf.h"
#include "quote.h"
#include "util.h"
#include "plan.h"

static struct hp_doc *load(const char *text, struct hp_err *err)
{
    hp_err_init(err);
    return hp_doc_load_mem("t.yaml", text, strlen(text), NULL, err);
}

static void expect_error(const char *text, int line, int col, const char *needle)
{
    struct hp_err err;
    struct hp_doc *d = load(text, &err);
    if (d) {
        hp_doc_free(d);
        fail_msg("expected an error containing '%s'", needle);
    }
    assert_int_equal(err.code, HP_EINPUT);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_string_equal(err.file, "t.yaml");
    assert_int_equal(err.line, line);
    assert_int_equal(err.col, col);
}

static void test_scalars(void **state)
{
    (void)state;
    struct hp_err err;
    struct hp_doc *d = load("a: 1\nb: -2.5\nc: true\nd: ~\ne: '7'\nf: yes\ng: 0x1f\n"
                            "h: 0o17\ni: 01:30:00\nj: !!str 3\nk: \"null\"\nl: 1e3\n", &err);
    assert_non_null(d);
    json_t *r = d->root;
    assert_int_equal(json_integer_value(json_object_get(r, "a")), 1);
    assert_true(json_real_value(json_object_get(r, "b")) == -2.5);
    assert_true(json_is_true(json_object_get(r, "c")));
    assert_true(json_is_null(json_object_get(r, "d")));
    assert_string_equal(json_string_value(json_object_get(r, "e")), "7");
    /* YAML 1.2: yes is a string (no Norway problem) */
    assert_string_equal(json_string_value(json_object_get(r, "f")), "yes");
    assert_int_equal(json_integer_value(json_object_get(r, "g")), 31);
    assert_int_equal(json_integer_value(json_object_get(r, "h")), 15);
    assert_string_equal(json_string_value(json_object_get(r, "i")), "01:30:00");
    assert_string_equal(json_string_value(json_object_get(r, "j")), "3");
    assert_string_equal(json_string_value(json_object_get(r, "k")), "null");
    assert_true(json_real_value(json_object_get(r, "l")) == 1000.0);
    hp_doc_free(d);
}

static void test_positions(void **state)
{
    (void)state;
    struct hp_err err;
    struct hp_pos pos;
    struct hp_doc *d = load("tasks:\n  gen:\n    command: [a, 'b/c']\n  \"x/y~z\": 3\n", &err);
    assert_non_null(d);
    assert_int_equal(hp_doc_pos(d, "/tasks/gen/command/1", 0, &pos), 0);
    assert_int_equal(pos.line, 3);
    assert_int_equal(pos.col, 18);
    assert_int_equal(hp_doc_pos(d, "/tasks/gen", 1, &pos), 0);
    assert_int_equal(pos.line, 2);
    assert_int_equal(pos.col, 3);
    /* escaped tokens */
    assert_int_equal(hp_doc_pos(d, "/tasks/x~1y~0z", 0, &pos), 0);
    assert_int_equal(pos.line, 4);
    assert_int_equal(pos.col, 12);
    /* a missing child falls back to its parent */
    assert_int_equal(hp_doc_pos(d, "/tasks/gen/missing", 0, &pos), 1);
    assert_int_equal(pos.line, 3);
    hp_err_init(&err);
    hp_doc_err(d, &err, HP_EINPUT, "/tasks/gen", 1, "bad %s", "task");
    char line[2200];
    hp_err_format(&err, line, sizeof(line));
    assert_string_equal(line, "t.yaml:2:3: error: bad task (at /tasks/gen)");
    hp_doc_free(d);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_error("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a' (first defined at line 1)");
}

static void test_alias_bomb(void **state)
{
    (void)state;
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char c = 'b'; c <= 'j'; c++)
        hp_buf_addf(&b, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
                    c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    struct hp_err err;
    struct hp_doc *d = load(b.buf, &err);
    assert_null(d);
    assert_non_null(strstr(err.msg, "alias bomb"));
    assert_true(err.line >= 6);   /* stops once past the bound, long before 10^10 */
    hp_buf_release(&b);
    /* small aliases are fine and deep-copied */
    d = load("base: &b {cores: 2}\nx: *b\n", &err);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d->root, "x"), "cores")), 2);
    assert_ptr_not_equal(json_object_get(d->root, "x"), json_object_get(d->root, "base"));
    hp_doc_free(d);
}

static void test_recursive_alias(void **state)
{
    (void)state;
    expect_error("a: &a [1, *a]\n", 1, 11, "refers to a node that contains it");
    expect_error("a: *nope\n", 1, 4, "unknown alias '*nope'");
}

static void test_depth(void **state)
{
    (void)state;
    struct hp_buf b = HP_BUF_INIT;
    for (int i = 0; i < 100; i++)
        hp_buf_addch(&b, '[');
    for (int i = 0; i < 100; i++)
        hp_buf_addch(&b, ']');
    expect_error(b.buf, 1, 65, "nesting deeper than 64 levels");
    hp_buf_release(&b);
}

static void test_utf8(void **state)
{
    (void)state;
    expect_error("a: ok\nb: \xff\xfe bad\n", 2, 4, "invalid UTF-8");
    struct hp_err err;
    struct hp_doc *d = load("name: caf\xc3\xa9\n", &err);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d->root, "name")), "caf\xc3\xa9");
    hp_doc_free(d);
}

static void test_multidoc_and_empty(void **state)
{
    (void)state;
    expect_error("a: 1\n---\nb: 2\n", 2, 1, "a second YAML document");
    expect_error("", 1, 1, "empty document");
    expect_error("# only a comment\n", 1, 1, "empty document");
}

static void test_syntax_and_keys(void **state)
{
    (void)state;
    expect_error("a:\n\t- b\n", 2, 1, "found character that cannot start any token");
    expect_error("? [a]\n: 1\n", 1, 3, "mapping keys must be plain strings");
    expect_error("a: .inf\n", 1, 4, "not a finite number");
    expect_error("a: 99999999999999999999\n", 1, 4, "out of range");
}

static void test_size_limit(void **state)
{
    (void)state;
    struct hp_doc_limits lim = { 100, 64, 1000 };
    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = 'k'; big[1] = ':'; big[2] = ' ';
    big[sizeof(big) - 1] = '\0';
    struct hp_err err;
    hp_err_init(&err);
    assert_null(hp_doc_load_mem("big.yaml", big, strlen(big), &lim, &err));
    assert_non_null(strstr(err.msg, "over the limit of 100 bytes"));
}

/* Every hostile string must come back unchanged through a real shell. */
static void test_quote_corpus(void **state)
{
    (void)state;
    static const char *const corpus[] = {
        "", "plain", "two words", "it's", "'", "''", "\"", "$(touch pwned)", "`id`",
        "$HOME", "${HOME}", "; rm -rf /tmp/x", "a\nb", "\\", "\\'", "*", "?", "[a-z]",
        "~", "-n", "--", "a|b&c", "x>y<z", "!!", "#comment", "\t", " lead", "trail ",
        "\xc3\xa9t\xc3\xa9", "%s%n", "'\"'\"'", NULL,
    };
    for (size_t i = 0; corpus[i]; i++) {
        struct hp_buf cmd = HP_BUF_INIT;
        hp_buf_adds(&cmd, "printf '%s' ");
        hp_sq_quote(&cmd, corpus[i]);
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            execl("/bin/sh", "sh", "-c", cmd.buf, (char *)NULL);
            _exit(127);
        }
        close(fds[1]);
        char out[256];
        ssize_t n = 0, r;
        while ((r = read(fds[0], out + n, sizeof(out) - 1 - (size_t)n)) > 0)
            n += r;
        close(fds[0]);
        out[n] = '\0';
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        if (strcmp(out, corpus[i]))
            fail_msg("corpus %zu: got '%s' back", i, out);
        hp_buf_release(&cmd);
    }
    assert_int_equal(access("pwned", F_OK), -1);
    struct hp_buf b = HP_BUF_INIT;
    hp_sq_quote_path(&b, "$SCRATCH/a b");
    assert_string_equal(b.buf, "\"${SCRATCH}\"'/a b'");
    hp_buf_release(&b);
    /* variables anywhere stay variables; everything else stays literal, and
     * the shell agrees */
    static const char *const paths[][2] = {
        { "/home/$USER/x", "'/home/'\"${USER}\"'/x'" },
        { "/p/${PROJ}_a/$USER", "'/p/'\"${PROJ}\"'_a/'\"${USER}\"" },
        { "/a/$1/$(touch pwned)/$", "'/a/$1/$(touch pwned)/$'" },
        { "/a/${B/c", "'/a/${B/c'" },
        { "", "''" },
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        hp_buf_reset(&b);
        hp_sq_quote_path(&b, paths[i][0]);
        assert_string_equal(b.buf, paths[i][1]);
    }
    hp_buf_reset(&b);
    hp_buf_adds(&b, "USER=u PROJ='p q' && printf %s ");
    hp_sq_quote_path(&b, "/p/${PROJ}_a/$USER/'$(touch pwned)'");
    FILE *f = popen(b.buf, "r");
    char got[256] = "";
    assert_non_null(f);
    assert_non_null(fgets(got, sizeof(got), f));
    pclose(f);
    assert_string_equal(got, "/p/p q_a/u/'$(touch pwned)'");
    assert_int_equal(access("pwned", F_OK), -1);
    hp_buf_release(&b);
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(hp_parse_duration("90"), 90);
    assert_int_equal(hp_parse_duration("1h30m"), 5400);
    assert_int_equal(hp_parse_duration("01:30:00"), 5400);
    assert_int_equal(hp_parse_duration("2-00:00:00"), 172800);
    assert_int_equal(hp_parse_duration("10:00"), 600);
    assert_int_equal(hp_parse_duration("1x"), -1);
    assert_int_equal(hp_parse_duration(""), -1);
    assert_int_equal(hp_parse_memory_mb("8G"), 8192);
    assert_int_equal(hp_parse_memory_mb("512M"), 512);
    assert_int_equal(hp_parse_memory_mb("1.5GiB"), 1536);
    assert_int_equal(hp_parse_memory_mb("2TB"), 2097152);
    assert_int_equal(hp_parse_memory_mb("lots"), -1);
    char buf[32];
    hp_format_duration(93784, buf, sizeof(buf));
    assert_string_equal(buf, "1-02:03:04");
    static const char *const cands[] = { "cores", "nodes", "memory", NULL };
    assert_string_equal(hp_suggest("coers", cands), "cores");
    assert_null(hp_suggest("zzzzzz", cands));
}

static void test_safe_id(void **state)
{
    (void)state;
    char *a = hp_safe_id("sim[seed=1,path=a/b c]");
    assert_string_equal(a, "sim%5Bseed%3D1%2Cpath%3Da%2Fb%20c%5D");
    free(a);
    a = hp_safe_id("..");
    assert_string_equal(a, "%2E%2E");
    free(a);
    /* long ids are cut, stay unique, and never split an escape */
    char long1[1001], long2[1001];
    memset(long1, 'x', 1000);
    long1[1000] = '\0';
    memcpy(long2, long1, sizeof(long1));
    long2[999] = 'y';
    long1[150] = '/';
    long2[150] = '/';
    char *s1 = hp_safe_id(long1), *s2 = hp_safe_id(long2);
    assert_true(strlen(s1) <= HP_SAFE_ID_MAX);
    assert_true(strlen(s2) <= HP_SAFE_ID_MAX);
    assert_string_not_equal(s1, s2);
    assert_non_null(strstr(s1, "%2F"));
    assert_non_null(strchr(s1, '~'));
    char *again = hp_safe_id(long1);
    assert_string_equal(s1, again);
    free(s1);
    free(s2);
    free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_recursive_alias),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_multidoc_and_empty),
        cmocka_unit_test(test_syntax_and_keys),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_quote_corpus),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_safe_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
