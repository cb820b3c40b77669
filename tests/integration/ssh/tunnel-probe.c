/* tunnel-probe.c - for test-ssh.sh: open SITE's connection as hpcport does
 * (through its master when one runs), open a tunnel to HOST:PORT with
 * hp_conn_tunnel() and print the first line the far end sends (an SSH
 * banner). Prints the transport's name on stderr. Exit 0 when a line came. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conn.h"
#include "site.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SITE HOST PORT\n", argv[0]);
        return 2;
    }
    struct hp_err err;
    hp_err_init(&err);
    struct hp_site_opts o = { 0 };
    struct hp_site *s = hp_site_load(argv[1], &o, &err);
    struct hp_conn *c = s ? hp_conn_open(s, &err) : NULL;
    int fd = c ? hp_conn_tunnel(c, argv[2], atoi(argv[3]), &err) : -1;
    if (fd < 0) {
        char line[2200];
        hp_err_format(&err, line, sizeof(line));
        fprintf(stderr, "tunnel-probe: %s\n", line);
        hp_conn_free(c);
        hp_site_free(s);
        return 1;
    }
    fprintf(stderr, "transport: %s\n", c->ops->name);
    char buf[256];
    size_t n = 0;
    int ok = 0;
    while (n < sizeof(buf) - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strchr(buf, '\n')) {
            ok = 1;
            break;
        }
    }
    buf[n] = '\0';
    printf("%s", buf);
    close(fd);
    hp_conn_free(c);
    hp_site_free(s);
    return ok ? 0 : 1;
}
