/* site-int.h - private to sites/site*.c: the resolution context.
 *
 * While a profile is resolved, every node of the tree being built records the
 * layer that last set it (ctx.src: JSON pointer -> layer index). Errors found
 * after merging are positioned through it in the file that set the value, or
 * blamed on the --set flag; public origin strings are made from it at the
 * end. Pointers are the same in the merged tree and in each layer's file,
 * because mappings merge key by key and lists are replaced whole. */
#ifndef HP_SITE_INT_H
#define HP_SITE_INT_H

#include <stddef.h>
#include <jansson.h>
#include "buf.h"
#include "doc.h"
#include "err.h"
#include "site.h"

enum layer_kind { LAYER_FILE, LAYER_SET, LAYER_DETECTED };

struct layer {
    enum layer_kind kind;
    struct hp_doc *doc;         /* LAYER_FILE: the file (owned) */
    const char *set;            /* LAYER_SET: the flag's argument (borrowed) */
};

#define SITE_MAX_EXTENDS 16

struct hp_catalog;
struct site_ctx {
    const struct hp_site_opts *opts;
    struct hp_catalog *cat;     /* the pinned catalog, opened on first use */
    int cat_tried;
    int cat_used;               /* a catalog profile is one of the layers */
    char *config_dir;           /* owned */
    const char *top_path;       /* hp_site_load_file: this file stands in for
                                   the user and workflow layers of top_name */
    const char *top_name;
    struct layer *layers;
    size_t nlayers, alloc;
    json_t *src;                /* pointer -> layer index */
    const char *stack[SITE_MAX_EXTENDS + 1];
    size_t depth;
    struct hp_err *err;
};

/* Error about the value at pointer of the resolved tree, positioned in the
 * file that set it (or its nearest ancestor), or blamed on the --set flag
 * that set it (code becomes HP_EUSAGE). Returns -1. */
int site_err(struct site_ctx *c, int code, const char *pointer, int at_key,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Origin text of the value at pointer ("file:line:col", "--set", ...), into
 * out (len bytes); "" if unknown. */
void site_where(struct site_ctx *c, const char *pointer, char *out, size_t len);
/* Record layer as the origin of v at ptr and of everything below it. */
void site_src_tree(struct site_ctx *c, struct hp_buf *ptr, const json_t *v, size_t layer);
/* Forget the origins of ptr's descendants (ptr itself is kept). */
void site_src_drop_below(struct site_ctx *c, const char *ptr);
/* Merge src over dst (both objects): mappings key by key, the rest replaces.
 * ptr holds dst's pointer and is restored on return. */
void site_merge(struct site_ctx *c, json_t *dst, const json_t *src, struct hp_buf *ptr,
                size_t layer);
size_t site_add_layer(struct site_ctx *c, enum layer_kind kind, struct hp_doc *doc,
                      const char *set);

/* site-set.c: apply one --set flag to the resolved tree. */
int site_apply_set(struct site_ctx *c, json_t *root, const char *arg);

/* site-view.c: check the resolved tree and fill the typed view of s (whose
 * name and root are set). Local sites get "auto" values detected. */
int site_fill_view(struct site_ctx *c, struct hp_site *s);

#endif
