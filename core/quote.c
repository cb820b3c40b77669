#include <string.h>
#include "quote.h"
#include "banned.h"

int hp_shell_safe(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("_./:=@%+,-", c)))
            return 0;
    }
    return 1;
}

void hp_sq_quote(struct hp_buf *out, const char *s)
{
    hp_buf_addch(out, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            hp_buf_adds(out, "'\\''");
        else
            hp_buf_addch(out, *p);
    }
    hp_buf_addch(out, '\'');
}

void hp_sq_quote_argv(struct hp_buf *out, const char *const *argv)
{
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            hp_buf_addch(out, ' ');
        hp_sq_quote(out, argv[i]);
    }
}

void hp_sq_quote_pretty(struct hp_buf *out, const char *s)
{
    if (hp_shell_safe(s) && s[0] != '=' )
        hp_buf_adds(out, s);
    else
        hp_sq_quote(out, s);
}

static int name_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

size_t hp_path_var(const char *p, const char **name, size_t *nlen)
{
    if (p[0] != '$')
        return 0;
    int brace = p[1] == '{';
    const char *n = p + 1 + brace;
    size_t l = 0;
    while (name_char(n[l], l == 0))
        l++;
    if (!l || (brace && n[l] != '}'))
        return 0;
    *name = n;
    *nlen = l;
    return (size_t)(n - p) + l + (size_t)brace;
}

void hp_sq_quote_path(struct hp_buf *out, const char *s)
{
    const char *lit = s, *p = s, *name;
    size_t nlen, len;
    int any = 0;
    struct hp_buf part = HP_BUF_INIT;
    while (*p) {
        if (!(len = hp_path_var(p, &name, &nlen))) {
            p++;
            continue;
        }
        if (p > lit) {
            hp_buf_reset(&part);
            hp_buf_add(&part, lit, (size_t)(p - lit));
            hp_sq_quote(out, part.buf);
        }
        hp_buf_adds(out, "\"${");
        hp_buf_add(out, name, nlen);
        hp_buf_adds(out, "}\"");
        any = 1;
        p += len;
        lit = p;
    }
    if (*lit || !any)
        hp_sq_quote(out, lit);
    hp_buf_release(&part);
}
