package zarr

import (
	"encoding/binary"
	"fmt"
	"math"
)

// arrayToArrayCodec is one array→array step of a chain: a transpose (v3
// transpose, v2 order "F") or a numcodecs filter.
type arrayToArrayCodec interface {
	describe() string
	// encodedType is the type of the elements it encodes elements of
	// type decoded to.
	encodedType(decoded DType) DType
	// decode writes into dst the chunk of shape, of decodedSize-byte
	// elements, that src encodes. It may scramble src.
	decode(dst, src []byte, shape []int64, decodedSize int) error
}

// transposeCodec is the v3 transpose and v2 order "F": encoded axis i is
// decoded axis perm[i].
type transposeCodec struct {
	perm []int
	desc string
}

func newTransposeCodec(conf map[string]any, _ DType, shape []int64) (arrayToArrayCodec, error) {
	perm, err := parsePerm(conf["order"], len(shape))
	if err != nil {
		return nil, fmt.Errorf("codec transpose: %w", err)
	}
	return transposeCodec{perm: perm, desc: fmt.Sprintf("transpose%v", perm)}, nil
}

func (t transposeCodec) describe() string          { return t.desc }
func (t transposeCodec) encodedType(d DType) DType { return d }
func (t transposeCodec) decode(dst, src []byte, shape []int64, size int) error {
	transposeDecode(dst, src, shape, t.perm, size)
	return nil
}

// elementFilter is a numcodecs filter: it decodes n elements of its
// encoded type (little-endian) into its decoded type (little-endian).
type elementFilter interface {
	// types are the encoded and decoded element types; byte-level filters
	// give zero DTypes.
	types() (encoded, decoded DType)
	decode(dst, src []byte, n int) error
}

// filterCodec adapts an elementFilter to the chain, in the byte orders its
// types name: numcodecs filters read and write their dtype's byte order
// (Delta(dtype=">i2") on a ">i2" array sums big-endian integers).
type filterCodec struct {
	f    elementFilter
	desc string
}

func (c filterCodec) describe() string { return c.desc }
func (c filterCodec) encodedType(d DType) DType {
	if enc, _ := c.f.types(); enc.Size != 0 {
		return enc
	}
	return d
}
func (c filterCodec) decode(dst, src []byte, shape []int64, _ int) error {
	n := 1
	for _, s := range shape {
		n *= int(s)
	}
	enc, dec := c.f.types()
	if len(src) < n*enc.Size || len(dst) < n*dec.Size {
		return fmt.Errorf("short buffer")
	}
	enc.ToLittleEndian(src[:n*enc.Size])
	if err := c.f.decode(dst, src, n); err != nil {
		return err
	}
	dec.ToLittleEndian(dst[:n*dec.Size]) // a swap: back to big-endian
	return nil
}

// filterType reads the numcodecs dtype of a filter's configuration entry
// key, def when absent.
func filterType(name string, conf map[string]any, key string, def DType) (DType, error) {
	s, ok := conf[key].(string)
	if !ok {
		return def, nil
	}
	if s != "" && s[0] != '<' && s[0] != '>' && s[0] != '|' && s[0] != '=' {
		s = "<" + s // numcodecs accepts NumPy's short names, "f8"
	}
	d, err := ParseDType(s)
	if err != nil {
		return DType{}, fmt.Errorf("filter %q %s: %w", name, key, err)
	}
	if !numericKind(d.Kind) {
		return DType{}, fmt.Errorf("filter %q %s %s: unsupported", name, key, d)
	}
	return d, nil
}

// filterTypes reads a filter's decoded type (dtKey, the array's type by
// default) and encoded type (asKey, the decoded type by default).
func filterTypes(name string, conf map[string]any, dtKey, asKey string, array DType) (dt, as DType, err error) {
	if dt, err = filterType(name, conf, dtKey, array); err != nil {
		return dt, as, err
	}
	as, err = filterType(name, conf, asKey, dt)
	return dt, as, err
}

func identityOnRead(map[string]any, DType, []int64) (arrayToArrayCodec, error) { return nil, nil }

func newDeltaCodec(conf map[string]any, array DType, _ []int64) (arrayToArrayCodec, error) {
	dt, as, err := filterTypes("delta", conf, "dtype", "astype", array)
	if err != nil {
		return nil, err
	}
	if dt.Size != array.Size || dt.Kind != array.Kind {
		return nil, fmt.Errorf("filter delta dtype %s differs from the array's %s", dt, array)
	}
	return filterCodec{deltaFilter{dt: dt, as: as}, describeConf("delta", conf, "dtype", "astype")}, nil
}

func newScaleOffsetCodec(conf map[string]any, array DType, _ []int64) (arrayToArrayCodec, error) {
	dt, as, err := filterTypes("fixedscaleoffset", conf, "dtype", "astype", array)
	if err != nil {
		return nil, err
	}
	if dt.Size != array.Size || dt.Kind != array.Kind {
		return nil, fmt.Errorf("filter fixedscaleoffset dtype %s differs from the array's %s", dt, array)
	}
	scale, _ := conf["scale"].(float64)
	offset, _ := conf["offset"].(float64)
	if scale == 0 {
		return nil, fmt.Errorf("filter fixedscaleoffset: scale missing or zero")
	}
	return filterCodec{scaleOffsetFilter{dt: dt, as: as, scale: scale, offset: offset},
		describeConf("fixedscaleoffset", conf, "scale", "offset", "astype")}, nil
}

func newAsTypeCodec(conf map[string]any, array DType, _ []int64) (arrayToArrayCodec, error) {
	dt, as, err := filterTypes("astype", conf, "decode_dtype", "encode_dtype", array)
	if err != nil {
		return nil, err
	}
	return filterCodec{astypeFilter{dt: dt, as: as}, describeConf("astype", conf, "encode_dtype")}, nil
}

func newShuffleFilter(conf map[string]any, array DType, _ []int64) (arrayToArrayCodec, error) {
	es, err := shuffleElementSize(conf)
	if err != nil {
		return nil, err
	}
	return filterCodec{shuffleFilter{size: array.Size, elem: es}, describeConf("shuffle", conf, "elementsize")}, nil
}

func shuffleElementSize(conf map[string]any) (int, error) {
	es, _ := conf["elementsize"].(float64)
	if es < 1 || es > 1<<16 || es != math.Trunc(es) {
		return 0, fmt.Errorf("shuffle: bad elementsize %v", conf["elementsize"])
	}
	return int(es), nil
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

func (f deltaFilter) types() (DType, DType) { return f.as, f.dt }
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

func (f scaleOffsetFilter) types() (DType, DType) { return f.as, f.dt }
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

func (f astypeFilter) types() (DType, DType) { return f.as, f.dt }
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

func (f shuffleFilter) types() (DType, DType) { return DType{}, DType{} }
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
