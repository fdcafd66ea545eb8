package sampler

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// blockedPlan is an example spec in the blocked order with pool bytes.
func blockedPlan(t *testing.T, name string, pool int64, edit func(*Spec)) *Plan {
	t.Helper()
	spec := loadSpec(t, name)
	spec.Order = OrderSpec{Mode: OrderBlocked, Pool: ByteSize(pool)}
	if edit != nil {
		edit(spec)
	}
	p, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// genericUKV turns the joined example into one generic source: the UKV
// array cut by crop per own dim.
func genericUKV(s *Spec) {
	nwp := s.Sources["nwp"]
	s.Sources = map[string]*SourceSpec{"nwp": {Store: nwp.Store, Array: nwp.Array,
		Crop: map[string]int64{"variable": 1, "init_time": 1, "step": 2, "y": 24, "x": 24}}}
	s.Splits = nil
	s.SamplesPerEpoch = 500
	s.BatchSize = 8
}

// TestBlockedShardsAndStreams checks, for joined and generic experiments,
// that a rank reads the same samples whatever its number of streams, that
// ranks read disjoint samples which together make the epoch, that
// StreamLen counts what StreamBatches yields, and that Samples and Sample
// give the same samples at the same positions.
func TestBlockedShardsAndStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
	}{{"joined", nil}, {"generic", genericUKV}} {
		t.Run(tc.name, func(t *testing.T) {
			p := blockedPlan(t, "real_ukv_seviri.yaml", 2<<30, tc.edit)
			n, err := p.EpochLen("train")
			if err != nil {
				t.Fatal(err)
			}
			all, err := p.Samples("train", 3, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, world := range []int{1, 2, 3} {
				union := map[int64]bool{}
				for rank := range world {
					var reference map[int64]Sample
					for _, streams := range []int{1, 2, 5} {
						got := map[int64]Sample{}
						for stream := range streams {
							var count int64
							for b := range p.StreamBatches("train", 3, rank, world, stream, streams) {
								if len(b) > p.BatchSize {
									t.Fatalf("batch of %d", len(b))
								}
								for _, s := range b {
									if _, dup := got[s.Index]; dup {
										t.Fatalf("world %d rank %d streams %d: position %d twice", world, rank, streams, s.Index)
									}
									if !sameSample(s, all[s.Index]) {
										t.Fatalf("position %d differs from Samples'", s.Index)
									}
									got[s.Index] = s
									count++
								}
							}
							if want := p.StreamLen("train", rank, world, stream, streams); count != want {
								t.Errorf("world %d rank %d stream %d/%d: %d samples, StreamLen %d", world, rank, stream, streams, count, want)
							}
						}
						if reference == nil {
							reference = got
						} else if fmt.Sprint(got) != fmt.Sprint(reference) {
							t.Errorf("world %d rank %d: %d streams read other samples than 1", world, rank, streams)
						}
					}
					for i := range reference {
						// Padding repeats the epoch's first positions for
						// the ranks that would otherwise have one sample less.
						pad := int64(world)*ceilDiv(n, int64(world)) - n
						if union[i] && i >= pad {
							t.Fatalf("world %d: position %d read by two ranks", world, i)
						}
						union[i] = true
					}
				}
				if int64(len(union)) != n {
					t.Errorf("world %d: ranks read %d positions of %d", world, len(union), n)
				}
			}
			one, err := p.Sample("train", 3, n-1)
			if err != nil || !sameSample(one, all[n-1]) {
				t.Errorf("Sample(%d) differs from Samples' (err %v)", n-1, err)
			}
			other, _ := p.Samples("train", 4, n)
			if fmt.Sprint(other) == fmt.Sprint(all) {
				t.Error("epochs 3 and 4 are the same")
			}
		})
	}
}

