/* oauth.c - the OAuth2 client: one small HTTP helper over libcurl, then
 * discovery, the device grant, refresh, revocation and hp_token_get.
 *
 * Provider answers are quoted in errors only through their "error" and
 * "error_description" members: a token response body is never echoed. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "oauth.h"
#include "auth.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define HTTP_MAX_BODY (1 << 20)

static int (*cancel_fn)(void);

void hp_oauth_set_cancel(int (*cancelled)(void))
{
    cancel_fn = cancelled;
}

static int is_cancelled(void)
{
    return cancel_fn && cancel_fn();
}

/* ---------------------------------------------------------------- HTTP */

/* https anywhere; http only to a loopback host. */
static int url_allowed(const char *url, const char *what, struct hp_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (!strcasecmp(scheme, "https"))
            ok = 1;
        else if (!strcasecmp(scheme, "http"))
            ok = hp_starts_with(host, "127.") || !strcmp(host, "[::1]") ||
                 !strcasecmp(host, "localhost") ? 1 : 2;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    if (ok == 1)
        return 0;
    if (ok == 2)
        return hp_err_set(err, HP_ESITE, "%s '%s' is plain http on a host that is not loopback; "
                          "tokens travel only over https (http is for 127.0.0.1, ::1 and "
                          "localhost)", what, url);
    return hp_err_set(err, HP_ESITE, "%s '%s' is not an http(s) URL", what, url);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct hp_buf *b = ud;
    hp_buf_add(b, data, size * n);
    return b->truncated ? 0 : size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    return is_cancelled();
}

/* One request: POST form (application/x-www-form-urlencoded) when form is
 * not NULL, else GET. *status is the HTTP status; body gets the answer
 * (capped). Fails only when no HTTP answer came. */
static int http_call(const char *url, const char *form, const char *ca_file, long *status,
                     struct hp_buf *body, struct hp_err *err)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    if (!h)
        return hp_err_set(err, HP_ESYS, "cannot start an HTTP client (libcurl)");
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
    hp_buf_reset(body);
    body->cap = HTTP_MAX_BODY;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hpcport/" HP_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    if (form) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && is_cancelled()) {
        ret = hp_err_set(err, HP_EFAIL, "interrupted");
    } else if (rc == CURLE_WRITE_ERROR && body->truncated) {
        ret = hp_err_set(err, HP_ESYS, "the answer of '%s' is larger than 1 MiB", url);
    } else if (rc != CURLE_OK) {
        const char *hint = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                                   rc == CURLE_SSL_CERTPROBLEM
                               ? " (for a private CA, set oauth.ca_file in the site profile)"
                               : "";
        ret = hp_err_set(err, HP_ESYS, "cannot reach the identity provider at '%s': %s%s", url,
                         errbuf[0] ? errbuf : curl_easy_strerror(rc), hint);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return ret;
}

/* Append key=value, URL-encoded. */
static void form_add(struct hp_buf *f, const char *key, const char *value)
{
    char *v = curl_easy_escape(NULL, value, 0);
    if (f->len)
        hp_buf_addch(f, '&');
    hp_buf_adds(f, key);
    hp_buf_addch(f, '=');
    hp_buf_adds(f, v ? v : "");
    if (v) {
        OPENSSL_cleanse(v, strlen(v));
        curl_free(v);
    }
}

static void buf_wipe(struct hp_buf *b)
{
    if (b->alloc)
        OPENSSL_cleanse(b->buf, b->alloc);
    hp_buf_release(b);
}

/* POST form to url and parse the JSON answer into *out (an object). */
static int post_json(const char *url, struct hp_buf *form, const char *ca_file, long *status,
                     json_t **out, struct hp_err *err)
{
    struct hp_buf body = HP_BUF_INIT;
    *out = NULL;
    int ret = http_call(url, form ? form->buf : NULL, ca_file, status, &body, err);
    if (ret == 0) {
        *out = json_loadb(body.buf, body.len, 0, NULL);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            ret = hp_err_set(err, HP_ESYS, "the identity provider's answer from '%s' is not a "
                             "JSON object (HTTP %ld)", url, *status);
        }
    }
    buf_wipe(&body);
    return ret;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : NULL;
}

