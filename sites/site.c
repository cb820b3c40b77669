/* site.c - finding a profile's layers, `extends`, merging, origins, listing.
 *
 * Resolution is depth first along the extends chain: the parent's tree is
 * built completely and becomes the base that the child's layers merge over.
 * There is only ever one tree under construction, so one pointer -> layer
 * map (ctx.src) serves the whole chain. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "site.h"
#include "site-int.h"
#include "buf.h"
#include "catalog.h"
#include "doc.h"
#include "embedded.h"
#include "schema.h"
#include "util.h"
#include "banned.h"

/* Profiles are small; these limits only stop nonsense early. */
static const struct hp_doc_limits profile_limits = { 1u << 20, 32, 100000u };

int hp_site_valid_name(const char *name)
{
    size_t n = 0;
    if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                   (name[0] >= '0' && name[0] <= '9')))
        return 0;
    for (const char *p = name; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    }
    return n <= 128;
}

int hp_site_is_placeholder(const char *value)
{
    size_t n = value ? strlen(value) : 0;
    return n >= 2 && value[0] == '<' && value[n - 1] == '>';
}

/* ---- layers and origins ---------------------------------------------------- */

size_t site_add_layer(struct site_ctx *c, enum layer_kind kind, struct hp_doc *doc,
                      const char *set)
{
    HP_ALLOC_GROW(c->layers, c->nlayers + 1, c->alloc);
    c->layers[c->nlayers].kind = kind;
    c->layers[c->nlayers].doc = doc;
    c->layers[c->nlayers].set = set;
    return c->nlayers++;
}

void site_src_tree(struct site_ctx *c, struct hp_buf *ptr, const json_t *v, size_t layer)
{
    size_t len = ptr->len;
    json_object_set_new(c->src, ptr->buf, json_integer((json_int_t)layer));
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach((json_t *)v, k, child) {
            hp_pointer_append(ptr, k);
            site_src_tree(c, ptr, child, layer);
            hp_buf_setlen(ptr, len);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            hp_pointer_append_index(ptr, i);
            site_src_tree(c, ptr, json_array_get(v, i), layer);
            hp_buf_setlen(ptr, len);
        }
    }
}

void site_src_drop_below(struct site_ctx *c, const char *ptr)
{
    size_t n = strlen(ptr);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(c->src, tmp, k, v) {
        if (!strncmp(k, ptr, n) && k[n] == '/')
            json_object_del(c->src, k);
    }
}

void site_merge(struct site_ctx *c, json_t *dst, const json_t *src, struct hp_buf *ptr,
                size_t layer)
{
    size_t len = ptr->len;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v) {
        json_t *d = json_object_get(dst, k);
        hp_pointer_append(ptr, k);
        if (json_is_object(d) && json_is_object(v)) {
            json_object_set_new(c->src, ptr->buf, json_integer((json_int_t)layer));
            site_merge(c, d, v, ptr, layer);
        } else {
            if (json_is_object(d) || json_is_array(d))
                site_src_drop_below(c, ptr->buf);
            json_object_set_new(dst, k, json_deep_copy(v));
            site_src_tree(c, ptr, v, layer);
        }
        hp_buf_setlen(ptr, len);
    }
}

int site_err(struct site_ctx *c, int code, const char *pointer, int at_key,
             const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char *p = hp_xstrdup(pointer);
    json_t *li = NULL;
    for (;;) {
        li = json_object_get(c->src, p);
        if (li)
            break;
        char *slash = strrchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    free(p);
    if (!li)
        return hp_err_at(c->err, code, NULL, 0, 0, pointer, "%s", msg);
    const struct layer *l = &c->layers[json_integer_value(li)];
    switch (l->kind) {
    case LAYER_FILE:
        return hp_doc_err(l->doc, c->err, code, pointer, at_key, "%s", msg);
    case LAYER_SET:
        return hp_err_at(c->err, HP_EUSAGE, NULL, 0, 0, pointer, "--set '%s': %s", l->set, msg);
    default:
        return hp_err_at(c->err, code, NULL, 0, 0, pointer, "%s (detected value)", msg);
    }
}

static void origin_text(const struct layer *l, const char *ptr, char *out, size_t len)
{
    if (l->kind == LAYER_FILE) {
        struct hp_pos pos;
        hp_doc_pos(l->doc, ptr, 0, &pos);
        snprintf(out, len, "%s:%d:%d", l->doc->file, pos.line, pos.col);
    } else {
        snprintf(out, len, "%s", l->kind == LAYER_SET ? "--set" : "<detected>");
    }
}

void site_where(struct site_ctx *c, const char *pointer, char *out, size_t len)
{
    json_t *li = json_object_get(c->src, pointer);
    if (li)
        origin_text(&c->layers[json_integer_value(li)], pointer, out, len);
    else if (len)
        out[0] = '\0';
}

static json_t *build_origins(struct site_ctx *c)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    char buf[1100];
    json_object_foreach(c->src, k, v) {
        origin_text(&c->layers[json_integer_value(v)], k, buf, sizeof(buf));
        json_object_set_new(out, k, json_string(buf));
    }
    return out;
}

