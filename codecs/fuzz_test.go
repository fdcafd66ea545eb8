package codecs

import (
	"bytes"
	"testing"
)

// fuzzLimit bounds every fuzzed decode: a decoder must reject anything
// that would decode to more.
const fuzzLimit = 4 << 20

// addEncoded seeds f with Go-encoded frames of realistic data; the
// committed corpus under testdata/fuzz adds numcodecs' and real chunks.
func addEncoded(f *testing.F, enc func(src []byte) ([]byte, error)) {
	for _, n := range []int{0, 1, 333, 5000} {
		b, err := enc(weatherField(n, uint64(n)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzStream checks that a decoder fails cleanly or decodes consistently
// with and without the exact size.
func fuzzStream(f *testing.F, dec func(dst, src []byte, size int) ([]byte, error)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := dec(nil, data, -fuzzLimit)
		if err != nil {
			return
		}
		if len(out) > fuzzLimit {
			t.Fatalf("decoded %d bytes past the limit %d", len(out), fuzzLimit)
		}
		again, err := dec(make([]byte, 3, 7), data, len(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("exact-size decode disagrees with bounded decode: %v", err)
		}
		if _, err := dec(nil, data, len(out)+1); err == nil {
			t.Fatalf("decode with the wrong size %d succeeded", len(out)+1)
		}
	})
}

func FuzzZstdDecode(f *testing.F) {
	z := NewZstd()
	addEncoded(f, func(src []byte) ([]byte, error) { return z.Encode(nil, src, 3) })
	fuzzStream(f, z.Decode)
}

func FuzzGzipDecode(f *testing.F) {
	addEncoded(f, func(src []byte) ([]byte, error) { return NewGzip().Encode(nil, src, 5) })
	fuzzStream(f, NewGzip().Decode)
}

func FuzzZlibDecode(f *testing.F) {
	addEncoded(f, func(src []byte) ([]byte, error) { return NewZlib().Encode(nil, src, 5) })
	fuzzStream(f, NewZlib().Decode)
}

func FuzzBz2Decode(f *testing.F) {
	// Python's bz2.compress at level 9 of b"" and of b"hello".
	f.Add([]byte("BZh9\x17rE8P\x90\x00\x00\x00\x00"))
	f.Add([]byte("BZh91AY&SY\x191e=\x00\x00\x00\x81\x00\x02D\xa0\x00!\x9ah3M\x073\x8b\xb9\"\x9c(H\x0c\x98\xb2\x9e\x80"))
	fuzzStream(f, NewBz2().Decode)
}

func FuzzLZ4Decode(f *testing.F) {
	addEncoded(f, func(src []byte) ([]byte, error) { return LZ4{}.Encode(nil, src, 0) })
	fuzzStream(f, LZ4{}.Decode)
}

func addBlosc(f *testing.F, extra ...any) {
	b := NewBlosc()
	for _, comp := range []string{"lz4", "zstd", "zlib", "snappy"} {
		for _, sh := range []Shuffle{NoShuffle, ByteShuffle, BitShuffle} {
			src := weatherField(3001, 9)
			enc, err := b.Encode(nil, src, BloscOptions{Compressor: comp, Level: 5, Shuffle: sh, TypeSize: 4, BlockSize: 512})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(append([]any{enc}, extra...)...)
		}
	}
}

func FuzzBloscDecode(f *testing.F) {
	addBlosc(f)
	b := NewBlosc()
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := b.Decode(nil, data, -fuzzLimit)
		if err != nil {
			return
		}
		nbytes, _, _, err := BloscInfo(data)
		if err != nil || nbytes != len(out) {
			t.Fatalf("BloscInfo = %d, %v after decoding %d bytes", nbytes, err, len(out))
		}
		full := make([]byte, len(out))
		if _, err := b.DecodeRange(full, data, 0, len(out)); err != nil || !bytes.Equal(full, out) {
			t.Fatalf("DecodeRange of everything disagrees with Decode: %v", err)
		}
	})
}

func FuzzBloscDecodeRange(f *testing.F) {
	addBlosc(f, uint32(100), uint32(2000))
	b := NewBlosc()
	f.Fuzz(func(t *testing.T, data []byte, off, n uint32) {
		nbytes, _, _, err := BloscInfo(data)
		if err != nil || nbytes > fuzzLimit {
			return
		}
		dst := make([]byte, nbytes)
		decoded, err := b.DecodeRange(dst, data, int(off), int(n))
		if err != nil {
			return
		}
		if decoded < int(n) || decoded > nbytes {
			t.Fatalf("DecodeRange(%d, %d) reports %d decoded bytes of %d", off, n, decoded, nbytes)
		}
		if full, err := b.Decode(nil, data, nbytes); err == nil &&
			!bytes.Equal(full[off:off+n], dst[off:off+n]) {
			t.Fatalf("DecodeRange(%d, %d) disagrees with Decode", off, n)
		}
	})
}

// FuzzBloscRoundTrip encodes arbitrary data with arbitrary options and
// checks that whole and partial decodes give it back.
func FuzzBloscRoundTrip(f *testing.F) {
	f.Add(weatherField(3001, 1), uint8(0), uint8(5), uint8(1), uint8(4), uint16(512), uint16(10), uint16(700))
	f.Add(weatherField(777, 2), uint8(1), uint8(9), uint8(2), uint8(3), uint16(0), uint16(0), uint16(777))
	f.Add([]byte("a"), uint8(4), uint8(1), uint8(0), uint8(1), uint16(0), uint16(0), uint16(1))
	b := NewBlosc()
	compressors := []string{"lz4", "lz4hc", "zstd", "zlib", "snappy"}
	f.Fuzz(func(t *testing.T, data []byte, comp, level, shuffle, typesize uint8, blocksize, off, n uint16) {
		o := BloscOptions{
			Compressor: compressors[int(comp)%len(compressors)],
			Level:      int(level) % 10,
			Shuffle:    Shuffle(shuffle % 3),
			TypeSize:   int(typesize)%32 + 1,
			BlockSize:  int(blocksize),
		}
		enc, err := b.Encode(nil, data, o)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", o, err)
		}
		dec, err := b.Decode(nil, enc, len(data))
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("Decode after Encode(%+v): %v", o, err)
		}
		lo := min(int(off), len(data))
		hi := min(lo+int(n), len(data))
		dst := make([]byte, len(data))
		if _, err := b.DecodeRange(dst, enc, lo, hi-lo); err != nil || !bytes.Equal(dst[lo:hi], data[lo:hi]) {
			t.Fatalf("DecodeRange(%d, %d) after Encode(%+v): %v", lo, hi-lo, o, err)
		}
	})
}
