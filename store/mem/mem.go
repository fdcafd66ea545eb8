// Package mem is a store held in memory, for tests: the same contract as
// the disk and network stores (see package kv) with no files, threads or
// servers, as pebble's in-memory vfs.FS serves its tests.
package mem

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/lsio-loader/lsio-loader/store/kv"
)

// Store holds objects by key. It never changes after New, so reads need
// no locks.
type Store struct {
	name    string
	objects map[string][]byte
}

// New returns a store named name (for messages) holding a copy of
// objects.
func New(name string, objects map[string][]byte) *Store {
	s := &Store{name: name, objects: make(map[string][]byte, len(objects))}
	for k, v := range objects {
		s.objects[k] = slices.Clone(v)
	}
	return s
}

// String names the store as a mem:// URL.
func (s *Store) String() string { return "mem://" + s.name }

// ReadBatch serves every request in order; data handed to done is a copy,
// so that a caller that writes into it cannot change the store.
func (s *Store) ReadBatch(ctx context.Context, reqs []kv.ByteRange, done func(int, []byte, error)) {
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			done(i, nil, err)
			continue
		}
		data, err := s.read(r)
		if err != nil {
			done(i, nil, fmt.Errorf("%s: %q: %w", s, r.Key, err))
			continue
		}
		done(i, data, nil)
	}
}

func (s *Store) read(r kv.ByteRange) ([]byte, error) {
	obj, ok := s.objects[r.Key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	size := int64(len(obj))
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
	return slices.Clone(obj[off : off+n]), nil
}

// Release does nothing: buffers are the garbage collector's.
func (s *Store) Release([]byte) {}

// List returns the keys below prefix, sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(s.objects)) {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Close does nothing.
func (s *Store) Close() error { return nil }

// Stores names in-memory stores, so that tests can open them by URL:
// mem://NAME/PREFIX opens the objects of Stores[NAME] below PREFIX.
type Stores map[string]*Store

// Open is the opener of the mem scheme (see store.Registry.With).
func (ss Stores) Open(_ context.Context, u *url.URL) (kv.Store, error) {
	s, ok := ss[u.Host]
	if !ok {
		return nil, fmt.Errorf("mem: open %s: no store named %q", u, u.Host)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" {
		return s, nil
	}
	sub := &Store{name: s.name + "/" + prefix, objects: map[string][]byte{}}
	for k, v := range s.objects {
		if rest, ok := strings.CutPrefix(k, prefix+"/"); ok {
			sub.objects[rest] = v
		}
	}
	return sub, nil
}
