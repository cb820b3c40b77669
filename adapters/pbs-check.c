/* pbs-check.c - `hpcport site check` for PBS sites, modestly: the site is
 * reachable (hp_conn_open: through the connection master when one runs,
 * else SSH with strict host keys), the client commands exist and say which
 * PBS they are, and every declared partition is a queue `qstat -Q` lists.
 * Accounts, GPUs and the network are not checked (PBS has no portable way
 * to list a user's accounts; slurm-check.c's probe job is Slurm's). A FAIL
 * row names the profile line that declares the wrong thing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "conn.h"
#include "pbs-int.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#define CHECK_TIMEOUT 60.0

static const char *origin(const struct hp_site *s, const char *ptr)
{
    const char *o = hp_site_origin(s, ptr);
    return o && *o ? o : "<default>";
}

static char *line_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ' || *p == '=' || *p == ':' || *p == '\t')
        p++;
    return hp_xstrndup(p, strcspn(p, "\r\n"));
}

static void check_commands(struct hp_conn *c, const struct hp_site *site, enum pbs_dialect d,
                           struct hp_check_report *rep)
{
    const char *argv[] = { "sh", "-c", "for c in qsub qstat qdel qselect; do command -v \"$c\" "
                           ">/dev/null 2>&1 || echo \"missing $c\"; done; "
                           "qstat --version 2>&1 | head -3", NULL };
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    struct hp_err err;
    int st = 0;
    hp_err_init(&err);
    const char *so = origin(site, "/scheduler/type");
    if (hp_conn_exec_ex(c, argv, NULL, 0, &out, &eo, &st, CHECK_TIMEOUT, HP_EXEC_IDEMPOTENT,
                        &err) < 0) {
        hp_check_add(rep, HP_CHECK_FAIL, "scheduler", so, "%s", err.msg);
        goto out;
    }
    int core_missing = strstr(out.buf, "missing qsub") || strstr(out.buf, "missing qstat") ||
                       strstr(out.buf, "missing qdel");
    int no_qselect = strstr(out.buf, "missing qselect") != NULL;
    char *pro = line_after(out.buf, "pbs_version");
    char *tq = line_after(out.buf, "Version");
    if (core_missing) {
        hp_check_add(rep, HP_CHECK_FAIL, "scheduler", so, "qsub, qstat or qdel is not found on "
                     "the login node, but the profile says scheduler.type: pbs");
    } else if (d == PBS_PRO && !pro) {
        hp_check_add(rep, HP_CHECK_WARN, "scheduler", origin(site, "/scheduler/dialect"),
                     "qstat does not say pbs_version: not PBS Professional/OpenPBS? "
                     "(scheduler.dialect: torque for TORQUE or Slurm's wrappers)");
    } else if (d == PBS_PRO && no_qselect) {
        hp_check_add(rep, HP_CHECK_WARN, "scheduler", so, "PBS %s, but qselect is missing: "
                     "jobs of an interrupted run cannot be found again", pro);
    } else {
        hp_check_add(rep, HP_CHECK_OK, "scheduler", so, "%s (%s dialect; qsub, qstat, qdel%s)",
                     pro ? pro : tq ? tq : "version not reported (Slurm's qstat wrapper?)",
                     pbs_dialect_name(d), no_qselect ? "" : ", qselect");
    }
    free(pro);
    free(tq);
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
}

/* queue names from `qstat -Q`: the first word of each line after the
 * "----" rule */
static int queue_listed(const char *text, const char *name)
{
    const char *p = strstr(text, "\n--");
    if (!p)
        return 0;
    for (p = strchr(p + 1, '\n'); p && *p;) {
        p++;
        size_t l = strcspn(p, " \t\r\n");
        if (l == strlen(name) && !strncmp(p, name, l))
            return 1;
        p = strchr(p, '\n');
    }
    return 0;
}

static void check_queues(struct hp_conn *c, const struct hp_site *site,
                         struct hp_check_report *rep)
{
    const char *argv[] = { "qstat", "-Q", NULL };
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    struct hp_err err;
    int st = 0;
    char ptr[96], what[200];
    hp_err_init(&err);
    if (!site->nparts) {
        hp_check_add(rep, HP_CHECK_SKIP, "queues", NULL, "the profile declares no partitions");
        return;
    }
    int ran = hp_conn_exec_ex(c, argv, NULL, 0, &out, &eo, &st, CHECK_TIMEOUT,
                              HP_EXEC_IDEMPOTENT, &err) == 0 && st == 0;
    for (size_t i = 0; i < site->nparts; i++) {
        const char *q = site->parts[i].name;
        snprintf(ptr, sizeof(ptr), "/scheduler/partitions/%zu/name", i);
        snprintf(what, sizeof(what), "partition '%s'", q);
        if (!ran)
            hp_check_add(rep, HP_CHECK_FAIL, what, origin(site, ptr), "qstat -Q failed: %s",
                         err.msg[0] ? err.msg : eo.buf);
        else if (queue_listed(out.buf, q))
            hp_check_add(rep, HP_CHECK_OK, what, origin(site, ptr), "a queue qstat -Q lists");
        else
            hp_check_add(rep, HP_CHECK_FAIL, what, origin(site, ptr), "qstat -Q lists no queue "
                         "'%s'; fix the profile's partition name", q);
    }
    hp_buf_release(&out);
    hp_buf_release(&eo);
}

int hp_pbs_check(const struct hp_site *site, const struct hp_check_opts *opts,
                 struct hp_check_report *rep, struct hp_err *err)
{
    (void)opts;
    int d = pbs_dialect_of(site->dialect);
    if (d < 0)
        return hp_err_set(err, HP_ESITE, "pbs: site '%s': unknown dialect '%s'", site->name,
                          site->dialect);
    struct hp_err cerr;
    hp_err_init(&cerr);
    struct hp_conn *c = hp_conn_open(site, &cerr);
    const char *ho = origin(site, "/login/host");
    if (!c) {
        hp_check_add(rep, HP_CHECK_FAIL, "reachable", ho, "%s", cerr.msg);
        return 0;
    }
    hp_check_add(rep, HP_CHECK_OK, "reachable", ho, "%s", site->login_host
                 ? "logged in (host key known)" : "the profile has no login.host: commands run "
                   "on this machine");
    check_commands(c, site, (enum pbs_dialect)d, rep);
    check_queues(c, site, rep);
    hp_check_add(rep, HP_CHECK_SKIP, "account", NULL, "not checked for PBS sites");
    hp_conn_free(c);
    return 0;
}
