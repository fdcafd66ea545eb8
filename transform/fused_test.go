package transform

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// randomRow returns n stored values of dt (little-endian) with NaN, ±Inf,
// -0, subnormals and values far outside any clip among floats.
func randomRow(rng *rand.Rand, dt zarr.DType, n int) []byte {
	b := make([]byte, n*dt.Size)
	specials := []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0x7f800000, 0xff800000, 0x80000000, 0x00000001, 0x7f7fffff}
	for i := range n {
		switch {
		case dt.Kind == zarr.KindFloat && dt.Size == 4:
			bits := math.Float32bits(float32(rng.NormFloat64()*50 + 281))
			if rng.IntN(6) == 0 {
				bits = specials[rng.IntN(len(specials))]
			}
			binary.LittleEndian.PutUint32(b[4*i:], bits)
		case dt.Kind == zarr.KindInt && dt.Size == 2:
			binary.LittleEndian.PutUint16(b[2*i:], uint16(rng.IntN(1<<16)))
		case dt.Kind == zarr.KindUint && dt.Size == 1:
			b[i] = byte(rng.IntN(256))
		}
	}
	return b
}

// TestNewChainToMatchesNewChain checks that the fused row (steps and
// encoding in one loop, padding written as its encoded fill) gives
// exactly the bytes of the step-by-step chain, for every output dtype,
// decoder, step list, fill value (NaN too), padding and dropout.
func TestNewChainToMatchesNewChain(t *testing.T) {
	f32 := zarr.DType{Kind: zarr.KindFloat, Size: 4}
	i16 := zarr.DType{Kind: zarr.KindInt, Size: 2}
	u8 := zarr.DType{Kind: zarr.KindUint, Size: 1}
	cf, err := CF(i16, zarr.CFPacking{Scale: 0.01, Offset: 280, Fill: []float64{-32768}})
	if err != nil {
		t.Fatal(err)
	}
	inf := float32(math.Inf(1))
	norm := NewNormalise([]float32{281, 3, -7}, []float32{1.3, 0.7, 1e-3})
	decoders := []struct {
		name  string
		dt    zarr.DType
		dec   Decoder
		plain bool // the Plain decoder: NewPlainChainTo is checked too
	}{{"float32", f32, Plain(f32), true}, {"int16", i16, Plain(i16), true}, {"int16-cf", i16, cf, false}, {"uint8", u8, Plain(u8), true}}
	stepLists := []struct {
		name  string
		steps []Step
		fused bool
	}{
		{"clip-fill", []Step{Clip{Min: -inf, Max: inf}, FillNaN{Value: 0}}, true},
		{"normalise-clip-fill", []Step{norm, Clip{Min: -5, Max: 5}, FillNaN{Value: -1}}, true},
		{"dropout-normalise-clip-fill", []Step{Dropout{}, norm, Clip{Min: -inf, Max: inf}, FillNaN{Value: 2.5}}, true},
		{"dropout-clip-fill-nan", []Step{Dropout{}, Clip{Min: 0, Max: 300}, FillNaN{Value: float32(math.NaN())}}, true},
		{"normalise-fill-not-fused", []Step{norm, FillNaN{Value: 1}}, false},
		{"no-steps", nil, false},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, out := range []string{"float32", "float16", "bfloat16"} {
		for _, d := range decoders {
			for _, sl := range stepLists {
				t.Run(fmt.Sprintf("%s/%s/%s", out, d.name, sl.name), func(t *testing.T) {
					encode, size := EncoderFor(out)
					want := NewChain(d.dec, encode, size, sl.steps...)
					chains := []*Chain{NewChainTo(d.dec, out, sl.steps...)}
					if d.plain {
						c, err := NewPlainChainTo(d.dt, out, sl.steps...)
						if err != nil {
							t.Fatal(err)
						}
						chains = append(chains, c)
					}
					for _, got := range chains {
						if (got.fused != nil) != sl.fused {
							t.Fatalf("fused %v, want %v", got.fused != nil, sl.fused)
						}
						if got.OutSize != size {
							t.Fatalf("OutSize %d, want %d", got.OutSize, size)
						}
					}
					for trial := range 200 {
						n := 1 + rng.IntN(70)
						stride := 1 + rng.IntN(3)
						src := randomRow(rng, d.dt, n*stride)
						lo, hi := rng.IntN(n+1), rng.IntN(n+1)
						if rng.IntN(3) == 0 {
							lo, hi = 0, n
						}
						at := Row{Channel: int64(rng.IntN(4)), T: int64(rng.IntN(3)), AvailableT: int64(rng.IntN(3))}
						var rowSrc []byte
						if hi > lo {
							rowSrc = src[lo*stride*d.dt.Size:]
						}
						w := bytes.Repeat([]byte{0xa5}, n*size)
						want.Row(w, rowSrc, stride*d.dt.Size, lo, hi, at, make([]float32, n))
						for k, got := range chains {
							g := bytes.Repeat([]byte{0x5a}, n*size)
							got.Row(g, rowSrc, stride*d.dt.Size, lo, hi, at, make([]float32, n))
							if !bytes.Equal(g, w) {
								t.Fatalf("chain %d trial %d (n %d, [%d, %d), %+v): fused row\n%x\nwant\n%x", k, trial, n, lo, hi, at, g, w)
							}
						}
					}
				})
			}
		}
	}
}

// TestCopyFloat32LEMatchesCopyThenFill: ApplyFloat32LE, and the copy that
// fills NaN on the way, equal a value by value fill, for lengths around
// the block size and the eight-value step, and in place.
func TestCopyFloat32LEMatchesCopyThenFill(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f32 := zarr.DType{Kind: zarr.KindFloat, Size: 4}
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 255, copyBlock/4 - 1, copyBlock / 4, copyBlock/4 + 1, 3*copyBlock/4 + 7} {
		for _, inPlace := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/inplace=%v", n, inPlace), func(t *testing.T) {
				src := randomRow(rng, f32, n)
				// The reference, value by value.
				want := bytes.Clone(src)
				for i := 0; i < len(want); i += 4 {
					if x := math.Float32frombits(binary.LittleEndian.Uint32(want[i:])); x != x {
						binary.LittleEndian.PutUint32(want[i:], math.Float32bits(-3))
					}
				}
				applied := bytes.Clone(src)
				FillNaN{Value: -3}.ApplyFloat32LE(applied)
				if !bytes.Equal(applied, want) {
					t.Fatal("ApplyFloat32LE differs from the value by value fill")
				}
				got := make([]byte, len(src))
				if inPlace {
					got = bytes.Clone(src)
					FillNaN{Value: -3}.CopyFloat32LE(got, got)
				} else {
					FillNaN{Value: -3}.CopyFloat32LE(got, src)
				}
				if !bytes.Equal(got, want) {
					t.Fatal("differs from copy then ApplyFloat32LE")
				}
			})
		}
	}
}

