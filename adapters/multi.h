/* multi.h - one campaign over several sites (`hpcport run WF --site A --site B`).
 *
 * The mux is an adapter (hp_adapter_multi) that the engine sees as its one
 * adapter; behind it each site has its own plan (hp_plan_new with the same
 * workflow and campaign id), adapter and connection. The caller opens it
 * with hp_multi_new() and hands it to the engine (hp_campaign_opts.adapter
 * and .adapter_impl); the engine neither opens nor closes it.
 *
 *   - submit: the job goes to the usable site with the most free slots
 *     (scheduler.max_queued_jobs, else HP_MULTI_SLOTS, minus the jobs this
 *     run has there; a site whose capacity hook says full is skipped), with
 *     the spec rebuilt from that site's plan (its paths, partitions, env) and
 *     the engine's token. A site that says "not now" is left alone for a
 *     while (5 s, doubling to 5 min) and the next site is tried at once.
 *     Job ids are "SITE|ID".
 *   - status/cancel/adopt/collect go to the job's site. A site whose status
 *     or collect keeps failing for opts.failover seconds while another site
 *     can take jobs is marked down: its unfinished jobs are reported
 *     HP_JOB_UNKNOWN (the engine runs them again, as new attempts, on the
 *     other sites) and their ids kept; when the site answers again during the
 *     run (a later submission there succeeds), they are canceled there, best
 *     effort. A job that was queued or running there may still run there.
 *   - a site that cannot be opened or prepared at the start is down from the
 *     start (the run goes on with the others), unless every site is.
 */
#ifndef HP_MULTI_H
#define HP_MULTI_H

#include <stddef.h>
#include "adapter.h"
#include "err.h"

struct hp_plan;

#define HP_MULTI_SEP '|'      /* between the site and its job id */
#define HP_MULTI_SLOTS 1000   /* free slots of a site without max_queued_jobs */

struct hp_multi_opts {
    double failover;          /* seconds a site may fail before its jobs move
                                 (0: 60) */
    /* One line per site event (down, back, jobs moved). Optional. */
    void (*event)(void *ctx, const char *msg);
    void *ctx;
};

extern const struct hp_adapter_ops hp_adapter_multi;

/* The mux over n >= 2 plans of one workflow (borrowed: they must outlive
 * it), opened: each site's adapter opened. Fails for plans whose instances
 * differ (ids or order), for a site named twice and when no site can be
 * opened. */
void *hp_multi_new(const struct hp_plan *const *plans, size_t n, const struct hp_multi_opts *o,
                   struct hp_err *err);
void hp_multi_free(void *impl);

/* The site part of a job id "SITE|ID": its length, or 0 when id has none. */
size_t hp_multi_site_len(const char *job_id);

#endif
