package codecs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// huffMaxLog is the longest Huffman code zstd allows (RFC 8878 §4.2.1).
const huffMaxLog = 11

// huffTable decodes zstd Huffman literals one symbol per lookup: dt[i]
// holds symbol | nbBits<<8 for every code that the 11 bits i start with.
type huffTable struct {
	dt [1 << huffMaxLog]uint16
}

// huffScratch is the room readHuffTable needs.
type huffScratch struct {
	weights [256]byte
	norm    [fseMaxSymbols]int16
	fse     [64]fseEntry
}

// read parses a Huffman tree description (RFC 8878 §4.2.1) at the start
// of src, builds the decoding table and returns the bytes it used.
func (h *huffTable) read(src []byte, s *huffScratch) (int, error) {
	if len(src) == 0 {
		return 0, fmt.Errorf("Huffman tree description missing: %w", ErrCorrupt)
	}
	header := int(src[0])
	var n, used int
	if header >= 128 {
		n = header - 127
		used = 1 + (n+1)/2
		if used > len(src) {
			return 0, fmt.Errorf("Huffman weights truncated: %w", ErrCorrupt)
		}
		for i := 0; i < n; i += 2 {
			b := src[1+i/2]
			s.weights[i] = b >> 4
			s.weights[i+1] = b & 15
		}
	} else {
		used = 1 + header
		if used > len(src) {
			return 0, fmt.Errorf("Huffman weights of %d bytes truncated to %d: %w", header, len(src)-1, ErrCorrupt)
		}
		var err error
		if n, err = s.fseWeights(src[1:used]); err != nil {
			return 0, fmt.Errorf("Huffman weights: %w", err)
		}
	}
	return used, h.build(s.weights[:n], s)
}

// fseWeights decodes FSE-compressed Huffman weights into s.weights.
func (s *huffScratch) fseWeights(src []byte) (int, error) {
	log, nsym, hdr, err := readNCount(&s.norm, src, huffMaxLog+1, 6)
	if err != nil {
		return 0, err
	}
	if err := buildFSE(s.fse[:], &s.norm, nsym, log); err != nil {
		return 0, err
	}
	var br zstdBits
	if err := br.init(src[hdr:]); err != nil {
		return 0, err
	}
	table := s.fse[:1<<log]
	mask := uint16(len(table) - 1)
	s1 := uint16(br.get(uint8(log))) & mask
	s2 := uint16(br.get(uint8(log))) & mask
	br.reload()
	n := 0
	// The two states alternate until the stream runs out; the state that
	// would have read past the start emits one last symbol.
	for {
		if n > 253 {
			return 0, fmt.Errorf("more than 255 weights: %w", ErrCorrupt)
		}
		e := table[s1]
		s.weights[n] = e.symbol
		n++
		s1 = (e.newState + uint16(br.get(e.nbBits))) & mask
		br.reload()
		if br.overrun() {
			s.weights[n] = table[s2].symbol
			n++
			break
		}
		e = table[s2]
		s.weights[n] = e.symbol
		n++
		s2 = (e.newState + uint16(br.get(e.nbBits))) & mask
		br.reload()
		if br.overrun() {
			s.weights[n] = table[s1].symbol
			n++
			break
		}
	}
	return n, nil
}

