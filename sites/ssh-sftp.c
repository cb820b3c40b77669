/* ssh-sftp.c - a site's file system over SFTP as an hp_vfs, and put/get on
 * top of the copy engine (xfer.c).
 *
 * OpenSSH's sftp-server renames with link()+unlink(), which refuses an
 * existing target; such renames are done in one `mv -f` command per batch.
 * Checksums come from `sha256sum` run on the site, batched likewise; a site
 * without it gets size checks only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "ssh-int.h"
#include "conn.h"
#include "xfer.h"
#include "util.h"
#include "banned.h"

struct sftp_vfs {
    struct hp_vfs vfs;
    struct hp_ssh *s;
    struct ssh_link *l;
    LIBSSH2_SFTP *sftp;
    char name[300];
};

/* ------------------------------------------------------------ pool */

static LIBSSH2_SFTP *pool_get(struct hp_ssh *s, struct ssh_link *l, struct hp_err *err)
{
    if (l->sftp_pool) {
        struct ssh_sftp *e = l->sftp_pool;
        l->sftp_pool = e->next;
        LIBSSH2_SFTP *sf = e->sftp;
        free(e);
        return sf;
    }
    double step = hp_now() + SSH_OP_TIMEOUT;
    for (;;) {
        LIBSSH2_SFTP *sf = libssh2_sftp_init(l->sess);
        if (sf)
            return sf;
        if (libssh2_session_last_errno(l->sess) != LIBSSH2_ERROR_EAGAIN) {
            ssh_fail(s, l, err, "cannot start SFTP on %s (is the sftp subsystem enabled?)",
                     s->p->site);
            return NULL;
        }
        if (ssh_wait(s, l, step, err) < 0)
            return NULL;
    }
}

static void pool_put(struct ssh_link *l, LIBSSH2_SFTP *sf)
{
    struct ssh_sftp *e = hp_xmalloc(sizeof(*e));
    e->sftp = sf;
    e->next = l->sftp_pool;
    l->sftp_pool = e;
}

static void sftp_shutdown_quick(struct ssh_link *l, LIBSSH2_SFTP *sf)
{
    for (int i = 0; i < 200; i++) {
        if (libssh2_sftp_shutdown(sf) != LIBSSH2_ERROR_EAGAIN)
            return;
        struct pollfd pf = { .fd = l->sock, .events = POLLIN | POLLOUT };
        poll(&pf, 1, 10);
    }
}

void ssh_sftp_pool_free(struct hp_ssh *s, struct ssh_link *l)
{
    (void)s;
    while (l->sftp_pool) {
        struct ssh_sftp *e = l->sftp_pool;
        l->sftp_pool = e->next;
        sftp_shutdown_quick(l, e->sftp);
        free(e);
    }
}

/* ------------------------------------------------------------ errors */

static const char *fx_text(unsigned long fx)
{
    switch (fx) {
    case LIBSSH2_FX_NO_SUCH_FILE: return "no such file or directory";
    case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
    case LIBSSH2_FX_FAILURE: return "failed";
    case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
    case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file exists";
    case LIBSSH2_FX_WRITE_PROTECT: return "write protected";
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left on the file system";
    case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
    case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory";
    case LIBSSH2_FX_DIR_NOT_EMPTY: return "directory not empty";
    case LIBSSH2_FX_NO_MEDIA: return "no media";
    default: return "error";
    }
}

static int sftp_failed(struct sftp_vfs *v, int rc, struct hp_err *err, const char *what,
                       const char *path)
{
    if (err->code)
        return -1;      /* a wait already said why (timeout, connection lost) */
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        unsigned long fx = libssh2_sftp_last_error(v->sftp);
        return hp_err_set(err, fx == LIBSSH2_FX_NO_SUCH_FILE ? HP_ENOTFOUND : HP_ESYS,
                          "%s '%s' on %s: %s", what, path, v->vfs.name, fx_text(fx));
    }
    return ssh_fail(v->s, v->l, err, "%s '%s' on %s", what, path, v->vfs.name);
}

/* Run call until it stops saying EAGAIN; rc gets its result. Must be used
 * with the mutex held. */
#define SFTP_NB(v, rc, call, err, fail)                                      \
    do {                                                                     \
        double sftp_step_ = hp_now() + SSH_OP_TIMEOUT;                       \
        while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN)                      \
            if (ssh_wait((v)->s, (v)->l, sftp_step_, (err)) < 0)             \
                goto fail;                                                   \
    } while (0)

static void lock(struct sftp_vfs *v)
{
    pthread_mutex_lock(&v->s->mu);
}

static void unlock(struct sftp_vfs *v)
{
    pthread_mutex_unlock(&v->s->mu);
}

