package codecs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// zstdInput is one buffer the differential tests compress.
type zstdInput struct {
	name string
	data []byte
}

// textLike returns n bytes of word salad: matches of all lengths at many
// offsets, Huffman-friendly literals.
func textLike(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	words := strings.Fields("the of and to in is was for on that with as by at from temperature " +
		"pressure humidity wind cloud forecast satellite channel radiance latitude longitude " +
		"grid chunk array zarr dataset window crop sample batch")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(9) == 0 {
			fmt.Fprintf(&b, " %d.%02d\n", rng.IntN(1000), rng.IntN(100))
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 5))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// shuffledField is a float32 field byte-shuffled as blosc stores it: the
// exponent planes are long runs of short-period matches.
func shuffledField(n int, seed uint64) []byte {
	src := weatherField(n, seed)
	out := make([]byte, n)
	shuffle(out, src, 4)
	copy(out[n&^3:], src[n&^3:])
	return out
}

// zstdInputs spans sizes around block boundaries and the kinds of data
// chunks hold.
func zstdInputs() []zstdInput {
	return []zstdInput{
		{"empty", nil},
		{"one", []byte{42}},
		{"zeros-1000", make([]byte, 1000)},
		{"zeros-128Ki", make([]byte, 128<<10)},
		{"zeros-1.5Mi", make([]byte, 3<<19)},
		{"random-777", randomBytes(777, 1)},
		{"random-128Ki-1", randomBytes(128<<10-1, 2)},
		{"random-200Ki", randomBytes(200<<10, 3)},
		{"text-13", textLike(13, 4)},
		{"text-50001", textLike(50001, 5)},
		{"text-1.2Mi", textLike(1200<<10, 6)},
		{"field-4096", weatherField(4096, 7)},
		{"field-128Ki+1", weatherField(128<<10+1, 8)},
		{"field-1Mi+3", weatherField(1<<20+3, 9)},
		{"shuffled-32Ki", shuffledField(32<<10, 10)},
		{"shuffled-1Mi", shuffledField(1<<20, 11)},
		{"mixed", append(append(textLike(70000, 12), make([]byte, 90000)...), shuffledField(100000, 13)...)},
	}
}

func newZstdRef(t testing.TB) *zstd.Decoder {
	t.Helper()
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ref.Close)
	return ref
}

