/* test-diff.c - line diffs (core/diff.c): edit scripts checked for
 * correctness and minimality against an O(NM) LCS on random texts, unified
 * diffs checked against GNU diff and applied with GNU patch, and the
 * side-by-side layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "buf.h"
#include "diff.h"
#include "util.h"

static char tmpl[] = "/tmp/hp-test-diff-XXXXXX";
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

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path)
{
    char *s = NULL;
    size_t len;
    assert_int_equal(hp_read_file(path, 1 << 24, &s, &len), 0);
    return s;
}

/* Run a shell command; its stdout (new string). */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    struct hp_buf b = HP_BUF_INIT;
    char chunk[4096];
    size_t n;
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        hp_buf_add(&b, chunk, n);
    pclose(p);
    return hp_buf_detach(&b, NULL);
}

/* The script turns a into b, each line of a and b is visited once, in
 * order, and SAME pairs equal lines. */
static void check_script(const struct hp_lines *a, const struct hp_lines *b,
                         const struct hp_diff *d)
{
    size_t x = 0, y = 0, ndel = 0, nadd = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct hp_diff_edit *e = &d->e[i];
        switch (e->op) {
        case HP_DIFF_SAME:
            assert_int_equal(e->a, x);
            assert_int_equal(e->b, y);
            assert_string_equal(a->line[x], b->line[y]);
            x++, y++;
            break;
        case HP_DIFF_DEL:
            assert_int_equal(e->a, x);
            x++, ndel++;
            break;
        case HP_DIFF_ADD:
            assert_int_equal(e->b, y);
            y++, nadd++;
            break;
        }
    }
    assert_int_equal(x, a->n);
    assert_int_equal(y, b->n);
    assert_int_equal(ndel, d->ndel);
    assert_int_equal(nadd, d->nadd);
}

static size_t lcs(const struct hp_lines *a, const struct hp_lines *b)
{
    size_t *t = hp_xcalloc((a->n + 1) * (b->n + 1), sizeof(*t));
    for (size_t i = a->n; i-- > 0;)
        for (size_t j = b->n; j-- > 0;) {
            size_t *c = &t[i * (b->n + 1) + j];
            if (!strcmp(a->line[i], b->line[j]))
                *c = 1 + t[(i + 1) * (b->n + 1) + j + 1];
            else
                *c = t[(i + 1) * (b->n + 1) + j] > t[i * (b->n + 1) + j + 1]
                         ? t[(i + 1) * (b->n + 1) + j] : t[i * (b->n + 1) + j + 1];
        }
    size_t r = t[0];
    free(t);
    return r;
}

static char *random_text(unsigned *seed, size_t maxlines, int alphabet)
{
    struct hp_buf b = HP_BUF_INIT;
    size_t n = (size_t)rand_r(seed) % (maxlines + 1);
    for (size_t i = 0; i < n; i++)
        hp_buf_addf(&b, "line %c\n", 'a' + rand_r(seed) % alphabet);
    return hp_buf_detach(&b, NULL);
}

static void test_random_minimal(void **s)
{
    (void)s;
    unsigned seed = 42;
    for (int round = 0; round < 2000; round++) {
        char *ta = random_text(&seed, 30, 1 + round % 6);
        char *tb = random_text(&seed, 30, 1 + round % 6);
        struct hp_lines a, b;
        struct hp_diff d;
        hp_lines_split(&a, ta);
        hp_lines_split(&b, tb);
        hp_diff_lines(&a, &b, &d);
        check_script(&a, &b, &d);
        /* shortest: every line not in a longest common subsequence */
        size_t l = lcs(&a, &b);
        assert_int_equal(d.ndel, a.n - l);
        assert_int_equal(d.nadd, b.n - l);
        hp_diff_release(&d);
        hp_lines_release(&a);
        hp_lines_release(&b);
        free(ta);
        free(tb);
    }
}

