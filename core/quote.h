/* quote.h - the one place that makes user values safe for a POSIX shell.
 *
 * Every value that came from a user and ends up in a generated script or in a
 * command line run by a remote shell goes through these functions. */
#ifndef HP_QUOTE_H
#define HP_QUOTE_H

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

/* Like hp_sq_quote, but a leading $NAME or ${NAME} (as site profiles write
 * "$SCRATCH/x") stays expandable: "${NAME}"'/x'. Only for paths whose
 * leading variable came from a site profile. */
void hp_sq_quote_path(struct hp_buf *out, const char *s);

#endif
