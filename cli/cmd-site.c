/* cmd-site.c - hpcport site list | show | trust | check | deploy: the profiles
 * visible from here, one resolved profile with the origin of every value (like
 * `git config --list --show-origin`), trusting a site's host keys, checking a
 * profile against the live site, and putting this binary on the site. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "cli.h"
#include "buf.h"
#include "doc.h"
#include "adapter.h"
#include "conn.h"
#include "deploy.h"
#include "site.h"
#include "ssh.h"
#include "util.h"
#include "banned.h"

static const char list_usage[] =
    "usage: hpcport site list [--json] [--workflow FILE|--dir DIR]\n";
static const char show_usage[] =
    "usage: hpcport site show NAME [--set KEY=VALUE]... [--workflow FILE|--dir DIR] [--json] "
    "[--no-origin]\n";
static const char trust_usage[] =
    "usage: hpcport site trust NAME [--yes] [--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n";
static const char check_usage[] =
    "usage: hpcport site check NAME [--json] [--no-job] [--job-timeout DURATION] "
    "[--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n";
static const char deploy_usage[] =
    "usage: hpcport site deploy NAME [--list|--dry-run|--prune] [--binary FILE] [--json] "
    "[--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n";
static const char site_usage[] =
    "usage: hpcport site list [--json] [--workflow FILE|--dir DIR]\n"
    "   or: hpcport site show NAME [--set KEY=VALUE]... [--workflow FILE|--dir DIR] [--json] "
    "[--no-origin]\n"
    "   or: hpcport site trust NAME [--yes] [--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n"
    "   or: hpcport site check NAME [--json] [--no-job] [--job-timeout DURATION] "
    "[--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n"
    "   or: hpcport site deploy NAME [--list|--dry-run|--prune] [--binary FILE] [--json] "
    "[--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n";

static const char layers_help[] =
    "A profile NAME is resolved from layers, lowest first: the bundled profile,\n"
    "the site catalog's pinned commit (hpcport sites), $XDG_CONFIG_HOME/hpcport/\n"
    "sites/NAME.yaml, <workflow dir>/sites/NAME.yaml, and --set flags. See\n"
    "hpcport-site(5).\n";

static const char site_help[] =
    "\n"
    "List site profiles, or show one resolved profile with the origin of each value.\n"
    "\n"
    "commands:\n"
    "    list    the profiles visible here: NAME, SCHEDULER, SOURCE, DESCRIPTION\n"
    "    show    one profile as KEY=VALUE lines, each after the file:line:col that set it\n"
    "    trust   show the SSH host keys of the site's login and jump hosts and trust them\n"
    "    check   compare the profile with the live site: a table of checks\n"
    "    deploy  put this hpcport binary on the site (or say how to build it there)\n"
    "\n"
    "'hpcport site <command> --help' tells more.\n";

static const char list_help[] =
    "\n"
    "List the site profiles visible from here, sorted by name. SOURCE is the\n"
    "highest layer's file. A profile that does not resolve is listed, and its\n"
    "error printed on stderr.\n"
    "\n"
    "options:\n"
    "    --json             print a JSON array of {name, scheduler, source,\n"
    "                       description, catalog_commit, error}\n"
    "    --workflow FILE    also look in the sites/ folder beside workflow FILE\n"
    "    --dir DIR          also look in DIR/sites/\n"
    "    -h, --help         show this help\n";

static const char show_help[] =
    "\n"
    "Show the resolved profile NAME (or the profile in FILE, a path containing '/'\n"
    "or ending in .yaml) as KEY.PATH=VALUE lines, each preceded by its origin and a\n"
    "TAB: file:line:col, <bundled>/NAME.yaml:line:col,\n"
    "<catalog@COMMIT>/sites/NAME.yaml:line:col, --set or <detected>. List\n"
    "entries are numbered (setup.0=...), as --set takes them. A profile from the\n"
    "site catalog starts with a '# from the site catalog URL at commit C' line.\n"
    "\n"
    "options:\n"
    "    --set KEY=VALUE    override a value; VALUE is YAML ('[a, b]', 3, text);\n"
    "                       null removes a key; may be repeated\n"
    "    --workflow FILE    use the sites/ folder beside workflow FILE as a layer\n"
    "    --dir DIR          use DIR/sites/ as the workflow layer\n"
    "    --json             print {\"name\", \"profile\", \"origins\"}, and\n"
    "                       \"catalog\": {\"url\", \"commit\"} for a catalog profile\n"
    "    --show-origin      print the origin of each value (the default)\n"
    "    --no-origin        print KEY=VALUE lines only\n"
    "    -h, --help         show this help\n"
    "\n"
    "exit status: 0 ok, 2 usage error or bad --set, 3 a file does not load or\n"
    "match the schema, 4 unknown site or bad profile.\n";

enum { OPT_JSON = 256, OPT_WORKFLOW, OPT_DIR, OPT_SET, OPT_ORIGIN, OPT_NO_ORIGIN };

struct site_args {
    int json, origin;
    const char *workflow, *dir;
    const char **sets;
    size_t nsets, alloc;
    const char *name;
    char *workflow_dir;
};

/* Parse the options of `site list` (show = 0) or `site show` (show = 1).
 * Returns 0 to go on, -1 after printing the help, or a usage error's code. */
