package pool

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"math"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// writeStore writes an n×n float32 array of c×c blosc chunks and opens it.
func writeStore(t *testing.T, n, c int64) *zarr.Array {
	t.Helper()
	dir := t.TempDir()
	g, err := zarrwrite.CreateGroup(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	w, err := g.CreateArray("a", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{n, n}, ChunkShape: []int64{c, c},
		Fill: math.NaN(), Compressor: zarrwrite.Compressor{Name: "blosc", Cname: "lz4", Shuffle: true}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, c*c*4)
	for ci := range n / c {
		for cj := range n / c {
			for i := range c {
				for j := range c {
					v := 280 + 10*math.Sin(float64(ci*c+i)/50)*math.Cos(float64(cj*c+j)/70)
					binary.LittleEndian.PutUint32(chunk[4*(i*c+j):], math.Float32bits(float32(v)))
				}
			}
			if err := w.WriteChunk([]int64{ci, cj}, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := zarr.OpenArray(context.Background(), dirstore.New(filepath.Clean(dir)), "a")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestChunksReadsMatch reads the same crops with and without a pool,
// several times over, and checks that the bytes agree, that repeated crops
// hit the pool instead of the store, and that the pool keeps to its
// budget when it cannot hold every chunk.
func TestChunksReadsMatch(t *testing.T) {
	ctx := context.Background()
	const n, c = 256, 64
	chunkBytes := int64(c * c * 4)
	a := writeStore(t, n, c)
	for _, tc := range []struct {
		name   string
		budget int64
	}{
		{"all-fit", 64 * chunkBytes},
		{"evicting", 3 * chunkBytes},
		{"smaller-than-a-chunk", chunkBytes / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewChunks(tc.budget)
			regions := []zarr.Region{
				{Start: []int64{10, 30}, Shape: []int64{100, 50}},
				{Start: []int64{60, 60}, Shape: []int64{8, 8}},
				{Start: []int64{200, 0}, Shape: []int64{56, 256}},
			}
			for round := range 3 {
				var hits int64
				for i, r := range regions {
					want := make([]byte, r.Shape[0]*r.Shape[1]*4)
					got := make([]byte, len(want))
					if _, err := a.ReadRegions(ctx, []zarr.Region{r}, [][]byte{want}); err != nil {
						t.Fatal(err)
					}
					st, err := a.ReadRegionsCached(ctx, p, []zarr.Region{r}, [][]byte{got})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("round %d region %d: pooled read differs from the unpooled one", round, i)
					}
					if st.CacheHits == st.Chunks && st.BytesRead != 0 {
						t.Errorf("round %d region %d: every chunk hit, yet %d bytes read", round, i, st.BytesRead)
					}
					hits += st.CacheHits
				}
				used, held := p.Used()
				if used > tc.budget || used != int64(held)*chunkBytes {
					t.Fatalf("round %d: pool holds %d bytes in %d chunks, budget %d", round, used, held, tc.budget)
				}
				if round > 0 && tc.budget >= 16*chunkBytes && hits == 0 {
					t.Errorf("round %d: no hits though every chunk fits", round)
				}
				if tc.budget < chunkBytes && hits != 0 {
					t.Errorf("round %d: %d hits from a pool too small for one chunk", round, hits)
				}
			}
		})
	}
}

// TestConcurrentPooledReads reads different crops of one array from
// several goroutines sharing a pool (run with -race).
func TestConcurrentPooledReads(t *testing.T) {
	ctx := context.Background()
	a := writeStore(t, 256, 64)
	const workers, rounds = 4, 20
	region := func(w, r int) zarr.Region {
		return zarr.Region{Start: []int64{int64(7*w+13*r) % 200, int64(11*w+5*r) % 190}, Shape: []int64{40 + int64(w), 50}}
	}
	p := NewChunks(5 * 64 * 64 * 4)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for r := range rounds {
				reg := region(w, r)
				want := make([]byte, reg.Shape[0]*reg.Shape[1]*4)
				got := make([]byte, len(want))
				if _, err := a.ReadRegions(ctx, []zarr.Region{reg}, [][]byte{want}); err != nil {
					errs <- err
					return
				}
				if _, err := a.ReadRegionsCached(ctx, p, []zarr.Region{reg}, [][]byte{got}); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("worker %d round %d: pooled read differs", w, r)
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

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewLRU[string](3, func(int) int64 { return 1 })
	for i, k := range []string{"a", "b", "c"} {
		c.Put(k, i)
	}
	if _, ok := c.Get("a"); !ok {
		t.Fatal("a missing")
	}
	c.Put("d", 3) // evicts b, the least recently used
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := c.Get(k); ok != want {
			t.Errorf("%s kept = %v, want %v", k, ok, want)
		}
	}
	if used, n := c.Used(); used != 3 || n != 3 {
		t.Errorf("used %d in %d, want 3 in 3", used, n)
	}
}
