"""The built-in demo data (NWP joined with satellite) through the server:
raw crops equal zarr-python's cut at their provenance indices, and the time
labels and t0 agree with xarray's decoded coordinates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

import lsio_loader
from conftest import REPO


@pytest.fixture(scope="module")
def demo_spec(loader_bin: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("demo")
    subprocess.run([loader_bin, "demo", "--size", "tiny", "--out", str(data)], check=True, capture_output=True)
    spec = yaml.safe_load((REPO / "examples" / "sample_data.yaml").read_text())
    for src in spec["sources"].values():
        src["store"] = str(data / Path(src["store"]).name)
    spec["samples_per_epoch"] = 48
    return spec


def reference_crop(spec: dict, meta: dict, isel: np.ndarray) -> np.ndarray:
    """zarr-python's cut at isel, channels picked by label, init_time
    squeezed, transposed to (T, C, H, W)."""
    src = spec["sources"][meta["name"]]
    store = zarr.open_group(meta["store"], mode="r")
    cut = store[meta["array"]][tuple(slice(int(a), int(b)) for a, b in isel)]
    dims = meta["dims"]
    channel_dim = src["dims"]["channel"]
    c = dims.index(channel_dim)
    labels = [str(v) for v in store[channel_dim][int(isel[c][0]):int(isel[c][1])]]
    cut = np.take(cut, [labels.index(name) for name in src["channels"]], axis=c)
    order = [dims.index(d) for d in meta["axes"]]
    squeezed = [i for i in range(len(dims)) if i not in order]
    assert all(cut.shape[i] == 1 for i in squeezed)
    return cut.transpose(order + squeezed).reshape(cut.shape[order[0]], cut.shape[order[1]], cut.shape[order[2]], cut.shape[order[3]])


def test_raw_crops_and_times(demo_spec: dict, server: lsio_loader.Server) -> None:
    import json

    batches = list(lsio_loader.iter_record_batches(demo_spec, address=server.address, raw=True))
    metas = {m["name"]: m for m in json.loads(batches[0].schema.metadata[b"lsio.sources"])}
    assert set(metas) == {"nwp", "satellite"}
    seen = set()
    nwp_ds = xr.open_zarr(metas["nwp"]["store"])
    sat_ds = xr.open_zarr(metas["satellite"]["store"])
    for rb in batches:
        b = lsio_loader.batch_to_numpy(rb)
        for i, idx in enumerate(b["epoch_index"].tolist()):
            assert idx not in seen
            seen.add(idx)
            t0 = b["t0"][i]
            assert t0 != np.iinfo(np.int64).min, "georeferenced samples have a t0"
            for name, meta in metas.items():
                isel = b[f"{name}.isel"][i]
                np.testing.assert_array_equal(b[name][i], reference_crop(demo_spec, meta, isel), err_msg=f"{name} sample {idx}")
            # Satellite labels are its time coordinate over the window, ending at t0.
            t = slice(*b["satellite.isel"][i][0])
            sat_times = sat_ds["time"].values[t].astype("datetime64[ns]").view(np.int64)
            np.testing.assert_array_equal(b["satellite.time"][i], sat_times)
            assert sat_times[-1] == t0
            # NWP labels are init_time + step, and the run was issued by t0.
            dims = metas["nwp"]["dims"]
            nisel = b["nwp.isel"][i]
            init = nwp_ds["init_time"].values[slice(*nisel[dims.index("init_time")])].astype("datetime64[ns]")
            steps = nwp_ds["step"].values[slice(*nisel[dims.index("step")])].astype("timedelta64[ns]")
            np.testing.assert_array_equal(b["nwp.time"][i], (init[0] + steps).view(np.int64))
            assert init[0].view(np.int64) <= t0
    assert seen == set(range(48))


def test_normalised_float_output(demo_spec: dict, server: lsio_loader.Server) -> None:
    batch = next(lsio_loader.iter_batches(demo_spec, address=server.address, streams=1))
    for name in ("nwp", "satellite"):
        assert batch[name].dtype == np.float32
        assert np.isfinite(batch[name]).all(), "NaNs are filled"
        assert abs(float(batch[name].mean())) < 5, "normalised values are near zero"
