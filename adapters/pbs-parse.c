/* pbs-parse.c - PBS job names, states and outputs, parsed. Pure; see
 * pbs-int.h. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "jobtab.h"
#include "pbs-int.h"
#include "util.h"
#include "banned.h"

int pbs_dialect_of(const char *name)
{
    if (!name || !strcmp(name, "pbspro"))
        return PBS_PRO;
    if (!strcmp(name, "torque"))
        return PBS_TORQUE;
    return -1;
}

const char *pbs_dialect_name(enum pbs_dialect d)
{
    return d == PBS_TORQUE ? "torque" : "pbspro";
}

size_t pbs_name_max(enum pbs_dialect d)
{
    return d == PBS_TORQUE ? 64 : 236;
}

/* ---------------------------------------------------------------- names */

char *pbs_job_name(const struct hp_jobspec *spec, enum pbs_dialect d)
{
    const char *jn = spec->job_name && *spec->job_name ? spec->job_name : "hpcport";
    struct hp_buf b = HP_BUF_INIT;
    if (spec->token && *spec->token)
        hp_buf_addf(&b, "%s.%s", spec->token, jn);
    else if (!isalpha((unsigned char)jn[0]))
        hp_buf_addf(&b, "j%s", jn);
    else
        hp_buf_adds(&b, jn);
    if (b.len > pbs_name_max(d))
        hp_buf_setlen(&b, pbs_name_max(d));
    return hp_buf_detach(&b, NULL);
}

