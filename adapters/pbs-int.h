/* pbs-int.h - the PBS adapter's pure parts, shared by pbs.c, pbs-check.c and
 * tests/unit/test-pbs.c: the two dialects, the job name that carries the
 * idempotency token, the state model, and parsers for what qsub, qstat and
 * the job's own exit record print.
 *
 * Dialects. "pbspro" is PBS Professional / OpenPBS: resources as
 * `-l select=N:ncpus=C:...`, status from `qstat -f -F json -x IDS` (job
 * history included), with `qstat -f -x IDS` text when a server's JSON does
 * not parse (OpenPBS issue 2541: values are not always escaped). "torque" is
 * TORQUE and the qsub/qstat/qdel wrappers Slurm ships (slurm-wlm-torque):
 * `-l nodes=N:ppn=C`, status from `qstat -f IDS` text.
 *
 * Both print the same text shape for `qstat -f`:
 *     Job Id: 179.host
 *         Job_Name = STDIN
 *         Variable_List = PBS_O_HOME=/home/user,
 *     <TAB>PBS_O_PATH=...               (a long value continues)
 *         exit_status = -1              (TORQUE; PBS Pro says Exit_status)
 * (Slurm's wrapper indents attributes with a tab; a continuation line is
 * one without " = " after its first word.)
 *
 * Exit statuses. 0 is success; 1..128 an exit code; 129..192 what a shell
 * reports for a child killed by signal N-128; 256+N a job killed by signal N
 * (PBS Pro, TORQUE: 271 is SIGTERM, often the walltime); negative numbers
 * are the scheduler's own (JOB_EXEC_*) and differ by dialect: PBS Pro -29
 * is walltime exceeded and -11 a rerun, TORQUE -11 is walltime exceeded
 * (TORQUE docs, OpenPBS src/include/job.h). */
#ifndef HP_PBS_INT_H
#define HP_PBS_INT_H

#include <stddef.h>
#include <stdint.h>
#include "adapter.h"

enum pbs_dialect { PBS_PRO = 0, PBS_TORQUE = 1 };

/* "pbspro" (or NULL: the default) and "torque"; -1 for anything else. */
int pbs_dialect_of(const char *name);
const char *pbs_dialect_name(enum pbs_dialect d);

/* Longest job name the dialect's qsub takes (PBS Pro: 236; TORQUE and
 * Slurm's wrapper: kept to 64). */
size_t pbs_name_max(enum pbs_dialect d);

/* The job name render writes for spec (new string): the token first, then
 * ".<job_name>" cut to pbs_name_max(), so that a name a server shortens
 * still begins with the whole token. Without a token: the job name, with a
 * leading "j" when it does not start with a letter (PBS wants one). */
char *pbs_job_name(const struct hp_jobspec *spec, enum pbs_dialect d);
/* The token at the start of a job name written by pbs_job_name()
 * ("hp<16 hex>.<attempt>-<hex>", then '.' or the end), copied into tok (len
 * bytes). 0, or -1 when name does not start with one. */
int pbs_name_token(const char *name, char *tok, size_t len);

/* One job as qstat reported it. */
struct pbs_rec {
    char id[128];            /* as qstat prints it: "1234.server" or "1234" */
    char state;              /* job_state letter, 0 when absent */
    int have_exit;
    int exit_status;         /* Exit_status / exit_status as printed */
    int substate;            /* PBS Pro substate, -1 when absent */
    int64_t used_walltime;   /* resources_used.walltime (s), -1 unknown */
    int64_t limit_walltime;  /* Resource_List.walltime (s), -1 unknown */
    char name[256];          /* Job_Name */
    char owner[128];         /* Job_Owner, "user@host" */
    char comment[160];
};

/* Parsers: append one record per job to *recs (grown with HP_ALLOC_GROW;
 * the caller frees). JSON: 0, or -1 with err when text is not the document
 * `qstat -F json` prints (a missing "Jobs" member means no job). Text: the
 * number of "Job Id:" records found (0 for empty or foreign text). */
