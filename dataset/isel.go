package dataset

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// ParseIsel turns --isel DIM=START:STOP selections into a region of a:
// the whole array along dims not selected.
func ParseIsel(a *zarr.Array, isel []string) (start, shape []int64, err error) {
	start = make([]int64, len(a.Shape))
	shape = append([]int64(nil), a.Shape...)
	seen := map[int]bool{}
	for _, sel := range isel {
		dim, bounds, ok := strings.Cut(sel, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%s: --isel %q: want DIM=START:STOP", a, sel)
		}
		d := -1
		for i, name := range a.Dims {
			if name == dim {
				d = i
			}
		}
		if d < 0 {
			return nil, nil, fmt.Errorf("%s: --isel %q: no dimension %q (dims %v)", a, sel, dim, a.Dims)
		}
		if seen[d] {
			return nil, nil, fmt.Errorf("%s: --isel %q: dimension %q selected twice", a, sel, dim)
		}
		seen[d] = true
		lo, hi, err := ParseSlice(bounds, a.Shape[d])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --isel %q: dimension %q of size %d: %w", a, sel, dim, a.Shape[d], err)
		}
		start[d], shape[d] = lo, hi-lo
	}
	return start, shape, nil
}

// ParseSlice resolves "START:STOP", "START:", ":STOP" or "I" against a
// dimension of size n with Python's rules for negative bounds; out-of-range
// bounds are errors rather than clipped, so that typos do not go unseen.
func ParseSlice(s string, n int64) (lo, hi int64, err error) {
	resolve := func(v string, def int64) (int64, error) {
		if v == "" {
			return def, nil
		}
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bound %q is not an integer", v)
		}
		if i < 0 {
			i += n
		}
		if i < 0 || i > n {
			return 0, fmt.Errorf("bound %s outside 0..%d", v, n)
		}
		return i, nil
	}
	loStr, hiStr, isRange := strings.Cut(s, ":")
	if lo, err = resolve(loStr, 0); err != nil {
		return 0, 0, err
	}
	if !isRange {
		if loStr == "" || lo == n {
			return 0, 0, fmt.Errorf("index %q outside 0..%d", s, n-1)
		}
		return lo, lo + 1, nil
	}
	if hi, err = resolve(hiStr, n); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("stop %d before start %d", hi, lo)
	}
	return lo, hi, nil
}
