//go:build cgo

package codecs

import (
	"fmt"
	"sync"

	"github.com/DataDog/zstd"
)

// libzstdPool reuses libzstd decompression contexts: a context is not safe
// for concurrent use, and creating one per call costs more than a small
// block's decode.
type libzstdPool struct{ ctxs sync.Pool }

func (p *libzstdPool) get() zstd.Ctx {
	if c, ok := p.ctxs.Get().(zstd.Ctx); ok {
		return c
	}
	return zstd.NewCtx()
}

// libzstdAvailable reports whether this build decodes zstd with libzstd
// (cgo) rather than the Go decoders.
const libzstdAvailable = true

// decodeDefault is decodeInto's choice with cgo: libzstd decodes zstd
// chunks about 1.5x as fast as the Go decoders (bench/RESULTS.md).
func (z *Zstd) decodeDefault(buf, src []byte) ([]byte, error) {
	return z.decodeLibzstd(buf, src)
}

// decodeLibzstd is decodeInto with libzstd (DataDog/zstd, which vendors
// and builds it). The frames' announced sizes are checked against buf's
// room before libzstd runs, so that an oversized frame is refused with the
// limit named; libzstd itself never writes past the capacity it is given.
func (z *Zstd) decodeLibzstd(buf, src []byte) ([]byte, error) {
	room := cap(buf) - len(buf)
	total, known, err := zstdAnnounced(src)
	switch {
	case err != nil:
		return nil, err
	case len(src) == 0:
		return nil, fmt.Errorf("no frame in empty input: %w", ErrCorrupt)
	case known && total > int64(room):
		return nil, fmt.Errorf("%w of %d bytes: frames announce %d decoded bytes: %w", errExceeded, room, total, ErrCorrupt)
	}
	dst := buf[len(buf):cap(buf)]
	if room == 0 {
		// libzstd needs somewhere to point; a byte decoded into it is one
		// past the limit.
		var one [1]byte
		dst = one[:]
	}
	c := z.lib.get()
	n, err := c.DecompressInto(dst, src)
	z.lib.ctxs.Put(c)
	if err != nil {
		if zstd.IsDstSizeTooSmallError(err) {
			return nil, fmt.Errorf("%w of %d bytes: %w", errExceeded, room, ErrCorrupt)
		}
		return nil, fmt.Errorf("libzstd: %w: %w", err, ErrCorrupt)
	}
	if n > room {
		return nil, fmt.Errorf("%w of %d bytes: %w", errExceeded, room, ErrCorrupt)
	}
	return buf[:len(buf)+n], nil
}