// checkZstd decodes enc with our decoder in every way callers use it, and
// through Decode, whichever decoder it picks, and compares the results with
// raw and with klauspost's decoder.
func checkZstd(t *testing.T, z *Zstd, ref *zstd.Decoder, enc, raw []byte) {
	t.Helper()
	want, err := ref.DecodeAll(enc, nil)
	if err != nil {
		t.Fatalf("klauspost: %v", err)
	}
	if !bytes.Equal(want, raw) {
		t.Fatalf("klauspost decodes %d bytes, not the %d original ones", len(want), len(raw))
	}
	got, err := z.Decode(nil, enc, len(raw))
	if err != nil {
		t.Fatalf("exact size: %v", err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("exact size: decoded bytes differ from the original at %d", firstDiff(got, raw))
	}
	got, err = z.Decode(make([]byte, 5), enc, -(len(raw) + 100))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("bounded size: %v, differs at %d", err, firstDiff(got, raw))
	}
	got, err = z.decodeOurs(make([]byte, 0, len(raw)+decodeSlack), enc)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("ours: %v, differs at %d", err, firstDiff(got, raw))
	}
	// No slack at all: every copy must take the careful path at the end.
	tight := make([]byte, 0, len(raw))
	got, err = z.decodeOurs(tight, enc)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("no slack: %v, differs at %d", err, firstDiff(got, raw))
	}
	// Appending after existing bytes: matches must not reach them.
	prefix := []byte("prefix")
	buf := append(make([]byte, 0, len(prefix)+len(raw)+decodeSlack), prefix...)
	got, err = z.decodeOurs(buf, enc)
	if err != nil || !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], raw) {
		t.Fatalf("append: %v", err)
	}
	if len(raw) > 0 {
		if _, err := z.Decode(nil, enc, len(raw)-1); err == nil {
			t.Fatalf("decode with size %d of %d succeeded", len(raw)-1, len(raw))
		}
		if _, err := z.decodeOurs(make([]byte, 0, len(raw)-1), enc); !errors.Is(err, errExceeded) {
			t.Fatalf("decode into %d bytes of room: got %v, want errExceeded", len(raw)-1, err)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	return min(len(a), len(b))
}

func TestZstdDecoderKlauspost(t *testing.T) {
	z, ref := NewZstd(), newZstdRef(t)
	inputs := zstdInputs()
	for _, tc := range []struct {
		name string
		opts []zstd.EOption
	}{
		{"fastest", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest)}},
		{"default", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault)}},
		{"better", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBetterCompression)}},
		{"best", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression)}},
		{"default-nocrc", []zstd.EOption{zstd.WithEncoderCRC(false)}},
		{"best-nocrc", []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderCRC(false)}},
		// A 1 KiB window caps blocks at 1 KiB and forbids single segments.
		{"window-1Ki", []zstd.EOption{zstd.WithWindowSize(1 << 10), zstd.WithSingleSegment(false)}},
		{"no-single-segment", []zstd.EOption{zstd.WithSingleSegment(false), zstd.WithEncoderLevel(zstd.SpeedBetterCompression)}},
	} {
		enc, err := zstd.NewWriter(nil, append(tc.opts, zstd.WithEncoderConcurrency(1))...)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			t.Run(tc.name+"/"+in.name, func(t *testing.T) {
				checkZstd(t, z, ref, enc.EncodeAll(in.data, nil), in.data)
			})
		}
		t.Run(tc.name+"/concatenated", func(t *testing.T) {
			a, b, c := inputs[9].data, inputs[15].data, inputs[2].data
			frames := enc.EncodeAll(a, nil)
			frames = enc.EncodeAll(b, frames)
			frames = append(frames, 0x5E, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'x', 'y', 'z') // skippable
			frames = enc.EncodeAll(c, frames)
			checkZstd(t, z, ref, frames, append(append(append([]byte{}, a...), b...), c...))
		})
		t.Run(tc.name+"/streamed-no-content-size", func(t *testing.T) {
			var buf bytes.Buffer
			enc.Reset(&buf)
			raw := inputs[13].data
			if _, err := enc.Write(raw); err != nil {
				t.Fatal(err)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			checkZstd(t, z, ref, buf.Bytes(), raw)
		})
	}
}

// libzstdScript compresses every file in a directory with numcodecs' Zstd
// (libzstd) at several levels, with and without checksums.
const libzstdScript = `
import json, os, sys
import numcodecs
d = sys.argv[1]
out = []
for name in sorted(os.listdir(d)):
    if not name.endswith('.raw'):
        continue
    raw = open(os.path.join(d, name), 'rb').read()
    for level in (-5, 1, 3, 9, 19):
        for checksum in (False, True):
            if checksum and level not in (3, 19):
                continue
            enc = numcodecs.Zstd(level=level, checksum=checksum).encode(raw)
            p = os.path.join(d, f'{name[:-4]}.l{level}.c{int(checksum)}.zst')
            open(p, 'wb').write(bytes(enc))
            out.append(dict(raw=name, enc=os.path.basename(p)))
json.dump(out, sys.stdout)
`

func TestZstdDecoderLibzstd(t *testing.T) {
	dir := t.TempDir()
	for _, in := range zstdInputs() {
		if err := os.WriteFile(filepath.Join(dir, in.name+".raw"), in.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cases []struct{ Raw, Enc string }
	if err := json.Unmarshal(testenv.RunPython(t, libzstdScript, dir), &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("numcodecs wrote no fixtures")
	}
	z, ref := NewZstd(), newZstdRef(t)
	for _, c := range cases {
		t.Run(c.Enc, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, c.Raw))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := os.ReadFile(filepath.Join(dir, c.Enc))
			if err != nil {
				t.Fatal(err)
			}
			checkZstd(t, z, ref, enc, raw)
		})
	}
}

