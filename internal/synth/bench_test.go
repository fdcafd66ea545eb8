package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// benchLayout is what zarr-python sees of a generated store: per array its
// shape, chunking, codecs, dims and the SHA-256 of its values.
const benchLayout = `
import hashlib, json, sys, numpy as np, zarr
out = {}
for store in sys.argv[1:]:
    g = zarr.open_group(store, mode="r")
    for name, a in g.arrays():
        out[store + "/" + name] = {
            "shape": list(a.shape), "chunks": list(a.chunks), "shards": list(a.shards) if a.shards else None,
            "dtype": str(a.dtype), "dims": list(getattr(a.metadata, "dimension_names", None) or a.attrs.get("_ARRAY_DIMENSIONS", [])),
            "codecs": [type(c).__name__ for c in a.compressors] + ([type(a.serializer).__name__] if a.serializer else []),
            "sha256": hashlib.sha256(np.ascontiguousarray(a[...]).tobytes()).hexdigest(),
            "nan": int(np.isnan(a[...]).sum()) if a.dtype.kind == "f" else 0,
        }
print(json.dumps(out))
`

// TestBenchGenMatchesLayoutAndZarrPython writes a scaled-down copy of the
// benchmark workloads and checks them through zarr-python: the documented
// layout (sharded zstd v3 satellite, blosc-zstd v2 UKV-like NWP) and the
// same values as our reader returns.
func TestBenchGenMatchesLayoutAndZarrPython(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	size := benchSize{SatTimes: 2, NWPInits: 1, NWPSteps: 2}
	sat, nwp := filepath.Join(dir, "satellite.zarr"), filepath.Join(dir, "nwp.zarr")
	var mu sync.Mutex // chunks are generated concurrently
	var reported int64
	made := &chunkCounter{total: size.rawBytes(), report: func(done, _ int64) {
		mu.Lock()
		reported = max(reported, done)
		mu.Unlock()
	}}
	if err := writeBenchSatellite(ctx, sat, size, 1, made); err != nil {
		t.Fatal(err)
	}
	if err := writeBenchNWP(ctx, nwp, size, 1, made); err != nil {
		t.Fatal(err)
	}
	// The progress shown ends at the total it was shown against.
	if made.done.Load() != made.total || reported != made.total {
		t.Errorf("progress: %d bytes counted, %d reported, of %d in all", made.done.Load(), reported, made.total)
	}
	type layout struct {
		Shape, Chunks, Shards []int64
		DType                 string
		Dims, Codecs          []string
		SHA256                string
		NaN                   int64
	}
	var got map[string]layout
	if err := json.Unmarshal(testenv.RunPython(t, benchLayout, sat, nwp), &got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		key                   string
		shape, chunks, shards []int64
		dims                  string
		codec                 string
	}{
		{sat + "/data", []int64{2, 12, 512, 512}, []int64{1, 12, 128, 128}, []int64{1, 12, 512, 512}, "time,channel,y,x", "ZstdCodec"},
		{nwp + "/UKV", []int64{1, 2, 17, 704, 548}, []int64{1, 1, 17, 176, 137}, nil, "init_time,step,variable,y,x", "Blosc"},
	} {
		l, ok := got[want.key]
		if !ok {
			t.Fatalf("zarr-python sees no %s (has %v)", want.key, got)
		}
		if !slicesEqual(l.Shape, want.shape) || !slicesEqual(l.Chunks, want.chunks) || !slicesEqual(l.Shards, want.shards) ||
			strings.Join(l.Dims, ",") != want.dims || l.DType != "float32" || !strings.Contains(strings.Join(l.Codecs, ","), want.codec) {
			t.Errorf("%s: zarr-python sees %+v", want.key, l)
		}
	}
	if got[sat+"/data"].NaN == 0 {
		t.Error("the satellite workload should have missing scan lines")
	}
	for key, l := range got {
		store, name := filepath.Dir(key), filepath.Base(key)
		a, err := zarr.OpenArray(ctx, dirstore.New(store), name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := a.ReadAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != l.SHA256 {
			t.Errorf("%s: our reader and zarr-python disagree", key)
		}
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
