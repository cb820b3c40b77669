/* slurm-int.h - the Slurm adapter's pure parts, shared by slurm.c,
 * slurm-check.c and tests/unit/test-slurm.c: the state model, and parsers
 * for what squeue, sacct and sbatch print (text and --json).
 *
 * The text formats are fixed here and used by every query, so that the
 * parsers and the commands cannot drift apart:
 *   squeue -h -t all -j IDS -O SLURM_SQUEUE_FMT     "id|STATE|exit|limit|reason|"
 *   sacct -X -n -P -j IDS -o SLURM_SACCT_FMT        "id|STATE[ by UID]|code:sig|limit|reason|name"
 *   squeue -h -t all -u USER -O SLURM_LOOKUP_FMT    "id|STATE|name|"
 * squeue's exit_code is the raw wait status (768 = exit 3, 9 = signal 9);
 * sacct's ExitCode is "code:signal". Time limits are Slurm durations
 * ("30:00" is 30 minutes, "1-00:00:00", "UNLIMITED").
 *
 * Facts about Slurm 22.05 (checked on the test cluster, recorded in
 * tests/fixtures/slurm/): `squeue --json` ignores every filter (-j, -u, -t)
 * and dumps every job the controller knows; `sacct --json` reports
 * exit_code {"status":"SUCCESS","return_code":0} for a job that exited 3
 * (the text form says 3:0); the job comment is not kept in accounting
 * unless AccountingStoreFlags=job_comment. Hence: text queries by default,
 * JSON only from Slurm 23.02 on, and the idempotency token rides in the job
 * name, which both squeue and sacct always know. */
#ifndef HP_SLURM_INT_H
#define HP_SLURM_INT_H

#include <stddef.h>
#include <stdint.h>
#include "adapter.h"

#define SLURM_SQUEUE_FMT "JobID:|,State:|,exit_code:|,TimeLimit:|,Reason:|"
#define SLURM_SACCT_FMT "JobIDRaw,State,ExitCode,Timelimit,Reason,JobName"
#define SLURM_LOOKUP_FMT "JobID:|,State:|,Name:|"

/* One job as a query reported it. */
struct slurm_rec {
    char id[32];
    char state[48];        /* "COMPLETED", "CANCELLED" (without " by N") */
    long cancel_uid;       /* "CANCELLED by N": N, else -1 */
    int have_exit;         /* exit_code/signal below are known */
    int exit_code;
    int signal;
    int64_t limit;         /* time limit in seconds, 0 unknown, -1 unlimited */
    char reason[96];       /* Slurm's reason ("NonZeroExitCode", "None") */
    char name[256];        /* job name when the query has it, else "" */
};

/* Map rec to the common model. */
void slurm_map_state(const struct slurm_rec *rec, struct hp_jobstate *out);
/* Is this a Slurm state the job never leaves (COMPLETED, FAILED, ...)? An
 * unknown name counts as not final. */
int slurm_state_final(const char *state);

/* Parse a Slurm duration ("MM", "MM:SS", "HH:MM:SS", "D-HH[:MM[:SS]]");
 * seconds, -1 for UNLIMITED/INFINITE, 0 for anything unparseable. */
int64_t slurm_parse_limit(const char *s);
/* "slurm 22.05.8" -> 22, 5. 0, or -1 if s is not a version line. */
int slurm_parse_version(const char *s, int *major, int *minor);

/* Parsers: append one record per job to *recs (grown with HP_ALLOC_GROW;
 * the caller frees). Lines that do not parse are skipped. 0, or -1 with err
 * for a document that is not what the command prints. */
int slurm_parse_squeue_text(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc);
int slurm_parse_sacct_text(const char *text, struct slurm_rec **recs, size_t *n, size_t *alloc);
int slurm_parse_lookup_text(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc);
/* squeue --json (openapi v0.0.38 of 22.05, and the shapes of 23.x/24.x:
 * job_state as a list, numbers as {set, infinite, number}). */
int slurm_parse_squeue_json(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc, struct hp_err *err);
/* sacct --json (dbv0.0.38 and later). */
int slurm_parse_sacct_json(const char *text, struct slurm_rec **recs, size_t *n,
                           size_t *alloc, struct hp_err *err);

/* The job id in `sbatch --parsable` output ("123" or "123;cluster"), into
 * id (len bytes). 0, or -1 if out holds none. */
int slurm_parse_sbatch(const char *out, char *id, size_t len);
/* The idempotency token at the end of a job name written by render
 * ("NAME.hp<16 hex>.<attempt>-<hex>"), or NULL. Borrowed from name. */
const char *slurm_name_token(const char *name);

/* The Slurm adapter's render (the sbatch script), shared with slurmrest.c. */
/* GPUs as the site takes them (scheduler.gpu_request): per node (the
 * default), as a generic resource, as the job's total, or not at all where
 * whole nodes come with all their GPUs. Returns the sbatch option ("gres",
 * "gpus", "gpus-per-node") with its value in buf, or NULL for none. */
const char *slurm_gpu_request(const struct hp_jobspec *spec, const struct hp_site *site,
                              int nodes, char *buf, size_t len);
int slurm_render(const struct hp_jobspec *spec, const struct hp_site *site, struct hp_buf *out,
                 struct hp_err *err);

/* Messages of sbatch or slurmrestd that mean "not now": the controller is
 * busy or unreachable; the job may exist nonetheless. NULL-terminated. */
extern const char *const slurm_transient[];

/* The job name render writes for spec (new string): "<job_name>.<token>". */
char *slurm_job_name(const struct hp_jobspec *spec);

#endif
