/* slurm-check.c - `hpcport site check` for Slurm sites: what the profile
 * declares, compared with what the site does, live.
 *
 * Rows, in order: reachable, host key, auth (from opening the connection;
 * through the connection master when one runs), scheduler (sbatch
 * --version and the other client commands), one row per declared partition
 * (exists, up, its time limit against max_walltime, GPUs), cores and memory
 * per node, account and qos (sacctmgr associations), scratch (writable,
 * free space), login network (a probe of PROBE_URL with curl or wget, as
 * network.login declares: direct, through the proxy, or expected to fail),
 * and from a one-task probe job: compute network, container runtime, GPUs
 * seen on the node. A FAIL row names the profile value that declares the
 * wrong thing (hp_site_origin()). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "adapter.h"
#include "conn.h"
#include "master.h"
#include "quote.h"
#include "site.h"
#include "slurm-int.h"
#include "ssh.h"
#include "stage.h"
#include "util.h"
#include "banned.h"

#define PROBE_URL "https://github.com"
#define CHECK_TIMEOUT 60.0
#define JOB_TIMEOUT 120.0

struct ck {
    const struct hp_site *site;
    struct hp_conn *conn;
    struct hp_check_report *rep;
    char *user;
    int have_sbatch;
};

/* The profile line that set the value at ptr, or "<default>" when the
 * profile leaves it to hpcport's default. */
static const char *origin(const struct ck *c, const char *ptr)
{
    const json_t *o = c->site->origin ? json_object_get(c->site->origin, ptr) : NULL;
    if (json_is_string(o))
        return json_string_value(o);
    return "<default>";
}

/* Run argv there: 0 with *status, -1 when the transport failed (err). */
static int sh(struct ck *c, const char *const *argv, struct hp_buf *out, struct hp_buf *eo,
              int *status, double timeout, struct hp_err *err)
{
    hp_buf_reset(out);
    hp_buf_reset(eo);
    return hp_conn_exec_ex(c->conn, argv, NULL, 0, out, eo, status, timeout,
                           HP_EXEC_IDEMPOTENT, err);
}

/* ---- the connection ---- */

struct keys {
    int seen_login, refused;
    struct hp_buf text;
};

static void on_key(void *ud, const struct hp_ssh_hostkey *k)
{
    struct keys *ks = ud;
    if (hp_starts_with(k->role, "login host"))
        ks->seen_login = 1;
    if (strcmp(k->status, "known") && strcmp(k->status, "added")) {
        ks->refused = 1;
        hp_buf_addf(&ks->text, "%s%s %s:%d %s %s unknown", ks->text.len ? "; " : "", k->role,
                    k->host, k->port, k->type, k->fingerprint);
    }
}

