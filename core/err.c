#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "err.h"
#include "banned.h"

void hp_err_init(struct hp_err *e)
{
    memset(e, 0, sizeof(*e));
}

int hp_err_vset(struct hp_err *e, int code, const char *fmt, va_list ap)
{
    if (!e || e->code)
        return -1;
    e->code = code ? code : HP_EFAIL;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    return -1;
}

int hp_err_set(struct hp_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hp_err_vset(e, code, fmt, ap);
    va_end(ap);
    return -1;
}

int hp_err_at(struct hp_err *e, int code, const char *file, int line, int col,
              const char *pointer, const char *fmt, ...)
{
    va_list ap;
    if (!e || e->code)
        return -1;
    va_start(ap, fmt);
    hp_err_vset(e, code, fmt, ap);
    va_end(ap);
    snprintf(e->file, sizeof(e->file), "%s", file ? file : "");
    e->line = line;
    e->col = col;
    snprintf(e->pointer, sizeof(e->pointer), "%s", pointer ? pointer : "");
    return -1;
}

int hp_err_errno(struct hp_err *e, const char *fmt, ...)
{
    int saved = errno;
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return hp_err_set(e, HP_ESYS, "%s: %s", what, strerror(saved));
}

void hp_err_prefix(struct hp_err *e, const char *fmt, ...)
{
    char pre[512], old[sizeof(e->msg)];
    va_list ap;
    if (!e || !e->code)
        return;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    size_t n = strlen(pre);
    if (n > sizeof(e->msg) - 3)
        n = sizeof(e->msg) - 3;
    memcpy(e->msg, pre, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof(e->msg) - n - 3;
    size_t ol = strlen(old);
    if (ol > rest)
        ol = rest;
    memcpy(e->msg + n + 2, old, ol);
    e->msg[n + 2 + ol] = '\0';
}

void hp_err_format(const struct hp_err *e, char *out, unsigned long len)
{
    char where[640] = "";
    char at[540] = "";
    if (e->file[0]) {
        if (e->line > 0)
            snprintf(where, sizeof(where), "%s:%d:%d: ", e->file, e->line,
                     e->col > 0 ? e->col : 1);
        else
            snprintf(where, sizeof(where), "%s: ", e->file);
    }
    if (e->pointer[0])
        snprintf(at, sizeof(at), " (at %s)", e->pointer);
    snprintf(out, len, "%serror: %s%s", where, e->msg, at);
}
