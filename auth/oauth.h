/* oauth.h - OAuth2 for a site's OpenID provider (libcurl + jansson):
 * discovery, the device authorization grant (RFC 8628), refresh tokens,
 * revocation (RFC 7009), and hp_token_get for code that needs an access
 * token.
 *
 * Only https URLs are used, verified against the system's CAs or the
 * profile's oauth.ca_file; http only for loopback hosts (127.0.0.0/8, ::1,
 * localhost). Tokens and device codes never appear in error messages.
 *
 * Error codes: HP_ESYS the provider cannot be reached or answers nonsense;
 * HP_ESITE the provider refuses (login denied, code expired, refresh token
 * revoked or expired) or the profile has no usable oauth section;
 * HP_ENOTFOUND not logged in; HP_EFAIL interrupted (hp_oauth_set_cancel). */
#ifndef HP_OAUTH_H
#define HP_OAUTH_H

#include <stdint.h>
#include "err.h"
#include "site.h"
#include "tokstore.h"

/* Endpoints read by discovery (new strings; NULL when not offered). */
struct hp_oauth_meta {
    char *issuer;
    char *device_authorization_endpoint;
    char *token_endpoint;
    char *revocation_endpoint;
    char *userinfo_endpoint;
};

/* A started device login: what the user must see, and what polling needs. */
struct hp_oauth_device {
    char *device_code;                /* secret */
    char *user_code;
    char *verification_uri;
    char *verification_uri_complete;  /* NULL when not given */
    int64_t expires_in;               /* seconds */
    int interval;                     /* seconds between polls */
    double deadline;                  /* hp_now() after which the code is dead */
};

/* A function that returns non-zero when the user asked to stop (Ctrl-C):
 * polling and transfers check it often and then fail with HP_EFAIL.
 * NULL removes it. Process-wide; cli/ registers it. */
void hp_oauth_set_cancel(int (*cancelled)(void));

/* Read ISSUER/.well-known/openid-configuration. The document's issuer must
 * be cfg->issuer, and every endpoint must pass the https rule. */
int hp_oauth_discover(const struct hp_site_oauth *cfg, struct hp_oauth_meta *meta,
                      struct hp_err *err);
void hp_oauth_meta_release(struct hp_oauth_meta *meta);

/* Ask for a device code and a user code (scope, audience from cfg). */
int hp_oauth_device_start(const struct hp_site_oauth *cfg, const struct hp_oauth_meta *meta,
                          struct hp_oauth_device *dev, struct hp_err *err);
/* Poll the token endpoint every dev->interval seconds (authorization_pending:
 * wait; slow_down: 5 s more) until the user approves, denies
 * (access_denied), or the code expires (expired_token). On success fills rec
 * (zeroed first) with the tokens, the issuer, client id, endpoints, the
 * subject of the id token when one came, and site. */
int hp_oauth_device_poll(const char *site, const struct hp_site_oauth *cfg,
                         const struct hp_oauth_meta *meta, struct hp_oauth_device *dev,
                         struct hp_token_rec *rec, struct hp_err *err);
void hp_oauth_device_release(struct hp_oauth_device *dev);

/* Trade rec->refresh_token for a new access token at rec->token_endpoint;
 * rec is updated in place only on success (a rotated refresh token replaces
 * the old one). ca_file may be NULL. A refusal (invalid_grant) is HP_ESITE
 * with a message telling to run 'hpcport auth login SITE'. */
int hp_oauth_refresh(struct hp_token_rec *rec, const char *ca_file, struct hp_err *err);
/* Revoke rec's refresh token and access token at rec->revocation_endpoint
 * (nothing to do without one). */
int hp_oauth_revoke(const struct hp_token_rec *rec, const char *ca_file, struct hp_err *err);

/* A valid access token for site s (new string; release with
 * hp_secret_free): the stored one when it is good for 60 s more, else a
 * refreshed one (stored, with a rotated refresh token, under a lock so
 * that two hpcport processes do not both spend the refresh token). The
 * stored record is never lost: a refused refresh leaves it in place.
 * tokdir is the token directory (NULL = the default). */
int hp_token_get_in(const char *tokdir, const struct hp_site *s, char **access_token,
                    struct hp_err *err);
static inline int hp_token_get(const struct hp_site *s, char **access_token, struct hp_err *err)
{
    return hp_token_get_in(NULL, s, access_token, err);
}

#endif