static int parse(int argc, char **argv, int show, const char *usage, const char *help,
                 struct site_args *a)
{
    static const struct option show_opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "workflow", required_argument, NULL, OPT_WORKFLOW },
        { "dir", required_argument, NULL, OPT_DIR },
        { "help", no_argument, NULL, 'h' },
        /* show only, from here */
        { "set", required_argument, NULL, OPT_SET },
        { "show-origin", no_argument, NULL, OPT_ORIGIN },
        { "no-origin", no_argument, NULL, OPT_NO_ORIGIN },
        { NULL, 0, NULL, 0 },
    };
    static const struct option list_opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "workflow", required_argument, NULL, OPT_WORKFLOW },
        { "dir", required_argument, NULL, OPT_DIR },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    a->origin = 1;
    optind = 0;     /* GNU: start over (argv differs from the last user's) */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", show ? show_opts : list_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            fputs("\n", stdout);
            fputs(layers_help, stdout);
            return -1;
        case OPT_JSON: a->json = 1; break;
        case OPT_WORKFLOW: a->workflow = optarg; break;
        case OPT_DIR: a->dir = optarg; break;
        case OPT_SET:
            HP_ALLOC_GROW(a->sets, a->nsets + 1, a->alloc);
            a->sets[a->nsets++] = optarg;
            break;
        case OPT_ORIGIN: a->origin = 1; break;
        case OPT_NO_ORIGIN: a->origin = 0; break;
        case ':':
            return hp_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a->workflow && a->dir)
        return hp_cli_usage_error(usage, "--workflow and --dir both name the workflow layer; "
                                  "give one");
    if (show) {
        if (optind >= argc)
            return hp_cli_usage_error(usage, "no site name given");
        a->name = argv[optind++];
    }
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (a->workflow)
        a->workflow_dir = hp_dirname(a->workflow);
    else if (a->dir)
        a->workflow_dir = hp_xstrdup(a->dir);
    struct stat st;
    if (a->workflow_dir && (stat(a->workflow_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
        return hp_cli_usage_error(usage, "%s '%s': no such directory",
                                  a->workflow ? "--workflow" : "--dir",
                                  a->workflow ? a->workflow : a->dir);
    return 0;
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static int site_list(int argc, char **argv)
{
    struct site_args a = { 0 };
    struct hp_site_entry *e = NULL;
    size_t n = 0;
    struct hp_err err;
    int rc = parse(argc, argv, 0, list_usage, list_help, &a);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    hp_err_init(&err);
    struct hp_site_opts o = { .workflow_dir = a.workflow_dir };
    if (hp_site_list(&o, &e, &n, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (e[i].error)
            fprintf(stderr, "%s\n", e[i].error);
    if (a.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s?}",
                                                 "name", e[i].name, "scheduler", e[i].scheduler,
                                                 "source", e[i].source,
                                                 "description", e[i].description,
                                                 "catalog_commit", e[i].catalog_commit,
                                                 "error", e[i].error));
        print_json(arr);
        json_decref(arr);
        goto out;
    }
    int wn = 4, ws = 9, wsrc = 6;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(e[i].name);
        wn = l > wn ? l : wn;
        l = e[i].scheduler ? (int)strlen(e[i].scheduler) : 1;
        ws = l > ws ? l : ws;
        l = (int)strlen(e[i].source);
        wsrc = l > wsrc ? l : wsrc;
    }
    printf("%-*s  %-*s  %-*s  %s\n", wn, "NAME", ws, "SCHEDULER", wsrc, "SOURCE", "DESCRIPTION");
    for (size_t i = 0; i < n; i++)
        printf("%-*s  %-*s  %-*s  %s\n", wn, e[i].name, ws, e[i].scheduler ? e[i].scheduler : "?",
               wsrc, e[i].source,
               e[i].error ? "(does not resolve; see the error above)"
                          : e[i].description ? e[i].description : "");
out:
    hp_site_entries_free(e, n);
    free(a.workflow_dir);
    free(a.sets);
    return rc;
}

/* Print a scalar the way `key=value` lines show it: strings as they are,
 * unless they hold control characters (then JSON-quoted). */
static void print_value(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                json_dumpf(v, stdout, JSON_ENCODE_ANY);
                return;
            }
        }
        fputs(s, stdout);
        return;
    }
    case JSON_OBJECT: fputs("{}", stdout); return;
    case JSON_ARRAY: fputs("[]", stdout); return;
    default: json_dumpf(v, stdout, JSON_ENCODE_ANY); return;
    }
}

