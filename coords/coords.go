// Package coords is the one place coordinates and CF time are decoded:
// CF packing of coordinate variables, CF time units and calendars as
// xarray decodes them, float times rounded to their axis' own precision,
// and periodic longitude. The sampler, `loader read`, `loader inspect` and
// the statistics all decode through it, so they cannot disagree.
package coords

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// NaT is the int64 that numpy and this package use for "not a time".
const NaT int64 = math.MinInt64

// maxCoordBytes bounds a coordinate read whole.
const maxCoordBytes = 1 << 30

// Coord is a coordinate variable read whole (or a region of one), as
// stored, with the CF packing its attributes give.
type Coord struct {
	Name  string
	Dims  []string
	Shape []int64
	// DType is the stored type; Data holds its elements little-endian.
	DType   zarr.DType
	Attrs   map[string]any
	Data    []byte
	packing zarr.CFPacking
}

// Read reads the array name (a path relative to g) whole as a coordinate.
func Read(ctx context.Context, g *zarr.Group, name string) (Coord, error) {
	a, err := g.Array(name)
	if err != nil {
		return Coord{}, err
	}
	return ReadArray(ctx, a)
}

// ReadArray reads a whole as a coordinate.
func ReadArray(ctx context.Context, a *zarr.Array) (Coord, error) {
	if n := a.NumElements() * int64(a.DType.Size); n > maxCoordBytes {
		return Coord{}, fmt.Errorf("%s: %d bytes is too large for a coordinate", a, n)
	}
	data, err := a.ReadAll(ctx)
	if err != nil {
		return Coord{}, err
	}
	return FromRaw(a, a.Shape, data)
}

// FromRaw wraps raw elements of a (little-endian, as Read returns them) of
// the given shape as a coordinate.
func FromRaw(a *zarr.Array, shape []int64, raw []byte) (Coord, error) {
	p, err := a.CFPacking()
	if err != nil {
		return Coord{}, err
	}
	return Coord{Name: a.Name, Dims: a.Dims, Shape: shape, DType: a.DType.LittleEndian(), Attrs: a.Attrs, Data: raw, packing: p}, nil
}

// Len returns the number of elements.
func (c Coord) Len() int {
	if c.DType.Size == 0 {
		return 0
	}
	return len(c.Data) / c.DType.Size
}

// Packed reports whether CF decoding changes the stored numbers: a
// scale_factor, add_offset or fill value applies.
func (c Coord) Packed() bool {
	return c.packing.Scale != 1 || c.packing.Offset != 0 || len(c.packing.Fill) > 0
}

// Float64s returns numeric values CF-decoded the way xarray shows them:
// _FillValue/missing_value become NaN, then scale_factor and add_offset
// apply. Datetimes and timedeltas give their raw counts (NaT as NaN).
func (c Coord) Float64s() ([]float64, error) {
	out := make([]float64, c.Len())
	if err := c.packing.Decode(c.DType, c.Data, out); err != nil {
		return nil, fmt.Errorf("coordinate %q: %w", c.Name, err)
	}
	return out, nil
}

// exactInts returns the stored integers when they need no CF decoding
// other than fill masking (fill elements are reported in missing), so
// that times convert without float rounding; ok is false otherwise.
func (c Coord) exactInts() (v []int64, missing []bool, ok bool) {
	d := c.DType
	switch d.Kind {
	case zarr.KindInt, zarr.KindUint, zarr.KindDatetime, zarr.KindTimedelta:
	default:
		return nil, nil, false
	}
	if c.packing.Scale != 1 || c.packing.Offset != 0 || (d.Kind == zarr.KindUint && d.Size == 8) {
		return nil, nil, false
	}
	v = make([]int64, c.Len())
	missing = make([]bool, len(v))
	for i := range v {
		b := c.Data[i*d.Size:]
		switch {
		case d.Size == 1 && d.Kind == zarr.KindInt:
			v[i] = int64(int8(b[0]))
		case d.Size == 1:
			v[i] = int64(b[0])
		case d.Size == 2 && d.Kind == zarr.KindInt:
			v[i] = int64(int16(binary.LittleEndian.Uint16(b)))
		case d.Size == 2:
			v[i] = int64(binary.LittleEndian.Uint16(b))
		case d.Size == 4 && d.Kind == zarr.KindInt:
			v[i] = int64(int32(binary.LittleEndian.Uint32(b)))
		case d.Size == 4:
			v[i] = int64(binary.LittleEndian.Uint32(b))
		default:
			v[i] = int64(binary.LittleEndian.Uint64(b))
		}
		if d.Kind == zarr.KindDatetime || d.Kind == zarr.KindTimedelta {
			missing[i] = v[i] == NaT
			continue
		}
		for _, f := range c.packing.Fill {
			if float64(v[i]) == f {
				missing[i] = true
			}
		}
	}
	return v, missing, true
}

// Strings returns fixed-width unicode or bytes values, trailing NULs
// removed.
func (c Coord) Strings() ([]string, error) {
	out := make([]string, c.Len())
	size := c.DType.Size
	switch c.DType.Kind {
	case zarr.KindUnicode:
		var sb strings.Builder
		for i := range out {
			sb.Reset()
			for j := 0; j < size; j += 4 {
				r := binary.LittleEndian.Uint32(c.Data[i*size+j:])
				if r == 0 {
					break
				}
				sb.WriteRune(rune(r))
			}
			out[i] = sb.String()
		}
	case zarr.KindBytes:
		for i := range out {
			out[i] = strings.TrimRight(string(c.Data[i*size:(i+1)*size]), "\x00")
		}
	default:
		return nil, fmt.Errorf("coordinate %q: dtype %s is not a string type", c.Name, c.DType)
	}
	return out, nil
}

// Labels returns string values, or numbers as their shortest decimal form
// (channel labels may be wavelengths).
func (c Coord) Labels() ([]string, error) {
	if c.DType.Kind == zarr.KindUnicode || c.DType.Kind == zarr.KindBytes {
		return c.Strings()
	}
	f, err := c.Float64s()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(f))
	for i, v := range f {
		out[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return out, nil
}

// Periodic reports whether a regular 1-D longitude coordinate (degrees)
// covers the whole circle: n steps of its spacing make 360°, so its last
// column neighbours its first (0..359 at 1°, as ECMWF, GFS and ERA5
// publish).
func Periodic(lon []float64) bool {
	n := len(lon)
	if n < 2 {
		return false
	}
	step := (lon[n-1] - lon[0]) / float64(n-1)
	for i := 1; i < n; i++ {
		if d := lon[i] - lon[i-1]; math.Abs(d-step) > 1e-3*math.Abs(step) {
			return false
		}
	}
	return math.Abs(math.Abs(step)*float64(n)-360) < 1e-3*math.Abs(step)
}
