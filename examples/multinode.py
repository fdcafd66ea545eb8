#!/usr/bin/env python
"""Multi-node reading: one loader beside each rank's trainer, no coordination.

Each rank launches its own `loader serve` (as on its own node) and reads its
share of the same epoch of the same spec, with rank and world size taken
from torch.distributed; only the seed and the epoch are shared. Prints
crops/s per rank and in total (a crop: one source's array of one sample).

    # one node, two ranks
    torchrun --standalone --nproc-per-node 2 examples/multinode.py --samples 512
    # several nodes: run on each (node-rank 0..N-1), the same spec and store
    torchrun --nnodes 4 --nproc-per-node 8 --node-rank $NODE_RANK \\
        --rdzv-backend c10d --rdzv-endpoint $HEAD:29500 examples/multinode.py --spec s3.yaml
    # 1 rank against 2 ranks on this machine, alternating, 3 runs each
    python examples/multinode.py --compare 3 --samples 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lsio_loader  # first: it sets up malloc before torch's thread pools
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent


def load_spec(path: Path, samples: int | None, order: str | None) -> dict[str, Any]:
    """The spec with its stores resolved (URLs kept), samples_per_epoch and
    order overridden when given."""
    spec = yaml.safe_load(path.read_text())
    for src in spec["sources"].values():
        if "://" not in src["store"]:
            src["store"] = str((path.parent / src["store"]).resolve())
    if samples is not None:
        spec["samples_per_epoch"] = samples
    if order == "iid":
        spec["order"] = {"mode": "iid"}
    elif order == "blocked":
        spec["order"] = {"mode": "blocked", "pool": "2GiB"}
    return spec


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_epoch(args: argparse.Namespace) -> dict[str, Any] | None:
    """This rank's share of the epoch, timed from a barrier that every rank
    passes with its server started and warm; rank 0 returns every rank's."""
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")  # torchrun's env://
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    spec = load_spec(args.spec, args.samples, args.order)
    # This rank's own server, as LoaderDataset(spec) alone would launch,
    # started here to count its CPU time too.
    server = lsio_loader.Server()
    ds = lsio_loader.LoaderDataset(spec, address=server.address)  # rank/world_size from torch.distributed
    try:
        # Warm up: the server opens the stores, the client its streams.
        ds.set_epoch(args.epoch + 1)
        for i, _ in enumerate(DataLoader(ds, batch_size=None, num_workers=0)):
            if i + 1 >= args.warmup:
                break
        ds.set_epoch(args.epoch)
        batches = len(ds)
        if distributed:
            lens: list[Any] = [None] * world
            dist.all_gather_object(lens, batches)
            if len(set(lens)) > 1 and rank == 0:
                # A DDP step on a rank with a batch more waits for ever.
                print(f"warning: batches per rank {lens} differ: make samples_per_epoch a multiple of "
                      "batch_size × streams × world_size", file=sys.stderr)
            dist.barrier()
        start, cpu = time.perf_counter(), time.process_time() + cpu_seconds(server.pid)
        samples = 0
        for batch in DataLoader(ds, batch_size=None, num_workers=0):
            samples += len(batch["epoch_index"])
        seconds = time.perf_counter() - start
        cpu = time.process_time() + cpu_seconds(server.pid) - cpu
    finally:
        server.close()
    crops = samples * len(spec["sources"])
    mine = {"rank": rank, "samples": samples, "batches": batches, "seconds": seconds, "cpu_seconds": cpu,
            "crops_per_s": crops / seconds, "crops_per_cpu_s": crops / cpu}
    ranks = [mine]
    if distributed:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
        ranks = gathered
        dist.destroy_process_group()
    if rank != 0:
        return None
    # The ranks started together; the epoch is read when the slowest ends.
    wall = max(r["seconds"] for r in ranks)
    return {
        "world_size": world, "order": spec.get("order", {}).get("mode", "iid"), "epoch": args.epoch,
        "samples": sum(r["samples"] for r in ranks), "sources": len(spec["sources"]), "ranks": ranks,
        "total_crops_per_s": sum(r["samples"] for r in ranks) * len(spec["sources"]) / wall,
        "crops_per_cpu_s": sum(r["samples"] for r in ranks) * len(spec["sources"]) / sum(r["cpu_seconds"] for r in ranks),
        "loadavg": os.getloadavg(),
    }


def compare(args: argparse.Namespace, passthrough: list[str]) -> None:
    """1 rank and 2 ranks in turn (ABBA, so drift in the machine's load
    weighs on both alike), each under torchrun on this machine."""
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.compare):
            for world in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                out = Path(tmp) / f"{repeat}-{world}.json"
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
                       __file__, *passthrough, "--json", str(out)]
                subprocess.run(cmd, check=True)
                result = json.loads(out.read_text())
                results[world].append(result)
                per_rank = ", ".join(f"{r['crops_per_s']:.0f}" for r in result["ranks"])
                print(f"run {repeat} world {world}: total {result['total_crops_per_s']:.0f} crops/s, "
                      f"per rank {per_rank}, {result['crops_per_cpu_s']:.0f} crops/CPU-s, "
                      f"load {result['loadavg'][0]:.1f}", flush=True)
    first = results[1][0]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {first['order']} order, epoch "
          f"{first['epoch']} of {first['samples']} samples × {first['sources']} sources; median of {args.compare}")
    print("| ranks | total crops/s | per rank crops/s | crops per CPU-second (client + server) | load avg (1 min) |")
    print("|---|---|---|---|---|")
    medians = {}
    for world, runs in results.items():
        total = statistics.median(r["total_crops_per_s"] for r in runs)
        per_rank = statistics.median(x["crops_per_s"] for r in runs for x in r["ranks"])
        per_cpu = statistics.median(r["crops_per_cpu_s"] for r in runs)
        loads = [r["loadavg"][0] for r in runs]
        medians[world] = (total, per_cpu)
        print(f"| {world} | {total:.0f} | {per_rank:.0f} | {per_cpu:.0f} | {min(loads):.1f}–{max(loads):.1f} |")
    print(f"2 ranks / 1 rank: total crops/s {medians[2][0] / medians[1][0]:.2f}×, "
          f"crops per CPU-second {medians[2][1] / medians[1][1]:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=HERE / "real_ukv_seviri.yaml")
    parser.add_argument("--samples", type=int, help="samples_per_epoch (default: the spec's)")
    parser.add_argument("--order", choices=["iid", "blocked"], help="the epoch order (default: the spec's)")
    parser.add_argument("--epoch", type=int, default=1, help="the epoch every rank reads (the same on all)")
    parser.add_argument("--warmup", type=int, default=2, help="batches of another epoch read first, untimed")
    parser.add_argument("--json", type=Path, help="write rank 0's result here")
    parser.add_argument("--compare", type=int, metavar="N", help="run 1 and 2 ranks N times each, alternating")
    args = parser.parse_args()
    if args.compare:
        passthrough, skip = [], False
        for a in sys.argv[1:]:
            if not skip and not a.startswith("--compare"):
                passthrough.append(a)
            skip = a == "--compare"
        compare(args, passthrough)
        return
    result = read_epoch(args)
    if result is None:
        return
    for r in result["ranks"]:
        print(f"rank {r['rank']}: {r['samples']} samples in {r['batches']} batches, {r['seconds']:.2f} s, "
              f"{r['crops_per_s']:.0f} crops/s, {r['cpu_seconds']:.2f} CPU-s (client + server)")
    print(f"{result['world_size']} ranks: {result['total_crops_per_s']:.0f} crops/s in total")
    if args.json is not None:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
