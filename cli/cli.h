/* cli.h - shared by the subcommands in cli/. Only cli/ prints and exits. */
#ifndef HP_CLI_H
#define HP_CLI_H

#include <stdio.h>
#include "err.h"
#include "buf.h"
#include "plan.h"
#include "site.h"
#include "workflow.h"

struct hp_cli {
    int verbose;        /* -v count */
    int quiet;          /* -q */
    int color;          /* stderr/stdout may use colour (TTY and no NO_COLOR) */
    int tty;            /* stdout is a terminal */
};

extern struct hp_cli hp_cli;

typedef int (*hp_cmd_fn)(int argc, char **argv);

/* Each subcommand: argv[0] is the subcommand name. Returns the exit status. */
int cmd_adapters(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_auth(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_disconnect(int argc, char **argv);
int cmd_endpoint(int argc, char **argv);
/* cmd-endpoint-serve.c: `hpcport endpoint serve` (cmd_endpoint dispatches to
 * it) and the hidden `hpcport endpoint-worker` the endpoint's workers run */
int cmd_endpoint_serve(int argc, char **argv);
int cmd_endpoint_worker(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_pilot(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_site(int argc, char **argv);
int cmd_sites(int argc, char **argv);
int cmd_ssh(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_tunnel(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* cmd-connect.c: register the terminal ui for authentication prompts
 * (passphrases, one-time codes, host key questions read from /dev/tty). */
void hp_cli_auth_init(void);
/* Resolve site NAME (or a profile FILE) with the --workflow/--dir/--set
 * options most commands take (workflow and dir may be NULL). */
struct hp_site;
/* --set KEY=VALUE, --workflow FILE and --dir DIR: how commands that reach a
 * site name and adjust its profile. Put HP_CLI_SITE_OPTIONS in the getopt
 * table and offer each option to hp_cli_siteargs_opt() first. */
enum { HP_OPT_SET = 1000, HP_OPT_WORKFLOW, HP_OPT_DIR };
#define HP_CLI_SITE_OPTIONS                                  \
    { "set", required_argument, NULL, HP_OPT_SET },           \
    { "workflow", required_argument, NULL, HP_OPT_WORKFLOW }, \
    { "dir", required_argument, NULL, HP_OPT_DIR }
struct hp_cli_siteargs {
    const char *workflow, *dir;   /* borrowed from argv */
    const char **sets;            /* borrowed strings, owned array */
    size_t nsets, alloc;
};
/* 1 if c was one of the site options (recorded), else 0. */
int hp_cli_siteargs_opt(struct hp_cli_siteargs *a, int c, const char *arg);
void hp_cli_siteargs_release(struct hp_cli_siteargs *a);
struct hp_site *hp_cli_site(const char *name, const struct hp_cli_siteargs *sa,
                            struct hp_err *err);

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

/* The workflow, site and plan a command line names. */
struct hp_cli_plan {
    struct hp_workflow *wf;
    struct hp_site *site;
    struct hp_plan *plan;
};
/* Load the workflow, expand it for the site, resolve the site with the
 * workflow's directory and --set flags, and build the plan. On failure the
 * parts built so far stay in cp (release them with hp_cli_plan_release). */
int hp_cli_plan_load(struct hp_cli_plan *cp, const char *wf_path, const char *site_name,
                     const char *const *sets, size_t nsets, const char *campaign,
                     const char *state_dir, struct hp_err *err);
void hp_cli_plan_release(struct hp_cli_plan *cp);
/* One lint as a GNU-style line: workflow:line:col: level: message [rule]
 * (site rule at origin). */
void hp_cli_lint_line(const struct hp_plan *p, const struct hp_lint *l, struct hp_buf *out);

#endif
