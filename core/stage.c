/* stage.c - a campaign's files on a remote site. See stage.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "quote.h"
#include "stage.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define EXEC_TIMEOUT 120.0     /* seconds for a bookkeeping command on the site */
#define BATCH_BYTES (64 * 1024) /* argv bytes per command that lists paths */
#define MANIFEST "staged"

struct hp_stage {
    struct hp_conn *conn;
    const struct hp_site *site;
    char *env;                 /* `env -0` output of the site */
    size_t envlen;
    int env_tried;             /* 0 none, 1 plain, 2 login shell */
    const struct hp_plan *plan;
    const char *local_dir;
    char *rdir, *rwork;        /* expanded plan->dir and remote_workdir */
};

struct hp_stage *hp_stage_new(struct hp_conn *conn, const struct hp_site *site)
{
    struct hp_stage *st = hp_xcalloc(1, sizeof(*st));
    st->conn = conn;
    st->site = site;
    return st;
}

void hp_stage_free(struct hp_stage *st)
{
    if (!st)
        return;
    free(st->env);
    free(st->rdir);
    free(st->rwork);
    free(st);
}

/* Run argv on the site (idempotent: it only reads or makes directories);
 * *status and output as hp_conn_exec. */
static int run(struct hp_stage *st, const char *const *argv, struct hp_buf *out,
               struct hp_buf *errout, int *status, struct hp_err *err)
{
    return hp_conn_exec_ex(st->conn, argv, NULL, 0, out, errout, status, EXEC_TIMEOUT,
                           HP_EXEC_IDEMPOTENT, err);
}

/* ---- the site's environment ---- */

static int load_env(struct hp_stage *st, int login, struct hp_err *err)
{
    static const char marker[] = "\036HPCPORT-ENV\036";
    const char *plain[] = { "env", "-0", NULL };
    const char *shell[] = { "sh", "-lc", "printf '\\036HPCPORT-ENV\\036'; exec env -0", NULL };
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    int status = 0, ret = -1;
    st->env_tried = login ? 2 : 1;
    if (run(st, login ? shell : plain, &out, &eo, &status, err) < 0)
        goto out;
    if (status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "site '%s': 'env -0' failed there (status %d): %s",
                   st->site->name, status, l);
        free(l);
        goto out;
    }
    const char *start = out.buf;
    size_t len = out.len;
    if (login) {
        const char *m = memmem(out.buf, out.len, marker, sizeof(marker) - 1);
        if (!m) {
            hp_err_set(err, HP_ESITE, "site '%s': a login shell there printed no environment",
                       st->site->name);
            goto out;
        }
        start = m + sizeof(marker) - 1;
        len = out.len - (size_t)(start - out.buf);
    }
    free(st->env);
    st->env = hp_xmalloc(len + 1);
    memcpy(st->env, start, len);
    st->env[len] = '\0';
    st->envlen = len;
    ret = 0;
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

static const char *env_get(const struct hp_stage *st, const char *name, size_t nlen)
{
    for (size_t off = 0; st->env && off < st->envlen;) {
        const char *e = st->env + off;
        size_t l = strlen(e);
        if (l > nlen && !strncmp(e, name, nlen) && e[nlen] == '=')
            return e + nlen + 1;
        off += l + 1;
    }
    return NULL;
}

char *hp_stage_expand(struct hp_stage *st, const char *path, struct hp_err *err)
{
    if (path[0] != '/' && !hp_path_var(path, &(const char *){ NULL }, &(size_t){ 0 })) {
        hp_err_set(err, HP_ESITE, "site '%s': path '%s' is not absolute; give "
                   "filesystems.scratch (or home) as an absolute path or start it with a "
                   "$VARIABLE", st->site->name, path);
        return NULL;
    }
    struct hp_buf b = HP_BUF_INIT;
    const char *p = path, *name;
    size_t nlen, len;
    while (*p) {
        if (!(len = hp_path_var(p, &name, &nlen))) {
            hp_buf_addch(&b, *p++);
            continue;
        }
        const char *v = NULL;
        for (int login = 0; login < 2 && !v; login++) {
            if (st->env_tried <= login && load_env(st, login, err) < 0)
                goto fail;
            v = env_get(st, name, nlen);
        }
        if (!v || !*v) {
            const char *ptr = st->site->scratch && strstr(st->site->scratch, "$") &&
                                      !strncmp(st->site->scratch, path, (size_t)(p - path) + len)
                                  ? "/filesystems/scratch" : "/filesystems/home";
            const char *o = hp_site_origin(st->site, ptr);
            hp_err_set(err, HP_ESITE, "site '%s': $%.*s is not set on the login node, not even "
                       "in a login shell (%s%s%s uses it); set %s to an absolute path",
                       st->site->name, (int)nlen, name, ptr + 1, *o ? " at " : "", o, ptr + 1);
            goto fail;
        }
        if (p == path && v[0] != '/') {
            hp_err_set(err, HP_ESITE, "site '%s': $%.*s is '%s' on the login node, not an "
                       "absolute path", st->site->name, (int)nlen, name, v);
            goto fail;
        }
        hp_buf_adds(&b, v);
        p += len;
    }
    return hp_buf_detach(&b, NULL);
fail:
    hp_buf_release(&b);
    return NULL;
}

