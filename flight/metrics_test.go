package flight

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/metrics"
	"github.com/lsio-loader/lsio-loader/pool"
)

// tensorBytes is what the client received in rec's tensor columns,
// counted from the arrays it decoded.
func tensorBytes(t *testing.T, rec arrow.RecordBatch) int64 {
	t.Helper()
	var n int64
	for i, f := range rec.Schema().Fields() {
		name, _ := f.Metadata.GetValue("ARROW:extension:name")
		col := rec.Column(i)
		if ext, ok := col.(array.ExtensionArray); ok {
			name, col = ext.ExtensionType().ExtensionName(), ext.Storage()
		}
		if name != tensorExtensionName {
			continue
		}
		values := col.(*array.FixedSizeList).ListValues()
		n += int64(values.Len() * values.DataType().(arrow.FixedWidthDataType).BitWidth() / 8)
	}
	return n
}

// scrape fetches url and returns each unlabelled sample, and labelled ones
// under their full name (name{labels}).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want Prometheus text", url, ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// peakReads passes reads on to the real metrics and keeps the most that
// were in flight at once, which a scrape between batches would miss.
type peakReads struct {
	*metrics.Metrics
	mu        sync.Mutex
	now, peak int
}

func (p *peakReads) Reading(delta int) {
	p.mu.Lock()
	p.now += delta
	p.peak = max(p.peak, p.now)
	p.mu.Unlock()
	p.Metrics.Reading(delta)
}

func TestScrapeCountsWhatWasDelivered(t *testing.T) {
	testenv.RealData(t)
	specPath := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	spec, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	reads := &peakReads{Metrics: m}
	srv := New(Options{Open: openDir, Cache: pool.NewChunks(256 << 20), Observer: reads, Logger: slog.New(slog.DiscardHandler)})
	if err := m.Watch(metrics.Gauges{CacheBytes: srv.CacheBytes, PoolBytes: srv.PoolBytes, SkippedSamples: srv.SkippedSamples}); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, lis, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("metrics Serve: %v", err)
		}
	})
	url := fmt.Sprintf("http://%s/metrics", lis.Addr())
	client := startServerWith(t, srv)

	before := scrape(t, url)
	for _, name := range []string{"lsio_crops_total", "lsio_batches_total", "lsio_bytes_delivered_total", "lsio_reads_in_flight", "lsio_cache_bytes", "lsio_batch_seconds_count"} {
		if v, ok := before[name]; !ok || v != 0 {
			t.Errorf("before any request: %s = %v (present %v), want 0", name, v, ok)
		}
	}

	info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{
		Type: flight.DescriptorCMD, Cmd: envelope(t, string(spec), filepath.Dir(specPath), map[string]any{"split": "train"})})
	if err != nil {
		t.Fatal(err)
	}
	var rows, batches, delivered int64
	for _, ep := range info.Endpoint {
		for _, rec := range readAll(t, client, ep) {
			rows += rec.NumRows()
			batches++
			delivered += tensorBytes(t, rec)
			rec.Release()
		}
	}
	if rows == 0 || delivered == 0 {
		t.Fatalf("received %d rows, %d tensor bytes: want some", rows, delivered)
	}
	// A request the server refuses is counted by its kind.
	_, err = client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{
		Type: flight.DescriptorCMD, Cmd: envelope(t, "seed: 1\nbatch_size: 0\n", t.TempDir(), nil)})
	if err == nil {
		t.Fatal("a spec without sources was accepted")
	}

	got := scrape(t, url)
	t.Logf("client received %d batches, %d crops, %d tensor bytes; server read %v, decoded %v bytes; at most %d reads in flight", batches, rows, delivered, got["lsio_bytes_read_total"], got["lsio_bytes_decoded_total"], reads.peak)
	for name, want := range map[string]float64{
		"lsio_crops_total":                           float64(rows),
		"lsio_batches_total":                         float64(batches),
		"lsio_bytes_delivered_total":                 float64(delivered),
		"lsio_batch_seconds_count":                   float64(batches),
		"lsio_reads_in_flight":                       0,
		`lsio_errors_total{kind="invalid_argument"}`: 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (what the client received)", name, got[name], want)
		}
	}
	for _, name := range []string{"lsio_bytes_read_total", "lsio_bytes_decoded_total", "lsio_cache_bytes"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v after %d batches of real data, want > 0", name, got[name], batches)
		}
	}
	if reads.peak == 0 {
		t.Error("no store read was ever in flight")
	}
	if got["lsio_bytes_decoded_total"] < got["lsio_bytes_read_total"] {
		t.Errorf("decoded %v bytes < read %v: the stores are compressed", got["lsio_bytes_decoded_total"], got["lsio_bytes_read_total"])
	}
}
