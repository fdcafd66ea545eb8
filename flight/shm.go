package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/deliver"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Shared-memory delivery ("delivery": "shm", unix sockets only): the
// crops of each batch are cropped straight into a slot of a memfd ring the
// client has mapped, and the Flight stream carries only the small columns
// (provenance, isel, time labels) with, as each message's app_metadata,
// where in the ring the crops lie. The client frees a slot by a line on
// the broker's side socket once nothing views it. Over TCP the crops
// would cross the network anyway: shm is refused there.

const (
	deliveryArrow = "arrow"
	deliveryShm   = "shm"

	// defaultShmSlots is a stream's ring when the request names no size.
	// The server holds two slots (one being cropped, one being sent). The
	// Python client holds, per stream, the batch its reader thread is
	// receiving, one queued for the consumer (the threads read one batch
	// ahead), the batch the trainer is on and the one before it, alive
	// until the training loop rebinds its variable. A DataLoader worker
	// hands batches over as copies in torch's shared memory, so its
	// prefetch_factor counts copies, not slots: workers need no more. A
	// client that keeps more alive gets the later ones copied out of the
	// ring (_shm.py) rather than stall the server; shm_slots trades
	// memory for fewer such copies.
	defaultShmSlots = 6
	// minShmSlots is the server's two slots and one for the client.
	minShmSlots = 3
	// maxShmSlots bounds a request's ring; each slot is a batch of memory.
	maxShmSlots = 64
	// defaultShmSlotWait is how long a stream waits for the client to free
	// a slot before failing; a dead client fails it at once instead.
	defaultShmSlotWait = 60 * time.Second

	// metaShm is the schema metadata key announcing the ring.
	metaShm = "lsio.shm"
	// metaShmRefused, on a stream that asked for shm but is sent as
	// arrow, says why.
	metaShmRefused = "lsio.shm.refused"
)

// shmAnnounce is the metadata the stream's schema carries under metaShm.
type shmAnnounce struct {
	Socket    string `json:"socket"`
	Token     string `json:"token"`
	Size      int64  `json:"size"`
	Slots     int    `json:"slots"`
	SlotBytes int64  `json:"slot_bytes"`
}

// shmColumn is where one source's crops of a batch lie in the ring.
type shmColumn struct {
	Name   string  `json:"name"`
	Offset int64   `json:"offset"`
	Length int64   `json:"length"`
	Shape  []int64 `json:"shape"`
	DType  string  `json:"dtype"`
}

// shmBatch is a record batch's app_metadata.
type shmBatch struct {
	Slot    int         `json:"slot"`
	Gen     uint64      `json:"gen"`
	Columns []shmColumn `json:"columns"`
}

// startBroker serves the side socket, path of lis plus ".shm", when lis is
// a unix socket; it stops with ctx.
func (s *Server) startBroker(ctx context.Context, lis net.Listener) error {
	addr := lis.Addr()
	if addr.Network() != "unix" {
		return nil
	}
	b, err := deliver.Listen(addr.String()+".shm", s.log)
	if err != nil {
		return fmt.Errorf("shared-memory side socket: %w", err)
	}
	s.broker.Store(b)
	go func() {
		if err := b.Serve(ctx); err != nil {
			s.log.Error("shared-memory side socket", "err", err)
		}
	}()
	return nil
}

// shmStream is one DoGet stream's ring.
type shmStream struct {
	ring       *deliver.Ring
	unregister func()
	schema     *arrow.Schema // the full schema less its tensor columns
	keep       []int         // indices of the full schema's columns sent
	tensors    []int         // and of its tensor columns, per source
	sourceCap  []int64       // a slot's bytes per source, in order
	sender     *payloadSender
	memory     *memoryBudget
	held       int64
	// client is the stream's own context, not cancelled when the server
	// is done sending.
	client context.Context
	pool   *ringPool
	// described: a batch was sent, so the client has a reason to map the
	// ring (a stream failing before its first batch never announced it).
	described bool
	// wait bounds how long a batch waits for the client to free a slot.
	wait time.Duration
}

// validDelivery checks a request's delivery against the connection it
// arrived on.
func validDelivery(ctx context.Context, delivery string) error {
	switch delivery {
	case "", deliveryArrow:
		return nil
	case deliveryShm:
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil && p.Addr.Network() == "unix" {
			return nil
		}
		return status.Error(codes.InvalidArgument, `request: delivery "shm" needs a unix-socket connection on the same host; over TCP ask for "arrow"`)
	}
	return status.Errorf(codes.InvalidArgument, `request: delivery %q: want "arrow" or "shm"`, delivery)
}

