package codecs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Zstd is the Zstandard frame format (RFC 8878), as numcodecs' Zstd codec
// and Zarr v3's zstd codec write it, and as blosc's zstd splits hold it.
// Built with cgo it decodes through libzstd (zstd_cgo.go), without cgo
// through the Go decoders; both decode the same bytes and refuse output
// beyond the caller's limit.
// Create it with NewZstd; the zero value is not usable. Decode is fastest
// when dst has 32 bytes of capacity beyond the decoded size: the decoder
// then uses copy loops that may write past the end.
type Zstd struct {
	// decoders pools *zstdDecoder, our decoder's tables and literal
	// buffer, so that steady-state decoding allocates nothing.
	decoders sync.Pool
	// dec is klauspost's decoder, faster on frames of short matches (see
	// preferOurs). DecodeAll is safe for concurrent use
	// and, with the cap limit, never writes beyond the capacity it is
	// given.
	dec *zstd.Decoder

	// lib pools libzstd decompression contexts (empty without cgo).
	lib libzstdPool
	// override, when set, replaces decodeInto's choice: tests and
	// benchmarks compare decoders and bindings through it.
	override func(buf, src []byte) ([]byte, error)

	mu   sync.Mutex
	encs map[zstd.EncoderLevel]*zstd.Encoder
}

// NewZstd returns a Zstd codec whose decoders and encoders are reused
// across calls.
func NewZstd() *Zstd {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
	)
	if err != nil {
		// Only invalid options make NewReader fail, and these are constant.
		panic(fmt.Sprintf("codecs: zstd decoder options: %v", err))
	}
	z := &Zstd{dec: dec, encs: map[zstd.EncoderLevel]*zstd.Encoder{}}
	z.decoders.New = func() any { return newZstdDecoder() }
	return z
}

