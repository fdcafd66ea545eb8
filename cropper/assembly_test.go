package cropper

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// BenchmarkAssemblyWarm crops the real UKV + SEVIRI experiment (float32
// normalised; int16 normalised, clipped, with dropout) from a chunk cache
// warmed with the whole epoch first, so that what is timed is the copy out
// of decoded chunks and the transform pass, not decoding. Compare it with
// an older build of the same benchmark to see what assembly costs.
func BenchmarkAssemblyWarm(b *testing.B) {
	ctx := context.Background()
	p := joinedPlan(b, 0)
	c, all, batch := warmCropper(ctx, b, p)
	var n int64
	for _, d := range batch.Data {
		n += int64(len(d))
	}
	b.SetBytes(n)
	b.ReportAllocs()
	cropWarm(ctx, b, c, all, batch)
}

// warmCropper is a cropper for p whose chunk cache holds every chunk of
// the epoch's batches, which it returns with the last batch cropped.
func warmCropper(ctx context.Context, b *testing.B, p *sampler.Plan) (*Cropper, [][]sampler.Sample, *Batch) {
	c := New(p, Options{Cache: pool.NewChunks(1 << 30)})
	var all [][]sampler.Sample
	for s := range p.Batches("train", 0, 0, 1) {
		all = append(all, s)
	}
	batch := new(Batch)
	for _, samples := range all {
		if err := c.Crop(ctx, samples, batch); err != nil {
			b.Fatal(err)
		}
	}
	return c, all, batch
}

// cropWarm times c cropping the batches all in turn, every chunk from its
// warm cache, reporting CPU time per batch beside wall time: on a machine
// that others share, it varies far less.
func cropWarm(ctx context.Context, b *testing.B, c *Cropper, all [][]sampler.Sample, batch *Batch) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for i := 0; b.Loop(); i++ {
		if err := c.Crop(ctx, all[i%len(all)], batch); err != nil {
			b.Fatal(err)
		}
		if batch.Stats.CacheHits != batch.Stats.Chunks {
			b.Fatalf("%d of %d chunks from the cache: the cache is not warm", batch.Stats.CacheHits, batch.Stats.Chunks)
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkCropGenericWarm is BenchmarkCropGeneric's crops from a chunk
// cache warmed with the whole epoch: the copy out of decoded chunks, the
// NaN fill (float32: straight into the output) and the transform pass
// (bfloat16), without decoding.
func BenchmarkCropGenericWarm(b *testing.B) {
	store := writeBenchStore(b)
	ctx := context.Background()
	for _, out := range []string{"float32", "bfloat16"} {
		b.Run(out, func(b *testing.B) {
			p := genericBenchPlan(b, store, out)
			c, all, batch := warmCropper(ctx, b, p)
			b.SetBytes(int64(len(batch.Data[0])))
			b.ReportAllocs()
			cropWarm(ctx, b, c, all, batch)
		})
	}
}
