/* adapter.h - execution back ends (local, slurm, pbs, ...) behind one ops struct.
 *
 * The campaign engine talks to adapters only through hp_adapter_*() wrappers,
 * which check optional hooks. An adapter knows a scheduler's dialect; how its
 * commands reach the site (local exec, SSH) is the connection's business.
 *
 * Job states follow one model for every adapter. */
#ifndef HP_ADAPTER_H
#define HP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "err.h"
#include <jansson.h>
#include "workflow.h"

struct hp_site;
struct hp_conn;     /* a transport to the site; NULL for the local adapter */
struct hp_plan;

/* One attempt of one task instance, fully resolved for a site. All strings
 * are borrowed from the plan that built the spec. */
struct hp_jobspec {
    const char *campaign;     /* campaign id */
    const char *instance;     /* instance id */
    const char *job_name;     /* scheduler-safe name */
    const char *token;        /* idempotency token: unique per attempt */
    int attempt;              /* 1-based */
    const char *const *argv;  /* NULL-terminated, or NULL when shell is set */
    const char *shell;        /* script for /bin/sh -c, or NULL */
    const struct hp_kv *env;  /* workflow env, then proxy vars when needed */
    size_t nenv;
    struct hp_resources res;  /* walltime filled from defaults */
    const char *partition;    /* chosen partition or NULL */
    const char *container;    /* image or NULL */
    const char *workdir;      /* absolute directory to run in */
    const char *stdout_path;  /* absolute */
    const char *stderr_path;  /* absolute */
    const char *result_path;  /* where the local adapter's spawner writes
                                 the exit record (crash recovery); may be NULL */
    int network;              /* task needs outbound network */
    int pilot;                /* runs in a pilot job (the pilot adapter) */
    /* function tasks (`function:` in the workflow; the endpoint adapter,
     * adapters/endpoint.c): a call instead of a job. NULL for jobs. */
    const char *function;
    const char *endpoint_site;   /* NULL: the run's site */
    const char *endpoint_name;   /* NULL: the site's only endpoint */
    const char *fn_input;        /* absolute path on this machine, or NULL (empty) */
    const char *fn_output;       /* absolute path on this machine, or NULL */
};

enum hp_jobstate_kind {
    HP_JOB_NEW = 0,
    HP_JOB_QUEUED,
    HP_JOB_ACTIVE,
    HP_JOB_COMPLETED,   /* exit code 0 */
    HP_JOB_FAILED,      /* non-zero exit, signal, timeout, node failure... */
    HP_JOB_CANCELED,
    HP_JOB_UNKNOWN      /* the back end no longer knows the job */
};

struct hp_jobstate {
    enum hp_jobstate_kind state;
    int exit_code;      /* valid for COMPLETED/FAILED when signal == 0 */
    int signal;         /* terminating signal, 0 if none */
    int timed_out;      /* killed for exceeding its walltime */
    char reason[256];   /* human reason, e.g. "TIMEOUT", "exit code 3" */
};

const char *hp_jobstate_name(enum hp_jobstate_kind k);

/* ---- live site checks (`hpcport site check`) ---- */

enum hp_check_status { HP_CHECK_OK = 0, HP_CHECK_WARN, HP_CHECK_FAIL, HP_CHECK_SKIP };

struct hp_check_row {
    char *check;                  /* "reachable", "partition 'debug'", ... */
    enum hp_check_status status;
    char *detail;                 /* what was found; for FAIL, what to do */
    char *origin;                 /* "file:line:col" of the profile value the
                                     row checks, or NULL */
};

struct hp_check_report {
    struct hp_check_row *rows;
    size_t n, alloc;
};

struct hp_check_opts {
    int no_job;                   /* skip the checks that submit a job */
    double job_timeout;           /* seconds to wait for the probe job (0: 120) */
};

