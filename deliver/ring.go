// Package deliver hands batches to clients on the same host through shared
// memory: a Ring of slots on a memfd, which the cropper fills in place and
// the client maps, and a Broker that passes the memfd over a unix socket
// and hears which slots the client has freed.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Slot is one batch's region of a Ring. Gen tells this lease of the slot
// from earlier ones, so that a late release of an earlier batch cannot
// free the batch now in it.
type Slot struct {
	Index  int
	Gen    uint64
	Offset int64
	Mem    []byte
}

// Ring is a memfd split into equal slots, each leased to one batch from
// Acquire until the client releases it. A slot is never handed out again
// while leased: the client's arrays over it stay valid.
type Ring struct {
	fd        int
	mem       []byte
	slotBytes int64

	mu     sync.Mutex
	gen    []uint64
	leased []bool
	closed bool
	freed  chan struct{} // closed, and replaced, whenever a slot is released

	fetchOnce sync.Once
	fetched   chan struct{} // closed once a client has been given the memfd
	goneOnce  sync.Once
	gone      chan struct{} // closed once that client has hung up
}

// ErrClosed is returned by Acquire on a closed Ring.
var ErrClosed = errors.New("deliver: ring closed")

// NewRing makes a ring of slots slots of slotBytes each on a fresh memfd
// named name. Pages are only allocated as the cropper first writes them.
func NewRing(name string, slots int, slotBytes int64) (*Ring, error) {
	if slots < 1 || slotBytes < 1 {
		return nil, fmt.Errorf("deliver: ring of %d slots of %d bytes: want at least one slot of at least one byte", slots, slotBytes)
	}
	// Slots start on page boundaries so that each can be mapped and
	// released on its own, and numpy sees aligned data.
	page := int64(unix.Getpagesize())
	slotBytes = (slotBytes + page - 1) / page * page
	size := slotBytes * int64(slots)
	if size/int64(slots) != slotBytes || size > 1<<40 {
		return nil, fmt.Errorf("deliver: ring of %d slots of %d bytes is too large", slots, slotBytes)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("deliver: memfd_create %q: %w", name, err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("deliver: sizing memfd %q to %d bytes: %w", name, size, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("deliver: mapping memfd %q (%d bytes): %w", name, size, err)
	}
	return &Ring{
		fd: fd, mem: mem, slotBytes: slotBytes,
		gen: make([]uint64, slots), leased: make([]bool, slots), freed: make(chan struct{}),
		fetched: make(chan struct{}), gone: make(chan struct{}),
	}, nil
}

// FD is the memfd, to pass to the client.
func (r *Ring) FD() int { return r.fd }

// Size is the ring's bytes: what it costs in memory once every slot has
// been written.
func (r *Ring) Size() int64 { return int64(len(r.mem)) }

// SlotBytes is the size of each slot (rounded up to whole pages).
func (r *Ring) SlotBytes() int64 { return r.slotBytes }

// Fetched is closed once a client has been given the memfd: until then
// the ring must stay registered, however far the stream has got.
func (r *Ring) Fetched() <-chan struct{} { return r.fetched }

func (r *Ring) markFetched() { r.fetchOnce.Do(func() { close(r.fetched) }) }

// Gone is closed once the client given the memfd has closed its side
// connection: a client closes it only when it no longer maps the ring (or
// dies), so the ring may then be reused for another stream.
func (r *Ring) Gone() <-chan struct{} { return r.gone }

func (r *Ring) markGone() { r.goneOnce.Do(func() { close(r.gone) }) }

// Reset readies a ring no client maps any more for another stream: every
// slot free, no client yet. Generations carry on, so a release meant for
// the ring's last use can never free a slot of its next.
func (r *Ring) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.leased)
	r.fetchOnce, r.fetched = sync.Once{}, make(chan struct{})
	r.goneOnce, r.gone = sync.Once{}, make(chan struct{})
}

// Slots is how many slots the ring has.
func (r *Ring) Slots() int { return len(r.gen) }

// Acquire leases a free slot, waiting up to wait (or ctx) for the client
// to release one. A client that keeps every slot longer fails the wait
// rather than having a slot taken back from under its arrays.
func (r *Ring) Acquire(ctx context.Context, wait time.Duration) (Slot, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return Slot{}, ErrClosed
		}
		for i, busy := range r.leased {
			if !busy {
				r.leased[i] = true
				r.gen[i]++
				off := int64(i) * r.slotBytes
				s := Slot{Index: i, Gen: r.gen[i], Offset: off, Mem: r.mem[off : off+r.slotBytes : off+r.slotBytes]}
				r.mu.Unlock()
				return s, nil
			}
		}
		freed := r.freed
		r.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return Slot{}, ctx.Err()
		case <-timer.C:
			return Slot{}, fmt.Errorf("deliver: the client held all %d shared-memory slots for %v without freeing one (is it keeping every batch alive?)", len(r.gen), wait)
		}
	}
}

// Release returns slot index, leased as generation gen, to the ring. A
// release for a slot that is not leased under gen is an error and changes
// nothing.
func (r *Ring) Release(index int, gen uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if index < 0 || index >= len(r.gen) {
		return fmt.Errorf("deliver: release of slot %d: the ring has %d slots", index, len(r.gen))
	}
	if !r.leased[index] || r.gen[index] != gen {
		return fmt.Errorf("deliver: release of slot %d generation %d: slot is at generation %d, leased %v", index, gen, r.gen[index], r.leased[index])
	}
	r.leased[index] = false
	close(r.freed)
	r.freed = make(chan struct{})
	return nil
}

// Leased is how many slots are leased now.
func (r *Ring) Leased() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.leased {
		if l {
			n++
		}
	}
	return n
}

// Close unmaps the ring and closes its memfd; a client's own mapping stays
// valid until it unmaps it, and the memory is freed with the last mapping.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.freed)
	r.freed = make(chan struct{})
	err := unix.Munmap(r.mem)
	r.mem = nil
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("deliver: closing ring: %w", err)
	}
	return nil
}
