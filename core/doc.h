/* doc.h - YAML (or JSON) documents as jansson trees with source positions.
 *
 * A document is loaded with libyaml's event parser into a json_t tree. While
 * reading, the position of every node is recorded in a map keyed by the
 * node's JSON pointer (RFC 6901), never by json_t * (jansson shares its
 * true/false/null singletons). Mapping keys have their own positions, so an
 * "unknown key" error points at the key, not at its value.
 *
 * The loader refuses, with file:line:col errors (code HP_EINPUT):
 *   - files over limits.max_bytes, invalid UTF-8 (libyaml's reader),
 *   - duplicate mapping keys, non-scalar keys,
 *   - nesting deeper than limits.max_depth,
 *   - more than limits.max_nodes nodes once aliases are expanded (billion
 *     laughs), unknown aliases,
 *   - a second document in the stream, an empty stream.
 *
 * Plain scalars are resolved with the YAML 1.2 core schema (null, true/false,
 * integers in decimal/0x/0o, floats incl. .inf/.nan); quoted scalars and the
 * !!str tag are strings. */
#ifndef HP_DOC_H
#define HP_DOC_H

#include <stddef.h>
#include <jansson.h>
#include "err.h"

struct hp_doc_limits {
    size_t max_bytes;   /* default 16 MiB */
    int max_depth;      /* default 64 */
    size_t max_nodes;   /* default 1,000,000 (after alias expansion) */
};
#define HP_DOC_LIMITS_DEFAULT { 16u << 20, 64, 1000000u }

struct hp_pos {
    int line, col;      /* 1-based; 0 if unknown */
};

struct hp_doc {
    char *file;         /* name used in messages */
    json_t *root;       /* owned */
    json_t *pos;        /* owned: object pointer -> packed position of the value */
    json_t *keypos;     /* owned: object pointer -> packed position of its key */
};

/* Load a file. limits may be NULL for the defaults. Returns NULL on error. */
struct hp_doc *hp_doc_load_file(const char *path,
                                const struct hp_doc_limits *limits,
                                struct hp_err *err);
/* Load from memory; name is used in messages. */
struct hp_doc *hp_doc_load_mem(const char *name, const char *data, size_t len,
                               const struct hp_doc_limits *limits,
                               struct hp_err *err);
void hp_doc_free(struct hp_doc *doc);

/* Position of the value at pointer, or of its nearest ancestor that has one.
 * With key != 0, the position of the mapping key naming that value (falls
 * back to the value position). Returns 0 if an exact match was found, 1 if an
 * ancestor's position was used, -1 if none. */
int hp_doc_pos(const struct hp_doc *doc, const char *pointer, int key,
               struct hp_pos *out);

/* Record an error positioned at pointer (at the key if key != 0). Always
 * returns -1. */
int hp_doc_err(const struct hp_doc *doc, struct hp_err *err, int code,
               const char *pointer, int key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Append the RFC 6901 escaping of a reference token (~ -> ~0, / -> ~1). */
struct hp_buf;
void hp_pointer_append(struct hp_buf *b, const char *token);
/* Append "/<index>". */
void hp_pointer_append_index(struct hp_buf *b, size_t index);

#endif
