// Package transform turns the values cut from a source into what the
// trainer receives, one row at a time, in the same pass that copies them
// out of the read buffer: a Decoder reads the stored dtype (applying the
// variable's CF encoding as xarray does), per-source Steps change the row
// (dropout, normalisation, clipping, NaN filling) and an Encoder casts it
// to the output dtype.
package transform

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// Row says where a row of values lies in a sample's output.
type Row struct {
	// Channel is the output channel, 0 for a source without one.
	Channel int64
	// T is the output time step and AvailableT how many leading steps the
	// sample may see (dropout); both 0 for a source without time.
	T, AvailableT int64
}

// Step changes one row of float32 values in place.
type Step interface {
	Apply(row []float32, at Row)
}

// Chain is one source's transforms: decode, steps, encode. A Chain holds
// no per-call state, so one Chain serves any number of goroutines.
type Chain struct {
	decode Decoder
	steps  []Step
	encode Encoder
	// OutSize is the output element's size in bytes.
	OutSize int
	// fused, when set, is the chain's only step but an optional leading
	// Dropout (dropout): Row then takes fusedRow, which writes padding as
	// pad, the encoded fill value that NaN becomes. out says which
	// encoding; outUnknown without fused.
	fused   *normaliseClipFill
	dropout bool
	out     outKind
	pad     uint32
	// in, for a chain of NewPlainChainTo, names the stored dtype whose
	// plain decoding fusedRow folds into its float32 loop.
	in inKind
}

// inKind names the stored dtypes whose plain decoding Row folds into its
// loop.
type inKind int

const (
	inOther inKind = iota
	inFloat32
	inInt16
)

// outKind names the encodings Row knows how to fuse with the steps.
type outKind int

const (
	outUnknown outKind = iota
	outFloat32
	outFloat16
	outBFloat16
)

// NewChain returns the chain decode → steps → encode. Adjacent Normalise,
// Clip and FillNaN steps run fused in one loop: the row then passes through
// the CPU once rather than three times, with bit-identical results.
func NewChain(decode Decoder, encode Encoder, outSize int, steps ...Step) *Chain {
	return &Chain{decode: decode, steps: fuse(steps), encode: encode, OutSize: outSize}
}

// NewChainTo is NewChain with the encoder of outDType (see EncoderFor).
// Knowing the encoding, Row takes a shorter path when the steps are an
// optional Dropout then [Normalise] Clip FillNaN, with bit-identical
// results: padding and dropped rows are written as the encoded fill
// straight away, and for float32 output the steps and the encoding are
// one loop from the decoded row to the bytes.
func NewChainTo(decode Decoder, outDType string, steps ...Step) *Chain {
	encode, size := EncoderFor(outDType)
	c := NewChain(decode, encode, size, steps...)
	rest := c.steps
	if len(rest) > 0 {
		if _, ok := rest[0].(Dropout); ok {
			c.dropout, rest = true, rest[1:]
		}
	}
	f, ok := normaliseClipFill{}, false
	if len(rest) == 1 {
		f, ok = rest[0].(normaliseClipFill)
	}
	if !ok {
		c.dropout = false
		return c
	}
	c.fused = &f
	// Padding is NaN, which every step passes on until FillNaN.
	switch outDType {
	case "float16":
		c.out, c.pad = outFloat16, uint32(float16(f.fill))
	case "bfloat16":
		c.out, c.pad = outBFloat16, uint32(bfloat16(f.fill))
	default:
		c.out, c.pad = outFloat32, math.Float32bits(f.fill)
	}
	return c
}

// NewPlainChainTo is NewChainTo with the Plain decoder of dt. For float32
// and int16 data with float32 output, Row then also reads the stored
// values in its one loop, rather than decoding the row first.
func NewPlainChainTo(dt zarr.DType, outDType string, steps ...Step) (*Chain, error) {
	decode := Plain(dt)
	if decode == nil {
		return nil, fmt.Errorf("dtype %s is not numeric", dt)
	}
	c := NewChainTo(decode, outDType, steps...)
	switch {
	case dt.Kind == zarr.KindFloat && dt.Size == 4:
		c.in = inFloat32
	case dt.Kind == zarr.KindInt && dt.Size == 2:
		c.in = inInt16
	}
	return c, nil
}

// Row writes one output row to dst (len(buf) elements of OutSize bytes):
// elements [lo, hi) decoded from src (the first at src[0], stride bytes
// apart), the rest NaN (padding) before the steps run. buf is the caller's
// scratch, as long as the row.
func (c *Chain) Row(dst, src []byte, stride int, lo, hi int, at Row, buf []float32) {
	if c.fused != nil {
		c.fusedRow(dst, src, stride, lo, hi, at, buf)
		return
	}
	nan := float32(math.NaN())
	for i := range lo {
		buf[i] = nan
	}
	if hi > lo {
		c.decode(buf[lo:hi], src, stride)
	}
	for i := max(hi, lo); i < len(buf); i++ {
		buf[i] = nan
	}
	for _, s := range c.steps {
		s.Apply(buf, at)
	}
	c.encode(dst, buf)
}

