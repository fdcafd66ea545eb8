package flight

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/lsio-loader/lsio-loader/pool"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
)

// lockedBuffer is a log sink that tests can read while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// streamTotals sums the "stream done" records logged so far.
func (b *lockedBuffer) streamTotals(t *testing.T) (streams int, sums map[string]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sums = map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["msg"] != "stream done" {
			continue
		}
		streams++
		for _, k := range []string{"chunks", "missing", "cache_hits"} {
			v, ok := rec[k].(float64)
			if !ok {
				t.Fatalf("stream done record without %s: %s", k, sc.Text())
			}
			sums[k] += int64(v)
		}
	}
	return streams, sums
}

// TestStreamStatsLogged checks that each stream's log line carries its
// batches' missing chunks and cache hits, which were once dropped: with
// every chunk file removed, every chunk read is missing; read a second time
// through the cache, every chunk is a hit.
func TestStreamStatsLogged(t *testing.T) {
	ctx := context.Background()
	serve := func(dir string, cache *pool.Chunks) (pass func(wantStreams int) map[string]int64) {
		var logs lockedBuffer
		client := startServerWith(t, New(Options{Open: openDir, Cache: cache, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}))
		return func(wantStreams int) map[string]int64 {
			info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, fmt.Sprintf(genericSpec, 7), dir, nil)})
			if err != nil {
				t.Fatal(err)
			}
			for _, ep := range info.Endpoint {
				for _, rec := range readAll(t, client, ep) {
					rec.Release()
				}
			}
			// A stream logs once its last batch is sent, maybe after the
			// client has read it.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				n, sums := logs.streamTotals(t)
				if n == wantStreams {
					return sums
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d streams logged, want %d", n, wantStreams)
				}
			}
		}
	}

	intact, emptied := t.TempDir(), t.TempDir()
	writeField(t, filepath.Join(intact, "field.zarr"), [3]int{6, 16, 20})
	writeField(t, filepath.Join(emptied, "field.zarr"), [3]int{6, 16, 20})
	chunks, err := filepath.Glob(filepath.Join(emptied, "field.zarr", "data", "c", "*", "*", "*"))
	if err != nil || len(chunks) == 0 {
		t.Fatalf("chunk files: %v %v", chunks, err)
	}
	for _, c := range chunks {
		if err := os.Remove(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := serve(emptied, nil)(3); got["chunks"] == 0 || got["missing"] != got["chunks"] {
		t.Errorf("a store without chunk files: totals %v, want every chunk missing", got)
	}

	cache := pool.NewChunks(1 << 20)
	pass := serve(intact, cache)
	first := pass(3)
	if first["chunks"] == 0 || first["missing"] != 0 || first["cache_hits"] != cache.Hits() {
		t.Errorf("first pass: totals %v, the cache counted %d hits; want those hits logged", first, cache.Hits())
	}
	both := pass(6)
	if hits := both["cache_hits"] - first["cache_hits"]; hits != both["chunks"]-first["chunks"] || both["cache_hits"] != cache.Hits() {
		t.Errorf("second pass: totals %v after %v, the cache counted %d hits; want every chunk of the second pass a logged hit", both, first, cache.Hits())
	}
}
