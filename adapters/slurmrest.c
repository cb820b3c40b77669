/* slurmrest.c - the Slurm REST adapter: jobs submitted, followed and
 * canceled through slurmrestd (rest_auth/jwt) with libcurl; files staged
 * through the site's connection (core/stage.h) as with the Slurm adapter.
 *
 * Transport. One curl handle per adapter (keep-alive), timeouts from
 * scheduler.query_timeout. scheduler.rest.via: direct; proxy (CURLOPT_PROXY);
 * ssh: every connection curl opens is a direct-tcpip tunnel from the login
 * node to the URL's host:port (hp_conn_tunnel), reached through a local
 * forward (sites/fwd.h).
 *
 * Tokens (auth/jwt.h): minted from the site's HS256 key, `scontrol token`
 * through the connection, or $SLURM_JWT; kept in memory only, renewed when
 * less than a fifth of the lifetime (at most 60 s) is left, and once when
 * slurmrestd refuses one. slurmrestd 22.05 answers a request without a
 * token with 401, but one with a bad token (expired, revoked, wrong key)
 * with 500 and "Unspecified error" from slurmctld; the adapter then asks
 * /slurmdb/vX/user/NAME, which says "Protocol authentication error", to tell the
 * two apart.
 *
 * Jobs follow the Slurm adapter's model (jobtab.h, slurm-int.h): the token
 * rides in the job name; a poll is one GET /slurm/vX/jobs (22.05 cannot
 * filter by id), jobs the controller forgot come from /slurmdb/vX/job/ID.
 * Before its first submission the adapter reads the listing for tokens, so
 * that an attempt an earlier process submitted is adopted, not submitted
 * again. slurmrestd down, a token refused, a controller that does not
 * answer: "not now" (submit returns 1, status fails and is asked again),
 * never a failed task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "adapter.h"
#include "conn.h"
#include "fwd.h"
#include "jobtab.h"
#include "jwt.h"
#include "plan.h"
#include "site.h"
#include "slurm-int.h"
#include "slurmrest-int.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define SUBMIT_TIMEOUT 120.0
#define RESPONSE_CAP ((size_t)256 << 20)

enum { RS_OK = 0, RS_DOWN, RS_AUTH, RS_ERROR };

struct rest {
    const struct hp_site *site;
    const struct hp_site_rest *cfg;
    struct hp_conn *conn;
    struct hp_stage *stage;
    CURL *curl;
    char *user;
    char *token;           /* secret */
    time_t tok_exp, tok_renew;
    char *host;            /* the URL's host and port (via ssh) */
    int port;
    struct hp_fwd *fwd;    /* via ssh */
    struct curl_slist *connect_to;
    struct hp_err tunnel_err;
    int accounting;
    struct hp_jobtab jt;
};

/* ---------------------------------------------------------------- tokens */

static void token_drop(struct rest *R)
{
    hp_jwt_free(R->token);
    R->token = NULL;
    R->tok_exp = R->tok_renew = 0;
}

