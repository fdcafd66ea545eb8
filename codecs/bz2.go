package codecs

import (
	"fmt"
	"sync"
)

// Bz2 is the bzip2 format, as numcodecs' BZ2 codec writes it. It decodes
// only: there is no bzip2 encoder in Go and the loader never writes.
//
// The decoder is our own rather than compress/bzip2 because SEVIRI stores
// are bz2 and the standard library walks its Huffman trees bit by bit:
// this one decodes codes with a lookup table and writes straight into the
// caller's buffer.
//
// Create it with NewBz2. Its decoders keep their tables between calls: a
// bzip2 block needs up to 3.6 MB of them, which would otherwise be
// allocated for every chunk.
type Bz2 struct {
	decoders sync.Pool // of *bz2Decoder
}

// NewBz2 returns a Bz2 codec that reuses its decoder state across calls.
func NewBz2() *Bz2 {
	return &Bz2{decoders: sync.Pool{New: func() any { return &bz2Decoder{crc: bz2CRCTable()} }}}
}

const (
	bz2BlockMagic = 0x314159265359
	bz2EndMagic   = 0x177245385090
	bz2GroupSize  = 50
	bz2MaxCodeLen = 20
	bz2TableBits  = 10
)

// bz2Bits reads bits most significant first, as bzip2 stores them.
type bz2Bits struct {
	src  []byte
	pos  int    // next byte of src to load
	acc  uint64 // pending bits, left-aligned
	nacc uint   // number of pending bits
	err  error
}

// refill tops the accumulator up to at least 57 bits while input lasts.
func (r *bz2Bits) refill() {
	for r.nacc <= 56 {
		if r.pos >= len(r.src) {
			return
		}
		r.acc |= uint64(r.src[r.pos]) << (56 - r.nacc)
		r.pos++
		r.nacc += 8
	}
}

// read returns the next n (<= 32) bits.
func (r *bz2Bits) read(n uint) uint64 {
	if r.nacc < n {
		r.refill()
		if r.nacc < n {
			r.err = fmt.Errorf("bz2: input ends inside a block: %w", ErrCorrupt)
			r.acc, r.nacc = 0, 64 // keep decoding loops bounded
		}
	}
	v := r.acc >> (64 - n)
	r.acc <<= n
	r.nacc -= n
	return v
}

func (r *bz2Bits) bit() bool { return r.read(1) == 1 }

// bz2Huffman is one canonical code table: codes of up to bz2TableBits bits
// resolve with one lookup; longer ones walk the per-length limits.
type bz2Huffman struct {
	table  [1 << bz2TableBits]uint16 // symbol<<5 | length; 0 means "longer"
	limit  [bz2MaxCodeLen + 2]int32  // largest code of each length, left-aligned to its length
	base   [bz2MaxCodeLen + 2]int32  // index in perm of each length's first code, minus that code
	perm   [258]uint16               // symbols in code order
	minLen uint
}

func (h *bz2Huffman) build(lengths []uint8) error {
	var count [bz2MaxCodeLen + 1]int32
	for _, l := range lengths {
		count[l]++
	}
	h.minLen = bz2MaxCodeLen
	n := 0
	for l := 1; l <= bz2MaxCodeLen; l++ {
		if count[l] > 0 && uint(l) < h.minLen {
			h.minLen = uint(l)
		}
		for s, sl := range lengths {
			if int(sl) == l {
				h.perm[n] = uint16(s)
				n++
			}
		}
	}
	code, idx := int32(0), int32(0)
	for l := 1; l <= bz2MaxCodeLen; l++ {
		h.base[l] = idx - code
		code += count[l]
		idx += count[l]
		h.limit[l] = code - 1
		if code > 1<<l {
			return fmt.Errorf("bz2: oversubscribed Huffman code: %w", ErrCorrupt)
		}
		code <<= 1
	}
	clear(h.table[:])
	code, idx = 0, 0
	for l := 1; l <= bz2TableBits; l++ {
		for range count[l] {
			sym := h.perm[idx]
			first := int(code) << (bz2TableBits - l)
			for i := range 1 << (bz2TableBits - l) {
				h.table[first+i] = sym<<5 | uint16(l)
			}
			code++
			idx++
		}
		code <<= 1
	}
	return nil
}

// decode reads one symbol.
func (h *bz2Huffman) decode(r *bz2Bits) (int, error) {
	if r.nacc < bz2MaxCodeLen {
		r.refill()
	}
	if e := h.table[r.acc>>(64-bz2TableBits)]; e != 0 {
		l := uint(e & 31)
		if l > r.nacc {
			return 0, fmt.Errorf("bz2: input ends inside a code: %w", ErrCorrupt)
		}
		r.acc <<= l
		r.nacc -= l
		return int(e >> 5), nil
	}
	for l := uint(bz2TableBits + 1); l <= bz2MaxCodeLen; l++ {
		code := int32(r.acc >> (64 - l))
		if code <= h.limit[l] {
			if l > r.nacc {
				return 0, fmt.Errorf("bz2: input ends inside a code: %w", ErrCorrupt)
			}
			r.acc <<= l
			r.nacc -= l
			i := h.base[l] + code
			if i < 0 || int(i) >= len(h.perm) {
				return 0, fmt.Errorf("bz2: invalid Huffman code: %w", ErrCorrupt)
			}
			return int(h.perm[i]), nil
		}
	}
	return 0, fmt.Errorf("bz2: invalid Huffman code: %w", ErrCorrupt)
}