// build turns the weights of the first len(weights) symbols, the last
// symbol's weight being implied, into the decoding table.
func (h *huffTable) build(weights []byte, s *huffScratch) error {
	var rank [huffMaxLog + 2]int
	total := 0
	for _, w := range weights {
		if w > huffMaxLog {
			return fmt.Errorf("Huffman weight %d exceeds %d: %w", w, huffMaxLog, ErrCorrupt)
		}
		rank[w]++
		if w > 0 {
			total += 1 << (w - 1)
		}
	}
	if total == 0 {
		return fmt.Errorf("Huffman weights all zero: %w", ErrCorrupt)
	}
	log := bits.Len(uint(total))
	if log > huffMaxLog {
		return fmt.Errorf("Huffman codes longer than %d bits: %w", huffMaxLog, ErrCorrupt)
	}
	rest := 1<<log - total
	if rest&(rest-1) != 0 {
		return fmt.Errorf("Huffman weights do not complete a tree: %w", ErrCorrupt)
	}
	last := bits.Len(uint(rest))
	n := len(weights)
	if n >= 256 {
		return fmt.Errorf("Huffman tree of more than 256 symbols: %w", ErrCorrupt)
	}
	s.weights[n] = byte(last)
	rank[last]++
	n++
	if rank[1] < 2 || rank[1]&1 != 0 {
		return fmt.Errorf("Huffman tree with %d shortest codes: %w", rank[1], ErrCorrupt)
	}
	var start [huffMaxLog + 2]int
	next := 0
	for w := 1; w <= log; w++ {
		start[w] = next
		next += rank[w] << (w - 1)
	}
	// The table is always indexed by 11 bits, a code of a shorter table
	// filling every index it prefixes, so that decoding shifts by a
	// constant.
	scale := huffMaxLog - log
	for w := 1; w <= log; w++ {
		start[w] <<= scale
	}
	for sym, w := range s.weights[:n] {
		if w == 0 {
			continue
		}
		length := 1 << (int(w) - 1 + scale)
		e := uint16(sym) | uint16(log+1-int(w))<<8
		p := start[w]
		for i := range length {
			h.dt[p+i] = e
		}
		start[w] = p + length
	}
	return nil
}

// decode1 decodes a single Huffman stream into dst, which it must fill.
func (h *huffTable) decode1(dst, src []byte) error {
	var br zstdBits
	if err := br.init(src); err != nil {
		return err
	}
	return h.decodeStream(dst, &br)
}

// decodeStream finishes one stream: it fills dst from br and checks that
// the stream ends exactly there.
func (h *huffTable) decodeStream(dst []byte, br *zstdBits) error {
	dt := &h.dt
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		br.reload()
		v, c := br.value, br.consumed
		e := dt[v<<(c&63)>>(64-huffMaxLog)]
		c += uint(e >> 8)
		dst[i] = byte(e)
		e = dt[v<<(c&63)>>(64-huffMaxLog)]
		c += uint(e >> 8)
		dst[i+1] = byte(e)
		e = dt[v<<(c&63)>>(64-huffMaxLog)]
		c += uint(e >> 8)
		dst[i+2] = byte(e)
		e = dt[v<<(c&63)>>(64-huffMaxLog)]
		c += uint(e >> 8)
		dst[i+3] = byte(e)
		br.consumed = c
		if c > 64 {
			return fmt.Errorf("Huffman stream overrun: %w", ErrCorrupt)
		}
	}
	for ; i < len(dst); i++ {
		br.reload()
		e := dt[br.value<<(br.consumed&63)>>(64-huffMaxLog)]
		br.consumed += uint(e >> 8)
		dst[i] = byte(e)
	}
	if !br.finished() {
		return fmt.Errorf("Huffman stream does not end with its literals: %w", ErrCorrupt)
	}
	return nil
}

