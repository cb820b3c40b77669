/* buf.h - growable byte buffer (after git's strbuf).
 *
 * b->buf is never NULL and always NUL-terminated, so it can be passed to
 * string functions at any time. A non-zero cap limits the length (for output
 * read from remote commands): appends beyond it are dropped and b->truncated
 * is set. */
#ifndef HP_BUF_H
#define HP_BUF_H

#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>

struct hp_buf {
    char *buf;
    size_t len;
    size_t alloc;
    size_t cap;       /* 0 = unlimited */
    bool truncated;
};

extern char hp_buf_empty[];
#define HP_BUF_INIT { .buf = hp_buf_empty }

void hp_buf_init(struct hp_buf *b, size_t hint);
void hp_buf_release(struct hp_buf *b);
void hp_buf_reset(struct hp_buf *b);
/* Hand the string over to the caller (who frees it); b is re-initialised. */
char *hp_buf_detach(struct hp_buf *b, size_t *len);
void hp_buf_grow(struct hp_buf *b, size_t extra);
void hp_buf_add(struct hp_buf *b, const void *data, size_t len);
void hp_buf_adds(struct hp_buf *b, const char *s);
void hp_buf_addch(struct hp_buf *b, int c);
void hp_buf_addf(struct hp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hp_buf_vaddf(struct hp_buf *b, const char *fmt, va_list ap);
void hp_buf_setlen(struct hp_buf *b, size_t len);

#endif
