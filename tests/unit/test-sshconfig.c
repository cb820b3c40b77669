/* test-sshconfig.c - the ~/.ssh/config subset (sites/sshconfig.c): patterns,
 * first-value-wins, accumulation, token expansion, Include, errors, and the
 * ProxyJump hop syntax. Files live in a temporary HOME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pwd.h>
#include <cmocka.h>
#include "sshconfig.h"
#include "util.h"

static char tmpl[] = "/tmp/hp-test-sshconfig-XXXXXX";
static char *home;

static int setup(void **s)
{
    (void)s;
    home = mkdtemp(tmpl);
    if (!home)
        return -1;
    setenv("HOME", home, 1);
    char *d = hp_path_join(home, ".ssh");
    int r = hp_mkdir_p(d, 0700);
    free(d);
    return r;
}

static int teardown(void **s)
{
    (void)s;
    char *cmd = hp_xasprintf("rm -rf '%s'", home);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *rel, const char *text)
{
    char *p = hp_path_join(home, rel);
    char *dir = hp_dirname(p);
    assert_int_equal(hp_mkdir_p(dir, 0700), 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(dir);
    free(p);
}

static struct hp_sshcfg *parse(const char *text)
{
    struct hp_err err;
    hp_err_init(&err);
    struct hp_sshcfg *c = hp_sshcfg_parse(text, "test.conf", NULL, &err);
    if (!c)
        fail_msg("parse failed: %s", err.msg);
    return c;
}

static void lookup(const struct hp_sshcfg *c, const char *host, struct hp_sshhost *h)
{
    struct hp_err err;
    hp_err_init(&err);
    if (hp_sshcfg_lookup(c, host, h, &err) < 0)
        fail_msg("lookup failed: %s", err.msg);
}

static void test_wildmatch(void **s)
{
    (void)s;
    assert_true(hp_sshcfg_wildmatch("*", "anything"));
    assert_true(hp_sshcfg_wildmatch("*", ""));
    assert_true(hp_sshcfg_wildmatch("login?.hpc.org", "login1.hpc.org"));
    assert_false(hp_sshcfg_wildmatch("login?.hpc.org", "login12.hpc.org"));
    assert_true(hp_sshcfg_wildmatch("*.hpc.org", "a.b.hpc.org"));
    assert_false(hp_sshcfg_wildmatch("*.hpc.org", "hpc.org"));
    assert_true(hp_sshcfg_wildmatch("LOGIN*", "login3"));     /* host names: no case */
    assert_true(hp_sshcfg_wildmatch("a*b*c", "aXXbYYc"));
    assert_false(hp_sshcfg_wildmatch("a*b*c", "aXXbYY"));
    assert_true(hp_sshcfg_wildmatch("10.0.0.*", "10.0.0.7"));
}

static void test_host_patterns(void **s)
{
    (void)s;
    assert_true(hp_sshcfg_host_matches("a b c", "b"));
    assert_false(hp_sshcfg_host_matches("a b c", "d"));
    assert_true(hp_sshcfg_host_matches("*.site.org !bad.site.org", "good.site.org"));
    assert_false(hp_sshcfg_host_matches("*.site.org !bad.site.org", "bad.site.org"));
    /* a negation alone never matches */
    assert_false(hp_sshcfg_host_matches("!bad", "good"));
    /* comma lists inside one word, as OpenSSH allows */
    assert_true(hp_sshcfg_host_matches("x,y", "y"));
    assert_false(hp_sshcfg_host_matches("*,!y", "y"));
}

