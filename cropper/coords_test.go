package cropper

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// latlonStoresScript writes, with xarray, float32 temperatures on lat/lon
// grids: argv[1]/global.zarr on a 1° global grid (lat 80..-60 descending,
// lon 0..359), and argv[1]/plain.zarr and argv[1]/packed.zarr with the
// same data on a 0.25° European grid, the second with its coordinates
// CF-packed as int16 (scale_factor, add_offset) the way xarray writes that
// encoding.
const latlonStoresScript = `
import sys
import numpy as np, pandas as pd, xarray as xr
out = sys.argv[1]
rng = np.random.default_rng(3)
times = pd.date_range("2022-01-01", periods=3, freq="h")
lat = np.arange(80, -60.5, -1.0)
lon = np.arange(0, 360, 1.0)
t2m = rng.normal(280, 10, (3, lat.size, lon.size)).astype("f4")
xr.Dataset({"t2m": (("time", "lat", "lon"), t2m)}, coords={"time": times, "lat": lat, "lon": lon}).to_zarr(
    out + "/global.zarr", zarr_format=2, consolidated=True)
lat = np.round(np.arange(35, 65.001, 0.25), 2)
lon = np.round(np.arange(-12, 20.001, 0.25), 2)
t2m = rng.normal(280, 10, (3, lat.size, lon.size)).astype("f4")
ds = xr.Dataset({"t2m": (("time", "lat", "lon"), t2m)}, coords={"time": times, "lat": lat, "lon": lon})
ds.to_zarr(out + "/plain.zarr", zarr_format=2, consolidated=True)
ds.to_zarr(out + "/packed.zarr", zarr_format=2, consolidated=True, encoding={
    "lat": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 50.0},
    "lon": {"dtype": "int16", "scale_factor": 0.01}})
`

