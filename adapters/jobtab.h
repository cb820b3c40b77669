/* jobtab.h - what a batch adapter (slurm.c, pbs.c) keeps about the jobs it
 * submitted or was asked about: the table of followed jobs, the poll
 * schedule, and the idempotency bookkeeping. An adapter embeds one struct
 * hp_jobtab in its state; the scheduler's commands and their parsing stay
 * in the adapter.
 *
 * Jobs. Each followed job is an adapter struct that begins with a struct
 * hp_jobtab_job (job_size bytes, zeroed when added); lookups by id go
 * through a hash. status() stamps the jobs it is asked about with a
 * generation; final jobs that the latest status() did not ask about are
 * forgotten (hp_jobtab_compact), so a long campaign keeps only live jobs.
 *
 * Polls. Every poll asks about all jobs that are not final; the next one
 * is due HP_JOBTAB_POLL_MIN seconds after a change, growing by half while
 * nothing changes up to HP_JOBTAB_POLL_MAX, and doubling after a failure up
 * to three times that. status() between polls answers from the last one.
 *
 * Idempotency. Tokens found on the site (token -> job id) from a listing
 * of the user's jobs, and "suspects": keys (a job name, a token) whose
 * submission may have happened although its answer was lost, to be looked
 * up again before they are submitted again. */
#ifndef HP_JOBTAB_H
#define HP_JOBTAB_H

#include <stddef.h>
#include "adapter.h"

#define HP_JOBTAB_POLL_MIN 1.0
#define HP_JOBTAB_POLL_MAX 10.0

/* The head of every followed job. */
struct hp_jobtab_job {
    char *id;
    struct hp_jobstate st;   /* as of the last poll; QUEUED until then */
    int final;               /* st is a state the job never leaves */
    unsigned gen;            /* last status() call that asked for it */
};

struct hp_jobtab_tok {
    char *token, *id;
};

struct hp_jobtab {
    /* jobs we follow, each job_size bytes; hash: id -> index + 1 */
    struct hp_jobtab_job **jobs;
    size_t njobs, jalloc;
    size_t *hash, hsize;
    size_t job_size;
    void (*job_release)(struct hp_jobtab_job *j);   /* the adapter's part; may be NULL */
    unsigned gen;
    double next_poll, interval;
    /* idempotency */
    int listed;                    /* the user's jobs were listed once */
    struct hp_jobtab_tok *toks;
    size_t ntoks, talloc;
    char **suspect;
    size_t nsuspect, salloc;
    size_t submitted;              /* jobs the scheduler accepted */
};

/* job_size: the adapter's job struct (at least sizeof(struct
 * hp_jobtab_job)); job_release frees what it adds to the head, or NULL. */
void hp_jobtab_init(struct hp_jobtab *T, size_t job_size,
                    void (*job_release)(struct hp_jobtab_job *j));
void hp_jobtab_release(struct hp_jobtab *T);

/* The job called id, or NULL. */
struct hp_jobtab_job *hp_jobtab_find(const struct hp_jobtab *T, const char *id);
/* The job called id, added (QUEUED, exit code -1) when new. The pointer
 * stays valid until hp_jobtab_compact() or hp_jobtab_release(). */
struct hp_jobtab_job *hp_jobtab_add(struct hp_jobtab *T, const char *id);
/* Add id if new, mark it asked for by the current status() and poll soon:
 * for a job just submitted or adopted. */
struct hp_jobtab_job *hp_jobtab_follow(struct hp_jobtab *T, const char *id);
/* Forget final jobs the latest status() did not ask about. */
void hp_jobtab_compact(struct hp_jobtab *T);
/* The ids of the jobs that are not final (borrowed; the array is new, *n
 * its length; NULL when there are none). */
char **hp_jobtab_pending(const struct hp_jobtab *T, size_t *n);
/* The ops' capacity() for a site that allows max jobs queued or running
 * at once (scheduler.max_queued_jobs; <= 0: no limit): -1 (no limit now)
 * while fewer than max jobs are not final, else 0. */
long hp_jobtab_capacity(const struct hp_jobtab *T, long max);

/* The ops' status(): add and stamp ids, call poll(ctx, err) when a poll is
 * due, copy the states to out[0..n) and compact. Returns what poll did (0
 * when none was due). */
int hp_jobtab_status(struct hp_jobtab *T, const char *const *ids, size_t n,
                     struct hp_jobstate *out, int (*poll)(void *ctx, struct hp_err *err),
                     void *ctx, struct hp_err *err);
/* Poll within HP_JOBTAB_POLL_MIN seconds (something just changed). */
void hp_jobtab_poll_soon(struct hp_jobtab *T);
/* A poll ended: ok (it worked), changed (some job's state changed); sets
 * when the next one is due. */
void hp_jobtab_polled(struct hp_jobtab *T, int ok, int changed);
/* The ops' wait(): sleep until the next poll is due, at most timeout. */
int hp_jobtab_wait(const struct hp_jobtab *T, double timeout);

/* Remember that token's job is id; live (the job is not final) replaces an
 * id already known for the token. */
void hp_jobtab_tok_add(struct hp_jobtab *T, const char *token, const char *id, int live);
/* The job id known for token (borrowed), or NULL (also for a NULL token). */
const char *hp_jobtab_tok_find(const struct hp_jobtab *T, const char *token);
/* The suspects: add (NULL and a key already there are ignored), index of
 * key or -1, remove the one at index i. */
void hp_jobtab_suspect_add(struct hp_jobtab *T, const char *key);
long hp_jobtab_suspect_find(const struct hp_jobtab *T, const char *key);
void hp_jobtab_suspect_del(struct hp_jobtab *T, long i);

/* Count a job the scheduler accepted; when the environment variable
 * kill_env (a test hook) equals that count, SIGKILL this process: the
 * crash between submission and record that the tokens exist for. */
void hp_jobtab_submitted(struct hp_jobtab *T, const char *kill_env);

/* Whether msg contains one of the strings in pats (NULL-terminated). */
int hp_jobtab_says(const char *msg, const char *const *pats);

#endif
