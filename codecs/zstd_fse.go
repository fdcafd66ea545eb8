package codecs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// zstdBits reads a zstd backward bit stream (RFC 8878 §4.1): the stream is
// written forwards and read from its last byte, whose highest set bit marks
// the end. value holds the 8 bytes at in[pos:]; consumed counts the bits
// already taken from its top.
type zstdBits struct {
	in       []byte
	pos      int
	value    uint64
	consumed uint
}

func (br *zstdBits) init(in []byte) error {
	if len(in) == 0 {
		return fmt.Errorf("empty bit stream: %w", ErrCorrupt)
	}
	last := in[len(in)-1]
	if last == 0 {
		return fmt.Errorf("bit stream lacks its end mark: %w", ErrCorrupt)
	}
	br.in = in
	br.consumed = uint(8 - (bits.Len8(last) - 1))
	if len(in) >= 8 {
		br.pos = len(in) - 8
		br.value = binary.LittleEndian.Uint64(in[br.pos:])
		return nil
	}
	br.pos = 0
	var v uint64
	for i := len(in) - 1; i >= 0; i-- {
		v = v<<8 | uint64(in[i])
	}
	br.value = v
	br.consumed += uint(8-len(in)) * 8
	return nil
}

// get consumes and returns the next n bits (0 <= n <= 56 after a reload).
// Bits past the start of the stream read as zeros or garbage; overrun
// reports them afterwards.
func (br *zstdBits) get(n uint8) uint64 {
	v := br.value << (br.consumed & 63) >> 1 >> (63 - n)
	br.consumed += uint(n)
	return v
}

// reload refills value so that at least 56 bits are available, unless the
// stream's start is near.
func (br *zstdBits) reload() {
	if br.consumed > 64 {
		return
	}
	if br.pos >= 8 {
		br.pos -= int(br.consumed >> 3)
		br.consumed &= 7
		br.value = binary.LittleEndian.Uint64(br.in[br.pos:])
		return
	}
	if br.pos == 0 {
		return
	}
	nb := min(int(br.consumed>>3), br.pos)
	br.pos -= nb
	br.consumed -= uint(nb) * 8
	br.value = binary.LittleEndian.Uint64(br.in[br.pos:])
}

// overrun reports whether more bits were read than the stream holds.
func (br *zstdBits) overrun() bool { return br.consumed > 64 }

// finished reports whether every bit of the stream was read, no more.
func (br *zstdBits) finished() bool { return br.pos == 0 && br.consumed == 64 }

// fseMaxSymbols bounds the alphabets FSE tables describe in zstd: literal
// length codes (36), match length codes (53), offset codes (32) and
// Huffman weights (13).
const fseMaxSymbols = 64

