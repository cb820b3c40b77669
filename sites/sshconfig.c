/* sshconfig.c - parse ~/.ssh/config (the subset in sshconfig.h) and answer
 * "what applies to host H" the way OpenSSH does: options are kept in file
 * order, each under the Host block it appeared in, and a lookup walks them
 * once keeping the first value of each keyword. */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sshconfig.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

enum { BLOCK_ALL, BLOCK_HOST, BLOCK_SKIP };

struct block {
    int kind;
    char **patterns;    /* BLOCK_HOST: the words after Host */
};

struct opt {
    size_t block;
    char *key;          /* lower case */
    char **args;        /* NULL-terminated */
    char *file;
    int line;
};

struct hp_sshcfg {
    struct block *blocks;
    size_t nblocks, ablocks;
    struct opt *opts;
    size_t nopts, aopts;
    char **warnings;
    size_t nwarn, awarn;
};

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static void strv_push(char ***v, size_t *n, size_t *alloc, char *s)
{
    HP_ALLOC_GROW(*v, *n + 2, *alloc);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

static char **strv_empty(void)
{
    return hp_xcalloc(1, sizeof(char *));
}

void hp_sshcfg_free(struct hp_sshcfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nblocks; i++)
        strv_free(c->blocks[i].patterns);
    for (size_t i = 0; i < c->nopts; i++) {
        free(c->opts[i].key);
        strv_free(c->opts[i].args);
        free(c->opts[i].file);
    }
    for (size_t i = 0; i < c->nwarn; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->blocks);
    free(c->opts);
    free(c);
}

const char *const *hp_sshcfg_warnings(const struct hp_sshcfg *c)
{
    static const char *const none[] = { NULL };
    return c && c->warnings ? (const char *const *)c->warnings : none;
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}

static const char *local_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        return pw->pw_name;
    const char *u = getenv("USER");
    return u ? u : "";
}

/* ------------------------------------------------------------ patterns */

int hp_sshcfg_wildmatch(const char *p, const char *s)
{
    /* iterative '*' backtracking; OpenSSH matches case-insensitively for
     * host names */
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            ss = s;
        } else if (*p == '?' || (*p && tolower((unsigned char)*p) == tolower((unsigned char)*s))) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++ss;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static int patterns_match(char *const *pats, const char *host)
{
    int pos = 0;
    for (size_t i = 0; pats && pats[i]; i++) {
        const char *p = pats[i];
        /* a pattern may itself be a comma list, as in OpenSSH */
        char *copy = hp_xstrdup(p), *save = NULL;
        for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            int neg = w[0] == '!';
            if (hp_sshcfg_wildmatch(w + neg, host)) {
                if (neg) {
                    free(copy);
                    return 0;
                }
                pos = 1;
            }
        }
        free(copy);
    }
    return pos;
}

/* ------------------------------------------------------------ lexing */

/* Split the arguments of one line: whitespace separated, "double quoted"
 * words keep their spaces, a word starting with '#' ends the line. */
static int split_args(const char *s, char ***out, const char *file, int line, struct hp_err *err)
{
    char **v = NULL;
    size_t n = 0, alloc = 0;
    struct hp_buf w = HP_BUF_INIT;
    v = strv_empty();
    alloc = 1;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            break;
        hp_buf_reset(&w);
        if (*s == '"') {
            s++;
            const char *e = strchr(s, '"');
            if (!e) {
                hp_buf_release(&w);
                strv_free(v);
                return hp_err_at(err, HP_EINPUT, file, line, 0, NULL,
                                 "unterminated quoted string");
            }
            hp_buf_add(&w, s, (size_t)(e - s));
            s = e + 1;
        } else {
            while (*s && *s != ' ' && *s != '\t')
                hp_buf_addch(&w, *s++);
        }
        strv_push(&v, &n, &alloc, hp_xstrdup(w.buf));
    }
    hp_buf_release(&w);
    *out = v;
    return 0;
}

