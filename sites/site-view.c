/* site-view.c - checks that need the whole resolved profile, and the typed
 * view (struct hp_site) that the planner and adapters read.
 *
 * The schema has already checked types and key names; what is left are
 * values with a syntax of their own (durations, memory sizes) and rules that
 * join several keys. Errors point at the file and line that set the value. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "site-int.h"
#include "util.h"
#include "banned.h"

static json_t *at(json_t *root, const char *a, const char *b)
{
    json_t *o = json_object_get(root, a);
    return b ? json_object_get(o, b) : o;
}

/* A string value, NULL when absent or empty. */
static char *opt_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? hp_xstrdup(s) : NULL;
}

static char **str_list(const json_t *arr)
{
    size_t n = json_array_size(arr), k = 0;
    char **v = hp_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s)
            v[k++] = hp_xstrdup(s);
    }
    return v;
}

static int get_int(struct site_ctx *c, const json_t *v, const char *ptr, int dflt, int *out)
{
    *out = dflt;
    if (!json_is_integer(v))
        return 0;
    json_int_t x = json_integer_value(v);
    if (x > INT_MAX || x < INT_MIN)
        return site_err(c, HP_ESITE, ptr, 0, "%lld is too large", (long long)x);
    *out = (int)x;
    return 0;
}

static int get_duration(struct site_ctx *c, const json_t *v, const char *ptr, int64_t *out)
{
    *out = 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return 0;
    int64_t d = hp_parse_duration(json_string_value(v));
    if (d < 0)
        return site_err(c, HP_ESITE, ptr, 0, "bad duration '%s': use e.g. 90s, 30m, 1h30m, "
                        "2d, HH:MM:SS or D-HH:MM:SS", json_string_value(v));
    *out = d;
    return 0;
}

static int get_memory(struct site_ctx *c, const json_t *v, const char *ptr, int64_t *out)
{
    *out = 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return 0;
    int64_t m = hp_parse_memory_mb(json_string_value(v));
    if (m < 0)
        return site_err(c, HP_ESITE, ptr, 0, "bad memory size '%s': use e.g. 512M, 64G or "
                        "1.5T (binary units), or a number of MiB", json_string_value(v));
    *out = m;
    return 0;
}

/* Write a detected value into root at /nodes/KEY with the origin <detected>. */
static void detected(struct site_ctx *c, json_t *root, const char *key, json_int_t value)
{
    json_t *nodes = json_object_get(root, "nodes");
    size_t layer = site_add_layer(c, LAYER_DETECTED, NULL, NULL);
    if (!nodes) {
        nodes = json_object();
        json_object_set_new(root, "nodes", nodes);
        json_object_set_new(c->src, "/nodes", json_integer((json_int_t)layer));
    }
    json_object_set_new(nodes, key, json_integer(value));
    char *ptr = hp_xasprintf("/nodes/%s", key);
    json_object_set_new(c->src, ptr, json_integer((json_int_t)layer));
    free(ptr);
}

