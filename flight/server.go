package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/deliver"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/zarr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// OpenFunc opens a store by the URL or absolute path a spec names.
type OpenFunc func(ctx context.Context, url string) (zarr.Store, error)

// Options configure a Server.
type Options struct {
	// Open opens the stores specs name. Each URL is opened once per server
	// and shared by every experiment that reads it.
	Open OpenFunc
	// OpenPooled, when set, opens the local stores of experiments that
	// keep their decoded chunks in a pool of their own (the blocked
	// order) and so read each chunk about once per epoch: for them the
	// page cache is a second copy, and what it lacks is best read around
	// it. Other stores (object stores, HTTP) come from Open. nil: Open.
	OpenPooled OpenFunc
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Plans is how many validated plans are kept, keyed by spec; default 16.
	Plans int
	// ShutdownGrace bounds how long Serve waits for streams in flight to
	// finish once its context is cancelled; default 2s.
	ShutdownGrace time.Duration
	// Cache, when set, keeps decoded chunks for every stream and
	// experiment of the server: chunks that later batches touch again
	// are neither read nor decoded again.
	Cache *pool.Chunks
	// Memory bounds the bytes of batches in flight across all streams
	// (0: no bound); a stream that cannot fit waits up to MemoryWait
	// (default 30 s), then fails with ResourceExhausted.
	Memory     int64
	MemoryWait time.Duration
	// ShmSlotWait bounds how long a shared-memory stream waits for its
	// client to free a ring slot (one that keeps every batch alive, or
	// stopped reading) before failing with ResourceExhausted; default 60 s.
	ShmSlotWait time.Duration
	// Exposure says who may call and which stores and files specs may
	// name; the zero value: anyone who can connect, anything readable.
	Exposure Exposure
	// Observer, when set, is told of batches sent, reads and errors.
	Observer Observer
}

// Server answers Flight requests for experiment specs. It is safe for
// concurrent use: plans are immutable, and each stream has its own cropper.
type Server struct {
	flight.BaseFlightServer

	log    *slog.Logger
	stores *storeCache
	plans  *pool.LRU[string, *sampler.Plan]
	// pools holds each blocked experiment's chunk pool, by plan key,
	// shared by all its streams so that each chunk is decoded once.
	pools    *pool.LRU[string, *pool.Chunks]
	poolMu   sync.Mutex // one pool per plan, even when its streams start together
	pooled   int64      // bytes of every pool made, for the memory limit
	grace    time.Duration
	cache    *pool.Chunks
	exposure Exposure
	memory   *memoryBudget
	// skipped counts the samples skipped under on_error: skip.
	skipped atomic.Int64
	// copying sends with arrow-go's flight.Writer instead of the zero-copy
	// framing: the reference the benchmark compares against.
	copying bool
	obs     Observer
	// broker passes shared-memory rings to clients (shm.go); set by Serve
	// on a unix socket.
	broker   atomic.Pointer[deliver.Broker]
	rings    ringPool
	slotWait time.Duration
}

// New returns a Server reading stores through opts.Open.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Plans <= 0 {
		opts.Plans = 16
	}
	if opts.MemoryWait <= 0 {
		opts.MemoryWait = 30 * time.Second
	}
	if opts.ShmSlotWait <= 0 {
		opts.ShmSlotWait = defaultShmSlotWait
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 2 * time.Second
	}
	return &Server{
		log:      opts.Logger,
		stores:   newStoreCache(opts),
		plans:    pool.NewLRU[string](int64(opts.Plans), func(*sampler.Plan) int64 { return 1 }),
		pools:    pool.NewLRU[string](int64(opts.Plans), func(*pool.Chunks) int64 { return 1 }),
		grace:    opts.ShutdownGrace,
		cache:    opts.Cache,
		exposure: opts.Exposure,
		memory:   newMemoryBudget(opts.Memory, opts.MemoryWait),
		obs:      opts.Observer,
		slotWait: opts.ShmSlotWait,
	}
}

// grpcOptions suit a few large messages: batches of crops can be hundreds
// of MB, and bigger windows and buffers mean fewer flow-control stalls and
// syscalls per batch.
func grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.InitialWindowSize(64 << 20),
		grpc.InitialConnWindowSize(64 << 20),
		grpc.WriteBufferSize(1 << 20),
		grpc.ReadBufferSize(256 << 10),
	}
}

