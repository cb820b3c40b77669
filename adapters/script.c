#include <string.h>
#include "script.h"
#include "quote.h"
#include "banned.h"

static void word(struct hp_buf *out, const char *w)
{
    if (out->len && out->buf[out->len - 1] != ' ' && out->buf[out->len - 1] != '\n')
        hp_buf_addch(out, ' ');
    hp_sq_quote(out, w);
}

/* The runtime's option for a GPU task: the site's container.gpu_options when
 * the profile states them (AMD and Intel GPU nodes need other options than
 * NVIDIA's --nv, or none), else the runtime's usual one. Site values are
 * quoted where a shell would read them otherwise. */
static void gpu_options(const struct hp_jobspec *spec, const struct hp_site *site,
                        const char *usual, struct hp_buf *out)
{
    if (spec->res.gpus <= 0)
        return;
    if (!site->container_gpu_options_set) {
        if (usual)
            hp_buf_addf(out, " %s", usual);
        return;
    }
    for (size_t i = 0; site->container_gpu_options && site->container_gpu_options[i]; i++) {
        hp_buf_addch(out, ' ');
        hp_sq_quote_pretty(out, site->container_gpu_options[i]);
    }
}

/* container.binds in the runtime's words: " OPT PATH", or " OPT PATH:PATH"
 * with twice, each path quoted with its $VARIABLES kept. */
static void binds(const struct hp_site *site, const char *opt, int twice, struct hp_buf *out)
{
    for (size_t i = 0; site->container_binds && site->container_binds[i]; i++) {
        hp_buf_addf(out, " %s ", opt);
        hp_sq_quote_path(out, site->container_binds[i]);
        if (twice) {
            hp_buf_addch(out, ':');
            hp_sq_quote_path(out, site->container_binds[i]);
        }
    }
}

static void container_prefix(const struct hp_jobspec *spec, const struct hp_site *site,
                             struct hp_buf *out)
{
    const char *rt = site->container_runtime;
    if (!spec->container || !rt || !strcmp(rt, "none"))
        return;
    if (!strcmp(rt, "apptainer") || !strcmp(rt, "singularity")) {
        hp_buf_adds(out, rt);
        hp_buf_adds(out, " exec");
        gpu_options(spec, site, "--nv", out);
        binds(site, "--bind", 0, out);
        word(out, spec->container);
    } else if (!strcmp(rt, "podman-hpc")) {
        hp_buf_adds(out, "podman-hpc run --rm");
        gpu_options(spec, site, "--gpu", out);
        hp_buf_adds(out, " -v \"$PWD:$PWD\" -w \"$PWD\"");
        binds(site, "-v", 1, out);
        word(out, spec->container);
    } else if (!strcmp(rt, "shifter")) {
        hp_buf_adds(out, "shifter");
        gpu_options(spec, site, NULL, out);
        binds(site, "--volume", 1, out);
        hp_buf_addch(out, ' ');
        struct hp_buf img = HP_BUF_INIT;
        hp_buf_addf(&img, "--image=%s", spec->container);
        hp_sq_quote(out, img.buf);
        hp_buf_release(&img);
    } else if (!strcmp(rt, "enroot")) {
        hp_buf_adds(out, "enroot start");
        gpu_options(spec, site, NULL, out);
        binds(site, "--mount", 1, out);
        word(out, spec->container);
    } else { /* docker, podman */
        hp_buf_adds(out, rt);
        hp_buf_adds(out, " run --rm");
        gpu_options(spec, site, "--gpus all", out);
        hp_buf_adds(out, " -v \"$PWD:$PWD\" -w \"$PWD\"");
        binds(site, "-v", 1, out);
        for (size_t i = 0; i < spec->nenv; i++) {
            struct hp_buf e = HP_BUF_INIT;
            hp_buf_addf(&e, "%s=%s", spec->env[i].key, spec->env[i].value);
            hp_buf_adds(out, " -e ");
            hp_sq_quote(out, e.buf);
            hp_buf_release(&e);
        }
        word(out, spec->container);
    }
    hp_buf_addch(out, ' ');
}

