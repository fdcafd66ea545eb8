package zarr

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// CFPacking is a variable's CF packing: values equal to one of Fill are
// missing, the rest decode as stored*Scale + Offset.
type CFPacking struct {
	Scale, Offset float64
	Fill          []float64
}

// CFPacking returns the packing from the array's attributes, the way
// xarray reads it: scale_factor, add_offset, _FillValue and missing_value,
// and for v2 arrays the array's fill_value (xarray masks it too). In v3
// xarray stores a float _FillValue as base64 of a little-endian float64.
func (a *Array) CFPacking() (CFPacking, error) {
	p := CFPacking{Scale: 1}
	var err error
	if v, ok := a.Attrs["scale_factor"]; ok {
		if p.Scale, err = attrFloat(v); err != nil {
			return p, a.errorf("attribute scale_factor: %w", err)
		}
	}
	if v, ok := a.Attrs["add_offset"]; ok {
		if p.Offset, err = attrFloat(v); err != nil {
			return p, a.errorf("attribute add_offset: %w", err)
		}
	}
	addFill := func(name string, v any) error {
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		for _, x := range vals {
			if s, isStr := x.(string); isStr && a.ZarrFormat == 3 && a.DType.Kind == KindFloat {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 8 {
					p.Fill = append(p.Fill, math.Float64frombits(binary.LittleEndian.Uint64(b)))
					continue
				}
			}
			f, err := attrFloat(x)
			if err != nil {
				return a.errorf("attribute %s: %w", name, err)
			}
			p.Fill = append(p.Fill, f)
		}
		return nil
	}
	if v, ok := a.Attrs["_FillValue"]; ok && v != nil {
		if err := addFill("_FillValue", v); err != nil {
			return p, err
		}
	}
	if v, ok := a.Attrs["missing_value"]; ok && v != nil {
		if err := addFill("missing_value", v); err != nil {
			return p, err
		}
	}
	if a.ZarrFormat == 2 && a.fillSet && numericKind(a.DType.Kind) {
		f, _ := getNum(a.Fill, a.DType.LittleEndian(), 0)
		p.Fill = append(p.Fill, f)
	}
	return p, nil
}

func attrFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("%v (%T) is not a number", v, v)
}

// Decode turns stored elements of dt (little-endian) into float64: fill
// values become NaN, the rest value*Scale+Offset.
func (p CFPacking) Decode(dt DType, src []byte, dst []float64) error {
	if !numericKind(dt.Kind) && dt.Kind != KindDatetime && dt.Kind != KindTimedelta {
		return fmt.Errorf("dtype %s is not numeric", dt)
	}
	d := dt.LittleEndian()
	if d.Kind == KindDatetime || d.Kind == KindTimedelta {
		d = DType{Kind: KindInt, Size: 8}
	}
	if len(src) < len(dst)*d.Size {
		return fmt.Errorf("%d bytes for %d elements of %s", len(src), len(dst), dt)
	}
	for i := range dst {
		f, n := getNum(src, d, i)
		if (dt.Kind == KindDatetime || dt.Kind == KindTimedelta) && n == math.MinInt64 { // NaT
			dst[i] = math.NaN()
			continue
		}
		missing := false
		for _, fv := range p.Fill {
			if f == fv {
				missing = true
				break
			}
		}
		if missing {
			dst[i] = math.NaN()
			continue
		}
		dst[i] = f*p.Scale + p.Offset
	}
	return nil
}

// DecodeCF decodes raw stored elements of a (as Read returns them) into
// float64 with the array's CF packing.
func DecodeCF(a *Array, raw []byte) ([]float64, error) {
	p, err := a.CFPacking()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(raw)/a.DType.Size)
	if err := p.Decode(a.DType, raw, out); err != nil {
		return nil, a.errorf("CF decoding: %w", err)
	}
	return out, nil
}
