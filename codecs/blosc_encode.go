package codecs

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zlib"
	"github.com/pierrec/lz4/v4"
)

// Shuffle selects blosc's pre-compression filter.
type Shuffle int

// The shuffle filters, numbered as numcodecs numbers them.
const (
	NoShuffle   Shuffle = 0
	ByteShuffle Shuffle = 1
	BitShuffle  Shuffle = 2
)

// BloscOptions configures Blosc.Encode.
type BloscOptions struct {
	// Compressor is the internal codec: "lz4", "lz4hc", "zstd", "zlib" or
	// "snappy" ("blosclz" is decoded but not encoded).
	Compressor string
	// Level is 0-9; 0 stores the data uncompressed.
	Level    int
	Shuffle  Shuffle
	TypeSize int
	// BlockSize is the decoded bytes per block; 0 picks one as c-blosc does.
	BlockSize int
}

// Encode compresses src into one blosc chunk, laid out as c-blosc 1.x lays
// it out (format version 2, split streams where c-blosc splits them).
func (b *Blosc) Encode(dst, src []byte, o BloscOptions) ([]byte, error) {
	format, hcr, err := bloscCompressor(o.Compressor)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Level < 0 || o.Level > 9:
		return nil, fmt.Errorf("blosc: level %d outside 0-9", o.Level)
	case o.TypeSize < 1 || o.TypeSize > bloscMaxTypesize:
		return nil, fmt.Errorf("blosc: typesize %d outside 1-%d", o.TypeSize, bloscMaxTypesize)
	case o.Shuffle < NoShuffle || o.Shuffle > BitShuffle:
		return nil, fmt.Errorf("blosc: unknown shuffle %d", o.Shuffle)
	case o.BlockSize < 0:
		return nil, fmt.Errorf("blosc: negative blocksize %d", o.BlockSize)
	case len(src) > bloscMaxBuffer:
		return nil, fmt.Errorf("blosc: %d bytes exceeds blosc's %d-byte limit", len(src), bloscMaxBuffer)
	}
	nbytes, typesize := len(src), o.TypeSize
	blocksize := bloscBlocksize(o, format, hcr, nbytes)
	split := bloscSplits(format, typesize, blocksize)

	flags := byte(format << 5)
	switch o.Shuffle {
	case ByteShuffle:
		flags |= bloscFlagShuffle
	case BitShuffle:
		flags |= bloscFlagBitShuf
	}
	if !split {
		flags |= bloscFlagNoSplit
	}
	header := func(out []byte, flags byte, cbytes int) {
		out[0] = 2
		out[1] = 1
		out[2] = flags
		out[3] = byte(typesize)
		binary.LittleEndian.PutUint32(out[4:], uint32(nbytes))
		binary.LittleEndian.PutUint32(out[8:], uint32(blocksize))
		binary.LittleEndian.PutUint32(out[12:], uint32(cbytes))
	}
	memcpyed := func() []byte {
		out := resize(dst, bloscHeaderSize+nbytes)
		header(out, flags|bloscFlagMemcpyed, len(out))
		copy(out[bloscHeaderSize:], src)
		return out
	}
	if o.Level == 0 || nbytes < bloscMinBuffer {
		return memcpyed(), nil
	}

	nblocks := (nbytes + blocksize - 1) / blocksize
	out := bytes.NewBuffer(dst[:0])
	out.Grow(bloscHeaderSize + 4*nblocks + nbytes/2)
	out.Write(make([]byte, bloscHeaderSize+4*nblocks))
	shuffled := make([]byte, min(blocksize, nbytes))
	for i := range nblocks {
		lo := i * blocksize
		hi := min(lo+blocksize, nbytes)
		binary.LittleEndian.PutUint32(out.Bytes()[bloscHeaderSize+4*i:], uint32(out.Len()))
		block := src[lo:hi]
		switch o.Shuffle {
		case ByteShuffle:
			if typesize > 1 {
				shuffle(shuffled[:len(block)], block, typesize)
				block = shuffled[:len(block)]
			}
		case BitShuffle:
			bitshuffle(shuffled[:len(block)], block, typesize)
			block = shuffled[:len(block)]
		}
		nsplits := 1
		if split && hi-lo == blocksize {
			nsplits = typesize
		}
		neblock := len(block) / nsplits
		for j := range nsplits {
			if err := b.encodeStream(out, format, o, block[j*neblock:(j+1)*neblock]); err != nil {
				return nil, fmt.Errorf("blosc: block %d stream %d: %w", i, j, err)
			}
		}
		if out.Len() > bloscHeaderSize+nbytes {
			// c-blosc gives up on compression the same way.
			return memcpyed(), nil
		}
	}
	res := out.Bytes()
	header(res, flags, len(res))
	return res, nil
}

