/* test-site.c - site profiles: layers, extends, --set, origins, typed view,
 * and the valid/invalid fixture folders (run from the source root). */
#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "adapter.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define FIX "tests/fixtures/site"

static char *tmp_root;

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

/* A fresh config dir and workflow dir under the temporary root. */
struct dirs {
    char *config, *wf;
};

static void dirs_new(struct dirs *d, const char *tag)
{
    d->config = hp_xasprintf("%s/%s/config", tmp_root, tag);
    d->wf = hp_xasprintf("%s/%s/wf", tmp_root, tag);
    assert_int_equal(hp_mkdir_p(d->config, 0700), 0);
    assert_int_equal(hp_mkdir_p(d->wf, 0700), 0);
}

static void dirs_free(struct dirs *d)
{
    free(d->config);
    free(d->wf);
}

static struct hp_site *must_load(const char *name, const struct hp_site_opts *o)
{
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site *s = hp_site_load(name, o, &e);
    if (!s) {
        char line[2200];
        hp_err_format(&e, line, sizeof(line));
        fail_msg("loading '%s' failed: %s", name, line);
    }
    return s;
}

/* Load that must fail; returns the formatted error (static buffer) and the
 * code in *code. */
static const char *load_err(const char *name, const struct hp_site_opts *o, int *code)
{
    static char line[2200];
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site *s = hp_site_load(name, o, &e);
    if (s) {
        hp_site_free(s);
        fail_msg("loading '%s' succeeded; an error was expected", name);
    }
    hp_err_format(&e, line, sizeof(line));
    if (code)
        *code = e.code;
    return line;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* ---- bundled, layers ----------------------------------------------------- */

static void test_bundled_local(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "bundled");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_site *s = must_load("local", &o);
    assert_string_equal(s->name, "local");
    assert_string_equal(s->scheduler, "local");
    assert_true(s->cores_per_node >= 1);
    assert_int_equal(s->cores_per_node, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(s->memory_mb > 0);
    assert_string_equal(s->launcher, "none");
    assert_null(s->container_runtime);
    assert_int_equal(s->net_compute, HP_NET_OPEN);
    assert_true(hp_starts_with(hp_site_origin(s, "/scheduler/type"), "<bundled>/local.yaml:"));
    assert_string_equal(hp_site_origin(s, "/nodes/cores"), "<detected>");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s->root, "nodes"),
                                                        "cores")), s->cores_per_node);
    /* lists are never NULL */
    assert_non_null(s->directives);
    assert_null(s->directives[0]);
    assert_non_null(s->shared);
    assert_null(hp_site_partition(s, NULL));
    hp_site_free(s);
    dirs_free(&d);
}

static void test_layers_user_and_workflow(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "layers");
    write_file(d.config, "sites/local.yaml",
               "# user layer\n"
               "nodes:\n"
               "  cores: 3\n"
               "modules: [a, b]\n"
               "env: {X: user, Y: user}\n");
    write_file(d.wf, "sites/local.yaml",
               "env:\n"
               "  Y: wf\n"
               "modules: [c]\n");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_site *s = must_load("local", &o);
    assert_int_equal(s->cores_per_node, 3);
    char *want = hp_xasprintf("%s/sites/local.yaml:3:10", d.config);
    assert_string_equal(hp_site_origin(s, "/nodes/cores"), want);
    free(want);
    assert_string_equal(s->modules[0], "a");
    assert_string_equal(s->modules[1], "b");
    assert_null(s->modules[2]);
    hp_site_free(s);

    o.workflow_dir = d.wf;
    s = must_load("local", &o);
    assert_int_equal(s->cores_per_node, 3);       /* mappings merge */
    assert_string_equal(s->modules[0], "c");      /* lists replace */
    assert_null(s->modules[1]);
    assert_int_equal(s->nenv, 2);
    assert_string_equal(s->env[0].key, "X");
    assert_string_equal(s->env[0].value, "user");
    assert_string_equal(s->env[1].key, "Y");
    assert_string_equal(s->env[1].value, "wf");
    want = hp_xasprintf("%s/sites/local.yaml:2:6", d.wf);
    assert_string_equal(hp_site_origin(s, "/env/Y"), want);
    free(want);
    want = hp_xasprintf("%s/sites/local.yaml:5:10", d.config);
    assert_string_equal(hp_site_origin(s, "/env/X"), want);
    free(want);
    /* the dropped list entries have no origin left */
    assert_null(json_object_get(s->origin, "/modules/1"));
    /* nearest ancestor */
    assert_true(hp_starts_with(hp_site_origin(s, "/scheduler/type/nothing"), "<bundled>/"));
    hp_site_free(s);
    dirs_free(&d);
}

