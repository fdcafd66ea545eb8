// Package plot draws figures of image panels (one crop's channel each) with
// text labels as PNG, with the standard library's image/png and a bitmap
// font, so that the loader binary can show what it cuts without Python.
package plot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Panel is one image: H×W values in row-major order, NaN drawn grey,
// titled with some lines of text.
type Panel struct {
	Title  []string
	W, H   int
	Values []float64
}

// Figure is panels side by side under a title.
type Figure struct {
	Title  []string
	Panels []Panel
}

const (
	// panelPixels is the side a panel's longer edge is scaled up to (by a
	// whole factor, so that every data pixel stays a sharp square).
	panelPixels = 192
	// maxPanels and maxSide bound the image, whatever the input.
	maxPanels = 256
	maxSide   = 1 << 14
	margin    = 10
	lineH     = 14
)

var face = basicfont.Face7x13

// WritePNG draws the figure and encodes it as PNG.
func (f Figure) WritePNG(w io.Writer) error {
	img, err := f.Draw()
	if err != nil {
		return err
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// Draw renders the figure.
func (f Figure) Draw() (*image.RGBA, error) {
	if len(f.Panels) == 0 {
		return nil, errors.New("plot: no panels")
	}
	if len(f.Panels) > maxPanels {
		return nil, fmt.Errorf("plot: %d panels, at most %d", len(f.Panels), maxPanels)
	}
	titleLines := 0
	scales := make([]int, len(f.Panels))
	width, panelH := margin, 0
	for i, p := range f.Panels {
		if p.W <= 0 || p.H <= 0 || p.W > maxSide || p.H > maxSide || len(p.Values) != p.W*p.H {
			return nil, fmt.Errorf("plot: panel %d: %d values for %d×%d", i, len(p.Values), p.H, p.W)
		}
		scales[i] = max(1, panelPixels/max(p.W, p.H))
		pw := max(p.W*scales[i], textWidth(p.Title))
		width += pw + margin
		panelH = max(panelH, p.H*scales[i])
		titleLines = max(titleLines, len(p.Title))
	}
	width = max(width, textWidth(f.Title)+2*margin)
	top := margin + len(f.Title)*lineH + margin
	height := top + titleLines*lineH + 4 + panelH + margin
	if width > maxSide || height > maxSide {
		return nil, fmt.Errorf("plot: figure of %d×%d pixels is too large", width, height)
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for i, line := range f.Title {
		drawText(img, margin, margin+(i+1)*lineH-3, line)
	}
	x := margin
	for i, p := range f.Panels {
		s := scales[i]
		for j, line := range p.Title {
			drawText(img, x, top+(j+1)*lineH-3, line)
		}
		y0 := top + titleLines*lineH + 4
		drawPanel(img, x, y0, s, p)
		x += max(p.W*s, textWidth(p.Title)) + margin
	}
	return img, nil
}

func textWidth(lines []string) int {
	w := 0
	for _, l := range lines {
		w = max(w, font.MeasureString(face, l).Round())
	}
	return w
}

func drawText(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.Black, Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// drawPanel draws p's values scaled by s at (x, y), colour-mapped between
// their own finite minimum and maximum.
func drawPanel(img *image.RGBA, x, y, s int, p Panel) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range p.Values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	span := hi - lo
	if !(span > 0) {
		span = 1
	}
	grey := color.RGBA{0xb0, 0xb0, 0xb0, 0xff}
	for r := range p.H {
		for c := range p.W {
			v := p.Values[r*p.W+c]
			col := grey
			switch {
			case math.IsInf(v, 1):
				col = viridis(1)
			case math.IsInf(v, -1):
				col = viridis(0)
			case !math.IsNaN(v):
				col = viridis((v - lo) / span)
			}
			draw.Draw(img, image.Rect(x+c*s, y+r*s, x+(c+1)*s, y+(r+1)*s), &image.Uniform{col}, image.Point{}, draw.Src)
		}
	}
}

// viridisStops samples matplotlib's viridis at 0, 1/8, ..., 1, so that the
// Go and Python pictures read alike.
var viridisStops = [9][3]float64{
	{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
	{39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37},
}

func viridis(t float64) color.RGBA {
	t = min(max(t, 0), 1) * float64(len(viridisStops)-1)
	i := min(int(t), len(viridisStops)-2)
	f := t - float64(i)
	var c [3]uint8
	for k := range c {
		c[k] = uint8(math.Round(viridisStops[i][k]*(1-f) + viridisStops[i+1][k]*f))
	}
	return color.RGBA{c[0], c[1], c[2], 0xff}
}

// Float64s decodes n little-endian elements of a NumPy dtype ("<f4",
// "<i2", ...) or of the loader's output dtypes ("float32", "float16",
// "bfloat16") for drawing.
func Float64s(dtype string, data []byte) ([]float64, error) {
	var size int
	var get func(b []byte) float64
	switch dtype {
	case "float32", "<f4":
		size, get = 4, func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }
	case "<f8":
		size, get = 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }
	case "float16", "<f2":
		size, get = 2, func(b []byte) float64 { return halfToFloat64(binary.LittleEndian.Uint16(b)) }
	case "bfloat16":
		size, get = 2, func(b []byte) float64 {
			return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
		}
	case "|i1":
		size, get = 1, func(b []byte) float64 { return float64(int8(b[0])) }
	case "|u1", "|b1":
		size, get = 1, func(b []byte) float64 { return float64(b[0]) }
	case "<i2":
		size, get = 2, func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) }
	case "<u2":
		size, get = 2, func(b []byte) float64 { return float64(binary.LittleEndian.Uint16(b)) }
	case "<i4":
		size, get = 4, func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) }
	case "<u4":
		size, get = 4, func(b []byte) float64 { return float64(binary.LittleEndian.Uint32(b)) }
	case "<i8":
		size, get = 8, func(b []byte) float64 { return float64(int64(binary.LittleEndian.Uint64(b))) }
	case "<u8":
		size, get = 8, func(b []byte) float64 { return float64(binary.LittleEndian.Uint64(b)) }
	default:
		return nil, fmt.Errorf("plot: dtype %q cannot be drawn", dtype)
	}
	if len(data)%size != 0 {
		return nil, fmt.Errorf("plot: %d bytes is not a whole number of %s elements", len(data), dtype)
	}
	out := make([]float64, len(data)/size)
	for i := range out {
		out[i] = get(data[i*size:])
	}
	return out, nil
}

// halfToFloat64 converts an IEEE 754 binary16 value exactly.
func halfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}
