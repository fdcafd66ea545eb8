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
from run import BATCH, BIN, WORKLOADS, evict, randomness, sh, warm  # noqa: E402


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


def write_spec(path, store, array, dims, crop, n, streams, pool=None):
    order = f"order: {{mode: blocked, pool: {pool}}}" if pool else "order: {mode: iid}"
    lines = ["seed: 7", f"batch_size: {BATCH}", f"samples_per_epoch: {n}", "output_dtype: float32",
             f"streams: {streams}", order, "sources:", "  data:", f"    store: {store}", f"    array: {array}", "    crop:"]
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


class InFlight:
    """Host batches whose non_blocking copies to the GPU may still be
    reading them: a batch viewing the shared-memory ring must stay alive
    until its copy is done, or its slot goes back to the server (and is
    refilled) under the copy."""

    def __init__(self, depth=2):
        self.depth = depth
        self.held = []

    def hold(self, batch):
        event = torch.cuda.Event()
        event.record()
        self.held.append((event, batch))
        while len(self.held) > self.depth:
            event, _ = self.held.pop(0)
            event.synchronize()

    def clear(self):
        sync()
        self.held.clear()


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


def run_ours(spec, workers, dev, windows_out, profile=None, cache=None, label=None):
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
    cuda = dev.type == "cuda"
    # In the main process on CUDA the streams' shared-memory rings are
    # page-locked (pin_memory=True): each batch goes from its slot to the
    # GPU in one copy, with no staging buffer.
    ring_pinned = cuda and workers == 0
    ds = lsio_loader.LoaderDataset(spec, address=server.address, split="train", epoch=0, pin_memory=ring_pinned)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=cuda and workers > 0,
                                         prefetch_factor=4 if workers else None, persistent_workers=False)
    m = Meter()
    served = []
    staging = None
    in_flight = InFlight()
    for batch in loader:
        x = batch["data"]
        if ring_pinned:
            x = x.to(dev, non_blocking=True)
            in_flight.hold(batch)
        elif workers == 0:
            # Zero-copy but not page-locked: one copy into pinned memory.
            if staging is None:
                staging = Staging(x.shape, dev)
            staging.host()[:x.shape[0]].copy_(x)
            x = staging.send(x.shape[0])
        else:
            x = x.to(dev, non_blocking=True)  # pinned by the DataLoader
        m.add(x)
        served.append(batch["data.isel"].numpy().copy())
    r = m.result(label or (f"ours-{workers}" + (f" cache {cache}" if cache else "")), cpu0)
    in_flight.clear()
    r["server_cpu_seconds"] = proc_cpu(server.pid)
    r["server_peak_rss_gib"] = peak_rss_gib(server.pid)
    del loader
    server.close()
    # The server's and the workers' CPU counts once they are reaped.
    r["cpu_seconds"] = tree_cpu() - cpu0
    w = np.concatenate(served).reshape(-1, served[0][0].size // 2, 2)
    np.save(windows_out, w)
    r["workers"] = workers
    r["ring_pinned"] = ring_pinned
    return r


def peak_rss_gib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return None


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
    p.add_argument("--readers", default="ours,ours-blocked,tensorstore",
                   help="ours: one run per --workers; ours-blocked: the blocked order (num_workers=0), an epoch of the "
                        "array's bytes in crops")
    p.add_argument("--blocked-epoch", type=float, help="ours-blocked's epoch in crops holding this many times the array's "
                   "bytes (default: the small workload's epoch scaled to the array)")
    p.add_argument("--streams", type=int, help="the spec's streams (default: half the cores, at least 4 and at least "
                   "num_workers; on 16 cores 8 streams fed the GPU 1.15-1.3x as fast as 4 or 16 in the blocked order)")
    p.add_argument("--pool", default="256MiB", help="the blocked order's pool (order.pool)")
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
        streams = args.streams or max(4, os.cpu_count() // 2, *workers)
        write_spec(spec, store, wl["array"], wl["dims"], wl["crop"], n, streams)
        shape = array_meta(store, wl["array"])[0]
        # The blocked order decodes each chunk once per epoch, so its rate
        # depends on how many crops an epoch cuts from the array: here the
        # small workload's epoch scaled to this array (1.7 times the
        # array's bytes for satellite, 1.25 for nwp), or --blocked-epoch
        # times the array's bytes.
        per_array = args.blocked_epoch or wl["crops"] * np.prod(wl["crop"]) / np.prod(wl["small_shape"])
        n_blocked = max(int(per_array * np.prod(shape) / np.prod(wl["crop"])) // BATCH, 1) * BATCH
        blocked_spec = os.path.join(tmp, f"{name}-blocked.yaml")
        write_spec(blocked_spec, store, wl["array"], wl["dims"], wl["crop"], n_blocked, streams, pool=args.pool)
        windows = os.path.join(tmp, f"{name}.npy")
        res = {"shape": shape, "crop": wl["crop"], "runs": {}}
        chosen = args.readers.split(",")
        if "ours-blocked" in chosen:
            res["blocked"] = {"streams": streams, "pool": args.pool, "samples_per_epoch": n_blocked, "epoch_arrays": float(per_array), "randomness": randomness(blocked_spec)}
        for mode in args.modes.split(","):
            runs = {}
            readers = [f"ours-{w}" for w in workers] if "ours" in chosen else []
            if args.cache and readers:
                readers.append(f"ours-0 cache {args.cache}")
            readers += [r for r in chosen if r != "ours"]
            for reader in readers:
                (evict if mode == "cold" else warm)(store)
                print(f"gpu: {name} {mode} {reader} ...", file=sys.stderr, flush=True)
                if reader == "ours-blocked":
                    profile = f"{args.profile}-{name}-{mode}-blocked.pprof" if args.profile else None
                    r = run_ours(blocked_spec, 0, dev, os.path.join(tmp, f"{name}-blocked.npy"), profile, label=reader)
                    r["samples_per_epoch"] = n_blocked
                elif reader.startswith("ours"):
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
            base = next((r for k, r in runs.items() if k.startswith("ours") and k != "ours-blocked"), None)
            for k, r in runs.items():
                if base is not None and r is not base and k != "ours-blocked":
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
                "| mode | reader | GB/s into GPU | crops/s | first batch s | CPU s/GB (server) | peak RSS GiB (server) | same crops | ours ÷ reader |",
                "|---|---|---|---|---|---|---|---|---|"]
        notes = []
        for mode, runs in res["runs"].items():
            # Like for like: our best iid run without a chunk cache
            # (tensorstore runs without one).
            iid = {k: r for k, r in runs.items() if k.startswith("ours") and "cache" not in k and k != "ours-blocked"}
            ours = max((r["gbps"] for r in iid.values()), default=None)
            for reader, r in runs.items():
                same = "—" if "agrees" not in r else ("✓" if r["agrees"] else "✗")
                ratio = "—" if reader.startswith("ours") or ours is None else f"{ours / r['gbps']:.2f}×"
                gb = r["bytes"] / 1e9
                cpu = f"{r['cpu_seconds'] / gb:.1f}"
                if "server_cpu_seconds" in r:
                    cpu += f" ({r['server_cpu_seconds'] / gb:.1f})"
                rss = f"{r['server_peak_rss_gib']:.2f}" if r.get("server_peak_rss_gib") else ""
                out.append(f"| {mode} | {reader} | {r['gbps']:.2f} | {r['crops_per_s']:.0f} | {r['first_batch_seconds']:.2f} | "
                           f"{cpu} | {rss} | {same} | {ratio} |")
            blocked, base = runs.get("ours-blocked"), runs.get("ours-0")
            if blocked and base:
                notes.append(f"{mode}: ours-blocked ÷ ours-0 (iid) = {blocked['gbps'] / base['gbps']:.2f}× into GPU memory.")
        out.append("")
        b = res.get("blocked")
        if b:
            rnd = b["randomness"]
            spread = (f"within-batch spread of crop starts {rnd['time']:.2f}× iid's in time and {rnd['space']:.2f}× in space"
                      if "time" in rnd else f"randomness not measured: {rnd.get('error', '?')}")
            reach = f"; crop starts reached in space: {rnd['reach']:.0%} this epoch, {rnd['reach_epochs']:.0%} over epochs" if "reach" in rnd else ""
            out += [f"ours-blocked: `order: {{mode: blocked, pool: {b['pool']}}}`, {b['samples_per_epoch']} samples per epoch "
                    f"(crops holding {b.get('epoch_arrays', 1):.2f}× the array's bytes), {b.get('streams', 4)} streams, num_workers=0 with the shared-memory rings page-locked "
                    f"(pin_memory=True: one copy from the ring into GPU memory); {spread}{reach}.", ""]
        out += notes + ([""] if notes else [])
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # JSON → markdown again
        print(render(json.load(open(sys.argv[2]))), end="")
    else:
        sys.exit(main())
