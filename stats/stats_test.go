package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// TestMergeIsStable checks that summaries merged from many uneven blocks
// equal one exact summary, also for data far from zero where the naive
// sum-of-squares formula loses every significant digit.
func TestMergeIsStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name          string
		offset, scale float64
		nanEvery      int
	}{
		{"unit", 0, 1, 0},
		{"large offset", 1e9, 1, 0},
		{"tiny spread", 300, 1e-6, 0},
		{"with NaNs", -50, 10, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := make([]float64, 10007)
			for i := range vals {
				vals[i] = tc.offset + tc.scale*rng.NormFloat64()
				if tc.nanEvery > 0 && i%tc.nanEvery == 3 {
					vals[i] = math.NaN()
				}
			}
			want := exactMoments(vals)
			var got Moments
			for i := 0; i < len(vals); {
				n := min(len(vals)-i, 1+rng.IntN(900))
				got.Merge(blockMoments(vals[i : i+n]))
				i += n
			}
			if got.Count != want.Count || got.NaNs != want.NaNs || got.Min != want.Min || got.Max != want.Max {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			if !close(got.Mean, want.Mean, 1e-14) || !close(got.Std(), want.Std(), 1e-9) {
				t.Fatalf("mean %v std %v, want %v %v", got.Mean, got.Std(), want.Mean, want.Std())
			}
		})
	}
}

// exactMoments is the textbook two-pass computation in extended precision
// via Kahan-compensated sums: slow and obviously right.
func exactMoments(vals []float64) Moments {
	m := Moments{Min: math.Inf(1), Max: math.Inf(-1)}
	var sum, c float64
	for _, v := range vals {
		if math.IsNaN(v) {
			m.NaNs++
			continue
		}
		m.Count++
		y := v - c
		s := sum + y
		c = (s - sum) - y
		sum = s
		m.Min, m.Max = math.Min(m.Min, v), math.Max(m.Max, v)
	}
	m.Mean = sum / float64(m.Count)
	sum, c = 0, 0
	for _, v := range vals {
		if math.IsNaN(v) {
			continue
		}
		y := (v-m.Mean)*(v-m.Mean) - c
		s := sum + y
		c = (s - sum) - y
		sum = s
	}
	m.M2 = sum
	return m
}

func close(a, b, rel float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))+1e-300
}

func TestMergeEmpty(t *testing.T) {
	var m Moments
	m.Merge(Moments{NaNs: 3})
	m.Merge(blockMoments([]float32{1, 2, 3}))
	m.Merge(Moments{})
	if m.Count != 3 || m.NaNs != 3 || m.Mean != 2 || m.Min != 1 || m.Max != 3 || !close(m.Std(), math.Sqrt(2.0/3), 1e-15) {
		t.Fatalf("got %+v", m)
	}
	if !math.IsNaN((Moments{}).Std()) {
		t.Fatal("std of nothing should be NaN")
	}
}

func TestHalfToFloat64(t *testing.T) {
	for _, tc := range []struct {
		bits uint16
		want float64
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x0001, math.Ldexp(1, -24)}, {0x7bff, 65504}, {0x0000, 0}, {0x7c00, math.Inf(1)}, {0x3555, 0.333251953125},
	} {
		if got := halfToFloat64(tc.bits); got != tc.want {
			t.Errorf("%#04x: got %v, want %v", tc.bits, got, tc.want)
		}
	}
	if !math.IsNaN(halfToFloat64(0x7e00)) {
		t.Error("0x7e00 should be NaN")
	}
}

// numpyStats is the reference: the selection read by zarr-python, per
// channel (the channel dim moved first), with numpy's nan-aware reductions.
const numpyStats = `
import json, sys, zarr, numpy as np
out = []
for job in json.loads(sys.argv[1]):
    a = zarr.open_array(job["path"], mode="r")
    sel = tuple(slice(s, e) for s, e in zip(job["start"], job["stop"])) if job["start"] else ()
    x = np.asarray(a[sel]).astype(np.float64)
    cd = job["channel_dim"]
    x = np.moveaxis(x, cd, 0).reshape(x.shape[cd], -1) if cd >= 0 else x.reshape(1, -1)
    res = []
    for c in x:
        ok = ~np.isnan(c)
        v = c[ok]
        res.append({"count": int(ok.sum()), "nans": int((~ok).sum()),
                    "mean": float(v.mean()) if v.size else None, "std": float(v.std()) if v.size else None,
                    "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None})
    out.append(res)
print(json.dumps(out))
`

type statsJob struct {
	Path       string  `json:"path"`
	Start      []int64 `json:"start"`
	Stop       []int64 `json:"stop"`
	ChannelDim int     `json:"channel_dim"`
	// what Go opens: store root and array path inside it
	store, array string
}

