/* endpoint-config.c - loading an endpoint configuration: schema first, then
 * what needs more than one node (names, listen and TLS, files). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "endpoint.h"
#include "doc.h"
#include "schema.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

static char *abs_from(const char *dir, const char *p)
{
    return p[0] == '/' ? hp_xstrdup(p) : hp_path_join(dir, p);
}

/* "64MiB", "512K", "1048576", "2GB" -> bytes, or 0 on bad syntax. */
static uint64_t parse_size(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    const char *s = json_string_value(v);
    if (!s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    while (*end == ' ')
        end++;
    uint64_t mul = 1;
    switch (*end) {
    case 'K': mul = 1ull << 10; break;
    case 'M': mul = 1ull << 20; break;
    case 'G': mul = 1ull << 30; break;
    case 'T': mul = 1ull << 40; break;
    case 'B': case '\0': break;
    default: return 0;
    }
    if (n && mul > UINT64_MAX / n)
        return 0;
    return n * mul;
}

static double parse_dur(const json_t *v)
{
    if (json_is_integer(v))
        return (double)json_integer_value(v);
    const char *s = json_string_value(v);
    int64_t d = s ? hp_parse_duration(s) : -1;
    return d > 0 ? (double)d : -1;
}

static bool addr_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

void hp_ep_listen_release(struct hp_ep_listen *l)
{
    free(l->unix_path);
    free(l->host);
    memset(l, 0, sizeof(*l));
}

int hp_ep_listen_parse(const char *s, struct hp_ep_listen *out, struct hp_err *err)
{
    memset(out, 0, sizeof(*out));
    if (hp_starts_with(s, "unix:")) {
        const char *p = s + 5;
        if (!*p)
            return hp_err_set(err, HP_EINPUT, "listen address '%s': no socket path after unix:", s);
        char *cwd = p[0] == '/' ? NULL : getcwd(NULL, 0);
        out->unix_path = cwd ? hp_path_join(cwd, p) : hp_xstrdup(p);
        free(cwd);
        if (strlen(out->unix_path) >= 108) {
            hp_ep_listen_release(out);
            return hp_err_set(err, HP_EINPUT, "listen address '%s': socket path longer than "
                              "107 bytes; choose a shorter path", s);
        }
        out->loopback = true;
        return 0;
    }
    const char *colon;
    char *host;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            goto bad;
        host = hp_xstrndup(s + 1, (size_t)(rb - s - 1));
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            goto bad;
        host = hp_xstrndup(s, (size_t)(colon - s));
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    unsigned char tmp[sizeof(struct in6_addr)];
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535 ||
        (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1)) {
        free(host);
        goto bad;
    }
    out->host = host;
    out->port = (int)port;
    out->loopback = addr_loopback(host);
    return 0;
bad:
    return hp_err_set(err, HP_EINPUT, "listen address '%s': expected HOST:PORT with a numeric "
                      "address (127.0.0.1:0, [::1]:8080) or unix:PATH", s);
}

void hp_ep_config_free(struct hp_ep_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nfn; i++) {
        struct hp_ep_function *f = &c->fn[i];
        free(f->name);
        free(f->library);
        free(f->symbol);
        free(f->config);
        hp_strv_free(f->command);
    }
    free(c->fn);
    hp_strv_free(c->gpus);
    free(c->file);
    free(c->name);
    hp_ep_listen_release(&c->listen);
    free(c->tls_cert);
    free(c->tls_key);
    free(c);
}

static void strv_push(char ***v, size_t *n, const char *s)
{
    *v = hp_xrealloc(*v, (*n + 2) * sizeof(**v));
    (*v)[(*n)++] = hp_xstrdup(s);
    (*v)[*n] = NULL;
}

/* gpus: auto -> CUDA_VISIBLE_DEVICES, else /dev/nvidiaN. */
static char **gpus_auto(void)
{
    char **v = NULL;
    size_t n = 0;
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (cvd && *cvd) {
        char *copy = hp_xstrdup(cvd), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t)
                strv_push(&v, &n, t);
        free(copy);
        return v;
    }
    for (int i = 0; i < 64; i++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "/dev/nvidia%d", i);
        if (access(dev, F_OK) != 0)
            break;
        snprintf(dev, sizeof(dev), "%d", i);
        strv_push(&v, &n, dev);
    }
    return v;
}