static int token_get(struct rest *R, int force, struct hp_err *err)
{
    time_t now = time(NULL);
    if (R->token && !force && (!R->tok_renew || now < R->tok_renew))
        return RS_OK;
    const char *src = R->cfg->token_source;
    int64_t life = R->cfg->token_lifetime;
    char *tok = NULL;
    if (!strcmp(src, "env")) {
        /* not renewed: used until it expires or is refused */
        const char *e = getenv("SLURM_JWT");
        if (!e || !*e) {
            hp_err_set(err, HP_ESITE, "site '%s': token source env, but SLURM_JWT is not set: "
                       "export SLURM_JWT (e.g. from 'scontrol token')", R->site->name);
            return RS_AUTH;
        }
        time_t exp = hp_jwt_expiry(e);
        if (exp && now >= exp) {
            hp_err_set(err, HP_ESITE, "site '%s': the token in SLURM_JWT expired %lld s ago: "
                       "set a new one (e.g. from 'scontrol token')", R->site->name,
                       (long long)(now - exp));
            return RS_AUTH;
        }
        if (R->token && !strcmp(R->token, e)) {
            if (force) {
                hp_err_set(err, HP_ESITE, "site '%s': slurmrestd refused the token in SLURM_JWT "
                           "(revoked, or signed with another key?): set a new one",
                           R->site->name);
                return RS_AUTH;
            }
            R->tok_renew = exp;   /* nothing newer to take before it expires */
            return RS_OK;
        }
        tok = hp_xstrdup(e);
    } else if (!strcmp(src, "key")) {
        if (hp_jwt_mint(R->cfg->key_file, R->user, life, now, &tok, err) < 0) {
            hp_err_prefix(err, "site '%s'", R->site->name);
            return RS_AUTH;
        }
    } else {
        char arg[64];
        snprintf(arg, sizeof(arg), "lifespan=%lld", (long long)life);
        const char *argv[] = { "scontrol", "token", arg, NULL };
        struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
        int st = 0;
        if (hp_conn_exec_ex(R->conn, argv, NULL, 0, &out, &eo, &st,
                            hp_site_query_timeout(R->site), HP_EXEC_IDEMPOTENT, err) < 0) {
            hp_err_prefix(err, "site '%s': scontrol token", R->site->name);
            hp_buf_release(&eo);
            OPENSSL_cleanse(out.buf, out.len);
            hp_buf_release(&out);
            return RS_DOWN;
        }
        if (st == 0)
            tok = slurmrest_scontrol_token(out.buf);
        OPENSSL_cleanse(out.buf, out.len);
        hp_buf_release(&out);
        if (!tok) {
            char *l = hp_first_line(eo.buf);
            hp_err_set(err, HP_ESITE, "site '%s': 'scontrol token' gave no token (status %d)%s%s",
                       R->site->name, st, *l ? ": " : "", l);
            free(l);
            hp_buf_release(&eo);
            return hp_jobtab_says(eo.buf, slurm_transient) ? RS_DOWN : RS_AUTH;
        }
        hp_buf_release(&eo);
    }
    token_drop(R);
    R->token = tok;
    R->tok_exp = hp_jwt_expiry(tok);
    if (R->tok_exp) {
        time_t l = R->tok_exp - now, margin = l / 5 < 60 ? l / 5 : 60;
        R->tok_renew = R->tok_exp - margin;
    }
    return RS_OK;
}

/* via ssh. curl 7.88 (Debian 12) ignores CURL_SOCKOPT_ALREADY_CONNECTED
 * (curl issue 10626), so a tunnel cannot be handed to curl as its socket:
 * curl connects (CURLOPT_CONNECT_TO) to a local forward (sites/fwd.h)
 * instead. For each connection curl opens, the tunnel is opened first, in
 * this thread (the site's connection is not used from another thread), and
 * queued for the listener; then curl gets a plain socket to connect. */
static curl_socket_t open_tunnel(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct rest *R = ud;
    (void)purpose;
    hp_err_init(&R->tunnel_err);
    int t = hp_conn_tunnel(R->conn, R->host, R->port, &R->tunnel_err);
    if (t < 0)
        return CURL_SOCKET_BAD;
    int s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (s < 0 || hp_fwd_push(R->fwd, t) < 0) {
        if (s >= 0)
            close(s);
        close(t);
        hp_err_set(&R->tunnel_err, HP_ESYS, "too many connections to slurmrestd at once");
        return CURL_SOCKET_BAD;
    }
    return s;
}

/* ------------------------------------------------------------- transport */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct hp_buf *b = ud;
    if (b->len + size * n > RESPONSE_CAP)
        return 0;
    hp_buf_add(b, p, size * n);
    return size * n;
}

static const char *via_words(const struct rest *R, char *buf, size_t len)
{
    if (!strcmp(R->cfg->via, "ssh"))
        snprintf(buf, len, "through the SSH connection to %s", R->site->login_host
                 ? R->site->login_host : "the login node");
    else if (!strcmp(R->cfg->via, "proxy"))
        snprintf(buf, len, "through the proxy %s", R->cfg->proxy);
    else
        snprintf(buf, len, "directly");
    return buf;
}

