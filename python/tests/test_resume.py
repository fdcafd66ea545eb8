"""Exact mid-epoch resume through torchdata's StatefulDataLoader, against a
real `loader serve` on the real UKV + SEVIRI sample join: a loader stopped
after K batches, its state loaded into a fresh dataset and loader, delivers
exactly the rest of the epoch, none twice, in the iid and blocked orders,
with and without DataLoader workers, for one and two (simulated DDP) ranks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import lsio_loader
from conftest import REPO

torchdata = pytest.importorskip("torchdata.stateful_dataloader")
StatefulDataLoader = torchdata.StatefulDataLoader

EXAMPLE = REPO / "examples" / "real_ukv_seviri.yaml"
# The test process holds Flight clients, and gRPC does not survive fork().
# Workers fork from a server that has imported what they need once, not
# each worker anew (seconds each, on a busy machine).
FORK_SAFE = multiprocessing.get_context("forkserver")
FORK_SAFE.set_forkserver_preload(["torch", "pyarrow.flight", "lsio_loader", "torchdata.stateful_dataloader"])
EPOCH = 2


@pytest.fixture(scope="module")
def real_spec() -> dict:
    spec = yaml.safe_load(EXAMPLE.read_text())
    for src in spec["sources"].values():
        store = (EXAMPLE.parent / src["store"]).resolve()
        if not store.exists():
            pytest.skip(f"real data absent: {store}")
        src["store"] = str(store)
    return spec


def spec_file(tmp_path: Path, spec: dict, order: str) -> Path:
    spec = dict(spec)
    spec["order"] = {"mode": "iid"} if order == "iid" else {"mode": "blocked", "pool": "2GiB"}
    path = tmp_path / f"{order}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


Provenance = tuple[int, int, float, float]


def provenance(batch: dict[str, Any]) -> list[Provenance]:
    """Each sample's epoch position, t0 and location."""
    return [(int(i), int(t), float(x), float(y)) for i, t, x, y in zip(
        np.asarray(batch["epoch_index"]), np.asarray(batch["t0"]), np.asarray(batch["x"]), np.asarray(batch["y"]))]


def loader_of(dataset: lsio_loader.LoaderDataset, workers: int) -> StatefulDataLoader:
    if workers == 0:
        return StatefulDataLoader(dataset, batch_size=None, num_workers=0)
    return StatefulDataLoader(dataset, batch_size=None, num_workers=workers, timeout=120,
                              multiprocessing_context=FORK_SAFE)


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("order", ["iid", "blocked"])
def test_resume_delivers_exactly_the_rest(tmp_path: Path, real_spec: dict, server: lsio_loader.Server,
                                          order: str, workers: int, world: int) -> None:
    spec = spec_file(tmp_path, real_spec, order)
    everyone: set[int] = set()
    for rank in range(world):
        def dataset(**kw: Any) -> lsio_loader.LoaderDataset:
            return lsio_loader.LoaderDataset(spec, address=server.address, rank=rank, world_size=world, **kw)

        full = [s for b in loader_of(dataset(epoch=EPOCH), workers) for s in provenance(b)]
        assert len({s[0] for s in full}) == len(full), "a full epoch repeats samples"
        assert len(full) >= 8 * real_spec["batch_size"] // world

        # Stopped mid-stream: with two streams per rank, or a stream per
        # worker, 3 batches leave each stream part-read.
        for k in (3,):
            first_loader = loader_of(dataset(epoch=EPOCH), workers)
            it = iter(first_loader)
            first = [s for _ in range(k) for s in provenance(next(it))]
            state = first_loader.state_dict()
            del it, first_loader  # its workers stop: as if the job were preempted

            # A fresh dataset at epoch 0: the state carries the epoch.
            resumed_loader = loader_of(dataset(), workers)
            resumed_loader.load_state_dict(state)
            rest = [s for b in resumed_loader for s in provenance(b)]
            got = first + rest
            assert len({s[0] for s in got}) == len(got), f"rank {rank}, stopped after {k}: a sample delivered twice"
            assert sorted(got) == sorted(full), f"rank {rank}, stopped after {k}: resumed epoch differs from the full one"
        assert not everyone & {s[0] for s in full}, "ranks share samples"
        everyone |= {s[0] for s in full}
    if world == 2:
        assert everyone == set(range(real_spec["samples_per_epoch"])), "the ranks together are not the epoch"


