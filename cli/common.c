/* common.c - what several subcommands share: building a plan from the
 * command line's workflow/site/--set, and printing lint lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "doc.h"
#include "util.h"
#include "banned.h"

int hp_cli_plan_load(struct hp_cli_plan *cp, const char *wf_path, const char *site_name,
                     const char *const *sets, size_t nsets, const char *campaign,
                     const char *state_dir, struct hp_err *err)
{
    memset(cp, 0, sizeof(*cp));
    cp->wf = hp_workflow_load(wf_path, err);
    if (!cp->wf || hp_workflow_expand(cp->wf, site_name, 0, err) < 0)
        return -1;
    struct hp_site_opts so = { .workflow_dir = cp->wf->dir, .sets = sets, .nsets = nsets };
    cp->site = hp_site_load(site_name, &so, err);
    if (!cp->site)
        return -1;
    struct hp_plan_opts po = { .campaign = campaign, .state_dir = state_dir };
    cp->plan = hp_plan_new(cp->wf, cp->site, &po, err);
    return cp->plan ? 0 : -1;
}

void hp_cli_plan_release(struct hp_cli_plan *cp)
{
    hp_plan_free(cp->plan);
    hp_site_free(cp->site);
    hp_workflow_free(cp->wf);
    memset(cp, 0, sizeof(*cp));
}

void hp_cli_lint_line(const struct hp_plan *p, const struct hp_lint *l, struct hp_buf *out)
{
    struct hp_pos pos = { 0, 0 };
    const struct hp_doc *doc = p->wf->doc;
    if (l->pointer)
        hp_doc_pos(doc, l->pointer, 0, &pos);
    if (pos.line)
        hp_buf_addf(out, "%s:%d:%d: ", doc->file, pos.line, pos.col);
    else
        hp_buf_addf(out, "%s: ", doc->file);
    hp_buf_addf(out, "%s: %s [%s]", l->level == HP_LINT_ERROR ? "error" : "warning",
                l->message, l->rule);
    if (l->site_origin)
        hp_buf_addf(out, " (site rule at %s)", l->site_origin);
    hp_buf_addch(out, '\n');
}

/* A site named on the command line: a profile name, or a profile file when
 * the name has a '/' or ends in .yaml. */
struct hp_site *hp_cli_site(const char *name, const struct hp_cli_siteargs *sa,
                            struct hp_err *err)
{
    char *wdir = sa->workflow ? hp_dirname(sa->workflow) : sa->dir ? hp_xstrdup(sa->dir) : NULL;
    struct hp_site_opts o = { .workflow_dir = wdir, .sets = sa->sets, .nsets = sa->nsets };
    struct hp_site *s = strchr(name, '/') || hp_ends_with(name, ".yaml")
                            ? hp_site_load_file(name, &o, err)
                            : hp_site_load(name, &o, err);
    free(wdir);
    return s;
}

int hp_cli_siteargs_opt(struct hp_cli_siteargs *a, int c, const char *arg)
{
    switch (c) {
    case HP_OPT_SET:
        HP_ALLOC_GROW(a->sets, a->nsets + 1, a->alloc);
        a->sets[a->nsets++] = arg;
        return 1;
    case HP_OPT_WORKFLOW:
        a->workflow = arg;
        return 1;
    case HP_OPT_DIR:
        a->dir = arg;
        return 1;
    default:
        return 0;
    }
}

void hp_cli_siteargs_release(struct hp_cli_siteargs *a)
{
    free(a->sets);
    memset(a, 0, sizeof(*a));
}
