/* catalog.c - the site catalog with libgit2: a bare clone, a pinned commit,
 * profiles read from that commit's tree.
 *
 * The pin moves in one step (state.json renamed into place) and only after
 * every profile of the new commit validated, so a failed or interrupted sync
 * leaves the last good state in use. Fetched objects that are never pinned
 * stay in the bare repository unused; that is harmless. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <git2.h>
#include <jansson.h>
#include "catalog.h"
#include "auth.h"
#include "buf.h"
#include "knownhosts.h"
#include "sshauth.h"
#include "site.h"
#include "sshconfig.h"
#include "util.h"
#include "banned.h"

#define LOG_MAX 20

char *hp_catalog_dir(void)
{
    char *d = hp_data_dir();
    char *c = hp_xasprintf("%s/catalog", d);
    free(d);
    return c;
}

static char *cat_path(const char *leaf)
{
    char *d = hp_catalog_dir();
    char *p = hp_xasprintf("%s/%s", d, leaf);
    free(d);
    return p;
}

char *hp_catalog_label(const char *commit, const char *name)
{
    return hp_xasprintf("<catalog@%.12s>/sites/%s.yaml", commit, name);
}

char *hp_catalog_redact_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    if (!scheme)
        return hp_xstrdup(url);
    const char *auth = scheme + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return hp_xstrdup(url);
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return hp_xstrdup(url);
    return hp_xasprintf("%.*s:***%s", (int)(colon - url), url, at);
}

/* The text of libgit2's last error. */
static const char *git_msg(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown libgit2 error";
}

/* ---- state ---------------------------------------------------------------- */

void hp_catalog_state_release(struct hp_catalog_state *st)
{
    free(st->url);
    free(st->commit);
    free(st->ca_file);
    memset(st, 0, sizeof(*st));
}

static int is_hex40(const char *s)
{
    if (!s || strlen(s) != 40)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int hp_catalog_state_load(struct hp_catalog_state *st, struct hp_err *err)
{
    memset(st, 0, sizeof(*st));
    char *path = cat_path("state.json"), *text = NULL;
    size_t len;
    int ret = -1;
    if (hp_read_file(path, 1u << 16, &text, &len) < 0) {
        if (errno == ENOENT)
            ret = 0;
        else
            hp_err_errno(err, "cannot read the catalog state %s", path);
        goto out;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    const char *url = NULL, *commit = NULL, *ca = NULL;
    json_int_t synced = 0;
    json_t *caj = NULL;
    if (!j || json_unpack(j, "{s:s, s:s, s?:I, s?:o}", "url", &url, "commit", &commit,
                          "synced", &synced, "ca_file", &caj) < 0 || !is_hex40(commit) ||
        (caj && !json_is_null(caj) && !json_is_string(caj))) {
        hp_err_set(err, HP_ESYS, "the catalog state %s is damaged; run 'hpcport sites sync URL "
                   "--force' to start again", path);
        json_decref(j);
        goto out;
    }
    st->url = hp_xstrdup(url);
    st->commit = hp_xstrdup(commit);
    st->synced = synced;
    ca = json_string_value(caj);
    st->ca_file = ca ? hp_xstrdup(ca) : NULL;
    json_decref(j);
    ret = 0;
out:
    free(text);
    free(path);
    return ret;
}

static int state_write(const struct hp_catalog_state *st, struct hp_err *err)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s*}", "url", st->url, "commit", st->commit,
                          "synced", (json_int_t)st->synced, "ca_file", st->ca_file);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char *path = cat_path("state.json"), *tmp = cat_path("state.json.tmp");
    int ret = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        hp_err_errno(err, "cannot write %s", tmp);
        goto out;
    }
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int bad = w != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0;
    if (close(fd) < 0 || bad || rename(tmp, path) < 0) {
        hp_err_errno(err, "cannot write %s", path);
        unlink(tmp);
        goto out;
    }
    ret = 0;
out:
    free(text);
    free(path);
    free(tmp);
    return ret;
}

/* ---- reading a commit's profiles --------------------------------------------- */

/* 0 when tree entry e can be a profile (a regular file), else -1 with why in
 * *bad. */
static int profile_entry(const git_tree_entry *e, const char **bad)
{
    git_filemode_t m = git_tree_entry_filemode(e);
    if (m == GIT_FILEMODE_LINK) {
        *bad = "is a symbolic link; catalog profiles must be regular files";
        return -1;
    }
    if (m != GIT_FILEMODE_BLOB && m != GIT_FILEMODE_BLOB_EXECUTABLE) {
        *bad = "is not a regular file";
        return -1;
    }
    return 0;
}