int pbs_name_token(const char *name, char *tok, size_t len)
{
    const char *q = name;
    if (q[0] != 'h' || q[1] != 'p')
        return -1;
    q += 2;
    for (int k = 0; k < 16; k++, q++)
        if (!isxdigit((unsigned char)*q))
            return -1;
    if (*q++ != '.' || !isdigit((unsigned char)*q))
        return -1;
    while (isdigit((unsigned char)*q))
        q++;
    if (*q++ != '-' || !isxdigit((unsigned char)*q))
        return -1;
    while (isxdigit((unsigned char)*q))
        q++;
    if (*q && *q != '.')
        return -1;
    size_t n = (size_t)(q - name);
    if (n >= len)
        return -1;
    memcpy(tok, name, n);
    tok[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------- durations */

int64_t pbs_parse_hms(const char *s)
{
    int64_t v[3];
    int n = 0;
    const char *p = s;
    if (!s || !*s)
        return -1;
    while (n < 3) {
        if (!isdigit((unsigned char)*p))
            return -1;
        char *end;
        v[n++] = strtoll(p, &end, 10);
        p = end;
        if (*p != ':')
            break;
        p++;
    }
    if (*p)
        return -1;
    if (n == 1)
        return v[0];
    if (n == 2)
        return v[0] * 60 + v[1];
    return v[0] * 3600 + v[1] * 60 + v[2];
}

void pbs_format_hms(int64_t secs, char *buf, size_t len)
{
    if (secs < 0)
        secs = 0;
    snprintf(buf, len, "%02lld:%02lld:%02lld", (long long)(secs / 3600),
             (long long)(secs / 60 % 60), (long long)(secs % 60));
}

/* ---------------------------------------------------------------- states */

struct state_info {
    char letter;
    enum hp_jobstate_kind kind;
    const char *what;       /* reason shown while in it; NULL for plain Q/R */
};

/* PBS Pro reference guide, "Job States"; TORQUE qstat(1B). E is "exiting
 * after having run": still the scheduler's (output staging). */
static const struct state_info pro_states[] = {
    { 'Q', HP_JOB_QUEUED, NULL },
    { 'H', HP_JOB_QUEUED, "held (H)" },
    { 'W', HP_JOB_QUEUED, "waiting for its start time or a stage-in (W)" },
    { 'T', HP_JOB_QUEUED, "being moved (T)" },
    { 'R', HP_JOB_ACTIVE, NULL },
    { 'B', HP_JOB_ACTIVE, "array job begun (B)" },
    { 'E', HP_JOB_ACTIVE, "exiting (E)" },
    { 'S', HP_JOB_ACTIVE, "suspended (S)" },
    { 'U', HP_JOB_ACTIVE, "suspended while its workstation is busy (U)" },
};

static const struct state_info torque_states[] = {
    { 'Q', HP_JOB_QUEUED, NULL },
    { 'H', HP_JOB_QUEUED, "held (H)" },
    { 'W', HP_JOB_QUEUED, "waiting for its start time (W)" },
    { 'T', HP_JOB_QUEUED, "being moved (T)" },
    { 'R', HP_JOB_ACTIVE, NULL },
    { 'E', HP_JOB_ACTIVE, "exiting (E)" },
    { 'S', HP_JOB_ACTIVE, "suspended (S)" },
};

int pbs_state_final(enum pbs_dialect d, char state)
{
    if (d == PBS_TORQUE)
        return state == 'C';
    return state == 'F' || state == 'X' || state == 'M';
}

struct special {
    int code;
    int timed_out;
    const char *what;
};

/* OpenPBS src/include/job.h (JOB_EXEC_*), PBS Pro 2021+ for -24..-30 */
static const struct special pro_codes[] = {
    { -1, 0, "the job could not start (before files were staged)" },
    { -2, 0, "the job could not start (after files were staged)" },
    { -3, 0, "the job could not start; PBS retries it" },
    { -4, 0, "aborted while its execution host initialised" },
    { -5, 0, "aborted while its execution host initialised (checkpoint)" },
    { -6, 0, "aborted while its execution host initialised (checkpoint, migrate)" },
    { -7, 0, "restart from a checkpoint failed" },
    { -10, 0, "invalid user or group for the job" },
    { -11, 0, "the job was rerun" },
    { -12, 0, "checkpointed and killed" },
    { -13, 0, "bad password" },
    { -14, 0, "rerun after a sister node failed" },
    { -15, 0, "requeued for a restart from a checkpoint" },
    { -16, 0, "a hook rejected the job; requeued" },
    { -17, 0, "a hook rejected the job; deleted" },
    { -18, 0, "a hook requeued the job" },
    { -19, 0, "a hook deleted the job" },
    { -20, 0, "the connection to the mother superior node failed" },
    { -21, 0, "security breach in the PBS directory" },
    { -22, 0, "a hook failed or timed out" },
    { -23, 0, "no Kerberos credentials" },
    { -24, 0, "killed: ncpus burst exceeded" },
    { -25, 0, "killed: ncpus exceeded" },
    { -26, 0, "killed: vmem exceeded" },
    { -27, 0, "killed: mem exceeded" },
    { -28, 0, "killed: cput exceeded" },
    { -29, 1, "killed: walltime exceeded" },
    { -30, 0, "the sister nodes could not join the job" },
};

/* TORQUE administrator guide, "Job exit status"; 6.1 adds -13, -14 */
static const struct special torque_codes[] = {
    { -1, 0, "the job could not start (before files were staged)" },
    { -2, 0, "the job could not start (after files were staged)" },
    { -3, 0, "the job could not start; TORQUE retries it" },
    { -4, 0, "aborted while its node initialised" },
    { -5, 0, "aborted while its node initialised (checkpoint)" },
    { -6, 0, "aborted while its node initialised (checkpoint, migrate)" },
    { -7, 0, "restart from a checkpoint failed" },
    { -8, 0, "exec() of the job's shell failed" },
    { -9, 0, "could not create the stdout or stderr file" },
    { -10, 0, "killed: memory limit exceeded" },
    { -11, 1, "killed: walltime exceeded" },
    { -12, 0, "killed: CPU time limit exceeded" },
    { -13, 0, "could not create the job's cgroups" },
    { -14, 0, "the prologue failed" },
};

static void reason_signal(struct hp_jobstate *out, int sig)
{
    const char *abbr = sig > 0 && sig < 65 ? sigabbrev_np(sig) : NULL;
    snprintf(out->reason, sizeof(out->reason), "killed by signal %d (%s)", sig,
             abbr ? abbr : "?");
}

void pbs_map_exit(enum pbs_dialect d, int status, int64_t used, int64_t limit,
                  struct hp_jobstate *out)
{
    char lim[32];
    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    if (status == 0) {
        out->state = HP_JOB_COMPLETED;
        out->exit_code = 0;
        return;
    }
    out->state = HP_JOB_FAILED;
    if (status < 0) {
        const struct special *t = d == PBS_TORQUE ? torque_codes : pro_codes;
        size_t n = d == PBS_TORQUE ? sizeof(torque_codes) / sizeof(torque_codes[0])
                                   : sizeof(pro_codes) / sizeof(pro_codes[0]);
        const char *what = "the scheduler ended the job";
        for (size_t i = 0; i < n; i++) {
            if (t[i].code == status) {
                what = t[i].what;
                out->timed_out = t[i].timed_out;
            }
        }
        if (out->timed_out && limit > 0) {
            pbs_format_hms(limit, lim, sizeof(lim));
            snprintf(out->reason, sizeof(out->reason), "%s (limit %s; PBS exit status %d)",
                     what, lim, status);
        } else {
            snprintf(out->reason, sizeof(out->reason), "%s (PBS exit status %d)", what,
                     status);
        }
        return;
    }
    int sig = 0;
    if (status > 256 && status <= 256 + 64)
        sig = status - 256;
    else if (status > 128 && status <= 128 + 64)
        sig = status - 128;
    if (!sig) {
        out->exit_code = status & 0xff;
        snprintf(out->reason, sizeof(out->reason), "exit code %d", out->exit_code);
        return;
    }
    out->signal = sig;
    if (limit > 0 && used >= 0 && used >= limit) {
        out->timed_out = 1;
        pbs_format_hms(limit, lim, sizeof(lim));
        snprintf(out->reason, sizeof(out->reason), "killed by signal %d at its walltime (%s)",
                 sig, lim);
        return;
    }
    reason_signal(out, sig);
}

int pbs_map_state(enum pbs_dialect d, const struct pbs_rec *rec, struct hp_jobstate *out)
{
    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    if (pbs_state_final(d, rec->state)) {
        if (rec->state == 'M') {
            /* history only: the job went on at another server, which this
             * adapter does not ask; failed, not unknown, which would run
             * it a second time */
            out->state = HP_JOB_FAILED;
            snprintf(out->reason, sizeof(out->reason), "PBS moved job %.80s to another server "
                     "(M), which hpcport does not follow", rec->id);
            return 0;
        }
        if (!rec->have_exit)
            return 1;
        pbs_map_exit(d, rec->exit_status, rec->used_walltime, rec->limit_walltime, out);
        return 0;
    }
    const struct state_info *t = d == PBS_TORQUE ? torque_states : pro_states;
    size_t n = d == PBS_TORQUE ? sizeof(torque_states) / sizeof(torque_states[0])
                               : sizeof(pro_states) / sizeof(pro_states[0]);
    for (size_t i = 0; i < n; i++) {
        if (t[i].letter == rec->state) {
            out->state = t[i].kind;
            if (t[i].what)
                snprintf(out->reason, sizeof(out->reason), "%s", t[i].what);
            return 0;
        }
    }
    /* a letter we do not know: the job is still the scheduler's; waiting
     * is safer than running it twice */
    out->state = HP_JOB_QUEUED;
    if (rec->state)
        snprintf(out->reason, sizeof(out->reason), "PBS state '%c'", rec->state);
    else
        snprintf(out->reason, sizeof(out->reason), "PBS printed no job_state");
    return 0;
}

int pbs_map_rcfile(const char *text, int64_t walltime, struct hp_jobstate *out)
{
    long st, elapsed = -1;
    char *end;
    if (!text)
        return -1;
    while (*text == ' ')
        text++;
    st = strtol(text, &end, 10);
    if (end == text || st < 0 || st > 255)
        return -1;
    if (*end == ' ') {
        char *e2;
        elapsed = strtol(end + 1, &e2, 10);
        if (e2 == end + 1)
            elapsed = -1;
    }
    /* killed close to the limit: the scheduler's TERM at the walltime */
    int64_t used = elapsed >= 0 && walltime > 0 && elapsed + 5 >= walltime ? walltime : -1;
    pbs_map_exit(PBS_PRO, (int)st, used, walltime > 0 ? walltime : -1, out);
    return 0;
}

/* ---------------------------------------------------------------- qsub */

int pbs_parse_qsub(const char *out, char *id, size_t len)
{
    const char *best = NULL;
    size_t blen = 0;
    for (const char *line = out; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) : strlen(line);
        const char *s = line;
        while (l && (*s == ' ' || *s == '\t')) {
            s++;
            l--;
        }
        while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
            l--;
        if (l) {
            best = s;
            blen = l;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!best || blen >= len || !isdigit((unsigned char)best[0]))
        return -1;
    for (size_t k = 0; k < blen; k++) {
        unsigned char c = (unsigned char)best[k];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == '[' || c == ']'))
            return -1;
    }
    memcpy(id, best, blen);
    id[blen] = '\0';
    return 0;
}

