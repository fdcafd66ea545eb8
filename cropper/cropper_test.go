package cropper

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// makeStoreScript writes a small 4-D array with zarr-python: argv path,
// zarr format, dtype.
const makeStoreScript = `
import sys
import numpy as np, zarr
path, fmt, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
data = (rng.standard_normal((6, 5, 40, 48)) * 100).astype(dtype)
if dtype.startswith("f"):
    data[rng.random(data.shape) < 0.05] = np.nan
kw = dict(shape=data.shape, chunks=(2, 2, 16, 16), dtype=dtype, zarr_format=fmt)
if fmt == 3:
    kw["dimension_names"] = ("t", "c", "y", "x")
a = zarr.create_array(store=path, name="v", **kw)
if fmt == 2:
    a.attrs["_ARRAY_DIMENSIONS"] = ["t", "c", "y", "x"]
a[:] = data
`

func writeStore(t testing.TB, format int, dtype string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s.zarr")
	testenv.RunPython(t, makeStoreScript, dir, fmt.Sprint(format), dtype)
	return dir
}

func open(ctx context.Context, url string) (zarr.Store, error) {
	if _, err := os.Stat(url); err != nil {
		return nil, err
	}
	return dirstore.New(url), nil
}

func genericPlan(t testing.TB, store, extra string) *sampler.Plan {
	t.Helper()
	spec := fmt.Sprintf(`
seed: 9
batch_size: 5
samples_per_epoch: 40
%s
sources:
  v:
    store: %s
    array: v
    crop: {t: 2, c: 3, y: 12, x: 10}
`, extra, store)
	s, err := sampler.ParseSpec([]byte(spec), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := sampler.NewPlan(context.Background(), s, open)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkGenericScript compares a batch written as raw little-endian bytes
// with zarr-python's reads at the windows. argv: store, batch file, starts
// (flattened, 4 per sample), output dtype.
const checkGenericScript = `
import sys
import numpy as np, zarr
a = zarr.open_array(sys.argv[1] + "/v", mode="r")
starts = np.array([int(s) for s in sys.argv[3].split(",")]).reshape(-1, 4)
out = sys.argv[4]
size = (2, 3, 12, 10)
raw = np.fromfile(sys.argv[2], dtype={"raw": a.dtype, "float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}[out])
raw = raw.reshape((len(starts),) + size)
for i, st in enumerate(starts):
    want = a[tuple(slice(s, s + n) for s, n in zip(st, size))]
    got = raw[i]
    if out == "raw":
        assert np.array_equal(got, want, equal_nan=True), i
        continue
    want = want.astype(np.float32)
    want = np.where(np.isnan(want), np.float32(0), want)
    if out == "float32":
        assert np.array_equal(got, want), i
    elif out == "float16":
        assert np.array_equal(got, want.astype(np.float16)), i
    else:
        import torch
        bf = torch.from_numpy(want).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        assert np.array_equal(got, bf), (i, np.argwhere(got != bf)[:3])
print("ok")
`

func TestGenericCropMatchesZarrPython(t *testing.T) {
	ctx := context.Background()
	top := t
	stores := map[string]string{}
	for _, tc := range []struct {
		format int
		dtype  string
		out    string
		raw    bool
		// grouped crops each batch in many groups of samples, as big
		// batches are (see cropSource).
		grouped bool
	}{
		{3, "<f4", "float32", false, false},
		{3, "<f4", "raw", true, false},
		{2, "<i2", "raw", true, false},
		{2, "<i2", "float32", false, false},
		{3, "<f4", "float16", false, false},
		{3, "<f8", "bfloat16", false, false},
		{2, "<i2", "float32", false, true},
		{3, "<f8", "bfloat16", false, true},
	} {
		t.Run(fmt.Sprintf("v%d %s %s grouped=%v", tc.format, tc.dtype, tc.out, tc.grouped), func(t *testing.T) {
			key := fmt.Sprint(tc.format, tc.dtype)
			if stores[key] == "" {
				stores[key] = writeStore(top, tc.format, tc.dtype)
			}
			store := stores[key]
			dt := ""
			if !tc.raw {
				dt = "output_dtype: " + tc.out
			}
			p := genericPlan(t, store, dt)
			c := New(p, Options{Raw: tc.raw})
			if tc.grouped {
				c.minScratch = 1
			}
			var b Batch
			var starts []byte
			var all []byte
			batches := 0
			for samples := range p.Batches("train", 0, 0, 1) {
				if err := c.Crop(ctx, samples, &b); err != nil {
					t.Fatal(err)
				}
				all = append(all, b.Data[0]...)
				for _, s := range samples {
					for _, v := range s.Windows[0].Start {
						starts = fmt.Appendf(starts, "%d,", v)
					}
				}
				if !tc.grouped { // groups may read a shared chunk once each
					checkStats(t, p, samples, b.Stats)
				}
				batches++
			}
			if batches != 8 {
				t.Fatalf("%d batches, want 8", batches)
			}
			file := filepath.Join(t.TempDir(), "batch.bin")
			if err := os.WriteFile(file, all, 0o644); err != nil {
				t.Fatal(err)
			}
			testenv.RunPython(t, checkGenericScript, store, file, string(starts[:len(starts)-1]), tc.out)
		})
	}
}

// checkStats counts, independently of zarr, the chunks the samples'
// windows (clipped to their arrays) overlap, and checks that the batch read
// each once.
func checkStats(t testing.TB, p *sampler.Plan, samples []sampler.Sample, st Stats) {
	t.Helper()
	var chunks, maxDecoded, delivered int64
	for k, src := range p.Sources {
		nd := len(src.Size)
		seen := map[string]bool{}
		cur := make([]int64, nd)
		var visit func(d int, lo, hi []int64)
		visit = func(d int, lo, hi []int64) {
			if d == nd {
				seen[fmt.Sprint(cur)] = true
				return
			}
			cs := src.Array.ReadChunkShape[d]
			for i := lo[d] / cs; i <= (hi[d]-1)/cs; i++ {
				cur[d] = i
				visit(d+1, lo, hi)
			}
		}
		for _, s := range samples {
			lo, hi := make([]int64, nd), make([]int64, nd)
			n := int64(src.Array.DType.Size)
			for d := range nd {
				lo[d] = max(s.Windows[k].Start[d], 0)
				hi[d] = min(s.Windows[k].Start[d]+src.Size[d], src.Array.Shape[d])
				n *= max(hi[d]-lo[d], 0)
			}
			if n > 0 {
				visit(0, lo, hi)
			}
			delivered += n
		}
		chunkBytes := int64(src.Array.DType.Size)
		for _, n := range src.Array.ReadChunkShape {
			chunkBytes *= n
		}
		chunks += int64(len(seen))
		maxDecoded += int64(len(seen)) * chunkBytes
	}
	if st.Chunks != chunks {
		t.Errorf("stats say %d chunks, the windows overlap %d", st.Chunks, chunks)
	}
	if st.BytesDecoded > maxDecoded {
		t.Errorf("decoded %d bytes, more than the %d chunks hold (%d)", st.BytesDecoded, chunks, maxDecoded)
	}
	if st.BytesDelivered != delivered {
		t.Errorf("delivered %d bytes, want %d", st.BytesDelivered, delivered)
	}
	if st.ReadAmplification() <= 0 {
		t.Errorf("read amplification %v", st.ReadAmplification())
	}
}

// TestJoinedCropReadsEachChunkOnce crops batches of the real UKV + SEVIRI
// experiment and checks the read accounting against an independent count.
func TestJoinedCropReadsEachChunkOnce(t *testing.T) {
	testenv.RealData(t)
	path := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := sampler.ParseSpec(data, filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sampler.NewPlan(context.Background(), spec, open)
	if err != nil {
		t.Fatal(err)
	}
	c := New(p, Options{})
	var b Batch
	n := 0
	for samples := range p.Batches("train", 0, 0, 4) {
		if err := c.Crop(context.Background(), samples, &b); err != nil {
			t.Fatal(err)
		}
		checkStats(t, p, samples, b.Stats)
		n++
	}
	if n == 0 {
		t.Fatal("no batches")
	}
	t.Logf("%d batches; last: %+v, read amplification %.1f", n, b.Stats, b.Stats.ReadAmplification())
}

// BenchmarkCropGeneric crops 8 × (12, 12, 64, 64) float32 windows per
// batch from zstd-compressed (1, 12, 128, 128) chunks. The reference is the
// bare zarr ReadRegions of the same windows, the floor the cropper adds to.
func BenchmarkCropGeneric(b *testing.B) {
	store := writeBenchStore(b)
	ctx := context.Background()
	for _, out := range []string{"float32", "bfloat16", "reference-ReadRegions"} {
		b.Run(out, func(b *testing.B) {
			dt := out
			if out == "reference-ReadRegions" {
				dt = "float32"
			}
			p := genericBenchPlan(b, store, dt)
			var all [][]sampler.Sample
			for s := range p.Batches("train", 0, 0, 1) {
				all = append(all, s)
			}
			c := New(p, Options{})
			var batch Batch
			if err := c.Crop(ctx, all[0], &batch); err != nil {
				b.Fatal(err)
			}
			src := p.Sources[0]
			regions := make([][]zarr.Region, len(all))
			for i, samples := range all {
				for _, s := range samples {
					regions[i] = append(regions[i], zarr.Region{Start: s.Windows[0].Start, Shape: src.Size})
				}
			}
			dsts := make([][]byte, len(all[0]))
			for i := range dsts {
				dsts[i] = make([]byte, prod(src.Size)*4)
			}
			b.SetBytes(int64(len(all[0])) * prod(src.OutShape) * 4)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if out == "reference-ReadRegions" {
					if _, err := src.Array.ReadRegions(ctx, regions[i%len(all)], dsts); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := c.Crop(ctx, all[i%len(all)], &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(batch.Stats.ReadAmplification(), "read-amp")
		})
	}
}

const makeBenchStoreScript = `
import sys
import numpy as np, zarr
rng = np.random.default_rng(0)
data = rng.standard_normal((24, 12, 256, 256)).astype("<f4")
a = zarr.create_array(store=sys.argv[1], name="v", shape=data.shape, chunks=(1, 12, 128, 128), dtype="<f4",
                      dimension_names=("t", "c", "y", "x"))
a[:] = data
`

func writeBenchStore(b *testing.B) string {
	dir := filepath.Join(b.TempDir(), "bench.zarr")
	testenv.RunPython(b, makeBenchStoreScript, dir)
	return dir
}

func genericBenchPlan(b *testing.B, store, dtype string) *sampler.Plan {
	spec := fmt.Sprintf(`
seed: 1
output_dtype: %s
batch_size: 8
samples_per_epoch: 64
sources:
  v:
    store: %s
    array: v
    crop: {t: 12, c: 12, y: 64, x: 64}
`, dtype, store)
	s, err := sampler.ParseSpec([]byte(spec), "")
	if err != nil {
		b.Fatal(err)
	}
	p, err := sampler.NewPlan(context.Background(), s, open)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
