package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// writePackedScript writes with xarray's CF encoding an int16 variable
// packed with scale_factor, add_offset and _FillValue, in Zarr v2 and v3.
const writePackedScript = `
import sys
import numpy as np, xarray as xr
rng = np.random.default_rng(8)
x = 250 + 30 * rng.standard_normal((5, 3, 20, 24))
x[rng.random(x.shape) < 0.07] = np.nan
ds = xr.Dataset({"v": (("time", "channel", "y", "x"), x)})
enc = {"v": {"dtype": "int16", "scale_factor": 0.005, "add_offset": 250.0, "_FillValue": np.int16(-32767), "chunks": (2, 2, 8, 8)}}
for fmt in (2, 3):
    ds.to_zarr(sys.argv[1] + f"/v{fmt}.zarr", encoding=enc, zarr_format=fmt, consolidated=False)
`

// xarrayStats is the reference: the variable as xarray decodes it by
// default, per channel, with numpy's nan-aware reductions.
const xarrayStats = `
import json, sys, numpy as np, xarray as xr
out = []
for job in json.loads(sys.argv[1]):
    v = xr.open_zarr(job["store"], consolidated=False)[job["array"]]
    assert v.dtype == np.float64, v.dtype
    x = v.values
    cd = job["channel_dim"]
    x = np.moveaxis(x, cd, 0).reshape(x.shape[cd], -1) if cd >= 0 else x.reshape(1, -1)
    out.append([{"count": int((~np.isnan(c)).sum()), "nans": int(np.isnan(c).sum()), "mean": float(np.nanmean(c)),
                 "std": float(np.nanstd(c)), "min": float(np.nanmin(c)), "max": float(np.nanmax(c))} for c in x])
print(json.dumps(out))
`

// TestComputeDecodedMatchesXarray: with DecodeCF, statistics of CF-packed
// variables (the real ECMWF analysis with missing_value, and xarray-written
// stores with _FillValue) equal xarray's on its decoded values.
func TestComputeDecodedMatchesXarray(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, writePackedScript, dir)
	analysis := filepath.Join(testenv.RealData(t), "ecmwf-earthkit", "ecmwf_pl_analysis.zarr")
	type job struct {
		Store      string `json:"store"`
		Array      string `json:"array"`
		ChannelDim int    `json:"channel_dim"`
	}
	jobs := []job{
		{analysis, "t", 1}, {analysis, "z", -1},
		{filepath.Join(dir, "v2.zarr"), "v", 1}, {filepath.Join(dir, "v3.zarr"), "v", 1}, {filepath.Join(dir, "v3.zarr"), "v", -1},
	}
	arg, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]refChannel
	if err := json.Unmarshal(testenv.RunPython(t, xarrayStats, string(arg)), &want); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, j := range jobs {
		t.Run(fmt.Sprintf("%s/%s/ch%d", filepath.Base(j.Store), j.Array, j.ChannelDim), func(t *testing.T) {
			a, err := zarr.OpenArray(ctx, dirstore.New(j.Store), j.Array)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := Compute(ctx, Input{Name: j.Array, Array: a, ChannelDim: j.ChannelDim}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 3} {
				res, err := Compute(ctx, Input{Name: j.Array, Array: a, ChannelDim: j.ChannelDim, DecodeCF: true}, Options{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				for k, w := range want[i] {
					g := res.Channels[k]
					if g.Count != w.Count || g.NaNs != w.NaNs || !close(g.Min, *w.Min, 1e-15) || !close(g.Max, *w.Max, 1e-15) ||
						!close(g.Mean, *w.Mean, 1e-12) || !close(g.Std(), *w.Std, 1e-9) {
						t.Fatalf("workers %d channel %d: %+v std %v; xarray %d %d %v %v %v %v", workers, k, g, g.Std(),
							w.Count, w.NaNs, *w.Mean, *w.Std, *w.Min, *w.Max)
					}
					if raw.Channels[k].Mean == g.Mean {
						t.Fatalf("channel %d: decoded mean equals the stored values' mean %v", k, g.Mean)
					}
				}
			}
		})
	}
}
