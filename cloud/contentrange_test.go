package cloud

import "testing"

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/1234", 0, 99, 1234, true},
		{"bytes 1000-1000/1001", 1000, 1000, 1001, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes 5-9/9", 0, 0, 0, false},
		{"bytes 9-5/100", 0, 0, 0, false},
		{"bytes -5-9/100", 0, 0, 0, false},
		{"bytes +5-9/100", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		first, last, total, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (first != tc.first || last != tc.last || total != tc.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.in, first, last, total, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1234", "bytes 5-9/*", "bytes 1048576-2097151/104857600", "bytes */100", "bytes 0-0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || (total != -1 && last >= total) {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d accepted", s, first, last, total)
		}
	})
}