static int connect_site(struct ck *c)
{
    const struct hp_site *s = c->site;
    struct hp_err err;
    hp_err_init(&err);
    if (!s->login_host) {
        const char *why = "the profile has no login.host: commands run on this machine";
        hp_check_add(c->rep, HP_CHECK_SKIP, "reachable", NULL, "%s", why);
        hp_check_add(c->rep, HP_CHECK_SKIP, "host key", NULL, "no SSH");
        hp_check_add(c->rep, HP_CHECK_SKIP, "auth", NULL, "no SSH");
        c->conn = hp_conn_local();
        return 0;
    }
    const char *nm = getenv("HPCPORT_NO_MASTER");
    if (!(nm && *nm && strcmp(nm, "0"))) {
        int none = 0;
        c->conn = hp_master_conn(s, &none, &err);
        if (c->conn) {
            const char *m = "through the running connection master ('hpcport connect')";
            hp_check_add(c->rep, HP_CHECK_OK, "reachable", origin(c, "/login/host"), "%s", m);
            hp_check_add(c->rep, HP_CHECK_OK, "host key", NULL, "%s", m);
            hp_check_add(c->rep, HP_CHECK_OK, "auth", NULL, "%s", m);
            return 0;
        }
        hp_err_init(&err);
    }
    struct keys ks = { .text = HP_BUF_INIT };
    struct hp_ssh_opts o = { .trust = HP_SSH_TRUST_STRICT, .on_hostkey = on_key, .ud = &ks };
    struct hp_ssh *ssh = hp_ssh_open(s, &o, &err);
    const char *ho = origin(c, "/login/host");
    if (ssh) {
        hp_check_add(c->rep, HP_CHECK_OK, "reachable", ho, "%s", hp_ssh_target(ssh));
        hp_check_add(c->rep, HP_CHECK_OK, "host key", NULL, "every hop's key is known");
        hp_check_add(c->rep, HP_CHECK_OK, "auth", origin(c, "/login/user"), "logged in");
        c->conn = hp_conn_ssh_wrap(ssh, s->name);
        hp_buf_release(&ks.text);
        return 0;
    }
    if (ks.refused) {
        hp_check_add(c->rep, HP_CHECK_OK, "reachable", ho, "the host answered");
        hp_check_add(c->rep, HP_CHECK_FAIL, "host key", ho, "%s", err.msg[0] ? err.msg
                                                                                : ks.text.buf);
        hp_check_add(c->rep, HP_CHECK_SKIP, "auth", NULL, "not tried: the host key is not trusted");
    } else if (ks.seen_login) {
        hp_check_add(c->rep, HP_CHECK_OK, "reachable", ho, "the host answered");
        hp_check_add(c->rep, HP_CHECK_OK, "host key", NULL, "every hop's key is known");
        const char *uo = origin(c, "/login/user");
        hp_check_add(c->rep, HP_CHECK_FAIL, "auth", strcmp(uo, "<default>") ? uo : ho, "%s",
                     err.msg);
    } else {
        hp_check_add(c->rep, HP_CHECK_FAIL, "reachable", ho, "%s", err.msg);
        hp_check_add(c->rep, HP_CHECK_SKIP, "host key", NULL, "not reached");
        hp_check_add(c->rep, HP_CHECK_SKIP, "auth", NULL, "not reached");
    }
    hp_buf_release(&ks.text);
    return -1;
}

/* ---- scheduler ---- */

static void check_scheduler(struct ck *c, struct hp_buf *out, struct hp_buf *eo)
{
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    const char *v[] = { "sh", "-c",
                        "id -un; sbatch --version || exit 127; "
                        "for c in squeue scancel sacct sinfo sacctmgr; do "
                        "command -v \"$c\" >/dev/null 2>&1 || echo \"missing $c\"; done", NULL };
    if (sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err) < 0) {
        hp_check_add(c->rep, HP_CHECK_FAIL, "scheduler", NULL, "%s", err.msg);
        return;
    }
    const char *so = origin(c, "/scheduler/type");
    char *nl = strchr(out->buf, '\n');
    if (nl) {
        c->user = hp_xstrndup(out->buf, (size_t)(nl - out->buf));
    }
    if (st != 0 || !nl) {
        hp_check_add(c->rep, HP_CHECK_FAIL, "scheduler", so, "sbatch is not found on the login "
                     "node, but the profile says scheduler.type: slurm");
        return;
    }
    char *ver = hp_first_line(nl + 1);
    struct hp_buf missing = HP_BUF_INIT;
    for (char *p = strstr(nl + 1, "missing "); p; p = strstr(p + 1, "missing ")) {
        char *w = hp_first_line(p + 8);
        hp_buf_addf(&missing, "%s%s", missing.len ? ", " : "", w);
        free(w);
    }
    c->have_sbatch = 1;
    if (missing.len)
        hp_check_add(c->rep, strstr(missing.buf, "squeue") || strstr(missing.buf, "scancel")
                                 ? HP_CHECK_FAIL : HP_CHECK_WARN,
                     "scheduler", so, "%s; missing: %s", ver, missing.buf);
    else
        hp_check_add(c->rep, HP_CHECK_OK, "scheduler", so, "%s (sbatch, squeue, scancel, sacct, "
                     "sinfo, sacctmgr)", ver);
    free(ver);
    hp_buf_release(&missing);
}

/* ---- partitions and nodes (sinfo) ---- */

struct spart {
    char name[128];
    int64_t limit;             /* -1 unlimited, 0 unknown */
    int up;
    int cpus;                  /* largest node */
    long long mem;             /* MiB, largest node */
    int gpus;                  /* some node has a gpu GRES */
};