/* Name of a sites/ entry as a profile name, or NULL when the entry is not a
 * .yaml file (ignored). *valid says whether the name is a valid profile name. */
static char *entry_profile_name(const char *fname, int *valid)
{
    size_t n = strlen(fname);
    if (n <= 5 || strcmp(fname + n - 5, ".yaml") != 0)
        return NULL;
    char *name = hp_xstrndup(fname, n - 5);
    *valid = hp_site_valid_name(name);
    return name;
}

/* The sites/ tree of commit (NULL with *none = 1 when the commit has none). */
static int sites_tree(git_repository *repo, const git_oid *commit, git_tree **out,
                      struct hp_err *err)
{
    git_commit *c = NULL;
    git_tree *root = NULL;
    git_tree_entry *e = NULL;
    int ret = -1;
    *out = NULL;
    if (git_commit_lookup(&c, repo, commit) < 0 || git_commit_tree(&root, c) < 0) {
        hp_err_set(err, HP_ESYS, "catalog commit %.12s cannot be read: %s", git_oid_tostr_s(commit),
                   git_msg());
        goto out;
    }
    int r = git_tree_entry_bypath(&e, root, "sites");
    if (r == GIT_ENOTFOUND) {
        ret = 0;
        goto out;
    }
    if (r < 0 || git_tree_entry_type(e) != GIT_OBJECT_TREE) {
        if (r < 0)
            hp_err_set(err, HP_ESYS, "catalog commit %.12s: %s", git_oid_tostr_s(commit),
                       git_msg());
        else
            ret = 0;   /* "sites" is not a folder: no profiles */
        goto out;
    }
    if (git_tree_lookup(out, repo, git_tree_entry_id(e)) < 0) {
        hp_err_set(err, HP_ESYS, "catalog commit %.12s: %s", git_oid_tostr_s(commit), git_msg());
        goto out;
    }
    ret = 0;
out:
    git_tree_entry_free(e);
    git_tree_free(root);
    git_commit_free(c);
    return ret;
}

/* ---- the pinned catalog ------------------------------------------------------ */

struct hp_catalog {
    git_repository *repo;
    git_tree *sites;    /* NULL: the commit has no sites/ folder */
    struct hp_catalog_state st;
};

static int repo_open(git_repository **repo, struct hp_err *err)
{
    char *p = cat_path("repo.git");
    int r = git_repository_open_bare(repo, p);
    if (r < 0)
        hp_err_set(err, HP_ESYS, "cannot open the catalog repository %s: %s; run 'hpcport sites "
                   "sync --force' to fetch it again", p, git_msg());
    free(p);
    return r < 0 ? -1 : 0;
}

struct hp_catalog *hp_catalog_open(struct hp_err *err)
{
    struct hp_catalog_state st;
    if (hp_catalog_state_load(&st, err) < 0)
        return NULL;
    if (!st.commit)
        return NULL;
    git_libgit2_init();
    struct hp_catalog *c = hp_xcalloc(1, sizeof(*c));
    c->st = st;
    git_oid oid;
    if (repo_open(&c->repo, err) < 0)
        goto fail;
    if (git_oid_fromstr(&oid, st.commit) < 0 || sites_tree(c->repo, &oid, &c->sites, err) < 0) {
        hp_err_set(err, HP_ESYS, "the pinned catalog commit %.12s is missing", st.commit);
        hp_err_prefix(err, "catalog %s", st.url);
        goto fail;
    }
    return c;
fail:
    hp_catalog_close(c);
    return NULL;
}

void hp_catalog_close(struct hp_catalog *c)
{
    if (!c)
        return;
    git_tree_free(c->sites);
    git_repository_free(c->repo);
    hp_catalog_state_release(&c->st);
    free(c);
    git_libgit2_shutdown();
}

const char *hp_catalog_url(const struct hp_catalog *c)
{
    return c->st.url;
}

const char *hp_catalog_commit(const struct hp_catalog *c)
{
    return c->st.commit;
}

