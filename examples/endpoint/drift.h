/* drift.h - the charge-drift example function: formats, the counter-based
 * random numbers and the per-charge kernel, shared by the CPU library
 * (drift-cpu.c), the CUDA library (drift-cuda.cu) and the tests.
 *
 * Physics: ionisation charges drift along -z in a uniform field to the
 * readout plane z = 0 with drift velocity v (mm/us). A charge starting at
 * height z arrives after t0 = z / v; longitudinal diffusion spreads the
 * arrival time with sigma_t = sqrt(2 D_L t0) / v, transverse diffusion moves
 * it in x and y with sigma_xy = sqrt(2 D_T t0) (D in mm^2/us); attachment
 * (electron lifetime tau in us, 0 = none) scales the charge by exp(-t0/tau).
 *
 * Random numbers: Philox4x32-10 (Salmon et al., SC'11), counter
 * (first + i as two 32-bit words, 0, 0), key = the seed's two 32-bit words:
 * one block per charge gives the three normal deviates (Box-Muller on the
 * four uniforms). Charge i of a request therefore gets the same numbers on
 * CPU and GPU, whatever the batch it comes in (`first` says where a batch
 * starts). Arithmetic is in double, results are stored as float, so CPU
 * and GPU outputs agree to about one float ulp (libm and CUDA's log, sin,
 * cos, exp differ by an ulp or two in double).
 *
 * Input (little-endian):  struct hp_drift_in, then float x[n], y[n], z[n], q[n]
 * Output (little-endian): struct hp_drift_out, then float x[n], y[n], t[n], q[n]
 *   (x, y in mm at the readout plane; t: arrival time in us; q: collected charge)
 * Errors (bad magic, sizes, non-finite or negative parameters, z < 0) are
 * reported through the ABI's err text; nothing is written then. */
#ifndef HP_EXAMPLE_DRIFT_H
#define HP_EXAMPLE_DRIFT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __CUDACC__
#define HP_DRIFT_HD __host__ __device__ __forceinline__
#else
#define HP_DRIFT_HD static inline
#endif

#define HP_DRIFT_IN_MAGIC  "HPDRIFT1"
#define HP_DRIFT_OUT_MAGIC "HPDRIFO1"
#define HP_DRIFT_MAX_N     (1u << 26)    /* 1 GiB of input: larger is refused */

struct hp_drift_in {          /* 64 bytes */
    char magic[8];            /* "HPDRIFT1" */
    uint32_t n;               /* number of charges */
    uint32_t reserved;        /* 0 */
    uint64_t seed;            /* Philox key */
    uint64_t first;           /* counter of charge 0 of this batch */
    double velocity;          /* drift velocity, mm/us, > 0 */
    double diff_long;         /* longitudinal diffusion coefficient, mm^2/us, >= 0 */
    double diff_trans;        /* transverse diffusion coefficient, mm^2/us, >= 0 */
    double lifetime;          /* electron lifetime, us; 0 = no attachment */
};

struct hp_drift_out {         /* 16 bytes */
    char magic[8];            /* "HPDRIFO1" */
    uint32_t n;
    uint32_t reserved;
};

struct hp_drift_params {
    uint32_t key0, key1;
    uint64_t first;
    double velocity, diff_long, diff_trans, lifetime;
};

/* Philox4x32-10: four 32-bit words of counter, two of key, in place. */
HP_DRIFT_HD void hp_philox4x32_10(uint32_t ctr[4], uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = c0;
        ctr[2] = c2;
    }
}

/* A uniform deviate in (0, 1), never 0 (Box-Muller takes its log). */
HP_DRIFT_HD double hp_drift_uniform(uint32_t u)
{
    return ((double)u + 0.5) * (1.0 / 4294967296.0);
}