// decode4 decodes the four interleaved streams of a literals section
// (RFC 8878 §3.1.1.3.1.6) into dst, which they must fill.
func (h *huffTable) decode4(dst, src []byte) error {
	if len(src) < 10 {
		return fmt.Errorf("Huffman jump table truncated: %w", ErrCorrupt)
	}
	l0 := int(binary.LittleEndian.Uint16(src))
	l1 := int(binary.LittleEndian.Uint16(src[2:]))
	l2 := int(binary.LittleEndian.Uint16(src[4:]))
	src = src[6:]
	if l0+l1+l2 >= len(src) {
		return fmt.Errorf("Huffman streams of %d+%d+%d bytes exceed %d: %w", l0, l1, l2, len(src), ErrCorrupt)
	}
	seg := (len(dst) + 3) / 4
	if 3*seg > len(dst) {
		return fmt.Errorf("%d literals cannot fill four Huffman streams: %w", len(dst), ErrCorrupt)
	}
	var b0, b1, b2, b3 zstdBits
	if err := b0.init(src[:l0]); err != nil {
		return err
	}
	if err := b1.init(src[l0 : l0+l1]); err != nil {
		return err
	}
	if err := b2.init(src[l0+l1 : l0+l1+l2]); err != nil {
		return err
	}
	if err := b3.init(src[l0+l1+l2:]); err != nil {
		return err
	}
	// The fast loop runs while every stream has a whole window left and
	// the shortest segment room for a round.
	streams := [4]*zstdBits{&b0, &b1, &b2, &b3}
	lp := huff4Loop{out: dst, seg: seg, n: len(dst) - 3*seg}
	fast := lp.n >= 5
	for k, b := range streams {
		lp.in[k], lp.pos[k] = b.in, b.pos
		fast = fast && b.pos >= 8
	}
	if fast {
		for k, b := range streams {
			lp.consumed[k] = b.consumed
		}
		huff4(&h.dt, &lp)
		for k, b := range streams {
			b.pos, b.consumed = lp.pos[k], lp.consumed[k]
			b.value = binary.LittleEndian.Uint64(b.in[b.pos:])
		}
	}
	i := lp.i
	for k, st := range []struct {
		d  []byte
		br *zstdBits
	}{{dst[i:seg], &b0}, {dst[seg+i : 2*seg], &b1}, {dst[2*seg+i : 3*seg], &b2}, {dst[3*seg+i:], &b3}} {
		if err := h.decodeStream(st.d, st.br); err != nil {
			return fmt.Errorf("Huffman stream %d: %w", k+1, err)
		}
	}
	return nil
}

// huff4Loop is the state of the four-stream fast loop: stream k's 8-byte
// window is in[k][pos[k]:], of which consumed[k] bits are read; each stream
// has written i symbols to out[k*seg:]. The loop stops before a round (5
// symbols a stream) would pass n symbols or a window would move below
// in[k][0].
type huff4Loop struct {
	in       [4][]byte
	pos      [4]int
	consumed [4]uint
	out      []byte
	seg      int
	n        int
	i        int
}

