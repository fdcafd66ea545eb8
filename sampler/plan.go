package sampler

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// Plan is a validated experiment bound to its data: everything needed to
// generate any sample of any epoch, shard and split. It is immutable after
// NewPlan, so any number of goroutines may share it.
type Plan struct {
	Spec    *Spec
	Sources []Source // sorted by name
	// BatchSize, OutputDType and Streams are the spec's, defaults filled.
	BatchSize   int
	OutputDType string
	Streams     int
	// DroppedSites counts the sites that out_of_bounds: resample left out
	// because some source's crop there would reach outside its array.
	DroppedSites int

	src []planSource
	// t0s holds each split's valid t0s (ns), ascending; nil map when no
	// source has time.
	t0s map[string][]int64
	// sites are the site locations that fit every source; nil for uniform
	// locations.
	sites []location
	// bounds is where uniform locations are drawn (OSGB), the intersection
	// of every georeferenced source's extent.
	bounds   box
	hasSpace bool
	// blocks is the blocked order's geometry; nil in the iid order.
	blocks *blockGeometry
}

// location is a crop centre in OSGB metres and WGS84 degrees.
type location struct{ x, y, lat, lon float64 }

type box struct{ x0, x1, y0, y1 float64 }

type sourceKind int

const (
	kindGeneric sourceKind = iota
	kindStatic             // georeferenced, no time
	kindTime               // a time dim
	kindNWP                // init_time and step dims
)

// planSource is what sample generation needs of one source beyond Source.
type planSource struct {
	kind  sourceKind
	shape []int64
	// Time: own dim indices (-1 when absent) and coordinate values (ns).
	timeDim, initDim, stepDim int
	times                     []int64 // time dim labels, or NWP init_times
	steps                     []int64 // NWP step labels (ns)
	startOff, endOff, res     int64
	nT                        int64
	stride                    int64   // index step between output time steps
	offGrid                   []int64 // labels off the axis' grid, never in a window
	initDelay, maxStaleness   int64
	// Space.
	yDim, xDim, chDim int
	chStart           int64 // window start along the channel dim
	grid              grid
	periodicX         bool // the x dim wraps: see Source.Periodic
	h, w              int64
	dropout           *DropoutSpec
}

// grid maps an OSGB location onto a source's pixels.
type grid interface {
	// pixel returns the (row, col) of the pixel nearest (x, y), and false
	// when (x, y) lies outside the grid.
	pixel(x, y float64) (row, col int64, ok bool)
	// extent is the grid's bounding box in OSGB.
	extent() box
}

// Opener opens the store behind a spec's store path or URL.
type Opener func(ctx context.Context, url string) (zarr.Store, error)

// NewPlan opens every source's store and array, validates the spec against
// the data (errors name the spec field) and precomputes the valid t0s and
// locations.
func NewPlan(ctx context.Context, spec *Spec, open func(ctx context.Context, url string) (zarr.Store, error)) (*Plan, error) {
	p := &Plan{Spec: spec, BatchSize: spec.BatchSize, OutputDType: spec.OutputDType, Streams: spec.Streams}
	names := make([]string, 0, len(spec.Sources))
	for n := range spec.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	stores := map[string]zarr.Store{}
	for _, name := range names {
		ss := spec.Sources[name]
		st, ok := stores[ss.Store]
		if !ok {
			var err error
			st, err = open(ctx, ss.Store)
			if err != nil {
				return nil, fmt.Errorf("sources.%s.store: %w", name, err)
			}
			stores[ss.Store] = st
		}
		s, ps, err := bindSource(ctx, name, ss, st)
		if err != nil {
			return nil, fmt.Errorf("sources.%s.%w", name, err)
		}
		p.Sources = append(p.Sources, s)
		p.src = append(p.src, ps)
	}
	// Bound what one batch makes the cropper allocate.
	const maxBatchBytes = 8 << 30
	var batchBytes float64
	for _, s := range p.Sources {
		n := float64(p.BatchSize) * 8
		for _, d := range s.OutShape {
			n *= float64(d)
		}
		batchBytes += n
	}
	if batchBytes > maxBatchBytes {
		return nil, fmt.Errorf("batch_size: %d samples of these crops take %.1f GiB, more than the %d GiB allowed per batch", p.BatchSize, batchBytes/(1<<30), maxBatchBytes>>30)
	}
	if err := p.planTime(); err != nil {
		return nil, err
	}
	if err := p.planSpace(); err != nil {
		return nil, err
	}
	if err := p.planOrder(); err != nil {
		return nil, err
	}
	return p, nil
}

