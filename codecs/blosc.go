package codecs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zlib"
)

// Blosc reads and writes the c-blosc 1.x chunk format that numcodecs and
// Zarr v3's blosc codec store. Create it with NewBlosc.
//
// A chunk is a 16-byte header (format version, codec version, flags,
// typesize, then little-endian int32 nbytes, blocksize and cbytes), then,
// unless the chunk is a plain copy, one int32 start offset per block, then
// the blocks. The flags hold byte shuffle (0x01), plain copy (0x02), bit
// shuffle (0x04), "blocks not split" (0x10) and the internal codec in the
// top 3 bits. A block is split into typesize streams (one per shuffled
// byte position) unless the flag says otherwise or it is the short last
// block; each stream is an int32 compressed length then that many bytes,
// and a length equal to the stream's decoded size means stored raw.
type Blosc struct {
	zstd *Zstd
	// scratch holds *[]byte shuffle buffers, reused across calls so that a
	// steady stream of decodes does not allocate.
	scratch sync.Pool
	zlibs   sync.Pool
}

// NewBlosc returns a Blosc codec.
func NewBlosc() *Blosc {
	return &Blosc{zstd: NewZstd()}
}

// Blosc header layout and limits, from c-blosc's blosc.h.
const (
	bloscHeaderSize   = 16
	bloscMaxTypesize  = 255
	bloscMaxBuffer    = 1<<31 - 1 - bloscHeaderSize
	bloscFlagShuffle  = 0x01
	bloscFlagMemcpyed = 0x02
	bloscFlagBitShuf  = 0x04
	bloscFlagNoSplit  = 0x10
	bloscMinBuffer    = 128 // MIN_BUFFERSIZE: smaller inputs are stored raw
	bloscMaxSplits    = 16
)

// Internal codec numbers (the top 3 bits of the flags).
const (
	bloscFormatBlosclz = 0
	bloscFormatLZ4     = 1
	bloscFormatSnappy  = 2
	bloscFormatZlib    = 3
	bloscFormatZstd    = 4
)