int pbs_id_match(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    size_t la = strcspn(a, "."), lb = strcspn(b, ".");
    if (la != lb || strncmp(a, b, la))
        return 0;
    return !a[la] || !b[lb];
}

/* ------------------------------------------------------------- qstat -f */

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static struct pbs_rec *rec_new(struct pbs_rec **recs, size_t *n, size_t *alloc)
{
    HP_ALLOC_GROW(*recs, *n + 1, *alloc);
    struct pbs_rec *r = &(*recs)[(*n)++];
    memset(r, 0, sizeof(*r));
    r->substate = -1;
    r->used_walltime = -1;
    r->limit_walltime = -1;
    return r;
}

/* One attribute, by its qstat -f name; the JSON form nests the dotted
 * names ("resources_used": {"walltime": ...}) and is flattened by the
 * caller. */
static void set_attr(struct pbs_rec *r, const char *key, const char *val)
{
    char *end;
    if (!strcmp(key, "job_state")) {
        r->state = val[0];
    } else if (!strcmp(key, "Exit_status") || !strcmp(key, "exit_status")) {
        long v = strtol(val, &end, 10);
        if (end != val && !*end) {
            r->have_exit = 1;
            r->exit_status = (int)v;
        }
    } else if (!strcmp(key, "substate")) {
        long v = strtol(val, &end, 10);
        if (end != val)
            r->substate = (int)v;
    } else if (!strcmp(key, "Job_Name")) {
        copy(r->name, sizeof(r->name), val);
    } else if (!strcmp(key, "Job_Owner")) {
        copy(r->owner, sizeof(r->owner), val);
    } else if (!strcmp(key, "comment")) {
        copy(r->comment, sizeof(r->comment), val);
    } else if (!strcmp(key, "resources_used.walltime")) {
        r->used_walltime = pbs_parse_hms(val);
    } else if (!strcmp(key, "Resource_List.walltime")) {
        r->limit_walltime = pbs_parse_hms(val);
    }
}

