/* cmd-agent.c - hpcport agent: the campaign agent on a login node
 * (remote/agent.h), and its helpers add, status, stop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "agent.h"
#include "cli.h"
#include "util.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport agent --dir DIR [--listen HOST:PORT] [--spool DIR] [--daemon [--ensure]]\n"
    "                     [--pilots FILE] [--heartbeat-timeout S] [--batch N]\n"
    "                     [--exit-when-done] [--idle-exit S]\n"
    "       hpcport agent add --dir DIR [--ignore-existing] < TASKS.jsonl\n"
    "       hpcport agent status --dir DIR [--json] [--tasks | --names]\n"
    "       hpcport agent cancel --dir DIR < IDS\n"
    "       hpcport agent stop --dir DIR [--drain]\n";

static const char help[] =
    "\n"
    "Feed a campaign's tasks to pilots (hpcport pilot) and collect their results.\n"
    "One agent per DIR (a lock); tasks and results live in DIR/tasks.db, so an agent\n"
    "that is killed and started again loses nothing. Pilots authenticate with the\n"
    "per-campaign secret DIR/secret (made at first start, mode 0600); the agent's\n"
    "address is in DIR/agent.json. With --spool, pilots that cannot reach the agent\n"
    "exchange tasks and results through that directory on a shared filesystem.\n"
    "\n"
    "options:\n"
    "    -d, --dir DIR             the agent's directory (required)\n"
    "    -l, --listen HOST:PORT    TCP address for pilots (default 127.0.0.1:0: any\n"
    "                              free port; with --spool alone: no TCP)\n"
    "    -s, --spool DIR           also serve pilots through this spool directory\n"
    "    --heartbeat-timeout S     a pilot silent this long is lost and its tasks\n"
    "                              are requeued (default 30)\n"
    "    --batch N                 tasks per spool batch file (default 256)\n"
    "    --exit-when-done          stop once every task is done or failed\n"
    "    --idle-exit S             stop after S seconds with no task left and no\n"
    "                              pilot connected (hpcport run asks for 600)\n"
    "    --daemon                  detach once listening (log: DIR/agent.log)\n"
    "    --ensure                  with --daemon: when an agent already runs for\n"
    "                              DIR, print its agent.json and succeed\n"
    "    --pilots FILE             submit pilot jobs through the site's scheduler\n"
    "                              as FILE says (written by hpcport run; see\n"
    "                              hpcport(1), agent)\n"
    "    -h, --help                show this help\n"
    "\n"
    "add reads tasks as JSON lines: {\"id\":NAME,\"argv\":[...]|\"sh\":TEXT,\"env\":{..},\n"
    "\"cwd\":DIR,\"stdout\":FILE,\"stderr\":FILE,\"cores\":N,\"gpus\":N,\"nodes\":N,\n"
    "\"walltime\":S}; all lines or none (--ignore-existing: lines whose id is known\n"
    "are skipped). status counts tasks by state (queued, leased, done, failed) and\n"
    "the pilot jobs; --tasks lists the tasks, --names only those whose ids are read\n"
    "from standard input, one per line. cancel records the tasks whose ids are\n"
    "read from standard input as failed by SIGTERM (a running one finishes, its\n"
    "result is not recorded). stop ends the agent (pilots keep their tasks\n"
    "and reconnect to the next one); --drain lets pilots finish and exit instead.\n";

enum { OPT_HB = 1, OPT_BATCH, OPT_EXIT, OPT_DAEMON, OPT_JSON, OPT_TASKS, OPT_DRAIN,
       OPT_IGNORE, OPT_NAMES, OPT_ENSURE, OPT_PILOTS, OPT_IDLE_EXIT };

static int ready_fd = -1;

static void on_ready(const char *json, void *arg)
{
    (void)arg;
    if (ready_fd >= 0) {
        hp_write_full(ready_fd, json, strlen(json));
        close(ready_fd);
        ready_fd = -1;
        return;
    }
    printf("%s\n", json);
    fflush(stdout);
}

/* Options of add, status and stop; a NULL out pointer refuses its option. */
struct sub_opts {
    const char *dir;
    int json, tasks, drain, ignore, names;
};

