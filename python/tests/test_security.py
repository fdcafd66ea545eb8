"""What a client can make the server do: errors that quote no secrets nor
file contents, a launched server confined to its spec's stores, and a
frozen server that fails the read in bounded time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import yaml

import lsio_loader
from conftest import REPO, field_values, generic_spec, write_spec, write_v3_zstd

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def demo_spec(loader_bin: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("demo")
    subprocess.run([loader_bin, "demo", "--size", "tiny", "--out", str(data)], check=True, capture_output=True)
    spec = yaml.safe_load((REPO / "examples" / "sample_data.yaml").read_text())
    for src in spec["sources"].values():
        src["store"] = str(data / Path(src["store"]).name)
    spec["samples_per_epoch"] = 8
    return spec


@pytest.mark.parametrize("sites", ["/proc/self/environ", "/etc/passwd"])
def test_errors_quote_no_file_contents_nor_credentials(
    loader_bin: str, demo_spec: dict, sites: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    content = Path(sites).read_bytes().replace(b"\0", b"\n").decode(errors="replace")
    with lsio_loader.Server(binary=loader_bin) as srv:
        spec = {**demo_spec, "locations": {"sites": sites}}
        with pytest.raises((flight.FlightError, pa.ArrowException)) as info:
            next(lsio_loader.iter_batches(spec, address=srv.address))
    msg = str(info.value)
    assert "locations.sites" in msg and sites in msg, msg
    assert SECRET not in msg
    for line in content.splitlines():
        for field in line.split(","):
            assert len(field) < 6 or field not in msg, f"the error quotes {field!r} of {sites}: {msg}"


def test_launched_server_reads_only_the_specs_stores(loader_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")  # noqa: F841
    monkeypatch.setenv("LSIO_LOADER_BIN", loader_bin)
    for name in ("mine", "other"):
        (tmp_path / name).mkdir()
        write_v3_zstd(tmp_path / name / "field.zarr", field_values((6, 16, 16)), (2, 8, 8), ["time", "y", "x"])
    mine = write_spec(tmp_path / "mine", generic_spec("field.zarr", {"time": 2, "y": 4, "x": 4}, samples=8))
    other = write_spec(tmp_path / "other", generic_spec("field.zarr", {"time": 2, "y": 4, "x": 4}, samples=8))
    dataset = lsio_loader.LoaderDataset(mine)
    try:
        assert sum(len(b["epoch_index"]) for b in dataset) == 8
        with pytest.raises(flight.FlightUnauthorizedError, match="sources.field.store"):
            next(lsio_loader.iter_batches(other, address=dataset.address))
        sites = {**yaml.safe_load(mine.read_text()), "locations": {"sites": "/etc/passwd"}}
        with pytest.raises(flight.FlightUnauthorizedError, match="locations.sites"):
            next(lsio_loader.iter_batches(sites, address=dataset.address))
    finally:
        dataset.close()


def test_frozen_server_fails_the_read_within_30s(loader_bin: str, tmp_path: Path) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values((9, 40, 36)), (2, 16, 16), ["time", "y", "x"])
    spec = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=10_000_000, streams=1))
    srv = lsio_loader.Server(binary=loader_bin)
    try:
        endless = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=10_000_000, streams=1),
                             name="endless.yaml")
        batches = lsio_loader.iter_batches(endless, address=srv.address)
        next(batches)
        os.kill(srv.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        with pytest.raises((flight.FlightError, pa.ArrowException, TimeoutError)) as info:
            for _ in batches:
                assert time.monotonic() - frozen < 60, "still reading a minute after the server froze"
        waited = time.monotonic() - frozen
        assert waited < 30, f"a frozen server failed the read after {waited:.1f} s, want < 30 s"
        assert "unavailable" in str(info.value).lower() or "timeout" in str(info.value).lower() or "keepalive" in str(info.value).lower(), info.value
    finally:
        os.kill(srv.pid, signal.SIGCONT)
        srv.close()


def test_batch_deadline(loader_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that delivers no batch within LSIO_LOADER_BATCH_TIMEOUT
    fails with TimeoutError, however alive its connection."""
    monkeypatch.setenv("LSIO_LOADER_BATCH_TIMEOUT", "2")
    write_v3_zstd(tmp_path / "field.zarr", field_values((9, 40, 36)), (2, 16, 16), ["time", "y", "x"])
    spec = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=40, streams=1))
    with lsio_loader.Server(binary=loader_bin) as srv:
        batches = lsio_loader.iter_batches(spec, address=srv.address)
        assert len(next(batches)["epoch_index"]) == 4
        time.sleep(3)  # the consumer's pause is not the server's: no timeout
        assert sum(len(b["epoch_index"]) for b in batches) == 36
        endless = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=10_000_000, streams=1),
                             name="endless.yaml")
        batches = lsio_loader.iter_batches(endless, address=srv.address)
        next(batches)
        os.kill(srv.pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(TimeoutError, match="LSIO_LOADER_BATCH_TIMEOUT"):
                for _ in batches:
                    pass
            assert time.monotonic() - start < 10
        finally:
            os.kill(srv.pid, signal.SIGCONT)
