package pool

import "github.com/lsio-loader/lsio-loader/zarr"

// Chunks keeps decoded read chunks (inner chunks when sharded) of any
// number of arrays within a byte budget, least recently used out first,
// so that chunks that later batches touch again are neither fetched nor
// decoded again. Share one between the readers that should share chunks:
// the streams of a blocked experiment, or a whole server (`serve -cache`).
// It implements zarr.ChunkPool.
type Chunks struct {
	lru *LRU[chunkKey, []byte]
}

// chunkKey names a read chunk: the array (its store and path) and the
// chunk's C-order index in the read-chunk grid.
type chunkKey struct {
	arr   *zarr.Array
	chunk int64
}

// NewChunks returns a pool holding at most budget bytes of decoded chunks.
func NewChunks(budget int64) *Chunks {
	return &Chunks{lru: NewLRU[chunkKey](budget, func(b []byte) int64 { return int64(len(b)) })}
}

// Chunk returns the decoded chunk if it is kept.
func (c *Chunks) Chunk(a *zarr.Array, chunk int64) ([]byte, bool) {
	return c.lru.Get(chunkKey{a, chunk})
}

// Keep holds data, which the pool then owns and nobody may modify.
func (c *Chunks) Keep(a *zarr.Array, chunk int64, data []byte) {
	c.lru.Put(chunkKey{a, chunk}, data)
}

// Hits is how many chunk reads the pool has answered.
func (c *Chunks) Hits() int64 { return c.lru.Hits() }

// Used is the bytes held and the number of chunks.
func (c *Chunks) Used() (bytes int64, chunks int) { return c.lru.Used() }

// Budget is the most bytes the pool holds.
func (c *Chunks) Budget() int64 { return c.lru.Budget() }
