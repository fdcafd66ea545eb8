package cropper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// joinedPlan is the real UKV + SEVIRI experiment, with locality k when
// k > 1.
// joinedPlan is the real joined experiment, in the blocked order with
// that pool when pool > 0.
func joinedPlan(tb testing.TB, pool int64) *sampler.Plan {
	tb.Helper()
	testenv.RealData(tb)
	path := filepath.Join(testenv.ModuleRoot(tb), "examples", "real_ukv_seviri.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	spec, err := sampler.ParseSpec(data, filepath.Dir(path))
	if err != nil {
		tb.Fatal(err)
	}
	if pool > 0 {
		spec.Order = sampler.OrderSpec{Mode: sampler.OrderBlocked, Pool: sampler.ByteSize(pool)}
	}
	p, err := sampler.NewPlan(context.Background(), spec, open)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestCacheMatchesUncached crops two epochs of the real joined experiment
// with and without a chunk cache: the tensors must be identical, and the
// second epoch must find chunks in the cache.
func TestCacheMatchesUncached(t *testing.T) {
	p := joinedPlan(t, 0)
	ctx := context.Background()
	plain := New(p, Options{})
	cached := New(p, Options{Cache: pool.NewChunks(256 << 20)})
	var want, got Batch
	for epoch := range int64(2) {
		var hits int64
		for samples := range p.Batches("train", epoch, 0, 1) {
			if err := plain.Crop(ctx, samples, &want); err != nil {
				t.Fatal(err)
			}
			if err := cached.Crop(ctx, samples, &got); err != nil {
				t.Fatal(err)
			}
			for k := range want.Data {
				if !bytes.Equal(got.Data[k], want.Data[k]) {
					t.Fatalf("epoch %d batch at %d: source %s differs with the cache", epoch, samples[0].Index, p.Sources[k].Name)
				}
			}
			hits += got.Stats.CacheHits
		}
		if epoch == 1 && hits == 0 {
			t.Errorf("epoch %d: no cache hits", epoch)
		}
	}
}

// BenchmarkCropJoined crops the real UKV + SEVIRI experiment: iid, iid
// with a chunk cache (whose benefit depends on how much of the data the
// budget holds), and in the blocked order with its pool. The plain case is
// the reference.
func BenchmarkCropJoined(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		blocked bool
		cache   int64
	}{{false, 0}, {false, 64 << 20}, {false, 256 << 20}, {true, 64 << 20}} {
		b.Run(fmt.Sprintf("blocked=%v/cache=%dMiB", tc.blocked, tc.cache>>20), func(b *testing.B) {
			var p *sampler.Plan
			if tc.blocked {
				p = joinedPlan(b, tc.cache)
			} else {
				p = joinedPlan(b, 0)
			}
			var opts Options
			if tc.cache > 0 {
				opts.Cache = pool.NewChunks(tc.cache)
			}
			c := New(p, opts)
			var all [][]sampler.Sample
			for s := range p.Batches("train", 0, 0, 1) {
				all = append(all, s)
			}
			var batch Batch
			var st Stats
			var crops int64
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				samples := all[i%len(all)]
				if err := c.Crop(ctx, samples, &batch); err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					var n int64
					for _, d := range batch.Data {
						n += int64(len(d))
					}
					b.SetBytes(n)
				}
				st.Chunks += batch.Stats.Chunks
				st.CacheHits += batch.Stats.CacheHits
				st.BytesDecoded += batch.Stats.BytesDecoded
				st.BytesDelivered += batch.Stats.BytesDelivered
				crops += int64(len(samples))
			}
			b.ReportMetric(st.ReadAmplification(), "read-amp")
			b.ReportMetric(float64(st.Chunks)/float64(crops), "chunks/crop")
			b.ReportMetric(float64(st.CacheHits)/float64(max(st.Chunks, 1)), "hit-rate")
			b.ReportMetric(float64(crops)/b.Elapsed().Seconds(), "crops/s")
		})
	}
}
