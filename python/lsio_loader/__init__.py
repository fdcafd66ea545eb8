"""lsio-loader's Python client: random crops of Zarr datasets served over
Arrow Flight by `loader serve`, as numpy arrays (iter_batches) or torch
tensors (LoaderDataset, with the `torch` extra), without copying."""

from ._malloc import limit_arenas

limit_arenas()  # before the imports below start thread pools: see _malloc

from ._client import batch_to_numpy, iter_batches, iter_record_batches, make_command  # noqa: E402
from ._server import Server, connect, find_binary  # noqa: E402
from ._stats import stats  # noqa: E402

__all__ = [
    "Server",
    "connect",
    "find_binary",
    "iter_batches",
    "iter_record_batches",
    "batch_to_numpy",
    "make_command",
    "stats",
    "plot_sample",
    "LoaderDataset",
    "batch_to_torch",
]


def __getattr__(name: str):
    # torch is an optional extra: imported only when asked for.
    if name in ("LoaderDataset", "batch_to_torch"):
        from . import _torch

        return getattr(_torch, name)
    # matplotlib is an optional extra too.
    if name == "plot_sample":
        from . import _plot

        return _plot.plot_sample
    raise AttributeError(f"module 'lsio_loader' has no attribute {name!r}")
