package dataset

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// CoordReader reads the coordinate variable of a dimension.
type CoordReader func(ctx context.Context, dim string) (coords.Coord, error)

// Select resolves --isel DIM=START:STOP and --sel DIM=LABEL[:LABEL]
// selections into a region of a (the whole array along dims selected by
// neither). Labels select as xarray's .sel does: a label matches exactly
// (a time given to the minute, hour or day matches every time in it, as
// pandas' partial strings do), and LABEL:LABEL is inclusive at both ends,
// in the coordinate's storage order. Unlike .sel with a scalar, a single
// label keeps its dimension, as --isel DIM=I does.
func Select(ctx context.Context, a *zarr.Array, read CoordReader, isel, sel []string) (start, shape []int64, err error) {
	if start, shape, err = ParseIsel(a, isel); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, s := range isel {
		dim, _, _ := strings.Cut(s, "=")
		seen[dim] = true
	}
	for _, s := range sel {
		dim, label, ok := strings.Cut(s, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%s: --sel %q: want DIM=LABEL or DIM=LABEL:LABEL", a, s)
		}
		d := slices.Index(a.Dims, dim)
		if d < 0 {
			return nil, nil, fmt.Errorf("%s: --sel %q: no dimension %q (dims %v)", a, s, dim, a.Dims)
		}
		if seen[dim] {
			return nil, nil, fmt.Errorf("%s: --sel %q: dimension %q selected twice", a, s, dim)
		}
		seen[dim] = true
		c, err := read(ctx, dim)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --sel %q: dimension %q has no coordinate to select labels from: %w", a, s, dim, err)
		}
		if len(c.Shape) != 1 || c.Shape[0] != a.Shape[d] {
			return nil, nil, fmt.Errorf("%s: --sel %q: coordinate %q has shape %v, want (%d,)", a, s, dim, c.Shape, a.Shape[d])
		}
		lo, hi, err := selectLabels(c, label)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --sel %q: %w", a, s, err)
		}
		start[d], shape[d] = lo, hi-lo
	}
	return start, shape, nil
}

// selectLabels finds the index range [lo, hi) that label (LABEL or
// LABEL:LABEL) selects along coordinate c.
func selectLabels(c coords.Coord, label string) (lo, hi int64, err error) {
	switch {
	case c.DType.Kind == zarr.KindUnicode || c.DType.Kind == zarr.KindBytes:
		v, err := c.Strings()
		if err != nil {
			return 0, 0, err
		}
		return labelRange(c.Name, v, label, func(s string) (string, string, error) { return s, s, nil }, strconv.Quote)
	case c.IsDuration():
		v, err := c.Durations()
		if err != nil {
			return 0, 0, err
		}
		return labelRange(c.Name, v, label, parseDurationLabel, func(d int64) string { return time.Duration(d).String() })
	case c.IsTime():
		v, err := c.Times()
		if err != nil {
			return 0, 0, err
		}
		return labelRange(c.Name, v, label, parseTimeLabel, isoTime)
	case c.DType.Kind == zarr.KindBool:
		return 0, 0, fmt.Errorf("coordinate %q is boolean: select it with --isel", c.Name)
	}
	v, err := c.Float64s()
	if err != nil {
		return 0, 0, err
	}
	return labelRange(c.Name, v, label, func(s string) (float64, float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) {
			return 0, 0, fmt.Errorf("label %q is not a number", s)
		}
		return f, f, nil
	}, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
}

