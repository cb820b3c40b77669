/* cmd-ssh.c - hpcport ssh | cp: run one command on a site, copy files to
 * and from it, through the site's connection (hp_conn: a running master,
 * else a fresh SSH connection; the local site runs things here). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "buf.h"
#include "conn.h"
#include "site.h"
#include "util.h"
#include "banned.h"

enum { OPT_TIMEOUT = 256, OPT_STDIN, OPT_IDEMPOTENT };

/* ================================================================ ssh */

static const char ssh_usage[] =
    "usage: hpcport ssh [--timeout DURATION] [--stdin] [--idempotent] [--set KEY=VALUE]... "
    "[--workflow FILE|--dir DIR] SITE [--] COMMAND [ARG]...\n";

static const char ssh_help[] =
    "\n"
    "Run COMMAND with its arguments on SITE's login host, as hpcport runs its own\n"
    "commands there: each word is quoted, so the remote shell sees it literally\n"
    "(no globbing, no variables). Standard output and error come back\n"
    "separately; the exit status is the command's (255 when it died of a\n"
    "signal hpcport does not know; hpcport's own codes when the connection\n"
    "fails). Output is collected up to 64 MiB per stream, then printed.\n"
    "\n"
    "options:\n"
    "    --timeout DURATION give up after DURATION (the command's pipes close)\n"
    "    --stdin            send this command's standard input to COMMAND\n"
    "    --idempotent       COMMAND may run twice: if the connection drops while it\n"
    "                       runs, connect again and run it again (without this,\n"
    "                       only a command that never started is run again)\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do\n"
    "    -h, --help         show this help\n";

static int write_out(FILE *f, const struct hp_buf *b)
{
    return b->len && fwrite(b->buf, 1, b->len, f) != b->len ? -1 : 0;
}