static char *expand_tilde(const char *p)
{
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0'))
        return hp_xasprintf("%s%s", home_dir(), p + 1);
    return hp_xstrdup(p);
}

struct parse_ctx {
    struct hp_sshcfg *c;
    const char *base_dir;
    int depth;
};

static int parse_text(struct parse_ctx *pc, const char *text, const char *name, size_t *block,
                      struct hp_err *err);

static int do_include(struct parse_ctx *pc, char **args, const char *file, int line,
                      size_t *block, struct hp_err *err)
{
    if (pc->depth >= 16)
        return hp_err_at(err, HP_EINPUT, file, line, 0, NULL,
                         "Include nested more than 16 deep");
    for (size_t i = 0; args[i]; i++) {
        char *pat = expand_tilde(args[i]);
        if (pat[0] != '/') {
            char *abs = hp_path_join(pc->base_dir, pat);
            free(pat);
            pat = abs;
        }
        glob_t g;
        int grc = glob(pat, 0, NULL, &g);
        free(pat);
        if (grc == GLOB_NOMATCH)
            continue;
        if (grc != 0)
            return hp_err_at(err, HP_EINPUT, file, line, 0, NULL, "Include '%s': glob failed",
                             args[i]);
        for (size_t k = 0; k < g.gl_pathc; k++) {
            char *text = NULL;
            size_t len;
            if (hp_read_file(g.gl_pathv[k], 1 << 20, &text, &len) < 0) {
                int e = errno;
                globfree(&g);
                return hp_err_at(err, HP_EINPUT, file, line, 0, NULL,
                                 "Include '%s': %s", args[i], strerror(e));
            }
            /* lines of the included file before its first Host line stay
             * under the including block; the block after the include is the
             * including file's again */
            size_t inner = *block;
            pc->depth++;
            int rc = parse_text(pc, text, g.gl_pathv[k], &inner, err);
            pc->depth--;
            free(text);
            if (rc < 0) {
                globfree(&g);
                return -1;
            }
        }
        globfree(&g);
    }
    return 0;
}

static size_t add_block(struct hp_sshcfg *c, int kind, char **patterns)
{
    HP_ALLOC_GROW(c->blocks, c->nblocks + 1, c->ablocks);
    c->blocks[c->nblocks].kind = kind;
    c->blocks[c->nblocks].patterns = patterns;
    return c->nblocks++;
}

