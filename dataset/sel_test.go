package dataset

import (
	"strconv"
	"testing"
	"time"
)

func parseNum(s string) (float64, float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	return f, f, err
}

func parseStr(s string) (string, string, error) { return s, s, nil }

func TestLabelRange(t *testing.T) {
	asc := []float64{0, 10, 20, 30, 40}
	desc := []float64{40, 30, 20, 10, 0}
	unsorted := []float64{20, 0, 40, 10}
	for _, tc := range []struct {
		name   string
		vals   []float64
		label  string
		lo, hi int64
		ok     bool
	}{
		{"exact", asc, "20", 2, 3, true},
		{"inclusive slice", asc, "10:30", 1, 4, true},
		{"between labels", asc, "5:25", 1, 3, true},
		{"open start", asc, ":10", 0, 2, true},
		{"open end", asc, "35:", 4, 5, true},
		{"beyond the ends", asc, "-100:100", 0, 5, true},
		{"reversed on ascending: empty", asc, "30:10", 3, 3, true},
		{"descending", desc, "30:10", 1, 4, true},
		{"descending, between labels", desc, "35:5", 1, 4, true},
		{"descending, ascending bounds: empty", desc, "10:30", 3, 3, true},
		{"negative labels", []float64{-30, -20, -10}, "-20:-10", 1, 3, true},
		{"unsorted by position", unsorted, "0:10", 1, 4, true},
		{"unsorted, absent label", unsorted, "5:10", 0, 0, false},
		{"absent", asc, "15", 0, 0, false},
		{"not a number", asc, "x", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, err := labelRange("c", tc.vals, tc.label, parseNum, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
			if (err == nil) != tc.ok || tc.ok && (lo != tc.lo || hi != tc.hi) {
				t.Errorf("labelRange(%v, %q) = %d, %d, %v; want %d, %d, ok=%v", tc.vals, tc.label, lo, hi, err, tc.lo, tc.hi, tc.ok)
			}
		})
	}
	// Strings: a label holding a colon is taken whole when present.
	labels := []string{"IR_016", "IR_039", "a:b", "VIS006"}
	for label, want := range map[string][2]int64{"a:b": {2, 3}, "IR_039": {1, 2}, "IR_016:IR_039": {0, 2}} {
		lo, hi, err := labelRange("variable", labels, label, parseStr, strconv.Quote)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("labelRange(%q) = %d, %d, %v; want %v", label, lo, hi, err, want)
		}
	}
}

func TestParseTimeLabel(t *testing.T) {
	for _, tc := range []struct {
		in       string
		from, to string
	}{
		{"2020-04-01T12:00:00", "2020-04-01T12:00:00Z", "2020-04-01T12:00:00Z"},
		{"2020-04-01T12:00", "2020-04-01T12:00:00Z", "2020-04-01T12:00:59.999999999Z"},
		{"2020-04-01", "2020-04-01T00:00:00Z", "2020-04-01T23:59:59.999999999Z"},
		{"2020-04", "2020-04-01T00:00:00Z", "2020-04-30T23:59:59.999999999Z"},
		{"2020-04-01 06:30Z", "2020-04-01T06:30:00Z", "2020-04-01T06:30:59.999999999Z"},
	} {
		from, to, err := parseTimeLabel(tc.in)
		if err != nil || isoNS(t, tc.from) != from || isoNS(t, tc.to) != to {
			t.Errorf("parseTimeLabel(%q) = %s … %s, %v; want %s … %s", tc.in, isoTime(from), isoTime(to), err, tc.from, tc.to)
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"UKV", "init_time", "step", "variable", "x", "y"}
	for want, got := range map[string]string{"UKx": "UKV", "ukv": "UKV", "init_tim": "init_time", "steps": "step", "temperature": ""} {
		if n := Nearest(names, want); n != got {
			t.Errorf("Nearest(%q) = %q, want %q", want, n, got)
		}
	}
}

func FuzzSelectLabel(f *testing.F) {
	for _, s := range []string{"2020-04-01T12:00", "2020-04-01T12:00:2020-04-01T13:00", ":", "10:20", "-5:", "3h", "01:00:00", "2020"} {
		f.Add(s)
	}
	times := []int64{0, 3600e9, 7200e9, 10800e9}
	nums := []float64{3, 2, 1, 0}
	f.Fuzz(func(t *testing.T, label string) {
		n := int64(len(times))
		if lo, hi, err := labelRange("time", times, label, parseTimeLabel, isoTime); err == nil && (lo < 0 || hi < lo || hi > n) {
			t.Fatalf("time %q: %d, %d outside 0..%d", label, lo, hi, n)
		}
		if lo, hi, err := labelRange("step", times, label, parseDurationLabel, isoTime); err == nil && (lo < 0 || hi < lo || hi > n) {
			t.Fatalf("step %q: %d, %d outside 0..%d", label, lo, hi, n)
		}
		if lo, hi, err := labelRange("y", nums, label, parseNum, func(float64) string { return "" }); err == nil && (lo < 0 || hi < lo || hi > 4) {
			t.Fatalf("y %q: %d, %d outside 0..4", label, lo, hi)
		}
	})
}

func isoNS(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := timeParse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func timeParse(s string) (int64, error) {
	tm, err := time.Parse(time.RFC3339Nano, s)
	return tm.UnixNano(), err
}
