//go:build cgo

package codecs

// libzstdVariants is libzstd through DataDog/zstd, the binding the loader
// links, and through valyala/gozstd when built with -tags gozstd.
func libzstdVariants(z *Zstd) []zstdVariant {
	return append([]zstdVariant{{"libzstd-datadog", z.decodeLibzstd}}, gozstdVariants()...)
}