/* Append a row; origin may be NULL or "". */
void hp_check_add(struct hp_check_report *r, enum hp_check_status st, const char *check,
                  const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void hp_check_report_release(struct hp_check_report *r);
/* "ok", "warn", "FAIL", "skip" */
const char *hp_check_status_name(enum hp_check_status s);

struct hp_adapter_ops {
    const char *name;
    /* Pure: render the batch script for spec on site into out. Required. */
    int (*render)(const struct hp_jobspec *spec, const struct hp_site *site,
                  struct hp_buf *out, struct hp_err *err);
    /* Submit; *job_id is a new string. Optional (NULL: cannot submit).
     * Returns 0, -1 (err: this attempt failed), or 1 (err says why): not
     * now -- the site cannot be reached or the scheduler is busy; it is
     * safe to submit the same attempt again later (the adapter then finds
     * a job that was created after all, by its token). */
    int (*submit)(void *impl, const struct hp_jobspec *spec, char **job_id,
                  struct hp_err *err);
    /* Query n jobs. Optional. */
    int (*status)(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                  struct hp_err *err);
    /* Cancel one job. Optional. */
    int (*cancel)(void *impl, const char *id, struct hp_err *err);
    /* Block until some job may have changed state or timeout seconds pass.
     * Optional (default: sleep). */
    int (*wait)(void *impl, double timeout);
    /* Slots available for new jobs right now (local: free cores), or -1 for
     * "ask the scheduler" (no client-side limit). Optional. */
    long (*capacity)(void *impl, const struct hp_jobspec *spec);
    /* Create / destroy the adapter's private state for site. Optional. */
    void *(*open)(const struct hp_site *site, struct hp_err *err);
    void (*close)(void *impl);
    /* Track again a job that an earlier process submitted for spec (the same
     * attempt) under job_id, before its status is asked: lets an adapter with
     * client-side state (local: cores in use, the result file) know it.
     * Optional. */
    int (*adopt)(void *impl, const struct hp_jobspec *spec, const char *job_id,
                 struct hp_err *err);

    /* ---- hooks for sites reached through a connection (slurm); the engine
     * calls each only when it is not NULL. ---- */

    /* Once per engine run, after open and before the first submit: make
     * the site ready for plan -- create the campaign's directories there
     * and upload the workflow's declared inputs (core/stage.h). local_dir
     * is the campaign's directory on this machine (state.db, fetched logs).
     * plan and local_dir stay valid until close. Optional. */
    int (*prepare)(void *impl, const struct hp_plan *plan, const char *local_dir,
                   struct hp_err *err);
    /* After the job of spec (instance index i of the plan given to prepare)
     * reached the final state js, before the engine records it: fetch what
     * the attempt left on the site (stdout/stderr into local_dir's logs/,
     * declared outputs into the workflow's directory). Returns 0, or -1
     * when it could not: the engine asks the job's status and calls it again
     * at later polls, and after a few minutes records the attempt as failed
     * with err's message; or 1 when they are out of reach for good (their
     * site is gone, adapters/multi.h): the attempt is recorded as lost and
     * the instance runs again. Optional. */
    int (*collect)(void *impl, size_t i, const struct hp_jobspec *spec,
                   const struct hp_jobstate *js, struct hp_err *err);
    /* `hpcport site check`: run live checks of site (opening its own
     * connection) and append one row per check to rep. Returns 0 when the
     * checks ran (rows may say FAIL), -1 with err when they could not.
     * Optional (the command then says the scheduler has no live checks). */
    int (*check)(const struct hp_site *site, const struct hp_check_opts *opts,
                 struct hp_check_report *rep, struct hp_err *err);
};

/* Adapter by name: a built-in one ("local", "slurm", ...), else the adapter
 * plugin NAME.so on the plugin path (adapters/plugin.h); NULL if neither
 * (or the plugin was refused). */
const struct hp_adapter_ops *hp_adapter_find(const char *name);
/* The adapter of site->scheduler, as hp_adapter_find(), or NULL with err
 * (HP_ESITE, at the profile's scheduler.type): the directories searched and
 * a did-you-mean for an unknown name, or why a plugin was refused. */
const struct hp_adapter_ops *hp_adapter_for_site(const struct hp_site *site,
                                                 struct hp_err *err);
/* The endpoint adapter (adapters/endpoint.c): a plan whose workflow has
 * function tasks runs through it; it calls their functions on endpoints
 * (submit = the endpoint's submit, status = its task state, the output
 * written here atomically) and hands every other job to the adapter of the
 * site's scheduler. Its job ids are "endpoint:SITE:NAME:TASK". */
extern const struct hp_adapter_ops hp_adapter_endpoint;

/* The pilot adapter (adapters/pilot.c): a plan with instances placed in
 * pilot jobs runs through it; it hands those to the campaign's agent on the
 * site's login node (started over the site's connection; the agent submits
 * the pilot jobs) and every other job to the adapter below it (the
 * endpoint adapter, which hands jobs to the site's scheduler). Its job ids
 * are "pilot:TOKEN". */
extern const struct hp_adapter_ops hp_adapter_pilot;
/* The state of campaign's agent on site, asked now (`hpcport agent status
 * --json`, remote/agent.h): for `hpcport status` of a campaign whose run
 * ended or was cut off while its agent goes on. *out is a new reference. */
int hp_pilot_agent_status(const struct hp_site *site, const char *campaign,
                          const char *state_dir, json_t **out, struct hp_err *err);

/* The adapter a campaign recorded: hp_adapter_find(), and also the
 * endpoint and pilot adapters that plans put over the site's. */
const struct hp_adapter_ops *hp_adapter_find_recorded(const char *name);

/* NULL-terminated list of built-in adapters. */
const struct hp_adapter_ops *const *hp_adapter_list(void);

#endif
