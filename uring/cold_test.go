package uring

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// dropFromCache writes data to dir/name and drops its pages from the page
// cache, skipping the test where that cannot be seen.
func dropFromCache(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if in, _ := resident(t, path); in > 0 {
		t.Skipf("%s keeps %d pages of a dropped file in memory (tmpfs?): reads around the cache cannot be seen here", dir, in)
	}
	return path
}

// TestAroundColdCacheLeavesColdBytesOutOfTheCache: a store with
// AroundColdCache reads bytes the page cache lacks with O_DIRECT (they
// stay out of the cache), bytes it holds through it, returns the same
// bytes either way, whole files and ranges at any offset, and ignores
// hints.
func TestAroundColdCacheLeavesColdBytesOutOfTheCache(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+1234) // not a whole number of pages
	for i := range data {
		data[i] = byte(i*13 + i>>11)
	}
	cold := dropFromCache(t, dir, "cold", data)
	warm := dropFromCache(t, dir, "warm", data)
	if _, err := os.ReadFile(warm); err != nil { // now in the page cache
		t.Fatal(err)
	}
	if in, all := resident(t, warm); in != all {
		t.Skipf("a read file keeps %d of %d pages in the page cache", in, all)
	}
	for _, pread := range []bool{false, true} {
		s, err := Open(dir, Options{AroundColdCache: true, Pread: pread})
		if err != nil {
			t.Fatal(err)
		}
		s.WillNeed([]zarr.ByteRange{{Key: "cold", Length: -1}})
		reqs := []zarr.ByteRange{
			{Key: "cold", Length: -1},
			{Key: "cold", Offset: 5000, Length: 70000}, // unaligned range
			{Key: "cold", Offset: -100},                // suffix
			{Key: "warm", Length: -1},
			{Key: "warm", Offset: 123, Length: 4000},
		}
		want := [][]byte{data, data[5000:75000], data[len(data)-100:], data, data[123:4123]}
		s.ReadBatch(context.Background(), reqs, func(i int, got []byte, err error) {
			if err != nil {
				t.Errorf("pread %v: read %d (%+v): %v", pread, i, reqs[i], err)
			} else if !bytes.Equal(got, want[i]) {
				t.Errorf("pread %v: read %d (%+v): %d bytes differ from the file's", pread, i, reqs[i], len(got))
			}
			s.Release(got)
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if in, all := resident(t, cold); in > 0 {
			t.Errorf("pread %v: %d of %d pages of the cold file in the page cache after the reads and a hint: want none", pread, in, all)
		}
	}
}
