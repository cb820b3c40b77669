/* state.c - the campaign state store (SQLite). See state.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include "state.h"
#include "util.h"
#include "banned.h"

static const char *const istate_names[HP_IS__COUNT] = {
    "new", "queued", "active", "completed", "failed", "canceled",
};

const char *hp_istate_name(enum hp_istate s)
{
    return (unsigned)s < HP_IS__COUNT ? istate_names[s] : "?";
}

int hp_istate_parse(const char *name)
{
    for (int i = 0; i < HP_IS__COUNT; i++)
        if (!strcmp(name, istate_names[i]))
            return i;
    return -1;
}

int hp_istate_final(enum hp_istate s)
{
    return s == HP_IS_COMPLETED || s == HP_IS_FAILED || s == HP_IS_CANCELED;
}

enum stmt_id {
    S_ADD_INST,
    S_FIND_INST_N,
    S_UPDATE_INST,
    S_EACH_INST,
    S_EACH_INST_STATE,
    S_GET_INST,
    S_COUNTS,
    S_PUT_ATTEMPT,
    S_GET_ATTEMPTS,
    S_CANCEL_ALL,
    S_CANCEL_ONE,
    S_DATA_VERSION,
    S_LAST_PROV,
    S_ADD_PROV,
    S_EACH_PROV,
    S__COUNT
};

#define INST_COLS "n, id, task, state, attempts, fails, exit_code, signal, timed_out, " \
                  "reason, job_id, submitted, started, ended, spec_hash"

static const char *const stmt_sql[S__COUNT] = {
    [S_ADD_INST] = "INSERT INTO instances (campaign, id, task, spec_hash) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT (campaign, id) DO NOTHING",
    [S_FIND_INST_N] = "SELECT n FROM instances WHERE campaign = ?1 AND id = ?2",
    [S_UPDATE_INST] = "UPDATE instances SET state = ?2, attempts = ?3, fails = ?4, "
                      "exit_code = ?5, signal = ?6, timed_out = ?7, reason = ?8, job_id = ?9, "
                      "submitted = ?10, started = ?11, ended = ?12, spec_hash = coalesce(?13, spec_hash) "
                      "WHERE n = ?1 AND (?14 = 0 OR state <> 'canceled')",
    [S_EACH_INST] = "SELECT " INST_COLS " FROM instances ORDER BY n",
    [S_EACH_INST_STATE] = "SELECT " INST_COLS " FROM instances WHERE state = ?1 ORDER BY n",
    [S_GET_INST] = "SELECT " INST_COLS " FROM instances WHERE id = ?1",
    [S_COUNTS] = "SELECT state, count(*) FROM instances GROUP BY state",
    [S_PUT_ATTEMPT] = "INSERT OR REPLACE INTO attempts (campaign, instance, attempt, token, job_id, "
                      "state, submitted, started, ended, exit_code, signal, timed_out, reason, "
                      "stdout_path, stderr_path, prov) VALUES "
                      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                      /* the provenance of the engine that first recorded the attempt */
                      "coalesce((SELECT prov FROM attempts WHERE campaign = ?1 AND "
                      "instance = ?2 AND attempt = ?3), ?16))",
    [S_GET_ATTEMPTS] = "SELECT instance, attempt, token, job_id, state, submitted, started, ended, "
                       "exit_code, signal, timed_out, reason, stdout_path, stderr_path "
                       "FROM attempts WHERE instance = ?1 ORDER BY attempt",
    [S_CANCEL_ALL] = "UPDATE instances SET state = 'canceled', reason = ?1, "
                     "ended = coalesce(ended, ?2) WHERE state IN ('new', 'queued', 'active')",
    [S_CANCEL_ONE] = "UPDATE instances SET state = 'canceled', reason = ?1, "
                     "ended = coalesce(ended, ?2) WHERE (id = ?3 OR task = ?3) AND "
                     "state IN ('new', 'queued', 'active')",
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_LAST_PROV] = "SELECT seq, ident FROM provenance ORDER BY seq DESC LIMIT 1",
    [S_ADD_PROV] = "INSERT INTO provenance (recorded, ident, record) VALUES (?1, ?2, ?3)",
    [S_EACH_PROV] = "SELECT p.seq, p.recorded, p.record, (SELECT count(*) FROM attempts a "
                    "WHERE a.prov = p.seq) FROM provenance p ORDER BY p.seq",
};

