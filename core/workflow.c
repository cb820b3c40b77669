/* workflow.c - loading a workflow: schema, then the model and its checks.
 *
 * The schema catches shapes and types; everything that needs more than one
 * node at a time is checked here: dependencies and cycles, the matrix, the
 * templates (against the task's parameters), resource syntax, output paths.
 * Per-site overrides are checked for every site a document names, so an
 * error does not wait for the day the workflow first runs there. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "workflow-int.h"
#include "schema.h"
#include "util.h"
#include "banned.h"

/* ---- paths ---- */

/* Absolute, with "." and empty segments removed (".." kept: no symlink
 * guessing). New heap string. */
static char *abs_path(const char *base, const char *p)
{
    struct hp_buf b = HP_BUF_INIT;
    char *joined;
    if (p[0] == '/') {
        joined = hp_xstrdup(p);
    } else {
        char *cwd = NULL;
        if (!base || base[0] != '/') {
            cwd = getcwd(NULL, 0);
            if (!cwd)
                cwd = hp_xstrdup("/");
        }
        char *b1 = base ? (cwd ? hp_path_join(cwd, base) : hp_xstrdup(base)) : hp_xstrdup(cwd);
        joined = hp_path_join(b1, p);
        free(b1);
        free(cwd);
    }
    for (const char *s = joined; *s;) {
        while (*s == '/')
            s++;
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n && !(n == 1 && s[0] == '.')) {
            hp_buf_addch(&b, '/');
            hp_buf_add(&b, s, n);
        }
        s += n;
    }
    if (!b.len)
        hp_buf_addch(&b, '/');
    free(joined);
    return hp_buf_detach(&b, NULL);
}

/* ---- configuration layers ---- */

struct envsrc {
    const char *key;
    const char *val;
    const char *ptr;
};

struct layer_acc {
    struct envsrc *env;
    size_t nenv, alloc;
    const char *container, *container_ptr;
};

static int int_field(struct hp_workflow *wf, const json_t *v, const char *ptr, const char *what,
                     long long min, int *out, struct hp_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > INT_MAX)
        return hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                          "%s must be an integer from %lld to %d", what, min, INT_MAX);
    *out = (int)json_integer_value(v);
    return 0;
}

static int apply_resources(struct hp_workflow *wf, const json_t *r, const char *rptr,
                           struct hp_resources *res, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const char *key;
    const json_t *v;
    if (!json_is_object(r))
        return hp_doc_err(wf->doc, err, HP_EINPUT, rptr, 0, "resources must be a mapping");
    json_object_foreach((json_t *)r, key, v) {
        const char *ptr = wf_ptr(a, rptr, key);
        if (!strcmp(key, "nodes")) {
            if (int_field(wf, v, ptr, "nodes", 1, &res->nodes, err) < 0)
                return -1;
        } else if (!strcmp(key, "ntasks")) {
            if (int_field(wf, v, ptr, "ntasks", 1, &res->ntasks, err) < 0)
                return -1;
        } else if (!strcmp(key, "cores")) {
            if (int_field(wf, v, ptr, "cores", 1, &res->cores, err) < 0)
                return -1;
        } else if (!strcmp(key, "gpus")) {
            if (int_field(wf, v, ptr, "gpus", 0, &res->gpus, err) < 0)
                return -1;
        } else if (!strcmp(key, "memory")) {
            int64_t mb = -1;
            if (json_is_integer(v) && json_integer_value(v) > 0)
                mb = json_integer_value(v);
            else if (json_is_string(v))
                mb = hp_parse_memory_mb(json_string_value(v));
            if (mb <= 0) {
                char *s = json_is_string(v) ? hp_xstrdup(json_string_value(v))
                                            : json_dumps(v, JSON_ENCODE_ANY);
                hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                           "bad memory '%s': use 512M, 8G, 1.5T or an integer number of MiB",
                           s ? s : "?");
                free(s);
                return -1;
            }
            res->memory_mb = mb;
        } else if (!strcmp(key, "walltime")) {
            int64_t secs = -1;
            if (json_is_integer(v) && json_integer_value(v) > 0)
                secs = json_integer_value(v);
            else if (json_is_string(v))
                secs = hp_parse_duration(json_string_value(v));
            if (secs <= 0) {
                char *s = json_is_string(v) ? hp_xstrdup(json_string_value(v))
                                            : json_dumps(v, JSON_ENCODE_ANY);
                hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                           "bad walltime '%s': use 90m, 1h30m, HH:MM:SS or seconds",
                           s ? s : "?");
                free(s);
                return -1;
            }
            res->walltime = secs;
        } else if (!strcmp(key, "gpu_type") || !strcmp(key, "partition")) {
            if (!json_is_string(v) || !json_string_length(v))
                return hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                                  "%s must be a non-empty string", key);
            if (key[0] == 'g')
                res->gpu_type = (char *)json_string_value(v);
            else
                res->partition = (char *)json_string_value(v);
        } else {
            return hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 1, "unknown resource '%s'", key);
        }
    }
    return 0;
}