static int parse(int argc, char **argv, struct sub_opts *so, int json, int tasks, int drain,
                 int ignore)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, OPT_JSON },
        { "tasks", no_argument, NULL, OPT_TASKS },
        { "names", no_argument, NULL, OPT_NAMES },
        { "drain", no_argument, NULL, OPT_DRAIN },
        { "ignore-existing", no_argument, NULL, OPT_IGNORE },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': so->dir = optarg; break;
        case OPT_JSON: if (json) { so->json = 1; break; } goto bad;
        case OPT_TASKS: if (tasks) { so->tasks = 1; break; } goto bad;
        case OPT_NAMES: if (tasks) { so->names = 1; break; } goto bad;
        case OPT_DRAIN: if (drain) { so->drain = 1; break; } goto bad;
        case OPT_IGNORE: if (ignore) { so->ignore = 1; break; } goto bad;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
        bad:
            return hp_cli_usage_error(usage, "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (!so->dir)
        return hp_cli_usage_error(usage, "--dir DIR is required");
    if (so->tasks && so->names)
        return hp_cli_usage_error(usage, "--tasks and --names do not go together");
    return -1;
}

static int read_stdin(struct hp_buf *in)
{
    char chunk[65536];
    ssize_t r;
    while ((r = read(0, chunk, sizeof(chunk))) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hp_cli_fail(HP_ESYS, "read standard input: %s", strerror(errno));
        hp_buf_add(in, chunk, (size_t)r);
    }
    return 0;
}

/* ids from standard input, one per line, pointing into in */
static char **read_names(struct hp_buf *in, size_t *n)
{
    char **names = hp_xcalloc(1, sizeof(*names));
    size_t alloc = 1;
    *n = 0;
    for (char *p = in->buf, *nl; p < in->buf + in->len; p = nl + 1) {
        if (!(nl = memchr(p, '\n', (size_t)(in->buf + in->len - p))))
            nl = in->buf + in->len;
        *nl = '\0';
        if (*p) {
            HP_ALLOC_GROW(names, *n + 1, alloc);
            names[(*n)++] = p;
        }
    }
    return names;
}

/* parse, then standard input into in: -1 to go on, else the exit status */
static int parse_in(int argc, char **argv, struct sub_opts *so, int ignore, struct hp_buf *in)
{
    int rc = parse(argc, argv, so, 0, 0, 0, ignore);
    if (rc >= 0)
        return rc;
    if ((rc = read_stdin(in)) != 0) {
        hp_buf_release(in);
        return rc;
    }
    return -1;
}

static int agent_add(int argc, char **argv)
{
    struct sub_opts so = { 0 };
    struct hp_buf in = HP_BUF_INIT;
    int rc = parse_in(argc, argv, &so, 1, &in);
    if (rc >= 0)
        return rc;
    struct hp_err err;
    hp_err_init(&err);
    size_t added = 0;
    rc = hp_agent_add(so.dir, in.buf, in.len, so.ignore ? HP_AGENT_ADD_IGNORE_EXISTING : 0,
                      &added, &err) < 0 ? hp_cli_error(&err) : 0;
    hp_buf_release(&in);
    if (rc == 0 && !hp_cli.quiet)
        printf("added %zu task%s\n", added, added == 1 ? "" : "s");
    return rc;
}

