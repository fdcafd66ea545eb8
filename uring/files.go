package uring

import (
	"container/list"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// openFile is one cached descriptor with what reads need to know about the
// file: its size (for whole and suffix reads) and, under O_DIRECT, the
// alignment the file system demands.
type openFile struct {
	key    string
	fd     int
	size   int64
	direct bool
	// align is the O_DIRECT offset and length alignment, 1 when buffered.
	align int64
	// coldFD, when not -1, reads the file's bytes the page cache does not
	// hold, with O_DIRECT at coldAlign (Options.AroundColdCache).
	coldFD    int
	coldAlign int64
	refs      int
	elem      *list.Element
}

// cached reports whether the page cache holds every page of the n bytes at
// off. A kernel without cachestat(2) (before 6.5) says yes: reads then go
// through the cache, as they would without AroundColdCache.
func (f *openFile) cached(off, n int64) bool {
	page := int64(os.Getpagesize()) // cachestat counts the kernel's pages
	first, last := off/page, (off+n-1)/page
	var st unix.Cachestat_t
	r := unix.CachestatRange{Off: uint64(first * page), Len: uint64((last - first + 1) * page)}
	if err := unix.Cachestat(uint(f.fd), &r, &st, 0); err != nil {
		return true
	}
	return st.Cache >= uint64(last-first+1)
}

// fileCache keeps the most recently used descriptors open, so that stores of
// many small chunk files do not pay an open and a close per read, without
// running out of descriptors. A descriptor in use by a read is never closed.
type fileCache struct {
	root   string
	direct bool
	// aroundCold opens each file a second time with O_DIRECT, for the
	// reads of bytes the page cache does not hold.
	aroundCold bool
	max        int

	mu    sync.Mutex
	files map[string]*openFile
	lru   list.List // front = most recently used
}

func newFileCache(root string, direct, aroundCold bool, max int) *fileCache {
	return &fileCache{root: root, direct: direct, aroundCold: aroundCold && !direct, max: max, files: make(map[string]*openFile)}
}

// acquire returns the open file for key with a reference the caller gives
// back with release.
func (c *fileCache) acquire(key string) (*openFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.files[key]; ok {
		f.refs++
		c.lru.MoveToFront(f.elem)
		return f, nil
	}
	f, err := c.open(key)
	if err != nil {
		return nil, err
	}
	f.refs = 1
	f.elem = c.lru.PushFront(f)
	c.files[key] = f
	c.evict()
	return f, nil
}

func (c *fileCache) release(f *openFile) {
	c.mu.Lock()
	f.refs--
	c.evict()
	c.mu.Unlock()
}

// evict closes the least recently used idle descriptors beyond max.
func (c *fileCache) evict() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.max; {
		f := e.Value.(*openFile)
		prev := e.Prev()
		if f.refs == 0 {
			c.lru.Remove(e)
			delete(c.files, f.key)
			f.close()
		}
		e = prev
	}
}

func (c *fileCache) open(key string) (*openFile, error) {
	rel := filepath.FromSlash(key)
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("uring: key %q leaves the store %s", key, c.root)
	}
	path := filepath.Join(c.root, rel)
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	fd, align := -1, int64(1)
	if c.direct {
		fd, align = openDirect(path, flags)
	}
	direct := fd >= 0
	if !direct {
		var err error
		if fd, err = unix.Open(path, flags, 0); err != nil {
			return nil, fmt.Errorf("uring: open %s: %w", path, err)
		}
	}
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_SIZE|unix.STATX_TYPE, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uring: statx %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Close(fd)
		return nil, fmt.Errorf("uring: %s is a directory, not an object", path)
	}
	f := &openFile{key: key, fd: fd, size: int64(st.Size), direct: direct, align: align, coldFD: -1}
	if c.aroundCold {
		f.coldFD, f.coldAlign = openDirect(path, flags)
	}
	return f, nil
}

// openDirect opens path with O_DIRECT, returning its descriptor and
// alignment, or -1 where that fails: the file system refuses O_DIRECT
// (tmpfs, some overlays) or demands more alignment than our buffers have
// (maxDirectAlign). Such files are read through the page cache rather than
// not at all; a file that cannot be opened at all is reported by the
// buffered open.
func openDirect(path string, flags int) (int, int64) {
	fd, err := unix.Open(path, flags|unix.O_DIRECT, 0)
	if err != nil {
		return -1, 0
	}
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st); err != nil {
		unix.Close(fd)
		return -1, 0
	}
	align := dioAlign(&st)
	if align > maxDirectAlign {
		unix.Close(fd)
		return -1, 0
	}
	return fd, align
}

// dioAlign is the O_DIRECT alignment statx reports (4096 when it does not).
func dioAlign(st *unix.Statx_t) int64 {
	if st.Mask&unix.STATX_DIOALIGN != 0 && st.Dio_offset_align != 0 {
		return int64(max(st.Dio_offset_align, st.Dio_mem_align))
	}
	return 4096
}

func (f *openFile) close() {
	unix.Close(f.fd)
	if f.coldFD >= 0 {
		unix.Close(f.coldFD)
	}
}

func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		f.close()
	}
	c.files = map[string]*openFile{}
	c.lru.Init()
}
