package zarr

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// NaT is the int64 that numpy and this package use for "not a time".
const NaT int64 = math.MinInt64

// Coord is a coordinate variable read whole, as stored.
type Coord struct {
	Name  string
	Dims  []string
	Shape []int64
	// DType is the stored type; Data holds its elements little-endian.
	DType DType
	Attrs map[string]any
	Data  []byte
	// cf is the packing of the coordinate's array.
	cf CFPacking
}

// maxCoordBytes bounds a coordinate read whole.
const maxCoordBytes = 1 << 30

// Coord reads the array name (a path relative to g) whole as a coordinate.
func (g *Group) Coord(ctx context.Context, name string) (Coord, error) {
	a, err := g.Array(name)
	if err != nil {
		return Coord{}, err
	}
	return ReadCoord(ctx, a)
}

// ReadCoord reads a whole as a coordinate.
func ReadCoord(ctx context.Context, a *Array) (Coord, error) {
	if n := a.NumElements() * int64(a.DType.Size); n > maxCoordBytes {
		return Coord{}, fmt.Errorf("%s: %d bytes is too large for a coordinate", a, n)
	}
	cf, err := a.CFPacking()
	if err != nil {
		return Coord{}, err
	}
	data, err := a.ReadAll(ctx)
	if err != nil {
		return Coord{}, err
	}
	return Coord{Name: a.Name, Dims: a.Dims, Shape: a.Shape, DType: a.DType.LittleEndian(), Attrs: a.Attrs, Data: data, cf: cf}, nil
}

// Len returns the number of elements.
func (c Coord) Len() int {
	if c.DType.Size == 0 {
		return 0
	}
	return len(c.Data) / c.DType.Size
}

// Float64s returns numeric values CF-decoded the way xarray shows them:
// _FillValue/missing_value become NaN, then scale_factor and add_offset
// apply. Datetimes and timedeltas give their raw counts (NaT as NaN).
func (c Coord) Float64s() ([]float64, error) {
	out := make([]float64, c.Len())
	if err := c.cf.Decode(c.DType, c.Data, out); err != nil {
		return nil, fmt.Errorf("coordinate %q: %w", c.Name, err)
	}
	return out, nil
}

// Int64s returns integer values as stored (datetime/timedelta counts
// included), without CF decoding.
func (c Coord) Int64s() ([]int64, error) {
	if !isIntKind(c.DType.Kind) && c.DType.Kind != KindDatetime && c.DType.Kind != KindTimedelta {
		return nil, fmt.Errorf("coordinate %q: dtype %s is not an integer type", c.Name, c.DType)
	}
	d := c.DType
	if d.Kind == KindDatetime || d.Kind == KindTimedelta {
		d = DType{Kind: KindInt, Size: 8}
	}
	out := make([]int64, c.Len())
	for i := range out {
		_, out[i] = getNum(c.Data, d, i)
	}
	return out, nil
}

// Strings returns fixed-width unicode or bytes values, trailing NULs
// removed.
func (c Coord) Strings() ([]string, error) {
	out := make([]string, c.Len())
	size := c.DType.Size
	switch c.DType.Kind {
	case KindUnicode:
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
	case KindBytes:
		for i := range out {
			out[i] = strings.TrimRight(string(c.Data[i*size:(i+1)*size]), "\x00")
		}
	default:
		return nil, fmt.Errorf("coordinate %q: dtype %s is not a string type", c.Name, c.DType)
	}
	return out, nil
}

// IsTime reports whether the coordinate holds instants: a datetime64
// dtype or CF "<unit> since <date>" units.
func (c Coord) IsTime() bool {
	if c.DType.Kind == KindDatetime {
		return true
	}
	u, _ := c.Attrs["units"].(string)
	return strings.Contains(u, " since ")
}

