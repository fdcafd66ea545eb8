package cropper

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// writeCFStoreScript writes, with xarray's CF encoding, a variable packed
// as int16 with scale_factor, add_offset and _FillValue, some of its
// values missing. argv: store path, zarr format.
const writeCFStoreScript = `
import sys
import numpy as np, xarray as xr
rng = np.random.default_rng(4)
kelvin = 270 + 15 * rng.standard_normal((6, 30, 36))
kelvin[rng.random(kelvin.shape) < 0.05] = np.nan
ds = xr.Dataset({"v": (("t", "y", "x"), kelvin)})
enc = {"v": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15, "_FillValue": np.int16(-32768), "chunks": (2, 16, 16)}}
ds.to_zarr(sys.argv[1], encoding=enc, zarr_format=int(sys.argv[2]), mode="w", consolidated=False)
`

// checkCFScript compares crops (raw little-endian float32) with xarray's
// decoded values at the windows, then the spec's transforms done in numpy's
// float32. argv: store, then per case: batch file, starts (3 per sample),
// mode ("decoded" or "stored"), nan_fill, mean, std.
const checkCFScript = `
import sys
import numpy as np, xarray as xr
args = sys.argv[2:]
for c in range(0, len(args), 6):
    batch, starts, mode, fill, mean, std = args[c:c + 6]
    fill, mean, std = np.float32(fill), np.float32(mean), np.float32(std)
    v = xr.open_zarr(sys.argv[1], consolidated=False, mask_and_scale=(mode == "decoded"))["v"]
    if mode == "decoded":
        assert v.dtype == np.float64 and np.isnan(v.values).any(), v.dtype
    starts = np.array([int(s) for s in starts.split(",")]).reshape(-1, 3)
    size = (2, 8, 9)
    got = np.fromfile(batch, dtype="<f4").reshape((len(starts),) + size)
    for i, st in enumerate(starts):
        want = v.isel({d: slice(s, s + n) for d, s, n in zip(v.dims, st, size)}).values.astype(np.float32)
        want = (want - mean) * (np.float32(1) / std)
        want = np.where(np.isnan(want), fill, want)
        bad = got[i] != want
        assert not bad.any(), (mode, i, np.argwhere(bad)[:3], got[i][bad][:3], want[bad][:3])
print("ok")
`

// TestCFPackedCropsEqualXarray: a CF-packed int16 variable written by
// xarray comes out of the cropper equal to xarray's decoded values (fill
// values NaN, so nan_fill applies), in Zarr v2 and v3; with decode_cf:
// false it comes out as stored.
func TestCFPackedCropsEqualXarray(t *testing.T) {
	ctx := context.Background()
	for _, format := range []int{2, 3} {
		dir := t.TempDir()
		store := filepath.Join(dir, fmt.Sprintf("cf%d.zarr", format))
		testenv.RunPython(t, writeCFStoreScript, store, fmt.Sprint(format))
		var check []string
		for _, tc := range []struct {
			mode, extra string
			mean, std   string
		}{
			{"decoded", "", "0", "1"},
			{"decoded", "normalise: {mean: [281.5], std: [4.5]}", "281.5", "4.5"},
			{"stored", "decode_cf: false", "0", "1"},
		} {
			t.Run(fmt.Sprintf("v%d %s %s", format, tc.mode, tc.extra), func(t *testing.T) {
				spec := fmt.Sprintf(`
seed: 3
batch_size: 4
samples_per_epoch: 24
sources:
  v:
    store: %s
    array: v
    crop: {t: 2, y: 8, x: 9}
    nan_fill: -7
    %s
`, store, tc.extra)
				p := specPlan(t, spec)
				c := New(p, Options{})
				var b Batch
				var all, starts []byte
				for samples := range p.Batches("train", 0, 0, 1) {
					if err := c.Crop(ctx, samples, &b); err != nil {
						t.Fatal(err)
					}
					all = append(all, b.Data[0]...)
					for _, s := range samples {
						for _, v := range s.Windows[0].Start {
							starts = fmt.Appendf(starts, "%d,", v)
						}
					}
				}
				file := filepath.Join(dir, fmt.Sprintf("batch%d.bin", len(check)))
				if err := os.WriteFile(file, all, 0o644); err != nil {
					t.Fatal(err)
				}
				check = append(check, file, string(starts[:len(starts)-1]), tc.mode, "-7", tc.mean, tc.std)
			})
		}
		testenv.RunPython(t, checkCFScript, append([]string{store}, check...)...)
	}
}

func specPlan(t testing.TB, spec string) *sampler.Plan {
	t.Helper()
	s, err := sampler.ParseSpec([]byte(spec), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := sampler.NewPlan(context.Background(), s, open)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRealPackedScript compares crops of the real ECMWF analysis (int16
// packed with scale_factor, add_offset and missing_value) with xarray's
// decoded values at each window. argv: store, batch file (float32), starts
// (4 per sample), sizes (4).
const checkRealPackedScript = `
import sys
import numpy as np, xarray as xr
v = xr.open_zarr(sys.argv[1])["t"]
assert v.dtype == np.float64
size = [int(s) for s in sys.argv[4].split(",")]
starts = np.array([int(s) for s in sys.argv[3].split(",")]).reshape(-1, 4)
got = np.fromfile(sys.argv[2], dtype="<f4").reshape((len(starts),) + tuple(size))
for i, st in enumerate(starts):
    want = v.isel({d: slice(s, s + n) for d, s, n in zip(v.dims, st, size)}).values.astype(np.float32)
    assert want.shape == got[i].shape and 200 < want.min() and want.max() < 320, want
    assert np.array_equal(got[i], want), (i, got[i], want)
print("ok")
`

// TestRealPackedCropsEqualXarray cuts the real packed ECMWF analysis at
// sites away from the grid's seam: the crops are temperatures in kelvin,
// equal to xarray's decoding, not the stored integers.
func TestRealPackedCropsEqualXarray(t *testing.T) {
	store := filepath.Join(testenv.RealData(t), "ecmwf-earthkit", "ecmwf_pl_analysis.zarr")
	dir := t.TempDir()
	sites := filepath.Join(dir, "sites.csv")
	if err := os.WriteFile(sites, []byte("site_id,lat,lon\n1,45.2,20.5\n2,30.1,100.3\n3,-20.7,150.2\n4,60.4,-100.6\n5,-45.5,-60.2\n6,10.3,45.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := specPlan(t, fmt.Sprintf(`
seed: 7
batch_size: 3
locations: {sites: %s}
sources:
  ecmwf:
    store: %s
    array: t
    dims: {time: time, channel: level, y: latitude, x: longitude}
    crs: latlon
    crop: {height: 4, width: 5}
    time: {start: 0h, end: 0h, resolution: 1h}
`, sites, store))
	c := New(p, Options{})
	var b Batch
	var all, starts []byte
	n := 0
	for samples := range p.Batches("train", 0, 0, 1) {
		if err := c.Crop(context.Background(), samples, &b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b.Data[0]...)
		for _, s := range samples {
			for _, v := range s.Windows[0].Start {
				starts = fmt.Appendf(starts, "%d,", v)
			}
			n++
		}
	}
	if n != 6 {
		t.Fatalf("%d samples, want one per site", n)
	}
	file := filepath.Join(dir, "batch.bin")
	if err := os.WriteFile(file, all, 0o644); err != nil {
		t.Fatal(err)
	}
	size := p.Sources[0].Size
	testenv.RunPython(t, checkRealPackedScript, store, file, string(starts[:len(starts)-1]), fmt.Sprintf("%d,%d,%d,%d", size[0], size[1], size[2], size[3]))
}
