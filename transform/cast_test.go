package transform

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/lsio-loader/lsio-loader/zarr"
)

func TestFloat16Conversion(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff},
		{65519, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{6.103515625e-05, 0x0400}, {5.960464477539063e-08, 0x0001}, {2.9802322387695312e-08, 0x0000},
		{2.98023259e-08, 0x0001}, {1.0009765625, 0x3c01}, {1.00048828125, 0x3c00}, {1.00146484375, 0x3c02},
	} {
		if got := float16(tc.in); got != tc.want {
			t.Errorf("float16(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if h := float16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("float16(NaN) = %#04x, not a NaN", h)
	}
	// Round trip every half value.
	for h := range uint32(1 << 16) {
		f := halfToFloat32(uint16(h))
		if f != f {
			continue
		}
		if got := float16(f); got != uint16(h) {
			t.Fatalf("half %#04x → %g → %#04x", h, f, got)
		}
	}
}

func TestBFloat16Conversion(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81},
		{0x7f7fffff, 0x7f80}, {0xff800000, 0xff80}, {0x80000000, 0x8000},
	} {
		if got := bfloat16(math.Float32frombits(tc.in)); got != tc.want {
			t.Errorf("bfloat16(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if h := bfloat16(math.Float32frombits(0x7f800001)); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("bfloat16(NaN with low payload) = %#04x, not a NaN", h)
	}
}

func BenchmarkConvert(b *testing.B) {
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = float32(i) * 0.37
	}
	dst := make([]byte, 4*len(src))
	raw := make([]byte, 2*len(src))
	for i := range len(src) {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(i))
	}
	cf, err := CF(zarr.DType{Kind: zarr.KindInt, Size: 2}, zarr.CFPacking{Scale: 0.01, Offset: 273.15, Fill: []float64{-32768}})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"float16", func() { Float32ToFloat16(dst, src) }},
		{"bfloat16", func() { Float32ToBFloat16(dst, src) }},
		{"float32", func() { PutFloat32s(dst, src) }},
		{"int16-gather", func() { Plain(zarr.DType{Kind: zarr.KindInt, Size: 2})(src, raw, 2) }},
		{"int16-cf", func() { cf(src, raw, 2) }},
		{"copy-reference", func() { copy(dst, dst[len(dst)/2:]) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				c.f()
			}
		})
	}
}

func TestFillNaN(t *testing.T) {
	nan, inf := math.Float32frombits(0x7fc00001), float32(math.Inf(1))
	negNaN := math.Float32frombits(0xffc00000)
	for _, tc := range []struct {
		name     string
		in, want []float32
	}{
		{"empty", nil, nil},
		{"odd-length-tail", []float32{1, 2, nan}, []float32{1, 2, -1}},
		{"pairs", []float32{nan, 1, 2, negNaN, inf, -inf}, []float32{-1, 1, 2, -1, inf, -inf}},
		{"no-nan", []float32{0, -0.5, 3e38, 1e-40}, []float32{0, -0.5, 3e38, 1e-40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 4*len(tc.in))
			PutFloat32s(b, tc.in)
			FillNaN{Value: -1}.ApplyFloat32LE(b)
			for i, w := range tc.want {
				if got := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])); got != w {
					t.Errorf("element %d: %v, want %v", i, got, w)
				}
			}
		})
	}
}

func BenchmarkFillNaN(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := 0; i < len(buf); i += 4 {
		binary.LittleEndian.PutUint32(buf[i:], math.Float32bits(float32(i)*0.25))
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		FillNaN{}.ApplyFloat32LE(buf)
	}
}
