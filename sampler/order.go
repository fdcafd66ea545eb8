package sampler

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// The epoch orders.
const (
	// OrderIID draws every sample independently: each batch is a uniform
	// draw, and each crop decodes its own chunks.
	OrderIID = "iid"
	// OrderBlocked visits the data in chunk-aligned blocks (see
	// blockGeometry): each block's chunks are decoded once into the pool and
	// serve all its crops, while each batch mixes crops of many resident
	// blocks.
	OrderBlocked = "blocked"
)

// OrderSpec chooses how an epoch's samples are ordered.
type OrderSpec struct {
	// Mode is "iid" (default) or "blocked".
	Mode string `yaml:"mode"`
	// Pool is, for the blocked order, the memory for decoded chunks held
	// for reuse, such as 2GiB; it sets how many blocks are resident at once.
	Pool ByteSize `yaml:"pool"`
}

func (o *OrderSpec) normalise() error {
	switch o.Mode {
	case "", OrderIID:
		o.Mode = OrderIID
		if o.Pool != 0 {
			return errors.New("order.pool: only the blocked order has a pool (order: {mode: blocked, pool: 2GiB})")
		}
	case OrderBlocked:
		if o.Pool <= 0 {
			return errors.New("order.pool: the blocked order needs the memory for decoded chunks, such as 2GiB")
		}
	default:
		return fmt.Errorf("order.mode: %q is not iid or blocked", o.Mode)
	}
	return nil
}

// ByteSize is a memory size in a spec: bytes, or a number with a unit
// (KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024).
type ByteSize int64

// UnmarshalYAML parses a size such as 512MiB.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size such as 2GiB, got a %s", nodeKind(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize reads a size in bytes with an optional unit.
func ParseByteSize(text string) (int64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	number, scale := strings.TrimSpace(text), 1.0
	for _, u := range units {
		if strings.HasSuffix(number, u.suffix) {
			number, scale = strings.TrimSpace(strings.TrimSuffix(number, u.suffix)), u.scale
			break
		}
	}
	v, err := strconv.ParseFloat(number, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*scale >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 2GiB", text)
	}
	return int64(v * scale), nil
}

// removedField marks a spec key that was removed: any value parses, and
// normalise says what replaces it.
type removedField bool

func (r *removedField) UnmarshalYAML(*yaml.Node) error { *r = true; return nil }

// blockGeometry is how the blocked order cuts the sample space into blocks.
//
// Generic experiments (every source generic): a block is a hyper-rectangle
// of whole chunks of the lead source (the first), cell[d] long along each
// dim (a whole number of chunks, at least about twice the crop). Along the
// space dims (the last two) its crops start where their whole window lies
// inside it, so a block's crops decode only its chunks there; along the
// others (time) the cells split the starts, so every start is reached each
// epoch, and a block reaches size−1 past its cell. The cell grid moves by
// a seeded whole number of chunks each epoch. Along a space dim whose
// cells are two chunks or more, that reaches every start over epochs;
// cells of one chunk (where the pool cannot hold blocks of two) never
// reach the starts whose crop straddles a chunk border there, which
// Randomness reports as SpaceReach.
//
// Georeferenced experiments: a block is a run of consecutive t0s (those in
// one cell of dur ns, a whole number of the timed sources' chunks and at
// least about twice their windows) × a tile of tileX × tileY OSGB metres
// (a whole number of chunks of each source's pixels, at least about twice
// its crop); its crops draw their t0 from the run and their location from
// the tile (or its sites). Both grids move by a seeded offset each epoch.
type blockGeometry struct {
	generic      bool
	cell, step   []int64 // generic: per dim of the lead source
	inside       []bool  // generic: whether crops lie inside cells along the dim
	dur          int64   // ns; 0: one time cell
	tileX, tileY float64 // OSGB metres
	// bytes estimates the pool memory of one block's decoded chunks, over
	// every source, as the pool counts it (buffer capacities).
	bytes int64
	// resident is how many blocks a batch draws from at once.
	resident int
	// widePool, when set, is the pool that would give space cells of two
	// chunks, reaching every start over epochs, where one-chunk cells do not.
	widePool int64
}

