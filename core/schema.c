/* schema.c - JSON Schema draft-07 validator: compiling schemas into nodes.
 *
 * A schema document is compiled once into a graph of nodes (one per schema
 * object; $ref edges point at the target node, so recursive schemas are
 * cycles). Regexes are compiled here too. Validation (schema-validate.c)
 * only walks the graph and allocates nothing unless it reports an error.
 *
 * $ref resolution follows draft-07: references are resolved against the base
 * URI set by the enclosing "$id"s, so "#/definitions/x" inside a subschema
 * with its own "$id" means that subschema's definitions. Only resources
 * inside the same document can be reached; remote references are refused
 * when the schema is compiled. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "schema-int.h"
#include "embedded.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

/* ---- URI references (RFC 3986, section 5.2) ---------------------------- */

struct uri {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_len, auth_len, path_len, query_len, frag_len;
    int has_scheme, has_auth, has_query, has_frag;
};

static void uri_parse(const char *u, struct uri *o)
{
    const char *p = u, *q;

    memset(o, 0, sizeof(*o));
    if (isalpha((unsigned char)*p)) {
        q = p;
        while (isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.')
            q++;
        if (*q == ':') {
            o->has_scheme = 1;
            o->scheme = p;
            o->scheme_len = (size_t)(q - p);
            p = q + 1;
        }
    }
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        o->has_auth = 1;
        o->auth = p;
        while (*p && *p != '/' && *p != '?' && *p != '#')
            p++;
        o->auth_len = (size_t)(p - o->auth);
    }
    o->path = p;
    while (*p && *p != '?' && *p != '#')
        p++;
    o->path_len = (size_t)(p - o->path);
    if (*p == '?') {
        o->has_query = 1;
        o->query = ++p;
        while (*p && *p != '#')
            p++;
        o->query_len = (size_t)(p - o->query);
    }
    if (*p == '#') {
        o->has_frag = 1;
        o->frag = p + 1;
        o->frag_len = strlen(p + 1);
    }
}

/* Drop the last segment (and its '/') from out. */
static void pop_segment(struct hp_buf *out)
{
    size_t n = out->len;
    while (n > 0 && out->buf[n - 1] != '/')
        n--;
    if (n > 0)
        n--;
    hp_buf_setlen(out, n);
}

static void remove_dot_segments(struct hp_buf *out, const char *path, size_t len)
{
    char *in = hp_xstrndup(path, len), *p = in;

    while (*p) {
        if (hp_starts_with(p, "../")) {
            p += 3;
        } else if (hp_starts_with(p, "./")) {
            p += 2;
        } else if (hp_starts_with(p, "/./")) {
            p += 2;
        } else if (!strcmp(p, "/.")) {
            p[1] = '/';
            p += 1;
        } else if (hp_starts_with(p, "/../")) {
            p += 3;
            pop_segment(out);
        } else if (!strcmp(p, "/..")) {
            p += 2;
            *p = '/';
            pop_segment(out);
        } else if (!strcmp(p, ".") || !strcmp(p, "..")) {
            p += strlen(p);
        } else {
            const char *s = p;
            if (*p == '/')
                p++;
            while (*p && *p != '/')
                p++;
            hp_buf_add(out, s, (size_t)(p - s));
        }
    }
    free(in);
}

