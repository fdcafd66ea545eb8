package zarr

import "github.com/lsio-loader/lsio-loader/store/kv"

// ByteRange names the bytes of one stored object that a read wants; see
// kv.ByteRange.
type ByteRange = kv.ByteRange

// Store is what a Zarr hierarchy is read from; see kv.Reader for the
// contract every store keeps.
type Store = kv.Reader
