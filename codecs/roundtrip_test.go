package codecs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// weatherField returns n bytes of a smooth float32 field with noise, the
// kind of data the loader's chunks hold: compressible but not trivially.
func weatherField(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]byte, n)
	const width = 548
	for i := 0; i+4 <= n; i += 4 {
		e := i / 4
		x, y := float64(e%width), float64(e/width)
		v := 280 + 10*math.Sin(x/40)*math.Cos(y/25) + rng.NormFloat64()*0.3
		binary.LittleEndian.PutUint32(out[i:], math.Float32bits(float32(v)))
	}
	for i := n &^ 3; i < n; i++ {
		out[i] = byte(rng.Uint32())
	}
	return out
}

func TestBloscRoundTrip(t *testing.T) {
	b := NewBlosc()
	sizes := []int{0, 1, 127, 128, 1001, 4096, 70001}
	for _, comp := range []string{"lz4", "lz4hc", "zstd", "zlib", "snappy"} {
		for _, sh := range []Shuffle{NoShuffle, ByteShuffle, BitShuffle} {
			for _, ts := range []int{1, 2, 3, 4, 8, 16} {
				for _, bs := range []int{0, 256, 1000} {
					for _, n := range sizes {
						o := BloscOptions{Compressor: comp, Level: 5, Shuffle: sh, TypeSize: ts, BlockSize: bs}
						name := fmt.Sprintf("%s/shuffle%d/ts%d/bs%d/n%d", comp, sh, ts, bs, n)
						src := weatherField(n, uint64(n))
						enc, err := b.Encode(nil, src, o)
						if err != nil {
							t.Fatalf("%s: encode: %v", name, err)
						}
						nb, gotTS, _, err := BloscInfo(enc)
						if err != nil || nb != n || gotTS != ts {
							t.Fatalf("%s: BloscInfo = %d, %d, %v", name, nb, gotTS, err)
						}
						dec, err := b.Decode(nil, enc, n)
						if err != nil {
							t.Fatalf("%s: decode: %v", name, err)
						}
						if !bytes.Equal(dec, src) {
							t.Fatalf("%s: round trip differs", name)
						}
					}
				}
			}
		}
	}
}

func TestBloscLevelZeroIsPlainCopy(t *testing.T) {
	b := NewBlosc()
	src := weatherField(5000, 1)
	enc, err := b.Encode(nil, src, BloscOptions{Compressor: "zstd", Level: 0, Shuffle: ByteShuffle, TypeSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if enc[2]&bloscFlagMemcpyed == 0 || len(enc) != bloscHeaderSize+len(src) {
		t.Fatalf("flags %#x, %d bytes: want a plain copy of %d bytes", enc[2], len(enc), len(src))
	}
	dec, err := b.Decode(nil, enc, len(src))
	if err != nil || !bytes.Equal(dec, src) {
		t.Fatalf("decode: %v, equal %v", err, bytes.Equal(dec, src))
	}
}

type byteCodec interface {
	Decode(dst, src []byte, size int) ([]byte, error)
	Encode(dst, src []byte, level int) ([]byte, error)
}

func TestStreamCodecsRoundTrip(t *testing.T) {
	codecs := map[string]byteCodec{"zstd": NewZstd(), "gzip": NewGzip(), "zlib": NewZlib(), "lz4": LZ4{}}
	for name, c := range codecs {
		for _, n := range []int{0, 1, 3, 100, 4097, 1 << 20} {
			for _, level := range []int{1, 5} {
				src := weatherField(n, uint64(n+level))
				enc, err := c.Encode(nil, src, level)
				if err != nil {
					t.Fatalf("%s n=%d: encode: %v", name, n, err)
				}
				dec, err := c.Decode(nil, enc, n)
				if err != nil || !bytes.Equal(dec, src) {
					t.Fatalf("%s n=%d: exact-size decode: %v (equal %v)", name, n, err, bytes.Equal(dec, src))
				}
				dec, err = c.Decode(make([]byte, 0, 10), enc, -(n + 10))
				if err != nil || !bytes.Equal(dec, src) {
					t.Fatalf("%s n=%d: bounded decode: %v (equal %v)", name, n, err, bytes.Equal(dec, src))
				}
				if _, err := c.Decode(nil, enc, n+1); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s n=%d: decode with size n+1: got %v, want ErrCorrupt", name, n, err)
				}
				if n > 0 {
					if _, err := c.Decode(nil, enc, -(n - 1)); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("%s n=%d: decode under a limit of n-1: got %v, want ErrCorrupt", name, n, err)
					}
				}
			}
		}
	}
}

func TestDecodeReusesDst(t *testing.T) {
	b := NewBlosc()
	src := weatherField(100000, 3)
	enc, err := b.Encode(nil, src, BloscOptions{Compressor: "lz4", Level: 5, Shuffle: ByteShuffle, TypeSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, len(src))
	out, err := b.Decode(dst, enc, len(src))
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &dst[:1][0] {
		t.Fatal("Decode allocated although dst had the capacity")
	}
}

// TestConcurrentDecodes shares one codec value between goroutines, as the
// cropper does; run with -race it proves the shared state is safe.
func TestConcurrentDecodes(t *testing.T) {
	b, z := NewBlosc(), NewZstd()
	type job struct {
		dec func(dst, src []byte, size int) ([]byte, error)
		enc []byte
		raw []byte
	}
	var jobs []job
	for i, comp := range []string{"lz4", "zstd", "zlib"} {
		raw := weatherField(70000+i, uint64(i))
		enc, err := b.Encode(nil, raw, BloscOptions{Compressor: comp, Level: 5, Shuffle: Shuffle(i % 3), TypeSize: 4, BlockSize: 8192})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{b.Decode, enc, raw})
		zenc, err := z.Encode(nil, raw, 3)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{z.Decode, zenc, raw})
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var dst []byte
			for i := range 20 {
				j := jobs[(g+i)%len(jobs)]
				out, err := j.dec(dst, j.enc, len(j.raw))
				if err == nil && !bytes.Equal(out, j.raw) {
					err = errors.New("concurrent decode differs")
				}
				if err != nil {
					errs <- err
					return
				}
				dst = out
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
