/* cmd-connect.c - hpcport connect | disconnect: the per-site connection
 * master (sites/master.h), and the terminal side of authentication: the
 * prompts that the library asks through auth.h are read from /dev/tty. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "cli.h"
#include "auth.h"
#include "master.h"
#include "site.h"
#include "util.h"
#include "banned.h"

/* ================================================================ terminal ui */

static int tty_fd = -1;
static struct termios tty_saved;
static volatile sig_atomic_t tty_restore_needed;

static void tty_restore(void)
{
    if (tty_restore_needed && tty_fd >= 0) {
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
        tty_restore_needed = 0;
    }
}

static void on_signal(int sig)
{
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int tty_read_line(const char *prompt, int echo, char *buf, size_t len)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct sigaction sa = { .sa_handler = on_signal }, oint, oterm, oquit;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &oint);
    sigaction(SIGTERM, &sa, &oterm);
    sigaction(SIGQUIT, &sa, &oquit);
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* prompt lost: still read */
    }
    tty_fd = fd;
    if (!echo && tcgetattr(fd, &tty_saved) == 0) {
        struct termios t = tty_saved;
        t.c_lflag &= (tcflag_t)~(ECHO | ECHONL);
        t.c_lflag |= ICANON;
        tty_restore_needed = 1;
        tcsetattr(fd, TCSAFLUSH, &t);
    }
    size_t n = 0;
    int ret = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ret = n ? 0 : -1;
            break;
        }
        if (c == '\n' || c == '\r')
            break;
        if (n + 1 < len)
            buf[n++] = c;
    }
    buf[n] = '\0';
    if (!echo) {
        tty_restore();
        if (write(fd, "\n", 1) < 0) {
            /* cosmetic */
        }
    }
    tty_fd = -1;
    close(fd);
    sigaction(SIGINT, &oint, NULL);
    sigaction(SIGTERM, &oterm, NULL);
    sigaction(SIGQUIT, &oquit, NULL);
    return ret;
}

static int ui_prompt(void *ud, const char *prompt, int echo, char *buf, size_t len)
{
    (void)ud;
    return tty_read_line(prompt, echo, buf, len);
}

static int ui_confirm(void *ud, const char *question)
{
    (void)ud;
    char *q = hp_xasprintf("%s [y/N] ", question);
    char ans[16];
    int r = tty_read_line(q, 1, ans, sizeof(ans));
    free(q);
    if (r < 0)
        return -1;
    return !strcasecmp(ans, "y") || !strcasecmp(ans, "yes");
}

static void ui_notify(void *ud, const char *msg)
{
    (void)ud;
    if (hp_starts_with(msg, "warning: ")) {
        hp_cli_warn("%s", msg + 9);
        return;
    }
    if (!hp_cli.quiet)
        fprintf(stderr, "hpcport: %s\n", msg);
}

void hp_cli_auth_init(void)
{
    struct hp_auth_ui ui = { .prompt = ui_prompt, .confirm = ui_confirm, .notify = ui_notify };
    hp_auth_set_ui(&ui);
}

/* ================================================================ connect */

static const char connect_usage[] =
    "usage: hpcport connect SITE [--idle DURATION] [--forward LPORT:HOST:PORT]... "
    "[--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n"
    "   or: hpcport connect SITE --status [--json]\n"
    "   or: hpcport connect --list [--json]\n";

static const char connect_help[] =
    "\n"
    "Log in to SITE once (the one-time password is asked here, or comes from\n"
    "login.otp_command) and keep the connection in a background master process\n"
    "that later hpcport commands for SITE use instead of logging in again.\n"
    "\n"
    "options:\n"
    "    --idle DURATION    exit after DURATION without use (default 30m; 0 = never;\n"
    "                       never by default when --forward is given)\n"
    "    --forward LPORT:HOST:PORT\n"
    "                       listen on 127.0.0.1:LPORT here and connect each client\n"
    "                       to HOST:PORT as seen from the login host; may be repeated\n"
    "    --status           show the master of SITE (exit 8 when none runs, 4 when\n"
    "                       it lost its connection)\n"
    "    --list             show all running masters\n"
    "    --json             with --status or --list: print JSON\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do (see 'hpcport site show')\n"
    "    -h, --help         show this help\n"
    "\n"
    "'hpcport disconnect SITE' stops the master.\n";