static void launcher_prefix(const struct hp_jobspec *spec, const struct hp_site *site,
                            struct hp_buf *out)
{
    const char *l = site->launcher;
    int ntasks = spec->res.ntasks > 0 ? spec->res.ntasks : 1;
    int nodes = spec->res.nodes > 0 ? spec->res.nodes : 1;
    if (!l || !strcmp(l, "none"))
        return;
    if (!strcmp(l, "srun")) {
        hp_buf_addf(out, "srun --nodes=%d --ntasks=%d", nodes, ntasks);
        if (spec->res.cores > 1)
            hp_buf_addf(out, " --cpus-per-task=%d", spec->res.cores);
        hp_buf_addch(out, ' ');
    } else if (!strcmp(l, "ibrun")) {
        /* ibrun takes the task layout from the job's own -N/-n */
        hp_buf_adds(out, "ibrun ");
    } else if (!strcmp(l, "aprun")) {
        hp_buf_addf(out, "aprun -n %d", ntasks);
        if (spec->res.cores > 1)
            hp_buf_addf(out, " -d %d", spec->res.cores);
        hp_buf_addch(out, ' ');
    } else { /* mpiexec, mpirun */
        hp_buf_adds(out, l);
        hp_buf_addf(out, " -n %d ", ntasks);
    }
}

void hp_script_command(const struct hp_jobspec *spec, const struct hp_site *site,
                       int use_launcher, struct hp_buf *out)
{
    if (use_launcher)
        launcher_prefix(spec, site, out);
    container_prefix(spec, site, out);
    if (spec->argv) {
        hp_sq_quote_argv(out, spec->argv);
    } else {
        hp_buf_adds(out, "/bin/sh -c ");
        hp_sq_quote(out, spec->shell ? spec->shell : "");
    }
}

void hp_script_body(const struct hp_jobspec *spec, const struct hp_site *site,
                    int use_launcher, int redirect, struct hp_buf *out)
{
    for (size_t i = 0; site->setup && site->setup[i]; i++)
        hp_buf_addf(out, "%s\n", site->setup[i]);
    for (size_t i = 0; site->modules && site->modules[i]; i++) {
        hp_buf_adds(out, "module load ");
        hp_sq_quote(out, site->modules[i]);
        hp_buf_addch(out, '\n');
    }
    for (size_t i = 0; i < spec->nenv; i++) {
        hp_buf_addf(out, "export %s=", spec->env[i].key);  /* names are schema-checked */
        hp_sq_quote(out, spec->env[i].value);
        hp_buf_addch(out, '\n');
    }
    if (spec->workdir) {
        hp_buf_adds(out, "cd ");
        hp_sq_quote_path(out, spec->workdir);
        hp_buf_adds(out, " || exit 1\n");
    }
    hp_buf_adds(out, "exec ");
    hp_script_command(spec, site, use_launcher, out);
    if (redirect) {
        hp_buf_adds(out, " >");
        hp_sq_quote_path(out, spec->stdout_path);
        hp_buf_adds(out, " 2>");
        hp_sq_quote_path(out, spec->stderr_path);
    }
    hp_buf_addch(out, '\n');
}

static void comment_value(struct hp_buf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            hp_buf_addf(out, "\\x%02x", *p);
        else
            hp_buf_addch(out, *p);
    }
}

void hp_script_comment(const struct hp_jobspec *spec, struct hp_buf *out)
{
    hp_buf_adds(out, "# hpcport: campaign ");
    comment_value(out, spec->campaign);
    hp_buf_adds(out, ", instance ");
    comment_value(out, spec->instance);
    hp_buf_addf(out, ", attempt %d\n", spec->attempt);
}
