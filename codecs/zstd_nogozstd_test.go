//go:build cgo && !gozstd

package codecs

// gozstdVariants is empty unless built with -tags gozstd.
func gozstdVariants() []zstdVariant { return nil }
