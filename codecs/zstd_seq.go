package codecs

import (
	"encoding/binary"
	"fmt"
)

// seqBatch is how many sequences are decoded before they are executed. Two
// tight loops keep their variables in registers where one loop holding
// both the bit reader and the copy state would spill.
const seqBatch = 256

// zstdSeq is one decoded sequence: ll literals, then ml bytes copied from
// offset back.
type zstdSeq struct {
	// 32 bits hold every length and offset a frame can encode, and keep a
	// batch in fewer cache lines.
	ll, ml, offset uint32
}

// seqReader is the state of a block's sequence decoding between batches.
type seqReader struct {
	br                        zstdBits
	llState, ofState, mlState uint32
	tables                    *[3]seqTable
	// reps holds the repeat offsets and, last, the first one minus 1: the
	// four offsets that offset values 1-3 can pick. They live in memory,
	// off the critical path, leaving registers to the decoding chain.
	reps [4]int
	left int // sequences still to decode
}

// sequences decodes nseq sequences from src and executes them straight into
// out (RFC 8878 §3.1.1.3.2, §3.1.1.4): literal runs come from d.lits[:nlit],
// matches from the output itself, which is the whole history. Output ends
// by limit; matches reach back no further than out[start]. Copies write up
// to 32 bytes past a sequence's end while out has that room.
func (d *zstdDecoder) sequences(out []byte, op, start, limit, nlit, nseq int, src []byte) (int, error) {
	r := &d.seqRead
	if err := r.br.init(src); err != nil {
		return 0, fmt.Errorf("sequences: %w", err)
	}
	r.tables = &d.seq
	r.llState = uint32(r.br.get(d.seq[0].log))
	r.ofState = uint32(r.br.get(d.seq[1].log))
	r.mlState = uint32(r.br.get(d.seq[2].log))
	r.br.reload()
	r.reps = [4]int{d.rep[0], d.rep[1], d.rep[2], d.rep[0] - 1}
	r.left = nseq
	litPos := 0
	for done := 0; r.left > 0; {
		batch := d.batch[:min(r.left, seqBatch)]
		r.decode(batch)
		var err error
		if op, litPos, err = d.execute(batch, done, out, op, start, limit, litPos, nlit); err != nil {
			return 0, err
		}
		done += len(batch)
	}
	d.rep = [3]int{r.reps[0], r.reps[1], r.reps[2]}
	if !r.br.finished() {
		return 0, fmt.Errorf("sequences bit stream not consumed exactly: %w", ErrCorrupt)
	}
	rest := nlit - litPos
	if rest > limit-op {
		return 0, overLimit(out, limit)
	}
	return op + copy(out[op:op+rest], d.lits[litPos:nlit]), nil
}

