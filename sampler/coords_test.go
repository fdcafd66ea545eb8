package sampler

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// timeSeriesScript writes, with xarray, an OSGB-gridded series: argv
// store, frequency, number of frames, time encoding ("datetime" for
// datetime64, else CF units stored as float64), and an optional frame
// index to shift by 30 s off the grid.
const timeSeriesScript = `
import sys
import numpy as np, pandas as pd, xarray as xr
path, freq, n, enc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = pd.date_range("2023-06-01 06:00", periods=n, freq=freq)
if len(sys.argv) > 5:
    shifted = times.to_numpy().copy()
    shifted[int(sys.argv[5])] += np.timedelta64(30, "s")
    times = pd.DatetimeIndex(shifted)
ds = xr.Dataset({"v": (("time", "y", "x"), np.zeros((n, 6, 6), "f4"))},
                coords={"time": times, "y": np.arange(6) * 1000.0 + 300000, "x": np.arange(6) * 1000.0 + 400000})
encoding = {} if enc == "datetime" else {"time": {"units": enc, "dtype": "float64"}}
ds.to_zarr(path, zarr_format=2, consolidated=True, encoding=encoding)
`

func timePlan(t *testing.T, store, window, t0Res string) (*Plan, error) {
	t.Helper()
	spec := fmt.Sprintf(`
seed: 1
batch_size: 4
t0_resolution: %s
sources:
  s:
    store: %s
    array: v
    dims: {time: time, y: y, x: x}
    crs: osgb
    crop: {height: 2, width: 2}
    time: %s
`, t0Res, store, window)
	s, err := ParseSpec([]byte(spec), "")
	if err != nil {
		t.Fatal(err)
	}
	return NewPlan(context.Background(), s, dirOpener)
}

func writeSeries(t *testing.T, freq string, n int, enc string, shift ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s.zarr")
	testenv.RunPython(t, timeSeriesScript, append([]string{dir, freq, fmt.Sprint(n), enc}, shift...)...)
	return dir
}

// TestWindowNeverAfterT0 checks the look-ahead case: a history window
// (−30m..0m at 15m) with t0s every 5m on 15-minute data. Every t0 that
// has data gets a window, and no window holds a frame after t0 + end.
func TestWindowNeverAfterT0(t *testing.T) {
	store := writeSeries(t, "15min", 12, "datetime")
	p, err := timePlan(t, store, "{start: -30m, end: 0m, resolution: 15m}", "5m")
	if err != nil {
		t.Fatal(err)
	}
	t0s := p.t0s["train"]
	// Data 06:00..08:45; a window needs two frames before its first: t0
	// from 06:30 to 08:55 (08:50 and 08:55 round down to 08:45).
	first := time.Date(2023, 6, 1, 6, 30, 0, 0, time.UTC).UnixNano()
	if len(t0s) != 30 || t0s[0] != first {
		t.Fatalf("%d t0s from %v, want 30 from 06:30", len(t0s), time.Unix(0, t0s[0]).UTC())
	}
	n := 0
	for b := range p.Batches("train", 0, 0, 1) {
		for _, s := range b {
			labels := p.TimeLabels(0, s.Windows[0])
			if last := labels[len(labels)-1]; last > s.T0 {
				t.Fatalf("t0 %v: window %v holds a frame after t0", time.Unix(0, s.T0).UTC(), labels)
			}
			if labels[0] <= s.T0-45*int64(time.Minute) {
				t.Fatalf("t0 %v: window %v starts a whole step early", time.Unix(0, s.T0).UTC(), labels)
			}
			n++
		}
	}
	if n != len(t0s) {
		t.Errorf("%d samples, want one per t0 (%d)", n, len(t0s))
	}
}

