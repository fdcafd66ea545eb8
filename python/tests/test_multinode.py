"""Multi-node training without coordination: two ranks, each a separate
process in a torch.distributed (gloo) group, each with its own LoaderDataset
launching its own `loader serve` (as on two nodes), read the real UKV +
SEVIRI join from the same store, local or S3 (MinIO). Neither passes
rank/world_size: both come from torch.distributed. Together they must read
exactly the one-rank epoch of the same seed, each sample once, with the
same crops, in as many batches on each rank (else DDP hangs).

The rank program is this file run as a script (`python test_multinode.py
--rank R ...`), so nothing of the test process (its Flight clients, its
pytest state) reaches the ranks."""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "real_ukv_seviri.yaml"
EPOCH = 1
WORLD = 2
# Two ranks, each importing torch and launching a server on 2 busy cores.
RANK_TIMEOUT_S = 240
BUCKET = "real"

Samples = dict[int, dict[str, np.ndarray]]


def collect(batches: Any) -> tuple[Samples, int]:
    """Every sample's fields by epoch_index, and the number of batches."""
    samples: Samples = {}
    count = 0
    for batch in batches:
        count += 1
        for i, idx in enumerate(np.asarray(batch["epoch_index"]).tolist()):
            assert idx not in samples, f"epoch_index {idx} delivered twice"
            samples[idx] = {k: v[i].numpy().copy() for k, v in batch.items()}
    return samples, count


def rank_main(argv: list[str]) -> None:
    """One rank: join the group, read the epoch as a DDP trainer would, and
    pickle what it got."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--init", required=True, help="torch.distributed init_method")
    parser.add_argument("--spec", action="append", required=True, help="read an epoch of each, in turn")
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import lsio_loader  # first: it sets up malloc before torch's thread pools
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    # A collective that never pairs (one rank with a batch more) fails
    # after this instead of hanging the test.
    dist.init_process_group("gloo", init_method=args.init, rank=args.rank, world_size=args.world_size,
                            timeout=datetime.timedelta(seconds=60))
    results: dict[str, dict[str, Any]] = {}
    try:
        for spec in args.spec:
            ds = lsio_loader.LoaderDataset(spec)  # launches its own server; rank/world_size from dist
            ds.set_epoch(args.epoch)
            lens: list[Any] = [None] * args.world_size
            dist.all_gather_object(lens, len(ds))

            def steps(ds: lsio_loader.LoaderDataset) -> Iterator[dict[str, torch.Tensor]]:
                for batch in DataLoader(ds, batch_size=None, num_workers=0):
                    # DDP all-reduces gradients every step: a rank with a
                    # batch more than the others would wait here for ever.
                    ranks = torch.ones(1)
                    dist.all_reduce(ranks)
                    assert int(ranks.item()) == args.world_size
                    yield batch

            samples, batches = collect(steps(ds))
            counts: list[Any] = [None] * args.world_size
            dist.all_gather_object(counts, batches)
            results[spec] = {"rank": ds.rank, "world_size": ds.world_size, "lens": lens, "batches": counts, "samples": samples}
            ds.close()
    finally:
        dist.destroy_process_group()
    Path(args.out).write_bytes(pickle.dumps(results))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real_stores() -> dict[str, Path]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    stores = {name: (EXAMPLE.parent / src["store"]).resolve() for name, src in spec["sources"].items()}
    for store in stores.values():
        if not store.exists():
            pytest.skip(f"real data absent: {store}")
    return stores


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory, real_stores: dict[str, Path]) -> Iterator[dict[str, str]]:
    """A MinIO server holding the real stores under s3://real/<store name>;
    yields the AWS environment that reaches it, as a node's would."""
    import boto3

    binary = os.environ.get("LSIO_MINIO") or str(Path.home() / ".cache" / "lsio-loader" / "bin" / "minio")
    assert os.access(binary, os.X_OK), f"no MinIO binary at {binary}: set LSIO_MINIO or run `make minio`"
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "lsio-test-access",
           "AWS_SECRET_ACCESS_KEY": "lsio-test-secret-key", "AWS_REGION": "us-east-1"}
    address = env["AWS_ENDPOINT_URL"].removeprefix("http://")
    log = (tmp_path_factory.mktemp("minio-log") / "minio.log").open("w")
    proc = subprocess.Popen(
        [binary, "server", str(tmp_path_factory.mktemp("minio")), "--address", address,
         "--console-address", f"127.0.0.1:{free_port()}", "--quiet"],
        env={**os.environ, "MINIO_ROOT_USER": env["AWS_ACCESS_KEY_ID"], "MINIO_ROOT_PASSWORD": env["AWS_SECRET_ACCESS_KEY"],
             "MINIO_REGION": env["AWS_REGION"], "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
        stdout=log, stderr=subprocess.STDOUT)
    try:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"MinIO exited with status {proc.returncode}: {log.name}"
            try:
                # Live is not enough: S3 calls fail for a while after.
                with urllib.request.urlopen(env["AWS_ENDPOINT_URL"] + "/minio/health/live", timeout=2):
                    client.list_buckets()
                break
            except Exception:
                assert time.monotonic() < deadline, f"MinIO not live at {address} after 30 s: {log.name}"
                time.sleep(0.1)
        client.create_bucket(Bucket=BUCKET)
        for store in real_stores.values():
            for path in sorted(store.rglob("*")):
                if path.is_file():
                    client.upload_file(str(path), BUCKET, f"{store.name}/{path.relative_to(store).as_posix()}")
        yield env
    finally:
        proc.kill()
        proc.wait()
        log.close()


def write_spec(tmp_path: Path, stores: dict[str, str], order: str) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text())
    for name, src in spec["sources"].items():
        src["store"] = stores[name]
    spec["order"] = {"mode": "iid"} if order == "iid" else {"mode": "blocked", "pool": "2GiB"}
    path = tmp_path / f"{order}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_ranks(tmp_path: Path, specs: list[Path], env: dict[str, str]) -> list[dict[str, dict[str, Any]]]:
    """WORLD ranks as separate processes, rendezvousing through a file;
    each reads an epoch of every spec (one launch for all: importing torch
    takes most of a rank's time on a busy machine)."""
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = []
    for rank in range(WORLD):
        out = tmp_path / f"rank{rank}.pkl"
        log = (tmp_path / f"rank{rank}.log").open("w")
        cmd = [sys.executable, __file__, "--rank", str(rank), "--world-size", str(WORLD), "--init", init,
               "--epoch", str(EPOCH), "--out", str(out)]
        for spec in specs:
            cmd += ["--spec", str(spec)]
        procs.append((subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT), log, out))
    deadline = time.monotonic() + RANK_TIMEOUT_S
    results = []
    try:
        for rank, (proc, log, out) in enumerate(procs):
            try:
                status = proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                status = None
            log.close()
            text = (tmp_path / f"rank{rank}.log").read_text()
            assert status == 0, f"rank {rank} {'timed out' if status is None else f'exited {status}'}:\n{text[-4000:]}"
            results.append(pickle.loads(out.read_bytes()))
    finally:
        for proc, log, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return results


