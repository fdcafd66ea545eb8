package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// shmClient is a test's side of a shared-memory stream: the mapped ring
// and the side connection releases go over.
type shmClient struct {
	conn *net.UnixConn
	mem  []byte
}

func dialShm(t *testing.T, schema *arrow.Schema) *shmClient {
	t.Helper()
	ann := shmAnnounced(t, schema)
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ann.Socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(ann.Token + "\n")); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil || string(buf[:n]) != "ok\n" {
		t.Fatalf("side socket answered %q, %v", buf[:n], err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("side socket control messages: %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("side socket rights: %v, %v", fds, err)
	}
	mem, err := unix.Mmap(fds[0], 0, int(ann.Size), unix.PROT_READ, unix.MAP_SHARED)
	unix.Close(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return &shmClient{conn: conn, mem: mem}
}

func (c *shmClient) release(t *testing.T, b shmBatch) {
	t.Helper()
	if _, err := fmt.Fprintf(c.conn, "%d %d\n", b.Slot, b.Gen); err != nil {
		t.Fatal(err)
	}
}

// shmRecord is one received batch: its small columns and where its crops
// are.
type shmRecord struct {
	rec  arrow.RecordBatch
	meta shmBatch
}

// readShm reads a shared-memory stream, calling each as batches arrive.
func readShm(t *testing.T, client flight.Client, ep *flight.FlightEndpoint, each func(*shmClient, shmRecord)) error {
	t.Helper()
	stream, err := client.DoGet(context.Background(), ep.Ticket)
	if err != nil {
		return err
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		return err
	}
	defer reader.Release()
	sc := dialShm(t, reader.Schema())
	for reader.Next() {
		var meta shmBatch
		if err := json.Unmarshal(reader.LatestAppMetadata(), &meta); err != nil {
			t.Fatalf("app_metadata %q: %v", reader.LatestAppMetadata(), err)
		}
		rec := reader.RecordBatch()
		rec.Retain()
		each(sc, shmRecord{rec: rec, meta: meta})
	}
	if err := reader.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// TestSharedMemoryDelivery reads every stream over both deliveries: the
// same small columns, and crops in the ring equal to the Arrow ones.
func TestSharedMemoryDelivery(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	client := startServer(t)
	spec := fmt.Sprintf(genericSpec, 7)
	ctx := context.Background()
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
	if err != nil {
		t.Fatal(err)
	}
	shmInfo, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm"})})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for e := range info.Endpoint {
		want := readAll(t, client, info.Endpoint[e])
		i := 0
		err := readShm(t, client, shmInfo.Endpoint[e], func(sc *shmClient, got shmRecord) {
			defer got.rec.Release()
			if i >= len(want) {
				t.Fatalf("stream %d: more shm batches than arrow ones (%d)", e, len(want))
			}
			w := want[i]
			defer w.Release()
			i++
			total += int(got.rec.NumRows())
			if len(got.meta.Columns) != 1 || got.meta.Columns[0].Name != "field" || got.meta.Columns[0].DType != "float32" {
				t.Fatalf("shm columns %+v", got.meta.Columns)
			}
			col := got.meta.Columns[0]
			if fmt.Sprint(col.Shape) != fmt.Sprint([]int64{w.NumRows(), 2, 3, 5}) {
				t.Errorf("shape %v for %d rows of 2×3×5", col.Shape, w.NumRows())
			}
			for k := range w.NumCols() {
				name := w.ColumnName(int(k))
				if name == "field" {
					c := w.Column(int(k))
					if ext, ok := c.(array.ExtensionArray); ok {
						c = ext.Storage()
					}
					values := c.(*array.FixedSizeList).ListValues().(*array.Float32)
					wantBytes := arrow.Float32Traits.CastToBytes(values.Float32Values())
					if !bytes.Equal(sc.mem[col.Offset:col.Offset+col.Length], wantBytes) {
						t.Errorf("stream %d batch %d: crops in the ring differ from the Arrow ones", e, i)
					}
					continue
				}
				idx := got.rec.Schema().FieldIndices(name)
				if len(idx) != 1 || !array.ApproxEqual(got.rec.Column(idx[0]), w.Column(int(k)), array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
					t.Errorf("stream %d batch %d: column %s differs", e, i, name)
				}
			}
			sc.release(t, got.meta)
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Errorf("stream %d: %d shm batches, %d arrow ones", e, i, len(want))
		}
	}
	if total != 23 {
		t.Errorf("%d samples over shm, want 23", total)
	}
}

// TestSharedMemorySlotLifetime keeps the first batch's slot and frees the
// rest: the kept crops are never overwritten, and the stream, with one
// slot held, still finishes.
func TestSharedMemorySlotLifetime(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	client := startServer(t)
	spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "samples_per_epoch: 23\nstreams: 3", "samples_per_epoch: 60\nstreams: 1", 1)
	info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm"})})
	if err != nil {
		t.Fatal(err)
	}
	var kept []byte
	var keptCol shmColumn
	var mem []byte
	batches, slots := 0, map[int]bool{}
	err = readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
		defer got.rec.Release()
		mem = sc.mem
		batches++
		slots[got.meta.Slot] = true
		col := got.meta.Columns[0]
		if kept == nil {
			keptCol, kept = col, bytes.Clone(sc.mem[col.Offset:col.Offset+col.Length])
			return
		}
		if got.meta.Slot == 0 && keptCol.Offset == col.Offset {
			t.Errorf("batch %d was put in the slot the client still holds", batches)
		}
		sc.release(t, got.meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	if batches != 15 {
		t.Fatalf("%d batches, want 15", batches)
	}
	if !bytes.Equal(mem[keptCol.Offset:keptCol.Offset+keptCol.Length], kept) {
		t.Error("the crops of the batch the client kept were overwritten")
	}
	if len(slots) < 2 || len(slots) > defaultShmSlots {
		t.Errorf("%d slots used, want 2..%d", len(slots), defaultShmSlots)
	}
}

// TestSharedMemoryRefusedOverTCP: shm needs a unix socket.
func TestSharedMemoryRefusedOverTCP(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	srv := New(Options{Open: openDir, Logger: discardLogger()})
	lis, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() { cancel(); <-done }()
	client, err := flight.NewClientWithMiddleware(lis.Addr().String(), nil, nil, grpcInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	spec := fmt.Sprintf(genericSpec, 7)
	_, err = client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm"})})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "unix") {
		t.Errorf("shm over TCP: %v, want InvalidArgument naming the unix socket", err)
	}
	// A ticket made on a unix socket and replayed over TCP is refused too.
	tkt := ticket{Request: Request{Spec: spec, SpecDir: dir, Split: "train", WorldSize: 1, Delivery: "shm"}, Streams: 1}
	tkt.PlanKey = tkt.Request.planKey()
	stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: tkt.encode()})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("shm ticket over TCP: %v, want InvalidArgument", err)
	}
	_, err = client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "pigeon"})})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pigeon") {
		t.Errorf("delivery pigeon: %v, want InvalidArgument naming it", err)
	}
}

