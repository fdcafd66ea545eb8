package cloud

import (
	"fmt"
	"strconv"
	"strings"
)

// parseContentRange reads "bytes first-last/total" (total may be "*") and
// returns first, last and total (-1 for "*").
func parseContentRange(s string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: not in bytes", s)
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: no total", s)
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: no span", s)
	}
	if first, err = parseNonNegative(a); err != nil {
		return 0, 0, 0, fmt.Errorf("content-range %q: first byte: %w", s, err)
	}
	if last, err = parseNonNegative(b); err != nil {
		return 0, 0, 0, fmt.Errorf("content-range %q: last byte: %w", s, err)
	}
	if last < first {
		return 0, 0, 0, fmt.Errorf("content-range %q: last byte before first", s)
	}
	total = -1
	if size != "*" {
		if total, err = parseNonNegative(size); err != nil {
			return 0, 0, 0, fmt.Errorf("content-range %q: total: %w", s, err)
		}
		if last >= total {
			return 0, 0, 0, fmt.Errorf("content-range %q: span past the total", s)
		}
	}
	return first, last, total, nil
}

func parseNonNegative(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a byte position", s)
	}
	return strconv.ParseInt(s, 10, 64)
}