// fusedRow is Row for a chain with fused set.
func (c *Chain) fusedRow(dst, src []byte, stride int, lo, hi int, at Row, buf []float32) {
	n := len(buf)
	if hi <= lo || (c.dropout && at.T >= at.AvailableT) {
		lo, hi = n, n
	}
	c.padRun(dst, 0, lo)
	c.padRun(dst, hi, n)
	if hi == lo {
		return
	}
	row := buf[lo:hi]
	f := c.fused
	if c.out == outFloat32 && c.in != inOther {
		c.plainFloat32Row(dst[4*lo:4*hi], src, stride, at)
		return
	}
	c.decode(row, src, stride)
	if c.out == outFloat32 {
		// The common case in one loop from the decoded row to the bytes.
		d := dst[4*lo : 4*hi]
		d = d[:4*len(row)]
		cl, ch, fill := f.lo, f.hi, f.fill
		m, a := float32(0), float32(1)
		if f.normalises {
			m, a = f.norm.channel(at.Channel)
		}
		for i, x := range row {
			if f.normalises {
				x = (x - m) * a
			}
			x = clipFill(x, cl, ch, fill)
			binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
		}
		return
	}
	if f.normalises {
		m, a := f.norm.channel(at.Channel)
		f.normaliseRow(row, m, a)
	} else {
		f.clipFillRow(row)
	}
	switch c.out {
	case outFloat16:
		d := dst[2*lo : 2*hi]
		for i, x := range row {
			binary.LittleEndian.PutUint16(d[2*i:], float16(x))
		}
	default:
		d := dst[2*lo : 2*hi]
		for i, x := range row {
			binary.LittleEndian.PutUint16(d[2*i:], bfloat16(x))
		}
	}
}

// plainFloat32Row is fusedRow's loop for float32 output of plainly
// decoded float32 or int16 data: len(d)/4 values read from src, stride
// bytes apart, through the steps into d.
func (c *Chain) plainFloat32Row(d, src []byte, stride int, at Row) {
	f := c.fused
	n := len(d) / 4
	if n == 0 {
		return
	}
	cl, ch, fill := f.lo, f.hi, f.fill
	m, a := float32(0), float32(1)
	if f.normalises {
		m, a = f.norm.channel(at.Channel)
	}
	src = src[:(n-1)*stride+c.inSize()]
	for i := range n {
		var x float32
		if c.in == inFloat32 {
			x = math.Float32frombits(binary.LittleEndian.Uint32(src[i*stride:]))
		} else {
			x = float32(int16(binary.LittleEndian.Uint16(src[i*stride:])))
		}
		if f.normalises {
			x = (x - m) * a
		}
		x = clipFill(x, cl, ch, fill)
		binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
	}
}

func (c *Chain) inSize() int {
	if c.in == inFloat32 {
		return 4
	}
	return 2
}

// padRun writes the encoded padding into output elements [lo, hi).
func (c *Chain) padRun(dst []byte, lo, hi int) {
	if c.out == outFloat32 {
		for i := lo; i < hi; i++ {
			binary.LittleEndian.PutUint32(dst[4*i:], c.pad)
		}
		return
	}
	for i := lo; i < hi; i++ {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(c.pad))
	}
}

// Steps returns the chain's steps after fusion.
func (c *Chain) Steps() []Step { return c.steps }

// Dropout blanks (NaN) the time steps a sample may not see: those from
// Row.AvailableT on, as the sampler decided per sample.
type Dropout struct{}

// Apply implements Step.
func (Dropout) Apply(row []float32, at Row) {
	if at.T < at.AvailableT {
		return
	}
	nan := float32(math.NaN())
	for i := range row {
		row[i] = nan
	}
}

// Normalise computes (x − Mean[c])·Scale[c] for output channel c (the last
// entry for channels past the end), Scale being 1/std: subtracting first
// keeps the precision that x·scale − mean/std loses to cancellation.
type Normalise struct {
	Mean, Scale []float32
}

// NewNormalise returns the normalisation with per-channel means and
// standard deviations.
func NewNormalise(mean, std []float32) Normalise {
	n := Normalise{Mean: mean, Scale: make([]float32, len(std))}
	for k, s := range std {
		n.Scale[k] = 1 / s
	}
	return n
}

func (n Normalise) channel(c int64) (mean, scale float32) {
	k := min(c, int64(len(n.Scale)-1))
	return n.Mean[k], n.Scale[k]
}

// Apply implements Step.
func (n Normalise) Apply(row []float32, at Row) {
	m, a := n.channel(at.Channel)
	for i, x := range row {
		row[i] = (x - m) * a
	}
}

// Clip bounds values to [Min, Max]; NaN passes through.
type Clip struct{ Min, Max float32 }

