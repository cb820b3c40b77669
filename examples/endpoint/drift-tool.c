/* drift-tool: make drift requests, summarise responses, and run a function
 * library locally through the ABI (what an endpoint worker does).
 *
 *   drift-tool gen [-n N] [-s SEED] [-f FIRST] [-v VEL] [-l D_L] [-t D_T] [-L TAU] [-d DEPTH] > in.bin
 *   drift-tool summary FILE          (a request or a response)
 *   drift-tool run LIB [SYMBOL] < in.bin > out.bin    (SYMBOL: hp_function_drift) */
#include "drift-util.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int usage(void)
{
    fprintf(stderr, "usage: drift-tool gen [-n N] [-s SEED] [-f FIRST] [-v VELOCITY] "
            "[-l DIFF_LONG] [-t DIFF_TRANS] [-L LIFETIME] [-d DEPTH]\n"
            "       drift-tool summary FILE\n"
            "       drift-tool run LIBRARY [SYMBOL] < REQUEST > RESPONSE\n");
    return 2;
}

static int write_all(const void *b, size_t n)
{
    for (const char *p = b; n > 0;) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            perror("drift-tool: write");
            return -1;
        }
        p += w, n -= (size_t)w;
    }
    return 0;
}

static void *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb)
            free(b);
        b = nb;
    }
    if (b && ferror(f)) {
        free(b);
        b = NULL;
    }
    *len = n;
    return b;
}

static int gen(int argc, char **argv)
{
    struct drift_request r;
    drift_request_defaults(&r, 1000);
    int c;
    while ((c = getopt(argc, argv, "n:s:f:v:l:t:L:d:")) != -1) {
        switch (c) {
        case 'n': r.n = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 's': r.seed = strtoull(optarg, NULL, 0); break;
        case 'f': r.first = strtoull(optarg, NULL, 0); break;
        case 'v': r.velocity = strtod(optarg, NULL); break;
        case 'l': r.diff_long = strtod(optarg, NULL); break;
        case 't': r.diff_trans = strtod(optarg, NULL); break;
        case 'L': r.lifetime = strtod(optarg, NULL); break;
        case 'd': r.depth = strtod(optarg, NULL); break;
        default: return usage();
        }
    }
    if (r.n > HP_DRIFT_MAX_N) {
        fprintf(stderr, "drift-tool: -n %u is more than %u\n", r.n, HP_DRIFT_MAX_N);
        return 1;
    }
    size_t len;
    void *b = drift_request_build(&r, &len);
    if (!b) {
        fprintf(stderr, "drift-tool: out of memory\n");
        return 1;
    }
    int rc = write_all(b, len) < 0;
    free(b);
    return rc;
}

static int summary(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "drift-tool: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t len;
    char *b = read_all(f, &len);
    if (f != stdin)
        fclose(f);
    int out = b && len >= 16 && !memcmp(b, HP_DRIFT_OUT_MAGIC, 8);
    int in = b && len >= 64 && !memcmp(b, HP_DRIFT_IN_MAGIC, 8);
    uint32_t n = 0;
    if (in || out)
        memcpy(&n, b + 8, 4);
    if (!(in || out) || len != (out ? 16 : 64) + (size_t)n * 16) {
        fprintf(stderr, "drift-tool: %s is not a drift request or response\n", path);
        free(b);
        return 1;
    }
    double s[4] = {0}, s2[4] = {0};
    for (int k = 0; k < 4; k++) {
        const float *a = drift_array(b, out, n, k);
        for (uint32_t i = 0; i < n; i++)
            s[k] += a[i], s2[k] += (double)a[i] * a[i];
    }
    static const char *names[2][4] = {{"x", "y", "z", "q"}, {"x", "y", "t", "q"}};
    printf("%s: %u charges; total charge %.6g\n", out ? "response" : "request", n, s[3]);
    for (int k = 0; k < 3; k++) {
        double m = n ? s[k] / n : 0;
        printf("  %s: mean %.6g, rms spread %.6g\n", names[out][k], m,
               n ? sqrt(fmax(0, s2[k] / n - m * m)) : 0);
    }
    free(b);
    return 0;
}

static int run_lib(const char *path, const char *symbol)
{
    struct fn_lib lib;
    char err[512];
    size_t len, outlen;
    void *in = NULL, *out = NULL;
    int rc = 1;
    if (fn_open(&lib, path, symbol, getenv("DRIFT_CONFIG"), err, sizeof err) != 0) {
        fprintf(stderr, "drift-tool: %s\n", err);
        goto out;
    }
    if (!(in = read_all(stdin, &len))) {
        fprintf(stderr, "drift-tool: cannot read the request\n");
        goto out;
    }
    if (fn_call(&lib, in, len, &out, &outlen, err, sizeof err) != 0) {
        fprintf(stderr, "drift-tool: %s\n", err);
        goto out;
    }
    rc = out && write_all(out, outlen) < 0;
out:
    free(in);
    free(out);
    fn_close(&lib);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "gen"))
        return gen(argc - 1, argv + 1);
    if (!strcmp(argv[1], "summary") && argc == 3)
        return summary(argv[2]);
    if (!strcmp(argv[1], "run") && (argc == 3 || argc == 4))
        return run_lib(argv[2], argc == 4 ? argv[3] : "hp_function_drift");
    return usage();
}
