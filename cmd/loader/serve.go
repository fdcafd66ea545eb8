package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/lsio-loader/lsio-loader/flight"
	"github.com/lsio-loader/lsio-loader/store"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// runServe serves experiment specs over Arrow Flight until ctx is cancelled
// (SIGINT/SIGTERM), then shuts down cleanly and exits 0.
func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "unix://"+filepath.Join(os.TempDir(), "lsio-loader.sock"),
		"address to listen on: unix:///path/to.sock or tcp://host:port")
	plans := fs.Int("plans", 16, "validated experiment plans kept in memory")
	logLevel := fs.String("log-level", "info", "least severe log level written to stderr: debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a pprof CPU profile of the whole run to this file on shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
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
	lis, err := flight.Listen(*listen)
	if err != nil {
		return err
	}
	srv := flight.New(flight.Options{Open: openStore, Plans: *plans, Logger: log})
	log.Info("serving", "addr", *listen, "pid", os.Getpid())
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
	return store.Open(ctx, url, store.Options{})
}