static const char disconnect_usage[] =
    "usage: hpcport disconnect SITE [--set KEY=VALUE]... [--workflow FILE|--dir DIR]\n";

enum { OPT_IDLE = 256, OPT_FORWARD, OPT_STATUS, OPT_LIST, OPT_JSON };

struct conn_args {
    const char *site;
    struct hp_cli_siteargs sa;
    const char **forwards;
    size_t nfw, afw;
    double idle;
    int status, list, json;
};

static void args_free(struct conn_args *a)
{
    hp_cli_siteargs_release(&a->sa);
    free(a->forwards);
}

static int parse_args(int argc, char **argv, const char *usage, const char *help, int full,
                      struct conn_args *a)
{
    static const struct option opts[] = {
        { "idle", required_argument, NULL, OPT_IDLE },
        { "forward", required_argument, NULL, OPT_FORWARD },
        { "status", no_argument, NULL, OPT_STATUS },
        { "list", no_argument, NULL, OPT_LIST },
        { "json", no_argument, NULL, OPT_JSON },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    a->idle = -1;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&a->sa, c, optarg))
            continue;
        if (!full && (c == OPT_IDLE || c == OPT_FORWARD || c == OPT_STATUS || c == OPT_LIST ||
                      c == OPT_JSON))
            c = '?';
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return -1;
        case OPT_IDLE: {
            int64_t d = hp_parse_duration(optarg);
            if (d < 0)
                return hp_cli_usage_error(usage, "--idle '%s' is not a duration (30m, 2h, 0)",
                                          optarg);
            a->idle = (double)d;
            break;
        }
        case OPT_FORWARD:
            HP_ALLOC_GROW(a->forwards, a->nfw + 2, a->afw);
            a->forwards[a->nfw++] = optarg;
            a->forwards[a->nfw] = NULL;
            break;
        case OPT_STATUS: a->status = 1; break;
        case OPT_LIST: a->list = 1; break;
        case OPT_JSON: a->json = 1; break;
        case ':':
            return hp_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a->sa.workflow && a->sa.dir)
        return hp_cli_usage_error(usage, "give one of --workflow and --dir");
    if (optind < argc)
        a->site = argv[optind++];
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (a->list && (a->site || a->status))
        return hp_cli_usage_error(usage, "--list takes no site");
    if (!a->list && !a->site)
        return hp_cli_usage_error(usage, "no site given");
    if (a->json && !a->status && !a->list)
        return hp_cli_usage_error(usage, "--json goes with --status or --list");
    if (a->status && (a->nfw || a->idle >= 0))
        return hp_cli_usage_error(usage, "--status takes no --idle or --forward");
    return 0;
}

static void fmt_secs(double s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%.0f s", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0f min", s / 60);
    else
        snprintf(buf, len, "%.1f h", s / 3600);
}

static json_t *info_json(const struct hp_master_info *i)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:f, s:f, s:f, s:i, s:i, s:i, s:i, s:s, s:s}",
                     "site", i->site, "state", i->state, "pid", (json_int_t)i->pid, "target",
                     i->target, "socket", i->socket, "started", i->started, "idle", i->idle,
                     "idle_timeout", i->idle_timeout, "requests", (int)i->requests,
                     "reconnects", (int)i->reconnects, "clients", i->clients, "tunnels",
                     i->tunnels, "last_error", i->last_error, "forwards", i->forwards);
}

static int connect_list(const struct conn_args *a)
{
    struct hp_master_info *v = NULL;
    size_t n = 0;
    struct hp_err err;
    hp_err_init(&err);
    if (hp_master_list(&v, &n, &err) < 0)
        return hp_cli_error(&err);
    if (a->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, info_json(&v[i]));
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
    } else {
        int w = 4;
        for (size_t i = 0; i < n; i++)
            w = (int)strlen(v[i].site) > w ? (int)strlen(v[i].site) : w;
        printf("%-*s  %-7s  %-5s  %-8s  %s\n", w, "SITE", "PID", "STATE", "IDLE", "TARGET");
        for (size_t i = 0; i < n; i++) {
            char idle[32];
            fmt_secs(v[i].idle, idle, sizeof(idle));
            printf("%-*s  %-7ld  %-5s  %-8s  %s\n", w, v[i].site, v[i].pid, v[i].state, idle,
                   v[i].target);
        }
    }
    for (size_t i = 0; i < n; i++)
        hp_master_info_release(&v[i]);
    free(v);
    return 0;
}