// openShm makes the stream's ring when req asks for shm delivery (nil
// otherwise), its bytes held in the server's memory budget. A ring larger
// than the whole budget could never be admitted: the stream is then sent
// as arrow, whose batches may still fit, and the schema returned (schema
// otherwise) says why under metaShmRefused.
func (s *Server) openShm(ctx, client context.Context, req *Request, schema *arrow.Schema, batchSize int, log *slog.Logger) (*shmStream, *arrow.Schema, error) {
	if err := validDelivery(ctx, req.Delivery); err != nil || req.Delivery != deliveryShm {
		return nil, schema, err
	}
	broker := s.broker.Load()
	if broker == nil {
		return nil, schema, status.Error(codes.FailedPrecondition, `request: delivery "shm": this server has no shared-memory side socket (it is not serving on a unix socket)`)
	}
	slots := req.ShmSlots
	if slots == 0 {
		slots = defaultShmSlots
	}
	st := &shmStream{memory: s.memory, client: client, wait: s.slotWait}
	var fields []arrow.Field
	var slotBytes int64
	for i, f := range schema.Fields() {
		if _, ok := f.Type.(*tensorType); ok {
			st.tensors = append(st.tensors, i)
			// Each source's crops start 64-byte aligned for numpy and SIMD.
			n := (fixedBytes(f.Type)*int64(batchSize) + 63) &^ 63
			st.sourceCap = append(st.sourceCap, n)
			slotBytes += n
			continue
		}
		st.keep = append(st.keep, i)
		fields = append(fields, f)
	}
	// The ring is held alongside its stream's first batch (DoGet): a ring
	// that fits the budget only without that batch would wait for it in
	// vain.
	ringBytes := int64(slots) * roundPage(slotBytes)
	need := ringBytes + firstBatchHeld(recordBytes(schema, batchSize), recordBytes(arrow.NewSchema(fields, nil), batchSize))
	if s.memory != nil && need > s.memory.limit {
		why := fmt.Sprintf("a shared-memory ring of %d batches of %s with its stream's first batch needs %s, more than the server's whole memory budget of %s (loader serve -memory); sent as arrow instead (ask for fewer shm_slots or a smaller batch_size)",
			slots, megabytes(roundPage(slotBytes)), megabytes(need), megabytes(s.memory.limit))
		log.Warn("shared-memory delivery refused", "reason", why)
		md := schema.Metadata()
		meta := arrow.NewMetadata(append(md.Keys(), metaShmRefused), append(md.Values(), why))
		return nil, arrow.NewSchema(schema.Fields(), &meta), nil
	}
	st.pool = &s.rings
	if ring := s.rings.get(slots, slotBytes); ring != nil {
		st.ring, st.held = ring, ring.Size()
	} else {
		ring, err := deliver.NewRing("lsio-loader-batches", slots, max(slotBytes, 1))
		if err != nil {
			return nil, schema, fmt.Errorf("shared-memory ring for the stream: %w", err)
		}
		st.ring = ring
		if !s.memory.tryAcquire(ring.Size()) {
			// Idle rings hold budget that this one needs more.
			s.rings.drain()
			if err := s.memory.acquire(ctx, ring.Size(), fmt.Sprintf("a shared-memory ring of %d batches", slots)); err != nil {
				ring.Close()
				return nil, schema, err
			}
		}
		st.held = ring.Size()
	}
	ring := st.ring
	token, unregister, err := broker.Register(ring)
	if err != nil {
		st.close()
		return nil, schema, err
	}
	st.unregister = unregister
	ann, err := json.Marshal(shmAnnounce{Socket: broker.Path(), Token: token, Size: ring.Size(), Slots: ring.Slots(), SlotBytes: ring.SlotBytes()})
	if err != nil {
		st.close()
		return nil, schema, fmt.Errorf("announcing the ring: %w", err)
	}
	md := schema.Metadata()
	keys, values := append(md.Keys(), metaShm), append(md.Values(), string(ann))
	meta := arrow.NewMetadata(keys, values)
	st.schema = arrow.NewSchema(fields, &meta)
	log.Debug("shared-memory ring", "bytes", ring.Size(), "slots", ring.Slots())
	return st, schema, nil
}

// writer sends the stream's records, each with its ring location.
func (st *shmStream) writer(stream grpc.ServerStream) recordWriter {
	w := newZeroCopyWriter(stream, st.schema)
	st.sender = w.sender
	return w
}

// attach leases a ring slot for b and points b's buffers into it, so the
// cropper writes the crops there.
func (st *shmStream) attach(ctx context.Context, b *cropper.Batch) (deliver.Slot, error) {
	slot, err := st.ring.Acquire(ctx, st.wait)
	if err != nil {
		if ctx.Err() != nil {
			return slot, ctx.Err()
		}
		if errors.Is(err, deliver.ErrClosed) {
			return slot, status.Error(codes.Aborted, err.Error())
		}
		return slot, status.Error(codes.ResourceExhausted, err.Error())
	}
	if len(b.Data) != len(st.sourceCap) {
		b.Data = make([][]byte, len(st.sourceCap))
		b.DTypes = make([]string, len(st.sourceCap))
	}
	var off int64
	for k, n := range st.sourceCap {
		b.Data[k] = slot.Mem[off : off : off+n]
		off += n
	}
	return slot, nil
}