static int agent_status(int argc, char **argv)
{
    struct sub_opts so = { 0 };
    int rc = parse(argc, argv, &so, 1, 1, 0, 0);
    if (rc >= 0)
        return rc;
    struct hp_err err;
    hp_err_init(&err);
    json_t *st = NULL;
    struct hp_buf in = HP_BUF_INIT;
    char **names = NULL;
    size_t nnames = 0;
    if (so.names) {
        if ((rc = read_stdin(&in)) != 0) {
            hp_buf_release(&in);
            return rc;
        }
        names = read_names(&in, &nnames);
    }
    rc = hp_agent_status(so.dir, so.tasks, (const char *const *)names, nnames, &st, &err);
    free(names);
    hp_buf_release(&in);
    if (rc < 0)
        return hp_cli_error(&err);
    if (so.json) {
        char *s = json_dumps(st, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
    } else {
        printf("agent %s\nqueued %lld\nleased %lld\ndone %lld\nfailed %lld\n",
               json_is_true(json_object_get(st, "running")) ? "running" : "stopped",
               (long long)json_integer_value(json_object_get(st, "queued")),
               (long long)json_integer_value(json_object_get(st, "leased")),
               (long long)json_integer_value(json_object_get(st, "done")),
               (long long)json_integer_value(json_object_get(st, "failed")));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(st, "tasks"), i, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            printf("%-8lld %-20s %-7s attempts=%lld", (long long)json_integer_value(
                       json_object_get(t, "key")), id ? id : "-",
                   json_string_value(json_object_get(t, "state")),
                   (long long)json_integer_value(json_object_get(t, "attempts")));
            if (json_object_get(t, "exit"))
                printf(" exit=%lld signal=%lld",
                       (long long)json_integer_value(json_object_get(t, "exit")),
                       (long long)json_integer_value(json_object_get(t, "signal")));
            putchar('\n');
        }
    }
    json_decref(st);
    return 0;
}

static int agent_cancel(int argc, char **argv)
{
    struct sub_opts so = { 0 };
    struct hp_buf in = HP_BUF_INIT;
    int rc = parse_in(argc, argv, &so, 0, &in);
    if (rc >= 0)
        return rc;
    size_t n, canceled = 0;
    char **names = read_names(&in, &n);
    struct hp_err err;
    hp_err_init(&err);
    rc = hp_agent_cancel(so.dir, (const char *const *)names, n, &canceled, &err) < 0
             ? hp_cli_error(&err) : 0;
    if (rc == 0 && !hp_cli.quiet)
        printf("canceled %zu task%s\n", canceled, canceled == 1 ? "" : "s");
    free(names);
    hp_buf_release(&in);
    return rc;
}

static int agent_stop(int argc, char **argv)
{
    struct sub_opts so = { 0 };
    int rc = parse(argc, argv, &so, 0, 0, 1, 0);
    if (rc >= 0)
        return rc;
    struct hp_err err;
    hp_err_init(&err);
    return hp_agent_stop(so.dir, so.drain, 30, &err) < 0 ? hp_cli_error(&err) : 0;
}

/* --daemon: the child runs the agent; the parent prints agent.json once
 * the child listens, or the child's error. */
/* An agent runs for dir: print its agent.json (written once it listens,
 * waited for up to 5 s) and return 0; else -1. */
static int print_running(const char *dir)
{
    for (int i = 0; i < 100 && hp_agent_pid(dir) > 0; i++) {
        char *jp = hp_path_join(dir, "agent.json"), *text = NULL;
        size_t len = 0;
        int r = hp_read_file(jp, 65536, &text, &len);
        free(jp);
        if (r == 0 && len && text[0] == '{') {
            printf("%.*s%s", (int)len, text, text[len - 1] == '\n' ? "" : "\n");
            free(text);
            return 0;
        }
        free(text);
        usleep(50000);
    }
    return -1;
}