/* ---- finding profiles ------------------------------------------------------ */

static char *user_path(const struct site_ctx *c, const char *name)
{
    return hp_xasprintf("%s/sites/%s.yaml", c->config_dir, name);
}

static char *workflow_path(const struct site_ctx *c, const char *name)
{
    if (!c->opts->workflow_dir)
        return NULL;
    return hp_xasprintf("%s/sites/%s.yaml", c->opts->workflow_dir, name);
}

/* Name of the file a profile was read from, without directories. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Validate one profile file named name. */
static int check_doc(const char *name, const struct hp_doc *doc, struct hp_err *err)
{
    if (hp_doc_validate(doc, "site", err) < 0)
        return -1;
    json_t *nm = json_object_get(doc->root, "name");
    if (json_is_string(nm) && strcmp(json_string_value(nm), name) != 0)
        return hp_doc_err(doc, err, HP_ESITE, "/name", 0,
                          "name '%s' does not match the file name '%s'; a profile is named "
                          "after its file", json_string_value(nm), base_name(doc->file));
    return 0;
}

int hp_site_check_text(const char *name, const char *label, const char *data, size_t len,
                       struct hp_err *err)
{
    struct hp_doc *doc = hp_doc_load_mem(label, data, len, &profile_limits, err);
    if (!doc)
        return -1;
    int r = check_doc(name, doc, err);
    hp_doc_free(doc);
    return r;
}

/* Validate one layer's file and register it. Takes doc. */
static int add_file_layer(struct site_ctx *c, const char *name, struct hp_doc *doc,
                          size_t *idx)
{
    size_t li = site_add_layer(c, LAYER_FILE, doc, NULL);   /* freed with the ctx */
    if (check_doc(name, doc, c->err) < 0)
        return -1;
    *idx = li;
    return 0;
}

/* The pinned catalog, opened once per resolution; NULL when there is none
 * (or, with *err set, when it is damaged). */
static struct hp_catalog *ctx_catalog(struct site_ctx *c, struct hp_err *err)
{
    if (!c->cat_tried) {
        c->cat_tried = 1;
        c->cat = hp_catalog_open(err);
    }
    return c->cat;
}

/* The catalog's profile name as a layer, if the catalog has it. */
static int try_catalog(struct site_ctx *c, const char *name, size_t *idx, size_t *n)
{
    struct hp_catalog *cat = ctx_catalog(c, c->err);
    char *data = NULL, *label;
    size_t len;
    if (!cat)
        return c->err->code ? -1 : 0;
    int r = hp_catalog_read(cat, name, &data, &len, c->err);
    if (r <= 0)
        return r;
    label = hp_catalog_label(hp_catalog_commit(cat), name);
    struct hp_doc *doc = hp_doc_load_mem(label, data, len, &profile_limits, c->err);
    free(label);
    free(data);
    if (!doc || add_file_layer(c, name, doc, &idx[*n]) < 0)
        return -1;
    (*n)++;
    c->cat_used = 1;
    return 0;
}

/* Load path as a layer of name if it exists. */
static int try_file(struct site_ctx *c, const char *name, const char *path, size_t *idx,
                    size_t *n)
{
    char *data;
    size_t len;
    if (hp_read_file(path, profile_limits.max_bytes, &data, &len) < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == EFBIG)
            return hp_err_at(c->err, HP_EINPUT, path, 0, 0, NULL,
                             "file is over the limit of %zu bytes", profile_limits.max_bytes);
        return hp_err_errno(c->err, "cannot read site profile '%s'", path);
    }
    struct hp_doc *doc = hp_doc_load_mem(path, data, len, &profile_limits, c->err);
    free(data);
    if (!doc)
        return -1;
    if (add_file_layer(c, name, doc, &idx[*n]) < 0)
        return -1;
    (*n)++;
    return 0;
}

