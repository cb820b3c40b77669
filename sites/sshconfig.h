/* sshconfig.h - the subset of ssh_config(5) that hpcport honours.
 *
 * Read from $HPCPORT_SSH_CONFIG when set, else ~/.ssh/config (a missing file
 * is an empty configuration). The system-wide /etc/ssh/ssh_config is not read.
 *
 * Understood keywords (case-insensitive, "Key value" or "Key=value", values
 * may be double-quoted): Host, HostName, User, Port, IdentityFile,
 * IdentitiesOnly, ProxyJump, ServerAliveInterval, ServerAliveCountMax,
 * UserKnownHostsFile, StrictHostKeyChecking, ConnectTimeout, Include.
 * Other keywords are ignored, except ProxyCommand, which hpcport cannot
 * honour: a lookup of a host it applies to fails (use ProxyJump).
 *
 * As in OpenSSH, the first value obtained for each keyword wins; IdentityFile
 * accumulates. Host lines take several patterns with '*', '?' and '!'
 * (negation: a host matching a negated pattern never matches the line).
 * Patterns are matched against the name given (the alias), not HostName.
 * Match blocks are skipped (their options never apply), and recorded in
 * hp_sshcfg.warnings. Include takes glob patterns, relative to ~/.ssh, and
 * nests up to 16 deep; an Include inside a Host block applies to that block
 * until the included file's first Host line.
 *
 * Token expansion: HostName: %h, %%. IdentityFile and UserKnownHostsFile:
 * a leading ~ or ~/, and %d (local home), %u (local user), %h (remote host
 * name), %r (remote user), %p (port), %%. */
#ifndef HP_SSHCONFIG_H
#define HP_SSHCONFIG_H

#include <stddef.h>
#include "err.h"

struct hp_sshcfg;

/* What the configuration says about one host. Unset fields are NULL, or -1
 * for numbers and flags. Lists are NULL-terminated and never NULL. */
struct hp_sshhost {
    char *host;                 /* the name looked up (alias) */
    char *hostname;             /* HostName, %h expanded; NULL = host */
    char *user;
    int port;
    char **identity_files;      /* expanded */
    int identities_only;        /* 1 yes, 0 no, -1 unset */
    char *proxy_jump;           /* raw ProxyJump value; "none" kept as is */
    int server_alive_interval;  /* seconds */
    int server_alive_count_max;
    char **known_hosts_files;   /* UserKnownHostsFile (may list several), expanded */
    char *strict_host_key_checking;  /* "yes", "no", "accept-new", "ask", "off" */
    int connect_timeout;        /* seconds */
};

/* Parse text (from file name, for messages). base_dir resolves relative
 * Include paths (NULL = ~/.ssh). Syntax errors: HP_EINPUT with
 * file:line. Returns a new configuration or NULL. */
struct hp_sshcfg *hp_sshcfg_parse(const char *text, const char *name, const char *base_dir,
                                  struct hp_err *err);
/* Load path; a missing file gives an empty configuration. path NULL: the
 * default ($HPCPORT_SSH_CONFIG, else ~/.ssh/config). */
struct hp_sshcfg *hp_sshcfg_load(const char *path, struct hp_err *err);
void hp_sshcfg_free(struct hp_sshcfg *c);
/* Warnings collected while parsing (skipped Match blocks), NULL-terminated
 * (borrowed). */
const char *const *hp_sshcfg_warnings(const struct hp_sshcfg *c);

/* Fill out for host. Returns 0, or -1 (HP_ESITE) when a ProxyCommand
 * applies to host. out must be released with hp_sshhost_release. */
int hp_sshcfg_lookup(const struct hp_sshcfg *c, const char *host, struct hp_sshhost *out,
                     struct hp_err *err);
void hp_sshhost_release(struct hp_sshhost *h);

/* 1 if host matches the pattern list of a Host line (space-separated
 * patterns, as written after "Host"). Exposed for tests. */
int hp_sshcfg_host_matches(const char *patterns, const char *host);
/* Shell-style match of one pattern with '*' and '?' (no negation). */
int hp_sshcfg_wildmatch(const char *pattern, const char *s);

/* One hop of a ProxyJump value: "[user@]host[:port]" or
 * "ssh://[user@]host[:port]"; IPv6 addresses in brackets ("[::1]:22").
 * Fills *user (NULL when absent), *host, *port (0 when absent). Returns 0 or
 * -1 (HP_ESITE) for a malformed value. */
int hp_ssh_parse_hop(const char *spec, char **user, char **host, int *port, struct hp_err *err);

#endif