/* Apply one layer (defaults, a site override, a task) on top of cfg. */
static int apply_layer(struct hp_workflow *wf, const json_t *L, const char *lptr,
                       struct wf_cfg *cfg, struct layer_acc *acc, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const json_t *v;
    if (!L)
        return 0;
    if (!json_is_object(L))
        return hp_doc_err(wf->doc, err, HP_EINPUT, lptr, 0, "expected a mapping");
    if ((v = json_object_get(L, "resources")) &&
        apply_resources(wf, v, wf_ptr(a, lptr, "resources"), &cfg->res, err) < 0)
        return -1;
    if ((v = json_object_get(L, "retries"))) {
        const char *p = wf_ptr(a, lptr, "retries");
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100)
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                              "retries must be an integer from 0 to 100");
        cfg->retries = (int)json_integer_value(v);
    }
    if ((v = json_object_get(L, "network"))) {
        if (!json_is_boolean(v))
            return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, lptr, "network"), 0,
                              "network must be true or false");
        cfg->network = json_is_true(v);
    }
    if ((v = json_object_get(L, "placement"))) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "auto") && strcmp(s, "direct") && strcmp(s, "pilot")))
            return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, lptr, "placement"), 0,
                              "placement must be auto, direct or pilot");
        cfg->placement = !strcmp(s, "auto") ? HP_PLACE_AUTO
                         : !strcmp(s, "direct") ? HP_PLACE_DIRECT : HP_PLACE_PILOT;
    }
    if ((v = json_object_get(L, "container"))) {
        const char *p = wf_ptr(a, lptr, "container");
        if (json_is_object(v)) {
            v = json_object_get(v, "image");
            p = wf_ptr(a, p, "image");
        }
        if (!json_is_string(v) || !json_string_length(v))
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                              "container must be an image reference or {image: ...}");
        acc->container = json_string_value(v);
        acc->container_ptr = p;
    }
    if ((v = json_object_get(L, "env"))) {
        const char *eptr = wf_ptr(a, lptr, "env"), *key;
        const json_t *x;
        if (!json_is_object(v))
            return hp_doc_err(wf->doc, err, HP_EINPUT, eptr, 0, "env must be a mapping");
        json_object_foreach((json_t *)v, key, x) {
            const char *p = wf_ptr(a, eptr, key);
            if (!json_is_string(x) && !json_is_number(x) && !json_is_boolean(x))
                return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                                  "env values must be strings, numbers or booleans");
            const char *val = json_is_string(x) ? json_string_value(x)
                                                : wf_render_scalar(a, x);
            size_t i;
            for (i = 0; i < acc->nenv; i++)
                if (!strcmp(acc->env[i].key, key))
                    break;
            if (i == acc->nenv) {
                HP_ALLOC_GROW(acc->env, acc->nenv + 1, acc->alloc);
                acc->nenv++;
            }
            acc->env[i] = (struct envsrc){ key, val, p };
        }
    }
    return 0;
}

static const json_t *site_layer(const json_t *obj, const char *site)
{
    if (!site || !obj)
        return NULL;
    return json_object_get(json_object_get(obj, "sites"), site);
}

