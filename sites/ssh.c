/* ssh.c - SSH sessions over libssh2: hops, host keys, authentication,
 * exec, tunnels, keepalives and reconnects (file transfer: ssh-sftp.c).
 *
 * Every session runs in non-blocking mode. The login host's session may be
 * shared by threads (the master serves several clients; tunnels pump in
 * their own threads), so each libssh2 call on it is made under hp_ssh.mu;
 * a thread that must wait releases the mutex and either polls the socket
 * itself (one "poller" at a time) or sleeps on a condition variable that the
 * poller signals. Jump-host sessions each belong to the pump thread that
 * bridges the next hop's socketpair to a direct-tcpip channel. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "ssh-int.h"
#include "auth.h"
#include "conn.h"
#include "knownhosts.h"
#include "quote.h"
#include "site.h"
#include "sshconfig.h"
#include "util.h"
#include "banned.h"

static pthread_once_t libssh2_once = PTHREAD_ONCE_INIT;
static void libssh2_start(void)
{
    libssh2_init(0);
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static char **strv_dup(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **d = hp_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        d[i] = hp_xstrdup(v[i]);
    return d;
}

static const char *local_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_name ? pw->pw_name : "root";
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}

int ssh_transport_error(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_DECRYPT ||
           rc == LIBSSH2_ERROR_BAD_USE || rc == LIBSSH2_ERROR_KEX_FAILURE ||
           rc == LIBSSH2_ERROR_SOCKET_NONE || rc == LIBSSH2_ERROR_BANNER_RECV ||
           rc == LIBSSH2_ERROR_BANNER_SEND || rc == LIBSSH2_ERROR_INVALID_MAC ||
           rc == LIBSSH2_ERROR_PROTO || rc == LIBSSH2_ERROR_OUT_OF_BOUNDARY;
}

static const char *sess_error(LIBSSH2_SESSION *sess, int *code)
{
    char *msg = NULL;
    int c = sess ? libssh2_session_last_error(sess, &msg, NULL, 0) : 0;
    if (code)
        *code = c;
    return msg && *msg ? msg : "unknown error";
}

/* ================================================================ params */

static void hopcfg_release(struct ssh_hopcfg *h)
{
    free(h->name);
    free(h->host);
    free(h->user);
    strv_free(h->ids);
    strv_free(h->known_files);
    free(h->role);
}

static void params_free(struct ssh_params *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nhops; i++)
        hopcfg_release(&p->hops[i]);
    free(p->hops);
    free(p->site);
    strv_free(p->methods);
    free(p->otp_command);
    free(p->proxy);
    free(p->target);
    free(p);
}

struct chain {
    struct ssh_hopcfg *hops;
    size_t n, alloc;
    int alive_interval, alive_count, connect_timeout;
};

/* Append the hops to reach name (its own jump hosts first, then itself).
 * jumps_override: the profile's login.jump for the login host (NULL
 * otherwise); use_config_jump: whether the host's ProxyJump applies (only
 * the first element of a ProxyJump list keeps its own, as in OpenSSH). */
static int add_chain(const struct hp_sshcfg *cfg, struct chain *c, const char *user,
                     const char *name, int port, char *const *jumps_override, int use_config_jump,
                     int depth, struct hp_err *err)
{
    if (depth > 8 || c->n > 10)
        return hp_err_set(err, HP_ESITE, "jump host chain to '%s' is longer than 10 hops "
                          "(a ProxyJump loop?)", name);
    struct hp_sshhost sh;
    if (hp_sshcfg_lookup(cfg, name, &sh, err) < 0)
        return -1;
    int ret = -1;
    if (jumps_override && jumps_override[0]) {
        for (size_t i = 0; jumps_override[i]; i++) {
            char *ju, *jh;
            int jp;
            if (hp_ssh_parse_hop(jumps_override[i], &ju, &jh, &jp, err) < 0)
                goto out;
            int r = add_chain(cfg, c, ju, jh, jp, NULL, i == 0, depth + 1, err);
            free(ju);
            free(jh);
            if (r < 0)
                goto out;
        }
    } else if (use_config_jump && sh.proxy_jump && strcasecmp(sh.proxy_jump, "none")) {
        char *list = hp_xstrdup(sh.proxy_jump), *save = NULL;
        int first = 1;
        for (char *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            char *ju, *jh;
            int jp;
            if (hp_ssh_parse_hop(w, &ju, &jh, &jp, err) < 0) {
                free(list);
                goto out;
            }
            int r = add_chain(cfg, c, ju, jh, jp, NULL, first, depth + 1, err);
            first = 0;
            free(ju);
            free(jh);
            if (r < 0) {
                free(list);
                goto out;
            }
        }
        free(list);
    }
    HP_ALLOC_GROW(c->hops, c->n + 1, c->alloc);
    struct ssh_hopcfg *h = &c->hops[c->n++];
    memset(h, 0, sizeof(*h));
    h->name = hp_xstrdup(name);
    h->host = hp_xstrdup(sh.hostname ? sh.hostname : name);
    h->port = port > 0 ? port : sh.port > 0 ? sh.port : 22;
    h->user = hp_xstrdup(user ? user : sh.user ? sh.user : local_user());
    h->ids = strv_dup(sh.identity_files);
    h->ids_only = sh.identities_only == 1;
    if (sh.known_hosts_files[0]) {
        h->known_files = strv_dup(sh.known_hosts_files);
    } else {
        h->known_files = hp_xcalloc(3, sizeof(char *));
        h->known_files[0] = hp_xasprintf("%s/.ssh/known_hosts", home_dir());
        h->known_files[1] = hp_xasprintf("%s/.ssh/known_hosts2", home_dir());
    }
    const char *shk = sh.strict_host_key_checking;
    h->accept_new = shk && (!strcmp(shk, "accept-new") || !strcmp(shk, "no") ||
                            !strcmp(shk, "off"));
    if (c->connect_timeout < 0 && sh.connect_timeout > 0)
        c->connect_timeout = sh.connect_timeout;
    /* the login host's keepalive settings win (it is added last) */
    if (sh.server_alive_interval >= 0)
        c->alive_interval = sh.server_alive_interval;
    if (sh.server_alive_count_max >= 0)
        c->alive_count = sh.server_alive_count_max;
    ret = 0;
out:
    hp_sshhost_release(&sh);
    return ret;
}