static struct spart *sinfo_parts(struct ck *c, size_t *n, struct hp_buf *out, struct hp_buf *eo,
                                 char **why)
{
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    *n = 0;
    const char *v[] = { "sinfo", "-h", "-a", "-o", "%R|%l|%a|%c|%m|%G", NULL };
    if (sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err) < 0 || st != 0) {
        *why = st ? hp_first_line(eo->buf) : hp_xstrdup(err.msg);
        return NULL;
    }
    struct spart *p = NULL;
    size_t alloc = 0;
    char *text = hp_xstrdup(out->buf);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *f[6];
        size_t k = 0;
        f[k++] = line;
        for (char *q = line; *q && k < 6; q++)
            if (*q == '|') {
                *q = '\0';
                f[k++] = q + 1;
            }
        if (k < 6)
            continue;
        struct spart *x = NULL;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(p[i].name, f[0]))
                x = &p[i];
        if (!x) {
            HP_ALLOC_GROW(p, *n + 1, alloc);
            x = &p[(*n)++];
            memset(x, 0, sizeof(*x));
            snprintf(x->name, sizeof(x->name), "%s", f[0]);
            x->limit = slurm_parse_limit(f[1]);
        }
        x->up |= !strcmp(f[2], "up");
        int cpus = atoi(f[3]);   /* "2" or "2+" */
        long long mem = atoll(f[4]);
        if (cpus > x->cpus)
            x->cpus = cpus;
        if (mem > x->mem)
            x->mem = mem;
        if (strstr(f[5], "gpu"))
            x->gpus = 1;
    }
    free(text);
    return p;
}

static void fmt_limit(int64_t l, char *buf, size_t len)
{
    if (l < 0)
        snprintf(buf, len, "UNLIMITED");
    else if (l == 0)
        snprintf(buf, len, "unknown");
    else
        hp_format_duration(l, buf, len);
}

