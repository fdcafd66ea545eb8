"""Requests to an lsio-loader server and record batches as numpy arrays."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import queue
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from . import _schema
from ._server import Server, connect
from ._shm import ShmBatch, shm_batches

__all__ = [
    "SpecLike", "make_command", "get_flight_info", "batch_to_numpy", "iter_batches", "iter_endpoint", "iter_endpoints",
    "iter_endpoints_concurrently", "iter_endpoints_indexed", "endpoint_meta",
    "retain_freed_memory", "spec_roots",
]

SpecLike = Union[str, os.PathLike, Mapping[str, Any]]

PROVENANCE = _schema.PROVENANCE
NAT = np.iinfo(np.int64).min


def _spec_text(spec: SpecLike) -> tuple[str, str]:
    """The spec's text and the directory its relative paths resolve against."""
    if isinstance(spec, Mapping):
        return json.dumps(spec), os.getcwd()
    # A one-line string naming a file is a path; anything else is spec text.
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec and os.path.isfile(spec)):
        path = Path(spec).resolve()
        return path.read_text(), str(path.parent)
    if isinstance(spec, str):
        return spec, os.getcwd()
    raise TypeError(f"spec: want a path, spec text or a dict, got {type(spec).__name__}")


def spec_roots(spec: SpecLike) -> list[str] | None:
    """The stores and sites file spec names, resolved as the server resolves
    them: the roots (`loader serve -allow`) of a server launched for this
    spec alone. None when the spec cannot be read here (YAML text without
    PyYAML installed): the server then checks it on its own."""
    text, spec_dir = _spec_text(spec)
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError:
            return None
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
    if not isinstance(parsed, Mapping):
        return None

    def resolve(p: str) -> str:
        return p if "://" in p or os.path.isabs(p) else os.path.abspath(os.path.join(spec_dir, p))

    roots = [resolve(src["store"]) for src in (parsed.get("sources") or {}).values()
             if isinstance(src, Mapping) and isinstance(src.get("store"), str)]
    sites = (parsed.get("locations") or {}).get("sites") if isinstance(parsed.get("locations"), Mapping) else None
    if isinstance(sites, str) and sites:
        roots.append(resolve(sites))
    return roots or None


# Seconds a stream may go without delivering a batch before the read fails
# (LSIO_LOADER_BATCH_TIMEOUT; 0: no limit). Generous: a batch may take long
# to read from a slow store; a frozen server is caught sooner by keepalive.
def _batch_timeout() -> float:
    return float(os.environ.get("LSIO_LOADER_BATCH_TIMEOUT", "600"))


def make_command(
    spec: SpecLike,
    *,
    split: str = "train",
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    streams: int | None = None,
    raw: bool = False,
    skip: Sequence[int] | None = None,
    delivery: str | None = None,
    shm_slots: int | None = None,
) -> bytes:
    """The FlightDescriptor command asking for one rank's share of an epoch.
    skip, one count per stream (streams must then be given), starts each
    stream after that many of its batches: what a resumed reader already has.
    delivery "shm" asks for the crops in shared memory (unix sockets), in a
    ring of shm_slots batches per stream (None: the server's default)."""
    text, spec_dir = _spec_text(spec)
    envelope: dict[str, Any] = {
        "spec": text,
        "spec_dir": spec_dir,
        "split": split,
        "epoch": int(epoch),
        "rank": int(rank),
        "world_size": int(world_size),
        "raw": bool(raw),
    }
    if streams is not None:
        envelope["streams"] = int(streams)
    if skip is not None:
        envelope["skip"] = [int(k) for k in skip]
    if delivery is not None:
        envelope["delivery"] = delivery
    if shm_slots is not None:
        if delivery != "shm":
            raise ValueError(f"shm_slots={shm_slots} needs delivery='shm', got delivery={delivery!r}")
        envelope["shm_slots"] = int(shm_slots)
    return json.dumps(envelope).encode()


def resolve_delivery(address: str, delivery: str | None) -> str:
    """delivery, or by default "shm" on a unix socket and "arrow" otherwise."""
    if delivery is None:
        return "shm" if address.startswith("unix://") else "arrow"
    if delivery not in ("shm", "arrow"):
        raise ValueError(f"delivery={delivery!r}: want 'shm', 'arrow' or None (shm on a unix socket)")
    if delivery == "shm" and not address.startswith("unix://"):
        raise ValueError(f"delivery='shm' needs a unix-socket address (unix:///path.sock), got {address!r}")
    return delivery