type refChannel struct {
	Count, NaNs         int64
	Mean, Std, Min, Max *float64
}

func checkAgainstNumpy(t *testing.T, jobs []statsJob) {
	t.Helper()
	arg, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]refChannel
	if err := json.Unmarshal(testenv.RunPython(t, numpyStats, string(arg)), &want); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, job := range jobs {
		t.Run(fmt.Sprintf("%s/%s/ch%d", filepath.Base(job.store), job.array, job.ChannelDim), func(t *testing.T) {
			a, err := zarr.OpenArray(ctx, dirstore.New(job.store), job.array)
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 3} {
				res, err := Compute(ctx, Input{Name: job.array, Array: a, ChannelDim: job.ChannelDim, Start: job.Start, Stop: job.Stop}, Options{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Channels) != len(want[i]) {
					t.Fatalf("%d channels, numpy has %d", len(res.Channels), len(want[i]))
				}
				for k, w := range want[i] {
					g := res.Channels[k]
					if g.Count != w.Count || g.NaNs != w.NaNs {
						t.Fatalf("workers %d channel %d: count %d nans %d, numpy %d %d", workers, k, g.Count, g.NaNs, w.Count, w.NaNs)
					}
					if w.Mean == nil {
						continue
					}
					if g.Min != *w.Min || g.Max != *w.Max || !close(g.Mean, *w.Mean, 1e-12) || !close(g.Std(), *w.Std, 1e-9) {
						t.Fatalf("workers %d channel %d: mean %v std %v min %v max %v, numpy %v %v %v %v",
							workers, k, g.Mean, g.Std(), g.Min, g.Max, *w.Mean, *w.Std, *w.Min, *w.Max)
					}
				}
				if res.Chunks == 0 || res.Read == 0 {
					t.Fatalf("no chunks accounted: %+v", res)
				}
			}
		})
	}
}

// TestComputeMatchesNumpyOnRealStores covers the real stores' main arrays
// with their natural channel dims, float and int dtypes, NaN fill, chunks
// bigger than the array and channel dims first, middle and last.
func TestComputeMatchesNumpyOnRealStores(t *testing.T) {
	real := testenv.RealData(t)
	job := func(store, array string, cd int, start, stop []int64) statsJob {
		s := filepath.Join(real, store)
		return statsJob{Path: filepath.Join(s, array), ChannelDim: cd, Start: start, Stop: stop, store: s, array: array}
	}
	checkAgainstNumpy(t, []statsJob{
		job("ocf-nowcasting-2023/ukv_nwp.zarr", "UKV", 1, nil, nil),                                              // per init_time
		job("ocf-nowcasting-2023/ukv_nwp.zarr", "UKV", 2, []int64{0, 2, 1, 100, 50}, []int64{1, 7, 4, 500, 333}), // a selection
		job("ocf-nowcasting-2023/seviri_nonhrv.zarr", "data", 3, nil, nil),                                       // int16, channel last
		job("ocf-nowcasting-2023/seviri_nonhrv_15min.zarr", "data", 0, nil, nil),                                 // float64 with NaN fill
		job("ocf-nowcasting-2021/seviri_nonhrv_stacked.zarr", "stacked_eumetsat_data", -1, []int64{5, 0, 0, 0}, []int64{40, 615, 298, 1}),
		job("ecmwf-earthkit/ecmwf_pl_analysis.zarr", "t", 1, nil, nil), // packed int16, per level
		job("ecmwf-earthkit/ecmwf_pl_forecast.zarr", "r", 2, nil, nil),
	})
}

// fixture writes, with zarr-python, arrays covering what real stores do not:
// a channel dim split across chunks, edge chunks, NaNs, missing chunks read
// as a non-zero fill value, sharding, float16 and unsigned ints.
const fixture = `
import sys, numpy as np, zarr
from zarr.codecs import ZstdCodec, BloscCodec
root = sys.argv[1]
rng = np.random.default_rng(3)
x = (rng.standard_normal((5, 7, 40, 30)) * 10 + 1e4).astype("float32")
x[1, 2, 3:9, 4] = np.nan
x[:, 5] = np.nan
a = zarr.create_array(root + "/v3.zarr", shape=x.shape, chunks=(2, 3, 16, 16), dtype="float32", fill_value=-999.0,
                      compressors=ZstdCodec(level=3), dimension_names=("time", "channel", "y", "x"))
a[:, :, :20, :] = x[:, :, :20, :]
s = zarr.create_array(root + "/sharded.zarr", shape=x.shape, chunks=(1, 7, 8, 8), shards=(2, 7, 16, 16), dtype="float32",
                      fill_value=float("nan"), dimension_names=("time", "channel", "y", "x"))
s[:4] = x[:4]
i = rng.integers(0, 60000, (9, 33, 4), dtype="uint16")
b = zarr.create_array(root + "/v2.zarr", shape=i.shape, chunks=(4, 10, 4), dtype="uint16", zarr_format=2,
                      compressors=None, fill_value=7)
b[:] = i
h = zarr.create_array(root + "/f16.zarr", shape=(3, 50), chunks=(2, 16), dtype="float16", fill_value=0)
h[:] = (rng.standard_normal((3, 50)) * 3).astype("float16")
`

