package stats

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lsio-loader/lsio-loader/transform"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Input is one variable's selection: the hyper-rectangle [Start, Stop) of
// Array, summarised separately along ChannelDim.
type Input struct {
	Name  string
	Array *zarr.Array
	// ChannelDim is the index of the dim whose entries get their own
	// statistics, or -1 for one summary of the whole selection.
	ChannelDim int
	// Start and Stop bound the selection per dim; nil means the whole array.
	Start, Stop []int64
	// DecodeCF summarises the values as xarray decodes them by default
	// (fill values and missing_value as NaN, then scale_factor and
	// add_offset) rather than as stored.
	DecodeCF bool
}

// Options tune Compute.
type Options struct {
	// Workers is how many chunk groups are read and summarised at once;
	// 0 means GOMAXPROCS.
	Workers int
	// Progress, when set, is called (from one goroutine at a time) after
	// each group of chunks with the selection bytes done so far and in all.
	Progress func(done, total int64)
}

// Result is one variable's statistics.
type Result struct {
	Name       string
	Dims       []string
	ChannelDim int
	// Channels holds one summary per entry of the selection along
	// ChannelDim (one summary when ChannelDim is -1).
	Channels []Moments
	// Bytes is the size of the selection as stored uncompressed; Read is
	// what the reads returned (compressed), Decoded what the codecs produced.
	Bytes, Read, Decoded int64
	Chunks               int64
}

// groupBytes bounds how much decoded data one worker holds at a time, so
// memory stays at Workers × groupBytes whatever the selection's size, while
// each ReadRegions call still keeps several reads in flight.
const groupBytes = 32 << 20

