"""The blocked epoch order through the server and the Python client, on the
real UKV + SEVIRI join: crops equal zarr-python's cut at their provenance
windows, the epoch is whole whatever the number of streams, and ranks read
disjoint samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import lsio_loader
from conftest import REPO
from test_georeferenced import reference_crop

EXAMPLE = REPO / "examples" / "real_ukv_seviri.yaml"


@pytest.fixture(scope="module")
def blocked_spec() -> dict:
    spec = yaml.safe_load(EXAMPLE.read_text())
    for src in spec["sources"].values():
        store = (EXAMPLE.parent / src["store"]).resolve()
        if not store.exists():
            pytest.skip(f"real data absent: {store}")
        src["store"] = str(store)
    spec["order"] = {"mode": "blocked", "pool": "2GiB"}
    return spec


def epoch(spec: dict, server: lsio_loader.Server, **kwargs) -> dict[int, dict[str, np.ndarray]]:
    """Every sample of one rank's share, by epoch position, with the
    sources' metadata."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for rb in lsio_loader.iter_record_batches(spec, address=server.address, raw=True, **kwargs):
        metas = {m["name"]: m for m in json.loads(rb.schema.metadata[b"lsio.sources"])}
        b = lsio_loader.batch_to_numpy(rb)
        for i, idx in enumerate(b["epoch_index"].tolist()):
            assert idx not in out, f"position {idx} twice"
            out[idx] = {k: v[i] for k, v in b.items()} | {"_metas": metas}
    return out


def test_blocked_crops_equal_zarr(blocked_spec: dict, server: lsio_loader.Server) -> None:
    samples = epoch(blocked_spec, server, streams=2)
    assert sorted(samples) == list(range(blocked_spec["samples_per_epoch"]))
    for idx, s in samples.items():
        for name, meta in s["_metas"].items():
            np.testing.assert_array_equal(s[name], reference_crop(blocked_spec, meta, s[f"{name}.isel"]),
                                          err_msg=f"{name} sample {idx}")


def test_blocked_streams_and_ranks(blocked_spec: dict, server: lsio_loader.Server) -> None:
    one = epoch(blocked_spec, server, streams=1)
    three = epoch(blocked_spec, server, streams=3)
    assert one.keys() == three.keys()
    for idx in one:
        for key in ("t0", "nwp.isel", "sat.isel", "nwp", "sat"):
            np.testing.assert_array_equal(one[idx][key], three[idx][key], err_msg=f"{key} at {idx}")
    ranks = [epoch(blocked_spec, server, rank=r, world_size=2, streams=2) for r in range(2)]
    assert not ranks[0].keys() & ranks[1].keys(), "ranks share samples"
    assert ranks[0].keys() | ranks[1].keys() == one.keys()
    for r in ranks:
        for idx, s in r.items():
            np.testing.assert_array_equal(s["sat.isel"], one[idx]["sat.isel"])
