/* plan.h - from (workflow instances, resolved site) to job specs, rendered
 * scripts and a portability lint. Pure: no I/O besides reading nothing.
 *
 * Campaign files live under <campaign dir> (see hp_campaign_dir()):
 *   state.db                    SQLite state (core/state.c)
 *   logs/<safe-id>.<attempt>.out, .err, .rc
 * where <safe-id> is the instance id with every byte outside [A-Za-z0-9._-]
 * written as %XX, so ids with '/', spaces or brackets make one flat name.
 * All attempts of all instances share the one logs/ directory (no directory
 * per instance: creating one per task costs as much as a file). */
#ifndef HP_PLAN_H
#define HP_PLAN_H

#include <stddef.h>
#include "adapter.h"
#include "site.h"
#include "workflow.h"

enum hp_lint_level { HP_LINT_WARNING = 0, HP_LINT_ERROR = 1 };

struct hp_lint {
    enum hp_lint_level level;
    char *rule;        /* short id: "walltime", "gpu", "network", "path", "cores", ... */
    char *task;        /* task name (lints are reported once per task) */
    char *message;     /* what is wrong and what to do */
    char *site_origin; /* origin of the site value that forbids it, or NULL */
    char *pointer;     /* pointer into the workflow document, or NULL */
};

/* How pilot jobs are sized on the plan's site: the site's `pilots` section
 * with the workflow's `pilots` section on top (core/plan-pilots.c). */
struct hp_pilot_cfg {
    int enabled;              /* the site or the workflow has a pilots section */
    int spool;                /* transport spool, else tcp */
    const char *listen;       /* the agent's address on the login node, or NULL */
    const char *spool_dir;    /* NULL: <campaign dir>/agent/spool */
    const char *partition;    /* NULL: the site's default */
    int tasks_per_pilot, nodes, cores, gpus, max_pilots, max_queued, min_tasks;
    int64_t walltime, idle;   /* seconds */
};

struct hp_plan {
    const struct hp_workflow *wf;   /* borrowed */
    const struct hp_site *site;     /* borrowed */
    const struct hp_adapter_ops *adapter;
    char *campaign;                 /* campaign id */
    char *dir;                      /* campaign directory (absolute) */
    char *remote_workdir;           /* remote sites: where tasks run, else NULL */
    const char **partition;         /* per instance: chosen partition (borrowed) or NULL */
    int64_t *walltime;              /* per instance: effective walltime (s), 0 = none */
    struct hp_lint *lints;
    size_t nlints, lints_alloc;
    size_t nerrors;                 /* lints at level error */
    struct hp_pilot_cfg pilots;
    unsigned char *pilot;           /* per instance: 1 runs in pilot jobs */
    size_t npilot;                  /* instances that run in pilot jobs */
};

struct hp_plan_opts {
    const char *campaign;    /* NULL = workflow name */
    const char *state_dir;   /* NULL = hp_state_dir() */
};

/* Build a plan; lints never make this fail (check plan->nerrors). Fails for
 * an unknown adapter or a site that cannot be used at all. */
struct hp_plan *hp_plan_new(const struct hp_workflow *wf, const struct hp_site *site,
                            const struct hp_plan_opts *opts, struct hp_err *err);
void hp_plan_free(struct hp_plan *p);
/* The directory of campaign on site (plan->dir): on the local site
 * hp_campaign_dir(state_dir, campaign), elsewhere
 * <scratch or home>/hpcport/<safe-id> on the site, unexpanded (new string). */
char *hp_plan_site_dir(const struct hp_site *site, const char *campaign, const char *state_dir);

/* Strings a job spec points to; release with hp_spec_store_release(). */
struct hp_spec_store {
    char *job_name, *token, *stdout_path, *stderr_path, *result_path;
    char *fn_input, *fn_output;   /* function tasks: absolute paths here */
    struct hp_kv *env;       /* instance env + site env + proxy vars */
    size_t nenv;
};
/* Resolve p->pilots and p->pilot[] (placement), adding lints; called by
 * hp_plan_new. */
void hp_plan_pilots(struct hp_plan *p);
/* Add a lint (for plan-pilots.c). */
void hp_plan_lint(struct hp_plan *p, enum hp_lint_level lv, const char *rule,
                  const struct hp_task *t, const char *site_ptr, const char *wf_ptr,
                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Fill spec for attempt (1-based) of instance i. */
void hp_plan_spec(const struct hp_plan *p, size_t i, int attempt, struct hp_jobspec *spec,
                  struct hp_spec_store *store);
void hp_spec_store_release(struct hp_spec_store *store);

/* The log directory of a campaign, <dir>/logs (new string). */
char *hp_plan_logdir(const char *campaign_dir);
/* The file of attempt (1-based) of instance id with extension ext ("out",
 * "err", "rc"): <campaign_dir>/logs/<safe-id>.<attempt>.<ext> (new string). */
char *hp_plan_logfile(const char *campaign_dir, const char *id, int attempt, const char *ext);
/* The <safe-id> escaping (new string). */
/* Ids whose escaped form is longer than HP_SAFE_ID_MAX bytes are cut and
 * end in "~" and 16 hex digits of a hash of the whole id. */
#define HP_SAFE_ID_MAX 200
char *hp_safe_id(const char *id);
/* <state dir>/campaigns/<campaign> (new string). */
char *hp_campaign_dir(const char *state_dir, const char *campaign);

#endif
