/* plan.c - instances + resolved site -> job specs, scripts and lints.
 *
 * Everything here is pure computation; the campaign engine and `hpcport
 * plan` share it so what plan prints is what run submits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

char *hp_safe_id(const char *id)
{
    struct hp_buf b = HP_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
            hp_buf_addch(&b, *p);
        else
            hp_buf_addf(&b, "%%%02X", *p);
    }
    if (!strcmp(b.buf, ".") || !strcmp(b.buf, "..")) {   /* never a special dir */
        hp_buf_reset(&b);
        hp_buf_adds(&b, *id == '.' && !id[1] ? "%2E" : "%2E%2E");
    }
    /* File names are limited to 255 bytes and log files add a suffix: keep a
     * long id's readable start and make it unique with a hash of the whole. */
    if (b.len > HP_SAFE_ID_MAX) {
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = (const unsigned char *)id; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        size_t keep = HP_SAFE_ID_MAX - 17;
        while (keep && b.buf[keep - 1] == '%')    /* do not cut an escape in two */
            keep--;
        if (keep >= 2 && b.buf[keep - 2] == '%')
            keep -= 2;
        hp_buf_setlen(&b, keep);
        hp_buf_addf(&b, "~%016llx", (unsigned long long)h);
    }
    return hp_buf_detach(&b, NULL);
}

char *hp_campaign_dir(const char *state_dir, const char *campaign)
{
    char *sd = state_dir ? hp_xstrdup(state_dir) : hp_state_dir();
    char *safe = hp_safe_id(campaign);
    char *d = hp_xasprintf("%s/campaigns/%s", sd, safe);
    free(sd);
    free(safe);
    return d;
}

static int is_local(const struct hp_plan *p)
{
    return !strcmp(p->site->scheduler, "local");
}

char *hp_plan_logdir(const char *campaign_dir)
{
    return hp_path_join(campaign_dir, "logs");
}

char *hp_plan_logfile(const char *campaign_dir, const char *id, int attempt, const char *ext)
{
    char *safe = hp_safe_id(id);
    char *f = hp_xasprintf("%s/logs/%s.%d.%s", campaign_dir, safe, attempt, ext);
    free(safe);
    return f;
}

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = a; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *s = b; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void add_kv(struct hp_spec_store *st, size_t *alloc, const char *k, const char *v)
{
    for (size_t i = 0; i < st->nenv; i++) {
        if (!strcmp(st->env[i].key, k)) {   /* later layers win */
            free(st->env[i].value);
            st->env[i].value = hp_xstrdup(v);
            return;
        }
    }
    HP_ALLOC_GROW(st->env, st->nenv + 1, *alloc);
    st->env[st->nenv].key = hp_xstrdup(k);
    st->env[st->nenv].value = hp_xstrdup(v);
    st->nenv++;
}

void hp_plan_spec(const struct hp_plan *p, size_t i, int attempt, struct hp_jobspec *spec,
                  struct hp_spec_store *st)
{
    const struct hp_instance *in = &p->wf->inst[i];
    const struct hp_task *t = &p->wf->tasks[in->task];
    size_t alloc = 0;

    memset(spec, 0, sizeof(*spec));
    memset(st, 0, sizeof(*st));

