/* cmd-endpoint.c - hpcport endpoint: dispatch to its subcommands. (The
 * laptop side -- start, stop, status -- comes with the endpoint client.) */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "banned.h"

static const char usage[] = "usage: hpcport endpoint serve --config FILE [options]\n";

int cmd_endpoint(int argc, char **argv)
{
    if (argc < 2)
        return hp_cli_usage_error(usage, "missing subcommand");
    if (hp_cli_is_help(argv[1])) {
        fputs(usage, stdout);
        fputs("\nsubcommands:\n   serve   run a function endpoint on this machine\n", stdout);
        return 0;
    }
    if (!strcmp(argv[1], "serve"))
        return cmd_endpoint_serve(argc - 1, argv + 1);
    return hp_cli_usage_error(usage, "unknown subcommand '%s'", argv[1]);
}