// TestFloatDaysKeepEveryT0 stores a clean 5-minute series as float64
// "days since 1900-01-01" (which xarray decodes a few hundred ns off the
// grid): it must keep exactly the t0s of the same series as datetime64.
// A frame truly off the grid makes the error name it.
func TestFloatDaysKeepEveryT0(t *testing.T) {
	window := "{start: -15m, end: 0m, resolution: 5m}"
	want, err := timePlan(t, writeSeries(t, "5min", 288, "datetime"), window, "5m")
	if err != nil {
		t.Fatal(err)
	}
	got, err := timePlan(t, writeSeries(t, "5min", 288, "days since 1900-01-01"), window, "5m")
	if err != nil {
		t.Fatal(err)
	}
	if len(want.t0s["train"]) != 285 || fmt.Sprint(got.t0s) != fmt.Sprint(want.t0s) {
		t.Fatalf("float days: %d t0s, datetime64: %d (want 285)", len(got.t0s["train"]), len(want.t0s["train"]))
	}
	// Four frames, the third 30 s late: no window of four 5-minute steps.
	_, err = timePlan(t, writeSeries(t, "5min", 4, "days since 1900-01-01", "2"), window, "5m")
	if err == nil || !strings.Contains(err.Error(), "off its grid") || !strings.Contains(err.Error(), "2023-06-01T06:10:30") {
		t.Fatalf("error %v: want one naming the frame at 06:10:30 off the grid", err)
	}
}

// TestNearestOnTheSphere checks 2-D lat/lon coordinates: the pixel found
// is the nearest by great-circle distance (brute force), which on a
// skewed grid at 57° N differs from the nearest in degrees.
func TestNearestOnTheSphere(t *testing.T) {
	const ny, nx = 40, 40
	xs, ys := make([]float64, ny*nx), make([]float64, ny*nx)
	for r := range ny {
		for c := range nx {
			// A sheared grid: rows drift east as they go north.
			ys[r*nx+c] = 55 + 0.1*float64(r) + 0.02*float64(c)
			xs[r*nx+c] = -3 + 0.1*float64(c) + 0.07*float64(r)
		}
	}
	ident := func(x, y float64) (float64, float64, bool) { return x, y, true }
	g, err := newGrid2D(xs, ys, ny, nx, ident, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range 2000 {
		lon := -1 + 2*math.Mod(float64(i)*0.6180339887, 1)
		lat := 56.5 + math.Mod(float64(i)*0.7548776662, 1)
		r, c, ok := g.pixel(lon, lat)
		if !ok {
			t.Fatalf("(%v, %v): outside the grid", lat, lon)
		}
		bestSph, bestDeg := 0, 0
		for p := range xs {
			if greatCircleDeg(ys[p], xs[p], lat, lon) < greatCircleDeg(ys[bestSph], xs[bestSph], lat, lon) {
				bestSph = p
			}
			if math.Hypot(xs[p]-lon, ys[p]-lat) < math.Hypot(xs[bestDeg]-lon, ys[bestDeg]-lat) {
				bestDeg = p
			}
		}
		if int(r*nx+c) != bestSph {
			t.Fatalf("(%v, %v): pixel (%d, %d), nearest on the sphere (%d, %d)", lat, lon, r, c, bestSph/nx, bestSph%nx)
		}
		if bestSph != bestDeg {
			differ++
		}
	}
	if differ == 0 {
		t.Error("degree and sphere nearest never differ: the test grid does not tell them apart")
	}
	t.Logf("%d of 2000 points have a different nearest pixel in degrees", differ)
}

// TestDroppedSitesCounted checks that out_of_bounds: resample counts the
// sites whose crops do not fit.
func TestDroppedSitesCounted(t *testing.T) {
	store := writeSeries(t, "1h", 3, "datetime")
	sites := filepath.Join(t.TempDir(), "sites.csv")
	// OSGB (400000..405000, 300000..305000) is near 52.6 N, 2.0 W.
	lat, lon := OSGBToWGS84(402500, 302500)
	rows := fmt.Sprintf("lat,lon\n%f,%f\n%f,%f\n0,0\n", lat, lon, lat, lon)
	if err := os.WriteFile(sites, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`
seed: 1
batch_size: 2
locations: {sites: %s}
sources:
  s:
    store: %s
    array: v
    dims: {time: time, y: y, x: x}
    crs: osgb
    crop: {height: 2, width: 2}
    time: {start: 0h, end: 0h, resolution: 1h}
`, sites, store)
	s, err := ParseSpec([]byte(spec), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(context.Background(), s, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	if p.DroppedSites != 1 || len(p.sites) != 2 {
		t.Errorf("%d sites dropped, %d kept; want 1 and 2", p.DroppedSites, len(p.sites))
	}
}
