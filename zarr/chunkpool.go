package zarr

// ChunkPool holds decoded read chunks (inner chunks when sharded) for
// reuse across reads; package pool implements it. Kept chunks are
// immutable: Keep hands data over, and what Chunk returns is only read.
type ChunkPool interface {
	Chunk(a *Array, chunk int64) ([]byte, bool)
	Keep(a *Array, chunk int64, data []byte)
}
