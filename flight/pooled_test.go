package flight

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/lsio-loader/lsio-loader/uring"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Blocked experiments read local stores through OpenPooled (the local
// store reading cold bytes around the page cache), iid ones through Open,
// each opened once per server; the crops are the same bytes as a server
// without OpenPooled serves.
func TestBlockedExperimentsReadPooledStores(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	var mu sync.Mutex
	opened := map[string]int{}
	opener := func(name string, opts uring.Options) OpenFunc {
		return func(ctx context.Context, url string) (zarr.Store, error) {
			mu.Lock()
			opened[name]++
			mu.Unlock()
			s, err := uring.Open(url, opts)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { s.Close() })
			return s, nil
		}
	}
	pooled := startServerWith(t, New(Options{Open: opener("open", uring.Options{}), OpenPooled: opener("pooled", uring.Options{AroundColdCache: true})}))
	plain := startServerWith(t, New(Options{Open: openDir}))
	blocked := "order: {mode: blocked, pool: 1MiB}\n"
	for _, tc := range []struct {
		order string
		want  map[string]int
	}{
		{"", map[string]int{"open": 1}},
		{blocked, map[string]int{"open": 1, "pooled": 1}},
		{"", map[string]int{"open": 1, "pooled": 1}}, // both kept
	} {
		spec := fmt.Sprintf(genericSpec, 7) + tc.order
		var got [2][]string
		for i, client := range []flight.Client{pooled, plain} {
			info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
			if err != nil {
				t.Fatal(err)
			}
			for _, ep := range info.Endpoint {
				for _, rec := range readAll(t, client, ep) {
					for c := range int(rec.NumCols()) {
						got[i] = append(got[i], rec.ColumnName(c)+fmt.Sprint(rec.Column(c)))
					}
					rec.Release()
				}
			}
		}
		if len(got[0]) == 0 || fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("order %q: the server with pooled stores sent %d columns differing from the plain server's %d", tc.order, len(got[0]), len(got[1]))
		}
		mu.Lock()
		if fmt.Sprint(opened) != fmt.Sprint(tc.want) {
			t.Errorf("order %q: stores opened %v, want %v", tc.order, opened, tc.want)
		}
		mu.Unlock()
	}
}