/* ---- extends ------------------------------------------------------------- */

static void test_extends(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "extends");
    write_file(d.config, "sites/base.yaml",
               "name: base\n"
               "description: the base\n"
               "scheduler:\n"
               "  type: slurm\n"
               "  account: \"<ACCOUNT>\"\n"
               "  partitions:\n"
               "    - {name: cpu, max_walltime: 12h}\n"
               "    - {name: gpu, max_walltime: 6h, gpus_per_node: 4}\n"
               "  directives: [--exclusive]\n"
               "network: {login: proxy, compute: none, proxy: http://p:3128}\n");
    write_file(d.config, "sites/mid.yaml",
               "extends: base\n"
               "scheduler:\n"
               "  default_partition: gpu\n");
    write_file(d.wf, "sites/child.yaml",
               "extends: mid\n"
               "scheduler:\n"
               "  account: m1234\n"
               "  directives: []\n");
    struct hp_site_opts o = { .config_dir = d.config, .workflow_dir = d.wf };
    struct hp_site *s = must_load("child", &o);
    assert_string_equal(s->name, "child");
    assert_string_equal(json_string_value(json_object_get(s->root, "name")), "child");
    assert_string_equal(json_string_value(json_object_get(s->root, "extends")), "mid");
    assert_string_equal(s->description, "the base");   /* inherited */
    assert_string_equal(s->scheduler, "slurm");
    assert_string_equal(s->account, "m1234");
    assert_false(hp_site_is_placeholder(s->account));
    assert_null(s->directives[0]);
    assert_int_equal(s->nparts, 2);
    assert_string_equal(hp_site_partition(s, NULL)->name, "gpu");
    assert_int_equal(hp_site_partition(s, NULL)->gpus_per_node, 4);
    assert_int_equal(s->net_login, HP_NET_PROXY);
    assert_int_equal(s->net_compute, HP_NET_NONE);
    assert_string_equal(s->proxy, "http://p:3128");
    char *want = hp_xasprintf("%s/sites/base.yaml:4:9", d.config);
    assert_string_equal(hp_site_origin(s, "/scheduler/type"), want);
    free(want);
    want = hp_xasprintf("%s/sites/mid.yaml:3:22", d.config);
    assert_string_equal(hp_site_origin(s, "/scheduler/default_partition"), want);
    free(want);
    /* the name is not inherited: it defaults to the child's file */
    want = hp_xasprintf("%s/sites/child.yaml:1:1", d.wf);
    assert_string_equal(hp_site_origin(s, "/name"), want);
    free(want);
    hp_site_free(s);

    s = must_load("base", &o);
    assert_true(hp_site_is_placeholder(s->account));
    hp_site_free(s);
    dirs_free(&d);
}

static void test_extends_errors(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "cycles");
    write_file(d.config, "sites/a.yaml", "extends: b\n");
    write_file(d.config, "sites/b.yaml", "extends: c\n");
    write_file(d.config, "sites/c.yaml", "description: c\nextends: a\n");
    write_file(d.config, "sites/self.yaml", "extends: self\n");
    write_file(d.config, "sites/typo.yaml", "scheduler: {type: slurm}\nextends: lcoal\n");
    write_file(d.config, "sites/far.yaml", "extends: zzzzzzzz\n");
    write_file(d.config, "sites/bare.yaml", "description: nothing else\n");
    struct hp_site_opts o = { .config_dir = d.config };
    int code;
    char *want = hp_xasprintf("%s/sites/c.yaml:2:10: error: extends cycle: a -> b -> c -> a "
                              "(at /extends)", d.config);
    assert_string_equal(load_err("a", &o, &code), want);
    assert_int_equal(code, HP_ESITE);
    free(want);
    want = hp_xasprintf("%s/sites/a.yaml:1:10: error: extends cycle: b -> c -> a -> b "
                        "(at /extends)", d.config);
    assert_string_equal(load_err("b", &o, NULL), want);
    free(want);
    assert_contains(load_err("self", &o, NULL), "extends cycle: self -> self (at /extends)");
    want = hp_xasprintf("%s/sites/typo.yaml:2:10: error: unknown site 'lcoal' (did you mean "
                        "'local'?); see 'hpcport site list' (at /extends)", d.config);
    assert_string_equal(load_err("typo", &o, &code), want);
    assert_int_equal(code, HP_ESITE);
    free(want);
    assert_contains(load_err("far", &o, NULL), "unknown site 'zzzzzzzz'; see 'hpcport site list'");
    want = hp_xasprintf("%s/sites/bare.yaml:1:1: error: site 'bare' has no scheduler type: set "
                        "scheduler.type (slurm, pbs or local), or extend a profile that does "
                        "(at /scheduler/type)", d.config);
    assert_string_equal(load_err("bare", &o, &code), want);
    assert_int_equal(code, HP_ESITE);
    free(want);
    dirs_free(&d);
}

