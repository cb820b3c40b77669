/* site.h - site profiles: layered resolution and the typed view.
 *
 * A profile NAME is resolved from layers, lowest first:
 *   1. bundled profiles (compiled in from sites/profiles/NAME.yaml),
 *   2. the site catalog: sites/NAME.yaml of its pinned commit (catalog.h),
 *   3. the user's config dir: $XDG_CONFIG_HOME/hpcport/sites/NAME.yaml,
 *   4. the workflow's directory: <workflow dir>/sites/NAME.yaml,
 *   5. --set key.path=value flags (value parsed as a YAML scalar or flow
 *      collection, e.g. --set scheduler.account=m1234
 *      --set 'network.no_proxy=[a, b]').
 * Each layer's file is validated against schemas/site.schema.json. A file
 * may say `extends: OTHER`: OTHER is resolved first (through all layers) and
 * the file's values are merged over it. Mappings merge key by key; scalars
 * and lists replace. `extends` cycles are errors.
 *
 * Every leaf value of the result remembers its origin: "file:line:col" of the
 * layer that set it, or "--set" for a flag, or "<bundled>/NAME.yaml:line:col"
 * for compiled-in profiles, or "<catalog@COMMIT12>/sites/NAME.yaml:line:col"
 * for catalog profiles. */
#ifndef HP_SITE_H
#define HP_SITE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "err.h"
#include "workflow.h"

enum hp_netmode { HP_NET_OPEN = 0, HP_NET_PROXY, HP_NET_NONE };

struct hp_partition {
    char *name;
    int64_t max_walltime;    /* seconds, 0 = no limit known */
    int max_nodes;           /* 0 = unknown */
    int cores_per_node;      /* 0 = site default */
    int64_t memory_mb;       /* per node, 0 = site default */
    int gpus_per_node;       /* -1 = site default */
    char *gpu_type;          /* NULL = site default */
    char *qos;               /* NULL = site default */
    int pass_name;           /* 0: jobs do not name the partition (pass_name: false) */
    int min_nodes;           /* 0 = none */
    struct hp_wt_bin {       /* walltime_by_nodes, max_nodes ascending */
        int max_nodes;
        int64_t max_walltime;
    } *bins;
    size_t nbins;
};

/* The walltime limit of part for a job of nodes nodes (0: none known), and
 * in *bin (may be NULL) the walltime_by_nodes entry it came from, or -1 for
 * max_walltime. */
int64_t hp_partition_walltime(const struct hp_partition *part, int nodes, long *bin);

/* oauth: the site's OpenID provider, for OAuth2 device logins
 * (auth/oauth.h, hpcport auth). */
struct hp_site_oauth {
    char *issuer;            /* discovery at ISSUER/.well-known/openid-configuration */
    char *client_id;
    char **scopes;           /* never NULL; default openid, offline_access */
    char *audience;          /* NULL = none asked for */
    char *ca_file;           /* PEM bundle for a private CA, NULL = the system's */
};

struct hp_site {
    char *name;
    char *description;
    /* scheduler */
    char *scheduler;         /* "local", "slurm", "pbs" */
    char *dialect;           /* e.g. "pbspro"/"torque"; NULL = default */
    struct hp_partition *parts;
    size_t nparts;
    char *default_partition; /* NULL = scheduler's default */
    char *account;           /* NULL = none */
    char *qos;
    char *constraint;
    char **directives;       /* mandatory extra directives, NULL-terminated */
    int max_queued_jobs;     /* 0 = no limit known */
    int64_t max_walltime;    /* seconds, site-wide, 0 = none */
    int64_t default_walltime;/* seconds, 0 = none */
    int64_t query_timeout;   /* seconds a scheduler query may take, 0 = default */
    char *gpu_request;       /* never NULL: "gpus-per-node" (also when unstated),
                                "gres", "gpus" or "none" */
    int no_memory_request;   /* memory_request: none: jobs state no memory */
    struct hp_site_rest {    /* scheduler.rest (type slurmrest); url NULL when absent */
        char *url;           /* without a trailing '/' */
        char *via;           /* "direct" (default), "ssh" or "proxy" */
        char *proxy;         /* for via proxy */
        char *api;           /* "v0.0.38" by default */
        char *user;          /* NULL: the login user */
        char *token_source;  /* "scontrol" (default), "key" or "env" */
        char *key_file;      /* for source key, ~ expanded */
        int64_t token_lifetime;  /* seconds, default 1800 */
    } rest;
    /* login */
    char *login_host;        /* NULL for local */
    char *login_user;
    int login_port;          /* 0 = 22/ssh config */
    char **jump;             /* jump hosts "user@host:port", NULL-terminated */
    char **auth;             /* methods in order, NULL-terminated */
    char *otp_command;
    /* network */
    enum hp_netmode net_login, net_compute;
    char *proxy;             /* URL or NULL */
    char **no_proxy;         /* NULL-terminated */
    /* filesystems */
    char *home, *scratch;    /* may contain $VARS expanded on the site */
    char **shared;           /* NULL-terminated */
    /* nodes */
    int cores_per_node;      /* 0 = unknown; local: detected */
    int64_t memory_mb;       /* per node, 0 = unknown */
    int gpus_per_node;       /* 0 = none */
    char *gpu_type;
    /* software */
    char *container_runtime; /* "apptainer", "singularity", "podman-hpc",
                                "shifter", "docker", "podman", "enroot" or NULL
                                (absent or "none") */
    char **container_gpu_options; /* runtime options for GPU tasks, NULL-terminated;
                                     used only when container_gpu_options_set */
    int container_gpu_options_set;  /* the profile states container.gpu_options */
    char **container_binds;  /* container.binds: host paths bound at the same
                                path, may hold $VARIABLES; NULL-terminated or NULL */
    char *launcher;          /* "srun", "mpiexec", "mpirun", "aprun", "ibrun", "none";
                                when the profile says none: srun for slurm,
                                mpiexec for pbs, none for local */
    char **setup;            /* shell lines run before each job (site author's) */
    char **modules;          /* module names: "module load NAME" */
    struct hp_kv *env;       /* extra environment */
    size_t nenv;