// decode fills seqs from the bit stream. Corrupt streams decode to garbage
// that execute rejects or that leaves the stream not exactly consumed.
func (r *seqReader) decode(seqs []zstdSeq) {
	// The last sequence of the block updates no state; it is decoded apart
	// so that the loop carries neither its index nor a branch on it.
	last := len(seqs) == r.left
	if last {
		seqs = seqs[:len(seqs)-1]
	}
	r.left -= len(seqs)
	// The assembly loop, where there is one, takes the common sequences;
	// the loop below the rest.
	first := decodeSeqsFast(r, seqs)
	// The bit reader lives in locals: v holds the 8 bytes at in[pos:], c
	// counts the bits taken from its top.
	in, pos, v, c := r.br.in, r.br.pos, r.br.value, r.br.consumed
	tables := r.tables
	reps := &r.reps
	llState, ofState, mlState := r.llState, r.ofState, r.mlState
	for i := first; i < len(seqs); i++ {
		llE := tables[0].entries[llState&(seqTableMax-1)]
		ofE := tables[1].entries[ofState&(seqTableMax-1)]
		mlE := tables[2].entries[mlState&(seqTableMax-1)]
		ofBits, mlBits, llBits := uint(ofE>>16)&63, uint(mlE>>16)&63, uint(llE>>16)&63
		llNb, mlNb, ofNb := uint(llE>>24)&63, uint(mlE>>24)&63, uint(ofE>>24)&63
		var ofx, mlx, llx uint64
		if ofBits+mlBits+llBits+llNb+mlNb+ofNb <= 57 {
			// Everything fits in the bits the last reload brought (or in
			// the rest of the stream, near its start): read the six fields
			// at positions summed in parallel, keeping the chain from one
			// sequence's states to the next short.
			x := v << (c & 63)
			p2 := ofBits + mlBits
			p3 := p2 + llBits
			p4 := p3 + llNb
			p5 := p4 + mlNb
			ofx = x >> 1 >> ((63 - ofBits) & 63)
			mlx = x << (ofBits & 63) >> 1 >> ((63 - mlBits) & 63)
			llx = x << (p2 & 63) >> 1 >> ((63 - llBits) & 63)
			llState = uint32(uint16(llE)) + uint32(x<<(p3&63)>>1>>((63-llNb)&63))
			mlState = uint32(uint16(mlE)) + uint32(x<<(p4&63)>>1>>((63-mlNb)&63))
			ofState = uint32(uint16(ofE)) + uint32(x<<(p5&63)>>1>>((63-ofNb)&63))
			c += p5 + ofNb
		} else {
			// Long offsets: read field by field, reloading between.
			ofx = v << (c & 63) >> 1 >> ((63 - ofBits) & 63)
			c += ofBits
			mlx = v << (c & 63) >> 1 >> ((63 - mlBits) & 63)
			c += mlBits
			if pos >= 8 {
				pos -= int(c >> 3)
				c &= 7
				v = binary.LittleEndian.Uint64(in[pos:])
			}
			llx = v << (c & 63) >> 1 >> ((63 - llBits) & 63)
			c += llBits
			if pos >= 8 {
				pos -= int(c >> 3)
				c &= 7
				v = binary.LittleEndian.Uint64(in[pos:])
			}
			llState = uint32(uint16(llE)) + uint32(v<<(c&63)>>1>>((63-llNb)&63))
			c += llNb
			mlState = uint32(uint16(mlE)) + uint32(v<<(c&63)>>1>>((63-mlNb)&63))
			c += mlNb
			ofState = uint32(uint16(ofE)) + uint32(v<<(c&63)>>1>>((63-ofNb)&63))
			c += ofNb
		}
		if pos >= 8 {
			pos -= int(c >> 3)
			c &= 7
			v = binary.LittleEndian.Uint64(in[pos:])
		} else {
			r.br.pos, r.br.value, r.br.consumed = pos, v, c
			r.br.reload()
			pos, v, c = r.br.pos, r.br.value, r.br.consumed
		}

		// Repeat offsets (RFC 8878 §3.1.1.5) without branches, which
		// mispredict on real data: offset values 1-3 pick rep0, rep1,
		// rep2 or rep0-1, shifted by one when the literal length is zero;
		// larger values are new offsets. Either way the chosen offset
		// moves to the front.
		ofv := int(ofE>>32) + int(ofx)
		ll := int(llE>>32) + int(llx)
		idx := ofv - 1
		if ll == 0 {
			idx++
		}
		offset := reps[idx&3]
		if ofBits > 1 {
			offset = ofv - 3
			idx = 3
		}
		r1, r2 := reps[1], reps[2]
		if idx >= 2 {
			r2 = r1
		}
		if idx >= 1 {
			r1 = reps[0]
		}
		reps[0], reps[1], reps[2], reps[3] = offset, r1, r2, offset-1
		seqs[i] = zstdSeq{ll: uint32(ll), ml: uint32(mlE>>32) + uint32(mlx), offset: uint32(offset)}
	}
	r.br.pos, r.br.value, r.br.consumed = pos, v, c
	r.llState, r.ofState, r.mlState = llState, ofState, mlState
	if last {
		seqs = seqs[:len(seqs)+1]
		seqs[len(seqs)-1] = r.decodeLast()
		r.left--
	}
}

// decodeLast decodes the block's last sequence, which reads no state bits.
func (r *seqReader) decodeLast() zstdSeq {
	t := r.tables
	llE := t[0].entries[r.llState&(seqTableMax-1)]
	ofE := t[1].entries[r.ofState&(seqTableMax-1)]
	mlE := t[2].entries[r.mlState&(seqTableMax-1)]
	ofBits := uint8(ofE >> 16)
	ofv := int(ofE>>32) + int(r.br.get(ofBits))
	r.br.reload()
	ml := int(mlE>>32) + int(r.br.get(uint8(mlE>>16)))
	r.br.reload()
	ll := int(llE>>32) + int(r.br.get(uint8(llE>>16)))
	r.br.reload()
	reps := &r.reps
	if ofBits > 1 {
		reps[0], reps[1], reps[2] = ofv-3, reps[0], reps[1]
	} else {
		idx := ofv - 1
		if ll == 0 {
			idx++
		}
		offset := reps[idx]
		switch idx {
		case 0:
		case 1:
			reps[0], reps[1] = offset, reps[0]
		default:
			reps[0], reps[1], reps[2] = offset, reps[0], reps[1]
		}
	}
	reps[3] = reps[0] - 1
	return zstdSeq{ll: uint32(ll), ml: uint32(ml), offset: uint32(reps[0])}
}

