// Package metrics keeps the server's Prometheus metrics: what was cut,
// read, decoded and delivered, errors by kind, reads in flight, memory held
// by caches and pools, and batch latency. Each Metrics has its own
// registry, so that two servers in one process (tests) never share counts.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters, gauges and histograms of one server.
type Metrics struct {
	reg            *prometheus.Registry
	crops          prometheus.Counter
	batches        prometheus.Counter
	bytesRead      prometheus.Counter
	bytesDecoded   prometheus.Counter
	bytesDelivered prometheus.Counter
	errors         *prometheus.CounterVec
	readsInFlight  prometheus.Gauge
	batchSeconds   prometheus.Histogram
}

// New returns metrics registered on a registry of their own, with the Go
// runtime's and the process's collectors beside them.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		crops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lsio_crops_total", Help: "Samples (one crop per source) delivered to clients."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lsio_batches_total", Help: "Record batches delivered to clients."}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lsio_bytes_read_total", Help: "Bytes read from stores for delivered batches."}),
		bytesDecoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lsio_bytes_decoded_total", Help: "Bytes produced by decompressing chunks for delivered batches."}),
		bytesDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lsio_bytes_delivered_total", Help: "Bytes of crop tensors delivered to clients."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lsio_errors_total", Help: "Failed requests and streams, by kind (the gRPC code given to the client)."},
			[]string{"kind"}),
		readsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lsio_reads_in_flight", Help: "Byte ranges requested from stores and not yet read."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lsio_batch_seconds",
			Help:    "Time from starting to cut a batch to handing it to the transport.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms to 33 s
		}),
	}
	m.reg.MustRegister(m.crops, m.batches, m.bytesRead, m.bytesDecoded, m.bytesDelivered,
		m.errors, m.readsInFlight, m.batchSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Sent is what one delivered batch cost and carried.
type Sent struct {
	Crops                                   int
	BytesRead, BytesDecoded, BytesDelivered int64
	Took                                    time.Duration
}

// BatchSent counts a batch once the transport has taken it.
func (m *Metrics) BatchSent(s Sent) {
	m.batches.Inc()
	m.crops.Add(float64(s.Crops))
	m.bytesRead.Add(float64(s.BytesRead))
	m.bytesDecoded.Add(float64(s.BytesDecoded))
	m.bytesDelivered.Add(float64(s.BytesDelivered))
	m.batchSeconds.Observe(s.Took.Seconds())
}

// Reading adds delta to the store reads in flight.
func (m *Metrics) Reading(delta int) { m.readsInFlight.Add(float64(delta)) }

// Failed counts one error of the given kind.
func (m *Metrics) Failed(kind string) { m.errors.WithLabelValues(kind).Inc() }

// Gauges read memory the server holds at scrape time.
type Gauges struct {
	// CacheBytes is what `serve -cache` holds; PoolBytes what the blocked
	// order's chunk pools are allowed; SkippedSamples the samples skipped
	// under on_error: skip. A nil func is not exported.
	CacheBytes, PoolBytes, SkippedSamples func() int64
}

// Watch exports g; call it once.
func (m *Metrics) Watch(g Gauges) error {
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	var cs []prometheus.Collector
	if g.CacheBytes != nil {
		cs = append(cs, gauge("lsio_cache_bytes", "Bytes of decoded chunks held by serve -cache.", g.CacheBytes))
	}
	if g.PoolBytes != nil {
		cs = append(cs, gauge("lsio_pool_bytes", "Bytes allowed to the blocked order's chunk pools made so far.", g.PoolBytes))
	}
	if g.SkippedSamples != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "lsio_samples_skipped_total", Help: "Samples skipped under on_error: skip."},
			func() float64 { return float64(g.SkippedSamples()) }))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve answers GET /metrics on lis until ctx is cancelled; a cancelled
// ctx is a clean exit.
func (m *Metrics) Serve(ctx context.Context, lis net.Listener, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("metrics server shutdown", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics on %s: %w", lis.Addr(), err)
	}
	return nil
}
