package zarr

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// writeCoreStores has zarr-python write testdata/core_stores.py's arrays
// into a temporary directory and returns it with the array paths.
func writeCoreStores(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(testenv.ModuleRoot(t), "zarr", "testdata", "core_stores.py")
	out := testenv.RunPython(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", script, dir)
	var names []string
	if err := json.Unmarshal(bytes.TrimSpace(out), &names); err != nil {
		t.Fatalf("core_stores.py output %q: %v", out, err)
	}
	return dir, names
}

// randomRegion picks a region inside shape, sometimes a single element and
// sometimes the whole extent along a dim.
func randomRegion(r *rand.Rand, shape []int64) Region {
	reg := Region{Start: make([]int64, len(shape)), Shape: make([]int64, len(shape))}
	for d, s := range shape {
		switch r.IntN(4) {
		case 0:
			reg.Start[d], reg.Shape[d] = 0, s
		case 1:
			reg.Start[d], reg.Shape[d] = r.Int64N(s), 1
		default:
			a, b := r.Int64N(s), r.Int64N(s)
			reg.Start[d], reg.Shape[d] = min(a, b), max(a, b)-min(a, b)+1
		}
	}
	return reg
}

func regionBytes(a *Array, r Region) []byte {
	n := int64(a.DType.Size)
	for _, s := range r.Shape {
		n *= s
	}
	return make([]byte, n)
}

// TestCoreStoresMatchZarrPython reads whole arrays and random regions of
// every codec/sharding/dtype/key variant that zarr-python writes, and
// compares with zarr-python's reads of the same selections.
func TestCoreStoresMatchZarrPython(t *testing.T) {
	ctx := context.Background()
	dir, names := writeCoreStores(t)
	store := dirstore.New(dir)
	rng := rand.New(rand.NewPCG(1, 2))
	type check struct {
		a      *Array
		region Region
	}
	var checks []check
	var jobs []pyJob
	for _, name := range names {
		a, err := OpenArray(ctx, store, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "shard_nested" && (formatRegion(Region{Shape: a.ReadChunkShape}) != formatRegion(Region{Shape: []int64{5, 5}}) || a.ChunkShape[0] != 20) {
			t.Errorf("%s: chunk shape %v read chunk shape %v, want [20 30] and [5 5]", name, a.ChunkShape, a.ReadChunkShape)
		}
		whole := Region{Start: make([]int64, len(a.Shape)), Shape: a.Shape}
		regions := []Region{whole}
		if len(a.Shape) > 0 {
			for range 4 {
				regions = append(regions, randomRegion(rng, a.Shape))
			}
		}
		for _, r := range regions {
			checks = append(checks, check{a, r})
			sel := make([][2]int64, len(r.Start))
			for d := range sel {
				sel[d] = [2]int64{r.Start[d], r.Start[d] + r.Shape[d]}
			}
			jobs = append(jobs, pyJob{Store: dir, Array: name, Region: sel})
		}
	}
	want := pyRead(t, jobs)
	for i, c := range checks {
		what := c.a.Path + " " + formatRegion(c.region)
		got := regionBytes(c.a, c.region)
		if err := c.a.Read(ctx, c.region.Start, c.region.Shape, got); err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if d := c.a.DType.LittleEndian().String(); d != want[i].descr {
			t.Errorf("%s: dtype %s, zarr-python %s", what, d, want[i].descr)
		}
		sameBytes(t, what, got, want[i].data, c.a.DType.Size)
	}

	// All regions of an array at once equal the reads one by one, and
	// each chunk is decoded once however many regions share it.
	for _, name := range names {
		a, _ := OpenArray(ctx, store, name)
		if len(a.Shape) == 0 {
			continue
		}
		var regions []Region
		for range 6 {
			regions = append(regions, randomRegion(rng, a.Shape))
		}
		regions = append(regions, regions[0], regions[1]) // exact duplicates
		dsts := make([][]byte, len(regions))
		for i, r := range regions {
			dsts[i] = regionBytes(a, r)
		}
		st, err := a.ReadRegions(ctx, regions, dsts)
		if err != nil {
			t.Errorf("%s: ReadRegions: %v", name, err)
			continue
		}
		var sum ReadStats
		for i, r := range regions {
			one := regionBytes(a, r)
			s1, err := a.ReadRegions(ctx, []Region{r}, [][]byte{one})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sum.Add(s1)
			if !bytes.Equal(one, dsts[i]) {
				t.Errorf("%s: region %d %s differs between the batched and the single read", name, i, formatRegion(r))
			}
		}
		if want := distinctChunks(a, regions); st.Chunks != want {
			t.Errorf("%s: batched read touched %d chunks, want %d distinct", name, st.Chunks, want)
		}
		if st.BytesDelivered != sum.BytesDelivered {
			t.Errorf("%s: batched read delivered %d bytes, single reads %d", name, st.BytesDelivered, sum.BytesDelivered)
		}
		if st.Chunks > sum.Chunks {
			t.Errorf("%s: batched read decoded %d chunks, more than the %d of single reads", name, st.Chunks, sum.Chunks)
		}
	}
}

// distinctChunks counts the read chunks the regions overlap, independently
// of the planner.
func distinctChunks(a *Array, regions []Region) int64 {
	seen := map[string]bool{}
	for _, r := range regions {
		if len(r.Shape) == 0 {
			seen[""] = true
		}
		lo := make([]int64, len(r.Shape))
		hi := make([]int64, len(r.Shape))
		empty := false
		for d := range r.Shape {
			if r.Shape[d] == 0 {
				empty = true
			}
			lo[d] = r.Start[d] / a.ReadChunkShape[d]
			hi[d] = (r.Start[d] + r.Shape[d] - 1) / a.ReadChunkShape[d]
		}
		if empty {
			continue
		}
		cur := append([]int64(nil), lo...)
		for {
			k, _ := json.Marshal(cur)
			seen[string(k)] = true
			if !advance(cur, lo, hi) {
				break
			}
		}
	}
	return int64(len(seen))
}

func formatRegion(r Region) string {
	b, _ := json.Marshal(r)
	return string(b)
}
