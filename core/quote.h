/* quote.h - the one place that makes user values safe for a POSIX shell.
 *
 * Every value that came from a user and ends up in a generated script or in a
 * command line run by a remote shell goes through these functions. */
#ifndef HP_QUOTE_H
#define HP_QUOTE_H

#include <stddef.h>
#include "buf.h"

/* Append s as one single-quoted shell word: 'it'\''s'. Safe for any byte
 * string (newlines, $(), backquotes, globs, quotes). Empty string -> ''. */
void hp_sq_quote(struct hp_buf *out, const char *s);
/* Append argv (NULL-terminated) as space-separated quoted words. */
void hp_sq_quote_argv(struct hp_buf *out, const char *const *argv);
/* True if s can appear unquoted in a shell word ([A-Za-z0-9_./:=@%+,-]+). */
int hp_shell_safe(const char *s);
/* Append s quoted only if needed (for human-readable output). */
void hp_sq_quote_pretty(struct hp_buf *out, const char *s);

/* Like hp_sq_quote, but every $NAME or ${NAME} (as site profiles write
 * "$SCRATCH/x" or "/home/$USER") stays expandable: "${SCRATCH}"'/x',
 * '/home/'"${USER}". Only for paths whose variables came from a site
 * profile. */
void hp_sq_quote_path(struct hp_buf *out, const char *s);
/* If p starts with $NAME or ${NAME}: its length, with *name and *nlen the
 * name; else 0. */
size_t hp_path_var(const char *p, const char **name, size_t *nlen);

#endif
