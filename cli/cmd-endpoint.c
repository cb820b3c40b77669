/* cmd-endpoint.c - hpcport endpoint start|stop|status: a site's function
 * endpoint managed from this machine (sites/endpoint-ref.h); `serve` (what runs
 * on the site) is cmd-endpoint-serve.c's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"
#include "conn.h"
#include "endpoint-ref.h"
#include "hpcport-client.h"
#include "site.h"
#include "util.h"
#include "banned.h"

enum { OPT_CONFIG = 256, OPT_NAME, OPT_JSON, OPT_BATCH, OPT_WAIT, OPT_WALLTIME, OPT_PARTITION,
       OPT_CORES, OPT_GPUS, OPT_BIND };

static const char usage[] =
    "usage: hpcport endpoint start SITE --config FILE [--name NAME] [--json] [--batch "
    "[--walltime DURATION] [--partition NAME] [--cores N] [--gpus N] [--wait DURATION] "
    "[--bind ADDR]]\n"
    "       hpcport endpoint stop SITE [--name NAME]\n"
    "       hpcport endpoint status SITE [--name NAME] [--json]\n"
    "       hpcport endpoint serve --config FILE [--name NAME] [--listen ADDR] "
    "[--state-dir DIR] [--daemon] [--check]\n";

static const char help[] =
    "\n"
    "A function endpoint serves C functions and commands over HTTP on a site\n"
    "(see hpcport(1), ENDPOINTS). From this machine:\n"
    "\n"
    "    start    upload the configuration FILE and the files it names to the\n"
    "             site, start `hpcport endpoint serve` on its login node\n"
    "             (remote.hpcport in the site profile names the program there),\n"
    "             and keep its token here (a 0600 file, never printed)\n"
    "    stop     stop it (SIGTERM) and forget its token\n"
    "    status   is it running; its functions, workers and uptime\n"
    "    serve    run an endpoint on this machine (what start runs on the site)\n"
    "\n"
    "options:\n"
    "    --config FILE      the endpoint configuration (YAML)\n"
    "    --name NAME        the endpoint's name (default: the configuration's name;\n"
    "                       for stop and status, the only one started on SITE)\n"
    "    --json             print JSON\n"
    "    --batch            start it as a batch job through the site's scheduler: it\n"
    "                       serves on the compute node's address with the TLS\n"
    "                       certificate of the configuration (tls: {cert, key})\n"
    "    --walltime, --partition, --cores, --gpus\n"
    "                       the batch job's resources (defaults: the site's walltime\n"
    "                       or 1 h, its default partition, 1 core, no GPU)\n"
    "    --wait DURATION    how long start waits for the job to serve (default 5m)\n"
    "    --bind ADDR        the address the batch job serves on (default: the\n"
    "                       node's first address, from hostname -I)\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do\n"
    "    -h, --help         show this help\n";

struct args {
    const char *site, *config, *name, *partition, *bind;
    int json, batch, cores, gpus;
    int64_t walltime, wait;
    struct hp_cli_siteargs sa;
};

/* 0 parsed, else the exit status (help: -1 for 0) */
static int parse(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, OPT_CONFIG },
        { "name", required_argument, NULL, OPT_NAME },
        { "json", no_argument, NULL, OPT_JSON },
        { "batch", no_argument, NULL, OPT_BATCH },
        { "walltime", required_argument, NULL, OPT_WALLTIME },
        { "partition", required_argument, NULL, OPT_PARTITION },
        { "cores", required_argument, NULL, OPT_CORES },
        { "gpus", required_argument, NULL, OPT_GPUS },
        { "wait", required_argument, NULL, OPT_WAIT },
        { "bind", required_argument, NULL, OPT_BIND },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&a->sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return -1;
        case OPT_CONFIG: a->config = optarg; break;
        case OPT_NAME: a->name = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_BATCH: a->batch = 1; break;
        case OPT_PARTITION: a->partition = optarg; break;
        case OPT_BIND: a->bind = optarg; break;
        case OPT_WALLTIME:
        case OPT_WAIT: {
            int64_t d = hp_parse_duration(optarg);
            if (d <= 0)
                return hp_cli_usage_error(usage, "%s '%s' is not a duration", argv[optind - 1],
                                          optarg);
            *(c == OPT_WAIT ? &a->wait : &a->walltime) = d;
            break;
        }
        case OPT_CORES:
        case OPT_GPUS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 100000)
                return hp_cli_usage_error(usage, "%s '%s' is not a count", argv[optind - 1],
                                          optarg);
            *(c == OPT_CORES ? &a->cores : &a->gpus) = (int)v;
            break;
        }
        case ':':
            return hp_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return hp_cli_usage_error(usage, "no site given");
    a->site = argv[optind++];
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (a->name && !hp_site_valid_name(a->name))
        return hp_cli_usage_error(usage, "'%s' is not a valid endpoint name", a->name);
    return 0;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s)
        puts(s);
    free(s);
}

