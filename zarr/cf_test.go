package zarr

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// xarrayScript prints, for each store in argv, xarray's decoded view: every
// datetime/timedelta variable as int64 ns, and every CF-packed variable's
// decoded values (NaN as null).
const xarrayScript = `
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
        elif "scale_factor" in v.encoding or "add_offset" in v.encoding:
            f = v.values.astype("f8").ravel()
            res[name] = {"kind": "f", "values": [None if np.isnan(x) else float(x) for x in f]}
    out[store] = res
print(json.dumps(out))
`

// TestCFMatchesXarray checks time decoding (CF units and datetime64) and
// scale/offset/fill unpacking of every real store against xarray.
func TestCFMatchesXarray(t *testing.T) {
	ctx := context.Background()
	stores := realStores(t)
	var want map[string]map[string]struct {
		Kind   string     `json:"kind"`
		NS     []int64    `json:"ns"`
		Values []*float64 `json:"values"`
	}
	if err := json.Unmarshal(testenv.RunPython(t, xarrayScript, stores...), &want); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range stores {
		g, err := OpenGroup(ctx, dirstore.New(dir), "")
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want[dir] {
			what := filepath.Base(dir) + "/" + name
			a, err := g.Array(name)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			switch w.Kind {
			case "M", "m":
				c, err := ReadCoord(ctx, a)
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
					got, err = c.Durations()
				}
				if err != nil {
					t.Errorf("%s: %v", what, err)
					continue
				}
				for i := range got {
					if got[i] != w.NS[i] {
						t.Errorf("%s[%d]: %d ns, xarray %d", what, i, got[i], w.NS[i])
						break
					}
				}
			case "f":
				raw, err := a.ReadAll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodeCF(a, raw)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				nan := 0
				for i, v := range got {
					wv := w.Values[i]
					if wv == nil {
						nan++
					}
					if (wv == nil) != math.IsNaN(v) || (wv != nil && math.Abs(v-*wv) > 1e-9*math.Abs(*wv)) {
						t.Errorf("%s[%d]: %v, xarray %v", what, i, v, wv)
						break
					}
				}
			}
			checked++
		}
	}
	t.Logf("%d variables checked", checked)
	if checked < 10 {
		t.Errorf("only %d variables checked", checked)
	}
}

func TestParseCFTime(t *testing.T) {
	for _, tc := range []struct {
		units, calendar string
		v               float64
		want            int64
		err             string
	}{
		{"hours since 1900-01-01", "gregorian", 1, -2208985200e9, ""},
		{"minutes since 2020-04-01 12:00:00", "proleptic_gregorian", 5, 1585742700e9, ""},
		{"milliseconds since 2020-03-26T21:28:01.615000", "", 385, 1585258082000e6, ""},
		{"days since 1970-01-01T00:00:00Z", "standard", 1.5, 129600e9, ""},
		{"seconds since 1970-01-01 00:00:00 UTC", "", -1, -1e9, ""},
		{"days since 2000-01-01", "noleap", 0, 0, "calendar"},
		{"fortnights since 2000-01-01", "", 0, 0, "unknown unit"},
		{"hours", "", 0, 0, "since"},
	} {
		ct, err := ParseCFTime(tc.units, tc.calendar)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q: error %v, want one about %q", tc.units, tc.calendar, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.units, err)
			continue
		}
		if got, err := ct.ToNS(tc.v); err != nil || got != tc.want {
			t.Errorf("%q %v: %d (%v), want %d", tc.units, tc.v, got, err, tc.want)
		}
	}
}

// TestCoordKinds reads the real coordinates of each kind.
func TestCoordKinds(t *testing.T) {
	ctx := context.Background()
	root := testenv.RealData(t)
	g, err := OpenGroup(ctx, dirstore.New(filepath.Join(root, "ocf-nowcasting-2023", "ukv_nwp.zarr")), "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := g.Coord(ctx, "variable")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := v.Strings(); err != nil || len(s) != 1 || s[0] == "" {
		t.Errorf("variable labels %q (%v): want one non-empty label", s, err)
	}
	y, err := g.Coord(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	ys, err := y.Float64s()
	if err != nil || len(ys) != 704 || ys[0] <= ys[1] {
		t.Errorf("y: %d values (%v), want 704 descending", len(ys), err)
	}
	if _, err := v.Float64s(); err == nil {
		t.Errorf("variable labels decoded as numbers")
	}
	steps, err := g.Coord(ctx, "step")
	if err != nil {
		t.Fatal(err)
	}
	d, err := steps.Durations()
	if err != nil || len(d) != 5 || d[1]-d[0] != 3600e9 {
		t.Errorf("step durations %v (%v), want hourly", d, err)
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
		d, err := ParseDType(tc.dtype)
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