static void test_unknown_name(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "unknown");
    write_file(d.config, "sites/perlmutter.yaml", "scheduler: {type: slurm}\n");
    struct hp_site_opts o = { .config_dir = d.config };
    int code;
    assert_string_equal(load_err("perlmuter", &o, &code),
                        "error: unknown site 'perlmuter' (did you mean 'perlmutter'?); "
                        "see 'hpcport site list'");
    assert_int_equal(code, HP_ESITE);
    assert_string_equal(load_err("qqqqqqqq", &o, &code),
                        "error: unknown site 'qqqqqqqq'; see 'hpcport site list'");
    assert_contains(load_err("../etc/passwd", &o, &code), "bad site name '../etc/passwd'");
    assert_int_equal(code, HP_ESITE);
    assert_false(hp_site_valid_name(""));
    assert_false(hp_site_valid_name(".hidden"));
    assert_false(hp_site_valid_name("a b"));
    assert_true(hp_site_valid_name("perlmutter-gpu_2.x"));
    dirs_free(&d);
}

/* ---- --set --------------------------------------------------------------- */

static struct hp_site *load_sets(const char *name, const char *config, const char *const *sets,
                                 size_t n, struct hp_err *e)
{
    struct hp_site_opts o = { .config_dir = config, .sets = sets, .nsets = n };
    hp_err_init(e);
    return hp_site_load(name, &o, e);
}

static void test_set_typing(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "set");
    write_file(d.config, "sites/c.yaml",
               "scheduler:\n"
               "  type: slurm\n"
               "  partitions:\n"
               "    - {name: a, max_walltime: 1h}\n"
               "    - {name: b}\n"
               "  account: old\n"
               "login: {host: h, user: u}\n");
    const char *sets[] = {
        "scheduler.account=m1234",
        "scheduler.partitions.0.max_walltime=2h",
        "scheduler.partitions.2={name: c, max_nodes: 4}",
        "network.no_proxy=[a, b]",
        "scheduler.max_queued_jobs=3",
        "description=a plain string stays a string",
        "env.N=007",
        "login={port: 2222}",
        "login.user=null",
        "setup=[\"module load x\"]",
        "scheduler.qos=",
    };
    struct hp_err e;
    struct hp_site *s = load_sets("c", d.config, sets, sizeof(sets) / sizeof(*sets), &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_string_equal(s->account, "m1234");
    assert_string_equal(hp_site_origin(s, "/scheduler/account"), "--set");
    assert_int_equal(s->parts[0].max_walltime, 7200);
    assert_string_equal(hp_site_origin(s, "/scheduler/partitions/0/max_walltime"), "--set");
    assert_true(hp_ends_with(hp_site_origin(s, "/scheduler/partitions/0/name"), "c.yaml:4:14"));
    assert_int_equal(s->nparts, 3);
    assert_string_equal(s->parts[2].name, "c");
    assert_int_equal(s->parts[2].max_nodes, 4);
    assert_int_equal(s->parts[2].gpus_per_node, -1);
    assert_string_equal(s->no_proxy[0], "a");
    assert_string_equal(s->no_proxy[1], "b");
    assert_null(s->no_proxy[2]);
    assert_int_equal(s->max_queued_jobs, 3);
    assert_string_equal(s->description, "a plain string stays a string");
    assert_string_equal(s->env[0].value, "7");   /* YAML 1.2: a decimal integer */
    assert_string_equal(s->login_host, "h");     /* mappings merge */
    assert_int_equal(s->login_port, 2222);
    assert_null(s->login_user);                  /* null removes */
    assert_null(json_object_get(s->origin, "/login/user"));
    assert_string_equal(s->setup[0], "module load x");
    assert_null(s->qos);                         /* empty = unset */
    assert_string_equal(json_string_value(json_object_get(json_object_get(s->root, "scheduler"),
                                                          "qos")), "");
    hp_site_free(s);
    dirs_free(&d);
}

