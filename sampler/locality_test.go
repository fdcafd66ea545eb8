package sampler

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestItemAtPermutesWholeGroups(t *testing.T) {
	for _, tc := range []struct{ n, k int64 }{{1, 2}, {7, 2}, {64, 4}, {65, 4}, {1000, 8}, {3, 4}} {
		p := &Plan{Spec: &Spec{Locality: &LocalitySpec{CropsPerT0: tc.k}}}
		seen := make([]bool, tc.n)
		moved := 0
		for i := range tc.n {
			item, group := p.itemAt(tc.n, i, 99)
			if item < 0 || item >= tc.n || seen[item] {
				t.Fatalf("n=%d k=%d: position %d maps to item %d, out of range or seen before", tc.n, tc.k, i, item)
			}
			seen[item] = true
			if item/tc.k != group || item%tc.k != i%tc.k {
				t.Fatalf("n=%d k=%d: position %d gave item %d of group %d: not its place in a whole group", tc.n, tc.k, i, item, group)
			}
			if item != i {
				moved++
			}
		}
		if tc.n >= 64 && moved < int(tc.n)/2 {
			t.Errorf("n=%d k=%d: only %d positions moved: groups not shuffled", tc.n, tc.k, moved)
		}
	}
}

// TestLocalityGroupsShareT0 checks, on the real joined stores, that with
// locality each batch is made of whole groups of crops_per_t0 samples that
// share their t0 and source time windows but not their locations, and that
// shards still partition the epoch into the same samples.
func TestLocalityGroupsShareT0(t *testing.T) {
	for _, tc := range []struct {
		name            string
		k               int64
		samplesPerEpoch int64 // -1: as the spec says
	}{
		{"random-t0/k=2", 2, -1},
		{"random-t0/k=4", 4, -1},
		{"every-t0/k=2", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := loadSpec(t, "real_ukv_seviri.yaml")
			spec.Locality = &LocalitySpec{CropsPerT0: tc.k}
			if tc.samplesPerEpoch >= 0 {
				spec.SamplesPerEpoch = tc.samplesPerEpoch
			}
			p, err := NewPlan(context.Background(), spec, dirOpener)
			if err != nil {
				t.Fatal(err)
			}
			n, err := p.EpochLen("train")
			if err != nil {
				t.Fatal(err)
			}
			if tc.samplesPerEpoch == 0 && n != int64(len(p.t0s["train"]))*tc.k {
				t.Fatalf("epoch of %d samples, want %d t0s × %d", n, len(p.t0s["train"]), tc.k)
			}
			var reference map[int64]Sample
			distinctT0 := map[int64]bool{}
			for _, shards := range []int{1, 3} {
				got := map[int64]Sample{}
				for s := range shards {
					for b := range p.Batches("train", 1, s, shards) {
						for g := 0; g < len(b); g += int(tc.k) {
							group := b[g:min(g+int(tc.k), len(b))]
							if group[0].Index%tc.k != 0 {
								t.Fatalf("batch starts a group at position %d", group[0].Index)
							}
							for m, smp := range group {
								distinctT0[smp.T0] = true
								if smp.Index != group[0].Index+int64(m) {
									t.Fatalf("group at %d holds position %d", group[0].Index, smp.Index)
								}
								if smp.T0 != group[0].T0 {
									t.Fatalf("positions %d and %d: t0 %d and %d, want shared", group[0].Index, smp.Index, group[0].T0, smp.T0)
								}
								for k := range p.Sources {
									a, b := p.TimeLabels(k, smp.Windows[k]), p.TimeLabels(k, group[0].Windows[k])
									if smp.Windows[k].AvailableT == group[0].Windows[k].AvailableT && !reflect.DeepEqual(a, b) {
										t.Fatalf("positions %d and %d: source %s times differ", group[0].Index, smp.Index, p.Sources[k].Name)
									}
								}
							}
							if len(group) > 1 && group[0].X == group[1].X && group[0].Y == group[1].Y {
								t.Fatalf("positions %d and %d: same location", group[0].Index, group[1].Index)
							}
						}
						for _, smp := range b {
							if (smp.Index/tc.k)%int64(shards) != int64(s) {
								t.Fatalf("shard %d/%d got position %d", s, shards, smp.Index)
							}
							if _, dup := got[smp.Index]; dup {
								t.Fatalf("%d shards: position %d twice", shards, smp.Index)
							}
							got[smp.Index] = smp
						}
					}
				}
				if int64(len(got)) != n {
					t.Fatalf("%d shards: %d positions, epoch has %d", shards, len(got), n)
				}
				if reference == nil {
					reference = got
				} else if !reflect.DeepEqual(got, reference) {
					t.Errorf("%d shards: samples differ from 1 shard", shards)
				}
			}
			if want := min(n/tc.k, int64(len(p.t0s["train"]))) / 2; int64(len(distinctT0)) < want {
				t.Errorf("%d distinct t0s in an epoch of %d groups over %d t0s: groups not drawn independently", len(distinctT0), n/tc.k, len(p.t0s["train"]))
			}
		})
	}
}

func TestLocalitySpecErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"one", "locality: {crops_per_t0: 1}", "locality.crops_per_t0"},
		{"not-dividing", "locality: {crops_per_t0: 3}", "locality.crops_per_t0"},
		{"larger-than-batch", "locality: {crops_per_t0: 16}", "locality.crops_per_t0"},
		{"unknown-field", "locality: {crops_per_location: 2}", "crops_per_location"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := "batch_size: 8\n" + tc.yaml + "\nsources:\n  v: {store: x, array: v, crop: {t: 1}}\n"
			_, err := ParseSpec([]byte(spec), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}
