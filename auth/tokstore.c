/* tokstore.c - token files: private directory, atomic writes, strict reads.
 *
 * Permissions are checked on what was opened (fstat after O_NOFOLLOW), so a
 * file swapped for a link between check and use is refused too. Parse errors
 * quote line and column only: jansson's text quotes the input near the
 * error, which may be part of a token. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tokstore.h"
#include "buf.h"
#include "quote.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define TOKEN_FILE_MAX (1 << 20)

char *hp_tokstore_dir(const char *dir_override)
{
    if (dir_override)
        return hp_xstrdup(dir_override);
    char *cfg = hp_config_dir();
    char *d = hp_path_join(cfg, "tokens");
    free(cfg);
    return d;
}

/* "chmod 700 'path'" style advice, path quoted for a shell when needed. */
static char *fix_cmd(const char *what, const char *path)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, what);
    hp_buf_addch(&b, ' ');
    hp_sq_quote_pretty(&b, path);
    return hp_buf_detach(&b, NULL);
}

/* st is ours and private; kind is "directory" or "file". */
static int check_private(const struct stat *st, const char *path, int is_dir, struct hp_err *err)
{
    const char *kind = is_dir ? "token directory" : "token file";
    if (is_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
        return hp_err_set(err, HP_ESYS, "%s '%s' is not a %s; remove it and log in again", kind,
                          path, is_dir ? "directory" : "regular file");
    if (st->st_uid != geteuid()) {
        char *fix = fix_cmd(is_dir ? "chown -R $(id -u)" : "chown $(id -u)", path);
        hp_err_set(err, HP_ESYS, "%s '%s' belongs to uid %u, not to you (uid %u); refusing to use "
                   "it: remove it or run '%s'", kind, path, (unsigned)st->st_uid,
                   (unsigned)geteuid(), fix);
        free(fix);
        return -1;
    }
    if (st->st_mode & 077) {
        char *fix = fix_cmd(is_dir ? "chmod 700" : "chmod 600", path);
        hp_err_set(err, HP_ESYS, "%s '%s' is open to other users (mode %04o); refusing to use "
                   "it: run '%s' (and log in again if others may have read it)", kind, path,
                   (unsigned)(st->st_mode & 07777), fix);
        free(fix);
        return -1;
    }
    return 0;
}

/* Check the directory; create it (0700) when create is set. Returns 1 when
 * it exists (and is fine), 0 when it does not and create is 0. */
static int check_dir(const char *dir, int create, struct hp_err *err)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        if (errno != ENOENT)
            return hp_err_errno(err, "token directory '%s'", dir);
        if (!create)
            return 0;
        if (hp_mkdir_p(dir, 0700) < 0)
            return hp_err_errno(err, "cannot create token directory '%s'", dir);
        if (lstat(dir, &st) < 0)
            return hp_err_errno(err, "token directory '%s'", dir);
    }
    if (S_ISLNK(st.st_mode))
        return hp_err_set(err, HP_ESYS, "token directory '%s' is a symbolic link; refusing to "
                          "use it: replace it with a directory (mkdir -m 700)", dir);
    return check_private(&st, dir, 1, err) < 0 ? -1 : 1;
}

static int check_site(const char *site, struct hp_err *err)
{
    if (!hp_site_valid_name(site))
        return hp_err_set(err, HP_EUSAGE, "'%s' is not a site name (letters, digits, '.', '_' "
                          "and '-', starting with a letter or digit)", site ? site : "");
    return 0;
}

static char *file_path(const char *dir, const char *site)
{
    return hp_xasprintf("%s/%s.json", dir, site);
}

static int corrupt(struct hp_err *err, const char *path, const char *site, const char *why)
{
    return hp_err_set(err, HP_EINPUT, "token file '%s' is not a valid token record (%s): "
                      "remove it and run 'hpcport auth login %s'", path, why, site);
}

static char *get_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? hp_xstrdup(s) : NULL;
}

