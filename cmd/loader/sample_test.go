package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// checkSampleScript re-cuts every sample of an npz written by `loader
// sample` with zarr-python at its provenance indices and compares. argv:
// npz, a JSON object {source: {channels, mean, std, clip_min, clip_max,
// nan_fill}} (mean null for raw output), and the raw flag.
const checkSampleScript = `
import json, sys
import numpy as np, zarr

z = np.load(sys.argv[1])
cfg = json.loads(sys.argv[2])
raw = sys.argv[3] == "1"
n = z["t0"].shape[0]
report = {}
for name, c in cfg.items():
    g = zarr.open_group(str(z[name + ".store"]), mode="r")
    a = g[str(z[name + ".array"])]
    dims = [str(d) for d in z[name + ".dims"]]
    axes = [str(d) for d in z[name + ".axes"]]
    isel = z[name + ".isel"]
    avail = z[name + ".available_t"]
    got = z[name]
    worst = 0.0
    fill = a.fill_value if a.fill_value is not None else 0
    # A longitude covering 360° wraps: its window may run past the end.
    periodic = []
    for d in dims:
        v = np.asarray(g[d][:], dtype=float) if d in g and "lon" in d.lower() else np.zeros(0)
        step = (v[-1] - v[0]) / (len(v) - 1) if v.ndim == 1 and len(v) > 1 else 0
        periodic.append(bool(step) and abs(abs(step) * len(v) - 360) < 1e-3 * abs(step))
    for i in range(n):
        # The window, padded where it reaches outside the array.
        size = [e - s for s, e in isel[i]]
        src = tuple(slice(0, m) if p else slice(max(s, 0), min(e, m)) for (s, e), m, p in zip(isel[i], a.shape, periodic))
        dst = tuple(slice(0, e - s) if p else slice(max(s, 0) - s, min(e, m) - s) for (s, e), m, p in zip(isel[i], a.shape, periodic))
        cut = np.full(size, fill, dtype=a.dtype)
        pad = np.ones(size, dtype=bool)
        if all(sl.stop > sl.start for sl in src):
            block = a[src]
            for d, p in enumerate(periodic):
                if p:
                    block = np.take(block, np.arange(isel[i][d][0], isel[i][d][1]) % a.shape[d], axis=d)
            cut[dst] = block
            pad[dst] = False
        if not raw:
            cut = np.where(pad, np.nan, cut.astype(np.float64))
        order = [dims.index(ax) for ax in axes if ax]
        rest = [d for d in range(len(dims)) if d not in order]
        assert all(cut.shape[d] == 1 for d in rest), (name, cut.shape)
        cut = np.transpose(cut, order + rest).reshape([cut.shape[d] for d in order])
        if not axes[0]:
            cut = cut[None]
        elif got.shape[1] > 1:
            # A time resolution coarser than the data's takes every stride-th step.
            cut = cut[::(cut.shape[0] - 1) // (got.shape[1] - 1)]
        if axes[1] and c["channels"]:
            ch = dims.index(axes[1])
            labels = [str(l) for l in g[axes[1]][isel[i][ch][0]:isel[i][ch][1]]]
            cut = cut[:, [labels.index(l) for l in c["channels"]]]
        elif not axes[1]:
            cut = cut[:, None]
        if raw:
            assert got[i].dtype == cut.dtype, (got.dtype, cut.dtype)
            assert np.array_equal(got[i], cut, equal_nan=True), (name, i)
            continue
        x = cut.astype(np.float32)
        if c["mean"] is not None:
            m = np.array(c["mean"], np.float32)[None, :, None, None]
            s = np.array(c["std"], np.float32)[None, :, None, None]
            x = (x - m) / s
        x = np.clip(x, c["clip_min"] if c["clip_min"] is not None else -np.inf,
                    c["clip_max"] if c["clip_max"] is not None else np.inf)
        x[avail[i]:] = np.nan
        x = np.where(np.isnan(x), np.float32(c["nan_fill"]), x)
        np.testing.assert_allclose(got[i], x, rtol=1e-5, atol=1e-5, err_msg=f"{name} sample {i}")
        worst = max(worst, float(np.abs(got[i] - x).max()))
    report[name] = worst
print(json.dumps(report))
`