char *hp_stage_local_path(const char *remote_dir, const char *local_dir, const char *path)
{
    size_t n = strlen(remote_dir);
    if (!strncmp(path, remote_dir, n) && path[n] == '/')
        return hp_xasprintf("%s%s", local_dir, path + n);
    return hp_xstrdup(path);
}

/* ---- listing paths on the site in batches ---- */

/* For each path, one line of output from script (run by sh with the paths
 * as "$@"); lines[i] receives a new string per path ("" when the command
 * printed fewer lines). */
static int per_path(struct hp_stage *st, const char *script, char **paths, size_t n,
                    char **lines, struct hp_err *err)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i, bytes = 0;
        while (j < n && (j == i || bytes + strlen(paths[j]) < BATCH_BYTES))
            bytes += strlen(paths[j++]) + 1;
        const char **argv = hp_xcalloc(j - i + 5, sizeof(*argv));
        size_t a = 0;
        argv[a++] = "sh";
        argv[a++] = "-c";
        argv[a++] = script;
        argv[a++] = "sh";
        for (size_t k = i; k < j; k++)
            argv[a++] = paths[k];
        struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
        int status = 0;
        int rc = run(st, argv, &out, &eo, &status, err);
        free(argv);
        if (rc == 0 && status != 0) {
            char *l = hp_first_line(eo.buf);
            hp_err_set(err, HP_ESITE, "site '%s': listing files failed (status %d): %s",
                       st->site->name, status, l);
            free(l);
            rc = -1;
        }
        if (rc < 0) {
            hp_buf_release(&out);
            hp_buf_release(&eo);
            return -1;
        }
        char *p = out.buf;
        for (size_t k = i; k < j; k++) {
            char *nl = p ? strchr(p, '\n') : NULL;
            if (nl)
                *nl = '\0';
            lines[k] = hp_xstrdup(p ? p : "");
            p = nl ? nl + 1 : NULL;
        }
        hp_buf_release(&out);
        hp_buf_release(&eo);
        i = j;
    }
    return 0;
}

/* ---- inputs ---- */

struct entry {
    char *rel;                /* relative to the working directory */
    char *local, *remote;
    unsigned long long size;
    long long mtime;          /* ns */
    long group;               /* index of the directory input it belongs to, -1 */
    int changed;
};

struct inputs {
    struct entry *e;
    size_t n, alloc;
    char **dirs;              /* directory inputs (rel) */
    size_t ndirs, dalloc;
};

static char *normalize(const char *p)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    char *s = hp_xstrdup(p);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* path equal to, or under, one of the sorted outputs? */
static int is_output(char **outs, size_t n, const char *path)
{
    if (!n)
        return 0;
    if (bsearch(&path, outs, n, sizeof(*outs), cmp_str))
        return 1;
    /* under an output directory: check each prefix ending at a '/' */
    char *tmp = hp_xstrdup(path);
    int found = 0;
    for (char *s = strrchr(tmp, '/'); s && !found; s = strrchr(tmp, '/')) {
        *s = '\0';
        const char *k = tmp;
        found = bsearch(&k, outs, n, sizeof(*outs), cmp_str) != NULL;
    }
    free(tmp);
    return found;
}

