/* matrix.c - a task's parameter matrix: values rendered once, checked once.
 *
 * Values are kept in their rendered string form (what templates and ids
 * show), so "1" from a range and 1 from a list are the same value, and
 * exclusions and dependency matching compare what the user sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workflow-int.h"
#include "doc.h"
#include "util.h"
#include "banned.h"

static int is_id_special(unsigned char c)
{
    return c == '\\' || c == ',' || c == '=' || c == '[' || c == ']' || c < 0x20 || c == 0x7f;
}

/* The value as it appears in an instance id: \ , = [ ] escaped with a
 * backslash, control characters as \xHH, so ids stay unambiguous and on one
 * line. */
static const char *id_escape(struct wf_arena *a, const char *s, size_t len)
{
    size_t extra = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_id_special(c))
            extra += (c < 0x20 || c == 0x7f) ? 3 : 1;
    }
    if (!extra)
        return s;
    char *o = wf_alloc_chars(a, len + extra + 1), *q = o;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(q, 5, "\\x%02x", c);
            q += 4;
        } else {
            if (is_id_special(c))
                *q++ = '\\';
            *q++ = (char)c;
        }
    }
    *q = '\0';
    return o;
}

static void param_alloc(struct wf_arena *a, struct wf_param *p, size_t n)
{
    p->nvals = n;
    p->val = wf_alloc(a, n * sizeof(*p->val));
    p->len = wf_alloc(a, n * sizeof(*p->len));
    p->idv = wf_alloc(a, n * sizeof(*p->idv));
}

static void param_set(struct wf_arena *a, struct wf_param *p, size_t i, const char *s,
                      size_t len)
{
    p->val[i] = s;
    p->len[i] = len;
    p->idv[i] = id_escape(a, s, len);
}

/* Parse a list of scalars or a {from, to, step} range into p. */
static int parse_values(struct hp_workflow *wf, const char *task, struct wf_param *p,
                        const json_t *v, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (!n)
            return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                              "parameter '%s' of task '%s' has no values", p->name, task);
        if (n > WF_MAX_VALUES)
            return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                              "parameter '%s' of task '%s' has %zu values; the limit is %u",
                              p->name, task, n, WF_MAX_VALUES);
        param_alloc(a, p, n);
        for (size_t i = 0; i < n; i++) {
            const json_t *x = json_array_get(v, i);
            if (!json_is_string(x) && !json_is_number(x) && !json_is_boolean(x))
                return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr_index(a, p->ptr, i), 0,
                                  "values of parameter '%s' must be strings, numbers or "
                                  "booleans", p->name);
            const char *s = wf_render_scalar(a, x);
            param_set(a, p, i, s, strlen(s));
        }
        return 0;
    }
    const json_t *jf = json_object_get(v, "from"), *jt = json_object_get(v, "to"),
                 *js = json_object_get(v, "step");
    if (!json_is_integer(jf) || !json_is_integer(jt) || (js && !json_is_integer(js)))
        return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                          "parameter '%s' of task '%s' needs a list of values or "
                          "{from: N, to: M, step: S} with integers", p->name, task);
    long long from = json_integer_value(jf), to = json_integer_value(jt);
    long long step = js ? json_integer_value(js) : 1;
    if (step <= 0)
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, p->ptr, "step"), 0,
                          "step of parameter '%s' must be positive", p->name);
    if (to < from)
        return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                          "empty range for parameter '%s' of task '%s': 'to' (%lld) is "
                          "less than 'from' (%lld)", p->name, task, to, from);
    unsigned long long n = ((unsigned long long)to - (unsigned long long)from) /
                           (unsigned long long)step + 1;
    if (n > WF_MAX_VALUES)
        return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                          "parameter '%s' of task '%s' has %llu values; the limit is %u",
                          p->name, task, n, WF_MAX_VALUES);
    param_alloc(a, p, (size_t)n);
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        long long x = (long long)((unsigned long long)from + i * (unsigned long long)step);
        int len = snprintf(buf, sizeof(buf), "%lld", x);
        param_set(a, p, i, wf_strndup(a, buf, (size_t)len), (size_t)len);
    }
    return 0;
}

/* Build the value map of p; for zip params also the canonical indices. For
 * product params a repeated value is an error (it would repeat instances). */
