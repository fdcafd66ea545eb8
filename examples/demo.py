#!/usr/bin/env python
"""lsio-loader demo: serve the built-in sample data (written by `loader demo`)
over Arrow Flight, read it through a torch DataLoader with two workers, and
train a tiny conv net to predict each satellite crop's per-channel mean from
the NWP crop at the same place and time. Prints crops/s and MB/s.

    python examples/demo.py --data data/sample
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

import lsio_loader

HERE = Path(__file__).resolve().parent


def load_spec(spec_path: Path, data: Path | None) -> dict:
    """The spec with stores resolved to absolute paths, moved to data/ when given."""
    spec = yaml.safe_load(spec_path.read_text())
    for src in spec["sources"].values():
        store = Path(src["store"])
        if data is not None:
            store = data / store.name
        elif not store.is_absolute():
            store = spec_path.parent / store
        src["store"] = str(store.resolve())
    for key in ("locations",):
        sites = (spec.get(key) or {}).get("sites")
        if sites and not Path(sites).is_absolute():
            spec[key]["sites"] = str((spec_path.parent / sites).resolve())
    return spec


class MeanPredictor(nn.Module):
    """NWP crop (B, T, C, H, W) → per-channel mean of the satellite crop."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LazyConv2d(32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1, -3))  # time and channels as conv channels


def pick_sources(batch: dict[str, torch.Tensor]) -> tuple[str, str]:
    names = sorted(k for k, v in batch.items() if "." not in k and v.ndim >= 4)
    nwp = next((n for n in names if "nwp" in n), names[0])
    sat = next((n for n in names if n != nwp and "sat" in n), names[-1])
    return nwp, sat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="directory holding nwp.zarr and satellite.zarr (default: as the spec says)")
    parser.add_argument("--spec", type=Path, default=HERE / "sample_data.yaml")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)  # leave the cores to the server and the workers
    spec = load_spec(args.spec, args.data)
    with lsio_loader.Server() as server:
        print(f"server {server.address} (pid {server.pid})", flush=True)
        dataset = lsio_loader.LoaderDataset(spec, address=server.address)
        loader = DataLoader(dataset, batch_size=None, num_workers=args.workers, persistent_workers=False)
        model: MeanPredictor | None = None
        opt = None
        step = crops = nbytes = 0
        epoch = 0
        start = time.perf_counter()
        window_start, window_crops, window_bytes = start, 0, 0
        while step < args.steps:
            dataset.set_epoch(epoch)
            for batch in loader:
                if model is None:
                    nwp, sat = pick_sources(batch)
                    print(f"sources: {nwp} {tuple(batch[nwp].shape)} {batch[nwp].dtype} -> "
                          f"{sat} {tuple(batch[sat].shape)}", flush=True)
                    model = MeanPredictor(batch[sat].shape[2] if batch[sat].ndim == 5 else 1)
                    model(batch[nwp])  # materialise the lazy layer before the optimiser sees it
                    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
                x = torch.nan_to_num(batch[nwp].float())
                y = torch.nan_to_num(batch[sat].float())
                target = y.mean(dim=(1, 3, 4)) if y.ndim == 5 else y.flatten(1).mean(1, keepdim=True)
                loss = nn.functional.mse_loss(model(x), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n = len(batch["epoch_index"])
                b = sum(v.numel() * v.element_size() for k, v in batch.items() if "." not in k and v.ndim >= 4)
                crops, nbytes = crops + n, nbytes + b
                window_crops, window_bytes = window_crops + n, window_bytes + b
                step += 1
                if step % 50 == 0 or step == 1:
                    now = time.perf_counter()
                    dt = max(now - window_start, 1e-9)
                    print(f"epoch {epoch} step {step:4d} loss {loss.item():.4f}  "
                          f"{window_crops / dt:7.1f} crops/s {window_bytes / dt / 1e6:7.1f} MB/s", flush=True)
                    window_start, window_crops, window_bytes = now, 0, 0
                if step >= args.steps:
                    break
            epoch += 1
        elapsed = time.perf_counter() - start
        print(f"done: {step} steps, {crops} crops, {nbytes / 1e6:.1f} MB in {elapsed:.1f}s: "
              f"{crops / elapsed:.1f} crops/s, {nbytes / elapsed / 1e6:.1f} MB/s (training included)", flush=True)
    status = server.close()
    print(f"server stopped (exit status {status})", flush=True)
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
