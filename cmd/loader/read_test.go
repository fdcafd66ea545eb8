package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// realArray is one array of a real store, found from the consolidated
// metadata without the zarr package, so that the package cannot hide an
// array from its own test.
type realArray struct {
	Store string   `json:"store"`
	Array string   `json:"array"`
	Dims  []string `json:"dims"`
	Shape []int64  `json:"shape"`
}

// findRealArrays walks root for stores (directories with .zmetadata or
// zarr.json) and lists their arrays from the consolidated metadata.
func findRealArrays(t *testing.T, root string) []realArray {
	t.Helper()
	var out []realArray
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(path, ".zmetadata"))
		if err != nil {
			if _, err3 := os.Stat(filepath.Join(path, "zarr.json")); err3 == nil {
				t.Fatalf("%s: v3 store; this test lists v2 consolidated stores only", path)
			}
			return nil
		}
		var doc struct {
			Metadata map[string]json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal(sanitizeNaN(raw), &doc); err != nil {
			return fmt.Errorf("%s/.zmetadata: %w", path, err)
		}
		for key, meta := range doc.Metadata {
			name, ok := strings.CutSuffix(key, "/.zarray")
			if !ok {
				continue
			}
			var arr struct {
				Shape []int64 `json:"shape"`
			}
			var attrs struct {
				Dims []string `json:"_ARRAY_DIMENSIONS"`
			}
			if err := json.Unmarshal(meta, &arr); err != nil {
				return fmt.Errorf("%s %s: %w", path, key, err)
			}
			if a, ok := doc.Metadata[name+"/.zattrs"]; ok {
				if err := json.Unmarshal(a, &attrs); err != nil {
					return fmt.Errorf("%s %s: %w", path, name, err)
				}
			}
			out = append(out, realArray{Store: path, Array: name, Dims: attrs.Dims, Shape: arr.Shape})
		}
		return filepath.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b realArray) int { return strings.Compare(a.Store+"/"+a.Array, b.Store+"/"+b.Array) })
	return out
}

// sanitizeNaN makes the bare NaN literals some real stores hold parseable.
func sanitizeNaN(b []byte) []byte {
	return []byte(strings.NewReplacer(": NaN", `: "NaN"`, ":NaN", `:"NaN"`).Replace(string(b)))
}

// readCase is one `loader read` run that verify.py checks.
type readCase struct {
	realArray
	Isel   [][3]any `json:"isel"` // dim, start, stop
	Decode bool     `json:"decode"`
	Out    string   `json:"out"`
}

// TestReadRealStores reads every array of every real store through `loader
// read` (whole, at a seeded random --isel region, and that region with
// --decode) and has zarr-python and xarray check each output.
func TestReadRealStores(t *testing.T) {
	arrays := findRealArrays(t, testenv.RealData(t))
	stores := map[string]bool{}
	for _, a := range arrays {
		stores[a.Store] = true
	}
	if len(arrays) != 45 || len(stores) != 7 {
		t.Fatalf("found %d arrays in %d stores, SOURCES.md lists 45 in 7", len(arrays), len(stores))
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	var cases []readCase
	ctx := context.Background()
	for i, a := range arrays {
		var isel [][3]any
		var flags []string
		for d, dim := range a.Dims {
			lo := rng.Int64N(a.Shape[d])
			hi := lo + 1 + rng.Int64N(a.Shape[d]-lo)
			isel = append(isel, [3]any{dim, lo, hi})
			flags = append(flags, "--isel", fmt.Sprintf("%s=%d:%d", dim, lo, hi))
		}
		for _, c := range []readCase{
			{realArray: a, Out: fmt.Sprintf("%03d_whole.npy", i)},
			{realArray: a, Isel: isel, Out: fmt.Sprintf("%03d_isel.npy", i)},
			{realArray: a, Isel: isel, Decode: true, Out: fmt.Sprintf("%03d_decoded.npy", i)},
		} {
			args := []string{a.Store, a.Array, "-o", filepath.Join(dir, c.Out)}
			if c.Isel != nil {
				args = append(args, flags...)
			}
			if c.Decode {
				args = append([]string{"--decode"}, args...)
			}
			if err := runRead(ctx, args, io.Discard); err != nil {
				t.Errorf("loader read %s: %v", strings.Join(args, " "), err)
				continue
			}
			cases = append(cases, c)
		}
	}
	manifest, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	out := string(testenv.RunPython(t, verifyReadScript, dir))
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			t.Error(line)
		}
	}
	if want := fmt.Sprintf("checked %d", len(cases)); !strings.Contains(out, want) {
		t.Errorf("verify.py: %s, want %s", out, want)
	}
}