/* The layers of name, lowest first, into idx (at most 4). */
static int find_layers(struct site_ctx *c, const char *name, size_t *idx, size_t *n)
{
    *n = 0;
    const struct hp_embedded_file *b = hp_embedded_find(hp_embedded_profiles, name);
    if (b) {
        char *label = hp_xasprintf("<bundled>/%s.yaml", name);
        struct hp_doc *doc = hp_doc_load_mem(label, b->text, b->len, &profile_limits, c->err);
        free(label);
        if (!doc || add_file_layer(c, name, doc, &idx[(*n)]) < 0)
            return -1;
        (*n)++;
    }
    if (try_catalog(c, name, idx, n) < 0)
        return -1;
    if (c->top_path && !strcmp(name, c->top_name)) {
        size_t before = *n;
        if (try_file(c, name, c->top_path, idx, n) < 0)
            return -1;
        if (*n == before)       /* asked for by path: its absence is an error */
            return hp_err_set(c->err, HP_ENOTFOUND, "cannot read site profile '%s': no such "
                              "file", c->top_path);
        return 0;
    }
    char *p = user_path(c, name);
    int r = try_file(c, name, p, idx, n);
    free(p);
    if (r < 0)
        return -1;
    p = workflow_path(c, name);
    if (p) {
        r = try_file(c, name, p, idx, n);
        free(p);
    }
    return r;
}

struct name_src {
    char *name;
    char *source;
};

struct name_list {
    struct name_src *v;
    size_t n, alloc;
};

static void names_add(struct name_list *l, const char *name, char *source)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!strcmp(l->v[i].name, name)) {     /* a higher layer: it becomes the source */
            free(l->v[i].source);
            l->v[i].source = source;
            return;
        }
    }
    HP_ALLOC_GROW(l->v, l->n + 1, l->alloc);
    l->v[l->n].name = hp_xstrdup(name);
    l->v[l->n].source = source;
    l->n++;
}

static void names_scan_dir(struct name_list *l, const char *base)
{
    if (!base)
        return;
    char *dir = hp_xasprintf("%s/sites", base);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (e->d_name[0] == '.' || !hp_ends_with(e->d_name, ".yaml"))
                continue;
            char *name = hp_xstrndup(e->d_name, len - 5);
            if (hp_site_valid_name(name))
                names_add(l, name, hp_xasprintf("%s/%s", dir, e->d_name));
            free(name);
        }
        closedir(d);
    }
    free(dir);
}

static void names_collect(struct site_ctx *c, struct name_list *l)
{
    for (const struct hp_embedded_file *f = hp_embedded_profiles; f->name; f++)
        names_add(l, f->name, hp_xasprintf("<bundled>/%s.yaml", f->name));
    struct hp_err e;
    hp_err_init(&e);
    struct hp_catalog *cat = ctx_catalog(c, &e);
    char **cn = cat ? hp_catalog_names(cat, &e) : NULL;
    for (size_t i = 0; cn && cn[i]; i++)
        names_add(l, cn[i], hp_catalog_label(hp_catalog_commit(cat), cn[i]));
    hp_catalog_names_free(cn);
    names_scan_dir(l, c->config_dir);
    names_scan_dir(l, c->opts->workflow_dir);
}

static void names_release(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].source);
    }
    free(l->v);
}

static int unknown_site(struct site_ctx *c, const char *name, const struct hp_doc *from)
{
    struct name_list l = { 0 };
    names_collect(c, &l);
    const char **cand = hp_xcalloc(l.n + 1, sizeof(*cand));
    for (size_t i = 0; i < l.n; i++)
        cand[i] = l.v[i].name;
    const char *s = hp_suggest(name, cand);
    char hint[200] = "";
    if (s)
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", s);
    if (from)
        hp_doc_err(from, c->err, HP_ESITE, "/extends", 0,
                   "unknown site '%s'%s; see 'hpcport site list'", name, hint);
    else
        hp_err_set(c->err, HP_ESITE, "unknown site '%s'%s; see 'hpcport site list'", name, hint);
    free(cand);
    names_release(&l);
    return -1;
}

/* ---- resolution ------------------------------------------------------------ */

