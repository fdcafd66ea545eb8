"""LoaderDataset: an lsio-loader experiment as a torch IterableDataset."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from ._client import (
    SpecLike, _server_address, batch_to_numpy, resolve_delivery, get_flight_info, is_bfloat16, iter_endpoints, iter_endpoints_concurrently, make_command,
    spec_roots,
)
from ._server import Server, connect
from ._shm import ShmBatch

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


class LoaderDataset(IterableDataset):
    """Batches of crops from an lsio-loader server, as dicts of tensors.

    The server batches: use DataLoader(dataset, batch_size=None, num_workers=k).
    Each rank (torch.distributed, or rank/world_size) reads a disjoint share
    of the epoch; within a rank the Flight endpoints are dealt to the
    DataLoader workers (worker w takes endpoints w, w+k, ...), so every
    sample arrives once. address None launches a server, owned by this
    dataset and stopped by close() or at exit; else it is the address of a
    running one (unix:///path.sock or grpc://host:port). location is
    address's deprecated name.

    delivery: "shm" puts the crops in shared memory the server writes them
    to, read without a copy (unix sockets only; a batch's slot goes back to
    the server once every tensor viewing it is freed, and a stream stalls,
    then fails, if the trainer keeps more than a few of its batches alive);
    "arrow" sends them in the Flight stream. None: shm on a unix socket,
    else arrow.

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
    ) -> None:
        super().__init__()
        address = _server_address(address, location)
        if rank is None or world_size is None:
            distributed = dist.is_available() and dist.is_initialized()
            rank = (dist.get_rank() if distributed else 0) if rank is None else rank
            world_size = (dist.get_world_size() if distributed else 1) if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, world_size {world_size})")
        self.spec = spec
        self.split = split
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.streams = streams
        self.raw = raw
        self.tls_root_certs = tls_root_certs
        self.token = token
        self._server: Server | None = None
        if address is None:
            # The launched server may read the spec's own stores only.
            self._server = Server(allow=spec_roots(spec))
            address = self._server.address
        self.address = address
        self.delivery = resolve_delivery(address, delivery)

    def set_epoch(self, epoch: int) -> None:
        """Reads epoch next time, like DistributedSampler.set_epoch."""
        self.epoch = epoch

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def __getstate__(self) -> dict[str, Any]:
        # Workers connect to the server; only the owner stops it.
        state = self.__dict__.copy()
        state["_server"] = None
        return state

    def _command(self, streams: int | None) -> bytes:
        return make_command(
            self.spec, split=self.split, epoch=self.epoch, rank=self.rank,
            world_size=self.world_size, streams=streams, raw=self.raw,
            delivery="shm" if self.delivery == "shm" else None,
        )

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        client = connect(self.address, tls_root_certs=self.tls_root_certs, token=self.token)
        try:
            info = get_flight_info(client, self._command(self.streams))
            if self.streams is None and len(info.endpoints) < workers:
                # Every worker asks the same, so every worker sees the same endpoints.
                info = get_flight_info(client, self._command(workers))
            mine = info.endpoints[worker_id::workers]
            # In the main process (num_workers=0) every stream is read at
            # once by threads: as fast as workers, without their copies.
            shm = self.delivery == "shm"
            batches = (iter_endpoints_concurrently(client, mine, shm=shm) if worker is None
                       else iter_endpoints(client, mine, shm=shm))
            for batch in batches:
                yield batch_to_torch(batch)
        finally:
            client.close()