static int load_function(struct hp_doc *doc, const char *dir, size_t i, const json_t *f,
                         struct hp_ep_config *c, int def_workers, struct hp_err *err)
{
    struct hp_ep_function *fn = &c->fn[i];
    char ptr[64];
    fn->name = hp_xstrdup(json_string_value(json_object_get(f, "name")));
    for (size_t k = 0; k < i; k++)
        if (!strcmp(c->fn[k].name, fn->name)) {
            snprintf(ptr, sizeof(ptr), "/functions/%zu/name", i);
            return hp_doc_err(doc, err, HP_EINPUT, ptr, 0,
                              "function '%s' is defined twice; function names must be unique",
                              fn->name);
        }
    json_t *v = json_object_get(f, "workers");
    fn->workers = v ? (int)json_integer_value(v) : def_workers;
    v = json_object_get(f, "timeout");
    fn->timeout = v ? parse_dur(v) : c->timeout;
    if (fn->timeout <= 0) {
        snprintf(ptr, sizeof(ptr), "/functions/%zu/timeout", i);
        return hp_doc_err(doc, err, HP_EINPUT, ptr, 0, "bad duration; write 30s, 5m or 1h");
    }
    if ((v = json_object_get(f, "library"))) {
        fn->library = abs_from(dir, json_string_value(v));
        if (access(fn->library, R_OK) != 0) {
            snprintf(ptr, sizeof(ptr), "/functions/%zu/library", i);
            return hp_doc_err(doc, err, HP_EINPUT, ptr, 0, "cannot read library %s: %s",
                              fn->library, strerror(errno));
        }
        v = json_object_get(f, "symbol");
        fn->symbol = v ? hp_xstrdup(json_string_value(v))
                       : hp_xasprintf("hp_function_%s", fn->name);
        if ((v = json_object_get(f, "config")))
            fn->config = hp_xstrdup(json_string_value(v));
    } else {
        json_t *cmd = json_object_get(f, "command");
        size_t n = json_array_size(cmd), k;
        fn->command = hp_xcalloc(n + 1, sizeof(char *));
        for (k = 0; k < n; k++)
            fn->command[k] = hp_xstrdup(json_string_value(json_array_get(cmd, k)));
    }
    return 0;
}

struct hp_ep_config *hp_ep_config_load(const char *path, const char *listen_override,
                                       struct hp_err *err)
{
    struct hp_ep_config *c = hp_xcalloc(1, sizeof(*c));
    struct hp_doc *doc = hp_doc_load_file(path, NULL, err);
    char *dir = NULL;
    if (!doc || hp_doc_validate(doc, "endpoint", err) < 0)
        goto fail;
    char *cwd = path[0] == '/' ? NULL : getcwd(NULL, 0);
    c->file = cwd ? hp_path_join(cwd, path) : hp_xstrdup(path);
    free(cwd);
    dir = hp_dirname(c->file);
    json_t *root = doc->root, *v;
    c->name = hp_xstrdup(json_string_value(json_object_get(root, "name")));

    json_t *lim = json_object_get(root, "limits");
    c->max_payload = 64ull << 20;
    c->max_results = 1ull << 30;
    c->timeout = 30;
    c->queue_depth = 10000;
    if ((v = json_object_get(lim, "max_payload")) && !(c->max_payload = parse_size(v))) {
        hp_doc_err(doc, err, HP_EINPUT, "/limits/max_payload", 0,
                   "bad size; write 64MiB, 512KiB or a number of bytes");
        goto fail;
    }
    if (c->max_payload > (1ull << 30)) {
        hp_doc_err(doc, err, HP_EINPUT, "/limits/max_payload", 0,
                   "max_payload is at most 1GiB; send larger data as files");
        goto fail;
    }
    if ((v = json_object_get(lim, "max_results")) && !(c->max_results = parse_size(v))) {
        hp_doc_err(doc, err, HP_EINPUT, "/limits/max_results", 0,
                   "bad size; write 1GiB, 512MiB or a number of bytes");
        goto fail;
    }
    if ((v = json_object_get(lim, "timeout")) && (c->timeout = parse_dur(v)) <= 0) {
        hp_doc_err(doc, err, HP_EINPUT, "/limits/timeout", 0, "bad duration; write 30s, 5m or 1h");
        goto fail;
    }
    if ((v = json_object_get(lim, "queue_depth")))
        c->queue_depth = (uint64_t)json_integer_value(v);