/* Resolve name through its layers and its extends chain into a new tree.
 * from: the document whose `extends` names it (NULL at the top). */
static json_t *resolve(struct site_ctx *c, const char *name, const struct hp_doc *from)
{
    for (size_t i = 0; i < c->depth; i++) {
        if (strcmp(c->stack[i], name) != 0)
            continue;
        struct hp_buf b = HP_BUF_INIT;
        for (size_t k = i; k < c->depth; k++)
            hp_buf_addf(&b, "%s -> ", c->stack[k]);
        hp_buf_adds(&b, name);
        hp_doc_err(from, c->err, HP_ESITE, "/extends", 0, "extends cycle: %s", b.buf);
        hp_buf_release(&b);
        return NULL;
    }
    if (c->depth >= SITE_MAX_EXTENDS) {
        hp_doc_err(from, c->err, HP_ESITE, "/extends", 0,
                   "extends chain is longer than %d profiles", SITE_MAX_EXTENDS);
        return NULL;
    }
    if (!hp_site_valid_name(name)) {
        hp_err_set(c->err, HP_ESITE, "bad site name '%s': use letters, digits, '.', '_' and '-'",
                   name);
        return NULL;
    }

    size_t idx[4], n;
    if (find_layers(c, name, idx, &n) < 0)
        return NULL;
    if (!n) {
        unknown_site(c, name, from);
        return NULL;
    }

    json_t *base = NULL;
    const struct hp_doc *extdoc = NULL;
    const char *parent = NULL;
    for (size_t k = n; k-- > 0 && !parent;) {
        json_t *e = json_object_get(c->layers[idx[k]].doc->root, "extends");
        if (json_is_string(e)) {
            parent = json_string_value(e);
            extdoc = c->layers[idx[k]].doc;
        }
    }
    c->stack[c->depth++] = name;
    if (parent) {
        base = resolve(c, parent, extdoc);
        if (base) {
            /* a profile's name is its own, never inherited */
            json_object_del(base, "name");
            json_object_del(c->src, "/name");
        }
    } else {
        base = json_object();
    }
    if (base) {
        struct hp_buf ptr = HP_BUF_INIT;
        for (size_t k = 0; k < n; k++) {
            site_merge(c, base, c->layers[idx[k]].doc->root, &ptr, idx[k]);
            json_object_set_new(c->src, "", json_integer((json_int_t)idx[k]));
        }
        hp_buf_release(&ptr);
    }
    c->depth--;
    return base;
}

static void ctx_release(struct site_ctx *c)
{
    for (size_t i = 0; i < c->nlayers; i++)
        hp_doc_free(c->layers[i].doc);
    free(c->layers);
    free(c->config_dir);
    json_decref(c->src);
    hp_catalog_close(c->cat);
}

static const struct hp_site_opts no_opts;

static struct hp_site *load(const char *name, const char *top_path,
                            const struct hp_site_opts *opts, struct hp_err *err)
{
    struct site_ctx c = { 0 };
    struct hp_site *s = NULL;
    struct hp_verrors ve = { 0 };
    json_t *root = NULL;

    c.opts = opts ? opts : &no_opts;
    c.err = err;
    c.config_dir = c.opts->config_dir ? hp_xstrdup(c.opts->config_dir) : hp_config_dir();
    c.top_path = top_path;
    c.top_name = name;
    c.src = json_object();

    json_t *tree = resolve(&c, name, NULL);
    if (!tree)
        goto out;
    /* the name first, defaulted to the file name */
    root = json_object();
    json_object_set_new(root, "name", json_string(name));
    if (!json_object_get(tree, "name"))
        json_object_set(c.src, "/name", json_object_get(c.src, ""));
    json_object_update(root, tree);
    json_decref(tree);

    for (size_t i = 0; i < c.opts->nsets; i++)
        if (site_apply_set(&c, root, c.opts->sets[i]) < 0)
            goto out;

    /* Each file was valid alone; merging (and --set above all) can still
     * make the whole invalid. */
    if (c.nlayers > 1) {
        const struct hp_schema *schema = hp_schema_builtin("site", err);
        if (!schema)
            goto out;
        int r = hp_schema_validate(schema, root, &ve);
        if (r < 0) {
            hp_err_set(err, HP_EINTERNAL, "cannot validate site '%s'", name);
            goto out;
        }
        if (r > 0) {
            if (ve.n)
                site_err(&c, HP_EINPUT, ve.v[0].pointer, ve.v[0].at_key, "%s",
                         ve.v[0].message);
            else
                site_err(&c, HP_EINPUT, "", 0, "does not match the site schema");
            goto out;
        }
    }

    s = hp_xcalloc(1, sizeof(*s));
    s->name = hp_xstrdup(name);
    s->root = root;
    root = NULL;
    if (site_fill_view(&c, s) < 0) {
        hp_site_free(s);
        s = NULL;
        goto out;
    }
    s->origin = build_origins(&c);
    if (c.cat_used) {
        s->catalog_url = hp_catalog_redact_url(hp_catalog_url(c.cat));
        s->catalog_commit = hp_xstrdup(hp_catalog_commit(c.cat));
    }
out:
    hp_verrors_release(&ve);
    json_decref(root);
    ctx_release(&c);
    return s;
}

