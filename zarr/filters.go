package zarr

import (
	"encoding/binary"
	"fmt"
	"math"
)

// newV2Filter builds a numcodecs filter of a v2 array. It returns nil for
// filters that are identities on read (quantize, bitround).
func newV2Filter(id string, conf map[string]any, arrayType DType) (v2Filter, string, error) {
	typeOf := func(key string, def DType) (DType, error) {
		s, ok := conf[key].(string)
		if !ok {
			return def, nil
		}
		if s != "" && s[0] != '<' && s[0] != '>' && s[0] != '|' && s[0] != '=' {
			s = "<" + s // numcodecs accepts NumPy's short names, "f8"
		}
		d, err := ParseDType(s)
		if err != nil {
			return DType{}, fmt.Errorf("filter %q %s: %w", id, key, err)
		}
		if d.BigEndian || !numericKind(d.Kind) {
			return DType{}, fmt.Errorf("filter %q %s %s: unsupported", id, key, d)
		}
		return d, nil
	}
	switch id {
	case "quantize", "bitround":
		return nil, "", nil
	case "delta":
		dt, err := typeOf("dtype", arrayType)
		if err != nil {
			return nil, "", err
		}
		as, err := typeOf("astype", dt)
		if err != nil {
			return nil, "", err
		}
		if dt.Size != arrayType.Size || dt.Kind != arrayType.Kind {
			return nil, "", fmt.Errorf("filter delta dtype %s differs from the array's %s", dt, arrayType)
		}
		return deltaFilter{dt: dt, as: as}, describeConf("delta", conf, "dtype", "astype"), nil
	case "fixedscaleoffset":
		dt, err := typeOf("dtype", arrayType)
		if err != nil {
			return nil, "", err
		}
		as, err := typeOf("astype", dt)
		if err != nil {
			return nil, "", err
		}
		if dt.Size != arrayType.Size || dt.Kind != arrayType.Kind {
			return nil, "", fmt.Errorf("filter fixedscaleoffset dtype %s differs from the array's %s", dt, arrayType)
		}
		scale, _ := conf["scale"].(float64)
		offset, _ := conf["offset"].(float64)
		if scale == 0 {
			return nil, "", fmt.Errorf("filter fixedscaleoffset: scale missing or zero")
		}
		return scaleOffsetFilter{dt: dt, as: as, scale: scale, offset: offset}, describeConf("fixedscaleoffset", conf, "scale", "offset", "astype"), nil
	case "astype":
		dt, err := typeOf("decode_dtype", arrayType)
		if err != nil {
			return nil, "", err
		}
		as, err := typeOf("encode_dtype", dt)
		if err != nil {
			return nil, "", err
		}
		return astypeFilter{dt: dt, as: as}, describeConf("astype", conf, "encode_dtype"), nil
	case "shuffle":
		es, _ := conf["elementsize"].(float64)
		if es < 1 || es > 1<<16 || es != math.Trunc(es) {
			return nil, "", fmt.Errorf("filter shuffle: bad elementsize %v", conf["elementsize"])
		}
		return shuffleFilter{size: arrayType.Size, elem: int(es)}, describeConf("shuffle", conf, "elementsize"), nil
	}
	return nil, "", fmt.Errorf("unsupported filter %q", id)
}

func numericKind(k Kind) bool {
	return k == KindInt || k == KindUint || k == KindFloat || k == KindBool
}

// getNum reads element i of b as float64, and as int64 for integer kinds
// (exact for 64-bit integers).
func getNum(b []byte, d DType, i int) (float64, int64) {
	o := i * d.Size
	switch d.Kind {
	case KindFloat:
		switch d.Size {
		case 2:
			return halfToFloat64(binary.LittleEndian.Uint16(b[o:])), 0
		case 4:
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[o:]))), 0
		default:
			return math.Float64frombits(binary.LittleEndian.Uint64(b[o:])), 0
		}
	case KindUint, KindBool:
		var u uint64
		switch d.Size {
		case 1:
			u = uint64(b[o])
		case 2:
			u = uint64(binary.LittleEndian.Uint16(b[o:]))
		case 4:
			u = uint64(binary.LittleEndian.Uint32(b[o:]))
		default:
			u = binary.LittleEndian.Uint64(b[o:])
		}
		return float64(u), int64(u)
	default:
		var n int64
		switch d.Size {
		case 1:
			n = int64(int8(b[o]))
		case 2:
			n = int64(int16(binary.LittleEndian.Uint16(b[o:])))
		case 4:
			n = int64(int32(binary.LittleEndian.Uint32(b[o:])))
		default:
			n = int64(binary.LittleEndian.Uint64(b[o:]))
		}
		return float64(n), n
	}
}

