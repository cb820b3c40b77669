/* hpcport-function.h - the C ABI of functions served by `hpcport endpoint`.
 *
 * A function library is a shared object that exports one descriptor:
 *
 *     const struct hp_function hp_function_NAME = { HP_FUNCTION_ABI, sizeof(struct hp_function),
 *                                                   "NAME", my_init, my_call, my_fini };
 *
 * (the endpoint configuration names the library and the symbol). Each worker
 * process of the endpoint dlopen()s the library, calls init once (load data,
 * create the GPU context, warm up), then call once per invocation, and fini
 * when it stops. Workers are separate processes: a call that crashes or hangs
 * costs only its worker, which the endpoint replaces.
 *
 * Versioning: abi must be HP_FUNCTION_ABI and size at least the size of the
 * struct this header declared for that ABI; an endpoint refuses others with
 * the library named. New members are only ever added at the end. */
#ifndef HPCPORT_FUNCTION_H
#define HPCPORT_FUNCTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HP_FUNCTION_ABI 1

/* Where a call writes its output: reserve(out, n) returns a buffer of n bytes
 * owned by the endpoint (valid until call returns), or NULL when n exceeds
 * the endpoint's output limit or memory is short. The last reserve wins; a
 * call that reserves nothing returns empty output. */
struct hp_function_output {
    void *(*reserve)(struct hp_function_output *out, size_t n);
    void *priv;     /* the endpoint's */
};

struct hp_function {
    uint32_t abi;            /* HP_FUNCTION_ABI */
    uint32_t size;           /* sizeof(struct hp_function) */
    const char *name;        /* for messages */
    /* Once per worker. config: the function's "config" string from the
     * endpoint configuration (NULL when absent); worker: 0-based worker index;
     * *state: anything the function keeps. Returns 0, or non-zero with a
     * message in err (NUL-terminated, at most errlen bytes): the worker is
     * then not used and the endpoint reports the message. May be NULL. */
    int (*init)(const char *config, int worker, void **state, char *err, size_t errlen);
    /* Once per invocation: input bytes in, output through out. Returns 0, or
     * non-zero with a message in err: the call fails with that message and
     * the worker stays. Must not be NULL. */
    int (*call)(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                char *err, size_t errlen);
    /* When the worker stops. May be NULL. */
    void (*fini)(void *state);
};

#ifdef __cplusplus
}
#endif

#endif
