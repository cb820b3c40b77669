/* drift-cuda.cu - the CUDA implementation of the drift example (drift.h),
 * with the ABI of remote/hpcport-function.h; the same per-charge code as the
 * CPU library, run one thread per charge.
 *
 * init creates the CUDA context on the worker's first visible device (the
 * endpoint pins workers with CUDA_VISIBLE_DEVICES), allocates device buffers
 * for `capacity=N` charges (config string; default 1,048,576; grown on
 * demand) and runs the kernel once to warm up. call copies the arrays in,
 * launches, and copies the results straight into the endpoint's output. */
#include "hpcport-function.h"
#include "drift.h"

#include <cuda_runtime.h>
#include <stdlib.h>

struct drift_gpu {
    uint32_t capacity;
    float *d_in, *d_out;
};

__global__ static void drift_kernel(struct hp_drift_params p, uint32_t n, const float *in,
                                    float *out)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    size_t a = n;
    hp_drift_one(&p, i, in[i], in[a + i], in[2 * a + i], in[3 * a + i], &out[i], &out[a + i],
                 &out[2 * a + i], &out[3 * a + i]);
}

static int cuda_failed(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess)
        return 0;
    snprintf(err, errlen, "drift (CUDA): %s: %s", what, cudaGetErrorString(e));
    return -1;
}

static int reserve_device(struct drift_gpu *g, uint32_t n, char *err, size_t errlen)
{
    if (n <= g->capacity && g->d_in)
        return 0;
    cudaFree(g->d_in);
    cudaFree(g->d_out);
    g->d_in = g->d_out = NULL;
    g->capacity = 0;
    size_t bytes = (size_t)(n ? n : 1) * 4 * sizeof(float);
    if (cuda_failed(cudaMalloc(&g->d_in, bytes), "allocating the input", err, errlen) ||
        cuda_failed(cudaMalloc(&g->d_out, bytes), "allocating the output", err, errlen))
        return -1;
    g->capacity = n;
    return 0;
}

static int launch(struct drift_gpu *g, const struct hp_drift_params *p, uint32_t n, char *err,
                  size_t errlen)
{
    if (n == 0)
        return 0;
    unsigned threads = 256, blocks = (n + threads - 1) / threads;
    drift_kernel<<<blocks, threads>>>(*p, n, g->d_in, g->d_out);
    if (cuda_failed(cudaGetLastError(), "launching the kernel", err, errlen))
        return -1;
    return cuda_failed(cudaDeviceSynchronize(), "running the kernel", err, errlen);
}

static void drift_fini(void *state)
{
    struct drift_gpu *g = (struct drift_gpu *)state;
    if (!g)
        return;
    cudaFree(g->d_in);
    cudaFree(g->d_out);
    free(g);
}

static int drift_init(const char *config, int worker, void **state, char *err, size_t errlen)
{
    (void)worker;
    unsigned long capacity = 1ul << 20;
    if (config && *config) {
        char *end;
        if (strncmp(config, "capacity=", 9) != 0 ||
            (capacity = strtoul(config + 9, &end, 10), *end != '\0') ||
            capacity > HP_DRIFT_MAX_N) {
            snprintf(err, errlen, "drift (CUDA): config \"%s\" is not capacity=N with N at "
                     "most %u", config, HP_DRIFT_MAX_N);
            return -1;
        }
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(err, errlen, "drift (CUDA): no CUDA device visible (%s; CUDA_VISIBLE_DEVICES=%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices", vis ? vis : "unset");
        return -1;
    }
    struct drift_gpu *g = (struct drift_gpu *)calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "drift (CUDA): out of memory");
        return -1;
    }
    /* the context, the buffers, and one launch so the first call pays none */
    struct hp_drift_params p = {1, 2, 0, 1.0, 0.01, 0.01, 0.0};
    if (cuda_failed(cudaSetDevice(0), "selecting device 0", err, errlen) ||
        cuda_failed(cudaFree(0), "creating the context", err, errlen) ||
        reserve_device(g, (uint32_t)capacity, err, errlen) < 0 ||
        cuda_failed(cudaMemset(g->d_in, 0, (size_t)(capacity ? capacity : 1) * 4 * sizeof(float)),
                    "clearing the input", err, errlen) ||
        launch(g, &p, capacity < 1024 ? (uint32_t)capacity : 1024, err, errlen) < 0) {
        drift_fini(g);
        return -1;
    }
    *state = g;
    return 0;
}

static int drift_call(void *state, const void *in, size_t inlen, struct hp_function_output *out,
                      char *err, size_t errlen)
{
    struct drift_gpu *g = (struct drift_gpu *)state;
    struct hp_drift_params p;
    uint32_t n;
    if (hp_drift_parse(in, inlen, &p, &n, err, errlen) < 0)
        return -1;
    size_t bytes = (size_t)n * 4 * sizeof(float);
    size_t outlen = sizeof(struct hp_drift_out) + bytes;
    char *o = (char *)out->reserve(out, outlen);
    if (!o) {
        snprintf(err, errlen, "drift (CUDA): cannot get %zu bytes for the output", outlen);
        return -1;
    }
    struct hp_drift_out h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, HP_DRIFT_OUT_MAGIC, 8);
    h.n = n;
    memcpy(o, &h, sizeof h);
    if (n == 0)
        return 0;
    if (reserve_device(g, n, err, errlen) < 0 ||
        cuda_failed(cudaMemcpy(g->d_in, (const char *)in + sizeof(struct hp_drift_in), bytes,
                               cudaMemcpyHostToDevice), "copying the input", err, errlen) ||
        launch(g, &p, n, err, errlen) < 0 ||
        cuda_failed(cudaMemcpy(o + sizeof h, g->d_out, bytes, cudaMemcpyDeviceToHost),
                    "copying the output", err, errlen))
        return -1;
    return 0;
}

extern "C" {
extern const struct hp_function hp_function_drift;
const struct hp_function hp_function_drift = {
    HP_FUNCTION_ABI, sizeof(struct hp_function), "drift", drift_init, drift_call, drift_fini,
};
}
