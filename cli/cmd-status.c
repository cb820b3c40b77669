/* cmd-status.c - hpcport status: campaigns and the state of their tasks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "adapter.h"
#include "campaign.h"
#include "cli.h"
#include "multi.h"
#include "site.h"
#include "util.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport status [CAMPAIGN] [--json] [--tasks] [--state STATE] [--provenance]\n"
    "                      [--offline] [--state-dir DIR]\n";

static const char help[] =
    "\n"
    "Without a campaign: one line per campaign in the state directory with its\n"
    "site, instance counts and state (running while an 'hpcport run' works on\n"
    "it). With a campaign: its counts per state and, with --tasks, one line per\n"
    "task instance (id, state, attempts, exit status, reason). A campaign run\n"
    "on several sites also shows the counts per site, by the site of each\n"
    "instance's last job ('sites' in --json).\n"
    "\n"
    "A campaign that runs tasks in pilot jobs goes on without this machine: its\n"
    "agent on the site's login node feeds the pilots. When no 'hpcport run' is\n"
    "working on such a campaign here, status also asks the agent over the site's\n"
    "connection and shows its counts (the next 'hpcport run' records them here).\n"
    "\n"
    "options:\n"
    "    --tasks               list the task instances\n"
    "    --state STATE         only instances in STATE (new, queued, active,\n"
    "                          completed, failed, canceled); implies --tasks\n"
    "    --provenance          also show what produced the results: the hpcport\n"
    "                          build, the workflow file's SHA-256, its git commit\n"
    "                          and dirty state, the site profile as resolved and\n"
    "                          the catalog commit it came from; one record per\n"
    "                          change between runs, with the attempts made under it\n"
    "    --offline             do not ask a pilot campaign's agent on the site\n"
    "    --json                print JSON (with --provenance: the whole records,\n"
    "                          resolved site profile included)\n"
    "    --state-dir DIR       campaign state directory (default:\n"
    "                          $HPCPORT_STATE_DIR, else $XDG_STATE_HOME/hpcport)\n"
    "    -h, --help            show this help\n"
    "\n"
    "exit status: 0 success, 2 usage error, 7 unreadable state, 8 no such\n"
    "campaign.\n";

/* A multi-site campaign (site "A,B"): instance counts per state for each
 * site, by the site of each instance's last job ("SITE|ID", adapters/multi.h). */
struct site_counts {
    char **names;
    size_t (*count)[HP_IS__COUNT];
    size_t n;
};

static int on_site_row(void *ctx, const struct hp_inst_row *r)
{
    struct site_counts *sc = ctx;
    size_t len = hp_multi_site_len(r->job_id);
    for (size_t k = 0; len && k < sc->n; k++)
        if (strlen(sc->names[k]) == len && !strncmp(sc->names[k], r->job_id, len)) {
            sc->count[k][r->state]++;
            break;
        }
    return 0;
}

static int site_counts(struct hp_state *st, const char *sites, struct site_counts *sc,
                       struct hp_err *err)
{
    memset(sc, 0, sizeof(*sc));
    if (!sites || !strchr(sites, ','))
        return 0;
    size_t n = 1;
    for (const char *p = sites; *p; p++)
        n += *p == ',';
    sc->names = hp_xcalloc(n, sizeof(*sc->names));
    sc->count = hp_xcalloc(n, sizeof(*sc->count));
    for (const char *p = sites; sc->n < n;) {
        size_t len = strcspn(p, ",");
        sc->names[sc->n++] = hp_xstrndup(p, len);
        p += len + (p[len] == ',');
    }
    return hp_state_each_instance(st, -1, on_site_row, sc, err);
}

static void site_counts_release(struct site_counts *sc)
{
    for (size_t k = 0; k < sc->n; k++)
        free(sc->names[k]);
    free(sc->names);
    free(sc->count);
}

/* The stored status says "running" until its engine ends; an engine that
 * was killed never says otherwise, and no engine holds the run lock. */
static const char *live_state(const char *stored, pid_t engine)
{
    if (engine)
        return "running";
    if (!stored)
        return "?";
    return strcmp(stored, "running") ? stored : "interrupted";
}

static const char *campaign_state(const struct hp_campaign_entry *c)
{
    return live_state(c->info.status, c->engine);
}

