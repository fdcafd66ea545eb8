"""lsio_loader.stats: one `loader stats -shard I/N` task per shard on a Dask
LocalCluster, merged, against one unsharded run, on the real sample data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import lsio_loader

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"
SPEC = REPO / "examples" / "real_ukv_seviri.yaml"
SEVIRI = REAL / "ocf-nowcasting-2023" / "seviri_nonhrv.zarr"

pytestmark = pytest.mark.skipif(not SEVIRI.exists(), reason="real sample data not in ../shared/data/real")


def assert_same(got: object, want: object, path: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not math.isnan(want):
        assert got == pytest.approx(want, rel=1e-9, abs=0), path
    else:
        assert got == want or (isinstance(want, float) and math.isnan(got)), path


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        with distributed.Client(c) as client:
            yield client


@pytest.mark.parametrize(
    "target, kwargs, key",
    [
        (SPEC, {"time": "2020-04-01T12:00:2020-04-01T13:30"}, "sources"),
        (SEVIRI, {}, "variables"),
    ],
    ids=["spec-train-period", "seviri-store"],
)
def test_stats_on_dask_equals_unsharded(cluster, loader_bin: str, tmp_path: Path, target: Path, kwargs: dict, key: str) -> None:
    whole = lsio_loader.stats(target, binary=loader_bin, **kwargs)
    out = tmp_path / "merged.yaml"
    merged = lsio_loader.stats(target, client=cluster, shards=3, binary=loader_bin, out=out, **kwargs)
    assert "(merged from 3 shards)" in merged
    assert out.read_text() == merged
    want, got = yaml.safe_load(whole), yaml.safe_load(merged)
    assert want[key], whole
    assert_same(got, want)


def test_stats_default_shards_one_per_thread(cluster, loader_bin: str) -> None:
    merged = lsio_loader.stats(SEVIRI, client=cluster, binary=loader_bin)
    assert "(merged from 2 shards)" in merged


def test_stats_errors_name_the_problem(cluster, loader_bin: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="nope.zarr"):
        lsio_loader.stats(tmp_path / "nope.zarr", client=cluster, shards=2, binary=loader_bin)
    with pytest.raises(ValueError, match="Dask client"):
        lsio_loader.stats(SEVIRI, shards=3, binary=loader_bin)


def test_stats_worker_processes_find_their_own_binary(loader_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two worker processes, no binary= : each task finds `loader` as a
    worker on another machine would (here through LSIO_LOADER_BIN)."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("LSIO_LOADER_BIN", loader_bin)
    whole = lsio_loader.stats(SEVIRI, variables=["data"], time="2:20")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        with distributed.Client(c) as client:
            merged = lsio_loader.stats(SEVIRI, client=client, shards=3, variables=["data"], time="2:20")
    assert "(merged from 3 shards)" in merged
    assert_same(yaml.safe_load(merged), yaml.safe_load(whole))