static int fill_partitions(struct site_ctx *c, struct hp_site *s, json_t *sched)
{
    json_t *parts = json_object_get(sched, "partitions");
    size_t n = json_array_size(parts);
    char ptr[128];

    s->parts = hp_xcalloc(n ? n : 1, sizeof(*s->parts));
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(parts, i);
        struct hp_partition *hp = &s->parts[i];
        s->nparts = i + 1;
        const char *name = json_string_value(json_object_get(p, "name"));
        hp->name = hp_xstrdup(name ? name : "");
        hp->gpus_per_node = -1;
        for (size_t k = 0; k < i; k++) {
            if (!strcmp(s->parts[k].name, hp->name)) {
                snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/name", i);
                return site_err(c, HP_ESITE, ptr, 0, "duplicate partition '%s' (also "
                                "scheduler.partitions.%zu)", hp->name, k);
            }
        }
#define PP(key) (snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/%s", i, key), ptr)
        if (get_duration(c, json_object_get(p, "max_walltime"), PP("max_walltime"),
                         &hp->max_walltime) < 0 ||
            get_int(c, json_object_get(p, "max_nodes"), PP("max_nodes"), 0,
                    &hp->max_nodes) < 0 ||
            get_int(c, json_object_get(p, "min_nodes"), PP("min_nodes"), 0,
                    &hp->min_nodes) < 0 ||
            get_int(c, json_object_get(p, "cores_per_node"), PP("cores_per_node"), 0,
                    &hp->cores_per_node) < 0 ||
            get_memory(c, json_object_get(p, "memory"), PP("memory"), &hp->memory_mb) < 0 ||
            get_int(c, json_object_get(p, "gpus_per_node"), PP("gpus_per_node"), -1,
                    &hp->gpus_per_node) < 0)
            return -1;
#undef PP
        hp->gpu_type = opt_str(json_object_get(p, "gpu_type"));
        hp->qos = opt_str(json_object_get(p, "qos"));
        hp->pass_name = !json_is_false(json_object_get(p, "pass_name"));
        json_t *bins = json_object_get(p, "walltime_by_nodes");
        size_t nb = json_array_size(bins);
        hp->bins = nb ? hp_xcalloc(nb, sizeof(*hp->bins)) : NULL;
        for (size_t b = 0; b < nb; b++) {
            json_t *e = json_array_get(bins, b);
#define BP(key) \
    (snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/walltime_by_nodes/%zu/%s", i, b, \
              key), ptr)
            hp->nbins = b + 1;
            if (get_int(c, json_object_get(e, "max_nodes"), BP("max_nodes"), 0,
                        &hp->bins[b].max_nodes) < 0)
                return -1;
            if (get_duration(c, json_object_get(e, "max_walltime"), BP("max_walltime"),
                             &hp->bins[b].max_walltime) < 0)
                return -1;
            if (b && hp->bins[b].max_nodes <= hp->bins[b - 1].max_nodes)
                return site_err(c, HP_ESITE, BP("max_nodes"), 0, "walltime_by_nodes must list "
                                "job sizes from small to large: %d nodes after %d",
                                hp->bins[b].max_nodes, hp->bins[b - 1].max_nodes);
#undef BP
        }
    }

    s->default_partition = opt_str(json_object_get(sched, "default_partition"));
    if (s->default_partition && s->nparts && !hp_site_partition(s, s->default_partition)) {
        const char **names = hp_xcalloc(s->nparts + 1, sizeof(*names));
        for (size_t i = 0; i < s->nparts; i++)
            names[i] = s->parts[i].name;
        const char *sug = hp_suggest(s->default_partition, names);
        char hint[160] = "";
        if (sug)
            snprintf(hint, sizeof(hint), " (did you mean '%s'?)", sug);
        free(names);
        return site_err(c, HP_ESITE, "/scheduler/default_partition", 0,
                        "default partition '%s' is not one of scheduler.partitions%s",
                        s->default_partition, hint);
    }
    return 0;
}

/* scheduler.rest: required for (and only for) type slurmrest */
static int fill_rest(struct site_ctx *c, struct hp_site *s, json_t *sched)
{
    json_t *rest = json_object_get(sched, "rest"), *tok = json_object_get(rest, "token");
    struct hp_site_rest *r = &s->rest;
    int is_rest = !strcmp(s->scheduler, "slurmrest");
    if (!rest && !is_rest)
        return 0;
    if (!is_rest)
        return site_err(c, HP_ESITE, "/scheduler/rest", 0, "scheduler.rest is only for scheduler "
                        "type slurmrest, and this site's type is '%s'", s->scheduler);
    if (!rest)
        return site_err(c, HP_ESITE, "/scheduler/type", 0, "scheduler type slurmrest needs "
                        "scheduler.rest.url (where slurmrestd listens)");
    r->url = opt_str(json_object_get(rest, "url"));
    size_t l = r->url ? strlen(r->url) : 0;
    if (l && r->url[l - 1] == '/')
        r->url[l - 1] = '\0';
    const char *v = json_string_value(json_object_get(rest, "via"));
    r->via = hp_xstrdup(v ? v : "direct");
    r->proxy = opt_str(json_object_get(rest, "proxy"));
    v = json_string_value(json_object_get(rest, "api"));
    r->api = hp_xstrdup(v ? v : "v0.0.38");
    r->user = opt_str(json_object_get(rest, "user"));
    v = json_string_value(json_object_get(tok, "source"));
    r->token_source = hp_xstrdup(v ? v : "scontrol");
    char *kf = opt_str(json_object_get(tok, "key_file"));
    if (kf && !strncmp(kf, "~/", 2) && getenv("HOME")) {
        r->key_file = hp_xasprintf("%s/%s", getenv("HOME"), kf + 2);
        free(kf);
    } else {
        r->key_file = kf;
    }
    if (get_duration(c, json_object_get(tok, "lifetime"), "/scheduler/rest/token/lifetime",
                     &r->token_lifetime) < 0)
        return -1;
    if (!r->token_lifetime)
        r->token_lifetime = 1800;
    if (!strcmp(r->via, "proxy") && !r->proxy)
        return site_err(c, HP_ESITE, "/scheduler/rest/via", 0, "scheduler.rest.via is proxy "
                        "but scheduler.rest.proxy names no proxy: set it (http://HOST:PORT)");
    if (!strcmp(r->token_source, "key") && !r->key_file)
        return site_err(c, HP_ESITE, "/scheduler/rest/token/source", 0, "token source key "
                        "needs scheduler.rest.token.key_file (the HS256 key, mode 0600)");
    return 0;
}