/* Exactly one of command, shell and function. The schema says so too, but
 * its oneOf message cannot name the keys. */
static int command_shell_problem(struct hp_workflow *wf, const char *tname, const char *tptr,
                                 const json_t *def, struct hp_err *err)
{
    int cmd = json_object_get(def, "command") != NULL;
    int sh = json_object_get(def, "shell") != NULL;
    int fn = json_object_get(def, "function") != NULL;
    if (cmd && sh)
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(&wf->priv->arena, tptr, "shell"), 1,
                          "task '%s' has both 'command' and 'shell'; keep one", tname);
    if (fn && (cmd || sh))
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(&wf->priv->arena, tptr, "function"),
                          1, "task '%s' has both 'function' and '%s'; keep one", tname,
                          cmd ? "command" : "shell");
    if (!cmd && !sh && !fn)
        return hp_doc_err(wf->doc, err, HP_EINPUT, tptr, 1,
                          "task '%s' needs a 'command' (argv list) or a 'shell' script (or a "
                          "'function' of an endpoint)", tname);
    if (!fn) {
        const char *keys[] = { "endpoint", "input", "output" };
        for (int k = 0; k < 3; k++)
            if (json_object_get(def, keys[k]))
                return hp_doc_err(wf->doc, err, HP_EINPUT,
                                  wf_ptr(&wf->priv->arena, tptr, keys[k]), 1,
                                  "'%s' goes with 'function' (task '%s' has none)", keys[k],
                                  tname);
    }
    return 0;
}

/* function: NAME, endpoint: {site, name}, input: FILE, output: FILE */
static int function_config(struct hp_workflow *wf, size_t t, const json_t *def,
                           struct wf_cfg *cfg, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const char *tname = wf->tasks[t].name, *tptr = wf->tasks[t].pointer;
    const json_t *ep = json_object_get(def, "endpoint"), *v;
    cfg->function = json_string_value(json_object_get(def, "function"));
    if (!cfg->function || !*cfg->function)
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, tptr, "function"), 0,
                          "function of task '%s' must be a function name", tname);
    cfg->ep_site = json_string_value(json_object_get(ep, "site"));
    cfg->ep_name = json_string_value(json_object_get(ep, "name"));
    if ((v = json_object_get(def, "input"))) {
        cfg->has_fn_in = 1;
        if (wf_tmpl_compile(wf, t, json_string_value(v), wf_ptr(a, tptr, "input"), 0,
                            &cfg->fn_in, err) < 0)
            return -1;
    }
    if ((v = json_object_get(def, "output"))) {
        const char *why;
        cfg->has_fn_out = 1;
        if (wf_tmpl_compile(wf, t, json_string_value(v), wf_ptr(a, tptr, "output"), 0,
                            &cfg->fn_out, err) < 0)
            return -1;
        if (cfg->fn_out.konst && (why = wf_output_problem(cfg->fn_out.konst)))
            return hp_doc_err(wf->doc, err, HP_EINPUT, cfg->fn_out.ptr, 0,
                              "output '%s' of task '%s' %s", cfg->fn_out.konst, tname, why);
    }
    return 0;
}

static int compile_list(struct hp_workflow *wf, size_t t, const json_t *arr, const char *ptr,
                        struct wf_tmpl **out, size_t *n, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    *n = json_array_size(arr);
    *out = wf_alloc(a, (*n ? *n : 1) * sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        const json_t *x = json_array_get(arr, i);
        const char *p = wf_ptr_index(a, ptr, i);
        const char *src;
        if (json_is_string(x))
            src = json_string_value(x);
        else if (json_is_number(x) || json_is_boolean(x))
            src = wf_render_scalar(a, x);   /* `command: [true]` runs true */
        else
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0, "expected a string");
        if (wf_tmpl_compile(wf, t, src, p, 0, &(*out)[i], err) < 0)
            return -1;
    }
    return 0;
}

