/* Unit tests for the workflow model: expansion, templates, dependencies,
 * defaults and site overrides, ids, and positioned errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "util.h"
#include "workflow.h"

/* Load text as "t.yaml" and expand for site (NULL = none). On failure
 * returns NULL with err filled. */
static struct hp_workflow *load_site(const char *text, const char *site, struct hp_err *err)
{
    hp_err_init(err);
    struct hp_doc *doc = hp_doc_load_mem("t.yaml", text, strlen(text), NULL, err);
    if (!doc)
        return NULL;
    struct hp_workflow *wf = hp_workflow_from_doc(doc, err);
    if (!wf)
        return NULL;
    if (hp_workflow_expand(wf, site, 0, err) < 0) {
        hp_workflow_free(wf);
        return NULL;
    }
    return wf;
}

static struct hp_workflow *load_ok(const char *text)
{
    struct hp_err err;
    struct hp_workflow *wf = load_site(text, NULL, &err);
    if (!wf) {
        char line[2300];
        hp_err_format(&err, line, sizeof(line));
        fail_msg("unexpected error: %s", line);
    }
    return wf;
}

/* Expect an error at line:col with pointer, whose message contains needle. */
static void expect_err(const char *text, int line, int col, const char *pointer,
                       const char *needle)
{
    struct hp_err err;
    struct hp_workflow *wf = load_site(text, NULL, &err);
    if (wf) {
        hp_workflow_free(wf);
        fail_msg("expected an error containing '%s'", needle);
    }
    char fmt[2300];
    hp_err_format(&err, fmt, sizeof(fmt));
    if (!strstr(err.msg, needle))
        fail_msg("'%s' lacks '%s'", fmt, needle);
    assert_int_equal(err.code, HP_EINPUT);
    assert_string_equal(err.file, "t.yaml");
    if (err.line != line || err.col != col)
        fail_msg("'%s': expected %d:%d", fmt, line, col);
    assert_string_equal(err.pointer, pointer);
}

static void assert_ids(const struct hp_workflow *wf, const char *const *ids)
{
    size_t n = 0;
    for (; ids[n]; n++) {
        if (n >= wf->ninst)
            fail_msg("only %zu instances, expected %s", wf->ninst, ids[n]);
        assert_string_equal(wf->inst[n].id, ids[n]);
    }
    assert_int_equal(wf->ninst, n);
}

static const char *param(const struct hp_instance *in, const char *name)
{
    for (size_t k = 0; k < in->nparams; k++)
        if (!strcmp(in->params[k].key, name))
            return in->params[k].value;
    return NULL;
}

static const char *env(const struct hp_instance *in, const char *name)
{
    for (size_t k = 0; k < in->nenv; k++)
        if (!strcmp(in->env[k].key, name))
            return in->env[k].value;
    return NULL;
}

static size_t argc_of(const struct hp_instance *in)
{
    size_t n = 0;
    while (in->argv[n])
        n++;
    return n;
}

/* ---- expansion ---- */

static void test_single(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok("name: one\ntasks:\n  hello:\n    command: [echo, hi, 3, 2.50]\n"
                                     "  t:\n    command: [true, false]\n");
    assert_string_equal(wf->name, "one");
    assert_int_equal(wf->ntasks, 2);
    assert_int_equal(wf->ninst, 2);
    assert_string_equal(wf->inst[1].argv[0], "true");
    assert_string_equal(wf->inst[1].argv[1], "false");
    const struct hp_instance *in = &wf->inst[0];
    assert_string_equal(in->id, "hello");
    assert_int_equal(argc_of(in), 4);
    assert_string_equal(in->argv[0], "echo");
    assert_string_equal(in->argv[2], "3");
    assert_string_equal(in->argv[3], "2.5");
    assert_null(in->shell);
    assert_int_equal(in->nparams, 0);
    assert_null(wf->tasks[0].params[0]);
    assert_int_equal(in->res.nodes, 1);
    assert_int_equal(in->res.ntasks, 1);
    assert_int_equal(in->res.cores, 1);
    assert_int_equal(in->res.memory_mb, 0);
    assert_int_equal(in->res.walltime, 0);
    assert_null(in->container);
    assert_null(in->inputs[0]);
    assert_null(in->outputs[0]);
    assert_int_equal(in->ndeps, 0);
    hp_workflow_free(wf);
}

