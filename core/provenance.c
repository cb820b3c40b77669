/* provenance.c - what produced a campaign's results (see provenance.h). */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <git2.h>
#include <openssl/evp.h>
#include "buf.h"
#include "provenance.h"
#include "site.h"
#include "util.h"
#include "hp-build.h"
#include "banned.h"

/* changes listed at most; the rest are counted */
#define MAX_CHANGES 50

const char *hp_version_string(void)
{
    static char s[128];
    if (!s[0]) {
        const char *b = HP_BUILD_DESCRIBE;
        if (b[0])
            snprintf(s, sizeof(s), "%s (git %s)", HP_VERSION, b);
        else
            snprintf(s, sizeof(s), "%s", HP_VERSION);
    }
    return s;
}

/* ---------------------------------------------------------------- redaction */

static int secret_key(const char *k)
{
    static const char *const words[] = { "password", "passwd", "secret", "token", "apikey",
                                         "api_key", "credential" };
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        if (strcasestr(k, words[i]))
            return 1;
    return 0;
}

/* "scheme://user:password@host..." -> "scheme://user:***@host...": a new
 * string, or NULL when s holds no such password. */
static char *redact_url(const char *s)
{
    const char *p = strstr(s, "://");
    if (!p)
        return NULL;
    const char *auth = p + 3;
    size_t alen = strcspn(auth, "/?#@");
    if (auth[alen] != '@')
        return NULL;
    const char *colon = memchr(auth, ':', alen);
    if (!colon)
        return NULL;
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_add(&b, s, (size_t)(colon + 1 - s));
    hp_buf_adds(&b, "***");
    hp_buf_adds(&b, auth + alen);
    return hp_buf_detach(&b, NULL);
}

static json_t *redact(const json_t *v, const char *key)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
            json_object_set_new(o, k, redact(c, k));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(a, redact(json_array_get(v, i), key));
        return a;
    }
    if (json_is_string(v)) {
        /* a path to a key file is not a secret; the secret itself is */
        if (key && secret_key(key) && !strstr(key, "file") && !strstr(key, "command") &&
            json_string_length(v))
            return json_string("***");
        char *r = redact_url(json_string_value(v));
        if (r) {
            json_t *out = json_string(r);
            free(r);
            return out;
        }
    }
    return json_deep_copy(v);
}

json_t *hp_provenance_redact(const json_t *v)
{
    return redact(v, NULL);
}

/* ---------------------------------------------------------------- git */

static json_t *gitfail(const char *what)
{
    const git_error *e = git_error_last();
    char msg[512];
    snprintf(msg, sizeof(msg), "%s: %s", what, e && e->message ? e->message : "unknown error");
    return json_pack("{s:s}", "error", msg);
}

static const char *change_letter(unsigned f)
{
    if (f & (GIT_STATUS_INDEX_NEW))
        return "A";
    if (f & (GIT_STATUS_INDEX_DELETED | GIT_STATUS_WT_DELETED))
        return "D";
    if (f & (GIT_STATUS_INDEX_RENAMED | GIT_STATUS_WT_RENAMED))
        return "R";
    if (f & (GIT_STATUS_INDEX_TYPECHANGE | GIT_STATUS_WT_TYPECHANGE))
        return "T";
    if (f & GIT_STATUS_CONFLICTED)
        return "U";
    return "M";
}

static const unsigned tracked_change =
    GIT_STATUS_INDEX_NEW | GIT_STATUS_INDEX_MODIFIED | GIT_STATUS_INDEX_DELETED |
    GIT_STATUS_INDEX_RENAMED | GIT_STATUS_INDEX_TYPECHANGE | GIT_STATUS_WT_MODIFIED |
    GIT_STATUS_WT_DELETED | GIT_STATUS_WT_TYPECHANGE | GIT_STATUS_WT_RENAMED |
    GIT_STATUS_CONFLICTED;

static void add_status(git_repository *repo, json_t *o)
{
    git_status_options so;
    git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
    so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
               GIT_STATUS_OPT_RENAMES_HEAD_TO_INDEX | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    git_status_list *sl = NULL;
    if (git_status_list_new(&sl, repo, &so) < 0) {
        json_t *e = gitfail("reading the working tree's status");
        json_object_set(o, "error", json_object_get(e, "error"));
        json_decref(e);
        return;
    }
    json_t *changes = json_array();
    size_t n = git_status_list_entrycount(sl), untracked = 0, more = 0;
    for (size_t i = 0; i < n; i++) {
        const git_status_entry *e = git_status_byindex(sl, i);
        if (e->status & GIT_STATUS_WT_NEW) {
            untracked++;
            continue;
        }
        if (!(e->status & tracked_change))
            continue;
        const git_diff_delta *d = e->index_to_workdir ? e->index_to_workdir : e->head_to_index;
        const char *path = d ? (d->new_file.path ? d->new_file.path : d->old_file.path) : "?";
        if (json_array_size(changes) >= MAX_CHANGES) {
            more++;
            continue;
        }
        char line[PATH_MAX + 8];
        snprintf(line, sizeof(line), "%s %s", change_letter(e->status), path);
        json_array_append_new(changes, json_string(line));
    }
    git_status_list_free(sl);
    json_object_set_new(o, "dirty", json_boolean(json_array_size(changes) || more));
    json_object_set_new(o, "changes", changes);
    if (more)
        json_object_set_new(o, "more_changes", json_integer((json_int_t)more));
    json_object_set_new(o, "untracked", json_integer((json_int_t)untracked));
}

