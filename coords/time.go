package coords

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// TimeUnits is a parsed CF time encoding: "<unit> since <reference>".
type TimeUnits struct {
	UnitNS int64 // one unit in ns
	RefNS  int64 // the reference instant, ns since the Unix epoch
}

// ParseTimeUnits parses CF time units and calendar. The calendars are
// those xarray decodes to datetime64 by default: standard, gregorian and
// proleptic_gregorian (or none); others (noleap, 360_day, julian, ...)
// decode to cftime objects there and are refused here.
func ParseTimeUnits(units, calendar string) (TimeUnits, error) {
	// Reference dates before 1678 (where the standard calendar would be
	// Julian) are outside datetime64[ns] and refused by parseCFDate.
	switch strings.ToLower(strings.TrimSpace(calendar)) {
	case "", "standard", "gregorian", "proleptic_gregorian":
	default:
		return TimeUnits{}, fmt.Errorf("CF time calendar %q: unsupported (xarray decodes it to cftime objects, not datetime64; want standard, gregorian or proleptic_gregorian)", calendar)
	}
	unitStr, refStr, ok := strings.Cut(strings.TrimSpace(units), " since ")
	if !ok {
		return TimeUnits{}, fmt.Errorf("CF time units %q: want \"<unit> since <date>\"", units)
	}
	unit, err := ParseDurationUnit(unitStr)
	if err != nil {
		return TimeUnits{}, fmt.Errorf("CF time units %q: %w", units, err)
	}
	ref, err := parseCFDate(strings.TrimSpace(refStr))
	if err != nil {
		return TimeUnits{}, fmt.Errorf("CF time units %q: %w", units, err)
	}
	return TimeUnits{UnitNS: unit, RefNS: ref}, nil
}

// ParseDurationUnit returns the length in ns of a CF (udunits) time unit,
// every spelling cftime accepts: "days", "day", "d", "hours", "hrs", "h",
// "minutes", "mins", "min", "seconds", "secs", "s", and the sub-second
// units; case does not matter. Months and years have no fixed length.
func ParseDurationUnit(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "days", "day", "d":
		return 86400e9, nil
	case "hours", "hour", "hr", "hrs", "h":
		return 3600e9, nil
	case "minutes", "minute", "min", "mins":
		return 60e9, nil
	case "seconds", "second", "sec", "secs", "s":
		return 1e9, nil
	case "milliseconds", "millisecond", "millisec", "millisecs", "msec", "msecs", "ms":
		return 1e6, nil
	case "microseconds", "microsecond", "microsec", "microsecs", "usec", "usecs", "us":
		return 1e3, nil
	case "nanoseconds", "nanosecond", "nanosec", "nanosecs", "nsec", "nsecs", "ns":
		return 1, nil
	case "months", "month", "years", "year", "common_years", "common_year":
		return 0, fmt.Errorf("unit %q has no fixed length", s)
	}
	return 0, fmt.Errorf("unknown time unit %q", s)
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

// IntToNS converts an integer count of units exactly.
func (t TimeUnits) IntToNS(v int64) (int64, error) {
	if v != 0 && (v > math.MaxInt64/t.UnitNS || v < math.MinInt64/t.UnitNS+1) {
		return 0, fmt.Errorf("time %d overflows int64 ns", v)
	}
	ns := v * t.UnitNS
	sum := ns + t.RefNS
	if (t.RefNS > 0 && sum < ns) || (t.RefNS < 0 && sum > ns) || sum == NaT {
		return 0, fmt.Errorf("time %d overflows int64 ns", v)
	}
	return sum, nil
}

// floatToNS converts a (possibly fractional) count of units; NaN is NaT.
// Integral values convert exactly.
func (t TimeUnits) floatToNS(v float64) (int64, error) {
	if math.IsNaN(v) {
		return NaT, nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return t.IntToNS(int64(v))
	}
	ns := math.Round(v*float64(t.UnitNS)) + float64(t.RefNS)
	if math.IsInf(v, 0) || math.Abs(ns) >= 1<<63 {
		return 0, fmt.Errorf("time %v overflows int64 ns", v)
	}
	return int64(ns), nil
}

// IsTime reports whether the coordinate holds instants: a datetime64
// dtype or CF "<unit> since <date>" units.
func (c Coord) IsTime() bool {
	if c.DType.Kind == zarr.KindDatetime {
		return true
	}
	u, _ := c.Attrs["units"].(string)
	return strings.Contains(u, " since ")
}

// IsDuration reports whether the coordinate holds time spans: a
// timedelta64 dtype, or numbers xarray decodes to timedelta64 (it writes
// their decoded type in the "dtype" attribute).
func (c Coord) IsDuration() bool {
	if c.DType.Kind == zarr.KindTimedelta {
		return true
	}
	enc, _ := c.Attrs["dtype"].(string)
	return strings.HasPrefix(enc, "timedelta64") && numeric(c.DType)
}

func numeric(d zarr.DType) bool {
	return d.Kind == zarr.KindInt || d.Kind == zarr.KindUint || d.Kind == zarr.KindFloat
}

// Times returns the instants as ns since the Unix epoch (NaT for missing):
// datetime64 values converted from their unit, or CF-encoded numbers
// decoded with their units and calendar. Times decoded through floats are
// rounded to the axis' own precision (see roundToPrecision).
func (c Coord) Times() ([]int64, error) {
	if c.DType.Kind == zarr.KindDatetime || c.DType.Kind == zarr.KindTimedelta {
		return c.datetimes()
	}
	units, _ := c.Attrs["units"].(string)
	calendar, _ := c.Attrs["calendar"].(string)
	tu, err := ParseTimeUnits(units, calendar)
	if err != nil {
		return nil, fmt.Errorf("coordinate %q: %w", c.Name, err)
	}
	return c.counts(tu, units)
}