def get_flight_info(client: flight.FlightClient, command: bytes) -> flight.FlightInfo:
    return client.get_flight_info(flight.FlightDescriptor.for_command(command))


def endpoint_meta(endpoint: flight.FlightEndpoint) -> dict[str, int]:
    """An endpoint's app_metadata: its "stream", the "batches" and "records"
    of that stream over the whole epoch, and the batches it "skip"s."""
    raw = endpoint.app_metadata
    if not raw:
        raise ValueError("endpoint has no app_metadata: the server predates resume support (upgrade `loader`)")
    meta = json.loads(raw)
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in ("stream", "batches", "records", "skip")):
        raise ValueError(f"endpoint app_metadata {raw!r}: want stream, batches, records and skip counts")
    return meta


def _column_dtype(field: pa.Field) -> np.dtype | None:
    """The numpy dtype a column's bits stand for, where Arrow's type is only
    their carrier (bfloat16 is left to the caller: numpy has none)."""
    md = field.metadata or {}
    true = md.get(_schema.META_DTYPE)
    if true is None or true == b"bfloat16":
        return None
    if true == b"bool":
        return np.dtype(np.bool_)
    return np.dtype(true.decode())


def is_bfloat16(field: pa.Field) -> bool:
    return (field.metadata or {}).get(_schema.META_DTYPE) == b"bfloat16"


# Arrow value types of our columns, by their id, as numpy dtypes.
_NUMPY_DTYPES = {
    t.id: np.dtype(d)
    for t, d in [
        (pa.float16(), np.float16), (pa.float32(), np.float32), (pa.float64(), np.float64),
        (pa.int8(), np.int8), (pa.int16(), np.int16), (pa.int32(), np.int32), (pa.int64(), np.int64),
        (pa.uint8(), np.uint8), (pa.uint16(), np.uint16), (pa.uint32(), np.uint32), (pa.uint64(), np.uint64),
        (pa.timestamp("ns"), np.int64),
    ]
}


def _values(col: pa.Array) -> np.ndarray:
    """A fixed-width column's values (nulls not masked), zero-copy: numpy
    over the Arrow buffer. Not Array.to_numpy, whose first call imports
    pandas (over a second, once per DataLoader worker)."""
    dtype = _NUMPY_DTYPES.get(col.type.id)
    if dtype is None:
        raise TypeError(f"column of {col.type}: not a fixed-width numeric type")
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=col.offset + len(col))[col.offset:]


def _flat_values(col: pa.Array) -> np.ndarray:
    """The values of a fixed-size-list (or tensor) column, zero-copy."""
    if isinstance(col, pa.ExtensionArray):
        col = col.storage
    # Not col.flatten(), whose first call imports pyarrow.compute (a
    # quarter of a second, on the first batch of every process).
    size = col.type.list_size
    return _values(col.values)[col.offset * size:(col.offset + len(col)) * size]


def _int64s(col: pa.Array) -> np.ndarray:
    """A timestamp column's int64 ns, nulls as NaT."""
    values = _values(col)
    if col.null_count:
        bits = np.unpackbits(np.frombuffer(col.buffers()[0], dtype=np.uint8), bitorder="little")
        values = np.where(bits[col.offset:col.offset + len(col)].astype(bool), values, NAT)
    return values


