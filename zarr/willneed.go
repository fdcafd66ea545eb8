package zarr

// WillNeeder is a store that can start fetching objects before they are
// read: a local directory has the kernel read them into the page cache in
// the background, so that a read issued later finds them in memory rather
// than waiting on the disk. Hints are best effort and report nothing.
type WillNeeder interface {
	WillNeed(keys []string)
}

// WillNeed tells the array's store, when it takes hints, which chunks the
// regions will read, so that fetching them overlaps the work done before
// they are read. Sharded arrays are not hinted: a shard holds far more
// than the inner chunks a few crops read. Regions outside the array are
// skipped.
func (a *Array) WillNeed(regions []Region) {
	wn, ok := a.Store.(WillNeeder)
	if !ok || a.chain == nil || a.chain.shard != nil {
		return
	}
	nd := len(a.Shape)
	cs := a.ChunkShape
	var keys []string
	var seen map[int64]bool
	var gridDims, lo, hi, cur [maxDims]int64
	for d := range nd {
		gridDims[d] = (a.Shape[d] + cs[d] - 1) / cs[d]
	}
	for _, r := range regions {
		if len(r.Start) != nd || len(r.Shape) != nd || !inside(r, a.Shape) {
			continue
		}
		for d := range nd {
			lo[d] = r.Start[d] / cs[d]
			hi[d] = (r.Start[d] + r.Shape[d] - 1) / cs[d]
			cur[d] = lo[d]
		}
		for {
			lin := int64(0)
			for d := range nd {
				lin = lin*gridDims[d] + cur[d]
			}
			if !seen[lin] {
				if seen == nil {
					seen = make(map[int64]bool)
				}
				seen[lin] = true
				keys = append(keys, a.keys.key(cur[:nd]))
			}
			if !advance(cur[:nd], lo[:nd], hi[:nd]) {
				break
			}
		}
	}
	if len(keys) > 0 {
		wn.WillNeed(keys)
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
