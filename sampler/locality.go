package sampler

// groupSize is the number of consecutive epoch positions that share a t0:
// locality's crops_per_t0, or 1 when locality is off.
func (p *Plan) groupSize() int64 {
	if p.Spec.Locality == nil {
		return 1
	}
	return p.Spec.Locality.CropsPerT0
}

// itemAt maps epoch position i (of n) to the item it draws. Without
// locality the epoch is a keyed permutation of the items. With locality,
// positions and items come in groups of k: the whole groups are permuted
// as units and an item keeps its place within its group, so the k samples
// of a group stay consecutive; a partial last group (n not a multiple of
// k) stays last. group is the item's group, -1 without locality.
func (p *Plan) itemAt(n, i int64, permKey uint64) (item, group int64) {
	k := p.groupSize()
	if k == 1 {
		perm := newPermutation(uint64(n), permKey)
		return int64(perm.at(uint64(i))), -1
	}
	full, g := n/k, i/k
	if g < full {
		perm := newPermutation(uint64(full), permKey)
		g = int64(perm.at(uint64(g)))
	}
	return g*k + i%k, g
}

// shardPositions yields, in order, the epoch positions (of n) that shard
// of nShards takes: every nShards-th position, or with locality every
// nShards-th whole group, so that a group never straddles two shards.
func (p *Plan) shardPositions(n int64, shard, nShards int, yield func(i int64) bool) {
	k := p.groupSize()
	for g := int64(shard) * k; g < n; g += int64(nShards) * k {
		for i := g; i < min(g+k, n); i++ {
			if !yield(i) {
				return
			}
		}
	}
}