    /* job names reach scheduler directives: keep them to a safe alphabet */
    struct hp_buf name = HP_BUF_INIT;
    hp_buf_addf(&name, "%s.%s", p->campaign, t->name);
    for (size_t k = 0; k < name.len; k++) {
        char c = name.buf[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            name.buf[k] = '_';
    }
    if (name.len > 64)
        hp_buf_setlen(&name, 64);
    st->job_name = hp_buf_detach(&name, NULL);
    st->token = hp_xasprintf("hp%016llx.%d",
                             (unsigned long long)fnv1a(p->campaign, in->id), attempt);
    /* logs/<safe-id>.<attempt>.out, .err, .rc (plan.h) */
    char *safe = hp_safe_id(in->id);
    struct hp_buf path = HP_BUF_INIT;
    hp_buf_addf(&path, "%s/logs/%s.%d.", p->dir, safe, attempt);
    free(safe);
    size_t base = path.len;
    hp_buf_adds(&path, "out");
    st->stdout_path = hp_xstrdup(path.buf);
    hp_buf_setlen(&path, base);
    hp_buf_adds(&path, "err");
    st->stderr_path = hp_xstrdup(path.buf);
    hp_buf_setlen(&path, base);
    hp_buf_adds(&path, "rc");
    st->result_path = hp_buf_detach(&path, NULL);

    for (size_t k = 0; k < p->site->nenv; k++)
        add_kv(st, &alloc, p->site->env[k].key, p->site->env[k].value);
    for (size_t k = 0; k < in->nenv; k++)
        add_kv(st, &alloc, in->env[k].key, in->env[k].value);
    if (in->network && p->site->net_compute == HP_NET_PROXY && p->site->proxy) {
        static const char *const pv[] = { "http_proxy", "https_proxy", "HTTP_PROXY",
                                          "HTTPS_PROXY", NULL };
        for (size_t k = 0; pv[k]; k++)
            add_kv(st, &alloc, pv[k], p->site->proxy);
        if (p->site->no_proxy && p->site->no_proxy[0]) {
            struct hp_buf np = HP_BUF_INIT;
            for (size_t k = 0; p->site->no_proxy[k]; k++) {
                if (k)
                    hp_buf_addch(&np, ',');
                hp_buf_adds(&np, p->site->no_proxy[k]);
            }
            add_kv(st, &alloc, "no_proxy", np.buf);
            add_kv(st, &alloc, "NO_PROXY", np.buf);
            hp_buf_release(&np);
        }
    }

    spec->campaign = p->campaign;
    spec->instance = in->id;
    spec->job_name = st->job_name;
    spec->token = st->token;
    spec->attempt = attempt;
    spec->argv = (const char *const *)in->argv;
    spec->shell = in->shell;
    spec->env = st->env;
    spec->nenv = st->nenv;
    spec->res = in->res;
    spec->res.walltime = p->walltime[i];
    spec->partition = p->partition[i];
    spec->container = in->container;
    spec->workdir = is_local(p) ? p->wf->workdir : p->remote_workdir;
    spec->stdout_path = st->stdout_path;
    spec->stderr_path = st->stderr_path;
    spec->result_path = st->result_path;
    spec->network = in->network;
    spec->pilot = p->pilot && p->pilot[i];
    if (in->function) {
        /* the call runs from this machine: its files are the workflow's */
        const char *wd = p->wf->workdir;
        spec->function = in->function;
        spec->endpoint_site = in->endpoint_site;
        spec->endpoint_name = in->endpoint_name;
        if (in->fn_input)
            spec->fn_input = st->fn_input = in->fn_input[0] == '/'
                                                ? hp_xstrdup(in->fn_input)
                                                : hp_path_join(wd, in->fn_input);
        if (in->fn_output)
            spec->fn_output = st->fn_output = hp_path_join(wd, in->fn_output);
    }
}

void hp_spec_store_release(struct hp_spec_store *st)
{
    if (!st)
        return;
    free(st->job_name);
    free(st->token);
    free(st->stdout_path);
    free(st->stderr_path);
    free(st->result_path);
    free(st->fn_input);
    free(st->fn_output);
    for (size_t i = 0; i < st->nenv; i++) {
        free(st->env[i].key);
        free(st->env[i].value);
    }
    free(st->env);
    memset(st, 0, sizeof(*st));
}

/* ---- lint ---- */

void hp_plan_lint(struct hp_plan *p, enum hp_lint_level lv, const char *rule,
                  const struct hp_task *t, const char *site_ptr, const char *wf_ptr,
                  const char *fmt, ...)
{
    struct hp_buf msg = HP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    hp_buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    HP_ALLOC_GROW(p->lints, p->nlints + 1, p->lints_alloc);
    struct hp_lint *l = &p->lints[p->nlints++];
    memset(l, 0, sizeof(*l));
    l->level = lv;
    l->rule = hp_xstrdup(rule);
    l->task = t ? hp_xstrdup(t->name) : NULL;
    l->message = hp_buf_detach(&msg, NULL);
    if (site_ptr) {
        const char *o = hp_site_origin(p->site, site_ptr);
        if (o && *o)
            l->site_origin = hp_xstrdup(o);
    }
    l->pointer = wf_ptr ? hp_xstrdup(wf_ptr) : NULL;
    if (lv == HP_LINT_ERROR)
        p->nerrors++;
}

#define lint hp_plan_lint

static long partition_index(const struct hp_site *s, const struct hp_partition *part)
{
    return part ? (long)(part - s->parts) : -1;
}

/* Choose a partition: the one named by the workflow; else the default when
 * it fits (GPUs or not, walltime); else the first that fits; else, for a GPU
 * task, the first partition with GPUs (so the lint talks about that one);
 * else the default. */
static int part_gpus(const struct hp_site *s, const struct hp_partition *c)
{
    return c->gpus_per_node >= 0 ? c->gpus_per_node : s->gpus_per_node;
}

static int inst_nodes(const struct hp_instance *in)
{
    return in->res.nodes > 0 ? in->res.nodes : 1;
}

static int part_fits(const struct hp_site *s, const struct hp_partition *c,
                     const struct hp_instance *in)
{
    long bin;
    int64_t limit = hp_partition_walltime(c, inst_nodes(in), &bin);
    return (part_gpus(s, c) > 0) == (in->res.gpus > 0) &&
           (!c->min_nodes || inst_nodes(in) >= c->min_nodes) &&
           (!limit || !in->res.walltime || in->res.walltime <= limit);
}

static const struct hp_partition *choose_partition(const struct hp_site *s,
                                                   const struct hp_instance *in)
{
    if (in->res.partition)
        return hp_site_partition(s, in->res.partition);
    if (!s->nparts)
        return NULL;
    const struct hp_partition *def = hp_site_partition(s, NULL);
    if (def && part_fits(s, def, in))
        return def;
    for (size_t k = 0; k < s->nparts; k++)
        if (part_fits(s, &s->parts[k], in))
            return &s->parts[k];
    if (in->res.gpus > 0)
        for (size_t k = 0; k < s->nparts; k++)
            if (part_gpus(s, &s->parts[k]) > 0)
                return &s->parts[k];
    return def ? def : &s->parts[0];
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static int path_on_site(const struct hp_site *s, const char *path)
{
    static const char *const system[] = { "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc",
                                          "/opt", "/dev", "/proc", "/sys", "/tmp", NULL };
    for (size_t k = 0; system[k]; k++)
        if (under(path, system[k]))
            return 1;
    if (s->home && s->home[0] == '/' && under(path, s->home))
        return 1;
    if (s->scratch && s->scratch[0] == '/' && under(path, s->scratch))
        return 1;
    for (size_t k = 0; s->shared && s->shared[k]; k++)
        if (under(path, s->shared[k]))
            return 1;
    return 0;
}

static int has_filesystems(const struct hp_site *s)
{
    return (s->home && *s->home) || (s->scratch && *s->scratch) || (s->shared && s->shared[0]);
}

static const char *netname(enum hp_netmode m)
{
    return m == HP_NET_OPEN ? "open" : m == HP_NET_PROXY ? "proxy" : "none";
}

static void lint_task(struct hp_plan *p, const struct hp_task *t, size_t i)
{
    const struct hp_site *s = p->site;
    const struct hp_instance *in = &p->wf->inst[i];
    const struct hp_partition *part = choose_partition(s, in);
    long pi = partition_index(s, part);
    char wptr[600], sptr[128], a[32], b[32];
    int local = !strcmp(s->scheduler, "local");

    /* partition named by the workflow must exist */
    if (in->res.partition && !part) {
        snprintf(wptr, sizeof(wptr), "%s/resources/partition", t->pointer);
        lint(p, HP_LINT_ERROR, "partition", t, "/scheduler/partitions", wptr,
             "task '%s' asks for partition '%s', which site '%s' does not declare",
             t->name, in->res.partition, s->name);
    }
    /* walltime */
    int64_t wt = p->walltime[i];
    int64_t limit = 0;
    const char *limit_ptr = NULL;
    long bin;
    int64_t plimit = hp_partition_walltime(part, inst_nodes(in), &bin);
    if (plimit) {
        limit = plimit;
        if (bin >= 0)
            snprintf(sptr, sizeof(sptr),
                     "/scheduler/partitions/%ld/walltime_by_nodes/%ld/max_walltime", pi, bin);
        else
            snprintf(sptr, sizeof(sptr), "/scheduler/partitions/%ld/max_walltime", pi);
        limit_ptr = sptr;
    } else if (s->max_walltime) {
        limit = s->max_walltime;
        limit_ptr = "/scheduler/max_walltime";
    }
    snprintf(wptr, sizeof(wptr), "%s/resources/walltime", t->pointer);
    if (limit && wt > limit) {
        hp_format_duration(wt, a, sizeof(a));
        hp_format_duration(limit, b, sizeof(b));
        lint(p, HP_LINT_ERROR, "walltime", t, limit_ptr, wptr,
             "task '%s' asks for walltime %s, over the limit of %s on site '%s'%s%s%s",
             t->name, a, b, s->name, part ? " partition " : "", part ? part->name : "",
             bin >= 0 ? " for jobs of its size" : "");
    }
    if (part && part->min_nodes && inst_nodes(in) < part->min_nodes) {
        snprintf(sptr, sizeof(sptr), "/scheduler/partitions/%ld/min_nodes", pi);
        snprintf(wptr, sizeof(wptr), "%s/resources/nodes", t->pointer);
        lint(p, HP_LINT_ERROR, "nodes", t, sptr, wptr,
             "task '%s' asks for %d node%s, but partition %s of site '%s' takes jobs of %d "
             "nodes or more", t->name, inst_nodes(in), inst_nodes(in) == 1 ? "" : "s",
             part->name, s->name, part->min_nodes);
    }
    if (!local && !wt)
        lint(p, HP_LINT_WARNING, "walltime", t, NULL, t->pointer,
             "task '%s' sets no walltime and site '%s' has no default_walltime; "
             "the scheduler's default applies", t->name, s->name);

    /* GPUs */
    int site_gpus = part && part->gpus_per_node >= 0 ? part->gpus_per_node : s->gpus_per_node;
    const char *gtype = part && part->gpu_type ? part->gpu_type : s->gpu_type;
    snprintf(wptr, sizeof(wptr), "%s/resources/gpus", t->pointer);
    if (in->res.gpus > 0 && site_gpus <= 0) {
        lint(p, HP_LINT_ERROR, "gpu", t, "/nodes/gpus", wptr,
             "task '%s' asks for %d GPU%s per node, but site '%s' has no GPUs%s%s",
             t->name, in->res.gpus, in->res.gpus > 1 ? "s" : "", s->name,
             part ? " in partition " : "", part ? part->name : "");
    } else if (in->res.gpus > site_gpus && site_gpus > 0) {
        lint(p, HP_LINT_ERROR, "gpu", t, "/nodes/gpus", wptr,
             "task '%s' asks for %d GPUs per node; nodes of site '%s' have %d",
             t->name, in->res.gpus, s->name, site_gpus);
    }
    if (in->res.gpus > 0 && in->res.gpu_type && gtype && strcasecmp(in->res.gpu_type, gtype)) {
        snprintf(wptr, sizeof(wptr), "%s/resources/gpu_type", t->pointer);
        lint(p, HP_LINT_ERROR, "gpu", t, "/nodes/gpu_type", wptr,
             "task '%s' asks for GPU type '%s'; site '%s' has '%s'",
             t->name, in->res.gpu_type, s->name, gtype);
    }
    /* cores and memory per node */
    int cpn = part && part->cores_per_node ? part->cores_per_node : s->cores_per_node;
    int nodes = in->res.nodes > 0 ? in->res.nodes : 1;
    long per_node = ((long)(in->res.ntasks > 0 ? in->res.ntasks : 1) *
                     (in->res.cores > 0 ? in->res.cores : 1) + nodes - 1) / nodes;
    if (cpn > 0 && per_node > cpn) {
        snprintf(wptr, sizeof(wptr), "%s/resources/cores", t->pointer);
        lint(p, HP_LINT_ERROR, "cores", t, "/nodes/cores", wptr,
             "task '%s' needs %ld cores per node; nodes of site '%s' have %d",
             t->name, per_node, s->name, cpn);
    }
    int64_t mem = part && part->memory_mb ? part->memory_mb : s->memory_mb;
    if (mem > 0 && in->res.memory_mb > mem) {
        snprintf(wptr, sizeof(wptr), "%s/resources/memory", t->pointer);
        lint(p, HP_LINT_ERROR, "memory", t, "/nodes/memory", wptr,
             "task '%s' asks for %lld MiB per node; nodes of site '%s' have %lld MiB",
             t->name, (long long)in->res.memory_mb, s->name, (long long)mem);
    }
    if (part && part->max_nodes > 0 && nodes > part->max_nodes) {
        snprintf(wptr, sizeof(wptr), "%s/resources/nodes", t->pointer);
        snprintf(sptr, sizeof(sptr), "/scheduler/partitions/%ld/max_nodes", pi);
        lint(p, HP_LINT_ERROR, "nodes", t, sptr, wptr,
             "task '%s' asks for %d nodes; partition '%s' of site '%s' allows %d",
             t->name, nodes, part->name, s->name, part->max_nodes);
    }
    if (local && nodes > 1) {
        snprintf(wptr, sizeof(wptr), "%s/resources/nodes", t->pointer);
        lint(p, HP_LINT_ERROR, "nodes", t, "/scheduler/type", wptr,
             "task '%s' asks for %d nodes; the local site has one", t->name, nodes);
    }
    /* network */
    snprintf(wptr, sizeof(wptr), "%s/network", t->pointer);
    if (in->network && s->net_compute == HP_NET_NONE) {
        lint(p, HP_LINT_ERROR, "network", t, "/network/compute", wptr,
             "task '%s' needs outbound network, but compute nodes of site '%s' have none "
             "(network.compute: %s); stage its data in as inputs or run it elsewhere",
             t->name, s->name, netname(s->net_compute));
    } else if (in->network && s->net_compute == HP_NET_PROXY && !s->proxy) {
        lint(p, HP_LINT_ERROR, "network", t, "/network/compute", wptr,
             "task '%s' needs outbound network; site '%s' allows it only through a proxy "
             "but declares no network.proxy", t->name, s->name);
    }
    /* containers */
    if (in->container && (!s->container_runtime || !strcmp(s->container_runtime, "none"))) {
        snprintf(wptr, sizeof(wptr), "%s/container", t->pointer);
        lint(p, HP_LINT_ERROR, "container", t, "/container/runtime", wptr,
             "task '%s' runs in container '%s', but site '%s' declares no container runtime",
             t->name, in->container, s->name);
    }
    /* absolute paths outside the site's filesystems */
    if (!local && has_filesystems(s)) {
        for (size_t k = 0; in->inputs && in->inputs[k]; k++) {
            if (in->inputs[k][0] == '/' && !path_on_site(s, in->inputs[k])) {
                snprintf(wptr, sizeof(wptr), "%s/inputs/%zu", t->pointer, k);
                lint(p, HP_LINT_WARNING, "path", t, "/filesystems", wptr,
                     "task '%s' reads '%s', outside the filesystems of site '%s'",
                     t->name, in->inputs[k], s->name);
            }
        }
        for (size_t k = 0; in->argv && in->argv[k]; k++) {
            if (in->argv[k][0] == '/' && !path_on_site(s, in->argv[k])) {
                snprintf(wptr, sizeof(wptr), "%s/command/%zu", t->pointer, k);
                lint(p, HP_LINT_WARNING, "path", t, "/filesystems", wptr,
                     "task '%s' uses the absolute path '%s', outside the filesystems of "
                     "site '%s'", t->name, in->argv[k], s->name);
            }
        }
    }
}

static void lint_site(struct hp_plan *p)
{
    const struct hp_site *s = p->site;
    if (s->account && hp_site_is_placeholder(s->account))
        lint(p, HP_LINT_ERROR, "account", NULL, "/scheduler/account", NULL,
             "site '%s' needs your account (scheduler.account is '%s'): add "
             "--set scheduler.account=NAME or set it in your profile", s->name, s->account);
    if (s->max_queued_jobs > 0 && p->wf->ninst > (size_t)s->max_queued_jobs)
        lint(p, HP_LINT_WARNING, "queue", NULL, "/scheduler/max_queued_jobs", NULL,
             "the campaign has %zu jobs and site '%s' allows %d queued per user; "
             "hpcport will keep at most that many queued", p->wf->ninst, s->name,
             s->max_queued_jobs);
}

struct hp_plan *hp_plan_new(const struct hp_workflow *wf, const struct hp_site *site,
                            const struct hp_plan_opts *opts, struct hp_err *err)
{
    const struct hp_adapter_ops *ad = hp_adapter_for_site(site, err);   /* or a plugin */
    if (!ad)
        return NULL;
    struct hp_plan *p = hp_xcalloc(1, sizeof(*p));
    p->wf = wf;
    p->site = site;
    p->adapter = ad;
    for (size_t i = 0; i < wf->ninst; i++)
        if (wf->inst[i].function) {
            /* function tasks are calls: the endpoint adapter makes them and
             * hands the other tasks to the site's adapter */
            p->adapter = &hp_adapter_endpoint;
            break;
        }
    p->campaign = hp_xstrdup(opts && opts->campaign ? opts->campaign : wf->name);
    p->dir = hp_plan_site_dir(site, p->campaign, opts ? opts->state_dir : NULL);
    if (strcmp(site->scheduler, "local"))
        p->remote_workdir = hp_xasprintf("%s/work", p->dir);
    p->partition = hp_xcalloc(wf->ninst ? wf->ninst : 1, sizeof(*p->partition));
    p->walltime = hp_xcalloc(wf->ninst ? wf->ninst : 1, sizeof(*p->walltime));
    for (size_t i = 0; i < wf->ninst; i++) {
        const struct hp_instance *in = &wf->inst[i];
        const struct hp_partition *part = choose_partition(site, in);
        p->partition[i] = part ? part->name : in->res.partition;
        p->walltime[i] = in->res.walltime ? in->res.walltime : site->default_walltime;
    }
    for (size_t t = 0; t < wf->ntasks; t++)
        if (wf->tasks[t].count)
            lint_task(p, &wf->tasks[t], wf->tasks[t].first);
    lint_site(p);
    hp_plan_pilots(p);
    if (p->npilot)
        p->adapter = &hp_adapter_pilot;
    return p;
}

char *hp_plan_site_dir(const struct hp_site *site, const char *campaign, const char *state_dir)
{
    if (!strcmp(site->scheduler, "local"))
        return hp_campaign_dir(state_dir, campaign);
    /* On a remote site, campaign files live under its scratch (or home). */
    const char *base = site->scratch && *site->scratch ? site->scratch
                       : site->home && *site->home ? site->home : "$HOME";
    char *safe = hp_safe_id(campaign);
    char *dir = hp_xasprintf("%s/hpcport/%s", base, safe);
    free(safe);
    return dir;
}

void hp_plan_free(struct hp_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nlints; i++) {
        free(p->lints[i].rule);
        free(p->lints[i].task);
        free(p->lints[i].message);
        free(p->lints[i].site_origin);
        free(p->lints[i].pointer);
    }
    free(p->lints);
    free(p->partition);
    free(p->walltime);
    free(p->pilot);
    free(p->campaign);
    free(p->dir);
    free(p->remote_workdir);
    free(p);
}
