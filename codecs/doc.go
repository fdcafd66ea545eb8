// Package codecs implements the compression formats that Zarr chunks are
// stored in (blosc 1.x with its lz4, lz4hc, zstd, zlib, snappy and blosclz
// internal codecs and byte/bit shuffles; zstd; gzip; zlib; bz2; numcodecs'
// LZ4 framing) and the CRC32C checksum. It knows nothing about Zarr.
//
// Every decoder follows one contract: Decode(dst, src, size) decompresses
// src into dst[:n], reusing dst's capacity and allocating only when it is
// too small. A size >= 0 is the exact decoded length the caller expects: an
// encoded header claiming anything else is an error, detected before any
// allocation. A size < 0 means the length is unknown but at most -size
// bytes. Hostile input gives an error, never a panic or an allocation
// beyond what the caller allowed. Every type is safe for concurrent use.
package codecs

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrCorrupt is wrapped by every error about malformed compressed input, so
// callers can tell bad data from bad arguments with errors.Is.
var ErrCorrupt = errors.New("corrupt compressed data")

// CRC32C returns the Castagnoli CRC-32 of b, as Zarr v3's crc32c codec
// stores it.
func CRC32C(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// checkClaimed validates a decoded length announced by an encoded header
// against the caller's size contract.
func checkClaimed(format string, claimed, size int) error {
	switch {
	case claimed < 0:
		return fmt.Errorf("%s: header claims negative decoded size %d: %w", format, claimed, ErrCorrupt)
	case size >= 0 && claimed != size:
		return fmt.Errorf("%s: header claims %d decoded bytes, caller expects %d: %w", format, claimed, size, ErrCorrupt)
	case size < 0 && claimed > -size:
		return fmt.Errorf("%s: header claims %d decoded bytes, more than the limit %d: %w", format, claimed, -size, ErrCorrupt)
	}
	return nil
}

// resize returns dst[:n], reusing dst's storage when it is large enough.
func resize(dst []byte, n int) []byte {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]byte, n)
}

// limitOf turns the size contract into the largest acceptable output.
func limitOf(size int) int {
	if size >= 0 {
		return size
	}
	// Keep limit+1 representable: readers probe one byte past the limit.
	if size <= -maxInt {
		return maxInt - 1
	}
	return -size
}

const maxInt = int(^uint(0) >> 1)
