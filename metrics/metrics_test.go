package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCountsAndGauges(t *testing.T) {
	m := New()
	var cache int64 = 7 << 20
	if err := m.Watch(Gauges{CacheBytes: func() int64 { return cache }, PoolBytes: func() int64 { return 1 << 30 }}); err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(Gauges{CacheBytes: func() int64 { return 0 }}); err == nil {
		t.Error("a second Watch of the same gauge was accepted")
	}
	m.Reading(3)
	m.Reading(-1)
	m.Reading(-1)
	m.BatchSent(Sent{Crops: 4, BytesRead: 100, BytesDecoded: 400, BytesDelivered: 64, Took: 30 * time.Millisecond})
	m.BatchSent(Sent{Crops: 3, BytesRead: 10, BytesDecoded: 40, BytesDelivered: 48, Took: 3 * time.Second})
	m.Failed("invalid_argument")
	m.Failed("invalid_argument")
	m.Failed("internal")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"lsio_crops_total 7\n",
		"lsio_batches_total 2\n",
		"lsio_bytes_read_total 110\n",
		"lsio_bytes_decoded_total 440\n",
		"lsio_bytes_delivered_total 112\n",
		`lsio_errors_total{kind="invalid_argument"} 2` + "\n",
		`lsio_errors_total{kind="internal"} 1` + "\n",
		"lsio_reads_in_flight 1\n",
		"lsio_cache_bytes 7.340032e+06\n",
		"lsio_pool_bytes 1.073741824e+09\n",
		`lsio_batch_seconds_bucket{le="0.032"} 1` + "\n",
		`lsio_batch_seconds_bucket{le="2.048"} 1` + "\n",
		`lsio_batch_seconds_bucket{le="4.096"} 2` + "\n",
		"lsio_batch_seconds_count 2\n",
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