static void test_set_errors(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "seterr");
    write_file(d.config, "sites/c.yaml",
               "scheduler:\n"
               "  type: slurm\n"
               "  partitions: [{name: a}]\n");
    /* msg is the whole error line, or with a leading '~' a part of it */
    static const struct {
        const char *set;
        int code;
        const char *msg;
    } cases[] = {
        { "scheduler", HP_EUSAGE, "error: bad --set 'scheduler': expected KEY=VALUE" },
        { "=x", HP_EUSAGE, "error: bad --set '=x': expected KEY=VALUE" },
        { "a..b=x", HP_EUSAGE, "error: bad --set 'a..b=x': expected KEY=VALUE" },
        { ".a=x", HP_EUSAGE, "error: bad --set '.a=x': expected KEY=VALUE" },
        { "scheduler.acount=x", HP_EUSAGE,
          "error: --set 'scheduler.acount=x': unknown key 'acount' (did you mean 'account'?) "
          "(at /scheduler/acount)" },
        { "schedular.type=pbs", HP_EUSAGE,
          "error: --set 'schedular.type=pbs': unknown key 'schedular' (did you mean "
          "'scheduler'?) (at /schedular)" },
        { "scheduler.max_walltime=forever", HP_EUSAGE,
          "error: --set 'scheduler.max_walltime=forever': bad duration 'forever': use e.g. "
          "90s, 30m, 1h30m, 2d, HH:MM:SS or D-HH:MM:SS (at /scheduler/max_walltime)" },
        { "scheduler.max_queued_jobs=many", HP_EUSAGE,
          "error: --set 'scheduler.max_queued_jobs=many': expected integer, got string "
          "(at /scheduler/max_queued_jobs)" },
        { "scheduler.partitions.x.name=b", HP_EUSAGE,
          "error: --set 'scheduler.partitions.x.name=b': 'scheduler.partitions' is a list; "
          "follow it with an index (0, 1, ...), not 'x'" },
        { "scheduler.partitions.5.name=b", HP_EUSAGE,
          "error: --set 'scheduler.partitions.5.name=b': index 5 is out of range: "
          "'scheduler.partitions' has 1 entries" },
        { "scheduler.partitions.0=null", HP_EUSAGE,
          "error: --set 'scheduler.partitions.0=null': a list entry cannot be removed; set "
          "the whole list instead" },
        { "scheduler.type.x=1", HP_EUSAGE,
          "error: --set 'scheduler.type.x=1': 'scheduler.type' is a string, not a mapping or "
          "a list" },
        { "extends=local", HP_EUSAGE,
          "error: --set 'extends=local': 'extends' cannot be set on the command line; write "
          "a profile file instead" },
        { "name=other", HP_EUSAGE,
          "error: --set 'name=other': 'name' cannot be set on the command line; write a "
          "profile file instead" },
        { "network.no_proxy=[a, b", HP_EUSAGE, "~error: bad --set 'network.no_proxy=[a, b': " },
        { "scheduler.type=null", HP_ESITE, "~has no scheduler type" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct hp_err e;
        const char *sets[] = { cases[i].set };
        struct hp_site *s = load_sets("c", d.config, sets, 1, &e);
        if (s) {
            hp_site_free(s);
            fail_msg("--set '%s' was accepted", cases[i].set);
        }
        char line[2200];
        hp_err_format(&e, line, sizeof(line));
        if (cases[i].msg[0] == '~')
            assert_contains(line, cases[i].msg + 1);
        else
            assert_string_equal(line, cases[i].msg);
        assert_int_equal(e.code, cases[i].code);
    }
    dirs_free(&d);
}

static void test_set_creates_containers(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "setnew");
    write_file(d.config, "sites/c.yaml", "scheduler: {type: pbs}\n");
    const char *sets[] = {
        "scheduler.partitions.0.name=workq",
        "scheduler.partitions.0.max_walltime=01:00:00",
        "scheduler.dialect=torque",
        "nodes.cores=8",
    };
    struct hp_err e;
    struct hp_site *s = load_sets("c", d.config, sets, 4, &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_int_equal(s->nparts, 1);
    assert_string_equal(s->parts[0].name, "workq");
    assert_int_equal(s->parts[0].max_walltime, 3600);
    assert_string_equal(s->dialect, "torque");
    assert_int_equal(s->cores_per_node, 8);
    assert_string_equal(s->launcher, "mpiexec");
    assert_string_equal(hp_site_origin(s, "/scheduler/partitions"), "--set");
    hp_site_free(s);
    dirs_free(&d);
}

/* ---- typed view ---------------------------------------------------------- */

