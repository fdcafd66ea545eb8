package uring

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// ringWorker owns one ring on one locked OS thread: it moves jobs from the
// shared queue into SQEs, enters the kernel once per round to submit them
// all and wait for at least one completion, and handles what completed.
func (s *core) ringWorker(depth uint32, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newRing(depth)
	started <- err
	if err != nil {
		return
	}
	defer r.close()

	// slots holds the jobs in flight, indexed by user_data; it also keeps
	// their buffers reachable while the kernel writes into them.
	slots := make([]*job, depth)
	free := make([]uint64, 0, depth)
	for i := range depth {
		free = append(free, uint64(depth-1-i))
	}
	var ready []*job // jobs waiting for an SQE: new ones and short reads
	inflight := 0

	submit := func(j *job) bool {
		if len(free) == 0 {
			return false
		}
		slot := free[len(free)-1]
		if !r.prepRead(j.fd, j.buf[j.filled:], j.off+int64(j.filled), slot) {
			return false
		}
		free = free[:len(free)-1]
		slots[slot] = j
		inflight++
		s.reads.Add(1)
		return true
	}
	take := func(j *job) {
		if err := j.ctx.Err(); err != nil {
			s.fail(j, err)
			return
		}
		ready = append(ready, j)
	}
	complete := func(userData uint64, res int32) {
		j := slots[userData]
		slots[userData] = nil
		free = append(free, userData)
		inflight--
		if res < 0 {
			errno := unix.Errno(-res)
			if errno == unix.EAGAIN || errno == unix.EINTR {
				ready = append(ready, j)
				return
			}
			s.advance(j, 0, errno)
			return
		}
		if s.advance(j, int(res), nil) {
			ready = append(ready, j)
		}
	}

	for {
		if inflight == 0 && len(ready) == 0 {
			select {
			case j := <-s.jobs:
				take(j)
			case <-s.quit:
				return
			}
		}
		// Gather whatever else is queued, up to the free slots, so that it
		// all goes in with one enter.
	gather:
		for len(ready) < len(free) {
			select {
			case j := <-s.jobs:
				take(j)
			default:
				break gather
			}
		}
		n := 0
		for _, j := range ready {
			if !submit(j) {
				break
			}
			n++
		}
		ready = ready[:copy(ready, ready[n:])]
		if inflight == 0 {
			continue
		}
		s.enters.Add(1)
		if _, err := r.submitAndWait(1); err != nil {
			// The ring itself is broken (not one read): fail everything in
			// flight rather than wait for completions that will not come.
			s.log.Error("io_uring ring failed, this worker goes on with pread", "store", s.root, "err", err)
			for i, j := range slots {
				if j != nil {
					slots[i] = nil
					s.advance(j, 0, err)
				}
			}
			for _, j := range ready {
				s.advance(j, 0, err)
			}
			// Carry on without the ring, so that the store never runs out
			// of workers while callers wait on the queue.
			s.preadWorker()
			return
		}
		r.reap(complete)
	}
}

// preadWorker is the fallback: one blocking pread at a time, resubmitting
// the rest after a short read, like a ring slot.
func (s *core) preadWorker() {
	for {
		select {
		case j := <-s.jobs:
			if err := j.ctx.Err(); err != nil {
				s.fail(j, err)
				continue
			}
			for {
				s.reads.Add(1)
				n, err := unix.Pread(j.fd, j.buf[j.filled:], j.off+int64(j.filled))
				if err == unix.EINTR || err == unix.EAGAIN {
					continue
				}
				if !s.advance(j, n, err) {
					break
				}
			}
		case <-s.quit:
			return
		}
	}
}
