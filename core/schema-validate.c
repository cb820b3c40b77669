/* schema-validate.c - validating a jansson tree against a compiled schema.
 *
 * Each check runs in one of two modes: with an error list (collect every
 * error) or without (stop at the first failure; used for anyOf, oneOf, not,
 * if and contains, where only the verdict matters). Instance locations are a
 * chain of stack frames turned into a JSON pointer only when an error is
 * reported, so a valid document costs no allocation (except one regex match
 * block per call, and one string per key when "propertyNames" is used). */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "schema-int.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define MAX_DEPTH 1000      /* schema recursion that does not consume input */

struct ipath {
    const struct ipath *up;
    const char *key;        /* NULL: idx is an array index */
    size_t idx;
};

struct vctx {
    pcre2_match_data *md;
    int depth;
    const char *internal;   /* first internal error, if any */
};

static int v_node(struct vctx *c, const struct hs_node *n, const json_t *x,
                  const struct ipath *p, struct hp_verrors *e);

/* ---- helpers ------------------------------------------------------------- */

static void ipath_append(struct hp_buf *b, const struct ipath *p)
{
    if (!p)
        return;
    ipath_append(b, p->up);
    if (!p->key) {
        hp_buf_addf(b, "/%zu", p->idx);
        return;
    }
    hp_buf_addch(b, '/');
    for (const char *s = p->key; *s; s++) {
        if (*s == '~')
            hp_buf_adds(b, "~0");
        else if (*s == '/')
            hp_buf_adds(b, "~1");
        else
            hp_buf_addch(b, *s);
    }
}

static void add_err(struct hp_verrors *e, const struct ipath *p, int at_key,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_err(struct hp_verrors *e, const struct ipath *p, int at_key,
                    const char *fmt, ...)
{
    struct hp_buf ptr = HP_BUF_INIT, msg = HP_BUF_INIT;
    va_list ap;

    ipath_append(&ptr, p);
    va_start(ap, fmt);
    hp_buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    HP_ALLOC_GROW(e->v, e->n + 1, e->alloc);
    e->v[e->n].pointer = hp_buf_detach(&ptr, NULL);
    e->v[e->n].message = hp_buf_detach(&msg, NULL);
    e->v[e->n].at_key = at_key;
    e->n++;
}

static void move_errs(struct hp_verrors *to, struct hp_verrors *from)
{
    for (size_t i = 0; i < from->n; i++) {
        HP_ALLOC_GROW(to->v, to->n + 1, to->alloc);
        to->v[to->n++] = from->v[i];
    }
    free(from->v);
    from->v = NULL;
    from->n = from->alloc = 0;
}

static const struct hs_node *resolve(const struct hs_node *n)
{
    for (int i = 0; n && n->ref; i++)
        n = i < 64 ? n->ref : NULL;
    return n;
}

static unsigned kind_of(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_OBJECT: return HS_T_OBJ;
    case JSON_ARRAY: return HS_T_ARR;
    case JSON_STRING: return HS_T_STR;
    case JSON_INTEGER: return HS_T_INT;
    case JSON_REAL: return HS_T_NUM;
    case JSON_TRUE:
    case JSON_FALSE: return HS_T_BOOL;
    default: return HS_T_NULL;
    }
}

static const char *kind_name(const json_t *x)
{
    switch (kind_of(x)) {
    case HS_T_OBJ: return "object";
    case HS_T_ARR: return "array";
    case HS_T_STR: return "string";
    case HS_T_INT: return "integer";
    case HS_T_NUM: return "number";
    case HS_T_BOOL: return "boolean";
    default: return "null";
    }
}

static int type_ok(unsigned mask, const json_t *x)
{
    unsigned k = kind_of(x);
    if (k == HS_T_INT)
        return (mask & (HS_T_INT | HS_T_NUM)) != 0;
    if (k == HS_T_NUM) {
        double d = json_real_value(x);
        return (mask & HS_T_NUM) || ((mask & HS_T_INT) && d == floor(d));
    }
    return (mask & k) != 0;
}

