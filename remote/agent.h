/* agent.h - the campaign agent that runs on a login node and feeds pilots
 * (hpcport agent, hpcport pilot; the protocol is in pilot-wire.h).
 *
 * DIR holds everything of one campaign's agent:
 *   tasks.db     the task store (SQLite, WAL): one row per task
 *   agent.lock   flock()ed by the running agent: one agent per DIR
 *   secret       per-campaign secret (32 random bytes, hex), 0600, made at first
 *                start; pilots prove they know it (HMAC), it never crosses the wire
 *   agent.json   {"pid","host","port","spool"} of the running agent, 0600
 *   drain        when present, pilots take nothing new and exit when idle
 *
 * Task states: queued -> leased (handed to a pilot) -> done | failed.
 * A pilot silent for longer than the heartbeat timeout is lost: its leased
 * tasks go back to queued with attempts + 1. A result for a task that has
 * already completed is ignored, so no completed task is ever recorded twice,
 * and a task is never handed out again once a result for it is recorded.
 *
 * Spool mode (for compute nodes that cannot reach the login node) lays out
 * SPOOL/{new,leased/PILOT,done,pilots}: the agent writes batches of tasks as
 * one file each into new/ (NAME.batch, one TASK per line); a pilot claims one
 * with rename() into leased/PILOT/, writes its results as one file into
 * done/ (PILOT-SEQ.res, by rename of a temporary file), deletes a batch once
 * every task of it is reported, and heartbeats by touching pilots/PILOT. The
 * agent reads and deletes done/ files and requeues the batches of lost
 * pilots. SPOOL/status holds {"left":N,"drain":BOOL,"hb":TIMEOUT} for pilots.
 *
 * With a pilot configuration (opts.pilots, written by `hpcport run` on the
 * laptop) the agent submits pilot jobs itself, through the site's adapter
 * with the local transport, so that a campaign goes on while the laptop is
 * away. The file is a JSON object: "site" (a profile file without a login
 * section), "hpcport" (the program the pilot jobs run), "campaign" (names
 * the jobs), "cores", "gpus", "nodes", "walltime" (s), "partition",
 * "idle" (s), "max_pilots", "max_queued", "tasks_per_pilot". The jobs are
 * recorded in tasks.db (pilot_jobs) and followed again after a restart;
 * DIR/pilots/ holds their output; DIR/pilots.error says why the agent gave
 * up submitting (pilot jobs that keep failing before running a task). */
#ifndef HP_AGENT_H
#define HP_AGENT_H

#include <jansson.h>
#include <stddef.h>
#include "err.h"

enum hp_task_state { HP_TASK_QUEUED = 0, HP_TASK_LEASED, HP_TASK_DONE, HP_TASK_FAILED };

struct hp_agent_opts {
    const char *dir;       /* required */
    const char *listen;    /* HOST:PORT, default 127.0.0.1:0; NULL with spool: no TCP */
    const char *spool;     /* spool directory or NULL */
    int hb_timeout;        /* seconds of silence before a pilot is lost (default 30) */
    int batch;             /* tasks per spool batch (default 256) */
    int exit_when_done;    /* stop once no task is queued or leased */
    int idle_exit;         /* > 0: stop after this many seconds with no task
                              left and no pilot connected */
    const char *pilots;    /* pilot configuration (JSON) or NULL: the agent then
                              submits pilot jobs itself (see below) */
    /* called once listening with agent.json's text */
    void (*ready)(const char *json, void *arg);
    void *ready_arg;
};

/* Run the agent until SIGTERM/SIGINT (or, with exit_when_done, the end of
 * the campaign). Fails if another agent holds DIR. */
int hp_agent_run(const struct hp_agent_opts *o, struct hp_err *err);
/* Add tasks from JSON lines (text, len): each line an object with "argv"
 * (array of strings) or "sh" (string), and optional "id" (unique name),
 * "env" (object), "cwd", "stdout", "stderr", "cores", "gpus", "nodes",
 * "walltime" (seconds or a duration string). All lines or none are added; an
 * error names the line. *added gets the count. */
#define HP_AGENT_ADD_IGNORE_EXISTING 1   /* a line whose id is known is skipped */
int hp_agent_add(const char *dir, const char *text, size_t len, int flags, size_t *added,
                 struct hp_err *err);
/* Counts by state, and with tasks != 0 one object per task, as JSON:
 * {"queued":N,"leased":N,"done":N,"failed":N,"running":BOOL,"tasks":[...],
 *  "pilots":{"queued":N,"running":N,"ended":N,"failed":N,"canceled":N,
 *            "error":TEXT}}
 * With names != NULL, "tasks" holds only the tasks of those ids (unknown
 * ids are left out). */
int hp_agent_status(const char *dir, int tasks, const char *const *names, size_t nnames,
                    json_t **out, struct hp_err *err);
/* Cancel the tasks of ids names[0..n) that have no result yet: recorded as
 * failed by SIGTERM; a pilot that runs one lets it finish, its result is not
 * recorded. *canceled gets the count. */
int hp_agent_cancel(const char *dir, const char *const *names, size_t n, size_t *canceled,
                    struct hp_err *err);
/* pid of the agent holding DIR's lock; 0 if none, -1 if held but unreadable. */
long hp_agent_pid(const char *dir);
/* Ask the running agent of dir to stop (SIGTERM) and wait up to timeout s.
 * drain != 0 instead creates DIR/drain (pilots finish and exit). */
int hp_agent_stop(const char *dir, int drain, double timeout, struct hp_err *err);

#endif