// wideResident is how many blocks must be resident for the generic order
// to take space cells of two chunks rather than one: wider cells reach the
// starts that straddle chunk borders, but hold fewer blocks in a pool.
const wideResident = 4

// Resident blocks may fill residentShare of the pool (as it counts memory:
// buffer capacities): the rest is slack for the blocks entering while
// others leave, so that least recently used eviction drops retired blocks'
// chunks, not resident ones'. With two thirds, the bench workloads decode
// each chunk about once per epoch (613 decodes of 624 NWP chunks).
const residentShareNum, residentShareDen = 2, 3

// poolFor is the pool that lets n blocks of bytes each be resident.
func poolFor(n int, bytes int64) int64 {
	return ceilDiv(int64(n)*bytes*residentShareDen, residentShareNum)
}

// planOrder sizes the blocked order's blocks and how many are resident.
func (p *Plan) planOrder() error {
	o := p.Spec.Order
	if o.Mode != OrderBlocked {
		return nil
	}
	g := &blockGeometry{generic: true}
	for i := range p.src {
		if p.src[i].kind != kindGeneric {
			g.generic = false
		}
	}
	resident := func(bytes int64) int {
		return int(min(int64(p.BatchSize), int64(o.Pool)*residentShareNum/(residentShareDen*max(bytes, 1))))
	}
	if g.generic {
		wide := p.genericGeometry(2)
		narrow := p.genericGeometry(1)
		switch {
		case resident(wide.bytes) >= min(wideResident, p.BatchSize):
			*g = *wide
		case wide.bytes > narrow.bytes:
			*g = *narrow
			g.widePool = poolFor(min(wideResident, p.BatchSize), wide.bytes)
		default:
			*g = *narrow
		}
	} else {
		p.geoGeometry(g)
	}
	g.resident = resident(g.bytes)
	if g.resident < 2 {
		return fmt.Errorf("order.pool: %s is too small: a batch draws from at least 2 resident blocks, each about %s of decoded chunks "+
			"in the pool, and resident blocks may fill %d/%d of it; give at least %s", sizeString(int64(o.Pool)), sizeString(g.bytes),
			residentShareNum, residentShareDen, sizeString(poolFor(2, g.bytes)))
	}
	p.blocks = g
	return nil
}

// genericGeometry sizes the blocks of a generic experiment, with space
// cells of at least minChunks chunks.
func (p *Plan) genericGeometry(minChunks int64) *blockGeometry {
	g := &blockGeometry{generic: true}
	s, a := &p.Sources[0], p.Sources[0].Array
	nChunks := int64(1)
	nSpace := min(len(s.Size)-1, 2)
	for d, size := range s.Size {
		inside := d >= len(s.Size)-nSpace
		c, n := a.ReadChunkShape[d], a.Shape[d]
		chunks := max(1, ceilDiv(max(2*(size-1), size), c))
		if inside {
			chunks = max(chunks, minChunks)
		}
		r, step := c*chunks, c
		if r >= n || !inside && r >= n-size+1 {
			// One cell: the dim holds no more chunks, or (time) no more
			// starts, than a cell; moving a grid of cells would only split
			// the starts into cells that decode the same chunks.
			r, step = n, 0
		}
		g.cell, g.step, g.inside = append(g.cell, r), append(g.step, step), append(g.inside, inside)
		reach := r
		if !inside {
			reach = min(r+size-1, n)
		}
		nChunks *= min(ceilDiv(reach, c), ceilDiv(n, c)) // edge chunks decode whole
	}
	g.bytes = nChunks * pooledChunkBytes(a)
	for k := 1; k < len(p.Sources); k++ {
		g.bytes += p.footprint(k, nil)
	}
	return g
}