static int do_start(struct args *a)
{
    struct hp_err err;
    hp_err_init(&err);
    int rc = 0;
    struct hp_conn *conn = NULL;
    struct hp_epref ep = { 0 };
    if (!a->config)
        return hp_cli_usage_error(usage, "start needs --config FILE");
    if (!a->batch && (a->walltime || a->partition || a->cores || a->gpus || a->wait || a->bind))
        return hp_cli_usage_error(usage, "--walltime, --partition, --cores, --gpus and --wait "
                                  "go with --batch");
    struct hp_epref_start_opts so = { .name = a->name, .batch = a->batch, .bind = a->bind,
                                      .walltime = a->walltime,
                                   .partition = a->partition, .cores = a->cores,
                                   .gpus = a->gpus, .wait = (double)a->wait };
    struct hp_site *s = hp_cli_site(a->site, &a->sa, &err);
    if (!s || !(conn = hp_conn_open(s, &err)) ||
        hp_epref_start(conn, s, a->config, &so, &ep, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (a->json) {
        json_t *j = json_deep_copy(ep.record);
        json_object_set_new(j, "token_file", json_string(ep.token_path));
        print_json(j);
        json_decref(j);
    } else {
        if (ep.job_id)
            printf("endpoint '%s' started on site '%s' as job %s: process %ld, listening on "
                   "%s:%d (TLS)\n", ep.name, ep.site, ep.job_id, ep.pid, ep.host, ep.port);
        else
            printf("endpoint '%s' started on site '%s': process %ld, listening on %s:%d "
                   "there\n", ep.name, ep.site, ep.pid, ep.host, ep.port);
        printf("token file: %s\n", ep.token_path);
    }
out:
    hp_epref_release(&ep);
    hp_conn_free(conn);
    hp_site_free(s);
    return rc;
}

static int do_stop(struct args *a)
{
    struct hp_err err;
    hp_err_init(&err);
    int rc = 0, r;
    struct hp_conn *conn = NULL;
    struct hp_epref ep = { 0 };
    struct hp_site *s = hp_cli_site(a->site, &a->sa, &err);
    if (!s || hp_epref_load(s->name, a->name, &ep, &err) < 0 ||
        !(conn = hp_conn_open(s, &err)) || (r = hp_epref_stop(conn, s, &ep, 15, &err)) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (r == 1)
        printf("endpoint '%s' on site '%s' was not running (forgotten here)\n", ep.name,
               ep.site);
    else
        printf("endpoint '%s' on site '%s' stopped\n", ep.name, ep.site);
out:
    hp_epref_release(&ep);
    hp_conn_free(conn);
    hp_site_free(s);
    return rc;
}

static void print_functions(json_t *fns)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(fns, "functions"), i, f) {
        printf("  %-12s %s, %lld worker%s, timeout %g s\n",
               json_string_value(json_object_get(f, "name")),
               json_string_value(json_object_get(f, "kind")),
               (long long)json_integer_value(json_object_get(f, "workers")),
               json_integer_value(json_object_get(f, "workers")) == 1 ? "" : "s",
               json_number_value(json_object_get(f, "timeout_s")));
    }
}

static int do_status(struct args *a)
{
    struct hp_err err;
    hp_err_init(&err);
    int rc = 0;
    struct hp_conn *conn = NULL;
    struct hp_epref ep = { 0 };
    struct hp_client *cl = NULL;
    char *hbody = NULL, *fbody = NULL;
    json_t *health = NULL, *fns = NULL;
    struct hp_client_error ce;
    struct hp_site *s = hp_cli_site(a->site, &a->sa, &err);
    if (!s || hp_epref_load(s->name, a->name, &ep, &err) < 0 || !(conn = hp_conn_open(s, &err)) ||
        hp_epref_check(conn, &ep, NULL, &err) < 0 || !(cl = hp_epref_client(conn, &ep, 30, &err)))
        goto fail;
    if (hp_client_get(cl, "health", &hbody, NULL, &ce) < 0 ||
        hp_client_get(cl, "functions", &fbody, NULL, &ce) < 0) {
        if (ce.code == HP_CLIENT_ETRANSPORT)
            hp_err_set(&err, HP_EUNAVAIL, "endpoint '%s' on site '%s' is not answering: its "
                       "endpoint.json there is stale (%s; the process may have been killed: "
                       "see %s/endpoint.log); run `hpcport endpoint start %s --config FILE`",
                       ep.name, ep.site, ce.message, ep.state_dir, ep.site);
        else
            hp_epref_client_err(&ep, &ce, &err);
        goto fail;
    }
    health = json_loads(hbody, 0, NULL);
    fns = json_loads(fbody, 0, NULL);
    if (a->json) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:O?, s:O?, s:s, s:O}", "site", ep.site, "name",
                              ep.name, "running", 1, "health", health, "functions",
                              json_object_get(fns, "functions"), "token_file", ep.token_path,
                              "record", ep.record);
        print_json(j);
        json_decref(j);
    } else {
        json_t *w = json_object_get(health, "workers"), *q = json_object_get(health, "queue");
        printf("endpoint '%s' on site '%s': running\n", ep.name, ep.site);
        if (ep.job_id)
            printf("  listening    %s:%d (TLS), batch job %s, process %ld\n", ep.host, ep.port,
                   ep.job_id, ep.pid);
        else
            printf("  listening    %s:%d on the login node, process %ld\n", ep.host, ep.port,
                   ep.pid);
        printf("  version      %s\n", json_string_value(json_object_get(health, "version")));
        printf("  uptime       %.0f s\n", json_number_value(json_object_get(health, "uptime_s")));
        printf("  workers      %lld total, %lld busy, %lld restarts\n",
               (long long)json_integer_value(json_object_get(w, "total")),
               (long long)json_integer_value(json_object_get(w, "busy")),
               (long long)json_integer_value(json_object_get(w, "restarts")));
        printf("  queue        %lld of %lld\n",
               (long long)json_integer_value(json_object_get(q, "depth")),
               (long long)json_integer_value(json_object_get(q, "max")));
        printf("  token file   %s\n", ep.token_path);
        printf("functions:\n");
        print_functions(fns);
    }
    goto out;