static int fill_scheduler(struct site_ctx *c, struct hp_site *s)
{
    json_t *sched = json_object_get(s->root, "scheduler");
    const char *type = json_string_value(json_object_get(sched, "type"));
    if (!type)
        return site_err(c, HP_ESITE, "/scheduler/type", 0,
                        "site '%s' has no scheduler type: set scheduler.type (slurm, pbs or "
                        "local), or extend a profile that does", s->name);
    s->scheduler = hp_xstrdup(type);
    s->dialect = opt_str(json_object_get(sched, "dialect"));
    if (s->dialect && strcmp(type, "pbs") != 0) {
        char where[600];
        site_where(c, "/scheduler/type", where, sizeof(where));
        return site_err(c, HP_ESITE, "/scheduler/dialect", 1,
                        "scheduler.dialect is only for scheduler type pbs, and this site's "
                        "type is '%s' (set at %s)", type, where);
    }
    if (fill_partitions(c, s, sched) < 0)
        return -1;
    s->account = opt_str(json_object_get(sched, "account"));
    s->qos = opt_str(json_object_get(sched, "qos"));
    s->constraint = opt_str(json_object_get(sched, "constraint"));
    s->directives = str_list(json_object_get(sched, "directives"));
    if (get_int(c, json_object_get(sched, "max_queued_jobs"), "/scheduler/max_queued_jobs", 0,
                &s->max_queued_jobs) < 0 ||
        get_duration(c, json_object_get(sched, "max_walltime"), "/scheduler/max_walltime",
                     &s->max_walltime) < 0 ||
        get_duration(c, json_object_get(sched, "default_walltime"),
                     "/scheduler/default_walltime", &s->default_walltime) < 0 ||
        get_duration(c, json_object_get(sched, "query_timeout"), "/scheduler/query_timeout",
                     &s->query_timeout) < 0)
        return -1;
    const char *gr = json_string_value(json_object_get(sched, "gpu_request"));
    s->gpu_request = hp_xstrdup(gr ? gr : "gpus-per-node");
    const char *mr = json_string_value(json_object_get(sched, "memory_request"));
    s->no_memory_request = mr && !strcmp(mr, "none");
    if (fill_rest(c, s, sched) < 0)
        return -1;
    if (s->max_walltime && s->default_walltime > s->max_walltime) {
        char d[32], m[32];
        hp_format_duration(s->default_walltime, d, sizeof(d));
        hp_format_duration(s->max_walltime, m, sizeof(m));
        return site_err(c, HP_ESITE, "/scheduler/default_walltime", 0,
                        "default walltime %s is longer than scheduler.max_walltime %s", d, m);
    }
    return 0;
}

static enum hp_netmode netmode(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "proxy"))
        return HP_NET_PROXY;
    if (s && !strcmp(s, "none"))
        return HP_NET_NONE;
    return HP_NET_OPEN;
}

