package zarr_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// hintRecorder records what WillNeed is told.
type hintRecorder struct {
	zarr.Store
	hints []zarr.ByteRange
}

func (h *hintRecorder) WillNeed(ranges []zarr.ByteRange) { h.hints = append(h.hints, ranges...) }

// somePool stands for a ChunkPool: WillNeed only asks whether there is one.
type somePool struct{}

func (somePool) Claim(*zarr.Array, int64) ([]byte, bool, <-chan struct{}) { return nil, false, nil }
func (somePool) Release([]byte)                                           {}
func (somePool) Keep(*zarr.Array, int64, []byte)                          {}
func (somePool) Drop(*zarr.Array, int64)                                  {}

func hintKeys(hints []zarr.ByteRange) []string {
	var keys []string
	for _, h := range hints {
		keys = append(keys, fmt.Sprintf("%s@%d+%d", h.Key, h.Offset, h.Length))
	}
	slices.Sort(keys)
	return keys
}

// writeHintArray writes a (64, 64) float32 array "a" with (16, 16) chunks
// (inner chunks in (32, 32) shards when sharded).
func writeHintArray(t *testing.T, version int, comp zarrwrite.Compressor, sharded bool) *hintRecorder {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	g, err := zarrwrite.CreateGroup(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	meta := zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{64, 64}, ChunkShape: []int64{16, 16}, Compressor: comp}
	if sharded {
		meta.ShardShape = []int64{32, 32}
	}
	w, err := g.CreateArray("a", meta)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64*64*4)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if err := w.WriteArray(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	return &hintRecorder{Store: dirstore.New(dir)}
}

func TestWillNeedHintsChunksReadWhole(t *testing.T) {
	ctx := context.Background()
	r := func(y, x, h, w int64) zarr.Region { return zarr.Region{Start: []int64{y, x}, Shape: []int64{h, w}} }
	regions := []zarr.Region{
		r(1, 2, 3, 4),    // chunk 0.0
		r(10, 0, 10, 4),  // 0.0 again and 1.0
		r(48, 60, 16, 4), // 3.3
		r(60, 60, 8, 8),  // outside: skipped
		r(0, 0, 0, 4),    // empty: skipped
		r(-1, 0, 2, 2),   // outside: skipped
	}
	whole := []string{"a/0.0@0+-1", "a/1.0@0+-1", "a/3.3@0+-1"}
	for _, tc := range []struct {
		name           string
		comp           zarrwrite.Compressor
		noPool, inPool []string
	}{
		// Reads without a pool take only the bytes, or blosc blocks,
		// under the regions: a whole-file hint would fetch more.
		{"uncompressed", zarrwrite.Compressor{}, nil, whole},
		{"blosc", zarrwrite.Compressor{Name: "blosc", Cname: "lz4", Shuffle: true}, nil, whole},
		// A zstd frame is decoded whole either way.
		{"zstd", zarrwrite.Compressor{Name: "zstd"}, whole, whole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := writeHintArray(t, 2, tc.comp, false)
			a, err := zarr.OpenArray(ctx, st, "a")
			if err != nil {
				t.Fatal(err)
			}
			a.WillNeed(nil, regions)
			if got := hintKeys(st.hints); !slices.Equal(got, tc.noPool) {
				t.Errorf("without a pool: hinted %v, want %v", got, tc.noPool)
			}
			st.hints = nil
			a.WillNeed(somePool{}, regions)
			if got := hintKeys(st.hints); !slices.Equal(got, tc.inPool) {
				t.Errorf("with a pool: hinted %v, want %v", got, tc.inPool)
			}
		})
	}

	// Chunks the pool holds come from it, not the store: not hinted.
	t.Run("held", func(t *testing.T) {
		st := writeHintArray(t, 2, zarrwrite.Compressor{Name: "zstd"}, false)
		a, err := zarr.OpenArray(ctx, st, "a")
		if err != nil {
			t.Fatal(err)
		}
		chunks := pool.NewChunks(1 << 20)
		got := make([]byte, 3*4*4)
		if _, err := a.ReadRegionsCached(ctx, chunks, []zarr.Region{regions[0]}, [][]byte{got}); err != nil {
			t.Fatal(err)
		}
		a.WillNeed(chunks, regions)
		if got, want := hintKeys(st.hints), whole[1:]; !slices.Equal(got, want) {
			t.Errorf("with chunk 0.0 in the pool: hinted %v, want %v", got, want)
		}
	})

	t.Run("sharded", func(t *testing.T) {
		st := writeHintArray(t, 3, zarrwrite.Compressor{Name: "zstd"}, true)
		a, err := zarr.OpenArray(ctx, st, "a")
		if err != nil {
			t.Fatal(err)
		}
		// Before the shard's index is read, where an inner chunk lies is
		// unknown: nothing is hinted.
		a.WillNeed(nil, regions[:3])
		if len(st.hints) != 0 {
			t.Fatalf("hinted %v before any shard index was read", hintKeys(st.hints))
		}
		got := make([]byte, 32*32*4)
		if _, err := a.ReadRegions(ctx, []zarr.Region{r(0, 0, 32, 32)}, [][]byte{got}); err != nil {
			t.Fatal(err)
		}
		// Shard c/0/0's index is known now: its inner chunks 0.0 and 1.0
		// are hinted as their byte ranges, shard c/1/1's chunk 3.3 is not.
		a.WillNeed(nil, regions[:3])
		if len(st.hints) != 2 {
			t.Fatalf("hinted %v, want the ranges of two inner chunks of shard a/c/0/0", hintKeys(st.hints))
		}
		for _, h := range st.hints {
			if h.Key != "a/c/0/0" || h.Offset < 0 || h.Length <= 0 {
				t.Errorf("hint %+v: want a byte range of a/c/0/0", h)
			}
		}
		if st.hints[0].Offset == st.hints[1].Offset {
			t.Errorf("two inner chunks hinted at the same offset: %+v", st.hints)
		}
	})
}
