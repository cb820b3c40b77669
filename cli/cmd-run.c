/* cmd-run.c - hpcport run: run (or resume) a campaign on a site. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "campaign.h"
#include "cli.h"
#include "doc.h"
#include "plan.h"
#include "quote.h"
#include "site.h"
#include "util.h"
#include "workflow.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport run WORKFLOW [--site NAME] [--campaign ID] [--set KEY=VALUE]... [--max-parallel N]\n"
    "                   [--state-dir DIR] [--dry-run] [--json]\n";

static const char help[] =
    "\n"
    "Run the workflow's task instances on a site, in dependency order, and keep\n"
    "the campaign's state so that running it again resumes it: completed\n"
    "instances are never run again, jobs still running from an earlier run\n"
    "(also one that was killed) are followed, and instances that failed or were\n"
    "canceled get a new try with a fresh retry budget.\n"
    "\n"
    "On the local site every instance runs as a process on this machine, never\n"
    "using more cores (ntasks x cores) than the site has; the walltime is\n"
    "enforced (SIGTERM, SIGKILL 5 s later); stdout and stderr are kept per\n"
    "attempt ('hpcport logs'). Arguments reach the task exactly as written in\n"
    "the workflow; no shell is involved unless the task says 'shell:'.\n"
    "\n"
    "Interrupting run (Ctrl-C, SIGTERM) stops submitting and exits with 130;\n"
    "running tasks go on and the next run picks up their results.\n"
    "\n"
    "options:\n"
    "    -s, --site NAME       site profile to run on (default: local)\n"
    "    --campaign ID         campaign id (default: the workflow's name); one\n"
    "                          campaign belongs to one site\n"
    "    --set KEY=VALUE       override a site profile value, e.g. nodes.cores=2\n"
    "    --max-parallel N      run at most N jobs at once\n"
    "    --state-dir DIR       campaign state directory (default:\n"
    "                          $HPCPORT_STATE_DIR, else $XDG_STATE_HOME/hpcport)\n"
    "    --dry-run             print what would run ('hpcport plan') and stop\n"
    "    --json                print the summary as JSON\n"
    "    -h, --help            show this help\n"
    "\n"
    "A progress line is shown on a terminal; -v logs every submission and result.\n"
    "\n"
    "exit status: 0 every instance completed, 1 some failed or were canceled,\n"
    "2 usage error, 3 invalid workflow, 4 site problem, 5 lint errors, 7 state\n"
    "error (e.g. the campaign belongs to another site), 130 interrupted.\n";

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct run_ui {
    int progress_line;     /* stderr is a terminal and not -q */
    int shown;
};

static void on_progress(void *ctx, const struct hp_campaign_progress *p)
{
    struct run_ui *ui = ctx;
    if (!ui->progress_line)
        return;
    size_t failed = p->count[HP_IS_FAILED] + p->count[HP_IS_CANCELED];
    fprintf(stderr, "\r\033[K%zu/%zu done, %zu running", p->count[HP_IS_COMPLETED], p->total,
            p->count[HP_IS_ACTIVE]);
    if (p->count[HP_IS_QUEUED])
        fprintf(stderr, ", %zu queued", p->count[HP_IS_QUEUED]);
    fprintf(stderr, ", %zu failed  %.1f/s  %.0fs", failed, p->rate, p->elapsed);
    fflush(stderr);
    ui->shown = 1;
}

static void on_event(void *ctx, int level, const char *msg)
{
    struct run_ui *ui = ctx;
    if (hp_cli.verbose < level)
        return;
    if (ui->shown) {
        fputs("\r\033[K", stderr);
        ui->shown = 0;
    }
    hp_cli_log(level, "%s", msg);
}

static void print_lints(const struct hp_plan *p, int errors_only)
{
    struct hp_buf b = HP_BUF_INIT;
    for (size_t i = 0; i < p->nlints; i++) {
        const struct hp_lint *l = &p->lints[i];
        if ((errors_only || hp_cli.quiet) && l->level != HP_LINT_ERROR)
            continue;
        hp_cli_lint_line(p, l, &b);
    }
    fputs(b.buf, stderr);
    hp_buf_release(&b);
}

struct failed_list {
    json_t *arr;          /* JSON mode */
    size_t shown, total;
    const char *campaign;
};