struct hp_state {
    sqlite3 *db;
    char *path;
    char *campaign;        /* id from the campaigns row, "" until known */
    int64_t prov;          /* provenance row of this engine, 0 = none */
    int in_tx;
    sqlite3_stmt *stmt[S__COUNT];
};

static const char schema_v1[] =
    "CREATE TABLE campaigns (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  workflow_path TEXT,\n"
    "  workflow_name TEXT,\n"
    "  site TEXT NOT NULL,\n"
    "  adapter TEXT,\n"
    "  created REAL NOT NULL,\n"
    "  updated REAL,\n"
    "  status TEXT NOT NULL,\n"
    "  version TEXT NOT NULL,\n"
    "  nonce TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE instances (\n"
    "  n INTEGER PRIMARY KEY,\n"
    "  campaign TEXT NOT NULL,\n"
    "  id TEXT NOT NULL,\n"
    "  task TEXT NOT NULL,\n"
    "  state TEXT NOT NULL DEFAULT 'new' CHECK (state IN\n"
    "    ('new', 'queued', 'active', 'completed', 'failed', 'canceled')),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  fails INTEGER NOT NULL DEFAULT 0,\n"
    "  exit_code INTEGER,\n"
    "  signal INTEGER,\n"
    "  timed_out INTEGER NOT NULL DEFAULT 0,\n"
    "  reason TEXT,\n"
    "  job_id TEXT,\n"
    "  submitted REAL,\n"
    "  started REAL,\n"
    "  ended REAL,\n"
    "  spec_hash TEXT,\n"
    "  UNIQUE (campaign, id)\n"
    ");\n"
    "CREATE TABLE attempts (\n"
    "  campaign TEXT NOT NULL,\n"
    "  instance TEXT NOT NULL,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  token TEXT NOT NULL,\n"
    "  job_id TEXT,\n"
    "  state TEXT NOT NULL,\n"
    "  submitted REAL,\n"
    "  started REAL,\n"
    "  ended REAL,\n"
    "  exit_code INTEGER,\n"
    "  signal INTEGER,\n"
    "  timed_out INTEGER NOT NULL DEFAULT 0,\n"
    "  reason TEXT,\n"
    "  stdout_path TEXT,\n"
    "  stderr_path TEXT,\n"
    "  PRIMARY KEY (campaign, instance, attempt)\n"
    ") WITHOUT ROWID;\n";

/* Version 2: what produced the results (hpcport_provenance_*). A record is a
 * JSON object; a new row is added when an engine starts with a record that
 * differs from the last one, and each attempt names the row it ran under. */
static const char schema_v2[] =
    "CREATE TABLE provenance (\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  recorded REAL NOT NULL,\n"
    "  ident TEXT NOT NULL,\n"
    "  record TEXT NOT NULL\n"
    ");\n"
    "ALTER TABLE attempts ADD COLUMN prov INTEGER;\n";

static int db_error(struct hp_state *st, struct hp_err *err, const char *what)
{
    return hp_err_set(err, HP_ESTATE, "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

static int exec_sql(struct hp_state *st, const char *sql, struct hp_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "%s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static sqlite3_stmt *stmt(struct hp_state *st, enum stmt_id id, struct hp_err *err)
{
    if (!st->stmt[id]) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->stmt[id], NULL) != SQLITE_OK) {
            db_error(st, err, "preparing a statement");
            return NULL;
        }
    } else {
        sqlite3_reset(st->stmt[id]);
        sqlite3_clear_bindings(st->stmt[id]);
    }
    return st->stmt[id];
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void bind_time(sqlite3_stmt *s, int i, double t)
{
    if (t > 0)
        sqlite3_bind_double(s, i, t);
    else
        sqlite3_bind_null(s, i);
}

static char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? hp_xstrdup((const char *)t) : NULL;
}

