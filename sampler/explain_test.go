package sampler

import (
	"strings"
	"testing"
)

type named string

func (n named) String() string { return string(n) }

func TestYXSwapNamed(t *testing.T) {
	for _, tc := range []struct {
		y, x    string
		swapped bool
	}{
		{"y", "x", false},
		{"x", "y", true},
		{"latitude", "longitude", false},
		{"longitude", "latitude", true},
		{"lon", "y", true},
		{"x_osgb", "y_osgb", true},
		{"y_geostationary", "x_geostationary", false},
		{"rows", "cols", false},
		{"dim_1", "dim_2", false}, // names that say nothing are trusted
		{"", "x", false},
	} {
		err := checkYXSwap(&DimsSpec{Y: tc.y, X: tc.x}, named("store array"))
		if (err != nil) != tc.swapped {
			t.Errorf("dims y: %q, x: %q: error %v, want swapped=%v", tc.y, tc.x, err, tc.swapped)
		}
		if err != nil && !strings.Contains(err.Error(), "want y: "+tc.x+", x: "+tc.y) {
			t.Errorf("dims y: %q, x: %q: %v does not say the fix", tc.y, tc.x, err)
		}
	}
}
