package plot

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"math"
	"strings"
	"testing"
)

func TestFloat64s(t *testing.T) {
	le := func(vals ...any) []byte {
		var b bytes.Buffer
		for _, v := range vals {
			_ = binary.Write(&b, binary.LittleEndian, v)
		}
		return b.Bytes()
	}
	for _, tc := range []struct {
		dtype string
		data  []byte
		want  []float64
		err   string
	}{
		{"float32", le(float32(1.5), float32(-2)), []float64{1.5, -2}, ""},
		{"<f8", le(280.25), []float64{280.25}, ""},
		{"float16", le(uint16(0x3c00), uint16(0xc000), uint16(0x7c00)), []float64{1, -2, math.Inf(1)}, ""},
		{"bfloat16", le(uint16(0x3f80), uint16(0x4049)), []float64{1, 3.140625}, ""},
		{"<i2", le(int16(-300)), []float64{-300}, ""},
		{"|u1", []byte{255}, []float64{255}, ""},
		{"<u8", le(uint64(7)), []float64{7}, ""},
		{"<i2", []byte{1, 2, 3}, nil, "whole number"},
		{"<c8", nil, nil, "cannot be drawn"},
	} {
		got, err := Float64s(tc.dtype, tc.data)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, %v; want an error mentioning %q", tc.dtype, got, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%s: got %v, %v; want %v", tc.dtype, got, err, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s[%d]: got %v, want %v", tc.dtype, i, got[i], tc.want[i])
			}
		}
	}
}

func TestDrawLaysOutPanels(t *testing.T) {
	nan := math.NaN()
	fig := Figure{Title: []string{"sample 0"}, Panels: []Panel{
		{Title: []string{"a ch 0"}, W: 3, H: 2, Values: []float64{0, 1, 2, 3, 4, nan}},
		{Title: []string{"b ch 0", "12:00"}, W: 2, H: 2, Values: []float64{5, 5, 5, 5}},
	}}
	var buf bytes.Buffer
	if err := fig.WritePNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Panel a: 3 wide scaled by 192/3 = 64; b: 2 wide scaled by 96.
	if w := img.Bounds().Dx(); w != margin+192+margin+192+margin {
		t.Fatalf("width %d", w)
	}
	top := margin + lineH + margin + 2*lineH + 4
	corner := func(x, y int) [3]uint32 {
		r, g, b, _ := img.At(x, y).RGBA()
		return [3]uint32{r >> 8, g >> 8, b >> 8}
	}
	if got := corner(margin, top); got != [3]uint32{68, 1, 84} {
		t.Errorf("panel a's minimum drawn %v, want viridis(0)", got)
	}
	if got := corner(margin+2*64+1, top+64+1); got != [3]uint32{0xb0, 0xb0, 0xb0} {
		t.Errorf("NaN drawn %v, want grey", got)
	}
	if got := corner(margin+192+margin, top); got != [3]uint32{68, 1, 84} {
		t.Errorf("a constant panel drawn %v, want viridis(0)", got)
	}
}

func TestDrawRejectsBadFigures(t *testing.T) {
	for _, tc := range []struct {
		name string
		fig  Figure
		want string
	}{
		{"no panels", Figure{}, "no panels"},
		{"values short", Figure{Panels: []Panel{{W: 2, H: 2, Values: []float64{1}}}}, "1 values for 2×2"},
		{"zero size", Figure{Panels: []Panel{{}}}, "0 values for 0×0"},
		{"too many", Figure{Panels: make([]Panel, maxPanels+1)}, "at most"},
		{"too large", Figure{Panels: []Panel{{W: maxSide, H: 1, Values: make([]float64, maxSide)}}}, "too large"},
	} {
		if _, err := tc.fig.Draw(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func FuzzFloat64s(f *testing.F) {
	f.Add("float32", []byte{0, 0, 0x80, 0x3f})
	f.Add("float16", []byte{0, 0x7e})
	f.Add("<i8", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, dtype string, data []byte) {
		vals, err := Float64s(dtype, data)
		if err != nil {
			return
		}
		if len(vals) == 0 && len(data) != 0 {
			t.Fatalf("%s: %d bytes gave no values", dtype, len(data))
		}
		if len(vals) > 0 && len(vals) <= 1<<10 {
			fig := Figure{Panels: []Panel{{W: len(vals), H: 1, Values: vals}}}
			if _, err := fig.Draw(); err != nil {
				t.Fatalf("%s: %v", dtype, err)
			}
		}
	})
}
