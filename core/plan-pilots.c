/* plan-pilots.c - pilot sizing (the site's and the workflow's `pilots`
 * sections) and the placement of each instance: one batch job of its own,
 * or a task inside pilot jobs (core/plan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan.h"
#include "site.h"
#include "util.h"
#include "banned.h"

static int64_t duration(struct hp_plan *p, const json_t *v, const char *sptr, const char *wptr,
                        const char *key)
{
    int64_t s = -1;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        s = json_integer_value(v);
    else if (json_is_string(v))
        s = hp_parse_duration(json_string_value(v));
    if (s <= 0) {
        hp_plan_lint(p, HP_LINT_ERROR, "pilots", NULL, sptr, wptr,
                     "pilots.%s must be a duration like 30m, 2h or 01:00:00", key);
        return -1;
    }
    return s;
}

/* Apply one pilots section (site: the site's, with its origin; else the
 * workflow's). */
static void apply(struct hp_plan *p, const json_t *sec, int site)
{
    struct hp_pilot_cfg *c = &p->pilots;
    static const struct { const char *key; size_t off; } ints[] = {
        { "tasks_per_pilot", offsetof(struct hp_pilot_cfg, tasks_per_pilot) },
        { "nodes", offsetof(struct hp_pilot_cfg, nodes) },
        { "cores", offsetof(struct hp_pilot_cfg, cores) },
        { "gpus", offsetof(struct hp_pilot_cfg, gpus) },
        { "max_pilots", offsetof(struct hp_pilot_cfg, max_pilots) },
        { "max_queued", offsetof(struct hp_pilot_cfg, max_queued) },
        { "min_tasks", offsetof(struct hp_pilot_cfg, min_tasks) },
    };
    if (!json_is_object(sec))
        return;
    c->enabled = 1;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        const json_t *v = json_object_get(sec, ints[i].key);
        if (json_is_integer(v))
            *(int *)((char *)c + ints[i].off) = (int)json_integer_value(v);
    }
    char sptr[64];
    static const char *const durs[] = { "walltime", "idle" };
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(sec, durs[i]);
        if (!v)
            continue;
        snprintf(sptr, sizeof(sptr), "/pilots/%s", durs[i]);
        int64_t s = duration(p, v, site ? sptr : NULL, site ? NULL : sptr, durs[i]);
        if (s > 0)
            *(i ? &c->idle : &c->walltime) = s;
    }
    const char *part = json_string_value(json_object_get(sec, "partition"));
    if (part)
        c->partition = part;
    if (site) {
        const char *t = json_string_value(json_object_get(sec, "transport"));
        c->spool = t && !strcmp(t, "spool");
        c->listen = json_string_value(json_object_get(sec, "listen"));
        c->spool_dir = json_string_value(json_object_get(sec, "spool"));
    }
}

/* Does instance in fit in one pilot? NULL, or what does not fit. */
static const char *misfit(const struct hp_pilot_cfg *c, const struct hp_instance *in,
                          int64_t walltime)
{
    int cores = (in->res.ntasks > 0 ? in->res.ntasks : 1) * (in->res.cores > 0 ? in->res.cores
                                                                                : 1);
    if (in->res.nodes > c->nodes)
        return "nodes";
    if (cores > c->cores * c->nodes)
        return "cores";
    if (in->res.gpus > c->gpus)
        return "gpus";
    if (walltime > 0 && walltime > c->walltime - 60)
        return "walltime";
    return NULL;
}

void hp_plan_pilots(struct hp_plan *p)
{
    const struct hp_site *s = p->site;
    const struct hp_workflow *wf = p->wf;
    struct hp_pilot_cfg *c = &p->pilots;
    *c = (struct hp_pilot_cfg){
        .tasks_per_pilot = 1000, .nodes = 1, .cores = s->cores_per_node > 0 ? s->cores_per_node
                                                                              : 1,
        .max_pilots = 4, .max_queued = 2, .min_tasks = 16, .walltime = 3600, .idle = 60,
    };
    apply(p, json_object_get(s->root, "pilots"), 1);
    int site_has = c->enabled;
    if (wf->doc)
        apply(p, json_object_get(wf->doc->root, "pilots"), 0);
    /* a pilot lives no longer than its partition allows */
    const struct hp_partition *part = hp_site_partition(s, c->partition);
    if (c->partition && !part && s->nparts) {
        hp_plan_lint(p, HP_LINT_ERROR, "pilots", NULL, site_has ? "/pilots/partition" : NULL,
                     site_has ? NULL : "/pilots/partition",
                     "pilots.partition '%s' is not a partition of site '%s'", c->partition,
                     s->name);
    } else if (part) {
        int64_t max = hp_partition_walltime(part, c->nodes, NULL);
        if (max > 0 && c->walltime > max)
            c->walltime = max;
    }
    if (s->max_walltime > 0 && c->walltime > s->max_walltime)
        c->walltime = s->max_walltime;
    p->pilot = hp_xcalloc(wf->ninst ? wf->ninst : 1, 1);
    for (size_t t = 0; t < wf->ntasks; t++) {
        const struct hp_task *task = &wf->tasks[t];
        if (!task->count)
            continue;
        const struct hp_instance *first = &wf->inst[task->first];
        char wptr[512];
        snprintf(wptr, sizeof(wptr), "%s/placement", task->pointer);
        if (first->function || first->placement == HP_PLACE_DIRECT)
            continue;
        if (first->placement == HP_PLACE_PILOT && !c->enabled) {
            hp_plan_lint(p, HP_LINT_ERROR, "pilots", task, NULL, wptr,
                         "task '%s' runs in pilots, but site '%s' has no pilots section (add "
                         "one to the profile or the workflow, see hpcport-site(5))",
                         task->name, s->name);
            continue;
        }
        if (!c->enabled)
            continue;
        if (first->placement == HP_PLACE_AUTO && task->count < (size_t)c->min_tasks)
            continue;
        for (size_t k = 0; k < task->count; k++) {
            size_t i = task->first + k;
            const char *why = misfit(c, &wf->inst[i], p->walltime[i]);
            if (!why) {
                p->pilot[i] = 1;
                p->npilot++;
            } else if (first->placement == HP_PLACE_PILOT) {
                hp_plan_lint(p, HP_LINT_ERROR, "pilots", task, "/pilots", wptr,
                             "task '%s' runs in pilots, but instance %s does not fit in one "
                             "(its %s exceed%s what a pilot of site '%s' has: %d node(s), "
                             "%d core(s) per node, %d GPU(s), %llds of walltime less a minute)",
                             task->name, wf->inst[i].id, why,
                             !strcmp(why, "nodes") || !strcmp(why, "cores") ||
                             !strcmp(why, "gpus") ? "" : "s", s->name, c->nodes, c->cores,
                             c->gpus, (long long)c->walltime);
                break;
            }
        }
    }
}