// Compute streams in's selection chunk by chunk (each outer chunk or shard
// is read and decoded once) and returns its statistics. Values are taken
// as zarr returns them unless in.DecodeCF: missing chunks count as the fill
// value, NaN fill counts as NaN.
func Compute(ctx context.Context, in Input, opts Options) (Result, error) {
	a := in.Array
	nd := len(a.Shape)
	start, stop := in.Start, in.Stop
	if start == nil {
		start = make([]int64, nd)
	}
	if stop == nil {
		stop = append([]int64(nil), a.Shape...)
	}
	if len(start) != nd || len(stop) != nd {
		return Result{}, fmt.Errorf("stats %s: selection has %d/%d dims, array has %d", in.Name, len(start), len(stop), nd)
	}
	for d := range nd {
		if start[d] < 0 || stop[d] > a.Shape[d] || start[d] > stop[d] {
			return Result{}, fmt.Errorf("stats %s: selection [%d, %d) outside dim %s of size %d", in.Name, start[d], stop[d], dimName(a, d), a.Shape[d])
		}
	}
	if in.ChannelDim < -1 || in.ChannelDim >= nd {
		return Result{}, fmt.Errorf("stats %s: channel dim %d out of range for %d dims", in.Name, in.ChannelDim, nd)
	}
	acc, err := newAccumulator(a.DType)
	if err != nil {
		return Result{}, fmt.Errorf("stats %s: %w", in.Name, err)
	}
	var cf *zarr.CFPacking // nil: the values as stored
	if in.DecodeCF {
		p, err := transform.CFPacking(a)
		if err != nil {
			return Result{}, fmt.Errorf("stats %s: %w", in.Name, err)
		}
		if !transform.IsIdentity(a.DType, p) {
			cf = &p
		}
	}
	nch := int64(1)
	chStart := int64(0)
	if in.ChannelDim >= 0 {
		nch = stop[in.ChannelDim] - start[in.ChannelDim]
		chStart = start[in.ChannelDim]
	}
	res := Result{Name: in.Name, Dims: a.Dims, ChannelDim: in.ChannelDim, Channels: make([]Moments, nch)}
	item := int64(a.DType.Size)
	res.Bytes = item
	for d := range nd {
		res.Bytes *= stop[d] - start[d]
	}
	if res.Bytes == 0 {
		return res, nil
	}

	chunk := a.ChunkShape
	first := make([]int64, nd) // chunk grid index range overlapping the selection
	count := make([]int64, nd)
	total := int64(1)
	for d := range nd {
		if chunk[d] <= 0 {
			return Result{}, fmt.Errorf("stats %s: chunk size %d along %s", in.Name, chunk[d], dimName(a, d))
		}
		first[d] = start[d] / chunk[d]
		count[d] = (stop[d]-1)/chunk[d] - first[d] + 1
		total *= count[d]
	}
	chunkBytes := item
	for _, c := range chunk {
		chunkBytes *= c
	}
	perGroup := max(1, groupBytes/chunkBytes)

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		done     int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			acc := acc
			if cf != nil {
				acc = decodingAccumulator(a.DType, *cf)
			}
			local := make([]Moments, nch)
			var bufs [][]byte
			var scratch []float64
			var regions []zarr.Region
			var st zarr.ReadStats
			for ctx.Err() == nil {
				g0 := next.Add(perGroup) - perGroup
				if g0 >= total {
					break
				}
				g1 := min(g0+perGroup, total)
				regions = regions[:0]
				var groupSize int64
				for g := g0; g < g1; g++ {
					r := chunkRegion(g, first, count, chunk, start, stop)
					regions = append(regions, r)
					groupSize += item * prod(r.Shape)
				}
				for len(bufs) < len(regions) {
					bufs = append(bufs, nil)
				}
				for i, r := range regions {
					n := int(item * prod(r.Shape))
					if cap(bufs[i]) < n {
						bufs[i] = make([]byte, n)
					}
					bufs[i] = bufs[i][:n]
				}
				s, err := a.ReadRegions(ctx, regions, bufs[:len(regions)])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("stats %s: %w", in.Name, err)
					}
					mu.Unlock()
					cancel()
					break
				}
				st.Chunks += s.Chunks
				st.BytesRead += s.BytesRead
				st.BytesDecoded += s.BytesDecoded
				for i, r := range regions {
					outer, inner := int64(1), int64(1)
					nc := int64(1)
					regionChStart := chStart
					if in.ChannelDim >= 0 {
						outer = prod(r.Shape[:in.ChannelDim])
						nc = r.Shape[in.ChannelDim]
						inner = prod(r.Shape[in.ChannelDim+1:])
						regionChStart = r.Start[in.ChannelDim]
					} else {
						inner = prod(r.Shape)
					}
					scratch = acc(bufs[i], outer, nc, inner, local[regionChStart-chStart:regionChStart-chStart+nc], scratch)
				}
				if opts.Progress != nil {
					mu.Lock()
					done += groupSize
					opts.Progress(done, res.Bytes)
					mu.Unlock()
				}
			}
			mu.Lock()
			for k := range local {
				res.Channels[k].Merge(local[k])
			}
			res.Chunks += st.Chunks
			res.Read += st.BytesRead
			res.Decoded += st.BytesDecoded
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := parent.Err(); err != nil {
		return Result{}, fmt.Errorf("stats %s: %w", in.Name, err)
	}
	return res, nil
}

func dimName(a *zarr.Array, d int) string {
	if d < len(a.Dims) && a.Dims[d] != "" {
		return a.Dims[d]
	}
	return fmt.Sprintf("dim_%d", d)
}

func prod(s []int64) int64 {
	p := int64(1)
	for _, v := range s {
		p *= v
	}
	return p
}

// chunkRegion is the part of the selection inside the g-th chunk (C order)
// of the grid block first + [0, count).
func chunkRegion(g int64, first, count, chunk, start, stop []int64) zarr.Region {
	nd := len(first)
	r := zarr.Region{Start: make([]int64, nd), Shape: make([]int64, nd)}
	for d := nd - 1; d >= 0; d-- {
		c := first[d] + g%count[d]
		g /= count[d]
		lo := max(c*chunk[d], start[d])
		hi := min((c+1)*chunk[d], stop[d])
		r.Start[d], r.Shape[d] = lo, hi-lo
	}
	return r
}

// accumulateFunc folds a C-order buffer of outer × nc × inner elements into
// acc (one entry per channel), reusing scratch, and returns scratch.
type accumulateFunc func(buf []byte, outer, nc, inner int64, acc []Moments, scratch []float64) []float64

