/* drift-cpu.c - the CPU implementation of the drift example (drift.h) and a
 * no-op function, with the ABI of remote/hpcport-function.h.
 *
 *   hp_function_drift: a batch of charges (drift.h's formats)
 *   hp_function_noop:  ignores its input, returns empty output (benchmarks)
 *   hp_function_echo:  returns its input */
#include "hpcport-function.h"
#include "drift.h"

#include <stdlib.h>

static int drift_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                      char *err, size_t errlen)
{
    (void)state;
    struct hp_drift_params p;
    uint32_t n;
    if (hp_drift_parse(in, inlen, &p, &n, err, errlen) < 0)
        return -1;
    size_t outlen = sizeof(struct hp_drift_out) + (size_t)n * 4 * sizeof(float);
    char *o = out->reserve(out, outlen);
    if (!o) {
        snprintf(err, errlen, "drift: cannot get %zu bytes for the output", outlen);
        return -1;
    }
    struct hp_drift_out h = {.magic = HP_DRIFT_OUT_MAGIC, .n = n};
    memcpy(o, &h, sizeof h);
    const char *ia = (const char *)in + sizeof(struct hp_drift_in);
    char *oa = o + sizeof h;
    size_t a = (size_t)n * sizeof(float);   /* bytes per array */
    for (uint32_t i = 0; i < n; i++) {
        float v[4], r[4];
        for (int k = 0; k < 4; k++)
            memcpy(&v[k], ia + k * a + i * sizeof(float), sizeof(float));
        hp_drift_one(&p, i, v[0], v[1], v[2], v[3], &r[0], &r[1], &r[2], &r[3]);
        for (int k = 0; k < 4; k++)
            memcpy(oa + k * a + i * sizeof(float), &r[k], sizeof(float));
    }
    return 0;
}

const struct hp_function hp_function_drift = {
    .abi = HP_FUNCTION_ABI, .size = sizeof(struct hp_function), .name = "drift",
    .call = drift_call,
};

static int noop_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)state, (void)in, (void)inlen, (void)out, (void)err, (void)errlen;
    return 0;
}

const struct hp_function hp_function_noop = {
    .abi = HP_FUNCTION_ABI, .size = sizeof(struct hp_function), .name = "noop",
    .call = noop_call,
};

static int echo_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)state;
    if (inlen == 0)
        return 0;
    void *o = out->reserve(out, inlen);
    if (!o) {
        snprintf(err, errlen, "echo: cannot get %zu bytes for the output", inlen);
        return -1;
    }
    memcpy(o, in, inlen);
    return 0;
}

const struct hp_function hp_function_echo = {
    .abi = HP_FUNCTION_ABI, .size = sizeof(struct hp_function), .name = "echo",
    .call = echo_call,
};