static void test_product_order(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: p\ntasks:\n  sim:\n    command: [sim, '{a}', '{b}']\n"
        "    matrix:\n      a: [x, y]\n      b: [1, 2, 3]\n");
    static const char *const ids[] = {
        "sim[a=x,b=1]", "sim[a=x,b=2]", "sim[a=x,b=3]",
        "sim[a=y,b=1]", "sim[a=y,b=2]", "sim[a=y,b=3]", NULL };
    assert_ids(wf, ids);
    assert_string_equal(wf->tasks[0].params[0], "a");
    assert_string_equal(wf->tasks[0].params[1], "b");
    assert_null(wf->tasks[0].params[2]);
    assert_int_equal(wf->tasks[0].first, 0);
    assert_int_equal(wf->tasks[0].count, 6);
    assert_string_equal(wf->inst[4].argv[1], "y");
    assert_string_equal(wf->inst[4].argv[2], "2");
    assert_string_equal(param(&wf->inst[4], "b"), "2");
    hp_workflow_free(wf);
}

static void test_zip_crossed(void **state)
{
    (void)state;
    /* zip declared first still comes last in ids and varies fastest */
    struct hp_workflow *wf = load_ok(
        "name: z\ntasks:\n  sim:\n    command: [sim]\n    matrix:\n"
        "      zip:\n        beam: [e, mu]\n        charge: [-1, 1]\n"
        "      seed: [1, 2]\n");
    static const char *const ids[] = {
        "sim[seed=1,beam=e,charge=-1]", "sim[seed=1,beam=mu,charge=1]",
        "sim[seed=2,beam=e,charge=-1]", "sim[seed=2,beam=mu,charge=1]", NULL };
    assert_ids(wf, ids);
    assert_string_equal(wf->tasks[0].params[0], "seed");
    assert_string_equal(wf->tasks[0].params[1], "beam");
    assert_string_equal(wf->tasks[0].params[2], "charge");
    hp_workflow_free(wf);

    /* zip alone; repeated values in one zip column are fine */
    wf = load_ok("name: z\ntasks:\n  t:\n    command: [t, '{a}{b}']\n    matrix:\n"
                 "      zip: {a: [x, x, y], b: [1, 2, 1]}\n");
    static const char *const ids2[] = { "t[a=x,b=1]", "t[a=x,b=2]", "t[a=y,b=1]", NULL };
    assert_ids(wf, ids2);
    assert_string_equal(wf->inst[2].argv[1], "y1");
    hp_workflow_free(wf);
}

static void test_exclude(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: e\ntasks:\n  t:\n    command: [t, '{index}']\n    matrix:\n"
        "      s: {from: 1, to: 3}\n      e: [1.0, 2.5]\n"
        "      zip: {beam: [e, mu, e], q: [-1, 1, 1]}\n"
        "      exclude:\n        - {s: 2, e: 2.5}\n        - {beam: e, q: 1}\n"
        "        - {s: 3, beam: mu}\n");
    /* 3*2*3 = 18; {s:2,e:2.5} drops 3, {beam:e,q:1} drops 6 (one shared with
     * the first), {s:3,beam:mu} drops 2: 18 - 3 - 5 - 2 = 8 */
    static const char *const ids[] = {
        "t[s=1,e=1.0,beam=e,q=-1]", "t[s=1,e=1.0,beam=mu,q=1]",
        "t[s=1,e=2.5,beam=e,q=-1]", "t[s=1,e=2.5,beam=mu,q=1]",
        "t[s=2,e=1.0,beam=e,q=-1]", "t[s=2,e=1.0,beam=mu,q=1]",
        "t[s=3,e=1.0,beam=e,q=-1]", "t[s=3,e=2.5,beam=e,q=-1]", NULL };
    assert_ids(wf, ids);
    /* {index} counts the instances that remain */
    for (size_t i = 0; i < wf->ninst; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%zu", i);
        assert_string_equal(wf->inst[i].argv[1], buf);
    }
    hp_workflow_free(wf);
}

static void test_range_step(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: r\ntasks:\n  t:\n    command: [t, '{x}']\n    matrix:\n"
        "      x: {from: -3, to: 8, step: 4}\n");
    static const char *const ids[] = { "t[x=-3]", "t[x=1]", "t[x=5]", NULL };
    assert_ids(wf, ids);
    hp_workflow_free(wf);

    wf = load_ok("name: r\ntasks:\n  t:\n    command: [t]\n    matrix:\n"
                 "      x: {from: 7, to: 7}\n");
    assert_int_equal(wf->ninst, 1);
    assert_string_equal(wf->inst[0].id, "t[x=7]");
    hp_workflow_free(wf);

    wf = load_ok("name: r\ntasks:\n  t:\n    command: [t]\n    matrix:\n"
                 "      x: {from: 1, to: 1000}\n      y: {from: 0, to: 99, step: 1}\n");
    assert_int_equal(wf->ninst, 100000);
    assert_string_equal(wf->inst[99999].id, "t[x=1000,y=99]");
    assert_string_equal(wf->inst[100].id, "t[x=2,y=0]");
    hp_workflow_free(wf);
}

