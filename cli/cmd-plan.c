/* cmd-plan.c - hpcport plan: the job scripts a run would submit, and the lint;
 * with several --site options, the scripts of each site compared with the
 * first site's, side by side (like `diff -y`) or as unified diffs, so that a
 * user sees what changes when a campaign moves.
 *
 * --set flags given before any --site apply to every site; after a --site,
 * to that site only (so one profile can be compared with itself changed).
 * Each site gets its own expansion of the workflow (tasks may have per-site
 * overrides), and instances are paired by id: one that only one site has is
 * compared with nothing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <jansson.h>
#include "cli.h"
#include "diff.h"
#include "doc.h"
#include "plan.h"
#include "site.h"
#include "util.h"
#include "workflow.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport plan WORKFLOW [--site NAME] [--set KEY=VALUE]... [--campaign ID]\n"
    "                    [--all | --lint] [--json] [--state-dir DIR]\n"
    "   or: hpcport plan WORKFLOW --site A [--set KEY=VALUE]... --site B [--set KEY=VALUE]...\n"
    "                    [--diff [-U N] | --width N] [--all | --lint] [--json]\n";

static const char help[] =
    "\n"
    "Show what 'hpcport run' would submit: the job script of each task instance\n"
    "rendered for the site's scheduler, and a portability lint naming what will\n"
    "not work on that site (walltime over a limit, GPUs on a site without them,\n"
    "network access from closed compute nodes, paths outside the site's\n"
    "filesystems, a missing account...). Nothing is submitted.\n"
    "\n"
    "Given two sites, show each job's scripts for both side by side, lines that\n"
    "differ marked '|' (changed), '<' (only the first site's) or '>' (only the\n"
    "second's), or with --diff as unified diffs (--- first site, +++ second), then\n"
    "the lint of each site. Given more, compare each with the first.\n"
    "\n"
    "options:\n"
    "    -s, --site NAME       site profile to plan for (default: local); repeat\n"
    "                          to compare sites\n"
    "    --set KEY=VALUE       override a site profile value, e.g. scheduler.account=m1;\n"
    "                          before any --site: for every site, after one: for it\n"
    "    --campaign ID         campaign id (default: the workflow's name)\n"
    "    --all                 print every instance's script (default: the first\n"
    "                          instance of each task)\n"
    "    --lint                print only the lint\n"
    "    --json                print {campaign, site, jobs[], lint[]} as JSON; with\n"
    "                          several sites {campaign, plans[], compare[]}\n"
    "    --diff                compare sites as unified diffs\n"
    "    -U, --unified N       lines of context in --diff (default 3)\n"
    "    --width N             width of the side-by-side view (default: $COLUMNS,\n"
    "                          the terminal's, or 160)\n"
    "    --state-dir DIR       where local campaigns keep their files\n"
    "    -h, --help            show this help\n"
    "\n"
    "exit status: 0 no lint errors (warnings allowed), 5 lint errors (on any\n"
    "site), 3 invalid workflow, 4 site problem, 2 usage error.\n";

/* One --site and the --set flags that follow it. */
struct site_arg {
    const char *name;
    const char **own;       /* its own --set flags (borrowed strings) */
    size_t nown, alloc;
    const char **sets;      /* global + own, for the loader */
    char *label;            /* "NAME" or "NAME --set k=v ..." */
    struct hp_cli_plan cp;
};

struct opts {
    struct site_arg *sites;
    size_t nsites, alloc;
    const char **global;
    size_t nglobal, galloc;
    const char *campaign, *state_dir;
    int all, lint_only, json, diff, context, width;
};

static void opts_release(struct opts *o)
{
    for (size_t i = 0; i < o->nsites; i++) {
        free(o->sites[i].own);
        free(o->sites[i].sets);
        free(o->sites[i].label);
        hp_cli_plan_release(&o->sites[i].cp);
    }
    free(o->sites);
    free(o->global);
}

static void add_site(struct opts *o, const char *name)
{
    HP_ALLOC_GROW(o->sites, o->nsites + 1, o->alloc);
    struct site_arg *s = &o->sites[o->nsites++];
    memset(s, 0, sizeof(*s));
    s->name = name;
}

static void add_set(struct opts *o, const char *kv)
{
    if (!o->nsites) {
        HP_ALLOC_GROW(o->global, o->nglobal + 1, o->galloc);
        o->global[o->nglobal++] = kv;
    } else {
        struct site_arg *s = &o->sites[o->nsites - 1];
        HP_ALLOC_GROW(s->own, s->nown + 1, s->alloc);
        s->own[s->nown++] = kv;
    }
}

