package codecs

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// LZ4 is numcodecs' LZ4 framing: the decoded size as a 4-byte little-endian
// integer, then one LZ4 block.
type LZ4 struct{}

// Decode decompresses a numcodecs LZ4 buffer.
func (LZ4) Decode(dst, src []byte, size int) ([]byte, error) {
	if len(src) < 4 {
		return nil, fmt.Errorf("lz4: %d bytes is shorter than the 4-byte size prefix: %w", len(src), ErrCorrupt)
	}
	claimed := int(int32(binary.LittleEndian.Uint32(src)))
	if err := checkClaimed("lz4", claimed, size); err != nil {
		return nil, err
	}
	out := resize(dst, claimed)
	if err := lz4Block(out, src[4:]); err != nil {
		return nil, fmt.Errorf("lz4: %w", err)
	}
	return out, nil
}

// lz4Block decodes one LZ4 block that must fill out exactly.
func lz4Block(out, src []byte) error {
	if len(out) == 0 {
		// The reference encoder writes a single zero token for empty input.
		if len(src) == 1 && src[0] == 0 {
			return nil
		}
		return fmt.Errorf("block of %d bytes for an empty output: %w", len(src), ErrCorrupt)
	}
	n, err := lz4.UncompressBlock(src, out)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if n != len(out) {
		return fmt.Errorf("block decodes to %d bytes, want %d: %w", n, len(out), ErrCorrupt)
	}
	return nil
}

// Encode compresses src into numcodecs' LZ4 framing. Level 0 or less uses
// the fast compressor; 1-12 use the high-compression one at that depth.
func (LZ4) Encode(dst, src []byte, level int) ([]byte, error) {
	if len(src) > maxLZ4Input {
		return nil, fmt.Errorf("lz4: %d bytes exceeds the format's %d-byte limit", len(src), maxLZ4Input)
	}
	out := resize(dst, 4+lz4.CompressBlockBound(len(src)))
	binary.LittleEndian.PutUint32(out, uint32(len(src)))
	n, err := lz4Compress(out[4:], src, level)
	if err != nil {
		return nil, fmt.Errorf("lz4: %w", err)
	}
	return out[:4+n], nil
}

// maxLZ4Input is LZ4_MAX_INPUT_SIZE.
const maxLZ4Input = 0x7E000000

// lz4Compress writes one LZ4 block of src into out, which must hold
// CompressBlockBound(len(src)) bytes, and returns its length.
func lz4Compress(out, src []byte, level int) (int, error) {
	var n int
	var err error
	if level <= 0 {
		var c lz4.Compressor
		n, err = c.CompressBlock(src, out)
	} else {
		c := lz4.CompressorHC{Level: lz4.CompressionLevel(1 << (8 + min(level, 9)))}
		n, err = c.CompressBlock(src, out)
	}
	if err != nil {
		return 0, fmt.Errorf("compressing %d bytes: %w", len(src), err)
	}
	if n == 0 {
		// The Go compressors give up on incompressible input; LZ4 blocks
		// can always hold it as one literal run.
		return lz4Literals(out, src), nil
	}
	return n, nil
}

// lz4Literals writes src as a single literal-only LZ4 sequence.
func lz4Literals(out, src []byte) int {
	n := len(src)
	pos := 1
	if n < 15 {
		out[0] = byte(n << 4)
	} else {
		out[0] = 0xF0
		rest := n - 15
		for rest >= 255 {
			out[pos] = 255
			pos++
			rest -= 255
		}
		out[pos] = byte(rest)
		pos++
	}
	pos += copy(out[pos:], src)
	return pos
}