    json_t *tls = json_object_get(root, "tls");
    if (tls) {
        c->tls_cert = abs_from(dir, json_string_value(json_object_get(tls, "cert")));
        c->tls_key = abs_from(dir, json_string_value(json_object_get(tls, "key")));
        c->tls_always = json_is_true(json_object_get(tls, "always"));
        const char *which[] = { "/tls/cert", "/tls/key" };
        const char *files[] = { c->tls_cert, c->tls_key };
        for (int k = 0; k < 2; k++)
            if (access(files[k], R_OK) != 0) {
                hp_doc_err(doc, err, HP_EINPUT, which[k], 0, "cannot read %s: %s", files[k],
                           strerror(errno));
                goto fail;
            }
    }
    const char *listen = listen_override;
    v = json_object_get(root, "listen");
    if (!listen)
        listen = v ? json_string_value(v) : "127.0.0.1:0";
    if (hp_ep_listen_parse(listen, &c->listen, err) < 0) {
        if (!listen_override && v) {
            struct hp_err e2;
            hp_err_init(&e2);
            hp_doc_err(doc, &e2, HP_EINPUT, "/listen", 0, "%s", err->msg);
            *err = e2;
        }
        goto fail;
    }
    if (!c->listen.loopback && !tls) {
        if (!listen_override && v)
            hp_doc_err(doc, err, HP_EINPUT, "/listen", 0,
                       "listening on %s (beyond loopback) needs TLS; add tls: {cert: FILE, "
                       "key: FILE}, or listen on 127.0.0.1 or a unix socket", c->listen.host);
        else
            hp_err_set(err, HP_EINPUT, "listening on %s (beyond loopback) needs TLS; add tls: "
                       "{cert: FILE, key: FILE} to %s", c->listen.host, c->file);
        goto fail;
    }
    if (c->listen.unix_path && tls && c->tls_always) {
        hp_doc_err(doc, err, HP_EINPUT, "/tls/always", 0,
                   "TLS on a unix socket is not supported; remove always: true");
        goto fail;
    }

    v = json_object_get(root, "gpus");
    if (!v || (json_is_string(v) && !strcmp(json_string_value(v), "auto"))) {
        c->gpus = gpus_auto();
    } else if (json_is_array(v)) {
        size_t n = 0, k;
        json_t *g;
        json_array_foreach(v, k, g) {
            char num[32];
            if (json_is_integer(g))
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(g));
            strv_push(&c->gpus, &n, json_is_integer(g) ? num : json_string_value(g));
        }
    }

    json_t *fns = json_object_get(root, "functions");
    v = json_object_get(root, "workers");
    int def_workers = v ? (int)json_integer_value(v) : 1;
    c->nfn = json_array_size(fns);
    c->fn = hp_xcalloc(c->nfn, sizeof(*c->fn));
    for (size_t i = 0; i < c->nfn; i++)
        if (load_function(doc, dir, i, json_array_get(fns, i), c, def_workers, err) < 0)
            goto fail;
    free(dir);
    hp_doc_free(doc);
    return c;
fail:
    free(dir);
    hp_doc_free(doc);
    hp_ep_config_free(c);
    return NULL;
}

char *hp_ep_state_dir(const char *name)
{
    char *base = hp_state_dir();
    char *d = hp_xasprintf("%s/endpoints/%s", base, name);
    free(base);
    return d;
}