// describe turns rec, built over b, into the record sent: its small
// columns, and as app_metadata where b's crops lie in slot.
func (st *shmStream) describe(rec arrow.RecordBatch, b *cropper.Batch, slot deliver.Slot) (arrow.RecordBatch, error) {
	defer rec.Release()
	meta := shmBatch{Slot: slot.Index, Gen: slot.Gen}
	n := int64(len(b.Samples))
	var off int64
	for k, col := range st.tensors {
		f := rec.Schema().Field(col)
		tt := f.Type.(*tensorType)
		data := b.Data[k]
		dst := slot.Mem[off : off+st.sourceCap[k]]
		// The cropper writes in place unless the slot was too small for
		// it, which sourceCap rules out; copying keeps it correct anyway.
		if len(data) > 0 && unsafe.SliceData(data) != unsafe.SliceData(dst) {
			if len(data) > len(dst) {
				return nil, fmt.Errorf("source %q: %d bytes of crops do not fit the %d-byte ring slot", f.Name, len(data), len(dst))
			}
			copy(dst, data)
		}
		want := n * fixedBytes(tt)
		meta.Columns = append(meta.Columns, shmColumn{
			Name: f.Name, Offset: slot.Offset + off, Length: want,
			Shape: append([]int64{n}, tt.Shape...), DType: b.DTypes[k],
		})
		off += st.sourceCap[k]
	}
	app, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("describing ring slot %d: %w", slot.Index, err)
	}
	cols := make([]arrow.Array, len(st.keep))
	for i, c := range st.keep {
		cols[i] = rec.Column(c)
	}
	st.sender.appMeta = app
	st.described = true
	return array.NewRecordBatch(st.schema, cols, n), nil
}

// close unregisters and unmaps the ring and returns its bytes to the
// budget; the client's mapping, and the arrays over it, stay valid. A
// stream shorter than the ring is sent before the client has asked for the
// memfd: the ring waits for it, or for the client to go away.
func (st *shmStream) close() {
	if st.unregister != nil && st.described {
		select {
		case <-st.ring.Fetched():
		case <-st.client.Done():
		case <-time.After(st.wait):
		}
	}
	if st.unregister != nil {
		st.unregister()
	}
	if st.ring == nil {
		st.memory.release(st.held)
		return
	}
	select {
	case <-st.ring.Fetched():
	default:
		// No client ever mapped it.
		st.pool.put(st.ring, st.held, st.memory)
		return
	}
	// Reused only once its client has unmapped it: until then its
	// arrays may still be alive. A client that keeps them for good keeps
	// the ring (outside the pool) for good.
	stopped := st.pool.stopping()
	st.pool.waiting.Add(1)
	go func() {
		defer st.pool.waiting.Done()
		select {
		case <-st.ring.Gone():
			st.pool.put(st.ring, st.held, st.memory)
		case <-stopped:
			// The server is shutting down: the client's mapping stays
			// valid without ours.
			_ = st.ring.Close()
			st.memory.release(st.held)
		}
	}()
}

// ringPool keeps rings their clients have let go of, to serve later
// streams of the same batch size: a fresh ring costs a page fault per 4 KiB
// on first write, in the server and again in the client, as much CPU as
// the crops themselves. Idle rings keep their share of the memory budget.
type ringPool struct {
	mu     sync.Mutex
	idle   []pooledRing
	memory *memoryBudget
	// stopped closes when the server stops, so that rings still mapped by
	// a client are let go instead of waited for; waiting counts those
	// waits.
	stopped chan struct{}
	closed  bool
	waiting sync.WaitGroup
}

func (p *ringPool) stopping() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped == nil {
		p.stopped = make(chan struct{})
	}
	return p.stopped
}

// stop lets go of every ring, idle or still mapped by a client, and waits
// until they are closed.
func (p *ringPool) stop() {
	p.stopping()
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stopped)
	}
	p.mu.Unlock()
	p.waiting.Wait()
	p.drain()
}

type pooledRing struct {
	ring *deliver.Ring
	held int64
}

// maxIdleRings bounds the pool: about as many streams as run at once.
const maxIdleRings = 8

func (p *ringPool) get(slots int, slotBytes int64) *deliver.Ring {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, pr := range p.idle {
		if pr.ring.Slots() == slots && pr.ring.SlotBytes() == roundPage(slotBytes) {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			pr.ring.Reset()
			return pr.ring
		}
	}
	return nil
}

func (p *ringPool) put(r *deliver.Ring, held int64, memory *memoryBudget) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = r.Close()
		memory.release(held)
		return
	}
	p.memory = memory
	p.idle = append(p.idle, pooledRing{r, held})
	var evicted []pooledRing
	if len(p.idle) > maxIdleRings {
		evicted = append(evicted, p.idle[0])
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	for _, pr := range evicted {
		_ = pr.ring.Close()
		memory.release(pr.held)
	}
}

// drain closes every idle ring, returning their budget.
func (p *ringPool) drain() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pr := range idle {
		_ = pr.ring.Close()
		p.memory.release(pr.held)
	}
}

func roundPage(n int64) int64 {
	page := int64(unix.Getpagesize())
	return (max(n, 1) + page - 1) / page * page
}