static int col_int(sqlite3_stmt *s, int i, int dflt)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? dflt : sqlite3_column_int(s, i);
}

/* Run a statement that returns no rows. */
static int step_done(struct hp_state *st, sqlite3_stmt *s, struct hp_err *err,
                     const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_error(st, err, what);
    return 0;
}

static int get_user_version(struct hp_state *st, int *v, struct hp_err *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "reading the schema version");
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return db_error(st, err, "reading the schema version");
    return 0;
}

static int setup_schema(struct hp_state *st, int create, struct hp_err *err)
{
    int v;
    if (get_user_version(st, &v, err) < 0)
        return -1;
    if (v == HP_STATE_VERSION)
        return 0;
    if (v > HP_STATE_VERSION)
        return hp_err_set(err, HP_ESTATE,
                          "%s has schema version %d, newer than this hpcport supports (%d); "
                          "use a newer hpcport", st->path, v, HP_STATE_VERSION);
    if (!create && v == 0)
        return hp_err_set(err, HP_ESTATE, "%s holds no campaign state", st->path);
    /* IMMEDIATE: two processes creating the same campaign do not both create
     * the tables. */
    if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if (get_user_version(st, &v, err) < 0)
        goto fail;
    if (v == 0 && exec_sql(st, schema_v1, err) < 0)
        goto fail;
    /* Migrations from older versions, one step per version; a campaign made
     * by an older hpcport is upgraded by the first command that opens it. */
    if (v < 2 && exec_sql(st, schema_v2, err) < 0)
        goto fail;
    if (v < HP_STATE_VERSION) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", HP_STATE_VERSION);
        if (exec_sql(st, pragma, err) < 0)
            goto fail;
    }
    return exec_sql(st, "COMMIT", err);
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int load_campaign_id(struct hp_state *st, struct hp_err *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "SELECT id FROM campaigns LIMIT 1", -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "reading the campaign");
    int rc = sqlite3_step(s);
    free(st->campaign);
    st->campaign = hp_xstrdup(rc == SQLITE_ROW && sqlite3_column_text(s, 0)
                              ? (const char *)sqlite3_column_text(s, 0) : "");
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(st, err, "reading the campaign");
    return 0;
}

struct hp_state *hp_state_open(const char *dir, int create, struct hp_err *err)
{
    struct hp_state *st = hp_xcalloc(1, sizeof(*st));
    st->path = hp_path_join(dir, "state.db");
    st->campaign = hp_xstrdup("");
    struct stat sb;

    if (create) {
        if (hp_mkdir_p(dir, 0700) < 0) {
            hp_err_errno(err, "cannot create %s", dir);
            goto fail;
        }
    } else if (stat(st->path, &sb) < 0) {
        if (errno == ENOENT)
            hp_err_set(err, HP_ENOTFOUND, "no campaign state at %s", st->path);
        else
            hp_err_errno(err, "%s", st->path);
        goto fail;
    }
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(st->path, &st->db, flags, NULL) != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "cannot open %s: %s", st->path,
                   st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 10000);
    if (exec_sql(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                     "PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY", err) < 0)
        goto fail;
    if (setup_schema(st, create, err) < 0)
        goto fail;
    if (load_campaign_id(st, err) < 0)
        goto fail;
    return st;
fail:
    hp_state_close(st);
    return NULL;
}

void hp_state_close(struct hp_state *st)
{
    if (!st)
        return;
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->db) {
        if (st->in_tx)
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(st->db);
    }
    free(st->path);
    free(st->campaign);
    free(st);
}

const char *hp_state_path(const struct hp_state *st)
{
    return st->path;
}

int hp_state_begin(struct hp_state *st, struct hp_err *err)
{
    if (st->in_tx)
        return 0;
    /* IMMEDIATE takes the write lock now, so a busy database is met here
     * (and waited for) rather than half-way through a batch. */
    if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    st->in_tx = 1;
    return 0;
}