int cmd_ssh(int argc, char **argv)
{
    static const struct option opts[] = {
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "stdin", no_argument, NULL, OPT_STDIN },
        { "idempotent", no_argument, NULL, OPT_IDEMPOTENT },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    double timeout = 0;
    int use_stdin = 0, idem = 0, c, rc;
    struct hp_site *s = NULL;
    struct hp_conn *conn = NULL;
    struct hp_buf in = HP_BUF_INIT, out = HP_BUF_INIT, eo = HP_BUF_INIT;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    /* '+': options stop at SITE; everything after it is the command */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(ssh_usage, stdout);
            fputs(ssh_help, stdout);
            rc = 0;
            goto out;
        case OPT_TIMEOUT: {
            int64_t d = hp_parse_duration(optarg);
            if (d <= 0) {
                rc = hp_cli_usage_error(ssh_usage, "--timeout '%s' is not a duration", optarg);
                goto out;
            }
            timeout = (double)d;
            break;
        }
        case OPT_STDIN: use_stdin = 1; break;
        case OPT_IDEMPOTENT: idem = 1; break;
        case ':':
            rc = hp_cli_usage_error(ssh_usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(ssh_usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind >= argc) {
        rc = hp_cli_usage_error(ssh_usage, "no site given");
        goto out;
    }
    const char *site = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    if (optind >= argc) {
        rc = hp_cli_usage_error(ssh_usage, "no command given");
        goto out;
    }
    if (use_stdin) {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
            hp_buf_add(&in, buf, n);
    }
    s = hp_cli_site(site, &sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    conn = hp_conn_open(s, &err);
    if (!conn) {
        rc = hp_cli_error(&err);
        goto out;
    }
    hp_cli_log(1, "running on site '%s' through the %s transport", s->name, conn->ops->name);
    int status = 0;
    if (hp_conn_exec_ex(conn, (const char *const *)argv + optind, in.buf, in.len, &out, &eo,
                        &status, timeout, idem ? HP_EXEC_IDEMPOTENT : 0, &err) < 0) {
        rc = hp_cli_error(&err);
        goto out;
    }
    fflush(stdout);
    write_out(stdout, &out);
    fflush(stdout);
    write_out(stderr, &eo);
    if (out.truncated || eo.truncated)
        hp_cli_warn("output longer than 64 MiB was cut");
    rc = status;
out:
    hp_conn_free(conn);
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    hp_buf_release(&in);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return rc;
}

/* ================================================================ cp */

static const char cp_usage[] =
    "usage: hpcport cp [-r] [-p] [--set KEY=VALUE]... [--workflow FILE|--dir DIR] "
    "SRC SITE:DST\n"
    "   or: hpcport cp [-r] [-p] [--set KEY=VALUE]... [--workflow FILE|--dir DIR] "
    "SITE:SRC DST\n";

static const char cp_help[] =
    "\n"
    "Copy a file (or with -r a directory tree) to or from a site. Each file is\n"
    "written under a temporary name, its size and SHA-256 checked, then renamed\n"
    "into place; an interrupted copy resumes where it stopped when run again.\n"
    "Parent directories are created. Remote paths are relative to the login\n"
    "directory and taken literally (no ~ or $VAR expansion, except a leading ~/).\n"
    "A DST that ends in '/' or is an existing directory receives SRC under its\n"
    "own name.\n"
    "\n"
    "options:\n"
    "    -r, --recursive    copy directories\n"
    "    -p, --preserve     keep permission bits exactly (default: as the source,\n"
    "                       minus group/other write)\n"
    "    --set, --workflow, --dir\n"
    "                       resolve SITE as other commands do\n"
    "    -h, --help         show this help\n";

/* "SITE:PATH" with a valid site name before the first ':'; paths that
 * start with '/' or '.' are local even when they hold a ':'. */
static int split_remote(const char *arg, char **site, const char **path)
{
    const char *colon = strchr(arg, ':');
    if (!colon || arg[0] == '/' || arg[0] == '.' || colon == arg)
        return 0;
    char *name = hp_xstrndup(arg, (size_t)(colon - arg));
    if (!hp_site_valid_name(name)) {
        free(name);
        return 0;
    }
    *site = name;
    *path = colon + 1;
    if (hp_starts_with(*path, "~/"))
        *path += 2;
    return 1;
}

static const char *base_name(const char *p)
{
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    const char *b = p + len;
    while (b > p && b[-1] != '/')
        b--;
    return b;
}

/* dst "into" a directory: dir/basename(src). */
static char *into(const char *dir, const char *src)
{
    char *b = hp_xstrdup(base_name(src));
    size_t bl = strlen(b);
    while (bl > 1 && b[bl - 1] == '/')
        b[--bl] = '\0';
    char *r = *dir ? hp_path_join(dir, b) : hp_xstrdup(b);
    free(b);
    return r;
}

int cmd_cp(int argc, char **argv)
{
    static const struct option opts[] = {
        { "recursive", no_argument, NULL, 'r' },
        { "preserve", no_argument, NULL, 'p' },
        HP_CLI_SITE_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct hp_cli_siteargs sa = { 0 };
    int flags = 0, c, rc;
    char *site = NULL, *site2 = NULL, *target = NULL;
    struct hp_site *s = NULL;
    struct hp_conn *conn = NULL;
    struct hp_err err;
    hp_err_init(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hrp", opts, NULL)) != -1) {
        if (hp_cli_siteargs_opt(&sa, c, optarg))
            continue;
        switch (c) {
        case 'h':
            fputs(cp_usage, stdout);
            fputs(cp_help, stdout);
            rc = 0;
            goto out;
        case 'r': flags |= HP_XFER_RECURSIVE; break;
        case 'p': flags |= HP_XFER_MODE; break;
        case ':':
            rc = hp_cli_usage_error(cp_usage, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hp_cli_usage_error(cp_usage, "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (argc - optind != 2) {
        rc = hp_cli_usage_error(cp_usage, "give a source and a destination");
        goto out;
    }
    const char *src = argv[optind], *dst = argv[optind + 1], *rsrc = NULL, *rdst = NULL;
    int src_remote = split_remote(src, &site, &rsrc);
    int dst_remote = split_remote(dst, &site2, &rdst);
    if (src_remote == dst_remote) {
        rc = hp_cli_usage_error(cp_usage, src_remote ? "both SRC and DST are on a site; copy "
                                "through this machine" : "neither SRC nor DST names a site "
                                "(SITE:PATH)");
        goto out;
    }
    s = hp_cli_site(src_remote ? site : site2, &sa, &err);
    if (!s) {
        rc = hp_cli_error(&err);
        goto out;
    }
    conn = hp_conn_open(s, &err);
    if (!conn) {
        rc = hp_cli_error(&err);
        goto out;
    }
    if (dst_remote) {
        /* DST/ or an existing remote directory receives SRC by name */
        int is_dir = !*rdst || hp_ends_with(rdst, "/");
        if (!is_dir) {
            const char *test[] = { "test", "-d", rdst, NULL };
            int st = 1;
            if (hp_conn_exec(conn, test, NULL, 0, NULL, NULL, &st, 60, &err) < 0) {
                rc = hp_cli_error(&err);
                goto out;
            }
            is_dir = st == 0;
        }
        target = is_dir ? into(rdst, src) : hp_xstrdup(rdst);
        hp_cli_log(1, "copying '%s' to '%s' on site '%s' (%s)", src, target, s->name,
                   conn->ops->name);
        if (hp_conn_put(conn, src, target, flags, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
    } else {
        struct stat st;
        int is_dir = hp_ends_with(dst, "/") || (stat(dst, &st) == 0 && S_ISDIR(st.st_mode));
        target = is_dir ? into(dst, *rsrc ? rsrc : ".") : hp_xstrdup(dst);
        hp_cli_log(1, "copying '%s' on site '%s' to '%s' (%s)", rsrc, s->name, target,
                   conn->ops->name);
        if (hp_conn_get(conn, *rsrc ? rsrc : ".", target, flags, &err) < 0) {
            rc = hp_cli_error(&err);
            goto out;
        }
    }
    rc = 0;
out:
    hp_conn_free(conn);
    hp_site_free(s);
    hp_cli_siteargs_release(&sa);
    free(site);
    free(site2);
    free(target);
    return rc;
}
