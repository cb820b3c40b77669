/* diff.c - line diffs (diff.h). Myers' greedy algorithm keeps one row of
 * furthest-reaching points per edit distance d, so that the path can be
 * walked back; the rows cost O(D^2) memory, which the common start and end
 * (trimmed first) and the HP_DIFF_MAX_D cap keep small for job scripts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "diff.h"
#include "util.h"
#include "banned.h"

void hp_lines_split(struct hp_lines *l, const char *text)
{
    size_t len = strlen(text), alloc = 0;
    memset(l, 0, sizeof(*l));
    l->buf = hp_xstrndup(text, len);
    for (char *p = l->buf; p < l->buf + len;) {
        char *nl = strchr(p, '\n');
        HP_ALLOC_GROW(l->line, l->n + 1, alloc);
        l->line[l->n++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
}

void hp_lines_release(struct hp_lines *l)
{
    free(l->buf);
    free(l->line);
    memset(l, 0, sizeof(*l));
}

struct script {
    struct hp_diff *d;
    size_t alloc;
};

static void emit(struct script *s, enum hp_diff_op op, size_t a, size_t b)
{
    HP_ALLOC_GROW(s->d->e, s->d->n + 1, s->alloc);
    s->d->e[s->d->n++] = (struct hp_diff_edit){ op, a, b };
    s->d->ndel += op == HP_DIFF_DEL;
    s->d->nadd += op == HP_DIFF_ADD;
}

/* Edits of a[a0, a0+n) against b[b0, b0+m), appended in reverse order (the
 * walk back goes from the end). 0 when done, -1 past HP_DIFF_MAX_D. */
static int myers(const char *const *a, size_t a0, size_t n, const char *const *b, size_t b0,
                 size_t m, struct script *s)
{
    long N = (long)n, M = (long)m, max = N + M;
    long limit = max < HP_DIFF_MAX_D ? max : HP_DIFF_MAX_D;
    long off = limit + 1, D = -1;
    long *v = hp_xcalloc((size_t)(2 * limit + 3), sizeof(*v));
    long **trace = hp_xcalloc((size_t)limit + 1, sizeof(*trace));

    for (long d = 0; d <= limit && D < 0; d++) {
        for (long k = -d; k <= d; k += 2) {
            long x = k == -d || (k != d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1]
                                                                             : v[off + k - 1] + 1;
            long y = x - k;
            while (x < N && y < M && !strcmp(a[a0 + (size_t)x], b[b0 + (size_t)y]))
                x++, y++;
            v[off + k] = x;
            if (x >= N && y >= M) {
                D = d;
                break;
            }
        }
        trace[d] = hp_xmalloc((size_t)(2 * d + 1) * sizeof(**trace));
        memcpy(trace[d], v + off - d, (size_t)(2 * d + 1) * sizeof(**trace));
    }
    if (D >= 0) {
        long x = N, y = M;
        for (long d = D; d > 0; d--) {
            const long *pv = trace[d - 1] + (d - 1);   /* pv[k] for k in [-(d-1), d-1] */
            long k = x - y;
            long pk = k == -d || (k != d && pv[k - 1] < pv[k + 1]) ? k + 1 : k - 1;
            long px = pv[pk], py = px - pk;
            for (; x > px && y > py; x--, y--)
                emit(s, HP_DIFF_SAME, a0 + (size_t)x - 1, b0 + (size_t)y - 1);
            if (x == px)
                emit(s, HP_DIFF_ADD, a0 + (size_t)x, b0 + (size_t)y - 1);
            else
                emit(s, HP_DIFF_DEL, a0 + (size_t)x - 1, b0 + (size_t)y);
            x = px;
            y = py;
        }
        for (; x > 0 && y > 0; x--, y--)
            emit(s, HP_DIFF_SAME, a0 + (size_t)x - 1, b0 + (size_t)y - 1);
    }
    for (long d = 0; d <= limit; d++)
        free(trace[d]);
    free(trace);
    free(v);
    return D >= 0 ? 0 : -1;
}

static void reverse(struct hp_diff_edit *e, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct hp_diff_edit t = e[i];
        e[i] = e[n - 1 - i];
        e[n - 1 - i] = t;
    }
}

