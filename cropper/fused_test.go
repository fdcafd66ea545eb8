package cropper

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/transform"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// makeGappyStoreScript writes a 4-D v3 array whose chunks are partly
// absent: argv path, dtype, fill value. Floats hold NaN; the chunks of the
// first two time steps at the top left are all fill, which zarr-python
// does not store.
const makeGappyStoreScript = `
import sys
import numpy as np, zarr
path, dtype, fill = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = np.random.default_rng(1)
data = (rng.standard_normal((6, 5, 40, 48)) * 100).astype(dtype)
if dtype.startswith("f"):
    data[rng.random(data.shape) < 0.05] = np.nan
data[:2, :, :16, :16] = fill
a = zarr.create_array(store=path, name="v", shape=data.shape, chunks=(2, 2, 16, 16), dtype=dtype,
                      fill_value=fill, dimension_names=("t", "c", "y", "x"))
a[:] = data
`

// elementwise computes, value by value, what a generic source's sample
// must hold: the array's value where the window lies inside it (from
// whole, the whole array as zarr reads it), padding elsewhere, each
// through the unfused steps and the encoder one at a time (raw: the
// stored value, the fill value as padding).
func elementwise(src *sampler.Source, whole []byte, w []int64, raw bool, outDType string) []byte {
	arr := src.Array
	dt := arr.DType
	nd := len(arr.Shape)
	var steps []transform.Step
	if src.Mean != nil {
		steps = append(steps, transform.NewNormalise(src.Mean, src.Std))
	}
	steps = append(steps, transform.Clip{Min: src.ClipMin, Max: src.ClipMax}, transform.FillNaN{Value: src.NaNFill})
	encode, size := transform.EncoderFor(outDType)
	decode := transform.Plain(dt)
	var out []byte
	idx := make([]int64, nd)
	for n := prod(src.Size); n > 0; n-- {
		inside, off := true, int64(0)
		for d := range nd {
			p := w[d] + idx[d]
			if p < 0 || p >= arr.Shape[d] {
				inside = false
			}
			off = off*arr.Shape[d] + p
		}
		var elem []byte
		if inside {
			elem = whole[off*int64(dt.Size) : (off+1)*int64(dt.Size)]
		}
		if raw {
			if elem == nil {
				elem = arr.Fill
			}
			out = append(out, elem...)
		} else {
			v := []float32{float32(nan32())}
			if elem != nil {
				decode(v, elem, dt.Size)
			}
			for _, s := range steps {
				s.Apply(v, transform.Row{})
			}
			b := make([]byte, size)
			encode(b, v)
			out = append(out, b...)
		}
		for d := nd - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < src.Size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

// withEdges returns samples followed by copies of them shifted partly or
// wholly outside the array along each dim (generic plans draw windows
// inside the array only), so that padding is cut too.
func withEdges(samples []sampler.Sample, src *sampler.Source) []sampler.Sample {
	out := slices.Clone(samples)
	for i, s := range samples {
		d := i % len(src.Size)
		for _, shift := range []int64{-src.Size[d] / 2, src.Array.Shape[d] - src.Size[d]/3, src.Array.Shape[d] + 1} {
			w := slices.Clone(s.Windows[0].Start)
			w[d] = shift
			if i%2 == 1 {
				// Outside along two dims at once.
				e := (d + 1) % len(w)
				w[e] = -1
			}
			s.Windows = []sampler.Window{{Start: w, AvailableT: s.Windows[0].AvailableT}}
			out = append(out, s)
		}
	}
	return out
}

func nan32() float32 {
	z := float32(0)
	return z / z
}

// TestCropMatchesElementwise checks the fused paths (NaN filled while
// copying into the output, rows stepped along H, steps and cast in one
// loop) against the value-by-value reference: NaN fill, fill-value and
// missing chunks, normalisation, clipping, float32/float16/bfloat16 and
// raw output, windows padded at the array's edges, batches cropped in
// groups, and a warm chunk cache.
func TestCropMatchesElementwise(t *testing.T) {
	ctx := context.Background()
	top := t
	stores := map[string]string{}
	for _, tc := range []struct {
		dtype, fill, out string
		source           string // extra source keys
		raw, grouped     bool
		cache            bool
	}{
		{"<f4", "nan", "float32", "nan_fill: 0", false, false, false},
		{"<f4", "nan", "float32", "nan_fill: 2.5", false, true, false},
		{"<f4", "nan", "float32", "nan_fill: -1", false, false, true},
		{"<f4", "nan", "bfloat16", "normalise: {mean: [3], std: [90], clip_min: -1.5, clip_max: 2}\n    nan_fill: -1", false, false, false},
		{"<f4", "nan", "float16", "normalise: {mean: [3], std: [90]}\n    nan_fill: 7", false, false, true},
		{"<f4", "0", "float32", "normalise: {mean: [0], std: [1], clip_min: -50, clip_max: 50}", false, true, false},
		{"<i2", "7", "float32", "normalise: {mean: [1], std: [30], clip_min: -3, clip_max: 3}", false, false, false},
		{"<i2", "7", "bfloat16", "", false, false, true},
		{"<f4", "nan", "raw", "", true, false, false},
		{"<i2", "7", "raw", "", true, true, false},
	} {
		name := fmt.Sprintf("%s fill=%s %s %q raw=%v grouped=%v cache=%v", tc.dtype, tc.fill, tc.out, tc.source, tc.raw, tc.grouped, tc.cache)
		t.Run(name, func(t *testing.T) {
			key := tc.dtype + tc.fill
			if stores[key] == "" {
				dir := filepath.Join(top.TempDir(), "s.zarr")
				testenv.RunPython(t, makeGappyStoreScript, dir, tc.dtype, tc.fill)
				stores[key] = dir
			}
			outDType := "float32"
			if !tc.raw {
				outDType = tc.out
			}
			spec := fmt.Sprintf(`
seed: 5
batch_size: 6
samples_per_epoch: 36
output_dtype: %s
sources:
  v:
    store: %s
    array: v
    crop: {t: 3, c: 3, y: 14, x: 20}
    %s
`, outDType, stores[key], tc.source)
			p := specPlan(t, spec)
			src := &p.Sources[0]
			whole := make([]byte, prod(src.Array.Shape)*int64(src.Array.DType.Size))
			all := zarr.Region{Start: make([]int64, len(src.Array.Shape)), Shape: src.Array.Shape}
			if _, err := src.Array.ReadRegions(ctx, []zarr.Region{all}, [][]byte{whole}); err != nil {
				t.Fatal(err)
			}
			opts := Options{Raw: tc.raw}
			if tc.cache {
				opts.Cache = pool.NewChunks(64 << 20)
			}
			c := New(p, opts)
			if tc.grouped {
				c.minScratch = 1
			}
			var clipped, unclipped, missing int64
			epochs := int64(1)
			if tc.cache {
				epochs = 2
			}
			var b Batch
			for epoch := range epochs {
				for samples := range p.Batches("train", epoch, 0, 1) {
					samples = withEdges(samples, src)
					if err := c.Crop(ctx, samples, &b); err != nil {
						t.Fatal(err)
					}
					missing += b.Stats.Missing
					per := int64(len(b.Data[0])) / int64(len(samples))
					for i, s := range samples {
						w := s.Windows[0].Start
						out := false
						for d := range w {
							out = out || w[d] < 0 || w[d]+src.Size[d] > src.Array.Shape[d]
						}
						if out {
							clipped++
						} else {
							unclipped++
						}
						want := elementwise(src, whole, w, tc.raw, outDType)
						if got := b.Data[0][int64(i)*per : int64(i+1)*per]; !bytes.Equal(got, want) {
							t.Fatalf("epoch %d sample %d at %v: differs from the value-by-value reference", epoch, s.Index, w)
						}
					}
				}
			}
			if clipped == 0 || unclipped == 0 || missing == 0 {
				t.Errorf("%d padded windows, %d inside, %d missing chunks: want some of each", clipped, unclipped, missing)
			}
		})
	}
}