static int blob_text(git_repository *repo, const git_oid *id, const char *label, char **data,
                     size_t *len, struct hp_err *err)
{
    git_blob *b = NULL;
    if (git_blob_lookup(&b, repo, id) < 0)
        return hp_err_set(err, HP_ESYS, "%s: cannot read: %s", label, git_msg());
    git_object_size_t n = git_blob_rawsize(b);
    if (n > HP_CATALOG_MAX_PROFILE) {
        git_blob_free(b);
        return hp_err_at(err, HP_ESITE, label, 0, 0, NULL, "file is over the limit of %u bytes",
                         HP_CATALOG_MAX_PROFILE);
    }
    *data = hp_xmalloc((size_t)n + 1);
    memcpy(*data, git_blob_rawcontent(b), (size_t)n);
    (*data)[n] = '\0';
    *len = (size_t)n;
    git_blob_free(b);
    return 0;
}

int hp_catalog_read(struct hp_catalog *c, const char *name, char **data, size_t *len,
                    struct hp_err *err)
{
    if (!c->sites || !hp_site_valid_name(name))
        return 0;
    char *fname = hp_xasprintf("%s.yaml", name);
    const git_tree_entry *e = git_tree_entry_byname(c->sites, fname);
    free(fname);
    const char *bad;
    if (!e || profile_entry(e, &bad) < 0)
        return 0;
    char *label = hp_catalog_label(c->st.commit, name);
    int r = blob_text(c->repo, git_tree_entry_id(e), label, data, len, err);
    free(label);
    return r < 0 ? -1 : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **hp_catalog_names(struct hp_catalog *c, struct hp_err *err)
{
    size_t n = c->sites ? git_tree_entrycount(c->sites) : 0, k = 0;
    char **v = hp_xcalloc(n + 1, sizeof(*v));
    (void)err;
    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(c->sites, i);
        const char *bad;
        int valid = 0;
        char *name = entry_profile_name(git_tree_entry_name(e), &valid);
        if (name && valid && profile_entry(e, &bad) == 0)
            v[k++] = name;
        else
            free(name);
    }
    qsort(v, k, sizeof(*v), cmp_str);
    return v;
}

void hp_catalog_names_free(char **names)
{
    hp_strv_free(names);
}

/* ---- remote callbacks --------------------------------------------------------- */

struct remote_ctx {
    const char *url;            /* redacted, for messages */
    struct hp_err why;          /* first reason a callback refused */
    /* ssh */
    char *host;                 /* as connected to (after the ssh configuration) */
    int port;
    char **ids;                 /* identity files to try, NULL-terminated */
    char **known;               /* known_hosts files, NULL-terminated */
    int tried_agent, next_id;
    const char *asked;          /* the last key whose passphrase was asked */
};

static int cred_cb(git_credential **out, const char *url, const char *user_from_url,
                   unsigned int allowed, void *payload)
{
    struct remote_ctx *rc = payload;
    const char *user = user_from_url && *user_from_url ? user_from_url : getenv("USER");
    (void)url;
    if (!user || !*user)
        user = "git";
    if (allowed & GIT_CREDENTIAL_USERNAME)
        return git_credential_username_new(out, user);
    if (allowed & GIT_CREDENTIAL_SSH_KEY) {
        if (!rc->tried_agent) {
            rc->tried_agent = 1;
            const char *sock = getenv("SSH_AUTH_SOCK");
            if (sock && *sock)
                return git_credential_ssh_key_from_agent(out, user);
        }
        while (rc->ids && rc->ids[rc->next_id]) {
            const char *key = rc->ids[rc->next_id++];
            int enc = hp_sshauth_key_encrypted(key);
            if (enc < 0)
                continue;
            if (!enc)
                return git_credential_ssh_key_new(out, user, NULL, key, NULL);
            /* libgit2 asks again after a failure: a wrong passphrase moves on */
            char *prompt = hp_xasprintf("Enter passphrase for key '%s': ", key), *pass = NULL;
            int r = hp_auth_ask(prompt, 0, &pass, &rc->why);
            free(prompt);
            if (r < 0) {
                hp_err_prefix(&rc->why, "key '%s' is encrypted", key);
                git_error_set_str(GIT_ERROR_SSH, "no passphrase");
                return GIT_EAUTH;
            }
            r = git_credential_ssh_key_new(out, user, NULL, key, pass);
            hp_secret_free(pass);
            rc->asked = key;
            return r;
        }
    }
    hp_err_set(&rc->why, HP_ESITE, "ssh authentication as '%s' to %s failed: tried the ssh "
               "agent%s and the key files of the ssh configuration (or ~/.ssh/id_*)%s%s%s",
               user, rc->host ? rc->host : "the catalog host",
               getenv("SSH_AUTH_SOCK") ? "" : " (SSH_AUTH_SOCK is not set)",
               rc->asked ? "; a wrong passphrase for key '" : "", rc->asked ? rc->asked : "",
               rc->asked ? "'?" : "");
    git_error_set_str(GIT_ERROR_SSH, "no more credentials to try");
    return GIT_EAUTH;
}