// readNCount parses an FSE table description (RFC 8878 §4.1.1) from src
// into norm, checking its accuracy log against maxLog and its symbols
// against maxSymbol. It returns the accuracy log, the number of symbols
// described and the bytes used.
func readNCount(norm *[fseMaxSymbols]int16, src []byte, maxSymbol, maxLog int) (log, nsym, used int, err error) {
	var bitPos int
	// readBits returns n bits at bitPos; bytes past src read as zeros and
	// are caught by the final length check.
	readBits := func(n int) uint32 {
		var v uint64
		byteAt := bitPos >> 3
		if byteAt+8 <= len(src) {
			v = binary.LittleEndian.Uint64(src[byteAt:])
		} else {
			for i := 7; i >= 0; i-- {
				v <<= 8
				if byteAt+i < len(src) {
					v |= uint64(src[byteAt+i])
				}
			}
		}
		return uint32(v>>(bitPos&7)) & (1<<n - 1)
	}
	if len(src) == 0 {
		return 0, 0, 0, fmt.Errorf("FSE table description missing: %w", ErrCorrupt)
	}
	*norm = [fseMaxSymbols]int16{}
	log = int(readBits(4)) + 5
	bitPos = 4
	if log > maxLog {
		return 0, 0, 0, fmt.Errorf("FSE accuracy log %d exceeds %d: %w", log, maxLog, ErrCorrupt)
	}
	remaining := 1<<log + 1
	threshold := 1 << log
	nbBits := log + 1
	symbol := 0
	previous0 := false
	for remaining > 1 {
		if previous0 {
			for {
				r := int(readBits(2))
				bitPos += 2
				symbol += r
				if r != 3 {
					break
				}
				if symbol > maxSymbol {
					break
				}
			}
			if symbol > maxSymbol {
				return 0, 0, 0, fmt.Errorf("FSE zero run past symbol %d: %w", maxSymbol, ErrCorrupt)
			}
		}
		if symbol > maxSymbol {
			return 0, 0, 0, fmt.Errorf("FSE table describes more than %d symbols: %w", maxSymbol+1, ErrCorrupt)
		}
		v := int(readBits(nbBits))
		lowMax := 2*threshold - 1 - remaining
		var count int
		if v&(threshold-1) < lowMax {
			count = v & (threshold - 1)
			bitPos += nbBits - 1
		} else {
			count = v & (2*threshold - 1)
			if count >= threshold {
				count -= lowMax
			}
			bitPos += nbBits
		}
		count--
		if count < 0 {
			remaining--
		} else {
			remaining -= count
		}
		if remaining < 1 {
			return 0, 0, 0, fmt.Errorf("FSE probabilities exceed the table size: %w", ErrCorrupt)
		}
		norm[symbol] = int16(count)
		symbol++
		previous0 = count == 0
		for remaining < threshold {
			nbBits--
			threshold >>= 1
		}
		if bitPos > 8*len(src) {
			return 0, 0, 0, fmt.Errorf("FSE table description truncated: %w", ErrCorrupt)
		}
	}
	used = (bitPos + 7) >> 3
	if used > len(src) {
		return 0, 0, 0, fmt.Errorf("FSE table description truncated: %w", ErrCorrupt)
	}
	return log, symbol, used, nil
}

// fseEntry is one state of an FSE decoding table: the symbol it emits and
// how to reach the next state (newState plus nbBits read bits).
type fseEntry struct {
	symbol   uint8
	nbBits   uint8
	newState uint16
}

// buildFSE spreads the normalised counts over a table of 1<<log states
// (RFC 8878 §4.1.1, "FSE Table Construction").
func buildFSE(table []fseEntry, norm *[fseMaxSymbols]int16, nsym, log int) error {
	size := 1 << log
	if len(table) < size {
		return fmt.Errorf("FSE accuracy log %d too large: %w", log, ErrCorrupt)
	}
	table = table[:size]
	var next [fseMaxSymbols]uint16
	high := size - 1
	for s := range nsym {
		if norm[s] == -1 {
			if high < 0 {
				return fmt.Errorf("FSE table overfull: %w", ErrCorrupt)
			}
			table[high].symbol = uint8(s)
			high--
			next[s] = 1
		} else {
			next[s] = uint16(norm[s])
		}
	}
	mask := size - 1
	step := size>>1 + size>>3 + 3
	pos := 0
	for s := range nsym {
		for range int(max(norm[s], 0)) {
			table[pos].symbol = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	if pos != 0 {
		return fmt.Errorf("FSE probabilities do not fill the table: %w", ErrCorrupt)
	}
	for u := range table {
		s := table[u].symbol
		ns := next[s]
		next[s]++
		if ns == 0 {
			return fmt.Errorf("FSE state for symbol %d without probability: %w", s, ErrCorrupt)
		}
		nb := log - (bits.Len16(ns) - 1)
		table[u].nbBits = uint8(nb)
		table[u].newState = uint16(int(ns)<<nb - size)
	}
	return nil
}

// seqSymbol is one state of a sequence (literal length, match length or
// offset) decoding table, with the code's baseline and extra bit count
// folded in as libzstd does, packed in one word so that the decoding loop
// loads it at once: bits 0-15 the next state's base, 16-23 the extra bits
// of the value, 24-31 the state bits, 32-63 the value's baseline.
type seqSymbol uint64

func makeSeqSymbol(newState uint16, nbBits, addBits uint8, base uint32) seqSymbol {
	return seqSymbol(newState) | seqSymbol(addBits)<<16 | seqSymbol(nbBits)<<24 | seqSymbol(base)<<32
}

// seqTableMax is the most states a sequence table has (accuracy log 9).
const seqTableMax = 1 << 9

type seqTable struct {
	log     uint8
	entries [seqTableMax]seqSymbol
}

// seqKind describes one of the three sequence alphabets.
type seqKind struct {
	name      string
	maxSymbol int
	maxLog    int
	base      []uint32
	addBits   []uint8
	predef    []int16
	predefLog int
}

var (
	llBase = []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
		8192, 16384, 32768, 65536}
	llBits = []uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12,
		13, 14, 15, 16}
	mlBase = []uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
		19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
		35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
		4099, 8195, 16387, 32771, 65539}
	mlBits = []uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11,
		12, 13, 14, 15, 16}
	llPredef = []int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
		-1, -1, -1, -1}
	mlPredef = []int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1,
		-1, -1, -1, -1, -1}
	ofPredef = []int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}
)

