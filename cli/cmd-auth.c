/* cmd-auth.c - hpcport auth login | status | logout | token: OAuth2 logins to
 * a site's OpenID provider (device authorization grant), kept in the token
 * store (auth/tokstore.h). */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "auth.h"
#include "oauth.h"
#include "site.h"
#include "tokstore.h"
#include "util.h"
#include "banned.h"

static const char auth_usage[] =
    "usage: hpcport auth login [--no-browser] SITE\n"
    "       hpcport auth status [--json] [SITE]\n"
    "       hpcport auth logout SITE\n"
    "       hpcport auth token SITE\n";

static const char auth_help[] =
    "\n"
    "Log in to a site's OpenID provider (the profile's oauth section) with the\n"
    "OAuth2 device authorization grant, and keep the tokens in\n"
    "$XDG_CONFIG_HOME/hpcport/tokens/SITE.json (directory 0700, files 0600;\n"
    "looser permissions are refused).\n"
    "\n"
    "commands:\n"
    "    login SITE     show a URL and a code to approve in a browser, wait for the\n"
    "                   approval, store the tokens (a failed login keeps the old ones)\n"
    "    status [SITE]  table of stored logins: site, issuer, subject, expiry of the\n"
    "                   access token, refresh token; exit 8 when SITE (or any site,\n"
    "                   without SITE) has no usable login\n"
    "    logout SITE    revoke the tokens at the provider when it offers revocation,\n"
    "                   then delete them (nothing to do when not logged in)\n"
    "    token SITE     print a valid access token (refreshed when it expires within\n"
    "                   60 s), for scripts\n"
    "\n"
    "options:\n"
    "    --no-browser   login: only print the URL (the default)\n"
    "    --json         status: JSON array instead of a table\n"
    "    -h, --help     show this help\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = 1;
}

static int check_interrupted(void)
{
    return interrupted;
}

/* Ctrl-C ends the wait cleanly (nothing stored) instead of killing us. */
static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    hp_oauth_set_cancel(check_interrupted);
}

static int check_name(const char *site)
{
    if (hp_site_valid_name(site))
        return 0;
    return hp_cli_fail(HP_EUSAGE, "'%s' is not a site name (letters, digits, '.', '_' and '-', "
                       "starting with a letter or digit)", site);
}

/* The site's profile with an oauth section. */
static struct hp_site *oauth_site(const char *name, struct hp_err *err)
{
    struct hp_cli_siteargs sa = { 0 };
    struct hp_site *s = hp_cli_site(name, &sa, err);
    if (s && !s->oauth) {
        hp_err_set(err, HP_ESITE, "site '%s' has no oauth section; add oauth.issuer and "
                   "oauth.client_id to its profile (see hpcport-site(5))", s->name);
        hp_site_free(s);
        s = NULL;
    }
    return s;
}

static void human_duration(int64_t secs, char *buf, size_t len)
{
    if (secs < 120)
        snprintf(buf, len, "%llds", (long long)secs);
    else if (secs < 7200)
        snprintf(buf, len, "%lldm", (long long)(secs / 60));
    else if (secs < 172800)
        snprintf(buf, len, "%lldh", (long long)(secs / 3600));
    else
        snprintf(buf, len, "%lldd", (long long)(secs / 86400));
}