// cellsAlong cuts dim d of a generic experiment into cells of starts, the
// grid moved by o.
func (p *Plan) cellsAlong(d int, o int64) []cellRange {
	g, s := p.blocks, &p.Sources[0]
	shape, r, size := s.Array.Shape[d], g.cell[d], s.Size[d]
	var cells []cellRange
	b := o
	if o > 0 {
		b = o - r
	}
	for ; b < shape; b += r {
		lo, hi := max(b, 0), min(b+r, shape)
		switch {
		case !g.inside[d] && lo <= shape-size:
			cells = append(cells, cellRange{lo, min(hi-1, shape-size)})
		case g.inside[d] && hi-lo >= size:
			cells = append(cells, cellRange{lo, hi - size})
		}
	}
	return cells
}

// String writes the size in MiB or GiB, rounded up to a tenth.
func (b ByteSize) String() string { return sizeString(int64(b)) }

func sizeString(n int64) string {
	up := func(v float64) float64 { return math.Ceil(v*10) / 10 }
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", up(float64(n)/(1<<30)))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", up(float64(n)/(1<<20)))
	}
	return fmt.Sprintf("%.1fKiB", up(float64(n)/(1<<10)))
}

// geoGeometry sizes time cells and tiles from the sources' chunks.
func (p *Plan) geoGeometry(g *blockGeometry) {
	for i := range p.src {
		s := &p.src[i]
		a := p.Sources[i].Array
		switch s.kind {
		case kindTime:
			spacing := s.res / s.stride
			c := a.ReadChunkShape[s.timeDim] * spacing
			span := (s.nT - 1) * s.res
			g.dur = max(g.dur, c*max(1, ceilDiv(2*span, c)))
		case kindNWP:
			if len(s.times) > 1 {
				c := a.ReadChunkShape[s.initDim] * (s.times[1] - s.times[0])
				g.dur = max(g.dur, c)
			}
		}
		if s.grid != nil {
			e := s.grid.extent()
			px, py := (e.x1-e.x0)/float64(s.shape[s.xDim]), (e.y1-e.y0)/float64(s.shape[s.yDim])
			cx, cy := a.ReadChunkShape[s.xDim], a.ReadChunkShape[s.yDim]
			g.tileX = max(g.tileX, float64(cx*max(1, ceilDiv(max(2*(s.w-1), s.w), cx)))*px)
			g.tileY = max(g.tileY, float64(cy*max(1, ceilDiv(max(2*(s.h-1), s.h), cy)))*py)
		}
	}
	for k := range p.src {
		g.bytes += p.footprint(k, g)
	}
}

// pooledChunkBytes is what one decoded read chunk of a costs in a pool of
// decoded chunks: its buffer's capacity, the decoded size rounded up to the
// buffer pool's class (a 1.6 MB chunk holds 2 MiB).
func pooledChunkBytes(a *zarr.Array) int64 {
	n := int64(a.DType.Size)
	for _, c := range a.ReadChunkShape {
		n *= c
	}
	if n > math.MaxInt32 {
		return n
	}
	return int64(bufpool.Capacity(int(n)))
}

// footprint estimates the pool memory of the decoded chunks of source k
// that one block's crops touch: per dim, the extent those crops span, in
// whole chunks plus one for misalignment. g nil: an iid-drawn source (one
// crop).
func (p *Plan) footprint(k int, g *blockGeometry) int64 {
	s, src := &p.src[k], &p.Sources[k]
	a := src.Array
	n := int64(1)
	for d, size := range src.Size {
		e := size
		if g != nil && s.kind != kindGeneric {
			switch d {
			case s.xDim:
				e += int64(g.tileX / ((s.grid.extent().x1 - s.grid.extent().x0) / float64(s.shape[d])))
			case s.yDim:
				e += int64(g.tileY / ((s.grid.extent().y1 - s.grid.extent().y0) / float64(s.shape[d])))
			case s.timeDim:
				e += g.dur / max(s.res/s.stride, 1)
			case s.initDim:
				if len(s.times) > 1 {
					e += g.dur / max(s.times[1]-s.times[0], 1)
				}
			case s.stepDim:
				e = int64(len(s.steps))
			}
		}
		c := a.ReadChunkShape[d]
		n *= min(ceilDiv(min(e, a.Shape[d]), c)+1, ceilDiv(a.Shape[d], c))
	}
	return n * pooledChunkBytes(a)
}

