/* state.h - the campaign state store: one SQLite database per campaign.
 *
 * The database lives at <campaign dir>/state.db (see hp_campaign_dir()); the
 * directory is created with mode 0700. It runs in WAL mode with
 * synchronous=NORMAL, so a commit costs no fsync, and with a busy timeout so
 * that `hpcport status` and `hpcport cancel` can work beside a running
 * engine. The schema version is PRAGMA user_version (HP_STATE_VERSION); a
 * newer database is refused, an older one is migrated.
 *
 * Tables (one campaign per database; the campaign column is kept so rows can
 * be merged or exported without losing their origin):
 *   campaigns (id, workflow_path, workflow_name, site, adapter, created,
 *              updated, status, version, nonce)
 *   instances (n, campaign, id, task, state, attempts, fails, exit_code,
 *              signal, timed_out, reason, job_id, submitted, started, ended,
 *              spec_hash)
 *   attempts  (campaign, instance, attempt, token, job_id, state, submitted,
 *              started, ended, exit_code, signal, timed_out, reason,
 *              stdout_path, stderr_path)
 *
 * Writes are cheap only inside a transaction: callers that write many rows
 * (the engine) wrap them in hp_state_begin()/hp_state_commit(). Functions that
 * write outside a transaction run in their own (autocommit).
 *
 * Every function returns 0 on success and -1 with err filled (HP_ESTATE for
 * database errors) unless its comment says otherwise. */
#ifndef HP_STATE_H
#define HP_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define HP_STATE_VERSION 2

/* States of a task instance. The names ("new", "queued", ...) are what the
 * database stores and what `hpcport status` prints. */
enum hp_istate {
    HP_IS_NEW = 0,
    HP_IS_QUEUED,      /* submitted, not yet running */
    HP_IS_ACTIVE,      /* running */
    HP_IS_COMPLETED,
    HP_IS_FAILED,
    HP_IS_CANCELED,
    HP_IS__COUNT
};

const char *hp_istate_name(enum hp_istate s);
/* Parse a state name; -1 if unknown. */
int hp_istate_parse(const char *name);
/* Final states: completed, failed, canceled. */
int hp_istate_final(enum hp_istate s);

struct hp_state;

/* Open <dir>/state.db. With create != 0 the directory (mode 0700) and the
 * database are created as needed; otherwise a missing database is
 * HP_ENOTFOUND. */
struct hp_state *hp_state_open(const char *dir, int create, struct hp_err *err);
void hp_state_close(struct hp_state *st);
/* The database file name (borrowed). */
const char *hp_state_path(const struct hp_state *st);

/* ---- transactions ---- */
int hp_state_begin(struct hp_state *st, struct hp_err *err);
int hp_state_commit(struct hp_state *st, struct hp_err *err);
void hp_state_rollback(struct hp_state *st);
int hp_state_in_tx(const struct hp_state *st);
/* A counter that changes whenever another connection commits (PRAGMA
 * data_version): lets a long-running engine notice `hpcport cancel`. */
int hp_state_data_version(struct hp_state *st, int64_t *out, struct hp_err *err);

/* ---- the campaign row ---- */
struct hp_campaign_info {
    char *id;
    char *workflow_path;   /* may be NULL */
    char *workflow_name;   /* may be NULL */
    char *site;
    char *adapter;         /* may be NULL */
    char *status;          /* "created", "running", "completed", "failed",
                              "canceled", "interrupted" */
    char *version;         /* hpcport version that created it */
    char *nonce;           /* random hex, makes attempt tokens unique */
    double created, updated; /* seconds since the epoch */
};
void hp_campaign_info_release(struct hp_campaign_info *ci);

/* Fill *out with the campaign row. Returns 0, or 1 (err untouched) if the
 * database holds no campaign yet, or -1. */
int hp_state_get_campaign(struct hp_state *st, struct hp_campaign_info *out,
                          struct hp_err *err);
/* Insert the campaign row; created/updated/version/nonce are filled in when
 * zero/NULL. */
int hp_state_create_campaign(struct hp_state *st, const struct hp_campaign_info *ci,
                             struct hp_err *err);
int hp_state_set_status(struct hp_state *st, const char *status, struct hp_err *err);
int hp_state_set_workflow(struct hp_state *st, const char *path, const char *name,
                          struct hp_err *err);