    struct hp_site_oauth *oauth; /* NULL when the profile has no oauth section */

    /* remote: what hpcport runs on the site */
    char *remote_hpcport;    /* remote.hpcport: never NULL, default "hpcport" */

    /* provenance: set when a layer of this profile (or of a profile it
       extends) came from the site catalog, else NULL */
    char *catalog_url;       /* the catalog's URL (password removed) */
    char *catalog_commit;    /* the pinned commit, 40 hex digits */

    json_t *root;            /* resolved document, validated */
    json_t *origin;          /* object: JSON pointer -> origin string */
};

struct hp_site_opts {
    const char *workflow_dir;      /* NULL = no workflow layer */
    const char *const *sets;       /* "key.path=value", n_sets entries */
    size_t nsets;
    const char *config_dir;        /* NULL = hp_config_dir() */
};

/* Resolve profile name. Unknown name: HP_ESITE with a did-you-mean.
 *
 * Error codes: HP_EINPUT for a file that does not load or does not match the
 * schema; HP_ESITE for an unknown name, an extends cycle, a profile without
 * scheduler.type after resolution, a name that differs from its file name,
 * and bad values (durations, memory sizes, an unknown default partition, a
 * proxy mode without a proxy, ...); HP_EUSAGE for a bad --set flag or an
 * error in a value that a --set flag set (the message names the flag).
 *
 * Typed view: every char ** list is NULL-terminated and never NULL itself
 * (empty when the profile has none); optional strings are NULL when absent
 * or empty. On a local site "auto" (and, for cores, absent) nodes.cores and
 * nodes.memory are detected on this machine and written into root with the
 * origin "<detected>"; elsewhere "auto" leaves them 0 (unknown). */
struct hp_site *hp_site_load(const char *name, const struct hp_site_opts *opts,
                             struct hp_err *err);
/* Resolve the profile in file path, named after the file (without .yaml or
 * .yml), as if the file were its user and workflow layers: only the bundled
 * profile of that name lies below it; `extends` resolves through all layers
 * as usual (the catalog's profile of that name lies below it too). For
 * `hpcport validate FILE` and `hpcport site show FILE`. */
struct hp_site *hp_site_load_file(const char *path, const struct hp_site_opts *opts,
                                  struct hp_err *err);
/* Check the text of one profile file named name (label for messages) as a
 * layer is checked: it loads, matches schemas/site.schema.json and its
 * `name`, if any, is name. 0, or -1 with a positioned error (HP_EINPUT,
 * HP_ESITE for a name mismatch). Used to vet catalog commits. */
int hp_site_check_text(const char *name, const char *label, const char *data, size_t len,
                       struct hp_err *err);
/* 1 if name is a valid profile name: [A-Za-z0-9][A-Za-z0-9._-]*, at most 128
 * characters. */
int hp_site_valid_name(const char *name);
/* 1 if value is a placeholder the user must fill in, like "<ACCOUNT>". */
int hp_site_is_placeholder(const char *value);
void hp_site_free(struct hp_site *s);

/* Origin of the value at pointer (or its nearest ancestor), or "" (borrowed). */
const char *hp_site_origin(const struct hp_site *s, const char *pointer);

struct hp_site_entry {
    char *name;
    char *description;  /* may be NULL */
    char *scheduler;    /* may be NULL for a file that only extends */
    char *source;       /* file it was found in (highest layer) */
    char *catalog_commit; /* the catalog commit the profile came from, or NULL */
    char *error;        /* NULL, or the one-line error that stops this profile
                           from resolving (then scheduler and description are
                           NULL) */
};
/* All profile names visible through the layers, sorted by name. Each is
 * resolved (without opts->sets); a profile that fails to resolve is listed
 * with its error rather than failing the list. */
int hp_site_list(const struct hp_site_opts *opts, struct hp_site_entry **out, size_t *n,
                 struct hp_err *err);
void hp_site_entries_free(struct hp_site_entry *e, size_t n);

/* Partition to use for resources r (explicit name from the workflow or NULL
 * for the default); NULL if the site has no partitions. The default is
 * default_partition when set, else the first partition listed. An explicit
 * name the site does not list gives NULL. */
const struct hp_partition *hp_site_partition(const struct hp_site *s, const char *name);

/* Seconds one scheduler query may take: scheduler.query_timeout, or 60. */
static inline double hp_site_query_timeout(const struct hp_site *s)
{
    return s->query_timeout > 0 ? (double)s->query_timeout : 60.0;
}

#endif