/* ------------------------------------------------------------ vfs ops */

static int r_stat(struct hp_vfs *vv, const char *path, struct hp_vstat *st, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    LIBSSH2_SFTP_ATTRIBUTES a;
    int rc, ret = -1;
    lock(v);
    SFTP_NB(v, rc, libssh2_sftp_stat_ex(v->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT,
                                        &a), err, out);
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        unsigned long fx = libssh2_sftp_last_error(v->sftp);
        if (fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH) {
            ret = 1;
            goto out;
        }
    }
    if (rc) {
        sftp_failed(v, rc, err, "cannot stat", path);
        goto out;
    }
    memset(st, 0, sizeof(*st));
    st->size = (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0;
    st->mode = (unsigned)(a.permissions & 07777);
    st->is_dir = LIBSSH2_SFTP_S_ISDIR(a.permissions);
    st->is_reg = LIBSSH2_SFTP_S_ISREG(a.permissions);
    ret = 0;
out:
    unlock(v);
    return ret;
}

static int r_mkdir(struct hp_vfs *vv, const char *path, unsigned mode, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    int rc;
    lock(v);
    SFTP_NB(v, rc, libssh2_sftp_mkdir_ex(v->sftp, path, (unsigned)strlen(path), (long)mode), err,
            fail);
    unlock(v);
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        /* OpenSSH says "failure" for an existing directory */
        struct hp_vstat st;
        struct hp_err e2;
        hp_err_init(&e2);
        if (r_stat(vv, path, &st, &e2) == 0 && st.is_dir)
            return 0;
    }
    lock(v);
    sftp_failed(v, rc, err, "cannot create directory", path);
fail:
    unlock(v);
    return -1;
}

/* An open remote file. Writes stay in flight across calls: pend holds the
 * bytes libssh2 has not had acknowledged yet (it must be handed them again,
 * followed by new data), so the pipeline never drains between chunks. */
struct rhandle {
    LIBSSH2_SFTP_HANDLE *h;
    char *pend;
    size_t pstart, plen, palloc;
};

#define WRITE_IN_FLIGHT ((size_t)4 << 20)

static void *r_open(struct hp_vfs *vv, const char *path, int how, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    unsigned long fl = how == HP_VFS_READ ? LIBSSH2_FXF_READ
                       : LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT |
                             (how == HP_VFS_TRUNC ? LIBSSH2_FXF_TRUNC : 0);
    LIBSSH2_SFTP_HANDLE *h = NULL;
    double step = hp_now() + SSH_OP_TIMEOUT;
    lock(v);
    for (;;) {
        h = libssh2_sftp_open_ex(v->sftp, path, (unsigned)strlen(path), fl, 0600,
                                 LIBSSH2_SFTP_OPENFILE);
        if (h)
            break;
        int code = libssh2_session_last_errno(v->l->sess);
        if (code != LIBSSH2_ERROR_EAGAIN) {
            sftp_failed(v, code, err, how == HP_VFS_READ ? "cannot open" : "cannot create",
                        path);
            if (how != HP_VFS_READ && err->code == HP_ENOTFOUND)
                err->code = HP_ESYS;    /* a missing directory to write in */
            break;
        }
        if (ssh_wait(v->s, v->l, step, err) < 0)
            break;
    }
    unlock(v);
    if (!h)
        return NULL;
    struct rhandle *rh = hp_xcalloc(1, sizeof(*rh));
    rh->h = h;
    return rh;
}

static ssize_t r_read(struct hp_vfs *vv, void *hh, void *buf, size_t n, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    struct rhandle *rh = hh;
    size_t got = 0;
    double step = hp_now() + SSH_OP_TIMEOUT;
    lock(v);
    /* libssh2 hands out one response (30000 bytes) per call: gather at least
     * half of buf, so that the caller writes and hashes in big pieces */
    while (got < n) {
        ssize_t r = libssh2_sftp_read(rh->h, (char *)buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            step = hp_now() + SSH_OP_TIMEOUT;
            continue;
        }
        if (r == 0)
            break;
        if (r != LIBSSH2_ERROR_EAGAIN) {
            sftp_failed(v, (int)r, err, "cannot read", "file");
            unlock(v);
            return -1;
        }
        if (got >= n / 2)
            break;
        if (ssh_wait(v->s, v->l, step, err) < 0) {
            unlock(v);
            return -1;
        }
    }
    unlock(v);
    return (ssize_t)got;
}