func newAccumulator(dt zarr.DType) (accumulateFunc, error) {
	switch {
	case dt.Kind == zarr.KindFloat && dt.Size == 4:
		return accumulate[float32], nil
	case dt.Kind == zarr.KindFloat && dt.Size == 8:
		return accumulate[float64], nil
	case dt.Kind == zarr.KindFloat && dt.Size == 2:
		return accumulateFloat16, nil
	case dt.Kind == zarr.KindInt && dt.Size == 1:
		return accumulate[int8], nil
	case dt.Kind == zarr.KindInt && dt.Size == 2:
		return accumulate[int16], nil
	case dt.Kind == zarr.KindInt && dt.Size == 4:
		return accumulate[int32], nil
	case dt.Kind == zarr.KindInt && dt.Size == 8:
		return accumulate[int64], nil
	case (dt.Kind == zarr.KindUint || dt.Kind == zarr.KindBool) && dt.Size == 1:
		return accumulate[uint8], nil
	case dt.Kind == zarr.KindUint && dt.Size == 2:
		return accumulate[uint16], nil
	case dt.Kind == zarr.KindUint && dt.Size == 4:
		return accumulate[uint32], nil
	case dt.Kind == zarr.KindUint && dt.Size == 8:
		return accumulate[uint64], nil
	}
	return nil, fmt.Errorf("dtype %s has no numeric statistics", dt)
}

// contiguousRun is the run length from which a channel's elements are
// summarised in place rather than gathered first.
const contiguousRun = 1024

func accumulate[T number](buf []byte, outer, nc, inner int64, acc []Moments, scratch []float64) []float64 {
	n := outer * nc * inner
	if n == 0 {
		return scratch
	}
	// Read delivers little-endian elements in a buffer from make, which is
	// aligned for any element type.
	return accumulateValues(unsafe.Slice((*T)(unsafe.Pointer(&buf[0])), n), outer, nc, inner, acc, scratch)
}

// decodingAccumulator CF-decodes each buffer into float64 (as xarray does)
// before summarising it. The decoded values live in their own scratch, as
// accumulateValues may need the other to gather channels.
func decodingAccumulator(dt zarr.DType, p zarr.CFPacking) accumulateFunc {
	var decoded []float64
	return func(buf []byte, outer, nc, inner int64, acc []Moments, scratch []float64) []float64 {
		n := outer * nc * inner
		if n == 0 {
			return scratch
		}
		if int64(cap(decoded)) < n {
			decoded = make([]float64, n)
		}
		decoded = decoded[:n]
		// The dtype was checked numeric by newAccumulator, and buf holds n elements.
		_ = p.Decode(dt, buf, decoded)
		return accumulateValues(decoded, outer, nc, inner, acc, scratch)
	}
}

func accumulateValues[T number](vals []T, outer, nc, inner int64, acc []Moments, scratch []float64) []float64 {
	if nc == 1 {
		acc[0].Merge(blockMoments(vals))
		return scratch
	}
	if inner >= contiguousRun {
		for o := range outer {
			for k := range nc {
				off := (o*nc + k) * inner
				acc[k].Merge(blockMoments(vals[off : off+inner]))
			}
		}
		return scratch
	}
	per := outer * inner
	if int64(cap(scratch)) < per {
		scratch = make([]float64, per)
	}
	scratch = scratch[:per]
	for k := range nc {
		i := 0
		for o := range outer {
			off := (o*nc + k) * inner
			for _, v := range vals[off : off+inner] {
				scratch[i] = float64(v)
				i++
			}
		}
		acc[k].Merge(blockMoments(scratch))
	}
	return scratch
}

func accumulateFloat16(buf []byte, outer, nc, inner int64, acc []Moments, scratch []float64) []float64 {
	n := outer * nc * inner
	if n == 0 {
		return scratch
	}
	halves := unsafe.Slice((*uint16)(unsafe.Pointer(&buf[0])), n)
	per := outer * inner
	if int64(cap(scratch)) < per {
		scratch = make([]float64, per)
	}
	scratch = scratch[:per]
	for k := range nc {
		i := 0
		for o := range outer {
			off := (o*nc + k) * inner
			for _, h := range halves[off : off+inner] {
				scratch[i] = halfToFloat64(h)
				i++
			}
		}
		acc[k].Merge(blockMoments(scratch))
	}
	return scratch
}

// halfToFloat64 converts an IEEE 754 binary16 value exactly.
func halfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}
