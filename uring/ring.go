package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI of io_uring (include/uapi/linux/io_uring.h).
const (
	opRead = 22 // IORING_OP_READ

	setupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN
	setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP

	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// The layouts above must match the kernel's byte for byte.
var _ [120 - unsafe.Sizeof(params{})]struct{}
var _ [unsafe.Sizeof(params{}) - 120]struct{}
var _ [64 - unsafe.Sizeof(sqe{})]struct{}
var _ [unsafe.Sizeof(sqe{}) - 64]struct{}
var _ [16 - unsafe.Sizeof(cqe{})]struct{}

// ring is one io_uring instance. It is used by one OS thread only (the
// worker that made it), which is what IORING_SETUP_SINGLE_ISSUER promises.
type ring struct {
	fd int

	sqMem, cqMem, sqeMem []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	// pending counts SQEs written but not yet passed to io_uring_enter.
	pending uint32
}

// newRing sets up a ring with at least entries submission slots. It first
// asks for the flags that suit one ring per thread and retries without them
// on kernels that do not know them.
func newRing(entries uint32) (*ring, error) {
	var p params
	var fd uintptr
	var errno unix.Errno
	for _, flags := range []uint32{setupSingleIssuer | setupDeferTaskrun, setupCoopTaskrun, 0} {
		p = params{flags: flags}
		fd, _, errno = unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
		if errno != unix.EINVAL {
			break
		}
	}
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(%d entries): %w", entries, errno)
	}
	r := &ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("mmap io_uring CQ ring: %w", err)
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}

	sq := unsafe.Pointer(unsafe.SliceData(r.sqMem))
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(unsafe.SliceData(r.sqeMem))), p.sqEntries)
	// Slot i of the SQ array always names SQE i: SQEs are filled in ring
	// order, so the indirection is set once here.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}

	cq := unsafe.Pointer(unsafe.SliceData(r.cqMem))
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cq, p.cqOff.cqes)), p.cqEntries)
	return nil
}

func (r *ring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && unsafe.SliceData(r.cqMem) != unsafe.SliceData(r.sqMem) {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	unix.Close(r.fd)
}

// prepRead writes a read SQE into the next free slot; it reports false when
// the submission queue is full. The buffer must stay reachable until its
// completion arrives: the caller's slot table holds it.
func (r *ring) prepRead(fd int, buf []byte, off int64, userData uint64) bool {
	head := atomic.LoadUint32(r.sqHead)
	tail := *r.sqTail + r.pending
	if tail-head >= r.sqEntries {
		return false
	}
	e := &r.sqes[tail&r.sqMask]
	*e = sqe{
		opcode:   opRead,
		fd:       int32(fd),
		off:      uint64(off),
		addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))),
		len:      uint32(len(buf)),
		userData: userData,
	}
	r.pending++
	return true
}

// submitAndWait publishes the prepared SQEs and enters the kernel once,
// submitting every SQE it has not consumed yet and waiting for at least
// waitFor completions.
func (r *ring) submitAndWait(waitFor uint32) (int, error) {
	if r.pending > 0 {
		// The store-release of the tail makes the SQE contents visible to
		// the kernel before it sees the new tail.
		atomic.StoreUint32(r.sqTail, *r.sqTail+r.pending)
		r.pending = 0
	}
	flags := uintptr(0)
	if waitFor > 0 {
		flags = enterGetEvents
	}
	for {
		// Counting from the SQ head also resubmits what an earlier enter
		// left unconsumed (EAGAIN, EBUSY, EINTR).
		toSubmit := *r.sqTail - atomic.LoadUint32(r.sqHead)
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitFor), flags, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			// The kernel is short of resources or of CQ space: reaping
			// completions (the caller does next) frees both.
			return 0, nil
		default:
			return int(n), fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// reap calls fn for every completion ready in the CQ and then frees their
// slots.
func (r *ring) reap(fn func(userData uint64, res int32)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		fn(c.userData, c.res)
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// errUnsupported marks a failed io_uring probe, for the fallback decision.
var errUnsupported = errors.New("io_uring unavailable")

// probe reports whether this process may use io_uring, the way the store
// decides between the ring workers and the pread pool.
func probe() error {
	r, err := newRing(4)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnsupported, err)
	}
	r.close()
	return nil
}