/* "string", "string or integer", "null, string or array". */
static void types_str(struct hp_buf *b, unsigned mask)
{
    static const struct { unsigned bit; const char *name; } t[] = {
        {HS_T_NULL, "null"}, {HS_T_BOOL, "boolean"}, {HS_T_INT, "integer"},
        {HS_T_NUM, "number"}, {HS_T_STR, "string"}, {HS_T_ARR, "array"},
        {HS_T_OBJ, "object"},
    };
    size_t n = 0, total = 0;

    if ((mask & HS_T_NUM) && (mask & HS_T_INT))
        mask &= ~(unsigned)HS_T_INT;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        total += (mask & t[i].bit) != 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (!(mask & t[i].bit))
            continue;
        if (n)
            hp_buf_adds(b, n + 1 == total ? " or " : ", ");
        hp_buf_adds(b, t[i].name);
        n++;
    }
}

/* -1, 0, 1 for i <=> d, exactly. */
static int cmp_int_real(long long i, double d)
{
    double fl;
    long long t;

    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    fl = floor(d);
    t = (long long)fl;
    if (i != t)
        return i < t ? -1 : 1;
    return fl == d ? 0 : -1;
}

static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        long long x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

/* Deep equality where numbers compare by value (1 == 1.0). */
static int json_eq(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !json_eq(v, w))
                return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

static void fmt_num(const json_t *x, char *buf, size_t len)
{
    if (json_is_integer(x)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(x));
        return;
    }
    double d = json_real_value(x);
    snprintf(buf, len, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, len, "%.17g", d);
}

/* A value for messages: strings bare (or quoted), the rest as compact JSON. */
static void add_value(struct hp_buf *b, const json_t *x, int quote)
{
    if (json_is_string(x)) {
        if (quote)
            hp_buf_addch(b, '\'');
        hp_buf_add(b, json_string_value(x), json_string_length(x));
        if (quote)
            hp_buf_addch(b, '\'');
        return;
    }
    if (json_is_number(x)) {
        char num[64];
        fmt_num(x, num, sizeof(num));
        hp_buf_adds(b, num);
        return;
    }
    char *s = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
    hp_buf_adds(b, s ? s : "?");
    free(s);
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        cp += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cp;
}

static const char *plural(long long n)
{
    return n == 1 ? "" : "s";
}

static int internal(struct vctx *c, const char *what)
{
    if (!c->internal)
        c->internal = what;
    return -1;
}

/* 1 if re matches s, 0 if not, -1 on a matcher error. */
static int re_match(struct vctx *c, const pcre2_code *re, const char *s, size_t len)
{
    int rc;

    if (!c->md && !(c->md = pcre2_match_data_create(1, NULL)))
        return internal(c, "out of memory");
    /* jansson strings are valid UTF-8 */
    rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK, c->md, NULL);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    return internal(c, "regular expression matching failed (too complex?)");
}

/* Record a failure: in verdict mode (no error list) return at once. */
#define FAIL(...)                                                            \
    do {                                                                     \
        ok = 0;                                                              \
        if (!e)                                                              \
            return 0;                                                        \
        add_err(e, __VA_ARGS__);                                             \
    } while (0)

/* Run a sub-check returning 1/0/-1. */
#define CHECK(expr)                                                          \
    do {                                                                     \
        int r_ = (expr);                                                     \
        if (r_ < 0)                                                          \
            return -1;                                                       \
        if (!r_) {                                                           \
            ok = 0;                                                          \
            if (!e)                                                          \
                return 0;                                                    \
        }                                                                    \
    } while (0)

/* ---- enum and const -------------------------------------------------------- */

static void enum_message(struct hp_verrors *e, const struct ipath *p, const json_t *list,
                         const char *const *strs, const json_t *x)
{
    struct hp_buf m = HP_BUF_INIT;
    const char *hint = json_is_string(x) ? hp_suggest(json_string_value(x), strs) : NULL;

    hp_buf_adds(&m, "value must be one of: ");
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (i)
            hp_buf_adds(&m, ", ");
        add_value(&m, json_array_get(list, i), 0);
    }
    if (hint)
        hp_buf_addf(&m, " (did you mean '%s'?)", hint);
    add_err(e, p, 0, "%s", m.buf);
    hp_buf_release(&m);
}

static void const_message(struct hp_verrors *e, const struct ipath *p, const json_t *want)
{
    struct hp_buf m = HP_BUF_INIT;
    hp_buf_adds(&m, "value must be ");
    add_value(&m, want, 1);
    add_err(e, p, 0, "%s", m.buf);
    hp_buf_release(&m);
}