func TestComputeMatchesNumpyOnZarrPythonFixture(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, fixture, dir)
	job := func(name string, cd int, start, stop []int64) statsJob {
		p := filepath.Join(dir, name)
		return statsJob{Path: p, ChannelDim: cd, Start: start, Stop: stop, store: p, array: ""}
	}
	checkAgainstNumpy(t, []statsJob{
		job("v3.zarr", 1, nil, nil),
		job("v3.zarr", 1, []int64{1, 2, 5, 0}, []int64{4, 6, 35, 29}),
		job("v3.zarr", -1, nil, nil),
		job("sharded.zarr", 1, nil, nil),
		job("sharded.zarr", 3, []int64{0, 0, 3, 5}, []int64{5, 7, 37, 27}),
		job("v2.zarr", 2, nil, nil),
		job("v2.zarr", 0, nil, nil),
		job("f16.zarr", 0, nil, nil),
	})
}

func TestComputeRejectsBadSelections(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, `import sys, zarr; zarr.create_array(sys.argv[1], shape=(4, 6), chunks=(2, 3), dtype="int32")[:] = 1`, dir+"/a.zarr")
	ctx := context.Background()
	a, err := zarr.OpenArray(ctx, dirstore.New(dir+"/a.zarr"), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"stop past the end", Input{Array: a, ChannelDim: -1, Start: []int64{0, 0}, Stop: []int64{5, 6}}},
		{"start after stop", Input{Array: a, ChannelDim: -1, Start: []int64{3, 0}, Stop: []int64{2, 6}}},
		{"wrong rank", Input{Array: a, ChannelDim: -1, Start: []int64{0}, Stop: []int64{4}}},
		{"channel dim out of range", Input{Array: a, ChannelDim: 2}},
	} {
		if _, err := Compute(ctx, tc.in, Options{}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Compute(cancelled, Input{Array: a, ChannelDim: -1}, Options{}); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestShardRangeCoversWholeChunks(t *testing.T) {
	for _, tc := range []struct{ start, stop, chunk int64 }{
		{0, 25, 7}, {3, 25, 7}, {3, 4, 7}, {0, 9, 1}, {5, 17, 5}, {0, 1, 17}, {2, 2, 3},
	} {
		for n := 1; n <= 6; n++ {
			next := tc.start
			for i := range n {
				lo, hi := Shard{Index: i, Count: n}.Range(tc.start, tc.stop, tc.chunk)
				if lo != next || hi < lo {
					t.Fatalf("%+v shard %d/%d: [%d, %d), want it to start at %d", tc, i, n, lo, hi, next)
				}
				if lo < hi && lo != tc.start && lo%tc.chunk != 0 {
					t.Fatalf("%+v shard %d/%d: [%d, %d) starts inside a chunk", tc, i, n, lo, hi)
				}
				next = hi
			}
			if next != tc.stop {
				t.Fatalf("%+v in %d shards ends at %d, want %d", tc, n, next, tc.stop)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Shard
		err  string
	}{
		{"0/3", Shard{0, 3}, ""},
		{"2/3", Shard{2, 3}, ""},
		{"0/1", Shard{0, 1}, ""},
		{"3/3", Shard{}, "0 ≤ I < N"},
		{"-1/3", Shard{}, "0 ≤ I < N"},
		{"1/0", Shard{}, "0 ≤ I < N"},
		{"1", Shard{}, "I/N"},
		{"a/3", Shard{}, "index"},
		{"1/b", Shard{}, "count"},
	} {
		got, err := ParseShard(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, %v; want an error mentioning %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("%q: got %v (%s), %v", tc.in, got, got, err)
		}
	}
}

func FuzzParseShard(f *testing.F) {
	for _, s := range []string{"0/3", "2/3", "3/3", "x", "1/", "/", " 1 / 2 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShard(s)
		if err != nil {
			return
		}
		if sh.Index < 0 || sh.Index >= sh.Count {
			t.Fatalf("%q parsed to %+v", s, sh)
		}
		lo, hi := sh.Range(0, 1000, 7)
		if lo < 0 || hi > 1000 || lo > hi {
			t.Fatalf("%q: range [%d, %d)", s, lo, hi)
		}
	})
}
