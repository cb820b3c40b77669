/* test-deploy.c - `hpcport site deploy`'s pure parts (sites/deploy.c): the
 * site probe's output recorded on several systems (tests/fixtures/deploy/),
 * the fits/refuses decision on them, and the ELF facts of real files (this
 * test's own binary, a copy with another e_machine, a file that is not ELF).
 * Runs in the source root (meson workdir). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>
#include "deploy.h"
#include "util.h"

static void load(const char *name, struct hp_deploy_site *s)
{
    char *path = hp_xasprintf("tests/fixtures/deploy/%s.out", name);
    char *text = NULL;
    size_t len = 0;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_read_file(path, 1 << 20, &text, &len), 0);
    assert_int_equal(hp_deploy_site_parse(text, s, &err), 0);
    free(text);
    free(path);
}

/* What hpcport built on Debian 12 needs (its DT_NEEDED, GLIBC_2.34). */
static char *needed[] = { "libjansson.so.4", "libyaml-0.so.2", "libcurl.so.4", "libssh2.so.1",
                          "libssl.so.3", "libcrypto.so.3", "libgit2.so.1.5", "libsqlite3.so.0",
                          "libpcre2-8.so.0", "libm.so.6", "libevent-2.1.so.7", "libc.so.6" };

static struct hp_deploy_bin debian_bin(const char *arch)
{
    struct hp_deploy_bin b = { .glibc_major = 2, .glibc_minor = 34, .needed = needed,
                               .nneeded = sizeof(needed) / sizeof(needed[0]) };
    snprintf(b.arch, sizeof(b.arch), "%s", arch);
    return b;
}

static char *decide(const struct hp_deploy_bin *b, const struct hp_deploy_site *s, int *n)
{
    struct hp_buf why = HP_BUF_INIT;
    *n = hp_deploy_decide(b, s, &why);
    return hp_buf_detach(&why, NULL);
}

static void test_parse_debian(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("debian12-x86_64", &s);
    assert_string_equal(s.home, "/home/alice");
    assert_string_equal(s.arch, "x86_64");
    assert_int_equal(s.glibc_major, 2);
    assert_int_equal(s.glibc_minor, 36);
    assert_false(s.musl);
    assert_true(s.have_ldconfig);
    assert_null(s.current);
    assert_int_equal(s.nfiles, 0);
    /* /lib32/libc.so.6 "(libc6)" is not this architecture's: listed once */
    size_t libc = 0;
    for (size_t i = 0; i < s.nlibs; i++)
        libc += !strcmp(s.libs[i], "libc.so.6");
    assert_int_equal(libc, 1);
    /* the whole hpcport set is there: it fits */
    struct hp_deploy_bin b = debian_bin("x86_64");
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 0);
    assert_string_equal(why, "");
    free(why);
    hp_deploy_site_release(&s);
}

static void test_parse_deployed(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("debian12-x86_64-deployed", &s);
    assert_string_equal(s.current, "hpcport-0.1.0-0918a6763263");
    assert_int_equal(s.nfiles, 1);
    assert_string_equal(s.files[0], "hpcport-0.1.0-0918a6763263");
    hp_deploy_site_release(&s);
}

static void test_centos7(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("centos7-x86_64", &s);
    assert_int_equal(s.glibc_major, 2);
    assert_int_equal(s.glibc_minor, 17);
    struct hp_deploy_bin b = debian_bin("x86_64");
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(why, "the site has glibc 2.17, the binary needs glibc 2.34 or newer"));
    /* libgit2 is there for i686 only; libssh2 and libjansson are there */
    assert_non_null(strstr(why, "libraries missing on the site (ldconfig -p): libssl.so.3, "
                                "libcrypto.so.3, libgit2.so.1.5, libpcre2-8.so.0, "
                                "libevent-2.1.so.7"));
    assert_null(strstr(why, "libssh2"));
    assert_null(strstr(why, "libm.so"));
    free(why);
    hp_deploy_site_release(&s);
}

static void test_aarch64(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("debian12-aarch64", &s);
    assert_string_equal(s.arch, "aarch64");
    struct hp_deploy_bin b = debian_bin("x86_64");
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 1);
    assert_string_equal(why, "the binary is for x86_64, the site is aarch64");
    free(why);
    /* an aarch64 build: the arch fits, its libraries are looked up in the
     * AArch64 entries */
    struct hp_deploy_bin a = debian_bin("aarch64");
    why = decide(&a, &s, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(why, "libraries missing"));
    assert_null(strstr(why, "libssh2"));
    assert_null(strstr(why, "libgit2"));
    free(why);
    hp_deploy_site_release(&s);
}