def batch_to_numpy(batch: pa.RecordBatch | ShmBatch) -> dict[str, np.ndarray]:
    """A record batch as numpy arrays sharing its buffers (read-only): per
    source its crops (B, *shape) — bfloat16 as uint16 bits —, "<name>.isel"
    (B, ndim, 2) [start, stop) per own dim, "<name>.time" (B, T) ns, and
    "t0" (ns, NaT as int64 min), "epoch_index", "x", "y", "lat", "lon".
    A shared-memory batch's crops are views of the ring."""
    if isinstance(batch, ShmBatch):
        small = batch_to_numpy(batch.record)
        out_shm: dict[str, np.ndarray] = {}
        for name, values in small.items():
            # Keep the Arrow path's order: each source's crops before its isel.
            if name.endswith(_schema.SUFFIX_ISEL):
                source = name[:-len(_schema.SUFFIX_ISEL)]
                if source in batch.crops:
                    out_shm[source] = batch.crops[source]
            out_shm[name] = values
        return out_shm
    out: dict[str, np.ndarray] = {}
    n = batch.num_rows
    for field, col in zip(batch.schema, batch.columns):
        name = field.name
        if isinstance(field.type, pa.FixedShapeTensorType):
            values = _flat_values(col)
            dtype = _column_dtype(field)
            if dtype is not None:
                values = values.view(dtype)
            out[name] = values.reshape((n, *field.type.shape))
        elif name.endswith(_schema.SUFFIX_ISEL):
            out[name] = _flat_values(col).reshape(n, -1, 2)
        elif name.endswith(_schema.SUFFIX_TIME):
            out[name] = _int64s(col.flatten()).reshape(n, -1)
        elif name == _schema.T0:
            out[name] = _int64s(col)
        else:
            out[name] = _values(col)
    return out


class _FreedMemory:
    """Lets gRPC recycle the memory of received batches.

    gRPC assembles every Flight message (a whole batch: tens to hundreds of
    MB) in one fresh malloc. glibc serves any allocation above 32 MiB with
    its own mmap and unmaps it on free, so each batch costs the client a
    page fault and a zeroed page per 4 KiB: more than half the client's CPU
    time (0.7 of 1.25 CPU-s per GB on the satellite bench). While a batch is
    received, mmap is off (M_MMAP_MAX 0), so that its message comes from
    the heap, where the last one's freed pages are; and the heap keeps a few
    batches' worth free at its top instead of trimming it. Only while
    receiving: with mmap off for good, the rest of the process's big
    allocations fragment the heap (the bench's reader grew by 1 GB); as it
    is, the client keeps about two batches more resident. Setting these
    stops glibc adapting its mmap threshold, so it is pinned where that
    adaptation ends (32 MiB). Process-wide, as malloc settings are;
    LSIO_LOADER_MALLOC=system leaves malloc alone.
    """

    M_TRIM_THRESHOLD = -1
    M_MMAP_THRESHOLD = -3
    M_MMAP_MAX = -4
    MMAP_THRESHOLD = 32 << 20
    # glibc's default mmap count limit, restored after each receive.
    MMAP_MAX_DEFAULT = 65536
    # Free bytes kept at the heap's top: at least this, else a few batches.
    MIN_RETAINED = 64 << 20
    BATCHES_RETAINED = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mallopt = None
        self._retained = 0
        self._receiving = 0  # threads inside next_batch
        if os.environ.get("LSIO_LOADER_MALLOC", "") == "system" or platform.libc_ver()[0] != "glibc":
            return
        try:
            self._mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return
        self._mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        self._mallopt.restype = ctypes.c_int

    def retain(self, batch_bytes: int) -> bool:
        """Keeps a few batches of batch_bytes free at the heap's top."""
        if self._mallopt is None:
            return False
        want = min(max(self.MIN_RETAINED, self.BATCHES_RETAINED * batch_bytes), 2**31 - 1)
        if want > self._retained:
            with self._lock:
                if self._retained == 0 and self._mallopt(self.M_MMAP_THRESHOLD, self.MMAP_THRESHOLD) != 1:
                    self._mallopt = None
                    return False
                if want > self._retained and self._mallopt(self.M_TRIM_THRESHOLD, want) == 1:
                    self._retained = want
        return self._retained > 0

    def next_batch(self, reader: flight.FlightStreamReader) -> pa.RecordBatch:
        """reader's next record batch, received into recycled memory;
        StopIteration at the end of the stream."""
        if not self.retain(0):
            return reader.read_chunk().data
        # mmap stays off while any thread receives (streams read
        # concurrently), and comes back with the last one out.
        with self._lock:
            self._receiving += 1
            if self._receiving == 1:
                self._mallopt(self.M_MMAP_MAX, 0)
        try:
            batch = reader.read_chunk().data
        finally:
            with self._lock:
                self._receiving -= 1
                if self._receiving == 0:
                    self._mallopt(self.M_MMAP_MAX, self.MMAP_MAX_DEFAULT)
        self.retain(batch.nbytes)
        return batch


_freed_memory = _FreedMemory()


def retain_freed_memory(batch_bytes: int = 0) -> bool:
    """Tunes this process's malloc to keep a few batches of batch_bytes
    free for reuse (see _FreedMemory); False where it cannot (not glibc,
    or opted out)."""
    return _freed_memory.retain(batch_bytes)


