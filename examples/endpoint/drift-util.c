/* drift-util.c - see drift-util.h */
#include "drift-util.h"

#include <dlfcn.h>
#include <stdlib.h>

int fn_open(struct fn_lib *lib, const char *path, const char *symbol, const char *config,
            char *err, size_t errlen)
{
    memset(lib, 0, sizeof *lib);
    lib->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib->dl) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    const struct hp_function *fn = dlsym(lib->dl, symbol);
    if (!fn) {
        snprintf(err, errlen, "%s has no symbol %s", path, symbol);
        return -1;
    }
    if (fn->abi != HP_FUNCTION_ABI || fn->size < sizeof(struct hp_function) || !fn->call) {
        snprintf(err, errlen, "%s: %s has ABI %u (size %u), not %d", path, symbol, fn->abi,
                 fn->size, HP_FUNCTION_ABI);
        return -1;
    }
    lib->fn = fn;
    if (fn->init && fn->init(config, 0, &lib->state, err, errlen) != 0) {
        lib->fn = NULL;   /* no fini after a failed init */
        return -1;
    }
    return 0;
}

struct grow_out {
    struct hp_function_output base;
    void *buf;
    size_t len;
};

static void *grow_reserve(struct hp_function_output *o, size_t n)
{
    struct grow_out *g = (struct grow_out *)o;
    void *b = malloc(n ? n : 1);
    if (!b)
        return NULL;
    free(g->buf);
    g->buf = b;
    g->len = n;
    return b;
}

int fn_call(struct fn_lib *lib, const void *in, size_t inlen, void **out, size_t *outlen,
            char *err, size_t errlen)
{
    struct grow_out g = {.base = {.reserve = grow_reserve}};
    err[0] = '\0';
    int rc = lib->fn->call(lib->state, in, inlen, &g.base, err, errlen);
    if (rc != 0) {
        free(g.buf);
        g.buf = NULL;
        g.len = 0;
    }
    *out = g.buf;
    *outlen = g.len;
    return rc;
}

void fn_close(struct fn_lib *lib)
{
    if (lib->fn && lib->fn->fini)
        lib->fn->fini(lib->state);
    if (lib->dl)
        dlclose(lib->dl);
    memset(lib, 0, sizeof *lib);
}

void drift_request_defaults(struct drift_request *r, uint32_t n)
{
    *r = (struct drift_request){
        .n = n, .seed = 0x5eed, .pos_seed = 0xc0ffee, .velocity = 1.6, .diff_long = 6.2e-4,
        .diff_trans = 1.32e-3, .depth = 500.0, .half_width = 500.0,
    };
}

void *drift_request_build(const struct drift_request *r, size_t *len)
{
    size_t a = (size_t)r->n;
    *len = sizeof(struct hp_drift_in) + a * 4 * sizeof(float);
    char *b = malloc(*len);
    if (!b)
        return NULL;
    struct hp_drift_in h = {
        .magic = HP_DRIFT_IN_MAGIC, .n = r->n, .seed = r->seed, .first = r->first,
        .velocity = r->velocity, .diff_long = r->diff_long, .diff_trans = r->diff_trans,
        .lifetime = r->lifetime,
    };
    memcpy(b, &h, sizeof h);
    float *v = (float *)(b + sizeof h);
    for (size_t i = 0; i < a; i++) {
        uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), 1, 0};
        hp_philox4x32_10(c, (uint32_t)r->pos_seed, (uint32_t)(r->pos_seed >> 32));
        v[i] = (float)((2 * hp_drift_uniform(c[0]) - 1) * r->half_width);
        v[a + i] = (float)((2 * hp_drift_uniform(c[1]) - 1) * r->half_width);
        v[2 * a + i] = r->fixed_depth ? (float)r->depth
                                      : (float)((1.0 - hp_drift_uniform(c[2])) * r->depth);
        v[3 * a + i] = (float)(1000.0 + 1000.0 * hp_drift_uniform(c[3]));
    }
    return b;
}

const float *drift_array(const void *buf, int is_output, uint32_t n, int k)
{
    size_t h = is_output ? sizeof(struct hp_drift_out) : sizeof(struct hp_drift_in);
    return (const float *)((const char *)buf + h) + (size_t)k * n;
}
