/* endpoint-ref.c - a site's function endpoint from this machine (endpoint-ref.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include "adapter.h"
#include "endpoint-ref.h"
#include "conn.h"
#include "doc.h"
#include "fwd.h"
#include "hpcport-client.h"
#include "quote.h"
#include "site.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define START_TIMEOUT 120.0
#define QUERY_TIMEOUT 60.0

void hp_epref_release(struct hp_epref *ep)
{
    if (!ep)
        return;
    free(ep->site);
    free(ep->name);
    free(ep->dir);
    free(ep->state_dir);
    free(ep->host);
    free(ep->job_id);
    free(ep->tls_pin);
    free(ep->local_dir);
    free(ep->token_path);
    json_decref(ep->record);
    hp_fwd_free(ep->fwd);
    memset(ep, 0, sizeof(*ep));
}

char *hp_epref_site_dir(const char *site)
{
    char *state = hp_state_dir();
    char *d = hp_xasprintf("%s/endpoints/@%s", state, site);
    free(state);
    return d;
}

/* mkdir -p, then the last two levels (SITE, NAME) made private */
static int private_dir(const char *path, struct hp_err *err)
{
    if (hp_mkdir_p(path, 0700) < 0)
        return hp_err_errno(err, "cannot create %s", path);
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return hp_err_set(err, HP_ESYS, "%s is not a directory", path);
    if (st.st_uid != geteuid())
        return hp_err_set(err, HP_ESYS, "%s belongs to another user: remove it", path);
    if ((st.st_mode & 077) && chmod(path, 0700) < 0)
        return hp_err_errno(err, "cannot make %s private", path);
    return 0;
}

int hp_epref_write_file(const char *path, const void *data, size_t len, unsigned mode,
                     struct hp_err *err)
{
    char *tmp = hp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int ret = -1;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        hp_err_errno(err, "cannot create %s", tmp);
        goto out;
    }
    if (hp_write_full(fd, data, len) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        hp_err_errno(err, "cannot write %s", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        hp_err_errno(err, "cannot rename %s to %s", tmp, path);
        unlink(tmp);
        goto out;
    }
    ret = 0;
out:
    free(tmp);
    return ret;
}

/* ------------------------------------------------------------ records */

static int fill_from_record(struct hp_epref *ep, struct hp_err *err)
{
    json_t *r = ep->record, *e = json_object_get(r, "endpoint");
    json_t *listen = json_object_get(e, "listen");
    const char *dir = json_string_value(json_object_get(r, "dir"));
    const char *sdir = json_string_value(json_object_get(r, "state_dir"));
    const char *host = json_string_value(json_object_get(listen, "host"));
    json_int_t port = json_integer_value(json_object_get(listen, "port"));
    if (!dir || !sdir || !host || port <= 0 || port > 65535)
        return hp_err_set(err, HP_ESTATE, "%s/endpoint.json is damaged: run `hpcport endpoint "
                          "start %s --config FILE` again", ep->local_dir, ep->site);
    char *d = hp_xstrdup(dir), *sd = hp_xstrdup(sdir);
    free(ep->dir);
    free(ep->state_dir);
    free(ep->host);
    ep->dir = d;
    ep->state_dir = sd;
    ep->host = hp_xstrdup(host);
    ep->port = (int)port;
    ep->pid = (long)json_integer_value(json_object_get(e, "pid"));
    const char *job = json_string_value(json_object_get(r, "job_id"));
    const char *pin = json_string_value(json_object_get(r, "tls_pin"));
    free(ep->job_id);
    free(ep->tls_pin);
    ep->job_id = job ? hp_xstrdup(job) : NULL;
    ep->tls_pin = pin ? hp_xstrdup(pin) : NULL;
    return 0;
}

static void set_paths(struct hp_epref *ep, const char *site, const char *name)
{
    char *sd = hp_epref_site_dir(site);
    ep->site = hp_xstrdup(site);
    ep->name = hp_xstrdup(name);
    ep->local_dir = hp_xasprintf("%s/%s", sd, name);
    ep->token_path = hp_xasprintf("%s/token", ep->local_dir);
    free(sd);
}

