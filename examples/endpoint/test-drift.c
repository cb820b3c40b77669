/* test-drift: the CPU drift library (libdrift.so, loaded through the
 * function ABI as an endpoint worker loads it) against direct reference
 * computations: Philox known answers, charge conservation, mean drift time =
 * distance / velocity, diffusion spreads, attachment, batch splitting, bad
 * input; and the noop/echo functions.
 * Usage: test-drift LIBDRIFT (cmocka, TAP with CMOCKA_MESSAGE_OUTPUT=TAP) */
#include "drift-util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <cmocka.h>

static const char *lib_path;

struct result {
    struct drift_request r;
    void *in, *out;
    size_t inlen, outlen;
};

static int setup(void **state)
{
    struct fn_lib *lib = calloc(1, sizeof *lib);
    char err[256];
    assert_non_null(lib);
    if (fn_open(lib, lib_path, "hp_function_drift", NULL, err, sizeof err) != 0) {
        print_error("%s\n", err);
        fn_close(lib);
        free(lib);
        return -1;
    }
    *state = lib;
    return 0;
}

static int teardown(void **state)
{
    fn_close(*state);
    free(*state);
    return 0;
}

static void run(struct fn_lib *lib, struct result *res)
{
    char err[256];
    res->in = drift_request_build(&res->r, &res->inlen);
    assert_non_null(res->in);
    int rc = fn_call(lib, res->in, res->inlen, &res->out, &res->outlen, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(res->outlen, sizeof(struct hp_drift_out) + (size_t)res->r.n * 16);
    assert_memory_equal(res->out, HP_DRIFT_OUT_MAGIC, 8);
}

static void release(struct result *res)
{
    free(res->in);
    free(res->out);
}

/* Random123's known-answer vectors for Philox4x32-10 (tests/kat_vectors). */
static void test_philox_kat(void **state)
{
    (void)state;
    static const uint32_t v[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        uint32_t c[4] = {v[t][0], v[t][1], v[t][2], v[t][3]};
        hp_philox4x32_10(c, v[t][4], v[t][5]);
        for (int k = 0; k < 4; k++)
            assert_int_equal(c[k], v[t][6 + k]);
    }
}

/* mean and variance of (a - mu_i) / sigma_i over n values */
static void standardised(const float *a, const float *z, uint32_t n, double (*mu)(double, void *),
                         double (*sigma)(double, void *), void *ctx, const float *a0, double *mean,
                         double *var)
{
    double s = 0, s2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        double base = a0 ? a0[i] : 0;
        double u = ((double)a[i] - base - mu(z[i], ctx)) / sigma(z[i], ctx);
        s += u;
        s2 += u * u;
    }
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
}

static double mu_t(double z, void *c) { return z / ((struct drift_request *)c)->velocity; }
static double mu_0(double z, void *c) { (void)z, (void)c; return 0; }
static double sigma_t(double z, void *c)
{
    struct drift_request *r = c;
    return sqrt(2 * r->diff_long * z / r->velocity) / r->velocity;
}
static double sigma_xy(double z, void *c)
{
    struct drift_request *r = c;
    return sqrt(2 * r->diff_trans * z / r->velocity);
}

/* 200,000 charges at random depths: the arrival-time and position residuals,
 * scaled by their expected spreads, are standard normal (mean 0 within 5
 * standard errors, variance 1 within 5 of its standard errors); charge is
 * conserved exactly without attachment. */