static void test_value_rendering(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: v\ntasks:\n  t:\n    command: [t, '{v}']\n    matrix:\n"
        "      v: [1, 1.0, 2.5, 1e-3, 0.1, 100000.0, 1e20, -0.5, true, false, 0x10, "
        "'01', 'text with spaces', '']\n");
    static const char *const want[] = { "1", "1.0", "2.5", "0.001", "0.1", "100000.0",
                                        "1e+20", "-0.5", "true", "false", "16", "01",
                                        "text with spaces", "", NULL };
    for (size_t i = 0; want[i]; i++)
        assert_string_equal(wf->inst[i].argv[1], want[i]);
    assert_int_equal(wf->ninst, 14);
    hp_workflow_free(wf);
}

/* ---- templates ---- */

static void test_template_escapes(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: t\ntasks:\n  gen:\n    matrix: {s: [7]}\n"
        "    command: ['{{s}}', '{{{s}}}', 'a}}b{{c', '{task}-{index}-{s}', '{{task}}', "
        "'{s}{s}', 'x']\n");
    const struct hp_instance *in = &wf->inst[0];
    assert_string_equal(in->argv[0], "{s}");
    assert_string_equal(in->argv[1], "{7}");
    assert_string_equal(in->argv[2], "a}b{c");
    assert_string_equal(in->argv[3], "gen-0-7");
    assert_string_equal(in->argv[4], "{task}");
    assert_string_equal(in->argv[5], "77");
    assert_string_equal(in->argv[6], "x");
    hp_workflow_free(wf);
}

static void test_template_everywhere(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: t\n"
        "defaults:\n  env: {RUN: '{task}-{index}'}\n  container: 'docker://img:{task}'\n"
        "tasks:\n  gen:\n    matrix: {s: [1, 2]}\n    command: [gen]\n"
        "    env: {SEED: '{s}', N: 3, B: false}\n"
        "    inputs: ['in/{s}.dat', '/abs/{s}']\n    outputs: ['out/{task}/{s}.dat']\n");
    const struct hp_instance *in = &wf->inst[1];
    assert_string_equal(env(in, "RUN"), "gen-1");
    assert_string_equal(env(in, "SEED"), "2");
    assert_string_equal(env(in, "N"), "3");
    assert_string_equal(env(in, "B"), "false");
    assert_string_equal(in->container, "docker://img:gen");
    assert_string_equal(in->inputs[0], "in/2.dat");
    assert_string_equal(in->inputs[1], "/abs/2");
    assert_null(in->inputs[2]);
    assert_string_equal(in->outputs[0], "out/gen/2.dat");
    assert_null(in->outputs[1]);
    hp_workflow_free(wf);
}

static const char *const hostile[] = {
    "$(touch /tmp/hp-pwned)", "`id`", "a; b && c || d", "it's \"quoted\"", "line1\nline2",
    "*.txt ?x [ab]", "~root $HOME ${HOME}", "a,b=c[d]\\e", "", "-n", "=x", " lead", "\t",
    "back\\slash\\", "'", "\"", "{not a template}", "%s %n", NULL,
};

static char *hostile_yaml(const char *task_body)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_addf(&b, "name: h\ntasks:\n  t:\n%s    matrix:\n      v:\n", task_body);
    for (size_t i = 0; hostile[i]; i++) {
        /* a JSON string is a YAML double-quoted scalar */
        json_t *s = json_string(hostile[i]);
        char *q = json_dumps(s, JSON_ENCODE_ANY);
        hp_buf_addf(&b, "        - %s\n", q);
        free(q);
        json_decref(s);
    }
    return hp_buf_detach(&b, NULL);
}