// sampleNPZ runs `loader sample` and returns the npz path.
func sampleNPZ(t *testing.T, spec string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "s.npz")
	args := append([]string{spec, "-n", "12", "-o", out}, extra...) // a later -n wins
	var stdout bytes.Buffer
	if err := runSample(context.Background(), args, &stdout); err != nil {
		t.Fatalf("loader sample %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func realUKVSEVIRISpec(t *testing.T) string {
	testenv.RealData(t)
	return filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
}

func TestSampleMatchesZarrPython(t *testing.T) {
	spec := realUKVSEVIRISpec(t)
	cfg := map[string]any{
		"nwp": map[string]any{"channels": []string{"t"}, "mean": []float64{281.0}, "std": []float64{1.3}, "clip_min": nil, "clip_max": nil, "nan_fill": 0},
		"sat": map[string]any{"channels": []string{"IR_016"}, "mean": []float64{358.3}, "std": []float64{215.1}, "clip_min": -5, "clip_max": 5, "nan_fill": 0},
	}
	cfgJSON, _ := json.Marshal(cfg)
	for _, tc := range []struct {
		name  string
		extra []string
		raw   string
	}{
		{"raw", []string{"--raw"}, "1"},
		{"normalised", nil, "0"},
		{"val split", []string{"--split", "val", "--epoch", "3"}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			npz := sampleNPZ(t, spec, tc.extra...)
			out := testenv.RunPython(t, checkSampleScript, npz, string(cfgJSON), tc.raw)
			t.Logf("max abs difference per source: %s", bytes.TrimSpace(out))
		})
	}
}

// checkGeometryScript checks that NWP runs are never after t0 and that both
// sources' crop centres sit within a pixel of the sample's OSGB location.
const checkGeometryScript = `
import json, sys
import numpy as np, zarr

z = np.load(sys.argv[1])
n = z["t0"].shape[0]
nwp = zarr.open_group(str(z["nwp.store"]), mode="r")
sat = zarr.open_group(str(z["sat.store"]), mode="r")
init = nwp["init_time"][:].astype("datetime64[ns]")
ny, nx = nwp["y"][:], nwp["x"][:]
sx, sy = sat["x_osgb"][:], sat["y_osgb"][:]
worst = {"nwp": 0.0, "sat": 0.0}
for i in range(n):
    t0 = z["t0"][i]
    ii = z["nwp.isel"][i]
    assert ii[1][1] - ii[1][0] == 1
    assert init[ii[1][0]] <= t0, (init[ii[1][0]], t0)
    # The window (0m..60m at 60m) never looks past t0 + 60m, and starts
    # less than a step before t0.
    hour = np.timedelta64(60, "m")
    assert z["nwp.time"][i][-1] <= t0 + hour and z["nwp.time"][i][0] > t0 - hour, (z["nwp.time"][i], t0)
    r = (ii[3][0] + ii[3][1]) // 2
    c = (ii[4][0] + ii[4][1]) // 2
    d = np.hypot(nx[c] - z["x"][i], ny[r] - z["y"][i])
    assert d <= np.hypot(abs(nx[1] - nx[0]), abs(ny[1] - ny[0])) / 2 + 1, (i, d)
    worst["nwp"] = max(worst["nwp"], d)
    si = z["sat.isel"][i]
    r = (si[1][0] + si[1][1]) // 2
    c = (si[2][0] + si[2][1]) // 2
    d = np.hypot(sx[r, c] - z["x"][i], sy[r, c] - z["y"][i])
    pix = max(np.hypot(sx[r, c + 1] - sx[r, c], sy[r, c + 1] - sy[r, c]),
              np.hypot(sx[r + 1, c] - sx[r, c], sy[r + 1, c] - sy[r, c]))
    assert d <= pix, (i, d, pix)
    worst["sat"] = max(worst["sat"], d / pix)
    st = z["sat.time"][i]
    assert st[-1] == t0 and (np.diff(st) == np.timedelta64(5, "m")).all()
print(json.dumps(worst))
`

