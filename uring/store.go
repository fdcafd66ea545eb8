// Package uring reads a local directory of Zarr objects through io_uring:
// one ring per worker OS thread, reads submitted in batches with one
// io_uring_enter per batch, completions delivered as they finish. Where the
// kernel refuses io_uring it falls back to a pool of pread workers with the
// same behaviour.
package uring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
	"github.com/lsio-loader/lsio-loader/zarr"

	"golang.org/x/sys/unix"
)

// maxDirectAlign is the alignment of every buffer, and so the strictest
// O_DIRECT alignment the store can honour.
const maxDirectAlign = 4096

// Options tunes a Store. The zero value is a good default.
type Options struct {
	// Workers is the number of rings, each driven by its own locked OS
	// thread (or, in the fallback, the number of pread goroutines per
	// QueueDepth). Default: GOMAXPROCS, at most 8.
	Workers int
	// QueueDepth is the number of reads in flight per ring. Default 128.
	QueueDepth int
	// Direct opens files with O_DIRECT, bypassing the page cache, with
	// buffers and offsets aligned as statx STATX_DIOALIGN says (4096 when
	// it does not say).
	Direct bool
	// AroundColdCache reads bytes the page cache does not hold around it
	// (O_DIRECT), and bytes it holds through it: for a reader that keeps
	// what it reads in a pool of its own and reads each byte about once
	// (the blocked order), the page cache would be a second copy, paid
	// for with fresh pages and a copy out of them. Whether a range is
	// held is asked per read (cachestat(2); kernels without it read
	// through the cache). Hints are ignored: they would fill the cache.
	AroundColdCache bool
	// MaxOpenFiles bounds the descriptors kept open. Default 1024.
	MaxOpenFiles int
	// Pread skips io_uring and uses the pread worker pool.
	Pread bool
	// Logger receives the one line that says io_uring is unavailable.
	// Default slog.Default().
	Logger *slog.Logger
}

// Stats counts what a Store did; tests use it to see which backend served
// the reads.
type Stats struct {
	// Backend is "io_uring" or "pread".
	Backend string
	// Enters is the number of io_uring_enter calls.
	Enters uint64
	// Reads is the number of read operations issued (SQEs or preads),
	// resubmissions of short reads included.
	Reads uint64
	// Bytes is the number of bytes read from files.
	Bytes uint64
}

// Store is a zarr.Store over a local directory. Close it to stop its
// workers; a Store dropped without Close has them stopped by the garbage
// collector.
type Store struct {
	*core
}

// core is the Store the workers see: they must not keep the Store itself
// reachable, or a forgotten Store would never be collected and closed.
type core struct {
	root    string
	backend string
	log     *slog.Logger
	files   *fileCache
	pool    *bufpool.Pool
	jobs    chan *job
	quit    chan struct{}
	workers sync.WaitGroup
	closed  sync.Once

	enters, reads, bytes atomic.Uint64
}

var _ zarr.Store = (*Store)(nil)

// job is one read on its way through a worker: the file bytes
// [off, off+len(buf)) go into buf, and the read is complete once at least
// want bytes are in.
type job struct {
	ctx  context.Context
	file *openFile
	// fd and align are the descriptor the read goes through and its
	// alignment: the file's own, or its O_DIRECT one for cold bytes.
	fd     int
	align  int64
	buf    []byte
	off    int64
	filled int
	want   int
	// head and length cut the caller's bytes out of buf (O_DIRECT reads
	// start and end on alignment boundaries around them).
	head, length int
	idx          int
	out          chan<- completion
}

type completion struct {
	idx  int
	data []byte
	err  error
}