// huff4 is the fast loop: 5 symbols (at most 55 bits) from each stream per
// round, after a reload that leaves at least 56. Each stream's bits are
// left-aligned in x so that a symbol's dependency chain is a shift, a
// lookup and a shift. The five rounds are written out because the Go
// compiler does not unroll loops.
func huff4(dt *[1 << huffMaxLog]uint16, lp *huff4Loop) {
	in0, in1, in2, in3 := lp.in[0], lp.in[1], lp.in[2], lp.in[3]
	p0, p1, p2, p3 := lp.pos[0], lp.pos[1], lp.pos[2], lp.pos[3]
	c0, c1, c2, c3 := lp.consumed[0], lp.consumed[1], lp.consumed[2], lp.consumed[3]
	n, seg, i := lp.n, lp.seg, lp.i
	d0, d1, d2, d3 := lp.out[:n], lp.out[seg:seg+n], lp.out[2*seg:2*seg+n], lp.out[3*seg:3*seg+n]
	for i+5 <= n && p0 >= 8 && p1 >= 8 && p2 >= 8 && p3 >= 8 {
		p0 -= int(c0 >> 3)
		p1 -= int(c1 >> 3)
		p2 -= int(c2 >> 3)
		p3 -= int(c3 >> 3)
		c0 &= 7
		c1 &= 7
		c2 &= 7
		c3 &= 7
		x0 := binary.LittleEndian.Uint64(in0[p0:]) << c0
		x1 := binary.LittleEndian.Uint64(in1[p1:]) << c1
		x2 := binary.LittleEndian.Uint64(in2[p2:]) << c2
		x3 := binary.LittleEndian.Uint64(in3[p3:]) << c3
		o0 := d0[i : i+5 : i+5]
		o1 := d1[i : i+5 : i+5]
		o2 := d2[i : i+5 : i+5]
		o3 := d3[i : i+5 : i+5]
		e0 := dt[x0>>(64-huffMaxLog)]
		e1 := dt[x1>>(64-huffMaxLog)]
		e2 := dt[x2>>(64-huffMaxLog)]
		e3 := dt[x3>>(64-huffMaxLog)]
		x0 <<= (e0 >> 8) & 63
		x1 <<= (e1 >> 8) & 63
		x2 <<= (e2 >> 8) & 63
		x3 <<= (e3 >> 8) & 63
		c0 += uint(e0 >> 8)
		c1 += uint(e1 >> 8)
		c2 += uint(e2 >> 8)
		c3 += uint(e3 >> 8)
		o0[0] = byte(e0)
		o1[0] = byte(e1)
		o2[0] = byte(e2)
		o3[0] = byte(e3)
		e0 = dt[x0>>(64-huffMaxLog)]
		e1 = dt[x1>>(64-huffMaxLog)]
		e2 = dt[x2>>(64-huffMaxLog)]
		e3 = dt[x3>>(64-huffMaxLog)]
		x0 <<= (e0 >> 8) & 63
		x1 <<= (e1 >> 8) & 63
		x2 <<= (e2 >> 8) & 63
		x3 <<= (e3 >> 8) & 63
		c0 += uint(e0 >> 8)
		c1 += uint(e1 >> 8)
		c2 += uint(e2 >> 8)
		c3 += uint(e3 >> 8)
		o0[1] = byte(e0)
		o1[1] = byte(e1)
		o2[1] = byte(e2)
		o3[1] = byte(e3)
		e0 = dt[x0>>(64-huffMaxLog)]
		e1 = dt[x1>>(64-huffMaxLog)]
		e2 = dt[x2>>(64-huffMaxLog)]
		e3 = dt[x3>>(64-huffMaxLog)]
		x0 <<= (e0 >> 8) & 63
		x1 <<= (e1 >> 8) & 63
		x2 <<= (e2 >> 8) & 63
		x3 <<= (e3 >> 8) & 63
		c0 += uint(e0 >> 8)
		c1 += uint(e1 >> 8)
		c2 += uint(e2 >> 8)
		c3 += uint(e3 >> 8)
		o0[2] = byte(e0)
		o1[2] = byte(e1)
		o2[2] = byte(e2)
		o3[2] = byte(e3)
		e0 = dt[x0>>(64-huffMaxLog)]
		e1 = dt[x1>>(64-huffMaxLog)]
		e2 = dt[x2>>(64-huffMaxLog)]
		e3 = dt[x3>>(64-huffMaxLog)]
		x0 <<= (e0 >> 8) & 63
		x1 <<= (e1 >> 8) & 63
		x2 <<= (e2 >> 8) & 63
		x3 <<= (e3 >> 8) & 63
		c0 += uint(e0 >> 8)
		c1 += uint(e1 >> 8)
		c2 += uint(e2 >> 8)
		c3 += uint(e3 >> 8)
		o0[3] = byte(e0)
		o1[3] = byte(e1)
		o2[3] = byte(e2)
		o3[3] = byte(e3)
		e0 = dt[x0>>(64-huffMaxLog)]
		e1 = dt[x1>>(64-huffMaxLog)]
		e2 = dt[x2>>(64-huffMaxLog)]
		e3 = dt[x3>>(64-huffMaxLog)]
		x0 <<= (e0 >> 8) & 63
		x1 <<= (e1 >> 8) & 63
		x2 <<= (e2 >> 8) & 63
		x3 <<= (e3 >> 8) & 63
		c0 += uint(e0 >> 8)
		c1 += uint(e1 >> 8)
		c2 += uint(e2 >> 8)
		c3 += uint(e3 >> 8)
		o0[4] = byte(e0)
		o1[4] = byte(e1)
		o2[4] = byte(e2)
		o3[4] = byte(e3)
		i += 5
	}
	lp.pos = [4]int{p0, p1, p2, p3}
	lp.consumed = [4]uint{c0, c1, c2, c3}
	lp.i = i
}
