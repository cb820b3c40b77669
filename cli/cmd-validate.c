/* cmd-validate.c - hpcport validate: check workflow and site files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"
#include "doc.h"
#include "schema.h"
#include "adapter.h"
#include "site.h"
#include "workflow.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport validate [--type workflow|site] [--json] [-q] FILE...\n";

static const char help[] =
    "\n"
    "Check workflow and site profile files against hpcport's schemas and rules.\n"
    "A file's type is guessed from its content (a 'tasks' key makes a workflow);\n"
    "--type forces it. Errors are printed as FILE:LINE:COL: error: MESSAGE (at\n"
    "/json/pointer), one per invalid file.\n"
    "\n"
    "options:\n"
    "    -t, --type TYPE   treat every FILE as a workflow or a site profile\n"
    "    --json            print one JSON array with a result per file\n"
    "    -q, --quiet       print nothing for valid files\n"
    "    -h, --help        show this help\n"
    "\n"
    "exit status: 0 all valid, 3 some file invalid, 2 usage error.\n";

static const char *guess_type(const struct hp_doc *doc)
{
    if (json_is_object(doc->root) && json_object_get(doc->root, "tasks"))
        return "workflow";
    if (json_is_object(doc->root) &&
        (json_object_get(doc->root, "scheduler") || json_object_get(doc->root, "extends") ||
         json_object_get(doc->root, "login") || json_object_get(doc->root, "network")))
        return "site";
    return "workflow";
}

static int check_one(const char *path, const char *type, json_t *results, int quiet)
{
    struct hp_err err;
    hp_err_init(&err);
    char summary[256] = "";
    const char *kind = type;
    struct hp_doc *doc = hp_doc_load_file(path, NULL, &err);
    int ok = 0;

    if (doc) {
        if (!kind)
            kind = guess_type(doc);
        if (!strcmp(kind, "site")) {
            /* the full resolution: schema, extends, durations, partitions */
            hp_doc_free(doc);
            struct hp_site_opts so = { 0 };
            struct hp_site *s = hp_site_load_file(path, &so, &err);
            /* and an adapter for its scheduler, built in or a plugin */
            ok = s != NULL && hp_adapter_for_site(s, &err) != NULL;
            if (ok)
                snprintf(summary, sizeof(summary), "site profile '%s', scheduler %s",
                         s->name, s->scheduler);
            hp_site_free(s);
        } else {
            struct hp_workflow *wf = hp_workflow_from_doc(doc, &err);
            if (wf && hp_workflow_expand(wf, NULL, 0, &err) == 0) {
                ok = 1;
                snprintf(summary, sizeof(summary), "workflow '%s', %zu task%s, %zu instance%s",
                         wf->name, wf->ntasks, wf->ntasks == 1 ? "" : "s", wf->ninst,
                         wf->ninst == 1 ? "" : "s");
            }
            hp_workflow_free(wf);
        }
    }
    if (results) {
        json_t *r = json_pack("{s:s, s:s?, s:b}", "file", path, "type", kind, "valid", ok);
        if (!ok) {
            char line[2200];
            hp_err_format(&err, line, sizeof(line));
            json_object_set_new(r, "error", json_pack("{s:s, s:i, s:i, s:s, s:s}",
                                                      "message", err.msg, "line", err.line,
                                                      "column", err.col, "pointer", err.pointer,
                                                      "text", line));
        } else {
            json_object_set_new(r, "summary", json_string(summary));
        }
        json_array_append_new(results, r);
    } else if (!ok) {
        hp_cli_error(&err);
    } else if (!quiet) {
        printf("%s: ok (%s)\n", path, summary);
    }
    return ok ? 0 : (err.code ? err.code : HP_EINPUT);
}

int cmd_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "type", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *type = NULL;
    int json = 0, quiet = hp_cli.quiet, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "workflow") && strcmp(optarg, "site"))
                return hp_cli_usage_error(usage, "--type must be 'workflow' or 'site', not '%s'",
                                          optarg);
            type = optarg;
            break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return HP_EUSAGE;
        }
    }
    if (optind >= argc)
        return hp_cli_usage_error(usage, "no file given");
    json_t *results = json ? json_array() : NULL;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        int r = check_one(argv[i], type, results, quiet);
        if (r && !rc)
            rc = r;
    }
    if (results) {
        json_dumpf(results, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(results);
    }
    return rc;
}
