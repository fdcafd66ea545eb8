// Package cropper turns a batch of samples into dense tensors: per source
// one batched region read (each chunk read and decoded once per batch), then
// one pass that gathers channels, transposes to (T, C, H, W) and applies the
// source's transform chain (CF decoding, dropout, normalisation, clipping,
// NaN filling, the output dtype) row by row, into buffers recycled from
// batch to batch.
package cropper

import (
	"context"
	"fmt"
	"slices"

	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/transform"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Options tune a Cropper.
type Options struct {
	// Raw delivers the stored values in the stored dtype: no CF decoding,
	// masking, normalisation or conversion (padding still reads as the
	// array's fill).
	Raw bool
	// Cache, when set, keeps decoded chunks across batches (and across the
	// Croppers that share it) within its byte budget; chunks are then
	// decoded whole. Nil: every batch fetches and decodes what it needs.
	Cache *pool.Chunks
}

// Stats accounts the reads of one batch.
type Stats struct {
	// Chunks counts the distinct chunks read, each decoded once.
	Chunks, Missing int64
	BytesRead       int64 // from the stores
	BytesDecoded    int64 // produced by decompression
	BytesDelivered  int64 // of stored data copied out of chunks
	CacheHits       int64 // chunks of Chunks found in Options.Cache
}

// ReadAmplification is bytes decoded per byte delivered.
func (s Stats) ReadAmplification() float64 {
	if s.BytesDelivered == 0 {
		return 0
	}
	return float64(s.BytesDecoded) / float64(s.BytesDelivered)
}

// Add sums o into s, every count, so that a stream's totals are its
// batches' summed here rather than field by field.
func (s *Stats) Add(o Stats) {
	s.Chunks += o.Chunks
	s.Missing += o.Missing
	s.BytesRead += o.BytesRead
	s.BytesDecoded += o.BytesDecoded
	s.BytesDelivered += o.BytesDelivered
	s.CacheHits += o.CacheHits
}

func (s *Stats) add(o zarr.ReadStats) {
	s.Chunks += o.Chunks
	s.Missing += o.Missing
	s.BytesRead += o.BytesRead
	s.BytesDecoded += o.BytesDecoded
	s.BytesDelivered += o.BytesDelivered
	s.CacheHits += o.CacheHits
}

// Batch is the output of one Crop call. Reuse it across calls: its buffers
// are recycled.
type Batch struct {
	Samples []sampler.Sample
	// Data holds per source len(Samples)×prod(OutShape) elements, C order,
	// little-endian.
	Data [][]byte
	// DTypes per source: "float32", "float16" or "bfloat16", or with Raw the
	// stored NumPy dtype ("<i2", "<f4", ...).
	DTypes []string
	Stats  Stats
}

// Cropper cuts batches of one Plan. Crop is safe for one goroutine at a
// time (run one Cropper per goroutine to crop batches in parallel);
// WillNeed may run beside it.
type Cropper struct {
	plan *sampler.Plan
	opts Options
	src  []sourceState
	row  []float32
	// minScratch is the least scratch a group of samples may use (see
	// cropSource); tests lower it to crop in many groups.
	minScratch int64
}

// sourceState is the per-source scratch reused between batches.
type sourceState struct {
	// chain transforms the source's rows; nil with Raw. chainErr says why
	// there is none without Raw.
	chain    *transform.Chain
	chainErr error
	// inPlace: the chain only replaces NaN (fill) in float32 data that is
	// stored as float32, so reads can land in the output directly.
	inPlace bool
	// fillCopy copies into the output replacing NaN with the source's
	// NaN fill: made once, not per batch.
	fillCopy zarr.Convert
	// Runs of consecutive selected channels, [lo, hi) relative to the
	// window's channel start, and the run of each output channel; nil when
	// the source selects no channels (one run: the whole window).
	runs  [][2]int64
	runOf []int
	chDim int
	// regions holds per sample and run the clipped region (zero Region when
	// empty); read/dsts the non-empty ones as passed to ReadRegions, datas
	// each region's data (nil when empty).
	regions []zarr.Region
	read    []zarr.Region
	dsts    [][]byte
	datas   [][]byte
	clipped []bool // per sample: window reaches outside the array
	// wraps are the regions that cross a periodic dim's seam, each read as
	// two pieces and stitched into its region's data.
	wraps   []wrapRead
	scratch []byte
	// Flat backing for region starts and shapes.
	ints []int64
	// place's scratch.
	strides, pos, idx []int64
	dims              []int
}

// New returns a Cropper for plan.
func New(plan *sampler.Plan, opts Options) *Cropper {
	c := &Cropper{plan: plan, opts: opts, src: make([]sourceState, len(plan.Sources)), minScratch: 64 << 20}
	for i := range plan.Sources {
		s := &plan.Sources[i]
		st := &c.src[i]
		st.chDim = -1
		if s.Axes != nil && s.Channels != nil {
			st.chDim = s.Axes[sampler.AxisC]
			st.runs, st.runOf = channelRuns(s.Channels)
		}
		if !opts.Raw {
			st.chain, st.inPlace, st.chainErr = chainFor(s, plan.OutputDType)
			st.fillCopy = transform.FillNaN{Value: s.NaNFill}.CopyFloat32LE
		}
	}
	return c
}

// chainFor builds a source's transform chain: decode (CF unless the spec
// says decode_cf: false), dropout for sources with time, normalisation,
// clipping, NaN filling, cast to outDType.
func chainFor(s *sampler.Source, outDType string) (chain *transform.Chain, inPlace bool, err error) {
	dt := s.Array.DType
	decode := transform.Plain(dt)
	if decode == nil {
		return nil, false, fmt.Errorf("%s dtype %s cannot be converted to %s", s.Array, dt, outDType)
	}
	identity := true
	if s.DecodeCF {
		p, err := transform.CFPacking(s.Array)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", s.Array, err)
		}
		if identity = transform.IsIdentity(dt, p); !identity {
			if decode, err = transform.CF(dt, p); err != nil {
				return nil, false, fmt.Errorf("%s: %w", s.Array, err)
			}
		}
	}
	var steps []transform.Step
	if s.Axes != nil && s.Axes[sampler.AxisT] >= 0 {
		steps = append(steps, transform.Dropout{})
	}
	if s.Mean != nil {
		steps = append(steps, transform.NewNormalise(s.Mean, s.Std))
	}
	steps = append(steps, transform.Clip{Min: s.ClipMin, Max: s.ClipMax}, transform.FillNaN{Value: s.NaNFill})
	inPlace = s.Axes == nil && identity && s.Mean == nil && outDType == "float32" && dt.Kind == zarr.KindFloat && dt.Size == 4
	if identity {
		// Plain data: the chain reads the stored values in its own loop.
		chain, err := transform.NewPlainChainTo(dt, outDType, steps...)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", s.Array, err)
		}
		return chain, inPlace, nil
	}
	return transform.NewChainTo(decode, outDType, steps...), inPlace, nil
}