static char *jdup(json_t *o, const char *key)
{
    const char *s = jstr(o, key);
    return s ? hp_xstrdup(s) : NULL;
}

/* "error: description" of an OAuth error answer, into buf. Only these two
 * members are quoted, cut at 200 bytes each. */
static const char *oauth_error(json_t *o, long status, char *buf, size_t len)
{
    const char *e = jstr(o, "error"), *d = jstr(o, "error_description");
    if (e && d)
        snprintf(buf, len, "%.200s: %.200s", e, d);
    else if (e)
        snprintf(buf, len, "%.200s", e);
    else
        snprintf(buf, len, "HTTP %ld without an OAuth error code", status);
    return buf;
}

/* ---------------------------------------------------------------- discovery */

static int check_cfg(const struct hp_site_oauth *cfg, struct hp_err *err)
{
    if (!cfg || !cfg->issuer || !cfg->client_id)
        return hp_err_set(err, HP_ESITE, "the site profile has no oauth section with issuer and "
                          "client_id; add them (see hpcport-site(5))");
    return url_allowed(cfg->issuer, "oauth.issuer", err);
}

/* Issuers compare equal up to one trailing slash. */
static int same_issuer(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '/')
        la--;
    if (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && !strncmp(a, b, la);
}

int hp_oauth_discover(const struct hp_site_oauth *cfg, struct hp_oauth_meta *meta,
                      struct hp_err *err)
{
    memset(meta, 0, sizeof(*meta));
    if (check_cfg(cfg, err) < 0)
        return -1;
    size_t n = strlen(cfg->issuer);
    char *url = hp_xasprintf("%.*s/.well-known/openid-configuration",
                             (int)(n && cfg->issuer[n - 1] == '/' ? n - 1 : n), cfg->issuer);
    long status = 0;
    json_t *o = NULL;
    int ret = -1;
    if (post_json(url, NULL, cfg->ca_file, &status, &o, err) < 0)
        goto out;
    if (status != 200) {
        hp_err_set(err, HP_ESYS, "'%s' answered HTTP %ld: is oauth.issuer '%s' right?", url,
                   status, cfg->issuer);
        goto out;
    }
    const char *iss = jstr(o, "issuer");
    if (!iss || !same_issuer(iss, cfg->issuer)) {
        hp_err_set(err, HP_ESITE, "the OpenID configuration at '%s' names issuer '%s', not "
                   "oauth.issuer '%s'; fix oauth.issuer in the site profile", url,
                   iss ? iss : "(none)", cfg->issuer);
        goto out;
    }
    meta->issuer = hp_xstrdup(iss);
    meta->device_authorization_endpoint = jdup(o, "device_authorization_endpoint");
    meta->token_endpoint = jdup(o, "token_endpoint");
    meta->revocation_endpoint = jdup(o, "revocation_endpoint");
    meta->userinfo_endpoint = jdup(o, "userinfo_endpoint");
    if (!meta->token_endpoint) {
        hp_err_set(err, HP_ESITE, "the identity provider '%s' offers no token_endpoint",
                   cfg->issuer);
        goto out;
    }
    const char *eps[] = { meta->device_authorization_endpoint, meta->token_endpoint,
                          meta->revocation_endpoint, meta->userinfo_endpoint };
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++)
        if (eps[i] && url_allowed(eps[i], "the provider's endpoint", err) < 0)
            goto out;
    ret = 0;
out:
    if (ret < 0)
        hp_oauth_meta_release(meta);
    json_decref(o);
    free(url);
    return ret;
}

void hp_oauth_meta_release(struct hp_oauth_meta *meta)
{
    if (!meta)
        return;
    free(meta->issuer);
    free(meta->device_authorization_endpoint);
    free(meta->token_endpoint);
    free(meta->revocation_endpoint);
    free(meta->userinfo_endpoint);
    memset(meta, 0, sizeof(*meta));
}