static void test_physics(void **state)
{
    struct result res = {0};
    uint32_t n = 200000;
    drift_request_defaults(&res.r, n);
    run(*state, &res);
    const float *z = drift_array(res.in, 0, n, 2);
    double tol_mean = 5 / sqrt(n), tol_var = 5 * sqrt(2.0 / n), m, v;
    standardised(drift_array(res.out, 1, n, 2), z, n, mu_t, sigma_t, &res.r, NULL, &m, &v);
    assert_true(fabs(m) < tol_mean && fabs(v - 1) < tol_var);
    standardised(drift_array(res.out, 1, n, 0), z, n, mu_0, sigma_xy, &res.r,
                 drift_array(res.in, 0, n, 0), &m, &v);
    assert_true(fabs(m) < tol_mean && fabs(v - 1) < tol_var);
    standardised(drift_array(res.out, 1, n, 1), z, n, mu_0, sigma_xy, &res.r,
                 drift_array(res.in, 0, n, 1), &m, &v);
    assert_true(fabs(m) < tol_mean && fabs(v - 1) < tol_var);
    /* mean drift time = mean distance / velocity */
    double st = 0, sz = 0, qin = 0, qout = 0;
    const float *t = drift_array(res.out, 1, n, 2);
    for (uint32_t i = 0; i < n; i++) {
        st += t[i];
        sz += z[i];
        qin += drift_array(res.in, 0, n, 3)[i];
        qout += drift_array(res.out, 1, n, 3)[i];
    }
    /* 5 standard errors of the largest spread (0.39 us at 500 mm) */
    assert_true(fabs(st / n - sz / n / res.r.velocity) < 5 * 0.39 / sqrt(n));
    assert_true(qin == qout);
    assert_memory_equal(drift_array(res.in, 0, n, 3), drift_array(res.out, 1, n, 3),
                        (size_t)n * sizeof(float));
    release(&res);
}