int hp_state_commit(struct hp_state *st, struct hp_err *err)
{
    if (!st->in_tx)
        return 0;
    if (exec_sql(st, "COMMIT", err) < 0) {
        hp_state_rollback(st);
        return -1;
    }
    st->in_tx = 0;
    return 0;
}

void hp_state_rollback(struct hp_state *st)
{
    if (!st->in_tx)
        return;
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->in_tx = 0;
}

int hp_state_in_tx(const struct hp_state *st)
{
    return st->in_tx;
}

int hp_state_data_version(struct hp_state *st, int64_t *out, struct hp_err *err)
{
    /* sqlite3_file_control(SQLITE_FCNTL_DATA_VERSION) would also count our
     * own commits; the pragma counts only other connections'. */
    sqlite3_stmt *s = stmt(st, S_DATA_VERSION, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return db_error(st, err, "reading the data version");
    *out = v;
    return 0;
}

/* ---- campaign ---- */

void hp_campaign_info_release(struct hp_campaign_info *ci)
{
    if (!ci)
        return;
    free(ci->id);
    free(ci->workflow_path);
    free(ci->workflow_name);
    free(ci->site);
    free(ci->adapter);
    free(ci->status);
    free(ci->version);
    free(ci->nonce);
    memset(ci, 0, sizeof(*ci));
}

int hp_state_get_campaign(struct hp_state *st, struct hp_campaign_info *out,
                          struct hp_err *err)
{
    sqlite3_stmt *s;
    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id, workflow_path, workflow_name, site, adapter, status, "
                           "version, nonce, created, updated FROM campaigns LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "reading the campaign");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = col_text(s, 0);
        out->workflow_path = col_text(s, 1);
        out->workflow_name = col_text(s, 2);
        out->site = col_text(s, 3);
        out->adapter = col_text(s, 4);
        out->status = col_text(s, 5);
        out->version = col_text(s, 6);
        out->nonce = col_text(s, 7);
        out->created = sqlite3_column_double(s, 8);
        out->updated = sqlite3_column_double(s, 9);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE)
        return 1;
    if (rc != SQLITE_ROW)
        return db_error(st, err, "reading the campaign");
    return 0;
}

int hp_state_create_campaign(struct hp_state *st, const struct hp_campaign_info *ci,
                             struct hp_err *err)
{
    sqlite3_stmt *s;
    char nonce[17];
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* Not secret, only unique: time and pid will do. */
        uint64_t x = (uint64_t)(hp_wall_now() * 1e6) ^ ((uint64_t)getpid() << 40);
        memcpy(rnd, &x, sizeof(rnd));
    }
    for (int i = 0; i < 8; i++)
        snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
    double now = hp_wall_now();
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO campaigns (id, workflow_path, workflow_name, site, adapter, "
                           "created, updated, status, version, nonce) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "creating the campaign");
    bind_text(s, 1, ci->id);
    bind_text(s, 2, ci->workflow_path);
    bind_text(s, 3, ci->workflow_name);
    bind_text(s, 4, ci->site);
    bind_text(s, 5, ci->adapter);
    sqlite3_bind_double(s, 6, ci->created > 0 ? ci->created : now);
    sqlite3_bind_double(s, 7, ci->updated > 0 ? ci->updated : now);
    bind_text(s, 8, ci->status ? ci->status : "created");
    bind_text(s, 9, ci->version ? ci->version : HP_VERSION);
    bind_text(s, 10, ci->nonce ? ci->nonce : nonce);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
            return hp_err_set(err, HP_ESTATE, "%s: campaign '%s' exists already", st->path,
                              ci->id);
        return db_error(st, err, "creating the campaign");
    }
    free(st->campaign);
    st->campaign = hp_xstrdup(ci->id);
    return 0;
}

int hp_state_set_status(struct hp_state *st, const char *status, struct hp_err *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "UPDATE campaigns SET status = ?1, updated = ?2", -1, &s,
                           NULL) != SQLITE_OK)
        return db_error(st, err, "updating the campaign");
    bind_text(s, 1, status);
    sqlite3_bind_double(s, 2, hp_wall_now());
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return db_error(st, err, "updating the campaign");
    return 0;
}