/* Push pending data until at most keep bytes are unacknowledged. Locked. */
static int push(struct sftp_vfs *v, struct rhandle *rh, size_t keep, struct hp_err *err)
{
    double step = hp_now() + SSH_OP_TIMEOUT;
    while (rh->plen > keep) {
        ssize_t w = libssh2_sftp_write(rh->h, rh->pend + rh->pstart, rh->plen);
        if (w == LIBSSH2_ERROR_EAGAIN) {
            if (ssh_wait(v->s, v->l, step, err) < 0)
                return -1;
            continue;
        }
        if (w < 0)
            return sftp_failed(v, (int)w, err, "cannot write", "file");
        rh->pstart += (size_t)w;
        rh->plen -= (size_t)w;
        if (w > 0)
            step = hp_now() + SSH_OP_TIMEOUT;
    }
    return 0;
}

static int r_write(struct hp_vfs *vv, void *hh, const void *buf, size_t n, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    struct rhandle *rh = hh;
    if (rh->pstart && rh->pstart + rh->plen + n > rh->palloc) {
        memmove(rh->pend, rh->pend + rh->pstart, rh->plen);
        rh->pstart = 0;
    }
    if (rh->plen + n > rh->palloc) {
        rh->palloc = rh->plen + n + WRITE_IN_FLIGHT;
        rh->pend = hp_xrealloc(rh->pend, rh->palloc);
    }
    memcpy(rh->pend + rh->pstart + rh->plen, buf, n);
    rh->plen += n;
    lock(v);
    int r = push(v, rh, WRITE_IN_FLIGHT, err);
    unlock(v);
    return r;
}

static int r_seek(struct hp_vfs *vv, void *hh, uint64_t off, struct hp_err *err)
{
    (void)vv;
    (void)err;
    struct rhandle *rh = hh;
    libssh2_sftp_seek64(rh->h, off);
    return 0;
}

static int r_close(struct hp_vfs *vv, void *hh, unsigned mode, int sync, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    struct rhandle *rh = hh;
    LIBSSH2_SFTP_HANDLE *h = rh->h;
    int rc, ret = 0;
    lock(v);
    if (rh->plen && !err->code)
        ret = push(v, rh, 0, err);
    if (mode && ret == 0) {
        LIBSSH2_SFTP_ATTRIBUTES a = { .flags = LIBSSH2_SFTP_ATTR_PERMISSIONS,
                                      .permissions = mode };
        SFTP_NB(v, rc, libssh2_sftp_fsetstat(h, &a), err, fail);
        if (rc)
            ret = sftp_failed(v, rc, err, "cannot set the mode of", "file");
    }
    if (sync && ret == 0) {
        SFTP_NB(v, rc, libssh2_sftp_fsync(h), err, fail);
        /* servers without fsync@openssh.com: nothing more to do */
    }
fail:
    /* closing frees the handle even when it fails; a dead connection fails
     * at once */
    for (double end = hp_now() + 10;;) {
        rc = libssh2_sftp_close_handle(h);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            break;
        struct hp_err e2;
        hp_err_init(&e2);
        if (ssh_wait(v->s, v->l, end, &e2) < 0) {
            /* give up on this handle: the connection is about to be
             * dropped (the wait marked it dead) */
            if (!v->l->dead)
                ssh_kill_link(v->s, v->l, "no answer to closing a file");
        }
    }
    if (rc && ret == 0 && !err->code)
        ret = sftp_failed(v, rc, err, "cannot close", "file");
    if (err->code)
        ret = -1;
    unlock(v);
    free(rh->pend);
    free(rh);
    return ret;
}

static int r_rename(struct hp_vfs *vv, const char *from, const char *to, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    int rc;
    lock(v);
    SFTP_NB(v, rc, libssh2_sftp_rename_ex(v->sftp, from, (unsigned)strlen(from), to,
                                          (unsigned)strlen(to),
                                          LIBSSH2_SFTP_RENAME_OVERWRITE |
                                              LIBSSH2_SFTP_RENAME_ATOMIC |
                                              LIBSSH2_SFTP_RENAME_NATIVE), err, fail);
    unlock(v);
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        struct hp_vstat st;
        struct hp_err e2;
        hp_err_init(&e2);
        if (r_stat(vv, to, &st, &e2) == 0 && !st.is_dir)
            return 1;
    }
    lock(v);
    sftp_failed(v, rc, err, "cannot rename to", to);
fail:
    unlock(v);
    return -1;
}

/* Run argv (words + a list of paths) on the site in batches of at most
 * ~100 KB of arguments; calls each(ud, first, count, out) per batch. */
