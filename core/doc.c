/* doc.c - libyaml events to a jansson tree plus a pointer -> position map.
 *
 * Why events and not libyaml's document API: the document API expands no
 * aliases itself but builds the whole node graph first, with no bound on
 * depth; with events we can stop at the first bound crossed, and we build
 * JSON pointers as we go. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "doc.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define POS_PACK(l, c) ((json_int_t)(l) * (1 << 24) + (json_int_t)((c) & 0xffffff))
#define POS_LINE(p) ((int)((p) >> 24))
#define POS_COL(p) ((int)((p) & 0xffffff))

struct anchor {
    char *name;
    json_t *node;       /* NULL while the anchored collection is still open */
    size_t count;       /* nodes in the anchored subtree */
};

struct frame {
    json_t *node;       /* object or array being filled */
    size_t ptrlen;      /* length of the pointer of this container */
    char *key;          /* mapping: pending key (NULL when expecting a key) */
    struct hp_pos keypos;
    char *anchor;       /* anchor named on this collection, or NULL */
    size_t count_at_start;
};

struct loader {
    const char *name;
    const char *data;
    size_t len;
    const struct hp_doc_limits *lim;
    struct hp_doc *doc;
    struct hp_err *err;
    struct hp_buf ptr;
    struct frame *stack;
    size_t depth, alloc;
    struct anchor *anchors;
    size_t nanchors, anchors_alloc;
    size_t nodes;
    json_t *root;
    int no_pointer;     /* errors about the stream, not a node */
};

static int lerr(struct loader *L, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lerr(struct loader *L, yaml_mark_t m, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* the pointer is meaningful only while a node is being built */
    return hp_err_at(L->err, HP_EINPUT, L->name, (int)m.line + 1, (int)m.column + 1,
                     L->ptr.len && !L->no_pointer ? L->ptr.buf : NULL, "%s", msg);
}

void hp_pointer_append(struct hp_buf *b, const char *token)
{
    hp_buf_addch(b, '/');
    for (const char *p = token; *p; p++) {
        if (*p == '~')
            hp_buf_adds(b, "~0");
        else if (*p == '/')
            hp_buf_adds(b, "~1");
        else
            hp_buf_addch(b, *p);
    }
}

void hp_pointer_append_index(struct hp_buf *b, size_t index)
{
    hp_buf_addf(b, "/%zu", index);
}

static void set_pos(json_t *map, const char *ptr, yaml_mark_t m)
{
    json_object_set_new(map, ptr, json_integer(POS_PACK(m.line + 1, m.column + 1)));
}

/* Resolve a scalar to a JSON value following the YAML 1.2 core schema. */
static int resolve_scalar(struct loader *L, const yaml_event_t *ev, json_t **out)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (strlen(v) != len)
        return lerr(L, ev->start_mark, "scalar contains a NUL character");
    if (tag && strcmp(tag, "!") != 0) {
        if (!strcmp(tag, YAML_STR_TAG)) {
            *out = json_stringn(v, len);
            goto check;
        }
        if (strcmp(tag, YAML_INT_TAG) && strcmp(tag, YAML_FLOAT_TAG) &&
            strcmp(tag, YAML_BOOL_TAG) && strcmp(tag, YAML_NULL_TAG))
            return lerr(L, ev->start_mark, "unsupported tag '%s'", tag);
        plain = 1;
    } else if (tag) {
        plain = 0;  /* "!" forces a string */
    }
    if (!plain) {
        *out = json_stringn(v, len);
        goto check;
    }
    if (!len || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
        !strcmp(v, "NULL")) {
        *out = json_null();
        return 0;
    }
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) {
        *out = json_true();
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) {
        *out = json_false();
        return 0;
    }
    /* integers: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
    {
        const char *p = v;
        int base = 10;
        if (p[0] == '0' && (p[1] == 'o' || p[1] == 'x') && p[2]) {
            base = p[1] == 'o' ? 8 : 16;
            p += 2;
        } else if (*p == '-' || *p == '+') {
            p++;
        }
        const char *digits = p;
        while (*p && (base == 16 ? strchr("0123456789abcdefABCDEF", *p) != NULL
                      : base == 8 ? (*p >= '0' && *p <= '7')
                                  : (*p >= '0' && *p <= '9')))
            p++;
        if (!*p && p > digits) {
            errno = 0;
            long long n = strtoll(base == 10 ? v : digits, NULL, base);
            if (errno == ERANGE)
                return lerr(L, ev->start_mark, "integer '%s' is out of range", v);
            *out = json_integer(n);
            return 0;
        }
    }
    /* floats */
    {
        const char *p = v;
        if (*p == '-' || *p == '+')
            p++;
        if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF") ||
            !strcmp(v, ".nan") || !strcmp(v, ".NaN") || !strcmp(v, ".NAN"))
            return lerr(L, ev->start_mark,
                        "'%s' is not a finite number; quote it to use it as a string", v);
        int digits = 0, ok = 1;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') { p++; digits++; }
        }
        if (digits && (*p == 'e' || *p == 'E')) {
            p++;
            if (*p == '-' || *p == '+')
                p++;
            if (!(*p >= '0' && *p <= '9'))
                ok = 0;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (ok && digits && !*p) {
            double d = strtod(v, NULL);
            if (!isfinite(d))
                return lerr(L, ev->start_mark, "number '%s' is out of range", v);
            *out = json_real(d);
            return 0;
        }
    }
    if (tag)
        return lerr(L, ev->start_mark, "'%s' does not match its tag '%s'", v, tag);
    *out = json_stringn(v, len);