// Decode decompresses a bzip2 stream (concatenated streams included).
func (b *Bz2) Decode(dst, src []byte, size int) ([]byte, error) {
	d := b.decoders.Get().(*bz2Decoder)
	defer b.decoders.Put(d)
	return d.decode(dst, src, size)
}

func (d *bz2Decoder) decode(dst, src []byte, size int) ([]byte, error) {
	var out []byte
	if size >= 0 {
		out = resize(dst, size)[:0]
	} else {
		out = dst[:0]
	}
	d.limit = limitOf(size)
	r := &bz2Bits{src: src}
	for stream := 0; ; stream++ {
		if stream > 0 {
			// Streams end byte-aligned; another may follow.
			r.acc <<= r.nacc % 8
			r.nacc -= r.nacc % 8
			if r.nacc == 0 && r.pos >= len(src) {
				break
			}
		}
		var err error
		if out, err = d.stream(r, out); err != nil {
			return nil, err
		}
	}
	if size >= 0 && len(out) != size {
		return nil, fmt.Errorf("bz2: decoded %d bytes, caller expects %d: %w", len(out), size, ErrCorrupt)
	}
	return out, nil
}

// bz2Decoder holds the state reused across blocks and, pooled, across
// calls. Every block overwrites what it reads of it.
type bz2Decoder struct {
	limit     int // of the current call
	tt        []uint32
	selectors []uint8
	trees     [6]bz2Huffman
	crc       *[256]uint32
}

func (d *bz2Decoder) stream(r *bz2Bits, out []byte) ([]byte, error) {
	if r.read(8) != 'B' || r.read(8) != 'Z' || r.read(8) != 'h' {
		return nil, fmt.Errorf("bz2: missing BZh stream header: %w", ErrCorrupt)
	}
	level := r.read(8)
	if r.err != nil || level < '1' || level > '9' {
		return nil, fmt.Errorf("bz2: invalid block size level %q: %w", byte(level), ErrCorrupt)
	}
	maxBlock := int(level-'0') * 100000
	var combined uint32
	for {
		magic := r.read(24)<<24 | r.read(24)
		crc := uint32(r.read(32))
		if r.err != nil {
			return nil, r.err
		}
		switch magic {
		case bz2EndMagic:
			if crc != combined {
				return nil, fmt.Errorf("bz2: stream checksum mismatch: %w", ErrCorrupt)
			}
			return out, nil
		case bz2BlockMagic:
		default:
			return nil, fmt.Errorf("bz2: bad block magic %#x: %w", magic, ErrCorrupt)
		}
		start := len(out)
		var err error
		if out, err = d.block(r, out, maxBlock); err != nil {
			return nil, err
		}
		if got := bz2CRC(d.crc, out[start:]); got != crc {
			return nil, fmt.Errorf("bz2: block checksum mismatch: %w", ErrCorrupt)
		}
		combined = (combined<<1 | combined>>31) ^ crc
	}
}

