package zarr

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// How a chunk is fetched and decoded.
const (
	modeFull   = iota // fetch the stored chunk whole and decode it
	modeRaw           // uncompressed: fetch only the byte runs the regions need
	modeBlosc         // blosc: fetch whole, decode only the needed blocks
	modeAbsent        // known absent (empty inner chunk or missing shard)
	modeCached        // decoded already, in the ChunkPool
	modeWait          // being decoded into the ChunkPool by another read
)

// chunkJob is one read chunk that some regions overlap.
type chunkJob struct {
	grid  []int64 // index in the read-chunk grid
	lin   int64   // the same, C-order linear
	key   string  // stored object
	base  int64   // offset of the chunk's bytes in the object
	size  int64   // stored size, -1 for the whole object
	mode  int
	first int // overlaps[first:first+count] are this chunk's
	count int
	// byte span [lo, hi) of the decoded chunk that the overlaps need
	lo, hi int64
	// modeBlosc: op.spans[spanLo:spanHi] are the byte runs the overlaps
	// need, so that only the blosc blocks under them are decoded
	spanLo, spanHi int
	// modeRaw: the chunk assembled from its runs
	buf []byte
	// modeCached: the decoded chunk, owned by the cache
	cached []byte
	// claimed: this read decodes the chunk for the ChunkPool, and must
	// Keep or Drop it; modeWait: closed when the read that claimed it is done
	claimed bool
	wait    <-chan struct{}
	pending atomic.Int32
	missing atomic.Bool
}

// completion is one finished store request, or an absent or cached chunk
// (req -1).
type completion struct {
	req  int
	job  int
	data []byte
	err  error
}

// request maps a store request back to its chunk.
type request struct {
	job int
	at  int64 // modeRaw: where the bytes go in the decoded chunk
}

// mergeGap is the largest gap between two needed byte runs of an
// uncompressed chunk that is read through rather than split into two
// requests: below it an extra request costs more than the extra bytes.
const mergeGap = 64 << 10

// readOp is one ReadRegions call. Its slices and maps are scratch that
// outlives the call: ops are recycled through Array.ops, so that a steady
// stream of ReadRegions calls plans without allocating.
type readOp struct {
	a     *Array
	chain *codecChain // of the read chunks
	cache ChunkPool   // nil: none
	hits  atomic.Int64
	// conv, when set, carries every run of elements into dsts; fill is
	// the fill value as it comes out of conv.
	conv      Convert
	fillValue []byte
	regions   []Region
	dsts      [][]byte
	jobs      []chunkJob
	overlaps  []int // region indices, grouped by job

	read, decoded, delivered, missing atomic.Int64

	// Scratch of plan, run and locateInShards.
	grids     []int64       // jobs' grid indices, nd per job
	index     map[int64]int // linear chunk index → job
	pairs     []jobRegion
	next      []int
	reqs      []ByteRange
	reqJobs   []request
	runs      [][2]int64
	spans     [][2]int64 // modeBlosc jobs' needed runs
	fillBuf   []byte
	cacheKeys []string
	inner     []int64
	fresh     map[string]shardIndex
	need      []string
	needReqs  []ByteRange

	// Between run and its decode workers.
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan completion
	deliver  func(i int, data []byte, err error)
	wg       sync.WaitGroup
	waiters  sync.WaitGroup // awaitChunk goroutines
	errMu    sync.Mutex
	firstErr error
}

type jobRegion struct{ job, region int }

// getOp returns a cleared readOp for one call on a.
func (a *Array) getOp() *readOp {
	op, _ := a.ops.Get().(*readOp)
	if op == nil {
		op = &readOp{index: map[int64]int{}, fresh: map[string]shardIndex{}}
	}
	op.a = a
	return op
}

// putOp recycles op, dropping what refers to the caller's data.
func (a *Array) putOp(op *readOp) {
	op.regions, op.dsts, op.cache, op.conv = nil, nil, nil, nil
	clear(op.index)
	clear(op.fresh)
	op.read.Store(0)
	op.decoded.Store(0)
	op.delivered.Store(0)
	op.missing.Store(0)
	op.jobs = op.jobs[:0]
	op.spans = op.spans[:0]
	a.ops.Put(op)
}

