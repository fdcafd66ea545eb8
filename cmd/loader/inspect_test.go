package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/synth"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestInspectRealStores checks `loader inspect` against xarray for every
// real store: each dimension with its size, each variable with its dims and
// decoded dtype, and each coordinate's first and last value in storage
// order (high … low on a descending axis), as xarray's repr shows them.
func TestInspectRealStores(t *testing.T) {
	arrays := findRealArrays(t, testenv.RealData(t))
	storeSet := map[string]bool{}
	for _, a := range arrays {
		storeSet[a.Store] = true
	}
	var stores []string
	for s := range storeSet {
		stores = append(stores, s)
	}
	js, err := json.Marshal(stores)
	if err != nil {
		t.Fatal(err)
	}
	// For each store, the strings its description must contain.
	raw := testenv.RunPython(t, `
import json, sys, warnings
import numpy as np, xarray as xr
warnings.filterwarnings("ignore")
out = {}
for s in json.loads(sys.argv[1]):
    ds = xr.open_zarr(s, consolidated=True)
    want = ["Dimensions:  (" ] + [f"{d}: {n}" for d, n in ds.sizes.items()]
    for name, v in ds.variables.items():
        want.append(f" {name} ")
        want.append("(" + ", ".join(v.dims) + ")")
        vals = v.values.ravel()
        if v.dtype.kind == "M" and len(vals) and not np.isnat(vals[0]) and not np.isnat(vals[-1]):
            first, last = (np.datetime_as_string(x, unit="ns").rstrip("0").rstrip(".") for x in (vals[0], vals[-1]))
            want.append(f"{first} … {last}")
        elif v.dtype.kind in "fiu" and v.ndim == 1 and len(vals) and not np.isnan(vals[[0, -1]].astype(float)).any():
            want.append(f"{float(vals[0]):.8g} … {float(vals[-1]):.8g}")
    for k in ds.attrs:
        want.append(f"    {k}: ")
    out[s] = want
print(json.dumps(out))
`, string(js))
	var want map[string][]string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for _, s := range stores {
		var out bytes.Buffer
		if err := runInspect(context.Background(), []string{s}, &out); err != nil {
			t.Errorf("inspect %s: %v", s, err)
			continue
		}
		for _, w := range want[s] {
			if !strings.Contains(out.String(), w) {
				t.Errorf("inspect %s: output lacks %q:\n%s", filepath.Base(s), w, out.String())
			}
		}
	}
}

func TestInspectDescribesLayout(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	if err := runDemo(context.Background(), []string{"--out", dir, "--size", "tiny"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runInspect(context.Background(), []string{filepath.Join(dir, "satellite.zarr")}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"(zarr v3, 5 arrays)",
		"(time: 25, channel: 11, y: 30, x: 24)",
		"shards (12, 11, 32, 32) chunks (1, 11, 16, 16)",
		"sharding_indexed",
		"zstd",
		`"IR_016" "IR_039"`,
		"2020-04-01T00:00:00 … 2020-04-01T02:00:00",
		"1100000 … 1013000 m", // y, descending in storage
		fmt.Sprintf("source: %s", synth.DemoVersion),
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if err := runInspect(context.Background(), []string{filepath.Join(dir, "absent.zarr")}, &out); err == nil ||
		!strings.Contains(err.Error(), "absent.zarr") {
		t.Errorf("inspect of a missing store: error %v does not name it", err)
	}
}
