"""Shared-memory delivery: the same batches as the Arrow path, slots that
live exactly as long as the arrays viewing them, and rings freed when a
client dies."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import torch
from torch.utils.data import DataLoader

import lsio_loader
from lsio_loader._client import batch_to_numpy, get_flight_info, iter_endpoint, make_command
from lsio_loader._shm import ShmBatch, ShmRing
from conftest import field_values, generic_spec, write_spec, write_v3_zstd

REAL_SPEC = Path(__file__).resolve().parents[2] / "examples" / "real_ukv_seviri.yaml"
SHAPE = (9, 40, 36)


def by_index(batches) -> dict[int, dict[str, np.ndarray]]:
    out: dict[int, dict[str, np.ndarray]] = {}
    for b in batches:
        for i, idx in enumerate(np.asarray(b["epoch_index"]).tolist()):
            assert idx not in out, f"epoch_index {idx} twice"
            out[idx] = {k: (v[i].float().numpy() if v.dtype == torch.bfloat16 else v[i].numpy()).copy()
                        if isinstance(v, torch.Tensor) else np.array(v[i]) for k, v in b.items()}
    return out


def assert_same(a: dict[int, dict[str, np.ndarray]], b: dict[int, dict[str, np.ndarray]]) -> None:
    assert sorted(a) == sorted(b)
    for idx in a:
        assert sorted(a[idx]) == sorted(b[idx])
        for k in a[idx]:
            np.testing.assert_array_equal(a[idx][k], b[idx][k], err_msg=f"sample {idx} column {k}")


def ring_fds(pid: int) -> int:
    """The server's open memfd rings."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += "memfd:lsio-loader-batches" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return n


@pytest.fixture
def field_spec(tmp_path: Path) -> Path:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), (2, 16, 16), ["time", "y", "x"])
    return write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=60, batch_size=4, streams=1))


def test_shm_batches_identical_to_arrow(server: lsio_loader.Server) -> None:
    arrow = list(lsio_loader.iter_batches(REAL_SPEC, address=server.address, streams=2))
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(REAL_SPEC, streams=2, delivery="shm"))
        shm = []
        for ep in info.endpoints:
            for batch in iter_endpoint(client, ep, shm=True):
                assert isinstance(batch, ShmBatch) and set(batch.crops) == {"nwp", "sat"}
                arrays = batch_to_numpy(batch)
                # The crops are views of the ring, not copies.
                assert not arrays["sat"].flags.owndata and not arrays["sat"].flags.writeable
                shm.append({k: v.copy() for k, v in arrays.items()})
    finally:
        client.close()
    assert [list(b) for b in shm] == [list(b) for b in arrow], "same columns in the same order"
    assert_same(by_index(arrow), by_index(shm))


def test_shm_slot_lifetime(server: lsio_loader.Server, field_spec: Path) -> None:
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(field_spec, delivery="shm"))
        stream = iter_endpoint(client, info.endpoints[0], shm=True)
        first = next(stream)
        kept = lsio_loader.batch_to_torch(first)["field"]
        snapshot = kept.clone()
        del first
        gc.collect()
        batches = 1
        for batch in stream:
            # Fifteen batches through six slots: each freed one is reused,
            # the one still viewed never is.
            t = lsio_loader.batch_to_torch(batch)["field"]
            assert t.data_ptr() != kept.data_ptr()
            del batch, t
            batches += 1
        assert batches == 15
        assert torch.equal(kept, snapshot), "a later batch overwrote a tensor still alive"
    finally:
        client.close()


def test_shm_freed_batch_releases_slot(server: lsio_loader.Server, field_spec: Path) -> None:
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(field_spec, delivery="shm"))
        stream = iter_endpoint(client, info.endpoints[0], shm=True)
        batch = next(stream)
        ring = batch.ring
        assert ring is not None and ring.held == 1
        tensors = lsio_loader.batch_to_torch(batch)
        del batch
        gc.collect()
        assert ring.held == 1, "a tensor still views the slot"
        del tensors
        gc.collect()
        assert ring.held == 0, "freeing the last view releases the slot"
        assert sum(1 for _ in stream) == 14
    finally:
        client.close()


KILLED_CLIENT = textwrap.dedent("""
    import sys, time
    from lsio_loader._client import get_flight_info, iter_endpoint, make_command
    from lsio_loader._server import connect
    client = connect(sys.argv[1])
    info = get_flight_info(client, make_command(sys.argv[2], delivery="shm"))
    kept = []
    for batch in iter_endpoint(client, info.endpoints[0], shm=True):
        kept.append(batch)
        if len(kept) == 3:
            print("reading", flush=True)
            time.sleep(120)  # killed here, holding three slots
""")


def test_shm_killed_client_frees_its_ring(loader_bin: str, field_spec: Path) -> None:
    with lsio_loader.Server(binary=loader_bin) as server:
        killed_client(server, field_spec)


