package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/sampler"
)

type storeStatsYAML struct {
	Variables map[string]struct {
		Dims       []string  `yaml:"dims"`
		ChannelDim string    `yaml:"channel_dim"`
		Channels   []string  `yaml:"channels"`
		Count      []int64   `yaml:"count"`
		NaNCount   []int64   `yaml:"nan_count"`
		Mean       []float64 `yaml:"mean"`
		Std        []float64 `yaml:"std"`
		Min        []float64 `yaml:"min"`
		Max        []float64 `yaml:"max"`
	} `yaml:"variables"`
}

type refStats struct {
	Count, NaNs         []int64
	Mean, Std, Min, Max []float64
}

func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

// statsFixture is a small satellite-like store written by zarr-python: a
// channel dim with labels in the middle, a CF time coordinate, NaNs, a
// coordinate array that must not be summarised, and missing chunks read as
// a non-zero fill value.
const statsFixture = `
import sys, numpy as np, xarray as xr
rng = np.random.default_rng(5)
x = (rng.standard_normal((12, 3, 20, 24)) * 4 + 280).astype("float32")
x[2, 1, :5, :5] = np.nan
ds = xr.Dataset({"data": (("time", "channel", "y", "x"), x)},
                coords={"time": np.datetime64("2021-01-01T00:00", "ns") + np.arange(12) * np.timedelta64(5, "m"),
                        "channel": ["IR_108", "VIS006", "WV_062"], "y": np.arange(20.0), "x": np.arange(24.0)})
ds.to_zarr(sys.argv[1], encoding={"data": {"chunks": (5, 2, 8, 8)}}, zarr_format=3, consolidated=True)
`

// statsRef is numpy's answer over xarray's selection, per channel.
const statsRef = `
import json, sys, numpy as np, xarray as xr
da = xr.open_zarr(sys.argv[1], mask_and_scale=False)[sys.argv[2]]
sel = json.loads(sys.argv[4])
da = da.sel({k: slice(*v) for k, v in sel.items() if isinstance(v[0], str)}).isel({k: slice(*v) for k, v in sel.items() if not isinstance(v[0], str)})
x = np.asarray(da.values, dtype=np.float64)
cd = da.dims.index(sys.argv[3]) if sys.argv[3] else -1
x = np.moveaxis(x, cd, 0).reshape(x.shape[cd], -1) if cd >= 0 else x.reshape(1, -1)
ok = ~np.isnan(x)
out = {"Count": ok.sum(1).tolist(), "NaNs": (~ok).sum(1).tolist(),
       "Mean": [float(np.nanmean(c)) for c in x], "Std": [float(np.nanstd(c)) for c in x],
       "Min": [float(np.nanmin(c)) for c in x], "Max": [float(np.nanmax(c)) for c in x]}
print(json.dumps(out))
`