// channelRuns splits the selected channel indices into runs of
// consecutive indices, so that unselected channels between them are never
// read.
func channelRuns(channels []int64) ([][2]int64, []int) {
	sorted := slices.Clone(channels)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var runs [][2]int64
	for _, ch := range sorted {
		if n := len(runs); n > 0 && runs[n-1][1] == ch {
			runs[n-1][1]++
			continue
		}
		runs = append(runs, [2]int64{ch, ch + 1})
	}
	runOf := make([]int, len(channels))
	for i, ch := range channels {
		for r, run := range runs {
			if ch >= run[0] && ch < run[1] {
				runOf[i] = r
			}
		}
	}
	return runs, runOf
}

// Crop reads and processes samples into b, reusing b's buffers.
func (c *Cropper) Crop(ctx context.Context, samples []sampler.Sample, b *Batch) error {
	n := len(c.plan.Sources)
	b.Samples = samples
	b.Stats = Stats{}
	if len(b.Data) != n {
		b.Data = make([][]byte, n)
		b.DTypes = make([]string, n)
	}
	for i := range samples {
		if len(samples[i].Windows) != n {
			return fmt.Errorf("cropper: sample %d has %d windows, the plan %d sources", samples[i].Index, len(samples[i].Windows), n)
		}
		for k, w := range samples[i].Windows {
			if len(w.Start) != len(c.plan.Sources[k].Size) {
				return fmt.Errorf("cropper: sample %d: window of source %s has %d dims, want %d", samples[i].Index, c.plan.Sources[k].Name, len(w.Start), len(c.plan.Sources[k].Size))
			}
		}
	}
	for k := range c.plan.Sources {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.cropSource(ctx, k, samples, b); err != nil {
			return err
		}
	}
	return nil
}

