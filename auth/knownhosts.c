/* knownhosts.c - known_hosts files through libssh2's knownhost API, read
 * line by line so that one unreadable line does not hide the rest and so
 * that a changed key can be reported with its file and line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libssh2.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "knownhosts.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

struct kh_node {
    const struct libssh2_knownhost *node;
    int line;
};

struct kh_file {
    char *path;
    LIBSSH2_KNOWNHOSTS *hosts;
    struct kh_node *nodes;
    size_t nnodes, anodes;
    struct libssh2_knownhost *last;
};

struct hp_kh {
    LIBSSH2_SESSION *sess;   /* libssh2 wants one for the collections */
    struct kh_file *files;
    size_t nfiles, afiles;
};

const char *hp_kh_type_name(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS: return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ssh-ed25519";
    default: return "unknown";
    }
}

static int kh_keymask(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

char *hp_kh_host_name(const char *host, int port)
{
    if (port <= 0 || port == 22)
        return hp_xstrdup(host);
    return hp_xasprintf("[%s]:%d", host, port);
}

static char *b64(const unsigned char *data, size_t len)
{
    char *out = hp_xmalloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

char *hp_kh_fingerprint(const char *key, size_t keylen)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, keylen, md);
    char *enc = b64(md, sizeof(md));
    size_t l = strlen(enc);
    while (l && enc[l - 1] == '=')
        enc[--l] = '\0';
    char *fp = hp_xasprintf("SHA256:%s", enc);
    free(enc);
    return fp;
}

char *hp_kh_own_file(void)
{
    char *dir = hp_config_dir();
    char *f = hp_path_join(dir, "known_hosts");
    free(dir);
    return f;
}

void hp_kh_free(struct hp_kh *kh)
{
    if (!kh)
        return;
    for (size_t i = 0; i < kh->nfiles; i++) {
        libssh2_knownhost_free(kh->files[i].hosts);
        free(kh->files[i].nodes);
        free(kh->files[i].path);
    }
    free(kh->files);
    if (kh->sess)
        libssh2_session_free(kh->sess);
    free(kh);
}

/* Read one line into f, remembering the line number of the entries it added
 * (a line naming several hosts adds several). */
static void add_line(struct kh_file *f, const char *line, size_t len, int lineno)
{
    /* libssh2 1.10 drops the key's last character unless the line it is
     * given ends in a newline (counted in len) */
    char *copy = hp_xmalloc(len + 2);
    memcpy(copy, line, len);
    copy[len] = '\n';
    copy[len + 1] = '\0';
    int r = libssh2_knownhost_readline(f->hosts, copy, len + 1, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    free(copy);
    if (r != 0)
        return;
    struct libssh2_knownhost *prev = f->last, *cur;
    while (libssh2_knownhost_get(f->hosts, &cur, prev) == 0) {
        HP_ALLOC_GROW(f->nodes, f->nnodes + 1, f->anodes);
        f->nodes[f->nnodes].node = cur;
        f->nodes[f->nnodes++].line = lineno;
        prev = cur;
    }
    f->last = prev;
}

static struct kh_file *new_file(struct hp_kh *kh, const char *path, struct hp_err *err)
{
    LIBSSH2_KNOWNHOSTS *h = libssh2_knownhost_init(kh->sess);
    if (!h) {
        hp_err_set(err, HP_ESYS, "cannot set up a known_hosts collection");
        return NULL;
    }
    HP_ALLOC_GROW(kh->files, kh->nfiles + 1, kh->afiles);
    struct kh_file *f = &kh->files[kh->nfiles++];
    memset(f, 0, sizeof(*f));
    f->path = hp_xstrdup(path);
    f->hosts = h;
    return f;
}

struct hp_kh *hp_kh_load(const char *const *files, struct hp_err *err)
{
    struct hp_kh *kh = hp_xcalloc(1, sizeof(*kh));
    kh->sess = libssh2_session_init();
    if (!kh->sess) {
        free(kh);
        hp_err_set(err, HP_ESYS, "cannot initialise libssh2");
        return NULL;
    }
    for (size_t i = 0; files && files[i]; i++) {
        int dup = 0;
        for (size_t k = 0; k < kh->nfiles; k++)
            dup |= !strcmp(kh->files[k].path, files[i]);
        if (dup)
            continue;
        char *text = NULL;
        size_t len = 0;
        if (hp_read_file(files[i], 64 << 20, &text, &len) < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            hp_err_errno(err, "cannot read known hosts file '%s'", files[i]);
            hp_kh_free(kh);
            return NULL;
        }
        struct kh_file *f = new_file(kh, files[i], err);
        if (!f) {
            free(text);
            hp_kh_free(kh);
            return NULL;
        }
        int lineno = 0;
        for (char *p = text; *p;) {
            char *eol = strchr(p, '\n');
            size_t l = eol ? (size_t)(eol - p) : strlen(p);
            lineno++;
            char *s = p;
            while (*s == ' ' || *s == '\t')
                s++;
            if (*s && *s != '#' && *s != '\n' && *s != '@')
                add_line(f, p, l, lineno);
            p += l + (eol ? 1 : 0);
        }
        free(text);
    }
    return kh;
}

static int line_of(const struct kh_file *f, const struct libssh2_knownhost *n)
{
    for (size_t i = 0; i < f->nnodes; i++)
        if (f->nodes[i].node == n)
            return f->nodes[i].line;
    return 0;
}

enum hp_kh_result hp_kh_check(struct hp_kh *kh, const char *host, int port, const char *key,
                              size_t keylen, int type, char **where)
{
    char *name = hp_kh_host_name(host, port);
    enum hp_kh_result res = HP_KH_UNKNOWN;
    char *changed_at = NULL;
    if (where)
        *where = NULL;
    /* libssh2 1.10's own base64 encoding of a raw key does not compare
     * equal to what it read from the file: hand it base64 */
    int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_BASE64 | kh_keymask(type);
    char *enc = b64((const unsigned char *)key, keylen);
    for (size_t i = 0; kh && i < kh->nfiles; i++) {
        struct kh_file *f = &kh->files[i];
        struct libssh2_knownhost *n = NULL;
        /* port -1: libssh2 compares the name as given, which is the
         * "[host]:port" form OpenSSH writes (and hashes) */
        int rc = libssh2_knownhost_checkp(f->hosts, name, -1, enc, strlen(enc), mask, &n);
        if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
            if (where)
                *where = hp_xasprintf("%s:%d", f->path, line_of(f, n));
            free(changed_at);
            free(name);
            free(enc);
            return HP_KH_MATCH;
        }
        if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH && !changed_at) {
            changed_at = hp_xasprintf("%s:%d", f->path, n ? line_of(f, n) : 0);
            res = HP_KH_CHANGED;
        }
    }
    free(name);
    free(enc);
    if (where)
        *where = changed_at;
    else
        free(changed_at);
    return res;
}

