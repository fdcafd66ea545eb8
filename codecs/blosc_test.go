package codecs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestBloscDecodeRangeDecodesOnlyOverlappingBlocks(t *testing.T) {
	b := NewBlosc()
	src := weatherField(1<<20, 5)
	const blocksize = 16 << 10
	enc, err := b.Encode(nil, src, BloscOptions{Compressor: "lz4", Level: 5, Shuffle: ByteShuffle, TypeSize: 4, BlockSize: blocksize})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		off, n      int
		wantDecoded int
	}{
		{"inside one block", 3*blocksize + 100, 200, blocksize},
		{"across a block boundary", 5*blocksize - 10, 20, 2 * blocksize},
		{"whole chunk", 0, len(src), len(src)},
		{"last byte", len(src) - 1, 1, blocksize},
		{"empty", 1234, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, len(src))
			decoded, err := b.DecodeRange(dst, enc, tc.off, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if decoded != tc.wantDecoded {
				t.Errorf("decoded %d bytes, want %d", decoded, tc.wantDecoded)
			}
			if !bytes.Equal(dst[tc.off:tc.off+tc.n], src[tc.off:tc.off+tc.n]) {
				t.Error("requested range differs from the source")
			}
		})
	}
}

func TestBloscDecodeRangeArguments(t *testing.T) {
	b := NewBlosc()
	src := weatherField(1000, 1)
	enc, err := b.Encode(nil, src, BloscOptions{Compressor: "lz4", Level: 5, TypeSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		dstLen, o, n int
	}{
		{"negative offset", 1000, -1, 10},
		{"negative length", 1000, 0, -1},
		{"past the end", 1000, 990, 11},
		{"short destination", 999, 0, 10},
	} {
		if _, err := b.DecodeRange(make([]byte, tc.dstLen), enc, tc.o, tc.n); err == nil {
			t.Errorf("%s: DecodeRange succeeded", tc.name)
		}
	}
}

// TestBloscRejectsCorruptChunks damages a valid chunk in the ways a
// truncated or hostile object would be, and expects ErrCorrupt each time.
func TestBloscRejectsCorruptChunks(t *testing.T) {
	b := NewBlosc()
	src := weatherField(50000, 2)
	valid, err := b.Encode(nil, src, BloscOptions{Compressor: "zstd", Level: 5, Shuffle: ByteShuffle, TypeSize: 4, BlockSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(c []byte) []byte { binary.LittleEndian.PutUint32(c[off:], v); return c }
	}
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		size   int
	}{
		{"shorter than the header", func(c []byte) []byte { return c[:15] }, len(src)},
		{"truncated body", func(c []byte) []byte { return c[:len(c)-10] }, len(src)},
		{"blosc2 version", func(c []byte) []byte { c[0] = 3; return c }, len(src)},
		{"typesize zero", func(c []byte) []byte { c[3] = 0; return c }, len(src)},
		{"nbytes differs from the expected size", func(c []byte) []byte { return c }, len(src) + 4},
		{"nbytes over the limit", func(c []byte) []byte { return c }, -(len(src) - 1)},
		{"huge nbytes", put32(4, 1<<31-1), len(src)},
		{"zero blocksize", put32(8, 0), len(src)},
		{"tiny blocksize", put32(8, 1), len(src)},
		{"cbytes beyond the buffer", put32(12, 1<<30), len(src)},
		{"block start inside the header", put32(16, 4), len(src)},
		{"block start beyond the end", put32(20, 1<<30), len(src)},
		{"negative stream length", func(c []byte) []byte {
			start := binary.LittleEndian.Uint32(c[16:])
			binary.LittleEndian.PutUint32(c[start:], 0xFFFFFFF0)
			return c
		}, len(src)},
		{"unknown internal codec", func(c []byte) []byte { c[2] = c[2]&0x1F | 6<<5; return c }, len(src)},
		{"garbage stream", func(c []byte) []byte {
			start := binary.LittleEndian.Uint32(c[16:])
			for i := start + 4; i < start+40; i++ {
				c[i] ^= 0x5A
			}
			return c
		}, len(src)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunk := tc.damage(bytes.Clone(valid))
			if _, err := b.Decode(nil, chunk, tc.size); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode: got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestBloscEncodeRejectsBadOptions(t *testing.T) {
	b := NewBlosc()
	for _, o := range []BloscOptions{
		{Compressor: "lzma", Level: 5, TypeSize: 4},
		{Compressor: "blosclz", Level: 5, TypeSize: 4},
		{Compressor: "lz4", Level: 10, TypeSize: 4},
		{Compressor: "lz4", Level: 5, TypeSize: 0},
		{Compressor: "lz4", Level: 5, TypeSize: 256},
		{Compressor: "lz4", Level: 5, TypeSize: 4, Shuffle: 3},
		{Compressor: "lz4", Level: 5, TypeSize: 4, BlockSize: -1},
	} {
		if _, err := b.Encode(nil, make([]byte, 1000), o); err == nil {
			t.Errorf("Encode(%+v) succeeded", o)
		}
	}
}

func TestShuffleInverses(t *testing.T) {
	for _, ts := range []int{1, 2, 3, 4, 5, 8, 16} {
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 129, 1000, 4099} {
			src := weatherField(n, uint64(ts*n))
			shuf, back, tmp := make([]byte, n), make([]byte, n), make([]byte, n)
			shuffle(shuf, src, ts)
			unshuffle(back, shuf, ts)
			if !bytes.Equal(back, src) {
				t.Errorf("byte shuffle ts=%d n=%d does not invert", ts, n)
			}
			bitshuffle(shuf, src, ts)
			bitunshuffle(back, shuf, tmp, ts, 2)
			if !bytes.Equal(back, src) {
				t.Errorf("bit shuffle ts=%d n=%d does not invert", ts, n)
			}
			if got, want := unshuffle2Generic(back, shuf, n/2), n/2&^7; ts == 2 && got != want {
				t.Errorf("unshuffle2Generic handled %d elements, want %d", got, want)
			}
		}
	}
}

func TestGenericUnshuffleKernels(t *testing.T) {
	// The amd64 build uses SSE2 kernels; the portable ones must agree.
	for _, tc := range []struct {
		ts     int
		kernel func(dst, src []byte, n int) int
	}{{2, unshuffle2Generic}, {4, unshuffle4Generic}, {8, unshuffle8Generic}} {
		for _, n := range []int{0, 3, 8, 16, 37, 1000} {
			src := weatherField(n*tc.ts, uint64(n))
			want, got := make([]byte, len(src)), make([]byte, len(src))
			unshuffle(want, src, tc.ts)
			done := tc.kernel(got, src, n)
			unshuffleTail(got, src, tc.ts, n, done)
			if !bytes.Equal(got, want) {
				t.Errorf("typesize %d, %d elements: portable kernel differs", tc.ts, n)
			}
		}
	}
}

func TestBlosclzRejectsBadStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  []byte
		out  int
	}{
		{"empty", nil, 4},
		{"literal past the input", []byte{5, 'a'}, 6},
		{"literal past the output", []byte{3, 'a', 'b', 'c', 'd'}, 2},
		{"match before the start", []byte{0, 'a', 0x20, 5}, 4},
		{"match length truncated", []byte{0, 'a', 0xE0}, 20},
		{"far distance truncated", []byte{0, 'a', 0x3F, 255, 1}, 20},
		{"short output", []byte{1, 'a', 'b'}, 3},
	} {
		if err := blosclzDecode(make([]byte, tc.out), tc.src); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", tc.name, err)
		}
	}
	// A literal then a run: "ab" then 5 bytes at distance 2 gives "abababa".
	out := make([]byte, 7)
	if err := blosclzDecode(out, []byte{1, 'a', 'b', 0x60, 1}); err != nil || string(out) != "abababa" {
		t.Errorf("overlapping match: %q, %v", out, err)
	}
}

func TestCRC32C(t *testing.T) {
	// Check values from RFC 3720, appendix B.4.
	for _, tc := range []struct {
		in   []byte
		want uint32
	}{
		{make([]byte, 32), 0x8A9136AA},
		{bytes.Repeat([]byte{0xFF}, 32), 0x62A8AB43},
		{[]byte("123456789"), 0xE3069283},
	} {
		if got := CRC32C(tc.in); got != tc.want {
			t.Errorf("CRC32C(%x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
