package uring

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// benchFile is the file random reads go to: $LSIO_BENCH_FILE (bench/io/run.sh
// makes one and runs fio on the same file), or a 256 MiB file made here.
func benchFile(b *testing.B) (dir, key string, size int64) {
	b.Helper()
	if path := os.Getenv("LSIO_BENCH_FILE"); path != "" {
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		return filepath.Dir(path), filepath.Base(path), st.Size()
	}
	dir = b.TempDir()
	f, err := os.Create(filepath.Join(dir, "bench.bin"))
	if err != nil {
		b.Fatal(err)
	}
	block := make([]byte, 1<<20)
	for range 256 {
		crand.Read(block)
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, "bench.bin", 256 << 20
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// runReads reads every request of reqs b.N times over in batches and
// releases the buffers, failing on the first error.
func runReads(b *testing.B, s *Store, reqs func(i int) zarr.ByteRange, perBatch int) {
	batch := make([]zarr.ByteRange, perBatch)
	var failed error
	done := func(_ int, data []byte, err error) {
		if err != nil {
			failed = err
		}
		s.Release(data)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += perBatch {
		k := min(perBatch, b.N-n)
		for i := range k {
			batch[i] = reqs(n + i)
		}
		s.ReadBatch(b.Context(), batch[:k], done)
		if failed != nil {
			b.Fatal(failed)
		}
	}
}

// BenchmarkRandomRead reads random aligned blocks of one file, like fio
// --rw=randread with the same block size and queue depth
// ($LSIO_BENCH_DEPTH, default 64) on one thread ($LSIO_BENCH_WORKERS).
func BenchmarkRandomRead(b *testing.B) {
	dir, key, size := benchFile(b)
	depth := envInt("LSIO_BENCH_DEPTH", 64)
	workers := envInt("LSIO_BENCH_WORKERS", 1)
	for _, direct := range []bool{false, true} {
		for _, backend := range []string{"io_uring", "pread"} {
			for _, bs := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
				mode := "buffered"
				if direct {
					mode = "direct"
				}
				b.Run(fmt.Sprintf("%s/%s/%dKiB", backend, mode, bs>>10), func(b *testing.B) {
					s, err := Open(dir, Options{Workers: workers, QueueDepth: depth, Direct: direct, Pread: backend == "pread"})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					blocks := size / int64(bs)
					rng := rand.New(rand.NewPCG(1, uint64(bs)))
					b.SetBytes(int64(bs))
					runReads(b, s, func(int) zarr.ByteRange {
						return zarr.ByteRange{Key: key, Offset: rng.Int64N(blocks) * int64(bs), Length: int64(bs)}
					}, 16*depth*workers)
				})
			}
		}
	}
}

// BenchmarkChunkFiles reads whole chunk files one after another, like fio
// --rw=read over many files: $LSIO_BENCH_CHUNKDIR (run.sh points it at the
// files fio laid out) or 64 files of 1 MiB made here.
func BenchmarkChunkFiles(b *testing.B) {
	dir := os.Getenv("LSIO_BENCH_CHUNKDIR")
	if dir == "" {
		dir = b.TempDir()
		block := make([]byte, 1<<20)
		for i := range 64 {
			crand.Read(block)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("chunk.%d", i)), block, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var keys []string
	var total int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			keys = append(keys, e.Name())
			total += info.Size()
		}
	}
	depth := envInt("LSIO_BENCH_DEPTH", 64)
	workers := envInt("LSIO_BENCH_WORKERS", 1)
	for _, direct := range []bool{false, true} {
		for _, backend := range []string{"io_uring", "pread"} {
			mode := "buffered"
			if direct {
				mode = "direct"
			}
			b.Run(backend+"/"+mode, func(b *testing.B) {
				s, err := Open(dir, Options{Workers: workers, QueueDepth: depth, Direct: direct, Pread: backend == "pread"})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(total / int64(len(keys)))
				runReads(b, s, func(i int) zarr.ByteRange {
					return zarr.ByteRange{Key: keys[i%len(keys)], Length: -1}
				}, 16*depth*workers)
			})
		}
	}
}
