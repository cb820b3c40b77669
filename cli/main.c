/* main.c - hpcport's entry point: global options and the command table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "provenance.h"
#include "util.h"
#include "banned.h"

struct hp_cli hp_cli;

struct cmd {
    const char *name;
    hp_cmd_fn fn;
    const char *summary;
};

/* Alphabetical. */
static const struct cmd commands[] = {
    { "adapters", cmd_adapters, "list built-in adapters and adapter plugins, with their hooks" },
    { "agent", cmd_agent, "the campaign agent on a login node: feeds pilots (add, status, stop)" },
    { "auth", cmd_auth, "OAuth2 logins to a site's identity provider: login, status, logout, token" },
    { "call", cmd_call, "call a function of a site's endpoint" },
    { "cancel", cmd_cancel, "cancel a campaign or some of its tasks" },
    { "connect", cmd_connect, "log in to a site once and keep the connection for later commands" },
    { "cp", cmd_cp, "copy files to or from a site (checked, resumable)" },
    { "disconnect", cmd_disconnect, "stop a site's kept connection" },
    { "endpoint", cmd_endpoint, "a site's function endpoint: start, stop, status (and serve)" },
    { "help", cmd_help, "show help for a command" },
    { "logs", cmd_logs, "show the output of a task instance" },
    { "pilot", cmd_pilot, "run a campaign agent's tasks inside a batch allocation" },
    { "plan", cmd_plan, "show the job scripts a run would submit, and a portability lint" },
    { "run", cmd_run, "run (or resume) a campaign on a site" },
    { "site", cmd_site, "list site profiles, show one with the origin of each value" },
    { "sites", cmd_sites, "the site catalog: sync shared profiles from a git repository" },
    { "status", cmd_status, "show campaigns and the state of their tasks" },
    { "tunnel", cmd_tunnel, "expose a site's endpoint as a local port or unix socket" },
    { "validate", cmd_validate, "check workflow and site files against the schemas" },
    { "version", cmd_version, "print the version" },
};

/* Documented in hpcport(1) but not listed by --help (debugging aids). */
static const struct cmd hidden_commands[] = {
    { "endpoint-worker", cmd_endpoint_worker, "a worker process of an endpoint (internal)" },
    { "ssh", cmd_ssh, "run one command on a site's login host" },
};

static const char main_usage[] =
    "usage: hpcport [-v|-q] [--version] [--help] <command> [<args>]\n";

static void print_help(FILE *f)
{
    fputs(main_usage, f);
    fputs("\nhpcport runs one workflow description on several HPC sites.\n\ncommands:\n", f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "   %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'hpcport <command> --help' and 'man hpcport' tell more.\n", f);
}

int hp_cli_is_help(const char *arg)
{
    return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

int hp_cli_error(const struct hp_err *err)
{
    char line[2200];
    hp_err_format(err, line, sizeof(line));
    if (err->file[0])
        fprintf(stderr, "%s\n", line);
    else
        fprintf(stderr, "hpcport: %s\n", line);
    return err->code ? err->code : 1;
}

int hp_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("hpcport: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

void hp_cli_warn(const char *fmt, ...)
{
    va_list ap;
    if (hp_cli.quiet)
        return;
    fputs("hpcport: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void hp_cli_log(int level, const char *fmt, ...)
{
    va_list ap;
    if (hp_cli.verbose < level)
        return;
    fputs("hpcport: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int hp_cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("hpcport: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return HP_EUSAGE;
}

static const struct cmd *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    for (size_t i = 0; i < sizeof(hidden_commands) / sizeof(hidden_commands[0]); i++)
        if (!strcmp(hidden_commands[i].name, name))
            return &hidden_commands[i];
    return NULL;
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && hp_cli_is_help(argv[1])) {
        puts("usage: hpcport version");
        return 0;
    }
    printf("hpcport %s\n", hp_version_string());
    return 0;
}

int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stdout);
        return 0;
    }
    if (hp_cli_is_help(argv[1])) {
        puts("usage: hpcport help [COMMAND]");
        return 0;
    }
    const struct cmd *c = find_command(argv[1]);
    if (!c)
        return hp_cli_fail(HP_EUSAGE, "unknown command '%s'", argv[1]);
    char *sub[] = { (char *)c->name, (char *)"--help", NULL };
    return c->fn(2, sub);
}

int main(int argc, char **argv)
{
    int i = 1;
    const char *nc = getenv("NO_COLOR");
    hp_cli.tty = isatty(STDOUT_FILENO);
    hp_cli.color = hp_cli.tty && !(nc && *nc);
    hp_cli_auth_init();

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--version")) {
            printf("hpcport %s\n", hp_version_string());
            return 0;
        } else if (hp_cli_is_help(a)) {
            print_help(stdout);
            return 0;
        } else if (!strcmp(a, "--verbose") || a[strspn(a + 1, "v") + 1] == '\0') {
            hp_cli.verbose += a[1] == '-' ? 1 : (int)strlen(a) - 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            hp_cli.quiet = 1;
        } else {
            fprintf(stderr, "hpcport: error: unknown option '%s'\n%s", a, main_usage);
            return HP_EUSAGE;
        }
    }
    if (i >= argc) {
        print_help(stderr);
        return HP_EUSAGE;
    }
    const struct cmd *c = find_command(argv[i]);
    if (!c) {
        const char *names[sizeof(commands) / sizeof(commands[0]) + 1];
        for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
            names[k] = commands[k].name;
        names[sizeof(commands) / sizeof(commands[0])] = NULL;
        const char *s = hp_suggest(argv[i], names);
        if (s)
            fprintf(stderr, "hpcport: error: '%s' is not a command (did you mean '%s'?)\n",
                    argv[i], s);
        else
            fprintf(stderr, "hpcport: error: '%s' is not a command; see 'hpcport --help'\n",
                    argv[i]);
        return HP_EUSAGE;
    }
    int rc = c->fn(argc - i, argv + i);
    if (fflush(stdout) != 0 && rc == 0)
        rc = HP_ESYS;
    return rc;
}