static void trim(char *s)
{
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r'))
        s[--l] = '\0';
}

/* The line at *cur, cut off in place and trimmed; *cur moves past it (NULL
 * after the last one). */
static char *next_line(char **cur)
{
    char *line = *cur, *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cur = nl + 1;
    } else {
        *cur = NULL;
    }
    trim(line);
    return line;
}

/* "    key = value" (leading blanks or a tab): key and value, else 0 */
static int attr_line(char *line, char **key, char **val)
{
    char *p = line;
    if (*p != ' ' && *p != '\t')
        return 0;
    while (*p == ' ' || *p == '\t')
        p++;
    char *k = p;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '.')
        p++;
    if (p == k || strncmp(p, " = ", 3) != 0)
        return 0;
    *p = '\0';
    *key = k;
    *val = p + 3;
    return 1;
}

int pbs_parse_text(const char *text, struct pbs_rec **recs, size_t *n, size_t *alloc)
{
    char *buf = hp_xstrdup(text), *cur = buf;
    struct pbs_rec *r = NULL;
    int found = 0;
    /* the attribute being read, kept until the next one (a value may
     * continue on following lines) */
    char *key = NULL;
    struct hp_buf val = HP_BUF_INIT;
    while (cur && *cur) {
        char *line = next_line(&cur);
        char *k, *v;
        int is_id = !strncmp(line, "Job Id:", 7);
        int is_attr = !is_id && attr_line(line, &k, &v);
        if ((is_id || is_attr || !*line) && key && r) {
            set_attr(r, key, val.buf);
            key = NULL;
        }
        if (is_id) {
            char *id = line + 7;
            while (*id == ' ' || *id == '\t')
                id++;
            r = rec_new(recs, n, alloc);
            copy(r->id, sizeof(r->id), id);
            found++;
        } else if (is_attr && r) {
            key = k;
            hp_buf_reset(&val);
            hp_buf_adds(&val, v);
        } else if (key && *line) {
            char *c = line;
            while (*c == ' ' || *c == '\t')
                c++;
            hp_buf_adds(&val, c);
        }
    }
    if (key && r)
        set_attr(r, key, val.buf);
    hp_buf_release(&val);
    free(buf);
    return found;
}

