package sampler

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

func dirOpener(ctx context.Context, url string) (zarr.Store, error) {
	if _, err := os.Stat(url); err != nil {
		return nil, err
	}
	return dirstore.New(url), nil
}

// loadSpec parses an example spec from examples/.
func loadSpec(t testing.TB, name string) *Spec {
	t.Helper()
	testenv.RealData(t)
	path := filepath.Join(testenv.ModuleRoot(t), "examples", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseSpec(data, filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestPlanRealUKVSEVIRI checks the valid t0s of the real join: SEVIRI
// has 12:00-14:00 every 5 min and the window reaches 30 min back, so t0s
// run from 12:30; every one has a UKV run (00:00 every 3 h, steps 0-4 h)
// covering the next two whole hours.
func TestPlanRealUKVSEVIRI(t *testing.T) {
	spec := loadSpec(t, "real_ukv_seviri.yaml")
	p, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	at := func(hhmm string) int64 {
		v, err := time.Parse("2006-01-02T15:04", "2020-04-01T"+hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixNano()
	}
	for split, want := range map[string][2]string{"train": {"12:30", "13:30"}, "val": {"13:35", "14:00"}} {
		var wantT0s []int64
		for t0 := at(want[0]); t0 <= at(want[1]); t0 += int64(5 * time.Minute) {
			wantT0s = append(wantT0s, t0)
		}
		if !slices.Equal(p.t0s[split], wantT0s) {
			t.Errorf("%s: t0s %v, want %v", split, p.t0s[split], wantT0s)
		}
		if n, err := p.EpochLen(split); err != nil || n != 64 {
			t.Errorf("%s: epoch length %d, %v; want samples_per_epoch 64", split, n, err)
		}
	}
	for b := range p.Batches("train", 0, 0, 1) {
		for _, s := range b {
			for k, w := range s.Windows {
				src := p.Sources[k]
				for d, st := range w.Start {
					if st < 0 || st+src.Size[d] > src.Array.Shape[d] {
						t.Fatalf("sample %d source %s: window [%d, %d) outside dim %s of length %d", s.Index, src.Name, st, st+src.Size[d], src.Dims[d], src.Array.Shape[d])
					}
				}
			}
		}
	}
}
