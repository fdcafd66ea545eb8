package transform

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lsio-loader/lsio-loader/zarr"
)

var nan = float32(math.NaN())

// same compares bit patterns, except that any NaN equals any NaN.
func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

func checkRow(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if !same(got[i], want[i]) {
			t.Fatalf("element %d: %v, want %v (row %v)", i, got[i], want[i], got)
		}
	}
}

func TestSteps(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name    string
		step    Step
		at      Row
		in, out []float32
	}{
		{"dropout keeps an available step", Dropout{}, Row{T: 2, AvailableT: 3}, []float32{1, 2}, []float32{1, 2}},
		{"dropout blanks a step at AvailableT", Dropout{}, Row{T: 3, AvailableT: 3}, []float32{1, 2}, []float32{nan, nan}},
		{"dropout blanks a later step", Dropout{}, Row{T: 5, AvailableT: 0}, []float32{1}, []float32{nan}},
		{"normalise channel 0", NewNormalise([]float32{10, 20}, []float32{2, 4}), Row{Channel: 0}, []float32{12, 8, nan}, []float32{1, -1, nan}},
		{"normalise channel 1", NewNormalise([]float32{10, 20}, []float32{2, 4}), Row{Channel: 1}, []float32{24, 20}, []float32{1, 0}},
		{"normalise past the last channel uses the last", NewNormalise([]float32{10}, []float32{2}), Row{Channel: 4}, []float32{14}, []float32{2}},
		{"clip", Clip{Min: -1, Max: 1}, Row{}, []float32{-3, 0.5, 7, inf, -inf, nan}, []float32{-1, 0.5, 1, 1, -1, nan}},
		{"clip unbounded", Clip{Min: -inf, Max: inf}, Row{}, []float32{-3, inf}, []float32{-3, inf}},
		{"fill NaN", FillNaN{Value: -9}, Row{}, []float32{nan, 1, float32(math.Float32frombits(0xffc00001)), inf}, []float32{-9, 1, -9, inf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := append([]float32(nil), tc.in...)
			tc.step.Apply(row, tc.at)
			checkRow(t, row, tc.out)
		})
	}
}