static struct ssh_params *params_new(const struct hp_site *site, struct hp_err *err)
{
    if (!site->login_host) {
        hp_err_set(err, HP_ESITE, "site '%s' has no login.host: it is not reached over SSH",
                   site->name);
        return NULL;
    }
    struct hp_sshcfg *cfg = hp_sshcfg_load(NULL, err);
    if (!cfg) {
        hp_err_prefix(err, "ssh configuration");
        return NULL;
    }
    struct chain c = { .alive_interval = -1, .alive_count = -1, .connect_timeout = -1 };
    struct ssh_params *p = NULL;
    if (add_chain(cfg, &c, site->login_user, site->login_host, site->login_port, site->jump, 1, 0,
                  err) < 0) {
        for (size_t i = 0; i < c.n; i++)
            hopcfg_release(&c.hops[i]);
        free(c.hops);
        hp_sshcfg_free(cfg);
        hp_err_prefix(err, "site '%s'", site->name);
        return NULL;
    }
    hp_sshcfg_free(cfg);
    p = hp_xcalloc(1, sizeof(*p));
    p->site = hp_xstrdup(site->name);
    p->hops = c.hops;
    p->nhops = c.n;
    p->methods = strv_dup(site->auth);
    p->otp_command = site->otp_command ? hp_xstrdup(site->otp_command) : NULL;
    p->alive_interval = c.alive_interval >= 0 ? c.alive_interval : 30;
    p->alive_count = c.alive_count > 0 ? c.alive_count : 3;
    p->connect_timeout = c.connect_timeout > 0 ? c.connect_timeout : 30;
    const char *px = getenv("HPCPORT_PROXY");
    if (px && *px) {
        p->proxy = hp_xstrdup(px);
    } else if (site->root) {
        json_t *lp = json_object_get(json_object_get(site->root, "login"), "proxy");
        if (json_is_string(lp) && json_string_length(lp))
            p->proxy = hp_xstrdup(json_string_value(lp));
    }
    struct hp_buf t = HP_BUF_INIT;
    for (size_t i = p->nhops; i-- > 0;) {
        struct ssh_hopcfg *h = &p->hops[i];
        hp_buf_addf(&t, "%s%s@%s:%d", i + 1 < p->nhops ? " via " : "", h->user, h->host,
                    h->port);
        if (i + 1 == p->nhops)
            h->role = hp_xasprintf("login host %s", h->name);
        else if (p->nhops == 2)
            h->role = hp_xasprintf("jump host %s", h->name);
        else
            h->role = hp_xasprintf("jump host %zu of %zu, %s", i + 1, p->nhops - 1, h->name);
    }
    if (p->proxy)
        hp_buf_addf(&t, " via proxy %s", p->proxy);
    p->target = hp_buf_detach(&t, NULL);
    return p;
}

void hp_ssh_target_key(const struct hp_site *site, char out[17])
{
    struct hp_buf b = HP_BUF_INIT;
    hp_buf_addf(&b, "%s%c%s%c%d%c", site->login_host ? site->login_host : "", 0,
                site->login_user ? site->login_user : "", 0, site->login_port, 0);
    for (size_t i = 0; site->jump && site->jump[i]; i++)
        hp_buf_addf(&b, "j:%s%c", site->jump[i], 0);
    const char *px = getenv("HPCPORT_PROXY");
    hp_buf_addf(&b, "p:%s", px ? px : "");
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)b.buf, b.len, md);
    hp_buf_release(&b);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ================================================================ sockets */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        int ms = deadline ? (int)((deadline - hp_now()) * 1000) : 1000;
        if (ms <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = { .fd = fd, .events = ev };
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r > 0)
            return 0;
    }
}

static int tcp_connect(const char *host, int port, double timeout, const char *what,
                       struct hp_err *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai)
        return hp_err_set(err, HP_ESITE, "cannot connect to %s: host '%s' not found (%s)", what,
                          host, gai_strerror(gai));
    int fd = -1, e = 0;
    double deadline = hp_now() + timeout;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        set_nonblock(fd);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            if (wait_fd(fd, POLLOUT, deadline) == 0) {
                socklen_t sl = sizeof(e);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e == 0)
                    break;
            } else {
                e = errno;
            }
        } else {
            e = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return hp_err_set(err, HP_ESITE, "cannot connect to %s at %s port %d: %s", what, host,
                          port, e == ETIMEDOUT ? "timed out (ConnectTimeout)" : strerror(e));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int send_all(int fd, const void *buf, size_t len, double deadline)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
            continue;
        }
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int recv_some(int fd, void *buf, size_t len, double deadline)
{
    for (;;) {
        ssize_t r = recv(fd, buf, len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLIN, deadline) < 0)
                return -1;
            continue;
        }
        if (r == 0)
            errno = ECONNRESET;
        return r > 0 ? (int)r : -1;
    }
}

static int recv_exact(int fd, void *buf, size_t len, double deadline)
{
    char *p = buf;
    while (len) {
        int r = recv_some(fd, p, len, deadline);
        if (r < 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Parse "scheme://[user:pass@]host:port[/]". */
static int parse_proxy(const char *url, char **scheme, char **auth, char **host, int *port,
                       struct hp_err *err)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return hp_err_set(err, HP_ESITE, "proxy '%s' is not http://HOST:PORT or "
                          "socks5://HOST:PORT", url);
    *scheme = hp_xstrndup(url, (size_t)(sep - url));
    const char *s = sep + 3, *at = strchr(s, '@');
    *auth = NULL;
    if (at) {
        *auth = hp_xstrndup(s, (size_t)(at - s));
        s = at + 1;
    }
    char *rest = hp_xstrdup(s), *slash = strchr(rest, '/');
    if (slash)
        *slash = '\0';
    char *u = NULL;
    int r = hp_ssh_parse_hop(rest, &u, host, port, err);
    free(rest);
    free(u);
    if (r < 0 || !*port) {
        free(*scheme);
        free(*auth);
        if (r == 0)
            free(*host);
        *scheme = *auth = *host = NULL;
        hp_err_init(err);
        return hp_err_set(err, HP_ESITE, "proxy '%s' needs a host and a port", url);
    }
    return 0;
}

static int proxy_connect(const char *url, const char *host, int port, double timeout,
                         struct hp_err *err)
{
    char *scheme, *auth, *phost;
    int pport, fd = -1;
    if (parse_proxy(url, &scheme, &auth, &phost, &pport, err) < 0)
        return -1;
    char *what = hp_xasprintf("proxy %s", url);
    double deadline = hp_now() + timeout;
    if (strcmp(scheme, "http") && strcmp(scheme, "socks5") && strcmp(scheme, "socks5h")) {
        hp_err_set(err, HP_ESITE, "proxy '%s': scheme '%s' is not http or socks5", url, scheme);
        goto out;
    }
    fd = tcp_connect(phost, pport, timeout, what, err);
    if (fd < 0)
        goto out;
    if (!strcmp(scheme, "http")) {
        struct hp_buf rq = HP_BUF_INIT;
        const char *h6 = strchr(host, ':') ? "[" : "", *h6e = *h6 ? "]" : "";
        hp_buf_addf(&rq, "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n", h6, host, h6e, port,
                    h6, host, h6e, port);
        if (auth) {
            size_t al = strlen(auth);
            char *enc = hp_xmalloc(4 * ((al + 2) / 3) + 1);
            EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)auth, (int)al);
            hp_buf_addf(&rq, "Proxy-Authorization: Basic %s\r\n", enc);
            free(enc);
        }
        hp_buf_adds(&rq, "\r\n");
        int r = send_all(fd, rq.buf, rq.len, deadline);
        hp_buf_release(&rq);
        if (r < 0) {
            hp_err_errno(err, "%s", what);
            goto fail;
        }
        /* read the reply byte by byte: nothing after its blank line may be
         * consumed, that is the SSH banner */
        struct hp_buf rep = HP_BUF_INIT;
        while (!hp_ends_with(rep.buf, "\r\n\r\n") && !hp_ends_with(rep.buf, "\n\n")) {
            char ch;
            if (rep.len > 16384 || recv_some(fd, &ch, 1, deadline) < 0) {
                hp_err_set(err, HP_ESITE, "%s: no valid reply to CONNECT %s:%d", what, host,
                           port);
                hp_buf_release(&rep);
                goto fail;
            }
            hp_buf_addch(&rep, ch);
        }
        int code = 0;
        if (sscanf(rep.buf, "HTTP/%*d.%*d %d", &code) != 1 || code != 200) {
            char *nl = strpbrk(rep.buf, "\r\n");
            if (nl)
                *nl = '\0';
            hp_err_set(err, HP_ESITE, "%s refused CONNECT %s:%d: %s", what, host, port, rep.buf);
            hp_buf_release(&rep);
            goto fail;
        }
        hp_buf_release(&rep);
    } else {
        unsigned char buf[600];
        size_t hl = strlen(host);
        if (hl > 255) {
            hp_err_set(err, HP_ESITE, "%s: host name too long for SOCKS5", what);
            goto fail;
        }
        int have_auth = auth != NULL;
        buf[0] = 5;
        buf[1] = have_auth ? 2 : 1;
        buf[2] = 0;
        buf[3] = 2;
        if (send_all(fd, buf, have_auth ? 4 : 3, deadline) < 0 ||
            recv_exact(fd, buf, 2, deadline) < 0) {
            hp_err_errno(err, "%s: SOCKS5 greeting", what);
            goto fail;
        }
        if (buf[0] != 5 || (buf[1] != 0 && !(buf[1] == 2 && have_auth))) {
            hp_err_set(err, HP_ESITE, "%s: SOCKS5 server wants an authentication method "
                       "hpcport does not offer", what);
            goto fail;
        }
        if (buf[1] == 2) {
            /* RFC 1929 user/password */
            char *colon = strchr(auth, ':');
            size_t ul = colon ? (size_t)(colon - auth) : strlen(auth);
            const char *pw = colon ? colon + 1 : "";
            size_t pl = strlen(pw), n = 0;
            if (ul > 255 || pl > 255) {
                hp_err_set(err, HP_ESITE, "%s: user or password too long", what);
                goto fail;
            }
            buf[n++] = 1;
            buf[n++] = (unsigned char)ul;
            memcpy(buf + n, auth, ul);
            n += ul;
            buf[n++] = (unsigned char)pl;
            memcpy(buf + n, pw, pl);
            n += pl;
            if (send_all(fd, buf, n, deadline) < 0 || recv_exact(fd, buf, 2, deadline) < 0 ||
                buf[1] != 0) {
                hp_err_set(err, HP_ESITE, "%s: SOCKS5 authentication failed", what);
                goto fail;
            }
        }
        size_t n = 0;
        buf[n++] = 5;
        buf[n++] = 1;   /* CONNECT */
        buf[n++] = 0;
        buf[n++] = 3;   /* domain name: the proxy resolves it */
        buf[n++] = (unsigned char)hl;
        memcpy(buf + n, host, hl);
        n += hl;
        buf[n++] = (unsigned char)(port >> 8);
        buf[n++] = (unsigned char)(port & 0xff);
        if (send_all(fd, buf, n, deadline) < 0 || recv_exact(fd, buf, 4, deadline) < 0) {
            hp_err_errno(err, "%s: SOCKS5 request", what);
            goto fail;
        }
        if (buf[1] != 0) {
            static const char *const why[] = { "", "general failure", "not allowed by ruleset",
                                               "network unreachable", "host unreachable",
                                               "connection refused", "TTL expired",
                                               "command not supported",
                                               "address type not supported" };
            hp_err_set(err, HP_ESITE, "%s cannot reach %s port %d: %s", what, host, port,
                       buf[1] < 9 ? why[buf[1]] : "error");
            goto fail;
        }
        size_t skip = buf[3] == 1 ? 4 : buf[3] == 4 ? 16 : 0;
        if (buf[3] == 3) {
            if (recv_exact(fd, buf, 1, deadline) < 0)
                goto fail_io;
            skip = buf[0];
        }
        if (recv_exact(fd, buf, skip + 2, deadline) < 0)
            goto fail_io;
    }
    goto out;
fail_io:
    hp_err_errno(err, "%s: SOCKS5 reply", what);
fail:
    close(fd);
    fd = -1;
out:
    free(what);
    free(scheme);
    if (auth)
        OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    free(phost);
    return fd;
}