static void test_typed_view_example(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "view");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site *s = hp_site_load_file("examples/sites/example-slurm.yaml", &o, &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_string_equal(s->name, "example-slurm");
    assert_string_equal(s->scheduler, "slurm");
    assert_null(s->dialect);
    assert_true(hp_site_is_placeholder(s->account));
    assert_int_equal(s->nparts, 3);
    assert_string_equal(s->parts[1].name, "gpu");
    assert_int_equal(s->parts[1].max_walltime, 24 * 3600);
    assert_int_equal(s->parts[1].max_nodes, 256);
    assert_int_equal(s->parts[1].cores_per_node, 64);
    assert_int_equal(s->parts[1].memory_mb, 256 * 1024);
    assert_int_equal(s->parts[1].gpus_per_node, 4);
    assert_string_equal(s->parts[1].gpu_type, "a100");
    assert_string_equal(s->parts[1].qos, "gpu");
    assert_null(s->parts[0].gpu_type);
    assert_null(s->parts[0].qos);
    assert_int_equal(s->parts[2].max_walltime, 30 * 60);
    assert_string_equal(s->default_partition, "regular");
    assert_string_equal(s->directives[0], "--exclusive");
    assert_null(s->directives[1]);
    assert_int_equal(s->max_queued_jobs, 5000);
    assert_int_equal(s->max_walltime, 48 * 3600);
    assert_int_equal(s->default_walltime, 30 * 60);
    assert_string_equal(s->login_host, "login.cluster.example.org");
    assert_int_equal(s->login_port, 22);
    assert_string_equal(s->jump[0], "<USER>@bastion.example.org:22");
    assert_string_equal(s->auth[0], "publickey");
    assert_string_equal(s->auth[1], "keyboard-interactive");
    assert_non_null(s->otp_command);
    assert_int_equal(s->net_login, HP_NET_PROXY);
    assert_int_equal(s->net_compute, HP_NET_NONE);
    assert_string_equal(s->proxy, "http://proxy.example.org:3128");
    assert_string_equal(s->no_proxy[0], ".example.org");
    assert_string_equal(s->home, "/home/$USER");
    assert_string_equal(s->scratch, "$SCRATCH");
    assert_string_equal(s->shared[1], "/software");
    assert_int_equal(s->cores_per_node, 128);
    assert_int_equal(s->memory_mb, 512 * 1024);
    assert_int_equal(s->gpus_per_node, 0);
    assert_string_equal(s->container_runtime, "apptainer");
    assert_string_equal(s->launcher, "srun");
    assert_string_equal(s->setup[0], "module purge");
    assert_string_equal(s->modules[2], "cuda/12.2");
    assert_int_equal(s->nenv, 2);
    assert_string_equal(s->env[0].key, "OMP_PROC_BIND");
    assert_string_equal(s->env[0].value, "spread");
    assert_string_equal(hp_site_origin(s, "/scheduler/partitions/1/gpu_type"),
                        "examples/sites/example-slurm.yaml:28:17");
    hp_site_free(s);
    dirs_free(&d);
}

static void test_env_values(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "env");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site *s = hp_site_load_file(FIX "/valid/full.yaml", &o, &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_int_equal(s->nenv, 4);
    assert_string_equal(s->env[0].value, "text");
    assert_string_equal(s->env[1].value, "4");
    assert_string_equal(s->env[2].value, "0.5");
    assert_string_equal(s->env[3].value, "true");
    assert_string_equal(s->container_runtime, "podman-hpc");
    assert_int_equal(s->login_port, 2222);
    hp_site_free(s);
    dirs_free(&d);
}

/* oauth: the typed view, and the default scopes */
static void test_oauth_view(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "oauth");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site *s = hp_site_load_file(FIX "/valid/oauth.yaml", &o, &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_non_null(s->oauth);
    assert_string_equal(s->oauth->issuer, "https://id.example.org/realms/hpc");
    assert_string_equal(s->oauth->client_id, "hpcport");
    assert_string_equal(s->oauth->scopes[2], "profile");
    assert_null(s->oauth->scopes[3]);
    assert_string_equal(s->oauth->audience, "https://api.example.org");
    assert_string_equal(s->oauth->ca_file, "/etc/ssl/private-ca.pem");
    hp_site_free(s);
    write_file(d.config, "sites/o.yaml",
               "scheduler: {type: local}\n"
               "oauth: {issuer: 'http://127.0.0.1:8080', client_id: c}\n");
    s = hp_site_load("o", &o, &e);
    if (!s)
        fail_msg("%s", e.msg);
    assert_string_equal(s->oauth->scopes[0], "openid");
    assert_string_equal(s->oauth->scopes[1], "offline_access");
    assert_null(s->oauth->scopes[2]);
    assert_null(s->oauth->audience);
    assert_null(s->oauth->ca_file);
    hp_site_free(s);
    s = hp_site_load_file(FIX "/valid/full.yaml", &o, &e);
    assert_non_null(s);
    assert_null(s->oauth);
    hp_site_free(s);
    dirs_free(&d);
}

