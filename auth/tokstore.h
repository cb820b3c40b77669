/* tokstore.h - OAuth2 tokens kept on disk, one JSON file per site.
 *
 * Files live in DIR = $XDG_CONFIG_HOME/hpcport/tokens (default
 * ~/.config/hpcport/tokens), one per site: DIR/SITE.json. DIR is created
 * mode 0700; each file is written mode 0600 to a temporary file in DIR,
 * fsync'ed and renamed over the old one, so a reader sees the old record or
 * the new one, never a mix, and a failed write leaves the old record.
 *
 * Before reading or writing, the directory and the file must be ours (owned
 * by the effective uid, not a symbolic link) and private (no group or other
 * permission bits); otherwise the call fails with HP_ESYS and a message that
 * names the path and the chmod that fixes it. A file that is not a valid
 * record fails with HP_EINPUT and says how to start afresh.
 *
 * Site names are checked with hp_site_valid_name (no '/', no "..").
 * Token strings are secrets: they never appear in messages, and
 * hp_token_rec_release wipes them. */
#ifndef HP_TOKSTORE_H
#define HP_TOKSTORE_H

#include <stdint.h>
#include "err.h"

struct hp_token_rec {
    char *site;
    char *issuer;               /* as in the site profile's oauth.issuer */
    char *client_id;
    char *token_endpoint;       /* from discovery, kept for refreshes */
    char *revocation_endpoint;  /* NULL when the provider offers none */
    char *access_token;         /* secret */
    char *token_type;           /* "Bearer" */
    int64_t expires_at;         /* epoch seconds; 0 = unknown */
    char *refresh_token;        /* secret; NULL when none was issued */
    char *scope;                /* granted scopes (space-separated), NULL if unknown */
    char *subject;              /* id token's "sub", NULL if unknown */
    int64_t obtained_at;        /* epoch seconds of the login */
    int64_t refreshed_at;       /* epoch seconds of the last refresh, 0 = never */
};

/* The token directory (new string): dir_override when not NULL, else
 * $XDG_CONFIG_HOME/hpcport/tokens. */
char *hp_tokstore_dir(const char *dir_override);

/* Load SITE's record into rec (zeroed first). Returns 1 when loaded, 0 when
 * there is none (rec stays zeroed), -1 with err on refused permissions,
 * a corrupt file, a bad site name or an I/O error. dir may be NULL (default
 * directory). */
int hp_tokstore_load(const char *dir, const char *site, struct hp_token_rec *rec,
                     struct hp_err *err);
/* Write rec (rec->site names the file) atomically. */
int hp_tokstore_save(const char *dir, const struct hp_token_rec *rec, struct hp_err *err);
/* Delete SITE's record: 1 deleted, 0 there was none, -1 with err. */
int hp_tokstore_delete(const char *dir, const char *site, struct hp_err *err);
/* Names of the sites with a record, sorted (NULL-terminated array of new
 * strings; free each and the array). Files that are not SITE.json are
 * skipped. A missing directory gives an empty list. */
int hp_tokstore_list(const char *dir, char ***sites, struct hp_err *err);

/* Take SITE's lock (DIR/.SITE.lock, flock): held by whoever refreshes
 * SITE's tokens, so that two processes do not both spend a refresh token
 * the provider rotates. *fd is the lock; hp_tokstore_unlock(fd) ends it
 * (-1 is fine). */
int hp_tokstore_lock(const char *dir, const char *site, int *fd, struct hp_err *err);
void hp_tokstore_unlock(int fd);

/* Wipe the secrets and free the strings; rec is zeroed. */
void hp_token_rec_release(struct hp_token_rec *rec);

#endif