// verifyReadScript compares each output with zarr-python (stored values,
// byte for byte, little-endian, dtype equal, NaN equal to NaN) or with
// xarray's open_zarr decode_cf values (--decode: floats compare as float64,
// times and everything else with dtype equal).
const verifyReadScript = `
import json, sys, warnings
import numpy as np, xarray as xr, zarr
warnings.filterwarnings("ignore")
d = sys.argv[1]
cases = json.load(open(d + "/cases.json"))
datasets = {}
n = 0
for c in cases:
    name = f"{c['store']} {c['array']} {c['out']}"
    got = np.load(f"{d}/{c['out']}")
    sel = {dim: slice(lo, hi) for dim, lo, hi in (c["isel"] or [])}
    if c["decode"]:
        if c["store"] not in datasets:
            datasets[c["store"]] = xr.open_zarr(c["store"], consolidated=True)
        want = np.asarray(datasets[c["store"]][c["array"]].isel(sel).values)
        if want.dtype.kind == "f":
            ok = got.dtype.kind == "f" and got.dtype.itemsize >= want.dtype.itemsize and got.shape == want.shape \
                and np.array_equal(got.astype("f8"), want.astype("f8"), equal_nan=True)
        elif want.dtype.kind in "Mm":
            ok = got.dtype == want.dtype and np.array_equal(got.view("i8"), want.view("i8"))
        else:
            ok = got.dtype == want.dtype and np.array_equal(got, want)
    else:
        a = zarr.open_array(c["store"], path=c["array"], mode="r")
        idx = tuple(sel.get(dim, slice(None)) for dim in c["dims"]) if c["dims"] else ...
        want = np.ascontiguousarray(a[idx])
        want = want.astype(want.dtype.newbyteorder("<"))
        ok = got.dtype == want.dtype and got.shape == want.shape and (got.tobytes() == want.tobytes() or
            (want.dtype.kind == "f" and np.array_equal(got, want, equal_nan=True)))
    if not ok:
        print(f"FAIL {name}: got {got.dtype} {got.shape}, want {want.dtype} {want.shape}")
    n += 1
print(f"checked {n}")
`

// TestReadErrorsName checks that failures name the store, the array and
// the dimension at fault.
func TestReadErrorsName(t *testing.T) {
	store := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "ukv_nwp.zarr")
	out := filepath.Join(t.TempDir(), "x.npy")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{store, "UKV", "--isel", "nope=0:1", "-o", out}, []string{store, "UKV", "nope"}},
		{[]string{store, "UKV", "--isel", "step=99", "-o", out}, []string{store, "UKV", "step", "99"}}, // slices clip, as Python's; an index does not
		{[]string{store, "missing_array", "-o", out}, []string{store, "missing_array"}},
		{[]string{filepath.Join(store, "no_such"), "UKV", "-o", out}, []string{"no_such"}},
		{[]string{store, "UKV"}, []string{"-o"}},
	} {
		err := runRead(context.Background(), c.args, io.Discard)
		if err == nil {
			t.Errorf("loader read %v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("loader read %v: error %q does not name %q", c.args, err, w)
			}
		}
	}
}