unsigned hp_kh_known_types(struct hp_kh *kh, const char *host, int port)
{
    /* a key no entry can hold: "changed" means an entry of that type exists */
    static const char bogus[] = "\0hpcport-probe";
    unsigned mask = 0;
    for (int t = LIBSSH2_HOSTKEY_TYPE_RSA; t <= LIBSSH2_HOSTKEY_TYPE_ED25519; t++) {
        enum hp_kh_result r = hp_kh_check(kh, host, port, bogus, sizeof(bogus) - 1, t, NULL);
        if (r != HP_KH_UNKNOWN)
            mask |= 1u << t;
    }
    return mask;
}

int hp_kh_add(struct hp_kh *kh, const char *file, const char *host, int port, const char *key,
              size_t keylen, int type, struct hp_err *err)
{
    char *dir = hp_dirname(file);
    if (hp_mkdir_p(dir, 0700) < 0) {
        hp_err_errno(err, "cannot create '%s'", dir);
        free(dir);
        return -1;
    }
    free(dir);
    char *name = hp_kh_host_name(host, port);
    char *enc = b64((const unsigned char *)key, keylen);
    char *line = hp_xasprintf("%s %s %s\n", name, hp_kh_type_name(type), enc);
    free(enc);
    free(name);
    int ret = -1;
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot open '%s'", file);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        (void)fchmod(fd, st.st_mode & 0700);
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            hp_err_errno(err, "cannot write '%s'", file);
            close(fd);
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        hp_err_errno(err, "cannot write '%s'", file);
        goto out;
    }
    if (kh) {
        struct kh_file *f = NULL;
        for (size_t i = 0; i < kh->nfiles && !f; i++)
            if (!strcmp(kh->files[i].path, file))
                f = &kh->files[i];
        if (!f)
            f = new_file(kh, file, err);
        if (f) {
            /* the line number is one past what was there: count them */
            char *text = NULL;
            size_t tl = 0;
            int lines = 0;
            if (hp_read_file(file, 64 << 20, &text, &tl) == 0)
                for (size_t i = 0; i < tl; i++)
                    lines += text[i] == '\n';
            free(text);
            add_line(f, line, strlen(line) - 1, lines);
        }
    }
    ret = 0;
out:
    free(line);
    return ret;
}