/* ---- objects --------------------------------------------------------------- */

static int cmp_key(const void *key, const void *prop)
{
    return strcmp(key, ((const struct hs_prop *)prop)->name);
}

/* Validate the value of key k; a false schema there means the key itself is
 * not allowed, which is best reported at the key. */
static int v_member(struct vctx *c, const struct hs_node *n, const json_t *v,
                    const struct ipath *kp, struct hp_verrors *e)
{
    const struct hs_node *r = resolve(n);
    if (r && r->boolean == 0) {
        if (e)
            add_err(e, kp, 1, "key '%s' is not allowed", kp->key);
        return 0;
    }
    return v_node(c, n, v, kp, e);
}

static int v_property_name(struct vctx *c, const struct hs_node *n, const char *k,
                           const struct ipath *kp, struct hp_verrors *e)
{
    struct hp_verrors tmp = {0};
    json_t *ks = json_string(k);
    int r;

    if (!ks)
        return internal(c, "out of memory");
    r = v_node(c, n, ks, kp, e ? &tmp : NULL);
    json_decref(ks);
    for (size_t i = 0; i < tmp.n; i++) {
        char *m = hp_xasprintf("invalid key '%s': %s", k, tmp.v[i].message);
        free(tmp.v[i].message);
        tmp.v[i].message = m;
        tmp.v[i].at_key = 1;
    }
    if (e)
        move_errs(e, &tmp);
    return r;
}

static int v_object(struct vctx *c, const struct hs_node *n, const json_t *x,
                    const struct ipath *p, struct hp_verrors *e)
{
    size_t size = json_object_size(x);
    const char *k;
    json_t *v;
    int ok = 1;

    if (n->min_props >= 0 && (long long)size < n->min_props)
        FAIL(p, 0, "expected at least %lld key%s", n->min_props, plural(n->min_props));
    if (n->max_props >= 0 && (long long)size > n->max_props)
        FAIL(p, 0, "expected at most %lld key%s", n->max_props, plural(n->max_props));
    for (size_t i = 0; i < n->nrequired; i++)
        if (!json_object_get(x, n->required[i]))
            FAIL(p, 0, "missing required key '%s'", n->required[i]);

    if (n->nprops || n->npats || n->addl_props || n->prop_names_schema) {
        json_object_foreach((json_t *)x, k, v) {
            struct ipath kp = { p, k, 0 };
            const struct hs_prop *pr = n->nprops
                ? bsearch(k, n->props, n->nprops, sizeof(*n->props), cmp_key) : NULL;
            int matched = pr != NULL;

            if (pr)
                CHECK(v_member(c, pr->node, v, &kp, e));
            for (size_t i = 0; i < n->npats; i++) {
                int m = re_match(c, n->pats[i].re, k, strlen(k));
                if (m < 0)
                    return -1;
                if (m) {
                    matched = 1;
                    CHECK(v_member(c, n->pats[i].node, v, &kp, e));
                }
            }
            if (!matched && n->addl_props) {
                const struct hs_node *a = resolve(n->addl_props);
                if (a && a->boolean == 0) {
                    const char *hint = hp_suggest(k, n->prop_names);
                    if (hint)
                        FAIL(&kp, 1, "unknown key '%s' (did you mean '%s'?)", k, hint);
                    else
                        FAIL(&kp, 1, "unknown key '%s'", k);
                } else {
                    CHECK(v_node(c, n->addl_props, v, &kp, e));
                }
            }
            if (n->prop_names_schema)
                CHECK(v_property_name(c, n->prop_names_schema, k, &kp, e));
        }
    }

    for (size_t i = 0; i < n->ndeps; i++) {
        const struct hs_dep *d = &n->deps[i];
        struct ipath kp = { p, d->name, 0 };
        if (!json_object_get(x, d->name))
            continue;
        for (size_t j = 0; j < d->nreq; j++)
            if (!json_object_get(x, d->req[j]))
                FAIL(&kp, 1, "key '%s' requires key '%s'", d->name, d->req[j]);
        if (d->node) {
            const struct hs_node *r = resolve(d->node);
            if (r && r->boolean == 0)
                FAIL(&kp, 1, "key '%s' is not allowed", d->name);
            else
                CHECK(v_node(c, d->node, x, p, e));
        }
    }
    return ok;
}

/* ---- arrays ---------------------------------------------------------------- */