// planTime computes each split's valid t0s: candidates every t0_resolution
// inside the split's periods at which every timed source has its whole
// window (gaps in the data therefore split periods, as in ocf-data-sampler's
// find_contiguous_time_periods).
func (p *Plan) planTime() error {
	var timed []int
	res := int64(p.Spec.T0Resolution)
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	for i, s := range p.src {
		if s.kind != kindTime && s.kind != kindNWP {
			continue
		}
		timed = append(timed, i)
		if p.Spec.T0Resolution == 0 && (res == 0 || s.res < res) {
			res = s.res
		}
		// The span of t0s this source could possibly serve.
		var first, last int64
		// One resolution of slack: window starts round down.
		if s.kind == kindTime {
			first, last = s.times[0]-s.startOff-s.res, s.times[len(s.times)-1]-s.endOff+s.res
		} else {
			first = s.times[0] + s.initDelay - s.res
			last = s.times[len(s.times)-1] + s.steps[len(s.steps)-1] - s.endOff + s.res
			if s.maxStaleness > 0 {
				last = min(last, s.times[len(s.times)-1]+s.maxStaleness)
			}
		}
		lo, hi = max(lo, first), min(hi, last)
	}
	if len(timed) == 0 {
		if len(p.Spec.Splits) > 0 {
			return errors.New("splits: no source has a time dim")
		}
		return nil
	}
	if lo > hi {
		return fmt.Errorf("sources: the time windows of the sources never overlap: no valid t0 (%s)", p.coverage(timed))
	}
	splits := p.Spec.Splits
	if len(splits) == 0 {
		splits = map[string][]Period{"train": {{Start: Time(lo), End: Time(hi)}}}
	}
	p.t0s = map[string][]int64{}
	const maxCandidates = 1 << 26
	names := make([]string, 0, len(splits))
	for name := range splits {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		periods := splits[name]
		var t0s []int64
		for _, per := range periods {
			a, b := max(int64(per.Start), lo), min(int64(per.End), hi)
			if a > b {
				continue
			}
			// Align candidates to multiples of the resolution since the Unix epoch.
			a = ceilDiv(a, res) * res
			if (b-a)/res > maxCandidates {
				return fmt.Errorf("splits.%s: more than %d candidate t0s at t0_resolution %v", name, maxCandidates, time.Duration(res))
			}
			for t := a; t <= b; t += res {
				if p.validT0(timed, t) {
					t0s = append(t0s, t)
				}
			}
		}
		slices.Sort(t0s)
		t0s = slices.Compact(t0s)
		p.t0s[name] = t0s
	}
	// A split may be empty (a small test dataset without its val period);
	// EpochLen reports it. Every split empty means the spec cannot work.
	for _, name := range names {
		if len(p.t0s[name]) > 0 {
			return nil
		}
	}
	err := fmt.Errorf("splits.%s: no valid t0: %s", names[0], p.explainNoT0(names[0], timed))
	for _, i := range timed {
		if s := &p.src[i]; len(s.offGrid) > 0 {
			err = fmt.Errorf("%w; source %s has %d time labels off its grid (%s)", err, p.Sources[i].Name, len(s.offGrid), fmtTimes(s.offGrid, 5, s.kind == kindNWP))
		}
	}
	return err
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

func (p *Plan) validT0(timed []int, t0 int64) bool {
	for _, i := range timed {
		if _, ok := p.src[i].timeStart(t0); !ok {
			return false
		}
	}
	return true
}

// timeStart returns the window start along the time dim (time sources) or
// the init_time index and step index packed as init*len(steps)+step (NWP).
func (s *planSource) timeStart(t0 int64) (int64, bool) {
	switch s.kind {
	case kindTime:
		first := s.firstLabel(t0)
		i, ok := slices.BinarySearch(s.times, first)
		if !ok || int64(i)+(s.nT-1)*s.stride >= int64(len(s.times)) {
			return 0, false
		}
		// Every step must be present at the window's resolution, and the
		// steps between them at the data's spacing: a gap or an irregular
		// stretch makes the t0 invalid.
		for j := int64(1); j <= (s.nT-1)*s.stride; j++ {
			if s.times[int64(i)+j] != first+j*s.res/s.stride {
				return 0, false
			}
		}
		return int64(i), true
	case kindNWP:
		return s.nwpStart(t0, t0)
	}
	return 0, false
}

// firstLabel is the time of a window's first step: t0 + start rounded
// down to the resolution, so that when t0_resolution is finer than the
// source's resolution no step lies after t0 + end (rounding up would hand a
// forecasting model a frame from its future).
func (s *planSource) firstLabel(t0 int64) int64 {
	return floorDiv(t0+s.startOff, s.res) * s.res
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// nwpStart picks the latest init_time at or before available − init_delay
// whose steps cover t0's window, within max_staleness of t0, and returns
// it packed as init*len(steps)+step.
func (s *planSource) nwpStart(t0, available int64) (int64, bool) {
	n, _ := slices.BinarySearch(s.times, available-s.initDelay+1)
	for k := n - 1; k >= 0; k-- {
		init := s.times[k]
		if s.maxStaleness > 0 && t0-init > s.maxStaleness {
			return 0, false
		}
		first := s.firstLabel(t0) - init
		j, ok := slices.BinarySearch(s.steps, first)
		if !ok || int64(j)+(s.nT-1)*s.stride >= int64(len(s.steps)) {
			// An older run reaches further ahead only if its last step
			// does; keep looking back while the first step could exist.
			if first > s.steps[len(s.steps)-1] {
				return 0, false
			}
			continue
		}
		good := true
		for m := int64(0); m <= (s.nT-1)*s.stride; m++ {
			if s.steps[int64(j)+m] != first+m*s.res/s.stride {
				good = false
				break
			}
		}
		if good {
			return int64(k)*int64(len(s.steps)) + int64(j), true
		}
	}
	return 0, false
}

// maxDraws bounds the rejection sampling of uniform locations.
const maxDraws = 1000

// planSpace finds where locations can be drawn: the sites that fit every
// source, or the intersection of the sources' extents.
func (p *Plan) planSpace() error {
	var geo []int
	b := box{math.Inf(-1), math.Inf(1), math.Inf(-1), math.Inf(1)}
	for i, s := range p.src {
		if s.grid == nil {
			continue
		}
		geo = append(geo, i)
		e := s.grid.extent()
		b = box{max(b.x0, e.x0), min(b.x1, e.x1), max(b.y0, e.y0), min(b.y1, e.y1)}
	}
	if len(geo) == 0 {
		if p.Spec.Locations.Sites != "" {
			return errors.New("locations.sites: no source has dims y and x")
		}
		return nil
	}
	p.hasSpace = true
	if b.x0 > b.x1 || b.y0 > b.y1 {
		return errors.New("sources: the sources' areas do not overlap")
	}
	p.bounds = b
	if p.Spec.Locations.Sites != "" {
		sites, err := readSites(p.Spec.Locations.Sites)
		if err != nil {
			return fmt.Errorf("locations.sites: %w", err)
		}
		var dropped []string
		for _, l := range sites {
			if p.Spec.OutOfBounds == "pad" || p.fits(l) {
				p.sites = append(p.sites, l)
				continue
			}
			if p.DroppedSites++; len(dropped) < 5 {
				dropped = append(dropped, fmt.Sprintf("(%.4g, %.4g)", l.lat, l.lon))
			}
		}
		if p.DroppedSites > 0 {
			slog.Warn("out_of_bounds resample: sites dropped, a crop there reaches outside a source's array",
				"dropped", p.DroppedSites, "of", len(sites), "first (lat, lon)", strings.Join(dropped, " "))
		}
		if len(p.sites) == 0 {
			return fmt.Errorf("locations.sites: none of the %d sites has every source's crop inside its array", len(sites))
		}
		return nil
	}
	// Check that uniform draws can succeed at all.
	rng := counterRNG{key: key(p.Spec.Seed, 0xb0c5)}
	for range maxDraws {
		if _, ok := p.drawLocation(&rng); ok {
			return nil
		}
	}
	return fmt.Errorf("sources: no location in %d draws has every source's crop inside its array: crops too large for the common area?", maxDraws)
}

// fits reports whether every source's crop centred at l lies inside its array.
func (p *Plan) fits(l location) bool {
	for i := range p.src {
		s := &p.src[i]
		if s.grid == nil {
			continue
		}
		r, c, ok := s.grid.pixel(l.x, l.y)
		if !ok {
			return false
		}
		r0, c0 := r-s.h/2, c-s.w/2
		if r0 < 0 || r0+s.h > s.shape[s.yDim] {
			return false
		}
		if !s.periodicX && (c0 < 0 || c0+s.w > s.shape[s.xDim]) {
			return false
		}
	}
	return true
}

func (p *Plan) drawLocation(rng *counterRNG) (location, bool) {
	x := p.bounds.x0 + rng.float64()*(p.bounds.x1-p.bounds.x0)
	y := p.bounds.y0 + rng.float64()*(p.bounds.y1-p.bounds.y0)
	l := location{x: x, y: y}
	ok := true
	if p.Spec.OutOfBounds == "pad" {
		for i := range p.src {
			if p.src[i].grid != nil {
				if _, _, in := p.src[i].grid.pixel(x, y); !in {
					ok = false
				}
			}
		}
	} else {
		ok = p.fits(l)
	}
	if ok {
		l.lat, l.lon = OSGBToWGS84(x, y)
	}
	return l, ok
}

// Splits returns the split names, sorted.
func (p *Plan) Splits() []string {
	if p.t0s == nil {
		return []string{"train"}
	}
	names := make([]string, 0, len(p.t0s))
	for n := range p.t0s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EpochLen returns the number of samples in one epoch of split.
func (p *Plan) EpochLen(split string) (int64, error) {
	var nT0 int64 = 1
	if p.t0s != nil {
		t0s, ok := p.t0s[split]
		if !ok {
			return 0, fmt.Errorf("split %q: not in the spec (have %v)", split, p.Splits())
		}
		nT0 = int64(len(t0s))
		if nT0 == 0 {
			return 0, fmt.Errorf("split %q: no valid t0: %s", split, p.explainNoT0(split, p.timedSources()))
		}
	} else if split != "train" {
		return 0, fmt.Errorf("split %q: the experiment has no time, so its only split is train", split)
	}
	if p.sites != nil {
		return nT0 * int64(len(p.sites)), nil
	}
	if p.Spec.SamplesPerEpoch > 0 {
		return p.Spec.SamplesPerEpoch, nil
	}
	if p.t0s == nil {
		return 1000, nil
	}
	// Every t0 once.
	return nT0, nil
}

// Batches yields the batches of one shard of one epoch. In the iid order
// the epoch is a seeded permutation of [0, EpochLen); shard s of n takes
// epoch positions i with i % n == s, in order, grouped into batches of
// BatchSize (the last partial batch kept), and the sample at position i is
// a pure function of (spec, seed, split, epoch, i), whatever the shard
// count. In the blocked order shard s of n is rank s of world size n (see
// StreamBatches). An unknown split or a bad shard yields nothing; check
// with EpochLen first.
func (p *Plan) Batches(split string, epoch int64, shard, nShards int) iter.Seq[[]Sample] {
	if p.Spec.Order.Mode == OrderBlocked {
		return p.StreamBatches(split, epoch, shard, nShards, 0, 1)
	}
	return p.batchesFrom(split, epoch, shard, nShards, 0, false)
}

// batchesFrom is the iid Batches without the shard's first from batches.
// With pad the epoch is padded to a whole number of positions per shard
// (see paddedLen).
func (p *Plan) batchesFrom(split string, epoch int64, shard, nShards int, from int64, pad bool) iter.Seq[[]Sample] {
	return func(yield func([]Sample) bool) {
		n, err := p.EpochLen(split)
		if err != nil || nShards <= 0 || shard < 0 || shard >= nShards {
			return
		}
		total := n
		if pad {
			total = paddedLen(n, int64(nShards))
		}
		if from < 0 || from > ceilDiv(shareOf(total, int64(shard), int64(nShards)), int64(p.BatchSize)) {
			return
		}
		// Position shard + k·nShards is the shard's k-th sample: from
		// batches in, k = from·BatchSize.
		stride := int64(nShards)
		batch := make([]Sample, 0, p.BatchSize)
		stopped := false
		for i := int64(shard) + from*int64(p.BatchSize)*stride; i < total && !stopped; i += stride {
			batch = append(batch, p.sample(split, n, epoch, i%n))
			if len(batch) == p.BatchSize {
				if !yield(batch) {
					stopped = true
				}
				batch = make([]Sample, 0, p.BatchSize)
			}
		}
		if len(batch) > 0 && !stopped {
			yield(batch)
		}
	}
}

// Sample returns the sample at position i (0 <= i < EpochLen) of an epoch
// of split: the one Batches yields there.
func (p *Plan) Sample(split string, epoch, i int64) (Sample, error) {
	n, err := p.EpochLen(split)
	if err != nil {
		return Sample{}, err
	}
	if i < 0 || i >= n {
		return Sample{}, fmt.Errorf("split %q: position %d is outside the epoch [0, %d)", split, i, n)
	}
	if p.Spec.Order.Mode == OrderBlocked {
		return p.blockedSample(split, epoch, i)
	}
	return p.sample(split, n, epoch, i), nil
}

// paddedLen is n rounded up to a multiple of m: an epoch shared by more
// than one rank is padded, as torch's DistributedSampler pads it, by
// repeating its first positions, so that every rank yields as many batches
// and no rank waits in a DDP collective for one that has run out.
func paddedLen(n, m int64) int64 {
	if n <= 0 || m <= 0 {
		return n
	}
	return ceilDiv(n, m) * m
}

// sample generates position i of an iid epoch of n samples: the epoch is a
// keyed permutation of the items.
func (p *Plan) sample(split string, n, epoch, i int64) Sample {
	splitKey := hashString(split)
	perm := newPermutation(uint64(n), key(p.Spec.Seed, splitKey, uint64(epoch)))
	item := int64(perm.at(uint64(i)))
	rng := counterRNG{key: key(p.Spec.Seed, splitKey, uint64(epoch), uint64(item))}
	s := Sample{Epoch: epoch, Index: i, T0: NaT, X: math.NaN(), Y: math.NaN(), Lat: math.NaN(), Lon: math.NaN()}
	var loc location
	switch {
	case p.sites != nil:
		loc = p.sites[item%int64(len(p.sites))]
		if p.t0s != nil {
			s.T0 = p.t0s[split][item/int64(len(p.sites))]
		}
	case p.t0s != nil && p.Spec.SamplesPerEpoch == 0:
		s.T0 = p.t0s[split][item]
	case p.t0s != nil:
		t0s := p.t0s[split]
		s.T0 = t0s[rng.intn(uint64(len(t0s)))]
	}
	if p.sites == nil && p.hasSpace {
		for range maxDraws {
			l, ok := p.drawLocation(&rng)
			loc = l
			if ok {
				break
			}
		}
	}
	p.cut(&s, loc, &rng)
	return s
}

// cut sets s's location and cuts every source's window for it.
func (p *Plan) cut(s *Sample, loc location, rng *counterRNG) {
	if p.hasSpace {
		s.X, s.Y, s.Lat, s.Lon = loc.x, loc.y, loc.lat, loc.lon
	}
	s.Windows = make([]Window, len(p.src))
	for k := range p.src {
		s.Windows[k] = p.window(k, s, rng)
	}
}

// window cuts source k for sample s.
func (p *Plan) window(k int, s *Sample, rng *counterRNG) Window {
	ps, src := &p.src[k], &p.Sources[k]
	w := Window{Start: make([]int64, len(ps.shape))}
	if ps.kind == kindGeneric {
		for d := range ps.shape {
			w.Start[d] = int64(rng.intn(uint64(ps.shape[d] - src.Size[d] + 1)))
		}
		return w
	}
	if ps.chDim >= 0 {
		w.Start[ps.chDim] = ps.chStart
	}
	r, c, _ := ps.grid.pixel(s.X, s.Y)
	w.Start[ps.yDim], w.Start[ps.xDim] = r-ps.h/2, c-ps.w/2
	if ps.periodicX {
		n := ps.shape[ps.xDim]
		w.Start[ps.xDim] = (w.Start[ps.xDim]%n + n) % n
	}
	w.AvailableT = ps.nT
	switch ps.kind {
	case kindTime:
		i, _ := ps.timeStart(s.T0)
		w.Start[ps.timeDim] = i
	case kindNWP:
		packed, _ := ps.timeStart(s.T0)
		w.Start[ps.initDim] = packed / int64(len(ps.steps))
		w.Start[ps.stepDim] = packed % int64(len(ps.steps))
	}
	if d := ps.dropout; d != nil && ps.kind != kindStatic {
		// Drawn from a key of its own so that turning dropout on or off
		// leaves every other draw unchanged.
		drng := counterRNG{key: key(rng.key, uint64(k), 0xd7)}
		if drng.float64() < d.Probability {
			cut := s.T0 + int64(d.Offsets[drng.intn(uint64(len(d.Offsets)))])
			if ps.kind == kindNWP {
				// As ocf-data-sampler: an NWP dropout falls back to the
				// latest run available at the cut. When no older run covers
				// the window the newest one is kept.
				if packed, ok := ps.nwpStart(s.T0, cut); ok {
					w.Start[ps.initDim] = packed / int64(len(ps.steps))
					w.Start[ps.stepDim] = packed % int64(len(ps.steps))
				}
			} else {
				// As ocf-data-sampler's history dropout: steps after the
				// cut are missing.
				labels := p.TimeLabels(k, w)
				w.AvailableT = int64(sort.Search(len(labels), func(j int) bool { return labels[j] > cut }))
			}
		}
	}
	return w
}

// TimeLabels returns the time (ns) of each T step of window w of source
// src: the time coordinate, or for NWP init_time + step. Nil for sources
// without time.
func (p *Plan) TimeLabels(src int, w Window) []int64 {
	ps := &p.src[src]
	switch ps.kind {
	case kindTime:
		i := w.Start[ps.timeDim]
		out := make([]int64, ps.nT)
		for m := range out {
			out[m] = ps.times[i+int64(m)*ps.stride]
		}
		return out
	case kindNWP:
		init := ps.times[w.Start[ps.initDim]]
		j := w.Start[ps.stepDim]
		out := make([]int64, ps.nT)
		for m := range out {
			out[m] = init + ps.steps[j+int64(m)*ps.stride]
		}
		return out
	}
	return nil
}
