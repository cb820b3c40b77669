/* slurm-parse.c - Slurm's states and outputs, parsed. Pure; see slurm-int.h. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "slurm-int.h"
#include "util.h"
#include "banned.h"

struct state_info {
    const char *name;
    enum hp_jobstate_kind kind;
    const char *why;       /* for final failures: what it means */
};

/* Every job state of Slurm 22.05-24.11 (slurm.h: JOB_* and the flags squeue
 * prints as states). Unknown names are treated as queued: a job in a state
 * we do not know is still the scheduler's, and waiting is safer than
 * running it again. */
static const struct state_info states[] = {
    { "PENDING", HP_JOB_QUEUED, NULL },
    { "CONFIGURING", HP_JOB_QUEUED, NULL },     /* allocated, nodes booting */
    { "POWER_UP_NODE", HP_JOB_QUEUED, NULL },
    { "REQUEUED", HP_JOB_QUEUED, NULL },
    { "REQUEUE_HOLD", HP_JOB_QUEUED, NULL },
    { "REQUEUE_FED", HP_JOB_QUEUED, NULL },
    { "RESV_DEL_HOLD", HP_JOB_QUEUED, NULL },
    { "PLANNED", HP_JOB_QUEUED, NULL },
    { "RUNNING", HP_JOB_ACTIVE, NULL },
    { "COMPLETING", HP_JOB_ACTIVE, NULL },      /* ended; nodes cleaning up */
    { "SUSPENDED", HP_JOB_ACTIVE, NULL },
    { "STOPPED", HP_JOB_ACTIVE, NULL },
    { "RESIZING", HP_JOB_ACTIVE, NULL },
    { "SIGNALING", HP_JOB_ACTIVE, NULL },
    { "STAGE_OUT", HP_JOB_ACTIVE, NULL },
    { "UPDATE_DB", HP_JOB_ACTIVE, NULL },
    { "COMPLETED", HP_JOB_COMPLETED, NULL },
    { "FAILED", HP_JOB_FAILED, NULL },
    { "TIMEOUT", HP_JOB_FAILED, NULL },
    { "OUT_OF_MEMORY", HP_JOB_FAILED, "the job exceeded its memory limit" },
    { "NODE_FAIL", HP_JOB_FAILED, "a node allocated to the job failed" },
    { "BOOT_FAIL", HP_JOB_FAILED, "its nodes failed to boot" },
    { "PREEMPTED", HP_JOB_FAILED, "a job of higher priority took its nodes" },
    { "DEADLINE", HP_JOB_FAILED, "it could not end before its deadline" },
    { "SPECIAL_EXIT", HP_JOB_FAILED,
      "requeued and held by the site after a special exit; 'scontrol show job' tells more" },
    { "REVOKED", HP_JOB_FAILED, "federation: a sibling job started on another cluster" },
    { "CANCELLED", HP_JOB_CANCELED, NULL },
};

static const struct state_info *state_find(const char *name)
{
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if (!strcmp(states[i].name, name))
            return &states[i];
    return NULL;
}

int slurm_state_final(const char *state)
{
    const struct state_info *s = state_find(state);
    return s && (s->kind == HP_JOB_COMPLETED || s->kind == HP_JOB_FAILED ||
                 s->kind == HP_JOB_CANCELED);
}

void slurm_map_state(const struct slurm_rec *rec, struct hp_jobstate *out)
{
    const struct state_info *s = state_find(rec->state);
    char lim[32];
    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    if (!s) {
        out->state = HP_JOB_QUEUED;
        snprintf(out->reason, sizeof(out->reason), "Slurm state '%.60s'", rec->state);
        return;
    }
    out->state = s->kind;
    if (rec->have_exit) {
        out->exit_code = rec->signal ? -1 : rec->exit_code;
        out->signal = rec->signal;
    }
    int informative = rec->reason[0] && strcmp(rec->reason, "None");
    switch (s->kind) {
    case HP_JOB_QUEUED:
    case HP_JOB_ACTIVE:
        out->exit_code = -1;
        out->signal = 0;
        if (informative || (strcmp(rec->state, "PENDING") && strcmp(rec->state, "RUNNING")))
            snprintf(out->reason, sizeof(out->reason), "%s%s%.90s%s", rec->state,
                     informative ? " (" : "", informative ? rec->reason : "",
                     informative ? ")" : "");
        break;
    case HP_JOB_COMPLETED:
        out->exit_code = 0;
        out->signal = 0;
        break;
    case HP_JOB_CANCELED:
        if (rec->cancel_uid >= 0)
            snprintf(out->reason, sizeof(out->reason), "CANCELLED by uid %ld", rec->cancel_uid);
        else
            snprintf(out->reason, sizeof(out->reason), "CANCELLED");
        break;
    default:
        if (!strcmp(rec->state, "TIMEOUT")) {
            out->timed_out = 1;
            if (rec->limit > 0) {
                hp_format_duration(rec->limit, lim, sizeof(lim));
                snprintf(out->reason, sizeof(out->reason), "TIMEOUT (walltime %s)", lim);
            } else {
                snprintf(out->reason, sizeof(out->reason), "TIMEOUT (walltime reached)");
            }
        } else if (s->why) {
            /* not the task's doing: its exit status, if any, means nothing
             * (DEADLINE reports "exit" 1) */
            out->exit_code = -1;
            out->signal = 0;
            snprintf(out->reason, sizeof(out->reason), "%s (%s)", s->name, s->why);
        } else if (rec->have_exit && rec->signal) {
            const char *abbr = sigabbrev_np(rec->signal);
            snprintf(out->reason, sizeof(out->reason), "killed by signal %d (%s)", rec->signal,
                     abbr ? abbr : "?");
        } else if (rec->have_exit && rec->exit_code) {
            snprintf(out->reason, sizeof(out->reason), "exit code %d", rec->exit_code);
        } else {
            /* FAILED with exit 0: sacct --json of 22.05 loses the code */
            snprintf(out->reason, sizeof(out->reason), "FAILED (%.80s)",
                     informative ? rec->reason : "exit code unknown");
        }
        break;
    }
}

