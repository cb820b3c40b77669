/* bench-submit.c - N submissions through the Slurm adapter over one
 * connection, then one scancel of them all. Run by bench-submit.sh, which
 * sets up the site profiles (an SSH one and a local-transport one of the
 * same cluster) and compares them.
 *
 *   bench-submit SITE N
 *
 * Prints one line of key=value figures:
 *   rtt_ms     a no-op command (`true`) over the connection, mean of N/10
 *   stdin_rtt_ms  the same for `cat` with 1 KiB on its stdin
 *   submit_ms  one submission (render + `sbatch --parsable` with the script
 *              on stdin), mean over N, after a first one that is not counted
 *              (it also lists the user's jobs for the idempotency check)
 *   jobs_s     submissions per second
 *   cancel_s   seconds to scancel all N (one command per 500 ids)
 * The site's directives should hold the jobs (--hold), so that none runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "adapter.h"
#include "buf.h"
#include "conn.h"
#include "site.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-submit SITE N\n");
        return 2;
    }
    long n = atol(argv[2]);
    struct hp_err err;
    hp_err_init(&err);
    struct hp_site_opts so = { 0 };
    struct hp_site *site = hp_site_load(argv[1], &so, &err);
    if (!site) {
        fprintf(stderr, "bench-submit: %s\n", err.msg);
        return 1;
    }
    const struct hp_adapter_ops *ad = hp_adapter_find("slurm");
    void *impl = ad->open(site, &err);
    if (!impl) {
        fprintf(stderr, "bench-submit: %s\n", err.msg);
        return 1;
    }
    /* a round trip on a connection of its own, for the transport's share */
    struct hp_conn *c = hp_conn_open(site, &err);
    if (!c) {
        fprintf(stderr, "bench-submit: %s\n", err.msg);
        return 1;
    }
    const char *t[] = { "true", NULL };
    int st;
    hp_conn_exec(c, t, NULL, 0, NULL, NULL, &st, 30, &err);
    long nr = n / 10 > 10 ? n / 10 : 10;
    double r0 = hp_now();
    for (long i = 0; i < nr; i++) {
        if (hp_conn_exec(c, t, NULL, 0, NULL, NULL, &st, 30, &err) < 0) {
            fprintf(stderr, "bench-submit: %s\n", err.msg);
            return 1;
        }
    }
    double rtt = (hp_now() - r0) / (double)nr;
    /* the same with 1 KiB on stdin (sbatch reads the script from it) */
    const char *cat[] = { "cat", NULL };
    char in[1024];
    memset(in, '#', sizeof(in));
    double i0 = hp_now();
    for (long i = 0; i < nr; i++) {
        if (hp_conn_exec(c, cat, in, sizeof(in), NULL, NULL, &st, 30, &err) < 0) {
            fprintf(stderr, "bench-submit: %s\n", err.msg);
            return 1;
        }
    }
    double rtt_in = (hp_now() - i0) / (double)nr;

    static const char *const argvj[] = { "true", NULL };
    char **ids = hp_xcalloc((size_t)n + 1, sizeof(*ids));
    double s0 = 0;
    /* tokens unique to this run (a token seen before is adopted, not sent) */
    unsigned long nonce = ((unsigned long)getpid() * 2654435761UL ^ (unsigned long)hp_wall_now()) &
                          0xffffffffUL;
    for (long i = 0; i <= n; i++) {
        char tok[64], name[64];
        snprintf(tok, sizeof(tok), "hp%016lx.1-%08lx", (unsigned long)(i + 1), nonce);
        snprintf(name, sizeof(name), "bench.submit");
        struct hp_jobspec spec = {
            .campaign = "bench", .instance = "t", .job_name = name, .token = tok,
            .attempt = 1, .argv = argvj, .res = { .nodes = 1, .ntasks = 1, .cores = 1,
                                                  .walltime = 60 },
            .workdir = "/tmp", .stdout_path = "/dev/null", .stderr_path = "/dev/null",
        };
        if (i == 1)
            s0 = hp_now();   /* the first also lists the user's jobs: not counted */
        char *id = NULL;
        int rc = ad->submit(impl, &spec, &id, &err);
        if (rc != 0) {
            fprintf(stderr, "bench-submit: submission %ld: %s\n", i, err.msg);
            return 1;
        }
        ids[i] = id;
    }
    double sub = (hp_now() - s0) / (double)n;

    double c0 = hp_now();
    for (long i = 0; i <= n; i += 500) {
        const char *argvc[503];
        size_t a = 0;
        argvc[a++] = "scancel";
        for (long k = i; k <= n && k < i + 500; k++)
            argvc[a++] = ids[k];
        argvc[a] = NULL;
        struct hp_buf eo = HP_BUF_INIT;
        if (hp_conn_exec(c, argvc, NULL, 0, NULL, &eo, &st, 120, &err) < 0 || st != 0) {
            fprintf(stderr, "bench-submit: scancel: %s%s\n", err.msg, eo.buf);
            return 1;
        }
        hp_buf_release(&eo);
    }
    double cancel = hp_now() - c0;
    printf("site=%s transport=%s n=%ld rtt_ms=%.3f stdin_rtt_ms=%.3f submit_ms=%.3f jobs_s=%.1f "
           "cancel_s=%.2f\n", site->name, c->ops->name, n, rtt * 1e3, rtt_in * 1e3, sub * 1e3,
           1.0 / sub, cancel);
    for (long i = 0; i <= n; i++)
        free(ids[i]);
    free(ids);
    hp_conn_free(c);
    ad->close(impl);
    hp_site_free(site);
    return 0;
}
