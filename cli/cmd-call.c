/* cmd-call.c - hpcport call SITE FUNCTION: one synchronous call of a
 * function of the site's endpoint, through a tunnel of the site's
 * connection (sites/endpoint.h, remote/hpcport-client.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "conn.h"
#include "endpoint-ref.h"
#include "hpcport-client.h"
#include "site.h"
#include "util.h"
#include "banned.h"

enum { OPT_NAME = 256, OPT_INPUT, OPT_OUTPUT, OPT_TIMEOUT };

static const char usage[] =
    "usage: hpcport call SITE FUNCTION [--name NAME] [--input FILE|-] [--output FILE] "
    "[--timeout DURATION]\n";

static const char help[] =
    "\n"
    "Call FUNCTION of the endpoint started on SITE with `hpcport endpoint start`,\n"
    "through the site's SSH connection (a kept one when `hpcport connect` runs),\n"
    "and write its output. The input is empty unless --input says otherwise.\n"
    "\n"
    "options:\n"
    "    --name NAME        the endpoint (default: the only one started on SITE)\n"
    "    --input FILE|-     the input bytes: a file, or - for standard input\n"
    "    --output FILE      write the output to FILE (atomically) instead of\n"
    "                       standard output\n"
    "    --timeout DURATION give up after DURATION (default: the endpoint's limit)\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do\n"
    "    -h, --help         show this help\n"
    "\n"
    "exit status: 0, 1 the function failed, 9 the token was refused (run `hpcport\n"
    "endpoint start`), 10 the endpoint is not running or not reachable, 11 timeout,\n"
    "12 the worker crashed; see hpcport(1).\n";

static int read_input(const char *path, struct hp_buf *in, struct hp_err *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return hp_err_errno(err, "cannot read %s", path);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        hp_buf_add(in, buf, n);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad)
        return hp_err_errno(err, "cannot read %s", strcmp(path, "-") ? path : "standard input");
    return 0;
}

int cmd_call(int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, OPT_NAME },
        { "input", required_argument, NULL, OPT_INPUT },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    const char *name = NULL, *input = NULL, *output = NULL;
    double timeout = 0;
    int c, rc = 0;
    struct hp_site *s = NULL;
    struct hp_conn *conn = NULL;
    struct hp_client *cl = NULL;
    struct hp_epref ep = { 0 };
    struct hp_buf in = HP_BUF_INIT;
    void *out = NULL;
    size_t outlen = 0;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            goto out;
        case OPT_NAME: name = optarg; break;
        case OPT_INPUT: input = optarg; break;
        case OPT_OUTPUT: output = optarg; break;
        case OPT_TIMEOUT: {
            int64_t d = hp_parse_duration(optarg);
            if (d <= 0) {
                rc = hp_cli_usage_error(usage, "--timeout '%s' is not a duration", optarg);
                goto out;
            }
            timeout = (double)d;
            break;
        }
        case ':':
            rc = hp_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (argc - optind != 2) {
        rc = hp_cli_usage_error(usage, argc - optind < 2 ? "give SITE and FUNCTION"
                                                         : "unexpected argument '%s'",
                                argv[argc - 1]);
        goto out;
    }
    const char *site = argv[optind], *fn = argv[optind + 1];
    if (input && read_input(input, &in, &err) < 0)
        goto fail;
    if (!(s = hp_cli_site(site, &sa, &err)) || hp_epref_load(s->name, name, &ep, &err) < 0 ||
        !(conn = hp_conn_open(s, &err)) || !(cl = hp_epref_client(conn, &ep, timeout, &err)))
        goto fail;
    struct hp_client_error ce;
    if (hp_client_call(cl, fn, in.buf, in.len, &out, &outlen, &ce) < 0) {
        hp_epref_client_err(&ep, &ce, &err);
        hp_err_prefix(&err, "%s on site '%s'", fn, ep.site);
        goto fail;
    }
    if (output) {
        if (hp_epref_write_file(output, out, outlen, 0644, &err) < 0)
            goto fail;
    } else if (outlen && fwrite(out, 1, outlen, stdout) != outlen) {
        rc = hp_cli_fail(HP_ESYS, "cannot write the output: %s", strerror(errno));
    }
    goto out;
fail:
    rc = hp_cli_error(&err);
out:
    free(out);
    hp_client_close(cl);
    hp_epref_release(&ep);
    hp_conn_free(conn);
    hp_site_free(s);
    hp_buf_release(&in);
    hp_cli_siteargs_release(&sa);
    return rc;
}