int wf_task_config(struct hp_workflow *wf, size_t t, const char *site, struct wf_cfg *cfg,
                   struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const char *tname = wf->tasks[t].name, *tptr = wf->tasks[t].pointer;
    const json_t *def = wf->priv->td[t].def;
    const json_t *defaults = json_object_get(wf->doc->root, "defaults");
    struct layer_acc acc = { 0 };
    const json_t *v;
    int ret = -1;

    memset(cfg, 0, sizeof(*cfg));
    cfg->res.nodes = cfg->res.ntasks = cfg->res.cores = 1;
    const char *dsite = site ? wf_ptr(a, wf_ptr(a, "/defaults", "sites"), site) : NULL;
    const char *tsite = site ? wf_ptr(a, wf_ptr(a, tptr, "sites"), site) : NULL;
    if (apply_layer(wf, defaults, "/defaults", cfg, &acc, err) < 0 ||
        apply_layer(wf, site_layer(defaults, site), dsite, cfg, &acc, err) < 0 ||
        apply_layer(wf, def, tptr, cfg, &acc, err) < 0 ||
        apply_layer(wf, site_layer(def, site), tsite, cfg, &acc, err) < 0)
        goto out;

    if (acc.container) {
        cfg->has_container = 1;
        if (wf_tmpl_compile(wf, t, acc.container, acc.container_ptr, 0, &cfg->container,
                            err) < 0)
            goto out;
    }
    cfg->nenv = acc.nenv;
    cfg->env = wf_alloc(a, (acc.nenv ? acc.nenv : 1) * sizeof(*cfg->env));
    for (size_t i = 0; i < acc.nenv; i++) {
        cfg->env[i].key = acc.env[i].key;
        if (wf_tmpl_compile(wf, t, acc.env[i].val, acc.env[i].ptr, 0, &cfg->env[i].t, err) < 0)
            goto out;
    }

    const json_t *cmd = json_object_get(def, "command"), *sh = json_object_get(def, "shell");
    if (command_shell_problem(wf, tname, tptr, def, err) < 0)
        goto out;
    if (json_object_get(def, "function")) {
        if (function_config(wf, t, def, cfg, err) < 0)
            goto out;
    } else if (cmd) {
        const char *cptr = wf_ptr(a, tptr, "command");
        if (!json_is_array(cmd) || !json_array_size(cmd)) {
            hp_doc_err(wf->doc, err, HP_EINPUT, cptr, 0,
                       "command of task '%s' must be a non-empty list (program, arguments...); "
                       "use 'shell' for a script", tname);
            goto out;
        }
        if (compile_list(wf, t, cmd, cptr, &cfg->argv, &cfg->argc, err) < 0)
            goto out;
        if (cfg->argv[0].konst && !cfg->argv[0].konst[0]) {
            hp_doc_err(wf->doc, err, HP_EINPUT, cfg->argv[0].ptr, 0,
                       "command of task '%s' starts with an empty program name", tname);
            goto out;
        }
    } else {
        const char *sptr = wf_ptr(a, tptr, "shell");
        if (!json_is_string(sh) || !json_string_length(sh)) {
            hp_doc_err(wf->doc, err, HP_EINPUT, sptr, 0,
                       "shell of task '%s' must be a non-empty string", tname);
            goto out;
        }
        cfg->has_shell = 1;
        if (wf_tmpl_compile(wf, t, json_string_value(sh), sptr, 1, &cfg->shell, err) < 0)
            goto out;
    }
    if ((v = json_object_get(def, "inputs")) &&
        compile_list(wf, t, v, wf_ptr(a, tptr, "inputs"), &cfg->in, &cfg->nin, err) < 0)
        goto out;
    if ((v = json_object_get(def, "outputs"))) {
        if (compile_list(wf, t, v, wf_ptr(a, tptr, "outputs"), &cfg->out, &cfg->nout, err) < 0)
            goto out;
        for (size_t i = 0; i < cfg->nout; i++) {
            const char *why;
            if (cfg->out[i].konst && (why = wf_output_problem(cfg->out[i].konst))) {
                hp_doc_err(wf->doc, err, HP_EINPUT, cfg->out[i].ptr, 0,
                           "output '%s' of task '%s' %s", cfg->out[i].konst, tname, why);
                goto out;
            }
        }
    }
    ret = 0;
out:
    free(acc.env);
    return ret;
}

