package coords

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// fixtureScript writes, with xarray, coordinates of every encoding the
// decoder meets (argv[1]: the store), and prints xarray's decoded values:
// times as int64 ns, numbers as floats (NaN as null), and for each unit
// name the decoding of [0, 1, 7] of it since 2000-01-01.
const fixtureScript = `
import json, sys, warnings
import numpy as np, pandas as pd, xarray as xr
warnings.simplefilter("ignore")
path = sys.argv[1]
lat = np.arange(40, 60.001, 0.25)
lat_nan = lat.copy(); lat_nan[3] = np.nan
ds = xr.Dataset(coords={
    "time5": pd.date_range("2021-03-01", periods=600, freq="5min"),
    "hourly": pd.date_range("2020-01-01", periods=10, freq="h"),
    "lat": lat,
    "step": pd.to_timedelta(np.arange(0, 6) * 90, "min"),
})
ds["lat_packed"] = ("lat", lat_nan)
ds["lon_packed"] = ("lon", np.arange(-10, 15.001, 0.25))
ds = ds.set_coords(["lat_packed", "lon_packed"])
enc = {
    "time5": {"units": "days since 1900-01-01", "dtype": "float64"},
    "hourly": {"units": "hours since 2000-01-01 00:00:00", "dtype": "int32"},
    "step": {"units": "hours", "dtype": "float32"},
    "lat_packed": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 50.0, "_FillValue": -32768},
    "lon_packed": {"dtype": "int16", "scale_factor": 0.01},
}
ds.to_zarr(path, encoding=enc, zarr_format=2, consolidated=True)
back = xr.open_zarr(path, decode_timedelta=True)
out = {}
for name in ["time5", "hourly", "step"]:
    out[name] = back[name].values.astype(back[name].dtype.str[:3] + "[ns]").view("i8").tolist()
for name in ["lat", "lat_packed", "lon_packed"]:
    out[name] = [None if np.isnan(x) else float(x) for x in back[name].values.astype("f8")]
units = {}
for u in ["days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"]:
    d = xr.coding.times.decode_cf_datetime(np.array([0, 1, 7]), u + " since 2000-01-01")
    units[u] = d.astype("datetime64[ns]").view("i8").tolist()
out["units"] = units
print(json.dumps(out))
`

type fixture struct {
	Time5, Hourly, Step []int64
	Lat, LatPacked      []*float64
	LonPacked           []*float64
	Units               map[string][]int64
	store               *zarr.Group
}

func writeFixture(t *testing.T) fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c.zarr")
	var raw struct {
		Time5     []int64            `json:"time5"`
		Hourly    []int64            `json:"hourly"`
		Step      []int64            `json:"step"`
		Lat       []*float64         `json:"lat"`
		LatPacked []*float64         `json:"lat_packed"`
		LonPacked []*float64         `json:"lon_packed"`
		Units     map[string][]int64 `json:"units"`
	}
	if err := json.Unmarshal(testenv.RunPython(t, fixtureScript, dir), &raw); err != nil {
		t.Fatal(err)
	}
	g, err := zarr.OpenGroup(context.Background(), dirstore.New(dir), "")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{raw.Time5, raw.Hourly, raw.Step, raw.Lat, raw.LatPacked, raw.LonPacked, raw.Units, g}
}