func latlonPlan(t *testing.T, store, sites string, crop int) *sampler.Plan {
	t.Helper()
	spec := fmt.Sprintf(`
seed: 5
batch_size: 4
locations: {sites: %s}
sources:
  era:
    store: %s
    array: t2m
    dims: {time: time, y: lat, x: lon}
    crs: latlon
    crop: {height: %d, width: %d}
    time: {start: 0h, end: 0h, resolution: 1h}
`, sites, store, crop, crop)
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

func cropAll(t *testing.T, p *sampler.Plan) ([]sampler.Sample, [][]byte) {
	t.Helper()
	c := New(p, Options{Raw: true})
	var samples []sampler.Sample
	var data [][]byte
	var b Batch
	for batch := range p.Batches("train", 0, 0, 1) {
		if err := c.Crop(context.Background(), batch, &b); err != nil {
			t.Fatal(err)
		}
		per := len(b.Data[0]) / len(batch)
		for i := range batch {
			data = append(data, append([]byte(nil), b.Data[0][i*per:(i+1)*per]...))
		}
		samples = append(samples, batch...)
	}
	return samples, data
}

func writeSites(t *testing.T, rows string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sites.csv")
	if err := os.WriteFile(path, []byte("lat,lon\n"+rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// seamScript prints xarray's crop of global.zarr around the grid point
// nearest (lat, lon) on the circle, taken with roll so that it continues
// across the 0° seam: argv store, lat, lon, crop size; a JSON list of
// float32 values per time in (lat, lon) order.
const seamScript = `
import json, sys
import numpy as np, xarray as xr
ds = xr.open_zarr(sys.argv[1])
lat, lon, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
r = int(np.abs(ds.lat.values - lat).argmin())
c = int(np.abs((ds.lon.values - lon + 180) % 360 - 180).argmin())
rolled = ds.t2m.roll(lon=n // 2 - c, roll_coords=True)
cut = rolled.isel(lat=slice(r - n // 2, r - n // 2 + n), lon=slice(0, n))
print(json.dumps({"lon": cut.lon.values.tolist(), "values": cut.values.astype("f8").ravel().tolist()}))
`

// TestPeriodicLongitudeCropsAcrossSeam cuts a 1° global grid at a site
// just west of the prime meridian: the crop holds real data from both
// sides of the seam, equal to xarray's rolled selection, with no padding,
// whether the site's longitude is given in −180..180 or 0..360.
func TestPeriodicLongitudeCropsAcrossSeam(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, latlonStoresScript, dir)
	store := filepath.Join(dir, "global.zarr")
	const crop = 8
	p := latlonPlan(t, store, writeSites(t, "51.3,-0.4\n51.3,359.6\n"), crop)
	if p.DroppedSites != 0 {
		t.Fatalf("%d sites dropped: a periodic grid has no edge in longitude", p.DroppedSites)
	}
	samples, data := cropAll(t, p)
	var want struct {
		Lon    []float64
		Values []float64
	}
	if err := json.Unmarshal(testenv.RunPython(t, seamScript, store, "51.3", "-0.4", fmt.Sprint(crop)), &want); err != nil {
		t.Fatal(err)
	}
	if want.Lon[0] < 300 || want.Lon[crop-1] > 10 {
		t.Fatalf("xarray's crop spans longitudes %v: not across the seam", want.Lon)
	}
	xDim := 2
	bySite := map[float64][]int64{}
	for i, s := range samples {
		w := s.Windows[0]
		if st := w.Start[xDim]; st < 0 || st >= 360 || st+crop <= 360 {
			t.Fatalf("sample %d: window starts at column %d: want inside the array, running past its end", i, st)
		}
		bySite[math.Round(s.Lon*10)] = append(bySite[math.Round(s.Lon*10)], w.Start[1], w.Start[2])
		tIdx := w.Start[0]
		for k := range crop * crop {
			got := float64(math.Float32frombits(binary.LittleEndian.Uint32(data[i][4*k:])))
			if exp := want.Values[int(tIdx)*crop*crop+k]; got != exp {
				t.Fatalf("sample %d (t %d) element %d (row %d, col %d): %v, xarray %v", i, tIdx, k, k/crop, k%crop, got, exp)
			}
		}
	}
	if len(samples) != 2*3 {
		t.Fatalf("%d samples, want 2 sites × 3 t0s", len(samples))
	}
	var first []int64
	for _, v := range bySite {
		if first == nil {
			first = v
		} else if !reflect.DeepEqual(v, first) {
			t.Errorf("sites at -0.4° and 359.6° cut different windows: %v, %v", first, v)
		}
	}
}

// TestPackedCoordinatesCutLikePlain cuts the same data with int16-packed
// and with float coordinates: the samples (provenance included) and crops
// must be identical, and centred where xarray's nearest selection is.
func TestPackedCoordinatesCutLikePlain(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, latlonStoresScript, dir)
	sites := writeSites(t, "48.86,2.35\n51.5,-0.12\n40.42,-3.70\n59.33,18.07\n")
	const crop = 9
	plainS, plainD := cropAll(t, latlonPlan(t, filepath.Join(dir, "plain.zarr"), sites, crop))
	packedS, packedD := cropAll(t, latlonPlan(t, filepath.Join(dir, "packed.zarr"), sites, crop))
	if !reflect.DeepEqual(plainS, packedS) {
		t.Fatalf("samples differ:\nplain  %+v\npacked %+v", plainS, packedS)
	}
	if !reflect.DeepEqual(plainD, packedD) {
		t.Fatal("crops differ")
	}
	const nearest = `
import json, sys
import xarray as xr
ds = xr.open_zarr(sys.argv[1])
out = []
for lat, lon in json.loads(sys.argv[2]):
    out.append([int(abs(ds.lat - lat).argmin()), int(abs(ds.lon - lon).argmin())])
print(json.dumps(out))
`
	var sitesLL [][2]float64
	for _, s := range packedS {
		sitesLL = append(sitesLL, [2]float64{s.Lat, s.Lon})
	}
	arg, _ := json.Marshal(sitesLL)
	var want [][2]int64
	if err := json.Unmarshal(testenv.RunPython(t, nearest, filepath.Join(dir, "packed.zarr"), string(arg)), &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range packedS {
		w := s.Windows[0].Start
		if got := [2]int64{w[1] + crop/2, w[2] + crop/2}; got != want[i] {
			t.Errorf("sample %d at (%.2f, %.2f): centred on pixel %v, xarray's nearest on the decoded coordinates %v", i, s.Lat, s.Lon, got, want[i])
		}
	}
}
