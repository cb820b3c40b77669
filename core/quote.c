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

void hp_sq_quote_path(struct hp_buf *out, const char *s)
{
    const char *p = s, *name, *end;
    if (*p != '$') {
        hp_sq_quote(out, s);
        return;
    }
    p++;
    int brace = *p == '{';
    if (brace)
        p++;
    name = p;
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_')) {
        hp_sq_quote(out, s);
        return;
    }
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
           *p == '_')
        p++;
    end = p;
    if (brace) {
        if (*p != '}') {
            hp_sq_quote(out, s);
            return;
        }
        p++;
    }
    hp_buf_adds(out, "\"${");
    hp_buf_add(out, name, (size_t)(end - name));
    hp_buf_adds(out, "}\"");
    if (*p)
        hp_sq_quote(out, p);
}
