/* cmd-tunnel.c - hpcport tunnel SITE: the site's endpoint as a local port or
 * unix socket for any HTTP client. Each accepted connection gets its own
 * tunnel over the site's connection; bytes are copied both ways (half
 * closes passed on) until both directions end. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>
#include "cli.h"
#include "conn.h"
#include "endpoint-ref.h"
#include "site.h"
#include "util.h"
#include "banned.h"

enum { OPT_NAME = 256, OPT_LISTEN, OPT_UNIX };

#define MAX_PAIRS 64

static const char usage[] =
    "usage: hpcport tunnel SITE [--name NAME] [--listen 127.0.0.1:PORT | --unix PATH]\n";

static const char help[] =
    "\n"
    "Expose the endpoint started on SITE (`hpcport endpoint start`) on this\n"
    "machine, for any HTTP client: a loopback port (default: a free one) or a\n"
    "unix socket (mode 0600). Prints the URL and the path of the token file\n"
    "(send its contents as \"Authorization: Bearer TOKEN\"), then runs until\n"
    "interrupted (Ctrl-C).\n"
    "\n"
    "options:\n"
    "    --name NAME        the endpoint (default: the only one started on SITE)\n"
    "    --listen ADDR      127.0.0.1:PORT, localhost:PORT or [::1]:PORT (loopback only)\n"
    "    --unix PATH        a unix socket instead\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do\n"
    "    -h, --help         show this help\n";

static int stop_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int e = errno;
    char c = (char)sig;
    if (write(stop_pipe[1], &c, 1) < 0) {
        /* nothing to do: a signal is already pending */
    }
    errno = e;
}

/* A loopback TCP listener on addr ("HOST:PORT", "[::1]:PORT"); the port it
 * got in *port. */
