//go:build !cgo

package codecs

// libzstdPool is empty without cgo: there is no libzstd to pool for.
type libzstdPool struct{}

// libzstdAvailable reports whether this build decodes zstd with libzstd
// (cgo) rather than the Go decoders.
const libzstdAvailable = false

// decodeDefault is decodeInto's choice without cgo: whichever Go decoder
// is faster on the frame.
func (z *Zstd) decodeDefault(buf, src []byte) ([]byte, error) {
	return z.decodeGo(buf, src)
}
