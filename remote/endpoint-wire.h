/* endpoint-wire.h - messages between the endpoint server and its workers,
 * over a socketpair (SOCK_STREAM): [u8 type][u32 length][payload], integers
 * in host order (both ends are the same binary on the same machine).
 *
 *   worker -> server  READY    (empty): init done, ready for calls
 *                     INITFAIL message: the worker could not start; it exits
 *                     RESULTS  [u32 n] n x ([u64 id][u8 status][u32 len][bytes])
 *                              status 0: output; 1: failed, bytes = message
 *   server -> worker  CALLS    [u32 n] n x ([u64 id][u32 len][bytes])
 *
 * Calls go in chunks (many per message) and results come back in chunks, in
 * the order of the calls; a worker flushes its results at the end of a chunk
 * and whenever 5 ms passed since its last flush, so the server sees progress
 * of slow calls. EOF from the server: fini, then exit 0. */
#ifndef HP_ENDPOINT_WIRE_H
#define HP_ENDPOINT_WIRE_H

#include <stdint.h>
#include <string.h>

enum { HP_EPW_READY = 'R', HP_EPW_INITFAIL = 'F', HP_EPW_RESULTS = 'O', HP_EPW_CALLS = 'C' };
#define HP_EPW_HDR 5u
/* A message is at most this long (a chunk never exceeds it unless one call
 * does, which is then sent alone). */
#define HP_EPW_CHUNK_BYTES (4u << 20)
#define HP_EPW_CHUNK_CALLS 512u

static inline void hp_epw_put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void hp_epw_put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t hp_epw_get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t hp_epw_get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

#endif
