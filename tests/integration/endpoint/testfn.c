/* testfn.c - CPU functions for test-endpoint.sh, built against the installed
 * header only (hpcport-function.h): echo, noop, reverse, segfault, hang,
 * fail (returns an error message), initfail (init refuses), wrongabi, and
 * state (counts its calls in the state init made, tags with its worker). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hpcport-function.h"

static int echo_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)st;
    void *p = out->reserve(out, n);
    if (!p && n) {
        snprintf(err, errlen, "no room for %zu bytes", n);
        return 1;
    }
    if (n)
        memcpy(p, in, n);
    return 0;
}

static int noop_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)st; (void)in; (void)n; (void)out; (void)err; (void)errlen;
    return 0;
}

static int reverse_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                        char *err, size_t errlen)
{
    (void)st;
    unsigned char *p = out->reserve(out, n);
    const unsigned char *c = in;
    if (!p && n) {
        snprintf(err, errlen, "no room for %zu bytes", n);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = c[n - 1 - i];
    return 0;
}

static int segv_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)st; (void)out; (void)err; (void)errlen;
    if (n == 2 && !memcmp(in, "ok", 2))
        return 0;
    raise(SIGSEGV);
    return 0;
}

static int hang_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)st; (void)out; (void)err; (void)errlen;
    /* "quick": answer at once; "slow": half a second; else never */
    if (n == 5 && !memcmp(in, "quick", 5))
        return 0;
    if (n == 4 && !memcmp(in, "slow", 4)) {
        usleep(500000);
        return 0;
    }
    for (;;)
        pause();
}

static int fail_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                     char *err, size_t errlen)
{
    (void)st; (void)out;
    snprintf(err, errlen, "bad input: %.*s", (int)(n > 64 ? 64 : n), (const char *)in);
    return 7;
}

static int initfail_init(const char *config, int worker, void **state, char *err, size_t errlen)
{
    (void)worker; (void)state;
    snprintf(err, errlen, "cannot open %s", config ? config : "(no config)");
    return 1;
}

struct counter { int worker; long calls; char tag[64]; };

static int state_init(const char *config, int worker, void **state, char *err, size_t errlen)
{
    struct counter *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    c->worker = worker;
    snprintf(c->tag, sizeof(c->tag), "%s", config ? config : "");
    *state = c;
    return 0;
}

static int state_call(void *st, const void *in, size_t n, struct hp_function_output *out,
                      char *err, size_t errlen)
{
    struct counter *c = st;
    (void)in; (void)n; (void)err; (void)errlen;
    char line[256];
    const char *gpu = getenv("CUDA_VISIBLE_DEVICES");
    int len = snprintf(line, sizeof(line), "%s worker=%d calls=%ld gpu=%s", c->tag, c->worker,
                       ++c->calls, gpu ? gpu : "-");
    char *p = out->reserve(out, (size_t)len);
    if (p)
        memcpy(p, line, (size_t)len);
    return 0;
}

static void state_fini(void *st)
{
    free(st);
}

const struct hp_function hp_function_echo = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "echo", NULL, echo_call, NULL };
const struct hp_function hp_function_noop = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "noop", NULL, noop_call, NULL };
const struct hp_function hp_function_reverse = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                                 "reverse", NULL, reverse_call, NULL };
const struct hp_function hp_function_segfault = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                                  "segfault", NULL, segv_call, NULL };
const struct hp_function hp_function_hang = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "hang", NULL, hang_call, NULL };
const struct hp_function hp_function_fail = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                              "fail", NULL, fail_call, NULL };
const struct hp_function hp_function_initfail = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                                  "initfail", initfail_init, noop_call, NULL };
const struct hp_function hp_function_wrongabi = { HP_FUNCTION_ABI + 1, sizeof(struct hp_function),
                                                  "wrongabi", NULL, noop_call, NULL };
const struct hp_function hp_function_state = { HP_FUNCTION_ABI, sizeof(struct hp_function),
                                               "state", state_init, state_call, state_fini };
