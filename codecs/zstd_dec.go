package codecs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	zstdMagic         = 0xFD2FB528
	zstdSkippableMask = 0xFFFFFFF0
	zstdSkippableBase = 0x184D2A50
	// zstdBlockMax is the largest a block may decode to (RFC 8878 §3.1.1.2.3).
	zstdBlockMax = 128 << 10
	// zstdLitSlack lets literal copies read 16 bytes at a time past the
	// last literal.
	zstdLitSlack = 32
)

// zstdFrameHeader is what a frame header (RFC 8878 §3.1.1.1) tells the
// decoder.
type zstdFrameHeader struct {
	size       int // header bytes, magic included
	windowSize uint64
	contentLen int64 // -1 when the frame does not say
	checksum   bool
}

// parseZstdFrameHeader parses the header of the zstd frame starting at
// src[0], magic number included.
func parseZstdFrameHeader(src []byte) (zstdFrameHeader, error) {
	var h zstdFrameHeader
	if len(src) < 5 {
		return h, fmt.Errorf("frame header truncated at %d bytes: %w", len(src), ErrCorrupt)
	}
	if m := binary.LittleEndian.Uint32(src); m != zstdMagic {
		return h, fmt.Errorf("bad magic number %#08x: %w", m, ErrCorrupt)
	}
	fhd := src[4]
	if fhd&0x08 != 0 {
		return h, fmt.Errorf("reserved bit set in frame header descriptor %#02x: %w", fhd, ErrCorrupt)
	}
	singleSegment := fhd&0x20 != 0
	h.checksum = fhd&0x04 != 0
	dictLen := [4]int{0, 1, 2, 4}[fhd&3]
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsLen == 0 && singleSegment {
		fcsLen = 1
	}
	pos := 5
	windowLen := 1
	if singleSegment {
		windowLen = 0
	}
	h.size = pos + windowLen + dictLen + fcsLen
	if len(src) < h.size {
		return h, fmt.Errorf("frame header truncated: %d of %d bytes: %w", len(src), h.size, ErrCorrupt)
	}
	if !singleSegment {
		wd := src[pos]
		pos++
		windowLog := 10 + uint(wd>>3)
		base := uint64(1) << windowLog
		h.windowSize = base + base/8*uint64(wd&7)
	}
	var dictID uint32
	switch dictLen {
	case 1:
		dictID = uint32(src[pos])
	case 2:
		dictID = uint32(binary.LittleEndian.Uint16(src[pos:]))
	case 4:
		dictID = binary.LittleEndian.Uint32(src[pos:])
	}
	pos += dictLen
	if dictID != 0 {
		return h, fmt.Errorf("frame needs dictionary %d: dictionaries not supported: %w", dictID, ErrCorrupt)
	}
	h.contentLen = -1
	switch fcsLen {
	case 1:
		h.contentLen = int64(src[pos])
	case 2:
		h.contentLen = int64(binary.LittleEndian.Uint16(src[pos:])) + 256
	case 4:
		h.contentLen = int64(binary.LittleEndian.Uint32(src[pos:]))
	case 8:
		v := binary.LittleEndian.Uint64(src[pos:])
		if v > uint64(maxInt) {
			return h, fmt.Errorf("frame claims %d decoded bytes: %w", v, ErrCorrupt)
		}
		h.contentLen = int64(v)
	}
	if singleSegment {
		h.windowSize = uint64(h.contentLen)
	}
	return h, nil
}

// zstdDecoder holds the tables and buffers of one decode; Zstd pools them.
type zstdDecoder struct {
	huff      huffTable
	huffValid bool
	hs        huffScratch

	// seq holds the literal length, offset and match length tables (the
	// order of seqKinds) the current frame last used, side by side so that
	// sequence decoding reaches all three from one pointer. seqValid says which the repeat mode may reuse in this
	// frame; seqPredef which hold a copy of seqPre, the predefined ones.
	seq       [3]seqTable
	seqValid  [3]bool
	seqPredef [3]bool
	seqPre    [3]seqTable
	fseTmp    [seqTableMax]fseEntry
	norm      [fseMaxSymbols]int16

	rep     [3]int
	seqRead seqReader
	batch   [seqBatch]zstdSeq
	lits    [zstdBlockMax + zstdLitSlack]byte
}

func newZstdDecoder() *zstdDecoder {
	d := &zstdDecoder{}
	for k, kind := range seqKinds {
		d.seqPre[k].buildPredefined(kind, &d.fseTmp)
	}
	return d
}