// ReadRegionsCached is ReadRegions with a pool of decoded chunks: chunks
// found there are neither fetched nor decoded, and chunks that are decoded
// are decoded whole and kept there. A nil pool is ReadRegions.
func (a *Array) ReadRegionsCached(ctx context.Context, cache ChunkPool, regions []Region, dsts [][]byte) (ReadStats, error) {
	return a.readRegions(ctx, cache, regions, dsts, nil)
}

// Convert writes len(src) bytes of elements to dst, changed element by
// element (the same element in always gives the same element out, in the
// same dtype); dst and src may be the same slice.
type Convert func(dst, src []byte)

// ReadRegionsConverted is ReadRegionsCached with every run of elements
// passing through conv on its way from the decoded chunk (or the fill
// value) into dsts: a change that keeps the dtype, such as replacing NaN,
// is then made while the run is in cache from the copy, rather than in a
// second pass over dsts. A nil conv is a plain copy.
func (a *Array) ReadRegionsConverted(ctx context.Context, cache ChunkPool, regions []Region, dsts [][]byte, conv Convert) (ReadStats, error) {
	return a.readRegions(ctx, cache, regions, dsts, conv)
}

// ReadRegions reads a batch of hyper-rectangles at once: every chunk (inner
// chunk when sharded) that overlaps any region is fetched in one
// Store.ReadBatch (after one for the shard indexes not yet cached) and
// decoded once, even when several regions share it, and the overlaps are
// copied into dsts[i], C order, little-endian. Regions must lie inside the
// array; dsts[i] must hold exactly the region's elements. Decoding is
// spread over GOMAXPROCS goroutines.
func (a *Array) ReadRegions(ctx context.Context, regions []Region, dsts [][]byte) (ReadStats, error) {
	return a.readRegions(ctx, nil, regions, dsts, nil)
}

func (a *Array) readRegions(ctx context.Context, cache ChunkPool, regions []Region, dsts [][]byte, conv Convert) (ReadStats, error) {
	var st ReadStats
	if len(regions) != len(dsts) {
		return st, a.errorf("ReadRegions: %d regions but %d destinations", len(regions), len(dsts))
	}
	nd := len(a.Shape)
	size := int64(a.DType.Size)
	for i, r := range regions {
		if len(r.Start) != nd || len(r.Shape) != nd {
			return st, a.errorf("region %d: start %v shape %v: want %d dims", i, r.Start, r.Shape, nd)
		}
		n := int64(1)
		for d := range nd {
			if r.Start[d] < 0 || r.Shape[d] < 0 || r.Start[d] > a.Shape[d]-r.Shape[d] {
				return st, a.errorf("region %d: start %v shape %v outside the array's shape %v", i, r.Start, r.Shape, a.Shape)
			}
			n *= r.Shape[d]
		}
		if int64(len(dsts[i])) != n*size {
			return st, a.errorf("region %d: destination holds %d bytes, want %d", i, len(dsts[i]), n*size)
		}
	}
	op := a.getOp()
	defer a.putOp(op)
	op.chain, op.regions, op.dsts, op.cache = a.chain, regions, dsts, cache
	op.hits.Store(0)
	op.conv, op.fillValue = conv, a.Fill
	if conv != nil {
		// Converted once here, the fill is then repeated like any other.
		op.fillValue = append(op.fillBuf[:0], a.Fill...)
		conv(op.fillValue, op.fillValue)
		op.fillBuf = op.fillValue
	}
	for sc := a.chain.shard; sc != nil; sc = sc.inner.shard {
		op.chain = sc.inner
	}
	op.plan()
	if len(op.jobs) == 0 {
		return st, nil
	}
	err := op.run(ctx)
	st = ReadStats{Chunks: int64(len(op.jobs)), Missing: op.missing.Load(), BytesRead: op.read.Load(),
		BytesDecoded: op.decoded.Load(), BytesDelivered: op.delivered.Load(), CacheHits: op.hits.Load()}
	return st, err
}