/* names of the endpoints kept for site (sorted) */
static char **kept_names(const char *site, size_t *n)
{
    char *sd = hp_epref_site_dir(site);
    char **v = NULL;
    size_t cnt = 0, alloc = 0;
    DIR *d = opendir(sd);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *rec = hp_xasprintf("%s/%s/endpoint.json", sd, de->d_name);
        if (access(rec, R_OK) == 0) {
            HP_ALLOC_GROW(v, cnt + 2, alloc);
            v[cnt++] = hp_xstrdup(de->d_name);
            v[cnt] = NULL;
        }
        free(rec);
    }
    if (d)
        closedir(d);
    free(sd);
    for (size_t i = 1; i < cnt; i++)      /* few entries: insertion sort */
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *n = cnt;
    return v;
}

int hp_epref_load(const char *site, const char *name, struct hp_epref *ep, struct hp_err *err)
{
    memset(ep, 0, sizeof(*ep));
    char *picked = NULL;
    if (!name) {
        size_t n = 0;
        char **v = kept_names(site, &n);
        if (n == 1) {
            picked = hp_xstrdup(v[0]);
        } else if (n > 1) {
            struct hp_buf b = HP_BUF_INIT;
            for (size_t i = 0; i < n; i++)
                hp_buf_addf(&b, "%s%s", i ? ", " : "", v[i]);
            hp_err_set(err, HP_EUSAGE, "site '%s' has %zu endpoints started from here (%s): "
                       "say which with --name", site, n, b.buf);
            hp_buf_release(&b);
        } else {
            hp_err_set(err, HP_ENOTFOUND, "no endpoint was started on site '%s' from here: run "
                       "`hpcport endpoint start %s --config FILE`", site, site);
        }
        hp_strv_free(v);
        if (!picked)
            return -1;
        name = picked;
    } else if (!hp_site_valid_name(name)) {
        return hp_err_set(err, HP_EUSAGE, "'%s' is not a valid endpoint name (letters, digits, "
                          "'.', '_' and '-', starting with a letter or digit)", name);
    }
    set_paths(ep, site, name);
    free(picked);
    char *path = hp_xasprintf("%s/endpoint.json", ep->local_dir);
    json_error_t je;
    ep->record = json_load_file(path, 0, &je);
    int ret = 0;
    if (!ep->record) {
        if (access(path, F_OK) < 0)
            ret = hp_err_set(err, HP_ENOTFOUND, "no endpoint '%s' was started on site '%s' from "
                             "here: run `hpcport endpoint start %s --config FILE`", ep->name,
                             site, site);
        else
            ret = hp_err_set(err, HP_ESTATE, "%s: %s: run `hpcport endpoint start %s` again",
                             path, je.text, site);
    } else {
        ret = fill_from_record(ep, err);
    }
    free(path);
    if (ret < 0)
        hp_epref_release(ep);
    return ret;
}

/* ------------------------------------------------------------ on the site */

static char *remote_base(struct hp_conn *conn, const struct hp_site *site, struct hp_err *err)
{
    const char *base = site->scratch && *site->scratch ? site->scratch
                       : site->home && *site->home ? site->home : "$HOME";
    struct hp_stage *st = hp_stage_new(conn, site);
    char *b = hp_stage_expand(st, base, err);
    hp_stage_free(st);
    return b;
}

/* Run argv on the site; stdout into out (may be NULL). 0 with *status. */
static int run(struct hp_conn *conn, const char *const *argv, struct hp_buf *out,
               struct hp_buf *errout, int *status, double timeout, struct hp_err *err)
{
    return hp_conn_exec(conn, argv, NULL, 0, out, errout, status, timeout, err);
}

/* The site's file path (small: JSON or the token) into out; 1 when it is
 * not there. */
static int cat_remote(struct hp_conn *conn, const char *path, struct hp_buf *out,
                      struct hp_err *err)
{
    const char *argv[] = { "cat", "--", path, NULL };
    int st = 0;
    struct hp_buf eo = HP_BUF_INIT;
    out->cap = 1 << 20;
    int rc = hp_conn_exec_ex(conn, argv, NULL, 0, out, &eo, &st, QUERY_TIMEOUT,
                             HP_EXEC_IDEMPOTENT, err);
    if (rc == 0 && st != 0) {
        rc = 1;
        if (!strstr(eo.buf, "No such file"))
            rc = hp_err_set(err, HP_ESITE, "cannot read %s on the site: %s", path,
                            eo.len ? eo.buf : "cat failed");
    }
    hp_buf_release(&eo);
    return rc;
}

/* Relative paths of files the configuration names (libraries, TLS files):
 * each must be below the configuration's directory. */