/* A positive number of columns or lines, or -1. */
static long parse_count(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 0 && v < 100000 ? v : -1;
}

static int terminal_width(void)
{
    const char *c = getenv("COLUMNS");
    long v = c ? parse_count(c) : -1;
    if (v > 0)
        return (int)v;
    struct winsize ws;
    if (hp_cli.tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 160;
}

/* Parse argv into o. 0 to go on, 1 after --help, else a usage error's code. */
static int parse(int argc, char **argv, struct opts *o, const char **workflow)
{
    enum { OPT_DIFF = 256, OPT_WIDTH };
    static const struct option lopts[] = {
        { "site", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },
        { "campaign", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 'd' },
        { "all", no_argument, NULL, 'a' },
        { "lint", no_argument, NULL, 'l' },
        { "json", no_argument, NULL, 'j' },
        { "diff", no_argument, NULL, OPT_DIFF },
        { "unified", required_argument, NULL, 'U' },
        { "width", required_argument, NULL, OPT_WIDTH },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    long v;
    o->context = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:U:h", lopts, NULL)) != -1) {
        switch (c) {
        case 's': add_site(o, optarg); break;
        case 'S': add_set(o, optarg); break;
        case 'c': o->campaign = optarg; break;
        case 'd': o->state_dir = optarg; break;
        case 'a': o->all = 1; break;
        case 'l': o->lint_only = 1; break;
        case 'j': o->json = 1; break;
        case OPT_DIFF: o->diff = 1; break;
        case 'U':
            if ((v = parse_count(optarg)) < 0)
                return hp_cli_usage_error(usage, "--unified wants a number of lines, not '%s'",
                                          optarg);
            o->context = (int)v;
            break;
        case OPT_WIDTH:
            if ((v = parse_count(optarg)) < 20)
                return hp_cli_usage_error(usage, "--width wants a number of columns (20 or "
                                          "more), not '%s'", optarg);
            o->width = (int)v;
            break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 1;
        default:
            fputs(usage, stderr);
            return HP_EUSAGE;
        }
    }
    if (optind != argc - 1)
        return hp_cli_usage_error(usage, optind >= argc ? "no workflow given"
                                                        : "more than one workflow given");
    *workflow = argv[optind];
    if (!o->nsites)
        add_site(o, "local");
    if (o->nsites == 1 && (o->diff || o->context >= 0 || o->width))
        return hp_cli_usage_error(usage, "--diff, --unified and --width compare sites: give "
                                  "two --site options or more");
    if (o->context >= 0 && !o->diff)
        return hp_cli_usage_error(usage, "--unified goes with --diff");
    if (o->diff && o->width)
        return hp_cli_usage_error(usage, "--width is for the side-by-side view, not --diff");
    if (o->context < 0)
        o->context = 3;
    if (!o->width)
        o->width = terminal_width();
    return 0;
}

/* ------------------------------------------------------------ one site */

/* Render the script of attempt 1 of instance i (new string), or NULL with err. */
static char *render(const struct hp_cli_plan *cp, size_t i, struct hp_err *err)
{
    struct hp_jobspec spec;
    struct hp_spec_store st;
    struct hp_buf script = HP_BUF_INIT;
    hp_plan_spec(cp->plan, i, 1, &spec, &st);
    int rc = cp->plan->adapter->render(&spec, cp->site, &script, err);
    hp_spec_store_release(&st);
    if (rc < 0) {
        hp_buf_release(&script);
        return NULL;
    }
    return hp_buf_detach(&script, NULL);
}

static json_t *lint_json(const struct hp_plan *plan)
{
    json_t *lints = json_array();
    for (size_t i = 0; i < plan->nlints; i++) {
        const struct hp_lint *l = &plan->lints[i];
        struct hp_pos pos = { 0, 0 };
        if (l->pointer)
            hp_doc_pos(plan->wf->doc, l->pointer, 0, &pos);
        json_array_append_new(lints, json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s?, s:i, s:i}",
            "level", l->level == HP_LINT_ERROR ? "error" : "warning", "rule", l->rule,
            "task", l->task, "message", l->message, "site_origin", l->site_origin,
            "pointer", l->pointer, "line", pos.line, "column", pos.col));
    }
    return lints;
}