// Decode decompresses one or more concatenated zstd frames.
func (z *Zstd) Decode(dst, src []byte, size int) ([]byte, error) {
	limit := limitOf(size)
	// The first frame's content size, when it has one, sizes the buffer;
	// a skippable first frame says nothing.
	fcs := int64(-1)
	if len(src) < 4 || binary.LittleEndian.Uint32(src)&zstdSkippableMask != zstdSkippableBase {
		h, err := parseZstdFrameHeader(src)
		if err != nil {
			return nil, fmt.Errorf("zstd: frame header: %w", err)
		}
		fcs = h.contentLen
	}
	if fcs < 0 && size < 0 {
		return z.decodeUnknown(dst, src, limit)
	}
	want := limit
	if fcs >= 0 {
		if size >= 0 && fcs > int64(size) || size < 0 && fcs > int64(limit) {
			return nil, checkClaimed("zstd", int(fcs), size)
		}
		if size < 0 {
			want = int(fcs)
		}
	}
	out, err := z.decodeInto(withSlack(dst, want), src)
	if err != nil && size < 0 && errors.Is(err, errExceeded) {
		// Frames after the first add to its content size.
		return z.decodeUnknown(dst, src, limit)
	}
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
// the decoder's copy loops take their fast path only with that room. The
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

// decodeInto decodes the frames in src, appending to buf within its
// capacity, never beyond it: out of room is an errExceeded error. Copy
// loops may overwrite buf's capacity past the decoded end. With cgo it is
// libzstd (zstd_cgo.go), without it the faster Go decoder for the frame.
func (z *Zstd) decodeInto(buf, src []byte) ([]byte, error) {
	if z.override != nil {
		return z.override(buf, src)
	}
	return z.decodeDefault(buf, src)
}

// decodeGo is decodeInto with whichever Go decoder is faster on src.
func (z *Zstd) decodeGo(buf, src []byte) ([]byte, error) {
	if preferOurs(src) {
		return z.decodeOurs(buf, src)
	}
	return z.decodeKlauspost(buf, src)
}

// zstdAnnounced walks the frames in src by their headers and block headers
// alone and returns the decoded size they announce in total; known is
// false when a frame does not announce its size. Only zstd and skippable
// frames pass: libzstd would also take the legacy formats of zstd 0.4-0.7,
// which no Zarr writer produces and no Go decoder here reads.
func zstdAnnounced(src []byte) (total int64, known bool, err error) {
	known = true
	for nframe := 0; len(src) > 0; nframe++ {
		if len(src) >= 8 && binary.LittleEndian.Uint32(src)&zstdSkippableMask == zstdSkippableBase {
			n := uint64(binary.LittleEndian.Uint32(src[4:]))
			if n > uint64(len(src)-8) {
				return 0, false, fmt.Errorf("frame %d: skippable frame of %d bytes, %d left: %w", nframe, n, len(src)-8, ErrCorrupt)
			}
			src = src[8+n:]
			continue
		}
		h, err := parseZstdFrameHeader(src)
		if err != nil {
			return 0, false, fmt.Errorf("frame %d: %w", nframe, err)
		}
		if h.contentLen < 0 {
			known = false
		} else if total += h.contentLen; total < 0 || total > int64(maxInt) {
			return 0, false, fmt.Errorf("frame %d: announced sizes overflow: %w", nframe, ErrCorrupt)
		}
		pos := h.size
		for last := false; !last; {
			if len(src)-pos < 3 {
				return 0, false, fmt.Errorf("frame %d: block header truncated at byte %d: %w", nframe, pos, ErrCorrupt)
			}
			bh := int(src[pos]) | int(src[pos+1])<<8 | int(src[pos+2])<<16
			last = bh&1 != 0
			size := bh >> 3
			if bh>>1&3 == 1 {
				size = 1 // RLE: one byte on the wire
			}
			if size > len(src)-pos-3 {
				return 0, false, fmt.Errorf("frame %d: block of %d bytes at byte %d, %d left: %w", nframe, size, pos, len(src)-pos-3, ErrCorrupt)
			}
			pos += 3 + size
		}
		if h.checksum {
			pos += 4
		}
		if pos > len(src) {
			return 0, false, fmt.Errorf("frame %d: checksum truncated: %w", nframe, ErrCorrupt)
		}
		src = src[pos:]
	}
	return total, known, nil
}

// zstdMinMatchPerSeq is the average match length (decoded bytes not from
// literals, per sequence) from which our decoder beats klauspost's. Ours
// copies long overlapping matches (byte-shuffled floats, fill values) 8 to
// 16 bytes at a time where klauspost's copies them bytewise, but costs more
// per sequence. BenchmarkZstdCutoff measures it (ours/klauspost time, at
// average match): satellite zstd-1 6 bytes 1.41; text 10 bytes 1.71;
// shuffled floats at zstd 1-9 14-18 bytes 0.94-1.27; real UKV blosc-zstd
// 18 bytes 0.90, 1620 bytes 0.11; real SEVIRI blosc-zstd 20-22 bytes
// 1.27-1.35; the benchmark NWP block 62 bytes 0.82. On libzstd frames of
// 1 MiB of real SEVIRI and UKV data at levels 1-19, shuffled or not, ours
// lost up to 22.3 bytes (SEVIRI 1.18-1.59) and won from 23.9 (UKV
// shuffled 0.42-0.49), with exceptions both sides (SEVIRI 26 bytes 1.30,
// UKV 19 bytes 0.56): the average match only roughly tells whether the
// matches overlap, which is where ours wins.
const zstdMinMatchPerSeq = 23

// preferOurs reports whether src's first frame has matches of
// zstdMinMatchPerSeq bytes or longer on average. Frames it cannot judge (no
// content size, or malformed, which our decoder reports) go to our decoder.
func preferOurs(src []byte) bool {
	nseq, matched, ok := zstdFrameMatches(src)
	if !ok {
		return true
	}
	return nseq > 0 && matched >= int64(zstdMinMatchPerSeq*nseq)
}

// zstdFrameMatches returns the number of sequences in src's first frame
// and how many of its decoded bytes come from matches (not literals),
// reading only its block, literals and sequence count headers; ok is false
// for frames without a content size or with malformed headers.
func zstdFrameMatches(src []byte) (nseq int, matched int64, ok bool) {
	h, err := parseZstdFrameHeader(src)
	if err != nil || h.contentLen < 0 {
		return 0, 0, false
	}
	blockMax := int(min(h.windowSize, zstdBlockMax))
	nlit := 0
	for src = src[h.size:]; len(src) >= 3; {
		bh := int(src[0]) | int(src[1])<<8 | int(src[2])<<16
		size := bh >> 3
		switch bh >> 1 & 3 {
		case 0:
			nlit += size
		case 1:
			nlit += size
			size = 1
		case 2:
			if size > len(src)-3 {
				return 0, 0, false
			}
			block := src[3 : 3+size]
			lh, err := parseLiteralsHeader(block, blockMax)
			if err != nil {
				return 0, 0, false
			}
			n, _, err := parseSeqCount(block[lh.hdr+lh.size:])
			if err != nil {
				return 0, 0, false
			}
			nseq += n
			nlit += lh.n
		}
		if bh&1 != 0 || size > len(src)-3 {
			break
		}
		src = src[3+size:]
	}
	return nseq, h.contentLen - int64(nlit), true
}

// decodeOurs is decodeInto with our decoder.
func (z *Zstd) decodeOurs(buf, src []byte) ([]byte, error) {
	d := z.decoders.Get().(*zstdDecoder)
	defer z.decoders.Put(d)
	n, err := d.decodeAll(buf[:cap(buf)], len(buf), src)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// decodeKlauspost is decodeInto with klauspost's decoder.
func (z *Zstd) decodeKlauspost(buf, src []byte) ([]byte, error) {
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