/* ---------------------------------------------------------------- device grant */

int hp_oauth_device_start(const struct hp_site_oauth *cfg, const struct hp_oauth_meta *meta,
                          struct hp_oauth_device *dev, struct hp_err *err)
{
    memset(dev, 0, sizeof(*dev));
    if (!meta->device_authorization_endpoint)
        return hp_err_set(err, HP_ESITE, "the identity provider '%s' offers no device "
                          "authorization endpoint (RFC 8628): hpcport cannot log in there",
                          cfg->issuer);
    struct hp_buf form = HP_BUF_INIT, scope = HP_BUF_INIT;
    for (size_t i = 0; cfg->scopes && cfg->scopes[i]; i++) {
        if (i)
            hp_buf_addch(&scope, ' ');
        hp_buf_adds(&scope, cfg->scopes[i]);
    }
    form_add(&form, "client_id", cfg->client_id);
    if (scope.len)
        form_add(&form, "scope", scope.buf);
    if (cfg->audience)
        form_add(&form, "audience", cfg->audience);
    long status = 0;
    json_t *o = NULL;
    int ret = -1;
    char ebuf[512];
    if (post_json(meta->device_authorization_endpoint, &form, cfg->ca_file, &status, &o, err) < 0)
        goto out;
    if (status != 200) {
        hp_err_set(err, HP_ESITE, "the identity provider refused to start a device login for "
                   "client '%s' (%s); check oauth.client_id and oauth.scopes",
                   cfg->client_id, oauth_error(o, status, ebuf, sizeof(ebuf)));
        goto out;
    }
    dev->device_code = jdup(o, "device_code");
    dev->user_code = jdup(o, "user_code");
    dev->verification_uri = jdup(o, "verification_uri");
    if (!dev->verification_uri)   /* drafts of RFC 8628 said verification_url */
        dev->verification_uri = jdup(o, "verification_url");
    dev->verification_uri_complete = jdup(o, "verification_uri_complete");
    json_int_t exp = json_integer_value(json_object_get(o, "expires_in"));
    json_int_t iv = json_integer_value(json_object_get(o, "interval"));
    if (!dev->device_code || !dev->user_code || !dev->verification_uri || exp <= 0) {
        hp_err_set(err, HP_ESYS, "the identity provider's device authorization answer lacks "
                   "device_code, user_code, verification_uri or expires_in");
        goto out;
    }
    dev->expires_in = exp;
    dev->interval = iv > 0 && iv < 3600 ? (int)iv : 5;
    dev->deadline = hp_now() + (double)exp;
    ret = 0;
out:
    if (ret < 0)
        hp_oauth_device_release(dev);
    json_decref(o);
    buf_wipe(&form);
    hp_buf_release(&scope);
    return ret;
}

void hp_oauth_device_release(struct hp_oauth_device *dev)
{
    if (!dev)
        return;
    hp_secret_free(dev->device_code);
    free(dev->user_code);
    free(dev->verification_uri);
    free(dev->verification_uri_complete);
    memset(dev, 0, sizeof(*dev));
}