int64_t slurm_parse_limit(const char *s)
{
    long v[4];
    int n = 0;
    long days = 0;
    const char *p = s;
    if (!s || !*s)
        return 0;
    if (!strcmp(s, "UNLIMITED") || !strcmp(s, "INFINITE"))
        return -1;
    const char *dash = strchr(s, '-');
    if (dash) {
        char *end;
        days = strtol(s, &end, 10);
        if (end != dash || days < 0)
            return 0;
        p = dash + 1;
    }
    while (*p && n < 4) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return 0;
        v[n++] = strtol(p, &end, 10);
        p = end;
        if (*p == ':')
            p++;
        else if (*p)
            return 0;
    }
    if (*p || n == 0 || n > 3)
        return 0;
    int64_t secs;
    if (dash) /* D-HH, D-HH:MM, D-HH:MM:SS */
        secs = v[0] * 3600 + (n > 1 ? v[1] * 60 : 0) + (n > 2 ? v[2] : 0);
    else if (n == 1) /* MM */
        secs = v[0] * 60;
    else if (n == 2) /* MM:SS */
        secs = v[0] * 60 + v[1];
    else /* HH:MM:SS */
        secs = v[0] * 3600 + v[1] * 60 + v[2];
    return secs + days * 86400;
}

int slurm_parse_version(const char *s, int *major, int *minor)
{
    int a, b;
    if (!s)
        return -1;
    while (*s && !isdigit((unsigned char)*s))
        s++;
    if (sscanf(s, "%d.%d", &a, &b) != 2)
        return -1;
    *major = a;
    *minor = b;
    return 0;
}

/* Split line at '|' into at most max fields (the last keeps the rest). */
static size_t split(char *line, char **f, size_t max)
{
    size_t n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '|') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static int numeric_id(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static struct slurm_rec *rec_new(struct slurm_rec **recs, size_t *n, size_t *alloc)
{
    HP_ALLOC_GROW(*recs, *n + 1, *alloc);
    struct slurm_rec *r = &(*recs)[(*n)++];
    memset(r, 0, sizeof(*r));
    r->cancel_uid = -1;
    return r;
}

/* "CANCELLED by 1234" -> state and uid */
static void set_state(struct slurm_rec *r, const char *s)
{
    const char *by = strstr(s, " by ");
    if (by) {
        snprintf(r->state, sizeof(r->state), "%.*s", (int)(by - s), s);
        char *end;
        long uid = strtol(by + 4, &end, 10);
        if (end != by + 4)
            r->cancel_uid = uid;
    } else {
        copy(r->state, sizeof(r->state), s);
    }
}

static void set_raw_status(struct slurm_rec *r, long raw)
{
    if (raw < 0)
        return;
    r->have_exit = 1;
    if (raw & 0x7f) {
        r->signal = (int)(raw & 0x7f);
        r->exit_code = 0;
    } else {
        r->exit_code = (int)((raw >> 8) & 0xff);
        r->signal = 0;
    }
}

/* The next line of *cur (a writable copy), NUL-terminated without its
 * '\r\n'; NULL at the end. */
static char *next_line(char **cur)
{
    char *line = *cur;
    if (!line || !*line)
        return NULL;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cur = nl + 1;
    } else {
        *cur = NULL;
    }
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r')
        line[l - 1] = '\0';
    return line;
}