static void check_partitions(struct ck *c, struct hp_buf *out, struct hp_buf *eo)
{
    const struct hp_site *s = c->site;
    char *why = NULL;
    size_t n = 0;
    struct spart *p = sinfo_parts(c, &n, out, eo, &why);
    char ptr[128], a[32], b[32];
    if (!p && why) {
        hp_check_add(c->rep, HP_CHECK_WARN, "partitions", NULL, "sinfo failed: %s", why);
        free(why);
        return;
    }
    struct hp_buf names = HP_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        hp_buf_addf(&names, "%s%s", i ? ", " : "", p[i].name);
    if (!s->nparts)
        hp_check_add(c->rep, HP_CHECK_SKIP, "partitions", NULL, "the profile declares none; the "
                     "cluster has: %s", names.buf);
    int max_cpus = 0, any_gpus = 0;
    long long max_mem = 0;
    for (size_t i = 0; i < n; i++) {
        max_cpus = p[i].cpus > max_cpus ? p[i].cpus : max_cpus;
        max_mem = p[i].mem > max_mem ? p[i].mem : max_mem;
        any_gpus |= p[i].gpus;
    }
    for (size_t k = 0; k < s->nparts; k++) {
        const struct hp_partition *dp = &s->parts[k];
        char check[160];
        if (!dp->pass_name) {
            /* a queue jobs reach by qos (and constraint), not by partition
             * name: its qos is checked with the other qos below */
            snprintf(check, sizeof(check), "queue '%.120s'", dp->name);
            hp_check_add(c->rep, HP_CHECK_SKIP, check, NULL, "jobs name no partition for it "
                         "(pass_name: false)%s", dp->qos ? "; its qos is checked below" : "");
            continue;
        }
        snprintf(check, sizeof(check), "partition '%.120s'", dp->name);
        snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/name", k);
        const struct spart *x = NULL;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(p[i].name, dp->name))
                x = &p[i];
        if (!x) {
            hp_check_add(c->rep, HP_CHECK_FAIL, check, origin(c, ptr), "no such partition on the "
                         "cluster; it has: %s", names.buf);
            continue;
        }
        fmt_limit(x->limit, b, sizeof(b));
        int64_t declared = dp->max_walltime ? dp->max_walltime : s->max_walltime;
        int gp = dp->gpus_per_node >= 0 ? dp->gpus_per_node : s->gpus_per_node;
        if (declared && x->limit > 0 && declared > x->limit) {
            hp_format_duration(declared, a, sizeof(a));
            snprintf(ptr, sizeof(ptr), dp->max_walltime ? "/scheduler/partitions/%zu/max_walltime"
                                                        : "/scheduler/max_walltime", k);
            hp_check_add(c->rep, HP_CHECK_FAIL, check, origin(c, ptr), "the profile allows "
                         "walltime %s, the partition %s: jobs over it are refused", a, b);
        } else if (gp > 0 && !x->gpus) {
            snprintf(ptr, sizeof(ptr), dp->gpus_per_node >= 0
                                           ? "/scheduler/partitions/%zu/gpus_per_node"
                                           : "/nodes/gpus", k);
            hp_check_add(c->rep, HP_CHECK_FAIL, check, origin(c, ptr), "the profile says %d "
                         "GPUs per node; the partition's nodes have no gpu GRES (sinfo %%G)", gp);
        } else if (!x->up) {
            hp_check_add(c->rep, HP_CHECK_WARN, check, origin(c, ptr), "exists but is not up");
        } else {
            hp_check_add(c->rep, HP_CHECK_OK, check, NULL, "up, time limit %s, %d cores and "
                         "%lld MiB per node%s", b, x->cpus, x->mem, x->gpus ? ", GPUs" : "");
        }
    }
    if (n && s->cores_per_node > max_cpus)
        hp_check_add(c->rep, HP_CHECK_FAIL, "cores per node", origin(c, "/nodes/cores"),
                     "the profile says %d; the largest node has %d", s->cores_per_node, max_cpus);
    else if (n && s->cores_per_node)
        hp_check_add(c->rep, HP_CHECK_OK, "cores per node", NULL, "%d (largest node: %d)",
                     s->cores_per_node, max_cpus);
    if (n && s->memory_mb > max_mem)
        hp_check_add(c->rep, HP_CHECK_FAIL, "memory per node", origin(c, "/nodes/memory"),
                     "the profile says %lld MiB; the largest node has %lld MiB",
                     (long long)s->memory_mb, max_mem);
    if (n && s->gpus_per_node > 0 && !any_gpus && !s->nparts)
        hp_check_add(c->rep, HP_CHECK_FAIL, "GPUs", origin(c, "/nodes/gpus"), "the profile says "
                     "%d GPUs per node; no node of the cluster has a gpu GRES", s->gpus_per_node);
    hp_buf_release(&names);
    free(p);
}

/* ---- accounts and qos (sacctmgr) ---- */

static int in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p++)
        if ((p == list || strchr(",\n|", p[-1])) && strchr(",\n|", p[n]))
            return 1;
    return 0;
}

