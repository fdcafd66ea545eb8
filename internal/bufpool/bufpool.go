// Package bufpool recycles byte buffers in power-of-two size classes. It is
// the one buffer pool of the project, in two forms over the same classes:
// Pool lends aligned buffers (for O_DIRECT) and takes back any slice of one
// it lent, even one re-sliced from an offset inside it, as the stores need;
// Sized takes back any buffer at all, filed under the largest class its
// capacity covers, as the decoders need (a codec may return a buffer it
// allocated itself, and decoded chunks may be kept by a cache instead).
package bufpool

import (
	"math/bits"
	"sync"
	"unsafe"
)

// minClass is the smallest size Pool recycles: smaller reads (metadata) are
// not worth the bookkeeping and get a plain allocation.
const minClass = 12 // 4 KiB

// maxClass bounds what is kept for reuse: bigger buffers are allocated and
// dropped, so that one huge read does not pin its memory forever.
const maxClass = 30 // 1 GiB

// classes holds free buffers by class: class c holds buffers of capacity
// 1<<c. The zero value is ready.
type classes struct {
	free [maxClass + 1]sync.Pool // *[]byte
	// boxes recycles the *[]byte boxes themselves, so that a steady stream
	// of take/give allocates nothing.
	boxes sync.Pool
}

// classOf is the class a request of n > 0 bytes is served from.
func classOf(n int) int { return bits.Len(uint(n - 1)) }

// take returns a free buffer of class c at full capacity, or nil.
func (cs *classes) take(c int) []byte {
	box, ok := cs.free[c].Get().(*[]byte)
	if !ok {
		return nil
	}
	b := *box
	*box = nil
	cs.boxes.Put(box)
	return b
}

// give files b (at full capacity) under class c.
func (cs *classes) give(c int, b []byte) {
	box, _ := cs.boxes.Get().(*[]byte)
	if box == nil {
		box = new([]byte)
	}
	*box = b[:cap(b)]
	cs.free[c].Put(box)
}

// Capacity is the capacity of the buffer Sized.Get(n) returns: n rounded
// up to its class, which is the memory a decoded chunk kept in a pool
// (pool.Chunks counts capacities) holds.
func Capacity(n int) int {
	if n <= 0 {
		return 0
	}
	if c := classOf(n); c <= maxClass {
		return 1 << c
	}
	return n
}

// Sized hands out buffers and takes back any buffer. The zero value is
// ready to use.
type Sized struct{ cs classes }

// Get returns a buffer of length n (nil for n <= 0).
func (p *Sized) Get(n int) []byte {
	if n <= 0 {
		return nil
	}
	c := classOf(n)
	if c > maxClass {
		return make([]byte, n)
	}
	if b := p.cs.take(c); b != nil {
		return b[:n]
	}
	return make([]byte, n, 1<<c)
}

// Put gives b back, under the largest class its capacity covers, so that
// buffers not from Get (or resliced below their class) still serve later
// requests.
func (p *Sized) Put(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := bits.Len(uint(cap(b))) - 1
	if c > maxClass {
		return
	}
	p.cs.give(c, b)
}

// Pool lends aligned buffers and takes them back. The zero value is not
// usable; use New.
type Pool struct {
	align int
	cs    classes

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
	c := classOf(n)
	if c > maxClass {
		buf := p.alloc(n)
		p.track(buf)
		return buf[:n]
	}
	// Only Release files buffers under p's classes, and only ones p
	// allocated, so every buffer taken is aligned.
	buf := p.cs.take(c)
	if buf == nil {
		buf = p.alloc(1 << c)
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
	c := classOf(cap(buf))
	if cap(buf) != 1<<c || c > maxClass {
		return
	}
	p.cs.give(c, buf)
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
