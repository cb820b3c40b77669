/* cmd-logs.c - hpcport logs: the kept stdout/stderr of a task instance. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "campaign.h"
#include "cli.h"
#include "plan.h"
#include "util.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport logs CAMPAIGN INSTANCE [--attempt N] [--stderr|--both]\n"
    "                    [--state-dir DIR]\n";

static const char help[] =
    "\n"
    "Print the standard output kept for a task instance (by default of its\n"
    "latest attempt). INSTANCE is an instance id as 'hpcport status CAMPAIGN\n"
    "--tasks' prints it, or a task name when the task has one instance.\n"
    "\n"
    "options:\n"
    "    --attempt N           show attempt N (1 is the first)\n"
    "    --stderr              print standard error instead\n"
    "    --both                print both, each under a header line\n"
    "    --state-dir DIR       campaign state directory (default:\n"
    "                          $HPCPORT_STATE_DIR, else $XDG_STATE_HOME/hpcport)\n"
    "    -h, --help            show this help\n"
    "\n"
    "exit status: 0 success, 2 usage error, 6 unreadable file, 8 no such\n"
    "campaign, instance, attempt or output.\n";

static int copy_file(const char *path, int *missing)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *missing = 0;
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = 1;
            return 0;
        }
        return hp_cli_fail(HP_ESYS, "cannot read %s: %s", path, strerror(errno));
    }
    char buf[65536];
    ssize_t n;
    fflush(stdout);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            close(fd);
            return HP_ESYS;
        }
    }
    int e = errno;
    close(fd);
    if (n < 0)
        return hp_cli_fail(HP_ESYS, "cannot read %s: %s", path, strerror(e));
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    static const struct option opts[] = {
        { "attempt", required_argument, NULL, 'a' },
        { "stderr", no_argument, NULL, 'e' },
        { "both", no_argument, NULL, 'b' },
        { "state-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *state_dir = getenv("HPCPORT_STATE_DIR");
    int attempt = 0, want_out = 1, want_err = 0, c, rc = 0;
    if (state_dir && !*state_dir)
        state_dir = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1000000)
                return hp_cli_usage_error(usage, "--attempt wants a number from 1, not '%s'",
                                          optarg);
            attempt = (int)v;
            break;
        }
        case 'e': want_out = 0; want_err = 1; break;
        case 'b': want_out = 1; want_err = 1; break;
        case 'd': state_dir = optarg; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return HP_EUSAGE;
        }
    }
    if (argc - optind != 2)
        return hp_cli_usage_error(usage, argc - optind < 2 ? "need a campaign and an instance"
                                                           : "too many arguments");
    const char *id = argv[optind], *name = argv[optind + 1];
    struct hp_err err;
    char *dir = NULL;
    struct hp_inst_row row;
    struct hp_attempt_row *att = NULL;
    size_t natt = 0;
    char *out_path = NULL, *err_path = NULL;
    memset(&row, 0, sizeof(row));
    hp_err_init(&err);
    struct hp_state *st = hp_campaign_open(state_dir, id, &dir, &err);
    if (!st)
        return hp_cli_error(&err);
    if (hp_campaign_find_instance(st, name, &row, &err) < 0 ||
        hp_state_get_attempts(st, row.id, &att, &natt, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    int last = row.attempts;
    for (size_t k = 0; k < natt; k++)
        if (att[k].attempt > last)
            last = att[k].attempt;
    if (!last) {
        rc = hp_cli_fail(HP_ENOTFOUND, "instance '%s' of campaign '%s' has not run yet (%s)",
                         row.id, id, hp_istate_name(row.state));
        goto out;
    }
    if (!attempt)
        attempt = last;
    if (attempt > last) {
        rc = hp_cli_fail(HP_ENOTFOUND, "instance '%s' has %d attempt%s; there is no attempt %d",
                         row.id, last, last == 1 ? "" : "s", attempt);
        goto out;
    }
    for (size_t k = 0; k < natt; k++) {
        if (att[k].attempt == attempt) {
            out_path = att[k].stdout_path ? hp_xstrdup(att[k].stdout_path) : NULL;
            err_path = att[k].stderr_path ? hp_xstrdup(att[k].stderr_path) : NULL;
        }
    }
    if (!out_path || !err_path) {
        /* Not recorded (yet): the layout of plan.h. */
        if (!out_path)
            out_path = hp_plan_logfile(dir, row.id, attempt, "out");
        if (!err_path)
            err_path = hp_plan_logfile(dir, row.id, attempt, "err");
    }
    int missing = 0, found = 0;
    if (want_out) {
        if (want_err)
            printf("==> stdout of %s, attempt %d <==\n", row.id, attempt);
        if ((rc = copy_file(out_path, &missing)))
            goto out;
        found += !missing;
    }
    if (want_err) {
        if (want_out)
            printf("%s==> stderr of %s, attempt %d <==\n", found ? "\n" : "", row.id, attempt);
        if ((rc = copy_file(err_path, &missing)))
            goto out;
        found += !missing;
    }
    if (!found)
        rc = hp_cli_fail(HP_ENOTFOUND, "no output kept for '%s' attempt %d (looked for %s)",
                         row.id, attempt, want_out ? out_path : err_path);
out:
    free(out_path);
    free(err_path);
    hp_attempt_rows_free(att, natt);
    hp_inst_row_release(&row);
    hp_state_close(st);
    free(dir);
    return rc;
}