static int on_failed(void *ctx, const struct hp_inst_row *r)
{
    struct failed_list *f = ctx;
    f->total++;
    if (f->arr) {
        json_array_append_new(f->arr, json_pack("{s:s, s:s, s:s?, s:i}", "id", r->id,
            "state", hp_istate_name(r->state), "reason", r->reason, "attempts", r->attempts));
        return 0;
    }
    if (f->shown < 10) {
        printf("  %s %s: %s\n", hp_istate_name(r->state), r->id, r->reason ? r->reason : "");
        f->shown++;
    }
    return 0;
}

/* Resume hint: the same command line, quoted for a shell. */
static void resume_hint(int argc, char **argv)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, "hpcport");
    for (int i = 0; i < argc; i++) {
        hp_buf_addch(&b, ' ');
        hp_sq_quote_pretty(&b, argv[i]);
    }
    fprintf(stderr, "hpcport: interrupted; running tasks go on. Resume with: %s\n", b.buf);
    hp_buf_release(&b);
}

/* --dry-run: 'hpcport plan' with the same workflow, site, sets, campaign and
 * state directory (options first, so plan's parser sees them all). */
static int dry_run(const char *wf_path, const char *site, const char **sets, size_t nsets,
                   const char *campaign, const char *state_dir, int json)
{
    char **pv = hp_xcalloc(2 * nsets + 12, sizeof(*pv));
    int n = 0;
    pv[n++] = (char *)"plan";
    pv[n++] = (char *)"--site";
    pv[n++] = (char *)site;
    for (size_t i = 0; i < nsets; i++) {
        pv[n++] = (char *)"--set";
        pv[n++] = (char *)sets[i];
    }
    if (campaign) {
        pv[n++] = (char *)"--campaign";
        pv[n++] = (char *)campaign;
    }
    if (state_dir) {
        pv[n++] = (char *)"--state-dir";
        pv[n++] = (char *)state_dir;
    }
    if (json)
        pv[n++] = (char *)"--json";
    pv[n++] = (char *)wf_path;
    pv[n] = NULL;
    int rc = cmd_plan(n, pv);
    free(pv);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "site", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },
        { "campaign", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 'd' },
        { "max-parallel", required_argument, NULL, 'p' },
        { "dry-run", no_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *site_name = "local", *campaign = NULL, *state_dir = getenv("HPCPORT_STATE_DIR");
    const char **sets = hp_xcalloc((size_t)argc + 1, sizeof(*sets));
    size_t nsets = 0;
    long max_parallel = 0;
    int json = 0, dry = 0, c, rc = 0;
    struct hp_err err;
    struct hp_cli_plan cp = { 0 };
    struct hp_workflow *wf;
    struct hp_site *site;
    struct hp_plan *plan;
    char *abs_wf = NULL;

    if (state_dir && !*state_dir)
        state_dir = NULL;
    hp_err_init(&err);
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': site_name = optarg; break;
        case 'S': sets[nsets++] = optarg; break;
        case 'c': campaign = optarg; break;
        case 'd': state_dir = optarg; break;
        case 'p': {
            char *end;
            max_parallel = strtol(optarg, &end, 10);
            if (*end || end == optarg || max_parallel < 1) {
                free(sets);
                return hp_cli_usage_error(usage, "--max-parallel wants a positive number, "
                                          "not '%s'", optarg);
            }
            break;
        }
        case 'n': dry = 1; break;
        case 'j': json = 1; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            free(sets);
            return 0;
        default:
            fputs(usage, stderr);
            free(sets);
            return HP_EUSAGE;
        }
    }
    if (optind != argc - 1) {
        free(sets);
        return hp_cli_usage_error(usage, optind >= argc ? "no workflow given"
                                                        : "more than one workflow given");
    }
    if (dry) {
        rc = dry_run(argv[optind], site_name, sets, nsets, campaign, state_dir, json);
        free(sets);
        return rc;
    }
    const char *wf_path = argv[optind];
    abs_wf = realpath(wf_path, NULL);

    if (hp_cli_plan_load(&cp, wf_path, site_name, sets, nsets, campaign, state_dir, &err) < 0)
        goto fail;
    wf = cp.wf;
    site = cp.site;
    plan = cp.plan;
    if (plan->nerrors) {
        print_lints(plan, 0);
        rc = hp_cli_fail(HP_ELINT, "the plan has %zu lint error%s; nothing was run ('hpcport "
                         "plan %s --site %s' shows them)", plan->nerrors,
                         plan->nerrors == 1 ? "" : "s", wf_path, site->name);
        goto out;
    }
    if (hp_cli.verbose)
        print_lints(plan, 0);

    struct run_ui ui = { .progress_line = isatty(STDERR_FILENO) && !hp_cli.quiet && !json };
    struct hp_campaign_opts co = {
        .state_dir = state_dir,
        .workflow_path = abs_wf ? abs_wf : wf_path,
        .max_parallel = max_parallel,
        .stop = &stop_flag,
        .progress = on_progress,
        .event = on_event,
        .ctx = &ui,
    };
    struct sigaction sa, old_int, old_term, old_hup;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    if (hp_cli.verbose) {
        char *local = hp_campaign_dir(state_dir, plan->campaign);
        hp_cli_log(1, "running campaign '%s' (%zu instances) on site '%s'; state in %s%s%s",
                   plan->campaign, wf->ninst, site->name, local,
                   plan->remote_workdir ? ", files on the site in " : "",
                   plan->remote_workdir ? plan->dir : "");
        free(local);
    }

    struct hp_campaign_summary sum;
    int r = hp_campaign_run(plan, &co, &sum, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (ui.shown)
        fputs("\r\033[K", stderr);
    if (r < 0)
        goto fail;

    const struct hp_campaign_progress *p = &sum.p;
    size_t bad = p->count[HP_IS_FAILED] + p->count[HP_IS_CANCELED];
    struct failed_list fl = { .campaign = plan->campaign };
    if (json) {
        fl.arr = json_array();
        if (bad) {
            struct hp_state *st = hp_campaign_open(state_dir, plan->campaign, NULL, &err);
            if (st) {
                hp_state_each_instance(st, HP_IS_FAILED, on_failed, &fl, &err);
                hp_state_each_instance(st, HP_IS_CANCELED, on_failed, &fl, &err);
                hp_state_close(st);
            }
            hp_err_init(&err);
        }
        const char *status = sum.interrupted ? "interrupted" : bad ? "failed" : "completed";
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                                "s:I, s:f, s:f, s:b, s:o}",
            "campaign", plan->campaign, "site", site->name, "dir", plan->dir,
            "status", status, "total", (json_int_t)p->total,
            "completed", (json_int_t)p->count[HP_IS_COMPLETED],
            "failed", (json_int_t)p->count[HP_IS_FAILED],
            "canceled", (json_int_t)p->count[HP_IS_CANCELED],
            "running", (json_int_t)(p->count[HP_IS_QUEUED] + p->count[HP_IS_ACTIVE]),
            "pending", (json_int_t)p->count[HP_IS_NEW],
            "submitted", (json_int_t)p->submitted, "ran", (json_int_t)p->ran,
            "adopted", (json_int_t)p->adopted, "elapsed", p->elapsed, "rate", p->rate,
            "interrupted", sum.interrupted, "problems", fl.arr);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else if (!hp_cli.quiet || bad) {
        printf("campaign '%s' on site '%s': %zu of %zu completed", plan->campaign, site->name,
               p->count[HP_IS_COMPLETED], p->total);
        if (p->count[HP_IS_FAILED])
            printf(", %zu failed", p->count[HP_IS_FAILED]);
        if (p->count[HP_IS_CANCELED])
            printf(", %zu canceled", p->count[HP_IS_CANCELED]);
        if (sum.interrupted && p->count[HP_IS_QUEUED] + p->count[HP_IS_ACTIVE])
            printf(", %zu still running", p->count[HP_IS_QUEUED] + p->count[HP_IS_ACTIVE]);
        printf(" (%zu run now in %.1f s", p->ran, p->elapsed);
        if (p->ran && p->elapsed > 0)
            printf(", %.0f/s", p->rate);
        printf(")\n");
        if (bad && !sum.interrupted) {
            struct hp_state *st = hp_campaign_open(state_dir, plan->campaign, NULL, &err);
            if (st) {
                hp_state_each_instance(st, HP_IS_FAILED, on_failed, &fl, &err);
                hp_state_each_instance(st, HP_IS_CANCELED, on_failed, &fl, &err);
                hp_state_close(st);
            }
            hp_err_init(&err);
            if (fl.total > fl.shown)
                printf("  ... and %zu more\n", fl.total - fl.shown);
            printf("see 'hpcport status %s --tasks' and 'hpcport logs %s INSTANCE'\n",
                   plan->campaign, plan->campaign);
        }
    }
    if (sum.interrupted) {
        resume_hint(argc, argv);
        rc = 130;
    } else {
        rc = bad ? HP_EFAIL : 0;
    }
    goto out;
fail:
    rc = hp_cli_error(&err);
out:
    hp_cli_plan_release(&cp);
    free(abs_wf);
    free(sets);
    return rc;
}
