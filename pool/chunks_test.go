package pool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// writeStore writes an n×n float32 array of c×c blosc chunks and opens it.
func writeStore(t *testing.T, n, c int64) *zarr.Array {
	t.Helper()
	return openArray(t, dirstore.New(writeArray(t, n, c)))
}

func openArray(t *testing.T, s zarr.Store) *zarr.Array {
	t.Helper()
	a, err := zarr.OpenArray(context.Background(), s, "a")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeArray writes writeStore's array into a fresh directory.
func writeArray(t *testing.T, n, c int64) string {
	t.Helper()
	dir := t.TempDir()
	g, err := zarrwrite.CreateGroup(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	w, err := g.CreateArray("a", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{n, n}, ChunkShape: []int64{c, c},
		Fill: math.NaN(), Compressor: zarrwrite.Compressor{Name: "blosc", Cname: "lz4", Shuffle: true}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, c*c*4)
	for ci := range n / c {
		for cj := range n / c {
			for i := range c {
				for j := range c {
					v := 280 + 10*math.Sin(float64(ci*c+i)/50)*math.Cos(float64(cj*c+j)/70)
					binary.LittleEndian.PutUint32(chunk[4*(i*c+j):], math.Float32bits(float32(v)))
				}
			}
			if err := w.WriteChunk([]int64{ci, cj}, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(dir)
}

// TestChunksReadsMatch reads the same crops with and without a pool,
// several times over, and checks that the bytes agree, that repeated crops
// hit the pool instead of the store, and that the pool keeps to its
// budget when it cannot hold every chunk.
func TestChunksReadsMatch(t *testing.T) {
	ctx := context.Background()
	const n, c = 256, 64
	chunkBytes := int64(c * c * 4)
	a := writeStore(t, n, c)
	for _, tc := range []struct {
		name   string
		budget int64
	}{
		{"all-fit", 64 * chunkBytes},
		{"evicting", 3 * chunkBytes},
		{"smaller-than-a-chunk", chunkBytes / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewChunks(tc.budget)
			regions := []zarr.Region{
				{Start: []int64{10, 30}, Shape: []int64{100, 50}},
				{Start: []int64{60, 60}, Shape: []int64{8, 8}},
				{Start: []int64{200, 0}, Shape: []int64{56, 256}},
			}
			for round := range 3 {
				var hits int64
				for i, r := range regions {
					want := make([]byte, r.Shape[0]*r.Shape[1]*4)
					got := make([]byte, len(want))
					if _, err := a.ReadRegions(ctx, []zarr.Region{r}, [][]byte{want}); err != nil {
						t.Fatal(err)
					}
					st, err := a.ReadRegionsCached(ctx, p, []zarr.Region{r}, [][]byte{got})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("round %d region %d: pooled read differs from the unpooled one", round, i)
					}
					if st.CacheHits == st.Chunks && st.BytesRead != 0 {
						t.Errorf("round %d region %d: every chunk hit, yet %d bytes read", round, i, st.BytesRead)
					}
					hits += st.CacheHits
				}
				used, held := p.Used()
				if used > tc.budget || used != int64(held)*chunkBytes {
					t.Fatalf("round %d: pool holds %d bytes in %d chunks, budget %d", round, used, held, tc.budget)
				}
				if round > 0 && tc.budget >= 16*chunkBytes && hits == 0 {
					t.Errorf("round %d: no hits though every chunk fits", round)
				}
				if tc.budget < chunkBytes && hits != 0 {
					t.Errorf("round %d: %d hits from a pool too small for one chunk", round, hits)
				}
			}
		})
	}
}

// TestConcurrentPooledReads reads different crops of one array from
// several goroutines sharing a pool (run with -race).
func TestConcurrentPooledReads(t *testing.T) {
	ctx := context.Background()
	a := writeStore(t, 256, 64)
	const workers, rounds = 4, 20
	region := func(w, r int) zarr.Region {
		return zarr.Region{Start: []int64{int64(7*w+13*r) % 200, int64(11*w+5*r) % 190}, Shape: []int64{40 + int64(w), 50}}
	}
	p := NewChunks(5 * 64 * 64 * 4)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for r := range rounds {
				reg := region(w, r)
				want := make([]byte, reg.Shape[0]*reg.Shape[1]*4)
				got := make([]byte, len(want))
				if _, err := a.ReadRegions(ctx, []zarr.Region{reg}, [][]byte{want}); err != nil {
					errs <- err
					return
				}
				if _, err := a.ReadRegionsCached(ctx, p, []zarr.Region{reg}, [][]byte{got}); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("worker %d round %d: pooled read differs", w, r)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// slowStore holds every chunk read until hold returns, and counts them.
type slowStore struct {
	zarr.Store
	hold   func(ctx context.Context)
	chunks atomic.Int64
}

func (s *slowStore) ReadBatch(ctx context.Context, reqs []zarr.ByteRange, done func(int, []byte, error)) {
	if filepath.Base(reqs[0].Key) != "zarr.json" && filepath.Base(reqs[0].Key)[0] != '.' {
		s.chunks.Add(int64(len(reqs)))
		s.hold(ctx)
	}
	s.Store.ReadBatch(ctx, reqs, done)
}

// TestConcurrentMissesDecodeOnce reads the same crops from several
// goroutines at once into an empty pool: each chunk is fetched and decoded
// once, by whichever read claimed it first, and every read gets it.
func TestConcurrentMissesDecodeOnce(t *testing.T) {
	ctx := context.Background()
	const n, c, readers = 256, 64, 4
	dir := writeArray(t, n, c)
	want := openArray(t, dirstore.New(dir))
	s := &slowStore{Store: dirstore.New(dir), hold: func(context.Context) { time.Sleep(50 * time.Millisecond) }}
	a := openArray(t, s)
	p := NewChunks(1 << 30)
	regions := []zarr.Region{{Start: []int64{10, 30}, Shape: []int64{100, 50}}, {Start: []int64{130, 120}, Shape: []int64{64, 100}}}
	distinct := int64(2*2 + 2*3) // chunks under the two regions
	var decoded atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() {
			errs <- readAndCompare(ctx, a, want, p, regions, &decoded)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := decoded.Load(); got != distinct*c*c*4 {
		t.Errorf("%d readers decoded %d bytes, want each of the %d chunks once (%d bytes)", readers, got, distinct, distinct*c*c*4)
	}
	if got := s.chunks.Load(); got != distinct {
		t.Errorf("%d chunk reads, want %d", got, distinct)
	}
}

// TestWaitersReadWhenTheClaimIsDropped cancels the read that claimed the
// chunks while another waits on it: the waiting read fetches them itself.
func TestWaitersReadWhenTheClaimIsDropped(t *testing.T) {
	const n, c = 256, 64
	dir := writeArray(t, n, c)
	want := openArray(t, dirstore.New(dir))
	entered := make(chan struct{}, 16)
	first := true
	var mu sync.Mutex
	s := &slowStore{Store: dirstore.New(dir), hold: func(ctx context.Context) {
		mu.Lock()
		owner := first
		first = false
		mu.Unlock()
		if owner {
			entered <- struct{}{}
			<-ctx.Done() // the claiming read stalls until cancelled
		}
	}}
	a := openArray(t, s)
	p := NewChunks(1 << 30)
	regions := []zarr.Region{{Start: []int64{10, 30}, Shape: []int64{100, 50}}}
	ownerCtx, cancel := context.WithCancel(context.Background())
	ownerErr := make(chan error, 1)
	go func() {
		_, err := a.ReadRegionsCached(ownerCtx, p, regions, [][]byte{make([]byte, 100*50*4)})
		ownerErr <- err
	}()
	<-entered
	waiterErr := make(chan error, 1)
	var decoded atomic.Int64
	go func() { waiterErr <- readAndCompare(context.Background(), a, want, p, regions, &decoded) }()
	time.Sleep(100 * time.Millisecond) // the waiter has claimed, and waits
	cancel()
	if err := <-ownerErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled claiming read: %v, want context.Canceled", err)
	}
	select {
	case err := <-waiterErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting read hangs after the claiming read was cancelled")
	}
	if decoded.Load() == 0 {
		t.Error("the waiting read decoded nothing: it cannot have read the chunks itself")
	}
	if _, held := p.Used(); held != 4 {
		t.Errorf("pool holds %d chunks, want the 4 the waiting read decoded", held)
	}
}

// readAndCompare reads regions through pool p and checks them against an
// unpooled read of want, adding the bytes it decoded to decoded.
func readAndCompare(ctx context.Context, a, want *zarr.Array, p *Chunks, regions []zarr.Region, decoded *atomic.Int64) error {
	got, ref := make([][]byte, len(regions)), make([][]byte, len(regions))
	for i, r := range regions {
		got[i], ref[i] = make([]byte, r.Shape[0]*r.Shape[1]*4), make([]byte, r.Shape[0]*r.Shape[1]*4)
	}
	st, err := a.ReadRegionsCached(ctx, p, regions, got)
	if err != nil {
		return err
	}
	decoded.Add(st.BytesDecoded)
	if _, err := want.ReadRegions(ctx, regions, ref); err != nil {
		return err
	}
	for i := range regions {
		if !bytes.Equal(got[i], ref[i]) {
			return fmt.Errorf("region %d: pooled read differs from the unpooled one", i)
		}
	}
	return nil
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewLRU[string](3, func(int) int64 { return 1 })
	for i, k := range []string{"a", "b", "c"} {
		c.Put(k, i, nil)
	}
	if _, ok := c.Get("a"); !ok {
		t.Fatal("a missing")
	}
	if kept, evicted := c.Put("d", 3, nil); !kept || len(evicted) != 1 || evicted[0] != 1 { // b, the least recently used
		t.Fatalf("Put d: kept %v, evicted %v; want true, [1]", kept, evicted)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := c.Get(k); ok != want {
			t.Errorf("%s kept = %v, want %v", k, ok, want)
		}
	}
	if used, n := c.Used(); used != 3 || n != 3 {
		t.Errorf("used %d in %d, want 3 in 3", used, n)
	}
}

// TestHoldsIsNotAUse: Holds sees kept and claimed chunks, and neither
// counts a hit nor changes which chunk is evicted next.
func TestHoldsIsNotAUse(t *testing.T) {
	a := writeStore(t, 64, 16)
	p := NewChunks(2 << 10) // two 1 KiB chunks
	if p.Holds(a, 0) {
		t.Fatal("an empty pool holds chunk 0")
	}
	if _, ok, wait := p.Claim(a, 0); ok || wait != nil {
		t.Fatal("first claim of chunk 0 did not claim it")
	}
	if !p.Holds(a, 0) {
		t.Error("chunk 0, claimed and being decoded, is not held")
	}
	p.Keep(a, 0, make([]byte, 1<<10))
	p.Keep(a, 1, make([]byte, 1<<10))
	if !p.Holds(a, 0) || !p.Holds(a, 1) || p.Holds(a, 2) {
		t.Fatalf("holds 0, 1, 2 = %v %v %v, want true true false", p.Holds(a, 0), p.Holds(a, 1), p.Holds(a, 2))
	}
	if p.Hits() != 0 {
		t.Errorf("Holds counted %d hits", p.Hits())
	}
	p.Keep(a, 2, make([]byte, 1<<10)) // evicts 0, the least recently kept: Holds did not use it
	if p.Holds(a, 0) || !p.Holds(a, 2) {
		t.Errorf("after keeping chunk 2: holds 0 = %v, 2 = %v; want false, true", p.Holds(a, 0), p.Holds(a, 2))
	}
}

// TestEvictedChunksRecycleOnlyWhenReleased: a chunk a reader still holds is
// not recycled when the pool evicts it, however many decodes follow, and
// every claim is given back once reads are done.
func TestEvictedChunksRecycleOnlyWhenReleased(t *testing.T) {
	ctx := context.Background()
	const n, c = 256, 64
	a := writeStore(t, n, c)
	p := NewChunks(2 * c * c * 4)
	read := func(i, j int64) {
		t.Helper()
		r := zarr.Region{Start: []int64{i * c, j * c}, Shape: []int64{c, c}}
		if _, err := a.ReadRegionsCached(ctx, p, []zarr.Region{r}, [][]byte{make([]byte, c*c*4)}); err != nil {
			t.Fatal(err)
		}
	}
	read(0, 0)
	held, ok, _ := p.Claim(a, 0)
	if !ok {
		t.Fatal("chunk (0, 0) not kept after a read")
	}
	snapshot := bytes.Clone(held)
	for i := range int64(4) {
		for j := range int64(4) {
			read(i, (j+1)%4) // evicts (0, 0) early on, then decodes into recycled buffers
		}
	}
	if !bytes.Equal(held, snapshot) {
		t.Fatal("a claimed chunk changed after its eviction: its buffer was recycled while read")
	}
	p.Release(held)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.readers) != 0 || len(p.decoding) != 0 {
		t.Errorf("after the reads: %d chunks still claimed by readers, %d being decoded; want none", len(p.readers), len(p.decoding))
	}
}

// TestEvictedChunksServeLaterDecodes: once the pool is full, a read that
// evicts a chunk decodes into the evicted chunk's buffer rather than fresh
// memory (which costs a page fault per 4 KiB).
func TestEvictedChunksServeLaterDecodes(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool buffers at random")
	}
	ctx := context.Background()
	const n, c = 256, 64
	const chunkBytes = c * c * 4
	a := writeStore(t, n, c)
	p := NewChunks(2 * chunkBytes)
	dst := [][]byte{make([]byte, chunkBytes)}
	read := func(k int64) {
		r := zarr.Region{Start: []int64{k / 4 * c, k % 4 * c}, Shape: []int64{c, c}}
		if _, err := a.ReadRegionsCached(ctx, p, []zarr.Region{r}, dst); err != nil {
			t.Fatal(err)
		}
	}
	for k := range int64(16) {
		read(k)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reads = 64
	for k := range int64(reads) {
		read(k % 16) // every read a miss that evicts
	}
	runtime.ReadMemStats(&after)
	if perRead := (after.TotalAlloc - before.TotalAlloc) / reads; perRead > chunkBytes/2 {
		t.Errorf("%d bytes allocated per read that decodes a %d-byte chunk: evicted buffers are not reused", perRead, chunkBytes)
	}
}

// TestChunksCountTheirMemory: a chunk costs the memory its buffer holds,
// not its length, so that a pool's budget bounds what it keeps alive.
func TestChunksCountTheirMemory(t *testing.T) {
	ctx := context.Background()
	const n, c = 240, 48 // 9 KiB chunks, in 16 KiB buffers
	a := writeStore(t, n, c)
	p := NewChunks(3 * 16 << 10)
	r := zarr.Region{Start: []int64{0, 0}, Shape: []int64{n, n}}
	if _, err := a.ReadRegionsCached(ctx, p, []zarr.Region{r}, [][]byte{make([]byte, n*n*4)}); err != nil {
		t.Fatal(err)
	}
	used, held := p.Used()
	if held != 3 || used != 3*16<<10 {
		t.Errorf("pool of 48 KiB holds %d chunks of 9 KiB costing %d bytes; want 3 costing their 16 KiB buffers", held, used)
	}
}