static int do_login(const char *name)
{
    struct hp_err err;
    struct hp_oauth_meta meta = { 0 };
    struct hp_oauth_device dev = { 0 };
    struct hp_token_rec rec = { 0 };
    int rc;
    hp_err_init(&err);
    struct hp_site *s = oauth_site(name, &err);
    if (!s || hp_oauth_discover(s->oauth, &meta, &err) < 0 ||
        hp_oauth_device_start(s->oauth, &meta, &dev, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    char left[32];
    human_duration(dev.expires_in, left, sizeof(left));
    fprintf(stderr, "To log in to site '%s', open\n    %s\nand enter the code\n    %s\n", s->name,
            dev.verification_uri, dev.user_code);
    if (dev.verification_uri_complete)
        fprintf(stderr, "(or open %s)\n", dev.verification_uri_complete);
    fprintf(stderr, "Waiting for the approval (the code expires in %s; Ctrl-C to stop)...\n", left);
    fflush(stderr);
    catch_sigint();
    if (hp_oauth_device_poll(s->name, s->oauth, &meta, &dev, &rec, &err) < 0) {
        if (interrupted) {
            fprintf(stderr, "hpcport: login interrupted; nothing was changed\n");
            rc = 130;
        } else {
            rc = hp_cli_error(&err);
        }
        goto out;
    }
    if (hp_tokstore_save(NULL, &rec, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (!rec.refresh_token)
        hp_cli_warn("the provider gave no refresh token (is offline_access in oauth.scopes?): "
                    "you will have to log in again when the access token expires");
    fprintf(stderr, "Logged in to site '%s'%s%s.\n", s->name, rec.subject ? " as " : "",
            rec.subject ? rec.subject : "");
    rc = 0;
out:
    hp_token_rec_release(&rec);
    hp_oauth_device_release(&dev);
    hp_oauth_meta_release(&meta);
    hp_site_free(s);
    return rc;
}

/* A login can still give an access token: one valid now, or a refresh
 * token hpcport has not seen refused. */
static int usable(const struct hp_token_rec *r, int64_t now)
{
    return r->expires_at == 0 || r->expires_at > now || r->refresh_token;
}

static int do_status(const char *only, int json)
{
    struct hp_err err;
    char **sites = NULL;
    int rc = 0, any = 0;
    hp_err_init(&err);
    if (only) {
        sites = hp_xcalloc(2, sizeof(*sites));
        sites[0] = hp_xstrdup(only);
    } else if (hp_tokstore_list(NULL, &sites, &err) < 0) {
        return hp_cli_error(&err);
    }
    int64_t now = (int64_t)hp_wall_now();
    json_t *arr = json_array();
    if (!json && sites[0])
        printf("%-16s %-36s %-16s %-10s %s\n", "SITE", "ISSUER", "SUBJECT", "EXPIRES", "REFRESH");
    for (size_t i = 0; sites[i]; i++) {
        struct hp_token_rec r;
        int l = hp_tokstore_load(NULL, sites[i], &r, &err);
        if (l < 0) {
            rc = hp_cli_error(&err);
            hp_err_init(&err);
            continue;
        }
        if (l == 0) {
            rc = hp_cli_fail(HP_ENOTFOUND, "not logged in to site '%s': run 'hpcport auth login "
                             "%s'", sites[i], sites[i]);
            continue;
        }
        any = 1;
        if (!usable(&r, now) && !rc)
            rc = HP_ENOTFOUND;
        if (json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:b, s:I}",
                                  "site", r.site, "issuer", r.issuer, "client_id", r.client_id,
                                  "subject", r.subject ? json_string(r.subject) : json_null(),
                                  "scope", r.scope ? json_string(r.scope) : json_null(),
                                  "refresh_token", r.refresh_token != NULL,
                                  "usable", usable(&r, now), "obtained_at",
                                  (json_int_t)r.obtained_at);
            json_object_set_new(o, "expires_at", r.expires_at ? json_integer(r.expires_at)
                                                               : json_null());
            json_object_set_new(o, "expires_in", r.expires_at ? json_integer(r.expires_at - now)
                                                               : json_null());
            json_object_set_new(o, "refreshed_at", r.refreshed_at ? json_integer(r.refreshed_at)
                                                                  : json_null());
            json_array_append_new(arr, o);
        } else {
            char exp[32];
            if (!r.expires_at)
                snprintf(exp, sizeof(exp), "unknown");
            else if (r.expires_at <= now)
                snprintf(exp, sizeof(exp), "expired");
            else
                human_duration(r.expires_at - now, exp, sizeof(exp));
            printf("%-16s %-36s %-16s %-10s %s\n", r.site, r.issuer,
                   r.subject ? r.subject : "-", exp, r.refresh_token ? "yes" : "no");
        }
        hp_token_rec_release(&r);
    }
    if (json) {
        char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text);
        free(text);
    } else if (!only && !any) {
        fprintf(stderr, "hpcport: not logged in to any site: run 'hpcport auth login SITE'\n");
    }
    json_decref(arr);
    if (!only && !any && !rc)
        rc = HP_ENOTFOUND;
    for (size_t i = 0; sites[i]; i++)
        free(sites[i]);
    free(sites);
    return rc;
}

static int do_logout(const char *name)
{
    struct hp_err err;
    struct hp_token_rec r;
    hp_err_init(&err);
    int l = hp_tokstore_load(NULL, name, &r, &err);
    if (l < 0 && err.code != HP_EINPUT)
        return hp_cli_error(&err);   /* refused permissions: fix them first */
    if (l < 0) {
        /* a corrupt record cannot be revoked; deleting it is all we can do */
        hp_cli_warn("%s", err.msg);
        hp_err_init(&err);
    } else if (l == 0) {
        fprintf(stderr, "hpcport: not logged in to site '%s'; nothing to do\n", name);
        return 0;
    } else if (r.revocation_endpoint) {
        /* the profile's CA file, when the profile still loads */
        struct hp_err serr;
        hp_err_init(&serr);
        struct hp_site *s = oauth_site(name, &serr);
        if (hp_oauth_revoke(&r, s ? s->oauth->ca_file : NULL, &err) < 0) {
            hp_cli_warn("could not revoke the tokens of site '%s' at the identity provider: %s; "
                        "deleting them here anyway", name, err.msg);
            hp_err_init(&err);
        }
        hp_site_free(s);
    }
    hp_token_rec_release(&r);
    if (hp_tokstore_delete(NULL, name, &err) < 0)
        return hp_cli_error(&err);
    fprintf(stderr, "Logged out of site '%s'.\n", name);
    return 0;
}

static int do_token(const char *name)
{
    struct hp_err err;
    char *tok = NULL;
    int rc = 0;
    hp_err_init(&err);
    struct hp_site *s = oauth_site(name, &err);
    catch_sigint();
    if (!s || hp_token_get(s, &tok, &err) < 0)
        rc = hp_cli_error(&err);
    else
        puts(tok);
    hp_secret_free(tok);
    hp_site_free(s);
    return rc;
}

int cmd_auth(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "no-browser", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int json = 0, no_browser = 0, c;
    if (argc < 2)
        return hp_cli_usage_error(auth_usage, "no auth command given");
    if (hp_cli_is_help(argv[1])) {
        fputs(auth_usage, stdout);
        fputs(auth_help, stdout);
        return 0;
    }
    const char *sub = argv[1];
    static const char *const subs[] = { "login", "logout", "status", "token", NULL };
    size_t k = 0;
    while (subs[k] && strcmp(subs[k], sub) != 0)
        k++;
    if (!subs[k]) {
        const char *s = hp_suggest(sub, subs);
        return s ? hp_cli_usage_error(auth_usage, "'%s' is not an auth command (did you mean "
                                      "'%s'?)", sub, s)
                 : hp_cli_usage_error(auth_usage, "'%s' is not an auth command", sub);
    }
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(auth_usage, stdout);
            fputs(auth_help, stdout);
            return 0;
        case 'j': json = 1; break;
        case 'n': no_browser = 1; break;
        default:
            return hp_cli_usage_error(auth_usage, "unknown option '%s'", argv[optind]);
        }
    }
    (void)no_browser;   /* printing the URL is all hpcport does */
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if ((json && strcmp(sub, "status") != 0) || (no_browser && strcmp(sub, "login") != 0))
        return hp_cli_usage_error(auth_usage, "option %s is for 'auth %s' only",
                                  json ? "--json" : "--no-browser", json ? "status" : "login");
    if (!strcmp(sub, "status")) {
        if (nargs > 1)
            return hp_cli_usage_error(auth_usage, "'auth status' takes at most one site");
        if (nargs == 1 && check_name(args[0]))
            return HP_EUSAGE;
        return do_status(nargs ? args[0] : NULL, json);
    }
    if (nargs != 1)
        return hp_cli_usage_error(auth_usage, "'auth %s' takes one site", sub);
    if (check_name(args[0]))
        return HP_EUSAGE;
    if (!strcmp(sub, "login"))
        return do_login(args[0]);
    if (!strcmp(sub, "logout"))
        return do_logout(args[0]);
    return do_token(args[0]);
}
