package dataset

import "testing"

func TestParseSlice(t *testing.T) {
	for _, c := range []struct {
		in     string
		n      int64
		lo, hi int64
		ok     bool
	}{
		{"2:5", 10, 2, 5, true},
		{":", 10, 0, 10, true},
		{"3:", 10, 3, 10, true},
		{":4", 10, 0, 4, true},
		{"-3:", 10, 7, 10, true},
		{"-3:-1", 10, 7, 9, true},
		{"4", 10, 4, 5, true},
		{"-1", 10, 9, 10, true},
		{"5:5", 10, 5, 5, true},
		{"10", 10, 0, 0, false},
		{"-11", 10, 0, 0, false},
		// Slice bounds clip, as Python's do.
		{"0:11", 10, 0, 10, true},
		{"-11:", 10, 0, 10, true},
		{"5:3", 10, 5, 5, true},
		{"20:30", 10, 10, 10, true},
		{"-100:-50", 10, 0, 0, true},
		{"9223372036854775807:", 10, 10, 10, true},
		{"a:3", 10, 0, 0, false},
		{"", 10, 0, 0, false},
		{"1:2:3", 10, 0, 0, false},
	} {
		lo, hi, err := ParseSlice(c.in, c.n)
		if (err == nil) != c.ok || c.ok && (lo != c.lo || hi != c.hi) {
			t.Errorf("ParseSlice(%q, %d) = %d, %d, %v; want %d, %d, ok=%v", c.in, c.n, lo, hi, err, c.lo, c.hi, c.ok)
		}
	}
}

func FuzzParseSlice(f *testing.F) {
	for _, s := range []string{"2:5", ":", "-3:-1", "4", "", "9223372036854775807:", "-9223372036854775808"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if n < 0 {
			return
		}
		lo, hi, err := ParseSlice(s, n)
		if err == nil && (lo < 0 || hi < lo || hi > n) {
			t.Fatalf("ParseSlice(%q, %d) = %d, %d: outside 0..%d", s, n, lo, hi, n)
		}
	})
}
