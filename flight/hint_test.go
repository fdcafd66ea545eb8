package flight

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/lsio-loader/lsio-loader/store/kv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// hintedStore records the keys each ReadBatch call reads and the keys
// hinted to it.
type hintedStore struct {
	zarr.Store
	mu     sync.Mutex
	reads  [][]string
	hinted map[string]bool
}

func (s *hintedStore) ReadBatch(ctx context.Context, reqs []kv.ByteRange, done func(i int, data []byte, err error)) {
	var keys []string
	for _, r := range reqs {
		if base := filepath.Base(r.Key); base != "zarr.json" && base[0] != '.' {
			keys = append(keys, r.Key)
		}
	}
	if len(keys) > 0 {
		s.mu.Lock()
		s.reads = append(s.reads, keys)
		s.mu.Unlock()
	}
	s.Store.ReadBatch(ctx, reqs, done)
}

func (s *hintedStore) WillNeed(ranges []kv.ByteRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range ranges {
		s.hinted[r.Key] = true
	}
}

// A stream hints the store at the chunks of the batches after the one it
// crops: every chunk read after the first batch was hinted, and nothing
// else was. With one stream and no chunk pool each batch is one
// ReadBatch, the first batch's the first.
func TestStreamsHintChunksAhead(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	for _, order := range []string{"", "order: {mode: blocked, pool: 1MiB}\n"} {
		t.Run(fmt.Sprintf("order=%q", order), func(t *testing.T) {
			st := &hintedStore{hinted: map[string]bool{}}
			open := func(ctx context.Context, url string) (zarr.Store, error) {
				s, err := openDir(ctx, url)
				if err != nil {
					return nil, err
				}
				st.Store = s
				return st, nil
			}
			client := startServerWith(t, New(Options{Open: open}))
			spec := strings.Replace(fmt.Sprintf(genericSpec, 7), "streams: 3\n", "streams: 1\n", 1) + order
			info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range readAll(t, client, info.Endpoint[0]) {
				rec.Release()
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(st.reads) < 3 {
				t.Fatalf("%d chunk reads for 6 batches", len(st.reads))
			}
			later := map[string]bool{}
			for _, keys := range st.reads[1:] {
				for _, k := range keys {
					later[k] = true
				}
			}
			if order == "" {
				// iid reads every batch's chunks: the hints are exactly
				// the chunks of the batches after the first.
				if !maps.Equal(st.hinted, later) {
					t.Fatalf("hinted %v\nread after the first batch %v", slices.Sorted(maps.Keys(st.hinted)), slices.Sorted(maps.Keys(later)))
				}
				return
			}
			// The blocked order's pool keeps chunks: a hinted chunk may be
			// found there rather than read. Every chunk read later was
			// hinted, and every hint names a chunk the stream read.
			all := map[string]bool{}
			for _, keys := range st.reads {
				for _, k := range keys {
					all[k] = true
				}
			}
			for k := range later {
				if !st.hinted[k] {
					t.Errorf("chunk %s read after the first batch without a hint", k)
				}
			}
			for k := range st.hinted {
				if !all[k] {
					t.Errorf("hint for chunk %s, which the stream never read", k)
				}
			}
		})
	}
}

// The metrics wrapper passes hints on to the store it wraps.
func TestObservedStorePassesHintsOn(t *testing.T) {
	st := &hintedStore{hinted: map[string]bool{}}
	var s zarr.Store = observedStore{st, quiet{}}
	wn, ok := s.(zarr.WillNeeder)
	if !ok {
		t.Fatal("observedStore takes no hints")
	}
	wn.WillNeed([]kv.ByteRange{{Key: "a/0.0", Length: -1}})
	if !st.hinted["a/0.0"] {
		t.Fatal("the hint did not reach the wrapped store")
	}
}