void hp_diff_lines(const struct hp_lines *A, const struct hp_lines *B, struct hp_diff *d)
{
    const char *const *a = A->line, *const *b = B->line;
    size_t na = A->n, nb = B->n, pre = 0, suf = 0;
    struct script s = { d, 0 };
    memset(d, 0, sizeof(*d));
    while (pre < na && pre < nb && !strcmp(a[pre], b[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre && !strcmp(a[na - 1 - suf], b[nb - 1 - suf]))
        suf++;
    for (size_t i = 0; i < pre; i++)
        emit(&s, HP_DIFF_SAME, i, i);
    size_t mid = d->n, n = na - pre - suf, m = nb - pre - suf;
    if (myers(a, pre, n, b, pre, m, &s) == 0) {
        reverse(d->e + mid, d->n - mid);
    } else {
        /* too different: the middle is replaced as a whole */
        d->n = mid;
        d->ndel = d->nadd = 0;
        for (size_t i = 0; i < n; i++)
            emit(&s, HP_DIFF_DEL, pre + i, pre);
        for (size_t i = 0; i < m; i++)
            emit(&s, HP_DIFF_ADD, pre + n, pre + i);
    }
    for (size_t i = 0; i < suf; i++)
        emit(&s, HP_DIFF_SAME, na - suf + i, nb - suf + i);
}

void hp_diff_release(struct hp_diff *d)
{
    free(d->e);
    memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------ unified */

static void range(struct hp_buf *out, char sign, size_t start, size_t count)
{
    /* diff -u: an empty range names the line before it */
    hp_buf_addf(out, " %c%zu", sign, count ? start + 1 : start);
    if (count != 1)
        hp_buf_addf(out, ",%zu", count);
}

size_t hp_diff_unified(const struct hp_lines *a, const struct hp_lines *b,
                       const struct hp_diff *d, const char *label_a, const char *label_b,
                       int context, struct hp_buf *out)
{
    size_t ctx = context > 0 ? (size_t)context : 0, hunks = 0, i = 0;
    const struct hp_diff_edit *e = d->e;
    while (i < d->n) {
        while (i < d->n && e[i].op == HP_DIFF_SAME)
            i++;
        if (i == d->n)
            break;
        size_t h0 = i > ctx ? i - ctx : 0, end = i;
        for (;;) {
            while (end < d->n && e[end].op != HP_DIFF_SAME)
                end++;
            size_t next = end;
            while (next < d->n && e[next].op == HP_DIFF_SAME)
                next++;
            if (next < d->n && next - end <= 2 * ctx)
                end = next;
            else
                break;
        }
        size_t h1 = end + ctx < d->n ? end + ctx : d->n, ca = 0, cb = 0;
        for (size_t k = h0; k < h1; k++) {
            ca += e[k].op != HP_DIFF_ADD;
            cb += e[k].op != HP_DIFF_DEL;
        }
        if (!hunks++)
            hp_buf_addf(out, "--- %s\n+++ %s\n", label_a, label_b);
        hp_buf_adds(out, "@@");
        range(out, '-', e[h0].a, ca);
        range(out, '+', e[h0].b, cb);
        hp_buf_adds(out, " @@\n");
        for (size_t k = h0; k < h1; k++) {
            if (e[k].op == HP_DIFF_ADD)
                hp_buf_addf(out, "+%s\n", b->line[e[k].b]);
            else
                hp_buf_addf(out, "%c%s\n", e[k].op == HP_DIFF_DEL ? '-' : ' ', a->line[e[k].a]);
        }
        i = h1;
    }
    return hunks;
}

/* ------------------------------------------------------------ side by side */

/* Append line s shown in exactly cols columns (cut, or padded when pad). */
static void cell(struct hp_buf *out, const char *s, size_t cols, int pad)
{
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && used < cols;) {
        if (*p == '\t') {
            size_t to = (used / 8 + 1) * 8;
            for (; used < to && used < cols; used++)
                hp_buf_addch(out, ' ');
            p++;
        } else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && *p < 0xc0)) {
            hp_buf_addch(out, '?');
            used++;
            p++;
        } else if (*p >= 0x80) {
            size_t len = 1;
            while (len < 4 && (p[len] & 0xc0) == 0x80)
                len++;
            hp_buf_add(out, p, len);
            used++;
            p += len;
        } else {
            hp_buf_addch(out, (char)*p++);
            used++;
        }
    }
    for (; pad && used < cols; used++)
        hp_buf_addch(out, ' ');
}

static void row(struct hp_buf *out, const char *l, const char *r, char mark, size_t cols)
{
    cell(out, l ? l : "", cols, 1);
    hp_buf_addch(out, ' ');
    hp_buf_addch(out, mark);
    hp_buf_addch(out, ' ');
    cell(out, r ? r : "", cols, 0);
    while (out->len && out->buf[out->len - 1] == ' ')
        hp_buf_setlen(out, out->len - 1);
    hp_buf_addch(out, '\n');
}

static size_t side_cols(int width)
{
    return (size_t)((width < 20 ? 20 : width) - 3) / 2;
}

void hp_diff_side_row(const char *left, const char *right, char mark, int width,
                      struct hp_buf *out)
{
    row(out, left, right, mark, side_cols(width));
}

void hp_diff_side(const struct hp_lines *a, const struct hp_lines *b, const struct hp_diff *d,
                  int width, struct hp_buf *out)
{
    size_t cols = side_cols(width);
    const struct hp_diff_edit *e = d->e;
    for (size_t i = 0; i < d->n;) {
        if (e[i].op == HP_DIFF_SAME) {
            row(out, a->line[e[i].a], b->line[e[i].b], ' ', cols);
            i++;
            continue;
        }
        /* a run of changes: deleted lines face added ones, the rest alone */
        size_t j = i, del0 = SIZE_MAX, add0 = SIZE_MAX, ndel = 0, nadd = 0;
        for (; j < d->n && e[j].op != HP_DIFF_SAME; j++) {
            if (e[j].op == HP_DIFF_DEL) {
                if (!ndel++)
                    del0 = e[j].a;
            } else if (!nadd++) {
                add0 = e[j].b;
            }
        }
        for (size_t k = 0; k < ndel || k < nadd; k++) {
            const char *l = k < ndel ? a->line[del0 + k] : NULL;
            const char *r = k < nadd ? b->line[add0 + k] : NULL;
            row(out, l, r, l && r ? '|' : l ? '<' : '>', cols);
        }
        i = j;
    }
}
