package deliver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRingLeases(t *testing.T) {
	r, err := NewRing("test", 2, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.SlotBytes() != 8192 || r.Size() != 16384 {
		t.Fatalf("slots of %d bytes, ring of %d: want whole pages", r.SlotBytes(), r.Size())
	}
	ctx := context.Background()
	a, err := r.Acquire(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Acquire(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Index == b.Index || len(a.Mem) != 8192 || a.Offset == b.Offset {
		t.Fatalf("two leases share a slot: %+v %+v", a.Index, b.Index)
	}
	a.Mem[0] = 7
	// Full: the wait fails, naming why, rather than reusing a held slot.
	if _, err := r.Acquire(ctx, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "held all 2") {
		t.Fatalf("acquire on a full ring: %v", err)
	}
	for _, tc := range []struct {
		name       string
		index      int
		gen        uint64
		wantErrSub string
	}{
		{"slot out of range", 5, 1, "has 2 slots"},
		{"stale generation", a.Index, a.Gen + 1, "generation"},
		{"negative slot", -1, 1, "has 2 slots"},
		{"the lease", a.Index, a.Gen, ""},
		{"twice", a.Index, a.Gen, "leased false"},
	} {
		err := r.Release(tc.index, tc.gen)
		if (err == nil) != (tc.wantErrSub == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErrSub)) {
			t.Errorf("%s: release(%d, %d) = %v, want error containing %q", tc.name, tc.index, tc.gen, err, tc.wantErrSub)
		}
	}
	// A waiter gets the slot as soon as it is released.
	got := make(chan Slot, 1)
	c, _ := r.Acquire(ctx, time.Second)
	go func() { s, _ := r.Acquire(ctx, 5*time.Second); got <- s }()
	time.Sleep(20 * time.Millisecond)
	if err := r.Release(b.Index, b.Gen); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.Index != b.Index || s.Gen != b.Gen+1 {
		t.Errorf("waiter got slot %d gen %d, want %d gen %d", s.Index, s.Gen, b.Index, b.Gen+1)
	}
	r.Reset()
	if r.Leased() != 0 {
		t.Errorf("%d slots leased after Reset", r.Leased())
	}
	if err := r.Release(c.Index, c.Gen); err == nil {
		t.Error("a release from before Reset freed a slot")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Acquire(ctx, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire on a closed ring: %v", err)
	}
}

func TestNewRingRefusesBadSizes(t *testing.T) {
	for _, tc := range []struct {
		slots int
		bytes int64
	}{{0, 10}, {3, 0}, {2, 1 << 40}} {
		if r, err := NewRing("bad", tc.slots, tc.bytes); err == nil {
			r.Close()
			t.Errorf("NewRing(%d, %d) succeeded", tc.slots, tc.bytes)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"0 1", "5 18446744073709551615", "", " ", "1", "a b", "-1 2", "2147483648 1", "1 2 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		i, g, err := ParseRelease(line)
		if err != nil {
			return
		}
		if i < 0 || i > 1<<31-1 {
			t.Fatalf("ParseRelease(%q) = slot %d", line, i)
		}
		_ = g
	})
}
