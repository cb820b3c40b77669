/* check.c - the rows of `hpcport site check` (adapter.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "util.h"
#include "banned.h"

void hp_check_add(struct hp_check_report *r, enum hp_check_status st, const char *check,
                  const char *origin, const char *fmt, ...)
{
    struct hp_buf b = HP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    hp_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    HP_ALLOC_GROW(r->rows, r->n + 1, r->alloc);
    struct hp_check_row *row = &r->rows[r->n++];
    row->check = hp_xstrdup(check);
    row->status = st;
    row->detail = hp_buf_detach(&b, NULL);
    row->origin = origin && *origin ? hp_xstrdup(origin) : NULL;
}

void hp_check_report_release(struct hp_check_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rows[i].check);
        free(r->rows[i].detail);
        free(r->rows[i].origin);
    }
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

const char *hp_check_status_name(enum hp_check_status s)
{
    switch (s) {
    case HP_CHECK_OK: return "ok";
    case HP_CHECK_WARN: return "warn";
    case HP_CHECK_FAIL: return "FAIL";
    case HP_CHECK_SKIP: return "skip";
    }
    return "?";
}
