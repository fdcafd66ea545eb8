package dataset

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Decode decodes raw (little-endian elements of a region of a, of the
// given shape) the way xarray's decode_cf does, through coords: CF times
// (datetime64 or "<unit> since <date>" units) become datetime64[ns],
// timedeltas (timedelta64, or time units with the dtype attribute xarray
// writes) become timedelta64[ns], and numbers with a packing
// (scale_factor, add_offset, _FillValue, missing_value or a v2 fill_value)
// become float64 with NaN. Other arrays are returned as stored. It returns
// the NumPy dtype and the decoded elements.
func Decode(a *zarr.Array, shape []int64, raw []byte) (string, []byte, error) {
	c, err := coords.FromRaw(a, shape, raw)
	if err != nil {
		return "", nil, err
	}
	switch {
	case c.IsDuration():
		ns, err := c.Durations()
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", a, err)
		}
		return "<m8[ns]", int64sBytes(ns), nil
	case c.IsTime():
		ns, err := c.Times()
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", a, err)
		}
		return "<M8[ns]", int64sBytes(ns), nil
	}
	dt := a.DType.LittleEndian()
	if !isNumeric(dt) || !c.Packed() {
		return dt.String(), raw, nil
	}
	vals, err := c.Float64s()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", a, err)
	}
	out := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
	}
	return "<f8", out, nil
}

func isNumeric(dt zarr.DType) bool {
	return dt.Kind == zarr.KindInt || dt.Kind == zarr.KindUint || dt.Kind == zarr.KindFloat
}

func int64sBytes(v []int64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
	}
	return out
}
