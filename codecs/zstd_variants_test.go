package codecs

import (
	"bytes"
	"testing"
)

// zstdVariant is one way to decode zstd frames, with decodeInto's
// contract, that benchmarks put in Zstd.override to compare.
type zstdVariant struct {
	name string
	fn   func(buf, src []byte) ([]byte, error)
}

// zstdVariants lists every zstd decoder this build can run: our Go decoder,
// klauspost's, the per-frame choice between them ("go", what the pure-Go
// build uses) and, with cgo, libzstd through each binding.
func zstdVariants(z *Zstd) []zstdVariant {
	return append([]zstdVariant{
		{"ours", z.decodeOurs},
		{"klauspost", z.decodeKlauspost},
		{"go", z.decodeGo},
	}, libzstdVariants(z)...)
}

// TestZstdVariantsAgree checks that every decoder the benchmarks compare
// decodes zstd frames and blosc's zstd streams to the original bytes, so
// that their speeds are of the same work.
func TestZstdVariantsAgree(t *testing.T) {
	z, bl := NewZstd(), NewBlosc()
	raw := weatherField(1<<20, 8)
	enc, err := z.Encode(nil, raw, 3)
	if err != nil {
		t.Fatal(err)
	}
	benc, err := bl.Encode(nil, raw, BloscOptions{Compressor: "zstd", Level: 5, Shuffle: ByteShuffle, TypeSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range zstdVariants(z) {
		z.override, bl.zstd.override = v.fn, v.fn
		for name, src := range map[string][]byte{"zstd": enc, "blosc-zstd": benc} {
			var got []byte
			if name == "zstd" {
				got, err = z.Decode(nil, src, len(raw))
			} else {
				got, err = bl.Decode(nil, src, len(raw))
			}
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("%s on %s: %v, differs at %d", v.name, name, err, firstDiff(got, raw))
			}
		}
	}
}