static void test_ppc64le(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("rhel8-ppc64le", &s);
    assert_string_equal(s.arch, "ppc64le");
    assert_int_equal(s.glibc_minor, 28);
    struct hp_deploy_bin b = debian_bin("ppc64le");
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(why, "the site has glibc 2.28"));
    assert_null(strstr(why, "libssh2"));
    free(why);
    hp_deploy_site_release(&s);
}

static void test_alpine(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    load("alpine318-x86_64", &s);
    assert_true(s.musl);
    assert_int_equal(s.glibc_major, 0);
    assert_false(s.have_ldconfig);
    struct hp_deploy_bin b = debian_bin("x86_64");
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 1);
    assert_string_equal(why, "the site's C library is musl, the binary needs glibc 2.34");
    free(why);
    /* a static binary (no GLIBC_ versions, no DT_NEEDED) runs there */
    struct hp_deploy_bin st_bin = { .arch = "x86_64" };
    why = decide(&st_bin, &s, &n);
    assert_int_equal(n, 0);
    free(why);
    hp_deploy_site_release(&s);
}

static void test_parse_bad(void **st)
{
    (void)st;
    struct hp_deploy_site s;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_deploy_site_parse("sh: 1: Syntax error\n", &s, &err), -1);
    assert_int_equal(err.code, HP_ESITE);
    assert_non_null(strstr(err.msg, "no architecture"));
    /* i586 and amd64 are spellings of i686 and x86_64 */
    hp_err_init(&err);
    assert_int_equal(hp_deploy_site_parse("home=/h\narch=amd64\n--ldconfig\n", &s, &err), 0);
    struct hp_deploy_bin b = { .arch = "x86_64" };
    int n;
    char *why = decide(&b, &s, &n);
    assert_int_equal(n, 0);
    free(why);
    hp_deploy_site_release(&s);
}

static void test_elf_self(void **st)
{
    (void)st;
    struct hp_deploy_bin b;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_deploy_bin_read("/proc/self/exe", &b, &err), 0);
    assert_string_equal(b.arch, "x86_64");
    assert_int_equal(b.glibc_major, 2);
    assert_true(b.glibc_minor >= 2);
    int libc = 0, jansson = 0;
    for (size_t i = 0; i < b.nneeded; i++) {
        libc += !strcmp(b.needed[i], "libc.so.6");
        jansson += !strcmp(b.needed[i], "libjansson.so.4");
    }
    assert_int_equal(libc, 1);
    assert_int_equal(jansson, 1);
    assert_int_equal(strlen(b.sha256), 64);
    /* the digest agrees with sha256sum */
    char *cmd = hp_xasprintf("sha256sum /proc/%d/exe", (int)getpid());
    FILE *p = popen(cmd, "r");
    char line[128] = "";
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    free(cmd);
    assert_memory_equal(line, b.sha256, 64);
    hp_deploy_bin_release(&b);
}

static void test_elf_other(void **st)
{
    (void)st;
    char tmpl[] = "/tmp/hp-test-deploy-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(hp_read_file("/proc/self/exe", 1 << 30, &data, &len), 0);
    data[18] = (char)183;   /* e_machine = EM_AARCH64, little-endian */
    data[19] = 0;
    assert_int_equal(hp_write_full(fd, data, len), 0);
    close(fd);
    struct hp_deploy_bin b;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_deploy_bin_read(tmpl, &b, &err), 0);
    assert_string_equal(b.arch, "aarch64");
    hp_deploy_bin_release(&b);
    /* not ELF; truncated ELF */
    fd = open(tmpl, O_WRONLY | O_TRUNC);
    assert_int_equal(hp_write_full(fd, "#!/bin/sh\n", 10), 0);
    close(fd);
    assert_int_equal(hp_deploy_bin_read(tmpl, &b, &err), -1);
    assert_int_equal(err.code, HP_EINPUT);
    fd = open(tmpl, O_WRONLY | O_TRUNC);
    assert_int_equal(hp_write_full(fd, data, 100), 0);
    close(fd);
    hp_err_init(&err);
    assert_int_equal(hp_deploy_bin_read(tmpl, &b, &err), -1);
    assert_int_equal(err.code, HP_EINPUT);
    assert_int_equal(hp_deploy_bin_read("/nonexistent/hpcport", &b, &err), -1);
    free(data);
    unlink(tmpl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_debian),
        cmocka_unit_test(test_parse_deployed),
        cmocka_unit_test(test_centos7),
        cmocka_unit_test(test_aarch64),
        cmocka_unit_test(test_ppc64le),
        cmocka_unit_test(test_alpine),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_elf_self),
        cmocka_unit_test(test_elf_other),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