static int http_once(struct rest *R, const char *method, const char *url, const char *body,
                     double timeout, long *code, struct hp_buf *resp, struct hp_err *err)
{
    struct curl_slist *h = NULL;
    char *hu = hp_xasprintf("X-SLURM-USER-NAME: %s", R->user);
    char *ht = hp_xasprintf("X-SLURM-USER-TOKEN: %s", R->token);
    h = curl_slist_append(h, hu);
    h = curl_slist_append(h, ht);
    h = curl_slist_append(h, "Accept: application/json");
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    CURL *c = R->curl;
    hp_buf_reset(resp);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    free(hu);
    OPENSSL_cleanse(ht, strlen(ht));
    free(ht);
    if (rc != CURLE_OK) {
        char v[600];
        const char *why = R->tunnel_err.msg[0] ? R->tunnel_err.msg : ebuf[0] ? ebuf
                                                                            : curl_easy_strerror(rc);
        hp_err_set(err, HP_ESITE, "site '%s': cannot reach slurmrestd at %s (%s): %s",
                   R->site->name, R->cfg->url, via_words(R, v, sizeof(v)), why);
        hp_err_init(&R->tunnel_err);
        return RS_DOWN;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    return RS_OK;
}

/* method path (after the URL), body or NULL: 0 (RS_OK) with *out (the
 * answer's JSON), or RS_DOWN / RS_AUTH / RS_ERROR with err. */
static int call(struct rest *R, const char *method, const char *path, const char *body,
                double timeout, json_t **out, struct hp_err *err);

/* A 500 with slurmctld's "Unspecified error": a bad token, or something
 * else? slurmdbd names it. */
static int token_refused(struct rest *R)
{
    char *url = hp_xasprintf("%s/slurmdb/%s/user/%s", R->cfg->url, R->cfg->api, R->user);
    struct hp_buf resp = HP_BUF_INIT;
    struct hp_err e;
    long code = 0;
    hp_err_init(&e);
    int refused = 0;
    if (http_once(R, "GET", url, NULL, hp_site_query_timeout(R->site), &code, &resp, &e) == RS_OK)
        refused = code == 401 || code == 403 ||
                  strstr(resp.buf, "Protocol authentication error") != NULL ||
                  strstr(resp.buf, "Authentication failure") != NULL;
    free(url);
    hp_buf_release(&resp);
    return refused;
}

static int call(struct rest *R, const char *method, const char *path, const char *body,
                double timeout, json_t **out, struct hp_err *err)
{
    char *url = hp_xasprintf("%s%s", R->cfg->url, path);
    struct hp_buf resp = HP_BUF_INIT, msg = HP_BUF_INIT;
    int ret, renewed = 0;
    json_t *root = NULL;
    *out = NULL;
again:
    json_decref(root);
    root = NULL;
    hp_buf_reset(&msg);
    if ((ret = token_get(R, renewed, err)) != RS_OK)
        goto out;
    long code = 0;
    if ((ret = http_once(R, method, url, body, timeout, &code, &resp, err)) != RS_OK)
        goto out;
    json_error_t je;
    root = json_loadb(resp.buf, resp.len, 0, &je);
    long num = 0;
    size_t nerr = root ? slurmrest_errors(root, &msg, &num) : 0;
    int maybe_auth = code == 401 || code == 403 || num == 1007 ||
                     (code >= 500 && num == -1 && token_refused(R));
    if (maybe_auth) {
        if (!renewed) {   /* a new token, once (env: token_get says why not) */
            renewed = 1;
            goto again;
        }
        hp_err_set(err, HP_ESITE, "site '%s': slurmrestd at %s refused the token for user "
                   "'%s' (HTTP %ld): it expired, was revoked, was signed with another key "
                   "than slurmctld's, or names another user; check scheduler.rest.token%s",
                   R->site->name, R->cfg->url, R->user, code,
                   !strcmp(R->cfg->token_source, "key") ? ".key_file" : "");
        ret = RS_AUTH;
        goto out;
    }
    if (code == 404 && !root) {
        hp_err_set(err, HP_ESITE, "site '%s': slurmrestd at %s has no %s %s (HTTP 404): is "
                   "scheduler.rest.api (%s) a version it offers? (its /openapi/v3 lists them)",
                   R->site->name, R->cfg->url, method, path, R->cfg->api);
        ret = RS_ERROR;
        goto out;
    }
    if (!root || !json_is_object(root)) {
        char *l = hp_first_line(resp.buf);
        hp_err_set(err, HP_ESITE, "site '%s': %s %s: slurmrestd answered HTTP %ld with no JSON "
                   "document (%s at line %d): '%.100s'", R->site->name, method, path, code,
                   root ? "not an object" : je.text, root ? 0 : je.line, l);
        free(l);
        ret = code >= 500 || code == 0 ? RS_DOWN : RS_ERROR;
        goto out;
    }
    if (code >= 300 || nerr) {
        hp_err_set(err, HP_ESITE, "site '%s': %s %s: slurmrestd: %s (HTTP %ld)", R->site->name,
                   method, path, nerr ? msg.buf : "no reason given", code);
        ret = hp_jobtab_says(msg.buf, slurm_transient) || (code >= 500 && !nerr) ? RS_DOWN
                                                                                  : RS_ERROR;
        goto out;
    }
    *out = root;
    root = NULL;
    ret = RS_OK;
out:
    json_decref(root);
    free(url);
    hp_buf_release(&resp);
    hp_buf_release(&msg);
    return ret;
}

/* ------------------------------------------------------------------ jobs */

/* GET /slurm/vX/jobs: every job the controller knows */
static int list_jobs(struct rest *R, struct slurm_rec **recs, size_t *n, size_t *alloc,
                     struct hp_err *err)
{
    char *path = hp_xasprintf("/slurm/%s/jobs", R->cfg->api);
    json_t *root = NULL;
    int ret = call(R, "GET", path, NULL, hp_site_query_timeout(R->site), &root, err);
    free(path);
    if (ret != RS_OK)
        return ret;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (slurm_parse_squeue_json(text, recs, n, alloc, err) < 0) {
        hp_err_prefix(err, "site '%s': GET /slurm/%s/jobs", R->site->name, R->cfg->api);
        ret = RS_ERROR;
    }
    free(text);
    return ret;
}

/* GET /slurmdb/vX/job/ID: a job the controller forgot (sacct's view) */
static int db_job(struct rest *R, const char *id, struct slurm_rec **recs, size_t *n,
                  size_t *alloc, struct hp_err *err)
{
    if (!R->accounting)
        return RS_OK;
    char *path = hp_xasprintf("/slurmdb/%s/job/%s", R->cfg->api, id);
    json_t *root = NULL;
    struct hp_err e;
    hp_err_init(&e);
    int ret = call(R, "GET", path, NULL, hp_site_query_timeout(R->site), &root, &e);
    free(path);
    if (ret == RS_ERROR && strstr(e.msg, "Nothing found"))
        return RS_OK;                   /* no such job: it stays unknown */
    if (ret == RS_ERROR && (strstr(e.msg, "accounting storage is disabled") ||
                            strstr(e.msg, "Unable to find requested URL") ||
                            strstr(e.msg, "has no GET"))) {
        R->accounting = 0;              /* no slurmdbd behind slurmrestd */
        return RS_OK;
    }
    if (ret != RS_OK) {
        *err = e;
        return ret;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (slurm_parse_sacct_json(text, recs, n, alloc, &e) < 0)
        ret = RS_OK;   /* not parseable: the job stays unknown */
    free(text);
    return ret;
}

static const struct slurm_rec *rec_find(const struct slurm_rec *recs, size_t n, const char *id)
{
    for (size_t i = n; i-- > 0;)
        if (!strcmp(recs[i].id, id))
            return &recs[i];
    return NULL;
}

static void toks_from(struct rest *R, const struct slurm_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *t = slurm_name_token(recs[i].name);
        if (t)
            hp_jobtab_tok_add(&R->jt, t, recs[i].id, !slurm_state_final(recs[i].state));
    }
}

static int poll_jobs(void *impl, struct hp_err *err)
{
    struct rest *R = impl;
    size_t n = 0, nrec = 0, ralloc = 0;
    struct slurm_rec *recs = NULL;
    char **ids = hp_jobtab_pending(&R->jt, &n);
    int ret = -1, changed = 0;
    if (!n) {
        ret = 0;
        goto out;
    }
    if (list_jobs(R, &recs, &nrec, &ralloc, err) != RS_OK)
        goto out;
    toks_from(R, recs, nrec);
    size_t listed = nrec;
    for (size_t k = 0; k < n; k++)
        if (!rec_find(recs, listed, ids[k]) && db_job(R, ids[k], &recs, &nrec, &ralloc, err) != RS_OK)
            goto out;
    for (size_t k = 0; k < n; k++) {
        struct hp_jobtab_job *j = hp_jobtab_find(&R->jt, ids[k]);
        const struct slurm_rec *r = rec_find(recs, nrec, ids[k]);
        struct hp_jobstate st;
        int final = 1;
        if (r) {
            slurm_map_state(r, &st);
            final = slurm_state_final(r->state);
        } else {
            memset(&st, 0, sizeof(st));
            st.state = HP_JOB_UNKNOWN;
            st.exit_code = -1;
            snprintf(st.reason, sizeof(st.reason), "slurmrestd knows no job %s (neither "
                     "/slurm/%s/jobs nor /slurmdb)", ids[k], R->cfg->api);
        }
        if (st.state != j->st.state)
            changed = 1;
        j->st = st;
        j->final = final;
    }
    ret = 0;
out:
    free(ids);
    free(recs);
    hp_jobtab_polled(&R->jt, ret == 0, changed);
    return ret;
}

static int lookup(struct rest *R, struct hp_err *err)
{
    struct slurm_rec *recs = NULL;
    size_t n = 0, alloc = 0;
    int ret = list_jobs(R, &recs, &n, &alloc, err);
    if (ret == RS_OK)
        toks_from(R, recs, n);
    free(recs);
    return ret;
}

/* --------------------------------------------------------------- the ops */

static void rest_close(void *impl);

static int parse_url(struct rest *R, struct hp_err *err)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int ret = -1;
    if (curl_url_set(u, CURLUPART_URL, R->cfg->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        hp_err_set(err, HP_ESITE, "site '%s': scheduler.rest.url '%s' is not a URL",
                   R->site->name, R->cfg->url);
        goto out;
    }
    R->host = hp_xstrdup(host[0] == '[' ? host + 1 : host);
    size_t l = strlen(R->host);
    if (l && R->host[l - 1] == ']')
        R->host[l - 1] = '\0';
    R->port = atoi(port);
    ret = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ret;
}

static void *rest_open(const struct hp_site *site, struct hp_err *err)
{
    struct rest *R = hp_xcalloc(1, sizeof(*R));
    R->site = site;
    R->cfg = &site->rest;
    R->accounting = 1;
    hp_jobtab_init(&R->jt, sizeof(struct hp_jobtab_job), NULL);
    if (!R->cfg->url) {
        hp_err_set(err, HP_ESITE, "site '%s' has no scheduler.rest.url", site->name);
        goto fail;
    }
    if (parse_url(R, err) < 0)
        goto fail;
    R->conn = hp_conn_open(site, err);
    if (!R->conn)
        goto fail;
    R->stage = hp_stage_new(R->conn, site);
    if (R->cfg->user) {
        R->user = hp_xstrdup(R->cfg->user);
    } else {
        const char *argv[] = { "id", "-un", NULL };
        struct hp_buf out = HP_BUF_INIT;
        int st = 0;
        int rc = hp_conn_exec_ex(R->conn, argv, NULL, 0, &out, NULL, &st,
                                 hp_site_query_timeout(site), HP_EXEC_IDEMPOTENT, err);
        if (rc == 0 && st == 0)
            R->user = hp_first_line(out.buf);
        hp_buf_release(&out);
        if (!R->user || !R->user[0]) {
            if (rc == 0)
                hp_err_set(err, HP_ESITE, "site '%s': cannot tell the user name ('id -un' "
                           "failed): set scheduler.rest.user", site->name);
            goto fail;
        }
    }
    R->curl = curl_easy_init();
    if (!R->curl) {
        hp_err_set(err, HP_ESYS, "cannot create a curl handle");
        goto fail;
    }
    curl_easy_setopt(R->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(R->curl, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(R->curl, CURLOPT_USERAGENT, "hpcport/" HP_VERSION);
    curl_easy_setopt(R->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!strcmp(R->cfg->via, "proxy")) {
        curl_easy_setopt(R->curl, CURLOPT_PROXY, R->cfg->proxy);
        curl_easy_setopt(R->curl, CURLOPT_HTTPPROXYTUNNEL, 1L);
    } else {
        curl_easy_setopt(R->curl, CURLOPT_PROXY, "");   /* not the environment's */
    }
    if (!strcmp(R->cfg->via, "ssh")) {
        if (!(R->fwd = hp_fwd_new(err)))
            goto fail;
        char *ct = hp_xasprintf("::127.0.0.1:%d", hp_fwd_port(R->fwd));
        R->connect_to = curl_slist_append(NULL, ct);
        free(ct);
        curl_easy_setopt(R->curl, CURLOPT_CONNECT_TO, R->connect_to);
        curl_easy_setopt(R->curl, CURLOPT_OPENSOCKETFUNCTION, open_tunnel);
        curl_easy_setopt(R->curl, CURLOPT_OPENSOCKETDATA, R);
    }
    return R;
fail:
    rest_close(R);
    return NULL;
}

static void rest_close(void *impl)
{
    struct rest *R = impl;
    if (!R)
        return;
    if (R->curl)
        curl_easy_cleanup(R->curl);
    curl_slist_free_all(R->connect_to);
    hp_fwd_free(R->fwd);
    token_drop(R);
    hp_stage_free(R->stage);
    hp_conn_free(R->conn);
    free(R->user);
    free(R->host);
    hp_jobtab_release(&R->jt);
    free(R);
}

static int rest_submit(void *impl, const struct hp_jobspec *spec, char **job_id,
                       struct hp_err *err)
{
    struct rest *R = impl;
    struct hp_buf script = HP_BUF_INIT;
    char *name = slurm_job_name(spec);
    char *workdir = NULL, *sout = NULL, *serr = NULL, *body = NULL, *path = NULL;
    json_t *req = NULL, *resp = NULL;
    int ret = -1, rc;
    *job_id = NULL;

    /* an earlier process may have submitted this attempt already */
    long sus = hp_jobtab_suspect_find(&R->jt, name);
    if (!R->jt.listed || sus >= 0) {
        if ((rc = lookup(R, err)) != RS_OK) {
            hp_err_prefix(err, "looking for jobs an earlier run submitted");
            ret = rc == RS_ERROR ? -1 : 1;
            goto out;
        }
        R->jt.listed = 1;
        if (sus >= 0)
            hp_jobtab_suspect_del(&R->jt, sus);
    }
    const char *known = hp_jobtab_tok_find(&R->jt, spec->token);
    if (known) {
        *job_id = hp_xstrdup(known);
        hp_jobtab_follow(&R->jt, known);
        ret = 0;
        goto out;
    }

    struct hp_jobspec sp = *spec;
    if (spec->workdir && !(sp.workdir = workdir = hp_stage_expand(R->stage, spec->workdir, err)))
        goto out;
    if (spec->stdout_path &&
        !(sp.stdout_path = sout = hp_stage_expand(R->stage, spec->stdout_path, err)))
        goto out;
    if (spec->stderr_path &&
        !(sp.stderr_path = serr = hp_stage_expand(R->stage, spec->stderr_path, err)))
        goto out;
    if (slurm_render(&sp, R->site, &script, err) < 0 ||
        slurmrest_job_json(&sp, R->site, script.buf, &req, err) < 0)
        goto out;
    body = json_dumps(req, JSON_COMPACT);
    path = hp_xasprintf("/slurm/%s/job/submit", R->cfg->api);
    rc = call(R, "POST", path, body, SUBMIT_TIMEOUT, &resp, err);
    if (rc == RS_DOWN || rc == RS_AUTH) {
        if (rc == RS_DOWN)
            hp_jobtab_suspect_add(&R->jt, name);   /* it may have been created */
        ret = 1;
        goto out;
    }
    if (rc != RS_OK) {
        hp_err_prefix(err, "slurmrestd refused the job");
        goto out;
    }
    long long id = 0;
    json_t *jid = json_object_get(resp, "job_id");
    if (!json_is_integer(jid) || (id = json_integer_value(jid)) <= 0) {
        hp_jobtab_suspect_add(&R->jt, name);
        hp_err_set(err, HP_ESITE, "site '%s': slurmrestd accepted the job but gave no job id",
                   R->site->name);
        ret = 1;
        goto out;
    }
    *job_id = hp_xasprintf("%lld", id);
    hp_jobtab_follow(&R->jt, *job_id);
    ret = 0;
    hp_jobtab_submitted(&R->jt, "HPCPORT_TEST_KILL_AFTER_SBATCH");
out:
    json_decref(req);
    json_decref(resp);
    free(body);
    free(path);
    free(name);
    free(workdir);
    free(sout);
    free(serr);
    hp_buf_release(&script);
    return ret;
}

static int rest_adopt(void *impl, const struct hp_jobspec *spec, const char *job_id,
                      struct hp_err *err)
{
    struct rest *R = impl;
    (void)spec;
    (void)err;
    hp_jobtab_follow(&R->jt, job_id);
    R->jt.next_poll = 0;
    return 0;
}

static int rest_status(void *impl, const char *const *ids, size_t n, struct hp_jobstate *out,
                       struct hp_err *err)
{
    struct rest *R = impl;
    return hp_jobtab_status(&R->jt, ids, n, out, poll_jobs, R, err);
}

static int rest_cancel(void *impl, const char *id, struct hp_err *err)
{
    struct rest *R = impl;
    if (!R)
        return hp_err_set(err, HP_ESITE, "canceling a job through slurmrestd needs its state");
    char *path = hp_xasprintf("/slurm/%s/job/%s", R->cfg->api, id);
    json_t *resp = NULL;
    struct hp_err e;
    hp_err_init(&e);
    int rc = call(R, "DELETE", path, NULL, hp_site_query_timeout(R->site), &resp, &e), ret = 0;
    json_decref(resp);
    free(path);
    if (rc != RS_OK && !(rc == RS_ERROR && (strstr(e.msg, "Invalid job id") ||
                                          strstr(e.msg, "already completing or completed")))) {
        *err = e;
        ret = -1;
    }
    hp_jobtab_poll_soon(&R->jt);
    return ret;
}

static int rest_wait(void *impl, double timeout)
{
    struct rest *R = impl;
    return hp_jobtab_wait(&R->jt, timeout);
}

static long rest_capacity(void *impl, const struct hp_jobspec *spec)
{
    struct rest *R = impl;
    (void)spec;
    return R ? hp_jobtab_capacity(&R->jt, R->site->max_queued_jobs) : -1;
}

static int rest_prepare(void *impl, const struct hp_plan *plan, const char *local_dir,
                        struct hp_err *err)
{
    struct rest *R = impl;
    return hp_stage_prepare(R->stage, plan, local_dir, NULL, err);
}

static int rest_collect(void *impl, size_t i, const struct hp_jobspec *spec,
                        const struct hp_jobstate *js, struct hp_err *err)
{
    struct rest *R = impl;
    if (js->state == HP_JOB_UNKNOWN)
        return 0;
    return hp_stage_collect(R->stage, i, spec, err);
}

/* `hpcport site check`: the connection, the token, ping, partitions */
static int rest_check(const struct hp_site *site, const struct hp_check_opts *opts,
                      struct hp_check_report *rep, struct hp_err *err)
{
    struct hp_err e;
    hp_err_init(&e);
    (void)opts;
    (void)err;
    struct rest *R = rest_open(site, &e);
    if (!R) {
        hp_check_add(rep, HP_CHECK_FAIL, "connection", NULL, "%s", e.msg);
        hp_check_add(rep, HP_CHECK_SKIP, "the rest", NULL, "no connection");
        return 0;
    }
    const char *po = hp_site_origin(site, "/scheduler/rest/url");
    char v[600];
    int rc = token_get(R, 0, &e);
    if (rc != RS_OK) {
        hp_check_add(rep, HP_CHECK_FAIL, "token", hp_site_origin(site, "/scheduler/rest/token"),
                     "%s", e.msg);
        goto out;
    }
    hp_check_add(rep, HP_CHECK_OK, "token", hp_site_origin(site, "/scheduler/rest/token"),
                 "from %s, for user '%s'", R->cfg->token_source, R->user);
    json_t *root = NULL;
    char *path = hp_xasprintf("/slurm/%s/ping", R->cfg->api);
    hp_err_init(&e);
    rc = call(R, "GET", path, NULL, hp_site_query_timeout(site), &root, &e);
    free(path);
    if (rc != RS_OK) {
        hp_check_add(rep, HP_CHECK_FAIL, "slurmrestd", po, "%s", e.msg);
        goto out;
    }
    const char *rel = json_string_value(json_object_get(json_object_get(json_object_get(
        root, "meta"), "Slurm"), "release"));
    const json_t *p0 = json_array_get(json_object_get(root, "pings"), 0);
    hp_check_add(rep, HP_CHECK_OK, "slurmrestd", po, "%s %s, Slurm %s, controller %s",
                 R->cfg->url, via_words(R, v, sizeof(v)), rel ? rel : "?",
                 p0 ? json_string_value(json_object_get(p0, "ping")) : "?");
    json_decref(root);
    path = hp_xasprintf("/slurm/%s/partitions", R->cfg->api);
    root = NULL;
    rc = call(R, "GET", path, NULL, hp_site_query_timeout(site), &root, &e);
    free(path);
    if (rc != RS_OK) {
        hp_check_add(rep, HP_CHECK_FAIL, "partitions", NULL, "%s", e.msg);
        goto out;
    }
    const json_t *parts = json_object_get(root, "partitions");
    for (size_t i = 0; i < site->nparts; i++) {
        const json_t *p;
        size_t k;
        int found = 0;
        char what[200], ptr[64];
        snprintf(what, sizeof(what), "partition '%.150s'", site->parts[i].name);
        snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/name", i);
        json_array_foreach(parts, k, p) {
            const char *nm = json_string_value(json_object_get(p, "name"));
            if (nm && !strcmp(nm, site->parts[i].name))
                found = 1;
        }
        if (found)
            hp_check_add(rep, HP_CHECK_OK, what, hp_site_origin(site, ptr), "exists");
        else
            hp_check_add(rep, HP_CHECK_FAIL, what, hp_site_origin(site, ptr),
                         "slurmrestd lists no such partition: fix scheduler.partitions");
    }
    json_decref(root);
out:
    rest_close(R);
    return 0;
}

const struct hp_adapter_ops hp_adapter_slurmrest = {
    .name = "slurmrest",
    .render = slurm_render,
    .submit = rest_submit,
    .status = rest_status,
    .cancel = rest_cancel,
    .wait = rest_wait,
    .capacity = rest_capacity,
    .open = rest_open,
    .close = rest_close,
    .adopt = rest_adopt,
    .prepare = rest_prepare,
    .collect = rest_collect,
    .check = rest_check,
};
