package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// selectCheck has xarray select what each case asked `loader read` for
// and compares: .isel with Python's slice clipping, .sel with
// slice(a, b) (a single label as slice(a, a), which keeps the dim as
// `loader read` does, and selects a partial time's whole period).
const selectCheck = `
import json, sys, numpy as np, xarray as xr
for c in json.load(open(sys.argv[1])):
    ds = xr.open_zarr(c["store"], consolidated=True, mask_and_scale=c["decode"], decode_timedelta=False)
    da = ds[c["array"]]
    da = da.isel({d: slice(lo, hi) for d, lo, hi in c["isel"] or []})
    sel = {}
    for d, a, b in c["sel"] or []:
        kind = ds[d].dtype.kind
        conv = (lambda v: v) if kind in "MUSO" else float
        sel[d] = slice(conv(a) if a != "" else None, conv(b) if b != "" else None)
    want = da.sel(sel).values
    got = np.load(c["out"])
    if got.shape != want.shape or not np.array_equal(got, want, equal_nan=True):
        print(f"{c['name']}: loader read gave {got.shape}, xarray {want.shape}")
        continue
    print(f"{c['name']}: ok {got.shape}")
`

func TestReadSelectsAsPythonDoes(t *testing.T) {
	real := testenv.RealData(t)
	ukv := filepath.Join(real, "ocf-nowcasting-2023", "ukv_nwp.zarr")
	sat := filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	ecmwf := filepath.Join(real, "ecmwf-earthkit", "ecmwf_pl_analysis.zarr")
	type selCase struct {
		Name   string   `json:"name"`
		Store  string   `json:"store"`
		Array  string   `json:"array"`
		Isel   [][3]any `json:"isel"` // dim, start, stop (null: open)
		Sel    [][3]any `json:"sel"`  // dim, first label, last label ("": open)
		Decode bool     `json:"decode"`
		Out    string   `json:"out"`
	}
	cases := []selCase{
		{Name: "time slice, descending y, clipped isel", Store: ukv, Array: "UKV",
			Sel:  [][3]any{{"init_time", "2020-04-01T03:00", "2020-04-01T09:00"}, {"y", "1000000", "900000"}},
			Isel: [][3]any{{"x", 500, 1000}, {"step", -100, 2}}},
		{Name: "one time, one x, empty isel", Store: ukv, Array: "UKV",
			Sel:  [][3]any{{"init_time", "2020-04-01T06:00", "2020-04-01T06:00"}, {"x", "-239000", "-239000"}},
			Isel: [][3]any{{"y", 5, 3}}},
		{Name: "open-ended time, channel label, labels between pixels", Store: sat, Array: "data",
			Sel:  [][3]any{{"time", "2020-04-01T13:00", ""}, {"variable", "IR_016", "IR_016"}, {"x", "-1000000", "-1200000"}},
			Isel: [][3]any{{"y", -10, nil}}},
		{Name: "a whole day, decoded, descending latitude, longitude past the end", Store: ecmwf, Array: "t", Decode: true,
			Sel: [][3]any{{"time", "2007-01-01", "2007-01-01"}, {"latitude", "60", "50"}, {"level", "850", "850"}, {"longitude", "350", "400"}}},
	}
	dir := t.TempDir()
	ctx := context.Background()
	for i := range cases {
		c := &cases[i]
		c.Out = filepath.Join(dir, strings.ReplaceAll(c.Name, " ", "_")+".npy")
		args := []string{c.Store, c.Array, "-o", c.Out}
		if c.Decode {
			args = append(args, "--decode")
		}
		for _, s := range c.Isel {
			lo, hi := "", ""
			if s[1] != nil {
				lo = jsonText(s[1])
			}
			if s[2] != nil {
				hi = jsonText(s[2])
			}
			args = append(args, "--isel", s[0].(string)+"="+lo+":"+hi)
		}
		for _, s := range c.Sel {
			label := s[1].(string)
			if s[1] != s[2] {
				label += ":" + s[2].(string)
			}
			args = append(args, "--sel", s[0].(string)+"="+label)
		}
		if err := runRead(ctx, args, io.Discard); err != nil {
			t.Fatalf("%s: loader read %s: %v", c.Name, strings.Join(args, " "), err)
		}
	}
	spec, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	casesFile := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(casesFile, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out := string(testenv.RunPython(t, selectCheck, casesFile))
	for _, c := range cases {
		if !strings.Contains(out, c.Name+": ok") {
			t.Errorf("%s: not what xarray selects:\n%s", c.Name, out)
		}
	}
	t.Logf("xarray agrees:\n%s", out)
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
