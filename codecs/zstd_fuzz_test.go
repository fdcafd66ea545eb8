package codecs

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzZstdDecoder checks our decoder against klauspost's: whatever both
// accept must decode identically, ours must agree with itself with and
// without room to copy past the end, and Decode (which picks either) with
// both. The committed corpus holds libzstd frames
// (testdata/gen_fuzz_seeds.py).
func FuzzZstdDecoder(f *testing.F) {
	z := NewZstd()
	for _, level := range []int{1, 3, 19} {
		for _, raw := range [][]byte{nil, textLike(3000, 1), shuffledField(4000, 2), make([]byte, 5000)} {
			enc, err := z.Encode(nil, raw, level)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(enc)
		}
	}
	f.Add(handFrame(0, 0x01))
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*fuzzLimit))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(ref.Close)
	// Inputs run one at a time in each worker process, so the big buffer
	// is reused rather than allocated and cleared for every input, which
	// made minimizing crawl.
	buf := make([]byte, 0, fuzzLimit+decodeSlack)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := z.decodeOurs(buf, data)
		if err != nil {
			return
		}
		if len(got) > fuzzLimit {
			t.Fatalf("decoded %d bytes past the limit %d", len(got), fuzzLimit)
		}
		tight, err := z.decodeOurs(make([]byte, 0, len(got)), data)
		if err != nil || !bytes.Equal(tight, got) {
			t.Fatalf("decoding without slack disagrees: %v", err)
		}
		if want, err := ref.DecodeAll(data, nil); err == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, klauspost %d, first difference at %d", len(got), len(want), firstDiff(got, want))
		}
		if viaDecode, err := z.Decode(nil, data, len(got)); err == nil && !bytes.Equal(viaDecode, got) {
			t.Fatalf("Decode disagrees with ours at %d", firstDiff(viaDecode, got))
		}
	})
}