static int list_campaigns(const char *state_dir, int json)
{
    struct hp_campaign_entry *v;
    size_t n;
    struct hp_err err;
    hp_err_init(&err);
    if (hp_campaign_list(state_dir, &v, &n, &err) < 0)
        return hp_cli_error(&err);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            const struct hp_campaign_entry *c = &v[i];
            json_array_append_new(arr, json_pack(
                "{s:s, s:s?, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s?, s:f, s:I}",
                "id", c->id, "site", c->info.site, "workflow", c->info.workflow_path,
                "state", campaign_state(c), "total", (json_int_t)c->total,
                "completed", (json_int_t)c->count[HP_IS_COMPLETED],
                "running", (json_int_t)(c->count[HP_IS_QUEUED] + c->count[HP_IS_ACTIVE]),
                "failed", (json_int_t)c->count[HP_IS_FAILED],
                "canceled", (json_int_t)c->count[HP_IS_CANCELED],
                "new", (json_int_t)c->count[HP_IS_NEW], "dir", c->dir,
                "created", c->info.created, "engine_pid", (json_int_t)c->engine));
        }
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
    } else if (!n) {
        if (!hp_cli.quiet)
            fprintf(stderr, "hpcport: no campaigns yet; 'hpcport run WORKFLOW' starts one\n");
    } else {
        int w = 8;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(v[i].id) > w)
                w = (int)strlen(v[i].id);
        printf("%-*s  %-12s %8s %8s %8s %8s  %s\n", w, "ID", "SITE", "TOTAL", "DONE", "RUNNING",
               "FAILED", "STATE");
        for (size_t i = 0; i < n; i++) {
            const struct hp_campaign_entry *c = &v[i];
            printf("%-*s  %-12s %8zu %8zu %8zu %8zu  %s\n", w, c->id,
                   c->info.site ? c->info.site : "?", c->total, c->count[HP_IS_COMPLETED],
                   c->count[HP_IS_QUEUED] + c->count[HP_IS_ACTIVE],
                   c->count[HP_IS_FAILED] + c->count[HP_IS_CANCELED], campaign_state(c));
        }
    }
    hp_campaign_entries_free(v, n);
    return 0;
}

struct rows_ctx {
    json_t *arr;
    size_t n;
    int w;
};

static void exit_text(const struct hp_inst_row *r, char *buf, size_t len)
{
    if (r->timed_out)
        snprintf(buf, len, "timeout");
    else if (r->signal > 0)
        snprintf(buf, len, "sig %d", r->signal);
    else if (r->exit_code >= 0)
        snprintf(buf, len, "%d", r->exit_code);
    else
        snprintf(buf, len, "-");
}

static int on_row(void *ctx, const struct hp_inst_row *r)
{
    struct rows_ctx *c = ctx;
    c->n++;
    if (c->arr) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s?, s:s?}", "id", r->id, "task", r->task,
                              "state", hp_istate_name(r->state), "attempts", r->attempts,
                              "reason", r->reason, "job_id", r->job_id);
        json_object_set_new(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code)
                                                              : json_null());
        json_object_set_new(o, "signal", r->signal > 0 ? json_integer(r->signal) : json_null());
        json_object_set_new(o, "timed_out", json_boolean(r->timed_out));
        json_object_set_new(o, "submitted", r->submitted > 0 ? json_real(r->submitted)
                                                             : json_null());
        json_object_set_new(o, "started", r->started > 0 ? json_real(r->started) : json_null());
        json_object_set_new(o, "ended", r->ended > 0 ? json_real(r->ended) : json_null());
        json_array_append_new(c->arr, o);
        return 0;
    }
    char ex[32];
    exit_text(r, ex, sizeof(ex));
    /* Ids may hold any byte; keep one line per instance. */
    struct hp_buf id = HP_BUF_INIT;
    for (const char *p = r->id; *p; p++)
        if (*p == '\n' || *p == '\t')
            hp_buf_adds(&id, *p == '\n' ? "\\n" : "\\t");
        else
            hp_buf_addch(&id, *p);
    printf("%-*s  %-9s %8d %7s  %s\n", c->w, id.buf, hp_istate_name(r->state), r->attempts, ex,
           r->reason ? r->reason : "");
    hp_buf_release(&id);
    return 0;
}

static int width_row(void *ctx, const struct hp_inst_row *r)
{
    struct rows_ctx *c = ctx;
    int l = (int)strlen(r->id);
    if (l > c->w)
        c->w = l < 60 ? l : 60;
    return 0;
}

