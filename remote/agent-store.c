/* agent-store.c - the agent's task store (SQLite under DIR): open, add,
 * status, lease, results, requeue. Shared by the agent and its CLI helpers. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "agent-int.h"
#include "util.h"
#include "banned.h"

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS tasks("
    " id INTEGER PRIMARY KEY, name TEXT UNIQUE, spec TEXT NOT NULL,"
    " cores INTEGER NOT NULL DEFAULT 1, gpus INTEGER NOT NULL DEFAULT 0,"
    " nodes INTEGER NOT NULL DEFAULT 1, walltime INTEGER NOT NULL DEFAULT 0,"
    " state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " pilot TEXT, exit INTEGER, signal INTEGER, t_add REAL, t_start REAL, t_end REAL);"
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state, id);"
    /* pilot jobs the agent submitted (agent-pilots.c); state: enum
     * hp_jobstate_kind */
    "CREATE TABLE IF NOT EXISTS pilot_jobs ("
    " n INTEGER PRIMARY KEY, job TEXT, state INTEGER NOT NULL DEFAULT 0,"
    " t_sub REAL, t_end REAL, reason TEXT);";

int hp_store_open(const char *dir, int create, sqlite3 **out, struct hp_err *err)
{
    *out = NULL;
    if (create && hp_mkdir_p(dir, 0700) < 0)
        return hp_err_errno(err, "create agent directory '%s'", dir);
    char *path = hp_path_join(dir, "tasks.db");
    if (!create && access(path, F_OK) < 0) {
        hp_err_set(err, HP_ENOTFOUND, "no agent task store in '%s' (add tasks or start "
                   "'hpcport agent --dir %s' first)", dir, dir);
        free(path);
        return -1;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    free(path);
    if (rc != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "open task store in '%s': %s", dir,
                   db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "task store in '%s': %s", dir, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

int hp_store_exec(sqlite3 *db, const char *sql, struct hp_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "task store: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int int_member(json_t *o, const char *key, int def, int min, long lineno,
                      int *out, struct hp_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1000000)
        return hp_err_set(err, HP_EINPUT, "line %ld: \"%s\" must be an integer >= %d",
                          lineno, key, min);
    *out = (int)json_integer_value(v);
    return 0;
}

/* Check one task line; fill the columns. spec is a new reference. */
static int task_check(json_t *o, long lineno, json_t **spec, int *cores, int *gpus,
                      int *nodes, int *walltime, struct hp_err *err)
{
    static const char *const known[] = { "id", "argv", "sh", "env", "cwd", "stdout", "stderr",
                                         "cores", "gpus", "nodes", "walltime", NULL };
    const char *key;
    json_t *v;
    *spec = NULL;
    if (!json_is_object(o))
        return hp_err_set(err, HP_EINPUT, "line %ld: a task must be a JSON object", lineno);
    json_object_foreach(o, key, v) {
        int found = 0;
        for (size_t i = 0; known[i]; i++)
            found |= strcmp(known[i], key) == 0;
        if (!found)
            return hp_err_set(err, HP_EINPUT, "line %ld: unknown task member \"%s\" (known: id, "
                              "argv, sh, env, cwd, stdout, stderr, cores, gpus, nodes, "
                              "walltime)", lineno, key);
    }
    json_t *argv = json_object_get(o, "argv"), *sh = json_object_get(o, "sh");
    if (!!argv == !!sh)
        return hp_err_set(err, HP_EINPUT, "line %ld: a task needs exactly one of \"argv\" "
                          "(array of strings) or \"sh\" (shell text)", lineno);
    if (argv) {
        size_t i;
        if (!json_is_array(argv) || json_array_size(argv) == 0)
            return hp_err_set(err, HP_EINPUT, "line %ld: \"argv\" must be a non-empty array "
                              "of strings", lineno);
        json_array_foreach(argv, i, v) if (!json_is_string(v))
            return hp_err_set(err, HP_EINPUT, "line %ld: \"argv\" must be a non-empty array "
                              "of strings", lineno);
    }
    if (sh && !json_is_string(sh))
        return hp_err_set(err, HP_EINPUT, "line %ld: \"sh\" must be a string", lineno);
    json_t *env = json_object_get(o, "env");
    if (env) {
        if (!json_is_object(env))
            return hp_err_set(err, HP_EINPUT, "line %ld: \"env\" must be an object of strings",
                              lineno);
        json_object_foreach(env, key, v) if (!json_is_string(v) || !*key || strchr(key, '='))
            return hp_err_set(err, HP_EINPUT, "line %ld: \"env\" must map names (no '=') to "
                              "strings", lineno);
    }
    static const char *const strs[] = { "id", "cwd", "stdout", "stderr" };
    for (size_t i = 0; i < 4; i++) {
        v = json_object_get(o, strs[i]);
        if (v && (!json_is_string(v) || !*json_string_value(v)))
            return hp_err_set(err, HP_EINPUT, "line %ld: \"%s\" must be a non-empty string",
                              lineno, strs[i]);
    }
    if (int_member(o, "cores", 1, 1, lineno, cores, err) < 0 ||
        int_member(o, "gpus", 0, 0, lineno, gpus, err) < 0 ||
        int_member(o, "nodes", 1, 1, lineno, nodes, err) < 0)
        return -1;
    v = json_object_get(o, "walltime");
    *walltime = 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 1 << 30) {
        *walltime = (int)json_integer_value(v);
    } else if (json_is_string(v)) {
        int64_t s = hp_parse_duration(json_string_value(v));
        if (s < 0 || s >= 1 << 30)
            return hp_err_set(err, HP_EINPUT, "line %ld: bad walltime '%s' (e.g. 90, 15m, "
                              "01:30:00)", lineno, json_string_value(v));
        *walltime = (int)s;
    } else if (v) {
        return hp_err_set(err, HP_EINPUT, "line %ld: \"walltime\" must be seconds or a "
                          "duration string", lineno);
    }
    *spec = json_deep_copy(o);
    static const char *const drop[] = { "id", "cores", "gpus", "nodes", "walltime" };
    for (size_t i = 0; i < 5; i++)
        json_object_del(*spec, drop[i]);
    return 0;
}

int hp_agent_add(const char *dir, const char *text, size_t len, int flags, size_t *added,
                 struct hp_err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int ret = -1;
    *added = 0;
    if (hp_store_open(dir, 1, &db, err) < 0)
        return -1;
    if (hp_store_exec(db, "BEGIN IMMEDIATE", err) < 0)
        goto out;
    if (sqlite3_prepare_v2(db, flags & HP_AGENT_ADD_IGNORE_EXISTING
                           ? "INSERT OR IGNORE INTO tasks(name,spec,cores,gpus,nodes,walltime,"
                             "t_add) VALUES(?,?,?,?,?,?,?)"
                           : "INSERT INTO tasks(name,spec,cores,gpus,nodes,walltime,t_add)"
                             " VALUES(?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "task store: %s", sqlite3_errmsg(db));
        goto rollback;
    }
    size_t pos = 0;
    long lineno = 0;
    double now = hp_wall_now();
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        lineno++;
        size_t a = pos;
        pos = end + 1;
        while (a < end && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
            a++;
        if (a == end)
            continue;
        json_error_t je;
        json_t *o = json_loadb(text + a, end - a, 0, &je);
        if (!o) {
            hp_err_set(err, HP_EINPUT, "line %ld: not JSON: %s", lineno, je.text);
            goto rollback;
        }
        json_t *spec;
        int cores, gpus, nodes, walltime;
        if (task_check(o, lineno, &spec, &cores, &gpus, &nodes, &walltime, err) < 0) {
            json_decref(o);
            goto rollback;
        }
        char *s = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        const char *name = json_string_value(json_object_get(o, "id"));
        if (name)
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 1);
        sqlite3_bind_text(st, 2, s, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, cores);
        sqlite3_bind_int(st, 4, gpus);
        sqlite3_bind_int(st, 5, nodes);
        sqlite3_bind_int(st, 6, walltime);
        sqlite3_bind_double(st, 7, now);
        int rc = sqlite3_step(st);
        free(s);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            if (rc == SQLITE_CONSTRAINT)
                hp_err_set(err, HP_EINPUT, "line %ld: task id '%s' is already in the campaign",
                           lineno, name ? name : "?");
            else
                hp_err_set(err, HP_ESTATE, "line %ld: task store: %s", lineno,
                           sqlite3_errmsg(db));
            json_decref(o);
            goto rollback;
        }
        json_decref(o);
        *added += (size_t)sqlite3_changes(db);
    }
    if (hp_store_exec(db, "COMMIT", err) < 0)
        goto rollback;
    ret = 0;
    goto out;
rollback:
    *added = 0;
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ret;
}