/* ================================================================ pumps */

/* Bytes moving between a channel and a local socket (a hop's socketpair,
 * a tunnel's client), one non-blocking step at a time. The callers own
 * the loop: locking, waiting and when to stop differ. */
struct chpump {
    char *a2b, *b2a;                 /* channel -> fd, fd -> channel */
    size_t bufsz, alen, aoff, blen, boff;
    int chan_eof, fd_eof, eof_sent, shut;
};

static void chpump_init(struct chpump *p, size_t bufsz)
{
    memset(p, 0, sizeof(*p));
    p->bufsz = bufsz;
    p->a2b = hp_xmalloc(bufsz);
    p->b2a = hp_xmalloc(bufsz);
}

static void chpump_release(struct chpump *p)
{
    free(p->a2b);
    free(p->b2a);
}

/* Move what moves without blocking; *progress is set when something did.
 * 0, or -1 when the bridge must end: *chan_rc is then the libssh2 error of
 * a failed channel read or write (0 when the socket or the EOF failed). */
static int chpump_step(struct chpump *p, LIBSSH2_CHANNEL *ch, int fd, int *progress,
                       int *chan_rc)
{
    *chan_rc = 0;
    if (!p->alen && !p->chan_eof) {
        ssize_t r = libssh2_channel_read(ch, p->a2b, p->bufsz);
        if (r > 0) {
            p->alen = (size_t)r;
            p->aoff = 0;
            *progress = 1;
        } else if (r == 0 && libssh2_channel_eof(ch)) {
            p->chan_eof = 1;
        } else if (r < 0 && r != LIBSSH2_ERROR_EAGAIN) {
            *chan_rc = (int)r;
            return -1;
        }
    }
    if (p->alen) {
        ssize_t w = send(fd, p->a2b + p->aoff, p->alen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p->aoff += (size_t)w;
            p->alen -= (size_t)w;
            *progress = 1;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (p->chan_eof && !p->alen && !p->shut) {
        shutdown(fd, SHUT_WR);
        p->shut = 1;
    }
    if (!p->blen && !p->fd_eof) {
        ssize_t r = recv(fd, p->b2a, p->bufsz, MSG_DONTWAIT);
        if (r > 0) {
            p->blen = (size_t)r;
            p->boff = 0;
            *progress = 1;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            p->fd_eof = 1;
        }
    }
    if (p->blen) {
        ssize_t w = libssh2_channel_write(ch, p->b2a + p->boff, p->blen);
        if (w > 0) {
            p->boff += (size_t)w;
            p->blen -= (size_t)w;
            *progress = 1;
        } else if (w < 0 && w != LIBSSH2_ERROR_EAGAIN) {
            *chan_rc = (int)w;
            return -1;
        }
    }
    if (p->fd_eof && !p->blen && !p->eof_sent) {
        int r = libssh2_channel_send_eof(ch);
        if (r == 0)
            p->eof_sent = 1;
        else if (r != LIBSSH2_ERROR_EAGAIN)
            return -1;
    }
    return 0;
}

/* ================================================================ hops */

struct pump_arg {
    struct ssh_hop *prev, *hop;
    int alive_interval;
};

/* Bridge hop->pairfd and hop->chan (on prev->sess, which this thread owns
 * from now on) until either side ends or stopfd is written. */
static void *pump_main(void *arg)
{
    struct pump_arg *pa = arg;
    struct ssh_hop *prev = pa->prev, *hop = pa->hop;
    int alive = pa->alive_interval;
    free(pa);
    struct chpump p;
    chpump_init(&p, 256 * 1024);
    LIBSSH2_CHANNEL *ch = hop->chan;
    for (;;) {
        int progress = 0, chan_rc;
        if (chpump_step(&p, ch, hop->pairfd, &progress, &chan_rc) < 0)
            break;
        /* the far end no longer listens once our side of the pair closed */
        if (p.fd_eof && p.eof_sent)
            break;
        if (p.chan_eof && p.shut && p.fd_eof)
            break;
        int next = 0;
        if (alive > 0)
            libssh2_keepalive_send(prev->sess, &next);
        if (progress)
            continue;
        int dirs = libssh2_session_block_directions(prev->sess);
        struct pollfd pf[3] = {
            { .fd = prev->sock, .events = POLLIN |
                                          ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0) },
            { .fd = hop->pairfd, .events = (short)((!p.blen && !p.fd_eof ? POLLIN : 0) |
                                                   (p.alen ? POLLOUT : 0)) },
            { .fd = hop->stopfd[0], .events = POLLIN },
        };
        int ms = next > 0 ? next * 1000 : 1000;
        int r = poll(pf, 3, ms > 1000 ? 1000 : ms);
        if (r < 0 && errno != EINTR)
            break;
        if (pf[2].revents)
            break;
        if (pf[0].revents & (POLLERR | POLLNVAL))
            break;
    }
    chpump_release(&p);
    /* the next hop's session sees its socket close */
    shutdown(hop->pairfd, SHUT_RDWR);
    return NULL;
}

/* Under no lock: a wait used while a session is being set up (no other
 * thread uses it yet). */
struct setup_wait {
    struct ssh_hop *hop;
    double step;        /* seconds per step */
};

static int setup_wait_fn(void *ud, LIBSSH2_SESSION *sess, struct hp_err *err)
{
    struct setup_wait *w = ud;
    int dirs = libssh2_session_block_directions(sess);
    short ev = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        ev |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        ev |= POLLOUT;
    if (!ev)
        ev = POLLIN;
    if (wait_fd(w->hop->sock, ev, hp_now() + w->step) < 0)
        return hp_err_set(err, HP_ESITE, "no answer from the server for %.0f s", w->step);
    return 0;
}

static int hostkey_prefs(LIBSSH2_SESSION *sess, unsigned known)
{
    static const struct {
        int type;
        const char *algs;
    } order[] = {
        { LIBSSH2_HOSTKEY_TYPE_ED25519, "ssh-ed25519" },
        { LIBSSH2_HOSTKEY_TYPE_ECDSA_256, "ecdsa-sha2-nistp256" },
        { LIBSSH2_HOSTKEY_TYPE_ECDSA_384, "ecdsa-sha2-nistp384" },
        { LIBSSH2_HOSTKEY_TYPE_ECDSA_521, "ecdsa-sha2-nistp521" },
        /* libssh2 1.10 has no rsa-sha2-* host key methods */
        { LIBSSH2_HOSTKEY_TYPE_RSA, "ssh-rsa" },
    };
    struct hp_buf b = HP_BUF_INIT;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            int k = (known >> order[i].type) & 1;
            if (k == (pass == 0))
                hp_buf_addf(&b, "%s%s", b.len ? "," : "", order[i].algs);
        }
    int r = libssh2_session_method_pref(sess, LIBSSH2_METHOD_HOSTKEY, b.buf);
    hp_buf_release(&b);
    return r;
}

