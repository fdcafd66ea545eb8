// Package units reads the sizes users give on command lines, such as
// 512MiB or 8GB.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseBytes reads a size in bytes with an optional unit: KB, MB, GB,
// TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func ParseBytes(text string) (int64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	number, scale := strings.TrimSpace(text), 1.0
	for _, u := range units {
		if strings.HasSuffix(number, u.suffix) {
			number, scale = strings.TrimSpace(strings.TrimSuffix(number, u.suffix)), u.scale
			break
		}
	}
	v, err := strconv.ParseFloat(number, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*scale >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a size such as 512MiB or 8GiB", text)
	}
	return int64(v * scale), nil
}
