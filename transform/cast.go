package transform

import (
	"encoding/binary"
	"math"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// Float32ToBFloat16 writes src as little-endian bfloat16 into dst (2 bytes
// per element), rounding to nearest even; NaN stays NaN.
func Float32ToBFloat16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], bfloat16(f))
	}
}

func bfloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		// Quiet NaN with the sign kept: plain truncation could turn a NaN
		// whose payload is in the low bits into infinity.
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Float32ToFloat16 writes src as little-endian IEEE half precision into dst
// (2 bytes per element), rounding to nearest even, with overflow to ±Inf,
// subnormals and NaN handled.
func Float32ToFloat16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], float16(f))
	}
}

func float16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return sign | 0x7e00
	case abs >= 0x477ff000: // rounds to ≥ 65520: overflow to Inf
		return sign | 0x7c00
	case abs >= 0x38800000: // normal half
		// Rebias the exponent (127 → 15) and round the 13 dropped bits.
		r := abs - 0x38000000
		r += 0xfff + (r>>13)&1
		return sign | uint16(r>>13)
	case abs < 0x33000000: // below half the smallest subnormal: ±0
		return sign
	default: // subnormal half
		e := abs >> 23
		m := abs&0x7fffff | 0x800000
		shift := 126 - e // 14 + (127 − e) − 1 … the mantissa shift into the subnormal range
		// A half subnormal is m·2^(e−150) / 2^−24 = m >> (126 − e).
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
}

// Decoder converts len(dst) elements of a stored dtype, stride bytes apart
// starting at src[0], into dst as float32.
type Decoder func(dst []float32, src []byte, stride int)

// Plain returns the decoder of a stored (little-endian) dtype to float32
// that keeps the stored values, or nil when the dtype is not numeric.
func Plain(dt zarr.DType) Decoder {
	switch {
	case dt.Kind == zarr.KindFloat && dt.Size == 4:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[i*stride:]))
			}
		}
	case dt.Kind == zarr.KindFloat && dt.Size == 8:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[i*stride:])))
			}
		}
	case dt.Kind == zarr.KindFloat && dt.Size == 2:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = halfToFloat32(binary.LittleEndian.Uint16(src[i*stride:]))
			}
		}
	case dt.Kind == zarr.KindInt && dt.Size == 1:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(int8(src[i*stride]))
			}
		}
	case (dt.Kind == zarr.KindUint || dt.Kind == zarr.KindBool) && dt.Size == 1:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(src[i*stride])
			}
		}
	case dt.Kind == zarr.KindInt && dt.Size == 2:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(int16(binary.LittleEndian.Uint16(src[i*stride:])))
			}
		}
	case dt.Kind == zarr.KindUint && dt.Size == 2:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(binary.LittleEndian.Uint16(src[i*stride:]))
			}
		}
	case dt.Kind == zarr.KindInt && dt.Size == 4:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(int32(binary.LittleEndian.Uint32(src[i*stride:])))
			}
		}
	case dt.Kind == zarr.KindUint && dt.Size == 4:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(binary.LittleEndian.Uint32(src[i*stride:]))
			}
		}
	case dt.Kind == zarr.KindInt && dt.Size == 8:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(int64(binary.LittleEndian.Uint64(src[i*stride:])))
			}
		}
	case dt.Kind == zarr.KindUint && dt.Size == 8:
		return func(dst []float32, src []byte, stride int) {
			for i := range dst {
				dst[i] = float32(binary.LittleEndian.Uint64(src[i*stride:]))
			}
		}
	}
	return nil
}

func halfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch {
	case e == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	case e == 0:
		if m == 0 {
			return math.Float32frombits(sign)
		}
		f := float32(m) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (e+112)<<23 | m<<13)
}

// PutFloat32s writes src little-endian into dst.
func PutFloat32s(dst []byte, src []float32) {
	dst = dst[:4*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
	}
}

// Encoder writes a row of float32 in an output dtype.
type Encoder func(dst []byte, src []float32)

// EncoderFor returns the encoder of an output dtype ("float32", "float16"
// or "bfloat16") and its element size.
func EncoderFor(outDType string) (Encoder, int) {
	switch outDType {
	case "float16":
		return Float32ToFloat16, 2
	case "bfloat16":
		return Float32ToBFloat16, 2
	}
	return PutFloat32s, 4
}