/* ---- the task graph ---- */

static int resolve_after(struct hp_workflow *wf, size_t t, struct wf_map *names,
                         const char **allnames, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    struct hp_task *task = &wf->tasks[t];
    const json_t *after = json_object_get(wf->priv->td[t].def, "after");
    const char *aptr = wf_ptr(a, task->pointer, "after");
    size_t n;
    if (!after)
        return 0;
    if (json_is_string(after))
        n = 1;
    else if (json_is_array(after))
        n = json_array_size(after);
    else
        return hp_doc_err(wf->doc, err, HP_EINPUT, aptr, 0,
                          "after must be a task name or a list of task names");
    task->after = wf_alloc(a, (n ? n : 1) * sizeof(*task->after));
    wf->priv->td[t].after_ptr = wf_alloc(a, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_string(after) ? after : json_array_get(after, i);
        const char *p = json_is_string(after) ? aptr : wf_ptr_index(a, aptr, i);
        if (!json_is_string(x))
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0, "expected a task name");
        const char *name = json_string_value(x);
        size_t dep;
        if (!wf_map_get(names, name, strlen(name), &dep)) {
            const char *s = hp_suggest(name, allnames);
            if (s)
                return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                                  "task '%s' comes after unknown task '%s' (did you mean "
                                  "'%s'?)", task->name, name, s);
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                              "task '%s' comes after unknown task '%s'", task->name, name);
        }
        if (dep == t)
            return hp_doc_err(wf->doc, err, HP_EINPUT, p, 0,
                              "task '%s' comes after itself", task->name);
        size_t j;
        for (j = 0; j < task->nafter; j++)
            if (task->after[j] == dep)
                break;
        if (j < task->nafter)
            continue;   /* listed twice: harmless */
        wf->priv->td[t].after_ptr[task->nafter] = p;
        task->after[task->nafter++] = dep;
    }
    return 0;
}

/* Iterative depth-first search; the first back edge found names a cycle. */
static int check_cycles(struct hp_workflow *wf, struct hp_err *err)
{
    size_t n = wf->ntasks;
    unsigned char *color = hp_xcalloc(n, 1);      /* 0 white, 1 on stack, 2 done */
    size_t *stack = hp_xmalloc(n * sizeof(*stack));
    size_t *next = hp_xcalloc(n, sizeof(*next));   /* next after-edge to follow */
    int ret = 0;
    for (size_t root = 0; root < n && !ret; root++) {
        if (color[root])
            continue;
        size_t sp = 0;
        stack[sp++] = root;
        color[root] = 1;
        while (sp && !ret) {
            size_t u = stack[sp - 1];
            if (next[u] == wf->tasks[u].nafter) {
                color[u] = 2;
                sp--;
                continue;
            }
            size_t v = wf->tasks[u].after[next[u]++];
            if (color[v] == 0) {
                color[v] = 1;
                stack[sp++] = v;
                continue;
            }
            if (color[v] == 2)
                continue;
            /* cycle: v ... u -> v; start it at its first task in file order */
            size_t from = sp;
            while (stack[from - 1] != v)
                from--;
            from--;
            size_t len = sp - from, start = from;
            for (size_t i = from; i < sp; i++)
                if (stack[i] < stack[start])
                    start = i;
            struct hp_buf msg = HP_BUF_INIT;
            hp_buf_adds(&msg, "dependency cycle: ");
            for (size_t k = 0; k <= len; k++) {
                size_t idx = from + (start - from + k) % len;
                hp_buf_addf(&msg, "%s%s", k ? " -> " : "", wf->tasks[stack[idx]].name);
            }
            size_t first = stack[start];
            size_t second = stack[from + (start - from + 1) % len];
            const char *p = wf_ptr(&wf->priv->arena, wf->tasks[first].pointer, "after");
            for (size_t j = 0; j < wf->tasks[first].nafter; j++)
                if (wf->tasks[first].after[j] == second)
                    p = wf->priv->td[first].after_ptr[j];
            ret = hp_doc_err(wf->doc, err, HP_EINPUT, p, 0, "%s", msg.buf);
            hp_buf_release(&msg);
        }
    }
    free(color);
    free(stack);
    free(next);
    return ret;
}