int hp_state_set_workflow(struct hp_state *st, const char *path, const char *name,
                          struct hp_err *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db,
                           "UPDATE campaigns SET workflow_path = coalesce(?1, workflow_path), "
                           "workflow_name = coalesce(?2, workflow_name), updated = ?3",
                           -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "updating the campaign");
    bind_text(s, 1, path);
    bind_text(s, 2, name);
    sqlite3_bind_double(s, 3, hp_wall_now());
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return db_error(st, err, "updating the campaign");
    return 0;
}

/* ---- instances ---- */

void hp_inst_row_release(struct hp_inst_row *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->task);
    free(r->reason);
    free(r->job_id);
    free(r->spec_hash);
    memset(r, 0, sizeof(*r));
}

int hp_state_add_instance(struct hp_state *st, const char *id, const char *task,
                          const char *spec_hash, int64_t *n, int *inserted,
                          struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_ADD_INST, err);
    if (!s)
        return -1;
    bind_text(s, 1, st->campaign);
    bind_text(s, 2, id);
    bind_text(s, 3, task);
    bind_text(s, 4, spec_hash);
    if (step_done(st, s, err, "adding an instance") < 0)
        return -1;
    int ins = sqlite3_changes(st->db) > 0;
    if (inserted)
        *inserted = ins;
    if (!n)
        return 0;
    if (ins) {
        *n = sqlite3_last_insert_rowid(st->db);
        return 0;
    }
    s = stmt(st, S_FIND_INST_N, err);
    if (!s)
        return -1;
    bind_text(s, 1, st->campaign);
    bind_text(s, 2, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return db_error(st, err, "finding an instance");
    return 0;
}

int hp_state_update_instance(struct hp_state *st, const struct hp_inst_row *r,
                             int keep_canceled, int *changed, struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_UPDATE_INST, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, r->n);
    bind_text(s, 2, hp_istate_name(r->state));
    sqlite3_bind_int(s, 3, r->attempts);
    sqlite3_bind_int(s, 4, r->fails);
    if (r->exit_code >= 0)
        sqlite3_bind_int(s, 5, r->exit_code);
    else
        sqlite3_bind_null(s, 5);
    if (r->signal > 0)
        sqlite3_bind_int(s, 6, r->signal);
    else
        sqlite3_bind_null(s, 6);
    sqlite3_bind_int(s, 7, r->timed_out ? 1 : 0);
    bind_text(s, 8, r->reason);
    bind_text(s, 9, r->job_id);
    bind_time(s, 10, r->submitted);
    bind_time(s, 11, r->started);
    bind_time(s, 12, r->ended);
    bind_text(s, 13, r->spec_hash);
    sqlite3_bind_int(s, 14, keep_canceled ? 1 : 0);
    if (step_done(st, s, err, "updating an instance") < 0)
        return -1;
    if (changed)
        *changed = sqlite3_changes(st->db) > 0;
    return 0;
}

static void read_inst_row(sqlite3_stmt *s, struct hp_inst_row *r)
{
    /* Borrowed pointers into the statement's row: valid until the next step. */
    const char *state = (const char *)sqlite3_column_text(s, 3);
    int st = state ? hp_istate_parse(state) : 0;
    r->n = sqlite3_column_int64(s, 0);
    r->id = (char *)sqlite3_column_text(s, 1);
    r->task = (char *)sqlite3_column_text(s, 2);
    r->state = st < 0 ? HP_IS_NEW : (enum hp_istate)st;
    r->attempts = col_int(s, 4, 0);
    r->fails = col_int(s, 5, 0);
    r->exit_code = col_int(s, 6, -1);
    r->signal = col_int(s, 7, 0);
    r->timed_out = col_int(s, 8, 0);
    r->reason = (char *)sqlite3_column_text(s, 9);
    r->job_id = (char *)sqlite3_column_text(s, 10);
    r->submitted = sqlite3_column_double(s, 11);
    r->started = sqlite3_column_double(s, 12);
    r->ended = sqlite3_column_double(s, 13);
    r->spec_hash = (char *)sqlite3_column_text(s, 14);
}