static int v_array(struct vctx *c, const struct hs_node *n, const json_t *x,
                   const struct ipath *p, struct hp_verrors *e)
{
    size_t size = json_array_size(x);
    int ok = 1;

    if (n->min_items >= 0 && (long long)size < n->min_items)
        FAIL(p, 0, "expected at least %lld item%s", n->min_items, plural(n->min_items));
    if (n->max_items >= 0 && (long long)size > n->max_items)
        FAIL(p, 0, "expected at most %lld item%s", n->max_items, plural(n->max_items));

    const struct hs_node *rest = n->tuple_mode ? n->addl_items : n->items;
    size_t fixed = n->tuple_mode ? n->ntuple : 0;
    for (size_t i = 0; i < size; i++) {
        struct ipath ip = { p, NULL, i };
        const json_t *item = json_array_get(x, i);
        if (i < fixed) {
            CHECK(v_node(c, n->tuple[i], item, &ip, e));
            continue;
        }
        if (!rest)
            break;
        const struct hs_node *r = resolve(rest);
        if (r && r->boolean == 0) {
            if (fixed)
                FAIL(p, 0, "expected at most %zu item%s", fixed, plural((long long)fixed));
            else
                FAIL(p, 0, "expected an empty array");
            break;
        }
        CHECK(v_node(c, rest, item, &ip, e));
    }

    if (n->contains) {
        int found = 0;
        for (size_t i = 0; i < size && !found; i++) {
            struct ipath ip = { p, NULL, i };
            int r = v_node(c, n->contains, json_array_get(x, i), &ip, NULL);
            if (r < 0)
                return -1;
            found = r;
        }
        if (!found)
            FAIL(p, 0, "expected at least one item matching the 'contains' schema");
    }

    if (n->unique) {
        for (size_t i = 1; i < size; i++) {
            for (size_t j = 0; j < i; j++) {
                if (json_eq(json_array_get(x, i), json_array_get(x, j))) {
                    struct ipath ip = { p, NULL, i };
                    FAIL(&ip, 0, "duplicate item (same as item %zu); items must be unique", j);
                    break;
                }
            }
        }
    }
    return ok;
}

/* ---- scalars ----------------------------------------------------------------- */

static int v_string(struct vctx *c, const struct hs_node *n, const json_t *x,
                    const struct ipath *p, struct hp_verrors *e)
{
    const char *s = json_string_value(x);
    size_t len = json_string_length(x);
    int ok = 1;

    if (n->min_len >= 0 || n->max_len >= 0) {
        long long cp = (long long)utf8_len(s, len);
        if (n->min_len >= 0 && cp < n->min_len)
            FAIL(p, 0, "expected at least %lld character%s", n->min_len, plural(n->min_len));
        if (n->max_len >= 0 && cp > n->max_len)
            FAIL(p, 0, "expected at most %lld character%s", n->max_len, plural(n->max_len));
    }
    if (n->pattern) {
        int m = re_match(c, n->pattern, s, len);
        if (m < 0)
            return -1;
        if (!m)
            FAIL(p, 0, "does not match pattern '%s'", n->pattern_src);
    }
    return ok;
}

static int is_multiple(const json_t *x, const json_t *m)
{
    if (json_is_integer(x) && json_is_integer(m))
        return json_integer_value(x) % json_integer_value(m) == 0;
    double xd = json_number_value(x), md = json_number_value(m);
    double q = xd / md, r;
    if (!isfinite(q))
        return 0;
    r = nearbyint(q);
    /* x and m are decimal fractions rounded to binary: allow the quotient a
     * few ulps of slack, so 0.0075 is a multiple of 0.0001. */
    return fabs(q - r) <= 8 * DBL_EPSILON * fabs(q);
}

static int v_number(const struct hs_node *n, const json_t *x, const struct ipath *p,
                    struct hp_verrors *e)
{
    char num[64];
    int ok = 1;