func (op *readOp) run(ctx context.Context) error {
	a, chain := op.a, op.chain
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if chain != a.chain {
		if err := op.locateInShards(ctx); err != nil {
			return err
		}
	} else {
		for j := range op.jobs {
			op.jobs[j].key = a.keys.key(op.jobs[j].grid)
			op.jobs[j].size = -1
		}
	}

	// Choose how each chunk is read, and build the store requests.
	reqs, reqJobs, runs := op.reqs[:0], op.reqJobs[:0], op.runs
	defer func() {
		clear(reqs) // the keys
		op.reqs, op.reqJobs, op.runs = reqs[:0], reqJobs[:0], runs[:0]
	}()
	for j := range op.jobs {
		job := &op.jobs[j]
		if job.mode == modeAbsent {
			continue
		}
		if op.cache != nil {
			data, ok, wait := op.cache.Claim(a, job.lin)
			switch {
			case ok:
				job.mode, job.cached = modeCached, data
				op.hits.Add(1)
				continue
			case wait != nil:
				job.mode, job.wait = modeWait, wait
				continue
			}
			job.claimed = true
		}
		job.lo, job.hi = op.neededSpan(job)
		switch {
		case op.cache != nil:
			// Decoded whole, to be kept.
			job.mode = modeFull
		case chain.linear() && !a.wholeChunks:
			job.mode = modeRaw
			runs = op.neededRuns(runs[:0], job, mergeGap)
			job.pending.Store(int32(len(runs)))
			job.buf = a.pool.Get(int(chain.nbytes))
			for _, r := range runs {
				reqs = append(reqs, ByteRange{Key: job.key, Offset: job.base + r[0], Length: r[1] - r[0]})
				reqJobs = append(reqJobs, request{job: j, at: r[0]})
			}
			continue
		case chain.rangeCodec() != nil && job.hi-job.lo < chain.nbytes && !a.wholeChunks:
			job.mode = modeBlosc
			// The exact runs, not merged across gaps: a crop of a few rows
			// of each channel needs a few blocks of each channel plane.
			runs = op.neededRuns(runs[:0], job, 0)
			job.spanLo = len(op.spans)
			op.spans = append(op.spans, runs...)
			job.spanHi = len(op.spans)
		default:
			job.mode = modeFull
		}
		reqs = append(reqs, ByteRange{Key: job.key, Offset: job.base, Length: job.size})
		reqJobs = append(reqJobs, request{job: j})
	}

	// The channel holds every completion and the workers' stop marks, so
	// that neither the store nor this goroutine ever waits on a decode; it
	// is drained by the end of the call and kept for the next one.
	workers := min(runtime.GOMAXPROCS(0), len(op.jobs))
	if need := len(reqs) + len(op.jobs) + workers; cap(op.done) < need {
		op.done = make(chan completion, need)
	}
	for j := range op.jobs {
		if m := op.jobs[j].mode; m == modeAbsent || m == modeCached {
			op.done <- completion{req: -1, job: j}
		}
	}
	op.ctx, op.cancel, op.reqJobs = ctx, cancel, reqJobs
	op.wg.Add(workers)
	for range workers {
		go op.decodeWorker()
	}
	for j := range op.jobs {
		if op.jobs[j].mode == modeWait {
			op.waiters.Add(1)
			go op.awaitChunk(j)
		}
	}
	if len(reqs) > 0 {
		if op.deliver == nil {
			op.deliver = op.deliverRead
		}
		a.Store.ReadBatch(ctx, reqs, op.deliver)
	}
	op.waiters.Wait()
	for range workers {
		op.done <- completion{job: stopWorker}
	}
	op.wg.Wait()
	op.ctx, op.cancel = nil, nil
	firstErr := op.firstErr
	op.firstErr = nil
	for j := range op.jobs {
		if op.jobs[j].cached != nil {
			// Not scattered: the read failed or was cancelled first.
			op.cache.Release(op.jobs[j].cached)
			op.jobs[j].cached = nil
		}
		if op.jobs[j].claimed {
			// Failed, cancelled or absent: the readers waiting on this
			// read's decode read the chunk themselves.
			op.cache.Drop(a, op.jobs[j].lin)
			op.jobs[j].claimed = false
		}
		if op.jobs[j].buf != nil {
			a.pool.Put(op.jobs[j].buf)
			op.jobs[j].buf = nil
		}
	}
	return firstErr
}

