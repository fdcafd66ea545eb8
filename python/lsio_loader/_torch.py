"""LoaderDataset: an lsio-loader experiment as a torch IterableDataset."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from ._client import (
    SpecLike, _server_address, _spec_text, batch_to_numpy, endpoint_meta, get_flight_info, is_bfloat16, iter_endpoints_indexed,
    make_command, resolve_delivery, spec_roots,
)
from ._server import Server, connect
from ._shm import ShmBatch, check_pin_memory

__all__ = ["LoaderDataset", "batch_to_torch"]


def _tensor(array: np.ndarray) -> torch.Tensor:
    # Arrow buffers are read-only; torch warns on every such view although
    # the tensor only aliases the record batch it keeps alive. Writing to it
    # is undefined, as with any read-only numpy view.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def batch_to_torch(batch: pa.RecordBatch | ShmBatch) -> dict[str, torch.Tensor]:
    """batch_to_numpy as torch tensors sharing the record batch's buffers
    (or the shared-memory ring's); bfloat16 crops become torch.bfloat16
    views of their bits."""
    arrays = batch_to_numpy(batch)
    if isinstance(batch, ShmBatch):
        return {name: (_tensor(a.view(np.int16)).view(torch.bfloat16) if batch.dtypes.get(name) == "bfloat16" else _tensor(a))
                for name, a in arrays.items()}
    out: dict[str, torch.Tensor] = {}
    for field in batch.schema:
        array = arrays[field.name]
        if is_bfloat16(field):
            out[field.name] = _tensor(array.view(np.int16)).view(torch.bfloat16)
        else:
            out[field.name] = _tensor(array)
    return out


# The version of LoaderDataset.state_dict's layout.
_STATE_VERSION = 1


class LoaderDataset(IterableDataset):
    """Batches of crops from an lsio-loader server, as dicts of tensors.

    The server batches: use DataLoader(dataset, batch_size=None, num_workers=k).
    Each rank (torch.distributed, or rank/world_size) reads a disjoint share
    of the epoch, padded by repeating its first samples so that every rank
    yields as many batches (as DistributedSampler pads); within a rank the Flight endpoints are dealt to the
    DataLoader workers (worker w takes endpoints w, w+k, ...), so every
    sample arrives once. address None launches a server, owned by this
    dataset and stopped by close() or at exit; else it is the address of a
    running one (unix:///path.sock or grpc://host:port). location is
    address's deprecated name.

    Each pass over the dataset reads the next epoch (0, 1, ...) unless
    set_epoch pinned one, as DistributedSampler.set_epoch does; len() is
    the batches of an epoch for this rank. A DataLoader worker reads a copy
    of the dataset, which only a persistent worker keeps from one pass to
    the next: with non-persistent workers call set_epoch before each epoch.

    state_dict() and load_state_dict() follow torchdata's StatefulDataLoader
    protocol: a dataset loaded with the state of one stopped mid-epoch
    delivers exactly the batches that one had not, each stream starting
    after the batches it had delivered (the server skips them without
    cutting their crops). Use StatefulDataLoader's own state_dict, which
    carries each worker's.

    delivery: "shm" puts the crops in shared memory the server writes them
    to, read without a copy (unix sockets only; a batch's slot goes back to
    the server once every tensor viewing it is freed, and a stream stalls,
    then fails, if the trainer keeps more than a few of its batches alive);
    "arrow" sends them in the Flight stream. None: shm on a unix socket,
    else arrow. shm_slots: the batches in each stream's ring (None: the
    server's 6, what a reader thread, its queue and a training loop hold
    per stream plus the server's two; 3 to 64). A ring larger than the
    server's whole -memory budget is not made: the stream then comes as
    arrow, with a RuntimeWarning saying why.

    pin_memory=True (shm, num_workers=0) page-locks each stream's ring for
    CUDA once, when it is mapped (cudaHostRegister; undone when the ring
    is unmapped), so that .to("cuda", non_blocking=True) copies straight
    from it at pinned speed, with no staging copy. Without CUDA it raises
    here. DataLoader workers hand batches over as copies: with workers use
    DataLoader(pin_memory=True) instead.

    metrics="HOST:PORT" makes the server this dataset launches serve
    Prometheus metrics at http://HOST:PORT/metrics (with address given,
    that server's own `loader serve -metrics` does).

    With num_workers=0 the main process reads all its endpoints at once,
    each in a thread, zero-copy: the crops are cut in the server, so this
    is the cheapest way to feed a GPU (pin and copy each batch with
    .to("cuda", non_blocking=True)). Workers open their own Flight clients. gRPC does not survive fork() while
    a client is open in the parent: if the main process also reads from the
    server, give the DataLoader multiprocessing_context="forkserver".
    """

    def __init__(
        self,
        spec: SpecLike,
        *,
        address: str | None = None,
        split: str = "train",
        epoch: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        streams: int | None = None,
        raw: bool = False,
        tls_root_certs: bytes | str | None = None,
        token: str | None = None,
        location: str | None = None,
        delivery: str | None = None,
        shm_slots: int | None = None,
        pin_memory: bool = False,
        metrics: str | None = None,
    ) -> None:
        super().__init__()
        address = _server_address(address, location)
        if metrics is not None and address is not None:
            raise ValueError(f"metrics={metrics!r} configures the server this dataset launches; the server at "
                             f"{address} serves its own (loader serve -metrics)")
        if rank is None or world_size is None:
            distributed = dist.is_available() and dist.is_initialized()
            rank = (dist.get_rank() if distributed else 0) if rank is None else rank
            world_size = (dist.get_world_size() if distributed else 1) if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, world_size {world_size})")
        if epoch < 0:
            raise ValueError(f"epoch {epoch} is negative")
        self.spec = spec
        self.split = split
        self.rank = rank
        self.world_size = world_size
        self.streams = streams
        self.raw = raw
        self.tls_root_certs = tls_root_certs
        self.token = token
        # _next_epoch is what the next pass reads; a pass advances it unless
        # set_epoch pinned it. _pass is the pass in progress (or the last):
        # its epoch, streams, workers and batches delivered per stream.
        self._next_epoch = epoch
        self._pinned = False
        self._pass: dict[str, Any] | None = None
        # A loaded state's pass, resumed by the next pass over its epoch.
        self._resume: dict[str, Any] | None = None
        self._batch_counts: list[int] | None = None
        self._server: Server | None = None
        if address is None:
            # The launched server may read the spec's own stores only.
            self._server = Server(allow=spec_roots(spec), metrics=metrics)
            address = self._server.address
        self.address = address
        self.delivery = resolve_delivery(address, delivery)
        if shm_slots is not None and self.delivery != "shm":
            raise ValueError(f"shm_slots={shm_slots} needs delivery 'shm' (a unix socket); this dataset delivers {self.delivery!r}")
        if pin_memory:
            if self.delivery != "shm":
                raise ValueError("pin_memory=True page-locks the shared-memory ring, which needs delivery 'shm' "
                                 f"(a unix socket); this dataset delivers {self.delivery!r}: use DataLoader(pin_memory=True)")
            check_pin_memory()
        self.shm_slots = shm_slots
        self.pin_memory = pin_memory

    @property
    def epoch(self) -> int:
        """The epoch being read, or, between passes, the one read next."""
        if self._pass is not None and not self._pass["done"]:
            return self._pass["epoch"]
        return self._next_epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Reads epoch on every pass from now on, like
        DistributedSampler.set_epoch (call it before each epoch). A loaded
        state of that epoch is still resumed."""
        if epoch < 0:
            raise ValueError(f"epoch {epoch} is negative")
        self._next_epoch = epoch
        self._pinned = True

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def __getstate__(self) -> dict[str, Any]:
        # Workers connect to the server; only the owner stops it.
        state = self.__dict__.copy()
        state["_server"] = None
        return state

    def __repr__(self) -> str:
        spec = self.spec if not isinstance(self.spec, dict) else "{...}"
        streams = "" if self.streams is None else f", streams={self.streams}"
        return (f"LoaderDataset(spec={str(spec)!r}, split={self.split!r}, epoch={self.epoch}, "
                f"rank={self.rank}, world_size={self.world_size}{streams}, address={self.address!r})")

    def _command(self, streams: int | None, *, epoch: int | None = None, skip: list[int] | None = None) -> bytes:
        return make_command(
            self.spec, split=self.split, epoch=self.epoch if epoch is None else epoch, rank=self.rank,
            world_size=self.world_size, streams=streams, raw=self.raw, skip=skip,
            delivery="shm" if self.delivery == "shm" else None, shm_slots=self.shm_slots,
        )

    def _connect(self):
        return connect(self.address, tls_root_certs=self.tls_root_certs, token=self.token)

    def __len__(self) -> int:
        """Batches in an epoch for this rank (all its workers together)."""
        if self._batch_counts is None:
            client = self._connect()
            try:
                info = get_flight_info(client, self._command(self.streams))
            finally:
                client.close()
            self._batch_counts = [endpoint_meta(ep)["batches"] for ep in info.endpoints]
        return sum(self._batch_counts)

    def _identity(self) -> dict[str, Any]:
        """What a state must match to be resumed here: the same samples in
        the same streams."""
        text, _ = _spec_text(self.spec)
        return {
            "spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "split": self.split,
            "rank": self.rank,
            "world_size": self.world_size,
            "streams": self.streams,
            "raw": self.raw,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this dataset (in a DataLoader worker: this worker) is in
        its epoch: the pass's epoch, streams and batches delivered per
        stream, with the identity a resume must match."""
        worker = get_worker_info()
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "identity": self._identity(),
            "next_epoch": self._next_epoch,
            "pinned": self._pinned,
            "worker": worker.id if worker is not None else 0,
            "workers": worker.num_workers if worker is not None else 0,
            "pass": None,
        }
        if self._pass is not None:
            p = self._pass
            state["pass"] = {"epoch": p["epoch"], "streams": p["streams"], "done": p["done"],
                             "batches": dict(p["batches"]), "delivered": dict(p["delivered"])}
        elif self._resume is not None:
            state["pass"] = json.loads(json.dumps(self._resume))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes from state_dict's state: the next pass reads the state's
        epoch, each stream after the batches it had delivered (or, if that
        pass had finished, the epoch after). Refuses a state from another
        spec, split, rank, world size or number of DataLoader workers."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"LoaderDataset state: want a version {_STATE_VERSION} state_dict(), "
                             f"got version {state.get('version') if isinstance(state, dict) else type(state).__name__}")
        mine = self._identity()
        theirs = state.get("identity", {})
        for key, value in mine.items():
            if theirs.get(key) != value:
                what = "the spec's text (seed, sources, ...)" if key == "spec_sha256" else key
                raise ValueError(f"LoaderDataset state: saved for a different {what}: "
                                 f"state has {theirs.get(key)!r}, this dataset {value!r}; a state resumes only the same experiment")
        worker = get_worker_info()
        workers = worker.num_workers if worker is not None else 0
        if state["workers"] != workers:
            raise ValueError(f"LoaderDataset state: saved with {state['workers']} DataLoader workers, loaded with {workers}; "
                             "resume with the same num_workers (each worker holds its own streams' counts)")
        if worker is not None and state["worker"] != worker.id:
            raise ValueError(f"LoaderDataset state: worker {state['worker']}'s state loaded into worker {worker.id}")
        self._pinned = bool(state["pinned"])
        self._next_epoch = int(state["next_epoch"])
        self._pass = None
        self._resume = None
        p = state["pass"]
        if p is None:
            return
        if p["streams"] is None:
            # Saved before that pass asked for its streams: nothing delivered yet.
            self._next_epoch = int(p["epoch"])
            return
        if p["done"] or all(p["delivered"].get(k, 0) >= n for k, n in p["batches"].items()):
            # That pass had delivered everything: the epoch after it is next.
            return
        self._resume = {"epoch": int(p["epoch"]), "streams": int(p["streams"]), "done": False,
                        "batches": {str(k): int(n) for k, n in p["batches"].items()},
                        "delivered": {str(k): int(n) for k, n in p["delivered"].items()}}
        self._next_epoch = self._resume["epoch"]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # Not a generator: the pass (its epoch, its resumed counts) is set
        # up here, so that a state_dict() taken before the first batch, as
        # StatefulDataLoader's workers take one, already describes it. It
        # only uses up its epoch (and the loaded state) once read from:
        # StatefulDataLoader may make an iterator it never reads.
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        epoch = self._next_epoch
        resume = self._resume if self._resume is not None and self._resume["epoch"] == epoch else None
        self._pass = {"epoch": epoch, "streams": None, "done": False, "batches": {}, "delivered": {}}
        if resume is not None:
            self._pass.update(streams=resume["streams"], batches=dict(resume["batches"]), delivered=dict(resume["delivered"]))
        return self._read(self._pass, resume, worker_id, workers, worker is None)

    def _read(self, p: dict[str, Any], resume: dict[str, Any] | None, worker_id: int, workers: int,
              in_main: bool) -> Iterator[dict[str, torch.Tensor]]:
        if self.pin_memory and not in_main:
            raise RuntimeError("LoaderDataset(pin_memory=True) page-locks the ring of the process reading it, for "
                               "num_workers=0; DataLoader workers hand batches over as copies: use "
                               "DataLoader(pin_memory=True) with workers")
        if self._resume is not None and self._resume is resume:
            self._resume = None
        if not self._pinned and self._next_epoch == p["epoch"]:
            self._next_epoch = p["epoch"] + 1
        client = self._connect()
        try:
            streams = p["streams"]
            if streams is None:
                info = get_flight_info(client, self._command(self.streams, epoch=p["epoch"]))
                if self.streams is None and len(info.endpoints) < workers:
                    # Every worker asks the same, so every worker sees the same endpoints.
                    info = get_flight_info(client, self._command(workers, epoch=p["epoch"]))
                p["streams"] = len(info.endpoints)
            else:
                # A resumed pass: the same streams, each after what it delivered.
                skip = [p["delivered"].get(str(i), 0) for i in range(streams)]
                info = get_flight_info(client, self._command(streams, epoch=p["epoch"], skip=skip))
            mine = list(range(len(info.endpoints)))[worker_id::workers]
            for i in mine:
                meta = endpoint_meta(info.endpoints[i])
                p["batches"][str(i)] = meta["batches"]
                p["delivered"].setdefault(str(i), meta["skip"])
            self._batch_counts = [endpoint_meta(ep)["batches"] for ep in info.endpoints]
            # In the main process (num_workers=0) every stream is read at
            # once by threads: as fast as workers, without their copies.
            endpoints = [info.endpoints[i] for i in mine]
            shm = self.delivery == "shm"
            for j, batch in iter_endpoints_indexed(client, endpoints, concurrently=in_main, shm=shm, pin=self.pin_memory):
                out = batch_to_torch(batch)
                # Counted before the yield: a state_dict() taken once the
                # batch is out (StatefulDataLoader's snapshot) includes it.
                key = str(mine[j])
                p["delivered"][key] += 1
                yield out
            p["done"] = True
        finally:
            client.close()