func TestStatsStoreMatchesNumpy(t *testing.T) {
	store := filepath.Join(t.TempDir(), "sat.zarr")
	testenv.RunPython(t, statsFixture, store)
	for _, tc := range []struct {
		name string
		args []string
		sel  string // statsRef selection, JSON
	}{
		{"whole", nil, `{}`},
		{"time by index", []string{"--time", "3:9"}, `{"time": [3, 9]}`},
		{"time by label", []string{"--time", "2021-01-01T00:10:2021-01-01T00:40"}, `{"time": ["2021-01-01T00:10", "2021-01-01T00:40"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runStats(context.Background(), append([]string{store}, tc.args...), &out); err != nil {
				t.Fatal(err)
			}
			var got storeStatsYAML
			if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out.String())
			}
			if len(got.Variables) != 1 {
				t.Fatalf("want only the data variable, got %v", got.Variables)
			}
			v := got.Variables["data"]
			if v.ChannelDim != "channel" || strings.Join(v.Channels, ",") != "IR_108,VIS006,WV_062" {
				t.Fatalf("channel dim %q labels %v", v.ChannelDim, v.Channels)
			}
			var want refStats
			if err := json.Unmarshal(testenv.RunPython(t, statsRef, store, "data", "channel", tc.sel), &want); err != nil {
				t.Fatal(err)
			}
			for k := range want.Count {
				if v.Count[k] != want.Count[k] || v.NaNCount[k] != want.NaNs[k] || v.Min[k] != want.Min[k] || v.Max[k] != want.Max[k] ||
					!near(v.Mean[k], want.Mean[k], 1e-8) || !near(v.Std[k], want.Std[k], 1e-8) {
					t.Fatalf("channel %d: got count %d nan %d mean %v std %v min %v max %v; numpy %+v",
						k, v.Count[k], v.NaNCount[k], v.Mean[k], v.Std[k], v.Min[k], v.Max[k], want)
				}
			}
		})
	}
}

// TestStatsSpecPlugsIntoSpec runs the real UKV + SEVIRI example over its
// train period: the output's normalise sections equal numpy's statistics of
// the spec's channels and, pasted into the spec, still parse.
func TestStatsSpecPlugsIntoSpec(t *testing.T) {
	testenv.RealData(t)
	specPath := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	var out bytes.Buffer
	if err := runStats(context.Background(), []string{specPath, "--time", "2020-04-01T12:00:2020-04-01T13:30"}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Sources map[string]struct {
			Normalise struct{ Mean, Std []float64 } `yaml:"normalise"`
		} `yaml:"sources"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out.String())
	}
	real := testenv.RealData(t)
	for _, tc := range []struct{ source, store, array, channelDim, sel string }{
		{"sat", "ocf-nowcasting-2023/seviri_nonhrv.zarr", "data", "variable", `{"time": ["2020-04-01T12:00", "2020-04-01T13:30"]}`},
		{"nwp", "ocf-nowcasting-2023/ukv_nwp.zarr", "UKV", "variable", `{"init_time": ["2020-04-01T12:00", "2020-04-01T13:30"]}`},
	} {
		var want refStats
		if err := json.Unmarshal(testenv.RunPython(t, statsRef, filepath.Join(real, tc.store), tc.array, tc.channelDim, tc.sel), &want); err != nil {
			t.Fatal(err)
		}
		n := got.Sources[tc.source].Normalise
		if len(n.Mean) != 1 || len(n.Std) != 1 || !near(n.Mean[0], want.Mean[0], 1e-8) || !near(n.Std[0], want.Std[0], 1e-8) {
			t.Fatalf("%s: normalise %+v, numpy mean %v std %v", tc.source, n, want.Mean, want.Std)
		}
	}

	// Paste the fragment into the spec: it must still parse.
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var frag map[string]map[string]map[string]any
	if err := yaml.Unmarshal(out.Bytes(), &frag); err != nil {
		t.Fatal(err)
	}
	for name, src := range frag["sources"] {
		spec["sources"].(map[string]any)[name].(map[string]any)["normalise"] = src["normalise"]
	}
	merged, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sampler.ParseSpec(merged, filepath.Dir(specPath)); err != nil {
		t.Fatalf("spec with the computed normalisation: %v", err)
	}
}