// Listen opens addr: "unix:///path/to.sock" or "tcp://host:port". A unix
// socket is created owner-only (0600). A socket file left behind by a dead
// server is replaced; one a live server answers on, or anything that is not
// a socket, is an error and left alone. Closing the listener removes the
// socket file.
func Listen(addr string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, fmt.Errorf("listen %q: empty socket path", addr)
		}
		if err := removeStaleSocket(path); err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		lis, err := listenOwnerOnly(path)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		return bigSendBuffers{lis}, nil
	case strings.HasPrefix(addr, "tcp://"):
		lis, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", addr, err)
		}
		return lis, nil
	}
	return nil, fmt.Errorf("listen %q: want unix:///path or tcp://host:port", addr)
}

// removeStaleSocket removes the socket file at path if no server answers
// on it; anything else there is refused, never deleted.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		kind := "a file"
		if fi.IsDir() {
			kind = "a directory"
		}
		return fmt.Errorf("%s is %s, not a socket; not removing it", path, kind)
	}
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return errors.New("a server is already listening there")
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// listenOwnerOnly binds a unix socket that only its owner may connect to:
// the umask keeps it from ever existing with wider permissions (a
// connection made before a chmod would be accepted), the chmod covers a
// umask that another goroutine changed meanwhile.
func listenOwnerOnly(path string) (*net.UnixListener, error) {
	old := syscall.Umask(0o177)
	lis, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("making the socket owner-only: %w", err)
	}
	return lis.(*net.UnixListener), nil
}

// unixSendBuffer is the socket send buffer asked for on unix connections
// (the kernel caps it at net.core.wmem_max). The default (~200 KiB) holds a
// batch of crops, tens of MB, a sliver at a time: gRPC's writer then waits
// for the client to drain it, and, with the cropper keeping every core busy,
// for the scheduler, once per sliver.
const unixSendBuffer = 4 << 20

// bigSendBuffers gives each accepted unix connection a larger send buffer.
type bigSendBuffers struct{ *net.UnixListener }

func (l bigSendBuffers) Accept() (net.Conn, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	// Best effort: a smaller buffer is slower, not wrong.
	_ = conn.SetWriteBuffer(unixSendBuffer)
	return conn, nil
}

// Serve answers on lis until ctx is cancelled, then lets streams in flight
// finish for the shutdown grace before cutting them off, and closes lis
// (removing a unix socket file). A cancelled ctx is a clean exit: nil.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	opts := append(grpcOptions(), s.exposure.serverOptions()...)
	gs := grpc.NewServer(append(opts, grpc.ForceServerCodecV2(newCodec()))...)
	flight.RegisterFlightServiceServer(gs, s)
	if err := s.startBroker(ctx, lis); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("flight server on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("flight server stopping", "addr", lis.Addr().String())
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(s.grace):
		gs.Stop()
		<-stopped
	}
	s.rings.stop()
	s.log.Info("flight server stopped", "addr", lis.Addr().String())
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("flight server on %s: %w", lis.Addr(), err)
	}
	return nil
}

// storeCache opens each store once, so that concurrent experiments on the
// same data share one read path (and its buffer pools): once as Open opens
// it and, for experiments with pools of their own, once as OpenPooled does.
type storeCache struct {
	open, openPooled OpenFunc
	mu               sync.Mutex
	stores           map[string]zarr.Store // by URL; pooled local stores by pooledKey
}

func newStoreCache(opts Options) *storeCache {
	c := &storeCache{open: observeReads(opts.Open, opts.Observer), stores: make(map[string]zarr.Store)}
	if opts.OpenPooled != nil {
		c.openPooled = observeReads(opts.OpenPooled, opts.Observer)
	}
	return c
}

func (c *storeCache) get(ctx context.Context, url string) (zarr.Store, error) {
	return c.getAs(ctx, url, url, c.open)
}

// getPooled is get for experiments that keep decoded chunks in a pool of
// their own.
func (c *storeCache) getPooled(ctx context.Context, url string) (zarr.Store, error) {
	if c.openPooled == nil || !isLocal(url) {
		return c.get(ctx, url)
	}
	return c.getAs(ctx, url, pooledKey+url, c.openPooled)
}

