/* catalog.h - the site catalog: a git repository of shared site profiles,
 * cloned with libgit2 and pinned to one commit.
 *
 * Where: $XDG_DATA_HOME/hpcport/catalog/ (default ~/.local/share/hpcport/
 * catalog/), mode 0700, holding
 *   repo.git/    a bare repository (fetched objects; refs/hpcport/pinned
 *                keeps the pinned commit's objects reachable),
 *   state.json   {"url", "commit", "synced", "ca_file"} written atomically
 *                (temporary file + fsync + rename): the one source of truth
 *                for what is used,
 *   lock         flock(2)ed while a sync runs.
 *
 * Layout of a catalog repository: profiles are the files sites/NAME.yaml of
 * the commit (NAME a valid profile name, see hp_site_valid_name()); other
 * files are ignored. Profiles are always read from the pinned commit's tree,
 * never from a worktree, so a fetch that stops half way never changes what
 * is used. A profile that is not a regular file (a symbolic link, a
 * submodule, a folder), has a bad name, or is over HP_CATALOG_MAX_PROFILE
 * bytes makes a sync refuse the commit; reading treats it as absent.
 *
 * Remotes: file:// (and plain paths), ssh:// and https://.
 *   ssh://  credentials from the ssh agent, then the key files that the ssh
 *           configuration names (IdentityFile, see sshconfig.h) or the
 *           default ~/.ssh/id_ed25519, id_ecdsa, id_rsa (unencrypted);
 *           HostName, Port and User of the ssh configuration apply to the
 *           URL's host. Host keys are checked strictly against the known_hosts
 *           files (UserKnownHostsFile or ~/.ssh/known_hosts, known_hosts2,
 *           /etc/ssh/ssh_known_hosts, hpcport's own file): unknown or changed
 *           keys are refused, never added.
 *   https:// the server certificate must verify against the CA file given to
 *           the sync (ca_file, else $HPCPORT_CA_FILE, else the one remembered
 *           from the last sync, else the system's certificates). */
#ifndef HP_CATALOG_H
#define HP_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define HP_CATALOG_MAX_PROFILE (1u << 20)   /* bytes per profile */
#define HP_CATALOG_MAX_PROFILES 10000

/* The catalog directory (new string). */
char *hp_catalog_dir(void);

/* What state.json says. All NULL/0 when no catalog was ever synced. */
struct hp_catalog_state {
    char *url;
    char *commit;       /* 40 hex digits */
    int64_t synced;     /* Unix time of the last successful sync */
    char *ca_file;      /* NULL = none given */
};
/* 0 (state empty when there is no catalog), -1 on a damaged state file. */
int hp_catalog_state_load(struct hp_catalog_state *st, struct hp_err *err);
void hp_catalog_state_release(struct hp_catalog_state *st);

/* ---- reading the pinned commit ------------------------------------------- */

struct hp_catalog;
/* Open the pinned catalog. Returns NULL with err->code == 0 when there is no
 * catalog, NULL with an error when it is damaged. */
struct hp_catalog *hp_catalog_open(struct hp_err *err);
void hp_catalog_close(struct hp_catalog *c);
const char *hp_catalog_url(const struct hp_catalog *c);
const char *hp_catalog_commit(const struct hp_catalog *c);
/* The profile NAME of the pinned commit: 1 with *data (NUL-terminated,
 * caller frees) and *len, 0 when the catalog has no such profile, -1 on a
 * read error. */
int hp_catalog_read(struct hp_catalog *c, const char *name, char **data, size_t *len,
                    struct hp_err *err);
/* The profile names of the pinned commit, sorted (NULL-terminated, free with
 * hp_catalog_names_free). */
char **hp_catalog_names(struct hp_catalog *c, struct hp_err *err);
void hp_catalog_names_free(char **names);
/* The name messages and origins use for a catalog profile:
 * "<catalog@COMMIT12>/sites/NAME.yaml" (new string). */
char *hp_catalog_label(const char *commit, const char *name);

/* ---- sync ---------------------------------------------------------------- */

struct hp_catalog_sync_opts {
    const char *url;        /* NULL = the remembered one */
    const char *ca_file;    /* NULL = $HPCPORT_CA_FILE or the remembered one */
    int force;              /* accept a head that does not descend from the pin */
};

struct hp_catalog_change {
    char what;              /* 'A' added, 'M' modified, 'D' removed */
    char *name;
};

struct hp_catalog_sync_result {
    char *url;
    char *old_commit;       /* NULL on the first sync */
    char *new_commit;
    int unchanged;          /* the remote head is the pinned commit */
    int forced;             /* accepted with force although not a descendant */
    struct hp_catalog_change *changes;
    size_t nchanges;
    char **log;             /* "abcdef1 subject" lines, newest first, NULL-terminated */
    size_t nlog;
    size_t more_log;        /* commits in the range beyond those listed */
    size_t nprofiles;       /* profiles in the new commit */
};

/* Fetch the remote's HEAD, validate every profile of it (schema and name),
 * and only when all pass move the pin and write state.json. On any failure
 * the pin and state are unchanged. Errors: HP_EUSAGE no URL known;
 * HP_ESITE remote unreachable, authentication or host key or certificate
 * refused, no HEAD, history rewritten (without force); HP_EINPUT a profile
 * that fails to load or validate (positioned "<catalog@C>/sites/X.yaml:l:c");
 * HP_ESITE a profile that is not a regular file, has a bad name or is too
 * large; HP_ESYS local I/O. */
int hp_catalog_sync(const struct hp_catalog_sync_opts *o, struct hp_catalog_sync_result *r,
                    struct hp_err *err);
void hp_catalog_sync_result_release(struct hp_catalog_sync_result *r);

/* url without a password in its userinfo (new string), for messages. */
char *hp_catalog_redact_url(const char *url);

#endif