struct hp_site *hp_site_load(const char *name, const struct hp_site_opts *opts,
                             struct hp_err *err)
{
    if (!name || !hp_site_valid_name(name)) {
        hp_err_set(err, HP_ESITE, "bad site name '%s': use letters, digits, '.', '_' and '-'",
                   name ? name : "");
        return NULL;
    }
    return load(name, NULL, opts, err);
}

struct hp_site *hp_site_load_file(const char *path, const struct hp_site_opts *opts,
                                  struct hp_err *err)
{
    const char *base = base_name(path);
    size_t len = strlen(base);
    if (hp_ends_with(base, ".yaml"))
        len -= 5;
    else if (hp_ends_with(base, ".yml"))
        len -= 4;
    char *name = hp_xstrndup(base, len);
    struct hp_site *s = NULL;
    if (!hp_site_valid_name(name))
        hp_err_at(err, HP_ESITE, path, 0, 0, NULL,
                  "a profile is named after its file, and '%s' is not a valid name: use "
                  "letters, digits, '.', '_' and '-'", name);
    else
        s = load(name, path, opts, err);
    free(name);
    return s;
}

const char *hp_site_origin(const struct hp_site *s, const char *pointer)
{
    if (!s || !s->origin)
        return "";
    char *p = hp_xstrdup(pointer ? pointer : "");
    const char *o = "";
    for (;;) {
        json_t *v = json_object_get(s->origin, p);
        if (v) {
            o = json_string_value(v);
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    free(p);
    return o;
}

/* ---- listing ----------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct hp_site_entry *)a)->name,
                  ((const struct hp_site_entry *)b)->name);
}

int hp_site_list(const struct hp_site_opts *opts, struct hp_site_entry **out, size_t *n,
                 struct hp_err *err)
{
    struct site_ctx c = { 0 };
    struct name_list l = { 0 };
    struct hp_site_opts o = opts ? *opts : no_opts;

    c.opts = &o;
    c.config_dir = o.config_dir ? hp_xstrdup(o.config_dir) : hp_config_dir();
    names_collect(&c, &l);
    o.config_dir = c.config_dir;
    o.sets = NULL;
    o.nsets = 0;

    struct hp_site_entry *e = hp_xcalloc(l.n ? l.n : 1, sizeof(*e));
    for (size_t i = 0; i < l.n; i++) {
        struct hp_err le;
        hp_err_init(&le);
        e[i].name = l.v[i].name;
        e[i].source = l.v[i].source;
        l.v[i].name = l.v[i].source = NULL;
        struct hp_site *s = hp_site_load(e[i].name, &o, &le);
        if (s) {
            e[i].description = s->description ? hp_xstrdup(s->description) : NULL;
            e[i].scheduler = hp_xstrdup(s->scheduler);
            e[i].catalog_commit = s->catalog_commit ? hp_xstrdup(s->catalog_commit) : NULL;
        } else {
            char line[2200];
            hp_err_format(&le, line, sizeof(line));
            e[i].error = hp_xstrdup(line);
        }
        hp_site_free(s);
    }
    qsort(e, l.n, sizeof(*e), cmp_entry);
    *out = e;
    *n = l.n;
    names_release(&l);
    free(c.config_dir);
    hp_catalog_close(c.cat);
    (void)err;
    return 0;
}

void hp_site_entries_free(struct hp_site_entry *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].description);
        free(e[i].scheduler);
        free(e[i].source);
        free(e[i].catalog_commit);
        free(e[i].error);
    }
    free(e);
}
