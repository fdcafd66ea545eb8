//go:build amd64 && !purego

package codecs

import "golang.org/x/sys/cpu"

// decodeSeqsBMI2 decodes sequences into seqs[:n] while the bit reader has
// 8 bytes in hand and the three values take at most 31 bits (so all six
// fields fit in what one reload brings), updating r's bit reader, states
// and repeat offsets; it returns how many it decoded. The Go compiler
// spills the bit reader and states of this loop to the stack; here they
// stay in registers, and BMI2's shifts leave CX free.
//
//go:noescape
func decodeSeqsBMI2(r *seqReader, seqs *zstdSeq, n int) int

// decodeSeqsFast decodes the leading sequences of seqs that the assembly
// loop handles and returns how many, every one of which updates the
// states.
func decodeSeqsFast(r *seqReader, seqs []zstdSeq) int {
	// The loop relies on a reload having left at most 7 bits consumed.
	if len(seqs) == 0 || !cpu.X86.HasBMI2 || r.br.pos < 8 || r.br.consumed > 7 {
		return 0
	}
	return decodeSeqsBMI2(r, &seqs[0], len(seqs))
}
