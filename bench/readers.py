"""One benchmark reader, run in its own process by bench/run.py so that its
CPU time and memory are measured alone.

    python bench/readers.py READER --store S --array A --windows W.npy --batch B --out R.json

READER is one of:
  ours        lsio_loader.LoaderDataset over `loader serve`, DataLoader(batch_size=None);
              writes the windows it was served (from the `<source>.isel` provenance)
              to --windows, so that the peers read exactly the same crops
  zarr        zarr-python 3 + xarray (xr.open_zarr, lazy, no dask) in a torch
              Dataset, DataLoader(num_workers=cores, batch_size=B)
  tensorstore tensorstore's Python API, every crop of a batch read concurrently;
              with --cache-pool, decoded chunks are kept in a cache_pool of that many bytes;
              with --warm-passes, that many untimed passes over the windows come first
Every reader delivers float32 torch tensors of shape (B, *crop) and records,
per crop, a checksum (the sum of the float32 bit patterns of every 61st element, NaN read
as 0 as our output does by default), which run.py compares across readers:
every peer must return the same data. The checksums' time counts (a
reader that prefetches works on while they run); their CPU does not.
"""

import argparse
import json
import os
import resource
import sys
import time

if sys.argv[1:2] == ["ours"]:
    # First, as the README asks: it sets malloc up before thread pools
    # start. Only for ours: the peers keep their process's defaults.
    import lsio_loader  # noqa: F401

import numpy as np  # noqa: E402
import torch  # noqa: E402


# The checksum reads every CHECK_STRIDE-th element of a crop (a prime, so
# that it walks across rows); bench/ocf/reader.py uses the same.
CHECK_STRIDE = 61


def windows_to_slices(w):
    return tuple(slice(int(a), int(b)) for a, b in w)


class ZarrXarrayCrops(torch.utils.data.Dataset):
    """What a PyTorch user writes today: xarray over zarr-python, one crop per item."""

    def __init__(self, store, array, windows):
        self.store, self.array, self.windows = store, array, windows
        self.da = None

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        import xarray as xr

        if self.da is None:  # opened once per worker process
            self.da = xr.open_zarr(self.store, consolidated=True, chunks=None, mask_and_scale=False)[self.array]
        sel = {d: s for d, s in zip(self.da.dims, windows_to_slices(self.windows[i]))}
        return torch.from_numpy(np.ascontiguousarray(self.da.isel(sel).values, dtype=np.float32))


def run_zarr(args, windows):
    ds = ZarrXarrayCrops(args.store, args.array, windows)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=os.cpu_count(),
                                         persistent_workers=False, prefetch_factor=2)
    for batch in loader:
        yield batch


def open_tensorstore(args):
    import tensorstore as ts

    spec = {"driver": args.driver, "kvstore": {"driver": "file", "path": os.path.join(args.store, args.array)}}
    if args.cache_pool:
        # The blocked comparison: chunks stay decoded in memory, and are not
        # re-validated against the files on every read.
        spec["context"] = {"cache_pool": {"total_bytes_limit": args.cache_pool}}
        spec["recheck_cached_data"] = "open"
    return ts.open(spec, read=True).result()


def tensorstore_batches(arr, windows, batch):
    for b0 in range(0, len(windows), batch):
        futures = [arr[windows_to_slices(w)].read() for w in windows[b0:b0 + batch]]
        crops = [f.result() for f in futures]
        yield torch.from_numpy(np.stack(crops).astype(np.float32, copy=False))


def run_tensorstore(args, windows):
    if not args.warm_passes:
        # Opening counts, as our reader's server start and plan do.
        return (b for b in tensorstore_batches(open_tensorstore(args), windows, args.batch))
    # The warm-cache comparison (bench/delivery.py): untimed passes over the
    # same windows fill the cache_pool, as a first pass fills `serve -cache`.
    arr = open_tensorstore(args)
    t = time.perf_counter()
    for _ in range(args.warm_passes):
        for _ in tensorstore_batches(arr, windows, args.batch):
            pass
    args.warm_seconds = time.perf_counter() - t
    return tensorstore_batches(arr, windows, args.batch)