static int cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
    struct remote_ctx *rc = payload;
    if (cert->cert_type == GIT_CERT_X509) {
        if (valid)
            return 0;
        hp_err_set(&rc->why, HP_ESITE, "the TLS certificate of %s is not trusted: give the "
                   "certificate authority that signed it with --ca-file FILE (or "
                   "HPCPORT_CA_FILE)", host);
        return GIT_ECERTIFICATE;
    }
    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) {
        hp_err_set(&rc->why, HP_ESITE, "%s offered a certificate of a kind hpcport cannot "
                   "check", host);
        return GIT_ECERTIFICATE;
    }
    const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;
    if (!(hk->type & GIT_CERT_SSH_RAW) || !hk->hostkey) {
        hp_err_set(&rc->why, HP_ESITE, "libgit2 gave no host key for %s to check", host);
        return GIT_ECERTIFICATE;
    }
    const char *h = rc->host ? rc->host : host;
    int port = rc->port > 0 ? rc->port : 22;
    struct hp_err e;
    hp_err_init(&e);
    struct hp_kh *kh = hp_kh_load((const char *const *)rc->known, &e);
    if (!kh) {
        hp_err_set(&rc->why, e.code, "%s", e.msg);
        return GIT_ECERTIFICATE;
    }
    /* git_cert_ssh_raw_type_t numbers key types as libssh2 does */
    int type = (int)hk->raw_type;
    char *where = NULL, *fp = hp_kh_fingerprint(hk->hostkey, hk->hostkey_len);
    char *hn = hp_kh_host_name(h, port);
    enum hp_kh_result r = hp_kh_check(kh, h, port, hk->hostkey, hk->hostkey_len, type, &where);
    hp_kh_free(kh);
    int ret = 0;
    if (r == HP_KH_CHANGED) {
        hp_err_set(&rc->why, HP_ESITE, "REMOTE HOST KEY HAS CHANGED for catalog host %s: it "
                   "now offers %s key %s, but %s holds a different key. Someone may be "
                   "intercepting the connection; hpcport will not fetch. If the host's owner "
                   "confirms the new key, replace that line", hn, hp_kh_type_name(type), fp,
                   where ? where : "a known_hosts file");
        ret = GIT_ECERTIFICATE;
    } else if (r != HP_KH_MATCH) {
        hp_err_set(&rc->why, HP_ESITE, "host key of catalog host %s is not known: %s %s. If it "
                   "is the host's key, add it to ~/.ssh/known_hosts (e.g. ssh-keyscan -p %d %s, "
                   "checked against what the host's owner publishes)", hn,
                   hp_kh_type_name(type), fp, port, h);
        ret = GIT_ECERTIFICATE;
    }
    free(where);
    free(fp);
    free(hn);
    return ret;
}

/* For ssh:// URLs: apply the ssh configuration's HostName, Port and User, and
 * collect identity and known_hosts files. Returns the URL to connect to (new). */
