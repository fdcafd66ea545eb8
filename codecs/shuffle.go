package codecs

import "encoding/binary"

// Byte shuffle (blosc's "shuffle" filter) stores byte j of every element of
// a block contiguously: src[j*n + i] is byte j of element i, for n elements
// of typesize bytes. Bytes past the last whole element stay in place.

// unshuffle reverses the byte shuffle of one block: src and dst have the
// same length.
func unshuffle(dst, src []byte, typesize int) {
	n := len(src) / typesize
	whole := n * typesize
	done := 0
	switch typesize {
	case 2:
		done = unshuffle2(dst, src, n)
	case 4:
		done = unshuffle4(dst, src, n)
	case 8:
		done = unshuffle8(dst, src, n)
	}
	unshuffleTail(dst, src, typesize, n, done)
	copy(dst[whole:], src[whole:])
}

// unshuffleTail unshuffles elements [from, n) one byte at a time.
func unshuffleTail(dst, src []byte, typesize, n, from int) {
	if from >= n {
		return
	}
	for j := range typesize {
		stream := src[j*n+from : j*n+n]
		d := dst[from*typesize+j:]
		for i, b := range stream {
			d[i*typesize] = b
		}
	}
}

// shuffle applies the byte shuffle to one block (encoding side; not hot).
func shuffle(dst, src []byte, typesize int) {
	n := len(src) / typesize
	whole := n * typesize
	for j := range typesize {
		stream := dst[j*n : j*n+n]
		for i := range stream {
			stream[i] = src[i*typesize+j]
		}
	}
	copy(dst[whole:], src[whole:])
}

// Bit shuffle (the bitshuffle library's bshuf_trans_bit_elem, as c-blosc
// vendors it) works on groups of 8 elements: for byte j and bit k it
// stores row j*8+k of n/8 bytes, where bit m of row byte g is bit k of
// byte j of element 8g+m. The transposition of each 8x8 bit matrix is the
// core of both directions.

// transpose8x8 transposes the 8x8 bit matrix held in x (byte r, bit c to
// byte c, bit r); it is its own inverse.
func transpose8x8(x uint64) uint64 {
	t := (x ^ x>>7) & 0x00AA00AA00AA00AA
	x ^= t ^ t<<7
	t = (x ^ x>>14) & 0x0000CCCC0000CCCC
	x ^= t ^ t<<14
	t = (x ^ x>>28) & 0x00000000F0F0F0F0
	x ^= t ^ t<<28
	return x
}

// bitunshuffle reverses the bit shuffle of one block, using tmp (at least
// len(src) bytes) for the intermediate byte-shuffled layout. blosc format
// version 2 (every c-blosc 1.x writer) leaves a block whose element count
// is not a multiple of 8 entirely unshuffled; later versions shuffle the
// leading multiple of 8 elements. Either way trailing bytes stay in place.
func bitunshuffle(dst, src, tmp []byte, typesize int, formatVersion byte) {
	n := len(src) / typesize
	if n%8 != 0 && formatVersion <= 2 {
		copy(dst, src)
		return
	}
	n -= n % 8
	whole := n * typesize
	// First undo the bit transposition into the byte-shuffled layout
	// (byte j of element i at j*n+i), whose rows are written sequentially,
	// then reuse the vectorised byte unshuffle.
	shuffled := tmp[:whole]
	if typesize == 1 {
		shuffled = dst[:whole]
	}
	rows := n / 8
	for j := range typesize {
		r := src[j*n : j*n+n]
		r0, r1, r2, r3 := r[:rows], r[rows:2*rows], r[2*rows:3*rows], r[3*rows:4*rows]
		r4, r5, r6, r7 := r[4*rows:5*rows], r[5*rows:6*rows], r[6*rows:7*rows], r[7*rows:8*rows]
		out := shuffled[j*n : j*n+n]
		g := 0
		// Eight groups at a time: one 8-byte load per row, an 8x8 byte
		// transpose in registers, then the bit transposes.
		for ; g+8 <= rows; g += 8 {
			x0 := binary.LittleEndian.Uint64(r0[g:])
			x1 := binary.LittleEndian.Uint64(r1[g:])
			x2 := binary.LittleEndian.Uint64(r2[g:])
			x3 := binary.LittleEndian.Uint64(r3[g:])
			x4 := binary.LittleEndian.Uint64(r4[g:])
			x5 := binary.LittleEndian.Uint64(r5[g:])
			x6 := binary.LittleEndian.Uint64(r6[g:])
			x7 := binary.LittleEndian.Uint64(r7[g:])
			x0, x1 = swapBytes(x0, x1, 8, 0x00FF00FF00FF00FF)
			x2, x3 = swapBytes(x2, x3, 8, 0x00FF00FF00FF00FF)
			x4, x5 = swapBytes(x4, x5, 8, 0x00FF00FF00FF00FF)
			x6, x7 = swapBytes(x6, x7, 8, 0x00FF00FF00FF00FF)
			x0, x2 = swapBytes(x0, x2, 16, 0x0000FFFF0000FFFF)
			x1, x3 = swapBytes(x1, x3, 16, 0x0000FFFF0000FFFF)
			x4, x6 = swapBytes(x4, x6, 16, 0x0000FFFF0000FFFF)
			x5, x7 = swapBytes(x5, x7, 16, 0x0000FFFF0000FFFF)
			x0, x4 = swapBytes(x0, x4, 32, 0x00000000FFFFFFFF)
			x1, x5 = swapBytes(x1, x5, 32, 0x00000000FFFFFFFF)
			x2, x6 = swapBytes(x2, x6, 32, 0x00000000FFFFFFFF)
			x3, x7 = swapBytes(x3, x7, 32, 0x00000000FFFFFFFF)
			o := out[8*g : 8*g+64]
			binary.LittleEndian.PutUint64(o[0:], transpose8x8(x0))
			binary.LittleEndian.PutUint64(o[8:], transpose8x8(x1))
			binary.LittleEndian.PutUint64(o[16:], transpose8x8(x2))
			binary.LittleEndian.PutUint64(o[24:], transpose8x8(x3))
			binary.LittleEndian.PutUint64(o[32:], transpose8x8(x4))
			binary.LittleEndian.PutUint64(o[40:], transpose8x8(x5))
			binary.LittleEndian.PutUint64(o[48:], transpose8x8(x6))
			binary.LittleEndian.PutUint64(o[56:], transpose8x8(x7))
		}
		for ; g < rows; g++ {
			x := uint64(r0[g]) | uint64(r1[g])<<8 | uint64(r2[g])<<16 | uint64(r3[g])<<24 |
				uint64(r4[g])<<32 | uint64(r5[g])<<40 | uint64(r6[g])<<48 | uint64(r7[g])<<56
			binary.LittleEndian.PutUint64(out[8*g:], transpose8x8(x))
		}
	}
	if typesize > 1 {
		unshuffle(dst[:whole], shuffled, typesize)
	}
	copy(dst[whole:], src[whole:])
}