/* ---- --provenance ---- */

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void print_git(const json_t *g)
{
    if (!json_is_object(g)) {
        printf("  git:       not in a git repository\n");
        return;
    }
    if (jstr(g, "error"))
        printf("  git:       %s\n", jstr(g, "error"));
    if (!jstr(g, "repository"))
        return;
    const char *commit = jstr(g, "commit"), *branch = jstr(g, "branch");
    printf("  git:       %s at %s", jstr(g, "repository"), commit ? commit : "(no commit yet)");
    if (branch)
        printf(" (%s)", branch);
    fputc('\n', stdout);
    if (jstr(g, "remote"))
        printf("  remote:    %s\n", jstr(g, "remote"));
    const json_t *ch = json_object_get(g, "changes");
    size_t nch = json_array_size(ch);
    json_int_t more = json_integer_value(json_object_get(g, "more_changes"));
    json_int_t untracked = json_integer_value(json_object_get(g, "untracked"));
    if (json_is_true(json_object_get(g, "dirty"))) {
        printf("  dirty:     yes, %zu tracked file(s) differ from the commit:",
               nch + (size_t)more);
        for (size_t i = 0; i < nch; i++)
            printf("%s %s", i ? "," : "", json_string_value(json_array_get(ch, i)));
        if (more)
            printf(", and %lld more", (long long)more);
        fputc('\n', stdout);
    } else {
        printf("  dirty:     no\n");
    }
    if (untracked)
        printf("  untracked: %lld file(s)\n", (long long)untracked);
    if (jstr(g, "workflow_file"))
        printf("  workflow file in git: %s\n", jstr(g, "workflow_file"));
}

struct prov_ctx {
    json_t *arr;    /* JSON output, or NULL */
    size_t n;
};

static int on_prov(void *ctx, int64_t seq, double recorded, const char *record, int64_t attempts)
{
    struct prov_ctx *c = ctx;
    json_error_t je;
    json_t *r = json_loads(record, 0, &je);
    if (!r)
        r = json_pack("{s:s}", "error", "unreadable provenance record");
    c->n++;
    if (c->arr) {
        json_object_set_new(r, "seq", json_integer(seq));
        json_object_set_new(r, "recorded", json_real(recorded));
        json_object_set_new(r, "attempts", json_integer(attempts));
        json_array_append_new(c->arr, r);
        return 0;
    }
    char when[64] = "?";
    time_t t = (time_t)recorded;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    printf("\nprovenance %lld (recorded %s; %lld attempt%s made under it):\n", (long long)seq,
           when, (long long)attempts, attempts == 1 ? "" : "s");
    const json_t *h = json_object_get(r, "hpcport"), *host = json_object_get(r, "host");
    const json_t *w = json_object_get(r, "workflow"), *site = json_object_get(r, "site");
    const char *build = jstr(h, "build");
    printf("  hpcport:   %s%s%s%s\n", jstr(h, "version") ? jstr(h, "version") : "?",
           build && *build ? " (git " : "", build && *build ? build : "",
           build && *build ? ")" : "");
    if (host)
        printf("  host:      %s%s%s\n", jstr(host, "name") ? jstr(host, "name") : "?",
               jstr(host, "user") ? ", user " : "", jstr(host, "user") ? jstr(host, "user") : "");
    if (w && jstr(w, "path"))
        printf("  workflow:  %s\n  sha256:    %s\n", jstr(w, "path"),
               jstr(w, "sha256") ? jstr(w, "sha256") : "(unreadable)");
    print_git(json_object_get(r, "git"));
    if (site) {
        const json_t *src = json_object_get(site, "sources");
        printf("  site:      %s from", jstr(site, "name") ? jstr(site, "name") : "?");
        for (size_t i = 0; i < json_array_size(src); i++)
            printf("%s %s", i ? "," : "", json_string_value(json_array_get(src, i)));
        fputc('\n', stdout);
        const json_t *cat = json_object_get(site, "catalog");
        if (json_is_object(cat))
            printf("  catalog:   %s at %s\n", jstr(cat, "url") ? jstr(cat, "url") : "?",
                   jstr(cat, "commit") ? jstr(cat, "commit") : "?");
    }
    json_decref(r);
    return 0;
}

