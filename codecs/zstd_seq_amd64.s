//go:build amd64 && !purego

#include "go_asm.h"
#include "textflag.h"

#define BR_IN (seqReader_br+zstdBits_in)
#define BR_POS (seqReader_br+zstdBits_pos)
#define BR_VALUE (seqReader_br+zstdBits_value)
#define BR_CONSUMED (seqReader_br+zstdBits_consumed)
#define LL_ENTRIES (seqTable_entries)
#define OF_ENTRIES (seqTable__size+seqTable_entries)
#define ML_ENTRIES (2*seqTable__size+seqTable_entries)

// func decodeSeqsBMI2(r *seqReader, seqs *zstdSeq, n int) int
//
// Registers: DI points at in[pos], R8 holds the 8 bytes there, R9 the bits
// consumed from their top; R10 the tables; R12, R13, R11 the literal
// length, match length and offset states; R14 the next sequence; BX, CX,
// DX the three table entries. Locals: 0(SP) the end of seqs, 8(SP)
// in[8], 16(SP) r, 24(SP) the repeat offsets.
TEXT ·decodeSeqsBMI2(SB), NOSPLIT, $32-32
	MOVQ r+0(FP), AX
	MOVQ AX, 16(SP)
	MOVQ BR_IN(AX), SI
	MOVQ BR_POS(AX), DI
	ADDQ SI, DI
	ADDQ $8, SI
	MOVQ SI, 8(SP)
	MOVQ BR_VALUE(AX), R8
	MOVQ BR_CONSUMED(AX), R9
	MOVQ seqReader_tables(AX), R10
	LEAQ seqReader_reps(AX), SI
	MOVQ SI, 24(SP)
	MOVL seqReader_llState(AX), R12
	MOVL seqReader_ofState(AX), R11
	MOVL seqReader_mlState(AX), R13
	MOVQ seqs+8(FP), R14
	MOVQ n+16(FP), SI
	IMULQ $zstdSeq__size, SI
	ADDQ R14, SI
	MOVQ SI, 0(SP)

