/* jobtab.c - the followed jobs, poll schedule and idempotency bookkeeping
 * that the batch adapters share (jobtab.h). The table is a plain array with
 * an open-addressing hash beside it: a campaign may follow thousands of
 * jobs and status() looks each of them up once per call. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "jobtab.h"
#include "util.h"
#include "banned.h"

void hp_jobtab_init(struct hp_jobtab *T, size_t job_size,
                    void (*job_release)(struct hp_jobtab_job *j))
{
    memset(T, 0, sizeof(*T));
    T->job_size = job_size < sizeof(struct hp_jobtab_job) ? sizeof(struct hp_jobtab_job)
                                                           : job_size;
    T->job_release = job_release;
    T->interval = HP_JOBTAB_POLL_MIN;
}

static void job_free(struct hp_jobtab *T, struct hp_jobtab_job *j)
{
    if (T->job_release)
        T->job_release(j);
    free(j->id);
    free(j);
}

void hp_jobtab_release(struct hp_jobtab *T)
{
    if (!T)
        return;
    for (size_t i = 0; i < T->ntoks; i++) {
        free(T->toks[i].token);
        free(T->toks[i].id);
    }
    free(T->toks);
    for (size_t i = 0; i < T->nsuspect; i++)
        free(T->suspect[i]);
    free(T->suspect);
    for (size_t i = 0; i < T->njobs; i++)
        job_free(T, T->jobs[i]);
    free(T->jobs);
    free(T->hash);
    memset(T, 0, sizeof(*T));
}

/* ------------------------------------------------------------------ jobs */

