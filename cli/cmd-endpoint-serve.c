/* cmd-endpoint-serve.c - hpcport endpoint serve: run a function endpoint on
 * this machine (remote/endpoint.h), in the foreground or as a daemon; and
 * the hidden `hpcport endpoint-worker` its workers run as. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "endpoint.h"
#include "util.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport endpoint serve --config FILE [--name NAME] [--listen ADDR]\n"
    "                              [--state-dir DIR] [--daemon] [--check]\n";

static const char help[] =
    "\n"
    "Serve the functions FILE describes (hpcport-endpoint(5)) over HTTP/1.1 until\n"
    "SIGTERM or SIGINT. Each function runs in its own worker processes; a call that\n"
    "crashes or hangs costs only its worker, which is replaced. Every request needs\n"
    "the bearer token written to STATE/token (mode 0600) at each start.\n"
    "\n"
    "options:\n"
    "    -c, --config FILE   the endpoint configuration (YAML)\n"
    "    -n, --name NAME     endpoint name (default: the configuration's name)\n"
    "    -l, --listen ADDR   127.0.0.1:PORT (0 picks one), HOST:PORT (beyond loopback\n"
    "                        needs tls in FILE) or unix:PATH; overrides FILE's listen\n"
    "    --state-dir DIR     token, endpoint.json, endpoint.log and the lock (default\n"
    "                        $XDG_STATE_HOME/hpcport/endpoints/NAME)\n"
    "    -d, --daemon        detach once listening; print endpoint.json and return\n"
    "    --check             check FILE and exit\n"
    "    -h, --help          show this help\n"
    "\n"
    "Once listening it prints endpoint.json (name, pid, listen address, tls, functions)\n"
    "on stdout. Exit status: 0 stopped cleanly, 1 could not start (already running,\n"
    "address in use), 2 usage error, 3 bad configuration.\n";

enum { OPT_STATE_DIR = 1, OPT_CHECK };

struct daemon_pipe {
    int fd;
};

static void print_ready(const char *json, void *arg)
{
    (void)arg;
    fputs(json, stdout);
    fflush(stdout);
}

static void daemon_ready(const char *json, void *arg)
{
    struct daemon_pipe *dp = arg;
    if (dp->fd < 0)
        return;
    hp_write_full(dp->fd, "O", 1);
    hp_write_full(dp->fd, json, strlen(json));
    close(dp->fd);
    dp->fd = -1;
}

/* The parent of --daemon: wait for the endpoint to listen or fail. */
static int daemon_wait(int fd, pid_t child, const char *log)
{
    struct hp_buf b = HP_BUF_INIT;
    char chunk[4096];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        hp_buf_add(&b, chunk, (size_t)r);
    }
    close(fd);
    int st;
    waitpid(child, &st, 0);
    int rc;
    if (b.len && b.buf[0] == 'O') {
        fputs(b.buf + 1, stdout);
        rc = 0;
    } else if (b.len > 1 && b.buf[0] == 'E') {
        fprintf(stderr, "%s\n", b.buf + 2);
        rc = (unsigned char)b.buf[1];
    } else {
        rc = hp_cli_fail(HP_EFAIL, "the endpoint exited while starting; see %s", log);
    }
    hp_buf_release(&b);
    return rc;
}

