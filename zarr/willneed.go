package zarr

// WillNeeder is a store that can start fetching bytes before they are
// read: a local directory has the kernel read them into the page cache in
// the background, so that a read issued later finds them in memory rather
// than waiting on the disk. Hints are best effort and report nothing.
type WillNeeder interface {
	WillNeed(ranges []ByteRange)
}

// holder is a ChunkPool that can tell, without claiming, whether it holds
// a chunk: WillNeed does not hint chunks that will come from the pool.
type holder interface {
	Holds(a *Array, chunk int64) bool
}

// WillNeed tells the array's store, when it takes hints, which chunk bytes
// reading regions through cache (nil: none, as for ReadRegionsConverted)
// will fetch, so that fetching them overlaps the work done before.
//
// Only chunks read whole are hinted, so that a hint never fetches bytes
// the read would skip: without a pool, chunks whose reads take only the
// bytes or blosc blocks under the regions are not hinted. An inner chunk
// of a shard is hinted once the shard's index has been read (its byte
// range is then known); nested shards are not. Regions outside the array
// are skipped, and so are chunks a pool that can tell (pool.Chunks) already
// holds or is decoding: they will not be fetched.
func (a *Array) WillNeed(cache ChunkPool, regions []Region) {
	wn, ok := a.Store.(WillNeeder)
	if !ok || a.chain == nil {
		return
	}
	sc := a.chain.shard
	chain := a.chain
	if sc != nil {
		if sc.inner.shard != nil {
			return
		}
		chain = sc.inner
	}
	if cache == nil && !a.wholeChunks && (chain.linear() || chain.rangeCodec() != nil) {
		return
	}
	nd := len(a.Shape)
	rcs := a.ReadChunkShape
	held, _ := cache.(holder)
	var hints []ByteRange
	var seen map[int64]bool
	var shard [maxDims]int64
	if sc != nil {
		a.shardMu.Lock()
	}
	for _, r := range regions {
		if len(r.Start) != nd || len(r.Shape) != nd || !inside(r, a.Shape) {
			continue
		}
		for lin, cur := range a.chunksOf(r) {
			if seen[lin] {
				continue
			}
			if seen == nil {
				seen = make(map[int64]bool)
			}
			seen[lin] = true
			if held != nil && held.Holds(a, lin) {
				continue
			}
			if sc == nil {
				hints = append(hints, ByteRange{Key: a.keys.key(cur), Length: -1})
				continue
			}
			inner := int64(0)
			for d := range nd {
				shard[d] = cur[d] * rcs[d] / a.ChunkShape[d]
				inner = inner*sc.perShard[d] + cur[d]*rcs[d]%a.ChunkShape[d]/rcs[d]
			}
			key := a.keys.key(shard[:nd])
			if x, ok := a.shards[key]; ok {
				if off, n, ok := x.entry(inner); ok {
					hints = append(hints, ByteRange{Key: key, Offset: off, Length: n})
				}
			}
		}
	}
	if sc != nil {
		a.shardMu.Unlock()
	}
	if len(hints) > 0 {
		wn.WillNeed(hints)
	}
}

// inside reports whether r is a non-empty region within shape.
func inside(r Region, shape []int64) bool {
	for d := range shape {
		if r.Shape[d] <= 0 || r.Start[d] < 0 || r.Start[d] > shape[d]-r.Shape[d] {
			return false
		}
	}
	return true
}
