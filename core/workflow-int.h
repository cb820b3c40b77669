/* workflow-int.h - internals shared by workflow.c, workflow-template.c,
 * workflow-expand.c and matrix.c. Not for use outside core/workflow*.c. */
#ifndef HP_WORKFLOW_INT_H
#define HP_WORKFLOW_INT_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "workflow.h"

/* ---- arena: everything a workflow owns is carved from it ---- */
struct wf_chunk;
struct wf_arena {
    struct wf_chunk *head;
};
void *wf_alloc(struct wf_arena *a, size_t n);          /* 8-aligned, zeroed */
char *wf_alloc_chars(struct wf_arena *a, size_t n);    /* unaligned, not zeroed */
char *wf_strndup(struct wf_arena *a, const char *s, size_t n);
char *wf_strdup(struct wf_arena *a, const char *s);
void wf_arena_release(struct wf_arena *a);

/* ---- byte-string -> size_t map (open addressing; keys are copied) ---- */
struct wf_slot {
    uint64_t hash;
    size_t off;         /* key offset in keys.buf */
    size_t len;
    size_t val;
    int used;
};
struct wf_map {
    struct wf_slot *slot;
    size_t cap, n;
    struct hp_buf keys;
};
void wf_map_init(struct wf_map *m, size_t hint);
void wf_map_release(struct wf_map *m);
/* Insert key -> val. Returns 1 if inserted, 0 if the key was there (its value
 * is stored in *old when old != NULL; the map is unchanged). */
int wf_map_put(struct wf_map *m, const void *key, size_t len, size_t val, size_t *old);
/* 1 and *val if found, else 0. */
int wf_map_get(const struct wf_map *m, const void *key, size_t len, size_t *val);

/* Arena strings: base + "/" + escaped token, base + "/" + index. */
const char *wf_ptr(struct wf_arena *a, const char *base, const char *token);
const char *wf_ptr_index(struct wf_arena *a, const char *base, size_t index);

/* ---- scalars ---- */
/* The string form of a scalar as YAML shows it: integers without a decimal
 * point, reals in the shortest form that reads back (integral ones with
 * ".0"), strings raw, booleans true/false. Arena string. */
char *wf_render_scalar(struct wf_arena *a, const json_t *v);

/* ---- matrix ---- */
struct wf_param {
    const char *name;
    const char *ptr;        /* pointer of its values (list or range) */
    size_t nvals;           /* product: distinct values; zip: rows */
    const char **val;       /* rendered values */
    size_t *len;
    const char **idv;       /* escaped for instance ids (may alias val[i]) */
    const char **shq;       /* quoted as shell words, built on demand */
    size_t *canon;          /* zip params: first row with an equal value;
                               NULL for product params (values are distinct) */
    struct wf_map *map;     /* rendered value -> canonical index, or NULL */
    int zip;
};

struct wf_excl {
    size_t n;
    size_t *param;          /* parameter index */
    size_t *canon;          /* canonical value index */
};

struct wf_matrix {
    const char *ptr;        /* "/tasks/<t>/matrix", or NULL without a matrix */
    size_t nparams;         /* product parameters first, then zip parameters */
    size_t nprod;
    size_t zrows;           /* rows of the zip group (0 = no zip) */
    struct wf_param *p;
    struct wf_excl *excl;
    size_t nexcl;
    const char *excl_ptr;
};

struct hp_workflow_priv;
/* Parse and check the matrix of task t (def is the task's JSON object). */
int wf_matrix_parse(struct hp_workflow *wf, size_t t, const json_t *def,
                    struct wf_matrix *m, struct hp_err *err);
/* Canonical value index of param p at value index i. */
static inline size_t wf_canon(const struct wf_param *p, size_t i)
{
    return p->canon ? p->canon[i] : i;
}
/* Index of the value of param p whose rendered form is s, canonical, or
 * (size_t)-1. Builds a lookup map on first use. */
size_t wf_param_lookup(struct wf_param *p, const char *s, size_t len);
void wf_matrix_release(struct wf_matrix *m);

/* ---- templates ---- */
enum { WF_SEG_LIT, WF_SEG_PARAM, WF_SEG_INDEX };
struct wf_seg {
    int kind;
    const char *s;          /* literal text (WF_SEG_LIT) */
    size_t len;
    size_t param;           /* WF_SEG_PARAM */
};
struct wf_tmpl {
    const char *ptr;        /* JSON pointer of the source scalar */
    const char *konst;      /* the result when it does not vary, else NULL */
    struct wf_seg *seg;
    size_t nseg;
    int shell;              /* substitutions become quoted shell words */
};

/* Compile src for task t. {task} is resolved here; parameters must be among
 * the task's matrix parameters. */
int wf_tmpl_compile(struct hp_workflow *wf, size_t t, const char *src, const char *ptr,
                    int shell, struct wf_tmpl *out, struct hp_err *err);

/* What a rendering needs about one instance. */
struct wf_ictx {
    const struct wf_matrix *m;
    const uint32_t *vi;     /* value index per parameter */
    const char *index;      /* decimal instance index */
    size_t index_len;
};
const char *wf_tmpl_render(struct wf_arena *a, const struct wf_tmpl *t,
                           const struct wf_ictx *ic);

/* ---- effective task configuration (defaults + sites + task) ---- */
struct wf_envt {
    const char *key;
    struct wf_tmpl t;
};
struct wf_cfg {
    struct hp_resources res;
    int retries, network;
    int placement;          /* enum hp_placement */
    int has_container;
    struct wf_tmpl container;
    struct wf_envt *env;
    size_t nenv;
    struct wf_tmpl *argv;   /* argc items, or NULL with shell */
    size_t argc;
    int has_shell;
    struct wf_tmpl shell;
    struct wf_tmpl *in, *out;
    size_t nin, nout;
    /* function tasks: the endpoint function instead of argv/shell */
    const char *function;       /* NULL for command and shell tasks */
    const char *ep_site, *ep_name;  /* endpoint: {site, name}; NULL = the run's site,
                                       its only endpoint */
    int has_fn_in, has_fn_out;
    struct wf_tmpl fn_in, fn_out;
};
int wf_task_config(struct hp_workflow *wf, size_t t, const char *site, struct wf_cfg *cfg,
                   struct hp_err *err);

/* ---- per-task load-time data ---- */
struct wf_taskdef {
    const json_t *def;
    struct wf_matrix m;
    const char **after_ptr; /* pointer of each entry of task->after */
};

struct hp_workflow_priv {
    struct wf_arena arena;
    struct wf_taskdef *td;
    size_t inst_alloc;
    int expanded;
};

/* Check an output path; returns NULL if fine, else why not (static text). */
const char *wf_output_problem(const char *path);

#define WF_MAX_VALUES 1000000u   /* values of one parameter */
#define WF_MAX_DEPS 20000000u    /* dependency edges in one workflow */

#endif