// sameSample compares samples whose locations may be NaN.
func sameSample(a, b Sample) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestBlockedGenericWindowsInsideCells checks that every generic crop lies
// inside one chunk-aligned cell along the space dims, so that a block's
// crops decode only its chunks there, that time cells split the starts at
// chunk boundaries, and that blocks are many and each serves several crops.
func TestBlockedGenericWindowsInsideCells(t *testing.T) {
	p := blockedPlan(t, "real_ukv_seviri.yaml", 256<<20, genericUKV)
	g := p.blocks
	n, _ := p.EpochLen("train")
	e := p.blocksOf("train", 0, n)
	seq := p.sequence("train", 0, e, n)
	src := p.Sources[0]
	blocks := map[int32]int{}
	for i, sl := range seq {
		s := p.blockSample("train", 0, int64(i), e, sl, nil)
		digits := e.cellsOf(int(sl.b), nil)
		for d, start := range s.Windows[0].Start {
			cell := e.axes[d][digits[d]]
			if start < cell.lo || start > cell.hi {
				t.Fatalf("position %d dim %d: start %d outside its cell's starts [%d, %d]", i, d, start, cell.lo, cell.hi)
			}
			// The cell's region [lo, hi+size) spans whole chunks, or ends
			// at the array's edge.
			c := src.Array.ReadChunkShape[d]
			end := cell.hi + src.Size[d]
			if !g.inside[d] {
				// Time dims: cells split the starts; a cell ends on a chunk
				// boundary, or at the last start.
				end = cell.hi + 1
				if end != src.Array.Shape[d]-src.Size[d]+1 && end%c != 0 {
					t.Fatalf("dim %d: cell of starts [%d, %d] does not end on a chunk boundary", d, cell.lo, cell.hi)
				}
				continue
			}
			if g.step[d] > 0 && (cell.lo%c != 0 && cell.lo != 0 || end%c != 0 && end != src.Array.Shape[d]) {
				t.Fatalf("dim %d: cell region [%d, %d) is not chunk-aligned (chunk %d)", d, cell.lo, end, c)
			}
		}
		blocks[sl.b]++
	}
	if len(blocks) < 4 {
		t.Errorf("%d blocks in the epoch", len(blocks))
	}
	if float64(n)/float64(len(blocks)) < 2 {
		t.Errorf("%.1f crops per block", float64(n)/float64(len(blocks)))
	}
}

func TestBlockedSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"locality removed", "locality: {crops_per_t0: 2}\n", "locality: removed; the blocked order replaces it: order: {mode: blocked"},
		{"unknown mode", "order: {mode: shuffled}\n", "order.mode"},
		{"no pool", "order: {mode: blocked}\n", "order.pool"},
		{"pool in iid", "order: {mode: iid, pool: 1GiB}\n", "order.pool"},
		{"bad size", "order: {mode: blocked, pool: lots}\n", "want a size"},
		{"unknown field", "order: {mode: blocked, pool: 1GiB, window: 3}\n", "order.window: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "sources:\n  a: {store: a.zarr, array: v, crop: {x: 2}}\n" + tc.text
			_, err := ParseSpec([]byte(src), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// A pool too small for a batch's blocks is an error once the chunks
	// are known.
	spec := loadSpec(t, "real_ukv_seviri.yaml")
	spec.Order = OrderSpec{Mode: OrderBlocked, Pool: 1 << 20}
	_, err := NewPlan(context.Background(), spec, dirOpener)
	if err == nil || !strings.Contains(err.Error(), "order.pool: 1.0MiB is too small") {
		t.Fatalf("error %v, want order.pool too small", err)
	}
	// The pool the error names is enough.
	given := err.Error()[strings.LastIndex(err.Error(), "give at least ")+len("give at least "):]
	named, err := ParseByteSize(given)
	if err != nil {
		t.Fatalf("the error names pool %q: %v", given, err)
	}
	spec.Order.Pool = ByteSize(named)
	p, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatalf("with the pool the error named (%s): %v", given, err)
	}
	// Resident blocks fill at most two thirds of the pool, counted as the
	// pool counts memory: whole power-of-two buffers per chunk.
	blocks, bytes := p.Resident()
	if blocks != 2 || 3*int64(blocks)*bytes > 2*int64(spec.Order.Pool) {
		t.Errorf("pool %s: %d resident blocks of %d bytes, want 2 within two thirds of it", given, blocks, bytes)
	}
	// Parsed sizes.
	for text, want := range map[string]int64{"2GiB": 2 << 30, "256MiB": 256 << 20, "1.5GB": 1.5e9, "4096": 4096} {
		got, err := ParseByteSize(text)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
}

// TestBlockedRandomness checks the figures `loader sample --randomness`
// prints: within-batch spread at least half iid's, and every eighth of
// the time axis within 0.5–1.5× its uniform share.
func TestBlockedRandomness(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
	}{{"joined", func(s *Spec) { s.SamplesPerEpoch = 2000; s.BatchSize = 16 }}, {"generic", genericUKV}} {
		t.Run(tc.name, func(t *testing.T) {
			pool := int64(2 << 30)
			if tc.name == "generic" {
				pool = 256 << 20
			}
			p := blockedPlan(t, "real_ukv_seviri.yaml", pool, tc.edit)
			r, err := p.Randomness("train", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", r)
			if r.TimeSpread < 0.5 || r.SpaceSpread < 0.5 {
				t.Errorf("spread time %.2f space %.2f of iid's, want ≥ 0.5", r.TimeSpread, r.SpaceSpread)
			}
			for i, share := range r.Eighths {
				if share < 0.5 || share > 1.5 {
					t.Errorf("eighth %d of the time axis gets %.2f× its uniform share", i, share)
				}
			}
		})
	}
}

// TestIIDOrderUnchanged pins the iid order's first samples of the real
// join (epoch 1) to what they were before the blocked order existed:
// order: {mode: iid}, the default, gives the same samples for the same seed.
// (The NWP step index is one lower than before issue 14: a window's first
// frame is now the last at or before its start, never one after it.)
func TestIIDOrderUnchanged(t *testing.T) {
	p, err := NewPlan(context.Background(), loadSpec(t, "real_ukv_seviri.yaml"), dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for i := range int64(3) {
		s, err := p.Sample("train", 1, i)
		if err != nil {
			t.Fatal(err)
		}
		got += fmt.Sprint(s.T0, s.Windows)
	}
	const want = "1585746300000000000 [{[0 4 1 308 370] 2} {[7 194 189 0] 7}]" +
		"1585744800000000000 [{[0 4 0 0 342] 2} {[2 271 171 0] 7}]" +
		"1585744200000000000 [{[0 4 0 10 392] 2} {[0 270 142 0] 7}]"
	if got != want {
		t.Errorf("iid samples changed:\n got %s\nwant %s", got, want)
	}
}

// TestRanksYieldEqualBatches: however the epoch divides, every rank of a
// world yields as many batches (DDP calls collectives once per batch, so
// a rank with one batch more would wait for good), the ranks together read
// every position, and only padding repeats positions: the epoch's first
// ones, as torch's DistributedSampler pads.
func TestRanksYieldEqualBatches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		order   string
		samples int64
		batch   int
	}{
		{"iid divides", OrderIID, 96, 8},
		{"iid 66 of 4", OrderIID, 66, 4},
		{"iid 37 of 5", OrderIID, 37, 5},
		{"blocked 66 of 4", OrderBlocked, 66, 4},
		{"blocked 37 of 5", OrderBlocked, 37, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := blockedPlan(t, "real_ukv_seviri.yaml", 2<<30, func(s *Spec) {
				genericUKV(s)
				s.SamplesPerEpoch = tc.samples
				s.BatchSize = tc.batch
				if tc.order == OrderIID {
					s.Order = OrderSpec{Mode: OrderIID}
				}
			})
			for _, world := range []int{2, 3, 4} {
				for _, streams := range []int{1, 3} {
					reads := map[int64]int{}
					batchCounts := map[int]int64{}
					for rank := range world {
						for stream := range streams {
							n := p.StreamBatchCount("train", rank, world, stream, streams)
							var got int64
							for b := range p.StreamBatches("train", 0, rank, world, stream, streams) {
								got++
								for _, s := range b {
									reads[s.Index]++
								}
							}
							if got != n {
								t.Fatalf("world %d rank %d stream %d/%d: %d batches, StreamBatchCount %d", world, rank, stream, streams, got, n)
							}
							batchCounts[rank] += n
						}
					}
					for rank := 1; rank < world; rank++ {
						if batchCounts[rank] != batchCounts[0] {
							t.Errorf("world %d, %d streams: rank %d yields %d batches, rank 0 %d", world, streams, rank, batchCounts[rank], batchCounts[0])
						}
					}
					repeated := 0
					for i := range tc.samples {
						switch r := reads[i]; {
						case r == 0:
							t.Errorf("world %d, %d streams: position %d never read", world, streams, i)
						case r > 1:
							repeated += r - 1
						}
					}
					if len(reads) != int(tc.samples) {
						t.Errorf("world %d: %d positions read, epoch of %d", world, len(reads), tc.samples)
					}
					// Padding is less than one sample (iid) or one batch
					// (blocked) per shard.
					bound := world * streams
					if tc.order == OrderBlocked {
						bound = world * tc.batch
					}
					if repeated >= bound {
						t.Errorf("world %d, %d streams: %d repeated reads, want fewer than %d", world, streams, repeated, bound)
					}
				}
			}
		})
	}
}