/* {campaign, site, scheduler, workflow, jobs_total, jobs[], lint[], lint_errors} */
static json_t *plan_json(const struct hp_cli_plan *cp, const struct opts *o, struct hp_err *err)
{
    const struct hp_workflow *wf = cp->wf;
    const struct hp_plan *plan = cp->plan;
    json_t *jobs = json_array();
    for (size_t t = 0; !o->lint_only && t < wf->ntasks; t++) {
        const struct hp_task *task = &wf->tasks[t];
        for (size_t k = 0; k < task->count; k++) {
            size_t i = task->first + k;
            char *script = render(cp, i, err);
            if (!script) {
                json_decref(jobs);
                return NULL;
            }
            json_array_append_new(jobs, json_pack("{s:s, s:s, s:s?, s:I, s:s, s:s}",
                "instance", wf->inst[i].id, "task", task->name,
                "partition", plan->partition[i], "walltime", (json_int_t)plan->walltime[i],
                "placement", plan->pilot && plan->pilot[i] ? "pilot" : "direct",
                "script", script));
            free(script);
        }
    }
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:I}",
        "campaign", plan->campaign, "site", cp->site->name, "scheduler", cp->site->scheduler,
        "workflow", wf->doc->file, "jobs_total", (json_int_t)wf->ninst,
        "jobs", jobs, "lint", lint_json(plan), "lint_errors", (json_int_t)plan->nerrors,
        "pilot_tasks", (json_int_t)plan->npilot);
    if (plan->npilot) {
        const struct hp_pilot_cfg *c = &plan->pilots;
        json_object_set_new(doc, "pilots", json_pack("{s:s, s:i, s:i, s:i, s:I, s:s?, s:i, s:i, "
            "s:i}", "transport", c->spool ? "spool" : "tcp", "nodes", c->nodes, "cores",
            c->cores, "gpus", c->gpus, "walltime", (json_int_t)c->walltime, "partition",
            c->partition, "max_pilots", c->max_pilots, "max_queued", c->max_queued,
            "tasks_per_pilot", c->tasks_per_pilot));
    }
    return doc;
}

static void lint_text(const struct hp_plan *plan, const char *for_site, struct hp_buf *out)
{
    if (plan->nlints) {
        hp_buf_addf(out, "\n# lint%s%s%s: %zu error%s, %zu warning%s\n",
                    for_site ? " for site '" : "", for_site ? for_site : "",
                    for_site ? "'" : "", plan->nerrors, plan->nerrors == 1 ? "" : "s",
                    plan->nlints - plan->nerrors,
                    plan->nlints - plan->nerrors == 1 ? "" : "s");
        for (size_t i = 0; i < plan->nlints; i++)
            hp_cli_lint_line(plan, &plan->lints[i], out);
    } else {
        hp_buf_addf(out, "\n# lint%s%s%s: no problems found\n", for_site ? " for site '" : "",
                    for_site ? for_site : "", for_site ? "'" : "");
    }
}

static void flush_big(struct hp_buf *out)
{
    if (out->len > (1u << 20)) {
        fwrite(out->buf, 1, out->len, stdout);
        hp_buf_reset(out);
    }
}

static int print_one(const struct hp_cli_plan *cp, const struct opts *o, struct hp_err *err)
{
    const struct hp_workflow *wf = cp->wf;
    const struct hp_plan *plan = cp->plan;
    if (o->json) {
        json_t *doc = plan_json(cp, o, err);
        if (!doc)
            return -1;
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return 0;
    }
    struct hp_buf out = HP_BUF_INIT;
    size_t shown = 0;
    hp_buf_addf(&out, "# plan: campaign '%s' on site '%s' (%s): %zu task%s, %zu job%s\n",
                plan->campaign, cp->site->name, cp->site->scheduler, wf->ntasks,
                wf->ntasks == 1 ? "" : "s", wf->ninst, wf->ninst == 1 ? "" : "s");
    if (plan->npilot) {
        const struct hp_pilot_cfg *c = &plan->pilots;
        hp_buf_addf(&out, "# placement: %zu in pilot jobs, %zu as jobs of their own; pilots of "
                    "%d node(s) x %d core(s), %d GPU(s), %llds, at most %d (%d queued), one per "
                    "%d tasks left, reaching the agent through %s\n", plan->npilot,
                    wf->ninst - plan->npilot, c->nodes, c->cores, c->gpus,
                    (long long)c->walltime, c->max_pilots, c->max_queued, c->tasks_per_pilot,
                    c->spool ? "the spool" : "TCP");
    }
    for (size_t t = 0; !o->lint_only && t < wf->ntasks; t++) {
        const struct hp_task *task = &wf->tasks[t];
        size_t n = o->all ? task->count : (task->count ? 1 : 0);
        for (size_t k = 0; k < n; k++) {
            size_t i = task->first + k;
            char *script = render(cp, i, err);
            if (!script) {
                hp_buf_release(&out);
                return -1;
            }
            hp_buf_addf(&out, "\n# --- job %zu of %zu: %s\n", i + 1, wf->ninst, wf->inst[i].id);
            hp_buf_adds(&out, script);
            free(script);
            shown++;
            flush_big(&out);
        }
    }
    if (!o->lint_only && shown < wf->ninst)
        hp_buf_addf(&out, "\n# %zu more job%s not shown; --all prints every script\n",
                    wf->ninst - shown, wf->ninst - shown == 1 ? "" : "s");
    lint_text(plan, NULL, &out);
    fwrite(out.buf, 1, out.len, stdout);
    hp_buf_release(&out);
    return 0;
}