/* Walk the profile; leaves (scalars, empty collections) are printed, or, with
 * origins != NULL, only recorded there. */
static void flatten(const struct hp_site *s, const json_t *v, struct hp_buf *ptr,
                    struct hp_buf *key, int show_origin, json_t *origins)
{
    size_t plen = ptr->len, klen = key->len;
    if (json_is_object(v) && json_object_size(v)) {
        const char *k;
        json_t *child;
        json_object_foreach((json_t *)v, k, child) {
            hp_pointer_append(ptr, k);
            hp_buf_addf(key, "%s%s", klen ? "." : "", k);
            flatten(s, child, ptr, key, show_origin, origins);
            hp_buf_setlen(ptr, plen);
            hp_buf_setlen(key, klen);
        }
        return;
    }
    if (json_is_array(v) && json_array_size(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            hp_pointer_append_index(ptr, i);
            hp_buf_addf(key, "%s%zu", klen ? "." : "", i);
            flatten(s, json_array_get(v, i), ptr, key, show_origin, origins);
            hp_buf_setlen(ptr, plen);
            hp_buf_setlen(key, klen);
        }
        return;
    }
    if (origins) {
        json_object_set_new(origins, ptr->buf, json_string(hp_site_origin(s, ptr->buf)));
        return;
    }
    if (show_origin)
        printf("%s\t", hp_site_origin(s, ptr->buf));
    printf("%s=", key->buf);
    print_value(v);
    fputc('\n', stdout);
}

static int looks_like_path(const char *name)
{
    return strchr(name, '/') || hp_ends_with(name, ".yaml") || hp_ends_with(name, ".yml");
}

