package units

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4096", 4096, true}, {"512MiB", 512 << 20, true}, {"8GiB", 8 << 30, true},
		{"1.5GiB", 3 << 29, true}, {"2GB", 2e9, true}, {"10 KB", 10e3, true}, {"7B", 7, true},
		{"", 0, false}, {"GiB", 0, false}, {"-1", 0, false}, {"1EiB", 0, false}, {"NaN", 0, false}, {"1e30GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"0", "512MiB", "1.5GiB", "10 KB", "-1", "NaN", "1e30GiB", "Inf", "GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseBytes(s); err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d: negative", s, n)
		}
	})
}