static const char *const state_names[] = { "queued", "leased", "done", "failed" };

static json_t *task_row(sqlite3_stmt *st)
{
    json_t *t = json_object();
    json_object_set_new(t, "key", json_integer(sqlite3_column_int64(st, 0)));
    if (sqlite3_column_type(st, 1) != SQLITE_NULL)
        json_object_set_new(t, "id", json_string((const char *)sqlite3_column_text(st, 1)));
    int s = sqlite3_column_int(st, 2);
    json_object_set_new(t, "state", json_string(state_names[s & 3]));
    json_object_set_new(t, "attempts", json_integer(sqlite3_column_int(st, 3)));
    if (sqlite3_column_type(st, 4) != SQLITE_NULL)
        json_object_set_new(t, "pilot", json_string((const char *)sqlite3_column_text(st, 4)));
    if (sqlite3_column_type(st, 5) != SQLITE_NULL)
        json_object_set_new(t, "exit", json_integer(sqlite3_column_int(st, 5)));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL)
        json_object_set_new(t, "signal", json_integer(sqlite3_column_int(st, 6)));
    static const char *const tn[] = { "added", "started", "ended" };
    for (int i = 0; i < 3; i++)
        if (sqlite3_column_type(st, 7 + i) != SQLITE_NULL)
            json_object_set_new(t, tn[i], json_real(sqlite3_column_double(st, 7 + i)));
    return t;
}

