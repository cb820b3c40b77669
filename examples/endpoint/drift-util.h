/* drift-util.h - helpers shared by the drift example's programs and tests:
 * load a function library through the ABI of remote/hpcport-function.h (as
 * an endpoint worker does), and build drift requests. */
#ifndef HP_EXAMPLE_DRIFT_UTIL_H
#define HP_EXAMPLE_DRIFT_UTIL_H

#include "hpcport-function.h"
#include "drift.h"

#include <stddef.h>

/* A loaded function: dlopen()ed library, its descriptor, init's state. */
struct fn_lib {
    void *dl;
    const struct hp_function *fn;
    void *state;
};

/* Loads PATH, finds SYMBOL, checks abi/size, runs init(config, worker 0).
 * Returns 0, or -1 with the reason in err. fn_close() releases (also after
 * a failure). */
int fn_open(struct fn_lib *lib, const char *path, const char *symbol, const char *config,
            char *err, size_t errlen);
/* One call: *out (malloc'd, caller frees; NULL when empty) and *outlen.
 * Returns the function's return value (non-zero: err holds its message). */
int fn_call(struct fn_lib *lib, const void *in, size_t inlen, void **out, size_t *outlen,
            char *err, size_t errlen);
void fn_close(struct fn_lib *lib);

/* Parameters of a generated request; charges get x, y uniform in
 * [-half_width, half_width], z uniform in (0, depth] (or = depth when
 * fixed_depth), q uniform in [1000, 2000) electrons, from Philox with key
 * pos_seed (not the drift seed). */
struct drift_request {
    uint32_t n;
    uint64_t seed, first, pos_seed;
    double velocity, diff_long, diff_trans, lifetime;
    double depth, half_width;
    int fixed_depth;
};

/* Liquid-argon-like defaults: 1.6 mm/us, D_L 6.2e-4 and D_T 1.32e-3 mm^2/us,
 * no attachment, 500 mm deep, 1 m wide. */
void drift_request_defaults(struct drift_request *r, uint32_t n);
/* malloc'd request bytes (NULL when out of memory), *len its size. */
void *drift_request_build(const struct drift_request *r, size_t *len);

/* Pointers to the arrays of a request or a response (no copies; the arrays
 * are 4-byte aligned when the buffer is malloc'd). */
const float *drift_array(const void *buf, int is_output, uint32_t n, int k);

#endif
