// Package dirstore reads a local directory with pread, for tests: the
// loader itself reads local stores through package uring.
package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
	"github.com/lsio-loader/lsio-loader/store/kv"
)

// Store is a kv.Store over a plain local directory, read with pread: no
// worker threads to start or stop, which is what tests want.
type Store struct {
	root string
	pool bufpool.Sized
}

// New returns a store over the directory root; keys are paths below it
// with "/" separators.
func New(root string) *Store {
	return &Store{root: filepath.Clean(root)}
}

// Close does nothing: the store holds no descriptors between reads.
func (d *Store) Close() error { return nil }

func (d *Store) String() string { return d.root }

func (d *Store) path(key string) (string, error) {
	if !fs.ValidPath(key) {
		return "", fmt.Errorf("key %q: not a valid relative path", key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// ReadBatch reads the requests with a few goroutines, which is enough to
// keep a local disk busy (package uring does better). Consecutive requests
// for the same key share one open file.
func (d *Store) ReadBatch(ctx context.Context, reqs []kv.ByteRange, done func(i int, data []byte, err error)) {
	groups := make([][2]int, 0, len(reqs)) // [first, end) of runs of one key
	for i := range reqs {
		if i > 0 && reqs[i].Key == reqs[i-1].Key {
			groups[len(groups)-1][1] = i + 1
			continue
		}
		groups = append(groups, [2]int{i, i + 1})
	}
	workers := min(len(groups), 2*runtime.GOMAXPROCS(0), 16)
	if workers <= 1 {
		for _, g := range groups {
			d.readGroup(ctx, reqs, g, done)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(groups) {
					return
				}
				d.readGroup(ctx, reqs, groups[i], done)
			}
		})
	}
	wg.Wait()
}

// readGroup reads requests [g[0], g[1]), which all name one key.
func (d *Store) readGroup(ctx context.Context, reqs []kv.ByteRange, g [2]int, done func(int, []byte, error)) {
	fail := func(err error) {
		for i := g[0]; i < g[1]; i++ {
			done(i, nil, fmt.Errorf("%s: %q: %w", d.root, reqs[i].Key, err))
		}
	}
	if err := ctx.Err(); err != nil {
		fail(err)
		return
	}
	p, err := d.path(reqs[g[0]].Key)
	if err != nil {
		fail(err)
		return
	}
	// Plain descriptors rather than os.File: a chunk file is opened, read
	// once or a few times and closed, and os.File's poller registration,
	// finaliser and Stat result cost more allocations and syscalls than
	// the read itself.
	fd, err := openRead(p)
	if err != nil {
		fail(&fs.PathError{Op: "open", Path: p, Err: err})
		return
	}
	defer closeFD(fd)
	size, isDir, err := fileSize(fd)
	if err != nil {
		fail(&fs.PathError{Op: "stat", Path: p, Err: err})
		return
	}
	if isDir {
		fail(fmt.Errorf("is a directory: %w", fs.ErrNotExist))
		return
	}
	for i := g[0]; i < g[1]; i++ {
		if err := ctx.Err(); err != nil {
			done(i, nil, err)
			continue
		}
		data, err := d.readAt(fd, size, reqs[i])
		if err != nil {
			done(i, nil, fmt.Errorf("%s: %q: %w", d.root, reqs[i].Key, err))
			continue
		}
		done(i, data, nil)
	}
}

func (d *Store) readAt(fd int, size int64, r kv.ByteRange) ([]byte, error) {
	off, n := r.Offset, r.Length
	switch {
	case off < 0:
		off = max(size+off, 0)
		n = size - off
	case n < 0:
		if off > size {
			return nil, fmt.Errorf("offset %d past the end (%d bytes)", off, size)
		}
		n = size - off
	case off+n > size || off+n < off:
		return nil, fmt.Errorf("range [%d, %d) past the end (%d bytes)", off, off+n, size)
	}
	buf := d.pool.Get(int(n))
	if err := preadFull(fd, buf, off); err != nil {
		d.pool.Put(buf)
		return nil, err
	}
	return buf, nil
}

// Release recycles a buffer that ReadBatch handed out.
func (d *Store) Release(data []byte) { d.pool.Put(data) }

// List returns the keys of the files below prefix, sorted.
func (d *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	// Walk only the directory that holds every key with this prefix.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, err := d.path(prefix[:i])
		if err != nil {
			return nil, err
		}
		start = dir
	}
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == start {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listing %q: %w", d.root, prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}
