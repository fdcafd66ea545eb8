//go:build !amd64 || purego

package codecs

func unshuffle2(dst, src []byte, n int) int { return unshuffle2Generic(dst, src, n) }
func unshuffle4(dst, src []byte, n int) int { return unshuffle4Generic(dst, src, n) }
func unshuffle8(dst, src []byte, n int) int { return unshuffle8Generic(dst, src, n) }