static int fill_network(struct site_ctx *c, struct hp_site *s)
{
    json_t *net = json_object_get(s->root, "network");
    s->net_login = netmode(json_object_get(net, "login"));
    s->net_compute = netmode(json_object_get(net, "compute"));
    s->proxy = opt_str(json_object_get(net, "proxy"));
    s->no_proxy = str_list(json_object_get(net, "no_proxy"));
    if (!s->proxy && (s->net_login == HP_NET_PROXY || s->net_compute == HP_NET_PROXY)) {
        const char *which = s->net_login == HP_NET_PROXY ? "login" : "compute";
        char ptr[32];
        snprintf(ptr, sizeof(ptr), "/network/%s", which);
        return site_err(c, HP_ESITE, ptr, 0, "network.%s is 'proxy' but network.proxy is "
                        "not set; add network.proxy: http://HOST:PORT", which);
    }
    return 0;
}

static int fill_nodes(struct site_ctx *c, struct hp_site *s)
{
    json_t *nodes = json_object_get(s->root, "nodes");
    json_t *cores = json_object_get(nodes, "cores");
    json_t *mem = json_object_get(nodes, "memory");
    int local = !strcmp(s->scheduler, "local");

    if (json_is_string(cores) || (!cores && local)) {
        /* "auto" (the schema allows no other string) */
        if (local) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            s->cores_per_node = n > 0 && n < INT_MAX ? (int)n : 1;
            detected(c, s->root, "cores", s->cores_per_node);
        }
    } else if (get_int(c, cores, "/nodes/cores", 0, &s->cores_per_node) < 0) {
        return -1;
    }
    if (json_is_string(mem) && !strcmp(json_string_value(mem), "auto")) {
        if (local) {
            long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
            if (pages > 0 && psize > 0) {
                s->memory_mb = (int64_t)pages * psize / (1024 * 1024);
                detected(c, s->root, "memory", s->memory_mb);
            }
        }
    } else if (get_memory(c, mem, "/nodes/memory", &s->memory_mb) < 0) {
        return -1;
    }
    if (get_int(c, json_object_get(nodes, "gpus"), "/nodes/gpus", 0, &s->gpus_per_node) < 0)
        return -1;
    s->gpu_type = opt_str(json_object_get(nodes, "gpu_type"));
    return 0;
}

static char *scalar_text(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return hp_xstrdup(json_string_value(v));
    case JSON_INTEGER: return hp_xasprintf("%lld", (long long)json_integer_value(v));
    case JSON_REAL: return hp_xasprintf("%.15g", json_real_value(v));
    case JSON_TRUE: return hp_xstrdup("true");
    case JSON_FALSE: return hp_xstrdup("false");
    default: return hp_xstrdup("");
    }
}

static void fill_oauth(struct hp_site *s)
{
    json_t *o = json_object_get(s->root, "oauth");
    if (!json_is_object(o))
        return;
    s->oauth = hp_xcalloc(1, sizeof(*s->oauth));
    s->oauth->issuer = opt_str(json_object_get(o, "issuer"));
    s->oauth->client_id = opt_str(json_object_get(o, "client_id"));
    json_t *scopes = json_object_get(o, "scopes");
    if (json_is_array(scopes)) {
        s->oauth->scopes = str_list(scopes);
    } else {
        s->oauth->scopes = hp_xcalloc(3, sizeof(char *));
        s->oauth->scopes[0] = hp_xstrdup("openid");
        s->oauth->scopes[1] = hp_xstrdup("offline_access");
    }
    s->oauth->audience = opt_str(json_object_get(o, "audience"));
    s->oauth->ca_file = opt_str(json_object_get(o, "ca_file"));
}

