/* schema-int.h - the compiled form of a schema, shared by schema.c (compiler)
 * and schema-validate.c (validator). Private to the validator. */
#ifndef HP_SCHEMA_INT_H
#define HP_SCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <jansson.h>
#include "schema.h"

enum {
    HS_T_NULL = 1 << 0,
    HS_T_BOOL = 1 << 1,
    HS_T_INT = 1 << 2,      /* "integer": also reals with an integral value */
    HS_T_NUM = 1 << 3,      /* "number": any number */
    HS_T_STR = 1 << 4,
    HS_T_ARR = 1 << 5,
    HS_T_OBJ = 1 << 6,
    HS_T_NONE = 1 << 7,     /* "type": [] (nothing matches) */
};

struct hs_node;

struct hs_prop {
    const char *name;       /* borrowed from the schema document */
    struct hs_node *node;
};

struct hs_pat {
    const char *src;
    pcre2_code *re;
    struct hs_node *node;
};

struct hs_dep {
    const char *name;
    const char **req;       /* array form: required names */
    size_t nreq;
    struct hs_node *node;   /* schema form */
};

/* One schema object (or boolean). Pointers to json_t and strings borrow from
 * the schema document, which struct hp_schema holds a reference to. Absent
 * keywords are NULL / 0; absent counts are -1. */
struct hs_node {
    json_t *json;
    int boolean;            /* -1: an object schema; 0: false; 1: true */
    struct hs_node *ref;    /* "$ref": every other keyword is ignored */
    const char *ref_str;

    unsigned types;         /* HS_T_* mask; 0 when "type" is absent */
    json_t *enum_;
    const char **enum_strs; /* NULL-terminated: the string members of enum */
    json_t *const_;

    struct hs_prop *props;  /* sorted by name */
    size_t nprops;
    const char **prop_names;    /* NULL-terminated, schema order */
    struct hs_pat *pats;
    size_t npats;
    struct hs_node *addl_props;
    struct hs_node *prop_names_schema;
    const char **required;
    size_t nrequired;
    struct hs_dep *deps;
    size_t ndeps;
    long long min_props, max_props;

    int tuple_mode;         /* "items" is an array */
    struct hs_node **tuple;
    size_t ntuple;
    struct hs_node *items;
    struct hs_node *addl_items;
    struct hs_node *contains;
    long long min_items, max_items;
    int unique;

    json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple_of;
    long long min_len, max_len;
    pcre2_code *pattern;
    const char *pattern_src;

    struct hs_node **all_of, **any_of, **one_of;
    size_t nall_of, nany_of, none_of;
    struct hs_node *not_, *if_, *then_, *else_;
};

struct hp_schema {
    json_t *json;
    struct hs_node *root;
    struct hs_node **nodes;     /* every node, for freeing */
    size_t nnodes, anodes;
};

#endif
