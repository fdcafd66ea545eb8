"""Normalisation statistics with `loader stats`, in one process or fanned
out over a Dask cluster: one task per shard (whole chunks along time),
joined exactly by `loader stats merge`."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ._server import find_binary

if TYPE_CHECKING:  # the `dask` extra
    from distributed import Client

__all__ = ["stats"]

PathLike = Union[str, os.PathLike]


def _stats_args(
    target: PathLike, *, time: str | None, variables: Sequence[str] | None,
    channel_dim: str | None, decode_cf: bool,
) -> list[str]:
    args = ["stats", os.fspath(target)]
    if time is not None:
        args += ["--time", time]
    if variables is not None:
        args += ["--variables", ",".join(variables)]
    if channel_dim is not None:
        args += ["--channel-dim", channel_dim]
    if not decode_cf:
        args += ["--decode-cf=false"]
    return args


def _run(binary: str, args: list[str], what: str) -> str:
    proc = subprocess.run([binary, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: loader exited with status {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _shard_task(args: list[str], index: int, count: int, binary: str | None) -> str:
    """One Dask task: shard index of count, on whichever worker runs it,
    with that worker's own `loader` (the wheel's, or binary)."""
    return _run(binary or find_binary(), [*args, "-shard", f"{index}/{count}"], f"loader stats shard {index}/{count}")


def stats(
    target: PathLike,
    *,
    client: "Client | None" = None,
    shards: int | None = None,
    time: str | None = None,
    variables: Sequence[str] | None = None,
    channel_dim: str | None = None,
    decode_cf: bool = True,
    binary: str | None = None,
    out: PathLike | None = None,
) -> str:
    """Statistics of a spec's sources (a normalise section per source) or a
    store's variables, as the YAML `loader stats` writes; also written to
    out when given.

    Without client, one `loader stats` here. With a dask.distributed
    client, shards tasks (default: the cluster's threads) each run
    `loader stats -shard I/N` on a worker and return their partial
    statistics, which `loader stats merge` joins here: equal to the
    unsharded run to rounding. The spec and stores must be reachable at the
    same paths or URLs on every worker (an S3 store, a shared filesystem),
    and each worker needs `loader` (the wheel carries it; binary overrides
    it on workers and here).
    """
    args = _stats_args(target, time=time, variables=variables, channel_dim=channel_dim, decode_cf=decode_cf)
    if client is None:
        if shards not in (None, 1):
            raise ValueError("shards needs a Dask client (client=...) to run them on")
        text = _run(binary or find_binary(), args, "loader stats")
    else:
        if shards is None:
            shards = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        if shards < 1:
            raise ValueError(f"shards={shards}: want at least 1")
        futures = client.map(_shard_task, [args] * shards, range(shards), [shards] * shards, [binary] * shards, pure=False)
        parts: list[Any] = client.gather(futures)
        with tempfile.TemporaryDirectory(prefix="lsio-stats-") as tmp:
            files = []
            for i, part in enumerate(parts):
                p = Path(tmp) / f"shard-{i}-of-{shards}.yaml"
                p.write_text(part)
                files.append(str(p))
            text = _run(binary or find_binary(), ["stats", "merge", *files], "loader stats merge")
    if out is not None:
        Path(out).write_text(text)
    return text
