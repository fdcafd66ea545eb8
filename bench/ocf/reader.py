"""ocf-data-sampler as a benchmark peer: the crops bench/run.py gives the other
readers, cut by ocf-data-sampler's own load and select functions. Runs in
bench/ocf/.venv (bench/ocf/setup.sh), never in the project's venv.

    bench/ocf/.venv/bin/python bench/ocf/reader.py --workload satellite|nwp --store S --array A \
        --windows W.npy --batch B --out R.json

Per crop, the same steps as ocf's PVNetDataset._get_sample, minus the
target (GSP/site) data that these workloads do not have:
  satellite  open_sat_data(store) once per worker; per crop
             select_spatial_slice_pixels(Location(x, y, "geostationary"), w, h),
             select_time_slice(t0, 0, (T-1)·5 min, 5 min), the channel range,
             then load_data_dict (xarray_tensorstore.read + .load()).
  nwp        open_nwp(store, provider="ukv") once per worker; per crop
             select_spatial_slice_pixels(Location(x, y, "osgb"), w, h),
             select_time_slice_nwp(t0 = init_time, step0 .. step0+S-1 h, 60 min),
             the channel range, then load_data_dict.
A torch Dataset over those crops in a DataLoader(num_workers=cores,
batch_size=B), which is how PVNet feeds ocf-data-sampler samples to a trainer.

What was adapted: the NWP store opens unchanged (open_ukv renames init_time,
variable, x, y itself). open_sat_data wants the geostationary names and an
`area` attribute, so it opens a metadata-only view of the satellite store
(a temporary directory: arrays x and y renamed x_geostationary and
y_geostationary, `dimension_names` rewritten to match, a placeholder `area`
attribute that selection never reads, the inline consolidated metadata
dropped; every chunk is a symlink to the original store's). ocf delivers
crops in its own layout, (time, channel, x, y) with y ascending (it flips the
store's descending y and transposes); the harness checksum sums the same
elements as for the other readers, found through that layout, and the first
4 crops are also compared element by element with zarr-python's crops of the
original store.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import torch
# Imported before the DataLoader forks its workers, as in a trainer's process;
# each worker still opens the store itself (as the zarr peer does).
from ocf_data_sampler.load.nwp.nwp import open_nwp
from ocf_data_sampler.load.satellite import open_sat_data
from ocf_data_sampler.select.location import Location
from ocf_data_sampler.select.select_spatial_slice import select_spatial_slice_pixels
from ocf_data_sampler.select.select_time_slice import select_time_slice, select_time_slice_nwp
from ocf_data_sampler.utils import load_data_dict


def geostationary_view(store, array):
    """A directory that presents store with ocf's satellite names; chunks are symlinks."""
    store = os.path.abspath(store)
    view = tempfile.mkdtemp(prefix="ocf-sat-view-")
    renamed = {"x": "x_geostationary", "y": "y_geostationary"}
    root = json.load(open(os.path.join(store, "zarr.json")))
    root.pop("consolidated_metadata", None)
    root.setdefault("attributes", {})["area"] = "benchmark placeholder: never read by selection"
    json.dump(root, open(os.path.join(view, "zarr.json"), "w"))
    for name in os.listdir(store):
        src = os.path.join(store, name)
        if not os.path.isdir(src):
            continue
        meta = json.load(open(os.path.join(src, "zarr.json")))
        meta["dimension_names"] = [renamed.get(d, d) for d in meta.get("dimension_names") or []]
        dst = os.path.join(view, renamed.get(name, name))
        os.mkdir(dst)
        json.dump(meta, open(os.path.join(dst, "zarr.json"), "w"))
        for entry in os.listdir(src):
            if entry != "zarr.json":
                os.symlink(os.path.join(src, entry), os.path.join(dst, entry))
    return view


