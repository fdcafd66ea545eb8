package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/lsio-loader/lsio-loader/internal/synth"
)

// runBench writes the benchmark workloads; the benchmark itself is
// bench/run.py.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "gen" {
		return errors.New("usage: loader bench gen [--size small|large] --out DIR (the benchmark itself: make bench, i.e. bench/run.py)")
	}
	fs := flag.NewFlagSet("bench gen", flag.ContinueOnError)
	size := fs.String("size", "small", "workload size: small (fits this machine) or large (bigger than RAM)")
	out := fs.String("out", "bench/data", "directory to write satellite.zarr and nwp.zarr into")
	seed := fs.Uint64("seed", 1, "seed of the synthetic fields")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench gen: unexpected arguments %q", fs.Args())
	}
	fresh, err := synth.WriteBench(ctx, *out, *size, *seed, func(w synth.Written) {
		fmt.Fprintf(stdout, "bench gen: %s: %.2f GB in %.1fs\n", w.Path, float64(w.Bytes)/1e9, w.Took.Seconds())
	})
	if err != nil {
		return fmt.Errorf("bench gen: --size %s: %w", *size, err)
	}
	if !fresh {
		fmt.Fprintf(stdout, "bench gen: %s already holds the %s workloads\n", *out, *size)
	}
	return nil
}
