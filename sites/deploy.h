/* deploy.h - put this hpcport binary on a site (`hpcport site deploy`).
 *
 * The binary is installed as
 *   $HOME/.local/share/hpcport/bin/hpcport-VERSION-HASH
 * (HASH: the first 12 hex digits of the binary's SHA-256) and the symbolic
 * link .../bin/hpcport points at the current one. Before anything is copied,
 * the site is probed (one command: uname -m, the C library, ldconfig -p)
 * and compared with what the binary needs (its ELF header, the highest
 * GLIBC_x.y of .gnu.version_r, its DT_NEEDED libraries); a site that cannot
 * run it is refused with HP_ESITE naming what differs. The copy goes to a
 * trial name, is run with `version`, and only then renamed to its final name;
 * a trial that fails is removed. The same file already installed (same name,
 * and it runs) is not copied again. Old versions are kept until pruned. */
#ifndef HP_DEPLOY_H
#define HP_DEPLOY_H

#include <stddef.h>
#include "buf.h"
#include "err.h"

struct hp_conn;

/* What a binary needs, from its ELF file. */
struct hp_deploy_bin {
    char arch[24];          /* as uname -m says it: x86_64, aarch64, ppc64le, ... */
    int glibc_major, glibc_minor;   /* highest GLIBC_x.y needed; 0.0 when none */
    char **needed;          /* DT_NEEDED names */
    size_t nneeded;
    char sha256[65];        /* of the whole file, hex */
};

/* What the site has, from the probe's output. */
struct hp_deploy_site {
    char *home;
    char *arch;             /* uname -m */
    int musl;               /* the C library is musl */
    int glibc_major, glibc_minor;   /* 0.0 when unknown (not glibc, or not found) */
    char **libs;            /* sonames ldconfig -p lists for this arch; NULL: no ldconfig */
    size_t nlibs;
    int have_ldconfig;
    char *current;          /* the file bin/hpcport points at, or NULL */
    char **files;           /* hpcport-* files in bin/, sorted */
    size_t nfiles;
};

/* Read path's ELF facts. HP_ESYS when it cannot be read, HP_EINPUT when it
 * is not an ELF file this code understands. Release with
 * hp_deploy_bin_release. */
int hp_deploy_bin_read(const char *path, struct hp_deploy_bin *b, struct hp_err *err);
void hp_deploy_bin_release(struct hp_deploy_bin *b);

/* The shell command line (for `sh -c`) that probes a site; its output is
 * what hp_deploy_site_parse reads. Static string. */
const char *hp_deploy_probe_script(void);
/* Parse the probe's output (bad lines are ignored; a missing arch fails with
 * HP_ESITE). Release with hp_deploy_site_release. */
int hp_deploy_site_parse(const char *out, struct hp_deploy_site *s, struct hp_err *err);
void hp_deploy_site_release(struct hp_deploy_site *s);

/* Can site s run binary b? Returns the number of problems found (0: it
 * fits), each appended to why as one "; "-separated phrase (architecture,
 * C library, glibc version, missing libraries). Libraries of the C library
 * itself (libc, libm, ld-linux, ...) are not looked up; libraries are not
 * checked when the site has no ldconfig (the trial run decides). */
int hp_deploy_decide(const struct hp_deploy_bin *b, const struct hp_deploy_site *s,
                     struct hp_buf *why);

struct hp_deploy_opts {
    const char *binary;     /* file to deploy; NULL: this binary (/proc/self/exe) */
    const char *site;       /* site name, for messages */
    int dry_run;            /* probe and decide only */
};

struct hp_deploy_result {
    char *path;             /* absolute path of the installed file on the site */
    char *link;             /* absolute path of the bin/hpcport link */
    char *name;             /* hpcport-VERSION-HASH */
    char *version;          /* what `FILE version` printed (first line) */
    int uploaded;           /* 0: already there */
    int relinked;           /* the link was changed */
    struct hp_deploy_bin bin;
    struct hp_deploy_site site;
};
void hp_deploy_result_release(struct hp_deploy_result *r);

/* Deploy (see the top of this file). HP_ESITE when the site cannot run the
 * binary (the message says why and how to build hpcport there). */
int hp_deploy(struct hp_conn *c, const struct hp_deploy_opts *o, struct hp_deploy_result *r,
              struct hp_err *err);

/* Probe only: fills r->site (r->bin left empty). */
int hp_deploy_probe(struct hp_conn *c, struct hp_deploy_result *r, struct hp_err *err);

/* Remove every hpcport-* file in bin/ but the one the link points at; names
 * of removed files appended to *removed (array of new strings, *n). */
int hp_deploy_prune(struct hp_conn *c, struct hp_deploy_result *r, char ***removed, size_t *n,
                    struct hp_err *err);

#endif