static void test_first_value_wins(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "# comment\n"
        "Host login\n"
        "    HostName login.hpc.org\n"
        "    User alice\n"
        "    Port 2222\n"
        "Host login other\n"
        "    User bob\n"
        "    Port 22\n"
        "    ServerAliveInterval 15\n"
        "Host *\n"
        "    User nobody\n"
        "    ServerAliveInterval 60\n"
        "    ServerAliveCountMax 5\n"
        "    ConnectTimeout 7\n");
    struct hp_sshhost h;
    lookup(c, "login", &h);
    assert_string_equal(h.hostname, "login.hpc.org");
    assert_string_equal(h.user, "alice");
    assert_int_equal(h.port, 2222);
    assert_int_equal(h.server_alive_interval, 15);
    assert_int_equal(h.server_alive_count_max, 5);
    assert_int_equal(h.connect_timeout, 7);
    hp_sshhost_release(&h);
    lookup(c, "other", &h);
    assert_null(h.hostname);
    assert_string_equal(h.user, "bob");
    assert_int_equal(h.port, 22);
    hp_sshhost_release(&h);
    lookup(c, "elsewhere", &h);
    assert_string_equal(h.user, "nobody");
    assert_int_equal(h.port, -1);
    assert_int_equal(h.identities_only, -1);
    assert_null(h.proxy_jump);
    assert_null(h.identity_files[0]);
    assert_null(h.known_hosts_files[0]);
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_syntax_variants(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "Host=q\n"
        "  hostname=quoted.example   # trailing comment\n"
        "  USER = \"carol\"\n"
        "\tIdentityFile \"~/keys/my key\"\r\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking accept-new\n"
        "  SomethingUnknown whatever\n");
    struct hp_sshhost h;
    lookup(c, "q", &h);
    assert_string_equal(h.hostname, "quoted.example");
    assert_string_equal(h.user, "carol");
    char *want = hp_xasprintf("%s/keys/my key", home);
    assert_string_equal(h.identity_files[0], want);
    free(want);
    assert_int_equal(h.identities_only, 1);
    assert_string_equal(h.strict_host_key_checking, "accept-new");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_identity_files_accumulate(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "Host hpc\n"
        "  HostName hpc.example.org\n"
        "  User dave\n"
        "  Port 2200\n"
        "  IdentityFile ~/.ssh/id_hpc\n"
        "  IdentityFile %d/keys/%r@%h:%p\n"
        "Host *\n"
        "  IdentityFile ~/.ssh/id_ed25519\n"
        "  IdentityFile none\n"
        "  IdentityFile /abs/%u/%%literal\n");
    struct hp_sshhost h;
    lookup(c, "hpc", &h);
    char *a = hp_xasprintf("%s/.ssh/id_hpc", home);
    char *b = hp_xasprintf("%s/keys/dave@hpc.example.org:2200", home);
    char *d = hp_xasprintf("%s/.ssh/id_ed25519", home);
    struct passwd *pw = getpwuid(getuid());
    char *e = hp_xasprintf("/abs/%s/%%literal", pw->pw_name);
    assert_string_equal(h.identity_files[0], a);
    assert_string_equal(h.identity_files[1], b);
    assert_string_equal(h.identity_files[2], d);
    assert_string_equal(h.identity_files[3], e);
    assert_null(h.identity_files[4]);
    free(a);
    free(b);
    free(d);
    free(e);
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_hostname_token(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse("Host *.short\n  HostName %h.example.org\n"
                                "Host pct\n  HostName a%%b\n");
    struct hp_sshhost h;
    lookup(c, "n1.short", &h);
    assert_string_equal(h.hostname, "n1.short.example.org");
    hp_sshhost_release(&h);
    lookup(c, "pct", &h);
    assert_string_equal(h.hostname, "a%b");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_proxyjump(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "Host inner\n  ProxyJump alice@bastion1:2222,bastion2\n"
        "Host direct\n  ProxyJump none\n"
        "Host *\n  ProxyJump gateway\n");
    struct hp_sshhost h;
    lookup(c, "inner", &h);
    assert_string_equal(h.proxy_jump, "alice@bastion1:2222,bastion2");
    hp_sshhost_release(&h);
    lookup(c, "direct", &h);
    assert_string_equal(h.proxy_jump, "none");
    hp_sshhost_release(&h);
    lookup(c, "any", &h);
    assert_string_equal(h.proxy_jump, "gateway");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_proxycommand(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "Host viacmd\n  ProxyCommand ssh -W %h:%p gw\n"
        "Host nocmd\n  ProxyCommand none\n  ProxyJump gw\n"
        "Host jumpfirst\n  ProxyJump gw\n  ProxyCommand nc %h %p\n");
    struct hp_sshhost h;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_sshcfg_lookup(c, "viacmd", &h, &err), -1);
    assert_int_equal(err.code, HP_ESITE);
    assert_string_equal(err.file, "test.conf");
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "ProxyJump"));
    /* ProxyCommand none is "no proxy" and takes the place of ProxyJump */
    lookup(c, "nocmd", &h);
    assert_string_equal(h.proxy_jump, "none");
    hp_sshhost_release(&h);
    /* whichever comes first wins, as in OpenSSH */
    lookup(c, "jumpfirst", &h);
    assert_string_equal(h.proxy_jump, "gw");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_known_hosts_files(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse(
        "Host a\n  UserKnownHostsFile ~/kh1 /etc/kh2 \"/with space/kh3\"\n"
        "  UserKnownHostsFile /ignored\n"
        "Host b\n  UserKnownHostsFile none\n"
        "Host c\n  UserKnownHostsFile ~/.ssh/kh_%h_%p\n  HostName real\n  Port 99\n");
    struct hp_sshhost h;
    lookup(c, "a", &h);
    char *k1 = hp_xasprintf("%s/kh1", home);
    assert_string_equal(h.known_hosts_files[0], k1);
    assert_string_equal(h.known_hosts_files[1], "/etc/kh2");
    assert_string_equal(h.known_hosts_files[2], "/with space/kh3");
    assert_null(h.known_hosts_files[3]);
    free(k1);
    hp_sshhost_release(&h);
    lookup(c, "b", &h);
    assert_null(h.known_hosts_files[0]);
    hp_sshhost_release(&h);
    lookup(c, "c", &h);
    char *k3 = hp_xasprintf("%s/.ssh/kh_real_99", home);
    assert_string_equal(h.known_hosts_files[0], k3);
    free(k3);
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_strict_values(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse("Host t\n  StrictHostKeyChecking true\n"
                                "Host f\n  StrictHostKeyChecking False\n"
                                "Host o\n  StrictHostKeyChecking off\n"
                                "Host bad\n  StrictHostKeyChecking maybe\n");
    struct hp_sshhost h;
    lookup(c, "t", &h);
    assert_string_equal(h.strict_host_key_checking, "yes");
    hp_sshhost_release(&h);
    lookup(c, "f", &h);
    assert_string_equal(h.strict_host_key_checking, "no");
    hp_sshhost_release(&h);
    lookup(c, "o", &h);
    assert_string_equal(h.strict_host_key_checking, "off");
    hp_sshhost_release(&h);
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_sshcfg_lookup(c, "bad", &h, &err), -1);
    assert_int_equal(err.code, HP_EINPUT);
    assert_int_equal(err.line, 8);
    hp_sshcfg_free(c);
}