/* "pilots": {"queued","running","ended","failed","canceled","error"} of the pilot
 * jobs the agent submitted (agent-pilots.c). */
static json_t *pilot_summary(sqlite3 *db, const char *dir)
{
    json_t *p = json_pack("{s:i,s:i,s:i,s:i,s:i}", "queued", 0, "running", 0, "ended", 0,
                          "failed", 0, "canceled", 0);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT state, count(*) FROM pilot_jobs GROUP BY state", -1, &st,
                       NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int s = sqlite3_column_int(st, 0);   /* enum hp_jobstate_kind */
        const char *k = s <= 1 ? "queued" : s == 2 ? "running" : s == 4 ? "failed"
                        : s == 5 ? "canceled" : "ended";
        json_object_set_new(p, k, json_integer(json_integer_value(json_object_get(p, k)) +
                                               sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    char *path = hp_path_join(dir, "pilots.error"), *text = NULL;
    size_t len = 0;
    if (hp_read_file(path, 4096, &text, &len) == 0 && len) {
        while (len && text[len - 1] == '\n')
            text[--len] = '\0';
        json_object_set_new(p, "error", json_stringn(text, len));
    }
    free(text);
    free(path);
    return p;
}

int hp_agent_status(const char *dir, int tasks, const char *const *names, size_t nnames,
                    json_t **out, struct hp_err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *out = NULL;
    if (hp_store_open(dir, 0, &db, err) < 0)
        return -1;
    json_t *o = json_object();
    for (int i = 0; i < 4; i++)
        json_object_set_new(o, state_names[i], json_integer(0));
    sqlite3_prepare_v2(db, "SELECT state, count(*) FROM tasks GROUP BY state", -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int s = sqlite3_column_int(st, 0);
        if (s >= 0 && s < 4)
            json_object_set_new(o, state_names[s], json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    st = NULL;
    json_object_set_new(o, "running", json_boolean(hp_agent_pid(dir) > 0));
    json_object_set_new(o, "pilots", pilot_summary(db, dir));
    static const char cols[] = "SELECT id,name,state,attempts,pilot,exit,signal,t_add,t_start,"
                               "t_end FROM tasks ";
    if (names) {
        json_t *a = json_array();
        char sql[256];
        snprintf(sql, sizeof(sql), "%sWHERE name=?", cols);
        sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        for (size_t i = 0; st && i < nnames; i++) {
            sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                json_array_append_new(a, task_row(st));
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        json_object_set_new(o, "tasks", a);
    } else if (tasks) {
        json_t *a = json_array();
        char sql[256];
        snprintf(sql, sizeof(sql), "%sORDER BY id", cols);
        sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        while (st && sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, task_row(st));
        sqlite3_finalize(st);
        json_object_set_new(o, "tasks", a);
    }
    sqlite3_close(db);
    *out = o;
    return 0;
}

long hp_agent_pid(const char *dir)
{
    char *path = hp_path_join(dir, "agent.lock");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return 0;
    long pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        char b[32] = { 0 };
        if (read(fd, b, sizeof(b) - 1) > 0)
            pid = strtol(b, NULL, 10);
        if (pid <= 0)
            pid = -1;
    }
    close(fd);
    return pid;
}

int hp_agent_stop(const char *dir, int drain, double timeout, struct hp_err *err)
{
    long pid = hp_agent_pid(dir);
    if (drain) {
        char *p = hp_path_join(dir, "drain");
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        free(p);
        if (fd < 0)
            return hp_err_errno(err, "create the drain mark in '%s'", dir);
        close(fd);
        return 0;
    }
    if (pid == 0)
        return hp_err_set(err, HP_EUNAVAIL, "no agent is running in '%s'", dir);
    if (pid < 0 || kill((pid_t)pid, SIGTERM) < 0)
        return hp_err_set(err, HP_ESYS, "cannot signal the agent of '%s'", dir);
    double end = hp_now() + timeout;
    while (hp_now() < end) {
        if (hp_agent_pid(dir) == 0)
            return 0;
        usleep(20000);
    }
    return hp_err_set(err, HP_ETIMEOUT, "the agent of '%s' (pid %ld) did not stop in %.0f s",
                      dir, pid, timeout);
}

int hp_agent_cancel(const char *dir, const char *const *names, size_t n, size_t *canceled,
                    struct hp_err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *canceled = 0;
    if (hp_store_open(dir, 0, &db, err) < 0)
        return -1;
    int ret = -1;
    if (hp_store_exec(db, "BEGIN IMMEDIATE", err) < 0)
        goto out;
    /* failed by SIGTERM, exit -1 marks a cancel: the agent tells the pilot
     * that holds it (it drops or kills it); its result is refused */
    if (sqlite3_prepare_v2(db, "UPDATE tasks SET state=3, exit=-1, signal=15, t_end=? "
                           "WHERE name=? AND state<2", -1, &st, NULL) !=
        SQLITE_OK) {
        hp_err_set(err, HP_ESTATE, "task store: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    double now = hp_wall_now();
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
        sqlite3_step(st);
        *canceled += (size_t)sqlite3_changes(db);
        sqlite3_reset(st);
    }
    ret = hp_store_exec(db, "COMMIT", err);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ret;
}
