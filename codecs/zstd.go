package codecs

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Zstd is the Zstandard frame format (RFC 8878), as numcodecs' Zstd codec
// and Zarr v3's zstd codec write it, and as blosc's zstd splits hold it.
// Create it with NewZstd; the zero value is not usable. Decode is fastest
// when dst has 32 bytes of capacity beyond the decoded size: the decoder
// then uses copy loops that may write past the end.
type Zstd struct {
	// dec decodes with DecodeAll, which is safe for concurrent use and,
	// with the cap limit, never writes beyond the capacity it is given.
	dec *zstd.Decoder

	mu   sync.Mutex
	encs map[zstd.EncoderLevel]*zstd.Encoder
}

// NewZstd returns a Zstd codec whose decoders are reused across calls.
func NewZstd() *Zstd {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
	)
	if err != nil {
		// Only invalid options make NewReader fail, and these are constant.
		panic(fmt.Sprintf("codecs: zstd decoder options: %v", err))
	}
	return &Zstd{dec: dec, encs: map[zstd.EncoderLevel]*zstd.Encoder{}}
}

// Decode decompresses one or more concatenated zstd frames.
func (z *Zstd) Decode(dst, src []byte, size int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, fmt.Errorf("zstd: frame header: %w: %w", ErrCorrupt, err)
	}
	limit := limitOf(size)
	if !h.HasFCS && size < 0 {
		return z.decodeUnknown(dst, src, limit)
	}
	want := limit
	if h.HasFCS {
		if h.FrameContentSize > uint64(maxInt) {
			return nil, fmt.Errorf("zstd: frame claims %d decoded bytes: %w", h.FrameContentSize, ErrCorrupt)
		}
		fcs := int(h.FrameContentSize)
		if size >= 0 && fcs > size || size < 0 && fcs > limit {
			return nil, checkClaimed("zstd", fcs, size)
		}
		if size < 0 {
			want = fcs
		}
	}
	out, err := z.decodeInto(withSlack(dst, want), src)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if size >= 0 && len(out) != size {
		return nil, fmt.Errorf("zstd: decoded %d bytes, caller expects %d: %w", len(out), size, ErrCorrupt)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("zstd: decoded data exceeds the limit of %d bytes: %w", limit, ErrCorrupt)
	}
	return out, nil
}

// withSlack returns an empty buffer for want decoded bytes, reusing dst's
// storage when it can, with up to decodeSlack bytes of room beyond want:
// klauspost's zstd takes its fast copy loops only with that room. The
// room only widens the decoder's limit by decodeSlack bytes, which callers
// check.
func withSlack(dst []byte, want int) []byte {
	if cap(dst) >= want {
		return dst[:0:min(cap(dst), want+decodeSlack)]
	}
	return make([]byte, 0, want+decodeSlack)
}

// decodeUnknown decodes frames that do not announce their size: it starts
// with a buffer near the likely size and doubles it up to limit, so a small
// chunk under a generous limit does not allocate the whole limit.
func (z *Zstd) decodeUnknown(dst, src []byte, limit int) ([]byte, error) {
	want := min(limit, max(cap(dst), 4*len(src), 64<<10))
	for {
		out, err := z.decodeInto(resize(dst, want)[:0:want], src)
		if err == nil {
			return out, nil
		}
		if want == limit || !errors.Is(err, errExceeded) {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		want = min(limit, 2*want)
	}
}

var errExceeded = errors.New("decoded data exceeds the limit")

// decodeInto decodes src into buf's spare capacity, never beyond it.
func (z *Zstd) decodeInto(buf, src []byte) ([]byte, error) {
	out, err := z.dec.DecodeAll(src, buf)
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, fmt.Errorf("%w of %d bytes: %w", errExceeded, cap(buf), ErrCorrupt)
		}
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	// DecodeAll must stay in buf; a reallocation would mean the limit
	// was not honoured.
	if cap(out) != cap(buf) {
		return nil, fmt.Errorf("%w of %d bytes: %w", errExceeded, cap(buf), ErrCorrupt)
	}
	return out, nil
}

// Encode compresses src as one zstd frame with its content size. Levels
// follow zstd's scale (1 fastest … 19+ best; 0 or less means the default).
func (z *Zstd) Encode(dst, src []byte, level int) ([]byte, error) {
	enc, err := z.encoder(level)
	if err != nil {
		return nil, err
	}
	return enc.EncodeAll(src, dst[:0]), nil
}

func (z *Zstd) encoder(level int) (*zstd.Encoder, error) {
	el := zstd.SpeedDefault
	if level > 0 {
		el = zstd.EncoderLevelFromZstd(level)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if enc, ok := z.encs[el]; ok {
		return enc, nil
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(el), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd: encoder at level %d: %w", level, err)
	}
	z.encs[el] = enc
	return enc, nil
}
