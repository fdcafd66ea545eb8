package zarr

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
)

// TestRealStoresMatchZarrPython reads every array of every real store whole
// and compares it byte for byte with zarr-python's read.
func TestRealStoresMatchZarrPython(t *testing.T) {
	ctx := context.Background()
	type entry struct {
		store string
		a     *Array
	}
	var arrays []entry
	var jobs []pyJob
	for _, dir := range realStores(t) {
		g, err := OpenGroup(ctx, dirstore.New(dir), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range g.ArrayNames() {
			a, err := g.Array(name)
			if err != nil {
				t.Fatal(err)
			}
			arrays = append(arrays, entry{dir, a})
			jobs = append(jobs, pyJob{Store: dir, Array: name})
		}
	}
	if len(arrays) != 45 {
		t.Errorf("found %d arrays in the real stores, want 45", len(arrays))
	}
	want := pyRead(t, jobs)
	for i, e := range arrays {
		what := filepath.Base(e.store) + "/" + e.a.Path
		got, err := e.a.ReadAll(ctx)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if d := e.a.DType.LittleEndian().String(); d != want[i].descr {
			t.Errorf("%s: dtype %s, zarr-python %s", what, d, want[i].descr)
		}
		sameBytes(t, what, got, want[i].data, e.a.DType.Size)

		// Random crops in one batch (partial decodes of blosc chunks)
		// equal the same crops cut from the whole read.
		if len(e.a.Shape) == 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		regions := make([]Region, 5)
		dsts := make([][]byte, len(regions))
		for k := range regions {
			regions[k] = randomRegion(rng, e.a.Shape)
			dsts[k] = regionBytes(e.a, regions[k])
		}
		if _, err := e.a.ReadRegions(ctx, regions, dsts); err != nil {
			t.Errorf("%s: ReadRegions: %v", what, err)
			continue
		}
		for k, r := range regions {
			sameBytes(t, what+" "+formatRegion(r), dsts[k], cutRegion(got, e.a.Shape, r, e.a.DType.Size), e.a.DType.Size)
		}
	}
}

// cutRegion copies region r out of a whole C-order array, element by
// element: a reference independent of the chunked copy code.
func cutRegion(whole []byte, shape []int64, r Region, size int) []byte {
	var out []byte
	idx := append([]int64(nil), r.Start...)
	last := make([]int64, len(shape))
	for d := range shape {
		if r.Shape[d] == 0 {
			return out
		}
		last[d] = r.Start[d] + r.Shape[d] - 1
	}
	for {
		lin := int64(0)
		for d := range shape {
			lin = lin*shape[d] + idx[d]
		}
		out = append(out, whole[lin*int64(size):(lin+1)*int64(size)]...)
		if !advance(idx, r.Start, last) {
			return out
		}
	}
}
