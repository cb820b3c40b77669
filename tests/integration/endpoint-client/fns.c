/* fns.c - endpoint functions for test-endpoint-client.sh (the function ABI
 * of remote/hpcport-function.h): echo returns its input, crash dies of
 * SIGSEGV, hang never returns, fail returns an error. */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "hpcport-function.h"

static int echo_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)state;
    void *p = out->reserve(out, inlen);
    if (!p && inlen) {
        strncpy(err, "no room for the output", errlen - 1);
        return 1;
    }
    if (inlen)
        memcpy(p, in, inlen);
    return 0;
}

static int crash_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                      char *err, size_t errlen)
{
    (void)state, (void)in, (void)inlen, (void)out, (void)err, (void)errlen;
    raise(SIGSEGV);
    return 0;
}

static int hang_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)state, (void)in, (void)inlen, (void)out, (void)err, (void)errlen;
    for (;;)
        pause();
    return 0;
}

static int fail_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)state, (void)in, (void)inlen, (void)out;
    strncpy(err, "fail was asked to fail", errlen - 1);
    return 1;
}

const struct hp_function hp_function_echo = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "echo", NULL, echo_call, NULL };
const struct hp_function hp_function_crash = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                               "crash", NULL, crash_call, NULL };
const struct hp_function hp_function_hang = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "hang", NULL, hang_call, NULL };
const struct hp_function hp_function_fail = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "fail", NULL, fail_call, NULL };
