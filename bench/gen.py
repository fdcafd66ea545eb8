"""Generate the benchmark workloads with zarr-python (the fallback for
`loader bench gen`, and the reference the Go generator is checked against).

Two stores, deterministic (seeded), weather-like (smooth structure, temporal
drift, noise, a few NaNs in the satellite):

- satellite.zarr: Zarr v3, float32 (time, channel=12, y=512, x=512), shards
  (1, 12, 512, 512) of inner chunks (1, 12, 128, 128), zstd level 1, index
  at the end with crc32c; like SEVIRI non-HRV + HRV resampled to 512 px.
- nwp.zarr: Zarr v2, float32 (init_time, step, variable=17, y=704, x=548),
  chunks (1, 1, 17, 176, 137), blosc zstd level 1 + byte shuffle; the UKV
  layout of /work/shared/data/real/ocf-nowcasting-2023/ukv_nwp.zarr.

Sizes: small (default) is about 1.5 GB raw and fits this 2-core machine;
large is bigger than RAM (about 60 GB raw) and is not meant to run here.
"""

import argparse
import json
import os
import sys
import time

import numcodecs
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

SIZES = {
    "small": {"sat_time": 128, "nwp_init": 3, "nwp_step": 13},
    "large": {"sat_time": 2880, "nwp_init": 16, "nwp_step": 37},
}
SAT_CHANNELS = ["HRV", "IR_016", "IR_039", "IR_087", "IR_097", "IR_108", "IR_120",
                "IR_134", "VIS006", "VIS008", "WV_062", "WV_073"]
NWP_VARIABLES = ["t2m", "u10", "v10", "prmsl", "tcc", "dswrf", "dlwrf", "hcc", "mcc",
                 "lcc", "sde", "r", "vis", "si10", "wdir10", "prate", "t500"]


def smooth_fields(rng, n, h, w, waves=6):
    """n smooth fields of shape (h, w): sums of random plane waves."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32), indexing="ij")
    out = np.zeros((n, h, w), np.float32)
    for i in range(n):
        for _ in range(waves):
            ky, kx = rng.uniform(-8, 8, 2)
            out[i] += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * (ky * yy + kx * xx) + rng.uniform(0, 6.3)).astype(np.float32)
    return out


def gen_satellite(out, n_time, rng):
    c, h, w = len(SAT_CHANNELS), 512, 512
    g = zarr.open_group(os.path.join(out, "satellite.zarr"), mode="w", zarr_format=3)
    a = g.create_array("data", shape=(n_time, c, h, w), chunks=(1, c, 128, 128), shards=(1, c, h, w),
                       dtype="float32", compressors=ZstdCodec(level=1), fill_value=float("nan"),
                       dimension_names=("time", "channel", "y", "x"))
    t0 = np.datetime64("2023-06-01T00:00", "ns")
    g.create_array("time", data=t0 + np.arange(n_time) * np.timedelta64(5, "m"), dimension_names=("time",))
    g.create_array("channel", data=np.array(SAT_CHANNELS), dimension_names=("channel",))
    g.create_array("y", data=np.linspace(1_200_000, 1_200_000 - 3000 * (h - 1), h), dimension_names=("y",))
    g.create_array("x", data=np.linspace(-200_000, -200_000 + 3000 * (w - 1), w), dimension_names=("x",))
    base = smooth_fields(rng, c, h, w) * 20 + 270
    drift = smooth_fields(rng, c, h, w)
    noise = rng.standard_normal((8, c, h, w), dtype=np.float32) * 0.5
    for t in range(n_time):
        field = base + np.float32(np.sin(t / 48 * np.pi)) * 5 * drift + noise[t % 8]
        field = np.round(field, 2)  # sensor quantisation, as real radiances have
        if t % 7 == 1:
            field[:, 100:104, 200:260] = np.nan
        a[t] = field
    zarr.consolidate_metadata(g.store)


def gen_nwp(out, n_init, n_step, rng):
    v, h, w = len(NWP_VARIABLES), 704, 548
    g = zarr.open_group(os.path.join(out, "nwp.zarr"), mode="w", zarr_format=2)
    a = g.create_array("UKV", shape=(n_init, n_step, v, h, w), chunks=(1, 1, v, 176, 137), dtype="float32",
                       compressors=numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE),
                       fill_value=float("nan"), attributes={"_ARRAY_DIMENSIONS": ["init_time", "step", "variable", "y", "x"]})
    t0 = np.datetime64("2023-06-01T00:00", "ns")
    g.create_array("init_time", data=t0 + np.arange(n_init) * np.timedelta64(3, "h"), attributes={"_ARRAY_DIMENSIONS": ["init_time"]})
    g.create_array("step", data=np.arange(n_step) * np.timedelta64(1, "h"), attributes={"_ARRAY_DIMENSIONS": ["step"]})
    g.create_array("variable", data=np.array(NWP_VARIABLES), attributes={"_ARRAY_DIMENSIONS": ["variable"]})
    g.create_array("y", data=np.linspace(1_223_000, 1_223_000 - 2000 * (h - 1), h), attributes={"_ARRAY_DIMENSIONS": ["y"]})
    g.create_array("x", data=np.linspace(-239_000, -239_000 + 2000 * (w - 1), w), attributes={"_ARRAY_DIMENSIONS": ["x"]})
    base = smooth_fields(rng, v, h, w) * 10 + 280
    drift = smooth_fields(rng, v, h, w)
    noise = rng.standard_normal((4, v, h, w), dtype=np.float32) * 0.1
    for i in range(n_init):
        for s in range(n_step):
            field = base + np.float32(np.cos((3 * i + s) / 24 * np.pi)) * 4 * drift + noise[(i + s) % 4]
            a[i, s] = np.round(field, 2)
    zarr.consolidate_metadata(g.store)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    marker = os.path.join(args.out, "COMPLETE.json")
    want = {"size": args.size, **SIZES[args.size], "seed": args.seed, "generator": "bench/gen.py v1"}
    if os.path.exists(marker) and json.load(open(marker)) == want:
        print(f"gen: {args.out} already holds the {args.size} workloads", file=sys.stderr)
        return
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(marker):
        os.remove(marker)
    cfg = SIZES[args.size]
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    gen_satellite(args.out, cfg["sat_time"], rng)
    print(f"gen: satellite.zarr in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    t = time.perf_counter()
    gen_nwp(args.out, cfg["nwp_init"], cfg["nwp_step"], rng)
    print(f"gen: nwp.zarr in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    json.dump(want, open(marker, "w"))


if __name__ == "__main__":
    main()