    if (n->minimum && num_cmp(x, n->minimum) < 0) {
        fmt_num(n->minimum, num, sizeof(num));
        FAIL(p, 0, "must be >= %s", num);
    }
    if (n->maximum && num_cmp(x, n->maximum) > 0) {
        fmt_num(n->maximum, num, sizeof(num));
        FAIL(p, 0, "must be <= %s", num);
    }
    if (n->xminimum && num_cmp(x, n->xminimum) <= 0) {
        fmt_num(n->xminimum, num, sizeof(num));
        FAIL(p, 0, "must be > %s", num);
    }
    if (n->xmaximum && num_cmp(x, n->xmaximum) >= 0) {
        fmt_num(n->xmaximum, num, sizeof(num));
        FAIL(p, 0, "must be < %s", num);
    }
    if (n->multiple_of && !is_multiple(x, n->multiple_of)) {
        fmt_num(n->multiple_of, num, sizeof(num));
        FAIL(p, 0, "must be a multiple of %s", num);
    }
    return ok;
}

/* ---- anyOf / oneOf: choosing what to report -------------------------------- */

static unsigned value_kind_mask(const json_t *v)
{
    unsigned k = kind_of(v);
    return k == HS_T_INT ? HS_T_INT : k;
}

/* The types a branch can accept, as far as can be told without running it;
 * 0 when unknown. */
static unsigned branch_types(const struct hs_node *b)
{
    unsigned t = 0;

    b = resolve(b);
    if (!b || b->boolean == 1)
        return 0;
    if (b->boolean == 0)
        return HS_T_NONE;
    if (b->types)
        return b->types;
    if (b->const_)
        return value_kind_mask(b->const_);
    if (b->enum_ && json_array_size(b->enum_)) {
        for (size_t i = 0; i < json_array_size(b->enum_); i++)
            t |= value_kind_mask(json_array_get(b->enum_, i));
        return t;
    }
    return 0;
}

static const json_t *const_of(const struct hs_node *pn)
{
    pn = resolve(pn);
    if (!pn || pn->boolean >= 0)
        return NULL;
    if (pn->const_)
        return pn->const_;
    if (pn->enum_ && json_array_size(pn->enum_) == 1)
        return json_array_get(pn->enum_, 0);
    return NULL;
}

/* Discriminating properties ("kind": {"const": "slurm"}): -1 if the branch
 * has none, 1 if all of them hold for x, 0 if one does not. */
static int disc_const(const struct hs_node *b, const json_t *x)
{
    int has = 0;

    b = resolve(b);
    if (!b || b->boolean >= 0)
        return -1;
    for (size_t i = 0; i < b->nprops; i++) {
        const json_t *want = const_of(b->props[i].node), *v;
        if (!want)
            continue;
        has = 1;
        v = json_object_get(x, b->props[i].name);
        if (!v || !json_eq(v, want))
            return 0;
    }
    return has ? 1 : -1;
}

static int disc_required(const struct hs_node *b, const json_t *x)
{
    b = resolve(b);
    if (!b || b->boolean >= 0 || !b->nrequired)
        return 0;
    for (size_t i = 0; i < b->nrequired; i++)
        if (!json_object_get(x, b->required[i]))
            return 0;
    return 1;
}

/* All branches discriminate on the same property but none matched: report
 * the allowed values of that property. Returns 1 if reported. */
static int report_tag(const struct hs_node *const *cand, size_t ncand, const json_t *x,
                      const struct ipath *p, struct hp_verrors *e)
{
    const struct hs_node *b0 = resolve(cand[0]);
    for (size_t i = 0; i < b0->nprops; i++) {
        const char *name = b0->props[i].name;
        json_t *list = json_array();
        const char **strs = hp_xcalloc(ncand + 1, sizeof(*strs));
        size_t j, ns = 0;

        for (j = 0; j < ncand; j++) {
            const struct hs_node *b = resolve(cand[j]);
            const struct hs_prop *pr = bsearch(name, b->props, b->nprops, sizeof(*b->props),
                                               cmp_key);
            const json_t *want = pr ? const_of(pr->node) : NULL;
            if (!want)
                break;
            json_array_append(list, (json_t *)want);
            if (json_is_string(want))
                strs[ns++] = json_string_value(want);
        }
        if (j == ncand) {
            const json_t *v = json_object_get(x, name);
            struct ipath kp = { p, name, 0 };
            if (!v)
                add_err(e, p, 0, "missing required key '%s'", name);
            else
                enum_message(e, &kp, list, strs, v);
        }
        json_decref(list);
        free(strs);
        if (j == ncand)
            return 1;
    }
    return 0;
}

/* None of the branches matched x: report the errors of the one branch that
 * was evidently meant, or one message for the whole. */