/* Resolve reference ref against base; returns a new string. */
static char *uri_resolve(const char *base, const char *ref)
{
    struct uri b, r;
    struct hp_buf out = HP_BUF_INIT;
    const char *scheme, *auth, *query;
    size_t scheme_len, auth_len, query_len;
    int has_scheme, has_auth, has_query;

    uri_parse(base, &b);
    uri_parse(ref, &r);
    if (r.has_scheme) {
        has_scheme = 1, scheme = r.scheme, scheme_len = r.scheme_len;
        has_auth = r.has_auth, auth = r.auth, auth_len = r.auth_len;
        has_query = r.has_query, query = r.query, query_len = r.query_len;
    } else {
        has_scheme = b.has_scheme, scheme = b.scheme, scheme_len = b.scheme_len;
        if (r.has_auth) {
            has_auth = 1, auth = r.auth, auth_len = r.auth_len;
            has_query = r.has_query, query = r.query, query_len = r.query_len;
        } else {
            has_auth = b.has_auth, auth = b.auth, auth_len = b.auth_len;
            if (r.path_len == 0 && !r.has_query) {
                has_query = b.has_query, query = b.query, query_len = b.query_len;
            } else {
                has_query = r.has_query, query = r.query, query_len = r.query_len;
            }
        }
    }
    if (has_scheme) {
        hp_buf_add(&out, scheme, scheme_len);
        hp_buf_addch(&out, ':');
    }
    if (has_auth) {
        hp_buf_adds(&out, "//");
        hp_buf_add(&out, auth, auth_len);
    }
    if (r.has_scheme || r.has_auth || (r.path_len && r.path[0] == '/')) {
        remove_dot_segments(&out, r.path, r.path_len);
    } else if (r.path_len == 0) {
        hp_buf_add(&out, b.path, b.path_len);
    } else {
        /* merge: the base path up to its last '/', then the reference */
        struct hp_buf m = HP_BUF_INIT;
        if (b.has_auth && b.path_len == 0) {
            hp_buf_addch(&m, '/');
        } else {
            size_t n = b.path_len;
            while (n > 0 && b.path[n - 1] != '/')
                n--;
            hp_buf_add(&m, b.path, n);
        }
        hp_buf_add(&m, r.path, r.path_len);
        remove_dot_segments(&out, m.buf, m.len);
        hp_buf_release(&m);
    }
    if (has_query) {
        hp_buf_addch(&out, '?');
        hp_buf_add(&out, query, query_len);
    }
    if (r.has_frag) {
        hp_buf_addch(&out, '#');
        hp_buf_add(&out, r.frag, r.frag_len);
    }
    return hp_buf_detach(&out, NULL);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *percent_decode(const char *s, size_t len)
{
    struct hp_buf out = HP_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            hp_buf_addch(&out, hi * 16 + lo);
            i += 2;
        } else {
            hp_buf_addch(&out, s[i]);
        }
    }
    return hp_buf_detach(&out, NULL);
}

/* ---- compile context ----------------------------------------------------- */

struct resource {
    char *uri;          /* absolute part, or "abs#name" for a plain-name $id */
    json_t *json;
    char *base;         /* base URI in effect inside json */
};

struct memo_slot {
    const json_t *key;
    struct hs_node *node;
};

struct cc {
    struct hp_schema *s;
    struct hp_err *err;
    struct resource *res;
    size_t nres, ares;
    struct memo_slot *memo;
    size_t memo_n, memo_cap;    /* cap is a power of two */
    pcre2_compile_context *pcc;
};

/* Schema location for messages about the schema itself. */
struct spath {
    const struct spath *up;
    const char *key;            /* NULL: index */
    size_t idx;
};

static void append_token(struct hp_buf *b, const char *tok)
{
    hp_buf_addch(b, '/');
    for (; *tok; tok++) {
        if (*tok == '~')
            hp_buf_adds(b, "~0");
        else if (*tok == '/')
            hp_buf_adds(b, "~1");
        else
            hp_buf_addch(b, *tok);
    }
}

static void spath_append(struct hp_buf *b, const struct spath *p)
{
    if (!p)
        return;
    spath_append(b, p->up);
    if (p->key)
        append_token(b, p->key);
    else
        hp_buf_addf(b, "/%zu", p->idx);
}