static int exec_batches(struct sftp_vfs *v, const char *const *head, size_t nhead,
                        const char *const *items, size_t n, size_t per,
                        int (*each)(void *ud, size_t first, size_t count, struct hp_buf *out,
                                    int status, struct hp_buf *errout, struct hp_err *err),
                        void *ud, struct hp_err *err)
{
    int ret = 0;
    size_t i = 0;
    while (i < n && ret == 0) {
        size_t len = 0, k = i;
        while (k < n && (k == i || len + strlen(items[k]) < 24000)) {
            len += strlen(items[k]) + 4;
            k++;
        }
        /* per: items go in groups (pairs for mv) that must not be split */
        if (per > 1 && (k - i) % per) {
            k -= (k - i) % per;
            if (k == i)
                k = i + per;
        }
        const char **argv = hp_xcalloc(nhead + (k - i) + 1, sizeof(char *));
        for (size_t h = 0; h < nhead; h++)
            argv[h] = head[h];
        for (size_t j = i; j < k; j++)
            argv[nhead + j - i] = items[j];
        struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
        int status = 0, started;
        lock(v);
        int r = ssh_exec_locked(v->s, v->l, argv, NULL, 0, &out, &eo, &status, 3600, &started, err);
        unlock(v);
        free(argv);
        if (r < 0)
            ret = -1;
        else
            ret = each(ud, i, k - i, &out, status, &eo, err);
        hp_buf_release(&out);
        hp_buf_release(&eo);
        i = k;
    }
    return ret;
}

static int mv_done(void *ud, size_t first, size_t count, struct hp_buf *out, int status,
                   struct hp_buf *eo, struct hp_err *err)
{
    (void)ud;
    (void)first;
    (void)count;
    (void)out;
    if (status != 0)
        return hp_err_set(err, HP_ESYS, "renaming files into place failed (exit %d): %s",
                          status, eo->buf);
    return 0;
}

static int r_replace(struct hp_vfs *vv, const char *const *from, const char *const *to, size_t n,
                     struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    static const char *const head[] = {
        "sh", "-c", "while [ $# -gt 1 ]; do mv -f -- \"$1\" \"$2\" || exit 1; shift 2; done",
        "hpcport-mv",
    };
    const char **items = hp_xcalloc(2 * n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        items[2 * i] = from[i];
        items[2 * i + 1] = to[i];
    }
    int r = exec_batches(v, head, 4, items, 2 * n, 2, mv_done, NULL, err);
    free(items);
    return r;
}

static int r_unlink(struct hp_vfs *vv, const char *path, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    int rc;
    lock(v);
    SFTP_NB(v, rc, libssh2_sftp_unlink_ex(v->sftp, path, (unsigned)strlen(path)), err, fail);
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
        libssh2_sftp_last_error(v->sftp) == LIBSSH2_FX_NO_SUCH_FILE)
        rc = 0;
    if (rc)
        sftp_failed(v, rc, err, "cannot remove", path);
    unlock(v);
    return rc ? -1 : 0;
fail:
    unlock(v);
    return -1;
}

static int cmp_vent(const void *a, const void *b)
{
    return strcmp(((const struct hp_vent *)a)->name, ((const struct hp_vent *)b)->name);
}

static void attrs_to_vstat(const LIBSSH2_SFTP_ATTRIBUTES *a, struct hp_vstat *st)
{
    memset(st, 0, sizeof(*st));
    st->size = (a->flags & LIBSSH2_SFTP_ATTR_SIZE) ? a->filesize : 0;
    st->mode = (unsigned)(a->permissions & 07777);
    st->is_dir = LIBSSH2_SFTP_S_ISDIR(a->permissions);
    st->is_reg = LIBSSH2_SFTP_S_ISREG(a->permissions);
}