static int report_alts(struct vctx *c, struct hs_node *const *br, size_t nbr,
                       const json_t *x, const struct ipath *p, struct hp_verrors *e)
{
    const struct hs_node **cand = hp_xcalloc(nbr, sizeof(*cand));
    const struct hs_node *pick = NULL;
    size_t ncand = 0;
    unsigned all_types = 0;
    int r = 0;

    for (size_t i = 0; i < nbr; i++) {
        unsigned t = branch_types(br[i]);
        if (t != HS_T_NONE)
            all_types |= t;
        if (!t || type_ok(t, x))
            cand[ncand++] = br[i];
    }
    if (ncand == 0) {
        struct hp_buf m = HP_BUF_INIT;
        types_str(&m, all_types);
        if (m.len)
            add_err(e, p, 0, "expected %s, got %s", m.buf, kind_name(x));
        else
            add_err(e, p, 0, "no value is allowed here");
        hp_buf_release(&m);
        goto out;
    }
    if (ncand == 1) {
        pick = cand[0];
    } else if (json_is_object(x)) {
        size_t nhas = 0, nhold = 0, nreq = 0;
        const struct hs_node *hold = NULL, *req = NULL;
        for (size_t i = 0; i < ncand; i++) {
            int d = disc_const(cand[i], x);
            nhas += d >= 0;
            if (d == 1)
                nhold++, hold = cand[i];
            if (disc_required(cand[i], x))
                nreq++, req = cand[i];
        }
        if (nhold == 1)
            pick = hold;
        else if (nhold == 0 && nhas == ncand && report_tag(cand, ncand, x, p, e))
            goto out;
        else if (nreq == 1)
            pick = req;
    }
    if (pick) {
        r = v_node(c, pick, x, p, e);
        if (r > 0) {                /* cannot happen: every branch failed */
            add_err(e, p, 0, "value does not match any of the allowed alternatives");
            r = 0;
        }
        goto out;
    }
    add_err(e, p, 0, "value does not match any of the allowed alternatives");
out:
    free(cand);
    return r;
}

static int v_alts(struct vctx *c, struct hs_node *const *br, size_t nbr, int one,
                  const json_t *x, const struct ipath *p, struct hp_verrors *e)
{
    size_t matched = 0, first = 0, second = 0;

    for (size_t i = 0; i < nbr; i++) {
        int r = v_node(c, br[i], x, p, NULL);
        if (r < 0)
            return -1;
        if (!r)
            continue;
        if (!one)
            return 1;
        if (matched == 0)
            first = i;
        else if (matched == 1)
            second = i;
        if (++matched > 1 && !e)
            return 0;
    }
    if (one && matched == 1)
        return 1;
    if (!e)
        return 0;
    if (matched > 1) {
        add_err(e, p, 0, "value matches more than one of the allowed alternatives "
                "(%zu and %zu); it must match exactly one", first, second);
        return 0;
    }
    return report_alts(c, br, nbr, x, p, e);
}

/* ---- one node ----------------------------------------------------------------- */

