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
// is decoded by the first, the others waiting for it.
type Chunks struct {
	lru *LRU[chunkKey, []byte]

	mu       sync.Mutex
	decoding map[chunkKey]chan struct{} // claimed chunks; closed on Keep or Drop
}

// chunkKey names a read chunk: the array (its store and path) and the
// chunk's C-order index in the read-chunk grid.
type chunkKey struct {
	arr   *zarr.Array
	chunk int64
}

// NewChunks returns a pool holding at most budget bytes of decoded chunks.
func NewChunks(budget int64) *Chunks {
	return &Chunks{
		lru:      NewLRU[chunkKey](budget, func(b []byte) int64 { return int64(len(b)) }),
		decoding: map[chunkKey]chan struct{}{},
	}
}

// Claim returns the decoded chunk if it is kept; if not, a channel closed
// when the reader decoding it is done, or, when no reader is, nil: the
// caller has claimed the chunk and must Keep or Drop it.
func (c *Chunks) Claim(a *zarr.Array, chunk int64) ([]byte, bool, <-chan struct{}) {
	k := chunkKey{a, chunk}
	c.mu.Lock()
	defer c.mu.Unlock()
	if data, ok := c.lru.Get(k); ok {
		return data, true, nil
	}
	if wait, ok := c.decoding[k]; ok {
		return nil, false, wait
	}
	c.decoding[k] = make(chan struct{})
	return nil, false, nil
}

// Keep holds data, which the pool then owns and nobody may modify, and
// ends a claim on the chunk.
func (c *Chunks) Keep(a *zarr.Array, chunk int64, data []byte) {
	k := chunkKey{a, chunk}
	// Kept before the waiters wake, so that their Claim finds it.
	c.lru.Put(k, data)
	c.release(k)
}

// Drop ends a claim on the chunk without keeping anything.
func (c *Chunks) Drop(a *zarr.Array, chunk int64) { c.release(chunkKey{a, chunk}) }

func (c *Chunks) release(k chunkKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