// swapBytes is one stage of an 8x8 byte-matrix transpose held in eight
// words: it swaps the off-diagonal blocks of width shift bits between a
// and b.
func swapBytes(a, b uint64, shift uint, mask uint64) (uint64, uint64) {
	t := (a>>shift ^ b) & mask
	return a ^ t<<shift, b ^ t
}

// bitshuffle applies the bit shuffle to one block, as format version 2
// does (encoding side; not hot).
func bitshuffle(dst, src []byte, typesize int) {
	n := len(src) / typesize
	if n%8 != 0 {
		copy(dst, src)
		return
	}
	rows := n / 8
	for j := range typesize {
		for g := range rows {
			var x uint64
			base := 8*g*typesize + j
			for m := range 8 {
				x |= uint64(src[base+m*typesize]) << (8 * m)
			}
			x = transpose8x8(x)
			for k := range 8 {
				dst[(j*8+k)*rows+g] = byte(x >> (8 * k))
			}
		}
	}
	whole := n * typesize
	copy(dst[whole:], src[whole:])
}

// spread16 moves byte k of the low 4 bytes of x to byte 2k.
func spread16(x uint64) uint64 {
	x = (x | x<<16) & 0x0000FFFF0000FFFF
	return (x | x<<8) & 0x00FF00FF00FF00FF
}

// unshuffle2Generic interleaves two byte streams 8 elements at a time.
func unshuffle2Generic(dst, src []byte, n int) int {
	a, b := src[:n], src[n:2*n]
	i := 0
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(a[i:])
		y := binary.LittleEndian.Uint64(b[i:])
		d := dst[2*i : 2*i+16]
		binary.LittleEndian.PutUint64(d, spread16(x&0xFFFFFFFF)|spread16(y&0xFFFFFFFF)<<8)
		binary.LittleEndian.PutUint64(d[8:], spread16(x>>32)|spread16(y>>32)<<8)
	}
	return i
}

// unshuffle4Generic interleaves four byte streams 8 elements at a time.
func unshuffle4Generic(dst, src []byte, n int) int {
	s0, s1, s2, s3 := src[:n], src[n:2*n], src[2*n:3*n], src[3*n:4*n]
	i := 0
	for ; i+8 <= n; i += 8 {
		a := binary.LittleEndian.Uint64(s0[i:])
		b := binary.LittleEndian.Uint64(s1[i:])
		c := binary.LittleEndian.Uint64(s2[i:])
		d := binary.LittleEndian.Uint64(s3[i:])
		out := dst[4*i : 4*i+32]
		for h := range 2 {
			sh := 32 * h
			ab := spread16(a>>sh&0xFFFFFFFF) | spread16(b>>sh&0xFFFFFFFF)<<8
			cd := spread16(c>>sh&0xFFFFFFFF) | spread16(d>>sh&0xFFFFFFFF)<<8
			// ab and cd hold 4 16-bit halves each; interleave them.
			lo := spread32(ab&0xFFFFFFFF) | spread32(cd&0xFFFFFFFF)<<16
			hi := spread32(ab>>32) | spread32(cd>>32)<<16
			binary.LittleEndian.PutUint64(out[16*h:], lo)
			binary.LittleEndian.PutUint64(out[16*h+8:], hi)
		}
	}
	return i
}

// spread32 moves 16-bit half k of the low 32 bits of x to half 2k.
func spread32(x uint64) uint64 {
	return (x | x<<16) & 0x0000FFFF0000FFFF
}

// unshuffle8Generic gathers eight byte streams one element at a time.
func unshuffle8Generic(dst, src []byte, n int) int {
	s := [8][]byte{}
	for j := range s {
		s[j] = src[j*n : j*n+n]
	}
	for i := range n {
		v := uint64(s[0][i]) | uint64(s[1][i])<<8 | uint64(s[2][i])<<16 | uint64(s[3][i])<<24 |
			uint64(s[4][i])<<32 | uint64(s[5][i])<<40 | uint64(s[6][i])<<48 | uint64(s[7][i])<<56
		binary.LittleEndian.PutUint64(dst[8*i:], v)
	}
	return n
}