static void test_partition_lookup(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "parts");
    write_file(d.config, "sites/nodefault.yaml",
               "scheduler:\n  type: slurm\n  partitions: [{name: first}, {name: second}]\n");
    write_file(d.config, "sites/withdefault.yaml",
               "extends: nodefault\nscheduler: {default_partition: second}\n");
    write_file(d.config, "sites/none.yaml",
               "scheduler: {type: slurm, default_partition: anything}\n");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_site *s = must_load("nodefault", &o);
    assert_string_equal(hp_site_partition(s, NULL)->name, "first");
    assert_string_equal(hp_site_partition(s, "second")->name, "second");
    assert_null(hp_site_partition(s, "third"));
    hp_site_free(s);
    s = must_load("withdefault", &o);
    assert_string_equal(hp_site_partition(s, NULL)->name, "second");
    assert_string_equal(hp_site_partition(s, "first")->name, "first");
    hp_site_free(s);
    s = must_load("none", &o);
    assert_string_equal(s->default_partition, "anything");
    assert_null(hp_site_partition(s, NULL));
    assert_null(hp_site_partition(s, "anything"));
    hp_site_free(s);
    assert_null(hp_site_partition(NULL, NULL));
    dirs_free(&d);
}

/* Keys for centres' rules: pass_name, gpu_request, container.gpu_options and
 * the ibrun launcher, in the typed view and in what the Slurm adapter renders. */
static char *render_slurm(const struct hp_site *site, const struct hp_jobspec *spec)
{
    const struct hp_adapter_ops *ad = hp_adapter_find("slurm");
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err err;
    hp_err_init(&err);
    assert_non_null(ad);
    if (ad->render(spec, site, &out, &err) < 0)
        fail_msg("render failed: %s", err.msg);
    return hp_buf_detach(&out, NULL);
}

static void has(const char *script, const char *want)
{
    if (!script || !strstr(script, want))
        fail_msg("the script lacks '%s':\n%s", want, script ? script : "(none)");
}

static void test_centre_keys(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "centre");
    write_file(d.config, "sites/qosq.yaml",
               "scheduler:\n  type: slurm\n  constraint: gpu\n  gpu_request: gres\n"
               "  partitions:\n    - {name: regular, qos: regular, pass_name: false}\n"
               "    - {name: batch, pass_name: true}\n    - {name: plain}\n"
               "container: {runtime: apptainer, gpu_options: [--rocm, \"a b\"]}\n"
               "launcher: ibrun\n");
    write_file(d.config, "sites/plain.yaml",
               "scheduler: {type: slurm, gpu_request: gpus}\n"
               "container: {runtime: singularity, gpu_options: []}\n");
    write_file(d.config, "sites/dflt.yaml", "scheduler: {type: slurm}\n"
               "container: {runtime: podman-hpc}\n");
    write_file(d.config, "sites/bad.yaml", "scheduler: {type: slurm, gpu_request: gpu}\n");
    struct hp_site_opts o = { .config_dir = d.config };
    static const char *const argv[] = { "train", NULL };
    struct hp_jobspec spec;
    memset(&spec, 0, sizeof(spec));
    spec.campaign = "c";
    spec.instance = "t";
    spec.job_name = "c.t";
    spec.attempt = 1;
    spec.argv = argv;
    spec.res.nodes = 2;
    spec.res.ntasks = 8;
    spec.res.gpus = 4;
    spec.container = "img.sif";

    /* typed view */
    struct hp_site *s = must_load("qosq", &o);
    assert_int_equal(s->nparts, 3);
    assert_int_equal(s->parts[0].pass_name, 0);
    assert_int_equal(s->parts[1].pass_name, 1);
    assert_int_equal(s->parts[2].pass_name, 1);      /* unstated: passed */
    assert_string_equal(s->gpu_request, "gres");
    assert_int_equal(s->container_gpu_options_set, 1);
    assert_string_equal(s->container_gpu_options[0], "--rocm");
    assert_string_equal(s->container_gpu_options[1], "a b");
    assert_null(s->container_gpu_options[2]);
    assert_string_equal(s->launcher, "ibrun");

    /* a QOS queue: no --partition, its qos and the site's constraint */
    spec.partition = "regular";
    char *out = render_slurm(s, &spec);
    assert_null(strstr(out, "--partition"));
    has(out, "#SBATCH --qos=regular\n");
    has(out, "#SBATCH --constraint=gpu\n");
    has(out, "#SBATCH --gres=gpu:4\n");
    assert_null(strstr(out, "--gpus-per-node"));
    /* options quoted where a shell needs it; ibrun takes the job's layout */
    has(out, "exec ibrun apptainer exec --rocm 'a b' 'img.sif' 'train'\n");
    free(out);
    spec.partition = "batch";
    spec.res.gpu_type = "a100";
    out = render_slurm(s, &spec);
    has(out, "#SBATCH --partition=batch\n");
    has(out, "#SBATCH --gres=gpu:a100:4\n");
    free(out);
    hp_site_free(s);

    /* --gpus is the job's total; [] gives no runtime option */
    s = must_load("plain", &o);
    assert_int_equal(s->container_gpu_options_set, 1);
    assert_null(s->container_gpu_options[0]);
    spec.partition = NULL;
    spec.res.gpu_type = NULL;
    out = render_slurm(s, &spec);
    has(out, "#SBATCH --gpus=8\n");
    has(out, "exec srun --nodes=2 --ntasks=8 singularity exec 'img.sif' 'train'\n");
    free(out);
    hp_site_free(s);

    /* unstated: --gpus-per-node and the runtime's usual option */
    s = must_load("dflt", &o);
    assert_string_equal(s->gpu_request, "gpus-per-node");
    assert_int_equal(s->container_gpu_options_set, 0);
    out = render_slurm(s, &spec);
    has(out, "#SBATCH --gpus-per-node=4\n");
    has(out, "podman-hpc run --rm --gpu -v");
    free(out);
    spec.res.gpus = 0;           /* no GPUs: no GPU option, none of the runtime's */
    out = render_slurm(s, &spec);
    assert_null(strstr(out, "gpu"));
    free(out);
    hp_site_free(s);

    int code = 0;
    const char *msg = load_err("bad", &o, &code);
    assert_int_equal(code, HP_EINPUT);
    has(msg, "bad.yaml:1:");
    has(msg, "(at /scheduler/gpu_request)");
    dirs_free(&d);
}

