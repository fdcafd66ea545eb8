"""CF-packed data variables through the Flight server and the client: crops
equal xarray's decoded values (fill values as NaN, then nan_fill), or the
stored integers with decode_cf: false."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import lsio_loader
from conftest import generic_spec, write_spec

CROP = {"time": 2, "y": 8, "x": 9}
NAN_FILL = -5.0


def write_packed(path: Path, zarr_format: int) -> None:
    """An int16 variable packed by xarray with scale_factor, add_offset and
    _FillValue, as satellite and reanalysis stores are."""
    rng = np.random.default_rng(11)
    kelvin = 275 + 12 * rng.standard_normal((6, 30, 36))
    kelvin[rng.random(kelvin.shape) < 0.05] = np.nan
    ds = xr.Dataset({"data": (("time", "y", "x"), kelvin)})
    encoding = {"data": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15,
                         "_FillValue": np.int16(-32768), "chunks": (2, 16, 16)}}
    ds.to_zarr(path, encoding=encoding, zarr_format=zarr_format, mode="w", consolidated=False)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("decode_cf", [True, False])
def test_packed_crops_equal_xarray(tmp_path: Path, server: lsio_loader.Server, zarr_format: int, decode_cf: bool) -> None:
    write_packed(tmp_path / "packed.zarr", zarr_format)
    spec = generic_spec("packed.zarr", CROP, samples=12)
    spec["sources"]["field"]["nan_fill"] = NAN_FILL
    if not decode_cf:
        spec["sources"]["field"]["decode_cf"] = False
    path = write_spec(tmp_path, spec)
    ref = xr.open_zarr(tmp_path / "packed.zarr", consolidated=False, mask_and_scale=decode_cf)["data"]
    seen = 0
    fills = 0
    for batch in lsio_loader.iter_batches(path, address=server.address):
        crops, isel = np.asarray(batch["field"]), np.asarray(batch["field.isel"])
        assert crops.dtype == np.float32
        for crop, window in zip(crops, isel):
            want = ref.isel({d: slice(int(a), int(b)) for d, (a, b) in zip(ref.dims, window)}).values.astype(np.float32)
            fills += int(np.isnan(want).sum()) if decode_cf else int((want == -32768).sum())
            want = np.where(np.isnan(want), np.float32(NAN_FILL), want)
            np.testing.assert_array_equal(crop, want)
            seen += 1
    assert seen == 12
    assert fills > 0, "the crops should hold some fill values"