static int build_map(struct hp_workflow *wf, const char *task, struct wf_param *p,
                     int check_dups, struct hp_err *err)
{
    if (p->map)
        return 0;
    p->map = hp_xmalloc(sizeof(*p->map));
    wf_map_init(p->map, p->nvals);
    if (p->zip)
        p->canon = wf_alloc(&wf->priv->arena, p->nvals * sizeof(*p->canon));
    for (size_t i = 0; i < p->nvals; i++) {
        size_t first;
        if (wf_map_put(p->map, p->val[i], p->len[i], i, &first)) {
            if (p->canon)
                p->canon[i] = i;
            continue;
        }
        if (p->canon) {
            p->canon[i] = first;
        } else if (check_dups) {
            return hp_doc_err(wf->doc, err, HP_EINPUT,
                              wf_ptr_index(&wf->priv->arena, p->ptr, i), 0,
                              "value '%s' appears twice in parameter '%s' of task '%s'",
                              p->val[i], p->name, task);
        }
    }
    return 0;
}

size_t wf_param_lookup(struct wf_param *p, const char *s, size_t len)
{
    size_t i;
    if (!p->map)   /* wf_matrix_parse() builds every map */
        return (size_t)-1;
    if (!wf_map_get(p->map, s, len, &i))
        return (size_t)-1;
    return wf_canon(p, i);
}

static int check_name(struct hp_workflow *wf, const char *task, const char *name,
                      const char *ptr, struct hp_err *err)
{
    if (!strcmp(name, "task") || !strcmp(name, "index"))
        return hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 1,
                          "parameter name '%s' in task '%s' is reserved for the builtin "
                          "template {%s}; choose another name", name, task, name);
    if (!strcmp(name, "zip") || !strcmp(name, "exclude"))
        return hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 1,
                          "parameter name '%s' in task '%s' is reserved", name, task);
    return 0;
}

static int check_zip_rows(struct hp_workflow *wf, const char *task, struct wf_matrix *m,
                          struct hp_err *err)
{
    struct wf_map rows;
    struct hp_buf key = HP_BUF_INIT;
    int ret = 0;
    wf_map_init(&rows, m->zrows);
    for (size_t r = 0; r < m->zrows && !ret; r++) {
        hp_buf_reset(&key);
        for (size_t k = m->nprod; k < m->nparams; k++) {
            size_t c = wf_canon(&m->p[k], r);
            hp_buf_add(&key, &c, sizeof(c));
        }
        size_t first;
        if (wf_map_put(&rows, key.buf, key.len, r, &first))
            continue;
        struct hp_buf vals = HP_BUF_INIT;
        for (size_t k = m->nprod; k < m->nparams; k++)
            hp_buf_addf(&vals, "%s%s=%s", k > m->nprod ? ", " : "", m->p[k].name,
                        m->p[k].val[r]);
        ret = hp_doc_err(wf->doc, err, HP_EINPUT,
                         wf_ptr_index(&wf->priv->arena, m->p[m->nprod].ptr, r), 0,
                         "zip rows %zu and %zu of task '%s' are the same (%s)", first + 1,
                         r + 1, task, vals.buf);
        hp_buf_release(&vals);
    }
    hp_buf_release(&key);
    wf_map_release(&rows);
    return ret;
}

static int parse_excludes(struct hp_workflow *wf, const char *task, struct wf_matrix *m,
                          const json_t *ex, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    size_t n = json_array_size(ex);
    const char **names = hp_xcalloc(m->nparams + 1, sizeof(*names));
    int ret = -1;
    for (size_t k = 0; k < m->nparams; k++)
        names[k] = m->p[k].name;
    m->excl = wf_alloc(a, n * sizeof(*m->excl));
    m->nexcl = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(ex, i);
        const char *eptr = wf_ptr_index(a, m->excl_ptr, i);
        struct wf_excl *x = &m->excl[i];
        if (!json_is_object(e) || !json_object_size(e)) {
            hp_doc_err(wf->doc, err, HP_EINPUT, eptr, 0,
                       "exclude entries of task '%s' must be non-empty mappings "
                       "parameter: value", task);
            goto out;
        }
        x->n = json_object_size(e);
        x->param = wf_alloc(a, x->n * sizeof(*x->param));
        x->canon = wf_alloc(a, x->n * sizeof(*x->canon));
        const char *key;
        const json_t *val;
        size_t j = 0;
        json_object_foreach((json_t *)e, key, val) {
            const char *kptr = wf_ptr(a, eptr, key);
            size_t k;
            for (k = 0; k < m->nparams; k++)
                if (!strcmp(m->p[k].name, key))
                    break;
            if (k == m->nparams) {
                const char *s = hp_suggest(key, names);
                if (s)
                    hp_doc_err(wf->doc, err, HP_EINPUT, kptr, 1,
                               "exclude names unknown parameter '%s' of task '%s' (did you "
                               "mean '%s'?)", key, task, s);
                else
                    hp_doc_err(wf->doc, err, HP_EINPUT, kptr, 1,
                               "exclude names unknown parameter '%s' of task '%s'", key, task);
                goto out;
            }
            if (!json_is_string(val) && !json_is_number(val) && !json_is_boolean(val)) {
                hp_doc_err(wf->doc, err, HP_EINPUT, kptr, 0,
                           "exclude values must be strings, numbers or booleans");
                goto out;
            }
            const char *s = wf_render_scalar(a, val);
            size_t c = wf_param_lookup(&m->p[k], s, strlen(s));
            if (c == (size_t)-1) {
                hp_doc_err(wf->doc, err, HP_EINPUT, kptr, 0,
                           "exclude value '%s' is not a value of parameter '%s' in task '%s'",
                           s, key, task);
                goto out;
            }
            x->param[j] = k;
            x->canon[j] = c;
            j++;
        }
    }
    ret = 0;
