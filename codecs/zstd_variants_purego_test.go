//go:build !cgo

package codecs

// libzstdVariants is empty without cgo.
func libzstdVariants(*Zstd) []zstdVariant { return nil }
