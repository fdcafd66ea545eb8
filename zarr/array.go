package zarr

import (
	"context"
	"fmt"
	"sync"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
)

// Array is one Zarr array, v2 or v3, opened for reading.
type Array struct {
	Store Store
	// Path is the array's store-relative path without leading or trailing
	// "/" ("" for an array at the root); Name is its last element.
	Path, Name string
	// ZarrFormat is 2 or 3.
	ZarrFormat int
	Shape      []int64
	// ChunkShape is the grid of stored objects: shards when sharded.
	ChunkShape []int64
	// ReadChunkShape is the unit that is read and decoded: the inner chunks
	// when sharded, else ChunkShape.
	ReadChunkShape []int64
	DType          DType
	// Fill is one element, little-endian, that missing chunks read as.
	Fill []byte
	// fillSet is false for a v2 fill_value null (Fill is then zeros).
	fillSet bool
	// Dims names the dimensions (_ARRAY_DIMENSIONS or dimension_names); nil
	// when the metadata has none.
	Dims  []string
	Attrs map[string]any
	// Codecs describes the codec chain for humans, outermost (first applied
	// on write) first, e.g. ["bytes(little)", "blosc(lz4,shuffle,clevel=5)"].
	Codecs []string

	chain   *codecChain // outer chunk codecs
	keys    keyEncoding
	shardMu sync.Mutex
	shards  map[string]shardIndex // index of each shard read so far, by key
	// shardBytes is the size of the cached indexes.
	shardBytes int64
	pool       *bufpool.Sized
	// ops recycles ReadRegions' planning scratch (*readOp) across calls;
	// concurrent calls each get their own.
	ops sync.Pool
	// wholeChunks turns partial reads and decodes off, so that
	// benchmarks can measure what they save.
	wholeChunks bool
}

// Region is the hyper-rectangle [Start, Start+Shape) of an array.
type Region struct{ Start, Shape []int64 }

// ReadStats accounts the work of one ReadRegions call.
type ReadStats struct {
	// Chunks counts the distinct read chunks (inner chunks when sharded)
	// the regions touched, each fetched and decoded at most once; Missing
	// counts those of them that were absent and read as the fill value.
	Chunks, Missing int64
	// BytesRead counts bytes fetched from the store, shard indexes included.
	BytesRead int64
	// BytesDecoded counts bytes that decompression produced: less than the
	// chunks' size when only the needed blocks were decoded.
	BytesDecoded int64
	// BytesDelivered counts bytes copied into the destinations.
	BytesDelivered int64
	// CacheHits counts the chunks of Chunks found in a ChunkPool.
	CacheHits int64
}

// Add adds o to s.
func (s *ReadStats) Add(o ReadStats) {
	s.Chunks += o.Chunks
	s.Missing += o.Missing
	s.BytesRead += o.BytesRead
	s.BytesDecoded += o.BytesDecoded
	s.BytesDelivered += o.BytesDelivered
	s.CacheHits += o.CacheHits
}

// Recycle gives a decoded chunk that a ChunkPool held back for the array's
// later decodes, once nothing reads it any more.
func (a *Array) Recycle(chunk []byte) { a.pool.Put(chunk) }

// NumElements returns the number of elements of the whole array.
func (a *Array) NumElements() int64 {
	n := int64(1)
	for _, s := range a.Shape {
		n *= s
	}
	return n
}

// String names the array as store and path, for error messages.
func (a *Array) String() string {
	return fmt.Sprintf("%s array %q", a.Store, "/"+a.Path)
}

// Read reads the hyper-rectangle [start, start+shape) into dst, which must
// hold exactly prod(shape) elements: C order, little-endian, the array's
// dtype. Missing chunks read as the fill value.
func (a *Array) Read(ctx context.Context, start, shape []int64, dst []byte) error {
	_, err := a.ReadRegions(ctx, []Region{{Start: start, Shape: shape}}, [][]byte{dst})
	return err
}

// ReadAll reads the whole array into a new buffer.
func (a *Array) ReadAll(ctx context.Context) ([]byte, error) {
	n := a.NumElements() * int64(a.DType.Size)
	if n > maxReadAllBytes {
		return nil, fmt.Errorf("%s: %d bytes is too large to read whole", a, n)
	}
	dst := make([]byte, n)
	start := make([]int64, len(a.Shape))
	if err := a.Read(ctx, start, a.Shape, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// maxShardCacheBytes bounds the shard indexes an Array keeps.
const maxShardCacheBytes = 64 << 20

// maxReadAllBytes bounds ReadAll, which is meant for coordinates and tests.
const maxReadAllBytes = 1 << 32
