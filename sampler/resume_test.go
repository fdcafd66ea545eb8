package sampler

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestStreamBatchesFrom checks that a stream started from batch k yields
// exactly the tail of its full sequence after its first k batches, for
// both orders, several ranks and streams, and every k up to the stream's
// StreamBatchCount (which must count what StreamBatches yields); a from
// outside [0, count] yields nothing.
func TestStreamBatchesFrom(t *testing.T) {
	iid := func(*testing.T) *Plan {
		spec := loadSpec(t, "real_ukv_seviri.yaml")
		spec.BatchSize = 3
		p, err := NewPlan(context.Background(), spec, dirOpener)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	blocked := func(*testing.T) *Plan {
		return blockedPlan(t, "real_ukv_seviri.yaml", 2<<30, func(s *Spec) { s.BatchSize = 3 })
	}
	for _, tc := range []struct {
		name string
		plan func(*testing.T) *Plan
	}{{"iid", iid}, {"blocked", blocked}} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan(t)
			for _, layout := range []struct{ world, streams int }{{1, 1}, {1, 3}, {2, 2}, {3, 1}} {
				for rank := range layout.world {
					for stream := range layout.streams {
						name := fmt.Sprintf("world %d rank %d stream %d/%d", layout.world, rank, stream, layout.streams)
						full := slices.Collect(p.StreamBatches("train", 2, rank, layout.world, stream, layout.streams))
						count := p.StreamBatchCount("train", rank, layout.world, stream, layout.streams)
						if int64(len(full)) != count {
							t.Fatalf("%s: StreamBatchCount %d, StreamBatches yields %d", name, count, len(full))
						}
						for k := range count + 1 {
							tail := slices.Collect(p.StreamBatchesFrom("train", 2, rank, layout.world, stream, layout.streams, k))
							if got, want := indices(tail), indices(full[k:]); !slices.Equal(got, want) {
								t.Fatalf("%s from %d: positions %v, want the tail %v", name, k, got, want)
							}
							for b := range tail {
								for i := range tail[b] {
									if fmt.Sprint(tail[b][i]) != fmt.Sprint(full[k+int64(b)][i]) {
										t.Fatalf("%s from %d: batch %d sample %d differs from the full sequence's", name, k, b, i)
									}
								}
							}
						}
						for _, bad := range []int64{-1, count + 1, 1 << 62} {
							if n := len(slices.Collect(p.StreamBatchesFrom("train", 2, rank, layout.world, stream, layout.streams, bad))); n != 0 {
								t.Errorf("%s from %d: %d batches, want none", name, bad, n)
							}
						}
					}
				}
			}
		})
	}
}

func indices(batches [][]Sample) []int64 {
	var out []int64
	for _, b := range batches {
		for _, s := range b {
			out = append(out, s.Index)
		}
	}
	return out
}
