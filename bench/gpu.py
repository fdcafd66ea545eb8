"""The GPU leg of `make bench`: the benchmark workloads into CUDA tensors,
lsio-loader next to tensorstore, on a machine with an NVIDIA GPU.

    python bench/gpu.py [--data DIR] [--json OUT] [--md OUT] [--modes warm,cold]

Needs torch with CUDA, tensorstore and pyarrow (no zarr-python), and the
loader binary (LSIO_LOADER_BIN, else bin/loader). Both readers deliver the
same crops as float32 CUDA tensors: ours through LoaderDataset in a
DataLoader (num_workers, pin_memory=True, then .to(cuda, non_blocking=True)),
tensorstore with every crop of a batch read concurrently and the next
batch's reads in flight, stacked into pinned host memory and copied with
non_blocking. Checksums (the sum of float32 bit patterns per crop, NaN read
as 0) are taken on the GPU, so a reader is credited only with bytes that
reached GPU memory intact, and the two readers must agree. GB/s is bytes in
GPU memory per second after the first batch (steady state); the time to
the first batch (server start, plan, first reads) is reported apart.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
import lsio_loader  # noqa: E402  first, as its README asks: it sets malloc up before thread pools start
import numpy as np  # noqa: E402
import torch  # noqa: E402
from run import BATCH, BIN, WORKLOADS, evict, sh, warm  # noqa: E402


def array_meta(store, array):
    """(shape, read chunk shape) from the metadata alone."""
    v3 = os.path.join(store, array, "zarr.json")
    if os.path.exists(v3):
        meta = json.load(open(v3))
        chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        for codec in meta.get("codecs", []):
            if codec["name"] == "sharding_indexed":
                chunks = codec["configuration"]["chunk_shape"]
        return meta["shape"], chunks
    meta = json.load(open(os.path.join(store, array, ".zarray")))
    return meta["shape"], meta["chunks"]


def write_spec(path, store, array, dims, crop, n, streams):
    lines = ["seed: 7", f"batch_size: {BATCH}", f"samples_per_epoch: {n}", "output_dtype: float32",
             f"streams: {streams}", "sources:", "  data:", f"    store: {store}", f"    array: {array}", "    crop:"]
    lines += [f"      {d}: {c}" for d, c in zip(dims, crop)]
    open(path, "w").write("\n".join(lines) + "\n")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def checksums(x):
    flat = torch.nan_to_num(x.reshape(x.shape[0], -1), nan=0.0)
    return flat.view(torch.int32).sum(1, dtype=torch.int64)


class Meter:
    """Bytes and time into GPU memory, steady state from the first batch."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.first = None
        self.crops = self.bytes = self.steady_bytes = 0
        self.sums = []

    def add(self, x):
        self.sums.append(checksums(x))
        self.crops += x.shape[0]
        self.bytes += x.numel() * x.element_size()
        if self.first is None:
            sync()
            self.first = time.perf_counter()
        else:
            self.steady_bytes += x.numel() * x.element_size()

    def result(self, reader, cpu0):
        sync()
        end = time.perf_counter()
        steady = end - self.first
        return {"reader": reader, "crops": self.crops, "bytes": self.bytes, "seconds": end - self.t0,
                "first_batch_seconds": self.first - self.t0, "steady_seconds": steady,
                "gbps": self.steady_bytes / steady / 1e9, "crops_per_s": (self.crops - BATCH) / steady,
                "cpu_seconds": tree_cpu() - cpu0, "sums": torch.cat(self.sums).cpu().tolist()}


class Staging:
    """Two pinned host buffers that batches are copied into and sent on to
    the GPU from with non_blocking copies; a buffer is refilled only once
    its last copy is done."""

    def __init__(self, shape, dev):
        self.dev = dev
        self.pin = dev.type == "cuda"
        self.bufs = [torch.empty(shape, dtype=torch.float32, pin_memory=self.pin) for _ in range(2)]
        self.copied = [torch.cuda.Event() if self.pin else None for _ in range(2)]
        self.i = 0

    def host(self):
        """The next host buffer, once free."""
        self.i ^= 1
        if self.pin:
            self.copied[self.i].synchronize()
        return self.bufs[self.i]

    def send(self, n):
        x = self.bufs[self.i][:n].to(self.dev, non_blocking=True)
        if self.pin:
            self.copied[self.i].record()
        return x


