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
#include "multi.h"
#include "plan.h"
#include "quote.h"
#include "site.h"
#include "util.h"
#include "workflow.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport run WORKFLOW [--site NAME] [--campaign ID] [--set KEY=VALUE]... [--max-parallel N]\n"
    "                   [--state-dir DIR] [--dry-run] [--json]\n"
    "   or: hpcport run WORKFLOW --site A [--set KEY=VALUE]... --site B [--set KEY=VALUE]...\n"
    "                   [--failover SECONDS] [options]\n";

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
    "Given several sites, one campaign is spread over them: each job goes to\n"
    "the site with the most free slots (scheduler.max_queued_jobs minus the\n"
    "campaign's jobs there; equal shares where no limit is set), built for that\n"
    "site (its paths, partition, account). A site that stops answering for\n"
    "--failover seconds loses its unfinished jobs: they run again as new\n"
    "attempts on the other sites (a job already queued there may still run\n"
    "there; hpcport cancels it if the site answers again during the run). Every\n"
    "site's lint applies: a task that one of the sites cannot run stops the run\n"
    "(leave that site out). A rerun must name the same sites, in any order.\n"
    "\n"
    "Interrupting run (Ctrl-C, SIGTERM) stops submitting and exits with 130;\n"
    "running tasks go on and the next run picks up their results.\n"
    "\n"
    "options:\n"
    "    -s, --site NAME       site profile to run on (default: local); repeat to\n"
    "                          spread the campaign over several sites\n"
    "    --campaign ID         campaign id (default: the workflow's name); one\n"
    "                          campaign belongs to its site (or sites)\n"
    "    --set KEY=VALUE       override a site profile value, e.g. nodes.cores=2;\n"
    "                          before any --site: for every site, after one: for it\n"
    "    --failover SECONDS    several sites: how long a site may fail to answer\n"
    "                          before its jobs move to the others (default 60)\n"
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

/* One --site and the --set flags that follow it. */
struct run_site {
    const char *name;
    const char **own;       /* its own --set flags (borrowed) */
    size_t nown, aown;
    const char **sets;      /* the global ones, then its own: for the loader */
    struct hp_cli_plan cp;
};

struct run_args {
    struct run_site *sites;
    size_t nsites, asites;
    const char **global;    /* --set before any --site */
    size_t nglobal, aglobal;
};

static void run_args_release(struct run_args *a)
{
    for (size_t k = 0; k < a->nsites; k++) {
        free(a->sites[k].own);
        free(a->sites[k].sets);
        hp_cli_plan_release(&a->sites[k].cp);
    }
    free(a->sites);
    free(a->global);
}

static void add_set(struct run_args *a, const char *kv)
{
    if (!a->nsites) {
        HP_ALLOC_GROW(a->global, a->nglobal + 1, a->aglobal);
        a->global[a->nglobal++] = kv;
        return;
    }
    struct run_site *s = &a->sites[a->nsites - 1];
    HP_ALLOC_GROW(s->own, s->nown + 1, s->aown);
    s->own[s->nown++] = kv;
}

static void add_site(struct run_args *a, const char *name)
{
    HP_ALLOC_GROW(a->sites, a->nsites + 1, a->asites);
    memset(&a->sites[a->nsites], 0, sizeof(a->sites[0]));
    a->sites[a->nsites++].name = name;
}

/* --dry-run: 'hpcport plan' with the same workflow, sites, sets, campaign
 * and state directory (options first, so plan's parser sees them all; the
 * --set flags where they were, so each applies to the same sites). */