static int parse_rec(json_t *o, const char *path, const char *site, struct hp_token_rec *rec,
                     struct hp_err *err)
{
    static const char *const required[] = { "site", "issuer", "client_id", "token_endpoint",
                                            "access_token", NULL };
    static const char *const optional[] = { "revocation_endpoint", "token_type",
                                            "refresh_token", "scope", "subject", NULL };
    static const char *const ints[] = { "expires_at", "obtained_at", "refreshed_at", NULL };
    char why[160];
    if (!json_is_object(o))
        return corrupt(err, path, site, "not a JSON object");
    if (json_integer_value(json_object_get(o, "version")) != 1)
        return corrupt(err, path, site, "\"version\" is not 1");
    for (size_t i = 0; required[i]; i++) {
        const char *s = json_string_value(json_object_get(o, required[i]));
        if (!s || !*s) {
            snprintf(why, sizeof(why), "\"%s\" is missing or not a string", required[i]);
            return corrupt(err, path, site, why);
        }
    }
    for (size_t i = 0; optional[i]; i++) {
        json_t *v = json_object_get(o, optional[i]);
        if (v && !json_is_string(v) && !json_is_null(v)) {
            snprintf(why, sizeof(why), "\"%s\" is not a string", optional[i]);
            return corrupt(err, path, site, why);
        }
    }
    for (size_t i = 0; ints[i]; i++) {
        json_t *v = json_object_get(o, ints[i]);
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
            snprintf(why, sizeof(why), "\"%s\" is not a time in seconds", ints[i]);
            return corrupt(err, path, site, why);
        }
    }
    if (strcmp(json_string_value(json_object_get(o, "site")), site) != 0)
        return corrupt(err, path, site, "it names another site");
    rec->site = get_str(o, "site");
    rec->issuer = get_str(o, "issuer");
    rec->client_id = get_str(o, "client_id");
    rec->token_endpoint = get_str(o, "token_endpoint");
    rec->revocation_endpoint = get_str(o, "revocation_endpoint");
    rec->access_token = get_str(o, "access_token");
    rec->token_type = get_str(o, "token_type");
    rec->refresh_token = get_str(o, "refresh_token");
    rec->scope = get_str(o, "scope");
    rec->subject = get_str(o, "subject");
    rec->expires_at = json_integer_value(json_object_get(o, "expires_at"));
    rec->obtained_at = json_integer_value(json_object_get(o, "obtained_at"));
    rec->refreshed_at = json_integer_value(json_object_get(o, "refreshed_at"));
    return 0;
}

int hp_tokstore_load(const char *dir_override, const char *site, struct hp_token_rec *rec,
                     struct hp_err *err)
{
    int ret = -1, fd = -1;
    char *dir = NULL, *path = NULL, *text = NULL;
    size_t len = 0;
    json_t *o = NULL;
    memset(rec, 0, sizeof(*rec));
    if (check_site(site, err) < 0)
        return -1;
    dir = hp_tokstore_dir(dir_override);
    int d = check_dir(dir, 0, err);
    if (d <= 0) {
        ret = d;
        goto out;
    }
    path = file_path(dir, site);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            ret = 0;
        } else if (errno == ELOOP) {
            hp_err_set(err, HP_ESYS, "token file '%s' is a symbolic link; refusing to use it: "
                       "remove it and run 'hpcport auth login %s'", path, site);
        } else {
            hp_err_errno(err, "cannot open token file '%s'", path);
        }
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        hp_err_errno(err, "token file '%s'", path);
        goto out;
    }
    if (check_private(&st, path, 0, err) < 0)
        goto out;
    if (st.st_size > TOKEN_FILE_MAX) {
        corrupt(err, path, site, "larger than 1 MiB");
        goto out;
    }
    text = hp_xmalloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            hp_err_errno(err, "cannot read token file '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    text[len] = '\0';
    json_error_t je;
    o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        char why[96];
        snprintf(why, sizeof(why), "JSON syntax error at line %d, column %d", je.line, je.column);
        corrupt(err, path, site, why);
        goto out;
    }
    if (parse_rec(o, path, site, rec, err) < 0) {
        hp_token_rec_release(rec);
        goto out;
    }
    ret = 1;