check:
    if (!*out)  /* jansson refuses invalid UTF-8; libyaml checked it already */
        return lerr(L, ev->start_mark, "scalar is not valid UTF-8");
    return 0;
}

/* Attach a finished value to the current container (or make it the root).
 * The value reference is stolen. mark is the value's start. */
static int attach(struct loader *L, json_t *val, yaml_mark_t mark, size_t ptrlen)
{
    (void)ptrlen;
    if (!L->depth) {
        L->root = val;
        return 0;
    }
    struct frame *f = &L->stack[L->depth - 1];
    if (json_is_array(f->node)) {
        json_array_append_new(f->node, val);
        return 0;
    }
    json_object_set_new(f->node, f->key, val);
    free(f->key);
    f->key = NULL;
    return 0;
}

/* Compute the pointer of the next child of the current container into L->ptr.
 * For mappings the key is pending in the frame. */
static void child_pointer(struct loader *L)
{
    if (!L->depth) {
        hp_buf_setlen(&L->ptr, 0);
        return;
    }
    struct frame *f = &L->stack[L->depth - 1];
    hp_buf_setlen(&L->ptr, f->ptrlen);
    if (json_is_array(f->node))
        hp_pointer_append_index(&L->ptr, json_array_size(f->node));
    else
        hp_pointer_append(&L->ptr, f->key);
}

static struct anchor *find_anchor(struct loader *L, const char *name)
{
    /* later definitions of the same anchor name win */
    for (size_t i = L->nanchors; i-- > 0;)
        if (!strcmp(L->anchors[i].name, name))
            return &L->anchors[i];
    return NULL;
}

static void add_anchor(struct loader *L, const char *name, json_t *node, size_t count)
{
    HP_ALLOC_GROW(L->anchors, L->nanchors + 1, L->anchors_alloc);
    L->anchors[L->nanchors].name = hp_xstrdup(name);
    L->anchors[L->nanchors].node = node;
    L->anchors[L->nanchors].count = count;
    L->nanchors++;
}

/* A mapping key arrived as a scalar: check it and make it pending. */
static int take_key(struct loader *L, struct frame *f, const yaml_event_t *ev)
{
    const char *k = (const char *)ev->data.scalar.value;
    if (strlen(k) != ev->data.scalar.length)
        return lerr(L, ev->start_mark, "mapping key contains a NUL character");
    hp_buf_setlen(&L->ptr, f->ptrlen);
    hp_pointer_append(&L->ptr, k);
    if (json_object_get(f->node, k)) {
        json_t *first = json_object_get(L->doc->keypos, L->ptr.buf);
        if (first)
            return lerr(L, ev->start_mark, "duplicate key '%s' (first defined at line %d)",
                        k, POS_LINE(json_integer_value(first)));
        return lerr(L, ev->start_mark, "duplicate key '%s'", k);
    }
    set_pos(L->doc->keypos, L->ptr.buf, ev->start_mark);
    f->key = hp_xstrdup(k);
    return 0;
}

static int count_node(struct loader *L, yaml_mark_t m, size_t n)
{
    L->nodes += n;
    if (L->nodes > L->lim->max_nodes)
        return lerr(L, m, "document has more than %zu nodes once aliases are expanded; "
                    "refusing it (alias bomb?)", L->lim->max_nodes);
    return 0;
}