static int config_files(const struct hp_doc *doc, char ***out, struct hp_err *err)
{
    char **v = NULL;
    size_t n = 0, alloc = 0;
    json_t *fns = json_object_get(doc->root, "functions"), *f;
    size_t i;
    struct { const char *ptr; const char *path; } cand[256];
    size_t nc = 0;
    char ptrs[256][64];
    json_array_foreach(fns, i, f) {
        const char *lib = json_string_value(json_object_get(f, "library"));
        if (lib && nc < 256) {
            snprintf(ptrs[nc], sizeof(ptrs[nc]), "/functions/%zu/library", i);
            cand[nc].ptr = ptrs[nc];
            cand[nc++].path = lib;
        }
    }
    json_t *tls = json_object_get(doc->root, "tls");
    const char *keys[] = { "cert", "key" };
    for (int k = 0; k < 2 && nc < 256; k++) {
        const char *p = json_string_value(json_object_get(tls, keys[k]));
        if (p) {
            snprintf(ptrs[nc], sizeof(ptrs[nc]), "/tls/%s", keys[k]);
            cand[nc].ptr = ptrs[nc];
            cand[nc++].path = p;
        }
    }
    for (size_t c = 0; c < nc; c++) {
        const char *p = cand[c].path;
        if (p[0] == '/' || p[0] == '$')
            continue;                   /* the site's own file */
        if (!strcmp(p, "..") || hp_starts_with(p, "../") || strstr(p, "/../") ||
            hp_ends_with(p, "/..")) {
            hp_doc_err(doc, err, HP_EINPUT, cand[c].ptr, 0, "'%s' is outside the "
                       "configuration's directory: move it below it, or give the site's "
                       "absolute path", p);
            hp_strv_free(v);
            return -1;
        }
        HP_ALLOC_GROW(v, n + 2, alloc);
        v[n++] = hp_xstrdup(p);
        v[n] = NULL;
    }
    if (!v)
        v = hp_xcalloc(1, sizeof(char *));
    *out = v;
    return 0;
}