// exceeded is the error for output that does not fit the caller's buffer
// of n bytes.
func exceeded(n int) error {
	return fmt.Errorf("%w of %d bytes: %w", errExceeded, n, ErrCorrupt)
}

// decodeAll decodes every frame in src into out[op:], out's length being
// all the room there is, and returns the end of the decoded data. Bytes of
// out past that end may have been overwritten.
func (d *zstdDecoder) decodeAll(out []byte, op int, src []byte) (int, error) {
	if len(src) == 0 {
		return 0, fmt.Errorf("no frame: %w", ErrCorrupt)
	}
	for nframe := 0; len(src) > 0; nframe++ {
		if len(src) < 4 {
			return 0, fmt.Errorf("frame %d: %d trailing bytes: %w", nframe, len(src), ErrCorrupt)
		}
		magic := binary.LittleEndian.Uint32(src)
		if magic&zstdSkippableMask == zstdSkippableBase {
			if len(src) < 8 {
				return 0, fmt.Errorf("frame %d: skippable frame header truncated: %w", nframe, ErrCorrupt)
			}
			n := uint64(binary.LittleEndian.Uint32(src[4:]))
			if n > uint64(len(src)-8) {
				return 0, fmt.Errorf("frame %d: skippable frame of %d bytes, %d left: %w", nframe, n, len(src)-8, ErrCorrupt)
			}
			src = src[8+n:]
			continue
		}
		var err error
		if op, src, err = d.frame(out, op, src); err != nil {
			return 0, fmt.Errorf("frame %d: %w", nframe, err)
		}
	}
	return op, nil
}

// frame decodes the frame at the start of src into out[op:] and returns
// the new end of output and the input that follows the frame.
func (d *zstdDecoder) frame(out []byte, op int, src []byte) (int, []byte, error) {
	h, err := parseZstdFrameHeader(src)
	if err != nil {
		return 0, nil, err
	}
	src = src[h.size:]
	start := op
	if h.contentLen > int64(len(out)-op) {
		return 0, nil, exceeded(len(out) - start)
	}
	blockMax := int(min(h.windowSize, zstdBlockMax))
	d.rep = [3]int{1, 4, 8}
	d.huffValid = false
	d.seqValid = [3]bool{}
	for nblock := 0; ; nblock++ {
		if len(src) < 3 {
			return 0, nil, fmt.Errorf("block %d: header truncated: %w", nblock, ErrCorrupt)
		}
		bh := int(src[0]) | int(src[1])<<8 | int(src[2])<<16
		src = src[3:]
		last := bh&1 != 0
		size := bh >> 3
		if size > blockMax {
			return 0, nil, fmt.Errorf("block %d: size %d exceeds the block maximum %d: %w", nblock, size, blockMax, ErrCorrupt)
		}
		switch bh >> 1 & 3 {
		case 0: // raw
			if size > len(src) {
				return 0, nil, fmt.Errorf("block %d: raw block of %d bytes, %d left: %w", nblock, size, len(src), ErrCorrupt)
			}
			if size > len(out)-op {
				return 0, nil, exceeded(len(out) - start)
			}
			op += copy(out[op:op+size], src)
			src = src[size:]
		case 1: // RLE
			if len(src) < 1 {
				return 0, nil, fmt.Errorf("block %d: RLE byte missing: %w", nblock, ErrCorrupt)
			}
			if size > len(out)-op {
				return 0, nil, exceeded(len(out) - start)
			}
			fill(out[op:op+size], src[0])
			op += size
			src = src[1:]
		case 2:
			if size > len(src) {
				return 0, nil, fmt.Errorf("block %d: compressed block of %d bytes, %d left: %w", nblock, size, len(src), ErrCorrupt)
			}
			if op, err = d.block(out, op, start, src[:size], blockMax); err != nil {
				if errors.Is(err, errExceeded) {
					return 0, nil, exceeded(len(out) - start)
				}
				return 0, nil, fmt.Errorf("block %d: %w", nblock, err)
			}
			src = src[size:]
		default:
			return 0, nil, fmt.Errorf("block %d: reserved block type: %w", nblock, ErrCorrupt)
		}
		if last {
			break
		}
	}
	if h.contentLen >= 0 && int64(op-start) != h.contentLen {
		return 0, nil, fmt.Errorf("decoded %d bytes, frame header says %d: %w", op-start, h.contentLen, ErrCorrupt)
	}
	if h.checksum {
		if len(src) < 4 {
			return 0, nil, fmt.Errorf("content checksum truncated: %w", ErrCorrupt)
		}
		want := binary.LittleEndian.Uint32(src)
		if got := uint32(xxhash64(out[start:op])); got != want {
			return 0, nil, fmt.Errorf("content checksum %#08x, frame says %#08x: %w", got, want, ErrCorrupt)
		}
		src = src[4:]
	}
	return op, src, nil
}