// WillNeed hints the sources' stores at the chunks samples will read (see
// zarr.Array.WillNeed), so that a stream has the next batch's chunks
// fetched while it crops this one. Windows are clipped to the array and
// cut to the selected channels, as Crop reads them. It reads only what New
// set up, so it may run in another goroutine while Crop does.
func (c *Cropper) WillNeed(samples []sampler.Sample) {
	for k := range c.plan.Sources {
		src, st := &c.plan.Sources[k], &c.src[k]
		arr := src.Array
		nd := len(arr.Shape)
		nRuns := max(len(st.runs), 1)
		regions := make([]zarr.Region, 0, len(samples)*nRuns)
		ints := make([]int64, 2*nd*len(samples)*nRuns)
		for i := range samples {
			if k >= len(samples[i].Windows) || len(samples[i].Windows[k].Start) != nd {
				continue
			}
			w := samples[i].Windows[k].Start
		runs:
			for run := range nRuns {
				ri := len(regions)
				start, shape := ints[2*nd*ri:2*nd*ri+nd:2*nd*ri+nd], ints[2*nd*ri+nd:2*nd*(ri+1):2*nd*(ri+1)]
				for d := range nd {
					wlo, whi := st.extent(src, w, d, run)
					lo, hi := max(wlo, 0), min(whi, arr.Shape[d])
					if hi <= lo {
						continue runs
					}
					start[d], shape[d] = lo, hi-lo
				}
				regions = append(regions, zarr.Region{Start: start, Shape: shape})
			}
		}
		arr.WillNeed(c.chunkPool(), regions)
	}
}

// chunkPool is the pool reads go through, or nil: a nil *pool.Chunks must
// reach zarr as a nil interface.
func (c *Cropper) chunkPool() zarr.ChunkPool {
	if c.opts.Cache == nil {
		return nil
	}
	return c.opts.Cache
}

// extent is window w's [lo, hi) along dim d for channel run run (the whole
// window when the source selects no channels), before clipping.
func (st *sourceState) extent(src *sampler.Source, w []int64, d, run int) (lo, hi int64) {
	if d == st.chDim && st.runs != nil {
		return w[d] + st.runs[run][0], w[d] + st.runs[run][1]
	}
	return w[d], w[d] + src.Size[d]
}

func prod(v []int64) int64 {
	p := int64(1)
	for _, x := range v {
		p *= x
	}
	return p
}

