package uring

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lsio-loader/lsio-loader/zarr"
)

// resident counts the pages of path in the page cache.
func resident(t *testing.T, path string) (in, all int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			in++
		}
	}
	return in, len(vec)
}

func TestWillNeedReadsIntoThePageCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chunk")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// Clean pages can be dropped from the page cache by anyone.
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if in, _ := resident(t, path); in > 0 {
		t.Skipf("%s keeps %d pages of a dropped file in memory (tmpfs?): a hint cannot be seen here", dir, in)
	}

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Keys that cannot be read are skipped: their reads report them.
	s.WillNeed([]zarr.ByteRange{{Key: "missing", Length: -1}, {Key: "../outside", Length: -1}, {Key: "chunk", Length: -1}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, all := resident(t, path)
		if in == all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pages in the page cache 5 s after the hint", in, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	s.WillNeed([]zarr.ByteRange{{Key: "chunk", Length: -1}})
	if n := len(s.files.files); n != 0 {
		t.Fatalf("a hint after Close left %d files open", n)
	}
}