// putNum writes element i of b: integers from n when isInt, else from f
// with NumPy's float→int cast (truncation).
func putNum(b []byte, d DType, i int, f float64, n int64, isInt bool) {
	o := i * d.Size
	if d.Kind == KindFloat {
		if isInt {
			f = float64(n)
		}
		putFloat(b[o:], f, d.Size)
		return
	}
	if !isInt {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			n = math.MinInt64
		} else if d.Kind == KindUint && f >= 1<<63 {
			n = int64(uint64(f))
		} else {
			n = int64(f)
		}
	}
	putUint(b[o:], uint64(n), d.Size)
}

func isIntKind(k Kind) bool { return k == KindInt || k == KindUint || k == KindBool }

// deltaFilter is numcodecs Delta: decode is a cumulative sum in dtype.
type deltaFilter struct{ dt, as DType }

func (f deltaFilter) encodedSize() int { return f.as.Size }
func (f deltaFilter) decode(dst, src []byte, n int) error {
	if len(src) < n*f.as.Size || len(dst) < n*f.dt.Size {
		return fmt.Errorf("delta: short buffer")
	}
	if isIntKind(f.dt.Kind) {
		var acc int64
		for i := 0; i < n; i++ {
			ef, en := getNum(src, f.as, i)
			if !isIntKind(f.as.Kind) {
				en = int64(ef)
			}
			acc += en
			putNum(dst, f.dt, i, 0, acc, true)
		}
		return nil
	}
	var acc64 float64
	var acc32 float32
	for i := 0; i < n; i++ {
		ef, _ := getNum(src, f.as, i)
		if f.dt.Size == 4 {
			acc32 += float32(ef)
			acc64 = float64(acc32)
		} else {
			acc64 += ef
		}
		putNum(dst, f.dt, i, acc64, 0, false)
	}
	return nil
}

// scaleOffsetFilter is numcodecs FixedScaleOffset: x = enc/scale + offset.
type scaleOffsetFilter struct {
	dt, as        DType
	scale, offset float64
}

func (f scaleOffsetFilter) encodedSize() int { return f.as.Size }
func (f scaleOffsetFilter) decode(dst, src []byte, n int) error {
	if len(src) < n*f.as.Size || len(dst) < n*f.dt.Size {
		return fmt.Errorf("fixedscaleoffset: short buffer")
	}
	for i := 0; i < n; i++ {
		ef, _ := getNum(src, f.as, i)
		putNum(dst, f.dt, i, ef/f.scale+f.offset, 0, false)
	}
	return nil
}

// astypeFilter is numcodecs AsType: a plain type conversion.
type astypeFilter struct{ dt, as DType }

func (f astypeFilter) encodedSize() int { return f.as.Size }
func (f astypeFilter) decode(dst, src []byte, n int) error {
	if len(src) < n*f.as.Size || len(dst) < n*f.dt.Size {
		return fmt.Errorf("astype: short buffer")
	}
	for i := 0; i < n; i++ {
		ef, en := getNum(src, f.as, i)
		putNum(dst, f.dt, i, ef, en, isIntKind(f.as.Kind) && isIntKind(f.dt.Kind))
	}
	return nil
}

// shuffleFilter is numcodecs Shuffle: bytes grouped by position within
// elements of elem bytes.
type shuffleFilter struct{ size, elem int }

func (f shuffleFilter) encodedSize() int { return f.size }
func (f shuffleFilter) decode(dst, src []byte, n int) error {
	total := n * f.size
	if len(src) < total || len(dst) < total {
		return fmt.Errorf("shuffle: short buffer")
	}
	count := total / f.elem
	for i := 0; i < count; i++ {
		for j := 0; j < f.elem; j++ {
			dst[i*f.elem+j] = src[j*count+i]
		}
	}
	copy(dst[count*f.elem:total], src[count*f.elem:total])
	return nil
}