func TestSampleGeometry(t *testing.T) {
	npz := sampleNPZ(t, realUKVSEVIRISpec(t), "--raw")
	out := testenv.RunPython(t, checkGeometryScript, npz)
	t.Logf("worst centre offsets (nwp metres, sat pixels): %s", bytes.TrimSpace(out))
}

func TestSampleSeeds(t *testing.T) {
	spec := realUKVSEVIRISpec(t)
	read := func(extra ...string) []byte {
		b, err := os.ReadFile(sampleNPZ(t, spec, extra...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read("--seed", "7"), read("--seed", "7"), read("--seed", "8")
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different files")
	}
	if bytes.Equal(a, c) {
		t.Error("another seed gave the same file")
	}
}

// demoSpec writes the tiny demo dataset and returns examples/name rewritten
// to read it, with sed-like replacements applied.
func demoSpec(t *testing.T, name string, replace ...string) string {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := runDemo(context.Background(), []string{"-out", dir, "-size", "tiny"}, &out); err != nil {
		t.Fatalf("loader demo: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.ReplaceAll(string(b), "../data/sample", dir)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(spec, replace[i]) {
			t.Fatalf("%s lacks %q", name, replace[i])
		}
		spec = strings.ReplaceAll(spec, replace[i], replace[i+1])
	}
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSampleDemoData(t *testing.T) {
	// The tiny dataset spans 00:00-02:00 (runs 3-hourly, steps 0 and 1 h):
	// an NWP window of the hour up to t0 exists from 01:00. Shrink the
	// splits to 01:00-01:55.
	tinySplits := []string{"17:55", "01:25", "2020-04-01T18:00", "2020-04-01T01:30"}
	cfg := map[string]any{
		"nwp": map[string]any{"channels": []string{"t2m", "u10", "v10", "tcc"}, "mean": []float64{283, 0, 0, 0.5},
			"std": []float64{8, 5, 5, 0.4}, "clip_min": nil, "clip_max": nil, "nan_fill": 0},
		"satellite": map[string]any{"channels": []string{"IR_108", "VIS006", "WV_062"}, "mean": []float64{270, 0.2, 240},
			"std": []float64{20, 0.2, 15}, "clip_min": -6, "clip_max": 6, "nan_fill": 0},
	}
	cfgJSON, _ := json.Marshal(cfg)
	for _, tc := range []struct {
		name    string
		replace []string
		extra   []string
		raw     string
	}{
		{"raw", nil, []string{"--raw"}, "1"},
		{"normalised", nil, nil, "0"},
		{"always dropped out", []string{"probability: 0.1", "probability: 1"}, nil, "0"},
		{"val", nil, []string{"--split", "val"}, "0"},
		{"15 min steps", []string{"start: -30m, end: 0m, resolution: 5m", "start: -30m, end: 0m, resolution: 15m"}, nil, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := demoSpec(t, "sample_data.yaml", append(tinySplits, tc.replace...)...)
			npz := sampleNPZ(t, spec, tc.extra...)
			out := testenv.RunPython(t, checkSampleScript, npz, string(cfgJSON), tc.raw)
			t.Logf("max abs difference per source: %s", bytes.TrimSpace(out))
			if tc.name == "always dropped out" {
				out := testenv.RunPython(t, `
import sys, numpy as np
z = np.load(sys.argv[1])
a = z["satellite.available_t"]
assert (a < 7).all() and (a >= 4).all(), a
print(a)`, npz)
				t.Logf("available steps: %s", bytes.TrimSpace(out))
			}
		})
	}
}

// TestSampleECMWFSitesWrap cuts UK sites from a global 10° grid: crops
// over the prime meridian continue across the grid's seam (real data from
// both sides, equal to zarr-python's cut taken modulo 360°).
func TestSampleECMWFSitesWrap(t *testing.T) {
	testenv.RealData(t)
	spec := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ecmwf.yaml")
	cfg := map[string]any{
		"ecmwf": map[string]any{"channels": []string{"700", "500"}, "mean": []float64{270, 255}, "std": []float64{15, 12},
			"clip_min": nil, "clip_max": nil, "nan_fill": -1},
	}
	cfgJSON, _ := json.Marshal(cfg)
	for _, raw := range []string{"1", "0"} {
		extra := []string{"-n", "48"}
		if raw == "1" {
			extra = append(extra, "--raw")
		}
		npz := sampleNPZ(t, spec, extra...)
		out := testenv.RunPython(t, checkSampleScript+`
isel = z["ecmwf.isel"]
assert (isel[:, 4, 0] >= 0).all(), "a window starts before the array"
assert (isel[:, 4, 1] > 36).any(), "no crop near 0° wrapped across the seam"
`, npz, string(cfgJSON), raw)
		t.Logf("raw=%s: %s", raw, bytes.TrimSpace(out))
	}
}

func TestSampleGenericDemo(t *testing.T) {
	for _, raw := range []bool{true, false} {
		spec := demoSpec(t, "generic_sample_data.yaml", "y: 64, x: 64", "y: 16, x: 16")
		extra := []string{}
		if raw {
			extra = append(extra, "--raw")
		}
		npz := sampleNPZ(t, spec, extra...)
		out := testenv.RunPython(t, `
import sys
import numpy as np, zarr
z = np.load(sys.argv[1])
a = zarr.open_array(str(z["satellite.store"]) + "/" + str(z["satellite.array"]), mode="r")
assert "satellite.axes" not in z.files and np.isnat(z["t0"]).all()
got = z["satellite"]
assert got.shape[1:] == (12, 11, 16, 16), got.shape
for i, isel in enumerate(z["satellite.isel"]):
    want = a[tuple(slice(s, e) for s, e in isel)]
    if sys.argv[2] == "0":
        want = np.where(np.isnan(want), np.float32(0), want.astype(np.float32))
    assert np.array_equal(got[i], want, equal_nan=True), i
print(got.dtype, got.shape)
`, npz, map[bool]string{true: "1", false: "0"}[raw])
		t.Logf("raw=%v: %s", raw, bytes.TrimSpace(out))
	}
}

// panelsInPNG counts the panels of a figure drawn by --plot: the runs of
// non-white pixels along a row through the panels (above their bottom
// margin; every panel of these specs is equally tall).
func panelsInPNG(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	b := img.Bounds()
	y := b.Max.Y - 10 - 20
	runs, in := 0, false
	for x := b.Min.X; x < b.Max.X; x++ {
		r, g, bl, _ := img.At(x, y).RGBA()
		white := r == 0xffff && g == 0xffff && bl == 0xffff
		if !white && !in {
			runs++
		}
		in = !white
	}
	return runs
}

func TestSamplePlotDrawsEveryChannel(t *testing.T) {
	testenv.RealData(t)
	root := testenv.ModuleRoot(t)
	for _, tc := range []struct {
		spec   string
		panels int // sum of the sources' channels
	}{
		{"real_ukv_seviri.yaml", 2}, // nwp t, sat IR_016
		{"real_ecmwf.yaml", 2},      // ecmwf 700 and 500 hPa
	} {
		t.Run(tc.spec, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sample.png")
			args := []string{filepath.Join(root, "examples", tc.spec), "-n", "3", "--plot", out, "--plot-sample", "2"}
			if err := runSample(context.Background(), args, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if got := panelsInPNG(t, out); got != tc.panels {
				t.Fatalf("%d panels in the PNG, want %d", got, tc.panels)
			}
		})
	}
}

func TestSamplePlotRejectsBadArguments(t *testing.T) {
	testenv.RealData(t)
	spec := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	out := filepath.Join(t.TempDir(), "x.png")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{spec, "-n", "2", "--plot", out, "--plot-sample", "2"}, "--plot-sample 2: want 0..1"},
		{[]string{spec, "--plot", out, "--randomness"}, "either"},
		{[]string{spec, "-n", "2", "--plot", filepath.Join(t.TempDir(), "no", "dir.png")}, "dir.png"},
	} {
		err := runSample(context.Background(), tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
