/* campaign.h - the campaign engine: runs (or resumes) a plan on its site and
 * keeps the state in the campaign's SQLite store (core/state.h).
 *
 * A campaign is named by its id (plan->campaign) and lives in its directory
 * (plan->dir = hp_campaign_dir(state dir, id)): state.db, run.lock and the
 * kept logs. On a remote site (plan->remote_workdir set) plan->dir is on the
 * site and the local directory is still hp_campaign_dir(state dir, id); the
 * adapter's prepare hook sets up the site's side, its collect hook fetches
 * each attempt's logs into the local one. One engine at a time runs a
 * campaign (flock on run.lock).
 *
 * The engine
 *   - creates the campaign, or reopens it (a different site is an error);
 *   - inserts the instances it does not know yet;
 *   - on a rerun: never runs a completed instance again; instances that failed
 *     or were canceled in an earlier run start over with a fresh retry budget
 *     (their attempt numbers go on, so earlier logs are kept); jobs an earlier
 *     engine left queued or running are tracked again through the adapter
 *     (adopt + status) -- still running: followed; finished: recorded; gone
 *     without a trace: run again as a new attempt, not counted as a failure;
 *   - submits ready instances (all dependencies completed) while the
 *     adapter's capacity (local: free cores) and max_parallel allow, in
 *     workflow order; a failure beyond `retries` cancels every instance that
 *     depends on it, with reason "dependency 'ID' failed";
 *   - writes state in batches (one transaction at most every 50 ms), relying
 *     on idempotent submission for crash safety: every attempt has a fixed
 *     number, token and result file, and submitting an attempt again finds
 *     the earlier submission instead of running it twice;
 *   - when the adapter says "not now" (submit returns 1: the site cannot be
 *     reached), submits nothing for a moment and then tries the same attempt
 *     again; a job whose files cannot be fetched is asked about again at
 *     every poll, for up to 10 minutes;
 *   - notices within a second when another process (`hpcport cancel`) marks
 *     instances canceled, and cancels their jobs;
 *   - stops submitting when *opts->stop becomes non-zero and returns at once,
 *     leaving running jobs to finish (a rerun picks up their results).
 *
 * Functions return 0 / -1 and fill err unless their comment says otherwise. */
#ifndef HP_CAMPAIGN_H
#define HP_CAMPAIGN_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include "err.h"
#include "plan.h"
#include "state.h"

struct hp_campaign_progress {
    size_t total;                 /* instances in the plan */
    size_t count[HP_IS__COUNT];   /* per state */
    size_t ran;                   /* attempts finished by this engine */
    size_t submitted;             /* attempts submitted by this engine */
    size_t adopted;               /* jobs found running from an earlier engine */
    double elapsed;               /* seconds since the engine started */
    double rate;                  /* instances finished per second in this run */
};

struct hp_campaign_opts {
    const char *state_dir;        /* NULL = hp_state_dir(); only recorded */
    const char *workflow_path;    /* recorded with the campaign, may be NULL */
    long max_parallel;            /* at most this many jobs at once, 0 = no limit */
    volatile sig_atomic_t *stop;  /* non-zero: stop submitting and return */
    /* Called about every progress_interval seconds (0: 0.2) and once at the
     * end. Optional. */
    void (*progress)(void *ctx, const struct hp_campaign_progress *p);
    double progress_interval;
    /* One line per event (submitted, finished, retried, ...), for -v.
     * Optional; level 1 = per-instance events, 2 = details. */
    void (*event)(void *ctx, int level, const char *msg);
    void *ctx;
    /* An adapter the caller opened, used instead of plan->adapter; the
     * engine neither opens nor closes it (a multi-site run's mux,
     * adapters/multi.h). NULL: plan->adapter. */
    const struct hp_adapter_ops *adapter;
    void *adapter_impl;
    /* The site the campaign records, NULL: plan->site->name. A multi-site
     * run records "A,B"; a rerun must name the same sites (in any order). */
    const char *site_label;
};

struct hp_campaign_summary {
    struct hp_campaign_progress p;   /* final counts */
    int interrupted;                 /* *stop was set */
    int canceled;                    /* some instance was canceled by a user */
};

/* Run plan to the end (or until *opts->stop). Returns 0 when the engine ran
 * to its end -- check sum->p.count[HP_IS_FAILED] and [HP_IS_CANCELED] --, -1
 * on an error that stopped it (HP_ESTATE: another site or another engine;
 * HP_ESITE: a task needs more cores than the site has). */
int hp_campaign_run(const struct hp_plan *plan, const struct hp_campaign_opts *opts,
                    struct hp_campaign_summary *sum, struct hp_err *err);

/* ---- for status, cancel and logs ---- */

struct hp_campaign_entry {
    char *id;
    char *dir;
    struct hp_campaign_info info;
    size_t count[HP_IS__COUNT];
    size_t total;
    pid_t engine;                 /* pid of the engine running it, 0 if none */
};

/* Every campaign under state_dir (NULL = hp_state_dir()), sorted by id. A
 * campaign whose state cannot be read is listed with info.status "error". */
int hp_campaign_list(const char *state_dir, struct hp_campaign_entry **out, size_t *n,
                     struct hp_err *err);
void hp_campaign_entries_free(struct hp_campaign_entry *e, size_t n);

/* Open the state of campaign id. Unknown: HP_ENOTFOUND naming the close
 * matches ("did you mean ...?") or the existing campaigns. *dir (may be NULL)
 * receives the campaign directory (new string). */
struct hp_state *hp_campaign_open(const char *state_dir, const char *id, char **dir,
                                  struct hp_err *err);
/* Pid of the engine running the campaign in dir, or 0. */
pid_t hp_campaign_engine(const char *dir);

/* Resolve name to one instance: its exact id, or a task name that has a
 * single instance. Otherwise HP_ENOTFOUND with a did-you-mean, or HP_EUSAGE
 * listing the instances of a task that has several. */
int hp_campaign_find_instance(struct hp_state *st, const char *name, struct hp_inst_row *out,
                              struct hp_err *err);

struct hp_cancel_result {
    size_t marked;                /* instances marked canceled */
    size_t signaled;              /* jobs this call canceled itself */
    size_t unstopped;             /* jobs the scheduler refused to cancel */
    char first_refusal[256];      /* why, for the first of them */
    pid_t engine;                 /* an engine runs and will cancel the jobs */
};
/* Resolves the campaign's site for hp_campaign_cancel: the site name and
 * the workflow path the campaign recorded (may be NULL). NULL with err. */
typedef struct hp_site *(*hp_cancel_site_fn)(const char *site, const char *workflow_path,
                                             void *arg, struct hp_err *err);
/* Cancel the whole campaign (names == NULL) or the instances / tasks named.
 * A name that matches nothing is HP_ENOTFOUND (nothing is canceled). Jobs
 * of canceled instances are stopped by the running engine, or here when none
 * runs: the local adapter from the job id alone, others (slurm, pbs, ...)
 * through the site that load_site resolves, before anything is marked: a
 * site that cannot be reached is an error and nothing is canceled, so that
 * the command can be repeated. A job the scheduler refuses to cancel (it
 * ended meanwhile) is counted in unstopped; its instance is still marked. */
int hp_campaign_cancel(const char *state_dir, const char *id, const char *const *names,
                       size_t nnames, hp_cancel_site_fn load_site, void *arg,
                       struct hp_cancel_result *res, struct hp_err *err);

#endif