static int cc_fail(struct cc *c, const struct spath *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cc_fail(struct cc *c, const struct spath *at, const char *fmt, ...)
{
    struct hp_buf ptr = HP_BUF_INIT, msg = HP_BUF_INIT;
    va_list ap;

    spath_append(&ptr, at);
    va_start(ap, fmt);
    hp_buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    /* err->pointer is for the document being validated: the schema location
     * goes into the message. */
    hp_err_set(c->err, HP_EINPUT, "invalid schema at '%s': %s", ptr.len ? ptr.buf : "#",
               msg.buf);
    hp_buf_release(&ptr);
    hp_buf_release(&msg);
    return -1;
}

static size_t ptr_hash(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= (uintptr_t)0xff51afd7ed558ccdULL;
    x ^= x >> 29;
    return (size_t)x;
}

static struct hs_node *memo_get(struct cc *c, const json_t *js)
{
    if (!c->memo_cap)
        return NULL;
    for (size_t i = ptr_hash(js) & (c->memo_cap - 1);; i = (i + 1) & (c->memo_cap - 1)) {
        if (!c->memo[i].key)
            return NULL;
        if (c->memo[i].key == js)
            return c->memo[i].node;
    }
}

static void memo_put(struct cc *c, const json_t *js, struct hs_node *n)
{
    if ((c->memo_n + 1) * 2 > c->memo_cap) {
        size_t ncap = c->memo_cap ? c->memo_cap * 2 : 64;
        struct memo_slot *nm = hp_xcalloc(ncap, sizeof(*nm));
        for (size_t i = 0; i < c->memo_cap; i++) {
            if (!c->memo[i].key)
                continue;
            size_t j = ptr_hash(c->memo[i].key) & (ncap - 1);
            while (nm[j].key)
                j = (j + 1) & (ncap - 1);
            nm[j] = c->memo[i];
        }
        free(c->memo);
        c->memo = nm;
        c->memo_cap = ncap;
    }
    size_t i = ptr_hash(js) & (c->memo_cap - 1);
    while (c->memo[i].key)
        i = (i + 1) & (c->memo_cap - 1);
    c->memo[i].key = js;
    c->memo[i].node = n;
    c->memo_n++;
    HP_ALLOC_GROW(c->s->nodes, c->s->nnodes + 1, c->s->anodes);
    c->s->nodes[c->s->nnodes++] = n;
}

/* ---- pass 1: find every "$id" ------------------------------------------- */

static void add_resource(struct cc *c, const char *uri, json_t *js, const char *base)
{
    for (size_t i = 0; i < c->nres; i++)
        if (!strcmp(c->res[i].uri, uri))
            return;         /* first one wins */
    HP_ALLOC_GROW(c->res, c->nres + 1, c->ares);
    c->res[c->nres].uri = hp_xstrdup(uri);
    c->res[c->nres].json = js;
    c->res[c->nres].base = hp_xstrdup(base);
    c->nres++;
}

/* Keywords whose value is a schema, an array of schemas, or a map of them. */
static const char *const kw_schema[] = {
    "additionalItems", "additionalProperties", "contains", "propertyNames",
    "not", "if", "then", "else", "items", NULL
};
static const char *const kw_array[] = { "allOf", "anyOf", "oneOf", "items", NULL };
static const char *const kw_map[] = {
    "properties", "patternProperties", "definitions", "dependencies", NULL
};

/* The base URI in effect inside js, given the base outside it. New string. */
static char *base_inside(const json_t *js, const char *base)
{
    json_t *id = json_object_get(js, "$id");
    if (json_is_object(js) && json_is_string(id) && !json_object_get(js, "$ref")) {
        char *abs = uri_resolve(base, json_string_value(id));
        char *hash = strchr(abs, '#');
        if (hash)
            *hash = '\0';
        return abs;
    }
    return hp_xstrdup(base);
}

static void scan_ids(struct cc *c, json_t *js, const char *base, int depth)
{
    json_t *id, *v;
    const char *k;
    char *nb;

    if (!json_is_object(js) || depth > 200)
        return;
    nb = base_inside(js, base);
    id = json_object_get(js, "$id");
    if (json_is_string(id) && !json_object_get(js, "$ref")) {
        char *abs = uri_resolve(base, json_string_value(id));
        char *hash = strchr(abs, '#');
        if (hash && hash[1] && hash[1] != '/')
            add_resource(c, abs, js, nb);      /* plain-name fragment: an anchor */
        else
            add_resource(c, nb, js, nb);
        free(abs);
    }
    for (size_t i = 0; kw_schema[i]; i++)
        scan_ids(c, json_object_get(js, kw_schema[i]), nb, depth + 1);
    for (size_t i = 0; kw_array[i]; i++) {
        json_t *a = json_object_get(js, kw_array[i]);
        size_t j;
        if (json_is_array(a))
            json_array_foreach(a, j, v)
                scan_ids(c, v, nb, depth + 1);
    }
    for (size_t i = 0; kw_map[i]; i++) {
        json_t *o = json_object_get(js, kw_map[i]);
        if (json_is_object(o))
            json_object_foreach(o, k, v)
                scan_ids(c, v, nb, depth + 1);
    }
    free(nb);
}

/* ---- pass 2: compile ------------------------------------------------------ */

static struct hs_node *compile(struct cc *c, json_t *js, const char *base,
                               const struct spath *at);

/* Follow a JSON pointer (already percent-decoded) from root. *base is
 * updated with the "$id"s crossed on the way. */
static json_t *eval_pointer(json_t *root, const char *ptr, char **base)
{
    json_t *cur = root;
    const char *p = ptr;

    if (*p && *p != '/')
        return NULL;
    while (*p) {
        struct hp_buf tok = HP_BUF_INIT;
        json_t *next = NULL;
        char *nb;

        p++;
        while (*p && *p != '/') {
            if (p[0] == '~' && p[1] == '0') {
                hp_buf_addch(&tok, '~');
                p += 2;
            } else if (p[0] == '~' && p[1] == '1') {
                hp_buf_addch(&tok, '/');
                p += 2;
            } else {
                hp_buf_addch(&tok, *p++);
            }
        }
        nb = base_inside(cur, *base);
        free(*base);
        *base = nb;
        if (json_is_object(cur)) {
            next = json_object_get(cur, tok.buf);
        } else if (json_is_array(cur)) {
            const char *d = tok.buf;
            size_t idx = 0;
            int okidx = tok.len > 0 && (tok.len == 1 || d[0] != '0');
            for (; okidx && *d; d++) {
                if (!isdigit((unsigned char)*d) || idx > SIZE_MAX / 10 - 10)
                    okidx = 0;
                else
                    idx = idx * 10 + (size_t)(*d - '0');
            }
            if (okidx)
                next = json_array_get(cur, idx);
        }
        hp_buf_release(&tok);
        if (!next)
            return NULL;
        cur = next;
    }
    return cur;
}

static struct hs_node *compile_ref(struct cc *c, const char *ref, const char *base,
                                   const struct spath *at)
{
    char *full = uri_resolve(base, ref);
    char *hash = strchr(full, '#');
    const char *frag = hash ? hash + 1 : "";
    struct resource *r = NULL;
    struct hs_node *n = NULL;
    json_t *target = NULL;
    char *tbase = NULL;

    if (*frag && *frag != '/') {
        for (size_t i = 0; i < c->nres; i++)
            if (!strcmp(c->res[i].uri, full))
                r = &c->res[i];
        if (r) {
            target = r->json;
            tbase = hp_xstrdup(r->base);
        }
    } else {
        if (hash)
            *hash = '\0';
        for (size_t i = 0; i < c->nres; i++)
            if (!strcmp(c->res[i].uri, full))
                r = &c->res[i];
        if (r) {
            char *dec = percent_decode(frag, strlen(frag));
            tbase = hp_xstrdup(r->base);
            target = eval_pointer(r->json, dec, &tbase);
            free(dec);
        }
    }
    if (!r) {
        if (hash)
            *hash = '\0';
        cc_fail(c, at, "cannot resolve $ref '%s': %s", ref,
                strstr(full, "://") || strchr(full, ':')
                    ? "remote references are not supported"
                    : "no such schema in this document");
    } else if (!target) {
        cc_fail(c, at, "$ref '%s' points to nothing in the schema", ref);
    } else {
        n = compile(c, target, tbase, at);
    }
    free(tbase);
    free(full);
    return n;
}

static int get_count(struct cc *c, json_t *js, const char *kw, long long *out,
                     const struct spath *at)
{
    json_t *v = json_object_get(js, kw);
    double d;

    if (!v)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && (d = json_real_value(v)) >= 0 && d < 9e18 && d == (long long)d) {
        *out = (long long)d;
        return 0;
    }
    struct spath sp = { at, kw, 0 };
    return cc_fail(c, &sp, "'%s' must be a non-negative integer", kw);
}