/* Our unified diff, applied by GNU patch, turns a into b. */
static void test_unified_patch_applies(void **s)
{
    (void)s;
    unsigned seed = 7;
    char *fa = hp_xasprintf("%s/a", base), *fp = hp_xasprintf("%s/p", base);
    for (int round = 0; round < 200; round++) {
        char *ta = random_text(&seed, 60, 3 + round % 5);
        char *tb = random_text(&seed, 60, 3 + round % 5);
        struct hp_lines a, b;
        struct hp_diff d;
        struct hp_buf u = HP_BUF_INIT;
        hp_lines_split(&a, ta);
        hp_lines_split(&b, tb);
        hp_diff_lines(&a, &b, &d);
        size_t hunks = hp_diff_unified(&a, &b, &d, "a", "b", round % 4, &u);
        assert_true((hunks == 0) == (strcmp(ta, tb) == 0));
        write_file(fa, ta);
        write_file(fp, u.buf);
        char *cmd = hp_xasprintf("patch -s -f '%s' < '%s' 2>&1", fa, fp);
        char *msg = run(cmd);
        assert_string_equal(msg, "");
        char *got = read_all(fa);
        assert_string_equal(got, tb);
        free(got);
        free(msg);
        free(cmd);
        hp_buf_release(&u);
        hp_diff_release(&d);
        hp_lines_release(&a);
        hp_lines_release(&b);
        free(ta);
        free(tb);
    }
    free(fa);
    free(fp);
}

/* Where the shortest script is unique, the hunks are GNU diff's, byte for
 * byte. */
static void test_unified_like_gnu_diff(void **s)
{
    (void)s;
    static const char *const cases[][2] = {
        { "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
          "1\n2\n3\nfour\n5\n6\n7\n8\n9\n10\n11\n12\n13\nfourteen\n15\n" },
        { "a\nb\nc\n", "x\na\nb\nc\n" },
        { "a\nb\nc\n", "a\nb\nc\nz\n" },
        { "a\nb\nc\n", "b\nc\n" },
        { "a\nb\nc\nd\ne\nf\ng\nh\n", "a\nb\nc\nd\nE\nf\ng\nh\n" },
        { "", "one\ntwo\n" },
        { "one\ntwo\n", "" },
        { "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --time=00:10:00\ncd /w\nexec run\n",
          "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --account=m1\n"
          "#SBATCH --time=00:10:00\ncd /w\nexec run\n" },
    };
    char *fa = hp_xasprintf("%s/ga", base), *fb = hp_xasprintf("%s/gb", base);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hp_lines a, b;
        struct hp_diff d;
        struct hp_buf u = HP_BUF_INIT;
        hp_lines_split(&a, cases[i][0]);
        hp_lines_split(&b, cases[i][1]);
        hp_diff_lines(&a, &b, &d);
        hp_diff_unified(&a, &b, &d, "A", "B", 3, &u);
        write_file(fa, cases[i][0]);
        write_file(fb, cases[i][1]);
        char *cmd = hp_xasprintf("diff -U3 --label A --label B '%s' '%s'", fa, fb);
        char *want = run(cmd);
        assert_string_equal(u.buf, want);
        free(want);
        free(cmd);
        hp_buf_release(&u);
        hp_diff_release(&d);
        hp_lines_release(&a);
        hp_lines_release(&b);
    }
    free(fa);
    free(fb);
}

static void test_equal_texts(void **s)
{
    (void)s;
    struct hp_lines a, b;
    struct hp_diff d;
    struct hp_buf u = HP_BUF_INIT;
    hp_lines_split(&a, "x\ny\n");
    hp_lines_split(&b, "x\ny");   /* no final newline: the same lines */
    hp_diff_lines(&a, &b, &d);
    assert_int_equal(d.ndel + d.nadd, 0);
    assert_int_equal(hp_diff_unified(&a, &b, &d, "A", "B", 3, &u), 0);
    assert_string_equal(u.buf, "");
    hp_buf_release(&u);
    hp_diff_release(&d);
    hp_lines_release(&a);
    hp_lines_release(&b);
}