// bloscFormatName names an internal codec for error messages.
func bloscFormatName(format int) string {
	switch format {
	case bloscFormatBlosclz:
		return "blosclz"
	case bloscFormatLZ4:
		return "lz4"
	case bloscFormatSnappy:
		return "snappy"
	case bloscFormatZlib:
		return "zlib"
	case bloscFormatZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec %d", format)
}

// bloscHeader is a parsed and validated chunk header.
type bloscHeader struct {
	version   byte
	flags     byte
	typesize  int
	nbytes    int
	blocksize int
	cbytes    int
	nblocks   int
}

func (h *bloscHeader) memcpyed() bool { return h.flags&bloscFlagMemcpyed != 0 }
func (h *bloscHeader) format() int    { return int(h.flags >> 5) }

// parseBloscHeader validates everything the header claims against src, so
// that no later offset arithmetic can leave it.
func parseBloscHeader(src []byte) (bloscHeader, error) {
	var h bloscHeader
	if len(src) < bloscHeaderSize {
		return h, fmt.Errorf("blosc: %d bytes is shorter than the 16-byte header: %w", len(src), ErrCorrupt)
	}
	h.version = src[0]
	h.flags = src[2]
	h.typesize = int(src[3])
	nbytes := binary.LittleEndian.Uint32(src[4:])
	blocksize := binary.LittleEndian.Uint32(src[8:])
	cbytes := binary.LittleEndian.Uint32(src[12:])
	switch {
	case h.version == 0 || h.version > 2:
		// Versions 3 and up are c-blosc2 chunks, which Zarr's blosc codec
		// never writes.
		return h, fmt.Errorf("blosc: format version %d is not c-blosc 1.x (1 or 2): %w", h.version, ErrCorrupt)
	case nbytes > bloscMaxBuffer:
		return h, fmt.Errorf("blosc: header claims %d decoded bytes, over blosc's limit: %w", nbytes, ErrCorrupt)
	case cbytes < bloscHeaderSize || int64(cbytes) > int64(len(src)):
		return h, fmt.Errorf("blosc: header claims %d compressed bytes, buffer holds %d: %w", cbytes, len(src), ErrCorrupt)
	}
	h.nbytes, h.blocksize, h.cbytes = int(nbytes), int(blocksize), int(cbytes)
	if h.nbytes == 0 {
		return h, nil
	}
	if h.typesize == 0 {
		return h, fmt.Errorf("blosc: typesize 0: %w", ErrCorrupt)
	}
	if h.memcpyed() {
		if h.cbytes < bloscHeaderSize+h.nbytes {
			return h, fmt.Errorf("blosc: plain-copy chunk of %d bytes holds %d compressed bytes: %w", h.nbytes, h.cbytes, ErrCorrupt)
		}
		return h, nil
	}
	if h.blocksize == 0 || h.blocksize > bloscMaxBuffer {
		return h, fmt.Errorf("blosc: invalid blocksize %d: %w", h.blocksize, ErrCorrupt)
	}
	if h.format() > bloscFormatZstd {
		return h, fmt.Errorf("blosc: unknown internal codec %d: %w", h.format(), ErrCorrupt)
	}
	h.nblocks = (h.nbytes + h.blocksize - 1) / h.blocksize
	if bloscHeaderSize+4*h.nblocks > h.cbytes {
		return h, fmt.Errorf("blosc: %d blocks do not fit their start table in %d bytes: %w", h.nblocks, h.cbytes, ErrCorrupt)
	}
	return h, nil
}

// BloscInfo returns the decoded size, typesize and blocksize a blosc
// chunk's header claims, after validating the header against src.
func BloscInfo(src []byte) (nbytes, typesize, blocksize int, err error) {
	h, err := parseBloscHeader(src)
	if err != nil {
		return 0, 0, 0, err
	}
	return h.nbytes, h.typesize, h.blocksize, nil
}

// Decode decompresses a whole blosc chunk.
func (b *Blosc) Decode(dst, src []byte, size int) ([]byte, error) {
	h, err := parseBloscHeader(src)
	if err != nil {
		return nil, err
	}
	if err := checkClaimed("blosc", h.nbytes, size); err != nil {
		return nil, err
	}
	out := resize(dst, h.nbytes)
	if h.nbytes == 0 {
		return out, nil
	}
	if h.memcpyed() {
		copy(out, src[bloscHeaderSize:])
		return out, nil
	}
	if _, err := b.decodeBlocks(&h, out, src[:h.cbytes], 0, h.nblocks); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeRange decompresses only the blocks of a blosc chunk that overlap
// decoded bytes [off, off+n), each into dst at its natural offset; len(dst)
// must be at least the chunk's decoded size. It returns how many decoded
// bytes it produced, which exceeds n by the unrequested parts of the
// blocks at either end.
func (b *Blosc) DecodeRange(dst, src []byte, off, n int) (int, error) {
	h, err := parseBloscHeader(src)
	if err != nil {
		return 0, err
	}
	if off < 0 || n < 0 || off > h.nbytes || n > h.nbytes-off {
		return 0, fmt.Errorf("blosc: range [%d, %d+%d) outside the %d decoded bytes", off, off, n, h.nbytes)
	}
	if len(dst) < h.nbytes {
		return 0, fmt.Errorf("blosc: destination of %d bytes is shorter than the %d decoded bytes", len(dst), h.nbytes)
	}
	if n == 0 {
		return 0, nil
	}
	if h.memcpyed() {
		return copy(dst[off:off+n], src[bloscHeaderSize+off:]), nil
	}
	first, last := off/h.blocksize, (off+n-1)/h.blocksize
	return b.decodeBlocks(&h, dst[:h.nbytes], src[:h.cbytes], first, last+1)
}

// decodeBlocks decodes blocks [first, end) into out, which holds the whole
// decoded chunk, and returns the number of bytes decoded.
func (b *Blosc) decodeBlocks(h *bloscHeader, out, src []byte, first, end int) (int, error) {
	shuffled := h.flags&bloscFlagShuffle != 0 && h.typesize > 1 || h.flags&bloscFlagBitShuf != 0
	var tmp []byte
	if shuffled {
		// Bit shuffle needs a second block-sized area for its two passes.
		p := b.getScratch(2*min(h.blocksize, h.nbytes) + decodeSlack)
		defer b.scratch.Put(p)
		tmp = *p
	}
	starts := src[bloscHeaderSize : bloscHeaderSize+4*h.nblocks]
	minStart := bloscHeaderSize + 4*h.nblocks
	decoded := 0
	// Blocks of fill values (NaN padding, masked areas, zeros) compress to
	// identical bytes. Decoding is deterministic, so a block whose streams
	// equal the previous block's gets a copy of its output: one memmove
	// instead of a decode, which for zstd's long overlapping matches costs
	// far more.
	var prev []byte
	prevLo := -1
	// Bytes past the last block of the range belong to the caller.
	rangeEnd := min(end*h.blocksize, h.nbytes)
	for i := first; i < end; i++ {
		start := int(binary.LittleEndian.Uint32(starts[4*i:]))
		if start < minStart || start >= len(src) {
			return decoded, fmt.Errorf("blosc: block %d starts at %d, outside [%d, %d): %w", i, start, minStart, len(src), ErrCorrupt)
		}
		lo := i * h.blocksize
		hi := min(lo+h.blocksize, h.nbytes)
		leftover := hi-lo < h.blocksize
		span, err := blockSpan(h, src, start, leftover)
		if err != nil {
			return decoded, fmt.Errorf("blosc: block %d: %w", i, err)
		}
		cur := src[start : start+span]
		if prevLo >= 0 && !leftover && bytes.Equal(cur, prev) {
			copy(out[lo:hi], out[prevLo:prevLo+h.blocksize])
		} else if err := b.decodeBlock(h, out[lo:hi:min(hi+decodeSlack, rangeEnd)], src, start, leftover, tmp); err != nil {
			return decoded, fmt.Errorf("blosc: block %d: %w", i, err)
		}
		if !leftover {
			prev, prevLo = cur, lo
		}
		decoded += hi - lo
	}
	return decoded, nil
}

// blockSpan returns how many compressed bytes the block starting at
// src[pos:] occupies, validating its stream lengths.
func blockSpan(h *bloscHeader, src []byte, pos int, leftover bool) (int, error) {
	nsplits := 1
	if h.flags&bloscFlagNoSplit == 0 && !leftover {
		nsplits = h.typesize
	}
	start := pos
	for j := range nsplits {
		if pos > len(src)-4 {
			return 0, fmt.Errorf("stream %d: length truncated: %w", j, ErrCorrupt)
		}
		csize := int(int32(binary.LittleEndian.Uint32(src[pos:])))
		pos += 4
		if csize <= 0 || csize > len(src)-pos {
			return 0, fmt.Errorf("stream %d: compressed length %d, %d bytes left: %w", j, csize, len(src)-pos, ErrCorrupt)
		}
		pos += csize
	}
	return pos - start, nil
}

// decodeSlack is how far past a stream's end its decoder may scribble; zstd
// takes its fast copy loops only with 32 bytes of room. Streams decode in
// ascending order, so the scribbles land where later streams will write.
const decodeSlack = 32

// decodeBlock decodes the block whose streams start at src[pos:] into out,
// whose capacity beyond its length is room the decoders may scribble on.
func (b *Blosc) decodeBlock(h *bloscHeader, out, src []byte, pos int, leftover bool, tmp []byte) error {
	byteShuffle := h.flags&bloscFlagShuffle != 0 && h.typesize > 1
	bitShuffle := !byteShuffle && h.flags&bloscFlagBitShuf != 0
	target := out
	if byteShuffle || bitShuffle {
		target = tmp[: len(out) : len(out)+decodeSlack]
	}
	nsplits := 1
	if h.flags&bloscFlagNoSplit == 0 && !leftover {
		nsplits = h.typesize
	}
	if len(out)%nsplits != 0 {
		return fmt.Errorf("%d bytes do not split into %d streams: %w", len(out), nsplits, ErrCorrupt)
	}
	neblock := len(out) / nsplits
	for j := range nsplits {
		if pos > len(src)-4 {
			return fmt.Errorf("stream %d: length truncated: %w", j, ErrCorrupt)
		}
		csize := int(int32(binary.LittleEndian.Uint32(src[pos:])))
		pos += 4
		if csize <= 0 || csize > len(src)-pos {
			return fmt.Errorf("stream %d: compressed length %d, %d bytes left: %w", j, csize, len(src)-pos, ErrCorrupt)
		}
		in := src[pos : pos+csize]
		pos += csize
		part := target[j*neblock : (j+1)*neblock : min((j+1)*neblock+decodeSlack, cap(target))]
		if csize == neblock {
			copy(part, in)
			continue
		}
		if err := b.decodeStream(h.format(), part, in); err != nil {
			return fmt.Errorf("stream %d (%s): %w", j, bloscFormatName(h.format()), err)
		}
	}
	switch {
	case byteShuffle:
		unshuffle(out, target, h.typesize)
	case bitShuffle:
		bitunshuffle(out, target, tmp[len(tmp)/2:], h.typesize, h.version)
	}
	return nil
}

// decodeStream decodes one compressed stream that must fill part exactly;
// part's spare capacity is scratch room.
func (b *Blosc) decodeStream(format int, part, in []byte) error {
	switch format {
	case bloscFormatLZ4:
		return lz4Block(part, in)
	case bloscFormatZstd:
		got, err := b.zstd.decodeInto(part[:0], in)
		if err != nil {
			return err
		}
		if len(got) != len(part) {
			return fmt.Errorf("decodes to %d bytes, want %d: %w", len(got), len(part), ErrCorrupt)
		}
		return nil
	case bloscFormatBlosclz:
		return blosclzDecode(part, in)
	case bloscFormatSnappy:
		n, err := snappy.DecodedLen(in)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if n != len(part) {
			return fmt.Errorf("claims %d decoded bytes, want %d: %w", n, len(part), ErrCorrupt)
		}
		if _, err := snappy.Decode(part, in); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil
	case bloscFormatZlib:
		return b.zlibStream(part, in)
	}
	return fmt.Errorf("unknown internal codec %d: %w", format, ErrCorrupt)
}

// zlibStream inflates one zlib stream into part, reusing inflaters.
func (b *Blosc) zlibStream(part, in []byte) error {
	br := bytes.NewReader(in)
	var r io.ReadCloser
	if v := b.zlibs.Get(); v != nil {
		r = v.(io.ReadCloser)
		if err := r.(zlib.Resetter).Reset(br, nil); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	} else {
		var err error
		if r, err = zlib.NewReader(br); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	defer b.zlibs.Put(r)
	_, err := readDecoded("zlib", r, part, len(part))
	return err
}

func (b *Blosc) getScratch(n int) *[]byte {
	if v := b.scratch.Get(); v != nil {
		p := v.(*[]byte)
		if cap(*p) >= n {
			*p = (*p)[:n]
			return p
		}
	}
	buf := make([]byte, n)
	return &buf
}
