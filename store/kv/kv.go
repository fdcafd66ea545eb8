// Package kv is the contract every store keeps: byte ranges of named
// objects read in batches. It imports nothing of the project, so that the
// stores, the test stores and the zarr reader can all share it.
package kv

import "context"

// ByteRange names the bytes of one stored object that a read wants.
type ByteRange struct {
	// Key is store-relative and "/"-separated, e.g. "UKV/0.0.0.0.0" or "data/zarr.json".
	Key string
	// Offset is the first byte wanted. A negative Offset asks for a suffix:
	// the last -Offset bytes of the object (Length is then ignored), the way
	// a shard index at the end of a shard is read.
	Offset int64
	// Length is the number of bytes wanted; -1 reads to the end of the object.
	Length int64
}

// Reader is what a Zarr hierarchy is read from: a local directory, an
// io_uring-backed directory, an S3 prefix, an HTTPS base URL or memory.
//
// ReadBatch issues every request of reqs at once, so that backends can keep
// many reads in flight, and calls done once per request as it completes, in
// any order and possibly from several goroutines at the same time. A missing
// object gives an error wrapping fs.ErrNotExist. A range past the end of the
// object is an error (never short data), except Length -1 and suffix reads,
// which are clipped to the object. ReadBatch returns once every done call
// has returned; if ctx is cancelled, the requests not yet completed get
// ctx.Err().
//
// The data slice handed to done belongs to the receiver, which gives it back
// with Release once it no longer needs it, so that the store can recycle it.
type Reader interface {
	ReadBatch(ctx context.Context, reqs []ByteRange, done func(i int, data []byte, err error))
	Release(data []byte)
	// List returns the keys below prefix ("" for all), for hierarchies
	// without consolidated metadata.
	List(ctx context.Context, prefix string) ([]string, error)
	// String names the store in error messages, as a URL or path.
	String() string
}

// Store is a Reader its opener owns: Close releases what it holds (worker
// threads, descriptors, idle connections). No call may follow Close.
type Store interface {
	Reader
	Close() error
}