// pooledKey prefixes the URLs of stores OpenPooled opened.
const pooledKey = "pooled "

func (c *storeCache) getAs(ctx context.Context, url, key string, open OpenFunc) (zarr.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stores[key]; ok {
		return st, nil
	}
	// The store outlives the request that first names it.
	st, err := open(context.WithoutCancel(ctx), url)
	if err != nil {
		return nil, err
	}
	c.stores[key] = st
	return st, nil
}

// isLocal reports whether a spec's store URL names a local directory: a
// path or a file:// URL.
func isLocal(url string) bool {
	return strings.HasPrefix(url, "file://") || !strings.Contains(url, "://")
}

// plan returns the validated plan for req, from the cache or built now.
func (s *Server) plan(ctx context.Context, req *Request) (*sampler.Plan, error) {
	key := req.planKey()
	if p, ok := s.plans.Get(key); ok {
		return p, nil
	}
	dir := req.SpecDir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("resolving spec paths: %w", err)
		}
		dir = wd
	}
	spec, err := sampler.ParseSpec([]byte(req.Spec), dir)
	if err != nil {
		return nil, requestError{err}
	}
	if err := s.exposure.Allow.checkSpec(spec); err != nil {
		return nil, err
	}
	open := s.stores.get
	if spec.Order.Mode == sampler.OrderBlocked {
		open = s.stores.getPooled
	}
	p, err := sampler.NewPlan(ctx, spec, open)
	if err != nil {
		return nil, requestError{err}
	}
	s.plans.Put(key, p, nil)
	return p, nil
}

// GetFlightInfo validates the spec in the descriptor's command and answers
// with the schema and one endpoint per stream.
func (s *Server) GetFlightInfo(ctx context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	info, err := s.flightInfo(ctx, desc)
	if err != nil {
		s.failed(err)
		s.log.Warn("flight info refused", "err", err)
		return nil, grpcError(err)
	}
	return info, nil
}

func (s *Server) flightInfo(ctx context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if desc.GetType() != flight.DescriptorCMD {
		return nil, requestError{errors.New("flight descriptor: want a command holding an experiment spec, got a path")}
	}
	req, err := ParseCommand(desc.GetCmd())
	if err != nil {
		return nil, requestError{err}
	}
	if err := validDelivery(ctx, req.Delivery); err != nil {
		return nil, err
	}
	plan, err := s.plan(ctx, &req)
	if err != nil {
		return nil, err
	}
	schema, err := buildSchema(plan, &req)
	if err != nil {
		return nil, err
	}
	epochLen, err := plan.EpochLen(req.Split)
	if err != nil {
		return nil, requestError{err}
	}
	streams := req.Streams
	if streams == 0 {
		streams = max(plan.Streams, 1)
	}
	info := &flight.FlightInfo{
		Schema:           flight.SerializeSchema(schema, memory.DefaultAllocator),
		FlightDescriptor: desc,
		TotalBytes:       -1,
		Ordered:          false,
	}
	count := func(stream int) int64 {
		return plan.StreamBatchCount(req.Split, req.Rank, req.WorldSize, stream, streams)
	}
	if err := req.checkSkip(streams, count); err != nil {
		return nil, requestError{err}
	}
	for stream := range streams {
		t := ticket{PlanKey: req.planKey(), Request: req, Stream: stream, Streams: streams}
		t.Request.Skip = nil
		if req.Skip != nil {
			t.Skip = req.Skip[stream]
		}
		records := plan.StreamLen(req.Split, req.Rank, req.WorldSize, stream, streams)
		// Every batch but a stream's last is full.
		info.TotalRecords += max(records-t.Skip*int64(plan.BatchSize), 0)
		meta, err := json.Marshal(endpointMeta{Stream: stream, Batches: count(stream), Records: records, Skip: t.Skip})
		if err != nil {
			return nil, fmt.Errorf("endpoint app_metadata: %w", err)
		}
		info.Endpoint = append(info.Endpoint, &flight.FlightEndpoint{Ticket: &flight.Ticket{Ticket: t.encode()}, AppMetadata: meta})
	}
	s.log.Info("flight info", "split", req.Split, "epoch", req.Epoch, "rank", req.Rank, "world_size", req.WorldSize,
		"streams", streams, "epoch_len", epochLen, "samples", info.TotalRecords)
	return info, nil
}

