/* slurmrest-parse.c - job descriptions and answers of slurmrestd, pure
 * (slurmrest-int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slurmrest-int.h"
#include "slurm-int.h"
#include "util.h"
#include "banned.h"

/* --output/--error are patterns: '%' starts a replacement symbol unless the
 * name holds a backslash (as in slurm.c's path_directive) */
static json_t *pattern(const char *path)
{
    struct hp_buf v = HP_BUF_INIT;
    int literal = strchr(path, '\\') != NULL;
    for (const char *p = path; *p; p++) {
        if (*p == '%' && !literal)
            hp_buf_addch(&v, '%');
        hp_buf_addch(&v, *p);
    }
    json_t *s = json_string(v.buf);
    hp_buf_release(&v);
    return s;
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static void gpus(json_t *job, const struct hp_jobspec *spec, const struct hp_site *site,
                 int nodes)
{
    char buf[64];
    const char *opt = slurm_gpu_request(spec, site, nodes, buf, sizeof(buf));
    if (opt)   /* the job description's names: gres, gpus, gpus_per_node */
        set_str(job, !strcmp(opt, "gpus-per-node") ? "gpus_per_node" : opt, buf);
}

int slurmrest_job_json(const struct hp_jobspec *spec, const struct hp_site *site,
                       const char *script, json_t **out, struct hp_err *err)
{
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    const struct hp_partition *part = spec->partition ? hp_site_partition(site, spec->partition)
                                                      : NULL;
    const char *qos = part && part->qos ? part->qos : site->qos;
    *out = NULL;
    if (site->directives && site->directives[0])
        return hp_err_set(err, HP_EINPUT, "scheduler.directives ('%s') are sbatch options, "
                          "which slurmrestd does not read: remove them from the profile of "
                          "site '%s' or use scheduler type slurm", site->directives[0],
                          site->name);
    json_t *job = json_object();
    char *name = slurm_job_name(spec);   /* carries the token, as with sbatch */
    set_str(job, "name", name);
    free(name);
    set_str(job, "comment", spec->token);
    if (spec->partition && (!part || part->pass_name))
        set_str(job, "partition", spec->partition);
    set_str(job, "account", site->account);
    set_str(job, "qos", qos);
    set_str(job, "constraints", site->constraint);
    json_object_set_new(job, "nodes", json_pack("[i, i]", nodes, nodes));
    json_object_set_new(job, "tasks", json_integer(ntasks));
    if (spec->res.cores > 1)
        json_object_set_new(job, "cpus_per_task", json_integer(spec->res.cores));
    if (spec->res.memory_mb > 0 && !site->no_memory_request)
        json_object_set_new(job, "memory_per_node", json_integer(spec->res.memory_mb));
    if (spec->res.gpus > 0)
        gpus(job, spec, site, nodes);
    if (spec->res.walltime > 0)
        json_object_set_new(job, "time_limit", json_integer((spec->res.walltime + 59) / 60));
    if (spec->stdout_path)
        json_object_set_new(job, "standard_output", pattern(spec->stdout_path));
    if (spec->stderr_path)
        json_object_set_new(job, "standard_error", pattern(spec->stderr_path));
    set_str(job, "current_working_directory", spec->workdir);
    /* sbatch passes the login environment on; slurmrestd wants one (the
     * script exports the workflow's variables itself) */
    json_t *env = json_object();
    json_object_set_new(env, "PATH", json_string("/usr/local/bin:/usr/bin:/bin"));
    set_str(env, "HPCPORT_CAMPAIGN", spec->campaign);
    set_str(env, "HPCPORT_INSTANCE", spec->instance);
    set_str(env, "HPCPORT_TOKEN", spec->token);
    json_object_set_new(job, "environment", env);
    *out = json_pack("{s:s, s:o}", "script", script, "job", job);
    return 0;
}

size_t slurmrest_errors(const json_t *root, struct hp_buf *msg, long *num)
{
    const json_t *errs = json_object_get(root, "errors"), *e;
    size_t i, n = 0;
    *num = 0;
    json_array_foreach(errs, i, e) {
        const char *t = json_string_value(json_object_get(e, "error"));
        const char *d = json_string_value(json_object_get(e, "description"));
        json_t *no = json_object_get(e, "error_number");   /* the keys vary by endpoint */
        if (!no)
            no = json_object_get(e, "error_code");
        if (!no)
            no = json_object_get(e, "errno");
        if (!n && json_is_integer(no))
            *num = (long)json_integer_value(no);
        if (!t && !d)
            continue;
        if (n++)
            hp_buf_adds(msg, "; ");
        if (t && d && strcmp(t, d))
            hp_buf_addf(msg, "%s (%s)", d, t);
        else
            hp_buf_adds(msg, d ? d : t);
    }
    return n;
}

char *slurmrest_scontrol_token(const char *out)
{
    const char *p = out ? strstr(out, "SLURM_JWT=") : NULL;
    if (!p)
        return NULL;
    p += 10;
    size_t n = strcspn(p, " \t\r\n");
    return n ? hp_xstrndup(p, n) : NULL;
}