// Times returns the instants as ns since the Unix epoch (NaT for missing):
// datetime64 values converted from their unit, or CF-encoded numbers
// decoded with their units and calendar.
func (c Coord) Times() ([]int64, error) {
	out := make([]int64, c.Len())
	if c.DType.Kind == KindDatetime || c.DType.Kind == KindTimedelta {
		for i := range out {
			v := int64(binary.LittleEndian.Uint64(c.Data[8*i:]))
			ns, err := timeUnitToNS(v, c.DType)
			if err != nil {
				return nil, fmt.Errorf("coordinate %q: %w", c.Name, err)
			}
			out[i] = ns
		}
		return out, nil
	}
	units, _ := c.Attrs["units"].(string)
	calendar, _ := c.Attrs["calendar"].(string)
	ct, err := ParseCFTime(units, calendar)
	if err != nil {
		return nil, fmt.Errorf("coordinate %q: %w", c.Name, err)
	}
	vals, err := c.Float64s()
	if err != nil {
		return nil, err
	}
	exact := isIntKind(c.DType.Kind) && c.cf.Scale == 1 && c.cf.Offset == 0
	var ints []int64
	if exact {
		ints, _ = c.Int64s()
	}
	for i, v := range vals {
		if exact && !math.IsNaN(v) {
			out[i], err = ct.IntToNS(ints[i])
		} else {
			out[i], err = ct.ToNS(v)
		}
		if err != nil {
			return nil, fmt.Errorf("coordinate %q: element %d: %w", c.Name, i, err)
		}
	}
	return out, nil
}

// Durations returns timedelta values as ns: a timedelta64 dtype, or
// numbers with time units such as "hours" (forecast steps).
func (c Coord) Durations() ([]int64, error) {
	if c.DType.Kind == KindTimedelta {
		return c.Times()
	}
	units, _ := c.Attrs["units"].(string)
	unit, ok := cfUnitNS(units)
	if !ok {
		return nil, fmt.Errorf("coordinate %q: units %q are not a time unit", c.Name, units)
	}
	vals, err := c.Float64s()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		if math.IsNaN(v) {
			out[i] = NaT
			continue
		}
		ns := math.Round(v * float64(unit))
		if math.Abs(ns) >= 1<<63 {
			return nil, fmt.Errorf("coordinate %q: element %d: %v %s overflows int64 ns", c.Name, i, v, units)
		}
		out[i] = int64(ns)
	}
	return out, nil
}