static int listen_tcp(const char *addr, int *port, struct hp_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return hp_err_set(err, HP_EUSAGE, "--listen '%s' is not HOST:PORT", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535)
        return hp_err_set(err, HP_EUSAGE, "--listen '%s': bad port", addr);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV },
                    *res = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai)
        return hp_err_set(err, HP_EUSAGE, "--listen '%s': %s", addr, gai_strerror(gai));
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int loop = ai->ai_family == AF_INET
                       ? (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127
                       : ai->ai_family == AF_INET6 &&
                             IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
        if (!loop) {
            freeaddrinfo(res);
            if (fd >= 0)
                close(fd);
            return hp_err_set(err, HP_EUSAGE, "--listen '%s' is not a loopback address: the "
                              "tunnel only listens on this machine (127.0.0.1, ::1)", addr);
        }
        if (fd < 0) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            int one = 1;
            if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (fd >= 0 && (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0)) {
                hp_err_errno(err, "cannot listen on %s", addr);
                close(fd);
                fd = -1;
                break;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return hp_err_set(err, HP_ESYS, "cannot listen on %s", addr);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int listen_unix(const char *path, struct hp_err *err)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sun.sun_path))
        return hp_err_set(err, HP_EUSAGE, "--unix '%s': the path is too long", path);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        int c = -1;
        if (S_ISSOCK(st.st_mode)) {      /* a stale socket may go; a live one stays */
            c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (c >= 0 && connect(c, (struct sockaddr *)&sun, sizeof(sun)) < 0 &&
                errno == ECONNREFUSED) {
                close(c);
                c = -2;
                unlink(path);
            }
        }
        if (c != -2) {
            if (c >= 0)
                close(c);
            return hp_err_set(err, HP_EUSAGE, "--unix '%s' exists already%s", path,
                              S_ISSOCK(st.st_mode) ? " (something listens there)" : "");
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hp_err_errno(err, "socket");
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
        hp_err_errno(err, "cannot listen on %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

struct pair {
    int fd[2];      /* the client, the tunnel */
    int eof[2];     /* fd[i] has sent all it will */
};

static void pair_close(struct pair *p)
{
    close(p->fd[0]);
    close(p->fd[1]);
}

/* Copy what fd[from] has to fd[!from]; 0, or -1 to drop the pair. */
static int pump(struct pair *p, int from)
{
    char buf[65536];
    ssize_t r = read(p->fd[from], buf, sizeof(buf));
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (r == 0) {
        p->eof[from] = 1;
        shutdown(p->fd[!from], SHUT_WR);
        return 0;
    }
    return hp_write_full(p->fd[!from], buf, (size_t)r);
}

static int serve(int lfd, struct hp_conn *conn, struct hp_epref *ep)
{
    struct pair pairs[MAX_PAIRS];
    int np = 0;
    for (;;) {
        struct pollfd pf[2 + 2 * MAX_PAIRS];
        int n = 0;
        pf[n++] = (struct pollfd){ .fd = stop_pipe[0], .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = np < MAX_PAIRS ? lfd : -1, .events = POLLIN };
        for (int i = 0; i < np; i++)
            for (int k = 0; k < 2; k++)
                pf[n++] = (struct pollfd){ .fd = pairs[i].eof[k] ? -1 : pairs[i].fd[k],
                                           .events = POLLIN };
        if (poll(pf, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[0].revents)
            break;
        for (int i = np - 1; i >= 0; i--) {
            int drop = 0;
            for (int k = 0; k < 2 && !drop; k++)
                if (pf[2 + 2 * i + k].revents && pump(&pairs[i], k) < 0)
                    drop = 1;
            if (drop || (pairs[i].eof[0] && pairs[i].eof[1])) {
                pair_close(&pairs[i]);
                pairs[i] = pairs[--np];
            }
        }
        if (pf[1].revents & POLLIN) {
            int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (a < 0)
                continue;
            struct hp_err e;
            hp_err_init(&e);
            int t = hp_conn_tunnel(conn, ep->host, ep->port, &e);
            if (t < 0) {
                hp_cli_warn("cannot reach endpoint '%s' on site '%s': %s", ep->name, ep->site,
                            e.msg);
                close(a);
                continue;
            }
            hp_cli_log(1, "connection %d joined to a tunnel", np);
            pairs[np++] = (struct pair){ .fd = { a, t } };
        }
    }
    for (int i = 0; i < np; i++)
        pair_close(&pairs[i]);
    return 0;
}

int cmd_tunnel(int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, OPT_NAME },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "unix", required_argument, NULL, OPT_UNIX },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    const char *name = NULL, *listen_addr = NULL, *unix_path = NULL;
    int c, rc = 0, lfd = -1, port = 0;
    struct hp_site *s = NULL;
    struct hp_conn *conn = NULL;
    struct hp_epref ep = { 0 };
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
        case OPT_LISTEN: listen_addr = optarg; break;
        case OPT_UNIX: unix_path = optarg; break;
        case ':':
            rc = hp_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (argc - optind != 1) {
        rc = hp_cli_usage_error(usage, argc == optind ? "no site given"
                                                      : "unexpected argument '%s'",
                                argv[argc - 1]);
        goto out;
    }
    if (listen_addr && unix_path) {
        rc = hp_cli_usage_error(usage, "give --listen or --unix, not both");
        goto out;
    }
    if (!(s = hp_cli_site(argv[optind], &sa, &err)) ||
        hp_epref_load(s->name, name, &ep, &err) < 0 || !(conn = hp_conn_open(s, &err)) ||
        hp_epref_check(conn, &ep, NULL, &err) < 0)
        goto fail;
    lfd = unix_path ? listen_unix(unix_path, &err)
                    : listen_tcp(listen_addr ? listen_addr : "127.0.0.1:0", &port, &err);
    if (lfd < 0)
        goto fail;
    if (pipe2(stop_pipe, O_CLOEXEC) < 0) {
        hp_err_errno(&err, "pipe");
        goto fail;
    }
    struct sigaction sact = { .sa_handler = on_signal };
    sigemptyset(&sact.sa_mask);
    sigaction(SIGINT, &sact, NULL);
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGHUP, &sact, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (unix_path) {
        printf("unix socket: %s\n", unix_path);
        printf("url: %s://localhost/v1/ (curl --unix-socket %s)\n",
               ep.tls_pin ? "https" : "http", unix_path);
    } else {
        int v6 = listen_addr && strchr(listen_addr, '[');
        printf("url: %s://%s:%d/v1/\n", ep.tls_pin ? "https" : "http", v6 ? "[::1]" : "127.0.0.1",
               port);
    }
    if (ep.tls_pin)     /* the certificate names the compute node, not this end */
        printf("tls: the endpoint's public key pin is %s (curl --pinnedpubkey)\n", ep.tls_pin);
    printf("token file: %s\n", ep.token_path);
    printf("endpoint '%s' on site '%s'; Ctrl-C to stop\n", ep.name, ep.site);
    fflush(stdout);
    serve(lfd, conn, &ep);
    goto out;
fail:
    rc = hp_cli_error(&err);
out:
    if (lfd >= 0) {
        close(lfd);
        if (unix_path)
            unlink(unix_path);
    }
    for (int i = 0; i < 2; i++)
        if (stop_pipe[i] >= 0) {
            close(stop_pipe[i]);
            stop_pipe[i] = -1;
        }
    hp_epref_release(&ep);
    hp_conn_free(conn);
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    return rc;
}
