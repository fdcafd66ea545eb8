"""Fixtures for the end-to-end tests: the loader binary, a server, and
stores that zarr-python writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

import lsio_loader

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def loader_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """$LSIO_LOADER_BIN (the Makefile builds it), else a fresh build of the checkout."""
    env = os.environ.get("LSIO_LOADER_BIN")
    if env:
        assert os.access(env, os.X_OK), f"LSIO_LOADER_BIN={env} is not executable: run `make build`"
        return env
    out = tmp_path_factory.mktemp("bin") / "loader"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/loader"], cwd=REPO, check=True)
    return str(out)


@pytest.fixture(scope="session")
def server(loader_bin: str):
    with lsio_loader.Server(binary=loader_bin) as srv:
        yield srv


def field_values(shape: tuple[int, ...], dtype: str = "<f4", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-1000, 1000, size=shape).astype(dtype)


def write_v3_zstd(path: Path, values: np.ndarray, chunks: tuple[int, ...], dims: list[str]) -> zarr.Array:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    z = group.create_array(
        "data", shape=values.shape, chunks=chunks, dtype=values.dtype,
        compressors=[zarr.codecs.ZstdCodec(level=3)], dimension_names=dims,
    )
    z[...] = values
    return zarr.open_array(str(path), path="data", mode="r")


def write_v2_blosc(path: Path, values: np.ndarray, chunks: tuple[int, ...], dims: list[str]) -> zarr.Array:
    import numcodecs

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    z = group.create_array(
        "data", shape=values.shape, chunks=chunks, dtype=values.dtype,
        compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
    )
    z[...] = values
    z.attrs["_ARRAY_DIMENSIONS"] = dims
    zarr.consolidate_metadata(str(path))
    return zarr.open_array(str(path), path="data", mode="r")


def generic_spec(store: str, crop: dict[str, int], *, seed: int = 1, batch_size: int = 4,
                 samples: int = 30, streams: int = 4, **extra) -> dict:
    spec = {
        "seed": seed,
        "batch_size": batch_size,
        "samples_per_epoch": samples,
        "streams": streams,
        "sources": {"field": {"store": store, "array": "data", "crop": crop}},
    }
    spec.update(extra)
    return spec


def write_spec(dir: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = dir / name
    path.write_text(yaml.safe_dump(spec))
    return path