loop:
	CMPQ R14, 0(SP)
	JAE  done
	CMPQ DI, 8(SP)
	JB   done

	MOVQ R12, AX
	ANDQ $0x1ff, AX
	MOVQ LL_ENTRIES(R10)(AX*8), BX
	MOVQ R11, AX
	ANDQ $0x1ff, AX
	MOVQ OF_ENTRIES(R10)(AX*8), CX
	MOVQ R13, AX
	ANDQ $0x1ff, AX
	MOVQ ML_ENTRIES(R10)(AX*8), DX

	// AX = offset bits, SI = offset+match bits, R15 = all value bits.
	MOVQ CX, AX
	SHRQ $16, AX
	ANDQ $63, AX
	MOVQ DX, SI
	SHRQ $16, SI
	ANDQ $63, SI
	MOVQ BX, R15
	SHRQ $16, R15
	ANDQ $63, R15
	ADDQ AX, SI
	ADDQ SI, R15
	CMPQ R15, $31
	JA   done

	// R11 = the unconsumed bits at the top.
	SHLXQ R9, R8, R11

	// Offset value bits: x >> 1 >> (63-ofBits).
	MOVQ  R11, R12
	SHRQ  $1, R12
	MOVQ  $63, R13
	SUBQ  AX, R13
	SHRXQ R13, R12, R12

	// Match length: x << ofBits >> 1 >> (63-mlBits), mlBits = SI-AX.
	SHLXQ AX, R11, R13
	SHRQ  $1, R13
	SUBQ  SI, AX
	ADDQ  $63, AX
	SHRXQ AX, R13, R13
	MOVQ  DX, AX
	SHRQ  $32, AX
	ADDL  R13, AX
	MOVL  AX, zstdSeq_ml(R14)

	// Offset value, kept in the sequence until the repeat offsets.
	MOVQ CX, AX
	SHRQ $32, AX
	ADDQ R12, AX
	MOVL AX, zstdSeq_offset(R14)

	// Literal length: x << SI >> 1 >> (63-llBits), llBits = R15-SI.
	SHLXQ SI, R11, R13
	SHRQ  $1, R13
	SUBQ  R15, SI
	ADDQ  $63, SI
	SHRXQ SI, R13, R13
	MOVQ  BX, AX
	SHRQ  $32, AX
	ADDL  R13, AX
	MOVL  AX, zstdSeq_ll(R14)

	// Literal length state from R15 on.
	MOVQ    BX, AX
	SHRQ    $24, AX
	ANDQ    $63, AX
	SHLXQ   R15, R11, R12
	SHRQ    $1, R12
	ADDQ    AX, R15
	NEGQ    AX
	ADDQ    $63, AX
	SHRXQ   AX, R12, R12
	MOVWQZX BX, AX
	ADDQ    AX, R12

	// Match length state.
	MOVQ    DX, AX
	SHRQ    $24, AX
	ANDQ    $63, AX
	SHLXQ   R15, R11, R13
	SHRQ    $1, R13
	ADDQ    AX, R15
	NEGQ    AX
	ADDQ    $63, AX
	SHRXQ   AX, R13, R13
	MOVWQZX DX, AX
	ADDQ    AX, R13

	// Offset state.
	MOVQ    CX, AX
	SHRQ    $24, AX
	ANDQ    $63, AX
	SHLXQ   R15, R11, SI
	SHRQ    $1, SI
	ADDQ    AX, R15
	NEGQ    AX
	ADDQ    $63, AX
	SHRXQ   AX, SI, SI
	MOVWQZX CX, AX
	LEAQ    (SI)(AX*1), R11

	// Consume and reload: at most 7+57 bits were taken, and DI >= in+8.
	ADDQ R15, R9
	MOVQ R9, AX
	SHRQ $3, AX
	SUBQ AX, DI
	ANDQ $7, R9
	MOVQ (DI), R8

	// Repeat offsets, as in the Go loop: idx = ofv-1, plus 1 when the
	// literal length is 0; new offsets (ofBits > 1) are ofv-3 at idx 3.
	MOVQ    24(SP), SI
	MOVL    zstdSeq_offset(R14), AX
	XORL    R15, R15
	CMPL    zstdSeq_ll(R14), $0
	SETEQ   R15B
	LEAQ    -1(AX)(R15*1), R15
	MOVQ    R15, BX
	ANDQ    $3, BX
	MOVQ    (SI)(BX*8), DX
	SUBQ    $3, AX
	SHRQ    $16, CX
	ANDQ    $63, CX
	CMPQ    CX, $1
	CMOVQHI AX, DX
	MOVQ    $3, AX
	CMOVQHI AX, R15
	MOVQ    8(SI), BX
	MOVQ    16(SI), AX
	CMPQ    R15, $2
	CMOVQCC BX, AX
	CMPQ    R15, $1
	CMOVQCC 0(SI), BX
	MOVQ    DX, 0(SI)
	MOVQ    BX, 8(SI)
	MOVQ    AX, 16(SI)
	LEAQ    -1(DX), BX
	MOVQ    BX, 24(SI)
	MOVL    DX, zstdSeq_offset(R14)

	ADDQ $zstdSeq__size, R14
	JMP  loop

done:
	MOVQ 16(SP), AX
	MOVQ DI, SI
	SUBQ BR_IN(AX), SI
	MOVQ SI, BR_POS(AX)
	MOVQ R8, BR_VALUE(AX)
	MOVQ R9, BR_CONSUMED(AX)
	MOVL R12, seqReader_llState(AX)
	MOVL R11, seqReader_ofState(AX)
	MOVL R13, seqReader_mlState(AX)
	MOVQ R14, AX
	SUBQ seqs+8(FP), AX
	XORL DX, DX
	MOVQ $zstdSeq__size, CX
	DIVQ CX
	MOVQ AX, ret+24(FP)
	RET