@pytest.mark.parametrize("order", ["iid", "blocked"])
def test_ranks_get_equal_batches_when_the_epoch_does_not_divide(tmp_path: Path, real_spec: dict,
                                                               server: lsio_loader.Server, order: str) -> None:
    # 66 samples in batches of 4 over 2 ranks of 2 streams: unpadded, one
    # rank had 10 batches and the other 8, and DDP's last step would wait
    # for good. Padding repeats the epoch's first samples only.
    spec = spec_file(tmp_path, {**real_spec, "samples_per_epoch": 66}, order)
    per_rank = []
    for rank in range(2):
        ds = lsio_loader.LoaderDataset(spec, address=server.address, rank=rank, world_size=2, epoch=EPOCH)
        batches = [provenance(b) for b in loader_of(ds, 0)]
        assert len(batches) == len(ds), f"rank {rank}: len() {len(ds)}, {len(batches)} batches delivered"
        per_rank.append(batches)
    assert len(per_rank[0]) == len(per_rank[1]), f"batches per rank: {[len(b) for b in per_rank]}"
    seen = [s[0] for batches in per_rank for b in batches for s in b]
    assert set(seen) == set(range(66)), "the ranks together are not the epoch"
    repeated = sorted(i for i in set(seen) if seen.count(i) > 1)
    assert len(seen) - 66 < 2 * real_spec["batch_size"], f"{len(seen) - 66} samples of padding"
    assert repeated == list(range(len(repeated))), f"padding repeats {repeated}, not the epoch's first positions"


def test_resume_a_finished_epoch_starts_the_next(tmp_path: Path, real_spec: dict, server: lsio_loader.Server) -> None:
    spec = spec_file(tmp_path, real_spec, "iid")
    loader = loader_of(lsio_loader.LoaderDataset(spec, address=server.address), 0)
    first = [s for b in loader for s in provenance(b)]
    state = loader.state_dict()
    fresh = lsio_loader.LoaderDataset(spec, address=server.address)
    again = loader_of(fresh, 0)
    again.load_state_dict(state)
    second = [s for b in again for s in provenance(b)]
    want = [s for b in lsio_loader.iter_batches(spec, address=server.address, epoch=1) for s in provenance(b)]
    assert sorted(second) == sorted(want) and sorted(second) != sorted(first), "the epoch after the finished one"


def test_state_of_another_experiment_is_refused(tmp_path: Path, real_spec: dict, server: lsio_loader.Server) -> None:
    spec = spec_file(tmp_path, real_spec, "iid")
    ds = lsio_loader.LoaderDataset(spec, address=server.address)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    it.close()

    other = dict(real_spec, seed=real_spec["seed"] + 1)
    other_path = tmp_path / "other.yaml"
    other_path.write_text(yaml.safe_dump(dict(other, order={"mode": "iid"})))
    with pytest.raises(ValueError, match=r"different the spec's text \(seed"):
        lsio_loader.LoaderDataset(other_path, address=server.address).load_state_dict(state)
    with pytest.raises(ValueError, match="different rank"):
        lsio_loader.LoaderDataset(spec, address=server.address, rank=1, world_size=2).load_state_dict(state)
    with pytest.raises(ValueError, match="different split"):
        lsio_loader.LoaderDataset(spec, address=server.address, split="val").load_state_dict(state)
    with pytest.raises(ValueError, match="version 1"):
        lsio_loader.LoaderDataset(spec, address=server.address).load_state_dict({"version": 0})


def test_epochs_advance_len_and_repr(tmp_path: Path, real_spec: dict, server: lsio_loader.Server) -> None:
    spec = spec_file(tmp_path, real_spec, "iid")
    ds = lsio_loader.LoaderDataset(spec, address=server.address)
    batches = len(ds)
    assert batches == real_spec["samples_per_epoch"] // real_spec["batch_size"]
    by_epoch = [sorted(s for b in ds for s in provenance(b)) for _ in range(2)]
    assert by_epoch[0] != by_epoch[1], "a second pass without set_epoch repeated the epoch"
    for e, got in enumerate(by_epoch):
        want = sorted(s for b in lsio_loader.iter_batches(spec, address=server.address, epoch=e) for s in provenance(b))
        assert got == want, f"pass {e} is not epoch {e}"
    assert ds.epoch == 2
    ds.set_epoch(5)
    for _ in range(2):
        assert len(list(ds)) == batches
        assert ds.epoch == 5, "set_epoch pins the epoch"
    text = repr(ds)
    assert "split='train'" in text and "epoch=5" in text and server.address in text and spec.name in text