int hp_state_each_instance(struct hp_state *st, int state, hp_inst_fn fn, void *ctx,
                           struct hp_err *err)
{
    /* A private statement: fn may call back into the store. */
    sqlite3_stmt *s;
    const char *sql = stmt_sql[state >= 0 ? S_EACH_INST_STATE : S_EACH_INST];
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_error(st, err, "reading instances");
    if (state >= 0)
        bind_text(s, 1, hp_istate_name((enum hp_istate)state));
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct hp_inst_row r;
        read_inst_row(s, &r);
        ret = fn(ctx, &r);
        if (ret)
            break;
    }
    if (!ret && rc != SQLITE_DONE)
        ret = db_error(st, err, "reading instances");
    sqlite3_finalize(s);
    return ret;
}

int hp_state_get_instance(struct hp_state *st, const char *id, struct hp_inst_row *out,
                          struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_GET_INST, err);
    memset(out, 0, sizeof(*out));
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        struct hp_inst_row r;
        read_inst_row(s, &r);
        *out = r;
        out->id = r.id ? hp_xstrdup(r.id) : NULL;
        out->task = r.task ? hp_xstrdup(r.task) : NULL;
        out->reason = r.reason ? hp_xstrdup(r.reason) : NULL;
        out->job_id = r.job_id ? hp_xstrdup(r.job_id) : NULL;
        out->spec_hash = r.spec_hash ? hp_xstrdup(r.spec_hash) : NULL;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return 1;
    if (rc != SQLITE_ROW)
        return db_error(st, err, "reading an instance");
    return 0;
}

int hp_state_counts(struct hp_state *st, size_t *counts, struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_COUNTS, err);
    if (!s)
        return -1;
    for (int i = 0; i < HP_IS__COUNT; i++)
        counts[i] = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        int k = name ? hp_istate_parse(name) : -1;
        if (k >= 0)
            counts[k] += (size_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_error(st, err, "counting instances");
    return 0;
}

int hp_state_cancel(struct hp_state *st, const char *const *ids, size_t nids,
                    const char *reason, size_t *changed, struct hp_err *err)
{
    size_t total = 0;
    int own_tx = !st->in_tx;
    double now = hp_wall_now();
    if (own_tx && hp_state_begin(st, err) < 0)
        return -1;
    if (!ids) {
        sqlite3_stmt *s = stmt(st, S_CANCEL_ALL, err);
        if (!s)
            goto fail;
        bind_text(s, 1, reason);
        sqlite3_bind_double(s, 2, now);
        if (step_done(st, s, err, "canceling") < 0)
            goto fail;
        total = (size_t)sqlite3_changes(st->db);
    } else {
        for (size_t i = 0; i < nids; i++) {
            sqlite3_stmt *s = stmt(st, S_CANCEL_ONE, err);
            if (!s)
                goto fail;
            bind_text(s, 1, reason);
            sqlite3_bind_double(s, 2, now);
            bind_text(s, 3, ids[i]);
            if (step_done(st, s, err, "canceling") < 0)
                goto fail;
            total += (size_t)sqlite3_changes(st->db);
        }
    }
    if (own_tx && hp_state_commit(st, err) < 0)
        return -1;
    if (changed)
        *changed = total;
    return 0;
fail:
    if (own_tx)
        hp_state_rollback(st);
    return -1;
}

/* ---- attempts ---- */

void hp_attempt_row_release(struct hp_attempt_row *a)
{
    if (!a)
        return;
    free(a->instance);
    free(a->token);
    free(a->job_id);
    free(a->state);
    free(a->reason);
    free(a->stdout_path);
    free(a->stderr_path);
    memset(a, 0, sizeof(*a));
}

void hp_attempt_rows_free(struct hp_attempt_row *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        hp_attempt_row_release(&a[i]);
    free(a);
}

