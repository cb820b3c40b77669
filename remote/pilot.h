/* pilot.h - a pilot: runs inside a batch allocation, takes tasks from the
 * campaign agent (TCP, pilot-wire.h) or from the spool directory (agent.h),
 * runs them in slots of cores and GPUs, reports results in batches. */
#ifndef HP_PILOT_H
#define HP_PILOT_H

#include "err.h"

struct hp_pilot_opts {
    const char *agent;        /* HOST:PORT, or NULL with spool */
    const char *secret_file;  /* required with agent */
    const char *spool;        /* spool directory (agent.h), or NULL */
    const char *id;           /* pilot id; default HOST-PID */
    int cores;                /* core slots (default: online CPUs) */
    const char *gpus;         /* comma-separated GPU ids to pin, or NULL */
    int nodes;                /* nodes of the allocation (default SLURM_JOB_NUM_NODES or 1) */
    long walltime;            /* seconds left in the allocation; 0: SLURM_JOB_END_TIME or unknown */
    const char *launcher;     /* srun | mpiexec | none, for tasks of more than one node */
    int grace;                /* seconds to let running tasks finish after SIGTERM (30) */
    int idle;                 /* exit after this many seconds with nothing to run (60) */
    int heartbeat;            /* seconds between heartbeats (5) */
    int reconnect;            /* seconds to keep trying a lost agent (300) */
};

/* Run until the campaign has no task left, the agent drains, the pilot is
 * idle for opts->idle seconds, or SIGTERM (then: take nothing new, hand back
 * what has not started, let running tasks finish for up to grace seconds,
 * report, exit). *ran gets the number of tasks run. */
int hp_pilot_run(const struct hp_pilot_opts *o, long *ran, struct hp_err *err);

#endif
