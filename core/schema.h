/* schema.h - a JSON Schema (draft-07) validator over jansson trees.
 *
 * Supported keywords: type, enum, const, properties, required,
 * additionalProperties, patternProperties, propertyNames, dependencies,
 * minProperties/maxProperties, items (schema and tuple), additionalItems,
 * contains, minItems/maxItems, uniqueItems, minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum, multipleOf, minLength/maxLength
 * (counted in code points), pattern (ECMA-262 subset via PCRE2), allOf,
 * anyOf, oneOf, not, if/then/else, $ref to "#", "#/definitions/..." and
 * other JSON pointers within the same schema, boolean schemas, definitions,
 * format (only checked for: none; annotations only, as draft-07 allows).
 *
 * Errors carry the instance pointer and a message. For an unknown key
 * (additionalProperties: false) the message suggests the closest allowed
 * name ("did you mean 'cores'?") and at_key is set so callers point at the
 * key. When several errors arise, hp_schema_validate() reports the most
 * relevant one first (deepest instance location first), like
 * python-jsonschema's best_match. When no oneOf/anyOf branch matches, the
 * errors of the one branch the instance evidently meant are reported: the
 * only branch whose type fits, else (objects) the only one whose "const"
 * discriminator properties or "required" keys hold; otherwise one message
 * ("expected string or object, got integer", "value does not match any of
 * the allowed alternatives"). $id-based references within the document are
 * resolved; remote references make hp_schema_new() fail. */
#ifndef HP_SCHEMA_H
#define HP_SCHEMA_H

#include <stddef.h>
#include <jansson.h>
#include "err.h"

struct hp_schema;

struct hp_verror {
    char *pointer;      /* instance location, "" for the root */
    char *message;      /* e.g. "expected integer, got string" */
    int at_key;         /* error concerns the key at pointer, not its value */
};

struct hp_verrors {
    struct hp_verror *v;
    size_t n, alloc;
};

/* Compile a schema. The schema is borrowed and json_incref()ed. Returns NULL
 * with err filled if the schema itself is malformed (bad regex, bad $ref). */
struct hp_schema *hp_schema_new(json_t *schema, struct hp_err *err);
void hp_schema_free(struct hp_schema *s);

/* Validate instance. Returns 0 if valid, 1 if invalid (errors appended to out
 * when out != NULL, best first), -1 on internal error. */
int hp_schema_validate(const struct hp_schema *s, const json_t *instance,
                       struct hp_verrors *out);
void hp_verrors_release(struct hp_verrors *e);

/* The schemas embedded in the binary at build time (schemas/<name>.schema.json). name is
 * "workflow" or "site" (or "endpoint" later). Returns a borrowed compiled
 * schema, compiled on first use, or NULL if there is no such schema. */
const struct hp_schema *hp_schema_builtin(const char *name, struct hp_err *err);
/* The raw text of a builtin schema (borrowed), or NULL. */
const char *hp_schema_builtin_text(const char *name);

/* Validate a loaded document against a builtin schema and turn the best
 * error into a positioned hp_err (file:line:col, JSON pointer; an unknown
 * key points at the key). Returns 0 if valid, -1 otherwise. */
struct hp_doc;
int hp_doc_validate(const struct hp_doc *doc, const char *schema_name, struct hp_err *err);

#endif