// TestDecodeMatchesXarray checks CF-packed coordinates (scale, offset,
// fill), integer and float CF times and float steps against xarray.
func TestDecodeMatchesXarray(t *testing.T) {
	ctx := context.Background()
	fx := writeFixture(t)
	read := func(name string) Coord {
		c, err := Read(ctx, fx.store, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for name, want := range map[string][]*float64{"lat": fx.Lat, "lat_packed": fx.LatPacked, "lon_packed": fx.LonPacked} {
		got, err := read(name).Float64s()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, xarray %d", name, len(got), len(want))
		}
		for i, w := range want {
			if (w == nil) != math.IsNaN(got[i]) || (w != nil && got[i] != *w) {
				t.Fatalf("%s[%d] = %v, xarray %v", name, i, got[i], w)
			}
		}
	}
	if c := read("lat_packed"); !c.Packed() || c.DType.Kind != zarr.KindInt {
		t.Fatalf("lat_packed: stored %s, packed %v: the fixture is not int16-packed", c.DType, c.Packed())
	}
	hourly, err := read("hourly").Times()
	if err != nil || !equal(hourly, fx.Hourly) {
		t.Errorf("hourly: %v (%v), xarray %v", hourly, err, fx.Hourly)
	}
	step, err := read("step").Durations()
	if err != nil || !equal(step, fx.Step) {
		t.Errorf("step: %v (%v), xarray %v", step, err, fx.Step)
	}
	// Float days since 1900: xarray's decoding is a few hundred ns off the
	// 5-minute grid in places; the decoder rounds them back onto it.
	t5, err := read("time5").Times()
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i, w := range fx.Time5 {
		if w%300e9 != 0 {
			off++
		}
		if t5[i]%300e9 != 0 || math.Abs(float64(t5[i]-w)) > 1e3 {
			t.Fatalf("time5[%d] = %d: not on the 5-minute grid within 1 µs of xarray's %d", i, t5[i], w)
		}
	}
	if off == 0 {
		t.Error("xarray decoded every float time exactly: the fixture does not exercise rounding")
	}
	t.Logf("%d of %d float times that xarray decodes off the grid rounded back onto it", off, len(fx.Time5))
}

// TestUnitSpellings checks that every udunits/cftime spelling of a unit
// decodes like xarray's decoding of its full name.
func TestUnitSpellings(t *testing.T) {
	fx := writeFixture(t)
	spellings := map[string][]string{
		"days":         {"days", "day", "d", "Days", "D"},
		"hours":        {"hours", "hour", "hr", "hrs", "h", "HOURS"},
		"minutes":      {"minutes", "minute", "min", "mins"},
		"seconds":      {"seconds", "second", "sec", "secs", "s"},
		"milliseconds": {"milliseconds", "millisecond", "msec", "msecs", "ms", "millisec"},
		"microseconds": {"microseconds", "microsecond", "usec", "usecs", "us", "microsec"},
		"nanoseconds":  {"nanoseconds", "nanosecond", "nsec", "nsecs", "ns"},
	}
	for full, names := range spellings {
		want := fx.Units[full]
		if len(want) != 3 {
			t.Fatalf("xarray gave %v for %s", want, full)
		}
		for _, name := range names {
			var data []byte
			for _, v := range []int32{0, 1, 7} {
				data = binary.LittleEndian.AppendUint32(data, uint32(v))
			}
			c := Coord{Name: "t", DType: zarr.DType{Kind: zarr.KindInt, Size: 4}, Data: data,
				Attrs: map[string]any{"units": name + " since 2000-01-01"}, packing: zarr.CFPacking{Scale: 1}}
			got, err := c.Times()
			if err != nil || !equal(got, want) {
				t.Errorf("%q: %v (%v), xarray's %q %v", name, got, err, full, want)
			}
			// Steps take the same spellings.
			c.Attrs = map[string]any{"units": name}
			d, err := c.Durations()
			if err != nil || d[1] != want[1]-want[0] {
				t.Errorf("step units %q: %v (%v), want one unit %d ns", name, d, err, want[1]-want[0])
			}
		}
	}
}

func TestCalendars(t *testing.T) {
	for _, tc := range []struct {
		calendar string
		ok       bool
	}{
		{"", true}, {"standard", true}, {"gregorian", true}, {"proleptic_gregorian", true}, {"Standard", true},
		{"noleap", false}, {"365_day", false}, {"all_leap", false}, {"366_day", false}, {"360_day", false},
		{"julian", false}, {"none", false},
	} {
		_, err := ParseTimeUnits("hours since 2000-01-01", tc.calendar)
		if tc.ok != (err == nil) {
			t.Errorf("calendar %q: error %v, want ok=%v", tc.calendar, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tc.calendar) {
			t.Errorf("calendar %q: error %q does not name it", tc.calendar, err)
		}
	}
}

func TestParseTimeUnits(t *testing.T) {
	for _, tc := range []struct {
		units   string
		v       float64
		want    int64
		errPart string
	}{
		{"hours since 1900-01-01", 1, -2208985200e9, ""},
		{"minutes since 2020-04-01 12:00:00", 5, 1585742700e9, ""},
		{"milliseconds since 2020-03-26T21:28:01.615000", 385, 1585258082000e6, ""},
		{"days since 1970-01-01T00:00:00Z", 1.5, 129600e9, ""},
		{"seconds since 1970-01-01 00:00:00 UTC", -1, -1e9, ""},
		{"fortnights since 2000-01-01", 0, 0, "unknown time unit"},
		{"months since 2000-01-01", 0, 0, "no fixed length"},
		{"days since 1500-01-01", 0, 0, "int64 ns range"},
		{"hours", 0, 0, "since"},
	} {
		tu, err := ParseTimeUnits(tc.units, "")
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q: error %v, want one about %q", tc.units, err, tc.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.units, err)
			continue
		}
		if got, err := tu.floatToNS(tc.v); err != nil || got != tc.want {
			t.Errorf("%q %v: %d (%v), want %d", tc.units, tc.v, got, err, tc.want)
		}
	}
}

func TestRoundToPrecision(t *testing.T) {
	const minute = int64(60e9)
	for _, tc := range []struct {
		name     string
		in, want []int64
		tol      int64
	}{
		{"5-minute grid, float noise", []int64{0, 5*minute + 512, 10*minute - 512, NaT}, []int64{0, 5 * minute, 10 * minute, NaT}, 1024},
		{"a frame truly 30 s off keeps its offset", []int64{-512, 5*minute + 30e9 + 256, 10 * minute}, []int64{0, 5*minute + 30e9, 10 * minute}, 1024},
		{"noise above the tolerance is left alone", []int64{0, 5*minute + 4096}, []int64{0, 5*minute + 4096}, 1024},
		{"exact values unchanged", []int64{1, 2, 3}, []int64{1, 2, 3}, 1},
	} {
		got := append([]int64(nil), tc.in...)
		roundToPrecision(got, tc.tol)
		if !equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDatetimeUnits(t *testing.T) {
	for _, tc := range []struct {
		dtype string
		v     int64
		want  int64
	}{
		{"<M8[ns]", 5, 5}, {"<M8[s]", -2, -2e9}, {"<M8[10ms]", 3, 30e6}, {"<M8[D]", 1, 86400e9}, {"<M8[W]", 1, 7 * 86400e9},
		{"<M8[M]", 5, 13046400e9}, {"<M8[M]", -1, -2678400e9}, {"<M8[Y]", 1, 31536000e9}, {"<M8[ps]", 5000, 5}, {"<m8[h]", 2, 7200e9},
		{"<M8[s]", NaT, NaT},
	} {
		d, err := zarr.ParseDType(tc.dtype)
		if err != nil {
			t.Fatal(err)
		}
		c := Coord{Name: "t", DType: d, Data: binary.LittleEndian.AppendUint64(nil, uint64(tc.v))}
		got, err := c.Times()
		if err != nil || got[0] != tc.want {
			t.Errorf("%s %d: %v (%v), want %d", tc.dtype, tc.v, got, err, tc.want)
		}
	}
}

func TestPeriodic(t *testing.T) {
	seq := func(start, step float64, n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = start + step*float64(i)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		lon  []float64
		want bool
	}{
		{"0..359 at 1°", seq(0, 1, 360), true},
		{"-180..179.75 at 0.25°", seq(-180, 0.25, 1440), true},
		{"descending 359..0", seq(359, -1, 360), true},
		{"0..358 at 1° (a column short)", seq(0, 1, 359), false},
		{"0..360 at 1° (seam column twice)", seq(0, 1, 361), false},
		{"regional", seq(-10, 0.25, 100), false},
		{"irregular", []float64{0, 1, 3, 4}, false},
	} {
		if got := Periodic(tc.lon); got != tc.want {
			t.Errorf("%s: periodic %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRealTimesMatchXarray decodes every time and timedelta variable of
// the real stores and compares them with xarray.
func TestRealTimesMatchXarray(t *testing.T) {
	const script = `
import json, sys, warnings
import numpy as np, xarray as xr
warnings.simplefilter("ignore")
out = {}
for store in sys.argv[1:]:
    ds = xr.open_zarr(store, consolidated=True, decode_timedelta=True)
    res = {}
    for name, v in ds.variables.items():
        if v.dtype.kind in "mM":
            vals = v.values
            res[name] = {"kind": vals.dtype.kind, "ns": vals.astype(vals.dtype.str[:3] + "[ns]").view("i8").ravel().tolist()}
    out[store] = res
print(json.dumps(out))
`
	ctx := context.Background()
	root := testenv.RealData(t)
	var stores []string
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasSuffix(p, ".zarr") {
			stores = append(stores, p)
			return filepath.SkipDir
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var want map[string]map[string]struct {
		Kind string  `json:"kind"`
		NS   []int64 `json:"ns"`
	}
	if err := json.Unmarshal(testenv.RunPython(t, script, stores...), &want); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range stores {
		g, err := zarr.OpenGroup(ctx, dirstore.New(dir), "")
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want[dir] {
			what := filepath.Base(dir) + "/" + name
			c, err := Read(ctx, g, name)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var got []int64
			if w.Kind == "M" {
				if !c.IsTime() {
					t.Errorf("%s: not recognised as time", what)
				}
				got, err = c.Times()
			} else {
				// Not IsDuration where only decode_timedelta=True makes it
				// one (numbers in "hours", as forecast steps are stored).
				got, err = c.Durations()
			}
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			if !equal(got, w.NS) {
				t.Errorf("%s: %v, xarray %v", what, head(got), head(w.NS))
			}
			checked++
		}
	}
	t.Logf("%d time variables checked", checked)
	if checked < 5 {
		t.Errorf("only %d time variables checked", checked)
	}
}

func head(v []int64) []int64 { return v[:min(len(v), 5)] }

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzParseTimeUnits(f *testing.F) {
	for _, s := range []string{"hours since 1900-01-01", "hrs since 2020-03-26T21:28:01.615000", "d since 1970-1-1 0:0:0 UTC", "months since 2000-01-01", "x since", ""} {
		f.Add(s, "standard")
	}
	f.Fuzz(func(t *testing.T, units, calendar string) {
		tu, err := ParseTimeUnits(units, calendar)
		if err != nil {
			return
		}
		if tu.UnitNS <= 0 {
			t.Fatalf("%q: unit %d ns", units, tu.UnitNS)
		}
		for _, v := range []float64{0, 1, -1, 1.5, 1e300, math.NaN()} {
			ns, err := tu.floatToNS(v)
			if err == nil && math.IsNaN(v) != (ns == NaT) {
				t.Fatalf("%q %v: %d", units, v, ns)
			}
		}
	})
}

// FuzzCoordTimes decodes arbitrary stored bytes with arbitrary units: an
// error or values, never a panic.
func FuzzCoordTimes(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, "<f8", "days since 1900-01-01", 0.5)
	f.Add([]byte{1, 0, 2, 0}, "<i2", "hrs since 2000-1-1 00:00", 1.0)
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 127}, "<M8[Y]", "", 1.0)
	f.Fuzz(func(t *testing.T, data []byte, dtype, units string, scale float64) {
		d, err := zarr.ParseDType(dtype)
		if err != nil || d.Size == 0 || d.Size > 16 {
			return
		}
		data = data[:len(data)/d.Size*d.Size]
		c := Coord{Name: "t", DType: d.LittleEndian(), Data: data, Attrs: map[string]any{"units": units},
			packing: zarr.CFPacking{Scale: scale}}
		if ts, err := c.Times(); err == nil && len(ts) != c.Len() {
			t.Fatalf("%d times for %d elements", len(ts), c.Len())
		}
		if ds, err := c.Durations(); err == nil && len(ds) != c.Len() {
			t.Fatalf("%d durations for %d elements", len(ds), c.Len())
		}
	})
}