static void test_hostile_argv(void **state)
{
    (void)state;
    char *y = hostile_yaml("    command: [printf, '%s', '{v}', 'pre-{v}-post']\n"
                           "    env: {V: '{v}'}\n");
    struct hp_workflow *wf = load_ok(y);
    size_t n = 0;
    while (hostile[n])
        n++;
    assert_int_equal(wf->ninst, n);
    for (size_t i = 0; i < n; i++) {
        const struct hp_instance *in = &wf->inst[i];
        char *pre = hp_xasprintf("pre-%s-post", hostile[i]);
        assert_int_equal(argc_of(in), 4);
        assert_string_equal(in->argv[1], "%s");
        assert_string_equal(in->argv[2], hostile[i]);
        assert_string_equal(in->argv[3], pre);
        assert_string_equal(env(in, "V"), hostile[i]);
        assert_string_equal(param(in, "v"), hostile[i]);
        /* ids are one line and findable */
        assert_null(strchr(in->id, '\n'));
        assert_ptr_equal(hp_workflow_find(wf, in->id), in);
        free(pre);
    }
    hp_workflow_free(wf);
    free(y);
}

/* Run script with /bin/sh -c and return its stdout (new string). */
static char *run_sh(const char *script)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    struct hp_buf b = HP_BUF_INIT;
    char buf[4096];
    ssize_t r;
    while ((r = read(fd[0], buf, sizeof(buf))) > 0)
        hp_buf_add(&b, buf, (size_t)r);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return hp_buf_detach(&b, NULL);
}

static void test_hostile_shell(void **state)
{
    (void)state;
    /* in a shell script a value is substituted as one quoted word: the shell
     * sees it literally, whatever it contains */
    char *y = hostile_yaml("    shell: printf '<%s>' {v} x{v}y\n");
    struct hp_workflow *wf = load_ok(y);
    unlink("/tmp/hp-pwned");
    for (size_t i = 0; hostile[i]; i++) {
        const struct hp_instance *in = &wf->inst[i];
        assert_null(in->argv);
        assert_non_null(in->shell);
        char *got = run_sh(in->shell);
        char *want = hp_xasprintf("<%s><x%sy>", hostile[i], hostile[i]);
        if (strcmp(got, want))
            fail_msg("value %zu: script [%s] printed [%s], want [%s]", i, in->shell, got, want);
        free(got);
        free(want);
    }
    assert_int_not_equal(access("/tmp/hp-pwned", F_OK), 0);
    /* safe values stay readable */
    hp_workflow_free(wf);
    wf = load_ok("name: s\ntasks:\n  t:\n    matrix: {v: [abc-1.5, 'two words']}\n"
                 "    shell: 'run {v} > out/{v}.txt; echo ${{HOME}}'\n");
    assert_string_equal(wf->inst[0].shell, "run abc-1.5 > out/abc-1.5.txt; echo ${HOME}");
    assert_string_equal(wf->inst[1].shell,
                        "run 'two words' > out/'two words'.txt; echo ${HOME}");
    hp_workflow_free(wf);
    free(y);
}

static void test_ids_unambiguous(void **state)
{
    (void)state;
    /* without escaping both would read t[a=1,b=2,b=3] */
    struct hp_workflow *wf = load_ok(
        "name: i\ntasks:\n  t:\n    command: [t]\n    matrix:\n"
        "      zip:\n        a: ['1,b=2', '1']\n        b: ['3', '2,b=3']\n");
    assert_string_equal(wf->inst[0].id, "t[a=1\\,b\\=2,b=3]");
    assert_string_equal(wf->inst[1].id, "t[a=1,b=2\\,b\\=3]");
    assert_ptr_equal(hp_workflow_find(wf, "t[a=1,b=2\\,b\\=3]"), &wf->inst[1]);
    assert_null(hp_workflow_find(wf, "t[a=1,b=2,b=3]"));
    assert_null(hp_workflow_find(wf, "nosuch"));
    assert_int_equal(hp_workflow_task_index(wf, "t"), 0);
    assert_int_equal(hp_workflow_task_index(wf, "u"), -1);
    hp_workflow_free(wf);
}

/* ---- dependencies ---- */

static int has_dep(const struct hp_workflow *wf, const struct hp_instance *in, const char *id)
{
    for (size_t d = 0; d < in->ndeps; d++)
        if (!strcmp(wf->inst[in->deps[d]].id, id))
            return 1;
    return 0;
}

