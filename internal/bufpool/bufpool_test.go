package bufpool

import (
	"testing"
	"unsafe"
)

func TestGetRelease(t *testing.T) {
	for _, tc := range []struct {
		align, n int
		pooled   bool
	}{
		{4096, 0, false},
		{4096, 100, false},
		{4096, 4096, true},
		{4096, 4097, true},
		{4096, 1 << 20, true},
		{64, 5000, true},
		{1, 70000, true},
		{3, 8192, true}, // not a power of two: 4096 is used
	} {
		p := New(tc.align)
		buf := p.Get(tc.n)
		if len(buf) != tc.n {
			t.Fatalf("Get(%d) has length %d", tc.n, len(buf))
		}
		if tc.pooled {
			if addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf))); addr%uintptr(p.Align()) != 0 {
				t.Fatalf("align %d: Get(%d) starts at %#x", p.Align(), tc.n, addr)
			}
			if p.Outstanding() != 1 {
				t.Fatalf("Get(%d): %d outstanding, want 1", tc.n, p.Outstanding())
			}
		}
		for i := range buf {
			buf[i] = byte(i)
		}
		// Callers may hand back a re-slice that starts inside the buffer,
		// as O_DIRECT reads do.
		if len(buf) > 10 {
			buf = buf[7:9]
		}
		p.Release(buf)
		p.Release(buf) // a second release is ignored
		if p.Outstanding() != 0 {
			t.Fatalf("Get(%d): %d outstanding after Release", tc.n, p.Outstanding())
		}
	}
}

func TestReleaseForeign(t *testing.T) {
	p := New(4096)
	foreign := make([]byte, 8192)
	p.Release(foreign)
	p.Release(nil)
	buf := p.Get(8192)
	if unsafe.SliceData(buf) == unsafe.SliceData(foreign) {
		t.Fatal("a slice the pool never lent was recycled")
	}
}

func BenchmarkGetRelease(b *testing.B) {
	p := New(4096)
	b.SetBytes(64 << 10)
	for b.Loop() {
		p.Release(p.Get(64 << 10))
	}
}

func TestSized(t *testing.T) {
	var p Sized
	if p.Get(0) != nil {
		t.Fatal("Get(0) is not nil")
	}
	for _, n := range []int{1, 100, 4096, 4097, 1 << 20} {
		b := p.Get(n)
		if len(b) != n || cap(b)&(cap(b)-1) != 0 {
			t.Fatalf("Get(%d): len %d cap %d, want len %d and a power-of-two cap", n, len(b), cap(b), n)
		}
		p.Put(b[:1])
	}
	// A buffer from elsewhere serves requests its capacity covers: 5000
	// bytes file under the 4096 class.
	foreign := make([]byte, 10, 5000)
	var reused bool
	for range 100 { // sync.Pool may drop items (it does at random under -race)
		p.Put(foreign)
		b := p.Get(4000)
		if unsafe.SliceData(b) == unsafe.SliceData(foreign) {
			reused = true
			break
		}
	}
	if !reused {
		t.Error("a foreign buffer was never handed out again")
	}
}

func BenchmarkSizedGetPut(b *testing.B) {
	var p Sized
	b.SetBytes(64 << 10)
	for b.Loop() {
		p.Put(p.Get(64 << 10))
	}
}

// TestCapacityIsWhatGetGives: Capacity names the cap of Sized.Get's buffer,
// the memory a pool that counts capacities charges for it.
func TestCapacityIsWhatGetGives(t *testing.T) {
	var p Sized
	for _, tc := range []struct{ n, want int }{
		{0, 0},
		{1, 1},
		{4096, 4096},
		{4097, 8192},
		{786432, 1 << 20},  // a (12, 128, 128) float32 chunk
		{1639616, 2 << 20}, // a (17, 176, 137) float32 chunk
		{1<<maxClass + 1, 1<<maxClass + 1},
	} {
		if got := Capacity(tc.n); got != tc.want {
			t.Errorf("Capacity(%d) = %d, want %d", tc.n, got, tc.want)
		}
		if tc.n > 0 && tc.n <= 1<<maxClass {
			if got := cap(p.Get(tc.n)); got != tc.want {
				t.Errorf("cap(Get(%d)) = %d, Capacity says %d", tc.n, got, tc.want)
			}
		}
	}
}