// endpointMeta is an endpoint's app_metadata (JSON): its stream's place,
// size over the whole epoch (batches and records), and how many of its
// batches the request skips, so that a client can count what it has been
// delivered and resume after it.
type endpointMeta struct {
	Stream  int   `json:"stream"`
	Batches int64 `json:"batches"`
	Records int64 `json:"records"`
	Skip    int64 `json:"skip"`
}

// chunkPool is where a plan's streams keep decoded chunks: a blocked
// experiment's own pool of order.pool bytes, shared by all its streams so
// that each block's chunks are decoded once whichever stream crops them;
// otherwise the server's cache (nil when `serve -cache` is off).
func (s *Server) chunkPool(key string, plan *sampler.Plan) *pool.Chunks {
	if plan.Spec.Order.Mode != sampler.OrderBlocked {
		return s.cache
	}
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if c, ok := s.pools.Get(key); ok {
		return c
	}
	c := pool.NewChunks(int64(plan.Spec.Order.Pool))
	s.pools.Put(key, c, nil)
	s.limitMemory(int64(plan.Spec.Order.Pool))
	return c
}

// heapSlack is the memory a server needs beyond its chunk pools when it
// has no -memory budget: batches in flight, decode buffers, the runtime.
const heapSlack = 896 << 20

// limitMemory keeps the heap near what the pools hold plus the batch
// budget (heapSlack without one). The pools' evicted chunks are garbage
// until a collection, and the collector's default pacing (GOGC=100) lets
// the heap reach twice what is live before it runs: with a pool of
// gigabytes that is gigabytes more. A soft limit makes it collect when it
// nears that instead. One the user set (GOMEMLIMIT) is kept. Called with
// s.poolMu held.
func (s *Server) limitMemory(newPool int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	s.pooled += newPool
	limit := s.pooled + heapSlack
	if s.memory != nil {
		limit = s.pooled + s.memory.limit
	}
	if s.cache != nil {
		limit += s.cache.Budget()
	}
	debug.SetMemoryLimit(limit)
}