static int r_list(struct hp_vfs *vv, const char *dir, struct hp_vent **ents, size_t *n,
                  struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    struct hp_vent *out = NULL;
    size_t cnt = 0, alloc = 0;
    int ret = -1, rc;
    double step = hp_now() + SSH_OP_TIMEOUT;
    char name[4096];
    lock(v);
    for (;;) {
        h = libssh2_sftp_open_ex(v->sftp, dir, (unsigned)strlen(dir), 0, 0,
                                 LIBSSH2_SFTP_OPENDIR);
        if (h)
            break;
        int code = libssh2_session_last_errno(v->l->sess);
        if (code != LIBSSH2_ERROR_EAGAIN) {
            sftp_failed(v, code, err, "cannot list", dir);
            goto out;
        }
        if (ssh_wait(v->s, v->l, step, err) < 0)
            goto out;
    }
    for (;;) {
        LIBSSH2_SFTP_ATTRIBUTES a;
        SFTP_NB(v, rc, libssh2_sftp_readdir_ex(h, name, sizeof(name), NULL, 0, &a), err, out_h);
        if (rc == 0)
            break;
        if (rc < 0) {
            sftp_failed(v, rc, err, "cannot list", dir);
            goto out_h;
        }
        name[rc < (int)sizeof(name) ? rc : (int)sizeof(name) - 1] = '\0';
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        HP_ALLOC_GROW(out, cnt + 1, alloc);
        struct hp_vent *e = &out[cnt++];
        e->name = hp_xstrdup(name);
        attrs_to_vstat(&a, &e->st);
        if (LIBSSH2_SFTP_S_ISLNK(a.permissions))
            e->st.size = (uint64_t)-1;  /* followed below, outside the listing */
    }
    ret = 0;
out_h:
    for (;;) {
        rc = libssh2_sftp_close_handle(h);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            break;
        struct hp_err e2;
        hp_err_init(&e2);
        if (ssh_wait(v->s, v->l, hp_now() + 10, &e2) < 0 && !v->l->dead)
            ssh_kill_link(v->s, v->l, "no answer to closing a directory");
    }
out:
    unlock(v);
    /* symbolic links: what they point to */
    for (size_t i = 0; ret == 0 && i < cnt; i++) {
        if (out[i].st.size != (uint64_t)-1)
            continue;
        char *p = hp_path_join(dir, out[i].name);
        int r = r_stat(vv, p, &out[i].st, err);
        free(p);
        if (r < 0)
            ret = -1;
        else if (r == 1)
            memset(&out[i].st, 0, sizeof(out[i].st));   /* dangling */
    }
    if (ret < 0) {
        hp_vents_free(out, cnt);
        return -1;
    }
    if (cnt)
        qsort(out, cnt, sizeof(*out), cmp_vent);
    *ents = out;
    *n = cnt;
    return 0;
}

struct sum_ctx {
    unsigned char (*out)[32];
    int unavailable;
};

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int sums_done(void *ud, size_t first, size_t count, struct hp_buf *out, int status,
                     struct hp_buf *eo, struct hp_err *err)
{
    struct sum_ctx *c = ud;
    if (status == 127 || status == 126) {
        c->unavailable = 1;
        return 0;
    }
    if (status != 0)
        return hp_err_set(err, HP_ESYS, "sha256sum on the site failed (exit %d): %s", status,
                          eo->buf);
    /* one line per file, in order; a line starting with '\' has an escaped
     * name (newlines, backslashes) after the hash */
    const char *p = out->buf;
    for (size_t i = 0; i < count; i++) {
        if (*p == '\\')
            p++;
        for (int k = 0; k < 32; k++) {
            int hi = hexval(p[2 * k]), lo = hi < 0 ? -1 : hexval(p[2 * k + 1]);
            if (hi < 0 || lo < 0)
                return hp_err_set(err, HP_ESYS, "unexpected output from sha256sum on the site");
            c->out[first + i][k] = (unsigned char)(hi << 4 | lo);
        }
        const char *nl = strchr(p, '\n');
        if (!nl && i + 1 < count)
            return hp_err_set(err, HP_ESYS, "sha256sum on the site printed too few lines");
        p = nl ? nl + 1 : p + strlen(p);
    }
    return 0;
}