// Resident is how many blocks a batch of the blocked order draws from at
// once, and the estimated decoded bytes of one block; 0, 0 in the iid order.
func (p *Plan) Resident() (blocks int, blockBytes int64) {
	if p.blocks == nil {
		return 0, 0
	}
	return p.blocks.resident, p.blocks.bytes
}

// cellRange is one cell along one axis: [lo, hi] of starts (generic) or
// [lo, hi) of t0 indices.
type cellRange struct{ lo, hi int64 }

// tile is one spatial cell: a box, and its sites when locations are sites.
type tile struct {
	b      box
	sites  []int32
	weight float64
}

// epochBlocks is one epoch's blocks: the cartesian product of cells along
// each axis (generic: each dim; geo: time cells × tiles), block b being
// the mixed-radix digits of b.
type epochBlocks struct {
	axes   [][]cellRange // generic: per dim; geo: one axis of time cells
	tiles  []tile        // geo only
	counts []int64       // samples per block
	order  []int32       // blocks with samples, in the epoch's order
}

func (e *epochBlocks) n() int {
	n := 1
	for _, a := range e.axes {
		n *= len(a)
	}
	if e.tiles != nil {
		n *= len(e.tiles)
	}
	return n
}

// cellsOf returns block b's cell index along each axis (and its tile last).
func (e *epochBlocks) cellsOf(b int, out []int) []int {
	tileIdx := -1
	if e.tiles != nil {
		tileIdx = b % len(e.tiles)
		b /= len(e.tiles)
	}
	out = append(out[:0], make([]int, len(e.axes))...)
	for i := len(e.axes) - 1; i >= 0; i-- {
		out[i] = b % len(e.axes[i])
		b /= len(e.axes[i])
	}
	if tileIdx >= 0 {
		out = append(out, tileIdx)
	}
	return out
}

// blocksOf builds an epoch's blocks and deals its n samples among them in
// proportion to how many distinct samples each can give.
func (p *Plan) blocksOf(split string, epoch int64, n int64) *epochBlocks {
	g := p.blocks
	splitKey := hashString(split)
	off := counterRNG{key: key(p.Spec.Seed, splitKey, uint64(epoch), 0x0ff5e7)}
	e := &epochBlocks{}
	var weights []float64
	if g.generic {
		for d := range p.Sources[0].Size {
			o := int64(0)
			if g.step[d] > 0 {
				o = g.step[d] * int64(off.intn(uint64(g.cell[d]/g.step[d])))
			}
			e.axes = append(e.axes, p.cellsAlong(d, o))
		}
		weights = make([]float64, e.n())
		var digits []int
		for b := range weights {
			digits = e.cellsOf(b, digits)
			w := 1.0
			for d, c := range digits {
				cell := e.axes[d][c]
				w *= float64(cell.hi - cell.lo + 1)
			}
			weights[b] = w
		}
	} else {
		var cells []cellRange
		if t0s := p.t0s[split]; t0s != nil {
			o := int64(0)
			if g.dur > 0 {
				o = int64(off.float64() * float64(g.dur))
			}
			id := func(t int64) int64 {
				if g.dur == 0 {
					return 0
				}
				return int64(math.Floor(float64(t-o) / float64(g.dur)))
			}
			for i := 0; i < len(t0s); {
				j := i + 1
				for j < len(t0s) && id(t0s[j]) == id(t0s[i]) {
					j++
				}
				cells = append(cells, cellRange{int64(i), int64(j)})
				i = j
			}
		} else {
			cells = []cellRange{{0, 1}}
		}
		e.axes = [][]cellRange{cells}
		e.tiles = p.tilesOf(&off)
		weights = make([]float64, e.n())
		var digits []int
		for b := range weights {
			digits = e.cellsOf(b, digits)
			c := cells[digits[0]]
			weights[b] = float64(c.hi-c.lo) * e.tiles[digits[1]].weight
		}
	}
	e.counts = apportion(n, weights)
	perm := newPermutation(uint64(len(weights)), key(p.Spec.Seed, splitKey, uint64(epoch), 0xb10c))
	for i := range uint64(len(weights)) {
		if b := int32(perm.at(i)); e.counts[b] > 0 {
			e.order = append(e.order, b)
		}
	}
	return e
}