static void check_accounts(struct ck *c, struct hp_buf *out, struct hp_buf *eo)
{
    const struct hp_site *s = c->site;
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    int want_qos = s->qos != NULL;
    for (size_t k = 0; k < s->nparts; k++)
        want_qos |= s->parts[k].qos != NULL;
    if (!s->account && !want_qos)
        return;
    if (!c->user) {
        hp_check_add(c->rep, HP_CHECK_SKIP, "account", NULL, "user unknown");
        return;
    }
    char *user = hp_xasprintf("user=%s", c->user);
    const char *v[] = { "sacctmgr", "-nP", "show", "assoc", user, "format=account,qos", NULL };
    int rc = sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err);
    free(user);
    if (rc < 0 || st != 0) {
        char *l = rc < 0 ? hp_xstrdup(err.msg) : hp_first_line(eo->buf);
        hp_check_add(c->rep, HP_CHECK_WARN, s->account ? "account" : "qos", NULL,
                     "cannot ask sacctmgr: %s", l);
        free(l);
        return;
    }
    char *assoc = hp_xstrdup(out->buf);   /* lines "account|qos1,qos2" */
    struct hp_buf accts = HP_BUF_INIT, allowed = HP_BUF_INIT, any = HP_BUF_INIT;
    for (char *line = assoc, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *bar = strchr(line, '|');
        if (!bar)
            continue;
        *bar = '\0';
        if (!in_list(accts.buf, line))
            hp_buf_addf(&accts, "%s%s", accts.len ? "," : "", line);
        if (s->account && !strcmp(line, s->account))
            hp_buf_addf(&allowed, "%s%s", allowed.len ? "," : "", bar + 1);
        hp_buf_addf(&any, "%s%s", any.len ? "," : "", bar + 1);
    }
    if (s->account) {
        if (hp_site_is_placeholder(s->account) || !in_list(accts.buf, s->account))
            hp_check_add(c->rep, HP_CHECK_FAIL, "account", origin(c, "/scheduler/account"),
                         "'%s' is not among the accounts of %s on this cluster (%s)", s->account,
                         c->user, accts.len ? accts.buf : "none");
        else
            hp_check_add(c->rep, HP_CHECK_OK, "account", NULL, "'%s' (of %s)", s->account,
                         accts.buf);
    }
    if (!allowed.len)   /* no (known) account: the qos of any association */
        hp_buf_add(&allowed, any.buf, any.len);
    const char *qv[] = { "sacctmgr", "-nP", "show", "qos", "format=name", NULL };
    char *all = NULL;
    if (want_qos && sh(c, qv, out, eo, &st, CHECK_TIMEOUT, &err) == 0 && st == 0)
        all = hp_xstrdup(out->buf);
    for (size_t k = 0; k <= s->nparts; k++) {
        const char *q = k == s->nparts ? s->qos : s->parts[k].qos;
        char ptr[96], check[160];
        if (!q)
            continue;
        if (k == s->nparts)
            snprintf(ptr, sizeof(ptr), "/scheduler/qos");
        else
            snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/qos", k);
        snprintf(check, sizeof(check), "qos '%.120s'", q);
        if (all && !in_list(all, q))
            hp_check_add(c->rep, HP_CHECK_FAIL, check, origin(c, ptr), "no such qos on the "
                         "cluster");
        else if (allowed.len && !in_list(allowed.buf, q))
            hp_check_add(c->rep, HP_CHECK_FAIL, check, origin(c, ptr), "not allowed for %s%s%s "
                         "(allowed: %s)", c->user, s->account ? " in account " : "",
                         s->account ? s->account : "", allowed.buf);
        else
            hp_check_add(c->rep, HP_CHECK_OK, check, NULL, "exists and is allowed");
    }
    free(all);
    free(assoc);
    hp_buf_release(&accts);
    hp_buf_release(&allowed);
    hp_buf_release(&any);
}

/* ---- scratch ---- */

static char *check_scratch(struct ck *c, struct hp_stage *stage, struct hp_buf *out,
                           struct hp_buf *eo)
{
    const struct hp_site *s = c->site;
    const char *ptr = s->scratch ? "/filesystems/scratch" : s->home ? "/filesystems/home" : NULL;
    const char *decl = s->scratch ? s->scratch : s->home ? s->home : "$HOME";
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    char *dir = hp_stage_expand(stage, decl, &err);
    if (!dir) {
        hp_check_add(c->rep, HP_CHECK_FAIL, "scratch", ptr ? origin(c, ptr) : NULL, "%s",
                     err.msg);
        return NULL;
    }
    const char *v[] = { "sh", "-c",
                        "d=$1; mkdir -p -- \"$d\" && t=$(mktemp \"$d/.hpcport-check.XXXXXX\") && "
                        "rm -f -- \"$t\" && df -Pk -- \"$d\" | tail -n 1", "sh", dir, NULL };
    if (sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err) < 0 || st != 0) {
        char *l = st ? hp_first_line(eo->buf) : hp_xstrdup(err.msg);
        hp_check_add(c->rep, HP_CHECK_FAIL, "scratch", ptr ? origin(c, ptr) : NULL,
                     "%s is not writable: %s", dir, l);
        free(l);
        free(dir);
        return NULL;
    }
    long long avail = -1;
    char fs[256] = "";
    sscanf(out->buf, "%255s %*s %*s %lld", fs, &avail);
    double gib = avail >= 0 ? (double)avail / (1024.0 * 1024.0) : -1;
    hp_check_add(c->rep, gib >= 0 && gib < 1 ? HP_CHECK_WARN : HP_CHECK_OK, "scratch", NULL,
                 "%s writable, %.1f GiB free", dir, gib);
    return dir;
}