static void test_bad_numbers(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse("Host x\n  Port 70000\nHost y\n  ServerAliveInterval ten\n"
                                "Host z\n  IdentitiesOnly perhaps\n");
    struct hp_sshhost h;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_sshcfg_lookup(c, "x", &h, &err), -1);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "70000"));
    hp_err_init(&err);
    assert_int_equal(hp_sshcfg_lookup(c, "y", &h, &err), -1);
    assert_int_equal(err.line, 4);
    hp_err_init(&err);
    assert_int_equal(hp_sshcfg_lookup(c, "z", &h, &err), -1);
    assert_int_equal(err.line, 6);
    hp_sshcfg_free(c);
}

static void test_syntax_errors(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    assert_null(hp_sshcfg_parse("Host a\n  User \"unterminated\n", "f.conf", NULL, &err));
    assert_int_equal(err.code, HP_EINPUT);
    assert_string_equal(err.file, "f.conf");
    assert_int_equal(err.line, 2);
    hp_err_init(&err);
    assert_null(hp_sshcfg_parse("Host\n", "f.conf", NULL, &err));
    assert_int_equal(err.line, 1);
    hp_err_init(&err);
    assert_null(hp_sshcfg_parse("\n\nUser\n", "f.conf", NULL, &err));
    assert_int_equal(err.line, 3);
}

static void test_match_skipped(void **s)
{
    (void)s;
    struct hp_sshcfg *c = parse("Match host x exec \"true\"\n  User frommatch\n"
                                "Host x\n  User fromhost\n");
    struct hp_sshhost h;
    lookup(c, "x", &h);
    assert_string_equal(h.user, "fromhost");
    hp_sshhost_release(&h);
    const char *const *w = hp_sshcfg_warnings(c);
    assert_non_null(w[0]);
    assert_non_null(strstr(w[0], "test.conf:1"));
    assert_null(w[1]);
    hp_sshcfg_free(c);
}