def run_ours(args, windows_out):
    import lsio_loader

    ds = lsio_loader.LoaderDataset(args.spec, split="train", epoch=0, address=args.address, delivery=args.delivery)
    # What the pass really used: run.py's notes report it.
    args.used = {"delivery": ds.delivery, "address": ds.address.split("://", 1)[0]}
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=args.workers)
    served = []
    for batch in loader:
        served.append(batch[f"{args.source}.isel"].numpy().copy())
        yield batch[args.source]
    ds.close()
    w = np.concatenate(served).reshape(-1, served[0][0].size // 2, 2)
    np.save(windows_out, w)


def tree_cpu():
    """CPU seconds of this process and all its descendants, living (from
    /proc) or reaped."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + children.ru_utime + children.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            continue
        for kid in map(int, kids):
            pending.append(kid)
            try:
                stat = open(f"/proc/{kid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(stat[11]) + int(stat[12])) / tick
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reader", choices=["ours", "zarr", "tensorstore"])
    p.add_argument("--store", required=True)
    p.add_argument("--array", required=True)
    p.add_argument("--windows", required=True, help="(N, ndim, 2) int64 [start, stop) per crop")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--driver", default="zarr3", help="tensorstore: zarr3 or zarr (v2)")
    p.add_argument("--cache-pool", type=int, default=0, help="tensorstore: cache_pool bytes (0: none)")
    p.add_argument("--warm-passes", type=int, default=0, help="tensorstore: untimed passes over the windows first "
                   "(with --cache-pool: reads from a warm cache)")
    p.add_argument("--spec", help="ours: the experiment spec")
    p.add_argument("--source", default="sat", help="ours: the spec's source name")
    p.add_argument("--workers", type=int, default=0, help="ours: DataLoader workers")
    p.add_argument("--delivery", choices=["shm", "arrow"], help="ours: crops through shared memory or in the Flight stream "
                   "(default: shm on the unix socket of the server it launches)")
    p.add_argument("--address", help="ours: a running server's address (default: launch one)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)

    if args.reader == "ours":
        batches = run_ours(args, args.windows)
    else:
        windows = np.load(args.windows)
        batches = {"zarr": run_zarr, "tensorstore": run_tensorstore}[args.reader](args, windows)

    sums = []
    crops = nbytes = 0
    first = None
    checking = checking_cpu = 0.0
    scratch = None
    t0 = last = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        if first is None:
            first = t - t0
            steady_cpu0, steady_t0 = tree_cpu(), t
        c = time.thread_time()
        # Every CHECK_STRIDE-th element: enough to tell crops apart, cheap
        # enough that its time, which counts, weighs little. Into a buffer
        # kept across batches: a fresh one would cost page faults.
        flat = batch.reshape(batch.shape[0], -1)[:, ::CHECK_STRIDE]
        if scratch is None or scratch.shape != flat.shape or scratch.dtype != flat.dtype:
            scratch = torch.empty(flat.shape, dtype=flat.dtype)
        x = torch.nan_to_num(flat, nan=0.0, out=scratch)
        sums.append(x.view(torch.int32).sum(1, dtype=torch.int64).numpy())
        crops += batch.shape[0]
        nbytes += batch.numel() * batch.element_size()
        if crops == batch.shape[0]:
            first_bytes, steady_checking = nbytes, 0.0
        else:
            steady_checking += time.thread_time() - c
        checking_cpu += time.thread_time() - c
        last = time.perf_counter()
        checking += last - t
    # The checksums' time stays in: a reader that prefetches keeps working
    # while they run, so subtracting it would credit it with that work.
    # Their CPU is left out of the reader's CPU (it is this thread's).
    # The time ends with the last batch in hand: what a reader does once
    # the stream is done (our server's shutdown, tensorstore's teardown) is
    # no wait a training loop sees, though its CPU counts.
    seconds = last - t0
    # Steady state: from the first batch's arrival to the end, the CPU of
    # the whole process tree (our server, DataLoader workers) less the
    # checksums', per byte delivered after the first batch. It leaves out
    # what a reader pays once (interpreter and torch import: ~4 CPU-s,
    # server start, plan), which weighs on a short run's CPU s/GB.
    steady = None
    if first is not None and nbytes > first_bytes:
        steady = {"bytes": nbytes - first_bytes, "seconds": last - steady_t0,
                  "cpu": tree_cpu() - steady_cpu0 - steady_checking}
    json.dump({"reader": args.reader, "crops": crops, "bytes": nbytes, "seconds": seconds,
               "first_batch_seconds": first, "cpu_checking": checking_cpu, "cpu_self": time.process_time(),
               "steady": steady, "warm_seconds": getattr(args, "warm_seconds", None), "used": getattr(args, "used", None),
               "sums": np.concatenate(sums).tolist()}, open(args.out, "w"))


if __name__ == "__main__":
    sys.exit(main())