static int handle(struct loader *L, yaml_event_t *ev, int *done)
{
    struct frame *top = L->depth ? &L->stack[L->depth - 1] : NULL;
    int expecting_key = top && json_is_object(top->node) && !top->key;

    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (L->root && (L->no_pointer = 1))
            return lerr(L, ev->start_mark,
                        "a second YAML document in one file; expected exactly one");
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return 0;
    case YAML_ALIAS_EVENT: {
        if (expecting_key)
            return lerr(L, ev->start_mark, "aliases are not allowed as mapping keys");
        const char *name = (const char *)ev->data.alias.anchor;
        struct anchor *a = find_anchor(L, name);
        if (!a)
            return lerr(L, ev->start_mark, "unknown alias '*%s'", name);
        if (!a->node)
            return lerr(L, ev->start_mark, "alias '*%s' refers to a node that contains it", name);
        if (count_node(L, ev->start_mark, a->count) < 0)
            return -1;
        child_pointer(L);
        set_pos(L->doc->pos, L->ptr.buf, ev->start_mark);
        return attach(L, json_deep_copy(a->node), ev->start_mark, L->ptr.len);
    }
    case YAML_SCALAR_EVENT: {
        if (expecting_key)
            return take_key(L, top, ev);
        json_t *v = NULL;
        child_pointer(L);
        if (resolve_scalar(L, ev, &v) < 0)
            return -1;
        if (count_node(L, ev->start_mark, 1) < 0) {
            json_decref(v);
            return -1;
        }
        set_pos(L->doc->pos, L->ptr.buf, ev->start_mark);
        if (ev->data.scalar.anchor)
            add_anchor(L, (const char *)ev->data.scalar.anchor, v, 1);
        return attach(L, v, ev->start_mark, L->ptr.len);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (expecting_key)
            return lerr(L, ev->start_mark,
                        "mapping keys must be plain strings, not collections");
        if ((int)L->depth >= L->lim->max_depth)
            return lerr(L, ev->start_mark, "nesting deeper than %d levels", L->lim->max_depth);
        if (count_node(L, ev->start_mark, 1) < 0)
            return -1;
        child_pointer(L);
        set_pos(L->doc->pos, L->ptr.buf, ev->start_mark);
        const char *anchor = (const char *)(ev->type == YAML_SEQUENCE_START_EVENT
                                                ? ev->data.sequence_start.anchor
                                                : ev->data.mapping_start.anchor);
        HP_ALLOC_GROW(L->stack, L->depth + 1, L->alloc);
        struct frame *f = &L->stack[L->depth++];
        memset(f, 0, sizeof(*f));
        f->node = ev->type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object();
        f->ptrlen = L->ptr.len;
        f->count_at_start = L->nodes;
        if (anchor) {
            f->anchor = hp_xstrdup(anchor);
            add_anchor(L, anchor, NULL, 0);  /* open: aliases to it are recursive */
        }
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame f = L->stack[--L->depth];
        if (f.anchor) {
            struct anchor *a = find_anchor(L, f.anchor);
            a->node = f.node;
            a->count = L->nodes - f.count_at_start + 1;
            free(f.anchor);
        }
        return attach(L, f.node, ev->start_mark, f.ptrlen);
    }
    default:
        return 0;
    }
}

static void offset_to_mark(const char *data, size_t len, size_t off, yaml_mark_t *m)
{
    m->line = m->column = 0;
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') {
            m->line++;
            m->column = 0;
        } else if (((unsigned char)data[i] & 0xc0) != 0x80) {
            m->column++;
        }
    }
}

static int parser_error(struct loader *L, yaml_parser_t *p)
{
    yaml_mark_t m = p->problem_mark;
    L->no_pointer = 1;
    if (p->error == YAML_READER_ERROR) {
        offset_to_mark(L->data, L->len, p->problem_offset, &m);
        if (p->problem_value != -1 && strstr(p->problem ? p->problem : "", "UTF"))
            return lerr(L, m, "invalid UTF-8 (%s, byte 0x%02x)", p->problem,
                        (unsigned)p->problem_value & 0xff);
        return lerr(L, m, "%s", p->problem ? p->problem : "cannot read input");
    }
    if (p->error == YAML_MEMORY_ERROR)
        return lerr(L, m, "out of memory while parsing");
    if (p->context)
        return lerr(L, m, "%s %s", p->problem ? p->problem : "syntax error", p->context);
    return lerr(L, m, "%s", p->problem ? p->problem : "syntax error");
}