// labelRange selects along vals. parse gives the span [from, to] a label
// stands for (one value, or a partial time's whole period).
func labelRange[T cmp.Ordered](name string, vals []T, label string, parse func(string) (T, T, error), format func(T) string) (int64, int64, error) {
	n := int64(len(vals))
	if n == 0 {
		return 0, 0, fmt.Errorf("coordinate %q is empty", name)
	}
	span := fmt.Sprintf("(coordinate %q runs %s … %s)", name, format(vals[0]), format(vals[n-1]))
	asc, desc := slices.IsSorted(vals), isDescending(vals)
	// A single label first: string labels and times hold colons too.
	if from, to, err := parse(label); err == nil {
		var idx []int64
		for i, v := range vals {
			if v >= from && v <= to {
				idx = append(idx, int64(i))
			}
		}
		_, isString := any(vals[0]).(string)
		if len(idx) == 0 && !(isString && strings.Contains(label, ":")) {
			return 0, 0, fmt.Errorf("no label %s %s", label, span)
		}
		if len(idx) > 0 {
			if idx[len(idx)-1]-idx[0]+1 != int64(len(idx)) {
				return 0, 0, fmt.Errorf("label %s matches %d positions that are not contiguous %s", label, len(idx), span)
			}
			return idx[0], idx[len(idx)-1] + 1, nil
		}
	}
	left, right, ok := splitLabels(label, parse)
	if !ok {
		_, _, err := parse(label)
		return 0, 0, fmt.Errorf("want LABEL or LABEL:LABEL: %w", err)
	}
	switch {
	case asc:
		lo, hi := int64(0), n
		if left != "" {
			from, _, _ := parse(left)
			lo = int64(firstTrue(vals, func(v T) bool { return v >= from }))
		}
		if right != "" {
			_, to, _ := parse(right)
			hi = int64(firstTrue(vals, func(v T) bool { return v > to }))
		}
		return lo, max(lo, hi), nil
	case desc:
		lo, hi := int64(0), n
		if left != "" {
			_, to, _ := parse(left)
			lo = int64(firstTrue(vals, func(v T) bool { return v <= to }))
		}
		if right != "" {
			from, _, _ := parse(right)
			hi = int64(firstTrue(vals, func(v T) bool { return v < from }))
		}
		return lo, max(lo, hi), nil
	}
	// Unsorted: pandas slices between the labels' positions when each
	// is present once.
	pos := func(l string, def int64, end bool) (int64, error) {
		if l == "" {
			return def, nil
		}
		from, to, _ := parse(l)
		i := slices.IndexFunc(vals, func(v T) bool { return v >= from && v <= to })
		if i < 0 || slices.IndexFunc(vals[i+1:], func(v T) bool { return v >= from && v <= to }) >= 0 {
			return 0, fmt.Errorf("coordinate %q is not sorted, so a slice needs labels present once, and %s is absent or repeated %s", name, l, span)
		}
		if end {
			i++
		}
		return int64(i), nil
	}
	lo, err := pos(left, 0, false)
	if err != nil {
		return 0, 0, err
	}
	hi, err := pos(right, n, true)
	if err != nil {
		return 0, 0, err
	}
	return lo, max(lo, hi), nil
}

// firstTrue is the first index at which pred holds, for pred false then true
// along vals.
func firstTrue[T any](vals []T, pred func(T) bool) int {
	lo, hi := 0, len(vals)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if pred(vals[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func isDescending[T cmp.Ordered](v []T) bool {
	for i := 1; i < len(v); i++ {
		if v[i] > v[i-1] {
			return false
		}
	}
	return true
}

// splitLabels splits LEFT:RIGHT at the colon where both sides parse (or
// are empty): times hold colons of their own.
func splitLabels[T any](s string, parse func(string) (T, T, error)) (left, right string, ok bool) {
	for i := range len(s) {
		if s[i] != ':' {
			continue
		}
		l, r := s[:i], s[i+1:]
		if (l == "" || parses(l, parse)) && (r == "" || parses(r, parse)) {
			return l, r, true
		}
	}
	return "", "", false
}

func parses[T any](s string, parse func(string) (T, T, error)) bool {
	_, _, err := parse(s)
	return err == nil
}

// timeLayouts are the ISO forms a time label may take, each with the
// period it stands for (pandas' partial string indexing).
var timeLayouts = []struct {
	layout string
	period func(time.Time) time.Time // the start of the next period
}{
	{"2006-01-02T15:04:05.999999999", nil},
	{"2006-01-02 15:04:05.999999999", nil},
	{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02 15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02T15", func(t time.Time) time.Time { return t.Add(time.Hour) }},
	{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
	{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
}

// parseTimeLabel reads an ISO time (UTC; a trailing Z is allowed) as the
// span of ns it stands for.
func parseTimeLabel(s string) (from, to int64, err error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "Z")
	for _, l := range timeLayouts {
		t, err := time.Parse(l.layout, s)
		if err != nil {
			continue
		}
		if l.period == nil {
			return t.UnixNano(), t.UnixNano(), nil
		}
		return t.UnixNano(), l.period(t).UnixNano() - 1, nil
	}
	return 0, 0, fmt.Errorf("label %q is not an ISO time such as 2020-04-01T12:00", s)
}

// parseDurationLabel reads a time span: Go's form (90m, 1h30m) or
// HH:MM:SS as pandas prints one.
func parseDurationLabel(s string) (from, to int64, err error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return int64(d), int64(d), nil
	}
	var h, m, sec int64
	if n, _ := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); n == 3 && strings.Count(s, ":") == 2 {
		d := int64(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
		return d, d, nil
	}
	return 0, 0, fmt.Errorf("label %q is not a time span such as 3h or 03:00:00", s)
}

func isoTime(ns int64) string {
	if ns == coords.NaT {
		return "NaT"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.999999999")
}
