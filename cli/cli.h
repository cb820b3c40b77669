/* cli.h - shared by the subcommands in cli/. Only cli/ prints and exits. */
#ifndef HP_CLI_H
#define HP_CLI_H

#include <stdio.h>
#include "err.h"

struct hp_cli {
    int verbose;        /* -v count */
    int quiet;          /* -q */
    int color;          /* stderr/stdout may use colour (TTY and no NO_COLOR) */
    int tty;            /* stdout is a terminal */
};

extern struct hp_cli hp_cli;

typedef int (*hp_cmd_fn)(int argc, char **argv);

/* Each subcommand: argv[0] is the subcommand name. Returns the exit status. */
int cmd_cancel(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_site(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Print err as one GNU-style line on stderr; returns err->code (or 1). */
int hp_cli_error(const struct hp_err *err);
/* printf-style error without a position: "hpcport: error: ..."; returns code. */
int hp_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Warning line on stderr unless -q. */
void hp_cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Verbose log on stderr when -v given at least level times. */
void hp_cli_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage text for a bad command line and return HP_EUSAGE. */
int hp_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* True if the argument is -h or --help. */
int hp_cli_is_help(const char *arg);

#endif