out:
    if (fd >= 0)
        close(fd);
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    json_decref(o);
    free(path);
    free(dir);
    return ret;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int hp_tokstore_save(const char *dir_override, const struct hp_token_rec *rec,
                     struct hp_err *err)
{
    int ret = -1, fd = -1;
    char *dir = NULL, *path = NULL, *tmp = NULL, *text = NULL;
    json_t *o = NULL;
    if (check_site(rec->site, err) < 0)
        return -1;
    if (!rec->issuer || !rec->client_id || !rec->token_endpoint || !rec->access_token)
        return hp_err_set(err, HP_EINTERNAL, "token record for '%s' is incomplete", rec->site);
    dir = hp_tokstore_dir(dir_override);
    if (check_dir(dir, 1, err) < 0)
        goto out;
    path = file_path(dir, rec->site);
    /* an existing file others could read is reported, not silently replaced */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) && check_private(&st, path, 0, err) < 0)
        goto out;

    o = json_object();
    json_object_set_new(o, "version", json_integer(1));
    set_str(o, "site", rec->site);
    set_str(o, "issuer", rec->issuer);
    set_str(o, "client_id", rec->client_id);
    set_str(o, "token_endpoint", rec->token_endpoint);
    set_str(o, "revocation_endpoint", rec->revocation_endpoint);
    set_str(o, "token_type", rec->token_type);
    set_str(o, "access_token", rec->access_token);
    json_object_set_new(o, "expires_at", json_integer(rec->expires_at));
    set_str(o, "refresh_token", rec->refresh_token);
    set_str(o, "scope", rec->scope);
    set_str(o, "subject", rec->subject);
    json_object_set_new(o, "obtained_at", json_integer(rec->obtained_at));
    json_object_set_new(o, "refreshed_at", json_integer(rec->refreshed_at));
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        hp_err_set(err, HP_EINTERNAL, "cannot encode the token record for '%s'", rec->site);
        goto out;
    }

    tmp = hp_xasprintf("%s/.%s.json.XXXXXX", dir, rec->site);
    fd = mkostemp(tmp, O_CLOEXEC);   /* mode 0600 */
    if (fd < 0) {
        hp_err_errno(err, "cannot create a file in token directory '%s'", dir);
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || write_all(fd, text, strlen(text)) < 0 ||
        write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
        hp_err_errno(err, "cannot write token file '%s'", tmp);
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        hp_err_errno(err, "cannot write token file '%s'", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        hp_err_errno(err, "cannot replace token file '%s'", path);
        goto out;
    }
    free(tmp);
    tmp = NULL;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {      /* the rename itself survives a crash */
        fsync(dfd);
        close(dfd);
    }
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    json_decref(o);
    free(path);
    free(dir);
    return ret;
}

int hp_tokstore_delete(const char *dir_override, const char *site, struct hp_err *err)
{
    if (check_site(site, err) < 0)
        return -1;
    char *dir = hp_tokstore_dir(dir_override);
    int ret = check_dir(dir, 0, err);
    if (ret == 1) {
        char *path = file_path(dir, site);
        if (unlink(path) == 0)
            ret = 1;
        else if (errno == ENOENT)
            ret = 0;
        else
            ret = hp_err_errno(err, "cannot remove token file '%s'", path);
        free(path);
    }
    free(dir);
    return ret;
}

int hp_tokstore_lock(const char *dir_override, const char *site, int *fd, struct hp_err *err)
{
    *fd = -1;
    if (check_site(site, err) < 0)
        return -1;
    char *dir = hp_tokstore_dir(dir_override);
    char *path = hp_xasprintf("%s/.%s.lock", dir, site);
    int ret = -1;
    if (check_dir(dir, 1, err) < 0)
        goto out;
    int l = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (l < 0) {
        hp_err_errno(err, "cannot open lock file '%s'", path);
        goto out;
    }
    while (flock(l, LOCK_EX) < 0) {
        if (errno != EINTR) {
            hp_err_errno(err, "cannot lock '%s'", path);
            close(l);
            goto out;
        }
    }
    *fd = l;
    ret = 0;
out:
    free(path);
    free(dir);
    return ret;
}

void hp_tokstore_unlock(int fd)
{
    if (fd >= 0)
        close(fd);   /* releases the flock */
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hp_tokstore_list(const char *dir_override, char ***sites, struct hp_err *err)
{
    char **v = NULL;
    size_t n = 0, alloc = 0;
    *sites = NULL;
    char *dir = hp_tokstore_dir(dir_override);
    int d = check_dir(dir, 0, err);
    if (d < 0) {
        free(dir);
        return -1;
    }
    DIR *dh = d ? opendir(dir) : NULL;
    if (d && !dh) {
        hp_err_errno(err, "cannot read token directory '%s'", dir);
        free(dir);
        return -1;
    }
    struct dirent *e;
    while (dh && (e = readdir(dh))) {
        if (e->d_name[0] == '.' || !hp_ends_with(e->d_name, ".json"))
            continue;
        char *name = hp_xstrndup(e->d_name, strlen(e->d_name) - 5);
        if (!hp_site_valid_name(name)) {
            free(name);
            continue;
        }
        HP_ALLOC_GROW(v, n + 2, alloc);
        v[n++] = name;
    }
    if (dh)
        closedir(dh);
    free(dir);
    if (!v)
        v = hp_xcalloc(1, sizeof(*v));
    v[n] = NULL;
    qsort(v, n, sizeof(*v), cmp_str);
    *sites = v;
    return 0;
}

static void wipe(char **s)
{
    if (*s)
        OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

void hp_token_rec_release(struct hp_token_rec *rec)
{
    if (!rec)
        return;
    wipe(&rec->access_token);
    wipe(&rec->refresh_token);
    free(rec->site);
    free(rec->issuer);
    free(rec->client_id);
    free(rec->token_endpoint);
    free(rec->revocation_endpoint);
    free(rec->token_type);
    free(rec->scope);
    free(rec->subject);
    memset(rec, 0, sizeof(*rec));
}