// fill sets every byte of b to c.
func fill(b []byte, c byte) {
	if len(b) == 0 {
		return
	}
	b[0] = c
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// block decodes one compressed block (RFC 8878 §3.1.1.3) into out[op:],
// matches reaching back no further than out[start].
func (d *zstdDecoder) block(out []byte, op, start int, src []byte, blockMax int) (int, error) {
	nlit, used, err := d.literals(src, blockMax)
	if err != nil {
		return 0, fmt.Errorf("literals: %w", err)
	}
	src = src[used:]
	nseq, used, err := parseSeqCount(src)
	if err != nil {
		return 0, err
	}
	src = src[used:]
	limit := min(len(out), op+blockMax)
	if nseq == 0 {
		if len(src) != 0 {
			return 0, fmt.Errorf("%d bytes after an empty sequences section: %w", len(src), ErrCorrupt)
		}
		if nlit > limit-op {
			return 0, overLimit(out, limit)
		}
		return op + copy(out[op:op+nlit], d.lits[:nlit]), nil
	}
	if len(src) < 1 {
		return 0, fmt.Errorf("sequence compression modes missing: %w", ErrCorrupt)
	}
	modes := src[0]
	src = src[1:]
	if modes&3 != 0 {
		return 0, fmt.Errorf("reserved bits set in sequence compression modes %#02x: %w", modes, ErrCorrupt)
	}
	for k, mode := range [3]byte{modes >> 6, modes >> 4 & 3, modes >> 2 & 3} {
		n, err := d.seqTable(k, mode, src)
		if err != nil {
			return 0, err
		}
		src = src[n:]
	}
	return d.sequences(out, op, start, limit, nlit, nseq, src)
}

// overLimit is the error for output past limit, the end of the block or
// of out.
func overLimit(out []byte, limit int) error {
	if limit == len(out) {
		return exceeded(len(out))
	}
	return fmt.Errorf("block decodes to more than its maximum size: %w", ErrCorrupt)
}

// seqTable readies d.seq[k] as mode selects, building it from src when
// the mode says so, and returns the bytes of src used.
func (d *zstdDecoder) seqTable(k int, mode byte, src []byte) (int, error) {
	kind, t := seqKinds[k], &d.seq[k]
	switch mode {
	case 0:
		if !d.seqPredef[k] {
			*t = d.seqPre[k]
			d.seqPredef[k] = true
		}
		d.seqValid[k] = true
		return 0, nil
	case 1:
		d.seqValid[k], d.seqPredef[k] = false, false
		if len(src) < 1 {
			return 0, fmt.Errorf("%s: RLE symbol missing: %w", kind.name, ErrCorrupt)
		}
		if err := t.buildRLE(kind, src[0]); err != nil {
			return 0, err
		}
		d.seqValid[k] = true
		return 1, nil
	case 2:
		d.seqValid[k], d.seqPredef[k] = false, false
		log, nsym, used, err := readNCount(&d.norm, src, kind.maxSymbol, kind.maxLog)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", kind.name, err)
		}
		if err := t.build(kind, &d.norm, nsym, log, &d.fseTmp); err != nil {
			return 0, err
		}
		d.seqValid[k] = true
		return used, nil
	}
	if !d.seqValid[k] {
		return 0, fmt.Errorf("%s: repeat mode without a previous table: %w", kind.name, ErrCorrupt)
	}
	return 0, nil
}

// zstdLiterals describes a literals section header (RFC 8878 §3.1.1.3.1.1).
type zstdLiterals struct {
	typ    byte // 0 raw, 1 RLE, 2 compressed, 3 treeless
	format byte // size format; for types 2 and 3, 0 means one stream
	n      int  // regenerated size
	hdr    int  // header bytes
	size   int  // bytes after the header: the payload of types 0, 2, 3; 1 for RLE
}