out:
    free(names);
    return ret;
}

int wf_matrix_parse(struct hp_workflow *wf, size_t t, const json_t *def,
                    struct wf_matrix *m, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    const char *task = wf->tasks[t].name;
    const json_t *mj = json_object_get(def, "matrix");
    const json_t *zip, *ex, *v;
    const char *key;

    memset(m, 0, sizeof(*m));
    if (!mj)
        return 0;
    m->ptr = wf_ptr(a, wf->tasks[t].pointer, "matrix");
    if (!json_is_object(mj))
        return hp_doc_err(wf->doc, err, HP_EINPUT, m->ptr, 0,
                          "matrix of task '%s' must be a mapping", task);
    zip = json_object_get(mj, "zip");
    ex = json_object_get(mj, "exclude");
    if (zip && !json_is_object(zip))
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, m->ptr, "zip"), 0,
                          "zip of task '%s' must map parameter names to lists", task);
    if (ex && !json_is_array(ex))
        return hp_doc_err(wf->doc, err, HP_EINPUT, wf_ptr(a, m->ptr, "exclude"), 0,
                          "exclude of task '%s' must be a list", task);

    size_t nz = zip ? json_object_size(zip) : 0;
    m->nprod = json_object_size(mj) - (zip ? 1 : 0) - (ex ? 1 : 0);
    m->nparams = m->nprod + nz;
    m->p = wf_alloc(a, (m->nparams + 1) * sizeof(*m->p));

    size_t k = 0;
    json_object_foreach((json_t *)mj, key, v) {
        if (!strcmp(key, "zip") || !strcmp(key, "exclude"))
            continue;
        struct wf_param *p = &m->p[k++];
        p->name = key;
        p->ptr = wf_ptr(a, m->ptr, key);
        if (check_name(wf, task, key, p->ptr, err) < 0 ||
            parse_values(wf, task, p, v, err) < 0 || build_map(wf, task, p, 1, err) < 0)
            return -1;
    }
    if (zip) {
        const char *zptr = wf_ptr(a, m->ptr, "zip");
        const char *first = NULL;
        json_object_foreach((json_t *)zip, key, v) {
            struct wf_param *p = &m->p[k++];
            p->name = key;
            p->zip = 1;
            p->ptr = wf_ptr(a, zptr, key);
            if (check_name(wf, task, key, p->ptr, err) < 0)
                return -1;
            if (json_object_get(mj, key))
                return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 1,
                                  "parameter '%s' of task '%s' is both in the matrix and in "
                                  "its zip", key, task);
            if (parse_values(wf, task, p, v, err) < 0 || build_map(wf, task, p, 0, err) < 0)
                return -1;
            if (!first) {
                first = key;
                m->zrows = p->nvals;
            } else if (p->nvals != m->zrows) {
                return hp_doc_err(wf->doc, err, HP_EINPUT, p->ptr, 0,
                                  "zip lists of task '%s' differ in length: '%s' has %zu "
                                  "values, '%s' has %zu", task, first, m->zrows, key,
                                  p->nvals);
            }
        }
        if (check_zip_rows(wf, task, m, err) < 0)
            return -1;
    }
    if (ex) {
        m->excl_ptr = wf_ptr(a, m->ptr, "exclude");
        if (parse_excludes(wf, task, m, ex, err) < 0)
            return -1;
    }
    return 0;
}

void wf_matrix_release(struct wf_matrix *m)
{
    for (size_t k = 0; k < m->nparams; k++) {
        if (m->p[k].map) {
            wf_map_release(m->p[k].map);
            free(m->p[k].map);
            m->p[k].map = NULL;
        }
    }
}
