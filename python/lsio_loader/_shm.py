"""Shared-memory delivery: batches whose crops lie in a ring of slots the
server shares with this process (a memfd passed over a unix socket), read
as numpy arrays and torch tensors without a copy.

Each Flight record batch carries only the small columns (provenance,
isel, time labels); its app_metadata says where in the ring its crops
are. A slot goes back to the server once every array viewing it has been
garbage-collected: the arrays all descend from one numpy array per slot,
and a weakref.finalize on it sends the release. A caller that keeps more
batches alive than the ring can spare gets copies of the later ones.

pin page-locks each ring, once per mapping, for CUDA (cudaHostRegister):
a trainer's .to("cuda", non_blocking=True) then copies straight from the
ring at pinned speed, instead of staging through a pinned copy.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import threading
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

__all__ = ["ShmBatch", "ShmRing", "META_SHM", "META_SHM_REFUSED", "check_pin_memory", "shm_batches"]

META_SHM = b"lsio.shm"
# On a stream that asked for shm and came as arrow: why (the ring would not
# fit the server's memory budget).
META_SHM_REFUSED = b"lsio.shm.refused"

# cudaHostRegisterPortable: pinned for every CUDA context, as torch's own
# pinned allocations are.
_CUDA_HOST_REGISTER_PORTABLE = 1
_CUDA_ERROR_CUDART_UNLOADING = 4


def check_pin_memory() -> None:
    """Raises unless this process can page-lock memory for CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("lsio-loader: pin_memory=True page-locks the shared-memory ring for CUDA, "
                           "but CUDA is not available here (torch.cuda.is_available() is False)")


class _CudaPin:
    """One mapping registered with CUDA (cudaHostRegister), so that
    host-to-device copies from it run at pinned speed without a staging
    copy; unregistered once, by unregister."""

    def __init__(self, mm: mmap.mmap, size: int) -> None:
        import torch

        check_pin_memory()
        self.ptr = int(np.frombuffer(mm, dtype=np.uint8, count=size).ctypes.data)
        self.size = size
        cudart = torch.cuda.cudart()
        err = int(cudart.cudaHostRegister(self.ptr, size, _CUDA_HOST_REGISTER_PORTABLE))
        if err != 0:
            raise RuntimeError(f"lsio-loader: page-locking the {size}-byte shared-memory ring "
                               f"(cudaHostRegister) failed with cudaError {err}")
        self._cudart = cudart

    def unregister(self) -> None:
        cudart, self._cudart = self._cudart, None
        if cudart is None:
            return
        err = int(cudart.cudaHostUnregister(self.ptr))
        # cudaErrorCudartUnloading: a ring collected at exit, after CUDA
        # has torn down, and with it every registration.
        if err not in (0, _CUDA_ERROR_CUDART_UNLOADING):
            raise RuntimeError(f"lsio-loader: unpinning the shared-memory ring (cudaHostUnregister) failed with cudaError {err}")


class ShmRing:
    """The client's side of one stream's ring: the mapped memfd and the
    side connection releases go over. pin: page-lock the mapping for CUDA
    (once, undone by close)."""

    def __init__(self, announce: dict[str, Any], *, pin: bool = False) -> None:
        self.size = int(announce["size"])
        self.slots = int(announce["slots"])
        self._lock = threading.RLock()  # a release may run from a GC inside another
        self._sock: socket.socket | None = None
        self._pin: _CudaPin | None = None
        if pin:
            check_pin_memory()
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
                # cudaHostRegister pins pages for writing, which a read-only
                # mapping refuses: a pinned ring is mapped read-write, and
                # its arrays are made read-only instead.
                prot = mmap.PROT_READ | mmap.PROT_WRITE if pin else mmap.PROT_READ
                self.mm = mmap.mmap(fds[0], self.size, flags=mmap.MAP_SHARED, prot=prot)
            finally:
                os.close(fds[0])
            if pin:
                self._pin = _CudaPin(self.mm, self.size)
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        self.held = 0

    @property
    def pinned(self) -> bool:
        """Whether the mapping is registered with CUDA now."""
        return self._pin is not None

    def slot(self, index: int, gen: int, offset: int, length: int) -> np.ndarray:
        """A read-only uint8 view of one leased slot; the slot is released
        when it, and every array made from it, is gone."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"lsio-loader: slot {index} at [{offset}, {offset + length}) outside the {self.size}-byte ring")
        owner = np.frombuffer(self.mm, dtype=np.uint8, count=length, offset=offset)
        owner.flags.writeable = False
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
        """Closes the side connection and unpins the mapping; arrays over
        the ring stay valid (unpinned), but their slots are then never
        freed: only for a ring nothing views."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            pin, self._pin = self._pin, None
        if pin is not None:
            pin.unregister()


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


def shm_batches(reader: flight.FlightStreamReader, timeout: float = 0, *, pin: bool = False) -> Iterator[ShmBatch | pa.RecordBatch]:
    """reader's batches, for a stream asked for with delivery "shm"; record
    batches when the server sent it as arrow instead (saying why). pin:
    page-lock the ring for CUDA."""
    from ._client import _batches, _Watchdog

    metadata = reader.schema.metadata or {}
    announce = metadata.get(META_SHM)
    if announce is None:
        refused = metadata.get(META_SHM_REFUSED)
        if refused is None:
            raise ValueError("lsio-loader: the stream's schema announces no shared-memory ring (lsio.shm): "
                             "the server does not deliver through shared memory")
        warnings.warn(f"lsio-loader: {refused.decode(errors='replace')}", RuntimeWarning, stacklevel=2)
        yield from _batches(reader)
        return
    ring = ShmRing(json.loads(announce), pin=pin)
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