/* Check (and maybe record) the host key of a freshly handshaken hop. */
static int check_hostkey(struct hp_ssh *s, struct hp_kh *kh, LIBSSH2_SESSION *sess,
                         const struct ssh_hopcfg *hc, struct hp_err *err)
{
    size_t len = 0;
    int type = 0;
    const char *key = libssh2_session_hostkey(sess, &len, &type);
    if (!key)
        return hp_err_set(err, HP_ESITE, "%s sent no host key", hc->role);
    char *fp = hp_kh_fingerprint(key, len), *where = NULL, *own = hp_kh_own_file();
    const char *tname = hp_kh_type_name(type);
    struct hp_ssh_hostkey info = { .role = hc->role, .host = hc->host, .port = hc->port,
                                   .type = tname, .fingerprint = fp };
    char *hn = hp_kh_host_name(hc->host, hc->port);
    int ret = -1;
    enum hp_kh_result r = hp_kh_check(kh, hc->host, hc->port, key, len, type, &where);
    if (r == HP_KH_MATCH) {
        info.status = "known";
        info.where = where;
        ret = 0;
    } else if (r == HP_KH_CHANGED) {
        char *file = hp_xstrdup(where ? where : "?"), *colon = strrchr(file, ':');
        if (colon)
            *colon = '\0';
        hp_err_set(err, HP_ESITE, "REMOTE HOST KEY HAS CHANGED for %s (%s): it now offers %s "
                   "key %s, but %s holds a different key for it. Someone may be intercepting "
                   "the connection, or the host was reinstalled. hpcport will not connect; if "
                   "the site confirms the new key, remove that line (e.g. ssh-keygen -R '%s' "
                   "-f %s) and run 'hpcport site trust %s'", hn, hc->role, tname, fp,
                   where ? where : "a known_hosts file", hn, file, s->p->site);
        free(file);
        info.status = "refused";
        info.where = where;
    } else {
        int add = 0;
        const char *how = NULL;
        if (s->opts.trust == HP_SSH_TRUST_YES) {
            add = 1;
        } else if (s->opts.trust == HP_SSH_TRUST_ASK) {
            char *q = hp_xasprintf("%s (%s) offers %s key %s. Is this the site's key "
                                   "(compare it with what the site publishes)?",
                                   hc->role, hn, tname, fp);
            int c = hp_auth_confirm(q, err);
            free(q);
            if (c < 0)
                goto done;
            add = c;
            if (!c)
                hp_err_set(err, HP_ESITE, "host key of %s (%s) not trusted", hn, hc->role);
        } else if (hc->accept_new) {
            add = 1;
            how = "StrictHostKeyChecking";
        } else {
            hp_err_set(err, HP_ESITE, "host key of %s (%s) is not known: %s %s. If this is the "
                       "site's key (compare it with what the site publishes), trust it with "
                       "'hpcport site trust %s'", hn, hc->role, tname, fp, s->p->site);
        }
        if (add) {
            if (hp_kh_add(kh, own, hc->host, hc->port, key, len, type, err) < 0)
                goto done;
            free(where);
            where = NULL;
            hp_kh_check(kh, hc->host, hc->port, key, len, type, &where);
            info.status = "added";
            info.where = where;
            if (how)
                hp_auth_notify("warning: added the unknown %s host key %s of %s (%s) to %s "
                               "because the ssh configuration sets %s (hpcport treats 'no' "
                               "as 'accept-new': changed keys are still refused)",
                               tname, fp, hn, hc->role, own, how);
            ret = 0;
        } else {
            info.status = "refused";
        }
    }
done:
    if (s->opts.on_hostkey && info.status)
        s->opts.on_hostkey(s->opts.ud, &info);
    free(hn);
    free(fp);
    free(where);
    free(own);
    return ret;
}