// tilesOf cuts the common area into tiles, weighted by the sites in them
// or by the share of their area where crops fit; tiles with no weight are
// dropped.
func (p *Plan) tilesOf(off *counterRNG) []tile {
	g, b := p.blocks, p.bounds
	ox, oy := off.float64()*g.tileX, off.float64()*g.tileY
	x0, y0 := b.x0-ox, b.y0-oy
	nx := max(1, int(math.Ceil((b.x1-x0)/g.tileX)))
	ny := max(1, int(math.Ceil((b.y1-y0)/g.tileY)))
	if g.tileX <= 0 || g.tileY <= 0 || nx*ny > 1<<20 {
		nx, ny, x0, y0 = 1, 1, b.x0, b.y0
	}
	all := make([]tile, nx*ny)
	for iy := range ny {
		for ix := range nx {
			x, y := x0+float64(ix)*g.tileX, y0+float64(iy)*g.tileY
			all[iy*nx+ix].b = box{max(x, b.x0), min(x+g.tileX, b.x1), max(y, b.y0), min(y+g.tileY, b.y1)}
			if nx*ny == 1 {
				all[0].b = b
			}
		}
	}
	if p.sites != nil {
		// Every site in exactly one tile, those beyond the area's edges
		// (padding) in the nearest.
		for i, l := range p.sites {
			ix := min(max(int(math.Floor((l.x-x0)/g.tileX)), 0), nx-1)
			iy := min(max(int(math.Floor((l.y-y0)/g.tileY)), 0), ny-1)
			if nx*ny == 1 {
				ix, iy = 0, 0
			}
			t := &all[iy*nx+ix]
			t.sites = append(t.sites, int32(i))
			t.weight++
		}
	} else {
		const probes = 32
		for i := range all {
			t := &all[i]
			q := *p
			q.bounds = t.b
			rng := counterRNG{key: key(off.key, uint64(i))}
			ok := 0
			for range probes {
				if _, in := q.drawLocation(&rng); in {
					ok++
				}
			}
			t.weight = (t.b.x1 - t.b.x0) * (t.b.y1 - t.b.y0) * float64(ok) / probes
		}
	}
	var tiles []tile
	for _, t := range all {
		if t.weight > 0 {
			tiles = append(tiles, t)
		}
	}
	if len(tiles) == 0 {
		// No probe fitted anywhere (crops fit only in slivers): one tile,
		// the whole area, drawn as iid draws.
		tiles = []tile{{b: b, weight: 1}}
	}
	return tiles
}

// apportion deals n among weights in proportion (largest remainders, ties
// to the lower index).
func apportion(n int64, weights []float64) []int64 {
	var total float64
	for _, w := range weights {
		total += w
	}
	counts := make([]int64, len(weights))
	if total <= 0 {
		return counts
	}
	type rem struct {
		i int
		f float64
	}
	rems := make([]rem, len(weights))
	var dealt int64
	for i, w := range weights {
		q := float64(n) * w / total
		counts[i] = int64(q)
		dealt += counts[i]
		rems[i] = rem{i, q - float64(counts[i])}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].f > rems[b].f })
	for k := 0; dealt < n; k = (k + 1) % len(rems) {
		counts[rems[k].i]++
		dealt++
	}
	return counts
}

