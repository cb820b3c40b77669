/* slurmrest-int.h - the Slurm REST adapter's pure parts, shared by
 * slurmrest.c and tests/unit/test-slurmrest.c.
 *
 * The job script is the Slurm adapter's (slurm_render: `hpcport plan`
 * shows the same script), but slurmrestd does not read #SBATCH lines: what
 * sbatch would read from them is sent as the job description of POST
 * /slurm/vX/job/submit. Job listings of /slurm/vX/jobs have the shape of
 * `squeue --json` and /slurmdb/vX/job/ID that of `sacct --json`: the Slurm
 * adapter's parsers (slurm-int.h) read them. */
#ifndef HP_SLURMREST_INT_H
#define HP_SLURMREST_INT_H

#include <jansson.h>
#include "adapter.h"
#include "buf.h"
#include "site.h"

/* The body of POST /slurm/vX/job/submit for spec (paths already resolved)
 * with script as the job script: {"script": ..., "job": {name (with the
 * token), comment (the token), partition, account, qos, constraints, nodes,
 * tasks, cpus_per_task, memory_per_node, GPUs as site->gpu_request says,
 * time_limit (minutes, rounded up), standard_output/standard_error (as
 * patterns: '%' doubled), current_working_directory, environment}}. New
 * reference in *out. -1 with err (HP_EINPUT) for what the API cannot carry
 * (scheduler.directives, which are sbatch options). */
int slurmrest_job_json(const struct hp_jobspec *spec, const struct hp_site *site,
                       const char *script, json_t **out, struct hp_err *err);

/* slurmrestd's "errors" list of root as text ("error: description; ..."),
 * appended to msg; *num is the first error's number (error_number,
 * error_code or errno; 0 if none). Returns the number of errors. */
size_t slurmrest_errors(const json_t *root, struct hp_buf *msg, long *num);

/* "SLURM_JWT=..." in the output of `scontrol token`: the token (new
 * string), or NULL. */
char *slurmrest_scontrol_token(const char *out);

#endif
