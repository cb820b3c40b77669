/* cmd-sites.c - hpcport sites [list] | sync: the site catalog, a git repository
 * of shared profiles pinned to one commit (sites/catalog.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "cli.h"
#include "catalog.h"
#include "site.h"
#include "util.h"
#include "banned.h"

static const char list_usage[] = "usage: hpcport sites [list] [--json]\n";
static const char sync_usage[] =
    "usage: hpcport sites sync [URL] [--force] [--ca-file FILE] [--json]\n";
static const char sites_usage[] =
    "usage: hpcport sites [list] [--json]\n"
    "   or: hpcport sites sync [URL] [--force] [--ca-file FILE] [--json]\n";

static const char sites_help[] =
    "\n"
    "The site catalog: a git repository of shared site profiles (sites/NAME.yaml),\n"
    "fetched with 'sync' and pinned to one commit. Catalog profiles lie between\n"
    "the bundled profiles and your own ($XDG_CONFIG_HOME/hpcport/sites/), so your\n"
    "file of the same name wins. Everything but 'sync' works offline from the\n"
    "pinned copy in $XDG_DATA_HOME/hpcport/catalog/.\n"
    "\n"
    "commands:\n"
    "    list    the catalog's profiles at the pinned commit (the default)\n"
    "    sync    fetch the catalog, check every profile, move the pin\n"
    "\n"
    "'hpcport sites <command> --help' tells more; see hpcport-site(5).\n";

static const char list_help[] =
    "\n"
    "List the profiles of the pinned catalog commit: NAME and DESCRIPTION (as\n"
    "resolved, so your own files' values show), after a line naming the catalog\n"
    "URL, commit and the time of the last sync.\n"
    "\n"
    "options:\n"
    "    --json         print {\"url\", \"commit\", \"synced\", \"profiles\": [{\"name\",\n"
    "                   \"description\", \"error\"}]}\n"
    "    -h, --help     show this help\n"
    "\n"
    "exit status: 0 ok (also when there is no catalog yet), 6 the catalog\n"
    "copy is damaged.\n";

static const char sync_help[] =
    "\n"
    "Fetch the catalog repository's HEAD from URL (file://, ssh:// or https://;\n"
    "remembered after the first sync), check every profile in sites/*.yaml of it\n"
    "against the site schema, and only when all pass pin that commit. Prints the\n"
    "profiles added (A), modified (M) and removed (D) since the last pin and the\n"
    "commits between. A head that does not descend from the pinned commit (the\n"
    "history was rewritten) is refused unless --force. On any failure the pin\n"
    "stays where it was, and every other command goes on using it.\n"
    "\n"
    "ssh:// uses the ssh agent or the key files of ~/.ssh/config ($HPCPORT_SSH_CONFIG)\n"
    "and accepts only host keys already in known_hosts. https:// checks the\n"
    "server's certificate against --ca-file, $HPCPORT_CA_FILE, the CA file given\n"
    "before, or the system's certificates.\n"
    "\n"
    "options:\n"
    "    --force          accept a rewritten history, or start again after the\n"
    "                     catalog copy was damaged\n"
    "    --ca-file FILE   certificate authorities for https:// (remembered)\n"
    "    --json           print {\"url\", \"old\", \"new\", \"unchanged\", \"forced\",\n"
    "                     \"profiles\", \"changes\": [{\"change\", \"name\"}], \"log\"}\n"
    "    -h, --help       show this help\n"
    "\n"
    "exit status: 0 pinned (or already up to date), 2 usage error or no URL\n"
    "known, 3 a profile fails the schema, 4 remote unreachable, refused host\n"
    "key or certificate, rewritten history or unusable profile, 6 local I/O.\n";

enum { OPT_JSON = 256, OPT_FORCE, OPT_CA };

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static int sites_list(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int json = 0, c, rc = 0;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(list_usage, stdout);
            fputs(list_help, stdout);
            return 0;
        case OPT_JSON: json = 1; break;
        default:
            return hp_cli_usage_error(list_usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hp_cli_usage_error(list_usage, "unexpected argument '%s'", argv[optind]);
    struct hp_catalog *cat = hp_catalog_open(&err);
    if (!cat && err.code)
        return hp_cli_error(&err);
    struct hp_catalog_state st = { 0 };
    if (cat && hp_catalog_state_load(&st, &err) < 0) {
        hp_catalog_close(cat);
        return hp_cli_error(&err);
    }
    char **names = cat ? hp_catalog_names(cat, &err) : NULL;
    char *url = cat ? hp_catalog_redact_url(hp_catalog_url(cat)) : NULL;
    json_t *arr = json_array();
    for (size_t i = 0; names && names[i]; i++) {
        struct hp_err le;
        hp_err_init(&le);
        struct hp_site *s = hp_site_load(names[i], NULL, &le);
        char line[2200] = "";
        if (!s)
            hp_err_format(&le, line, sizeof(line));
        json_array_append_new(arr, json_pack("{s:s, s:s?, s:s?}", "name", names[i],
                                             "description", s ? s->description : NULL,
                                             "error", s ? NULL : line));
        hp_site_free(s);
    }
    if (json) {
        json_t *o = json_pack("{s:s?, s:s?, s:O}", "url", url,
                              "commit", cat ? hp_catalog_commit(cat) : NULL, "profiles", arr);
        if (cat)
            json_object_set_new(o, "synced", json_integer((json_int_t)st.synced));
        print_json(o);
        json_decref(o);
    } else if (!cat) {
        printf("no site catalog yet: fetch one with 'hpcport sites sync URL'\n");
    } else {
        char when[64] = "?";
        time_t t = (time_t)st.synced;
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        printf("catalog %s at %.12s (synced %s)\n", url, hp_catalog_commit(cat), when);
        int w = 4;
        for (size_t i = 0; names[i]; i++)
            w = (int)strlen(names[i]) > w ? (int)strlen(names[i]) : w;
        printf("%-*s  %s\n", w, "NAME", "DESCRIPTION");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *e = json_array_get(arr, i);
            const char *d = json_string_value(json_object_get(e, "description"));
            const char *er = json_string_value(json_object_get(e, "error"));
            if (er)
                fprintf(stderr, "%s\n", er);
            printf("%-*s  %s\n", w, json_string_value(json_object_get(e, "name")),
                   er ? "(does not resolve; see the error above)" : d ? d : "");
        }
    }
    json_decref(arr);
    free(url);
    hp_catalog_names_free(names);
    hp_catalog_state_release(&st);
    hp_catalog_close(cat);
    return rc;
}

static int sites_sync(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "force", no_argument, NULL, OPT_FORCE },
        { "ca-file", required_argument, NULL, OPT_CA },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_catalog_sync_opts o = { 0 };
    struct hp_catalog_sync_result r;
    struct hp_err err;
    int json = 0, c;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(sync_usage, stdout);
            fputs(sync_help, stdout);
            return 0;
        case OPT_JSON: json = 1; break;
        case OPT_FORCE: o.force = 1; break;
        case OPT_CA: o.ca_file = optarg; break;
        case ':':
            return hp_cli_usage_error(sync_usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return hp_cli_usage_error(sync_usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        o.url = argv[optind++];
    if (optind < argc)
        return hp_cli_usage_error(sync_usage, "unexpected argument '%s'", argv[optind]);
    if (hp_catalog_sync(&o, &r, &err) < 0) {
        hp_catalog_sync_result_release(&r);
        return hp_cli_error(&err);
    }
    static const char *const words[] = { ['A'] = "added", ['M'] = "modified",
                                         ['D'] = "removed" };
    if (json) {
        json_t *ch = json_array(), *log = json_array();
        for (size_t i = 0; i < r.nchanges; i++)
            json_array_append_new(ch, json_pack("{s:s, s:s}", "change",
                                                words[(unsigned char)r.changes[i].what],
                                                "name", r.changes[i].name));
        for (size_t i = 0; i < r.nlog; i++)
            json_array_append_new(log, json_string(r.log[i]));
        json_t *out = json_pack("{s:s, s:s?, s:s, s:b, s:b, s:I, s:o, s:o}", "url", r.url,
                                "old", r.old_commit, "new", r.new_commit,
                                "unchanged", r.unchanged, "forced", r.forced,
                                "profiles", (json_int_t)r.nprofiles, "changes", ch, "log", log);
        print_json(out);
        json_decref(out);
    } else {
        if (r.unchanged)
            printf("catalog %s: already at %.12s (%zu profiles)\n", r.url, r.new_commit,
                   r.nprofiles);
        else if (!r.old_commit)
            printf("catalog %s: pinned %.12s (%zu profiles, first sync)\n", r.url, r.new_commit,
                   r.nprofiles);
        else
            printf("catalog %s: %.12s..%.12s%s (%zu profiles)\n", r.url, r.old_commit,
                   r.new_commit, r.forced ? " (forced: history rewritten)" : "", r.nprofiles);
        for (size_t i = 0; i < r.nchanges; i++)
            printf("  %c %-30s %s\n", r.changes[i].what, r.changes[i].name,
                   words[(unsigned char)r.changes[i].what]);
        if (!r.unchanged && r.nlog) {
            printf("commits:\n");
            for (size_t i = 0; i < r.nlog; i++)
                printf("  %s\n", r.log[i]);
            if (r.more_log)
                printf("  ... and %zu more\n", r.more_log);
        }
    }
    hp_catalog_sync_result_release(&r);
    return 0;
}

int cmd_sites(int argc, char **argv)
{
    static const char *const subs[] = { "list", "sync", NULL };
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && hp_cli_is_help(argv[1])) {
            fputs(sites_usage, stdout);
            fputs(sites_help, stdout);
            return 0;
        }
        return sites_list(argc, argv);
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "list"))
        return sites_list(argc - 1, argv + 1);
    if (!strcmp(sub, "sync"))
        return sites_sync(argc - 1, argv + 1);
    const char *s = hp_suggest(sub, subs);
    if (s)
        return hp_cli_usage_error(sites_usage, "'%s' is not a sites command (did you mean "
                                  "'%s'?)", sub, s);
    return hp_cli_usage_error(sites_usage, "'%s' is not a sites command", sub);
}