static int run_daemon(struct hp_agent_opts *o, int ensure)
{
    if (ensure && print_running(o->dir) == 0)
        return 0;
    char *log = hp_path_join(o->dir, "agent.log");
    if (hp_mkdir_p(o->dir, 0700) < 0) {
        free(log);
        return hp_cli_fail(HP_ESYS, "cannot create %s: %s", o->dir, strerror(errno));
    }
    int logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600), p[2];
    if (logfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        int rc = hp_cli_fail(HP_ESYS, "cannot open %s: %s", log, strerror(errno));
        if (logfd >= 0)
            close(logfd);
        free(log);
        return rc;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (nul > 2)
            close(nul);
        ready_fd = p[1];
        struct hp_err err;
        hp_err_init(&err);
        int rc = hp_agent_run(o, &err) < 0 ? hp_cli_error(&err) : 0;
        if (ready_fd >= 0) {
            char b[1100];
            int n = snprintf(b, sizeof(b), "E%s", err.msg);
            hp_write_full(ready_fd, b, (size_t)n);
        }
        _exit(rc);
    }
    close(p[1]);
    close(logfd);
    struct hp_buf b = HP_BUF_INIT;
    char chunk[4096];
    ssize_t r;
    while ((r = read(p[0], chunk, sizeof(chunk))) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        hp_buf_add(&b, chunk, (size_t)r);
    }
    close(p[0]);
    int rc;
    if (b.len && b.buf[0] == '{') {
        printf("%s\n", b.buf);
        rc = 0;
    } else {
        int st;
        waitpid(pid, &st, 0);
        /* --ensure: another one started meanwhile */
        if (ensure && print_running(o->dir) == 0) {
            hp_buf_release(&b);
            free(log);
            return 0;
        }
        rc = hp_cli_fail(HP_EUNAVAIL, "the agent did not start: %s (log: %s)",
                         b.len > 1 ? b.buf + 1 : "exited", log);
    }
    hp_buf_release(&b);
    free(log);
    return rc;
}

int cmd_agent(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "add") == 0)
        return agent_add(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return agent_status(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "cancel") == 0)
        return agent_cancel(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "stop") == 0)
        return agent_stop(argc - 1, argv + 1);
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "listen", required_argument, NULL, 'l' },
        { "spool", required_argument, NULL, 's' },
        { "heartbeat-timeout", required_argument, NULL, OPT_HB },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "exit-when-done", no_argument, NULL, OPT_EXIT },
        { "daemon", no_argument, NULL, OPT_DAEMON },
        { "ensure", no_argument, NULL, OPT_ENSURE },
        { "pilots", required_argument, NULL, OPT_PILOTS },
        { "idle-exit", required_argument, NULL, OPT_IDLE_EXIT },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_agent_opts o = { .hb_timeout = 30, .batch = 256, .ready = on_ready };
    int c, daemon = 0, ensure = 0;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+d:l:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o.dir = optarg; break;
        case 'l': o.listen = optarg; break;
        case 's': o.spool = optarg; break;
        case OPT_HB:
            o.hb_timeout = (int)strtol(optarg, &end, 10);
            if (*end || o.hb_timeout < 1 || o.hb_timeout > 86400)
                return hp_cli_usage_error(usage, "bad --heartbeat-timeout '%s' (1 to 86400 "
                                          "seconds)", optarg);
            break;
        case OPT_BATCH:
            o.batch = (int)strtol(optarg, &end, 10);
            if (*end || o.batch < 1 || o.batch > 100000)
                return hp_cli_usage_error(usage, "bad --batch '%s' (1 to 100000)", optarg);
            break;
        case OPT_EXIT: o.exit_when_done = 1; break;
        case OPT_DAEMON: daemon = 1; break;
        case OPT_ENSURE: ensure = 1; break;
        case OPT_PILOTS: o.pilots = optarg; break;
        case OPT_IDLE_EXIT:
            o.idle_exit = (int)strtol(optarg, &end, 10);
            if (*end || o.idle_exit < 1 || o.idle_exit > 30 * 86400)
                return hp_cli_usage_error(usage, "bad --idle-exit '%s' (seconds, 1 to "
                                          "2592000)", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            return hp_cli_usage_error(usage, "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hp_cli_usage_error(usage, "unknown agent command '%s' (add, status, stop)",
                                  argv[optind]);
    if (!o.dir)
        return hp_cli_usage_error(usage, "--dir DIR is required");
    if (ensure && !daemon)
        return hp_cli_usage_error(usage, "--ensure goes with --daemon");
    if (daemon)
        return run_daemon(&o, ensure);
    struct hp_err err;
    hp_err_init(&err);
    return hp_agent_run(&o, &err) < 0 ? hp_cli_error(&err) : 0;
}