func parseLiteralsHeader(src []byte, blockMax int) (zstdLiterals, error) {
	var h zstdLiterals
	if len(src) == 0 {
		return h, fmt.Errorf("section missing: %w", ErrCorrupt)
	}
	h.typ = src[0] & 3
	h.format = src[0] >> 2 & 3
	if h.typ < 2 {
		switch h.format {
		case 0, 2:
			h.n, h.hdr = int(src[0]>>3), 1
		case 1:
			if len(src) < 2 {
				return h, fmt.Errorf("header truncated: %w", ErrCorrupt)
			}
			h.n, h.hdr = int(src[0]>>4)|int(src[1])<<4, 2
		default:
			if len(src) < 3 {
				return h, fmt.Errorf("header truncated: %w", ErrCorrupt)
			}
			h.n, h.hdr = int(src[0]>>4)|int(src[1])<<4|int(src[2])<<12, 3
		}
		h.size = h.n
		if h.typ == 1 {
			h.size = 1
		}
	} else {
		switch h.format {
		case 0, 1:
			if len(src) < 3 {
				return h, fmt.Errorf("header truncated: %w", ErrCorrupt)
			}
			v := int(src[0]) | int(src[1])<<8 | int(src[2])<<16
			h.n, h.size, h.hdr = v>>4&0x3FF, v>>14&0x3FF, 3
		case 2:
			if len(src) < 4 {
				return h, fmt.Errorf("header truncated: %w", ErrCorrupt)
			}
			v := int(binary.LittleEndian.Uint32(src))
			h.n, h.size, h.hdr = v>>4&0x3FFF, v>>18&0x3FFF, 4
		default:
			if len(src) < 5 {
				return h, fmt.Errorf("header truncated: %w", ErrCorrupt)
			}
			v := int(binary.LittleEndian.Uint32(src)) | int(src[4])<<32
			h.n, h.size, h.hdr = v>>4&0x3FFFF, v>>22&0x3FFFF, 5
		}
	}
	if h.n > blockMax {
		return h, fmt.Errorf("%d literals exceed the block maximum %d: %w", h.n, blockMax, ErrCorrupt)
	}
	if h.size > len(src)-h.hdr {
		return h, fmt.Errorf("%d literal section bytes, %d left: %w", h.size, len(src)-h.hdr, ErrCorrupt)
	}
	return h, nil
}

// parseSeqCount parses the sequence count that starts a sequences section
// and returns it with the bytes it used.
func parseSeqCount(src []byte) (int, int, error) {
	if len(src) < 1 {
		return 0, 0, fmt.Errorf("sequences section missing: %w", ErrCorrupt)
	}
	n := int(src[0])
	switch {
	case n < 128:
		return n, 1, nil
	case n < 255:
		if len(src) < 2 {
			return 0, 0, fmt.Errorf("sequence count truncated: %w", ErrCorrupt)
		}
		return (n-128)<<8 | int(src[1]), 2, nil
	}
	if len(src) < 3 {
		return 0, 0, fmt.Errorf("sequence count truncated: %w", ErrCorrupt)
	}
	return int(src[1]) | int(src[2])<<8 + 0x7F00, 3, nil
}

// literals decodes a block's literals section (RFC 8878 §3.1.1.3.1) into
// d.lits and returns their number and the bytes of src used.
func (d *zstdDecoder) literals(src []byte, blockMax int) (int, int, error) {
	lh, err := parseLiteralsHeader(src, blockMax)
	if err != nil {
		return 0, 0, err
	}
	n, hdr, csize, format := lh.n, lh.hdr, lh.size, lh.format
	switch lh.typ {
	case 0:
		copy(d.lits[:n], src[hdr:hdr+n])
		return n, hdr + n, nil
	case 1:
		fill(d.lits[:n], src[hdr])
		return n, hdr + 1, nil
	}
	in := src[hdr : hdr+csize]
	if lh.typ == 2 {
		d.huffValid = false
		used, err := d.huff.read(in, &d.hs)
		if err != nil {
			return 0, 0, err
		}
		d.huffValid = true
		in = in[used:]
	} else if !d.huffValid {
		return 0, 0, fmt.Errorf("treeless literals without a previous Huffman table: %w", ErrCorrupt)
	}
	if format == 0 {
		err = d.huff.decode1(d.lits[:n], in)
	} else {
		err = d.huff.decode4(d.lits[:n], in)
	}
	if err != nil {
		return 0, 0, err
	}
	return n, hdr + csize, nil
}