static int v_node_inner(struct vctx *c, const struct hs_node *n, const json_t *x,
                        const struct ipath *p, struct hp_verrors *e)
{
    int ok = 1;

    n = resolve(n);
    if (!n)
        return internal(c, "circular $ref");
    if (n->boolean == 1)
        return 1;
    if (n->boolean == 0)
        FAIL(p, 0, "no value is allowed here");
    if (n->types && !type_ok(n->types, x)) {
        struct hp_buf m = HP_BUF_INIT;
        if (!e)
            return 0;
        types_str(&m, n->types);
        if (m.len)
            add_err(e, p, 0, "expected %s, got %s", m.buf, kind_name(x));
        else
            add_err(e, p, 0, "no value is allowed here");
        hp_buf_release(&m);
        return 0;       /* the other keywords would only repeat this */
    }
    if (n->enum_) {
        size_t i, len = json_array_size(n->enum_);
        for (i = 0; i < len; i++)
            if (json_eq(x, json_array_get(n->enum_, i)))
                break;
        if (i == len) {
            ok = 0;
            if (!e)
                return 0;
            enum_message(e, p, n->enum_, n->enum_strs, x);
        }
    }
    if (n->const_ && !json_eq(x, n->const_)) {
        ok = 0;
        if (!e)
            return 0;
        const_message(e, p, n->const_);
    }
    switch (kind_of(x)) {
    case HS_T_OBJ:
        CHECK(v_object(c, n, x, p, e));
        break;
    case HS_T_ARR:
        CHECK(v_array(c, n, x, p, e));
        break;
    case HS_T_STR:
        CHECK(v_string(c, n, x, p, e));
        break;
    case HS_T_INT:
    case HS_T_NUM:
        CHECK(v_number(n, x, p, e));
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n->nall_of; i++)
        CHECK(v_node(c, n->all_of[i], x, p, e));
    if (n->nany_of)
        CHECK(v_alts(c, n->any_of, n->nany_of, 0, x, p, e));
    if (n->none_of)
        CHECK(v_alts(c, n->one_of, n->none_of, 1, x, p, e));
    if (n->not_) {
        int r = v_node(c, n->not_, x, p, NULL);
        if (r < 0)
            return -1;
        if (r)
            FAIL(p, 0, "value must not match the schema in 'not'");
    }
    if (n->if_) {
        int r = v_node(c, n->if_, x, p, NULL);
        if (r < 0)
            return -1;
        if (r && n->then_)
            CHECK(v_node(c, n->then_, x, p, e));
        else if (!r && n->else_)
            CHECK(v_node(c, n->else_, x, p, e));
    }
    return ok;
}

static int v_node(struct vctx *c, const struct hs_node *n, const json_t *x,
                  const struct ipath *p, struct hp_verrors *e)
{
    int r;
    size_t before = e ? e->n : 0;

    if (c->depth >= MAX_DEPTH)
        return internal(c, "schema recursion too deep (circular $ref?)");
    c->depth++;
    r = v_node_inner(c, n, x, p, e);
    c->depth--;
    if (r == 0 && e && e->n == before)     /* never fail silently */
        add_err(e, p, 0, "value does not match the schema");
    return r;
}

/* ---- entry points --------------------------------------------------------------- */

static size_t ptr_depth(const char *ptr)
{
    size_t d = 0;
    for (; *ptr; ptr++)
        d += *ptr == '/';
    return d;
}

struct order {
    size_t depth, idx;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth > y->depth ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void verror_release(struct hp_verror *v)
{
    free(v->pointer);
    free(v->message);
}

/* Deepest first (stable), duplicates dropped, appended to out. */
static void sort_into(struct hp_verrors *tmp, struct hp_verrors *out)
{
    struct order *o = hp_xcalloc(tmp->n ? tmp->n : 1, sizeof(*o));

    for (size_t i = 0; i < tmp->n; i++) {
        o[i].depth = ptr_depth(tmp->v[i].pointer);
        o[i].idx = i;
    }
    qsort(o, tmp->n, sizeof(*o), cmp_order);
    size_t start = out->n;
    for (size_t i = 0; i < tmp->n; i++) {
        struct hp_verror *v = &tmp->v[o[i].idx];
        int dup = 0;
        for (size_t j = start; j < out->n && !dup; j++)
            dup = out->v[j].at_key == v->at_key && !strcmp(out->v[j].pointer, v->pointer) &&
                  !strcmp(out->v[j].message, v->message);
        if (dup) {
            verror_release(v);
            continue;
        }
        HP_ALLOC_GROW(out->v, out->n + 1, out->alloc);
        out->v[out->n++] = *v;
    }
    free(o);
    free(tmp->v);
    tmp->v = NULL;
    tmp->n = tmp->alloc = 0;
}

int hp_schema_validate(const struct hp_schema *s, const json_t *instance,
                       struct hp_verrors *out)
{
    struct vctx c;
    struct hp_verrors tmp = {0};
    int r;

    if (!s || !instance)
        return -1;
    memset(&c, 0, sizeof(c));
    r = v_node(&c, s->root, instance, NULL, out ? &tmp : NULL);
    pcre2_match_data_free(c.md);
    if (c.internal)
        r = -1;
    if (out) {
        if (r < 0) {
            hp_verrors_release(&tmp);
            add_err(out, NULL, 0, "internal error: %s",
                    c.internal ? c.internal : "validation failed");
        } else {
            sort_into(&tmp, out);
        }
    }
    return r < 0 ? -1 : r ? 0 : 1;
}

void hp_verrors_release(struct hp_verrors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        verror_release(&e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = e->alloc = 0;
}
