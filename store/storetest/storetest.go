// Package storetest is the conformance suite every store runs: one set of
// objects, and the contract of kv.Reader checked on them (whole objects,
// ranges, suffixes, errors for ranges past the end and missing objects,
// large concurrent batches, cancellation, listing), as tensorstore runs one
// suite over every kvstore driver.
package storetest

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lsio-loader/lsio-loader/store/kv"
)

// Objects is what a store under test must hold: nested keys, an empty
// object, and one large enough for pooled and multi-read buffers.
func Objects() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	return map[string][]byte{
		"top":           []byte("top-level object"),
		"empty":         {},
		"a/.zarray":     []byte(`{"zarr_format": 2}`),
		"a/0.0":         blob(4099),
		"a/sub/1.2":     blob(65536 + 17),
		"big/c/0/0":     blob(3<<20 + 5),
		"other/zarr.js": blob(10),
	}
}

// Options says what a store cannot do.
type Options struct {
	// NoList: the store has no listing (plain HTTP), and List must fail.
	NoList bool
}

// Run checks that s, which holds Objects(), keeps the store contract, then
// closes it.
func Run(t *testing.T, s kv.Store, opts Options) {
	objects := Objects()
	if s.String() == "" {
		t.Error("String() is empty")
	}
	t.Run("whole", func(t *testing.T) {
		var reqs []kv.ByteRange
		for k := range objects {
			reqs = append(reqs, kv.ByteRange{Key: k, Length: -1})
		}
		check(t, s, objects, reqs)
	})
	t.Run("ranges", func(t *testing.T) {
		check(t, s, objects, []kv.ByteRange{
			{Key: "top", Offset: 4, Length: 5},
			{Key: "top", Offset: 0, Length: 16},
			{Key: "top", Offset: 15, Length: 1},
			{Key: "a/0.0", Offset: 4095, Length: 4},
			{Key: "a/0.0", Offset: 1000, Length: -1},
			{Key: "big/c/0/0", Offset: 1<<20 - 3, Length: 2<<20 + 1},
			{Key: "big/c/0/0", Offset: 0, Length: 1},
		})
	})
	t.Run("suffixes", func(t *testing.T) {
		check(t, s, objects, []kv.ByteRange{
			{Key: "a/sub/1.2", Offset: -16, Length: -1},
			{Key: "big/c/0/0", Offset: -(1 << 20), Length: -1},
			{Key: "top", Offset: -1000, Length: -1}, // longer than the object: all of it
		})
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			r       kv.ByteRange
			missing bool
		}{
			{r: kv.ByteRange{Key: "top", Offset: 10, Length: 7}},
			{r: kv.ByteRange{Key: "top", Offset: 17, Length: -1}},
			{r: kv.ByteRange{Key: "big/c/0/0", Offset: 3 << 20, Length: 6}},
			{r: kv.ByteRange{Key: "nothing", Length: -1}, missing: true},
			{r: kv.ByteRange{Key: "a/nothing", Offset: 2, Length: 3}, missing: true},
		} {
			calls := 0
			s.ReadBatch(t.Context(), []kv.ByteRange{tc.r}, func(_ int, data []byte, err error) {
				calls++
				switch {
				case err == nil:
					t.Errorf("%+v: %d bytes and no error", tc.r, len(data))
					s.Release(data)
				case tc.missing && !errors.Is(err, fs.ErrNotExist):
					t.Errorf("%+v: %v does not wrap fs.ErrNotExist", tc.r, err)
				case !strings.Contains(err.Error(), tc.r.Key):
					t.Errorf("%+v: %v does not name the key", tc.r, err)
				}
			})
			if calls != 1 {
				t.Errorf("%+v: done called %d times", tc.r, calls)
			}
		}
	})
	t.Run("batch", func(t *testing.T) {
		// Many requests at once, in random order, some of them repeated,
		// the way the zarr reader issues a batch's chunks.
		rng := rand.New(rand.NewPCG(3, 4))
		keys := make([]string, 0, len(objects))
		for k := range objects {
			if len(objects[k]) > 0 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var reqs []kv.ByteRange
		for range 300 {
			k := keys[rng.IntN(len(keys))]
			size := int64(len(objects[k]))
			off := rng.Int64N(size)
			reqs = append(reqs, kv.ByteRange{Key: k, Offset: off, Length: 1 + rng.Int64N(size-off)})
		}
		check(t, s, objects, reqs)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		reqs := []kv.ByteRange{{Key: "top", Length: -1}, {Key: "big/c/0/0", Length: -1}, {Key: "a/0.0", Offset: 1, Length: 2}}
		var mu sync.Mutex
		calls := make([]int, len(reqs))
		s.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls[i]++
			if err == nil {
				t.Errorf("request %d succeeded under a cancelled context", i)
				s.Release(data)
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("request %d: %v does not wrap context.Canceled", i, err)
			}
		})
		for i, n := range calls {
			if n != 1 {
				t.Errorf("request %d: done called %d times", i, n)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		all := slices.Sorted(func(yield func(string) bool) {
			for k := range objects {
				if !yield(k) {
					return
				}
			}
		})
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", all},
			{"a/", []string{"a/.zarray", "a/0.0", "a/sub/1.2"}},
			{"a/sub/", []string{"a/sub/1.2"}},
			{"big/c/0/", []string{"big/c/0/0"}},
			{"none/", nil},
		} {
			got, err := s.List(t.Context(), tc.prefix)
			if opts.NoList {
				if err == nil {
					t.Errorf("List(%q) succeeded on a store without listing", tc.prefix)
				}
				continue
			}
			if err != nil {
				t.Errorf("List(%q): %v", tc.prefix, err)
				continue
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		}
	})
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// check reads reqs in one batch and compares every answer with objects:
// each request answered once, with exactly its bytes.
func check(t *testing.T, s kv.Reader, objects map[string][]byte, reqs []kv.ByteRange) {
	t.Helper()
	var mu sync.Mutex
	calls := make([]int, len(reqs))
	s.ReadBatch(t.Context(), reqs, func(i int, data []byte, err error) {
		defer s.Release(data)
		want := expected(objects[reqs[i].Key], reqs[i])
		mu.Lock()
		defer mu.Unlock()
		calls[i]++
		if err != nil {
			t.Errorf("%+v: %v", reqs[i], err)
			return
		}
		if !slices.Equal(data, want) {
			t.Errorf("%+v: %d bytes differ from the object's %d", reqs[i], len(data), len(want))
		}
	})
	for i, n := range calls {
		if n != 1 {
			t.Errorf("%+v: done called %d times", reqs[i], n)
		}
	}
}

func expected(obj []byte, r kv.ByteRange) []byte {
	size := int64(len(obj))
	switch {
	case r.Offset < 0:
		return obj[max(size+r.Offset, 0):]
	case r.Length < 0:
		return obj[r.Offset:]
	default:
		return obj[r.Offset : r.Offset+r.Length]
	}
}