static char *ssh_prepare(const char *url, struct remote_ctx *rc, struct hp_err *err)
{
    const char *p = url + strlen("ssh://");
    const char *slash = strchr(p, '/');
    if (!slash || slash == p) {
        hp_err_set(err, HP_EUSAGE, "bad ssh URL '%s': use ssh://[user@]host[:port]/path", rc->url);
        return NULL;
    }
    char *authority = hp_xstrndup(p, (size_t)(slash - p)), *user = NULL, *host = NULL;
    int port = 0;
    char *out = NULL;
    struct hp_sshcfg *cfg = NULL;
    struct hp_sshhost sh;
    int have_sh = 0;
    if (hp_ssh_parse_hop(authority, &user, &host, &port, err) < 0)
        goto out;
    cfg = hp_sshcfg_load(NULL, err);
    if (!cfg)
        goto out;
    if (hp_sshcfg_lookup(cfg, host, &sh, err) < 0)
        goto out;
    have_sh = 1;
    const char *real = sh.hostname ? sh.hostname : host;
    rc->host = hp_xstrdup(real);
    rc->port = port > 0 ? port : sh.port > 0 ? sh.port : 22;
    const char *u = user ? user : sh.user;
    size_t n = 0;
    while (sh.identity_files[n])
        n++;
    if (n) {
        rc->ids = hp_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            rc->ids[i] = hp_xstrdup(sh.identity_files[i]);
    } else {
        const char *home = getenv("HOME") ? getenv("HOME") : "/";
        rc->ids = hp_xcalloc(4, sizeof(char *));
        rc->ids[0] = hp_xasprintf("%s/.ssh/id_ed25519", home);
        rc->ids[1] = hp_xasprintf("%s/.ssh/id_ecdsa", home);
        rc->ids[2] = hp_xasprintf("%s/.ssh/id_rsa", home);
    }
    if (sh.identities_only == 1)
        rc->tried_agent = 1;
    n = 0;
    while (sh.known_hosts_files[n])
        n++;
    rc->known = hp_xcalloc(n + 5, sizeof(char *));
    if (n) {
        for (size_t i = 0; i < n; i++)
            rc->known[i] = hp_xstrdup(sh.known_hosts_files[i]);
    } else {
        const char *home = getenv("HOME") ? getenv("HOME") : "/";
        rc->known[n++] = hp_xasprintf("%s/.ssh/known_hosts", home);
        rc->known[n++] = hp_xasprintf("%s/.ssh/known_hosts2", home);
    }
    rc->known[n++] = hp_xstrdup("/etc/ssh/ssh_known_hosts");
    rc->known[n++] = hp_kh_own_file();
    int v6 = strchr(real, ':') != NULL;
    out = hp_xasprintf("ssh://%s%s%s%s%s:%d%s", u ? u : "", u ? "@" : "", v6 ? "[" : "", real,
                       v6 ? "]" : "", rc->port, slash);
out:
    if (have_sh)
        hp_sshhost_release(&sh);
    hp_sshcfg_free(cfg);
    free(authority);
    free(user);
    free(host);
    return out;
}

static void remote_ctx_release(struct remote_ctx *rc)
{
    free(rc->host);
    hp_strv_free(rc->ids);
    hp_strv_free(rc->known);
}

/* ---- sync ---------------------------------------------------------------- */

void hp_catalog_sync_result_release(struct hp_catalog_sync_result *r)
{
    free(r->url);
    free(r->old_commit);
    free(r->new_commit);
    for (size_t i = 0; i < r->nchanges; i++)
        free(r->changes[i].name);
    free(r->changes);
    hp_strv_free(r->log);
    memset(r, 0, sizeof(*r));
}

/* Profiles of a commit: sorted names with blob ids. */
struct pset {
    char **names;
    git_oid *ids;
    size_t n;
};

static void pset_release(struct pset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    free(s->ids);
}

/* Collect (and with check, validate) the profiles of commit. */
static int pset_load(git_repository *repo, const git_oid *commit, int check, struct pset *s,
                     struct hp_err *err)
{
    git_tree *sites = NULL;
    memset(s, 0, sizeof(*s));
    if (sites_tree(repo, commit, &sites, err) < 0)
        return -1;
    if (!sites)
        return 0;
    char cid[GIT_OID_HEXSZ + 1];
    git_oid_tostr(cid, sizeof(cid), commit);
    size_t n = git_tree_entrycount(sites);
    int ret = -1;
    if (check && n > HP_CATALOG_MAX_PROFILES) {
        hp_err_set(err, HP_ESITE, "catalog commit %.12s has %zu entries in sites/, over the "
                   "limit of %d", cid, n, HP_CATALOG_MAX_PROFILES);
        goto out;
    }
    s->names = hp_xcalloc(n + 1, sizeof(char *));
    s->ids = hp_xcalloc(n + 1, sizeof(git_oid));
    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(sites, i);
        const char *fname = git_tree_entry_name(e), *bad = NULL;
        int valid = 0;
        char *name = entry_profile_name(fname, &valid);
        if (!name)
            continue;
        if (!valid || profile_entry(e, &bad) < 0) {
            if (check) {
                struct hp_buf b = HP_BUF_INIT;
                hp_buf_adds(&b, "");
                for (const unsigned char *p = (const unsigned char *)fname; *p; p++)
                    hp_buf_addf(&b, *p < 0x20 || *p >= 0x7f ? "\\x%02x" : "%c", *p);
                if (!valid)
                    hp_err_set(err, HP_ESITE, "catalog commit %.12s: sites/%s: '%s' is not a "
                               "valid profile name: use letters, digits, '.', '_' and '-'", cid,
                               b.buf, name);
                else
                    hp_err_set(err, HP_ESITE, "catalog commit %.12s: sites/%s %s", cid, b.buf,
                               bad);
                hp_buf_release(&b);
                free(name);
                goto out;
            }
            free(name);
            continue;
        }
        if (check) {
            char *label = hp_catalog_label(cid, name), *data = NULL;
            size_t len;
            int r = blob_text(repo, git_tree_entry_id(e), label, &data, &len, err);
            if (r == 0)
                r = hp_site_check_text(name, label, data, len, err);
            free(data);
            free(label);
            if (r < 0) {
                free(name);
                goto out;
            }
        }
        s->names[s->n] = name;
        git_oid_cpy(&s->ids[s->n], git_tree_entry_id(e));
        s->n++;
    }
    ret = 0;