def killed_client(server: lsio_loader.Server, field_spec: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, server.address, str(field_spec)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
        assert ring_fds(server.pid) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    # The next client reads the whole epoch, in the dead client's ring
    # (no second one is made), and may keep all of it: past what the ring
    # can spare, batches are copied out of it.
    time.sleep(0.5)
    batches = list(lsio_loader.LoaderDataset(field_spec, address=server.address, delivery="shm"))
    assert sum(len(b["epoch_index"]) for b in batches) == 60
    assert len({b["field"].data_ptr() for b in batches}) == 15
    assert ring_fds(server.pid) == 1, "the dead client's ring was not reclaimed"


@pytest.mark.parametrize("workers", [0, 2])
def test_shm_dataloader(server: lsio_loader.Server, tmp_path: Path, workers: int) -> None:
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE), (2, 16, 16), ["time", "y", "x"])
    spec = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=30, batch_size=4, streams=4))
    results = {}
    for delivery in ("arrow", "shm"):
        dataset = lsio_loader.LoaderDataset(spec, address=server.address, delivery=delivery)
        assert dataset.delivery == delivery
        kwargs = {"multiprocessing_context": "forkserver", "timeout": 60} if workers else {}
        results[delivery] = by_index(DataLoader(dataset, batch_size=None, num_workers=workers, **kwargs))
    assert len(results["shm"]) == 30
    assert_same(results["arrow"], results["shm"])
    assert lsio_loader.LoaderDataset(spec, address=server.address).delivery == "shm", "shm by default on a unix socket"


def test_tcp_refuses_shm(loader_bin: str, tmp_path: Path, field_spec: Path) -> None:
    with pytest.raises(ValueError, match="unix"):
        lsio_loader.LoaderDataset(field_spec, address="grpc://127.0.0.1:1", delivery="shm")
    assert lsio_loader.LoaderDataset(field_spec, address="grpc://127.0.0.1:1").delivery == "arrow"
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with lsio_loader.Server(f"tcp://127.0.0.1:{port}", binary=loader_bin, allow=[str(field_spec.parent)]) as srv:
        client = srv.connect()
        try:
            with pytest.raises((flight.FlightError, pa.ArrowInvalid), match="unix"):
                get_flight_info(client, make_command(field_spec, delivery="shm"))
        finally:
            client.close()


@pytest.mark.parametrize("case", ["bfloat16", "float16", "raw-int16"])
def test_shm_dtypes_identical_to_arrow(server: lsio_loader.Server, tmp_path: Path, case: str) -> None:
    dtype = "<i2" if case == "raw-int16" else "<f4"
    write_v3_zstd(tmp_path / "field.zarr", field_values(SHAPE, dtype), (2, 16, 16), ["time", "y", "x"])
    extra = {} if case == "raw-int16" else {"output_dtype": case}
    spec = write_spec(tmp_path, generic_spec("field.zarr", {"time": 3, "y": 8, "x": 10}, samples=12, streams=1, **extra))
    raw = case == "raw-int16"
    results = {}
    for delivery in ("arrow", "shm"):
        dataset = lsio_loader.LoaderDataset(spec, address=server.address, delivery=delivery, raw=raw)
        batches = list(dataset)
        want = {"bfloat16": torch.bfloat16, "float16": torch.float16, "raw-int16": torch.int16}[case]
        assert all(b["field"].dtype == want for b in batches), delivery
        results[delivery] = by_index(batches)
    assert_same(results["arrow"], results["shm"])


def first_ring(address: str, spec: Path, **kwargs: Any) -> ShmRing:
    """The ring of spec's first stream, asked for with make_command's kwargs."""
    client = lsio_loader.connect(address)
    try:
        info = get_flight_info(client, make_command(spec, delivery="shm", **kwargs))
        batch = next(iter_endpoint(client, info.endpoints[0], shm=True))
        assert isinstance(batch, ShmBatch) and batch.ring is not None
        return batch.ring
    finally:
        client.close()


def test_shm_slots_from_request(server: lsio_loader.Server, field_spec: Path) -> None:
    default = first_ring(server.address, field_spec)
    asked = first_ring(server.address, field_spec, shm_slots=3)
    assert (default.slots, asked.slots) == (6, 3)
    assert default.size == 2 * asked.size, "a ring is its slots' bytes"
    client = server.connect()
    try:
        for bad in (2, 65):
            with pytest.raises((flight.FlightError, pa.ArrowInvalid), match=f"shm_slots {bad} outside \\[3, 64\\]"):
                get_flight_info(client, make_command(field_spec, delivery="shm", shm_slots=bad))
    finally:
        client.close()
    with pytest.raises(ValueError, match="shm_slots=3 needs delivery='shm'"):
        make_command(field_spec, shm_slots=3)
    with pytest.raises(ValueError, match="shm_slots=3 needs delivery 'shm'"):
        lsio_loader.LoaderDataset(field_spec, address=server.address, delivery="arrow", shm_slots=3)


