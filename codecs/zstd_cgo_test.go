//go:build cgo

package codecs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestLibzstdRefusesAnnouncedSize checks that libzstd is never handed a
// frame whose announced size exceeds the destination's room, that frames
// without an announced size are stopped at the room, and that nothing is
// written past it.
func TestLibzstdRefusesAnnouncedSize(t *testing.T) {
	z := NewZstd()
	raw := weatherField(64<<10, 5)
	enc, err := z.Encode(nil, raw, 3)
	if err != nil {
		t.Fatal(err)
	}
	// A frame announcing 1 TiB with one empty raw block.
	huge := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xc0 | 0x20, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0}
	binary.LittleEndian.PutUint64(huge[5:], 1<<40)
	legacy := append([]byte{0x27, 0xb5, 0x2f, 0xfd}, enc[4:]...) // zstd 0.7's magic
	skip := append([]byte{0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 'x', 'y'}, enc...)
	for _, tc := range []struct {
		name    string
		src     []byte
		room    int
		want    []byte
		wantErr string // empty: must succeed
	}{
		{"exact room", enc, len(raw), raw, ""},
		{"one byte short", enc, len(raw) - 1, nil, "announce 65536 decoded bytes"},
		{"two frames over the room", append(append([]byte{}, enc...), enc...), len(raw) + 10, nil, "announce 131072 decoded bytes"},
		{"two frames", append(append([]byte{}, enc...), enc...), 2 * len(raw), append(append([]byte{}, raw...), raw...), ""},
		{"skippable frame first", skip, len(raw), raw, ""},
		{"1 TiB announced", huge, 1 << 20, nil, "announce 1099511627776"},
		{"no announced size, room enough", handFrame(0, 0x01), 6, []byte("abcccc"), ""},
		{"no announced size, room short", handFrame(0, 0x01), 5, nil, "exceeds the limit"},
		{"no room at all", handFrame(0, 0x01), 0, nil, "exceeds the limit"},
		{"empty input", nil, 100, nil, "empty input"},
		{"legacy magic", legacy, len(raw), nil, "bad magic"},
		{"truncated", enc[:len(enc)/2], len(raw), nil, "block of"},
		{"corrupt block", append(append([]byte{}, enc[:20]...), bytes.Repeat([]byte{0xff}, len(enc)-20)...), len(raw), nil, "libzstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The destination's room is the start of a larger array whose
			// tail must stay untouched.
			backing := bytes.Repeat([]byte{0xa5}, tc.room+4096)
			got, err := z.decodeLibzstd(backing[:0:tc.room], tc.src)
			if tc.wantErr == "" {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("got %v, want an ErrCorrupt error containing %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "announce") || strings.Contains(tc.wantErr, "exceeds") {
					if !errors.Is(err, errExceeded) {
						t.Fatalf("got %v, want errExceeded", err)
					}
				}
			}
			for i, c := range backing[tc.room:] {
				if c != 0xa5 {
					t.Fatalf("byte %d past the room of %d was written", i, tc.room)
				}
			}
		})
	}
}

// TestZstdUsesLibzstd checks that a cgo build decodes through libzstd by
// default, zstd chunks and blosc's zstd streams alike, so that the tests
// and benchmarks of Decode measure it.
func TestZstdUsesLibzstd(t *testing.T) {
	if !libzstdAvailable {
		t.Fatal("cgo build without libzstd")
	}
	raw := weatherField(256<<10, 6)
	z := NewZstd()
	enc, err := z.Encode(nil, raw, 3)
	if err != nil {
		t.Fatal(err)
	}
	bl := NewBlosc()
	benc, err := bl.Encode(nil, raw, BloscOptions{Compressor: "zstd", Level: 5, Shuffle: ByteShuffle, TypeSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	counting := func(z *Zstd) {
		z.override = func(buf, src []byte) ([]byte, error) {
			calls++
			return z.decodeLibzstd(buf, src)
		}
	}
	counting(z)
	counting(bl.zstd)
	for name, dec := range map[string]func() ([]byte, error){
		"zstd":  func() ([]byte, error) { return z.Decode(nil, enc, len(raw)) },
		"blosc": func() ([]byte, error) { return bl.Decode(nil, benc, len(raw)) },
	} {
		calls = 0
		got, err := dec()
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%s: %v, differs at %d", name, err, firstDiff(got, raw))
		}
		if calls == 0 {
			t.Fatalf("%s: libzstd never called", name)
		}
	}
}

// FuzzZstdLibzstd checks libzstd against klauspost's decoder: whatever
// both accept must decode identically, and libzstd must stay within the
// room it is given (the runtime's checks on the Go side cannot see a C
// write, so the bytes past the room are a canary).
func FuzzZstdLibzstd(f *testing.F) {
	z := NewZstd()
	for _, level := range []int{1, 3, 19} {
		for _, raw := range [][]byte{nil, textLike(3000, 1), shuffledField(4000, 2), make([]byte, 5000)} {
			enc, err := z.Encode(nil, raw, level)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(enc, uint16(len(raw)))
		}
	}
	f.Add(handFrame(0, 0x01), uint16(6))
	// A bounded reference: unbounded, klauspost spends seconds expanding
	// a few mutated bytes into a gigabyte.
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*fuzzLimit))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(ref.Close)
	backing := make([]byte, fuzzLimit+64)
	f.Fuzz(func(t *testing.T, data []byte, room16 uint16) {
		room := int(room16)
		canary := backing[room : room+64]
		for i := range canary {
			canary[i] = 0x5a
		}
		got, err := z.decodeLibzstd(backing[:0:room], data)
		for i, c := range canary {
			if c != 0x5a {
				t.Fatalf("libzstd wrote byte %d past the room of %d", i, room)
			}
		}
		want, refErr := ref.DecodeAll(data, nil)
		if errors.Is(refErr, zstd.ErrWindowSizeExceeded) || errors.Is(refErr, zstd.ErrDecoderSizeExceeded) {
			return // the reference's memory bound, not a verdict on the input
		}
		switch {
		case err == nil && refErr != nil:
			t.Fatalf("libzstd decoded %d bytes, klauspost refused: %v", len(got), refErr)
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("libzstd decoded %d bytes, klauspost %d, first difference at %d", len(got), len(want), firstDiff(got, want))
		case err != nil && refErr == nil && len(want) <= room && len(data) > 0:
			// klauspost reads empty input as no frames; a chunk is never
			// empty, so libzstd's path refuses it.
			t.Fatalf("libzstd refused what klauspost decodes (%d bytes, room %d): %v", len(want), room, err)
		case err != nil && !errors.Is(err, ErrCorrupt):
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}