// TestFusedStepsEqualSequential: the fused Normalise+Clip+FillNaN loop
// gives bit-identical results to the steps applied one by one.
func TestFusedStepsEqualSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name  string
		steps []Step
		fused int // steps after fusion
	}{
		{"normalise clip fill", []Step{NewNormalise([]float32{281, 3}, []float32{1.3, 0.7}), Clip{Min: -2, Max: 2}, FillNaN{Value: -1}}, 1},
		{"clip fill", []Step{Clip{Min: float32(math.Inf(-1)), Max: float32(math.Inf(1))}, FillNaN{Value: 0}}, 1},
		{"dropout then the rest", []Step{Dropout{}, NewNormalise([]float32{1}, []float32{3}), Clip{Min: -1, Max: 1}, FillNaN{Value: 5}}, 2},
		{"normalise alone stays", []Step{NewNormalise([]float32{1}, []float32{3}), FillNaN{Value: 5}}, 2},
		{"fill before clip stays", []Step{FillNaN{Value: 5}, Clip{Min: 0, Max: 1}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChain(Plain(zarr.DType{Kind: zarr.KindFloat, Size: 4}), PutFloat32s, 4, tc.steps...)
			if n := len(c.Steps()); n != tc.fused {
				t.Fatalf("%d steps after fusion, want %d", n, tc.fused)
			}
			for trial := range 50 {
				n := 1 + rng.IntN(40)
				in := make([]float32, n)
				for i := range in {
					switch rng.IntN(8) {
					case 0:
						in[i] = nan
					case 1:
						in[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
					default:
						in[i] = float32(rng.NormFloat64()*10 + 281)
					}
				}
				at := Row{Channel: int64(rng.IntN(3)), T: int64(rng.IntN(4)), AvailableT: int64(rng.IntN(4))}
				want := append([]float32(nil), in...)
				for _, s := range tc.steps {
					s.Apply(want, at)
				}
				got := append([]float32(nil), in...)
				for _, s := range c.Steps() {
					s.Apply(got, at)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("trial %d element %d: fused %v, sequential %v", trial, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestChainRow: padding outside [lo, hi) is NaN before the steps, strided
// sources decode element by element, the encoder writes the output dtype.
func TestChainRow(t *testing.T) {
	i16 := zarr.DType{Kind: zarr.KindInt, Size: 2}
	src := make([]byte, 16)
	for i, v := range []int16{5, 100, 6, 100, 7, 100, 8, 100} {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(v))
	}
	for _, tc := range []struct {
		name   string
		steps  []Step
		stride int
		lo, hi int
		at     Row
		want   []float32
	}{
		{"contiguous, no steps", nil, 2, 0, 4, Row{}, []float32{5, 100, 6, 100}},
		{"strided with padding", nil, 4, 1, 3, Row{}, []float32{nan, 5, 6, nan}},
		{"all padding filled", []Step{Clip{Min: -10, Max: 10}, FillNaN{Value: -1}}, 4, 0, 0, Row{}, []float32{-1, -1, -1, -1}},
		{"padding filled, data clipped", []Step{Clip{Min: -10, Max: 5.5}, FillNaN{Value: -1}}, 4, 2, 4, Row{}, []float32{-1, -1, 5, 5.5}},
		{"dropped step", []Step{Dropout{}, Clip{Min: -10, Max: 10}, FillNaN{Value: -2}}, 4, 0, 4, Row{T: 1, AvailableT: 1}, []float32{-2, -2, -2, -2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChain(Plain(i16), PutFloat32s, 4, tc.steps...)
			buf := make([]float32, len(tc.want))
			dst := make([]byte, 4*len(tc.want))
			c.Row(dst, src, tc.stride, tc.lo, tc.hi, tc.at, buf)
			got := make([]float32, len(tc.want))
			for i := range got {
				got[i] = math.Float32frombits(binary.LittleEndian.Uint32(dst[4*i:]))
			}
			checkRow(t, got, tc.want)
		})
	}
	f16, _ := EncoderFor("float16")
	c := NewChain(Plain(i16), f16, 2)
	dst := make([]byte, 4)
	c.Row(dst, src, 4, 0, 2, Row{}, make([]float32, 2))
	if h := binary.LittleEndian.Uint16(dst[2:]); halfToFloat32(h) != 6 {
		t.Errorf("float16 output %#04x, want 6", h)
	}
}

// TestChainRowAllocatesNothing keeps the hot path free of allocations.
func TestChainRowAllocatesNothing(t *testing.T) {
	p := zarr.CFPacking{Scale: 0.01, Offset: 280, Fill: []float64{-32768}}
	dec, err := CF(zarr.DType{Kind: zarr.KindInt, Size: 2}, p)
	if err != nil {
		t.Fatal(err)
	}
	bf, size := EncoderFor("bfloat16")
	c := NewChain(dec, bf, size, Dropout{}, NewNormalise([]float32{1}, []float32{2}), Clip{Min: -1, Max: 1}, FillNaN{Value: 0})
	src := make([]byte, 128)
	dst := make([]byte, 64*size)
	buf := make([]float32, 64)
	if n := testing.AllocsPerRun(100, func() { c.Row(dst, src, 2, 3, 60, Row{T: 1, AvailableT: 2}, buf) }); n != 0 {
		t.Errorf("%v allocations per row", n)
	}
}

func TestCFDecoder(t *testing.T) {
	i16 := zarr.DType{Kind: zarr.KindInt, Size: 2}
	f32 := zarr.DType{Kind: zarr.KindFloat, Size: 4}
	u8 := zarr.DType{Kind: zarr.KindUint, Size: 1}
	for _, tc := range []struct {
		name     string
		dt       zarr.DType
		p        zarr.CFPacking
		raw      []float64
		want     []float32
		identity bool
	}{
		{"packed int16 with fill", i16, zarr.CFPacking{Scale: 0.01, Offset: 280, Fill: []float64{-32768}},
			[]float64{-110, -1371, 2, -32768}, []float32{float32(-110*0.01 + 280.0), float32(-1371*0.01 + 280.0), float32(2*0.01 + 280.0), nan}, false},
		{"fill and missing_value both mask", i16, zarr.CFPacking{Scale: 1, Fill: []float64{-1, 9}}, []float64{-1, 9, 3}, []float32{nan, nan, 3}, false},
		{"scale only", u8, zarr.CFPacking{Scale: 0.5}, []float64{255, 1}, []float32{127.5, 0.5}, false},
		{"offset only", i16, zarr.CFPacking{Scale: 1, Offset: -0.25}, []float64{4}, []float32{3.75}, false},
		{"float fill value", f32, zarr.CFPacking{Scale: 1, Fill: []float64{-999}}, []float64{-999, 1.5}, []float32{nan, 1.5}, false},
		{"NaN fill is identity", f32, zarr.CFPacking{Scale: 1, Fill: []float64{math.NaN()}}, []float64{1.5}, []float32{1.5}, true},
		{"no attributes is identity", i16, zarr.CFPacking{Scale: 1}, []float64{-7}, []float32{-7}, true},
		{"booleans are masked as xarray masks them", zarr.DType{Kind: zarr.KindBool, Size: 1}, zarr.CFPacking{Scale: 1, Fill: []float64{0}}, []float64{0, 1}, []float32{nan, 1}, false},
		{"booleans without fill", zarr.DType{Kind: zarr.KindBool, Size: 1}, zarr.CFPacking{Scale: 1}, []float64{0, 1}, []float32{0, 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsIdentity(tc.dt, tc.p); got != tc.identity {
				t.Fatalf("IsIdentity = %v, want %v", got, tc.identity)
			}
			src := encode(tc.dt, tc.raw)
			dec, err := CF(tc.dt, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(tc.raw))
			dec(got, src, tc.dt.Size)
			checkRow(t, got, tc.want)
		})
	}
	if _, err := CF(zarr.DType{Kind: zarr.KindUnicode, Size: 4}, zarr.CFPacking{Scale: 2}); err == nil {
		t.Error("unicode dtype: no error")
	}
}

// encode writes vals in a little-endian dtype.
func encode(dt zarr.DType, vals []float64) []byte {
	b := make([]byte, dt.Size*len(vals))
	for i, v := range vals {
		o := b[i*dt.Size:]
		switch {
		case dt.Kind == zarr.KindFloat && dt.Size == 4:
			binary.LittleEndian.PutUint32(o, math.Float32bits(float32(v)))
		case dt.Kind == zarr.KindFloat && dt.Size == 8:
			binary.LittleEndian.PutUint64(o, math.Float64bits(v))
		case dt.Size == 1:
			o[0] = byte(int64(v))
		case dt.Size == 2:
			binary.LittleEndian.PutUint16(o, uint16(int64(v)))
		case dt.Size == 4:
			binary.LittleEndian.PutUint32(o, uint32(int64(v)))
		case dt.Size == 8:
			binary.LittleEndian.PutUint64(o, uint64(int64(v)))
		}
	}
	return b
}

// FuzzCF checks the row decoder against the reference float64 decoding
// (zarr.CFPacking.Decode, rounded to float32) on arbitrary bytes, for every
// numeric dtype and arbitrary packings.
func FuzzCF(f *testing.F) {
	f.Add([]byte{0x92, 0xff, 0x00, 0x80, 0x02, 0x00}, uint8(3), 0.01, 280.0, -32768.0)
	f.Add([]byte{0, 0, 0xc0, 0x7f, 1, 2, 3, 4}, uint8(0), 1.0, 0.0, math.NaN())
	f.Add([]byte{7, 7, 7, 7, 7, 7, 7, 7, 7}, uint8(9), -2.5, 1e10, 7.0)
	dtypes := []zarr.DType{
		{Kind: zarr.KindFloat, Size: 4}, {Kind: zarr.KindFloat, Size: 8}, {Kind: zarr.KindFloat, Size: 2},
		{Kind: zarr.KindInt, Size: 2}, {Kind: zarr.KindInt, Size: 1}, {Kind: zarr.KindUint, Size: 1},
		{Kind: zarr.KindUint, Size: 2}, {Kind: zarr.KindInt, Size: 4}, {Kind: zarr.KindUint, Size: 4},
		{Kind: zarr.KindInt, Size: 8}, {Kind: zarr.KindUint, Size: 8}, {Kind: zarr.KindBool, Size: 1},
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8, scale, offset, fill float64) {
		dt := dtypes[int(which)%len(dtypes)]
		p := zarr.CFPacking{Scale: scale, Offset: offset, Fill: []float64{fill}}
		n := len(data) / dt.Size
		dec, err := CF(dt, p)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, n)
		dec(got, data, dt.Size)
		ref := make([]float64, n)
		if err := p.Decode(dt, data, ref); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			// == lets −0 equal +0: the reference adds a zero offset that
			// xarray skips when add_offset is absent.
			if w := float32(ref[i]); got[i] != w && !(got[i] != got[i] && w != w) && !IsIdentity(dt, p) {
				t.Fatalf("element %d of %s: %v, reference %v", i, dt, got[i], w)
			}
		}
	})
}
