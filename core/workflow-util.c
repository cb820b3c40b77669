/* workflow-util.c - the arena, the byte-string map and scalar rendering used
 * by the workflow model.
 *
 * Why an arena: a campaign of 10^5-10^6 instances holds several strings and
 * small arrays per instance; carving them from large chunks keeps expansion
 * fast and hp_workflow_free() linear in chunks, not in strings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workflow-int.h"
#include "doc.h"
#include "util.h"
#include "banned.h"

struct wf_chunk {
    struct wf_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define WF_CHUNK (1u << 20)

void *wf_alloc(struct wf_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct wf_chunk *c = a->head;
    if (c)
        c->used = (c->used + 7) & ~(size_t)7;   /* after wf_alloc_chars() */
    if (!c || c->used > c->size || c->size - c->used < n) {
        size_t size = n > WF_CHUNK / 4 ? n : WF_CHUNK;
        c = hp_xmalloc(sizeof(*c) + size);
        c->size = size;
        c->used = 0;
        if (size != WF_CHUNK && a->head) {
            /* a big block: keep filling the current chunk afterwards */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *wf_alloc_chars(struct wf_arena *a, size_t n)
{
    struct wf_chunk *c = a->head;
    if (!c || c->size - c->used < n)
        return wf_alloc(a, n);
    char *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

char *wf_strndup(struct wf_arena *a, const char *s, size_t n)
{
    char *p = wf_alloc_chars(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *wf_strdup(struct wf_arena *a, const char *s)
{
    return wf_strndup(a, s, strlen(s));
}

void wf_arena_release(struct wf_arena *a)
{
    struct wf_chunk *c = a->head;
    while (c) {
        struct wf_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- map ---- */

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h;
}

void wf_map_init(struct wf_map *m, size_t hint)
{
    size_t cap = 16;
    while (cap < hint * 2)
        cap *= 2;
    m->slot = hp_xcalloc(cap, sizeof(*m->slot));
    m->cap = cap;
    m->n = 0;
    hp_buf_init(&m->keys, hint * 8);
}

void wf_map_release(struct wf_map *m)
{
    free(m->slot);
    m->slot = NULL;
    m->cap = m->n = 0;
    hp_buf_release(&m->keys);
}

static struct wf_slot *find_slot(const struct wf_map *m, const void *key, size_t len,
                                 uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct wf_slot *s = &m->slot[i];
        if (!s->used)
            return s;
        if (s->hash == h && s->len == len && !memcmp(m->keys.buf + s->off, key, len))
            return s;
    }
}

static void grow(struct wf_map *m)
{
    struct wf_slot *old = m->slot;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slot = hp_xcalloc(m->cap, sizeof(*m->slot));
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used)
            continue;
        size_t mask = m->cap - 1, j = (size_t)old[i].hash & mask;
        while (m->slot[j].used)
            j = (j + 1) & mask;
        m->slot[j] = old[i];
    }
    free(old);
}

int wf_map_put(struct wf_map *m, const void *key, size_t len, size_t val, size_t *old)
{
    uint64_t h = hash_bytes(key, len);
    struct wf_slot *s = find_slot(m, key, len, h);
    if (s->used) {
        if (old)
            *old = s->val;
        return 0;
    }
    if ((m->n + 1) * 4 > m->cap * 3) {
        grow(m);
        s = find_slot(m, key, len, h);
    }
    s->used = 1;
    s->hash = h;
    s->off = m->keys.len;
    s->len = len;
    s->val = val;
    hp_buf_add(&m->keys, key, len);
    m->n++;
    return 1;
}

int wf_map_get(const struct wf_map *m, const void *key, size_t len, size_t *val)
{
    if (!m->cap)
        return 0;
    const struct wf_slot *s = find_slot(m, key, len, hash_bytes(key, len));
    if (!s->used)
        return 0;
    *val = s->val;
    return 1;
}

const char *wf_ptr(struct wf_arena *a, const char *base, const char *token)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, base);
    hp_pointer_append(&b, token);
    char *p = wf_strndup(a, b.buf, b.len);
    hp_buf_release(&b);
    return p;
}

const char *wf_ptr_index(struct wf_arena *a, const char *base, size_t index)
{
    size_t n = strlen(base) + 24;
    char *p = wf_alloc(a, n);
    snprintf(p, n, "%s/%zu", base, index);
    return p;
}

/* ---- scalars ---- */

char *wf_render_scalar(struct wf_arena *a, const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return wf_strndup(a, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 1e16) {
            snprintf(buf, sizeof(buf), "%.1f", d);
        } else {
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, sizeof(buf), "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                    break;
            }
            if (!strpbrk(buf, ".eE")) {
                size_t n = strlen(buf);
                snprintf(buf + n, sizeof(buf) - n, ".0");
            }
        }
        break;
    }
    case JSON_TRUE:
        return wf_strdup(a, "true");
    case JSON_FALSE:
        return wf_strdup(a, "false");
    default:
        return wf_strdup(a, "null");
    }
    return wf_strdup(a, buf);
}

const char *wf_output_problem(const char *path)
{
    if (!*path)
        return "is empty";
    if (path[0] == '/')
        return "is an absolute path; outputs are relative to the working directory";
    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "leaves the working directory ('..'); outputs must stay inside it";
        p += n;
        if (*p == '/')
            p++;
    }
    return NULL;
}