static void test_deps(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: d\ntasks:\n"
        "  prep:\n    command: [prep]\n"
        "  gen:\n    after: prep\n    command: [gen]\n    matrix: {seed: {from: 1, to: 3}}\n"
        "  sim:\n    after: [gen, prep, gen]\n    command: [sim]\n"
        "    matrix: {seed: [1, 2, 3], e: [1.0, 2.0]}\n"
        "  per-e:\n    after: [sim]\n    command: [c]\n    matrix: {e: [2.0, 1.0]}\n"
        "  final:\n    after: [per-e]\n    command: [f]\n");
    const struct hp_instance *in = hp_workflow_find(wf, "gen[seed=2]");
    assert_non_null(in);
    assert_int_equal(in->ndeps, 1);
    assert_true(has_dep(wf, in, "prep"));

    in = hp_workflow_find(wf, "sim[seed=2,e=2.0]");
    assert_non_null(in);
    assert_int_equal(in->ndeps, 2);   /* duplicate 'gen' in after counts once */
    assert_string_equal(wf->inst[in->deps[0]].id, "gen[seed=2]");
    assert_string_equal(wf->inst[in->deps[1]].id, "prep");

    in = hp_workflow_find(wf, "per-e[e=1.0]");
    assert_non_null(in);
    assert_int_equal(in->ndeps, 3);
    for (size_t d = 0; d < in->ndeps; d++)
        assert_string_equal(param(&wf->inst[in->deps[d]], "e"), "1.0");
    assert_true(in->deps[0] < in->deps[1] && in->deps[1] < in->deps[2]);

    in = hp_workflow_find(wf, "final");
    assert_int_equal(in->ndeps, 2);
    assert_int_equal(wf->tasks[4].nafter, 1);
    assert_int_equal(wf->tasks[4].after[0], 3);
    assert_int_equal(wf->tasks[2].nafter, 2);   /* gen, prep */
    hp_workflow_free(wf);
}

static void test_deps_zip_and_strings(void **state)
{
    (void)state;
    /* values compare in rendered form: the range's 2 matches the list's "2" */
    struct hp_workflow *wf = load_ok(
        "name: d\ntasks:\n"
        "  a:\n    command: [a]\n    matrix:\n      zip: {beam: [e, mu, e], n: ['1', '2', '2']}\n"
        "  b:\n    after: a\n    command: [b]\n    matrix: {n: {from: 1, to: 2}, beam: [e]}\n");
    const struct hp_instance *in = hp_workflow_find(wf, "b[n=2,beam=e]");
    assert_non_null(in);
    assert_int_equal(in->ndeps, 1);
    assert_string_equal(wf->inst[in->deps[0]].id, "a[beam=e,n=2]");
    in = hp_workflow_find(wf, "b[n=1,beam=e]");
    assert_int_equal(in->ndeps, 1);
    assert_string_equal(wf->inst[in->deps[0]].id, "a[beam=e,n=1]");
    hp_workflow_free(wf);
}

static void test_cycles(void **state)
{
    (void)state;
    expect_err("name: c\ntasks:\n  a:\n    command: [a]\n    after: [c]\n"
               "  b:\n    command: [b]\n    after: a\n"
               "  c:\n    command: [c]\n    after: [b]\n",
               5, 13, "/tasks/a/after/0", "dependency cycle: a -> c -> b -> a");
    /* the cycle is found from a task outside it, still named from its first task */
    expect_err("name: c\ntasks:\n  z:\n    command: [z]\n    after: y\n"
               "  x:\n    command: [x]\n    after: [w, y]\n"
               "  y:\n    command: [y]\n    after: x\n  w:\n    command: [w]\n",
               8, 16, "/tasks/x/after/1", "dependency cycle: x -> y -> x");
    expect_err("name: c\ntasks:\n  a:\n    command: [a]\n    after: a\n",
               5, 12, "/tasks/a/after", "task 'a' comes after itself");
}

/* ---- defaults and sites ---- */

static const char sites_yaml[] =
    "name: s\nworkdir: run/../out\n"
    "defaults:\n"
    "  resources: {walltime: 1h, memory: 2G, cores: 2}\n"
    "  env: {A: da, B: db}\n"
    "  retries: 1\n"
    "  container: img:1\n"
    "  network: true\n"
    "  sites:\n"
    "    big:\n      resources: {partition: regular, cores: 64}\n      env: {B: dsite, C: dc}\n"
    "tasks:\n"
    "  t:\n    command: [t]\n"
    "    resources: {gpus: 1, walltime: '00:10:00'}\n"
    "    env: {B: tb, D: td}\n"
    "    network: false\n"
    "    sites:\n"
    "      big:\n        resources: {gpus: 4, memory: 1T}\n        env: {C: tc}\n"
    "        container: {image: 'img:{task}'}\n        retries: 5\n"
    "  u:\n    command: [u]\n";

