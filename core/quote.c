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