int site_fill_view(struct site_ctx *c, struct hp_site *s)
{
    json_t *root = s->root;

    s->description = opt_str(json_object_get(root, "description"));
    if (fill_scheduler(c, s) < 0)
        return -1;

    json_t *login = json_object_get(root, "login");
    s->login_host = opt_str(json_object_get(login, "host"));
    s->login_user = opt_str(json_object_get(login, "user"));
    if (get_int(c, json_object_get(login, "port"), "/login/port", 0, &s->login_port) < 0)
        return -1;
    s->jump = str_list(json_object_get(login, "jump"));
    s->auth = str_list(json_object_get(login, "auth"));
    s->otp_command = opt_str(json_object_get(login, "otp_command"));

    if (fill_network(c, s) < 0)
        return -1;

    s->home = opt_str(at(root, "filesystems", "home"));
    s->scratch = opt_str(at(root, "filesystems", "scratch"));
    s->shared = str_list(at(root, "filesystems", "shared"));

    if (fill_nodes(c, s) < 0)
        return -1;

    const char *rt = json_string_value(at(root, "container", "runtime"));
    s->container_runtime = rt && strcmp(rt, "none") != 0 ? hp_xstrdup(rt) : NULL;
    json_t *gpu_opts = at(root, "container", "gpu_options");
    s->container_gpu_options = str_list(gpu_opts);
    s->container_gpu_options_set = json_is_array(gpu_opts);
    s->container_binds = str_list(at(root, "container", "binds"));
    const char *launcher = json_string_value(json_object_get(root, "launcher"));
    if (!launcher)      /* the scheduler's usual launcher */
        launcher = !strcmp(s->scheduler, "slurm") || !strcmp(s->scheduler, "slurmrest") ? "srun"
                   : !strcmp(s->scheduler, "pbs") ? "mpiexec" : "none";
    s->launcher = hp_xstrdup(launcher);
    s->setup = str_list(json_object_get(root, "setup"));
    fill_oauth(s);
    const char *rh = json_string_value(at(root, "remote", "hpcport"));
    s->remote_hpcport = hp_xstrdup(rh && *rh ? rh : "hpcport");
    s->modules = str_list(json_object_get(root, "modules"));

    json_t *env = json_object_get(root, "env");
    s->env = hp_xcalloc(json_object_size(env) + 1, sizeof(*s->env));
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        s->env[s->nenv].key = hp_xstrdup(k);
        s->env[s->nenv].value = scalar_text(v);
        s->nenv++;
    }
    return 0;
}

const struct hp_partition *hp_site_partition(const struct hp_site *s, const char *name)
{
    if (!s || !s->nparts)
        return NULL;
    if (!name)
        name = s->default_partition;
    if (!name)
        return &s->parts[0];
    for (size_t i = 0; i < s->nparts; i++)
        if (!strcmp(s->parts[i].name, name))
            return &s->parts[i];
    return NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void hp_site_free(struct hp_site *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->description);
    free(s->catalog_url);
    free(s->catalog_commit);
    free(s->scheduler);
    free(s->dialect);
    for (size_t i = 0; i < s->nparts; i++) {
        free(s->parts[i].name);
        free(s->parts[i].gpu_type);
        free(s->parts[i].qos);
        free(s->parts[i].bins);
    }
    free(s->parts);
    free(s->default_partition);
    free(s->account);
    free(s->qos);
    free(s->constraint);
    strv_free(s->directives);
    free(s->gpu_request);
    free(s->rest.url);
    free(s->rest.via);
    free(s->rest.proxy);
    free(s->rest.api);
    free(s->rest.user);
    free(s->rest.token_source);
    free(s->rest.key_file);
    free(s->login_host);
    free(s->login_user);
    strv_free(s->jump);
    strv_free(s->auth);
    free(s->otp_command);
    free(s->proxy);
    strv_free(s->no_proxy);
    free(s->home);
    free(s->scratch);
    strv_free(s->shared);
    free(s->gpu_type);
    free(s->container_runtime);
    free(s->remote_hpcport);
    strv_free(s->container_gpu_options);
    strv_free(s->container_binds);
    free(s->launcher);
    strv_free(s->setup);
    strv_free(s->modules);
    for (size_t i = 0; i < s->nenv; i++) {
        free(s->env[i].key);
        free(s->env[i].value);
    }
    free(s->env);
    if (s->oauth) {
        free(s->oauth->issuer);
        free(s->oauth->client_id);
        strv_free(s->oauth->scopes);
        free(s->oauth->audience);
        free(s->oauth->ca_file);
        free(s->oauth);
    }
    json_decref(s->root);
    json_decref(s->origin);
    free(s);
}

int64_t hp_partition_walltime(const struct hp_partition *part, int nodes, long *bin)
{
    long ignore;
    if (!bin)
        bin = &ignore;
    *bin = -1;
    if (!part)
        return 0;
    for (size_t b = 0; b < part->nbins; b++) {
        if (nodes <= part->bins[b].max_nodes) {
            *bin = (long)b;
            return part->bins[b].max_walltime;
        }
    }
    return part->max_walltime;
}