out:
    git_tree_free(sites);
    return ret;
}

static void add_change(struct hp_catalog_sync_result *r, char what, const char *name)
{
    r->changes = hp_xrealloc(r->changes, (r->nchanges + 1) * sizeof(*r->changes));
    r->changes[r->nchanges].what = what;
    r->changes[r->nchanges].name = hp_xstrdup(name);
    r->nchanges++;
}

static int find_name(const struct pset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return (int)i;
    return -1;
}

static int cmp_change(const void *a, const void *b)
{
    return strcmp(((const struct hp_catalog_change *)a)->name,
                  ((const struct hp_catalog_change *)b)->name);
}

static void diff_psets(const struct pset *o, const struct pset *n,
                       struct hp_catalog_sync_result *r)
{
    for (size_t i = 0; i < n->n; i++) {
        int k = find_name(o, n->names[i]);
        if (k < 0)
            add_change(r, 'A', n->names[i]);
        else if (!git_oid_equal(&o->ids[k], &n->ids[i]))
            add_change(r, 'M', n->names[i]);
    }
    for (size_t i = 0; i < o->n; i++)
        if (find_name(n, o->names[i]) < 0)
            add_change(r, 'D', o->names[i]);
    if (r->nchanges)
        qsort(r->changes, r->nchanges, sizeof(*r->changes), cmp_change);
}

/* The short log of from..to (from may be NULL), newest first. */
static void short_log(git_repository *repo, const git_oid *from, const git_oid *to,
                      struct hp_catalog_sync_result *r)
{
    git_revwalk *w = NULL;
    git_oid id;
    size_t n = 0;
    r->log = hp_xcalloc(LOG_MAX + 1, sizeof(char *));
    if (git_revwalk_new(&w, repo) < 0)
        return;
    git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
    if (git_revwalk_push(w, to) < 0 || (from && git_revwalk_hide(w, from) < 0))
        goto out;
    while (git_revwalk_next(&id, w) == 0) {
        if (n >= LOG_MAX) {
            r->more_log++;
            continue;
        }
        git_commit *c = NULL;
        if (git_commit_lookup(&c, repo, &id) < 0)
            continue;
        const char *sum = git_commit_summary(c);
        char hex[8];
        git_oid_tostr(hex, sizeof(hex), &id);
        struct hp_buf b = HP_BUF_INIT;
        hp_buf_addf(&b, "%s ", hex);
        for (const unsigned char *p = (const unsigned char *)(sum ? sum : ""); *p && b.len < 200;
             p++)
            hp_buf_addch(&b, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
        r->log[n++] = hp_xstrdup(b.buf);
        hp_buf_release(&b);
        git_commit_free(c);
    }
out:
    r->nlog = n;
    git_revwalk_free(w);
}

static int lock_catalog(const char *dir, int *fd, struct hp_err *err)
{
    char *p = hp_xasprintf("%s/lock", dir);
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int ret = -1;
    if (*fd < 0)
        hp_err_errno(err, "cannot open %s", p);
    else if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
        hp_err_set(err, HP_ESYS, "another 'hpcport sites sync' is running (%s is locked)", p);
    else
        ret = 0;
    free(p);
    return ret;
}

/* Fetch url's branches into repo; *head gets the remote HEAD. */
static int fetch(git_repository *repo, const char *url, struct remote_ctx *rc, git_oid *head,
                 struct hp_err *err)
{
    git_remote *remote = NULL;
    git_remote_callbacks cb;
    git_fetch_options fo;
    git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    const git_remote_head **heads;
    size_t nheads;
    int ret = -1, have_head = 0;
    char *refspec = hp_xstrdup("+refs/heads/*:refs/hpcport/heads/*");
    git_strarray specs = { &refspec, 1 };
    cb.credentials = cred_cb;
    cb.certificate_check = cert_cb;
    cb.payload = rc;
    fo.callbacks = cb;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    /* anonymous, and no url.*.insteadOf: only the URL given is contacted (and
       libgit2 1.5 leaks in the regex lookups those would make) */
    git_remote_create_options co;
    git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    co.repository = repo;
    co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, url, &co) < 0 ||
        git_remote_connect(remote, GIT_DIRECTION_FETCH, &cb, NULL, NULL) < 0 ||
        git_remote_ls(&heads, &nheads, remote) < 0)
        goto fail;
    for (size_t i = 0; i < nheads; i++) {
        if (!strcmp(heads[i]->name, "HEAD")) {
            git_oid_cpy(head, &heads[i]->oid);
            have_head = 1;
        }
    }
    if (!have_head) {
        hp_err_set(err, HP_ESITE, "catalog %s has no HEAD (an empty repository?)", rc->url);
        goto out;
    }
    if (git_remote_download(remote, &specs, &fo) < 0 ||
        git_remote_update_tips(remote, &cb, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE,
                               "hpcport sites sync") < 0)
        goto fail;
    git_object *obj = NULL;
    if (git_object_lookup(&obj, repo, head, GIT_OBJECT_COMMIT) < 0) {
        hp_err_set(err, HP_ESITE, "catalog %s: its HEAD %.12s is not on any branch that was "
                   "fetched", rc->url, git_oid_tostr_s(head));
        goto out;
    }
    git_object_free(obj);
    ret = 0;
    goto out;