/* All at one depth: the spreads themselves, within 2 %. */
static void test_spread(void **state)
{
    struct result res = {0};
    uint32_t n = 100000;
    drift_request_defaults(&res.r, n);
    res.r.fixed_depth = 1;
    res.r.depth = 400;
    run(*state, &res);
    double t0 = 400 / res.r.velocity, s = 0, s2 = 0, x2 = 0;
    const float *t = drift_array(res.out, 1, n, 2), *x = drift_array(res.out, 1, n, 0),
                *x0 = drift_array(res.in, 0, n, 0);
    for (uint32_t i = 0; i < n; i++) {
        s += t[i];
        s2 += (double)t[i] * t[i];
        x2 += ((double)x[i] - x0[i]) * ((double)x[i] - x0[i]);
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    assert_true(fabs(mean - t0) < 5 * sqrt(2 * res.r.diff_long * t0) / res.r.velocity / sqrt(n));
    assert_true(fabs(sd / (sqrt(2 * res.r.diff_long * t0) / res.r.velocity) - 1) < 0.02);
    assert_true(fabs(sqrt(x2 / n) / sqrt(2 * res.r.diff_trans * t0) - 1) < 0.02);
    release(&res);
}

/* No diffusion: t = z / v and x, y unchanged, exactly; attachment scales q
 * by exp(-t0 / tau). */
static void test_no_diffusion_attachment(void **state)
{
    struct result res = {0};
    uint32_t n = 10000;
    drift_request_defaults(&res.r, n);
    res.r.diff_long = res.r.diff_trans = 0;
    res.r.lifetime = 3000;
    run(*state, &res);
    const float *z = drift_array(res.in, 0, n, 2), *q = drift_array(res.in, 0, n, 3);
    for (uint32_t i = 0; i < n; i++) {
        double t0 = (double)z[i] / res.r.velocity;
        assert_true(drift_array(res.out, 1, n, 2)[i] == (float)t0);
        assert_true(drift_array(res.out, 1, n, 0)[i] == drift_array(res.in, 0, n, 0)[i]);
        assert_true(drift_array(res.out, 1, n, 1)[i] == drift_array(res.in, 0, n, 1)[i]);
        double want = q[i] * exp(-t0 / 3000);
        assert_true(fabs(drift_array(res.out, 1, n, 3)[i] - want) <= 1e-6 * want);
    }
    release(&res);
}

/* Charge i's random numbers depend on first + i and the seed only: a batch
 * split in two with `first` gives the same bits; another seed does not. */
static void test_batches_and_seed(void **state)
{
    struct result all = {0}, tail = {0}, other = {0};
    uint32_t n = 5000, k = 1234;
    drift_request_defaults(&all.r, n);
    run(*state, &all);
    /* the tail: the same charges k..n-1, built by hand */
    tail.r = all.r;
    tail.r.n = n - k;
    tail.r.first = k;
    tail.in = drift_request_build(&tail.r, &tail.inlen);
    assert_non_null(tail.in);
    for (int a = 0; a < 4; a++)
        memcpy((float *)drift_array(tail.in, 0, n - k, a), drift_array(all.in, 0, n, a) + k,
               (size_t)(n - k) * sizeof(float));
    char err[256];
    assert_int_equal(fn_call(*state, tail.in, tail.inlen, &tail.out, &tail.outlen, err,
                             sizeof err), 0);
    for (int a = 0; a < 4; a++)
        assert_memory_equal(drift_array(tail.out, 1, n - k, a), drift_array(all.out, 1, n, a) + k,
                            (size_t)(n - k) * sizeof(float));
    other.r = all.r;
    other.r.seed++;
    run(*state, &other);
    assert_memory_not_equal(drift_array(other.out, 1, n, 2), drift_array(all.out, 1, n, 2),
                            (size_t)n * sizeof(float));
    release(&all);
    release(&tail);
    release(&other);
}

static void expect_refused(struct fn_lib *lib, const void *in, size_t len, const char *msg)
{
    void *out;
    size_t outlen;
    char err[256];
    assert_int_not_equal(fn_call(lib, in, len, &out, &outlen, err, sizeof err), 0);
    assert_null(out);
    if (!strstr(err, msg))
        print_error("message: %s\n", err);
    assert_non_null(strstr(err, msg));
}

static void test_bad_input(void **state)
{
    struct drift_request r;
    size_t len;
    drift_request_defaults(&r, 10);
    char *in = drift_request_build(&r, &len);
    assert_non_null(in);
    expect_refused(*state, in, 10, "shorter than its 64-byte header");
    expect_refused(*state, in, len - 1, "header says 10 charges");
    struct hp_drift_in h;
    memcpy(&h, in, sizeof h);
    h.n = 0xffffffffu;
    memcpy(in, &h, sizeof h);
    expect_refused(*state, in, len, "header says 4294967295 charges");
    h.n = 10;
    h.velocity = -1;
    memcpy(in, &h, sizeof h);
    expect_refused(*state, in, len, "velocity -1 must be > 0");
    h.velocity = 1.6;
    h.diff_long = NAN;
    memcpy(in, &h, sizeof h);
    expect_refused(*state, in, len, "bad parameters");
    h.diff_long = 0;
    memcpy(in, &h, sizeof h);
    ((float *)(in + sizeof h))[2 * 10 + 3] = -2.5f;
    expect_refused(*state, in, len, "charge 3 has z = -2.5");
    memcpy(in, "NOTDRIFT", 8);
    expect_refused(*state, in, len, "not a drift request");
    free(in);
}

static void test_noop_echo(void **state)
{
    (void)state;
    struct fn_lib noop, echo;
    char err[256];
    void *out;
    size_t outlen;
    assert_int_equal(fn_open(&noop, lib_path, "hp_function_noop", NULL, err, sizeof err), 0);
    assert_int_equal(fn_call(&noop, "abc", 3, &out, &outlen, err, sizeof err), 0);
    assert_null(out);
    assert_int_equal(outlen, 0);
    fn_close(&noop);
    assert_int_equal(fn_open(&echo, lib_path, "hp_function_echo", NULL, err, sizeof err), 0);
    assert_int_equal(fn_call(&echo, "abc", 3, &out, &outlen, err, sizeof err), 0);
    assert_int_equal(outlen, 3);
    assert_memory_equal(out, "abc", 3);
    free(out);
    fn_close(&echo);
    assert_int_not_equal(fn_open(&echo, lib_path, "hp_function_nothere", NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "has no symbol hp_function_nothere"));
    fn_close(&echo);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-drift LIBDRIFT\n");
        return 2;
    }
    lib_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_physics),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_no_diffusion_attachment),
        cmocka_unit_test(test_batches_and_seed),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_noop_echo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
