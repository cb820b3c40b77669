/* xfer.c - the copy engine behind put/get (see xfer.h) and this machine's
 * file system as an hp_vfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "xfer.h"
#include "conn.h"
#include "util.h"
#include "banned.h"

/* ================================================================ local vfs */

static int l_stat(struct hp_vfs *v, const char *path, struct hp_vstat *st, struct hp_err *err)
{
    (void)v;
    struct stat sb;
    if (stat(path, &sb) < 0) {
        if (errno == ENOENT)
            return 1;
        return hp_err_errno(err, "%s", path);
    }
    st->size = (uint64_t)sb.st_size;
    st->mode = sb.st_mode & 07777;
    st->is_dir = S_ISDIR(sb.st_mode);
    st->is_reg = S_ISREG(sb.st_mode);
    return 0;
}

static int l_mkdir(struct hp_vfs *v, const char *path, unsigned mode, struct hp_err *err)
{
    (void)v;
    if (mkdir(path, mode) == 0)
        return 0;
    struct stat sb;
    if (errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    return hp_err_errno(err, "cannot create directory '%s'", path);
}

static void *l_open(struct hp_vfs *v, const char *path, int how, struct hp_err *err)
{
    (void)v;
    int fl = how == HP_VFS_READ ? O_RDONLY
                                : O_WRONLY | O_CREAT | (how == HP_VFS_TRUNC ? O_TRUNC : 0);
    int fd = open(path, fl | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot open '%s'", path);
        return NULL;
    }
    int *h = hp_xmalloc(sizeof(int));
    *h = fd;
    return h;
}

static ssize_t l_read(struct hp_vfs *v, void *h, void *buf, size_t n, struct hp_err *err)
{
    (void)v;
    for (;;) {
        ssize_t r = read(*(int *)h, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hp_err_errno(err, "read");
        return r;
    }
}

static int l_write(struct hp_vfs *v, void *h, const void *buf, size_t n, struct hp_err *err)
{
    (void)v;
    const char *p = buf;
    while (n) {
        ssize_t w = write(*(int *)h, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return hp_err_errno(err, "write");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int l_seek(struct hp_vfs *v, void *h, uint64_t off, struct hp_err *err)
{
    (void)v;
    if (lseek(*(int *)h, (off_t)off, SEEK_SET) < 0)
        return hp_err_errno(err, "seek");
    return 0;
}

static int l_close(struct hp_vfs *v, void *h, unsigned mode, int sync, struct hp_err *err)
{
    (void)v;
    int fd = *(int *)h, ret = 0;
    free(h);
    if (mode && fchmod(fd, mode) < 0)
        ret = hp_err_errno(err, "chmod");
    if (sync && ret == 0 && fsync(fd) < 0)
        ret = hp_err_errno(err, "fsync");
    if (close(fd) < 0 && ret == 0)
        ret = hp_err_errno(err, "close");
    return ret;
}

static int l_rename(struct hp_vfs *v, const char *from, const char *to, struct hp_err *err)
{
    (void)v;
    if (rename(from, to) < 0)
        return hp_err_errno(err, "cannot rename '%s' to '%s'", from, to);
    return 0;
}

static int l_replace(struct hp_vfs *v, const char *const *from, const char *const *to, size_t n,
                     struct hp_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (l_rename(v, from[i], to[i], err) < 0)
            return -1;
    return 0;
}

static int l_unlink(struct hp_vfs *v, const char *path, struct hp_err *err)
{
    (void)v;
    if (unlink(path) < 0 && errno != ENOENT)
        return hp_err_errno(err, "cannot remove '%s'", path);
    return 0;
}

void hp_vents_free(struct hp_vent *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

static int cmp_vent(const void *a, const void *b)
{
    return strcmp(((const struct hp_vent *)a)->name, ((const struct hp_vent *)b)->name);
}

static int l_list(struct hp_vfs *v, const char *dir, struct hp_vent **ents, size_t *n,
                  struct hp_err *err)
{
    (void)v;
    DIR *d = opendir(dir);
    if (!d)
        return hp_err_errno(err, "cannot list '%s'", dir);
    struct hp_vent *out = NULL;
    size_t cnt = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat sb;
        HP_ALLOC_GROW(out, cnt + 1, alloc);
        struct hp_vent *e = &out[cnt++];
        memset(e, 0, sizeof(*e));
        e->name = hp_xstrdup(de->d_name);
        if (fstatat(dirfd(d), de->d_name, &sb, 0) == 0) {
            e->st.size = (uint64_t)sb.st_size;
            e->st.mode = sb.st_mode & 07777;
            e->st.is_dir = S_ISDIR(sb.st_mode);
            e->st.is_reg = S_ISREG(sb.st_mode);
        }
    }
    closedir(d);
    if (cnt)
        qsort(out, cnt, sizeof(*out), cmp_vent);
    *ents = out;
    *n = cnt;
    return 0;
}

static int l_sha256(struct hp_vfs *v, const char *const *paths, size_t n, unsigned char (*out)[32],
                    struct hp_err *err)
{
    (void)v;
    char *buf = hp_xmalloc(HP_XFER_CHUNK);
    int ret = -1;
    for (size_t i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            hp_err_errno(err, "cannot open '%s'", paths[i]);
            goto out;
        }
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        for (;;) {
            ssize_t r = read(fd, buf, HP_XFER_CHUNK);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                hp_err_errno(err, "cannot read '%s'", paths[i]);
                EVP_MD_CTX_free(ctx);
                close(fd);
                goto out;
            }
            if (r == 0)
                break;
            EVP_DigestUpdate(ctx, buf, (size_t)r);
        }
        close(fd);
        EVP_DigestFinal_ex(ctx, out[i], NULL);
        EVP_MD_CTX_free(ctx);
    }
    ret = 0;
out:
    free(buf);
    return ret;
}

static const struct hp_vfs_ops local_ops = {
    .stat = l_stat, .mkdir = l_mkdir, .open = l_open, .read = l_read, .write = l_write,
    .seek = l_seek, .close = l_close, .rename = l_rename, .replace = l_replace,
    .unlink = l_unlink, .list = l_list, .sha256 = l_sha256,
};

struct hp_vfs *hp_vfs_local(void)
{
    static struct hp_vfs v = { .ops = &local_ops, .local = 1, .name = "this machine" };
    return &v;
}

/* ================================================================ engine */

struct job {
    char *src, *dst, *part;
    uint64_t size;
    unsigned mode;
    unsigned char hash[32];     /* of what was written */
    unsigned char sum[32];      /* the site's checksum, when have_sum */
    int have_sum;
};

struct plan {
    struct job *jobs;
    size_t n, alloc;
    char **made;                /* destination directories known to exist */
    size_t nmade, amade;
};

static char *part_name(const char *dst)
{
    const char *slash = strrchr(dst, '/');
    if (!slash)
        return hp_xasprintf(".%s.hpcport-part", dst);
    return hp_xasprintf("%.*s/.%s.hpcport-part", (int)(slash - dst), dst, slash + 1);
}

static int made(struct plan *pl, const char *dir)
{
    for (size_t i = pl->nmade; i-- > 0;)
        if (!strcmp(pl->made[i], dir))
            return 1;
    return 0;
}

static void mark_made(struct plan *pl, const char *dir)
{
    HP_ALLOC_GROW(pl->made, pl->nmade + 1, pl->amade);
    pl->made[pl->nmade++] = hp_xstrdup(dir);
}

/* mkdir -p on dst. */
static int mkdir_p(struct hp_vfs *dst, struct plan *pl, const char *dir, unsigned mode,
                   struct hp_err *err)
{
    if (!*dir || !strcmp(dir, ".") || !strcmp(dir, "/") || made(pl, dir))
        return 0;
    struct hp_vstat st;
    int r = dst->ops->stat(dst, dir, &st, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        if (!st.is_dir)
            return hp_err_set(err, HP_ESYS, "'%s' on %s is not a directory", dir, dst->name);
        mark_made(pl, dir);
        return 0;
    }
    char *parent = hp_dirname(dir);
    r = strcmp(parent, dir) ? mkdir_p(dst, pl, parent, 0755, err) : 0;
    free(parent);
    if (r < 0)
        return -1;
    if (dst->ops->mkdir(dst, dir, mode, err) < 0)
        return -1;
    mark_made(pl, dir);
    return 0;
}

static int add_tree(struct hp_vfs *src, const char *spath, struct hp_vfs *dst, const char *dpath,
                    const struct hp_vstat *st, int flags, struct plan *pl, int depth,
                    struct hp_err *err)
{
    if (st->is_reg) {
        HP_ALLOC_GROW(pl->jobs, pl->n + 1, pl->alloc);
        struct job *j = &pl->jobs[pl->n++];
        memset(j, 0, sizeof(*j));
        j->src = hp_xstrdup(spath);
        j->dst = hp_xstrdup(dpath);
        j->part = part_name(dpath);
        j->size = st->size;
        j->mode = (flags & HP_XFER_MODE) ? st->mode & 07777 : (st->mode & 0777 & ~022u) | 0600;
        return 0;
    }
    if (!st->is_dir)
        return hp_err_set(err, HP_ESYS, "'%s' on %s is not a regular file or directory", spath,
                          src->name);
    if (depth > 256)
        return hp_err_set(err, HP_ESYS, "'%s': directories nested too deep (a link loop?)",
                          spath);
    unsigned dmode = (flags & HP_XFER_MODE) ? st->mode & 07777 : 0755;
    if (mkdir_p(dst, pl, dpath, dmode, err) < 0)
        return -1;
    struct hp_vent *ents = NULL;
    size_t n = 0;
    if (src->ops->list(src, spath, &ents, &n, err) < 0)
        return -1;
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        /* partial files of an interrupted transfer into this tree are not
         * content */
        if (ents[i].name[0] == '.' && hp_ends_with(ents[i].name, ".hpcport-part"))
            continue;
        char *s = hp_path_join(spath, ents[i].name), *d = hp_path_join(dpath, ents[i].name);
        if (!ents[i].st.is_reg && !ents[i].st.is_dir)
            ret = hp_err_set(err, HP_ESYS, "'%s' on %s is not a regular file or directory (or "
                             "a link to one)", s, src->name);
        else
            ret = add_tree(src, s, dst, d, &ents[i].st, flags, pl, depth + 1, err);
        free(s);
        free(d);
    }
    hp_vents_free(ents, n);
    return ret;
}

static int read_range(struct hp_vfs *v, const char *path, uint64_t off, size_t len,
                      unsigned char *buf, struct hp_err *err)
{
    void *h = v->ops->open(v, path, HP_VFS_READ, err);
    if (!h)
        return -1;
    int ret = -1;
    size_t got = 0;
    if (v->ops->seek(v, h, off, err) < 0)
        goto out;
    while (got < len) {
        ssize_t r = v->ops->read(v, h, buf + got, len - got, err);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    ret = got == len ? 0 : 1;
out:
    v->ops->close(v, h, 0, 0, err);
    return ret;
}

/* 1 if the partial file's first and last 64 KiB equal the source's. */
static int prefix_matches(struct hp_vfs *src, struct hp_vfs *dst, const struct job *j,
                          uint64_t plen, struct hp_err *err)
{
    enum { W = 64 * 1024 };
    unsigned char *a = hp_xmalloc(W), *b = hp_xmalloc(W);
    int match = 0;
    uint64_t offs[2] = { 0, plen > W ? plen - W : 0 };
    for (int k = 0; k < 2; k++) {
        size_t len = plen - offs[k] < W ? (size_t)(plen - offs[k]) : W;
        if (k == 1 && offs[1] == 0)
            break;
        if (read_range(src, j->src, offs[k], len, a, err) != 0 ||
            read_range(dst, j->part, offs[k], len, b, err) != 0 || memcmp(a, b, len))
            goto out;
    }
    match = 1;
out:
    hp_err_init(err);   /* a failed comparison only means "start over" */
    free(a);
    free(b);
    return match;
}

/* Hash bytes [0, len) of path on v into ctx. */
static int hash_prefix(struct hp_vfs *v, const char *path, uint64_t len, EVP_MD_CTX *ctx,
                       char *buf, struct hp_err *err)
{
    void *h = v->ops->open(v, path, HP_VFS_READ, err);
    if (!h)
        return -1;
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done < HP_XFER_CHUNK ? (size_t)(len - done) : HP_XFER_CHUNK;
        ssize_t r = v->ops->read(v, h, buf, want, err);
        if (r <= 0) {
            v->ops->close(v, h, 0, 0, err);
            return r < 0 ? -1 : hp_err_set(err, HP_ESYS, "'%s' is shorter than expected", path);
        }
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        done += (size_t)r;
    }
    return v->ops->close(v, h, 0, 0, err);
}

/* Hashing runs in a thread beside the copy loop: the network side of a copy
 * keeps one core busy with encryption, the hash gets another. */
struct hasher {
    pthread_t th;
    int running;
    EVP_MD_CTX *ctx;
    const char *data;
    size_t len;
};

static void *hash_main(void *arg)
{
    struct hasher *h = arg;
    EVP_DigestUpdate(h->ctx, h->data, h->len);
    return NULL;
}

static void hasher_wait(struct hasher *h)
{
    if (h->running) {
        pthread_join(h->th, NULL);
        h->running = 0;
    }
}

static void hasher_feed(struct hasher *h, const char *data, size_t len)
{
    hasher_wait(h);
    h->data = data;
    h->len = len;
    if (len >= (64u << 10) && pthread_create(&h->th, NULL, hash_main, h) == 0)
        h->running = 1;
    else
        EVP_DigestUpdate(h->ctx, data, len);
}

/* The remote side's checksum of a file that does not change while it is
 * read (the source of a get), computed on the site while the copy runs. */
struct remote_sum {
    pthread_t th;
    int running;
    struct hp_vfs *v;
    const char *path;
    unsigned char sum[32];
    int result;             /* 0 ok, 1 unavailable, -1 failed */
};

static void *remote_sum_main(void *arg)
{
    struct remote_sum *r = arg;
    struct hp_err e;
    hp_err_init(&e);
    r->result = r->v->ops->sha256(r->v, &r->path, 1, &r->sum, &e);
    return NULL;
}

/* Copy one file to its partial name; *resumed says from where. bufs are
 * two HP_XFER_CHUNK buffers. */
static int copy_one(struct hp_vfs *src, struct hp_vfs *dst, struct job *j, int allow_resume,
                    char *bufs[2], uint64_t *resumed, struct hp_err *err)
{
    uint64_t off = 0;
    struct hp_vstat pst;
    int r = dst->ops->stat(dst, j->part, &pst, err);
    if (r < 0)
        return -1;
    if (r == 0 && allow_resume && pst.is_reg && pst.size > 0 && pst.size <= j->size &&
        prefix_matches(src, dst, j, pst.size, err))
        off = pst.size;
    struct hasher hs = { .ctx = EVP_MD_CTX_new() };
    EVP_DigestInit_ex(hs.ctx, EVP_sha256(), NULL);
    struct remote_sum rs = { .v = src, .path = j->src };
    void *in = NULL, *out = NULL;
    int ret = -1, cur = 0;
    j->have_sum = 0;
    if (!src->local && j->size >= HP_XFER_CHUNK &&
        pthread_create(&rs.th, NULL, remote_sum_main, &rs) == 0)
        rs.running = 1;
    if (off) {
        /* the bytes already there count in the checksum: read them on
         * whichever side is this machine */
        struct hp_vfs *lv = src->local ? src : dst;
        const char *lp = src->local ? j->src : j->part;
        if (hash_prefix(lv, lp, off, hs.ctx, bufs[0], err) < 0)
            goto out;
    }
    *resumed = off;
    in = src->ops->open(src, j->src, HP_VFS_READ, err);
    if (!in)
        goto out;
    out = dst->ops->open(dst, j->part, off ? HP_VFS_WRITE : HP_VFS_TRUNC, err);
    if (!out)
        goto out;
    if (off && (src->ops->seek(src, in, off, err) < 0 || dst->ops->seek(dst, out, off, err) < 0))
        goto out;
    uint64_t done = off;
    for (;;) {
        /* the hasher may still read the other buffer */
        ssize_t n = src->ops->read(src, in, bufs[cur], HP_XFER_CHUNK, err);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        hasher_feed(&hs, bufs[cur], (size_t)n);
        if (dst->ops->write(dst, out, bufs[cur], (size_t)n, err) < 0)
            goto out;
        done += (size_t)n;
        cur = !cur;
    }
    hasher_wait(&hs);
    if (done != j->size) {
        hp_err_set(err, HP_ESYS, "'%s' changed while it was copied (%llu bytes, expected %llu)",
                   j->src, (unsigned long long)done, (unsigned long long)j->size);
        goto out;
    }
    void *o = out;
    out = NULL;
    if (dst->ops->close(dst, o, j->mode, 0, err) < 0)
        goto out;
    EVP_DigestFinal_ex(hs.ctx, j->hash, NULL);
    ret = 0;
out:
    hasher_wait(&hs);
    if (in)
        src->ops->close(src, in, 0, 0, err);
    if (out)
        dst->ops->close(dst, out, 0, 0, err);
    if (rs.running) {
        pthread_join(rs.th, NULL);
        if (ret == 0 && rs.result == 0) {
            memcpy(j->sum, rs.sum, 32);
            j->have_sum = 1;
        }
    }
    EVP_MD_CTX_free(hs.ctx);
    return ret;
}

static void hex(const unsigned char *h, char *out)
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Check sizes and checksums of jobs [from, to); mismatches listed in bad. */
static int verify(struct hp_vfs *src, struct hp_vfs *dst, struct plan *pl, size_t from,
                  size_t to, size_t *bad, size_t *nbad, struct hp_err *err)
{
    *nbad = 0;
    size_t n = to - from;
    if (!n)
        return 0;
    /* the side that is not this machine hashes its own copy */
    int use_dst = !dst->local || src->local;
    struct hp_vfs *v = use_dst ? dst : src;
    const char **paths = hp_xcalloc(n, sizeof(char *));
    unsigned char (*sums)[32] = hp_xcalloc(n, 32);
    size_t *idx = hp_xcalloc(n, sizeof(size_t)), m = 0;
    /* sums computed during the copy need no second pass */
    for (size_t i = 0; i < n; i++) {
        struct job *j = &pl->jobs[from + i];
        if (j->have_sum) {
            if (memcmp(j->sum, j->hash, 32))
                bad[(*nbad)++] = from + i;
            j->have_sum = 0;
            continue;
        }
        idx[m] = from + i;
        paths[m++] = use_dst ? j->part : j->src;
    }
    int r = m ? v->ops->sha256(v, paths, m, sums, err) : 0;
    if (r == 0) {
        for (size_t i = 0; i < m; i++)
            if (memcmp(sums[i], pl->jobs[idx[i]].hash, 32))
                bad[(*nbad)++] = idx[i];
    } else if (r == 1) {
        /* no checksum there: sizes only */
        for (size_t i = 0; i < m; i++) {
            struct hp_vstat st;
            struct job *j = &pl->jobs[idx[i]];
            int s = dst->ops->stat(dst, j->part, &st, err);
            if (s < 0) {
                r = -1;
                break;
            }
            if (s == 1 || st.size != j->size)
                bad[(*nbad)++] = idx[i];
        }
        if (r == 1)
            r = 0;
    }
    free(paths);
    free(sums);
    free(idx);
    return r;
}

static int finish(struct hp_vfs *dst, struct plan *pl, size_t from, size_t to, struct hp_err *err)
{
    size_t n = to - from, nr = 0;
    const char **rf = hp_xcalloc(n + 1, sizeof(char *)), **rt = hp_xcalloc(n + 1, sizeof(char *));
    int *exists = hp_xcalloc(n + 1, sizeof(int));
    int ret = 0;
    if (dst->ops->rename_many) {
        for (size_t i = 0; i < n; i++) {
            rf[i] = pl->jobs[from + i].part;
            rt[i] = pl->jobs[from + i].dst;
        }
        ret = dst->ops->rename_many(dst, rf, rt, n, exists, err);
        for (size_t i = 0; ret == 0 && i < n; i++)
            if (exists[i]) {
                rf[nr] = pl->jobs[from + i].part;
                rt[nr++] = pl->jobs[from + i].dst;
            }
    } else {
        for (size_t i = from; i < to && ret == 0; i++) {
            struct job *j = &pl->jobs[i];
            int r = dst->ops->rename(dst, j->part, j->dst, err);
            if (r < 0) {
                ret = -1;
            } else if (r == 1) {
                rf[nr] = j->part;
                rt[nr++] = j->dst;
            }
        }
    }
    if (ret == 0 && nr)
        ret = dst->ops->replace(dst, rf, rt, nr, err);
    free(rf);
    free(rt);
    free(exists);
    return ret;
}

/* Verify and rename a batch of copied files, copying mismatches again once. */
static int settle(struct hp_vfs *src, struct hp_vfs *dst, struct plan *pl, size_t from, size_t to,
                  char *bufs[2], struct hp_err *err)
{
    size_t *bad = hp_xcalloc(to - from + 1, sizeof(size_t)), nbad = 0;
    int ret = -1;
    if (verify(src, dst, pl, from, to, bad, &nbad, err) < 0)
        goto out;
    for (size_t k = 0; k < nbad; k++) {
        struct job *j = &pl->jobs[bad[k]];
        uint64_t res;
        if (dst->ops->unlink(dst, j->part, err) < 0 ||
            copy_one(src, dst, j, 0, bufs, &res, err) < 0) {
            hp_err_prefix(err, "'%s'", j->src);
            goto out;
        }
    }
    if (nbad) {
        /* check the second copies one by one */
        for (size_t k = 0; k < nbad; k++) {
            size_t again[1], na = 0;
            if (verify(src, dst, pl, bad[k], bad[k] + 1, again, &na, err) < 0)
                goto out;
            if (na) {
                char h[65];
                hex(pl->jobs[bad[k]].hash, h);
                hp_err_set(err, HP_ESYS, "'%s' arrived as '%s' on %s with a different "
                           "checksum twice (sha256 sent %s); the partial file is kept",
                           pl->jobs[bad[k]].src, pl->jobs[bad[k]].dst, dst->name, h);
                goto out;
            }
        }
    }
    ret = finish(dst, pl, from, to, err);
out:
    free(bad);
    return ret;
}

static void plan_release(struct plan *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        free(pl->jobs[i].src);
        free(pl->jobs[i].dst);
        free(pl->jobs[i].part);
    }
    free(pl->jobs);
    for (size_t i = 0; i < pl->nmade; i++)
        free(pl->made[i]);
    free(pl->made);
}

int hp_xfer(struct hp_vfs *src, const char *spath, struct hp_vfs *dst, const char *dpath,
            int flags, struct hp_err *err)
{
    struct plan pl = { 0 };
    struct hp_vstat st;
    char *bufs[2] = { NULL, NULL };
    int ret = -1;
    int r = src->ops->stat(src, spath, &st, err);
    if (r < 0)
        goto out;
    if (r == 1) {
        hp_err_set(err, HP_ENOTFOUND, "'%s' does not exist on %s", spath, src->name);
        goto out;
    }
    if (st.is_dir && !(flags & HP_XFER_RECURSIVE)) {
        hp_err_set(err, HP_EUSAGE, "'%s' on %s is a directory: copy it recursively", spath,
                   src->name);
        goto out;
    }
    if (!*dpath) {
        hp_err_set(err, HP_EUSAGE, "empty destination path");
        goto out;
    }
    char *parent = hp_dirname(dpath);
    r = mkdir_p(dst, &pl, parent, 0755, err);
    free(parent);
    if (r < 0)
        goto out;
    if (st.is_reg) {
        /* a directory in the way cannot be replaced by a file */
        struct hp_vstat dst_st;
        r = dst->ops->stat(dst, dpath, &dst_st, err);
        if (r < 0)
            goto out;
        if (r == 0 && dst_st.is_dir) {
            hp_err_set(err, HP_ESYS, "'%s' on %s is a directory", dpath, dst->name);
            goto out;
        }
    }
    if (add_tree(src, spath, dst, dpath, &st, flags, &pl, 0, err) < 0)
        goto out;
    bufs[0] = hp_xmalloc(HP_XFER_CHUNK);
    bufs[1] = hp_xmalloc(HP_XFER_CHUNK);
    /* bulk copies of small files when a side can overlap them */
    int (*many)(struct hp_vfs *, struct hp_xfile *, size_t, int, struct hp_err *) = NULL;
    struct hp_vfs *mv = NULL;
    if (!dst->local && dst->ops->put_many && src->local) {
        many = dst->ops->put_many;
        mv = dst;
    } else if (!src->local && src->ops->get_many && dst->local) {
        many = src->ops->get_many;
        mv = src;
    }
    /* batches bound the work lost to a failure and the size of one
     * checksum command */
    size_t from = 0;
    while (from < pl.n) {
        size_t to = from;
        uint64_t bytes = 0;
        while (to < pl.n && to - from < 4096 && bytes < (1ull << 30))
            bytes += pl.jobs[to++].size;
        struct hp_xfile *xf = hp_xcalloc(to - from, sizeof(*xf));
        size_t *xi = hp_xcalloc(to - from, sizeof(size_t)), nx = 0;
        r = 0;
        for (size_t i = from; i < to && r == 0; i++) {
            struct job *j = &pl.jobs[i];
            if (many && j->size <= HP_XFER_SMALL) {
                xf[nx] = (struct hp_xfile){ .src = j->src, .part = j->part, .size = j->size,
                                            .mode = j->mode };
                xi[nx++] = i;
                continue;
            }
            uint64_t res;
            if (copy_one(src, dst, j, 1, bufs, &res, err) < 0) {
                hp_err_prefix(err, "copying '%s' to '%s' on %s", j->src, j->dst, dst->name);
                r = -1;
            }
        }
        if (r == 0 && nx) {
            r = many(mv, xf, nx, flags, err);
            for (size_t k = 0; r == 0 && k < nx; k++)
                memcpy(pl.jobs[xi[k]].hash, xf[k].hash, 32);
        }
        free(xf);
        free(xi);
        if (r < 0 || settle(src, dst, &pl, from, to, bufs, err) < 0)
            goto out;
        from = to;
    }
    ret = 0;
out:
    free(bufs[0]);
    free(bufs[1]);
    plan_release(&pl);
    return ret;
}