// stopWorker, as a completion's job, tells a decode worker to return.
const stopWorker = -1

// deliverRead is the Store.ReadBatch callback of run; a method value kept
// in the op, so that each call does not allocate a fresh closure.
func (op *readOp) deliverRead(i int, data []byte, err error) {
	op.done <- completion{req: i, job: op.reqJobs[i].job, data: data, err: err}
}

// awaitChunk waits for the read that claimed job j's chunk to be done with
// it, then takes the chunk from the pool, or, when that read kept nothing
// (it failed, or the pool evicted the chunk at once), reads it here.
func (op *readOp) awaitChunk(j int) {
	defer op.waiters.Done()
	a, job := op.a, &op.jobs[j]
	select {
	case <-job.wait:
	case <-op.ctx.Done():
		op.done <- completion{req: -1, job: j} // the decode worker reports the cancellation
		return
	}
	data, ok, wait := op.cache.Claim(a, job.lin)
	if ok {
		job.mode, job.cached = modeCached, data
		op.hits.Add(1)
		op.done <- completion{req: -1, job: j}
		return
	}
	// Claimed again by another read: read it anyway rather than wait twice.
	job.mode, job.claimed = modeFull, wait == nil
	a.Store.ReadBatch(op.ctx, []ByteRange{{Key: job.key, Offset: job.base, Length: job.size}}, func(_ int, data []byte, err error) {
		op.done <- completion{req: 0, job: j, data: data, err: err}
	})
}

// decodeWorker decodes and scatters completions until its stop mark.
func (op *readOp) decodeWorker() {
	defer op.wg.Done()
	for c := range op.done {
		if c.job == stopWorker {
			return
		}
		if err := op.ctx.Err(); err != nil {
			// Failed or cancelled: what is left is not decoded, and the
			// cancellation is the error when nothing failed.
			if c.data != nil {
				op.a.Store.Release(c.data)
			}
			op.fail(op.a.errorf("reading: %w", err))
			continue
		}
		if err := op.finish(c, op.reqJobs); err != nil {
			op.fail(err)
			op.cancel()
		}
	}
}

// fail records err unless an earlier error is recorded.
func (op *readOp) fail(err error) {
	op.errMu.Lock()
	if op.firstErr == nil {
		op.firstErr = err
	}
	op.errMu.Unlock()
}

// plan lists the read chunks the regions overlap, each once, with the
// overlapping regions grouped by chunk.
func (op *readOp) plan() {
	a := op.a
	nd := len(a.Shape)
	index := op.index
	pairs := op.pairs[:0]
	op.grids = op.grids[:0]
	for ri, r := range op.regions {
		if slices.Contains(r.Shape, 0) {
			continue
		}
		for lin, cur := range a.chunksOf(r) {
			j, ok := index[lin]
			if !ok {
				j = len(op.jobs)
				index[lin] = j
				op.jobs = append(op.jobs, chunkJob{lin: lin})
				op.grids = append(op.grids, cur...)
			}
			op.jobs[j].count++
			pairs = append(pairs, jobRegion{j, ri})
		}
	}
	op.pairs = pairs
	pos := 0
	for j := range op.jobs {
		op.jobs[j].grid = op.grids[j*nd : (j+1)*nd : (j+1)*nd]
		op.jobs[j].first = pos
		pos += op.jobs[j].count
	}
	op.overlaps = resize(op.overlaps, len(pairs))
	next := resize(op.next, len(op.jobs))
	clear(next)
	for _, p := range pairs {
		op.overlaps[op.jobs[p.job].first+next[p.job]] = p.region
		next[p.job]++
	}
	op.next = next
}

