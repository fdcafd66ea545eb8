package stats

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Shard is part Index (0-based) of Count parts of a selection, split along
// one dim at chunk boundaries, so that no chunk is read by two shards and
// each shard's statistics are exact partial sums that Moments.Merge joins.
// The zero value (Count 0) means no sharding.
type Shard struct {
	Index, Count int
}

// ParseShard reads "I/N" with 0 ≤ I < N: Kubernetes' JOB_COMPLETION_INDEX
// and a Slurm array over 0-(N-1) give I directly.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want I/N, e.g. 0/4", s)
	}
	index, err := strconv.Atoi(strings.TrimSpace(i))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: index: %w", s, err)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: count: %w", s, err)
	}
	if count < 1 || index < 0 || index >= count {
		return Shard{}, fmt.Errorf("shard %q: want 0 ≤ I < N", s)
	}
	return Shard{Index: index, Count: count}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Range is the shard's part of [start, stop) along a dim chunked by chunk:
// the chunks overlapping the selection are dealt out in contiguous runs of
// nearly equal length. A shard with no chunk gets an empty range (lo == hi).
func (s Shard) Range(start, stop, chunk int64) (lo, hi int64) {
	if s.Count <= 1 || stop <= start || chunk <= 0 {
		return start, stop
	}
	first := start / chunk
	n := (stop-1)/chunk + 1 - first
	c0 := first + mulDiv(n, int64(s.Index), int64(s.Count))
	c1 := first + mulDiv(n, int64(s.Index)+1, int64(s.Count))
	lo = min(max(start, c0*chunk), stop)
	hi = min(max(start, c1*chunk), stop)
	if c1 == first+n {
		hi = stop
	}
	return lo, hi
}

// mulDiv is a*b/c for 0 ≤ a, 0 ≤ b ≤ c, without overflow: shard counts come
// from the command line and may be huge.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}