// The three alphabets, in the order of the tables in zstdDecoder.seq.
// Offset codes above 31 cannot be represented in a frame whose window fits
// in 32 bits.
var (
	llKind = seqKind{name: "literal lengths", maxSymbol: 35, maxLog: 9, base: llBase, addBits: llBits, predef: llPredef, predefLog: 6}
	mlKind = seqKind{name: "match lengths", maxSymbol: 52, maxLog: 9, base: mlBase, addBits: mlBits, predef: mlPredef, predefLog: 6}
	ofKind = seqKind{name: "offsets", maxSymbol: 31, maxLog: 8, predef: ofPredef, predefLog: 5}

	seqKinds = [3]*seqKind{&llKind, &ofKind, &mlKind}
)

func (k *seqKind) symbol(s uint8) (base uint32, addBits uint8) {
	if k.base == nil {
		return 1 << s, s
	}
	return k.base[s], k.addBits[s]
}

// build fills t from normalised counts.
func (t *seqTable) build(k *seqKind, norm *[fseMaxSymbols]int16, nsym, log int, tmp *[seqTableMax]fseEntry) error {
	if err := buildFSE(tmp[:], norm, nsym, log); err != nil {
		return fmt.Errorf("%s: %w", k.name, err)
	}
	t.log = uint8(log)
	for i, e := range tmp[:1<<log] {
		base, add := k.symbol(e.symbol)
		t.entries[i] = makeSeqSymbol(e.newState, e.nbBits, add, base)
	}
	return nil
}

// buildPredefined fills t with k's default distribution.
func (t *seqTable) buildPredefined(k *seqKind, tmp *[seqTableMax]fseEntry) {
	var norm [fseMaxSymbols]int16
	copy(norm[:], k.predef)
	if err := t.build(k, &norm, len(k.predef), k.predefLog, tmp); err != nil {
		panic(fmt.Sprintf("codecs: zstd predefined %s table: %v", k.name, err))
	}
}

// buildRLE makes t a one-state table that always emits symbol s.
func (t *seqTable) buildRLE(k *seqKind, s byte) error {
	if int(s) > k.maxSymbol {
		return fmt.Errorf("%s: RLE symbol %d exceeds %d: %w", k.name, s, k.maxSymbol, ErrCorrupt)
	}
	base, add := k.symbol(s)
	t.log = 0
	t.entries[0] = makeSeqSymbol(0, 0, add, base)
	return nil
}
