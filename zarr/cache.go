package zarr

import (
	"container/list"
	"sync"
)

// ChunkCache keeps decoded read chunks (inner chunks when sharded) of any
// number of arrays within a byte budget, evicting the least recently used
// first, so that chunks that later batches touch again are neither fetched
// nor decoded again. It is safe for concurrent use; share one between the
// readers of a process. A cached chunk is immutable: evicted buffers are
// left to the garbage collector rather than recycled, since a concurrent
// reader may still be copying out of them.
type ChunkCache struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	entries map[chunkID]*list.Element // of *cachedChunk
	lru     list.List                 // front: most recently used
	hits    int64
}

// chunkID names a read chunk: the array (its store and path) and the
// chunk's C-order index in the read-chunk grid.
type chunkID struct {
	arr   *Array
	chunk int64
}

type cachedChunk struct {
	id   chunkID
	data []byte
}

// NewChunkCache returns a cache holding at most budget bytes of decoded
// chunks.
func NewChunkCache(budget int64) *ChunkCache {
	return &ChunkCache{budget: budget, entries: map[chunkID]*list.Element{}}
}

func (c *ChunkCache) get(id chunkID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	c.hits++
	return e.Value.(*cachedChunk).data, true
}

// Hits is how many chunk reads the cache has answered.
func (c *ChunkCache) Hits() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// add keeps data, which the cache then owns and nobody may modify.
func (c *ChunkCache) add(id chunkID, data []byte) {
	n := int64(len(data))
	if n > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; ok {
		return // decoded concurrently by another reader
	}
	for c.used+n > c.budget {
		last := c.lru.Back()
		old := c.lru.Remove(last).(*cachedChunk)
		delete(c.entries, old.id)
		c.used -= int64(len(old.data))
	}
	c.entries[id] = c.lru.PushFront(&cachedChunk{id: id, data: data})
	c.used += n
}