// TestGenericBlocksReachStarts checks the space reach Randomness reports
// for a generic blocked experiment against the samples drawn: with a pool
// for one-chunk cells no crop straddles a chunk border along y or x, in any
// epoch, and the reach is below 1; with the pool it names, cells are two
// chunks wide and, over epochs, crops straddle the borders too.
func TestGenericBlocksReachStarts(t *testing.T) {
	small := blockedPlan(t, "real_ukv_seviri.yaml", 256<<20, genericUKV)
	r, err := small.Randomness("train", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.SpaceReachEpochs >= 1 || r.WidePool <= 256<<20 {
		t.Fatalf("one-chunk cells: reach %.2f over epochs, wide pool %d; want < 1 and a pool above 256 MiB", r.SpaceReachEpochs, r.WidePool)
	}
	wide := blockedPlan(t, "real_ukv_seviri.yaml", r.WidePool, genericUKV)
	rw, err := wide.Randomness("train", 0)
	if err != nil {
		t.Fatal(err)
	}
	if rw.SpaceReachEpochs != 1 || rw.SpaceReach <= r.SpaceReach {
		t.Fatalf("pool %d: reach %.2f this epoch, %.2f over epochs; want more than %.2f, and 1", r.WidePool, rw.SpaceReach, rw.SpaceReachEpochs, r.SpaceReach)
	}
	for _, tc := range []struct {
		name      string
		p         *Plan
		straddles bool
	}{{"one-chunk", small, false}, {"two-chunk", wide, true}} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.p.Sources[0].Array
			nd := len(a.Shape)
			var straddled [2]bool
			for epoch := range int64(8) {
				n, err := tc.p.EpochLen("train")
				if err != nil {
					t.Fatal(err)
				}
				samples, err := tc.p.Samples("train", epoch, n)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range samples {
					w := s.Windows[0]
					for k, d := range []int{nd - 2, nd - 1} {
						c, size := a.ReadChunkShape[d], tc.p.Sources[0].Size[d]
						if w.Start[d]/c != (w.Start[d]+size-1)/c {
							straddled[k] = true
						}
					}
				}
			}
			if straddled != [2]bool{tc.straddles, tc.straddles} {
				t.Errorf("crops straddling a chunk border along y, x over 8 epochs: %v, want both %v", straddled, tc.straddles)
			}
		})
	}
}

func TestRankRuns(t *testing.T) {
	all := []blockRun{{7, 0, 5}, {3, 0, 3}, {9, 0, 4}}
	for _, tc := range []struct {
		world int
		want  [][]blockRun
	}{
		{1, [][]blockRun{all}},
		{2, [][]blockRun{{{7, 0, 5}, {3, 0, 1}}, {{3, 1, 3}, {9, 0, 4}}}},
		{3, [][]blockRun{{{7, 0, 4}}, {{7, 4, 5}, {3, 0, 3}}, {{9, 0, 4}}}},
		{5, [][]blockRun{{{7, 0, 3}}, {{7, 3, 5}, {3, 0, 1}}, {{3, 1, 3}}, {{9, 0, 2}}, {{9, 2, 4}}}},
		{13, nil}, // more ranks than samples: checked below for sizes only
	} {
		var sizes []int64
		for rank := range tc.world {
			got := rankRuns(all, 12, rank, tc.world)
			var n int64
			for _, r := range got {
				n += r.hi - r.lo
			}
			sizes = append(sizes, n)
			if tc.want != nil && fmt.Sprint(got) != fmt.Sprint(tc.want[rank]) {
				t.Errorf("world %d rank %d: %v, want %v", tc.world, rank, got, tc.want[rank])
			}
		}
		var sum int64
		for _, n := range sizes {
			sum += n
			if n < 12/int64(tc.world) || n > ceilDiv(12, int64(tc.world)) {
				t.Errorf("world %d: shares %v are not 12/%d each", tc.world, sizes, tc.world)
			}
		}
		if sum != 12 {
			t.Errorf("world %d: shares %v do not add up to 12", tc.world, sizes)
		}
	}
}

// TestRanksDivideBlocks: in the blocked order each rank reads its own
// blocks, so that two ranks' servers together decode about the chunks one
// rank's would, not twice as many (a rank taking every other batch of one
// sequence would touch every resident block).
func TestRanksDivideBlocks(t *testing.T) {
	p := blockedPlan(t, "real_ukv_seviri.yaml", 256<<20, genericUKV)
	a := p.Sources[0].Array
	chunksOf := func(rank, world int) map[string]bool {
		out := map[string]bool{}
		for b := range p.StreamBatches("train", 2, rank, world, 0, 1) {
			for _, s := range b {
				w := s.Windows[0]
				lo, hi, cur := make([]int64, len(w.Start)), make([]int64, len(w.Start)), make([]int64, len(w.Start))
				for d, start := range w.Start {
					c := a.ReadChunkShape[d]
					lo[d], hi[d], cur[d] = start/c, (start+p.Sources[0].Size[d]-1)/c, start/c
				}
				for {
					out[fmt.Sprint(cur)] = true
					d := len(cur) - 1
					for ; d >= 0; d-- {
						if cur[d]++; cur[d] <= hi[d] {
							break
						}
						cur[d] = lo[d]
					}
					if d < 0 {
						break
					}
				}
			}
		}
		return out
	}
	one := len(chunksOf(0, 1))
	both := len(chunksOf(0, 2)) + len(chunksOf(1, 2))
	t.Logf("one rank's epoch touches %d chunks; two ranks' shares %d together", one, both)
	if float64(both) > 1.2*float64(one) {
		t.Errorf("two ranks touch %d chunks together, one rank %d: each rank decodes most blocks", both, one)
	}
}
