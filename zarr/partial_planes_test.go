package zarr_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// TestPartialReadsPlanes reads crops that take a few rows of every plane of
// a (variable, y, x) blosc chunk, as NWP crops of all variables do: only
// the blocks under those rows decode, not the span from the first plane's
// rows to the last's, and the crops equal those of a whole read.
func TestPartialReadsPlanes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g, err := zarrwrite.CreateGroup(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	const planes, ny, nx = 8, 352, 274
	w, err := g.CreateArray("x", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{planes, ny, nx}, ChunkShape: []int64{planes, 176, 137},
		Fill: math.NaN(), Compressor: zarrwrite.Compressor{Name: "blosc", Cname: "zstd", Level: 1, Shuffle: true}})
	if err != nil {
		t.Fatal(err)
	}
	full := make([]byte, planes*ny*nx*4)
	for i := 0; i < len(full); i += 4 {
		binary.LittleEndian.PutUint32(full[i:], math.Float32bits(float32(280+10*math.Sin(float64(i/4)*1e-3))))
	}
	if err := w.WriteArray(ctx, full); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := zarr.OpenArray(ctx, dirstore.New(dir), "x")
	if err != nil {
		t.Fatal(err)
	}
	chunkBytes := int64(planes * 176 * 137 * 4)
	for _, tc := range []struct {
		name  string
		start []int64
		shape []int64
	}{
		{"rows inside one chunk", []int64{0, 40, 30}, []int64{planes, 20, 64}},
		{"rows across chunks", []int64{0, 150, 100}, []int64{planes, 64, 64}},
		{"some planes", []int64{2, 10, 0}, []int64{3, 30, 137}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := zarr.Region{Start: tc.start, Shape: tc.shape}
			got := make([]byte, tc.shape[0]*tc.shape[1]*tc.shape[2]*4)
			st, err := a.ReadRegions(ctx, []zarr.Region{r}, [][]byte{got})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 0, len(got))
			for p := tc.start[0]; p < tc.start[0]+tc.shape[0]; p++ {
				for y := tc.start[1]; y < tc.start[1]+tc.shape[1]; y++ {
					off := ((p*ny+y)*nx + tc.start[2]) * 4
					want = append(want, full[off:off+tc.shape[2]*4]...)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("crop %v differs from the array", tc.start)
			}
			// Each crop needs under 40% of the rows of each chunk plane;
			// with 32 KiB blocks of 96 KB planes that is at most ~3/4 of
			// the blocks, where the span would be nearly all of them.
			if st.BytesDecoded*4 > st.Chunks*chunkBytes*3 {
				t.Errorf("decoded %d bytes of %d chunks (%d bytes each): blocks between planes not skipped", st.BytesDecoded, st.Chunks, chunkBytes)
			}
		})
	}
}