// Open returns a Store reading the directory root. It probes io_uring once
// and, when the kernel refuses it, logs one line and uses pread workers.
func Open(root string, opts Options) (*Store, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("uring: open store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("uring: open store %s: not a directory", root)
	}
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.GOMAXPROCS(0), 8)
	}
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = 128
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &core{
		log:   opts.Logger,
		root:  root,
		files: newFileCache(root, opts.Direct, opts.AroundColdCache, opts.MaxOpenFiles),
		pool:  bufpool.New(maxDirectAlign),
		jobs:  make(chan *job, opts.Workers*opts.QueueDepth),
		quit:  make(chan struct{}),
	}
	if !opts.Pread {
		if err := probe(); err != nil {
			opts.Logger.Warn("io_uring unavailable, reading with a pread worker pool", "store", root, "err", err)
			opts.Pread = true
		}
	}
	if opts.Pread {
		s.backend = "pread"
		for range min(opts.Workers*opts.QueueDepth, 256) {
			s.workers.Go(s.preadWorker)
		}
		return s.handle(), nil
	}
	s.backend = "io_uring"
	started := make(chan error, opts.Workers)
	for range opts.Workers {
		s.workers.Go(func() { s.ringWorker(uint32(opts.QueueDepth), started) })
	}
	for range opts.Workers {
		if err := <-started; err != nil {
			s.Close()
			return nil, fmt.Errorf("uring: store %s: %w", root, err)
		}
	}
	return s.handle(), nil
}

func (s *core) handle() *Store {
	h := &Store{s}
	runtime.AddCleanup(h, func(c *core) { c.Close() }, s)
	return h
}

// Close stops the workers and closes the cached descriptors. No ReadBatch
// may be running.
func (s *core) Close() error {
	s.closed.Do(func() {
		close(s.quit)
		s.workers.Wait()
		s.files.closeAll()
	})
	return nil
}

// String names the store as its directory.
func (s *core) String() string { return s.root }

// Stats returns the counters so far.
func (s *core) Stats() Stats {
	return Stats{Backend: s.backend, Enters: s.enters.Load(), Reads: s.reads.Load(), Bytes: s.bytes.Load()}
}

// Release gives back a buffer handed to a ReadBatch callback.
func (s *core) Release(data []byte) { s.pool.Release(data) }

// ReadBatch reads every request, keeping up to Workers×QueueDepth in flight,
// and calls done from several goroutines as reads complete.
func (s *core) ReadBatch(ctx context.Context, reqs []zarr.ByteRange, done func(i int, data []byte, err error)) {
	if len(reqs) == 0 {
		return
	}
	out := make(chan completion, len(reqs))
	var delivered sync.WaitGroup
	delivered.Add(len(reqs))
	deliver := func() {
		for c := range out {
			done(c.idx, c.data, c.err)
			delivered.Done()
		}
	}
	var helpers sync.WaitGroup
	for range min(len(reqs), runtime.GOMAXPROCS(0)) - 1 {
		helpers.Go(deliver)
	}
	go func() {
		delivered.Wait()
		close(out)
	}()
	for i, r := range reqs {
		j, err := s.prepare(ctx, i, r, out)
		switch {
		case err != nil:
			out <- completion{idx: i, err: err}
		case j == nil:
			out <- completion{idx: i, data: []byte{}}
		default:
			select {
			case s.jobs <- j:
			case <-ctx.Done():
				s.fail(j, ctx.Err())
			}
		}
	}
	deliver()
	helpers.Wait()
}

// prepare opens the file and works out the bytes to read; a nil job means
// an empty read.
func (s *core) prepare(ctx context.Context, idx int, r zarr.ByteRange, out chan<- completion) (*job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.files.acquire(r.Key)
	if err != nil {
		return nil, err
	}
	off, length := r.Offset, r.Length
	switch {
	case off < 0:
		off = max(f.size+off, 0)
		length = f.size - off
	case length < 0:
		if off > f.size {
			s.files.release(f)
			return nil, fmt.Errorf("uring: read %s in %s: offset %d past the end (%d bytes)", r.Key, s.root, off, f.size)
		}
		length = f.size - off
	case off+length > f.size:
		s.files.release(f)
		return nil, fmt.Errorf("uring: read %s in %s: bytes %d-%d past the end (%d bytes)", r.Key, s.root, off, off+length, f.size)
	}
	if length == 0 {
		s.files.release(f)
		return nil, nil
	}
	fd, align := f.fd, f.align
	if f.coldFD >= 0 && !f.cached(off, length) {
		fd, align = f.coldFD, f.coldAlign
	}
	start := off &^ (align - 1)
	end := (off + length + align - 1) &^ (align - 1)
	return &job{
		ctx:    ctx,
		file:   f,
		fd:     fd,
		align:  align,
		buf:    s.pool.Get(bufSize(align, end-start)),
		off:    start,
		want:   int(off + length - start),
		head:   int(off - start),
		length: int(length),
		idx:    idx,
		out:    out,
	}, nil
}

