"""plot_sample and the bench chart draw PNGs with the expected panels, on
the real sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lsio_loader

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "real_ukv_seviri.yaml"
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "real").exists(),
                                reason="real sample data not in ../shared/data/real")


@pytest.fixture(scope="module")
def record_batch(server):
    return next(lsio_loader.iter_record_batches(SPEC, address=server.address))


def panel_titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_plot_sample_one_panel_per_channel(record_batch, tmp_path: Path) -> None:
    out = tmp_path / "sample.png"
    fig = lsio_loader.plot_sample(record_batch, 1, out=out)
    # nwp (1 channel) and sat (1 channel): two panels, sources in schema order.
    titles = panel_titles(fig)
    assert len(fig.axes) == 2, titles
    assert titles[0].startswith("nwp ch 0") and titles[1].startswith("sat ch 0"), titles
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000
    cols = lsio_loader.batch_to_numpy(record_batch)
    t0 = np.datetime64(int(cols["t0"][1]), "ns").astype("datetime64[m]")
    title = fig._suptitle.get_text()
    assert str(t0).replace("T", " ") in title and "epoch index" in title and "°N" in title, title
    # The satellite panel is at t0 itself (it ends at t0); NWP at the latest step at or before t0.
    assert "(t0+0 min)" in titles[1], titles
    assert "(t0-" in titles[0] or "(t0+0 min)" in titles[0], titles


def test_plot_sample_from_numpy_and_torch(record_batch) -> None:
    cols = lsio_loader.batch_to_numpy(record_batch)
    # Three channels for nwp: the panels follow the channel count.
    cols = dict(cols, nwp=np.concatenate([cols["nwp"]] * 3, axis=2))
    fig = lsio_loader.plot_sample(cols, -1)
    assert [t.split("\n")[0] for t in panel_titles(fig)] == ["nwp ch 0", "nwp ch 1", "nwp ch 2", "sat ch 0"]
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in cols.items()}
    tensors["sat"] = tensors["sat"].to(torch.bfloat16)
    assert len(lsio_loader.plot_sample(tensors, 0).axes) == 4


def test_plot_sample_rejects_bad_input(record_batch) -> None:
    with pytest.raises(IndexError, match="4 samples"):
        lsio_loader.plot_sample(record_batch, 4)
    with pytest.raises(ValueError, match="no source crops"):
        lsio_loader.plot_sample({"t0": np.zeros(2, np.int64)}, 0)


def load_chart():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import chart
    finally:
        sys.path.pop(0)
    return chart


def test_bench_chart_one_panel_per_table(tmp_path: Path) -> None:
    chart = load_chart()
    text = (REPO / "bench" / "RESULTS.md").read_text()
    tables = chart.panels_from_markdown(text)
    # RESULTS.md: satellite and nwp, each warm and cold.
    assert [(w, m) for w, m, _, _ in tables] == [("satellite", "warm"), ("satellite", "cold"), ("nwp", "warm"), ("nwp", "cold")]
    for _, _, rates, limit in tables:
        assert "ours" in rates and rates["ours"] > 0 and limit and limit > 0
    out = tmp_path / "chart.png"
    fig = chart.draw(text, str(out))
    assert len(fig.axes) == 4
    assert [len(ax.patches) for ax in fig.axes] == [len(rates) for _, _, rates, _ in tables]
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    # The same from the JSON report bench/run.py keeps.
    report = json.loads((REPO / "bench" / "results.json").read_text())
    want = sum(len(res["runs"]) for res in report["workloads"].values())
    assert len(chart.draw(report, str(out)).axes) == want


def test_bench_chart_command_line(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    subprocess.run([sys.executable, str(REPO / "bench" / "chart.py"), str(REPO / "bench" / "RESULTS.md"), "-o", str(out)], check=True)
    assert out.read_bytes().startswith(PNG)