// slot is one epoch position of the blocked order: the j-th sample of
// block b.
type slot struct{ b, j int32 }

// blockRun is the samples [lo, hi) of block b.
type blockRun struct {
	b      int32
	lo, hi int64
}

// runs lists every block's samples, the blocks in the epoch's order.
func (e *epochBlocks) runs() []blockRun {
	out := make([]blockRun, 0, len(e.order))
	for _, b := range e.order {
		out = append(out, blockRun{b, 0, e.counts[b]})
	}
	return out
}

// rankRuns is rank's part of an epoch of n samples whose blocks are all:
// the blocks in the epoch's order cut into worldSize runs of consecutive
// blocks holding n/worldSize samples each (the first n%worldSize ranks one
// more), so that each rank decodes its own blocks, and at most one block
// at each cut is shared by two ranks.
func rankRuns(all []blockRun, n int64, rank, worldSize int) []blockRun {
	w, r := int64(worldSize), int64(rank)
	start := r*(n/w) + min(r, n%w)
	end := start + n/w
	if r < n%w {
		end++
	}
	var out []blockRun
	var at int64 // samples before the current run
	for _, run := range all {
		lo, hi := max(run.lo, run.lo+start-at), min(run.hi, run.lo+end-at)
		if lo < hi {
			out = append(out, blockRun{run.b, lo, hi})
		}
		at += run.hi - run.lo
		if at >= end {
			break
		}
	}
	return out
}

// sequence lays out a blocked epoch: blocks enter in the epoch's order,
// resident at most g.resident at a time, and each position draws from a
// resident block with probability proportional to the samples it has
// left, so blocks drain together and every batch mixes many of them.
func (p *Plan) sequence(split string, epoch int64, e *epochBlocks, n int64) []slot {
	rng := counterRNG{key: key(p.Spec.Seed, hashString(split), uint64(epoch), 0x5e9)}
	return p.sequenceOf(rng, e.runs(), n)
}

// sequenceOf lays out at most n positions of runs, drawing with rng.
func (p *Plan) sequenceOf(rng counterRNG, runs []blockRun, n int64) []slot {
	out := make([]slot, 0, n)
	type live struct {
		b         int32
		next, end int64
	}
	res := make([]live, 0, p.blocks.resident)
	nextRun := 0
	var left int64
	for int64(len(out)) < n {
		for len(res) < p.blocks.resident && nextRun < len(runs) {
			run := runs[nextRun]
			nextRun++
			res = append(res, live{b: run.b, next: run.lo, end: run.hi})
			left += run.hi - run.lo
		}
		if left == 0 {
			break // no block has samples left: nothing fits (cannot happen with a valid plan)
		}
		r := int64(rng.intn(uint64(left)))
		k := 0
		for ; r >= res[k].end-res[k].next; k++ {
			r -= res[k].end - res[k].next
		}
		out = append(out, slot{res[k].b, int32(res[k].next)})
		res[k].next++
		left--
		if res[k].next == res[k].end {
			res = append(res[:k], res[k+1:]...)
		}
	}
	return out
}

// rankSequence is rank's positions of a blocked epoch of n samples, and
// each one's position in the whole epoch's sequence (its Sample.Index).
// One rank reads the epoch's sequence; with more, each rank lays out its
// own blocks (rankRuns) the same way, so that ranks divide the decoding
// as well as the samples, and together read the one-rank epoch.
func (p *Plan) rankSequence(split string, epoch int64, e *epochBlocks, n int64, rank, worldSize int) (seq []slot, index []int64) {
	global := p.sequence(split, epoch, e, n)
	if worldSize == 1 {
		return global, nil
	}
	runs := rankRuns(e.runs(), n, rank, worldSize)
	var share int64
	first := make(map[int32]int, len(runs)) // block → its run
	for k, run := range runs {
		share += run.hi - run.lo
		first[run.b] = k
	}
	rng := counterRNG{key: key(p.Spec.Seed, hashString(split), uint64(epoch), 0x5e9, uint64(rank), uint64(worldSize))}
	seq = p.sequenceOf(rng, runs, share)
	at := make(map[slot]int64, len(seq))
	for i, sl := range global {
		if k, ok := first[sl.b]; ok && int64(sl.j) >= runs[k].lo && int64(sl.j) < runs[k].hi {
			at[sl] = int64(i)
		}
	}
	index = make([]int64, len(seq), ceilDiv(n, int64(worldSize)))
	for i, sl := range seq {
		index[i] = at[sl]
	}
	// Padding, as torch's DistributedSampler pads: the epoch's first
	// positions again, for the ranks one sample short.
	for i := int64(0); int64(len(seq)) < ceilDiv(n, int64(worldSize)); i++ {
		seq = append(seq, global[i%n])
		index = append(index, i%n)
	}
	return seq, index
}