// TestSharedMemoryClientGone: a client that stops reading and goes away
// mid-stream gives its ring back for the next stream.
func TestSharedMemoryClientGone(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	srv := New(Options{Open: openDir, Memory: 1 << 20, Logger: discardLogger()})
	client := startServerWith(t, srv)
	spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "samples_per_epoch: 23\nstreams: 3", "samples_per_epoch: 200\nstreams: 1", 1)
	cmd := envelope(t, spec, dir, map[string]any{"delivery": "shm"})
	info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	// Two batches read and never released, then the client is gone.
	for range 2 {
		if !reader.Next() {
			t.Fatalf("stream ended early: %v", reader.Err())
		}
	}
	cancel()
	reader.Release()
	// Its ring goes back to the pool (it never mapped it), keeping its
	// budget, and serves the next client.
	deadline := time.Now().Add(10 * time.Second)
	for srv.rings.idleCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the gone client's ring is not back in the pool (%d idle)", srv.rings.idleCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ringBytes := srv.memory.usedNow()
	n := 0
	if err := readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
		got.rec.Release()
		sc.release(t, got.meta)
		n++
	}); err != nil {
		t.Fatalf("the next client: %v", err)
	}
	if n != 50 {
		t.Errorf("the next client read %d batches, want 50", n)
	}
	// The next client hangs up (dialShm's cleanup, at test end) only
	// after this: its ring is the reused one, no new budget was taken.
	if used := srv.memory.usedNow(); used != ringBytes {
		t.Errorf("%d bytes of budget held after the next client, want the one ring's %d", used, ringBytes)
	}
}

