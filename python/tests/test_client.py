"""The client's own logic: addresses, request envelopes, no torch needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lsio_loader
from lsio_loader._server import flight_location


@pytest.mark.parametrize(
    "address, location",
    [
        ("unix:///tmp/a.sock", "grpc+unix:///tmp/a.sock"),
        ("tcp://localhost:8815", "grpc+tcp://localhost:8815"),
        ("grpc://host:1", "grpc://host:1"),
        ("grpc+unix:///x.sock", "grpc+unix:///x.sock"),
    ],
)
def test_flight_location(address: str, location: str) -> None:
    assert flight_location(address) == location


def test_flight_location_rejects_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="http://x"):
        flight_location("http://x")


def test_make_command(tmp_path: Path) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("seed: 1\n")
    env = json.loads(lsio_loader.make_command(spec, split="val", epoch=2, rank=1, world_size=4, streams=3, raw=True))
    assert env == {"spec": "seed: 1\n", "spec_dir": str(tmp_path.resolve()), "split": "val", "epoch": 2,
                   "rank": 1, "world_size": 4, "raw": True, "streams": 3}
    as_dict = json.loads(lsio_loader.make_command({"seed": 5}))
    assert json.loads(as_dict["spec"]) == {"seed": 5} and "streams" not in as_dict
    text = json.loads(lsio_loader.make_command("seed: 7\nbatch_size: 2\n"))
    assert text["spec"] == "seed: 7\nbatch_size: 2\n"
    with pytest.raises(TypeError):
        lsio_loader.make_command(42)  # type: ignore[arg-type]


def test_import_without_torch() -> None:
    code = "import sys, lsio_loader; assert 'torch' not in sys.modules, 'torch imported'; print(lsio_loader.iter_batches.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("setting, applied", [("", True), ("system", False)])
def test_retain_freed_memory(setting: str, applied: bool) -> None:
    # A process-wide malloc setting: tried in a fresh interpreter.
    code = "import lsio_loader._client as c; print(c.retain_freed_memory(1 << 30), c.retain_freed_memory(1 << 20))"
    env = dict(os.environ, LSIO_LOADER_MALLOC=setting)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(applied)] * 2


def test_flat_values_of_a_sliced_tensor_column() -> None:
    # Views over the child buffer, not Array.flatten (which imports
    # pyarrow.compute on a process's first batch): a slice must keep its
    # offset, an extension (tensor) column reads through its storage.
    import numpy as np
    import pyarrow as pa

    from lsio_loader._client import _flat_values

    values = np.arange(24, dtype=np.float32)
    lists = pa.FixedSizeListArray.from_arrays(pa.array(values), 4)
    np.testing.assert_array_equal(_flat_values(lists.slice(2, 3)), values[8:20])
    tensor = pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.float32(), [2, 2]), lists)
    np.testing.assert_array_equal(_flat_values(tensor.slice(1, 2)), values[4:12])