static int site_show(int argc, char **argv)
{
    struct site_args a = { 0 };
    struct hp_site *s = NULL;
    struct hp_err err;
    struct hp_buf ptr = HP_BUF_INIT, key = HP_BUF_INIT;
    int rc = parse(argc, argv, 1, show_usage, show_help, &a);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    hp_err_init(&err);
    struct hp_site_opts o = { .workflow_dir = a.workflow_dir, .sets = a.sets, .nsets = a.nsets };
    s = looks_like_path(a.name) ? hp_site_load_file(a.name, &o, &err)
                                : hp_site_load(a.name, &o, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (a.json) {
        json_t *out = json_pack("{s:s, s:O}", "name", s->name, "profile", s->root);
        if (s->catalog_commit)
            json_object_set_new(out, "catalog", json_pack("{s:s, s:s}", "url", s->catalog_url,
                                                          "commit", s->catalog_commit));
        if (a.origin) {
            json_t *origins = json_object();
            flatten(s, s->root, &ptr, &key, 0, origins);
            json_object_set_new(out, "origins", origins);
        }
        print_json(out);
        json_decref(out);
    } else {
        if (s->catalog_commit)
            printf("# from the site catalog %s at commit %s\n", s->catalog_url,
                   s->catalog_commit);
        flatten(s, s->root, &ptr, &key, a.origin, NULL);
    }
out:
    hp_site_free(s);
    hp_buf_release(&ptr);
    hp_buf_release(&key);
    free(a.workflow_dir);
    free(a.sets);
    return rc;
}

static const char trust_help[] =
    "\n"
    "Connect to the site's jump hosts and login host and show each host key's\n"
    "type and SHA256 fingerprint. Keys already known are left alone; an unknown\n"
    "key is added to hpcport's known_hosts file ($XDG_CONFIG_HOME/hpcport/\n"
    "known_hosts) after you confirm that it is the site's (compare it with what\n"
    "the site publishes), or at once with --yes. Jump hosts are logged in to, to\n"
    "reach the hosts behind them; the login host is not. A key that differs from\n"
    "a recorded one is never replaced: remove the old line first.\n"
    "\n"
    "options:\n"
    "    --yes              trust unknown keys without asking\n"
    "    --set KEY=VALUE    override a value of the profile; may be repeated\n"
    "    --workflow FILE    use the sites/ folder beside workflow FILE as a layer\n"
    "    --dir DIR          use DIR/sites/ as the workflow layer\n"
    "    -h, --help         show this help\n"
    "\n"
    "exit status: 0 all keys trusted, 4 a key unknown and not trusted, changed,\n"
    "or a host unreachable.\n";

static void show_hostkey(void *ud, const struct hp_ssh_hostkey *k)
{
    int *refused = ud;
    char hn[600];
    if (k->port == 22)
        snprintf(hn, sizeof(hn), "%s", k->host);
    else
        snprintf(hn, sizeof(hn), "[%s]:%d", k->host, k->port);
    printf("%s: %s %s %s", k->role, hn, k->type, k->fingerprint);
    if (!strcmp(k->status, "known"))
        printf(" (known: %s)\n", k->where ? k->where : "");
    else if (!strcmp(k->status, "added"))
        printf(" (added: %s)\n", k->where ? k->where : "");
    else {
        printf(" (not trusted)\n");
        *refused = 1;
    }
    fflush(stdout);
}

static int site_trust(int argc, char **argv)
{
    enum { OPT_YES = 300 };
    static const struct option opts[] = {
        { "yes", no_argument, NULL, OPT_YES },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *name = NULL;
    struct hp_cli_siteargs sa = { 0 };
    int yes = 0, c, rc, refused = 0;
    struct hp_site *s = NULL;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(trust_usage, stdout);
            fputs(trust_help, stdout);
            rc = 0;
            goto out;
        case OPT_YES: yes = 1; break;
        case ':':
            rc = hp_cli_usage_error(trust_usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(trust_usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind >= argc) {
        rc = hp_cli_usage_error(trust_usage, "no site name given");
        goto out;
    }
    name = argv[optind++];
    if (optind < argc) {
        rc = hp_cli_usage_error(trust_usage, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    s = hp_cli_site(name, &sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (!s->login_host) {
        rc = hp_cli_fail(HP_ESITE, "site '%s' has no login.host: there are no host keys to "
                         "trust", s->name);
        goto out;
    }
    struct hp_ssh_opts o = { .trust = yes ? HP_SSH_TRUST_YES : HP_SSH_TRUST_ASK,
                             .keys_only = 1, .on_hostkey = show_hostkey, .ud = &refused };
    struct hp_ssh *ssh = hp_ssh_open(s, &o, &err);
    if (!ssh) {
        if (strstr(err.msg, "no terminal") || strstr(err.msg, "without a terminal")) {
            char *m = hp_xasprintf("%s; if the fingerprint is the site's, run 'hpcport site "
                                   "trust %s --yes'", err.msg, s->name);
            snprintf(err.msg, sizeof(err.msg), "%s", m);
            free(m);
        }
        rc = hp_cli_error(&err);
        goto out;
    }
    hp_ssh_close(ssh);
    rc = refused ? HP_ESITE : 0;
out:
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    return rc;
}

static const char check_help[] =
    "\n"
    "Compare the profile NAME with the live site and print one row per check:\n"
    "CHECK, STATUS (ok, warn, FAIL, skip) and DETAIL. Checks: the login host is\n"
    "reachable, its host key known and the login works; the scheduler's commands\n"
    "and version; each declared partition exists and is up, allows the declared\n"
    "max_walltime and has the declared GPUs; cores and memory per node; the\n"
    "account and qos exist and are yours; scratch is writable (free space); the\n"
    "login node's outbound access is what network.login says (a probe of\n"
    "https://github.com, through network.proxy when declared); and, from a\n"
    "one-task job in the default partition (sbatch --wait), the compute node's\n"
    "outbound access, the container runtime and the GPUs it sees. A FAIL row\n"
    "names the profile line that declared the wrong value.\n"
    "\n"
    "options:\n"
    "    --json                 print {\"site\", \"ok\", \"checks\": [{\"check\",\n"
    "                           \"status\", \"detail\", \"origin\"}]}\n"
    "    --no-job               do not submit the probe job (its checks are skipped)\n"
    "    --job-timeout DURATION give up waiting for the probe job after DURATION\n"
    "                           (default 2m); it is canceled\n"
    "    --set KEY=VALUE        override a value of the profile; may be repeated\n"
    "    --workflow FILE        use the sites/ folder beside workflow FILE as a layer\n"
    "    --dir DIR              use DIR/sites/ as the workflow layer\n"
    "    -h, --help             show this help\n"
    "\n"
    "exit status: 0 no check failed (warnings allowed), 2 usage error, 3 or 4 the\n"
    "profile does not resolve, 4 a check failed.\n";

static int site_check(int argc, char **argv)
{
    enum { OPT_NO_JOB = 400, OPT_JOB_TIMEOUT };
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "no-job", no_argument, NULL, OPT_NO_JOB },
        { "job-timeout", required_argument, NULL, OPT_JOB_TIMEOUT },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    size_t fails = 0;
    int json = 0, c, rc;
    struct hp_check_opts co = { 0 };
    struct hp_check_report rep = { 0 };
    struct hp_site *s = NULL;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(check_usage, stdout);
            fputs(check_help, stdout);
            rc = 0;
            goto out;
        case OPT_JSON: json = 1; break;
        case OPT_NO_JOB: co.no_job = 1; break;
        case OPT_JOB_TIMEOUT: {
            int64_t d = hp_parse_duration(optarg);
            if (d <= 0) {
                rc = hp_cli_usage_error(check_usage, "--job-timeout wants a duration like 90s or "
                                        "5m, not '%s'", optarg);
                goto out;
            }
            co.job_timeout = (double)d;
            break;
        }
        case ':':
            rc = hp_cli_usage_error(check_usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(check_usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc - 1) {
        rc = hp_cli_usage_error(check_usage, optind >= argc ? "no site name given"
                                                            : "unexpected argument '%s'",
                                argv[argc - 1]);
        goto out;
    }
    s = hp_cli_site(argv[optind], &sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    const struct hp_adapter_ops *ad = hp_adapter_find(s->scheduler);
    if (!ad || !ad->check) {
        rc = hp_cli_fail(HP_ESITE, "site '%s' uses scheduler '%s', which has no live checks",
                         s->name, s->scheduler);
        goto out;
    }
    hp_cli_auth_init();
    if (ad->check(s, &co, &rep, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    for (size_t i = 0; i < rep.n; i++)
        fails += rep.rows[i].status == HP_CHECK_FAIL;
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < rep.n; i++) {
            const struct hp_check_row *r = &rep.rows[i];
            const char *st = r->status == HP_CHECK_OK ? "ok" : r->status == HP_CHECK_WARN
                                 ? "warn" : r->status == HP_CHECK_FAIL ? "fail" : "skip";
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?}", "check", r->check,
                                                 "status", st, "detail", r->detail,
                                                 "origin", r->origin));
        }
        json_t *doc = json_pack("{s:s, s:b, s:o}", "site", s->name, "ok", fails == 0,
                                "checks", arr);
        print_json(doc);
        json_decref(doc);
    } else {
        int w = 5;
        for (size_t i = 0; i < rep.n; i++)
            w = (int)strlen(rep.rows[i].check) > w ? (int)strlen(rep.rows[i].check) : w;
        printf("%-*s  %-6s  %s\n", w, "CHECK", "STATUS", "DETAIL");
        for (size_t i = 0; i < rep.n; i++) {
            const struct hp_check_row *r = &rep.rows[i];
            printf("%-*s  %-6s  %s", w, r->check, hp_check_status_name(r->status), r->detail);
            if (r->origin && r->status != HP_CHECK_OK)
                printf(" (profile: %s)", r->origin);
            fputc('\n', stdout);
        }
    }
    fflush(stdout);
    rc = 0;
    if (fails)
        rc = hp_cli_fail(HP_ESITE, "site '%s': %zu check%s failed; the profile lines named "
                         "above declare what the site does not have", s->name, fails,
                         fails == 1 ? "" : "s");
out:
    hp_check_report_release(&rep);
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    return rc;
}

static const char deploy_help[] =
    "\n"
    "Put this hpcport binary on site NAME, as\n"
    "$HOME/.local/share/hpcport/bin/hpcport-VERSION-HASH (HASH: 12 hex digits of\n"
    "its SHA-256), with the link $HOME/.local/share/hpcport/bin/hpcport pointing at\n"
    "it; set remote.hpcport to the link's path. First the site is probed (uname -m,\n"
    "its C library and version, ldconfig -p) and compared with what the binary needs\n"
    "(its ELF machine, the highest GLIBC_x.y it uses, the shared libraries it links);\n"
    "a site that differs is refused before anything is copied, naming what differs\n"
    "and how to build hpcport there. The copy is checked (size, SHA-256), run with\n"
    "'version' on the site under a trial name (removed if it does not run), then\n"
    "renamed and linked atomically. When the same build is already there and runs,\n"
    "nothing is copied (\"already deployed\"). Older versions are kept.\n"
    "\n"
    "options:\n"
    "    --list             list the versions on the site ('*' marks the linked one)\n"
    "    --dry-run          probe and compare only; copy nothing\n"
    "    --prune            after deploying, remove the versions other than the\n"
    "                       linked one\n"
    "    --binary FILE      deploy FILE (an hpcport built elsewhere) instead of\n"
    "                       this binary\n"
    "    --json             print {\"site\", \"path\", \"link\", \"name\", \"version\",\n"
    "                       \"sha256\", \"uploaded\", \"relinked\", \"arch\", \"pruned\"};\n"
    "                       with --list {\"site\", \"dir\", \"current\", \"versions\"}\n"
    "    --set KEY=VALUE    override a value of the profile; may be repeated\n"
    "    --workflow FILE    use the sites/ folder beside workflow FILE as a layer\n"
    "    --dir DIR          use DIR/sites/ as the workflow layer\n"
    "    -h, --help         show this help\n"
    "\n"
    "exit status: 0 deployed or already deployed, 2 usage error, 3 or 4 the profile\n"
    "does not resolve, 4 the site cannot run the binary or cannot be reached, 6 a\n"
    "file could not be read or copied.\n";

static void deploy_list(const struct hp_site *s, const struct hp_deploy_result *r, int json)
{
    char *dir = hp_dirname(r->link);
    if (json) {
        json_t *v = json_array();
        for (size_t i = 0; i < r->site.nfiles; i++)
            json_array_append_new(v, json_string(r->site.files[i]));
        json_t *doc = json_pack("{s:s, s:s, s:s?, s:o}", "site", s->name, "dir", dir,
                                "current", r->site.current, "versions", v);
        print_json(doc);
        json_decref(doc);
    } else {
        for (size_t i = 0; i < r->site.nfiles; i++)
            printf("%c %s/%s\n",
                   r->site.current && !strcmp(r->site.current, r->site.files[i]) ? '*' : ' ',
                   dir, r->site.files[i]);
    }
    free(dir);
}

static int site_deploy(int argc, char **argv)
{
    enum { OPT_LIST = 500, OPT_PRUNE, OPT_DRY, OPT_BINARY };
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "list", no_argument, NULL, OPT_LIST },
        { "prune", no_argument, NULL, OPT_PRUNE },
        { "dry-run", no_argument, NULL, OPT_DRY },
        { "binary", required_argument, NULL, OPT_BINARY },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    struct hp_deploy_opts o = { 0 };
    struct hp_deploy_result r = { 0 };
    char **pruned = NULL;
    size_t npruned = 0;
    int json = 0, list = 0, prune = 0, c, rc;
    struct hp_site *s = NULL;
    struct hp_conn *conn = NULL;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(deploy_usage, stdout);
            fputs(deploy_help, stdout);
            rc = 0;
            goto out;
        case OPT_JSON: json = 1; break;
        case OPT_LIST: list = 1; break;
        case OPT_PRUNE: prune = 1; break;
        case OPT_DRY: o.dry_run = 1; break;
        case OPT_BINARY: o.binary = optarg; break;
        case ':':
            rc = hp_cli_usage_error(deploy_usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(deploy_usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc - 1) {
        rc = hp_cli_usage_error(deploy_usage, optind >= argc ? "no site name given"
                                                             : "unexpected argument '%s'",
                                argv[argc - 1]);
        goto out;
    }
    if (list + prune + o.dry_run > 1) {
        rc = hp_cli_usage_error(deploy_usage, "--list, --dry-run and --prune do not go "
                                "together; give one");
        goto out;
    }
    s = hp_cli_site(argv[optind], &sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    hp_cli_auth_init();
    conn = hp_conn_open(s, &err);
    if (!conn) {
        rc = hp_cli_error(&err);
        goto out;
    }
    o.site = s->name;
    if (list) {
        if (hp_deploy_probe(conn, &r, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
        deploy_list(s, &r, json);
        rc = 0;
        goto out;
    }
    if (hp_deploy(conn, &o, &r, &err) < 0 ||
        (prune && hp_deploy_prune(conn, &r, &pruned, &npruned, &err) < 0)) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (json) {
        json_t *pr = json_array();
        for (size_t i = 0; i < npruned; i++)
            json_array_append_new(pr, json_string(pruned[i]));
        json_t *doc = json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s, s:b, s:b, s:s, s:b, s:o}",
                                "site", s->name, "path", r.path, "link", r.link, "name", r.name,
                                "version", r.version, "sha256", r.bin.sha256,
                                "uploaded", r.uploaded, "relinked", r.relinked,
                                "arch", r.site.arch, "dry_run", o.dry_run, "pruned", pr);
        print_json(doc);
        json_decref(doc);
    } else if (o.dry_run) {
        char libc[48];
        if (r.site.glibc_major)
            snprintf(libc, sizeof(libc), "glibc %d.%d", r.site.glibc_major, r.site.glibc_minor);
        else
            snprintf(libc, sizeof(libc), "%s", r.site.musl ? "musl" : "C library unknown");
        printf("site '%s' can run this binary (%s, %s; the binary needs glibc %d.%d), to be "
               "installed under %s\n", s->name, r.site.arch, libc, r.bin.glibc_major,
               r.bin.glibc_minor, r.link);
    } else {
        printf("%s %s on site '%s': %s\n", r.uploaded ? "deployed" : "already deployed",
               r.version, s->name, r.path);
        printf("link: %s -> %s%s\n", r.link, r.name, r.relinked ? " (updated)" : "");
        for (size_t i = 0; i < npruned; i++)
            printf("pruned: %s\n", pruned[i]);
        if (!strcmp(s->remote_hpcport, r.link))
            printf("remote.hpcport of site '%s' is this link already\n", s->name);
        else
            printf("use it: add 'remote: {hpcport: %s}' to the site's profile, or pass "
                   "--set remote.hpcport=%s\n", r.link, r.link);
    }
    fflush(stdout);
    rc = 0;
out:
    for (size_t i = 0; i < npruned; i++)
        free(pruned[i]);
    free(pruned);
    hp_deploy_result_release(&r);
    hp_conn_free(conn);
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    return rc;
}

int cmd_site(int argc, char **argv)
{
    static const char *const subs[] = { "list", "show", "trust", "check", "deploy", NULL };
    if (argc < 2)
        return hp_cli_usage_error(site_usage, "no site command given");
    const char *sub = argv[1];
    if (hp_cli_is_help(sub)) {
        fputs(site_usage, stdout);
        fputs(site_help, stdout);
        return 0;
    }
    if (!strcmp(sub, "list"))
        return site_list(argc - 1, argv + 1);
    if (!strcmp(sub, "show"))
        return site_show(argc - 1, argv + 1);
    if (!strcmp(sub, "trust"))
        return site_trust(argc - 1, argv + 1);
    if (!strcmp(sub, "check"))
        return site_check(argc - 1, argv + 1);
    if (!strcmp(sub, "deploy"))
        return site_deploy(argc - 1, argv + 1);
    const char *s = hp_suggest(sub, subs);
    if (s)
        return hp_cli_usage_error(site_usage, "'%s' is not a site command (did you mean '%s'?)",
                                  sub, s);
    return hp_cli_usage_error(site_usage, "'%s' is not a site command", sub);
}
