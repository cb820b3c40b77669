/* cmd-adapters.c - hpcport adapters: the built-in adapters, the plugins on the
 * plugin path with the hooks each implements, and the plugins that were
 * refused, with the reason (adapters/plugin.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "cli.h"
#include "hpcport-adapter.h"
#include "plugin.h"
#include "banned.h"

static const char usage[] = "usage: hpcport adapters [--json]\n";

static const char help[] =
    "\n"
    "List the adapters this hpcport can drive sites with: the built-in ones and\n"
    "the adapter plugins (NAME.so) found in the plugin directories, searched in\n"
    "this order: each directory of $HPCPORT_PLUGIN_PATH (colon separated),\n"
    "$XDG_DATA_HOME/hpcport/adapters, and the installed plugin directory. For\n"
    "each: NAME (what a site's scheduler.type names), ABI, ORIGIN (built-in or the\n"
    "file) and the hooks it implements. Plugins that were refused (wrong ABI, no\n"
    "entry point, no render hook, not loadable...) are listed with the reason;\n"
    "plugins hidden by a built-in adapter or an earlier directory are listed as\n"
    "shadowed. Writing a plugin: hpcport-adapter(7).\n"
    "\n"
    "options:\n"
    "    --json        print {abi, path[], adapters[], refused[], shadowed[]}\n"
    "    -h, --help    show this help\n"
    "\n"
    "exit status: 0 (refused plugins are listed, not an error), 2 usage error.\n";

struct hook {
    const char *name;
    int (*has)(const struct hp_adapter_ops *o);
};

#define HOOK(h) \
    static int has_##h(const struct hp_adapter_ops *o) { return o->h != NULL; }
HOOK(render) HOOK(submit) HOOK(status) HOOK(cancel) HOOK(wait) HOOK(capacity)
HOOK(open) HOOK(close) HOOK(adopt) HOOK(prepare) HOOK(collect) HOOK(check)
#undef HOOK

static const struct hook hooks[] = {
    { "render", has_render }, { "submit", has_submit }, { "status", has_status },
    { "cancel", has_cancel }, { "wait", has_wait }, { "capacity", has_capacity },
    { "open", has_open }, { "close", has_close }, { "adopt", has_adopt },
    { "prepare", has_prepare }, { "collect", has_collect }, { "check", has_check },
};

static void hooks_text(const struct hp_adapter_ops *o, struct hp_buf *out)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
        if (hooks[i].has(o))
            hp_buf_addf(out, "%s%s", n++ ? " " : "", hooks[i].name);
}

static json_t *hooks_json(const struct hp_adapter_ops *o)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
        if (hooks[i].has(o))
            json_array_append_new(a, json_string(hooks[i].name));
    return a;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void print_json(const struct hp_plugin_dir *d, size_t nd,
                       const struct hp_plugin_info *pl, size_t np)
{
    json_t *dirs = json_array(), *ads = json_array(), *refused = json_array(),
           *shadowed = json_array();
    const struct hp_adapter_ops *const *b = hp_adapter_list();
    for (size_t i = 0; i < nd; i++)
        json_array_append_new(dirs, json_pack("{s:s, s:s, s:b}", "dir", d[i].path, "source",
                                              d[i].source, "exists", is_dir(d[i].path)));
    for (size_t i = 0; b[i]; i++)
        json_array_append_new(ads, json_pack("{s:s, s:s, s:i, s:o}", "name", b[i]->name,
                                             "origin", "built-in", "abi",
                                             (int)HPCPORT_ADAPTER_ABI, "hooks",
                                             hooks_json(b[i])));
    for (size_t i = 0; i < np; i++) {
        const struct hp_plugin_info *p = &pl[i];
        if (p->shadowed_by)
            json_array_append_new(shadowed, json_pack("{s:s, s:s, s:s}", "name", p->name,
                                                      "path", p->path, "by", p->shadowed_by));
        else if (p->error)
            json_array_append_new(refused, json_pack("{s:s, s:s, s:i, s:s}", "name", p->name,
                                                     "path", p->path, "abi", (int)p->abi,
                                                     "error", p->error));
        else
            json_array_append_new(ads, json_pack("{s:s, s:s, s:i, s:s?, s:s?, s:o}", "name",
                                                 p->name, "origin", p->path, "abi",
                                                 (int)p->abi, "version", p->version,
                                                 "summary", p->summary, "hooks",
                                                 hooks_json(p->ops)));
    }
    json_t *doc = json_pack("{s:i, s:o, s:o, s:o, s:o}", "abi", (int)HPCPORT_ADAPTER_ABI,
                            "path", dirs, "adapters", ads, "refused", refused,
                            "shadowed", shadowed);
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(doc);
}

static void print_text(const struct hp_plugin_dir *d, size_t nd,
                       const struct hp_plugin_info *pl, size_t np)
{
    struct hp_buf out = HP_BUF_INIT, h = HP_BUF_INIT;
    const struct hp_adapter_ops *const *b = hp_adapter_list();
    int w = 4, ow = 8;
    for (size_t i = 0; b[i]; i++)
        w = (int)strlen(b[i]->name) > w ? (int)strlen(b[i]->name) : w;
    for (size_t i = 0; i < np; i++) {
        if (pl[i].error || pl[i].shadowed_by)
            continue;
        w = (int)strlen(pl[i].name) > w ? (int)strlen(pl[i].name) : w;
        ow = (int)strlen(pl[i].path) > ow ? (int)strlen(pl[i].path) : ow;
    }
    hp_buf_addf(&out, "%-*s  ABI  %-*s  %s\n", w, "NAME", ow, "ORIGIN", "HOOKS");
    for (size_t i = 0; b[i]; i++) {
        hp_buf_reset(&h);
        hooks_text(b[i], &h);
        hp_buf_addf(&out, "%-*s  %-3u  %-*s  %s\n", w, b[i]->name, HPCPORT_ADAPTER_ABI, ow,
                    "built-in", h.buf);
    }
    for (size_t i = 0; i < np; i++) {
        const struct hp_plugin_info *p = &pl[i];
        if (p->error || p->shadowed_by)
            continue;
        hp_buf_reset(&h);
        hooks_text(p->ops, &h);
        hp_buf_addf(&out, "%-*s  %-3u  %-*s  %s\n", w, p->name, p->abi, ow, p->path, h.buf);
    }
    int head = 0;
    for (size_t i = 0; i < np; i++) {
        const struct hp_plugin_info *p = &pl[i];
        if (p->error || p->shadowed_by || (!p->summary && !p->version))
            continue;
        if (!head++)
            hp_buf_adds(&out, "\n");
        hp_buf_addf(&out, "%s: %s%s%s%s%s\n", p->name, p->summary ? p->summary : "",
                    p->summary && p->version ? " (" : "", p->version ? "version " : "",
                    p->version ? p->version : "", p->summary && p->version ? ")" : "");
    }
    head = 0;
    for (size_t i = 0; i < np; i++) {
        if (!pl[i].error || pl[i].shadowed_by)
            continue;
        if (!head++)
            hp_buf_adds(&out, "\nrefused plugins:\n");
        hp_buf_addf(&out, "  %s\n", pl[i].error);
    }
    head = 0;
    for (size_t i = 0; i < np; i++) {
        if (!pl[i].shadowed_by)
            continue;
        if (!head++)
            hp_buf_adds(&out, "\nshadowed plugins:\n");
        if (!strcmp(pl[i].shadowed_by, "built-in"))
            hp_buf_addf(&out, "  %s: adapter '%s' is built in\n", pl[i].path, pl[i].name);
        else
            hp_buf_addf(&out, "  %s: %s comes first\n", pl[i].path, pl[i].shadowed_by);
    }
    hp_buf_adds(&out, "\nplugin path:\n");
    for (size_t i = 0; i < nd; i++)
        hp_buf_addf(&out, "  %s (%s%s)\n", d[i].path, d[i].source,
                    is_dir(d[i].path) ? "" : ", missing");
    fwrite(out.buf, 1, out.len, stdout);
    hp_buf_release(&h);
    hp_buf_release(&out);
}

int cmd_adapters(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int json = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            return hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    size_t nd, np;
    struct hp_plugin_dir *d = hp_plugin_dirs(&nd);
    struct hp_plugin_info *pl;
    hp_plugin_scan(&pl, &np);
    if (json)
        print_json(d, nd, pl, np);
    else
        print_text(d, nd, pl, np);
    hp_plugin_infos_free(pl, np);
    hp_plugin_dirs_free(d, nd);
    return 0;
}