/* Every site named in defaults.sites or the task's sites. */
static int check_site_overrides(struct hp_workflow *wf, size_t t, struct hp_err *err)
{
    const json_t *lists[2] = {
        json_object_get(json_object_get(wf->doc->root, "defaults"), "sites"),
        json_object_get(wf->priv->td[t].def, "sites"),
    };
    for (int l = 0; l < 2; l++) {
        const char *site;
        const json_t *v;
        if (!json_is_object(lists[l]))
            continue;
        json_object_foreach((json_t *)lists[l], site, v) {
            if (l == 1 && json_object_get(lists[0], site))
                continue;   /* checked already */
            struct wf_cfg cfg;
            if (wf_task_config(wf, t, site, &cfg, err) < 0)
                return -1;
        }
    }
    return 0;
}

static int build(struct hp_workflow *wf, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const json_t *root = wf->doc->root, *v, *tasks;
    const char *key;

    if (!json_is_object(root))
        return hp_doc_err(wf->doc, err, HP_EINPUT, "", 0,
                          "a workflow must be a mapping with 'name' and 'tasks'");
    v = json_object_get(root, "name");
    if (!json_is_string(v))
        return hp_doc_err(wf->doc, err, HP_EINPUT, "", 0, "the workflow needs a 'name'");
    wf->name = wf_strdup(a, json_string_value(v));
    if ((v = json_object_get(root, "description")) && json_is_string(v))
        wf->description = wf_strdup(a, json_string_value(v));

    char *dir = hp_dirname(wf->doc->file);
    char *absdir = abs_path(NULL, dir);
    wf->dir = wf_strdup(a, absdir);
    free(dir);
    free(absdir);
    v = json_object_get(root, "workdir");
    if (v && (!json_is_string(v) || !json_string_length(v)))
        return hp_doc_err(wf->doc, err, HP_EINPUT, "/workdir", 0,
                          "workdir must be a non-empty path");
    char *wd = abs_path(wf->dir, v ? json_string_value(v) : ".");
    wf->workdir = wf_strdup(a, wd);
    free(wd);

    tasks = json_object_get(root, "tasks");
    if (!json_is_object(tasks) || !json_object_size(tasks))
        return hp_doc_err(wf->doc, err, HP_EINPUT, tasks ? "/tasks" : "", 0,
                          "the workflow needs 'tasks', a mapping of task names to tasks");
    wf->ntasks = json_object_size(tasks);
    wf->tasks = wf_alloc(a, wf->ntasks * sizeof(*wf->tasks));
    wf->priv->td = wf_alloc(a, wf->ntasks * sizeof(*wf->priv->td));
    const char **allnames = hp_xcalloc(wf->ntasks + 1, sizeof(*allnames));
    struct wf_map names;
    wf_map_init(&names, wf->ntasks);
    int ret = -1;
    size_t t = 0;
    json_object_foreach((json_t *)tasks, key, v) {
        wf->tasks[t].name = wf_strdup(a, key);
        wf->tasks[t].pointer = (char *)wf_ptr(a, "/tasks", key);
        wf->priv->td[t].def = v;
        allnames[t] = wf->tasks[t].name;
        wf_map_put(&names, key, strlen(key), t, NULL);
        if (!json_is_object(v)) {
            hp_doc_err(wf->doc, err, HP_EINPUT, wf->tasks[t].pointer, 0,
                       "task '%s' must be a mapping", key);
            goto out;
        }
        t++;
    }
    for (t = 0; t < wf->ntasks; t++) {
        struct hp_task *task = &wf->tasks[t];
        struct wf_matrix *m = &wf->priv->td[t].m;
        if (wf_matrix_parse(wf, t, wf->priv->td[t].def, m, err) < 0)
            goto out;
        task->params = wf_alloc(a, (m->nparams + 1) * sizeof(char *));
        for (size_t k = 0; k < m->nparams; k++)
            task->params[k] = (char *)m->p[k].name;
        if (resolve_after(wf, t, &names, allnames, err) < 0)
            goto out;
        struct wf_cfg cfg;
        if (wf_task_config(wf, t, NULL, &cfg, err) < 0 || check_site_overrides(wf, t, err) < 0)
            goto out;
    }
    if (check_cycles(wf, err) < 0)
        goto out;
    ret = 0;
out:
    free(allnames);
    wf_map_release(&names);
    return ret;
}