static void test_defaults(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(sites_yaml);
    assert_null(wf->site);
    const struct hp_instance *t = &wf->inst[0], *u = &wf->inst[1];
    assert_int_equal(t->res.walltime, 600);
    assert_int_equal(t->res.memory_mb, 2048);
    assert_int_equal(t->res.cores, 2);
    assert_int_equal(t->res.gpus, 1);
    assert_null(t->res.partition);
    assert_int_equal(t->retries, 1);
    assert_int_equal(t->network, 0);
    assert_string_equal(t->container, "img:1");
    /* env merged key by key, first-seen order */
    assert_int_equal(t->nenv, 3);
    assert_string_equal(t->env[0].key, "A");
    assert_string_equal(t->env[0].value, "da");
    assert_string_equal(t->env[1].key, "B");
    assert_string_equal(t->env[1].value, "tb");
    assert_string_equal(t->env[2].key, "D");
    assert_int_equal(u->res.walltime, 3600);
    assert_int_equal(u->res.gpus, 0);
    assert_int_equal(u->network, 1);
    assert_int_equal(u->nenv, 2);
    /* workdir is relative to the file's directory, normalised */
    char *cwd = getcwd(NULL, 0);
    char *want = hp_xasprintf("%s/run/../out", cwd);
    assert_string_equal(wf->workdir, want);
    assert_string_equal(wf->dir, cwd);
    free(want);
    free(cwd);
    hp_workflow_free(wf);
}

static void test_site_overrides(void **state)
{
    (void)state;
    struct hp_err err;
    struct hp_workflow *wf = load_site(sites_yaml, "big", &err);
    assert_non_null(wf);
    assert_string_equal(wf->site, "big");
    const struct hp_instance *t = &wf->inst[0], *u = &wf->inst[1];
    /* defaults < defaults.sites.big < task < task.sites.big */
    assert_int_equal(t->res.cores, 64);
    assert_int_equal(t->res.gpus, 4);
    assert_int_equal(t->res.memory_mb, 1024 * 1024);
    assert_int_equal(t->res.walltime, 600);
    assert_string_equal(t->res.partition, "regular");
    assert_int_equal(t->retries, 5);
    assert_string_equal(t->container, "img:t");
    assert_string_equal(env(t, "B"), "tb");
    assert_string_equal(env(t, "C"), "tc");
    assert_string_equal(u->res.partition, "regular");
    assert_string_equal(env(u, "B"), "dsite");
    assert_string_equal(env(u, "C"), "dc");
    assert_string_equal(u->container, "img:1");
    /* a second expansion is refused */
    hp_err_init(&err);
    assert_int_equal(hp_workflow_expand(wf, NULL, 0, &err), -1);
    assert_int_equal(err.code, HP_EINTERNAL);
    hp_workflow_free(wf);

    /* a site nobody names changes nothing */
    wf = load_site(sites_yaml, "elsewhere", &err);
    assert_non_null(wf);
    assert_int_equal(wf->inst[0].res.cores, 2);
    hp_workflow_free(wf);
}