static int get_number(struct cc *c, json_t *js, const char *kw, json_t **out,
                      const struct spath *at)
{
    json_t *v = json_object_get(js, kw);
    if (!v)
        return 0;
    if (!json_is_number(v)) {
        struct spath sp = { at, kw, 0 };
        return cc_fail(c, &sp, "'%s' must be a number", kw);
    }
    *out = v;
    return 0;
}

/* The child schema under kw, or NULL (also when kw is absent). */
static int get_schema(struct cc *c, json_t *js, const char *kw, const char *base,
                      const struct spath *at, struct hs_node **out)
{
    json_t *v = json_object_get(js, kw);
    struct spath sp = { at, kw, 0 };
    if (!v)
        return 0;
    *out = compile(c, v, base, &sp);
    return *out ? 0 : -1;
}

static int get_schema_array(struct cc *c, json_t *js, const char *kw, const char *base,
                            const struct spath *at, struct hs_node ***out, size_t *n)
{
    json_t *v = json_object_get(js, kw), *e;
    struct spath sp = { at, kw, 0 };
    size_t i;

    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cc_fail(c, &sp, "'%s' must be a non-empty array of schemas", kw);
    *out = hp_xcalloc(json_array_size(v), sizeof(**out));
    *n = json_array_size(v);
    json_array_foreach(v, i, e) {
        struct spath ip = { &sp, NULL, i };
        if (!((*out)[i] = compile(c, e, base, &ip)))
            return -1;
    }
    return 0;
}