// blockSample draws the j-th sample of block b, at epoch position i.
func (p *Plan) blockSample(split string, epoch, i int64, e *epochBlocks, sl slot, digits []int) Sample {
	rng := counterRNG{key: key(p.Spec.Seed, hashString(split), uint64(epoch), 0xb10c, uint64(sl.b), uint64(sl.j))}
	s := Sample{Epoch: epoch, Index: i, T0: NaT, X: math.NaN(), Y: math.NaN(), Lat: math.NaN(), Lon: math.NaN()}
	digits = e.cellsOf(int(sl.b), digits)
	if p.blocks.generic {
		p.cut(&s, location{}, &rng)
		w := s.Windows[0].Start
		for d, c := range digits {
			cell := e.axes[d][c]
			w[d] = cell.lo + int64(rng.intn(uint64(cell.hi-cell.lo+1)))
		}
		return s
	}
	cell, t := e.axes[0][digits[0]], &e.tiles[digits[1]]
	if t0s := p.t0s[split]; t0s != nil {
		s.T0 = t0s[cell.lo+int64(rng.intn(uint64(cell.hi-cell.lo)))]
	}
	var loc location
	if p.sites != nil {
		loc = p.sites[t.sites[rng.intn(uint64(len(t.sites)))]]
	} else {
		q := *p
		q.bounds = t.b
		ok := false
		for range maxDraws {
			if loc, ok = q.drawLocation(&rng); ok {
				break
			}
		}
		// A tile where crops rarely fit: fall back on the whole area.
		for range maxDraws {
			if ok {
				break
			}
			loc, ok = p.drawLocation(&rng)
		}
	}
	p.cut(&s, loc, &rng)
	return s
}

// StreamBatches yields the batches of one stream of one rank of an epoch.
// In the blocked order each rank reads its own blocks (rankSequence), cut
// into batches of BatchSize consecutive positions, and stream s of streams
// takes every streams-th batch, so what a rank reads does not depend on
// its number of streams (or DataLoader workers), and ranks read disjoint
// samples (but for the padding below). In the iid order it is Batches of
// shard rank·streams+stream of worldSize·streams.
// With more than one rank the epoch is padded: in the iid order to a
// whole number of samples per stream (see paddedLen), in the blocked order
// to ceil(n/worldSize) samples per rank, repeating the epoch's first
// positions, so that every rank yields as many batches.
func (p *Plan) StreamBatches(split string, epoch int64, rank, worldSize, stream, streams int) iter.Seq[[]Sample] {
	return p.StreamBatchesFrom(split, epoch, rank, worldSize, stream, streams, 0)
}