static void test_resource_syntax(void **state)
{
    (void)state;
    struct hp_workflow *wf = load_ok(
        "name: r\ntasks:\n"
        "  a:\n    command: [a]\n    resources: {walltime: 1h30m, memory: 512M}\n"
        "  b:\n    command: [b]\n    resources: {walltime: '2-00:00:00', memory: 1.5G}\n"
        "  c:\n    command: [c]\n    resources: {walltime: 90, memory: 100}\n");
    assert_int_equal(wf->inst[0].res.walltime, 5400);
    assert_int_equal(wf->inst[0].res.memory_mb, 512);
    assert_int_equal(wf->inst[1].res.walltime, 2 * 86400);
    assert_int_equal(wf->inst[1].res.memory_mb, 1536);
    assert_int_equal(wf->inst[2].res.walltime, 90);
    assert_int_equal(wf->inst[2].res.memory_mb, 100);
    hp_workflow_free(wf);
    expect_err("name: r\ntasks:\n  a:\n    command: [a]\n    resources: {walltime: 1x}\n",
               5, 27, "/tasks/a/resources/walltime",
               "bad walltime '1x': use 90m, 1h30m, HH:MM:SS or seconds");
    expect_err("name: r\ntasks:\n  a:\n    command: [a]\n    sites:\n      s1:\n"
               "        resources: {memory: 8Q}\n",
               7, 29, "/tasks/a/sites/s1/resources/memory", "bad memory '8Q'");
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    expect_err("name: e\ntasks:\n  gen:\n    matrix: {seed: [1, 2]}\n"
               "    command: [gen, '--seed={sed}']\n",
               5, 20, "/tasks/gen/command/1",
               "unknown template parameter 'sed' in task 'gen' (did you mean 'seed'?)");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    outputs: ['{x}']\n",
               5, 15, "/tasks/gen/outputs/0",
               "unknown template parameter 'x' in task 'gen' (write '{{' and '}}' for "
               "literal braces)");
    expect_err("name: e\ntasks:\n  gen:\n    shell: 'echo }'\n", 4, 12, "/tasks/gen/shell",
               "unmatched '}'");
    expect_err("name: e\ntasks:\n  gen:\n    shell: 'echo {1}'\n", 4, 12, "/tasks/gen/shell",
               "'{' does not start a {name}");
    expect_err("name: e\ntasks:\n  gen:\n    shell: 'echo {'\n", 4, 12, "/tasks/gen/shell",
               "'{' does not start a {name}");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n  sim:\n    command: [sim]\n"
               "    after: [gne]\n",
               7, 13, "/tasks/sim/after/0",
               "task 'sim' comes after unknown task 'gne' (did you mean 'gen'?)");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n"
               "      zip: {a: [1, 2], b: [1]}\n",
               6, 27, "/tasks/gen/matrix/zip/b",
               "zip lists of task 'gen' differ in length: 'a' has 2 values, 'b' has 1");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n"
               "      a: [1, 2]\n      zip: {a: [1, 2], b: [1, 2]}\n",
               7, 13, "/tasks/gen/matrix/zip/a", "is both in the matrix and in its zip");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n      task: [1]\n",
               6, 7, "/tasks/gen/matrix/task", "parameter name 'task' in task 'gen' is reserved");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n"
               "      zip: {exclude: [1]}\n",
               6, 13, "/tasks/gen/matrix/zip/exclude", "is reserved");
    /* 1 and "1" render the same: they would make the same instance twice */
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n      a: [1, '1']\n",
               6, 14, "/tasks/gen/matrix/a/1", "value '1' appears twice in parameter 'a'");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n      a: [1, 2]\n"
               "      exclude: [{a: 1}, {b: 2}]\n",
               7, 26, "/tasks/gen/matrix/exclude/1/b",
               "exclude names unknown parameter 'b' of task 'gen'");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    matrix:\n      a: [1, 2]\n"
               "      exclude: [{a: 1}, {a: 2}]\n",
               7, 16, "/tasks/gen/matrix/exclude", "every combination is excluded");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    outputs: [a/../../b]\n",
               5, 15, "/tasks/gen/outputs/0", "leaves the working directory");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    outputs: ['..']\n",
               5, 15, "/tasks/gen/outputs/0", "leaves the working directory");
    expect_err("name: e\ntasks:\n  gen:\n    matrix: {d: [x, '']}\n    command: [gen]\n"
               "    outputs: ['{d}']\n",
               6, 15, "/tasks/gen/outputs/0", "output '' of instance 'gen[d=]' is empty");
    expect_err("name: e\ntasks:\n  gen:\n    matrix: {d: [x, /y]}\n    command: [gen]\n"
               "    outputs: ['{d}/z']\n",
               6, 15, "/tasks/gen/outputs/0",
               "output '/y/z' of instance 'gen[d=/y]' is an absolute path");
    /* ".." inside a name is not a parent directory */
    struct hp_workflow *wf = load_ok("name: e\ntasks:\n  gen:\n    command: [gen]\n"
                                     "    outputs: [a..b, ..c/d.., ./x]\n");
    hp_workflow_free(wf);
    /* schema errors keep their position */
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    resources: {gpu: 1}\n",
               5, 17, "/tasks/gen/resources/gpu", "unknown key 'gpu' (did you mean 'gpus'?)");
    expect_err("name: e\ntasks:\n  gen:\n    command: [gen]\n    retries: -1\n",
               5, 14, "/tasks/gen/retries", ">= 0");
    expect_err("name: e\ntasks:\n  gen:\n    shell: x\n    command: [x]\n",
               4, 5, "/tasks/gen/shell", "task 'gen' has both 'command' and 'shell'");
    expect_err("name: e\ntasks:\n  gen:\n    after: []\n",
               3, 3, "/tasks/gen", "task 'gen' needs a 'command' (argv list) or a 'shell'");
}