// Apply implements Step.
func (c Clip) Apply(row []float32, _ Row) {
	for i, x := range row {
		if x < c.Min {
			row[i] = c.Min
		} else if x > c.Max {
			row[i] = c.Max
		}
	}
}

// FillNaN replaces NaN with Value.
type FillNaN struct{ Value float32 }

// Apply implements Step.
func (f FillNaN) Apply(row []float32, _ Row) {
	for i, x := range row {
		if x != x {
			row[i] = f.Value
		}
	}
}

// ApplyFloat32LE replaces NaN in little-endian float32 data in place: the
// step for data that is already in its output form.
func (f FillNaN) ApplyFloat32LE(b []byte) {
	fb := math.Float32bits(f.Value)
	i := 0
	// Four pairs of values per step, tested at once: NaN (and Inf) have an
	// all-ones exponent, which real data rarely shows. Adding 0x00800000
	// to a value without its sign carries into bit 31 exactly when its
	// exponent is all ones, and never across to the other value of the
	// pair, so one OR of four sums says whether any of eight values needs
	// a closer look.
	const abs, carry, top = 0x7fffffff7fffffff, 0x0080000000800000, 0x8000000080000000
	for ; i+32 <= len(b); i += 32 {
		w := b[i : i+32 : i+32]
		s := (binary.LittleEndian.Uint64(w[0:])&abs + carry) |
			(binary.LittleEndian.Uint64(w[8:])&abs + carry) |
			(binary.LittleEndian.Uint64(w[16:])&abs + carry) |
			(binary.LittleEndian.Uint64(w[24:])&abs + carry)
		if s&top == 0 {
			continue
		}
		for j := 0; j < 32; j += 4 {
			if binary.LittleEndian.Uint32(w[j:])&0x7fffffff > 0x7f800000 {
				binary.LittleEndian.PutUint32(w[j:], fb)
			}
		}
	}
	for ; i+4 <= len(b); i += 4 {
		if binary.LittleEndian.Uint32(b[i:i+4])&0x7fffffff > 0x7f800000 {
			binary.LittleEndian.PutUint32(b[i:i+4], fb)
		}
	}
}

// copyBlock is how much CopyFloat32LE copies before it replaces NaN in
// what it copied: small enough that the second look finds it in L1.
const copyBlock = 8 << 10

// CopyFloat32LE copies little-endian float32 data from src to dst (as
// long), replacing NaN on the way: a zarr.Convert, so that the copy out of
// a decoded chunk and the NaN fill are one pass over the output. dst and
// src may be the same slice.
func (f FillNaN) CopyFloat32LE(dst, src []byte) {
	for len(src) > 0 {
		n := min(len(src), copyBlock)
		copy(dst[:n], src[:n])
		f.ApplyFloat32LE(dst[:n])
		dst, src = dst[n:], src[n:]
	}
}

// normaliseClipFill is Normalise (optional), Clip and FillNaN in one loop.
type normaliseClipFill struct {
	norm       *Normalise
	lo, hi     float32
	fill       float32
	normalises bool
}

func (f normaliseClipFill) Apply(row []float32, at Row) {
	if f.normalises {
		m, a := f.norm.channel(at.Channel)
		f.normaliseRow(row, m, a)
		return
	}
	f.clipFillRow(row)
}

// clipFill clips x to [lo, hi] and replaces NaN (which no comparison
// catches) by fill: the fused steps on one value, small enough to inline
// into every row loop.
func clipFill(x, lo, hi, fill float32) float32 {
	if x < lo {
		x = lo
	} else if x > hi {
		x = hi
	}
	if x != x {
		x = fill
	}
	return x
}

func (f *normaliseClipFill) normaliseRow(row []float32, m, a float32) {
	lo, hi, fill := f.lo, f.hi, f.fill
	for i, x := range row {
		x = (x - m) * a
		x = clipFill(x, lo, hi, fill)
		row[i] = x
	}
}

func (f *normaliseClipFill) clipFillRow(row []float32) {
	lo, hi, fill := f.lo, f.hi, f.fill
	for i, x := range row {
		x = clipFill(x, lo, hi, fill)
		row[i] = x
	}
}

// fuse replaces each run [Normalise] Clip FillNaN by one fused step.
func fuse(steps []Step) []Step {
	var out []Step
	for i := 0; i < len(steps); i++ {
		var f normaliseClipFill
		j := i
		if n, ok := steps[j].(Normalise); ok && j+2 < len(steps) {
			f.norm, f.normalises = &n, true
			j++
		}
		c, okC := steps[j].(Clip)
		var fill FillNaN
		okF := false
		if okC && j+1 < len(steps) {
			fill, okF = steps[j+1].(FillNaN)
		}
		if !okC || !okF {
			out = append(out, steps[i])
			continue
		}
		f.lo, f.hi, f.fill = c.Min, c.Max, fill.Value
		out = append(out, f)
		i = j + 1
	}
	return out
}
