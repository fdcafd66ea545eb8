"""Arrow vs shared-memory delivery on a warm `loader serve -cache`: the
same spec (so the same windows) read alternately over both paths, crops/s
and server + client CPU-s per GB delivered, as ratios from the same run.

    python bench/delivery.py --store bench/data/satellite.zarr [--crops 1152] [--rounds 3]

Decoding is taken out: a first pass fills the server's chunk cache, and
every measured pass reads the same epoch from it.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

import lsio_loader  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--array", default="data")
    p.add_argument("--crops", type=int, default=1152)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cache", default="2GiB")
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="lsio-delivery-")
    spec = os.path.join(tmp, "spec.yaml")
    open(spec, "w").write("\n".join([
        "seed: 7", "batch_size: 32", f"samples_per_epoch: {args.crops}", "output_dtype: float32", "streams: 2",
        "order: {mode: iid}", "sources:", "  data:", f"    store: {os.path.abspath(args.store)}", f"    array: {args.array}",
        "    crop: {time: 12, channel: 12, y: 64, x: 64}", ""]))
    sock = os.path.join(tmp, "loader.sock")
    binary = os.environ.get("LSIO_LOADER_BIN", os.path.join(ROOT, "bin", "loader"))
    srv = subprocess.Popen([binary, "serve", "--listen", "unix://" + sock, "-cache", args.cache, "--log-level", "warn"],
                           stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))

        def run(delivery):
            out = os.path.join(tmp, f"{delivery}.json")
            cmd = [sys.executable, os.path.join(HERE, "readers.py"), "ours", "--store", args.store, "--array", args.array,
                   "--windows", os.path.join(tmp, f"windows-{delivery}.npy"), "--spec", spec, "--source", "data",
                   "--address", "unix://" + sock, "--delivery", delivery, "--workers", str(args.workers), "--out", out]
            s0, c0 = proc_cpu(srv.pid), children_cpu()
            subprocess.run(cmd, env=env, check=True)
            r = json.load(open(out))
            st = r["steady"]
            # The reader's steady CPU (its process tree, less checksums) and
            # the server's over the whole pass (its CPU is all delivery).
            server = proc_cpu(srv.pid) - s0
            return {"crops_s": r["crops"] / r["seconds"], "gb": r["bytes"] / 1e9,
                    "client_cpu_gb": st["cpu"] / (st["bytes"] / 1e9),
                    "server_cpu_gb": server / (r["bytes"] / 1e9),
                    "client_total_cpu": children_cpu() - c0, "sums": r["sums"]}

        run("arrow")  # fills the cache
        results = {"arrow": [], "shm": []}
        for _ in range(args.rounds):
            for d in ("arrow", "shm"):
                results[d].append(run(d))
        assert results["arrow"][0]["sums"] == results["shm"][0]["sums"], "the two deliveries disagree"
        summary = {}
        for d, rs in results.items():
            best = max(rs, key=lambda r: r["crops_s"])
            med = sorted(rs, key=lambda r: r["crops_s"])[len(rs) // 2]
            cpu = sorted(r["client_cpu_gb"] + r["server_cpu_gb"] for r in rs)[len(rs) // 2]
            summary[d] = {"crops_s_median": med["crops_s"], "crops_s_best": best["crops_s"], "cpu_s_per_gb_median": cpu,
                          "client_cpu_s_per_gb": sorted(r["client_cpu_gb"] for r in rs)[len(rs) // 2],
                          "server_cpu_s_per_gb": sorted(r["server_cpu_gb"] for r in rs)[len(rs) // 2]}
        summary["shm_over_arrow_crops_s"] = summary["shm"]["crops_s_median"] / summary["arrow"]["crops_s_median"]
        summary["shm_over_arrow_cpu_s_per_gb"] = summary["shm"]["cpu_s_per_gb_median"] / summary["arrow"]["cpu_s_per_gb_median"]
        summary["load"] = os.getloadavg()
        print(json.dumps(summary, indent=1))
    finally:
        srv.terminate()
        srv.wait(10)


if __name__ == "__main__":
    main()