/* ---- network ---- */

static const char *netname(enum hp_netmode m)
{
    return m == HP_NET_OPEN ? "open" : m == HP_NET_PROXY ? "proxy" : "none";
}

/* A shell function probing "$1" (optionally through proxy "$2") that
 * prints "net ok", "net fail MESSAGE" or "net notool". */
#define NET_PROBE                                                                          \
    "probe() { if [ -n \"$2\" ]; then export http_proxy=\"$2\" https_proxy=\"$2\"; "      \
    "HTTP_PROXY=\"$2\" HTTPS_PROXY=\"$2\"; export HTTP_PROXY HTTPS_PROXY; else "             \
    "unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY; fi; "                             \
    "if command -v curl >/dev/null 2>&1; then m=$(curl -sS -m 8 -o /dev/null \"$1\" 2>&1) " \
    "&& echo 'net ok' || echo \"net fail $m\"; "                                          \
    "elif command -v wget >/dev/null 2>&1; then m=$(wget -q -T 8 -O /dev/null \"$1\" 2>&1) " \
    "&& echo 'net ok' || echo \"net fail ${m:-wget failed}\"; else echo 'net notool'; fi; }\n"

static void net_row(struct ck *c, const char *check, enum hp_netmode declared, const char *ptr,
                    const char *line)
{
    const char *o = origin(c, ptr);
    int ok = hp_starts_with(line, "net ok");
    if (hp_starts_with(line, "net notool")) {
        hp_check_add(c->rep, HP_CHECK_WARN, check, NULL, "neither curl nor wget: cannot probe");
        return;
    }
    if (!hp_starts_with(line, "net ")) {
        hp_check_add(c->rep, HP_CHECK_WARN, check, NULL, "the probe printed nothing useful");
        return;
    }
    const char *msg = ok ? "" : line + 9;
    if (declared == HP_NET_NONE) {
        if (ok)
            hp_check_add(c->rep, HP_CHECK_FAIL, check, o, "the profile says none, but %s is "
                         "reachable: set %s: open", PROBE_URL, ptr + 1);
        else
            hp_check_add(c->rep, HP_CHECK_OK, check, NULL, "none, as declared (%s: %.120s)",
                         PROBE_URL, msg);
    } else if (ok) {
        hp_check_add(c->rep, HP_CHECK_OK, check, NULL, "%s, as declared (%s reachable%s)",
                     netname(declared), PROBE_URL, declared == HP_NET_PROXY ? " through the proxy"
                                                                               : "");
    } else {
        hp_check_add(c->rep, HP_CHECK_FAIL, check, o, "the profile says %s, but %s is not "
                     "reachable%s: %.160s", netname(declared), PROBE_URL,
                     declared == HP_NET_PROXY ? " through the proxy" : "", msg);
    }
}

static void check_login_net(struct ck *c, struct hp_buf *out, struct hp_buf *eo)
{
    const struct hp_site *s = c->site;
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    const char *proxy = s->net_login == HP_NET_PROXY && s->proxy ? s->proxy : "";
    const char *v[] = { "sh", "-c", NET_PROBE "probe \"$1\" \"$2\"", "sh", PROBE_URL, proxy, NULL };
    if (sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err) < 0) {
        hp_check_add(c->rep, HP_CHECK_WARN, "login network", NULL, "%s", err.msg);
        return;
    }
    char *l = hp_first_line(out->buf);
    net_row(c, "login network", s->net_login, "/network/login", l);
    free(l);
}

/* ---- the probe job ---- */