int slurm_parse_squeue_text(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc)
{
    char *copy_ = hp_xstrdup(text), *cur_ = copy_, *line;
    while ((line = next_line(&cur_))) {
        char *f[6];
        if (split(line, f, 6) < 5 || !numeric_id(f[0]))
            continue;
        struct slurm_rec *r = rec_new(recs, n, alloc);
        copy(r->id, sizeof(r->id), f[0]);
        set_state(r, f[1]);
        if (*f[2]) {
            char *end;
            long raw = strtol(f[2], &end, 10);
            if (!*end)
                set_raw_status(r, raw);
        }
        r->limit = slurm_parse_limit(f[3]);
        copy(r->reason, sizeof(r->reason), f[4]);
    }
    free(copy_);
    return 0;
}

int slurm_parse_sacct_text(const char *text, struct slurm_rec **recs, size_t *n, size_t *alloc)
{
    char *copy_ = hp_xstrdup(text), *cur_ = copy_, *line;
    while ((line = next_line(&cur_))) {
        char *f[6];
        if (split(line, f, 6) < 6 || !numeric_id(f[0]))
            continue;
        struct slurm_rec *r = rec_new(recs, n, alloc);
        copy(r->id, sizeof(r->id), f[0]);
        set_state(r, f[1]);
        int code, sig;
        if (sscanf(f[2], "%d:%d", &code, &sig) == 2) {
            r->have_exit = 1;
            r->exit_code = code;
            r->signal = sig;
        }
        r->limit = slurm_parse_limit(f[3]);
        copy(r->reason, sizeof(r->reason), f[4]);
        copy(r->name, sizeof(r->name), f[5]);
    }
    free(copy_);
    return 0;
}

int slurm_parse_lookup_text(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc)
{
    char *copy_ = hp_xstrdup(text), *cur_ = copy_, *line;
    while ((line = next_line(&cur_))) {
        char *f[3];
        if (split(line, f, 3) < 3 || !numeric_id(f[0]))
            continue;
        struct slurm_rec *r = rec_new(recs, n, alloc);
        copy(r->id, sizeof(r->id), f[0]);
        set_state(r, f[1]);
        size_t l = strlen(f[2]);
        if (l && f[2][l - 1] == '|')   /* -O appends the suffix after the name */
            f[2][l - 1] = '\0';
        copy(r->name, sizeof(r->name), f[2]);
    }
    free(copy_);
    return 0;
}

/* ---- JSON ---- */

/* A number: plain, or {"set": b, "infinite": b, "number": n} (23.x on).
 * 1 with *out, -1 infinite, 0 not set. */
static int jnum(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        *out = (long long)json_real_value(v);
        return 1;
    }
    if (json_is_object(v)) {
        if (json_is_true(json_object_get(v, "infinite")))
            return -1;
        const json_t *set = json_object_get(v, "set");
        if (set && !json_is_true(set))
            return 0;
        return jnum(json_object_get(v, "number"), out);
    }
    return 0;
}

/* A state: "RUNNING", or ["RUNNING", ...] (23.x on: the base state first). */
static const char *jstate(const json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_array(v) && json_array_size(v))
        return json_string_value(json_array_get(v, 0));
    return NULL;
}

static void jlimit(struct slurm_rec *r, const json_t *v)
{
    long long m;
    int k = jnum(v, &m);
    /* 22.05 prints NO_VAL (4294967294) and INFINITE (4294967295) raw */
    if (k < 0 || (k > 0 && m >= 4294967294LL))
        r->limit = -1;
    else if (k > 0)
        r->limit = (int64_t)m * 60;
}

static json_t *jload(const char *text, const char *what, struct hp_err *err)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_DECODE_ANY, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        hp_err_set(err, HP_ESITE, "%s printed no JSON document (%s at line %d)", what,
                   je.text, je.line);
        return NULL;
    }
    if (!json_is_array(json_object_get(root, "jobs"))) {
        json_decref(root);
        hp_err_set(err, HP_ESITE, "%s --json printed no \"jobs\" list", what);
        return NULL;
    }
    return root;
}