// GetSchema answers like GetFlightInfo, with the schema only.
func (s *Server) GetSchema(ctx context.Context, desc *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	info, err := s.GetFlightInfo(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &flight.SchemaResult{Schema: info.Schema}, nil
}

// prefetch is how many batches a stream holds when memory allows: one
// being sent while the next is cropped. With one, cropping waits for the
// send.
const prefetch = 2

// hintAhead is how many batches past the one being cropped a stream
// hints to the stores (zarr.Array.WillNeed).
const hintAhead = 2

// prefetchMaxBytes is the largest batch a stream prefetches: a bigger one
// is cropped only once the last is sent. Its sending is then a small part
// of its cropping, and a second one would double the stream's memory.
const prefetchMaxBytes = 256 << 20

// croppingShare is the memory a batch costs while cropped beyond its own
// bytes, as a share of them: the stored-dtype scratch of regions that need
// conversion, and chunks being decoded.
const croppingShare = 0.5

// firstBatchHeld is the budget a stream's first batch holds: its own
// bytes on the heap (heapBytes; its small columns only when its crops are
// in a shared-memory ring) and the cropping share of all its bytes.
func firstBatchHeld(batchBytes, heapBytes int64) int64 {
	return heapBytes + int64(float64(batchBytes)*croppingShare)
}

// slot is one of a stream's batches; sent is closed once the transport no
// longer reads its buffers, so that they may be cropped into again.
type slot struct {
	batch *cropper.Batch
	sent  <-chan struct{}
	err   error
	began time.Time    // when its cropping started
	lease deliver.Slot // the ring slot batch's crops are in (shm delivery)
}

// recordWriter sends record batches on a DoGet stream and says when each
// one's buffers are free again.
type recordWriter interface {
	write(rec arrow.RecordBatch) (sent <-chan struct{}, err error)
	close() error
}

// zeroCopyWriter frames record batches over their own buffers (zerocopy.go).
type zeroCopyWriter struct {
	ipc    *ipc.Writer
	sender *payloadSender
}

func newZeroCopyWriter(stream grpc.ServerStream, schema *arrow.Schema) *zeroCopyWriter {
	sender := &payloadSender{stream: stream}
	return &zeroCopyWriter{ipc: ipc.NewWriterWithPayloadWriter(sender, ipc.WithSchema(schema)), sender: sender}
}

func (w *zeroCopyWriter) write(rec arrow.RecordBatch) (<-chan struct{}, error) {
	if err := w.ipc.Write(rec); err != nil {
		return nil, err
	}
	return w.sender.last.ch, nil
}

func (w *zeroCopyWriter) close() error { return w.ipc.Close() }

// copyingWriter is arrow-go's own Flight writer, which has copied the
// record by the time Write returns; kept as the benchmark's reference.
type copyingWriter struct{ w *flight.Writer }

var alreadySent = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (w copyingWriter) write(rec arrow.RecordBatch) (<-chan struct{}, error) {
	return alreadySent, w.w.Write(rec)
}

func (w copyingWriter) close() error { return w.w.Close() }

// DoGet streams one ticket's shard of the epoch, a record batch per batch.
func (s *Server) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) (err error) {
	defer func() { s.failed(err) }()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	t, err := decodeTicket(tkt.GetTicket())
	if err != nil {
		return grpcError(requestError{err})
	}
	start := time.Now()
	plan, err := s.plan(ctx, &t.Request)
	if err != nil {
		return grpcError(err)
	}
	schema, err := buildSchema(plan, &t.Request)
	if err != nil {
		return grpcError(err)
	}
	shard, nShards := t.shard()
	log := s.log.With("split", t.Request.Split, "epoch", t.Request.Epoch, "shard", shard, "shards", nShards)
	if n := plan.StreamBatchCount(t.Request.Split, t.Request.Rank, t.Request.WorldSize, t.Stream, t.Streams); t.Skip > n {
		return grpcError(requestError{fmt.Errorf("flight ticket: skip %d, but stream %d has only %d batches", t.Skip, t.Stream, n)})
	}
	shm, schema, err := s.openShm(ctx, stream.Context(), &t.Request, schema, plan.BatchSize, log)
	if err != nil {
		return grpcError(err)
	}
	if shm != nil {
		defer shm.close()
	}

	// The first batch waits for memory; the second, sent while the next is
	// cropped, is only taken when memory is free now. Over shm the crops
	// are cropped into the ring, whose bytes openShm holds: a batch's own
	// bytes are then its small columns only. Its cropping share is counted
	// either way: conversion scratch and decoded chunks are never in the
	// ring.
	batchBytes := recordBytes(schema, plan.BatchSize)
	heapBytes := batchBytes
	if shm != nil {
		heapBytes = recordBytes(shm.schema, plan.BatchSize)
	}
	held := firstBatchHeld(batchBytes, heapBytes)
	if !s.memory.tryAcquire(held) {
		// Idle shared-memory rings hold budget a stream needs more.
		s.rings.drain()
		if err := s.memory.acquire(ctx, held, describeBatch(plan.BatchSize, batchBytes)); err != nil {
			log.Warn("stream refused", "err", err)
			return err
		}
	}
	defer func() { s.memory.release(held) }()
	slots := 1
	if heapBytes <= prefetchMaxBytes && s.memory.tryAcquire(heapBytes) {
		held += heapBytes
		slots = prefetch
	}
	free := make(chan slot, prefetch)
	for range slots {
		free <- slot{batch: new(cropper.Batch), sent: alreadySent}
	}
	ready := make(chan slot, prefetch)
	var skip *skipper
	if plan.Spec.OnError == "skip" {
		skip = &skipper{log: log, total: &s.skipped, maxRun: max(64, 2*plan.BatchSize)}
	}
	var producer sync.WaitGroup
	producer.Add(1)
	go func() {
		defer producer.Done()
		defer close(ready)
		c := cropper.New(plan, cropper.Options{Raw: t.Request.Raw, Cache: s.chunkPool(t.PlanKey, plan)})
		bt, stop := newBatcher(plan.StreamBatchesFrom(t.Request.Split, t.Request.Epoch, t.Request.Rank, t.Request.WorldSize, t.Stream, t.Streams, t.Skip))
		defer stop()
		// Each batch hints the stores at the samples of the next
		// hintAhead batches not yet hinted (hinted counts those at the
		// front of bt), so that their chunks come off the disk while this
		// stream crops. A hint can wait on the disk queue, so a goroutine
		// of its own gives them; the stream waits for it only when it is
		// hintAhead hints behind, when the disk is what holds the stream
		// back anyway.
		hints := make(chan []sampler.Sample, hintAhead)
		var hinter sync.WaitGroup
		hinter.Go(func() {
			for samples := range hints {
				c.WillNeed(samples)
			}
		})
		defer hinter.Wait()
		defer close(hints)
		hinted := 0
		for {
			samples := bt.take(plan.BatchSize)
			if len(samples) == 0 {
				return
			}
			hinted = max(hinted-len(samples), 0)
			if ahead := bt.peek(hintAhead * plan.BatchSize); len(ahead) > hinted {
				select {
				case hints <- slices.Clone(ahead[hinted:]):
					hinted = len(ahead)
				case <-ctx.Done():
					return
				}
			}
			var sl slot
			select {
			case sl = <-free:
			case <-ctx.Done():
				return
			}
			select {
			case <-sl.sent:
			case <-ctx.Done():
				return
			}
			sl.began = time.Now()
			if shm != nil {
				if sl.lease, sl.err = shm.attach(ctx, sl.batch); sl.err != nil {
					ready <- sl
					return
				}
			}
			sl.err = c.Crop(ctx, samples, sl.batch)
			if sl.err != nil && skip != nil && ctx.Err() == nil {
				sl.err = skip.crop(ctx, c, bt, samples, plan.BatchSize, sl.batch)
				if errors.Is(sl.err, errShardExhausted) {
					return
				}
			}
			ready <- sl
			if sl.err != nil {
				return
			}
		}
	}()
	// The producer may be blocked on free or ready: cancel, then drain.
	defer func() {
		cancel()
		for range ready {
		}
		producer.Wait()
	}()

	var w recordWriter = newZeroCopyWriter(stream, schema)
	if s.copying {
		w = copyingWriter{flight.NewRecordWriter(stream, ipc.WithSchema(schema))}
	}
	if shm != nil {
		w = shm.writer(stream)
	}
	defer w.close()
	rb := newRecordBuilder(plan, schema)
	var batches, samples, delivered int64
	var stats cropper.Stats
	for sl := range ready {
		if sl.err != nil {
			if ctx.Err() != nil {
				log.Info("client went away", "batches", batches)
				return status.FromContextError(ctx.Err()).Err()
			}
			log.Error("crop failed", "err", sl.err)
			return grpcError(fmt.Errorf("cropping batch %d of shard %d/%d: %w", batches, shard, nShards, sl.err))
		}
		rec, err := rb.build(sl.batch)
		if err == nil && shm != nil {
			rec, err = shm.describe(rec, sl.batch, sl.lease)
		}
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		sl.sent, err = w.write(rec)
		rec.Release()
		if err != nil {
			if ctx.Err() != nil {
				log.Info("client went away", "batches", batches)
				return status.FromContextError(ctx.Err()).Err()
			}
			return grpcError(fmt.Errorf("sending batch %d of shard %d/%d: %w", batches, shard, nShards, err))
		}
		s.batchSent(schema, sl.batch, sl.began)
		batches++
		samples += int64(len(sl.batch.Samples))
		stats.Add(sl.batch.Stats)
		for _, d := range sl.batch.Data {
			delivered += int64(len(d))
		}
		free <- sl
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	elapsed := time.Since(start)
	var skipped int64
	if skip != nil {
		skipped = skip.skipped
	}
	log.Info("stream done", "skipped_batches", t.Skip, "batches", batches, "samples", samples, "skipped", skipped, "bytes", delivered,
		"seconds", elapsed.Seconds(), "MB/s", float64(delivered)/1e6/elapsed.Seconds(),
		"chunks", stats.Chunks, "missing", stats.Missing, "cache_hits", stats.CacheHits,
		"bytes_read", stats.BytesRead, "read_amplification", stats.ReadAmplification())
	return nil
}