func TestStatsRejectsBadArguments(t *testing.T) {
	store := filepath.Join(t.TempDir(), "sat.zarr")
	testenv.RunPython(t, statsFixture, store)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", nil, "SPEC or STORE"},
		{"missing store", []string{filepath.Join(t.TempDir(), "nope.zarr")}, "nope.zarr"},
		{"unknown variable", []string{store, "--variables", "temp"}, "temp"},
		{"unknown channel dim", []string{store, "--channel-dim", "band"}, "band"},
		{"bad time", []string{store, "--time", "yesterday:today"}, "yesterday"},
		{"empty time range", []string{store, "--time", "2030-01-01:2030-02-01"}, "selects nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runStats(context.Background(), tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStatsShardsMergeToWhole computes the real sample data in 3 shards
// (whole chunks along time) and merges them, files in any order: the
// result equals the unsharded run to 1e-9, for a spec and for stores.
func TestStatsShardsMergeToWhole(t *testing.T) {
	real := testenv.RealData(t)
	spec := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"spec train period", []string{spec, "--time", "2020-04-01T12:00:2020-04-01T13:30"}},
		{"spec whole stores", []string{spec}},
		{"seviri store", []string{filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr")}},
		{"seviri store from index 3", []string{filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr"), "--time", "3:25"}},
		{"ecmwf forecast, two variables", []string{filepath.Join(real, "ecmwf-earthkit", "ecmwf_pl_forecast.zarr")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var whole bytes.Buffer
			if err := runStats(ctx, tc.args, &whole); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			const n = 3
			var parts []string
			for i := n - 1; i >= 0; i-- { // reversed: the merge must not depend on the files' order
				p := filepath.Join(dir, fmt.Sprintf("part%d.yaml", i))
				if err := runStats(ctx, append(slices.Clone(tc.args), "-shard", fmt.Sprintf("%d/%d", i, n), "-o", p), io.Discard); err != nil {
					t.Fatal(err)
				}
				parts = append(parts, p)
			}
			out := filepath.Join(dir, "merged.yaml")
			if err := runStats(ctx, append([]string{"merge"}, append(parts, "-o", out)...), io.Discard); err != nil {
				t.Fatal(err)
			}
			merged, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			assertSameStats(t, whole.Bytes(), merged)
		})
	}
}

// assertSameStats compares two outputs of loader stats: counts, min and max
// exactly, mean and std to 1e-9 relative.
func assertSameStats(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g map[string]any
	if err := yaml.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(got, &g); err != nil {
		t.Fatalf("merged output is not YAML: %v\n%s", err, got)
	}
	var compare func(path string, w, g any)
	compare = func(path string, w, g any) {
		switch w := w.(type) {
		case map[string]any:
			gm, ok := g.(map[string]any)
			if !ok || len(gm) != len(w) {
				t.Fatalf("%s: got %v, want %v", path, g, w)
			}
			for k, v := range w {
				compare(path+"."+k, v, gm[k])
			}
		case []any:
			gl, ok := g.([]any)
			if !ok || len(gl) != len(w) {
				t.Fatalf("%s: got %v, want %v", path, g, w)
			}
			for i := range w {
				compare(fmt.Sprintf("%s[%d]", path, i), w[i], gl[i])
			}
		case float64:
			gf, ok := g.(float64)
			exact := strings.HasSuffix(path, "]") && (strings.Contains(path, ".min[") || strings.Contains(path, ".max["))
			if !ok || (exact && gf != w) || (!exact && !near(gf, w, 1e-9) && !(math.IsNaN(gf) && math.IsNaN(w))) {
				t.Fatalf("%s: got %v, want %v", path, g, w)
			}
		default:
			if g != w {
				t.Fatalf("%s: got %v (%T), want %v (%T)", path, g, g, w, w)
			}
		}
	}
	compare("", w, g)
	// The comments (count, NaN, min, max of a spec's channels) match too.
	comments := func(b []byte) (out []string) {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "#") && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	if !slices.Equal(comments(want), comments(got)) {
		t.Fatalf("comments differ:\n%s\nagainst\n%s", got, want)
	}
}

func TestStatsMergeRejectsBadParts(t *testing.T) {
	store := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	other := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv_15min.zarr")
	dir := t.TempDir()
	part := func(target, shard string, extra ...string) string {
		p := filepath.Join(dir, strings.ReplaceAll(filepath.Base(target)+shard+strings.Join(extra, ""), "/", "of")+".yaml")
		if err := runStats(context.Background(), append([]string{target, "-shard", shard, "-o", p}, extra...), io.Discard); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p0, p1, p2 := part(store, "0/3"), part(store, "1/3"), part(store, "2/3")
	q1 := part(other, "1/3")
	t1 := part(store, "1/3", "--time", "0:20")
	whole := filepath.Join(dir, "whole.yaml")
	if err := runStats(context.Background(), []string{store, "-o", whole}, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no files", []string{"merge"}, "partial statistics files"},
		{"missing shard", []string{"merge", p0, p2}, "missing shard 1/3"},
		{"duplicate shard", []string{"merge", p0, p1, p1, p2}, "both shard 1/3"},
		{"another store", []string{"merge", p0, q1, p2}, "not the same run"},
		{"another time range", []string{"merge", p0, t1, p2}, "not the same run"},
		{"a full output", []string{"merge", p0, whole}, "not partial statistics"},
		{"missing file", []string{"merge", p0, filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"bad shard", []string{store, "-shard", "3/3"}, "-shard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runStats(context.Background(), tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStatsShardsOverS3 runs the README's cluster recipe on MinIO: 3 shards
// of a real store read from S3, merged, equal the local unsharded run.
func TestStatsShardsOverS3(t *testing.T) {
	real := testenv.RealData(t)
	minio := testenv.StartMinIO(t)
	minio.Upload(t, "real", filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr"), "seviri_nonhrv.zarr")
	t.Setenv("AWS_ENDPOINT_URL", minio.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", minio.Region)
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	ctx := context.Background()
	sel := []string{"--time", "2020-04-01T12:10:2020-04-01T13:50"}
	var whole bytes.Buffer
	if err := runStats(ctx, append([]string{filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr")}, sel...), &whole); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	merge := []string{"merge"}
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("part-%d.yaml", i))
		args := append([]string{"s3://real/seviri_nonhrv.zarr", "-shard", fmt.Sprintf("%d/3", i), "-o", p}, sel...)
		if err := runStats(ctx, args, io.Discard); err != nil {
			t.Fatal(err)
		}
		merge = append(merge, p)
	}
	var merged bytes.Buffer
	if err := runStats(ctx, merge, &merged); err != nil {
		t.Fatal(err)
	}
	assertSameStats(t, whole.Bytes(), merged.Bytes())
}
