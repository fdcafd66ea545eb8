package zarr

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
)

// hintRecorder records what WillNeed is told.
type hintRecorder struct {
	Store
	hints [][]string
}

func (h *hintRecorder) WillNeed(keys []string) { h.hints = append(h.hints, keys) }

func TestWillNeedHintsTheRegionsChunks(t *testing.T) {
	ctx := context.Background()
	st := &hintRecorder{Store: dirstore.New(writeV2Store(t, 64, 16, -1))}
	a, err := OpenArray(ctx, st, "a")
	if err != nil {
		t.Fatal(err)
	}
	r := func(y, x, h, w int64) Region { return Region{Start: []int64{y, x}, Shape: []int64{h, w}} }
	for _, tc := range []struct {
		name    string
		regions []Region
		want    []string // nil: no hint at all
	}{
		{"one chunk", []Region{r(1, 2, 3, 4)}, []string{"a/0.0"}},
		{"across a border", []Region{r(10, 0, 10, 4)}, []string{"a/0.0", "a/1.0"}},
		{"each chunk once", []Region{r(0, 0, 4, 4), r(8, 8, 8, 8), r(48, 60, 16, 4)}, []string{"a/0.0", "a/3.3"}},
		{"outside or empty skipped", []Region{r(60, 60, 8, 8), r(0, 0, 0, 4), r(-1, 0, 2, 2), r(20, 40, 1, 1)}, []string{"a/1.2"}},
		{"nothing to hint", []Region{r(0, 0, 0, 0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st.hints = nil
			a.WillNeed(tc.regions)
			if tc.want == nil {
				if len(st.hints) != 0 {
					t.Fatalf("hinted %v, want nothing", st.hints)
				}
				return
			}
			if len(st.hints) != 1 || !slices.Equal(slices.Sorted(slices.Values(st.hints[0])), tc.want) {
				t.Fatalf("hinted %v, want one hint of %v", st.hints, tc.want)
			}
		})
	}

	// A shard holds far more than a crop reads: sharded arrays give no hint.
	dir := t.TempDir()
	meta := `{"zarr_format":3,"node_type":"array","shape":[50,37],"data_type":"float32","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[20,20]}},"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},"fill_value":"NaN","codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[5,10],"codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_location":"end"}}]}`
	if err := os.MkdirAll(filepath.Join(dir, "s"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s", "zarr.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	sharded := &hintRecorder{Store: dirstore.New(dir)}
	s, err := OpenArray(ctx, sharded, "s")
	if err != nil {
		t.Fatal(err)
	}
	s.WillNeed([]Region{r(0, 0, 5, 5)})
	if len(sharded.hints) != 0 {
		t.Fatalf("sharded array hinted %v", sharded.hints)
	}
}
