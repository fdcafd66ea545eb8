package uring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

type result struct {
	data []byte
	err  error
}

// readAll runs one batch and copies every result out, releasing the
// store's buffers as a real caller does.
func readAll(t *testing.T, ctx context.Context, s *Store, reqs []zarr.ByteRange) []result {
	t.Helper()
	res := make([]result, len(reqs))
	var mu sync.Mutex
	seen := make([]bool, len(reqs))
	s.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		if seen[i] {
			t.Errorf("request %d completed twice", i)
		}
		seen[i] = true
		res[i] = result{bytes.Clone(data), err}
		s.Release(data)
	})
	for i, ok := range seen {
		if !ok {
			t.Fatalf("request %d never completed", i)
		}
	}
	return res
}

func openStore(t *testing.T, root string, opts Options) *Store {
	t.Helper()
	s, err := Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// realRequests lists every object of a real store with whole, ranged and
// suffix reads and the bytes each must give, from os.ReadFile.
func realRequests(t *testing.T, root string) ([]zarr.ByteRange, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var reqs []zarr.ByteRange
	var want [][]byte
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		key := filepath.ToSlash(rel)
		reqs = append(reqs, zarr.ByteRange{Key: key, Length: -1})
		want = append(want, data)
		if len(data) > 2 {
			off := rng.IntN(len(data) - 1)
			n := rng.IntN(len(data) - off)
			reqs = append(reqs, zarr.ByteRange{Key: key, Offset: int64(off), Length: int64(n)})
			want = append(want, data[off:off+n])
			suffix := rng.IntN(len(data)) + 1
			reqs = append(reqs, zarr.ByteRange{Key: key, Offset: -int64(suffix)})
			want = append(want, data[len(data)-suffix:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reqs, want
}

func TestReadBatchMatchesFiles(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_hrv.zarr")
	reqs, want := realRequests(t, root)
	// Past-the-end suffixes are clipped to the object.
	reqs = append(reqs, zarr.ByteRange{Key: ".zattrs", Offset: -1 << 40})
	w, _ := os.ReadFile(filepath.Join(root, ".zattrs"))
	want = append(want, w)

	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"io_uring", Options{}},
		{"io_uring direct", Options{Direct: true}},
		{"io_uring tiny queue few fds", Options{Workers: 1, QueueDepth: 2, MaxOpenFiles: 3}},
		{"pread", Options{Pread: true}},
		{"pread direct", Options{Pread: true, Direct: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, root, tc.opts)
			got := readAll(t, t.Context(), s, reqs)
			for i, r := range got {
				if r.err != nil {
					t.Fatalf("%+v: %v", reqs[i], r.err)
				}
				if !bytes.Equal(r.data, want[i]) {
					t.Fatalf("%+v: got %d bytes, want %d (contents differ)", reqs[i], len(r.data), len(want[i]))
				}
			}
			st := s.Stats()
			wantBackend := "io_uring"
			if tc.opts.Pread {
				wantBackend = "pread"
			}
			if st.Backend != wantBackend || st.Reads < uint64(len(reqs)-1) {
				t.Fatalf("stats %+v: want backend %s and at least %d reads", st, wantBackend, len(reqs)-1)
			}
			if wantBackend == "io_uring" && (st.Enters == 0 || st.Enters >= st.Reads) {
				t.Fatalf("stats %+v: reads were not batched into fewer io_uring_enter calls", st)
			}
			if n := s.pool.Outstanding(); n != 0 {
				t.Fatalf("%d buffers not back in the pool", n)
			}
		})
	}
}

func TestReadBatchErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "obj"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {Pread: true}} {
		s := openStore(t, root, opts)
		for _, tc := range []struct {
			req     zarr.ByteRange
			want    string
			wantErr string
		}{
			{zarr.ByteRange{Key: "obj", Offset: 2, Length: 3}, "234", ""},
			{zarr.ByteRange{Key: "obj", Offset: 10, Length: 0}, "", ""},
			{zarr.ByteRange{Key: "obj", Offset: 10, Length: -1}, "", ""},
			{zarr.ByteRange{Key: "obj", Offset: -4}, "6789", ""},
			{zarr.ByteRange{Key: "obj", Offset: 8, Length: 3}, "", "past the end"},
			{zarr.ByteRange{Key: "obj", Offset: 11, Length: -1}, "", "past the end"},
			{zarr.ByteRange{Key: "missing/0.0"}, "", "no such file"},
			{zarr.ByteRange{Key: "../obj", Length: -1}, "", "leaves the store"},
			{zarr.ByteRange{Key: "dir", Length: -1}, "", "is a directory"},
		} {
			r := readAll(t, t.Context(), s, []zarr.ByteRange{tc.req})[0]
			if tc.wantErr == "" {
				if r.err != nil || string(r.data) != tc.want {
					t.Errorf("%s %+v: got %q, %v; want %q", s.backend, tc.req, r.data, r.err, tc.want)
				}
				continue
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Errorf("%s %+v: got error %v, want one containing %q", s.backend, tc.req, r.err, tc.wantErr)
			}
			if tc.req.Key == "missing/0.0" && !errors.Is(r.err, fs.ErrNotExist) {
				t.Errorf("%s: missing object error %v does not wrap fs.ErrNotExist", s.backend, r.err)
			}
		}
	}
}