fail:
    if (a->json && ep.name) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:s}", "site", ep.site, "name", ep.name,
                              "running", 0, "reason", err.msg);
        print_json(j);
        json_decref(j);
    }
    rc = hp_cli_error(&err);
out:
    json_decref(health);
    json_decref(fns);
    free(hbody);
    free(fbody);
    hp_client_close(cl);
    hp_epref_release(&ep);
    hp_conn_free(conn);
    hp_site_free(s);
    return rc;
}

int cmd_endpoint(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return HP_EUSAGE;
    }
    const char *sub = argv[1];
    if (hp_cli_is_help(sub)) {
        fputs(usage, stdout);
        fputs(help, stdout);
        return 0;
    }
    if (!strcmp(sub, "serve")) {
        return cmd_endpoint_serve(argc - 1, argv + 1);
    }
    int (*fn)(struct args *) = !strcmp(sub, "start") ? do_start
                               : !strcmp(sub, "stop") ? do_stop
                               : !strcmp(sub, "status") ? do_status : NULL;
    if (!fn) {
        const char *subs[] = { "serve", "start", "status", "stop", NULL };
        const char *s = hp_suggest(sub, subs);
        if (s)
            return hp_cli_usage_error(usage, "'%s' is not an endpoint command (did you mean "
                                      "'%s'?)", sub, s);
        return hp_cli_usage_error(usage, "'%s' is not an endpoint command", sub);
    }
    struct args a = { 0 };
    int rc = parse(argc - 1, argv + 1, &a);
    if (rc == 0)
        rc = fn(&a);
    else if (rc < 0)
        rc = 0;
    hp_cli_siteargs_release(&a.sa);
    return rc;
}