static void add_entry(struct inputs *in, const char *rel, const char *local, const char *remote,
                      const struct stat *sb, long group)
{
    HP_ALLOC_GROW(in->e, in->n + 1, in->alloc);
    struct entry *e = &in->e[in->n++];
    e->rel = hp_xstrdup(rel);
    e->local = hp_xstrdup(local);
    e->remote = hp_xstrdup(remote);
    e->size = (unsigned long long)sb->st_size;
    e->mtime = (long long)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec;
    e->group = group;
    e->changed = 0;
}

static int walk(struct inputs *in, const char *rel, const char *local, const char *remote,
                long group, int depth, struct hp_err *err)
{
    DIR *d = opendir(local);
    if (!d)
        return hp_err_errno(err, "cannot read input directory %s", local);
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *l = hp_path_join(local, de->d_name);
        char *r = hp_path_join(remote, de->d_name);
        char *rr = hp_path_join(rel, de->d_name);
        struct stat sb;
        if (stat(l, &sb) < 0)
            ret = hp_err_errno(err, "cannot read input %s", l);
        else if (S_ISDIR(sb.st_mode) && depth < 64)
            ret = walk(in, rr, l, r, group, depth + 1, err);
        else if (S_ISREG(sb.st_mode))
            add_entry(in, rr, l, r, &sb, group);
        free(l);
        free(r);
        free(rr);
    }
    closedir(d);
    return ret;
}

static void inputs_release(struct inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        free(in->e[i].rel);
        free(in->e[i].local);
        free(in->e[i].remote);
    }
    free(in->e);
    for (size_t i = 0; i < in->ndirs; i++)
        free(in->dirs[i]);
    free(in->dirs);
}

/* The manifest: records "size mtime path\0". */
static char *manifest_path(const struct hp_stage *st)
{
    return hp_path_join(st->local_dir, MANIFEST);
}

static int manifest_says_same(const char *text, size_t len, const struct entry *e)
{
    for (size_t off = 0; text && off < len;) {
        const char *rec = text + off;
        size_t l = strnlen(rec, len - off);
        unsigned long long size;
        long long mtime;
        int pos = 0;
        if (sscanf(rec, "%llu %lld %n", &size, &mtime, &pos) == 2 && pos > 0 &&
            !strcmp(rec + pos, e->rel))
            return size == e->size && mtime == e->mtime;
        off += l + 1;
    }
    return 0;
}

static int manifest_write(const struct hp_stage *st, const struct inputs *in, struct hp_err *err)
{
    struct hp_buf b = HP_BUF_INIT;
    for (size_t i = 0; i < in->n; i++) {
        hp_buf_addf(&b, "%llu %lld %s", in->e[i].size, in->e[i].mtime, in->e[i].rel);
        hp_buf_addch(&b, '\0');
    }
    char *path = manifest_path(st);
    char *tmp = hp_xasprintf("%s.tmp", path);
    int ret = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot write %s", tmp);
        goto out;
    }
    ssize_t w = write(fd, b.buf, b.len);
    if (close(fd) < 0 || w != (ssize_t)b.len || rename(tmp, path) < 0) {
        hp_err_errno(err, "cannot write %s", path);
        unlink(tmp);
        goto out;
    }
    ret = 0;
out:
    free(tmp);
    free(path);
    hp_buf_release(&b);
    return ret;
}

