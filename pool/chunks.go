package pool

import (
	"sync"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// Chunks keeps decoded read chunks (inner chunks when sharded) of any
// number of arrays within a byte budget, least recently used out first,
// so that chunks that later batches touch again are neither fetched nor
// decoded again. Share one between the readers that should share chunks:
// the streams of a blocked experiment, or a whole server (`serve -cache`).
// It implements zarr.ChunkPool: a chunk that several readers miss at once
// is decoded by the first, the others waiting for it; an evicted chunk's
// buffer goes back to its array for later decodes once every reader that
// claimed it has released it (fresh buffers cost a page fault per 4 KiB).
type Chunks struct {
	lru *LRU[chunkKey, *kept]

	mu       sync.Mutex
	decoding map[chunkKey]chan struct{} // claimed chunks; closed on Keep or Drop
	readers  map[*byte]*kept            // chunks that readers copy out of
	evicted  []*kept                    // scratch of Keep
}

// kept is one decoded chunk and who holds it.
type kept struct {
	arr     *zarr.Array
	data    []byte
	readers int  // Claims not yet released
	inLRU   bool // not evicted yet
}

// chunkKey names a read chunk: the array (its store and path) and the
// chunk's C-order index in the read-chunk grid.
type chunkKey struct {
	arr   *zarr.Array
	chunk int64
}

// NewChunks returns a pool holding decoded chunks in at most budget bytes
// of memory: a chunk costs its buffer's capacity, which the buffer pool
// rounds up to a power of two (a 768 KiB chunk takes 1 MiB).
func NewChunks(budget int64) *Chunks {
	return &Chunks{
		lru:      NewLRU[chunkKey](budget, func(k *kept) int64 { return int64(cap(k.data)) }),
		decoding: map[chunkKey]chan struct{}{},
		readers:  map[*byte]*kept{},
	}
}

// Claim returns the decoded chunk if it is kept, which the caller gives
// back with Release once it has copied what it needs; if it is not kept,
// a channel closed when the reader decoding it is done, or, when no reader
// is, nil: the caller has claimed the chunk and must Keep or Drop it.
func (c *Chunks) Claim(a *zarr.Array, chunk int64) ([]byte, bool, <-chan struct{}) {
	k := chunkKey{a, chunk}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Get(k); ok {
		if e.readers == 0 {
			c.readers[&e.data[0]] = e
		}
		e.readers++
		return e.data, true, nil
	}
	if wait, ok := c.decoding[k]; ok {
		return nil, false, wait
	}
	c.decoding[k] = make(chan struct{})
	return nil, false, nil
}

// Holds reports whether the chunk is kept or being decoded, without
// claiming it or counting a hit: a chunk it holds needs no fetching.
func (c *Chunks) Holds(a *zarr.Array, chunk int64) bool {
	k := chunkKey{a, chunk}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, decoding := c.decoding[k]
	return decoding || c.lru.Contains(k)
}

// Release gives back a chunk that Claim returned.
func (c *Chunks) Release(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.readers[&data[0]]
	if e == nil {
		return
	}
	if e.readers--; e.readers == 0 {
		delete(c.readers, &data[0])
		if !e.inLRU {
			e.arr.Recycle(e.data)
		}
	}
}

// Keep holds data, which the pool then owns and nobody may modify, and
// ends a claim on the chunk.
func (c *Chunks) Keep(a *zarr.Array, chunk int64, data []byte) {
	k := chunkKey{a, chunk}
	if len(data) == 0 {
		c.Drop(a, chunk)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Kept before the waiters wake, so that their Claim finds it.
	e := &kept{arr: a, data: data, inLRU: true}
	ok, evicted := c.lru.Put(k, e, c.evicted[:0])
	if !ok {
		a.Recycle(data)
	}
	for _, old := range evicted {
		old.inLRU = false
		if old.readers == 0 {
			old.arr.Recycle(old.data)
		}
	}
	clear(evicted)
	c.evicted = evicted[:0]
	c.endClaim(k)
}

// Drop ends a claim on the chunk without keeping anything.
func (c *Chunks) Drop(a *zarr.Array, chunk int64) {
	k := chunkKey{a, chunk}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endClaim(k)
}

// endClaim wakes the readers waiting on a claimed chunk; c.mu is held.
func (c *Chunks) endClaim(k chunkKey) {
	if wait, ok := c.decoding[k]; ok {
		close(wait)
		delete(c.decoding, k)
	}
}

// Hits is how many chunk reads the pool has answered.
func (c *Chunks) Hits() int64 { return c.lru.Hits() }

// Used is the bytes held and the number of chunks.
func (c *Chunks) Used() (bytes int64, chunks int) { return c.lru.Used() }

// Budget is the most bytes the pool holds.
func (c *Chunks) Budget() int64 { return c.lru.Budget() }