int cmd_endpoint_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "name", required_argument, NULL, 'n' },
        { "listen", required_argument, NULL, 'l' },
        { "state-dir", required_argument, NULL, OPT_STATE_DIR },
        { "daemon", no_argument, NULL, 'd' },
        { "check", no_argument, NULL, OPT_CHECK },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *name = NULL, *listen = NULL, *state_dir = NULL;
    int daemon = 0, check = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:n:l:dh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'n': name = optarg; break;
        case 'l': listen = optarg; break;
        case OPT_STATE_DIR: state_dir = optarg; break;
        case 'd': daemon = 1; break;
        case OPT_CHECK: check = 1; break;
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
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (!config)
        return hp_cli_usage_error(usage, "--config FILE is required");
    if (name && !*name)
        return hp_cli_usage_error(usage, "--name must not be empty");
    if (name && (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
                 != strlen(name) || name[0] == '.' || name[0] == '-'))
        return hp_cli_usage_error(usage, "bad --name '%s': use letters, digits, '.', '_' and "
                                  "'-', starting with a letter or digit", name);
    struct hp_err err;
    hp_err_init(&err);
    struct hp_ep_config *cfg = hp_ep_config_load(config, listen, &err);
    if (!cfg)
        return hp_cli_error(&err);
    if (name) {
        free(cfg->name);
        cfg->name = hp_xstrdup(name);
    }
    if (check) {
        printf("%s: endpoint '%s', %zu function%s\n", config, cfg->name, cfg->nfn,
               cfg->nfn == 1 ? "" : "s");
        hp_ep_config_free(cfg);
        return 0;
    }
    char *exe = hp_self_exe();
    char *dir = state_dir ? hp_xstrdup(state_dir) : hp_ep_state_dir(name ? name : cfg->name);
    char *log = hp_path_join(dir, "endpoint.log");
    int rc;
    if (!exe) {
        rc = hp_cli_fail(HP_ESYS, "cannot find the hpcport binary (/proc/self/exe)");
        goto out;
    }
    if (hp_mkdir_p(dir, 0700) < 0) {
        rc = hp_cli_fail(HP_ESYS, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    char *absdir = realpath(dir, NULL);   /* the daemon changes to / */
    if (absdir) {
        free(dir);
        dir = absdir;
        free(log);
        log = hp_path_join(dir, "endpoint.log");
    }
    struct hp_ep_serve_opts so = { .name = name, .state_dir = dir, .self_exe = exe,
                                   .log = stderr, .ready = print_ready };
    if (!daemon) {
        rc = hp_ep_serve(cfg, &so, &err) < 0 ? hp_cli_error(&err) : 0;
        goto out;
    }
    int logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    int p[2];
    if (logfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        rc = hp_cli_fail(HP_ESYS, "cannot open %s: %s", log, strerror(errno));
        if (logfd >= 0)
            close(logfd);
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        rc = hp_cli_fail(HP_ESYS, "fork: %s", strerror(errno));
        close(logfd);
        close(p[0]);
        close(p[1]);
        goto out;
    }
    if (pid > 0) {
        close(p[1]);
        close(logfd);
        rc = daemon_wait(p[0], pid, log);
        goto out;
    }
    /* the child: a new session, then the daemon itself in a grandchild */
    close(p[0]);
    setsid();
    pid = fork();
    if (pid != 0)
        _exit(pid < 0 ? 1 : 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    dup2(logfd, 1);
    dup2(logfd, 2);
    close(logfd);
    if (chdir("/") < 0)
        (void)0;
    struct daemon_pipe dp = { p[1] };
    so.log = stderr;
    so.ready = daemon_ready;
    so.ready_arg = &dp;
    if (hp_ep_serve(cfg, &so, &err) < 0) {
        char line[2200];
        hp_err_format(&err, line, sizeof(line));
        if (dp.fd >= 0) {
            char hdr[2] = { 'E', (char)(err.code ? err.code : 1) };
            hp_write_full(dp.fd, hdr, 2);
            if (!err.file[0])
                hp_write_full(dp.fd, "hpcport: ", 9);
            hp_write_full(dp.fd, line, strlen(line));
            close(dp.fd);
        }
        fprintf(stderr, "hpcport: %s\n", line);
        rc = err.code ? err.code : 1;
    } else {
        rc = 0;
        if (dp.fd >= 0)
            close(dp.fd);
    }
out:
    free(exe);
    free(dir);
    free(log);
    hp_ep_config_free(cfg);
    return rc;
}

int cmd_endpoint_worker(int argc, char **argv)
{
    return hp_ep_worker_main(argc, argv);
}
