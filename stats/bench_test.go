package stats

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// BenchmarkComputeUKV streams the real UKV store (blosc zstd + shuffle).
func BenchmarkComputeUKV(b *testing.B) {
	ctx := context.Background()
	store := filepath.Join(testenv.RealData(b), "ocf-nowcasting-2023", "ukv_nwp.zarr")
	a, err := zarr.OpenArray(ctx, dirstore.New(store), "UKV")
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Name: "UKV", Array: a, ChannelDim: 1}
	b.SetBytes(a.NumElements() * int64(a.DType.Size))
	for b.Loop() {
		if _, err := Compute(ctx, in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadRegionsUKV is the read alone, for comparison.
func BenchmarkReadRegionsUKV(b *testing.B) {
	ctx := context.Background()
	store := filepath.Join(testenv.RealData(b), "ocf-nowcasting-2023", "ukv_nwp.zarr")
	a, err := zarr.OpenArray(ctx, dirstore.New(store), "UKV")
	if err != nil {
		b.Fatal(err)
	}
	n := a.NumElements() * int64(a.DType.Size)
	dst := make([]byte, n)
	b.SetBytes(n)
	for b.Loop() {
		if _, err := a.ReadRegions(ctx, []zarr.Region{{Start: make([]int64, 5), Shape: a.Shape}}, [][]byte{dst}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlockMoments(b *testing.B) {
	vals := make([]float32, 1<<20)
	for i := range vals {
		vals[i] = 280 + float32(i%1000)/100
	}
	b.SetBytes(int64(len(vals) * 4))
	for b.Loop() {
		blockMoments(vals)
	}
}
