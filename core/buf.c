#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "util.h"
#include "banned.h"

char hp_buf_empty[1];

void hp_buf_init(struct hp_buf *b, size_t hint)
{
    b->buf = hp_buf_empty;
    b->len = b->alloc = b->cap = 0;
    b->truncated = false;
    if (hint)
        hp_buf_grow(b, hint);
}

void hp_buf_release(struct hp_buf *b)
{
    if (b->alloc)
        free(b->buf);
    hp_buf_init(b, 0);
}

void hp_buf_reset(struct hp_buf *b)
{
    hp_buf_setlen(b, 0);
    b->truncated = false;
}

char *hp_buf_detach(struct hp_buf *b, size_t *len)
{
    char *s;
    if (!b->alloc)
        hp_buf_grow(b, 0);
    s = b->buf;
    if (len)
        *len = b->len;
    b->buf = hp_buf_empty;
    b->len = b->alloc = 0;
    b->truncated = false;
    return s;
}

void hp_buf_grow(struct hp_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return;
    size_t na = b->alloc ? b->alloc : 64;
    while (na < need)
        na *= 2;
    if (!b->alloc) {
        b->buf = hp_xmalloc(na);
        b->buf[0] = '\0';
    } else {
        b->buf = hp_xrealloc(b->buf, na);
    }
    b->alloc = na;
}

void hp_buf_setlen(struct hp_buf *b, size_t len)
{
    if (!b->alloc) {
        if (len == 0)
            return;
        hp_buf_grow(b, len);
    }
    b->len = len;
    b->buf[len] = '\0';
}

void hp_buf_add(struct hp_buf *b, const void *data, size_t len)
{
    if (b->cap && b->len + len > b->cap) {
        b->truncated = true;
        len = b->cap > b->len ? b->cap - b->len : 0;
    }
    if (!len)
        return;
    hp_buf_grow(b, len);
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    b->buf[b->len] = '\0';
}

void hp_buf_adds(struct hp_buf *b, const char *s)
{
    hp_buf_add(b, s, strlen(s));
}

void hp_buf_addch(struct hp_buf *b, int c)
{
    char ch = (char)c;
    hp_buf_add(b, &ch, 1);
}

void hp_buf_vaddf(struct hp_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(small, sizeof(small), fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        hp_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = hp_xmalloc((size_t)n + 1);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    hp_buf_add(b, big, (size_t)n);
    free(big);
}

void hp_buf_addf(struct hp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hp_buf_vaddf(b, fmt, ap);
    va_end(ap);
}