/* One charge: (x, y, z, q) in, (x, y, t, q) out. */
HP_DRIFT_HD void hp_drift_one(const struct hp_drift_params *p, uint64_t i, float x, float y,
                              float z, float q, float *ox, float *oy, float *ot, float *oq)
{
    uint64_t c = p->first + i;
    uint32_t r[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
    hp_philox4x32_10(r, p->key0, p->key1);
    double rad0 = sqrt(-2.0 * log(hp_drift_uniform(r[0])));
    double rad1 = sqrt(-2.0 * log(hp_drift_uniform(r[2])));
    const double two_pi = 6.283185307179586;
    double a0 = two_pi * hp_drift_uniform(r[1]), a1 = two_pi * hp_drift_uniform(r[3]);
    double g_t = rad0 * cos(a0), g_x = rad0 * sin(a0), g_y = rad1 * cos(a1);
    double t0 = (double)z / p->velocity;
    double s_t = sqrt(2.0 * p->diff_long * t0) / p->velocity;
    double s_xy = sqrt(2.0 * p->diff_trans * t0);
    *ox = (float)((double)x + s_xy * g_x);
    *oy = (float)((double)y + s_xy * g_y);
    *ot = (float)(t0 + s_t * g_t);
    *oq = p->lifetime > 0.0 ? (float)((double)q * exp(-t0 / p->lifetime)) : q;
}

/* Checks a request; on success fills *p and *n and returns 0, else writes
 * the reason into err and returns -1. Host only. */
static inline int hp_drift_parse(const void *in, size_t inlen, struct hp_drift_params *p,
                                 uint32_t *n, char *err, size_t errlen)
{
    struct hp_drift_in h;
    if (inlen < sizeof h) {
        snprintf(err, errlen, "drift: input of %zu bytes is shorter than its 64-byte header",
                 inlen);
        return -1;
    }
    memcpy(&h, in, sizeof h);
    if (memcmp(h.magic, HP_DRIFT_IN_MAGIC, 8) != 0) {
        snprintf(err, errlen, "drift: input does not start with \"%s\" (not a drift request)",
                 HP_DRIFT_IN_MAGIC);
        return -1;
    }
    if (h.n > HP_DRIFT_MAX_N || inlen != sizeof h + (size_t)h.n * 4 * sizeof(float)) {
        snprintf(err, errlen, "drift: header says %u charges (at most %u), which need %zu bytes, "
                 "but the input has %zu", h.n, HP_DRIFT_MAX_N,
                 sizeof h + (size_t)h.n * 4 * sizeof(float), inlen);
        return -1;
    }
    if (!(isfinite(h.velocity) && h.velocity > 0) || !(isfinite(h.diff_long) && h.diff_long >= 0) ||
        !(isfinite(h.diff_trans) && h.diff_trans >= 0) ||
        !(isfinite(h.lifetime) && h.lifetime >= 0)) {
        snprintf(err, errlen, "drift: bad parameters (velocity %g must be > 0; diffusion %g, %g "
                 "and lifetime %g must be finite and >= 0)", h.velocity, h.diff_long,
                 h.diff_trans, h.lifetime);
        return -1;
    }
    const float *z = (const float *)((const char *)in + sizeof h) + 2 * (size_t)h.n;
    for (uint32_t i = 0; i < h.n; i++) {
        float zi;
        memcpy(&zi, z + i, sizeof zi);   /* the input may be unaligned */
        if (!(isfinite(zi) && zi >= 0)) {
            snprintf(err, errlen, "drift: charge %u has z = %g: z must be finite and >= 0 "
                     "(the readout plane is z = 0)", i, (double)zi);
            return -1;
        }
    }
    p->key0 = (uint32_t)h.seed;
    p->key1 = (uint32_t)(h.seed >> 32);
    p->first = h.first;
    p->velocity = h.velocity;
    p->diff_long = h.diff_long;
    p->diff_trans = h.diff_trans;
    p->lifetime = h.lifetime;
    *n = h.n;
    return 0;
}

#endif