static pcre2_code *compile_regex(struct cc *c, const char *src, const struct spath *at)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re;

    if (!c->pcc) {
        c->pcc = pcre2_compile_context_create(NULL);
#ifdef PCRE2_EXTRA_ALT_BSUX
        /* ECMA-262 also has \u{...} (PCRE2 >= 10.38) */
        pcre2_set_compile_extra_options(c->pcc, PCRE2_EXTRA_ALT_BSUX);
#endif
    }
    /* ECMA-262 dialect: \uXXXX escapes and \x is two hex digits (ALT_BSUX);
     * '$' matches only at the very end (no multiline flag); \d and \w are
     * ASCII-only in both without PCRE2_UCP. */
    re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                       PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY, &ec, &off, c->pcc);
    if (!re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(ec, buf, sizeof(buf));
        cc_fail(c, at, "bad regular expression '%s' at offset %zu: %s", src, (size_t)off,
                (const char *)buf);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);     /* best effort */
    return re;
}

static int cmp_prop(const void *a, const void *b)
{
    return strcmp(((const struct hs_prop *)a)->name, ((const struct hs_prop *)b)->name);
}

static unsigned type_bit(const char *name)
{
    static const struct { const char *name; unsigned bit; } t[] = {
        {"null", HS_T_NULL}, {"boolean", HS_T_BOOL}, {"integer", HS_T_INT},
        {"number", HS_T_NUM}, {"string", HS_T_STR}, {"array", HS_T_ARR},
        {"object", HS_T_OBJ},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(name, t[i].name))
            return t[i].bit;
    return 0;
}

static int compile_type(struct cc *c, struct hs_node *n, json_t *v, const struct spath *at)
{
    struct spath sp = { at, "type", 0 };
    json_t *e;
    size_t i;

    if (json_is_string(v)) {
        if (!(n->types = type_bit(json_string_value(v))))
            return cc_fail(c, &sp, "unknown type '%s'", json_string_value(v));
        return 0;
    }
    if (!json_is_array(v))
        return cc_fail(c, &sp, "'type' must be a string or an array of strings");
    json_array_foreach(v, i, e) {
        unsigned bit = json_is_string(e) ? type_bit(json_string_value(e)) : 0;
        if (!bit)
            return cc_fail(c, &sp, "unknown type in 'type' array");
        n->types |= bit;
    }
    if (!n->types)                  /* "type": [] allows nothing */
        n->types = HS_T_NONE;
    return 0;
}

