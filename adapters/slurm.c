/* slurm.c - the Slurm adapter: sbatch scripts. Submission over a connection
 * comes with the SSH transport; render is pure and used by `hpcport plan`. */
#include <stdio.h>
#include <string.h>
#include "adapter.h"
#include "script.h"
#include "quote.h"
#include "util.h"
#include "banned.h"

/* #SBATCH lines are parsed by sbatch, not by a shell: values must stay on
 * one line; values with blanks are double-quoted (sbatch honours that). */
static void directive(struct hp_buf *out, const char *opt, const char *val)
{
    hp_buf_addf(out, "#SBATCH --%s=", opt);
    int blank = strpbrk(val, " \t") != NULL;
    if (blank)
        hp_buf_addch(out, '"');
    for (const char *p = val; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != '"')
            hp_buf_addch(out, *p);
    if (blank)
        hp_buf_addch(out, '"');
    hp_buf_addch(out, '\n');
}

static int check_line(const char *what, const char *v, struct hp_err *err)
{
    if (v && strpbrk(v, "\n\r"))
        return hp_err_set(err, HP_EINPUT, "%s '%s' contains a line break", what, v);
    return 0;
}

static int slurm_render(const struct hp_jobspec *spec, const struct hp_site *site,
                        struct hp_buf *out, struct hp_err *err)
{
    char buf[64];
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;

    if (check_line("partition", spec->partition, err) ||
        check_line("account", site->account, err) || check_line("qos", site->qos, err) ||
        check_line("constraint", site->constraint, err) ||
        check_line("gpu type", spec->res.gpu_type, err))
        return -1;
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        if (check_line("directive", site->directives[i], err))
            return -1;

    hp_buf_adds(out, "#!/bin/bash\n");
    directive(out, "job-name", spec->job_name);
    directive(out, "comment", spec->token);   /* finds the job again after a crash */
    if (spec->partition)
        directive(out, "partition", spec->partition);
    if (site->account)
        directive(out, "account", site->account);
    if (site->qos)
        directive(out, "qos", site->qos);
    if (site->constraint)
        directive(out, "constraint", site->constraint);
    snprintf(buf, sizeof(buf), "%d", nodes);
    directive(out, "nodes", buf);
    snprintf(buf, sizeof(buf), "%d", ntasks);
    directive(out, "ntasks", buf);
    if (spec->res.cores > 1) {
        snprintf(buf, sizeof(buf), "%d", spec->res.cores);
        directive(out, "cpus-per-task", buf);
    }
    if (spec->res.memory_mb > 0) {
        snprintf(buf, sizeof(buf), "%lldM", (long long)spec->res.memory_mb);
        directive(out, "mem", buf);
    }
    if (spec->res.gpus > 0) {
        if (spec->res.gpu_type)
            snprintf(buf, sizeof(buf), "%.40s:%d", spec->res.gpu_type, spec->res.gpus);
        else
            snprintf(buf, sizeof(buf), "%d", spec->res.gpus);
        directive(out, "gpus-per-node", buf);
    }
    if (spec->res.walltime > 0) {
        hp_format_duration(spec->res.walltime, buf, sizeof(buf));
        directive(out, "time", buf);
    }
    directive(out, "output", spec->stdout_path);
    directive(out, "error", spec->stderr_path);
    for (size_t i = 0; site->directives && site->directives[i]; i++)
        hp_buf_addf(out, "#SBATCH %s\n", site->directives[i]);
    hp_script_comment(spec, out);
    int launcher = ntasks > 1 || nodes > 1;
    hp_script_body(spec, site, launcher, 0, out);
    return 0;
}

const struct hp_adapter_ops hp_adapter_slurm = {
    .name = "slurm",
    .render = slurm_render,
};
