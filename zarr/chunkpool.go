package zarr

// ChunkPool holds decoded read chunks (inner chunks when sharded) for
// reuse across reads; package pool implements it. Kept chunks are
// immutable: Keep hands data over, and what Claim returns is only read,
// until Release (the pool may then recycle it once it is evicted).
//
// Concurrent reads that miss on one chunk decode it once: the first to
// Claim it decodes it, and the others wait for its Keep (or its Drop, after
// which they read the chunk themselves). Streams drawing from the same
// resident blocks of the blocked order miss on the same chunks together.
type ChunkPool interface {
	// Claim returns the chunk when it is kept (ok). Otherwise, when another
	// read is decoding it, wait is closed once that read has kept or
	// dropped it; when none is, the caller has claimed it, and must Keep
	// or Drop it.
	Claim(a *Array, chunk int64) (data []byte, ok bool, wait <-chan struct{})
	// Release gives back data from Claim once nothing is read from it.
	Release(data []byte)
	// Keep holds a decoded chunk, claimed or not.
	Keep(a *Array, chunk int64, data []byte)
	// Drop gives up a claim without a chunk (a failed or cancelled read).
	Drop(a *Array, chunk int64)
}