// block decodes one block (after its magic and CRC) and appends its bytes.
func (d *bz2Decoder) block(r *bz2Bits, out []byte, maxBlock int) ([]byte, error) {
	if r.bit() {
		return nil, fmt.Errorf("bz2: randomised blocks (bzip2 0.9.0) are not supported: %w", ErrCorrupt)
	}
	origPtr := int(r.read(24))

	// Which byte values occur, as 16 groups of 16.
	var symbols [256]byte
	nsym := 0
	used := r.read(16)
	for g := range 16 {
		if used&(0x8000>>g) == 0 {
			continue
		}
		bitsOfGroup := r.read(16)
		for i := range 16 {
			if bitsOfGroup&(0x8000>>i) != 0 {
				symbols[nsym] = byte(g*16 + i)
				nsym++
			}
		}
	}
	if nsym == 0 {
		return nil, fmt.Errorf("bz2: block uses no symbols: %w", ErrCorrupt)
	}
	alphaSize := nsym + 2
	ntrees := int(r.read(3))
	nselectors := int(r.read(15))
	if r.err != nil {
		return nil, r.err
	}
	if ntrees < 2 || ntrees > 6 || nselectors == 0 {
		return nil, fmt.Errorf("bz2: %d trees, %d selectors: %w", ntrees, nselectors, ErrCorrupt)
	}
	if cap(d.selectors) < nselectors {
		d.selectors = make([]uint8, nselectors)
	}
	selectors := d.selectors[:nselectors]
	var mtfTrees [6]uint8
	for i := range ntrees {
		mtfTrees[i] = uint8(i)
	}
	for i := range selectors {
		j := 0
		for r.bit() {
			j++
			if j >= ntrees || r.err != nil {
				return nil, fmt.Errorf("bz2: selector out of range: %w", ErrCorrupt)
			}
		}
		t := mtfTrees[j]
		copy(mtfTrees[1:j+1], mtfTrees[:j])
		mtfTrees[0] = t
		selectors[i] = t
	}
	var lengths [258]uint8
	for t := range ntrees {
		l := int(r.read(5))
		for s := range alphaSize {
			for {
				if l < 1 || l > bz2MaxCodeLen || r.err != nil {
					return nil, fmt.Errorf("bz2: code length %d out of range: %w", l, ErrCorrupt)
				}
				if !r.bit() {
					break
				}
				if r.bit() {
					l--
				} else {
					l++
				}
			}
			lengths[s] = uint8(l)
		}
		if err := d.trees[t].build(lengths[:alphaSize]); err != nil {
			return nil, err
		}
	}

	// Huffman and move-to-front decode into tt's low bytes. The initial
	// run-length encoding turns every 5 bytes into at least 4, so a block
	// longer than 5/4 of the output still allowed cannot be valid: small
	// chunks need no 900k-entry table.
	if room := d.limit - len(out); room < maxBlock {
		maxBlock = min(maxBlock, room/4*5+8)
	}
	if cap(d.tt) < maxBlock {
		d.tt = make([]uint32, maxBlock)
	}
	tt := d.tt[:maxBlock]
	var counts [256]int
	var mtf [256]byte
	for i := range nsym {
		mtf[i] = byte(i)
	}
	n := 0
	eob := alphaSize - 1
	run, runBit := 0, 0
	group, left := 0, 0
	var tree *bz2Huffman
	flushRun := func() error {
		if run == 0 {
			return nil
		}
		if run > maxBlock-n {
			return fmt.Errorf("bz2: run overflows the block (at most %d bytes here): %w", maxBlock, ErrCorrupt)
		}
		b := symbols[mtf[0]]
		counts[b] += run
		for i := n; i < n+run; i++ {
			tt[i] = uint32(b)
		}
		n += run
		run, runBit = 0, 0
		return nil
	}
	for {
		if left == 0 {
			if group >= nselectors {
				return nil, fmt.Errorf("bz2: block needs more than its %d selectors: %w", nselectors, ErrCorrupt)
			}
			tree = &d.trees[selectors[group]]
			group++
			left = bz2GroupSize
		}
		left--
		sym, err := tree.decode(r)
		if err != nil {
			return nil, err
		}
		if sym <= 1 { // RUNA, RUNB: bijective base-2 digits of a run length
			if runBit > 20 {
				return nil, fmt.Errorf("bz2: run length too long: %w", ErrCorrupt)
			}
			run += (sym + 1) << runBit
			runBit++
			continue
		}
		if err := flushRun(); err != nil {
			return nil, err
		}
		if sym == eob {
			break
		}
		if sym > eob || n >= maxBlock {
			return nil, fmt.Errorf("bz2: block overflows (at most %d bytes here): %w", maxBlock, ErrCorrupt)
		}
		idx := sym - 1
		v := mtf[idx]
		copy(mtf[1:idx+1], mtf[:idx])
		mtf[0] = v
		b := symbols[v]
		counts[b]++
		tt[n] = uint32(b)
		n++
	}
	if r.err != nil {
		return nil, r.err
	}
	if origPtr >= n {
		return nil, fmt.Errorf("bz2: origin pointer %d outside the %d-byte block: %w", origPtr, n, ErrCorrupt)
	}

	// Inverse Burrows-Wheeler: link each position to the next in the
	// upper 24 bits of tt.
	var next [256]int
	sum := 0
	for b, c := range counts {
		next[b] = sum
		sum += c
	}
	for i := range n {
		b := tt[i] & 0xff
		tt[next[b]] |= uint32(i) << 8
		next[b]++
	}

	// Walk the chain, undoing the initial run-length encoding: four equal
	// bytes are followed by a count of further repeats.
	pos := tt[origPtr] >> 8
	last, same := -1, 0
	for range n {
		v := tt[pos&0xFFFFFF]
		pos = v >> 8
		b := byte(v)
		if same == 4 {
			reps := int(b)
			if reps > d.limit-len(out) {
				return nil, fmt.Errorf("bz2: decoded data exceeds the limit of %d bytes: %w", d.limit, ErrCorrupt)
			}
			c := byte(last)
			for range reps {
				out = append(out, c)
			}
			same = 0
			last = -1
			continue
		}
		if int(b) == last {
			same++
		} else {
			last, same = int(b), 1
		}
		if len(out) >= d.limit {
			return nil, fmt.Errorf("bz2: decoded data exceeds the limit of %d bytes: %w", d.limit, ErrCorrupt)
		}
		out = append(out, b)
	}
	return out, nil
}

// bz2CRCTable builds the table for bzip2's CRC-32: the IEEE polynomial
// taken most significant bit first.
func bz2CRCTable() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return &t
}

func bz2CRC(t *[256]uint32, b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc = crc<<8 ^ t[byte(crc>>24)^c]
	}
	return ^crc
}