static void login_runtime(struct ck *c, struct hp_buf *out, struct hp_buf *eo)
{
    const char *rt = c->site->container_runtime;
    if (!rt || !strcmp(rt, "none"))
        return;
    const char *v[] = { "sh", "-c", "command -v \"$1\"", "sh", rt, NULL };
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    if (sh(c, v, out, eo, &st, CHECK_TIMEOUT, &err) == 0 && st == 0)
        hp_check_add(c->rep, HP_CHECK_OK, "container runtime", NULL, "%s found on the login "
                     "node (compute nodes not checked)", rt);
    else
        hp_check_add(c->rep, HP_CHECK_WARN, "container runtime", origin(c, "/container/runtime"),
                     "%s is not found on the login node (compute nodes not checked)", rt);
}

/* The script of the probe job: network, container runtime, GPUs, host. */
static void probe_script(const struct hp_site *s, const char *name, const char *outfile,
                         struct hp_buf *b)
{
    const struct hp_partition *dp = hp_site_partition(s, NULL);
    const char *qos = dp && dp->qos ? dp->qos : s->qos;
    const char *rt = s->container_runtime;
    hp_buf_adds(b, "#!/bin/sh\n");
    hp_buf_addf(b, "#SBATCH --job-name=%s\n#SBATCH --output=%s\n", name, outfile);
    hp_buf_adds(b, "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --time=00:02:00\n");
    if (dp && dp->pass_name && !strpbrk(dp->name, "\n\r"))
        hp_buf_addf(b, "#SBATCH --partition=%s\n", dp->name);
    if (s->account && !strpbrk(s->account, "\n\r"))
        hp_buf_addf(b, "#SBATCH --account=%s\n", s->account);
    if (qos && !strpbrk(qos, "\n\r"))
        hp_buf_addf(b, "#SBATCH --qos=%s\n", qos);
    for (size_t k = 0; s->directives && s->directives[k]; k++)
        if (!strpbrk(s->directives[k], "\n\r"))
            hp_buf_addf(b, "#SBATCH %s\n", s->directives[k]);
    for (size_t k = 0; s->setup && s->setup[k]; k++)
        hp_buf_addf(b, "%s\n", s->setup[k]);
    hp_buf_adds(b, NET_PROBE "probe ");
    hp_sq_quote(b, PROBE_URL);
    hp_buf_addch(b, ' ');
    hp_sq_quote(b, s->net_compute == HP_NET_PROXY && s->proxy ? s->proxy : "");
    hp_buf_addch(b, '\n');
    if (rt && strcmp(rt, "none")) {
        hp_buf_adds(b, "command -v ");
        hp_sq_quote(b, rt);
        hp_buf_adds(b, " >/dev/null 2>&1 && echo 'runtime ok' || echo 'runtime missing'\n");
    }
    hp_buf_adds(b, "echo \"gpus $(nvidia-smi -L 2>/dev/null | grep -c GPU)\"\n"
                   "echo \"host $(hostname)\"\n");
}

static void probe_rows(struct ck *c, char *text)
{
    const struct hp_site *s = c->site;
    const char *rt = s->container_runtime, *host = "?";
    int gpus = -1, runtime = -1, want_gpus = s->gpus_per_node > 0;
    for (size_t k = 0; k < s->nparts; k++)
        want_gpus |= s->parts[k].gpus_per_node > 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (hp_starts_with(line, "net "))
            net_row(c, "compute network", s->net_compute, "/network/compute", line);
        else if (hp_starts_with(line, "runtime "))
            runtime = !strcmp(line + 8, "ok");
        else if (hp_starts_with(line, "gpus "))
            gpus = atoi(line + 5);
        else if (hp_starts_with(line, "host "))
            host = line + 5;
    }
    if (rt && strcmp(rt, "none")) {
        if (runtime == 1)
            hp_check_add(c->rep, HP_CHECK_OK, "container runtime", NULL, "%s found on compute "
                         "node %s", rt, host);
        else
            hp_check_add(c->rep, HP_CHECK_FAIL, "container runtime",
                         origin(c, "/container/runtime"), "%s is not found on compute node %s "
                         "(after the profile's setup lines)", rt, host);
    }
    if (want_gpus) {
        if (gpus > 0)
            hp_check_add(c->rep, HP_CHECK_OK, "GPUs on a node", NULL, "%d visible on %s "
                         "(default partition)", gpus, host);
        else
            hp_check_add(c->rep, HP_CHECK_WARN, "GPUs on a node", origin(c, "/nodes/gpus"),
                         "nvidia-smi lists none on %s (the probe runs in the default "
                         "partition)", host);
    }
}