static char **known_files_for(const struct ssh_hopcfg *hc)
{
    size_t n = 0;
    while (hc->known_files[n])
        n++;
    char **v = hp_xcalloc(n + 3, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = hp_xstrdup(hc->known_files[i]);
    v[n] = hp_xstrdup("/etc/ssh/ssh_known_hosts");
    v[n + 1] = hp_kh_own_file();
    return v;
}

static void hop_free_session(struct ssh_hop *h)
{
    if (!h->sess)
        return;
    /* best effort goodbye; do not wait long for a dead peer */
    double end = hp_now() + 0.5;
    int r;
    while ((r = libssh2_session_disconnect(h->sess, "bye")) == LIBSSH2_ERROR_EAGAIN &&
           hp_now() < end)
        wait_fd(h->sock, POLLOUT, end);
    /* non-blocking sessions free in steps too */
    end = hp_now() + 1;
    while ((r = libssh2_session_free(h->sess)) == LIBSSH2_ERROR_EAGAIN && hp_now() < end)
        wait_fd(h->sock, POLLIN | POLLOUT, hp_now() + 0.01);
    h->sess = NULL;
}

static void stop_pump(struct ssh_hop *h)
{
    if (!h->pumping)
        return;
    char c = 1;
    if (write(h->stopfd[1], &c, 1) < 0) {
        /* the pump also stops when its socket closes */
    }
    pthread_join(h->pump, NULL);
    h->pumping = 0;
}

static void link_free(struct hp_ssh *s, struct ssh_link *l)
{
    if (!l)
        return;
    ssh_sftp_pool_free(s, l);
    for (size_t i = l->nhops; i-- > 0;) {
        struct ssh_hop *h = &l->hops[i];
        hop_free_session(h);
        if (h->sock >= 0)
            shutdown(h->sock, SHUT_RDWR);
        if (i > 0 && h->pumping) {
            /* the pump sees its socket close and ends; stop it outright if
             * it is stuck on a dead channel */
            stop_pump(h);
        }
        if (i > 0 && h->chan) {
            /* the pump's channel lives on the previous session, freed next */
            h->chan = NULL;
        }
        if (h->sock >= 0)
            close(h->sock);
        if (h->pairfd >= 0)
            close(h->pairfd);
        if (h->stopfd[0] >= 0) {
            close(h->stopfd[0]);
            close(h->stopfd[1]);
        }
    }
    free(l->hops);
    free(l);
}

/* Connect all hops. No lock is needed: nothing else sees the link yet. */
static struct ssh_link *link_connect(struct hp_ssh *s, struct hp_err *err)
{
    struct ssh_params *p = s->p;
    struct ssh_link *l = hp_xcalloc(1, sizeof(*l));
    l->hops = hp_xcalloc(p->nhops, sizeof(*l->hops));
    l->nhops = p->nhops;
    for (size_t i = 0; i < p->nhops; i++) {
        l->hops[i].sock = l->hops[i].pairfd = -1;
        l->hops[i].stopfd[0] = l->hops[i].stopfd[1] = -1;
    }
    pthread_once(&libssh2_once, libssh2_start);
    for (size_t i = 0; i < p->nhops; i++) {
        struct ssh_hopcfg *hc = &p->hops[i];
        struct ssh_hop *h = &l->hops[i];
        int last = i + 1 == p->nhops;
        struct setup_wait w = { .hop = h, .step = SSH_OP_TIMEOUT };
        int rc;
        if (i == 0) {
            h->sock = p->proxy ? proxy_connect(p->proxy, hc->host, hc->port, p->connect_timeout,
                                               err)
                               : tcp_connect(hc->host, hc->port, p->connect_timeout, hc->role,
                                             err);
            if (h->sock < 0)
                goto fail;
        } else {
            struct ssh_hop *prev = &l->hops[i - 1];
            struct setup_wait pw = { .hop = prev, .step = p->connect_timeout };
            for (;;) {
                h->chan = libssh2_channel_direct_tcpip_ex(prev->sess, hc->host, hc->port,
                                                          "127.0.0.1", 22);
                if (h->chan)
                    break;
                int code;
                const char *m = sess_error(prev->sess, &code);
                if (code == LIBSSH2_ERROR_EAGAIN) {
                    if (setup_wait_fn(&pw, prev->sess, err) < 0) {
                        hp_err_prefix(err, "%s: opening a connection to %s port %d",
                                      p->hops[i - 1].role, hc->host, hc->port);
                        goto fail;
                    }
                    continue;
                }
                hp_err_set(err, HP_ESITE, "cannot connect to %s at %s port %d through %s: %s",
                           hc->role, hc->host, hc->port, p->hops[i - 1].role, m);
                goto fail;
            }
            int sp[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
                pipe2(h->stopfd, O_CLOEXEC) < 0) {
                hp_err_errno(err, "socketpair");
                goto fail;
            }
            set_nonblock(sp[0]);
            set_nonblock(sp[1]);
            int bufsz = 1 << 20;
            setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
            setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
            h->sock = sp[0];
            h->pairfd = sp[1];
            struct pump_arg *pa = hp_xmalloc(sizeof(*pa));
            pa->prev = prev;
            pa->hop = h;
            pa->alive_interval = p->alive_interval;
            if (pthread_create(&h->pump, NULL, pump_main, pa) != 0) {
                free(pa);
                hp_err_set(err, HP_ESYS, "cannot start a thread");
                goto fail;
            }
            h->pumping = 1;
        }
        h->sess = libssh2_session_init_ex(hp_ssh_alloc, hp_ssh_free, hp_ssh_realloc, &h->ctx);
        if (!h->sess) {
            hp_err_set(err, HP_ESYS, "cannot initialise libssh2");
            goto fail;
        }
        libssh2_session_set_blocking(h->sess, 0);
        char **files = known_files_for(hc);
        struct hp_kh *kh = hp_kh_load((const char *const *)files, err);
        strv_free(files);
        if (!kh)
            goto fail;
        hostkey_prefs(h->sess, hp_kh_known_types(kh, hc->host, hc->port));
        w.step = p->connect_timeout > 10 ? p->connect_timeout : 10;
        while ((rc = libssh2_session_handshake(h->sess, h->sock)) == LIBSSH2_ERROR_EAGAIN)
            if (setup_wait_fn(&w, h->sess, err) < 0)
                break;
        if (rc) {
            if (!err->code)
                hp_err_set(err, HP_ESITE, "SSH handshake with %s at %s port %d failed: %s",
                           hc->role, hc->host, hc->port, sess_error(h->sess, NULL));
            else
                hp_err_prefix(err, "SSH handshake with %s at %s port %d", hc->role, hc->host,
                              hc->port);
            hp_kh_free(kh);
            goto fail;
        }
        int r = check_hostkey(s, kh, h->sess, hc, err);
        hp_kh_free(kh);
        if (r < 0)
            goto fail;
        if (last && s->opts.keys_only)
            break;
        char *where = hp_xasprintf("%s@%s port %d (%s)", hc->user, hc->host, hc->port, hc->role);
        struct hp_sshauth a = {
            .user = hc->user,
            .where = where,
            .methods = last ? (const char *const *)p->methods : NULL,
            .identity_files = (const char *const *)hc->ids,
            .identities_only = hc->ids_only,
            .otp_command = p->otp_command,
            .wait = setup_wait_fn,
            .wait_ud = &w,
        };
        w.step = SSH_OP_TIMEOUT;
        r = hp_sshauth_run(h->sess, &a, err);
        free(where);
        if (r < 0)
            goto fail;
        if (p->alive_interval > 0)
            libssh2_keepalive_config(h->sess, 1, (unsigned)p->alive_interval);
    }
    l->sess = l->hops[l->nhops - 1].sess;
    l->sock = l->hops[l->nhops - 1].sock;
    l->last_rx = hp_now();
    return l;
fail:
    link_free(s, l);
    return NULL;
}

/* ================================================================ locking */

struct ssh_link *ssh_acquire(struct hp_ssh *s, struct hp_err *err)
{
    if (s->link && !s->link->dead) {
        s->link->refs++;
        return s->link;
    }
    if (s->closing) {
        hp_err_set(err, HP_ESITE, "connection to %s is closing", s->p->site);
        return NULL;
    }
    int again = s->link != NULL || s->down_reason != NULL;
    if (s->link) {
        struct ssh_link *old = s->link;
        s->link = NULL;
        ssh_release(s, old);
    }
    struct ssh_link *l = link_connect(s, err);
    if (!l) {
        free(s->down_reason);
        s->down_reason = hp_xstrdup(err->msg);
        if (again)
            hp_err_prefix(err, "the connection to site '%s' was lost and could not be "
                          "re-established", s->p->site);
        return NULL;
    }
    free(s->down_reason);
    s->down_reason = NULL;
    if (again)
        s->reconnects++;
    l->refs = 2;
    s->link = l;
    return l;
}

void ssh_release(struct hp_ssh *s, struct ssh_link *l)
{
    if (l && --l->refs == 0)
        link_free(s, l);
}

void ssh_kill_link(struct hp_ssh *s, struct ssh_link *l, const char *why)
{
    if (!l->dead) {
        l->dead = 1;
        if (l->sock >= 0)
            shutdown(l->sock, SHUT_RDWR);
        free(s->down_reason);
        s->down_reason = hp_xstrdup(why);
    }
    if (s->link == l) {
        s->link = NULL;
        ssh_release(s, l);
    }
    pthread_cond_broadcast(&s->cv);
}

int ssh_fail(struct hp_ssh *s, struct ssh_link *l, struct hp_err *err, const char *fmt, ...)
{
    int code;
    const char *m = sess_error(l->sess, &code);
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (ssh_transport_error(code) || l->dead) {
        char *why = hp_xasprintf("connection to %s lost: %s", s->p->target, m);
        hp_err_set(err, HP_ESITE, "%s: %s", what, why);
        ssh_kill_link(s, l, why);
        free(why);
    } else {
        hp_err_set(err, HP_ESITE, "%s: %s", what, m);
    }
    return -1;
}

int ssh_wait(struct hp_ssh *s, struct ssh_link *l, double deadline, struct hp_err *err)
{
    if (l->dead)
        return hp_err_set(err, HP_ESITE, "%s", s->down_reason ? s->down_reason
                                                             : "connection lost");
    double now = hp_now();
    if (deadline && now >= deadline)
        return hp_err_set(err, HP_ESITE, "timed out waiting for %s", s->p->target);
    int interval = s->p->alive_interval;
    if (interval > 0) {
        int next = 0;
        libssh2_keepalive_send(l->sess, &next);
    }
    int dirs = libssh2_session_block_directions(l->sess);
    if (!s->polling) {
        s->polling = 1;
        int out = (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) || s->want_out;
        s->want_out = 0;
        double until = now + (s->tunnels ? 0.05 : 1.0);
        if (deadline && deadline < until)
            until = deadline;
        int ms = (int)((until - now) * 1000) + 1;
        struct pollfd pf = { .fd = l->sock, .events = (short)(POLLIN | (out ? POLLOUT : 0)) };
        pthread_mutex_unlock(&s->mu);
        int r = poll(&pf, 1, ms);
        pthread_mutex_lock(&s->mu);
        if (r > 0 && (pf.revents & (POLLIN | POLLHUP)))
            l->last_rx = hp_now();
        s->polling = 0;
        s->gen++;
        pthread_cond_broadcast(&s->cv);
    } else {
        if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
            s->want_out = 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    if (l->dead)
        return hp_err_set(err, HP_ESITE, "%s", s->down_reason ? s->down_reason
                                                             : "connection lost");
    if (interval > 0 && hp_now() - l->last_rx > (double)interval * s->p->alive_count + 1) {
        char *why = hp_xasprintf("connection to %s lost: no answer for %d s "
                                 "(ServerAliveInterval %d, ServerAliveCountMax %d)",
                                 s->p->target, interval * s->p->alive_count, interval,
                                 s->p->alive_count);
        hp_err_set(err, HP_ESITE, "%s", why);
        ssh_kill_link(s, l, why);
        free(why);
        return -1;
    }
    return 0;
}

/* ================================================================ open/close */

struct hp_ssh *hp_ssh_open(const struct hp_site *site, const struct hp_ssh_opts *o,
                           struct hp_err *err)
{
    struct ssh_params *p = params_new(site, err);
    if (!p)
        return NULL;
    struct hp_ssh *s = hp_xcalloc(1, sizeof(*s));
    s->p = p;
    if (o)
        s->opts = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    struct ssh_link *l = link_connect(s, err);
    if (!l) {
        hp_err_prefix(err, "site '%s'", site->name);
        hp_ssh_close(s);
        return NULL;
    }
    l->refs = 1;
    s->link = l;
    return s;
}

void hp_ssh_close(struct hp_ssh *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    if (s->link)
        shutdown(s->link->sock, SHUT_RD);
    while (s->tunnels > 0) {
        pthread_cond_broadcast(&s->cv);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    struct ssh_link *l = s->link;
    s->link = NULL;
    if (l)
        ssh_release(s, l);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    params_free(s->p);
    free(s->down_reason);
    free(s);
}

const char *hp_ssh_target(const struct hp_ssh *s)
{
    return s->p->target;
}

char *hp_ssh_down_reason(struct hp_ssh *s)
{
    pthread_mutex_lock(&s->mu);
    char *r = (!s->link || s->link->dead) && s->down_reason ? hp_xstrdup(s->down_reason) : NULL;
    pthread_mutex_unlock(&s->mu);
    return r;
}

unsigned hp_ssh_reconnects(const struct hp_ssh *s)
{
    return s->reconnects;
}

int hp_ssh_tunnels(struct hp_ssh *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->tunnels;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int hp_ssh_check(struct hp_ssh *s, struct hp_err *err)
{
    pthread_mutex_lock(&s->mu);
    int ret = 0;
    struct ssh_link *l = ssh_acquire(s, err);
    if (!l) {
        ret = -1;
        goto out;
    }
    if (s->p->alive_interval > 0) {
        int next = 0;
        int r = libssh2_keepalive_send(l->sess, &next);
        if (r && r != LIBSSH2_ERROR_EAGAIN) {
            char *why = hp_xasprintf("connection to %s lost: %s", s->p->target,
                                     sess_error(l->sess, NULL));
            ssh_kill_link(s, l, why);
            free(why);
        }
        struct pollfd pf = { .fd = l->sock, .events = POLLIN };
        if (!l->dead && poll(&pf, 1, 0) > 0) {
            if (pf.revents & (POLLERR | POLLNVAL))
                ssh_kill_link(s, l, "connection lost");
            else
                l->last_rx = hp_now();
        }
        if (!l->dead && hp_now() - l->last_rx > (double)s->p->alive_interval *
                                                s->p->alive_count + 1) {
            char *why = hp_xasprintf("connection to %s lost: no answer for %d s",
                                     s->p->target, s->p->alive_interval * s->p->alive_count);
            ssh_kill_link(s, l, why);
            free(why);
        }
    }
    int dead = l->dead;
    ssh_release(s, l);
    if (dead) {
        /* reconnect now rather than at the next request */
        l = ssh_acquire(s, err);
        if (!l)
            ret = -1;
        else
            ssh_release(s, l);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* ================================================================ exec */

static int signal_number(const char *name)
{
    static const struct {
        const char *n;
        int s;
    } t[] = { { "HUP", 1 }, { "INT", 2 }, { "QUIT", 3 }, { "ILL", 4 }, { "TRAP", 5 },
              { "ABRT", 6 }, { "BUS", 7 }, { "FPE", 8 }, { "KILL", 9 }, { "USR1", 10 },
              { "SEGV", 11 }, { "USR2", 12 }, { "PIPE", 13 }, { "ALRM", 14 }, { "TERM", 15 },
              { "XCPU", 24 }, { "XFSZ", 25 } };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(t[i].n, name))
            return t[i].s;
    return 0;   /* unknown: reported as 255 */
}

static void chan_dispose(struct hp_ssh *s, struct ssh_link *l, LIBSSH2_CHANNEL *ch)
{
    struct hp_err e;
    hp_err_init(&e);
    double end = hp_now() + 2;
    while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN)
        if (ssh_wait(s, l, end, &e) < 0)
            break;
}

int ssh_exec_locked(struct hp_ssh *s, struct ssh_link *l, const char *const *argv, const void *in,
                    size_t inlen, struct hp_buf *out, struct hp_buf *errout, int *status,
                    double timeout, int *started, struct hp_err *err)
{
    double t0 = hp_now(), deadline = timeout > 0 ? t0 + timeout : 0;
    double step = t0 + SSH_OP_TIMEOUT;
    if (deadline && deadline < step)
        step = deadline;
    struct hp_buf cmd = HP_BUF_INIT;
    hp_sq_quote_argv(&cmd, argv);
    LIBSSH2_CHANNEL *ch = NULL;
    int ret = -1, rc;
    char *buf = NULL;
    *started = 0;
    for (;;) {
        ch = libssh2_channel_open_session(l->sess);
        if (ch)
            break;
        int code;
        sess_error(l->sess, &code);
        if (code != LIBSSH2_ERROR_EAGAIN) {
            ssh_fail(s, l, err, "cannot open a session channel on %s", s->p->target);
            goto out;
        }
        if (ssh_wait(s, l, step, err) < 0)
            goto out;
    }
    while ((rc = libssh2_channel_process_startup(ch, "exec", 4, cmd.buf,
                                                 (unsigned)cmd.len)) == LIBSSH2_ERROR_EAGAIN)
        if (ssh_wait(s, l, step, err) < 0)
            goto out_chan;
    if (rc) {
        ssh_fail(s, l, err, "%s refused to run '%s'", s->p->target, argv[0]);
        goto out_chan;
    }
    *started = 1;
    enum { BUFSZ = 64 * 1024 };
    buf = hp_xmalloc(BUFSZ);
    size_t inoff = 0;
    int eof_sent = 0, out_done = 0, err_done = 0, nudged = 0;
    while (!(out_done && err_done)) {
        int progress = 0;
        if (inoff < inlen) {
            ssize_t w = libssh2_channel_write(ch, (const char *)in + inoff, inlen - inoff);
            if (w > 0) {
                inoff += (size_t)w;
                progress = 1;
            } else if (w < 0 && w != LIBSSH2_ERROR_EAGAIN) {
                /* the command may exit without reading its input */
                if (ssh_transport_error((int)w)) {
                    ssh_fail(s, l, err, "sending input to '%s'", argv[0]);
                    goto out_chan;
                }
                inoff = inlen;
            }
        }
        if (inoff >= inlen && !eof_sent) {
            rc = libssh2_channel_send_eof(ch);
            if (rc == 0)
                eof_sent = 1;
            else if (rc != LIBSSH2_ERROR_EAGAIN) {
                if (ssh_transport_error(rc)) {
                    ssh_fail(s, l, err, "sending input to '%s'", argv[0]);
                    goto out_chan;
                }
                eof_sent = 1;
            }
        }
        for (int stream = 0; stream < 2; stream++) {
            int *done = stream ? &err_done : &out_done;
            struct hp_buf *dst = stream ? errout : out;
            while (!*done) {
                ssize_t r = libssh2_channel_read_ex(ch, stream ? SSH_EXTENDED_DATA_STDERR : 0, buf,
                                                    BUFSZ);
                if (r > 0) {
                    if (dst)
                        hp_conn_output_add(dst, buf, (size_t)r);
                    progress = 1;
                    if (!nudged) {
                        /* Answer the first output at once (a window adjust
                         * for what was read): through a jump host, the
                         * login sshd holds back what follows (exit status,
                         * EOF) until its first segment is acknowledged,
                         * which the jump host's kernel delays by 40 ms
                         * unless it has something to send back. */
                        unsigned int win;
                        if (libssh2_channel_receive_window_adjust2(ch, (unsigned long)r, 1,
                                                                   &win) != LIBSSH2_ERROR_EAGAIN)
                            nudged = 1;
                    }
                    continue;
                }
                if (r == LIBSSH2_ERROR_EAGAIN)
                    break;
                if (r == 0) {
                    if (libssh2_channel_eof(ch))
                        *done = 1;
                    break;
                }
                ssh_fail(s, l, err, "reading the output of '%s'", argv[0]);
                goto out_chan;
            }
        }
        if (out_done && err_done)
            break;
        if (!progress && ssh_wait(s, l, deadline, err) < 0) {
            if (!l->dead) {
                hp_err_init(err);
                hp_err_set(err, HP_ESITE, "'%s' on %s timed out after %.0f s", argv[0],
                           s->p->site, timeout);
            }
            goto out_chan;
        }
    }
    /* the exit status arrives before the channel closes */
    double cend = hp_now() + 10;
    while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
        if (ssh_wait(s, l, cend, err) < 0)
            goto out_chan;
    while ((rc = libssh2_channel_wait_closed(ch)) == LIBSSH2_ERROR_EAGAIN)
        if (ssh_wait(s, l, cend, err) < 0)
            goto out_chan;
    char *sig = NULL;
    size_t siglen = 0;
    libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL);
    if (sig) {
        int n = signal_number(sig);
        *status = n ? 128 + n : 255;
        libssh2_free(l->sess, sig);
    } else {
        *status = libssh2_channel_get_exit_status(ch);
    }
    ret = 0;
out_chan:
    if (!l->dead)
        chan_dispose(s, l, ch);
out:
    free(buf);
    hp_buf_release(&cmd);
    return ret;
}

int hp_ssh_exec(struct hp_ssh *s, const char *const *argv, const void *in, size_t inlen,
                struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                int flags, struct hp_err *err)
{
    int ret = -1;
    if (!argv || !argv[0])
        return hp_err_set(err, HP_EINTERNAL, "exec: empty argv");
    pthread_mutex_lock(&s->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct hp_err e;
        hp_err_init(&e);
        struct ssh_link *l = ssh_acquire(s, &e);
        if (!l) {
            hp_err_set(err, e.code, "%s", e.msg);
            break;
        }
        int started = 0;
        size_t olen = out ? out->len : 0, elen = errout ? errout->len : 0;
        int r = ssh_exec_locked(s, l, argv, in, inlen, out, errout, status, timeout, &started,
                                &e);
        int dead = l->dead;
        ssh_release(s, l);
        if (r == 0) {
            ret = 0;
            break;
        }
        if (!dead || attempt == 1 || (started && !(flags & HP_SSH_EXEC_IDEMPOTENT))) {
            hp_err_set(err, e.code, "%s", e.msg);
            if (dead && started && !(flags & HP_SSH_EXEC_IDEMPOTENT))
                hp_err_prefix(err, "'%s' was started and may or may not have completed",
                              argv[0]);
            break;
        }
        if (out)
            hp_buf_setlen(out, olen);
        if (errout)
            hp_buf_setlen(errout, elen);
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* ================================================================ tunnels */

struct tunnel {
    struct hp_ssh *s;
    struct ssh_link *l;
    LIBSSH2_CHANNEL *ch;
    int fd;
};

static void *tunnel_main(void *arg)
{
    struct tunnel *t = arg;
    struct hp_ssh *s = t->s;
    struct ssh_link *l = t->l;
    struct chpump p;
    chpump_init(&p, 128 * 1024);
    pthread_mutex_lock(&s->mu);
    while (!s->closing && !l->dead) {
        int progress = 0, chan_rc;
        if (chpump_step(&p, t->ch, t->fd, &progress, &chan_rc) < 0) {
            if (chan_rc && ssh_transport_error(chan_rc))
                ssh_kill_link(s, l, "connection lost");
            break;
        }
        if (p.chan_eof && p.shut && (p.eof_sent || p.fd_eof))
            break;
        if (p.fd_eof && p.eof_sent && p.chan_eof)
            break;
        if (progress)
            continue;
        int dirs = libssh2_session_block_directions(l->sess);
        struct pollfd pf[2] = {
            { .fd = l->sock, .events = (short)(POLLIN | ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
                                                         ? POLLOUT : 0)) },
            { .fd = t->fd, .events = (short)((!p.blen && !p.fd_eof ? POLLIN : 0) |
                                             (p.alen ? POLLOUT : 0)) },
        };
        /* another thread may read our channel's packets off the socket:
         * look again soon when others are active */
        int ms = (s->tunnels > 1 || s->polling) ? 20 : 200;
        pthread_mutex_unlock(&s->mu);
        poll(pf, 2, ms);
        pthread_mutex_lock(&s->mu);
        if (pf[0].revents & POLLIN)
            l->last_rx = hp_now();
    }
    chpump_release(&p);
    if (!l->dead) {
        struct hp_err e;
        hp_err_init(&e);
        double end = hp_now() + 2;
        while (libssh2_channel_free(t->ch) == LIBSSH2_ERROR_EAGAIN)
            if (ssh_wait(s, l, end, &e) < 0)
                break;
    }
    close(t->fd);
    ssh_release(s, l);
    /* free this thread's OpenSSL state (its random generator) now: the
     * thread-exit destructor may run after hp_ssh_close() has seen the count
     * drop and the process has exited (LeakSanitizer reports it then) */
    OPENSSL_thread_stop();
    s->tunnels--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(t);
    return NULL;
}

int hp_ssh_tunnel_fd(struct hp_ssh *s, const char *host, int port, int fd, struct hp_err *err)
{
    int ret = -1;
    set_nonblock(fd);
    pthread_mutex_lock(&s->mu);
    for (int attempt = 0; attempt < 2 && ret < 0; attempt++) {
        struct hp_err e;
        hp_err_init(&e);
        struct ssh_link *l = ssh_acquire(s, &e);
        if (!l) {
            hp_err_set(err, e.code, "%s", e.msg);
            break;
        }
        LIBSSH2_CHANNEL *ch = NULL;
        double step = hp_now() + SSH_OP_TIMEOUT;
        for (;;) {
            ch = libssh2_channel_direct_tcpip_ex(l->sess, host, port, "127.0.0.1", 0);
            if (ch)
                break;
            int code;
            sess_error(l->sess, &code);
            if (code != LIBSSH2_ERROR_EAGAIN) {
                ssh_fail(s, l, &e, "%s cannot open a connection to %s port %d", s->p->site, host,
                         port);
                break;
            }
            if (ssh_wait(s, l, step, &e) < 0)
                break;
        }
        if (!ch) {
            int dead = l->dead;
            ssh_release(s, l);
            if (!dead || attempt == 1) {
                hp_err_set(err, e.code, "%s", e.msg);
                break;
            }
            continue;
        }
        struct tunnel *t = hp_xcalloc(1, sizeof(*t));
        t->s = s;
        t->l = l;    /* keeps the reference */
        t->ch = ch;
        t->fd = fd;
        pthread_t th;
        s->tunnels++;
        if (pthread_create(&th, NULL, tunnel_main, t) != 0) {
            s->tunnels--;
            chan_dispose(s, l, ch);
            ssh_release(s, l);
            free(t);
            hp_err_set(err, HP_ESYS, "cannot start a thread");
            break;
        }
        pthread_detach(th);
        ret = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (ret < 0)
        close(fd);
    return ret;
}

int hp_ssh_tunnel(struct hp_ssh *s, const char *host, int port, struct hp_err *err)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return hp_err_errno(err, "socketpair");
    if (hp_ssh_tunnel_fd(s, host, port, sp[1], err) < 0) {
        close(sp[0]);
        return -1;
    }
    return sp[0];
}

/* ================================================================ transfers */

int hp_ssh_put(struct hp_ssh *s, const char *local, const char *remote, int flags,
               struct hp_err *err)
{
    return ssh_sftp_put(s, local, remote, flags, err);
}

int hp_ssh_get(struct hp_ssh *s, const char *remote, const char *local, int flags,
               struct hp_err *err)
{
    return ssh_sftp_get(s, remote, local, flags, err);
}

/* ================================================================ hp_conn */

static int sc_exec(struct hp_conn *c, const char *const *argv, const void *in, size_t inlen,
                   struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                   struct hp_err *err)
{
    return hp_ssh_exec(c->impl, argv, in, inlen, out, errout, status, timeout, 0, err);
}

static int sc_exec_ex(struct hp_conn *c, const char *const *argv, const void *in, size_t inlen,
                      struct hp_buf *out, struct hp_buf *errout, int *status, double timeout,
                      int flags, struct hp_err *err)
{
    return hp_ssh_exec(c->impl, argv, in, inlen, out, errout, status, timeout,
                       (flags & HP_EXEC_IDEMPOTENT) ? HP_SSH_EXEC_IDEMPOTENT : 0, err);
}

static int sc_put(struct hp_conn *c, const char *local, const char *remote, int flags,
                  struct hp_err *err)
{
    return hp_ssh_put(c->impl, local, remote, flags, err);
}

static int sc_get(struct hp_conn *c, const char *remote, const char *local, int flags,
                  struct hp_err *err)
{
    return hp_ssh_get(c->impl, remote, local, flags, err);
}

static int sc_tunnel(struct hp_conn *c, const char *host, int port, struct hp_err *err)
{
    return hp_ssh_tunnel(c->impl, host, port, err);
}

static void sc_close(struct hp_conn *c)
{
    hp_ssh_close(c->impl);
}

static const struct hp_conn_ops ssh_ops = {
    .name = "ssh",
    .exec = sc_exec,
    .put = sc_put,
    .get = sc_get,
    .tunnel = sc_tunnel,
    .close = sc_close,
    .exec_ex = sc_exec_ex,
};

struct hp_conn *hp_conn_ssh_wrap(struct hp_ssh *s, const char *site_name)
{
    struct hp_conn *c = hp_xcalloc(1, sizeof(*c));
    c->ops = &ssh_ops;
    c->site = hp_xstrdup(site_name);
    c->impl = s;
    return c;
}

struct hp_conn *hp_conn_ssh(const struct hp_site *site, struct hp_err *err)
{
    struct hp_ssh *s = hp_ssh_open(site, NULL, err);
    return s ? hp_conn_ssh_wrap(s, site->name) : NULL;
}