static void test_auto_elsewhere(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "auto");
    write_file(d.config, "sites/remote.yaml",
               "scheduler: {type: slurm}\nnodes: {cores: auto, memory: auto}\n");
    struct hp_site_opts o = { .config_dir = d.config };
    struct hp_site *s = must_load("remote", &o);
    assert_int_equal(s->cores_per_node, 0);
    assert_int_equal(s->memory_mb, 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s->root, "nodes"),
                                                          "cores")), "auto");
    hp_site_free(s);
    dirs_free(&d);
}

static void test_load_file_missing(void **state)
{
    (void)state;
    struct hp_err e;
    hp_err_init(&e);
    struct hp_site_opts o = { .config_dir = FIX "/config" };
    assert_null(hp_site_load_file(FIX "/nope.yaml", &o, &e));
    assert_int_equal(e.code, HP_ENOTFOUND);
    hp_err_init(&e);
    assert_null(hp_site_load_file("/tmp/bad name.yaml", &o, &e));
    assert_int_equal(e.code, HP_ESITE);
}

/* ---- list ---------------------------------------------------------------- */

static void test_list(void **state)
{
    (void)state;
    struct dirs d;
    dirs_new(&d, "list");
    write_file(d.config, "sites/zeta.yaml", "description: last\nscheduler: {type: pbs}\n");
    write_file(d.config, "sites/alpha.yaml", "extends: zeta\n");
    write_file(d.config, "sites/broken.yaml", "scheduler: {type: Slurm}\n");
    write_file(d.config, "sites/local.yaml", "nodes: {cores: 1}\n");
    write_file(d.config, "sites/.hidden.yaml", "scheduler: {type: slurm}\n");
    write_file(d.config, "sites/notes.txt", "not a profile\n");
    write_file(d.wf, "sites/wfonly.yaml", "scheduler: {type: local}\n");
    struct hp_site_opts o = { .config_dir = d.config, .workflow_dir = d.wf };
    struct hp_site_entry *all;
    size_t nall;
    struct hp_err err;
    hp_err_init(&err);
    assert_int_equal(hp_site_list(&o, &all, &nall, &err), 0);
    /* the bundled centre profiles are listed too; look at the others */
    struct hp_site_entry *e = hp_xcalloc(nall, sizeof(*e));
    size_t n = 0, bundled = 0;
    for (size_t i = 0; i < nall; i++) {
        if (hp_starts_with(all[i].source, "<bundled>/"))
            bundled++;
        else
            e[n++] = all[i];
        if (!strcmp(all[i].name, "perlmutter-gpu")) {
            assert_string_equal(all[i].source, "<bundled>/perlmutter-gpu.yaml");
            assert_string_equal(all[i].scheduler, "slurm");
        }
    }
    assert_true(bundled >= 12);
    assert_int_equal(n, 5);
    assert_string_equal(e[0].name, "alpha");
    assert_string_equal(e[0].scheduler, "pbs");
    assert_string_equal(e[0].description, "last");
    assert_null(e[0].error);
    assert_string_equal(e[1].name, "broken");
    assert_null(e[1].scheduler);
    assert_non_null(e[1].error);
    assert_contains(e[1].error, "broken.yaml:1:19: error: ");
    assert_string_equal(e[2].name, "local");
    char *want = hp_xasprintf("%s/sites/local.yaml", d.config);
    assert_string_equal(e[2].source, want);
    free(want);
    assert_string_equal(e[3].name, "wfonly");
    assert_string_equal(e[4].name, "zeta");
    free(e);
    hp_site_entries_free(all, nall);
    hp_site_entries_free(NULL, 0);
    hp_site_free(NULL);
    dirs_free(&d);
}

