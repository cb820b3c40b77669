/* compare-drift: runs the CPU and the CUDA drift libraries through the
 * function ABI on the same requests and checks that they agree, as TAP.
 *
 * Usage: compare-drift PROBE CPU_LIB CUDA_LIB [N]
 * PROBE is cuda-probe: when it finds no GPU, the whole test is skipped
 * ("1..0 # SKIP no GPU"), never passed. Tolerance: every output value
 * within 1e-6 * max(1, |cpu value|) of the CPU's (the same double-precision
 * code on both; libm and CUDA's log/sin/cos/exp differ by an ulp or two in
 * double, so float results agree to about one ulp); the number of
 * bit-identical values is printed. */
#include "drift-util.h"

#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int tap_n, tap_failed;

static void ok(int cond, const char *fmt, const char *what)
{
    printf("%sok %d - %s%s\n", cond ? "" : "not ", ++tap_n, fmt, what);
    tap_failed += !cond;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int gpu_present(const char *probe)
{
    pid_t pid;
    char *argv[] = {(char *)probe, NULL};
    posix_spawn_file_actions_t fa;   /* its output is not TAP: to stderr */
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    int rc = posix_spawn(&pid, probe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return 0;
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Calls both; compares. Returns the number of mismatches (-1: a call failed). */
static long compare(struct fn_lib *cpu, struct fn_lib *gpu, const struct drift_request *r,
                    double *t_cpu, double *t_gpu, size_t *identical)
{
    size_t len, lc, lg;
    void *in = drift_request_build(r, &len), *oc = NULL, *og = NULL;
    char err[512];
    long bad = -1;
    if (!in)
        return -1;
    double t0 = now();
    if (fn_call(cpu, in, len, &oc, &lc, err, sizeof err) != 0) {
        printf("# CPU: %s\n", err);
        goto out;
    }
    double t1 = now();
    if (fn_call(gpu, in, len, &og, &lg, err, sizeof err) != 0) {
        printf("# CUDA: %s\n", err);
        goto out;
    }
    *t_cpu = t1 - t0;
    *t_gpu = now() - t1;
    if (lc != lg || memcmp(oc, og, sizeof(struct hp_drift_out)) != 0) {
        printf("# output sizes or headers differ: %zu vs %zu bytes\n", lc, lg);
        goto out;
    }
    bad = 0;
    *identical = 0;
    static const char *names[] = {"x", "y", "t", "q"};
    for (int k = 0; k < 4; k++) {
        const float *a = drift_array(oc, 1, r->n, k), *b = drift_array(og, 1, r->n, k);
        for (uint32_t i = 0; i < r->n; i++) {
            if (memcmp(&a[i], &b[i], sizeof(float)) == 0) {
                ++*identical;
                continue;
            }
            if (!(fabs((double)a[i] - b[i]) <= 1e-6 * fmax(1.0, fabs((double)a[i])))) {
                if (bad < 5)
                    printf("# charge %u %s: CPU %.9g, CUDA %.9g\n", i, names[k], (double)a[i],
                           (double)b[i]);
                bad++;
            }
        }
    }
out:
    free(in);
    free(oc);
    free(og);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: compare-drift PROBE CPU_LIB CUDA_LIB [N]\n");
        return 2;
    }
    if (!gpu_present(argv[1])) {
        printf("1..0 # SKIP no GPU\n");
        return 0;
    }
    uint32_t n = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 1u << 20;
    struct fn_lib cpu, gpu;
    char err[512];
    printf("1..6\n");
    int have_cpu = fn_open(&cpu, argv[2], "hp_function_drift", NULL, err, sizeof err) == 0;
    if (!have_cpu)
        printf("# %s\n", err);
    ok(have_cpu, "CPU library loads", "");
    int have_gpu = fn_open(&gpu, argv[3], "hp_function_drift", "capacity=65536", err,
                           sizeof err) == 0;
    if (!have_gpu)
        printf("# %s\n", err);
    ok(have_gpu, "CUDA library loads, init creates the context", "");
    if (!have_cpu || !have_gpu) {
        for (int i = tap_n; i < 6; i++)
            ok(0, "skipped after a load failure", "");
        fn_close(&cpu);
        fn_close(&gpu);
        return 1;
    }
    struct drift_request r;
    char what[128];
    double tc, tg;
    size_t same;
    /* larger than the init capacity: the device buffers grow */
    drift_request_defaults(&r, n);
    r.lifetime = 3000.0;
    long bad = compare(&cpu, &gpu, &r, &tc, &tg, &same);
    snprintf(what, sizeof what, " (%u charges; %zu of %zu values bit-identical; CPU %.1f ms, "
             "CUDA %.1f ms with copies)", n, same, (size_t)n * 4, tc * 1e3, tg * 1e3);
    ok(bad == 0, "CUDA agrees with CPU within 1e-6 relative", what);
    /* a batch that starts further on, another seed, no diffusion */
    drift_request_defaults(&r, 1000);
    r.first = 123456789012ull;
    r.seed = 42;
    bad = compare(&cpu, &gpu, &r, &tc, &tg, &same);
    ok(bad == 0, "agreement with first = 123456789012, seed 42", "");
    r.diff_long = r.diff_trans = 0;
    bad = compare(&cpu, &gpu, &r, &tc, &tg, &same);
    ok(bad == 0 && same == (size_t)r.n * 4, "without diffusion both give identical bits", "");
    /* bad input: both refuse it with the same message */
    size_t len, lc, lg;
    void *in = drift_request_build(&r, &len), *oc, *og;
    char errc[512] = "", errg[512] = "";
    int rc1 = in ? fn_call(&cpu, in, len - 4, &oc, &lc, errc, sizeof errc) : 0;
    int rc2 = in ? fn_call(&gpu, in, len - 4, &og, &lg, errg, sizeof errg) : 0;
    printf("# CPU: %s\n# CUDA: %s\n", errc, errg);
    ok(rc1 != 0 && rc2 != 0 && strcmp(errc, errg) == 0, "a truncated request fails on both", "");
    free(in);
    fn_close(&cpu);
    fn_close(&gpu);
    return tap_failed != 0;
}
