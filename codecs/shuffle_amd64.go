//go:build amd64 && !purego

package codecs

// The SSE2 kernels interleave 16 elements per iteration with the unpack
// instructions; SSE2 is part of the amd64 baseline, so no CPU check is
// needed. stride is the length of each byte stream, count the number of
// elements to interleave (a multiple of 16, at most stride).

//go:noescape
func unshuffle2SSE2(dst, src *byte, stride, count int)

//go:noescape
func unshuffle4SSE2(dst, src *byte, stride, count int)

//go:noescape
func unshuffle8SSE2(dst, src *byte, stride, count int)

func unshuffle2(dst, src []byte, n int) int {
	count := n &^ 15
	if count == 0 || len(dst) < 2*n || len(src) < 2*n {
		return 0
	}
	unshuffle2SSE2(&dst[0], &src[0], n, count)
	return count
}

func unshuffle4(dst, src []byte, n int) int {
	count := n &^ 15
	if count == 0 || len(dst) < 4*n || len(src) < 4*n {
		return 0
	}
	unshuffle4SSE2(&dst[0], &src[0], n, count)
	return count
}

func unshuffle8(dst, src []byte, n int) int {
	count := n &^ 15
	if count == 0 || len(dst) < 8*n || len(src) < 8*n {
		return 0
	}
	unshuffle8SSE2(&dst[0], &src[0], n, count)
	return count
}
