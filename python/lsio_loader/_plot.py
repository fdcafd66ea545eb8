"""Pictures of what the loader serves (the `plot` extra: matplotlib):
every source's crop of one sample side by side, so that one sees at once
whether NWP and satellite line up in place and time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pyarrow as pa

from . import _schema
from ._client import batch_to_numpy, is_bfloat16

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_sample"]

NAT = np.iinfo(np.int64).min
BatchLike = Union[pa.RecordBatch, Mapping[str, Any]]


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, bfloat16 included
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _columns(batch: BatchLike) -> dict[str, np.ndarray]:
    if isinstance(batch, pa.RecordBatch):
        out = batch_to_numpy(batch)
        for field in batch.schema:
            if is_bfloat16(field):
                out[field.name] = _bf16_to_f32(out[field.name])
        return out
    return {k: _as_numpy(v) for k, v in batch.items()}


def _time(ns: int) -> str:
    if ns == NAT:
        return "no time"
    return str(np.datetime64(int(ns), "ns").astype("datetime64[m]")).replace("T", " ")


def _offset(ns: int, t0: int) -> str:
    if ns == NAT or t0 == NAT:
        return ""
    minutes = (int(ns) - int(t0)) / 60e9
    return f" (t0{minutes:+.0f} min)"


def _frames(crop: np.ndarray) -> np.ndarray:
    """One sample's crop as (T, C, H, W): georeferenced sources are that
    already; a generic source's leading dims become time and channels."""
    if crop.ndim >= 4:
        return crop.reshape(crop.shape[0], -1, *crop.shape[-2:])
    if crop.ndim == 3:
        return crop[:, None]
    if crop.ndim == 2:
        return crop[None, None]
    return crop.reshape(1, 1, 1, -1)


def sample_sources(columns: Mapping[str, np.ndarray]) -> list[str]:
    """The sources of a batch: the columns with an "<name>.isel" beside them."""
    return [k for k in columns if not k.endswith((_schema.SUFFIX_ISEL, _schema.SUFFIX_TIME))
            and k + _schema.SUFFIX_ISEL in columns]


def plot_sample(batch: BatchLike, i: int, *, out: str | os.PathLike | None = None, panel_size: float = 2.4) -> "Figure":
    """Draws sample i of a batch (a record batch, or the dict iter_batches
    or LoaderDataset yields): per source, one panel per channel, side by
    side, each at the source's step nearest t0 (the last at or before it),
    titled with that step's time; the figure's title gives t0, the epoch
    index and the location (OSGB x/y, lat/lon). Saves a PNG to out if
    given and returns the matplotlib Figure. bfloat16 crops are read as
    numbers from a record batch or a torch batch; batch_to_numpy's dict
    holds only their bits (uint16)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = _columns(batch)
    sources = sample_sources(cols)
    if not sources:
        raise ValueError(f"batch has no source crops (columns: {sorted(cols)})")
    n = len(cols[sources[0]])
    if not -n <= i < n:
        raise IndexError(f"sample {i}: the batch has {n} samples")
    i %= n
    t0 = int(cols[_schema.T0][i]) if _schema.T0 in cols else NAT

    panels: list[tuple[str, int, np.ndarray, str]] = []
    for name in sources:
        frames = _frames(np.asarray(cols[name][i], dtype=np.float32))
        times = cols.get(name + _schema.SUFFIX_TIME)
        step, label = frames.shape[0] - 1, ""
        if times is not None and len(times[i]) == frames.shape[0]:
            ts = np.asarray(times[i], dtype=np.int64)
            if t0 != NAT:
                before = np.flatnonzero((ts != NAT) & (ts <= t0))
                step = int(before[-1]) if len(before) else int(np.argmin(np.abs(ts - t0)))
            label = _time(int(ts[step])) + _offset(int(ts[step]), t0)
        for c in range(frames.shape[1]):
            panels.append((name, c, frames[step, c], label))

    # Wide enough for the two title lines even with one or two panels.
    fig = Figure(figsize=(max(panel_size * len(panels), 5.5), panel_size + 1.1), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, c, image, label) in zip(axes, panels):
        finite = image[np.isfinite(image)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        ax.imshow(image, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(f"{name} ch {c}\n{label}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    where = []
    if _schema.X in cols and _schema.Y in cols:
        where.append(f"x {cols[_schema.X][i]:.0f} m, y {cols[_schema.Y][i]:.0f} m")
    if _schema.LAT in cols and _schema.LON in cols:
        where.append(f"{cols[_schema.LAT][i]:.3f}°N {cols[_schema.LON][i]:.3f}°E")
    title = f"sample {i}"
    if _schema.EPOCH_INDEX in cols:
        title += f" (epoch index {int(cols[_schema.EPOCH_INDEX][i])})"
    title += f" · t0 {_time(t0)}"
    if where:
        title += "\n" + " · ".join(where)
    fig.suptitle(title, fontsize=9)
    if out is not None:
        fig.savefig(out, format="png", dpi=100)
    return fig