static int compile_object_kw(struct cc *c, struct hs_node *n, json_t *js, const char *base,
                             const struct spath *at)
{
    json_t *v, *e;
    const char *k;
    size_t i;

    if ((v = json_object_get(js, "properties"))) {
        struct spath sp = { at, "properties", 0 };
        if (!json_is_object(v))
            return cc_fail(c, &sp, "'properties' must be an object");
        n->nprops = json_object_size(v);
        n->props = hp_xcalloc(n->nprops + 1, sizeof(*n->props));
        n->prop_names = hp_xcalloc(n->nprops + 1, sizeof(*n->prop_names));
        i = 0;
        json_object_foreach(v, k, e) {
            struct spath kp = { &sp, k, 0 };
            n->props[i].name = k;
            n->prop_names[i] = k;
            if (!(n->props[i].node = compile(c, e, base, &kp)))
                return -1;
            i++;
        }
        qsort(n->props, n->nprops, sizeof(*n->props), cmp_prop);
    }
    if ((v = json_object_get(js, "patternProperties"))) {
        struct spath sp = { at, "patternProperties", 0 };
        if (!json_is_object(v))
            return cc_fail(c, &sp, "'patternProperties' must be an object");
        n->pats = hp_xcalloc(json_object_size(v) + 1, sizeof(*n->pats));
        json_object_foreach(v, k, e) {
            struct spath kp = { &sp, k, 0 };
            struct hs_pat *pp = &n->pats[n->npats++];
            pp->src = k;
            if (!(pp->re = compile_regex(c, k, &kp)) || !(pp->node = compile(c, e, base, &kp)))
                return -1;
        }
    }
    if ((v = json_object_get(js, "required"))) {
        struct spath sp = { at, "required", 0 };
        if (!json_is_array(v))
            return cc_fail(c, &sp, "'required' must be an array of strings");
        n->required = hp_xcalloc(json_array_size(v) + 1, sizeof(*n->required));
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                return cc_fail(c, &sp, "'required' must be an array of strings");
            n->required[n->nrequired++] = json_string_value(e);
        }
    }
    if ((v = json_object_get(js, "dependencies"))) {
        struct spath sp = { at, "dependencies", 0 };
        if (!json_is_object(v))
            return cc_fail(c, &sp, "'dependencies' must be an object");
        n->deps = hp_xcalloc(json_object_size(v) + 1, sizeof(*n->deps));
        json_object_foreach(v, k, e) {
            struct spath kp = { &sp, k, 0 };
            struct hs_dep *d = &n->deps[n->ndeps++];
            d->name = k;
            if (json_is_array(e)) {
                json_t *s;
                size_t j;
                d->req = hp_xcalloc(json_array_size(e) + 1, sizeof(*d->req));
                json_array_foreach(e, j, s) {
                    if (!json_is_string(s))
                        return cc_fail(c, &kp, "dependency must be an array of strings or a schema");
                    d->req[d->nreq++] = json_string_value(s);
                }
            } else if (!(d->node = compile(c, e, base, &kp))) {
                return -1;
            }
        }
    }
    if (get_schema(c, js, "additionalProperties", base, at, &n->addl_props) ||
        get_schema(c, js, "propertyNames", base, at, &n->prop_names_schema) ||
        get_count(c, js, "minProperties", &n->min_props, at) ||
        get_count(c, js, "maxProperties", &n->max_props, at))
        return -1;
    return 0;
}

static int compile_array_kw(struct cc *c, struct hs_node *n, json_t *js, const char *base,
                            const struct spath *at)
{
    json_t *v = json_object_get(js, "items"), *u;

    if (json_is_array(v)) {
        struct spath sp = { at, "items", 0 };
        json_t *e;
        size_t i;
        n->tuple_mode = 1;
        n->ntuple = json_array_size(v);
        n->tuple = hp_xcalloc(n->ntuple + 1, sizeof(*n->tuple));
        json_array_foreach(v, i, e) {
            struct spath ip = { &sp, NULL, i };
            if (!(n->tuple[i] = compile(c, e, base, &ip)))
                return -1;
        }
        if (get_schema(c, js, "additionalItems", base, at, &n->addl_items))
            return -1;
    } else if (get_schema(c, js, "items", base, at, &n->items)) {
        return -1;
    } else {
        /* additionalItems without a tuple "items" has no effect, but it is
         * still a schema: compile it so errors in it are found. */
        struct hs_node *unused = NULL;
        if (get_schema(c, js, "additionalItems", base, at, &unused))
            return -1;
    }
    if (get_schema(c, js, "contains", base, at, &n->contains) ||
        get_count(c, js, "minItems", &n->min_items, at) ||
        get_count(c, js, "maxItems", &n->max_items, at))
        return -1;
    if ((u = json_object_get(js, "uniqueItems"))) {
        struct spath sp = { at, "uniqueItems", 0 };
        if (!json_is_boolean(u))
            return cc_fail(c, &sp, "'uniqueItems' must be a boolean");
        n->unique = json_is_true(u);
    }
    return 0;
}

