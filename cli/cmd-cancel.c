/* cmd-cancel.c - hpcport cancel: cancel a campaign or some of its tasks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "campaign.h"
#include "cli.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport cancel CAMPAIGN [INSTANCE|TASK]... [--set KEY=VALUE]...\n"
    "                      [--state-dir DIR] [--json]\n";

static const char help[] =
    "\n"
    "Mark task instances canceled: all unfinished instances of the campaign, or\n"
    "those named (an instance id, or a task name for all its instances).\n"
    "Running jobs are stopped (SIGTERM, SIGKILL 5 s later on the local site;\n"
    "scancel, qdel... on a batch site): by the 'hpcport run' working on the\n"
    "campaign, which notices within a second, or by this command when none\n"
    "runs. It then reaches the campaign's site as 'hpcport run' did (the same\n"
    "profile, found beside the workflow the campaign recorded; give the same\n"
    "--set options) and stops the jobs before it marks anything: when the site\n"
    "cannot be reached nothing is canceled. Instances that depend on a\n"
    "canceled one are canceled by the engine. Completed instances stay\n"
    "completed. A later 'hpcport run' runs canceled instances again.\n"
    "\n"
    "options:\n"
    "    --set KEY=VALUE       override a site profile value, as for 'run'\n"
    "    --workflow FILE       find site profiles beside FILE (default: the\n"
    "                          workflow the campaign was run from)\n"
    "    --dir DIR             find site profiles in DIR/sites\n"
    "    --state-dir DIR       campaign state directory (default:\n"
    "                          $HPCPORT_STATE_DIR, else $XDG_STATE_HOME/hpcport)\n"
    "    --json                print {campaign, marked, signaled, unstopped,\n"
    "                          engine_pid}\n"
    "    -h, --help            show this help\n"
    "\n"
    "exit status: 0 success, 2 usage error, 4 the site could not be reached,\n"
    "7 state error, 8 no such campaign, instance or task.\n";

/* The campaign's site, as 'run' resolved it: recorded name, profiles beside
 * the recorded workflow unless --workflow/--dir say otherwise. */
static struct hp_site *load_site(const char *name, const char *workflow_path, void *arg,
                                 struct hp_err *err)
{
    struct hp_cli_siteargs sa = *(const struct hp_cli_siteargs *)arg;
    if (!sa.workflow && !sa.dir)
        sa.workflow = workflow_path;
    return hp_cli_site(name, &sa, err);
}

int cmd_cancel(int argc, char **argv)
{
    static const struct option opts[] = {
        { "state-dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        HP_CLI_SITE_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    const char *state_dir = getenv("HPCPORT_STATE_DIR");
    int json = 0, c;
    if (state_dir && !*state_dir)
        state_dir = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'd': state_dir = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return HP_EUSAGE;
        }
    }
    if (optind >= argc)
        return hp_cli_usage_error(usage, "no campaign given");
    const char *id = argv[optind];
    const char *const *names = NULL;
    size_t nnames = (size_t)(argc - optind - 1);
    if (nnames)
        names = (const char *const *)&argv[optind + 1];

    struct hp_err err;
    struct hp_cancel_result res;
    hp_err_init(&err);
    int rc = hp_campaign_cancel(state_dir, id, names, nnames, load_site, &sa, &res, &err);
    hp_cli_siteargs_release(&sa);
    if (rc < 0)
        return hp_cli_error(&err);
    if (res.unstopped)
        hp_cli_warn("%zu job%s could not be canceled (%s)", res.unstopped,
                    res.unstopped == 1 ? "" : "s", res.first_refusal);
    if (json) {
        json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:I}", "campaign", id,
                                "marked", (json_int_t)res.marked,
                                "signaled", (json_int_t)res.signaled,
                                "unstopped", (json_int_t)res.unstopped,
                                "engine_pid", (json_int_t)res.engine);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return 0;
    }
    if (!res.marked) {
        printf("nothing to cancel in campaign '%s': the instances named have finished\n", id);
        return 0;
    }
    printf("canceled %zu instance%s of campaign '%s'", res.marked, res.marked == 1 ? "" : "s", id);
    if (res.engine)
        printf("; the running hpcport (pid %d) stops their jobs\n", (int)res.engine);
    else if (res.signaled)
        printf("; stopped %zu running job%s\n", res.signaled, res.signaled == 1 ? "" : "s");
    else
        printf("\n");
    return 0;
}
