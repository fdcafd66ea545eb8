package transform

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// CFPacking reads a data variable's CF encoding (scale_factor, add_offset,
// _FillValue, missing_value and, for Zarr v2, the array's fill_value) from
// its attributes, the way xarray's zarr backend does.
func CFPacking(a *zarr.Array) (zarr.CFPacking, error) {
	p, err := a.CFPacking()
	if err != nil {
		return p, fmt.Errorf("CF attributes: %w", err)
	}
	return p, nil
}

// IsIdentity reports whether decoding dt values with p changes nothing
// (no scale or offset, and no fill value other than NaN, which is NaN
// either way).
func IsIdentity(dt zarr.DType, p zarr.CFPacking) bool {
	if p.Scale != 1 || p.Offset != 0 {
		return false
	}
	for _, f := range p.Fill {
		if f == f {
			return false
		}
	}
	return true
}

// CF returns the decoder that reads dt values the way xarray decodes a
// data variable by default: elements equal to a fill value become NaN, the
// others x·scale_factor + add_offset. Zarr attributes are JSON numbers,
// which xarray reads as float64, so it unpacks in float64 (its
// _choose_float_dtype) whatever the stored integer type; the decoder does
// the same and rounds once to float32. When the packing changes nothing
// (IsIdentity) it is the Plain decoder, whose results are bit-identical to
// reading without CF decoding.
func CF(dt zarr.DType, p zarr.CFPacking) (Decoder, error) {
	plain := Plain(dt)
	if plain == nil {
		return nil, fmt.Errorf("dtype %s is not numeric", dt)
	}
	if IsIdentity(dt, p) {
		return plain, nil
	}
	u := unpack{scale: p.Scale, offset: p.Offset, fill: p.Fill}
	switch {
	case dt.Kind == zarr.KindFloat && dt.Size == 4:
		return cfDecoder(u, func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }), nil
	case dt.Kind == zarr.KindFloat && dt.Size == 8:
		return cfDecoder(u, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
	case dt.Kind == zarr.KindFloat && dt.Size == 2:
		return cfDecoder(u, func(b []byte) float64 { return float64(halfToFloat32(binary.LittleEndian.Uint16(b))) }), nil
	case dt.Kind == zarr.KindInt && dt.Size == 1:
		return cfDecoder(u, func(b []byte) float64 { return float64(int8(b[0])) }), nil
	case (dt.Kind == zarr.KindUint || dt.Kind == zarr.KindBool) && dt.Size == 1:
		// xarray masks booleans too: a v2 mask with fill_value false reads
		// as true and NaN.
		return cfDecoder(u, func(b []byte) float64 { return float64(b[0]) }), nil
	case dt.Kind == zarr.KindInt && dt.Size == 2:
		if len(u.fill) == 1 && u.scale != 1 && u.offset != 0 {
			return packedInt16(u.scale, u.offset, u.fill[0]), nil
		}
		return cfDecoder(u, func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) }), nil
	case dt.Kind == zarr.KindUint && dt.Size == 2:
		return cfDecoder(u, func(b []byte) float64 { return float64(binary.LittleEndian.Uint16(b)) }), nil
	case dt.Kind == zarr.KindInt && dt.Size == 4:
		return cfDecoder(u, func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) }), nil
	case dt.Kind == zarr.KindUint && dt.Size == 4:
		return cfDecoder(u, func(b []byte) float64 { return float64(binary.LittleEndian.Uint32(b)) }), nil
	case dt.Kind == zarr.KindInt && dt.Size == 8:
		return cfDecoder(u, func(b []byte) float64 { return float64(int64(binary.LittleEndian.Uint64(b))) }), nil
	case dt.Kind == zarr.KindUint && dt.Size == 8:
		return cfDecoder(u, func(b []byte) float64 { return float64(binary.LittleEndian.Uint64(b)) }), nil
	}
	return nil, fmt.Errorf("dtype %s has no CF decoding", dt)
}

// unpack is CF decoding on float64 values.
type unpack struct {
	scale, offset float64
	fill          []float64
}

// value decodes one stored value. The explicit conversions keep the
// compiler from fusing the multiply and add: xarray rounds after each.
func (u *unpack) value(v float64) float32 {
	for _, f := range u.fill {
		if v == f {
			return float32(math.NaN())
		}
	}
	if u.scale != 1 {
		v = float64(v * u.scale)
	}
	if u.offset != 0 {
		v = float64(v + u.offset)
	}
	return float32(v)
}

func cfDecoder(u unpack, load func([]byte) float64) Decoder {
	return func(dst []float32, src []byte, stride int) {
		for i := range dst {
			dst[i] = u.value(load(src[i*stride:]))
		}
	}
}

// packedInt16 is cfDecoder for the commonest packing, int16 with scale,
// offset and one fill value, with the load and the test inlined: about four
// times faster than the general loop.
func packedInt16(scale, offset, fill float64) Decoder {
	nan := float32(math.NaN())
	return func(dst []float32, src []byte, stride int) {
		for i := range dst {
			v := float64(int16(binary.LittleEndian.Uint16(src[i*stride:])))
			if v == fill {
				dst[i] = nan
				continue
			}
			dst[i] = float32(float64(v*scale) + offset)
		}
	}
}
