/* workflow-expand.c - matrices to instances, instances to a DAG.
 *
 * Order: instances are enumerated like nested loops over the parameters in
 * the order they appear in ids: the first matrix parameter outermost, the
 * last one fastest, the zip group (one loop over its rows) innermost.
 *
 * Costs: templates were parsed at load; here each instance costs one pass
 * over the segments of each template and a few arena allocations. Dependency
 * matching groups the instances of the earlier task by the values of the
 * shared parameters (a hash of value indices), so it is linear in instances
 * plus edges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workflow-int.h"
#include "doc.h"
#include "util.h"
#include "banned.h"

#define DEFAULT_MAX_INSTANCES 10000000u

struct texp {
    uint32_t *vi;       /* value index per instance and parameter */
};

static const char *make_id(struct wf_arena *a, const char *task, const struct wf_matrix *m,
                           const uint32_t *vi)
{
    if (!m->nparams)
        return task;
    size_t tl = strlen(task), n = tl + 2;
    for (size_t k = 0; k < m->nparams; k++)
        n += strlen(m->p[k].name) + 2 + strlen(m->p[k].idv[vi[k]]);
    char *id = wf_alloc_chars(a, n + 1), *q = id;
    memcpy(q, task, tl);
    q += tl;
    *q++ = '[';
    for (size_t k = 0; k < m->nparams; k++) {
        if (k)
            *q++ = ',';
        size_t l = strlen(m->p[k].name);
        memcpy(q, m->p[k].name, l);
        q += l;
        *q++ = '=';
        l = strlen(m->p[k].idv[vi[k]]);
        memcpy(q, m->p[k].idv[vi[k]], l);
        q += l;
    }
    *q++ = ']';
    *q = '\0';
    return id;
}

static int excluded(const struct wf_matrix *m, const uint32_t *vi)
{
    for (size_t e = 0; e < m->nexcl; e++) {
        const struct wf_excl *x = &m->excl[e];
        size_t j;
        for (j = 0; j < x->n; j++)
            if (wf_canon(&m->p[x->param[j]], vi[x->param[j]]) != x->canon[j])
                break;
        if (j == x->n)
            return 1;
    }
    return 0;
}