ORDERS = ("iid", "blocked")


@pytest.fixture(scope="module", params=["local", "s3"])
def two_ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              real_stores: dict[str, Path]) -> dict[str, Any]:
    """The same store (local, or on S3) read by two ranks in both orders:
    the specs, the AWS environment, and what each rank got per spec."""
    env: dict[str, str] = {}
    stores = {name: str(path) for name, path in real_stores.items()}
    if request.param == "s3":
        env = request.getfixturevalue("minio")
        stores = {name: f"s3://{BUCKET}/{path.name}" for name, path in real_stores.items()}
    tmp_path = tmp_path_factory.mktemp(f"two-ranks-{request.param}")
    specs = {order: write_spec(tmp_path, stores, order) for order in ORDERS}
    return {"specs": specs, "env": env, "ranks": run_ranks(tmp_path, list(specs.values()), env)}


@pytest.mark.parametrize("order", ORDERS)
def test_two_ranks_read_the_one_rank_epoch(monkeypatch: pytest.MonkeyPatch, two_ranks: dict[str, Any], order: str) -> None:
    import lsio_loader

    # Nothing but the AWS variables of the fixture may configure the S3 client.
    for var in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var, value in two_ranks["env"].items():
        monkeypatch.setenv(var, value)
    spec = two_ranks["specs"][order]
    samples_per_epoch = yaml.safe_load(spec.read_text())["samples_per_epoch"]

    # The reference: one rank, no torch.distributed, its own server.
    one_ds = lsio_loader.LoaderDataset(spec)
    try:
        assert (one_ds.rank, one_ds.world_size) == (0, 1)
        one_ds.set_epoch(EPOCH)
        one, _ = collect(one_ds)
    finally:
        one_ds.close()
    assert sorted(one) == list(range(samples_per_epoch))

    ranks = [r[str(spec)] for r in two_ranks["ranks"]]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(i, WORLD) for i in range(WORLD)], \
        "rank/world_size not taken from torch.distributed"
    # As many batches on every rank, announced (len) and delivered.
    for r in ranks:
        assert r["lens"] == r["batches"] == [ranks[0]["batches"][0]] * WORLD, \
            f"rank {r['rank']}: len/batches per rank {r['lens']}/{r['batches']}"
    assert ranks[0]["batches"][0] >= 2

    def identity(s: dict[str, np.ndarray]) -> tuple[int, int, float, float]:
        return int(s["epoch_index"]), int(s["t0"]), float(s["x"]), float(s["y"])

    shares = [{identity(s) for s in r["samples"].values()} for r in ranks]
    assert all(shares), "a rank read nothing"
    assert not shares[0] & shares[1], "the ranks share samples"
    assert shares[0] | shares[1] == {identity(s) for s in one.values()}, "the ranks together are not the one-rank epoch"
    for r in ranks:
        for idx, sample in r["samples"].items():
            want = one[idx]
            assert sample.keys() == want.keys()
            for field, value in sample.items():
                assert value.dtype == want[field].dtype and value.shape == want[field].shape, \
                    f"rank {r['rank']}, sample {idx}: {field}"
                np.testing.assert_array_equal(value, want[field], err_msg=f"rank {r['rank']}, sample {idx}: {field}")


if __name__ == "__main__":
    rank_main(sys.argv[1:])