// bloscZstdStreams returns the zstd streams of a blosc chunk with their
// decoded sizes.
func bloscZstdStreams(t testing.TB, chunk []byte) (streams [][]byte, sizes []int) {
	t.Helper()
	h, err := parseBloscHeader(chunk)
	if err != nil {
		t.Fatal(err)
	}
	if h.format() != bloscFormatZstd || h.memcpyed() {
		t.Fatalf("not a compressed blosc-zstd chunk (format %d)", h.format())
	}
	for i := range h.nblocks {
		pos := int(binary.LittleEndian.Uint32(chunk[bloscHeaderSize+4*i:]))
		n := min(h.blocksize, h.nbytes-i*h.blocksize)
		nsplits := 1
		if h.flags&bloscFlagNoSplit == 0 && n == h.blocksize {
			nsplits = h.typesize
		}
		for range nsplits {
			csize := int(binary.LittleEndian.Uint32(chunk[pos:]))
			pos += 4
			if csize != n/nsplits {
				streams = append(streams, chunk[pos:pos+csize])
				sizes = append(sizes, n/nsplits)
			}
			pos += csize
		}
	}
	return streams, sizes
}

func TestZstdDecoderRealChunks(t *testing.T) {
	real := testenv.RealData(t)
	z, ref := NewZstd(), newZstdRef(t)
	for _, key := range []string{
		"ocf-nowcasting-2023/ukv_nwp.zarr/UKV/0.0.0.0.0",
		"ocf-nowcasting-2021/seviri_nonhrv_stacked.zarr/stacked_eumetsat_data/0.0.0.0",
	} {
		chunk, err := os.ReadFile(filepath.Join(real, key))
		if err != nil {
			t.Fatal(err)
		}
		streams, sizes := bloscZstdStreams(t, chunk)
		if len(streams) == 0 {
			t.Fatalf("%s: no zstd streams", key)
		}
		// Every stream would be slow under -race; a spread of them covers
		// the chunk's kinds of data.
		step := max(1, len(streams)/64)
		for i := 0; i < len(streams); i += step {
			t.Run(fmt.Sprintf("%s/stream%d", key, i), func(t *testing.T) {
				raw, err := ref.DecodeAll(streams[i], nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(raw) != sizes[i] {
					t.Fatalf("klauspost decodes %d bytes, blosc says %d", len(raw), sizes[i])
				}
				checkZstd(t, z, ref, streams[i], raw)
			})
		}
	}
}

// handFrame is a frame with a 1 KiB window: raw literals "abc", then
// one sequence with every table in RLE mode (literal length code 3, the
// given offset code, match length code 0, i.e. 3) and bitstream bits.
func handFrame(ofCode, bitstream byte) []byte {
	block := []byte{3 << 3, 'a', 'b', 'c', 1, 0x54, 3, ofCode, 0, bitstream}
	bh := len(block)<<3 | 2<<1 | 1
	return append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, byte(bh), byte(bh >> 8), byte(bh >> 16)}, block...)
}

func TestZstdDecoderHandMade(t *testing.T) {
	z, ref := NewZstd(), newZstdRef(t)
	// Offset code 0 is repeat offset 1: "abc" then "ccc".
	checkZstd(t, z, ref, handFrame(0, 0x01), []byte("abcccc"))
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"offset past the start", handFrame(5, 0x20), "match offset 29"},
		{"repeat offset past the start", handFrame(1, 0x02), "match offset 4"},
		{"bits left over", handFrame(0, 0x02), "not consumed"},
		{"offset code too large", handFrame(32, 0x01), "RLE symbol 32"},
		{"dictionary", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x21, 7, 1, 0, 0}, "dictionaries not supported"},
		{"reserved descriptor bit", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x28, 0, 1, 0, 0}, "reserved bit"},
		{"reserved block type", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0, 7, 0, 0}, "reserved block type"},
		{"content size mismatch", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 2, 1, 0, 0}, "frame header says 2"},
		{"trailing garbage", append(handFrame(0, 0x01), 1, 2), "trailing bytes"},
		{"bad magic", []byte{0x29, 0xb5, 0x2f, 0xfd, 0x20, 0, 1, 0, 0}, "bad magic"},
		{"block over the window", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x09, 0x20, 0}, "exceeds the block maximum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := z.decodeOurs(make([]byte, 0, 1<<20), tc.frame)
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrCorrupt mentioning %q", err, tc.want)
			}
			if _, err := z.Decode(nil, tc.frame, -1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode: got %v, want an ErrCorrupt", err)
			}
		})
	}
}