static int parse_hex32(const char *p, unsigned char out[32])
{
    for (int k = 0; k < 32; k++) {
        int hi = hexval(p[2 * k]), lo = hi < 0 ? -1 : hexval(p[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* One big file: OpenSSL hashes several times faster than coreutils. */
static int sha256_openssl(struct sftp_vfs *v, const char *path, unsigned char out[32],
                          struct hp_err *err)
{
    const char *argv[] = { "sh", "-c", "exec openssl dgst -sha256 < \"$1\"", "hpcport-sum", path,
                           NULL };
    struct hp_buf o = HP_BUF_INIT, eo = HP_BUF_INIT;
    int status = 0, started, ret = 1;
    lock(v);
    int r = ssh_exec_locked(v->s, v->l, argv, NULL, 0, &o, &eo, &status, 3600, &started, err);
    unlock(v);
    if (r < 0)
        ret = -1;
    else if (status == 0) {
        /* "SHA2-256(stdin)= HEX" (OpenSSL 3) or "(stdin)= HEX" */
        const char *eq = strrchr(o.buf, '=');
        if (eq && strlen(eq) >= 66 && parse_hex32(eq + 2, out) == 0)
            ret = 0;
    }
    hp_buf_release(&o);
    hp_buf_release(&eo);
    return ret;
}

static int r_sha256(struct hp_vfs *vv, const char *const *paths, size_t n,
                    unsigned char (*out)[32], struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    if (!n)
        return 0;
    if (n == 1) {
        int r = sha256_openssl(v, paths[0], out[0], err);
        if (r <= 0)
            return r;
    }
    /* the names go on standard input, NUL-separated: no length limit, no
     * quoting; xargs keeps their order */
    struct hp_buf in = HP_BUF_INIT, o = HP_BUF_INIT, eo = HP_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        hp_buf_add(&in, paths[i], strlen(paths[i]) + 1);
    const char *argv[] = { "xargs", "-0", "sha256sum", "--", NULL };
    int status = 0, started, ret = -1;
    o.cap = eo.cap = (size_t)256 << 20;
    lock(v);
    int r = ssh_exec_locked(v->s, v->l, argv, in.buf, in.len, &o, &eo, &status, 3600, &started,
                            err);
    unlock(v);
    if (r < 0)
        goto out;
    struct sum_ctx c = { .out = out };
    if (sums_done(&c, 0, n, &o, status, &eo, err) < 0)
        goto out;
    ret = c.unavailable ? 1 : 0;
out:
    hp_buf_release(&in);
    hp_buf_release(&o);
    hp_buf_release(&eo);
    return ret;
}

/* ------------------------------------------------------------ bulk */

enum { NSLOTS = 8 };
enum { S_IDLE, S_OPEN, S_IO, S_SETSTAT, S_CLOSE };

struct slot {
    LIBSSH2_SFTP *sftp;
    LIBSSH2_SFTP_HANDLE *h;
    int state;
    size_t idx;
    char *buf;
    size_t len, off, alloc;
};

static int slots_open(struct sftp_vfs *v, struct slot *sl, size_t n, struct hp_err *err)
{
    memset(sl, 0, n * sizeof(*sl));
    sl[0].sftp = v->sftp;
    for (size_t i = 1; i < n; i++) {
        sl[i].sftp = pool_get(v->s, v->l, err);
        if (!sl[i].sftp)
            return -1;
    }
    return 0;
}

/* Close what is open (locked), return the extra SFTP channels. */
static void slots_close(struct sftp_vfs *v, struct slot *sl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sl[i].h) {
            double end = hp_now() + 5;
            while (libssh2_sftp_close_handle(sl[i].h) == LIBSSH2_ERROR_EAGAIN) {
                struct hp_err e2;
                hp_err_init(&e2);
                if (ssh_wait(v->s, v->l, end, &e2) < 0 && !v->l->dead)
                    ssh_kill_link(v->s, v->l, "no answer to closing a file");
            }
            sl[i].h = NULL;
        }
        free(sl[i].buf);
        if (i > 0 && sl[i].sftp) {
            if (v->l->dead)
                sftp_shutdown_quick(v->l, sl[i].sftp);
            else
                pool_put(v->l, sl[i].sftp);
        }
    }
}

static int read_local(const char *path, struct slot *s, uint64_t size, unsigned char hash[32],
                      struct hp_err *err)
{
    if (s->alloc < size + 1) {
        s->alloc = size + 1;
        s->buf = hp_xrealloc(s->buf, s->alloc);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hp_err_errno(err, "cannot open '%s'", path);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, s->buf + got, s->alloc - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return hp_err_errno(err, "cannot read '%s'", path);
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > size)
            break;
    }
    close(fd);
    if (got != size)
        return hp_err_set(err, HP_ESYS, "'%s' changed while it was copied", path);
    s->len = got;
    s->off = 0;
    SHA256((const unsigned char *)s->buf, got, hash);
    return 0;
}

static int write_local(const char *path, const struct slot *s, unsigned mode, struct hp_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return hp_err_errno(err, "cannot create '%s'", path);
    size_t off = 0;
    while (off < s->len) {
        ssize_t w = write(fd, s->buf + off, s->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            close(fd);
            return hp_err_errno(err, "cannot write '%s'", path);
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) < 0 || close(fd) < 0)
        return hp_err_errno(err, "cannot write '%s'", path);
    return 0;
}

/* Drive the slots over files until all are done. put: local -> remote. */
static int bulk(struct sftp_vfs *v, int put, struct hp_xfile *files, size_t n, int flags,
                struct hp_err *err)
{
    struct slot sl[NSLOTS];
    size_t ns = n < NSLOTS ? n : NSLOTS, next = 0, done = 0;
    int ret = -1;
    lock(v);
    if (slots_open(v, sl, ns, err) < 0)
        goto out;
    double step = hp_now() + SSH_OP_TIMEOUT;
    while (done < n) {
        int progress = 0;
        for (size_t i = 0; i < ns; i++) {
            struct slot *s = &sl[i];
            for (int again = 1; again;) {
                again = 0;
                struct hp_xfile *f = s->state == S_IDLE ? NULL : &files[s->idx];
                switch (s->state) {
                case S_IDLE:
                    if (next >= n)
                        break;
                    s->idx = next++;
                    f = &files[s->idx];
                    if (put) {
                        if (read_local(f->src, s, f->size, f->hash, err) < 0)
                            goto out;
                    } else {
                        if (s->alloc < f->size + 1) {
                            s->alloc = f->size + 1;
                            s->buf = hp_xrealloc(s->buf, s->alloc);
                        }
                        s->len = (size_t)f->size;
                        s->off = 0;
                    }
                    s->state = S_OPEN;
                    again = 1;
                    break;
                case S_OPEN: {
                    const char *path = put ? f->part : f->src;
                    unsigned long fl = put ? LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT |
                                                 LIBSSH2_FXF_TRUNC
                                           : LIBSSH2_FXF_READ;
                    s->h = libssh2_sftp_open_ex(s->sftp, path, (unsigned)strlen(path), fl,
                                                (long)(f->mode & 0777), LIBSSH2_SFTP_OPENFILE);
                    if (s->h) {
                        s->state = s->len ? S_IO : (put && (flags & HP_XFER_MODE))
                                                       ? S_SETSTAT : S_CLOSE;
                        again = progress = 1;
                        break;
                    }
                    int code = libssh2_session_last_errno(v->l->sess);
                    if (code != LIBSSH2_ERROR_EAGAIN) {
                        sftp_failed(v, code, err, put ? "cannot create" : "cannot open", path);
                        if (put && err->code == HP_ENOTFOUND)
                            err->code = HP_ESYS;
                        goto out;
                    }
                    break;
                }
                case S_IO: {
                    ssize_t r = put ? libssh2_sftp_write(s->h, s->buf + s->off, s->len - s->off)
                                    : libssh2_sftp_read(s->h, s->buf + s->off, s->len - s->off);
                    if (r == LIBSSH2_ERROR_EAGAIN)
                        break;
                    if (r < 0) {
                        sftp_failed(v, (int)r, err, put ? "cannot write" : "cannot read",
                                    put ? f->part : f->src);
                        goto out;
                    }
                    if (r == 0 && !put) {
                        hp_err_set(err, HP_ESYS, "'%s' on %s shrank while it was copied",
                                   f->src, v->vfs.name);
                        goto out;
                    }
                    s->off += (size_t)r;
                    progress = 1;
                    if (s->off == s->len) {
                        s->state = put && (flags & HP_XFER_MODE) ? S_SETSTAT : S_CLOSE;
                        again = 1;
                    }
                    break;
                }
                case S_SETSTAT: {
                    LIBSSH2_SFTP_ATTRIBUTES a = { .flags = LIBSSH2_SFTP_ATTR_PERMISSIONS,
                                                  .permissions = f->mode };
                    int rc = libssh2_sftp_fsetstat(s->h, &a);
                    if (rc == LIBSSH2_ERROR_EAGAIN)
                        break;
                    if (rc) {
                        sftp_failed(v, rc, err, "cannot set the mode of", f->part);
                        goto out;
                    }
                    s->state = S_CLOSE;
                    again = progress = 1;
                    break;
                }
                case S_CLOSE: {
                    int rc = libssh2_sftp_close_handle(s->h);
                    if (rc == LIBSSH2_ERROR_EAGAIN)
                        break;
                    s->h = NULL;
                    if (rc) {
                        sftp_failed(v, rc, err, "cannot close", put ? f->part : f->src);
                        goto out;
                    }
                    if (!put) {
                        SHA256((const unsigned char *)s->buf, s->len, f->hash);
                        if (write_local(f->part, s, f->mode, err) < 0)
                            goto out;
                    }
                    s->state = S_IDLE;
                    done++;
                    again = progress = 1;
                    break;
                }
                }
            }
        }
        if (progress)
            step = hp_now() + SSH_OP_TIMEOUT;
        else if (ssh_wait(v->s, v->l, step, err) < 0)
            goto out;
    }
    ret = 0;
out:
    slots_close(v, sl, ns);
    unlock(v);
    return ret;
}

static int r_put_many(struct hp_vfs *vv, struct hp_xfile *files, size_t n, int flags,
                      struct hp_err *err)
{
    return bulk((struct sftp_vfs *)vv, 1, files, n, flags, err);
}

static int r_get_many(struct hp_vfs *vv, struct hp_xfile *files, size_t n, int flags,
                      struct hp_err *err)
{
    return bulk((struct sftp_vfs *)vv, 0, files, n, flags, err);
}

static int r_rename_many(struct hp_vfs *vv, const char *const *from, const char *const *to,
                         size_t n, int *exists, struct hp_err *err)
{
    struct sftp_vfs *v = (struct sftp_vfs *)vv;
    struct slot sl[NSLOTS];
    size_t ns = n < NSLOTS ? n : NSLOTS, next = 0, done = 0;
    int ret = -1;
    if (!n)
        return 0;
    lock(v);
    if (slots_open(v, sl, ns, err) < 0)
        goto out;
    double step = hp_now() + SSH_OP_TIMEOUT;
    while (done < n) {
        int progress = 0;
        for (size_t i = 0; i < ns; i++) {
            struct slot *s = &sl[i];
            for (int again = 1; again;) {
                again = 0;
                if (s->state == S_IDLE) {
                    if (next >= n)
                        break;
                    s->idx = next++;
                    s->state = S_OPEN;
                }
                size_t k = s->idx;
                int rc = libssh2_sftp_rename_ex(s->sftp, from[k], (unsigned)strlen(from[k]),
                                                to[k], (unsigned)strlen(to[k]),
                                                LIBSSH2_SFTP_RENAME_OVERWRITE |
                                                    LIBSSH2_SFTP_RENAME_ATOMIC |
                                                    LIBSSH2_SFTP_RENAME_NATIVE);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                    break;
                if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
                    unsigned long fx = libssh2_sftp_last_error(s->sftp);
                    /* OpenSSH: "failure" when the target exists */
                    if (fx == LIBSSH2_FX_FAILURE || fx == LIBSSH2_FX_FILE_ALREADY_EXISTS) {
                        exists[k] = 1;
                        rc = 0;
                    }
                }
                if (rc) {
                    sftp_failed(v, rc, err, "cannot rename to", to[k]);
                    goto out;
                }
                s->state = S_IDLE;
                done++;
                again = progress = 1;
            }
        }
        if (progress)
            step = hp_now() + SSH_OP_TIMEOUT;
        else if (ssh_wait(v->s, v->l, step, err) < 0)
            goto out;
    }
    ret = 0;
out:
    slots_close(v, sl, ns);
    unlock(v);
    return ret;
}

