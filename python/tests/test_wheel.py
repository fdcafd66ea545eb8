"""`make wheel` builds a platform wheel carrying `loader`; installed into a
fresh venv (offline, from uv's cache) it streams a batch of the real sample
data with nothing else set up: no LSIO_LOADER_BIN, no checkout, no PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "real_ukv_seviri.yaml"
UV = Path(sys.executable).parent / "uv"

pytestmark = [
    pytest.mark.wheel,
    pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "real").exists(), reason="real sample data not in ../shared"),
    pytest.mark.skipif(not UV.exists(), reason="uv not in the venv (make venv installs it)"),
]

STREAM = """
import json, sys
import lsio_loader
batch = next(lsio_loader.iter_batches(sys.argv[1], split="train"))
print(json.dumps({"binary": lsio_loader.find_binary(), "module": lsio_loader.__file__,
                  "shapes": {k: list(v.shape) for k, v in batch.items() if k in ("nwp", "sat", "t0")}}))
"""


def test_wheel_installs_and_streams(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(["make", "-s", "wheel", f"WHEEL_DIR={dist}"], cwd=REPO, check=True)
    (wheel,) = dist.glob("lsio_loader-*.whl")
    assert "-py3-none-manylinux" in wheel.name
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo("lsio_loader/bin/loader")
        assert info.external_attr >> 16 & 0o111, "the binary lost its executable bit"
        assert info.file_size > 1 << 20

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("LSIO_LOADER_BIN", "VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_OFFLINE"] = "1"  # pyarrow and numpy come from uv's cache
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)], check=True, env=env)

    # A bare environment: the venv's interpreter, no PATH to a loader, run
    # from elsewhere than the checkout.
    bare = {"PATH": "/usr/bin:/bin", "HOME": env.get("HOME", "/tmp")}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", STREAM, str(SPEC)], cwd=tmp_path, env=bare,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    got = json.loads(out.stdout)
    site = venv / "lib"
    assert Path(got["module"]).is_relative_to(site), got
    assert Path(got["binary"]) == Path(got["module"]).parent / "bin" / "loader", got
    assert got["shapes"]["nwp"][0] == got["shapes"]["sat"][0] == got["shapes"]["t0"][0] > 0, got