static int save_local(struct hp_epref *ep, const char *token, struct hp_err *err)
{
    char *sd = hp_epref_site_dir(ep->site);
    int rc = private_dir(sd, err);
    free(sd);
    if (rc < 0 || private_dir(ep->local_dir, err) < 0)
        return -1;
    if (hp_epref_write_file(ep->token_path, token, strlen(token), 0600, err) < 0)
        return -1;
    char *js = json_dumps(ep->record, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *path = hp_xasprintf("%s/endpoint.json", ep->local_dir);
    size_t len = strlen(js);
    char *body = hp_xasprintf("%s\n", js);
    rc = hp_epref_write_file(path, body, len + 1, 0600, err);
    free(body);
    free(js);
    free(path);
    return rc;
}

static void forget_local(const struct hp_epref *ep)
{
    char *path = hp_xasprintf("%s/endpoint.json", ep->local_dir);
    unlink(ep->token_path);
    unlink(path);
    rmdir(ep->local_dir);
    free(path);
}

/* The endpoint on the login node: `serve --daemon` returns once it listens
 * and prints its endpoint.json. */
static int start_daemon(struct hp_conn *conn, const struct hp_site *site, struct hp_epref *ep,
                        const char *rcfg, json_t **info, struct hp_err *err)
{
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    const char *argv[] = { site->remote_hpcport, "endpoint", "serve", "--config", rcfg,
                           "--name", ep->name, "--listen", "127.0.0.1:0",
                           "--state-dir", ep->state_dir, "--daemon", NULL };
    int st = 0, ret = -1;
    if (run(conn, argv, &out, &eo, &st, START_TIMEOUT, err) < 0)
        goto out;
    if (st == 127) {
        hp_err_set(err, HP_ESITE, "site '%s' has no '%s' to run: install hpcport there and "
                   "set remote.hpcport in the site profile to its path", site->name,
                   site->remote_hpcport);
        goto out;
    }
    if (st != 0) {
        size_t n = eo.len;
        while (n && (eo.buf[n - 1] == '\n'))
            eo.buf[--n] = '\0';
        hp_err_set(err, HP_ESITE, "the endpoint did not start on site '%s' (exit %d): %s",
                   site->name, st, n ? eo.buf : "(no message)");
        goto out;
    }
    json_error_t je;
    *info = json_loadb(out.buf, out.len, 0, &je);
    if (!json_is_object(*info)) {
        json_decref(*info);
        *info = NULL;
        hp_err_set(err, HP_ESITE, "`%s endpoint serve --daemon` on site '%s' printed no "
                   "endpoint.json (%s): is remote.hpcport a matching hpcport?",
                   site->remote_hpcport, site->name, je.text);
        goto out;
    }
    ret = 0;
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* The last lines of a file on the site, for messages (new string). */
static char *remote_tail(struct hp_conn *conn, const char *path)
{
    const char *argv[] = { "tail", "-n", "5", "--", path, NULL };
    struct hp_buf out = HP_BUF_INIT;
    struct hp_err e;
    int st = 0;
    hp_err_init(&e);
    out.cap = 8192;
    if (hp_conn_exec(conn, argv, NULL, 0, &out, NULL, &st, QUERY_TIMEOUT, &e) < 0 || st != 0)
        hp_buf_reset(&out);
    while (out.len && out.buf[out.len - 1] == '\n')
        hp_buf_setlen(&out, out.len - 1);
    for (size_t i = 0; i < out.len; i++)
        if (out.buf[i] == '\n')
            out.buf[i] = ' ';
    return hp_buf_detach(&out, NULL);
}

/* The endpoint as a batch job through the site's adapter: it serves on the
 * compute node's first address (TLS), and writes endpoint.json into the
 * state directory on the shared file system; wait for that. */
static int start_batch(struct hp_conn *conn, const struct hp_site *site,
                       const struct hp_epref_start_opts *o, struct hp_epref *ep, const char *rcfg,
                       char **job_id, json_t **info, struct hp_err *err)
{
    int ret = -1;
    void *impl = NULL;
    char *script = NULL, *marker = hp_xasprintf("%s/.submitted", ep->dir);
    char *json = hp_xasprintf("%s/endpoint.json", ep->state_dir);
    char *sout = hp_xasprintf("%s/job.out", ep->dir), *serr = hp_xasprintf("%s/job.err", ep->dir);
    char *token = hp_xasprintf("ep%lx", (unsigned long)(hp_wall_now() * 1000));
    struct hp_buf sh = HP_BUF_INIT, b = HP_BUF_INIT;
    const struct hp_adapter_ops *ad = hp_adapter_for_site(site, err);
    if (!ad)
        goto out;
    if (!ad->submit || !ad->status) {
        hp_err_set(err, HP_ESITE, "site '%s': the %s adapter cannot run batch jobs", site->name,
                   ad->name);
        goto out;
    }
    const char *touch[] = { "sh", "-c", "mkdir -p \"$1\" && : > \"$2\"", "sh", ep->dir, marker,
                            NULL };
    int st = 0;
    if (run(conn, touch, NULL, NULL, &st, QUERY_TIMEOUT, err) < 0)
        goto out;
    if (o->bind) {
        hp_buf_adds(&sh, "addr=");
        hp_sq_quote(&sh, o->bind);
        hp_buf_adds(&sh, "\n");
    } else {
        /* the node's first address (hostname -I leaves out loopback) */
        hp_buf_adds(&sh, "addr=$(hostname -I 2>/dev/null | awk '{print $1}')\n"
                         "[ -n \"$addr\" ] || addr=$(hostname -i | awk '{print $1}')\n");
    }
    hp_buf_adds(&sh, "case $addr in *:*) addr=\"[$addr]\";; esac\nexec ");
    const char *words[] = { site->remote_hpcport, "endpoint", "serve", "--config", rcfg,
                            "--name", ep->name, "--state-dir", ep->state_dir, NULL };
    hp_sq_quote_argv(&sh, words);
    hp_buf_adds(&sh, " --listen \"$addr:0\"\n");
    script = hp_buf_detach(&sh, NULL);
    if (ad->open && !(impl = ad->open(site, err)))
        goto out;
    struct hp_jobspec spec = {
        .campaign = "endpoint", .instance = ep->name, .job_name = ep->name, .token = token,
        .attempt = 1, .shell = script, .workdir = ep->dir, .stdout_path = sout,
        .stderr_path = serr,
        .res = { .nodes = 1, .ntasks = 1, .cores = o->cores > 0 ? o->cores : 1, .gpus = o->gpus,
                 .walltime = o->walltime > 0 ? o->walltime
                             : site->default_walltime > 0 ? site->default_walltime : 3600 },
        .partition = o->partition,
    };
    int rc = ad->submit(impl, &spec, job_id, err);
    if (rc != 0) {
        if (rc > 0)
            hp_err_set(err, HP_ESITE, "site '%s' cannot take the job now", site->name);
        goto out;
    }
    /* wait: endpoint.json newer than the marker, while the job lives */
    double end = hp_now() + (o->wait > 0 ? o->wait : 300);
    const char *look[] = { "sh", "-c", "[ \"$1\" -nt \"$2\" ] && cat \"$1\" || exit 3", "sh",
                           json, marker, NULL };
    for (int i = 0;; i++) {
        hp_buf_reset(&b);
        if (run(conn, look, &b, NULL, &st, QUERY_TIMEOUT, err) < 0)
            goto out;
        if (st == 0 && (*info = json_loadb(b.buf, b.len, 0, NULL)))
            break;
        if (i % 4 == 3) {
            const char *ids[] = { *job_id };
            struct hp_jobstate js;
            memset(&js, 0, sizeof(js));
            if (ad->status(impl, ids, 1, &js, err) < 0)
                goto out;
            if (js.state >= HP_JOB_COMPLETED) {
                char *t = remote_tail(conn, serr);
                hp_err_set(err, HP_ESITE, "the endpoint's job %s on site '%s' ended (%s) before "
                           "it served: %s", *job_id, site->name, js.reason[0] ? js.reason
                           : hp_jobstate_name(js.state), t[0] ? t : "(nothing in job.err)");
                free(t);
                goto out;
            }
        }
        if (hp_now() > end) {
            if (ad->cancel)
                ad->cancel(impl, *job_id, NULL);
            hp_err_set(err, HP_ESITE, "the endpoint's job %s on site '%s' did not start serving "
                       "within %g s (canceled); see %s", *job_id, site->name,
                       o->wait > 0 ? o->wait : 300, serr);
            goto out;
        }
        usleep(500000);
    }
    ret = 0;
out:
    if (ret < 0 && *job_id) {
        free(*job_id);
        *job_id = NULL;
    }
    if (impl && ad->close)
        ad->close(impl);
    hp_buf_release(&sh);
    hp_buf_release(&b);
    free(script);
    free(marker);
    free(json);
    free(sout);
    free(serr);
    free(token);
    return ret;
}

/* "sha256//BASE64" of the public key of the PEM certificate at path on the
 * site, for curl's CURLOPT_PINNEDPUBLICKEY. */
static char *cert_pin(struct hp_conn *conn, const char *path, struct hp_err *err)
{
    struct hp_buf pem = HP_BUF_INIT;
    char *pin = NULL;
    int rc = cat_remote(conn, path, &pem, err);
    if (rc == 1)
        hp_err_set(err, HP_ESITE, "the endpoint's certificate %s is not on the site", path);
    if (rc != 0)
        goto out;
    BIO *bio = BIO_new_mem_buf(pem.buf, (int)pem.len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    int dlen = x ? i2d_PUBKEY(X509_get0_pubkey(x), &der) : -1;
    if (dlen > 0) {
        unsigned char md[32];
        unsigned char b64[64];
        SHA256(der, (size_t)dlen, md);
        EVP_EncodeBlock(b64, md, 32);
        pin = hp_xasprintf("sha256//%s", b64);
    } else {
        hp_err_set(err, HP_EINPUT, "%s on the site is not a PEM certificate", path);
    }
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
out:
    hp_buf_release(&pem);
    return pin;
}

int hp_epref_start(struct hp_conn *conn, const struct hp_site *site, const char *config,
                const struct hp_epref_start_opts *o, struct hp_epref *ep, struct hp_err *err)
{
    const char *name = o ? o->name : NULL;
    int batch = o && o->batch;
    char *job_id = NULL, *pin = NULL;
    memset(ep, 0, sizeof(*ep));
    int ret = -1;
    char **files = NULL, *base = NULL, *cfgdir = NULL, *rcfg = NULL;
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT, tok = HP_BUF_INIT;
    json_t *info = NULL;
    struct hp_doc *doc = hp_doc_load_file(config, NULL, err);
    if (!doc)
        goto out;
    if (!json_is_object(doc->root)) {
        hp_doc_err(doc, err, HP_EINPUT, "", 0, "an endpoint configuration is a mapping");
        goto out;
    }
    if (!name)
        name = json_string_value(json_object_get(doc->root, "name"));
    if (!name) {
        hp_doc_err(doc, err, HP_EINPUT, "", 0, "the configuration has no `name`: add one or "
                   "give --name");
        goto out;
    }
    if (!hp_site_valid_name(name)) {
        hp_err_set(err, HP_EUSAGE, "'%s' is not a valid endpoint name (letters, digits, '.', "
                   "'_' and '-', starting with a letter or digit)", name);
        goto out;
    }
    if (config_files(doc, &files, err) < 0)
        goto out;
    const char *cert = json_string_value(json_object_get(json_object_get(doc->root, "tls"),
                                                         "cert"));
    if (batch && !cert) {
        hp_doc_err(doc, err, HP_EINPUT, "", 0, "--batch: the endpoint listens on the compute "
                   "node's address, which needs TLS: add tls: {cert: FILE, key: FILE}");
        goto out;
    }
    cfgdir = hp_dirname(config);
    for (char **f = files; *f; f++) {
        char *lp = hp_path_join(cfgdir, *f);
        struct stat st;
        int ok = stat(lp, &st) == 0 && S_ISREG(st.st_mode);
        free(lp);
        if (!ok) {
            hp_err_set(err, HP_EINPUT, "%s: '%s' (relative to the configuration) is not a "
                       "file here", config, *f);
            goto out;
        }
    }
    set_paths(ep, site->name, name);
    if (!(base = remote_base(conn, site, err)))
        goto out;
    ep->dir = hp_xasprintf("%s/hpcport/endpoints/%s", base, name);
    ep->state_dir = hp_xasprintf("%s/state", ep->dir);

    /* upload: the configuration (under its own name) and what it names */
    const char *slash = strrchr(config, '/');
    rcfg = hp_xasprintf("%s/%s", ep->dir, slash ? slash + 1 : config);
    if (hp_conn_put(conn, config, rcfg, 0, err) < 0)
        goto out;
    for (char **f = files; *f; f++) {
        char *lp = hp_path_join(cfgdir, *f), *rp = hp_xasprintf("%s/%s", ep->dir, *f);
        int rc = hp_conn_put(conn, lp, rp, HP_XFER_MODE, err);
        free(lp);
        free(rp);
        if (rc < 0)
            goto out;
    }

    if (batch ? start_batch(conn, site, o, ep, rcfg, &job_id, &info, err) < 0
              : start_daemon(conn, site, ep, rcfg, &info, err) < 0)
        goto out;
    if (batch) {
        char *cpath = cert[0] == '/' ? hp_xstrdup(cert) : hp_xasprintf("%s/%s", ep->dir, cert);
        pin = cert_pin(conn, cpath, err);
        free(cpath);
        if (!pin)
            goto out;
    }
    char *tpath = hp_xasprintf("%s/token", ep->state_dir);
    int rc = cat_remote(conn, tpath, &tok, err);
    free(tpath);
    if (rc != 0) {
        if (rc == 1)
            hp_err_set(err, HP_ESITE, "the endpoint started on site '%s' but left no token in "
                       "%s", site->name, ep->state_dir);
        goto out;
    }
    size_t tl = strcspn(tok.buf, "\r\n");
    tok.buf[tl] = '\0';
    if (tl != 64 || strspn(tok.buf, "0123456789abcdef") != 64) {
        hp_err_set(err, HP_ESITE, "the endpoint's token on site '%s' is malformed (%s/token)",
                   site->name, ep->state_dir);
        goto out;
    }
    tok.buf[tl++] = '\n';
    tok.buf[tl] = '\0';
    char stamp[32];
    snprintf(stamp, sizeof(stamp), "%.0f", hp_wall_now());
    ep->record = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "site", site->name,
                           "name", name, "dir", ep->dir, "state_dir", ep->state_dir,
                           "config", rcfg, "hpcport", site->remote_hpcport, "started", stamp,
                           "endpoint", info);
    if (job_id) {
        json_object_set_new(ep->record, "job_id", json_string(job_id));
        json_object_set_new(ep->record, "tls_pin", json_string(pin));
    }
    if (fill_from_record(ep, err) < 0 || save_local(ep, tok.buf, err) < 0)
        goto out;
    ret = 0;
out:
    if (tok.buf)
        OPENSSL_cleanse(tok.buf, tok.alloc);
    hp_buf_release(&tok);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    json_decref(info);
    hp_strv_free(files);
    free(base);
    free(cfgdir);
    free(rcfg);
    free(job_id);
    free(pin);
    hp_doc_free(doc);
    if (ret < 0)
        hp_epref_release(ep);
    return ret;
}

int hp_epref_check(struct hp_conn *conn, const struct hp_epref *ep, json_t **remote,
                struct hp_err *err)
{
    if (remote)
        *remote = NULL;
    struct hp_buf b = HP_BUF_INIT;
    char *path = hp_xasprintf("%s/endpoint.json", ep->state_dir);
    int rc = cat_remote(conn, path, &b, err);
    int ret = -1;
    if (rc == 1) {
        hp_err_set(err, HP_EUNAVAIL, "endpoint '%s' is not running on site '%s' (no %s: it "
                   "was stopped or it crashed; its log: %s/endpoint.log): run `hpcport "
                   "endpoint start %s --config FILE`", ep->name, ep->site, path, ep->state_dir,
                   ep->site);
    } else if (rc == 0) {
        json_t *j = json_loadb(b.buf, b.len, 0, NULL);
        long pid = (long)json_integer_value(json_object_get(j, "pid"));
        if (!j) {
            hp_err_set(err, HP_EUNAVAIL, "endpoint '%s' on site '%s': %s is damaged", ep->name,
                       ep->site, path);
        } else if (pid != ep->pid) {
            hp_err_set(err, HP_EUNAVAIL, "endpoint '%s' on site '%s' was restarted since this "
                       "machine started it (process %ld, not %ld): its token here is stale; "
                       "run `hpcport endpoint start %s --config FILE`", ep->name, ep->site, pid,
                       ep->pid, ep->site);
        } else {
            ret = 0;
        }
        if (remote)
            *remote = j;
        else
            json_decref(j);
    }
    free(path);
    hp_buf_release(&b);
    return ret;
}

static int cancel_job(const struct hp_site *site, const char *job_id, struct hp_err *err)
{
    const struct hp_adapter_ops *ad = hp_adapter_for_site(site, err);
    if (!ad)
        return -1;
    if (!ad->cancel)
        return hp_err_set(err, HP_ESITE, "site '%s': the %s adapter cannot cancel job %s",
                          site->name, ad->name, job_id);
    void *impl = ad->open ? ad->open(site, err) : NULL;
    if (ad->open && !impl)
        return -1;
    int rc = ad->cancel(impl, job_id, err);
    if (ad->close)
        ad->close(impl);
    return rc;
}

int hp_epref_stop(struct hp_conn *conn, const struct hp_site *site, const struct hp_epref *ep,
               double wait_s, struct hp_err *err)
{
    struct hp_err e2;
    hp_err_init(&e2);
    json_t *remote = NULL;
    if (hp_epref_check(conn, ep, &remote, &e2) < 0) {
        json_decref(remote);
        if (e2.code != HP_EUNAVAIL) {
            *err = e2;
            return -1;
        }
        forget_local(ep);
        return 1;
    }
    json_decref(remote);
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", ep->pid);
    if (ep->job_id) {
        /* the scheduler signals the job (SIGTERM first) */
        if (cancel_job(site, ep->job_id, err) < 0)
            return -1;
        snprintf(pid, sizeof(pid), "-1");   /* on another node: no kill -0 */
    } else {
        const char *kill_argv[] = { "kill", "-TERM", pid, NULL };
        int st = 0;
        struct hp_buf eo = HP_BUF_INIT;
        if (run(conn, kill_argv, NULL, &eo, &st, QUERY_TIMEOUT, err) < 0) {
            hp_buf_release(&eo);
            return -1;
        }
        hp_buf_release(&eo);
        if (st != 0) {      /* gone between the check and the kill */
            forget_local(ep);
            return 1;
        }
    }
    char *path = hp_xasprintf("%s/endpoint.json", ep->state_dir);
    char *waits = hp_xasprintf("%d", (int)(wait_s * 10));
    /* poll on the site, one command: endpoint.json goes when it has stopped
     * serving, the process (and its lock) a moment later */
    const char *wait_argv[] = { "sh", "-c",
                                "i=0; while { [ -e \"$1\" ] || { [ \"$3\" != -1 ] && "
                                "kill -0 \"$3\"; }; } 2>/dev/null && [ $i -lt \"$2\" ]; "
                                "do sleep 0.1; i=$((i+1)); done; [ $i -lt \"$2\" ]",
                                "sh", path, waits, pid, NULL };
    int st = 0;
    int rc = run(conn, wait_argv, NULL, NULL, &st, wait_s + QUERY_TIMEOUT, err);
    if (rc == 0 && st != 0)
        rc = hp_err_set(err, HP_ESITE, "endpoint '%s' on site '%s' (process %ld) did not stop "
                        "within %g s after SIGTERM; see %s/endpoint.log", ep->name, ep->site,
                        ep->pid, wait_s, ep->state_dir);
    free(path);
    free(waits);
    if (rc == 0)
        forget_local(ep);
    return rc;
}

/* ------------------------------------------------------------ the client */

/* Before curl connects to the forward: a tunnel to the endpoint, queued for
 * that connection. */
static int tunnel_fn(void *ud, char *msg, size_t len)
{
    struct hp_epref *ep = ud;
    struct hp_err e;
    hp_err_init(&e);
    int fd = hp_conn_tunnel(ep->conn, ep->host, ep->port, &e);
    if (fd < 0) {
        snprintf(msg, len, "cannot reach endpoint '%s' at %s:%d on site '%s': %s", ep->name,
                 ep->host, ep->port, ep->site, e.msg);
        return -1;
    }
    if (hp_fwd_push(ep->fwd, fd) < 0) {
        close(fd);
        snprintf(msg, len, "too many connections to endpoint '%s' at once", ep->name);
        return -1;
    }
    return 0;
}

struct hp_client *hp_epref_client(struct hp_conn *conn, struct hp_epref *ep, double timeout,
                               struct hp_err *err)
{
    struct hp_client_error ce;
    if (!ep->fwd && !(ep->fwd = hp_fwd_new(err)))
        return NULL;
    char *token = hp_client_read_token(ep->token_path, &ce);
    if (!token) {
        hp_err_set(err, HP_EAUTH, "%s: run `hpcport endpoint start %s --config FILE`",
                   ce.message, ep->site);
        return NULL;
    }
    char *url = hp_xasprintf("%s://127.0.0.1:%d", ep->tls_pin ? "https" : "http",
                             hp_fwd_port(ep->fwd));
    struct hp_client *c = hp_client_open(url, token, &ce);
    hp_client_token_free(token);
    free(url);
    if (!c) {
        hp_err_set(err, HP_ESYS, "%s", ce.message);
        return NULL;
    }
    ep->conn = conn;
    hp_client_set_connect_hook(c, tunnel_fn, ep);
    if (ep->tls_pin)
        hp_client_set_pinned_key(c, ep->tls_pin);
    hp_client_set_timeout(c, timeout);
    return c;
}

int hp_epref_client_err(const struct hp_epref *ep, const struct hp_client_error *ce,
                     struct hp_err *err)
{
    const char *site = ep ? ep->site : "SITE";
    switch (ce->code) {
    case HP_CLIENT_EUNAUTHORIZED:
        return hp_err_set(err, HP_EAUTH, "the endpoint refused this machine's token (%s): it "
                          "was restarted since the token was fetched; run `hpcport endpoint "
                          "status %s` to see, and `hpcport endpoint start %s --config FILE` "
                          "to start it and fetch a new token", ce->message, site, site);
    case HP_CLIENT_ETRANSPORT:
        return hp_err_set(err, HP_EUNAVAIL, "%s; run `hpcport endpoint status %s`",
                          ce->message, site);
    case HP_CLIENT_EUNAVAILABLE:
        return hp_err_set(err, HP_EUNAVAIL, "the endpoint is shutting down (%s)", ce->message);
    case HP_CLIENT_EQUEUEFULL:
        return hp_err_set(err, HP_EUNAVAIL, "the endpoint's queue is full (%s): try again "
                          "later", ce->message);
    case HP_CLIENT_ETIMEOUT:
        return hp_err_set(err, HP_ETIMEOUT, "timeout: %s", ce->message);
    case HP_CLIENT_ECRASHED:
        return hp_err_set(err, HP_ECRASHED, "crashed: %s", ce->message);
    case HP_CLIENT_EFAILED:
        return hp_err_set(err, HP_EFAIL, "the function failed: %s", ce->message);
    case HP_CLIENT_ECANCELED:
        return hp_err_set(err, HP_EFAIL, "canceled: %s", ce->message);
    case HP_CLIENT_ENOTFOUND:
        return hp_err_set(err, HP_ENOTFOUND, "%s", ce->message);
    case HP_CLIENT_EBADREQUEST:
    case HP_CLIENT_ETOOLARGE:
        return hp_err_set(err, HP_EINPUT, "the endpoint refused the request: %s", ce->message);
    default:
        return hp_err_set(err, HP_ESYS, "%s", ce->message);
    }
}