static int dry_run(const char *wf_path, const struct run_args *a, const char *campaign,
                   const char *state_dir, int json)
{
    size_t max = 2 * a->nglobal + 12;
    for (size_t k = 0; k < a->nsites; k++)
        max += 2 + 2 * a->sites[k].nown;
    char **pv = hp_xcalloc(max, sizeof(*pv));
    int n = 0;
    pv[n++] = (char *)"plan";
    for (size_t i = 0; i < a->nglobal; i++) {
        pv[n++] = (char *)"--set";
        pv[n++] = (char *)a->global[i];
    }
    for (size_t k = 0; k < a->nsites; k++) {
        pv[n++] = (char *)"--site";
        pv[n++] = (char *)a->sites[k].name;
        for (size_t i = 0; i < a->sites[k].nown; i++) {
            pv[n++] = (char *)"--set";
            pv[n++] = (char *)a->sites[k].own[i];
        }
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

static void on_site_event(void *ctx, const char *msg)
{
    on_event(ctx, hp_cli.quiet ? 1 : 0, msg);   /* a site lost or back: always said */
}

/* Every site's plan; -1 with err, or HP_E* (already printed) for lint
 * errors and bad usage. */
static int load_plans(struct run_args *a, const char *wf_path, const char *campaign,
                      const char *state_dir, struct hp_err *err)
{
    for (size_t k = 0; k < a->nsites; k++) {
        struct run_site *s = &a->sites[k];
        for (size_t j = 0; j < k; j++)
            if (!strcmp(a->sites[j].name, s->name))
                return hp_cli_usage_error(usage, "site '%s' is given twice; name each site "
                                          "once", s->name);
        if (a->nsites > 1 && !strcmp(s->name, "local"))
            return hp_cli_usage_error(usage, "the local site cannot be one of several sites of "
                                      "a run yet; run it on its own, or spread the campaign "
                                      "over remote sites only");
    }
    for (size_t k = 0; k < a->nsites; k++) {
        struct run_site *s = &a->sites[k];
        s->sets = hp_xcalloc(a->nglobal + s->nown + 1, sizeof(*s->sets));
        for (size_t i = 0; i < a->nglobal; i++)
            s->sets[i] = a->global[i];
        for (size_t i = 0; i < s->nown; i++)
            s->sets[a->nglobal + i] = s->own[i];
        if (hp_cli_plan_load(&s->cp, wf_path, s->name, s->sets, a->nglobal + s->nown, campaign,
                             state_dir, err) < 0) {
            if (a->nsites > 1 && s->cp.site)
                hp_err_prefix(err, "site '%s'", s->name);
            return -1;
        }
    }
    int rc = 0;
    for (size_t k = 0; k < a->nsites; k++) {
        const struct hp_plan *plan = a->sites[k].cp.plan;
        if (!plan->nerrors) {
            if (hp_cli.verbose)
                print_lints(plan, 0);
            continue;
        }
        print_lints(plan, 0);
        rc = hp_cli_fail(HP_ELINT, "the plan has %zu lint error%s on site '%s'; nothing was "
                         "run ('hpcport plan %s --site %s' shows them%s)", plan->nerrors,
                         plan->nerrors == 1 ? "" : "s", plan->site->name, plan->wf->doc->file,
                         plan->site->name, a->nsites > 1 ? "; leave the site out if it cannot "
                         "run the workflow" : "");
    }
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
        { "failover", required_argument, NULL, 'F' },
        { "dry-run", no_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *campaign = NULL, *state_dir = getenv("HPCPORT_STATE_DIR");
    struct run_args ra = { 0 };
    long max_parallel = 0;
    double failover = 0;
    int json = 0, dry = 0, c, rc = 0;
    struct hp_err err;
    const struct hp_workflow *wf;
    const struct hp_plan *plan;
    char *abs_wf = NULL, *label = NULL;
    const struct hp_plan **plans = NULL;
    void *mux = NULL;

    if (state_dir && !*state_dir)
        state_dir = NULL;
    hp_err_init(&err);
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': add_site(&ra, optarg); break;
        case 'S': add_set(&ra, optarg); break;
        case 'c': campaign = optarg; break;
        case 'd': state_dir = optarg; break;
        case 'p': {
            char *end;
            max_parallel = strtol(optarg, &end, 10);
            if (*end || end == optarg || max_parallel < 1) {
                run_args_release(&ra);
                return hp_cli_usage_error(usage, "--max-parallel wants a positive number, "
                                          "not '%s'", optarg);
            }
            break;
        }
        case 'F': {
            char *end;
            failover = strtod(optarg, &end);
            if (*end || end == optarg || !(failover > 0 && failover <= 86400 * 30)) {
                run_args_release(&ra);
                return hp_cli_usage_error(usage, "--failover wants a number of seconds "
                                          "above 0, not '%s'", optarg);
            }
            break;
        }
        case 'n': dry = 1; break;
        case 'j': json = 1; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            run_args_release(&ra);
            return 0;
        default:
            fputs(usage, stderr);
            run_args_release(&ra);
            return HP_EUSAGE;
        }
    }
    if (optind != argc - 1) {
        run_args_release(&ra);
        return hp_cli_usage_error(usage, optind >= argc ? "no workflow given"
                                                        : "more than one workflow given");
    }
    if (!ra.nsites)
        add_site(&ra, "local");
    if (failover > 0 && ra.nsites < 2) {
        run_args_release(&ra);
        return hp_cli_usage_error(usage, "--failover needs two --site options or more");
    }
    if (dry) {
        rc = dry_run(argv[optind], &ra, campaign, state_dir, json);
        run_args_release(&ra);
        return rc;
    }
    const char *wf_path = argv[optind];
    abs_wf = realpath(wf_path, NULL);

    rc = load_plans(&ra, wf_path, campaign, state_dir, &err);
    if (rc < 0)
        goto fail;
    if (rc > 0)
        goto out;
    wf = ra.sites[0].cp.wf;
    plan = ra.sites[0].cp.plan;
    {
        struct hp_buf lb = HP_BUF_INIT;
        for (size_t k = 0; k < ra.nsites; k++)
            hp_buf_addf(&lb, "%s%s", k ? "," : "", ra.sites[k].name);
        label = hp_buf_detach(&lb, NULL);
    }

    struct run_ui ui = { .progress_line = isatty(STDERR_FILENO) && !hp_cli.quiet && !json };
    if (ra.nsites > 1) {
        plans = hp_xcalloc(ra.nsites, sizeof(*plans));
        for (size_t k = 0; k < ra.nsites; k++)
            plans[k] = ra.sites[k].cp.plan;
        struct hp_multi_opts mo = { .failover = failover, .event = on_site_event, .ctx = &ui };
        if (!(mux = hp_multi_new(plans, ra.nsites, &mo, &err)))
            goto fail;
    }
    struct hp_campaign_opts co = {
        .state_dir = state_dir,
        .workflow_path = abs_wf ? abs_wf : wf_path,
        .max_parallel = max_parallel,
        .stop = &stop_flag,
        .progress = on_progress,
        .event = on_event,
        .ctx = &ui,
        .adapter = mux ? &hp_adapter_multi : NULL,
        .adapter_impl = mux,
        .site_label = label,
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
        hp_cli_log(1, "running campaign '%s' (%zu instances) on site%s '%s'; state in %s%s%s",
                   plan->campaign, wf->ninst, mux ? "s" : "", label, local,
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
            "campaign", plan->campaign, "site", label, "dir", plan->dir,
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
        printf("campaign '%s' on site%s '%s': %zu of %zu completed", plan->campaign,
               mux ? "s" : "", label, p->count[HP_IS_COMPLETED], p->total);
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
    hp_multi_free(mux);
    free(plans);
    run_args_release(&ra);
    free(label);
    free(abs_wf);
    return rc;
}
