//go:build cgo && gozstd

package codecs

import (
	"fmt"

	"github.com/valyala/gozstd"
)

// gozstdVariants is libzstd through valyala/gozstd, the second binding
// compared (bench/codecs/compare.py builds with -tags gozstd). Only
// benchmarks link it: it brings a prebuilt libzstd of its own.
func gozstdVariants() []zstdVariant {
	return []zstdVariant{{"libzstd-gozstd", func(buf, src []byte) ([]byte, error) {
		out, err := gozstd.Decompress(buf, src)
		if err != nil {
			return nil, fmt.Errorf("gozstd: %w: %w", err, ErrCorrupt)
		}
		if cap(out) != cap(buf) {
			return nil, fmt.Errorf("%w of %d bytes: %w", errExceeded, cap(buf)-len(buf), ErrCorrupt)
		}
		return out, nil
	}}}
}