// StreamBatchesFrom is StreamBatches without its first from batches: the
// tail a stream resumed after from delivered batches still owes. Skipped
// batches are never drawn, so resuming late in an epoch costs no crops.
// A from outside [0, StreamBatchCount] yields nothing.
func (p *Plan) StreamBatchesFrom(split string, epoch int64, rank, worldSize, stream, streams int, from int64) iter.Seq[[]Sample] {
	if p.Spec.Order.Mode != OrderBlocked {
		return p.batchesFrom(split, epoch, rank*streams+stream, worldSize*streams, from, worldSize > 1)
	}
	return func(yield func([]Sample) bool) {
		n, err := p.EpochLen(split)
		if err != nil || worldSize <= 0 || rank < 0 || rank >= worldSize || streams <= 0 || stream < 0 || stream >= streams ||
			from < 0 || from > p.StreamBatchCount(split, rank, worldSize, stream, streams) {
			return
		}
		e := p.blocksOf(split, epoch, n)
		seq, index := p.rankSequence(split, epoch, e, n, rank, worldSize)
		bs := int64(p.BatchSize)
		var digits []int
		for k := int64(stream) + from*int64(streams); k*bs < int64(len(seq)); k += int64(streams) {
			batch := make([]Sample, 0, p.BatchSize)
			for i := k * bs; i < min((k+1)*bs, int64(len(seq))); i++ {
				at := i
				if index != nil {
					at = index[i]
				}
				batch = append(batch, p.blockSample(split, epoch, at, e, seq[i], digits))
			}
			if !yield(batch) {
				return
			}
		}
	}
}

// StreamBatchCount is how many batches StreamBatches yields: every batch
// but a stream's last is full, in either order.
func (p *Plan) StreamBatchCount(split string, rank, worldSize, stream, streams int) int64 {
	return ceilDiv(p.StreamLen(split, rank, worldSize, stream, streams), int64(p.BatchSize))
}

// StreamLen is how many samples StreamBatches yields.
func (p *Plan) StreamLen(split string, rank, worldSize, stream, streams int) int64 {
	n, err := p.EpochLen(split)
	if err != nil {
		return 0
	}
	if worldSize <= 0 || streams <= 0 {
		return 0
	}
	shards := int64(worldSize) * int64(streams)
	if p.Spec.Order.Mode != OrderBlocked {
		if worldSize > 1 {
			n = paddedLen(n, shards)
		}
		return shareOf(n, int64(rank*streams+stream), shards)
	}
	// A rank's share of the blocked epoch (padded), in batches all full
	// but its last.
	m := ceilDiv(n, int64(worldSize))
	bs := int64(p.BatchSize)
	batches := ceilDiv(m, bs)
	total := shareOf(batches, int64(stream), int64(streams)) * bs
	if last := batches - 1; last >= 0 && last%int64(streams) == int64(stream) {
		total -= last*bs + bs - m
	}
	return total
}

// shareOf counts the i in [0, n) with i % m == r.
func shareOf(n, r, m int64) int64 {
	if r >= n {
		return 0
	}
	return (n-r-1)/m + 1
}

// Samples returns the first n samples of an epoch of split, in order.
func (p *Plan) Samples(split string, epoch, n int64) ([]Sample, error) {
	total, err := p.EpochLen(split)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > total {
		return nil, fmt.Errorf("split %q: %d samples asked of an epoch of %d", split, n, total)
	}
	out := make([]Sample, 0, n)
	if p.Spec.Order.Mode != OrderBlocked {
		for i := range n {
			out = append(out, p.sample(split, total, epoch, i))
		}
		return out, nil
	}
	e := p.blocksOf(split, epoch, total)
	seq := p.sequence(split, epoch, e, total)
	var digits []int
	for i := range min(n, int64(len(seq))) {
		out = append(out, p.blockSample(split, epoch, i, e, seq[i], digits))
	}
	return out, nil
}

func (p *Plan) blockedSample(split string, epoch, i int64) (Sample, error) {
	n, err := p.EpochLen(split)
	if err != nil {
		return Sample{}, err
	}
	e := p.blocksOf(split, epoch, n)
	seq := p.sequence(split, epoch, e, n)
	if i >= int64(len(seq)) {
		return Sample{}, fmt.Errorf("split %q: position %d is outside the blocked epoch's %d", split, i, len(seq))
	}
	return p.blockSample(split, epoch, i, e, seq[i], nil), nil
}