def test_shm_more_batches_kept_than_slots(server: lsio_loader.Server, field_spec: Path) -> None:
    # Fifteen batches kept alive through a ring of three: the server never
    # waits for a slot (no hang), the batches past what the ring can spare
    # are copies, and all equal the arrow ones.
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(field_spec, delivery="shm", shm_slots=3))
        kept = list(iter_endpoint(client, info.endpoints[0], shm=True))
    finally:
        client.close()
    assert len(kept) == 15 and all(isinstance(b, ShmBatch) for b in kept)
    views = [b for b in kept if not b.crops["field"].flags.owndata]
    assert len(views) == 1, "one slot for the client, two for the server"
    assert kept[0].ring is not None and kept[0].ring.held == 1
    shm = by_index(lsio_loader.batch_to_torch(b) for b in kept)
    arrow = by_index(lsio_loader.LoaderDataset(field_spec, address=server.address, delivery="arrow"))
    assert_same(arrow, shm)
    # And through the dataset, as a trainer keeping every batch would.
    assert_same(arrow, by_index(list(lsio_loader.LoaderDataset(field_spec, address=server.address, shm_slots=3))))


def test_shm_ring_over_memory_budget_falls_back(loader_bin: str, tmp_path: Path, field_spec: Path) -> None:
    # A batch is under a page of crops: a 20 kB budget cannot hold the
    # default ring (six one-page slots) but holds arrow's batches, and a
    # ring of three.
    wrapper = tmp_path / "serve-with-memory"
    wrapper.write_text(f'#!/bin/sh\nexec "{loader_bin}" "$@" -memory 20000\n')
    wrapper.chmod(0o755)
    with lsio_loader.Server(binary=str(wrapper)) as srv:
        arrow = by_index(lsio_loader.LoaderDataset(field_spec, address=srv.address, delivery="arrow"))
        with pytest.warns(RuntimeWarning, match="memory budget"):
            fallen = list(lsio_loader.LoaderDataset(field_spec, address=srv.address, delivery="shm"))
        assert_same(arrow, by_index(fallen))
        assert ring_fds(srv.pid) == 0, "no ring made for a stream sent as arrow"
        assert first_ring(srv.address, field_spec, shm_slots=3).slots == 3
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_same(arrow, by_index(lsio_loader.LoaderDataset(field_spec, address=srv.address, shm_slots=3)))


def test_pin_memory_needs_shm(field_spec: Path) -> None:
    with pytest.raises(ValueError, match="pin_memory=True .* needs delivery 'shm'.*DataLoader\\(pin_memory=True\\)"):
        lsio_loader.LoaderDataset(field_spec, address="grpc://127.0.0.1:1", pin_memory=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_pin_memory_without_cuda_raises(server: lsio_loader.Server, field_spec: Path) -> None:
    with pytest.raises(RuntimeError, match="pin_memory=True .* CUDA is not available"):
        lsio_loader.LoaderDataset(field_spec, address=server.address, pin_memory=True)
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(field_spec, delivery="shm"))
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            next(iter_endpoint(client, info.endpoints[0], shm=True, pin=True))
    finally:
        client.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locking needs a CUDA device")
def test_pin_memory_registers_each_ring_once(server: lsio_loader.Server, field_spec: Path) -> None:
    dataset = lsio_loader.LoaderDataset(field_spec, address=server.address, pin_memory=True)
    client = server.connect()
    try:
        info = get_flight_info(client, make_command(field_spec, delivery="shm"))
        rings, n = set(), 0
        for batch in iter_endpoint(client, info.endpoints[0], shm=True, pin=True):
            assert isinstance(batch, ShmBatch) and batch.ring is not None
            rings.add(id(batch.ring))
            ring = batch.ring
            t = lsio_loader.batch_to_torch(batch)["field"]
            assert t.is_pinned(), "a view of the ring is page-locked"
            on_gpu = t.to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            assert torch.equal(on_gpu.cpu(), t)
            n += 1
            del batch, t
        assert n == 15 and len(rings) == 1 and ring.pinned
        ring.close()
        assert not ring.pinned
        assert not torch.frombuffer(ring.mm, dtype=torch.uint8).is_pinned(), "unregistered on close"
        ring.close()  # once only
    finally:
        client.close()
    # Through the dataset, in the main process, the same batches as unpinned.
    arrow = by_index(lsio_loader.LoaderDataset(field_spec, address=server.address, delivery="arrow"))
    assert_same(arrow, by_index(DataLoader(dataset, batch_size=None, num_workers=0)))
    with pytest.raises(RuntimeError, match="num_workers=0"):
        list(DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="forkserver", timeout=60))
