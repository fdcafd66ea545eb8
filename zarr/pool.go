package zarr

import (
	"math/bits"
	"sync"
)

// bufPool recycles decode buffers in power-of-two size classes, so that
// chunks of one array (all the same size) reuse each other's buffers.
type bufPool struct {
	classes [48]sync.Pool // *[]byte of capacity 1<<class
	// headers recycles the *[]byte boxes themselves, so that a steady
	// stream of get/put allocates nothing.
	headers sync.Pool
}

func newBufPool() *bufPool { return &bufPool{} }

// get returns a buffer of length n.
func (p *bufPool) get(n int) []byte {
	if n <= 0 {
		return nil
	}
	c := bits.Len(uint(n - 1))
	if c >= len(p.classes) {
		return make([]byte, n)
	}
	if h, ok := p.classes[c].Get().(*[]byte); ok {
		b := (*h)[:n]
		*h = nil
		p.headers.Put(h)
		return b
	}
	return make([]byte, n, 1<<c)
}

// put gives b back, into the largest class its capacity covers, so that
// buffers not from get (or resliced below their capacity class) still
// serve later requests.
func (p *bufPool) put(b []byte) {
	c := cap(b)
	if c == 0 {
		return
	}
	k := bits.Len(uint(c)) - 1
	if k >= len(p.classes) {
		return
	}
	h, _ := p.headers.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = b[:c]
	p.classes[k].Put(h)
}