static int compile_scalar_kw(struct cc *c, struct hs_node *n, json_t *js,
                             const struct spath *at)
{
    json_t *v;

    if (get_number(c, js, "minimum", &n->minimum, at) ||
        get_number(c, js, "maximum", &n->maximum, at) ||
        get_number(c, js, "exclusiveMinimum", &n->xminimum, at) ||
        get_number(c, js, "exclusiveMaximum", &n->xmaximum, at) ||
        get_number(c, js, "multipleOf", &n->multiple_of, at) ||
        get_count(c, js, "minLength", &n->min_len, at) ||
        get_count(c, js, "maxLength", &n->max_len, at))
        return -1;
    if (n->multiple_of && (json_is_integer(n->multiple_of)
                               ? json_integer_value(n->multiple_of) <= 0
                               : json_real_value(n->multiple_of) <= 0)) {
        struct spath sp = { at, "multipleOf", 0 };
        return cc_fail(c, &sp, "'multipleOf' must be greater than 0");
    }
    if ((v = json_object_get(js, "pattern"))) {
        struct spath sp = { at, "pattern", 0 };
        if (!json_is_string(v))
            return cc_fail(c, &sp, "'pattern' must be a string");
        n->pattern_src = json_string_value(v);
        if (!(n->pattern = compile_regex(c, n->pattern_src, &sp)))
            return -1;
    }
    return 0;
}

static struct hs_node *compile(struct cc *c, json_t *js, const char *base,
                               const struct spath *at)
{
    struct hs_node *n;
    json_t *v;
    char *nb = NULL;
    int rc = -1;

    if ((n = memo_get(c, js)))
        return n;
    if (!json_is_object(js) && !json_is_boolean(js)) {
        cc_fail(c, at, "a schema must be an object or a boolean");
        return NULL;
    }
    n = hp_xcalloc(1, sizeof(*n));
    n->json = js;
    n->boolean = json_is_boolean(js) ? json_is_true(js) : -1;
    n->min_props = n->max_props = n->min_items = n->max_items = -1;
    n->min_len = n->max_len = -1;
    memo_put(c, js, n);
    if (n->boolean >= 0)
        return n;

    if ((v = json_object_get(js, "$ref"))) {
        struct spath sp = { at, "$ref", 0 };
        /* draft-07: the siblings of "$ref" are ignored */
        if (!json_is_string(v)) {
            cc_fail(c, &sp, "'$ref' must be a string");
            return NULL;
        }
        n->ref_str = json_string_value(v);
        return (n->ref = compile_ref(c, n->ref_str, base, &sp)) ? n : NULL;
    }
    nb = base_inside(js, base);
    if ((v = json_object_get(js, "type")) && compile_type(c, n, v, at))
        goto out;
    if ((v = json_object_get(js, "enum"))) {
        struct spath sp = { at, "enum", 0 };
        json_t *e;
        size_t i, ns = 0;
        if (!json_is_array(v)) {
            cc_fail(c, &sp, "'enum' must be an array");
            goto out;
        }
        n->enum_ = v;
        n->enum_strs = hp_xcalloc(json_array_size(v) + 1, sizeof(*n->enum_strs));
        json_array_foreach(v, i, e)
            if (json_is_string(e))
                n->enum_strs[ns++] = json_string_value(e);
    }
    if ((v = json_object_get(js, "const"))) {
        n->const_ = v;
    }
    if (compile_object_kw(c, n, js, nb, at) || compile_array_kw(c, n, js, nb, at) ||
        compile_scalar_kw(c, n, js, at) ||
        get_schema_array(c, js, "allOf", nb, at, &n->all_of, &n->nall_of) ||
        get_schema_array(c, js, "anyOf", nb, at, &n->any_of, &n->nany_of) ||
        get_schema_array(c, js, "oneOf", nb, at, &n->one_of, &n->none_of) ||
        get_schema(c, js, "not", nb, at, &n->not_) ||
        get_schema(c, js, "if", nb, at, &n->if_) ||
        get_schema(c, js, "then", nb, at, &n->then_) ||
        get_schema(c, js, "else", nb, at, &n->else_))
        goto out;
    if ((v = json_object_get(js, "definitions"))) {
        struct spath sp = { at, "definitions", 0 };
        const char *k;
        json_t *e;
        if (!json_is_object(v)) {
            cc_fail(c, &sp, "'definitions' must be an object");
            goto out;
        }
        json_object_foreach(v, k, e) {
            struct spath kp = { &sp, k, 0 };
            if (!compile(c, e, nb, &kp))
                goto out;
        }
    }
    rc = 0;
out:
    free(nb);
    return rc ? NULL : n;
}