func timeUnitToNS(v int64, d DType) (int64, error) {
	if v == NaT {
		return NaT, nil
	}
	unit, ok := unitNS(d.Unit)
	if !ok {
		switch d.Unit {
		case "ps", "fs", "as":
			div := map[string]int64{"ps": 1e3, "fs": 1e6, "as": 1e9}[d.Unit]
			return v * d.UnitScale / div, nil
		case "Y", "M":
			if d.Kind != KindDatetime {
				return 0, fmt.Errorf("timedelta in %s: no fixed length", d.Unit)
			}
			months := v * d.UnitScale
			if d.Unit == "Y" {
				months *= 12
			}
			if months > 12*300 || months < -12*300 {
				return 0, fmt.Errorf("%d %s overflows int64 ns", v, d.Unit)
			}
			// time.Date normalises months beyond 1..12 into years.
			return time.Date(1970, time.Month(1+months), 1, 0, 0, 0, 0, time.UTC).UnixNano(), nil
		}
		return 0, fmt.Errorf("dtype %s: unit %q has no ns conversion", d, d.Unit)
	}
	unit *= d.UnitScale
	if v > math.MaxInt64/unit || v < math.MinInt64/unit+1 {
		return 0, fmt.Errorf("%d %s overflows int64 ns", v, d.Unit)
	}
	return v * unit, nil
}

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
		if (dt.Kind == KindDatetime || dt.Kind == KindTimedelta) && n == NaT {
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

// CFTime is a parsed CF time encoding: "<unit> since <reference>".
type CFTime struct {
	UnitNS int64 // one unit in ns
	RefNS  int64 // the reference instant, ns since the Unix epoch
}

// ParseCFTime parses CF time units and calendar. Only the calendars that
// agree with numpy's proleptic Gregorian datetime64 for modern dates are
// accepted: standard, gregorian, proleptic_gregorian (or none).
func ParseCFTime(units, calendar string) (CFTime, error) {
	switch strings.ToLower(calendar) {
	case "", "standard", "gregorian", "proleptic_gregorian":
	default:
		return CFTime{}, fmt.Errorf("CF time calendar %q: unsupported (want standard, gregorian or proleptic_gregorian)", calendar)
	}
	unitStr, refStr, ok := strings.Cut(strings.TrimSpace(units), " since ")
	if !ok {
		return CFTime{}, fmt.Errorf("CF time units %q: want \"<unit> since <date>\"", units)
	}
	unit, ok := cfUnitNS(unitStr)
	if !ok {
		return CFTime{}, fmt.Errorf("CF time units %q: unknown unit %q", units, unitStr)
	}
	ref, err := parseCFDate(strings.TrimSpace(refStr))
	if err != nil {
		return CFTime{}, fmt.Errorf("CF time units %q: %w", units, err)
	}
	return CFTime{UnitNS: unit, RefNS: ref}, nil
}

func cfUnitNS(s string) (int64, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "days", "day", "d":
		return 86400e9, true
	case "hours", "hour", "hr", "hrs", "h":
		return 3600e9, true
	case "minutes", "minute", "min", "mins":
		return 60e9, true
	case "seconds", "second", "sec", "secs", "s":
		return 1e9, true
	case "milliseconds", "millisecond", "msec", "msecs", "ms":
		return 1e6, true
	case "microseconds", "microsecond", "usec", "usecs", "us":
		return 1e3, true
	case "nanoseconds", "nanosecond", "nsec", "nsecs", "ns":
		return 1, true
	}
	return 0, false
}

// parseCFDate parses a CF reference date such as "1900-01-01",
// "2024-06-03 00:00:00", "2020-03-26T21:28:01.615000" or with a zone
// ("+00:00", "Z", " UTC").
func parseCFDate(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), " UTC")
	s = strings.Replace(s, "T", " ", 1)
	layouts := []string{
		"2006-1-2 15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999 Z07:00", "2006-1-2 15:4:5.999999999Z", "2006-1-2 15:4:5.999999999",
		"2006-1-2 15:4Z07:00", "2006-1-2 15:4", "2006-1-2 15", "2006-1-2",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			if t.Year() < 1678 || t.Year() > 2261 {
				return 0, fmt.Errorf("reference date %q: outside the int64 ns range", s)
			}
			return t.UnixNano(), nil
		}
	}
	return 0, fmt.Errorf("reference date %q: unrecognised format", s)
}

// ToNS converts a value in the encoding to ns since the Unix epoch; NaN is NaT.
func (t CFTime) ToNS(v float64) (int64, error) {
	if math.IsNaN(v) {
		return NaT, nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return t.IntToNS(int64(v))
	}
	ns := math.Round(v*float64(t.UnitNS)) + float64(t.RefNS)
	if math.Abs(ns) >= 1<<63 {
		return 0, fmt.Errorf("time %v overflows int64 ns", v)
	}
	return int64(ns), nil
}

// IntToNS converts an integer value exactly.
func (t CFTime) IntToNS(v int64) (int64, error) {
	if v != 0 && (v > math.MaxInt64/t.UnitNS || v < math.MinInt64/t.UnitNS) {
		return 0, fmt.Errorf("time %d overflows int64 ns", v)
	}
	ns := v * t.UnitNS
	sum := ns + t.RefNS
	if (t.RefNS > 0 && sum < ns) || (t.RefNS < 0 && sum > ns) {
		return 0, fmt.Errorf("time %d overflows int64 ns", v)
	}
	return sum, nil
}