static const struct hp_vfs_ops sftp_ops = {
    .stat = r_stat, .mkdir = r_mkdir, .open = r_open, .read = r_read, .write = r_write,
    .seek = r_seek, .close = r_close, .rename = r_rename, .replace = r_replace,
    .unlink = r_unlink, .list = r_list, .sha256 = r_sha256, .put_many = r_put_many,
    .get_many = r_get_many, .rename_many = r_rename_many,
};

static int vfs_open(struct hp_ssh *s, struct sftp_vfs *v, struct hp_err *err)
{
    memset(v, 0, sizeof(*v));
    v->s = s;
    v->vfs.ops = &sftp_ops;
    v->vfs.ud = v;
    v->vfs.local = 0;
    snprintf(v->name, sizeof(v->name), "site '%s'", s->p->site);
    v->vfs.name = v->name;
    pthread_mutex_lock(&s->mu);
    v->l = ssh_acquire(s, err);
    if (v->l) {
        v->sftp = pool_get(s, v->l, err);
        if (!v->sftp) {
            ssh_release(s, v->l);
            v->l = NULL;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return v->l ? 0 : -1;
}

static int vfs_close(struct sftp_vfs *v)
{
    struct hp_ssh *s = v->s;
    pthread_mutex_lock(&s->mu);
    int dead = v->l->dead;
    if (!dead)
        pool_put(v->l, v->sftp);
    else
        sftp_shutdown_quick(v->l, v->sftp);
    ssh_release(s, v->l);
    pthread_mutex_unlock(&s->mu);
    return dead;
}

static int transfer(struct hp_ssh *s, int put, const char *local, const char *remote, int flags,
                    struct hp_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct hp_err e;
        hp_err_init(&e);
        struct sftp_vfs v;
        if (vfs_open(s, &v, &e) < 0) {
            hp_err_set(err, e.code, "%s", e.msg);
            return -1;
        }
        int r = put ? hp_xfer(hp_vfs_local(), local, &v.vfs, remote, flags, &e)
                    : hp_xfer(&v.vfs, remote, hp_vfs_local(), local, flags, &e);
        int dead = vfs_close(&v);
        if (r == 0)
            return 0;
        if (!dead || attempt == 1) {
            hp_err_set(err, e.code, "%s", e.msg);
            return -1;
        }
        /* the connection dropped: connect again and resume */
    }
    return -1;
}

int ssh_sftp_put(struct hp_ssh *s, const char *local, const char *remote, int flags,
                 struct hp_err *err)
{
    return transfer(s, 1, local, remote, flags, err);
}

int ssh_sftp_get(struct hp_ssh *s, const char *remote, const char *local, int flags,
                 struct hp_err *err)
{
    return transfer(s, 0, local, remote, flags, err);
}