struct hp_doc *hp_doc_load_mem(const char *name, const char *data, size_t len,
                               const struct hp_doc_limits *limits, struct hp_err *err)
{
    static const struct hp_doc_limits defaults = HP_DOC_LIMITS_DEFAULT;
    struct loader L = { 0 };
    yaml_parser_t parser;
    yaml_event_t ev;
    int done = 0, failed = 0;

    L.name = name;
    L.data = data;
    L.len = len;
    L.lim = limits ? limits : &defaults;
    L.err = err;
    hp_buf_init(&L.ptr, 128);

    if (len > L.lim->max_bytes) {
        hp_err_at(err, HP_EINPUT, name, 0, 0, NULL,
                  "file is %zu bytes, over the limit of %zu bytes", len, L.lim->max_bytes);
        hp_buf_release(&L.ptr);
        return NULL;
    }

    L.doc = hp_xcalloc(1, sizeof(*L.doc));
    L.doc->file = hp_xstrdup(name);
    L.doc->pos = json_object();
    L.doc->keypos = json_object();

    if (!yaml_parser_initialize(&parser)) {
        hp_err_set(err, HP_EINTERNAL, "cannot initialise the YAML parser");
        hp_doc_free(L.doc);
        hp_buf_release(&L.ptr);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&L, &parser);
            failed = 1;
            break;
        }
        int r = handle(&L, &ev, &done);
        yaml_event_delete(&ev);
        if (r < 0) {
            failed = 1;
            break;
        }
    }
    yaml_parser_delete(&parser);

    for (size_t i = 0; i < L.depth; i++) {
        json_decref(L.stack[i].node);
        free(L.stack[i].key);
        free(L.stack[i].anchor);
    }
    free(L.stack);
    for (size_t i = 0; i < L.nanchors; i++)
        free(L.anchors[i].name);
    free(L.anchors);
    hp_buf_release(&L.ptr);

    if (!failed && !L.root) {
        hp_err_at(err, HP_EINPUT, name, 1, 1, NULL, "empty document");
        failed = 1;
    }
    if (failed) {
        json_decref(L.root);
        hp_doc_free(L.doc);
        return NULL;
    }
    L.doc->root = L.root;
    return L.doc;
}

struct hp_doc *hp_doc_load_file(const char *path, const struct hp_doc_limits *limits,
                                struct hp_err *err)
{
    static const struct hp_doc_limits defaults = HP_DOC_LIMITS_DEFAULT;
    const struct hp_doc_limits *lim = limits ? limits : &defaults;
    char *data;
    size_t len;
    if (hp_read_file(path, lim->max_bytes, &data, &len) < 0) {
        if (errno == EFBIG)
            hp_err_at(err, HP_EINPUT, path, 0, 0, NULL,
                      "file is over the limit of %zu bytes", lim->max_bytes);
        else
            hp_err_errno(err, "cannot read '%s'", path);
        return NULL;
    }
    struct hp_doc *doc = hp_doc_load_mem(path, data, len, lim, err);
    free(data);
    return doc;
}

void hp_doc_free(struct hp_doc *doc)
{
    if (!doc)
        return;
    free(doc->file);
    json_decref(doc->root);
    json_decref(doc->pos);
    json_decref(doc->keypos);
    free(doc);
}

int hp_doc_pos(const struct hp_doc *doc, const char *pointer, int key, struct hp_pos *out)
{
    char *p = hp_xstrdup(pointer ? pointer : "");
    int exact = 1, ret = -1;
    out->line = out->col = 0;
    for (;;) {
        json_t *v = NULL;
        if (key && exact)
            v = json_object_get(doc->keypos, p);
        if (!v)
            v = json_object_get(doc->pos, p);
        if (v) {
            json_int_t x = json_integer_value(v);
            out->line = POS_LINE(x);
            out->col = POS_COL(x);
            ret = exact ? 0 : 1;
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash) {
            if (*p) {      /* try the root */
                *p = '\0';
                exact = 0;
                continue;
            }
            break;
        }
        *slash = '\0';
        exact = 0;
    }
    free(p);
    return ret;
}

int hp_doc_err(const struct hp_doc *doc, struct hp_err *err, int code, const char *pointer,
               int key, const char *fmt, ...)
{
    struct hp_pos pos = { 0, 0 };
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (doc)
        hp_doc_pos(doc, pointer, key, &pos);
    return hp_err_at(err, code, doc ? doc->file : NULL, pos.line, pos.col, pointer, "%s", msg);
}
