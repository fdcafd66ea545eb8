package zarr

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// xarrayScript prints, for each store in argv, every CF-packed variable's
// values as xarray decodes them (NaN as null). Times are checked in coords.
const xarrayScript = `
import json, sys, warnings
import numpy as np, xarray as xr
warnings.simplefilter("ignore")
out = {}
for store in sys.argv[1:]:
    ds = xr.open_zarr(store, consolidated=True, decode_timedelta=True)
    res = {}
    for name, v in ds.variables.items():
        if v.dtype.kind not in "mM" and ("scale_factor" in v.encoding or "add_offset" in v.encoding):
            f = v.values.astype("f8").ravel()
            res[name] = {"kind": "f", "values": [None if np.isnan(x) else float(x) for x in f]}
    out[store] = res
print(json.dumps(out))
`

// TestCFMatchesXarray checks scale/offset/fill unpacking of every real store against xarray.
func TestCFMatchesXarray(t *testing.T) {
	ctx := context.Background()
	stores := realStores(t)
	var want map[string]map[string]struct {
		Kind   string     `json:"kind"`
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
	if checked < 2 {
		t.Errorf("only %d variables checked", checked)
	}
}
