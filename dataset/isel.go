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
// dimension of size n as Python slices a sequence: negative bounds count
// from the end, slice bounds beyond either end are clipped, a stop before
// the start selects nothing, and an index I (which keeps the dimension as
// I:I+1) outside the sequence is an error, as Python's IndexError is.
func ParseSlice(s string, n int64) (lo, hi int64, err error) {
	parse := func(v string) (int64, error) {
		i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bound %q is not an integer", v)
		}
		if i < 0 {
			i += n // no overflow: i < 0 ≤ n
		}
		return i, nil
	}
	bound := func(v string, def int64) (int64, error) {
		if v == "" {
			return def, nil
		}
		i, err := parse(v)
		return min(max(i, 0), n), err
	}
	loStr, hiStr, isRange := strings.Cut(s, ":")
	if !isRange {
		i, err := parse(s)
		if err != nil {
			return 0, 0, err
		}
		if i < 0 || i >= n {
			return 0, 0, fmt.Errorf("index %s out of range for size %d", s, n)
		}
		return i, i + 1, nil
	}
	if strings.Contains(hiStr, ":") {
		return 0, 0, fmt.Errorf("slice %q: steps are not supported", s)
	}
	if lo, err = bound(loStr, 0); err != nil {
		return 0, 0, err
	}
	if hi, err = bound(hiStr, n); err != nil {
		return 0, 0, err
	}
	return lo, max(lo, hi), nil
}
