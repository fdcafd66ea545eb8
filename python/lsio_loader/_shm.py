"""Shared-memory delivery: batches whose crops lie in a ring of slots the
server shares with this process (a memfd passed over a unix socket), read
as numpy arrays and torch tensors without a copy.

Each Flight record batch carries only the small columns (provenance,
isel, time labels); its app_metadata says where in the ring its crops
are. A slot goes back to the server once every array viewing it has been
garbage-collected: the arrays all descend from one numpy array per slot,
and a weakref.finalize on it sends the release. A caller that keeps more
batches alive than the ring can spare gets copies of the later ones.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

__all__ = ["ShmBatch", "ShmRing", "META_SHM", "shm_batches"]

META_SHM = b"lsio.shm"


class ShmRing:
    """The client's side of one stream's ring: the mapped memfd and the
    side connection releases go over."""

    def __init__(self, announce: dict[str, Any]) -> None:
        self.size = int(announce["size"])
        self.slots = int(announce["slots"])
        self._lock = threading.RLock()  # a release may run from a GC inside another
        self._sock: socket.socket | None = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(announce["socket"])
            sock.sendall(announce["token"].encode() + b"\n")
            msg, fds, _, _ = socket.recv_fds(sock, 256, 1)
            if msg != b"ok\n" or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                why = msg.decode(errors="replace").strip() or "connection closed"
                raise ConnectionError(f"lsio-loader: shared-memory socket {announce['socket']}: {why}")
            try:
                self.mm = mmap.mmap(fds[0], self.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            finally:
                os.close(fds[0])
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        self.held = 0

    def slot(self, index: int, gen: int, offset: int, length: int) -> np.ndarray:
        """A read-only uint8 view of one leased slot; the slot is released
        when it, and every array made from it, is gone."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"lsio-loader: slot {index} at [{offset}, {offset + length}) outside the {self.size}-byte ring")
        owner = np.frombuffer(self.mm, dtype=np.uint8, count=length, offset=offset)
        with self._lock:
            self.held += 1
        weakref.finalize(owner, self.release, index, gen)
        return owner

    def release(self, index: int, gen: int) -> None:
        with self._lock:
            self.held -= 1
            if self._sock is None:
                return
            try:
                self._sock.sendall(f"{index} {gen}\n".encode())
            except OSError:
                # The server is gone, or ended the stream: nothing to free.
                self._sock.close()
                self._sock = None

    def __del__(self) -> None:
        # Hanging up tells the server that nothing here maps the ring any
        # more: it may reuse it for another stream.
        self.close()

    def close(self) -> None:
        """Closes the side connection; arrays over the ring stay valid, but
        their slots are then never freed: only for a ring nothing views."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


@dataclass
class ShmBatch:
    """One batch: the small columns as a record batch, and per source its
    crops as a numpy array over the ring (bfloat16 as uint16 bits)."""

    record: pa.RecordBatch
    crops: dict[str, np.ndarray]
    dtypes: dict[str, str] = field(default_factory=dict)
    ring: ShmRing | None = None

    @property
    def num_rows(self) -> int:
        return self.record.num_rows


# Slots the client leaves to the server: one being cropped, one being sent.
_SERVER_SLOTS = 2


def _crops(ring: ShmRing, meta: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    cols = meta["columns"]
    if not cols:
        return {}, {}
    start = min(int(c["offset"]) for c in cols)
    end = max(int(c["offset"]) + int(c["length"]) for c in cols)
    owner = ring.slot(int(meta["slot"]), int(meta["gen"]), start, end - start)
    crops: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for c in cols:
        dtype = c["dtype"]
        np_dtype = np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)
        shape = tuple(int(s) for s in c["shape"])
        off = int(c["offset"]) - start
        length = int(c["length"])
        if int(np.prod(shape)) * np_dtype.itemsize != length:
            raise ValueError(f"lsio-loader: column {c['name']!r}: shape {shape} of {dtype} is not {length} bytes")
        crops[c["name"]] = owner[off:off + length].view(np_dtype).reshape(shape)
        dtypes[c["name"]] = dtype
    if ring.held > ring.slots - _SERVER_SLOTS:
        # The caller keeps many batches alive (list(dataset), say): this
        # one is copied out and its slot freed at once, so that the server
        # always has slots to crop into instead of stalling.
        crops = {name: a.copy() for name, a in crops.items()}
    return crops, dtypes


def _batch(ring: ShmRing, chunk: flight.FlightStreamChunk) -> ShmBatch:
    crops, dtypes = _crops(ring, json.loads(chunk.app_metadata.to_pybytes()))
    return ShmBatch(chunk.data, crops, dtypes, ring)


def shm_batches(reader: flight.FlightStreamReader, timeout: float = 0) -> Iterator[ShmBatch]:
    """reader's batches, for a stream asked for with delivery "shm"."""
    from ._client import _Watchdog

    announce = (reader.schema.metadata or {}).get(META_SHM)
    if announce is None:
        raise ValueError("lsio-loader: the stream's schema announces no shared-memory ring (lsio.shm): "
                         "the server does not deliver through shared memory")
    ring = ShmRing(json.loads(announce))
    watchdog = _Watchdog(reader, timeout) if timeout > 0 else None
    try:
        while True:
            if watchdog is not None:
                watchdog.arm()
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                return
            except (flight.FlightError, pa.ArrowException) as e:
                if watchdog is not None and watchdog.expired:
                    raise TimeoutError(f"lsio-loader: no batch from the server within {timeout:.0f} s "
                                       "(LSIO_LOADER_BATCH_TIMEOUT)") from e
                raise
            if watchdog is not None:
                watchdog.disarm()
            if chunk.app_metadata is None:
                raise ValueError("lsio-loader: a shared-memory batch came without its location (app_metadata)")
            # No local may keep the crops: the suspended generator would hold
            # the slot after the caller freed the batch.
            yield _batch(ring, chunk)
    finally:
        if watchdog is not None:
            watchdog.close()
        # Releases still to come go over the connection until the last
        # array is gone; the socket closes with the ring then.