int slurm_parse_squeue_json(const char *text, struct slurm_rec **recs, size_t *n,
                            size_t *alloc, struct hp_err *err)
{
    json_t *root = jload(text, "squeue", err), *job;
    size_t i;
    if (!root)
        return -1;
    json_array_foreach(json_object_get(root, "jobs"), i, job) {
        long long id, raw;
        const char *st = jstate(json_object_get(job, "job_state"));
        if (jnum(json_object_get(job, "job_id"), &id) != 1 || !st)
            continue;
        struct slurm_rec *r = rec_new(recs, n, alloc);
        snprintf(r->id, sizeof(r->id), "%lld", id);
        set_state(r, st);
        const json_t *ec = json_object_get(job, "exit_code");
        if (json_is_object(ec)) {
            /* 23.x: {"status": [...], "return_code": N, "signal": {"id": N}} */
            long long code = 0, sig = 0;
            int hc = jnum(json_object_get(ec, "return_code"), &code) == 1;
            int hs = jnum(json_object_get(json_object_get(ec, "signal"), "id"), &sig) == 1;
            if (hc || hs) {
                r->have_exit = 1;
                r->exit_code = hs && sig ? 0 : (int)code;
                r->signal = hs ? (int)sig : 0;
            }
        } else if (jnum(ec, &raw) == 1) {
            set_raw_status(r, (long)raw);
        }
        jlimit(r, json_object_get(job, "time_limit"));
        copy(r->reason, sizeof(r->reason), json_string_value(json_object_get(job, "state_reason")));
        copy(r->name, sizeof(r->name), json_string_value(json_object_get(job, "name")));
    }
    json_decref(root);
    return 0;
}

int slurm_parse_sacct_json(const char *text, struct slurm_rec **recs, size_t *n,
                           size_t *alloc, struct hp_err *err)
{
    json_t *root = jload(text, "sacct", err), *job;
    size_t i;
    if (!root)
        return -1;
    json_array_foreach(json_object_get(root, "jobs"), i, job) {
        long long id, v;
        const json_t *state = json_object_get(job, "state");
        const char *st = jstate(json_object_get(state, "current"));
        if (jnum(json_object_get(job, "job_id"), &id) != 1 || !st)
            continue;
        struct slurm_rec *r = rec_new(recs, n, alloc);
        snprintf(r->id, sizeof(r->id), "%lld", id);
        set_state(r, st);
        copy(r->reason, sizeof(r->reason), json_string_value(json_object_get(state, "reason")));
        const json_t *ec = json_object_get(job, "exit_code");
        if (json_is_object(ec)) {
            const json_t *sig = json_object_get(ec, "signal");
            long long code = 0, s = 0;
            int hc = jnum(json_object_get(ec, "return_code"), &code) == 1;
            int hs = jnum(json_object_get(sig, "signal_id"), &s) == 1 ||
                     jnum(json_object_get(sig, "id"), &s) == 1;
            if (hc || hs) {
                r->have_exit = 1;
                r->exit_code = hs && s ? 0 : (int)code;
                r->signal = hs ? (int)s : 0;
            }
        }
        jlimit(r, json_object_get(json_object_get(job, "time"), "limit"));
        copy(r->name, sizeof(r->name), json_string_value(json_object_get(job, "name")));
        /* cancelled by whom: not in the JSON; the text form says it */
        (void)v;
    }
    json_decref(root);
    return 0;
}

const char *const slurm_transient[] = {
    "Socket timed out", "Unable to contact slurm controller", "temporarily unable",
    "Resource temporarily unavailable", "Connection refused", "Zero Bytes were transmitted",
    "slurm_persist_conn", NULL,
};

int slurm_parse_sbatch(const char *out, char *id, size_t len)
{
    const char *p = out;
    /* --parsable prints "ID" or "ID;CLUSTER"; warnings go to stderr, but
     * take the last line that starts with a digit to be safe */
    const char *found = NULL;
    for (const char *line = p; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (isdigit((unsigned char)*line))
            found = line;
        line = nl ? nl + 1 : NULL;
    }
    if (!found)
        return -1;
    size_t k = 0;
    while (isdigit((unsigned char)found[k]))
        k++;
    if (k == 0 || k >= len || (found[k] && found[k] != ';' && found[k] != '\n' &&
                               found[k] != '\r'))
        return -1;
    memcpy(id, found, k);
    id[k] = '\0';
    return 0;
}

const char *slurm_name_token(const char *name)
{
    /* NAME.hp<16 hex>.<digits>-<hex>: scan for ".hp" and check the rest */
    for (const char *p = strstr(name, ".hp"); p; p = strstr(p + 1, ".hp")) {
        const char *t = p + 1, *q = t + 2;
        int k = 0;
        while (k < 16 && isxdigit((unsigned char)q[k]))
            k++;
        if (k != 16 || q[16] != '.')
            continue;
        q += 17;
        if (!isdigit((unsigned char)*q))
            continue;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q != '-' || !isxdigit((unsigned char)q[1]))
            continue;
        q++;
        while (isxdigit((unsigned char)*q))
            q++;
        if (!*q)
            return t;
    }
    return NULL;
}

char *slurm_job_name(const struct hp_jobspec *spec)
{
    if (spec->token && *spec->token)
        return hp_xasprintf("%s.%s", spec->job_name ? spec->job_name : "hpcport", spec->token);
    return hp_xstrdup(spec->job_name ? spec->job_name : "hpcport");
}