// BenchmarkChainRow times one row of the real joined experiment's shapes
// (16 and 24 elements, and a 64-element row) through the fused chain and,
// as the reference in the same run, the step-by-step chain.
func BenchmarkChainRow(b *testing.B) {
	i16 := zarr.DType{Kind: zarr.KindInt, Size: 2}
	f32 := zarr.DType{Kind: zarr.KindFloat, Size: 4}
	steps := []Step{Dropout{}, NewNormalise([]float32{358.3}, []float32{215.1}), Clip{Min: -5, Max: 5}, FillNaN{Value: 0}}
	for _, dt := range []zarr.DType{f32, i16} {
		for _, out := range []string{"float32", "bfloat16"} {
			for _, n := range []int{16, 64} {
				for _, path := range []string{"plain-fused", "fused", "reference-steps"} {
					b.Run(fmt.Sprintf("%s/%s/n=%d/%s", dt, out, n, path), func(b *testing.B) {
						encode, size := EncoderFor(out)
						c := NewChainTo(Plain(dt), out, steps...)
						switch path {
						case "plain-fused":
							var err error
							if c, err = NewPlainChainTo(dt, out, steps...); err != nil {
								b.Fatal(err)
							}
						case "reference-steps":
							c = NewChain(Plain(dt), encode, size, steps...)
						}
						// Normal values: subnormals would time the FPU's
						// slow path, not the chain.
						src := make([]byte, n*dt.Size)
						for i := range n {
							if dt.Size == 4 {
								binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(300+i)))
							} else {
								binary.LittleEndian.PutUint16(src[2*i:], uint16(300+i))
							}
						}
						dst := make([]byte, n*size)
						buf := make([]float32, n)
						b.SetBytes(int64(n * size))
						for b.Loop() {
							c.Row(dst, src, dt.Size, 0, n, Row{T: 0, AvailableT: 1}, buf)
						}
					})
				}
			}
		}
	}
}
