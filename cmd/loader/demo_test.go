package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/synth"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestDemoDataset writes the tiny demo dataset twice (it must come out
// byte-identical: the generator is seeded and independent of scheduling),
// checks that a third run skips, and has xarray check that both stores
// open with the promised layout and hold weather-like values.
func TestDemoDataset(t *testing.T) {
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, dir := range dirs {
		var out bytes.Buffer
		if err := runDemo(ctx, []string{"--out", dir, "--size", "tiny"}, &out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"nwp.zarr", "satellite.zarr", "complete"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("demo output does not mention %q:\n%s", want, out.String())
			}
		}
	}
	if diff := diffTrees(t, dirs[0], dirs[1]); diff != "" {
		t.Errorf("two runs differ: %s", diff)
	}
	var out bytes.Buffer
	if err := runDemo(ctx, []string{"--out", dirs[0], "--size", "tiny"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing to do") {
		t.Errorf("a complete dataset was written again:\n%s", out.String())
	}
	// A different size is a different dataset: it replaces the old one.
	if err := os.WriteFile(filepath.Join(dirs[1], synth.DemoMarker), []byte("older version\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runDemo(ctx, []string{"--out", dirs[1], "--size", "tiny"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "nothing to do") {
		t.Errorf("a stale marker was trusted:\n%s", out.String())
	}
	testenv.RunPython(t, `
import sys, warnings
import numpy as np, xarray as xr
warnings.filterwarnings("ignore")
d = sys.argv[1]
nwp = xr.open_zarr(d + "/nwp.zarr", consolidated=True)
u = nwp["UKV"]
assert u.dims == ("init_time", "step", "variable", "y", "x"), u.dims
assert u.dtype == np.float32 and u.shape == (5, 2, 6, 44, 35), u.shape
assert list(nwp["variable"].values) == ["t2m", "u10", "v10", "prmsl", "tcc", "dswrf"]
assert str(nwp["init_time"].values[1]) == "2020-04-01T03:00:00.000000000", nwp["init_time"].values
assert nwp["step"].dtype.kind == "m" and nwp["step"].values[1] == np.timedelta64(1, "h")
assert (np.diff(nwp["y"].values) == -2000).all() and (np.diff(nwp["x"].values) == 2000).all()
v = u.values
assert not np.isnan(v).any()
t2m, tcc, dswrf = v[:, :, 0], v[:, :, 4], v[:, :, 5]
assert 260 < t2m.min() and t2m.max() < 310, (t2m.min(), t2m.max())
assert 0 <= tcc.min() and tcc.max() <= 1
assert (dswrf[0] == 0).all() and dswrf[4, 1].mean() > 50, dswrf[4, 1].mean()  # 00Z night, 13Z day
assert 95000 < v[:, :, 3].min() and v[:, :, 3].max() < 105000
# Smooth fields: neighbours differ far less than the field varies.
assert np.abs(np.diff(t2m, axis=-1)).mean() < 0.25 * t2m.std()

sat = xr.open_zarr(d + "/satellite.zarr", consolidated=True)
s = sat["data"]
assert s.dims == ("time", "channel", "y", "x") and s.shape == (25, 11, 30, 24), s.shape
assert list(sat["channel"].values)[:2] == ["IR_016", "IR_039"] and sat["channel"].values[-1] == "WV_073"
t = sat["time"].values
assert t.dtype == "datetime64[ns]" and str(t[0]) == "2020-04-01T00:00:00.000000000"
assert (np.diff(t) == np.timedelta64(5, "m")).all()
assert (np.diff(sat["y"].values) == -3000).all()
x = s.values
nan = np.isnan(x).sum()
assert 0 < nan < x.size / 100, nan
ir108 = x[:, 4]
assert 200 < np.nanmin(ir108) and np.nanmax(ir108) < 310
assert np.nanmax(x[:, 7]) < 0.05 and np.nanmin(x[:, 7]) >= 0  # VIS006 before dawn
`, dirs[0])
}

// diffTrees describes the first difference between two directory trees.
func diffTrees(t *testing.T, a, b string) string {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, path)
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(b, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(b, path)
		other, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		want, ok := files[rel]
		if !ok || !bytes.Equal(want, other) {
			return &os.PathError{Op: "compare", Path: rel, Err: fs.ErrInvalid}
		}
		n++
		return nil
	})
	if err != nil {
		return err.Error()
	}
	if n != len(files) || n < 20 {
		return "file counts differ or too few files"
	}
	return ""
}
