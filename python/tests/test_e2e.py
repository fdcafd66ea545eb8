"""End to end: zarr-python writes stores, `loader serve` serves them, the
client reads them through pyarrow.flight and torch; every crop is checked
against zarr-python's read of the region its provenance names."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import torch
from torch.utils.data import DataLoader

import lsio_loader
from conftest import field_values, generic_spec, write_spec, write_v2_blosc, write_v3_zstd

SHAPE = (9, 40, 36)
CHUNKS = (2, 16, 16)
DIMS = ["time", "y", "x"]
CROP = {"time": 3, "y": 8, "x": 10}

WRITERS = {"v3-zstd": write_v3_zstd, "v2-blosc": write_v2_blosc}

# This test process holds Flight (gRPC) clients of its own, and gRPC does not
# survive fork(): the DataLoader workers start from a clean forkserver.
FORK_SAFE = "forkserver"

REAL_SPEC = Path(__file__).resolve().parents[2] / "examples" / "real_ukv_seviri.yaml"


def region(isel: np.ndarray) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in isel)


def collect(batches) -> dict[int, dict[str, np.ndarray]]:
    """Samples by epoch_index; fails on a duplicate."""
    samples: dict[int, dict[str, np.ndarray]] = {}
    for batch in batches:
        for i, idx in enumerate(np.asarray(batch["epoch_index"]).tolist()):
            assert idx not in samples, f"epoch_index {idx} served twice"
            samples[idx] = {k: np.asarray(v[i].float() if isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16 else v[i]) for k, v in batch.items()}
    return samples


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_dataloader_crops_equal_zarr_python(tmp_path: Path, server: lsio_loader.Server, fmt: str) -> None:
    values = field_values(SHAPE)
    ref = WRITERS[fmt](tmp_path / "field.zarr", values, CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=30, batch_size=4, streams=4))
    dataset = lsio_loader.LoaderDataset(spec, address=server.address)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, timeout=60, multiprocessing_context=FORK_SAFE)
    batches = list(loader)
    assert all(b["field"].dtype == torch.float32 and b["field"].shape[1:] == (3, 8, 10) for b in batches)
    samples = collect(batches)
    assert sorted(samples) == list(range(30)), "the epoch's samples, each exactly once across workers"
    for idx, s in samples.items():
        assert s["field.isel"].shape == (3, 2)
        np.testing.assert_array_equal(s["field"], ref[region(s["field.isel"])], err_msg=f"sample {idx}")
        assert s["t0"] == np.iinfo(np.int64).min, "a generic source has no time"


def test_seeds(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)

    def epoch(seed: int, epoch: int = 0) -> dict[int, dict[str, np.ndarray]]:
        spec = generic_spec("field.zarr", CROP, seed=seed, samples=20)
        path = write_spec(tmp_path, spec, f"seed{seed}.yaml")
        return collect(lsio_loader.iter_batches(path, address=server.address, epoch=epoch))

    first, again, other = epoch(1), epoch(1), epoch(2)
    assert sorted(first) == sorted(again) == sorted(other) == list(range(20))
    for idx in first:
        np.testing.assert_array_equal(first[idx]["field.isel"], again[idx]["field.isel"])
        np.testing.assert_array_equal(first[idx]["field"], again[idx]["field"])
    starts = lambda run: np.stack([run[i]["field.isel"] for i in sorted(run)])  # noqa: E731
    assert not np.array_equal(starts(first), starts(other)), "another seed draws other crops"
    assert not np.array_equal(starts(first), starts(epoch(1, epoch=1))), "another epoch draws other crops"


def test_location_is_a_deprecated_name_for_address(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=8, batch_size=4))
    want = collect(lsio_loader.iter_batches(spec, address=server.address))
    with pytest.warns(DeprecationWarning, match="address="):
        batches = lsio_loader.iter_batches(spec, location=server.address)
    got = collect(batches)
    assert sorted(got) == sorted(want) == list(range(8))
    for idx in want:
        np.testing.assert_array_equal(got[idx]["field"], want[idx]["field"])
    with pytest.warns(DeprecationWarning, match="address="):
        dataset = lsio_loader.LoaderDataset(spec, location=server.address)
    assert dataset.address == server.address
    assert sorted(collect(dataset)) == list(range(8))
    with pytest.raises(TypeError, match="disagree"), pytest.warns(DeprecationWarning):
        lsio_loader.LoaderDataset(spec, address=server.address, location="unix:///elsewhere.sock")
    with pytest.raises(TypeError, match="disagree"), pytest.warns(DeprecationWarning):
        lsio_loader.iter_record_batches(spec, address=server.address, location="unix:///elsewhere.sock")


def test_shards_across_ranks_and_streams(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=25, batch_size=3))
    whole = collect(lsio_loader.iter_batches(spec, address=server.address, streams=1))
    # 25 samples over 2 ranks × 3 streams: padded to 30 (the epoch's first
    # 5 again), so that both ranks yield as many batches.
    parts: dict[int, dict[str, np.ndarray]] = {}
    batch_counts = []
    for rank in range(2):
        batches = list(lsio_loader.iter_batches(spec, address=server.address, rank=rank, world_size=2, streams=3))
        batch_counts.append(len(batches))
        for batch in batches:
            for i, idx in enumerate(np.asarray(batch["epoch_index"]).tolist()):
                field = np.asarray(batch["field"][i])
                if idx in parts:
                    assert idx < 5, f"epoch_index {idx} served twice, not padding"
                    np.testing.assert_array_equal(field, parts[idx]["field"], err_msg=f"padding repeats {idx} with other crops")
                parts[idx] = {"field": field}
    assert batch_counts[0] == batch_counts[1], f"batches per rank {batch_counts}"
    assert sorted(parts) == sorted(whole) == list(range(25))
    for idx in whole:
        np.testing.assert_array_equal(parts[idx]["field"], whole[idx]["field"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_output_dtypes(tmp_path: Path, server: lsio_loader.Server, dtype: str) -> None:
    ref = write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=8, output_dtype=dtype))
    dataset = lsio_loader.LoaderDataset(spec, address=server.address)
    batches = list(dataset)
    want = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    assert all(b["field"].dtype == want for b in batches)
    for b in batches:
        for i in range(len(b["epoch_index"])):
            exact = torch.from_numpy(np.ascontiguousarray(ref[region(b["field.isel"][i].numpy())]))
            assert torch.equal(b["field"][i], exact.to(want)), f"sample {int(b['epoch_index'][i])}: not the {dtype} of zarr-python's values"


def test_raw_keeps_stored_dtype(tmp_path: Path, server: lsio_loader.Server) -> None:
    ref = write_v2_blosc(tmp_path / "field.zarr", field_values(SHAPE, "<i2"), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=8))
    samples = collect(lsio_loader.iter_batches(spec, address=server.address, raw=True))
    assert sorted(samples) == list(range(8))
    for s in samples.values():
        assert s["field"].dtype == np.int16
        np.testing.assert_array_equal(s["field"], ref[region(s["field.isel"])])


def test_zero_copy(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=8, batch_size=8))
    batch = next(lsio_loader.iter_record_batches(spec, address=server.address, streams=1))
    values = batch.column("field").storage.values
    tensors = lsio_loader.batch_to_torch(batch)
    assert tensors["field"].data_ptr() == values.buffers()[1].address + values.offset * 4, "the tensor aliases the Arrow buffer"


def test_streams_read_in_order(tmp_path: Path, server: lsio_loader.Server) -> None:
    """iter_endpoints: endpoint after endpoint, each sample once; leaving
    early closes the open stream (the server then serves the next reader)."""
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=21, batch_size=2, streams=3))
    client = server.connect()
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(lsio_loader.make_command(spec)))
        one_by_one = [b for e in info.endpoints for b in lsio_loader._client.iter_endpoint(client, e)]
        overlapped = list(lsio_loader._client.iter_endpoints(client, info.endpoints))
        early = lsio_loader._client.iter_endpoints(client, info.endpoints)
        next(early)
        early.close()
    finally:
        client.close()
    indices = [b.column("epoch_index").to_pylist() for b in overlapped]
    assert indices == [b.column("epoch_index").to_pylist() for b in one_by_one]
    assert sorted(i for batch in indices for i in batch) == list(range(21))
    assert sorted(collect(lsio_loader.iter_batches(spec, address=server.address))) == list(range(21))


def test_streams_read_concurrently(tmp_path: Path, server: lsio_loader.Server) -> None:
    """iter_endpoints_concurrently: every stream open at once, batches dealt
    round-robin (deterministic), each sample once; leaving early cancels
    the streams and joins the threads; a failing stream's error reaches
    the consumer."""
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=21, batch_size=2, streams=3))
    client = server.connect()
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(lsio_loader.make_command(spec)))
        per_endpoint = [[b.column("epoch_index").to_pylist() for b in lsio_loader._client.iter_endpoint(client, e)]
                        for e in info.endpoints]
        concurrent = [b.column("epoch_index").to_pylist()
                      for b in lsio_loader._client.iter_endpoints_concurrently(client, info.endpoints)]
        round_robin = [batches[k] for k in range(max(map(len, per_endpoint))) for batches in per_endpoint if k < len(batches)]
        assert concurrent == round_robin
        assert sorted(i for batch in concurrent for i in batch) == list(range(21))

        before = threading.active_count()
        early = lsio_loader._client.iter_endpoints_concurrently(client, info.endpoints)
        next(early)
        early.close()
        assert threading.active_count() == before, "the receiving threads outlived the generator"

        bad = flight.FlightEndpoint(b"not a ticket", [])
        with pytest.raises((flight.FlightError, pa.ArrowException)):
            list(lsio_loader._client.iter_endpoints_concurrently(client, [info.endpoints[0], bad]))
    finally:
        client.close()


def test_main_process_dataset_crops_equal_zarr_python(tmp_path: Path, server: lsio_loader.Server) -> None:
    """LoaderDataset with num_workers=0 reads its streams concurrently."""
    ref = write_v2_blosc(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=24, batch_size=4, streams=3))
    dataset = lsio_loader.LoaderDataset(spec, address=server.address)
    samples = collect(DataLoader(dataset, batch_size=None, num_workers=0))
    assert sorted(samples) == list(range(24))
    for idx, s in samples.items():
        np.testing.assert_array_equal(s["field"], ref[region(s["field.isel"])], err_msg=f"sample {idx}")


def flight_error(server: lsio_loader.Server, spec) -> Exception:
    client = server.connect()
    try:
        with pytest.raises((flight.FlightError, pa.ArrowException)) as info:
            client.get_flight_info(flight.FlightDescriptor.for_command(lsio_loader.make_command(spec)))
        return info.value
    finally:
        client.close()


def test_bad_input_is_answered(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    good = generic_spec("field.zarr", CROP, samples=8)

    missing = write_spec(tmp_path, generic_spec("missing.zarr", CROP), "missing.yaml")
    assert "missing.zarr" in str(flight_error(server, missing))

    unknown = generic_spec("field.zarr", CROP)
    unknown["sources"]["field"]["array"] = "no_such_array"
    assert "no_such_array" in str(flight_error(server, write_spec(tmp_path, unknown, "unknown.yaml")))

    malformed = generic_spec("field.zarr", CROP)
    malformed["sources"]["field"]["crp"] = malformed["sources"]["field"].pop("crop")
    err = str(flight_error(server, write_spec(tmp_path, malformed, "malformed.yaml")))
    assert "crp" in err and "field" in err, err

    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("seed: [1\n")
    assert "spec" in str(flight_error(server, syntax))

    samples = collect(lsio_loader.iter_batches(write_spec(tmp_path, good), address=server.address))
    assert sorted(samples) == list(range(8)), "the server still serves a good spec"


def test_two_experiments_at_once(tmp_path: Path, server: lsio_loader.Server) -> None:
    refs = {
        "a": write_v3_zstd(tmp_path / "a.zarr", field_values(SHAPE, seed=1), CHUNKS, DIMS),
        "b": write_v2_blosc(tmp_path / "b.zarr", field_values((4, 50, 50), seed=2), (1, 16, 16), DIMS),
    }
    specs = {
        "a": write_spec(tmp_path, generic_spec("a.zarr", CROP, samples=40), "a.yaml"),
        "b": write_spec(tmp_path, generic_spec("b.zarr", {"time": 1, "y": 20, "x": 20}, samples=30, seed=5), "b.yaml"),
    }
    results: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            results[name] = collect(lsio_loader.iter_batches(specs[name], address=server.address))
        except Exception as e:  # reported below
            results[name] = e

    threads = [threading.Thread(target=run, args=(n,)) for n in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name, n in (("a", 40), ("b", 30)):
        samples = results[name]
        assert isinstance(samples, dict), f"experiment {name}: {samples!r}"
        assert sorted(samples) == list(range(n))
        for s in samples.values():
            np.testing.assert_array_equal(s["field"], refs[name][region(s["field.isel"])])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown(loader_bin: str, tmp_path: Path, sig: signal.Signals) -> None:
    sock = tmp_path / "s.sock"
    srv = lsio_loader.Server(f"unix://{sock}", binary=loader_bin)
    assert sock.exists()
    os.kill(srv.pid, sig)
    deadline = time.monotonic() + 15
    while srv._proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv._proc.returncode == 0, f"exit status after {sig.name}"
    assert not sock.exists(), "socket file removed"
    srv.close()


def test_close_stops_server_mid_stream(loader_bin: str, tmp_path: Path) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=100000))
    srv = lsio_loader.Server(binary=loader_bin)
    batches = lsio_loader.iter_batches(spec, address=srv.address)
    next(batches)
    assert srv.close() == 0, "a clean exit although a stream was open"
    with pytest.raises((flight.FlightError, pa.ArrowException)):
        for _ in batches:
            pass


def test_set_epoch(tmp_path: Path, server: lsio_loader.Server) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=12))
    dataset = lsio_loader.LoaderDataset(spec, address=server.address)
    assert (dataset.rank, dataset.world_size) == (0, 1), "defaults without torch.distributed"
    dataset.set_epoch(3)
    got = collect(dataset)
    want = collect(lsio_loader.iter_batches(spec, address=server.address, epoch=3))
    assert sorted(got) == sorted(want) == list(range(12))
    for idx in got:
        np.testing.assert_array_equal(got[idx]["field.isel"], want[idx]["field.isel"])


def test_dataloader_workers_and_ranks_partition_the_epoch(server: lsio_loader.Server) -> None:
    """Two DataLoader workers under each of two simulated DDP ranks, on the
    real UKV + SEVIRI spec: the four shards are disjoint and form the epoch."""
    whole = collect(lsio_loader.iter_batches(REAL_SPEC, address=server.address, streams=1))
    seen: dict[int, dict[str, np.ndarray]] = {}
    for rank in range(2):
        dataset = lsio_loader.LoaderDataset(REAL_SPEC, address=server.address, rank=rank, world_size=2, streams=2)
        loader = DataLoader(dataset, batch_size=None, num_workers=2, timeout=120, multiprocessing_context=FORK_SAFE)
        part = collect(loader)
        assert part, f"rank {rank} got no samples"
        assert not set(part) & set(seen), f"rank {rank} repeats samples of the other rank"
        seen.update(part)
    assert sorted(seen) == sorted(whole), "together the shards are exactly the epoch"
    for idx, sample in whole.items():
        for name in ("nwp", "sat"):
            np.testing.assert_array_equal(seen[idx][name], sample[name], err_msg=f"sample {idx} source {name}")


def test_launched_server_serves_metrics(tmp_path: Path) -> None:
    import socket
    import urllib.request

    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), CHUNKS, DIMS)
    spec = write_spec(tmp_path, generic_spec("field.zarr", CROP, samples=12, batch_size=4, streams=2))
    with socket.socket() as s:  # a free loopback port for the server to take
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dataset = lsio_loader.LoaderDataset(spec, metrics=f"127.0.0.1:{port}")
    try:
        delivered = sum(len(b["epoch_index"]) for b in dataset)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        dataset.close()
    assert delivered == 12
    assert "lsio_crops_total 12\n" in text, "the launched server's counter of crops delivered"
    with pytest.raises(ValueError, match="metrics="):
        lsio_loader.LoaderDataset(spec, address="unix:///nonexistent.sock", metrics="127.0.0.1:1")