// encodeStream appends one stream (length then data) to out, storing it
// raw when compression does not shrink it.
func (b *Blosc) encodeStream(out *bytes.Buffer, format int, o BloscOptions, in []byte) error {
	var lenBuf [4]byte
	var comp []byte
	switch format {
	case bloscFormatLZ4:
		buf := make([]byte, lz4.CompressBlockBound(len(in)))
		level := 0
		if o.Compressor == "lz4hc" {
			level = o.Level
		}
		n, err := lz4Compress(buf, in, level)
		if err != nil {
			return err
		}
		comp = buf[:n]
	case bloscFormatZstd:
		// c-blosc maps levels 1-9 onto zstd's scale by 2*level-1.
		var err error
		if comp, err = b.zstd.Encode(nil, in, 2*o.Level-1); err != nil {
			return err
		}
	case bloscFormatZlib:
		var buf bytes.Buffer
		w, err := zlib.NewWriterLevel(&buf, o.Level)
		if err != nil {
			return err
		}
		if _, err := w.Write(in); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		comp = buf.Bytes()
	case bloscFormatSnappy:
		comp = snappy.Encode(nil, in)
	}
	if len(comp) >= len(in) {
		comp = in
	}
	binary.LittleEndian.PutUint32(lenBuf[:], uint32(len(comp)))
	out.Write(lenBuf[:])
	out.Write(comp)
	return nil
}

// bloscCompressor maps a compressor name to its format code and whether
// c-blosc treats it as a high-compression-ratio codec (larger blocks).
func bloscCompressor(name string) (format int, hcr bool, err error) {
	switch name {
	case "lz4":
		return bloscFormatLZ4, false, nil
	case "lz4hc":
		return bloscFormatLZ4, true, nil
	case "zstd":
		return bloscFormatZstd, true, nil
	case "zlib":
		return bloscFormatZlib, true, nil
	case "snappy":
		return bloscFormatSnappy, false, nil
	case "blosclz":
		return 0, false, fmt.Errorf("blosc: the blosclz compressor can be decoded but not encoded")
	}
	return 0, false, fmt.Errorf("blosc: unknown compressor %q", name)
}

// bloscSplits is c-blosc's automatic split rule, the one numcodecs uses:
// only the fast LZ77 codecs get one stream per byte of the type, and only
// when types are small and blocks hold enough of them.
func bloscSplits(format, typesize, blocksize int) bool {
	return (format == bloscFormatBlosclz || format == bloscFormatSnappy) &&
		typesize <= bloscMaxSplits && blocksize/typesize >= bloscMinBuffer
}

// bloscBlocksize follows c-blosc 1.21's compute_blocksize.
func bloscBlocksize(o BloscOptions, format int, hcr bool, nbytes int) int {
	typesize := o.TypeSize
	if nbytes < typesize {
		return 1
	}
	const l1 = 32 << 10
	blocksize := nbytes
	switch {
	case o.BlockSize > 0:
		blocksize = max(o.BlockSize, bloscMinBuffer)
	case nbytes >= l1:
		blocksize = l1
		if hcr {
			blocksize *= 2
		}
		switch o.Level {
		case 0:
			blocksize /= 4
		case 1:
			blocksize /= 2
		case 2:
		case 3:
			blocksize *= 2
		case 4, 5:
			blocksize *= 4
		case 6, 7, 8:
			blocksize *= 8
		case 9:
			blocksize *= 8
			if hcr {
				blocksize *= 2
			}
		}
	}
	if o.BlockSize == 0 && o.Level > 0 && bloscSplits(format, typesize, blocksize) {
		// Splitting codecs get a per-stream size near 256 KiB at most and
		// blocks between 64 KiB and 1 MiB.
		blocksize = min(blocksize, 1<<18) * typesize
		blocksize = min(max(blocksize, 1<<16), 1<<20)
	}
	blocksize = min(blocksize, nbytes)
	if blocksize > typesize {
		blocksize = blocksize / typesize * typesize
	}
	return blocksize
}
