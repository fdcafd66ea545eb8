// Package bufpool recycles the read buffers that the stores hand to their
// callers: buffers come in power-of-two size classes with an aligned start
// (for O_DIRECT), and Release takes back any slice that Get handed out, even
// one re-sliced from an offset inside the buffer.
package bufpool

import (
	"math/bits"
	"sync"
	"unsafe"
)

// minClass is the smallest pooled size: smaller reads (metadata) are not
// worth the bookkeeping and get a plain allocation.
const minClass = 12 // 4 KiB

// maxClass bounds what is kept for reuse: bigger buffers are allocated and
// dropped, so that one huge read does not pin its memory forever.
const maxClass = 30 // 1 GiB

// Pool hands out buffers and takes them back. The zero value is not usable;
// use New.
type Pool struct {
	align   int
	classes [maxClass + 1]sync.Pool

	mu sync.Mutex
	// lent maps the address one past the end of every lent buffer to the
	// buffer. The end is what every slice handed out keeps (they all extend
	// to the buffer's cap), whatever offset the caller's data starts at.
	lent map[uintptr][]byte
}

// New returns a pool whose buffers start at a multiple of align, which must
// be a power of two (1 for no alignment).
func New(align int) *Pool {
	if align < 1 || align&(align-1) != 0 {
		align = 4096
	}
	return &Pool{align: align, lent: make(map[uintptr][]byte)}
}

// Align is the alignment of every buffer start.
func (p *Pool) Align() int { return p.align }

// Get returns a buffer of length n whose start is aligned. Its cap may be
// larger than n; any re-slice of it that keeps the cap goes back with Release.
func (p *Pool) Get(n int) []byte {
	if n < 1<<minClass {
		if n == 0 {
			return []byte{}
		}
		return make([]byte, n)
	}
	class := bits.Len(uint(n - 1))
	if class > maxClass {
		buf := p.alloc(n)
		p.track(buf)
		return buf[:n]
	}
	var buf []byte
	if v := p.classes[class].Get(); v != nil {
		buf = *(v.(*[]byte))
	} else {
		buf = p.alloc(1 << class)
	}
	p.track(buf)
	return buf[:n]
}

// Release gives back a slice obtained from Get (or a re-slice of it that
// keeps its cap). Slices the pool did not lend, and second releases, are
// ignored.
func (p *Pool) Release(data []byte) {
	if cap(data) == 0 {
		return
	}
	end := uintptr(unsafe.Pointer(unsafe.SliceData(data))) + uintptr(cap(data))
	p.mu.Lock()
	buf, ok := p.lent[end]
	if ok {
		delete(p.lent, end)
	}
	p.mu.Unlock()
	if !ok {
		return
	}
	class := bits.Len(uint(cap(buf) - 1))
	if cap(buf) != 1<<class || class > maxClass {
		return
	}
	p.classes[class].Put(&buf)
}

// Outstanding is the number of lent buffers not yet released; tests use it
// to check that every buffer comes back.
func (p *Pool) Outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lent)
}

func (p *Pool) track(buf []byte) {
	end := uintptr(unsafe.Pointer(unsafe.SliceData(buf))) + uintptr(cap(buf))
	p.mu.Lock()
	p.lent[end] = buf[:cap(buf)]
	p.mu.Unlock()
}

// alloc returns a buffer of exactly size bytes of cap whose start is
// aligned; the slack before the aligned start is wasted, never handed out.
func (p *Pool) alloc(size int) []byte {
	raw := make([]byte, size+p.align-1)
	start := 0
	if rem := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & uintptr(p.align-1)); rem != 0 {
		start = p.align - rem
	}
	return raw[start : start+size : start+size]
}
