/* workflow.h - the workflow model: task definitions and their expansion
 * into task instances.
 *
 * A workflow document (schemas/workflow.schema.json) names tasks. A task may
 * carry a parameter matrix; expansion turns every task into one instance per
 * matrix point, substitutes {param} templates, applies defaults and the
 * overrides of the chosen site, and links instances into a DAG.
 *
 * Dependency semantics: instance B[p] depends on every instance A[q] of each
 * task A in B's `after` list whose values agree with p on the parameters A
 * and B have in common (no common parameter: all instances of A), values
 * compared in their rendered string form. An instance of B for which no
 * instance of A matches is an error.
 *
 * Ownership: every string and array reachable from a struct hp_workflow
 * belongs to it and is released by hp_workflow_free(); instances share
 * strings (parameter names and values, constant arguments), so treat them as
 * read-only and never free them one by one.
 *
 * The format, its templates, expansion order and instance ids are described
 * in hpcport-workflow(5). */
#ifndef HP_WORKFLOW_H
#define HP_WORKFLOW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "doc.h"
#include "err.h"

struct hp_kv {
    char *key;
    char *value;
};

struct hp_resources {
    int nodes;          /* >= 1, default 1 */
    int ntasks;         /* processes (MPI ranks) in total, default 1 */
    int cores;          /* cores per process, default 1 */
    int64_t memory_mb;  /* per node; 0 = not set */
    int gpus;           /* per node; 0 = none */
    char *gpu_type;     /* NULL = any */
    int64_t walltime;   /* seconds; 0 = not set (site or planner default) */
    char *partition;    /* queue/partition, normally from per-site overrides;
                           NULL = the planner chooses */
};

struct hp_task {
    char *name;
    char *pointer;      /* JSON pointer of the definition: "/tasks/<name>" */
    size_t first;       /* its instances are wf->inst[first .. first+count) */
    size_t count;
    char **params;      /* matrix parameter names, NULL-terminated (may be empty);
                           the order of values in instance ids */
    size_t *after;      /* tasks this one comes after (indices into wf->tasks) */
    size_t nafter;
};

/* `placement:` of a task: how its instances run on a site (core/plan.c
 * decides auto). */
enum hp_placement { HP_PLACE_AUTO = 0, HP_PLACE_DIRECT, HP_PLACE_PILOT };

struct hp_instance {
    char *id;           /* "name" or "name[p1=v1,p2=v2]" (stable, unique) */
    size_t task;        /* index into wf->tasks */
    char **argv;        /* NULL-terminated; NULL when shell is set */
    char *shell;        /* script for /bin/sh -c, only when the task says `shell:`;
                           parameter values appear in it as quoted shell words */
    struct hp_kv *env;
    size_t nenv;
    struct hp_kv *params; /* matrix values as strings, in parameter order */
    size_t nparams;
    struct hp_resources res;
    char *container;    /* image reference or NULL */
    char **inputs;      /* relative or absolute paths, NULL-terminated */
    char **outputs;     /* relative paths without "..", NULL-terminated */
    int retries;        /* extra attempts after a failure */
    int network;        /* 1 if the task needs outbound network */
    int placement;      /* enum hp_placement: `placement:` of the task */
    size_t *deps;       /* indices into wf->inst: per task of `after`, in that
                           order, ascending within each */
    size_t ndeps;
    /* function tasks (`function: NAME`): a call of an endpoint function
     * instead of a job; argv then only describes it ("hpcport call ...") */
    char *function;      /* NULL for command and shell tasks */
    char *endpoint_site; /* NULL: the run's site */
    char *endpoint_name; /* NULL: the site's only endpoint started from here */
    char *fn_input;      /* relative to the working directory, or absolute; NULL: empty */
    char *fn_output;     /* relative, without ".."; NULL: the output is dropped */
};

struct hp_workflow {
    struct hp_doc *doc;   /* the source document, kept for error positions */
    char *name;
    char *dir;            /* directory of the workflow file (tasks run there
                             on the local site unless workdir is set) */
    char *workdir;        /* absolute working directory for tasks */
    struct hp_task *tasks;
    size_t ntasks;
    struct hp_instance *inst;
    size_t ninst;
    char *site;           /* site whose overrides were applied, or NULL */
    char *description;    /* NULL if none */
    struct hp_workflow_priv *priv;  /* internal */
};

/* Load and validate a workflow file against the embedded schema, check the
 * task graph (unknown dependency, cycle named in full as "a -> b -> a").
 * Does not expand. Errors carry file:line:col and a JSON pointer. */
struct hp_workflow *hp_workflow_load(const char *path, struct hp_err *err);
/* As above from an already loaded document (ownership of doc passes in,
 * also on failure). */
struct hp_workflow *hp_workflow_from_doc(struct hp_doc *doc, struct hp_err *err);

/* Expand matrices into instances, applying defaults and the overrides for
 * site (NULL = none). Can be called once per workflow object. Errors:
 * unknown template parameter, bad value after substitution (e.g. an output
 * that becomes absolute or contains ".."), duplicate instance ids, an
 * expansion larger than max_instances (0 = 10,000,000). */
int hp_workflow_expand(struct hp_workflow *wf, const char *site, size_t max_instances,
                       struct hp_err *err);

/* Index of the task named name, or -1. */
long hp_workflow_task_index(const struct hp_workflow *wf, const char *name);
/* Find an instance by id (linear in the task's instances), NULL if none. */
struct hp_instance *hp_workflow_find(const struct hp_workflow *wf, const char *id);

void hp_workflow_free(struct hp_workflow *wf);

#endif