int pbs_parse_json(const char *text, struct pbs_rec **recs, size_t *n, size_t *alloc,
                   struct hp_err *err);
int pbs_parse_text(const char *text, struct pbs_rec **recs, size_t *n, size_t *alloc);

/* The job ids that qstat's stderr says it does not know ("qstat: Unknown Job
 * Id 12.srv", "qstat: Unknown Job Id Error 12.srv", "qstat: 12.srv Job has
 * finished, use -x ..."): each found id is passed to fn. Returns how many. */
size_t pbs_parse_unknown(const char *errtext, void (*fn)(void *ud, const char *id), void *ud);

/* What one `qstat -f` run told: records, and the ids it says it does not
 * know. */
struct pbs_answer {
    struct pbs_rec *recs;
    size_t n, alloc;
    char **unknown;
    size_t nunknown, ualloc;
};
void pbs_answer_release(struct pbs_answer *a);
/* The record of the job qsub called id (pbs_id_match), the last one when
 * there are several; NULL if none. */
const struct pbs_rec *pbs_answer_rec(const struct pbs_answer *a, const char *id);
int pbs_answer_unknown(const struct pbs_answer *a, const char *id);
/* Digest one run of `qstat -f [-F json]` that exited with status and
 * printed out and errtext, into a. 0; 1 when json is set and out is not a
 * JSON document (ask again in text; a is unchanged); -1 with err (HP_ESITE,
 * "qstat ...") when the answer is neither records nor "unknown job": a
 * failure, or text that is not qstat's. Every id unknown is not an error
 * (PBS exits 153 or 35 and says so on stderr; Slurm's wrapper exits 153
 * and says nothing). */
int pbs_parse_qstat(int json, int status, const char *out, const char *errtext,
                    struct pbs_answer *a, struct hp_err *err);
/* What a PBS command said went wrong (new string): its first "error: "
 * message (Slurm's wrapper prints sbatch's on stdout), else the first line
 * of errtext, else of out. */
char *pbs_complaint(const char *out, const char *errtext);

/* The job id qsub printed ("1234.server", "1234", "12[].srv"): the last
 * non-empty line of out, into id (len bytes). 0, or -1 when out holds none. */
int pbs_parse_qsub(const char *out, char *id, size_t len);
/* Whether qstat's id a names the job qsub called b: equal, or equal up to
 * the first '.' when one of them has no server part ("1234" and
 * "1234.server"). */
int pbs_id_match(const char *a, const char *b);

/* Seconds of "[[HH:]MM:]SS" (hours may exceed 24); -1 if s is not one. */
int64_t pbs_parse_hms(const char *s);
/* "HH:MM:SS" with hours unbounded, as -l walltime takes it. */
void pbs_format_hms(int64_t secs, char *buf, size_t len);

/* Is state a letter the job never leaves (PBS Pro F, X, M; TORQUE C)? */
int pbs_state_final(enum pbs_dialect d, char state);
/* Map a record that is not final, or final with an exit status, to the
 * common model; 1 when it is final without one (the caller reads the
 * job's exit record, pbs_map_rcfile()), else 0. */
int pbs_map_state(enum pbs_dialect d, const struct pbs_rec *rec, struct hp_jobstate *out);
/* Map an exit status as qstat prints it (see the top). timed_out is set for
 * the walltime codes, and for a job killed by a signal whose used walltime
 * reached its limit (used and limit may be -1). */
void pbs_map_exit(enum pbs_dialect d, int status, int64_t used, int64_t limit,
                  struct hp_jobstate *out);
/* Map the exit record the job script writes ("<status> <elapsed seconds>",
 * render's last lines) for a job with the given walltime (0: none). 0, or
 * -1 when text is not one (empty: the job never got there). */
int pbs_map_rcfile(const char *text, int64_t walltime, struct hp_jobstate *out);

#endif
