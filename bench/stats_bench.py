"""`loader stats` against xarray + dask `.mean()/.std()` and fio on the same
store, warm and cold; run by bench/run.py (or alone).

    python bench/stats_bench.py --store S --array A --json OUT.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import BIN, evict, fio, store_bytes, warm  # noqa: E402


def loader_stats(store, array):
    t = time.perf_counter()
    proc = subprocess.Popen([BIN, "stats", store, "--variables", array], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"loader stats failed with status {status}")
    seconds = time.perf_counter() - t
    import yaml

    v = yaml.safe_load(out)["variables"][array]
    return seconds, ru.ru_utime + ru.ru_stime, np.array(v["mean"]), np.array(v["std"])


def dask_stats(store, array, dims):
    import dask
    import xarray as xr

    import resource

    t, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    da = xr.open_zarr(store, mask_and_scale=False)[array]
    reduce = [d for d in da.dims if d not in dims]
    with dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
        mean, std = dask.compute(da.mean(reduce, skipna=True), da.std(reduce, skipna=True))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return time.perf_counter() - t, cpu, np.asarray(mean.values), np.asarray(std.values)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--array", required=True)
    p.add_argument("--channel-dim", default="channel")
    p.add_argument("--json", required=True)
    args = p.parse_args()
    import xarray as xr

    da = xr.open_zarr(args.store)[args.array]
    decoded = da.size * da.dtype.itemsize
    stored = store_bytes(os.path.join(args.store, args.array))
    runs, means = [], {}
    for mode in ["warm", "cold"]:
        for reader, fn in [("loader stats", lambda: loader_stats(args.store, args.array)),
                           ("xarray + dask", lambda: dask_stats(args.store, args.array, [args.channel_dim]))]:
            if mode == "cold":
                evict(args.store)
            else:
                warm(args.store)
            seconds, cpu, mean, std = fn()
            means[reader] = (mean, std)
            runs.append({"reader": reader, "mode": mode, "seconds": seconds, "cpu": cpu, "stored_gbps": stored / seconds / 1e9,
                         "decoded_gbps": decoded / seconds / 1e9})
    evict(args.store)
    disk = fio("statsseq", args.store, "read", 1 << 20, 1)
    if disk:
        runs.append({"reader": "fio sequential O_DIRECT io_uring (disk limit)", "mode": "cold", "seconds": stored / disk / 1e9, "cpu": None,
                     "stored_gbps": disk, "decoded_gbps": disk * decoded / stored})
    (m0, s0), (m1, s1) = means["loader stats"], means["xarray + dask"]
    agree = np.allclose(m0, m1, rtol=1e-6) and np.allclose(s0, s1, rtol=1e-5)
    cold = next(r for r in runs if r["reader"] == "loader stats" and r["mode"] == "cold")
    note = (f"{decoded / 1e9:.2f} GB decoded from {stored / 1e9:.2f} GB stored. loader stats and dask "
            f"{'agree' if agree else 'DISAGREE'} on every channel's mean and std. ")
    if disk:
        idle = stored / (cold["cpu"] / os.cpu_count()) / 1e9
        note += (f"Cold, loader stats reads at {cold['stored_gbps'] / disk:.0%} of fio's sequential disk bandwidth (target ≥ 80%); "
                 f"its CPU time alone, spread over all {os.cpu_count()} cores of an idle machine, would allow "
                 f"{min(idle, disk) / disk:.0%} (decode-bound at {idle:.2f} GB/s stored).")
    json.dump({"runs": runs, "note": note}, open(args.json, "w"), indent=1)
    print(json.dumps(runs, indent=1), note)


if __name__ == "__main__":
    main()
