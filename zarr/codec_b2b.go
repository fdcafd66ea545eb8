package zarr

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/lsio-loader/lsio-loader/codecs"
)

// bytesToBytesCodec is one bytes→bytes step of a chain: a compressor or a
// checksum.
type bytesToBytesCodec interface {
	describe() string
	// Decode decodes src into dst (reusing its storage when it fits):
	// size >= 0 is the exact decoded size, size < 0 bounds it by -size.
	Decode(dst, src []byte, size int) ([]byte, error)
}

// bytesDecoder is what a compressor from package codecs offers.
type bytesDecoder interface {
	Decode(dst, src []byte, size int) ([]byte, error)
}

// rangeDecoder is a capability a bytes→bytes codec may offer: decoding only
// the blocks of src that overlap the decoded byte runs [lo, hi) (sorted,
// disjoint), into dst at their natural offsets (blosc), returning how many
// bytes it decoded.
type rangeDecoder interface {
	DecodeRuns(dst, src []byte, runs [][2]int64) (int, error)
}

// inPlaceDecoder is a capability of codecs whose decoded bytes are a
// prefix of the encoded ones (checksums): no buffer is needed.
type inPlaceDecoder interface {
	decodeInPlace(b []byte) ([]byte, error)
}

// compressorCodec is a compressor of package codecs with its description.
type compressorCodec struct {
	bytesDecoder
	desc string
}

func (c compressorCodec) describe() string { return c.desc }

// compressor returns the constructor of a compressor of package codecs;
// keys are the configuration entries its description shows.
func compressor(name string, dec func() bytesDecoder, keys ...string) func(map[string]any, int) (bytesToBytesCodec, error) {
	return func(conf map[string]any, _ int) (bytesToBytesCodec, error) {
		return compressorCodec{bytesDecoder: dec(), desc: describeConf(name, conf, keys...)}, nil
	}
}

// bloscCodec decodes blosc chunks whole or by blocks.
type bloscCodec struct {
	*codecs.Blosc
	desc string
}

func newBloscCodec(conf map[string]any, _ int) (bytesToBytesCodec, error) {
	desc := describeConf("blosc", conf, "cname", "clevel", "shuffle", "typesize", "blocksize")
	return bloscCodec{Blosc: codecs.NewBlosc(), desc: desc}, nil
}

func (b bloscCodec) describe() string { return b.desc }

// DecodeRuns checks that the chunk decodes to exactly len(dst) bytes, then
// decodes each stretch of consecutive blocks that the runs touch.
func (b bloscCodec) DecodeRuns(dst, src []byte, runs [][2]int64) (int, error) {
	nbytes, _, blocksize, err := codecs.BloscInfo(src)
	if err != nil {
		return 0, err
	}
	if nbytes != len(dst) {
		return 0, fmt.Errorf("blosc header claims %d decoded bytes, want %d", nbytes, len(dst))
	}
	bs := int64(max(blocksize, 1))
	decoded := 0
	for i := 0; i < len(runs); {
		if runs[i][0] < 0 || runs[i][1] > int64(nbytes) || runs[i][0] >= runs[i][1] {
			return decoded, fmt.Errorf("blosc: run [%d, %d) outside the %d decoded bytes", runs[i][0], runs[i][1], nbytes)
		}
		first, end := runs[i][0]/bs, (runs[i][1]-1)/bs+1
		// Runs whose blocks meet or overlap decode as one stretch.
		for i++; i < len(runs) && runs[i][0]/bs <= end; i++ {
			end = max(end, (runs[i][1]-1)/bs+1)
		}
		lo, hi := first*bs, min(end*bs, int64(nbytes))
		n, err := b.Blosc.DecodeRange(dst, src, int(lo), int(hi-lo))
		decoded += n
		if err != nil {
			return decoded, err
		}
	}
	return decoded, nil
}

// crc32cCodec is the v3 crc32c checksum: a little-endian CRC-32C trailer.
type crc32cCodec struct{}

func newCRC32CCodec(map[string]any, int) (bytesToBytesCodec, error) { return crc32cCodec{}, nil }

func (crc32cCodec) describe() string { return "crc32c" }

// Decode verifies and strips the trailer into dst, for callers that do
// not use decodeInPlace.
func (c crc32cCodec) Decode(dst, src []byte, size int) ([]byte, error) {
	b, err := c.decodeInPlace(src)
	if err != nil {
		return nil, err
	}
	if (size >= 0 && len(b) != size) || (size < 0 && len(b) > -size) {
		return nil, fmt.Errorf("crc32c: %d bytes, want %d", len(b), size)
	}
	return append(dst[:0], b...), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (crc32cCodec) decodeInPlace(b []byte) ([]byte, error) { return checkCRC32C(b) }

// checkCRC32C verifies and strips the little-endian CRC-32C trailer.
func checkCRC32C(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("crc32c: %d bytes, too short for a checksum", len(b))
	}
	n := len(b) - 4
	want := binary.LittleEndian.Uint32(b[n:])
	if got := crc32.Checksum(b[:n], castagnoli); got != want {
		return nil, fmt.Errorf("crc32c: checksum mismatch: stored %08x, computed %08x", want, got)
	}
	return b[:n], nil
}

// shuffleBytes is numcodecs Shuffle in the bytes→bytes position, as
// zarr-python 3 places it in v3 arrays.
type shuffleBytes struct {
	elem int
	desc string
}

func newShuffleBytes(conf map[string]any, _ int) (bytesToBytesCodec, error) {
	es, err := shuffleElementSize(conf)
	if err != nil {
		return nil, err
	}
	return shuffleBytes{elem: es, desc: describeConf("shuffle", conf, "elementsize")}, nil
}

func (s shuffleBytes) describe() string { return s.desc }

func (s shuffleBytes) Decode(dst, src []byte, size int) ([]byte, error) {
	if (size >= 0 && len(src) != size) || (size < 0 && len(src) > -size) {
		return nil, fmt.Errorf("shuffle: %d bytes, want %d", len(src), size)
	}
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	if err := (shuffleFilter{size: len(src), elem: s.elem}).decode(dst, src, 1); err != nil {
		return nil, err
	}
	return dst, nil
}