static void test_limits(void **state)
{
    (void)state;
    static const char y[] = "name: l\ntasks:\n  t:\n    command: [t]\n    matrix:\n"
                            "      a: {from: 1, to: 10}\n      b: {from: 1, to: 10}\n";
    struct hp_err err;
    hp_err_init(&err);
    struct hp_doc *doc = hp_doc_load_mem("t.yaml", y, strlen(y), NULL, &err);
    struct hp_workflow *wf = hp_workflow_from_doc(doc, &err);
    assert_non_null(wf);
    assert_int_equal(hp_workflow_expand(wf, NULL, 50, &err), -1);
    assert_non_null(strstr(err.msg, "more than 50 instances"));
    assert_string_equal(err.pointer, "/tasks/t/matrix");
    hp_workflow_free(wf);

    expect_err("name: l\ntasks:\n  t:\n    command: [t]\n    matrix:\n"
               "      a: {from: 0, to: 9999999999}\n",
               6, 10, "/tasks/t/matrix/a", "the limit is 1000000");

    /* no common parameter: every instance depends on all, bounded */
    wf = load_ok("name: l\ntasks:\n  a:\n    command: [a]\n    matrix: {x: {from: 1, to: 300}}\n"
                 "  b:\n    command: [b]\n    after: a\n    matrix: {y: {from: 1, to: 300}}\n");
    assert_int_equal(wf->inst[300].ndeps, 300);
    hp_workflow_free(wf);
}

static void test_huge_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-wf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = hp_xasprintf("%s/huge.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("name: huge\ntasks:\n  t:\n    command: [t]\n    matrix:\n      v:\n", f);
    for (size_t written = 0; written <= (16u << 20);)
        written += (size_t)fprintf(f, "        - value-%zu-padding-padding-padding\n", written);
    fclose(f);
    struct hp_err err;
    hp_err_init(&err);
    struct hp_workflow *wf = hp_workflow_load(path, &err);
    assert_null(wf);
    assert_int_equal(err.code, HP_EINPUT);
    assert_string_equal(err.file, path);
    assert_non_null(strstr(err.msg, "over the limit of 16777216 bytes"));
    unlink(path);
    rmdir(dir);
    free(path);
}

/* 100 x 1000 instances, 3 templated arguments, templated outputs, and a
 * downstream task: load + validate + expand. */
static void test_scale(void **state)
{
    (void)state;
    static const char y[] =
        "name: big\ntasks:\n"
        "  sim:\n    command: [sim, '--a={a}', '--b={b}', 'out/{a}/{b}.dat']\n"
        "    matrix:\n      a: {from: 1, to: 100}\n      b: {from: 1, to: 1000}\n"
        "    outputs: ['out/{a}/{b}.dat', 'log/{a}-{b}.txt']\n"
        "    env: {SEED: '{a}{b}'}\n"
        "  reduce:\n    after: sim\n    command: [reduce, '{a}']\n"
        "    matrix:\n      a: {from: 1, to: 100}\n";
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = hp_now();
    struct hp_workflow *wf = load_ok(y);
    double dt = hp_now() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    assert_int_equal(wf->ninst, 100100);
    const struct hp_instance *in = &wf->inst[12345];
    assert_string_equal(in->id, "sim[a=13,b=346]");
    assert_string_equal(in->argv[3], "out/13/346.dat");
    assert_string_equal(in->outputs[1], "log/13-346.txt");
    in = hp_workflow_find(wf, "reduce[a=13]");
    assert_non_null(in);
    assert_int_equal(in->ndeps, 1000);
    assert_string_equal(wf->inst[in->deps[0]].id, "sim[a=13,b=1]");
    /* printed for the record; the bound is loose for sanitizer builds */
    printf("# 100,100 instances in %.3f s, max RSS grew %ld KiB\n", dt,
           ru1.ru_maxrss - ru0.ru_maxrss);
    assert_true(dt < 5.0);
    hp_workflow_free(wf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_product_order),
        cmocka_unit_test(test_zip_crossed),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_range_step),
        cmocka_unit_test(test_value_rendering),
        cmocka_unit_test(test_template_escapes),
        cmocka_unit_test(test_template_everywhere),
        cmocka_unit_test(test_hostile_argv),
        cmocka_unit_test(test_hostile_shell),
        cmocka_unit_test(test_ids_unambiguous),
        cmocka_unit_test(test_deps),
        cmocka_unit_test(test_deps_zip_and_strings),
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_site_overrides),
        cmocka_unit_test(test_resource_syntax),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_huge_file),
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
