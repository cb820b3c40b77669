/* xfer.h - copying files and trees between two file systems (this machine,
 * a site over SFTP) with the guarantees hp_conn promises for put/get.
 *
 * Each file is written to a partial file beside its destination,
 * ".NAME.hpcport-part", then its size is checked, its SHA-256 compared (the
 * side that is not this machine computes its own; see hp_vfs_ops.sha256),
 * and only then is it renamed over NAME. A partial file left by an earlier,
 * interrupted transfer is resumed from its length when its first and last
 * 64 KiB match the source; when the final checksum then disagrees, the file
 * is copied again from the start, once. Parent directories are created.
 * Trees are copied depth-first; checksums and renames are batched per tree
 * so that a remote side runs one command per batch, not one per file. */
#ifndef HP_XFER_H
#define HP_XFER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"

struct hp_vstat {
    uint64_t size;
    unsigned mode;      /* permission bits */
    int is_dir, is_reg;
};

enum { HP_VFS_READ = 0, HP_VFS_WRITE = 1, HP_VFS_TRUNC = 2 };

struct hp_vfs;

/* A directory entry with what stat() says of it (st.is_reg/is_dir follow
 * symbolic links; is_link entries that could not be followed have both 0). */
struct hp_vent {
    char *name;
    struct hp_vstat st;
};

/* One small file of a bulk copy: src on one side, part (the partial name) on
 * the other. The copier fills hash with the SHA-256 of what it moved. */
struct hp_xfile {
    const char *src, *part;
    uint64_t size;
    unsigned mode;          /* to create part with */
    unsigned char hash[32];
};

struct hp_vfs_ops {
    /* 0 found (following symbolic links), 1 missing, -1 error */
    int (*stat)(struct hp_vfs *v, const char *path, struct hp_vstat *st, struct hp_err *err);
    /* create one directory; an existing directory is fine */
    int (*mkdir)(struct hp_vfs *v, const char *path, unsigned mode, struct hp_err *err);
    /* HP_VFS_WRITE creates (mode 0600) without truncating */
    void *(*open)(struct hp_vfs *v, const char *path, int how, struct hp_err *err);
    /* bytes read, 0 at end, -1 */
    ssize_t (*read)(struct hp_vfs *v, void *h, void *buf, size_t n, struct hp_err *err);
    /* all of buf, or -1 */
    int (*write)(struct hp_vfs *v, void *h, const void *buf, size_t n, struct hp_err *err);
    int (*seek)(struct hp_vfs *v, void *h, uint64_t off, struct hp_err *err);
    /* mode != 0: set these permission bits first; sync: flush to disk */
    int (*close)(struct hp_vfs *v, void *h, unsigned mode, int sync, struct hp_err *err);
    /* 0, 1 when the target exists and cannot be replaced this way, -1 */
    int (*rename)(struct hp_vfs *v, const char *from, const char *to, struct hp_err *err);
    /* replace to[i] by from[i] atomically, for what rename returned 1 */
    int (*replace)(struct hp_vfs *v, const char *const *from, const char *const *to, size_t n,
                   struct hp_err *err);
    int (*unlink)(struct hp_vfs *v, const char *path, struct hp_err *err);
    /* entries of dir, without . and .., sorted by name (new array; release
     * with hp_vents_free) */
    int (*list)(struct hp_vfs *v, const char *dir, struct hp_vent **ents, size_t *n,
                struct hp_err *err);
    /* SHA-256 of each path into out[i]: 0, 1 when this side cannot (no
     * sha256sum on the site), -1 */
    int (*sha256)(struct hp_vfs *v, const char *const *paths, size_t n, unsigned char (*out)[32],
                  struct hp_err *err);
    /* Optional, for many small files at once (a remote side overlaps their
     * round trips). put_many: files[i].src on this machine to files[i].part
     * on v; get_many: files[i].src on v to files[i].part on this machine.
     * Parts are created (truncated) with files[i].mode. */
    int (*put_many)(struct hp_vfs *v, struct hp_xfile *files, size_t n, int flags,
                    struct hp_err *err);
    int (*get_many)(struct hp_vfs *v, struct hp_xfile *files, size_t n, int flags,
                    struct hp_err *err);
    /* Optional: rename from[i] to to[i]; exists[i] = 1 where the target
     * exists and was left alone (for replace). */
    int (*rename_many)(struct hp_vfs *v, const char *const *from, const char *const *to,
                       size_t n, int *exists, struct hp_err *err);
};

void hp_vents_free(struct hp_vent *e, size_t n);

struct hp_vfs {
    const struct hp_vfs_ops *ops;
    void *ud;
    int local;          /* this machine */
    const char *name;   /* for messages: "local", "site 'x'" */
};

/* Copy spath on src to dpath on dst (HP_XFER_* flags from conn.h). */
int hp_xfer(struct hp_vfs *src, const char *spath, struct hp_vfs *dst, const char *dpath,
            int flags, struct hp_err *err);

/* This machine's file system. */
struct hp_vfs *hp_vfs_local(void);

/* Bytes copied per read/write call. */
#define HP_XFER_CHUNK (2u << 20)
/* Files up to this size go through put_many/get_many (no resume). */
#define HP_XFER_SMALL (1u << 20)

#endif