static void node_free(struct hs_node *n)
{
    if (!n)
        return;
    free(n->props);
    free(n->prop_names);
    for (size_t i = 0; i < n->npats; i++)
        pcre2_code_free(n->pats[i].re);
    free(n->pats);
    free(n->required);
    for (size_t i = 0; i < n->ndeps; i++)
        free(n->deps[i].req);
    free(n->deps);
    free(n->tuple);
    pcre2_code_free(n->pattern);
    free(n->enum_strs);
    free(n->all_of);
    free(n->any_of);
    free(n->one_of);
    free(n);
}

struct hp_schema *hp_schema_new(json_t *schema, struct hp_err *err)
{
    struct hp_schema *s;
    struct cc c;
    char *rootbase;

    if (!schema) {
        hp_err_set(err, HP_EINTERNAL, "no schema given");
        return NULL;
    }
    s = hp_xcalloc(1, sizeof(*s));
    s->json = json_incref(schema);
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.err = err;
    rootbase = base_inside(schema, "");
    add_resource(&c, rootbase, schema, rootbase);
    scan_ids(&c, schema, "", 0);
    s->root = compile(&c, schema, "", NULL);
    free(rootbase);
    for (size_t i = 0; i < c.nres; i++) {
        free(c.res[i].uri);
        free(c.res[i].base);
    }
    free(c.res);
    free(c.memo);
    pcre2_compile_context_free(c.pcc);
    if (!s->root) {
        hp_schema_free(s);
        return NULL;
    }
    return s;
}

void hp_schema_free(struct hp_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        node_free(s->nodes[i]);
    free(s->nodes);
    json_decref(s->json);
    free(s);
}

/* ---- builtin schemas ------------------------------------------------------ */

static struct hp_schema **builtin_cache;

static const struct hp_embedded_file *builtin_find(const char *name, size_t *idx)
{
    for (size_t i = 0; name && hp_embedded_schemas[i].name; i++) {
        if (!strcmp(hp_embedded_schemas[i].name, name)) {
            *idx = i;
            return &hp_embedded_schemas[i];
        }
    }
    return NULL;
}

const char *hp_schema_builtin_text(const char *name)
{
    size_t idx;
    const struct hp_embedded_file *f = builtin_find(name, &idx);
    return f ? f->text : NULL;
}

const struct hp_schema *hp_schema_builtin(const char *name, struct hp_err *err)
{
    size_t idx, count = 0;
    const struct hp_embedded_file *f = builtin_find(name, &idx);
    json_error_t jerr;
    json_t *js;

    if (!f) {
        hp_err_set(err, HP_EINTERNAL, "no builtin schema named '%s'", name ? name : "");
        return NULL;
    }
    if (!builtin_cache) {
        while (hp_embedded_schemas[count].name)
            count++;
        builtin_cache = hp_xcalloc(count, sizeof(*builtin_cache));
    }
    if (builtin_cache[idx])
        return builtin_cache[idx];
    js = json_loadb(f->text, f->len ? f->len : strlen(f->text), 0, &jerr);
    if (!js) {
        hp_err_set(err, HP_EINTERNAL, "builtin schema '%s' is not valid JSON: %d:%d: %s",
                   name, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    builtin_cache[idx] = hp_schema_new(js, err);
    json_decref(js);
    if (!builtin_cache[idx])
        hp_err_prefix(err, "builtin schema '%s'", name);
    return builtin_cache[idx];
}