/* ---- fixtures ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.yaml files of dir, sorted; NULL-terminated. */
static char **yaml_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **v = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!hp_ends_with(de->d_name, ".yaml"))
            continue;
        HP_ALLOC_GROW(v, n + 2, alloc);
        v[n++] = hp_xasprintf("%s/%s", dir, de->d_name);
    }
    closedir(d);
    qsort(v, n, sizeof(*v), cmp_str);
    v[n] = NULL;
    return v;
}

static void test_fixtures_valid(void **state)
{
    (void)state;
    char **files = yaml_files(FIX "/valid");
    struct hp_site_opts o = { .config_dir = FIX "/config" };
    size_t n = 0;
    for (char **f = files; *f; f++, n++) {
        struct hp_err e;
        hp_err_init(&e);
        struct hp_site *s = hp_site_load_file(*f, &o, &e);
        if (!s) {
            char line[2200];
            hp_err_format(&e, line, sizeof(line));
            fail_msg("%s should be valid: %s", *f, line);
        }
        hp_site_free(s);
        free(*f);
    }
    free(files);
    assert_true(n >= 5);
}

static void test_fixtures_invalid(void **state)
{
    (void)state;
    char **files = yaml_files(FIX "/invalid");
    struct hp_site_opts o = { .config_dir = FIX "/config" };
    size_t n = 0;
    for (char **f = files; *f; f++, n++) {
        struct hp_err e;
        hp_err_init(&e);
        struct hp_site *s = hp_site_load_file(*f, &o, &e);
        if (s)
            fail_msg("%s should be invalid", *f);
        char line[2200];
        hp_err_format(&e, line, sizeof(line));
        char *errpath = hp_xasprintf("%.*s.err", (int)(strlen(*f) - 5), *f);
        char *want;
        if (hp_read_file(errpath, 0, &want, NULL) < 0)
            fail_msg("%s: missing; the error is:\n%s", errpath, line);
        want[strcspn(want, "\n")] = '\0';
        if (strcmp(line, want) != 0)
            fail_msg("%s:\n  got:  %s\n  want: %s", *f, line, want);
        assert_true(e.code == HP_EINPUT || e.code == HP_ESITE);
        free(want);
        free(errpath);
        free(*f);
    }
    free(files);
    assert_true(n >= 20);
}

int main(void)
{
    const char *src = getenv("HP_SRCDIR");
    if (src && chdir(src) < 0) {
        perror(src);
        return 1;
    }
    char tmpl[] = "/tmp/hpcport-test-site-XXXXXX";
    tmp_root = mkdtemp(tmpl);
    if (!tmp_root) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundled_local),
        cmocka_unit_test(test_layers_user_and_workflow),
        cmocka_unit_test(test_extends),
        cmocka_unit_test(test_extends_errors),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_set_typing),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_set_creates_containers),
        cmocka_unit_test(test_typed_view_example),
        cmocka_unit_test(test_env_values),
        cmocka_unit_test(test_oauth_view),
        cmocka_unit_test(test_partition_lookup),
        cmocka_unit_test(test_centre_keys),
        cmocka_unit_test(test_auto_elsewhere),
        cmocka_unit_test(test_load_file_missing),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_fixtures_valid),
        cmocka_unit_test(test_fixtures_invalid),
    };
    int rc = cmocka_run_group_tests_name("site", tests, NULL, NULL);
    nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