/* Validate against the embedded schema; the best error becomes the
 * positioned error. An error exactly at a task can only be its
 * command/shell oneOf: say which keys are wrong instead. */
static int validate(struct hp_workflow *wf, struct hp_err *err)
{
    const struct hp_schema *s = hp_schema_builtin("workflow", err);
    struct hp_verrors ve = { 0 };
    if (!s)
        return -1;
    int r = hp_schema_validate(s, wf->doc->root, &ve);
    if (r == 0) {
        hp_verrors_release(&ve);
        return 0;
    }
    if (r < 0 || !ve.n) {
        hp_doc_err(wf->doc, err, HP_EINPUT, "", 0, "document does not match the workflow schema");
    } else {
        const struct hp_verror *v = &ve.v[0];
        const json_t *tasks = json_object_get(wf->doc->root, "tasks"), *def = NULL;
        const char *name = NULL, *key;
        const json_t *x;
        if (!v->at_key && hp_starts_with(v->pointer, "/tasks/") && json_is_object(tasks)) {
            json_object_foreach((json_t *)tasks, key, x) {
                const char *p = wf_ptr(&wf->priv->arena, "/tasks", key);
                if (!strcmp(p, v->pointer)) {
                    name = key;
                    def = x;
                    break;
                }
            }
        }
        if (!json_is_object(def) ||
            command_shell_problem(wf, name, v->pointer, def, err) == 0)
            hp_doc_err(wf->doc, err, HP_EINPUT, v->pointer, v->at_key, "%s", v->message);
    }
    hp_verrors_release(&ve);
    return -1;
}

struct hp_workflow *hp_workflow_from_doc(struct hp_doc *doc, struct hp_err *err)
{
    struct hp_workflow *wf = hp_xcalloc(1, sizeof(*wf));
    wf->doc = doc;
    wf->priv = hp_xcalloc(1, sizeof(*wf->priv));
    if (validate(wf, err) < 0 || build(wf, err) < 0) {
        hp_workflow_free(wf);
        return NULL;
    }
    return wf;
}

struct hp_workflow *hp_workflow_load(const char *path, struct hp_err *err)
{
    struct hp_doc *doc = hp_doc_load_file(path, NULL, err);
    if (!doc)
        return NULL;
    return hp_workflow_from_doc(doc, err);
}

long hp_workflow_task_index(const struct hp_workflow *wf, const char *name)
{
    for (size_t t = 0; t < wf->ntasks; t++)
        if (!strcmp(wf->tasks[t].name, name))
            return (long)t;
    return -1;
}

struct hp_instance *hp_workflow_find(const struct hp_workflow *wf, const char *id)
{
    const char *br = strchr(id, '[');
    size_t n = br ? (size_t)(br - id) : strlen(id);
    for (size_t t = 0; t < wf->ntasks; t++) {
        const struct hp_task *task = &wf->tasks[t];
        if (strlen(task->name) != n || memcmp(task->name, id, n))
            continue;
        for (size_t i = task->first; i < task->first + task->count; i++)
            if (!strcmp(wf->inst[i].id, id))
                return &wf->inst[i];
        return NULL;
    }
    return NULL;
}

void hp_workflow_free(struct hp_workflow *wf)
{
    if (!wf)
        return;
    if (wf->priv) {
        for (size_t t = 0; wf->priv->td && t < wf->ntasks; t++)
            wf_matrix_release(&wf->priv->td[t].m);
        wf_arena_release(&wf->priv->arena);
        free(wf->priv);
    }
    free(wf->inst);
    hp_doc_free(wf->doc);
    free(wf);
}