// execute copies the literals and matches of seqs, the block's sequences
// from number first on, into out at op and returns the new output and
// literal positions.
func (d *zstdDecoder) execute(seqs []zstdSeq, first int, out []byte, op, start, limit, litPos, nlit int) (int, int, error) {
	lits := d.lits[:]
	for i := range seqs {
		s := &seqs[i]
		ll, ml, offset := int(s.ll), int(s.ml), int(s.offset)
		if ll > nlit-litPos {
			return 0, 0, fmt.Errorf("sequence %d: literal length %d, %d literals left: %w", first+i, ll, nlit-litPos, ErrCorrupt)
		}
		end := op + ll + ml
		if ll+ml > limit-op {
			return 0, 0, overLimit(out, limit)
		}
		if offset <= 0 || offset > op+ll-start {
			return 0, 0, fmt.Errorf("sequence %d: match offset %d, %d bytes decoded: %w", first+i, offset, op+ll-start, ErrCorrupt)
		}
		if end+32 <= len(out) {
			// Wild copies: room for 32 bytes past end.
			*(*[16]byte)(out[op:]) = *(*[16]byte)(lits[litPos:])
			if ll > 64 {
				// memmove copies long runs in wider words.
				copy(out[op+16:op+ll], lits[litPos+16:litPos+ll])
			} else {
				for i := 16; i < ll; i += 16 {
					*(*[16]byte)(out[op+i:]) = *(*[16]byte)(lits[litPos+i:])
				}
			}
			op += ll
			litPos += ll
			if offset >= 16 && ml <= 32 {
				// Most matches are short: a second copy would stall on
				// loading what the first just stored when offset < 32.
				*(*[16]byte)(out[op:]) = *(*[16]byte)(out[op-offset:])
				if ml > 16 {
					*(*[16]byte)(out[op+16:]) = *(*[16]byte)(out[op+16-offset:])
				}
			} else {
				zstdMatch(out, op, offset, ml)
			}
		} else {
			copy(out[op:op+ll], lits[litPos:litPos+ll])
			op += ll
			litPos += ll
			zstdMatchCareful(out, op, offset, ml)
		}
		op = end
	}
	return op, litPos, nil
}

// zstdMatch copies the ml-byte match at offset (1 <= offset <= op) back
// from out[op], writing up to 32 bytes past op+ml.
func zstdMatch(out []byte, op, offset, ml int) {
	src := op - offset
	if offset >= ml && ml > 64 {
		copy(out[op:op+ml], out[src:src+ml])
		return
	}
	if offset >= 16 {
		for i := 0; i < ml; i += 16 {
			*(*[16]byte)(out[op+i:]) = *(*[16]byte)(out[src+i:])
		}
		return
	}
	// Expand the pattern until the copy distance is at least 8, as
	// libzstd's ZSTD_overlapCopy8 does, then copy 8 bytes at a time.
	end := op + ml
	if offset < 8 {
		out[op] = out[src]
		out[op+1] = out[src+1]
		out[op+2] = out[src+2]
		out[op+3] = out[src+3]
		src += int(overlapAdd[offset])
		*(*[4]byte)(out[op+4:]) = *(*[4]byte)(out[src:])
		src -= int(overlapSub[offset])
	} else {
		*(*[8]byte)(out[op:]) = *(*[8]byte)(out[src:])
	}
	src += 8
	op += 8
	if op >= end {
		return
	}
	if ml >= 64 {
		// Long runs: with 16 bytes written, widen the distance to the
		// smallest multiple of the offset that is at least 16 (less than
		// 16+offset back, so still inside the repeated pattern), then copy
		// 16 bytes at a time.
		*(*[8]byte)(out[op:]) = *(*[8]byte)(out[src:])
		op += 8
		src += 8
		src = op - int(overlapDist16[offset])
		for ; op < end; op += 16 {
			*(*[16]byte)(out[op:]) = *(*[16]byte)(out[src:])
			src += 16
		}
		return
	}
	for ; op < end; op += 8 {
		binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[src:]))
		src += 8
	}
}

// overlapAdd and overlapSub step the source of a short-offset match so that
// after its first 8 bytes the copy distance is a multiple of the offset and
// at least 8 (libzstd's dec32table and dec64table).
var (
	overlapAdd = [8]uint8{0, 1, 2, 1, 4, 4, 4, 4}
	overlapSub = [8]uint8{8, 8, 8, 7, 8, 9, 10, 11}
	// overlapDist16 is the smallest multiple of each offset below 16 that
	// is at least 16.
	overlapDist16 = [16]uint8{0, 16, 16, 18, 16, 20, 18, 21, 16, 18, 20, 22, 24, 26, 28, 30}
)

// zstdMatchCareful is zstdMatch without writing past op+ml.
func zstdMatchCareful(out []byte, op, offset, ml int) {
	src := op - offset
	if offset >= ml {
		copy(out[op:op+ml], out[src:src+ml])
		return
	}
	// Each copy doubles the repeated span and never overlaps itself.
	for n := 0; n < ml; {
		n += copy(out[op+n:op+ml], out[src:op+n])
	}
}
