// Package pool holds decoded data for reuse within a budget: the decoded
// chunks that the blocked epoch order and `serve -cache` keep across
// batches, and the server's small caches of plans. Entries are immutable
// once added; an evicted chunk's buffer is recycled once no reader still
// copies out of it.
package pool

import (
	"container/list"
	"sync"
)

// LRU keeps values up to a total cost, evicting the least recently used
// first. It is safe for concurrent use. A miss is built by the caller
// outside the lock; two concurrent misses on one key both build (Chunks
// claims keys so that they do not), and the first Put wins.
type LRU[K comparable, V any] struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	cost    func(V) int64
	entries map[K]*list.Element // of *entry[K, V]
	order   list.List           // front: most recently used
	hits    int64
}

type entry[K comparable, V any] struct {
	key   K
	value V
	cost  int64
}

// NewLRU returns an LRU holding values whose costs sum to at most budget.
func NewLRU[K comparable, V any](budget int64, cost func(V) int64) *LRU[K, V] {
	return &LRU[K, V]{budget: budget, cost: cost, entries: map[K]*list.Element{}}
}

// Get returns the value kept under key, and marks it recently used.
func (c *LRU[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	c.hits++
	return e.Value.(*entry[K, V]).value, true
}

// Contains reports whether a value is kept under key, leaving its
// recency alone: a look that is not a use.
func (c *LRU[K, V]) Contains(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// Put keeps value under key, evicting the least recently used values
// until it fits, and returns whether it kept value and what it evicted
// (appended to evicted). A value costing more than the whole budget is not
// kept; a key already present keeps its first value.
func (c *LRU[K, V]) Put(key K, value V, evicted []V) (kept bool, _ []V) {
	n := c.cost(value)
	if n > c.budget {
		return false, evicted
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		return false, evicted
	}
	for c.used+n > c.budget {
		old := c.order.Remove(c.order.Back()).(*entry[K, V])
		delete(c.entries, old.key)
		c.used -= old.cost
		evicted = append(evicted, old.value)
	}
	c.entries[key] = c.order.PushFront(&entry[K, V]{key: key, value: value, cost: n})
	c.used += n
	return true, evicted
}

// Hits is how many Gets found their key.
func (c *LRU[K, V]) Hits() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// Used is the summed cost of what is kept, and Len how many values.
func (c *LRU[K, V]) Used() (cost int64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, len(c.entries)
}

// Budget is the most the kept values may cost together.
func (c *LRU[K, V]) Budget() int64 { return c.budget }
