package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/cloud"
	"github.com/lsio-loader/lsio-loader/flight"
	"github.com/lsio-loader/lsio-loader/internal/units"
	"github.com/lsio-loader/lsio-loader/metrics"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/store"
	"github.com/lsio-loader/lsio-loader/uring"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// runServe serves experiment specs over Arrow Flight until ctx is cancelled
// (SIGINT/SIGTERM), then shuts down cleanly and exits 0.
func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("serve", args, stdout)
	fs.Usage = usageFunc(fs, "[-listen ADDR] [-cache SIZE] [-memory SIZE] [-metrics HOST:PORT] [flags]",
		"Serve experiment specs over Arrow Flight until SIGINT/SIGTERM. Clients send a spec\nand get its batches of crops as Arrow record batches (see python/lsio_loader).")
	listen := fs.String("listen", "unix://"+filepath.Join(os.TempDir(), "lsio-loader.sock"),
		"address to listen on: unix:///path/to.sock or tcp://host:port")
	plans := fs.Int("plans", 16, "validated experiment plans kept in memory")
	logLevel := fs.String("log-level", "info", "least severe log level written to stderr: debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a pprof CPU profile of the whole run to this file on shutdown")
	cacheSize := fs.String("cache", "0", "memory for decoded chunks kept across batches, streams and experiments, e.g. 8GiB (0: none)")
	memory := fs.String("memory", "", "memory for batches in flight across all clients, e.g. 16GiB; also the Go runtime's soft limit (default: 3/4 of the machine's or cgroup's memory; 0: unbounded)")
	var cloudOpts cloud.Options
	fs.DurationVar(&cloudOpts.ConnectTimeout, "store-connect-timeout", 10*time.Second, "how long an S3/HTTP endpoint that refuses or drops connections is retried")
	fs.DurationVar(&cloudOpts.FirstByteTimeout, "store-first-byte-timeout", 20*time.Second, "how long to wait for an S3/HTTP response's headers")
	fs.DurationVar(&cloudOpts.RetryTimeout, "store-retry-budget", time.Minute, "how long one read is retried while S3/HTTP throttles or answers 5xx")
	var expo flight.ExposureConfig
	fs.Func("allow", "a root specs may read below: a directory, s3://bucket/prefix or https://host/prefix (repeatable; needed for tcp://)",
		func(v string) error { expo.Allow = append(expo.Allow, v); return nil })
	fs.StringVar(&expo.TLSCert, "tls-cert", "", "PEM certificate for TLS (with -tls-key; needed off the loopback interface)")
	fs.StringVar(&expo.TLSKey, "tls-key", "", "PEM private key for TLS")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
	fs.StringVar(&expo.TokenFile, "token-file", "", "file whose first line is the bearer token every call must carry (needed off the loopback interface)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cacheBytes, err := units.ParseBytes(*cacheSize)
	if err != nil {
		return fmt.Errorf("-cache: %w", err)
	}
	memBytes := flight.DefaultMemory()
	if *memory != "" {
		if memBytes, err = units.ParseBytes(*memory); err != nil {
			return fmt.Errorf("-memory: %w", err)
		}
	}
	if memBytes > 0 {
		debug.SetMemoryLimit(memBytes + cacheBytes)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop(log)
	}
	expo.Listen = *listen
	exposure, err := flight.NewExposure(expo)
	if err != nil {
		return err
	}
	// Listened on first: a bad -metrics address then fails before the
	// Flight socket exists.
	var metricsLis net.Listener
	if *metricsAddr != "" {
		if metricsLis, err = net.Listen("tcp", strings.TrimPrefix(*metricsAddr, "tcp://")); err != nil {
			return fmt.Errorf("-metrics %s: want HOST:PORT: %w", *metricsAddr, err)
		}
		defer metricsLis.Close()
	}
	lis, err := flight.Listen(*listen)
	if err != nil {
		return err
	}
	open := func(ctx context.Context, url string) (zarr.Store, error) {
		return openStoreChecked(ctx, url, store.Options{Cloud: cloudOpts})
	}
	// The blocked order reads each chunk about once per epoch and keeps it
	// decoded: what the page cache lacks is read around it.
	openPooled := func(ctx context.Context, url string) (zarr.Store, error) {
		return openStoreChecked(ctx, url, store.Options{Local: uring.Options{AroundColdCache: true}, Cloud: cloudOpts})
	}
	opts := flight.Options{Open: open, OpenPooled: openPooled, Plans: *plans, Logger: log, Exposure: exposure, Memory: memBytes}
	if cacheBytes > 0 {
		opts.Cache = pool.NewChunks(cacheBytes)
	}
	var mon *metrics.Metrics
	if metricsLis != nil {
		mon = metrics.New()
		opts.Observer = mon
	}
	srv := flight.New(opts)
	if mon != nil {
		if err := serveMetrics(ctx, mon, srv, metricsLis, log); err != nil {
			lis.Close()
			return err
		}
	}
	log.Info("serving", "addr", *listen, "pid", os.Getpid(), "memory_MB", memBytes>>20)
	// The Python launcher waits for this line.
	fmt.Fprintf(stdout, "lsio-loader listening on %s\n", *listen)
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	if err := srv.Serve(ctx, lis); err != nil {
		return err
	}
	log.Info("stopped", "addr", *listen)
	return nil
}

// serveMetrics serves mon on lis until ctx ends.
func serveMetrics(ctx context.Context, mon *metrics.Metrics, srv *flight.Server, lis net.Listener, log *slog.Logger) error {
	if err := mon.Watch(metrics.Gauges{CacheBytes: srv.CacheBytes, PoolBytes: srv.PoolBytes, SkippedSamples: srv.SkippedSamples}); err != nil {
		return err
	}
	log.Info("metrics", "url", "http://"+lis.Addr().String()+"/metrics")
	go func() {
		if err := mon.Serve(ctx, lis, log); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	return nil
}

// startCPUProfile profiles the process until the returned stop is called.
// The file is created first so that a bad path fails before serving.
func startCPUProfile(path string) (stop func(*slog.Logger), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile %s: %w", path, err)
	}
	return func(log *slog.Logger) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("writing CPU profile", "file", path, "err", err)
		}
	}, nil
}

// openStore opens the store a spec names, by path or URL (file://, s3://,
// https://), on the backend that fits it.
func openStore(ctx context.Context, url string) (zarr.Store, error) {
	return openStoreChecked(ctx, url, store.Options{})
}