func (p *ringPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func grpcInsecure() grpc.DialOption { return grpc.WithTransportCredentials(insecure.NewCredentials()) }

func (m *memoryBudget) usedNow() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// shmAnnounced is the ring a shared-memory stream's schema announces.
func shmAnnounced(t *testing.T, schema *arrow.Schema) shmAnnounce {
	t.Helper()
	raw, ok := schema.Metadata().GetValue(metaShm)
	if !ok {
		t.Fatalf("shm stream's schema lacks %s: %v", metaShm, schema.Metadata())
	}
	var ann shmAnnounce
	if err := json.Unmarshal([]byte(raw), &ann); err != nil {
		t.Fatal(err)
	}
	return ann
}

// TestSharedMemoryBudgetCountedOnce: a stream's crops are charged to the
// memory budget once, as its ring; the batches it crops into the ring
// cost only their small columns and cropping scratch on top.
func TestSharedMemoryBudgetCountedOnce(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	srv := New(Options{Open: openDir, Memory: 1 << 20, Logger: discardLogger()})
	client := startServerWith(t, srv)
	spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "samples_per_epoch: 23\nstreams: 3", "samples_per_epoch: 60\nstreams: 1", 1)
	ctx := context.Background()
	arrowInfo, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
	if err != nil {
		t.Fatal(err)
	}
	arrowRecs := readAll(t, client, arrowInfo.Endpoint[0])
	batchBytes := recordBytes(arrowRecs[0].Schema(), 4)
	for _, r := range arrowRecs {
		r.Release()
	}
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm"})})
	if err != nil {
		t.Fatal(err)
	}
	var ringBytes int64
	n := 0
	err = readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
		defer got.rec.Release()
		if n == 0 {
			ringBytes = shmAnnounced(t, got.rec.Schema()).Size
			if ringBytes != defaultShmSlots*roundPage(batchBytes) {
				t.Errorf("ring of %d bytes, want %d slots of a page", ringBytes, defaultShmSlots)
			}
			small := recordBytes(got.rec.Schema(), 4)
			if small >= batchBytes {
				t.Fatalf("small columns of %d bytes, not less than the whole batch's %d", small, batchBytes)
			}
			// Two batches prefetched, each its small columns, and one
			// batch's cropping share: the crops are in the ring only.
			want := ringBytes + 2*small + int64(float64(batchBytes)*croppingShare)
			if used := srv.memory.usedNow(); used != want {
				t.Errorf("%d bytes of budget held mid-stream, want %d: the ring's %d, two batches' small columns (%d each) and cropping share", used, want, ringBytes, small)
			}
		}
		n++
		sc.release(t, got.meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 15 {
		t.Fatalf("%d batches, want 15", n)
	}
	// Once the stream is done only the ring, kept for reuse, holds budget.
	deadline := time.Now().Add(10 * time.Second)
	for srv.memory.usedNow() != ringBytes {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of budget held after the stream, want the ring's %d", srv.memory.usedNow(), ringBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedMemoryRingOverBudget: a ring larger than the whole memory
// budget is never made; the stream comes as arrow, saying why, with the
// same batches. A ring of fewer slots that fits is made.
func TestSharedMemoryRingOverBudget(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	page := int64(unix.Getpagesize())
	spec := fmt.Sprintf(genericSpec, 7)
	ctx := context.Background()
	// A batch is well under a page; a slot is a page.
	tests := []struct {
		name     string
		memory   int64
		slots    int
		wantShm  bool
		wantSize int64
	}{
		{name: "default ring over budget", memory: 5 * page, slots: 0, wantShm: false},
		{name: "three slots fit", memory: 5 * page, slots: 3, wantShm: true, wantSize: 3 * page},
		{name: "ring fits but not with its first batch", memory: 6*page + 400, slots: 0, wantShm: false},
		{name: "ring fits with its first batch", memory: 7 * page, slots: 0, wantShm: true, wantSize: 6 * page},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New(Options{Open: openDir, Memory: tt.memory, Logger: discardLogger()})
			client := startServerWith(t, srv)
			arrowInfo, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
			if err != nil {
				t.Fatal(err)
			}
			want := readAll(t, client, arrowInfo.Endpoint[0])
			defer func() {
				for _, r := range want {
					r.Release()
				}
			}()
			if !tt.wantShm && tt.slots == 0 && recordBytes(want[0].Schema(), 4)+defaultShmSlots*page <= tt.memory {
				t.Fatalf("test: a %d-byte budget fits the default ring and a batch", tt.memory)
			}
			extra := map[string]any{"delivery": "shm"}
			if tt.slots != 0 {
				extra["shm_slots"] = tt.slots
			}
			info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, extra)})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantShm {
				n := 0
				if err := readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
					defer got.rec.Release()
					wantSlots := tt.slots
					if wantSlots == 0 {
						wantSlots = defaultShmSlots
					}
					if ann := shmAnnounced(t, got.rec.Schema()); ann.Size != tt.wantSize || ann.Slots != wantSlots {
						t.Errorf("ring of %d slots, %d bytes; want %d slots, %d bytes", ann.Slots, ann.Size, wantSlots, tt.wantSize)
					}
					n++
					sc.release(t, got.meta)
				}); err != nil {
					t.Fatal(err)
				}
				if n != len(want) {
					t.Errorf("%d batches over shm, want %d", n, len(want))
				}
				return
			}
			got := readAll(t, client, info.Endpoint[0])
			defer func() {
				for _, r := range got {
					r.Release()
				}
			}()
			md := got[0].Schema().Metadata()
			if _, ok := md.GetValue(metaShm); ok {
				t.Fatal("a ring over the memory budget was announced")
			}
			why, ok := md.GetValue(metaShmRefused)
			if !ok || !strings.Contains(why, "memory budget") || !strings.Contains(why, "shm_slots") {
				t.Errorf("%s = %q, want the reason naming the memory budget and shm_slots", metaShmRefused, why)
			}
			if len(got) != len(want) {
				t.Fatalf("%d batches sent as arrow, want %d", len(got), len(want))
			}
			for i := range want {
				if !array.RecordApproxEqual(got[i], want[i], array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
					t.Errorf("batch %d differs from the arrow stream's", i)
				}
			}
			if idle := srv.rings.idleCount(); idle != 0 {
				t.Errorf("%d rings made for a stream sent as arrow", idle)
			}
		})
	}
}

