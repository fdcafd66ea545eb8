package zarr

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseFill turns a metadata fill_value into one little-endian element of
// dt. A null fill (v2 arrays written without one) reads as zeros, which is
// what zarr-python 3 returns for missing chunks of such arrays.
func parseFill(raw json.RawMessage, dt DType, zarrFormat int) ([]byte, error) {
	out := make([]byte, dt.Size)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(sanitizeJSON(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("fill_value %s: %w", raw, err)
	}
	if err := encodeFill(out, v, dt, zarrFormat); err != nil {
		return nil, fmt.Errorf("fill_value %s for dtype %s: %w", raw, dt, err)
	}
	return out, nil
}

func encodeFill(out []byte, v any, dt DType, zarrFormat int) error {
	switch dt.Kind {
	case KindBool:
		switch x := v.(type) {
		case bool:
			if x {
				out[0] = 1
			}
			return nil
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return err
			}
			if f != 0 {
				out[0] = 1
			}
			return nil
		}
	case KindInt, KindUint, KindDatetime, KindTimedelta:
		var u uint64
		switch x := v.(type) {
		case json.Number:
			s := string(x)
			if dt.Kind == KindUint {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					f, ferr := strconv.ParseFloat(s, 64)
					if ferr != nil || f != math.Trunc(f) || f < 0 || f >= 1<<64 {
						return err
					}
					n = uint64(f)
				}
				u = n
			} else {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					f, ferr := strconv.ParseFloat(s, 64)
					if ferr != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
						return err
					}
					n = int64(f)
				}
				u = uint64(n)
			}
		case string:
			if (dt.Kind == KindDatetime || dt.Kind == KindTimedelta) && x == "NaT" {
				u = 1 << 63
				break
			}
			if b, ok := hexBits(x, dt.Size); ok {
				copy(out, b)
				return nil
			}
			return fmt.Errorf("unexpected string")
		default:
			return fmt.Errorf("unexpected %T", v)
		}
		if !fitsInt(u, dt) {
			return fmt.Errorf("out of range")
		}
		putUint(out, u, dt.Size)
		return nil
	case KindFloat:
		f, err := fillFloat(v, dt.Size, out)
		if err != nil || f == nil {
			return err
		}
		putFloat(out, *f, dt.Size)
		return nil
	case KindComplex:
		parts, ok := v.([]any)
		if !ok || len(parts) != 2 {
			// zarr-python 2 writes a complex fill as one number for the real part.
			parts = []any{v, json.Number("0")}
		}
		half := dt.Size / 2
		for i, p := range parts {
			f, err := fillFloat(p, half, out[i*half:(i+1)*half])
			if err != nil {
				return err
			}
			if f != nil {
				putFloat(out[i*half:], *f, half)
			}
		}
		return nil
	case KindBytes:
		s, ok := v.(string)
		if !ok {
			if n, isNum := v.(json.Number); isNum && n == "0" {
				return nil
			}
			return fmt.Errorf("unexpected %T", v)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if zarrFormat == 3 {
				b = []byte(s)
			} else {
				return err
			}
		}
		copy(out, b)
		return nil
	case KindUnicode:
		s, ok := v.(string)
		if !ok {
			if n, isNum := v.(json.Number); isNum && n == "0" {
				return nil
			}
			return fmt.Errorf("unexpected %T", v)
		}
		i := 0
		for _, r := range s {
			if i+4 > len(out) {
				break
			}
			binary.LittleEndian.PutUint32(out[i:], uint32(r))
			i += 4
		}
		return nil
	}
	return fmt.Errorf("unsupported fill %T", v)
}

// fillFloat parses a float fill; for a "0x..." bit pattern it writes the
// bits into out itself and returns nil.
func fillFloat(v any, size int, out []byte) (*float64, error) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(x), 64); err != nil {
			return nil, err
		}
	case string:
		switch x {
		case "NaN", "nan":
			f = math.NaN()
		case "Infinity", "inf":
			f = math.Inf(1)
		case "-Infinity", "-inf":
			f = math.Inf(-1)
		default:
			b, ok := hexBits(x, size)
			if !ok {
				return nil, fmt.Errorf("unknown float fill %q", x)
			}
			copy(out, b)
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("unexpected %T", v)
	}
	return &f, nil
}

// hexBits decodes a v3 "0x7fc00000" fill: the element's bits, big-endian
// as written, returned little-endian.
func hexBits(s string, size int) ([]byte, bool) {
	if !strings.HasPrefix(s, "0x") || len(s) > 2+2*size || len(s) == 2 {
		return nil, false
	}
	u, err := strconv.ParseUint(s[2:], 16, 64)
	if err != nil {
		return nil, false
	}
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, u)
	return b[:size], true
}

func fitsInt(u uint64, dt DType) bool {
	bitsN := uint(dt.Size * 8)
	if bitsN == 64 {
		return true
	}
	if dt.Kind == KindUint {
		return u < 1<<bitsN
	}
	n := int64(u)
	return n >= -(1<<(bitsN-1)) && n < 1<<(bitsN-1)
}

func putUint(out []byte, u uint64, size int) {
	switch size {
	case 1:
		out[0] = byte(u)
	case 2:
		binary.LittleEndian.PutUint16(out, uint16(u))
	case 4:
		binary.LittleEndian.PutUint32(out, uint32(u))
	case 8:
		binary.LittleEndian.PutUint64(out, u)
	}
}

func putFloat(out []byte, f float64, size int) {
	switch size {
	case 2:
		binary.LittleEndian.PutUint16(out, float32ToHalf(float32(f)))
	case 4:
		binary.LittleEndian.PutUint32(out, math.Float32bits(float32(f)))
	case 8:
		binary.LittleEndian.PutUint64(out, math.Float64bits(f))
	}
}

// float32ToHalf rounds to the nearest IEEE binary16, keeping NaN and ±Inf.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b >> 23) & 0xff)
	mant := b & 0x7fffff
	switch {
	case exp == 0xff:
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15:
		return sign | 0x7c00
	case exp-127 >= -14:
		e := uint32(exp-127+15) << 10
		m := mant >> 13
		h := uint32(sign) | e | m
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
			h++
		}
		return uint16(h)
	case exp-127 >= -25:
		mant |= 0x800000
		shift := uint(-14 - (exp - 127) + 13)
		m := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	return sign
}

// halfToFloat64 widens an IEEE binary16.
func halfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}