static void test_include(void **s)
{
    (void)s;
    write_file(".ssh/conf.d/10-a.conf", "Host a\n  User from-a\n");
    write_file(".ssh/conf.d/20-b.conf", "  Port 2022\nHost b\n  User from-b\n");
    write_file(".ssh/other.conf", "User global-included\n");
    struct hp_sshcfg *c = parse("Include conf.d/*.conf\n"
                                "Host b\n  Include other.conf\n"
                                "Host *\n  Include ~/.ssh/missing-*.conf\n");
    struct hp_sshhost h;
    lookup(c, "a", &h);
    assert_string_equal(h.user, "from-a");
    /* 20-b.conf's first line belongs to the top level of the includer */
    assert_int_equal(h.port, 2022);
    hp_sshhost_release(&h);
    lookup(c, "b", &h);
    assert_string_equal(h.user, "from-b");
    hp_sshhost_release(&h);
    lookup(c, "c", &h);
    /* other.conf was included inside "Host b": not for c */
    assert_null(h.user);
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
}

static void test_include_loop(void **s)
{
    (void)s;
    write_file(".ssh/loop.conf", "Include loop.conf\n");
    struct hp_err err;
    hp_err_init(&err);
    assert_null(hp_sshcfg_parse("Include loop.conf\n", "top.conf", NULL, &err));
    assert_non_null(strstr(err.msg, "16"));
}

static void test_load(void **s)
{
    (void)s;
    struct hp_err err;
    hp_err_init(&err);
    /* missing file: empty configuration */
    unsetenv("HPCPORT_SSH_CONFIG");
    struct hp_sshcfg *c = hp_sshcfg_load(NULL, &err);
    assert_non_null(c);
    struct hp_sshhost h;
    lookup(c, "x", &h);
    assert_null(h.user);
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
    /* ~/.ssh/config */
    write_file(".ssh/config", "Host x\n  User from-home\n");
    c = hp_sshcfg_load(NULL, &err);
    lookup(c, "x", &h);
    assert_string_equal(h.user, "from-home");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
    /* $HPCPORT_SSH_CONFIG wins */
    write_file("alt.conf", "Host x\n  User from-env\n");
    char *alt = hp_path_join(home, "alt.conf");
    setenv("HPCPORT_SSH_CONFIG", alt, 1);
    c = hp_sshcfg_load(NULL, &err);
    lookup(c, "x", &h);
    assert_string_equal(h.user, "from-env");
    hp_sshhost_release(&h);
    hp_sshcfg_free(c);
    unsetenv("HPCPORT_SSH_CONFIG");
    free(alt);
}

static void test_parse_hop(void **s)
{
    (void)s;
    char *u, *h;
    int p;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_ssh_parse_hop("bastion", &u, &h, &p, &err), 0);
    assert_null(u);
    assert_string_equal(h, "bastion");
    assert_int_equal(p, 0);
    free(h);
    assert_int_equal(hp_ssh_parse_hop("al.ice@b.example.org:2222", &u, &h, &p, &err), 0);
    assert_string_equal(u, "al.ice");
    assert_string_equal(h, "b.example.org");
    assert_int_equal(p, 2222);
    free(u);
    free(h);
    assert_int_equal(hp_ssh_parse_hop("ssh://bob@[::1]:22", &u, &h, &p, &err), 0);
    assert_string_equal(u, "bob");
    assert_string_equal(h, "::1");
    assert_int_equal(p, 22);
    free(u);
    free(h);
    assert_int_equal(hp_ssh_parse_hop("[fe80::1]", &u, &h, &p, &err), 0);
    assert_string_equal(h, "fe80::1");
    assert_int_equal(p, 0);
    free(h);
    static const char *const bad[] = { "host:0", "host:65536", "host:x", "@host", ":22",
                                       "h o", "[::1", "[]", "host:", NULL };
    for (size_t i = 0; bad[i]; i++) {
        hp_err_init(&err);
        if (hp_ssh_parse_hop(bad[i], &u, &h, &p, &err) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(err.code, HP_ESITE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildmatch),
        cmocka_unit_test(test_host_patterns),
        cmocka_unit_test(test_first_value_wins),
        cmocka_unit_test(test_syntax_variants),
        cmocka_unit_test(test_identity_files_accumulate),
        cmocka_unit_test(test_hostname_token),
        cmocka_unit_test(test_proxyjump),
        cmocka_unit_test(test_proxycommand),
        cmocka_unit_test(test_known_hosts_files),
        cmocka_unit_test(test_strict_values),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_match_skipped),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_include_loop),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_parse_hop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