int hp_state_put_attempt(struct hp_state *st, const struct hp_attempt_row *a,
                         struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_PUT_ATTEMPT, err);
    if (!s)
        return -1;
    bind_text(s, 1, st->campaign);
    bind_text(s, 2, a->instance);
    sqlite3_bind_int(s, 3, a->attempt);
    bind_text(s, 4, a->token ? a->token : "");
    bind_text(s, 5, a->job_id);
    bind_text(s, 6, a->state ? a->state : "submitting");
    bind_time(s, 7, a->submitted);
    bind_time(s, 8, a->started);
    bind_time(s, 9, a->ended);
    if (a->exit_code >= 0)
        sqlite3_bind_int(s, 10, a->exit_code);
    else
        sqlite3_bind_null(s, 10);
    if (a->signal > 0)
        sqlite3_bind_int(s, 11, a->signal);
    else
        sqlite3_bind_null(s, 11);
    sqlite3_bind_int(s, 12, a->timed_out ? 1 : 0);
    bind_text(s, 13, a->reason);
    bind_text(s, 14, a->stdout_path);
    bind_text(s, 15, a->stderr_path);
    if (st->prov > 0)
        sqlite3_bind_int64(s, 16, st->prov);
    else
        sqlite3_bind_null(s, 16);
    return step_done(st, s, err, "recording an attempt");
}

int hp_state_get_attempts(struct hp_state *st, const char *instance,
                          struct hp_attempt_row **out, size_t *n, struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_GET_ATTEMPTS, err);
    struct hp_attempt_row *v = NULL;
    size_t len = 0, alloc = 0;
    *out = NULL;
    *n = 0;
    if (!s)
        return -1;
    bind_text(s, 1, instance);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        HP_ALLOC_GROW(v, len + 1, alloc);
        struct hp_attempt_row *a = &v[len++];
        a->instance = col_text(s, 0);
        a->attempt = sqlite3_column_int(s, 1);
        a->token = col_text(s, 2);
        a->job_id = col_text(s, 3);
        a->state = col_text(s, 4);
        a->submitted = sqlite3_column_double(s, 5);
        a->started = sqlite3_column_double(s, 6);
        a->ended = sqlite3_column_double(s, 7);
        a->exit_code = col_int(s, 8, -1);
        a->signal = col_int(s, 9, 0);
        a->timed_out = col_int(s, 10, 0);
        a->reason = col_text(s, 11);
        a->stdout_path = col_text(s, 12);
        a->stderr_path = col_text(s, 13);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        hp_attempt_rows_free(v, len);
        return db_error(st, err, "reading attempts");
    }
    *out = v;
    *n = len;
    return 0;
}

int hp_state_add_provenance(struct hp_state *st, const char *record, const char *ident,
                            int64_t *seq, struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_LAST_PROV, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 1) &&
        !strcmp((const char *)sqlite3_column_text(s, 1), ident)) {
        st->prov = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (seq)
            *seq = st->prov;
        return 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(st, err, "reading the provenance");
    if (!(s = stmt(st, S_ADD_PROV, err)))
        return -1;
    sqlite3_bind_double(s, 1, hp_wall_now());
    bind_text(s, 2, ident);
    bind_text(s, 3, record);
    if (step_done(st, s, err, "recording the provenance") < 0)
        return -1;
    st->prov = sqlite3_last_insert_rowid(st->db);
    if (seq)
        *seq = st->prov;
    return 0;
}

int hp_state_each_provenance(struct hp_state *st, hp_prov_fn fn, void *ctx, struct hp_err *err)
{
    sqlite3_stmt *s = stmt(st, S_EACH_PROV, err);
    if (!s)
        return -1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *rec = sqlite3_column_text(s, 2);
        if (fn(ctx, sqlite3_column_int64(s, 0), sqlite3_column_double(s, 1),
               rec ? (const char *)rec : "{}", sqlite3_column_int64(s, 3)) < 0)
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(st, err, "reading the provenance");
    return 0;
}