func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func (c *Cropper) cropSource(ctx context.Context, k int, samples []sampler.Sample, b *Batch) error {
	src := &c.plan.Sources[k]
	st := &c.src[k]
	arr := src.Array
	itemSize := int64(arr.DType.Size)
	outSize := itemSize
	b.DTypes[k] = arr.DType.LittleEndian().String()
	if !c.opts.Raw {
		if st.chain == nil {
			return fmt.Errorf("cropper: source %s: %w", src.Name, st.chainErr)
		}
		outSize = int64(st.chain.OutSize)
		b.DTypes[k] = c.plan.OutputDType
	}
	perSample := prod(src.OutShape)
	b.Data[k] = grow(b.Data[k], int64(len(samples))*perSample*outSize)
	out := b.Data[k]

	// One region per sample and channel run, clipped to the array; what
	// lies outside is padding.
	nd := len(arr.Shape)
	nRuns := max(len(st.runs), 1)
	nReg := len(samples) * nRuns
	st.regions = st.regions[:0]
	st.clipped = st.clipped[:0]
	if need := 2 * nd * nReg; cap(st.ints) < need {
		st.ints = make([]int64, need)
	}
	ints := st.ints[:2*nd*nReg]
	var scratchLen int64
	for i := range samples {
		w := samples[i].Windows[k].Start
		clipped := false
		for run := range nRuns {
			ri := i*nRuns + run
			start, shape := ints[2*nd*ri:2*nd*ri+nd:2*nd*ri+nd], ints[2*nd*ri+nd:2*nd*(ri+1):2*nd*(ri+1)]
			empty := false
			for d := range nd {
				wlo, whi := st.extent(src, w, d, run)
				lo, hi := max(wlo, 0), min(whi, arr.Shape[d])
				if src.Periodic != nil && src.Periodic[d] && wlo >= 0 && wlo < arr.Shape[d] && whi-wlo <= arr.Shape[d] {
					// Read whole across the seam (see wrapRead), through
					// scratch.
					lo, hi = wlo, whi
					clipped = clipped || whi > arr.Shape[d]
				}
				if lo != wlo || hi != whi {
					clipped = true
				}
				if hi <= lo {
					empty = true
					lo, hi = 0, 0
				}
				start[d], shape[d] = lo, hi-lo
			}
			if empty {
				st.regions = append(st.regions, zarr.Region{})
				continue
			}
			st.regions = append(st.regions, zarr.Region{Start: start, Shape: shape})
			scratchLen += prod(shape) * itemSize
		}
		st.clipped = append(st.clipped, clipped)
	}

	// Generic windows that fill their whole window and need no conversion
	// are read straight into the output: no copy.
	direct := src.Axes == nil && (c.opts.Raw || st.inPlace)
	// The others are read into scratch, then converted: in groups of
	// samples whose scratch is at most a quarter of the output (or 64
	// MiB), so that a big batch costs about 1.5× its bytes rather than
	// twice (chunks shared across groups are then read once per group).
	scratchCap := max(int64(len(out))/4, c.minScratch)
	st.scratch = grow(st.scratch, min(scratchLen, scratchCap))
	for lo := 0; lo < len(samples); {
		hi, need := lo, int64(0)
		for ; hi < len(samples); hi++ {
			n := int64(0)
			if !direct || st.clipped[hi] {
				for _, r := range st.regions[hi*nRuns : (hi+1)*nRuns] {
					if r.Shape != nil {
						n += prod(r.Shape) * itemSize
					}
				}
			}
			if hi > lo && need+n > scratchCap {
				break
			}
			need += n
		}
		st.scratch = grow(st.scratch, max(need, int64(len(st.scratch))))
		if err := c.cropSamples(ctx, k, samples, lo, hi, direct, out, perSample, outSize, b); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// cropSamples reads and places samples[lo:hi] of one source, whose
// regions and clipping cropSource has worked out.
func (c *Cropper) cropSamples(ctx context.Context, k int, samples []sampler.Sample, lo, hi int,
	direct bool, out []byte, perSample, outSize int64, b *Batch) error {
	src, st := &c.plan.Sources[k], &c.src[k]
	arr := src.Array
	itemSize := int64(arr.DType.Size)
	nRuns := max(len(st.runs), 1)
	var off int64
	st.read = st.read[:0]
	st.dsts = st.dsts[:0]
	st.datas = st.datas[:0]
	st.wraps = st.wraps[:0]
	for ri := lo * nRuns; ri < hi*nRuns; ri++ {
		r := st.regions[ri]
		i := ri / nRuns
		if r.Shape == nil {
			st.datas = append(st.datas, nil)
			continue
		}
		if d, ok := seamDim(src, arr, r); ok {
			sz := prod(r.Shape) * itemSize
			wr := splitAtSeam(r, d, arr.Shape[d], st.scratch[off:off+sz], itemSize)
			off += sz
			st.wraps = append(st.wraps, wr)
			st.read = append(st.read, wr.pieces[0], wr.pieces[1])
			st.dsts = append(st.dsts, wr.data[0], wr.data[1])
			st.datas = append(st.datas, wr.dst)
			continue
		}
		var dst []byte
		if direct && !st.clipped[i] {
			dst = out[int64(i)*perSample*outSize : int64(i+1)*perSample*outSize]
		} else {
			sz := prod(r.Shape) * itemSize
			dst = st.scratch[off : off+sz]
			off += sz
		}
		st.read = append(st.read, r)
		st.dsts = append(st.dsts, dst)
		st.datas = append(st.datas, dst)
	}
	if len(st.read) > 0 {
		chunks := c.chunkPool()
		// Windows read straight into the output have their NaN replaced
		// as they are copied there, not in a second pass.
		var conv zarr.Convert
		if direct && !c.opts.Raw {
			conv = st.fillCopy
		}
		rs, err := arr.ReadRegionsConverted(ctx, chunks, st.read, st.dsts, conv)
		if err != nil {
			return fmt.Errorf("cropper: source %s: %w", src.Name, err)
		}
		b.Stats.add(rs)
	}
	for _, wr := range st.wraps {
		wr.stitch()
	}
	for i := lo; i < hi; i++ {
		if direct && !st.clipped[i] {
			continue
		}
		dst := out[int64(i)*perSample*outSize : int64(i+1)*perSample*outSize]
		c.place(src, st, &samples[i].Windows[k], st.regions[i*nRuns:(i+1)*nRuns], st.datas[(i-lo)*nRuns:(i-lo+1)*nRuns], dst)
	}
	return nil
}

// place writes one sample's output from its regions (one per channel run,
// the window's parts inside the array, C order, stored dtype) and their
// data, filling what lies outside; each row passes through the source's
// transform chain on its way.
func (c *Cropper) place(src *sampler.Source, st *sourceState, w *sampler.Window, regions []zarr.Region, datas [][]byte, dst []byte) {
	arr := src.Array
	nd := len(arr.Shape)
	itemSize := arr.DType.Size
	axes := src.Axes
	nOut := len(src.OutShape)
	lens := src.OutShape
	dims := axes
	if axes == nil {
		if len(st.dims) != nd {
			st.dims = make([]int, nd)
			for d := range nd {
				st.dims[d] = d
			}
		}
		dims = st.dims
	}
	if len(st.pos) != nd {
		st.pos = make([]int64, nd)
	}
	if len(st.idx) != nOut {
		st.idx = make([]int64, nOut)
	}
	// Each region's strides, worked out once rather than per row.
	if need := len(regions) * nd; cap(st.strides) < need {
		st.strides = make([]int64, need)
	}
	st.strides = st.strides[:cap(st.strides)]
	for run, r := range regions {
		if r.Shape == nil {
			continue
		}
		s := int64(1)
		for d := nd - 1; d >= 0; d-- {
			st.strides[run*nd+d] = s
			s *= r.Shape[d]
		}
	}
	pos, idx := st.pos, st.idx
	clear(idx)
	last := nOut - 1
	rowLen := lens[last]
	if int64(cap(c.row)) < rowLen {
		c.row = make([]float32, rowLen)
	}
	row := c.row[:rowLen]
	outItem := itemSize
	if !c.opts.Raw {
		outItem = len(dst) / int(prod(src.OutShape))
	}
	lastDim := dims[last]
	nRows := prod(lens[:last])
	// Rows along the next-to-last output axis (H) differ only in where
	// they lie along its dim: that axis is stepped in an inner loop that
	// moves the row's base by one stride, so the rest of the position is
	// worked out once per run of rows rather than per row. T (strided)
	// and C (remapped) are stepped per row.
	inner, dIn, nInner := -1, -1, int64(1)
	if a := last - 1; a >= 0 && dims[a] >= 0 && !(axes != nil && (a == int(sampler.AxisT) || a == int(sampler.AxisC))) {
		inner, dIn, nInner = a, dims[a], lens[a]
	}
	outer := last
	if inner >= 0 {
		outer = inner
	}
	rowBytes := rowLen * int64(outItem)
	for rowN := int64(0); rowN < nRows; rowN += nInner {
		// idx steps through the output's axes before inner in C order.
		for a := outer - 1; a >= 0 && rowN > 0; a-- {
			if idx[a]++; idx[a] < lens[a] {
				break
			}
			idx[a] = 0
		}
		clear(pos)
		channel, run := int64(0), 0
		for a := range outer {
			d := dims[a]
			if d < 0 {
				continue
			}
			v := idx[a]
			if axes != nil && a == int(sampler.AxisT) {
				v *= src.TStride
			}
			if axes != nil && a == int(sampler.AxisC) {
				channel = v
				if src.Channels != nil {
					v = src.Channels[v]
					run = st.runOf[channel]
				}
			}
			pos[d] = v
		}
		r, data := regions[run], datas[run]
		// Where the rows lie inside their region: along every dim but the
		// inner and last they must be inside; along the last [lo, hi).
		inside := r.Shape != nil
		var base int64
		strides := st.strides[run*nd : (run+1)*nd]
		for d := 0; d < nd && inside; d++ {
			if d == lastDim || d == dIn {
				continue
			}
			p := w.Start[d] + pos[d] - r.Start[d]
			if p < 0 || p >= r.Shape[d] {
				inside = false
				break
			}
			base += p * strides[d]
		}
		var lo, hi int64
		if inside {
			lo = max(0, r.Start[lastDim]-w.Start[lastDim])
			hi = min(rowLen, r.Start[lastDim]+r.Shape[lastDim]-w.Start[lastDim])
			if hi <= lo {
				inside = false
			} else {
				base += (w.Start[lastDim] + lo - r.Start[lastDim]) * strides[lastDim]
			}
		}
		at := transform.Row{Channel: channel}
		if axes != nil && axes[sampler.AxisT] >= 0 {
			at.T, at.AvailableT = idx[sampler.AxisT], w.AvailableT
		}
		// p is the first row's place along the inner dim.
		var p int64
		if inner >= 0 && inside {
			p = w.Start[dIn] - r.Start[dIn]
		}
		for j := range nInner {
			rowDst := dst[(rowN+j)*rowBytes : (rowN+j+1)*rowBytes]
			rowIn, rowBase := inside, base
			if inner >= 0 && inside {
				q := p + j
				rowIn = q >= 0 && q < r.Shape[dIn]
				rowBase += q * strides[dIn]
			}
			if c.opts.Raw {
				c.rawRow(rowDst, data, rowBase, strides[lastDim], lo, hi, rowIn, itemSize, arr.Fill)
				continue
			}
			var rowData []byte
			rlo, rhi := lo, hi
			if !rowIn {
				rlo, rhi = 0, 0
			} else {
				rowData = data[rowBase*int64(itemSize):]
			}
			st.chain.Row(rowDst, rowData, int(strides[lastDim])*itemSize, int(rlo), int(rhi), at, row)
		}
	}
}

// rawRow copies a row in the stored dtype, filling outside [lo, hi) with
// the array's fill value.
func (c *Cropper) rawRow(dst, data []byte, base, stride, lo, hi int64, inside bool, itemSize int, fill []byte) {
	n := int64(len(dst) / itemSize)
	if !inside {
		lo, hi = n, n
	}
	sz := int64(itemSize)
	if len(fill) != itemSize {
		// No fill value: pad with zeros, as zarr-python reads missing chunks.
		clear(dst[:lo*sz])
		clear(dst[hi*sz:])
		fill = nil
	}
	for i := int64(0); i < lo && fill != nil; i++ {
		copy(dst[i*sz:], fill)
	}
	if hi > lo {
		if stride == 1 {
			copy(dst[lo*int64(itemSize):hi*int64(itemSize)], data[base*int64(itemSize):])
		} else {
			for i := lo; i < hi; i++ {
				s := (base + (i-lo)*stride) * int64(itemSize)
				copy(dst[i*int64(itemSize):(i+1)*int64(itemSize)], data[s:s+int64(itemSize)])
			}
		}
	}
	for i := hi; i < n && fill != nil; i++ {
		copy(dst[i*sz:], fill)
	}
}