static int parse_text(struct parse_ctx *pc, const char *text, const char *name, size_t *block,
                      struct hp_err *err)
{
    struct hp_sshcfg *c = pc->c;
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = hp_xstrndup(p, len);
        p += len + (eol ? 1 : 0);
        lineno++;
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#') {
            free(line);
            continue;
        }
        char *k = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '=')
            s++;
        char *key = hp_xstrndup(k, (size_t)(s - k));
        for (char *q = key; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '=')
            s++;
        char **args = NULL;
        if (split_args(s, &args, name, lineno, err) < 0) {
            free(key);
            free(line);
            return -1;
        }
        free(line);
        int rc = 0;
        if (!strcmp(key, "host")) {
            if (!args[0]) {
                rc = hp_err_at(err, HP_EINPUT, name, lineno, 0, NULL, "Host needs a pattern");
                strv_free(args);
            } else {
                *block = add_block(c, BLOCK_HOST, args);
            }
        } else if (!strcmp(key, "match")) {
            char *w = hp_xasprintf("%s:%d: Match blocks are not supported; their options are "
                                   "ignored", name, lineno);
            strv_push(&c->warnings, &c->nwarn, &c->awarn, w);
            strv_free(args);
            *block = add_block(c, BLOCK_SKIP, NULL);
        } else if (!strcmp(key, "include")) {
            if (!args[0])
                rc = hp_err_at(err, HP_EINPUT, name, lineno, 0, NULL, "Include needs a file");
            else
                rc = do_include(pc, args, name, lineno, block, err);
            strv_free(args);
        } else {
            if (!args[0]) {
                strv_free(args);
                rc = hp_err_at(err, HP_EINPUT, name, lineno, 0, NULL, "'%s' needs a value", key);
            } else {
                HP_ALLOC_GROW(c->opts, c->nopts + 1, c->aopts);
                struct opt *o = &c->opts[c->nopts++];
                o->block = *block;
                o->key = key;
                key = NULL;
                o->args = args;
                o->file = hp_xstrdup(name);
                o->line = lineno;
            }
        }
        free(key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

struct hp_sshcfg *hp_sshcfg_parse(const char *text, const char *name, const char *base_dir,
                                  struct hp_err *err)
{
    struct hp_sshcfg *c = hp_xcalloc(1, sizeof(*c));
    char *dflt = NULL;
    if (!base_dir)
        base_dir = dflt = hp_path_join(home_dir(), ".ssh");
    struct parse_ctx pc = { .c = c, .base_dir = base_dir };
    size_t block = add_block(c, BLOCK_ALL, NULL);
    int rc = parse_text(&pc, text, name, &block, err);
    free(dflt);
    if (rc < 0) {
        hp_sshcfg_free(c);
        return NULL;
    }
    return c;
}

struct hp_sshcfg *hp_sshcfg_load(const char *path, struct hp_err *err)
{
    char *dflt = NULL, *text = NULL;
    size_t len;
    if (!path) {
        const char *env = getenv("HPCPORT_SSH_CONFIG");
        if (env && *env)
            path = env;
        else
            path = dflt = hp_path_join(home_dir(), ".ssh/config");
    }
    struct hp_sshcfg *c;
    if (hp_read_file(path, 4 << 20, &text, &len) < 0) {
        if (errno == ENOENT) {
            c = hp_sshcfg_parse("", path, NULL, err);
        } else {
            hp_err_errno(err, "cannot read ssh configuration '%s'", path);
            c = NULL;
        }
    } else {
        c = hp_sshcfg_parse(text, path, NULL, err);
    }
    free(text);
    free(dflt);
    return c;
}

int hp_sshcfg_host_matches(const char *patterns, const char *host)
{
    char **args = NULL;
    struct hp_err e;
    hp_err_init(&e);
    if (split_args(patterns, &args, "", 0, &e) < 0)
        return 0;
    int m = patterns_match(args, host);
    strv_free(args);
    return m;
}

/* ------------------------------------------------------------ lookup */

void hp_sshhost_release(struct hp_sshhost *h)
{
    if (!h)
        return;
    free(h->host);
    free(h->hostname);
    free(h->user);
    strv_free(h->identity_files);
    free(h->proxy_jump);
    strv_free(h->known_hosts_files);
    free(h->strict_host_key_checking);
    memset(h, 0, sizeof(*h));
}

static int get_num(const struct opt *o, int min, int max, int *out, struct hp_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(o->args[0], &end, 10);
    if (errno || *end || end == o->args[0] || v < min || v > max)
        return hp_err_at(err, HP_EINPUT, o->file, o->line, 0, NULL,
                         "%s: '%s' is not a number from %d to %d", o->key, o->args[0], min, max);
    *out = (int)v;
    return 0;
}

static int get_yesno(const struct opt *o, int *out, struct hp_err *err)
{
    if (!strcasecmp(o->args[0], "yes") || !strcasecmp(o->args[0], "true"))
        *out = 1;
    else if (!strcasecmp(o->args[0], "no") || !strcasecmp(o->args[0], "false"))
        *out = 0;
    else
        return hp_err_at(err, HP_EINPUT, o->file, o->line, 0, NULL,
                         "%s: '%s' is not yes or no", o->key, o->args[0]);
    return 0;
}

/* Expand %-tokens and a leading ~ in a path option. */
static char *expand_path(const char *in, const struct hp_sshhost *h)
{
    struct hp_buf b = HP_BUF_INIT;
    char *t = expand_tilde(in);
    for (const char *p = t; *p; p++) {
        if (*p != '%' || !p[1]) {
            hp_buf_addch(&b, *p);
            continue;
        }
        p++;
        switch (*p) {
        case '%': hp_buf_addch(&b, '%'); break;
        case 'd': hp_buf_adds(&b, home_dir()); break;
        case 'u': hp_buf_adds(&b, local_user()); break;
        case 'h': hp_buf_adds(&b, h->hostname ? h->hostname : h->host); break;
        case 'n': hp_buf_adds(&b, h->host); break;
        case 'r': hp_buf_adds(&b, h->user ? h->user : local_user()); break;
        case 'p': hp_buf_addf(&b, "%d", h->port > 0 ? h->port : 22); break;
        default: hp_buf_addch(&b, '%'); hp_buf_addch(&b, *p); break;
        }
    }
    free(t);
    return hp_buf_detach(&b, NULL);
}

static char *expand_hostname(const char *in, const char *host)
{
    struct hp_buf b = HP_BUF_INIT;
    for (const char *p = in; *p; p++) {
        if (p[0] == '%' && p[1] == 'h') {
            hp_buf_adds(&b, host);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            hp_buf_addch(&b, '%');
            p++;
        } else {
            hp_buf_addch(&b, *p);
        }
    }
    return hp_buf_detach(&b, NULL);
}

int hp_sshcfg_lookup(const struct hp_sshcfg *c, const char *host, struct hp_sshhost *h,
                     struct hp_err *err)
{
    memset(h, 0, sizeof(*h));
    h->host = hp_xstrdup(host);
    h->port = h->identities_only = h->server_alive_interval = -1;
    h->server_alive_count_max = h->connect_timeout = -1;
    char **ids = strv_empty(), **khf_raw = NULL;
    size_t nids = 0, aids = 1;
    const struct opt *proxy_cmd = NULL;
    int rc = 0;
    for (size_t i = 0; c && i < c->nopts && rc == 0; i++) {
        const struct opt *o = &c->opts[i];
        const struct block *b = &c->blocks[o->block];
        if (b->kind == BLOCK_SKIP || (b->kind == BLOCK_HOST && !patterns_match(b->patterns, host)))
            continue;
        const char *k = o->key, *v = o->args[0];
        if (!strcmp(k, "hostname")) {
            if (!h->hostname)
                h->hostname = expand_hostname(v, host);
        } else if (!strcmp(k, "user")) {
            if (!h->user)
                h->user = hp_xstrdup(v);
        } else if (!strcmp(k, "port")) {
            if (h->port < 0)
                rc = get_num(o, 1, 65535, &h->port, err);
        } else if (!strcmp(k, "identityfile")) {
            if (strcasecmp(v, "none"))
                strv_push(&ids, &nids, &aids, hp_xstrdup(v));
        } else if (!strcmp(k, "identitiesonly")) {
            if (h->identities_only < 0)
                rc = get_yesno(o, &h->identities_only, err);
        } else if (!strcmp(k, "proxyjump")) {
            if (!h->proxy_jump && !proxy_cmd)
                h->proxy_jump = hp_xstrdup(v);
        } else if (!strcmp(k, "proxycommand")) {
            /* OpenSSH: whichever of ProxyJump and ProxyCommand comes first */
            if (!h->proxy_jump && !proxy_cmd && strcasecmp(v, "none"))
                proxy_cmd = o;
            else if (!h->proxy_jump && !proxy_cmd)
                h->proxy_jump = hp_xstrdup("none");
        } else if (!strcmp(k, "serveraliveinterval")) {
            if (h->server_alive_interval < 0)
                rc = get_num(o, 0, INT_MAX, &h->server_alive_interval, err);
        } else if (!strcmp(k, "serveralivecountmax")) {
            if (h->server_alive_count_max < 0)
                rc = get_num(o, 0, INT_MAX, &h->server_alive_count_max, err);
        } else if (!strcmp(k, "connecttimeout")) {
            if (h->connect_timeout < 0)
                rc = get_num(o, 0, INT_MAX, &h->connect_timeout, err);
        } else if (!strcmp(k, "userknownhostsfile")) {
            if (!khf_raw)
                khf_raw = o->args;
        } else if (!strcmp(k, "stricthostkeychecking")) {
            if (!h->strict_host_key_checking) {
                static const char *const ok[] = { "yes", "no", "accept-new", "ask", "off",
                                                  "true", "false", NULL };
                size_t j;
                for (j = 0; ok[j] && strcasecmp(ok[j], v); j++)
                    ;
                if (!ok[j])
                    rc = hp_err_at(err, HP_EINPUT, o->file, o->line, 0, NULL,
                                   "StrictHostKeyChecking: '%s' is not yes, no, accept-new, "
                                   "ask or off", v);
                else
                    h->strict_host_key_checking = hp_xstrdup(
                        !strcmp(ok[j], "true") ? "yes" : !strcmp(ok[j], "false") ? "no" : ok[j]);
            }
        }
    }
    if (rc == 0 && proxy_cmd)
        rc = hp_err_at(err, HP_ESITE, proxy_cmd->file, proxy_cmd->line, 0, NULL,
                       "ProxyCommand applies to host '%s', but hpcport cannot run it; "
                       "use ProxyJump instead (or a Host block that hpcport's site profile "
                       "does not name)", host);
    /* paths expand with the final host, user and port */
    size_t n = strv_len(ids);
    h->identity_files = hp_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        h->identity_files[i] = expand_path(ids[i], h);
    strv_free(ids);
    n = strv_len(khf_raw);
    h->known_hosts_files = hp_xcalloc(n + 1, sizeof(char *));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(khf_raw[i], "none"))
            h->known_hosts_files[m++] = expand_path(khf_raw[i], h);
    if (rc < 0) {
        hp_sshhost_release(h);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ hops */

int hp_ssh_parse_hop(const char *spec, char **user, char **host, int *port, struct hp_err *err)
{
    const char *s = spec;
    *user = *host = NULL;
    *port = 0;
    if (hp_starts_with(s, "ssh://"))
        s += 6;
    const char *at = strrchr(s, '@');
    if (at) {
        if (at == s)
            return hp_err_set(err, HP_ESITE, "jump host '%s': empty user name", spec);
        *user = hp_xstrndup(s, (size_t)(at - s));
        s = at + 1;
    }
    const char *portp = NULL;
    if (*s == '[') {
        const char *e = strchr(s, ']');
        if (!e || e == s + 1)
            goto bad;
        *host = hp_xstrndup(s + 1, (size_t)(e - s - 1));
        if (e[1] == ':')
            portp = e + 2;
        else if (e[1])
            goto bad;
    } else {
        const char *colon = strchr(s, ':');
        size_t hl = colon ? (size_t)(colon - s) : strlen(s);
        if (hl == 0)
            goto bad;
        *host = hp_xstrndup(s, hl);
        if (colon)
            portp = colon + 1;
    }
    for (const char *q = *host; *q; q++)
        if (*q == ' ' || *q == '\t' || *q == '/' || *q == '@' || *q == ',')
            goto bad;
    if (portp) {
        char *end;
        errno = 0;
        long v = strtol(portp, &end, 10);
        if (errno || *end || end == portp || v < 1 || v > 65535)
            goto bad;
        *port = (int)v;
    }
    return 0;
bad:
    free(*user);
    free(*host);
    *user = *host = NULL;
    return hp_err_set(err, HP_ESITE, "jump host '%s' is not [user@]host[:port]", spec);
}