/* Sleep secs, waking every 100 ms to check for Ctrl-C. */
static int wait_for(double secs, struct hp_err *err)
{
    double end = hp_now() + secs;
    while (hp_now() < end) {
        if (is_cancelled())
            return hp_err_set(err, HP_EFAIL, "interrupted");
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return is_cancelled() ? hp_err_set(err, HP_EFAIL, "interrupted") : 0;
}

/* The "sub" of an id token's payload; the token is not verified: the
 * subject is shown to the user, never trusted. */
static char *id_token_subject(const char *jwt)
{
    const char *p = jwt ? strchr(jwt, '.') : NULL;
    const char *q = p ? strchr(p + 1, '.') : NULL;
    if (!q || q - p - 1 > 16384)
        return NULL;
    size_t n = (size_t)(q - p - 1);
    struct hp_buf b = HP_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        hp_buf_addch(&b, p[1 + i] == '-' ? '+' : p[1 + i] == '_' ? '/' : p[1 + i]);
    while (b.len % 4)
        hp_buf_addch(&b, '=');
    unsigned char *out = hp_xmalloc(b.len + 1);
    int len = EVP_DecodeBlock(out, (const unsigned char *)b.buf, (int)b.len);
    char *sub = NULL;
    if (len > 0) {
        while (len > 0 && out[len - 1] == '\0')   /* padding decodes to zeros */
            len--;
        json_t *o = json_loadb((const char *)out, (size_t)len, 0, NULL);
        sub = jdup(o, "sub");
        json_decref(o);
    }
    free(out);
    hp_buf_release(&b);
    return sub;
}

/* Fill the token fields of rec from a successful token answer. */
static int take_tokens(json_t *o, struct hp_token_rec *rec, struct hp_err *err)
{
    const char *at = jstr(o, "access_token");
    if (!at)
        return hp_err_set(err, HP_ESYS, "the identity provider's token answer has no "
                          "access_token");
    hp_secret_free(rec->access_token);
    rec->access_token = hp_xstrdup(at);
    free(rec->token_type);
    rec->token_type = jdup(o, "token_type");
    json_int_t exp = json_integer_value(json_object_get(o, "expires_in"));
    rec->expires_at = exp > 0 ? (int64_t)hp_wall_now() + exp : 0;
    const char *rt = jstr(o, "refresh_token");
    if (rt) {   /* a refresh answer without one keeps the old one (RFC 6749 6) */
        hp_secret_free(rec->refresh_token);
        rec->refresh_token = hp_xstrdup(rt);
    }
    if (jstr(o, "scope")) {
        free(rec->scope);
        rec->scope = jdup(o, "scope");
    }
    char *sub = id_token_subject(jstr(o, "id_token"));
    if (sub) {
        free(rec->subject);
        rec->subject = sub;
    }
    return 0;
}

int hp_oauth_device_poll(const char *site, const struct hp_site_oauth *cfg,
                         const struct hp_oauth_meta *meta, struct hp_oauth_device *dev,
                         struct hp_token_rec *rec, struct hp_err *err)
{
    memset(rec, 0, sizeof(*rec));
    struct hp_buf form = HP_BUF_INIT;
    form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
    form_add(&form, "device_code", dev->device_code);
    form_add(&form, "client_id", cfg->client_id);
    int interval = dev->interval > 0 ? dev->interval : 5, ret = -1;
    char ebuf[512];
    for (;;) {
        if (wait_for(interval, err) < 0)
            goto out;
        if (hp_now() > dev->deadline) {
            hp_err_set(err, HP_ESITE, "the login code for site '%s' expired before the login was "
                       "approved; run 'hpcport auth login %s' again and approve it within "
                       "%lld seconds", site, site, (long long)dev->expires_in);
            goto out;
        }
        long status = 0;
        json_t *o = NULL;
        if (post_json(meta->token_endpoint, &form, cfg->ca_file, &status, &o, err) < 0)
            goto out;
        const char *e = jstr(o, "error");
        if (status == 200 && !e) {
            int r = take_tokens(o, rec, err);
            json_decref(o);
            if (r < 0)
                goto out;
            break;
        }
        if (e && !strcmp(e, "authorization_pending")) {
            json_decref(o);
            continue;
        }
        if (e && !strcmp(e, "slow_down")) {
            interval += 5;
            json_decref(o);
            continue;
        }
        if (e && !strcmp(e, "access_denied"))
            hp_err_set(err, HP_ESITE, "the login to site '%s' was denied at the identity "
                       "provider (%s); nothing was changed", site,
                       oauth_error(o, status, ebuf, sizeof(ebuf)));
        else if (e && !strcmp(e, "expired_token"))
            hp_err_set(err, HP_ESITE, "the login code for site '%s' expired before the login was "
                       "approved; run 'hpcport auth login %s' again and approve it within "
                       "%lld seconds", site, site, (long long)dev->expires_in);
        else
            hp_err_set(err, HP_ESITE, "the identity provider refused the login to site '%s' (%s)",
                       site, oauth_error(o, status, ebuf, sizeof(ebuf)));
        json_decref(o);
        goto out;
    }
    rec->site = hp_xstrdup(site);
    rec->issuer = hp_xstrdup(cfg->issuer);
    rec->client_id = hp_xstrdup(cfg->client_id);
    rec->token_endpoint = hp_xstrdup(meta->token_endpoint);
    rec->revocation_endpoint = meta->revocation_endpoint ? hp_xstrdup(meta->revocation_endpoint)
                                                         : NULL;
    rec->obtained_at = (int64_t)hp_wall_now();
    ret = 0;
out:
    if (ret < 0)
        hp_token_rec_release(rec);
    buf_wipe(&form);
    return ret;
}

/* ---------------------------------------------------------------- refresh, revoke */

int hp_oauth_refresh(struct hp_token_rec *rec, const char *ca_file, struct hp_err *err)
{
    if (!rec->refresh_token)
        return hp_err_set(err, HP_ESITE, "the access token for site '%s' expired and there is no "
                          "refresh token (was offline_access in oauth.scopes?); run 'hpcport "
                          "auth login %s'", rec->site, rec->site);
    if (url_allowed(rec->token_endpoint, "the token endpoint", err) < 0)
        return -1;
    struct hp_buf form = HP_BUF_INIT;
    form_add(&form, "grant_type", "refresh_token");
    form_add(&form, "refresh_token", rec->refresh_token);
    form_add(&form, "client_id", rec->client_id);
    long status = 0;
    json_t *o = NULL;
    char ebuf[512];
    int ret = post_json(rec->token_endpoint, &form, ca_file, &status, &o, err);
    buf_wipe(&form);
    if (ret < 0) {
        hp_err_prefix(err, "cannot refresh the access token for site '%s' (the stored login is "
                      "kept; try again later)", rec->site);
        return -1;
    }
    const char *e = jstr(o, "error");
    if (status == 200 && !e) {
        /* work on a copy so that a bad answer changes nothing */
        struct hp_token_rec n = *rec;
        n.access_token = NULL;
        n.token_type = hp_xstrdup(rec->token_type ? rec->token_type : "Bearer");
        n.refresh_token = hp_xstrdup(rec->refresh_token);
        n.scope = rec->scope ? hp_xstrdup(rec->scope) : NULL;
        n.subject = rec->subject ? hp_xstrdup(rec->subject) : NULL;
        if (take_tokens(o, &n, err) < 0) {
            hp_secret_free(n.refresh_token);
            free(n.token_type);
            free(n.scope);
            free(n.subject);
            json_decref(o);
            return -1;
        }
        hp_secret_free(rec->access_token);
        hp_secret_free(rec->refresh_token);
        free(rec->token_type);
        free(rec->scope);
        free(rec->subject);
        n.refreshed_at = (int64_t)hp_wall_now();
        *rec = n;
        json_decref(o);
        return 0;
    }
    if (e && !strcmp(e, "invalid_grant"))
        hp_err_set(err, HP_ESITE, "the identity provider refused the refresh token for site '%s' "
                   "(%s): it expired or was revoked; run 'hpcport auth login %s' (the stored "
                   "login is kept until then)", rec->site,
                   oauth_error(o, status, ebuf, sizeof(ebuf)), rec->site);
    else
        hp_err_set(err, HP_ESITE, "the identity provider refused to refresh the access token for "
                   "site '%s' (%s); the stored login is kept; run 'hpcport auth login %s' if "
                   "this persists", rec->site, oauth_error(o, status, ebuf, sizeof(ebuf)),
                   rec->site);
    json_decref(o);
    return -1;
}

static int revoke_one(const struct hp_token_rec *rec, const char *token, const char *hint,
                      const char *ca_file, struct hp_err *err)
{
    struct hp_buf form = HP_BUF_INIT, body = HP_BUF_INIT;
    form_add(&form, "token", token);
    form_add(&form, "token_type_hint", hint);
    form_add(&form, "client_id", rec->client_id);
    long status = 0;
    int ret = http_call(rec->revocation_endpoint, form.buf, ca_file, &status, &body, err);
    buf_wipe(&form);
    if (ret == 0 && status != 200) {
        json_t *o = json_loadb(body.buf, body.len, 0, NULL);
        char ebuf[512];
        ret = hp_err_set(err, HP_ESITE, "the identity provider refused to revoke the %s (%s)",
                         !strcmp(hint, "refresh_token") ? "refresh token" : "access token",
                         oauth_error(o, status, ebuf, sizeof(ebuf)));
        json_decref(o);
    }
    buf_wipe(&body);
    return ret;
}

int hp_oauth_revoke(const struct hp_token_rec *rec, const char *ca_file, struct hp_err *err)
{
    if (!rec->revocation_endpoint)
        return 0;
    if (url_allowed(rec->revocation_endpoint, "the revocation endpoint", err) < 0)
        return -1;
    /* the refresh token first: revoking it usually ends the access token too */
    if (rec->refresh_token &&
        revoke_one(rec, rec->refresh_token, "refresh_token", ca_file, err) < 0)
        return -1;
    return revoke_one(rec, rec->access_token, "access_token", ca_file, err);
}

/* ---------------------------------------------------------------- hp_token_get */

/* The record for s, checked against the profile. 1 loaded, -1 with err. */
static int load_for_site(const char *tokdir, const struct hp_site *s, struct hp_token_rec *rec,
                         struct hp_err *err)
{
    int r = hp_tokstore_load(tokdir, s->name, rec, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return hp_err_set(err, HP_ENOTFOUND, "not logged in to site '%s': run 'hpcport auth "
                          "login %s'", s->name, s->name);
    if (!same_issuer(rec->issuer, s->oauth->issuer) || strcmp(rec->client_id, s->oauth->client_id)) {
        hp_err_set(err, HP_ESITE, "the stored login for site '%s' is for issuer '%s' and client "
                   "'%s', but the profile now names '%s' and '%s': run 'hpcport auth login %s'",
                   s->name, rec->issuer, rec->client_id, s->oauth->issuer, s->oauth->client_id,
                   s->name);
        hp_token_rec_release(rec);
        return -1;
    }
    return 1;
}

static int fresh(const struct hp_token_rec *rec)
{
    return rec->expires_at == 0 || rec->expires_at - (int64_t)hp_wall_now() > 60;
}

int hp_token_get_in(const char *tokdir, const struct hp_site *s, char **access_token,
                    struct hp_err *err)
{
    struct hp_token_rec rec;
    int lock = -1, ret = -1;
    *access_token = NULL;
    if (!s->oauth)
        return hp_err_set(err, HP_ESITE, "site '%s' has no oauth section; add oauth.issuer and "
                          "oauth.client_id to its profile (see hpcport-site(5))", s->name);
    if (load_for_site(tokdir, s, &rec, err) < 0)
        return -1;
    if (fresh(&rec))
        goto done;
    /* refresh under the lock, with the record as it is now: another
     * process may have refreshed it while we waited */
    hp_token_rec_release(&rec);
    if (hp_tokstore_lock(tokdir, s->name, &lock, err) < 0)
        return -1;
    if (load_for_site(tokdir, s, &rec, err) < 0)
        goto out_unlocked;
    if (!fresh(&rec)) {
        if (hp_oauth_refresh(&rec, s->oauth->ca_file, err) < 0)
            goto out;
        if (hp_tokstore_save(tokdir, &rec, err) < 0) {
            hp_err_prefix(err, "the access token for site '%s' was refreshed but cannot be "
                          "stored (if the provider rotated the refresh token, run 'hpcport "
                          "auth login %s')", s->name, s->name);
            goto out;
        }
    }
done:
    *access_token = hp_xstrdup(rec.access_token);
    ret = 0;
out:
    hp_token_rec_release(&rec);
out_unlocked:
    hp_tokstore_unlock(lock);
    return ret;
}
