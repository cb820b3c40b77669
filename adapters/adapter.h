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
#include "workflow.h"

struct hp_site;
struct hp_conn;     /* a transport to the site; NULL for the local adapter */

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
    const char *result_path;  /* where the local adapter's supervisor writes
                                 the exit record (crash recovery); may be NULL */
    int network;              /* task needs outbound network */
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

struct hp_adapter_ops {
    const char *name;
    /* Pure: render the batch script for spec on site into out. Required. */
    int (*render)(const struct hp_jobspec *spec, const struct hp_site *site,
                  struct hp_buf *out, struct hp_err *err);
    /* Submit; *job_id is a new string. Optional (NULL: cannot submit). */
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
};

/* Built-in adapters by name ("local", "slurm", ...), NULL if unknown. */
const struct hp_adapter_ops *hp_adapter_find(const char *name);
/* NULL-terminated list of built-in adapters. */
const struct hp_adapter_ops *const *hp_adapter_list(void);

#endif