/* ------------------------------------------------------------ several sites */

struct id_index {
    const char *id;
    size_t i;
};

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct id_index *)a)->id, ((const struct id_index *)b)->id);
}

/* Instances of wf sorted by id, for pairing. */
static struct id_index *index_ids(const struct hp_workflow *wf)
{
    struct id_index *x = hp_xcalloc(wf->ninst ? wf->ninst : 1, sizeof(*x));
    for (size_t i = 0; i < wf->ninst; i++)
        x[i] = (struct id_index){ wf->inst[i].id, i };
    qsort(x, wf->ninst, sizeof(*x), by_id);
    return x;
}

/* Index of instance id in wf, or SIZE_MAX; hint is tried first. */
static size_t find_id(const struct hp_workflow *wf, const struct id_index *x, const char *id,
                      size_t hint)
{
    if (hint < wf->ninst && !strcmp(wf->inst[hint].id, id))
        return hint;
    struct id_index key = { id, 0 };
    const struct id_index *hit = bsearch(&key, x, wf->ninst, sizeof(*x), by_id);
    return hit ? hit->i : SIZE_MAX;
}

/* Whether instance i of wf is one `plan` shows (all, or first of its task). */
static int shown(const struct hp_workflow *wf, size_t i, int all)
{
    return all || wf->tasks[wf->inst[i].task].first == i;
}

struct pairing {
    size_t *a, *b;        /* instance index on each site, SIZE_MAX: missing */
    size_t n;
};

static void pair_up(const struct hp_cli_plan *A, const struct hp_cli_plan *B, int all,
                    struct pairing *p)
{
    const struct hp_workflow *wa = A->wf, *wb = B->wf;
    struct id_index *xb = index_ids(wb);
    char *matched = hp_xcalloc(wb->ninst ? wb->ninst : 1, 1);
    size_t alloc = 0;
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < wa->ninst; i++) {
        if (!shown(wa, i, all))
            continue;
        size_t j = find_id(wb, xb, wa->inst[i].id, i);
        if (j != SIZE_MAX)
            matched[j] = 1;
        HP_ALLOC_GROW(p->a, p->n + 1, alloc);
        p->b = hp_xrealloc(p->b, alloc * sizeof(*p->b));
        p->a[p->n] = i;
        p->b[p->n++] = j;
    }
    for (size_t j = 0; j < wb->ninst; j++) {
        if (matched[j] || !shown(wb, j, all))
            continue;
        HP_ALLOC_GROW(p->a, p->n + 1, alloc);
        p->b = hp_xrealloc(p->b, alloc * sizeof(*p->b));
        p->a[p->n] = SIZE_MAX;
        p->b[p->n++] = j;
    }
    free(matched);
    free(xb);
}

static void pairing_release(struct pairing *p)
{
    free(p->a);
    free(p->b);
}

/* The scripts of one pair (missing side: ""), new strings. */
static int render_pair(const struct site_arg *A, const struct site_arg *B, size_t ia, size_t ib,
                       char **sa, char **sb, struct hp_err *err)
{
    *sa = ia == SIZE_MAX ? hp_xstrdup("") : render(&A->cp, ia, err);
    if (!*sa)
        return -1;
    *sb = ib == SIZE_MAX ? hp_xstrdup("") : render(&B->cp, ib, err);
    if (!*sb) {
        free(*sa);
        return -1;
    }
    return 0;
}