fail:
    if (rc->why.code) {
        hp_err_set(err, rc->why.code, "catalog %s: %s", rc->url, rc->why.msg);
    } else {
        hp_err_set(err, HP_ESITE, "cannot fetch the catalog %s: %s", rc->url, git_msg());
    }
out:
    git_remote_free(remote);
    free(refspec);
    return ret;
}

static int ensure_repo(const char *dir, git_repository **repo, struct hp_err *err)
{
    char *p = hp_xasprintf("%s/repo.git", dir);
    int ret = 0;
    if (git_repository_open_bare(repo, p) < 0 && git_repository_init(repo, p, 1) < 0)
        ret = hp_err_set(err, HP_ESYS, "cannot create the catalog repository %s: %s", p,
                         git_msg());
    free(p);
    return ret;
}

static int sync_locked(const struct hp_catalog_sync_opts *o, const char *dir,
                       struct hp_catalog_sync_result *r, struct hp_err *err)
{
    struct hp_catalog_state st;
    struct remote_ctx rc = { 0 };
    git_repository *repo = NULL;
    struct pset olds = { 0 }, news = { 0 };
    char *connect_url = NULL;
    int ret = -1;
    hp_err_init(&rc.why);
    if (hp_catalog_state_load(&st, err) < 0) {
        if (!o->force || !o->url)
            return -1;
        hp_err_init(err);   /* --force with a URL starts again */
        memset(&st, 0, sizeof(st));
    }
    const char *url = o->url ? o->url : st.url;
    if (!url) {
        hp_err_set(err, HP_EUSAGE, "no catalog yet: give its URL, e.g. 'hpcport sites sync "
                   "https://example.org/site-catalog.git'");
        goto out;
    }
    char *redacted = hp_catalog_redact_url(url);
    r->url = redacted;
    rc.url = redacted;
    const char *ca = o->ca_file ? o->ca_file : getenv("HPCPORT_CA_FILE");
    if (!ca || !*ca)
        ca = st.ca_file;
    if (ca && *ca) {
        if (access(ca, R_OK) < 0) {
            hp_err_errno(err, "cannot read the CA file '%s'", ca);
            goto out;
        }
        if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca, NULL) < 0) {
            hp_err_set(err, HP_ESYS, "CA file '%s': %s", ca, git_msg());
            goto out;
        }
    }
    if (hp_starts_with(url, "ssh://")) {
        connect_url = ssh_prepare(url, &rc, err);
        if (!connect_url)
            goto out;
    } else if (hp_starts_with(url, "file://") || hp_starts_with(url, "https://") ||
               url[0] == '/') {
        connect_url = hp_xstrdup(url);
    } else {
        hp_err_set(err, HP_EUSAGE, "catalog URL '%s' is not supported: use file://, ssh:// or "
                   "https:// (plain http:// is not authenticated)", redacted);
        goto out;
    }
    if (ensure_repo(dir, &repo, err) < 0)
        goto out;
    git_oid head, old;
    if (fetch(repo, connect_url, &rc, &head, err) < 0) {
        if (st.commit) {
            size_t n = strlen(err->msg);
            snprintf(err->msg + n, sizeof(err->msg) - n, "; the pinned commit %.12s stays in "
                     "use (hpcport works offline from it)", st.commit);
        }
        goto out;
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &head);
    r->new_commit = hp_xstrdup(hex);
    /* a pinned commit that the fetch did not bring is not in the new history */
    int have_old = st.commit && git_oid_fromstr(&old, st.commit) == 0;
    int old_present = 0;
    if (have_old) {
        git_commit *oc = NULL;
        old_present = git_commit_lookup(&oc, repo, &old) == 0;
        git_commit_free(oc);
    }
    if (st.commit)
        r->old_commit = hp_xstrdup(st.commit);
    if (have_old && git_oid_equal(&head, &old) && !(o->url && st.url && strcmp(o->url, st.url))) {
        r->unchanged = 1;
    } else if (have_old && !git_oid_equal(&head, &old) &&
               (!old_present || git_graph_descendant_of(repo, &head, &old) != 1)) {
        if (!o->force) {
            hp_err_set(err, HP_ESITE, "catalog %s: its head %.12s does not descend from the "
                       "pinned commit %.12s: the history was rewritten (a force push, or another "
                       "repository). The pin stays at %.12s; if the new history is right, run "
                       "'hpcport sites sync --force'", redacted, hex, st.commit, st.commit);
            goto out;
        }
        r->forced = 1;
    }
    if (pset_load(repo, &head, 1, &news, err) < 0) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, "; catalog commit %.12s refused, the pin "
                 "stays %s%.12s", hex, st.commit ? "at " : "unset", st.commit ? st.commit : "");
        goto out;
    }
    r->nprofiles = news.n;
    if (old_present && pset_load(repo, &old, 0, &olds, err) < 0)
        goto out;
    diff_psets(&olds, &news, r);
    short_log(repo, old_present ? &old : NULL, &head, r);
    /* pin: the ref keeps the objects, state.json says what is used */
    git_reference *ref = NULL;
    if (git_reference_create(&ref, repo, "refs/hpcport/pinned", &head, 1, "pin") < 0) {
        hp_err_set(err, HP_ESYS, "cannot pin the catalog commit: %s", git_msg());
        goto out;
    }
    git_reference_free(ref);
    struct hp_catalog_state ns = { .url = (char *)url, .commit = hex,
                                   .synced = (int64_t)time(NULL), .ca_file = (char *)ca };
    if (ca && *ca && ca[0] != '/') {
        char *abs = realpath(ca, NULL);
        ns.ca_file = abs;
        ret = state_write(&ns, err);
        free(abs);
    } else {
        ns.ca_file = ca && *ca ? (char *)ca : NULL;
        ret = state_write(&ns, err);
    }
