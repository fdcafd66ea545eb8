package zarr

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
)

// TestChunkCacheReadsMatch reads the same crops with and without a cache,
// several times over, and checks that the bytes agree, that repeated crops
// hit the cache instead of the store, and that the cache keeps to its
// budget when it cannot hold every chunk.
func TestChunkCacheReadsMatch(t *testing.T) {
	ctx := context.Background()
	const n, c = 256, 64
	chunkBytes := int64(c * c * 4)
	for _, tc := range []struct {
		name      string
		blockSize int
		budget    int64
	}{
		{"blosc/all-fit", 1024, 64 * chunkBytes},
		{"uncompressed/all-fit", -1, 64 * chunkBytes},
		{"blosc/evicting", 1024, 3 * chunkBytes},
		{"blosc/smaller-than-a-chunk", 1024, chunkBytes / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := OpenArray(ctx, dirstore.New(writeV2Store(t, n, c, tc.blockSize)), "a")
			if err != nil {
				t.Fatal(err)
			}
			cache := NewChunkCache(tc.budget)
			regions := []Region{
				{Start: []int64{10, 30}, Shape: []int64{100, 50}},
				{Start: []int64{60, 60}, Shape: []int64{8, 8}},
				{Start: []int64{200, 0}, Shape: []int64{56, 256}},
			}
			for round := range 3 {
				var hits int64
				for i, r := range regions {
					want := make([]byte, r.Shape[0]*r.Shape[1]*4)
					got := make([]byte, len(want))
					if _, err := a.ReadRegions(ctx, []Region{r}, [][]byte{want}); err != nil {
						t.Fatal(err)
					}
					st, err := a.ReadRegionsCached(ctx, cache, []Region{r}, [][]byte{got})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("round %d region %d: cached read differs from the uncached one", round, i)
					}
					if st.CacheHits == st.Chunks && st.BytesRead != 0 {
						t.Errorf("round %d region %d: every chunk hit, yet %d bytes read", round, i, st.BytesRead)
					}
					hits += st.CacheHits
				}
				cache.mu.Lock()
				used, held := cache.used, int64(len(cache.entries))
				cache.mu.Unlock()
				if used > tc.budget || used != held*chunkBytes {
					t.Fatalf("round %d: cache holds %d bytes in %d chunks, budget %d", round, used, held, tc.budget)
				}
				allFit := tc.budget >= 16*chunkBytes
				if round > 0 && allFit && hits == 0 {
					t.Errorf("round %d: no cache hits though every chunk fits", round)
				}
				if tc.budget < chunkBytes && hits != 0 {
					t.Errorf("round %d: %d hits from a cache too small for one chunk", round, hits)
				}
			}
		})
	}
}

// TestConcurrentReadRegions reads different crops of one Array from several
// goroutines at once, with and without a shared cache (run with -race):
// the recycled planning scratch and the cache must keep calls apart.
func TestConcurrentReadRegions(t *testing.T) {
	ctx := context.Background()
	a, err := OpenArray(ctx, dirstore.New(writeV2Store(t, 256, 64, 1024)), "a")
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 20
	region := func(w, r int) Region {
		return Region{Start: []int64{int64(7*w+13*r) % 200, int64(11*w+5*r) % 190}, Shape: []int64{40 + int64(w), 50}}
	}
	want := make([][][]byte, workers)
	for w := range workers {
		for r := range rounds {
			reg := region(w, r)
			buf := make([]byte, reg.Shape[0]*reg.Shape[1]*4)
			if _, err := a.ReadRegions(ctx, []Region{reg}, [][]byte{buf}); err != nil {
				t.Fatal(err)
			}
			want[w] = append(want[w], buf)
		}
	}
	for _, cache := range []*ChunkCache{nil, NewChunkCache(5 * 64 * 64 * 4)} {
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for r := range rounds {
					reg := region(w, r)
					got := make([]byte, len(want[w][r]))
					if _, err := a.ReadRegionsCached(ctx, cache, []Region{reg}, [][]byte{got}); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(got, want[w][r]) {
						errs <- fmt.Errorf("worker %d round %d: concurrent read differs from the sequential one", w, r)
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