static size_t id_hash(const char *id)
{
    size_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

static void hash_put(struct hp_jobtab *T, const char *id, size_t i)
{
    size_t h = id_hash(id) & (T->hsize - 1);
    while (T->hash[h])
        h = (h + 1) & (T->hsize - 1);
    T->hash[h] = i + 1;
}

static void hash_rebuild(struct hp_jobtab *T)
{
    size_t size = 64;
    while (size < T->njobs * 2 + 2)
        size *= 2;
    free(T->hash);
    T->hash = hp_xcalloc(size, sizeof(*T->hash));
    T->hsize = size;
    for (size_t i = 0; i < T->njobs; i++)
        hash_put(T, T->jobs[i]->id, i);
}

struct hp_jobtab_job *hp_jobtab_find(const struct hp_jobtab *T, const char *id)
{
    if (!T->hsize)
        return NULL;
    for (size_t h = id_hash(id) & (T->hsize - 1); T->hash[h]; h = (h + 1) & (T->hsize - 1))
        if (!strcmp(T->jobs[T->hash[h] - 1]->id, id))
            return T->jobs[T->hash[h] - 1];
    return NULL;
}

struct hp_jobtab_job *hp_jobtab_add(struct hp_jobtab *T, const char *id)
{
    struct hp_jobtab_job *j = hp_jobtab_find(T, id);
    if (j)
        return j;
    j = hp_xcalloc(1, T->job_size);
    j->id = hp_xstrdup(id);
    j->st.state = HP_JOB_QUEUED;
    j->st.exit_code = -1;
    HP_ALLOC_GROW(T->jobs, T->njobs + 1, T->jalloc);
    T->jobs[T->njobs++] = j;
    if (T->njobs * 2 + 2 > T->hsize)
        hash_rebuild(T);
    else
        hash_put(T, id, T->njobs - 1);
    return j;
}

struct hp_jobtab_job *hp_jobtab_follow(struct hp_jobtab *T, const char *id)
{
    struct hp_jobtab_job *j = hp_jobtab_add(T, id);
    j->gen = T->gen;
    hp_jobtab_poll_soon(T);
    return j;
}

void hp_jobtab_compact(struct hp_jobtab *T)
{
    size_t k = 0;
    for (size_t i = 0; i < T->njobs; i++) {
        if (T->jobs[i]->final && T->jobs[i]->gen != T->gen) {
            job_free(T, T->jobs[i]);
            continue;
        }
        T->jobs[k++] = T->jobs[i];
    }
    if (k != T->njobs) {
        T->njobs = k;
        hash_rebuild(T);
    }
}

char **hp_jobtab_pending(const struct hp_jobtab *T, size_t *n)
{
    char **ids = NULL;
    size_t alloc = 0;
    *n = 0;
    for (size_t i = 0; i < T->njobs; i++) {
        if (!T->jobs[i]->final) {
            HP_ALLOC_GROW(ids, *n + 1, alloc);
            ids[(*n)++] = T->jobs[i]->id;
        }
    }
    return ids;
}

long hp_jobtab_capacity(const struct hp_jobtab *T, long max)
{
    if (max <= 0)
        return -1;
    long live = 0;
    for (size_t i = 0; i < T->njobs; i++)
        live += !T->jobs[i]->final;
    return live < max ? -1 : 0;
}

/* ----------------------------------------------------------------- polls */

int hp_jobtab_status(struct hp_jobtab *T, const char *const *ids, size_t n,
                     struct hp_jobstate *out, int (*poll)(void *ctx, struct hp_err *err),
                     void *ctx, struct hp_err *err)
{
    int ret = 0;
    T->gen++;
    for (size_t i = 0; i < n; i++)
        hp_jobtab_add(T, ids[i])->gen = T->gen;
    if (hp_now() >= T->next_poll)
        ret = poll(ctx, err);
    for (size_t i = 0; i < n; i++)
        out[i] = hp_jobtab_find(T, ids[i])->st;
    hp_jobtab_compact(T);
    return ret;
}

void hp_jobtab_poll_soon(struct hp_jobtab *T)
{
    T->interval = HP_JOBTAB_POLL_MIN;
    double t = hp_now() + HP_JOBTAB_POLL_MIN;
    if (T->next_poll > t)
        T->next_poll = t;
}

void hp_jobtab_polled(struct hp_jobtab *T, int ok, int changed)
{
    double i = T->interval;
    if (changed)
        i = HP_JOBTAB_POLL_MIN;
    else if (ok)
        i = i * 1.5 > HP_JOBTAB_POLL_MAX ? HP_JOBTAB_POLL_MAX : i * 1.5;
    else
        i = i * 2 > 3 * HP_JOBTAB_POLL_MAX ? 3 * HP_JOBTAB_POLL_MAX : i * 2;
    T->interval = i;
    T->next_poll = hp_now() + i;
}

int hp_jobtab_wait(const struct hp_jobtab *T, double timeout)
{
    double left = T->next_poll - hp_now();
    if (left < timeout)
        timeout = left;
    if (timeout <= 0)
        return 0;
    struct timespec ts = { (time_t)timeout, (long)((timeout - (double)(time_t)timeout) * 1e9) };
    nanosleep(&ts, NULL);
    return 0;
}

/* ----------------------------------------------------------- idempotency */

void hp_jobtab_tok_add(struct hp_jobtab *T, const char *token, const char *id, int live)
{
    for (size_t i = 0; i < T->ntoks; i++) {
        if (!strcmp(T->toks[i].token, token)) {
            if (live) {   /* a live job beats a finished one of the same token */
                free(T->toks[i].id);
                T->toks[i].id = hp_xstrdup(id);
            }
            return;
        }
    }
    HP_ALLOC_GROW(T->toks, T->ntoks + 1, T->talloc);
    T->toks[T->ntoks].token = hp_xstrdup(token);
    T->toks[T->ntoks].id = hp_xstrdup(id);
    T->ntoks++;
}

const char *hp_jobtab_tok_find(const struct hp_jobtab *T, const char *token)
{
    for (size_t i = 0; token && i < T->ntoks; i++)
        if (!strcmp(T->toks[i].token, token))
            return T->toks[i].id;
    return NULL;
}

long hp_jobtab_suspect_find(const struct hp_jobtab *T, const char *key)
{
    for (size_t i = 0; key && i < T->nsuspect; i++)
        if (!strcmp(T->suspect[i], key))
            return (long)i;
    return -1;
}

void hp_jobtab_suspect_add(struct hp_jobtab *T, const char *key)
{
    if (!key || hp_jobtab_suspect_find(T, key) >= 0)
        return;
    HP_ALLOC_GROW(T->suspect, T->nsuspect + 1, T->salloc);
    T->suspect[T->nsuspect++] = hp_xstrdup(key);
}

void hp_jobtab_suspect_del(struct hp_jobtab *T, long i)
{
    free(T->suspect[i]);
    T->suspect[i] = T->suspect[--T->nsuspect];
}

void hp_jobtab_submitted(struct hp_jobtab *T, const char *kill_env)
{
    T->submitted++;
    const char *k = getenv(kill_env);
    if (k && *k && atol(k) == (long)T->submitted)
        raise(SIGKILL);
}

/* -------------------------------------------------------------- messages */

int hp_jobtab_says(const char *msg, const char *const *pats)
{
    for (size_t i = 0; pats[i]; i++)
        if (strstr(msg, pats[i]))
            return 1;
    return 0;
}
