package zarr_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/codecs"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/transform"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// writeNaNStore writes a 2-D float32 v2 array "a" of shape (40, 52),
// chunks (16, 16), with NaN (several payloads), ±Inf and -0 among its
// values and every third chunk missing; fill is the fill_value as JSON,
// blockSize < 0 uncompressed, else blosc lz4 with that block size.
func writeNaNStore(t *testing.T, fill string, blockSize int) string {
	t.Helper()
	dir := t.TempDir()
	adir := filepath.Join(dir, "a")
	if err := os.MkdirAll(adir, 0o755); err != nil {
		t.Fatal(err)
	}
	const c = 16
	var compressor any
	if blockSize >= 0 {
		compressor = map[string]any{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": blockSize}
	}
	meta := map[string]any{"zarr_format": 2, "shape": []int64{40, 52}, "chunks": []int64{c, c}, "dtype": "<f4",
		"fill_value": json.RawMessage(fill), "order": "C", "filters": nil, "compressor": compressor}
	mb, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(adir, ".zarray"), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	specials := []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0x7f800000, 0xff800000, 0x80000000}
	r := rand.New(rand.NewPCG(1, 2))
	chunk := make([]byte, c*c*4)
	for ci := range 3 {
		for cj := range 4 {
			if (ci*4+cj)%3 == 1 {
				continue
			}
			for i := range c * c {
				bits := math.Float32bits(float32(r.NormFloat64() * 100))
				if r.IntN(10) == 0 {
					bits = specials[r.IntN(len(specials))]
				}
				binary.LittleEndian.PutUint32(chunk[4*i:], bits)
			}
			out := chunk
			if blockSize >= 0 {
				out, err = codecs.NewBlosc().Encode(nil, chunk, codecs.BloscOptions{Compressor: "lz4", Level: 5, Shuffle: codecs.ByteShuffle, TypeSize: 4, BlockSize: blockSize})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(adir, fmt.Sprintf("%d.%d", ci, cj)), out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestReadRegionsConvertedMatchesCopyThenConvert checks that converting
// runs on their way into the destinations (the fused path) gives the same
// bytes as reading them plainly and converting the destinations after, for
// present, missing and fill-value chunks, every read mode, cold and warm
// caches, and regions at the array's edges.
func TestReadRegionsConvertedMatchesCopyThenConvert(t *testing.T) {
	ctx := context.Background()
	regions := []zarr.Region{
		{Start: []int64{0, 0}, Shape: []int64{40, 52}},   // whole array
		{Start: []int64{3, 5}, Shape: []int64{30, 40}},   // many chunks
		{Start: []int64{16, 16}, Shape: []int64{16, 16}}, // one whole chunk
		{Start: []int64{39, 51}, Shape: []int64{1, 1}},   // the corner
		{Start: []int64{20, 0}, Shape: []int64{1, 52}},   // one row across
		{Start: []int64{0, 17}, Shape: []int64{40, 1}},   // one column down
		{Start: []int64{10, 30}, Shape: []int64{0, 5}},   // empty
	}
	for _, tc := range []struct {
		fill      string
		blockSize int
		cache     bool
		value     float32
	}{
		{`"NaN"`, -1, false, 0},
		{`"NaN"`, 256, false, -1.5},
		{`"NaN"`, 0, true, 0},
		{`7.5`, -1, false, 0},
		{`7.5`, 256, true, 3},
		{`0`, -1, true, 0},
		{`null`, 256, false, 2},
		{`"NaN"`, -1, false, float32(math.NaN())},
	} {
		t.Run(fmt.Sprintf("fill=%s/blocksize=%d/cache=%v/value=%v", tc.fill, tc.blockSize, tc.cache, tc.value), func(t *testing.T) {
			a, err := zarr.OpenArray(ctx, dirstore.New(writeNaNStore(t, tc.fill, tc.blockSize)), "a")
			if err != nil {
				t.Fatal(err)
			}
			var cache zarr.ChunkPool
			if tc.cache {
				cache = pool.NewChunks(1 << 20)
			}
			conv := transform.FillNaN{Value: tc.value}.CopyFloat32LE
			want := make([][]byte, len(regions))
			for i, r := range regions {
				want[i] = make([]byte, r.Shape[0]*r.Shape[1]*4)
			}
			if _, err := a.ReadRegions(ctx, regions, want); err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				transform.FillNaN{Value: tc.value}.ApplyFloat32LE(w)
			}
			for pass := range 2 { // the second warm when cached
				got := make([][]byte, len(regions))
				for i := range regions {
					got[i] = bytes.Repeat([]byte{0xa5}, len(want[i]))
				}
				st, err := a.ReadRegionsConverted(ctx, cache, regions, got, conv)
				if err != nil {
					t.Fatal(err)
				}
				if pass == 1 && tc.cache && st.CacheHits == 0 {
					t.Errorf("pass %d: no cache hits", pass)
				}
				if st.Missing == 0 {
					t.Errorf("pass %d: no missing chunk read", pass)
				}
				for i := range regions {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("pass %d region %v: converted read differs from read then converted", pass, regions[i])
					}
				}
			}
		})
	}
}