// chunksOf yields each read chunk that the non-empty region r overlaps,
// in C order: its linear index in the grid of read chunks and its position
// in that grid (valid during the yield only).
func (a *Array) chunksOf(r Region) iter.Seq2[int64, []int64] {
	return func(yield func(int64, []int64) bool) {
		nd := len(a.Shape)
		rcs := a.ReadChunkShape
		var gridDims, lo, hi, cur [maxDims]int64
		for d := range nd {
			gridDims[d] = (a.Shape[d] + rcs[d] - 1) / rcs[d]
			lo[d] = r.Start[d] / rcs[d]
			hi[d] = (r.Start[d] + r.Shape[d] - 1) / rcs[d]
			cur[d] = lo[d]
		}
		for {
			lin := int64(0)
			for d := range nd {
				lin = lin*gridDims[d] + cur[d]
			}
			if !yield(lin, cur[:nd]) || !advance(cur[:nd], lo[:nd], hi[:nd]) {
				return
			}
		}
	}
}

// resize returns s with length n, reusing its storage when it is large
// enough; the contents are unspecified.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// advance steps the odometer cur through the box [lo, hi] (inclusive) in
// C order; it reports false once the box is done.
func advance(cur, lo, hi []int64) bool {
	for d := len(cur) - 1; d >= 0; d-- {
		cur[d]++
		if cur[d] <= hi[d] {
			return true
		}
		cur[d] = lo[d]
	}
	return false
}

// box is the overlap of a region and a chunk: lo in chunk coordinates, at
// in region coordinates, and the extent.
type box struct {
	lo, at, ext [maxDims]int64
}

func (op *readOp) overlapBox(job *chunkJob, r Region) box {
	var b box
	rcs := op.a.ReadChunkShape
	for d := range op.a.Shape {
		origin := job.grid[d] * rcs[d]
		start := max(r.Start[d], origin)
		end := min(r.Start[d]+r.Shape[d], origin+rcs[d])
		b.lo[d] = start - origin
		b.at[d] = start - r.Start[d]
		b.ext[d] = end - start
	}
	return b
}

func (op *readOp) jobRegions(job *chunkJob) []int {
	return op.overlaps[job.first : job.first+job.count]
}

// neededSpan is the byte span of the decoded chunk that the overlaps read.
func (op *readOp) neededSpan(job *chunkJob) (lo, hi int64) {
	nd := len(op.a.Shape)
	size := int64(op.a.DType.Size)
	shape := op.a.ReadChunkShape
	lo, hi = op.chain.nbytes, 0
	for _, ri := range op.jobRegions(job) {
		b := op.overlapBox(job, op.regions[ri])
		first, last := int64(0), int64(0)
		for d := range nd {
			first = first*shape[d] + b.lo[d]
			last = last*shape[d] + b.lo[d] + b.ext[d] - 1
		}
		lo = min(lo, first*size)
		hi = max(hi, (last+1)*size)
	}
	return lo, hi
}

