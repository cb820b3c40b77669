#!/usr/bin/python3
"""bench-dask: the Dask distributed reference for bench-endpoint.sh.

A LocalCluster of 2 worker processes (1 thread each, no dashboard) on this
machine, the same no-op as the endpoint's: N synchronous submit().result()
round trips (p50, p99), then BATCH no-op tasks through client.map + gather
(tasks/s, best of REPS). Prints key=value lines (times in microseconds).
Usage: bench-dask.py [N] [BATCH] [REPS]   (Debian: python3-distributed)"""
import sys
import time
import warnings

import dask
from distributed import Client, LocalCluster


def noop(x):
    return None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    warnings.simplefilter("ignore")
    dask.config.set({"distributed.worker.daemon": False, "logging.distributed": "error"})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        for i in range(20):   # warm up
            client.submit(noop, -1 - i, pure=False).result()
        t = []
        for i in range(n):
            t0 = time.perf_counter()
            client.submit(noop, i, pure=False).result()
            t.append((time.perf_counter() - t0) * 1e6)
        t.sort()
        print("dask_n=%d" % n)
        print("dask_p50_us=%.1f" % t[n // 2])
        print("dask_p99_us=%.1f" % t[int(n * 0.99)])
        best = 0.0
        for r in range(reps):
            t0 = time.perf_counter()
            futures = client.map(noop, range(r * batch, (r + 1) * batch), pure=False)
            client.gather(futures)
            dt = time.perf_counter() - t0
            del futures
            best = max(best, batch / dt)
        print("dask_batch=%d" % batch)
        print("dask_tasks_per_s=%.0f" % best)


if __name__ == "__main__":
    main()
