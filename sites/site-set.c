/* site-set.c - --set KEY.PATH=VALUE flags, the highest layer of a profile.
 *
 * The value is YAML, so "3" is a number, "[a, b]" a list and a plain word a
 * string. A mapping value merges into an existing mapping like a layer file
 * would; anything else replaces. null removes a key. Unknown keys are left
 * for the schema, which runs over the whole result afterwards and suggests
 * the closest name. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "site-int.h"
#include "util.h"
#include "banned.h"

static const struct hp_doc_limits set_limits = { 64u << 10, 16, 10000u };

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "a mapping";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int parse_index(const char *tok, size_t *out)
{
    size_t v = 0;
    if (!*tok)
        return -1;
    for (const char *p = tok; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000000)
            return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    *out = v;
    return 0;
}

/* Put val (reference stolen) at the final step: into object under key, or
 * into array at index (== size appends). */
static int put(struct site_ctx *c, json_t *cur, const char *key, size_t index,
               json_t *val, struct hp_buf *ptr, size_t layer, const char *arg)
{
    json_t *old = json_is_object(cur) ? json_object_get(cur, key)
                                      : json_array_get(cur, index);
    if (json_is_null(val)) {
        json_decref(val);
        if (json_is_array(cur))
            return hp_err_set(c->err, HP_EUSAGE,
                              "--set '%s': a list entry cannot be removed; set the whole "
                              "list instead", arg);
        if (old) {
            site_src_drop_below(c, ptr->buf);
            json_object_del(c->src, ptr->buf);
            json_object_del(cur, key);
        }
        return 0;
    }
    if (json_is_object(old) && json_is_object(val)) {
        json_object_set_new(c->src, ptr->buf, json_integer((json_int_t)layer));
        site_merge(c, old, val, ptr, layer);
        json_decref(val);
        return 0;
    }
    if (json_is_object(old) || json_is_array(old))
        site_src_drop_below(c, ptr->buf);
    site_src_tree(c, ptr, val, layer);
    if (json_is_object(cur))
        json_object_set_new(cur, key, val);
    else if (old)
        json_array_set_new(cur, index, val);
    else
        json_array_append_new(cur, val);
    return 0;
}

int site_apply_set(struct site_ctx *c, json_t *root, const char *arg)
{
    const char *eq = strchr(arg, '=');
    int ret = -1;
    json_t *val = NULL;
    char **tok = NULL;
    size_t ntok = 0, alloc = 0;
    struct hp_buf ptr = HP_BUF_INIT, path = HP_BUF_INIT;

    if (!eq || eq == arg) {
        hp_err_set(c->err, HP_EUSAGE, "bad --set '%s': expected KEY=VALUE", arg);
        goto out;
    }
    for (const char *p = arg;;) {
        const char *dot = memchr(p, '.', (size_t)(eq - p));
        const char *end = dot ? dot : eq;
        if (end == p) {
            hp_err_set(c->err, HP_EUSAGE, "bad --set '%s': expected KEY=VALUE", arg);
            goto out;
        }
        HP_ALLOC_GROW(tok, ntok + 1, alloc);
        tok[ntok++] = hp_xstrndup(p, (size_t)(end - p));
        if (!dot)
            break;
        p = dot + 1;
    }
    if (!strcmp(tok[0], "extends") || (!strcmp(tok[0], "name") && ntok == 1)) {
        /* both are settled before --set applies */
        hp_err_set(c->err, HP_EUSAGE, "--set '%s': '%s' cannot be set on the command line; "
                   "write a profile file instead", arg, tok[0]);
        goto out;
    }

    if (!eq[1]) {
        val = json_string("");
    } else {
        struct hp_err e;
        hp_err_init(&e);
        struct hp_doc *d = hp_doc_load_mem("--set", eq + 1, strlen(eq + 1), &set_limits, &e);
        if (!d) {
            hp_err_set(c->err, HP_EUSAGE, "bad --set '%s': %s", arg, e.msg);
            goto out;
        }
        val = json_incref(d->root);
        hp_doc_free(d);
    }

    size_t layer = site_add_layer(c, LAYER_SET, NULL, arg);
    json_t *cur = root;
    for (size_t i = 0; i < ntok; i++) {
        int last = i + 1 == ntok;
        size_t index = 0;
        json_t *child;
        if (json_is_array(cur)) {
            if (parse_index(tok[i], &index) < 0) {
                hp_err_set(c->err, HP_EUSAGE, "--set '%s': '%s' is a list; follow it with an "
                           "index (0, 1, ...), not '%s'", arg, path.buf, tok[i]);
                goto out;
            }
            if (index > json_array_size(cur)) {
                hp_err_set(c->err, HP_EUSAGE, "--set '%s': index %zu is out of range: '%s' "
                           "has %zu entries", arg, index, path.buf, json_array_size(cur));
                goto out;
            }
            hp_pointer_append_index(&ptr, index);
            child = json_array_get(cur, index);
        } else {
            hp_pointer_append(&ptr, tok[i]);
            child = json_object_get(cur, tok[i]);
        }
        hp_buf_addf(&path, "%s%s", i ? "." : "", tok[i]);
        if (last) {
            ret = put(c, cur, tok[i], index, val, &ptr, layer, arg);
            val = NULL;
            goto out;
        }
        if (!child) {
            size_t next;
            /* "partitions.0.x" on a missing list starts one */
            child = parse_index(tok[i + 1], &next) == 0 && next == 0 ? json_array()
                                                                     : json_object();
            json_object_set_new(c->src, ptr.buf, json_integer((json_int_t)layer));
            if (json_is_array(cur))
                json_array_append_new(cur, child);
            else
                json_object_set_new(cur, tok[i], child);
        } else if (!json_is_object(child) && !json_is_array(child)) {
            hp_err_set(c->err, HP_EUSAGE, "--set '%s': '%s' is %s, not a mapping or a list",
                       arg, path.buf, kind_name(child));
            goto out;
        }
        cur = child;
    }
out:
    json_decref(val);
    for (size_t i = 0; i < ntok; i++)
        free(tok[i]);
    free(tok);
    hp_buf_release(&ptr);
    hp_buf_release(&path);
    return ret;
}