static void json_attr(struct pbs_rec *r, const char *key, const json_t *v)
{
    char num[32];
    if (json_is_string(v)) {
        set_attr(r, key, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        set_attr(r, key, num);
    } else if (json_is_object(v) && (!strcmp(key, "resources_used") ||
                                     !strcmp(key, "Resource_List"))) {
        const json_t *w = json_object_get(v, "walltime");
        char full[64];
        snprintf(full, sizeof(full), "%s.walltime", key);
        if (json_is_string(w))
            set_attr(r, full, json_string_value(w));
    }
}

int pbs_parse_json(const char *text, struct pbs_rec **recs, size_t *n, size_t *alloc,
                   struct hp_err *err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return hp_err_set(err, HP_ESITE, "qstat -F json printed no JSON document (%s at line "
                          "%d)", je.text, je.line);
    }
    json_t *jobs = json_object_get(root, "Jobs");
    if (!jobs) {
        /* PBS leaves "Jobs" out when no job matched (Parsl issue 3906) */
        if (!json_object_get(root, "pbs_version") && !json_object_get(root, "timestamp")) {
            json_decref(root);
            return hp_err_set(err, HP_ESITE, "qstat -F json printed a JSON document "
                              "without \"Jobs\" or \"pbs_version\"");
        }
        json_decref(root);
        return 0;
    }
    if (!json_is_object(jobs)) {
        json_decref(root);
        return hp_err_set(err, HP_ESITE, "qstat -F json: \"Jobs\" is not an object");
    }
    const char *id;
    json_t *job;
    json_object_foreach(jobs, id, job) {
        if (!json_is_object(job))
            continue;
        struct pbs_rec *r = rec_new(recs, n, alloc);
        copy(r->id, sizeof(r->id), id);
        const char *k;
        json_t *v;
        json_object_foreach(job, k, v)
            json_attr(r, k, v);
    }
    json_decref(root);
    return 0;
}

size_t pbs_parse_unknown(const char *errtext, void (*fn)(void *ud, const char *id), void *ud)
{
    size_t found = 0;
    char *buf = hp_xstrdup(errtext), *cur = buf;
    while (cur && *cur) {
        char *line = next_line(&cur);
        char *id = NULL, *p;
        if ((p = strstr(line, "Unknown Job Id"))) {
            p += strlen("Unknown Job Id");
            while (*p == ' ')
                p++;
            if (!strncmp(p, "Error ", 6))
                p += 6;
            id = p;
            p += strcspn(p, " \t");
            *p = '\0';
        } else if ((p = strstr(line, " Job has finished"))) {
            *p = '\0';
            id = strrchr(line, ' ');
            id = id ? id + 1 : line;
        }
        if (id && *id) {
            if (fn)
                fn(ud, id);
            found++;
        }
    }
    free(buf);
    return found;
}

/* --------------------------------------------------------------- answers */

char *pbs_complaint(const char *out, const char *errtext)
{
    const char *srcs[] = { errtext, out };
    for (size_t s = 0; s < 2; s++) {
        const char *p = strstr(srcs[s], "error: ");
        if (p)
            return hp_first_line(p + 7);
    }
    char *l = hp_first_line(errtext);
    if (*l)
        return l;
    free(l);
    return hp_first_line(out);
}

void pbs_answer_release(struct pbs_answer *a)
{
    free(a->recs);
    for (size_t i = 0; i < a->nunknown; i++)
        free(a->unknown[i]);
    free(a->unknown);
    memset(a, 0, sizeof(*a));
}

const struct pbs_rec *pbs_answer_rec(const struct pbs_answer *a, const char *id)
{
    for (size_t i = a->n; i-- > 0;)
        if (pbs_id_match(a->recs[i].id, id))
            return &a->recs[i];
    return NULL;
}

int pbs_answer_unknown(const struct pbs_answer *a, const char *id)
{
    for (size_t i = 0; i < a->nunknown; i++)
        if (pbs_id_match(a->unknown[i], id))
            return 1;
    return 0;
}

static void add_unknown(void *ud, const char *id)
{
    struct pbs_answer *a = ud;
    HP_ALLOC_GROW(a->unknown, a->nunknown + 1, a->ualloc);
    a->unknown[a->nunknown++] = hp_xstrdup(id);
}

int pbs_parse_qstat(int json, int status, const char *out, const char *errtext,
                    struct pbs_answer *a, struct hp_err *err)
{
    size_t before = a->n, ubefore = a->nunknown;
    int blank = strspn(out, " \t\r\n") == strlen(out);
    if (json && !blank) {
        struct hp_err jerr;
        hp_err_init(&jerr);
        if (pbs_parse_json(out, &a->recs, &a->n, &a->alloc, &jerr) < 0) {
            a->n = before;
            return 1;
        }
    } else if (!blank && pbs_parse_text(out, &a->recs, &a->n, &a->alloc) == 0) {
        char *l = hp_first_line(out);
        hp_err_set(err, HP_ESITE, "qstat -f printed something unexpected: '%.120s'", l);
        free(l);
        return -1;
    }
    pbs_parse_unknown(errtext, add_unknown, a);
    if (status != 0 && a->n == before && a->nunknown == ubefore &&
        (*errtext || status != 153)) {
        char *l = pbs_complaint(out, errtext);
        hp_err_set(err, HP_ESITE, "qstat failed (status %d): %s", status,
                   *l ? l : "no message");
        free(l);
        return -1;
    }
    return 0;
}