static int gather_inputs(struct hp_stage *st, struct inputs *in, struct hp_err *err)
{
    const struct hp_workflow *wf = st->plan->wf;
    char **outs = NULL;
    size_t nouts = 0, oalloc = 0, nins = 0;
    int ret = -1;
    for (size_t i = 0; i < wf->ninst; i++) {
        for (size_t k = 0; wf->inst[i].outputs && wf->inst[i].outputs[k]; k++) {
            HP_ALLOC_GROW(outs, nouts + 1, oalloc);
            outs[nouts++] = normalize(wf->inst[i].outputs[k]);
        }
    }
    if (nouts)
        qsort(outs, nouts, sizeof(*outs), cmp_str);
    /* inputs, keeping the instance that first names each (for messages) */
    struct pair { char *rel; size_t inst; } *pairs = NULL;
    size_t palloc = 0;
    for (size_t i = 0; i < wf->ninst; i++) {
        for (size_t k = 0; wf->inst[i].inputs && wf->inst[i].inputs[k]; k++) {
            const char *p = wf->inst[i].inputs[k];
            if (p[0] == '/')
                continue;
            char *rel = normalize(p);
            if (is_output(outs, nouts, rel)) {
                free(rel);
                continue;
            }
            HP_ALLOC_GROW(pairs, nins + 1, palloc);
            pairs[nins].rel = rel;
            pairs[nins].inst = i;
            nins++;
        }
    }
    /* sort by path, drop duplicates (rel is the first member) */
    if (nins > 1)
        qsort(pairs, nins, sizeof(*pairs), cmp_str);
    for (size_t a = 0; a < nins; a++) {
        if (a && !strcmp(pairs[a].rel, pairs[a - 1].rel))
            continue;
        const char *rel = pairs[a].rel;
        char *local = hp_path_join(wf->workdir, rel);
        char *remote = hp_path_join(st->rwork, rel);
        struct stat sb;
        int r = 0;
        if (stat(local, &sb) < 0) {
            const struct hp_instance *inst = &wf->inst[pairs[a].inst];
            r = hp_err_set(err, HP_EINPUT, "input '%s' of task '%s' is not in %s (%s), and no "
                           "task declares it as an output; create it, or list it among the "
                           "outputs of the task that makes it", rel, wf->tasks[inst->task].name,
                           wf->workdir, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            HP_ALLOC_GROW(in->dirs, in->ndirs + 1, in->dalloc);
            in->dirs[in->ndirs] = hp_xstrdup(rel);
            r = walk(in, rel, local, remote, (long)in->ndirs, 0, err);
            in->ndirs++;
        } else {
            add_entry(in, rel, local, remote, &sb, -1);
        }
        free(local);
        free(remote);
        if (r < 0)
            goto out;
    }
    ret = 0;
out:
    for (size_t a = 0; a < nins; a++)
        free(pairs[a].rel);
    free(pairs);
    for (size_t a = 0; a < nouts; a++)
        free(outs[a]);
    free(outs);
    return ret;
}

static int upload_inputs(struct hp_stage *st, size_t *uploaded, struct hp_err *err)
{
    struct inputs in = { 0 };
    char **paths = NULL, **sizes = NULL, *mtext = NULL;
    size_t mlen = 0;
    int ret = -1;
    if (gather_inputs(st, &in, err) < 0)
        goto out;
    if (!in.n) {
        ret = 0;
        goto out;
    }
    paths = hp_xcalloc(in.n, sizeof(*paths));
    sizes = hp_xcalloc(in.n, sizeof(*sizes));
    for (size_t i = 0; i < in.n; i++)
        paths[i] = in.e[i].remote;
    if (per_path(st, "for f do if [ -f \"$f\" ]; then wc -c <\"$f\"; else echo -; fi; done",
                 paths, in.n, sizes, err) < 0)
        goto out;
    char *mpath = manifest_path(st);
    if (hp_read_file(mpath, (size_t)1 << 30, &mtext, &mlen) < 0)
        mtext = NULL;
    free(mpath);
    for (size_t i = 0; i < in.n; i++) {
        char *end;
        unsigned long long rs = strtoull(sizes[i], &end, 10);
        int remote_ok = end != sizes[i] && rs == in.e[i].size;
        in.e[i].changed = !remote_ok || !manifest_says_same(mtext, mlen, &in.e[i]);
    }
    /* single files one by one; a directory with any change as one tree */
    for (size_t i = 0; i < in.n; i++) {
        struct entry *e = &in.e[i];
        if (!e->changed || e->group >= 0)
            continue;
        if (hp_conn_put(st->conn, e->local, e->remote, HP_XFER_MODE, err) < 0) {
            hp_err_prefix(err, "uploading input '%s'", e->rel);
            goto out;
        }
        if (uploaded)
            (*uploaded)++;
    }
    for (size_t g = 0; g < in.ndirs; g++) {
        size_t files = 0;
        int changed = 0;
        for (size_t i = 0; i < in.n; i++) {
            if (in.e[i].group == (long)g) {
                files++;
                changed |= in.e[i].changed;
            }
        }
        if (!changed)
            continue;
        char *local = hp_path_join(st->plan->wf->workdir, in.dirs[g]);
        char *remote = hp_path_join(st->rwork, in.dirs[g]);
        int r = hp_conn_put(st->conn, local, remote, HP_XFER_RECURSIVE | HP_XFER_MODE, err);
        free(local);
        free(remote);
        if (r < 0) {
            hp_err_prefix(err, "uploading input directory '%s'", in.dirs[g]);
            goto out;
        }
        if (uploaded)
            *uploaded += files;
    }
    if (manifest_write(st, &in, err) < 0)
        goto out;
    ret = 0;
out:
    for (size_t i = 0; sizes && i < in.n; i++)
        free(sizes[i]);
    free(sizes);
    free(paths);
    free(mtext);
    inputs_release(&in);
    return ret;
}

int hp_stage_prepare(struct hp_stage *st, const struct hp_plan *plan, const char *local_dir,
                     size_t *uploaded, struct hp_err *err)
{
    if (uploaded)
        *uploaded = 0;
    st->plan = plan;
    st->local_dir = local_dir;
    free(st->rdir);
    free(st->rwork);
    st->rdir = st->rwork = NULL;
    if (!plan->remote_workdir)
        return hp_err_set(err, HP_EINTERNAL, "staging a plan without a remote directory");
    st->rdir = hp_stage_expand(st, plan->dir, err);
    if (!st->rdir)
        return -1;
    st->rwork = hp_stage_expand(st, plan->remote_workdir, err);
    if (!st->rwork)
        return -1;
    char *logs = hp_path_join(st->rdir, "logs");
    const char *argv[] = { "mkdir", "-p", "--", st->rdir, logs, st->rwork, NULL };
    struct hp_buf eo = HP_BUF_INIT;
    int status = 0;
    int rc = run(st, argv, NULL, &eo, &status, err);
    if (rc == 0 && status != 0) {
        char *l = hp_first_line(eo.buf);
        rc = hp_err_set(err, HP_ESITE, "site '%s': cannot create the campaign directory %s: %s",
                        st->site->name, st->rdir, l);
        free(l);
    }
    hp_buf_release(&eo);
    free(logs);
    if (rc < 0)
        return -1;
    return upload_inputs(st, uploaded, err);
}

int hp_stage_collect(struct hp_stage *st, size_t i, const struct hp_jobspec *spec,
                     struct hp_err *err)
{
    if (!st->plan || !st->rwork)
        return hp_err_set(err, HP_EINTERNAL, "collect before prepare");
    const struct hp_workflow *wf = st->plan->wf;
    const struct hp_instance *in = &wf->inst[i];
    size_t nout = 0;
    while (in->outputs && in->outputs[nout])
        nout++;
    size_t n = 2 + nout;
    char **remote = hp_xcalloc(n, sizeof(*remote));
    char **local = hp_xcalloc(n, sizeof(*local));
    char **kind = hp_xcalloc(n, sizeof(*kind));
    size_t m = 0;
    int ret = -1;
    const char *logs[2] = { spec->stdout_path, spec->stderr_path };
    for (int k = 0; k < 2; k++) {
        if (!logs[k])
            continue;
        remote[m] = hp_stage_expand(st, logs[k], err);
        if (!remote[m])
            goto out;
        local[m++] = hp_stage_local_path(st->plan->dir, st->local_dir, logs[k]);
    }
    for (size_t k = 0; k < nout; k++) {
        remote[m] = hp_path_join(st->rwork, in->outputs[k]);
        local[m++] = hp_path_join(wf->workdir, in->outputs[k]);
    }
    if (per_path(st, "for f do if [ -d \"$f\" ]; then echo d; elif [ -e \"$f\" ]; then echo f; "
                     "else echo -; fi; done", remote, m, kind, err) < 0)
        goto out;
    for (size_t k = 0; k < m; k++) {
        if (kind[k][0] != 'f' && kind[k][0] != 'd')
            continue;
        int flags = kind[k][0] == 'd' ? HP_XFER_RECURSIVE | HP_XFER_MODE : HP_XFER_MODE;
        if (hp_conn_get(st->conn, remote[k], local[k], flags, err) < 0) {
            hp_err_prefix(err, "fetching %s", remote[k]);
            goto out;
        }
    }
    ret = 0;
out:
    for (size_t k = 0; k < n; k++) {
        free(remote[k]);
        free(local[k]);
        free(kind[k]);
    }
    free(remote);
    free(local);
    free(kind);
    return ret;
}
