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

static void container_prefix(const struct hp_jobspec *spec, const struct hp_site *site,
                             struct hp_buf *out)
{
    const char *rt = site->container_runtime;
    if (!spec->container || !rt || !strcmp(rt, "none"))
        return;
    int gpu = spec->res.gpus > 0;
    if (!strcmp(rt, "apptainer") || !strcmp(rt, "singularity")) {
        hp_buf_adds(out, rt);
        hp_buf_adds(out, " exec");
        if (gpu)
            hp_buf_adds(out, " --nv");
        word(out, spec->container);
    } else if (!strcmp(rt, "podman-hpc")) {
        hp_buf_adds(out, "podman-hpc run --rm");
        if (gpu)
            hp_buf_adds(out, " --gpu");
        hp_buf_adds(out, " -v \"$PWD:$PWD\" -w \"$PWD\"");
        word(out, spec->container);
    } else if (!strcmp(rt, "shifter")) {
        hp_buf_adds(out, "shifter ");
        struct hp_buf img = HP_BUF_INIT;
        hp_buf_addf(&img, "--image=%s", spec->container);
        hp_sq_quote(out, img.buf);
        hp_buf_release(&img);
    } else if (!strcmp(rt, "enroot")) {
        hp_buf_adds(out, "enroot start");
        word(out, spec->container);
    } else { /* docker, podman */
        hp_buf_adds(out, rt);
        hp_buf_adds(out, " run --rm");
        if (gpu)
            hp_buf_adds(out, " --gpus all");
        hp_buf_adds(out, " -v \"$PWD:$PWD\" -w \"$PWD\"");
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
