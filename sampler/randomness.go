package sampler

import (
	"math"
	"slices"
)

// Randomness measures how shuffled an epoch's batches are, against the iid
// order of the same spec: a blocked order trades some spread for decoding
// each chunk once.
type Randomness struct {
	Order   string
	Samples int64
	// Mean pairwise distance of crop starts within a batch, averaged over
	// the epoch's batches, in this order and in the iid order. Time is in
	// hours of t0 (generic experiments: the start's row-major index over
	// every dim but the last two); space in km between crop centres
	// (generic: pixels between starts along the last two dims).
	Time, IIDTime, Space, IIDSpace float64
	// TimeSpread and SpaceSpread are Time/IIDTime and Space/IIDSpace (1
	// where the experiment has no such axis).
	TimeSpread, SpaceSpread float64
	TimeUnit, SpaceUnit     string
	// Eighths is, for each eighth of the time axis, its share of the
	// epoch's crops divided by its share of the valid times: 1 everywhere
	// is perfectly even coverage.
	Eighths [8]float64
	// SpaceReach is the share of the valid crop starts along the space
	// dims that the epoch can draw, and SpaceReachEpochs the share that
	// some epoch can: 1 but for generic blocked experiments whose space
	// cells are one chunk (see blockGeometry), where crops never straddle a
	// chunk border along those dims. WidePool is then the pool that would
	// reach every start over epochs.
	SpaceReach, SpaceReachEpochs float64
	WidePool                     int64
}

// point is where a sample lies on the time and space axes.
type point struct{ t, x, y float64 }

// Randomness measures an epoch of split in the plan's order and in iid.
func (p *Plan) Randomness(split string, epoch int64) (Randomness, error) {
	n, err := p.EpochLen(split)
	if err != nil {
		return Randomness{}, err
	}
	r := Randomness{Order: p.Spec.Order.Mode, Samples: n, TimeUnit: "hours", SpaceUnit: "km"}
	generic := true
	for i := range p.src {
		if p.src[i].kind != kindGeneric {
			generic = false
		}
	}
	if generic {
		r.TimeUnit, r.SpaceUnit = "index steps", "pixels"
	}
	hasTime, hasSpace := p.t0s != nil, p.hasSpace
	if generic {
		nd := len(p.Sources[0].Size)
		hasTime, hasSpace = nd > min(nd-1, 2), nd > 1
	}
	iid := make([]point, n)
	for i := range n {
		s := p.sample(split, n, epoch, i)
		iid[i] = p.point(&s, generic)
	}
	pts := iid
	if p.Spec.Order.Mode == OrderBlocked {
		samples, err := p.Samples(split, epoch, n)
		if err != nil {
			return r, err
		}
		pts = make([]point, n)
		for i := range samples {
			pts[i] = p.point(&samples[i], generic)
		}
	}
	r.Time, r.Space = spread(pts, p.BatchSize)
	r.IIDTime, r.IIDSpace = spread(iid, p.BatchSize)
	r.TimeSpread, r.SpaceSpread = 1, 1
	if hasTime && r.IIDTime > 0 {
		r.TimeSpread = r.Time / r.IIDTime
	}
	if hasSpace && r.IIDSpace > 0 {
		r.SpaceSpread = r.Space / r.IIDSpace
	}
	for i := range r.Eighths {
		r.Eighths[i] = 1
	}
	r.SpaceReach, r.SpaceReachEpochs = 1, 1
	if p.Spec.Order.Mode == OrderBlocked && p.blocks.generic {
		r.SpaceReach, r.SpaceReachEpochs = p.spaceReach(p.blocksOf(split, epoch, n))
		r.WidePool = p.blocks.widePool
	}
	if !hasTime {
		return r, nil
	}
	// The valid times: the split's t0s, or every start position.
	var valid []float64
	if generic {
		positions := int64(1)
		s := &p.Sources[0]
		for d := range len(s.Size) - min(len(s.Size)-1, 2) {
			positions *= s.Array.Shape[d] - s.Size[d] + 1
		}
		for v := range positions {
			valid = append(valid, float64(v))
		}
	} else {
		for _, t := range p.t0s[split] {
			valid = append(valid, float64(t)/3.6e12)
		}
	}
	lo, hi := slices.Min(valid), slices.Max(valid)
	bin := func(v float64) int {
		if hi <= lo {
			return 0
		}
		return min(7, max(0, int(math.Floor((v-lo)/(hi-lo)*8))))
	}
	var want, got [8]float64
	for _, v := range valid {
		want[bin(v)] += 1 / float64(len(valid))
	}
	for _, pt := range pts {
		got[bin(pt.t)] += 1 / float64(len(pts))
	}
	for i := range r.Eighths {
		if want[i] > 0 {
			r.Eighths[i] = got[i] / want[i]
		}
	}
	return r, nil
}

// spaceReach is the share of the start positions along the space dims (the
// cells' dims whose crops lie inside them) that epoch blocks e reach, and
// that the grid reaches at any of its offsets.
func (p *Plan) spaceReach(e *epochBlocks) (epoch, epochs float64) {
	g, s := p.blocks, &p.Sources[0]
	epoch, epochs = 1, 1
	for d := range s.Size {
		if !g.inside[d] {
			continue
		}
		valid := s.Array.Shape[d] - s.Size[d] + 1
		if valid <= 0 {
			continue
		}
		var n int64
		for _, c := range e.axes[d] {
			n += c.hi - c.lo + 1
		}
		epoch *= float64(n) / float64(valid)
		offsets := int64(1)
		if g.step[d] > 0 {
			offsets = g.cell[d] / g.step[d]
		}
		reached := make([]bool, valid)
		for k := range offsets {
			for _, c := range p.cellsAlong(d, k*g.step[d]) {
				for v := c.lo; v <= c.hi; v++ {
					reached[v] = true
				}
			}
		}
		n = 0
		for _, ok := range reached {
			if ok {
				n++
			}
		}
		epochs *= float64(n) / float64(valid)
	}
	return epoch, epochs
}

// point places s: for generic experiments by the first source's start.
func (p *Plan) point(s *Sample, generic bool) point {
	if !generic {
		return point{t: float64(s.T0) / 3.6e12, x: s.X / 1000, y: s.Y / 1000}
	}
	src, w := &p.Sources[0], s.Windows[0].Start
	nd := len(w)
	nSpace := min(nd-1, 2)
	var pt point
	for d := range nd - nSpace {
		pt.t = pt.t*float64(src.Array.Shape[d]-src.Size[d]+1) + float64(w[d])
	}
	if nSpace >= 1 {
		pt.x = float64(w[nd-1])
	}
	if nSpace == 2 {
		pt.y = float64(w[nd-2])
	}
	return pt
}

// spread is the mean pairwise distance within batches of consecutive
// points, in time and in space, averaged over the batches.
func spread(pts []point, batch int) (time, space float64) {
	var batches int
	for b := 0; b < len(pts); b += batch {
		part := pts[b:min(b+batch, len(pts))]
		if len(part) < 2 {
			continue
		}
		var dt, ds float64
		for i := range part {
			for j := i + 1; j < len(part); j++ {
				dt += math.Abs(part[i].t - part[j].t)
				ds += math.Hypot(part[i].x-part[j].x, part[i].y-part[j].y)
			}
		}
		pairs := float64(len(part) * (len(part) - 1) / 2)
		time += dt / pairs
		space += ds / pairs
		batches++
	}
	if batches == 0 {
		return 0, 0
	}
	return time / float64(batches), space / float64(batches)
}
