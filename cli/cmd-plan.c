/* cmd-plan.c - hpcport plan: the job scripts a run would submit, and the lint. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"
#include "doc.h"
#include "plan.h"
#include "site.h"
#include "util.h"
#include "workflow.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport plan WORKFLOW [--site NAME] [--set KEY=VALUE]... [--campaign ID]\n"
    "                    [--all | --lint] [--json]\n";

static const char help[] =
    "\n"
    "Show what 'hpcport run' would submit: the job script of each task instance\n"
    "rendered for the site's scheduler, and a portability lint naming what will\n"
    "not work on that site (walltime over a limit, GPUs on a site without them,\n"
    "network access from closed compute nodes, paths outside the site's\n"
    "filesystems, a missing account...). Nothing is submitted.\n"
    "\n"
    "options:\n"
    "    -s, --site NAME       site profile to plan for (default: local)\n"
    "    --set KEY=VALUE       override a site profile value, e.g. scheduler.account=m1\n"
    "    --campaign ID         campaign id (default: the workflow's name)\n"
    "    --all                 print every instance's script (default: the first\n"
    "                          instance of each task)\n"
    "    --lint                print only the lint\n"
    "    --json                print {campaign, site, jobs[], lint[]} as JSON\n"
    "    --state-dir DIR       where local campaigns keep their files\n"
    "    -h, --help            show this help\n"
    "\n"
    "exit status: 0 no lint errors (warnings allowed), 5 lint errors, 3 invalid\n"
    "workflow, 4 site problem, 2 usage error.\n";

int cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {
        { "site", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },
        { "campaign", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 'd' },
        { "all", no_argument, NULL, 'a' },
        { "lint", no_argument, NULL, 'l' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *site_name = "local", *campaign = NULL, *state_dir = getenv("HPCPORT_STATE_DIR");
    const char **sets = hp_xcalloc((size_t)argc + 1, sizeof(*sets));
    size_t nsets = 0;
    int all = 0, lint_only = 0, json = 0, c, rc = 0;
    struct hp_err err;
    struct hp_cli_plan cp = { 0 };
    struct hp_buf out = HP_BUF_INIT;

    hp_err_init(&err);
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': site_name = optarg; break;
        case 'S': sets[nsets++] = optarg; break;
        case 'c': campaign = optarg; break;
        case 'd': state_dir = optarg; break;
        case 'a': all = 1; break;
        case 'l': lint_only = 1; break;
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
    if (hp_cli_plan_load(&cp, argv[optind], site_name, sets, nsets, campaign, state_dir,
                         &err) < 0)
        goto fail;
    const struct hp_workflow *wf = cp.wf;
    const struct hp_site *site = cp.site;
    const struct hp_plan *plan = cp.plan;

    json_t *jobs = json ? json_array() : NULL;
    size_t shown = 0;
    if (!json)
        hp_buf_addf(&out, "# plan: campaign '%s' on site '%s' (%s): %zu task%s, %zu job%s\n",
                    plan->campaign, site->name, site->scheduler, wf->ntasks,
                    wf->ntasks == 1 ? "" : "s", wf->ninst, wf->ninst == 1 ? "" : "s");
    for (size_t t = 0; !lint_only && t < wf->ntasks; t++) {
        const struct hp_task *task = &wf->tasks[t];
        size_t n = all || json ? task->count : (task->count ? 1 : 0);
        for (size_t k = 0; k < n; k++) {
            size_t i = task->first + k;
            struct hp_jobspec spec;
            struct hp_spec_store st;
            struct hp_buf script = HP_BUF_INIT;
            hp_plan_spec(plan, i, 1, &spec, &st);
            if (plan->adapter->render(&spec, site, &script, &err) < 0) {
                hp_spec_store_release(&st);
                hp_buf_release(&script);
                json_decref(jobs);
                goto fail;
            }
            if (jobs) {
                json_array_append_new(jobs, json_pack("{s:s, s:s, s:s?, s:I, s:s}",
                    "instance", wf->inst[i].id, "task", task->name,
                    "partition", plan->partition[i], "walltime", (json_int_t)plan->walltime[i],
                    "script", script.buf));
            } else {
                hp_buf_addf(&out, "\n# --- job %zu of %zu: %s\n", i + 1, wf->ninst,
                            wf->inst[i].id);
                hp_buf_add(&out, script.buf, script.len);
                shown++;
            }
            hp_spec_store_release(&st);
            hp_buf_release(&script);
            if (out.len > (1u << 20)) {
                fwrite(out.buf, 1, out.len, stdout);
                hp_buf_reset(&out);
            }
        }
    }
    if (!json && !lint_only && shown < wf->ninst)
        hp_buf_addf(&out, "\n# %zu more job%s not shown; --all prints every script\n",
                    wf->ninst - shown, wf->ninst - shown == 1 ? "" : "s");
    if (json) {
        json_t *lints = json_array();
        for (size_t i = 0; i < plan->nlints; i++) {
            const struct hp_lint *l = &plan->lints[i];
            struct hp_pos pos = { 0, 0 };
            if (l->pointer)
                hp_doc_pos(wf->doc, l->pointer, 0, &pos);
            json_array_append_new(lints, json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s?, s:i, s:i}",
                "level", l->level == HP_LINT_ERROR ? "error" : "warning", "rule", l->rule,
                "task", l->task, "message", l->message, "site_origin", l->site_origin,
                "pointer", l->pointer, "line", pos.line, "column", pos.col));
        }
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:I}",
            "campaign", plan->campaign, "site", site->name, "scheduler", site->scheduler,
            "workflow", wf->doc->file, "jobs_total", (json_int_t)wf->ninst,
            "jobs", jobs ? jobs : json_array(), "lint", lints,
            "lint_errors", (json_int_t)plan->nerrors);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        if (plan->nlints) {
            hp_buf_addf(&out, "\n# lint: %zu error%s, %zu warning%s\n", plan->nerrors,
                        plan->nerrors == 1 ? "" : "s", plan->nlints - plan->nerrors,
                        plan->nlints - plan->nerrors == 1 ? "" : "s");
            for (size_t i = 0; i < plan->nlints; i++)
                hp_cli_lint_line(plan, &plan->lints[i], &out);
        } else {
            hp_buf_adds(&out, "\n# lint: no problems found\n");
        }
        fwrite(out.buf, 1, out.len, stdout);
    }
    rc = plan->nerrors ? HP_ELINT : 0;
    goto out;
fail:
    rc = hp_cli_error(&err);
out:
    hp_buf_release(&out);
    hp_cli_plan_release(&cp);
    free(sets);
    return rc;
}