out:
    pset_release(&olds);
    pset_release(&news);
    git_repository_free(repo);
    remote_ctx_release(&rc);
    free(connect_url);
    hp_catalog_state_release(&st);
    return ret;
}

int hp_catalog_sync(const struct hp_catalog_sync_opts *o, struct hp_catalog_sync_result *r,
                    struct hp_err *err)
{
    memset(r, 0, sizeof(*r));
    char *dir = hp_catalog_dir();
    int fd = -1, ret = -1;
    if (hp_mkdir_p(dir, 0700) < 0) {
        hp_err_errno(err, "cannot create %s", dir);
        free(dir);
        return -1;
    }
    if (lock_catalog(dir, &fd, err) == 0) {
        git_libgit2_init();
        ret = sync_locked(o, dir, r, err);
        git_libgit2_shutdown();
    }
    if (fd >= 0)
        close(fd);
    free(dir);
    return ret;
}

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer (test builds): libgit2 1.5's ssh transport leaks the
 * known_hosts list it loads for its own check, which hpcport replaces by
 * cert_cb (three small blocks per connection, freed by nobody). Only blocks
 * allocated below git_remote_connect_ext are excused; hpcport's own
 * objects (remotes, repositories, trees) are allocated elsewhere. libgit2
 * has no frame pointers: the stack reaches that frame only with
 * ASAN_OPTIONS=fast_unwind_on_malloc=0 (set by tests/integration/
 * test-catalog.sh --ssh). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:git_remote_connect_ext\n";
}
#endif
