package zarr

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Kind is the family of a data type.
type Kind uint8

// The data type families this package reads.
const (
	KindInvalid Kind = iota
	KindBool
	KindInt
	KindUint
	KindFloat
	KindComplex
	KindDatetime  // numpy datetime64: int64 counts of Unit since the Unix epoch
	KindTimedelta // numpy timedelta64: int64 counts of Unit
	KindBytes     // fixed-width bytes, numpy "S<n>"
	KindUnicode   // fixed-width UTF-32 code points, numpy "U<n>"
)

var kindNames = [...]string{"invalid", "bool", "int", "uint", "float", "complex", "datetime64", "timedelta64", "bytes", "unicode"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// DType is an array's element type as stored. Read always delivers elements
// little-endian, so BigEndian only says how chunks are laid out on disk.
type DType struct {
	Kind Kind
	// Size is the element size in bytes (4 per code point for KindUnicode).
	Size int
	// BigEndian is the stored byte order of multi-byte elements.
	BigEndian bool
	// Unit and UnitScale qualify datetime/timedelta: UnitScale counts of Unit
	// ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
	// or "generic").
	Unit      string
	UnitScale int64
}

// maxFixedWidth bounds S/U widths from metadata so that a hostile dtype
// cannot demand huge elements.
const maxFixedWidth = 1 << 20

// ParseDType parses a NumPy type string as Zarr v2 metadata holds it, e.g.
// "<f4", ">i8", "|b1", "<M8[ns]", "<U6", "|S10".
func ParseDType(s string) (DType, error) {
	if len(s) < 2 {
		return DType{}, fmt.Errorf("dtype %q: too short", s)
	}
	var d DType
	switch s[0] {
	case '<', '|', '=':
	case '>':
		d.BigEndian = true
	default:
		return DType{}, fmt.Errorf("dtype %q: no byte order prefix (<, > or |)", s)
	}
	code, rest := s[1], s[2:]
	switch code {
	case 'b':
		d.Kind = KindBool
	case 'i':
		d.Kind = KindInt
	case 'u':
		d.Kind = KindUint
	case 'f':
		d.Kind = KindFloat
	case 'c':
		d.Kind = KindComplex
	case 'M', 'm':
		d.Kind = KindDatetime
		if code == 'm' {
			d.Kind = KindTimedelta
		}
		if !strings.HasPrefix(rest, "8") {
			return DType{}, fmt.Errorf("dtype %q: datetime/timedelta must be 8 bytes", s)
		}
		d.Size = 8
		unit := rest[1:]
		if unit == "" {
			d.Unit, d.UnitScale = "generic", 1
			break
		}
		if len(unit) < 3 || unit[0] != '[' || unit[len(unit)-1] != ']' {
			return DType{}, fmt.Errorf("dtype %q: bad time unit", s)
		}
		u, scale, err := parseTimeUnit(unit[1 : len(unit)-1])
		if err != nil {
			return DType{}, fmt.Errorf("dtype %q: %w", s, err)
		}
		d.Unit, d.UnitScale = u, scale
	case 'S', 'U':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > maxFixedWidth {
			return DType{}, fmt.Errorf("dtype %q: bad width", s)
		}
		d.Kind, d.Size = KindBytes, n
		if code == 'U' {
			d.Kind, d.Size = KindUnicode, 4*n
		}
	default:
		return DType{}, fmt.Errorf("dtype %q: unsupported type code %q", s, code)
	}
	if d.Size == 0 {
		n, err := strconv.Atoi(rest)
		if err != nil || !validNumericSize(d.Kind, n) {
			return DType{}, fmt.Errorf("dtype %q: unsupported size for %s", s, d.Kind)
		}
		d.Size = n
	}
	if d.Size == 1 || d.Kind == KindBytes {
		d.BigEndian = false
	}
	return d, nil
}

func validNumericSize(k Kind, n int) bool {
	switch k {
	case KindBool:
		return n == 1
	case KindInt, KindUint:
		return n == 1 || n == 2 || n == 4 || n == 8
	case KindFloat:
		return n == 2 || n == 4 || n == 8
	case KindComplex:
		return n == 8 || n == 16
	}
	return false
}

var timeUnits = map[string]bool{"Y": true, "M": true, "W": true, "D": true, "h": true, "m": true, "s": true,
	"ms": true, "us": true, "μs": true, "ns": true, "ps": true, "fs": true, "as": true, "generic": true}

// parseTimeUnit splits "10s" into ("s", 10).
func parseTimeUnit(s string) (string, int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	scale := int64(1)
	if i > 0 {
		v, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || v < 1 {
			return "", 0, fmt.Errorf("bad time unit scale %q", s)
		}
		scale = v
	}
	u := s[i:]
	if u == "μs" {
		u = "us"
	}
	if !timeUnits[u] {
		return "", 0, fmt.Errorf("unknown time unit %q", s)
	}
	return u, scale, nil
}

// parseV3DType parses a Zarr v3 data_type: a name, or an object with name
// and configuration (zarr-python's numpy.datetime64, fixed_length_utf32...).
func parseV3DType(name string, config map[string]any) (DType, error) {
	simple := map[string]DType{
		"bool": {Kind: KindBool, Size: 1},
		"int8": {Kind: KindInt, Size: 1}, "int16": {Kind: KindInt, Size: 2}, "int32": {Kind: KindInt, Size: 4}, "int64": {Kind: KindInt, Size: 8},
		"uint8": {Kind: KindUint, Size: 1}, "uint16": {Kind: KindUint, Size: 2}, "uint32": {Kind: KindUint, Size: 4}, "uint64": {Kind: KindUint, Size: 8},
		"float16": {Kind: KindFloat, Size: 2}, "float32": {Kind: KindFloat, Size: 4}, "float64": {Kind: KindFloat, Size: 8},
		"complex64": {Kind: KindComplex, Size: 8}, "complex128": {Kind: KindComplex, Size: 16},
	}
	if d, ok := simple[name]; ok {
		return d, nil
	}
	intConf := func(key string) (int64, error) {
		v, ok := config[key].(float64)
		if !ok || v != float64(int64(v)) || v < 1 || v > maxFixedWidth*4 {
			return 0, fmt.Errorf("data_type %q: configuration.%s missing or invalid", name, key)
		}
		return int64(v), nil
	}
	switch name {
	case "numpy.datetime64", "numpy.timedelta64":
		unit, _ := config["unit"].(string)
		scale, err := intConf("scale_factor")
		if err != nil {
			return DType{}, err
		}
		if !timeUnits[unit] {
			return DType{}, fmt.Errorf("data_type %q: unknown unit %q", name, unit)
		}
		k := KindDatetime
		if name == "numpy.timedelta64" {
			k = KindTimedelta
		}
		return DType{Kind: k, Size: 8, Unit: unit, UnitScale: scale}, nil
	case "fixed_length_utf32":
		n, err := intConf("length_bytes")
		if err != nil {
			return DType{}, err
		}
		if n%4 != 0 {
			return DType{}, fmt.Errorf("data_type %q: length_bytes %d not a multiple of 4", name, n)
		}
		return DType{Kind: KindUnicode, Size: int(n)}, nil
	case "null_terminated_bytes", "raw_bytes":
		n, err := intConf("length_bytes")
		if err != nil {
			return DType{}, err
		}
		return DType{Kind: KindBytes, Size: int(n)}, nil
	}
	if strings.HasPrefix(name, "r") {
		if n, err := strconv.Atoi(name[1:]); err == nil && n > 0 && n%8 == 0 && n/8 <= maxFixedWidth {
			return DType{Kind: KindBytes, Size: n / 8}, nil
		}
	}
	return DType{}, fmt.Errorf("unsupported data_type %q", name)
}

// String returns the NumPy type string of the stored type, e.g. "<f4",
// ">i2", "|b1", "<M8[ns]", "<U6".
func (d DType) String() string {
	order := "<"
	if d.BigEndian {
		order = ">"
	}
	switch d.Kind {
	case KindBool:
		return "|b1"
	case KindInt, KindUint:
		if d.Size == 1 {
			order = "|"
		}
		c := "i"
		if d.Kind == KindUint {
			c = "u"
		}
		return order + c + strconv.Itoa(d.Size)
	case KindFloat:
		return order + "f" + strconv.Itoa(d.Size)
	case KindComplex:
		return order + "c" + strconv.Itoa(d.Size)
	case KindDatetime, KindTimedelta:
		c := "M8"
		if d.Kind == KindTimedelta {
			c = "m8"
		}
		if d.Unit == "generic" || d.Unit == "" {
			return order + c
		}
		unit := d.Unit
		if d.UnitScale > 1 {
			unit = strconv.FormatInt(d.UnitScale, 10) + unit
		}
		return order + c + "[" + unit + "]"
	case KindBytes:
		return "|S" + strconv.Itoa(d.Size)
	case KindUnicode:
		return order + "U" + strconv.Itoa(d.Size/4)
	}
	return "invalid"
}

// LittleEndian returns the type as Read delivers it.
func (d DType) LittleEndian() DType {
	d.BigEndian = false
	return d
}

// swapUnit is the width of the byte-swapped units of an element: the
// element for numbers, each half of a complex, each code point of a string.
func (d DType) swapUnit() int {
	switch d.Kind {
	case KindComplex:
		return d.Size / 2
	case KindUnicode:
		return 4
	case KindBytes, KindBool:
		return 1
	}
	return d.Size
}

// ToLittleEndian byte-swaps b, whole elements of d as stored, in place when
// d is big-endian; it does nothing otherwise.
func (d DType) ToLittleEndian(b []byte) {
	if d.BigEndian {
		swapBytes(b, d.swapUnit())
	}
}

func swapBytes(b []byte, unit int) {
	switch unit {
	case 2:
		for i := 0; i+2 <= len(b); i += 2 {
			binary.LittleEndian.PutUint16(b[i:], bits.ReverseBytes16(binary.LittleEndian.Uint16(b[i:])))
		}
	case 4:
		for i := 0; i+4 <= len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], bits.ReverseBytes32(binary.LittleEndian.Uint32(b[i:])))
		}
	case 8:
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], bits.ReverseBytes64(binary.LittleEndian.Uint64(b[i:])))
		}
	}
}
