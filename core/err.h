/* err.h - the error record every layer fills and only cli/ prints.
 *
 * Functions return 0 on success and -1 on failure after filling a struct
 * hp_err. The innermost message wins: hp_err_set() does nothing if the record
 * already holds an error; callers add context with hp_err_prefix().
 *
 * The code is the process exit status. Codes are documented in hpcport(1)
 * and are never renumbered. */
#ifndef HP_ERR_H
#define HP_ERR_H

#include <stdarg.h>

enum hp_errcode {
    HP_OK = 0,
    HP_EFAIL = 1,     /* generic failure; a campaign finished with failed tasks */
    HP_EUSAGE = 2,    /* bad command line */
    HP_EINPUT = 3,    /* a document failed to load or validate */
    HP_ESITE = 4,     /* unknown site, bad site profile, site cannot run this */
    HP_ELINT = 5,     /* plan found portability errors */
    HP_ESYS = 6,      /* I/O or system error */
    HP_ESTATE = 7,    /* campaign state store error */
    HP_ENOTFOUND = 8, /* campaign, task or file not found */
    HP_EAUTH = 9,     /* an endpoint refused the token (stale or missing) */
    HP_EUNAVAIL = 10, /* an endpoint is not running, not reachable, or full */
    HP_ETIMEOUT = 11, /* an endpoint call timed out */
    HP_ECRASHED = 12, /* an endpoint call's worker crashed (signal) */
    HP_EINTERNAL = 70 /* a bug */
};

struct hp_err {
    int code;             /* 0 when no error recorded */
    char msg[1024];
    char file[512];       /* "" when the error has no source file */
    int line, col;        /* 1-based; 0 when unknown */
    char pointer[512];    /* JSON pointer into the document, "" if none */
};

void hp_err_init(struct hp_err *e);
/* Record an error unless one is recorded already. Always returns -1. */
int hp_err_set(struct hp_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int hp_err_vset(struct hp_err *e, int code, const char *fmt, va_list ap);
/* As hp_err_set, with a source position and JSON pointer (either may be
 * NULL/0). */
int hp_err_at(struct hp_err *e, int code, const char *file, int line, int col,
              const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Record errno's text: "<what>: <strerror>". code is HP_ESYS. */
int hp_err_errno(struct hp_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepend "context: " to the message of a recorded error. */
void hp_err_prefix(struct hp_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Render as one line, GNU style:
 *   file:line:col: error: message (at /pointer)
 * without a trailing newline, into out (len bytes). */
void hp_err_format(const struct hp_err *e, char *out, unsigned long len);

#endif