// Durations returns time spans as ns (NaT for missing): a timedelta64
// dtype, or numbers with time units such as "hours" (forecast steps).
func (c Coord) Durations() ([]int64, error) {
	if c.DType.Kind == zarr.KindTimedelta {
		return c.datetimes()
	}
	units, _ := c.Attrs["units"].(string)
	unit, err := ParseDurationUnit(units)
	if err != nil {
		return nil, fmt.Errorf("coordinate %q: units: %w", c.Name, err)
	}
	return c.counts(TimeUnits{UnitNS: unit}, units)
}

// counts decodes numbers in units tu: integers exactly, floats (and packed
// integers) rounded to the axis' precision.
func (c Coord) counts(tu TimeUnits, units string) ([]int64, error) {
	out := make([]int64, c.Len())
	if ints, missing, ok := c.exactInts(); ok {
		for i, v := range ints {
			if missing[i] {
				out[i] = NaT
				continue
			}
			ns, err := tu.IntToNS(v)
			if err != nil {
				return nil, fmt.Errorf("coordinate %q: element %d (%q): %w", c.Name, i, units, err)
			}
			out[i] = ns
		}
		return out, nil
	}
	vals, err := c.Float64s()
	if err != nil {
		return nil, err
	}
	tol := int64(1)
	for i, v := range vals {
		if out[i], err = tu.floatToNS(v); err != nil {
			return nil, fmt.Errorf("coordinate %q: element %d (%q): %w", c.Name, i, units, err)
		}
		if !math.IsNaN(v) {
			// What the float can be off by: its own ulp in units, and the
			// ulp of the product in ns.
			var ulp float64
			if c.DType.Kind == zarr.KindFloat && c.DType.Size <= 4 {
				// Stored as float32 (or float16): its own, coarser ulp.
				f := float32(math.Abs(v))
				ulp = float64(math.Nextafter32(f, float32(math.Inf(1)))-f) * float64(tu.UnitNS)
			} else {
				ulp = (math.Nextafter(math.Abs(v), math.Inf(1)) - math.Abs(v)) * float64(tu.UnitNS)
			}
			ulp += math.Abs(v*float64(tu.UnitNS)) * 0x1p-52
			tol = max(tol, int64(math.Ceil(2*ulp)))
		}
	}
	roundToPrecision(out, tol)
	return out, nil
}

// precisions are the candidate precisions of a time axis, coarsest first.
var precisions = []int64{86400e9, 3600e9, 60e9, 1e9, 1e6, 1e3}

// roundToPrecision rounds times decoded through floats to the coarsest
// precision (day, hour, minute, second, ms, µs; multiples since the Unix
// epoch) that every time is within tol ns of: "days since 1900-01-01" as
// float64 decodes a 5-minute series a few hundred ns off the minute, which
// would otherwise read as gaps. A precision no coarser than 4·tol says
// nothing, so it is never chosen.
func roundToPrecision(ts []int64, tol int64) {
	for _, q := range precisions {
		if q < 4*tol {
			return
		}
		fits := true
		for _, t := range ts {
			if t == NaT {
				continue
			}
			if r := floorMod(t, q); r > tol && q-r > tol {
				fits = false
				break
			}
		}
		if !fits {
			continue
		}
		for i, t := range ts {
			if t == NaT {
				continue
			}
			r := floorMod(t, q)
			if r <= tol {
				ts[i] = t - r
			} else {
				ts[i] = t + (q - r)
			}
		}
		return
	}
}

func floorMod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// datetimes converts datetime64/timedelta64 counts from their dtype unit.
func (c Coord) datetimes() ([]int64, error) {
	out := make([]int64, c.Len())
	for i := range out {
		v := int64(binary.LittleEndian.Uint64(c.Data[8*i:]))
		ns, err := dtypeUnitToNS(v, c.DType)
		if err != nil {
			return nil, fmt.Errorf("coordinate %q: element %d: %w", c.Name, i, err)
		}
		out[i] = ns
	}
	return out, nil
}

// dtypeUnitNS is the length in ns of a numpy datetime64/timedelta64 unit;
// months and years have none.
var dtypeUnitNS = map[string]int64{
	"W": 7 * 86400e9, "D": 86400e9, "h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1,
}

func dtypeUnitToNS(v int64, d zarr.DType) (int64, error) {
	if v == NaT {
		return NaT, nil
	}
	scale := max(d.UnitScale, 1)
	unit, ok := dtypeUnitNS[d.Unit]
	if !ok {
		switch d.Unit {
		case "ps", "fs", "as":
			div := map[string]int64{"ps": 1e3, "fs": 1e6, "as": 1e9}[d.Unit]
			if v > math.MaxInt64/scale || v < math.MinInt64/scale+1 {
				return 0, fmt.Errorf("%d %s overflows int64", v, d.Unit)
			}
			return v * scale / div, nil
		case "Y", "M":
			if d.Kind != zarr.KindDatetime {
				return 0, fmt.Errorf("timedelta in %s: no fixed length", d.Unit)
			}
			if v > 12*300 || v < -12*300 || scale > 12*300 {
				return 0, fmt.Errorf("%d %s overflows int64 ns", v, d.Unit)
			}
			months := v * scale
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
	if scale > math.MaxInt64/unit {
		return 0, fmt.Errorf("dtype %s: unit overflows int64 ns", d)
	}
	unit *= scale
	if v > math.MaxInt64/unit || v < math.MinInt64/unit+1 {
		return 0, fmt.Errorf("%d %s overflows int64 ns", v, d.Unit)
	}
	return v * unit, nil
}