/* A pilot campaign with no engine here: its agent's counts, asked on the
 * site now; NULL (a warning said why) when the site cannot be asked. */
static json_t *agent_live(const struct hp_campaign_info *ci, const char *state_dir)
{
    struct hp_err err;
    hp_err_init(&err);
    char *wdir = ci->workflow_path ? hp_dirname(ci->workflow_path) : NULL;
    struct hp_site_opts so = { .workflow_dir = wdir };
    struct hp_site *site = hp_site_load(ci->site, &so, &err);
    json_t *st = NULL;
    if (site)
        hp_pilot_agent_status(site, ci->id, state_dir, &st, &err);
    if (!st)
        hp_cli_log(0, "warning: the campaign's agent on site '%s' could not be asked: %s",
                   ci->site, err.msg);
    hp_site_free(site);
    free(wdir);
    return st;
}

static void print_agent(const json_t *a)
{
    json_t *p = json_object_get(a, "pilots");
#define N(o, k) ((long long)json_integer_value(json_object_get(o, k)))
    printf("on site:   agent %s; tasks: %lld queued, %lld running, %lld done, %lld failed\n",
           json_is_true(json_object_get(a, "running")) ? "running" : "stopped", N(a, "queued"),
           N(a, "leased"), N(a, "done"), N(a, "failed"));
    printf("pilots:    %lld queued, %lld running, %lld ended, %lld failed, %lld canceled\n",
           N(p, "queued"), N(p, "running"), N(p, "ended"), N(p, "failed"), N(p, "canceled"));
#undef N
    const char *e = json_string_value(json_object_get(p, "error"));
    if (e)
        printf("pilot jobs stopped: %s\n", e);
}