func TestReadBatchCancelled(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_hrv.zarr")
	reqs, _ := realRequests(t, root)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, opts := range []Options{{}, {Pread: true}} {
		s := openStore(t, root, opts)
		for i, r := range readAll(t, ctx, s, reqs) {
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("%s %+v: got %v, want context.Canceled", s.backend, reqs[i], r.err)
			}
		}
	}
}

func TestList(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	s := openStore(t, root, Options{})
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", nil},
		{"time/", []string{"time/.zarray", "time/.zattrs", "time/0"}},
		{"time/.za", []string{"time/.zarray", "time/.zattrs"}},
		{"nothere/", []string{}},
	} {
		got, err := s.List(t.Context(), tc.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if len(got) < 10 || !contains(got, ".zmetadata") || !contains(got, "data/0.0.0.0") {
				t.Fatalf("List(%q) = %v", tc.prefix, got)
			}
			continue
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Fatalf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A file that shrinks after its size was cached gives an error, never
// short data.
func TestFileShrunk(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "chunk")
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {Pread: true}, {Direct: true}} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, root, opts)
		if r := readAll(t, t.Context(), s, []zarr.ByteRange{{Key: "chunk", Length: -1}})[0]; r.err != nil || !bytes.Equal(r.data, data) {
			t.Fatalf("%s: first read: %v", s.backend, r.err)
		}
		if err := os.Truncate(path, 1000); err != nil {
			t.Fatal(err)
		}
		r := readAll(t, t.Context(), s, []zarr.ByteRange{{Key: "chunk", Offset: 500, Length: 30000}})[0]
		if !errors.Is(r.err, io.ErrUnexpectedEOF) || !strings.Contains(r.err.Error(), "chunk") {
			t.Fatalf("%s: read of a shrunk file gave %q, %v", s.backend, r.data, r.err)
		}
	}
}

// Short reads resume where they stopped, whatever the kernel returns; a
// regular file rarely gives one, so the completions are fed by hand.
func TestShortReadsResume(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, tc := range []struct {
		name   string
		align  int64
		chunks []int
		again  []bool
		err    bool
	}{
		{"buffered in three parts", 1, []int{100, 1, 899}, []bool{true, true, false}, false},
		{"buffered, then end of file", 1, []int{100, 0}, []bool{true, false}, true},
		{"direct aligned part", 512, []int{512, 512}, []bool{true, false}, false},
		{"direct unaligned part", 512, []int{100}, []bool{false}, true},
	} {
		out := make(chan completion, 1)
		f := &openFile{key: "k", align: tc.align, coldFD: -1, refs: 1}
		s.files.files["k"] = f
		j := &job{ctx: t.Context(), file: f, align: tc.align, buf: make([]byte, 1000), want: 1000, head: 0, length: 1000, out: out}
		if tc.align > 1 {
			j.buf, j.want, j.length = make([]byte, 1024), 1000, 1000
		}
		for i, n := range tc.chunks {
			if got := s.advance(j, n, nil); got != tc.again[i] {
				t.Fatalf("%s: step %d: advance = %v", tc.name, i, got)
			}
		}
		c := <-out
		if (c.err != nil) != tc.err || (!tc.err && len(c.data) != 1000) {
			t.Fatalf("%s: got %d bytes, %v", tc.name, len(c.data), c.err)
		}
		delete(s.files.files, "k")
	}
}

// A Store dropped without Close gets its rings and descriptors closed by
// the garbage collector, so that callers opening many stores do not leak
// threads and files.
func TestDroppedStoreIsClosed(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ecmwf-earthkit", "ecmwf_pl_forecast.zarr")
	openFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	before := openFDs()
	func() {
		s, err := Open(root, Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, t.Context(), s, []zarr.ByteRange{{Key: ".zmetadata", Length: -1}})
		if openFDs() < before+3 {
			t.Fatalf("an open store holds %d descriptors, want two rings and a file", openFDs()-before)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for openFDs() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors still open after the store was dropped", openFDs()-before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// Several goroutines may share a store, each with its own batches.
func TestConcurrentBatches(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	reqs, want := realRequests(t, root)
	for _, opts := range []Options{{Workers: 2, QueueDepth: 8, MaxOpenFiles: 4}, {Pread: true, QueueDepth: 4}} {
		s := openStore(t, root, opts)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i, r := range readAll(t, t.Context(), s, reqs) {
					if r.err != nil || !bytes.Equal(r.data, want[i]) {
						t.Errorf("%s %+v: %v (or wrong data)", s.backend, reqs[i], r.err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
