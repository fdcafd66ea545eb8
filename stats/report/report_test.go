package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// fiveMinutes is a time coordinate of 12 steps from 2021-01-01T00:00.
func fiveMinutes() ([]int64, error) {
	t0 := int64(1609459200) * 1e9
	out := make([]int64, 12)
	for i := range out {
		out[i] = t0 + int64(i)*300e9
	}
	return out, nil
}

func TestParseTimeRange(t *testing.T) {
	for _, tc := range []struct {
		sel         string
		start, stop int64
		err         string
	}{
		{"3:9", 3, 9, ""},
		{":4", 0, 4, ""},
		{"10:", 10, 12, ""},
		{"2021-01-01T00:10:2021-01-01T00:40", 2, 9, ""},
		{"2021-01-01T00:12:2021-01-01T00:14", 0, 0, "selects nothing"},
		{"2021-01-01T00:07:2021-01-01T00:20", 2, 5, ""},
		{"2020-12-31:2021-01-01T00:05:00Z", 0, 2, ""},
		{"5:2021-01-01T00:50", 5, 11, ""},
		{"9:3", 0, 0, "selects nothing"},
		{"0:13", 0, 0, "selects nothing"},
		{"-1:3", 0, 0, "selects nothing"},
		{"3", 0, 0, "START:END"},
		{"soon:later", 0, 0, "soon"},
	} {
		start, stop, err := parseTimeRange(tc.sel, 12, fiveMinutes)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %d:%d, %v; want an error mentioning %q", tc.sel, start, stop, err, tc.err)
			}
			continue
		}
		if err != nil || start != tc.start || stop != tc.stop {
			t.Errorf("%q: got %d:%d, %v; want %d:%d", tc.sel, start, stop, err, tc.start, tc.stop)
		}
	}
}

func FuzzParseTimeRange(f *testing.F) {
	for _, s := range []string{"3:9", ":", "2021-01-01T00:10:2021-01-01T00:40", "2020-12-31:", "::", "1:2:3", "-5:-1",
		"9223372036854775807:", "2262-04-12T00:00:2262-04-12", "2021-01-01T00:00:00.000000001Z:"} {
		f.Add(s, int64(12))
	}
	f.Fuzz(func(t *testing.T, sel string, n int64) {
		if n < 0 {
			n = -n
		}
		times := func() ([]int64, error) {
			if n > 1<<12 {
				return nil, errors.New("too long for the fuzzer")
			}
			out := make([]int64, n)
			for i := range out {
				out[i] = int64(1609459200)*1e9 + int64(i)*300e9
			}
			return out, nil
		}
		start, stop, err := parseTimeRange(sel, n, times)
		if err == nil && !(0 <= start && start < stop && stop <= n) {
			t.Fatalf("%q over %d steps: %d:%d accepted", sel, n, start, stop)
		}
	})
}

// packedScript writes with xarray's CF encoding an int16 variable packed
// with scale_factor, add_offset and _FillValue, and prints xarray's mean
// and std of its decoded values and of the stored integers.
const packedScript = `
import json, sys
import numpy as np, xarray as xr
rng = np.random.default_rng(2)
x = 280 + 8 * rng.standard_normal((4, 10, 12))
x[rng.random(x.shape) < 0.1] = np.nan
ds = xr.Dataset({"v": (("time", "y", "x"), x)})
enc = {"v": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": np.int16(-32768)}}
ds.to_zarr(sys.argv[1], encoding=enc, zarr_format=2, consolidated=False)
dec = xr.open_zarr(sys.argv[1], consolidated=False)["v"].values
raw = xr.open_zarr(sys.argv[1], consolidated=False, mask_and_scale=False)["v"].values.astype(np.float64)
print(json.dumps({"decoded": [float(np.nanmean(dec)), float(np.nanstd(dec))], "stored": [float(raw.mean()), float(raw.std())]}))
`

// TestRunDecodesCF: `loader stats` on a spec summarises a CF-packed
// source as xarray decodes it, and as stored with decode_cf: false; on a
// store likewise with DecodeCF.
func TestRunDecodesCF(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "packed.zarr")
	var want struct{ Decoded, Stored []float64 }
	if err := json.Unmarshal(testenv.RunPython(t, packedScript, store), &want); err != nil {
		t.Fatal(err)
	}
	open := func(_ context.Context, url string) (zarr.Store, error) { return dirstore.New(url), nil }
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }
	for _, tc := range []struct {
		name, decodeCF string
		want           []float64
	}{
		{"default", "", want.Decoded},
		{"decode_cf true", "decode_cf: true", want.Decoded},
		{"decode_cf false", "decode_cf: false", want.Stored},
	} {
		t.Run("spec "+tc.name, func(t *testing.T) {
			spec := filepath.Join(dir, "spec.yaml")
			text := fmt.Sprintf("sources:\n  v:\n    store: %s\n    array: v\n    crop: {time: 1, y: 4, x: 4}\n    %s\n", store, tc.decodeCF)
			if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Run(context.Background(), Request{Target: spec, Open: open}, &out); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Sources map[string]struct {
					Normalise struct{ Mean, Std []float64 }
				}
			}
			if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			n := got.Sources["v"].Normalise
			if len(n.Mean) != 1 || !near(n.Mean[0], tc.want[0]) || !near(n.Std[0], tc.want[1]) {
				t.Fatalf("normalise %+v, xarray mean and std %v", n, tc.want)
			}
		})
	}
	for _, decode := range []bool{true, false} {
		t.Run(fmt.Sprintf("store decode %v", decode), func(t *testing.T) {
			var out bytes.Buffer
			if err := Run(context.Background(), Request{Target: store, DecodeCF: decode, ChannelDim: "none", Open: open}, &out); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Variables map[string]struct{ Mean, Std []float64 }
			}
			if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			w := want.Stored
			if decode {
				w = want.Decoded
			}
			if v := got.Variables["v"]; len(v.Mean) != 1 || !near(v.Mean[0], w[0]) || !near(v.Std[0], w[1]) {
				t.Fatalf("got %+v, xarray mean and std %v", v, w)
			}
		})
	}
}

// FuzzParsePartial: whatever a partial statistics file holds, parsing
// either fails with an error or yields one that Merge can join.
func FuzzParsePartial(f *testing.F) {
	f.Add([]byte("partial:\n  target: x.zarr\n  kind: store\n  shard: 0/1\nvariables:\n  - name: a\n    dims: [t, c]\n    channel_dim: 1\n    shard_start: [0, 0]\n    shard_stop: [2, 1]\n    channels: [c0]\n    count: [2]\n    nan_count: [0]\n    mean: [1.5]\n    m2: [0.5]\n    min: [1]\n    max: [2]\n"))
	f.Add([]byte("partial: {target: s.yaml, kind: spec, shard: 1/2}\nvariables: [{source: nwp, name: UKV, dims: [a], channel_dim: -1, channels: [all], pick: [0], count: [0], nan_count: [3], mean: [0], m2: [0], min: [0], max: [0]}]\n"))
	f.Add([]byte("variables: {}"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, sh, err := parsePartial(data)
		if err != nil {
			return
		}
		if sh.Index < 0 || sh.Index >= sh.Count {
			t.Fatalf("shard %+v", sh)
		}
		if sh.Count != 1 {
			return
		}
		var out bytes.Buffer
		if err := Merge([]Part{{Name: "fuzz", Data: data}}, &out); err != nil {
			t.Fatalf("parsed %+v but Merge failed: %v", p, err)
		}
	})
}
