package zarr

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/codecs"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
)

// writeV2Store writes a 2-D float32 v2 array "a" of shape (n, n) with
// chunks (c, c): blosc lz4 + byte shuffle with the given block size, or
// uncompressed when blockSize < 0. Values are smooth with noise, as
// weather fields are.
func writeV2Store(tb testing.TB, n, c int64, blockSize int) string {
	tb.Helper()
	dir := tb.TempDir()
	adir := filepath.Join(dir, "a")
	if err := os.MkdirAll(adir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var compressor any
	if blockSize >= 0 {
		compressor = map[string]any{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": blockSize}
	}
	meta := map[string]any{"zarr_format": 2, "shape": []int64{n, n}, "chunks": []int64{c, c}, "dtype": "<f4",
		"fill_value": "NaN", "order": "C", "filters": nil, "compressor": compressor}
	mb, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(adir, ".zarray"), mb, 0o644); err != nil {
		tb.Fatal(err)
	}
	blosc := codecs.NewBlosc()
	chunk := make([]byte, c*c*4)
	for ci := int64(0); ci < n/c; ci++ {
		for cj := int64(0); cj < n/c; cj++ {
			for i := int64(0); i < c; i++ {
				for j := int64(0); j < c; j++ {
					y, x := float64(ci*c+i), float64(cj*c+j)
					v := 280 + 10*math.Sin(y/50)*math.Cos(x/70) + float64((i*31+j*17)%7)*0.01
					binary.LittleEndian.PutUint32(chunk[4*(i*c+j):], math.Float32bits(float32(v)))
				}
			}
			out := chunk
			if blockSize >= 0 {
				var err error
				out, err = blosc.Encode(nil, chunk, codecs.BloscOptions{Compressor: "lz4", Level: 5, Shuffle: codecs.ByteShuffle, TypeSize: 4, BlockSize: blockSize})
				if err != nil {
					tb.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(adir, fmt.Sprintf("%d.%d", ci, cj)), out, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return dir
}

// TestPartialReads checks that crops of big chunks decode only the blosc
// blocks, or read only the bytes, they need, and still equal the crop of a
// whole-chunk read.
func TestPartialReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		blockSize int
	}{{"blosc", 16 << 10}, {"uncompressed", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := OpenArray(ctx, dirstore.New(writeV2Store(t, 1024, 512, tc.blockSize)), "a")
			if err != nil {
				t.Fatal(err)
			}
			whole, err := a.ReadAll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// A 64×64 crop inside one chunk and one straddling four.
			for _, r := range []Region{{Start: []int64{100, 200}, Shape: []int64{64, 64}}, {Start: []int64{480, 490}, Shape: []int64{64, 64}}} {
				got := make([]byte, 64*64*4)
				st, err := a.ReadRegions(ctx, []Region{r}, [][]byte{got})
				if err != nil {
					t.Fatal(err)
				}
				want := make([]byte, 0, len(got))
				for y := r.Start[0]; y < r.Start[0]+64; y++ {
					off := (y*1024 + r.Start[1]) * 4
					want = append(want, whole[off:off+64*4]...)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("crop %v differs from the whole read", r.Start)
				}
				chunkBytes := st.Chunks * 512 * 512 * 4
				if tc.blockSize >= 0 && st.BytesDecoded*4 > chunkBytes {
					t.Errorf("crop %v: decoded %d bytes of %d chunks (%d bytes): blocks not skipped", r.Start, st.BytesDecoded, st.Chunks, chunkBytes)
				}
				if tc.blockSize < 0 && st.BytesRead*4 > chunkBytes {
					t.Errorf("crop %v: read %d bytes of %d uncompressed chunks (%d bytes)", r.Start, st.BytesRead, st.Chunks, chunkBytes)
				}
				if st.BytesDelivered != int64(len(got)) {
					t.Errorf("crop %v: delivered %d bytes, want %d", r.Start, st.BytesDelivered, len(got))
				}
			}
		})
	}
}

// BenchmarkReadRegionsCrop reads 64×64 float32 crops from 512×512
// blosc-lz4 chunks: decoding only the needed blocks against decoding whole
// chunks. SetBytes is the delivered bytes.
func BenchmarkReadRegionsCrop(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		blockSize int
		whole     bool
	}{
		{"blosc/whole", 0, true}, {"blosc/partial", 0, false},
		{"uncompressed/whole", -1, true}, {"uncompressed/partial", -1, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, err := OpenArray(ctx, dirstore.New(writeV2Store(b, 1024, 512, tc.blockSize)), "a")
			if err != nil {
				b.Fatal(err)
			}
			a.wholeChunks = tc.whole
			const crops = 8
			regions := make([]Region, crops)
			dsts := make([][]byte, crops)
			for i := range regions {
				regions[i] = Region{Start: []int64{int64(37 + 113*i), int64(900 - 101*i)}, Shape: []int64{64, 64}}
				dsts[i] = make([]byte, 64*64*4)
			}
			b.SetBytes(crops * 64 * 64 * 4)
			b.ReportAllocs()
			var total ReadStats
			for b.Loop() {
				st, err := a.ReadRegions(ctx, regions, dsts)
				if err != nil {
					b.Fatal(err)
				}
				total.Add(st)
			}
			b.ReportMetric(float64(total.BytesDecoded)/float64(b.N), "decoded-B/op")
			b.ReportMetric(float64(total.BytesRead)/float64(b.N), "read-B/op")
			b.ReportMetric(float64(total.Chunks)/float64(b.N), "chunks/op")
		})
	}
}