def tree_cpu():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def proc_cpu(pid):
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def run_ours(spec, workers, dev, windows_out, profile=None, cache=None):
    import lsio_loader

    cpu0 = tree_cpu()
    binary = None
    extra = (["-cpuprofile", profile] if profile else []) + (["-cache", cache] if cache else [])
    if extra:
        binary = os.path.join(os.path.dirname(windows_out), "serve-with-flags")
        with open(binary, "w") as f:
            f.write(f'#!/bin/sh\nexec "{BIN}" "$@" {" ".join(extra)}\n')
        os.chmod(binary, 0o755)
    server = lsio_loader.Server(binary=binary)
    ds = lsio_loader.LoaderDataset(spec, address=server.address, split="train", epoch=0)
    pin = dev.type == "cuda"
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=pin and workers > 0,
                                         prefetch_factor=4 if workers else None, persistent_workers=False)
    m = Meter()
    served = []
    staging = None
    for batch in loader:
        x = batch["data"]
        if workers == 0:
            # Zero-copy Arrow memory: one copy into pinned memory.
            if staging is None:
                staging = Staging(x.shape, dev)
            staging.host()[:x.shape[0]].copy_(x)
            x = staging.send(x.shape[0])
        else:
            x = x.to(dev, non_blocking=True)  # pinned by the DataLoader
        m.add(x)
        served.append(batch["data.isel"].numpy().copy())
    r = m.result(f"ours-{workers}" + (f" cache {cache}" if cache else ""), cpu0)
    r["server_cpu_seconds"] = proc_cpu(server.pid)
    del loader
    server.close()
    # The server's and the workers' CPU counts once they are reaped.
    r["cpu_seconds"] = tree_cpu() - cpu0
    w = np.concatenate(served).reshape(-1, served[0][0].size // 2, 2)
    np.save(windows_out, w)
    r["workers"] = workers
    return r


def run_tensorstore(store, array, driver, windows, crop, dev):
    import tensorstore as ts

    cpu0 = tree_cpu()
    cores = os.cpu_count()
    ctx = ts.Context({"data_copy_concurrency": {"limit": cores}, "file_io_concurrency": {"limit": 128}})
    arr = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": os.path.join(store, array)}},
                  read=True, context=ctx).result()
    staging = Staging((BATCH, *crop), dev)

    def issue(b0):
        return [arr[tuple(slice(int(a), int(b)) for a, b in w)].read() for w in windows[b0:b0 + BATCH]]

    m = Meter()
    pending = issue(0)
    for b0 in range(0, len(windows), BATCH):
        futures = pending
        pending = issue(b0 + BATCH) if b0 + BATCH < len(windows) else None
        host = staging.host().numpy()
        for k, f in enumerate(futures):
            host[k] = f.result()
        m.add(staging.send(len(futures)))
    return m.result("tensorstore", cpu0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(HERE, "data"))
    p.add_argument("--size", default="small", choices=["small", "large"])
    p.add_argument("--modes", default="warm,cold")
    p.add_argument("--workers", default="0,4", help="our DataLoader's num_workers, one run each (0: the main process reads the streams in threads)")
    p.add_argument("--scale", type=int, default=3, help="crops per reader: the workload's default × scale")
    p.add_argument("--readers", default="ours,tensorstore")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--cache", help="also run ours (num_workers=0) with `loader serve -cache CACHE`, e.g. 16GiB")
    p.add_argument("--profile", help="write the server's CPU profile of each run as PROFILE-WORKLOAD-MODE.pprof")
    p.add_argument("--device", default="cuda", help="cuda; cpu only to try the script without a GPU")
    p.add_argument("--json", default=os.path.join(HERE, "data", "gpu.json"))
    p.add_argument("--md", default=os.path.join(HERE, "GPU_RESULTS.md"))
    args = p.parse_args()
    dev = torch.device(args.device)
    subprocess.run([BIN, "bench", "gen", "--size", args.size, "--out", args.data], check=True)
    gpu = torch.cuda.get_device_properties(0) if dev.type == "cuda" else None
    info = {"gpu": f"{gpu.name}, {gpu.total_memory / 2**30:.0f} GiB" if gpu else "none (cpu)", "cores": os.cpu_count(),
            "cpu": sh("lscpu | grep 'Model name' | head -1").split(":", 1)[-1].strip(),
            "memory": sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'"), "torch": torch.__version__,
            "tensorstore": __import__("importlib.metadata").metadata.version("tensorstore"), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    report = {"machine": info, "workloads": {}}
    tmp = tempfile.mkdtemp(prefix="lsio-gpu-")
    for name in args.workloads.split(","):
        wl = WORKLOADS[name]
        store = os.path.join(os.path.abspath(args.data), wl["store"])
        n = wl["crops"] * args.scale // BATCH * BATCH
        spec = os.path.join(tmp, f"{name}.yaml")
        workers = [int(w) for w in args.workers.split(",")]
        write_spec(spec, store, wl["array"], wl["dims"], wl["crop"], n, max(4, *workers))
        windows = os.path.join(tmp, f"{name}.npy")
        res = {"shape": array_meta(store, wl["array"])[0], "crop": wl["crop"], "runs": {}}
        for mode in args.modes.split(","):
            runs = {}
            readers = [f"ours-{w}" for w in workers] if "ours" in args.readers.split(",") else []
            if args.cache and readers:
                readers.append(f"ours-0 cache {args.cache}")
            readers += [r for r in args.readers.split(",") if r != "ours"]
            for reader in readers:
                (evict if mode == "cold" else warm)(store)
                print(f"gpu: {name} {mode} {reader} ...", file=sys.stderr, flush=True)
                if reader.startswith("ours"):
                    w = int(reader.split("-")[1].split()[0])
                    cache = args.cache if "cache" in reader else None
                    profile = f"{args.profile}-{name}-{mode}-{w}.pprof" if args.profile and not cache else None
                    r = run_ours(spec, w, dev, windows, profile, cache)
                else:
                    r = run_tensorstore(store, wl["array"], wl["driver"], np.load(windows), wl["crop"], dev)
                print(f"gpu:   {r['gbps']:.3f} GB/s into GPU, {r['crops_per_s']:.0f} crops/s", file=sys.stderr)
                runs[reader] = r
            # Our runs serve the same crops in the same order (streams dealt
            # round-robin), and tensorstore reads the windows they served.
            base = next((r for k, r in runs.items() if k.startswith("ours")), None)
            for r in runs.values():
                if base is not None and r is not base:
                    r["agrees"] = r["sums"] == base["sums"]
            for r in runs.values():
                r.pop("sums")
            res["runs"][mode] = runs
        report["workloads"][name] = res
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    json.dump(report, open(args.json, "w"), indent=1)
    text = render(report)
    open(args.md, "w").write(text)
    print(text)


def render(report):
    m = report["machine"]
    out = ["# GPU results", "", f"Generated by `bench/gpu.py` on {m['date']}: {m['gpu']}; {m['cores']} cores ({m['cpu']}); "
           f"{m['memory']}; torch {m['torch']}, tensorstore {m['tensorstore']}.", "",
           "Bytes in GPU memory per second after the first batch; every crop's checksum taken on the GPU; "
           "both readers read the same crops. ours-N: LoaderDataset in a DataLoader with num_workers=N "
           "(0: the main process reads the streams in threads); 'cache': `loader serve -cache`, which tensorstore "
           "is not given; ours ÷ tensorstore compares our best run without a cache. CPU s/GB counts every "
           "process of the reader (the server's share in brackets).", ""]
    for name, res in report["workloads"].items():
        out += [f"## {name}: shape {res['shape']}, crops {res['crop']} float32, batch {BATCH}", "",
                "| mode | reader | GB/s into GPU | crops/s | first batch s | CPU s/GB (server) | same crops | ours ÷ reader |",
                "|---|---|---|---|---|---|---|---|"]
        for mode, runs in res["runs"].items():
            # Like for like: our best run without a chunk cache (tensorstore
            # runs without one).
            ours = max((r["gbps"] for k, r in runs.items() if k.startswith("ours") and "cache" not in k), default=None)
            for reader, r in runs.items():
                same = "—" if "agrees" not in r else ("✓" if r["agrees"] else "✗")
                ratio = "—" if reader.startswith("ours") or ours is None else f"{ours / r['gbps']:.2f}×"
                gb = r["bytes"] / 1e9
                cpu = f"{r['cpu_seconds'] / gb:.1f}"
                if "server_cpu_seconds" in r:
                    cpu += f" ({r['server_cpu_seconds'] / gb:.1f})"
                out.append(f"| {mode} | {reader} | {r['gbps']:.2f} | {r['crops_per_s']:.0f} | {r['first_batch_seconds']:.2f} | "
                           f"{cpu} | {same} | {ratio} |")
        out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # JSON → markdown again
        print(render(json.load(open(sys.argv[2]))), end="")
    else:
        sys.exit(main())