class OcfCrops(torch.utils.data.Dataset):
    """One crop per item, opened once per worker, cut by ocf's select functions."""

    def __init__(self, workload, store, windows):
        self.workload, self.store, self.windows = workload, store, windows
        self.da = None

    def __len__(self):
        return len(self.windows)

    def open(self):
        if self.workload == "satellite":
            return open_sat_data(self.store)
        return open_nwp(self.store, provider="ukv")

    def select(self, w):
        """w: the store's own isel window, dims as stored (t, [step,] channel, y, x)."""
        da = self.da
        sat = self.workload == "satellite"
        xd, yd, system = ("x_geostationary", "y_geostationary", "geostationary") if sat else ("x_osgb", "y_osgb", "osgb")
        (y0, y1), (x0, x1) = w[-2], w[-1]
        ny = da.sizes[yd]
        # The pixel centre ocf slices around: start + size/2, with y counted in
        # ocf's ascending order (it reversed the store's descending y).
        x = float(da[xd].values[x0 + (x1 - x0) // 2])
        y = float(da[yd].values[ny - y1 + (y1 - y0) // 2])
        crop = select_spatial_slice_pixels(da, Location(x=x, y=y, coord_system=system),
                                           width_pixels=int(x1 - x0), height_pixels=int(y1 - y0))
        (c0, c1) = w[-3]
        if sat:
            (t0, t1) = w[0]
            t0 = pd.Timestamp(da.time_utc.values[t0])
            crop = select_time_slice(crop, t0, pd.Timedelta(0), pd.Timedelta(minutes=5 * int(t1 - w[0][0] - 1)),
                                     pd.Timedelta(minutes=5))
        else:
            (i0, i1), (s0, s1) = w[0], w[1]
            if i1 - i0 != 1:
                raise ValueError(f"nwp window {w.tolist()}: ocf selects one init time per crop")
            init = pd.Timestamp(da.init_time_utc.values[i0])
            first, last = (pd.Timedelta(da.step.values[s]) for s in (s0, s1 - 1))
            crop = select_time_slice_nwp(crop, init, first, last, pd.Timedelta(minutes=60))
        crop = crop.isel(channel=slice(int(c0), int(c1)))
        return load_data_dict({"crop": crop})["crop"]

    def __getitem__(self, i):
        if self.da is None:
            self.da = self.open()
        return torch.from_numpy(np.ascontiguousarray(self.select(self.windows[i]).values, dtype=np.float32))


def to_store_layout(crop, workload):
    """ocf's (..., x, y ascending) back to the store's (..., y descending, x)."""
    a = np.swapaxes(crop.numpy(), -1, -2)[..., ::-1, :]
    return a.reshape(1, *a.shape) if workload == "nwp" else a


def check_exact(first_batch, windows, store, array, workload):
    import zarr

    z = zarr.open_array(os.path.join(store, array), mode="r")
    for crop, w in zip(first_batch, windows):
        want = z[tuple(slice(int(a), int(b)) for a, b in w)]
        got = to_store_layout(crop, workload)
        if not np.array_equal(got, want, equal_nan=True):
            raise SystemExit(f"ocf crop for window {w.tolist()} differs from zarr-python's")


# bench/readers.py's: the checksum reads every CHECK_STRIDE-th element.
CHECK_STRIDE = 61


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True, choices=["satellite", "nwp"])
    p.add_argument("--store", required=True)
    p.add_argument("--array", required=True)
    p.add_argument("--windows", required=True, help="(N, ndim, 2) int64 [start, stop) per crop")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    windows = np.load(args.windows)
    view = geostationary_view(args.store, args.array) if args.workload == "satellite" else None
    try:
        loader = torch.utils.data.DataLoader(OcfCrops(args.workload, view or args.store, windows), batch_size=args.batch,
                                             num_workers=os.cpu_count(), persistent_workers=False, prefetch_factor=2)
        # The measurement loop of bench/readers.py, unchanged, so the figures
        # and checksums compare with the other readers'.
        sums = []
        crops = nbytes = 0
        first = None
        checking = 0.0
        sample = None
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for batch in loader:
            t = time.perf_counter()
            if first is None:
                first = t - t0
                first_batch = batch.clone()
            if sample is None:
                # The elements bench/readers.py sums, in ocf's layout: every
                # CHECK_STRIDE-th of the crop in the store's layout.
                order = to_store_layout(torch.arange(batch[0].numel()).reshape(batch.shape[1:]), args.workload)
                sample = torch.from_numpy(np.ascontiguousarray(order.reshape(-1)[::CHECK_STRIDE]))
            x = torch.nan_to_num(batch.reshape(batch.shape[0], -1)[:, sample], nan=0.0)
            sums.append(x.view(torch.int32).sum(1, dtype=torch.int64).numpy())
            crops += batch.shape[0]
            nbytes += batch.numel() * batch.element_size()
            checking += time.perf_counter() - t
        seconds = time.perf_counter() - t0
        cpu_client_iter = time.process_time() - cpu0
        # After the timed loop: the workers would prefetch through it.
        check_exact(first_batch[:4], windows[:4], args.store, args.array, args.workload)
    finally:
        if view:
            shutil.rmtree(view, ignore_errors=True)
    json.dump({"reader": "ocf", "crops": crops, "bytes": nbytes, "seconds": seconds,
               "cpu_client": time.process_time(), "cpu_client_iter": cpu_client_iter,
               "first_batch_seconds": first, "sums": np.concatenate(sums).tolist()}, open(args.out, "w"))


if __name__ == "__main__":
    sys.exit(main())