static void check_job(struct ck *c, const struct hp_check_opts *o, const char *scratch,
                      struct hp_buf *out, struct hp_buf *eo)
{
    if (o && o->no_job) {
        hp_check_add(c->rep, HP_CHECK_SKIP, "compute network", NULL, "--no-job");
        login_runtime(c, out, eo);
        return;
    }
    if (!scratch) {
        hp_check_add(c->rep, HP_CHECK_SKIP, "compute network", NULL, "no writable scratch for "
                     "the probe job's output");
        login_runtime(c, out, eo);
        return;
    }
    char tag[32];
    snprintf(tag, sizeof(tag), "%ld-%04x", (long)getpid(),
             (unsigned)((long long)(hp_wall_now() * 1000) & 0xffff));
    char *name = hp_xasprintf("hpcport-check.%s", tag);
    char *outfile = hp_xasprintf("%s/.hpcport-check-%s.out", scratch, tag);
    struct hp_buf script = HP_BUF_INIT;
    probe_script(c->site, name, outfile, &script);
    const char *sb[] = { "sbatch", "--parsable", "--wait", NULL };
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    double timeout = o && o->job_timeout > 0 ? o->job_timeout : JOB_TIMEOUT;
    hp_buf_reset(out);
    hp_buf_reset(eo);
    int rc = hp_conn_exec(c->conn, sb, script.buf, script.len, out, eo, &st, timeout, &err);
    if (rc < 0 || st != 0) {
        const char *e = strstr(eo->buf, "error: ");
        char *l = rc < 0 ? hp_xstrdup(err.msg) : hp_first_line(e ? e + 7 : eo->buf);
        const char *cancel[] = { "scancel", "-n", name, NULL };
        struct hp_buf o2 = HP_BUF_INIT, e2 = HP_BUF_INIT;
        struct hp_err e3;
        hp_err_init(&e3);
        sh(c, cancel, &o2, &e2, &st, CHECK_TIMEOUT, &e3);
        hp_buf_release(&o2);
        hp_buf_release(&e2);
        if (rc < 0)
            hp_check_add(c->rep, HP_CHECK_WARN, "probe job", NULL, "it did not end within %.0f s "
                         "(a long queue?): %s; rerun with --job-timeout, or --no-job", timeout, l);
        else
            hp_check_add(c->rep, HP_CHECK_FAIL, "probe job", NULL, "sbatch or the job failed: "
                         "%s", l);
        free(l);
    } else {
        const char *cat[] = { "sh", "-c", "cat -- \"$1\"; rm -f -- \"$1\"", "sh", outfile, NULL };
        if (sh(c, cat, out, eo, &st, CHECK_TIMEOUT, &err) < 0) {
            hp_check_add(c->rep, HP_CHECK_WARN, "probe job", NULL, "cannot read its output: %s",
                         err.msg);
        } else {
            char *text = hp_xstrdup(out->buf);
            probe_rows(c, text);
            free(text);
        }
    }
    free(name);
    free(outfile);
    hp_buf_release(&script);
}

int hp_slurm_check(const struct hp_site *site, const struct hp_check_opts *opts,
                   struct hp_check_report *rep, struct hp_err *err)
{
    struct ck c = { .site = site, .rep = rep };
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    (void)err;
    if (connect_site(&c) < 0) {
        hp_check_add(rep, HP_CHECK_SKIP, "the rest", NULL, "no connection");
        return 0;
    }
    check_scheduler(&c, &out, &eo);
    if (c.have_sbatch) {
        check_partitions(&c, &out, &eo);
        check_accounts(&c, &out, &eo);
    }
    struct hp_stage *stage = hp_stage_new(c.conn, site);
    char *scratch = check_scratch(&c, stage, &out, &eo);
    check_login_net(&c, &out, &eo);
    if (c.have_sbatch)
        check_job(&c, opts, scratch, &out, &eo);
    free(scratch);
    hp_stage_free(stage);
    hp_conn_free(c.conn);
    free(c.user);
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return 0;
}
