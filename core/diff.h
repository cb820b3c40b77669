/* diff.h - line diffs of two texts: the edit script (Myers' O((N+M)D)
 * algorithm), unified diffs like `diff -u`, and two columns like `diff -y`.
 * For `hpcport plan --site A --site B`: what changes in the job scripts when
 * a campaign moves to another site. Pure: no I/O.
 *
 * Lines are split at '\n'; a text's last line needs no '\n' (a final '\n'
 * ends the last line and adds none). Lines are compared byte by byte. */
#ifndef HP_DIFF_H
#define HP_DIFF_H

#include <stddef.h>
#include "buf.h"

/* A text cut into lines. The line strings are borrowed from buf. */
struct hp_lines {
    char *buf;           /* owned copy of the text, '\n's replaced by NULs */
    const char **line;   /* n entries */
    size_t n;
};

void hp_lines_split(struct hp_lines *l, const char *text);
void hp_lines_release(struct hp_lines *l);

enum hp_diff_op { HP_DIFF_SAME = 0, HP_DIFF_DEL, HP_DIFF_ADD };

/* One step of the edit script: SAME keeps a[a] (== b[b]), DEL drops a[a],
 * ADD inserts b[b]. The steps walk both texts in order. */
struct hp_diff_edit {
    enum hp_diff_op op;
    size_t a, b;         /* 0-based line indexes; the one an op does not use
                            is where that text stands */
};

struct hp_diff {
    struct hp_diff_edit *e;
    size_t n;
    size_t ndel, nadd;   /* lines removed from a, added from b */
};

/* A shortest edit script from a to b. Beyond HP_DIFF_MAX_D differences
 * (texts that have little in common) everything between the common first
 * and last lines is replaced wholesale: still a correct script, no longer
 * the shortest. */
#define HP_DIFF_MAX_D 1024
void hp_diff_lines(const struct hp_lines *a, const struct hp_lines *b, struct hp_diff *d);
void hp_diff_release(struct hp_diff *d);

/* Append a unified diff with `context` lines around each change: a header
 * "--- label_a" / "+++ label_b", then @@ hunks as `diff -u` writes them.
 * Appends nothing when the texts are equal. Returns the number of hunks. */
size_t hp_diff_unified(const struct hp_lines *a, const struct hp_lines *b,
                       const struct hp_diff *d, const char *label_a, const char *label_b,
                       int context, struct hp_buf *out);

/* Append the texts side by side in width columns, like `diff -y`: each row is
 * the left line cut or padded to (width - 3) / 2 columns, a gutter " | "
 * (the lines differ), " < " (only left), " > " (only right) or "   ", and
 * the right line cut to the same width. Tabs become spaces (tab stops of 8);
 * other control bytes are shown as '?'; a UTF-8 sequence counts one column
 * and is never cut. width below 20 counts as 20. */
void hp_diff_side(const struct hp_lines *a, const struct hp_lines *b, const struct hp_diff *d,
                  int width, struct hp_buf *out);
/* Append one row of that layout: left and right (either may be NULL) with
 * gutter mark (' ', '|', '<' or '>'), e.g. for a header row. */
void hp_diff_side_row(const char *left, const char *right, char mark, int width,
                      struct hp_buf *out);

#endif