def iter_endpoint(
    client: flight.FlightClient, endpoint: flight.FlightEndpoint, *, shm: bool = False, pin: bool = False,
) -> Iterator[pa.RecordBatch | ShmBatch]:
    """An endpoint's batches; shm: its command asked for delivery "shm";
    pin: page-lock its ring for CUDA."""
    yield from _read(client.do_get(endpoint.ticket), shm, pin)


def _read(reader: flight.FlightStreamReader, shm: bool, pin: bool = False) -> Iterator[pa.RecordBatch | ShmBatch]:
    return shm_batches(reader, _batch_timeout(), pin=pin) if shm else _batches(reader)


class _Watchdog:
    """Cancels a stream's reader once a batch takes longer than timeout
    seconds to arrive: one thread per stream, waking once a second."""

    def __init__(self, reader: flight.FlightStreamReader, timeout: float) -> None:
        self.timeout = timeout
        self.expired = False
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._reader = reader
        self._thread = threading.Thread(target=self._watch, name="lsio-loader-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout)):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                self.expired = True
                self._reader.cancel()
                return

    def arm(self) -> None:
        self._deadline = time.monotonic() + self.timeout

    def disarm(self) -> None:
        self._deadline = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def _batches(reader: flight.FlightStreamReader) -> Iterator[pa.RecordBatch]:
    timeout = _batch_timeout()
    watchdog = _Watchdog(reader, timeout) if timeout > 0 else None
    try:
        while True:
            if watchdog is not None:
                watchdog.arm()
            try:
                batch = _freed_memory.next_batch(reader)
            except StopIteration:
                return
            except (flight.FlightError, pa.ArrowException) as e:
                if watchdog is not None and watchdog.expired:
                    raise TimeoutError(f"lsio-loader: no batch from the server within {timeout:.0f} s "
                                       "(LSIO_LOADER_BATCH_TIMEOUT)") from e
                raise
            if watchdog is not None:
                watchdog.disarm()
            yield batch
    finally:
        if watchdog is not None:
            watchdog.close()


def iter_endpoints(client: flight.FlightClient, endpoints: Iterable[flight.FlightEndpoint], *, shm: bool = False) -> Iterator[pa.RecordBatch | ShmBatch]:
    """The endpoints' record batches, endpoint after endpoint, one stream
    open at a time. (Opening the next stream early, so that the server crops
    it during the current one's tail, measured no faster on the satellite
    bench: the server's cores are busy all along either way.)"""
    for endpoint in endpoints:
        yield from iter_endpoint(client, endpoint, shm=shm)


def iter_endpoints_concurrently(
    client: flight.FlightClient, endpoints: Sequence[flight.FlightEndpoint], depth: int = 1, *, shm: bool = False,
) -> Iterator[pa.RecordBatch | ShmBatch]:
    """The endpoints' record batches with every stream open at once, each
    received by its own thread (pyarrow receives without the GIL) up to
    depth batches ahead, and yielded round-robin: the first batch of each
    endpoint in turn, then the second, and so on, as a DataLoader deals
    its workers' batches. One process then keeps the server as busy as
    DataLoader workers would, without their copies into shared memory."""
    for _, batch in _iter_concurrently(client, endpoints, depth, shm):
        yield batch


def iter_endpoints_indexed(
    client: flight.FlightClient, endpoints: Sequence[flight.FlightEndpoint], *, concurrently: bool, shm: bool = False,
    pin: bool = False,
) -> Iterator[tuple[int, pa.RecordBatch | ShmBatch]]:
    """(i, batch) for each batch of endpoints[i]: iter_endpoints' order, or
    iter_endpoints_concurrently's when concurrently. The index lets a reader
    count what each stream has delivered."""
    if concurrently:
        yield from _iter_concurrently(client, endpoints, 1, shm, pin)
        return
    for i, endpoint in enumerate(endpoints):
        for batch in iter_endpoint(client, endpoint, shm=shm, pin=pin):
            yield i, batch


def _iter_concurrently(
    client: flight.FlightClient, endpoints: Sequence[flight.FlightEndpoint], depth: int, shm: bool = False,
    pin: bool = False,
) -> Iterator[tuple[int, pa.RecordBatch | ShmBatch]]:
    if len(endpoints) <= 1:
        for endpoint in endpoints:
            for batch in iter_endpoint(client, endpoint, shm=shm, pin=pin):
                yield 0, batch
        return
    stop = threading.Event()
    done = object()
    queues: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in endpoints]
    readers: list[flight.FlightStreamReader | None] = [None] * len(endpoints)

    def put(q: queue.Queue, item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def receive(i: int) -> None:
        q = queues[i]
        try:
            readers[i] = reader = client.do_get(endpoints[i].ticket)
            for batch in _read(reader, shm, pin):
                if not put(q, batch):
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            put(q, e)
            return
        put(q, done)

    threads = [threading.Thread(target=receive, args=(i,), name=f"lsio-loader-stream-{i}", daemon=True)
               for i in range(len(endpoints))]
    started: list[threading.Thread] = []
    try:
        # The other streams open once the first has its first batch: alone,
        # its chunks decode on every core of the server, so a trainer's
        # first step waits for one batch's work, not one per stream (on
        # two cores with two streams, 0.87 s against 1.9 s); the first
        # stream's prefetch keeps the cores busy meanwhile.
        threads[0].start()
        started.append(threads[0])
        pending = {0: queues[0].get()}
        for t in threads[1:]:
            t.start()
            started.append(t)
        live = list(range(len(endpoints)))
        while live:
            for i in list(live):
                item = pending.pop(i) if i in pending else queues[i].get()
                if item is done:
                    live.remove(i)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield i, item
    finally:
        stop.set()
        for r in readers:
            if r is not None:
                r.cancel()
        for t in started:
            t.join()


def iter_record_batches(
    spec: SpecLike,
    *,
    address: str | None = None,
    split: str = "train",
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    streams: int | None = None,
    raw: bool = False,
    endpoints: Sequence[int] | None = None,
    tls_root_certs: bytes | str | os.PathLike | None = None,
    token: str | None = None,
    location: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of one rank's share of an epoch, endpoint after
    endpoint (only those listed in endpoints, if given), from the server at
    address (unix:///path.sock or grpc://host:port). Launches a server for
    the duration, allowed the spec's own stores only, when address is None.
    tls_root_certs and token: see connect. location is address's deprecated
    name."""
    address = _server_address(address, location)
    return _iter_record_batches(spec, address, split=split, epoch=epoch, rank=rank, world_size=world_size,
                                streams=streams, raw=raw, endpoints=endpoints,
                                tls_root_certs=tls_root_certs, token=token)


def _iter_record_batches(
    spec: SpecLike, address: str | None, *, split: str, epoch: int, rank: int, world_size: int,
    streams: int | None, raw: bool, endpoints: Sequence[int] | None,
    tls_root_certs: bytes | str | os.PathLike | None, token: str | None,
) -> Iterator[pa.RecordBatch]:
    if address is None:
        with Server(allow=spec_roots(spec)) as server:
            yield from _iter_record_batches(
                spec, server.address, split=split, epoch=epoch, rank=rank,
                world_size=world_size, streams=streams, raw=raw, endpoints=endpoints,
                tls_root_certs=None, token=None,
            )
        return
    command = make_command(spec, split=split, epoch=epoch, rank=rank, world_size=world_size, streams=streams, raw=raw)
    client = connect(address, tls_root_certs=tls_root_certs, token=token)
    try:
        info = get_flight_info(client, command)
        chosen = info.endpoints if endpoints is None else [info.endpoints[i] for i in endpoints]
        yield from iter_endpoints(client, chosen)
    finally:
        client.close()


def _server_address(address: str | None, location: str | None) -> str | None:
    """address, or location, its deprecated name, with a DeprecationWarning."""
    if location is None:
        return address
    warnings.warn("location= is deprecated; pass the server address as address=", DeprecationWarning, stacklevel=3)
    if address is not None and address != location:
        raise TypeError(f"address={address!r} and location={location!r} disagree; pass address= only")
    return location


def iter_batches(spec: SpecLike, **kwargs: Any) -> Iterator[dict[str, np.ndarray]]:
    """Like iter_record_batches, each batch as batch_to_numpy's dict."""
    batches = iter_record_batches(spec, **kwargs)  # checks the arguments now, not at the first batch
    return (batch_to_numpy(batch) for batch in batches)