static int show_campaign(const char *state_dir, const char *id, int json, int tasks, int state,
                         int prov, int offline)
{
    struct hp_err err;
    char *dir = NULL;
    int rc = 0;
    hp_err_init(&err);
    struct hp_state *st = hp_campaign_open(state_dir, id, &dir, &err);
    if (!st)
        return hp_cli_error(&err);
    struct hp_campaign_info ci;
    size_t count[HP_IS__COUNT], total = 0;
    if (hp_state_get_campaign(st, &ci, &err) != 0 || hp_state_counts(st, count, &err) < 0) {
        if (!err.code)
            hp_err_set(&err, HP_ESTATE, "%s holds no campaign", hp_state_path(st));
        rc = hp_cli_error(&err);
        hp_state_close(st);
        free(dir);
        return rc;
    }
    for (int k = 0; k < HP_IS__COUNT; k++)
        total += count[k];
    pid_t engine = hp_campaign_engine(dir);
    const char *cstate = live_state(ci.status, engine);
    json_t *agent = NULL;
    if (!offline && !engine && ci.adapter && !strcmp(ci.adapter, hp_adapter_pilot.name) &&
        count[HP_IS_COMPLETED] + count[HP_IS_FAILED] + count[HP_IS_CANCELED] < total)
        agent = agent_live(&ci, state_dir);
    struct site_counts sc;
    if (site_counts(st, ci.site, &sc, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (json) {
        json_t *counts = json_object();
        for (int k = 0; k < HP_IS__COUNT; k++)
            json_object_set_new(counts, hp_istate_name((enum hp_istate)k),
                                json_integer((json_int_t)count[k]));
        json_t *doc = json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:I, s:o, s:f, s:I, s:s?}",
            "id", ci.id, "site", ci.site, "workflow", ci.workflow_path,
            "workflow_name", ci.workflow_name, "state", cstate, "dir", dir,
            "total", (json_int_t)total, "counts", counts, "created", ci.created,
            "engine_pid", (json_int_t)engine, "version", ci.version);
        if (sc.n) {
            json_t *sites = json_object();
            for (size_t k = 0; k < sc.n; k++) {
                json_t *o = json_object();
                for (int j = 0; j < HP_IS__COUNT; j++)
                    json_object_set_new(o, hp_istate_name((enum hp_istate)j),
                                        json_integer((json_int_t)sc.count[k][j]));
                json_object_set_new(sites, sc.names[k], o);
            }
            json_object_set_new(doc, "sites", sites);
        }
        if (agent)
            json_object_set(doc, "agent", agent);
        if (tasks) {
            struct rows_ctx c = { .arr = json_array() };
            if (hp_state_each_instance(st, state, on_row, &c, &err) < 0) {
                json_decref(c.arr);
                json_decref(doc);
                rc = hp_cli_error(&err);
                goto out;
            }
            json_object_set_new(doc, "instances", c.arr);
        }
        if (prov) {
            struct prov_ctx pc = { .arr = json_array() };
            if (hp_state_each_provenance(st, on_prov, &pc, &err) < 0) {
                json_decref(pc.arr);
                json_decref(doc);
                rc = hp_cli_error(&err);
                goto out;
            }
            json_object_set_new(doc, "provenance", pc.arr);
        }
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        goto out;
    }
    char when[64] = "?";
    time_t t = (time_t)ci.created;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    printf("campaign:  %s\n", ci.id);
    printf("site:      %s\n", ci.site);
    if (ci.workflow_path)
        printf("workflow:  %s\n", ci.workflow_path);
    printf("created:   %s\n", when);
    if (engine)
        printf("state:     running (hpcport pid %d)\n", (int)engine);
    else
        printf("state:     %s\n", cstate);
    printf("instances: %zu\n", total);
    for (int k = 0; k < HP_IS__COUNT; k++)
        if (count[k] || k == HP_IS_COMPLETED)
            printf("  %-10s %zu\n", hp_istate_name((enum hp_istate)k), count[k]);
    if (sc.n) {
        /* by the site of each instance's last job; never submitted: none */
        printf("sites:\n");
        for (size_t k = 0; k < sc.n; k++) {
            printf("  %-10s", sc.names[k]);
            int any = 0;
            for (int j = 0; j < HP_IS__COUNT; j++)
                if (sc.count[k][j] || j == HP_IS_COMPLETED)
                    printf("%s %s %zu", any++ ? "," : "", hp_istate_name((enum hp_istate)j),
                           sc.count[k][j]);
            printf("\n");
        }
    }
    if (agent)
        print_agent(agent);
    if (prov) {
        struct prov_ctx pc = { 0 };
        if (hp_state_each_provenance(st, on_prov, &pc, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
        if (!pc.n)
            printf("\nprovenance: none recorded (the campaign was made by an older hpcport "
                   "that did not record it)\n");
    }
    if (tasks) {
        struct rows_ctx c = { .w = 8 };
        if (hp_state_each_instance(st, state, width_row, &c, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
        printf("\n%-*s  %-9s %8s %7s  %s\n", c.w, "ID", "STATE", "ATTEMPTS", "EXIT", "REASON");
        if (hp_state_each_instance(st, state, on_row, &c, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
    }
out:
    site_counts_release(&sc);
    json_decref(agent);
    hp_campaign_info_release(&ci);
    hp_state_close(st);
    free(dir);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "tasks", no_argument, NULL, 't' },
        { "provenance", no_argument, NULL, 'P' },
        { "offline", no_argument, NULL, 'O' },
        { "state", required_argument, NULL, 'S' },
        { "state-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *state_dir = getenv("HPCPORT_STATE_DIR");
    int json = 0, tasks = 0, state = -1, prov = 0, offline = 0, c;
    if (state_dir && !*state_dir)
        state_dir = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 't': tasks = 1; break;
        case 'P': prov = 1; break;
        case 'O': offline = 1; break;
        case 'd': state_dir = optarg; break;
        case 'S':
            state = hp_istate_parse(optarg);
            if (state < 0) {
                const char *names[HP_IS__COUNT + 1];
                for (int k = 0; k < HP_IS__COUNT; k++)
                    names[k] = hp_istate_name((enum hp_istate)k);
                names[HP_IS__COUNT] = NULL;
                const char *s = hp_suggest(optarg, names);
                if (s)
                    return hp_cli_usage_error(usage, "unknown state '%s' (did you mean '%s'?)",
                                              optarg, s);
                return hp_cli_usage_error(usage, "unknown state '%s'; states are new, queued, "
                                          "active, completed, failed, canceled", optarg);
            }
            tasks = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return HP_EUSAGE;
        }
    }
    if (argc - optind > 1)
        return hp_cli_usage_error(usage, "more than one campaign given");
    if (optind == argc) {
        if (tasks || prov)
            return hp_cli_usage_error(usage, "--tasks, --state and --provenance need a campaign");
        return list_campaigns(state_dir, json);
    }
    return show_campaign(state_dir, argv[optind], json, tasks, state, prov, offline);
}