// TestSharedMemorySlotWait: a client that keeps every slot and frees none
// fails its stream, after the slot wait, with ResourceExhausted naming
// the slots, rather than hanging.
func TestSharedMemorySlotWait(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	const wait = 300 * time.Millisecond
	srv := New(Options{Open: openDir, ShmSlotWait: wait, Logger: discardLogger()})
	client := startServerWith(t, srv)
	spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "samples_per_epoch: 23\nstreams: 3", "samples_per_epoch: 60\nstreams: 1", 1)
	info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm", "shm_slots": 3})})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var kept []shmRecord
	var side *shmClient
	err = readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
		side = sc
		kept = append(kept, got)
	})
	for _, k := range kept {
		k.rec.Release()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "held all 3 shared-memory slots") {
		t.Fatalf("stream of a client keeping every slot: %v, want ResourceExhausted naming the 3 slots", err)
	}
	if len(kept) != 3 {
		t.Errorf("%d batches before the stream failed, want the ring's 3", len(kept))
	}
	if elapsed := time.Since(start); elapsed < wait || elapsed > wait+10*time.Second {
		t.Errorf("failed after %v, want just over the %v slot wait", elapsed, wait)
	}
	// Its arrays may still be alive: the ring stays its own until it hangs
	// up, then serves other streams.
	time.Sleep(50 * time.Millisecond)
	if n := srv.rings.idleCount(); n != 0 {
		t.Fatalf("%d idle rings while the stuck client still maps its ring", n)
	}
	side.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for srv.rings.idleCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stuck client's ring is not back in the pool after it hung up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedMemoryStopLetsGoOfMappedRings: a server that stops while a
// client still maps its ring closes its own side of the ring and returns
// the ring's budget, instead of waiting for the client for good; the
// client's arrays stay readable.
func TestSharedMemoryStopLetsGoOfMappedRings(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	srv := New(Options{Open: openDir, Memory: 1 << 30, Logger: discardLogger()})
	var kept []shmRecord
	var side *shmClient
	t.Run("stream", func(t *testing.T) {
		client := startServerWith(t, srv) // stopped when this subtest ends
		spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "samples_per_epoch: 23\nstreams: 3", "samples_per_epoch: 8\nstreams: 1", 1)
		info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"delivery": "shm"})})
		if err != nil {
			t.Fatal(err)
		}
		if err := readShm(t, client, info.Endpoint[0], func(sc *shmClient, got shmRecord) {
			side = sc
			kept = append(kept, got)
		}); err != nil {
			t.Fatal(err)
		}
		if len(kept) == 0 || side == nil {
			t.Fatal("no batch over shared memory")
		}
	})
	defer func() {
		for _, k := range kept {
			k.rec.Release()
		}
		if side != nil {
			side.conn.Close()
		}
	}()
	if used := srv.memory.usedNow(); used != 0 {
		t.Errorf("%d bytes of budget held after the server stopped, want 0", used)
	}
	if n := srv.rings.idleCount(); n != 0 {
		t.Errorf("%d idle rings after the server stopped", n)
	}
	// The client's mapping outlives the server's: every byte still reads.
	var sum byte
	for _, b := range side.mem {
		sum ^= b
	}
	_ = sum
}