// bufSize is the buffer for n bytes read at alignment align. O_DIRECT
// buffers are never below the pool's smallest class, which is the smallest
// that comes aligned.
func bufSize(align, n int64) int {
	if align > 1 {
		return int(max(n, maxDirectAlign))
	}
	return int(n)
}

func (s *core) fail(j *job, err error) {
	s.pool.Release(j.buf)
	s.files.release(j.file)
	j.out <- completion{idx: j.idx, err: err}
}

func (s *core) succeed(j *job) {
	s.files.release(j.file)
	j.out <- completion{idx: j.idx, data: j.buf[j.head : j.head+j.length]}
}

// advance records n bytes read (or a negative errno) for j and reports
// whether j needs another read for the rest.
func (s *core) advance(j *job, n int, err error) (again bool) {
	switch {
	case err != nil:
		s.fail(j, fmt.Errorf("uring: read %s in %s at offset %d: %w", j.file.key, s.root, j.off+int64(j.filled), err))
		return false
	case n == 0:
		s.fail(j, fmt.Errorf("uring: read %s in %s: file ended at %d, before the %d bytes wanted: %w", j.file.key, s.root, j.off+int64(j.filled), j.want, io.ErrUnexpectedEOF))
		return false
	}
	s.bytes.Add(uint64(n))
	j.filled += n
	switch {
	case j.filled >= j.want:
		s.succeed(j)
		return false
	case int64(j.filled)%j.align != 0:
		// O_DIRECT cannot resume at an unaligned point; short direct reads
		// only happen at the end of the file, so this one shrank.
		s.fail(j, fmt.Errorf("uring: read %s in %s: short O_DIRECT read ended at %d: %w", j.file.key, s.root, j.off+int64(j.filled), io.ErrUnexpectedEOF))
		return false
	case j.ctx.Err() != nil:
		s.fail(j, j.ctx.Err())
		return false
	}
	return true
}

// List returns the files below prefix as "/"-separated keys, sorted.
func (s *core) List(ctx context.Context, prefix string) ([]string, error) {
	dir := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		rel := filepath.FromSlash(prefix[:i])
		if !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("uring: list %q: prefix leaves the store %s", prefix, s.root)
		}
		dir = filepath.Join(s.root, rel)
	}
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.root, path)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("uring: list %q in %s: %w", prefix, s.root, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// WillNeed starts reading the byte ranges into the page cache
// (POSIX_FADV_WILLNEED: the kernel reads them in the background), so that
// reads issued later find them there. A file opened with O_DIRECT, which
// bypasses the page cache, a store that reads cold bytes around it
// (AroundColdCache), and a key that cannot be opened (the read that
// follows reports it) are skipped.
func (s *core) WillNeed(ranges []zarr.ByteRange) {
	for _, r := range ranges {
		select {
		case <-s.quit:
			return
		default:
		}
		if r.Length == 0 {
			continue
		}
		f, err := s.files.acquire(r.Key)
		if err != nil {
			continue
		}
		off, n := r.Offset, max(r.Length, 0) // 0: to the end
		if off < 0 {
			off, n = max(f.size+off, 0), 0
		}
		if !f.direct && f.coldFD < 0 {
			_ = unix.Fadvise(f.fd, off, n, unix.FADV_WILLNEED)
		}
		s.files.release(f)
	}
}