func TestZstdDecoderCorrupt(t *testing.T) {
	z, ref := NewZstd(), newZstdRef(t)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	raw := append(textLike(3000, 1), shuffledField(4000, 2)...)
	frame := enc.EncodeAll(raw, nil)
	for n := range len(frame) {
		if _, err := z.Decode(nil, frame[:n], len(raw)); err == nil {
			t.Fatalf("frame truncated to %d of %d bytes decoded", n, len(frame))
		}
		if _, err := z.decodeOurs(make([]byte, 0, len(raw)+decodeSlack), frame[:n]); err == nil {
			t.Fatalf("frame truncated to %d of %d bytes decoded by ours", n, len(frame))
		}
		if _, err := z.Decode(nil, frame[:n], -1<<20); err == nil {
			t.Fatalf("frame truncated to %d of %d bytes decoded without a size", n, len(frame))
		}
	}
	// Flipped bits may still decode (literal bytes, say), but then the
	// checksum must catch them, and nothing may panic.
	rng := rand.New(rand.NewPCG(1, 2))
	bad := make([]byte, len(frame))
	for i := range len(frame) {
		for range 3 {
			copy(bad, frame)
			bad[i] ^= byte(1 << rng.IntN(8))
			got, err := z.decodeOurs(make([]byte, 0, 1<<16), bad)
			if err == nil && !bytes.Equal(got, raw) {
				t.Fatalf("byte %d flipped: decoded wrong data without an error", i)
			}
			noCRC := zstdWithoutChecksum(t, bad)
			got, err = z.decodeOurs(make([]byte, 0, 1<<16), noCRC)
			if err == nil {
				if want, rerr := ref.DecodeAll(noCRC, nil); rerr == nil && !bytes.Equal(got, want) {
					t.Fatalf("byte %d flipped, checksum dropped: decoders disagree", i)
				}
			}
		}
	}
}

// zstdWithoutChecksum clears a frame's checksum flag and drops its last 4
// bytes, so that corruption reaches the decoding stages.
func zstdWithoutChecksum(t *testing.T, frame []byte) []byte {
	t.Helper()
	if len(frame) < 9 || frame[4]&4 == 0 {
		return frame
	}
	out := append([]byte{}, frame[:len(frame)-4]...)
	out[4] &^= 4
	return out
}

func TestXXHash64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xEF46DB3751D8E999},
		{"a", 0xD24EC4F1A98C6E5B},
		{"abc", 0x44BC2CF5AD770999},
		{"Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1},
	} {
		if got := xxhash64([]byte(tc.in)); got != tc.want {
			t.Errorf("xxhash64(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// TestZstdDecoderAllocs checks that steady-state decoding allocates nothing.
func TestZstdDecoderAllocs(t *testing.T) {
	z := NewZstd()
	raw := shuffledField(64<<10, 3)
	enc, err := z.Encode(nil, raw, 3)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(raw)+decodeSlack)
	for name, dec := range map[string]func() error{
		"ours": func() error {
			_, err := z.decodeOurs(dst[:0], enc)
			return err
		},
		"Decode": func() error {
			_, err := z.Decode(dst, enc, len(raw))
			return err
		},
	} {
		if err := dec(); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() {
			if err := dec(); err != nil {
				t.Fatal(err)
			}
		}); n > 0 {
			t.Fatalf("%s: %v allocations per decode", name, n)
		}
	}
}

// TestZstdPreferOurs checks the dispatch on frames of known match
// lengths: fill-value runs go to ours, text and floats to klauspost.
func TestZstdPreferOurs(t *testing.T) {
	z := NewZstd()
	for _, tc := range []struct {
		name string
		raw  []byte
		want bool
	}{
		{"text", textLike(200<<10, 1), false},
		{"field", weatherField(200<<10, 3), false},
		{"field-with-fill", append(shuffledField(4<<10, 2), bytes.Repeat([]byte{0, 0, 0xc0, 0x7f}, 100<<10)...), true},
		{"empty", nil, false},
	} {
		enc, err := z.Encode(nil, tc.raw, 3)
		if err != nil {
			t.Fatal(err)
		}
		if got := preferOurs(enc); got != tc.want {
			t.Errorf("%s: preferOurs = %v, want %v", tc.name, got, tc.want)
		}
	}
}
