"""Throughput of a batch on a Dask distributed cluster against the local process pool.

Prints, on the same synthetic blots (16-bit TIFFs, overlays drawn, as ``blotquant quantify``
does by default):

* images per second with the local process pool (1 and 2 processes) and on a
  ``distributed.LocalCluster`` of 1 and 2 worker processes (loopback TCP, as a real cluster
  talks), started before the clock runs;
* the scheduling overhead per task: the time per task of a function that does nothing,
  on the cluster and on the process pool;
* whether the cluster's bands.csv is byte-for-byte the local one.

Nothing is asserted: the figures are printed for people to read.

Usage::

    python benchmarks/scale.py [--images 32] [--shape 1000 1500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _nothing(task):
    return task


def _timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--shape", type=int, nargs=2, default=(1000, 1500), metavar=("ROWS", "COLS"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import distributed

    from blotquant.batch import quantify_batch
    from blotquant.executors import run_tasks
    from blotquant.synth import make_blot, save_blot

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "blots"
        folder.mkdir()
        for seed in range(args.images):
            save_blot(make_blot(shape=tuple(args.shape), n_lanes=10, seed=seed), folder / f"blot{seed:03d}.tif")
        runs = iter(range(10**6))

        def batch(**how):
            out = tmp / f"out{next(runs)}"
            quantify_batch([folder], out, progress=False, lanes=10, **how)
            return out

        print(f"blotquant batch of {args.images} synthetic 16-bit blots of {args.shape[0]} x {args.shape[1]} px "
              f"(overlays drawn), median of {args.repeats}; {os.cpu_count()} cores")
        print(f"{'where':<34} {'seconds':>8} {'images/s':>9} {'efficiency':>11}")
        rows = {}
        for jobs in (1, 2):
            seconds = _timed(lambda: batch(jobs=jobs), args.repeats)
            rows[("pool", jobs)] = seconds
        reference_out = batch(jobs=2)
        same = None
        for workers in (1, 2):
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                          host="127.0.0.1", dashboard_address=None, silence_logs=40) as cluster, \
                    distributed.Client(cluster) as client:
                client.run(lambda: __import__("blotquant.pipeline"))  # warm the workers' imports
                rows[("dask", workers)] = _timed(lambda: batch(executor=client), args.repeats)
                if workers == 2:
                    same = (batch(executor=client) / "bands.csv").read_bytes() == \
                        (reference_out / "bands.csv").read_bytes()
                    n = 400
                    start = time.perf_counter()
                    list(run_tasks(_nothing, range(n), executor=client))
                    dask_overhead = (time.perf_counter() - start) / n
        for (kind, workers), seconds in rows.items():
            label = ("local process pool" if kind == "pool" else "dask LocalCluster") + f", {workers} worker(s)"
            single = rows[(kind, 1)]
            efficiency = single / (seconds * workers)
            print(f"{label:<34} {seconds:8.2f} {args.images / seconds:9.2f} {100 * efficiency:10.0f}%")
        n = 400
        start = time.perf_counter()
        list(run_tasks(_nothing, range(n), jobs=2))
        pool_overhead = (time.perf_counter() - start) / n
        print(f"scheduling overhead per task: dask {1000 * dask_overhead:.2f} ms, "
              f"process pool {1000 * pool_overhead:.2f} ms (a no-op task, {n} tasks, 2 workers)")
        print(f"cluster bands.csv identical to the local run: {same}")


if __name__ == "__main__":
    main()