static char **render_list(struct wf_arena *a, const struct wf_tmpl *t, size_t n,
                          const struct wf_ictx *ic)
{
    char **v = wf_alloc(a, (n + 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (char *)wf_tmpl_render(a, &t[i], ic);
    return v;
}

static int all_konst(const struct wf_tmpl *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!t[i].konst)
            return 0;
    return 1;
}

/* Arrays that do not vary between a task's instances are built once and
 * shared by all of them. */
struct shared {
    char **argv, **in, **out;
    struct hp_kv *env;
};

static struct hp_kv no_env[1];

static void make_shared(struct wf_arena *a, const struct wf_cfg *cfg, struct shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    if (!cfg->has_shell && !cfg->function && all_konst(cfg->argv, cfg->argc))
        sh->argv = render_list(a, cfg->argv, cfg->argc, NULL);
    if (all_konst(cfg->in, cfg->nin))
        sh->in = render_list(a, cfg->in, cfg->nin, NULL);
    if (all_konst(cfg->out, cfg->nout))
        sh->out = render_list(a, cfg->out, cfg->nout, NULL);
    if (!cfg->nenv) {
        sh->env = no_env;
    } else {
        size_t i;
        for (i = 0; i < cfg->nenv && cfg->env[i].t.konst; i++)
            ;
        if (i == cfg->nenv) {
            sh->env = wf_alloc(a, cfg->nenv * sizeof(*sh->env));
            for (i = 0; i < cfg->nenv; i++) {
                sh->env[i].key = (char *)cfg->env[i].key;
                sh->env[i].value = (char *)cfg->env[i].t.konst;
            }
        }
    }
}

static int fill_instance(struct hp_workflow *wf, size_t t, const struct wf_cfg *cfg,
                         const struct shared *sh, const uint32_t *vi, size_t local,
                         struct hp_instance *in, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const struct wf_matrix *m = &wf->priv->td[t].m;
    const char *task = wf->tasks[t].name;
    char idx[32];
    int idxlen = snprintf(idx, sizeof(idx), "%zu", local);
    struct wf_ictx ic = { m, vi, idx, (size_t)idxlen };

    memset(in, 0, sizeof(*in));
    in->task = t;
    in->id = (char *)make_id(a, task, m, vi);
    if (cfg->function) {
        in->function = (char *)cfg->function;
        in->endpoint_site = (char *)cfg->ep_site;
        in->endpoint_name = (char *)cfg->ep_name;
        if (cfg->has_fn_in)
            in->fn_input = (char *)wf_tmpl_render(a, &cfg->fn_in, &ic);
        if (cfg->has_fn_out) {
            const char *why;
            in->fn_output = (char *)wf_tmpl_render(a, &cfg->fn_out, &ic);
            if ((why = wf_output_problem(in->fn_output)))
                return hp_doc_err(wf->doc, err, HP_EINPUT, cfg->fn_out.ptr, 0,
                                  "output '%s' of instance '%s' %s", in->fn_output, in->id, why);
        }
        /* what `hpcport plan` shows: the equivalent command on this machine */
        const char *words[] = { "hpcport", "call", cfg->ep_site ? cfg->ep_site : "SITE",
                                cfg->function, "--input", in->fn_input ? in->fn_input : "/dev/null",
                                "--output", in->fn_output ? in->fn_output : "/dev/null" };
        size_t nw = sizeof(words) / sizeof(words[0]);
        in->argv = wf_alloc(a, (nw + 1) * sizeof(char *));
        for (size_t k = 0; k < nw; k++)
            in->argv[k] = wf_strdup(a, words[k]);
    } else if (cfg->has_shell) {
        in->shell = (char *)wf_tmpl_render(a, &cfg->shell, &ic);
    } else if (sh->argv) {
        in->argv = sh->argv;
    } else {
        in->argv = render_list(a, cfg->argv, cfg->argc, &ic);
        if (!in->argv[0][0])
            return hp_doc_err(wf->doc, err, HP_EINPUT, cfg->argv[0].ptr, 0,
                              "command of instance '%s' starts with an empty program name",
                              in->id);
    }
    in->nenv = cfg->nenv;
    if (sh->env) {
        in->env = sh->env;
    } else {
        in->env = wf_alloc(a, cfg->nenv * sizeof(*in->env));
        for (size_t i = 0; i < cfg->nenv; i++) {
            in->env[i].key = (char *)cfg->env[i].key;
            in->env[i].value = (char *)wf_tmpl_render(a, &cfg->env[i].t, &ic);
        }
    }
    in->nparams = m->nparams;
    in->params = wf_alloc(a, (m->nparams ? m->nparams : 1) * sizeof(*in->params));
    for (size_t k = 0; k < m->nparams; k++) {
        in->params[k].key = (char *)m->p[k].name;
        in->params[k].value = (char *)m->p[k].val[vi[k]];
    }
    in->res = cfg->res;
    if (cfg->has_container)
        in->container = (char *)wf_tmpl_render(a, &cfg->container, &ic);
    in->inputs = sh->in ? sh->in : render_list(a, cfg->in, cfg->nin, &ic);
    if (sh->out) {
        in->outputs = sh->out;
    } else {
        in->outputs = render_list(a, cfg->out, cfg->nout, &ic);
        for (size_t i = 0; i < cfg->nout; i++) {
            const char *why;
            if (!cfg->out[i].konst && (why = wf_output_problem(in->outputs[i])))
                return hp_doc_err(wf->doc, err, HP_EINPUT, cfg->out[i].ptr, 0,
                                  "output '%s' of instance '%s' %s", in->outputs[i], in->id,
                                  why);
        }
    }
    in->retries = cfg->retries;
    in->network = cfg->network;
    in->placement = cfg->placement;
    return 0;
}

static int expand_task(struct hp_workflow *wf, size_t t, const char *site, size_t max,
                       struct texp *te, struct hp_err *err)
{
    const struct wf_matrix *m = &wf->priv->td[t].m;
    const char *task = wf->tasks[t].name;
    struct wf_cfg cfg;
    struct shared sh;
    size_t nf = m->nprod + (m->zrows ? 1 : 0), total = 1;
    size_t *size = hp_xcalloc(nf + 1, sizeof(*size)), *ctr = hp_xcalloc(nf + 1, sizeof(*ctr));
    uint32_t *vi = hp_xcalloc(m->nparams + 1, sizeof(*vi));
    int ret = -1;

    if (wf_task_config(wf, t, site, &cfg, err) < 0)
        goto out;
    make_shared(&wf->priv->arena, &cfg, &sh);
    for (size_t f = 0; f < nf; f++) {
        size[f] = f < m->nprod ? m->p[f].nvals : m->zrows;
        if (total > (max - wf->ninst) / size[f]) {
            hp_doc_err(wf->doc, err, HP_EINPUT, m->ptr, 0,
                       "task '%s' expands to more than %zu instances (the limit for the "
                       "whole workflow is %zu)", task, max - wf->ninst, max);
            goto out;
        }
        total *= size[f];
    }
    if (total > max - wf->ninst) {
        hp_doc_err(wf->doc, err, HP_EINPUT, wf->tasks[t].pointer, 0,
                   "the workflow expands to more than %zu instances", max);
        goto out;
    }
    te->vi = hp_xmalloc((total * m->nparams + 1) * sizeof(*te->vi));
    HP_ALLOC_GROW(wf->inst, wf->ninst + total, wf->priv->inst_alloc);
    wf->tasks[t].first = wf->ninst;
    size_t local = 0;
    for (size_t k = 0; k < total; k++) {
        for (size_t p = 0; p < m->nparams; p++)
            vi[p] = (uint32_t)(p < m->nprod ? ctr[p] : ctr[m->nprod]);
        /* advance the odometer: last factor fastest */
        for (size_t f = nf; f-- > 0;) {
            if (++ctr[f] < size[f])
                break;
            ctr[f] = 0;
        }
        if (m->nexcl && excluded(m, vi))
            continue;
        if (fill_instance(wf, t, &cfg, &sh, vi, local, &wf->inst[wf->ninst], err) < 0)
            goto out;
        memcpy(te->vi + local * m->nparams, vi, m->nparams * sizeof(*vi));
        wf->ninst++;
        local++;
    }
    wf->tasks[t].count = local;
    if (!local) {
        hp_doc_err(wf->doc, err, HP_EINPUT, m->excl_ptr ? m->excl_ptr : m->ptr, 0,
                   "the matrix of task '%s' is empty: every combination is excluded", task);
        goto out;
    }
    ret = 0;
out:
    free(size);
    free(ctr);
    free(vi);
    return ret;
}

/* Dependencies of the instances of task b on those of task a (the j-th
 * entry of b's after list). Appends group ids to gid (one per b instance,
 * stride nafter) and fills the grouping of a's instances. */
struct grouping {
    size_t ngroups;
    size_t *start;      /* ngroups + 1 */
    size_t *member;     /* global instance indices, ascending per group */
};

static int group_deps(struct hp_workflow *wf, size_t b, size_t j, const struct texp *tex,
                      size_t *gid, struct grouping *g, struct hp_err *err)
{
    size_t a = wf->tasks[b].after[j];
    struct wf_matrix *ma = &wf->priv->td[a].m, *mb = &wf->priv->td[b].m;
    const struct hp_task *ta = &wf->tasks[a], *tb = &wf->tasks[b];
    size_t nafter = tb->nafter, nc = 0;
    size_t *ka = hp_xcalloc(mb->nparams + 1, sizeof(*ka));
    size_t *kb = hp_xcalloc(mb->nparams + 1, sizeof(*kb));
    size_t **xlat = hp_xcalloc(mb->nparams + 1, sizeof(*xlat));
    size_t *key = NULL, *gcount = NULL;
    struct wf_map map = { 0 };
    int ret = -1;

    for (size_t q = 0; q < mb->nparams; q++)
        for (size_t p = 0; p < ma->nparams; p++)
            if (!strcmp(mb->p[q].name, ma->p[p].name)) {
                kb[nc] = q;
                ka[nc++] = p;
            }
    memset(g, 0, sizeof(*g));
    if (!nc) {
        g->ngroups = 1;
        g->start = hp_xmalloc(2 * sizeof(*g->start));
        g->member = hp_xmalloc((ta->count + 1) * sizeof(*g->member));
        g->start[0] = 0;
        g->start[1] = ta->count;
        for (size_t i = 0; i < ta->count; i++)
            g->member[i] = ta->first + i;
        for (size_t i = 0; i < tb->count; i++)
            gid[i * nafter + j] = 0;
        ret = 0;
        goto out;
    }
    /* b's value index -> a's canonical value index (or -1) per common parameter */
    for (size_t c = 0; c < nc; c++) {
        struct wf_param *pb = &mb->p[kb[c]];
        xlat[c] = hp_xmalloc((pb->nvals + 1) * sizeof(**xlat));
        for (size_t v = 0; v < pb->nvals; v++)
            xlat[c][v] = wf_param_lookup(&ma->p[ka[c]], pb->val[v], pb->len[v]);
    }
    key = hp_xcalloc(nc + 1, sizeof(*key));
    size_t *agid = hp_xmalloc((ta->count + 1) * sizeof(*agid));
    wf_map_init(&map, ta->count / 2 + 1);
    for (size_t i = 0; i < ta->count; i++) {
        const uint32_t *vi = tex[a].vi + i * ma->nparams;
        for (size_t c = 0; c < nc; c++)
            key[c] = wf_canon(&ma->p[ka[c]], vi[ka[c]]);
        size_t old;
        if (wf_map_put(&map, key, nc * sizeof(*key), map.n, &old))
            agid[i] = map.n - 1;
        else
            agid[i] = old;
    }
    g->ngroups = map.n;
    gcount = hp_xcalloc(g->ngroups + 1, sizeof(*gcount));
    for (size_t i = 0; i < ta->count; i++)
        gcount[agid[i]]++;
    g->start = hp_xmalloc((g->ngroups + 1) * sizeof(*g->start));
    g->start[0] = 0;
    for (size_t k = 0; k < g->ngroups; k++)
        g->start[k + 1] = g->start[k] + gcount[k];
    g->member = hp_xmalloc((ta->count + 1) * sizeof(*g->member));
    memset(gcount, 0, g->ngroups * sizeof(*gcount));
    for (size_t i = 0; i < ta->count; i++)
        g->member[g->start[agid[i]] + gcount[agid[i]]++] = ta->first + i;
    free(agid);

    for (size_t i = 0; i < tb->count; i++) {
        const uint32_t *vi = tex[b].vi + i * mb->nparams;
        size_t found = 1, grp = 0;
        for (size_t c = 0; c < nc && found; c++) {
            key[c] = xlat[c][vi[kb[c]]];
            if (key[c] == (size_t)-1)
                found = 0;
        }
        if (found)
            found = (size_t)wf_map_get(&map, key, nc * sizeof(*key), &grp);
        if (!found) {
            struct hp_buf vals = HP_BUF_INIT;
            for (size_t c = 0; c < nc; c++)
                hp_buf_addf(&vals, "%s%s=%s", c ? ", " : "", mb->p[kb[c]].name,
                            mb->p[kb[c]].val[vi[kb[c]]]);
            hp_doc_err(wf->doc, err, HP_EINPUT, wf->priv->td[b].after_ptr[j], 0,
                       "instance '%s' comes after task '%s', but no instance of '%s' has %s",
                       wf->inst[tb->first + i].id, ta->name, ta->name, vals.buf);
            hp_buf_release(&vals);
            goto out;
        }
        gid[i * nafter + j] = grp;
    }
    ret = 0;
out:
    if (ret < 0) {
        free(g->start);
        free(g->member);
        memset(g, 0, sizeof(*g));
    }
    for (size_t c = 0; c < nc; c++)
        free(xlat[c]);
    free(xlat);
    free(ka);
    free(kb);
    free(key);
    free(gcount);
    if (map.slot)
        wf_map_release(&map);
    return ret;
}

static int link_task(struct hp_workflow *wf, size_t b, const struct texp *tex,
                     size_t *edges, struct hp_err *err)
{
    struct hp_task *tb = &wf->tasks[b];
    size_t nafter = tb->nafter;
    size_t *gid = hp_xmalloc((tb->count * nafter + 1) * sizeof(*gid));
    struct grouping *g = hp_xcalloc(nafter + 1, sizeof(*g));
    int ret = -1;

    for (size_t j = 0; j < nafter; j++)
        if (group_deps(wf, b, j, tex, gid, &g[j], err) < 0)
            goto out;
    size_t total = 0;
    for (size_t i = 0; i < tb->count; i++)
        for (size_t j = 0; j < nafter; j++) {
            size_t k = gid[i * nafter + j];
            total += g[j].start[k + 1] - g[j].start[k];
        }
    if (total > WF_MAX_DEPS - *edges) {
        hp_doc_err(wf->doc, err, HP_EINPUT, wf->priv->td[b].after_ptr[0], 0,
                   "task '%s' makes more than %u dependency edges; share a matrix parameter "
                   "with the tasks it comes after so instances depend on matching instances "
                   "only", tb->name, WF_MAX_DEPS);
        goto out;
    }
    *edges += total;
    size_t *all = wf_alloc(&wf->priv->arena, (total ? total : 1) * sizeof(*all)), off = 0;
    for (size_t i = 0; i < tb->count; i++) {
        struct hp_instance *in = &wf->inst[tb->first + i];
        in->deps = all + off;
        for (size_t j = 0; j < nafter; j++) {
            size_t k = gid[i * nafter + j], n = g[j].start[k + 1] - g[j].start[k];
            memcpy(all + off, g[j].member + g[j].start[k], n * sizeof(*all));
            off += n;
        }
        in->ndeps = (size_t)(all + off - in->deps);
    }
    ret = 0;
out:
    for (size_t j = 0; j < nafter; j++) {
        free(g[j].start);
        free(g[j].member);
    }
    free(g);
    free(gid);
    return ret;
}

int hp_workflow_expand(struct hp_workflow *wf, const char *site, size_t max_instances,
                       struct hp_err *err)
{
    if (wf->priv->expanded)
        return hp_err_set(err, HP_EINTERNAL, "workflow '%s' is expanded already", wf->name);
    wf->priv->expanded = 1;
    if (!max_instances)
        max_instances = DEFAULT_MAX_INSTANCES;
    wf->site = site ? wf_strdup(&wf->priv->arena, site) : NULL;

    struct texp *tex = hp_xcalloc(wf->ntasks + 1, sizeof(*tex));
    size_t edges = 0;
    int ret = -1;
    for (size_t t = 0; t < wf->ntasks; t++)
        if (expand_task(wf, t, site, max_instances, &tex[t], err) < 0)
            goto out;
    for (size_t t = 0; t < wf->ntasks; t++)
        if (wf->tasks[t].nafter && link_task(wf, t, tex, &edges, err) < 0)
            goto out;
    ret = 0;
out:
    for (size_t t = 0; t < wf->ntasks; t++)
        free(tex[t].vi);
    free(tex);
    return ret;
}