/* Texts with nothing in common beyond HP_DIFF_MAX_D: still a correct script. */
static void test_too_different(void **s)
{
    (void)s;
    struct hp_buf ta = HP_BUF_INIT, tb = HP_BUF_INIT;
    hp_buf_adds(&ta, "same start\n");
    hp_buf_adds(&tb, "same start\n");
    for (int i = 0; i < HP_DIFF_MAX_D; i++) {
        hp_buf_addf(&ta, "a%d\n", i);
        hp_buf_addf(&tb, "b%d\n", i);
    }
    hp_buf_adds(&ta, "same end\n");
    hp_buf_adds(&tb, "same end\n");
    struct hp_lines a, b;
    struct hp_diff d;
    hp_lines_split(&a, ta.buf);
    hp_lines_split(&b, tb.buf);
    hp_diff_lines(&a, &b, &d);
    check_script(&a, &b, &d);
    assert_int_equal(d.ndel, HP_DIFF_MAX_D);
    assert_int_equal(d.nadd, HP_DIFF_MAX_D);
    assert_int_equal(d.e[0].op, HP_DIFF_SAME);
    assert_int_equal(d.e[d.n - 1].op, HP_DIFF_SAME);
    hp_diff_release(&d);
    hp_lines_release(&a);
    hp_lines_release(&b);
    hp_buf_release(&ta);
    hp_buf_release(&tb);
}

static char *side(const char *ta, const char *tb, int width)
{
    struct hp_lines a, b;
    struct hp_diff d;
    struct hp_buf out = HP_BUF_INIT;
    hp_lines_split(&a, ta);
    hp_lines_split(&b, tb);
    hp_diff_lines(&a, &b, &d);
    hp_diff_side(&a, &b, &d, width, &out);
    hp_diff_release(&d);
    hp_lines_release(&a);
    hp_lines_release(&b);
    return hp_buf_detach(&out, NULL);
}

/* The gutter mark of each row: ' ', '|', '<' or '>'. */
static char *marks(const char *text)
{
    struct hp_buf m = HP_BUF_INIT;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = strcspn(line, "|<>\n");
        hp_buf_addch(&m, line + len < nl ? line[len] : ' ');
        line = nl + 1;
    }
    return hp_buf_detach(&m, NULL);
}

static void test_side_by_side(void **s)
{
    (void)s;
    /* width 23: 10 columns each side and a 3-column gutter */
    char *got = side("keep\nold\ngone\nsame\n", "keep\nnew\nsame\nextra\n", 23);
    assert_string_equal(got,
                        "keep         keep\n"
                        "old        | new\n"
                        "gone       <\n"
                        "same         same\n"
                        "           > extra\n");
    free(got);
    /* long lines are cut at the column; tabs expand; control bytes show '?' */
    got = side("0123456789abcdef\n\tx\n", "0123456789ABCDEF\n\tx\x1b\n", 23);
    assert_string_equal(got,
                        "0123456789 | 0123456789\n"
                        "        x  |         x?\n");
    free(got);
    /* a UTF-8 character is one column and never cut */
    got = side("\xc3\xa9t\xc3\xa9\n", "ete\n", 23);
    assert_string_equal(got, "\xc3\xa9t\xc3\xa9        | ete\n");
    free(got);
    /* the same rows are marked as GNU diff -y marks them (the texts hold no
     * '|', '<' or '>' of their own) */
    char *fa = hp_xasprintf("%s/sa", base), *fb = hp_xasprintf("%s/sb", base);
    const char *a = "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --time=1\ncd /w\n"
                    "exec x\nold tail\n";
    const char *b = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --account=m\n"
                    "#SBATCH --time=1\ncd /w\nexec x\necho done\n";
    write_file(fa, a);
    write_file(fb, b);
    char *cmd = hp_xasprintf("diff -y -W 80 '%s' '%s'", fa, fb);
    char *want = run(cmd);
    got = side(a, b, 80);
    char *mw = marks(want), *mg = marks(got);
    assert_string_equal(mg, mw);
    assert_string_equal(mg, " |>   |");
    free(mw);
    free(mg);
    free(got);
    free(want);
    free(cmd);
    free(fa);
    free(fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_minimal),
        cmocka_unit_test(test_unified_patch_applies),
        cmocka_unit_test(test_unified_like_gnu_diff),
        cmocka_unit_test(test_equal_texts),
        cmocka_unit_test(test_too_different),
        cmocka_unit_test(test_side_by_side),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
