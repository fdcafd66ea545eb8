package codecs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
)

// Gzip is the gzip format (RFC 1952), as numcodecs' GZip codec and Zarr
// v3's gzip codec write it. Create it with NewGzip: its readers keep their
// inflate tables and window (about 40 KB) between calls.
type Gzip struct {
	readers sync.Pool // of *gzipReader
}

type gzipReader struct {
	src bytes.Reader
	r   gzip.Reader
}

// NewGzip returns a Gzip codec that reuses its decoder state across calls.
func NewGzip() *Gzip {
	return &Gzip{readers: sync.Pool{New: func() any { return new(gzipReader) }}}
}

// Decode decompresses a gzip stream (concatenated members included).
func (g *Gzip) Decode(dst, src []byte, size int) ([]byte, error) {
	gr := g.readers.Get().(*gzipReader)
	defer func() {
		gr.src.Reset(nil) // the pool must not keep the caller's bytes alive
		g.readers.Put(gr)
	}()
	gr.src.Reset(src)
	// Reset keeps the inflate tables and window, resetting them when the
	// member's data starts.
	if err := gr.r.Reset(&gr.src); err != nil {
		return nil, fmt.Errorf("gzip: reading header: %w: %w", ErrCorrupt, err)
	}
	return readDecoded("gzip", &gr.r, dst, size)
}

// Encode compresses src as one gzip member at level (-1 default, 0-9).
func (g *Gzip) Encode(dst, src []byte, level int) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	w, err := gzip.NewWriterLevel(buf, level)
	if err != nil {
		return nil, fmt.Errorf("gzip: level %d: %w", level, err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("gzip: compressing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip: compressing: %w", err)
	}
	return buf.Bytes(), nil
}

// Zlib is the zlib format (RFC 1950), as numcodecs' Zlib codec writes it.
// Create it with NewZlib: its readers keep their inflate tables and window
// (about 40 KB) between calls.
type Zlib struct {
	readers sync.Pool // of *zlibReader
}

type zlibReader struct {
	src bytes.Reader
	r   io.ReadCloser // nil until a stream header first parses
}

// NewZlib returns a Zlib codec that reuses its decoder state across calls.
func NewZlib() *Zlib {
	return &Zlib{readers: sync.Pool{New: func() any { return new(zlibReader) }}}
}

// Decode decompresses one zlib stream.
func (z *Zlib) Decode(dst, src []byte, size int) ([]byte, error) {
	zr := z.readers.Get().(*zlibReader)
	defer func() {
		zr.src.Reset(nil) // the pool must not keep the caller's bytes alive
		z.readers.Put(zr)
	}()
	zr.src.Reset(src)
	var err error
	if zr.r == nil {
		// zlib has no reader without a stream: the first one is built on
		// a valid header, later ones reset it.
		zr.r, err = zlib.NewReader(&zr.src)
	} else {
		err = zr.r.(zlib.Resetter).Reset(&zr.src, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("zlib: reading header: %w: %w", ErrCorrupt, err)
	}
	return readDecoded("zlib", zr.r, dst, size)
}

// Encode compresses src as one zlib stream at level (-1 default, 0-9).
func (z *Zlib) Encode(dst, src []byte, level int) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	w, err := zlib.NewWriterLevel(buf, level)
	if err != nil {
		return nil, fmt.Errorf("zlib: level %d: %w", level, err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("zlib: compressing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("zlib: compressing: %w", err)
	}
	return buf.Bytes(), nil
}

// readDecoded reads r to EOF into dst under the size contract. Reading to
// EOF matters: the stream formats verify their checksums there.
func readDecoded(format string, r io.Reader, dst []byte, size int) ([]byte, error) {
	if size >= 0 {
		out := resize(dst, size)
		if _, err := io.ReadFull(r, out); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: stream ends before the expected %d decoded bytes: %w", format, size, ErrCorrupt)
			}
			return nil, fmt.Errorf("%s: %w: %w", format, ErrCorrupt, err)
		}
		if err := expectEOF(r); err != nil {
			return nil, fmt.Errorf("%s: after %d decoded bytes: %w", format, size, err)
		}
		return out, nil
	}
	limit := limitOf(size)
	out := dst[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, fmt.Errorf("%s: decoded data exceeds the limit of %d bytes: %w", format, limit, ErrCorrupt)
			}
			// Grow geometrically but never past limit+1: one byte beyond
			// the limit is enough to detect an overrun.
			grow := max(cap(out), 4096)
			grow = min(grow, limit+1-len(out))
			out = append(out[:cap(out)], make([]byte, grow)...)[:len(out)]
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if errors.Is(err, io.EOF) {
			if len(out) > limit {
				return nil, fmt.Errorf("%s: decoded data exceeds the limit of %d bytes: %w", format, limit, ErrCorrupt)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", format, ErrCorrupt, err)
		}
	}
}

// expectEOF checks that r has no decoded bytes left.
func expectEOF(r io.Reader) error {
	var one [1]byte
	for range 64 {
		n, err := r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("stream holds more decoded data than expected: %w", ErrCorrupt)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return fmt.Errorf("stream makes no progress: %w", ErrCorrupt)
}
