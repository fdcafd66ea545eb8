package codecs

import "fmt"

// blosclzMaxDistance is MAX_DISTANCE in c-blosc's blosclz.c: matches
// farther back than this carry a 16-bit extra distance.
const blosclzMaxDistance = 8191

// blosclzDecode decodes one blosclz stream (c-blosc's FastLZ variant) into
// out, which it must fill exactly.
//
// The stream is a sequence of instructions, each starting with a control
// byte. Below 32 it is a literal run of ctrl+1 bytes. Otherwise its top 3
// bits are the match length minus 2 (7 means more length bytes follow,
// each added, until one is not 255) and its low 5 bits are the high bits of
// the distance; the next byte is the low distance byte. A low byte of 255
// with high bits 31 announces a far match whose 16-bit big-endian distance
// follows, offset by blosclzMaxDistance. The first control byte's top 3
// bits are a format marker, not a length.
func blosclzDecode(out, src []byte) error {
	if len(src) == 0 {
		return fmt.Errorf("blosclz: empty stream: %w", ErrCorrupt)
	}
	ip, op := 1, 0
	ctrl := int(src[0] & 31)
	for {
		if ctrl < 32 {
			run := ctrl + 1
			if run > len(out)-op || run > len(src)-ip {
				return fmt.Errorf("blosclz: literal run of %d bytes at output %d overruns: %w", run, op, ErrCorrupt)
			}
			if len(out)-op >= 32 && len(src)-ip >= 32 {
				// Runs are at most 32 bytes: one fixed-size copy, whose
				// excess later instructions overwrite, beats memmove.
				*(*[32]byte)(out[op:]) = *(*[32]byte)(src[ip:])
			} else {
				copy(out[op:op+run], src[ip:ip+run])
			}
			op += run
			ip += run
		} else {
			length := ctrl>>5 - 1
			ofs := (ctrl & 31) << 8
			if length == 6 {
				for {
					if ip >= len(src) {
						return fmt.Errorf("blosclz: match length truncated: %w", ErrCorrupt)
					}
					code := int(src[ip])
					ip++
					length += code
					if code != 255 {
						break
					}
					if length > len(out) {
						return fmt.Errorf("blosclz: match length overruns the output: %w", ErrCorrupt)
					}
				}
			}
			if ip >= len(src) {
				return fmt.Errorf("blosclz: match distance truncated: %w", ErrCorrupt)
			}
			code := int(src[ip])
			ip++
			dist := ofs + code + 1
			if code == 255 && ofs == 31<<8 {
				if ip+2 > len(src) {
					return fmt.Errorf("blosclz: far match distance truncated: %w", ErrCorrupt)
				}
				dist = int(src[ip])<<8 | int(src[ip+1]) + blosclzMaxDistance + 1
				ip += 2
			}
			length += 3
			if length > len(out)-op || dist > op {
				return fmt.Errorf("blosclz: match of %d bytes at distance %d from output %d overruns: %w", length, dist, op, ErrCorrupt)
			}
			copyMatch(out, op, dist, length)
			op += length
		}
		if ip >= len(src) {
			break
		}
		ctrl = int(src[ip])
		ip++
	}
	if op != len(out) {
		return fmt.Errorf("blosclz: stream decodes to %d bytes, want %d: %w", op, len(out), ErrCorrupt)
	}
	return nil
}

// copyMatch appends length bytes starting dist bytes back to out[op:],
// with LZ77 semantics: an overlapping match repeats its pattern.
func copyMatch(out []byte, op, dist, length int) {
	end := op + length
	if len(out)-end >= 8 && (dist < length || length <= 64) {
		// Fixed 8-byte moves, which may overrun end by up to 7 bytes that
		// later instructions overwrite. Each move must read only bytes
		// already written, so short distances first lay down one period
		// and then step by a multiple of the distance that is at least 8.
		if dist < 8 {
			for i := range min(8, length) {
				out[op+i] = out[op+i-dist]
			}
			step := dist * ((8 + dist - 1) / dist)
			for p := op + 8; p < end; p += 8 {
				*(*[8]byte)(out[p:]) = *(*[8]byte)(out[p-step:])
			}
			return
		}
		for ; op < end; op += 8 {
			*(*[8]byte)(out[op:]) = *(*[8]byte)(out[op-dist:])
		}
		return
	}
	if dist >= length {
		copy(out[op:end], out[op-dist:])
		return
	}
	// Copy the repeating pattern in doubling pieces.
	for op < end {
		n := copy(out[op:end], out[op-dist:op])
		op += n
		dist += n
	}
}
