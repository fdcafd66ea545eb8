package store_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/internal/synth"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/store"
	"github.com/lsio-loader/lsio-loader/store/mem"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// TestCropsFromMemEqualFile cuts the same batch of the tiny demo dataset
// from its directory and from a copy in memory opened as mem://, through a
// registry passed to the plan: the crops and their provenance are equal.
func TestCropsFromMemEqualFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := synth.WriteDemo(ctx, dir, "tiny", func(synth.Written) {}); err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		objects[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := store.Defaults(store.Options{}).With("mem", mem.Stores{"demo": mem.New("demo", objects)}.Open)
	open := func(ctx context.Context, url string) (zarr.Store, error) { return reg.Open(ctx, url) }

	crop := func(root string) cropper.Batch {
		spec, err := sampler.ParseSpec([]byte(`
seed: 3
batch_size: 6
samples_per_epoch: 6
sources:
  sat:
    store: `+root+`/satellite.zarr
    array: data
    crop: {time: 2, channel: 3, y: 8, x: 8}
`), dir)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := sampler.NewPlan(ctx, spec, open)
		if err != nil {
			t.Fatal(err)
		}
		samples := make([]sampler.Sample, 6)
		for i := range samples {
			if samples[i], err = plan.Sample("train", 0, int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		var b cropper.Batch
		if err := cropper.New(plan, cropper.Options{}).Crop(ctx, samples, &b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	onDisk, inMemory := crop(dir), crop("mem://demo")
	if len(onDisk.Data) != 1 || len(onDisk.Data[0]) == 0 || !bytes.Equal(onDisk.Data[0], inMemory.Data[0]) {
		t.Fatalf("crops differ: %d bytes on disk, %d in memory", len(onDisk.Data[0]), len(inMemory.Data[0]))
	}
	for i := range onDisk.Samples {
		if a, b := onDisk.Samples[i].Windows, inMemory.Samples[i].Windows; len(a) == 0 || !reflect.DeepEqual(a, b) {
			t.Errorf("sample %d: windows %v on disk, %v in memory", i, a, b)
		}
	}
	if onDisk.Stats.Chunks == 0 || onDisk.Stats.Chunks != inMemory.Stats.Chunks {
		t.Errorf("chunks read: %d on disk, %d in memory", onDisk.Stats.Chunks, inMemory.Stats.Chunks)
	}
}