static int connect_status(const struct conn_args *a, const struct hp_site *s)
{
    struct hp_err err;
    hp_err_init(&err);
    char *path = hp_master_socket_path(s, 0, &err);
    if (!path)
        return hp_cli_error(&err);
    struct hp_master_info i;
    int r = hp_master_query(path, &i, &err);
    free(path);
    if (r < 0)
        return hp_cli_error(&err);
    if (r == 1) {
        if (a->json)
            puts("null");
        else
            fprintf(stderr, "hpcport: site '%s' is not connected (no master runs); "
                    "'hpcport connect %s' starts one\n", s->name, s->name);
        return HP_ENOTFOUND;
    }
    if (a->json) {
        json_t *j = info_json(&i);
        json_dumpf(j, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(j);
    } else {
        char idle[32], limit[32], started[64];
        time_t t = (time_t)i.started;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S", &tm);
        fmt_secs(i.idle, idle, sizeof(idle));
        fmt_secs(i.idle_timeout, limit, sizeof(limit));
        printf("site        %s\n", i.site);
        printf("state       %s\n", i.state);
        if (i.last_error[0])
            printf("error       %s\n", i.last_error);
        printf("target      %s\n", i.target);
        printf("pid         %ld\n", i.pid);
        printf("socket      %s\n", i.socket);
        printf("started     %s\n", started);
        printf("idle        %s (%s)\n", idle,
               i.idle_timeout > 0 ? limit : "no idle timeout");
        printf("requests    %u\n", i.requests);
        printf("reconnects  %u\n", i.reconnects);
        printf("clients     %d\n", i.clients);
        printf("tunnels     %d\n", i.tunnels);
        if (i.forwards[0])
            printf("forwards    %s\n", i.forwards);
    }
    int rc = strcmp(i.state, "up") ? HP_ESITE : 0;
    hp_master_info_release(&i);
    return rc;
}

int cmd_connect(int argc, char **argv)
{
    struct conn_args a = { 0 };
    struct hp_site *s = NULL;
    struct hp_err err;
    hp_err_init(&err);
    int rc = parse_args(argc, argv, connect_usage, connect_help, 1, &a);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    if (a.list) {
        rc = connect_list(&a);
        goto out;
    }
    s = hp_cli_site(a.site, &a.sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (a.status) {
        rc = connect_status(&a, s);
        goto out;
    }
    struct hp_master_opts o = { .idle_timeout = a.idle,
                                .forwards = (const char *const *)a.forwards };
    long pid = 0;
    int r = hp_master_start(s, &o, &pid, &err);
    if (r < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (r == 1) {
        if (!hp_cli.quiet)
            printf("site '%s' is already connected (master pid %ld)\n", s->name, pid);
        if (a.nfw)
            hp_cli_warn("--forward ignored: the running master keeps its own forwards; "
                        "'hpcport disconnect %s' first to change them", s->name);
    } else if (!hp_cli.quiet) {
        printf("connected to site '%s' (master pid %ld)\n", s->name, pid);
    }
    rc = 0;
out:
    hp_site_free(s);
    args_free(&a);
    return rc;
}

int cmd_disconnect(int argc, char **argv)
{
    static const char help[] =
        "\n"
        "Stop the connection master of SITE (see 'hpcport connect'). Not being\n"
        "connected is not an error.\n"
        "\n"
        "options:\n"
        "    --set, --workflow, --dir\n"
        "                       resolve SITE as 'hpcport connect' did\n"
        "    -h, --help         show this help\n";
    struct conn_args a = { 0 };
    struct hp_site *s = NULL;
    struct hp_err err;
    hp_err_init(&err);
    int rc = parse_args(argc, argv, disconnect_usage, help, 0, &a);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    s = hp_cli_site(a.site, &a.sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    int r = hp_master_stop(s, &err);
    if (r < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (!hp_cli.quiet)
        printf(r == 1 ? "site '%s' was not connected\n" : "disconnected from site '%s'\n",
               s->name);
    rc = 0;
out:
    hp_site_free(s);
    args_free(&a);
    return rc;
}