// neededRuns returns in runs (emptied) the byte runs of the decoded chunk
// that the overlaps read, sorted and merged across gaps up to gap bytes.
func (op *readOp) neededRuns(runs [][2]int64, job *chunkJob, gap int64) [][2]int64 {
	runs = runs[:0]
	nd := len(op.a.Shape)
	size := int64(op.a.DType.Size)
	shape := op.a.ReadChunkShape
	for _, ri := range op.jobRegions(job) {
		b := op.overlapBox(job, op.regions[ri])
		if nd == 0 {
			runs = append(runs, [2]int64{0, size})
			continue
		}
		// Collapse trailing dims the box spans whole into one run.
		k := nd - 1
		run := b.ext[k]
		for k > 0 && b.ext[k] == shape[k] {
			k--
			run *= b.ext[k]
		}
		var cur, lo, hi [maxDims]int64
		for d := range k {
			lo[d], hi[d], cur[d] = b.lo[d], b.lo[d]+b.ext[d]-1, b.lo[d]
		}
		for {
			off := int64(0)
			for d := range nd {
				c := int64(0)
				switch {
				case d < k:
					c = cur[d]
				case d == k:
					c = b.lo[d]
				}
				off = off*shape[d] + c
			}
			runs = append(runs, [2]int64{off * size, (off + run) * size})
			if k == 0 || !advance(cur[:k], lo[:k], hi[:k]) {
				break
			}
		}
	}
	slices.SortFunc(runs, func(x, y [2]int64) int {
		switch {
		case x[0] < y[0]:
			return -1
		case x[0] > y[0]:
			return 1
		}
		return 0
	})
	out := runs[:1]
	for _, r := range runs[1:] {
		last := &out[len(out)-1]
		if r[0] <= last[1]+gap {
			last[1] = max(last[1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// finish handles one completion: it decodes the chunk when all of its
// bytes are in, and copies it (or the fill value) into the regions.
func (op *readOp) finish(c completion, reqJobs []request) error {
	a, chain := op.a, op.chain
	job := &op.jobs[c.job]
	if c.data != nil {
		op.read.Add(int64(len(c.data)))
		defer a.Store.Release(c.data)
	}
	if c.req < 0 {
		if job.mode == modeCached {
			op.scatter(job, job.cached)
			op.cache.Release(job.cached)
			job.cached = nil
			return nil
		}
		op.fill(job)
		return nil
	}
	if c.err != nil {
		if job.mode == modeRaw && errors.Is(c.err, fs.ErrNotExist) && chain == a.chain {
			job.missing.Store(true)
			if job.pending.Add(-1) == 0 {
				op.fill(job)
			}
			return nil
		}
		if errors.Is(c.err, fs.ErrNotExist) && chain == a.chain {
			op.fill(job)
			return nil
		}
		return a.errorf("chunk %q: %w", job.key, c.err)
	}
	switch job.mode {
	case modeRaw:
		at := reqJobs[c.req].at
		if int(at)+len(c.data) > len(job.buf) {
			return a.errorf("chunk %q: store returned %d bytes at %d, past the chunk's %d", job.key, len(c.data), at, len(job.buf))
		}
		seg := job.buf[at : int(at)+len(c.data)]
		copy(seg, c.data)
		chain.dtype.ToLittleEndian(seg)
		if job.pending.Add(-1) != 0 {
			return nil
		}
		if job.missing.Load() {
			op.fill(job)
			return nil
		}
		op.scatter(job, job.buf)
		return nil
	case modeBlosc:
		buf := a.pool.Get(int(chain.nbytes))
		defer a.pool.Put(buf)
		n, err := chain.rangeCodec().DecodeRuns(buf, c.data, op.spans[job.spanLo:job.spanHi])
		if err != nil {
			return a.errorf("chunk %q: %s: %w", job.key, chain.b2b[0].describe(), err)
		}
		op.decoded.Add(int64(n))
		chain.dtype.ToLittleEndian(buf[job.lo:job.hi])
		op.scatter(job, buf)
		return nil
	}
	out, held, n, err := chain.decode(c.data, a.pool)
	op.decoded.Add(n)
	if err != nil {
		return a.errorf("chunk %q: %w", job.key, err)
	}
	if int64(len(out)) != chain.nbytes {
		a.pool.Put(held)
		return a.errorf("chunk %q: decoded %d bytes, want %d", job.key, len(out), chain.nbytes)
	}
	op.scatter(job, out)
	if op.cache == nil {
		a.pool.Put(held)
		return nil
	}
	switch {
	case held == nil:
		// out is the store's buffer, which goes back to the store.
		out = append([]byte(nil), out...)
	case len(held) > 0 && len(out) > 0 && &held[0] == &out[0]:
		// Kept at the capacity the buffer pool gave it, so that once
		// evicted it is recycled into the class chunk decodes take from.
		out = held[:len(out)]
	}
	op.cache.Keep(a, job.lin, out)
	job.claimed = false
	return nil
}

// scatter copies the decoded chunk's overlaps into their regions.
func (op *readOp) scatter(job *chunkJob, chunk []byte) {
	for _, ri := range op.jobRegions(job) {
		b := op.overlapBox(job, op.regions[ri])
		op.delivered.Add(copyBox(op.dsts[ri], op.regions[ri].Shape, chunk, op.a.ReadChunkShape, &b, op.a.DType.Size, nil, op.conv))
	}
}

// fill writes the fill value into the chunk's overlaps.
func (op *readOp) fill(job *chunkJob) {
	op.missing.Add(1)
	for _, ri := range op.jobRegions(job) {
		b := op.overlapBox(job, op.regions[ri])
		op.delivered.Add(copyBox(op.dsts[ri], op.regions[ri].Shape, nil, op.a.ReadChunkShape, &b, op.a.DType.Size, op.fillValue, nil))
	}
}

// copyBox copies box b of the chunk (C order, shape cshape) into dst (C
// order, shape rshape), through conv when it is set, or writes fill there
// when chunk is nil. It returns the bytes written.
func copyBox(dst []byte, rshape []int64, chunk []byte, cshape []int64, b *box, size int, fill []byte, conv Convert) int64 {
	nd := len(rshape)
	sz := int64(size)
	if nd == 0 {
		switch {
		case chunk != nil && conv != nil:
			conv(dst[:size], chunk[:size])
		case chunk != nil:
			copy(dst[:size], chunk[:size])
		default:
			copy(dst[:size], fill)
		}
		return sz
	}
	// Collapse trailing dims that both sides hold whole into one run.
	k := nd - 1
	run := b.ext[k]
	for k > 0 && b.ext[k] == cshape[k] && b.ext[k] == rshape[k] {
		k--
		run *= b.ext[k]
	}
	var cstride, rstride [maxDims]int64
	cs, rs := sz, sz
	for d := nd - 1; d >= 0; d-- {
		cstride[d], rstride[d] = cs, rs
		cs *= cshape[d]
		rs *= rshape[d]
	}
	// The odometer steps the dims outside the innermost iterated one; that
	// one (rows, when crops are narrower than chunks) is walked by its
	// strides, without recomputing the offsets for every run.
	rows, outer := int64(1), 0
	var cstep, rstep int64
	if k > 0 {
		outer = k - 1
		rows, cstep, rstep = b.ext[outer], cstride[outer], rstride[outer]
	}
	var cur, lo, hi [maxDims]int64
	for d := range outer {
		lo[d], hi[d] = 0, b.ext[d]-1
	}
	runBytes := run * sz
	zero := chunk == nil && allZero(fill)
	var total int64
	for {
		co, ro := b.lo[k]*cstride[k], b.at[k]*rstride[k]
		for d := range k {
			co += (b.lo[d] + cur[d]) * cstride[d]
			ro += (b.at[d] + cur[d]) * rstride[d]
		}
		for range rows {
			out := dst[ro : ro+runBytes]
			switch {
			case chunk != nil && conv != nil:
				conv(out, chunk[co:co+runBytes])
			case chunk != nil:
				copy(out, chunk[co:co+runBytes])
			case zero:
				clear(out)
			default:
				n := copy(out, fill)
				for n < len(out) {
					n += copy(out[n:], out[:n])
				}
			}
			co += cstep
			ro += rstep
		}
		total += rows * runBytes
		if outer == 0 || !advance(cur[:outer], lo[:outer], hi[:outer]) {
			break
		}
	}
	return total
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// locateInShards finds each read chunk's shard and its byte range there,
// level by level for nested sharding, reading the indexes not cached yet in
// one batch per level.
func (op *readOp) locateInShards(ctx context.Context) error {
	a := op.a
	nd := len(a.Shape)
	rcs := a.ReadChunkShape
	cacheKeys := resize(op.cacheKeys, len(op.jobs))
	defer func() { clear(cacheKeys); op.cacheKeys = cacheKeys }()
	var shardGrid [maxDims]int64
	for j := range op.jobs {
		job := &op.jobs[j]
		for d := range nd {
			shardGrid[d] = job.grid[d] * rcs[d] / a.ChunkShape[d]
		}
		job.key = a.keys.key(shardGrid[:nd])
		job.size = -1
		cacheKeys[j] = job.key
	}
	outer := a.ChunkShape
	for level, sc := 0, a.chain.shard; sc != nil; level, sc = level+1, sc.inner.shard {
		if err := op.locateLevel(ctx, level, sc, outer, cacheKeys); err != nil {
			return err
		}
		outer = sc.inner.shape
	}
	for j := range op.jobs {
		job := &op.jobs[j]
		if job.mode != modeAbsent && op.chain.linear() && job.size != op.chain.nbytes {
			return a.errorf("shard %q: inner chunk %v holds %d bytes, want %d", job.key, job.grid, job.size, op.chain.nbytes)
		}
	}
	return nil
}

// locateLevel narrows each job's byte range to its inner chunk of the
// shard level whose shards have shape outer.
func (op *readOp) locateLevel(ctx context.Context, level int, sc *shardCodec, outer []int64, cacheKeys []string) error {
	a := op.a
	nd := len(a.Shape)
	rcs := a.ReadChunkShape
	inner := resize(op.inner, len(op.jobs))
	op.inner = inner
	// fresh holds the indexes this call uses, so that cache eviction by a
	// concurrent call cannot take them away midway.
	fresh := op.fresh
	clear(fresh)
	need, reqs := op.need[:0], op.needReqs[:0]
	defer func() {
		clear(need)
		clear(reqs)
		op.need, op.needReqs = need[:0], reqs[:0]
	}()
	a.shardMu.Lock()
	for j := range op.jobs {
		job := &op.jobs[j]
		if job.mode == modeAbsent {
			continue
		}
		lin := int64(0)
		for d := range nd {
			pos := job.grid[d] * rcs[d] % outer[d]
			lin = lin*sc.perShard[d] + pos/sc.inner.shape[d]
		}
		inner[j] = lin
		ck := cacheKeys[j]
		if _, ok := fresh[ck]; ok {
			continue
		}
		if x, ok := a.shards[ck]; ok {
			fresh[ck] = x
			continue
		}
		fresh[ck] = shardIndex{}
		r := sc.indexRange(job.key)
		if level > 0 {
			// A nested shard is a byte range of its parent: its index
			// sits at that range's start or end.
			if job.size < sc.indexBytes {
				a.shardMu.Unlock()
				return a.errorf("shard %q: nested shard of %d bytes is too short for its %d byte index", job.key, job.size, sc.indexBytes)
			}
			r = ByteRange{Key: job.key, Offset: job.base, Length: sc.indexBytes}
			if !sc.indexAtStart {
				r.Offset = job.base + job.size - sc.indexBytes
			}
		}
		need = append(need, ck)
		reqs = append(reqs, r)
	}
	a.shardMu.Unlock()
	if len(need) > 0 {
		got := make([]shardIndex, len(need))
		errs := make([]error, len(need))
		a.Store.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
			switch {
			case errors.Is(err, fs.ErrNotExist) && level == 0:
				got[i] = shardIndex{missing: true}
			case err != nil:
				errs[i] = err
			default:
				op.read.Add(int64(len(data)))
				got[i], errs[i] = sc.parseIndex(data)
				a.Store.Release(data)
			}
		})
		for i, err := range errs {
			if err != nil {
				return a.errorf("shard %q: %w", reqs[i].Key, err)
			}
		}
		a.shardMu.Lock()
		// Keep the cache bounded: drop arbitrary entries (map order) once
		// it outgrows its budget. This call's indexes stay in fresh.
		if a.shardBytes+int64(len(need))*16*sc.n > maxShardCacheBytes {
			for k, x := range a.shards {
				delete(a.shards, k)
				a.shardBytes -= int64(8 * len(x.entries))
				if a.shardBytes <= maxShardCacheBytes/2 {
					break
				}
			}
		}
		for i, k := range need {
			if old, ok := a.shards[k]; ok {
				a.shardBytes -= int64(8 * len(old.entries))
			}
			a.shards[k] = got[i]
			a.shardBytes += int64(8 * len(got[i].entries))
		}
		a.shardMu.Unlock()
		for i, k := range need {
			fresh[k] = got[i]
		}
	}
	for j := range op.jobs {
		job := &op.jobs[j]
		if job.mode == modeAbsent {
			continue
		}
		off, n, ok := fresh[cacheKeys[j]].entry(inner[j])
		if !ok {
			job.mode = modeAbsent
			continue
		}
		if level > 0 && off+n > job.size {
			return a.errorf("shard %q: inner chunk %v at [%d, %d) lies outside its %d byte nested shard", job.key, job.grid, off, off+n, job.size)
		}
		if sc.inner.shard != nil {
			cacheKeys[j] += "#" + strconv.FormatInt(inner[j], 10)
		}
		job.base += off
		job.size = n
	}
	return nil
}