static const char *pair_id(const struct site_arg *A, const struct site_arg *B, size_t ia,
                           size_t ib)
{
    return ia != SIZE_MAX ? A->cp.wf->inst[ia].id : B->cp.wf->inst[ib].id;
}

/* Append the comparison of site B with site A. */
static int compare_text(const struct site_arg *A, const struct site_arg *B, const struct opts *o,
                        struct hp_buf *out, struct hp_err *err)
{
    struct pairing p;
    size_t differ = 0;
    pair_up(&A->cp, &B->cp, o->all, &p);
    hp_buf_addf(out, "\n# === site '%s' compared with site '%s'\n", B->label, A->label);
    for (size_t k = 0; k < p.n; k++) {
        char *sa, *sb;
        if (render_pair(A, B, p.a[k], p.b[k], &sa, &sb, err) < 0) {
            pairing_release(&p);
            return -1;
        }
        const char *id = pair_id(A, B, p.a[k], p.b[k]);
        struct hp_lines la, lb;
        struct hp_diff d;
        hp_lines_split(&la, sa);
        hp_lines_split(&lb, sb);
        hp_diff_lines(&la, &lb, &d);
        differ += d.ndel + d.nadd > 0;
        const char *only = p.a[k] == SIZE_MAX ? B->label : p.b[k] == SIZE_MAX ? A->label : NULL;
        hp_buf_addf(out, "\n# --- job %s: ", id);
        if (only)
            hp_buf_addf(out, "only on site '%s'\n", only);
        else if (d.ndel + d.nadd)
            hp_buf_addf(out, "the scripts differ (-%zu +%zu line%s)\n", d.ndel, d.nadd,
                        d.nadd == 1 ? "" : "s");
        else
            hp_buf_adds(out, "the same script on both sites\n");
        if (o->diff) {
            char *la_label = p.a[k] == SIZE_MAX ? hp_xstrdup("/dev/null")
                                                : hp_xasprintf("%s: %s", A->label, id);
            char *lb_label = p.b[k] == SIZE_MAX ? hp_xstrdup("/dev/null")
                                                : hp_xasprintf("%s: %s", B->label, id);
            hp_diff_unified(&la, &lb, &d, la_label, lb_label, o->context, out);
            free(la_label);
            free(lb_label);
        } else {
            size_t cols = (size_t)(o->width - 3) / 2;
            char *rule = hp_xmalloc(cols + 1);
            memset(rule, '-', cols);
            rule[cols] = '\0';
            hp_diff_side_row(A->label, B->label, ' ', o->width, out);
            hp_diff_side_row(rule, rule, ' ', o->width, out);
            free(rule);
            hp_diff_side(&la, &lb, &d, o->width, out);
        }
        hp_diff_release(&d);
        hp_lines_release(&la);
        hp_lines_release(&lb);
        free(sa);
        free(sb);
        flush_big(out);
    }
    hp_buf_addf(out, "\n# %zu of %zu job%s shown differ%s\n", differ, p.n, p.n == 1 ? "" : "s",
                o->all ? "" : "; --all compares every job");
    pairing_release(&p);
    return 0;
}

static json_t *compare_json(const struct site_arg *A, const struct site_arg *B,
                            const struct opts *o, struct hp_err *err)
{
    struct pairing p;
    json_t *jobs = json_array();
    pair_up(&A->cp, &B->cp, 1, &p);
    for (size_t k = 0; k < p.n && !o->lint_only; k++) {
        char *sa, *sb;
        if (render_pair(A, B, p.a[k], p.b[k], &sa, &sb, err) < 0) {
            json_decref(jobs);
            pairing_release(&p);
            return NULL;
        }
        const char *id = pair_id(A, B, p.a[k], p.b[k]);
        struct hp_lines la, lb;
        struct hp_diff d;
        struct hp_buf u = HP_BUF_INIT;
        hp_lines_split(&la, sa);
        hp_lines_split(&lb, sb);
        hp_diff_lines(&la, &lb, &d);
        char *na = hp_xasprintf("%s: %s", A->label, id), *nb = hp_xasprintf("%s: %s", B->label, id);
        hp_diff_unified(&la, &lb, &d, na, nb, o->context, &u);
        json_array_append_new(jobs, json_pack("{s:s, s:b, s:b, s:b, s:I, s:I, s:s}",
            "instance", id, "on_a", p.a[k] != SIZE_MAX, "on_b", p.b[k] != SIZE_MAX,
            "same", d.ndel + d.nadd == 0, "lines_removed", (json_int_t)d.ndel,
            "lines_added", (json_int_t)d.nadd, "diff", u.buf));
        free(na);
        free(nb);
        hp_buf_release(&u);
        hp_diff_release(&d);
        hp_lines_release(&la);
        hp_lines_release(&lb);
        free(sa);
        free(sb);
    }
    pairing_release(&p);
    return json_pack("{s:s, s:s, s:o}", "a", A->label, "b", B->label, "jobs", jobs);
}