static const char *file_state(git_repository *repo, const char *workdir, const char *path)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return "outside";
    size_t wl = strlen(workdir);
    const char *state = "outside";
    if (!strncmp(abs, workdir, wl) && abs[wl]) {
        unsigned int f = 0;
        int rc = git_status_file(&f, repo, abs + wl);
        if (rc == 0) {
            if (f & GIT_STATUS_IGNORED)
                state = "ignored";
            else if (f & GIT_STATUS_WT_NEW)
                state = "untracked";
            else if (f & tracked_change)
                state = "modified";
            else
                state = "tracked";
        }
    }
    free(abs);
    return state;
}

json_t *hp_provenance_git(const char *path)
{
    git_libgit2_init();
    char *dir = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        dir = hp_xstrdup(path);
    } else {
        dir = hp_xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (!slash) {
            free(dir);
            dir = hp_xstrdup(".");
        } else {
            slash[slash == dir] = '\0';
        }
    }
    git_repository *repo = NULL;
    json_t *o;
    int rc = git_repository_open_ext(&repo, dir, 0, NULL);
    if (rc == GIT_ENOTFOUND) {
        o = json_null();
        goto out;
    }
    if (rc < 0) {
        o = gitfail("opening the git repository");
        goto out;
    }
    const char *workdir = git_repository_workdir(repo);
    o = json_object();
    json_object_set_new(o, "repository",
                        workdir ? json_string(workdir) : json_string(git_repository_path(repo)));
    git_reference *head = NULL;
    rc = git_repository_head(&head, repo);
    if (rc == 0) {
        git_object *c = NULL;
        if (git_reference_peel(&c, head, GIT_OBJECT_COMMIT) == 0) {
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr(hex, sizeof(hex), git_object_id(c));
            json_object_set_new(o, "commit", json_string(hex));
            git_object_free(c);
        }
        json_object_set_new(o, "branch", git_repository_head_detached(repo)
                                             ? json_null()
                                             : json_string(git_reference_shorthand(head)));
        git_reference_free(head);
    } else if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
        json_object_set_new(o, "commit", json_null());   /* no commit yet */
    } else {
        json_t *e = gitfail("reading HEAD");
        json_object_set(o, "error", json_object_get(e, "error"));
        json_decref(e);
    }
    /* the configuration rather than git_remote_lookup(), which leaks in
     * libgit2 1.5 (its regex match data) */
    git_config *cfg = NULL;
    git_buf url = GIT_BUF_INIT;
    if (git_repository_config_snapshot(&cfg, repo) == 0 &&
        git_config_get_string_buf(&url, cfg, "remote.origin.url") == 0) {
        char *r = redact_url(url.ptr);
        json_object_set_new(o, "remote", json_string(r ? r : url.ptr));
        free(r);
    }
    git_buf_dispose(&url);
    git_config_free(cfg);
    if (workdir) {
        add_status(repo, o);
        if (!(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)))
            json_object_set_new(o, "workflow_file", json_string(file_state(repo, workdir, path)));
    }
out:
    git_repository_free(repo);
    free(dir);
    git_libgit2_shutdown();
    return o;
}

/* ---------------------------------------------------------------- the record */

static json_t *file_sha256(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return json_null();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    unsigned char buf[65536], dig[32];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    int bad = ferror(f);
    fclose(f);
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, dig, &dl);
    EVP_MD_CTX_free(md);
    if (bad)
        return json_null();
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return json_string(hex);
}

static json_t *site_sources(const struct hp_site *s)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(s->origin, k, v) {
        const char *src = json_string_value(v);
        if (!src)
            continue;
        /* "FILE:LINE:COLUMN" -> FILE; "--set ..." and "<detected>" as they are */
        size_t len = strlen(src);
        for (int part = 0; part < 2; part++) {
            size_t d = len;
            while (d > 0 && src[d - 1] >= '0' && src[d - 1] <= '9')
                d--;
            if (d == len || d == 0 || src[d - 1] != ':' || src[0] == '-')
                break;
            len = d - 1;
        }
        int seen = 0;
        for (size_t i = 0; i < json_array_size(a) && !seen; i++) {
            const char *t = json_string_value(json_array_get(a, i));
            seen = strlen(t) == len && !strncmp(t, src, len);
        }
        if (!seen)
            json_array_append_new(a, json_stringn(src, len));
    }
    return a;
}

json_t *hp_provenance_collect(const char *workflow_path, const char *workflow_name,
                              const struct hp_site *site)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) < 0)
        host[0] = '\0';
    struct passwd *pw = getpwuid(getuid());
    json_t *r = json_object();
    json_object_set_new(r, "hpcport", json_pack("{s:s, s:s}", "version", HP_VERSION, "build",
                                                HP_BUILD_DESCRIBE));
    json_object_set_new(r, "host", json_pack("{s:s, s:s?}", "name", host, "user",
                                             pw ? pw->pw_name : NULL));
    char *abs = workflow_path ? realpath(workflow_path, NULL) : NULL;
    json_object_set_new(r, "workflow",
                        json_pack("{s:s?, s:s?, s:o}", "path", abs ? abs : workflow_path,
                                  "name", workflow_name, "sha256",
                                  workflow_path ? file_sha256(workflow_path) : json_null()));
    json_object_set_new(r, "git", workflow_path ? hp_provenance_git(abs ? abs : workflow_path)
                                                : json_null());
    free(abs);
    if (site) {
        json_t *cat = site->catalog_commit
                          ? json_pack("{s:s?, s:s}", "url", site->catalog_url, "commit",
                                      site->catalog_commit)
                          : json_null();
        json_object_set_new(r, "site", json_pack("{s:s, s:o, s:o, s:o}", "name", site->name,
                                                 "sources", site_sources(site), "profile",
                                                 hp_provenance_redact(site->root), "catalog",
                                                 cat));
    }
    return r;
}