/* ---- instances ---- */
struct hp_inst_row {
    int64_t n;             /* row number, the key for updates */
    char *id;
    char *task;
    enum hp_istate state;
    int attempts;          /* attempts made (numbers 1..attempts are used) */
    int fails;             /* failures counted against `retries` */
    int exit_code;         /* -1 when none */
    int signal;            /* 0 when none */
    int timed_out;
    char *reason;          /* may be NULL */
    char *job_id;          /* job of the current attempt, may be NULL */
    double submitted, started, ended; /* 0 when unknown */
    char *spec_hash;       /* may be NULL */
};
void hp_inst_row_release(struct hp_inst_row *r);

/* Insert an instance in state "new" unless one with that id exists. *n (may
 * be NULL) receives its row number; *inserted (may be NULL) 1 if it was new. */
int hp_state_add_instance(struct hp_state *st, const char *id, const char *task,
                          const char *spec_hash, int64_t *n, int *inserted,
                          struct hp_err *err);
/* Write every field of r except id/task to row r->n. With keep_canceled, a
 * row that another process marked "canceled" is left as it is (*changed = 0). */
int hp_state_update_instance(struct hp_state *st, const struct hp_inst_row *r,
                             int keep_canceled, int *changed, struct hp_err *err);

/* Call fn for every instance (ordered by row number), optionally only those
 * in state (state < 0: all). Rows are borrowed for the call only. fn returns
 * 0 to continue, non-zero to stop (that value is returned). */
typedef int (*hp_inst_fn)(void *ctx, const struct hp_inst_row *r);
int hp_state_each_instance(struct hp_state *st, int state, hp_inst_fn fn, void *ctx,
                           struct hp_err *err);
/* One instance by id: 0 found, 1 not found (err untouched), -1 error. */
int hp_state_get_instance(struct hp_state *st, const char *id, struct hp_inst_row *out,
                          struct hp_err *err);
/* Count instances per state (counts[HP_IS__COUNT]). */
int hp_state_counts(struct hp_state *st, size_t *counts, struct hp_err *err);

/* Mark instances canceled (reason given) unless already final. ids == NULL:
 * every unfinished instance; otherwise the instances with those ids or whose
 * task has that name. *changed (may be NULL) receives the number of rows
 * marked. */
int hp_state_cancel(struct hp_state *st, const char *const *ids, size_t nids,
                    const char *reason, size_t *changed, struct hp_err *err);

/* ---- attempts ---- */
struct hp_attempt_row {
    char *instance;
    int attempt;           /* 1-based */
    char *token;
    char *job_id;          /* NULL until submitted */
    char *state;           /* "submitting", "queued", "active", "completed",
                              "failed", "canceled", "lost" */
    double submitted, started, ended;
    int exit_code;         /* -1 when none */
    int signal;
    int timed_out;
    char *reason;
    char *stdout_path, *stderr_path;
};
void hp_attempt_row_release(struct hp_attempt_row *a);
void hp_attempt_rows_free(struct hp_attempt_row *a, size_t n);

/* Insert or replace the row (instance, attempt). */
int hp_state_put_attempt(struct hp_state *st, const struct hp_attempt_row *a,
                         struct hp_err *err);
/* All attempts of an instance, by attempt number; *out is NULL when none. */
int hp_state_get_attempts(struct hp_state *st, const char *instance,
                          struct hp_attempt_row **out, size_t *n, struct hp_err *err);

/* ---- provenance (what produced the results) ---- */

/* Make record (a JSON text, see core/provenance.h) the provenance of the
 * attempts this handle records from now on: the last row when its ident (the
 * record less what does not tell runs apart) is the same, else a new row.
 * *seq (may be NULL) receives the row number. */
int hp_state_add_provenance(struct hp_state *st, const char *record, const char *ident,
                            int64_t *seq, struct hp_err *err);
/* Call fn for every provenance row, oldest first, with the number of attempts
 * recorded under it; fn returning -1 stops the walk. */
typedef int (*hp_prov_fn)(void *ctx, int64_t seq, double recorded, const char *record,
                          int64_t attempts);
int hp_state_each_provenance(struct hp_state *st, hp_prov_fn fn, void *ctx, struct hp_err *err);

#endif