static int print_many(const struct opts *o, struct hp_err *err)
{
    const struct site_arg *A = &o->sites[0];
    if (o->json) {
        json_t *plans = json_array(), *cmp = json_array();
        size_t errors = 0;
        for (size_t s = 0; s < o->nsites; s++) {
            json_t *pj = plan_json(&o->sites[s].cp, o, err);
            json_t *cj = s ? compare_json(A, &o->sites[s], o, err) : NULL;
            if (!pj || (s && !cj)) {
                json_decref(pj);
                json_decref(plans);
                json_decref(cmp);
                return -1;
            }
            json_object_set_new(pj, "label", json_string(o->sites[s].label));
            json_array_append_new(plans, pj);
            if (cj)
                json_array_append_new(cmp, cj);
            errors += o->sites[s].cp.plan->nerrors;
        }
        json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:I}", "campaign",
                                A->cp.plan->campaign, "workflow", A->cp.wf->doc->file,
                                "plans", plans, "compare", cmp, "lint_errors",
                                (json_int_t)errors);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return 0;
    }
    struct hp_buf out = HP_BUF_INIT;
    hp_buf_addf(&out, "# plan: campaign '%s' on %zu sites\n", A->cp.plan->campaign, o->nsites);
    for (size_t s = 0; s < o->nsites; s++) {
        const struct site_arg *S = &o->sites[s];
        hp_buf_addf(&out, "#   site '%s' (%s): %zu task%s, %zu job%s\n", S->label,
                    S->cp.site->scheduler, S->cp.wf->ntasks, S->cp.wf->ntasks == 1 ? "" : "s",
                    S->cp.wf->ninst, S->cp.wf->ninst == 1 ? "" : "s");
    }
    for (size_t s = 1; !o->lint_only && s < o->nsites; s++) {
        if (compare_text(A, &o->sites[s], o, &out, err) < 0) {
            hp_buf_release(&out);
            return -1;
        }
    }
    for (size_t s = 0; s < o->nsites; s++)
        lint_text(o->sites[s].cp.plan, o->sites[s].label, &out);
    fwrite(out.buf, 1, out.len, stdout);
    hp_buf_release(&out);
    return 0;
}

/* "NAME", or "NAME --set K=V ..." when the site has flags of its own. */
static char *site_label(const struct site_arg *s)
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_adds(&b, s->name);
    for (size_t i = 0; i < s->nown; i++)
        hp_buf_addf(&b, " --set %s", s->own[i]);
    return hp_buf_detach(&b, NULL);
}

int cmd_plan(int argc, char **argv)
{
    struct opts o;
    const char *workflow = NULL;
    struct hp_err err;
    int rc;
    size_t nerrors = 0;

    memset(&o, 0, sizeof(o));
    o.state_dir = getenv("HPCPORT_STATE_DIR");
    hp_err_init(&err);
    rc = parse(argc, argv, &o, &workflow);
    if (rc) {
        opts_release(&o);
        return rc == 1 ? 0 : rc;
    }
    for (size_t s = 0; s < o.nsites; s++) {
        struct site_arg *S = &o.sites[s];
        S->sets = hp_xcalloc(o.nglobal + S->nown + 1, sizeof(*S->sets));
        for (size_t k = 0; k < o.nglobal; k++)
            S->sets[k] = o.global[k];
        for (size_t k = 0; k < S->nown; k++)
            S->sets[o.nglobal + k] = S->own[k];
        S->label = site_label(S);
        if (hp_cli_plan_load(&S->cp, workflow, S->name, S->sets, o.nglobal + S->nown,
                             o.campaign, o.state_dir, &err) < 0)
            goto fail;
        nerrors += S->cp.plan->nerrors;
    }
    if ((o.nsites == 1 ? print_one(&o.sites[0].cp, &o, &err) : print_many(&o, &err)) < 0)
        goto fail;
    rc = nerrors ? HP_ELINT : 0;
    goto out;
fail:
    rc = hp_cli_error(&err);
out:
    opts_release(&o);
    return rc;
}
