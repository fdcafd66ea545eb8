package cropper

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// blockedStore writes a (time 48, y 256, x 256) float32 zstd array of
// (1, 64, 64) chunks: 3 MiB of chunks per time step, 12 MiB decoded in all.
func blockedStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s.zarr")
	g, err := zarrwrite.CreateGroup(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := g.CreateArray("a", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{48, 256, 256}, ChunkShape: []int64{1, 64, 64},
		Fill: math.NaN(), Dims: []string{"time", "y", "x"}, Compressor: zarrwrite.Compressor{Name: "zstd"}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64*64*4)
	for ct := range int64(48) {
		for cy := range int64(4) {
			for cx := range int64(4) {
				for i := range int64(64 * 64) {
					v := float32(ct*1000) + float32(cy*64+i/64) + float32(cx*64+i%64)/1000
					binary.LittleEndian.PutUint32(chunk[4*i:], math.Float32bits(v))
				}
				if err := w.WriteChunk([]int64{ct, cy, cx}, chunk); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func blockedPlan(t *testing.T, store, order string) *sampler.Plan {
	t.Helper()
	text := fmt.Sprintf("seed: 3\nbatch_size: 16\nsamples_per_epoch: 600\n%s\nsources:\n  a: {store: %s, array: a, crop: {time: 6, y: 24, x: 24}}\n", order, store)
	spec, err := sampler.ParseSpec([]byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := sampler.NewPlan(context.Background(), spec, func(_ context.Context, url string) (zarr.Store, error) {
		if _, err := os.Stat(url); err != nil {
			return nil, err
		}
		return dirstore.New(url), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBlockedDecodesOnce crops a whole blocked epoch through a pool of
// order.pool bytes, as the server does: every crop must equal the crop
// read without a pool, the pool must never hold more than its budget, and
// the epoch must decode about the array once (a chunk at a time-cell
// boundary serves two blocks), a fraction of what the iid order decodes.
func TestBlockedDecodesOnce(t *testing.T) {
	ctx := context.Background()
	store := blockedStore(t)
	const budget = 2 << 20
	p := blockedPlan(t, store, "order: {mode: blocked, pool: 2MiB}")
	if blocks, _ := p.Resident(); blocks < 2 {
		t.Fatalf("%d resident blocks", blocks)
	}
	chunks := pool.NewChunks(budget)
	pooled, plain := New(p, Options{Cache: chunks}), New(p, Options{})
	var got, want Batch
	var decoded, delivered int64
	for samples := range p.Batches("train", 0, 0, 1) {
		if err := pooled.Crop(ctx, samples, &got); err != nil {
			t.Fatal(err)
		}
		if err := plain.Crop(ctx, samples, &want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data[0], want.Data[0]) {
			t.Fatalf("batch at %d: pooled crops differ", samples[0].Index)
		}
		if used, _ := chunks.Used(); used > budget {
			t.Fatalf("pool holds %d bytes, budget %d", used, budget)
		}
		decoded += got.Stats.BytesDecoded
		delivered += got.Stats.BytesDelivered
	}
	const arrayBytes = 48 * 256 * 256 * 4
	iid := blockedPlan(t, store, "order: {mode: iid}")
	c := New(iid, Options{})
	var iidDecoded int64
	for samples := range iid.Batches("train", 0, 0, 1) {
		if err := c.Crop(ctx, samples, &want); err != nil {
			t.Fatal(err)
		}
		iidDecoded += want.Stats.BytesDecoded
	}
	t.Logf("decoded: blocked %.2f× the array, iid %.2f×; delivered %.2f×", float64(decoded)/arrayBytes,
		float64(iidDecoded)/arrayBytes, float64(delivered)/arrayBytes)
	if decoded > 2*arrayBytes {
		t.Errorf("blocked epoch decoded %.2f× the array, want < 2×", float64(decoded)/arrayBytes)
	}
	if 3*decoded > iidDecoded {
		t.Errorf("blocked epoch decoded %d bytes, iid %d: want a third or less", decoded, iidDecoded)
	}
}

func TestBlockedPoolTooSmall(t *testing.T) {
	store := blockedStore(t)
	text := fmt.Sprintf("order: {mode: blocked, pool: 100KiB}\nsources:\n  a: {store: %s, array: a, crop: {time: 6, y: 24, x: 24}}\n", store)
	spec, err := sampler.ParseSpec([]byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = sampler.NewPlan(context.Background(), spec, func(_ context.Context, url string) (zarr.Store, error) { return dirstore.New(url), nil })
	if err == nil || !strings.Contains(err.Error(), "order.pool: 100.0KiB is too small") || !strings.Contains(err.Error(), "give at least") {
		t.Fatalf("error %v, want order.pool too small naming what is needed", err)
	}
}

// TestBlockedPoolLargerThanData keeps everything: reading the epoch again
// decodes nothing.
func TestBlockedPoolLargerThanData(t *testing.T) {
	ctx := context.Background()
	p := blockedPlan(t, blockedStore(t), "order: {mode: blocked, pool: 64MiB}")
	chunks := pool.NewChunks(64 << 20)
	c := New(p, Options{Cache: chunks})
	var b Batch
	for pass := range 2 {
		var decoded int64
		for samples := range p.Batches("train", 0, 0, 1) {
			if err := c.Crop(ctx, samples, &b); err != nil {
				t.Fatal(err)
			}
			decoded += b.Stats.BytesDecoded
		}
		if pass == 0 && decoded == 0 || pass == 1 && decoded != 0 {
			t.Errorf("pass %d decoded %d bytes", pass, decoded)
		}
	}
}
